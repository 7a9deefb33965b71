"""Main-interpreter exports (Pool(exports=...), isola.host.name(...)) and
the C host functions' demo.  Cases that could hang (interrupts, an
export that waits on its own pool) run in a child process with a hard
timeout."""
import os
import subprocess
import sys
import threading
import unittest

import isola
from child_helpers import run_child
import hostcall_helpers as hh

IN_SUB = getattr(sys, "_isola_subinterpreter", False)
HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.environ.get("ISOLA_BUILD_DIR")

EXPORTS = {"add": hh.add, "fail": hh.fail, "unsendable": hh.unsendable, "echo": hh.echo,
           "where": hh.where if sys.version_info >= (3, 13) else hh.where_312}


class Exports(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pool = isola.Pool(2, exports=EXPORTS)

    @classmethod
    def tearDownClass(cls):
        cls.pool.shutdown()

    def test_call_with_args_and_kwargs(self):
        del hh.calls[:]
        self.assertEqual(self.pool.submit(hh.call, "add", 40, 2).result(), 42)
        self.assertEqual(self.pool.submit(hh.call, "add", 1, b=2).result(), 3)
        self.assertEqual(self.pool.submit(hh.call, "add", "a", "b").result(), "ab")
        self.assertEqual(hh.calls, [(40, 2), (1, 2), ("a", "b")],
                         "the calls ran here, in the main interpreter")

    def test_values_travel_through_the_codec(self):
        v = {"k": [1, 2.5, None, (3, "x")], "b": b"\x00" * 10, "s": {1, 2}}
        self.assertEqual(self.pool.submit(hh.call, "echo", v).result(), v)

    def test_runs_on_threads_of_its_own_in_the_main_interpreter(self):
        r = self.pool.submit(hh.call, "where").result()
        if sys.version_info >= (3, 13):
            import _interpreters
            self.assertEqual(r[0], _interpreters.get_current()[0])  # the pool's maker
            self.assertTrue(r[1].startswith("isola-export-"), r)
        else:
            self.assertTrue(r[0].startswith("isola-export-"), r)

    def test_exceptions_are_rebuilt_as_their_class(self):
        r = self.pool.submit(hh.call_catching, "fail", "value", "bad").result()
        self.assertEqual(r[:3], ("ValueError", "builtins", "bad"))
        r = self.pool.submit(hh.call_catching, "fail", "key", "k").result()
        self.assertEqual(r[0], "KeyError")
        r = self.pool.submit(hh.call_catching, "fail", "mine", "boom").result()
        self.assertEqual(r, ("ExportError", "hostcall_helpers", "('boom', 7)", ("boom", 7)))
        with self.assertRaises(hh.ExportError):  # and on to the caller of the task
            self.pool.submit(hh.call, "fail", "mine", "x").result()

    def test_a_result_that_cannot_travel_is_a_type_error(self):
        r = self.pool.submit(hh.call_catching, "unsendable").result()
        self.assertEqual(r[0], "TypeError")
        self.assertIn("cannot be sent back", r[2])

    def test_unknown_names(self):
        r = self.pool.submit(hh.call_catching, "nope").result()
        self.assertEqual(r[0], "AttributeError")
        self.assertIn("exports no 'nope'", r[2])
        self.assertEqual(self.pool.submit(hh.host_dir).result(), sorted(EXPORTS))

    def test_many_calls_from_every_worker(self):
        fs = [self.pool.submit(hh.call_many, 200) for _ in range(6)]
        for f in fs:
            self.assertEqual(f.result(), list(range(1, 201)))


class Threads(unittest.TestCase):
    def test_two_workers_calls_overlap_on_two_export_threads(self):
        hh.meeting.reset()
        with isola.Pool(2, exports={"meet": hh.meet}, export_threads=2) as pool:
            fs = [pool.submit(hh.call, "meet") for _ in range(2)]
            self.assertEqual([f.result(60) for f in fs], ["met", "met"])

    def test_no_pickle_pool(self):
        with isola.Pool(1, exports={"echo": hh.echo, "make": hh.make_opaque},
                        allow_pickle=False) as pool:
            r = pool.submit(hh.call_with_opaque, "echo").result()
            self.assertEqual(r[0], "TypeError", r)
            r = pool.submit(hh.call_catching, "make", 1).result()
            self.assertEqual(r[0], "TypeError", r)
            self.assertIn("cannot be sent back", r[2])
            self.assertEqual(pool.submit(hh.call, "echo", [1, "x"]).result(), [1, "x"])


class Misuse(unittest.TestCase):
    def test_bad_exports(self):
        with self.assertRaises(TypeError):
            isola.Pool(1, exports=[hh.add])
        with self.assertRaises(ValueError):
            isola.Pool(1, exports={"not a name": hh.add})
        with self.assertRaises(ValueError):
            isola.Pool(1, exports={"_private": hh.add})
        with self.assertRaises(TypeError):
            isola.Pool(1, exports={"x": 3})
        with self.assertRaises(ValueError):
            isola.Pool(1, exports={"x": hh.add}, export_threads=0)

    def test_host_without_exports(self):
        with isola.Pool(1) as pool:
            r = pool.submit(hh.call_catching, "add", 1).result()
        self.assertEqual(r[0], "RuntimeError")
        self.assertIn("Pool(exports=", r[2])
        with self.assertRaises(RuntimeError):
            isola.host.add(1)  # the main interpreter is not a worker




@unittest.skipIf(IN_SUB, "child processes are started from the main interpreter")
class NoHangs(unittest.TestCase):
    def test_export_that_submits_to_its_own_pool_and_waits(self):
        # Every worker waits on an export that waits on tasks of the same
        # pool: the waiting workers run those tasks themselves.
        rc, out, err = run_child("""
            import isola, hostcall_helpers as hh
            def fan(n):
                return sum(pool.map(hh.square, range(n), chunksize=1))
            with isola.Pool(2, exports={"fan": fan}) as pool:
                fs = [pool.submit(hh.call, "fan", 20) for _ in range(8)]
                print([f.result(timeout=30) for f in fs])
        """)
        self.assertIsNotNone(rc, "hung: the pool deadlocked\n" + err)
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.strip(), str([2470] * 8))

    def test_a_worker_blocked_in_an_export_is_interruptible(self):
        rc, out, err = run_child("""
            import time, isola, hostcall_helpers as hh
            with isola.Pool(2, exports={"block": hh.block}) as pool:
                # timeout: the task's own
                t = time.monotonic()
                f = pool.apply_async(hh.call, ("block",), timeout=0.3)
                try:
                    f.result(10)
                except TimeoutError:
                    print("timeout", time.monotonic() - t < 8)
                # cancel of a running task
                f = pool.submit(hh.call, "block")
                while not f.running():
                    time.sleep(0.01)
                time.sleep(0.1)
                f.interrupt()
                try:
                    f.result(10)
                except BaseException as e:
                    print("cancel", type(e).__name__)
                # the worker is free again
                print("free", pool.submit(hh.square, 3).result(10))
                f = pool.submit(hh.call, "block")
                while not f.running():
                    time.sleep(0.01)
                time.sleep(0.1)
                t = time.monotonic()
                pool.shutdown(interrupt=True)
                print("shutdown", time.monotonic() - t < 8)
            hh.release.set()
        """)
        self.assertIsNotNone(rc, "hung\n" + err)
        self.assertEqual(rc, 0, err)
        lines = out.split("\n")
        self.assertEqual(lines[0], "timeout True", out + err)
        self.assertIn(lines[1], ("cancel Cancelled", "cancel CancelledError"), out + err)
        self.assertEqual(lines[2:4], ["free 9", "shutdown True"], out + err)

    def test_interrupts_of_nested_and_waiting_tasks_stay_apart(self):
        # One worker: what an export submits runs nested in the waiting task.
        rc, out, err = run_child("""
            import time, isola, hostcall_helpers as hh
            nested = []
            def run_nested(seconds, timeout):
                f = pool.apply_async(hh.spin, (seconds,), timeout=timeout)
                nested.append(f)
                try:
                    return f.result(30)
                except TimeoutError:
                    return "nested timed out"
            with isola.Pool(1, exports={"run_nested": run_nested}) as pool:
                # the nested task's timeout ends it, not the waiting task
                print(pool.submit(hh.call, "run_nested", 5, 0.2).result(30))
                # a cancel of the waiting task while the nested one runs:
                # the nested one finishes, then the waiting one is cancelled
                f = pool.submit(hh.call, "run_nested", 0.6, None)
                while not nested[1:]:
                    time.sleep(0.01)
                time.sleep(0.1)
                f.interrupt()
                try:
                    f.result(30)
                except BaseException as e:
                    print("outer", type(e).__name__)
                print("nested", nested[1].result(30))
                print("after", pool.submit(hh.square, 4).result(30))
        """)
        self.assertIsNotNone(rc, "hung\n" + err)
        self.assertEqual(rc, 0, err)
        lines = out.split("\n")
        self.assertEqual(lines[0], "nested timed out", out + err)
        self.assertIn(lines[1], ("outer Cancelled", "outer CancelledError"), out + err)
        self.assertEqual(lines[2:4], ["nested 0.6", "after 16"], out + err)

    def test_exports_outlive_a_shutdown_without_wait_and_end_after_the_join(self):
        rc, out, err = run_child("""
            import gc, threading, isola, hostcall_helpers as hh
            pool = isola.Pool(1, exports={"add": hh.add})
            f = pool.submit(hh.sleep_then_call, 0.3, "add", 1, 2)
            del pool  # a stop request: its task is interrupted
            gc.collect()
            try:
                print("dropped", f.result(30))
            except BaseException as e:
                print("dropped", type(e).__name__)
            pool = isola.Pool(1, exports={"add": hh.add})
            f = pool.submit(hh.sleep_then_call, 0.3, "add", 3, 4)
            pool.shutdown(wait=False)
            print("no wait", f.result(30))
            for t in threading.enumerate():  # the export threads end after the join
                if t.name.startswith("isola-export"):
                    t.join(30)
            print("threads", sum(t.name.startswith("isola-export")
                                 for t in threading.enumerate()))
        """)
        self.assertIsNotNone(rc, "hung\n" + err)
        self.assertEqual(rc, 0, err)
        lines = out.split("\n")
        self.assertIn(lines[0], ("dropped CancelledError", "dropped Cancelled", "dropped 3"),
                      out + err)
        self.assertEqual(lines[1:3], ["no wait 7", "threads 0"], out + err)

    def test_ctrl_c_while_a_worker_waits_on_an_export(self):
        rc, out, err = run_child("""
            import os, signal, threading, time, isola, hostcall_helpers as hh
            signal.signal(signal.SIGINT, signal.default_int_handler)
            threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
            try:
                with isola.Pool(1, exports={"block": hh.block}) as pool:
                    pool.submit(hh.call, "block").result()
            except KeyboardInterrupt:
                print("interrupted")
            hh.release.set()
        """)
        self.assertIsNotNone(rc, "hung\n" + err)
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.strip(), "interrupted")


@unittest.skipIf(IN_SUB, "child processes are started from the main interpreter")
class ReadmeExample(unittest.TestCase):
    def test_the_readme_example_runs_as_written(self):
        import re
        import tempfile
        readme = os.path.join(HERE, "..", "..", "README.md")
        with open(readme, encoding="utf-8") as f:
            text = f.read()
        section = text.split("### Calling the main interpreter from workers", 1)[1]
        code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
        with tempfile.TemporaryDirectory() as d:
            script = os.path.join(d, "example.py")
            with open(script, "w") as f:
                f.write(code)
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
            r = subprocess.run([sys.executable, script], capture_output=True, text=True,
                               timeout=120, env=env, cwd=d)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "3.5\nno price for 'kiwi'\n")


@unittest.skipIf(IN_SUB or not BUILD, "needs ISOLA_BUILD_DIR and subprocesses")
class CDemo(unittest.TestCase):
    def test_host_kv(self):
        exe = os.path.join(BUILD, "demos", "host_kv")
        if not os.path.exists(exe):
            self.skipTest("demos not built")
        r = subprocess.run([exe], capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("consistent: nothing sold twice", r.stdout)


if __name__ == "__main__":
    unittest.main()
