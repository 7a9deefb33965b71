/*
 * channel.h - the layout of isola_channel (internal).
 *
 * The queue is Dmitry Vyukov's bounded MPMC queue: each cell carries a
 * sequence number that says whose turn it is.  For position pos, cell
 * pos & mask is free for the producer when seq == 2*pos, and full for
 * the consumer when seq == 2*pos + 1; the consumer then sets seq to
 * 2*(pos + capacity), handing the cell to the producer of the next lap.
 * (Vyukov counts in whole steps, which cannot tell "full, lap k" from
 * "free, lap k+1" when the capacity is 1; half steps can.)  The cell
 * stores seq - 2*(pos & mask), i.e. seq relative to its own index
 * (isola__turn), so a new channel's cells are all zero: they come from
 * zeroed pages the kernel maps only when first used, and a big channel
 * costs nothing until it fills.
 * Producers never wait for each other (unlike ck_ring's MPMC mode, a
 * producer preempted between claiming and filling a cell delays only
 * the consumer of that cell), which is what keeps throughput up when
 * there are more threads than cores.
 *
 * Closing sets ISOLA__CLOSED_BIT in enq_pos, in the same word producers
 * claim positions with, so a send either claimed its position before
 * the close (and its message will be received) or fails with ECLOSED:
 * no message is accepted and then lost.
 */
#ifndef ISOLA_CHANNELS_CHANNEL_H
#define ISOLA_CHANNELS_CHANNEL_H

#include "isola.h"

#include "channels/wait.h"

#include <ck_ec.h>
#include <pthread.h>
#include <stdint.h>

#define ISOLA__CACHELINE 64
#define ISOLA__REF_KIND_MASK ((uintptr_t)1)
#define ISOLA__CLOSED_BIT ((uint64_t)1 << 63)

struct isola__cell {
	uint64_t seq; /* atomic: turn number, see above */
	isola_msg msg;
} __attribute__((aligned(ISOLA__CACHELINE)));

/* A select() in progress, registered on each channel it watches. */
struct isola__watcher {
	struct ck_ec32 *ec; /* the select's event count, bumped on change */
	int *notified;      /* atomic: the select's "a sender woke me" flag */
	struct isola__watcher *next;
	struct isola__watcher *prev;
};

struct isola_channel {
	/* Producers' line. */
	uint64_t enq_pos;  /* atomic: next position to claim | CLOSED_BIT */
	uint64_t deq_seen; /* atomic hint: a recent deq_pos, for peak_depth */
	char pad0[ISOLA__CACHELINE - 2 * sizeof(uint64_t)];
	/* Consumers' line.  nspin lives here, not with nwatch: receivers
	 * change it on every wait, and senders read it only while someone
	 * sleeps, so it must not share the line every send reads. */
	uint64_t deq_pos; /* atomic: next position to take */
	uint32_t nspin;   /* atomic: receivers spinning on this channel */
	char pad1[ISOLA__CACHELINE - sizeof(uint64_t) - sizeof(uint32_t)];
	/* Bumped by every send and by close with a seq_cst RMW (a locked
	 * instruction): the full barrier between publishing and looking for
	 * receivers to wake (receivers sleep on their select's own event
	 * count, see select.c).  A counter of its own, on its own line, so
	 * the barrier touches nothing anyone else reads. */
	uint32_t publishes;
	char pad2[ISOLA__CACHELINE - sizeof(uint32_t)];
	/* Senders sleep on not_full (bumped by every recv and close). */
	struct ck_ec32 not_full;
	char pad3[ISOLA__CACHELINE - sizeof(struct ck_ec32)];
	/* Cold fields. */
	uint64_t mask;       /* capacity - 1 */
	uint64_t refs;       /* atomic: handles, including those in messages */
	uint64_t peak_depth; /* atomic */
	uint64_t full_waits; /* atomic */
	uint32_t nwatch;     /* atomic: watchers registered (sleeping selects) */
	uint32_t nwatch_room; /* atomic: watchers waiting for room (wait_any) */
	uint32_t closed;     /* atomic: set after CLOSED_BIT; read-mostly, so
				empty receivers need not touch enq_pos */
	uint32_t tags;       /* atomic: a layer above's bits (isola__channel_tags) */
	pthread_mutex_t watch_lock; /* guards watchers */
	struct isola__watcher *watchers;
	struct isola__watcher *room_watchers; /* guarded by watch_lock */
	struct isola__cell *cells;
};

/* Per thread: the channel of this thread's last receive, and 1 + the
 * CPU its sender ran on (a sender leaves it in the cell's msg.reserved_,
 * where the receiver finds it in a line it reads anyway).  select.c
 * uses it to decide whether to spin. */
extern _Thread_local const isola_channel *isola__last_recv_channel;
extern _Thread_local uint32_t isola__last_recv_sender_cpu;

/* The stored seq value of "cell free for position pos" (add 1: "full
 * for position pos"): see the top of this file. */
static inline uint64_t isola__turn(const isola_channel *ch, uint64_t pos)
{
	return 2 * (pos & ~ch->mask);
}

/* Move src's contents into dst (which is overwritten); src ends empty. */
void isola__msg_move(isola_msg *dst, isola_msg *src);
void isola__ref_retain(uintptr_t ref);
/* dst (overwritten) = a copy of src: the same bytes, new references to
 * the same blobs/channels.  0 or ISOLA_ENOMEM (dst left empty). */
int isola__msg_copy(isola_msg *dst, const isola_msg *src);
void isola__ref_release(uintptr_t ref);

/* No bytes and no references (what isola_msg_init leaves). */
bool isola__msg_is_empty(const isola_msg *msg);
/* References attached so far (what isola__msg_drop_refs counts from). */
size_t isola__msg_nrefs(const isola_msg *msg);
/* Release the references attached after the first keep (an encoder
 * undoing a failed part). */
void isola__msg_drop_refs(isola_msg *msg, size_t keep);

/* Tags: bits that the layer above sets once, right after creating the
 * channel and before sharing it, and that every handle of the channel
 * reads, in any interpreter (the Python binding keeps "no pickle" here,
 * so the setting travels with the channel).  Meaningless to this layer. */
void isola__channel_set_tags(isola_channel *ch, uint32_t tags);
uint32_t isola__channel_tags(const isola_channel *ch);

/* One non-blocking attempt: 0, ISOLA_EAGAIN or ISOLA_ECLOSED. */
int isola__channel_try_send(isola_channel *ch, isola_msg *msg);
int isola__channel_try_recv(isola_channel *ch, isola_msg *out);

/* send/recv with an explicit deadline and isola__wait flags (the Python
 * front uses ISOLA__WAIT_INTERRUPTIBLE). */
int isola__channel_send_until(isola_channel *ch, isola_msg *msg,
			      const isola__deadline *d, int flags);
int isola__channel_recv_until(isola_channel *ch, isola_msg *out,
			      const isola__deadline *d, int flags);
int isola__channel_select_until(isola_channel *const *chans, size_t n,
				isola_msg *out, const isola__deadline *d,
				int flags, size_t *index);

/* Wait until one of chans holds a message or is closed, taking nothing:
 * 0 with its *index, ISOLA_EAGAIN (deadline now), ISOLA_ETIMEDOUT or
 * ISOLA_EINTR.  A hint: another receiver may take the message first.
 * (asyncio's recv_async waits this way, so that a cancelled await
 * never holds a message it took.) */
int isola__channel_wait_any(isola_channel *const *chans, size_t n, const isola__deadline *d,
			    int flags, size_t *index);
/* The same, where bit i of room set means: wait until chans[i] has room
 * for a message (or is closed) instead.  (send_async waits this way.) */
int isola__channel_wait_any_room(isola_channel *const *chans, size_t n, uint64_t room,
				 const isola__deadline *d, int flags, size_t *index);
/* After a receive freed a cell (and a full barrier): wake whoever waits
 * for room on ch (select.c); cheap when nobody does. */
void isola__channel_notify_room(isola_channel *ch);
static inline void isola__channel_wake_room(isola_channel *ch)
{
	/* seq_cst load after the caller's full barrier: pairs with a
	 * watcher's seq_cst increment before it re-checks for room. */
	if (__atomic_load_n(&ch->nwatch_room, __ATOMIC_SEQ_CST) != 0)
		isola__channel_notify_room(ch);
}

/* After publishing a message (and a full barrier): wake one sleeping
 * receiver of ch, unless none sleeps or one spins (select.c). */
void isola__channel_wake_receiver(isola_channel *ch);
/* A receiver spinning on ch (or about to) holds it with add: senders
 * then wake no sleeper.  drop passes on the wake-up a sender may have
 * skipped meanwhile, if a message is waiting. */
void isola__channel_spinner_add(isola_channel *ch);
void isola__channel_spinner_drop(isola_channel *ch);
/* After closing ch: wake every sleeping receiver. */
void isola__channel_wake_all_receivers(isola_channel *ch);

#endif
