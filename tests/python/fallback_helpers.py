"""Targets the silent-fallback tests send to workers (test_fallbacks.py)."""


def which(x):
    # Imports a package that falls back when its extension is refused.
    import fallback_pkg
    return [fallback_pkg.IMPL, fallback_pkg.double(x)]


def which_then_fails(x):
    # The fallback ran; the task then fails for another reason.
    import fallback_pkg  # noqa: F401
    raise ValueError(f"not {x}")


def strict(x):
    # Imports the extension itself: the refusal fails the task.
    import singlephase_ext
    return [singlephase_ext.impl(), x]


def loaded():
    # Which implementation an earlier import (preload, init) chose.
    import sys
    pkg = sys.modules.get("fallback_pkg")
    return None if pkg is None else pkg.IMPL


def setup():
    # An initializer that imports the package.
    import fallback_pkg  # noqa: F401


def hook_in_place():
    # Workers' _imp.create_dynamic is isola's wrapper (src/interp/refusal.c).
    import _imp
    return _imp.create_dynamic.__self__ is not _imp
