/* refusal.c - extension modules that refuse sub-interpreters (refusal.h). */
#include "interp/refusal.h"

#include <string.h>

/* CPython 3.12-3.14 (Python/import.c): "module %s does not support
 * loading in subinterpreters", an ImportError. */
static const char refusal_tail[] = " does not support loading in subinterpreters";

/* The module named by one exception's text if it is the refusal, else
 * NULL (no error set). */
static PyObject *refused_module(PyObject *exc)
{
	if (!PyObject_TypeCheck(exc, (PyTypeObject *)PyExc_ImportError))
		return NULL;
	PyObject *args = PyObject_GetAttrString(exc, "args");
	PyObject *msg = args && PyTuple_Check(args) && PyTuple_GET_SIZE(args) >= 1
				? PyTuple_GET_ITEM(args, 0) : NULL;
	const char *s = msg && PyUnicode_Check(msg) ? PyUnicode_AsUTF8(msg) : NULL;
	PyObject *name = NULL;
	size_t n = s ? strlen(s) : 0, tail = sizeof(refusal_tail) - 1;
	if (s != NULL && strncmp(s, "module ", 7) == 0 && n > 7 + tail &&
	    strcmp(s + n - tail, refusal_tail) == 0)
		name = PyUnicode_FromStringAndSize(s + 7, (Py_ssize_t)(n - 7 - tail));
	Py_XDECREF(args);
	PyErr_Clear();
	return name;
}

PyObject *isola__subinterp_refusal(PyObject *exc)
{
	/* Follow the chain a few links (a package re-raising it, once or
	 * twice); a cycle ends at the bound. */
	for (int i = 0; exc != NULL && i < 8; i++) {
		PyObject *name = refused_module(exc);
		if (name != NULL)
			return name;
		PyObject *next = PyException_GetCause(exc);
		if (next == NULL)
			next = PyException_GetContext(exc);
		Py_XDECREF(next); /* borrowed from here on: exc's chain holds it */
		exc = next;
	}
	return NULL;
}

int isola__explain_refusal(PyObject *exc)
{
	PyObject *name = isola__subinterp_refusal(exc);
	if (name == NULL)
		return 0;
	PyObject *note = PyUnicode_FromFormat(ISOLA__REFUSAL_NOTE, name);
	Py_DECREF(name);
	if (note == NULL) {
		PyErr_Clear();
		return 0;
	}
	PyObject *notes = PyObject_GetAttrString(exc, "__notes__");
	PyErr_Clear();
	int have = notes != NULL && PySequence_Contains(notes, note) == 1;
	PyErr_Clear();
	Py_XDECREF(notes);
	if (!have) {
		PyObject *r = PyObject_CallMethod(exc, "add_note", "O", note);
		Py_XDECREF(r);
		PyErr_Clear();
	}
	Py_DECREF(note);
	return 1;
}
