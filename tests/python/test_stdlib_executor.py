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

        # InterpreterPoolExecutorTest's own tests (ExecutorTest's, which
        # it inherits, run above).  Issue 37: test_init_func checks that
        # initializers run when work arrives, not in the constructor.
        _IPOOL_NOT_APPLICABLE = {
            "test_init_script": "a source string as initializer (expected to fail in CPython too)",
            "test_init_script_args": "a source string as initializer (expected to fail in CPython too)",
            "test_init_exception_in_script": "a source string as initializer (expected to fail in CPython too)",
            "test_submit_script": "a source string as task (expected to fail in CPython too)",
            "test_submit_exception_in_script": "a source string as task (expected to fail in CPython too)",
            "test_init_closure": "closures as initializer (isola refuses them with TypeError)",
            "test_init_instance_method": "a bound method as initializer (refused with TypeError)",
            "test_submit_closure": "closures: InterpreterPoolExecutor refuses them (NotShareableError), "
                                   "isola.Executor runs them on a thread of the caller (#31.7)",
            "test_submit_local_instance": "a class defined inside the test: InterpreterPoolExecutor's "
                                          "refusal; isola.Executor runs it on a thread (#31.7)",
            "test_submit_instance_method": "a bound method: InterpreterPoolExecutor's refusal; "
                                           "isola.Executor runs it on a thread (#31.7)",
            "test_pickle_errors_propagate": "an instance as the function: InterpreterPoolExecutor's "
                                            "pickling error; isola.Executor runs it on a thread",
            "test_saturation": "a bound method (queue.get) and ThreadPoolExecutor's private _threads",
            "test_blocking": "a function defined inside the test (it would run on a thread of the "
                             "caller here, not on the interpreters it is about)",
            "test_blocking_with_limited_workers": "a function defined inside the test (as "
                                                  "test_blocking)",
            "test_idle_thread_reuse": "ThreadPoolExecutor's private _threads (isola starts "
                                      "max_workers workers at the first submission)",
            "test_init_exception_in_func": "InterpreterPoolExecutor's own error types and "
                                           "stderr (BrokenInterpreterPool, ExecutionFailed); the "
                                           "failing-initializer contract is test_init's, run above",
            "test_submit_exception_in_func": "InterpreterPoolExecutor's ExecutionFailed cause "
                                             "(isola adds the remote traceback as a note)",
            "test_import_interpreter_pool_executor": "CPython's own import of the executor",
            "test_thread_name_prefix": "InterpreterPoolExecutor's thread names",
            "test_thread_name_prefix_with_thread_get_name": "InterpreterPoolExecutor's thread names",
        }

        class _IsolaScriptHelper:
            # test_init_with___main___global's script, with isola.Executor
            # in the place of InterpreterPoolExecutor.
            @staticmethod
            def make_script(*args, **kwargs):
                from test.support import script_helper
                args = list(args)
                args[2] = args[2].replace(
                    "from concurrent.futures import InterpreterPoolExecutor",
                    "from isola import Executor as InterpreterPoolExecutor")
                return script_helper.make_script(*args, **kwargs)

            assert_python_ok = staticmethod(_adapted_assert_python_ok)

        _ipool.script_helper = _IsolaScriptHelper
        _ns = {"__module__": __name__, "pipe": _ipool.InterpretersMixin.pipe}
        for _k, _v in vars(_ipool.InterpreterPoolExecutorTest).items():
            if not _k.startswith("test_"):
                continue
            if _k in _IPOOL_NOT_APPLICABLE:
                _v = unittest.skip(f"not applicable: {_IPOOL_NOT_APPLICABLE[_k]}")(lambda self: None)
            _ns[_k] = _v
        _made["IsolaInterpreterPoolExecutorTest"] = type(
            "IsolaInterpreterPoolExecutorTest", (IsolaMixin, _util.BaseTestCase), _ns)
        for _k in ("_k", "_v", "_ns"):
            globals().pop(_k, None)
    globals().update(_made)
    del _mod, _mixin_name, _mixin, _bases, _name
