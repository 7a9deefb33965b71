/*
 * actor_host.c - actors' Python instances (host.h).  Each interpreter
 * keeps its actors in its module state (id -> instance), touched only by
 * its own worker with its GIL held; the scheduler (scheduler/actor.c)
 * keeps their slots, mailboxes and restart policy.
 */
#include "interp/call.h"

#include "interp/state.h"

#include <stdio.h>
#include <stdlib.h>

/* The pending exception as "Type: message" (clears it). */
static char *exception_text(void)
{
	isola__error e = { 0 };
	isola__error_capture(&e);
	char buf[512];
	snprintf(buf, sizeof(buf), "%s: %s", e.type ? e.type : "Exception",
		 e.message ? e.message : "");
	isola__error_clear(&e);
	return isola__strdup(buf);
}

static PyObject *actors_of(isola__state *st)
{
	ISOLA__ASSERT_GIL();
	if (st->actors == NULL)
		st->actors = PyDict_New();
	return st->actors;
}

/* id's instance (new reference), or NULL (with an error only if one
 * happened: a missing instance sets none). */
static PyObject *instance(isola__state *st, uint64_t id)
{
	PyObject *key = PyLong_FromUnsignedLongLong(id);
	PyObject *d = key ? actors_of(st) : NULL;
	PyObject *inst = d ? PyDict_GetItemWithError(d, key) : NULL; /* borrowed */
	Py_XDECREF(key);
	return Py_XNewRef(inst);
}

int isola__actor_construct(uint64_t id, const char *target, const isola_msg *args,
			   const isola__codec_opts *o, isola_msg *exc, isola__error *err)
{
	isola__state *st = isola__state_current();
	PyObject *cls = st ? isola__resolve_target(target) : NULL;
	PyObject *inst = cls ? isola__call_msg(st, cls, args, o) : NULL;
	Py_XDECREF(cls);
	PyObject *key = inst ? PyLong_FromUnsignedLongLong(id) : NULL;
	PyObject *d = key ? actors_of(st) : NULL;
	int ok = d != NULL && PyDict_SetItem(d, key, inst) == 0;
	Py_XDECREF(key);
	Py_XDECREF(inst);
	if (ok)
		return 0;
	if (!PyErr_Occurred())
		PyErr_SetString(PyExc_RuntimeError, "the actor could not be stored");
	isola__outcome_capture(0, o, exc, err);
	return ISOLA_EPYTHON;
}

void isola__actor_forget(uint64_t id)
{
	isola__state *st = isola__state_current();
	PyObject *key = st && st->actors ? PyLong_FromUnsignedLongLong(id) : NULL;
	if (key != NULL && PyDict_DelItem(st->actors, key) < 0)
		PyErr_Clear(); /* it had none */
	Py_XDECREF(key);
	if (st != NULL)
		Py_CLEAR(st->actor_raised);
	PyErr_Clear();
}

int isola__actor_call_method(uint64_t id, const char *method, const isola_msg *args,
			     const isola__codec_opts *o, isola_msg *result)
{
	isola__state *st = isola__state_current();
	PyObject *inst = st ? instance(st, id) : NULL;
	if (inst == NULL) {
		PyErr_Clear();
		return ISOLA_ENOTFOUND;
	}
	PyObject *meth = PyObject_GetAttrString(inst, method);
	Py_DECREF(inst);
	PyObject *ret = meth ? isola__call_msg(st, meth, args, o) : NULL;
	Py_XDECREF(meth);
	if (ret != NULL && (result == NULL || isola__encode(st, ret, o, result) == 0)) {
		Py_DECREF(ret);
		return 0;
	}
	Py_XDECREF(ret);
	/* Kept for the restart hook; left set for the caller's outcome. */
	PyObject *exc = PyErr_GetRaisedException();
	Py_XSETREF(st->actor_raised, Py_XNewRef(exc));
	PyErr_SetRaisedException(exc);
	return ISOLA_EPYTHON;
}

int isola__actor_restart_hook(uint64_t id, char **why)
{
	isola__state *st = isola__state_current();
	PyObject *exc = st ? st->actor_raised : NULL;
	if (st != NULL)
		st->actor_raised = NULL; /* the reference is ours now */
	PyObject *inst = st ? instance(st, id) : NULL;
	int r = 0;
	if (inst != NULL && exc != NULL && PyObject_HasAttrString(inst, "__isola_restart__")) {
		PyObject *ret = PyObject_CallMethod(inst, "__isola_restart__", "O", exc);
		if (ret == NULL) {
			*why = exception_text();
			r = ISOLA_EPYTHON;
		}
		Py_XDECREF(ret);
	}
	Py_XDECREF(inst);
	Py_XDECREF(exc);
	PyErr_Clear();
	return r;
}
