"""The main demo: parse every .py file of the installed Python standard
library with ast, in parallel, and report the most common node types and
the largest functions, with the speed-up over one interpreter measured in
the same run.

    python3 demos/stdlib_ast.py          (PYTHONPATH must reach isola)
    isola run demos/stdlib_ast.py -j 4   (the same, through the command line)

Each worker is a sub-interpreter with its own GIL: the parsing really runs
on every core, in one process.
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
        dirs[:] = [d for d in dirs if d not in ("site-packages", "dist-packages", "__pycache__")]
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


def timed(workers, files):
    with isola.Pool(workers) as pool:
        pool.submit(len, "warm").result()  # time the work, not the start-up
        t0 = time.perf_counter()
        result = run(pool, files)
        return time.perf_counter() - t0, result


def main(pool):
    files = find_files()
    n = pool.size
    print(f"Parsing {len(files)} files of the Python {sys.version.split()[0]} standard "
          f"library ({STDLIB}) with ast...")
    for path in files:  # warm the page cache: time parsing, not the disk
        with open(path, "rb") as f:
            f.read()
    one, _ = timed(1, files)
    t0 = time.perf_counter()
    counts, largest, failed = run(pool, files)
    many = time.perf_counter() - t0
    total = sum(counts.values())
    print(f"\n{total:,} AST nodes in {len(files) - failed} files ({failed} could not be parsed).")
    print("\nMost common node types:")
    for name, k in counts.most_common(10):
        print(f"  {name:14} {k:10,}  {100 * k / total:5.1f}%")
    print("\nLargest functions:")
    for lines, name, path in largest:
        print(f"  {lines:5} lines  {name}  ({path})")
    print(f"\n1 interpreter:  {one:6.2f} s")
    print(f"{n} interpreters: {many:6.2f} s   speed-up {one / many:.2f}x "
          f"on {os.cpu_count()} cores")


if __name__ == "__main__":
    with isola.Pool() as pool:
        main(pool)
