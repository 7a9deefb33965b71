/*
 * pool.h - pools, workers and tasks (internal).
 *
 * Work distribution: one shared task channel that every worker selects
 * on, plus a private channel per worker for the actors living on it.
 * Whoever is free takes the next task, so uneven tasks balance without
 * stealing; idle workers park in select (after a short spin).  Tasks
 * travel as pointers inside 8-byte inline messages.
 *
 * Cancelling and timing out running tasks is the job of each worker's
 * watchdog thread (interrupt.c), through interp's entry points (host.h):
 * the scheduler never calls CPython itself.
 */
#ifndef ISOLA_SCHEDULER_POOL_H
#define ISOLA_SCHEDULER_POOL_H

#include "isola.h"

#include "interp/host.h"
#include "scheduler/future.h"
#include "scheduler/post_wait.h"
#include "scheduler/trace.h"

#include <assert.h>
#include <ck_sequence.h>
#include <pthread.h>
#include <stdbool.h>

struct argset {
	isola_msg *items; /* one message per call (TASK_CHUNK) */
	size_t n;
	size_t first;     /* index of items[0] in the whole map */
	bool per_element; /* each call's exception is its slot's value */
};

enum task_kind {
	TASK_CALL,        /* target(*args) */
	TASK_CHUNK,       /* target over a list of argument sets */
	TASK_RUN,         /* exec source (pool_run) */
	TASK_ACTOR_NEW,   /* construct an actor */
	TASK_ACTOR_CALL,  /* a method call (future may be NULL: send) */
	TASK_ACTOR_KILL,  /* drop the instance, apply the policy */
	TASK_DRAIN,       /* give released zero-copy objects back (release.h) */
};

/* A task's inputs (graph.c): results of other tasks it waits for. */
struct task_input {
	isola_future *future; /* held until the task has started */
	int position;         /* >= 0: positional index, or */
	char *keyword;        /* owned: a keyword argument */
};

struct task_inputs {
	struct isola_pool *pool;
	uint32_t pending;     /* atomic: inputs not yet done, + 1 while submitting */
	int oom;              /* a callback could not be registered: fail the task */
	struct task *prev, *next; /* p->graph_lock: the pool's waiting list */
	size_t n;
	struct task_input items[];
};

struct task {
	enum task_kind kind;
	char *target;      /* "mod:qual", a method name, or source: target_buf */
	isola_msg args;
	struct argset chunk;  /* TASK_CHUNK */
	isola_future *future; /* may be NULL (actor send) */
	uint64_t epoch;       /* actor messages: the actor's kill epoch */
	int64_t timeout_ns;   /* <= 0: none */
	int64_t queued_ns;    /* traced pools: when it was queued (trace.h) */
	uint64_t actor_id;
	struct task_inputs *inputs; /* TASK_CALL of a graph, else NULL (graph.c) */
	struct task *overflow_next; /* p->graph_lock: ready, the shared queue was full */
	bool recycled;     /* from the task recycler (pool.c) */
	char target_buf[]; /* one allocation with the task */
};

struct worker {
	struct isola_pool *pool;
	int index;
	pthread_t thread;
	isola_interp *interp;
	isola_channel *private_q;   /* actor messages */
	isola_channel *routed_q;    /* calls routed to this idle worker (pool.c) */
	/* The running task, for the watchdog: written with the GIL held. */
	isola_future *current;      /* atomic */
	uint64_t current_actor;     /* atomic: the actor whose message runs, or 0 */
	uint64_t kill_actor;        /* atomic: an actor being killed (its message is interrupted) */
	/* Stands for the future of a task that has none (actor sends,
	 * constructors, kills), so the watchdog can interrupt those too. */
	isola_future *scratch;
	int64_t current_deadline;   /* atomic: ns, 0 = none */
	/* The worker thread's isola__wait_abort: set (release) by the
	 * watchdog when it interrupts the running task, cleared by the
	 * worker after the task; both under the worker's GIL. */
	uint32_t abort_wait;
	/* Atomic: who may route a call to this worker (pool.c:
	 * enqueue_call): ROUTE_BUSY while it runs a task, the isola__cpu_tag
	 * of the CPU it went idle on (parked, or about to), ROUTE_CLAIMED
	 * while a caller puts a call in routed_q, ROUTE_DELIVERED once it
	 * is there. */
	uint32_t route;
	pthread_t watchdog; /* interrupts this worker's tasks (interrupt.c) */
	int interrupt_look; /* p->lock: some future asked; look at the running task */
	/* Held by the watchdog while attached to this interpreter, and by
	 * the worker (detached) while destroying it. */
	pthread_mutex_t attach_lock;
	/* Stats (relaxed atomics). */
	uint64_t tasks_run, busy_ns;
	/* What runs now, for stats and for the warning of a shutdown that
	 * abandons it: the target's name (words written and read relaxed
	 * inside a ck_sequence, so a reader never sees half of two names)
	 * and since when (ns, 0: idle). */
	ck_sequence_t running_seq;
	uint64_t running_words[ISOLA_RUNNING_NAME_MAX / 8];
	int64_t running_since;
	bool spinning; /* worker thread only: holds a spinner role (worker.c) */
	/* Timeline rings (trace.h), NULL when the pool is not traced: the
	 * worker's, and its watchdog's (interrupts). */
	struct isola__trace_ring *trace, *trace_wd;
	int n_actors;
	/* Worker thread only: the refusal count it last saw (host.h:
	 * isola__refusals_new). */
	uint64_t refusals_seen;
};

/* An extension module the pool's interpreters refused while the task or
 * setup went on without it (a silent fallback, issue #33). */
struct isola__fallback {
	char *module;
	char *target; /* the first task's target, or "preload" / "init" / "run" */
	uint64_t times;
};

struct actor_slot; /* actor.c */

/* worker->route, besides CPU tags (1 + a CPU number). */
#define ROUTE_BUSY 0u
#define ROUTE_CLAIMED 0xfffffffeu
#define ROUTE_DELIVERED 0xffffffffu

/* route.c.  A call for a worker idle on the caller's CPU: 0 if it went
 * there (it is the worker's now), EAGAIN if it is still the caller's,
 * for the shared queue. */
int isola__route_call(struct isola_pool *p, struct task *t);
/* Worker thread only: it took a task (from routed_q or not).  A call
 * routed to it (or on its way) must not wait behind another task: it
 * goes to the shared queue, for any idle worker. */
void isola__route_busy(struct worker *w, bool took_routed);
/* Worker thread only: it goes idle on this CPU; callers here may route
 * to it. */
void isola__route_open(struct worker *w);

/* isola_pool->closing. */
enum closing_level {
	CLOSING_OPEN = 0,   /* accepting work */
	CLOSING_FINISH = 1, /* no new work; what is queued still runs */
	CLOSING_CANCEL = 2, /* no new work; what is queued is cancelled */
};



/* Debug builds: a live pool's tag (isola.h: stale handles). */
#define ISOLA__POOL_TAG 0x706f6f6cu
#define ISOLA__CHECK_POOL(p) \
	assert((p) == NULL || (p)->tag == ISOLA__POOL_TAG || !"isola: use of a destroyed pool")

struct isola__pool_lane; /* pool_lane.c */

struct isola_pool {
	uint32_t tag; /* ISOLA__POOL_TAG while alive */
	struct isola__pool_lane *plane; /* process workers, or NULL (pool_lane.c) */
	int n;
	struct isola__pool_link *link; /* its futures reach it through this */
	struct worker *workers;
	isola_channel *shared_q;
	isola_channel *monitor;
	uint64_t monitor_dropped; /* relaxed atomic: events the full monitor lost */
	uint64_t send_errors;     /* relaxed atomic: actor sends that failed (no future) */
	isola_interp_options setup;
	char **setup_strings; /* owned copies behind setup */
	size_t n_setup_strings;
	int no_pickle;
	int64_t queue_wait_ns; /* isola_pool_options.queue_wait_ns */
	int closing;          /* atomic: enum closing_level, only rises */
	/* start-up */
	pthread_mutex_t lock; /* guards start-up fields, actors */
	pthread_cond_t cond;
	int started, failed;
	char *start_error;
	int exited;              /* atomic: workers that left their loop */
	/* Idle workers allowed to spin at once (the rest park at once), and
	 * how many do (atomic).  More spinners than spare cores would take
	 * CPU from the threads that submit and run work. */
	int max_spinners, spinners;
	struct ck_ec32 exit_ec;
	/* watchdogs (one per worker, interrupt.c); these under p->lock */
	int watchdog_stop;
	int interrupt_all; /* shutting down: interrupt every running task */
	/* task graphs (graph.c) */
	pthread_mutex_t graph_lock; /* guards the two lists below */
	struct task *waiting;       /* tasks whose inputs are not all done */
	struct task *overflow;      /* ready tasks that found the shared queue full */
	uint32_t n_waiting;         /* atomic: tasks waiting for inputs */
	uint32_t n_overflow;        /* atomic: length of overflow */
	struct ck_ec32 graph_ec;    /* bumped as n_waiting falls */
	uint32_t graph_inflight;    /* atomic: make_ready calls under way */
	/* Atomic: another owner's link (a process lane's) whose futures may
	 * be inputs too (isola__pool_accept_link), retained; NULL if none. */
	struct isola__pool_link *input_link;
	/* actors */
	struct actor_slot *actors;
	size_t n_actor_slots;
	struct isola__trace_pool *trace; /* NULL: not traced (trace_write.c) */
	/* Silent fallbacks (worker.c records them), under fallback_lock. */
	pthread_mutex_t fallback_lock;
	struct isola__fallback *fallbacks;
	size_t n_fallbacks, cap_fallbacks;
};

/* Fallbacks recorded by every pool so far (new modules only): the
 * Python front compares it after each completion to warn at once. */
uint64_t isola__fallbacks_recorded(void);

/* Worker thread, GIL held: take the fallbacks its interpreter recorded
 * during what just ran (target: the task's; the setup's phases name
 * themselves).  Cheap when there are none. */
void isola__worker_take_fallbacks(struct worker *w, const char *target);

/* Ask the watchdog to look for interrupt requests now. */
void isola__pool_interrupt_requested(struct isola_pool *pool);

/* Watchdog thread body and task interruption (interrupt.c). */
void *isola__watchdog_main(void *arg);
void isola__watchdog_wake(struct isola_pool *pool);

/* The pool whose worker runs on this thread, or NULL (worker.c). */
extern _Thread_local struct isola_pool *isola__worker_pool;

/* The worker running on this thread, or NULL (worker.c). */
extern _Thread_local struct worker *isola__this_worker;

/* Worker thread body (worker.c). */
void *isola__worker_main(void *arg);
/* The name of w's running task (see struct worker) into name
 * (ISOLA_RUNNING_NAME_MAX bytes, "" when idle) and how long it has run.
 * Any thread. */
void isola__worker_running(struct worker *w, char *name, uint64_t *running_ns);

/* Tasks (pool.c): enqueue on a channel, free. */
struct task *isola__task_new(enum task_kind kind, const char *target);
/* "module:qualname" with both parts non-empty (checked at submit, so a
 * malformed target fails there with EINVAL, not later in the worker). */
bool isola__valid_target(const char *target);
void isola__task_free(struct task *t);
/* Post t on q (a queue of p), waiting for room while q is full: for
 * p->queue_wait_ns (ISOLA_EAGAIN after it; 0: forever), or as the
 * calling thread's isola__post_wait says (ISOLA_ETIMEDOUT, ISOLA_EINTR).
 * 0 or an ISOLA_E* code (ECLOSED after shutdown); t stays the caller's
 * on failure. */
int isola__task_enqueue(struct isola_pool *p, isola_channel *q, struct task *t);

/* The task a queue message carries (the message is cleared). */
struct task *isola__task_of(isola_msg *m);
/* The next task queued on q, without waiting; NULL if none. */
struct task *isola__task_take(isola_channel *q);


/* Debug builds: "p->lock held" stated as a check (it cannot tell which
 * thread holds it, but catches a lookup made with nobody holding it). */
static inline bool isola__mutex_held(pthread_mutex_t *m)
{
	if (pthread_mutex_trylock(m) != 0)
		return true;
	pthread_mutex_unlock(m);
	return false;
}

/* Task graphs (graph.c). */
void isola__graph_init(struct isola_pool *p);
void isola__graph_fini(struct isola_pool *p);
/* Shutdown: without cancel, close the queues now if no task waits for
 * inputs (else the last one to be queued closes them); with cancel,
 * cancel the waiting tasks' futures (the queues are closed already). */
void isola__graph_shutdown(struct isola_pool *p, bool cancel);
/* Close the pool's queues (idempotent).  Any thread. */
void isola__pool_close_queues(struct isola_pool *p);
/* No task waits for inputs and no make_ready is under way: a joined
 * pool may be freed (inputs of another owner may end after the workers
 * left).  Any thread. */
bool isola__graph_idle(struct isola_pool *p);
/* Move ready tasks that found the shared queue full into it (a worker,
 * between tasks).  Cheap when there are none. */
void isola__graph_drain_overflow(struct isola_pool *p);
/* The inputs a worker passes to the job, and their release once the
 * call's arguments are built. */
void isola__graph_release_inputs(struct task *t);

/* Actors (actor.c), run by the worker with its GIL held. */
void isola__actor_run(struct worker *w, struct task *t);
void isola__actor_free_all(struct isola_pool *pool);
void isola__actor_message_done(struct isola_pool *pool, uint64_t id);

/* Complete a future with the current Python exception (GIL held). */
void isola__complete_with_exception(struct worker *w, isola_future *f);
/* Set on a thread whose calls must go to the shared queue, never to an
 * idle worker's own queue (pool.c: enqueue_call): the threads serving
 * exports, so that what an export submits can be run by a worker that
 * waits for an export (isola__worker_help takes from the shared queue
 * only).  Thread-local: set by the thread itself. */
extern _Thread_local bool isola__submit_shared_only;

/* From a worker waiting for an export's answer, GIL held: run t (taken
 * from the pool's shared queue) nested in the running task (worker.c). */
void isola__worker_help(struct worker *w, struct task *t);

/* The task w runs has been asked to stop (cancel, timeout) since it
 * started (GIL held). */
bool isola__worker_outer_interrupted(struct worker *w);

/* pool_lane.c: an embedder's process workers (isola.h, process_workers). */
int isola__pool_lane_start(struct isola_pool *p, int workers, const char *python,
			   char **error_out);
bool isola__pool_lane_wants(struct isola_pool *p, const char *target);
int isola__pool_lane_submit(struct isola_pool *p, int kind, const char *target, isola_msg *args,
			    isola_msg *argsets, size_t n, size_t first, int64_t timeout_ns,
			    isola_future **out);
int isola__pool_lane_map(struct isola_pool *p, const char *target, isola_msg *argsets, size_t n,
			 size_t chunksize, int64_t timeout_ns, isola_future **out, size_t *n_chunks);
int isola__pool_lane_shutdown(struct isola_pool *p, int how, int wait, int64_t timeout_ns);
void isola__pool_lane_free(struct isola_pool *p);

#endif
