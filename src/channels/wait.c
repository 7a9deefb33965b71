/*
 * wait.c - futex ops for ck_ec, deadlines, and the spin-then-sleep loop.
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

/*
 * Contention: when this process's threads do not each have a core, a
 * spinning thread is descheduled in favour of another runnable one and
 * comes back only at a scheduler tick (4 ms here), and whoever waits for
 * it waits that long: a spinner counts as awake, so nobody wakes it.
 * A sleeper, by contrast, is woken with a futex call and preempts a
 * busy thread at once.  So a spinner that finds it lost its CPU (a gap
 * between two of its clock reads, or a sched_yield that gave the CPU to
 * another thread for long) marks the process contended, and for a while
 * every wait sleeps after a short pause-only spin, and idle pool workers
 * park instead of spinning (isola__cpu_contended).  The window doubles
 * while contention is found again as soon as it ends, so a machine that
 * stays busy pays one stalled spin per window, not one per call.
 */
#define PREEMPTED_NS 1000000       /* a time slice: someone else ran */
#define CONTENDED_MIN_NS 10000000   /* 10 ms */
#define CONTENDED_MAX_NS 1280000000 /* 1.28 s */
/* While contended, spins only pause (no yield) and are short: 2 us for a
 * hand-off between pool threads (a future), 20 us for a channel.  A
 * measured trade (bench/bench_busy.py): a longer spin on a future lets a
 * busy process keep the core the worker needs (sync call p50 33-39 us
 * against 3.4 us, both cores busy), while two tasks exchanging messages
 * mostly run at once and sleeping costs them a wake per message (round
 * trip 7.7 us against 17.8 us). */
#define CONTENDED_HANDOFF_SPIN_NS 2000
#define CONTENDED_SPIN_NS 20000

/* Hints, read and written relaxed: a stale value only makes one wait
 * spin or sleep when the other would have been better. */
static int64_t contended_until, contended_window = CONTENDED_MIN_NS;

bool isola__cpu_contended(void)
{
	return isola__now_ns() < __atomic_load_n(&contended_until, __ATOMIC_RELAXED);
}

void isola__cpu_contended_mark(int64_t for_ns)
{
	__atomic_store_n(&contended_until, isola__now_ns() + for_ns, __ATOMIC_RELAXED);
}

static void note_preempted(int64_t now)
{
	int64_t until = __atomic_load_n(&contended_until, __ATOMIC_RELAXED);
	int64_t win = __atomic_load_n(&contended_window, __ATOMIC_RELAXED);
	if (now < until)
		return; /* marked already */
	/* Found again within a window of the last one ending: still busy. */
	win = now - until < win ? (win * 2 < CONTENDED_MAX_NS ? win * 2 : CONTENDED_MAX_NS)
				: CONTENDED_MIN_NS;
	__atomic_store_n(&contended_window, win, __ATOMIC_RELAXED);
	__atomic_store_n(&contended_until, now + win, __ATOMIC_RELAXED);
}

/* Per thread: a yield of this thread's last spin gave the CPU away (see
 * below). */
static _Thread_local int yield_at_once;
static _Thread_local bool policy_begun;

/*
 * Waking a sleeper costs its waker an interrupt to the sleeper's CPU and
 * the sleeper a trip through the scheduler: 20-50 us on a VM whose cores
 * are busy, more than a 20 us spin.  Two threads exchanging messages then
 * fall into a rut: each sleeps, so each message is a wake-up (a round
 * trip of 46 us against 0.8 us spinning).  So a message wait remembers
 * how long its last sleep lasted until the message came (begin to ready)
 * and, if that was short, spins twice as long next time: the wait that
 * would have slept catches the reply, the partner finds it spinning in
 * turn, and both are out of the rut.  A long sleep (a partner that was
 * descheduled, or plain idleness) forgets it.  Hand-offs (futures) keep
 * their short spin: there spinning delays the very thread that completes
 * them (CONTENDED_HANDOFF_SPIN_NS).
 */
#define ADAPTIVE_SPIN_MAX_NS 200000
static _Thread_local int64_t spin_began_ns; /* the current wait's first poll */
static _Thread_local int64_t last_sleep_ns; /* begin to ready, or 0 */

static int64_t adapted_budget(int64_t budget, int flags)
{
	if ((flags & ISOLA__WAIT_HANDOFF) || last_sleep_ns == 0)
		return budget;
	int64_t want = 2 * last_sleep_ns;
	if (want > ADAPTIVE_SPIN_MAX_NS)
		want = ADAPTIVE_SPIN_MAX_NS;
	return want > budget ? want : budget;
}

/* A wait that slept ended ready at now (see above). */
static void note_slept(int64_t now)
{
	int64_t took = now - spin_began_ns;
	last_sleep_ns = took > 0 && took <= ADAPTIVE_SPIN_MAX_NS ? took : 0;
}

uint32_t isola__cpu_tag(void)
{
	return (uint32_t)(sched_getcpu() + 1); /* ~1 ns: glibc reads rseq's cpu_id */
}

bool isola__cpu_is_mine(uint32_t tag)
{
	return tag != 0 && tag == isola__cpu_tag();
}

int isola__spin(int (*ready)(void *arg), void *arg, const isola__deadline *deadline, int flags)
{
	int r = ready(arg);
	isola__last_wait_slept = 0;
	if (r != ISOLA_EAGAIN || deadline->now)
		return r;

	/* Spin: re-check the condition itself (one pause apart: a pause
	 * is ~40-140 cycles, and a reply may be that close), reading the
	 * clock only every 64 rounds. */
	int64_t start = isola__now_ns();
	spin_began_ns = start;
	if (!policy_begun) {
		policy_begun = true;
		isola__policy_thread_begin();
	}
	bool contended = start < __atomic_load_n(&contended_until, __ATOMIC_RELAXED);
	int64_t budget = isola__spin_ns_local ? isola__spin_ns_local : isola__spin_ns;
	int64_t cap = flags & ISOLA__WAIT_HANDOFF ? CONTENDED_HANDOFF_SPIN_NS : CONTENDED_SPIN_NS;
	if (contended && budget > cap)
		budget = cap;
	if (!(flags & ISOLA__WAIT_SPIN_ONLY))
		budget = adapted_budget(budget, flags);
	int64_t spin_until = start + budget;
	if (!deadline->forever) { /* never spin past the caller's deadline */
		int64_t dl = (int64_t)deadline->at.tv_sec * 1000000000 + deadline->at.tv_nsec;
		if (dl < spin_until)
			spin_until = dl;
	}
	/* First ~2 us: pause between checks.  Then yield the CPU between
	 * checks: with more runnable threads than cores (the common case
	 * for isola), a spinner must not starve the very thread that is
	 * about to produce what it waits for.  A yield that took long and
	 * switched this thread out (evidence, not a time alone: an idle
	 * yield costs 0.25-1.3 us by machine; wait_policy.h) gave the CPU
	 * to another thread: we share a CPU with someone, likely
	 * the very thread we wait for (two spinners the scheduler put on
	 * one core).  Then pausing first only delays it: the next spin of
	 * this thread yields at once, until a yield comes back quickly
	 * (a round trip between two threads on one core: 15 -> 10 us).
	 * While contended, only the pause phase: a yield may hand the CPU
	 * to a busy thread for a whole time slice.  Except when the caller
	 * knows that the thread it waits for is on this CPU (PARTNER_HERE,
	 * in wait.h): then yield from the first poll, and keep yielding. */
	bool partner_here = flags & ISOLA__WAIT_PARTNER_HERE;
	int yielding = partner_here || (yield_at_once && !contended);
	isola__wait_thread_stats.spins++;
	isola__wait_thread_stats.spins_yield_first += yielding != 0;
	int64_t slow_yield = -1; /* measured: read when a yield needs it */
	int64_t last = start;
	bool ran_other = false;
	for (unsigned i = 1;; i++) {
		if (yielding)
			isola__policy_yield();
		else
			ck_pr_stall();
		r = ready(arg);
		/* Between clock reads, a pausing spin that is served returns
		 * at once: a clock read (~25 ns) per message was 8-14% of an
		 * idle round trip (bench_channel, section 5).  A gap that
		 * ended with the message goes unnoticed; the next one that
		 * ends a budget or a 64-pause round does not. */
		if (!yielding && (i & 63) != 0 && r != ISOLA_EAGAIN)
			return r;
		if (yielding || (i & 63) == 0) {
			int64_t now = isola__now_ns();
			/* A gap: this thread lost its CPU, to another thread
			 * (contention: sleep) or with the whole VM (a pause of
			 * the host: nothing to do about it; wait_policy.c). */
			if (now - last > PREEMPTED_NS &&
			    isola__policy_gap_was_contention(now - last)) {
				note_preempted(now);
				if (r == ISOLA_EAGAIN)
					return r; /* sleep: the spin lost its CPU */
			}
			/* Once a yield of this spin ran another thread, the
			 * next spin yields at once (a partner that just
			 * yielded may not be picked again at once, so the
			 * next yield can come back quickly all the same). */
			if (yielding && !partner_here) {
				/* A slow yield ran another thread if the kernel
				 * switched this one out meanwhile (a slow idle
				 * yield, a paused VM: no switch; wait_policy.h). */
				if (slow_yield < 0)
					slow_yield = isola__policy_yield_slow_ns();
				if (!ran_other && now - last > slow_yield)
					ran_other = isola__policy_switched_out();
				yield_at_once = ran_other;
			}
			last = now;
			if (r != ISOLA_EAGAIN)
				return r;
			if (now >= spin_until)
				return ISOLA_EAGAIN;
			yielding = yielding || (now - start >= 2000 && !contended);
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
	for (bool slept = false;; slept = true) {
		/* Snapshot before re-checking: a change after our check bumps
		 * the count past the snapshot, so the sleep returns at once. */
		uint32_t snap = ck_ec32_value(ec);
		r = ready(arg);
		if (r != ISOLA_EAGAIN) {
			if (slept && !(flags & ISOLA__WAIT_HANDOFF))
				note_slept(isola__now_ns());
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
