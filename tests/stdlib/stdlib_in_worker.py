"""CPython's own test modules inside an isola worker, against the same
modules inside a plain concurrent.interpreters sub-interpreter (3.14), per
test (issue #13: signals, subprocesses, threads and regexes behave in a
worker as in any sub-interpreter).

    PYTHONPATH=build/py3.14/src python3.14 tests/stdlib/stdlib_in_worker.py \
        [--json FILE] [module ...]

Each (module, host) pair runs in a child process with a hard timeout
(a hang is an outcome, "hung").  Prints one line per test whose outcome
differs, then "N passed, N failed": a module passes when every test has
the same outcome in both hosts.  Tests that fail in both are listed
(tests/stdlib/fails_in_both.txt is what this found on 3.14), not counted as
failures.
"""
import json
import os
import subprocess
import sys
import time

MODULES = ["test_re", "test_signal", "test_threading", "test_subprocess"]
TIMEOUT = {"test_subprocess": 420, "test_threading": 300}
HERE = os.path.dirname(os.path.abspath(__file__))


def run_tests(name):
    """In the sub-interpreter: run test.<name>; [(test id, outcome)]."""
    import unittest

    class Collect(unittest.TestResult):
        def __init__(self):
            super().__init__()
            self.outcomes = {}

        def addSuccess(self, test):
            self.outcomes[test.id()] = "ok"

        def addFailure(self, test, err):
            self.outcomes[test.id()] = "FAIL"

        def addError(self, test, err):
            self.outcomes[getattr(test, "id", lambda: str(test))()] = "ERROR"

        def addSkip(self, test, reason):
            self.outcomes[test.id()] = "skipped"

        def addExpectedFailure(self, test, err):
            self.outcomes[test.id()] = "expected failure"

        def addUnexpectedSuccess(self, test):
            self.outcomes[test.id()] = "unexpected success"

        def addSubTest(self, test, subtest, err):
            if err is not None:
                self.outcomes[test.id()] = "FAIL (subtest)"

    suite = unittest.defaultTestLoader.loadTestsFromName("test." + name)
    result = Collect()
    suite.run(result)
    return sorted(result.outcomes.items())


CHILD = r'''
import json, signal, sys, threading
# Signals the tests raise at the process land in the main interpreter's
# main thread (a sub-interpreter cannot handle them): swallow them there,
# the same for both hosts, so that the child survives to report.
for sig in (signal.SIGINT, signal.SIGALRM, signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP):
    signal.signal(sig, lambda *a: None)
sys.path.insert(0, {here!r})
import stdlib_in_worker as s
name, host = {name!r}, {host!r}
out = {{}}
def go():
    if host == "isola":
        import isola
        with isola.Pool(1) as p:
            out["r"] = p.submit(s.run_tests, name).result()
    else:
        from concurrent import interpreters
        interp = interpreters.create()
        interp.exec("import sys; sys.path.insert(0, %r)" % {here!r})
        out["r"] = interp.call(s.run_tests, name)
        interp.close()
t = threading.Thread(target=go)  # not the main thread, as isola's workers
t.start()
t.join()
print("RESULT " + json.dumps(out.get("r")))
'''


def run_host(name, host):
    src = CHILD.format(here=HERE, name=name, host=host)
    t0 = time.monotonic()
    try:
        p = subprocess.run([sys.executable, "-c", src], capture_output=True, text=True,
                           timeout=TIMEOUT.get(name, 180), env=dict(os.environ))
    except subprocess.TimeoutExpired:
        return None, time.monotonic() - t0, "hung"
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    res = json.loads(line[-1][7:]) if line else None
    return (dict(res) if res else None), time.monotonic() - t0, p.stderr[-2000:]


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    jpath = sys.argv[sys.argv.index("--json") + 1] if "--json" in sys.argv else None
    if jpath in args:
        args.remove(jpath)
    mods = args or MODULES
    passed = failed = 0
    report = {}
    for name in mods:
        got = {}
        for host in ("isola", "interpreters"):
            res, took, err = run_host(name, host)
            got[host] = res
            print(f"{name} in {host}: " + (f"{len(res)} tests, "
                  f"{sum(v == 'ok' for v in res.values())} ok, "
                  f"{sum(v == 'skipped' for v in res.values())} skipped"
                  if res is not None else f"no result ({err.strip()[-300:]})")
                  + f", {took:.0f} s", flush=True)
        a, b = got["isola"], got["interpreters"]
        if a is None or b is None:
            failed += 1
            report[name] = {"error": "no result"}
            continue
        diff = {t: (a.get(t, "absent"), b.get(t, "absent"))
                for t in sorted(set(a) | set(b)) if a.get(t) != b.get(t)}
        both = sorted(t for t in a if a[t] in ("FAIL", "ERROR", "FAIL (subtest)")
                      and b.get(t) == a[t])
        for t, (x, y) in diff.items():
            print(f"   differs: {t}: isola {x}, interpreters {y}")
        for t in both:
            print(f"   fails in both: {t}: {a[t]}")
        report[name] = {"isola": a, "interpreters": b, "differs": diff, "fails_in_both": both}
        if diff:
            failed += 1
        else:
            passed += 1
    if jpath:
        with open(jpath, "w") as f:
            json.dump(report, f, indent=1)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
