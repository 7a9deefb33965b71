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


def numpy_work(n):
    """Arrays made in the task (process lane benchmark; needs numpy)."""
    import numpy as np
    a = np.arange(n, dtype=np.float64)
    b = np.sqrt(a) * 1.5 + np.sin(a)
    return float(b.mean() + b.std())


def parse_numbers(text):
    """Pure-Python parsing: "k=v" fields of each line to floats."""
    out = []
    for line in text.splitlines():
        for field in line.split(","):
            k, _, v = field.partition("=")
            if k and v:
                out.append(float(v.strip()))
    return out


def numpy_stats(values):
    """numpy statistics of a list of floats (needs numpy)."""
    import numpy as np
    a = np.asarray(values)
    return [float(a.mean()), float(a.std()), float(np.percentile(a, 90))]


def parse_then_stats(text):
    return numpy_stats(parse_numbers(text))


def blob_len(b):
    """The transport alone: a large argument's length and one byte."""
    return len(b) if b[0] >= 0 else -1


def blob_crc(b):
    """Every byte read (the pages come in)."""
    import zlib
    return zlib.crc32(b)
