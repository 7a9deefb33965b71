"""The main demo: parse every .py file of the installed Python standard
library with ast, in parallel, and report the most common node types and
the largest functions, with the speed-up over one interpreter measured in
the same run.

    python3 demos/stdlib_ast.py [--rounds R] [--trace FILE] [--files N]
                                         (PYTHONPATH must reach isola)
    isola run demos/stdlib_ast.py -j 4 [--rounds R] [--files N]
                                         (the same, through the command line)

Each worker is a sub-interpreter with its own GIL: the parsing really runs
on every core, in one process.

The speed-up is measured fairly (issue #31.13): one interpreter and N
interpreters, each in a warm pool, and beside them the same work in one
and in N separate processes (plain Python, no isola): what the machine
itself allows right now, busy or idle.  The four are interleaved over R
rounds (default 3; the order reversed every other round) and the best of
each is kept.  --trace FILE writes both pools' timeline (see
scripts/trace-plot); --files N parses the first N files only (tests).
"""
import ast
import collections
import os
import sys
import sysconfig
import time

import isola

STDLIB = sysconfig.get_paths()["stdlib"]


def find_files():
    files = []
    for root, dirs, names in os.walk(STDLIB):
        # The library, not its test suite (installed or not, by the
        # distribution's choice: Debian's libpython3.X-testsuite adds
        # ~1,150 files).
        dirs[:] = [d for d in dirs if d not in ("site-packages", "dist-packages", "__pycache__",
                                                "test", "tests", "idle_test")]
        files += [os.path.join(root, n) for n in names if n.endswith(".py")]
    return sorted(files)


def analyse(paths):
    """Parse a batch of files: node type counts, the 10 largest functions,
    and how many files could not be parsed (Python 2 leftovers, ...)."""
    counts = collections.Counter()
    largest = []
    failed = 0
    for path in paths:
        try:
            with open(path, "rb") as f:
                tree = ast.parse(f.read(), path)
        except (SyntaxError, ValueError, OSError):
            failed += 1
            continue
        for node in ast.walk(tree):
            counts[type(node).__name__] += 1
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                largest.append((lines, node.name, os.path.relpath(path, STDLIB)))
    largest.sort(reverse=True)
    return dict(counts), largest[:10], failed


def run(pool, files, batch=8):
    """Analyse every file on the pool; merge the results."""
    batches = [files[i:i + batch] for i in range(0, len(files), batch)]
    counts, largest, failed = collections.Counter(), [], 0
    for c, l, f in pool.map(analyse, batches, chunksize=1):
        counts.update(c)
        largest += [tuple(x) for x in l]
        failed += f
    largest.sort(reverse=True)
    return counts, largest[:10], failed


def child():
    """--child: a plain Python process (no isola) that parses the files
    named on its first input line when told to (second line), and says
    when it is ready and when it is done."""
    import json
    files = json.loads(sys.stdin.readline())
    analyse(files[:1])  # warm: imports and the first parse
    print("ready", flush=True)
    sys.stdin.readline()
    for i in range(0, len(files), 8):
        analyse(files[i:i + 8])
    print("done", flush=True)


def in_processes(files, n):
    """Wall time of n processes parsing a share of the files each, from
    the moment all are ready (start-up is not counted)."""
    import json
    import subprocess
    env = dict(os.environ)  # the script imports isola: let the children find it
    env["PYTHONPATH"] = os.pathsep.join(
        [os.path.dirname(os.path.abspath(isola.__file__))] +
        ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    procs = [subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
             for _ in range(n)]
    for i, p in enumerate(procs):
        p.stdin.write(json.dumps(files[i::n]) + "\n")
        p.stdin.flush()
    for p in procs:
        if p.stdout.readline().strip() != "ready":
            raise RuntimeError("a process of the comparison failed to start")
    t0 = time.perf_counter()
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        p.stdout.readline()
    wall = time.perf_counter() - t0
    for p in procs:
        p.stdin.close()
        p.stdout.close()
        p.wait()
    return wall


def timed(pool, files):
    t0 = time.perf_counter()
    result = run(pool, files)
    return time.perf_counter() - t0, result


def main(pool, rounds=None, trace=None, limit=None):
    # `isola run demos/stdlib_ast.py -j 2 --rounds 1` passes its options
    # through sys.argv; the pool it gives is not traced.
    rounds = rounds or _option("--rounds", 3, int)
    limit = limit or _option("--files", None, int)
    files = find_files()[:limit]
    n = pool.size
    print(f"Parsing {len(files)} files of the Python {sys.version.split()[0]} standard "
          f"library ({STDLIB}) with ast...")
    for path in files:  # warm the page cache: time parsing, not the disk
        with open(path, "rb") as f:
            f.read()
    best, worst = {}, {}
    with isola.Pool(1, trace=trace) as single:
        single.submit(len, "warm").result()  # time the work, not the start-up
        pool.submit(len, "warm").result()
        measures = [("one", lambda: timed(single, files)[0]),
                    ("many", lambda: timed(pool, files)),
                    ("one process", lambda: in_processes(files, 1)),
                    (f"{n} processes", lambda: in_processes(files, n))]
        for r in range(rounds):
            for name, measure in (measures if r % 2 == 0 else measures[::-1]):
                t = measure()
                if name == "many":
                    t, result = t
                best[name] = min(best.get(name, t), t)
                worst[name] = max(worst.get(name, t), t)
    counts, largest, failed = result
    total = sum(counts.values())
    print(f"\n{total:,} AST nodes in {len(files) - failed} files ({failed} could not be parsed).")
    print("\nMost common node types:")
    for name, k in counts.most_common(10):
        print(f"  {name:14} {k:10,}  {100 * k / total:5.1f}%")
    print("\nLargest functions:")
    for lines, name, path in largest:
        print(f"  {lines:5} lines  {name}  ({path})")
    isola_x = best["one"] / best["many"]
    machine_x = best["one process"] / best[f"{n} processes"]
    print(f"\nBest of {rounds} interleaved rounds:")
    print(f"  1 interpreter:   {best['one']:6.2f} s")
    print(f"  {n} interpreters: {best['many']:6.2f} s   speed-up {isola_x:.2f}x "
          f"on {os.cpu_count()} cores")
    print(f"  the same work in separate processes: 1 process {best['one process']:.2f} s, "
          f"{n} processes {best[f'{n} processes']:.2f} s: {machine_x:.2f}x, "
          "what this machine allows right now")
    print(f"  isola: {100 * isola_x / machine_x:.0f}% of the machine's own speed-up "
          "(less than n on a busy machine, for both)")
    spread = max(worst[k] / best[k] for k in best)
    if spread > 1.25:
        print(f"  the rounds varied up to {spread:.1f}x: this machine is busy, and these "
              "figures move from run to run")


def _option(name, default, kind):
    if name in sys.argv:
        return kind(sys.argv[sys.argv.index(name) + 1])
    return default


if __name__ == "__main__":
    if "--child" in sys.argv:
        child()
    else:
        trace = _option("--trace", None, str)
        with isola.Pool(trace=trace) as pool:
            main(pool, _option("--rounds", 3, int), trace, _option("--files", None, int))
