/*
 * graph.c - tasks that wait for other tasks' results (isola.h: task
 * graphs).
 *
 * A task with inputs is made at submit, like any task, but instead of
 * being queued it registers an on_done callback on each input and joins
 * the pool's waiting list.  The callback that completes its last input
 * queues it (the thread that completed the input, usually a worker that
 * just finished, runs it: that worker claimed a spinner role before
 * completing, so it tends to take the dependent itself, next to its
 * input's memory).  The caller's interpreter is never on the path and
 * no result is decoded until the worker that runs the task decodes it.
 *
 * A callback must never block (it runs on a worker): when the shared
 * queue is full the ready task goes on an overflow list that workers
 * move into the queue between tasks.
 */
#include "scheduler/pool.h"

#include "channels/channel.h"
#include "common/alloc.h"
#include "common/atomics.h"

#include <string.h>

void isola__graph_init(struct isola_pool *p)
{
	pthread_mutex_init(&p->graph_lock, NULL);
	ck_ec32_init(&p->graph_ec, 0);
}

/* A task that will not run: its future ends with status (when it is not
 * done already) and the task is freed. */
static void fail_unrun(struct task *t, int status, const char *type, const char *why)
{
	if (t->future != NULL) {
		isola__error e = { isola__strdup(type), isola__strdup(why), NULL };
		isola__future_complete(t->future, status, NULL, &e);
		isola__error_clear(&e);
	}
	isola__task_free(t);
}

void isola__graph_fini(struct isola_pool *p)
{
	/* The workers are gone and every future of the pool has ended, so
	 * every waiting task has been queued or failed; what the overflow
	 * list still holds never ran. */
	pthread_mutex_lock(&p->graph_lock);
	struct task *t = p->overflow;
	p->overflow = NULL;
	pthread_mutex_unlock(&p->graph_lock);
	while (t != NULL) {
		struct task *next = t->overflow_next;
		fail_unrun(t, ISOLA_ECLOSED, "isola.Cancelled", "the pool shut down before it ran");
		t = next;
	}
	assert(p->waiting == NULL || !"isola: a task still waits for inputs at pool end");
	pthread_mutex_destroy(&p->graph_lock);
}

void isola__graph_release_inputs(struct task *t)
{
	struct task_inputs *ti = t->inputs;
	if (ti == NULL)
		return;
	t->inputs = NULL;
	for (size_t i = 0; i < ti->n; i++) {
		isola_future_release(ti->items[i].future);
		isola__free(ti->items[i].keyword);
	}
	isola__free(ti);
}

static void waiting_unlink(struct isola_pool *p, struct task *t)
{
	struct task_inputs *ti = t->inputs;
	if (ti->prev != NULL)
		ti->prev->inputs->next = ti->next;
	else
		p->waiting = ti->next;
	if (ti->next != NULL)
		ti->next->inputs->prev = ti->prev;
	ti->prev = ti->next = NULL;
}

/* Shutting down without cancel: the queues close once no task waits for
 * inputs (those tasks were submitted before the shutdown: they run), by
 * whichever thread sees that last.  seq_cst here and on both counts'
 * updates: shutdown raises closing then reads the counts, make_ready
 * drops a count then reads closing (each a store then a load of the
 * other's variable); seq_cst makes at least one of them see the other,
 * so the queues are always closed (closing them twice is harmless). */
static void close_if_idle(struct isola_pool *p)
{
	if (__atomic_load_n(&p->closing, __ATOMIC_SEQ_CST) != CLOSING_OPEN &&
	    __atomic_load_n(&p->n_waiting, __ATOMIC_SEQ_CST) == 0 &&
	    __atomic_load_n(&p->n_overflow, __ATOMIC_SEQ_CST) == 0)
		isola__pool_close_queues(p);
}

static void overflow_push(struct isola_pool *p, struct task *t)
{
	pthread_mutex_lock(&p->graph_lock);
	t->overflow_next = p->overflow;
	p->overflow = t;
	/* A hint for workers to look (the list itself is read under
	 * graph_lock), and a count close_if_idle reads. */
	__atomic_add_fetch(&p->n_overflow, 1, __ATOMIC_SEQ_CST);
	pthread_mutex_unlock(&p->graph_lock);
}

/* Every input of t is done: queue it.  may_block: the submitting thread
 * (waits for room as submit does); else a callback (never waits). */
static void make_ready(struct isola_pool *p, struct task *t, bool may_block)
{
	/* seq_cst, before n_waiting falls: a joiner that sees n_waiting at 0
	 * then sees this count until the end below (isola__graph_idle). */
	__atomic_add_fetch(&p->graph_inflight, 1, __ATOMIC_SEQ_CST);
	pthread_mutex_lock(&p->graph_lock);
	waiting_unlink(p, t);
	pthread_mutex_unlock(&p->graph_lock);
	if (p->trace != NULL)
		t->queued_ns = isola__now_ns(); /* ready: queued from now on */
	int r;
	if (may_block) {
		r = isola__task_enqueue(p, p->shared_q, t);
	} else {
		isola_msg m;
		isola_msg_init(&m);
		isola_msg_set_bytes(&m, &t, sizeof(t)); /* 8 bytes: inline */
		r = isola__channel_try_send(p->shared_q, &m);
	}
	if (r == ISOLA_EAGAIN || r == ISOLA_ETIMEDOUT || r == ISOLA_EINTR)
		overflow_push(p, t); /* full: a worker moves it in later */
	else if (r != 0)
		fail_unrun(t, ISOLA_ECANCELED, "isola.Cancelled", "the pool shut down before it ran");
	/* Only now, once queued (or failed): shutdown without cancel keeps
	 * the queues open while this count is not zero.  The event count's
	 * increment wakes submitters waiting for room. */
	__atomic_sub_fetch(&p->n_waiting, 1, __ATOMIC_SEQ_CST); /* see close_if_idle */
	ck_ec32_inc(&p->graph_ec, &isola__ec_mode);
	close_if_idle(p);
	/* The last touch of p: once both counts are 0 it may be freed. */
	__atomic_sub_fetch(&p->graph_inflight, 1, __ATOMIC_SEQ_CST);
}

bool isola__graph_idle(struct isola_pool *p)
{
	return __atomic_load_n(&p->n_waiting, __ATOMIC_SEQ_CST) == 0 &&
	       __atomic_load_n(&p->graph_inflight, __ATOMIC_SEQ_CST) == 0;
}

int isola__pool_accept_link(isola_pool *p, struct isola__pool_link *link)
{
	ISOLA__CHECK_POOL(p);
	if (p == NULL || link == NULL)
		return ISOLA_EINVAL;
	struct isola__pool_link *none = NULL;
	isola__pool_link_retain(link);
	/* Release: pairs with check_inputs' acquire load. */
	if (!__atomic_compare_exchange_n(&p->input_link, &none, link, false, __ATOMIC_RELEASE,
					 __ATOMIC_RELAXED)) {
		isola__pool_link_release(link);
		return none == link ? 0 : ISOLA_EINVAL;
	}
	return 0;
}

static void input_done(isola_future *f, void *arg)
{
	(void)f;
	struct task *t = arg;
	struct isola_pool *p = t->inputs->pool;
	/* acq_rel: the last decrement sees every input's completion (their
	 * outcome is read by the worker that runs t). */
	if (__atomic_sub_fetch(&t->inputs->pending, 1, __ATOMIC_ACQ_REL) == 0)
		make_ready(p, t, false);
}

void isola__graph_drain_overflow(struct isola_pool *p)
{
	/* Relaxed: a hint; a task pushed just after is seen next time. */
	if (__atomic_load_n(&p->n_overflow, __ATOMIC_RELAXED) == 0)
		return;
	pthread_mutex_lock(&p->graph_lock);
	while (p->overflow != NULL) {
		struct task *t = p->overflow;
		isola_msg m;
		isola_msg_init(&m);
		isola_msg_set_bytes(&m, &t, sizeof(t));
		int r = isola__channel_try_send(p->shared_q, &m);
		if (r == ISOLA_EAGAIN)
			break; /* still full: the next task's end tries again */
		p->overflow = t->overflow_next;
		__atomic_sub_fetch(&p->n_overflow, 1, __ATOMIC_SEQ_CST); /* see close_if_idle */
		if (r != 0) {
			pthread_mutex_unlock(&p->graph_lock);
			fail_unrun(t, ISOLA_ECANCELED, "isola.Cancelled",
				   "the pool shut down before it ran");
			pthread_mutex_lock(&p->graph_lock);
		}
	}
	pthread_mutex_unlock(&p->graph_lock);
	close_if_idle(p);
}

void isola__graph_shutdown(struct isola_pool *p, bool cancel)
{
	if (!cancel) {
		close_if_idle(p);
		return;
	}
	/* Cancel every waiting task's future: collected under the lock,
	 * cancelled outside it (a cancel runs callbacks, which may make
	 * other tasks ready and take the lock). */
	pthread_mutex_lock(&p->graph_lock);
	size_t n = 0;
	for (struct task *t = p->waiting; t != NULL; t = t->inputs->next)
		n++;
	isola_future **fs = n ? isola__calloc(n, sizeof(*fs)) : NULL;
	size_t k = 0;
	for (struct task *t = p->waiting; fs != NULL && t != NULL; t = t->inputs->next)
		if (t->future != NULL && isola_future_retain(t->future) == 0)
			fs[k++] = t->future;
	struct task *over = p->overflow;
	p->overflow = NULL;
	__atomic_store_n(&p->n_overflow, 0, __ATOMIC_RELAXED); /* as in drain */
	pthread_mutex_unlock(&p->graph_lock);
	for (size_t i = 0; i < k; i++) {
		isola__future_cancel_pending(fs[i], "the pool shut down before it ran");
		isola_future_release(fs[i]);
	}
	isola__free(fs);
	while (over != NULL) {
		struct task *next = over->overflow_next;
		fail_unrun(over, ISOLA_ECANCELED, "isola.Cancelled", "the pool shut down before it ran");
		over = next;
	}
	/* A waiting task stays listed until its inputs end (they are this
	 * pool's tasks: cancelled or finished by this shutdown); it is then
	 * refused by the closed queue and freed. */
}

/* isola__wait's condition: room among the waiting tasks. */
static int room_to_wait(void *arg)
{
	struct isola_pool *p = arg;
	return __atomic_load_n(&p->n_waiting, __ATOMIC_ACQUIRE) < ISOLA_MAX_WAITING ? 0
										   : ISOLA_EAGAIN;
}

static int wait_for_room(struct isola_pool *p)
{
	if (room_to_wait(p) == 0)
		return 0;
	const struct isola__post_wait *w = isola__post_wait;
	isola__deadline d;
	if (w == NULL)
		isola__deadline_init(&d, p->queue_wait_ns > 0 ? p->queue_wait_ns : -1);
	int r = isola__wait(&p->graph_ec, room_to_wait, p, w ? w->deadline : &d,
			    w ? w->flags : 0);
	return r == ISOLA_ETIMEDOUT ? ISOLA_EAGAIN : r;
}

static int check_inputs(struct isola_pool *p, const isola_input *in, size_t n)
{
	if (in == NULL || n > 255)
		return ISOLA_EINVAL;
	for (size_t i = 0; i < n; i++) {
		ISOLA__CHECK_FUTURE(in[i].future);
		if (in[i].future == NULL ||
		    (in[i].future->link != p->link &&
		     in[i].future->link != __atomic_load_n(&p->input_link, __ATOMIC_ACQUIRE)))
			return ISOLA_EINVAL; /* another pool's (or none) */
		if (in[i].keyword != NULL ? in[i].keyword[0] == '\0' : in[i].position < 0)
			return ISOLA_EINVAL;
	}
	return 0;
}

int isola_pool_submit_after(isola_pool *p, const char *target, isola_msg *args,
			    const isola_input *in, size_t n, int64_t timeout_ns,
			    isola_future **out)
{
	ISOLA__CHECK_POOL(p);
	if (n == 0)
		return isola_pool_submit(p, target, args, timeout_ns, out);
	if (p == NULL || out == NULL || !isola__valid_target(target))
		return ISOLA_EINVAL;
	int r = check_inputs(p, in, n);
	if (r != 0)
		return r;
	if (isola__load_acquire(&p->closing))
		return ISOLA_ECLOSED;
	if ((r = wait_for_room(p)) != 0)
		return r;
	struct task *t = isola__task_new(TASK_CALL, target);
	isola_future *f = t ? isola__future_new(p) : NULL;
	struct task_inputs *ti =
		f ? isola__calloc(1, sizeof(*ti) + n * sizeof(ti->items[0])) : NULL;
	bool oom = ti == NULL;
	for (size_t i = 0; !oom && i < n; i++) {
		ti->items[i].future = in[i].future;
		isola_future_retain(in[i].future);
		ti->n = i + 1;
		ti->items[i].position = in[i].position;
		if (in[i].keyword != NULL)
			oom = (ti->items[i].keyword = isola__strdup(in[i].keyword)) == NULL;
	}
	if (t != NULL) {
		t->inputs = ti;
		t->future = f;
	}
	if (oom) {
		isola__task_free(t); /* frees ti and f too */
		return ISOLA_ENOMEM;
	}
	isola_msg_init(&t->args);
	if (args != NULL)
		isola__msg_move(&t->args, args);
	t->timeout_ns = timeout_ns;
	ti->pool = p;
	ti->pending = (uint32_t)n + 1; /* + 1: ours, until every callback is set */
	isola_future_retain(f);        /* the caller's reference */
	pthread_mutex_lock(&p->graph_lock);
	ti->next = p->waiting;
	if (p->waiting != NULL)
		p->waiting->inputs->prev = t;
	p->waiting = t;
	pthread_mutex_unlock(&p->graph_lock);
	/* seq_cst: see close_if_idle.  A submit that races with a shutdown
	 * may find the queues closed when its task is ready: the task then
	 * ends cancelled, as a plain submit would be refused. */
	__atomic_add_fetch(&p->n_waiting, 1, __ATOMIC_SEQ_CST);
	for (size_t i = 0; i < n; i++) {
		int cr = isola__future_on_done_pending(in[i].future, input_done, t);
		if (cr == ISOLA_ESTATE) /* done already */
			__atomic_sub_fetch(&ti->pending, 1, __ATOMIC_ACQ_REL);
		else if (cr != 0) { /* no callback: the task fails when it runs */
			ti->oom = 1;
			__atomic_sub_fetch(&ti->pending, 1, __ATOMIC_ACQ_REL);
		}
	}
	if (__atomic_sub_fetch(&ti->pending, 1, __ATOMIC_ACQ_REL) == 0)
		make_ready(p, t, true);
	*out = f;
	return 0;
}
