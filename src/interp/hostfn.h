/*
 * hostfn.h - host functions (isola_host_register): the process-wide
 * table of C functions that every interpreter isola creates can import
 * and call (hostfn.c), and the per-interpreter modules that call them
 * (hostfn_call.c).
 *
 * Invariant: the table is written only before it is sealed, under its
 * lock; isola seals it when it creates its first interpreter (the same
 * lock, so that creation sees every entry), and from then on entries are
 * read without a lock by any thread until isola_fini (no interpreter
 * left) frees them.  A call therefore takes no lock of isola's.
 */
#ifndef ISOLA_INTERP_HOSTFN_H
#define ISOLA_INTERP_HOSTFN_H

#include "interp/pycompat.h"
#include "isola.h"

typedef struct isola__hostfn {
	char module[ISOLA_HOST_NAME_MAX + 1];
	char name[ISOLA_HOST_NAME_MAX + 1];
	char qualname[2 * ISOLA_HOST_NAME_MAX + 2]; /* "module.name", for messages */
	isola_host_fn fn;
	void *ctx;
	int nargs;     /* >= 0, or ISOLA_HOST_VARARGS */
	PyMethodDef def; /* name, the call routine, METH_FASTCALL */
	struct isola__hostfn *next;
} isola__hostfn;

/* Seal the table and return its first entry (NULL: none; the list
 * never changes while an interpreter lives).  Any thread. */
const isola__hostfn *isola__hostfn_seal(void);

/* Empty and unseal the table (isola_fini, no interpreter left). */
void isola__hostfn_clear(void);

/* Put a module for every module name of the table in the calling
 * interpreter's sys.modules (seals the table).  GIL held; 0 or -1 with
 * an exception set. */
int isola__hostfn_install(void);

/* The call routine behind every host function (hostfn_call.c). */
PyObject *isola__hostfn_call(PyObject *self, PyObject *const *args, Py_ssize_t nargs);

/* Free the calling thread's cached writer and reader (isola_fini). */
void isola__hostfn_thread_cache_free(void);

#endif
