/*
 * pyerror.h - where Python exceptions stop.  A Python error becomes
 * ISOLA_EPYTHON plus an isola__error record (type, message, traceback as
 * text, in raw memory, so any thread may read it later).
 */
#ifndef ISOLA_INTERP_PYERROR_H
#define ISOLA_INTERP_PYERROR_H

#include "interp/pycompat.h"

#include "isola.h"

typedef struct isola__error {
	char *type;      /* "ValueError", "mypkg.mod.MyError" */
	char *message;   /* str(exc) */
	char *traceback; /* traceback.format_exception(exc), joined */
} isola__error;

/* Take the current exception (the GIL held, PyErr_Occurred() true) into
 * err, clearing it.  Always returns ISOLA_EPYTHON; if even formatting
 * fails, err holds what could be had. */
int isola__error_capture(isola__error *err);

/* Free err's strings and make it empty. */
void isola__error_clear(isola__error *err);

/* One line: "Type: message" followed by the traceback; malloc'd (or NULL
 * on no memory). */
char *isola__error_format(const isola__error *err);

/* malloc'd copy of s (NULL stays NULL). */
char *isola__strdup(const char *s);

#endif
