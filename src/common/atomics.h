/*
 * atomics.h - the acquire/release operations isola's data ordering rests
 * on, as the compiler's C11-model builtins.
 *
 * Why not ck_pr for these: on x86-64 ck_pr is inline assembly plus
 * standalone fences, which ThreadSanitizer can neither see nor model, so
 * a TSan build could not check any of our ordering.  These builtins
 * compile to the same instructions (plain mov for acquire/release on
 * x86) and TSan understands them.  Concurrency Kit still provides the
 * event counts (ck_ec) used for sleeping and waking, and ck_pr_stall.
 */
#ifndef ISOLA_COMMON_ATOMICS_H
#define ISOLA_COMMON_ATOMICS_H

#include <stdbool.h>

#define isola__load_relaxed(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define isola__load_acquire(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define isola__store_relaxed(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define isola__store_release(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define isola__add_relaxed(p, v) __atomic_add_fetch((p), (v), __ATOMIC_RELAXED)
/* Strong CAS; on failure *expected is updated with the current value. */
#define isola__cas_acq_rel(p, expected, desired)                              \
	__atomic_compare_exchange_n((p), (expected), (desired), false,        \
				    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)
#define isola__cas_relaxed(p, expected, desired)                              \
	__atomic_compare_exchange_n((p), (expected), (desired), false,        \
				    __ATOMIC_RELAXED, __ATOMIC_RELAXED)

/*
 * Reference counts: increments need no ordering (the caller already holds
 * a reference); the decrement is acq_rel so that every holder's use
 * happens before the last holder frees.  Returns true for the last one.
 */
#define isola__ref_inc(p) ((void)__atomic_add_fetch((p), 1, __ATOMIC_RELAXED))
#define isola__ref_dec_is_last(p) (__atomic_sub_fetch((p), 1, __ATOMIC_ACQ_REL) == 0)

#endif
