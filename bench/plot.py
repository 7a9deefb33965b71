"""Draw the benchmark report's figures from the records in bench/results/
(issue 36), as SVG files beside bench/README.md (bench/figures/):

    python3 bench/plot.py [--results DIR] [--out DIR]

- pool_speedup.svg: CPU-bound speed-up against workers, isola and
  CPython's executors (the newest bench_pool record: the median of its
  runs);
- pool_throughput.svg: trivial tasks per second and one synchronous call;
- busy_latency.svg: a synchronous call's p50 and p99 with 0, 1 and 2 busy
  processes beside 2 workers, isola against InterpreterPoolExecutor and
  threads (the newest bench_busy record, .json or its text table);
- map_job.svg: the main job (bench_map: 200,000 JSON lines) against a
  single loop, multiprocessing and GNU parallel (the newest bench_map
  JSON record);
- trace_cost.svg: trace off and on (the newest bench_trace record).
Each figure names the record it was drawn from.  No dependency beyond
Python 3 (bench/svgplot.py writes the SVG).
"""
import glob
import json
import os
import re
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from svgplot import Chart  # noqa: E402


def newest(results, pattern):
    """The files of the newest record matching pattern (a record: one
    date-commit prefix, maybe several runs -1, -2)."""
    files = sorted(glob.glob(os.path.join(results, pattern)))
    if not files:
        return []
    key = lambda f: os.path.basename(f)[:18]  # noqa: E731  (YYYY-MM-DD-commit)
    prefix = max((recorded_at(f), key(f)) for f in files)[1]
    return [f for f in files if key(f) == prefix]


def recorded_at(path):
    """When a record was committed (the records of one day are named by
    commit, which does not sort by time); a new file counts as now."""
    import subprocess
    try:
        r = subprocess.run(["git", "log", "-1", "--diff-filter=A", "--format=%ct", "--",
                            os.path.basename(path)], cwd=os.path.dirname(path),
                           capture_output=True, text=True, timeout=30)
        return int(r.stdout.strip())
    except (OSError, ValueError, subprocess.SubprocessError):
        return 2 ** 62


def load_json(files):
    out = []
    for f in files:
        with open(f) as fh:
            try:
                out.append(json.load(fh))
            except json.JSONDecodeError:
                pass
    return out


def median_of(dicts, path):
    vals = []
    for d in dicts:
        v = d
        for k in path:
            v = v.get(k) if isinstance(v, dict) else None
        if v is not None:
            vals.append(v)
    return statistics.median(vals) if vals else None


def record_name(files):
    names = [os.path.basename(f) for f in files]
    return names[0] if len(names) == 1 else f"{names[0]} (+{len(names) - 1} runs)"


def pool_figures(results, out):
    files = newest(results, "*bench_pool*.json")
    runs = load_json(files)
    if not runs:
        return []
    kinds = list(runs[0]["speedup"])
    ns = sorted({int(n) for r in runs for k in kinds for n in r["speedup"][k]})
    speed = {k: {n: median_of(runs, ["speedup", k, str(n)]) for n in ns} for k in kinds}
    cores = runs[0].get("cores")
    note = f"from bench/results/{record_name(files)}; {cores} cores; dashed: ideal"
    c = Chart("CPU-bound speed-up over one worker", "speed-up (x)")
    c.lines(ns, kinds, speed, ideal=True, xlabel="workers", note=note)
    written = [write(out, "pool_speedup.svg", c.svg())]
    tput = {"tasks/s": {k: median_of(runs, ["throughput", k]) for k in kinds}}
    c = Chart("Trivial tasks: throughput (batched submit)", "tasks per second (log)", log=True)
    c.bars(kinds, ["tasks/s"], tput, note=note.replace("; dashed: ideal", ""))
    written.append(write(out, "pool_throughput.svg", c.svg()))
    return written


BUSY_HEAD = re.compile(r"== (\d+) busy processes, (\d+) workers on (\d+) cores")
BUSY_ROW = re.compile(r"^\s+(isola|interpreters|threads)\s+([\d.,]+) \([^)]*\)\s+([\d.,]+) "
                      r"\([^)]*\)\s+([\d,]+)")


def busy_from_text(path):
    """{busy: {name: (p50, p99, batched)}} for 2-worker sections of a
    bench_busy text record."""
    out, cur = {}, None
    with open(path) as f:
        for line in f:
            m = BUSY_HEAD.match(line.strip())
            if m:
                cur = int(m.group(1)) if m.group(2) == m.group(3) else None
                if cur is not None and cur in out:
                    cur = None  # the first section of each load only
                continue
            m = BUSY_ROW.match(line)
            if m and cur is not None:
                num = lambda s: float(s.replace(",", ""))  # noqa: E731
                out.setdefault(cur, {})[m.group(1)] = (num(m.group(2)), num(m.group(3)),
                                                       num(m.group(4)))
    return out


def busy_figure(results, out):
    files = newest(results, "*bench_busy*.txt")
    if not files:
        return []
    data = busy_from_text(files[0])
    if not data:
        return []
    loads = sorted(data)
    names = ["isola", "interpreters", "threads"]
    series = {}
    for name in names:
        for i, q in ((0, "p50"), (1, "p99")):
            series[f"{name} {q}"] = {f"{b} busy": data[b][name][i] for b in loads
                                     if name in data[b]}
    c = Chart("One synchronous call, idle and busy (2 workers, 2 cores)",
              "microseconds (log)", width=760, log=True)
    c.bars([f"{b} busy" for b in loads], list(series), series,
           note=f"from bench/results/{os.path.basename(files[0])}; "
                "interpreters: InterpreterPoolExecutor")
    return [write(out, "busy_latency.svg", c.svg())]


def map_figure(results, out):
    files = newest(results, "*bench_map*.json")
    runs = load_json(files)
    if not runs:
        return []
    r = runs[0]
    names = list(r["times_s"])
    med = {"seconds": {n: statistics.median(r["times_s"][n]) for n in names}}
    loop = med["seconds"]["loop"]
    c = Chart(f"The main job: {r['lines']:,} JSON lines ({r['mb']} MB), {r['cpus']} CPUs",
              "seconds (median)", width=700)
    c.bars(names, ["seconds"], med,
           note=f"from bench/results/{record_name(files)}; median of {r['repeat']}; "
                + ", ".join(f"{n} {loop / med['seconds'][n]:.2f}x" for n in names[1:]))
    return [write(out, "map_job.svg", c.svg())]


def trace_figure(results, out):
    files = newest(results, "*bench_trace*.json")
    runs = load_json(files)
    if not runs or "median" not in runs[0]:
        return []
    med = runs[0]["median"]
    modes = [m for m in ("off", "on") if m in med]
    groups = ["sync call p50", "CPU per batched task"]
    c = Chart("Trace off and on: time of a call, CPU of a task", "microseconds (median)",
              width=560)
    c.bars(groups, modes,
           {m: {"sync call p50": med[m]["sync_p50_us"],
                "CPU per batched task": med[m]["batched_cpu_us"]} for m in modes},
           note=f"from bench/results/{record_name(files)}; medians of "
                f"{runs[0].get('rounds', '?')} interleaved rounds (the p99 of a machine this "
                "busy is the scheduler's: see the record)")
    written = [write(out, "trace_cost_sync.svg", c.svg())]
    c = Chart("Trace off and on: batched trivial tasks", "tasks per second (median)", width=560)
    c.bars(["batched"], modes, {m: {"batched": med[m]["batched_per_s"]} for m in modes},
           note=f"from bench/results/{record_name(files)}")
    written.append(write(out, "trace_cost_batched.svg", c.svg()))
    return written


def write(out, name, svg):
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, name)
    with open(path, "w") as f:
        f.write(svg)
    return path


def main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(description="draw bench/results as SVG figures")
    ap.add_argument("--results", default=os.path.join(HERE, "results"))
    ap.add_argument("--out", default=os.path.join(HERE, "figures"))
    a = ap.parse_args(argv)
    written = []
    for fig in (pool_figures, busy_figure, map_figure, trace_figure):
        written += fig(a.results, a.out)
    for w in written:
        print(w)
    if not written:
        raise SystemExit("bench/plot.py: no records found in " + a.results)


if __name__ == "__main__":
    main()
