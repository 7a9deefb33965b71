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
#include "interp/pyerror.h"

#include <stdbool.h>

/* "pkg.mod:qual" to an object (new ref), or NULL with an error set.  In a
 * worker, "__main__:f" is the caller's script imported as __isola_main__. */
PyObject *isola__resolve_target(const char *target);

/* In a worker: import the caller's __main__ script by path as
 * "__isola_main__" (once), so that its functions can be found without
 * running its `if __name__ == "__main__":` block.  New reference. */
PyObject *isola__import_main_script(void);

/* The same, cached per interpreter (the state's targets dict). */
PyObject *isola__resolve_cached(isola__state *st, const char *target);

/* fn(*args) for a list, fn(**args) for a dict, fn(*l, **d) for a
 * (list, dict) tuple, fn() for NULL or None.  New reference or NULL. */
PyObject *isola__call_decoded(PyObject *fn, PyObject *args);

/* fn called with the decoded args (NULL or empty: no arguments); the
 * return value as a new reference, or NULL with an error set. */
PyObject *isola__call_msg(isola__state *st, PyObject *fn, const isola_msg *args,
			  const isola__codec_opts *o);

enum isola__job_kind {
	ISOLA__JOB_CALL,   /* target(*args) */
	ISOLA__JOB_CHUNK,  /* target over argsets[0..n): the list of results */
	ISOLA__JOB_SOURCE, /* exec source in __main__; the result is None */
};

typedef struct isola__job {
	enum isola__job_kind kind;
	const char *target; /* "mod:qual", or the source */
	const isola_msg *args;    /* CALL; NULL: none */
	const isola_msg *argsets; /* CHUNK */
	size_t n;
	/* CHUNK: an Exception raised by one call becomes that slot's value
	 * (the wire's exception type) and the others still run; otherwise the
	 * chunk stops at it and *failed_at says which. */
	bool per_element;
	bool cached; /* resolve through the interpreter's cache of targets */
	const isola__codec_opts *codec;
} isola__job;

/* Run a job in the calling interpreter; result gets the encoded return
 * value.  0, or ENOTFOUND / EPYTHON with the exception set (and for a
 * chunk that stopped, *failed_at = the index of the call that raised). */
int isola__job_run(const isola__job *j, isola_msg *result, size_t *failed_at);

/* The exception that ended a task, as its outcome (clears it): the
 * status (EPYTHON; interrupt_status instead, ECANCELED or ETIMEDOUT, when
 * the exception is the isola.Cancelled that an interrupt raised, 0 if
 * none was asked for), the encoded exception in *res, the text in *err. */
int isola__outcome_capture(int interrupt_status, const isola__codec_opts *o,
			   isola_msg *res, isola__error *err);

#endif
