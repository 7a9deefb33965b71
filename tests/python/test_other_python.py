"""Another Python finding isola's build (issue #31.4): the error names
the Python the module was built for, instead of importing the folder of
pure-Python submodules as an empty namespace package."""
import os
import shutil
import subprocess
import sys
import unittest

from script_helpers import IN_SUB, module_dir


def other_python():
    mine = f"{sys.version_info[0]}.{sys.version_info[1]}"
    for v in ("3.14", "3.13", "3.12", "3.11"):
        exe = shutil.which(f"python{v}")
        if v != mine and exe is not None:
            return exe
    return None


@unittest.skipIf(IN_SUB, "runs subprocesses")
class OtherPython(unittest.TestCase):
    def test_other_python_is_told_which_python_the_build_is_for(self):
        exe = other_python()
        if exe is None:
            self.skipTest("no other Python installed")
        env = dict(os.environ, PYTHONPATH=module_dir())
        r = subprocess.run([exe, "-c", "import isola; isola.Pool"], capture_output=True,
                           text=True, timeout=60, env=env)
        self.assertNotEqual(r.returncode, 0)
        mine = f"{sys.version_info[0]}.{sys.version_info[1]}"
        self.assertIn("ImportError", r.stderr)
        self.assertIn(f"built for Python {mine}", r.stderr)
        self.assertNotIn("AttributeError", r.stderr)

    def test_this_python_still_loads_the_extension(self):
        import isola
        self.assertTrue(isola.__file__.endswith(".so"), isola.__file__)
        self.assertTrue(hasattr(isola, "Pool"))


if __name__ == "__main__":
    unittest.main()
