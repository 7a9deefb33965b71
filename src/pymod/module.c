/*
 * module.c - the isola Python module: importable in every interpreter,
 * the main one included.  Multi-phase init with all state per
 * interpreter (Py_MOD_PER_INTERPRETER_GIL_SUPPORTED): its types and
 * exceptions are created anew in each interpreter, and it keeps no
 * global PyObject.
 */
#include "pymod/module.h"
#include "pymod/pyproc.h"

#include "channels/channel.h"
#include "interp/call.h"
#include "interp/refusal.h"
#include "interp/frozen.h"
#include "pymod/pychannel.h"
#include "interp/binding.h"
#include "interp/runtime.h"
#include <pthread.h>
#include <string.h>
#include "front_py.h" /* generated: isola__front_source */
#include "exports_py.h" /* generated: isola__exports_source */
#include "interp/interp.h"
#include "scheduler/pool.h"
#include "scheduler/trace.h"


static isola__state *mod_state(PyObject *m)
{
	return PyModule_GetState(m);
}

/* ---- functions -------------------------------------------------------- */

struct select_op {
	isola_channel **chs;
	size_t n;
	isola_msg *msg; /* NULL: _wait_any */
	uint64_t room;
	isola__deadline d;
	int flags;
	size_t *idx;
};

static int select_op(void *arg)
{
	struct select_op *s = arg;
	return s->msg ? isola__channel_select_until(s->chs, s->n, s->msg, &s->d, s->flags, s->idx)
		      : isola__channel_wait_any_room(s->chs, s->n, s->room, &s->d, s->flags, s->idx);
}

/* select() and _wait_any(): wait (GIL released, Ctrl-C and cancel
 * honoured) until one of up to ISOLA_SELECT_MAX channels is ready.  With
 * msg, take its message (select); without, take nothing (_wait_any).
 * Returns the tuple of channels it made (it keeps every Channel, and so
 * its C channel, alive while the GIL is released, whatever other threads
 * do to the caller's list meanwhile) and sets *idx; NULL with an
 * exception set. */
static PyObject *wait_channels(isola__state *st, PyObject *chans, PyObject *timeout,
			       const char *what, isola_msg *msg, uint64_t room, size_t *idx)
{
	int64_t t;
	if (isola__timeout_arg(timeout, &t) < 0)
		return NULL;
	PyObject *seq = PySequence_Tuple(chans);
	if (seq == NULL) {
		if (PyErr_ExceptionMatches(PyExc_TypeError)) {
			PyErr_Clear();
			PyErr_Format(PyExc_TypeError, "%s() takes a sequence of Channels", what);
		}
		return NULL;
	}
	Py_ssize_t n = PyTuple_GET_SIZE(seq);
	isola_channel *chs[ISOLA_SELECT_MAX];
	if (n < 1 || n > ISOLA_SELECT_MAX) {
		Py_DECREF(seq);
		PyErr_Format(PyExc_ValueError, "%s() takes 1 to %d channels, got %zd", what,
			     ISOLA_SELECT_MAX, n);
		return NULL;
	}
	for (Py_ssize_t i = 0; i < n; i++) {
		PyObject *c = PyTuple_GET_ITEM(seq, i);
		if (Py_TYPE(c) != st->channel_type || ((isola__channel_obj *)c)->ch == NULL) {
			Py_DECREF(seq);
			PyErr_Format(PyExc_TypeError, "%s(): item %zd is %s, not a Channel", what, i,
				     Py_TYPE(c)->tp_name);
			return NULL;
		}
		chs[i] = ((isola__channel_obj *)c)->ch;
	}
	struct select_op op = { .chs = chs, .n = (size_t)n, .msg = msg, .room = room, .idx = idx };
	isola__deadline_init(&op.d, 0);
	int r = select_op(&op); /* a first look with the GIL held */
	if (r == ISOLA_EAGAIN && t != 0) {
		isola__deadline_init(&op.d, t);
		op.flags = ISOLA__WAIT_INTERRUPTIBLE;
		if (isola__wait_released(select_op, &op, &r) < 0) {
			Py_DECREF(seq);
			return NULL;
		}
	}
	if (r != 0) {
		Py_DECREF(seq);
		return isola__raise(st, r == ISOLA_EAGAIN ? ISOLA_ETIMEDOUT : r, ISOLA__FOR_OTHER, what);
	}
	return seq;
}

static PyObject *mod_select(PyObject *m, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "channels", "timeout", NULL };
	PyObject *chans, *timeout = Py_None;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "O|O:select", kwlist, &chans, &timeout))
		return NULL;
	isola__state *st = mod_state(m);
	isola_msg msg;
	isola_msg_init(&msg);
	size_t idx = 0;
	PyObject *seq = wait_channels(st, chans, timeout, "select", &msg, 0, &idx);
	if (seq == NULL)
		return NULL;
	PyObject *chan = PyTuple_GET_ITEM(seq, (Py_ssize_t)idx);
	isola__codec_opts o = isola__channel_codec_opts(((isola__channel_obj *)chan)->ch);
	PyObject *obj = isola__decode(st, &msg, &o);
	isola_msg_clear(&msg);
	PyObject *result = obj ? PyTuple_Pack(2, chan, obj) : NULL;
	Py_XDECREF(obj);
	Py_DECREF(seq);
	return result;
}

/* _wait_any(channels, timeout=None, room=0) -> index of one that holds a
 * message, or has room where bit i of room is set, or is closed; takes
 * and sends nothing. */
static PyObject *mod_wait_any(PyObject *m, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "channels", "timeout", "room", NULL };
	PyObject *chans, *timeout = Py_None;
	unsigned long long room = 0;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "O|OK:_wait_any", kwlist, &chans, &timeout,
					 &room))
		return NULL;
	size_t idx = 0;
	PyObject *seq = wait_channels(mod_state(m), chans, timeout, "_wait_any", NULL,
				      (uint64_t)room, &idx);
	if (seq == NULL)
		return NULL;
	Py_DECREF(seq);
	return PyLong_FromSize_t(idx);
}

static PyObject *mod_share(PyObject *m, PyObject *obj)
{
	isola__state *st = mod_state(m);
	if (Py_TYPE(obj) == st->buffer_type)
		return Py_NewRef(obj);
	isola_blob *blob = NULL;
	int r;
	if (PyBytes_CheckExact(obj)) {
		/* immutable: share its memory, no copy */
		r = isola__owner_blob(st->owner, obj, PyBytes_AS_STRING(obj),
				      (size_t)PyBytes_GET_SIZE(obj), &blob);
	} else if (PyObject_CheckBuffer(obj)) {
		/* mutable or foreign memory: one copy, then shared */
		Py_buffer v;
		if (PyObject_GetBuffer(obj, &v, PyBUF_FULL_RO) < 0)
			return NULL;
		if (PyBuffer_IsContiguous(&v, 'C')) {
			r = isola_blob_create(v.buf, (size_t)v.len, &blob);
		} else {
			void *tmp = PyMem_Malloc((size_t)v.len ? (size_t)v.len : 1);
			r = tmp ? PyBuffer_ToContiguous(tmp, &v, v.len, 'C') : -1;
			r = r == 0 ? isola_blob_create(tmp, (size_t)v.len, &blob) : ISOLA_ENOMEM;
			PyMem_Free(tmp);
		}
		PyBuffer_Release(&v);
	} else {
		return PyErr_Format(PyExc_TypeError,
				    "share() takes a bytes-like object, not %s",
				    Py_TYPE(obj)->tp_name);
	}
	if (r != 0)
		return PyErr_NoMemory();
	PyObject *b = isola__buffer_wrap(st, blob);
	isola_blob_release(blob);
	return b;
}

/* obj, *, allow_pickle=True, max_size=1 GiB, max_depth=512 */
static int parse_codec_args(PyObject *args, PyObject *kw, const char *fmt,
			    PyObject **obj, isola__codec_opts *o, int allow)
{
	static char *kwlist[] = { "obj", "allow_pickle", "max_size", "max_depth", NULL };
	int depth = ISOLA__MAX_DEPTH_DEFAULT;
	Py_ssize_t size = (Py_ssize_t)ISOLA__MAX_SIZE_DEFAULT;
	*o = isola__codec_defaults;
	if (!PyArg_ParseTupleAndKeywords(args, kw, fmt, kwlist, obj, &allow, &size, &depth))
		return -1;
	/* Ext lengths are 32-bit (msgpack): no message may pass 4 GiB - 1. */
	if (size < 1 || (uint64_t)size > UINT32_MAX || depth < 1 ||
	    depth > ISOLA__MAX_DEPTH_DEFAULT) {
		PyErr_Format(PyExc_ValueError, "max_size must be 1..2**32-1 and max_depth 1..%d",
			     ISOLA__MAX_DEPTH_DEFAULT);
		return -1;
	}
	o->allow_pickle = allow;
	o->max_size = (size_t)size;
	o->max_depth = depth;
	return 0;
}

static PyObject *mod_dumps(PyObject *m, PyObject *args, PyObject *kw)
{
	PyObject *obj;
	isola__codec_opts o;
	if (parse_codec_args(args, kw, "O|$pni:dumps", &obj, &o, 1) < 0)
		return NULL;
	o.allow_refs = 0;
	return isola__encode_bytes(mod_state(m), obj, &o);
}

static PyObject *mod_loads(PyObject *m, PyObject *args, PyObject *kw)
{
	PyObject *obj;
	isola__codec_opts o;
	if (parse_codec_args(args, kw, "O|$pni:loads", &obj, &o, 0) < 0)
		return NULL;
	Py_buffer v;
	if (PyObject_GetBuffer(obj, &v, PyBUF_SIMPLE) < 0)
		return NULL;
	PyObject *r = isola__decode_bytes(mod_state(m), v.buf, (size_t)v.len, &o);
	PyBuffer_Release(&v);
	return r;
}

static PyObject *mod_getattr(PyObject *m, PyObject *name);

static PyObject *mod_resolve(PyObject *m, PyObject *arg);
static PyObject *mod_subinterp_refusal(PyObject *m, PyObject *exc);

/* _trace_close_all(): end every trace file now (private: front.py's exit
 * with abandoned tasks, which leaves by os._exit, past the C atexit hook). */
static PyObject *mod_trace_close_all(PyObject *m, PyObject *unused)
{
	(void)m;
	(void)unused;
	Py_BEGIN_ALLOW_THREADS
	isola__trace_close_all();
	Py_END_ALLOW_THREADS
	Py_RETURN_NONE;
}

/* _fallbacks_recorded(): how many silent fallbacks (new modules) every
 * pool has recorded so far (private: front.py compares it after each
 * completion, and reads a pool's records only when it changed). */
static PyObject *mod_fallbacks_recorded(PyObject *m, PyObject *unused)
{
	(void)m;
	(void)unused;
	return PyLong_FromUnsignedLongLong(isola__fallbacks_recorded());
}

static PyMethodDef mod_methods[] = {
	{ "_fallbacks_recorded", mod_fallbacks_recorded, METH_NOARGS,
	  "_fallbacks_recorded()\n--\n\nSilent fallbacks recorded by every pool so far "
	  "(private)." },
	{ "_trace_close_all", mod_trace_close_all, METH_NOARGS,
	  "_trace_close_all()\n--\n\nWrite and close every trace file now (private)." },
	{ "select", (PyCFunction)(void (*)(void))mod_select, METH_VARARGS | METH_KEYWORDS,
	  "select(channels, timeout=None)\n--\n\nWait until one of up to 64 channels has a "
	  "message and receive it: returns (channel, obj).  Closed, drained channels are "
	  "skipped; raises ChannelClosed when all are, TimeoutError on timeout." },
	{ "_wait_any", (PyCFunction)(void (*)(void))mod_wait_any, METH_VARARGS | METH_KEYWORDS,
	  "_wait_any(channels, timeout=None, room=0)\n--\n\nThe index of one of up to 64 "
	  "channels that holds a message (has room, where bit i of room is set) or is "
	  "closed; takes and sends nothing (private)." },
	{ "share", mod_share, METH_O,
	  "share(data)\n--\n\nA read-only Buffer over data that travels through channels "
	  "by reference, never copied.  bytes are shared in place; other bytes-like "
	  "objects are copied once." },
	{ "dumps", (PyCFunction)(void (*)(void))mod_dumps, METH_VARARGS | METH_KEYWORDS,
	  "dumps(obj, *, allow_pickle=True, max_size=2**30, max_depth=512)\n--\n\n"
	  "Encode obj in isola's msgpack wire format (docs/wire.md)." },
	{ "loads", (PyCFunction)(void (*)(void))mod_loads, METH_VARARGS | METH_KEYWORDS,
	  "loads(data, *, allow_pickle=False, max_size=2**30, max_depth=512)\n--\n\n"
	  "Decode isola's msgpack wire format; raises ValueError naming the offset "
	  "of any problem.  Bytes from outside the process are what loads is for, so "
	  "the pickle fallback (which can run any code) is off unless allow_pickle=True." },
	{ "freeze", isola__py_freeze, METH_O,
	  "freeze(obj)\n--\n\nA deeply immutable copy of obj that every interpreter reads in "
	  "place and that travels by reference: dicts become FrozenMap, lists FrozenSeq, sets "
	  "frozenset; None, bool, int, float, complex, str, bytes, tuple and datetime values "
	  "are kept.  TypeError, naming the path, for anything else." },
	{ "thaw", isola__py_thaw, METH_O,
	  "thaw(obj)\n--\n\nobj with every FrozenMap and FrozenSeq in it made a plain dict / "
	  "list again (a copy in this interpreter)." },
	{ "publish", (PyCFunction)(void (*)(void))isola__py_publish, METH_FASTCALL,
	  "publish(name, value)\n--\n\nFreeze value (unless it is frozen) and register it "
	  "under name for every interpreter of the process (isola.lookup); returns the "
	  "frozen value.  Replaces what name held." },
	{ "lookup", (PyCFunction)(void (*)(void))isola__py_lookup, METH_FASTCALL,
	  "lookup(name[, default])\n--\n\nThe frozen value published under name, from any "
	  "interpreter; KeyError (or default) if there is none." },
	{ "unpublish", isola__py_unpublish, METH_O,
	  "unpublish(name)\n--\n\nForget name (KeyError if unknown).  Readers keep the "
	  "values they looked up." },
	{ "__getattr__", mod_getattr, METH_O, NULL },
	{ "_subinterp_refusal", mod_subinterp_refusal, METH_O,
	  "_subinterp_refusal(exc)\n--\n\nThe name of the extension module whose refusal "
	  "to load in a sub-interpreter exc is (or re-raises), else None (private; "
	  "interp/refusal.h)." },
	{ "_resolve_target", mod_resolve, METH_O,
	  "_resolve_target(target)\n--\n\n\"module:qualname\" to the object, as workers resolve "
	  "targets (private)." },
	{ "_set_main_path", isola__set_main_path, METH_VARARGS,
	  "_set_main_path(path, refusal=None)\n--\n\nWorkers: where to import the caller's "
	  "__main__ script from, or why not to (refusal: the RuntimeError's text); the "
	  "worker's __main__ then finds the script's names (private)." },
	{ "_task_deadline", isola__py_task_deadline, METH_O,
	  "_task_deadline(seconds)\n--\n\nFrom a task on a pool worker: restart its deadline "
	  "(0: none); returns 1 if it was cancelled, 2 if it timed out (forgiven), else 0 "
	  "(private; isola map's per-item timeout)." },
	{ "_proc_serve", isola__py_proc_serve, METH_VARARGS,
	  "_proc_serve(fd, ppid, setup_error)\n--\n\nA process worker's loop (private: "
	  "isola._proc_worker runs it)." },
	{ "_proc_mirror_stats", isola__py_proc_mirror_stats, METH_NOARGS,
	  "_proc_mirror_stats()\n--\n\nBlobs shared with process workers: this process's "
	  "mirrors (made, live, live_bytes, refused) and, in a process worker, its mappings "
	  "(maps, hits, mapped, mapped_bytes, recent) (private)." },
	{ "_buffer_shm", isola__py_buffer_shm, METH_O,
	  "_buffer_shm(buf)\n--\n\nThe memfd behind an isola.Buffer shared with process "
	  "workers, or None (private)." },
	{ "_proc_interrupt_due", isola__py_proc_interrupt_due, METH_NOARGS,
	  "_proc_interrupt_due()\n--\n\nIn a process worker: whether the parent asked to "
	  "interrupt the running task (private)." },
	{ NULL, NULL, 0, NULL },
};

/* ---- lifecycle ---------------------------------------------------------- */

static int add_exc(PyObject *m, PyObject **slot, const char *name, PyObject *base,
		   const char *doc)
{
	char full[64];
	snprintf(full, sizeof(full), "isola.%s", name);
	*slot = PyErr_NewExceptionWithDoc(full, doc, base, NULL);
	if (*slot == NULL)
		return -1;
	return PyModule_AddObjectRef(m, name, *slot);
}

/* isola's pure-Python submodules (isola.dask) live in the folder "isola"
 * beside the extension module file: a __path__ naming it makes `import
 * isola.dask` find them.  Worker interpreters create the module without
 * a file; they use the folder the first file-backed import found (kept
 * process-wide, under package_dir_lock: interpreters run module exec
 * under different GILs).  No folder known (isola built into a C
 * program): no submodules. */
static pthread_mutex_t package_dir_lock = PTHREAD_MUTEX_INITIALIZER;
static PyObject *package_dir_of_file(PyObject *m)
{
	PyObject *file = PyObject_GetAttrString(m, "__file__");
	if (file == NULL) {
		PyErr_Clear();
		return NULL;
	}
	PyObject *os_path = PyImport_ImportModule("os.path");
	PyObject *dir = os_path ? PyObject_CallMethod(os_path, "dirname", "O", file) : NULL;
	PyObject *sub = dir ? PyObject_CallMethod(os_path, "join", "Os", dir, "isola") : NULL;
	Py_XDECREF(dir);
	Py_XDECREF(os_path);
	Py_DECREF(file);
	return sub;
}

static int add_package_path(PyObject *m)
{
	static char known[4096]; /* guarded by package_dir_lock */
	PyObject *sub = package_dir_of_file(m);
	if (sub == NULL && PyErr_Occurred())
		return -1;
	pthread_mutex_lock(&package_dir_lock);
	if (sub != NULL && known[0] == 0) {
		const char *u = PyUnicode_AsUTF8(sub);
		if (u != NULL && strlen(u) < sizeof known)
			strcpy(known, u);
	} else if (sub == NULL && known[0] != 0) {
		sub = PyUnicode_FromString(known);
	}
	pthread_mutex_unlock(&package_dir_lock);
	if (sub == NULL)
		return PyErr_Occurred() ? -1 : 0;
	PyErr_Clear(); /* PyUnicode_AsUTF8 of a path with surrogates: no sharing */
	PyObject *path = PyList_New(1);
	int r = -1;
	if (path != NULL) {
		PyList_SET_ITEM(path, 0, Py_NewRef(sub));
		r = PyModule_AddObjectRef(m, "__path__", path);
	}
	Py_XDECREF(path);
	Py_DECREF(sub);
	return r;
}

static int mod_exec(PyObject *m)
{
	isola__state *st = mod_state(m);
	const char *old = isola__python_warning();
	if (old != NULL && PyInterpreterState_Get() == PyInterpreterState_Main() &&
	    PyErr_WarnEx(PyExc_RuntimeWarning, old, 1) < 0)
		return -1;
	st->channel_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &isola__channel_spec, NULL);
	st->buffer_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &isola__buffer_spec, NULL);
	if (st->channel_type == NULL || st->buffer_type == NULL)
		return -1;
	st->pool_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &isola__pool_spec, NULL);
	st->cfuture_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &isola__cfuture_spec, NULL);
	if (st->pool_type == NULL || st->cfuture_type == NULL)
		return -1;
	if (isola__frozen_types_add(m, st) < 0)
		return -1;
	PyObject *lane_type = PyType_FromModuleAndSpec(m, &isola__proclane_spec, NULL);
	int lane_added = lane_type ? PyModule_AddType(m, (PyTypeObject *)lane_type) : -1;
	Py_XDECREF(lane_type);
	if (lane_added < 0)
		return -1;
	if (PyModule_AddType(m, st->channel_type) < 0 || PyModule_AddType(m, st->buffer_type) < 0 ||
	    PyModule_AddType(m, st->pool_type) < 0 || PyModule_AddType(m, st->cfuture_type) < 0)
		return -1;
	PyObject *base = NULL;
	if (add_exc(m, &base, "ChannelError", NULL, "Base class of channel errors.") < 0)
		return -1;
	int r = add_exc(m, &st->ChannelClosed, "ChannelClosed", base,
			"The channel is closed (and, for receivers, drained).") |
		add_exc(m, &st->ChannelFull, "ChannelFull", base,
			"send_nowait() on a full channel.") |
		add_exc(m, &st->ChannelEmpty, "ChannelEmpty", base,
			"recv_nowait() on an empty channel.") |
		add_exc(m, &st->RemoteError, "RemoteError", NULL,
			"An exception raised in another interpreter whose type is not a "
			"builtin: .type_name, .message, .remote_args, .remote_traceback.") |
		add_exc(m, &st->Cancelled, "Cancelled", PyExc_BaseException,
			"Raised inside a task's Python code when the task is cancelled or "
			"times out.") |
		add_exc(m, &st->InputFailed, "InputFailed", NULL,
			"A task of a graph did not run: one of its inputs (a Future passed "
			"as an argument) failed, was cancelled or timed out.  The message "
			"names the input; __cause__ is the input's exception.");
	Py_DECREF(base);
	if (r < 0)
		return -1;
	st->owner = isola__owner_new();
	if (st->owner == NULL) {
		PyErr_NoMemory();
		return -1;
	}
	if (PyModule_AddStringConstant(m, "__version__", "0.1.0") < 0 ||
	    PyModule_AddIntConstant(m, "BLOB_THRESHOLD", (long)ISOLA__BLOB_THRESHOLD_DEFAULT) < 0 ||
	    PyModule_AddIntConstant(m, "MAX_WORKERS", ISOLA_MAX_WORKERS) < 0 ||
	    PyModule_AddIntConstant(m, "ACTOR_MAX_RESTARTS", ISOLA_ACTOR_MAX_RESTARTS) < 0 ||
	    PyModule_AddObject(m, "ACTOR_RESTART_WINDOW",
			       PyFloat_FromDouble((double)ISOLA_ACTOR_WINDOW_NS / 1e9)) < 0 ||
	    PyModule_AddIntConstant(m, "_FUTURE_PENDING", ISOLA_FUTURE_PENDING) < 0 ||
	    PyModule_AddIntConstant(m, "_FUTURE_RUNNING", ISOLA_FUTURE_RUNNING) < 0 ||
	    PyModule_AddIntConstant(m, "_FUTURE_DONE", ISOLA_FUTURE_DONE) < 0)
		return -1;
	if (add_package_path(m) < 0 || PyModule_AddFunctions(m, isola__exports_methods) < 0)
		return -1;
	PyObject *d = PyInterpreterState_GetDict(PyInterpreterState_Get());
	if (d == NULL || PyDict_SetItemString(d, ISOLA__STATE_KEY, m) < 0)
		return -1;
	isola__preload_single_phase();
	isola__runtime_bind(&isola__pymod_binding);
	isola__runtime_attach();
	return 0;
}

/* Run front.py in the module's namespace, once per interpreter. */
int isola__front_load(PyObject *m)
{
	isola__state *st = mod_state(m);
	if (st->front_loaded)
		return 0;
	st->front_loaded = 1;
	/* An extension module's dict has no __builtins__; code run in it
	 * needs one (pickle's import machinery reads it from the caller's
	 * globals, so without it every pickle fallback in front.py fails). */
	PyObject *g = PyModule_GetDict(m);
	if (PyDict_SetItemString(g, "__builtins__", PyEval_GetBuiltins()) < 0) {
		st->front_loaded = 0;
		return -1;
	}
	PyObject *code = Py_CompileString(isola__front_source, "isola/front.py", Py_file_input);
	PyObject *ran = code ? PyEval_EvalCode(code, g, g) : NULL;
	Py_XDECREF(code);
	if (ran != NULL) { /* then exports.py, which refines front's Pool */
		Py_DECREF(ran);
		code = Py_CompileString(isola__exports_source, "isola/exports.py", Py_file_input);
		ran = code ? PyEval_EvalCode(code, g, g) : NULL;
		Py_XDECREF(code);
	}
	if (ran == NULL) {
		st->front_loaded = 0;
		return -1;
	}
	Py_DECREF(ran);
	return 0;
}

/* PEP 562: a name the C part lacks loads the front (once) and is looked
 * up again there. */
static PyObject *mod_getattr(PyObject *m, PyObject *name)
{
	isola__state *st = mod_state(m);
	const char *n = PyUnicode_AsUTF8(name);
	if (n == NULL)
		return NULL;
	/* The import system asks for dunders (__path__, __spec__) before the
	 * module is ready: those never load the front. */
	int dunder = strncmp(n, "__", 2) == 0;
	if (st != NULL && !st->front_loaded && !dunder) {
		if (isola__front_load(m) < 0)
			return NULL;
		PyObject *v = PyDict_GetItemWithError(PyModule_GetDict(m), name);
		if (v != NULL)
			return Py_NewRef(v);
		if (PyErr_Occurred())
			return NULL;
	}
	return PyErr_Format(PyExc_AttributeError, "module 'isola' has no attribute '%U'", name);
}

/* _resolve_target("module:qualname") -> the object, as workers resolve targets. */
static PyObject *mod_resolve(PyObject *m, PyObject *arg)
{
	(void)m;
	const char *t = PyUnicode_AsUTF8(arg);
	return t ? isola__resolve_target(t) : NULL;
}

static PyObject *mod_subinterp_refusal(PyObject *m, PyObject *exc)
{
	(void)m;
	if (!PyExceptionInstance_Check(exc))
		return PyErr_Format(PyExc_TypeError, "expected an exception, not %s",
				    Py_TYPE(exc)->tp_name);
	PyObject *name = isola__subinterp_refusal(exc);
	return name != NULL ? name : Py_NewRef(Py_None);
}

/* Every object reference the module state holds, in one list that both
 * traverse and clear use (so neither can miss one). */
#define STATE_REFS(X)                                                                  \
	X(channel_type) X(buffer_type) X(ChannelClosed) X(ChannelFull) X(ChannelEmpty)  \
	X(RemoteError) X(Cancelled) X(InputFailed) X(datetime_mod) X(dt_datetime) X(dt_date)          \
	X(dt_time) X(dt_timedelta) X(dt_timezone) X(dt_utc) X(pickle_dumps)             \
	X(pickle_loads) X(remote_error_classes) X(pool_type) X(cfuture_type)            \
	X(frozen_map_type) X(frozen_seq_type) X(frozen_iter_type) X(frozen_views[0])    \
	X(frozen_views[1]) X(frozen_views[2]) X(main_path) X(targets) X(actors)         \
	X(actor_raised) X(main_refusal) X(refusals)

static int mod_traverse(PyObject *m, visitproc visit, void *arg)
{
	isola__state *st = mod_state(m);
#define VISIT_REF(field) Py_VISIT(st->field);
	STATE_REFS(VISIT_REF)
#undef VISIT_REF
	return 0;
}

static int mod_clear(PyObject *m)
{
	isola__state *st = mod_state(m);
#define CLEAR_REF(field) Py_CLEAR(st->field);
	STATE_REFS(CLEAR_REF)
#undef CLEAR_REF
	return 0;
}

static void mod_free(void *m)
{
	mod_clear(m);
	isola__state *st = mod_state(m);
	isola__owner_retire(st->owner);
	st->owner = NULL;
}

static PyModuleDef_Slot mod_slots[] = {
	{ Py_mod_exec, mod_exec },
	{ Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED },
#if PY_VERSION_HEX >= 0x030D0000
	{ Py_mod_gil, Py_MOD_GIL_USED },
#endif
	{ 0, NULL },
};

PyModuleDef isola__module_def = {
	PyModuleDef_HEAD_INIT,
	.m_name = "isola",
	.m_doc = "isola: run Python on every core, one isolated sub-interpreter per "
		 "thread, connected by lock-free channels.",
	.m_size = sizeof(isola__state),
	.m_methods = mod_methods,
	.m_slots = mod_slots,
	.m_traverse = mod_traverse,
	.m_clear = mod_clear,
	.m_free = mod_free,
};

PyMODINIT_FUNC PyInit_isola(void)
{
	return PyModuleDef_Init(&isola__module_def);
}

int isola__module_install(void)
{
	PyObject *modules = PyImport_GetModuleDict(); /* borrowed */
	PyObject *have = PyDict_GetItemString(modules, "isola");
	if (have != NULL)
		return 0;
	PyObject *machinery = PyImport_ImportModule("importlib.machinery");
	PyObject *spec = machinery ? PyObject_CallMethod(machinery, "ModuleSpec", "sO",
							 "isola", Py_None)
				   : NULL;
	Py_XDECREF(machinery);
	if (spec == NULL)
		return -1;
	PyObject *m = PyModule_FromDefAndSpec(&isola__module_def, spec);
	Py_DECREF(spec);
	if (m == NULL)
		return -1;
	if (PyModule_ExecDef(m, &isola__module_def) < 0 ||
	    PyDict_SetItemString(modules, "isola", m) < 0) {
		Py_DECREF(m);
		return -1;
	}
	Py_DECREF(m);
	return 0;
}
