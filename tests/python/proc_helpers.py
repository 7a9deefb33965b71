"""Module-level functions the process-lane tests send to workers."""
import os
import signal
import time

import isola


def pid():
    return os.getpid()


def square(x):
    return x * x


def add(a, b=0, *, c=0):
    return a + b + c


def uses_singlephase(x):
    # A single-phase extension: refused by sub-interpreters, fine in a
    # process worker's main interpreter.
    import singlephase_ext  # noqa: F401
    return (x * 2, os.getpid())


def uses_nested(x):
    # The refusal happens deeper, under another module's import.
    import proc_nested
    return proc_nested.triple(x)


def sleep(s):
    time.sleep(s)
    return s


def spin_forever():
    while True:
        pass


def catch_cancel():
    try:
        while True:
            pass
    except isola.Cancelled:
        return "caught"


class CustomError(Exception):
    pass


def fail_custom(msg):
    raise CustomError(msg)


def fail_value(msg):
    raise ValueError(msg)


def segfault():
    os.kill(os.getpid(), signal.SIGSEGV)


def exit_now(status):
    os._exit(status)


def crash_some(i):
    # 1 in 20 tasks kill their worker: SIGSEGV or os._exit, alternately.
    if i % 20 == 7:
        if (i // 20) % 2:
            os.kill(os.getpid(), signal.SIGSEGV)
        os._exit(3)
    return i * i + 1


def big(n):
    return b"x" * n


def echo(x):
    return x


def parent_pid():
    return os.getppid()


def initialized():
    return os.environ.get("ISOLA_TEST_INIT_MARK")


def set_mark(value):
    os.environ["ISOLA_TEST_INIT_MARK"] = value


def deaf_sleep(s):
    # Ignores the interrupt (as C code that blocks signals would): only
    # the kill after the grace ends it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    time.sleep(s)
    return s


def thawed(v):
    return (type(v).__name__, v["k"][1], len(v))


def buffer_info(b, hold=0.0):
    """What a large argument arrived as, and where its bytes live: the
    memfd mapping behind it (/proc/self/maps), the child's figures."""
    import zlib
    shm = isola._buffer_shm(b) if isinstance(b, isola.Buffer) else None
    maps = ""
    if shm is not None:
        with open("/proc/self/maps") as f:
            for line in f:
                lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
                if lo <= shm["address"] < hi:
                    maps = line.strip()
    ro = True
    try:
        memoryview(b)[0:1] = b"x"
        ro = False
    except TypeError:
        pass
    time.sleep(hold)
    return {"type": type(b).__name__, "len": len(b), "crc": zlib.crc32(b), "shm": shm,
            "maps": maps, "readonly": ro, "pid": os.getpid(),
            "stats": isola._proc_mirror_stats()}


_stash = []


def stash(b):
    """Keep b in this worker after the task."""
    import zlib
    _stash.append(b)
    return zlib.crc32(b)


def stash_crcs():
    import zlib
    return [zlib.crc32(b) for b in _stash]


def drop_stash():
    _stash.clear()
    return isola._proc_mirror_stats()


def stash_then_exit(b):
    _stash.append(b)
    os._exit(9)


def fd_count():
    return len(os.listdir("/proc/self/fd"))


def mirror_stats():
    return isola._proc_mirror_stats()


_saved_nofile = None


def limit_fds():
    """No new file descriptor in this worker (received memfds included)."""
    import resource
    global _saved_nofile
    _saved_nofile = resource.getrlimit(resource.RLIMIT_NOFILE)
    low = 0  # the next fd's number: the lowest free one
    while True:
        try:
            os.fstat(low)
        except OSError:
            break
        low += 1
    resource.setrlimit(resource.RLIMIT_NOFILE, (low, _saved_nofile[1]))
    return low


def restore_fds():
    import resource
    resource.setrlimit(resource.RLIMIT_NOFILE, _saved_nofile)
    return True


def blob_summary(b):
    """For C callers: [type name, length, sum of the bytes, "child" when
    the bytes are a mapping of the parent's memfd, else ""]."""
    shm = isola._buffer_shm(b) if isinstance(b, isola.Buffer) else None
    return [type(b).__name__, len(b), sum(b), shm["side"] if shm else ""]


def close_memfd_socket():
    """Close this worker's end of the socket memfds come on (fd 4)."""
    os.close(4)
    return True


# Task graphs across the lanes (test_proclane.py: ProcessGraphs).

def parts(a, b=0, *, c=0, d=0):
    return (a, b, c, d, os.getpid())


def where(x, y=0):
    # The value, and the process that ran it (a process worker is a child
    # of the pool's process; an interpreter worker is in it).
    return (x + y, os.getpid())


def kinds(*args, **kwargs):
    # Type names of what arrived, and lengths where there are some.
    def one(v):
        return (type(v).__name__, len(v) if hasattr(v, "__len__") else None)
    return [one(a) for a in args] + [(k, *one(v)) for k, v in sorted(kwargs.items())]


def share_blob(n):
    return isola.share(b"b" * n)


def big_bytes(n):
    return b"y" * n  # past isola.BLOB_THRESHOLD: a blob between interpreters


def frozen_value():
    return isola.freeze({"k": [1, 2, (3, "x")], "n": {"deep": [b"z" * 10]}})


def a_channel():
    return isola.Channel(1)


def wrapped_channel():
    return {"ch": isola.Channel(1)}


def plain(v):
    return v
