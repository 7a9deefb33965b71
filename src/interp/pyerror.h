/*
 * pyerror.h - where Python exceptions stop.  A Python error becomes
 * ISOLA_EPYTHON plus an isola__error record (type, message, traceback as
 * text, in raw memory, so any thread may read it later).
 */
#ifndef ISOLA_INTERP_PYERROR_H
#define ISOLA_INTERP_PYERROR_H

#include "interp/pycompat.h"

#include "isola.h"

#include "common/errinfo.h" /* the record, its strings */

/* Take the current exception (the GIL held, PyErr_Occurred() true) into
 * err, clearing it.  Always returns ISOLA_EPYTHON; if even formatting
 * fails, err holds what could be had. */
int isola__error_capture(isola__error *err);

#endif
