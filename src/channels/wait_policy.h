/*
 * wait_policy.h - what the spin of a wait (wait.c) knows about the
 * machine it runs on: thresholds measured here, not constants, and the
 * evidence that tells "another runnable thread took my CPU" from "the
 * whole VM was paused" (docs/scheduler.md, "Waiting when cores are
 * shared").  Its inputs are injectable, so tests can play another
 * machine (a slow sched_yield, a process that stalls).
 */
#ifndef ISOLA_CHANNELS_WAIT_POLICY_H
#define ISOLA_CHANNELS_WAIT_POLICY_H

#include <stdbool.h>
#include <stdint.h>

/* The policy's inputs.  A NULL member means the real one. */
struct isola__wait_inputs {
	/* Give up the CPU once (sched_yield). */
	void (*yield)(void);
	/* This thread's total time spent runnable but not running, in ns
	 * (/proc/thread-self/schedstat, 2nd field), or -1 if unknown. */
	int64_t (*run_delay_ns)(void);
	/* This thread's involuntary context switches so far (getrusage;
	 * a sched_yield that ran another thread counts as one), or -1. */
	long (*switches)(void);
	/* How long a measure of the idle yield holds (0: a minute). */
	int64_t remeasure_after_ns;
};

/* Install inputs (NULL: the real ones) and measure the machine again
 * with them.  Tests only: not while other threads wait. */
void isola__wait_inputs_set(const struct isola__wait_inputs *in);

/* This thread's run delay through the inputs (ns, -1: unknown). */
int64_t isola__policy_run_delay_ns(void);

/* Yield the CPU through the inputs. */
void isola__policy_yield(void);

/* A yield that took longer than this may have run another thread (then
 * ask isola__policy_switched_out): the cost of a yield with nothing else
 * to run (the median of yields that switched to no other thread) and a
 * quarter, measured at first use and again a minute after each measure
 * (a VM's host changes under it), and at least 0.5 us (an idle yield:
 * 0.25-1 us on the Intel VMs here, 1.3 us on an AMD EPYC VM). */
int64_t isola__policy_yield_slow_ns(void);

/* This thread's involuntary switches through the inputs (-1: unknown). */
long isola__policy_switches(void);

/* After a slow yield: whether the kernel switched this thread out since
 * its last such look (its involuntary switches grew; ~0.6 us), or there
 * is no earlier look or no count.  A look per slow yield, not one before
 * every spin's first yield: that one was on the path of every call that
 * waited past 2 us (12.3 us a Python sync call, against 9.6 us). */
bool isola__policy_switched_out(void);

/* This thread's spin saw a gap of gap_ns (> 1 ms) between two of its
 * clock reads.  True when another thread ran on its CPU meanwhile (its
 * run delay grew by at least half the gap, or there is no evidence
 * either way); false for a pause of the whole VM or process (the
 * thread was "running" throughout). */
bool isola__policy_gap_was_contention(int64_t gap_ns);

/* A thread's first spin: its run delay's first look (the baseline of
 * the next gap's judgement), and the process's measure of the idle
 * yield if none was made yet. */
void isola__policy_thread_begin(void);

/* A receive is about to spin for a message whose sender ran on this
 * thread's CPU: two partners the scheduler put on one CPU (a kernel that
 * packs threads onto few vCPUs does that on purpose, and its balancer
 * does not part two threads that hand the CPU to each other: 5.7-7 us
 * round trips against 0.6 us apart, on an AMD EPYC VM, idle or with one
 * busy process).  Move this thread off its CPU (its affinity without
 * that CPU, then restored: the kernel moves it at once and does not move
 * it back by itself), when it may use another.  Whether the process is
 * contended does not matter (the pair on one CPU marks it contended by
 * itself), nor do other processes' threads (apart, the two still run at
 * once most of the time).  Rate-limited: at most one move a millisecond
 * in the process, and a thread found with its partner again within
 * 50 ms of its last move waits twice as long (up to a second) before the
 * next.  ISOLA_SPREAD=0 in the environment turns it off.  True when it
 * moved. */
bool isola__policy_spread(void);

/* Per thread, for tests and benchmarks: what this thread's spins did. */
struct isola__wait_thread_stats {
	uint64_t spins;              /* isola__spin calls that polled twice or more */
	uint64_t spins_yield_first;  /* ... that yielded at their first poll */
	uint64_t gaps_contended;     /* gaps judged another thread's running */
	uint64_t gaps_paused;        /* gaps judged a pause of the whole machine */
	uint64_t spreads;            /* moves off a CPU shared with a partner */
};
extern _Thread_local struct isola__wait_thread_stats isola__wait_thread_stats;

/* The cost of a yield with nothing else to run, as measured (ns). */
int64_t isola__policy_idle_yield_ns(void);

#endif
