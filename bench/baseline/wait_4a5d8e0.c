/*
 * wait_4a5d8e0.c - bench only: isola's wait code as it was at 4a5d8e0,
 * before issue #20's busy-machine policy (the spin: pause 2 us, then
 * yield; a yield over 5 us makes the next spin yield at once; no
 * contention mode).  The rest (futex ops, deadlines, the sleep, abort
 * words) is today's, so that today's channel code links against it.
 * bench_channel runs a ping-pong through this copy of the channel core
 * and through the real one, alternating (bench/README.md).
 */
#include "channels/wait.h"
#include "channels/wait_policy.h"

#include "isola.h"

#include <ck_pr.h>
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

int64_t isola__spin_ns = 20000;
_Thread_local int64_t isola__spin_ns_local;
_Thread_local int isola__last_wait_slept;

/* Per-wait state, reached from ck_ec's callbacks through wait_state->data. */
struct wait_ctx {
	const isola__deadline *deadline;
	int flags;
	bool interrupted;
};

static int ops_gettime(const struct ck_ec_ops *ops, struct timespec *out)
{
	(void)ops;
	return clock_gettime(CLOCK_MONOTONIC, out);
}

/* Sleep while *addr == expected, until the absolute deadline (NULL:
 * forever).  FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC time,
 * so there is no drift between the deadline and the sleep. */
static void ops_wait32(const struct ck_ec_wait_state *st, const uint32_t *addr,
		       uint32_t expected, const struct timespec *deadline)
{
	long r = syscall(SYS_futex, addr, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG,
			 expected, deadline, NULL, FUTEX_BITSET_MATCH_ANY);
	if (r == -1 && errno == EINTR && st->data != NULL)
		((struct wait_ctx *)st->data)->interrupted = true;
}

static void ops_wake32(const struct ck_ec_ops *ops, const uint32_t *addr)
{
	(void)ops;
	syscall(SYS_futex, addr, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, INT_MAX, NULL,
		NULL, 0);
}

static const struct ck_ec_ops futex_ops = {
	.gettime = ops_gettime,
	.wait32 = ops_wait32,
	.wake32 = ops_wake32,
	.busy_loop_iter = 64,
	/* Long first sleep: our predicate clamps every sleep to the caller's
	 * deadline, so ck_ec's backoff only bounds sleeps with no deadline. */
	.initial_wait_ns = 1000000000u,
};

const struct ck_ec_mode isola__ec_mode = {
	.ops = &futex_ops,
	.single_producer = false,
};

int64_t isola__now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void isola__deadline_init(isola__deadline *d, int64_t timeout_ns)
{
	d->forever = timeout_ns < 0;
	d->now = timeout_ns == 0;
	d->at.tv_sec = 0;
	d->at.tv_nsec = 0;
	if (timeout_ns > 0) {
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		/* Saturate far-future deadlines rather than overflow. */
		int64_t secs = timeout_ns / 1000000000;
		if (secs > (int64_t)1 << 40) {
			d->forever = true;
			return;
		}
		d->at.tv_sec = now.tv_sec + (time_t)secs;
		d->at.tv_nsec = now.tv_nsec + (long)(timeout_ns % 1000000000);
		if (d->at.tv_nsec >= 1000000000) {
			d->at.tv_sec++;
			d->at.tv_nsec -= 1000000000;
		}
	}
}

static bool ts_before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec ||
	       (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

bool isola__deadline_passed(const isola__deadline *d)
{
	if (d->forever)
		return false;
	if (d->now)
		return true;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return !ts_before(&now, &d->at);
}

/* ck_ec predicate, run before each sleep: stop on a signal when asked,
 * and never sleep past the caller's deadline. */
_Thread_local const uint32_t *isola__wait_abort;

bool isola__wait_aborted(void)
{
	/* Acquire: pairs with the setter's release (it set the word after
	 * deciding to interrupt this thread's task). */
	return isola__wait_abort != NULL && __atomic_load_n(isola__wait_abort, __ATOMIC_ACQUIRE);
}

static int wait_pred(const struct ck_ec_wait_state *st, struct timespec *partial)
{
	struct wait_ctx *ctx = st->data;
	bool interruptible = ctx->flags & ISOLA__WAIT_INTERRUPTIBLE;
	if (interruptible && (ctx->interrupted || isola__wait_aborted()))
		return ISOLA_EINTR;
	ctx->interrupted = false;
	if (!ctx->deadline->forever && ts_before(&ctx->deadline->at, partial))
		*partial = ctx->deadline->at;
	if (interruptible && isola__wait_abort != NULL) {
		/* Nobody wakes us for the abort word: look again soon. */
		struct timespec soon = st->now;
		soon.tv_nsec += ISOLA__ABORT_POLL_NS;
		if (soon.tv_nsec >= 1000000000) {
			soon.tv_sec++;
			soon.tv_nsec -= 1000000000;
		}
		if (ts_before(&soon, partial))
			*partial = soon;
	}
	return 0;
}

bool isola__cpu_contended(void)
{
	return false;
}

void isola__cpu_contended_mark(int64_t for_ns)
{
	(void)for_ns;
}

uint32_t isola__cpu_tag(void)
{
	return (uint32_t)(sched_getcpu() + 1);
}

bool isola__cpu_is_mine(uint32_t tag)
{
	return tag != 0 && tag == isola__cpu_tag();
}

/* 4a5d8e0 never moved a thread off its CPU (wait_policy.h). */
bool isola__policy_spread(void)
{
	return false;
}

/* Per thread: this thread's last yield gave the CPU away. */
static _Thread_local int yield_at_once;

int isola__spin(int (*ready)(void *arg), void *arg, const isola__deadline *deadline, int flags)
{
	(void)flags;
	int r = ready(arg);
	isola__last_wait_slept = 0;
	if (r != ISOLA_EAGAIN || deadline->now)
		return r;

	/* Spin: re-check the condition itself (one pause apart: a pause
	 * is ~40-140 cycles, and a reply may be that close), reading the
	 * clock only every 64 rounds. */
	int64_t budget = isola__spin_ns_local ? isola__spin_ns_local : isola__spin_ns;
	int64_t start = isola__now_ns(), spin_until = start + budget;
	if (!deadline->forever) { /* never spin past the caller's deadline */
		int64_t dl = (int64_t)deadline->at.tv_sec * 1000000000 + deadline->at.tv_nsec;
		if (dl < spin_until)
			spin_until = dl;
	}
	/* First ~2 us: pause between checks.  Then yield the CPU between
	 * checks: with more runnable threads than cores (the common case
	 * for isola), a spinner must not starve the very thread that is
	 * about to produce what it waits for.  A yield that took long gave
	 * the CPU to another thread: we share a CPU with someone, likely
	 * the very thread we wait for (two spinners the scheduler put on
	 * one core).  Then pausing first only delays it: the next spin of
	 * this thread yields at once, until a yield comes back quickly
	 * (a round trip between two threads on one core: 15 -> 10 us). */
	int yielding = yield_at_once;
	int64_t last = start;
	for (unsigned i = 1;; i++) {
		if (yielding)
			sched_yield();
		else
			ck_pr_stall();
		r = ready(arg);
		if (yielding || (i & 63) == 0) {
			int64_t now = isola__now_ns();
			if (yielding)
				yield_at_once = now - last > 5000;
			last = now;
			if (r != ISOLA_EAGAIN)
				return r;
			if (now >= spin_until)
				return ISOLA_EAGAIN;
			yielding = yielding || now - start >= 2000;
		} else if (r != ISOLA_EAGAIN) {
			return r;
		}
	}
}

int isola__wait(struct ck_ec32 *ec, int (*ready)(void *arg), void *arg,
		const isola__deadline *deadline, int flags)
{
	int r;
	if (!(flags & ISOLA__WAIT_NO_SPIN)) {
		r = isola__spin(ready, arg, deadline, flags);
		if (r != ISOLA_EAGAIN || deadline->now)
			return r;
	}

	isola__last_wait_slept = 1;
	struct wait_ctx ctx = { .deadline = deadline, .flags = flags };
	const struct timespec *dl = deadline->forever ? NULL : &deadline->at;
	for (;;) {
		/* Snapshot before re-checking: a change after our check bumps
		 * the count past the snapshot, so the sleep returns at once. */
		uint32_t snap = ck_ec32_value(ec);
		r = ready(arg);
		if (r != ISOLA_EAGAIN) {
			return r;
		}
		if (isola__deadline_passed(deadline))
			return ISOLA_ETIMEDOUT;
		if ((flags & ISOLA__WAIT_INTERRUPTIBLE) && isola__wait_aborted())
			return ISOLA_EINTR;
		int w = ck_ec32_wait_pred(ec, &isola__ec_mode, snap, wait_pred,
					  &ctx, dl);
		if (w == ISOLA_EINTR) {
			r = ready(arg); /* a message beats the signal */
			return r != ISOLA_EAGAIN ? r : ISOLA_EINTR;
		}
		/* w == -1 is a timeout: loop once more to re-check ready(). */
	}
}
