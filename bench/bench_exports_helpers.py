"""Functions for bench/bench_exports.py: the export (main interpreter)
and the tasks that call it (workers)."""
import time

import isola


def add3(a, b, c):
    return a + b + c


def round_trips(n):
    f = isola.host.add3
    ns = time.perf_counter_ns
    lat = []
    for _ in range(n):
        t = ns()
        f(1, 2, 3)
        lat.append(ns() - t)
    return lat


def spin(n):
    f = isola.host.add3
    for _ in range(n):
        f(1, 2, 3)
    return n


def pinger(a, b, n):
    ns = time.perf_counter_ns
    lat = []
    for _ in range(n):
        t = ns()
        a.send((1, 2, 3))
        b.recv()
        lat.append(ns() - t)
    return lat
