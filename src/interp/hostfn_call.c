/*
 * hostfn_call.c - calling a host function from Python: the positional
 * arguments through the codec into isola values, the C function on the
 * calling thread with the GIL released, its result back through the
 * codec, its ISOLA_E* code into an exception (the mapping is in
 * include/isola.h, next to isola_host_register).
 *
 * Each thread keeps one writer and one reader for its calls (a pthread
 * key frees them when the thread ends), so a call with small arguments
 * and a small result allocates nothing in C.  They are taken only
 * between the encode of the arguments and the end of the C function,
 * where no Python code runs on this thread; a call that finds them
 * taken anyway gets fresh ones.
 */
#include "interp/hostfn.h"
#include "common/alloc.h"
#include "common/errinfo.h"

#include "channels/wait.h"
#include "interp/codec.h"
#include "values/values.h"

#include <pthread.h>
#include <stdarg.h>
#include <string.h>

struct isola_host_call {
	int code;      /* set by isola_host_error, else 0 */
	char *message; /* malloc'd, or NULL */
};

/* One of the ISOLA_E* codes (negative, named). */
static int known_code(int code)
{
	return code < 0 && strcmp(isola_err_name(code), "ISOLA_UNKNOWN") != 0;
}

int isola_host_error(isola_host_call *call, int code, const char *message)
{
	if (call == NULL || !known_code(code))
		return ISOLA_EINVAL;
	isola__free(call->message);
	call->message = message ? isola__strdup(message) : NULL;
	call->code = code;
	return code;
}

int isola_host_interrupted(isola_host_call *call, int *yes)
{
	if (call == NULL || yes == NULL)
		return ISOLA_EINVAL;
	/* The worker's abort word: set (with release) by the watchdog once
	 * it decided to interrupt this thread's task; read with acquire. */
	*yes = isola__wait_aborted() ? 1 : 0;
	return 0;
}

/* ---- the thread's writer and reader --------------------------------------- */

typedef struct cache {
	isola_writer *w;
	isola_reader *r;
	int busy; /* a call of this thread is using them */
} cache;

static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

static void cache_free(void *p)
{
	cache *c = p;
	if (c == NULL)
		return;
	isola_writer_destroy(c->w);
	isola_reader_destroy(c->r);
	isola__free(c);
}

static void cache_key_make(void)
{
	pthread_key_create(&cache_key, cache_free);
}

/* A writer and reader for one call: the thread's (c->busy set), or new
 * ones (c->busy clear: the caller frees c) when those are in use.  The
 * reader is made on first use (reader_for).  NULL: no memory. */
static cache *cache_take(void)
{
	pthread_once(&cache_once, cache_key_make);
	cache *c = pthread_getspecific(cache_key);
	if (c != NULL && !c->busy) {
		c->busy = 1;
		return c;
	}
	int own = c == NULL;
	c = isola__calloc(1, sizeof(*c));
	if (c == NULL || isola_writer_create(&c->w) != 0) {
		isola__free(c);
		return NULL;
	}
	if (own && pthread_setspecific(cache_key, c) == 0)
		c->busy = 1;
	return c;
}

static void cache_give(cache *c)
{
	if (c->busy)
		c->busy = 0;
	else
		cache_free(c);
}

void isola__hostfn_thread_cache_free(void)
{
	pthread_once(&cache_once, cache_key_make);
	cache *c = pthread_getspecific(cache_key);
	if (c != NULL && !c->busy) {
		pthread_setspecific(cache_key, NULL);
		cache_free(c);
	}
}

/* Read msg with c's reader (made on first use). */
static int reader_for(cache *c, const isola_msg *msg, const isola_value **root)
{
	if (c->r == NULL)
		return isola_reader_create(msg, &c->r, root);
	return isola__reader_reload(c->r, msg, root);
}

/* ---- errors ---------------------------------------------------------------- */

/* The exception class of a code a host function returned. */
static PyObject *exc_class(int code)
{
	switch (code) {
	case ISOLA_EINVAL:
	case ISOLA_EDECODE:
	case ISOLA_ETOOBIG:
		return PyExc_ValueError;
	case ISOLA_ETYPE:
		return PyExc_TypeError;
	case ISOLA_ENOTFOUND:
		return PyExc_LookupError;
	case ISOLA_ENOMEM:
		return PyExc_MemoryError;
	case ISOLA_ETIMEDOUT:
	case ISOLA_EAGAIN:
		return PyExc_TimeoutError;
	case ISOLA_EINTR:
		return PyExc_InterruptedError;
	case ISOLA_ESYS:
		return PyExc_OSError;
	case ISOLA_ELIMIT:
		return PyExc_OverflowError;
	default:
		return PyExc_RuntimeError;
	}
}

/* Raise cls(message) with .isola_error = the code's name; NULL. */
static PyObject *raise_coded(PyObject *cls, int code, const char *message)
{
	PyObject *exc = PyObject_CallFunction(cls, "s", message);
	if (exc == NULL)
		return NULL;
	PyObject *name = PyUnicode_FromString(isola_err_name(code));
	if (name == NULL || PyObject_SetAttrString(exc, "isola_error", name) < 0) {
		Py_XDECREF(name);
		Py_DECREF(exc);
		return NULL;
	}
	Py_DECREF(name);
	PyErr_SetRaisedException(exc);
	return NULL;
}

/* The outcome of a call that returned code != 0. */
static PyObject *raise_failure(const isola__hostfn *h, int code, const isola_host_call *call)
{
	if (!known_code(code))
		return PyErr_Format(PyExc_SystemError,
				    "host function %s returned %d, which is not an ISOLA_E* code",
				    h->qualname, code);
	const char *msg = call->message != NULL && call->code == code ? call->message
								       : isola_strerror(code);
	if (code == ISOLA_ECANCELED && isola__wait_aborted()) {
		/* The task was interrupted meanwhile: Cancelled now, as an
		 * interrupted isola wait raises it, and not a second time from
		 * the asynchronous one the watchdog also posted. */
		isola__state *st = isola__state_current();
		if (st == NULL)
			return NULL;
		PyThreadState_SetAsyncExc(PyThread_get_thread_ident(), NULL);
		PyErr_SetString(st->Cancelled, msg);
		return NULL;
	}
	return raise_coded(exc_class(code), code, msg);
}

/* ---- the call -------------------------------------------------------------- */

/* The result in c's writer as a Python object (the writer is empty after). */
static PyObject *take_result(const isola__hostfn *h, isola__state *st, cache *c)
{
	isola_msg out;
	switch (isola__writer_state(c->w)) {
	case ISOLA__WRITER_EMPTY:
		Py_RETURN_NONE;
	case ISOLA__WRITER_DONE:
		if (isola_writer_finish(c->w, &out) != 0) {
			isola__writer_reset(c->w);
			return PyErr_NoMemory();
		}
		break;
	case ISOLA__WRITER_OPEN:
		isola__writer_reset(c->w);
		return PyErr_Format(PyExc_SystemError,
				    "host function %s left its result incomplete (a list, "
				    "map or tuple short of items)", h->qualname);
	case ISOLA__WRITER_OVERFULL:
		isola__writer_reset(c->w);
		return PyErr_Format(PyExc_SystemError,
				    "host function %s wrote more than one value into its "
				    "result", h->qualname);
	default: /* FAILED */
		isola__writer_reset(c->w);
		return PyErr_NoMemory();
	}
	PyObject *r = isola__decode(st, &out, &isola__codec_defaults);
	isola_msg_clear(&out);
	return r;
}

PyObject *isola__hostfn_call(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
	const isola__hostfn *h = PyCapsule_GetPointer(self, NULL);
	if (h == NULL)
		return NULL;
	if (h->nargs != ISOLA_HOST_VARARGS && nargs != h->nargs)
		return PyErr_Format(PyExc_TypeError, "%s() takes %d positional argument%s "
				    "(%zd given)", h->qualname, h->nargs,
				    h->nargs == 1 ? "" : "s", nargs);
	isola__state *st = isola__state_current();
	if (st == NULL)
		return NULL;
	isola_msg in;
	int r = isola__encode_items(st, args, (size_t)nargs, &isola__codec_defaults, &in);
	if (r != 0)
		return NULL; /* the codec's exception names the argument */
	cache *c = cache_take();
	if (c == NULL) {
		isola_msg_clear(&in);
		return PyErr_NoMemory();
	}
	const isola_value *root;
	r = reader_for(c, &in, &root);
	if (r != 0) {
		cache_give(c);
		isola_msg_clear(&in);
		return r == ISOLA_ENOMEM ? PyErr_NoMemory()
					 : PyErr_Format(PyExc_SystemError, "%s: arguments "
							"unreadable (%s)", h->qualname,
							isola_err_name(r));
	}
	isola_host_call call = { 0 };
	/* The GIL is released for the call: it may block (I/O, the host's
	 * locks) without stopping this interpreter's other threads or the
	 * visit that interrupts a cancelled task. */
	PyThreadState *ts = PyEval_SaveThread();
	r = h->fn(h->ctx, root->as.seq.items, root->as.seq.n, c->w, &call);
	PyEval_RestoreThread(ts);
	PyObject *result;
	if (r != 0) {
		isola__writer_reset(c->w);
		result = raise_failure(h, r, &call);
	} else {
		result = take_result(h, st, c);
	}
	cache_give(c);
	isola__free(call.message);
	isola_msg_clear(&in);
	return result;
}
