"""Progress lines (issue 36): Pool.map(progress=True) and Executor.map draw
isola._progress's line on a terminal, nothing otherwise (`isola map`'s bar
is the same code: tests/python/test_map_cli.py)."""
import io
import os
import subprocess
import sys
import tempfile
import textwrap
import unittest

import isola
from isola import _progress

import pool_helpers

BUILD = os.environ.get("ISOLA_BUILD_DIR")
IN_SUB = getattr(sys, "_isola_subinterpreter", False)


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


class ProgressLineTest(unittest.TestCase):
    def test_format(self):
        line = _progress.format_line(25, 100, 0.5)
        self.assertTrue(line.startswith("[" + "#" * 7 + " " * 23 + "] 25/100"), line)
        self.assertIn("50/s", line)
        self.assertIn("ETA 2s", line)
        self.assertNotIn("errors", line)
        self.assertEqual(_progress.format_line(7, None, 1.0, errors=2), "7 done  7/s  errors 2 ")

    def test_drawn_on_a_terminal_only(self):
        term, pipe = FakeTerminal(), io.StringIO()
        for stream in (term, pipe):
            self.assertEqual(list(_progress.track(iter(range(5)), 5, stream)), list(range(5)))
        self.assertEqual(pipe.getvalue(), "")
        text = term.getvalue()
        self.assertTrue(text.startswith("\r["), text)
        self.assertTrue(text.endswith("5/5  " + text.split("5/5  ")[-1]))
        self.assertTrue(text.endswith("\n"))

    def test_redrawn_at_most_every_interval(self):
        term = FakeTerminal()
        bar = _progress.ProgressLine(1000, term, interval=3600)
        for i in range(1000):
            bar.update(i)
        bar.update(1000, final=True)
        self.assertEqual(term.getvalue().count("\r"), 2)  # the first and the final

    def test_pool_and_executor_map(self):
        term = FakeTerminal()
        old, sys.stderr = sys.stderr, term
        try:
            with isola.Pool(2) as pool:
                self.assertEqual(list(pool.map(pool_helpers.square, range(50), progress=True)),
                                 [i * i for i in range(50)])
            first = term.getvalue()
            with isola.Executor(2) as ex:
                self.assertEqual(list(ex.map(pool_helpers.square, range(30), progress=True,
                                             buffersize=4)),
                                 [i * i for i in range(30)])
            with isola.Pool(2) as pool:  # progress off: nothing
                list(pool.map(pool_helpers.square, range(50)))
        finally:
            sys.stderr = old
        self.assertIn("50/50", first)
        rest = term.getvalue()[len(first):]
        self.assertIn("30/30", rest)
        self.assertEqual(rest.count("\n"), 1)


@unittest.skipIf(IN_SUB or not BUILD, "needs ISOLA_BUILD_DIR and subprocesses")
class ProgressTerminalTest(unittest.TestCase):
    def test_pool_map_on_a_real_terminal_and_a_pipe(self):
        import pty
        with tempfile.TemporaryDirectory() as d:
            script = os.path.join(d, "prog.py")
            with open(script, "w") as f:
                f.write(textwrap.dedent("""\
                    import isola, pool_helpers
                    if __name__ == "__main__":
                        with isola.Pool(2) as pool:
                            r = list(pool.map(pool_helpers.sleep, [0.01] * 40, chunksize=1,
                                              progress=True))
                        print(len(r))
                    """))
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(
                [os.path.join(BUILD, "src"), os.path.dirname(os.path.abspath(__file__))]))
            master, slave = pty.openpty()
            try:
                p = subprocess.Popen([sys.executable, script], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=slave, env=env)
                os.close(slave)
                slave = None
                seen = b""
                while True:
                    try:
                        chunk = os.read(master, 4096)
                    except OSError:  # EIO: the child closed the terminal
                        break
                    if not chunk:
                        break
                    seen += chunk
                self.assertEqual(p.stdout.read(), b"40\n")
                self.assertEqual(p.wait(timeout=60), 0, seen)
            finally:
                if slave is not None:
                    os.close(slave)
                os.close(master)
            text = seen.decode(errors="replace")
            self.assertIn("\r[", text)
            self.assertIn("40/40", text)
            self.assertRegex(text, r"\d+/s")
            self.assertIn("ETA", text)
            r = subprocess.run([sys.executable, script], capture_output=True, text=True,
                               env=env, timeout=120)
            # (3.12 only: isola's import warns of CPython gh-112140.)
            stderr = "".join(line for line in r.stderr.splitlines(True) if "gh-112140" not in line)
            self.assertEqual((r.returncode, r.stdout, stderr), (0, "40\n", ""))


if __name__ == "__main__":
    unittest.main()
