"""isola.dask (issue 19): a real distributed.LocalCluster (two worker
processes over TCP on loopback) with isola as the executor of annotated
tasks, and isola.dask.get as a local scheduler.  Each scenario runs in a
subprocess with a hard timeout (dask_cases.py).  Runs where Dask is
importable: scripts/test puts build/dask-prefix on PYTHONPATH when
`scripts/bootstrap --with-dask` made it; skipped otherwise."""
import importlib.util
import json
import os
import subprocess
import sys
import unittest

IN_SUB = getattr(sys, "_isola_subinterpreter", False)
HAVE_DASK = not IN_SUB and all(importlib.util.find_spec(m) for m in ("dask", "distributed"))
CASES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dask_cases.py")


def run_case(name, timeout):
    r = subprocess.run([sys.executable, CASES, name], capture_output=True, text=True,
                       timeout=timeout)
    if r.returncode != 0 or not r.stdout.strip():
        raise AssertionError(f"{name} exited {r.returncode}:\n{r.stderr[-4000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


@unittest.skipUnless(HAVE_DASK, "needs dask and distributed (scripts/bootstrap --with-dask)")
class DaskCluster(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.out = run_case("cluster", timeout=240)

    def test_annotated_tasks_run_in_isola_interpreters(self):
        self.assertEqual(self.out["executors"], [True, True])  # registered on both workers
        self.assertTrue(self.out["isola_ids"])
        self.assertNotIn(0, self.out["isola_ids"])            # never the main interpreter
        self.assertEqual(self.out["threads_ids"], [0])        # unannotated: Dask's threads

    def test_results_equal_the_threads_executor(self):
        self.assertEqual(self.out["isola_results"], self.out["threads_results"])
        self.assertEqual(self.out["isola_results"], [x * x for x in range(20)])

    def test_exceptions_keep_their_type(self):
        self.assertEqual(self.out["exception"], ["TaskError", "bad 3"])

    def test_tasks_that_cannot_run_say_so(self):
        name, text = self.out["psutil"]
        self.assertEqual(name, "ImportError")
        self.assertIn("default executor", text)
        name, text = self.out["lock"]
        self.assertEqual(name, "TaskCannotRun")
        self.assertIn("could not be pickled", text)

    def test_cancelled_future_cancels_the_isola_task(self):
        # a 30 s CPU loop: only an interrupt ends it this soon
        self.assertEqual(self.out["cancel_busy_after"], 0)
        self.assertLess(self.out["cancel_seconds"], 10)

    def test_worker_closed_with_tasks_in_flight_loses_none(self):
        self.assertEqual(self.out["after_close"], [16, True])
        self.assertEqual(self.out["after_close_errors"], [])


@unittest.skipUnless(HAVE_DASK, "needs dask and distributed (scripts/bootstrap --with-dask)")
class DaskPreload(unittest.TestCase):
    def test_preload_adds_the_executor(self):
        out = run_case("preload", timeout=120)
        self.assertNotIn(0, out["ids"])
        self.assertEqual(out["results"], [x * x for x in range(6)])


@unittest.skipUnless(HAVE_DASK, "needs dask (scripts/bootstrap --with-dask)")
class DaskLocalScheduler(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.out = run_case("local", timeout=120)

    def test_bag(self):
        a, b = self.out["bag"]
        self.assertEqual(a, b)
        self.assertNotIn(0, self.out["bag_ids"])

    def test_delayed(self):
        self.assertEqual(self.out["delayed"], [9, 9])
        self.assertEqual(self.out["config"], 42)

    def test_exception_type(self):
        self.assertEqual(self.out["exception"], ["TaskError", "bad 1"])

    def test_the_callers_pool(self):
        self.assertEqual(self.out["own_pool"], [9] * 20)
        self.assertLessEqual(self.out["own_pool_threads"], 0)
        self.assertEqual(self.out["own_pool_after"], 3)


if __name__ == "__main__":
    unittest.main()
