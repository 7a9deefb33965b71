"""isola.Channel, select and share from Python (main interpreter or an isola
sub-interpreter: the same file runs in both)."""
import signal
import sys
import threading
import time
import unittest

import isola

IN_MAIN_THREAD_OF_MAIN = (threading.current_thread() is threading.main_thread()
                          and getattr(sys, "_isola_subinterpreter", False) is False)


def later(seconds, fn, *args):
    t = threading.Timer(seconds, fn, args)
    t.start()
    return t


class Basics(unittest.TestCase):
    def test_send_recv_fifo_len_and_stats(self):
        ch = isola.Channel(8)
        self.assertEqual(ch.capacity, 8)
        for i in range(5):
            ch.send(i)
        self.assertEqual(len(ch), 5)
        self.assertEqual([ch.recv() for _ in range(5)], list(range(5)))
        st = ch.stats()
        self.assertEqual((st["sent"], st["received"], st["depth"]), (5, 5, 0))
        self.assertEqual(st["peak_depth"], 5)
        self.assertFalse(st["closed"])

    def test_capacity_is_rounded_and_validated(self):
        self.assertEqual(isola.Channel(5).capacity, 8)
        self.assertEqual(isola.Channel().capacity, 1024)
        for bad in (0, -1, 2**31):
            with self.assertRaises(ValueError):
                isola.Channel(bad)

    def test_nowait(self):
        ch = isola.Channel(1)
        with self.assertRaises(isola.ChannelEmpty):
            ch.recv_nowait()
        ch.send_nowait("a")
        with self.assertRaises(isola.ChannelFull):
            ch.send_nowait("b")
        self.assertTrue(issubclass(isola.ChannelFull, isola.ChannelError))
        self.assertEqual(ch.recv_nowait(), "a")

    def test_timeouts_never_fire_early(self):
        # Only the lower bound is a contract: how late a timeout fires
        # depends on the machine's load (bench/bench_timeouts.py measures it).
        ch = isola.Channel(1)
        for _ in range(3):
            t0 = time.monotonic()
            with self.assertRaises(TimeoutError):
                ch.recv(timeout=0.05)
            self.assertGreaterEqual(time.monotonic() - t0, 0.05)
        ch.send(1)
        t0 = time.monotonic()
        with self.assertRaises(TimeoutError):
            ch.send(2, timeout=0.05)
        self.assertGreaterEqual(time.monotonic() - t0, 0.05)
        self.assertEqual(ch.stats()["full_waits"], 1)
        with self.assertRaises(TimeoutError):
            ch.send(2, timeout=0)
        with self.assertRaises(ValueError):
            ch.recv(timeout=-1)

    def test_close_drains_then_raises(self):
        ch = isola.Channel(4)
        ch.send(1)
        ch.send(2)
        ch.close()
        self.assertTrue(ch.closed)
        with self.assertRaises(isola.ChannelClosed):
            ch.send(3)
        self.assertEqual(ch.recv(), 1)
        self.assertEqual(list(ch), [2])  # iteration ends at close
        with self.assertRaises(isola.ChannelClosed):
            ch.recv()

    def test_close_wakes_blocked_receiver_and_sender(self):
        ch = isola.Channel(1)
        later(0.05, ch.close)
        t0 = time.monotonic()
        with self.assertRaises(isola.ChannelClosed):
            ch.recv()
        self.assertLess(time.monotonic() - t0, 2)
        full = isola.Channel(1)
        full.send(0)
        later(0.05, full.close)
        with self.assertRaises(isola.ChannelClosed):
            full.send(1)
        self.assertEqual(full.recv(), 0)

    def test_channel_equality_and_repr(self):
        a = isola.Channel(2)
        b = isola.Channel(2)
        a.send(a)
        a2 = a.recv()
        self.assertEqual(a, a2)
        self.assertNotEqual(a, b)
        self.assertEqual(hash(a), hash(a2))
        self.assertIn("isola.Channel", repr(a))

    def test_channel_inside_a_message_is_the_same_channel(self):
        carrier = isola.Channel(2)
        inner = isola.Channel(2)
        carrier.send({"reply_to": inner})
        got = carrier.recv()["reply_to"]
        got.send("pong")
        self.assertEqual(inner.recv(), "pong")

    def test_too_many_references(self):
        ch = isola.Channel(2)
        with self.assertRaises(ValueError):
            ch.send([isola.Channel(1) for _ in range(9)])
        self.assertEqual(len(ch), 0, "a failed send queues nothing")

    def test_failed_send_loses_nothing_else(self):
        ch = isola.Channel(4)
        ch.send("before")
        with self.assertRaises(TypeError):
            ch.send(lambda: 1)
        ch.send("after")
        self.assertEqual([ch.recv(), ch.recv()], ["before", "after"])


class Threads(unittest.TestCase):
    def test_many_threads_exactly_once(self):
        ch = isola.Channel(16)
        n_prod, per = 4, 2000
        got = []
        lock = threading.Lock()

        def produce(p):
            for i in range(per):
                ch.send((p, i))

        def consume():
            local = []
            for item in ch:
                local.append(item)
            with lock:
                got.extend(local)

        consumers = [threading.Thread(target=consume) for _ in range(3)]
        producers = [threading.Thread(target=produce, args=(p,)) for p in range(n_prod)]
        for t in consumers + producers:
            t.start()
        for t in producers:
            t.join()
        ch.close()
        for t in consumers:
            t.join()
        self.assertEqual(sorted(got), [(p, i) for p in range(n_prod) for i in range(per)])


class Select(unittest.TestCase):
    def test_select_ready_and_timeout(self):
        a, b, c = isola.Channel(2), isola.Channel(2), isola.Channel(2)
        with self.assertRaises(TimeoutError):
            isola.select([a, b, c], timeout=0.02)
        b.send("bee")
        ch, obj = isola.select([a, b, c])
        self.assertEqual(ch, b)
        self.assertEqual(obj, "bee")

    def test_select_wakes_on_later_send(self):
        a, b = isola.Channel(2), isola.Channel(2)
        later(0.05, b.send, 7)
        t0 = time.monotonic()
        self.assertEqual(isola.select([a, b], timeout=5)[1], 7)
        self.assertLess(time.monotonic() - t0, 2)

    def test_select_closed(self):
        a, b = isola.Channel(2), isola.Channel(2)
        a.close()
        b.send(1)
        self.assertEqual(isola.select([a, b])[1], 1)
        b.close()
        with self.assertRaises(isola.ChannelClosed):
            isola.select([a, b])

    def test_select_bad_arguments(self):
        with self.assertRaises(ValueError):
            isola.select([])
        with self.assertRaises(TypeError):
            isola.select([isola.Channel(1), "nope"])
        with self.assertRaises(ValueError):
            isola.select([isola.Channel(1)] * 65)


@unittest.skipUnless(IN_MAIN_THREAD_OF_MAIN, "signals reach only the main interpreter's main thread")
class CtrlC(unittest.TestCase):
    def test_sigint_interrupts_a_blocking_recv(self):
        # Python's own handler, even when this process started with SIGINT
        # ignored (a background job of a non-interactive shell: Python then
        # leaves it ignored, and the signal would never arrive)
        old = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            ch = isola.Channel(1)
            main = threading.get_ident()
            later(0.1, signal.pthread_kill, main, signal.SIGINT)
            t0 = time.monotonic()
            with self.assertRaises(KeyboardInterrupt):
                ch.recv(timeout=30)
            self.assertLess(time.monotonic() - t0, 2)
        finally:
            signal.signal(signal.SIGINT, old)

    def test_other_signals_resume_the_wait(self):
        ch = isola.Channel(1)
        seen = []
        old = signal.signal(signal.SIGUSR1, lambda *a: seen.append(1))
        try:
            main = threading.get_ident()
            later(0.02, signal.pthread_kill, main, signal.SIGUSR1)
            later(0.1, ch.send, "done")
            self.assertEqual(ch.recv(timeout=5), "done")
            self.assertEqual(seen, [1])
        finally:
            signal.signal(signal.SIGUSR1, old)



class RacingThreads(unittest.TestCase):
    def test_select_survives_its_list_being_cleared(self):
        # issue 14.1: select kept borrowed pointers to the list and its
        # channels while the GIL was released (SIGSEGV / use-after-free)
        import gc, threading
        for _ in range(20):
            chans = [isola.Channel(1) for _ in range(8)]
            t = threading.Timer(0.02, lambda: (chans.clear(), gc.collect()))
            t.start()
            t0 = time.monotonic()
            with self.assertRaises(TimeoutError):
                isola.select(chans, timeout=0.1)
            self.assertLess(time.monotonic() - t0, 5, "no spinning past the timeout")
            t.join()

    def test_channel_cannot_be_initialised_twice(self):
        # issue 14.2: __init__ again freed the channel under a blocked thread
        import threading
        ch = isola.Channel(1)
        got = []
        t = threading.Thread(target=lambda: got.append(ch.recv(timeout=10)))
        t.start()
        time.sleep(0.05)
        with self.assertRaises(RuntimeError):
            ch.__init__(4)
        ch.send("still the same channel")
        t.join()
        self.assertEqual(got, ["still the same channel"])


if __name__ == "__main__":
    unittest.main()
