/*
 * pyproc.c - the process lane in the isola module: isola._ProcLane (the
 * parent's side, over scheduler/proclane.h) and _proc_serve (the child's
 * loop, run by `python -m isola._proc_worker FD PPID`).
 *
 * The child runs each task in its main interpreter with the routine
 * interpreter workers use (isola__job_run), so resolution, decoding,
 * exceptions and their encoding are the same.  Arguments are encoded
 * for a process worker (isola__pool_encode_proc): blobs (large bytes,
 * isola.Buffer) as references, which the lane turns into memfds the
 * child maps (channels/blobshm.h) or copies into the request; frozen
 * values thawed; channels refused.  The child decodes the references as
 * isola.Buffer over its mapping (or its copy).  Results carry no
 * references: large bytes and Buffers are copied inline.
 */
#include "pymod/pyproc.h"

#include "channels/blob.h"
#include "channels/blobshm.h"
#include "channels/channel.h"
#include "channels/procring.h"
#include "common/alloc.h"
#include "interp/call.h"
#include "interp/codec.h"
#include "interp/host.h"
#include "interp/pyerror.h"
#include "pymod/pychannel.h"
#include "scheduler/procframe.h"
#include "scheduler/proclane.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- the parent's side: _ProcLane ---------------------------------------- */

typedef struct {
	PyObject_HEAD
	isola__proclane *lane;
	int joined;
} lane_obj;

/* A sequence of str to a NULL-terminated array of UTF-8 copies. */
static char **strv(PyObject *seq)
{
	PyObject *fast = PySequence_Fast(seq, "expected a sequence of str");
	if (fast == NULL)
		return NULL;
	Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
	char **v = isola__calloc((size_t)n + 1, sizeof(char *));
	for (Py_ssize_t i = 0; v != NULL && i < n; i++) {
		const char *s = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(fast, i));
		v[i] = s ? isola__strdup(s) : NULL;
		if (v[i] == NULL) {
			for (Py_ssize_t j = 0; j < i; j++)
				isola__free(v[j]);
			isola__free(v);
			v = NULL;
		}
	}
	Py_DECREF(fast);
	if (v == NULL && !PyErr_Occurred())
		PyErr_NoMemory();
	return v;
}

static void strv_free(char **v)
{
	for (size_t i = 0; v != NULL && v[i] != NULL; i++)
		isola__free(v[i]);
	isola__free(v);
}

/* _ProcLane(workers, exe, argv, env, grace_seconds) */
static int lane_init(PyObject *self, PyObject *args, PyObject *kw)
{
	lane_obj *l = (lane_obj *)self;
	int n;
	const char *exe;
	PyObject *argv, *env;
	double grace;
	if (kw != NULL && PyDict_Size(kw) > 0) {
		PyErr_SetString(PyExc_TypeError, "_ProcLane takes no keyword arguments");
		return -1;
	}
	if (!PyArg_ParseTuple(args, "isOOd:_ProcLane", &n, &exe, &argv, &env, &grace))
		return -1;
	if (l->lane != NULL) {
		PyErr_SetString(PyExc_RuntimeError, "_ProcLane already started");
		return -1;
	}
	char **a = strv(argv), **e = a ? strv(env) : NULL;
	if (e == NULL) {
		strv_free(a);
		return -1;
	}
	/* A tuning knob (docs/proclane.md): blobs from this size on are
	 * mapped by the children, smaller ones copied. */
	const char *mm = getenv("ISOLA_PROC_MIRROR_MIN");
	isola__proclane_options o = { .workers = n, .exe = exe, .argv = (const char *const *)a,
				      .envp = (const char *const *)e,
				      .grace_ns = (int64_t)(grace * 1e9),
				      .mirror_min = mm && *mm ? (size_t)strtoull(mm, NULL, 10) : 0 };
	int r = isola__proclane_create(&o, &l->lane);
	strv_free(a);
	strv_free(e);
	if (r != 0) {
		PyErr_Format(PyExc_OSError, "cannot start the process lane: %s", isola_strerror(r));
		return -1;
	}
	return 0;
}

static isola__proclane *need_lane(lane_obj *l)
{
	if (l->lane == NULL || l->joined)
		PyErr_SetString(PyExc_RuntimeError, "cannot schedule new futures after shutdown");
	return l->joined ? NULL : l->lane;
}

struct ready_op {
	isola__proclane *lane;
	int64_t timeout;
	char *why;
};

static int ready_op(void *arg)
{
	struct ready_op *o = arg;
	return isola__proclane_wait_ready(o->lane, o->timeout, &o->why);
}

/* wait_ready(timeout) -> None, or the reason a child failed to start (str) */
static PyObject *lane_wait_ready(PyObject *self, PyObject *args)
{
	PyObject *timeout = Py_None;
	if (!PyArg_ParseTuple(args, "|O:wait_ready", &timeout))
		return NULL;
	isola__proclane *lane = need_lane((lane_obj *)self);
	int64_t t;
	if (lane == NULL || isola__timeout_arg(timeout, &t) < 0)
		return NULL;
	struct ready_op op = { lane, t, NULL };
	int r;
	Py_BEGIN_ALLOW_THREADS
	r = ready_op(&op);
	Py_END_ALLOW_THREADS
	if (r == ISOLA_ETIMEDOUT) {
		PyErr_SetString(PyExc_TimeoutError, "process workers did not start in time");
		return NULL;
	}
	if (r != 0) {
		PyObject *s = PyUnicode_DecodeUTF8(op.why ? op.why : "", op.why ? (Py_ssize_t)strlen(op.why) : 0,
						   "replace");
		isola__free(op.why);
		return s;
	}
	Py_RETURN_NONE;
}

static PyObject *submit_failed(int r)
{
	if (r == ISOLA_ECLOSED)
		PyErr_SetString(PyExc_RuntimeError, "cannot schedule new futures after shutdown");
	else if (r == ISOLA_ETYPE)
		PyErr_SetString(PyExc_TypeError,
				"a process worker cannot receive references to this process's memory "
				"(channels, frozen images)");
	else if (r == ISOLA_ENOMEM)
		PyErr_NoMemory();
	else
		PyErr_Format(PyExc_RuntimeError, "process lane: %s", isola_strerror(r));
	return NULL;
}

struct submit_op {
	isola__proclane *lane;
	int kind;
	const char *target;
	isola_msg *args, *sets;
	size_t n;
	int64_t timeout;
	int flags;
	isola_future **out;
};

/* Python-free: run without the GIL when a blob may be copied into a
 * mirror. */
static int submit_op(struct submit_op *o)
{
	return isola__proclane_submit(o->lane, o->kind, o->target, o->args, o->sets, o->n, 0,
				      o->timeout, o->flags, o->out);
}

struct after_op {
	isola__proclane *lane;
	const char *target;
	isola_msg *args;
	const isola_input *in;
	size_t n;
	int64_t timeout;
	int flags;
	isola_future **out;
};

static int after_op(void *arg)
{
	struct after_op *o = arg;
	return isola__proclane_submit_after(o->lane, o->target, o->args, o->in, o->n, o->timeout,
					    o->flags, true, o->out);
}

/* submit(pool, target, args, kwargs, timeout[, inputs]) -> _Future (the
 * pool's kind); inputs (task graphs): a list of (_Future, position,
 * keyword or None), futures of the pool or of this lane: the task waits
 * for them in the lane and the child gets their encoded results. */
static PyObject *lane_submit(PyObject *self, PyObject *args)
{
	PyObject *pool, *a, *kw, *timeout, *inputs = NULL;
	const char *target;
	if (!PyArg_ParseTuple(args, "OsOOO|O!:submit", &pool, &target, &a, &kw, &timeout,
			      &PyList_Type, &inputs))
		return NULL;
	isola__proclane *lane = need_lane((lane_obj *)self);
	int64_t t;
	if (lane == NULL || isola__timeout_arg(timeout, &t) < 0)
		return NULL;
	size_t n_in = inputs ? (size_t)PyList_GET_SIZE(inputs) : 0;
	if (n_in > 255) {
		PyErr_SetString(PyExc_ValueError, "a task takes at most 255 Futures as arguments");
		return NULL;
	}
	isola_input in[n_in ? n_in : 1];
	if (n_in && isola__pool_parse_inputs(pool, inputs, in, n_in) < 0)
		return NULL;
	isola_msg m;
	if (isola__pool_encode_proc(pool, a, kw, &m) < 0)
		return NULL;
	isola_future *f;
	int flags = isola__pool_allow_pickle(pool) ? PROC_ALLOW_PICKLE : 0;
	struct after_op op = { lane, target, &m, in, n_in, t > 0 ? t : 0, flags, &f };
	int r;
	if (isola__msg_nrefs(&m) > 0) {
		/* A blob may get its mirror (a copy), and room may have to be
		 * waited for: without the GIL. */
		Py_BEGIN_ALLOW_THREADS
		r = after_op(&op);
		Py_END_ALLOW_THREADS
	} else {
		r = isola__proclane_submit_after(lane, target, &m, in, n_in, t > 0 ? t : 0, flags,
						 false, &f);
		if (r == ISOLA_EAGAIN) { /* ISOLA_MAX_WAITING wait: wait for room without the GIL */
			Py_BEGIN_ALLOW_THREADS
			r = after_op(&op);
			Py_END_ALLOW_THREADS
		}
	}
	if (r != 0) {
		isola_msg_clear(&m);
		return submit_failed(r);
	}
	return isola__pool_wrap_future(pool, f);
}

/* attach(pool): pool's tasks may take this lane's futures as inputs. */
static PyObject *lane_attach(PyObject *self, PyObject *pool)
{
	isola__proclane *lane = need_lane((lane_obj *)self);
	if (lane == NULL || isola__pool_accept_inputs_of(pool, isola__proclane_link(lane)) < 0)
		return NULL;
	Py_RETURN_NONE;
}

/* map_chunk(pool, target, [args tuples...]) -> _Future of a list */
static PyObject *lane_map_chunk(PyObject *self, PyObject *args)
{
	PyObject *pool, *items;
	const char *target;
	if (!PyArg_ParseTuple(args, "OsO:map_chunk", &pool, &target, &items))
		return NULL;
	isola__proclane *lane = need_lane((lane_obj *)self);
	if (lane == NULL)
		return NULL;
	PyObject *fast = PySequence_Fast(items, "map_chunk takes a sequence");
	if (fast == NULL)
		return NULL;
	size_t n = (size_t)PySequence_Fast_GET_SIZE(fast);
	isola_msg *sets = isola__calloc(n ? n : 1, sizeof(isola_msg));
	if (sets == NULL) {
		Py_DECREF(fast);
		return PyErr_NoMemory();
	}
	size_t done = 0, refs = 0;
	int failed = 0;
	for (; !failed && done < n; done++) {
		failed = isola__pool_encode_proc(pool, PySequence_Fast_GET_ITEM(fast, (Py_ssize_t)done),
						 NULL, &sets[done]) < 0;
		refs += failed ? 0 : isola__msg_nrefs(&sets[done]);
	}
	Py_DECREF(fast);
	PyObject *res = NULL;
	if (!failed) {
		isola_future *f;
		struct submit_op op = { lane, ISOLA__PROC_CHUNK, target, NULL, sets, n, 0,
					isola__pool_allow_pickle(pool) ? PROC_ALLOW_PICKLE : 0, &f };
		int r;
		if (refs > 0) {
			Py_BEGIN_ALLOW_THREADS
			r = submit_op(&op);
			Py_END_ALLOW_THREADS
		} else {
			r = submit_op(&op);
		}
		res = r == 0 ? isola__pool_wrap_future(pool, f) : submit_failed(r);
	}
	for (size_t i = 0; i < done; i++)
		isola_msg_clear(&sets[i]);
	isola__free(sets);
	return res;
}

/* stats() -> {"queued": n, "waiting": n, "workers": [{pid, tasks_run, crashes, starts, running}]} */
static PyObject *lane_stats(PyObject *self, PyObject *unused)
{
	(void)unused;
	lane_obj *l = (lane_obj *)self;
	if (l->lane == NULL)
		return PyDict_New();
	int n = isola__proclane_size(l->lane);
	PyObject *list = PyList_New(n);
	for (int i = 0; list != NULL && i < n; i++) {
		isola__proc_stats s;
		isola__proclane_stats(l->lane, i, &s);
		PyObject *d = Py_BuildValue("{s:i,s:K,s:K,s:K,s:s,s:K,s:K}", "pid", s.pid, "tasks_run",
					    (unsigned long long)s.tasks_run, "crashes",
					    (unsigned long long)s.crashes, "starts",
					    (unsigned long long)s.starts, "running", s.running,
					    "blobs_mapped", (unsigned long long)s.blobs_mapped,
					    "blobs_copied", (unsigned long long)s.blobs_copied);
		if (d == NULL) {
			Py_CLEAR(list);
			break;
		}
		PyList_SET_ITEM(list, i, d);
	}
	if (list == NULL)
		return NULL;
	return Py_BuildValue("{s:n,s:n,s:N}", "queued", (Py_ssize_t)isola__proclane_queued(l->lane),
			     "waiting", (Py_ssize_t)isola__proclane_waiting(l->lane), "workers", list);
}

struct shutdown_op {
	isola__proclane *lane;
	int how, wait;
	int64_t timeout;
};

static int shutdown_op(void *arg)
{
	struct shutdown_op *o = arg;
	return isola__proclane_shutdown(o->lane, o->how, o->wait, o->timeout);
}

/* shutdown(how, wait, timeout=None) -> True once joined (False: timed out) */
static PyObject *lane_shutdown(PyObject *self, PyObject *args)
{
	lane_obj *l = (lane_obj *)self;
	int how, wait;
	PyObject *timeout = Py_None;
	if (!PyArg_ParseTuple(args, "ip|O:shutdown", &how, &wait, &timeout))
		return NULL;
	int64_t t;
	if (isola__timeout_arg(timeout, &t) < 0)
		return NULL;
	if (l->lane == NULL || l->joined)
		Py_RETURN_TRUE;
	struct shutdown_op op = { l->lane, how, wait, t };
	int r;
	/* Bounded: a proxy kills its child grace after an interrupt. */
	if (isola__wait_released(shutdown_op, &op, &r) < 0)
		return NULL;
	if (wait && r == 0)
		l->joined = 1;
	return PyBool_FromLong(r == 0);
}

static void lane_dealloc(PyObject *self)
{
	lane_obj *l = (lane_obj *)self;
	PyTypeObject *tp = Py_TYPE(self);
	if (l->lane != NULL) {
		int r;
		Py_BEGIN_ALLOW_THREADS
		r = isola__proclane_shutdown(l->lane, ISOLA_SHUTDOWN_CANCEL | ISOLA_SHUTDOWN_INTERRUPT,
					     1, -1);
		Py_END_ALLOW_THREADS
		if (r == 0)
			isola__proclane_destroy(l->lane);
		l->lane = NULL;
	}
	tp->tp_free(self);
	Py_DECREF(tp);
}

static PyMethodDef lane_methods[] = {
	{ "wait_ready", lane_wait_ready, METH_VARARGS, NULL },
	{ "submit", lane_submit, METH_VARARGS, NULL },
	{ "attach", lane_attach, METH_O, NULL },
	{ "map_chunk", lane_map_chunk, METH_VARARGS, NULL },
	{ "stats", lane_stats, METH_NOARGS, NULL },
	{ "shutdown", lane_shutdown, METH_VARARGS, NULL },
	{ NULL, NULL, 0, NULL },
};

static PyType_Slot lane_slots[] = {
	{ Py_tp_doc, "The process lane under isola.Pool (private)." },
	{ Py_tp_init, lane_init },
	{ Py_tp_new, PyType_GenericNew },
	{ Py_tp_dealloc, lane_dealloc },
	{ Py_tp_methods, lane_methods },
	{ 0, NULL },
};

PyType_Spec isola__proclane_spec = {
	.name = "isola._ProcLane",
	.basicsize = sizeof(lane_obj),
	.flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
	.slots = lane_slots,
};

/* ---- shared blobs: figures ------------------------------------------------ */

/* _proc_mirror_stats() -> dict: this process's mirrors (as a parent) and
 * mappings (as a process worker). */
PyObject *isola__py_proc_mirror_stats(PyObject *m, PyObject *unused)
{
	(void)m;
	(void)unused;
	isola__mirror_stats s;
	isola__mirror_stats_get(&s);
	return Py_BuildValue("{s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K}", "made",
			     (unsigned long long)s.made, "live", (unsigned long long)s.live,
			     "live_bytes", (unsigned long long)s.live_bytes, "refused",
			     (unsigned long long)s.refused, "maps", (unsigned long long)s.maps,
			     "hits", (unsigned long long)s.hits, "mapped",
			     (unsigned long long)s.mapped, "mapped_bytes",
			     (unsigned long long)s.mapped_bytes, "recent",
			     (unsigned long long)s.recent);
}

/* _buffer_shm(buf) -> None, or {"side": "parent" | "child", "mirror": id,
 * "inode": n, "address": n}: the memfd behind an isola.Buffer (its
 * mirror, or the mapping a process worker reads it through). */
PyObject *isola__py_buffer_shm(PyObject *m, PyObject *buf)
{
	isola__state *st = PyModule_GetState(m);
	if (st == NULL || !PyObject_TypeCheck(buf, (PyTypeObject *)st->buffer_type)) {
		PyErr_SetString(PyExc_TypeError, "_buffer_shm takes an isola.Buffer");
		return NULL;
	}
	isola__buffer_obj *b = (isola__buffer_obj *)buf;
	uint64_t id, ino;
	const char *side = "child";
	if (!isola__blob_mapped(b->blob, &id, &ino)) {
		const struct isola__mirror *mir = isola__blob_mirror_peek(b->blob);
		if (mir == NULL)
			Py_RETURN_NONE;
		side = "parent";
		id = mir->id;
		ino = mir->ino;
	}
	return Py_BuildValue("{s:s,s:K,s:K,s:K}", "side", side, "mirror", (unsigned long long)id,
			     "inode", (unsigned long long)ino, "address",
			     (unsigned long long)(uintptr_t)b->data);
}

/* ---- the child's side --------------------------------------------------- */

static isola__procshm *child_shm;
static int child_sock = -1; /* where the parent passes memfds, or -1 */
static uint64_t child_task; /* the id of the task running now, 0: none */
static pid_t child_parent;

/* The child's check between sleeps: the parent is gone -> ECLOSED. */
static int parent_alive(void *arg)
{
	(void)arg;
	return getppid() == child_parent ? 0 : ISOLA_ECLOSED;
}

/* _proc_interrupt_due() -> True when the parent asked to interrupt the
 * task running now (the SIGINT handler of isola._proc_worker asks). */
PyObject *isola__py_proc_interrupt_due(PyObject *m, PyObject *unused)
{
	(void)m;
	(void)unused;
	if (child_shm == NULL || child_task == 0)
		Py_RETURN_FALSE;
	/* Acquire: pairs with the parent's release store before its kill. */
	uint64_t want = __atomic_load_n(isola__procshm_word(child_shm), __ATOMIC_ACQUIRE);
	return PyBool_FromLong(want == child_task);
}

static int send_reply(uint64_t id, int status, const isola_msg *result, const isola__error *e,
		      uint64_t failed_at)
{
	const void *p = NULL;
	size_t k = 0;
	if (result != NULL)
		isola_msg_bytes(result, &p, &k);
	const char *type = e && e->type ? e->type : "", *msg = e && e->message ? e->message : "",
		   *tb = e && e->traceback ? e->traceback : "";
	struct proc_rep h = { .status = status, .type_len = (uint32_t)strlen(type),
			      .msg_len = (uint32_t)strlen(msg), .tb_len = (uint32_t)strlen(tb),
			      .id = id, .failed_at = failed_at, .result_len = k };
	struct iovec v[5] = { { &h, sizeof(h) }, { (void *)p, k }, { (void *)type, h.type_len },
			      { (void *)msg, h.msg_len }, { (void *)tb, h.tb_len } };
	isola__deadline forever;
	isola__deadline_init(&forever, -1);
	int r;
	Py_BEGIN_ALLOW_THREADS
	r = isola__procring_send(child_shm, ISOLA__PROC_CHILD, v, 5, &forever, 20000000,
				 parent_alive, NULL);
	Py_END_ALLOW_THREADS
	return r;
}

/* The memfds a request's mirrors came with (fds[i] is mirror ids[i]). */
struct req_fds {
	int *fds;
	uint64_t *ids;
	size_t n;
};

static int fd_of(const struct req_fds *g, uint64_t id)
{
	for (size_t i = 0; i < g->n; i++)
		if (g->ids[i] == id)
			return g->fds[i];
	return -1;
}

/* One argument message of a request at *pp: its blobs (mapped from
 * their mirrors, or copied from the frame) attached in order, then its
 * bytes.  0 and *pp past it; ISOLA_EDECODE (a malformed frame: the
 * transport is broken); or ISOLA_EPYTHON with why filled (a blob could
 * not be mapped: the task fails with that, the loop goes on). */
static int read_set(const char **pp, const char *end, const struct req_fds *g, isola_msg *out,
		    char *why, size_t whylen)
{
	const char *p = *pp;
	struct proc_set ps;
	if ((size_t)(end - p) < sizeof(ps))
		return ISOLA_EDECODE;
	memcpy(&ps, p, sizeof(ps));
	p += sizeof(ps);
	if (ps.nrefs > ISOLA_MSG_MAX_REFS || (size_t)(end - p) < ps.nrefs * sizeof(struct proc_ref))
		return ISOLA_EDECODE;
	const char *refs = p;
	p += ps.nrefs * sizeof(struct proc_ref);
	int r = 0;
	for (uint32_t j = 0; j < ps.nrefs && r != ISOLA_EDECODE; j++) {
		struct proc_ref ref;
		memcpy(&ref, refs + j * sizeof(ref), sizeof(ref));
		isola_blob *b = NULL;
		int br;
		if (ref.mirror == 0) { /* copied into the request */
			if ((uint64_t)(end - p) < ref.len)
				return ISOLA_EDECODE;
			br = r != 0 ? 0 : isola_blob_create(p, (size_t)ref.len, &b);
			p += ref.len;
		} else if (r == 0) {
			br = isola__mirror_map(ref.mirror, (size_t)ref.len, fd_of(g, ref.mirror),
					       ref.keep != 0, &b);
		} else {
			continue;
		}
		if (br != 0 && r == 0) {
			snprintf(why, whylen,
				 "an isola.Buffer argument (%llu bytes) could not be mapped in the process "
				 "worker: %s",
				 (unsigned long long)ref.len,
				 br == ISOLA_ENOTFOUND ? "its memfd did not arrive"
				 : br == ISOLA_EDECODE ? "its memfd is not a sealed one of that size"
				 : br == ISOLA_ESYS    ? strerror(errno)
						       : isola_strerror(br));
			r = ISOLA_EPYTHON;
		}
		if (b != NULL) {
			if (isola_msg_attach_blob(out, b) != 0)
				r = ISOLA_EDECODE;
			isola_blob_release(b); /* the message holds its own */
		}
	}
	if (r == ISOLA_EDECODE || (uint64_t)(end - p) < ps.len)
		return ISOLA_EDECODE;
	if (isola_msg_set_bytes(out, p, (size_t)ps.len) != 0)
		return ISOLA_EDECODE;
	*pp = p + ps.len;
	return r;
}

/* A request's inputs (task graphs), read from p (before end). */
struct req_inputs {
	size_t n;
	isola__job_input *in;
	isola_msg *values;
	char **strs;        /* 3 per input: keyword, type, message */
	int unsendable;     /* index + 1 of an input that could not come */
};

static void req_inputs_free(struct req_inputs *ri)
{
	for (size_t i = 0; ri->values != NULL && i < ri->n; i++)
		isola_msg_clear(&ri->values[i]);
	for (size_t i = 0; ri->strs != NULL && i < 3 * ri->n; i++)
		isola__free(ri->strs[i]);
	isola__free(ri->in);
	isola__free(ri->values);
	isola__free(ri->strs);
}

static int read_inputs(struct req_inputs *ri, uint32_t n, const char **pp, const char *end)
{
	memset(ri, 0, sizeof(*ri));
	if (n == 0)
		return 0;
	ri->in = isola__calloc(n, sizeof(*ri->in));
	ri->values = isola__calloc(n, sizeof(*ri->values));
	ri->strs = isola__calloc(3 * (size_t)n, sizeof(char *));
	if (ri->in == NULL || ri->values == NULL || ri->strs == NULL)
		return ISOLA_ENOMEM;
	ri->n = n;
	const char *p = *pp;
	for (uint32_t i = 0; i < n; i++) {
		struct proc_input h;
		if ((size_t)(end - p) < sizeof(h))
			return ISOLA_EDECODE;
		memcpy(&h, p, sizeof(h));
		p += sizeof(h);
		uint64_t lens[3] = { h.keyword_len, h.type_len, h.msg_len };
		for (int k = 0; k < 3; k++) {
			if ((uint64_t)(end - p) < lens[k])
				return ISOLA_EDECODE;
			char *c = isola__malloc((size_t)lens[k] + 1);
			if (c == NULL)
				return ISOLA_ENOMEM;
			memcpy(c, p, (size_t)lens[k]);
			c[lens[k]] = '\0';
			ri->strs[3 * i + k] = c;
			p += lens[k];
		}
		if ((uint64_t)(end - p) < h.value_len)
			return ISOLA_EDECODE;
		isola_msg_init(&ri->values[i]);
		int r = isola_msg_set_bytes(&ri->values[i], p, (size_t)h.value_len);
		if (r != 0)
			return r;
		p += h.value_len;
		ri->in[i] = (isola__job_input){
			.value = &ri->values[i],
			.status = h.status,
			.error_type = ri->strs[3 * i + 1][0] ? ri->strs[3 * i + 1] : NULL,
			.error_message = ri->strs[3 * i + 2][0] ? ri->strs[3 * i + 2] : NULL,
			.position = h.position,
			.keyword = h.keyword_len ? ri->strs[3 * i] : NULL,
		};
		if ((h.flags & PROC_INPUT_UNSENDABLE) && ri->unsendable == 0)
			ri->unsendable = (int)i + 1;
	}
	*pp = p;
	return 0;
}

/* The TypeError of a task whose input i could not come to this process. */
static void raise_unsendable(const struct req_inputs *ri, const char *target)
{
	const isola__job_input *in = &ri->in[ri->unsendable - 1];
	const char *why = in->error_message ? in->error_message : "";
	if (in->keyword != NULL)
		PyErr_Format(PyExc_TypeError,
			     "input keyword argument '%s' of %s cannot be sent to a process worker: %s",
			     in->keyword, target, why);
	else
		PyErr_Format(PyExc_TypeError,
			     "input positional argument %d of %s cannot be sent to a process "
			     "worker: %s",
			     in->position, target, why);
}

/* Run one request (GIL held); 0, or an error of the transport. */
static int serve_one(void *buf, size_t len)
{
	struct proc_req h;
	if (len < sizeof(h))
		return ISOLA_EDECODE;
	memcpy(&h, buf, sizeof(h));
	const char *p = (const char *)buf + sizeof(h), *end = (const char *)buf + len;
	if ((size_t)(end - p) < h.target_len)
		return ISOLA_EDECODE;
	char *target = isola__malloc((size_t)h.target_len + 1);
	isola_msg *sets = isola__calloc(h.n ? h.n : 1, sizeof(isola_msg));
	struct req_fds g = { NULL, NULL, 0 };
	if (h.nfds > 0) {
		g.fds = isola__calloc(h.nfds, sizeof(int));
		g.ids = isola__calloc(h.nfds, sizeof(uint64_t));
	}
	if (target == NULL || sets == NULL || (h.nfds > 0 && (g.fds == NULL || g.ids == NULL))) {
		isola__free(target);
		isola__free(sets);
		isola__free(g.fds);
		isola__free(g.ids);
		return ISOLA_ENOMEM;
	}
	memcpy(target, p, h.target_len);
	target[h.target_len] = '\0';
	p += h.target_len;
	/* Mirrors the parent freed: the cache lets go of them. */
	if (h.flags & PROC_FORGET_ALL) {
		isola__mirror_forget(NULL, SIZE_MAX);
	} else if (h.nforget > 0) {
		uint64_t ids[16];
		if (h.nforget > 16 || (size_t)(end - p) < h.nforget * sizeof(uint64_t)) {
			isola__free(target);
			isola__free(sets);
			isola__free(g.fds);
			isola__free(g.ids);
			return ISOLA_EDECODE;
		}
		memcpy(ids, p, h.nforget * sizeof(uint64_t));
		p += h.nforget * sizeof(uint64_t);
		isola__mirror_forget(ids, h.nforget);
	}
	/* The memfds came before the request: there now, or never (no wait). */
	char why[256] = "";
	int fr = 0, fr_errno = 0;
	if (h.nfds > 0) {
		fr = child_sock < 0 ? ISOLA_ENOTFOUND
				    : isola__fds_recv(child_sock, h.id, g.fds, g.ids, h.nfds);
		fr_errno = errno;
		g.n = fr == 0 ? h.nfds : 0;
	}
	int r = 0, bad = 0;
	uint32_t got = 0;
	for (; got < h.n && r == 0; got++) {
		isola_msg_init(&sets[got]);
		int sr = read_set(&p, end, &g, &sets[got], why, sizeof(why));
		if (sr == ISOLA_EPYTHON)
			bad = 1;
		else
			r = sr;
	}
	for (size_t i = 0; i < g.n; i++)
		close(g.fds[i]); /* a mapping keeps its pages; the fd is not needed */
	isola__free(g.fds);
	isola__free(g.ids);
	if (r == 0 && bad && fr != 0)
		snprintf(why, sizeof(why),
			 "the memfds of its isola.Buffer arguments did not reach the process worker "
			 "(%s)",
			 fr == ISOLA_ELIMIT ? "it is out of file descriptors: RLIMIT_NOFILE"
			 : fr == ISOLA_ENOTFOUND ? "none was there"
			 : fr == ISOLA_ESYS ? strerror(fr_errno) : isola_strerror(fr));
	struct req_inputs ri;
	if (r == 0)
		r = read_inputs(&ri, h.kind == ISOLA__PROC_CALL ? h.n_inputs : 0, &p, end);
	else
		memset(&ri, 0, sizeof(ri));
	if (r == 0) {
		isola__codec_opts o = isola__codec_defaults;
		o.allow_pickle = (h.flags & PROC_ALLOW_PICKLE) != 0;
		o.allow_refs = 0; /* results: blobs copied inline */
		o.proc = 1;
		isola__job j = {
			.kind = h.kind == ISOLA__PROC_CHUNK ? ISOLA__JOB_CHUNK : ISOLA__JOB_CALL,
			.target = target,
			.args = &sets[0],
			.argsets = sets,
			.n = h.n,
			.cached = true,
			.codec = &o,
			.inputs = ri.in,
			.n_inputs = ri.n,
		};
		isola_msg result;
		isola_msg_init(&result);
		isola__error e = { 0 };
		size_t failed_at = SIZE_MAX;
		child_task = h.id;
		/* Acquire: pairs with the parent's release store.  Interrupted
		 * while it waited in the ring (its SIGINT, if any, came before
		 * it ran): it does not start. */
		int jr = 0, status = 0;
		if (__atomic_load_n(isola__procshm_word(child_shm), __ATOMIC_ACQUIRE) == h.id) {
			status = ISOLA_ECANCELED;
			e.type = isola__strdup("isola.Cancelled");
			e.message = isola__strdup("interrupted before it started");
		} else if (bad) {
			/* An argument that cannot be had: this task fails with
			 * OSError saying why; the worker goes on. */
			PyErr_SetString(PyExc_OSError, why);
			jr = ISOLA_EPYTHON;
		} else if (ri.unsendable) {
			raise_unsendable(&ri, target);
			jr = ISOLA_EPYTHON;
		} else {
			jr = isola__job_run(&j, &result, &failed_at);
		}
		if (jr < 0) {
			/* Acquire: pairs with the parent's release store. */
			uint64_t want = __atomic_load_n(isola__procshm_word(child_shm), __ATOMIC_ACQUIRE);
			status = isola__outcome_capture(want == h.id ? ISOLA_ECANCELED : 0, &o, &result,
							&e);
			if (jr == ISOLA_ENOTFOUND && status == ISOLA_EPYTHON)
				status = ISOLA_ENOTFOUND;
			if (h.kind == ISOLA__PROC_CHUNK && failed_at != SIZE_MAX &&
			    status == ISOLA_EPYTHON) {
				size_t n = strlen(e.message ? e.message : "") + 48;
				char *m = isola__malloc(n);
				if (m != NULL) {
					snprintf(m, n, "map element %zu: %s",
						 (size_t)h.first + failed_at, e.message ? e.message : "");
					isola__free(e.message);
					e.message = m;
				}
			}
		}
		child_task = 0;
		r = send_reply(h.id, status, &result, status ? &e : NULL,
			       failed_at == SIZE_MAX ? UINT64_MAX : failed_at);
		isola_msg_clear(&result);
		isola__error_clear(&e);
	}
	req_inputs_free(&ri);
	for (uint32_t i = 0; i < got; i++)
		isola_msg_clear(&sets[i]);
	isola__free(sets);
	isola__free(target);
	return r;
}

/* _proc_serve(fd, ppid, setup_error) -> None when the parent says goodbye
 * (or is gone).  setup_error (str or None): the child's setup failed;
 * the parent is told and the loop does not start. */
PyObject *isola__py_proc_serve(PyObject *m, PyObject *args)
{
	(void)m;
	int fd, ppid;
	PyObject *setup_error;
	if (!PyArg_ParseTuple(args, "iiO:_proc_serve", &fd, &ppid, &setup_error))
		return NULL;
	if (child_shm != NULL) {
		PyErr_SetString(PyExc_RuntimeError, "_proc_serve: already serving");
		return NULL;
	}
	/* Die with the parent's thread that started us; if it is gone
	 * already, the check below sees it. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	child_parent = (pid_t)ppid;
	if (getppid() != child_parent)
		_exit(1);
	int r = isola__procshm_attach(fd, &child_shm);
	if (r != 0) {
		PyErr_Format(PyExc_OSError, "_proc_serve: cannot map fd %d: %s", fd, isola_strerror(r));
		return NULL;
	}
	close(fd);
	struct stat st;
	if (fstat(PROC_CHILD_SOCK, &st) == 0 && S_ISSOCK(st.st_mode))
		child_sock = PROC_CHILD_SOCK;
	isola__main_script_elsewhere = 1;
	if (setup_error != Py_None) {
		const char *s = PyUnicode_AsUTF8(setup_error);
		isola__error e = { isola__strdup("Exception"), isola__strdup(s ? s : "?"), NULL };
		PyErr_Clear();
		send_reply(0, ISOLA_EPYTHON, NULL, &e, UINT64_MAX);
		isola__error_clear(&e);
		Py_RETURN_NONE;
	}
	if (send_reply(0, 0, NULL, NULL, UINT64_MAX) != 0)
		Py_RETURN_NONE;
	isola__deadline forever;
	isola__deadline_init(&forever, -1);
	for (;;) {
		void *buf;
		size_t len;
		Py_BEGIN_ALLOW_THREADS
		r = isola__procring_recv(child_shm, ISOLA__PROC_CHILD, &buf, &len, &forever, 20000000,
					 parent_alive, NULL);
		Py_END_ALLOW_THREADS
		if (r != 0)
			break; /* goodbye, or the parent is gone */
		r = serve_one(buf, len);
		isola__free(buf);
		if (r != 0)
			break;
	}
	Py_RETURN_NONE;
}
