"""isola's Python front: Pool, Future, Executor and actors.

This file is compiled into the isola extension module and run in its
namespace the first time one of its names is used (module __getattr__,
or Channel.recv_async/send_async), in whichever interpreter: workers that
never use it never pay for it.  The channels, select, share and the
exceptions come from the C part.

Functions and classes are sent by reference ("module:qualname") and
looked up in the worker, never pickled as code.
"""
import collections as _collections
import concurrent.futures as _cf
import itertools as _itertools
import os as _os
import sys as _sys
import threading as _threading
import time as _time
import types as _types
import weakref as _weakref


# concurrent.futures.Future.__init__ makes a threading.Condition per
# future (~7 us, most of a trivial task's cost here).  Futures of one pool
# share one instead: waiters re-check their own future's state, so a
# shared condition only adds harmless wake-ups.  Used only if the base
# class sets exactly the fields we set (true for 3.8-3.14).
_FUTURE_FIELDS = {"_condition", "_state", "_result", "_exception", "_waiters",
                  "_done_callbacks"}
_SHARE_CONDITION = set(vars(_cf.Future())) == _FUTURE_FIELDS


_target_cache = {}


def _target_of(fn):
    """"module:qualname" for fn; a TypeError that says what to do otherwise."""
    try:
        return _target_cache[fn]  # functions and classes are hashable
    except (KeyError, TypeError):
        pass
    target = _target_of_uncached(fn)
    if len(_target_cache) < 4096:
        try:
            _target_cache[fn] = target
        except TypeError:
            pass
    return target


def _target_of_uncached(fn):
    if isinstance(fn, str):
        if ":" not in fn:
            raise ValueError(f"target {fn!r} should look like 'package.module:qualname'")
        return fn
    if isinstance(fn, _types.MethodType):
        raise TypeError(
            f"{fn!r} is a bound method: isola sends functions by reference and cannot "
            "send the object it is bound to; use an actor (pool.spawn) or a module-level function")
    mod = getattr(fn, "__module__", None)
    qual = getattr(fn, "__qualname__", None)
    if not isinstance(mod, str) or not isinstance(qual, str):
        raise TypeError(f"{fn!r} has no module and qualified name: isola can only send "
                        "module-level functions and classes (by reference)")
    if "<lambda>" in qual:
        raise TypeError(
            f"{qual} is a lambda: isola sends functions by reference (module + name), and a "
            "lambda has no name to look up in another interpreter; define it with def at the "
            "top level of a module")
    if "<locals>" in qual:
        raise TypeError(
            f"{qual} is defined inside a function (a closure): another interpreter cannot "
            "find it by name; define it at the top level of a module and pass what it "
            "uses as arguments")
    return f"{mod}:{qual}"


# -- the caller's main script, as workers see it (issue #31.2/3/5) ----------

def _main_file(main):
    """The __main__ script's path if it is a file workers can import, else
    None (standard input, -c, an interactive session)."""
    f = getattr(main, "__file__", None)
    if isinstance(f, str) and _os.path.isfile(f):
        return _os.path.abspath(f)
    return None


_guard_spans = {}  # (path, mtime) -> _script_spans(path)


def _mentions_name(test):
    # An `if` about __name__ (`__name__ == "__main__"`, either way round,
    # alone or in a larger test): its body counts as guarded.  Lenient on
    # purpose: a guard taken for none would refuse a working script.
    import ast
    return any(isinstance(n, ast.Name) and n.id == "__name__" for n in ast.walk(test))


def _script_spans(path):
    """([(first, last)] of the script's top-level statements, [(first,
    last)] of every `if` about __name__ at any depth), cached; None if the
    script cannot be read."""
    try:
        key = (path, _os.stat(path).st_mtime_ns)
    except OSError:
        return None
    spans = _guard_spans.get(key)
    if spans is None:
        import ast
        try:
            with open(path, "rb") as f:
                tree = ast.parse(f.read(), path)
        except (OSError, SyntaxError, ValueError):
            return None
        top = [(n.lineno, n.end_lineno or n.lineno) for n in tree.body]
        guards = [(n.lineno, n.end_lineno or n.lineno) for n in ast.walk(tree)
                  if isinstance(n, ast.If) and _mentions_name(n.test)]
        spans = _guard_spans[key] = (top, guards)
    return spans


def _unguarded_line(main, path):
    """If the __main__ script's top level is running now (making a pool)
    outside `if __name__ == "__main__":`, the line of that statement: a
    worker importing the script would run it again.  Else 0."""
    f = _sys._getframe(1)
    g = vars(main)
    while f is not None and not (f.f_code.co_name == "<module>" and f.f_globals is g):
        f = f.f_back
    if f is None or _os.path.abspath(f.f_code.co_filename) != path:
        return 0  # not from the script's top level (a function run later, a thread)
    line = f.f_lineno or 0
    spans = _script_spans(path)
    if spans is None or any(first <= line <= last for first, last in spans[1]):
        return 0
    for first, last in spans[0]:
        if first <= line <= last:
            return first
    return 0


def _main_refusal(main, path):
    """(exception class, text) for sending a name of __main__ to this
    pool's workers, when they cannot have it; None when they can."""
    if path is None:
        where = ("standard input (`python -`)" if getattr(main, "__file__", None) == "<stdin>"
                 else "no file (`python -c` or an interactive session)")
        return (TypeError, "{name} is defined in __main__, which was read from " + where +
                ": workers import the main script by its path to find its functions and "
                "classes. Save the script to a file and run that, or define {name} in an "
                "importable module")
    line = _unguarded_line(main, path)
    if not line:
        return None
    return (RuntimeError, "{name} belongs to the main script " + path + ", which makes "
            "this pool outside `if __name__ == \"__main__\":` (line " + str(line) + "). "
            "Workers import the script to find its functions and classes, and that would "
            "make a pool again: put the code that starts the pool under that guard, as "
            "with multiprocessing's spawn")


def _check_main_target(target, refusal):
    # A "__main__:name" target the workers cannot resolve: say why, here.
    if refusal is not None and target.startswith("__main__:"):
        cls, text = refusal
        raise cls("isola: " + text.replace("{name}", target.partition(":")[2]))
    return target


class _Waiters(list):
    """A Future's _waiters: concurrent.futures.wait() and as_completed()
    append to it; that is when the Future needs notifying."""

    __slots__ = ("_fut",)

    def append(self, waiter):
        list.append(self, waiter)
        fut = self._fut()  # a weak reference: no cycle, freed at once
        if fut is not None:
            fut._listen()


class Future(_cf.Future):
    """A concurrent.futures.Future for a task in an isola Pool.

    Keeps the concurrent.futures contract: cancel() cancels a task that
    has not started and returns False once it runs.  Works with wait /
    as_completed and asyncio.wrap_future, and can be awaited.  isola's
    extra: interrupt() also stops a running task (isola.Cancelled is
    raised inside it at its next bytecode boundary).
    """

    # The task's state lives in the C future; this object mirrors it for
    # the stdlib's wait()/as_completed(), which read _state directly.
    # result() waits on the C future and completes this Future on the
    # caller's thread.  Only a listener (a callback, wait(), as_completed,
    # asyncio) makes the pool post a completion for the dispatcher thread:
    # a synchronous call then costs no thread hop and no GIL hand-off.

    def __init__(self, cfut, completions=None, condition=None):
        if condition is not None and _SHARE_CONDITION:
            self._condition = condition
            self._state = "PENDING"
            self._result = None
            self._exception = None
            self._done_callbacks = []
        else:
            super().__init__()
        self._waiters = _Waiters()
        self._waiters._fut = _weakref.ref(self)
        self._cfut = cfut
        self._completions = completions
        self._isola_completed = False
        self._isola_listened = False

    # Automatic placement (Pool(auto_place=True)): how to run the task
    # again in the process lane if a sub-interpreter refuses an import
    # under it: (weak pool, kind, target, args, kwargs, timeout, inputs),
    # or None; inputs: a task graph's [(C future, position, keyword)].
    _retry = None

    def _settle(self, cfut=None):
        # Complete from cfut (default: the current C future), done.
        cfut = self._cfut if cfut is None else cfut
        _complete(self, cfut.outcome(), cfut)

    def _poll(self):
        # Complete from the C future if it is done (any thread).
        if not self._isola_completed and self._cfut.state() >= _C_DONE:
            self._settle()

    def _listen(self):
        # Something other than result() waits: have the completion posted
        # to the dispatcher (or complete now if it is done already).
        if self._isola_listened or self._isola_completed:
            return
        self._isola_listened = True
        comp = self._completions
        if comp is not None and comp.watch(self):
            return
        self._poll()

    def add_done_callback(self, fn):
        self._listen()
        super().add_done_callback(fn)

    def done(self):
        self._poll()
        return super().done()

    def cancelled(self):
        self._poll()
        return super().cancelled()

    def running(self):
        return not self.done() and self._cfut.state() == _C_RUNNING

    def cancel(self):
        """Cancel the task if it has not started: True if it is (now)
        cancelled, False if it runs or has finished."""
        self._cfut.cancel(False)  # only a queued task; never interrupts
        self._poll()
        return super().cancelled()

    def interrupt(self):
        """isola's extra: cancel the task, also if it is running (then
        isola.Cancelled is raised inside it at its next bytecode boundary;
        code blocked in a C call sees it when the call returns).  True if
        the request was made: the Future then ends cancelled, also when
        the task returns from a C call (time.sleep as the task itself)
        before Cancelled could reach it (its result is dropped), unless
        the task catches Cancelled and returns (then it has that result).
        False if the task had already returned."""
        ok = self._cfut.cancel(True)
        self._poll()
        return ok

    def _wait_inline(self, timeout):
        # True once the C future is done (this Future then completes at
        # once, or the dispatcher is completing it); False on timeout.
        if self._isola_completed:
            return True
        if timeout is not None and timeout < 0:
            timeout = 0
        while True:
            cfut = self._cfut
            if not cfut.wait(timeout):
                return False
            self._settle(cfut)
            if self._isola_completed or self._cfut is cfut:
                return True
            # Moved to the process lane (automatic placement): wait there.

    def result(self, timeout=None):
        if not self._wait_inline(timeout):
            raise TimeoutError()
        return super().result(timeout)

    def exception(self, timeout=None):
        if not self._wait_inline(timeout):
            raise TimeoutError()
        return super().exception(timeout)

    def __await__(self):
        import asyncio
        return asyncio.wrap_future(self).__await__()

    # multiprocessing's AsyncResult, for code written for Pool.apply_async.
    def get(self, timeout=None):
        """AsyncResult.get: the result (TimeoutError past timeout)."""
        return self.result(timeout)

    def ready(self):
        """AsyncResult.ready: done()."""
        return self.done()

    def successful(self):
        """AsyncResult.successful: True if it returned a value; ValueError
        if it has not ended."""
        if not self.done():
            raise ValueError(f"{self!r} not ready")
        return not self.cancelled() and self.exception() is None


# _Future.state() values: isola_future_state in isola.h, from the C module
# (states from DONE on are the ended ones).
_C_PENDING, _C_RUNNING, _C_DONE = _FUTURE_PENDING, _FUTURE_RUNNING, _FUTURE_DONE


def _complete(fut, outcome, cfut=None):
    # Called by the dispatcher and by an inline waiter: only the first acts.
    kind, value = outcome
    if fut._retry is not None and cfut is not None:
        if kind == "ok":
            _interp_worked(fut)
        elif kind == "error" and not isinstance(value, InputFailed):
            # (An input that failed says nothing of this target: its
            # refusal, if it was one, is the input's own.)
            module = _refused_module(value)
            if module is not None and _move_to_processes(fut, cfut, module):
                return
    with fut._condition:
        if fut._isola_completed or (cfut is not None and fut._cfut is not cfut):
            return  # done, or an outcome of a C future it has left
        fut._isola_completed = True
        fut._retry = None  # its arguments are not kept past completion
    # Refusals a package caught (silent fallbacks) were recorded before
    # the task's C future completed: warn now, on the caller's side and
    # before the Future is done, once per module.  One C call when there
    # is nothing new.  A warning made an error (-W error) is raised once
    # the Future is complete.
    warned = None
    if _fallbacks_recorded() != _fallbacks_seen:
        try:
            _check_fallbacks()
        except Warning as exc:
            warned = exc
        except Exception:  # never in the way of the outcome (stats() has them)
            pass
    _set_outcome(fut, kind, value)
    if warned is not None:
        raise warned


def _set_outcome(fut, kind, value):
    base = _cf.Future
    try:
        if kind == "ok":
            base.set_result(fut, value)
        elif kind == "error":
            base.set_exception(fut, value)
        elif kind == "cancelled":
            base.cancel(fut)
            base.set_running_or_notify_cancel(fut)  # wake wait()/as_completed()
        elif kind == "timeout":
            base.set_exception(fut, TimeoutError("the task ran past its timeout and was interrupted"))
        elif kind == "crashed":
            cls = BrokenPool if value[0] == "isola.BrokenPool" else WorkerCrashed
            base.set_exception(fut, cls(value[1]))
        elif value:  # closed, and the scheduler said why (an actor that is gone)
            base.set_exception(fut, ChannelClosed(value))
        else:
            base.set_exception(fut, RuntimeError("the pool shut down before the task ran"))
    except _cf.InvalidStateError:
        pass


def _async_callbacks(callback, error_callback):
    # apply_async's callback / error_callback as one done callback.
    def done(fut):
        if fut.cancelled():
            if error_callback is not None:
                error_callback(_cf.CancelledError())
            return
        exc = fut.exception()
        if exc is None:
            if callback is not None:
                callback(fut.result())
        elif error_callback is not None:
            error_callback(exc)
    return done


def _report_orphan(type_name, message, traceback):
    # A submitted task failed and its Future had been dropped unread
    # (pypool.c: report_orphan): say so, as an uncaught exception in a
    # thread is printed, instead of losing it (issue #31.1).
    try:
        import logging
        logging.getLogger("isola").error(
            "isola: a task failed and its Future was dropped, so nobody can see its exception "
            "(keep the Future and call result() to handle it):\n%s",
            traceback.rstrip() or f"{type_name}: {message}")
    except Exception:
        pass


class _Completions:
    """Completions posted for Futures that have listeners (Future._listen)
    -> those Futures, completed by a dispatcher thread in the caller's
    interpreter; workers never touch this interpreter."""

    def __init__(self, done_channel):
        self._lock = _threading.Lock()
        self._condition = _threading.Condition()  # shared by this pool's futures
        self._waiting = {}  # token -> Future, for posted completions
        self._thread = _threading.Thread(target=self._run, args=(done_channel,),
                                         name="isola-completions", daemon=False)
        self._thread.start()

    def register(self, cfut):
        return Future(cfut, self, self._condition)

    def watch(self, fut):
        """True if fut's completion will be posted; False if it is done."""
        token = fut._cfut.token
        with self._lock:
            self._waiting[token] = fut
        if fut._cfut.notify():
            return True
        with self._lock:
            self._waiting.pop(token, None)
        return False

    def _run(self, done_channel):
        for token in done_channel:  # ends when the pool closes the channel
            if type(token) is list:
                _report_orphan(*token)
                continue
            with self._lock:
                fut = self._waiting.pop(token, None)
            if fut is None:
                continue
            try:
                cfut = fut._cfut
                if cfut.token == token:  # else it moved to another C future
                    fut._settle(cfut)
            except BaseException as exc:  # never let the dispatcher die
                try:
                    fut.set_exception(exc)
                except _cf.InvalidStateError:
                    pass
            del fut  # do not keep the last one alive until the next

    def join(self, timeout=None):
        self._thread.join(timeout)


# -- the process lane: placement ------------------------------------------------

class WorkerCrashed(_cf.BrokenExecutor):
    """The process worker running the task died (a signal such as SIGSEGV
    or SIGKILL, or os._exit): only that task fails; the worker is
    replaced and the pool goes on.  The message names the signal or the
    exit status.  A concurrent.futures.BrokenExecutor, as multiprocessing's
    BrokenProcessPool is."""


LANES = ("interpreter", "process")

_REFUSAL = None


def _refused_module(exc):
    """The module named by a sub-interpreter refusal ("module X does not
    support loading in subinterpreters", CPython's ImportError for
    single-phase extensions) in exc, its chain, notes or remote
    traceback; None if exc is not one."""
    global _REFUSAL
    # The one check (src/interp/refusal.c: the exception or its chain is
    # CPython's refusal); then, for what that check does not see in a
    # decoded remote exception, its text, notes and remote traceback.
    try:
        name = _subinterp_refusal(exc)
    except Exception:
        name = None
    if name:
        return name
    if _REFUSAL is None:
        import re
        _REFUSAL = re.compile(r"module '?([\w.]+)'? does not support loading in subinterpreters")
    seen = set()
    while isinstance(exc, BaseException) and id(exc) not in seen:
        seen.add(id(exc))
        texts = [str(exc), getattr(exc, "remote_traceback", None)]
        texts.extend(getattr(exc, "__notes__", None) or ())
        for text in texts:
            m = _REFUSAL.search(text) if isinstance(text, str) else None
            if m is not None:
                return m.group(1)
        exc = exc.__cause__ or exc.__context__
    return None


# -- silent fallbacks (issue #33) ---------------------------------------------
# A package that catches its extension's refusal and runs a slower path
# (PyYAML, msgpack, simplejson, rapidfuzz) fails nothing: the workers
# record such refusals (src/interp/refusal.h) and the pool reports them in
# stats()["fallbacks"] and with one RuntimeWarning per module.

_fallbacks_seen = 0  # _fallbacks_recorded() when this interpreter last looked
_FRONT_FILE = _sys._getframe().f_code.co_filename  # this file, as compiled


def _outside_stacklevel():
    # The stacklevel, for a warn() in the function calling this one, of
    # the first frame outside this file: the caller's code (a result(),
    # a stats()) or the dispatcher thread's.  (warn's skip_file_prefixes
    # does not skip them in 3.12 and 3.13.)
    f = _sys._getframe(1)
    level = 1
    while f is not None and f.f_code.co_filename == _FRONT_FILE:
        f = f.f_back
        level += 1
    return level


def _check_fallbacks():
    # Some pool recorded a new fallback: have this interpreter's pools
    # read theirs (each warns once per new module).
    global _fallbacks_seen
    n = _fallbacks_recorded()
    if n == _fallbacks_seen:
        return
    _fallbacks_seen = n
    for _ in range(8):
        try:
            pools = list(_live_pools)
            break
        except RuntimeError:  # a pool made meanwhile by another thread
            pools = []
    for pool in pools:
        pool._fallbacks_update()


def _fallback_text(modules, target):
    """The warning for modules first refused (and caught) under target."""
    one = len(modules) == 1
    head = (f"isola: {', '.join(modules)} {'refuses' if one else 'refuse'} sub-interpreters "
            f"and {'its package' if one else 'their packages'} caught that: "
            f"{'its' if one else 'their'} fallback (typically slower pure Python) runs in "
            "interpreter workers")
    if ":" in target:
        return (f"{head}, first under {target}; for the C speed, place {target} in processes "
                f"(Pool(place={{{target!r}: 'process'}}) or lane='process')")
    where = {"preload": "while the workers imported their preload= modules",
             "init": "while the workers ran their init or initializer",
             "run": "under pool.run()"}.get(target, f"under {target}")
    return (f"{head}, first {where}; for the C speed, place the targets that use "
            f"{'it' if one else 'them'} in processes (Pool(place={{'module': 'process'}}) "
            "or lane='process')")


def _interp_worked(fut):
    # The target ran in an interpreter: no need to keep its arguments for
    # a retry from now on.
    retry = fut._retry
    pool = retry[0]() if retry is not None else None
    if pool is not None:
        pool._interp_ok.add(retry[2])


def _move_to_processes(fut, cfut, module):
    # fut's task was refused by a sub-interpreter: run it again in the
    # process lane and place its target there from now on.  True if fut
    # now follows a new C future (or already left cfut); False to let the
    # error stand.
    retry = fut._retry
    pool = retry[0]() if retry is not None else None
    if pool is None:
        return False
    _, kind, target, args, kwargs, timeout, inputs = retry
    try:
        pool._refused(target, module)
        lane = pool._ensure_lane()
    except Exception:
        return False
    with fut._condition:
        if fut._isola_completed or fut._cfut is not cfut or fut._retry is not retry:
            return True  # another thread moved it (or completed it) already
        try:
            if kind == "chunk":
                new = lane.map_chunk(pool._c, target, args)
            elif inputs:  # a task graph's: its inputs' results go to the child as they are
                new = lane.submit(pool._c, target, args, kwargs, timeout, inputs)
            else:
                new = lane.submit(pool._c, target, args, kwargs, timeout)
        except Exception:
            return False
        fut._retry = None
        fut._cfut = new
        listened = fut._isola_listened
        fut._isola_listened = False
    if listened:
        fut._listen()
    return True


def _lane_env(paths, preload, init_src):
    env = dict(_os.environ)
    env["ISOLA_PROC_PATH"] = _os.pathsep.join(paths)
    env["ISOLA_PROC_PRELOAD"] = ",".join(preload)
    env["ISOLA_PROC_INIT"] = init_src or ""
    old = env.get("PYTHONPATH")
    env["PYTHONPATH"] = _os.pathsep.join(paths + ([old] if old else []))
    return [f"{k}={v}" for k, v in env.items()]


class BrokenPool(_cf.BrokenExecutor):
    """A worker could not be set up (preload, init or initializer failed):
    the pool is unusable.  A concurrent.futures.BrokenExecutor."""


_live_pools = _weakref.WeakSet()  # pools not yet joined (shutdown(wait=True))
_dropped_pools = set()  # _DroppedPool: pools dropped before they were joined
_abandoned = []  # pools left with tasks stuck past their grace (kept alive)
_exiting = False
_stopped_by_signal = False  # Ctrl-C reached a shutdown

# isola_pool_shutdown's how (isola.h).
_SHUTDOWN_CANCEL, _SHUTDOWN_INTERRUPT = 1, 2
_STOP = _SHUTDOWN_CANCEL | _SHUTDOWN_INTERRUPT

STOP_GRACE = 2.0  # seconds an interrupted task gets before it is abandoned


def _shutdown_all():
    # At exit, before threads are joined: as concurrent.futures does, wait
    # for what was submitted (queued work runs), then join every pool.
    # Once the user asks to stop (Ctrl-C here or earlier), running tasks
    # are interrupted, and what does not stop within its pool's grace is
    # abandoned: the process then exits without finalizing interpreters
    # that threads still run in (_exit_abandoning).
    global _exiting, _stopped_by_signal
    _exiting = True
    last = getattr(_sys, "last_exc", None) or getattr(_sys, "last_value", None)
    if isinstance(last, KeyboardInterrupt):  # Ctrl-C ended the program: stop
        _stopped_by_signal = True
    for pool in list(_live_pools) + list(_dropped_pools):
        while pool not in _abandoned:
            try:
                pool._join(_STOP if _stopped_by_signal else pool._exit_how, None)
                break
            except KeyboardInterrupt:
                _stopped_by_signal = True  # then again, bounded
            except Exception:
                break
    if _abandoned:
        _exit_abandoning()


def _exit_abandoning():
    # Tasks stuck in C calls still run in worker interpreters: finalizing
    # those interpreters under them would crash, so, after one more look
    # (a stuck task may have ended), the process ends here: the remaining
    # atexit handlers run, the standard streams are flushed, and the exit
    # status is what CPython would have given for a Ctrl-C (death by
    # SIGINT) or an unhandled exception (1), else 0.
    stuck = [p for p in _abandoned if not p._c.shutdown(_STOP, True, 0)]
    if not stuck:
        return
    import atexit
    import signal
    for p in stuck:
        _warn_abandoned(p, "the program exits")
    try:
        atexit._run_exitfuncs()
    except BaseException:
        pass
    for f in (_sys.stdout, _sys.stderr):
        try:
            f.flush()
        except Exception:
            pass
    _trace_close_all()  # trace files end valid: os._exit skips the C atexit hook
    last = getattr(_sys, "last_exc", None) or getattr(_sys, "last_value", None)
    if _stopped_by_signal or isinstance(last, KeyboardInterrupt):
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        _os.kill(_os.getpid(), signal.SIGINT)
        _os._exit(130)
    _os._exit(1 if last is not None else 0)


def _warn_abandoned(pool, what):
    try:
        workers = pool._c.stats()["workers"]
    except Exception:
        workers = []
    names = "; ".join(f"worker {i}: {w['running']} (running {w['running_seconds']:.1f} s)"
                      for i, w in enumerate(workers) if w.get("running"))
    msg = (f"isola: {what} with task(s) still running {pool._grace:g} s after they "
           f"were interrupted, abandoned: {names or 'unknown'}")
    try:
        import warnings
        warnings.warn(msg, RuntimeWarning, stacklevel=4)
    except Exception:
        _sys.stderr.write(msg + "\n")


if hasattr(_threading, "_register_atexit"):  # before threads are joined at exit
    _threading._register_atexit(_shutdown_all)


def _warn_fork():
    # os.fork() with live sub-interpreters: the child cannot use them, and
    # CPython's own after-fork cleanup may crash in the child (plain
    # concurrent.interpreters does the same).  Say so before it happens.
    if any(not p._closed for p in list(_live_pools)):
        import warnings
        warnings.warn(
            "os.fork() while an isola Pool is running: the child cannot use the pool's "
            "interpreters and may crash in CPython's after-fork cleanup; start processes "
            "with subprocess, or multiprocessing's 'forkserver' or 'spawn' start method",
            RuntimeWarning, stacklevel=2)
        _sys.stderr.flush()


if hasattr(_os, "register_at_fork"):
    _os.register_at_fork(before=_warn_fork)


def _batched(iterable, n):
    # itertools.batched (3.12+) as lists of argument tuples.
    it = iter(iterable)
    while True:
        batch = list(_itertools.islice(it, n))
        if not batch:
            return
        yield batch


def _check_buffersize(buffersize):
    if buffersize is not None and not isinstance(buffersize, int):
        raise TypeError("buffersize must be an integer or None")
    if buffersize is not None and buffersize < 1:
        raise ValueError("buffersize must be None or > 0")


def _init_source(initializer, initargs, allow_pickle):
    # Source run on every worker at start that calls initializer(*initargs).
    if initializer is None:
        return ""
    if not callable(initializer):
        raise TypeError("initializer must be a callable")
    args = dumps(tuple(initargs), allow_pickle=allow_pickle)
    return (f"import isola\nisola._call_initializer({_target_of(initializer)!r}, "
            f"{args!r}, {bool(allow_pickle)!r})\n")


def _call_initializer(target, args, allow_pickle):
    """On a worker, at start: the pool's initializer(*initargs)."""
    _resolve_target(target)(*loads(args, allow_pickle=allow_pickle))


# -- progress lines ------------------------------------------------------------
# The one progress line of Pool.map(progress=True), Executor.map(progress=True)
# and `isola map` (which takes it as isola._progress): drawn on standard
# error (or the stream given) only when that is a terminal, at most every
# `interval` seconds, as
#     [#########                     ] 300/1000  1234/s  ETA 1s
#     300 done  1234/s                       (the total unknown)
# with "errors N" after it when the caller counts errors.  Here, not in a
# submodule, so that it works wherever the module does (C embedders too).

_PROGRESS_WIDTH = 30


def _progress_isatty(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


def _progress_text(done, total, elapsed, errors=None):
    """The text of the line (no carriage return) for `done` items of
    `total` (None: unknown) after `elapsed` seconds."""
    rate = done / elapsed if elapsed > 0 else 0.0
    if total:
        filled = min(_PROGRESS_WIDTH, int(_PROGRESS_WIDTH * done / total))
        eta = (total - done) / rate if rate > 0 else 0
        line = (f"[{'#' * filled}{' ' * (_PROGRESS_WIDTH - filled)}] {done}/{total}"
                f"  {rate:.0f}/s  ETA {eta:.0f}s")
    else:
        line = f"{done} done  {rate:.0f}/s"
    if errors is not None:
        line += f"  errors {errors}"
    return line + " "


class _ProgressLine:
    """A progress line on a terminal; does nothing when the stream is not
    one (enabled=False turns it off, True forces it)."""

    def __init__(self, total=None, stream=None, interval=0.1, enabled=None, t0=None):
        self.stream = _sys.stderr if stream is None else stream
        self.enabled = _progress_isatty(self.stream) if enabled is None else bool(enabled)
        self.total = total
        self.interval = interval
        self.t0 = _time.monotonic() if t0 is None else t0
        self.last = float("-inf")  # the first update draws
        self.drawn = False

    def update(self, done, errors=None, final=False):
        """Redraw with `done` items finished (at most every interval,
        always when final; final ends the line)."""
        if not self.enabled:
            return
        t = _time.monotonic()
        if not final and t - self.last < self.interval:
            return
        self.last = t
        text = "\r" + _progress_text(done, self.total, t - self.t0, errors)
        try:
            self.stream.write(text + ("\n" if final else ""))
            self.stream.flush()
        except (OSError, ValueError):
            self.enabled = False  # the terminal went away: stop drawing
            return
        self.drawn = not final

    def clear(self):
        """End a line left drawn (before other output)."""
        if self.drawn:
            try:
                self.stream.write("\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass
            self.drawn = False


def _progress_track(iterator, total, stream=None):
    """Yield from iterator, drawing the progress line as items come; the
    line is finished when the iterator is, and ended when it stops early."""
    bar = _ProgressLine(total, stream)
    if not bar.enabled:
        yield from iterator
        return
    done = 0
    try:
        for item in iterator:
            done += 1
            bar.update(done)
            yield item
            del item  # keep no result alive after yielding it
        bar.update(done, final=True)
    finally:
        bar.clear()


_progress = _types.SimpleNamespace(ProgressLine=_ProgressLine, format_line=_progress_text,
                                   track=_progress_track)


def _known_length(iterables):
    # The number of argument sets zip(*iterables) gives, when every
    # iterable knows its length (None otherwise).
    try:
        return min(len(it) for it in iterables)
    except (TypeError, ValueError):
        return None


def _with_progress(results, total):
    # Pool.map(progress=True): the shared progress line (below).
    return _progress_track(results, total)


class Pool:
    """A pool of workers, each an OS thread hosting its own sub-interpreter.

    Pool(workers=None, preload=(), init=None, path=(), *, initializer=None,
         initargs=(), allow_pickle=True)

    workers: number of interpreters (default: the number of CPUs).
    preload: modules every worker imports at start.
    init: source code every worker runs at start (after preload).
    initializer, initargs: initializer(*initargs) runs on every worker at
        start (after init), as with concurrent.futures executors.
    path: extra sys.path entries for the workers (the caller's sys.path is
        passed on too, so the workers find the same modules).
    allow_pickle: accept the pickle fallback for arguments and results
        (turn it off for untrusted peers).
    trace: a file to write a timeline of every task to (Trace Event
        Format JSON: open it in https://ui.perfetto.dev or
        chrome://tracing, or draw it with scripts/trace-plot); complete
        once the pool is shut down.  Default: the ISOLA_TRACE environment
        variable, if set.
    processes: process workers for code sub-interpreters refuse (a child
        process each, started from sys.executable with the same path,
        preload, init and initializer, running tasks in its main
        interpreter).  None (default): started when first needed, as many
        as there are workers; 0: none; N: N, started now.
    place: {"module" or "module:qualname": "process" | "interpreter"}:
        where targets run ("numpy_stats" covers numpy_stats.sub too).
    auto_place: a task refused by a sub-interpreter (an ImportError "does
        not support loading in subinterpreters" anywhere under its
        import) runs again in a process worker, and its target runs there
        from then on (one RuntimeWarning per module).  False: the error
        stands.

    If a worker's setup fails, Pool() raises isola.BrokenPool (a
    concurrent.futures.BrokenExecutor) with the worker's traceback.

    Use it as a context manager: leaving the block shuts it down, waiting
    for what was submitted; if the block raised (Ctrl-C included), queued
    work is cancelled and running tasks are interrupted instead.  A Pool
    dropped without shutdown() does the same in the background (the
    dropping thread never waits; a task still running stop_grace seconds
    later is abandoned with a warning).
    """

    def __init__(self, workers=None, preload=(), init=None, path=(), *, initializer=None,
                 initargs=(), allow_pickle=True, stop_grace=None, trace=None, processes=None,
                 place=None, auto_place=True):
        if workers is not None and workers <= 0:
            raise ValueError("workers must be greater than 0")
        if workers is not None and workers > MAX_WORKERS:
            raise ValueError(f"workers must be at most {MAX_WORKERS} (each is a thread with its "
                             f"own interpreter, about 2.5 MB), got {workers}")
        if stop_grace is None:  # isola.STOP_GRACE, as the user may have set it
            stop_grace = getattr(_sys.modules.get("isola"), "STOP_GRACE", STOP_GRACE)
        self._grace = float(stop_grace)
        if self._grace < 0:
            raise ValueError("stop_grace must be >= 0")
        main = _sys.modules.get("__main__")
        main_file = _main_file(main)
        self._main_refusal = _main_refusal(main, main_file)
        paths = [_os.fspath(p) for p in path]
        for p in _sys.path:
            if p and p not in paths:
                paths.append(p)
        if main_file:
            script_dir = _os.path.dirname(main_file)
            if script_dir not in paths:
                paths.insert(0, script_dir)
            # What workers send back as the script's (their __isola_main__)
            # is this __main__, as multiprocessing maps __mp_main__.
            _sys.modules.setdefault("__isola_main__", main)
        init_src = ""
        if main_file:
            refusal = (None if self._main_refusal is None else
                       self._main_refusal[1].replace("{name}", "this name"))
            init_src += (f"import isola\nisola._set_main_path({main_file!r}, "
                         f"{('isola: ' + refusal) if refusal else None!r})\n")
        if init:
            init_src += init + "\n"
        if initializer is not None:
            _check_main_target(_target_of(initializer), self._main_refusal)
        init_src += _init_source(initializer, initargs, allow_pickle)
        if processes is not None and (not isinstance(processes, int) or processes < 0):
            raise ValueError("processes must be None or an int >= 0")
        self._place = {}
        for key, lane in (place or {}).items():
            if lane not in LANES:
                raise ValueError(f"place[{key!r}] must be one of {LANES}, got {lane!r}")
            self._place[key] = lane
        self._c = _Pool(workers or 0, paths, list(preload), init_src or None, allow_pickle,
                        None if trace is None else _os.fspath(trace))
        self._closed = False
        self._lock = _threading.Lock()
        self._completions = _Completions(self._c.done_channel())
        self._auto_place = bool(auto_place) and processes != 0
        self._processes = processes
        self._lane = None
        self._lane_box = [None]  # the lane, for _pool_dropped
        self._lane_setup = (paths, list(preload), init_src)
        self._placed = {}      # target -> "process" | "interpreter" (decided)
        self._why = {}         # target -> why it runs in processes
        self._refusing = {}    # module -> first target it moved
        self._interp_ok = set()  # targets that ran in an interpreter
        self._fallbacks = {}   # module -> {"target", "refusals"}: silent fallbacks
        self._fallback_lock = _threading.Lock()
        # Private: callable(modules, target) that reports new fallbacks
        # instead of the RuntimeWarning (isola map: its tasks are its own
        # chunk function, and it speaks of --lane).  Any thread.
        self._on_fallback = None
        self._self_ref = _weakref.ref(self)
        # Dropped before it is joined: stopped with _drop_how (cancel and
        # interrupt; an Executor's pool: finish what was submitted) and
        # joined in the background, never by the dropping thread.
        self._drop_how = [_STOP]
        self._exit_how = 0  # at exit: wait for what was submitted
        self._dropped = _weakref.finalize(self, _pool_dropped, self._c, self._completions,
                                          self._grace, self._drop_how, self._lane_box)
        self._dropped.atexit = False  # at exit, _shutdown_all joins every pool
        _live_pools.add(self)
        if processes:
            try:
                self._ensure_lane(wait=True)
            except BaseException:
                self.shutdown(wait=True, interrupt=True)
                raise

    # -- tasks -------------------------------------------------------------

    def _target(self, fn):
        # fn's "module:qualname"; an error here, not in a worker, for a
        # name of a script the workers cannot import.
        return _check_main_target(_target_of(fn), self._main_refusal)

    def submit(self, fn, /, *args, **kwargs):
        """Run fn(*args, **kwargs) on a worker; returns a Future."""
        return self.apply_async(fn, args, kwargs)

    def apply(self, fn, args=(), kwds=None, *, timeout=None, lane=None):
        """fn(*args, **kwds) on a worker: waits and returns its value (or
        raises its exception), as multiprocessing.Pool.apply.  timeout: a
        task that runs longer is interrupted (isola.Cancelled inside it)
        and apply raises TimeoutError.  lane: as for apply_async."""
        return self.apply_async(fn, args, kwds, timeout=timeout, lane=lane).result()

    def apply_async(self, fn, args=(), kwds=None, callback=None, error_callback=None, *,
                    timeout=None, lane=None):
        """fn(*args, **kwds) on a worker; returns a Future at once (it also
        has multiprocessing's AsyncResult get/ready/successful).  callback
        (value) or error_callback(exception) runs when it ends, on a thread
        of this interpreter.  timeout: as for apply (the Future then raises
        TimeoutError).  lane: "interpreter" or "process" for this call
        (default: the target's placement, see Pool's place=)."""
        if self._closed or _exiting:
            self._check_open()
        target = self._target(fn)
        if lane is None:
            lane = self._lane_of(target)
        elif lane not in LANES:
            raise ValueError(f"lane must be one of {LANES}, got {lane!r}")
        args, kwds, inputs = self._inputs_of(args, kwds)
        if lane == "process":
            # With inputs (a task graph), the task waits inside the lane and
            # the child gets their encoded results: no thread here waits.
            lane_ = self._ensure_lane()
            if inputs:
                cfut = lane_.submit(self._c, target, args, kwds or None, timeout, inputs)
            else:
                cfut = lane_.submit(self._c, target, args, kwds or None, timeout)
            fut = self._completions.register(cfut)
        else:
            if inputs:
                cfut = self._c.submit(target, args, kwds or None, timeout, inputs)
            else:
                cfut = self._c.submit(target, args, kwds or None, timeout)
            fut = self._completions.register(cfut)
            if self._auto_place and target not in self._interp_ok:
                fut._retry = (self._self_ref, "call", target, args, kwds or None, timeout,
                              inputs)
        if callback is not None or error_callback is not None:
            fut.add_done_callback(_async_callbacks(callback, error_callback))
        return fut

    def _inputs_of(self, args, kwargs):
        # Task graphs: Futures of this pool among the top-level arguments
        # become inputs (the task waits for them inside the pool and gets
        # their results); the rest of the arguments travel as usual.
        # Cheap when there are none: one isinstance per argument.
        Future_ = _cf.Future
        for a in args:
            if isinstance(a, Future_):
                break
        else:
            if not kwargs:
                return args, kwargs, None
            for a in kwargs.values():
                if isinstance(a, Future_):
                    break
            else:
                return args, kwargs, None
        inputs = []
        rest = []
        for i, a in enumerate(args):
            if isinstance(a, _cf.Future):
                inputs.append((self._input_future(a), i, None))
            else:
                rest.append(a)
        kw = {}
        for k, a in (kwargs or {}).items():
            if isinstance(a, _cf.Future):
                inputs.append((self._input_future(a), -1, k))
            else:
                kw[k] = a
        return rest, kw, inputs

    def _input_future(self, fut):
        if not isinstance(fut, Future):
            raise TypeError("a concurrent.futures.Future that is not an isola Future cannot "
                            "be an argument: pass its result(), or submit that work to this "
                            "pool and pass the Future it returns")
        if fut._completions is not self._completions:
            raise ValueError("a Future of another isola Pool cannot be an argument: only "
                             "Futures of the pool the task is submitted to are awaited")
        return fut._cfut

    def _submit_chunk(self, target, argsets):
        # One task calling target on each argument tuple: a Future of the
        # list of results.
        self._check_open()
        if self._lane_of(target) == "process":
            return self._completions.register(
                self._ensure_lane().map_chunk(self._c, target, argsets))
        fut = self._completions.register(self._c.map_chunk(target, argsets))
        if self._auto_place and target not in self._interp_ok:
            fut._retry = (self._self_ref, "chunk", target, argsets, None, None, None)
        return fut

    # -- placement ---------------------------------------------------------

    def _lane_of(self, target):
        lane = self._placed.get(target)
        if lane is not None:
            return lane
        lane = "interpreter"
        if self._place:
            module = target.partition(":")[0]
            lane = self._place.get(target)
            while lane is None and module:
                lane = self._place.get(module)
                module = module.rpartition(".")[0]
            lane = lane or "interpreter"
            if lane == "process":
                self._why.setdefault(target, "place=")
        if len(self._placed) < 65536:
            self._placed[target] = lane
        return lane

    def place(self, what, lane):
        """Run a target (a function, or "module" / "module:qualname") in
        lane ("process" or "interpreter") from now on."""
        if lane not in LANES:
            raise ValueError(f"lane must be one of {LANES}, got {lane!r}")
        key = what if isinstance(what, str) else _target_of(what)
        self._place[key] = lane
        self._placed.clear()

    def _refused(self, target, module):
        # A sub-interpreter refused module under target: place it in
        # processes, and say so once per module.
        self._placed[target] = "process"
        self._why[target] = f"{module} refuses sub-interpreters"
        if module in self._refusing:
            return
        self._refusing[module] = target
        import warnings
        warnings.warn(
            f"isola: {module} does not support sub-interpreters; {target} now runs in the "
            "pool's process workers (Pool(auto_place=False) keeps such errors; "
            "Pool(place={...}) places targets up front)", RuntimeWarning, stacklevel=2)

    def _fallbacks_update(self):
        # The C pool's silent-fallback records into self._fallbacks; one
        # RuntimeWarning per new module (grouped by the target they were
        # first refused under), unless that target runs in processes now.
        # Warned under the lock: whoever returns from here has seen
        # every warning for the records it read.
        with self._fallback_lock:
            try:
                records = self._c.fallbacks(0)
            except Exception:  # shut down: keep what was read
                return
            new = {}
            for module, target, times in records:
                entry = self._fallbacks.get(module)
                if entry is None:
                    self._fallbacks[module] = {"target": target, "refusals": times}
                    new.setdefault(target, []).append(module)
                else:
                    entry["refusals"] = times
            for target, modules in new.items():
                if ":" in target and self._lane_of(target) == "process":
                    continue  # moved (another module refused it outright): C speed there
                if self._on_fallback is not None:
                    self._on_fallback(modules, target)
                    continue
                import warnings
                warnings.warn(_fallback_text(modules, target), RuntimeWarning,
                              stacklevel=_outside_stacklevel())

    def _ensure_lane(self, wait=False):
        # The process lane, started on first use.
        lane = self._lane
        if lane is not None:
            return lane
        with self._lock:
            if self._lane is not None:
                return self._lane
            if self._closed or _exiting:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if self._processes == 0:
                raise RuntimeError("this pool has no process workers (Pool(processes=0))")
            exe = _sys.executable
            if not exe:
                raise RuntimeError("process workers need sys.executable (a Python to start)")
            paths, preload, init_src = self._lane_setup
            n = self._processes or self.size
            lane = _ProcLane(n, exe, [exe, "-m", "isola._proc_worker"],
                             _lane_env(paths, preload, init_src), self._grace)
            try:  # interpreter tasks may take its Futures as inputs (task graphs)
                lane.attach(self._c)
            except BaseException:
                lane.shutdown(_STOP, True)
                raise
            if wait:
                why = lane.wait_ready(None)
                if why is not None:
                    lane.shutdown(_STOP, True)
                    raise BrokenPool(f"a process worker could not be set up:\n{why}")
            self._lane = self._lane_box[0] = lane
            return lane

    def _map(self, fn, argsets, chunksize, timeout, buffersize):
        # The one map: chunks of chunksize argument tuples (from the
        # iterator argsets), at most
        # buffersize chunks in flight (None: all submitted at once, as
        # concurrent.futures does), results yielded in order and not kept.
        # timeout counts from this call.  When iteration stops early,
        # what is still queued is cancelled.
        _check_buffersize(buffersize)
        if chunksize < 1:
            raise ValueError("chunksize must be >= 1.")
        import time
        end = None if timeout is None else time.monotonic() + timeout
        target = self._target(fn)
        batches = _batched(argsets, chunksize)
        fs = _collections.deque()
        try:
            for batch in (batches if not buffersize else _itertools.islice(batches, buffersize)):
                fs.append(self._submit_chunk(target, batch))
        except BaseException:
            for f in fs:
                f.cancel()
            raise
        pool_ref = _weakref.ref(self)
        del self

        def results():
            try:
                fs.reverse()
                while fs:
                    if buffersize:
                        pool = pool_ref()
                        batch = next(batches, None) if pool is not None else None
                        if batch is not None:
                            fs.appendleft(pool._submit_chunk(target, batch))
                        del pool
                    f = fs.pop()
                    try:
                        chunk = f.result(None if end is None else end - time.monotonic())
                    finally:
                        f.cancel()
                        del f
                    chunk.reverse()
                    while chunk:
                        yield chunk.pop()
            finally:
                for f in fs:
                    f.cancel()

        return results()

    def map(self, fn, *iterables, chunksize=None, timeout=None, buffersize=None,
            progress=False):
        """Like the builtin map, in parallel: an iterator over fn(*args) for
        each args of zip(*iterables), in order.  Work is sent in chunks
        (default: about 4 per worker; with buffersize, 1); buffersize: at
        most that many chunks in flight, the input read as results are
        taken (infinite iterables work).  If iteration stops early (an
        exception, Ctrl-C), what is still queued is cancelled.
        progress=True: a progress line on standard error while results
        are taken (done/total when the length is known, rate, ETA), drawn
        only when standard error is a terminal."""
        self._check_open()
        total = _known_length(iterables) if progress else None
        argsets = zip(*iterables)
        if chunksize is None and buffersize:
            chunksize = 1
        elif chunksize is None:
            argsets = list(argsets)
            total = len(argsets)
            chunksize = max(1, len(argsets) // (4 * self.size))
        results = self._map(fn, argsets, chunksize, timeout, buffersize)
        return _with_progress(results, total) if progress else results

    def imap_unordered(self, fn, iterable, chunksize=1):
        """fn(x) for each x, yielded as they finish (any order)."""
        self._check_open()
        target = self._target(fn)
        futures = [self._submit_chunk(target, batch)
                   for batch in _batched(zip(iterable), chunksize)]
        try:
            for f in _cf.as_completed(futures):
                yield from f.result()
        finally:
            for f in futures:
                f.cancel()

    def run(self, source):
        """Run source code on every worker (e.g. to set a global); waits."""
        self._check_open()
        self._c.run(source)

    # -- actors ------------------------------------------------------------

    def spawn(self, cls, /, *args, restart=False, max_restarts=ACTOR_MAX_RESTARTS,
              restart_window=ACTOR_RESTART_WINDOW, **kwargs):
        """Create cls(*args, **kwargs) on one worker and return a proxy.

        Its methods run there one at a time, in the order they were called:
        proxy.method(...) returns a Future; proxy.send_message("method", ...)
        is fire and forget.  When a method raises, the caller gets the error
        and the actor lives on (unless its __isola_restart__(exc) hook raises).
        restart=True: when the constructor or that hook fails, or the actor
        is killed, build it again with the same arguments, up to max_restarts
        times within restart_window seconds; else (or past that) it stops.
        pool.monitor() reports each stop and restart.  When the constructor
        fails for good, the calls queued behind it raise its exception;
        later calls raise isola.ChannelClosed.
        """
        self._check_open()
        aid = self._c.spawn(self._target(cls), args, kwargs or None, bool(restart),
                            int(max_restarts), float(restart_window))
        return ActorProxy(self, aid, getattr(cls, "__qualname__", str(cls)))

    def monitor(self):
        """A Channel of {"actor": id, "event": "stopped"|"restarted", "reason": str}.
        It holds 1024 events: past that, events are dropped (workers never
        block on it) and counted in stats()["monitor_dropped"]."""
        return self._c.monitor()

    # -- state ---------------------------------------------------------------

    @property
    def size(self):
        """Number of workers."""
        return self._c.size

    def stats(self):
        """Per worker: tasks_run, busy_seconds, queue_depth, actors; and
        queued: tasks waiting in the shared queue; monitor_dropped: monitor
        events lost because nobody read the monitor; send_errors: actor
        send_message() calls that failed (the method raised, or the actor
        was gone), which nobody else is told of; processes: the process
        workers (pid, tasks_run, crashes, starts, running, blobs_mapped,
        blobs_copied), their queue and waiting (process tasks waiting for
        their input Futures);
        placement: {target: lane} for targets placed in processes, with
        why; refused: {module: the first target it moved to processes};
        fallbacks: {module: {"target": t, "refusals": n}} for extension
        modules a worker's sub-interpreter refused while the task went on
        without them (its package caught the ImportError and ran a
        fallback, typically slower pure Python): t is the first target
        under which it happened ("preload" / "init" for the workers'
        setup, "run" for pool.run), n how many imports were refused."""
        st = self._c.stats()
        lane = self._lane
        st["processes"] = (lane.stats() if lane is not None else
                           {"queued": 0, "waiting": 0, "workers": []})
        st["placement"] = {t: {"lane": "process", "why": self._why.get(t, "")}
                           for t, where in list(self._placed.items()) if where == "process"}
        st["refused"] = dict(self._refusing)
        self._fallbacks_update()
        with self._fallback_lock:
            st["fallbacks"] = {m: dict(e) for m, e in self._fallbacks.items()}
        return st

    def shutdown(self, wait=True, cancel_futures=False, *, interrupt=False, timeout=None):
        """Stop accepting work and wait for what was submitted (queued work
        runs, as concurrent.futures does).  Asking to stop bounds the wait:
        - cancel_futures: cancel what is queued; running tasks get the
          pool's stop_grace (default isola.STOP_GRACE, 2 s) to end, then
          are interrupted (isola.Cancelled inside them);
        - interrupt (isola's extra): cancel what is queued and interrupt
          running tasks at once;
        - timeout: shutdown returns within that many seconds: running
          tasks are interrupted when stop_grace (or, if less, the whole
          timeout) is left, and abandoned at the end;
        - Ctrl-C while waiting: the same as interrupt, then KeyboardInterrupt.
        A task still running stop_grace seconds after its interrupt (a C
        call that cannot be interrupted, such as time.sleep) is abandoned
        with a RuntimeWarning naming it; shutdown returns, and at exit the
        process ends without waiting for it.
        wait=False: return at once; the pool is joined in the background
        (and at exit at the latest)."""
        how = ((_SHUTDOWN_CANCEL if cancel_futures or interrupt else 0) |
               (_SHUTDOWN_INTERRUPT if interrupt else 0))
        with self._lock:
            first = not self._closed
            self._closed = True
        if cancel_futures and not interrupt and first:
            self._let_idle_workers_start()
        if wait:
            if interrupt:
                self._join(_STOP, None)
            elif cancel_futures:
                self._join(how, 2 * self._grace)  # the grace, then the grace after interrupting
            else:
                self._join(how, timeout)
            return
        self._c.shutdown(how, False)
        lane = self._lane
        if lane is not None:
            lane.shutdown(how, False)
        self._drop_how[0] = self._exit_how = how  # dropped later or at exit: what was asked
        if first:  # join in the background: the program can exit
            _threading.Thread(target=self._join_background, args=(how,),
                              name="isola-pool-join", daemon=True).start()

    def _join_background(self, how):
        self._c.shutdown(how, True)
        self._join_lane(how, None)

    def _let_idle_workers_start(self, bound=0.05):
        # Before cancel_futures drops what is queued: a worker that was idle
        # when a task arrived has been woken for it and is, in
        # ThreadPoolExecutor's terms, already running it; give woken
        # workers (at most `bound` seconds) to take their task, so that
        # cancelling keeps what an idle pool had started.
        import time
        end = time.monotonic() + bound
        while time.monotonic() < end:
            try:
                st = self._c.stats()
            except Exception:
                return
            if st["queued"] == 0 or all(w["running"] for w in st["workers"]):
                return
            time.sleep(0.001)

    def _join(self, how, timeout, what="shutdown returns"):
        # Wait for the workers, at most timeout seconds in all (None: no
        # bound) with how; the grace (at most what is left of timeout)
        # before the end, or at once when how interrupts, interrupt; then
        # abandon.  True once joined.
        global _stopped_by_signal
        import time
        with self._lock:
            self._closed = True  # no lane starts from now on
        grace = self._grace if timeout is None else min(self._grace, timeout)
        end = None if timeout is None else time.monotonic() + timeout
        try:
            lane = self._lane
            if lane is not None:  # stop taking work; the same how
                lane.shutdown(how, False)
            if how != _STOP:
                if self._c.shutdown(how, True, None if end is None else timeout - grace):
                    left = None if end is None else max(0.0, end - time.monotonic())
                    return self._join_lane(how, left) and self._joined()
            if end is not None:
                grace = max(0.0, min(grace, end - time.monotonic()))
            if lane is not None:  # interpreter tasks may wait on its Futures: stop it too
                lane.shutdown(_STOP, False)
            if self._c.shutdown(_STOP, True, grace):
                return self._join_lane(_STOP, None) and self._joined()
            # Maybe only tasks waiting on the lane's Futures are left: those
            # end with the lane, whose shutdown is bounded (a child still
            # running its grace after the interrupt is killed).
            if lane is not None and self._join_lane(_STOP, None) and \
                    self._c.shutdown(_STOP, True, 0):
                return self._joined()
        except KeyboardInterrupt:
            _stopped_by_signal = True
            raise
        if self not in _abandoned:
            _abandoned.append(self)
            _warn_abandoned(self, what)
        return False

    def _join_lane(self, how, timeout):
        # Join the process lane: with how for up to timeout, then
        # interrupting (a child still running its grace later is killed,
        # so this ends).
        lane = self._lane
        if lane is None:
            return True
        if how != _STOP and lane.shutdown(how, True, timeout):
            return True
        return lane.shutdown(_STOP, True)

    def _joined(self):
        self._completions.join()
        _live_pools.discard(self)
        _dropped_pools.discard(self)
        if self in _abandoned:
            _abandoned.remove(self)
        dropped = getattr(self, "_dropped", None)
        if dropped is not None:
            dropped.detach()
        return True

    def _check_open(self):
        if self._closed or _exiting:
            raise RuntimeError("cannot schedule new futures after "
                               + ("interpreter shutdown" if _exiting and not self._closed
                                  else "shutdown"))

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        failed = exc_type is not None
        self.shutdown(wait=True, cancel_futures=failed, interrupt=failed)
        return False

    def __repr__(self):
        state = "closed" if self._closed else f"{self.size} workers"
        return f"<isola.Pool {state}>"


class _DroppedPool:
    """What is left of a Pool dropped before it was joined: its C pool,
    completions and grace, held (in _dropped_pools) until joined, so that
    its workers are still stopped and joined, or abandoned, before the
    interpreter finalizes."""

    def __init__(self, c, completions, grace, how, lane):
        self._c, self._completions, self._grace = c, completions, grace
        self._exit_how = how
        self._lane = lane  # its process lane, or None
        self._lock = _threading.Lock()
        self._closed = True

    _join = Pool._join
    _join_lane = Pool._join_lane
    _joined = Pool._joined

    def _join_quietly(self, how):
        try:
            self._join(how, None, "a dropped pool stops")
        except BaseException:  # at exit, _shutdown_all takes over
            pass


def _pool_dropped(c, completions, grace, drop_how, lane_box):
    # weakref.finalize of a Pool, on the dropping thread: ask the pool to
    # stop (drop_how[0]) and join it in the background; the dropping
    # thread never waits (a task stuck in a C call would block it).
    how = drop_how[0]
    lane = lane_box[0]
    d = _DroppedPool(c, completions, grace, how, lane)
    _dropped_pools.add(d)
    try:
        c.shutdown(how, False)
        if lane is not None:
            lane.shutdown(how, False)
        try:
            t = _threading.Thread(target=d._join_quietly, args=(how,), name="isola-pool-join",
                                  daemon=True)
        except RuntimeError:  # a sub-interpreter without daemon threads
            t = _threading.Thread(target=d._join_quietly, args=(how,), name="isola-pool-join")
        t.start()
    except BaseException:  # interpreter shutdown: _shutdown_all joins it
        pass


class ActorProxy:
    """A handle on an actor: proxy.method(...) -> Future, in order."""

    def __init__(self, pool, actor_id, name):
        self._pool = pool
        self._id = actor_id
        self._name = name

    @property
    def id(self):
        return self._id

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        pool, aid = self._pool, self._id

        def method(*args, **kwargs):
            cfut = pool._c.call(aid, name, args, kwargs or None, True)
            return pool._completions.register(cfut)

        method.__name__ = name
        return method

    def send_message(self, method, /, *args, **kwargs):
        """Call method without waiting for (or seeing) its result."""
        self._pool._c.call(self._id, method, args, kwargs or None, False)

    def kill(self):
        """Kill the actor: queued calls fail; its restart policy applies."""
        self._pool._c.kill(self._id)

    def stats(self):
        """{"mailbox_depth": n, "alive": bool}"""
        return self._pool._c.actor_stats(self._id)

    def __repr__(self):
        return f"<isola actor {self._name} #{self._id & 0xffffffff}>"


def _travels(fn):
    """True if fn can be sent to a worker by reference (module:qualname);
    a str target is the pool's to check."""
    if isinstance(fn, str):
        return True
    try:
        _target_of(fn)
        return True
    except (TypeError, ValueError):
        return False


class Executor(_cf.ThreadPoolExecutor):
    # A ThreadPoolExecutor by type only (its methods are all replaced):
    # asyncio takes nothing else as a loop's default executor, and
    # InterpreterPoolExecutor is one for the same reason.
    """A concurrent.futures.Executor running on an isola Pool, keeping the
    executor contract exactly (CPython's own executor tests pass, see
    tests/python/test_stdlib_executor.py), so code written for executors
    (loop.run_in_executor, ...) takes it unchanged.

    Executor(max_workers=None, initializer=None, initargs=(), **pool_options)

    pool_options are isola.Pool's (preload, init, path, allow_pickle,
    stop_grace, trace, processes, place, auto_place): a callable whose
    import a sub-interpreter refuses (numpy, lxml, ...) runs in the pool's
    process workers, by itself (one RuntimeWarning per module) or as
    place= says, with the same Futures (issue #33).  As with the stdlib's
    executors, nothing starts until work arrives: the workers (all
    max_workers of them, in parallel) and their initializers start at the
    first submit() or map(), so an executor that is never used costs
    nothing and shuts down at once.  A
    failing initializer makes the executor broken at that point: the
    error is logged to the "concurrent.futures" logger, and submit()
    raises isola.BrokenPool (a concurrent.futures.BrokenExecutor), then
    and from then on.  Futures are isola.Future: cancel() as the contract
    says, interrupt() to stop a running task.  An executor dropped without
    shutdown() runs what was submitted, as ThreadPoolExecutor does.

    Callables that cannot travel by reference (asyncio.to_thread's
    functools.partial(Context.run, ...), lambdas, closures, bound methods)
    run on threads of the calling interpreter, as a ThreadPoolExecutor
    runs them: as a loop's default executor it takes what asyncio and
    libraries submit (issue #31.7).  isola.Pool refuses them instead.
    """

    _POOL_OPTIONS = frozenset({"preload", "init", "path", "allow_pickle", "stop_grace",
                               "trace", "processes", "place", "auto_place"})

    def __init__(self, max_workers=None, initializer=None, initargs=(), **pool_options):
        if max_workers is not None and max_workers <= 0:
            raise ValueError("max_workers must be greater than 0")
        unknown = sorted(set(pool_options) - self._POOL_OPTIONS)
        if unknown:
            raise TypeError(f"Executor() got an unexpected keyword argument {unknown[0]!r}")
        # What Pool() would refuse, refused now (not at the first submit).
        _init_source(initializer, initargs, pool_options.get("allow_pickle", True))
        if max_workers is not None and max_workers > MAX_WORKERS:
            raise ValueError(f"max_workers must be at most {MAX_WORKERS}, got {max_workers}")
        self._broken = False
        self._shutdown_lock = _threading.Lock()
        self._shutdown = False
        self._pool = None  # made by the first submit() or map() (_start)
        self._pool_args = (max_workers, dict(pool_options, initializer=initializer,
                                             initargs=tuple(initargs)))
        self._max_workers = max_workers or _os.cpu_count() or 1

    def _check_usable(self):
        # Needs self._shutdown_lock.
        if self._broken:
            raise BrokenPool(self._broken)
        if self._shutdown:
            raise RuntimeError("cannot schedule new futures after shutdown")
        if _exiting:
            raise RuntimeError("cannot schedule new futures after interpreter shutdown")

    def _start(self):
        # Needs self._shutdown_lock: the pool, made at the first use.
        self._check_usable()
        if self._pool is not None:
            return self._pool
        workers, options = self._pool_args
        try:
            pool = Pool(workers, **options)
        except BrokenPool as exc:
            # As thread pools do when their first worker's initializer
            # fails: logged, and the executor is broken from now on.
            import logging
            logging.getLogger("concurrent.futures").critical(
                "Exception in initializer:\n%s", exc)
            self._broken = ("A worker's setup or initializer failed, the executor is not "
                            f"usable anymore: {exc}")
            raise BrokenPool(self._broken) from exc
        pool._drop_how[0] = 0  # dropped without shutdown: run what was submitted
        self._pool = pool
        self._max_workers = pool.size
        return pool

    def _local(self):
        # Needs self._shutdown_lock.  Threads of this interpreter for the
        # callables that cannot travel (issue #31.7), made on first need;
        # the pool's workers are not started for them.
        self._check_usable()
        local = getattr(self, "_local_threads", None)
        if local is None:
            local = self._local_threads = _cf.ThreadPoolExecutor(
                thread_name_prefix="isola-local")
        return local

    def submit(self, fn, /, *args, **kwargs):
        with self._shutdown_lock:
            if not _travels(fn):
                return self._local().submit(fn, *args, **kwargs)
            return self._start().submit(fn, *args, **kwargs)

    submit.__doc__ = (_cf.Executor.submit.__doc__ or "") + """
        A callable that cannot travel by reference (asyncio.to_thread's
        functools.partial of Context.run, a lambda, a closure, a bound
        method) runs on a thread of the calling interpreter, as a
        ThreadPoolExecutor would run it; its Future is a plain
        concurrent.futures.Future."""

    def map(self, fn, *iterables, timeout=None, chunksize=1, buffersize=None, progress=False):
        """Like concurrent.futures.Executor.map (buffersize as in 3.14);
        chunksize > 1 sends that many calls per task; progress=True draws
        a progress line on standard error when it is a terminal (as
        Pool.map).  A callable that cannot travel runs on threads of this
        interpreter, as in submit."""
        with self._shutdown_lock:
            if not _travels(fn):
                extra = {} if buffersize is None else {"buffersize": buffersize}
                return self._local().map(fn, *iterables, timeout=timeout, **extra)
            pool = self._start()
        results = pool._map(fn, zip(*iterables), chunksize, timeout, buffersize)
        if progress:
            return _with_progress(results, _known_length(iterables))
        return results

    def shutdown(self, wait=True, *, cancel_futures=False):
        with self._shutdown_lock:
            self._shutdown = True
            pool = self._pool
            local = getattr(self, "_local_threads", None)
        if pool is not None:
            pool.shutdown(wait=wait, cancel_futures=cancel_futures)
        if local is not None:
            local.shutdown(wait=wait, cancel_futures=cancel_futures)

    shutdown.__doc__ = _cf.Executor.shutdown.__doc__


# -- asyncio on channels ------------------------------------------------------

class _AsyncWaiter:
    """One thread per interpreter that waits for every channel some
    coroutine is receiving from or sending to (no thread per waiter).  It
    never takes or sends a message: it waits until a channel is ready
    (isola._wait_any: a message, or room for one) and wakes the
    coroutine, which receives or sends itself.  So an await cancelled at
    any moment leaves the channel as it was, and a message that cannot be
    decoded fails that one await."""

    _MAX = 63  # (channel, kind) pairs watched at once (+ the wake channel)

    def __init__(self):
        self._lock = _threading.Lock()
        self._pending = []  # [channel, room, loop, future], in arrival order
        self._wake = Channel(1)
        self._stopping = False
        # Not a daemon (sub-interpreters allow none): stopped at exit.
        self._thread = _threading.Thread(target=self._run, name="isola-async")
        self._thread.start()
        if hasattr(_threading, "_register_atexit"):
            _threading._register_atexit(self.stop)

    def _poke(self):
        try:
            self._wake.send_nowait(None)
        except ChannelFull:
            pass

    def stop(self):
        self._stopping = True
        self._poke()

    def add(self, ch, room, loop, fut):
        with self._lock:
            self._pending.append((ch, room, loop, fut))
        self._poke()

    def _run(self):
        rotate = 0
        while not self._stopping:
            with self._lock:
                self._pending = [p for p in self._pending if not p[3].done()]
                keys = []
                for ch, room, _, _ in self._pending:
                    if not any(k[0] is ch and k[1] == room for k in keys):
                        keys.append((ch, room))
            overflow = len(keys) > self._MAX
            if overflow:  # more than fit: watch them in turns
                rotate %= len(keys)
                keys = (keys[rotate:] + keys[:rotate])[:self._MAX]
                rotate += self._MAX
            watched = [self._wake] + [k[0] for k in keys]
            mask = 0
            for i, k in enumerate(keys):
                if k[1]:
                    mask |= 1 << (i + 1)
            try:
                i = _wait_any(watched, 0.01 if overflow else None, mask)
            except TimeoutError:
                continue
            if i == 0:
                try:
                    self._wake.recv_nowait()
                except ChannelEmpty:
                    pass
                continue
            ch, room = keys[i - 1]
            with self._lock:  # hand every await of that kind on ch to its loop
                ready = [p for p in self._pending if p[0] is ch and p[1] == room]
                self._pending = [p for p in self._pending
                                 if not (p[0] is ch and p[1] == room)]
            for _, _, loop, fut in ready:
                try:
                    loop.call_soon_threadsafe(_wake, fut)
                except RuntimeError:  # the loop is closed: nobody to tell
                    pass


def _wake(fut):
    # In the loop's thread: the channel may be ready; the coroutine
    # receives or sends itself (see _recv_async).
    if not fut.done():
        fut.set_result(None)


_async_waiter = None
_async_lock = _threading.Lock()


async def _await_ready(ch, room):
    # Until ch may have a message (room: room for one), or is closed.
    import asyncio
    global _async_waiter
    with _async_lock:
        if _async_waiter is None:
            _async_waiter = _AsyncWaiter()
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    _async_waiter.add(ch, room, loop, fut)
    await fut


async def _recv_async(self):
    """await ch.recv_async(): receive without blocking the event loop."""
    while True:
        # The receive and the return have no await between them: a
        # cancelled await never holds a message (asyncio.Queue's rule).
        try:
            return self.recv_nowait()
        except ChannelEmpty:
            pass
        await _await_ready(self, False)  # then try again


async def _send_async(self, obj):
    """await ch.send_async(obj): send, waiting (without blocking the event
    loop) while the channel is full: woken when a receive makes room."""
    while True:
        try:
            return self.send_nowait(obj)
        except ChannelFull:
            pass
        await _await_ready(self, True)  # then try again


# -- the command line's worker side (isola map) ---------------------------

def _cli_check(target):
    """Raise a clear error unless target resolves to a callable."""
    if not callable(_resolve_target(target)):
        raise TypeError(f"{target} is not callable")
    return True


_cli_fns = {}


def _cli_apply_chunk(target, first, lines, plain):
    """Call target on each input line (JSON, or plain text when plain);
    per line: [True, json_text] or [False, type, message].  Never raises
    for one bad line, so the rest of the chunk still runs."""
    import json
    fn = _cli_fns.get(target)
    if fn is None:
        fn = _cli_fns[target] = _resolve_target(target)
    out = []
    for k, line in enumerate(lines):
        if plain:
            arg = line
        else:
            try:
                arg = json.loads(line)
            except ValueError as exc:
                out.append([False, "ValueError", f"bad JSON on line {first + k + 1}: {exc}"])
                continue
        try:
            out.append([True, json.dumps(fn(arg))])
        except BaseException as exc:
            if isinstance(exc, (KeyboardInterrupt, Cancelled)):
                raise
            out.append([False, type(exc).__name__, str(exc)])
    return out
