"""Task graphs (issue 35), in one run (Python 3.14):

    PYTHONPATH=build/py3.14/src[:build/dask-prefix/site] python3.14 bench/bench_graph.py [--json] [--quick]

1. a chain of N dependent trivial tasks: per link, the graph (each task
   gets its predecessor's Future) against the caller-driven chain
   (submit(...).result(), then submit) in isola itself;
2. a tree reduction over L leaves (the leaves, then pairwise sums): tasks
   per second for isola's graph, Dask's threaded and synchronous
   schedulers (dask.delayed, when Dask is on PYTHONPATH) and
   ProcessPoolExecutor driven by the caller (each level waited for);
3. a Dask graph of N small pure-Python tasks through isola.dask.get,
   against Dask's threaded and multiprocessing schedulers.
Each figure is the best of --runs runs (the machines are shared).
"""
import argparse
import concurrent.futures as cf
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import isola  # noqa: E402
import bench_helpers as bh  # noqa: E402


def best(fn, runs):
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def chain_graph(pool, n):
    f = pool.submit(bh.inc, 0)
    for _ in range(n - 1):
        f = pool.submit(bh.inc, f)
    assert f.result() == n


def chain_caller(pool, n):
    x = 0
    for _ in range(n):
        x = pool.submit(bh.inc, x).result()
    assert x == n


def tree_isola(pool, leaves):
    level = [pool.submit(bh.inc, i) for i in range(leaves)]
    while len(level) > 1:
        nxt = [pool.submit(bh.add, level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0].result()


def tree_caller(ex, leaves):
    level = list(ex.map(bh.inc, range(leaves), chunksize=256))
    while len(level) > 1:
        pairs = list(zip(level[0::2], level[1::2]))
        nxt = list(ex.map(bh.add, *zip(*pairs), chunksize=256)) if pairs else []
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def tree_dask(leaves, scheduler):
    from dask import delayed
    inc, add = delayed(bh.inc, pure=True), delayed(bh.add, pure=True)
    level = [inc(i) for i in range(leaves)]
    while len(level) > 1:
        nxt = [add(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0].compute(scheduler=scheduler)


def dask_graph(n, scheduler):
    """n small pure-Python tasks: n/10 independent chains of 10 (cpu work)."""
    from dask import delayed
    step = delayed(bh.cpu_step, pure=True)
    heads = []
    for c in range(n // 10):
        x = c
        for _ in range(10):
            x = step(x)
        heads.append(x)
    import dask
    return sum(dask.compute(*heads, scheduler=scheduler))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    chain_n = 2000 if a.quick else 10000
    leaves = 10000 if a.quick else 100000
    dask_n = 2000 if a.quick else 10000
    out = {"chain_links": chain_n, "tree_leaves": leaves, "dask_tasks": dask_n}
    with isola.Pool(2) as pool:
        chain_graph(pool, 100)
        g = best(lambda: chain_graph(pool, chain_n), a.runs)
        c = best(lambda: chain_caller(pool, chain_n), a.runs)
        out["chain_graph_us_per_link"] = g / chain_n * 1e6
        out["chain_caller_us_per_link"] = c / chain_n * 1e6
        out["chain_speedup"] = c / g
        tasks = 2 * leaves - 1
        t = best(lambda: tree_isola(pool, leaves), a.runs)
        out["tree_isola_tasks_per_s"] = tasks / t
    with cf.ProcessPoolExecutor(2) as ex:
        tree_caller(ex, 100)
        out["tree_processes_tasks_per_s"] = tasks / best(lambda: tree_caller(ex, leaves), a.runs)
    try:
        import dask  # noqa: F401
        have_dask = True
    except ImportError:
        have_dask = False
    if have_dask:
        import isola.dask as isola_dask
        small = min(leaves, 20000)  # Dask's schedulers: ~100 us a task
        for sched in ("threads", "sync"):
            out[f"tree_dask_{sched}_tasks_per_s"] = (2 * small - 1) / best(
                lambda: tree_dask(small, sched), 1)
        dask_graph(100, isola_dask.get)
        for name, sched in (("isola", isola_dask.get), ("threads", "threads"),
                            ("processes", "processes")):
            out[f"dask_graph_{name}_s"] = best(lambda: dask_graph(dask_n, sched), a.runs)
        out["dask_graph_isola_vs_threads"] = out["dask_graph_threads_s"] / out["dask_graph_isola_s"]
        out["dask_graph_isola_vs_processes"] = (out["dask_graph_processes_s"]
                                                / out["dask_graph_isola_s"])
    if a.json:
        print(json.dumps(out, indent=1))
        return
    for k, v in out.items():
        print(f"{k:36} {v:12.2f}" if isinstance(v, float) else f"{k:36} {v:12}")


if __name__ == "__main__":
    main()
