"""A container mutated by another thread while it is being encoded: the
encoder raises RuntimeError or sends a well-formed message, never a
malformed one (issue 14.8).  Bounded in time (ISOLA_MUTATION_SECONDS,
default 3 s)."""
import fractions
import os
import sys
import threading
import time
import unittest

import isola


class MutatedWhileEncoding(unittest.TestCase):
    def test_no_undecodable_message(self):
        seconds = float(os.environ.get("ISOLA_MUTATION_SECONDS", "3"))
        # Fractions take the pickle fallback: Python code runs in the
        # middle of each encode, so the mutating thread gets turns there.
        shared_dict = {i: fractions.Fraction(i, 7) for i in range(64)}
        shared_list = [fractions.Fraction(i, 7) for i in range(64)]
        stop = threading.Event()

        def mutate():
            i = 0
            while not stop.is_set():
                i += 1
                if i % 2:
                    shared_dict.pop(next(iter(shared_dict), None), None)
                    if shared_list:
                        shared_list.pop()
                else:
                    shared_dict[1000 + i] = fractions.Fraction(i, 3)
                    shared_list.append(fractions.Fraction(i, 3))

        old = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)
        t = threading.Thread(target=mutate)
        t.start()
        sent = refused = bad = 0
        ch = isola.Channel(16)
        try:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                for obj in (shared_dict, shared_list):
                    try:
                        ch.send(obj)
                    except RuntimeError:
                        refused += 1
                        continue
                    sent += 1
                    try:
                        ch.recv()
                    except ValueError:
                        bad += 1
        finally:
            stop.set()
            t.join()
            sys.setswitchinterval(old)
        self.assertGreater(sent, 0)
        self.assertEqual(bad, 0, f"{bad} undecodable of {sent} sent ({refused} refused)")


if __name__ == "__main__":
    unittest.main()
