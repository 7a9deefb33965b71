"""Functions the benchmarks run inside workers (isola and CPython's)."""
import time


def cpu(n):
    """Pure-Python CPU work."""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def trivial(x):
    return x


def isola_pinger(a, b, rounds, payload):
    """Send on a, wait (blocking) for the echo on b; round trips in ns."""
    lat = []
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        a.send(payload)
        b.recv()
        lat.append(time.perf_counter_ns() - t0)
    a.close()
    return lat


def isola_ponger(a, b):
    for msg in a:  # blocking recv until closed
        b.send(msg)
    return True


def isola_sink(ch, n):
    t0 = time.perf_counter_ns()
    for _ in range(n):
        ch.recv()
    return time.perf_counter_ns() - t0


def isola_source(ch, n, payload):
    for _ in range(n):
        ch.send(payload)
    return n


def inc(x):
    return x + 1


def add(a, b):
    return a + b


def cpu_step(x):
    """A small pure-Python task (~20 us)."""
    t = 0
    for i in range(300):
        t += i * i % 7
    return x + t % 3
