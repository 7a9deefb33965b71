"""Contracts decided in issue 30 ("contracts that surprise"): what
Future.interrupt() promises, and what a call to an actor whose
constructor raised gets."""
import concurrent.futures as cf
import sys
import time
import unittest

import isola
import pool_helpers as h

IN_SUB = getattr(sys, "_isola_subinterpreter", False)


def wait_running(f):
    while not f.running():
        time.sleep(0.005)


@unittest.skipIf(IN_SUB, "pools are made from the main interpreter here")
class Interrupt(unittest.TestCase):
    def test_true_means_the_task_ends_cancelled_even_from_a_c_call(self):
        # time.sleep is the task itself: no bytecode runs after it returns,
        # so Cancelled never reaches Python code; the result is dropped
        with isola.Pool(1) as p:
            f = p.submit(time.sleep, 0.5)
            wait_running(f)
            self.assertTrue(f.interrupt())
            with self.assertRaises(cf.CancelledError):
                f.result(timeout=30)
            self.assertTrue(f.cancelled())
            self.assertEqual(p.submit(h.square, 3).result(timeout=30), 9, "the worker lives on")

    def test_a_timeout_in_a_c_call_ends_the_task_timed_out(self):
        with isola.Pool(1) as p:
            f = p.apply_async(time.sleep, (0.5,), timeout=0.1)
            with self.assertRaises(TimeoutError):
                f.result(timeout=30)

    def test_false_once_the_task_has_returned(self):
        with isola.Pool(1) as p:
            f = p.submit(h.square, 4)
            self.assertEqual(f.result(timeout=30), 16)
            self.assertFalse(f.interrupt())
            self.assertEqual(f.result(), 16)

    def test_a_caught_cancel_keeps_its_result(self):
        with isola.Pool(1) as p:
            f = p.submit(h.catch_cancel)
            wait_running(f)
            time.sleep(0.05)
            self.assertTrue(f.interrupt())
            self.assertEqual(f.result(timeout=30), "caught")


@unittest.skipIf(IN_SUB, "pools are made from the main interpreter here")
class ActorConstructor(unittest.TestCase):
    def test_calls_queued_behind_a_failed_constructor_get_its_exception(self):
        with isola.Pool(1) as p:
            a = p.spawn(h.Broken)
            fs = [a.get(), a.get()]
            for f in fs:
                with self.assertRaises(RuntimeError) as cm:
                    f.result(timeout=30)
                self.assertEqual(str(cm.exception), "cannot start")
                self.assertIn("in __init__", getattr(cm.exception, "remote_traceback", "") or
                              "".join(getattr(cm.exception, "__notes__", [])))

    def test_a_killed_actor_says_so(self):
        # before: "the pool shut down before the task ran"
        with isola.Pool(1) as p:
            a = p.spawn(h.Counter, 0)
            a.add(1).result(timeout=30)
            a.kill()
            with self.assertRaises(isola.ChannelClosed) as cm:
                a.add(1).result(timeout=30)  # queued behind the kill, or refused
            self.assertIn("actor", str(cm.exception))

if __name__ == "__main__":
    unittest.main()
