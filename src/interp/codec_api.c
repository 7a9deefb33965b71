/* codec_api.c - isola_encode / isola_decode: the codec for C callers
 * already inside an interpreter.  Python exceptions are left set (the
 * CPython convention for such callers); the status says what kind. */
#include "interp/codec.h"

int isola_encode(void *pyobj, isola_msg *out)
{
	if (pyobj == NULL || out == NULL)
		return ISOLA_EINVAL;
	isola__state *st = isola__state_current();
	if (st == NULL)
		return ISOLA_EPYTHON;
	return isola__encode(st, pyobj, &isola__codec_defaults, out);
}

int isola_decode(const isola_msg *msg, void **pyobj)
{
	if (msg == NULL || pyobj == NULL)
		return ISOLA_EINVAL;
	isola__state *st = isola__state_current();
	if (st == NULL)
		return ISOLA_EPYTHON;
	PyObject *r = isola__decode(st, msg, &isola__codec_defaults);
	if (r != NULL) {
		*pyobj = r;
		return 0;
	}
	if (PyErr_ExceptionMatches(PyExc_ValueError))
		return ISOLA_EDECODE;
	return PyErr_ExceptionMatches(PyExc_MemoryError) ? ISOLA_ENOMEM : ISOLA_EPYTHON;
}
