"""A package with a silent fallback, as msgpack has (tests/python/
test_fallbacks.py): its C extension (tests/singlephase_ext.c, which
sub-interpreters refuse) when it imports, else a pure-Python stand-in.
IMPL says which one runs: "c" or "python"."""
try:
    from singlephase_ext import impl as _impl
except ImportError:  # a sub-interpreter refused it: the fallback
    IMPL = "python"
else:
    IMPL = _impl()


def double(x):
    return x * 2
