"""Extensions without sub-interpreter support (single-phase init, like
numpy today) fail to import in isola's interpreters with CPython's usual
ImportError; they still import in the main interpreter.  (A pool moves
such tasks to its process workers unless auto_place=False:
test_proclane.py.)"""
import sys
import unittest

IN_SUB = getattr(sys, "_isola_subinterpreter", False)

try:
    import importlib.util
    HAVE = importlib.util.find_spec("singlephase_ext") is not None
except ImportError:
    HAVE = False


@unittest.skipUnless(HAVE, "singlephase_ext is built by the test suite (PYTHONPATH)")
class SinglePhase(unittest.TestCase):
    @unittest.skipUnless(IN_SUB, "only refused in sub-interpreters")
    def test_refused_in_a_sub_interpreter(self):
        with self.assertRaises(ImportError) as cm:
            import singlephase_ext  # noqa: F401
        self.assertIn("does not support loading in subinterpreters", str(cm.exception))

    @unittest.skipIf(IN_SUB, "the main interpreter")
    def test_imports_in_the_main_interpreter(self):
        import singlephase_ext
        self.assertEqual(singlephase_ext.__name__, "singlephase_ext")

    @unittest.skipIf(IN_SUB, "starts a pool")
    def test_refused_in_pool_workers(self):
        import isola
        with isola.Pool(1, auto_place=False) as p:
            with self.assertRaises(ImportError) as cm:
                p.submit(__import__, "singlephase_ext").result()
        self.assertIn("subinterpreters", str(cm.exception))

    @unittest.skipIf(IN_SUB, "starts a pool")
    def test_refusal_explained_through_a_package_that_rewraps_it(self):
        # issue #31.8: numpy turns CPython's refusal into its own "bad
        # install" ImportError; isola adds what it means and what to do,
        # keeping the class and the package's text.
        import isola
        import tempfile, os
        with tempfile.TemporaryDirectory() as tmp:
            os.mkdir(os.path.join(tmp, "rewrap"))
            with open(os.path.join(tmp, "rewrap", "__init__.py"), "w") as f:
                f.write("try:\n    import singlephase_ext\n"
                        "except ImportError as exc:\n"
                        "    raise ImportError('Importing the C extensions failed: "
                        "bad install?') from exc\n")
            with isola.Pool(1, path=[tmp], auto_place=False) as p:
                with self.assertRaises(ImportError) as cm:
                    p.submit(__import__, "rewrap").result()
        e = cm.exception
        self.assertIs(type(e), ImportError)
        self.assertIn("bad install?", str(e))
        notes = "\n".join(getattr(e, "__notes__", ()))
        self.assertIn("isola: the extension module singlephase_ext does not support "
                      "sub-interpreters", notes)
        self.assertIn("main interpreter", notes)

    def test_subinterp_refusal_tells_the_module(self):
        import isola
        refusal = ImportError("module pkg._core does not support loading in subinterpreters")
        try:
            try:
                raise refusal
            except ImportError as inner:
                raise ImportError("bad install") from inner
        except ImportError as outer:
            self.assertEqual(isola._subinterp_refusal(outer), "pkg._core")
        self.assertEqual(isola._subinterp_refusal(refusal), "pkg._core")
        self.assertIsNone(isola._subinterp_refusal(ImportError("No module named x")))
        self.assertIsNone(isola._subinterp_refusal(ValueError(
            "module m does not support loading in subinterpreters")))


if __name__ == "__main__":
    unittest.main()
