/*
 * binding.h - what the Python binding above (src/pymod) hands the
 * runtime, so that interp never includes or calls up into it: the
 * `isola` module's init function (for CPython's inittab, before the
 * runtime starts) and how to install the module in the calling
 * interpreter (every worker's, at creation).  Bound before any
 * interpreter is made: by isola_init (src/pymod/init.c), or by the
 * module itself when Python imports it.
 */
#ifndef ISOLA_INTERP_BINDING_H
#define ISOLA_INTERP_BINDING_H

#include "interp/pycompat.h"

#include "isola.h"

typedef struct isola__binding {
	PyObject *(*module_init)(void);
	int (*module_install)(void); /* GIL held; 0 or -1 with an error set */
} isola__binding;

/* Record b (static storage; the same one every time).  Any thread. */
void isola__runtime_bind(const isola__binding *b);

/* Install the module in the calling interpreter (GIL held).  0, or -1
 * with ImportError set when nothing has been bound. */
int isola__module_install_here(void);

/* isola_init's body, once bound (runtime.c). */
int isola__runtime_start(const isola_init_options *opts);

#endif
