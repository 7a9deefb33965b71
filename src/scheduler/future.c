/* future.c - futures: completion, waiting, callbacks, cancel (future.h). */
#include "scheduler/future.h"

#include "common/alloc.h"
#include "common/recycle.h"
#include "scheduler/pool.h"

#include "channels/channel.h"
#include "common/atomics.h"

#include <stdlib.h>
#include <string.h>

struct isola__pool_link *isola__pool_link_new(struct isola_pool *pool)
{
	struct isola__pool_link *l = isola__calloc(1, sizeof(*l));
	if (l == NULL)
		return NULL;
	l->refs = 1;
	pthread_mutex_init(&l->lock, NULL);
	l->pool = pool;
	return l;
}

void isola__pool_link_retain(struct isola__pool_link *l)
{
	isola__ref_inc(&l->refs);
}

void isola__pool_link_release(struct isola__pool_link *l)
{
	if (l == NULL || !isola__ref_dec_is_last(&l->refs))
		return;
	pthread_mutex_destroy(&l->lock);
	isola__free(l);
}

void isola__pool_link_cut(struct isola__pool_link *l)
{
	pthread_mutex_lock(&l->lock);
	l->pool = NULL;
	pthread_mutex_unlock(&l->lock);
}

/* Made by a caller, most often freed by a worker: recycled (recycle.h). */
static isola__recycler futures = ISOLA__RECYCLER_INIT(sizeof(isola_future));

isola_future *isola__future_new(struct isola_pool *pool)
{
	isola_future *f = isola__recycled_calloc(&futures);
	if (f == NULL)
		return NULL;
	f->tag = ISOLA__FUTURE_TAG;
	f->refs = 1;
	f->state = ISOLA_FUTURE_PENDING;
	ck_ec32_init(&f->done_ec, 0);
	pthread_mutex_init(&f->lock, NULL);
	f->link = pool->link;
	isola__pool_link_retain(f->link);
	return f;
}

int isola_future_retain(isola_future *f)
{
	ISOLA__CHECK_FUTURE(f);
	if (f == NULL)
		return ISOLA_EINVAL;
	isola__ref_inc(&f->refs);
	return 0;
}

int isola_future_release(isola_future *f)
{
	ISOLA__CHECK_FUTURE(f);
	if (f == NULL)
		return 0;
	if (!isola__ref_dec_is_last(&f->refs))
		return 0;
	isola_msg_clear(&f->result);
	isola__error_clear(&f->err);
	for (struct callback *c = f->callbacks, *n; c != NULL; c = n) {
		n = c->next;
		isola__free(c);
	}
	pthread_mutex_destroy(&f->lock);
	isola__pool_link_release(f->link);
	f->tag = 0;
	isola__recycled_free(&futures, f);
	return 0;
}

static bool is_done(int state)
{
	return state >= ISOLA_FUTURE_DONE;
}

bool isola__future_start(isola_future *f)
{
	int expect = ISOLA_FUTURE_PENDING;
	return isola__cas_acq_rel(&f->state, &expect, ISOLA_FUTURE_RUNNING);
}

/* Fill the outcome of a future this thread has claimed (state -1), then
 * publish it, wake waiters and run callbacks. */
static void finish(isola_future *f, int status, isola_msg *result, isola__error *err)
{
	int final = status == 0 ? ISOLA_FUTURE_DONE
		    : (status == ISOLA_ECANCELED || status == ISOLA_ETIMEDOUT ||
		       status == ISOLA_ECLOSED)
			    ? ISOLA_FUTURE_CANCELLED
			    : ISOLA_FUTURE_FAILED;
	f->status = status;
	if (result != NULL) {
		isola_msg_clear(&f->result);
		f->result = *result;
		isola_msg_init(result);
	}
	if (err != NULL) {
		f->err = *err;
		memset(err, 0, sizeof(*err));
	}
	/* Release: the outcome above is visible to whoever sees the state. */
	isola__store_release(&f->state, final);
	ck_ec32_inc(&f->done_ec, &isola__ec_mode);
	pthread_mutex_lock(&f->lock);
	struct callback *cbs = f->callbacks;
	f->callbacks = NULL;
	pthread_mutex_unlock(&f->lock);
	/* callbacks were pushed at the head: run them in registration order */
	struct callback *rev = NULL;
	while (cbs != NULL) {
		struct callback *n = cbs->next;
		cbs->next = rev;
		rev = cbs;
		cbs = n;
	}
	while (rev != NULL) {
		struct callback *n = rev->next;
		rev->cb(f, rev->arg);
		isola__free(rev);
		rev = n;
	}
}

bool isola__future_complete(isola_future *f, int status, isola_msg *result,
			    isola__error *err)
{
	/* Claim the right to complete (state -1): only one thread wins. */
	int cur = isola__load_acquire(&f->state);
	for (;;) {
		if (is_done(cur) || cur == -1)
			return false;
		if (isola__cas_acq_rel(&f->state, &cur, -1))
			break;
	}
	finish(f, status, result, err);
	return true;
}

int isola_future_state(isola_future *f, int *state)
{
	ISOLA__CHECK_FUTURE(f);
	if (f == NULL || state == NULL)
		return ISOLA_EINVAL;
	int s = isola__load_acquire(&f->state);
	*state = s == -1 ? ISOLA_FUTURE_RUNNING : s;
	return 0;
}

static int ready_done(void *arg)
{
	isola_future *f = arg;
	return is_done(isola__load_acquire(&f->state)) ? 0 : ISOLA_EAGAIN;
}

int isola__future_wait_flags(isola_future *f, const isola__deadline *d, int flags)
{
	int r = isola__wait(&f->done_ec, ready_done, f, d, flags | ISOLA__WAIT_HANDOFF);
	return r == ISOLA_EAGAIN ? ISOLA_ETIMEDOUT : r;
}

int isola_future_wait(isola_future *f, int64_t timeout_ns)
{
	ISOLA__CHECK_FUTURE(f);
	if (f == NULL)
		return ISOLA_EINVAL;
	isola__deadline d;
	isola__deadline_init(&d, timeout_ns);
	return isola__future_wait_flags(f, &d, 0);
}

int isola_future_result(isola_future *f, isola_msg *result)
{
	ISOLA__CHECK_FUTURE(f);
	if (f == NULL)
		return ISOLA_EINVAL;
	if (!is_done(isola__load_acquire(&f->state)))
		return ISOLA_EAGAIN;
	if (result != NULL) {
		int r = isola__msg_copy(result, &f->result);
		if (r != 0)
			return r;
	}
	return f->status;
}

int isola_future_error(isola_future *f, const char **type, const char **message,
		       const char **traceback)
{
	if (f == NULL)
		return ISOLA_EINVAL;
	if (!is_done(isola__load_acquire(&f->state)) || f->status == 0 || f->err.type == NULL)
		return ISOLA_ENOTFOUND;
	if (type)
		*type = f->err.type;
	if (message)
		*message = f->err.message ? f->err.message : "";
	if (traceback)
		*traceback = f->err.traceback ? f->err.traceback : "";
	return 0;
}

/* PENDING -> CANCELLED; false if it had started (or was done). */
bool isola__future_cancel_pending(isola_future *f, const char *why)
{
	int s = ISOLA_FUTURE_PENDING;
	/* acq_rel: whoever claims the future (worker or canceller) sees the
	 * other's claim; the state word is the only arbiter. */
	if (!isola__cas_acq_rel(&f->state, &s, -1))
		return false;
	/* Still queued: complete it; the worker will skip it. */
	isola__error e = { 0 };
	e.type = isola__strdup("isola.Cancelled");
	e.message = isola__strdup(why);
	finish(f, ISOLA_ECANCELED, NULL, &e);
	return true;
}

int isola_future_cancel(isola_future *f)
{
	ISOLA__CHECK_FUTURE(f);
	if (f == NULL)
		return ISOLA_EINVAL;
	if (isola__future_cancel_pending(f, "cancelled before it ran"))
		return 0;
	int s = isola__load_acquire(&f->state);
	if (s == ISOLA_FUTURE_RUNNING || s == -1) {
		int none = INTERRUPT_NONE;
		/* acq_rel: pairs with the worker's seal (worker.c) when the task
		 * returns: exactly one of the two CASes from NONE wins, so a
		 * request answered 0 is seen by the worker before it completes. */
		if (!isola__cas_acq_rel(&f->interrupt, &none, INTERRUPT_CANCEL) &&
		    none == INTERRUPT_SEALED)
			return ISOLA_ESTATE; /* returned, completing now */
		pthread_mutex_lock(&f->link->lock); /* the pool is not freed meanwhile */
		if (f->link->pool != NULL)
			isola__pool_interrupt_requested(f->link->pool);
		pthread_mutex_unlock(&f->link->lock);
		return 0;
	}
	return ISOLA_ESTATE;
}

static int add_callback(isola_future *f, isola_future_cb cb, void *arg, bool run_if_done)
{
	if (f == NULL || cb == NULL)
		return ISOLA_EINVAL;
	struct callback *c = isola__malloc(sizeof(*c));
	if (c == NULL)
		return ISOLA_ENOMEM;
	c->cb = cb;
	c->arg = arg;
	pthread_mutex_lock(&f->lock);
	/* Checked under the lock: complete() takes the list under it after
	 * publishing the state, so a callback is either taken or run here. */
	if (!is_done(isola__load_acquire(&f->state))) {
		c->next = f->callbacks;
		f->callbacks = c;
		pthread_mutex_unlock(&f->lock);
		return 0;
	}
	pthread_mutex_unlock(&f->lock);
	isola__free(c);
	if (!run_if_done)
		return ISOLA_ESTATE;
	cb(f, arg);
	return 0;
}

int isola_future_on_done(isola_future *f, isola_future_cb cb, void *arg)
{
	return add_callback(f, cb, arg, true);
}

int isola__future_on_done_pending(isola_future *f, isola_future_cb cb, void *arg)
{
	return add_callback(f, cb, arg, false);
}

/*
 * Waiting for the first of several futures.  A waiter (heap, refcounted)
 * gets an on_done callback on each future not yet done; a callback bumps
 * its event count.  Callbacks cannot be removed, so each holds a
 * reference, and the waiter is freed by the last of them or by the call,
 * whichever ends later.
 */
struct any_waiter {
	struct ck_ec32 ec;
	uint64_t refs; /* atomic: the call + one per registered callback */
};

static void any_waiter_release(struct any_waiter *aw)
{
	/* acq_rel: the last one out sees every other's use of aw. */
	if (__atomic_sub_fetch(&aw->refs, 1, __ATOMIC_ACQ_REL) == 0)
		isola__free(aw);
}

static void any_done(isola_future *f, void *arg)
{
	(void)f;
	struct any_waiter *aw = arg;
	ck_ec32_inc(&aw->ec, &isola__ec_mode); /* a full barrier: after f's state */
	any_waiter_release(aw);
}

struct any_op {
	isola_future *const *fs;
	size_t n;
	size_t *index;
};

static int any_ready(void *arg)
{
	struct any_op *op = arg;
	for (size_t i = 0; i < op->n; i++)
		if (is_done(isola__load_acquire(&op->fs[i]->state))) {
			*op->index = i;
			return 0;
		}
	return ISOLA_EAGAIN;
}

int isola_future_wait_any(isola_future *const *fs, size_t n, int64_t timeout_ns, size_t *index)
{
	if (fs == NULL || n == 0 || index == NULL)
		return ISOLA_EINVAL;
	for (size_t i = 0; i < n; i++) {
		ISOLA__CHECK_FUTURE(fs[i]);
		if (fs[i] == NULL)
			return ISOLA_EINVAL;
	}
	struct any_op op = { fs, n, index };
	if (any_ready(&op) == 0)
		return 0;
	isola__deadline d;
	isola__deadline_init(&d, timeout_ns);
	if (d.now)
		return ISOLA_ETIMEDOUT;
	struct any_waiter *aw = isola__malloc(sizeof(*aw));
	if (aw == NULL)
		return ISOLA_ENOMEM;
	ck_ec32_init(&aw->ec, 0);
	aw->refs = 1;
	for (size_t i = 0; i < n; i++) {
		__atomic_add_fetch(&aw->refs, 1, __ATOMIC_RELAXED); /* before it can run */
		/* A done future runs the callback at once (dropping its ref). */
		if (isola_future_on_done(fs[i], any_done, aw) != 0) {
			any_waiter_release(aw);
			break; /* no memory: wait on what is registered */
		}
	}
	int r = isola__wait(&aw->ec, any_ready, &op, &d, ISOLA__WAIT_HANDOFF);
	any_waiter_release(aw);
	return r == ISOLA_EAGAIN ? ISOLA_ETIMEDOUT : r;
}
