/* pyerror.c - turning the current Python exception into text. */
#include "interp/pyerror.h"
#include "interp/refusal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* UTF-8 copy of a str object (replacing what cannot be encoded). */
static char *str_copy(PyObject *s)
{
	if (s == NULL)
		return NULL;
	PyObject *b = PyUnicode_AsEncodedString(s, "utf-8", "backslashreplace");
	if (b == NULL) {
		PyErr_Clear();
		return NULL;
	}
	char *r = isola__strdup(PyBytes_AS_STRING(b));
	Py_DECREF(b);
	return r;
}

/* "ValueError" for builtins, "pkg.mod.Qual" otherwise. */
static char *type_name(PyObject *type)
{
	PyObject *mod = PyObject_GetAttrString(type, "__module__");
	PyObject *qual = PyObject_GetAttrString(type, "__qualname__");
	char *r = NULL;
	if (mod != NULL && qual != NULL && PyUnicode_Check(mod) &&
	    PyUnicode_Check(qual)) {
		PyObject *full = PyUnicode_CompareWithASCIIString(mod, "builtins") == 0
					 ? Py_NewRef(qual)
					 : PyUnicode_FromFormat("%U.%U", mod, qual);
		r = str_copy(full);
		Py_XDECREF(full);
	}
	Py_XDECREF(mod);
	Py_XDECREF(qual);
	PyErr_Clear();
	return r != NULL ? r : isola__strdup(((PyTypeObject *)type)->tp_name);
}

static char *format_traceback(PyObject *exc)
{
	PyObject *tb_mod = PyImport_ImportModule("traceback");
	PyObject *lines = tb_mod ? PyObject_CallMethod(tb_mod, "format_exception",
						       "O", exc)
				 : NULL;
	PyObject *empty = lines ? PyUnicode_FromString("") : NULL;
	PyObject *text = empty ? PyUnicode_Join(empty, lines) : NULL;
	char *r = str_copy(text);
	Py_XDECREF(text);
	Py_XDECREF(empty);
	Py_XDECREF(lines);
	Py_XDECREF(tb_mod);
	PyErr_Clear();
	return r;
}

int isola__error_capture(isola__error *err)
{
	ISOLA__ASSERT_GIL();
	isola__error_clear(err);
	PyObject *exc = PyErr_GetRaisedException();
	if (exc == NULL) {
		err->type = isola__strdup("SystemError");
		err->message = isola__strdup("error reported without an exception");
		return ISOLA_EPYTHON;
	}
	isola__explain_refusal(exc); /* a module refusing sub-interpreters: say what to do */
	err->type = type_name((PyObject *)Py_TYPE(exc));
	PyObject *msg = PyObject_Str(exc);
	err->message = str_copy(msg);
	Py_XDECREF(msg);
	PyErr_Clear();
	err->traceback = format_traceback(exc);
	Py_DECREF(exc);
	return ISOLA_EPYTHON;
}
