/*
 * channel.c - bounded MPMC channels: create, send, recv, close, stats.
 * The queue algorithm and the close protocol are described in channel.h;
 * waiting is in wait.c, select in select.c.
 */
#include "channels/channel.h"

#include "common/alloc.h"

#include "common/atomics.h"

#include <string.h>
#include <sys/mman.h>

/*
 * A big channel's cells come from fresh pages (channel.h), and how they
 * are first touched matters.  A receiver polling the next cell maps the
 * kernel's shared zero page for reading; the first write then replaces
 * that mapping, and the kernel must flush the other CPUs' TLBs: an
 * interrupt to each, 20-30 us on a VM, every CELLS_PER_PAGE messages
 * until the ring has gone round once (one synchronous pool call in 32
 * took 30 us instead of 3).  So the first POPULATED_BYTES are mapped for
 * writing when the channel is made (MADV_POPULATE_WRITE, one call), and
 * past them, on its first lap, a sender writes the next page before any
 * receiver can read it.
 */
#define PAGE_BYTES 4096
#define CELLS_PER_PAGE (PAGE_BYTES / sizeof(struct isola__cell))
#define POPULATED_BYTES ((size_t)256 * 1024)
_Static_assert(PAGE_BYTES % sizeof(struct isola__cell) == 0, "cells tile a page");

static void touch_page_of(isola_channel *ch, uint64_t index)
{
	/* An add of 0 is a write that changes nothing, so it keeps what a
	 * racing sender stores there; relaxed: it orders nothing. */
	if (index <= ch->mask)
		__atomic_fetch_add(&ch->cells[index].seq, 0, __ATOMIC_RELAXED);
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

static void populate(isola_channel *ch)
{
	size_t n = (ch->mask + 1) * sizeof(struct isola__cell);
	if (n < ISOLA__ZALLOC_PAGES_MIN)
		return; /* heap memory, written by its memset already */
	if (n > POPULATED_BYTES)
		n = POPULATED_BYTES;
	if (madvise(ch->cells, n, MADV_POPULATE_WRITE) == 0)
		return;
	for (uint64_t i = 0; i * sizeof(struct isola__cell) < n; i += CELLS_PER_PAGE)
		touch_page_of(ch, i); /* an older kernel: one write per page */
}

int isola_channel_create(size_t capacity, isola_channel **out)
{
	if (out == NULL || capacity == 0 || capacity > ISOLA_CHANNEL_MAX_CAPACITY)
		return ISOLA_EINVAL;
	size_t cap = 1;
	while (cap < capacity)
		cap <<= 1;

	isola_channel *ch = isola__aligned_alloc(ISOLA__CACHELINE, sizeof(*ch));
	if (ch == NULL)
		return ISOLA_ENOMEM;
	memset(ch, 0, sizeof(*ch));
	/* Zeroed: every cell free for its first position, message empty. */
	ch->cells = isola__zalloc_pages(cap * sizeof(struct isola__cell));
	if (ch->cells == NULL) {
		isola__free(ch);
		return ISOLA_ENOMEM;
	}
	ch->mask = cap - 1;
	ch->refs = 1;
	populate(ch); /* see populate */
	ck_ec32_init(&ch->not_full, 0);
	pthread_mutex_init(&ch->watch_lock, NULL);
	*out = ch; /* shared later through a synchronising hand-off */
	return 0;
}

int isola_channel_retain(isola_channel *ch)
{
	if (ch == NULL)
		return ISOLA_EINVAL;
	isola__ref_inc(&ch->refs);
	return 0;
}

/* Free what is still queued; called with no other handle left. */
static void drain_and_free(isola_channel *ch)
{
	uint64_t end = ch->enq_pos & ~ISOLA__CLOSED_BIT;
	for (uint64_t pos = ch->deq_pos; pos != end; pos++) {
		struct isola__cell *cell = &ch->cells[pos & ch->mask];
		if (cell->seq == isola__turn(ch, pos) + 1)
			isola_msg_clear(&cell->msg);
	}
	pthread_mutex_destroy(&ch->watch_lock);
	isola__free_pages(ch->cells, (ch->mask + 1) * sizeof(struct isola__cell));
	isola__free(ch);
}

int isola_channel_release(isola_channel *ch)
{
	if (ch == NULL)
		return 0;
	/* acq_rel: every holder's queue operations happen before the last
	 * one frees, so it sees (and frees) every message they left. */
	if (isola__ref_dec_is_last(&ch->refs))
		drain_and_free(ch);
	return 0;
}

/* Track the deepest queue a sender has seen.  deq_seen is a cached,
 * possibly stale (so never too high) copy of deq_pos: only when the
 * depth it suggests beats the peak do we read the consumers' cache line
 * for the true depth.  Keeps the common send off that line. */
static void note_depth(isola_channel *ch, uint64_t enq)
{
	/* All relaxed: statistics, nothing is published through them. */
	uint64_t peak = isola__load_relaxed(&ch->peak_depth);
	if (enq - isola__load_relaxed(&ch->deq_seen) <= peak)
		return;
	uint64_t deq = isola__load_relaxed(&ch->deq_pos);
	isola__store_relaxed(&ch->deq_seen, deq);
	if (deq >= enq)
		return;
	uint64_t depth = enq - deq;
	while (depth > peak && !isola__cas_relaxed(&ch->peak_depth, &peak, depth))
		;
}

_Thread_local const isola_channel *isola__last_recv_channel;
_Thread_local uint32_t isola__last_recv_sender_cpu;

int isola__channel_try_send(isola_channel *ch, isola_msg *msg)
{
	struct isola__cell *cell;
	/* Work that need not sit between claiming a cell and publishing it
	 * goes before or after: a sender preempted in between holds up the
	 * receiver of that cell for a time slice. */
	uint16_t cpu = (uint16_t)isola__cpu_tag();
	uint64_t pos = isola__load_relaxed(&ch->enq_pos);
	for (;;) {
		if (pos & ISOLA__CLOSED_BIT)
			return ISOLA_ECLOSED;
		cell = &ch->cells[pos & ch->mask];
		/* Acquire: the last consumer of this cell finished reading
		 * it (then released seq) before we overwrite it. */
		uint64_t seq = isola__load_acquire(&cell->seq);
		int64_t dif = (int64_t)(seq - isola__turn(ch, pos));
		if (dif == 0) {
			/* Claim pos.  On failure pos is reloaded, closed bit
			 * included, so a close makes us stop. */
			if (isola__cas_acq_rel(&ch->enq_pos, &pos, pos + 1))
				break;
		} else if (dif < 0) {
			return ISOLA_EAGAIN; /* a lap behind: full */
		} else {
			pos = isola__load_relaxed(&ch->enq_pos); /* lost a race */
		}
	}
	isola__msg_move(&cell->msg, msg);
	/* For the receiver: where its sender runs (channel.h).  Published
	 * with the message by the release below. */
	cell->msg.reserved_ = cpu;
	/* Release: the message is written before the consumer can see
	 * seq == 2*pos + 1 and read it. */
	isola__store_release(&cell->seq, isola__turn(ch, pos) + 1);
	/* First lap: map the next page before receivers get there (above). */
	if (pos <= ch->mask && pos % CELLS_PER_PAGE == 0)
		touch_page_of(ch, pos + CELLS_PER_PAGE);
	/* Full barrier: the seq store above is visible before we look for
	 * receivers to wake (a receiver registers, then re-checks; one of
	 * us sees the other). */
	__atomic_add_fetch(&ch->publishes, 1, __ATOMIC_SEQ_CST);
	isola__channel_wake_receiver(ch);
	note_depth(ch, pos + 1);
	return 0;
}

int isola__channel_try_recv(isola_channel *ch, isola_msg *out)
{
	struct isola__cell *cell;
	uint64_t pos = isola__load_relaxed(&ch->deq_pos);
	for (;;) {
		cell = &ch->cells[pos & ch->mask];
		/* Acquire: pairs with the producer's release of seq, so the
		 * message is visible once seq says the cell is full. */
		uint64_t seq = isola__load_acquire(&cell->seq);
		int64_t dif = (int64_t)(seq - (isola__turn(ch, pos) + 1));
		if (dif == 0) {
			if (isola__cas_acq_rel(&ch->deq_pos, &pos, pos + 1))
				break;
		} else if (dif < 0) {
			/* Empty at pos.  Closed and nothing claimed past pos
			 * means nothing will ever arrive.  The closed flag
			 * keeps an empty poll off the producers' line. */
			if (!isola__load_acquire(&ch->closed))
				return ISOLA_EAGAIN;
			uint64_t enq = isola__load_acquire(&ch->enq_pos);
			if ((enq & ~ISOLA__CLOSED_BIT) == pos)
				return ISOLA_ECLOSED;
			return ISOLA_EAGAIN;
		} else {
			pos = isola__load_relaxed(&ch->deq_pos);
		}
	}
	isola__last_recv_channel = ch;
	isola__last_recv_sender_cpu = cell->msg.reserved_;
	isola__msg_move(out, &cell->msg);
	/* Release: our reads of the cell complete before the producer of
	 * the next lap sees it free and overwrites it. */
	isola__store_release(&cell->seq, isola__turn(ch, pos + ch->mask + 1));
	/* Full barrier (locked increment); wakes a sender waiting for room,
	 * and then (ordered after it) whoever watches for room. */
	ck_ec32_inc(&ch->not_full, &isola__ec_mode);
	isola__channel_wake_room(ch);
	return 0;
}

struct op {
	isola_channel *ch;
	isola_msg *msg;
};

static int ready_send(void *arg)
{
	struct op *op = arg;
	return isola__channel_try_send(op->ch, op->msg);
}

int isola__channel_send_until(isola_channel *ch, isola_msg *msg,
			      const isola__deadline *d, int flags)
{
	int r = isola__channel_try_send(ch, msg);
	if (r != ISOLA_EAGAIN || d->now)
		return r;
	isola__add_relaxed(&ch->full_waits, 1); /* statistics only */
	struct op op = { ch, msg };
	return isola__wait(&ch->not_full, ready_send, &op, d, flags);
}

int isola__channel_recv_until(isola_channel *ch, isola_msg *out,
			      const isola__deadline *d, int flags)
{
	int r = isola__channel_try_recv(ch, out);
	if (r != ISOLA_EAGAIN || d->now)
		return r;
	size_t idx;
	return isola__channel_select_until(&ch, 1, out, d, flags, &idx);
}

int isola_channel_send(isola_channel *ch, isola_msg *msg, int64_t timeout_ns)
{
	if (ch == NULL || msg == NULL)
		return ISOLA_EINVAL;
	isola__deadline d;
	isola__deadline_init(&d, timeout_ns);
	return isola__channel_send_until(ch, msg, &d, 0);
}

int isola_channel_recv(isola_channel *ch, isola_msg *out, int64_t timeout_ns)
{
	if (ch == NULL || out == NULL)
		return ISOLA_EINVAL;
	isola__deadline d;
	isola__deadline_init(&d, timeout_ns);
	return isola__channel_recv_until(ch, out, &d, 0);
}

int isola_channel_close(isola_channel *ch)
{
	if (ch == NULL)
		return ISOLA_EINVAL;
	/* Atomic OR into the claim word: every later claim sees the bit,
	 * and no claim can slip in between (see channel.h). */
	__atomic_fetch_or(&ch->enq_pos, ISOLA__CLOSED_BIT, __ATOMIC_ACQ_REL);
	/* Release: a receiver that sees closed also sees CLOSED_BIT.  One
	 * that misses it is woken by the increments below and looks again. */
	isola__store_release(&ch->closed, 1);
	__atomic_add_fetch(&ch->publishes, 1, __ATOMIC_SEQ_CST); /* as in send */
	ck_ec32_inc(&ch->not_full, &isola__ec_mode);
	isola__channel_wake_room(ch);
	isola__channel_wake_all_receivers(ch);
	return 0;
}

int isola_channel_stats_get(isola_channel *ch, isola_channel_stats *out)
{
	if (ch == NULL || out == NULL)
		return ISOLA_EINVAL;
	uint64_t enq = isola__load_relaxed(&ch->enq_pos);
	uint64_t deq = isola__load_relaxed(&ch->deq_pos);
	uint64_t sent = enq & ~ISOLA__CLOSED_BIT;
	/* enq_pos counts claims; a claim is delivered moments later, so
	 * depth is clamped rather than trusted to be >= 0 mid-flight. */
	out->capacity = ch->mask + 1;
	out->sent = sent;
	out->received = deq;
	out->depth = sent > deq ? sent - deq : 0;
	out->peak_depth = isola__load_relaxed(&ch->peak_depth);
	if (out->peak_depth < out->depth)
		out->peak_depth = out->depth;
	out->full_waits = isola__load_relaxed(&ch->full_waits);
	out->closed = (enq & ISOLA__CLOSED_BIT) != 0;
	return 0;
}

void isola__channel_set_tags(isola_channel *ch, uint32_t tags)
{
	/* Relaxed: set before the channel is shared; sharing it (a send, a
	 * thread start) is the release that publishes it. */
	__atomic_store_n(&ch->tags, tags, __ATOMIC_RELAXED);
}

uint32_t isola__channel_tags(const isola_channel *ch)
{
	return __atomic_load_n(&ch->tags, __ATOMIC_RELAXED); /* see set_tags */
}
