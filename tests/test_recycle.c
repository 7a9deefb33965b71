/* test_recycle.c - block caches shared by threads (common/recycle.h). */
#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>

#include "common/alloc.h"
#include "common/recycle.h"

static void *free_on_thread(void *arg)
{
	void **b = arg;
	isola__recycler *r = b[0];
	isola__recycled_free(r, b[1]);
	return NULL;
}

/* issue 20: a task or future freed by a worker went back to the caller's
 * malloc arena under its lock, which the caller's next allocation took
 * too: one of them slept ~30 us when they met.  Now the next allocation
 * gets the block back from the cache. */
Test(recycle, a_block_freed_on_another_thread_is_reused_zeroed)
{
	isola__recycler r = ISOLA__RECYCLER_INIT(200);
	unsigned char *p = isola__recycled_calloc(&r);
	cr_assert_not_null(p);
	memset(p, 0xab, 200);
	void *args[2] = { &r, p };
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, free_on_thread, args), 0);
	pthread_join(t, NULL);
	unsigned char *q = isola__recycled_calloc(&r);
	cr_assert_eq(q, p, "the freed block comes back");
	for (int i = 0; i < 200; i++)
		cr_assert_eq(q[i], 0, "and zeroed, as calloc's");
	isola__recycled_free(&r, q);
	isola__recycler_drain(&r);
	cr_assert_eq(r.n, 0);
}

Test(recycle, the_cache_holds_a_bounded_number_of_blocks)
{
	isola__recycler r = ISOLA__RECYCLER_INIT(64);
	void *ps[ISOLA__RECYCLE_SLOTS + 10];
	for (size_t i = 0; i < ISOLA__RECYCLE_SLOTS + 10; i++)
		cr_assert_not_null(ps[i] = isola__recycled_calloc(&r));
	for (size_t i = 0; i < ISOLA__RECYCLE_SLOTS + 10; i++)
		isola__recycled_free(&r, ps[i]); /* the last 10 are freed */
	cr_assert_eq(r.n, ISOLA__RECYCLE_SLOTS);
	isola__recycler_drain(&r);
	cr_assert_eq(r.n, 0);
}

/* A holder of the lock that was preempted delays nobody: allocation and
 * free go to malloc while it is held. */
Test(recycle, a_taken_lock_makes_nobody_wait)
{
	isola__recycler r = ISOLA__RECYCLER_INIT(64);
	void *p = isola__recycled_calloc(&r);
	isola__recycled_free(&r, p);
	cr_assert_eq(r.n, 1);
	pthread_mutex_lock(&r.lock);
	void *q = isola__recycled_calloc(&r); /* would deadlock if it waited */
	cr_assert_not_null(q);
	cr_assert_neq(q, p, "the cached block is not reachable now");
	isola__recycled_free(&r, q); /* freed, not cached */
	cr_assert_eq(r.n, 1);
	pthread_mutex_unlock(&r.lock);
	isola__recycler_drain(&r);
}

Test(recycle, an_injected_failure_counts_a_cached_block_too)
{
	isola__recycler r = ISOLA__RECYCLER_INIT(64);
	isola__recycled_free(&r, isola__recycled_calloc(&r));
	cr_assert_eq(r.n, 1);
	isola__alloc_fail_after(1, 0);
	cr_assert_null(isola__recycled_calloc(&r));
	cr_assert_eq(r.n, 1, "the cached block is kept");
	void *p = isola__recycled_calloc(&r);
	cr_assert_not_null(p);
	isola__recycled_free(&r, p);
	isola__recycler_drain(&r);
}

#define ROUNDS 20000
static void *churn(void *arg)
{
	isola__recycler *r = arg;
	void *held[8] = { 0 };
	for (int i = 0; i < ROUNDS; i++) {
		int k = i & 7;
		isola__recycled_free(r, held[k]);
		held[k] = isola__recycled_calloc(r);
		cr_assert_not_null(held[k]);
		for (int j = 0; j < 16; j++)
			cr_assert_eq(((unsigned char *)held[k])[j], 0);
		memset(held[k], k + 1, 16);
	}
	for (int k = 0; k < 8; k++)
		isola__recycled_free(r, held[k]);
	return NULL;
}

/* Threads allocating and freeing at once never share a block. */
Test(recycle, threads_churning_never_get_the_same_block)
{
	isola__recycler r = ISOLA__RECYCLER_INIT(32);
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, churn, &r), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	cr_assert_leq(r.n, ISOLA__RECYCLE_SLOTS);
	isola__recycler_drain(&r);
}
