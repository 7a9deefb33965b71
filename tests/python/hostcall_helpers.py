"""Module-level functions for tests/python/test_hostcalls.py: exports
(run in the main interpreter) and the tasks that call them (workers)."""
import threading

import isola


class ExportError(Exception):
    """An exception class of an importable module: rebuilt as itself."""


calls = []  # the main interpreter's record of export calls
release = threading.Event()


# ---- exports (main interpreter) ---------------------------------------------

def add(a, b=0):
    calls.append((a, b))
    return a + b


def where():
    """Which interpreter and thread an export runs in."""
    import _interpreters  # 3.13+: _interpreters; 3.12: _xxsubinterpreters
    return _interpreters.get_current()[0], threading.current_thread().name


def where_312():
    return threading.current_thread().name, threading.main_thread().is_alive()


def fail(kind, text):
    if kind == "value":
        raise ValueError(text)
    if kind == "key":
        raise KeyError(text)
    raise ExportError(text, 7)


def unsendable():
    return threading.Lock()


def block():
    """Blocks until the test releases it (or 30 s)."""
    release.wait(30)
    return "released"


def echo(x):
    return x


# ---- tasks (workers) --------------------------------------------------------

def call(name, *args, **kwargs):
    return getattr(isola.host, name)(*args, **kwargs)


def call_catching(name, *args):
    try:
        getattr(isola.host, name)(*args)
    except BaseException as e:
        return type(e).__name__, type(e).__module__, str(e), e.args
    return None


def call_many(n):
    return [isola.host.add(i, 1) for i in range(n)]


def square(x):
    return x * x


def host_dir():
    return sorted(dir(isola.host))


def spin(seconds):
    import time
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return seconds


meeting = threading.Barrier(2, timeout=20)


def meet():
    """Returns once two calls are in it at the same time."""
    meeting.wait()
    return "met"


class Opaque:
    """Travels only pickled."""
    def __init__(self, v):
        self.v = v


def make_opaque(v):
    return Opaque(v)


def call_with_opaque(name):
    try:
        return getattr(isola.host, name)(Opaque(1))
    except BaseException as e:
        return type(e).__name__, str(e)


def sleep_then_call(seconds, name, *args):
    import time
    time.sleep(seconds)
    return getattr(isola.host, name)(*args)
