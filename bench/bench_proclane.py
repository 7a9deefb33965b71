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
            lambda fn, *a: pool.apply(fn, a, lane="interpreter"), SYNC)
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


if __name__ == "__main__":
    main()
