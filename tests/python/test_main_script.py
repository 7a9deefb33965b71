"""The caller's main script, as a newcomer writes it (issue #31.2, .3,
.5): each case is a script run by a fresh Python in a subprocess with a
hard timeout."""
import unittest

from script_helpers import IN_SUB, run_script

UNGUARDED = """
import isola

def produce(ch):
    for i in range(3):
        ch.send(i)
    ch.close()

print("top level ran")
with isola.Pool(2) as pool:
    ch = isola.Channel(64)
    pool.submit(produce, ch)
    for item in ch:
        print(item)
"""

CLASSES = """
import collections, dataclasses, isola

Pt = collections.namedtuple("Pt", "x y")

@dataclasses.dataclass
class Box:
    w: int
    h: int

class MyErr(ValueError):
    pass

def double(p):
    return Pt(p.x * 2, p.y * 2)

def grow(b):
    return Box(b.w + 1, b.h + 1)

def boom(msg):
    raise MyErr(msg)

def same(x):
    return x

if __name__ == "__main__":
    with isola.Pool(2) as pool:
        r = pool.submit(double, Pt(1, 2)).result()
        print("namedtuple", r, type(r) is Pt)
        b = pool.submit(grow, Box(3, 4)).result()
        print("dataclass", b, type(b) is Box)
        try:
            pool.submit(boom, "bad").result()
        except MyErr as e:
            print("caught", type(e).__name__, type(e) is MyErr, e)
        import math
        print("stdlib", pool.submit(math.hypot, *Pt(3, 4)).result())
        print("list", pool.submit(same, [Pt(5, 6)]).result())
"""

HIDDEN_CLASS = """
import collections, isola

def same(p):
    return p

if __name__ == "__main__":
    Hidden = collections.namedtuple("Hidden", "x")
    with isola.Pool(1) as pool:
        try:
            pool.submit(same, Hidden(1)).result()
        except ValueError as e:
            print("error:", e)
"""

UNGUARDED_CLASS_ARGUMENT = """
import collections, isola
Pt = collections.namedtuple("Pt", "x y")
print("top level ran")
with isola.Pool(1) as pool:
    try:
        pool.submit(len, Pt(3, 4)).result()
    except ValueError as e:
        print("error:", e)
"""

GUARDED = """
import isola

def inc(x):
    return x + 1

if __name__ == "__main__":
    with isola.Pool(1) as pool:
        print(pool.submit(inc, 41).result())
"""

GUARDED_MAIN_FUNCTION = """
import isola

def inc(x):
    return x + 1

def main():
    with isola.Pool(1) as pool:
        print(pool.submit(inc, 41).result())

if __name__ == "__main__":
    main()
"""

GUARD_INSIDE_TRY = """
import isola, sys

def inc(x):
    return x + 1

try:
    if __name__ == "__main__" and len(sys.argv) >= 1:
        with isola.Pool(1) as pool:
            print(pool.submit(inc, 41).result())
except KeyboardInterrupt:
    pass
"""

UNGUARDED_MAIN_CALL = """
import isola

def inc(x):
    return x + 1

def main():
    with isola.Pool(1) as pool:
        print(pool.submit(inc, 41).result())

main()
"""

UNGUARDED_STDLIB_ONLY = """
import isola, math
with isola.Pool(1) as pool:
    print(pool.submit(math.gcd, 1071, 462).result())
"""


@unittest.skipIf(IN_SUB, "runs scripts in subprocesses")
class MainScript(unittest.TestCase):
    def test_unguarded_script_fails_at_once_without_a_second_run(self):
        # Before: "top level ran" twice, then a silent hang on `for item in ch`.
        r = run_script(UNGUARDED)
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(r.stdout.count("top level ran"), 1, r.stdout)
        self.assertIn("RuntimeError", r.stderr)
        self.assertIn('if __name__ == "__main__":', r.stderr)
        self.assertIn("(line 10)", r.stderr)

    def test_unguarded_script_class_is_refused_by_the_worker_without_a_second_run(self):
        r = run_script(UNGUARDED_CLASS_ARGUMENT)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.count("top level ran"), 1, r.stdout)
        self.assertIn("RuntimeError: isola:", r.stdout)
        self.assertIn("(line 5)", r.stdout)

    def test_unguarded_call_of_main_is_refused(self):
        r = run_script(UNGUARDED_MAIN_CALL)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("RuntimeError: isola: inc belongs to the main script", r.stderr)
        self.assertIn("(line 11)", r.stderr)

    def test_unguarded_script_may_still_send_stdlib_functions(self):
        r = run_script(UNGUARDED_STDLIB_ONLY)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.split(), ["21"])

    def test_guarded_scripts_work(self):
        for src in (GUARDED, GUARDED_MAIN_FUNCTION, GUARD_INSIDE_TRY):
            r = run_script(src)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout.split(), ["42"])

    def test_script_classes_travel_both_ways(self):
        r = run_script(CLASSES)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0], "namedtuple Pt(x=2, y=4) True")
        self.assertEqual(lines[1], "dataclass Box(w=4, h=5) True")
        self.assertEqual(lines[2], "caught MyErr True bad")
        self.assertEqual(lines[3], "stdlib 5.0")
        self.assertEqual(lines[4], "list [Pt(x=5, y=6)]")

    def test_a_class_workers_cannot_find_names_the_cause(self):
        r = run_script(HIDDEN_CLASS)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("pickled object failed to load", r.stdout)
        self.assertIn("AttributeError", r.stdout)
        self.assertIn("'Hidden'", r.stdout)

    def test_script_on_standard_input(self):
        # Before: AttributeError: 'NoneType' object has no attribute 'loader'.
        r = run_script(GUARDED, stdin_source=True)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("TypeError: isola: inc is defined in __main__", r.stderr)
        self.assertIn("standard input", r.stderr)
        self.assertNotIn("loader", r.stderr)

    def test_script_on_standard_input_may_send_stdlib_functions(self):
        r = run_script(UNGUARDED_STDLIB_ONLY, stdin_source=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.split(), ["21"])


if __name__ == "__main__":
    unittest.main()
