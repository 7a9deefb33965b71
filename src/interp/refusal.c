/* refusal.c - extension modules that refuse sub-interpreters (refusal.h). */
#include "interp/refusal.h"
#include "interp/host.h"
#include "interp/state.h"

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

/* Refusals recorded by every interpreter's hook so far (relaxed: a
 * hint; the pending records themselves are under their interpreter's
 * GIL, which orders them for that interpreter's worker). */
static uint64_t refusal_count;

/* The calling interpreter's state if isola is installed there, without
 * installing it; NULL (no error set) otherwise. */
static isola__state *state_if_installed(void)
{
	PyObject *d = PyInterpreterState_GetDict(PyInterpreterState_Get());
	PyObject *m = d ? PyDict_GetItemString(d, ISOLA__STATE_KEY) : NULL; /* borrowed */
	return m ? PyModule_GetState(m) : NULL;
}

/* A refusal of module name in this interpreter, not (yet) known to
 * have failed anything.  Never raises. */
static void note_refusal(PyObject *name)
{
	isola__state *st = state_if_installed();
	if (st == NULL)
		return;
	if (st->refusals == NULL && (st->refusals = PyDict_New()) == NULL) {
		PyErr_Clear();
		return;
	}
	PyObject *entry = PyDict_GetItemWithError(st->refusals, name); /* borrowed */
	if (entry != NULL) {
		PyObject *n = PyLong_FromSsize_t(PyLong_AsSsize_t(PyList_GET_ITEM(entry, 1)) + 1);
		if (n != NULL)
			PyList_SetItem(entry, 1, n); /* steals */
	} else if (!PyErr_Occurred()) {
		PyObject *where = st->refusal_where ? PyUnicode_FromString(st->refusal_where)
						    : Py_NewRef(Py_None);
		entry = where ? Py_BuildValue("[Ni]", where, 1) : NULL;
		if (entry != NULL)
			PyDict_SetItem(st->refusals, name, entry);
		Py_XDECREF(entry);
	}
	PyErr_Clear();
	__atomic_add_fetch(&refusal_count, 1, __ATOMIC_RELAXED);
}

/* A refusal that failed a task or a setup is no fallback: forget it. */
static void drop_refusal(PyObject *name)
{
	isola__state *st = state_if_installed();
	if (st != NULL && st->refusals != NULL && PyDict_DelItem(st->refusals, name) < 0)
		PyErr_Clear(); /* KeyError: it was not pending */
}

/* The interpreter's _imp.create_dynamic, wrapped: self is the original. */
static PyObject *create_dynamic_hook(PyObject *orig, PyObject *const *args, Py_ssize_t nargs)
{
	PyObject *r = PyObject_Vectorcall(orig, args, (size_t)nargs, NULL);
	if (r == NULL && PyErr_ExceptionMatches(PyExc_ImportError)) {
		PyObject *exc = PyErr_GetRaisedException();
		PyObject *name = refused_module(exc);
		if (name != NULL) {
			note_refusal(name);
			Py_DECREF(name);
		}
		PyErr_SetRaisedException(exc);
	}
	return r;
}

static PyMethodDef hook_def = {
	"create_dynamic", (PyCFunction)(void (*)(void))create_dynamic_hook, METH_FASTCALL,
	"create_dynamic(spec, file=None, /)\n--\n\nCPython's _imp.create_dynamic, wrapped by "
	"isola to record the extension modules this interpreter refuses (src/interp/refusal.h)."
};

void isola__refusal_hook_install(void)
{
	PyObject *imp = PyImport_ImportModule("_imp");
	PyObject *orig = imp ? PyObject_GetAttrString(imp, "create_dynamic") : NULL;
	PyObject *hook = orig ? PyCFunction_NewEx(&hook_def, orig, NULL) : NULL;
	if (hook != NULL)
		PyObject_SetAttrString(imp, "create_dynamic", hook);
	Py_XDECREF(hook);
	Py_XDECREF(orig);
	Py_XDECREF(imp);
	PyErr_Clear();
}

void isola__refusal_phase(const char *where)
{
	isola__state *st = state_if_installed();
	if (st != NULL)
		st->refusal_where = where;
}

bool isola__refusals_new(uint64_t *seen)
{
	uint64_t n = __atomic_load_n(&refusal_count, __ATOMIC_RELAXED);
	if (n == *seen)
		return false;
	*seen = n;
	return true;
}

void isola__refusals_take(void (*fn)(void *arg, const char *module, const char *where,
				     uint64_t times),
			  void *arg)
{
	ISOLA__ASSERT_GIL();
	isola__state *st = state_if_installed();
	PyObject *pending = st ? st->refusals : NULL;
	if (pending == NULL || PyDict_GET_SIZE(pending) == 0)
		return;
	st->refusals = NULL;
	Py_ssize_t pos = 0;
	PyObject *name, *entry;
	while (PyDict_Next(pending, &pos, &name, &entry)) {
		const char *module = PyUnicode_AsUTF8(name);
		PyObject *w = PyList_GET_ITEM(entry, 0);
		const char *where = PyUnicode_Check(w) ? PyUnicode_AsUTF8(w) : NULL;
		Py_ssize_t times = PyLong_AsSsize_t(PyList_GET_ITEM(entry, 1));
		if (module != NULL && times > 0)
			fn(arg, module, where, (uint64_t)times);
		PyErr_Clear();
	}
	Py_DECREF(pending);
}

int isola__explain_refusal(PyObject *exc)
{
	PyObject *name = isola__subinterp_refusal(exc);
	if (name == NULL)
		return 0;
	drop_refusal(name);
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
