/*
 * test_wait.c - how waits behave when threads share a CPU (wait.c,
 * select.c): contention detection and the spin's choices between
 * pausing, yielding and sleeping.  The tests pin threads to CPU 0, so
 * they must not run alongside each other: run this suite with -j1.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "channels/channel.h"
#include "channels/wait.h"
#include "channels/wait_policy.h"
#include "isola.h"
#include "u32_messages.h"

/* A spinner that loses its CPU to a busy thread marks the process
 * contended (wait.c), so that later waits sleep instead of spinning. */
struct contend_arg {
	int stop; /* relaxed atomics: only ends the loop */
};

static void pin_to_cpu0(void)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(0, &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static void *busy_on_cpu0(void *arg)
{
	struct contend_arg *a = arg;
	pin_to_cpu0();
	while (!__atomic_load_n(&a->stop, __ATOMIC_RELAXED))
		;
	return NULL;
}

static int never_ready(void *arg)
{
	(void)arg;
	return ISOLA_EAGAIN;
}

Test(wait, a_descheduled_spinner_marks_the_machine_contended)
{
	struct contend_arg a = { 0 };
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, busy_on_cpu0, &a), 0);
	pin_to_cpu0(); /* share one CPU with the busy thread */
	bool seen = false;
	/* Spin (20 us budget each) until the scheduler takes the CPU away for
	 * a slice: within a few slices of 1-4 ms; bounded at 5 s. */
	int64_t stop = isola__now_ns() + 5000000000LL;
	while (!seen && isola__now_ns() < stop) {
		isola__deadline d;
		isola__deadline_init(&d, 1000000);
		isola__spin(never_ready, NULL, &d, 0);
		seen = isola__cpu_contended();
	}
	__atomic_store_n(&a.stop, 1, __ATOMIC_RELAXED);
	pthread_join(t, NULL);
	cr_assert(seen, "a spinner sharing its CPU with a busy thread never noticed");
}

/* Make this process "contended" (wait.c) as the test above does; true
 * once it is.  Leaves the calling thread pinned to CPU 0. */
static bool make_contended(void)
{
	struct contend_arg a = { 0 };
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, busy_on_cpu0, &a), 0);
	pin_to_cpu0();
	int64_t stop = isola__now_ns() + 5000000000LL;
	while (!isola__cpu_contended() && isola__now_ns() < stop) {
		isola__deadline d;
		isola__deadline_init(&d, 1000000);
		isola__spin(never_ready, NULL, &d, 0);
	}
	__atomic_store_n(&a.stop, 1, __ATOMIC_RELAXED);
	pthread_join(t, NULL);
	return isola__cpu_contended();
}

struct echo_arg {
	isola_channel *in, *out;
};

static void *echo_on_cpu0(void *arg)
{
	struct echo_arg *e = arg;
	pin_to_cpu0();
	isola_msg m;
	isola_msg_init(&m);
	while (isola_channel_recv(e->in, &m, -1) == 0)
		if (isola_channel_send(e->out, &m, -1) != 0)
			break;
	isola_msg_clear(&m);
	return NULL;
}

static long voluntary_switches(void)
{
	struct rusage ru;
	cr_assert_eq(getrusage(RUSAGE_THREAD, &ru), 0);
	return ru.ru_nvcsw;
}

/* issue 20: two threads exchanging messages on one core (where the
 * kernel keeps a pair that sleeps and wakes each other) on a busy
 * machine paused 20 us per message, which only kept the other off the
 * CPU, and then slept: every message a wake-up.  A receiver whose last
 * message came from its own CPU now yields from the first poll, so the
 * exchange goes on without sleeping.  Counted in sleeps (voluntary
 * context switches), not timed. */
Test(wait, a_receiver_sharing_its_cpu_with_the_sender_yields_instead_of_sleeping)
{
	cr_assert(make_contended(), "could not make the machine contended");
	isola_channel *a, *b;
	cr_assert_eq(isola_channel_create(4, &a), 0);
	cr_assert_eq(isola_channel_create(4, &b), 0);
	struct echo_arg e = { a, b };
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, echo_on_cpu0, &e), 0);
	send_u32(a, 0);
	cr_assert_eq(recv_u32_within(b, -1), 0);
	enum { ROUNDS = 1000 };
	long before = voluntary_switches();
	for (uint32_t i = 1; i <= ROUNDS; i++) {
		send_u32(a, i);
		cr_assert_eq(recv_u32_within(b, -1), i);
	}
	long slept = voluntary_switches() - before;
	isola_channel_close(a);
	pthread_join(t, NULL);
	isola_channel_release(a);
	isola_channel_release(b);
	cr_assert_lt(slept, ROUNDS / 10, "slept %ld times in %d round trips", slept, ROUNDS);
}

/* In-process test runners (the TSan stand-in) run the tests one after
 * another in one process: wait out a contended window an earlier test
 * opened (at most 1.28 s, wait.c). */
/* Threads runnable on the whole machine now (/proc/stat procs_running,
 * the caller included), or -1. */
static int runnable_now(void)
{
	FILE *f = fopen("/proc/stat", "r");
	char line[256];
	int n = -1;
	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "procs_running %d", &n) == 1)
			break;
	if (f != NULL)
		fclose(f);
	return n;
}

/* Other processes keep the CPUs busy (a loaded CI machine): more threads
 * runnable, sampled over 50 ms, than this test's own `mine`.  The tests
 * about sharing a CPU with one partner thread cannot conclude then. */
static bool machine_busy(int mine)
{
	int busy = 0;
	for (int i = 0; i < 5; i++) {
		busy += runnable_now() > mine;
		struct timespec ts = { 0, 10000000 };
		nanosleep(&ts, NULL);
	}
	return busy >= 3;
}

static void wait_until_uncontended(void)
{
	int64_t stop = isola__now_ns() + 5000000000LL;
	while (isola__cpu_contended() && isola__now_ns() < stop) {
		struct timespec ts = { 0, 10000000 };
		nanosleep(&ts, NULL);
	}
	if (isola__cpu_contended() && machine_busy(1))
		cr_skip_test("other processes keep the CPUs busy: inconclusive here");
	cr_assert(!isola__cpu_contended());
}

static int64_t ready_at;

static int ready_after(void *arg)
{
	(void)arg;
	return isola__now_ns() >= ready_at ? 0 : ISOLA_EAGAIN;
}

/* issue 20: on a VM with busy cores a wake-up takes 20-50 us, longer
 * than the 20 us spin, so two threads exchanging messages each slept
 * and every message was a wake-up (46 us round trips).  A wait that
 * slept briefly now spins twice that long next time.  Checked as a lower
 * bound on the next spin (a loaded machine only makes spins longer). */
Test(wait, a_wait_that_slept_briefly_spins_longer_next_time)
{
	wait_until_uncontended();
	isola__policy_idle_yield_ns(); /* measured now, not inside a timed wait */
	struct ck_ec32 ec;
	ck_ec32_init(&ec, 0);
	for (int attempt = 0; attempt < 20; attempt++) {
		/* First a long sleep (2 ms), which forgets any earlier one. */
		isola__deadline d;
		ready_at = isola__now_ns() + 2000000;
		isola__deadline_init(&d, 2000000);
		cr_assert_eq(isola__wait(&ec, ready_after, NULL, &d, 0), 0);
		/* A condition that turns true 40 us on: spin 20 us, then sleep
		 * (nobody bumps ec: the sleep ends at the deadline). */
		int64_t t0 = isola__now_ns();
		ready_at = t0 + 40000;
		isola__deadline_init(&d, 40000);
		cr_assert_eq(isola__wait(&ec, ready_after, NULL, &d, 0), 0);
		int64_t took = isola__now_ns() - t0;
		if (took > 150000)
			continue; /* a slow wake-up: forgotten by design; again */
		isola__deadline_init(&d, 10000000);
		int64_t s0 = isola__now_ns();
		cr_assert_eq(isola__spin(never_ready, NULL, &d, 0), ISOLA_EAGAIN);
		int64_t spun = isola__now_ns() - s0;
		int64_t want = 3 * took / 2 < 180000 ? 3 * took / 2 : 180000; /* capped at 200 us */
		if (spun < want && isola__cpu_contended())
			continue; /* contended meanwhile: spins are cut short by design; again */
		if (spun < want && machine_busy(1))
			cr_skip_test("other processes keep the CPUs busy (slept %lld ns, then spun "
				     "%lld ns): inconclusive here", (long long)took, (long long)spun);
		cr_assert_geq(spun, want, "slept %lld ns, then spun only %lld ns",
			      (long long)took, (long long)spun);
		return;
	}
	cr_skip_test("no wake-up within 150 us, or contended, in 20 tries (a loaded machine)");
}

struct partner_arg {
	int stop;        /* relaxed atomics */
	uint64_t rounds; /* bumped by the partner each time it runs */
};

/* A thread on CPU 0 that runs ~2 us at a time and then yields. */
static void *partner_on_cpu0(void *arg)
{
	struct partner_arg *p = arg;
	pin_to_cpu0();
	while (!__atomic_load_n(&p->stop, __ATOMIC_RELAXED)) {
		__atomic_add_fetch(&p->rounds, 1, __ATOMIC_RELAXED);
		int64_t until = isola__now_ns() + 2000;
		while (isola__now_ns() < until)
			;
		sched_yield();
	}
	return NULL;
}

static struct partner_arg *watched;
static uint64_t seen_at_first_poll;
static int polls;
static bool partner_ran_between_polls;

static int fourth_poll_ready(void *arg)
{
	(void)arg;
	uint64_t now = __atomic_load_n(&watched->rounds, __ATOMIC_RELAXED);
	if (++polls == 1) {
		seen_at_first_poll = now;
		return ISOLA_EAGAIN;
	}
	partner_ran_between_polls = now != seen_at_first_poll;
	return partner_ran_between_polls || polls == 4 ? 0 : ISOLA_EAGAIN;
}

/* issue 20: a caller and its worker on one core (the kernel does not
 * move a thread that ran lately, even to an idle core) each paused 2 us
 * before yielding to the other, because a yield was taken for "gave the
 * CPU away" only past 5 us: 6.6 us per call against 3.9 us.  A yield
 * that ran another thread for 1.5 us now makes the next spin yield at
 * its first poll: the other thread runs within its first few polls (a
 * pause-first spin polls ~50 times in its first 2 us). */
Test(wait, a_spin_after_a_yield_that_ran_another_thread_yields_at_once)
{
	wait_until_uncontended();
	struct partner_arg p = { 0 };
	watched = &p;
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, partner_on_cpu0, &p), 0);
	pin_to_cpu0();
	int yielded_at_once = 0;
	for (int attempt = 0; attempt < 20; attempt++) {
		isola__deadline d;
		isola__deadline_init(&d, 200000);
		isola__spin(never_ready, NULL, &d, 0); /* pauses, then yields to p */
		polls = 0;
		isola__deadline_init(&d, 200000);
		cr_assert_eq(isola__spin(fourth_poll_ready, NULL, &d, 0), 0);
		yielded_at_once += partner_ran_between_polls;
	}
	__atomic_store_n(&p.stop, 1, __ATOMIC_RELAXED);
	pthread_join(t, NULL);
	/* issue 29: with other processes on CPU 0 a yield may run them, not
	 * the partner: inconclusive, not failed (the idle-machine runs of
	 * scripts/test check it). */
	if ((isola__cpu_contended() || yielded_at_once < 10) && machine_busy(1))
		cr_skip_test("other processes keep the CPUs busy (%d spins of 20 yielded at "
			     "once): inconclusive here", yielded_at_once);
	cr_assert(!isola__cpu_contended(), "contended (%llu gaps judged contention): spins do "
		  "not yield then; inconclusive",
		  (unsigned long long)isola__wait_thread_stats.gaps_contended);
	cr_assert_geq(yielded_at_once, 10, "only %d spins of 20 yielded at once to the thread "
		      "that shares their CPU", yielded_at_once);
}


/* ---- issue 32: another machine, simulated through the policy's inputs */

#include "channels/wait_policy.h"
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

/* An AMD EPYC VM's sched_yield with nothing else to run: 1.3 us, and
 * over 1.5 us now and then (here 1 call in 20 takes 1.7 us).  A busy
 * wait: no other thread runs, whatever the load of the test machine. */
static void slow_idle_yield(void)
{
	static _Thread_local unsigned n;
	int64_t until = isola__now_ns() + (++n % 20 == 0 ? 1700 : 1300);
	while (isola__now_ns() < until)
		;
}

/* What a paused VM shows: the thread never waited for a CPU. */
static int64_t no_run_delay(void)
{
	return 1000;
}

/* A child that stops and resumes this whole process, stall_ms every
 * every_ms (what a host preempting the VM looks like from inside). */
static pid_t start_staller(int every_ms, int stall_ms)
{
	pid_t parent = getpid();
	pid_t c = fork();
	cr_assert_geq(c, 0);
	if (c == 0) {
		for (;;) {
			struct timespec a = { 0, (long)every_ms * 1000000 }, b = { 0, (long)stall_ms * 1000000 };
			nanosleep(&a, NULL);
			if (kill(parent, SIGSTOP) != 0)
				_exit(0);
			nanosleep(&b, NULL);
			kill(parent, SIGCONT);
		}
	}
	return c;
}

static void stop_staller(pid_t c)
{
	kill(c, SIGKILL);
	waitpid(c, NULL, 0);
	kill(getpid(), SIGCONT);
}

struct pp_arg {
	isola_channel *a, *b;
};

/* The echo thread's own wait counters, added here as it ends. */
static struct isola__wait_thread_stats echo_stats;

static void *echo(void *arg)
{
	struct pp_arg *e = arg;
	isola_msg m;
	isola_msg_init(&m);
	while (isola_channel_recv(e->a, &m, -1) == 0)
		if (isola_channel_send(e->b, &m, -1) != 0)
			break;
	isola_msg_clear(&m);
	echo_stats.spins += isola__wait_thread_stats.spins; /* joined before read */
	echo_stats.spins_yield_first += isola__wait_thread_stats.spins_yield_first;
	echo_stats.gaps_paused += isola__wait_thread_stats.gaps_paused;
	echo_stats.gaps_contended += isola__wait_thread_stats.gaps_contended;
	return NULL;
}

/* An idle ping-pong (two unpinned threads) for about ms milliseconds;
 * the share of this thread's rounds that found the process contended. */
static double pingpong_contended_share(int ms)
{
	isola_channel *a, *b;
	cr_assert_eq(isola_channel_create(16, &a), 0);
	cr_assert_eq(isola_channel_create(16, &b), 0);
	struct pp_arg e = { a, b };
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, echo, &e), 0);
	long rounds = 0, contended = 0;
	int64_t stop = isola__now_ns() + (int64_t)ms * 1000000;
	for (uint32_t i = 0; isola__now_ns() < stop; i++, rounds++) {
		send_u32(a, i);
		cr_assert_eq(recv_u32_within(b, -1), i);
		contended += isola__cpu_contended();
	}
	isola_channel_close(a);
	pthread_join(t, NULL);
	isola_channel_release(a);
	isola_channel_release(b);
	return (double)contended / (double)rounds;
}

/* The evidence itself: a stopped process (SIGSTOP, as a paused VM) does
 * not wait for a CPU, so its threads' run delay does not grow by the
 * stall (the best of 5 stalls of 20 ms: a loaded machine may make the
 * wake-up after SIGCONT wait). */
Test(wait, a_stopped_process_does_not_count_as_waiting_for_a_cpu)
{
	if (access("/proc/thread-self/schedstat", R_OK) != 0)
		cr_skip_test("no schedstat on this kernel: gaps are taken for contention");
	int64_t best = INT64_MAX;
	for (int i = 0; i < 5 && best > 10000000; i++) {
		int64_t rd0 = isola__policy_run_delay_ns();
		pid_t c = start_staller(1, 20);
		struct timespec ts = { 0, 30000000 };
		nanosleep(&ts, NULL);
		stop_staller(c);
		int64_t grew = isola__policy_run_delay_ns() - rd0;
		best = grew < best ? grew : best;
	}
	cr_assert_lt(best, 10000000, "a stall of 20 ms grew the run delay by %lld ns",
		     (long long)best);
}

/* issue 32: on a VM whose host preempts it about once a second, and
 * where an idle sched_yield costs 1.3 us (an AMD EPYC VM), an idle
 * ping-pong fell into the busy-machine mode: a gap in a spinner's clock
 * reads marked the process contended (10 ms windows and more), and
 * "a yield over 1.5 us ran another thread" made spins yield at their
 * first poll (2.5 us round trips against 0.3).  That machine, played
 * through the policy's inputs: a slow idle yield, a run delay that does
 * not grow (a paused VM), and stalls of the whole process (SIGSTOP,
 * 4 ms every 20 ms).  Counted, not timed. */
Test(wait, a_paused_vm_and_a_slow_yield_leave_an_idle_ping_pong_out_of_the_slow_mode)
{
#if defined(__SANITIZE_ADDRESS__)
	/* Its inputs are times (a 1.3 us yield against ~2 us spins): ASan's
	 * 2-3x slower code is another machine.  The plain and TSan builds
	 * run it. */
	cr_skip_test("timing inputs do not hold under AddressSanitizer");
#endif
	wait_until_uncontended();
	struct isola__wait_inputs in = { .yield = slow_idle_yield, .run_delay_ns = no_run_delay };
	isola__wait_inputs_set(&in);
	int64_t idle = isola__policy_idle_yield_ns();
	struct isola__wait_thread_stats before = isola__wait_thread_stats;
	memset(&echo_stats, 0, sizeof(echo_stats));
	pid_t c = start_staller(20, 4);
	double share = pingpong_contended_share(1500);
	stop_staller(c);
	/* Spins of 10 us, pausing 2 us and then yielding: after a yield
	 * that "ran another thread", the next spin yields first. */
	for (int i = 0; i < 200; i++) {
		isola__deadline d;
		isola__deadline_init(&d, 10000);
		isola__spin(never_ready, NULL, &d, 0);
	}
	isola__wait_inputs_set(NULL);
	struct isola__wait_thread_stats *now = &isola__wait_thread_stats;
	uint64_t paused = now->gaps_paused - before.gaps_paused + echo_stats.gaps_paused;
	uint64_t contended = now->gaps_contended - before.gaps_contended + echo_stats.gaps_contended;
	uint64_t spins = now->spins - before.spins + echo_stats.spins;
	uint64_t first = now->spins_yield_first - before.spins_yield_first +
			 echo_stats.spins_yield_first;
	cr_assert_geq(idle, 1200, "the slow yield measured %lld ns", (long long)idle);
	cr_assert_geq(paused + contended, 2, "the spins saw only %llu stalls: inconclusive",
		      (unsigned long long)(paused + contended));
	cr_assert_eq(contended, 0, "a paused VM judged contention %llu times",
		     (unsigned long long)contended);
	cr_assert_lt(share, 0.05, "contended in %.0f%% of the rounds", share * 100);
	if (first * 10 >= spins && machine_busy(2))
		cr_skip_test("other processes keep the CPUs busy (%llu spins of %llu yielded at "
			     "their first poll): inconclusive here",
			     (unsigned long long)first, (unsigned long long)spins);
	cr_assert_lt(first * 10, spins, "%llu spins of %llu yielded at their first poll",
		     (unsigned long long)first, (unsigned long long)spins);
}

/* issue 32: on an AMD EPYC VM whose kernel packs threads onto few vCPUs,
 * two threads exchanging messages were put on one CPU and kept there
 * (5.7-7 us a round trip against 0.6 us apart): the balancer never parts
 * two threads that hand the CPU to each other.  A receiver whose partner
 * sends from its own CPU now moves itself off that CPU.  The pair starts
 * on one CPU (both pinned there, then let go: the kernel does not move
 * them by itself at once).  Counted, not timed: moves made, and at most
 * one a millisecond. */
static int first_allowed_cpu(int *n_allowed)
{
	cpu_set_t all;
	cr_assert_eq(sched_getaffinity(0, sizeof(all), &all), 0);
	*n_allowed = CPU_COUNT(&all);
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &all))
			return c;
	return -1;
}

struct together_arg {
	isola_channel *a, *b;
	cpu_set_t all;
};

static uint64_t together_echo_spreads;

static void *echo_let_go(void *arg)
{
	struct together_arg *e = arg;
	/* Started on the creator's one CPU (inherited), then let go. */
	pthread_setaffinity_np(pthread_self(), sizeof(e->all), &e->all);
	isola_msg m;
	isola_msg_init(&m);
	while (isola_channel_recv(e->a, &m, -1) == 0)
		if (isola_channel_send(e->b, &m, -1) != 0)
			break;
	isola_msg_clear(&m);
	together_echo_spreads = isola__wait_thread_stats.spreads; /* joined before read */
	return NULL;
}

/* Moves (both threads) during an exchange of ms milliseconds started on
 * one CPU (the process marked contended first, if asked). */
static uint64_t spreads_of_pair_started_together(int ms, bool contended)
{
	int n;
	int cpu = first_allowed_cpu(&n);
	if (n < 2)
		cr_skip_test("one CPU allowed: nowhere to move");
	wait_until_uncontended();
	struct together_arg e;
	cr_assert_eq(sched_getaffinity(0, sizeof(e.all), &e.all), 0);
	cpu_set_t one;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	cr_assert_eq(pthread_setaffinity_np(pthread_self(), sizeof(one), &one), 0);
	cr_assert_eq(isola_channel_create(16, &e.a), 0);
	cr_assert_eq(isola_channel_create(16, &e.b), 0);
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, echo_let_go, &e), 0);
	cr_assert_eq(pthread_setaffinity_np(pthread_self(), sizeof(e.all), &e.all), 0);
	uint64_t before = isola__wait_thread_stats.spreads;
	if (contended) /* as a gap marks it when the partner took the CPU */
		isola__cpu_contended_mark((int64_t)ms * 1000000);
	int64_t stop = isola__now_ns() + (int64_t)ms * 1000000;
	for (uint32_t i = 0; isola__now_ns() < stop; i++) {
		send_u32(e.a, i);
		cr_assert_eq(recv_u32_within(e.b, -1), i);
	}
	isola_channel_close(e.a);
	pthread_join(t, NULL);
	isola_channel_release(e.a);
	isola_channel_release(e.b);
	return isola__wait_thread_stats.spreads - before + together_echo_spreads;
}

Test(wait, two_partners_on_one_cpu_move_apart)
{
	uint64_t moves = spreads_of_pair_started_together(300, false);
	cr_assert_geq(moves, 1, "the pair never moved apart");
	/* Rate-limited: at most one a millisecond, and backing off. */
	cr_assert_leq(moves, 300, "%llu moves in 300 ms", (unsigned long long)moves);
}

/* The pair on one CPU marks the process contended by itself: a spinner
 * that pauses keeps its partner waiting for the CPU, a gap over 1 ms
 * with the run delay grown (on the AMD VM, in 5 of 18 idle pools).  The
 * receiver still moves (it used to yield to its partner instead, 5.7 us
 * round trips, for the contended window and longer). */
Test(wait, two_partners_on_one_cpu_move_apart_when_that_made_the_process_contended)
{
	uint64_t moves = spreads_of_pair_started_together(300, true);
	cr_assert_geq(moves, 1, "the pair never moved apart");
}

/* issue 32: thresholds come from the machine, and a VM's host changes
 * under it: the idle yield is measured again once a measure is old (a
 * minute; 50 ms here, through the inputs). */
static int64_t yield_cost_ns = 1300; /* read by costly_yield */

static void costly_yield(void)
{
	int64_t until = isola__now_ns() + __atomic_load_n(&yield_cost_ns, __ATOMIC_RELAXED);
	while (isola__now_ns() < until)
		;
}

Test(wait, the_idle_yield_is_measured_again_once_its_measure_is_old)
{
#if defined(__SANITIZE_ADDRESS__)
	cr_skip_test("timing inputs do not hold under AddressSanitizer");
#endif
	wait_until_uncontended();
	struct isola__wait_inputs in = { .yield = costly_yield, .remeasure_after_ns = 50000000 };
	isola__wait_inputs_set(&in);
	int64_t first = isola__policy_idle_yield_ns();
	__atomic_store_n(&yield_cost_ns, 5000, __ATOMIC_RELAXED); /* another host */
	int64_t same = isola__policy_idle_yield_ns();              /* not old yet */
	struct timespec ts = { 0, 80000000 };
	nanosleep(&ts, NULL);
	int64_t later = isola__policy_idle_yield_ns();
	isola__wait_inputs_set(NULL);
	if ((first < 1200 || later < 4800) && machine_busy(1))
		cr_skip_test("other processes keep the CPUs busy (measures %lld, %lld ns): "
			     "inconclusive here", (long long)first, (long long)later);
	cr_assert_geq(first, 1200, "first measure %lld ns", (long long)first);
	cr_assert_lt(first, 4000, "first measure %lld ns", (long long)first);
	cr_assert_eq(same, first, "measured again before the measure was old");
	cr_assert_geq(later, 4800, "not measured again: %lld ns", (long long)later);
}
