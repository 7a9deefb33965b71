/*
 * route.c - on a contended machine, a call goes to a worker idle on the
 * caller's CPU; never to wait there behind that worker's other work.
 *
 * Why route at all: a call that wakes a worker on another CPU costs an
 * interrupt there, and the busy process running on that CPU may keep it
 * for the rest of its time slice (the kernel lets a running task reach
 * its fair share first): with both cores busy, a p99 of 1.7-2.9 ms in 2
 * runs of 3, against 10-20 us when caller and worker happened to share a
 * core.  The worker idle here runs the call as soon as the caller waits,
 * without an interrupt.  So the call goes to that worker's routed queue.
 *
 * The hazard (issue 30.1): the worker may take another task first (the
 * caller's next call, from the shared queue, or an actor message).  A
 * routed call left behind it waits for that task to end, which may be
 * never (a consumer submitted after its producer) while another worker
 * idles.  So a routed call is either taken by its worker as the next
 * thing it runs, or moved to the shared queue, where any worker takes
 * it.  One word per worker (worker->route) decides who moves it:
 *
 *   caller: CAS route  tag -> CLAIMED, send to routed_q,
 *           CAS route  CLAIMED -> DELIVERED; if that fails the worker
 *           went busy meanwhile: the caller moves routed_q's calls.
 *   worker: on taking a task, swap route -> BUSY; if the task was not
 *           from routed_q and the old word was CLAIMED or DELIVERED (or
 *           a call was left over), the worker moves routed_q's calls.
 *
 * A call sent before the worker's swap is seen by the worker (DELIVERED
 * was released before the swap acquired it); one sent after is seen by
 * the caller (its CAS fails); both may look, and the channel gives each
 * call to one of them.
 */
#include "scheduler/pool.h"

#include "channels/channel.h"
#include "channels/wait.h"

static bool is_tag(uint32_t r)
{
	return r != ROUTE_BUSY && r != ROUTE_CLAIMED && r != ROUTE_DELIVERED;
}

/* Move every call in w's routed queue to the shared queue, without
 * waiting for room (a full shared queue: the rest stay, for w).  Returns
 * true when one of them was `mine` (then the caller still owns it). */
static bool move_routed(struct isola_pool *p, struct worker *w, struct task *mine)
{
	bool found = false;
	struct task *t;
	while ((t = isola__task_take(w->routed_q)) != NULL) {
		if (t == mine) {
			found = true;
			continue;
		}
		isola_msg m;
		isola_msg_init(&m);
		isola_msg_set_bytes(&m, &t, sizeof(t)); /* 8 bytes: inline */
		if (isola__channel_try_send(p->shared_q, &m) != 0) {
			/* Full or closed: back where it was (room: we just took
			 * it; closed: freed with the pool's queues). */
			isola_msg_init(&m);
			isola_msg_set_bytes(&m, &t, sizeof(t));
			if (isola__channel_try_send(w->routed_q, &m) != 0) {
				if (t->future != NULL)
					isola__future_complete(t->future, ISOLA_ECLOSED, NULL, NULL);
				isola__task_free(t);
			}
			break;
		}
	}
	return found;
}

void isola__route_busy(struct worker *w, bool took_routed)
{
	/* acq_rel: acquires a caller's DELIVERED (its send to routed_q
	 * before it), and from here on no caller can claim this worker. */
	__atomic_exchange_n(&w->route, ROUTE_BUSY, __ATOMIC_ACQ_REL);
	/* Whatever the old word: a call left over by a full shared queue
	 * goes too (looking at an empty channel is two loads). */
	if (!took_routed)
		move_routed(w->pool, w, NULL);
}

void isola__route_open(struct worker *w)
{
	uint32_t cur = __atomic_load_n(&w->route, __ATOMIC_RELAXED);
	uint32_t here = isola__cpu_tag();
	/* Only from BUSY or another CPU's tag: CLAIMED/DELIVERED are the
	 * caller's.  Relaxed: the word carries no data of the worker's. */
	while ((cur == ROUTE_BUSY || (is_tag(cur) && cur != here)) &&
	       !__atomic_compare_exchange_n(&w->route, &cur, here, false, __ATOMIC_RELAXED,
					    __ATOMIC_RELAXED))
		;
}

/* 0 if t went to a worker idle here (it is the worker's now), else
 * EAGAIN: t is still the caller's, for the shared queue. */
int isola__route_call(struct isola_pool *p, struct task *t)
{
	if (!isola__cpu_contended())
		return ISOLA_EAGAIN;
	uint32_t here = isola__cpu_tag();
	for (int i = 0; i < p->n; i++) {
		struct worker *w = &p->workers[i];
		/* Never this very worker (a done-callback that submits and
		 * waits would wait for itself).  Claiming (tag -> CLAIMED)
		 * sends one call, not a burst, to it: the rest stay in the
		 * shared queue, for any worker and for shutdown's cancel.
		 * Relaxed: the claim orders nothing yet (see DELIVERED). */
		uint32_t expect = here;
		if (w == isola__this_worker ||
		    !__atomic_compare_exchange_n(&w->route, &expect, ROUTE_CLAIMED, false,
						 __ATOMIC_RELAXED, __ATOMIC_RELAXED))
			continue;
		isola_msg m;
		isola_msg_init(&m);
		isola_msg_set_bytes(&m, &t, sizeof(t)); /* 8 bytes: inline */
		if (isola__channel_try_send(w->routed_q, &m) != 0) {
			expect = ROUTE_CLAIMED; /* full or closed: unclaim */
			__atomic_compare_exchange_n(&w->route, &expect, here, false,
						    __ATOMIC_RELAXED, __ATOMIC_RELAXED);
			return ISOLA_EAGAIN;
		}
		/* acq_rel: releases the send above to the worker's swap;
		 * failing, acquires its BUSY (then it may not look again). */
		expect = ROUTE_CLAIMED;
		if (__atomic_compare_exchange_n(&w->route, &expect, ROUTE_DELIVERED, false,
						__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			return 0;
		/* The worker went busy meanwhile: t (if it has not taken it)
		 * and any other routed call go to the shared queue. */
		return move_routed(p, w, t) ? ISOLA_EAGAIN : 0;
	}
	return ISOLA_EAGAIN;
}
