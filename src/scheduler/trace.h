/*
 * trace.h - the timeline recorder (internal; DESIGN.md "Trace").
 *
 * Each worker records what it runs into its own bounded ring of fixed-size
 * events (one producer: the worker thread; its watchdog has a second
 * ring), without a lock and without allocating: a full ring drops the
 * event and counts it.  A writer thread per trace file (trace_write.c)
 * drains the rings every few milliseconds into Trace Event Format JSON
 * (Perfetto, chrome://tracing), and writes what was dropped at the end.
 *
 * Off (the pool has no trace): the worker's ring pointer is NULL and each
 * recording site is one predictable branch.
 *
 * Ring invariant (single producer, single consumer): head and tail only
 * grow; slots [tail, head) hold committed events the consumer may read;
 * the producer writes slot head only while head - tail < cap, and
 * publishes it by storing head + 1 with release; the consumer reads
 * head with acquire, formats the slots, then stores tail with release,
 * which hands the slots back to the producer (its acquire of tail).
 */
#ifndef ISOLA_SCHEDULER_TRACE_H
#define ISOLA_SCHEDULER_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ISOLA__TRACE_NAME 64  /* bytes of a target name kept (truncated) */
#define ISOLA__TRACE_ERROR 48 /* bytes of an error type name kept */
#define ISOLA__TRACE_DEFAULT_EVENTS 16384 /* per worker; ISOLA_TRACE_BUFFER */

enum isola__trace_kind {
	TRACE_EV_TASK = 1,      /* a task or actor message that ran: a slice */
	TRACE_EV_SKIPPED,       /* a task cancelled before it started: an instant */
	TRACE_EV_INTERRUPT,     /* the watchdog interrupted the running task */
	TRACE_EV_WORKER_START,  /* the worker made its interpreter: a slice */
	TRACE_EV_WORKER_END,    /* the worker destroyed its interpreter: a slice */
};

enum isola__trace_outcome {
	TRACE_OK = 0,
	TRACE_ERROR,        /* raised: error holds the exception type */
	TRACE_CANCELLED,    /* never started */
	TRACE_INTERRUPTED,  /* Future.interrupt(), shutdown(interrupt=True), a kill */
	TRACE_TIMED_OUT,    /* its timeout interrupted it */
	TRACE_STILL_RUNNING, /* abandoned: running when the file was closed */
};

struct isola__trace_event {
	int64_t start_ns, end_ns; /* CLOCK_MONOTONIC (isola__now_ns) */
	int64_t queued_ns;        /* when its task was queued; 0: unknown */
	uint32_t calls;           /* calls of a chunk (0: not a chunk) */
	uint8_t kind;             /* enum isola__trace_kind */
	uint8_t task_kind;        /* enum task_kind (pool.h) */
	uint8_t outcome;          /* enum isola__trace_outcome */
	char name[ISOLA__TRACE_NAME];
	char error[ISOLA__TRACE_ERROR];
};

struct isola__trace_ring {
	/* Producer side (the recording thread), on its own cache line. */
	uint64_t head;    /* atomic: next slot to publish */
	uint64_t dropped; /* relaxed atomic: events lost to a full ring */
	uint64_t tail_seen; /* producer only: last tail it read */
	char pad0[64 - 3 * sizeof(uint64_t)];
	/* Consumer side (the writer). */
	uint64_t tail;    /* atomic: next slot to read */
	char pad1[64 - sizeof(uint64_t)];
	uint32_t mask;    /* capacity - 1 (a power of two) */
	int os_tid;       /* the recording worker's thread id (atomic) */
	struct isola__trace_event ev[];
};

/* A ring of at least cap events (rounded up to a power of two); NULL on
 * ENOMEM.  Freed with isola__free. */
struct isola__trace_ring *isola__trace_ring_new(uint32_t cap);

/* Producer: the slot to fill for the next event, or NULL when the ring is
 * full (the event is counted as dropped).  The slot is the caller's until
 * isola__trace_commit; at most one slot is reserved at a time. */
static inline struct isola__trace_event *isola__trace_reserve(struct isola__trace_ring *r)
{
	uint64_t h = r->head; /* only this thread writes head */
	if (h - r->tail_seen > r->mask) {
		/* Acquire: pairs with the writer's release of tail, so the
		 * slots it handed back are no longer being read. */
		r->tail_seen = __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);
		if (h - r->tail_seen > r->mask) {
			/* Relaxed: a counter read once the producer is done. */
			__atomic_add_fetch(&r->dropped, 1, __ATOMIC_RELAXED);
			return NULL;
		}
	}
	return &r->ev[h & r->mask];
}

/* Producer: publish the slot reserve returned. */
static inline void isola__trace_commit(struct isola__trace_ring *r)
{
	/* Release: the event's fields are written before the writer, which
	 * acquires head, reads them. */
	__atomic_store_n(&r->head, r->head + 1, __ATOMIC_RELEASE);
}

/* Copy up to n - 1 bytes of s (NULL: "") into dst, NUL-terminated. */
void isola__trace_copy_name(char *dst, const char *s, size_t n);

struct isola_pool;
struct worker;
struct task;

/* Start tracing pool p if path (NULL: the environment variable
 * ISOLA_TRACE) names a file; events_per_worker 0: ISOLA_TRACE_BUFFER or
 * the default.  Pools tracing to the same path share one file (one
 * process track each).  0 when traced or not traced; ESYS when the named
 * file cannot be written (a bad ISOLA_TRACE only warns on stderr);
 * ENOMEM.  Before the workers start (trace_write.c). */
int isola__trace_pool_begin(struct isola_pool *p, const char *path,
			    uint32_t events_per_worker, char **error_out);

/* Drain p's rings for the last time and leave the file (the last pool of
 * a file writes its end and closes it).  Once the workers have left
 * their loops; idempotent.  Any thread (trace_write.c). */
void isola__trace_pool_end(struct isola_pool *p);

/* At exit, pools that were never destroyed (abandoned with a stuck task,
 * or a C program that exits without isola_pool_destroy) still get a
 * complete file: what their rings hold is written, each file ended and
 * closed; later events are not recorded.  Registered with atexit(); the
 * Python front calls it before an os._exit.  Any thread. */
void isola__trace_close_all(void);

/* Free p's rings (after isola__trace_pool_end). */
void isola__trace_pool_free(struct isola_pool *p);

/* Recording, from the worker thread (trace.c).  Each is a no-op when the
 * worker has no ring; callers test w->trace first to keep the branch
 * inline. */
struct isola__trace_event *isola__trace_task_begin(struct worker *w, const struct task *t,
						   int64_t start_ns);
/* Finish the slot task_begin returned (may be NULL) with the status the
 * task ended with and its exception type (may be NULL). */
void isola__trace_task_end(struct worker *w, struct isola__trace_event *e, int64_t end_ns,
			   int status, const char *error_type);
void isola__trace_skipped(struct worker *w, const struct task *t);
void isola__trace_worker(struct worker *w, int kind, int64_t start_ns);
/* From w's watchdog, under w's GIL: it interrupted the running task. */
void isola__trace_interrupt(struct worker *w, int reason);

#endif
