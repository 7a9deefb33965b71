"""isola map against what users already have, on one generated file.

python3.14 bench/bench_map.py [--lines N] [--repeat R] [--isola PATH] [--json]
                              [--lane [--refusing-prefix DIR]]

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

--lane (issue #33): the process lane instead, on the same file, each
group checked against its first contender:
  trivial     map_work.trivial (next to no work: the command's own cost)
              with `isola map -jN` on interpreters, `isola map -jN --lane
              process`, and mp.imap N;
  numpy       map_work.np_stats (numpy, which refuses sub-interpreters):
              the one-process loop, `isola map -jN` (the default: moved to
              process workers after the first refusal), `--lane process`
              from the start, and mp.imap N.  numpy comes from
              --refusing-prefix DIR (default: build/refusing-prefix, made
              by scripts/bootstrap --with-refusing; DIR/site on PYTHONPATH,
              DIR/lib on LD_LIBRARY_PATH); without it the group is skipped,
              and said.
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


def _line(fn, line):
    if not line.strip():
        return None
    return json.dumps(getattr(map_work, fn)(json.loads(line)), allow_nan=False)


def mp_imap(path, out, n, fn="score"):
    import functools
    with open(path, "rb") as f, open(out, "w") as o, multiprocessing.Pool(n) as pool:
        for r in pool.imap(functools.partial(_line, fn), f, chunksize=256):
            if r is not None:
                o.write(r + "\n")


def main():
    if sys.argv[1:2] == ["--mp-imap"]:  # one contender, in its own process
        return mp_imap(sys.argv[3], sys.argv[4], int(sys.argv[2]), *sys.argv[5:6])
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=200000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--isola", default=None, help="the isola command (default: on PATH, "
                    "or $ISOLA_BUILD_DIR/cli/isola)")
    ap.add_argument("--quick", action="store_true", help="20,000 lines, 1 repeat")
    ap.add_argument("--json", action="store_true", help="the times as JSON (bench/plot.py)")
    ap.add_argument("--lane", action="store_true", help="the process lane (issue #33): "
                    "trivial and numpy functions, interpreters against process workers")
    ap.add_argument("--refusing-prefix", default=os.path.join(HERE, "..", "build",
                                                              "refusing-prefix"),
                    help="where numpy is (--lane; scripts/bootstrap --with-refusing)")
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
    if a.lane:
        cases = lane_cases(a, isola, n, data, py, q, env)
    else:
        cases = [
            ("loop", f"{q(py)} {q(os.path.join(HERE, 'map_work.py'))} < {q(data)} > OUT"),
            ("isola -j1", f"{isola_map} -j1 --in {q(data)} --out OUT"),
            (f"isola -j{n}", f"{isola_map} -j{n} --in {q(data)} --out OUT"),
            (f"isola -j{n} pipe", f"cat {q(data)} | {isola_map} -j{n} > OUT"),
            (f"mp.imap {n}", imap),
        ]
        if shutil.which("parallel"):
            cases.append((f"parallel -j{n}", f"parallel --pipepart -a {q(data)} -j{n} -k "
                          f"--block 4M {q(py)} {q(os.path.join(HERE, 'map_work.py'))} > OUT"))
        else:
            print("bench_map: GNU parallel not found (Debian package `parallel`): not compared")
    times = {name: [] for name, _ in cases}
    group = {name: name.split(":")[0] if a.lane else "" for name, _ in cases}
    reference = {}
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
            if group[name] not in reference:
                reference[group[name]] = got
            elif got != reference[group[name]]:
                raise SystemExit(f"bench_map: {name} wrote other results than "
                                 f"{'the loop' if not a.lane else 'the first of its group'}")
    shutil.rmtree(tmp)
    if a.json:
        print(json.dumps({"python": sys.version.split()[0], "cpus": n, "lines": a.lines,
                          "mb": round(size / 1e6, 1), "repeat": a.repeat, "times_s": times},
                         indent=1))
        return
    print(f"isola map: {a.lines} lines ({size / 1e6:.0f} MB), {n} CPUs, "
          f"median of {a.repeat} interleaved runs")
    width = max(18, *(len(name) for name, _ in cases))
    print(f"{'contender':{width}} {'median s':>9} {'min-max s':>13} "
          f"{'vs loop' if not a.lane else 'vs first':>8}")
    base = {}
    for name, _ in cases:
        t = times[name]
        m = statistics.median(t)
        b = base.setdefault(group[name], m)
        print(f"{name:{width}} {m:9.2f} {min(t):6.2f}-{max(t):<6.2f} {b / m:7.2f}x")


def lane_cases(a, isola, n, data, py, q, env):
    """--lane: (name, command) per contender, names "group: contender"."""
    me = os.path.abspath(__file__)

    def isola_map(fn):
        return (f"{q(isola)} map map_work:{fn} --path {q(HERE)} --ordered -j{n} "
                f"--in {q(data)} --out OUT")
    cases = [
        ("trivial: isola interpreters", isola_map("trivial")),
        ("trivial: isola --lane process", f"{isola_map('trivial')} --lane process"),
        (f"trivial: mp.imap {n}", f"{q(py)} {q(me)} --mp-imap {n} {q(data)} OUT trivial"),
    ]
    prefix = os.path.abspath(a.refusing_prefix)
    if not os.path.isdir(os.path.join(prefix, "site", "numpy")):
        print(f"bench_map: no numpy in {prefix}/site (scripts/bootstrap --with-refusing): "
              "the numpy group is not measured")
        return cases
    env["PYTHONPATH"] = env["PYTHONPATH"] + os.pathsep + os.path.join(prefix, "site")
    env["LD_LIBRARY_PATH"] = os.path.join(prefix, "lib")
    np_map = isola_map("np_stats")
    cases += [
        ("numpy: loop", f"{q(py)} {q(os.path.join(HERE, 'map_work.py'))} np_stats "
                        f"< {q(data)} > OUT"),
        ("numpy: isola (moved by itself)", np_map),
        ("numpy: isola --lane process", f"{np_map} --lane process"),
        (f"numpy: mp.imap {n}", f"{q(py)} {q(me)} --mp-imap {n} {q(data)} OUT np_stats"),
    ]
    return cases


if __name__ == "__main__":
    main()
