/* alloc.c - the internal allocator and its fault-injection counter. */
#include "common/alloc.h"

#include "common/atomics.h"
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

/* Countdown to the failing allocation; 0 = never fail.  Relaxed atomics:
 * tests set it while no other allocation is meant to race. */
static int fail_countdown;
static int fail_persist;

int isola__alloc_fault(void)
{
	int n = isola__load_relaxed(&fail_countdown);
	if (n == 0)
		return 0;
	if (n > 1) {
		__atomic_sub_fetch(&fail_countdown, 1, __ATOMIC_RELAXED);
		return 0;
	}
	if (!isola__load_relaxed(&fail_persist))
		isola__store_relaxed(&fail_countdown, 0);
	return 1;
}

void isola__alloc_fail_after(long n, int persist)
{
	isola__store_relaxed(&fail_persist, persist);
	isola__store_relaxed(&fail_countdown, n < 0 ? 0 : (int)n);
}

long isola__alloc_fail_pending(void)
{
	return isola__load_relaxed(&fail_countdown);
}

void *isola__malloc(size_t n)
{
	return isola__alloc_fault() ? NULL : malloc(n ? n : 1);
}

void *isola__calloc(size_t count, size_t n)
{
	return isola__alloc_fault() ? NULL : calloc(count ? count : 1, n ? n : 1);
}

void *isola__realloc(void *p, size_t n)
{
	return isola__alloc_fault() ? NULL : realloc(p, n ? n : 1);
}

void isola__free(void *p)
{
	free(p);
}

void *isola__aligned_alloc(size_t align, size_t n)
{
	void *p = NULL;
	if (isola__alloc_fault() || posix_memalign(&p, align, n ? n : 1) != 0)
		return NULL;
	return p;
}


void *isola__zalloc_pages(size_t n)
{
	if (n < ISOLA__ZALLOC_PAGES_MIN) {
		void *p = isola__aligned_alloc(64, n);
		if (p != NULL)
			memset(p, 0, n);
		return p;
	}
	if (isola__alloc_fault())
		return NULL;
	void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

void isola__free_pages(void *p, size_t n)
{
	if (p == NULL)
		return;
	if (n < ISOLA__ZALLOC_PAGES_MIN)
		isola__free(p);
	else
		munmap(p, n);
}

/* Relaxed: hints (alloc.h); the CAS on trimmed_at makes one thread the
 * trimmer. */
static size_t freed_big;
static int64_t last_big_free, trimmed_at;

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void isola__note_freed(size_t n)
{
	if (n < ISOLA__TRIM_BIG)
		return;
	__atomic_add_fetch(&freed_big, n, __ATOMIC_RELAXED);
	__atomic_store_n(&last_big_free, now_ns(), __ATOMIC_RELAXED);
}

int isola__trim_pending(void)
{
	return __atomic_load_n(&freed_big, __ATOMIC_RELAXED) >= ISOLA__TRIM_AFTER;
}

int isola__trim_if_due(void)
{
	if (!isola__trim_pending())
		return 0;
	int64_t now = now_ns(), at = __atomic_load_n(&trimmed_at, __ATOMIC_RELAXED);
	if (now - __atomic_load_n(&last_big_free, __ATOMIC_RELAXED) < ISOLA__TRIM_QUIET_NS ||
	    now - at < ISOLA__TRIM_QUIET_NS ||
	    !__atomic_compare_exchange_n(&trimmed_at, &at, now, false, __ATOMIC_RELAXED,
					 __ATOMIC_RELAXED))
		return 0;
	__atomic_store_n(&freed_big, 0, __ATOMIC_RELAXED);
	malloc_trim(0);
	return 1;
}
