/*
 * pychannel.c - isola.Channel: a Python face on an isola_channel.
 *
 * Any interpreter may hold a Channel for the same isola_channel (it
 * travels between interpreters as a reference).  Every blocking call
 * tries once with the GIL held (the common, uncontended case costs no
 * GIL release), then waits with the GIL released, waking for signals so
 * Ctrl-C works in the main interpreter.
 */
#include "pymod/pychannel.h"

#include "channels/channel.h"
#include "interp/codec.h"
#include "pymod/module.h"

int isola__timeout_arg(PyObject *timeout, int64_t *ns)
{
	*ns = -1;
	if (timeout == NULL || timeout == Py_None)
		return 0;
	double s = PyFloat_AsDouble(timeout);
	if (s == -1.0 && PyErr_Occurred())
		return -1;
	if (!(s >= 0)) {
		PyErr_SetString(PyExc_ValueError, "timeout must be None or a number >= 0");
		return -1;
	}
	if (s <= 1e9) /* more: ~31 years, forever */
		*ns = (int64_t)(s * 1e9 + 0.5);
	return 0;
}

struct channel_op {
	isola_channel *ch;
	isola_msg *msg;
	isola__deadline d;
	int is_send;
};

static int channel_op(void *arg)
{
	struct channel_op *c = arg;
	return c->is_send ? isola__channel_send_until(c->ch, c->msg, &c->d, ISOLA__WAIT_INTERRUPTIBLE)
			  : isola__channel_recv_until(c->ch, c->msg, &c->d, ISOLA__WAIT_INTERRUPTIBLE);
}

static int wait_interrupted(void);

int isola__channel_wait_op(isola_channel *ch, isola_msg *msg, int64_t timeout_ns,
			   int is_send, int nowait)
{
	int r = is_send ? isola__channel_try_send(ch, msg) : isola__channel_try_recv(ch, msg);
	if (r == ISOLA_EAGAIN && !nowait && timeout_ns != 0) {
		struct channel_op c = { .ch = ch, .msg = msg, .is_send = is_send };
		isola__deadline_init(&c.d, timeout_ns);
		if (isola__wait_released(channel_op, &c, &r) < 0)
			return -1;
	}
	if (r == ISOLA_EAGAIN && !nowait)
		r = ISOLA_ETIMEDOUT; /* a wait that ran out, or timeout=0 */
	if (r == 0)
		return 0;
	isola__state *st = isola__state_current();
	if (st != NULL)
		isola__raise(st, r, is_send ? ISOLA__FOR_SEND : ISOLA__FOR_RECV,
			     is_send ? "send" : "recv");
	return -1;
}

int isola__wait_released(int (*op)(void *arg), void *arg, int *status)
{
	for (;;) {
		int r;
		Py_BEGIN_ALLOW_THREADS
		r = op(arg);
		Py_END_ALLOW_THREADS
		if (r != ISOLA_EINTR) {
			*status = r;
			return 0;
		}
		if (wait_interrupted() < 0)
			return -1;
	}
}

/* After an ISOLA_EINTR wait (GIL held): run signal handlers, and raise
 * isola.Cancelled if this worker's task was cancelled meanwhile.  -1
 * with an exception set: end the wait; 0: wait again. */
static int wait_interrupted(void)
{
	/* Run signal handlers (main interpreter, main thread); a
	 * KeyboardInterrupt ends the wait, anything else resumes it. */
	if (PyErr_CheckSignals() < 0)
		return -1;
	if (!isola__wait_aborted())
		return 0;
	/* The pool's watchdog cancelled this worker's task (or it timed
	 * out) while it waited here: raise Cancelled now, and drop the
	 * asynchronous one it also posted, which would hit the task a
	 * second time at its next bytecode. */
	isola__state *st = isola__state_current();
	PyThreadState_SetAsyncExc(PyThread_get_thread_ident(), NULL);
	if (st != NULL)
		PyErr_SetString(st->Cancelled, "the task was cancelled while it waited");
	return -1;
}

static isola__state *chan_state(PyObject *self)
{
	return PyType_GetModuleState(Py_TYPE(self));
}

static int chan_init(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "capacity", "allow_pickle", NULL };
	Py_ssize_t capacity = 1024;
	int allow_pickle = 1;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "|n$p:Channel", kwlist, &capacity,
					 &allow_pickle))
		return -1;
	if (capacity < 1 || (size_t)capacity > ISOLA_CHANNEL_MAX_CAPACITY) {
		PyErr_Format(PyExc_ValueError, "capacity must be between 1 and %u",
			     ISOLA_CHANNEL_MAX_CAPACITY);
		return -1;
	}
	isola__channel_obj *c = (isola__channel_obj *)self;
	if (c->ch != NULL) {
		/* Other threads may be blocked on the channel: it never changes. */
		PyErr_SetString(PyExc_RuntimeError, "a Channel cannot be initialised twice");
		return -1;
	}
	isola_channel *ch;
	if (isola_channel_create((size_t)capacity, &ch) != 0) {
		PyErr_NoMemory();
		return -1;
	}
	isola__channel_set_tags(ch, allow_pickle ? 0 : ISOLA__TAG_NO_PICKLE);
	c->ch = ch;
	return 0;
}

static void chan_dealloc(PyObject *self)
{
	PyTypeObject *tp = Py_TYPE(self);
	isola_channel_release(((isola__channel_obj *)self)->ch);
	tp->tp_free(self);
	Py_DECREF(tp);
}

static isola_channel *need_ch(PyObject *self)
{
	isola_channel *ch = ((isola__channel_obj *)self)->ch;
	if (ch == NULL)
		PyErr_SetString(PyExc_ValueError, "Channel.__init__ was not called");
	return ch;
}

static int get_stats(PyObject *self, isola_channel_stats *s);

isola__codec_opts isola__channel_codec_opts(isola_channel *ch)
{
	isola__codec_opts o = isola__codec_defaults;
	o.allow_pickle = !(isola__channel_tags(ch) & ISOLA__TAG_NO_PICKLE);
	return o;
}

static isola__codec_opts opts_for(PyObject *self)
{
	return isola__channel_codec_opts(((isola__channel_obj *)self)->ch);
}

static PyObject *do_send(PyObject *self, PyObject *obj, int64_t timeout_ns, int nowait)
{
	isola_channel *ch = need_ch(self);
	if (ch == NULL)
		return NULL;
	isola__state *st = chan_state(self);
	isola__codec_opts o = opts_for(self);
	isola_msg msg;
	if (isola__encode(st, obj, &o, &msg) < 0)
		return NULL;
	if (isola__channel_wait_op(ch, &msg, timeout_ns, 1, nowait) == 0)
		Py_RETURN_NONE;
	isola_msg_clear(&msg); /* undelivered: drop its payload and refs */
	return NULL;
}

static PyObject *do_recv(PyObject *self, int64_t timeout_ns, int nowait)
{
	isola_channel *ch = need_ch(self);
	if (ch == NULL)
		return NULL;
	isola__state *st = chan_state(self);
	isola_msg msg;
	isola_msg_init(&msg);
	if (isola__channel_wait_op(ch, &msg, timeout_ns, 0, nowait) < 0)
		return NULL;
	isola__codec_opts o = opts_for(self);
	PyObject *obj = isola__decode(st, &msg, &o);
	isola_msg_clear(&msg);
	return obj;
}

static PyObject *chan_send(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "obj", "timeout", NULL };
	PyObject *obj, *timeout = Py_None;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "O|O:send", kwlist, &obj, &timeout))
		return NULL;
	int64_t t;
	return isola__timeout_arg(timeout, &t) < 0 ? NULL : do_send(self, obj, t, 0);
}

static PyObject *chan_recv(PyObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "timeout", NULL };
	PyObject *timeout = Py_None;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:recv", kwlist, &timeout))
		return NULL;
	int64_t t;
	return isola__timeout_arg(timeout, &t) < 0 ? NULL : do_recv(self, t, 0);
}

static PyObject *chan_send_nowait(PyObject *self, PyObject *obj)
{
	return do_send(self, obj, 0, 1);
}

static PyObject *chan_recv_nowait(PyObject *self, PyObject *unused)
{
	(void)unused;
	return do_recv(self, 0, 1);
}

static PyObject *chan_close(PyObject *self, PyObject *unused)
{
	(void)unused;
	isola_channel *ch = need_ch(self);
	if (ch == NULL)
		return NULL;
	isola_channel_close(ch);
	Py_RETURN_NONE;
}

static PyObject *chan_stats(PyObject *self, PyObject *unused)
{
	(void)unused;
	isola_channel_stats s;
	if (get_stats(self, &s) < 0)
		return NULL;
	return Py_BuildValue("{s:K,s:K,s:K,s:K,s:K,s:K,s:O}", "capacity",
			     (unsigned long long)s.capacity, "sent", (unsigned long long)s.sent,
			     "received", (unsigned long long)s.received, "depth",
			     (unsigned long long)s.depth, "peak_depth",
			     (unsigned long long)s.peak_depth, "full_waits",
			     (unsigned long long)s.full_waits, "closed",
			     s.closed ? Py_True : Py_False);
}

/* The channel's counters; -1 (error set) if __init__ was not called. */
static int get_stats(PyObject *self, isola_channel_stats *s)
{
	isola_channel *ch = need_ch(self);
	if (ch == NULL)
		return -1;
	isola_channel_stats_get(ch, s);
	return 0;
}

static Py_ssize_t chan_len(PyObject *self)
{
	isola_channel_stats s;
	return get_stats(self, &s) < 0 ? -1 : (Py_ssize_t)s.depth;
}

static PyObject *chan_iternext(PyObject *self)
{
	PyObject *r = do_recv(self, -1, 0);
	if (r == NULL && PyErr_ExceptionMatches(chan_state(self)->ChannelClosed))
		PyErr_Clear(); /* NULL without an error: StopIteration */
	return r;
}

static PyObject *chan_get_capacity(PyObject *self, void *c)
{
	(void)c;
	isola_channel_stats s;
	return get_stats(self, &s) < 0 ? NULL : PyLong_FromUnsignedLongLong(s.capacity);
}

static PyObject *chan_get_closed(PyObject *self, void *c)
{
	(void)c;
	isola_channel_stats s;
	return get_stats(self, &s) < 0 ? NULL : PyBool_FromLong(s.closed);
}

static PyObject *chan_repr(PyObject *self)
{
	isola_channel *ch = ((isola__channel_obj *)self)->ch;
	if (ch == NULL)
		return PyUnicode_FromString("<isola.Channel (uninitialised)>");
	isola_channel_stats s;
	isola_channel_stats_get(ch, &s);
	return PyUnicode_FromFormat("<isola.Channel %p depth=%llu/%llu%s>", (void *)ch,
				    (unsigned long long)s.depth,
				    (unsigned long long)s.capacity, s.closed ? " closed" : "");
}

/* Two Channel objects are equal when they are the same channel, even in
 * different interpreters. */
static PyObject *chan_richcompare(PyObject *a, PyObject *b, int op)
{
	if (Py_TYPE(a) != Py_TYPE(b) || (op != Py_EQ && op != Py_NE))
		Py_RETURN_NOTIMPLEMENTED;
	int same = ((isola__channel_obj *)a)->ch == ((isola__channel_obj *)b)->ch;
	return PyBool_FromLong(op == Py_EQ ? same : !same);
}

static Py_hash_t chan_hash(PyObject *self)
{
	return Py_HashPointer(((isola__channel_obj *)self)->ch);
}

/* recv_async()/send_async(obj): coroutines from front.py (loaded now). */
static PyObject *chan_front_call(PyObject *self, const char *fn, PyObject *arg)
{
	PyObject *m = PyType_GetModule(Py_TYPE(self));
	if (m == NULL || isola__front_load(m) < 0)
		return NULL;
	PyObject *f = PyObject_GetAttrString(m, fn);
	if (f == NULL)
		return NULL;
	PyObject *r = arg ? PyObject_CallFunctionObjArgs(f, self, arg, NULL)
			  : PyObject_CallOneArg(f, self);
	Py_DECREF(f);
	return r;
}

static PyObject *chan_recv_async(PyObject *self, PyObject *unused)
{
	(void)unused;
	return chan_front_call(self, "_recv_async", NULL);
}

static PyObject *chan_send_async(PyObject *self, PyObject *obj)
{
	return chan_front_call(self, "_send_async", obj);
}

static PyMethodDef chan_methods[] = {
	{ "recv_async", chan_recv_async, METH_NOARGS,
	  "recv_async()\n--\n\nA coroutine: await it to receive without blocking the "
	  "event loop (one helper thread per interpreter waits for all such receivers)." },
	{ "send_async", chan_send_async, METH_O,
	  "send_async(obj)\n--\n\nA coroutine: await it to send, waiting without "
	  "blocking the event loop while the channel is full." },
	{ "send", (PyCFunction)(void (*)(void))chan_send, METH_VARARGS | METH_KEYWORDS,
	  "send(obj, timeout=None)\n--\n\nSend obj; wait while the channel is full, up to "
	  "timeout seconds (None: forever).  Raises ChannelClosed, TimeoutError." },
	{ "recv", (PyCFunction)(void (*)(void))chan_recv, METH_VARARGS | METH_KEYWORDS,
	  "recv(timeout=None)\n--\n\nReceive the oldest message; wait while the channel is "
	  "empty, up to timeout seconds.  Raises ChannelClosed once closed and drained, "
	  "TimeoutError." },
	{ "send_nowait", chan_send_nowait, METH_O,
	  "send_nowait(obj)\n--\n\nSend without waiting; raises ChannelFull." },
	{ "recv_nowait", chan_recv_nowait, METH_NOARGS,
	  "recv_nowait()\n--\n\nReceive without waiting; raises ChannelEmpty." },
	{ "close", chan_close, METH_NOARGS,
	  "close()\n--\n\nNo more sends; receivers drain what is queued, then get "
	  "ChannelClosed.  Wakes every waiter." },
	{ "stats", chan_stats, METH_NOARGS,
	  "stats()\n--\n\nCounters: capacity, sent, received, depth, peak_depth, "
	  "full_waits, closed." },
	{ NULL, NULL, 0, NULL },
};

static PyGetSetDef chan_getset[] = {
	{ "capacity", chan_get_capacity, NULL, "Maximum number of queued messages.", NULL },
	{ "closed", chan_get_closed, NULL, "True once close() was called.", NULL },
	{ NULL, NULL, NULL, NULL, NULL },
};

static PyType_Slot chan_slots[] = {
	{ Py_tp_doc, "Channel(capacity=1024, *, allow_pickle=True)\n--\n\n"
		     "A bounded, lock-free, multi-producer multi-consumer channel between "
		     "interpreters.  Channels can be sent through channels and passed to "
		     "tasks.  Iterating receives until the channel is closed." },
	{ Py_tp_init, chan_init },
	{ Py_tp_new, PyType_GenericNew },
	{ Py_tp_dealloc, chan_dealloc },
	{ Py_tp_methods, chan_methods },
	{ Py_tp_getset, chan_getset },
	{ Py_tp_iter, PyObject_SelfIter },
	{ Py_tp_iternext, chan_iternext },
	{ Py_tp_repr, chan_repr },
	{ Py_tp_richcompare, chan_richcompare },
	{ Py_tp_hash, chan_hash },
	{ Py_sq_length, chan_len },
	{ 0, NULL },
};

PyType_Spec isola__channel_spec = {
	.name = "isola.Channel",
	.basicsize = sizeof(isola__channel_obj),
	.flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
	.slots = chan_slots,
};
