"""bench_frozen_keys.py - frozen mappings with regular int keys (#30.8).

    python3.14 bench/bench_frozen_keys.py [N_KEYS]     (default 100,000)

Int keys hash to themselves, so keys aligned to a power of two (offsets,
addresses, ids times 4096) share their low hash bits; a frozen mapping's
index once put them in a few clusters (100,000 keys aligned to 1 MiB:
7.9 s to freeze, 5.6 ms a lookup).  For each key set, in one run:
  * freeze time, against building the dict itself (the baseline);
  * a lookup m[k] over every key (in a shuffled order), frozen against
    the dict in the same interpreter (ratio > 1: frozen is slower);
  * the index's longest and mean displacement (FrozenMap._index_stats).
Medians of 3.  Under a minute at the default size.
"""
import random
import statistics
import sys
import time

import isola

N = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000


def med(f, runs=3):
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        f()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def lookups(m, keys):
    for k in keys:
        m[k]


def main():
    rng = random.Random(1)
    sets = {
        "aligned to 1 MiB": [x << 20 for x in range(N)],
        "aligned to 4096": [x * 4096 for x in range(N)],
        "consecutive": list(range(N)),
        "random 62-bit": list({rng.getrandbits(62) for _ in range(N)}),
        "str": [f"key{x}" for x in range(N)],
    }
    print(f"{N} keys; per lookup in ns; ratio = frozen / dict (same run)")
    print(f"{'keys':<18} {'freeze ms':>10} {'dict ms':>8} {'frozen ns':>10} {'dict ns':>8} "
          f"{'ratio':>6} {'max d':>6} {'mean d':>7}")
    for name, keys in sets.items():
        build = med(lambda: {k: k for k in keys})
        d = {k: k for k in keys}
        freeze = med(lambda: isola.freeze(d))
        m = isola.freeze(d)
        order = keys[:]
        random.Random(2).shuffle(order)
        tf = med(lambda: lookups(m, order)) / N * 1e9
        td = med(lambda: lookups(d, order)) / N * 1e9
        stats = getattr(m, "_index_stats", None)  # absent before #30.8
        s = stats() if stats else {"max_displacement": "-", "mean_displacement": float("nan")}
        print(f"{name:<18} {freeze * 1e3:>10.1f} {build * 1e3:>8.1f} {tf:>10.0f} {td:>8.0f} "
              f"{tf / td:>6.2f} {s['max_displacement']:>6} {s['mean_displacement']:>7.2f}",
              flush=True)


if __name__ == "__main__":
    main()
