"""Large bytes and isola.Buffer sent to process workers (issue #33), in one run.

    PYTHONPATH=build/py3.14/src python3.14 bench/bench_proclane_buffer.py [--quick] [--json]

Per task, the same SIZE bytes (16 MB) sent as the only argument to a
process worker, one task at a time (submit, result), tasks alternating
between the sides, median of the rounds:

- isola.share(data) -> Buffer, sent again each task (the mirror is made
  once; each task passes its fd and the child maps it, or finds it in its
  cache);
- the same `bytes` object each task (a new blob per encode, so a new
  mirror per task when large bytes are mirrored; copied through the ring
  before);
- ProcessPoolExecutor(2) (forkserver) pickling the same bytes.

Two task bodies: `length` (len and one byte: the transport alone) and
`crc` (zlib.crc32 over every byte: the child reads all of it, so pages
come in).  Before the mirrors, a Buffer could not be sent (TypeError):
that row prints "refused".  Then, alone (no 16 MB copies in between), the
sync call with the Buffer against the same call with an int: what passing
and finding the mapping adds to a task.
"""
import concurrent.futures as cf
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_helpers  # noqa: E402
import isola  # noqa: E402

QUICK = "--quick" in sys.argv
SIZE = 16 << 20
ROUNDS = 20 if QUICK else 60


def run(submit, fn, arg, n):
    times = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        submit(fn, arg).result()
        times.append(time.perf_counter_ns() - t0)
    return times


def main():
    data = os.urandom(SIZE)
    want_crc = zlib.crc32(data)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}, {SIZE >> 20} MB per task, {ROUNDS} tasks per row")
    ctx = mp.get_context("forkserver")
    out = {}
    with isola.Pool(1, processes=2, place={"bench_helpers": "process"}) as pool, \
            cf.ProcessPoolExecutor(2, mp_context=ctx) as ex:
        buf = isola.share(data)
        sides = {
            "isola Buffer": (pool.submit, buf),
            "isola bytes": (pool.submit, data),
            "ProcessPoolExecutor bytes": (ex.submit, data),
        }
        for body, fn in (("length", bench_helpers.blob_len), ("crc", bench_helpers.blob_crc)):
            samples = {k: [] for k in sides}
            for name, (submit, arg) in sides.items():
                try:
                    r = submit(fn, arg).result()  # warm up (and check)
                except TypeError as e:
                    samples[name] = None
                    print(f"  {name}: refused ({e})")
                    continue
                assert r in (SIZE, want_crc), (name, r)
            for _ in range(ROUNDS // 5):  # interleaved: the load hits every side alike
                for name, (submit, arg) in sides.items():
                    if samples[name] is not None:
                        samples[name] += run(submit, fn, arg, 5)
            base = statistics.median(samples["ProcessPoolExecutor bytes"])
            print(f"{body}:")
            for name, s in samples.items():
                if s is None:
                    out[f"{body}/{name}"] = None
                    continue
                med, p90 = statistics.median(s), sorted(s)[len(s) * 9 // 10]
                out[f"{body}/{name}"] = {"median_us": med / 1e3, "p90_us": p90 / 1e3,
                                         "vs_ppe": base / med}
                print(f"  {name:28s} median {med / 1e3:9.1f} us, p90 {p90 / 1e3:9.1f} us, "
                      f"{base / med:6.1f}x ProcessPoolExecutor")
        alone = {}
        for name, fn, arg in (("int", bench_helpers.trivial, 1),
                              ("Buffer", bench_helpers.blob_len, buf)):
            try:
                run(pool.submit, fn, arg, 20)
            except TypeError:
                continue
            t = sorted(run(pool.submit, fn, arg, 300))
            alone[name] = (t[len(t) // 2] / 1e3, t[len(t) * 99 // 100] / 1e3)
            out[f"alone/{name}"] = {"p50_us": alone[name][0], "p99_us": alone[name][1]}
        print("sync call alone, p50 / p99: " + "; ".join(
            f"{k} {p50:.1f} / {p99:.1f} us" for k, (p50, p99) in alone.items()))
        stats = getattr(isola, "_proc_mirror_stats", None)
        if stats is not None:
            out["mirror_stats"] = stats()
            print("mirrors:", out["mirror_stats"])
    if "--json" in sys.argv:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
