/*
 * trace.c - recording timeline events into a worker's ring (trace.h).
 *
 * Everything here runs on the thread that owns the ring (a worker, or its
 * watchdog for interrupts), never allocates, and never waits.
 */
#include "scheduler/trace.h"
#include "scheduler/pool.h"

#include "common/alloc.h"
#include "channels/wait.h"

#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

struct isola__trace_ring *isola__trace_ring_new(uint32_t cap)
{
	uint32_t n = 16;
	while (n < cap && n < (1u << 24))
		n <<= 1;
	struct isola__trace_ring *r =
		isola__calloc(1, sizeof(*r) + (size_t)n * sizeof(struct isola__trace_event));
	if (r != NULL)
		r->mask = n - 1;
	return r;
}

void isola__trace_copy_name(char *dst, const char *s, size_t n)
{
	size_t i = 0;
	for (; s != NULL && i + 1 < n && s[i] != '\0'; i++)
		dst[i] = s[i];
	dst[i] = '\0';
}

/* The name a task shows: its target, or what it does when it has none. */
static const char *task_name(const struct task *t)
{
	switch (t->kind) {
	case TASK_RUN:
		return "pool.run";
	case TASK_ACTOR_NEW:
		return "actor start";
	case TASK_ACTOR_KILL:
		return "actor kill";
	default:
		return t->target;
	}
}

static void fill(struct isola__trace_event *e, int kind, const struct task *t, int64_t start)
{
	e->kind = (uint8_t)kind;
	e->start_ns = start;
	e->end_ns = start;
	e->queued_ns = t != NULL ? t->queued_ns : 0;
	e->task_kind = t != NULL ? (uint8_t)t->kind : 0;
	e->calls = t != NULL && t->kind == TASK_CHUNK ? (uint32_t)t->chunk.n : 0;
	e->outcome = TRACE_OK;
	e->error[0] = '\0';
	isola__trace_copy_name(e->name, t != NULL ? task_name(t) : NULL, sizeof(e->name));
}

struct isola__trace_event *isola__trace_task_begin(struct worker *w, const struct task *t,
						   int64_t start_ns)
{
	struct isola__trace_event *e = w->trace ? isola__trace_reserve(w->trace) : NULL;
	if (e != NULL)
		fill(e, TRACE_EV_TASK, t, start_ns);
	return e;
}

void isola__trace_task_end(struct worker *w, struct isola__trace_event *e, int64_t end_ns,
			   int status, const char *error_type)
{
	if (e == NULL)
		return;
	e->end_ns = end_ns > e->start_ns ? end_ns : e->start_ns + 1;
	e->outcome = status == 0		    ? TRACE_OK
		     : status == ISOLA_ECANCELED  ? TRACE_INTERRUPTED
		     : status == ISOLA_ETIMEDOUT  ? TRACE_TIMED_OUT
						  : TRACE_ERROR;
	if (e->outcome == TRACE_ERROR)
		isola__trace_copy_name(e->error, error_type ? error_type : isola_err_name(status),
				       sizeof(e->error));
	isola__trace_commit(w->trace);
}

void isola__trace_skipped(struct worker *w, const struct task *t)
{
	struct isola__trace_event *e = w->trace ? isola__trace_reserve(w->trace) : NULL;
	if (e == NULL)
		return;
	fill(e, TRACE_EV_SKIPPED, t, isola__now_ns());
	e->outcome = TRACE_CANCELLED;
	isola__trace_commit(w->trace);
}

void isola__trace_worker(struct worker *w, int kind, int64_t start_ns)
{
	if (w->trace == NULL)
		return;
	if (kind == TRACE_EV_WORKER_START) {
		/* Relaxed: read by the writer only after it acquires head,
		 * which the commit below releases. */
		int tid = (int)syscall(SYS_gettid);
		__atomic_store_n(&w->trace->os_tid, tid, __ATOMIC_RELAXED);
		if (w->trace_wd != NULL)
			__atomic_store_n(&w->trace_wd->os_tid, tid, __ATOMIC_RELAXED);
	}
	struct isola__trace_event *e = isola__trace_reserve(w->trace);
	if (e == NULL)
		return;
	fill(e, kind, NULL, start_ns);
	isola__trace_copy_name(e->name,
			       kind == TRACE_EV_WORKER_START ? "start interpreter" : "stop interpreter",
			       sizeof(e->name));
	int64_t now = isola__now_ns();
	e->end_ns = now > start_ns ? now : start_ns + 1;
	isola__trace_commit(w->trace);
}

void isola__trace_interrupt(struct worker *w, int reason)
{
	struct isola__trace_event *e = w->trace_wd ? isola__trace_reserve(w->trace_wd) : NULL;
	if (e == NULL)
		return;
	fill(e, TRACE_EV_INTERRUPT, NULL, isola__now_ns());
	uint64_t ns;
	char name[ISOLA_RUNNING_NAME_MAX];
	isola__worker_running(w, name, &ns);
	isola__trace_copy_name(e->name, name, sizeof(e->name));
	e->outcome = reason == INTERRUPT_TIMEOUT ? TRACE_TIMED_OUT : TRACE_INTERRUPTED;
	isola__trace_commit(w->trace_wd);
}
