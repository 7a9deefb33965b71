/*
 * select.c - receive from whichever of several channels is ready first.
 *
 * A waiting select registers one node per channel on that channel's
 * watcher list and sleeps on its own event count.  Senders and close()
 * bump the event count of every registered watcher, but only look at
 * the list when nwatch != 0, so channels nobody selects on pay one
 * relaxed load per send.  Ordering: select increments nwatch (a locked
 * instruction, a full barrier) and then re-checks every channel; a
 * sender publishes its message, runs a locked increment, then reads
 * nwatch.  Either the select sees the message or the sender sees the
 * watcher (Dekker), so no wake-up is lost.
 */
#include "channels/channel.h"

#include "common/atomics.h"

struct select_op {
	isola_channel *const *chans;
	size_t n;
	size_t start;
	isola_msg *out;
	size_t *index;
	struct ck_ec32 ec;
	struct isola__watcher nodes[ISOLA_SELECT_MAX];
};

void isola__channel_notify_watchers(isola_channel *ch)
{
	pthread_mutex_lock(&ch->watch_lock);
	for (struct isola__watcher *w = ch->watchers; w != NULL; w = w->next)
		ck_ec32_inc(w->ec, &isola__ec_mode);
	pthread_mutex_unlock(&ch->watch_lock);
}

static void watch(isola_channel *ch, struct isola__watcher *node)
{
	pthread_mutex_lock(&ch->watch_lock);
	node->prev = NULL;
	node->next = ch->watchers;
	if (ch->watchers != NULL)
		ch->watchers->prev = node;
	ch->watchers = node;
	pthread_mutex_unlock(&ch->watch_lock);
	/* seq_cst RMW (a locked instruction, a full barrier) before the
	 * caller re-checks the queues; see the top of this file. */
	__atomic_add_fetch(&ch->nwatch, 1, __ATOMIC_SEQ_CST);
}

static void unwatch(isola_channel *ch, struct isola__watcher *node)
{
	pthread_mutex_lock(&ch->watch_lock);
	if (node->prev != NULL)
		node->prev->next = node->next;
	else
		ch->watchers = node->next;
	if (node->next != NULL)
		node->next->prev = node->prev;
	pthread_mutex_unlock(&ch->watch_lock);
	__atomic_sub_fetch(&ch->nwatch, 1, __ATOMIC_RELAXED);
}

/* One pass over the channels from a rotating start. */
static int try_all(void *arg)
{
	struct select_op *op = arg;
	size_t closed = 0;
	for (size_t k = 0; k < op->n; k++) {
		size_t i = (op->start + k) % op->n;
		int r = isola__channel_try_recv(op->chans[i], op->out);
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

static _Thread_local size_t select_rotation;

int isola__channel_select_until(isola_channel *const *chans, size_t n,
				isola_msg *out, const isola__deadline *d,
				int flags, size_t *index)
{
	if (chans == NULL || out == NULL || index == NULL || n == 0 ||
	    n > ISOLA_SELECT_MAX)
		return ISOLA_EINVAL;
	for (size_t i = 0; i < n; i++)
		if (chans[i] == NULL)
			return ISOLA_EINVAL;

	struct select_op op = {
		.chans = chans, .n = n, .out = out, .index = index,
		.start = select_rotation++ % n,
	};
	int r = try_all(&op);
	if (r != ISOLA_EAGAIN || d->now)
		return r;

	ck_ec32_init(&op.ec, 0);
	for (size_t i = 0; i < n; i++) {
		op.nodes[i].ec = &op.ec;
		watch(chans[i], &op.nodes[i]);
	}
	r = isola__wait(&op.ec, try_all, &op, d, flags);
	for (size_t i = 0; i < n; i++)
		unwatch(chans[i], &op.nodes[i]);
	return r;
}

int isola_channel_select(isola_channel *const *chans, size_t n,
			 isola_msg *out, int64_t timeout_ns, size_t *index)
{
	isola__deadline d;
	isola__deadline_init(&d, timeout_ns);
	return isola__channel_select_until(chans, n, out, &d, 0, index);
}
