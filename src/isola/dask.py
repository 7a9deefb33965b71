"""isola inside Dask: run a Dask worker's pure-Python tasks on every core
of that one worker process, or a graph on an isola pool in this process.

On a cluster (one call registers it on every worker, present and future):

    import isola.dask
    isola.dask.register(client)              # executor "isola" on each worker
    with dask.annotate(executor="isola"):
        futures = client.map(score, files)   # these tasks run in isola

or `dask worker --preload isola.dask ...` (one interpreter per Dask thread).

In this process, as dask.multiprocessing.get does with processes:

    dask.compute(bag, scheduler=isola.dask.get)

What runs where: a task's own function, with its arguments, runs in an
isola sub-interpreter (sent with cloudpickle, so closures and functions of
the client's __main__ work); Dask's bookkeeping (resolving the task's
arguments from its dependencies, timing, the result's size) stays in the
worker's main interpreter, in one thread per running task that waits for
the sub-interpreter without holding the GIL.  A task that cannot run in a
sub-interpreter (an extension module that refuses sub-interpreters, an
argument cloudpickle cannot pickle) fails with an error saying to leave it
on Dask's default executor; it never hangs the worker.
"""
import concurrent.futures as _cf
import threading as _threading

import cloudpickle as _cloudpickle

import isola as _isola
from isola import _dask_worker

try:
    from distributed import Reschedule as _Reschedule
    from distributed import WorkerPlugin as _WorkerPlugin
except ImportError:  # dask alone: get() works, register() does not
    _WorkerPlugin = object
    _Reschedule = None

__all__ = ["IsolaExecutor", "IsolaPlugin", "TaskCannotRun", "RemoteTaskError",
           "register", "get", "dask_setup"]

_LEAVE_IT = ("leave this task on Dask's default executor (no executor=\"isola\" "
             "annotation)")


class TaskCannotRun(RuntimeError):
    """The task cannot be sent to, or run in, an isola sub-interpreter."""


class RemoteTaskError(Exception):
    """A task's exception that could not be rebuilt as its own class; the
    message is the task's formatted traceback."""


def _dumps_call(fn, args, kwargs):
    try:
        return _cloudpickle.dumps((fn, args, kwargs))
    except Exception as exc:
        raise TaskCannotRun(f"isola.dask: cannot send {fn!r} to a sub-interpreter "
                            f"({type(exc).__name__}: {exc}); {_LEAVE_IT}") from exc


def _value_of(outcome):
    """The result of run_pickled's outcome, or its exception raised."""
    if outcome[0] == "ok":
        return _cloudpickle.loads(outcome[1])
    _, blob, text = outcome
    exc = None
    if blob is not None:
        try:
            exc = _cloudpickle.loads(blob)
        except Exception:
            exc = None
    if not isinstance(exc, BaseException):
        if text.startswith("isola.dask:"):
            raise TaskCannotRun(text)
        raise RemoteTaskError(text)
    if "does not support loading in subinterpreters" in text:
        exc.add_note(f"isola.dask: an extension module refused the sub-interpreter; {_LEAVE_IT}")
    exc.add_note("isola.dask: raised in an isola sub-interpreter:\n" + text.rstrip())
    raise exc


class _CallFuture(_cf.Future):
    """The executor's future of one call: settled from the isola task's
    outcome; cancel() cancels a queued task and interrupts a running one."""

    def __init__(self, inner):
        super().__init__()
        self._inner = inner

    def cancel(self):
        if self._inner.cancel():
            return _cf.Future.cancel(self)
        if not self._inner.done():
            self._inner.interrupt()  # running: isola.Cancelled inside the task
        return False

    def _settle(self, inner):
        if inner.cancelled():
            _cf.Future.cancel(self)
            self.set_running_or_notify_cancel()
            return
        if not self.set_running_or_notify_cancel():
            return
        try:
            self.set_result(_value_of(inner.result()))
        except BaseException as exc:
            self.set_exception(exc)


def _is_dask_task_runner(fn, args):
    """distributed's Worker hands a non-thread executor
    _run_task_simple(task, data, delay): the task is a dask Task node."""
    return (getattr(fn, "__name__", "") == "_run_task_simple"
            and getattr(fn, "__module__", "") == "distributed.worker"
            and len(args) >= 2)


class _Remote:
    """Stands for a Task's function: calling it runs the function, with the
    arguments Dask resolved, in a sub-interpreter, and waits."""

    def __init__(self, executor, func, key):
        self.executor, self.func, self.key = executor, func, key

    def __call__(self, *args, **kwargs):
        return self.executor._call_for_key(self.key, self.func, args, kwargs)


def _with_func(task, func):
    """A copy of a Task node whose function is func (Task has __slots__)."""
    new = object.__new__(type(task))
    for klass in type(task).__mro__:
        for name in getattr(klass, "__slots__", ()):
            if hasattr(task, name):
                object.__setattr__(new, name, getattr(task, name))
    new.func = func
    return new


class IsolaExecutor(_cf.Executor):
    """A concurrent.futures executor over an isola.Pool, for Dask.

    workers: interpreters (default: CPUs); pool: an existing isola.Pool
    to use instead (not shut down by this executor).  Thread-safe."""

    def __init__(self, workers=None, *, pool=None):
        self._pool = pool if pool is not None else _isola.Pool(workers)
        self._owns_pool = pool is None
        self._max_workers = self._pool.size  # dask.multiprocessing.get reads it
        # One thread per running Dask task: it resolves the task's arguments,
        # then waits (GIL released) for the sub-interpreter.
        self._threads = _cf.ThreadPoolExecutor(2 * self._pool.size,
                                               thread_name_prefix="isola-dask")
        self._lock = _threading.Lock()
        self._running = {}  # Dask key -> set of _CallFuture (guarded by _lock)
        self._closed = False

    @property
    def pool(self):
        return self._pool

    def submit(self, fn, /, *args, **kwargs):
        if self._closed:
            raise RuntimeError("cannot schedule new futures after shutdown")
        if _is_dask_task_runner(fn, args):
            task = args[0]
            if _is_plain_task(task):
                task = _with_func(task, _Remote(self, task.func, task.key))
            return self._threads.submit(fn, task, *args[1:], **kwargs)
        return self._submit_call(fn, args, kwargs)

    def _submit_call(self, fn, args, kwargs):
        payload = _dumps_call(fn, args, kwargs)
        inner = self._pool.submit(_dask_worker.run_pickled, payload)
        outer = _CallFuture(inner)
        inner.add_done_callback(outer._settle)
        return outer

    def _call_for_key(self, key, fn, args, kwargs):
        fut = self._submit_call(fn, args, kwargs)
        with self._lock:
            self._running.setdefault(key, set()).add(fut)
        try:
            return fut.result()
        except BaseException:
            if self._closed and _Reschedule is not None:
                # The worker is closing and interrupted this task: Dask runs
                # it again elsewhere rather than report it failed.
                raise _Reschedule() from None
            raise
        finally:
            with self._lock:
                s = self._running.get(key)
                if s is not None:
                    s.discard(fut)
                    if not s:
                        del self._running[key]

    def cancel_key(self, key):
        """Cancel (queued) or interrupt (running) the isola calls of a Dask
        task; returns how many were found."""
        with self._lock:
            futs = list(self._running.get(key, ()))
        for f in futs:
            f.cancel()
        return len(futs)

    def shutdown(self, wait=True, *, cancel_futures=False):
        """Stop taking tasks.  wait=True lets the submitted ones finish
        and waits for them.  wait=False (a Dask worker closing) cancels
        the queued ones and interrupts the running ones, which Dask then
        reschedules on another worker (distributed.Reschedule): no thread
        is left waiting on a call that would keep the process alive."""
        self._closed = True
        if not wait:
            cancel_futures = True
            with self._lock:
                futs = [f for s in self._running.values() for f in s]
            for f in futs:
                f.cancel()
        self._threads.shutdown(wait=wait, cancel_futures=cancel_futures)
        if self._owns_pool:
            self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)


_TASK_TYPE = []  # [dask._task_spec.Task or None], resolved on first use


def _is_plain_task(task):
    if not _TASK_TYPE:
        try:
            from dask._task_spec import Task
        except ImportError:
            Task = None
        _TASK_TYPE.append(Task)
    Task = _TASK_TYPE[0]
    return Task is not None and type(task) is Task and callable(getattr(task, "func", None))


class IsolaPlugin(_WorkerPlugin):
    """Adds an IsolaExecutor named `executor` to a Dask worker; tasks
    annotated with dask.annotate(executor=executor) run on it.  workers:
    interpreters (default: the worker's thread count)."""

    def __init__(self, executor="isola", workers=None):
        self.executor = executor
        self.workers = workers
        self.name = f"isola-executor-{executor}"
        self._ex = None

    def setup(self, worker):
        n = self.workers or worker.state.nthreads
        self._ex = IsolaExecutor(n)
        worker.executors[self.executor] = self._ex

    def teardown(self, worker):
        if worker.executors.get(self.executor) is self._ex:
            del worker.executors[self.executor]
        if self._ex is not None:
            self._ex.shutdown(wait=False)

    def transition(self, key, start, finish, *args, **kwargs):
        # A task Dask gave up on while it ran (cancelled, released): stop its
        # isola call too, instead of letting it run to the end for nothing.
        if start == "executing" and finish in ("cancelled", "released", "forgotten"):
            if self._ex is not None:
                self._ex.cancel_key(key)


def register(client, executor="isola", workers=None):
    """Register IsolaPlugin on every worker of client's cluster (and on
    workers that join later)."""
    if _WorkerPlugin is object:
        raise ImportError("isola.dask.register needs distributed")
    return client.register_plugin(IsolaPlugin(executor, workers))


async def dask_setup(worker):
    """`dask worker --preload isola.dask`: executor "isola" on this worker."""
    await worker.plugin_add(IsolaPlugin())


_default = {}
_default_lock = _threading.Lock()


def _dumps_node(node):
    # cloudpickle: importable functions by reference, lambdas and functions
    # of the client's __main__ by value (plain pickle names __main__.f,
    # which a worker's __main__ does not have).
    try:
        return _cloudpickle.dumps(node)
    except Exception as exc:
        raise TaskCannotRun(f"isola.dask: cannot send task {node.key!r} to a "
                            f"sub-interpreter ({type(exc).__name__}: {exc})") from exc


def get(dsk, keys, num_workers=None, pool=None, **kwargs):
    """A Dask scheduler running the graph on isola interpreters of this
    process: dask.compute(x, scheduler=isola.dask.get).  pool: an
    isola.Pool or IsolaExecutor to use; otherwise one of num_workers
    interpreters (default: CPUs), made on first use and kept for the next
    calls.

    The whole graph is submitted at once as a task graph of the pool
    (issue 35): each task waits inside the pool for its dependencies and
    gets their results from the workers that made them, never through
    this thread.  A task's exception is raised as itself (tasks after it
    do not run).  Other keywords (Dask's) are accepted and ignored."""
    from dask._task_spec import DataNode, convert_legacy_graph
    from dask.order import order
    if isinstance(pool, IsolaExecutor):
        pool = pool.pool
    if pool is None:
        with _default_lock:
            ex = _default.get(num_workers)
            if ex is None or ex._closed:
                ex = _default[num_workers] = IsolaExecutor(num_workers)
        pool = ex.pool
    graph = convert_legacy_graph(dsk)
    prio = order(graph)
    made = {}  # key -> isola Future, or the value itself (data nodes)
    deps_of = {}  # key -> its dependencies' keys, in run_node's argument order
    try:
        for key in sorted(graph, key=prio.__getitem__):
            node = graph[key]
            if isinstance(node, DataNode):
                made[key] = node.value
                continue
            deps = deps_of[key] = list(node.dependencies)
            made[key] = pool.submit(_dask_worker.run_node, _dumps_node(node), deps,
                                    *[made[d] for d in deps])
    except BaseException:
        for f in made.values():
            if isinstance(f, _isola.Future):
                f.cancel()
        raise

    def result(k):
        if isinstance(k, list):
            return [result(x) for x in k]
        f = made[k]
        if not isinstance(f, _isola.Future):
            return f
        try:
            return f.result()
        except _isola.InputFailed as exc:
            raise _root_failure(k, exc) from None
    def _root_failure(k, exc):
        # A task fails with its own exception; the tasks after it fail with
        # isola.InputFailed naming the input (run_node's argument 2 + j is
        # dependency j).  Follow the inputs back to the task that raised and
        # report its exception, decoded here (in the caller, where its
        # class lives), as Dask does.
        while isinstance(exc, _isola.InputFailed) and isinstance(exc.input, int):
            j = exc.input - 2
            deps = deps_of.get(k, ())
            if not 0 <= j < len(deps) or not isinstance(made.get(deps[j]), _isola.Future):
                break
            k = deps[j]
            f = made[k]
            if f.cancelled():
                return _cf.CancelledError(f"Dask task {k!r} was cancelled")
            exc = f.exception()
        return exc

    try:
        return result(keys)
    except BaseException:
        for f in made.values():
            if isinstance(f, _isola.Future):
                f.cancel()
        raise
