/* recycle.c - block caches that nobody waits for (recycle.h). */
#include "common/recycle.h"

#include "common/alloc.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

void *isola__recycled_calloc(isola__recycler *r)
{
	if (isola__alloc_fault())
		return NULL;
	void *p = NULL;
	/* The mutex orders the block's last writes by whoever cached it
	 * before our reuse of it. */
	if (pthread_mutex_trylock(&r->lock) == 0) {
		if (r->n > 0)
			p = r->slots[--r->n];
		pthread_mutex_unlock(&r->lock);
	}
	if (p == NULL)
		return calloc(1, r->size); /* counted above */
	UNPOISON(p, r->size);
	memset(p, 0, r->size);
	return p;
}

void isola__recycled_free(isola__recycler *r, void *p)
{
	if (p == NULL)
		return;
	POISON(p, r->size);
	if (pthread_mutex_trylock(&r->lock) == 0) {
		bool kept = r->n < ISOLA__RECYCLE_SLOTS;
		if (kept)
			r->slots[r->n++] = p;
		pthread_mutex_unlock(&r->lock);
		if (kept)
			return;
	}
	UNPOISON(p, r->size);
	isola__free(p);
}

void isola__recycler_drain(isola__recycler *r)
{
	pthread_mutex_lock(&r->lock); /* the one blocking lock: not a hot path */
	while (r->n > 0) {
		void *p = r->slots[--r->n];
		UNPOISON(p, r->size);
		isola__free(p);
	}
	pthread_mutex_unlock(&r->lock);
}
