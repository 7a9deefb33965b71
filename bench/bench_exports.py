"""Main-interpreter exports (Pool(exports=...)): a worker's call of
isola.host.f(1, 2, 3) into the main interpreter and back.

    PYTHONPATH=build/py3.14/src python3.14 bench/bench_exports.py [--json] [--quick]

1. round trip p50 / p99 of one call from one worker (target <= 10 us),
   with, as the baseline of the same run, a channel round trip worker ->
   main thread -> worker (bench_interp's mechanism, without exports).
2. calls per second with 1 and 2 workers calling at once: bounded by the
   main interpreter's GIL, so 2 workers do not double it.
"""
import json
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import isola  # noqa: E402
import bench_exports_helpers as bx  # noqa: E402


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def channel_baseline(pool, rounds):
    a, b = isola.Channel(16), isola.Channel(16)

    def echo():
        for msg in a:
            b.send(msg)
    t = threading.Thread(target=echo)
    t.start()
    lat = pool.submit(bx.pinger, a, b, rounds).result()
    a.close()
    t.join()
    return lat[rounds // 10:]


def main():
    quick = "--quick" in sys.argv
    rounds = 2000 if quick else 20000
    calls = 5000 if quick else 50000
    out = {}
    with isola.Pool(2, exports={"add3": bx.add3}) as pool:
        pool.submit(bx.round_trips, 200).result()  # warm up
        lat = pool.submit(bx.round_trips, rounds).result()[rounds // 10:]
        base = channel_baseline(pool, rounds)
        out["export_p50_us"] = pct(lat, 0.5) / 1000
        out["export_p99_us"] = pct(lat, 0.99) / 1000
        out["channel_p50_us"] = pct(base, 0.5) / 1000
        for n in (1, 2):
            t0 = time.perf_counter()
            fs = [pool.submit(bx.spin, calls) for _ in range(n)]
            for f in fs:
                f.result()
            out[f"calls_per_s_{n}"] = n * calls / (time.perf_counter() - t0)
    out["speedup_2"] = out["calls_per_s_2"] / out["calls_per_s_1"]
    if "--json" in sys.argv:
        print(json.dumps(out))
        return
    print(f"export round trip          p50 {out['export_p50_us']:6.2f} us  "
          f"p99 {out['export_p99_us']:6.2f} us  (target p50 <= 10)")
    print(f"channel round trip (base)  p50 {out['channel_p50_us']:6.2f} us")
    print(f"1 worker calling           {out['calls_per_s_1']:9.0f} calls/s")
    print(f"2 workers calling          {out['calls_per_s_2']:9.0f} calls/s = "
          f"{out['speedup_2']:.2f}x (one main-interpreter GIL)")


if __name__ == "__main__":
    main()
