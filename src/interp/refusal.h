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
 * Never raises. */
int isola__explain_refusal(PyObject *exc);

#endif
