"""CPython's own executor tests (Lib/test/test_concurrent_futures, from
Debian's libpython3.X-testsuite) run against isola.Executor, the way
CPython runs them against InterpreterPoolExecutor.  Skipped quietly when
the test suite is not installed.

Adaptations, as CPython makes for InterpreterPoolExecutor:
- create_event() skips (an Event cannot travel between interpreters);
- the tests listed in NOT_APPLICABLE (none today) would not apply to an
  executor that sends functions by reference.  Callables that cannot
  travel (test_no_stale_references submits a bound method) run on threads
  of the calling interpreter (issue #31.7), so those tests run too.
"""
import sys
import unittest

import isola

IN_SUB = getattr(sys, "_isola_subinterpreter", False)

try:
    if IN_SUB:
        raise ImportError("pools are made from the main interpreter here")
    from test.test_concurrent_futures import util as _util
    from test.test_concurrent_futures import executor as _executor
    from test.test_concurrent_futures import test_wait as _wait
    from test.test_concurrent_futures import test_as_completed as _as_completed
    from test.test_concurrent_futures import test_shutdown as _shutdown
    from test.test_concurrent_futures import test_init as _init
except Exception:  # not installed (or a sub-interpreter run): nothing to do
    _util = None

# Test name -> why it does not apply to an executor that sends functions by
# reference.
NOT_APPLICABLE = {}


def _isola_script(script):
    # CPython's child scripts import the executor under test by name from
    # concurrent.futures (there, "Executor" is the abstract base): import
    # isola's instead.  The rest of the script is CPython's, unchanged.
    return script.replace("from concurrent.futures import Executor",
                          "from isola import Executor")


def _adapted_assert_python_ok(*args, **env):
    import os
    from test.support import script_helper
    args = tuple(_isola_script(a) if isinstance(a, str) else a for a in args)
    env.setdefault("PYTHONPATH", os.pathsep.join(p for p in sys.path if p))
    env.setdefault("__isolated", False)  # -I would ignore PYTHONPATH
    return script_helper.assert_python_ok(*args, **env)


if _util is not None:
    class IsolaMixin(_util.ExecutorMixin):
        executor_type = isola.Executor

        def create_event(self):
            self.skipTest("an Event cannot travel between interpreters")

    _shutdown.assert_python_ok = _adapted_assert_python_ok
    from test import support as _support
    _support.verbose = False  # quiet, as regrtest runs them (no per-test timings)
    if _support.use_resources is not None and "walltime" not in _support.use_resources:
        _support.use_resources.append("walltime")  # test_map_timeout: 6 s
    elif _support.use_resources is None:
        _support.use_resources = ["walltime"]

    def _adapt(cls):
        for name, why in NOT_APPLICABLE.items():
            if hasattr(cls, name):
                setattr(cls, name, unittest.skip(f"not applicable: {why}")(lambda self: None))
        return cls

    _made = {}
    for _mod, _mixin_name in ((_executor, "ExecutorTest"), (_wait, "WaitTests"),
                              (_as_completed, "AsCompletedTests"),
                              (_shutdown, "ExecutorShutdownTest"),
                              (_init, "InitializerMixin"),
                              (_init, "FailingInitializerMixin")):
        _mixin = getattr(_mod, _mixin_name, None)
        if _mixin is None:
            continue
        _bases = (_mixin, IsolaMixin, _util.BaseTestCase)
        _name = "Isola" + _mixin_name.replace("Mixin", "").replace("Tests", "").replace("Test", "") + "Test"
        _made[_name] = _adapt(type(_name, _bases, {"__module__": __name__}))
    # InterpreterPoolExecutor's asyncio tests apply to any interpreter
    # executor (3.14+: they need concurrent.interpreters).
    try:
        from test.test_concurrent_futures import test_interpreter_pool as _ipool
    except Exception:
        _ipool = None
    if _ipool is not None:
        class IsolaAsyncioTest(_ipool.AsyncioTest):
            executor_type = isola.Executor

            @classmethod
            def setUpClass(cls):
                # CPython's check that no earlier test left a loop policy
                # set: isola's other suites (run first) may have.
                import asyncio
                asyncio.events._set_event_loop_policy(None)
                super().setUpClass()

        _made["IsolaAsyncioTest"] = IsolaAsyncioTest
    globals().update(_made)
    del _mod, _mixin_name, _mixin, _bases, _name
