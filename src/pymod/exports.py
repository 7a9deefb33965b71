"""isola's exports: functions of the main interpreter that pool workers call.

    def lookup(key):                       # runs in the main interpreter
        return db.execute(...).fetchone()

    with isola.Pool(exports={"lookup": lookup}) as pool:
        pool.submit(task, 42)              # in a worker: isola.host.lookup(42)

Compiled into the extension module and run in its namespace right after
front.py (it refines front's Pool).  The path of one call:

- worker: isola.host.lookup(*args, **kwargs) sends (name, args, kwargs,
  reply) on the pool's request channel (the codec; pickle only if the
  pool allows it), where reply is a new one-slot Channel, and waits on
  reply.recv(): the GIL released, and interrupted like any isola wait (a
  cancel or timeout of its task, an interrupting shutdown, which Ctrl-C
  in the main interpreter leads to).  An interrupted call abandons its
  reply channel; the export's late answer lands there and is dropped.
- the interpreter that made the pool (the main one, as a rule):
  export_threads threads of the pool's own (default:
  one per worker) receive requests, call the function, and send back
  (True, result) or (False, exception): the exception is re-raised in
  the worker as its own class (through the codec's exception type).

Throughput of all exports is bounded by the main interpreter's GIL: they
run one at a time unless they release it (I/O, numpy's heavy calls).

No deadlock when an export submits to its own pool and waits: a worker
waiting for an export's answer runs tasks from the pool's shared queue
meanwhile (isola._host_wait), so the tasks the export waits for run even
when every worker is waiting on an export (the export threads submit to
the shared queue only).  Not covered: an export waiting for an actor
whose worker waits for that export (docs/scheduler.md).
"""


def _check_exports(exports):
    if not isinstance(exports, dict):
        raise TypeError(f"exports must be a dict of name -> callable, not "
                        f"{type(exports).__name__}")
    for name, fn in exports.items():
        if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
            raise ValueError(f"export name {name!r} must be an identifier not starting "
                             "with '_'")
        if not callable(fn):
            raise TypeError(f"export {name!r} is not callable: {fn!r}")
    return dict(exports)


class _ExportServer:
    """The main-interpreter side: a request channel and the threads that
    serve it."""

    def __init__(self, exports, nthreads, allow_pickle):
        self.exports = exports
        self.requests = Channel(1024, allow_pickle=allow_pickle)
        self.name = f"isola.exports.{id(self):x}"
        _channel_publish(self.name, self.requests)
        self.threads = [self._thread(i) for i in range(nthreads)]
        for t in self.threads:
            t.start()

    def _thread(self, i):
        return _new_thread(self._serve, f"isola-export-{i}")

    def _serve(self):
        _export_thread()  # its submits go where waiting workers look
        exports = self.exports
        recv = self.requests.recv
        while True:
            try:
                name, args, kwargs, reply = recv()
            except ChannelClosed:
                return
            except BaseException:  # a request that did not decode: its sender waits on
                continue           # its task's own timeout or cancel
            try:
                fn = exports[name]
                answer = (True, fn(*args, **kwargs) if kwargs else fn(*args))
            except BaseException as e:
                answer = (False, e)
            try:
                reply.send_nowait(answer)
            except (ChannelClosed, ChannelFull):
                pass  # the caller was interrupted and is gone
            except BaseException as e:  # the result cannot travel: say so instead
                err = TypeError(f"the result of export {name!r} cannot be sent back: {e}")
                try:
                    reply.send_nowait((False, err))
                except BaseException:
                    pass
                del err
            del answer, args, kwargs, reply

    def stop(self, timeout=None):
        """Close the request channel (the threads drain what is queued,
        then end) and wait for the threads."""
        self.requests.close()
        try:
            _channel_unpublish(self.name)
        except KeyError:
            pass
        for t in self.threads:
            if t is not _threading.current_thread():
                t.join(timeout)


def _new_thread(target, name):
    # A daemon thread (one stuck in an export does not hold the process
    # at exit), except where an isolated interpreter has none.
    try:
        return _threading.Thread(target=target, name=name, daemon=True)
    except RuntimeError:
        return _threading.Thread(target=target, name=name)


def _stop_after_join(c, server):
    # The pool (its C part c) is shutting down without anyone joining it
    # through Pool._joined (dropped, or shutdown(wait=False)): stop the
    # server once the workers are gone, so that their last tasks can
    # still call exports.
    def wait():
        try:
            c.shutdown(0, True)  # waits; asks nothing more of the pool
        except BaseException:
            pass
        server.stop(0)
    try:
        _new_thread(wait, "isola-exports-stop").start()
    except BaseException:  # interpreter shutdown: the threads end with it
        pass


_FrontPool = Pool


class Pool(_FrontPool):
    __doc__ = _FrontPool.__doc__ + """
    exports: {name: function} of this (the main) interpreter that tasks
        call as isola.host.name(*args, **kwargs); they run on
        export_threads threads of the pool's own (default: one per
        worker), arguments and results through the codec, exceptions
        re-raised in the worker as their class.
    """

    def __init__(self, workers=None, preload=(), init=None, path=(), *, exports=None,
                 export_threads=None, allow_pickle=True, **options):
        self._exports = None
        if exports is None:
            super().__init__(workers, preload, init, path, allow_pickle=allow_pickle, **options)
            return
        exports = _check_exports(exports)
        if export_threads is not None and export_threads < 1:
            raise ValueError("export_threads must be at least 1")
        nthreads = export_threads or min(workers or _os.cpu_count() or 1, 64)
        server = _ExportServer(exports, nthreads, allow_pickle)
        connect = (f"import isola\nisola._host_connect({server.name!r}, "
                   f"{sorted(exports)!r}, {bool(allow_pickle)!r})\n")
        try:
            super().__init__(workers, preload, connect + (init or ""), path,
                             allow_pickle=allow_pickle, **options)
        except BaseException:
            server.stop()
            raise
        self._exports = server
        # Dropped unjoined: stopped after the join (at exit, _shutdown_all
        # joins live pools through _joined).
        self._exports_dropped = _weakref.finalize(self, _stop_after_join, self._c, server)
        self._exports_dropped.atexit = False

    def shutdown(self, wait=True, cancel_futures=False, *, interrupt=False, timeout=None):
        super().shutdown(wait, cancel_futures, interrupt=interrupt, timeout=timeout)
        if not wait and self._exports is not None and self._exports_dropped.detach():
            _stop_after_join(self._c, self._exports)

    def _joined(self):
        # Every joining path ends here (shutdown(wait=True), exit): the
        # workers are gone, no call can come any more.
        r = super()._joined()
        if self._exports is not None and self._exports_dropped.detach():
            self._exports.stop(self._grace)
        return r


class _Host:
    """isola.host: the exports of the pool this worker belongs to, as
    functions (isola.host.name(*args, **kwargs))."""

    def __init__(self):
        self._requests = None
        self._names = ()
        self._allow_pickle = True

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        if self._requests is None:
            raise RuntimeError("isola.host is for tasks of a pool made with "
                               "Pool(exports={...})")
        if name not in self._names:
            raise AttributeError(f"the pool exports no {name!r} (it exports: "
                                 f"{', '.join(self._names) or 'nothing'})")
        call = self._call

        def export(*args, **kwargs):
            return call(name, args, kwargs)

        export.__name__ = export.__qualname__ = name
        self.__dict__[name] = export
        return export

    def __dir__(self):
        return list(self._names)

    def _call(self, name, args, kwargs):
        reply = Channel(1, allow_pickle=self._allow_pickle)
        self._requests.send((name, args, kwargs or None, reply))
        ok, value = _host_wait(reply)
        if ok:
            return value
        try:
            raise _main_class(value)
        finally:
            value = None


def _main_class(exc):
    # An exception class of the caller's script arrives as RemoteError
    # (the worker's __main__ is not the script): rebuild it from the
    # script as workers import it (isola._resolve_target's "__main__:").
    name = getattr(exc, "type_name", None)
    if not isinstance(exc, RemoteError) or not isinstance(name, str) or \
            not name.startswith("__main__."):
        return exc
    try:
        cls = _resolve_target("__main__:" + name[len("__main__."):])
        if isinstance(cls, type) and issubclass(cls, BaseException):
            new = cls(*exc.remote_args)
            new.__cause__ = exc.__cause__
            return new
    except Exception:
        pass
    return exc


host = _Host()


def _host_connect(name, names, allow_pickle):
    """In a worker, at start: connect isola.host to the pool's exports."""
    host._requests = _channel_lookup(name)
    host._names = tuple(names)
    host._allow_pickle = allow_pickle
