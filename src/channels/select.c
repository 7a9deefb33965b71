/*
 * select.c - receive from whichever of several channels is ready first;
 * every blocking receive goes through here (a receive is a select of one).
 *
 * A receiver first spins, counted in the nspin of each channel where
 * someone sleeps (elsewhere there is no wake-up to save), then
 * registers one node per channel on that channel's watcher list and
 * sleeps on its own event count.  A sender wakes ONE sleeping receiver,
 * and none while a receiver spins on the channel (the spinner will take
 * the message): a pool of parked workers does not stampede on every
 * task, and a busy one makes no system call per task.
 *
 * Wake-one needs two rules so that no message is left behind while a
 * receiver sleeps:
 *  - A sender picks a node whose select is not already notified (the
 *    select's `notified` flag, claimed with a CAS), so two messages
 *    wake two receivers.  A sleeping select clears its flag before
 *    every re-check of its channels.
 *  - A receiver that spun or slept may leave with another channel's
 *    message, or with none (timeout), after a sender counted on it; so
 *    whenever it leaves the slow path it passes the baton: a channel
 *    it watched that still holds a message and has sleepers, and no
 *    spinner, gets one of them woken.
 * Ordering (Dekker, both sides): a sender publishes the message, then
 * runs a locked increment (a full barrier), then reads nwatch and
 * nspin; a receiver changes nwatch/nspin with seq_cst RMWs (locked
 * instructions) before it re-checks the channels.  So either the
 * receiver sees the message or the sender sees the receiver.  Likewise
 * a sender's CAS of `notified` and the select's seq_cst clear of it,
 * each followed by the other side's check.
 */
#include "channels/channel.h"
#include "channels/wait_policy.h"

#include "common/atomics.h"

struct select_op {
	isola_channel *const *chans;
	size_t n;
	uint64_t room; /* wait_any: bit i set = wait for room on chans[i] */
	size_t start;
	isola_msg *out;
	size_t *index;
	struct ck_ec32 ec;
	int notified; /* atomic: a sender chose to wake this select */
	struct isola__watcher *nodes; /* n of them, registered while asleep */
};

/* Wake one registered select not already notified; with all = true (on
 * close), every one. */
static void notify(isola_channel *ch, bool all)
{
	pthread_mutex_lock(&ch->watch_lock);
	for (struct isola__watcher *w = ch->watchers; w != NULL; w = w->next) {
		int expect = 0;
		/* seq_cst: pairs with the select's clear before it re-checks
		 * (see the top of this file). */
		bool mine = __atomic_compare_exchange_n(w->notified, &expect, 1, false,
							__ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
		if (mine || all)
			ck_ec32_inc(w->ec, &isola__ec_mode);
		if (mine && !all)
			break;
	}
	pthread_mutex_unlock(&ch->watch_lock);
}

void isola__channel_wake_receiver(isola_channel *ch)
{
	/* seq_cst loads: after the caller's full barrier (see the top). */
	if (__atomic_load_n(&ch->nwatch, __ATOMIC_SEQ_CST) != 0 &&
	    __atomic_load_n(&ch->nspin, __ATOMIC_SEQ_CST) == 0)
		notify(ch, false);
}

void isola__channel_wake_all_receivers(isola_channel *ch)
{
	if (__atomic_load_n(&ch->nwatch, __ATOMIC_SEQ_CST) != 0)
		notify(ch, true);
}

/* Room watchers are few (an asyncio helper thread): a receive wakes
 * them all. */
void isola__channel_notify_room(isola_channel *ch)
{
	pthread_mutex_lock(&ch->watch_lock);
	for (struct isola__watcher *w = ch->room_watchers; w != NULL; w = w->next)
		ck_ec32_inc(w->ec, &isola__ec_mode);
	pthread_mutex_unlock(&ch->watch_lock);
}

static void watch(isola_channel *ch, struct isola__watcher *node, bool room)
{
	struct isola__watcher **head = room ? &ch->room_watchers : &ch->watchers;
	pthread_mutex_lock(&ch->watch_lock);
	node->prev = NULL;
	node->next = *head;
	if (*head != NULL)
		(*head)->prev = node;
	*head = node;
	pthread_mutex_unlock(&ch->watch_lock);
	/* seq_cst RMW (a locked instruction, a full barrier) before the
	 * caller re-checks the queues; see the top of this file (for room:
	 * the receiver frees a cell, then a full barrier, then reads
	 * nwatch_room). */
	__atomic_add_fetch(room ? &ch->nwatch_room : &ch->nwatch, 1, __ATOMIC_SEQ_CST);
}

static void unwatch(isola_channel *ch, struct isola__watcher *node, bool room)
{
	struct isola__watcher **head = room ? &ch->room_watchers : &ch->watchers;
	pthread_mutex_lock(&ch->watch_lock);
	if (node->prev != NULL)
		node->prev->next = node->next;
	else
		*head = node->next;
	if (node->next != NULL)
		node->next->prev = node->prev;
	pthread_mutex_unlock(&ch->watch_lock);
	__atomic_sub_fetch(room ? &ch->nwatch_room : &ch->nwatch, 1, __ATOMIC_RELAXED);
}

/* A message is waiting at the consumers' position (a hint). */
static bool has_message(isola_channel *ch)
{
	uint64_t pos = isola__load_acquire(&ch->deq_pos);
	return isola__load_acquire(&ch->cells[pos & ch->mask].seq) == isola__turn(ch, pos) + 1;
}

/* The producers' position has a free cell (a hint), or ch is closed. */
static bool has_room_or_closed(isola_channel *ch)
{
	uint64_t pos = isola__load_acquire(&ch->enq_pos);
	if (pos & ISOLA__CLOSED_BIT)
		return true;
	return isola__load_acquire(&ch->cells[pos & ch->mask].seq) == isola__turn(ch, pos);
}

static bool wants_room(const struct select_op *op, size_t i)
{
	return (op->room >> i) & 1;
}

/* Leaving the slow path: hand on any wake-up we may have absorbed. */
static void pass_baton(const struct select_op *op)
{
	for (size_t i = 0; i < op->n; i++)
		if (!wants_room(op, i) && has_message(op->chans[i]))
			isola__channel_wake_receiver(op->chans[i]);
}

/* One pass over the channels from a rotating start. */
static int try_all(void *arg)
{
	struct select_op *op = arg;
	size_t closed = 0;
	for (size_t k = 0; k < op->n; k++) {
		size_t i = (op->start + k) % op->n;
		int r;
		if (op->out == NULL && wants_room(op, i)) /* room or closed */
			r = has_room_or_closed(op->chans[i]) ? 0 : ISOLA_EAGAIN;
		else if (op->out == NULL) /* wait_any: ready means a message or closed */
			r = has_message(op->chans[i]) || isola__load_acquire(&op->chans[i]->closed)
				    ? 0 : ISOLA_EAGAIN;
		else
			r = isola__channel_try_recv(op->chans[i], op->out);
		if (r == 0) {
			*op->index = i;
			op->start = i + 1; /* next time, start past the winner */
			return 0;
		}
		if (r == ISOLA_ECLOSED)
			closed++;
	}
	return closed == op->n ? ISOLA_ECLOSED : ISOLA_EAGAIN;
}

/* The sleeping select's check: clear `notified` first, so a sender
 * that finds it clear wakes us, and one that found it set published
 * its message before our check below. */
static int rearm_and_try_all(void *arg)
{
	struct select_op *op = arg;
	__atomic_store_n(&op->notified, 0, __ATOMIC_SEQ_CST);
	return try_all(op);
}

void isola__channel_spinner_add(isola_channel *ch)
{
	/* seq_cst RMW: a full barrier before the checks that follow. */
	__atomic_add_fetch(&ch->nspin, 1, __ATOMIC_SEQ_CST);
}

void isola__channel_spinner_drop(isola_channel *ch)
{
	/* seq_cst RMW, then the check: a sender that saw us spinning and
	 * woke nobody published before this; hand its wake-up on. */
	__atomic_sub_fetch(&ch->nspin, 1, __ATOMIC_SEQ_CST);
	if (has_message(ch))
		isola__channel_wake_receiver(ch);
}

static _Thread_local size_t select_rotation;

static int select_or_wait(isola_channel *const *chans, size_t n, uint64_t room,
			  isola_msg *out, const isola__deadline *d, int flags, size_t *index);

int isola__channel_select_until(isola_channel *const *chans, size_t n,
				isola_msg *out, const isola__deadline *d,
				int flags, size_t *index)
{
	if (out == NULL)
		return ISOLA_EINVAL;
	return select_or_wait(chans, n, 0, out, d, flags, index);
}

int isola__channel_wait_any(isola_channel *const *chans, size_t n, const isola__deadline *d,
			    int flags, size_t *index)
{
	return select_or_wait(chans, n, 0, NULL, d, flags, index);
}

int isola__channel_wait_any_room(isola_channel *const *chans, size_t n, uint64_t room,
				 const isola__deadline *d, int flags, size_t *index)
{
	return select_or_wait(chans, n, room, NULL, d, flags, index);
}

/*
 * Whether the message this thread last received, from one of chans,
 * came from a sender on this thread's CPU (channel.h).  Then the next
 * one most likely will too (two threads exchanging messages that the
 * scheduler put on one core).  The receiver first moves to another CPU
 * (isola__policy_spread, rate-limited): some kernels part such a pair
 * soon (Intel VMs here), others keep it together on purpose or pack it
 * (an AMD EPYC VM: 5.7 us a round trip on one core, 0.6 us apart; issue
 * #32); when it did not move and the machine is contended, it yields at
 * once (ISOLA__WAIT_PARTNER_HERE).  Not for a pool worker's
 * idle spin (SPIN_ONLY), whose next sender is whoever submits next, nor
 * for futures (HANDOFF).
 */
static bool sender_is_here(isola_channel *const *chans, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (isola__last_recv_channel == chans[i])
			return isola__cpu_is_mine(isola__last_recv_sender_cpu);
	return false;
}

/* select (out != NULL: take the message) or wait_any (out == NULL; for
 * room where room's bit is set). */
static int select_or_wait(isola_channel *const *chans, size_t n, uint64_t room,
			  isola_msg *out, const isola__deadline *d, int flags, size_t *index)
{
	if (chans == NULL || index == NULL || n == 0 || n > ISOLA_SELECT_MAX)
		return ISOLA_EINVAL;
	for (size_t i = 0; i < n; i++)
		if (chans[i] == NULL)
			return ISOLA_EINVAL;

	/* The nodes stay uninitialised until needed: a receive that finds
	 * a message must not pay for clearing 64 of them. */
	struct isola__watcher nodes[ISOLA_SELECT_MAX];
	struct select_op op = {
		.chans = chans, .n = n, .room = room, .out = out, .index = index,
		.start = n > 1 ? select_rotation++ % n : 0, .nodes = nodes,
	};
	int r = try_all(&op);
	if (r != ISOLA_EAGAIN || d->now)
		return r;

	if (!(flags & ISOLA__WAIT_NO_SPIN)) {
		/* Spin before registering: senders take a channel's watcher
		 * lock only when a receiver may sleep. */
		/* Counted as a spinner only where someone sleeps: elsewhere
		 * there is no wake-up to save, and not counting is always
		 * safe (at worst a sleeper is woken for nothing). */
		uint64_t counted = 0;
		for (size_t i = 0; i < n; i++)
			if (!wants_room(&op, i) &&
			    __atomic_load_n(&chans[i]->nwatch, __ATOMIC_RELAXED) != 0) {
				isola__channel_spinner_add(chans[i]);
				counted |= (uint64_t)1 << i;
			}
		/* Move off the partner's CPU, contended or not: the thread that
		 * took this CPU from the spinner (the gap that marked the process
		 * contended) may be the partner itself. */
		if (room == 0 && !(flags & (ISOLA__WAIT_SPIN_ONLY | ISOLA__WAIT_HANDOFF)) &&
		    sender_is_here(chans, n) && !isola__policy_spread() && isola__cpu_contended())
			flags |= ISOLA__WAIT_PARTNER_HERE;
		r = isola__spin(try_all, &op, d, flags);
		for (size_t i = 0; i < n; i++)
			if (counted & ((uint64_t)1 << i))
				isola__channel_spinner_drop(chans[i]);
		if (r != ISOLA_EAGAIN || (flags & ISOLA__WAIT_SPIN_ONLY))
			return r;
	}

	ck_ec32_init(&op.ec, 0);
	for (size_t i = 0; i < n; i++) {
		op.nodes[i].ec = &op.ec;
		op.nodes[i].notified = &op.notified;
		watch(chans[i], &op.nodes[i], wants_room(&op, i));
	}
	r = isola__wait(&op.ec, rearm_and_try_all, &op, d, flags | ISOLA__WAIT_NO_SPIN);
	for (size_t i = 0; i < n; i++)
		unwatch(chans[i], &op.nodes[i], wants_room(&op, i));
	pass_baton(&op);
	return r;
}

int isola_channel_select(isola_channel *const *chans, size_t n,
			 isola_msg *out, int64_t timeout_ns, size_t *index)
{
	isola__deadline d;
	isola__deadline_init(&d, timeout_ns);
	return isola__channel_select_until(chans, n, out, &d, 0, index);
}
