"""Silent fallbacks (issue #33): a package that catches the refusal of its
C extension in a sub-interpreter and runs a pure-Python stand-in, as
PyYAML, msgpack, simplejson and rapidfuzz do.  Nothing fails, so the
workers record such refusals (src/interp/refusal.c wraps each worker's
_imp.create_dynamic) and the pool reports them: stats()["fallbacks"] and
one RuntimeWarning per module.  tests/python/fallback_pkg is such a
package over tests/singlephase_ext.c (which sub-interpreters refuse);
fallback_pkg.IMPL tells which path ran.  Real packages:
test_proclane_packages.py."""
import os
import sys
import unittest
import warnings

IN_SUB = getattr(sys, "_isola_subinterpreter", False)
HERE = os.path.dirname(os.path.abspath(__file__))

try:
    import importlib.util
    HAVE_EXT = importlib.util.find_spec("singlephase_ext") is not None
except ImportError:
    HAVE_EXT = False

HANG = 60


def mine(caught):
    # The fallback warnings about singlephase_ext among those caught.
    return [str(w.message) for w in caught
            if issubclass(w.category, RuntimeWarning) and "singlephase_ext" in str(w.message)
            and "caught that" in str(w.message)]


@unittest.skipIf(IN_SUB, "starts pools")
@unittest.skipUnless(HAVE_EXT, "singlephase_ext is built by the test suite (PYTHONPATH)")
class SilentFallbacks(unittest.TestCase):
    def setUp(self):
        if HERE not in sys.path:
            sys.path.insert(0, HERE)
        import fallback_helpers
        self.h = fallback_helpers

    def pool(self, *args, **kwargs):
        import isola
        return isola.Pool(*args, **kwargs)

    def test_reported_in_stats_and_warned_once(self):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with self.pool(2) as pool:
                got = list(pool.map(self.h.which, range(40), chunksize=1))
                got += [pool.submit(self.h.which, i).result(HANG) for i in range(10)]
                st = pool.stats()
                st2 = pool.stats()
        self.assertEqual({impl for impl, _ in got}, {"python"})  # the fallback ran
        self.assertEqual([v for _, v in got[:40]], [2 * i for i in range(40)])
        entry = st["fallbacks"]["singlephase_ext"]
        self.assertEqual(entry["target"], "fallback_helpers:which")
        self.assertGreaterEqual(entry["refusals"], 1)  # each worker's first import
        self.assertEqual(list(st["fallbacks"]), ["singlephase_ext"])
        self.assertEqual(st2["fallbacks"], st["fallbacks"])
        # Reported, not moved: it worked in the interpreters.
        self.assertEqual(st["placement"], {})
        self.assertEqual(st["refused"], {})
        msgs = mine(caught)
        self.assertEqual(len(msgs), 1, msgs)
        self.assertIn("fallback_helpers:which", msgs[0])
        self.assertIn("Pool(place={'fallback_helpers:which': 'process'})", msgs[0])
        self.assertIn("lane='process'", msgs[0])
        # From the caller's side: the warning points at this file.
        where = [w.filename for w in caught if "caught that" in str(w.message)]
        self.assertEqual(where, [os.path.abspath(__file__)])

    def test_placed_in_processes_the_c_path_runs(self):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with self.pool(1, place={"fallback_helpers:which": "process"}) as pool:
                self.assertEqual(pool.submit(self.h.which, 4).result(HANG), ["c", 8])
                st = pool.stats()
            with self.pool(1) as pool:
                self.assertEqual(pool.apply(self.h.which, (5,), lane="process"), ["c", 10])
                self.assertEqual(pool.submit(self.h.which, 5).result(HANG), ["python", 10])
                st2 = pool.stats()
        self.assertEqual(st["fallbacks"], {})
        self.assertEqual(list(st2["fallbacks"]), ["singlephase_ext"])
        self.assertEqual(len(mine(caught)), 1, mine(caught))

    def test_a_refusal_that_fails_the_task_is_no_fallback(self):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with self.pool(1, auto_place=False) as pool:
                with self.assertRaises(ImportError):
                    pool.submit(self.h.strict, 1).result(HANG)
                st = pool.stats()
            with self.pool(1) as pool:  # automatic placement moves it
                self.assertEqual(pool.submit(self.h.strict, 2).result(HANG), ["c", 2])
                st2 = pool.stats()
        self.assertEqual(st["fallbacks"], {})
        self.assertEqual(st2["fallbacks"], {})
        self.assertEqual(st2["refused"], {"singlephase_ext": "fallback_helpers:strict"})
        self.assertEqual(mine(caught), [])

    def test_a_task_that_fails_for_another_reason_still_fell_back(self):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with self.pool(1) as pool:
                with self.assertRaises(ValueError):
                    pool.submit(self.h.which_then_fails, 1).result(HANG)
                st = pool.stats()
        self.assertEqual(st["fallbacks"]["singlephase_ext"]["target"],
                         "fallback_helpers:which_then_fails")
        self.assertEqual(st["placement"], {})
        self.assertEqual(len(mine(caught)), 1)

    def test_setup_and_run_name_themselves(self):
        cases = [({"preload": ["fallback_pkg"]}, "preload", "preload="),
                 ({"initializer": self.h.setup}, "init", "initializer"),
                 ({"init": "import fallback_pkg"}, "init", "initializer")]
        for kwargs, target, says in cases:
            with self.subTest(target=target, kwargs=kwargs):
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    with self.pool(1, **kwargs) as pool:
                        self.assertEqual(pool.submit(self.h.loaded).result(HANG), "python")
                        st = pool.stats()
                self.assertEqual(st["fallbacks"]["singlephase_ext"]["target"], target)
                msgs = mine(caught)
                self.assertEqual(len(msgs), 1, msgs)
                self.assertIn(says, msgs[0])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with self.pool(1) as pool:
                pool.run("import fallback_pkg")
                self.assertEqual(pool.stats()["fallbacks"]["singlephase_ext"]["target"], "run")
        self.assertIn("under pool.run()", "".join(mine(caught)))

    def test_only_workers_are_hooked(self):
        import _imp
        with self.pool(1) as pool:
            self.assertTrue(pool.submit(self.h.hook_in_place).result(HANG))
        self.assertIs(_imp.create_dynamic.__self__, _imp)  # the caller's is CPython's own

    def test_warning_as_error_raises_after_the_future_completes(self):
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            with self.pool(1) as pool:
                fut = pool.submit(self.h.which, 3)
                with self.assertRaises(RuntimeWarning):
                    fut.result(HANG)
                self.assertEqual(fut.result(HANG), ["python", 6])  # done, and only once raised
                self.assertEqual(pool.submit(self.h.which, 4).result(HANG), ["python", 8])


if __name__ == "__main__":
    unittest.main()
