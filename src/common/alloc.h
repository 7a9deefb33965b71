/*
 * alloc.h - isola's internal allocator: malloc/realloc/free with a
 * fault-injection hook, so tests can fail the Nth allocation and check
 * that nothing leaks or is lost (SQLite's fault tests).
 */
#ifndef ISOLA_COMMON_ALLOC_H
#define ISOLA_COMMON_ALLOC_H

#include <stddef.h>

void *isola__malloc(size_t n);
void *isola__calloc(size_t count, size_t n);
void *isola__realloc(void *p, size_t n);
void isola__free(void *p);
/* align must be a power of two multiple of sizeof(void *); free with
 * isola__free. */
void *isola__aligned_alloc(size_t align, size_t n);

/* n zeroed bytes, 64-byte aligned.  Big blocks are fresh pages that
 * the kernel maps (zeroed) only when first touched, so an unused part
 * costs no memory and no page faults.  Free with isola__free_pages and
 * the same n. */
void *isola__zalloc_pages(size_t n);
/* Below this, isola__zalloc_pages is malloc + memset (already written:
 * cheaper than a mapping); from it on, fresh pages. */
#define ISOLA__ZALLOC_PAGES_MIN ((size_t)64 * 1024)
void isola__free_pages(void *p, size_t n);

/*
 * Giving freed memory back.  A burst of large messages (documents sent
 * to workers, results coming back) leaves their memory in glibc's heaps
 * after they are freed: freed by another thread than the one that made
 * them, between live blocks, it is below any heap's top and stays in
 * the process (15 MB of a 56 MB caller after bench_proclane's mixed job
 * of 200 documents of 62 KB).  So message payloads of at least
 * ISOLA__TRIM_BIG bytes are counted as they are freed; once
 * ISOLA__TRIM_AFTER bytes were, a trim is pending, and idle threads of
 * the runtime (a pool worker about to sleep, a process lane's proxy)
 * sleep at most ISOLA__TRIM_WAKE_NS and call isola__trim_if_due: when
 * no large payload was freed for ISOLA__TRIM_QUIET_NS (the burst is
 * over: memory about to be reused is not given back), malloc_trim(0)
 * returns the free pages of every heap.  Never on a busy path.
 */
#define ISOLA__TRIM_BIG ((size_t)32 * 1024)
#define ISOLA__TRIM_AFTER ((size_t)8 * 1024 * 1024)
#define ISOLA__TRIM_QUIET_NS 50000000LL
#define ISOLA__TRIM_WAKE_NS 100000000LL
void isola__note_freed(size_t n);
/* A trim is pending (cheap: one relaxed load). */
int isola__trim_pending(void);
/* Trim if pending and quiet: 1 if it did. */
int isola__trim_if_due(void);

/* Count one allocation for fault injection: 1 if it is to fail.  For
 * allocators built on these (recycle.h). */
int isola__alloc_fault(void);

/* Make the allocation n calls from now fail (n = 1: the next one), and
 * every one after it while persist is set.  n = 0 turns failures off.
 * For tests; any thread. */
void isola__alloc_fail_after(long n, int persist);

/* Allocations still to go before the injected failure (0: it happened,
 * or none is set).  For tests. */
long isola__alloc_fail_pending(void);

#endif
