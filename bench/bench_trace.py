"""What tracing costs (issue 36): isola.Pool with the trace off and on, in
one run, interleaved (Python 3.14):

    PYTHONPATH=build/py3.14/src python3.14 bench/bench_trace.py [--json] [--rounds R]
                                                              [--modes off,on]

The two measures of bench_pool.py's second table, on N workers:
- sync call: the round trip of submit(trivial).result(), median and p99;
- batched: submit 20,000 trivial tasks, then wait for all (tasks/s, and
  the process's CPU time per task, every thread counted: the writer's
  too; on a busy machine it varies less than the wall time).
Each round makes a pool per mode (off, on; the order alternates between
rounds), and the figure of a mode is the median of its rounds.  Target:
on at most 5% slower.  To compare "off" with a build without the
recorder, run `--modes off` against each build, alternating.
"""
import json
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import isola  # noqa: E402
import bench_helpers as bh  # noqa: E402

N = os.cpu_count() or 2


def measure(trace, calls, batch):
    p = isola.Pool(N, trace=trace) if trace else isola.Pool(N)
    p.submit(bh.trivial, 0).result()
    lat = []
    for i in range(calls):
        t0 = time.perf_counter_ns()
        p.submit(bh.trivial, i).result()
        lat.append(time.perf_counter_ns() - t0)
    t0, c0 = time.perf_counter(), time.process_time()
    fs = [p.submit(bh.trivial, i) for i in range(batch)]
    for f in fs:
        f.result()
    rate = batch / (time.perf_counter() - t0)
    cpu = (time.process_time() - c0) / batch  # every thread of the process
    p.shutdown()
    lat.sort()
    return {"sync_p50_us": lat[len(lat) // 2] / 1e3, "sync_p99_us": lat[len(lat) * 99 // 100] / 1e3,
            "batched_per_s": rate, "batched_cpu_us": cpu * 1e6}


def main():
    rounds = 5
    modes = ["off", "on"]
    argv = sys.argv[1:]
    for i, a in enumerate(argv):
        if a == "--rounds":
            rounds = int(argv[i + 1])
        if a == "--modes":
            modes = argv[i + 1].split(",")
    calls, batch = 3000, 20000
    runs = {m: [] for m in modes}
    with tempfile.TemporaryDirectory() as d:
        for r in range(rounds):
            order = modes if r % 2 == 0 else modes[::-1]
            for m in order:
                trace = os.path.join(d, f"run-{r}.json") if m == "on" else None
                runs[m].append(measure(trace, calls, batch))
                if trace:
                    size = os.path.getsize(trace)
                    with open(trace) as f:
                        dropped = json.load(f)["otherData"]["isola_dropped_events"]
                    runs[m][-1].update(trace_bytes=size, dropped=dropped)
                    os.unlink(trace)
    res = {"python": sys.version.split()[0], "cores": N, "rounds": rounds,
           "runs": runs,
           "median": {m: {k: statistics.median(x[k] for x in runs[m]) for k in runs[m][0]}
                      for m in modes}}
    if "--json" in argv:
        print(json.dumps(res, indent=1))
        return
    med = res["median"]
    print(f"isola.Pool({N}) trace off/on, Python {res['python']}, {rounds} rounds "
          "interleaved, medians")
    for m in modes:
        x = med[m]
        extra = (f"   trace {x['trace_bytes'] / 1e6:.1f} MB, {x['dropped']:.0f} dropped"
                 if "trace_bytes" in x else "")
        print(f"   {m:4} sync call p50 {x['sync_p50_us']:6.2f} us  p99 {x['sync_p99_us']:7.2f} us"
              f"   batched {x['batched_per_s']:10,.0f} tasks/s, CPU {x['batched_cpu_us']:5.2f} us"
              f" per task{extra}")
    if "off" in med and "on" in med:
        print(f"   on/off: sync call p50 {med['on']['sync_p50_us'] / med['off']['sync_p50_us']:.3f}x"
              f" (time), batched {med['off']['batched_per_s'] / med['on']['batched_per_s']:.3f}x"
              f" (time per task), {med['on']['batched_cpu_us'] / med['off']['batched_cpu_us']:.3f}x"
              " (CPU per task, all threads); target <= 1.05x")


if __name__ == "__main__":
    main()
