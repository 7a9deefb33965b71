"""The work bench/bench_packages.py times in each kind of worker: one
function per package (placement and fallbacks are per target), each
importing its package in the task (where a sub-interpreter refuses its
extension) and timing one operation on a 10-30 KB document, inside
the task (so transport is not in the figure).  Each returns
{"seconds": best time of one operation, "impl": which implementation
ran, "check": a value that must match across workers, "version"}."""
import time

BUDGET = 0.3  # s of timing per measurement, after calibration


def _time(op):
    # Best time of one op: batches of >= 20 ms, for BUDGET seconds.
    op()  # warm (and the first import's cost out of the figure)
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            op()
        dt = time.perf_counter() - t0
        if dt >= 0.02 or n >= 1 << 20:
            break
        n *= 2
    best = dt / n
    end = time.perf_counter() + BUDGET
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        for _ in range(n):
            op()
        best = min(best, (time.perf_counter() - t0) / n)
    return best


def _records(n=200):
    return [{"id": i, "name": f"item-{i}", "tags": ["alpha", "beta", "gamma"],
             "score": i * 0.5, "ok": i % 2 == 0, "note": None} for i in range(n)]


def _text(words=4000):
    base = ["héllo", "wörld", "isola", "naïve", "café", "sub", "interpreter", "42"]
    return " ".join(base[i % len(base)] + str(i % 13) for i in range(words))


def _result(seconds, impl, check, version):
    return {"seconds": seconds, "impl": impl, "check": check, "version": version}


def numpy_work():
    import numpy as np
    a = np.arange(200_000, dtype=np.float64)
    return _result(_time(lambda: float((a * a).sum())), "C", float((a * a).sum()),
                   np.__version__)


def regex_work():
    import regex
    text = _text()
    pat = regex.compile(r"\p{L}+")
    return _result(_time(lambda: pat.findall(text)), "C", len(pat.findall(text)),
                   regex.__version__)


def lxml_work():
    import lxml.etree
    doc = ("<root>" + "".join(f'<item id="{i}"><name>item-{i}</name><tags><t>a</t><t>b</t>'
                              "</tags></item>" for i in range(400)) + "</root>").encode()
    count = lambda: sum(1 for _ in lxml.etree.fromstring(doc).iter())  # noqa: E731
    return _result(_time(count), "C", count(), lxml.etree.__version__)


def orjson_work():
    import orjson
    obj = _records()
    rt = lambda: orjson.loads(orjson.dumps(obj))  # noqa: E731
    return _result(_time(rt), "C", len(rt()), orjson.__version__)


def yaml_work():
    # As code that wants libyaml writes it: CSafeLoader when the package
    # has it (yaml.__with_libyaml__), else the pure-Python SafeLoader.
    import yaml
    doc = yaml.safe_dump(_records(100))
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    impl = "libyaml (CSafeLoader)" if yaml.__with_libyaml__ else "pure Python (SafeLoader)"
    load = lambda: yaml.load(doc, Loader=loader)  # noqa: E731
    return _result(_time(load), impl, len(load()), yaml.__version__)


def msgpack_work():
    import msgpack
    obj = _records()
    rt = lambda: msgpack.unpackb(msgpack.packb(obj))  # noqa: E731
    return _result(_time(rt), msgpack.Packer.__module__, len(rt()),
                   ".".join(map(str, msgpack.version)))


def simplejson_work():
    import simplejson
    import simplejson.scanner
    obj = _records()
    rt = lambda: simplejson.loads(simplejson.dumps(obj))  # noqa: E731
    impl = ("simplejson._speedups" if simplejson.scanner.c_make_scanner is not None
            else "pure Python")
    return _result(_time(rt), impl, len(rt()), simplejson.__version__)


def rapidfuzz_work():
    import rapidfuzz
    from rapidfuzz import fuzz, process
    choices = [f"{w} {i}" for i, w in enumerate(_text(2000).split())]
    best = lambda: process.extractOne("wörld7 isola", choices, scorer=fuzz.WRatio)  # noqa: E731
    return _result(_time(best), process.extractOne.__module__, best()[0],
                   rapidfuzz.__version__)


# The table's rows, in its order: package -> its work.
WORK = {
    "numpy": numpy_work,
    "regex": regex_work,
    "lxml": lxml_work,
    "orjson": orjson_work,
    "PyYAML": yaml_work,
    "msgpack": msgpack_work,
    "simplejson": simplejson_work,
    "rapidfuzz": rapidfuzz_work,
}
