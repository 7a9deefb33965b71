"""Task graphs (issue 35): Futures of the same pool as arguments."""
import concurrent.futures as cf
import os
import sys
import threading
import unittest

import isola
from child_helpers import run_child

import graph_helpers as g

IN_SUB = getattr(sys, "_isola_subinterpreter", False)


@unittest.skipIf(IN_SUB, "pools are made from the main interpreter here")
class Graphs(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pool = isola.Pool(2)

    @classmethod
    def tearDownClass(cls):
        cls.pool.shutdown()

    def test_positional_and_keyword_inputs_take_their_places(self):
        p = self.pool
        a, c = p.submit(g.inc, 1), p.submit(g.inc, 10)
        self.assertEqual(p.submit(g.parts, a, 5, c=c, d=7).result(timeout=30), (2, 5, 11, 7))
        self.assertEqual(p.submit(g.parts, 0, a).result(timeout=30), (0, 2, 0, 0))

    def test_diamond(self):
        p = self.pool
        top = p.submit(g.inc, 0)
        left, right = p.submit(g.inc, top), p.submit(g.add, top, 10)
        self.assertEqual(p.submit(g.add, left, right).result(timeout=30), 2 + 11)

    def test_chain_and_fan_in(self):
        p = self.pool
        f = p.submit(g.inc, 0)
        for _ in range(2000):
            f = p.submit(g.inc, f)
        self.assertEqual(f.result(timeout=60), 2001)
        leaves = [p.submit(g.inc, i) for i in range(64)]
        while len(leaves) > 1:
            leaves = [p.submit(g.add, leaves[i], leaves[i + 1]) for i in range(0, len(leaves), 2)]
        self.assertEqual(leaves[0].result(timeout=60), sum(range(1, 65)))

    def test_a_failing_input_in_the_middle_of_a_chain(self):
        p = self.pool
        bad = p.submit(g.fail, "missing")
        mid = p.submit(g.inc, bad)
        end = p.submit(g.inc, mid)
        with self.assertRaises(isola.InputFailed) as cm:
            mid.result(timeout=30)
        self.assertIn("positional argument 0", str(cm.exception))
        self.assertEqual(cm.exception.input, 0)
        self.assertIsInstance(cm.exception.__cause__, KeyError)
        self.assertEqual(cm.exception.__cause__.args, ("missing",))
        with self.assertRaises(isola.InputFailed) as cm2:
            end.result(timeout=30)
        # the chain: end's cause is mid's InputFailed, whose cause is the KeyError
        self.assertIsInstance(cm2.exception.__cause__, isola.InputFailed)
        self.assertIsInstance(cm2.exception.__cause__.__cause__, KeyError)

    def test_keyword_input_named_in_the_error(self):
        p = self.pool
        f = p.submit(g.parts, 1, c=p.submit(g.fail, "k"))
        with self.assertRaises(isola.InputFailed) as cm:
            f.result(timeout=30)
        self.assertIn("keyword argument 'c'", str(cm.exception))
        self.assertEqual(cm.exception.input, "c")

    def test_timed_out_input(self):
        p = self.pool
        slow = getattr(p, "apply_async", p.apply)(g.sleep, (5,), timeout=0.05)
        f = p.submit(g.inc, slow)
        with self.assertRaises(isola.InputFailed) as cm:
            f.result(timeout=30)
        self.assertIsInstance(cm.exception.__cause__, TimeoutError)

    def test_other_pools_and_plain_futures_are_refused(self):
        with isola.Pool(1) as other:
            theirs = other.submit(g.inc, 1)
            with self.assertRaisesRegex(ValueError, "another isola Pool"):
                self.pool.submit(g.inc, theirs)
        plain = cf.Future()
        plain.set_result(1)
        with self.assertRaisesRegex(TypeError, "not an isola Future"):
            self.pool.submit(g.inc, plain)

    def test_blobs_stay_zero_copy_through_an_edge(self):
        p = self.pool
        blob = p.submit(g.make_blob, 1 << 20)
        self.assertEqual(p.submit(g.nbytes, blob).result(timeout=30), ("Buffer", 1 << 20))

    def test_eight_threads_build_graphs_at_once(self):
        p = self.pool
        out = [None] * 8

        def build(k):
            f = p.submit(g.inc, k)
            for _ in range(300):
                f = p.submit(g.add, f, p.submit(g.inc, 0))
            out[k] = f.result(timeout=120)

        ts = [threading.Thread(target=build, args=(k,)) for k in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(180)
        self.assertEqual(out, [k + 1 + 300 for k in range(8)])


class CauseTravels(unittest.TestCase):
    # An exception's __cause__ travels with it (the exception ext's 8th
    # item): how an InputFailed carries its input's exception.
    def test_cause_round_trips(self):
        try:
            try:
                raise KeyError("inner")
            except KeyError as e:
                raise ValueError("outer") from e
        except ValueError as e:
            exc = e
        back = isola.loads(isola.dumps(exc))
        self.assertIsInstance(back, ValueError)
        self.assertIsInstance(back.__cause__, KeyError)
        self.assertEqual(back.__cause__.args, ("inner",))

    def test_a_cause_loop_is_cut(self):
        a, b = ValueError("a"), KeyError("b")
        a.__cause__, b.__cause__ = b, a
        back = isola.loads(isola.dumps(a))
        self.assertIsInstance(back.__cause__, KeyError)
        self.assertNotIsInstance(back.__cause__.__cause__, ValueError)


@unittest.skipIf(IN_SUB, "pools are made from the main interpreter here")
class Cancel(unittest.TestCase):
    def test_cancelled_input_fails_the_dependent_and_a_cancelled_dependent_leaves_inputs(self):
        with isola.Pool(1) as p:
            blocker = p.submit(g.sleep, 0.3)
            queued = p.submit(g.inc, 1)
            kept = p.submit(g.inc, 5)
            dep = p.submit(g.inc, queued)
            dep2 = p.submit(g.inc, kept)
            self.assertTrue(queued.cancel())
            self.assertTrue(dep2.cancel())
            with self.assertRaises(isola.InputFailed) as cm:
                dep.result(timeout=30)
            self.assertIsInstance(cm.exception.__cause__, cf.CancelledError)
            self.assertEqual(kept.result(timeout=30), 6)
            self.assertTrue(dep2.cancelled())
            blocker.result(timeout=30)




@unittest.skipIf(IN_SUB, "pools are made from the main interpreter here")
class Lifecycle(unittest.TestCase):
    def test_shutdown_with_graphs_half_done_ends_every_future(self):
        rc, out, err = run_child("""
            import concurrent.futures as cf, isola, graph_helpers as g
            p = isola.Pool(2)
            root = p.submit(g.sleep, 0.2)
            fs = [root]
            for i in range(1, 3000):
                fs.append(p.submit(g.add, fs[(i - 1) // 2], 1))
            p.shutdown(wait=True, cancel_futures=True)
            done, pending = cf.wait(fs, timeout=60)
            print(len(done), len(pending), sum(f.cancelled() or f.exception() is not None for f in fs))
        """, timeout=120)
        self.assertEqual(rc, 0, err)
        done, pending, ended_badly = map(int, out.split())
        self.assertEqual((done, pending), (3000, 0))
        self.assertGreater(ended_badly, 0, "the half-done graph was cancelled")

    def test_shutdown_without_cancel_runs_what_waits(self):
        rc, out, err = run_child("""
            import isola, graph_helpers as g
            p = isola.Pool(2)
            f = p.submit(g.sleep, 0.1)
            for _ in range(100):
                f = p.submit(g.add, f, 1)
            p.shutdown(wait=True)
            print(f.result(timeout=0))
        """, timeout=120)
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.strip(), "100.1")

    @unittest.skipIf("libasan" in os.environ.get("LD_PRELOAD", ""),
                     "ASan's quarantine keeps freed memory: RSS says nothing there")
    def test_a_long_chain_runs_in_bounded_memory(self):
        # Intermediate results are freed once their dependent started and
        # the caller dropped the Future; at most ISOLA_MAX_WAITING tasks
        # wait at once.  RSS after 200k and after 10^6 links: flat.
        rc, out, err = run_child("""
            import isola, graph_helpers as g
            def rss():
                with open("/proc/self/status") as f:
                    return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:")) * 1024
            with isola.Pool(2) as p:
                f = p.submit(g.inc, 0)
                marks = {}
                for i in range(1, 1000001):
                    f = p.submit(g.inc, f)
                    if i in (200000, 1000000):
                        marks[i] = rss()
                print(f.result(timeout=300), marks[200000], marks[1000000])
        """, timeout=600)
        self.assertEqual(rc, 0, err)
        last, at200k, at1m = map(int, out.split())
        self.assertEqual(last, 1000001)
        self.assertLess(at1m - at200k, 64 << 20,
                        f"RSS grew {(at1m - at200k) >> 20} MiB over 800k more links")


if __name__ == "__main__":
    unittest.main()
