"""Running a case in a child process with a hard timeout, for the tests
about hangs, exits and signals (a regression fails instead of stalling
CI)."""
import os
import signal
import subprocess
import sys
import textwrap
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def run_child(source, timeout=60, send_signal=None, after=0.5):
    """Run source in a fresh python (the tests' PYTHONPATH, this folder as
    the working directory, a session of its own); returns (returncode,
    stdout, stderr), the return code None if it still ran after timeout
    (then it is killed with its whole process group).  send_signal: sent
    `after` seconds after the child printed "ready" (waiting for that line
    is bounded by timeout too)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    # A runner started in the background may hand down SIGINT ignored, and
    # Python then installs no KeyboardInterrupt handler: install it.
    prologue = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"
    p = subprocess.Popen([sys.executable, "-c", prologue + textwrap.dedent(source)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         cwd=HERE, start_new_session=True)
    end = time.monotonic() + timeout
    try:
        if send_signal is not None:
            import selectors
            sel = selectors.DefaultSelector()
            sel.register(p.stdout, selectors.EVENT_READ)
            ready = sel.select(timeout) and p.stdout.readline().strip() == "ready"
            sel.close()
            if not ready:
                raise subprocess.TimeoutExpired(p.args, timeout)
            time.sleep(after)
            p.send_signal(send_signal)
        out, err = p.communicate(timeout=max(1.0, end - time.monotonic()))
        return p.returncode, out, err
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        return None, out, err
