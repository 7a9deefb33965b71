"""Pools and executors that are dropped, or left running at exit (issue 30,
items 2, 3 and 6; issue 37): each case runs in a child process with a
hard timeout (child_helpers.run_child), so a hang fails instead of stalling."""
import os
import signal
import sys
import time
import unittest

from child_helpers import run_child

IN_SUB = getattr(sys, "_isola_subinterpreter", False)




@unittest.skipIf(IN_SUB, "pools and child processes are made from the main interpreter here")
class Dropped(unittest.TestCase):
    def test_a_dropped_executor_runs_what_was_submitted(self):
        # issue 30.6: dropping an isola.Executor cancelled its work
        rc, out, err = run_child("""
            import isola, os, time
            def submit_and_drop():
                ex = isola.Executor(2)
                for i in range(4):  # one write(2) a line: two workers print at once
                    ex.submit(os.write, 1, f"ran {i}\\n".encode())
                ex.submit(time.sleep, 0.3)
            submit_and_drop()
            print("dropped", flush=True)
            """)
        self.assertEqual(rc, 0, err)
        self.assertEqual(sorted(out.split("\n")[:5]),
                         ["dropped", "ran 0", "ran 1", "ran 2", "ran 3"], err)
        self.assertNotIn("Cancelled", err)

    def test_dropping_a_pool_does_not_wait_for_a_task_in_a_c_call(self):
        # issue 30.3: the dropping thread waited until time.sleep returned
        for how in ("del p", "p = None"):
            rc, out, err = run_child(f"""
                import isola, time
                p = isola.Pool(1, stop_grace=0.5)
                p.submit(time.sleep, 3600)
                time.sleep(0.2)
                {how}
                print("dropped", flush=True)
                """)
            self.assertEqual(out.strip(), "dropped", f"{how}: {err}")
            self.assertIsNotNone(rc, f"{how}: the program did not end: {err}")
            self.assertIn("abandoned: worker 0: time:sleep", err)

    def test_ctrl_c_after_dropping_a_pool_stuck_in_a_c_call(self):
        # issue 30.3: three SIGINTs did nothing while the drop waited
        rc, out, err = run_child("""
            import isola, time
            p = isola.Pool(1, stop_grace=0.5)
            p.submit(time.sleep, 3600)
            time.sleep(0.2)
            print("ready", flush=True)
            del p
            time.sleep(3600)
            """, send_signal=signal.SIGINT, after=0.5)
        self.assertIsNotNone(rc, f"SIGINT was ignored: {err}")
        self.assertEqual(rc, -signal.SIGINT, err)
        self.assertIn("KeyboardInterrupt", err)

    def test_a_dropped_executor_stuck_in_a_c_call_waits_at_exit_until_ctrl_c(self):
        # issue 30.3 and 30.6 together: the drop returns at once, exit
        # waits for the submitted work (ThreadPoolExecutor's contract) and
        # Ctrl-C then ends the program after the grace
        rc, out, err = run_child("""
            import isola, time
            ex = isola.Executor(1, stop_grace=0.5)
            f = ex.submit(time.sleep, 3600)
            while not f.running():
                time.sleep(0.01)
            del ex
            print("ready", flush=True)
            """, send_signal=signal.SIGINT, after=0.5)
        self.assertEqual(rc, -signal.SIGINT, err)
        self.assertIn("abandoned: worker 0: time:sleep", err)

    def test_ctrl_c_at_exit_after_shutdown_without_wait_and_drop(self):
        # issue 30.2: CPython finalized with the worker's interpreter still
        # running (SIGSEGV in about 1 run of 3), or, with the task stuck in
        # a C call, Ctrl-C was ignored and the program hung
        cases = [("time.sleep, 3600", -signal.SIGINT)] + \
                [("pool_helpers.spin_forever", 0)] * 3
        for task, want in cases:
            rc, out, err = run_child(f"""
                import isola, time, pool_helpers
                p = isola.Pool(1, stop_grace=0.5)
                f = p.submit({task})
                time.sleep(0.2)
                p.shutdown(wait=False)
                del p
                print("ready", flush=True)
                """, send_signal=signal.SIGINT, after=0.5)
            self.assertIsNotNone(rc, f"{task}: Ctrl-C at exit was ignored: {err}")
            self.assertEqual(rc, want, f"{task}: {err}")


# A recorder around a Pool's C pool: every wait a stop makes, in seconds
# (None: unbounded), printed at exit.  The stop timing is checked on what
# was asked of the C pool, not on the wall clock.
RECORDER = """
import atexit, isola, time
class Rec:
    def __init__(self, c):
        self.c, self.waits = c, []
    def shutdown(self, how, wait, timeout=None):
        if wait:
            self.waits.append(timeout)
        return self.c.shutdown(how, wait, timeout)
    def __getattr__(self, name):
        return getattr(self.c, name)
def recorded(pool):
    pool._c = Rec(pool._c)
    atexit.register(lambda: print("waits", pool._c.waits, flush=True))
    return pool
"""


@unittest.skipIf(IN_SUB, "pools and child processes are made from the main interpreter here")
class StopTiming(unittest.TestCase):
    # issue 30, "contracts that surprise": stops took twice what was asked
    def test_ctrl_c_at_exit_waits_one_grace(self):
        rc, out, err = run_child(RECORDER + """
p = recorded(isola.Pool(1, stop_grace=0.5))
p.submit(time.sleep, 3600)
time.sleep(0.2)
print("ready", flush=True)
""", send_signal=signal.SIGINT, after=0.5)
        self.assertEqual(rc, -signal.SIGINT, err)
        waits = eval(out.split("waits", 1)[1])
        # the wait for the work (Ctrl-C ends it), then the grace, then a look
        self.assertEqual(waits[0], None, out)
        self.assertEqual(sum(w for w in waits[1:] if w), 0.5, out)

    def test_an_uncaught_ctrl_c_stops_running_work_at_exit(self):
        # Ctrl-C that ended the script (just before exit) is a stop request:
        # before, exit then waited for the running task until a second one
        rc, out, err = run_child("""
            import isola, time, pool_helpers
            p = isola.Pool(1, stop_grace=0.5)
            f = p.submit(pool_helpers.spin_forever)
            while not f.running():
                time.sleep(0.01)
            raise KeyboardInterrupt
            """)
        self.assertIsNotNone(rc, f"exit waited for the running task: {err}")
        self.assertIn(rc, (1, -signal.SIGINT), err)  # 3.12/3.13 with -c: 1

    def test_shutdown_timeout_bounds_the_whole_stop(self):
        rc, out, err = run_child(RECORDER + """
p = recorded(isola.Pool(1, stop_grace=1))
p.submit(time.sleep, 3600)
time.sleep(0.2)
p.shutdown(timeout=0.4)
""")
        self.assertEqual(rc, 0, err)
        waits = eval(out.split("waits", 1)[1])
        self.assertNotIn(None, waits, out)
        self.assertAlmostEqual(sum(waits), 0.4, delta=0.05, msg=out)  # in shutdown and at exit
        self.assertIn("abandoned: worker 0: time:sleep", err)


@unittest.skipIf(IN_SUB, "pools and child processes are made from the main interpreter here")
class StartsOnDemand(unittest.TestCase):
    # issue 37: Executor() started every worker and ran every initializer
    def test_an_unused_executor_starts_nothing(self):
        rc, out, err = run_child("""
            import os, threading, isola, stop_helpers
            r, w = os.pipe()
            before = threading.active_count()
            ex = isola.Executor(2, initializer=os.write, initargs=(w, b"init"))
            started = threading.active_count() - before
            ex.shutdown(wait=True)
            os.write(w, b".")
            print(started, os.read(r, 100))
            """)
        self.assertEqual((rc, out.strip()), (0, "0 b'.'"), err)

    def test_a_failing_initializer_breaks_the_executor_at_the_first_submit(self):
        rc, out, err = run_child("""
            import isola
            ex = isola.Executor(1, initializer=int, initargs=("x",))
            print("made", flush=True)
            for _ in range(2):
                try:
                    ex.submit(int, 1)
                except isola.BrokenPool as e:
                    print("broken", "invalid literal" in str(e), flush=True)
            ex.shutdown()
            """)
        self.assertEqual((rc, out.split("\n")[:3]), (0, ["made", "broken True", "broken True"]),
                         err)
        self.assertIn("Exception in initializer", err)


if __name__ == "__main__":
    unittest.main()
