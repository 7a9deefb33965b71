"""Real packages whose extensions refuse sub-interpreters, from Debian,
unpacked into build/refusing-prefix by scripts/refusing-prefix
(`scripts/bootstrap --with-refusing`): numpy, regex, lxml, orjson fail to
import there and move to the process lane; PyYAML, msgpack, simplejson,
rapidfuzz fall back to pure Python there, which the pool reports
(stats()["fallbacks"], one warning), and run their C extensions in the
process lane.  Skipped when the prefix is absent or was built for
another Python.  Each case runs in a subprocess with the prefix on
PYTHONPATH and its libraries on LD_LIBRARY_PATH (lxml needs sid's
libxml2.so.16)."""
import json
import os
import subprocess
import sys
import unittest

IN_SUB = getattr(sys, "_isola_subinterpreter", False)
HERE = os.path.dirname(os.path.abspath(__file__))


def prefix():
    build = os.environ.get("ISOLA_BUILD_DIR")
    roots = [os.path.join(os.path.dirname(os.path.abspath(build)), "refusing-prefix")] if build else []
    roots.append(os.path.join(HERE, "..", "..", "build", "refusing-prefix"))
    for p in roots:
        try:
            with open(os.path.join(p, "python")) as f:
                version = f.read().strip()
        except OSError:
            continue
        if os.path.exists(os.path.join(p, ".complete")) and \
                version == "%d.%d" % sys.version_info[:2]:
            return os.path.abspath(p)
    return None


PREFIX = None if IN_SUB else prefix()


@unittest.skipIf(PREFIX is None, "no build/refusing-prefix for this Python "
                 "(scripts/bootstrap --with-refusing)")
class RealPackages(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [HERE] + sys.path[:0] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
            + [os.path.join(PREFIX, "site")])
        env["LD_LIBRARY_PATH"] = os.path.join(PREFIX, "lib")
        r = subprocess.run([sys.executable, os.path.join(HERE, "proc_pkg_cases.py")],
                           capture_output=True, text=True, timeout=300, env=env)
        if r.returncode != 0:
            raise AssertionError(r.stderr[-3000:])
        out = json.loads(r.stdout.strip().splitlines()[-1])
        cls.rows, cls.fallback_rows = out["refusing"], out["fallbacks"]

    def check(self, name, module_prefix):
        row = self.rows[name]
        kind, text = row["interpreter"]
        self.assertEqual(kind, "ImportError", text)
        self.assertIn("does not support loading in subinterpreters", text)
        self.assertEqual(row["result"], row["want"])
        target = "proc_pkg_cases:" + {"numpy": "np_stats", "regex": "regex_words",
                                      "lxml": "lxml_tags", "orjson": "orjson_roundtrip"}[name]
        self.assertEqual(row["placement"][target]["lane"], "process")
        (module, moved), = row["refused"].items()
        self.assertTrue(module.startswith(module_prefix), module)
        self.assertEqual(moved, target)
        warned = [w for w in row["warnings"] if module in w]
        self.assertEqual(len(warned), 1, row["warnings"])

    def test_numpy(self):
        self.check("numpy", "numpy")

    def test_regex(self):
        self.check("regex", "regex")

    def test_lxml(self):
        self.check("lxml", "lxml")

    def test_orjson(self):
        self.check("orjson", "orjson")

    def fallback(self, name, modules):
        # The fallback ran in the interpreter worker, was reported once,
        # and the process lane runs the C extension.
        row = self.fallback_rows[name]
        if row.get("missing"):
            self.skipTest(f"{name} is not in the prefix (scripts/refusing-prefix)")
        self.assertEqual(row["interpreter"][-1], row["want"])
        self.assertEqual(row["process"][-1], row["want"])
        self.assertEqual(row["placement"], {})  # reported, not moved
        self.assertEqual(row["refused"], {})
        for m in modules:
            self.assertIn(m, row["fallbacks"])
            self.assertEqual(row["fallbacks"][m]["target"], row["target"])
            self.assertGreaterEqual(row["fallbacks"][m]["refusals"], 1)
        warned = [w for w in row["warnings"] if "caught that" in w]
        self.assertEqual(len(warned), 1, row["warnings"])  # one per target, naming each module
        for m in modules:
            self.assertIn(m, warned[0])
        self.assertIn(row["target"], warned[0])
        return row

    def test_pyyaml(self):
        row = self.fallback("PyYAML", ["yaml._yaml"])
        self.assertEqual(row["interpreter"][:2], [False, "SafeLoader"])  # __with_libyaml__
        self.assertEqual(row["process"][:2], [True, "CSafeLoader"])

    def test_msgpack(self):
        row = self.fallback("msgpack", ["msgpack._cmsgpack"])
        self.assertEqual(row["interpreter"][0], "msgpack.fallback")  # Packer.__module__
        self.assertEqual(row["process"][0], "msgpack._cmsgpack")

    def test_simplejson(self):
        row = self.fallback("simplejson", ["simplejson._speedups"])
        self.assertEqual([row["interpreter"][0], row["process"][0]], [False, True])  # c_make_scanner

    def test_rapidfuzz(self):
        row = self.fallback("rapidfuzz", ["rapidfuzz.fuzz_cpp"])
        self.assertEqual(row["interpreter"][0], "rapidfuzz.fuzz_py")  # fuzz.ratio.__module__
        self.assertTrue(row["process"][0].startswith("rapidfuzz.fuzz_cpp"), row["process"][0])

    def test_numpy_in_a_task_graph(self):
        # Parsing in interpreter workers feeding numpy through Futures as
        # arguments: the numpy target is moved to processes with its
        # inputs (each of the tasks submitted before the first result),
        # and placed there; then a chain across the lanes.
        g = self.rows["graph"]
        self.assertEqual(g["fan"], g["want_fan"])
        self.assertEqual(g["placement"]["proc_pkg_cases:np_summary"]["lane"], "process")
        self.assertNotIn("proc_pkg_cases:parse_floats", g["placement"])
        self.assertNotIn("proc_pkg_cases:head", g["placement"])
        self.assertEqual(len([w for w in g["warnings"] if "numpy" in w]), 1, g["warnings"])
        # np_summary([6.0, 3.0] * [1.0, 2.0]) = [12.0, 6.0]
        self.assertEqual(g["chain"], [12.0, 6.0])
        self.assertTrue(g["pid_ran"])


BUILD = os.environ.get("ISOLA_BUILD_DIR")


@unittest.skipIf(PREFIX is None, "no build/refusing-prefix for this Python "
                 "(scripts/bootstrap --with-refusing)")
@unittest.skipIf(not BUILD or os.environ.get("ISOLA_SKIP_CLI_TESTS"),
                 "the command line: needs ISOLA_BUILD_DIR (newest Python only, scripts/test)")
class CliWithNumpy(unittest.TestCase):
    """`isola map` on a function that imports numpy in its call (issue
    #33): its chunks move to process workers after the first refusal, one
    warning line naming numpy's module, every result in order."""

    def run_isola(self, *args, input):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [HERE] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
            + [os.path.join(PREFIX, "site")])
        env["LD_LIBRARY_PATH"] = os.path.join(PREFIX, "lib")
        return subprocess.run([os.path.join(BUILD, "cli", "isola"), "map", *args],
                              input=input, capture_output=True, text=True, timeout=300,
                              env=env, cwd=HERE)

    def test_numpy_moves_to_processes(self):
        ns = list(range(1, 301))
        r = self.run_isola("proc_pkg_cases:np_stats", "--ordered", "-j", "2", "--chunk", "10",
                           input="".join(f"{n}\n" for n in ns))
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        rows = [json.loads(l) for l in r.stdout.splitlines()]
        self.assertEqual(len(rows), len(ns))
        for n, (mean, std, threes) in zip(ns, rows):
            self.assertAlmostEqual(mean, (n - 1) / 2, places=9)
            self.assertAlmostEqual(std, ((n * n - 1) / 12) ** 0.5, places=9)
            self.assertEqual(threes, (n + 2) // 3)
        warned = [l for l in r.stderr.splitlines() if "does not support sub-interpreters" in l]
        self.assertEqual(len(warned), 1, r.stderr[-3000:])
        self.assertIn("numpy", warned[0])
        self.assertIn("proc_pkg_cases:np_stats", warned[0])
        # --lane interpreter: the refusal is each line's error
        r = self.run_isola("proc_pkg_cases:np_stats", "--lane", "interpreter", "--ordered",
                           input="3\n4\n")
        self.assertEqual(r.returncode, 1, r.stderr[-3000:])
        self.assertEqual(r.stdout, "\n\n")
        self.assertIn("does not support loading in subinterpreters", r.stderr)


if __name__ == "__main__":
    unittest.main()
