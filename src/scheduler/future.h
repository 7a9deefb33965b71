/*
 * future.h - the layout of isola_future (internal).
 *
 * State moves PENDING -> RUNNING -> DONE | FAILED | CANCELLED, or
 * PENDING -> CANCELLED, by compare-and-swap, so exactly one thread
 * completes a future.  The completing thread fills the outcome, then
 * publishes the state with a release store, then bumps the event count
 * (waking waiters), then runs the callbacks.
 */
#ifndef ISOLA_SCHEDULER_FUTURE_H
#define ISOLA_SCHEDULER_FUTURE_H

#include "isola.h"

#include "channels/wait.h"
#include "common/errinfo.h"

#include <assert.h>
#include <pthread.h>

struct callback {
	isola_future_cb cb;
	void *arg;
	struct callback *next;
};

/* isola_future->interrupt.  SEALED: the task has returned (set by its
 * worker, under its GIL): too late to ask, isola_future_cancel says so. */
enum interrupt_reason {
	INTERRUPT_NONE = 0,
	INTERRUPT_CANCEL = 1,
	INTERRUPT_TIMEOUT = 2,
	INTERRUPT_SEALED = 3,
};

/* Debug builds: a live future's tag (isola.h: stale handles). */
#define ISOLA__FUTURE_TAG 0x66757475u
#define ISOLA__CHECK_FUTURE(f) \
	assert((f) == NULL || (f)->tag == ISOLA__FUTURE_TAG || !"isola: use of a released future")

struct isola_future {
	uint32_t tag;     /* ISOLA__FUTURE_TAG while alive */
	uint64_t refs;    /* atomic */
	int state;        /* atomic: enum isola_future_state */
	int status;       /* ISOLA_E* outcome, valid once done */
	int interrupt;    /* atomic: enum interrupt_reason requested */
	struct ck_ec32 done_ec;
	isola_msg result; /* return value, or the encoded exception */
	isola__error err;
	pthread_mutex_t lock; /* guards callbacks */
	struct callback *callbacks;
	struct isola__pool_link *link; /* strong: reaches the pool while it lives */
	int injected;            /* Cancelled raised (under the worker's GIL) */
};

/*
 * What a future holds to reach its pool (to ask for a running task's
 * interruption): refcounted, so it outlives the pool.  The pool sets
 * pool = NULL under lock before it is freed; a cancel takes the lock, so
 * it never touches a freed pool (issue 14.5: by construction).
 */
struct isola__pool_link {
	uint64_t refs; /* atomic */
	pthread_mutex_t lock;
	struct isola_pool *pool; /* lock; NULL once the pool is gone */
};

struct isola__pool_link *isola__pool_link_new(struct isola_pool *pool);
void isola__pool_link_retain(struct isola__pool_link *l);
void isola__pool_link_release(struct isola__pool_link *l);
/* The pool is being freed: no future reaches it from now on. */
void isola__pool_link_cut(struct isola__pool_link *l);

/* p's tasks may also take, as inputs (isola_pool_submit_after), futures
 * that reach their owner through link: its process lane's (one link at
 * most; set before any such future exists).  p then waits, when it is
 * shut down, for the tasks waiting on those futures (graph.c).  0 or
 * ISOLA_EINVAL (another link is set already). */
int isola__pool_accept_link(isola_pool *p, struct isola__pool_link *link);

isola_future *isola__future_new(struct isola_pool *pool);
/* A future reaching its owner through link (a process lane's link has
 * no pool: a running task's interrupt is seen by the lane's proxy). */
isola_future *isola__future_new_linked(struct isola__pool_link *link);

/* Like isola_future_on_done, but if f is already done, cb is not run:
 * returns ISOLA_ESTATE instead (the caller takes over). */
int isola__future_on_done_pending(isola_future *f, isola_future_cb cb, void *arg);

/* PENDING -> CANCELLED (ECANCELED, error text why); false if the task
 * has started or the future is done.  Never interrupts. */
bool isola__future_cancel_pending(isola_future *f, const char *why);

/* PENDING -> RUNNING; false if it was cancelled meanwhile. */
bool isola__future_start(isola_future *f);

/* Complete f (RUNNING or PENDING) with status; result/err are moved in
 * (either may be NULL).  No-op returning false if already done. */
bool isola__future_complete(isola_future *f, int status, isola_msg *result,
			    isola__error *err);

/* isola_future_wait with an explicit deadline and isola__wait flags. */
int isola__future_wait_flags(isola_future *f, const isola__deadline *d, int flags);

/* From the task running on this worker thread, under its GIL: restart
 * its deadline at now + ns (<= 0: no deadline) and say in *reason
 * (enum interrupt_reason) whether it had been interrupted.  A timeout
 * interrupt is forgiven (the task caught it and goes on; a pending one
 * is withdrawn), a cancel is not.  ISOLA_ESTATE off a worker thread
 * (interrupt.c). */
int isola__task_restart_deadline(int64_t ns, int *reason);

#endif
