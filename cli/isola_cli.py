"""The `isola` command line: map, run, bench.

Run by the Python isola was built for, as `python3.X -m isola_cli ARGS`
(the `isola` executable only execs that), so that a mapped function runs
at that interpreter's own speed: Debian links /usr/bin/python3.X
statically, and Python code runs ~1.2x slower in a program linked with
the shared libpython (README, "The command line").

The map engine reads input in the main interpreter, sends chunks of raw
lines to the pool (isola_cli._map_chunk decodes, calls and encodes in the
worker, line by line) and writes what comes back; the main interpreter
never touches a record.
"""
import os
import sys

USAGE = """\
usage: isola COMMAND [options]

Run Python on every core: one sub-interpreter per thread.

commands:
  map MODULE:FUNC   call FUNC on every input line, in parallel
  run FILE.py       run FILE's main(pool) with a ready pool
  bench             run the benchmark suite and print its tables

`isola COMMAND --help` for each; `isola --version`.
"""

USAGE_MAP = """\
usage: isola map MODULE:FUNC [FILE...] [-j N] [--in FILE]... [--out FILE]
                 [--ordered [--placeholder TEXT]] [--lines] [--chunk K]
                 [--timeout S] [--retries N] [--halt N] [--errors FILE]
                 [--joblog FILE] [--resume] [--lane auto|interpreter|process]
                 [--processes N] [--path DIR]... [--preload MOD]...
                 [--shared NAME=FILE]... [--trace FILE]

Read JSON lines from the FILEs (or standard input; `-` is standard input),
call FUNC(value) with each line's value as its one argument, in a pool of N
interpreters (or process workers: --lane), and write one JSON line per result:
  --ordered  the results alone, in input order, one output line per input
             line: output line N is input line N (`paste` works), and a
             failed or blank line gives the placeholder, an empty line
             unless --placeholder TEXT (`null`, say) names another;
  default    {"index": i, "result": ...} as they finish (i: the line's
             number in the input, from 0, counting every file in turn).
FUNC is not called for blank lines.  With --lines each line (a str,
without its line end) is the argument instead of a JSON value.  A result
that JSON cannot write (NaN, Infinity, a set, ...) is an error for its
line: every output line is standard JSON (but --ordered's empty
placeholder lines).

A failing line (bad UTF-8, bad JSON, an exception, a timeout) is reported
for that line alone and the run goes on:
  --errors FILE  one JSON line per failure there, with its traceback:
                 {"index", "file", "line", "error", "message", "traceback"};
  otherwise      unordered output gets {"index": i, "error": TYPE,
                 "message": MSG, "traceback": TB} rows; --ordered output
                 stays results only (the placeholder in a failed line's
                 place) and failures go to standard error.
Output written by print() in FUNC goes to standard error, never into the
results.

options:
  -j N           interpreters (default: the number of CPUs); with --lane
                 process, process workers
  --in FILE      an input file (may repeat; FILEs after FUNC work too)
  --out FILE     output (default: standard output).  Written to a temporary
                 file beside FILE and renamed over it at the end, so a run
                 that fails to start or write leaves FILE as it was; FILE
                 may not be one of the inputs.
  --ordered      results in input order (see above)
  --placeholder TEXT
                 with --ordered: the line written for a failed or blank
                 input line (default: an empty line)
  --lines        plain text lines instead of JSON
  --chunk K      lines per task (default: sized to ~20 ms of work per task)
  --timeout S    a line whose call runs longer than S seconds is interrupted
                 (isola.Cancelled inside FUNC) and fails with TimeoutError.
                 A call that cannot be interrupted (blocked in C, such as
                 time.sleep) fails its line isola.STOP_GRACE (2 s) later:
                 its worker is given up on (abandoned at exit unless the
                 call returns) and the other lines of its task run again
                 in other workers; with every worker given up on, the run
                 stops (exit status 1).  In a process worker the timeout
                 is a SIGALRM, which ends time.sleep too; a call that does
                 not stop even so fails its line STOP_GRACE later, and its
                 process worker is killed and replaced.  Costs a few
                 microseconds a line.
  --retries N    call FUNC up to N more times for a line that fails
  --halt N       stop at the Nth failed line: read no more input, cancel
                 what has not started, let running tasks finish, and write
                 what finished up to the Nth failure (past it, lines up to
                 the next failure; with --ordered, nothing past a line not
                 written); exit status 1
  --errors FILE  failures there (see above), keeping the output clean
  --joblog FILE  after each finished task, a line "first count failed
                 seconds out_bytes errors_bytes" (tab-separated) naming the
                 input lines it covered and the size of --out and --errors
                 once they were written; --out is then written in place as
                 the run goes
  --resume       with --joblog: skip the lines the joblog lists as done and
                 append to --out (and --errors), first cutting off what a
                 run that was killed wrote without logging it; give the
                 same inputs
  --lane L       where FUNC runs.  auto (default): in interpreters, and
                 when a sub-interpreter refuses an import of FUNC (numpy,
                 lxml, ...: "does not support loading in subinterpreters",
                 at import or in a call) in process workers from then on,
                 with one warning line naming the module (the lines of a
                 chunk refused midway run again there); a package that
                 catches the refusal and runs a slower fallback (PyYAML,
                 msgpack, ...) stays, and one line says so;
                 process: in process workers from the start (a child
                 process each, running FUNC in its main interpreter, as
                 isola.Pool's process lane); interpreter: never in
                 processes, such a refusal is an error (at import: exit
                 status 2; in a call: of its line)
  --processes N  process workers, when the run uses them (default: -j's
                 number)
  --path DIR     add DIR to the workers' sys.path (the current directory is
                 on it)
  --preload MOD  import MOD in every worker first
  --shared NAME=FILE
                 freeze the JSON file FILE once and publish it as NAME:
                 FUNC reads it with isola.lookup(NAME), in place, without
                 a copy per worker (a lookup table, a vocabulary); each
                 process worker reads FILE again (one copy per process)
  --trace FILE   write a timeline of every task to FILE (Trace Event Format
                 JSON: open it in https://ui.perfetto.dev or chrome://tracing,
                 or draw it with scripts/trace-plot)

Stopping: Ctrl-C (SIGINT) or SIGTERM stops reading, cancels what has not
started, gives running tasks isola.STOP_GRACE (2 s) to finish and then
interrupts them; a task still running STOP_GRACE after its interrupt (a
call blocked in C) is abandoned, as isola.Pool abandons it (in a process
worker it is killed instead).  Each further signal takes the next step at
once.  Every finished line is written whole (--ordered: only up to the
first line not done, so that the output is always a prefix of the input
order), then the summary, and the exit status is 130 (SIGINT) or 143
(SIGTERM).  With --joblog, --resume then does the rest, in order.  When
the reader of the output goes away (`isola map ... | head`), the run stops
at once, quietly, with status 141, as a tool killed by SIGPIPE.

Exit status: 0 all lines done; 1 some failed (or --halt); 2 a usage, setup
or output error (a missing module, an unwritable --out or --joblog, a full
disk); 130/143 after SIGINT/SIGTERM; 141 the output pipe was closed.
A progress bar goes to standard error when it is a terminal; a summary
line always.

Containment: FUNC runs in a sub-interpreter of this process.  Exceptions,
sys.exit() and os._exit() in FUNC are errors of their line; a crash in C
(a segfault or abort() in an extension) ends the whole process, as it
would a thread: finished lines are already written and, with --joblog,
--resume carries on after them.  In a process worker (--lane) a crash
fails only its line (isola.WorkerCrashed, naming the signal), and the
worker is replaced.

examples:
  seq 1 20 | isola map math:factorial --ordered
  isola map mytools:numpy_stats rows.jsonl --ordered   # numpy: process workers
  printf 'a\\nb\\n' | isola map builtins:str.upper --lines --ordered
  isola map mytools:score items.jsonl --out scores.jsonl -j 8 --errors bad.jsonl
  isola map mytools:score big.jsonl --out s.jsonl --joblog s.log  # Ctrl-C, then:
  isola map mytools:score big.jsonl --out s.jsonl --joblog s.log --resume
"""

USAGE_RUN = """\
usage: isola run [-j N] FILE.py [-j N] [ARGS...]

Import FILE (as __isola_main__, so its `if __name__ == "__main__":` block
does not run), then call its main(pool) with an isola.Pool of N workers
(default: the number of CPUs); sys.argv is [FILE, ARGS...].  Exit status:
main's return value if an int, else 0.

example:
  isola run demos/stdlib_ast.py -j 2
"""

USAGE_BENCH = """\
usage: isola bench [--quick] [--dir DIR]

Run the benchmarks (codec, channels between interpreters, pools) and print
their tables.  DIR: where the bench_*.py files are (default: the source
tree's bench/ this isola was built from).
"""


class _UsageError(Exception):
    pass


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        sys.stderr.write(USAGE)
        return 2
    cmd, rest = argv[0], argv[1:]
    if cmd in ("-h", "--help"):
        sys.stdout.write(USAGE)
        return 0
    if cmd in ("-V", "--version"):
        return _version()
    commands = {"map": (USAGE_MAP, _cmd_map), "run": (USAGE_RUN, _cmd_run),
                "bench": (USAGE_BENCH, _cmd_bench)}
    if cmd not in commands:
        sys.stderr.write(f"isola: unknown command {cmd}\n\n{USAGE}")
        return 2
    usage, fn = commands[cmd]
    if any(a in ("-h", "--help") for a in rest[:_options_end(cmd, rest)]):
        sys.stdout.write(usage)
        return 0
    try:
        return fn(rest)
    except _UsageError as exc:
        sys.stderr.write(f"isola {cmd}: {exc}\n{usage.splitlines()[0]}\n"
                         f"(isola {cmd} --help says more)\n")
        return 2


def _options_end(cmd, rest):
    # `isola run FILE --help` passes --help to FILE's main
    if cmd != "run":
        return len(rest)
    i = 0
    while i < len(rest) and rest[i].startswith("-"):
        i += 2 if rest[i] == "-j" else 1
    return i


def _version():
    import isola
    v = sys.version_info
    print(f"isola {isola.__version__} (Python {v[0]}.{v[1]}.{v[2]}, {sys.executable})")
    return 0


# -- option parsing ---------------------------------------------------------

def _parse(args, flags, valued, repeated=()):
    """args -> (options dict, positionals).  flags: names without a value;
    valued: names taking one (a converter each); repeated: valued names
    that may repeat (lists).  opts["_seq"] lists (name, value) in command
    line order, positionals as (None, value)."""
    opts = {name: [] for name in repeated}
    opts["_seq"] = seq = []
    pos = []
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("--") and "=" in a:  # --name=value
            a, v = a.split("=", 1)
            args = args[:i] + [a, v] + args[i + 1:]
        elif a[:2] in valued and len(a) > 2 and not a.startswith("--"):  # -j2
            args = args[:i] + [a[:2], a[2:]] + args[i + 1:]
            a = a[:2]
        if a in flags:
            opts[a] = True
        elif a in valued:
            if i + 1 >= len(args):
                raise _UsageError(f"{a} needs a value")
            v = valued[a](a, args[i + 1])
            if a in repeated:
                opts[a].append(v)
            else:
                opts[a] = v
            seq.append((a, v))
            i += 1
        elif a.startswith("-") and a != "-":
            raise _UsageError(f"unknown option {a}")
        else:
            pos.append(a)
            seq.append((None, a))
        i += 1
    return opts, pos


def _int(lo, hi):
    def conv(name, v):
        try:
            n = int(v)
        except ValueError:
            n = None
        if n is None or not lo <= n <= hi:
            raise _UsageError(f"{name} takes a number from {lo} to {hi}, not {v}")
        return n
    return conv


def _seconds(name, v):
    try:
        s = float(v)
    except ValueError:
        s = None
    if s is None or not 0 < s <= 1e6:
        raise _UsageError(f"{name} takes seconds (> 0, at most 1e6), not {v}")
    return s


def _text(name, v):
    return v


def _choice(*choices):
    def conv(name, v):
        if v not in choices:
            raise _UsageError(f"{name} takes one of {', '.join(choices)}, not {v}")
        return v
    return conv


def _one_line(name, v):
    if "\n" in v or "\r" in v:
        raise _UsageError(f"{name} takes text on one line")
    return v


# -- isola run / bench --------------------------------------------------------

def _cmd_run(args):
    workers = None
    i = 0
    while i < len(args) and args[i] == "-j":
        if i + 1 >= len(args):
            raise _UsageError("-j needs a value")
        workers = _int(1, 1024)("-j", args[i + 1])
        i += 2
    if i >= len(args):
        raise _UsageError("run needs FILE.py")
    file, rest = args[i], args[i + 1:]
    if rest[:1] == ["-j"] and len(rest) >= 2:  # isola run FILE.py -j N ARGS
        workers = _int(1, 1024)("-j", rest[1])
        rest = rest[2:]
    path = os.path.abspath(file)
    if not os.access(path, os.R_OK):
        sys.stderr.write(f"isola run: cannot read {file}: "
                         f"{os.strerror(2 if not os.path.exists(path) else 13)}\n")
        return 2
    import importlib.util
    import isola
    sys.argv = [path] + rest
    sys.path.insert(0, os.path.dirname(path))
    spec = importlib.util.spec_from_file_location("__isola_main__", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["__isola_main__"] = mod
    spec.loader.exec_module(mod)
    fn = getattr(mod, "main", None)
    if not callable(fn):
        sys.stderr.write(f"isola run: {path} has no main(pool) function\n")
        return 2
    import __main__
    __main__.__file__ = path  # workers import the script from here
    with isola.Pool(workers) as pool:
        rv = fn(pool)
    return rv if isinstance(rv, int) else 0


def _cmd_bench(args):
    opts, pos = _parse(args, {"--quick"}, {"--dir": _text})
    if pos:
        raise _UsageError(f"unexpected argument {pos[0]}")
    import subprocess
    import isola
    d = os.path.abspath(opts.get("--dir") or os.environ.get("ISOLA_BENCH_DIR") or "bench")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [os.path.dirname(os.path.abspath(isola.__file__)), d, env.get("PYTHONPATH", "")])
    status = 0
    for name in ("bench_codec.py", "bench_interp.py", "bench_pool.py"):
        path = os.path.join(d, name)
        if not os.path.exists(path):
            sys.stderr.write(f"isola bench: {path} not found (use --dir)\n")
            return 2
        print(f"== {name}", flush=True)
        r = subprocess.run([sys.executable, path] + (["--quick"] if opts.get("--quick") else []),
                           env=env)
        status = status or r.returncode
        print(flush=True)
    return status


# -- isola map ----------------------------------------------------------------

def _cmd_map(args):
    from isola_map import MapRun
    opts, pos = _parse(
        args, {"--ordered", "--lines", "--resume"},
        {"-j": _int(1, 1024), "--in": _text, "--out": _text, "--chunk": _int(1, 1000000),
         "--path": _text, "--preload": _text, "--timeout": _seconds,
         "--retries": _int(0, 1000), "--halt": _int(1, 10**12), "--errors": _text,
         "--joblog": _text, "--shared": _text, "--placeholder": _one_line,
         "--trace": _text, "--lane": _choice("auto", "interpreter", "process"),
         "--processes": _int(1, 1024)},
        repeated=("--in", "--path", "--preload", "--shared"))
    if not pos:
        raise _UsageError("map needs MODULE:FUNC")
    target = pos[0]
    # input files in command-line order, --in or not (the first positional
    # is the target)
    ins = [(name, v) for name, v in opts["_seq"] if name in ("--in", None)]
    ins.remove((None, target))
    files = [v for _, v in ins]
    mod, _, qual = target.partition(":")
    if not mod or not qual:
        raise _UsageError(f"bad function name {target}: expected MODULE:FUNC")
    if "--placeholder" in opts and not opts.get("--ordered"):
        raise _UsageError("--placeholder goes with --ordered")
    if opts.get("--resume") and not opts.get("--joblog"):
        raise _UsageError("--resume needs --joblog (the record of what was done)")
    if "--processes" in opts and opts.get("--lane") == "interpreter":
        raise _UsageError("--processes sizes the process lane: not with --lane interpreter")
    return MapRun(target, files, opts).run()


if __name__ == "__main__":
    sys.exit(main())
