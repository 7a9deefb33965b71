"""The part of isola.dask that runs inside isola's sub-interpreters.

Kept apart from isola.dask so that a worker interpreter imports only
cloudpickle (pure Python), never distributed (whose psutil refuses
sub-interpreters).  A call arrives as cloudpickle bytes of
(function, args, kwargs) so that functions defined in a Dask client's
__main__ (shipped by value) run here too.
"""
import traceback

import cloudpickle


def run_pickled(payload):
    """Call the pickled function.  Returns ("ok", pickled result) or
    ("err", pickled exception or None, formatted traceback): an exception
    keeps its class when it pickles, else it comes back as its text."""
    try:
        fn, args, kwargs = cloudpickle.loads(payload)
    except BaseException as exc:
        text = "".join(traceback.format_exception(exc))
        return ("err", None, "isola.dask: the task could not be unpickled in an isola "
                "sub-interpreter (run it on Dask's default executor instead):\n" + text)
    try:
        result = fn(*args, **kwargs)
    except BaseException as exc:
        text = "".join(traceback.format_exception(exc))
        try:
            blob = cloudpickle.dumps(exc)
        except Exception:
            blob = None
        return ("err", blob, text)
    # cloudpickle, not isola's codec: a result may be an object of a class
    # the client shipped by value, which plain pickle cannot name.
    try:
        return ("ok", cloudpickle.dumps(result))
    except Exception as exc:
        return ("err", None, "isola.dask: the task's result could not be pickled: "
                + "".join(traceback.format_exception(exc)))


def run_node(payload, keys, *values):
    """One node of a Dask graph (isola.dask.get): payload is the pickled
    dask._task_spec node, keys its dependencies' keys and values their
    results (passed by the pool as task-graph inputs: the worker that made
    each value handed its result message on as it was)."""
    import pickle
    node = pickle.loads(payload)  # cloudpickle's output loads with pickle
    return node(dict(zip(keys, values)))
