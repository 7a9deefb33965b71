"""`isola map`: the engine (main interpreter) and its worker side.

The main interpreter reads raw lines, sends them in chunks to the pool,
and writes what comes back; a worker (_map_chunk) decodes, calls and
encodes each line, so that every failure belongs to its own line.  Output
goes to a temporary file renamed over --out at the end; signals stop the
run between whole lines.
"""
import json
import queue
import os
import sys
import time
from concurrent.futures import BrokenExecutor

STOP_SIGNALS = ("SIGINT", "SIGTERM")
CHUNK_SECONDS = 0.02      # work per task when --chunk is not given
FIRST_CHUNK = 4           # lines per task until the first results say more
MAX_AUTO_CHUNK = 10000
SHOWN_TRACEBACKS = 3      # on standard error, when there is no --errors file


# -- worker side ----------------------------------------------------------------

_fns = {}


def _worker_setup(shared=(), preload=()):
    """In every worker: os._exit() in a mapped function fails its line
    instead of ending the process (and with it every other line).  In a
    process worker (the process lane) also: publish the --shared values
    (read again from their files: the parent's frozen values are memory of
    the parent) and import preload (the modules a sub-interpreter refused,
    which the interpreter workers of a --lane process run do not import)."""
    def _exit(status):
        raise SystemExit(f"os._exit({status}) called by the mapped function; "
                         f"isola map turns it into an error of this line")
    os._exit = _exit
    if not _in_process_worker():
        return
    for name in preload:
        __import__(name)
    if shared:
        import isola
        for name, path in shared:
            with open(path, "rb") as f:
                isola.publish(name, json.load(f))


def _in_process_worker():
    """True in a process worker of the pool (a child running tasks in its
    main interpreter: `python -m isola._proc_worker`)."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return getattr(spec, "name", None) == "isola._proc_worker"


# --timeout in a process worker: tasks run in the child's main thread, so
# the per-line deadline is an interval timer whose SIGALRM handler raises
# isola.Cancelled (it also ends a time.sleep or a read: PEP 475), with the
# contract of isola._task_deadline: restart the deadline (0: none) and say
# whether it had expired (2; forgiven) or not (0).
_alarm = {"armed": False, "fired": False}


def _on_alarm(signum, frame):
    if _alarm["armed"]:
        _alarm["armed"] = False
        _alarm["fired"] = True
        import isola
        raise isola.Cancelled("the call ran past --timeout (process worker)")


def _alarm_deadline(seconds):
    import signal
    _alarm["armed"] = False
    signal.setitimer(signal.ITIMER_REAL, 0)
    reason = 2 if _alarm["fired"] else 0
    _alarm["fired"] = False
    if seconds > 0:
        if signal.getsignal(signal.SIGALRM) is not _on_alarm:
            signal.signal(signal.SIGALRM, _on_alarm)
        _alarm["armed"] = True
        signal.setitimer(signal.ITIMER_REAL, seconds)
    return reason


# --timeout's progress from a process worker: each call's start, as an
# 8-byte record in a FIFO the main side made (channels do not reach other
# processes).  Writes of 8 bytes to a pipe are atomic.
_fifos = {}


def _fifo_writer(path):
    w = _fifos.get(path)
    if w is None:
        import struct
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        pack = struct.Struct("<q").pack

        def w(n, fd=fd, pack=pack, write=os.write):
            write(fd, pack(n))
        _fifos[path] = w
    return w


def _function(target):
    fn = _fns.get(target)
    if fn is None:
        import isola
        fn = isola._resolve_target(target)
        if not callable(fn):
            raise TypeError(f"{target} is not callable")
        _fns[target] = fn
    return fn


def _check_target(target):
    _function(target)
    return True


def _error_of(exc, skip_frames=1):
    import traceback
    tb = exc.__traceback__
    for _ in range(skip_frames):
        if tb is not None:
            tb = tb.tb_next
    name = type(exc).__qualname__
    module = type(exc).__module__
    if module not in ("builtins", "__main__"):
        name = f"{module}.{name}"
    return name, str(exc), "".join(traceback.format_exception(type(exc), exc, tb))


def _map_chunk(target, first, data, plain, placeholder, timeout, retries, progress=None,
               process=False, move=False):
    """Lines data (bytes, b"\\n"-separated) numbered from first: returns
    (text, errors, blanks, seconds): text holds one output line per result
    (placeholder None: unordered rows) or, ordered, one line per input line
    (placeholder for a failed or blank line); errors (index, type, message,
    traceback) per failed line; blanks the indices of blank lines.
    progress (with --timeout): (channel, token); each call's start is sent
    there as token << 40 | index (one int: a few microseconds a line; its
    complement for odd retries, so that each call is a new value), so
    that the main side sees a line stuck past --timeout in a call that
    cannot be interrupted.  process: running in a process worker (the
    deadline is an interval timer, progress a FIFO's path).  move (an
    interpreter worker, --lane auto): a line whose call fails because a
    sub-interpreter refused an import fails the whole chunk, with that
    error, so that the main side runs the chunk again in a process
    worker."""
    import isola
    t0 = time.perf_counter()
    fn = _function(target)
    deadline = _alarm_deadline if process else isola._task_deadline
    refused = isola._refused_module if move else None
    out = []
    errors = []
    blanks = []
    ordered = placeholder is not None
    dumps = json.dumps
    if progress is not None:
        report = _fifo_writer(progress[0]) if process else progress[0].send
        tag = progress[1] << 40
    if not isinstance(data, bytes):
        data = bytes(data)  # a large chunk comes as an isola.Buffer (shared, not copied)
    for k, raw in enumerate(data.split(b"\n")):
        index = first + k
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            errors.append((index, "UnicodeDecodeError", f"the line is not UTF-8: {exc}", ""))
            if ordered:
                out.append(placeholder)
            continue
        if plain:
            arg = text
        elif not text or text.isspace():
            blanks.append(index)
            if ordered:
                out.append(placeholder)
            continue
        else:
            try:
                arg = json.loads(text)
            except ValueError as exc:
                errors.append((index, "json.JSONDecodeError", f"bad JSON: {exc}", ""))
                if ordered:
                    out.append(placeholder)
                continue
        failure = None
        for attempt in range(retries + 1):
            try:
                if progress is not None:  # a retry: the other sign, seen as a new call
                    report(tag | index if attempt % 2 == 0 else ~(tag | index))
                if timeout:
                    deadline(timeout)
                value = fn(arg)
                if timeout:
                    deadline(0)
                failure = None
                break
            except isola.Cancelled as exc:
                if deadline(0) != 2:
                    raise  # cancelled: the run is stopping and this chunk is not done
                failure = ("TimeoutError", f"the call ran past --timeout {timeout:g} s and "
                           f"was interrupted", _error_of(exc)[2])
            except BaseException as exc:  # sys.exit() in fn is its line's error too
                if timeout:
                    _stop_deadline(deadline)
                if refused is not None and refused(exc):
                    raise  # the chunk moves to a process worker
                failure = _error_of(exc)
        if failure is None:
            try:
                js = dumps(value, allow_nan=False, default=_thawed)
            except (TypeError, ValueError, RecursionError) as exc:
                failure = (type(exc).__name__,
                           f"the result cannot be written as JSON: {exc}", "")
            del value
        if failure is not None:
            errors.append((index,) + failure)
            if ordered:
                out.append(placeholder)
            continue
        out.append(js if ordered else f'{{"index": {index}, "result": {js}}}')
    if out:
        out.append("")
    return "\n".join(out), errors, blanks, time.perf_counter() - t0


def _stop_deadline(deadline):
    # deadline(0) after a call failed: the deadline may expire on the way
    # in (isola.Cancelled raised there), which must not end the chunk; a
    # cancel (the run is stopping) still does.
    import isola
    try:
        deadline(0)
    except isola.Cancelled:
        if deadline(0) != 2:
            raise


# -- main side ------------------------------------------------------------------

def _thawed(obj):
    """JSON for frozen values (isola.freeze, --shared): their plain copy."""
    import isola
    if isinstance(obj, (isola.FrozenMap, isola.FrozenSeq)):
        return isola.thaw(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


class _Setup(Exception):
    """A usage, setup or output problem: exit status 2, nothing written."""


class _Reading(BaseException):
    """Raised by the signal handler to leave a blocking read of input."""


class _Slot:
    """One chunk of input lines, in submission order, and its parts: one
    task, or one per line after the chunk failed as a whole."""
    __slots__ = ("seq", "first", "count", "data", "parts", "left", "futures")

    def __init__(self, seq, first, count, data):
        self.seq, self.first, self.count, self.data = seq, first, count, data
        self.parts = [None]          # per part: (first, count, outcome) once done
        self.left = 1
        self.futures = []


class MapRun:
    def __init__(self, target, inputs, opts):
        self.target = target
        self.inputs = inputs or ["-"]
        self.o = opts
        self.ordered = bool(opts.get("--ordered"))
        self.plain = bool(opts.get("--lines"))
        self.timeout = opts.get("--timeout")
        self.retries = opts.get("--retries", 0)
        self.halt = opts.get("--halt")
        self.fixed_chunk = opts.get("--chunk")
        self.per_line = None           # seconds of work per line, measured
        self.items = self.errors = self.blank = self.lines_done = 0
        self.unprocessed = 0
        self.stop_signal = None
        self.stopping = False          # no more input is read
        self.status = 0
        self.in_read = False
        self.file_starts = []          # (first index, name) per input file
        self.out = self.out_tmp = self.errfile = self.joblog = None
        self.shown_tracebacks = 0
        self.resume_sizes = None       # --resume: [out, errors] sizes the joblog last saw
        self.joblog_size = None        # --resume: the joblog's whole lines
        self.halted = False
        self.gap = False               # --ordered: a part not written; nothing after it is
        self.abandoned = False         # running tasks left stuck past their grace
        self.inflight = {}             # seq -> _Slot, chunks not yet written whole
        self.next_write = 0            # --ordered: the seq of the next slot to write
        # --timeout: the tasks running (token -> (slot, part, future)), the
        # start of their current call (token -> (index, time)), and the
        # tasks given up on, stuck in C past --timeout (token -> future)
        self.tokens = iter(range(1 << 62))
        self.running = {}
        self.started = {}
        self.lost = {}
        self.all_stuck = False
        # The lane (issue #33): where chunks run now ("interpreter" or
        # "process"), whether a refusal moves them (--lane auto), and the
        # run's private directory (the --timeout FIFO, --shared copies)
        lane = opts.get("--lane", "auto")
        self.auto = lane == "auto"
        self.lane = "process" if lane == "process" else "interpreter"
        self.processes = opts.get("--processes")
        self.moved = None              # the module whose refusal moved the run
        self.shared = []               # (name, file a process worker reads)
        self.tmpdir = None
        self.fifo = self.fifo_fd = None
        self.fifo_rest = b""
        placeholder = opts.get("--placeholder", "")
        self.placeholder = placeholder if self.ordered else None
        self.queue = queue.SimpleQueue()  # finished tasks and signals, for the loop

    # -- the run ------------------------------------------------------------

    def run(self):
        import isola
        self.isola = isola
        self._install_signals()
        try:
            self._check_paths()
            done = self._read_joblog() if self.o.get("--resume") else []
            self._done = done
            self._publish_shared()
            self._redirect_stdout()
            pool = self._start_pool()
        except _Setup as exc:
            self._remove_tmpdir()
            sys.stderr.write(f"isola map: {exc}\n")
            return 2
        self.pool = pool
        status = None
        stop_now = True     # leaving early: cancel and interrupt what runs
        try:
            try:
                self._open_outputs()
            except _Setup as exc:
                self._abandon_outputs()
                sys.stderr.write(f"isola map: {exc}\n")
                return 2
            self.t0 = time.monotonic()
            self._progress_setup()
            self._loop()
            stop_now = self.stop_signal is not None
            self._close_outputs()
        except _OutputError as exc:
            self._abandon_outputs()
            if isinstance(exc.__cause__, BrokenPipeError):
                # the reader is gone (`isola map ... | head`): stop quietly,
                # as a Unix tool killed by SIGPIPE does
                status = 128 + 13
            else:
                sys.stderr.write(f"isola map: cannot write the output: {exc.__cause__}\n")
                status = 2
        finally:
            self._stop_pool(stop_now)
            self._remove_tmpdir()
        if status != 128 + 13:
            self._summary()
        if status is None:
            if self.stop_signal is not None:
                status = 128 + self.stop_signal
            else:
                status = 1 if self.errors or self.status else 0
        if self.abandoned:
            # Workers stuck in a call that cannot be interrupted: exiting
            # normally would wait for them forever (or finalize their
            # interpreters under them).  Everything is written and closed.
            sys.stderr.flush()
            os._exit(status)
        return status

    # -- setup ---------------------------------------------------------------

    def _check_paths(self):
        self.sources = []
        for name in self.inputs:
            if name == "-":
                self.sources.append((name, None))
                continue
            try:
                st = os.stat(name)
                with open(name, "rb"):
                    pass
            except OSError as exc:
                raise _Setup(f"cannot read {name}: {exc.strerror}")
            self.sources.append((name, st))
        out = self.o.get("--out")
        if out is not None:
            try:
                ost = os.stat(out)
            except OSError:
                ost = None
            for name, st in self.sources:
                if ost is not None and st is not None and (st.st_dev, st.st_ino) == (
                        ost.st_dev, ost.st_ino):
                    raise _Setup(f"--out {out} is the input {name}: refusing to write over it")

    def _read_joblog(self):
        """The input ranges the joblog lists as done, merged.  Also the
        sizes --out and --errors had after the last part it lists
        (self.resume_sizes): what is past them was written by a run that
        ended (a crash, SIGKILL) before logging it, and is cut off, so that
        --resume writes it once, in place."""
        path = self.o["--joblog"]
        ranges = []
        try:
            with open(path) as f:
                lines = f.read().split("\n")
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise _Setup(f"cannot read the joblog {path}: {exc}")
        sizes = None
        if lines[-1]:  # no line end: a last line cut short by the end of a run
            self.joblog_size = len("\n".join(lines[:-1]).encode()) + (len(lines) > 1)
            lines[-1] = ""  # not done, and cut off before this run appends
        for k, line in enumerate(lines):
            if line.startswith("#"):
                if "out_bytes" in line:  # a joblog that records them
                    sizes = sizes or [0, 0]
                continue
            if not line.strip():
                continue
            fields = line.split("\t")
            try:
                done = (int(fields[0]), int(fields[0]) + int(fields[1]))
                if sizes is not None:
                    sizes = [int(fields[4]) if fields[4] != "-" else None,
                             int(fields[5].strip()) if fields[5].strip() != "-" else None]
            except (ValueError, IndexError) as exc:
                raise _Setup(f"cannot read the joblog {path}: line {k + 1}: {exc}")
            ranges.append(done)
        self.resume_sizes = sizes
        ranges.sort()
        merged = []
        for a, b in ranges:
            if merged and a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        return merged

    def _publish_shared(self):
        # --shared NAME=FILE.json: frozen once, read in place by every
        # worker through isola.lookup(NAME) (no copy per worker).
        for spec in self.o["--shared"]:
            name, eq, path = spec.partition("=")
            if not name or not eq or not path:
                raise _Setup(f"--shared {spec}: expected NAME=FILE.json")
            try:
                with open(path, "rb") as f:
                    value = json.load(f)
            except OSError as exc:
                raise _Setup(f"--shared {spec}: cannot read {path}: {exc.strerror}")
            except ValueError as exc:
                raise _Setup(f"--shared {spec}: {path} is not JSON: {exc}")
            self.isola.publish(name, value)
            # process workers publish it again from a file: this one if it
            # is a regular file, else a copy (a pipe cannot be read twice)
            st = os.stat(path)
            if _is_regular(st):
                self.shared.append((name, os.path.abspath(path)))
            else:
                copy = os.path.join(self._private_dir(), f"shared{len(self.shared)}.json")
                with open(copy, "w", encoding="utf-8") as f:
                    json.dump(value, f)
                self.shared.append((name, copy))

    def _redirect_stdout(self):
        # Results go to a private copy of standard output; fd 1 itself
        # becomes standard error, so print() in a worker (or a C extension
        # writing to fd 1) never lands among the results.
        sys.stdout.flush()
        self.result_fd = os.dup(1)
        os.set_inheritable(self.result_fd, False)
        os.dup2(2, 1)

    def _start_pool(self):
        """The pool, and the lane the run starts in: the interpreters, or
        (--lane process, or --lane auto when a sub-interpreter refuses the
        target's import or a --preload) the process workers."""
        pool = None
        if self.lane == "interpreter":
            try:
                pool = self._new_pool(self.o["--preload"], None)
            except _Setup as exc:
                module = self.isola._refused_module(exc.__cause__)
                if module is None:
                    raise
                if not self.auto:
                    raise _Setup(f"{exc}\n(--lane process runs {self.target} in process "
                                 f"workers)")
                self._warn_moved(module)
            else:
                self.workers = pool.size
                try:
                    pool.apply_async(_check_target, (self.target,),
                                     lane="interpreter").result()
                except BaseException as exc:
                    module = self.isola._refused_module(exc)
                    if module is None or not self.auto:
                        pool.shutdown(wait=False, interrupt=True)
                        name, msg, _ = _error_of(exc, 0)
                        hint = ("" if module is None else
                                f"\n(--lane process runs {self.target} in process workers)")
                        raise _Setup(f"cannot use {self.target}: {name}: {msg}{hint}")
                    self._warn_moved(module)
                    pool.shutdown(wait=True, interrupt=True)
                    pool = None
        if pool is None:  # the process lane, from the start
            n = self.processes or self.o.get("-j") or os.cpu_count() or 1
            pool = self._new_pool((), n)
            self.workers = n
            try:
                pool.apply_async(_check_target, (self.target,), lane="process").result()
            except BaseException as exc:
                pool.shutdown(wait=False, interrupt=True)
                name, msg, _ = _error_of(exc, 0)
                raise _Setup(f"cannot use {self.target} (in a process worker): {name}: {msg}")
        return pool

    def _new_pool(self, preload, processes):
        """processes None: interpreter workers (-j), and process workers
        (--processes, default as many) started when a refusal moves the
        run; N: one interpreter worker (a pool has one) and N process
        workers, started now, importing --preload (the interpreter does not)."""
        paths = [os.getcwd()] + self.o["--path"]
        child_preload = [] if processes is None else self.o["--preload"]
        init = (f"import isola_map\nisola_map._worker_setup({self.shared!r}, "
                f"{child_preload!r})")
        try:
            pool = self.isola.Pool(self.o.get("-j") if processes is None else 1,
                                   preload=preload, path=paths, init=init,
                                   trace=self.o.get("--trace"), processes=processes,
                                   auto_place=False)
        except Exception as exc:
            raise _Setup(f"starting the workers failed: {exc}") from exc
        if processes is None and self.processes:
            pool._processes = self.processes  # the lane's size, once it starts
        # Silent fallbacks (a package caught its extension's refusal) are
        # said by the loop, in the command's words (_warn_fallback).
        q = self.queue
        pool._on_fallback = lambda modules, target: q.put(("fallback", modules))
        return pool

    def _warn_fallback(self, modules):
        """--lane auto: packages of FUNC caught a sub-interpreter's refusal
        of their extension and run their fallback in interpreter workers
        (reported by the pool, once per module)."""
        if self.lane == "process" or not self.auto:
            return  # C speed already, or the lane the user chose
        one = len(modules) == 1
        self._clear_bar()
        sys.stderr.write(f"isola map: {', '.join(modules)} {'refuses' if one else 'refuse'} "
                         f"sub-interpreters and {'its package' if one else 'their packages'} "
                         f"caught that: {self.target} runs {'its' if one else 'their'} "
                         "fallback (typically slower pure Python) in interpreter workers; "
                         "--lane process runs it in process workers, with the C extension\n")
        sys.stderr.flush()

    def _warn_moved(self, module):
        """--lane auto: a sub-interpreter refused module; from now on the
        run's chunks go to process workers.  Said once."""
        self.lane = "process"
        self.moved = module
        self._clear_bar()
        sys.stderr.write(f"isola map: {module} does not support sub-interpreters: "
                         f"{self.target} runs in process workers from now on (--lane process "
                         f"starts there; --lane interpreter keeps the error)\n")
        sys.stderr.flush()

    def _move(self, module):
        """A chunk was refused in an interpreter (an import inside FUNC):
        the process lane from now on, once FUNC is found there.  False if
        it cannot run there either: the refusals are then errors of their
        lines."""
        if self.lane == "process":
            return True
        try:
            self.pool.apply_async(_check_target, (self.target,), lane="process").result()
        except Exception as exc:
            self.auto = False
            name, msg, _ = _error_of(exc, 0)
            self._clear_bar()
            sys.stderr.write(f"isola map: {module} does not support sub-interpreters, and "
                             f"{self.target} cannot run in a process worker either: "
                             f"{name}: {msg}\n")
            return False
        self._warn_moved(module)
        self.workers = self.processes or self.pool.size
        return True

    def _private_dir(self):
        if self.tmpdir is None:
            import tempfile
            self.tmpdir = tempfile.mkdtemp(prefix="isola-map-")
        return self.tmpdir

    def _remove_tmpdir(self):
        if self.fifo_fd is not None:
            os.close(self.fifo_fd)
            self.fifo_fd = None
        if self.tmpdir is not None:
            import shutil
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None

    def _fifo_path(self):
        """--timeout in the process lane: the FIFO where process workers
        report each call's start (made on first need, read by the loop)."""
        if self.fifo is None:
            path = os.path.join(self._private_dir(), "progress")
            os.mkfifo(path, 0o600)
            # read and write: opening it never blocks, for us or a writer
            self.fifo_fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
            try:
                import fcntl
                fcntl.fcntl(self.fifo_fd, fcntl.F_SETPIPE_SZ, 1 << 20)
            except (ImportError, AttributeError, OSError):
                pass  # 64 KiB: writers wait for the loop a little more often
            self.fifo = path
        return self.fifo

    def _open_outputs(self):
        resume = bool(self.o.get("--resume"))
        out = self.o.get("--out")
        if resume and (self.resume_sizes is not None or self.joblog_size is not None):
            for path, size in zip((out, self.o.get("--errors"), self.o["--joblog"]),
                                  (self.resume_sizes or [None, None]) + [self.joblog_size]):
                try:
                    if path is not None and size is not None and os.path.getsize(path) > size:
                        os.truncate(path, size)  # written, never logged: written again
                except OSError as exc:
                    raise _Setup(f"cannot cut {path} back to what the joblog lists: "
                                 f"{exc.strerror}")
        if out is None:
            self.out = os.fdopen(self.result_fd, "wb", buffering=1 << 16)
        elif resume or self.o.get("--joblog") or not _replaceable(out):
            self.out = self._open(out, "ab" if resume else "wb")
        else:
            import tempfile
            d = os.path.dirname(os.path.abspath(out))
            try:
                fd, self.out_tmp = tempfile.mkstemp(dir=d, prefix="." + os.path.basename(out) + ".",
                                                    suffix=".isola-tmp")
            except OSError as exc:
                raise _Setup(f"cannot create a file beside {out}: {exc.strerror}")
            try:
                mode = os.stat(out).st_mode & 0o7777
            except OSError:
                umask = os.umask(0)
                os.umask(umask)
                mode = 0o666 & ~umask
            os.fchmod(fd, mode)
            self.out = os.fdopen(fd, "wb", buffering=1 << 16)
        if self.o.get("--errors"):
            self.errfile = self._open(self.o["--errors"], "a" if resume else "w")
        if self.o.get("--joblog"):
            self.joblog = self._open(self.o["--joblog"], "a" if resume else "w")
            try:
                if not resume or self.joblog.tell() == 0:
                    self.joblog.write("# isola map joblog: first\tcount\tfailed\tseconds"
                                      "\tout_bytes\terrors_bytes\n")
                    self.joblog.flush()
            except OSError as exc:
                raise _Setup(f"cannot write the joblog {self.o['--joblog']}: {exc.strerror}")

    @staticmethod
    def _open(path, mode):
        try:
            return open(path, mode, **({} if "b" in mode else {"encoding": "utf-8"}))
        except OSError as exc:
            raise _Setup(f"cannot open {path}: {exc.strerror}")

    def _install_signals(self):
        import signal
        for name in STOP_SIGNALS:
            signal.signal(getattr(signal, name), self._on_signal)

    def _on_signal(self, signum, frame):
        # Runs in the main thread between bytecodes.  Put on the queue
        # (SimpleQueue.put is reentrant): the loop takes it as a stop.
        again = self.stop_signal is not None
        self.stop_signal = signum
        self.stopping = True
        self.queue.put(("signal", again))
        if self.in_read:
            raise _Reading()

    # -- the loop ------------------------------------------------------------

    def _loop(self):
        inflight = self.inflight
        next_seq = 0
        chunks = self._chunks()
        if self.timeout:  # where each running call is, to find the stuck ones
            self.progress = self.isola.Channel(4096)
        # Stopping by a signal: a grace for running tasks, then their
        # interrupt and a grace again, then they are abandoned (a call that
        # cannot be interrupted, such as time.sleep).  Each further signal
        # takes the next step at once.
        phase = 0          # 0 running, 1 grace, 2 interrupted
        step_at = None     # when the next step is due (None: never)
        while True:
            while not self.stopping and len(inflight) < 2 * self.workers + 1:
                try:
                    c = next(chunks, None)
                except _Reading:
                    c = None
                if c is None:
                    break
                slot = _Slot(next_seq, *c)
                next_seq += 1
                inflight[slot.seq] = slot
                self._submit(slot, 0, slot.first, slot.count, slot.data)
            if not inflight:
                break
            if self.stopping and phase == 0:
                self._cancel(inflight)
                phase = 1
                if self.stop_signal is not None:
                    step_at = time.monotonic() + self._grace()
            try:
                wait = None if step_at is None else max(0.0, step_at - time.monotonic())
                if self.timeout:
                    wait = 0.25 if wait is None else min(wait, 0.25)
                msg = self.queue.get(timeout=wait)
            except queue.Empty:
                msg = None
            if self.timeout:  # (also while stopping: drained, workers never wait on it)
                self._look_for_stuck_lines()
                self._advance()
                if self.all_stuck:
                    self.stopping = self.abandoned = True
                    self.status = 1
                    break
            if msg is None:
                if step_at is None or time.monotonic() < step_at:
                    continue
                msg = ("signal", True)  # the grace is over
            if msg[0] == "fallback":
                self._warn_fallback(msg[1])
                continue
            if msg[0] == "signal":
                if msg[1] and phase == 1:      # interrupt now
                    self._interrupt(inflight)
                    phase = 2
                    step_at = time.monotonic() + self._grace() + self._kill_margin()
                elif msg[1] and phase == 2:    # abandon now
                    self.abandoned = True
                    break
                continue
            _, slot, part, fut, token, lane = msg
            self._part_done(slot, part, fut, token, lane)
            self._advance()
            self._progress(False)
        self._progress(True)

    def _advance(self):
        """Write (--ordered) and forget the slots that are done."""
        inflight = self.inflight
        if self.ordered:
            while self.next_write in inflight and inflight[self.next_write].left == 0:
                self._write_slot(inflight.pop(self.next_write))
                self.next_write += 1
        else:
            for seq in [q for q, slot in inflight.items() if slot.left == 0]:
                del inflight[seq]

    def _look_for_stuck_lines(self):
        """--timeout: a call still running --timeout plus STOP_GRACE after
        its start was interrupted and did not stop (blocked in C, such as
        time.sleep in an interpreter worker): its line fails, the other
        lines of its task run again in tasks of their own, and its worker
        is given up on (an interpreter worker: until the call returns, if
        ever; a process worker is interrupted, killed a grace later and
        replaced).  With every interpreter worker given up on, the run
        stops (self.all_stuck)."""
        # A call's start is taken as when it is seen here (the loop looks at
        # least every 0.25 s): later than it was, so a line is never given
        # up on early.
        now = time.monotonic()
        started = self.started

        def seen(n):
            m = ~n if n < 0 else n
            token, index = m >> 40, m & ((1 << 40) - 1)
            if token in self.running and started.get(token, (None,))[0] != n:
                started[token] = (n, index, now)
        try:
            while True:
                seen(self.progress.recv_nowait())
        except self.isola.ChannelEmpty:
            pass
        if self.fifo_fd is not None:
            import struct
            while True:
                try:
                    b = os.read(self.fifo_fd, 1 << 16)
                except (BlockingIOError, InterruptedError):
                    break
                if not b:
                    break
                b = self.fifo_rest + b
                whole = len(b) - len(b) % 8
                self.fifo_rest = b[whole:]
                for (n,) in struct.iter_unpack("<q", b[:whole]):
                    seen(n)
        for token, (_, index, t) in list(self.started.items()):
            if now - t <= self.timeout + self._grace():
                continue
            slot, part, fut, lane = self.running.pop(token)
            del self.started[token]
            if fut.done():
                continue  # it ended after all: its message is on the way
            self.lost[token] = (fut, lane)
            if lane == "process":
                fut.interrupt()  # SIGINT; still running a grace later: killed
            if self.stopping:  # no new tasks: the part is not done
                whole = len(slot.parts) == 1
                self._set_part(slot, part, slot.first if whole else slot.first + part,
                               slot.count if whole else 1, None)
                continue
            failed = (index, "TimeoutError",
                      f"the call ran past --timeout {self.timeout:g} s and could not be "
                      f"interrupted (blocked in C?): its " +
                      ("process worker is killed and replaced" if lane == "process" else
                       "worker is given up on"), "")
            if len(slot.parts) == 1 and slot.count > 1:
                lines = slot.data.split(b"\n")
                slot.parts = [None] * len(lines)
                slot.left = len(lines)
                for k, line in enumerate(lines):
                    if slot.first + k != index:
                        self._submit(slot, k, slot.first + k, 1, line)
            part = index - slot.first if len(slot.parts) > 1 else 0
            self._set_part(slot, part, index, 1, (self._placeholder_line(), [failed], [], 0.0))
        self.all_stuck = self.lane == "interpreter" and len(
            self._stuck_interpreters()) >= self.pool.size

    def _stuck_interpreters(self):
        """Futures of interpreter workers given up on, still running."""
        return [f for f, lane in self.lost.values() if lane == "interpreter" and not f.done()]

    def _kill_margin(self):
        """Extra time to wait for running tasks when some run in process
        workers: those are killed a grace after their interrupt, and end."""
        return 1.0 if self.lane == "process" or self.moved else 0.0

    def _placeholder_line(self):
        return "" if self.placeholder is None else self.placeholder + "\n"

    def _chunks(self):
        """(first index, count, data) per chunk of input, skipping what
        the joblog lists as done.  Chunks never span two files."""
        import itertools
        index = 0
        done = self._done
        d = 0
        for name, st in self.sources:
            f = sys.stdin.buffer if name == "-" else open(name, "rb", buffering=1 << 20)
            self.file_starts.append((index, "<stdin>" if name == "-" else name))
            it = iter(f)
            try:
                while True:
                    self.in_read = True
                    try:
                        lines = list(itertools.islice(it, self._chunk_lines()))
                    finally:
                        self.in_read = False
                    if not lines:
                        break
                    n = len(lines)
                    a = index
                    while a < index + n:
                        while d < len(done) and done[d][1] <= a:
                            d += 1
                        if d < len(done) and done[d][0] <= a:
                            a = min(done[d][1], index + n)  # done already
                            continue
                        b = index + n if d >= len(done) else min(done[d][0], index + n)
                        data = b"".join(lines[a - index:b - index])
                        if data.endswith(b"\n"):
                            data = data[:-1]
                        yield a, b - a, data
                        a = b
                    index += n
            finally:
                if f is not sys.stdin.buffer:
                    f.close()

    def _chunk_lines(self):
        if self.fixed_chunk:
            return self.fixed_chunk
        if self.per_line is None:
            return FIRST_CHUNK
        return max(1, min(MAX_AUTO_CHUNK, int(CHUNK_SECONDS / max(self.per_line, 1e-9))))

    def _submit(self, slot, part, first, count, data):
        token = next(self.tokens)
        lane = self.lane
        process = lane == "process"
        progress = None
        if self.timeout:
            progress = (self._fifo_path() if process else self.progress, token)
        f = self.pool.apply_async(
            _map_chunk, (self.target, first, data, self.plain, self.placeholder, self.timeout,
                         self.retries, progress, process, self.auto and not process),
            lane=lane)
        slot.futures.append((f, lane))
        if self.timeout:
            self.running[token] = (slot, part, f, lane)
        q = self.queue
        f.add_done_callback(lambda f: q.put(("done", slot, part, f, token, lane)))

    def _part_done(self, slot, part, fut, token, lane):
        self.running.pop(token, None)
        self.started.pop(token, None)
        if self.lost.pop(token, None) is not None:
            return  # given up on (_look_for_stuck_lines): its lines are done elsewhere
        first, count = (slot.first, slot.count) if len(slot.parts) == 1 else (
            slot.first + part, 1)
        try:
            outcome = fut.result()
        except BaseException as exc:  # the task failed as a whole
            module = None
            if lane == "interpreter" and self.auto and not fut.cancelled():
                module = self.isola._refused_module(exc)
            if self.stopping or fut.cancelled() or isinstance(exc, self.isola.Cancelled):
                outcome = None    # not done: --resume does it
            elif module is not None and self._move(module):
                # a sub-interpreter refused an import of FUNC: this part
                # (and every task from now on) runs in a process worker
                data = slot.data if len(slot.parts) == 1 else slot.data.split(b"\n")[part]
                self._submit(slot, part, first, count, data)
                return
            elif slot.count > 1 and len(slot.parts) == 1:
                self._split(slot)  # find the line that failed: one task per line
                return
            else:
                name, msg, tb = _error_of(exc, 0)
                if isinstance(exc, BrokenExecutor):  # a process worker died (or
                    # could not start again): no traceback of its own
                    msg, tb = msg.replace("isola_map:_map_chunk", self.target), ""
                outcome = (self._placeholder_line(), [(first, name, msg, tb)], [], 0.0)
        self._set_part(slot, part, first, count, outcome)

    def _set_part(self, slot, part, first, count, outcome):
        slot.parts[part] = (first, count, outcome)
        slot.left -= 1
        if outcome is not None and outcome[3] > 0 and count > 0:
            per = outcome[3] / count
            self.per_line = per if self.per_line is None else 0.7 * self.per_line + 0.3 * per
        if not self.ordered:
            self._write_part(first, count, outcome)

    def _split(self, slot):
        lines = slot.data.split(b"\n")
        slot.parts = [None] * len(lines)
        slot.left = len(lines)
        for k, line in enumerate(lines):
            self._submit(slot, k, slot.first + k, 1, line)

    # -- writing -------------------------------------------------------------

    def _write_slot(self, slot):
        for p in slot.parts:
            self._write_part(*p)

    def _write_part(self, first, count, outcome):
        if outcome is None or self.gap:
            # not done (--resume does it); --ordered output stays a prefix
            # of the input order, so nothing after this part is written
            self.unprocessed += count
            self.gap = self.ordered
            return
        text, errors, blanks, seconds = outcome
        if self.halt is not None:
            allowed = self.halt - self.errors
            if len(errors) >= allowed and not self.halted:
                self.stopping = self.halted = True
            if len(errors) > allowed:
                # --halt counts lines: write up to the Nth failed line
                # (past it after the halt: up to the line before the next
                # failure); the rest of the part is not done
                cut = errors[allowed - 1][0] if allowed > 0 else errors[0][0] - 1
                text = self._cut(text, first, cut)
                errors = errors[:allowed]
                blanks = [b for b in blanks if b <= cut]
                self.unprocessed += first + count - 1 - cut
                count = cut - first + 1
                self.gap = self.ordered
                if count == 0:
                    return
        rows = []
        for index, name, msg, tb in errors:
            rows.append(self._error_row(index, name, msg, tb))
        try:
            if text:
                self.out.write(text.encode("utf-8", "surrogateescape"))
            if rows and self.errfile is None and not self.ordered:
                self.out.write("".join(rows).encode())
            self.out.flush()
            if rows and self.errfile is not None:
                self.errfile.write("".join(rows))
                self.errfile.flush()
            if self.joblog is not None:
                self.joblog.write(f"{first}\t{count}\t{len(errors)}\t{seconds:.6f}\t"
                                  f"{self._size(self.out)}\t{self._size(self.errfile)}\n")
                self.joblog.flush()
        except OSError as exc:
            raise _OutputError() from exc
        self.errors += len(errors)
        self.blank += len(blanks)
        self.items += count - len(blanks)
        self.lines_done += count

    def _size(self, f):
        """The size of a regular output file so far (for the joblog), else -."""
        if f is None or f is self.out and self.o.get("--out") is None:
            return "-"
        try:
            return str(f.tell())
        except OSError:
            return "-"

    def _cut(self, text, first, last):
        """The output lines of text for input lines up to index last."""
        lines = text.split("\n")[:-1]
        if self.ordered:        # one line per input line
            keep = lines[:last - first + 1]
        else:                   # {"index": i, "result": ...}, i rising
            keep = [l for l in lines if int(l[10:l.index(",")]) <= last]
        return "".join(l + "\n" for l in keep)

    def _error_row(self, index, name, msg, tb):
        file, line = self._where(index)
        if self.errfile is not None:
            return json.dumps({"index": index, "file": file, "line": line, "error": name,
                               "message": msg, "traceback": tb}) + "\n"
        if not self.ordered:
            return json.dumps({"index": index, "error": name, "message": msg,
                               "traceback": tb}) + "\n"
        # --ordered without --errors: results stay alone; say it on stderr
        text = f"isola map: {file}:{line} (index {index}): {name}: {msg}\n"
        if tb and self.shown_tracebacks < SHOWN_TRACEBACKS:
            self.shown_tracebacks += 1
            text += "".join("    " + t + "\n" for t in tb.rstrip("\n").split("\n"))
        self._clear_bar()
        sys.stderr.write(text)
        return ""

    def _where(self, index):
        import bisect
        k = bisect.bisect_right(self.file_starts, (index, "\U0010ffff")) - 1
        start, name = self.file_starts[max(k, 0)]
        return name, index - start + 1

    # -- stopping ------------------------------------------------------------

    def _grace(self):
        return float(getattr(self.isola, "STOP_GRACE", 2.0))

    def _cancel(self, inflight):
        """Read no more; cancel what has not started."""
        for slot in inflight.values():
            for f, _ in slot.futures:
                f.cancel()

    def _interrupt(self, inflight):
        for slot in inflight.values():
            for f, _ in slot.futures:
                if not f.done():
                    f.interrupt()

    def _stop_pool(self, now):
        """Shut the pool down.  now: cancel what is queued and interrupt
        what runs (a signal, an output error); tasks still running a grace
        after their interrupt are abandoned (self.abandoned), and the pool
        with them; process workers are killed instead (the lane does it a
        grace after the interrupt), so that shutting them down is bounded."""
        pool = self.pool
        running = [(f, lane) for slot in self.inflight.values() for f, lane in slot.futures]
        if self._stuck_interpreters():
            self.abandoned = True  # past --timeout and its grace already
        if now and not self.abandoned and running:
            self._cancel(self.inflight)
            self._interrupt(self.inflight)
            import concurrent.futures as cf
            cf.wait([f for f, _ in running], timeout=self._grace() + (
                self._kill_margin() if any(lane == "process" for _, lane in running) else 0))
        if any(not f.done() for f, lane in running if lane == "interpreter"):
            self.abandoned = True
        if self.abandoned:
            pool.shutdown(wait=False, interrupt=True)
        else:
            pool.shutdown(wait=True, interrupt=now)

    # -- the end -------------------------------------------------------------

    def _close_outputs(self):
        try:
            for f in (self.out, self.errfile, self.joblog):
                if f is not None:
                    f.close()
            if self.out_tmp is not None:
                os.replace(self.out_tmp, self.o["--out"])
                self.out_tmp = None
        except OSError as exc:
            raise _OutputError() from exc

    def _abandon_outputs(self):
        for f in (self.out, self.errfile, self.joblog):
            try:
                if f is not None:
                    f.close()
            except OSError:
                pass
            # a buffered file whose close failed still holds what it could
            # not write: drop it, or finalization tries (and complains) again
            _drop_buffer(f)
        if self.out_tmp is not None:
            try:
                os.unlink(self.out_tmp)
            except OSError:
                pass

    def _summary(self):
        wall = time.monotonic() - getattr(self, "t0", time.monotonic())
        parts = [f"{self.items} items", f"{self.errors} errors"]
        if self.blank:
            parts.append(f"{self.blank} blank lines skipped")
        parts += [f"{wall:.2f} s", f"{self.items / max(wall, 1e-9):.0f} items/s"]
        text = "isola map: " + ", ".join(parts)
        if self.stop_signal is not None:
            import signal
            text += f"; stopped by {signal.Signals(self.stop_signal).name}"
        elif self.halted:
            text += f"; halted after {self.errors} failed lines (--halt {self.halt})"
        if self.all_stuck:
            text += (f"; every worker is stuck in a call that --timeout could not interrupt,"
                     f" the rest of the input not done" +
                     (": --resume does it" if self.joblog is not None else ""))
        if self.abandoned:
            stuck = len({id(f) for slot in self.inflight.values() for f, lane in slot.futures
                         if lane == "interpreter" and not f.done()} |
                        {id(f) for f in self._stuck_interpreters()})
            killed = len({id(f) for slot in self.inflight.values() for f, lane in slot.futures
                          if lane == "process" and not f.done()})
            if stuck or not killed:
                text += (f"; {stuck} running task(s) did not end {self._grace():g} s after "
                         f"their interrupt (a call that cannot be interrupted): abandoned")
            if killed:
                text += f"; {killed} task(s) still running in process workers: killed"
        if self.stopping and (self.stop_signal is not None or self.halted):
            text += (", the rest of the input not done" +
                     (": --resume does it" if self.joblog is not None else ""))
        self._clear_bar()
        sys.stderr.write(text + "\n")
        sys.stderr.flush()

    # -- progress bar (standard error is a terminal) -------------------------

    # The line is isola._progress's, shared with Pool.map(progress=True).

    def _progress_setup(self):
        self.bar = self.isola._progress.ProgressLine(None, sys.stderr, t0=self.t0)
        if self.bar.enabled and all(st is not None and _is_regular(st)
                                    for _, st in self.sources):
            total = sum(_count_lines(name) for name, _ in self.sources)
            self.bar.total = total - sum(b - a for a, b in self._done)

    def _progress(self, final):
        self.bar.update(self.lines_done, self.errors, final)

    def _clear_bar(self):
        if getattr(self, "bar", None) is not None:
            self.bar.clear()


class _OutputError(Exception):
    """Writing the output failed (its __cause__ says why)."""


def _drop_buffer(f):
    raw = getattr(f, "buffer", f)
    raw = getattr(raw, "raw", None)
    try:
        if raw is not None and not raw.closed:
            raw.close()
    except OSError:
        pass


def _replaceable(path):
    """A path --out can be renamed over: absent, or a regular file."""
    import stat
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except FileNotFoundError:
        return True
    except OSError:
        return False


def _is_regular(st):
    import stat
    return stat.S_ISREG(st.st_mode)


def _count_lines(path):
    n = 0
    last = b"\n"
    with open(path, "rb") as f:
        while True:
            block = f.read(1 << 20)
            if not block:
                break
            n += block.count(b"\n")
            last = block[-1:]
    return n + (last != b"\n")
