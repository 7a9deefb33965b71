"""Imports a single-phase extension at its top (process-lane tests: a
refusal under a target's import, not in its own module)."""
import singlephase_ext  # noqa: F401


def triple(x):
    return 3 * x
