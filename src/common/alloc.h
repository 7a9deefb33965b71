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
