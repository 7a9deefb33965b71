"""How late a timeout fires: channel recv/send with timeout=, and a pool
task's apply_async(timeout=).  Tests only check that a timeout never fires early
(tests/python/test_channel.py); the lateness, which depends on the
machine's load, is measured here.

    PYTHONPATH=build/py3.14/src python3.14 bench/bench_timeouts.py [--rounds N]
"""
import argparse
import json
import statistics
import sys
import time

import isola


def lateness(fn, timeout, rounds):
    late = []
    for _ in range(rounds):
        t0 = time.monotonic()
        try:
            fn(timeout)
        except TimeoutError:
            pass
        late.append(time.monotonic() - t0 - timeout)
    late.sort()
    return {"p50_us": statistics.median(late) * 1e6,
            "p99_us": late[min(len(late) - 1, int(len(late) * 0.99))] * 1e6,
            "max_us": late[-1] * 1e6, "early": sum(x < 0 for x in late)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    empty = isola.Channel(1)
    full = isola.Channel(1)
    full.send(0)
    rows = {
        "recv(timeout=0.05)": lateness(lambda t: empty.recv(timeout=t), 0.05, args.rounds),
        "send(timeout=0.05)": lateness(lambda t: full.send(1, timeout=t), 0.05, args.rounds),
        "recv(timeout=0.001)": lateness(lambda t: empty.recv(timeout=t), 0.001, args.rounds),
    }
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        print()
        return
    print(f"{'wait':24} {'p50 late':>10} {'p99 late':>10} {'max late':>10} early")
    for k, r in rows.items():
        print(f"{k:24} {r['p50_us']:8.0f}us {r['p99_us']:8.0f}us {r['max_us']:8.0f}us {r['early']}")


if __name__ == "__main__":
    main()
