/*
 * refusal.h - the one place that tells "this ImportError is CPython
 * refusing to load an extension module in a sub-interpreter (single-phase
 * init, numpy today), and of which module", and that adds isola's
 * explanation to it.  GIL held, the exception's own interpreter.
 *
 * Users: the capture of a job's or a worker setup's error (call.c,
 * pyerror.c), isola._subinterp_refusal for the Python front, and the
 * process lane (issue #33), which will run such code in processes: the
 * advice below is then the place to name it.
 */
#ifndef ISOLA_INTERP_REFUSAL_H
#define ISOLA_INTERP_REFUSAL_H

#include "interp/pycompat.h"

/* What isola tells the user to do; %U is the module's name. */
#define ISOLA__REFUSAL_NOTE                                                              \
	"isola: the extension module %U does not support sub-interpreters, and isola's "   \
	"interpreter workers are sub-interpreters, so it cannot be imported there; an "     \
	"isola.Pool runs such tasks in its process workers (the default: auto_place=True, " \
	"processes not 0; or place=/lane=), else use it in the main interpreter or in a "   \
	"separate process (multiprocessing, concurrent.futures.ProcessPoolExecutor)"

/* If exc, or an exception in its __cause__ / __context__ chain (numpy
 * re-raises CPython's refusal as its own ImportError), is that refusal:
 * the refused module's name, a new reference.  Else NULL, with no error
 * set (never raises). */
PyObject *isola__subinterp_refusal(PyObject *exc);

/* If exc is such a refusal: add ISOLA__REFUSAL_NOTE to its __notes__
 * (once; its class and text stay as they are) and return 1; else 0.
 * Called for an exception that ends a task or a setup: the refusal made
 * it fail, so it is not a silent fallback, and this interpreter's
 * pending record of that module (below) is dropped.  Never raises. */
int isola__explain_refusal(PyObject *exc);

/*
 * Silent fallbacks (issue #33): a package that catches the refusal of
 * its extension and goes on without it (PyYAML, msgpack, simplejson,
 * rapidfuzz: a slower pure-Python path).  Nothing fails, so the refusal
 * is seen where it happens: isola__refusal_hook_install wraps the
 * interpreter's own _imp.create_dynamic (the call every extension import
 * goes through; _imp is a per-interpreter module, so no other
 * interpreter is touched) with a C function that, when CPython refuses,
 * records the module in this interpreter's pending refusals and bumps a
 * process-wide count.  An import that loads, and a task that imports
 * nothing, cost nothing more.  The pool's worker takes the pending ones
 * after each task (host.h: isola__refusals_new, isola__refusals_take).
 */

/* In a new worker interpreter (GIL held), before its preloads.  Never
 * fails (an _imp without create_dynamic is left as it is). */
void isola__refusal_hook_install(void);

/* What the interpreter does now, for refusals recorded meanwhile:
 * "preload", "init", or NULL (a task: its worker names it).  GIL held;
 * a static string. */
void isola__refusal_phase(const char *where);

#endif
