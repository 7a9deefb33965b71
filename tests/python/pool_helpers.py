"""Module-level functions and classes the pool tests send to workers."""
import time

import isola


def square(x):
    return x * x


def add(a, b=0, *, c=0):
    return a + b + c


def spin_forever():
    while True:
        pass


def catch_cancel():
    try:
        while True:
            pass
    except isola.Cancelled:
        return "caught"


def sleep(s):
    time.sleep(s)
    return s


def fail(msg):
    raise ValueError(msg)


class CustomError(Exception):
    pass


class CustomValueError(ValueError):
    pass


def fail_custom(msg):
    raise CustomError(msg)


def send_to(ch, n):
    for i in range(n):
        ch.send(i)
    ch.close()
    return n


def where():
    import sys
    return getattr(sys, "_isola_worker_tag", None)


class Counter:
    def __init__(self, start=0):
        self.total = start

    def add(self, n):
        self.total += n
        return self.total

    def get(self):
        return self.total


class Broken:
    def __init__(self):
        raise RuntimeError("cannot start")


def send_fraction(ch):
    """Send a value that needs the pickle fallback on ch: the error type's
    name, or "sent"."""
    import fractions
    try:
        ch.send_nowait(fractions.Fraction(1, 3))
    except Exception as exc:
        return type(exc).__name__
    return "sent"


def big_bytes(n):
    """n bytes made in the worker: they travel back zero-copy (a blob)."""
    return b"\x01" * n  # touched pages: they count in RSS


def fail_deep():
    """An exception whose argument cannot travel (nested too deeply)."""
    deep = []
    for _ in range(100000):
        deep = [deep]
    raise KeyError(deep)


def shared_bytes(n):
    return isola.share(b"\x02" * n)
