"""isola map against what users already have, on one generated file.

python3.14 bench/bench_map.py [--lines N] [--repeat R] [--isola PATH] [--json]

Generates N JSON lines (default 200,000, ~55 MB) and times, in one run,
interleaved R times (default 3) so that the machine's noise hits every
contender alike, each writing the results in input order:
  loop        one python3 process: read, json.loads, map_work.score, write
  isola -j1   `isola map map_work:score -j1 --ordered` from the file
  isola -jN   the same with N = the number of CPUs, from the file
  isola pipe  the same, from `cat FILE |`
  mp.imap     multiprocessing.Pool(N).imap over the lines, chunksize 256
  parallel    GNU parallel --pipepart -jN -k running the loop on blocks
              (Debian's `parallel`; skipped, and said, when missing)
Prints the median wall time, its spread, and the speed-up over the loop;
every output is checked against the loop's.
Targets (2 cores): isola -j2 >= 1.8x the loop, pipe as fast as the file,
no slower than GNU parallel; -j1 within 5% of the loop.
"""
import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import map_work  # noqa: E402


def _line(line):
    if not line.strip():
        return None
    return json.dumps(map_work.score(json.loads(line)), allow_nan=False)


def mp_imap(path, out, n):
    with open(path, "rb") as f, open(out, "w") as o, multiprocessing.Pool(n) as pool:
        for r in pool.imap(_line, f, chunksize=256):
            if r is not None:
                o.write(r + "\n")


def main():
    if sys.argv[1:2] == ["--mp-imap"]:  # one contender, in its own process
        return mp_imap(sys.argv[3], sys.argv[4], int(sys.argv[2]))
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=200000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--isola", default=None, help="the isola command (default: on PATH, "
                    "or $ISOLA_BUILD_DIR/cli/isola)")
    ap.add_argument("--quick", action="store_true", help="20,000 lines, 1 repeat")
    ap.add_argument("--json", action="store_true", help="the times as JSON (bench/plot.py)")
    a = ap.parse_args()
    if a.quick:
        a.lines, a.repeat = 20000, 1
    isola = a.isola or (os.path.join(os.environ["ISOLA_BUILD_DIR"], "cli", "isola")
                        if os.environ.get("ISOLA_BUILD_DIR") else shutil.which("isola"))
    if not isola or not os.path.exists(isola):
        raise SystemExit("bench_map: no isola command (give --isola PATH or ISOLA_BUILD_DIR)")
    n = os.cpu_count() or 2
    tmp = tempfile.mkdtemp(prefix="bench_map.")
    data = os.path.join(tmp, "data.jsonl")
    with open(data, "w") as f:
        for i in range(a.lines):
            f.write(json.dumps(map_work.record(i)) + "\n")
    size = os.path.getsize(data)
    py = sys.executable
    env = dict(os.environ, PYTHONPATH=HERE + os.pathsep + os.environ.get("PYTHONPATH", ""))
    q = lambda s: "'" + s.replace("'", "'\\''") + "'"  # noqa: E731
    imap = f"{q(py)} {q(os.path.abspath(__file__))} --mp-imap {n} {q(data)} OUT"
    isola_map = f"{q(isola)} map map_work:score --path {q(HERE)} --ordered"
    cases = [
        ("loop", f"{q(py)} {q(os.path.join(HERE, 'map_work.py'))} < {q(data)} > OUT"),
        ("isola -j1", f"{isola_map} -j1 --in {q(data)} --out OUT"),
        (f"isola -j{n}", f"{isola_map} -j{n} --in {q(data)} --out OUT"),
        (f"isola -j{n} pipe", f"cat {q(data)} | {isola_map} -j{n} > OUT"),
        (f"mp.imap {n}", imap),
    ]
    if shutil.which("parallel"):
        cases.append((f"parallel -j{n}", f"parallel --pipepart -a {q(data)} -j{n} -k --block 4M "
                      f"{q(py)} {q(os.path.join(HERE, 'map_work.py'))} > OUT"))
    else:
        print("bench_map: GNU parallel not found (Debian package `parallel`): not compared")
    times = {name: [] for name, _ in cases}
    reference = None
    for _ in range(a.repeat):
        for name, cmd in cases:
            out = os.path.join(tmp, "out")
            t0 = time.perf_counter()
            r = subprocess.run(cmd.replace("OUT", q(out)), shell=True, env=env,
                               stderr=subprocess.PIPE, text=True)
            times[name].append(time.perf_counter() - t0)
            if r.returncode != 0:
                raise SystemExit(f"bench_map: {name} failed ({r.returncode}): {r.stderr}")
            with open(out, "rb") as f:
                got = f.read()
            if reference is None:
                reference = got
            elif got != reference:
                raise SystemExit(f"bench_map: {name} wrote other results than the loop")
    shutil.rmtree(tmp)
    base = statistics.median(times["loop"])
    if a.json:
        print(json.dumps({"python": sys.version.split()[0], "cpus": n, "lines": a.lines,
                          "mb": round(size / 1e6, 1), "repeat": a.repeat, "times_s": times},
                         indent=1))
        return
    print(f"isola map: {a.lines} lines ({size / 1e6:.0f} MB), {n} CPUs, "
          f"median of {a.repeat} interleaved runs")
    print(f"{'contender':18} {'median s':>9} {'min-max s':>13} {'vs loop':>8}")
    for name, _ in cases:
        t = times[name]
        m = statistics.median(t)
        print(f"{name:18} {m:9.2f} {min(t):6.2f}-{max(t):<6.2f} {base / m:7.2f}x")


if __name__ == "__main__":
    main()
