"""isola.Pool, Future, Executor and actors from Python (main interpreter)."""
import asyncio
import concurrent.futures as cf
import os
import subprocess
import sys
import textwrap
import time
import threading
import unittest

import isola
import pool_helpers as h

IN_SUB = getattr(sys, "_isola_subinterpreter", False)


def wait_until(predicate, timeout=30):
    """Poll predicate() until it is true (True) or timeout passes (False)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


@unittest.skipIf(IN_SUB, "pools are made from the main interpreter here")
class PoolTasks(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pool = isola.Pool(2)

    @classmethod
    def tearDownClass(cls):
        cls.pool.shutdown()

    def test_submit_args_kwargs(self):
        self.assertEqual(self.pool.submit(h.square, 7).result(), 49)
        self.assertEqual(self.pool.submit(h.add, 1, 2, c=3).result(), 6)
        self.assertEqual(self.pool.submit(h.add, a=1, b=5).result(), 6)
        self.assertEqual(self.pool.submit(pow, 3, 4).result(), 81)

    def test_map_in_order_with_chunks(self):
        self.assertEqual(list(self.pool.map(h.square, range(100))), [i * i for i in range(100)])
        self.assertEqual(list(self.pool.map(h.square, range(10), chunksize=3)), [i * i for i in range(10)])
        self.assertEqual(list(self.pool.map(h.add, [1, 2], [10, 20])), [11, 22])
        self.assertEqual(list(self.pool.map(h.square, [])), [])

    def test_imap_unordered(self):
        self.assertEqual(sorted(self.pool.imap_unordered(h.square, range(20))), [i * i for i in range(20)])

    def test_run_on_every_worker(self):
        self.pool.run("import sys\nsys._isola_worker_tag = 'tagged'\n")
        tags = {self.pool.submit(h.where).result() for _ in range(10)}
        self.assertEqual(tags, {"tagged"})
        with self.assertRaises(RuntimeError):
            self.pool.run("1/0")

    def test_many_large_results_in_one_chunk(self):
        # issue 14.12: "one reference too many" for > 8 large results per chunk
        out = list(self.pool.map(bytes, [70000] * 100))
        self.assertEqual(len(out), 100)
        self.assertTrue(all(len(b) == 70000 and not any(b) for b in out))
        shared = list(self.pool.map(h.shared_bytes, [1000] * 20, chunksize=20))
        self.assertEqual([bytes(b) for b in shared], [b"\x02" * 1000] * 20)

    def test_idle_worker_gives_zero_copy_memory_back(self):
        # issue 14.15: a worker's bytes held zero-copy elsewhere were freed
        # only at its next encode/decode: an idle worker kept them
        def rss():
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        n = 256 << 20
        before = rss()
        buf = self.pool.submit(h.big_bytes, n).result()
        self.assertIsInstance(buf, isola.Buffer)
        self.assertGreater(rss() - before, n // 2)
        del buf  # the worker stays idle from here on
        self.assertTrue(wait_until(lambda: rss() - before < n // 4, timeout=10),
                        f"still {(rss() - before) >> 20} MiB held")

    def test_exception_that_cannot_travel_keeps_its_type_and_traceback(self):
        # issue 14.16: a deep argument arrived as a bare RemoteError
        with self.assertRaises(KeyError) as cm:
            self.pool.submit(h.fail_deep).result(timeout=30)
        self.assertIn("in fail_deep", cm.exception.remote_traceback)

    def test_no_pickle_travels_with_the_channel(self):
        # issue 14.17: the decoded handle of a no-pickle channel allowed pickle
        ch = isola.Channel(4, allow_pickle=False)
        self.assertEqual(self.pool.submit(h.send_fraction, ch).result(), "TypeError")
        open_ch = isola.Channel(4)
        self.assertEqual(self.pool.submit(h.send_fraction, open_ch).result(), "sent")

    def test_exceptions_with_remote_traceback(self):
        f = self.pool.submit(h.fail, "bad")
        with self.assertRaises(ValueError) as cm:
            f.result()
        self.assertIn("in fail", cm.exception.remote_traceback)
        self.assertIsInstance(f.exception(), ValueError)
        with self.assertRaises(h.CustomError) as cm:  # the real class: importable here
            self.pool.submit(h.fail_custom, "x").result()
        self.assertEqual(cm.exception.args, ("x",))
        self.assertIn("in fail_custom", cm.exception.remote_traceback)

    def test_thousand_failing_tasks(self):
        fs = [self.pool.submit(h.fail, str(i)) for i in range(1000)]
        for i, f in enumerate(fs):
            self.assertEqual(str(f.exception(timeout=30)), str(i))
        self.assertEqual(self.pool.submit(h.square, 3).result(), 9, "the pool survives")

    def test_futures_work_with_wait_and_as_completed(self):
        fs = [self.pool.submit(h.square, i) for i in range(10)]
        done, not_done = cf.wait(fs, timeout=30)
        self.assertEqual(len(done), 10)
        self.assertEqual(sorted(f.result() for f in cf.as_completed(fs)), [i * i for i in range(10)])
        self.assertIsInstance(fs[0], cf.Future)

    def test_futures_complete_without_result(self):
        # Only result() waits inline; everything else must still see the
        # outcome: polling done(), callbacks added before or after the task
        # ends, wait() on futures that ended unobserved.
        import threading
        import weakref
        f = self.pool.submit(h.square, 5)
        self.assertTrue(wait_until(f.done))
        self.assertEqual(f._result, 25, "done() completed the Future itself")

        got = threading.Event()
        seen = []
        g = self.pool.submit(h.sleep, 0.05)
        g.add_done_callback(lambda fut: (seen.append(fut._result), got.set()))
        self.assertTrue(got.wait(30), "callback added while running fires")
        self.assertEqual(seen, [0.05])

        k = self.pool.submit(h.square, 6)
        time.sleep(0.05)  # ends unobserved
        late = []
        k.add_done_callback(lambda fut: late.append(fut.result()))
        self.assertEqual(late, [36], "callback added after the end runs at once")

        fs = [self.pool.submit(h.square, i) for i in range(5)]
        time.sleep(0.05)
        done, pending = cf.wait(fs, timeout=30, return_when=cf.FIRST_COMPLETED)
        self.assertTrue(done)
        done, pending = cf.wait(fs, timeout=30)
        self.assertEqual(len(done), 5)
        slow = self.pool.submit(h.sleep, 0.1)
        self.assertEqual([x.result() for x in cf.as_completed([slow], timeout=30)], [0.1])

        # No reference cycle: a finished Future is freed without the GC.
        import gc
        gc.disable()
        try:
            for use in (lambda fut: fut.result(), lambda fut: cf.wait([fut], timeout=30)):
                fut = self.pool.submit(h.square, 1)
                use(fut)
                r = weakref.ref(fut)
                del fut
                # the dispatcher may hold it a moment
                self.assertTrue(wait_until(lambda: r() is None))
        finally:
            gc.enable()

    def test_running_state(self):
        f = self.pool.submit(h.sleep, 0.3)
        self.assertTrue(wait_until(f.running))
        self.assertEqual(f.result(), 0.3)
        self.assertFalse(f.running())

    def test_not_sendable_by_reference(self):
        with self.assertRaises(TypeError) as cm:
            self.pool.submit(lambda: 1)
        self.assertIn("lambda", str(cm.exception))

        def inner():
            return 1
        with self.assertRaises(TypeError) as cm:
            self.pool.submit(inner)
        self.assertIn("closure", str(cm.exception))
        with self.assertRaises(TypeError):
            self.pool.submit(h.Counter().add, 1)

    def test_channel_handed_to_a_task(self):
        ch = isola.Channel(4)
        f = self.pool.submit(h.send_to, ch, 50)
        self.assertEqual(list(ch), list(range(50)))
        self.assertEqual(f.result(), 50)

    def test_stats(self):
        self.pool.submit(h.square, 1).result()
        st = self.pool.stats()
        self.assertEqual(len(st["workers"]), 2)
        self.assertGreater(sum(w["tasks_run"] for w in st["workers"]), 0)
        self.assertEqual(self.pool.size, 2)

    def test_absurd_worker_counts_are_refused(self):
        with self.assertRaisesRegex(ValueError, "at most 1024"):
            isola.Pool(5000)

    def test_stats_name_the_running_task(self):
        f = self.pool.submit(time.sleep, 0.5)
        while not f.running():
            time.sleep(0.005)
        running = [w for w in self.pool.stats()["workers"] if w["running"]]
        self.assertEqual([w["running"] for w in running], ["time:sleep"])
        self.assertGreaterEqual(running[0]["running_seconds"], 0.0)
        f.result()
        time.sleep(0.05)  # the worker publishes "idle" after completing
        self.assertEqual([w["running"] for w in self.pool.stats()["workers"]], [None, None])


@unittest.skipIf(IN_SUB, "pools are made from the main interpreter here")
class Cancellation(unittest.TestCase):
    def test_cancel_queued_and_running(self):
        with isola.Pool(1) as p:
            running = p.submit(h.spin_forever)
            queued = p.submit(h.square, 2)
            while not running.running():
                time.sleep(0.005)
            self.assertTrue(queued.cancel())
            self.assertTrue(queued.cancelled())
            t0 = time.monotonic()
            self.assertFalse(running.cancel(), "the contract: a running task is not cancelled")
            self.assertTrue(running.running())
            self.assertTrue(running.interrupt(), "isola's explicit call stops it")
            with self.assertRaises(cf.CancelledError):
                running.result(timeout=5)
            self.assertEqual(p.submit(h.square, 5).result(timeout=5), 25)
            self.assertLess(time.monotonic() - t0, 5)

    def test_timeout(self):
        with isola.Pool(1) as p:
            f = p.apply_async(h.spin_forever, timeout=0.1)
            with self.assertRaises(TimeoutError):
                f.result(timeout=10)
            with self.assertRaises(TimeoutError):
                p.apply(h.spin_forever, timeout=0.1)
            self.assertEqual(p.apply(h.square, (4,), timeout=5), 16)

    def test_apply_returns_the_value_as_multiprocessing_does(self):
        # issue #31.6: apply returned a Future where multiprocessing's
        # Pool.apply returns the value; apply_async is the Future.
        with isola.Pool(1) as p:
            self.assertEqual(p.apply(h.add, (1, 2), {"c": 4}), 7)
            self.assertEqual(p.apply(h.add, (1,), kwds={"b": 2}), 3)
            with self.assertRaises(ValueError):
                p.apply(h.fail, ("no",))
            f = p.apply_async(h.square, (6,))
            self.assertIsInstance(f, cf.Future)
            self.assertEqual(f.get(timeout=10), 36)
            self.assertTrue(f.ready())
            self.assertTrue(f.successful())
            got, errs = [], []
            done = threading.Event()
            p.apply_async(h.square, (3,), callback=got.append)
            p.apply_async(h.fail, ("bad",), error_callback=lambda e: (errs.append(e), done.set()))
            self.assertTrue(done.wait(10))
            f = p.apply_async(h.fail, ("x",))
            cf.wait([f], timeout=10)
            self.assertFalse(f.successful())
        self.assertEqual(got, [9])
        self.assertIsInstance(errs[0], ValueError)

    def test_shutdown_cancels_or_finishes(self):
        p = isola.Pool(1)
        fs = [p.submit(h.sleep, 0.01) for _ in range(5)]
        p.shutdown(wait=True)
        self.assertEqual([f.result() for f in fs], [0.01] * 5)
        with self.assertRaises(RuntimeError):
            p.submit(h.square, 1)
        p = isola.Pool(1)
        spin = p.submit(h.spin_forever)
        rest = [p.submit(h.sleep, 1) for _ in range(5)]
        time.sleep(0.05)
        p.shutdown(wait=True, cancel_futures=True, interrupt=True)
        for f in [spin] + rest:
            self.assertTrue(f.done())
            self.assertTrue(f.cancelled() or isinstance(f.exception(), RuntimeError))

    def test_cancel_futures_lets_running_tasks_finish(self):
        p = isola.Pool(1)
        first = p.submit(h.sleep, 0.2)
        rest = [p.submit(h.sleep, 1) for _ in range(5)]
        while not first.running():
            time.sleep(0.005)
        p.shutdown(wait=False, cancel_futures=True)
        # cancelled at once, before shutdown returns: not stale until done()
        self.assertTrue(all(f.cancelled() for f in rest))
        self.assertEqual(first.result(timeout=10), 0.2, "the running task finishes")

    def test_caught_cancel_with_a_result_is_done_not_cancelled(self):
        with isola.Pool(1) as p:
            f = p.submit(h.catch_cancel)
            while not f.running():
                time.sleep(0.005)
            time.sleep(0.05)
            self.assertTrue(f.interrupt())
            self.assertEqual(f.result(timeout=10), "caught")
            self.assertFalse(f.cancelled())


@unittest.skipIf(IN_SUB, "pools are made from the main interpreter here")
class Actors(unittest.TestCase):
    def test_calls_in_order_and_send_message(self):
        with isola.Pool(2) as p:
            c = p.spawn(h.Counter, 100)
            fs = []
            for i in range(1, 101):
                if i % 2:
                    c.send_message("add", i)
                else:
                    fs.append(c.add(i))
            self.assertEqual(fs[-1].result(), 100 + 5050)
            self.assertEqual(c.get().result(), 5150)
            self.assertEqual(c.stats()["mailbox_depth"], 0)

    def test_kill_restart_and_monitor(self):
        with isola.Pool(1) as p:
            mon = p.monitor()
            c = p.spawn(h.Counter, 5, restart=True)
            c.add(10).result()
            c.kill()
            ev = mon.recv(timeout=5)
            self.assertEqual((ev["actor"], ev["event"], ev["reason"]), (c.id, "restarted", "killed"))
            self.assertEqual(c.get().result(), 5, "restarted with its original arguments")
            b = p.spawn(h.Broken)
            ev = mon.recv(timeout=5)
            self.assertEqual(ev["event"], "stopped")
            self.assertIn("cannot start", ev["reason"])
            with self.assertRaises(isola.ChannelClosed):
                b.get()

    def test_monitor_counts_what_it_drops(self):
        # issue 14.11: events past the monitor's 1024 vanished silently
        with isola.Pool(1) as p:
            mon = p.monitor()
            n = 1100
            for _ in range(n):
                p.spawn(h.Broken)
            # every constructor has failed once 1024 are queued and the rest dropped
            self.assertTrue(wait_until(lambda: len(mon) + p.stats()["monitor_dropped"] >= n))
            got = 0
            while True:
                try:
                    mon.recv_nowait()
                except isola.ChannelEmpty:
                    break
                got += 1
            self.assertEqual(got, 1024)
            self.assertEqual(got + p.stats()["monitor_dropped"], n)

    def test_method_error_goes_to_caller(self):
        with isola.Pool(1) as p:
            c = p.spawn(h.Counter)
            with self.assertRaises(TypeError):
                c.add("x").result()
            self.assertEqual(c.add(1).result(), 1, "the actor lives on")


@unittest.skipIf(IN_SUB, "pools are made from the main interpreter here")
class AsyncioAndExecutor(unittest.TestCase):
    def test_await_future_and_run_in_executor(self):
        async def main():
            with isola.Pool(2) as p:
                a = await p.submit(h.square, 6)
                b = await asyncio.wrap_future(p.submit(h.square, 7))
            ex = isola.Executor(2)
            try:
                c = await asyncio.get_running_loop().run_in_executor(ex, h.square, 8)
            finally:
                ex.shutdown()
            return a, b, c
        self.assertEqual(asyncio.run(main()), (36, 49, 64))

    def test_executor_is_an_executor(self):
        with isola.Executor(2) as ex:
            self.assertIsInstance(ex, cf.Executor)
            self.assertEqual(list(ex.map(h.square, range(5))), [0, 1, 4, 9, 16])

    def test_channel_async(self):
        async def main():
            ch = isola.Channel(2)
            asyncio.get_running_loop().call_later(0.05, ch.send, "later")
            got = await asyncio.wait_for(ch.recv_async(), 5)
            await ch.send_async(1)
            await ch.send_async(2)
            sender = asyncio.ensure_future(ch.send_async(3))  # waits: full
            await asyncio.sleep(0.02)
            self.assertFalse(sender.done())
            self.assertEqual(await ch.recv_async(), 1)
            await asyncio.wait_for(sender, 5)
            return got, await ch.recv_async(), await ch.recv_async()
        self.assertEqual(asyncio.run(main()), ("later", 2, 3))


SCRIPT_GUARDED = """
import isola

def triple(x):
    return 3 * x

if __name__ == "__main__":
    with isola.Pool(2) as p:
        print(sum(p.map(triple, range(10))))
"""

SCRIPT_UNGUARDED = """
import isola

def triple(x):
    return 3 * x

with isola.Pool(1) as p:
    print(p.submit(triple, 2).result())
"""

SCRIPT_SIGINT = """
import os, signal, threading, time, isola, pool_helpers
signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started ignored

t0 = time.monotonic()
threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
try:
    with isola.Pool(2) as p:
        for _ in p.map(pool_helpers.sleep, [0.2] * 200, chunksize=1):
            pass
except KeyboardInterrupt:
    print("interrupted cleanly after %.1f s" % (time.monotonic() - t0))
"""


@unittest.skipIf(IN_SUB, "runs scripts as subprocesses")
class Scripts(unittest.TestCase):
    def run_script(self, source, timeout=60):
        import tempfile
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "script.py")
            with open(path, "w") as f:
                f.write(textwrap.dedent(source))
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join(
                [os.path.dirname(isola.__file__ or "") if getattr(isola, "__file__", None) else "",
                 os.path.dirname(os.path.abspath(__file__))] + env.get("PYTHONPATH", "").split(os.pathsep))
            return subprocess.run([sys.executable, path], capture_output=True, text=True,
                                  timeout=timeout, env=env)

    def test_main_functions_with_guard(self):
        r = self.run_script(SCRIPT_GUARDED)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), "135")

    def test_main_without_guard_says_so(self):
        r = self.run_script(SCRIPT_UNGUARDED)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('if __name__ == "__main__"', r.stderr)

    def test_ctrl_c_during_map_shuts_down_cleanly(self):
        t0 = time.monotonic()
        r = self.run_script(SCRIPT_SIGINT)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("interrupted cleanly", r.stdout)
        self.assertLess(time.monotonic() - t0, 20)


if __name__ == "__main__":
    unittest.main()
