"""Every Python example of README.md runs as written when saved to a file
(issue #31.1: the channel example hung in silence).  Each block is run as
a script by a fresh Python in a subprocess with a hard timeout; a block
that cannot run alone must say so on its first line ("# fragment: why")
and is only compiled."""
import os
import re
import unittest

from script_helpers import IN_SUB, run_script

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FRAGMENT = "# fragment:"


def python_blocks():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    for m in re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M):
        yield text.count("\n", 0, m.start()) + 1, m.group(1)


@unittest.skipIf(IN_SUB, "runs scripts in subprocesses")
class ReadmeExamples(unittest.TestCase):
    def test_every_python_example_runs_as_written(self):
        ran = 0
        for line, src in python_blocks():
            with self.subTest(readme_line=line):
                if src.startswith(FRAGMENT):
                    compile(src, f"README.md:{line}", "exec")
                    continue
                r = run_script(src)
                self.assertEqual(r.returncode, 0, f"README.md:{line}\n{r.stderr}")
                self.assertNotIn("Traceback", r.stderr)
                self.assertTrue(r.stdout.strip(), "an example shows something")
                ran += 1
        self.assertGreaterEqual(ran, 3)

    def test_the_channel_example_prints_what_it_says(self):
        src = next(s for _, s in python_blocks() if "isola.Channel(64)" in s)
        r = run_script(src)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.split(), ["16", "0", "1", "4", "9", "16"])

    def test_fragments_say_why(self):
        for line, src in python_blocks():
            if src.startswith(FRAGMENT):
                why = src.splitlines()[0][len(FRAGMENT):].strip()
                self.assertTrue(why, f"README.md:{line}: a fragment says why")


if __name__ == "__main__":
    unittest.main()
