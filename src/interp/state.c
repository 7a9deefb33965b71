/*
 * state.c - the isola module's per-interpreter state as interp sees it:
 * finding it (installing the module through the binding when needed),
 * the one mapping of ISOLA_E* codes to Python exceptions, and the
 * Channel and Buffer objects the codec makes.  The module itself (its
 * types' methods, its functions) is src/pymod's.
 */
#include "interp/state.h"

#include "channels/blob.h"
#include "channels/channel.h"
#include "interp/binding.h"

isola__state *isola__state_current(void)
{
	PyObject *d = PyInterpreterState_GetDict(PyInterpreterState_Get());
	if (d == NULL) {
		PyErr_SetString(PyExc_RuntimeError, "no interpreter dict");
		return NULL;
	}
	PyObject *m = PyDict_GetItemString(d, ISOLA__STATE_KEY); /* borrowed */
	if (m == NULL) {
		if (isola__module_install_here() < 0)
			return NULL;
		m = PyDict_GetItemString(d, ISOLA__STATE_KEY);
		if (m == NULL) {
			PyErr_SetString(PyExc_RuntimeError, "isola module state missing");
			return NULL;
		}
	}
	return PyModule_GetState(m);
}

PyObject *isola__raise(isola__state *st, int code, enum isola__raise_ctx ctx, const char *what)
{
	switch (code) {
	case ISOLA_ECLOSED:
		if (ctx == ISOLA__FOR_POOL)
			PyErr_Format(PyExc_RuntimeError, "cannot %s after the pool shut down",
				     what ? what : "do that");
		else if (ctx == ISOLA__FOR_ACTOR)
			PyErr_SetString(st->ChannelClosed, "the actor is dead (stopped or killed)");
		else
			PyErr_SetString(st->ChannelClosed, "channel is closed");
		break;
	case ISOLA_EAGAIN:
		if (ctx == ISOLA__FOR_SEND)
			PyErr_SetString(st->ChannelFull, "channel is full");
		else if (ctx == ISOLA__FOR_RECV)
			PyErr_SetString(st->ChannelEmpty, "channel is empty");
		else
			PyErr_Format(PyExc_TimeoutError, "%s timed out", what ? what : "wait");
		break;
	case ISOLA_ETIMEDOUT:
		PyErr_Format(PyExc_TimeoutError, "%s timed out", what ? what : "wait");
		break;
	case ISOLA_ENOMEM:
		PyErr_NoMemory();
		break;
	case ISOLA_EINVAL:
		PyErr_Format(PyExc_ValueError, "%s: %s", what ? what : "isola", isola_strerror(code));
		break;
	default:
		PyErr_Format(PyExc_RuntimeError, "%s: %s (%s)", what ? what : "isola",
			     isola_strerror(code), isola_err_name(code));
	}
	return NULL;
}

PyObject *isola__channel_wrap(isola__state *st, isola_channel *ch)
{
	isola__channel_obj *c = PyObject_New(isola__channel_obj, st->channel_type);
	if (c == NULL)
		return NULL;
	isola_channel_retain(ch);
	c->ch = ch;
	return (PyObject *)c;
}

PyObject *isola__buffer_wrap(isola__state *st, isola_blob *blob)
{
	isola__buffer_obj *b = PyObject_New(isola__buffer_obj, st->buffer_type);
	if (b == NULL)
		return NULL;
	isola_blob_retain(blob);
	b->blob = blob;
	size_t len;
	isola_blob_data(blob, &b->data, &len);
	b->len = (Py_ssize_t)len;
	return (PyObject *)b;
}

