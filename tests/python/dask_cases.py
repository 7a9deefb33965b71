"""The Dask scenarios of test_dask.py, each run as `python dask_cases.py
CASE` in a subprocess with a hard timeout; prints one JSON line of
findings for the test to check."""
import json
import os
import sys
import time


def interp_id():
    try:
        import _interpreters as m
    except ImportError:
        import _xxsubinterpreters as m
    cur = m.get_current()
    return int(cur[0] if isinstance(cur, tuple) else cur)


def where(x):
    return [interp_id(), os.getpid(), x * x]


def square(x):
    return x * x


class TaskError(Exception):
    pass


def fails(x):
    raise TaskError(f"bad {x}")


def spin(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return seconds


def uses_psutil(x):
    import psutil  # refuses sub-interpreters
    return psutil.cpu_count()


def returns_lock(x):
    import threading
    return threading.Lock()


def error_of(f):
    try:
        f.result()
    except BaseException as exc:
        return [type(exc).__name__, str(exc) + " " + " ".join(getattr(exc, "__notes__", []))]
    return None


def cluster():
    import dask
    from distributed import Client, LocalCluster
    import isola.dask
    out = {}
    with LocalCluster(n_workers=2, threads_per_worker=2, processes=True, protocol="tcp",
                      host="127.0.0.1", dashboard_address=None) as lc, Client(lc) as cl:
        isola.dask.register(cl)
        with dask.annotate(executor="isola"):
            fs = cl.map(where, range(20))
        got = cl.gather(fs)
        out["isola_ids"] = sorted({g[0] for g in got})
        out["isola_results"] = [g[2] for g in got]
        out["threads_results"] = cl.gather(cl.map(square, range(20)))
        out["threads_ids"] = sorted({g[0] for g in cl.gather(cl.map(where, range(4), key="t"))})
        out["executors"] = sorted(cl.run(lambda dask_worker: "isola" in dask_worker.executors).values())

        with dask.annotate(executor="isola"):
            f = cl.submit(fails, 3)
        try:
            f.result()
            out["exception"] = None
        except TaskError as exc:
            out["exception"] = ["TaskError", str(exc)]
        except BaseException as exc:
            out["exception"] = [type(exc).__name__, str(exc)]

        with dask.annotate(executor="isola"):
            out["psutil"] = error_of(cl.submit(uses_psutil, 1))
            out["lock"] = error_of(cl.submit(returns_lock, 1))

        # a cancelled Dask future cancels its running isola task
        with dask.annotate(executor="isola"):
            f = cl.submit(spin, 30, pure=False)
        deadline = time.monotonic() + 10
        while not any(cl.processing().values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        t0 = time.monotonic()
        f.cancel()
        busy = None
        while time.monotonic() - t0 < 10:
            busy = sum(cl.run(lambda dask_worker: len(dask_worker.executors["isola"]._running))
                       .values())
            if busy == 0:
                break
            time.sleep(0.1)
        out["cancel_busy_after"] = busy
        out["cancel_seconds"] = round(time.monotonic() - t0, 2)

        # a worker closed with tasks in flight: every result Dask reports is right
        with dask.annotate(executor="isola"):
            fs = cl.map(spin, [0.2 + i * 1e-4 for i in range(16)], pure=False)
        deadline = time.monotonic() + 20
        while sum(f.status == "finished" for f in fs) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        victim = sorted(cl.scheduler_info()["workers"])[0]
        cl.run(lambda dask_worker: dask_worker.loop.add_callback(dask_worker.close),
               workers=[victim])
        res = cl.gather(fs, errors="skip")
        out["after_close"] = [len(res), sorted(res) == sorted(0.2 + i * 1e-4 for i in range(16))]
        out["after_close_errors"] = [f.status for f in fs if f.status != "finished"]
    return out


def preload():
    """`dask worker --preload isola.dask`, as LocalCluster's preload option."""
    import dask
    from distributed import Client, LocalCluster
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=True, protocol="tcp",
                      host="127.0.0.1", dashboard_address=None,
                      preload=["isola.dask"]) as lc, Client(lc) as cl:
        with dask.annotate(executor="isola"):
            got = cl.gather(cl.map(where, range(6)))
    return {"ids": sorted({g[0] for g in got}), "results": [g[2] for g in got]}


def local():
    import dask
    import dask.bag as db
    from dask import delayed
    import isola.dask
    out = {}
    b = db.from_sequence(range(200), npartitions=8).map(square).filter(lambda x: x % 3)
    out["bag"] = [b.sum().compute(scheduler=isola.dask.get), b.sum().compute(scheduler="sync")]
    ids = db.from_sequence(range(8), npartitions=4).map(lambda x: interp_id())
    out["bag_ids"] = sorted(set(ids.compute(scheduler=isola.dask.get)))

    @delayed
    def inc(x):
        return x + 1

    @delayed
    def add(a, b):
        return a + b
    g = add(inc(1), add(inc(2), inc(3)))
    out["delayed"] = [g.compute(scheduler=isola.dask.get), g.compute(scheduler="sync")]
    try:
        db.from_sequence([1, 2], npartitions=1).map(fails).compute(scheduler=isola.dask.get)
        out["exception"] = None
    except TaskError as exc:
        out["exception"] = ["TaskError", str(exc)]
    with dask.config.set(scheduler=isola.dask.get):
        out["config"] = dask.compute(inc(41))[0]
    # the caller's own pool, many times: it stays usable, no threads pile up
    import functools
    import threading
    with isola.Pool(2) as pool:
        get = functools.partial(isola.dask.get, pool=pool)
        before = threading.active_count()
        out["own_pool"] = [g.compute(scheduler=get) for _ in range(20)]
        out["own_pool_threads"] = threading.active_count() - before
        out["own_pool_after"] = pool.submit(abs, -3).result()
    return out


if __name__ == "__main__":
    print(json.dumps({"cluster": cluster, "local": local, "preload": preload}[sys.argv[1]]()))
    sys.stdout.flush()
