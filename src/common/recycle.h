/*
 * recycle.h - caches of same-size blocks that one thread frees and
 * another allocates: a pool's tasks and futures, made by the caller and
 * freed by a worker.
 *
 * Why: glibc gives a block freed on another thread back to its arena
 * under the arena's lock, and a thread that keeps allocating what others
 * free finds its own cache empty and takes that lock too.  When the two
 * meet, one sleeps on a futex for ~30 us.
 *
 * A recycler is a stack of up to ISOLA__RECYCLE_SLOTS blocks behind a
 * mutex that is only ever try-locked: nobody waits for it.  A thread
 * that finds it taken (its holder was preempted, say) mallocs or frees
 * as if the cache were empty or full, so a busy machine costs a missed
 * reuse, never a wait.  Under AddressSanitizer a cached block is
 * poisoned, so a use after free is still reported.
 */
#ifndef ISOLA_COMMON_RECYCLE_H
#define ISOLA_COMMON_RECYCLE_H

#include <pthread.h>
#include <stddef.h>

#define ISOLA__RECYCLE_SLOTS 64

typedef struct isola__recycler {
	pthread_mutex_t lock; /* try-locked only: guards n and slots */
	size_t n;
	void *slots[ISOLA__RECYCLE_SLOTS];
	size_t size; /* of every block */
} isola__recycler;

#define ISOLA__RECYCLER_INIT(block_size)                                                   \
	{ .lock = PTHREAD_MUTEX_INITIALIZER, .size = (block_size) }

/* r->size zeroed bytes, or NULL (ENOMEM; counts as an allocation for
 * isola__alloc_fail_after).  Any thread. */
void *isola__recycled_calloc(isola__recycler *r);

/* Give back a block from isola__recycled_calloc(r) (NULL is ok).  Any
 * thread. */
void isola__recycled_free(isola__recycler *r, void *p);

/* Free every cached block (a recycler going out of scope).  Any
 * thread. */
void isola__recycler_drain(isola__recycler *r);

#endif
