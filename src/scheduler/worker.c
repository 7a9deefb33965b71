/*
 * worker.c - a worker: one OS thread, one sub-interpreter, a loop that
 * takes tasks from its private queue and the pool's shared queue.
 */
#include "scheduler/pool.h"
#include "common/alloc.h"

#include "common/atomics.h"
#include "channels/channel.h"
#include "channels/wait.h"
#include "interp/host.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An idle worker's spin before it parks adapts between these: a parked
 * thread takes ~70 us to wake, a spinner holds a core. */
#define IDLE_SPIN_MIN_NS 20000
#define IDLE_SPIN_MAX_NS 200000

static isola__codec_opts codec_opts(struct isola_pool *p)
{
	isola__codec_opts o = isola__codec_defaults;
	o.allow_pickle = !p->no_pickle;
	return o;
}

/* An interrupt asked of f, as the status its Cancelled means (0: none). */
static int interrupt_status(isola_future *f)
{
	int why = isola__load_acquire(&f->interrupt);
	return why == INTERRUPT_TIMEOUT ? ISOLA_ETIMEDOUT
	       : why == INTERRUPT_CANCEL ? ISOLA_ECANCELED
					 : 0;
}

/*
 * The task of f has returned (GIL held): seal f against new interrupt
 * requests, and say whether one was asked (and answered 0) that never
 * reached the task's code: not raised yet, or still pending.  A task
 * that caught a raised Cancelled and returned keeps its result.
 */
static bool interrupt_missed(struct worker *w, isola_future *f)
{
	if (f == NULL)
		return false;
	int asked = INTERRUPT_NONE;
	/* acq_rel: pairs with isola_future_cancel's CAS (future.c). */
	if (isola__cas_acq_rel(&f->interrupt, &asked, INTERRUPT_SEALED))
		return false;
	if (asked != INTERRUPT_CANCEL && asked != INTERRUPT_TIMEOUT)
		return false;
	return !f->injected || isola__interp_async_pending(w->interp);
}

void isola__complete_with_exception(struct worker *w, isola_future *f)
{
	if (f == NULL) {
		isola__outcome_discard(); /* actor send: nobody to tell */
		return;
	}
	isola_msg res;
	isola_msg_init(&res);
	isola__error err = { 0 };
	isola__codec_opts o = codec_opts(w->pool);
	int status = isola__outcome_capture(interrupt_status(f), &o, &res, &err);
	isola__future_complete(f, status, &res, &err);
	isola_msg_clear(&res);
	isola__error_clear(&err);
}

static void release_inputs(void *t)
{
	isola__graph_release_inputs(t);
}

/* A graph task's inputs as the job takes them (in: room for every one).
 * Each input is done (graph.c queued the task after its last one), so
 * its outcome is read without a lock; the task holds the future. */
static void job_inputs(const struct task *t, isola__job_input *in)
{
	const struct task_inputs *ti = t->inputs;
	for (size_t i = 0; i < ti->n; i++) {
		const isola_future *f = ti->items[i].future;
		int state = isola__load_acquire(&f->state);
		in[i] = (isola__job_input){
			.value = &f->result,
			.status = state == ISOLA_FUTURE_DONE ? 0 : f->status ? f->status : ISOLA_EPYTHON,
			.error_type = f->err.type,
			.error_message = f->err.message,
			.position = ti->items[i].position,
			.keyword = ti->items[i].keyword,
		};
		if (ti->oom || state < ISOLA_FUTURE_DONE) { /* ENOMEM at submit */
			in[i].status = ISOLA_ENOMEM;
			in[i].value = NULL;
			in[i].error_type = "MemoryError";
			in[i].error_message = "the task could not wait for this input";
		}
	}
}

/* Run one call/chunk/source task; the GIL is held.  0, or ENOTFOUND /
 * EPYTHON with the exception set (*failed_at: a chunk's failing call). */
static int run_python(struct worker *w, struct task *t, isola_msg *result, size_t *failed_at)
{
	isola__job_input inputs[t->inputs ? t->inputs->n : 1];
	if (t->inputs != NULL)
		job_inputs(t, inputs);
	isola__codec_opts o = codec_opts(w->pool);
	isola__job j = {
		.kind = t->kind == TASK_RUN ? ISOLA__JOB_SOURCE
			: t->kind == TASK_CHUNK ? ISOLA__JOB_CHUNK
						: ISOLA__JOB_CALL,
		.target = t->target,
		.args = &t->args,
		.argsets = t->chunk.items,
		.n = t->chunk.n,
		.per_element = t->chunk.per_element,
		.cached = true,
		.codec = &o,
		.inputs = t->inputs ? inputs : NULL,
		.n_inputs = t->inputs ? t->inputs->n : 0,
		.inputs_used = release_inputs,
		.inputs_arg = t,
	};
	return isola__job_run(&j, result, failed_at);
}

/* A chunk that stopped at one call: the error text says which one. */
static void name_failed_element(isola__error *err, const struct task *t, size_t failed_at)
{
	const char *was = err->message ? err->message : "";
	size_t n = strlen(was) + 48;
	char *m = isola__malloc(n);
	if (m != NULL) {
		snprintf(m, n, "map element %zu: %s", t->chunk.first + failed_at, was);
		isola__free(err->message);
		err->message = m;
	}
}

/*
 * Spinning idle workers.  At most p->max_spinners idle workers spin (the
 * others park at once: more spinners than spare cores would take CPU
 * from the threads that submit and run work).  A spinner holds its
 * queues (isola__channel_spinner_add), so a sender wakes no parked
 * worker for a task the spinner is about to take.  A worker claims the
 * role just before it completes a task's future, because the caller's
 * next task often follows at once.
 */
static bool spinner_begin(struct worker *w)
{
	struct isola_pool *p = w->pool;
	if (isola__cpu_contended())
		return false; /* park: a sender's wake beats a descheduled spinner */
	/* Relaxed: the count only limits how many spin; no data depends on
	 * it, and an occasional extra or missing spinner is harmless. */
	int cur = __atomic_load_n(&p->spinners, __ATOMIC_RELAXED);
	for (;;) {
		if (cur >= p->max_spinners)
			return false;
		if (__atomic_compare_exchange_n(&p->spinners, &cur, cur + 1, true,
						__ATOMIC_RELAXED, __ATOMIC_RELAXED))
			break;
	}
	isola__channel_spinner_add(w->routed_q);
	isola__channel_spinner_add(w->private_q);
	isola__channel_spinner_add(p->shared_q);
	return true;
}

static void spinner_end(struct worker *w)
{
	isola__channel_spinner_drop(w->routed_q);
	isola__channel_spinner_drop(w->private_q);
	isola__channel_spinner_drop(w->pool->shared_q);
	__atomic_sub_fetch(&w->pool->spinners, 1, __ATOMIC_RELAXED); /* as above */
}

/* Publish what w runs now (name NULL: nothing).  Worker thread only. */
static void running_set(struct worker *w, const char *name, int64_t since)
{
	assert(isola__this_worker == w || !"isola: running_set off its worker");
	union {
		char c[ISOLA_RUNNING_NAME_MAX];
		uint64_t w[ISOLA_RUNNING_NAME_MAX / 8];
	} buf = { 0 };
	size_t n = 0;
	for (; name != NULL && n < sizeof(buf.c) - 1 && name[n] && name[n] != '\n'; n++)
		buf.c[n] = name[n];
	/* The sequence orders the words against a reader's retry check
	 * (ck_sequence's fences); each word is stored whole (relaxed).
	 * Idle: only the time is cleared (readers ignore the name then). */
	ck_sequence_write_begin(&w->running_seq);
	for (size_t i = 0; name != NULL && i < sizeof(buf.w) / 8; i++)
		__atomic_store_n(&w->running_words[i], buf.w[i], __ATOMIC_RELAXED);
	__atomic_store_n(&w->running_since, name != NULL ? since : 0, __ATOMIC_RELAXED);
	ck_sequence_write_end(&w->running_seq);
}

void isola__worker_running(struct worker *w, char *name, uint64_t *running_ns)
{
	union {
		char c[ISOLA_RUNNING_NAME_MAX];
		uint64_t w[ISOLA_RUNNING_NAME_MAX / 8];
	} buf;
	int64_t since;
	unsigned int v;
	do {
		v = ck_sequence_read_begin(&w->running_seq);
		for (size_t i = 0; i < sizeof(buf.w) / 8; i++)
			buf.w[i] = __atomic_load_n(&w->running_words[i], __ATOMIC_RELAXED);
		since = __atomic_load_n(&w->running_since, __ATOMIC_RELAXED);
	} while (ck_sequence_read_retry(&w->running_seq, v));
	buf.c[sizeof(buf.c) - 1] = '\0';
	if (since == 0)
		buf.c[0] = '\0';
	memcpy(name, buf.c, sizeof(buf.c));
	int64_t now = isola__now_ns();
	*running_ns = since > 0 && now > since ? (uint64_t)(now - since) : 0;
}

/* How an actor message ended, for the trace: its future's status, or
 * for a send (no future) whether the watchdog interrupted it. */
static int actor_status(const struct task *t, isola_future *watched)
{
	if (t->future != NULL) {
		int state = ISOLA_FUTURE_PENDING;
		isola_future_state(t->future, &state);
		/* The state read above is an acquire (future.c): status is set. */
		return state >= ISOLA_FUTURE_FAILED ? (t->future->status ? t->future->status
									   : ISOLA_EPYTHON)
						    : 0;
	}
	return watched != NULL ? interrupt_status(watched) : 0;
}

/* Run a call/chunk/source task (GIL held) and make its outcome: the
 * status, with the result or the exception in *result and *err. */
static int run_for_outcome(struct worker *w, struct task *t, isola_future *f, isola_msg *result,
			   isola__error *err)
{
	size_t failed_at = SIZE_MAX;
	int status = 0;
	int r = run_python(w, t, result, &failed_at);
	if (r == 0 && interrupt_missed(w, f)) {
		/* Asked to stop and answered yes, but it returned (from one C
		 * call) before isola.Cancelled could reach it: stopped, as the
		 * interrupt promised. */
		status = interrupt_status(f);
		isola_msg_clear(result);
		err->type = isola__strdup("isola.Cancelled");
		err->message = isola__strdup(status == ISOLA_ETIMEDOUT
						     ? "the task ran past its timeout and was interrupted"
						     : "the task was cancelled while running");
	}
	if (r < 0) {
		isola__codec_opts o = codec_opts(w->pool);
		status = isola__outcome_capture(interrupt_status(f), &o, result, err);
		if (r == ISOLA_ENOTFOUND && status == ISOLA_EPYTHON)
			status = ISOLA_ENOTFOUND;
		if (t->kind == TASK_CHUNK && failed_at != SIZE_MAX && status == ISOLA_EPYTHON)
			name_failed_element(err, t, failed_at);
	}
	/* Extension imports refused under it that did not fail it (after
	 * the capture, which drops those that did): silent fallbacks. */
	isola__worker_take_fallbacks(w, t->kind == TASK_RUN ? "run" : t->target);
	return status;
}

static void run_task(struct worker *w, struct task *t)
{
	struct isola_pool *p = w->pool;
	if (isola__load_acquire(&p->closing) == CLOSING_CANCEL && t->kind != TASK_ACTOR_KILL) {
		/* immediate shutdown: cancel what is still queued */
		if (t->future != NULL) {
			isola__error e = { isola__strdup("isola.Cancelled"),
					   isola__strdup("the pool shut down before it ran"), NULL };
			isola__future_complete(t->future, ISOLA_ECANCELED, NULL, &e);
			isola__error_clear(&e);
		}
		if (w->trace != NULL)
			isola__trace_skipped(w, t);
		if (t->kind == TASK_ACTOR_CALL)
			isola__actor_message_done(p, t->actor_id);
		isola__task_free(t);
		return;
	}
	if (t->kind == TASK_DRAIN) {
		isola__host_drain(w->interp);
		isola__task_free(t);
		return;
	}
	int is_actor = t->kind == TASK_ACTOR_NEW || t->kind == TASK_ACTOR_CALL ||
		       t->kind == TASK_ACTOR_KILL;
	if (t->future != NULL && !isola__future_start(t->future)) {
		if (w->trace != NULL)
			isola__trace_skipped(w, t);
		if (t->kind == TASK_ACTOR_CALL)
			isola__actor_message_done(p, t->actor_id);
		isola__task_free(t); /* cancelled while queued */
		return;
	}
	int64_t t0 = isola__now_ns();
	running_set(w, t->target, t0);
	struct isola__trace_event *traced = NULL;
	if (w->trace != NULL)
		traced = isola__trace_task_begin(w, t, t0);
	/* Counted when taken, before its future completes, so a caller that
	 * saw every result also sees every task counted. */
	isola__add_relaxed(&w->tasks_run, 1);
	isola__interp_enter(w->interp);
	/* Published under the GIL: the watchdog checks them under it too.
	 * A task without a future is published as the worker's scratch one
	 * (reset here), so that it can be interrupted as well. */
	isola_future *watched = t->future;
	if (watched == NULL && w->scratch != NULL) {
		watched = w->scratch;
		isola__store_release(&watched->interrupt, INTERRUPT_NONE);
		watched->injected = 0;
	}
	isola__store_release(&w->current_actor, is_actor ? t->actor_id : 0);
	isola__store_release(&w->current, watched);
	if (t->timeout_ns > 0) {
		isola__store_release(&w->current_deadline, t0 + t->timeout_ns);
		isola__watchdog_wake(p);
	}
	isola_future *f = NULL;
	isola_msg result;
	isola_msg_init(&result);
	isola__error err = { 0 };
	int status = 0;
	if (is_actor) {
		isola__actor_run(w, t);
		isola__worker_take_fallbacks(w, t->target);
		if (traced != NULL)
			status = actor_status(t, watched);
	} else {
		f = t->future;
		status = run_for_outcome(w, t, f, &result, &err);
		/* Free the task before the caller wakes: it is likely to
		 * allocate the next one at once, from the same malloc arena. */
		t->future = NULL;
		isola__task_free(t);
		t = NULL;
		if (!w->spinning)
			w->spinning = spinner_begin(w);
	}
	isola__store_release(&w->current, NULL);
	isola__store_release(&w->current_deadline, 0);
	isola__store_release(&w->current_actor, 0);
	/* An interrupt that arrived as the task ended must not hit the next. */
	isola__interp_async_cancel(w->interp, false);
	__atomic_store_n(&w->abort_wait, 0, __ATOMIC_RELAXED); /* under the GIL, as set */
	isola__interp_leave(w->interp);
	if (traced != NULL) /* before the completion takes err */
		isola__trace_task_end(w, traced, isola__now_ns(), status, err.type);
	/* Completed with the GIL released: callbacks (the Python front's
	 * completion post among them) may block, never this interpreter.
	 * Idle from here on, for callers choosing a queue (pool.c): the
	 * caller's next call often comes before this worker has parked. */
	if (f != NULL) {
		isola__route_open(w);
		isola__future_complete(f, status, &result, status ? &err : NULL);
	}
	isola_msg_clear(&result);
	isola__error_clear(&err);
	isola__add_relaxed(&w->busy_ns, (uint64_t)(isola__now_ns() - t0));
	running_set(w, NULL, 0);
	isola__task_free(t);
	isola_future_release(f);
}

/*
 * Run t inside the task w runs now, with w's GIL held: a worker waiting
 * for the answer of a main-interpreter export (src/pymod/exports.c)
 * runs the pool's shared tasks meanwhile, so that an export that
 * submits to its own pool and waits can always be served.  The nested
 * task is w's current one while it runs (a cancel, timeout or shutdown
 * reaches it as it would any task); the outer task is current again
 * afterwards, and a cancel of it that came meanwhile is left in its
 * future's interrupt field for the waiter to honour (isola__worker_outer_interrupted).
 * A nested task is not traced on its own (a worker's trace ring has one
 * slot reserved at a time, the outer task's): its time is in the outer
 * task's slice.
 */
void isola__worker_help(struct worker *w, struct task *t)
{
	struct isola_pool *p = w->pool;
	assert(isola__this_worker == w || !"isola: help off its worker");
	if (t->kind == TASK_DRAIN) {
		isola__task_free(t); /* the worker's own queue only: not expected here */
		return;
	}
	if (isola__load_acquire(&p->closing) == CLOSING_CANCEL ||
	    (t->future != NULL && !isola__future_start(t->future))) {
		if (t->future != NULL && isola__load_acquire(&p->closing) == CLOSING_CANCEL) {
			isola__error e = { isola__strdup("isola.Cancelled"),
					   isola__strdup("the pool shut down before it ran"), NULL };
			isola__future_complete(t->future, ISOLA_ECANCELED, NULL, &e);
			isola__error_clear(&e);
		}
		isola__task_free(t);
		return;
	}
	isola_future *outer = isola__load_acquire(&w->current);
	int64_t outer_deadline = isola__load_acquire(&w->current_deadline);
	int64_t t0 = isola__now_ns();
	isola__add_relaxed(&w->tasks_run, 1);
	/* Published under the GIL, as run_task does: the watchdog reads
	 * them under it too. */
	isola__store_release(&w->current, t->future);
	isola__store_release(&w->current_deadline, t->timeout_ns > 0 ? t0 + t->timeout_ns : 0);
	if (t->timeout_ns > 0)
		isola__watchdog_wake(p);
	isola_future *f = t->future;
	isola_msg result;
	isola_msg_init(&result);
	isola__error err = { 0 };
	int status = run_for_outcome(w, t, f, &result, &err);
	t->future = NULL;
	isola__task_free(t);
	/* An interrupt aimed at the nested task must not hit the outer one. */
	isola__interp_async_cancel(w->interp, false);
	__atomic_store_n(&w->abort_wait, 0, __ATOMIC_RELAXED); /* under the GIL, as set */
	isola__store_release(&w->current, outer);
	isola__store_release(&w->current_deadline, outer_deadline);
	isola__watchdog_wake(p); /* it may have slept on the nested deadline */
	isola__add_relaxed(&w->busy_ns, (uint64_t)(isola__now_ns() - t0));
	if (f != NULL) {
		/* Completed with the GIL released, as run_task does. */
		isola__interp_leave(w->interp);
		isola__future_complete(f, status, &result, status ? &err : NULL);
		isola__interp_enter(w->interp);
	}
	isola_msg_clear(&result);
	isola__error_clear(&err);
	isola_future_release(f);
}

_Thread_local bool isola__submit_shared_only;

bool isola__worker_outer_interrupted(struct worker *w)
{
	/* Acquire, both: current as the worker published it (this thread
	 * did); interrupt pairs with isola_future_cancel's CAS (future.c). */
	isola_future *f = isola__load_acquire(&w->current);
	int why = f != NULL ? isola__load_acquire(&f->interrupt) : INTERRUPT_NONE;
	return why == INTERRUPT_CANCEL || why == INTERRUPT_TIMEOUT;
}

/* The owner's waker (release.h), on any thread: post a drain task to the
 * worker's own queue, without blocking (full: the worker is busy and
 * drains at its next codec call; closed: it is going away). */
static void post_drain(void *q)
{
	struct task *t = isola__task_new(TASK_DRAIN, NULL);
	if (t == NULL)
		return;
	isola_msg m;
	isola_msg_init(&m);
	isola_msg_set_bytes(&m, &t, sizeof(t));
	if (isola_channel_send(q, &m, 0) != 0)
		isola__task_free(t);
}

static void release_queue(void *q)
{
	isola_channel_release(q);
}

/* Create the interpreter and report to isola_pool_create; false if the
 * pool is not to run (this or another worker failed). */
static bool start(struct worker *w)
{
	struct isola_pool *p = w->pool;
	char *err = NULL;
	isola_interp *in = NULL;
	int r = isola_interp_create(&p->setup, &in, &err);
	pthread_mutex_lock(&w->attach_lock);
	w->interp = in;
	pthread_mutex_unlock(&w->attach_lock);
	if (r == 0) {
		w->scratch = isola__future_new(p);
		/* Refusals its preload or init caught (they name themselves). */
		uint64_t seen = w->refusals_seen;
		if (isola__refusals_new(&seen)) {
			isola__interp_enter(in);
			isola__worker_take_fallbacks(w, "init");
			isola__interp_leave(in);
		}
	}
	/* Memory of this interpreter's objects that others held zero-copy is
	 * given back at once, even when idle. */
	if (r == 0) {
		isola_channel_retain(w->private_q);
		if (isola__host_begin(w->interp, post_drain, w->private_q, release_queue) != 0)
			isola_channel_release(w->private_q); /* no owner: never called */
	}
	pthread_mutex_lock(&p->lock);
	if (r == 0) {
		p->started++;
	} else {
		p->failed++;
		if (p->start_error == NULL)
			p->start_error = err ? err : isola__strdup(isola_strerror(r));
		else
			isola__free(err);
	}
	pthread_cond_broadcast(&p->cond);
	while (p->started + p->failed < p->n)
		pthread_cond_wait(&p->cond, &p->lock);
	bool run = p->failed == 0;
	pthread_mutex_unlock(&p->lock);
	return r == 0 && run;
}

_Thread_local struct isola_pool *isola__worker_pool;
_Thread_local struct worker *isola__this_worker;

void *isola__worker_main(void *arg)
{
	struct worker *w = arg;
	struct isola_pool *p = w->pool;
	isola__worker_pool = p;
	isola__this_worker = w;
	isola__wait_abort = &w->abort_wait; /* its tasks' waits can be cancelled */
	/* The signal mask is left as inherited (normally the main thread's),
	 * as Python's own threads leave it: processes started by a task
	 * inherit it, and a child with SIGTERM or SIGCHLD blocked cannot be
	 * terminated or cannot reap its own children.  Linux delivers a
	 * process-directed signal (Ctrl-C) to the main thread first when it
	 * does not block it, and CPython runs Python handlers there. */
	int64_t began = isola__now_ns();
	bool started = start(w);
	if (started) {
		isola__trace_worker(w, TRACE_EV_WORKER_START, began);
		/* routed_q: calls routed here (route.c). */
		isola_channel *queues[3] = { w->routed_q, w->private_q, p->shared_q };
		isola__deadline forever;
		isola__deadline_init(&forever, -1);
		/* Adaptive spinning: while tasks keep arriving during the spin,
		 * spin longer (a parked thread takes ~70 us to wake); once one
		 * had to sleep, spin less.  At most p->max_spinners idle
		 * workers spin; the others park at once. */
		isola__spin_ns_local = isola__spin_ns;
		for (;;) {
			isola_msg m;
			isola_msg_init(&m);
			size_t idx;
			int r = ISOLA_EAGAIN;
			if (w->spinning || spinner_begin(w)) {
				r = isola__channel_select_until(queues, 3, &m, &forever,
								ISOLA__WAIT_SPIN_ONLY, &idx);
				spinner_end(w);
				w->spinning = false;
			}
			bool slept = false;
			if (r == ISOLA_EAGAIN) {
				isola__last_wait_slept = 0;
				isola__route_open(w); /* callers here may route to it */
				/* Idle: the memory of the messages freed in the last
				 * burst goes back to the system once it is over
				 * (alloc.h); until then, wake to look now and then. */
				isola__deadline until = forever;
				if (isola__trim_pending())
					isola__deadline_init(&until, ISOLA__TRIM_WAKE_NS);
				r = isola__channel_select_until(queues, 3, &m, &until,
								ISOLA__WAIT_NO_SPIN, &idx);
				slept = isola__last_wait_slept;
				if (r == ISOLA_ETIMEDOUT || r == ISOLA_EAGAIN) {
					isola__trim_if_due();
					continue;
				}
			}
			if (r == ISOLA_ECLOSED)
				break; /* both closed and drained */
			if (slept)
				isola__spin_ns_local = isola__spin_ns_local / 2 > IDLE_SPIN_MIN_NS
							       ? isola__spin_ns_local / 2 : IDLE_SPIN_MIN_NS;
			else
				isola__spin_ns_local = isola__spin_ns_local * 2 < IDLE_SPIN_MAX_NS
							       ? isola__spin_ns_local * 2 : IDLE_SPIN_MAX_NS;
			if (r != 0)
				continue;
			isola__route_busy(w, idx == 0); /* before it runs: route.c */
			run_task(w, isola__task_of(&m));
			isola__graph_drain_overflow(p); /* ready tasks the full queue refused */
		}
	}
	int64_t ending = isola__now_ns();
	pthread_mutex_lock(&w->attach_lock); /* the watchdog is not attached */
	if (w->interp != NULL) {
		isola__host_end(w->interp);
		isola_interp_destroy(w->interp);
		w->interp = NULL;
	}
	pthread_mutex_unlock(&w->attach_lock);
	if (started)
		isola__trace_worker(w, TRACE_EV_WORKER_END, ending);
	/* The watchdog may hold it only while current points to it (under
	 * this worker's GIL, which is gone now). */
	isola_future_release(w->scratch);
	w->scratch = NULL;
	__atomic_add_fetch(&p->exited, 1, __ATOMIC_ACQ_REL);
	ck_ec32_inc(&p->exit_ec, &isola__ec_mode);
	return NULL;
}
