"""End-to-end tests of the `isola` command line and the demos (run as
subprocesses; ISOLA_BUILD_DIR names the build directory)."""
import json
import os
import re
import subprocess
import sys
import tempfile
import unittest

BUILD = os.environ.get("ISOLA_BUILD_DIR")
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
IN_SUB = getattr(sys, "_isola_subinterpreter", False)

TOOLS = """
def double(x):
    return 2 * x

def fragile(x):
    if x % 3 == 0:
        raise ValueError(f"no multiples of three: {x}")
    return x

def shout(s):
    return s.upper() + "!"
"""


@unittest.skipIf(IN_SUB or not BUILD, "needs ISOLA_BUILD_DIR and subprocesses")
@unittest.skipIf(os.environ.get("ISOLA_SKIP_CLI_TESTS"), "the command line is tested with the newest Python only (scripts/test)")
class Cli(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        with open(os.path.join(cls.tmp.name, "tools.py"), "w") as f:
            f.write(TOOLS)
        cls.isola = os.path.join(BUILD, "cli", "isola")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def run_isola(self, *args, input=None):
        return subprocess.run([self.isola, *args], input=input, capture_output=True, text=True,
                              cwd=self.tmp.name, timeout=120)

    def test_ordered_with_j1_and_j4(self):
        data = "".join(f"{i}\n" for i in range(500))
        for j in ("1", "4"):
            r = self.run_isola("map", "tools:double", "-j", j, "--ordered", "--chunk", "7", input=data)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual([json.loads(l) for l in r.stdout.splitlines()], [2 * i for i in range(500)])
            self.assertIn("500 items, 0 errors", r.stderr)

    def test_unordered_has_indices(self):
        data = "".join(f"{i}\n" for i in range(100))
        r = self.run_isola("map", "tools:double", "-j", "2", "--chunk", "3", input=data)
        self.assertEqual(r.returncode, 0, r.stderr)
        recs = [json.loads(l) for l in r.stdout.splitlines()]
        self.assertEqual(sorted(x["index"] for x in recs), list(range(100)))
        self.assertTrue(all(x["result"] == 2 * x["index"] for x in recs))

    def test_errors_per_line_and_exit_code(self):
        # issue 16.7: --ordered output is results alone; failures go to
        # standard error (with the traceback), unordered rows say "error".
        # Issue 31.11: output line N stays input line N (a failed line
        # gives an empty line, or --placeholder)
        r = self.run_isola("map", "tools:fragile", "--ordered", input="1\n3\n4\n{bad\n6\n")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stdout, "1\n\n4\n\n\n")
        self.assertIn("<stdin>:2 (index 1): ValueError: no multiples of three: 3", r.stderr)
        self.assertIn("Traceback", r.stderr)
        self.assertIn("<stdin>:4 (index 3): json.JSONDecodeError: bad JSON", r.stderr)
        self.assertIn("3 errors", r.stderr)
        r = self.run_isola("map", "tools:fragile", input="1\n3\n4\n{bad\n6\n")
        rows = {x["index"]: x for x in map(json.loads, r.stdout.splitlines())}
        self.assertEqual(sorted(rows), [0, 1, 2, 3, 4], "one row per input, the run goes on")
        self.assertEqual(rows[0], {"index": 0, "result": 1})
        self.assertEqual(rows[1]["error"], "ValueError")
        self.assertNotIn("result", rows[1])
        self.assertIn("in fragile", rows[1]["traceback"])

    def test_lines_mode_and_files(self):
        inp = os.path.join(self.tmp.name, "in.txt")
        out = os.path.join(self.tmp.name, "out.jsonl")
        with open(inp, "w") as f:
            f.write("hello\nworld\n")
        r = self.run_isola("map", "tools:shout", "--lines", "--ordered", "--in", inp, "--out", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(out) as f:
            self.assertEqual([json.loads(l) for l in f], ["HELLO!", "WORLD!"])

    def test_setup_errors(self):
        r = self.run_isola("map", "no_such_module_zz:f", input="1\n")
        self.assertEqual(r.returncode, 2)
        self.assertIn("No module named 'no_such_module_zz'", r.stderr)
        r = self.run_isola("map", "tools:nope", input="1\n")
        self.assertEqual(r.returncode, 2)
        self.assertIn("has no attribute 'nope'", r.stderr)
        r = self.run_isola("map", "justaname", input="1\n")
        self.assertEqual(r.returncode, 2)
        self.assertIn("expected MODULE:FUNC", r.stderr)
        r = self.run_isola("map", "tools:double", "--in", "/no/such/file")
        self.assertEqual(r.returncode, 2)
        r = self.run_isola("frobnicate")
        self.assertEqual(r.returncode, 2)
        # issue 14.4: an absurd chunk size crashed on an unchecked calloc
        r = self.run_isola("map", "math:factorial", "--chunk", "1000000000000", input="1\n")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("--chunk takes a number from 1 to", r.stderr)

    def test_help(self):
        for cmd in (["--help"], ["map", "--help"], ["run", "--help"], ["bench", "--help"]):
            r = self.run_isola(*cmd)
            self.assertEqual(r.returncode, 0)
            self.assertIn("usage:", r.stdout)
        self.assertIn("example", self.run_isola("map", "--help").stdout)

    def test_progress_bar_on_a_terminal(self):
        import shutil
        if shutil.which("script") is None:
            self.skipTest("no `script` to give isola a terminal")
        inp = os.path.join(self.tmp.name, "many.txt")
        with open(inp, "w") as f:
            f.write("".join(f"{i}\n" for i in range(2000)))
        out = os.path.join(self.tmp.name, "many.jsonl")
        cmd = f"{self.isola} map tools:double --in {inp} --out {out} --chunk 10"
        r = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True, text=True,
                           cwd=self.tmp.name, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("2000/2000", r.stdout)  # the bar, drawn on the terminal
        self.assertIn("ETA", r.stdout)
        self.assertIn("/s", r.stdout)
        with open(out) as f:
            self.assertEqual(len(f.readlines()), 2000)

    def test_bench_reports_a_missing_directory(self):
        r = self.run_isola("bench", "--quick", "--dir", "/no/such/dir")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("not found", r.stderr)

    def test_run_script_main(self):
        script = os.path.join(self.tmp.name, "job.py")
        with open(script, "w") as f:
            f.write("import sys\n\ndef square(x):\n    return x * x\n\n"
                    "def main(pool):\n    print(sum(pool.map(square, range(10))), sys.argv[1:])\n"
                    "    return 3\n\nif __name__ == '__main__':\n    raise SystemExit('guard ran')\n")
        r = self.run_isola("run", script, "-j", "2", "extra")
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertEqual(r.stdout.strip(), "285 ['extra']")
        # issue 14.13: arguments were pasted into source text; issue 16.11: -j first
        echo = os.path.join(self.tmp.name, "echo.py")
        with open(echo, "w") as f:
            f.write("import sys, json\n\ndef main(pool):\n    print(json.dumps(sys.argv[1:]))\n")
        args = ["a\nb", "it's \"quoted\" \\", "x" * 5000] + [str(i) for i in range(2000)]
        r = self.run_isola("run", "-j", "1", echo, *args)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout), args)
        bad = os.path.join(self.tmp.name, "nomain.py")
        with open(bad, "w") as f:
            f.write("x = 1\n")
        r = self.run_isola("run", bad)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("has no main(pool)", r.stderr)


@unittest.skipIf(IN_SUB or not BUILD, "needs ISOLA_BUILD_DIR and subprocesses")
@unittest.skipIf(os.environ.get("ISOLA_SKIP_CLI_TESTS"), "the command line is tested with the newest Python only (scripts/test)")
class Demos(unittest.TestCase):
    def run_demo(self, name, *args):
        env = dict(os.environ, PYTHONPATH=os.path.join(BUILD, "src"))
        return subprocess.run([sys.executable, os.path.join(ROOT, "demos", name), *args],
                              capture_output=True, text=True, timeout=300, env=env)

    def test_stdlib_ast(self):
        # issue 31.13: the speed-up is interleaved, best of rounds, and
        # beside the same work in separate processes, measured in the run
        r = self.run_demo("stdlib_ast.py", "--rounds", "2", "--files", "60")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("Most common node types", r.stdout)
        self.assertIn("Largest functions", r.stdout)
        self.assertIn("Best of 2 interleaved rounds", r.stdout)
        m = re.search(r"1 interpreter: +([\d.]+) s\n +(\d+) interpreters: +([\d.]+) s +"
                      r"speed-up ([\d.]+)x", r.stdout)
        self.assertIsNotNone(m, r.stdout)
        one, many, speedup = float(m[1]), float(m[3]), float(m[4])
        # the times are printed to 0.01 s: the ratio of the printed figures
        # bounds the printed speed-up (also rounded to 0.01)
        lo, hi = (one - 0.005) / (many + 0.005), (one + 0.005) / max(many - 0.005, 1e-9)
        self.assertTrue(lo - 0.006 <= speedup <= hi + 0.006, (one, many, speedup))
        m = re.search(r"1 process ([\d.]+) s, (\d+) processes ([\d.]+) s: ([\d.]+)x, "
                      r"what this machine allows", r.stdout)
        self.assertIsNotNone(m, r.stdout)
        self.assertGreater(float(m[1]), 0)
        self.assertIn("of the machine's own speed-up", r.stdout)

    def test_actor_pipeline_shows_backpressure(self):
        r = self.run_demo("actor_pipeline.py")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("sum of squares of 0..399 = 21253400", r.stdout)
        self.assertIn("peak depth 8/8", r.stdout)

    def test_pingpong(self):
        r = self.run_demo("pingpong.py")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("isola channels", r.stdout)

    def test_embed_pool(self):
        r = subprocess.run([os.path.join(BUILD, "demos", "embed_pool")], capture_output=True,
                           text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("math.gcd(1071, 462)        = 21", r.stdout)
        self.assertIn("[10, 20, 35, 56, 84]", r.stdout)

    def test_smoke_parallel(self):
        # issue 31.13: beside the same loop in separate processes, measured
        # in the same run, interleaved, best of the rounds
        r = subprocess.run([os.path.join(BUILD, "demos", "smoke_parallel"), "2", "1"],
                           capture_output=True, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("best of 1 interleaved rounds", r.stdout)
        self.assertRegex(r.stdout, r"2 interpreters side by side: +[\d.]+ s +speed-up [\d.]+x")
        self.assertRegex(r.stdout, r"2 processes side by side: +[\d.]+ s +speed-up [\d.]+x "
                                   r"\(what this machine allows now\)")


if __name__ == "__main__":
    unittest.main()
