"""What an executor's first call costs (issue 37), in one run:

    PYTHONPATH=build/py3.14/src python3.14 bench/bench_first_call.py [--json] [--reps K]

isola.Executor starts its workers at the first submit (all max_workers,
in parallel), isola.Pool in its constructor, InterpreterPoolExecutor one
worker per submission while none is idle.  For each, with 1 and N (=
cores) workers, the median over K rounds (kinds interleaved) of:
constructor, first submit(...).result(), second one, and shutdown.
"""
import concurrent.futures as cf
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import isola  # noqa: E402
import bench_helpers as bh  # noqa: E402

N = os.cpu_count() or 2


def kinds():
    k = {"isola.Executor": isola.Executor, "isola.Pool": isola.Pool}
    if hasattr(cf, "InterpreterPoolExecutor"):
        k["InterpreterPoolExecutor"] = cf.InterpreterPoolExecutor
    return k


def one(make, n):
    t0 = time.perf_counter()
    ex = make(n)
    t1 = time.perf_counter()
    ex.submit(bh.trivial, 0).result()
    t2 = time.perf_counter()
    ex.submit(bh.trivial, 1).result()
    t3 = time.perf_counter()
    ex.shutdown()
    t4 = time.perf_counter()
    return {"ctor": t1 - t0, "first": t2 - t1, "second": t3 - t2, "shutdown": t4 - t3}


def main():
    reps = int(sys.argv[sys.argv.index("--reps") + 1]) if "--reps" in sys.argv else 5
    sizes = sorted({1, N})
    raw = {(k, n): [] for k in kinds() for n in sizes}
    for _ in range(reps):
        for n in sizes:
            for name, make in kinds().items():
                raw[(name, n)].append(one(make, n))
    res = {"python": sys.version.split()[0], "cores": N, "reps": reps, "ms": {}}
    for (name, n), runs in raw.items():
        res["ms"][f"{name}({n})"] = {key: statistics.median(r[key] for r in runs) * 1e3
                                     for key in runs[0]}
    if "--json" in sys.argv:
        print(json.dumps(res, indent=1))
        return
    print(f"first call, Python {res['python']}, {N} cores, median of {reps} (ms)")
    print(f"   {'':28} {'ctor':>8} {'first':>8} {'second':>8} {'shutdown':>9} {'ctor+first':>11}")
    for key, m in res["ms"].items():
        print(f"   {key:28} {m['ctor']:8.2f} {m['first']:8.2f} {m['second']:8.3f} "
              f"{m['shutdown']:9.2f} {m['ctor'] + m['first']:11.2f}")


if __name__ == "__main__":
    main()
