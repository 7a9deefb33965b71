"""Run isola's unittest suites and print "N passed, N failed".

Usage: python3.X tests/python/run.py [pattern]   (PYTHONPATH must reach the
built isola module).  Also importable: run_suites() is what the
sub-interpreter runner calls, inside an isola interpreter.
"""
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


TEST_TIMEOUT = 300  # s: a test still running then dumps every thread's stack and exits


class _CountingResult(unittest.TextTestResult):
    # Passes counted one by one: testsRun cannot be trusted for it
    # (3.12.1's unittest does not count skipped tests in testsRun).
    passes = 0

    def startTest(self, test):
        super().startTest(test)
        try:  # a hang fails the run with the stacks, instead of stalling CI
            import faulthandler
            faulthandler.dump_traceback_later(TEST_TIMEOUT, exit=True)
        except Exception:  # not available in this interpreter
            pass

    def stopTest(self, test):
        try:
            import faulthandler
            faulthandler.cancel_dump_traceback_later()
        except Exception:
            pass
        super().stopTest(test)

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
    # On a line of its own whatever a test left on stdout without a newline
    # (CPython's suites print timings with end=' ' when verbose).
    sys.stdout.flush()
    print(f"\n{passed} passed, {failed} failed, {skipped} skipped", flush=True)
    sys.exit(1 if failed or passed == 0 else 0)
