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

int isola__main_script_elsewhere;

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
	    (PyInterpreterState_Get() != PyInterpreterState_Main() || isola__main_script_elsewhere))
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

/* ---- task graphs: a call whose arguments include inputs ------------ */

static void inputs_used(const isola__job *j)
{
	if (j->inputs_used != NULL)
		j->inputs_used(j->inputs_arg);
}

/* The exception an input ended with: its own (decoded), else one made
 * from its status and text.  New reference, or NULL with an error set. */
static PyObject *input_exception(isola__state *st, const isola__job *j, const isola__job_input *in)
{
	if (in->status != ISOLA_ETIMEDOUT && in->status != ISOLA_ECANCELED && in->value != NULL &&
	    !isola__msg_is_empty(in->value)) {
		PyObject *e = isola__decode(st, in->value, j->codec);
		if (e != NULL && PyExceptionInstance_Check(e))
			return e;
		Py_XDECREF(e);
		PyErr_Clear();
	}
	const char *why = in->error_message ? in->error_message : "";
	if (in->status == ISOLA_ETIMEDOUT)
		return PyObject_CallFunction(PyExc_TimeoutError, "s", why[0] ? why : "timed out");
	if (in->status == ISOLA_ECANCELED) {
		PyObject *cf = PyImport_ImportModule("concurrent.futures");
		PyObject *cls = cf ? PyObject_GetAttrString(cf, "CancelledError") : NULL;
		PyObject *e = cls ? PyObject_CallFunction(cls, "s", why[0] ? why : "cancelled") : NULL;
		Py_XDECREF(cf);
		Py_XDECREF(cls);
		return e;
	}
	PyObject *text = PyUnicode_FromFormat("%s%s%s", in->error_type ? in->error_type : "error",
					      why[0] ? ": " : "", why);
	return text ? PyObject_CallFunction(PyExc_RuntimeError, "N", text) : NULL;
}

/* Raise isola.InputFailed for input i, from its exception.  NULL. */
static PyObject *raise_input_failed(isola__state *st, const isola__job *j, size_t i)
{
	const isola__job_input *in = &j->inputs[i];
	PyObject *cause = input_exception(st, j, in);
	if (cause == NULL)
		return NULL;
	PyObject *what = in->keyword ? PyUnicode_FromFormat("keyword argument '%s'", in->keyword)
				     : PyUnicode_FromFormat("positional argument %d", in->position);
	PyObject *text = what ? PyObject_Str(cause) : NULL;
	PyObject *exc = NULL;
	if (text != NULL)
		exc = PyObject_CallFunction(st->InputFailed, "N",
					    PyUnicode_FromFormat("input %U of %s failed: %s: %U", what,
								 j->target, Py_TYPE(cause)->tp_name,
								 text));
	if (exc != NULL) {
		PyObject *key = in->keyword ? PyUnicode_FromString(in->keyword)
					    : PyLong_FromLong(in->position);
		if (key == NULL || PyObject_SetAttrString(exc, "input", key) < 0)
			Py_CLEAR(exc);
		Py_XDECREF(key);
	}
	Py_XDECREF(what);
	Py_XDECREF(text);
	if (exc == NULL) {
		Py_DECREF(cause);
		return NULL;
	}
	PyException_SetCause(exc, cause); /* steals */
	PyErr_SetRaisedException(exc);
	return NULL;
}

/* Decoded args as a (list, dict) pair of new references. */
static int split_args(isola__state *st, const isola__job *j, PyObject **pos, PyObject **kw)
{
	PyObject *a = NULL;
	if (j->args != NULL && !isola__msg_is_empty(j->args) &&
	    (a = isola__decode(st, j->args, j->codec)) == NULL)
		return -1;
	PyObject *p0 = NULL, *k0 = NULL;
	if (a == NULL || a == Py_None) {
	} else if (PyTuple_CheckExact(a) && PyTuple_GET_SIZE(a) == 2 &&
		   PyList_Check(PyTuple_GET_ITEM(a, 0)) && PyDict_Check(PyTuple_GET_ITEM(a, 1))) {
		p0 = PyTuple_GET_ITEM(a, 0);
		k0 = PyTuple_GET_ITEM(a, 1);
	} else if (PyList_Check(a)) {
		p0 = a;
	} else if (PyDict_Check(a)) {
		k0 = a;
	} else {
		PyErr_Format(PyExc_TypeError, "call arguments must be a list, a dict or a "
					      "(list, dict) tuple, not %s", Py_TYPE(a)->tp_name);
		Py_DECREF(a);
		return -1;
	}
	*pos = p0 ? PySequence_List(p0) : PyList_New(0);
	*kw = k0 ? PyDict_Copy(k0) : PyDict_New();
	Py_XDECREF(a);
	if (*pos == NULL || *kw == NULL) {
		Py_CLEAR(*pos);
		Py_CLEAR(*kw);
		return -1;
	}
	return 0;
}

static PyObject *call_with_inputs(isola__state *st, PyObject *fn, const isola__job *j)
{
	for (size_t i = 0; i < j->n_inputs; i++)
		if (j->inputs[i].status != 0) {
			raise_input_failed(st, j, i);
			inputs_used(j);
			return NULL;
		}
	PyObject *pos, *kw;
	if (split_args(st, j, &pos, &kw) < 0) {
		inputs_used(j);
		return NULL;
	}
	/* Positional inputs in ascending position (n_inputs <= 255: a
	 * selection of the next smallest each time is enough). */
	int last = -1;
	bool ok = true;
	for (size_t i = 0; ok && i < j->n_inputs; i++) {
		const isola__job_input *in = &j->inputs[i];
		if (in->keyword == NULL)
			continue;
		PyObject *v = isola__decode(st, in->value, j->codec);
		ok = v != NULL && PyDict_SetItemString(kw, in->keyword, v) == 0;
		Py_XDECREF(v);
	}
	for (;;) {
		const isola__job_input *next = NULL;
		for (size_t i = 0; ok && i < j->n_inputs; i++) {
			const isola__job_input *in = &j->inputs[i];
			if (in->keyword == NULL && in->position > last &&
			    (next == NULL || in->position < next->position))
				next = in;
		}
		if (!ok || next == NULL)
			break;
		last = next->position;
		PyObject *v = isola__decode(st, next->value, j->codec);
		Py_ssize_t at = next->position < PyList_GET_SIZE(pos) ? next->position
								     : PyList_GET_SIZE(pos);
		ok = v != NULL && PyList_Insert(pos, at, v) == 0;
		Py_XDECREF(v);
	}
	inputs_used(j);
	PyObject *r = NULL;
	if (ok) {
		PyObject *t = PyList_AsTuple(pos);
		r = t ? PyObject_Call(fn, t, PyDict_GET_SIZE(kw) ? kw : NULL) : NULL;
		Py_XDECREF(t);
	}
	Py_DECREF(pos);
	Py_DECREF(kw);
	return r;
}

/* fn over every argument set; the results as a list. */
static PyObject *call_chunk(isola__state *st, PyObject *fn, const isola__job *j,
			    size_t *failed_at)
{
	PyObject *ret = PyList_New((Py_ssize_t)j->n);
	for (size_t i = 0; ret != NULL && i < j->n; i++) {
		PyObject *r = isola__call_msg(st, fn, &j->argsets[i], j->codec);
		if (r == NULL && j->per_element && PyErr_ExceptionMatches(PyExc_Exception)) {
			r = PyErr_GetRaisedException(); /* this slot's outcome */
			isola__explain_refusal(r); /* a refusal that failed it: no fallback */
		}
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
		if (fn == NULL) {
			inputs_used(j);
			return is_not_found() ? ISOLA_ENOTFOUND : ISOLA_EPYTHON;
		}
		ret = j->kind != ISOLA__JOB_CALL ? call_chunk(st, fn, j, failed_at)
		      : j->n_inputs > 0 ? call_with_inputs(st, fn, j)
					: isola__call_msg(st, fn, j->args, j->codec);
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
