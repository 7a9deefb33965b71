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


if __name__ == "__main__":
    unittest.main()
