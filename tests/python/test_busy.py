"""A pool on a busy machine (other processes take the cores): tasks that
depend on each other still all run.  Cases that could hang run in a
child process with a hard timeout."""
import os
import subprocess
import sys
import unittest

from child_helpers import run_child

IN_SUB = getattr(sys, "_isola_subinterpreter", False)

# Runs in a child: busy processes on every core, then producer/consumer
# pairs, each producer submitted first.  Prints how many pairs ran.
PAIRS = r"""
import os, subprocess, sys, time
import isola, busy_helpers as bh
n = os.cpu_count() or 2
burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
try:
    time.sleep(0.2)
    done = 0
    with isola.Pool(2) as p:
        stop = time.monotonic() + {budget}
        while done < {pairs} and time.monotonic() < stop:
            ch = isola.Channel(1)
            prod = p.submit(bh.produce, ch, 3)
            cons = p.submit(bh.consume, ch)
            assert cons.result() == 3 and prod.result() == 3
            done += 1
    print(done, flush=True)
finally:
    for b in burners:
        b.kill()
        b.wait()
"""




@unittest.skipIf(IN_SUB, "pools and child processes are made from the main interpreter here")
class BusyMachine(unittest.TestCase):
    def test_producer_consumer_pairs_never_deadlock(self):
        # issue 30.1: on a contended machine a call went to an idle
        # worker's own queue, and that worker could take the next call
        # (the consumer, from the shared queue) first: the producer then
        # waited behind its own consumer while the other worker idled.
        rc, out, err = run_child(PAIRS.format(pairs=3000, budget=5), timeout=60)
        self.assertIsNotNone(rc, "deadlocked: producer/consumer pairs hung on a busy machine")
        self.assertEqual(rc, 0, err)
        self.assertGreater(int(out), 0)


if __name__ == "__main__":
    unittest.main()
