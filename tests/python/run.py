"""Run isola's unittest suites and print "N passed, N failed".

Usage: python3.X tests/python/run.py [pattern]   (PYTHONPATH must reach the
built isola module).  Also importable: run_suites() is what the
sub-interpreter runner calls, inside an isola interpreter.
"""
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


class _CountingResult(unittest.TextTestResult):
    # Passes counted one by one: testsRun cannot be trusted for it
    # (3.12.1's unittest does not count skipped tests in testsRun).
    passes = 0

    def addSuccess(self, test):
        super().addSuccess(test)
        self.passes += 1


def run_suites(pattern="test_*.py", verbosity=1, stream=None):
    loader = unittest.TestLoader()
    suite = loader.discover(HERE, pattern=pattern, top_level_dir=HERE)
    runner = unittest.TextTestRunner(stream=stream or sys.stderr, verbosity=verbosity,
                                     resultclass=_CountingResult)
    result = runner.run(suite)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    return result.passes, failed, len(result.skipped)


if __name__ == "__main__":
    passed, failed, skipped = run_suites(*(sys.argv[1:2] or ["test_*.py"]))
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    sys.exit(1 if failed or passed == 0 else 0)
