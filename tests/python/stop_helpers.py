"""Module-level functions for tests/python/test_stop.py's workers."""
import subprocess
import sys


def terminate_child():
    """Start a child, terminate it, and report how it ended and its mask."""
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    with open(f"/proc/{p.pid}/status") as f:
        blocked = next(line.split()[1] for line in f if line.startswith("SigBlk:"))
    p.terminate()
    try:
        rc = p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        rc = "still running after terminate()"
    return rc, blocked


def recv_forever(ch):
    """README's consumer pattern, on a channel nobody sends to."""
    for item in ch:
        pass
    return "closed"


def recv_one(ch):
    return ch.recv()


def hold_gil(n):
    """One long C call that keeps its interpreter's GIL: re backtracking
    on a pathological pattern (n = 24: about a second here)."""
    import re
    return re.match(r"(a+)+$", "a" * n + "b") is None


class Looper:
    """An actor whose method (or, with loop_in_init, constructor) loops."""

    def __init__(self, loop_in_init=False):
        while loop_in_init:
            pass

    def loop(self):
        while True:
            pass

    def ping(self):
        return "pong"
