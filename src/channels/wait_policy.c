/*
 * wait_policy.c - the machine-dependent inputs of the spin (wait.c):
 * the cost of an idle yield, measured, and the run delay that tells a
 * CPU taken by another thread from a paused VM.
 */
#include "channels/wait_policy.h"

#include "channels/wait.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

_Thread_local struct isola__wait_thread_stats isola__wait_thread_stats;

/* ---- the real inputs ------------------------------------------------ */

static void real_yield(void)
{
	sched_yield();
}

/* Per thread: an open /proc/thread-self/schedstat (read again with
 * pread, ~1 us), closed when the thread exits; -1 not yet, -2 none.
 * Opened by thread schedstat_tid: a child of fork() opens its own. */
static _Thread_local int schedstat_fd = -1;
static _Thread_local pid_t schedstat_tid;
static pthread_key_t fd_key;
static pthread_once_t fd_key_once = PTHREAD_ONCE_INIT;

static void close_fd(void *p)
{
	close((int)(intptr_t)p - 1);
}

static void make_fd_key(void)
{
	if (pthread_key_create(&fd_key, close_fd) != 0)
		fd_key = (pthread_key_t)-1;
}

static int64_t real_run_delay_ns(void)
{
	if (schedstat_fd >= 0 && schedstat_tid != gettid()) {
		/* The parent's thread's, after fork(): no earlier look of
		 * this thread to compare with. */
		close(schedstat_fd);
		schedstat_fd = -1;
		real_run_delay_ns();
		return -1;
	}
	if (schedstat_fd == -1) {
		schedstat_tid = gettid();
		schedstat_fd = -2;
		pthread_once(&fd_key_once, make_fd_key);
		int fd = fd_key != (pthread_key_t)-1
				 ? open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC)
				 : -1;
		if (fd >= 0 && pthread_setspecific(fd_key, (void *)(intptr_t)(fd + 1)) == 0)
			schedstat_fd = fd;
		else if (fd >= 0)
			close(fd);
	}
	if (schedstat_fd < 0)
		return -1;
	/* "<ns on CPU> <ns runnable, waiting> <timeslices>\n" */
	char buf[96];
	ssize_t n = pread(schedstat_fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	char *end;
	strtoull(buf, &end, 10);
	if (*end != ' ')
		return -1;
	return (int64_t)strtoull(end + 1, NULL, 10);
}

static long real_switches(void)
{
	struct rusage ru;
	return getrusage(RUSAGE_THREAD, &ru) == 0 ? ru.ru_nivcsw : -1;
}

/* ---- inputs and calibration ----------------------------------------- */

/* Read and written relaxed: tests install inputs while no thread waits,
 * and a stale threshold only makes one spin yield or pause wrongly. */
static void (*yield_fn)(void) = real_yield;
static int64_t (*run_delay_fn)(void) = real_run_delay_ns;
static long (*switches_fn)(void) = real_switches;

#define SLOW_MIN_NS 500
static int64_t idle_yield_ns;            /* 0: not measured yet */
static int64_t slow_ns = SLOW_MIN_NS;
static int64_t calibrate_at;             /* a thread may measure from then */
static int64_t calibrate_backoff = 1000000000; /* the next wait after a failure */
/* A measure is redone a minute after the last: a VM's host changes
 * under it (another host, another load), and a measure costs a wait up
 * to 200 us once a minute. */
#define RECALIBRATE_NS 60000000000LL
static int64_t calibrated_at;                  /* when the last measure succeeded */
static int64_t recalibrate_ns = RECALIBRATE_NS; /* an input (tests) */


static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}


/* The cost of a yield with nothing else to run: the median of the
 * yields that ran no other thread (a yield that did counts as an
 * involuntary switch).  Bounded: it runs inside a wait, so it stops at
 * the first yield that ran another thread (it may have cost that
 * thread's time slice) or after 200 us.  False when too few yields were
 * idle (a busy CPU): the floor stays, and a later spin measures again
 * (1 s later, then 2, 4... up to 64 s). */
static bool calibrate(void)
{
	enum { TRIES = 48, WANT = 16, ENOUGH = 8, SWITCHES = 1 };
	int64_t t[TRIES];
	int n = 0, switched = 0;
	void (*yield)(void) = __atomic_load_n(&yield_fn, __ATOMIC_RELAXED);
	long (*involuntary_switches)(void) = __atomic_load_n(&switches_fn, __ATOMIC_RELAXED);
	int64_t began = isola__now_ns();
	for (int i = 0; i < TRIES && n < WANT && switched < SWITCHES; i++) {
		long sw = involuntary_switches();
		int64_t t0 = isola__now_ns();
		yield();
		int64_t t1 = isola__now_ns();
		if (sw >= 0 && involuntary_switches() == sw)
			t[n++] = t1 - t0;
		else
			switched++;
		if (t1 - began > 200000)
			break;
	}
	if (n < ENOUGH)
		return false;
	qsort(t, (size_t)n, sizeof(t[0]), cmp_i64);
	int64_t idle = t[n / 2] > 0 ? t[n / 2] : 1;
	int64_t g = idle + idle / 4; /* a quarter over: then ask for evidence */
	__atomic_store_n(&slow_ns, g > SLOW_MIN_NS ? g : SLOW_MIN_NS,
			 __ATOMIC_RELAXED);
	__atomic_store_n(&idle_yield_ns, idle, __ATOMIC_RELAXED);
	__atomic_store_n(&calibrated_at, isola__now_ns(), __ATOMIC_RELAXED);
	/* The next measure is due by age alone (isola__policy_yield_slow_ns). */
	__atomic_store_n(&calibrate_at, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&calibrate_backoff, 1000000000, __ATOMIC_RELAXED);
	return true;
}

void isola__wait_inputs_set(const struct isola__wait_inputs *in)
{
	__atomic_store_n(&yield_fn, in && in->yield ? in->yield : real_yield, __ATOMIC_RELAXED);
	__atomic_store_n(&run_delay_fn, in && in->run_delay_ns ? in->run_delay_ns : real_run_delay_ns,
			 __ATOMIC_RELAXED);
	__atomic_store_n(&switches_fn, in && in->switches ? in->switches : real_switches,
			 __ATOMIC_RELAXED);
	__atomic_store_n(&recalibrate_ns,
			 in && in->remeasure_after_ns > 0 ? in->remeasure_after_ns : RECALIBRATE_NS,
			 __ATOMIC_RELAXED);
	__atomic_store_n(&idle_yield_ns, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&slow_ns, SLOW_MIN_NS, __ATOMIC_RELAXED);
	__atomic_store_n(&calibrate_at, isola__now_ns() + 1000000000, __ATOMIC_RELAXED);
	calibrate(); /* failing (a busy CPU): again a second later */
}

int64_t isola__policy_run_delay_ns(void)
{
	return __atomic_load_n(&run_delay_fn, __ATOMIC_RELAXED)();
}

long isola__policy_switches(void)
{
	return __atomic_load_n(&switches_fn, __ATOMIC_RELAXED)();
}

void isola__policy_yield(void)
{
	__atomic_load_n(&yield_fn, __ATOMIC_RELAXED)();
}

int64_t isola__policy_yield_slow_ns(void)
{
	if (__atomic_load_n(&idle_yield_ns, __ATOMIC_RELAXED) == 0 ||
	    isola__now_ns() - __atomic_load_n(&calibrated_at, __ATOMIC_RELAXED) >
		    __atomic_load_n(&recalibrate_ns, __ATOMIC_RELAXED)) {
		/* One thread measures at a time, and a failed measure (a busy
		 * CPU) is tried again a second later. */
		int64_t now = isola__now_ns(), at = __atomic_load_n(&calibrate_at, __ATOMIC_RELAXED);
		int64_t back = __atomic_load_n(&calibrate_backoff, __ATOMIC_RELAXED);
		/* Not while contended: yields would run other threads. */
		if (now >= at && !isola__cpu_contended() &&
		    __atomic_compare_exchange_n(&calibrate_at, &at, now + back, false,
						__ATOMIC_RELAXED, __ATOMIC_RELAXED) &&
		    !calibrate() && back < 64000000000LL)
			__atomic_store_n(&calibrate_backoff, 2 * back, __ATOMIC_RELAXED);
	}
	return __atomic_load_n(&slow_ns, __ATOMIC_RELAXED);
}

int64_t isola__policy_idle_yield_ns(void)
{
	isola__policy_yield_slow_ns(); /* measured by now */
	return __atomic_load_n(&idle_yield_ns, __ATOMIC_RELAXED);
}

/* ---- gaps: another thread, or the whole machine paused? -------------- */

/* Per thread: the run delay at its last look, -1 none yet. */
static _Thread_local int64_t last_run_delay = -1;

bool isola__policy_gap_was_contention(int64_t gap_ns)
{
	int64_t rd = __atomic_load_n(&run_delay_fn, __ATOMIC_RELAXED)();
	int64_t before = last_run_delay;
	last_run_delay = rd;
	/* No evidence (no schedstat, or no earlier look): a gap is taken
	 * for contention, as a spinner cannot tell. */
	bool contended = rd < 0 || before < 0 || 2 * (rd - before) >= gap_ns;
	if (contended)
		isola__wait_thread_stats.gaps_contended++;
	else
		isola__wait_thread_stats.gaps_paused++;
	return contended;
}

/* Per thread: the involuntary switches at its last look, -1 none yet. */
static _Thread_local long last_switches = -1;

bool isola__policy_switched_out(void)
{
	long now = isola__policy_switches();
	long before = last_switches;
	last_switches = now;
	return now < 0 || before < 0 || now != before;
}

/* ---- two partners on one CPU: move apart (wait_policy.h) ------------- */

#define SPREAD_EVERY_NS 1000000        /* at most one move a ms per process */
#define SPREAD_SOON_NS 50000000        /* together again within 50 ms: back off */
#define SPREAD_BACKOFF_MAX_NS 1000000000

/* Hints, relaxed: a stale value only makes one move early or late. */
static int64_t spread_any_next;                       /* the process's next move */
static _Thread_local int64_t spread_next, spread_last; /* this thread's */
static _Thread_local int64_t spread_backoff = SPREAD_EVERY_NS;

/* ISOLA_SPREAD=0 in the environment turns the moves off (a user who
 * places threads, benchmarks' before/after).  Read once; a race reads
 * the same value twice. */
static bool spread_enabled(void)
{
	static int state; /* 0: not read yet, 1: on, 2: off */
	int s = __atomic_load_n(&state, __ATOMIC_RELAXED);
	if (s == 0) {
		const char *v = getenv("ISOLA_SPREAD");
		s = v != NULL && v[0] == '0' && v[1] == '\0' ? 2 : 1;
		__atomic_store_n(&state, s, __ATOMIC_RELAXED);
	}
	return s == 1;
}

bool isola__policy_spread(void)
{
	int64_t now = isola__now_ns();
	if (now < spread_next || !spread_enabled())
		return false;
	/* One thread of the process at a time: two partners that both move
	 * at once may land together again. */
	int64_t any = __atomic_load_n(&spread_any_next, __ATOMIC_RELAXED);
	if (now < any || !__atomic_compare_exchange_n(&spread_any_next, &any,
						      now + SPREAD_EVERY_NS, false,
						      __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		return false;
	spread_backoff = spread_last != 0 && now - spread_last < SPREAD_SOON_NS
				 ? (2 * spread_backoff < SPREAD_BACKOFF_MAX_NS ? 2 * spread_backoff
									     : SPREAD_BACKOFF_MAX_NS)
				 : SPREAD_EVERY_NS;
	spread_next = now + spread_backoff;
	cpu_set_t all;
	if (sched_getaffinity(0, sizeof(all), &all) != 0 || CPU_COUNT(&all) < 2)
		return false;
	/* Also when other processes keep the CPUs busy: apart, each of the
	 * two shares a CPU with another process's thread and the pair runs
	 * at once most of the time (one busy process: 0.6 us round trips
	 * against 7.1 us on one CPU handing it back and forth). */
	int cpu = sched_getcpu();
	if (cpu < 0 || !CPU_ISSET(cpu, &all))
		return false;
	cpu_set_t others = all;
	CPU_CLR(cpu, &others);
	if (sched_setaffinity(0, sizeof(others), &others) != 0)
		return false;
	/* The same set as before: allowed on the CPU it is on now, the
	 * kernel leaves it there. */
	if (sched_setaffinity(0, sizeof(all), &all) != 0)
		sched_setaffinity(0, sizeof(all), &all);
	spread_last = now;
	isola__wait_thread_stats.spreads++;
	return true;
}

void isola__policy_thread_begin(void)
{
	if (last_run_delay < 0)
		last_run_delay = __atomic_load_n(&run_delay_fn, __ATOMIC_RELAXED)();
	last_switches = __atomic_load_n(&switches_fn, __ATOMIC_RELAXED)();
	/* The process's first spin measures the machine (before it polls,
	 * so that a wait's own timing does not include it). */
	isola__policy_yield_slow_ns();
}
