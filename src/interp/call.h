/*
 * call.h - calling a target in the current interpreter: the one routine
 * behind isola_interp_call, pool tasks (one call, a chunk of a map,
 * source) and actor methods.  Resolve, decode, call, encode; GIL held.
 *
 * Error convention (CPython's, with the reason as a code): 0, or a
 * negative ISOLA_E* with the Python exception still set: ENOTFOUND when
 * the target itself could not be found, EPYTHON for anything raised.
 */
#ifndef ISOLA_INTERP_CALL_H
#define ISOLA_INTERP_CALL_H

#include "interp/codec.h"
#include "interp/host.h"
#include "interp/pyerror.h"

#include <stdbool.h>

/* "pkg.mod:qual" to an object (new ref), or NULL with an error set.  In a
 * worker, "__main__:f" is the caller's script imported as __isola_main__. */
PyObject *isola__resolve_target(const char *target);

/* In a worker: import the caller's __main__ script by path as
 * "__isola_main__" (once), so that its functions can be found without
 * running its `if __name__ == "__main__":` block.  New reference.  A
 * RuntimeError instead when the caller said the script must not be
 * imported (it makes its pool outside that guard: state's main_refusal). */
PyObject *isola__import_main_script(void);

/* Set in a process worker (pymod/pyproc.c): its __main__ is the worker's
 * loop, so "__main__:f" means the caller's script there too. */
extern int isola__main_script_elsewhere;

/* The same, cached per interpreter (the state's targets dict). */
PyObject *isola__resolve_cached(isola__state *st, const char *target);

/* fn(*args) for a list, fn(**args) for a dict, fn(*l, **d) for a
 * (list, dict) tuple, fn() for NULL or None.  New reference or NULL. */
PyObject *isola__call_decoded(PyObject *fn, PyObject *args);

/* fn called with the decoded args (NULL or empty: no arguments); the
 * return value as a new reference, or NULL with an error set. */
PyObject *isola__call_msg(isola__state *st, PyObject *fn, const isola_msg *args,
			  const isola__codec_opts *o);

#endif
