"""Module-level functions for tests/python/test_graph.py's workers."""
import time

import isola


def inc(x):
    return x + 1


def add(a, b):
    return a + b


def parts(a, b=0, *, c=0, d=0):
    return (a, b, c, d)


def fail(msg):
    raise KeyError(msg)


def sleep(s):
    time.sleep(s)
    return s


def nbytes(buf):
    return (type(buf).__name__, len(buf))


def make_blob(n):
    return isola.share(b"x" * n)
