"""isola on a busy machine, against CPython's executors, in one run:

    PYTHONPATH=build/py3.14/src python3.14 bench/bench_busy.py [--json] [--quick] [--runs R]

For 0, 1 and N (= cores) busy processes (each `while True: pass`, started
by this benchmark), and with 4N workers on N cores:
1. one synchronous call `submit(math.sqrt, i).result()`: p50 / p99;
2. batched trivial tasks (submit many, wait for all): tasks/s;
3. a channel round trip between two interpreters (isola channels against
   concurrent.interpreters queues polled with get_nowait).
The C API's synchronous call in the same conditions: bench/bench_busy_c.c
(run here too when ISOLA_BUILD_DIR names a build that has it).
Each figure is the median over R runs (default 3) with its spread.
"""
import concurrent.futures as cf
import json
import math
import multiprocessing as mp
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import isola  # noqa: E402
import bench_helpers as bh  # noqa: E402

N = os.cpu_count() or 2


def spin():
    while True:
        pass


def kinds(workers):
    k = {"isola": lambda: isola.Pool(workers),
         "threads": lambda: cf.ThreadPoolExecutor(workers)}
    if hasattr(cf, "InterpreterPoolExecutor"):
        k["interpreters"] = lambda: cf.InterpreterPoolExecutor(workers)
    return k


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def sync_calls(p, count, deadline_s):
    for i in range(50):
        p.submit(math.sqrt, i).result()
    lat = []
    stop = time.perf_counter() + deadline_s
    for i in range(count):
        t0 = time.perf_counter_ns()
        p.submit(math.sqrt, i).result()
        lat.append(time.perf_counter_ns() - t0)
        if time.perf_counter() > stop:
            break
    return pct(lat, 0.5) / 1e3, pct(lat, 0.99) / 1e3


def batched(p, count):
    p.submit(bh.trivial, 0).result()
    t0 = time.perf_counter()
    fs = [p.submit(bh.trivial, i) for i in range(count)]
    for f in fs:
        f.result()
    return count / (time.perf_counter() - t0)


def channel_rtt(rounds):
    a, b = isola.Channel(16), isola.Channel(16)
    with isola.Pool(2) as p:
        pong = p.submit(bh.isola_ponger, a, b)
        ping = p.submit(bh.isola_pinger, a, b, rounds, b"x")
        lat = ping.result()
        pong.result()
    lat = lat[rounds // 10:]
    return pct(lat, 0.5) / 1e3, pct(lat, 0.99) / 1e3


def cpython_rtt(rounds):
    """concurrent.interpreters queues, both sides spinning on get_nowait
    (their blocking get() sleeps 10 ms between polls)."""
    if not hasattr(cf, "InterpreterPoolExecutor"):
        return None
    import bench_interp
    lat = bench_interp.cpython_round_trip(rounds, True)
    return pct(lat, 0.5) / 1e3, pct(lat, 0.99) / 1e3


def one_run(busy, workers, quick):
    count = 1000 if quick else 4000
    ctx = mp.get_context("fork" if sys.platform != "win32" else "spawn")
    procs = [ctx.Process(target=spin, daemon=True) for _ in range(busy)]
    for pr in procs:
        pr.start()
    time.sleep(0.2)
    row = {}
    try:
        for name, make in kinds(workers).items():
            p = make()
            # A call costing a tick (4 ms) 4000 times is 16 s: bound it.
            p50, p99 = sync_calls(p, count, 4.0 if quick else 8.0)
            rate = batched(p, count * 5)
            p.shutdown()
            row[name] = {"p50": p50, "p99": p99, "batched": rate}
        if workers == N:
            row["isola"]["channel_rtt"] = channel_rtt(count)
            c = cpython_rtt(count)
            if c:
                row["interpreters"]["channel_rtt"] = c
    finally:
        for pr in procs:
            pr.terminate()
            pr.join()
    return row


def spread(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals), min(vals), max(vals)


def main():
    quick = "--quick" in sys.argv
    runs = 3
    if "--runs" in sys.argv:
        runs = int(sys.argv[sys.argv.index("--runs") + 1])
    rows = [(0, N), (1, N), (N, N), (0, 4 * N), (N, 4 * N)]
    res = {"python": sys.version.split()[0], "cores": N, "runs": runs, "rows": []}
    for busy, workers in rows:
        raw = [one_run(busy, workers, quick) for _ in range(runs)]
        row = {"busy": busy, "workers": workers}
        for name in raw[0]:
            row[name] = {}
            for key in raw[0][name]:
                v = [r[name][key] for r in raw]
                if isinstance(v[0], tuple):
                    row[name][key] = {"p50": spread([x[0] for x in v]),
                                      "p99": spread([x[1] for x in v])}
                else:
                    row[name][key] = spread(v)
        res["rows"].append(row)
        if "--json" not in sys.argv:
            report(row)
    exe = os.path.join(os.environ.get("ISOLA_BUILD_DIR", ""), "bench", "bench_busy_c")
    if os.environ.get("ISOLA_BUILD_DIR") and os.path.exists(exe):
        import subprocess
        out = [subprocess.run([exe, "4000" if quick else "20000"], capture_output=True,
                              text=True).stdout for _ in range(runs)]
        res["c_api"] = out
        if "--json" not in sys.argv:
            print("== C API synchronous call (bench_busy_c), one block per run")
            for o in out:
                print("   " + o.strip().replace("\n", "\n   "))
    if "--json" in sys.argv:
        print(json.dumps(res, indent=1))


def fmt(s):
    return f"{s[0]:8.1f} ({s[1]:.1f}-{s[2]:.1f})"


def report(row):
    print(f"== {row['busy']} busy processes, {row['workers']} workers on {N} cores "
          "(median over runs, min-max)")
    print(f"   {'':13} {'call p50 us':>24} {'call p99 us':>24} {'batched tasks/s':>26}")
    for name in ("isola", "interpreters", "threads"):
        if name not in row:
            continue
        r = row[name]
        print(f"   {name:13} {fmt(r['p50']):>24} {fmt(r['p99']):>24} "
              f"{r['batched'][0]:12,.0f} ({r['batched'][1]:,.0f}-{r['batched'][2]:,.0f})")
    ip = row.get("interpreters")
    if ip:
        i = row["isola"]
        print(f"   isola/interpreters: p50 {i['p50'][0] / ip['p50'][0]:.2f} (target <= 1), "
              f"p99 {i['p99'][0] / ip['p99'][0]:.2f} (target <= 2), "
              f"batched {i['batched'][0] / ip['batched'][0]:.1f}x")
    for name in ("isola", "interpreters"):
        if "channel_rtt" in row.get(name, {}):
            r = row[name]["channel_rtt"]
            print(f"   {name} channel round trip: p50 {fmt(r['p50'])} us, "
                  f"p99 {fmt(r['p99'])} us")


if __name__ == "__main__":
    main()
