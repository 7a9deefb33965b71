"""Tasks using real packages whose C extensions refuse sub-interpreters
(test_proclane_packages.py, bench/bench_proclane.py)."""


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


if __name__ == "__main__":
    import json
    import proc_pkg_cases  # by its name: workers look targets up by module
    print(json.dumps(proc_pkg_cases.where_each_runs()))
