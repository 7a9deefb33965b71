"""A submitted task that fails after its Future was dropped is reported
on stderr (the "isola" logger), so a caller waiting on a channel that
task was to fill does not wait in silence (issue #31.1)."""
import unittest

from script_helpers import IN_SUB, run_script

DROPPED = """
import isola

def produce(ch):
    ch.send(1)
    raise RuntimeError("producer broke")

if __name__ == "__main__":
    with isola.Pool(2) as pool:
        ch = isola.Channel(64)
        pool.submit(produce, ch)          # the Future is dropped at once
        print(ch.recv(timeout=30), flush=True)
        try:
            ch.recv(timeout=2)            # the producer is dead: only the report tells
        except TimeoutError:
            print("timed out")
"""

DROPPED_AFTER_FAILING = """
import time, isola

def fail():
    raise KeyError("gone before anyone looked")

if __name__ == "__main__":
    with isola.Pool(1) as pool:
        f = pool.submit(fail)
        while not f._cfut.state() >= isola._FUTURE_DONE:
            time.sleep(0.01)
        del f                             # failed, never looked at
        time.sleep(1)
"""

KEPT = """
import isola

def fail():
    raise KeyError("handled by the caller")

if __name__ == "__main__":
    with isola.Pool(1) as pool:
        f = pool.submit(fail)
        try:
            f.result()
        except KeyError:
            print("caught")
        del f
        g = pool.submit(abs, -1)          # succeeded, dropped: nothing to say
        del g
        h = pool.submit(fail)
        h.add_done_callback(lambda fut: None)  # a listener reads it
        del h
        dep = pool.submit(abs, pool.submit(fail))  # an input: its error goes to dep
        try:
            dep.result()
        except isola.InputFailed as e:
            print("caught" if isinstance(e.__cause__, KeyError) else e)
"""


@unittest.skipIf(IN_SUB, "runs scripts in subprocesses")
class DroppedFuture(unittest.TestCase):
    def test_failure_of_a_dropped_future_is_reported(self):
        r = run_script(DROPPED, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.split(), ["1", "timed", "out"])
        self.assertIn("isola: a task failed and its Future was dropped", r.stderr)
        self.assertIn('RuntimeError: producer broke', r.stderr)
        self.assertIn('in produce', r.stderr)

    def test_failure_before_the_future_was_dropped_is_reported(self):
        r = run_script(DROPPED_AFTER_FAILING)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("isola: a task failed and its Future was dropped", r.stderr)
        self.assertIn("gone before anyone looked", r.stderr)

    def test_futures_someone_looked_at_are_not_reported(self):
        r = run_script(KEPT)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.split(), ["caught", "caught"])
        self.assertNotIn("Future was dropped", r.stderr)


if __name__ == "__main__":
    unittest.main()
