"""bench_shared.py - isola.freeze against copying (#18).

    python3.14 bench/bench_shared.py [N_ENTRIES]     (default 1,000,000)

A dict of N entries str -> (int, str), in one run:
  * building it: isola.freeze against pickle.dumps; image size against
    pickle size; process RSS growth from freezing;
  * handing it to 4 workers: by reference (frozen) against as a message
    (the plain dict encoded for each worker);
  * reading in a worker: m[k] over 200,000 keys and iterating a frozen
    sequence of N str, each against the native dict / tuple in the same
    interpreter (ratio > 1: frozen is slower);
  * memory of N = 1, 2, 4 reading workers (RSS growth while they read
    every entry), of concurrent.interpreters (3.14: the dict passed to
    Interpreter.call, a copy per interpreter) and of multiprocessing with
    fork (PSS of the children, from /proc/PID/smaps_rollup, each reading
    every entry).
Ratios are measured in the same run; medians of 3.
"""
import gc
import multiprocessing as mp
import os
import pickle
import statistics
import sys
import time

import isola

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
LOOKUPS = min(N, 200_000)


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def pss(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    return 0


def med(f, runs=3):
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        f()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def read_all(m):
    n = 0
    for k in m:
        n += m[k][0]
    return n


def lookups(m, keys):
    t = time.perf_counter()
    for k in keys:
        m[k]
    return time.perf_counter() - t


def lookup_ratio(frozen, keys):
    """In a worker: frozen m[k] time / native dict m[k] time."""
    native = isola.thaw(frozen)
    f = statistics.median(lookups(frozen, keys) for _ in range(3))
    n = statistics.median(lookups(native, keys) for _ in range(3))
    return f / n, f / len(keys) * 1e9, n / len(keys) * 1e9


def iterate(seq):
    t = time.perf_counter()
    for _ in seq:
        pass
    return time.perf_counter() - t


def iter_ratio(frozen_seq):
    native = tuple(frozen_seq)
    f = statistics.median(iterate(frozen_seq) for _ in range(3))
    n = statistics.median(iterate(native) for _ in range(3))
    return f / n, f / len(native) * 1e9, n / len(native) * 1e9


def receive_and_ack(inbox, acks, rounds):
    # A worker already waiting for work: take the value, read it, answer.
    for _ in range(rounds):
        m = inbox.recv()
        acks.send(len(m))


def noop(m):
    return 0


def mp_child(q):
    q.put(read_all(_FORK_TABLE))


_FORK_TABLE = None


def ci_read_all(m):
    n = 0
    for k in m:
        n += m[k][0]
    return n


def interpreters_baseline(d):
    """3.14's concurrent.interpreters: the dict reaches each interpreter
    as a copy (call() pickles what it cannot share)."""
    try:
        from concurrent import interpreters
    except ImportError:
        print("concurrent.interpreters: not in this Python (3.14+)")
        return
    import threading
    for workers in (1, 2, 4):
        interps = [interpreters.create() for _ in range(workers)]
        gc.collect()
        base = rss()
        peak = [base]
        done = threading.Event()
        def sample():
            while not done.is_set():
                peak.append(rss())
                time.sleep(0.005)
        sampler = threading.Thread(target=sample)
        sampler.start()
        t = time.perf_counter()
        threads = [threading.Thread(target=it.call, args=(ci_read_all, d)) for it in interps]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        took = time.perf_counter() - t
        done.set()
        sampler.join()
        per = (max(peak) - base) / workers
        print(f"concurrent.interpreters x{workers}: {took * 1e3:8.1f} ms to hand it to all and "
              f"read every entry, peak +{per / 1e6:.1f} MB RSS each (a copy per interpreter)")
        for it in interps:
            it.close()


def main():
    global _FORK_TABLE
    print(f"N = {N:,} entries str -> (int, str), Python {sys.version.split()[0]}")
    d = {f"key{i:07d}": (i, f"value{i}") for i in range(N)}
    keys = list(d)[:: max(1, N // LOOKUPS)][:LOOKUPS]
    gc.collect()

    t_pickle = med(lambda: pickle.dumps(d, protocol=5))
    size_pickle = len(pickle.dumps(d, protocol=5))
    before = rss()
    t0 = time.perf_counter()
    table = isola.freeze(d)
    t_freeze_first = time.perf_counter() - t0
    grew = rss() - before
    nbytes = table.nbytes
    t_freeze = med(lambda: isola.freeze(d))
    image = isola.publish("bench.table", table)
    print(f"freeze        {t_freeze * 1e3:8.1f} ms   pickle.dumps {t_pickle * 1e3:8.1f} ms"
          f"   ratio {t_freeze / t_pickle:.2f}x  (first freeze {t_freeze_first * 1e3:.1f} ms)")
    print(f"image         {nbytes / 1e6:8.1f} MB   pickle size  {size_pickle / 1e6:8.1f} MB"
          f"   ratio {nbytes / size_pickle:.2f}x  (RSS grew by {grew / 1e6:.1f} MB)")
    del image

    with isola.Pool(4) as pool:
        for f in [pool.submit(noop, 0) for _ in range(8)]:
            f.result()
        def by_ref():
            for f in [pool.submit(noop, table) for _ in range(4)]:
                f.result()
        def by_copy():
            for f in [pool.submit(noop, d) for _ in range(4)]:
                f.result()
        def empty():
            for f in [pool.submit(noop, 0) for _ in range(4)]:
                f.result()
        t_ref, t_copy, t_empty = med(by_ref, 5), med(by_copy, 1), med(empty, 5)
        print(f"to 4 workers  {t_ref * 1e6:8.1f} us by reference (4 no-op tasks without it:"
              f" {t_empty * 1e6:.1f} us; as a message: {t_copy * 1e3:.1f} ms, "
              f"{t_copy / t_ref:.0f}x)")

        # The hand-off itself: 4 workers already waiting on channels.
        rounds = 51
        inboxes = [isola.Channel(4) for _ in range(4)]
        acks = isola.Channel(16)
        futs = [pool.submit(receive_and_ack, ch, acks, rounds) for ch in inboxes]
        sent, had = [], []
        for _ in range(rounds):
            t0 = time.perf_counter()
            for ch in inboxes:
                ch.send(table)
            t1 = time.perf_counter()
            for _ in inboxes:
                acks.recv()
            t2 = time.perf_counter()
            sent.append(t1 - t0)
            had.append(t2 - t0)
        [f.result() for f in futs]
        sent.sort()
        had.sort()
        print(f"hand-off      {sent[rounds // 2] * 1e6:8.1f} us to send it to 4 waiting workers "
              f"(channels), {had[rounds // 2] * 1e6:.1f} us until all 4 had read its len()")

        r, fns, nns = pool.submit(lookup_ratio, table, keys).result()
        print(f"m[k]          {fns:8.1f} ns   native dict {nns:8.1f} ns   ratio {r:.2f}x (in a worker)")
        seq = isola.freeze([f"value{i}" for i in range(N)])
        r, fns, nns = pool.submit(iter_ratio, seq).result()
        print(f"iterate seq   {fns:8.1f} ns   native tuple {nns:7.1f} ns   ratio {r:.2f}x (per item)")
        del seq

        for workers in (1, 2, 4):
            gc.collect()
            base = rss()
            peak = [base]
            futs = [pool.submit(read_all, table) for _ in range(workers)]
            while not all(f.done() for f in futs):
                peak.append(rss())
                time.sleep(0.005)
            [f.result() for f in futs]
            per = (max(peak) - base) / workers
            print(f"{workers} reader(s)  +{per / 1e6:7.2f} MB each while reading every entry "
                  f"({per / nbytes * 100:.2f}% of the image)")

    isola.unpublish("bench.table")
    interpreters_baseline(d)
    _FORK_TABLE = d
    ctx = mp.get_context("fork")
    for workers in (1, 2, 4):
        q = ctx.Queue()
        procs = [ctx.Process(target=mp_child, args=(q,)) for _ in range(workers)]
        for p in procs:
            p.start()
        peak = {}
        while any(p.is_alive() for p in procs):
            for p in procs:
                try:
                    peak[p.pid] = max(peak.get(p.pid, 0), pss(p.pid))
                except OSError:
                    pass
            time.sleep(0.02)
        for _ in procs:
            q.get()
        for p in procs:
            p.join()
        per = sum(peak.values()) / workers
        print(f"fork x{workers}       PSS {per / 1e6:7.1f} MB per child while reading "
              f"every entry ({per / size_pickle * 100:.0f}% of the pickle size)")


if __name__ == "__main__":
    main()
