"""Running a user's script the way a newcomer does (issue #31): saved to
a file, run by a fresh Python in a subprocess with a hard timeout."""
import os
import subprocess
import sys
import tempfile

BUILD = os.environ.get("ISOLA_BUILD_DIR")
IN_SUB = getattr(sys, "_isola_subinterpreter", False)
HANG_LIMIT = 60  # s: a run past this is a hang (TimeoutExpired fails the test)


def module_dir():
    """The folder holding the isola module this test process imported."""
    import isola
    return os.path.dirname(isola.__file__)


def run_script(source, *, python=None, args=(), stdin_source=False, cwd=None,
               timeout=HANG_LIMIT, env_extra=None):
    """Run source as a script (or fed on stdin with `python -`); a
    CompletedProcess with text stdout/stderr."""
    env = dict(os.environ)
    env["PYTHONPATH"] = module_dir()
    env.pop("PYTHONWARNINGS", None)
    env.update(env_extra or {})
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "script.py")
        with open(path, "w") as f:
            f.write(source)
        cmd = [python or sys.executable]
        if stdin_source:
            return subprocess.run(cmd + ["-", *args], input=source, capture_output=True,
                                  text=True, timeout=timeout, env=env, cwd=cwd or tmp)
        return subprocess.run(cmd + [path, *args], capture_output=True, text=True,
                              timeout=timeout, env=env, cwd=cwd or tmp)
