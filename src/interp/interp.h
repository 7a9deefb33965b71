/* interp.h - the layout of isola_interp (internal). */
#ifndef ISOLA_INTERP_INTERP_H
#define ISOLA_INTERP_INTERP_H

#include "interp/pyerror.h"
#include "isola.h"

#include <pthread.h>

struct isola_interp {
	PyThreadState *tstate; /* detached (GIL released) between calls */
	PyInterpreterState *istate;
	pthread_t thread;      /* the only thread allowed to use it */
	isola__error err;      /* last Python error; type NULL if none */
};

/* Attach to / detach from the interpreter's GIL on its own thread. */
void isola__interp_enter(isola_interp *in);
void isola__interp_leave(isola_interp *in);

/* "pkg.mod:qual" to an object (new ref), or NULL with an error set. */
PyObject *isola__resolve_target(const char *target);

/* fn(*args) for a list/tuple, fn(**args) for a dict, fn() for NULL. */
PyObject *isola__call_decoded(PyObject *fn, PyObject *args);

#endif
