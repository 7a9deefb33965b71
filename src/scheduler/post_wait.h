/*
 * post_wait.h - how posting a task waits for room in a full queue, as the
 * calling thread wants it (internal).
 */
#ifndef ISOLA_SCHEDULER_POST_WAIT_H
#define ISOLA_SCHEDULER_POST_WAIT_H

#include "channels/wait.h"

/* The calling thread's override of how posting waits for room (the
 * Python binding: a deadline, interruptible, with its GIL released);
 * NULL: the pool's queue_wait_ns. */
struct isola__post_wait {
	const isola__deadline *deadline;
	int flags; /* isola__wait flags */
};
extern _Thread_local const struct isola__post_wait *isola__post_wait;

#endif
