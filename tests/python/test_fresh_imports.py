"""Fresh workers importing the same stdlib C extension at once.

On CPython 3.12 two isolated sub-interpreters importing a single-phase
extension (_datetime, _decimal, ...) at the same moment corrupt its shared
static types (a segfault; also with 3.12's own _xxsubinterpreters), and on
3.13 _datetime (zoneinfo too) does ("double free or corruption"), unless
the main interpreter imported it first: isola does (src/interp/runtime.c).
Run in a subprocess whose main interpreter does nothing else, with a hard
timeout.
"""
import os
import subprocess
import sys
import tempfile
import unittest

SCRIPT = r'''
import isola

def imp():
    import datetime, decimal
    try:
        import zoneinfo  # noqa: F401  (3.12 sub-interpreters: AttributeError, no crash)
    except (ImportError, AttributeError):
        pass
    try:
        import _datetime  # noqa: F401  (refused in 3.12's sub-interpreters)
    except ImportError:
        pass
    return datetime.date(2020, 1, 2).day + int(decimal.Decimal(1)) + 1

if __name__ == "__main__":
    for _ in range(10):
        with isola.Pool(4) as pool:
            got = [f.result(timeout=60) for f in [pool.submit(imp) for _ in range(8)]]
            assert got == [4] * 8, got
    print("ok")
'''


@unittest.skipIf(getattr(sys, "_isola_subinterpreter", False), "needs a subprocess")
class FreshImports(unittest.TestCase):
    def test_workers_import_datetime_and_decimal_at_once(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "fresh_imports.py")
            with open(path, "w") as f:
                f.write(SCRIPT)
            r = subprocess.run([sys.executable, path], capture_output=True, text=True,
                               timeout=180, env=dict(os.environ, PYTHONWARNINGS="ignore"))
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        self.assertEqual(r.stdout.strip(), "ok")


if __name__ == "__main__":
    unittest.main()
