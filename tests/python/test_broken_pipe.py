"""A write to a pipe nobody reads raises BrokenPipeError, as in python3.

python3 ignores SIGPIPE at startup; a C program that starts CPython
through isola_init must get the same behaviour, or one worker writing to a
closed pipe or socket kills the whole process (seen in CI: the
sub-interpreter test runner died with signal 13).
"""
import os
import unittest

import isola


class BrokenPipe(unittest.TestCase):
    def test_write_to_a_closed_pipe_raises_here(self):
        r, w = os.pipe()
        os.close(r)
        try:
            with self.assertRaises(BrokenPipeError):
                os.write(w, b"x")
        finally:
            os.close(w)

    def test_write_to_a_closed_pipe_raises_in_a_worker(self):
        with isola.Pool(1) as pool:
            self.assertEqual(pool.submit(_write_to_closed_pipe).result(timeout=60),
                             "BrokenPipeError")


def _write_to_closed_pipe():
    r, w = os.pipe()
    os.close(r)
    try:
        os.write(w, b"x")
        return "written"
    except BrokenPipeError as e:
        return type(e).__name__
    finally:
        os.close(w)


if __name__ == "__main__":
    unittest.main()
