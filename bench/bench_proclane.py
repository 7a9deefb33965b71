"""The process lane (issue #33) against ProcessPoolExecutor, in one run.

    PYTHONPATH=build/py3.14/src python3.14 bench/bench_proclane.py [--quick]

- throughput: N trivial tasks (submit each, then collect), isola's process
  lane (Pool(1, processes=2), tasks placed there) against
  ProcessPoolExecutor(2) (forkserver: the parent has threads);
- sync call: submit(...).result() one at a time, p50 and p99, both, and
  isola's interpreter lane for reference.
- numpy-heavy tasks (arrays made in the task), when numpy imports (e.g.
  PYTHONPATH=...:build/refusing-prefix/site): isola's default Pool (the
  task is refused by an interpreter and moves to processes by itself)
  against ProcessPoolExecutor(2).
- a mixed job (pure-Python parsing feeding numpy statistics): isola with
  both lanes (parsing in interpreters, statistics moved to processes,
  each statistics task taking its parsing task's Future: a task graph,
  no hop through the caller) against ProcessPoolExecutor(2) doing both in
  each task, and against isola without the lane (parsing in
  interpreters, statistics in the caller); PSS of the whole process tree.
Targets (issue #33): >= 5x ProcessPoolExecutor's throughput; sync p50
<= 30 us; numpy-heavy >= 0.95x ProcessPoolExecutor.  Timings on a shared machine are noisy: compare the ratios
measured in the same run.
"""
import concurrent.futures as cf
import multiprocessing as mp
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_helpers  # noqa: E402
import isola  # noqa: E402

QUICK = "--quick" in sys.argv
N = 3000 if QUICK else 10000
SYNC = 1000 if QUICK else 3000
ROUNDS = 3  # throughput runs per side, alternating; best and median reported


def throughput(submit, n):
    t0 = time.perf_counter()
    fs = [submit(bench_helpers.trivial, i) for i in range(n)]
    for f in fs:
        f.result()
    return n / (time.perf_counter() - t0)


def sync_latency(submit, n):
    for i in range(50):  # warm up
        submit(bench_helpers.trivial, i).result()
    lat = []
    for i in range(n):
        t0 = time.perf_counter_ns()
        submit(bench_helpers.trivial, i).result()
        lat.append(time.perf_counter_ns() - t0)
    lat.sort()
    return lat[len(lat) // 2] / 1e3, lat[len(lat) * 99 // 100] / 1e3


def main():
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}, N={N}")
    ctx = mp.get_context("forkserver")  # the parent has threads: no fork
    lane_tp, ppe_tp = [], []
    with isola.Pool(1, processes=2, place={"bench_helpers": "process"}) as pool, \
            cf.ProcessPoolExecutor(2, mp_context=ctx) as ex:
        pool.submit(bench_helpers.trivial, 0).result()
        ex.submit(bench_helpers.trivial, 0).result()
        for _ in range(ROUNDS):
            lane_tp.append(throughput(pool.submit, N))
            ppe_tp.append(throughput(ex.submit, N))
        lane_p50, lane_p99 = sync_latency(pool.submit, SYNC)
        ppe_p50, ppe_p99 = sync_latency(ex.submit, SYNC)
        interp_p50, interp_p99 = sync_latency(
            lambda fn, *a: pool.apply_async(fn, a, lane="interpreter"), SYNC)
    lane_tp.sort()
    ppe_tp.sort()
    print(f"throughput, trivial tasks/s (best, median of {ROUNDS}): isola process lane "
          f"{lane_tp[-1]:,.0f}, {lane_tp[ROUNDS // 2]:,.0f}; ProcessPoolExecutor "
          f"{ppe_tp[-1]:,.0f}, {ppe_tp[ROUNDS // 2]:,.0f}; ratio of medians "
          f"{lane_tp[ROUNDS // 2] / ppe_tp[ROUNDS // 2]:.1f}x (target >= 5x)")
    print(f"sync call p50 / p99: isola process lane {lane_p50:.1f} / {lane_p99:.1f} us "
          f"(target p50 <= 30), ProcessPoolExecutor {ppe_p50:.1f} / {ppe_p99:.1f} us, "
          f"isola interpreter lane {interp_p50:.1f} / {interp_p99:.1f} us")
    numpy_heavy(ctx)
    mixed(ctx)


def numpy_heavy(ctx):
    try:
        import numpy  # noqa: F401
    except ImportError:
        print("numpy-heavy: skipped (numpy does not import here)")
        return
    import warnings
    tasks, n = (100, 200_000) if QUICK else (300, 200_000)

    def run(submit):
        t0 = time.perf_counter()
        for f in [submit(bench_helpers.numpy_work, n) for _ in range(tasks)]:
            f.result()
        return time.perf_counter() - t0

    isola_s, ppe_s = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the one automatic-placement warning
        with isola.Pool(2) as pool, cf.ProcessPoolExecutor(2, mp_context=ctx) as ex:
            pool.submit(bench_helpers.numpy_work, 10).result()  # moved, processes up
            ex.submit(bench_helpers.numpy_work, 10).result()
            for _ in range(ROUNDS):
                isola_s.append(run(pool.submit))
                ppe_s.append(run(ex.submit))
    isola_s.sort()
    ppe_s.sort()
    print(f"numpy-heavy, {tasks} tasks of {n:,} elements (median of {ROUNDS}): isola Pool(2), "
          f"placed automatically, {isola_s[ROUNDS // 2]:.3f} s; ProcessPoolExecutor(2) "
          f"{ppe_s[ROUNDS // 2]:.3f} s: {ppe_s[ROUNDS // 2] / isola_s[ROUNDS // 2]:.2f}x "
          "(target >= 0.95x)")


def tree_pss_mb(pid=None):
    """PSS (MB) of pid (default: this process) and all its descendants."""
    pid = pid or os.getpid()
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rpartition(")")[2].split()[1])
                kids.setdefault(ppid, []).append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(kids.get(p, []))
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def mixed_docs():
    import random
    rnd = random.Random(7)
    return ["\n".join(",".join(f"k{j}={rnd.random() * 100:.3f}" for j in range(20))
                      for _ in range(300)) for _ in range(60 if QUICK else 200)]


def with_lane(pool, docs):
    # A task graph: each statistics task waits inside the pool for its
    # parsing task and gets its encoded result (no hop through here).
    t0 = time.perf_counter()
    parsed = [pool.submit(bench_helpers.parse_numbers, d) for d in docs]
    stats = [pool.submit(bench_helpers.numpy_stats, f) for f in parsed]
    out = [f.result() for f in stats]
    return time.perf_counter() - t0, out


def without_lane(pool, docs):
    t0 = time.perf_counter()
    out = [bench_helpers.numpy_stats(f.result())
           for f in [pool.submit(bench_helpers.parse_numbers, d) for d in docs]]
    return time.perf_counter() - t0, out


def ppe_run(ex, docs):
    t0 = time.perf_counter()
    out = [f.result() for f in [ex.submit(bench_helpers.parse_then_stats, d) for d in docs]]
    return time.perf_counter() - t0, out


def mixed_variants(ctx):
    return [
        ("isola, both lanes", lambda: isola.Pool(2), with_lane),
        ("isola without the lane", lambda: isola.Pool(2, processes=0), without_lane),
        ("ProcessPoolExecutor(2)", lambda: cf.ProcessPoolExecutor(2, mp_context=ctx), ppe_run),
    ]


def mixed_pss(name):
    """`--mixed-pss NAME`: one variant alone in this (fresh) process: the
    job once, then the PSS of the process tree (MB) on stdout.  Nothing
    else is imported here (numpy only where the variant uses it)."""
    import warnings
    docs = mixed_docs()
    ctx = mp.get_context("forkserver")
    make, run = next((m, r) for n, m, r in mixed_variants(ctx) if n == name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with make() as ex:
            run(ex, docs)
            run(ex, docs)
            print(f"{tree_pss_mb():.1f}")


def mixed(ctx):
    import importlib.util
    import subprocess
    import warnings
    if importlib.util.find_spec("numpy") is None:
        print("mixed job: skipped (numpy is not importable here)")
        return
    docs = mixed_docs()
    variants = mixed_variants(ctx)
    # Rounds interleave the three (a fresh pool each, warmed up by an
    # untimed run of the same job: every worker has imported numpy and
    # run both steps), so that the machine's other load weighs on all of
    # them alike.
    res = {name: [] for name, _, _ in variants}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the one automatic-placement warning
        for r in range(ROUNDS):
            for name, make, run in variants[r % 3:] + variants[:r % 3]:
                with make() as ex:
                    run(ex, docs)
                    res[name].append(run(ex, docs))
    # PSS: each variant alone in a fresh process (here, the others' pools,
    # the forkserver and numpy in this process would count too).
    pss = {}
    for name, _, _ in variants:
        r = subprocess.run([sys.executable, __file__, "--mixed-pss", name] +
                           (["--quick"] if QUICK else []), capture_output=True, text=True)
        pss[name] = float(r.stdout.split()[-1]) if r.returncode == 0 else float("nan")
    want = res["ProcessPoolExecutor(2)"][0][1]
    meds = {}
    for name, times in res.items():
        assert all(t[1] == want for t in times), name  # the same answers
        meds[name] = sorted(t[0] for t in times)[ROUNDS // 2]
    base = meds["ProcessPoolExecutor(2)"]
    print(f"mixed job, {len(docs)} documents (median of {ROUNDS}, rounds interleaved; "
          "PSS of the process tree, each alone in a fresh process):")
    for name, med in meds.items():
        runs = ", ".join(f"{t[0]:.3f}" for t in res[name])
        print(f"  {name}: {med:.3f} s ({base / med:.2f}x ProcessPoolExecutor; runs {runs}), "
              f"{pss[name]:.0f} MB PSS")


if __name__ == "__main__":
    if "--mixed-pss" in sys.argv:
        mixed_pss(sys.argv[sys.argv.index("--mixed-pss") + 1])
    else:
        main()
