"""isola.Pool against CPython's executors, in one run (Python 3.14):

    PYTHONPATH=build/py3.14/src python3.14 bench/bench_pool.py [--json] [--quick]

1. speed-up of a pure-Python CPU-bound function over 1..N workers
   (N = cores), relative to one worker of the same kind;
2. trivial-task throughput (submit many, wait for all) and the round trip
   of one synchronous call (submit(...).result());
3. time until a pool of N is ready to run its first task, against the
   time to create one interpreter.
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
    k = {"isola": lambda n: isola.Pool(n),
         "threads": lambda n: cf.ThreadPoolExecutor(n),
         "processes": lambda n: cf.ProcessPoolExecutor(n)}
    if hasattr(cf, "InterpreterPoolExecutor"):
        k["interpreters"] = lambda n: cf.InterpreterPoolExecutor(n)
    return k


def shutdown(p):
    p.shutdown()


def cpu_speedups(make, work, tasks, repeat=3):
    """Best of `repeat` timings per pool size (the same for every kind):
    single timings of a few CPU-bound tasks are at the mercy of the
    machine's noise."""
    times = {}
    for n in range(1, N + 1):
        p = make(n)
        list(p.map(bh.cpu, [work] * n))  # warm up every worker
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            list(p.map(bh.cpu, [work] * tasks))
            best = min(best, time.perf_counter() - t0)
        times[n] = best
        shutdown(p)
    return {n: times[1] / times[n] for n in times}


def throughput(make, count):
    p = make(N)
    p.submit(bh.trivial, 0).result()
    t0 = time.perf_counter()
    fs = [p.submit(bh.trivial, i) for i in range(count)]
    for f in fs:
        f.result()
    rate = count / (time.perf_counter() - t0)
    lat = []
    for i in range(count // 10):
        t1 = time.perf_counter_ns()
        p.submit(bh.trivial, i).result()
        lat.append(time.perf_counter_ns() - t1)
    shutdown(p)
    return rate, statistics.median(lat) / 1e3


def ready_time(make, n, reps):
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        p = make(n)
        p.submit(bh.trivial, 0).result()
        best = min(best, time.perf_counter() - t0)
        shutdown(p)
    return best


def one_interpreter(reps):
    best = float("inf")
    if sys.version_info < (3, 14):
        return None
    from concurrent import interpreters
    for _ in range(reps):
        t0 = time.perf_counter()
        i = interpreters.create()
        best = min(best, time.perf_counter() - t0)
        i.close()
    return best


def main():
    quick = "--quick" in sys.argv
    work = 200_000 if quick else 1_000_000
    tasks = 4 * N if quick else 8 * N
    count = 2000 if quick else 20000
    res = {"python": sys.version.split()[0], "cores": N, "speedup": {}, "throughput": {},
           "sync_call_us": {}}
    for name, make in kinds().items():
        res["speedup"][name] = cpu_speedups(make, work, tasks)
        rate, rt = throughput(make, count if name != "processes" else count // 4)
        res["throughput"][name] = rate
        res["sync_call_us"][name] = rt
    res["ready_s"] = {"isola_pool_1": ready_time(kinds()["isola"], 1, 3),
                      f"isola_pool_{N}": ready_time(kinds()["isola"], N, 3),
                      "one_interpreter": one_interpreter(3)}
    if "--json" in sys.argv:
        print(json.dumps(res, indent=1))
        return
    print(f"isola.Pool vs CPython executors, Python {res['python']}, {N} cores")
    print(f"1. CPU-bound speed-up at N={N} over 1 worker (target >= {0.92 * N:.2f}, "
          "never below interpreters):")
    for name, s in res["speedup"].items():
        print(f"   {name:13} " + "  ".join(f"{n}: {v:4.2f}x" for n, v in s.items()))
    print("2. trivial tasks: throughput and one synchronous call")
    base = res["throughput"].get("interpreters")
    for name in res["throughput"]:
        extra = f"  ({res['throughput'][name] / base:5.1f}x interpreters)" if base else ""
        print(f"   {name:13} {res['throughput'][name]:10,.0f} tasks/s   "
              f"call {res['sync_call_us'][name]:8.1f} us{extra}")
    print("   targets: isola call < 15 us, throughput >= 10x interpreters")
    r = res["ready_s"]
    print(f"3. ready to run: isola Pool({N}) {r[f'isola_pool_{N}'] * 1e3:.1f} ms, "
          f"Pool(1) {r['isola_pool_1'] * 1e3:.1f} ms" +
          (f", one concurrent.interpreters.create() {r['one_interpreter'] * 1e3:.1f} ms; "
           f"ratio {r[f'isola_pool_{N}'] / r['one_interpreter']:.2f} (target <= 1.5)"
           if r["one_interpreter"] else ""))


if __name__ == "__main__":
    main()
