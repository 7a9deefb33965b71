/*
 * pypool.c - isola._Pool and isola._Future: the C side of the Python
 * front (front.py builds Pool, Future, Executor and actors on them).
 *
 * Completion: a caller that waits for a result (Future.result()) waits
 * on the C future itself and completes the Python Future on its own
 * thread.  Only when something else listens (callbacks, wait(),
 * as_completed, asyncio) does the front ask for a notification
 * (_Future.notify()): then a callback on the worker thread sends the
 * future's token to the pool's completion channel (never touching the
 * caller's interpreter), and a dispatcher thread in the caller's
 * interpreter completes the Future.  A synchronous call thus costs no
 * thread hop and no GIL hand-off.
 */
#include "pymod/pychannel.h"
#include "common/alloc.h"

#include "channels/channel.h"
#include "channels/wait.h"
#include "interp/call.h"
#include "interp/codec.h"
#include "pymod/module.h"
#include "interp/pyerror.h"
#include "scheduler/future.h"
#include "scheduler/post_wait.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/*
 * A _Pool is used by the threads of one interpreter, serialised by its
 * GIL except while a call has released it.  Such a call counts itself
 * in `inside` (GIL held) for as long as it uses `pool` without the GIL;
 * shutdown(wait=True) takes `pool` away (NULL) at once, so no new call
 * starts, and whoever leaves last (inside back to 0) destroys it.  So
 * two threads shutting down at once, or one shutting down while
 * another is in run(), never free the pool under each other.
 */
typedef struct {
	PyObject_HEAD
	isola_pool *pool;     /* NULL once shut down with wait */
	isola_pool *dying;    /* taken away, destroyed when inside == 0 */
	int inside;           /* calls using the pool with the GIL released */
	isola_channel *done;  /* completion tokens */
	int allow_pickle;
	uint64_t next_token;
} pool_obj;

typedef struct {
	PyObject_HEAD
	isola_future *f;
	uint64_t token;
	int allow_pickle;
	int report;  /* a user's task (submit): report its failure if nobody can see it */
	int seen;    /* its outcome was read (the Python Future completed) */
	isola_channel *done; /* the pool's completion channel */
} cfuture_obj;

struct done_arg {
	isola_channel *ch;
	uint64_t token;
	int64_t timeout_ns; /* report_orphan: how long it may wait for room */
};

/* On the completing thread: post the token (plain msgpack uint64). */
static void post_token(isola_future *f, void *arg)
{
	(void)f;
	struct done_arg *d = arg;
	unsigned char b[9] = { 0xcf };
	for (int i = 0; i < 8; i++)
		b[1 + i] = (unsigned char)(d->token >> (56 - 8 * i));
	isola_msg m;
	isola_msg_init(&m);
	isola_msg_set_bytes(&m, b, sizeof(b));
	if (isola_channel_send(d->ch, &m, -1) != 0)
		isola_msg_clear(&m); /* closed: nobody is listening any more */
	isola_channel_release(d->ch);
	isola__free(d);
}

/*
 * A task whose Future was dropped before anyone read its outcome (`pool.
 * submit(produce, ch)` as a statement) and that failed: nobody would ever
 * see its exception, and a caller waiting on a channel that task was to
 * fill would wait in silence (issue #31.1).  So its failure is posted to
 * the completion channel as [type, message, traceback] and the front's
 * dispatcher logs it (front.py: _Completions), as an uncaught exception in
 * a thread is printed.  On the completing thread, or at once (GIL held,
 * then without waiting) if it had failed already.
 */
static void report_orphan(isola_future *f, void *arg)
{
	struct done_arg *d = arg;
	int state = 0;
	const char *type = "", *msg = "", *tb = "";
	isola_writer *w = NULL;
	isola_msg m;
	isola_msg_init(&m);
	if (isola_future_state(f, &state) == 0 && state == ISOLA_FUTURE_FAILED &&
	    isola_future_error(f, &type, &msg, &tb) == 0 && isola_writer_create(&w) == 0 &&
	    isola_write_list(w, 3) == 0 && isola_write_str(w, type, ISOLA_STRLEN) == 0 &&
	    isola_write_str(w, msg, ISOLA_STRLEN) == 0 &&
	    isola_write_str(w, tb, ISOLA_STRLEN) == 0 && isola_writer_finish(w, &m) == 0 &&
	    isola_channel_send(d->ch, &m, d->timeout_ns) != 0)
		isola_msg_clear(&m); /* closed (or full): nobody is listening any more */
	isola_writer_destroy(w);
	isola_channel_release(d->ch);
	isola__free(d);
}

/* The Python Future is gone (GIL held): if its outcome was never read,
 * report a failure (report_orphan) when, or since, the task ended. */
static void watch_orphan(cfuture_obj *c)
{
	struct done_arg *d = isola__malloc(sizeof(*d));
	if (d == NULL)
		return; /* only a report is lost */
	d->ch = c->done;
	d->token = c->token;
	d->timeout_ns = -1;
	isola_channel_retain(c->done);
	int r = isola__future_on_done_pending(c->f, report_orphan, d);
	if (r == ISOLA_ESTATE) {
		d->timeout_ns = 0; /* the GIL is held here: never wait for room */
		report_orphan(c->f, d);
	} else if (r != 0) {
		isola_channel_release(c->done);
		isola__free(d);
	}
}

static isola__state *state_of(PyObject *self)
{
	return PyType_GetModuleState(Py_TYPE(self));
}

/* ---- _Pool -------------------------------------------------------------- */

static void free_strings(const char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		isola__free((void *)v[i]);
	isola__free(v);
}

/* A sequence of str to a malloc'd array of malloc'd UTF-8 copies. */
static int strings(PyObject *seq, const char ***out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (seq == NULL || seq == Py_None)
		return 0;
	PyObject *fast = PySequence_Fast(seq, "expected a sequence of str");
	if (fast == NULL)
		return -1;
	Py_ssize_t k = PySequence_Fast_GET_SIZE(fast);
	const char **v = isola__calloc((size_t)k + 1, sizeof(char *));
	for (Py_ssize_t i = 0; v && i < k; i++) {
		PyObject *o = PySequence_Fast_GET_ITEM(fast, i);
		PyObject *s = PyOS_FSPath(o);
		const char *u = s ? PyUnicode_AsUTF8(s) : NULL;
		v[i] = u ? isola__strdup(u) : NULL;
		Py_XDECREF(s);
		if (v[i] == NULL) {
			free_strings(v, (size_t)i);
			Py_DECREF(fast);
			if (!PyErr_Occurred())
				PyErr_NoMemory();
			return -1;
		}
	}
	Py_DECREF(fast);
	if (v == NULL) {
		PyErr_NoMemory();
		return -1;
	}
	*out = v;
	*n = (size_t)k;
	return 0;
}

static int pool_init(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "workers", "path", "preload", "init", "allow_pickle",
				  "trace", "trace_events", NULL };
	int workers = 0, allow_pickle = 1;
	PyObject *path = NULL, *preload = NULL;
	const char *init = NULL, *trace = NULL;
	unsigned int trace_events = 0;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "|iOOzpzI:_Pool", kwlist, &workers, &path,
					 &preload, &init, &allow_pickle, &trace, &trace_events))
		return -1;
	pool_obj *p = (pool_obj *)self;
	isola__state *st = state_of(self);
	if (p->pool != NULL) {
		PyErr_SetString(PyExc_RuntimeError, "_Pool initialised twice");
		return -1;
	}
	if (st->importing_main) {
		PyErr_SetString(PyExc_RuntimeError,
				"isola: the main script made a Pool while a worker imported it to "
				"find a function: put the code that starts the pool under "
				"`if __name__ == \"__main__\":` (as with multiprocessing's spawn)");
		return -1;
	}
	isola_pool_options o = { .workers = workers, .no_pickle = !allow_pickle,
				 .trace = trace, .trace_events = trace_events };
	const char **paths = NULL, **mods = NULL;
	size_t npaths = 0, nmods = 0;
	if (strings(path, &paths, &npaths) < 0 || strings(preload, &mods, &nmods) < 0) {
		free_strings(paths, npaths);
		return -1;
	}
	o.setup.sys_path = paths;
	o.setup.n_sys_path = npaths;
	o.setup.preload = mods;
	o.setup.n_preload = nmods;
	o.setup.init_source = init;
	char *err = NULL;
	int r;
	isola_pool *pool = NULL;
	Py_BEGIN_ALLOW_THREADS
	r = isola_pool_create(&o, &pool, &err);
	Py_END_ALLOW_THREADS
	free_strings(paths, npaths);
	free_strings(mods, nmods);
	if (r != 0) {
		/* A worker's setup failed (preload, init, initializer):
		 * isola.BrokenPool, from the front that made this pool. */
		PyObject *broken = NULL;
		if (r == ISOLA_EPYTHON) {
			PyObject *mod = PyType_GetModule(Py_TYPE(self)); /* borrowed */
			broken = mod ? PyObject_GetAttrString(mod, "BrokenPool") : NULL;
			if (broken == NULL) {
				PyErr_Clear();
				broken = Py_NewRef(PyExc_RuntimeError);
			}
		}
		PyErr_Format(broken ? broken : PyExc_OSError, "isola: starting the pool failed: %s",
			     err ? err : isola_strerror(r));
		Py_XDECREF(broken);
		isola__free(err);
		return -1;
	}
	if (isola_channel_create(1 << 16, &p->done) != 0) {
		isola_pool_destroy(pool);
		PyErr_NoMemory();
		return -1;
	}
	p->pool = pool;
	p->allow_pickle = allow_pickle;
	return 0;
}

static void pool_dealloc(PyObject *self)
{
	pool_obj *p = (pool_obj *)self;
	PyTypeObject *tp = Py_TYPE(self);
	assert(p->inside == 0); /* a call in progress holds a reference */
	if (p->pool != NULL || p->dying != NULL) {
		isola_pool *pool = p->pool != NULL ? p->pool : p->dying;
		p->pool = p->dying = NULL;
		Py_BEGIN_ALLOW_THREADS
		isola_pool_destroy(pool);
		Py_END_ALLOW_THREADS
	}
	if (p->done != NULL) {
		isola_channel_close(p->done);
		isola_channel_release(p->done);
	}
	tp->tp_free(self);
	Py_DECREF(tp);
}

static void pool_leave(pool_obj *p);

static isola_pool *need_pool(pool_obj *p)
{
	if (p->pool == NULL)
		PyErr_SetString(PyExc_RuntimeError, "the pool is shut down");
	return p->pool;
}

static PyObject *wrap_future(pool_obj *p, isola_future *f)
{
	isola__state *st = state_of((PyObject *)p);
	cfuture_obj *c = PyObject_New(cfuture_obj, st->cfuture_type);
	if (c == NULL) {
		isola_future_cancel(f);
		isola_future_release(f);
		return NULL;
	}
	c->f = f;
	c->token = ++p->next_token;
	c->allow_pickle = p->allow_pickle;
	c->report = 0;
	c->seen = 0;
	c->done = p->done;
	isola_channel_retain(p->done);
	return (PyObject *)c;
}

/* Encode (args, kwargs) for a call: [args] alone when there are no
 * keywords, else the (list, dict) tuple. */
static int encode_call_args_refs(pool_obj *p, PyObject *args, PyObject *kwargs, int refs,
				 int proc, isola_msg *out)
{
	isola__state *st = state_of((PyObject *)p);
	isola__codec_opts o = isola__codec_defaults;
	o.allow_pickle = p->allow_pickle;
	o.allow_refs = refs;
	o.proc = proc;
	PyObject *list = PySequence_List(args);
	if (list == NULL)
		return -1;
	PyObject *payload = list;
	if (kwargs != NULL && kwargs != Py_None && PyDict_Size(kwargs) > 0)
		payload = PyTuple_Pack(2, list, kwargs);
	else
		Py_INCREF(payload);
	Py_DECREF(list);
	if (payload == NULL)
		return -1;
	int r = isola__encode(st, payload, &o, out);
	Py_DECREF(payload);
	return r < 0 ? -1 : 0;
}

static int encode_call_args(pool_obj *p, PyObject *args, PyObject *kwargs, isola_msg *out)
{
	return encode_call_args_refs(p, args, kwargs, isola__codec_defaults.allow_refs, 0, out);
}

/* For the process lane (pyproc.c): a pool's _Future for f (taken), and
 * its call arguments encoded for a process worker (blobs as references,
 * frozen values thawed, channels refused). */
PyObject *isola__pool_wrap_future(PyObject *pool, isola_future *f)
{
	return wrap_future((pool_obj *)pool, f);
}

int isola__pool_encode_proc(PyObject *pool, PyObject *args, PyObject *kwargs, isola_msg *out)
{
	return encode_call_args_refs((pool_obj *)pool, args, kwargs, 1, 1, out);
}

int isola__pool_allow_pickle(PyObject *pool)
{
	return ((pool_obj *)pool)->allow_pickle;
}

static PyObject *raise_code(pool_obj *p, int r, const char *what)
{
	return isola__raise(state_of((PyObject *)p), r, ISOLA__FOR_POOL, what);
}

/* ---- posting work without blocking the interpreter ------------------ */

enum post_kind { POST_SUBMIT, POST_SUBMIT_AFTER, POST_MAP, POST_SPAWN, POST_CALL, POST_SEND, POST_KILL };

/* One call that posts a task to the pool, with its arguments. */
struct post {
	enum post_kind kind;
	isola_pool *pool;
	const char *target; /* or the method name */
	isola_msg *args;
	int64_t task_timeout;
	isola_msg *sets; /* POST_MAP */
	size_t n, *n_chunks;
	const isola_actor_options *actor_opts;
	isola_actor actor;
	isola_actor *actor_out;
	isola_future **out;
	const isola_input *inputs; /* POST_SUBMIT_AFTER */
	size_t n_inputs;
};

static int post_once(struct post *c)
{
	switch (c->kind) {
	case POST_SUBMIT:
		return isola_pool_submit(c->pool, c->target, c->args, c->task_timeout, c->out);
	case POST_SUBMIT_AFTER:
		return isola_pool_submit_after(c->pool, c->target, c->args, c->inputs, c->n_inputs,
					       c->task_timeout, c->out);
	case POST_MAP:
		return isola_pool_map(c->pool, c->target, c->sets, c->n, c->n ? c->n : 1, c->out,
				      c->n_chunks);
	case POST_SPAWN:
		return isola_actor_spawn(c->pool, c->target, c->args, c->actor_opts, c->actor_out);
	case POST_CALL:
		return isola_actor_call(c->pool, c->actor, c->target, c->args, c->out);
	case POST_SEND:
		return isola_actor_send(c->pool, c->actor, c->target, c->args);
	case POST_KILL:
		return isola_actor_kill(c->pool, c->actor);
	}
	return ISOLA_EINVAL;
}

static int post_op(void *arg)
{
	return post_once(arg);
}

/*
 * Post with the GIL held and no waiting; if the queue is full, post again
 * with the GIL released (other threads of this interpreter, the one that
 * would drain the queue among them, keep running), waiting for room until
 * Ctrl-C or a cancel of the task this thread runs.  0, or -1 with an
 * exception set (what names the call; ctx says what ECLOSED means).
 */
static int post(pool_obj *p, struct post *c, enum isola__raise_ctx ctx, const char *what)
{
	isola__deadline now, forever;
	isola__deadline_init(&now, 0);
	struct isola__post_wait w = { &now, 0 };
	isola__post_wait = &w;
	int r = post_once(c);
	int failed = 0;
	if (r == ISOLA_EAGAIN && c->kind != POST_MAP) { /* map's chunks may be half posted */
		isola__deadline_init(&forever, -1);
		w.deadline = &forever;
		w.flags = ISOLA__WAIT_INTERRUPTIBLE;
		p->inside++; /* the pool stays while the GIL is released */
		failed = isola__wait_released(post_op, c, &r) < 0;
		pool_leave(p);
	}
	isola__post_wait = NULL;
	if (failed)
		return -1;
	if (r != 0) {
		isola__raise(state_of((PyObject *)p), r, ctx, what);
		return -1;
	}
	return 0;
}

/* inputs: a list of (_Future, position, keyword or None) into in[]
 * (borrowed futures and keywords: they live while the list does).  0 or
 * -1 with an exception set. */
static int parse_inputs(pool_obj *p, PyObject *list, isola_input *in, size_t n)
{
	isola__state *st = state_of((PyObject *)p);
	for (size_t i = 0; i < n; i++) {
		PyObject *item = PyList_GET_ITEM(list, (Py_ssize_t)i);
		PyObject *fut, *kw;
		int pos;
		if (!PyTuple_Check(item) || !PyArg_ParseTuple(item, "OiO", &fut, &pos, &kw))
			return PyErr_Occurred() ? -1 : (PyErr_SetString(PyExc_TypeError, "bad input"), -1);
		if (!PyObject_TypeCheck(fut, st->cfuture_type)) {
			PyErr_SetString(PyExc_TypeError, "an input must be a Future of an isola Pool");
			return -1;
		}
		in[i].future = ((cfuture_obj *)fut)->f;
		/* Its outcome goes to the dependent task (which fails with its
		 * error): not an orphan's to report (report_orphan). */
		((cfuture_obj *)fut)->seen = 1;
		in[i].position = pos;
		in[i].keyword = kw == Py_None ? NULL : PyUnicode_AsUTF8(kw);
		if (kw != Py_None && in[i].keyword == NULL)
			return -1;
	}
	return 0;
}

int isola__pool_parse_inputs(PyObject *pool, PyObject *list, isola_input *in, size_t n)
{
	return parse_inputs((pool_obj *)pool, list, in, n);
}

int isola__pool_accept_inputs_of(PyObject *pool, struct isola__pool_link *link)
{
	pool_obj *p = (pool_obj *)pool;
	if (need_pool(p) == NULL)
		return -1;
	int r = isola__pool_accept_link(p->pool, link);
	if (r != 0) {
		raise_code(p, r, "accept inputs");
		return -1;
	}
	return 0;
}

/* submit(target, args, kwargs, timeout[, inputs]) -> _Future; inputs
 * (task graphs): a list of (_Future, position, keyword or None). */
static PyObject *pool_submit(PyObject *self, PyObject *args)
{
	pool_obj *p = (pool_obj *)self;
	const char *target;
	PyObject *a, *kw, *timeout, *inputs = NULL;
	if (!PyArg_ParseTuple(args, "sOOO|O!:submit", &target, &a, &kw, &timeout, &PyList_Type,
			      &inputs))
		return NULL;
	int64_t t;
	if (isola__timeout_arg(timeout, &t) < 0 || need_pool(p) == NULL)
		return NULL;
	size_t n_in = inputs ? (size_t)PyList_GET_SIZE(inputs) : 0;
	if (n_in > 255) {
		PyErr_SetString(PyExc_ValueError, "a task takes at most 255 Futures as arguments");
		return NULL;
	}
	isola_input in[n_in ? n_in : 1];
	if (n_in && parse_inputs(p, inputs, in, n_in) < 0)
		return NULL;
	isola_msg m;
	if (encode_call_args(p, a, kw, &m) < 0)
		return NULL;
	isola_future *f;
	struct post c = { .kind = n_in ? POST_SUBMIT_AFTER : POST_SUBMIT, .pool = p->pool,
			  .target = target, .args = &m, .task_timeout = t > 0 ? t : 0, .out = &f,
			  .inputs = in, .n_inputs = n_in };
	if (post(p, &c, ISOLA__FOR_POOL, "submit") < 0) {
		isola_msg_clear(&m);
		return NULL;
	}
	PyObject *fut = wrap_future(p, f);
	if (fut != NULL)
		((cfuture_obj *)fut)->report = 1;
	return fut;
}

/* map_chunk(target, [args tuples...]) -> _Future of a list of results */
static PyObject *pool_map_chunk(PyObject *self, PyObject *args)
{
	pool_obj *p = (pool_obj *)self;
	const char *target;
	PyObject *items;
	if (!PyArg_ParseTuple(args, "sO:map_chunk", &target, &items))
		return NULL;
	if (need_pool(p) == NULL)
		return NULL;
	PyObject *fast = PySequence_Fast(items, "map_chunk takes a sequence");
	if (fast == NULL)
		return NULL;
	size_t n = (size_t)PySequence_Fast_GET_SIZE(fast);
	isola_msg *sets = isola__calloc(n ? n : 1, sizeof(isola_msg));
	size_t done = 0;
	int r = sets ? 0 : ISOLA_ENOMEM;
	int encode_failed = 0;
	for (; r == 0 && !encode_failed && done < n; done++)
		encode_failed = encode_call_args(p, PySequence_Fast_GET_ITEM(fast, (Py_ssize_t)done),
						 NULL, &sets[done]) < 0;
	Py_DECREF(fast);
	isola_future *f = NULL;
	size_t k = 0;
	if (r == 0 && !encode_failed) {
		r = isola_pool_map(p->pool, target, sets, n, n ? n : 1, &f, &k);
		if (r == 0 && k == 0) { /* nothing to do: an empty result */
			isola__free(sets);
			return PyList_New(0);
		}
	}
	for (size_t i = 0; i < done; i++)
		isola_msg_clear(&sets[i]);
	isola__free(sets);
	if (encode_failed)
		return NULL;
	if (r != 0)
		return raise_code(p, r, "map");
	return wrap_future(p, f);
}

/* spawn(target, args, kwargs, restart, max_restarts, window_s) -> id */
static PyObject *pool_spawn(PyObject *self, PyObject *args)
{
	pool_obj *p = (pool_obj *)self;
	const char *target;
	PyObject *a, *kw;
	int restart, max_restarts;
	double window;
	if (!PyArg_ParseTuple(args, "sOOpid:spawn", &target, &a, &kw, &restart, &max_restarts,
			      &window))
		return NULL;
	if (need_pool(p) == NULL)
		return NULL;
	isola_msg m;
	if (encode_call_args(p, a, kw, &m) < 0)
		return NULL;
	isola_actor_options o = { .restart = restart, .max_restarts = max_restarts,
				  .window_ns = (int64_t)(window * 1e9), .worker = -1 };
	isola_actor act;
	struct post c = { .kind = POST_SPAWN, .pool = p->pool, .target = target, .args = &m,
			  .actor_opts = &o, .actor_out = &act };
	if (post(p, &c, ISOLA__FOR_POOL, "spawn") < 0) {
		isola_msg_clear(&m);
		return NULL;
	}
	return PyLong_FromUnsignedLongLong(act.id);
}

/* call(id, method, args, kwargs, want_future) -> _Future or None */
static PyObject *pool_actor_call(PyObject *self, PyObject *args)
{
	pool_obj *p = (pool_obj *)self;
	unsigned long long id;
	const char *method;
	PyObject *a, *kw;
	int want;
	if (!PyArg_ParseTuple(args, "KsOOp:call", &id, &method, &a, &kw, &want))
		return NULL;
	if (need_pool(p) == NULL)
		return NULL;
	isola_msg m;
	if (encode_call_args(p, a, kw, &m) < 0)
		return NULL;
	isola_actor act = { id };
	isola_future *f = NULL;
	struct post c = { .kind = want ? POST_CALL : POST_SEND, .pool = p->pool, .target = method,
			  .args = &m, .actor = act, .out = &f };
	if (post(p, &c, ISOLA__FOR_ACTOR, "call") < 0) {
		isola_msg_clear(&m);
		return NULL;
	}
	if (!want)
		Py_RETURN_NONE;
	return wrap_future(p, f);
}

static PyObject *pool_kill(PyObject *self, PyObject *arg)
{
	pool_obj *p = (pool_obj *)self;
	unsigned long long id = PyLong_AsUnsignedLongLong(arg);
	if (PyErr_Occurred() || need_pool(p) == NULL)
		return NULL;
	isola_actor act = { id };
	struct post c = { .kind = POST_KILL, .pool = p->pool, .actor = act };
	if (post(p, &c, ISOLA__FOR_ACTOR, "kill") < 0)
		return NULL;
	Py_RETURN_NONE;
}

static PyObject *pool_actor_stats(PyObject *self, PyObject *arg)
{
	pool_obj *p = (pool_obj *)self;
	unsigned long long id = PyLong_AsUnsignedLongLong(arg);
	if (PyErr_Occurred() || need_pool(p) == NULL)
		return NULL;
	isola_actor act = { id };
	uint64_t depth = 0;
	int alive = 0;
	isola_actor_stats(p->pool, act, &depth, &alive);
	return Py_BuildValue("{s:K,s:O}", "mailbox_depth", (unsigned long long)depth, "alive",
			     alive ? Py_True : Py_False);
}

static PyObject *pool_monitor(PyObject *self, PyObject *unused)
{
	(void)unused;
	pool_obj *p = (pool_obj *)self;
	if (need_pool(p) == NULL)
		return NULL;
	isola_channel *ch;
	isola_pool_monitor(p->pool, &ch);
	PyObject *r = isola__channel_wrap(state_of(self), ch);
	isola_channel_release(ch);
	return r;
}

static PyObject *pool_done_channel(PyObject *self, PyObject *unused)
{
	(void)unused;
	pool_obj *p = (pool_obj *)self;
	return isola__channel_wrap(state_of(self), p->done);
}

static PyObject *pool_run(PyObject *self, PyObject *arg)
{
	pool_obj *p = (pool_obj *)self;
	const char *src = PyUnicode_AsUTF8(arg);
	if (src == NULL || need_pool(p) == NULL)
		return NULL;
	char *err = NULL;
	int r;
	isola_pool *pool = p->pool;
	p->inside++;
	Py_BEGIN_ALLOW_THREADS
	r = isola_pool_run(pool, src, &err);
	Py_END_ALLOW_THREADS
	pool_leave(p);
	if (r != 0) {
		PyErr_Format(PyExc_RuntimeError, "run() failed on a worker: %s",
			     err ? err : isola_strerror(r));
		isola__free(err);
		return NULL;
	}
	Py_RETURN_NONE;
}

/* Leave a GIL-released use of the pool (GIL held); the last one out
 * after shutdown(wait=True) destroys the pool and closes the completion
 * channel (every callback has run by then). */
static void pool_leave(pool_obj *p)
{
	assert(p->inside > 0);
	if (--p->inside > 0 || p->dying == NULL)
		return;
	isola_pool *pool = p->dying;
	p->dying = NULL;
	p->inside++; /* nobody else destroys it meanwhile */
	Py_BEGIN_ALLOW_THREADS
	isola_pool_destroy(pool);
	Py_END_ALLOW_THREADS
	p->inside--;
	isola_channel_close(p->done);
}

#define SHUTDOWN_SLICE_NS (20 * 1000000) /* how often a waiting shutdown runs signal handlers */

/* shutdown(how, wait, timeout=None): stop the pool (how: ISOLA_SHUTDOWN_*
 * flags); with wait, wait for the workers (at most timeout seconds), then
 * free it.  Returns True once the pool is joined, False if the timeout
 * passed first (the pool stays; a later shutdown may join it).  Safe from
 * several threads at once. */
static PyObject *pool_shutdown(PyObject *self, PyObject *args)
{
	pool_obj *p = (pool_obj *)self;
	int how, wait;
	PyObject *timeout_obj = Py_None;
	if (!PyArg_ParseTuple(args, "ip|O:shutdown", &how, &wait, &timeout_obj))
		return NULL;
	int64_t timeout_ns = -1;
	if (timeout_obj != Py_None) {
		double t = PyFloat_AsDouble(timeout_obj);
		if (t == -1.0 && PyErr_Occurred())
			return NULL;
		timeout_ns = t <= 0 ? 0 : t > 1e9 ? -1 : (int64_t)(t * 1e9);
	}
	isola_pool *pool = p->pool != NULL ? p->pool : p->dying;
	if (pool == NULL)
		Py_RETURN_TRUE;
	if (wait && p->pool != NULL) {
		p->dying = p->pool; /* no new call starts */
		p->pool = NULL;
	}
	p->inside++;
	int64_t end = timeout_ns < 0 ? -1 : isola__now_ns() + timeout_ns;
	int r;
	for (;;) {
		/* Wait in slices: Ctrl-C must reach a waiting shutdown. */
		int64_t slice = SHUTDOWN_SLICE_NS;
		if (end >= 0) {
			int64_t left = end - isola__now_ns();
			slice = left < 0 ? 0 : left < slice ? left : slice;
		}
		Py_BEGIN_ALLOW_THREADS
		r = isola_pool_shutdown(pool, how, wait ? slice : 0);
		Py_END_ALLOW_THREADS
		if (!wait || r != ISOLA_ETIMEDOUT)
			break;
		if (PyErr_CheckSignals() < 0) {
			/* The user asked to stop, not to wait: cancel what is
			 * queued, interrupt what runs, and leave the join (and
			 * the destruction) to a later shutdown or to exit. */
			isola_pool_shutdown(pool, ISOLA_SHUTDOWN_CANCEL | ISOLA_SHUTDOWN_INTERRUPT, 0);
			p->inside--;
			return NULL;
		}
		if (end >= 0 && isola__now_ns() >= end) {
			p->inside--; /* not joined: stays dying, joined later */
			Py_RETURN_FALSE;
		}
	}
	pool_leave(p);
	if (r != 0 && r != ISOLA_ETIMEDOUT)
		return raise_code(p, r, "shut down");
	return PyBool_FromLong(wait);
}

static PyObject *pool_stats(PyObject *self, PyObject *unused)
{
	(void)unused;
	pool_obj *p = (pool_obj *)self;
	/* A pool being joined still answers (what runs, for a shutdown's
	 * warning); it is freed only with the GIL released, after dying is
	 * cleared under it. */
	isola_pool *pool = p->pool != NULL ? p->pool : p->dying;
	if (pool == NULL) {
		need_pool(p); /* raises */
		return NULL;
	}
	size_t n;
	isola_pool_size(pool, &n);
	PyObject *list = PyList_New((Py_ssize_t)n);
	uint64_t shared = 0;
	for (size_t i = 0; list && i < n; i++) {
		isola_worker_stats s;
		isola_pool_worker_stats(pool, i, &s, &shared);
		PyObject *d = Py_BuildValue("{s:K,s:d,s:K,s:i,s:z,s:d}", "tasks_run",
					    (unsigned long long)s.tasks_run, "busy_seconds",
					    (double)s.busy_ns / 1e9, "queue_depth",
					    (unsigned long long)s.queue_depth, "actors", s.actors,
					    "running", s.running[0] ? s.running : NULL,
					    "running_seconds", (double)s.running_ns / 1e9);
		if (d == NULL) {
			Py_CLEAR(list);
			break;
		}
		PyList_SET_ITEM(list, (Py_ssize_t)i, d);
	}
	if (list == NULL)
		return NULL;
	uint64_t dropped = 0, send_errors = 0;
	isola_pool_monitor_dropped(pool, &dropped);
	isola_pool_send_errors(pool, &send_errors);
	PyObject *r = Py_BuildValue("{s:N,s:K,s:K,s:K}", "workers", list, "queued",
				    (unsigned long long)shared, "monitor_dropped",
				    (unsigned long long)dropped, "send_errors",
				    (unsigned long long)send_errors);
	return r;
}

/* fallbacks(start=0): [(module, target, times)] from record start on
 * (isola_pool_fallback). */
static PyObject *pool_fallbacks(PyObject *self, PyObject *args)
{
	pool_obj *p = (pool_obj *)self;
	Py_ssize_t start = 0;
	if (!PyArg_ParseTuple(args, "|n:fallbacks", &start))
		return NULL;
	isola_pool *pool = p->pool != NULL ? p->pool : p->dying;
	if (pool == NULL) {
		need_pool(p); /* raises */
		return NULL;
	}
	size_t n = 0;
	isola_pool_fallbacks(pool, &n);
	PyObject *list = PyList_New(0);
	for (size_t i = start < 0 ? 0 : (size_t)start; list != NULL && i < n; i++) {
		const char *module, *target;
		uint64_t times;
		if (isola_pool_fallback(pool, i, &module, &target, &times) != 0)
			break;
		PyObject *t = Py_BuildValue("(ssK)", module, target, (unsigned long long)times);
		if (t == NULL || PyList_Append(list, t) < 0)
			Py_CLEAR(list);
		Py_XDECREF(t);
	}
	return list;
}

static PyObject *pool_size(PyObject *self, void *c)
{
	(void)c;
	pool_obj *p = (pool_obj *)self;
	/* A pool being joined still answers (what runs, for a shutdown's
	 * warning); it is freed only with the GIL released, after dying is
	 * cleared under it. */
	isola_pool *pool = p->pool != NULL ? p->pool : p->dying;
	if (pool == NULL) {
		need_pool(p); /* raises */
		return NULL;
	}
	size_t n;
	isola_pool_size(pool, &n);
	return PyLong_FromSize_t(n);
}

static PyMethodDef pool_methods[] = {
	{ "submit", pool_submit, METH_VARARGS, NULL },
	{ "map_chunk", pool_map_chunk, METH_VARARGS, NULL },
	{ "spawn", pool_spawn, METH_VARARGS, NULL },
	{ "call", pool_actor_call, METH_VARARGS, NULL },
	{ "kill", pool_kill, METH_O, NULL },
	{ "actor_stats", pool_actor_stats, METH_O, NULL },
	{ "monitor", pool_monitor, METH_NOARGS, NULL },
	{ "done_channel", pool_done_channel, METH_NOARGS, NULL },
	{ "run", pool_run, METH_O, NULL },
	{ "shutdown", pool_shutdown, METH_VARARGS, NULL },
	{ "stats", pool_stats, METH_NOARGS, NULL },
	{ "fallbacks", pool_fallbacks, METH_VARARGS, NULL },
	{ NULL, NULL, 0, NULL },
};

static PyGetSetDef pool_getset[] = {
	{ "size", pool_size, NULL, NULL, NULL },
	{ NULL, NULL, NULL, NULL, NULL },
};

static PyType_Slot pool_slots[] = {
	{ Py_tp_doc, "The C pool under isola.Pool (private)." },
	{ Py_tp_init, pool_init },
	{ Py_tp_new, PyType_GenericNew },
	{ Py_tp_dealloc, pool_dealloc },
	{ Py_tp_methods, pool_methods },
	{ Py_tp_getset, pool_getset },
	{ 0, NULL },
};

PyType_Spec isola__pool_spec = {
	.name = "isola._Pool",
	.basicsize = sizeof(pool_obj),
	.flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
	.slots = pool_slots,
};

/* ---- _Future ------------------------------------------------------------ */

static void cfut_dealloc(PyObject *self)
{
	PyTypeObject *tp = Py_TYPE(self);
	cfuture_obj *c = (cfuture_obj *)self;
	if (c->report && !c->seen)
		watch_orphan(c);
	isola_future_release(((cfuture_obj *)self)->f);
	isola_channel_release(((cfuture_obj *)self)->done);
	tp->tp_free(self);
	Py_DECREF(tp);
}

/* An exception from the text record of a remote one (type, message,
 * traceback): the builtin class of that name, else isola.RemoteError. */
static PyObject *remote_error_from_text(isola__state *st, const char *type, const char *msg,
					const char *tb)
{
	PyObject *cls = strchr(type, '.') == NULL
				? PyDict_GetItemString(PyEval_GetBuiltins(), type) : NULL;
	PyObject *exc;
	if (cls != NULL && PyType_Check(cls) &&
	    PyType_IsSubtype((PyTypeObject *)cls, (PyTypeObject *)PyExc_Exception)) {
		exc = PyObject_CallFunction(cls, "s", msg);
	} else {
		exc = PyObject_CallFunction(st->RemoteError, "s", *type ? type : "an exception");
		PyObject *tn = PyUnicode_FromString(type), *m = PyUnicode_FromString(msg);
		if (exc != NULL && tn != NULL && m != NULL) {
			PyObject_SetAttrString(exc, "type_name", tn);
			PyObject_SetAttrString(exc, "message", m);
		}
		Py_XDECREF(tn);
		Py_XDECREF(m);
	}
	PyErr_Clear();
	if (exc != NULL && *tb) {
		PyObject *t = PyUnicode_FromString(tb);
		if (t != NULL)
			PyObject_SetAttrString(exc, "remote_traceback", t);
		PyObject *note = t ? PyUnicode_FromFormat(
					     "Remote traceback (from another interpreter):\n%U", t)
				   : NULL;
		PyObject *r = note ? PyObject_CallMethod(exc, "add_note", "O", note) : NULL;
		Py_XDECREF(r);
		Py_XDECREF(note);
		Py_XDECREF(t);
		PyErr_Clear();
	}
	return exc != NULL ? exc : PyObject_CallFunction(st->RemoteError, "s", type);
}

/* outcome() -> ("ok", value) | ("error", exception) | ("cancelled", None)
 * | ("timeout", None) | ("closed", why or None) | ("pending", None)
 * | ("crashed", (type, message)): a process worker died under the task */
static PyObject *cfut_outcome(PyObject *self, PyObject *unused)
{
	(void)unused;
	cfuture_obj *c = (cfuture_obj *)self;
	isola_msg m;
	isola_msg_init(&m);
	int r = isola_future_result(c->f, &m);
	if (r != ISOLA_EAGAIN)
		c->seen = 1; /* someone holds its outcome: no orphan report */
	if (r == ISOLA_ENOTFOUND)
		r = ISOLA_EPYTHON; /* the target was not found: its ImportError travels */
	const char *kind = r == 0 ? "ok" : r == ISOLA_EPYTHON ? "error"
				   : r == ISOLA_ECANCELED ? "cancelled"
				   : r == ISOLA_ETIMEDOUT ? "timeout"
				   : r == ISOLA_EAGAIN	  ? "pending"
				   : r == ISOLA_ECRASHED  ? "crashed"
							  : "closed";
	PyObject *value = NULL;
	if (r == ISOLA_ECRASHED) { /* a process worker died: (type, message) */
		const char *type = "", *msg = "", *tb = "";
		isola_future_error(c->f, &type, &msg, &tb);
		value = Py_BuildValue("(ss)", type, msg);
	} else if (r == 0 || r == ISOLA_EPYTHON) {
		isola__codec_opts o = isola__codec_defaults;
		o.allow_pickle = c->allow_pickle;
		value = isola__decode(state_of(self), &m, &o);
		if (value == NULL && r == ISOLA_EPYTHON) {
			/* The exception itself could not travel (an argument too
			 * deep, say): rebuild what its text says, a builtin class
			 * by name, else RemoteError, with the remote traceback. */
			PyErr_Clear();
			const char *type = "", *msg = "", *tb = "";
			isola_future_error(c->f, &type, &msg, &tb);
			value = remote_error_from_text(state_of(self), type, msg, tb);
		}
	} else if (r != ISOLA_ECANCELED && r != ISOLA_ETIMEDOUT && r != ISOLA_EAGAIN) {
		/* Closed: why, when the scheduler said (an actor that died or
		 * never started), else None (the pool shut down first). */
		const char *type = NULL, *msg = NULL, *tb = NULL;
		if (isola_future_error(c->f, &type, &msg, &tb) == 0 && msg != NULL && *msg)
			value = PyUnicode_FromString(msg);
		else
			value = Py_NewRef(Py_None);
	} else {
		value = Py_NewRef(Py_None);
	}
	isola_msg_clear(&m);
	if (value == NULL)
		return NULL;
	return Py_BuildValue("(sN)", kind, value);
}

struct future_op {
	isola_future *f;
	isola__deadline d;
};

static int future_op(void *arg)
{
	struct future_op *o = arg;
	return isola__future_wait_flags(o->f, &o->d, ISOLA__WAIT_INTERRUPTIBLE);
}

/* wait(timeout=None) -> True once done, False on timeout.  Waits on the
 * C future itself, GIL released (spin, then sleep; Ctrl-C works). */
static PyObject *cfut_wait(PyObject *self, PyObject *args)
{
	PyObject *timeout = Py_None;
	if (!PyArg_ParseTuple(args, "|O:wait", &timeout))
		return NULL;
	int64_t t;
	if (isola__timeout_arg(timeout, &t) < 0)
		return NULL;
	struct future_op op = { .f = ((cfuture_obj *)self)->f };
	isola__deadline_init(&op.d, t);
	int r;
	if (isola__wait_released(future_op, &op, &r) < 0)
		return NULL;
	return PyBool_FromLong(r == 0);
}

/* notify() -> True: the token will be posted to the completion channel
 * when the future is done; False: it is done already (nothing posted,
 * the caller completes it).  Call once. */
static PyObject *cfut_notify(PyObject *self, PyObject *unused)
{
	(void)unused;
	cfuture_obj *c = (cfuture_obj *)self;
	struct done_arg *d = isola__malloc(sizeof(*d));
	if (d == NULL)
		return PyErr_NoMemory();
	d->ch = c->done;
	d->token = c->token;
	isola_channel_retain(c->done);
	int r = isola__future_on_done_pending(c->f, post_token, d);
	if (r != 0) {
		isola_channel_release(c->done);
		isola__free(d);
		if (r != ISOLA_ESTATE)
			return PyErr_NoMemory();
	}
	return PyBool_FromLong(r == 0);
}

/* cancel(interrupt=False) -> bool: cancel a queued task; with interrupt,
 * also interrupt a running one (isola.Cancelled inside it). */
static PyObject *cfut_cancel(PyObject *self, PyObject *args)
{
	int interrupt = 0;
	if (!PyArg_ParseTuple(args, "|p:cancel", &interrupt))
		return NULL;
	isola_future *f = ((cfuture_obj *)self)->f;
	if (interrupt)
		return PyBool_FromLong(isola_future_cancel(f) == 0);
	return PyBool_FromLong(isola__future_cancel_pending(f, "cancelled before it ran"));
}

static PyObject *cfut_state(PyObject *self, PyObject *unused)
{
	(void)unused;
	int s;
	isola_future_state(((cfuture_obj *)self)->f, &s);
	return PyLong_FromLong(s);
}

static PyObject *cfut_token(PyObject *self, void *c)
{
	(void)c;
	return PyLong_FromUnsignedLongLong(((cfuture_obj *)self)->token);
}

static PyMethodDef cfut_methods[] = {
	{ "outcome", cfut_outcome, METH_NOARGS, NULL },
	{ "cancel", cfut_cancel, METH_VARARGS, NULL },
	{ "wait", cfut_wait, METH_VARARGS, NULL },
	{ "notify", cfut_notify, METH_NOARGS, NULL },
	{ "state", cfut_state, METH_NOARGS, NULL },
	{ NULL, NULL, 0, NULL },
};

static PyGetSetDef cfut_getset[] = {
	{ "token", cfut_token, NULL, NULL, NULL },
	{ NULL, NULL, NULL, NULL, NULL },
};

static PyType_Slot cfut_slots[] = {
	{ Py_tp_doc, "A C future (private)." },
	{ Py_tp_dealloc, cfut_dealloc },
	{ Py_tp_methods, cfut_methods },
	{ Py_tp_getset, cfut_getset },
	{ 0, NULL },
};

PyType_Spec isola__cfuture_spec = {
	.name = "isola._Future",
	.basicsize = sizeof(cfuture_obj),
	.flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
	.slots = cfut_slots,
};

/* A worker's __main__.__getattr__ (PEP 562): a name its own __main__
 * lacks is the caller's script's (imported as __isola_main__ on first
 * use), so that `__main__.X` the caller pickled (a namedtuple, a
 * dataclass) loads as the script's X, as multiprocessing's spawn does.
 * Dunder names are never looked up there: asking for __file__ must not
 * import the script. */
static PyObject *main_getattr(PyObject *unused, PyObject *name)
{
	(void)unused;
	const char *s = PyUnicode_Check(name) ? PyUnicode_AsUTF8(name) : NULL;
	if (s == NULL || s[0] == '\0' || strncmp(s, "__", 2) == 0) {
		PyErr_Clear();
		PyErr_Format(PyExc_AttributeError, "module '__main__' has no attribute %R", name);
		return NULL;
	}
	PyObject *script = isola__import_main_script();
	if (script == NULL)
		return NULL;
	PyObject *r = PyObject_GetAttr(script, name);
	Py_DECREF(script);
	if (r == NULL && PyErr_ExceptionMatches(PyExc_AttributeError)) {
		PyErr_Clear();
		PyErr_Format(PyExc_AttributeError,
			     "module '__main__' has no attribute %R: the main script, as workers "
			     "import it, does not define it at its top level (defined under "
			     "`if __name__ == \"__main__\":` or in a function?)", name);
	}
	return r;
}

static PyMethodDef main_getattr_def = { "__getattr__", main_getattr, METH_O,
					"Names of the caller's script (isola)." };

/* _set_main_path(path, refusal=None): where workers find the caller's
 * __main__, or why they must not import it (an unguarded script). */
PyObject *isola__set_main_path(PyObject *m, PyObject *args)
{
	PyObject *path, *refusal = Py_None;
	if (!PyArg_ParseTuple(args, "U|O:_set_main_path", &path, &refusal))
		return NULL;
	if (refusal != Py_None && !PyUnicode_Check(refusal))
		return PyErr_Format(PyExc_TypeError, "refusal must be a str or None");
	isola__state *st = PyModule_GetState(m);
	Py_XSETREF(st->main_path, Py_NewRef(path));
	Py_XSETREF(st->main_refusal, refusal == Py_None ? NULL : Py_NewRef(refusal));
	if (PyInterpreterState_Get() == PyInterpreterState_Main())
		Py_RETURN_NONE; /* the main interpreter's __main__ is the script */
	PyObject *main = PyImport_AddModule("__main__"); /* borrowed */
	PyObject *fn = main ? PyCFunction_New(&main_getattr_def, NULL) : NULL;
	int r = fn ? PyObject_SetAttrString(main, "__getattr__", fn) : -1;
	Py_XDECREF(fn);
	if (r < 0)
		return NULL;
	Py_RETURN_NONE;
}

/* _task_deadline(seconds): the running task restarts its own deadline
 * (0: none) and learns whether it had been interrupted: 0 no, 1 cancelled,
 * 2 timed out (forgiven: the task goes on).  isola map's per-item timeout. */
PyObject *isola__py_task_deadline(PyObject *m, PyObject *arg)
{
	(void)m;
	double s = PyFloat_AsDouble(arg);
	if (s == -1.0 && PyErr_Occurred())
		return NULL;
	if (!(s >= 0) || s > 1e9) {
		PyErr_SetString(PyExc_ValueError, "seconds must be from 0 to 1e9");
		return NULL;
	}
	int reason = 0;
	if (isola__task_restart_deadline((int64_t)(s * 1e9), &reason) != 0) {
		PyErr_SetString(PyExc_RuntimeError, "_task_deadline: not in a task on a pool worker");
		return NULL;
	}
	return PyLong_FromLong(reason);
}
