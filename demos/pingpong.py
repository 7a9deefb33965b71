"""Channel ping-pong between two sub-interpreters: the round trip in
microseconds, next to CPython's concurrent.interpreters queues when
Python 3.14 is present.

    python3 demos/pingpong.py            (PYTHONPATH must reach isola)
"""
import statistics
import sys
import threading
import time

import isola

ROUNDS = 5000


def ping(a, b, rounds):
    """Send, wait for the echo (a blocking recv), time each round trip."""
    times = []
    for i in range(rounds):
        t0 = time.perf_counter_ns()
        a.send(i)
        b.recv()
        times.append(time.perf_counter_ns() - t0)
    a.close()
    return times


def pong(a, b):
    for msg in a:
        b.send(msg)


def isola_round_trip(rounds=ROUNDS):
    a, b = isola.Channel(4), isola.Channel(4)
    with isola.Pool(2) as pool:
        ponger = pool.submit(pong, a, b)
        times = pool.submit(ping, a, b, rounds).result()
        ponger.result()
    return statistics.median(times[rounds // 10:]) / 1000


def cpython_round_trip(rounds, blocking):
    from concurrent import interpreters
    a, b = interpreters.create_queue(), interpreters.create_queue()
    pinger, ponger = interpreters.create(), interpreters.create()
    get = "b.get()" if blocking else (
        "\n        while True:\n            try:\n                b.get_nowait(); break\n"
        "            except Exception: pass")
    pinger.exec("import time\ndef run(a, b, n):\n    t = []\n    for i in range(n):\n"
                "        t0 = time.perf_counter_ns()\n        a.put(i)\n        " + get +
                "\n        t.append(time.perf_counter_ns() - t0)\n    a.put(None)\n"
                "    import __main__\n    __main__.T = t\n")
    if blocking:
        ponger.exec("def run(a, b):\n    while (m := a.get()) is not None:\n        b.put(m)\n")
    else:  # spin on get_nowait on both sides
        ponger.exec("def run(a, b):\n    while True:\n        try:\n            m = a.get_nowait()\n"
                    "        except Exception:\n            continue\n        if m is None:\n"
                    "            return\n        b.put(m)\n")
    ponger.prepare_main(a=a, b=b)
    pinger.prepare_main(a=a, b=b, n=rounds)
    t = threading.Thread(target=ponger.exec, args=("run(a, b)",))
    t.start()
    pinger.exec("run(a, b, n)")
    t.join()
    times = pinger.call(_get_times)
    pinger.close()
    ponger.close()
    return statistics.median(times[len(times) // 10:]) / 1000


def _get_times():
    import __main__
    return tuple(__main__.T)


def main():
    print(f"round trip between two sub-interpreters, Python {sys.version.split()[0]}")
    print(f"  isola channels (blocking recv):               {isola_round_trip():9.2f} us")
    if sys.version_info >= (3, 14):
        print(f"  concurrent.interpreters Queue, get_nowait spin: "
              f"{cpython_round_trip(ROUNDS, blocking=False):7.2f} us")
        print(f"  concurrent.interpreters Queue, blocking get:    "
              f"{cpython_round_trip(50, blocking=True):7.2f} us")
    else:
        print("  (concurrent.interpreters needs Python 3.14: not compared)")


if __name__ == "__main__":
    main()
