"""The record function of bench_map.py: about 19 us of pure-Python work
per record on these machines (word statistics of a short text)."""
import json
import sys


def score(rec):
    words = rec["text"].split()
    counts = {}
    for w in words:
        counts[w] = counts.get(w, 0) + 1
    vowels = sum(1 for w in words for ch in w if ch in "aeiou")
    top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    return {"id": rec["id"], "words": len(words), "vowels": vowels,
            "top": top, "total": sum(rec["values"])}


def trivial(rec):
    """Next to no work: what the command's own cost is measured with."""
    return rec["id"]


def np_stats(rec):
    """A numpy function (numpy refuses sub-interpreters: isola map runs it
    in process workers, issue #33): statistics of the record's values."""
    import numpy as np
    v = np.asarray(rec["values"], dtype=np.float64)
    s = np.sort(v)
    return {"id": rec["id"], "mean": float(v.mean()), "std": float(v.std()),
            "median": float(s[len(s) // 2]), "peak": float(np.cumsum(v).max())}


def record(i):
    import random
    r = random.Random(i)
    words = ["".join(r.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(r.randint(2, 8)))
             for _ in range(30)]
    return {"id": i, "text": " ".join(words), "values": [r.randint(0, 999) for _ in range(12)]}


def loop(inp, out, fn=score):
    """The single-interpreter baseline: what isola map does, in one loop."""
    loads, dumps, write = json.loads, json.dumps, out.write
    for line in inp:
        if line.strip():
            write(dumps(fn(loads(line)), allow_nan=False).encode() + b"\n")


if __name__ == "__main__":  # python3 map_work.py [FUNC] < in > out (also GNU parallel's job)
    loop(sys.stdin.buffer, sys.stdout.buffer, globals()[sys.argv[1]] if sys.argv[1:] else score)
