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
