/*
 * test_channel_stress.c - many threads on one channel: every message is
 * delivered exactly once and in order per producer; close while threads
 * block; blobs crossing threads.  Thread counts are test parameters and
 * exceed the core count on purpose (ISOLA_STRESS_SCALE multiplies the
 * message counts).
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "channels/blob.h"
#include "isola.h"

struct item {
	uint32_t producer;
	uint32_t seq;
};

struct stress {
	isola_channel *ch;
	int producers, consumers;
	uint32_t per_producer;
	uint8_t *seen; /* [producer * per_producer + seq], atomic adds */
	int errors;    /* atomic: problems seen off the test thread */
	int producers_done;
};

struct worker {
	struct stress *s;
	int id;
};

static void bad(struct stress *s)
{
	__atomic_add_fetch(&s->errors, 1, __ATOMIC_SEQ_CST);
}

static void *producer(void *arg)
{
	struct worker *w = arg;
	struct stress *s = w->s;
	for (uint32_t i = 0; i < s->per_producer; i++) {
		struct item it = { (uint32_t)w->id, i };
		isola_msg m;
		isola_msg_init(&m);
		isola_msg_set_bytes(&m, &it, sizeof(it));
		if (isola_channel_send(s->ch, &m, -1) != 0)
			bad(s);
	}
	/* The last producer closes the channel: consumers then drain. */
	if (__atomic_add_fetch(&s->producers_done, 1, __ATOMIC_SEQ_CST) ==
	    s->producers)
		isola_channel_close(s->ch);
	return NULL;
}

static void *consumer(void *arg)
{
	struct worker *w = arg;
	struct stress *s = w->s;
	int64_t *last = malloc(sizeof(int64_t) * (size_t)s->producers);
	for (int p = 0; p < s->producers; p++)
		last[p] = -1;
	for (;;) {
		isola_msg m;
		isola_msg_init(&m);
		int r = isola_channel_recv(s->ch, &m, -1);
		if (r == ISOLA_ECLOSED)
			break;
		if (r != 0) {
			bad(s);
			break;
		}
		const void *p;
		size_t len;
		isola_msg_bytes(&m, &p, &len);
		struct item it;
		memcpy(&it, p, sizeof(it));
		if (len != sizeof(it) || it.producer >= (uint32_t)s->producers ||
		    it.seq >= s->per_producer || (int64_t)it.seq <= last[it.producer])
			bad(s); /* out of order per producer, or garbage */
		else
			last[it.producer] = it.seq;
		__atomic_add_fetch(&s->seen[it.producer * s->per_producer + it.seq],
				   1, __ATOMIC_SEQ_CST);
		isola_msg_clear(&m);
	}
	free(last);
	return NULL;
}

struct shape {
	int producers, consumers;
	size_t capacity;
};

ParameterizedTestParameters(stress, exactly_once_in_order)
{
	static struct shape shapes[] = {
		{ 1, 1, 64 }, { 2, 1, 16 }, { 1, 4, 16 },
		{ 4, 4, 8 },  { 8, 2, 4 },  { 3, 3, 1 },
	};
	return cr_make_param_array(struct shape, shapes,
				   sizeof(shapes) / sizeof(shapes[0]));
}

ParameterizedTest(struct shape *sh, stress, exactly_once_in_order, .timeout = 120)
{
	const char *scale = getenv("ISOLA_STRESS_SCALE");
	uint32_t per = 20000 * (uint32_t)(scale ? atoi(scale) : 1);
	if (per == 0)
		per = 20000;
	struct stress s = { .producers = sh->producers,
			    .consumers = sh->consumers,
			    .per_producer = per };
	cr_assert_eq(isola_channel_create(sh->capacity, &s.ch), 0);
	s.seen = calloc((size_t)sh->producers * per, 1);
	pthread_t t[16];
	struct worker w[16];
	int n = 0;
	for (int i = 0; i < sh->consumers; i++, n++) {
		w[n] = (struct worker){ &s, i };
		pthread_create(&t[n], NULL, consumer, &w[n]);
	}
	for (int i = 0; i < sh->producers; i++, n++) {
		w[n] = (struct worker){ &s, i };
		pthread_create(&t[n], NULL, producer, &w[n]);
	}
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	cr_assert_eq(s.errors, 0);
	for (size_t i = 0; i < (size_t)sh->producers * per; i++)
		cr_assert_eq(s.seen[i], 1, "message %zu seen %d times", i, s.seen[i]);
	isola_channel_stats st;
	isola_channel_stats_get(s.ch, &st);
	cr_assert_eq(st.sent, (uint64_t)sh->producers * per);
	cr_assert_eq(st.received, st.sent);
	cr_assert_eq(st.depth, 0);
	cr_assert_leq(st.peak_depth, st.capacity);
	free(s.seen);
	isola_channel_release(s.ch);
}

struct blocked {
	isola_channel *ch;
	int send; /* 1: send into a full channel, 0: recv from an empty one */
	int result;
};

static void *block_on(void *arg)
{
	struct blocked *b = arg;
	isola_msg m;
	isola_msg_init(&m);
	if (b->send) {
		isola_msg_set_bytes(&m, "x", 1);
		b->result = isola_channel_send(b->ch, &m, -1);
	} else {
		b->result = isola_channel_recv(b->ch, &m, -1);
	}
	isola_msg_clear(&m);
	return NULL;
}

Test(stress, close_while_many_block, .timeout = 30)
{
	isola_channel *full, *empty;
	cr_assert_eq(isola_channel_create(1, &full), 0);
	cr_assert_eq(isola_channel_create(1, &empty), 0);
	isola_msg m;
	isola_msg_init(&m);
	isola_msg_set_bytes(&m, "f", 1);
	cr_assert_eq(isola_channel_send(full, &m, 0), 0);
	enum { N = 6 };
	struct blocked b[2 * N];
	pthread_t t[2 * N];
	for (int i = 0; i < 2 * N; i++) {
		b[i] = (struct blocked){ i < N ? full : empty, i < N, 1 };
		pthread_create(&t[i], NULL, block_on, &b[i]);
	}
	struct timespec ts = { 0, 50 * 1000000 }; /* let them all block */
	nanosleep(&ts, NULL);
	isola_channel_close(full);
	isola_channel_close(empty);
	for (int i = 0; i < 2 * N; i++) {
		pthread_join(t[i], NULL);
		cr_assert_eq(b[i].result, ISOLA_ECLOSED, "thread %d: %s", i,
			     isola_err_name(b[i].result));
	}
	isola_msg r;
	isola_msg_init(&r);
	cr_assert_eq(isola_channel_recv(full, &r, 0), 0, "queued one survives");
	isola_msg_clear(&r);
	isola_channel_release(full);
	isola_channel_release(empty);
}

/* Receivers sleeping on one channel: a sender wakes one of them per
 * message, so each message must reach a distinct sleeper, and every
 * sleeper must get one (a wake-up given to a receiver that is already
 * awake, and lost, would leave one asleep forever). */
Test(stress, each_message_wakes_a_sleeper, .timeout = 30)
{
	isola_channel *ch;
	cr_assert_eq(isola_channel_create(64, &ch), 0);
	enum { N = 8 };
	struct blocked b[N];
	pthread_t t[N];
	for (int i = 0; i < N; i++) {
		b[i] = (struct blocked){ ch, 0, 1 };
		pthread_create(&t[i], NULL, block_on, &b[i]);
	}
	struct timespec ts = { 0, 50 * 1000000 }; /* past the spin: asleep */
	nanosleep(&ts, NULL);
	for (int i = 0; i < N; i++) { /* back to back: no time to re-arm */
		isola_msg m;
		isola_msg_init(&m);
		isola_msg_set_bytes(&m, "w", 1);
		cr_assert_eq(isola_channel_send(ch, &m, 0), 0);
	}
	for (int i = 0; i < N; i++) {
		pthread_join(t[i], NULL);
		cr_assert_eq(b[i].result, 0, "receiver %d: %s", i, isola_err_name(b[i].result));
	}
	isola_channel_stats st;
	isola_channel_stats_get(ch, &st);
	cr_assert_eq(st.received, N);
	isola_channel_release(ch);
}

/* Mixed receivers on channels a and b: blocking recv on a, select on
 * {a, b} with and without short timeouts (a select woken for one
 * channel may leave with the other's message, or time out: the wake-up
 * must be passed on).  Producers pace their sends so receivers keep
 * falling asleep.  Every message arrives exactly once. */
struct mixed {
	isola_channel *a, *b;
	int kind; /* 0: recv a, 1: select a+b, 2: select a+b, 30 us timeouts */
	long got;
	long *received;   /* atomic, shared */
	int *senders_done; /* atomic: kind 2 leaves then */
};

static void *mixed_receiver(void *arg)
{
	struct mixed *m = arg;
	isola_channel *both[2] = { m->a, m->b };
	for (;;) {
		isola_msg msg;
		isola_msg_init(&msg);
		size_t idx;
		int r = m->kind == 0   ? isola_channel_recv(m->a, &msg, -1)
			: m->kind == 1 ? isola_channel_select(both, 2, &msg, -1, &idx)
				       : isola_channel_select(both, 2, &msg, 30000, &idx);
		if (r == ISOLA_ETIMEDOUT) {
			/* Leave the rest to the blocking receivers: they alone
			 * must drain what is left, so a lost wake-up shows. */
			if (__atomic_load_n(m->senders_done, __ATOMIC_ACQUIRE))
				break;
			continue;
		}
		if (r != 0)
			break; /* closed and drained */
		isola_msg_clear(&msg);
		m->got++;
		__atomic_add_fetch(m->received, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

enum { PER_SENDER = 50 }; /* short rounds: each end is a chance to strand */

static void *paced_sender(void *arg)
{
	isola_channel *ch = arg;
	for (int i = 0; i < PER_SENDER; i++) {
		isola_msg msg;
		isola_msg_init(&msg);
		isola_msg_set_bytes(&msg, "p", 1);
		if (isola_channel_send(ch, &msg, -1) != 0)
			break;
		if (i % 8 == 0) { /* let receivers fall asleep now and then */
			struct timespec ts = { 0, (i % 3) * 100000 };
			nanosleep(&ts, NULL);
		}
	}
	return NULL;
}

static void mixed_round(void)
{
	isola_channel *a, *b;
	cr_assert_eq(isola_channel_create(16, &a), 0);
	cr_assert_eq(isola_channel_create(16, &b), 0);
	long received = 0;
	int senders_done = 0;
	enum { R = 6, S = 4 };
	struct mixed m[R];
	pthread_t rt[R], st[S];
	for (int i = 0; i < R; i++) {
		m[i] = (struct mixed){ a, b, i % 3, 0, &received, &senders_done };
		pthread_create(&rt[i], NULL, mixed_receiver, &m[i]);
	}
	for (int i = 0; i < S; i++)
		pthread_create(&st[i], NULL, paced_sender, i % 2 ? b : a);
	for (int i = 0; i < S; i++)
		pthread_join(st[i], NULL);
	__atomic_store_n(&senders_done, 1, __ATOMIC_RELEASE);
	/* All sent: every message must be taken while the receivers still
	 * run (a stranded one would stay queued with its receivers asleep). */
	for (int waited = 0; __atomic_load_n(&received, __ATOMIC_RELAXED) < S * PER_SENDER; waited++) {
		cr_assert_lt(waited, 5000, "stranded: %ld of %d received",
			     __atomic_load_n(&received, __ATOMIC_RELAXED), S * PER_SENDER);
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
	isola_channel_close(a);
	isola_channel_close(b);
	long total = 0;
	for (int i = 0; i < R; i++) {
		pthread_join(rt[i], NULL);
		total += m[i].got;
	}
	cr_assert_eq(total, S * PER_SENDER);
	isola_channel_release(a);
	isola_channel_release(b);
}

Test(stress, wake_ups_pass_between_select_and_recv, .timeout = 120)
{
	for (int round = 0; round < 80; round++)
		mixed_round();
}

struct blob_relay {
	isola_channel *ch;
	int count;
};

static void *blob_consumer(void *arg)
{
	struct blob_relay *r = arg;
	isola_msg m;
	isola_msg_init(&m);
	while (isola_channel_recv(r->ch, &m, -1) == 0) {
		r->count++;
		isola_msg_clear(&m); /* drops the blob reference here */
	}
	return NULL;
}

static int blob_freed;
static void note_free(void *ctx, void *data, size_t len)
{
	(void)ctx;
	(void)len;
	free(data);
	__atomic_add_fetch(&blob_freed, 1, __ATOMIC_SEQ_CST);
}

Test(stress, blob_references_cross_threads, .timeout = 60)
{
	isola_channel *ch;
	cr_assert_eq(isola_channel_create(8, &ch), 0);
	struct blob_relay r[3] = { { ch, 0 }, { ch, 0 }, { ch, 0 } };
	pthread_t t[3];
	for (int i = 0; i < 3; i++)
		pthread_create(&t[i], NULL, blob_consumer, &r[i]);
	blob_freed = 0;
	isola_blob *blob;
	cr_assert_eq(isola_blob_wrap(malloc(1 << 20), 1 << 20, note_free, NULL,
				     &blob), 0);
	for (int i = 0; i < 5000; i++) {
		isola_msg m;
		isola_msg_init(&m);
		isola_msg_attach_blob(&m, blob);
		cr_assert_eq(isola_channel_send(ch, &m, -1), 0);
	}
	isola_channel_close(ch);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	cr_assert_eq(r[0].count + r[1].count + r[2].count, 5000);
	cr_assert_eq(blob->refs, 1);
	cr_assert_eq(blob_freed, 0);
	isola_blob_release(blob);
	cr_assert_eq(blob_freed, 1);
	isola_channel_release(ch);
}

static void *release_in_thread(void *arg)
{
	isola_channel_release(arg);
	return NULL;
}

Test(stress, last_handle_dropped_on_another_thread_frees_undelivered)
{
	isola_channel *ch;
	cr_assert_eq(isola_channel_create(16, &ch), 0);
	blob_freed = 0;
	isola_blob *blob;
	cr_assert_eq(isola_blob_wrap(malloc(64), 64, note_free, NULL, &blob), 0);
	for (int i = 0; i < 10; i++) {
		isola_msg m;
		isola_msg_init(&m);
		isola_msg_set_bytes(&m, "0123456789012345678901234567890123456789"
					"0123456789", 50); /* heap payload */
		isola_msg_attach_blob(&m, blob);
		cr_assert_eq(isola_channel_send(ch, &m, 0), 0);
	}
	isola_blob_release(blob);
	cr_assert_eq(blob_freed, 0, "messages still hold the blob");
	pthread_t t;
	pthread_create(&t, NULL, release_in_thread, ch);
	pthread_join(t, NULL);
	cr_assert_eq(blob_freed, 1);
}
