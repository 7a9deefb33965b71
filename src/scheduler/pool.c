/*
 * pool.c - pool lifecycle, submitting work, stats (design in pool.h).
 */
#include "scheduler/pool.h"
#include "scheduler/proclane.h"
#include "common/alloc.h"
#include "common/recycle.h"

#include "common/atomics.h"
#include "channels/channel.h"
#include "interp/host.h"
#include "interp/runtime.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SHARED_QUEUE 65536 /* tasks; submit waits (backpressure) when full */
#define PRIVATE_QUEUE 4096 /* actor messages per worker */
#define ROUTED_QUEUE 4     /* calls routed to an idle worker: one at a time */
#define MONITOR_QUEUE 1024

/* A caller makes a task, a worker frees it: tasks whose target fits
 * TASK_TARGET_INLINE are recycled (recycle.h). */
#define TASK_TARGET_INLINE 80
static isola__recycler tasks = ISOLA__RECYCLER_INIT(sizeof(struct task) + TASK_TARGET_INLINE);

struct task *isola__task_new(enum task_kind kind, const char *target)
{
	size_t len = target ? strlen(target) + 1 : 0;
	bool recycled = len <= TASK_TARGET_INLINE;
	struct task *t = recycled ? isola__recycled_calloc(&tasks)
				  : isola__calloc(1, sizeof(*t) + len);
	if (t == NULL)
		return NULL;
	t->recycled = recycled;
	t->kind = kind;
	if (target != NULL)
		t->target = memcpy(t->target_buf, target, len);
	return t;
}

void isola__task_free(struct task *t)
{
	if (t == NULL)
		return;
	isola_msg_clear(&t->args);
	isola__graph_release_inputs(t);
	for (size_t i = 0; i < t->chunk.n; i++)
		isola_msg_clear(&t->chunk.items[i]);
	isola__free(t->chunk.items);
	isola_future_release(t->future);
	if (t->recycled)
		isola__recycled_free(&tasks, t);
	else
		isola__free(t);
}

struct task *isola__task_of(isola_msg *m)
{
	struct task *t;
	const void *d;
	size_t len;
	isola_msg_bytes(m, &d, &len);
	memcpy(&t, d, sizeof(t));
	isola_msg_clear(m);
	return t;
}

struct task *isola__task_take(isola_channel *q)
{
	isola_msg m;
	isola_msg_init(&m);
	return isola_channel_recv(q, &m, 0) == 0 ? isola__task_of(&m) : NULL;
}

_Thread_local const struct isola__post_wait *isola__post_wait;

int isola__task_enqueue(struct isola_pool *p, isola_channel *q, struct task *t)
{
	if (p->trace != NULL)
		t->queued_ns = isola__now_ns();
	isola_msg m;
	isola_msg_init(&m);
	isola_msg_set_bytes(&m, &t, sizeof(t)); /* 8 bytes: inline */
	const struct isola__post_wait *w = isola__post_wait;
	if (w != NULL)
		return isola__channel_send_until(q, &m, w->deadline, w->flags);
	isola__deadline d;
	isola__deadline_init(&d, p->queue_wait_ns > 0 ? p->queue_wait_ns : -1);
	int r = isola__channel_send_until(q, &m, &d, 0);
	return r == ISOLA_ETIMEDOUT ? ISOLA_EAGAIN : r;
}

/* ---- setup options, deep-copied ------------------------------------ */

/* n copies of src's strings into a new array; every copy is also
 * recorded in p->setup_strings (freed by free_setup, whatever failed).
 * 0, EINVAL (a NULL string), ENOMEM. */
static int copy_strings(struct isola_pool *p, const char *const *src, size_t n,
			const char ***out)
{
	*out = NULL;
	if (n == 0)
		return 0;
	if (src == NULL)
		return ISOLA_EINVAL;
	const char **dst = isola__calloc(n, sizeof(char *));
	if (dst == NULL)
		return ISOLA_ENOMEM;
	*out = dst;
	for (size_t i = 0; i < n; i++) {
		if (src[i] == NULL)
			return ISOLA_EINVAL;
		char *c = isola__strdup(src[i]);
		if (c == NULL)
			return ISOLA_ENOMEM;
		p->setup_strings[p->n_setup_strings++] = c;
		dst[i] = c;
	}
	return 0;
}

static int copy_setup(struct isola_pool *p, const isola_interp_options *o)
{
	if (o == NULL)
		return 0;
	size_t total = o->n_sys_path + o->n_preload + 1;
	p->setup_strings = isola__calloc(total, sizeof(char *));
	if (p->setup_strings == NULL)
		return ISOLA_ENOMEM;
	const char **paths = NULL, **preload = NULL;
	int r = copy_strings(p, o->sys_path, o->n_sys_path, &paths);
	p->setup.sys_path = paths;
	p->setup.n_sys_path = o->n_sys_path;
	if (r == 0)
		r = copy_strings(p, o->preload, o->n_preload, &preload);
	p->setup.preload = preload;
	p->setup.n_preload = o->n_preload;
	if (r == 0 && o->init_source != NULL) {
		char *c = isola__strdup(o->init_source);
		if (c == NULL)
			return ISOLA_ENOMEM;
		p->setup_strings[p->n_setup_strings++] = c;
		p->setup.init_source = c;
	}
	return r;
}

static void free_setup(struct isola_pool *p)
{
	for (size_t i = 0; i < p->n_setup_strings; i++)
		isola__free(p->setup_strings[i]);
	isola__free(p->setup_strings);
	isola__free((void *)p->setup.sys_path);
	isola__free((void *)p->setup.preload);
}

/* ---- lifecycle ------------------------------------------------------ */

void isola__pool_close_queues(struct isola_pool *p)
{
	isola_channel_close(p->shared_q);
	for (int i = 0; i < p->n; i++) {
		isola_channel_close(p->workers[i].routed_q);
		isola_channel_close(p->workers[i].private_q);
	}
}

static void free_pool(struct isola_pool *p)
{
	/* Whatever is still queued holds task pointers: free them.  The
	 * queues (closed) are released only after every future ended here:
	 * a task waiting for one of them (graph.c) is then refused by the
	 * closed queue, never posted to a freed one. */
	for (int i = -1; i < 2 * p->n; i++) {
		isola_channel *q = i < 0 ? p->shared_q : i < p->n ? p->workers[i].private_q
								 : p->workers[i - p->n].routed_q;
		struct task *t;
		while (q != NULL && (t = isola__task_take(q)) != NULL) {
			if (t->future != NULL)
				isola__future_complete(t->future, ISOLA_ECLOSED, NULL, NULL);
			isola__task_free(t);
		}
	}
	isola__pool_lane_free(p); /* joins the process workers first */
	isola__actor_free_all(p);
	isola__graph_fini(p);
	isola__trace_pool_free(p); /* the workers are gone: the last drain */
	for (int i = -1; i < 2 * p->n; i++)
		isola_channel_release(i < 0 ? p->shared_q : i < p->n ? p->workers[i].private_q
								     : p->workers[i - p->n].routed_q);
	if (p->link != NULL) {
		isola__pool_link_cut(p->link); /* before the pool goes */
		isola__pool_link_release(p->link);
	}
	isola__pool_link_release(p->input_link);
	isola_channel_release(p->monitor);
	for (int i = 0; p->workers != NULL && i < p->n; i++)
		pthread_mutex_destroy(&p->workers[i].attach_lock);
	isola__free(p->workers);
	isola__free(p->start_error);
	free_setup(p);
	for (size_t i = 0; i < p->n_fallbacks; i++) {
		isola__free(p->fallbacks[i].module);
		isola__free(p->fallbacks[i].target);
	}
	isola__free(p->fallbacks);
	pthread_mutex_destroy(&p->fallback_lock);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	p->tag = 0;
	isola__free(p);
}

/* Stop and join the first n workers' watchdogs. */
static void stop_watchdogs(struct isola_pool *p, int n)
{
	pthread_mutex_lock(&p->lock);
	p->watchdog_stop = 1;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	for (int i = 0; i < n; i++)
		pthread_join(p->workers[i].watchdog, NULL);
}

int isola_pool_create(const isola_pool_options *opts, isola_pool **out, char **error_out)
{
	if (out == NULL)
		return ISOLA_EINVAL;
	if (!isola__runtime_ready())
		return ISOLA_ESTATE;
	if (opts != NULL && opts->workers > ISOLA_MAX_WORKERS)
		return ISOLA_ELIMIT;
	struct isola_pool *p = isola__calloc(1, sizeof(*p));
	if (p == NULL)
		return ISOLA_ENOMEM;
	p->tag = ISOLA__POOL_TAG;
	int n = opts && opts->workers > 0 ? opts->workers : (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		n = 1;
	p->n = n;
	p->no_pickle = opts ? opts->no_pickle : 0;
	p->queue_wait_ns = opts ? opts->queue_wait_ns : 0;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	p->max_spinners = cpus >= 4 ? (int)(cpus / 2) : 1;
	pthread_mutex_init(&p->lock, NULL);
	pthread_mutex_init(&p->fallback_lock, NULL);
	isola__graph_init(p);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cond, &ca);
	pthread_condattr_destroy(&ca);
	ck_ec32_init(&p->exit_ec, 0);
	p->workers = isola__calloc((size_t)n, sizeof(struct worker));
	p->link = isola__pool_link_new(p);
	int r = p->workers && p->link ? copy_setup(p, opts ? &opts->setup : NULL) : ISOLA_ENOMEM;
	if (r == 0)
		r = isola_channel_create(SHARED_QUEUE, &p->shared_q);
	if (r == 0)
		r = isola_channel_create(MONITOR_QUEUE, &p->monitor);
	for (int i = 0; r == 0 && i < n; i++) {
		p->workers[i].pool = p;
		p->workers[i].index = i;
		pthread_mutex_init(&p->workers[i].attach_lock, NULL);
		r = isola_channel_create(PRIVATE_QUEUE, &p->workers[i].private_q);
		if (r == 0)
			r = isola_channel_create(ROUTED_QUEUE, &p->workers[i].routed_q);
	}
	if (r == 0)
		r = isola__trace_pool_begin(p, opts ? opts->trace : NULL,
					    opts ? opts->trace_events : 0, error_out);
	if (r != 0) {
		p->n = p->workers ? n : 0;
		free_pool(p);
		return r;
	}
	/* Start every worker at once: interpreters are created in parallel. */
	int launched = 0;
	for (; launched < n; launched++)
		if (pthread_create(&p->workers[launched].thread, NULL, isola__worker_main,
				   &p->workers[launched]) != 0)
			break;
	if (launched < n) {
		/* Those started wait for all n to report: report the rest. */
		pthread_mutex_lock(&p->lock);
		p->failed += n - launched;
		if (p->start_error == NULL)
			p->start_error = isola__strdup("could not start a worker thread");
		pthread_cond_broadcast(&p->cond);
		pthread_mutex_unlock(&p->lock);
	}
	pthread_mutex_lock(&p->lock);
	while (p->started + p->failed < n)
		pthread_cond_wait(&p->cond, &p->lock);
	int failed = p->failed;
	pthread_mutex_unlock(&p->lock);
	/* One watchdog per worker: a task stuck in a GIL-holding C call
	 * delays only its own worker's interruption, never another's. */
	int watched = 0;
	while (failed == 0 && watched < n) {
		if (pthread_create(&p->workers[watched].watchdog, NULL, isola__watchdog_main,
				   &p->workers[watched]) != 0)
			failed = -1;
		else
			watched++;
	}
	if (failed != 0) {
		stop_watchdogs(p, watched);
		isola__store_release(&p->closing, CLOSING_CANCEL);
		isola__pool_close_queues(p);
		for (int i = 0; i < launched; i++)
			pthread_join(p->workers[i].thread, NULL);
		if (error_out != NULL)
			*error_out = isola__strdup(p->start_error ? p->start_error : "watchdog");
		r = failed > 0 && launched == n ? ISOLA_EPYTHON : ISOLA_ESYS;
		free_pool(p);
		return r;
	}
	if (opts != NULL && opts->process_workers > 0) {
		r = isola__pool_lane_start(p, opts->process_workers, opts->process_python,
					   error_out);
		if (r != 0) {
			isola_pool_destroy(p);
			return r;
		}
	}
	*out = p;
	return 0;
}

/* Cancel every task still in the shared and routed queues (shutdown with CANCEL):
 * done here, at once, so that a caller sees its futures cancelled when
 * shutdown returns.  Workers may race for the same tasks: whoever takes
 * one first handles it, and a worker seeing closing == CLOSING_CANCEL
 * cancels instead of running. */
static void cancel_queued(struct isola_pool *p)
{
	for (int i = -1; i < p->n; i++) {
		isola_channel *q = i < 0 ? p->shared_q : p->workers[i].routed_q;
		struct task *t;
		while ((t = isola__task_take(q)) != NULL) {
			if (t->future != NULL)
				isola__future_cancel_pending(t->future,
							     "the pool shut down before it ran");
			isola__task_free(t);
		}
	}
}

/* isola__wait's condition: every worker has left its loop. */
static int all_exited(void *arg)
{
	struct isola_pool *p = arg;
	/* Acquire: pairs with each worker's acq_rel increment as it leaves. */
	return __atomic_load_n(&p->exited, __ATOMIC_ACQUIRE) >= p->n ? 0 : ISOLA_EAGAIN;
}

bool isola__valid_target(const char *target)
{
	const char *colon = target != NULL ? strchr(target, ':') : NULL;
	return colon != NULL && colon != target && colon[1] != '\0';
}

int isola_pool_shutdown(isola_pool *p, int how, int64_t timeout_ns)
{
	ISOLA__CHECK_POOL(p);
	if (p == NULL || (how & ~(ISOLA_SHUTDOWN_CANCEL | ISOLA_SHUTDOWN_INTERRUPT)) != 0)
		return ISOLA_EINVAL;
	int want = how ? CLOSING_CANCEL : CLOSING_FINISH;
	int cur = isola__load_acquire(&p->closing);
	/* seq_cst CAS: the closing level only rises; workers read it with
	 * acquire before running each task; seq_cst for graph.c's
	 * close_if_idle (raise closing, then read the waiting count). */
	while (cur < want && !__atomic_compare_exchange_n(&p->closing, &cur, want, false,
							  __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
		;
	if (how & (ISOLA_SHUTDOWN_CANCEL | ISOLA_SHUTDOWN_INTERRUPT)) {
		isola__pool_close_queues(p);
		cancel_queued(p);
		isola__graph_shutdown(p, true);
	} else {
		isola__graph_shutdown(p, false); /* closes them once no task waits */
	}
	/* The process lane stops taking work now; it is joined below. */
	isola__pool_lane_shutdown(p, how, 0, 0);
	if (how & ISOLA_SHUTDOWN_INTERRUPT) {
		/* The watchdog raises Cancelled in every running task. */
		pthread_mutex_lock(&p->lock);
		p->interrupt_all = 1;
		pthread_cond_broadcast(&p->cond);
		pthread_mutex_unlock(&p->lock);
	}
	isola__deadline d;
	isola__deadline_init(&d, timeout_ns);
	/* isola__wait, not a bare ck_ec wait: it keeps each sleep within the
	 * deadline (ck_ec's own backoff sleeps a second and more). */
	int r = isola__wait(&p->exit_ec, all_exited, p, &d, ISOLA__WAIT_NO_SPIN);
	/* Tasks waiting on another owner's futures (a process lane's) may
	 * outlast the workers: the pool is joined once none is left (they
	 * end with those futures; rare, so polled). */
	while (r == 0 && !isola__graph_idle(p)) {
		if (isola__deadline_passed(&d)) {
			r = ISOLA_ETIMEDOUT;
			break;
		}
		usleep(1000);
	}
	if (r == 0 && p->plane != NULL) {
		/* The process workers, in what is left of the timeout. */
		int64_t left = -1;
		if (!d.forever) {
			left = ((int64_t)d.at.tv_sec * 1000000000 + d.at.tv_nsec) - isola__now_ns();
			left = left > 0 ? left : 0;
		}
		r = isola__pool_lane_shutdown(p, how, 1, left);
	}
	if (r == 0)
		isola__trace_pool_end(p); /* every worker left: its file is complete */
	return r == ISOLA_EAGAIN ? ISOLA_ETIMEDOUT : r;
}

int isola_pool_destroy(isola_pool *p)
{
	ISOLA__CHECK_POOL(p);
	if (p == NULL)
		return 0;
	if (isola__worker_pool == p)
		return ISOLA_ESTATE; /* from its own worker (an on_done callback) */
	isola_pool_shutdown(p, ISOLA_SHUTDOWN_CANCEL | ISOLA_SHUTDOWN_INTERRUPT, -1);
	for (int i = 0; i < p->n; i++)
		pthread_join(p->workers[i].thread, NULL);
	stop_watchdogs(p, p->n);
	free_pool(p);
	return 0;
}

/* ---- work ----------------------------------------------------------- */

/* Where a call goes: the shared queue, except on a contended machine
 * when a worker went idle on the caller's own CPU (route.c). */
static int enqueue_call(struct isola_pool *p, struct task *t)
{
	if (p->trace != NULL)
		t->queued_ns = isola__now_ns();
	/* Export threads (the Python front's) submit to the shared queue
	 * only: a worker waiting for an export helps from there (host.c). */
	if (!isola__submit_shared_only && isola__route_call(p, t) == 0)
		return 0;
	return isola__task_enqueue(p, p->shared_q, t);
}

/* A call in an interpreter worker (arguments checked). */
static int submit_to_interpreters(struct isola_pool *p, const char *target, isola_msg *args,
				  int64_t timeout_ns, isola_future **out)
{
	struct task *t = isola__task_new(TASK_CALL, target);
	isola_future *f = t ? isola__future_new(p) : NULL;
	if (f == NULL) {
		isola__task_free(t);
		return ISOLA_ENOMEM;
	}
	isola_msg_init(&t->args);
	if (args != NULL)
		isola__msg_move(&t->args, args);
	t->timeout_ns = timeout_ns;
	t->future = f;
	isola_future_retain(f); /* the caller's reference */
	int r = enqueue_call(p, t);
	if (r != 0) {
		if (args != NULL)
			isola__msg_move(args, &t->args); /* give them back */
		isola_future_release(f);
		isola__task_free(t);
		return r;
	}
	*out = f;
	return 0;
}

int isola_pool_submit(isola_pool *p, const char *target, isola_msg *args,
		      int64_t timeout_ns, isola_future **out)
{
	ISOLA__CHECK_POOL(p);
	if (p == NULL || out == NULL || !isola__valid_target(target))
		return ISOLA_EINVAL;
	if (isola__load_acquire(&p->closing))
		return ISOLA_ECLOSED;
	if (p->plane != NULL && isola__pool_lane_wants(p, target))
		return isola__pool_lane_submit(p, ISOLA__PROC_CALL, target, args, NULL, 0, 0,
					       timeout_ns, out);
	return submit_to_interpreters(p, target, args, timeout_ns, out);
}

int isola_pool_submit_lane(isola_pool *p, int lane, const char *target, isola_msg *args,
			   int64_t timeout_ns, isola_future **out)
{
	ISOLA__CHECK_POOL(p);
	if (p == NULL || out == NULL || !isola__valid_target(target) ||
	    (lane != ISOLA_LANE_INTERPRETER && lane != ISOLA_LANE_PROCESS))
		return ISOLA_EINVAL;
	if (isola__load_acquire(&p->closing))
		return ISOLA_ECLOSED;
	if (lane == ISOLA_LANE_PROCESS)
		return isola__pool_lane_submit(p, ISOLA__PROC_CALL, target, args, NULL, 0, 0,
					       timeout_ns, out);
	return submit_to_interpreters(p, target, args, timeout_ns, out);
}

static size_t default_chunksize(const struct isola_pool *p, size_t n)
{
	size_t c = n / (4 * (size_t)p->n);
	return c > 0 ? c : 1;
}

/* The chunk tasks of a map, all allocated before any is queued (so that
 * ENOMEM leaves the caller's argument sets as they were). */
static struct task **map_tasks(struct isola_pool *p, const char *target, size_t n,
			       const isola_map_options *o, size_t chunksize, size_t k)
{
	struct task **ts = isola__calloc(k, sizeof(*ts));
	for (size_t c = 0; ts != NULL && c < k; c++) {
		size_t start = c * chunksize;
		size_t m = n - start < chunksize ? n - start : chunksize;
		struct task *t = isola__task_new(TASK_CHUNK, target);
		isola_future *f = t ? isola__future_new(p) : NULL;
		isola_msg *items = f ? isola__calloc(m, sizeof(isola_msg)) : NULL;
		if (items == NULL) {
			if (f != NULL)
				isola_future_release(f);
			isola__task_free(t);
			while (c-- > 0)
				isola__task_free(ts[c]); /* frees each one's future too */
			isola__free(ts);
			return NULL;
		}
		t->chunk = (struct argset){ .items = items, .n = m, .first = start,
					    .per_element = o->per_element != 0 };
		t->timeout_ns = o->timeout_ns;
		t->future = f;
		ts[c] = t;
	}
	return ts;
}

int isola_pool_map_ex(isola_pool *p, const char *target, isola_msg *argsets, size_t n,
		      const isola_map_options *opts, isola_future **out, size_t *n_chunks)
{
	ISOLA__CHECK_POOL(p);
	static const isola_map_options defaults = { 0 };
	const isola_map_options *o = opts != NULL ? opts : &defaults;
	if (p == NULL || target == NULL || (argsets == NULL && n > 0) || out == NULL ||
	    n_chunks == NULL || !isola__valid_target(target))
		return ISOLA_EINVAL;
	if (isola__load_acquire(&p->closing))
		return ISOLA_ECLOSED;
	size_t chunksize = o->chunksize > 0 ? o->chunksize : default_chunksize(p, n);
	if (p->plane != NULL && n > 0 && isola__pool_lane_wants(p, target))
		return o->per_element ? ISOLA_EINVAL
				      : isola__pool_lane_map(p, target, argsets, n, chunksize,
							     o->timeout_ns, out, n_chunks);
	size_t k = n / chunksize + (n % chunksize != 0);
	struct task **ts = k > 0 ? map_tasks(p, target, n, o, chunksize, k) : NULL;
	if (k > 0 && ts == NULL)
		return ISOLA_ENOMEM;
	/* A queued task is the worker's (it may run and be freed at once):
	 * only its future, held by the caller's reference, is used after. */
	isola_future **fs = k > 0 ? isola__calloc(k, sizeof(*fs)) : NULL;
	if (k > 0 && fs == NULL) {
		for (size_t c = 0; c < k; c++)
			isola__task_free(ts[c]);
		isola__free(ts);
		return ISOLA_ENOMEM;
	}
	int r = 0;
	size_t queued = 0;
	for (; queued < k; queued++) {
		struct task *t = ts[queued];
		for (size_t i = 0; i < t->chunk.n; i++)
			isola__msg_move(&t->chunk.items[i], &argsets[t->chunk.first + i]);
		fs[queued] = t->future;
		isola_future_retain(t->future); /* the caller's reference */
		if ((r = isola__task_enqueue(p, p->shared_q, t)) != 0) {
			for (size_t i = 0; i < t->chunk.n; i++)
				isola__msg_move(&argsets[t->chunk.first + i], &t->chunk.items[i]);
			isola_future_release(t->future);
			break;
		}
	}
	if (r != 0) {
		/* Nothing is reported: cancel what was queued (a chunk that a
		 * worker already started runs on, its result dropped).  Their
		 * argument sets went with them; the rest stay the caller's. */
		for (size_t c = 0; c < queued; c++) {
			isola__future_cancel_pending(fs[c], "the map could not be queued whole");
			isola_future_release(fs[c]);
		}
		for (size_t c = queued; c < k; c++)
			isola__task_free(ts[c]);
	} else {
		if (k > 0)
			memcpy(out, fs, k * sizeof(*fs));
		*n_chunks = k;
	}
	isola__free(fs);
	isola__free(ts);
	return r;
}

int isola_pool_map(isola_pool *p, const char *target, isola_msg *argsets, size_t n,
		   size_t chunksize, isola_future **out, size_t *n_chunks)
{
	isola_map_options o = { .chunksize = chunksize };
	return isola_pool_map_ex(p, target, argsets, n, &o, out, n_chunks);
}

int isola_pool_run(isola_pool *p, const char *source, char **error_out)
{
	ISOLA__CHECK_POOL(p);
	if (p == NULL || source == NULL)
		return ISOLA_EINVAL;
	if (isola__load_acquire(&p->closing))
		return ISOLA_ECLOSED;
	if (isola__worker_pool == p)
		return ISOLA_ESTATE; /* a worker would wait for itself */
	isola_future **fs = isola__calloc((size_t)p->n, sizeof(*fs));
	if (fs == NULL)
		return ISOLA_ENOMEM;
	int r = 0;
	for (int i = 0; i < p->n && r == 0; i++) {
		struct task *t = isola__task_new(TASK_RUN, source);
		fs[i] = t ? isola__future_new(p) : NULL;
		if (fs[i] == NULL) {
			isola__task_free(t);
			r = ISOLA_ENOMEM;
			break;
		}
		t->future = fs[i];
		isola_future_retain(fs[i]);
		r = isola__task_enqueue(p, p->workers[i].private_q, t);
		if (r != 0) { /* shut down meanwhile: nobody will run it */
			isola__future_complete(fs[i], r, NULL, NULL);
			isola__task_free(t);
		}
	}
	for (int i = 0; i < p->n && fs[i] != NULL; i++) {
		isola_future_wait(fs[i], -1);
		int s = isola_future_result(fs[i], NULL);
		if (s != 0 && r == 0) {
			r = s;
			if (error_out != NULL && fs[i]->err.type != NULL)
				*error_out = isola__error_format(&fs[i]->err);
		}
		isola_future_release(fs[i]);
	}
	isola__free(fs);
	return r;
}

/* ---- stats ------------------------------------------------------------ */

int isola_pool_size(isola_pool *p, size_t *n)
{
	if (p == NULL || n == NULL)
		return ISOLA_EINVAL;
	*n = (size_t)p->n;
	return 0;
}

int isola_pool_worker_stats(isola_pool *p, size_t i, isola_worker_stats *out,
			    uint64_t *shared_depth)
{
	if (p == NULL || out == NULL || i >= (size_t)p->n)
		return ISOLA_EINVAL;
	struct worker *w = &p->workers[i];
	isola_channel_stats st;
	isola_channel_stats_get(w->private_q, &st);
	out->tasks_run = isola__load_relaxed(&w->tasks_run);
	out->busy_ns = isola__load_relaxed(&w->busy_ns);
	out->queue_depth = st.depth;
	out->actors = isola__load_relaxed(&w->n_actors);
	isola__worker_running(w, out->running, &out->running_ns);
	if (shared_depth != NULL) {
		isola_channel_stats_get(p->shared_q, &st);
		*shared_depth = st.depth;
	}
	return 0;
}

int isola_pool_monitor(isola_pool *p, isola_channel **out)
{
	if (p == NULL || out == NULL)
		return ISOLA_EINVAL;
	isola_channel_retain(p->monitor);
	*out = p->monitor;
	return 0;
}

int isola_pool_send_errors(isola_pool *p, uint64_t *n)
{
	if (p == NULL || n == NULL)
		return ISOLA_EINVAL;
	*n = isola__load_relaxed(&p->send_errors);
	return 0;
}

int isola_pool_monitor_dropped(isola_pool *p, uint64_t *n)
{
	if (p == NULL || n == NULL)
		return ISOLA_EINVAL;
	*n = isola__load_relaxed(&p->monitor_dropped);
	return 0;
}

/* ---- silent fallbacks (issue #33) ------------------------------------ */

static uint64_t fallbacks_recorded; /* every pool's new modules (relaxed) */

uint64_t isola__fallbacks_recorded(void)
{
	return __atomic_load_n(&fallbacks_recorded, __ATOMIC_ACQUIRE);
}

struct take_ctx {
	struct isola_pool *pool;
	const char *target;
};

static void record_fallback(void *arg, const char *module, const char *where, uint64_t times)
{
	struct take_ctx *c = arg;
	struct isola_pool *p = c->pool;
	const char *target = where != NULL ? where : c->target ? c->target : "?";
	bool added = false;
	pthread_mutex_lock(&p->fallback_lock);
	size_t i = 0;
	while (i < p->n_fallbacks && strcmp(p->fallbacks[i].module, module) != 0)
		i++;
	if (i < p->n_fallbacks) {
		p->fallbacks[i].times += times;
	} else {
		if (p->n_fallbacks == p->cap_fallbacks) {
			size_t cap = p->cap_fallbacks ? 2 * p->cap_fallbacks : 8;
			struct isola__fallback *grown =
				isola__realloc(p->fallbacks, cap * sizeof(*grown));
			if (grown != NULL) {
				p->fallbacks = grown;
				p->cap_fallbacks = cap;
			}
		}
		char *m = isola__strdup(module), *t = isola__strdup(target);
		if (p->n_fallbacks < p->cap_fallbacks && m != NULL && t != NULL) {
			p->fallbacks[p->n_fallbacks++] = (struct isola__fallback){ m, t, times };
			added = true;
		} else {
			isola__free(m);
			isola__free(t);
		}
	}
	pthread_mutex_unlock(&p->fallback_lock);
	if (added) /* release: the record is in before the count says so */
		__atomic_add_fetch(&fallbacks_recorded, 1, __ATOMIC_RELEASE);
}

void isola__worker_take_fallbacks(struct worker *w, const char *target)
{
	if (!isola__refusals_new(&w->refusals_seen))
		return;
	struct take_ctx c = { w->pool, target };
	isola__refusals_take(record_fallback, &c);
}

int isola_pool_fallbacks(isola_pool *p, size_t *n)
{
	if (p == NULL || n == NULL)
		return ISOLA_EINVAL;
	pthread_mutex_lock(&p->fallback_lock);
	*n = p->n_fallbacks;
	pthread_mutex_unlock(&p->fallback_lock);
	return 0;
}

int isola_pool_fallback(isola_pool *p, size_t i, const char **module, const char **target,
			uint64_t *times)
{
	if (p == NULL)
		return ISOLA_EINVAL;
	int r = 0;
	pthread_mutex_lock(&p->fallback_lock);
	if (i >= p->n_fallbacks) {
		r = ISOLA_ENOTFOUND;
	} else {
		if (module != NULL)
			*module = p->fallbacks[i].module;
		if (target != NULL)
			*target = p->fallbacks[i].target;
		if (times != NULL)
			*times = p->fallbacks[i].times;
	}
	pthread_mutex_unlock(&p->fallback_lock);
	return r;
}
