/*
 * interrupt.c - the watchdog: interrupting running tasks.
 *
 * A worker publishes its running task (and clears it) under its own
 * GIL.  The worker's watchdog thread, asked to look (a cancel, a
 * deadline, shutdown), visits the worker's interpreter (host.h: a thread
 * state of its own, taking that interpreter's GIL at the running code's
 * next switch-interval check), checks that the task it means is still
 * the one running, and if so has isola.Cancelled raised in the worker's
 * thread at its next bytecode boundary.  After every task the worker
 * withdraws any pending one under its GIL, so an interrupt that comes
 * too late is dropped instead of hitting the next task.  Code blocked in
 * C (time.sleep, a socket read) is interrupted only when it returns.
 */
#include "scheduler/pool.h"

#include "common/atomics.h"
#include "interp/host.h"

#include <signal.h>

void isola__watchdog_wake(struct isola_pool *p)
{
	pthread_mutex_lock(&p->lock);
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

void isola__pool_interrupt_requested(struct isola_pool *p)
{
	/* Which worker runs the future is not known here: every watchdog
	 * looks at its own worker's running task. */
	pthread_mutex_lock(&p->lock);
	for (int i = 0; i < p->n; i++)
		p->workers[i].interrupt_look = 1;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

int isola__task_restart_deadline(int64_t ns, int *reason)
{
	struct worker *w = isola__this_worker;
	/* current is only set and cleared by this thread: a plain load. */
	isola_future *f = w != NULL ? isola__load_acquire(&w->current) : NULL;
	if (f == NULL)
		return ISOLA_ESTATE;
	/* The watchdog decides and injects under this interpreter's GIL,
	 * which the caller holds: nothing changes under us here. */
	*reason = isola__load_acquire(&f->interrupt);
	if (*reason == INTERRUPT_TIMEOUT) {
		isola__interp_async_cancel(w->interp, false); /* not yet raised: withdraw */
		f->injected = 0;
		__atomic_store_n(&w->abort_wait, 0, __ATOMIC_RELAXED); /* under the GIL, as set */
		/* Release: the watchdog's acquire of interrupt sees the reset. */
		isola__store_release(&f->interrupt, INTERRUPT_NONE);
	}
	/* Release, read by the watchdog with acquire; it re-reads it under
	 * the GIL before interrupting, so an old deadline cannot hit. */
	isola__store_release(&w->current_deadline, ns > 0 ? isola__now_ns() + ns : 0);
	if (ns > 0)
		isola__watchdog_wake(w->pool);
	return 0;
}

struct look {
	struct worker *w;
	int all;
	int64_t now;
};

/* Under worker w's GIL (a visit): raise Cancelled in its thread if its
 * running task asked for it (or all = 1, or its deadline expired). */
static void look_at_task(void *arg)
{
	struct look *l = arg;
	struct worker *w = l->w;
	isola_future *f = isola__load_acquire(&w->current);
	if (f == NULL || f->injected)
		return;
	int64_t dl = isola__load_acquire(&w->current_deadline);
	int none = INTERRUPT_NONE;
	uint64_t killing = isola__load_acquire(&w->kill_actor);
	if (l->all || (killing != 0 && killing == isola__load_acquire(&w->current_actor)))
		isola__cas_acq_rel(&f->interrupt, &none, INTERRUPT_CANCEL);
	else if (dl != 0 && l->now >= dl)
		isola__cas_acq_rel(&f->interrupt, &none, INTERRUPT_TIMEOUT);
	int asked = isola__load_acquire(&f->interrupt);
	if ((asked == INTERRUPT_CANCEL || asked == INTERRUPT_TIMEOUT) &&
	    isola__interp_async_cancel(w->interp, true) == 0) {
		f->injected = 1;
		/* Release: a wait that sees it sees the interrupt. */
		__atomic_store_n(&w->abort_wait, 1, __ATOMIC_RELEASE);
		if (w->trace_wd != NULL)
			isola__trace_interrupt(w, isola__load_acquire(&f->interrupt));
	}
}

static void interrupt_worker(struct worker *w, int all, int64_t now)
{
	struct look l = { w, all, now };
	pthread_mutex_lock(&w->attach_lock); /* the interpreter stays while we visit */
	if (w->interp != NULL)
		isola__interp_visit(w->interp, look_at_task, &l);
	pthread_mutex_unlock(&w->attach_lock);
}

/* One worker's watchdog: sleeps until asked (a cancel, a task with a
 * deadline starting, shutdown) or until its running task's deadline. */
void *isola__watchdog_main(void *arg)
{
	struct worker *w = arg;
	struct isola_pool *p = w->pool;
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	pthread_mutex_lock(&p->lock);
	while (!p->watchdog_stop) {
		int every = p->interrupt_all, look = w->interrupt_look;
		w->interrupt_look = 0;
		int64_t now = isola__now_ns(), next = 0;
		pthread_mutex_unlock(&p->lock);
		if (isola__load_acquire(&w->current) != NULL) {
			int64_t dl = isola__load_acquire(&w->current_deadline);
			if (every || look || (dl != 0 && now >= dl))
				interrupt_worker(w, every, now);
			else if (dl != 0)
				next = dl;
		}
		pthread_mutex_lock(&p->lock);
		if (p->watchdog_stop || w->interrupt_look)
			continue;
		if (p->interrupt_all) /* shutting down: look again soon for tasks that start */
			next = isola__now_ns() + 10 * 1000000;
		if (next == 0) {
			pthread_cond_wait(&p->cond, &p->lock);
		} else {
			struct timespec ts = { .tv_sec = next / 1000000000,
					       .tv_nsec = next % 1000000000 };
			pthread_cond_timedwait(&p->cond, &p->lock, &ts);
		}
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}
