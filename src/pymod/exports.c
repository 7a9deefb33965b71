/*
 * exports.c - the C half of main-interpreter exports (exports.py has the
 * design): a process-wide table of named channels, through which a
 * pool's workers find its request channel at start, and _host_wait, the
 * wait of a worker for an export's answer.
 *
 * _host_wait is where "an export that submits to its own pool and waits
 * cannot deadlock it" is kept: a pool worker waiting for an answer also
 * takes tasks from the pool's shared queue and runs them nested
 * (isola__worker_help), so the tasks an export waits for always find a
 * worker, even when every worker is waiting on an export.  The threads
 * that serve exports submit to the shared queue only (never to an idle
 * worker's own queue, which a waiting worker does not take from).
 * Nesting is bounded (HELP_DEPTH_MAX); past it a worker only waits.
 */
#include "pymod/module.h"
#include "common/alloc.h"

#include "channels/channel.h"
#include "channels/wait.h"
#include "pymod/pychannel.h"
#include "scheduler/pool.h"

#include <pthread.h>
#include <string.h>

/* ---- named channels --------------------------------------------------------- */

struct named {
	char *name;
	isola_channel *ch; /* a handle of the table's own */
	struct named *next;
};

static pthread_mutex_t names_lock = PTHREAD_MUTEX_INITIALIZER;
static struct named *names; /* needs names_lock */

/* Unlink the entry called name (needs names_lock); NULL if none. */
static struct named *unlink_named(const char *name)
{
	for (struct named **pp = &names; *pp != NULL; pp = &(*pp)->next) {
		if (strcmp((*pp)->name, name) == 0) {
			struct named *n = *pp;
			*pp = n->next;
			return n;
		}
	}
	return NULL;
}

static void named_free(struct named *n)
{
	if (n == NULL)
		return;
	isola_channel_release(n->ch);
	isola__free(n->name);
	isola__free(n);
}

/* _channel_publish(name, channel): register channel under name for
 * every interpreter (replacing what was there). */
static PyObject *channel_publish(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
	isola__state *st = PyModule_GetState(m);
	if (nargs != 2 || !PyUnicode_Check(args[0]) || Py_TYPE(args[1]) != st->channel_type)
		return PyErr_Format(PyExc_TypeError, "_channel_publish(name: str, channel: Channel)");
	const char *name = PyUnicode_AsUTF8(args[0]);
	if (name == NULL)
		return NULL;
	struct named *n = isola__calloc(1, sizeof(*n));
	if (n == NULL || (n->name = isola__strdup(name)) == NULL) {
		isola__free(n);
		return PyErr_NoMemory();
	}
	n->ch = ((isola__channel_obj *)args[1])->ch;
	isola_channel_retain(n->ch);
	pthread_mutex_lock(&names_lock);
	struct named *old = unlink_named(name);
	n->next = names;
	names = n;
	pthread_mutex_unlock(&names_lock);
	named_free(old);
	Py_RETURN_NONE;
}

/* _channel_lookup(name) -> a Channel on the channel published as name
 * (KeyError if none). */
static PyObject *channel_lookup(PyObject *m, PyObject *arg)
{
	const char *name = PyUnicode_AsUTF8(arg);
	if (name == NULL)
		return NULL;
	isola_channel *ch = NULL;
	pthread_mutex_lock(&names_lock);
	for (struct named *n = names; n != NULL; n = n->next)
		if (strcmp(n->name, name) == 0) {
			ch = n->ch;
			isola_channel_retain(ch);
			break;
		}
	pthread_mutex_unlock(&names_lock);
	if (ch == NULL) {
		PyErr_SetObject(PyExc_KeyError, arg);
		return NULL;
	}
	PyObject *r = isola__channel_wrap(PyModule_GetState(m), ch);
	isola_channel_release(ch);
	return r;
}

/* _channel_unpublish(name): forget it (KeyError if unknown). */
static PyObject *channel_unpublish(PyObject *m, PyObject *arg)
{
	(void)m;
	const char *name = PyUnicode_AsUTF8(arg);
	if (name == NULL)
		return NULL;
	pthread_mutex_lock(&names_lock);
	struct named *n = unlink_named(name);
	pthread_mutex_unlock(&names_lock);
	if (n == NULL) {
		PyErr_SetObject(PyExc_KeyError, arg);
		return NULL;
	}
	named_free(n);
	Py_RETURN_NONE;
}

/* ---- waiting for an answer -------------------------------------------------- */

#define HELP_DEPTH_MAX 16
static _Thread_local int help_depth; /* nested helps on this thread */

struct answer_op {
	isola_channel *chans[2]; /* the reply channel, the pool's shared queue */
	size_t n;
	isola_msg *msg;
	isola__deadline d;
	size_t idx;
};

static int answer_op(void *arg)
{
	struct answer_op *a = arg;
	return isola__channel_select_until(a->chans, a->n, a->msg, &a->d,
					   ISOLA__WAIT_INTERRUPTIBLE, &a->idx);
}

/* _host_wait(reply) -> the message received on reply.  On a pool's
 * worker (its own thread), tasks of the pool's shared queue that come
 * meanwhile run nested.  Interrupted as any isola wait: Ctrl-C, and
 * isola.Cancelled for a cancel, timeout or interrupting shutdown of the
 * waiting task. */
static PyObject *host_wait(PyObject *m, PyObject *reply)
{
	isola__state *st = PyModule_GetState(m);
	if (Py_TYPE(reply) != st->channel_type)
		return PyErr_Format(PyExc_TypeError, "_host_wait() takes a Channel");
	isola_channel *ch = ((isola__channel_obj *)reply)->ch;
	struct worker *w = isola__this_worker;
	struct answer_op a = { .chans = { ch, NULL }, .n = 1 };
	if (w != NULL && help_depth < HELP_DEPTH_MAX) {
		a.chans[1] = w->pool->shared_q;
		a.n = 2;
	}
	isola_msg msg;
	isola_msg_init(&msg);
	a.msg = &msg;
	for (;;) {
		isola__deadline_init(&a.d, 0); /* a first look with the GIL held */
		int r = answer_op(&a);
		if (r == ISOLA_EAGAIN) {
			isola__deadline_init(&a.d, -1);
			if (isola__wait_released(answer_op, &a, &r) < 0)
				return NULL;
		}
		if (r != 0) /* ECLOSED: nobody closes a reply channel */
			return isola__raise(st, r, ISOLA__FOR_RECV, "waiting for an export");
		if (a.idx == 0)
			break;
		help_depth++;
		isola__worker_help(w, isola__task_of(&msg));
		help_depth--;
		isola__graph_drain_overflow(w->pool); /* as between a worker's tasks */
		if (isola__worker_outer_interrupted(w)) {
			PyErr_SetString(st->Cancelled, "the task was cancelled while it waited");
			return NULL;
		}
	}
	isola__codec_opts o = isola__channel_codec_opts(ch);
	PyObject *obj = isola__decode(st, &msg, &o);
	isola_msg_clear(&msg);
	return obj;
}

/* _export_thread(): the calling thread serves exports: its submits go
 * to the pool's shared queue, where waiting workers find them. */
static PyObject *export_thread(PyObject *m, PyObject *unused)
{
	(void)m, (void)unused;
	isola__submit_shared_only = true;
	Py_RETURN_NONE;
}

PyMethodDef isola__exports_methods[] = {
	{ "_export_thread", export_thread, METH_NOARGS,
	  "_export_thread()\n--\n\nMark the calling thread as serving exports (private)." },
	{ "_channel_publish", (PyCFunction)(void (*)(void))channel_publish, METH_FASTCALL,
	  "_channel_publish(name, channel)\n--\n\nRegister channel under name for every "
	  "interpreter (private: exports)." },
	{ "_channel_lookup", channel_lookup, METH_O,
	  "_channel_lookup(name)\n--\n\nThe channel published as name (private)." },
	{ "_channel_unpublish", channel_unpublish, METH_O,
	  "_channel_unpublish(name)\n--\n\nForget name (private)." },
	{ "_host_wait", host_wait, METH_O,
	  "_host_wait(reply)\n--\n\nWait for an export's answer on reply, running the "
	  "pool's queued tasks meanwhile (private)." },
	{ NULL, NULL, 0, NULL },
};
