/*
 * call.c - calling a target in the current interpreter (call.h): target
 * resolution, argument conventions, the job runner and the capture of
 * the exception that ended a job.
 */
#include "interp/call.h"
#include "interp/refusal.h"
#include "common/alloc.h"

#include "channels/channel.h"

#include <stdlib.h>
#include <string.h>

PyObject *isola__import_main_script(void)
{
	PyObject *mods = PyImport_GetModuleDict();
	PyObject *have = PyDict_GetItemString(mods, "__isola_main__");
	if (have != NULL)
		return Py_NewRef(have);
	isola__state *st = isola__state_current();
	if (st == NULL)
		return NULL;
	if (st->main_refusal != NULL) {
		/* The caller's script makes its pool outside the __main__
		 * guard: importing it would run that again (front.py says why). */
		PyErr_SetObject(PyExc_RuntimeError, st->main_refusal);
		return NULL;
	}
	if (st->main_path == NULL) {
		PyErr_SetString(PyExc_ImportError,
				"a name of __main__ was sent, but this interpreter does not "
				"know the script's path (standard input, -c or an interactive "
				"session): define it in an importable module");
		return NULL;
	}
	PyObject *util = PyImport_ImportModule("importlib.util");
	PyObject *spec = util ? PyObject_CallMethod(util, "spec_from_file_location", "sO",
						    "__isola_main__", st->main_path)
			      : NULL;
	PyObject *mod = spec ? PyObject_CallMethod(util, "module_from_spec", "O", spec) : NULL;
	PyObject *loader = spec ? PyObject_GetAttrString(spec, "loader") : NULL;
	PyObject *r = NULL;
	if (mod != NULL && loader != NULL && PyDict_SetItemString(mods, "__isola_main__", mod) == 0) {
		st->importing_main = 1;
		r = PyObject_CallMethod(loader, "exec_module", "O", mod);
		st->importing_main = 0;
		if (r == NULL)
			PyDict_DelItemString(mods, "__isola_main__");
	}
	Py_XDECREF(util);
	Py_XDECREF(spec);
	Py_XDECREF(loader);
	if (r == NULL) {
		Py_XDECREF(mod);
		return NULL;
	}
	Py_DECREF(r);
	return mod;
}

/* Resolve "pkg.mod:qual.name" to a new reference; NULL with an error. */
PyObject *isola__resolve_target(const char *target)
{
	const char *colon = strchr(target, ':');
	if (colon == NULL || colon == target || colon[1] == '\0') {
		PyErr_Format(PyExc_ValueError,
			     "bad target '%s': expected \"package.module:qualname\"", target);
		return NULL;
	}
	PyObject *modname = PyUnicode_FromStringAndSize(target, colon - target);
	PyObject *obj = NULL;
	if (modname != NULL &&
	    (PyUnicode_CompareWithASCIIString(modname, "__main__") == 0 ||
	     PyUnicode_CompareWithASCIIString(modname, "__isola_main__") == 0) &&
	    PyInterpreterState_Get() != PyInterpreterState_Main())
		obj = isola__import_main_script(); /* a worker: the caller's script */
	else if (modname != NULL)
		obj = PyImport_Import(modname);
	Py_XDECREF(modname);
	const char *p = colon + 1;
	while (obj != NULL && *p != '\0') {
		const char *dot = strchr(p, '.');
		size_t n = dot ? (size_t)(dot - p) : strlen(p);
		PyObject *name = PyUnicode_FromStringAndSize(p, (Py_ssize_t)n);
		PyObject *next = name ? PyObject_GetAttr(obj, name) : NULL;
		Py_XDECREF(name);
		Py_DECREF(obj);
		obj = next;
		p += n + (dot != NULL);
	}
	return obj;
}

/* Call fn with decoded args: a list (positional), a dict (keywords), or
 * a 2-tuple (list, dict) for both. */
PyObject *isola__call_decoded(PyObject *fn, PyObject *args)
{
	if (args == NULL || args == Py_None)
		return PyObject_CallNoArgs(fn);
	if (PyTuple_CheckExact(args) && PyTuple_GET_SIZE(args) == 2 &&
	    PyList_Check(PyTuple_GET_ITEM(args, 0)) && PyDict_Check(PyTuple_GET_ITEM(args, 1))) {
		PyObject *t = PySequence_Tuple(PyTuple_GET_ITEM(args, 0));
		PyObject *r = t ? PyObject_Call(fn, t, PyTuple_GET_ITEM(args, 1)) : NULL;
		Py_XDECREF(t);
		return r;
	}
	if (PyList_Check(args)) {
		PyObject *t = PySequence_Tuple(args);
		PyObject *r = t ? PyObject_Call(fn, t, NULL) : NULL;
		Py_XDECREF(t);
		return r;
	}
	if (PyDict_Check(args)) {
		PyObject *t = PyTuple_New(0);
		PyObject *r = t ? PyObject_Call(fn, t, args) : NULL;
		Py_XDECREF(t);
		return r;
	}
	PyErr_Format(PyExc_TypeError, "call arguments must be a list, a dict or a "
				      "(list, dict) tuple, not %s", Py_TYPE(args)->tp_name);
	return NULL;
}

PyObject *isola__resolve_cached(isola__state *st, const char *target)
{
	if (st->targets == NULL && (st->targets = PyDict_New()) == NULL)
		return NULL;
	PyObject *key = PyUnicode_FromString(target);
	if (key == NULL)
		return NULL;
	PyObject *fn = PyDict_GetItemWithError(st->targets, key); /* borrowed */
	if (fn != NULL || PyErr_Occurred()) {
		Py_DECREF(key);
		return fn != NULL ? Py_NewRef(fn) : NULL;
	}
	fn = isola__resolve_target(target);
	if (fn != NULL && PyDict_SetItem(st->targets, key, fn) < 0)
		Py_CLEAR(fn);
	Py_DECREF(key);
	return fn;
}

PyObject *isola__call_msg(isola__state *st, PyObject *fn, const isola_msg *args,
			  const isola__codec_opts *o)
{
	if (args == NULL || isola__msg_is_empty(args))
		return isola__call_decoded(fn, NULL);
	PyObject *a = isola__decode(st, args, o);
	if (a == NULL)
		return NULL;
	PyObject *r = isola__call_decoded(fn, a);
	Py_DECREF(a);
	return r;
}

/* fn over every argument set; the results as a list. */
static PyObject *call_chunk(isola__state *st, PyObject *fn, const isola__job *j,
			    size_t *failed_at)
{
	PyObject *ret = PyList_New((Py_ssize_t)j->n);
	for (size_t i = 0; ret != NULL && i < j->n; i++) {
		PyObject *r = isola__call_msg(st, fn, &j->argsets[i], j->codec);
		if (r == NULL && j->per_element && PyErr_ExceptionMatches(PyExc_Exception))
			r = PyErr_GetRaisedException(); /* this slot's outcome */
		if (r == NULL) {
			if (failed_at != NULL)
				*failed_at = i;
			Py_CLEAR(ret);
			break;
		}
		PyList_SET_ITEM(ret, (Py_ssize_t)i, r);
	}
	return ret;
}

static bool is_not_found(void)
{
	return PyErr_ExceptionMatches(PyExc_ImportError) ||
	       PyErr_ExceptionMatches(PyExc_AttributeError);
}

int isola__job_run(const isola__job *j, isola_msg *result, size_t *failed_at)
{
	ISOLA__ASSERT_GIL();
	isola__state *st = isola__state_current();
	if (st == NULL)
		return ISOLA_EPYTHON;
	PyObject *ret = NULL;
	if (j->kind == ISOLA__JOB_SOURCE) {
		PyObject *main = PyImport_AddModule("__main__"); /* borrowed */
		PyObject *g = main ? PyModule_GetDict(main) : NULL;
		ret = g ? PyRun_String(j->target, Py_file_input, g, g) : NULL;
	} else {
		PyObject *fn = j->cached ? isola__resolve_cached(st, j->target)
					 : isola__resolve_target(j->target);
		if (fn == NULL)
			return is_not_found() ? ISOLA_ENOTFOUND : ISOLA_EPYTHON;
		ret = j->kind == ISOLA__JOB_CALL ? isola__call_msg(st, fn, j->args, j->codec)
						 : call_chunk(st, fn, j, failed_at);
		Py_DECREF(fn);
	}
	if (ret == NULL)
		return ISOLA_EPYTHON;
	int r = isola__encode(st, ret, j->codec, result);
	Py_DECREF(ret);
	return r < 0 ? ISOLA_EPYTHON : 0;
}

int isola__outcome_capture(int interrupt_status, const isola__codec_opts *o,
			   isola_msg *res, isola__error *err)
{
	ISOLA__ASSERT_GIL();
	PyObject *exc = PyErr_GetRaisedException();
	isola__state *st = isola__state_current();
	int status = ISOLA_EPYTHON;
	if (st != NULL && interrupt_status != 0 && exc != NULL &&
	    PyObject_IsInstance(exc, st->Cancelled) == 1)
		status = interrupt_status;
	PyErr_Clear();
	if (exc != NULL)
		isola__explain_refusal(exc); /* before it is encoded: the note travels */
	if (st != NULL && exc != NULL && isola__encode(st, exc, o, res) < 0)
		PyErr_Clear();
	PyErr_SetRaisedException(exc);
	isola__error_capture(err);
	if (status != ISOLA_EPYTHON && (err->message == NULL || err->message[0] == '\0')) {
		/* The interrupt's own isola.Cancelled has no text: say why. */
		isola__free(err->message);
		err->message = isola__strdup(status == ISOLA_ETIMEDOUT
						     ? "the task ran past its timeout and was interrupted"
						     : "the task was cancelled while running");
	}
	return status;
}

void isola__outcome_discard(void)
{
	PyErr_Clear();
}
