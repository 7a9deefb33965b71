"""What runs where, for real packages whose C extensions refuse
sub-interpreters, measured (issue #33; README "Process workers").

    PYTHONPATH=build/py3.14/src:build/refusing-prefix/site \
    LD_LIBRARY_PATH=build/refusing-prefix/lib python3.14 bench/bench_packages.py [--json]

(build/refusing-prefix: `scripts/bootstrap --with-refusing`; packages
missing there are left out.)  For each package, one task that imports it
and times one operation on a 10-30 KB document inside the task
(bench_packages_work.py: best of batches for 0.3 s; transport is not in
the figure):
- Pool(1, auto_place=False): what an interpreter worker does with it on
  its own: the ImportError (refused), or a run (which implementation);
- Pool(1) (the defaults): what isola does: moved to processes
  (stats()["refused"], one warning), or run in the interpreter with its
  fallback, reported (stats()["fallbacks"], one warning);
- the same task with lane="process" (the C extension in a process
  worker), and called in this process (the main interpreter) for
  reference.
Prints a Markdown table, then (--json) one JSON line with every figure.
"""
import json
import os
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_packages_work as work  # noqa: E402
import isola  # noqa: E402

HANG = 300


def available(name):
    mod = {"PyYAML": "yaml"}.get(name, name)
    try:
        __import__(mod)
        return True
    except ImportError:
        return False


def measure(name, fn):
    row = {"package": name}
    with warnings.catch_warnings(), isola.Pool(1, auto_place=False) as pool:
        warnings.simplefilter("ignore")  # the next pool's are the ones recorded
        try:
            r = pool.submit(fn).result(HANG)
            row["alone"] = {"ok": True, "impl": r["impl"]}
        except ImportError as exc:
            row["alone"] = {"ok": False, "error": f"{type(exc).__name__}: {exc}".strip(),
                            "refused": isola._subinterp_refusal(exc)}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with isola.Pool(1) as pool:
            auto = pool.submit(fn).result(HANG)
            lane = pool.apply(fn, lane="process")
            st = pool.stats()
    row["auto"] = auto
    row["process"] = lane
    row["refused"] = st["refused"]
    row["fallbacks"] = st["fallbacks"]
    row["warnings"] = [str(w.message) for w in caught if str(w.message).startswith("isola:")]
    row["main"] = fn()
    try:  # the distribution's version (Debian's), not a module's own
        import importlib.metadata
        row["version"] = importlib.metadata.version(name)
    except Exception:
        row["version"] = row["main"]["version"]
    assert auto["check"] == lane["check"] == row["main"]["check"], (name, auto, lane, row["main"])
    return row


def ms(s):
    return f"{s * 1e3:.3g} ms" if s >= 1e-3 else f"{s * 1e6:.3g} us"


def table(rows):
    out = ["| package (Debian) | in an interpreter worker | what isola does (default `Pool`) "
           "| one operation: interpreter worker / process worker / main interpreter |",
           "|---|---|---|---|"]
    for r in rows:
        name = f"{r['package']} {r['version']}"
        if r["refused"]:
            (mod, _), = list(r["refused"].items())[:1] or [("?", "")]
            what = "`ImportError` (refused: `%s`)" % (r["alone"].get("refused") or mod)
            does = f"moved to process workers, one warning naming `{mod}`"
            fig = (f"refused / {ms(r['process']['seconds'])} / {ms(r['main']['seconds'])}")
        elif r["fallbacks"]:
            mods = ", ".join(f"`{m}`" for m in r["fallbacks"])
            what = f"runs its fallback: {r['auto']['impl']} ({mods} refused, caught)"
            n = len(r["warnings"])
            does = (f"runs there; reported: `stats()['fallbacks']`, {n} warning"
                    f"{'s' if n != 1 else ''}; `place=`/`lane='process'` for the C path "
                    f"({r['process']['impl']})")
            ratio = r["auto"]["seconds"] / r["process"]["seconds"]
            fig = (f"{ms(r['auto']['seconds'])} / {ms(r['process']['seconds'])} / "
                   f"{ms(r['main']['seconds'])}: the fallback {ratio:.1f}x slower")
        else:
            what = f"runs ({r['auto']['impl']})"
            does = "stays in interpreter workers"
            fig = (f"{ms(r['auto']['seconds'])} / {ms(r['process']['seconds'])} / "
                   f"{ms(r['main']['seconds'])}")
        out.append(f"| {name} | {what} | {does} | {fig} |")
    return "\n".join(out)


def main():
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}, {time.strftime('%Y-%m-%d %H:%M')}")
    rows = []
    for name, fn in work.WORK.items():
        if not available(name):
            print(f"({name}: not importable here, left out)")
            continue
        rows.append(measure(name, fn))
    print(table(rows))
    if "--json" in sys.argv:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
