"""isola inside a Dask cluster: the stdlib AST census of the main demo as
a dask.bag over files, on a LocalCluster, in three worker layouts measured
in one run:

  isola      one worker process, 2 Dask threads, tasks annotated
             executor="isola" (2 isola interpreters in that process)
  threads    one worker process, 2 threads (one GIL)
  processes  two worker processes of one thread each

    PYTHONPATH=build/py3.14/src:build/dask-prefix/site python3.14 demos/dask_cluster.py [--repeat R] [--workers N]

(`scripts/bootstrap --with-dask` makes build/dask-prefix.)  Prints, per
layout, the median wall time of R runs (default 3, interleaved), files per
second, the ratio to the threads layout, and the workers' memory after the
runs: RSS and PSS (from /proc/PID/smaps_rollup) summed over worker
processes.  Every layout's census is checked against the others'.
"""
import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import stdlib_ast  # noqa: E402  (the census: find_files, analyse)


def memory_of(pid):
    """(RSS, PSS) of a process in bytes, from smaps_rollup."""
    rss = pss = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Rss:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("Pss:"):
                pss = int(line.split()[1]) * 1024
    return rss, pss


def census(batches, annotate):
    import collections
    import contextlib
    import dask
    import dask.bag as db
    # Dask's graph optimisation fuses from_sequence and map and the fused
    # tasks lose the annotation (dask 2024.12): computed unoptimised, in
    # every layout alike.
    with dask.annotate(executor="isola") if annotate else contextlib.nullcontext():
        parts = db.from_sequence(batches, npartitions=len(batches)).map(stdlib_ast.analyse)
    counts = collections.Counter()
    failed = 0
    for c, _, f in parts.compute(optimize_graph=False):
        counts.update(c)
        failed += f
    return counts, failed


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2, help="cores to use (default 2)")
    ap.add_argument("--batch", type=int, default=8, help="files per task")
    args = ap.parse_args()

    from distributed import Client, LocalCluster
    import isola.dask

    n = args.workers
    files = stdlib_ast.find_files()
    batches = [files[i:i + args.batch] for i in range(0, len(files), args.batch)]
    layouts = {
        "isola": dict(n_workers=1, threads_per_worker=n),
        "threads": dict(n_workers=1, threads_per_worker=n),
        "processes": dict(n_workers=n, threads_per_worker=1),
    }
    clusters = {}
    try:
        for name, kw in layouts.items():
            lc = LocalCluster(processes=True, protocol="tcp", host="127.0.0.1",
                              dashboard_address=None, **kw)
            cl = Client(lc, set_as_default=False)
            if name == "isola":
                isola.dask.register(cl, workers=n)
            clusters[name] = (lc, cl)
        times = {name: [] for name in layouts}
        results = {}
        for r in range(args.repeat + 1):  # round 0 warms every layout up
            for name, (lc, cl) in clusters.items():
                with cl.as_current():
                    t0 = time.perf_counter()
                    results[name] = census(batches, annotate=(name == "isola"))
                    dt = time.perf_counter() - t0
                if r > 0:
                    times[name].append(dt)
        ref = results["threads"]
        for name, res in results.items():
            if res != ref:
                raise SystemExit(f"dask_cluster: the {name} census differs from threads'")
        mem = {}
        for name, (lc, cl) in clusters.items():
            pids = cl.run(os.getpid).values()
            sums = [memory_of(p) for p in pids]
            mem[name] = (sum(s[0] for s in sums), sum(s[1] for s in sums))
    finally:
        for lc, cl in clusters.values():
            cl.close()
            lc.close()

    med = {name: statistics.median(t) for name, t in times.items()}
    print(f"Dask + isola: AST census of {len(files)} stdlib files ({len(batches)} tasks), "
          f"{n} cores, median of {args.repeat}")
    print(f"{'layout':<11}{'median s':>10}{'files/s':>10}{'vs threads':>12}"
          f"{'RSS MB':>9}{'PSS MB':>9}")
    for name in layouts:
        print(f"{name:<11}{med[name]:>10.2f}{len(files) / med[name]:>10.0f}"
              f"{med['threads'] / med[name]:>11.2f}x{mem[name][0] / 2**20:>9.0f}"
              f"{mem[name][1] / 2**20:>9.0f}")
    print(f"isola vs processes: {med['processes'] / med['isola']:.2f}x throughput, "
          f"{mem['isola'][1] / mem['processes'][1]:.2f}x the PSS")


if __name__ == "__main__":
    main()
