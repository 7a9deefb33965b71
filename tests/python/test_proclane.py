"""The process lane (issue #33): process workers in the same pool for code
that sub-interpreters refuse.  Uses tests/singlephase_ext.c (built by the
test suite) as the refusing extension; tests with real packages are in
test_proclane_packages.py."""
import concurrent.futures as cf
import os
import signal
import subprocess
import sys
import textwrap
import time
import unittest
import warnings

import isola

import proc_helpers as h
from child_helpers import run_child

IN_SUB = getattr(sys, "_isola_subinterpreter", False)
HANG = 60  # seconds: a hang limit, never a speed requirement

try:
    import importlib.util
    HAVE_EXT = importlib.util.find_spec("singlephase_ext") is not None
except ImportError:
    HAVE_EXT = False



def child_env():
    """The environment for a child python that imports this folder's
    helpers: the tests' sys.path as PYTHONPATH (scripts/test puts only the
    build on PYTHONPATH; run.py's folder is on sys.path by being run)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return env

def let_segfaults_kill():
    # Under AddressSanitizer (scripts/test-sanitizers preloads it, and
    # process workers inherit the environment) a SIGSEGV becomes ASan's
    # report and an abort; the crash tests want the signal itself.
    if "libasan" in os.environ.get("LD_PRELOAD", "") and \
            "handle_segv=0" not in os.environ.get("ASAN_OPTIONS", ""):
        os.environ["ASAN_OPTIONS"] = os.environ.get("ASAN_OPTIONS", "") + ":handle_segv=0"


def lane_children(parent):
    """Live processes running isola._proc_worker for parent (argv's last
    item is the parent's pid), with their state letter."""
    found = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{d}/stat") as f:
                state = f.read().rpartition(")")[2].split()[0]
        except OSError:
            continue
        argv = [a for a in argv if a]
        if b"isola._proc_worker" in argv and argv[-1] == str(parent).encode():
            found[int(d)] = state
    return found


def wait_until(cond, limit=HANG):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


@unittest.skipIf(IN_SUB, "starts child processes from the main interpreter")
class ProcessLane(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        let_segfaults_kill()
        cls.pool = isola.Pool(1, processes=2, place={"proc_helpers": "process"})

    @classmethod
    def tearDownClass(cls):
        cls.pool.shutdown(interrupt=True)

    def test_tasks_run_in_child_processes_of_this_one(self):
        pids = {self.pool.submit(h.pid).result(HANG) for _ in range(20)}
        self.assertNotIn(os.getpid(), pids)
        self.assertEqual(self.pool.submit(h.parent_pid).result(HANG), os.getpid())

    def test_results_and_exceptions_keep_their_class(self):
        self.assertEqual(self.pool.submit(h.add, 1, 2, c=3).result(HANG), 6)
        with self.assertRaises(h.CustomError) as cm:
            self.pool.submit(h.fail_custom, "boom").result(HANG)
        self.assertEqual(str(cm.exception), "boom")
        self.assertIn("fail_custom", cm.exception.remote_traceback)
        with self.assertRaises(ValueError):
            self.pool.submit(h.fail_value, "bad").result(HANG)

    def test_large_values_stream_through_the_ring(self):
        data = self.pool.submit(h.big, 5 << 20).result(HANG)  # 5 MiB, the ring is 1
        self.assertEqual(len(data), 5 << 20)
        self.assertEqual(bytes(data[:3]), b"xxx")
        arg = bytes(range(256)) * 20000
        self.assertEqual(bytes(self.pool.submit(h.echo, arg).result(HANG)), arg)

    def test_map_in_processes(self):
        self.assertEqual(list(self.pool.map(h.square, range(100), chunksize=7)),
                         [i * i for i in range(100)])
        self.assertEqual(sorted(self.pool.imap_unordered(h.square, range(10))),
                         [i * i for i in range(10)])

    def test_wait_and_as_completed_work(self):
        fs = [self.pool.submit(h.square, i) for i in range(10)]
        done, _ = cf.wait(fs, timeout=HANG)
        self.assertEqual(len(done), 10)
        self.assertEqual(sorted(f.result() for f in cf.as_completed(fs)),
                         [i * i for i in range(10)])

    def test_placement_per_call_and_by_module(self):
        self.assertEqual(self.pool.apply_async(os.getpid, lane="interpreter").result(HANG), os.getpid())
        self.assertNotEqual(self.pool.apply_async(os.getpid, lane="process").result(HANG), os.getpid())
        with self.assertRaises(ValueError):
            self.pool.apply_async(os.getpid, lane="elsewhere")

    def test_cancel_a_queued_task(self):
        blockers = [self.pool.submit(h.sleep, 0.3) for _ in range(2)]
        queued = self.pool.submit(h.square, 3)
        self.assertTrue(queued.cancel())
        self.assertTrue(queued.cancelled())
        self.assertEqual([f.result(HANG) for f in blockers], [0.3, 0.3])
        with self.assertRaises(cf.CancelledError):
            queued.result(HANG)

    def test_interrupt_a_running_task(self):
        f = self.pool.submit(h.spin_forever)
        self.assertTrue(wait_until(f.running))
        self.assertTrue(f.interrupt())
        with self.assertRaises(cf.CancelledError):
            f.result(HANG)
        g = self.pool.submit(h.catch_cancel)
        self.assertTrue(wait_until(g.running))
        time.sleep(0.05)
        g.interrupt()
        self.assertEqual(g.result(HANG), "caught")
        self.assertEqual(self.pool.submit(h.square, 5).result(HANG), 25)

    def test_per_task_timeout(self):
        with self.assertRaises(TimeoutError):
            self.pool.apply_async(h.spin_forever, timeout=0.2).result(HANG)
        with self.assertRaises(TimeoutError):
            self.pool.apply_async(h.sleep, (30,), timeout=0.2).result(HANG)
        self.assertEqual(self.pool.submit(h.square, 6).result(HANG), 36)

    def test_a_crash_fails_only_its_task_and_names_the_signal(self):
        before = sum(w["crashes"] for w in self.pool.stats()["processes"]["workers"])
        with self.assertRaises(isola.WorkerCrashed) as cm:
            self.pool.submit(h.segfault).result(HANG)
        self.assertIn("SIGSEGV", str(cm.exception))
        self.assertIsInstance(cm.exception, cf.BrokenExecutor)
        with self.assertRaises(isola.WorkerCrashed) as cm:
            self.pool.submit(h.exit_now, 7).result(HANG)
        self.assertIn("exited with status 7", str(cm.exception))
        self.assertEqual(self.pool.submit(h.square, 9).result(HANG), 81)
        after = sum(w["crashes"] for w in self.pool.stats()["processes"]["workers"])
        self.assertEqual(after - before, 2)
        # Replaced and reaped: no zombie among this pool's children.
        self.assertTrue(wait_until(lambda: "Z" not in lane_children(os.getpid()).values()))

    def test_channels_cannot_go_to_a_process(self):
        with self.assertRaises(TypeError):
            self.pool.submit(h.echo, isola.Channel(1))

    def test_stats_say_what_runs_where(self):
        self.pool.submit(h.square, 2).result(HANG)
        st = self.pool.stats()
        self.assertEqual(len(st["processes"]["workers"]), 2)
        self.assertTrue(all(w["pid"] > 0 for w in st["processes"]["workers"]))
        self.assertEqual(st["placement"]["proc_helpers:square"]["lane"], "process")


@unittest.skipIf(IN_SUB, "starts child processes from the main interpreter")
@unittest.skipUnless(HAVE_EXT, "singlephase_ext is built by the test suite (PYTHONPATH)")
class AutomaticPlacement(unittest.TestCase):
    def test_a_refused_import_moves_the_target_to_processes_once(self):
        with isola.Pool(1) as pool:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                value, pid = pool.submit(h.uses_singlephase, 21).result(HANG)
                self.assertEqual(value, 42)
                self.assertNotEqual(pid, os.getpid())
                # From now on it is placed there: no warning, same lane.
                results = [f.result(HANG) for f in [pool.submit(h.uses_singlephase, i)
                                                    for i in range(5)]]
                self.assertEqual([r[0] for r in results], [0, 2, 4, 6, 8])
            msgs = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
            self.assertEqual(len(msgs), 1, msgs)
            self.assertIn("singlephase_ext", msgs[0])
            self.assertIn("proc_helpers:uses_singlephase", msgs[0])
            st = pool.stats()
            self.assertEqual(st["refused"], {"singlephase_ext": "proc_helpers:uses_singlephase"})
            self.assertIn("singlephase_ext", st["placement"]["proc_helpers:uses_singlephase"]["why"])

    def test_a_refusal_deeper_under_the_import_and_in_a_map(self):
        with isola.Pool(1) as pool:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.assertEqual(list(pool.map(h.uses_nested, range(6))),
                                 [3 * i for i in range(6)])
                f = pool.submit(h.uses_nested, 5)
                cf.wait([f], timeout=HANG)  # completed by the dispatcher
                self.assertEqual(f.result(), 15)

    def test_turned_off_the_error_stands(self):
        with isola.Pool(1, auto_place=False) as pool:
            with self.assertRaises(ImportError) as cm:
                pool.submit(h.uses_singlephase, 1).result(HANG)
            self.assertIn("does not support loading in subinterpreters", str(cm.exception))
        with isola.Pool(1, processes=0) as pool:
            with self.assertRaises(ImportError):
                pool.submit(h.uses_singlephase, 1).result(HANG)

    def test_executor_places_as_the_pool_does(self):
        # isola.Executor passes processes=, place= and auto_place= to its
        # pool: a refused callable moves to processes by itself (one
        # warning), in submit and in map
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with isola.Executor(1) as ex:
                value, pid = ex.submit(h.uses_singlephase, 21).result(HANG)
                self.assertEqual(value, 42)
                self.assertNotEqual(pid, os.getpid())
                self.assertEqual([r[0] for r in ex.map(h.uses_singlephase, range(4),
                                                       timeout=HANG)], [0, 2, 4, 6])
        msgs = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
        self.assertEqual(len(msgs), 1, msgs)
        self.assertIn("singlephase_ext", msgs[0])
        with isola.Executor(1, processes=1, place={"proc_helpers": "process"}) as ex:
            self.assertNotEqual(ex.submit(h.pid).result(HANG), os.getpid())
            self.assertEqual(ex._pool.stats()["placement"]["proc_helpers:pid"]["lane"],
                             "process")
        with isola.Executor(1, auto_place=False) as ex:
            with self.assertRaises(ImportError):
                ex.submit(h.uses_singlephase, 1).result(HANG)
        with isola.Executor(1, processes=0) as ex:
            with self.assertRaises(ImportError):
                ex.submit(h.uses_singlephase, 1).result(HANG)

    def test_refusal_check(self):
        exc = ImportError("module numpy._core._multiarray_umath does not support loading "
                          "in subinterpreters")
        self.assertEqual(isola._refused_module(exc), "numpy._core._multiarray_umath")
        outer = ImportError("numpy failed to import")
        outer.__cause__ = exc
        self.assertEqual(isola._refused_module(outer), "numpy._core._multiarray_umath")
        self.assertIsNone(isola._refused_module(ImportError("No module named 'x'")))
        self.assertIsNone(isola._refused_module(ValueError("x")))


@unittest.skipIf(IN_SUB, "starts child processes from the main interpreter")
class ProcessGraphs(unittest.TestCase):
    """Task graphs on the process lane: a process task waits for Futures of
    the pool (of either lane) inside the pool, and its child gets their
    encoded results."""

    @classmethod
    def setUpClass(cls):
        cls.pool = isola.Pool(2, processes=2)

    @classmethod
    def tearDownClass(cls):
        cls.pool.shutdown(interrupt=True)

    def interp(self, fn, *args, **kwargs):
        return self.pool.apply_async(fn, args, kwargs, lane="interpreter")

    def proc(self, fn, *args, **kwargs):
        return self.pool.apply_async(fn, args, kwargs, lane="process")

    def test_positional_and_keyword_inputs_take_their_places(self):
        a, c = self.interp(h.square, 3), self.proc(h.square, 4)
        out = self.proc(h.parts, a, 5, c=c, d=7).result(HANG)
        self.assertEqual(out[:4], (9, 5, 16, 7))
        self.assertNotEqual(out[4], os.getpid(), "ran in a process worker")
        self.assertEqual(self.proc(h.parts, 0, a).result(HANG)[:4], (0, 9, 0, 0))

    def test_a_chain_across_the_lanes(self):
        # interp -> process -> interp -> process, and a diamond.
        a = self.interp(h.where, 1)
        pid_a = a.result(HANG)[1]
        self.assertEqual(pid_a, os.getpid())
        v = self.interp(h.square, 2)
        b = self.proc(h.where, v, 10)
        c = self.interp(h.where, self.proc(h.square, b.result(HANG)[0]))
        d = self.proc(h.add, self.interp(h.square, c.result(HANG)[0]), b=self.proc(h.square, v))
        self.assertNotEqual(b.result(HANG)[1], os.getpid())
        self.assertEqual(c.result(HANG), (196, os.getpid()))
        self.assertEqual(d.result(HANG), 196 * 196 + 16)
        f = self.interp(h.square, 1)
        for i in range(40):
            f = (self.proc if i % 2 else self.interp)(h.add, f, 1)
        self.assertEqual(f.result(HANG), 41)
        leaves = [self.proc(h.square, i) for i in range(16)]
        while len(leaves) > 1:
            leaves = [(self.interp if k % 2 else self.proc)(h.add, leaves[k], leaves[k + 1])
                      for k in range(0, len(leaves), 2)]
        self.assertEqual(leaves[0].result(HANG), sum(i * i for i in range(16)))

    def test_no_thread_of_the_caller_waits(self):
        before = threading_count()
        blocker = self.interp(h.sleep, 0.3)
        deps = [self.proc(h.add, blocker, i) for i in range(20)]
        self.assertEqual(self.pool.stats()["processes"]["waiting"], 20)
        self.assertLessEqual(threading_count(), before)
        self.assertEqual([f.result(HANG) for f in deps], [0.3 + i for i in range(20)])
        self.assertEqual(self.pool.stats()["processes"]["waiting"], 0)

    def test_a_failed_input_is_input_failed_with_its_cause(self):
        for make in (self.interp, self.proc):
            bad = make(h.fail_custom, "missing")
            f = self.proc(h.add, 1, bad)
            with self.assertRaises(isola.InputFailed) as cm:
                f.result(HANG)
            self.assertIn("positional argument 1", str(cm.exception))
            self.assertEqual(cm.exception.input, 1)
            self.assertIsInstance(cm.exception.__cause__, h.CustomError)
            self.assertEqual(cm.exception.__cause__.args, ("missing",))
        # Through a chain of process tasks, and named as a keyword.
        mid = self.proc(h.add, self.interp(h.fail_value, "v"))
        end = self.proc(h.parts, 1, c=mid)
        with self.assertRaises(isola.InputFailed) as cm:
            end.result(HANG)
        self.assertIn("keyword argument 'c'", str(cm.exception))
        self.assertEqual(cm.exception.input, "c")
        self.assertIsInstance(cm.exception.__cause__, isola.InputFailed)
        self.assertIsInstance(cm.exception.__cause__.__cause__, ValueError)

    def test_cancelled_and_timed_out_inputs(self):
        slow = self.pool.apply_async(h.sleep, (30,), timeout=0.1, lane="process")
        with self.assertRaises(isola.InputFailed) as cm:
            self.proc(h.add, slow).result(HANG)
        self.assertIsInstance(cm.exception.__cause__, TimeoutError)
        blockers = [self.proc(h.sleep, 0.3) for _ in range(2)]
        queued = self.proc(h.square, 3)  # behind the blockers: still queued
        dep = self.proc(h.add, queued, 1)
        self.assertTrue(queued.cancel())
        with self.assertRaises(isola.InputFailed) as cm:
            dep.result(HANG)
        self.assertIsInstance(cm.exception.__cause__, cf.CancelledError)
        [f.result(HANG) for f in blockers]

    def test_cancel_a_waiting_task(self):
        blocker = self.interp(h.sleep, 0.3)
        waiting = self.proc(h.add, blocker, 1)
        kept = self.proc(h.add, blocker, 2)
        self.assertTrue(waiting.cancel())
        self.assertTrue(waiting.cancelled())
        self.assertEqual(kept.result(HANG), 2.3)
        with self.assertRaises(cf.CancelledError):
            waiting.result(HANG)

    def test_references_in_an_input_s_result(self):
        # Blobs (large bytes, isola.Buffer) come as bytes, frozen values as
        # their plain content; a channel fails the task with TypeError
        # naming the argument.
        got = self.proc(h.kinds, self.interp(h.share_blob, 100_000),
                        self.interp(h.big_bytes, 70_000), x=self.interp(h.frozen_value)).result(HANG)
        self.assertEqual(got, [("bytes", 100_000), ("bytes", 70_000), ("x", "dict", 2)])
        self.assertEqual(self.proc(h.plain, self.interp(h.frozen_value)).result(HANG),
                         {"k": [1, 2, (3, "x")], "n": {"deep": [b"z" * 10]}})
        with self.assertRaises(TypeError) as cm:
            self.proc(h.plain, 1, self.interp(h.wrapped_channel)).result(HANG)
        self.assertIn("positional argument 1", str(cm.exception))
        self.assertIn("isola.Channel", str(cm.exception))
        with self.assertRaises(TypeError) as cm:
            self.proc(h.plain, x=self.interp(h.a_channel)).result(HANG)
        self.assertIn("keyword argument 'x'", str(cm.exception))
        # A process task's big result goes on to an interpreter task.
        self.assertEqual(self.interp(len, self.proc(h.big, 3 << 20)).result(HANG), 3 << 20)

    def test_other_pools_and_plain_futures_are_refused(self):
        with isola.Pool(1, processes=1) as other:
            theirs = other.apply_async(h.square, (2,), lane="process")
            with self.assertRaisesRegex(ValueError, "another isola Pool"):
                self.proc(h.add, theirs)
            with self.assertRaisesRegex(ValueError, "another isola Pool"):
                self.interp(h.add, theirs)
        plain = cf.Future()
        plain.set_result(1)
        with self.assertRaisesRegex(TypeError, "not an isola Future"):
            self.proc(h.add, plain)


def threading_count():
    import threading
    return threading.active_count()


@unittest.skipIf(IN_SUB, "starts child processes from the main interpreter")
class ProcessGraphsShutdown(unittest.TestCase):
    def test_shutdown_without_cancel_runs_what_waits(self):
        rc, out, err = run_child("""
            import isola, proc_helpers as h
            p = isola.Pool(2, processes=2)
            f = p.apply_async(h.sleep, (0.2,), lane="interpreter")
            for i in range(60):
                f = p.apply_async(h.add, (f, 1), lane="process" if i % 3 else "interpreter")
            p.shutdown(wait=True)
            print(round(f.result(timeout=0), 3))
        """, timeout=120)
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.strip(), "60.2")

    def test_shutdown_with_cancel_cancels_what_waits(self):
        rc, out, err = run_child("""
            import concurrent.futures as cf, isola, proc_helpers as h
            from test_proclane import lane_children
            import os
            p = isola.Pool(2, processes=2)
            root = p.apply_async(h.sleep, (0.3,), lane="process")
            fs = [root]
            for i in range(1, 400):
                fs.append(p.apply_async(h.add, (fs[(i - 1) // 2], 1),
                                        lane="process" if i % 2 else "interpreter"))
            p.shutdown(wait=True, cancel_futures=True)
            done, pending = cf.wait(fs, timeout=60)
            print(len(done), len(pending), sum(f.cancelled() for f in fs),
                  len(lane_children(os.getpid())))
        """, timeout=120)
        self.assertEqual(rc, 0, err)
        done, pending, cancelled, children = map(int, out.split())
        self.assertEqual((done, pending, children), (400, 0, 0))
        self.assertGreater(cancelled, 300, "the waiting tasks were cancelled")

    def test_interrupting_shutdown_with_a_process_task_under_interpreter_tasks(self):
        # Interpreter tasks waiting on a process task that ignores its
        # interrupt: the shutdown still ends (the child is killed after the
        # grace) and every Future ends.
        rc, out, err = run_child("""
            import concurrent.futures as cf, time, isola, proc_helpers as h
            p = isola.Pool(1, processes=1, stop_grace=0.3)
            deaf = p.apply_async(h.deaf_sleep, (600,), lane="process")
            while not deaf.running():
                time.sleep(0.01)
            time.sleep(0.2)
            deps = [p.apply_async(h.add, (deaf, i), lane="interpreter") for i in range(5)]
            t0 = time.monotonic()
            p.shutdown(interrupt=True)
            done, pending = cf.wait([deaf] + deps, timeout=30)
            print(len(pending), time.monotonic() - t0 < 30)
        """, timeout=120)
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.split(), ["0", "True"])


@unittest.skipIf(IN_SUB, "starts child processes from the main interpreter")
@unittest.skipUnless(HAVE_EXT, "singlephase_ext is built by the test suite (PYTHONPATH)")
class GraphPlacement(unittest.TestCase):
    def test_a_refused_graph_task_moves_to_processes_with_its_inputs(self):
        with isola.Pool(2) as pool:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                x = pool.submit(h.square, 4)  # runs in an interpreter
                f = pool.submit(h.uses_singlephase, x)
                value, pid = f.result(HANG)
                self.assertEqual(value, 32)
                self.assertNotEqual(pid, os.getpid())
                # Placed now: the next graph task goes to processes at once,
                # and what depends on it runs in an interpreter again.
                g = pool.submit(h.uses_singlephase, pool.submit(h.square, 5))
                self.assertEqual(pool.submit(h.where, pool.submit(h.square, 1), 1).result(HANG),
                                 (2, os.getpid()))
                self.assertEqual(g.result(HANG)[0], 50)
            msgs = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
            self.assertEqual(len(msgs), 1, msgs)
            self.assertIn("proc_helpers:uses_singlephase", msgs[0])

    def test_an_input_s_refusal_is_not_the_dependent_s(self):
        # The dependent fails with InputFailed (its input was refused
        # before automatic placement moved it): that does not place the
        # dependent's target in processes.
        with isola.Pool(1) as pool:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                refused = pool.submit(h.uses_singlephase, 1)
                dep = pool.submit(h.square, refused)
                with self.assertRaises(isola.InputFailed):
                    dep.result(HANG)
                self.assertEqual(refused.result(HANG)[0], 2)  # moved, and ran
            self.assertNotIn("proc_helpers:square", pool.stats()["placement"])


CRASH_SCENARIO = """
import json, os, sys, time, isola, proc_helpers as h
sys.path.insert(0, os.path.dirname(h.__file__))
from test_proclane import lane_children
with isola.Pool(1, processes=2, place={"proc_helpers": "process"}) as pool:
    fs = [pool.submit(h.crash_some, i) for i in range(1000)]
    ok, crashed, wrong = 0, [], []
    for i, f in enumerate(fs):
        try:
            r = f.result(120)
            ok += r == i * i + 1
            if r != i * i + 1:
                wrong.append(i)
        except isola.WorkerCrashed as e:
            crashed.append((i, str(e)))
    after = pool.submit(h.square, 12).result(60)
    st = pool.stats()["processes"]["workers"]
print(json.dumps({"ok": ok, "wrong": wrong, "crashed": crashed, "after": after,
                  "crashes": sum(w["crashes"] for w in st),
                  "left": lane_children(os.getpid())}))
"""


@unittest.skipIf(IN_SUB, "starts child processes from the main interpreter")
class Crashes(unittest.TestCase):
    def test_1000_tasks_of_which_50_kill_their_worker(self):
        import json
        let_segfaults_kill()
        r = subprocess.run([sys.executable, "-c", CRASH_SCENARIO], capture_output=True,
                           text=True, timeout=300, env=child_env())
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        out = json.loads(r.stdout.strip().splitlines()[-1])
        self.assertEqual(out["wrong"], [])
        self.assertEqual(out["ok"], 950)
        crashed = dict((i, msg) for i, msg in out["crashed"])
        self.assertEqual(sorted(crashed), [i for i in range(1000) if i % 20 == 7])
        for i, msg in crashed.items():
            want = "SIGSEGV" if (i // 20) % 2 else "exited with status 3"
            self.assertIn(want, msg)
            self.assertIn("proc_helpers:crash_some", msg)
        self.assertEqual(out["crashes"], 50)
        self.assertEqual(out["after"], 144, "the pool still serves")
        self.assertEqual(out["left"], {}, "no zombie, no orphan after shutdown")


@unittest.skipIf(IN_SUB, "starts child processes from the main interpreter")
class Lifecycle(unittest.TestCase):
    def test_initializer_and_preload_reach_process_workers(self):
        with isola.Pool(1, processes=1, preload=["json"], initializer=h.set_mark,
                        initargs=("ready",)) as pool:
            self.assertEqual(pool.apply_async(h.initialized, lane="process").result(HANG), "ready")

    def test_a_failing_initializer_breaks_the_pool_at_once(self):
        with self.assertRaises(isola.BrokenPool) as cm:
            isola.Pool(1, processes=1, initializer=h.fail_value, initargs=("no setup",))
        self.assertIn("no setup", str(cm.exception))

    def test_shutdown_is_bounded_and_reaps_every_child(self):
        pool = isola.Pool(1, processes=2, stop_grace=0.5)
        f = pool.apply_async(h.sleep, (600,), lane="process")
        g = pool.apply_async(h.spin_forever, lane="process")
        self.assertTrue(wait_until(lambda: f.running() and g.running()))
        self.assertEqual(len(lane_children(os.getpid())), 2)
        t0 = time.monotonic()
        pool.shutdown(interrupt=True)
        self.assertLess(time.monotonic() - t0, HANG)
        self.assertTrue(f.cancelled() and g.cancelled())
        self.assertEqual(lane_children(os.getpid()), {}, "no child left, not even a zombie")

    def test_a_task_deaf_to_interrupts_is_killed_after_the_grace(self):
        with isola.Pool(1, processes=1, stop_grace=0.3) as pool:
            first = pool.apply_async(h.pid, lane="process").result(HANG)
            f = pool.apply_async(h.deaf_sleep, (600,), lane="process")
            self.assertTrue(wait_until(f.running))
            time.sleep(0.2)  # let it ignore SIGINT
            f.interrupt()
            with self.assertRaises(cf.CancelledError):
                f.result(HANG)
            with self.assertRaises(TimeoutError):
                pool.apply_async(h.deaf_sleep, (600,), timeout=0.5, lane="process").result(HANG)
            second = pool.apply_async(h.pid, lane="process").result(HANG)
            self.assertNotEqual(first, second, "replaced")
            self.assertEqual(pool.stats()["processes"]["workers"][0]["crashes"], 0,
                             "a kill the pool asked for is not a crash")

    def test_ctrl_c_in_the_parent_stops_its_process_workers(self):
        # The handler set explicitly: a runner started in the background
        # hands SIGINT down ignored, and Python then installs none.
        p = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
            import signal; signal.signal(signal.SIGINT, signal.default_int_handler)
            import time, isola, proc_helpers
            with isola.Pool(1, processes=1, stop_grace=0.5) as pool:
                f = pool.apply_async(proc_helpers.sleep, (600,), lane="process")
                while not f.running():
                    time.sleep(0.01)
                print(pool.stats()["processes"]["workers"][0]["pid"], flush=True)
                f.result()
        """)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=child_env())
        try:
            child = int(p.stdout.readline())
            time.sleep(0.1)
            p.send_signal(signal.SIGINT)
            _, err = p.communicate(timeout=HANG)
            self.assertIn("KeyboardInterrupt", err)
            self.assertFalse(os.path.exists(f"/proc/{child}") and
                             lane_children(p.pid).get(child) not in (None, "Z"))
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate()

    def test_frozen_values_are_copied_to_process_workers(self):
        with isola.Pool(1, processes=1) as pool:
            v = isola.freeze({"k": [1, 2, 3], "x": "y"})
            self.assertEqual(pool.apply_async(h.thawed, (v,), lane="process").result(HANG),
                             ("dict", 2, 2))
            # A small Buffer is copied into the request (large ones are
            # mapped: test_proclane_buffer.py); it arrives as a Buffer.
            r = pool.apply_async(h.buffer_info, (isola.share(b"x" * 100),),
                                 lane="process").result(HANG)
            self.assertEqual((r["type"], r["len"], r["shm"]), ("Buffer", 100, None))
            with self.assertRaises(TypeError):
                pool.apply_async(h.echo, (isola.Channel(),), lane="process")

    def test_a_dropped_pool_stops_its_process_workers(self):
        import gc
        pool = isola.Pool(1, processes=1, stop_grace=0.3)
        f = pool.apply_async(h.sleep, (600,), lane="process")
        self.assertTrue(wait_until(f.running))
        self.assertEqual(len(lane_children(os.getpid())), 1)
        del pool
        gc.collect()
        with self.assertRaises(cf.CancelledError):
            f.result(HANG)
        self.assertTrue(wait_until(lambda: lane_children(os.getpid()) == {}),
                        "the dropped pool's child is stopped and reaped")

    def test_functions_of_the_main_script_run_in_processes(self):
        import tempfile
        with tempfile.TemporaryDirectory() as d:
            script = os.path.join(d, "main_script.py")
            with open(script, "w") as f:
                f.write(textwrap.dedent("""
                    import os, isola
                    def where(x):
                        return (x, os.getpid())
                    if __name__ == "__main__":
                        with isola.Pool(1, processes=1) as pool:
                            x, pid = pool.apply_async(where, (5,), lane="process").result(60)
                            print(x, pid != os.getpid())
                """))
            r = subprocess.run([sys.executable, script], capture_output=True, text=True,
                               timeout=HANG, env=child_env())
        self.assertEqual(r.stdout.split(), ["5", "True"], r.stderr)

    def test_children_die_with_a_parent_killed_by_sigkill(self):
        p = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
            import sys, time, isola, proc_helpers
            pool = isola.Pool(1, processes=2)
            pool.apply_async(proc_helpers.sleep, (600,), lane="process")
            pids = [w["pid"] for w in pool.stats()["processes"]["workers"]]
            print(" ".join(map(str, pids)), flush=True)
            time.sleep(600)
        """)], stdout=subprocess.PIPE, text=True, env=child_env())
        try:
            pids = [int(x) for x in p.stdout.readline().split()]
            self.assertEqual(len(pids), 2)
            self.assertTrue(all(pids))
            os.kill(p.pid, signal.SIGKILL)
            p.wait(HANG)

            def gone():
                return not any(os.path.exists(f"/proc/{q}") and
                               lane_children(p.pid).get(q) not in (None, "Z") for q in pids)
            self.assertTrue(wait_until(gone), "children outlived their parent")
        finally:
            if p.poll() is None:
                p.kill()
            p.stdout.close()


if __name__ == "__main__":
    unittest.main()
