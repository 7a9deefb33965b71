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
#include "interp/pyerror.h"

#include <pthread.h>

struct callback {
	isola_future_cb cb;
	void *arg;
	struct callback *next;
};

enum interrupt_reason { INTERRUPT_NONE = 0, INTERRUPT_CANCEL = 1, INTERRUPT_TIMEOUT = 2 };

struct isola_future {
	uint64_t refs;    /* atomic */
	int state;        /* atomic: enum isola_future_state */
	int status;       /* ISOLA_E* outcome, valid once done */
	int interrupt;    /* atomic: enum interrupt_reason requested */
	struct ck_ec32 done_ec;
	isola_msg result; /* return value, or the encoded exception */
	isola__error err;
	pthread_mutex_t lock; /* guards callbacks */
	struct callback *callbacks;
	struct isola_pool *pool; /* weak: for cancelling a running task */
	int injected;            /* Cancelled raised (under the worker's GIL) */
};

isola_future *isola__future_new(struct isola_pool *pool);

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

#endif
