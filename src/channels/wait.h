/*
 * wait.h - how isola threads block: spin briefly on the condition, then
 * sleep on a Concurrency Kit event count (ck_ec) backed by a futex.
 *
 * The protocol (ck_ec's): a waiter snapshots the event count, re-checks
 * its condition, and sleeps only if the count still has the snapshot
 * value.  A producer changes the data, then increments the count; the
 * increment is a locked instruction (a full barrier) and makes a futex
 * wake call only when a sleeper has flagged the count.  So there are no
 * lost wake-ups and no system call while nobody sleeps.
 */
#ifndef ISOLA_CHANNELS_WAIT_H
#define ISOLA_CHANNELS_WAIT_H

#include <ck_ec.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* Multi-producer mode with isola's futex ops; shared by every ec. */
extern const struct ck_ec_mode isola__ec_mode;

/* An absolute CLOCK_MONOTONIC deadline, or none. */
typedef struct isola__deadline {
	struct timespec at;
	bool forever; /* negative timeout */
	bool now;     /* zero timeout: try once */
} isola__deadline;

void isola__deadline_init(isola__deadline *d, int64_t timeout_ns);
bool isola__deadline_passed(const isola__deadline *d);
int64_t isola__now_ns(void);

/* Flags for isola__wait. */
enum {
	/* Return ISOLA_EINTR when a signal interrupts the sleep (the Python
	 * front uses it to run signal handlers, e.g. Ctrl-C). */
	ISOLA__WAIT_INTERRUPTIBLE = 1,
	/* Sleep at once: the caller has spun already (isola__spin). */
	ISOLA__WAIT_NO_SPIN = 2,
	/* Spin, then return ISOLA_EAGAIN instead of sleeping (select only). */
	ISOLA__WAIT_SPIN_ONLY = 4,
	/* A hand-off between pool threads (a future): on a contended
	 * machine, sleep almost at once (see wait.c). */
	ISOLA__WAIT_HANDOFF = 8,
	/* The thread this wait is for was last seen on this thread's CPU
	 * (isola__cpu_is_mine): spin by yielding, from the first poll and
	 * on a contended machine too.  Pausing would keep that thread off
	 * the CPU; sleeping makes every message a wake-up, and the kernel
	 * places a wakee on its waker's core, so the two stay on one core
	 * for good (round trip 5.6 us with one core busy, against 1.7 us
	 * yielding, bench_busy).  select.c sets it while the machine is
	 * contended only (see there). */
	ISOLA__WAIT_PARTNER_HERE = 16,
};

/* 1 + the CPU this thread runs on now: a tag a thread leaves where its
 * partner will look (a channel's cell, a future), 0 meaning none. */
uint32_t isola__cpu_tag(void);
/* Whether tag (from isola__cpu_tag, maybe another thread's) names the
 * CPU this thread runs on now. */
bool isola__cpu_is_mine(uint32_t tag);

/* Spin budget before sleeping, in ns.  A parked thread takes ~70 us to
 * wake on these machines while a spinning one sees a message in ~0.35 us,
 * so a reply already on its way is worth a short spin. */
extern int64_t isola__spin_ns;

/* Per thread: a spin budget overriding isola__spin_ns when non-zero, and
 * whether this thread's last isola__wait had to sleep.  Pool workers use
 * them to spin longer while work keeps arriving (adaptive spinning). */
extern _Thread_local int64_t isola__spin_ns_local;
extern _Thread_local int isola__last_wait_slept;

/*
 * Per thread: an abort word for interruptible waits, or NULL.  While it
 * is non-zero, every ISOLA__WAIT_INTERRUPTIBLE wait of this thread
 * returns ISOLA_EINTR.  Whoever sets it (a pool's watchdog cancelling the
 * task a worker runs) cannot know which event count the thread sleeps
 * on, so such waits re-check it at least every ISOLA__ABORT_POLL_NS.
 */
extern _Thread_local const uint32_t *isola__wait_abort;
#define ISOLA__ABORT_POLL_NS 10000000 /* 10 ms: the latency of a cancel */

/* True when this thread's abort word is set (see above). */
bool isola__wait_aborted(void);

/*
 * Poll ready(arg) until it returns a value != ISOLA_EAGAIN, sleeping on
 * ec between polls.  Returns that value, ISOLA_EAGAIN if the deadline is
 * "now", ISOLA_ETIMEDOUT, or ISOLA_EINTR (with ISOLA__WAIT_INTERRUPTIBLE).
 * ready() is called again after every wake-up, so spurious wake-ups are
 * harmless.
 */
int isola__wait(struct ck_ec32 *ec, int (*ready)(void *arg), void *arg,
		const isola__deadline *deadline, int flags);

/*
 * The spin phase of isola__wait alone: poll ready(arg) for up to the spin
 * budget (never past the deadline).  Returns ready()'s value, or
 * ISOLA_EAGAIN when the budget ran out.  Lets a caller spin before it
 * pays for registering as a sleeper (select's watcher lists).
 */
int isola__spin(int (*ready)(void *arg), void *arg, const isola__deadline *deadline, int flags);

/* True while this process's threads were lately found to compete for
 * cores (a spinner lost its CPU): spinning then only delays the thread
 * it waits for, so waits sleep almost at once and idle workers park. */
bool isola__cpu_contended(void);
/* Mark the process contended for the next for_ns (tests force it). */
void isola__cpu_contended_mark(int64_t for_ns);

#endif
