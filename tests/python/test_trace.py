"""Timeline traces (issue 36): Pool(trace=...), ISOLA_TRACE, `isola map
--trace`, a buffer too small for the run, and the renderer."""
import bisect
import collections
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import unittest

import isola

import pool_helpers

BUILD = os.environ.get("ISOLA_BUILD_DIR")
IN_SUB = getattr(sys, "_isola_subinterpreter", False)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def where(i):
    """Which thread ran task i, and when (CLOCK_MONOTONIC, as the trace);
    every 1000th task fails, saying the same in its message."""
    seen = (threading.get_native_id(), time.monotonic_ns())
    if i % 1000 == 7:
        raise ValueError(f"{seen[0]} {seen[1]}")
    return seen


def slices_by_thread(events):
    lanes = collections.defaultdict(list)
    for e in events:
        if e["ph"] == "X":
            start = round(e["ts"] * 1000)
            lanes[e["tid"]].append((start, start + round(e["dur"] * 1000), e))
    for lane in lanes.values():
        lane.sort(key=lambda s: s[0])
    return lanes


class TraceTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.dir.name, "run.json")

    def tearDown(self):
        self.dir.cleanup()

    def load(self):
        with open(self.path) as f:
            return json.load(f)

    def test_every_task_once_on_the_worker_that_ran_it(self):
        n = 10_000
        with isola.Pool(2, trace=self.path) as pool:
            futures = [pool.submit(where, i) for i in range(n)]
            seen = {}
            for i, f in enumerate(futures):
                try:
                    seen[i] = f.result()
                except ValueError as exc:
                    tid, t = str(exc).split()
                    seen[i] = (int(tid), int(t))
            workers = {w["tasks_run"] for w in pool.stats()["workers"]}
        trace = self.load()
        events = trace["traceEvents"]
        threads = {e["tid"]: e["args"]["worker"] for e in events if e["name"] == "thread_name"}
        self.assertEqual(len(threads), 2)
        self.assertEqual(trace["otherData"]["isola_dropped_events"], 0)
        lanes = slices_by_thread(events)
        self.assertLessEqual(set(lanes), set(threads))
        for lane in lanes.values():
            for (s0, e0, _), (s1, _, _) in zip(lane, lane[1:]):
                self.assertLess(s0, e0)
                self.assertLessEqual(e0, s1, "slices of one worker overlap")
        name = f"{__name__}:where"
        tasks = [e for e in events if e["name"] == name]
        self.assertEqual(len(tasks), n)
        self.assertTrue(all(e["ph"] == "X" and e["dur"] > 0 for e in tasks))
        matched = collections.Counter()
        for i, (tid, t) in seen.items():
            lane = lanes[tid]  # the worker that ran it
            k = bisect.bisect_right(lane, (t, float("inf"))) - 1
            self.assertGreaterEqual(k, 0, f"task {i} is in no slice of its worker")
            start, end, e = lane[k]
            self.assertTrue(start <= t <= end and e["name"] == name,
                            f"task {i} ran at {t}, outside its worker's slices")
            self.assertEqual(e["args"]["outcome"], "error" if i % 1000 == 7 else "ok")
            if i % 1000 == 7:
                self.assertEqual(e["args"]["error"], "ValueError")
            self.assertGreaterEqual(e["args"]["queued_us"], 0)
            matched[id(e)] += 1
        self.assertEqual(len(matched), n, "two tasks in one slice")
        self.assertEqual(sum(len(lanes[t]) for t in threads) - 4, n)  # + start/stop x2
        self.assertEqual(sum(workers), n)

    def test_cancelled_interrupted_and_timed_out_tasks(self):
        with isola.Pool(1, trace=self.path) as pool:
            running = pool.submit(pool_helpers.spin_forever)
            queued = [pool.submit(pool_helpers.square, i) for i in range(3)]
            while not running.running():
                time.sleep(0.001)
            for f in queued:
                self.assertTrue(f.cancel())
            running.interrupt()
            with self.assertRaises(concurrent.futures.CancelledError):
                running.result(timeout=60)
            late = pool.apply_async(pool_helpers.spin_forever, timeout=0.05)
            with self.assertRaises(TimeoutError):
                late.result(timeout=60)
        events = self.load()["traceEvents"]
        square = [e for e in events if e["name"] == "pool_helpers:square"]
        self.assertEqual([e["args"]["outcome"] for e in square], ["cancelled"] * 3)
        spins = [e["args"]["outcome"] for e in events
                 if e["name"] == "pool_helpers:spin_forever"]
        self.assertEqual(spins, ["interrupted", "timed out"])
        interrupts = [e for e in events if e["name"] == "interrupt"]
        self.assertEqual([e["args"]["outcome"] for e in interrupts],
                         ["interrupted", "timed out"])
        self.assertTrue(all(e["args"]["task"] == "pool_helpers:spin_forever"
                            for e in interrupts))

    def test_actor_messages(self):
        with isola.Pool(2, trace=self.path) as pool:
            c = pool.spawn(pool_helpers.Counter, 10)
            self.assertEqual(c.add(5).result(), 15)
            c.send_message("add", 1)
            with self.assertRaises(AttributeError):
                c.no_such_method().result()
            self.assertEqual(c.get().result(), 16)
        events = self.load()["traceEvents"]
        actor = [e for e in events if e.get("cat") == "actor"]
        self.assertEqual([e["name"] for e in actor],
                         ["actor start", "add", "add", "no_such_method", "get"])
        self.assertEqual(len({e["tid"] for e in actor}), 1)  # it lives on one worker
        self.assertEqual([e["args"]["outcome"] for e in actor],
                         ["ok", "ok", "ok", "error", "ok"])
        self.assertTrue(all(e["ph"] == "X" and e["dur"] > 0 for e in actor))

    def test_executor_and_pools_sharing_a_file(self):
        with isola.Executor(1, trace=self.path) as ex, isola.Pool(1, trace=self.path) as pool:
            self.assertEqual(list(ex.map(pool_helpers.square, range(5))), [0, 1, 4, 9, 16])
            self.assertEqual(pool.submit(pool_helpers.square, 3).result(), 9)
        events = self.load()["traceEvents"]
        procs = sorted(e["pid"] for e in events if e["name"] == "process_name")
        self.assertEqual(procs, [1, 2])
        per = collections.Counter(e["pid"] for e in events if e["name"] == "pool_helpers:square")
        self.assertEqual(sorted(per.values()), [1, 5])

    def test_pools_one_after_the_other_share_the_file(self):
        # a program's pools, one after the other (ISOLA_TRACE): all in one
        # file, valid after each
        for k in range(3):
            with isola.Pool(1, trace=self.path) as pool:
                pool.submit(pool_helpers.square, k).result()
            trace = self.load()
            events = trace["traceEvents"]
            self.assertEqual(sorted(e["pid"] for e in events if e["name"] == "process_name"),
                             list(range(1, k + 2)))
            self.assertEqual(len([e for e in events if e["name"] == "pool_helpers:square"]), k + 1)
            self.assertEqual(trace["otherData"]["isola_events"],
                             len([e for e in events if e["ph"] != "M"]))
        # a file changed by someone else meanwhile is started anew
        with open(self.path, "w") as f:
            f.write("{}")
        with isola.Pool(1, trace=self.path) as pool:
            pool.submit(pool_helpers.square, 9).result()
        events = self.load()["traceEvents"]
        self.assertEqual([e["pid"] for e in events if e["name"] == "process_name"], [1])

    def test_a_bad_path_fails_the_pool(self):
        with self.assertRaisesRegex(OSError, "no-such-dir"):
            isola.Pool(1, trace=os.path.join(self.dir.name, "no-such-dir", "t.json"))


@unittest.skipIf(IN_SUB or not BUILD, "needs ISOLA_BUILD_DIR and subprocesses")
class TraceProcessTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.dir.name, "run.json")
        self.env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [os.path.join(BUILD, "src"), os.path.dirname(os.path.abspath(__file__))]))

    def tearDown(self):
        self.dir.cleanup()

    def test_env_variable_and_a_buffer_too_small(self):
        # Any program: ISOLA_TRACE traces its pools; 16 events per worker
        # cannot hold the run, so events are dropped, counted, and the file
        # stays valid JSON.
        script = os.path.join(self.dir.name, "prog.py")
        with open(script, "w") as f:
            f.write(textwrap.dedent("""\
                import isola, pool_helpers
                if __name__ == "__main__":
                    with isola.Pool(2) as pool:
                        assert sum(pool.map(pool_helpers.square, range(4000), chunksize=1)) > 0
                """))
        env = dict(self.env, ISOLA_TRACE=self.path, ISOLA_TRACE_BUFFER="16")
        r = subprocess.run([sys.executable, script], env=env, capture_output=True,
                           text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(self.path) as f:
            trace = json.load(f)
        dropped = trace["otherData"]["isola_dropped_events"]
        slices = [e for e in trace["traceEvents"] if e["ph"] == "X"]
        self.assertGreater(dropped, 0)
        self.assertEqual(len(slices) + dropped, 4000 + 4)  # + start/stop of 2 workers
        names = [e for e in trace["traceEvents"] if e["name"] == "thread_name"]
        self.assertEqual(sum(e["args"]["dropped"] for e in names), dropped)
        self.assertTrue(any("dropped" in e["args"]["name"] for e in names))

    def test_a_task_abandoned_at_exit(self):
        # the process leaves by os._exit under a stuck task: the file still
        # ends valid, with the task as "still running" and its interrupt
        script = os.path.join(self.dir.name, "stuck.py")
        with open(script, "w") as f:
            f.write(textwrap.dedent(f"""\
                import isola, pool_helpers, time
                if __name__ == "__main__":
                    pool = isola.Pool(1, trace={self.path!r}, stop_grace=0.1)
                    pool.submit(pool_helpers.sleep, 30)
                    time.sleep(0.2)
                    pool.shutdown(interrupt=True)
                """))
        r = subprocess.run([sys.executable, "-W", "ignore", script], env=self.env,
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(self.path) as f:
            events = json.load(f)["traceEvents"]
        stuck = [e for e in events if e["name"] == "pool_helpers:sleep"]
        self.assertEqual(len(stuck), 1, events)
        self.assertEqual((stuck[0]["ph"], stuck[0]["args"]["outcome"]), ("X", "still running"))
        self.assertGreater(stuck[0]["dur"], 100_000)  # it ran 0.2 s and more, in us
        interrupts = [e for e in events if e["name"] == "interrupt"]
        self.assertEqual([e["args"]["task"] for e in interrupts], ["pool_helpers:sleep"])

    def test_isola_map_trace(self):
        isola_cmd = os.path.join(BUILD, "cli", "isola")
        r = subprocess.run([isola_cmd, "map", "math:factorial", "--ordered", "-j", "2",
                            "--trace", self.path], input="".join(f"{i}\n" for i in range(50)),
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(r.stdout.split()), 50)
        with open(self.path) as f:
            events = json.load(f)["traceEvents"]
        chunks = [e for e in events if e["ph"] == "X" and e["cat"] not in ("worker",)
                  and e["name"].startswith("isola_map:")]
        self.assertGreater(len(chunks), 0)
        self.assertTrue(all(e["args"]["outcome"] == "ok" for e in chunks))
        self.assertEqual(len({e["tid"] for e in events if e["name"] == "thread_name"}), 2)

    def test_renderer_draws_a_recorded_trace(self):
        with isola.Pool(2, trace=self.path) as pool:
            list(pool.map(pool_helpers.sleep, [0.02] * 10, chunksize=1))
        out = os.path.join(self.dir.name, "run.svg")
        r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "trace-plot"),
                            self.path, "-o", out], capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(out) as f:
            svg = f.read()
        self.assertTrue(svg.startswith("<svg") or svg.startswith("<?xml"), svg[:80])
        self.assertIn("worker 0", svg)
        self.assertIn("worker 1", svg)
        # one bar per task, in the colour of the most frequent target
        self.assertEqual(svg.count('fill="#4e79a7"'), 10 + 1)  # + its legend

    @unittest.skipUnless(shutil.which("rsvg-convert"), "PNG needs rsvg-convert (librsvg2-bin)")
    def test_renderer_png(self):
        with isola.Pool(2, trace=self.path) as pool:
            list(pool.map(pool_helpers.square, range(100), chunksize=5))
        out = os.path.join(self.dir.name, "run.png")
        r = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "trace-plot"),
                            self.path, "-o", out], capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(out, "rb") as f:
            png = f.read()
        self.assertTrue(png.startswith(b"\x89PNG\r\n\x1a\n"))
        self.assertGreater(len(png), 2000)

    def test_benchmark_figures(self):
        # bench/plot.py draws the report's figures from the committed records
        out = os.path.join(self.dir.name, "figures")
        r = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "plot.py"), "--out", out],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        names = sorted(os.listdir(out))
        self.assertIn("pool_speedup.svg", names)
        for name in names:
            with open(os.path.join(out, name)) as f:
                svg = f.read()
            self.assertTrue(svg.startswith("<svg"), name)
            self.assertIn("from bench/results/", svg)
            self.assertGreater(svg.count("<rect") + svg.count("<polyline"), 2, name)


if __name__ == "__main__":
    unittest.main()
