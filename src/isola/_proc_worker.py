"""The child side of isola's process lane.

Started by a process worker's proxy thread, never imported by users:

    python -m isola._proc_worker FD PPID

FD is the shared-memory region (procring) the parent made for this
child, PPID the parent's pid (the child exits when it is gone).  The
pool's setup arrives in the environment: ISOLA_PROC_PATH (sys.path
entries, os.pathsep-joined, first), ISOLA_PROC_PRELOAD (modules,
comma-separated) and ISOLA_PROC_INIT (source, run once: the pool's init
and initializer).  Then isola._proc_serve runs tasks in this main
interpreter until the parent says goodbye.

Interrupts: the parent writes the task's number to the region and sends
SIGINT; the handler raises isola.Cancelled only if that number is the
task running now (a late or stray SIGINT, Ctrl-C in the terminal, does
nothing).
"""
import os
import signal
import sys


def _on_sigint(signum, frame):
    import isola
    if isola._proc_interrupt_due():
        raise isola.Cancelled("interrupted by its pool (process worker)")


def _setup():
    paths = os.environ.pop("ISOLA_PROC_PATH", "")
    front = [p for p in paths.split(os.pathsep) if p]
    sys.path[:] = front + [p for p in sys.path if p not in front]
    for name in filter(None, os.environ.pop("ISOLA_PROC_PRELOAD", "").split(",")):
        __import__(name)
    init = os.environ.pop("ISOLA_PROC_INIT", "")
    if init:
        import types
        mod = types.ModuleType("__isola_init__")
        exec(compile(init, "<isola init>", "exec"), mod.__dict__)


def main():
    fd, ppid = int(sys.argv[-2]), int(sys.argv[-1])
    signal.signal(signal.SIGINT, _on_sigint)
    error = None
    try:
        _setup()
        import isola
    except BaseException as exc:  # the parent reports it (BrokenPool)
        import traceback
        error = "".join(traceback.format_exception(exc))
        import isola
    isola._proc_serve(fd, ppid, error)


if __name__ == "__main__":
    main()
