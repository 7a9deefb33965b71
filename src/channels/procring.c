/*
 * procring.c - two SPSC byte rings in a memfd shared by a parent and its
 * child process (procring.h has the design and the invariant).
 *
 * Sleeping: a waiter reads the ring's futex word, raises its sleeping
 * flag, re-checks its condition and sleeps on the word only if the
 * condition still fails.  A waker publishes head or tail first, then
 * reads the flag; only a raised flag costs it a bump of the word and a
 * FUTEX_WAKE.  Every access in that exchange (the waiter's flag store
 * and re-check loads, the waker's head/tail/closed store and flag load)
 * is seq_cst, so in their single total order at least one side sees the
 * other (Dekker): no wake-up is lost.  (seq_cst operations rather than
 * fences: ThreadSanitizer models the former only.)  The futex
 * ops are the shared (not FUTEX_PRIVATE) kind: the word lives in memory
 * two processes map.
 */
#include "channels/procring.h"

#include "common/alloc.h"
#include "common/atomics.h"
#include "isola.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PROCSHM_MAGIC 0x69736f70u /* "isop" */
#define PROCSHM_VERSION 1u
#define DATA_OFFSET 4096u
/* Polling before sleeping, yielding the CPU at each poll: a peer on this
 * CPU runs at once (a pause loop would hold the CPU it needs: 47 us round
 * trips with both ends on one core, 8 us yielding; bench_procring), a
 * peer on another core is seen within a yield (~1 us). */
#define SPIN_NS 20000

struct ring {
	/* Producer's line. */
	_Alignas(64) uint64_t head; /* atomic: bytes written, ever */
	uint32_t data_seq;          /* futex word the consumer sleeps on */
	uint32_t data_sleep;        /* atomic: 1 while the consumer sleeps */
	uint32_t prod_closed;       /* atomic: the producer said goodbye */
	/* Consumer's line. */
	_Alignas(64) uint64_t tail; /* atomic: bytes read, ever */
	uint32_t room_seq;          /* futex word the producer sleeps on */
	uint32_t room_sleep;        /* atomic: 1 while the producer sleeps */
	uint32_t cons_closed;       /* atomic: nobody reads any more */
};

struct isola__procshm {
	uint32_t magic, version;
	uint64_t cap;  /* bytes per ring, a power of two */
	uint64_t size; /* the whole mapping */
	uint64_t word; /* isola__procshm_word */
	struct ring rings[2]; /* [0] parent -> child, [1] child -> parent */
};

_Static_assert(sizeof(struct isola__procshm) <= DATA_OFFSET, "header fits its page");

static unsigned char *ring_data(isola__procshm *s, int i)
{
	return (unsigned char *)s + DATA_OFFSET + (size_t)i * s->cap;
}

int isola__procshm_create(size_t cap, isola__procshm **out, int *fd)
{
	*out = NULL;
	*fd = -1;
	if (cap > ((size_t)1 << 30))
		return ISOLA_EINVAL;
	size_t c = 4096;
	while (c < cap)
		c <<= 1;
	int f = memfd_create("isola-proc", MFD_CLOEXEC);
	if (f < 0)
		return ISOLA_ESYS;
	size_t size = DATA_OFFSET + 2 * c;
	if (ftruncate(f, (off_t)size) != 0) {
		close(f);
		return ISOLA_ESYS;
	}
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, f, 0);
	if (p == MAP_FAILED) {
		close(f);
		return ISOLA_ESYS;
	}
	isola__procshm *s = p; /* zero-filled by ftruncate */
	s->magic = PROCSHM_MAGIC;
	s->version = PROCSHM_VERSION;
	s->cap = c;
	s->size = size;
	*out = s;
	*fd = f;
	return 0;
}

int isola__procshm_attach(int fd, isola__procshm **out)
{
	*out = NULL;
	struct stat st;
	if (fstat(fd, &st) != 0)
		return ISOLA_ESYS;
	if (st.st_size < (off_t)DATA_OFFSET)
		return ISOLA_EINVAL;
	void *p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return ISOLA_ESYS;
	isola__procshm *s = p;
	if (s->magic != PROCSHM_MAGIC || s->version != PROCSHM_VERSION ||
	    s->size != (uint64_t)st.st_size || s->cap == 0 || (s->cap & (s->cap - 1)) != 0 ||
	    DATA_OFFSET + 2 * s->cap != s->size) {
		munmap(p, (size_t)st.st_size);
		return ISOLA_EINVAL;
	}
	*out = s;
	return 0;
}

void isola__procshm_unmap(isola__procshm *s)
{
	if (s != NULL)
		munmap(s, s->size);
}

uint64_t *isola__procshm_word(isola__procshm *s)
{
	return &s->word;
}

static void futex_wait_shared(uint32_t *addr, uint32_t v, int64_t ns)
{
	struct timespec ts = { ns / 1000000000, ns % 1000000000 };
	syscall(SYS_futex, addr, FUTEX_WAIT, v, &ts, NULL, 0);
}

static void wake(uint32_t *seq, uint32_t *sleeping)
{
	/* Seq_cst: after the caller's seq_cst head/tail (or closed) store in
	 * the total order; pairs with the waiter's flag store and re-check. */
	if (__atomic_load_n(sleeping, __ATOMIC_SEQ_CST)) {
		/* Release: the word changes after the data it announces. */
		__atomic_add_fetch(seq, 1, __ATOMIC_RELEASE);
		syscall(SYS_futex, seq, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
	}
}

/* Until ready(arg): spin, then sleep on seq in slices, calling check
 * between them.  0, ISOLA_ETIMEDOUT, or check's code. */
static int wait_for(uint32_t *seq, uint32_t *sleeping, bool (*ready)(void *), void *rarg,
		    const isola__deadline *d, int64_t slice_ns, isola__proc_check check,
		    void *carg)
{
	if (ready(rarg))
		return 0;
	if (d->now)
		return ISOLA_ETIMEDOUT;
	int64_t spin_end = isola__now_ns() + SPIN_NS;
	for (;;) {
		sched_yield();
		if (ready(rarg))
			return 0;
		if (isola__now_ns() >= spin_end)
			break;
	}
	for (;;) {
		/* Acquire: a bump seen here follows the data it announces. */
		uint32_t v = __atomic_load_n(seq, __ATOMIC_ACQUIRE);
		/* Seq_cst: before the (seq_cst) re-check of the condition;
		 * pairs with the waker's store and flag load (wake). */
		__atomic_store_n(sleeping, 1, __ATOMIC_SEQ_CST);
		if (ready(rarg)) {
			__atomic_store_n(sleeping, 0, __ATOMIC_RELAXED);
			return 0;
		}
		int64_t ns = slice_ns > 0 ? slice_ns : 10000000;
		if (!d->forever) {
			int64_t left = ((int64_t)d->at.tv_sec * 1000000000 + d->at.tv_nsec) -
				       isola__now_ns();
			if (left <= 0) {
				__atomic_store_n(sleeping, 0, __ATOMIC_RELAXED);
				return ISOLA_ETIMEDOUT;
			}
			if (left < ns)
				ns = left;
		}
		futex_wait_shared(seq, v, ns);
		__atomic_store_n(sleeping, 0, __ATOMIC_RELAXED);
		if (ready(rarg))
			return 0;
		if (check != NULL) {
			int c = check(carg);
			if (c != 0)
				return c;
		}
	}
}

static bool has_data(void *arg)
{
	struct ring *r = arg;
	/* Seq_cst (so acquire too): the bytes before head (and the closed
	 * flag) are visible; and the sleeping protocol's re-check. */
	return __atomic_load_n(&r->head, __ATOMIC_SEQ_CST) != r->tail ||
	       __atomic_load_n(&r->prod_closed, __ATOMIC_SEQ_CST);
}

struct room_arg {
	struct ring *r;
	uint64_t cap;
};

static bool has_room(void *arg)
{
	struct room_arg *a = arg;
	/* Seq_cst (so acquire too): the consumer is done with the bytes
	 * before tail; and the sleeping protocol's re-check. */
	return a->r->head - __atomic_load_n(&a->r->tail, __ATOMIC_SEQ_CST) < a->cap ||
	       __atomic_load_n(&a->r->cons_closed, __ATOMIC_SEQ_CST);
}

/* Copy n bytes in, waiting for room as needed. */
static int put(isola__procshm *s, int i, const unsigned char *src, size_t n,
	       const isola__deadline *d, int64_t slice_ns, isola__proc_check check, void *carg)
{
	struct ring *r = &s->rings[i];
	unsigned char *data = ring_data(s, i);
	struct room_arg ra = { r, s->cap };
	while (n > 0) {
		int w = wait_for(&r->room_seq, &r->room_sleep, has_room, &ra, d, slice_ns, check,
				 carg);
		if (w != 0)
			return w;
		if (__atomic_load_n(&r->cons_closed, __ATOMIC_ACQUIRE))
			return ISOLA_ECLOSED;
		uint64_t head = r->head; /* only this side writes it */
		uint64_t room = s->cap - (head - __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE));
		size_t k = n < room ? n : (size_t)room;
		size_t at = (size_t)(head & (s->cap - 1));
		size_t first = k < s->cap - at ? k : (size_t)(s->cap - at);
		memcpy(data + at, src, first);
		memcpy(data, src + first, k - first);
		/* Seq_cst (so release too): the bytes above are written before
		 * the consumer sees the new head; then the flag load (wake). */
		__atomic_store_n(&r->head, head + k, __ATOMIC_SEQ_CST);
		wake(&r->data_seq, &r->data_sleep);
		src += k;
		n -= k;
	}
	return 0;
}

/* Copy n bytes out, waiting for data as needed. */
static int take(isola__procshm *s, int i, unsigned char *dst, size_t n,
		const isola__deadline *d, int64_t slice_ns, isola__proc_check check, void *carg)
{
	struct ring *r = &s->rings[i];
	unsigned char *data = ring_data(s, i);
	while (n > 0) {
		int w = wait_for(&r->data_seq, &r->data_sleep, has_data, r, d, slice_ns, check,
				 carg);
		if (w != 0)
			return w;
		uint64_t tail = r->tail; /* only this side writes it */
		uint64_t avail = __atomic_load_n(&r->head, __ATOMIC_ACQUIRE) - tail;
		if (avail == 0)
			return ISOLA_ECLOSED; /* woken by the producer's goodbye */
		size_t k = n < avail ? n : (size_t)avail;
		size_t at = (size_t)(tail & (s->cap - 1));
		size_t first = k < s->cap - at ? k : (size_t)(s->cap - at);
		memcpy(dst, data + at, first);
		memcpy(dst + first, data, k - first);
		/* Seq_cst (so release too): the bytes are copied out before the
		 * producer may overwrite them; then the flag load (wake). */
		__atomic_store_n(&r->tail, tail + k, __ATOMIC_SEQ_CST);
		wake(&r->room_seq, &r->room_sleep);
		dst += k;
		n -= k;
	}
	return 0;
}

int isola__procring_send(isola__procshm *s, int side, const struct iovec *iov, int n,
			 const isola__deadline *d, int64_t slice_ns, isola__proc_check check,
			 void *arg)
{
	int i = side == ISOLA__PROC_PARENT ? 0 : 1;
	uint64_t len = 0;
	for (int k = 0; k < n; k++)
		len += iov[k].iov_len;
	int r = put(s, i, (const unsigned char *)&len, sizeof(len), d, slice_ns, check, arg);
	if (r != 0)
		return r;
	isola__deadline forever; /* part of a message is out: finish it */
	isola__deadline_init(&forever, -1);
	for (int k = 0; k < n && r == 0; k++)
		r = put(s, i, iov[k].iov_base, iov[k].iov_len, &forever, slice_ns, check, arg);
	return r;
}

int isola__procring_recv(isola__procshm *s, int side, void **buf, size_t *len,
			 const isola__deadline *d, int64_t slice_ns, isola__proc_check check,
			 void *arg)
{
	int i = side == ISOLA__PROC_PARENT ? 1 : 0;
	*buf = NULL;
	*len = 0;
	uint64_t n;
	int r = take(s, i, (unsigned char *)&n, sizeof(n), d, slice_ns, check, arg);
	if (r != 0)
		return r;
	if (n > ((uint64_t)1 << 40))
		return ISOLA_EDECODE;
	unsigned char *b = isola__malloc(n ? (size_t)n : 1);
	if (b == NULL)
		return ISOLA_ENOMEM;
	isola__deadline forever;
	isola__deadline_init(&forever, -1);
	r = take(s, i, b, (size_t)n, &forever, slice_ns, check, arg);
	if (r != 0) {
		isola__free(b);
		return r;
	}
	*buf = b;
	*len = (size_t)n;
	return 0;
}

size_t isola__procring_room(isola__procshm *s, int side)
{
	struct ring *r = &s->rings[side == ISOLA__PROC_PARENT ? 0 : 1];
	/* Acquire: the consumer is done with the bytes before tail. */
	return (size_t)(s->cap - (__atomic_load_n(&r->head, __ATOMIC_RELAXED) -
				  __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE)));
}

void isola__procring_close(isola__procshm *s, int side)
{
	struct ring *out = &s->rings[side == ISOLA__PROC_PARENT ? 0 : 1];
	struct ring *in = &s->rings[side == ISOLA__PROC_PARENT ? 1 : 0];
	/* Seq_cst (so release too): what was written before the goodbye is
	 * read first; then the flag loads (wake). */
	__atomic_store_n(&out->prod_closed, 1, __ATOMIC_SEQ_CST);
	wake(&out->data_seq, &out->data_sleep);
	__atomic_store_n(&in->cons_closed, 1, __ATOMIC_SEQ_CST);
	wake(&in->room_seq, &in->room_sleep);
}
