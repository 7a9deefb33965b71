"""Codec benchmark: isola encode+decode against pickle.dumps+pickle.loads
(protocol 5) of the same objects, in one run.

    PYTHONPATH=build/py3.14/src python3.14 bench/bench_codec.py [--json] [--quick]

Small objects go through isola.dumps/isola.loads (bytes in, bytes out,
like pickle).  The 1 MiB bytes goes through what isola really does with
it: a channel send + recv, where it travels as a zero-copy blob.
"""
import json
import pickle
import sys
import time

import isola

CASES = [
    ("small int", 42),
    ("16-byte bytes", b"0123456789abcdef"),
    ("short str", "hello, isola"),
    ("dict", {"a": 1, "b": [1, 2, 3], "c": "xyz"}),
    ("list of 100 floats", [i * 0.5 for i in range(100)]),
]


def best_of(fn, number, repeat=5):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter_ns()
        fn(number)
        best = min(best, (time.perf_counter_ns() - t0) / number)
    return best


def loop_isola(obj):
    dumps, loads = isola.dumps, isola.loads
    def run(n):
        for _ in range(n):
            loads(dumps(obj))
    return run


def loop_pickle(obj):
    dumps, loads = pickle.dumps, pickle.loads
    def run(n):
        for _ in range(n):
            loads(dumps(obj, 5))
    return run


def loop_channel(obj):
    ch = isola.Channel(4)
    send, recv = ch.send_nowait, ch.recv_nowait
    def run(n):
        for _ in range(n):
            send(obj)
            recv()
    return run


def main():
    quick = "--quick" in sys.argv
    n_small = 20000 if quick else 200000
    rows = []
    for name, obj in CASES:
        assert isola.loads(isola.dumps(obj)) == obj
        i = best_of(loop_isola(obj), n_small)
        p = best_of(loop_pickle(obj), n_small)
        rows.append({"case": name, "isola_ns": i, "pickle_ns": p, "speedup": p / i, "target": 2.0})
    big = bytes(1 << 20)
    n_big = 200 if quick else 2000
    i = best_of(loop_channel(big), n_big)
    p = best_of(loop_pickle(big), n_big // 10)
    rows.append({"case": "1 MiB bytes (channel, zero-copy)", "isola_ns": i, "pickle_ns": p,
                 "speedup": p / i, "target": 100.0})
    if "--json" in sys.argv:
        print(json.dumps({"python": sys.version.split()[0], "rows": rows}, indent=1))
        return
    print(f"codec: isola vs pickle protocol 5, encode+decode, Python {sys.version.split()[0]}")
    print(f"{'case':36} {'isola':>10} {'pickle':>10} {'speed-up':>9}  target")
    for r in rows:
        ok = "ok" if r["speedup"] >= r["target"] else "MISSED"
        print(f"{r['case']:36} {r['isola_ns']:8.0f}ns {r['pickle_ns']:8.0f}ns "
              f"{r['speedup']:8.1f}x  >= {r['target']:.0f}x {ok}")


if __name__ == "__main__":
    main()
