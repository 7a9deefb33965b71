/* interp.h - the layout of isola_interp (internal to interp: the layers
 * above see only the handle and host.h's entry points). */
#ifndef ISOLA_INTERP_INTERP_H
#define ISOLA_INTERP_INTERP_H

#include "interp/pyerror.h"
#include "interp/host.h"
#include "isola.h"

#include <pthread.h>

struct isola_interp {
	PyThreadState *tstate; /* detached (GIL released) between calls */
	PyInterpreterState *istate;
	pthread_t thread;      /* the only thread allowed to use it */
	unsigned long thread_ident; /* the same, for PyThreadState_SetAsyncExc */
	isola__error err;      /* last Python error; type NULL if none */
};

#endif
