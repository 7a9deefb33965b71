"""Messages between two sub-interpreters: isola channels against CPython's
concurrent.interpreters queues, in one run (Python 3.14).

    PYTHONPATH=build/py3.14/src python3.14 bench/bench_interp.py [--json] [--quick]

1. round trip: A sends, B echoes, A waits; both sides receive blocking
   (isola: the median of 5 pools' medians, as where the kernel first puts
   the pair decides short runs).  CPython: Queue.get() (blocking) and
   Queue.get_nowait() spinning.  With --ab, also isola's round trip with
   the move off a CPU shared with the partner turned off (ISOLA_SPREAD=0,
   issue #32) and on, in child processes, alternating.
2. one-way throughput A -> B for an int, 16-byte bytes, a small dict and
   a list of 100 floats.
"""
import json
import os
import statistics
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import isola  # noqa: E402

PAYLOADS = [("int", 12345), ("16-byte bytes", b"0123456789abcdef"),
            ("dict", {"a": 1, "b": [1, 2, 3], "c": "xyz"}),
            ("list of 100 floats", [i * 0.5 for i in range(100)])]


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


# ---- isola ------------------------------------------------------------------

def isola_round_trip(pool, rounds):
    import bench_helpers as bh
    a, b = isola.Channel(16), isola.Channel(16)
    pong = pool.submit(bh.isola_ponger, a, b)
    lat = pool.submit(bh.isola_pinger, a, b, rounds, 1).result()
    pong.result()
    return lat[rounds // 10:]  # drop the warm-up


def isola_throughput(pool, payload, n):
    import bench_helpers as bh
    ch = isola.Channel(1024)
    sink = pool.submit(bh.isola_sink, ch, n)
    t0 = time.perf_counter_ns()
    pool.submit(bh.isola_source, ch, n, payload).result()
    ns = sink.result()
    return n / (max(ns, time.perf_counter_ns() - t0) / 1e9)


# ---- CPython concurrent.interpreters ----------------------------------------

PONG = """
def pong(a, b, nowait):
    import time
    while True:
        if nowait:
            while True:
                try:
                    m = a.get_nowait()
                    break
                except Exception:
                    pass
        else:
            m = a.get()
        if m is None:
            return
        b.put(m)
"""

PING = """
def ping(a, b, rounds, nowait):
    import time
    lat = []
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        a.put(1)
        if nowait:
            while True:
                try:
                    b.get_nowait()
                    break
                except Exception:
                    pass
        else:
            b.get()
        lat.append(time.perf_counter_ns() - t0)
    a.put(None)
    return lat
"""

SINK = """
def sink(q, n):
    import time
    t0 = time.perf_counter_ns()
    got = 0
    while got < n:
        try:
            q.get_nowait()
            got += 1
        except Exception:
            pass
    return time.perf_counter_ns() - t0

def source(q, n, payload):
    for _ in range(n):
        while True:
            try:
                q.put_nowait(payload)
                break
            except Exception:
                pass
"""


def cpython_round_trip(rounds, nowait):
    from concurrent import interpreters as ci
    a, b = ci.create_queue(), ci.create_queue()
    pi, po = ci.create(), ci.create()
    pi.exec(PING)
    po.exec(PONG)
    result = {}

    def run_ping():
        pi.prepare_main(a=a, b=b, rounds=rounds, nowait=nowait)
        pi.exec("import json, sys\nlat = ping(a, b, rounds, nowait)\n"
                "sys.modules['__main__'].LAT = lat")
        result["lat"] = pi.call(eval_lat)

    t = threading.Thread(target=lambda: (po.prepare_main(a=a, b=b, nowait=nowait),
                                         po.exec("pong(a, b, nowait)")))
    t.start()
    run_ping()
    t.join()
    pi.close()
    po.close()
    lat = result["lat"]
    return lat[len(lat) // 10:]


def eval_lat():
    import __main__
    return tuple(__main__.LAT)


def cpython_throughput(payload, n):
    from concurrent import interpreters as ci
    q = ci.create_queue(maxsize=1024)
    src, snk = ci.create(), ci.create()
    src.exec(SINK)
    snk.exec(SINK)
    snk.prepare_main(q=q, n=n)
    src.prepare_main(q=q, n=n)
    src.exec(f"payload = {payload!r}")  # dicts/lists cannot go through prepare_main
    out = {}

    def run_sink():
        snk.exec("import __main__\n__main__.NS = sink(q, n)")
        out["ns"] = snk.call(eval_ns)

    t = threading.Thread(target=run_sink)
    t0 = time.perf_counter_ns()
    t.start()
    src.exec("source(q, n, payload)")
    t.join()
    wall = time.perf_counter_ns() - t0
    src.close()
    snk.close()
    return n / (max(out["ns"], wall) / 1e9)


def eval_ns():
    import __main__
    return __main__.NS


def isola_rt(rounds, pools=5):
    """Median and p99 (us) of round trips: the median over `pools` new
    pools of each one's figures."""
    med, p99 = [], []
    for _ in range(pools):
        with isola.Pool(2) as pool:
            lat = isola_round_trip(pool, rounds)
        med.append(statistics.median(lat) / 1e3)
        p99.append(pct(lat, 0.99) / 1e3)
    return [statistics.median(med), statistics.median(p99)]


def spread_ab(runs=3):
    """isola's round trip median with ISOLA_SPREAD=0 and with the default,
    each in `runs` child processes, alternating."""
    import subprocess
    out = {"off": [], "on": []}
    for _ in range(runs):
        for name, val in (("off", "0"), ("on", "1")):
            env = dict(os.environ, ISOLA_SPREAD=val)
            r = subprocess.run([sys.executable, __file__, "--rt-only"]
                               + (["--quick"] if "--quick" in sys.argv else []),
                               env=env, capture_output=True, text=True, check=True)
            out[name].append(json.loads(r.stdout)[0])
    return out


def main():
    quick = "--quick" in sys.argv
    rounds = 2000 if quick else 20000
    n = 20000 if quick else 200000
    res = {"python": sys.version.split()[0]}
    if "--rt-only" in sys.argv:  # a child of --ab
        print(json.dumps(isola_rt(rounds)))
        return
    res["isola_rt_us"] = isola_rt(rounds)
    with isola.Pool(2) as pool:
        res["isola_tput"] = {name: isola_throughput(pool, v, n) for name, v in PAYLOADS}
    have_ci = sys.version_info >= (3, 14)
    if have_ci:
        lat = cpython_round_trip(max(50, rounds // 100), nowait=False)
        res["ci_blocking_rt_us"] = [statistics.median(lat) / 1e3, pct(lat, 0.99) / 1e3]
        lat = cpython_round_trip(rounds, nowait=True)
        res["ci_spin_rt_us"] = [statistics.median(lat) / 1e3, pct(lat, 0.99) / 1e3]
        res["ci_tput"] = {name: cpython_throughput(v, n // 4) for name, v in PAYLOADS}
    if "--ab" in sys.argv:
        res["isola_rt_spread_ab_us"] = spread_ab()
    if "--json" in sys.argv:
        print(json.dumps(res, indent=1))
        return
    print(f"messages between two sub-interpreters, Python {res['python']}")
    print("round trip (us, median / p99), both sides blocking:")
    print(f"  isola channels              {res['isola_rt_us'][0]:9.2f} / {res['isola_rt_us'][1]:.2f}"
          "   target: median < 5, p99 < 50")
    if have_ci:
        print(f"  concurrent.interpreters get {res['ci_blocking_rt_us'][0]:9.2f} / {res['ci_blocking_rt_us'][1]:.2f}")
        print(f"  ... get_nowait spinning     {res['ci_spin_rt_us'][0]:9.2f} / {res['ci_spin_rt_us'][1]:.2f}")
        print(f"  isola / CPython spinning: {res['ci_spin_rt_us'][0] / res['isola_rt_us'][0]:.2f}x "
              "faster (target >= 4x)")
    if "--ab" in sys.argv:
        ab = res["isola_rt_spread_ab_us"]
        print("  isola round trip medians, alternating child processes: ISOLA_SPREAD=0 "
              + " ".join(f"{x:.2f}" for x in ab["off"]) + "; default "
              + " ".join(f"{x:.2f}" for x in ab["on"]))
    print("one-way throughput (msg/s):")
    for name, _ in PAYLOADS:
        line = f"  {name:20} isola {res['isola_tput'][name]:12,.0f}"
        if have_ci:
            ratio = res['isola_tput'][name] / res['ci_tput'][name]
            line += f"   CPython spinning {res['ci_tput'][name]:10,.0f}   {ratio:5.1f}x (target >= 5x)"
        print(line)


if __name__ == "__main__":
    main()
