"""The process lane (issue #33) against ProcessPoolExecutor, in one run.

    PYTHONPATH=build/py3.14/src python3.14 bench/bench_proclane.py [--quick]

- throughput: N trivial tasks (submit each, then collect), isola's process
  lane (Pool(1, processes=2), tasks placed there) against
  ProcessPoolExecutor(2) (forkserver: the parent has threads);
- sync call: submit(...).result() one at a time, p50 and p99, both, and
  isola's interpreter lane for reference.
Targets (issue #33): >= 5x ProcessPoolExecutor's throughput; sync p50
<= 30 us.  Timings on a shared machine are noisy: compare the ratios
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


if __name__ == "__main__":
    main()
