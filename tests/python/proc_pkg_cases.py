"""Tasks using real packages whose C extensions refuse sub-interpreters
(test_proclane_packages.py): numpy, regex, lxml, orjson fail to import
in a sub-interpreter; PyYAML, msgpack, simplejson, rapidfuzz catch the
refusal and fall back to pure Python (each task says which path ran)."""


def np_stats(n):
    import numpy as np
    a = np.arange(n, dtype=np.float64)
    return [float(a.mean()), float(a.std()), int((a % 3 == 0).sum())]


def regex_words(text):
    import regex
    return regex.findall(r"\p{L}+", text)


def lxml_tags(xml):
    import lxml.etree
    return [e.tag for e in lxml.etree.fromstring(xml).iter()]


def orjson_roundtrip(obj):
    import orjson
    return orjson.loads(orjson.dumps(obj))


def parse_floats(text):
    # Pure Python: runs in an interpreter worker.
    return [float(v) for v in text.split(",")]


def np_summary(values, scale=1.0):
    import numpy as np
    a = np.asarray(values) * scale
    return [float(a.sum()), float(a.max())]


def head(values):
    return values[:2]


CASES = {
    "numpy": ("np_stats", (10,), [4.5, 2.8722813232690143, 4]),
    "regex": ("regex_words", ("héllo, wörld 42",), ["héllo", "wörld"]),
    "lxml": ("lxml_tags", ("<a><b/><c><d/></c></a>",), ["a", "b", "c", "d"]),
    "orjson": ("orjson_roundtrip", ({"k": [1, 2.5, "x", None]},), {"k": [1, 2.5, "x", None]}),
}


def where_each_runs():
    """For each case: the error in a sub-interpreter (auto_place=False),
    then the result, lane and warning with automatic placement."""
    import sys
    import warnings
    import isola
    mod = sys.modules[__name__]
    out = {}
    for name, (fn, args, want) in CASES.items():
        row = {"want": want}
        with isola.Pool(1, auto_place=False) as pool:
            try:
                row["interpreter"] = ["ok", pool.submit(getattr(mod, fn), *args).result(60)]
            except Exception as e:
                row["interpreter"] = [type(e).__name__, str(e)]
        with isola.Pool(1) as pool:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                row["result"] = pool.submit(getattr(mod, fn), *args).result(60)
            row["warnings"] = [str(w.message) for w in caught]
            st = pool.stats()
            row["placement"] = st["placement"]
            row["refused"] = st["refused"]
        out[name] = row
    return out


def yaml_load(doc):
    # As code that wants libyaml writes it: CSafeLoader when it is there.
    import yaml
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return [yaml.__with_libyaml__, loader.__name__, yaml.load(doc, Loader=loader)]


def msgpack_roundtrip(obj):
    import msgpack
    return [msgpack.Packer.__module__, msgpack.unpackb(msgpack.packb(obj))]


def simplejson_roundtrip(obj):
    import simplejson
    import simplejson.scanner
    return [simplejson.scanner.c_make_scanner is not None,
            simplejson.loads(simplejson.dumps(obj))]


def rapidfuzz_ratio(a, b):
    from rapidfuzz import fuzz
    return [fuzz.ratio.__module__, round(fuzz.ratio(a, b), 6)]


# name: (module to import, target, args, the value part of the result)
FALLBACKS = {
    "PyYAML": ("yaml", "yaml_load", ("a: [1, 2]\nb: x\n",), {"a": [1, 2], "b": "x"}),
    "msgpack": ("msgpack", "msgpack_roundtrip", ({"k": [1, 2.5, "x"]},), {"k": [1, 2.5, "x"]}),
    "simplejson": ("simplejson", "simplejson_roundtrip", ({"k": [1, 2.5, None]},),
                   {"k": [1, 2.5, None]}),
    "rapidfuzz": ("rapidfuzz", "rapidfuzz_ratio", ("isola", "isolate"), 83.333333),
}


def fallbacks_each():
    """For each package with a pure-Python fallback: the result in an
    interpreter worker (the fallback) with the pool's stats and
    warnings, then the result with lane="process" (the C extension)."""
    import importlib
    import sys
    import warnings
    import isola
    mod = sys.modules[__name__]
    out = {}
    for name, (module, fn, args, want) in FALLBACKS.items():
        try:
            importlib.import_module(module)
        except ImportError:
            out[name] = {"missing": True}
            continue
        row = {"want": want, "target": f"{__name__}:{fn}"}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with isola.Pool(1) as pool:
                row["interpreter"] = pool.submit(getattr(mod, fn), *args).result(60)
                row["process"] = pool.apply(getattr(mod, fn), args, lane="process")
                st = pool.stats()
        row["warnings"] = [str(w.message) for w in caught]
        row["fallbacks"] = st["fallbacks"]
        row["placement"] = st["placement"]
        row["refused"] = st["refused"]
        out[name] = row
    return out


def graph_rows():
    """Task graphs with numpy (issue #33 with #35): parsing in interpreter
    workers feeding numpy in process workers through Futures as arguments,
    the numpy target placed automatically (its first tasks, submitted
    before any result, are each moved with their inputs), then a chain
    interpreter -> process -> interpreter -> process."""
    import os
    import warnings
    import isola
    import proc_pkg_cases as m
    texts = [",".join(str(i * k) for i in range(1, 101)) for k in range(1, 21)]
    out = {}
    with isola.Pool(2) as pool:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            parsed = [pool.submit(m.parse_floats, t) for t in texts]
            sums = [pool.submit(m.np_summary, f, scale=pool.submit(float, "2")) for f in parsed]
            out["fan"] = [f.result(120) for f in sums]
            out["want_fan"] = [[2.0 * k * 5050, 2.0 * k * 100] for k in range(1, 21)]
            out["warnings"] = [str(w.message) for w in caught]
        # Placed now: a chain across the lanes.
        a = pool.submit(m.parse_floats, "1,2,3")
        b = pool.submit(m.np_summary, a)                  # process
        c = pool.submit(m.head, b)                        # interpreter
        d = pool.submit(m.np_summary, c, scale=pool.submit(m.head, a))  # keyword input: a list
        try:
            out["chain"] = d.result(120)
        except Exception as e:
            out["chain"] = [type(e).__name__, str(e)]
        st = pool.stats()
        out["placement"] = st["placement"]
        out["pid_ran"] = pool.submit(os.getpid).result(60) == os.getpid()
    return out


if __name__ == "__main__":
    import json
    import proc_pkg_cases  # by its name: workers look targets up by module
    rows = proc_pkg_cases.where_each_runs()
    rows["graph"] = proc_pkg_cases.graph_rows()
    print(json.dumps({"refusing": rows, "fallbacks": proc_pkg_cases.fallbacks_each()}))
