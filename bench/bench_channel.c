/*
 * bench_channel.c - isola channels against a mutex+condvar queue (the
 * baseline, built here) and a plain ck SPSC ring (the floor), in one run:
 *   1. 1 producer / 1 consumer, 16-byte messages: throughput
 *   2. 2 producers sharing one core / 1 consumer: throughput
 *   3. ping-pong round trip, receiver blocking (spinning ring for the floor)
 *   4. 1 MiB payload: owned buffer (copied) vs blob reference
 *   5. ping-pong through today's channel core and through a copy with the
 *      wait code of 4a5d8e0 (before #20's busy-machine policy; bench/
 *      baseline, libisola_chanbase), alternating, with the ck ring floor
 *   6. the same, the pair started on one CPU (issue #32: a kernel that
 *      packs threads may keep them there)
 * Prints a table, or JSON with --json.  --quick shortens every run.
 */
#include <ck_ring.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "isola.h"

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void pin(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu % CPU_SETSIZE, &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

static int ncpus(void)
{
	cpu_set_t set;
	sched_getaffinity(0, sizeof(set), &set);
	return CPU_COUNT(&set);
}

/* ---- baseline: bounded ring under one mutex, two condvars ---------- */
struct mq {
	pthread_mutex_t lock;
	pthread_cond_t not_empty, not_full;
	isola_msg *slots;
	size_t cap, head, tail, count;
	int waiting_recv, waiting_send;
};

static void mq_init(struct mq *q, size_t cap)
{
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->not_empty, NULL);
	pthread_cond_init(&q->not_full, NULL);
	q->slots = calloc(cap, sizeof(isola_msg));
	q->cap = cap;
	q->head = q->tail = q->count = 0;
	q->waiting_recv = q->waiting_send = 0;
}

static void mq_send(struct mq *q, isola_msg *m)
{
	pthread_mutex_lock(&q->lock);
	while (q->count == q->cap) {
		q->waiting_send++;
		pthread_cond_wait(&q->not_full, &q->lock);
		q->waiting_send--;
	}
	q->slots[q->tail] = *m;
	q->tail = (q->tail + 1) % q->cap;
	q->count++;
	if (q->waiting_recv)
		pthread_cond_signal(&q->not_empty);
	pthread_mutex_unlock(&q->lock);
	isola_msg_init(m);
}

static void mq_recv(struct mq *q, isola_msg *m)
{
	pthread_mutex_lock(&q->lock);
	while (q->count == 0) {
		q->waiting_recv++;
		pthread_cond_wait(&q->not_empty, &q->lock);
		q->waiting_recv--;
	}
	*m = q->slots[q->head];
	q->head = (q->head + 1) % q->cap;
	q->count--;
	if (q->waiting_send)
		pthread_cond_signal(&q->not_full);
	pthread_mutex_unlock(&q->lock);
}

static void mq_destroy(struct mq *q)
{
	free(q->slots);
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->not_empty);
	pthread_cond_destroy(&q->not_full);
}

/* ---- throughput: P producers, one consumer ------------------------- */
enum impl { IMPL_ISOLA, IMPL_MUTEX, IMPL_RING };
static const char *impl_name[] = { "isola channel", "mutex+condvar", "ck SPSC ring" };

struct tp {
	enum impl impl;
	isola_channel *ch;
	struct mq mq;
	ck_ring_t ring;
	ck_ring_buffer_t *ring_buf;
	long per_producer;
	int producer_cpu;
};

static void *tp_producer(void *arg)
{
	struct tp *t = arg;
	if (t->producer_cpu >= 0)
		pin(t->producer_cpu);
	unsigned char payload[16] = { 1 };
	for (long i = 0; i < t->per_producer; i++) {
		if (t->impl == IMPL_RING) {
			while (!ck_ring_enqueue_spsc(&t->ring, t->ring_buf,
						     (void *)(intptr_t)(i + 1)))
				ck_pr_stall();
			continue;
		}
		isola_msg m;
		isola_msg_init(&m);
		isola_msg_set_bytes(&m, payload, sizeof(payload));
		if (t->impl == IMPL_ISOLA)
			isola_channel_send(t->ch, &m, -1);
		else
			mq_send(&t->mq, &m);
	}
	return NULL;
}

/* Messages per second through impl with nprod producers. */
static double throughput(enum impl impl, int nprod, long total, int same_core)
{
	struct tp t = { .impl = impl, .per_producer = total / nprod };
	size_t cap = 1024;
	if (impl == IMPL_ISOLA)
		isola_channel_create(cap, &t.ch);
	else if (impl == IMPL_MUTEX)
		mq_init(&t.mq, cap);
	else {
		t.ring_buf = calloc(cap, sizeof(ck_ring_buffer_t));
		ck_ring_init(&t.ring, (unsigned)cap);
	}
	int cpus = ncpus();
	/* consumer on cpu 0, producers on cpu 1 (all of them, for the
	 * same-core case); with one producer it is the same placement. */
	(void)same_core;
	t.producer_cpu = cpus > 1 ? 1 : -1;
	pin(0);
	pthread_t th[8];
	int64_t t0 = now_ns();
	for (int i = 0; i < nprod; i++)
		pthread_create(&th[i], NULL, tp_producer, &t);
	long n = t.per_producer * nprod;
	for (long i = 0; i < n; i++) {
		if (impl == IMPL_RING) {
			void *v;
			while (!ck_ring_dequeue_spsc(&t.ring, t.ring_buf, &v))
				ck_pr_stall();
			continue;
		}
		isola_msg m;
		if (impl == IMPL_ISOLA) {
			isola_msg_init(&m);
			isola_channel_recv(t.ch, &m, -1);
		} else {
			mq_recv(&t.mq, &m);
		}
		isola_msg_clear(&m);
	}
	int64_t dt = now_ns() - t0;
	for (int i = 0; i < nprod; i++)
		pthread_join(th[i], NULL);
	if (impl == IMPL_ISOLA)
		isola_channel_release(t.ch);
	else if (impl == IMPL_MUTEX)
		mq_destroy(&t.mq);
	else
		free(t.ring_buf);
	/* unpin the main thread */
	cpu_set_t all;
	CPU_ZERO(&all);
	for (int i = 0; i < cpus; i++)
		CPU_SET(i, &all);
	pthread_setaffinity_np(pthread_self(), sizeof(all), &all);
	return (double)n / ((double)dt / 1e9);
}

/* ---- ping-pong ------------------------------------------------------ */
struct pp {
	enum impl impl;
	isola_channel *a, *b;
	struct mq qa, qb;
	ck_ring_t ra, rb;
	ck_ring_buffer_t *bufa, *bufb;
	long rounds;
	cpu_set_t all; /* together: the CPUs to let the pair go to */
	int together;
};

static void *pp_echo(void *arg)
{
	struct pp *p = arg;
	if (p->together) /* started on its creator's one CPU: let go */
		pthread_setaffinity_np(pthread_self(), sizeof(p->all), &p->all);
	for (long i = 0; i < p->rounds; i++) {
		if (p->impl == IMPL_RING) {
			void *v;
			while (!ck_ring_dequeue_spsc(&p->ra, p->bufa, &v))
				ck_pr_stall();
			while (!ck_ring_enqueue_spsc(&p->rb, p->bufb, v))
				ck_pr_stall();
			continue;
		}
		isola_msg m;
		isola_msg_init(&m);
		if (p->impl == IMPL_ISOLA) {
			isola_channel_recv(p->a, &m, -1);
			isola_channel_send(p->b, &m, -1);
		} else {
			mq_recv(&p->qa, &m);
			mq_send(&p->qb, &m);
		}
	}
	return NULL;
}

static int cmp_i64(const void *x, const void *y)
{
	int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
	return (a > b) - (a < b);
}

/* Median and p99 round trip in ns. */
static void pingpong_from(enum impl impl, long rounds, int together, double *median, double *p99)
{
	struct pp p = { .impl = impl, .rounds = rounds, .together = together };
	sched_getaffinity(0, sizeof(p.all), &p.all);
	if (impl == IMPL_ISOLA) {
		isola_channel_create(16, &p.a);
		isola_channel_create(16, &p.b);
	} else if (impl == IMPL_MUTEX) {
		mq_init(&p.qa, 16);
		mq_init(&p.qb, 16);
	} else {
		p.bufa = calloc(16, sizeof(ck_ring_buffer_t));
		p.bufb = calloc(16, sizeof(ck_ring_buffer_t));
		ck_ring_init(&p.ra, 16);
		ck_ring_init(&p.rb, 16);
	}
	int64_t *lat = malloc(sizeof(int64_t) * (size_t)rounds);
	pthread_t th;
	if (together) {
		cpu_set_t one;
		CPU_ZERO(&one);
		CPU_SET(sched_getcpu(), &one);
		pthread_setaffinity_np(pthread_self(), sizeof(one), &one);
	}
	pthread_create(&th, NULL, pp_echo, &p);
	if (together)
		pthread_setaffinity_np(pthread_self(), sizeof(p.all), &p.all);
	for (long i = 0; i < rounds; i++) {
		int64_t t0 = now_ns();
		if (impl == IMPL_RING) {
			void *v = (void *)(intptr_t)(i + 1);
			while (!ck_ring_enqueue_spsc(&p.ra, p.bufa, v))
				ck_pr_stall();
			while (!ck_ring_dequeue_spsc(&p.rb, p.bufb, &v))
				ck_pr_stall();
		} else {
			isola_msg m;
			isola_msg_init(&m);
			isola_msg_set_bytes(&m, "ping-ping-ping-p", 16);
			if (impl == IMPL_ISOLA) {
				isola_channel_send(p.a, &m, -1);
				isola_channel_recv(p.b, &m, -1);
			} else {
				mq_send(&p.qa, &m);
				mq_recv(&p.qb, &m);
			}
			isola_msg_clear(&m);
		}
		lat[i] = now_ns() - t0;
	}
	pthread_join(th, NULL);
	qsort(lat, (size_t)rounds, sizeof(int64_t), cmp_i64);
	*median = (double)lat[rounds / 2];
	*p99 = (double)lat[rounds * 99 / 100];
	free(lat);
	if (impl == IMPL_ISOLA) {
		isola_channel_release(p.a);
		isola_channel_release(p.b);
	} else if (impl == IMPL_MUTEX) {
		mq_destroy(&p.qa);
		mq_destroy(&p.qb);
	} else {
		free(p.bufa);
		free(p.bufb);
	}
}

static void pingpong(enum impl impl, long rounds, double *median, double *p99)
{
	pingpong_from(impl, rounds, 0, median, p99);
}

/* ---- today's wait code against 4a5d8e0's, alternating ----------- */
int bench_base_pingpong(long rounds, int64_t *lat, int together); /* libisola_chanbase */

/* Medians of `runs` alternating ping-pongs: today's core (cur), the
 * 4a5d8e0 copy (base) and the ck ring (ring); ns, median over runs of
 * each run's median. */
static void versus_baseline(long rounds, int runs, double *cur, double *base, double *ring)
{
	double c[16], b[16], g[16], unused;
	int64_t *lat = malloc(sizeof(int64_t) * (size_t)rounds);
	for (int r = 0; r < runs; r++) {
		pingpong(IMPL_ISOLA, rounds, &c[r], &unused);
		bench_base_pingpong(rounds, lat, 0);
		qsort(lat, (size_t)rounds, sizeof(int64_t), cmp_i64);
		b[r] = (double)lat[rounds / 2];
		pingpong(IMPL_RING, rounds, &g[r], &unused);
	}
	free(lat);
	int64_t ci[16], bi[16], gi[16];
	for (int r = 0; r < runs; r++) {
		ci[r] = (int64_t)c[r];
		bi[r] = (int64_t)b[r];
		gi[r] = (int64_t)g[r];
	}
	qsort(ci, (size_t)runs, sizeof(int64_t), cmp_i64);
	qsort(bi, (size_t)runs, sizeof(int64_t), cmp_i64);
	qsort(gi, (size_t)runs, sizeof(int64_t), cmp_i64);
	*cur = (double)ci[runs / 2];
	*base = (double)bi[runs / 2];
	*ring = (double)gi[runs / 2];
}

/* ---- a pair started on one CPU (issue #32) ------------------------ */
/* Medians of `runs` alternating ping-pongs whose two threads start on
 * one CPU and may then go anywhere: today's core (cur) and the 4a5d8e0
 * copy (base).  A kernel that packs threads onto few vCPUs keeps such a
 * pair together; today's receiver moves off a shared CPU when another is
 * free (wait_policy.h). */
static void started_together(long rounds, int runs, double *cur, double *base)
{
	int64_t ci[16], bi[16];
	double unused, c;
	int64_t *lat = malloc(sizeof(int64_t) * (size_t)rounds);
	for (int r = 0; r < runs; r++) {
		pingpong_from(IMPL_ISOLA, rounds, 1, &c, &unused);
		ci[r] = (int64_t)c;
		bench_base_pingpong(rounds, lat, 1);
		qsort(lat, (size_t)rounds, sizeof(int64_t), cmp_i64);
		bi[r] = lat[rounds / 2];
	}
	free(lat);
	qsort(ci, (size_t)runs, sizeof(int64_t), cmp_i64);
	qsort(bi, (size_t)runs, sizeof(int64_t), cmp_i64);
	*cur = (double)ci[runs / 2];
	*base = (double)bi[runs / 2];
}

/* ---- large payloads: copy vs blob --------------------------------- */
static void free_buf(void *ctx, void *data, size_t len)
{
	(void)ctx;
	(void)len;
	free(data);
}

/* ns per send+recv of a size-byte payload, copied (blob=0) or as a blob. */
static double big_payload(size_t size, int blob, int reps)
{
	isola_channel *ch;
	isola_channel_create(4, &ch);
	unsigned char *src = malloc(size);
	memset(src, 7, size);
	isola_blob *b = NULL;
	if (blob)
		isola_blob_wrap(src, size, free_buf, NULL, &b);
	int64_t t0 = now_ns();
	for (int i = 0; i < reps; i++) {
		isola_msg m;
		isola_msg_init(&m);
		if (blob)
			isola_msg_attach_blob(&m, b);
		else
			isola_msg_set_bytes(&m, src, size);
		isola_channel_send(ch, &m, -1);
		isola_channel_recv(ch, &m, -1);
		isola_msg_clear(&m);
	}
	double per = (double)(now_ns() - t0) / reps;
	if (blob)
		isola_blob_release(b);
	else
		free(src);
	isola_channel_release(ch);
	return per;
}

int main(int argc, char **argv)
{
	int json = 0, quick = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (strcmp(argv[i], "--quick") == 0)
			quick = 1;
		else {
			fprintf(stderr, "usage: %s [--json] [--quick]\n", argv[0]);
			return 2;
		}
	}
	long total = quick ? 200000 : 4000000;
	long rounds = quick ? 20000 : 200000;

	double tp1[3], tp2[2], med[3], p99[3];
	for (int i = 0; i < 3; i++)
		tp1[i] = throughput((enum impl)i, 1, total, 0);
	for (int i = 0; i < 2; i++)
		tp2[i] = throughput((enum impl)i, 2, total, 1);
	for (int i = 0; i < 3; i++)
		pingpong((enum impl)i, rounds, &med[i], &p99[i]);
	double copy1k = big_payload(1024, 0, quick ? 2000 : 20000);
	double blob1k = big_payload(1024, 1, quick ? 2000 : 20000);
	double copy1m = big_payload(1 << 20, 0, quick ? 100 : 1000);
	double blob1m = big_payload(1 << 20, 1, quick ? 2000 : 20000);
	int vs_runs = quick ? 5 : 9;
	double vs_cur, vs_base, vs_ring;
	versus_baseline(rounds, vs_runs, &vs_cur, &vs_base, &vs_ring);
	double tg_cur, tg_base;
	started_together(rounds, vs_runs, &tg_cur, &tg_base);

	if (json) {
		printf("{\"throughput_1p1c_msg_s\": {\"isola\": %.0f, \"mutex\": %.0f, \"ck_spsc\": %.0f},\n",
		       tp1[0], tp1[1], tp1[2]);
		printf(" \"throughput_2p_same_core_msg_s\": {\"isola\": %.0f, \"mutex\": %.0f},\n",
		       tp2[0], tp2[1]);
		printf(" \"pingpong_ns\": {\"isola\": [%.0f, %.0f], \"mutex\": [%.0f, %.0f], \"ck_spsc_spin\": [%.0f, %.0f]},\n",
		       med[0], p99[0], med[1], p99[1], med[2], p99[2]);
		printf(" \"payload_ns\": {\"copy_1k\": %.0f, \"blob_1k\": %.0f, \"copy_1m\": %.0f, \"blob_1m\": %.0f},\n",
		       copy1k, blob1k, copy1m, blob1m);
		printf(" \"pingpong_vs_4a5d8e0_ns\": {\"runs\": %d, \"isola\": %.0f, \"isola_4a5d8e0\": %.0f, \"ck_spsc_spin\": %.0f},\n",
		       vs_runs, vs_cur, vs_base, vs_ring);
		printf(" \"pingpong_started_together_ns\": {\"runs\": %d, \"isola\": %.0f, \"isola_4a5d8e0\": %.0f},\n",
		       vs_runs, tg_cur, tg_base);
		printf(" \"ratios\": {\"1p1c_vs_mutex\": %.2f, \"2p_same_core_vs_mutex\": %.2f, \"pingpong_vs_spsc_spin\": %.2f, \"blob_1m_vs_1k\": %.2f, \"pingpong_vs_4a5d8e0\": %.2f, \"pingpong_alternating_vs_spsc_spin\": %.2f, \"pingpong_started_together_vs_4a5d8e0\": %.2f}}\n",
		       tp1[0] / tp1[1], tp2[0] / tp2[1], med[0] / med[2], blob1m / blob1k,
		       vs_cur / vs_base, vs_cur / vs_ring, tg_cur / tg_base);
		return 0;
	}
	printf("isola channel benchmark (%d CPUs)\n\n", ncpus());
	printf("1. 1 producer / 1 consumer, 16-byte messages (M msg/s)\n");
	for (int i = 0; i < 3; i++)
		printf("   %-16s %8.2f\n", impl_name[i], tp1[i] / 1e6);
	printf("   ratio isola/mutex: %.2fx (target >= 2x)\n\n", tp1[0] / tp1[1]);
	printf("2. 2 producers on one core / 1 consumer (M msg/s)\n");
	for (int i = 0; i < 2; i++)
		printf("   %-16s %8.2f\n", impl_name[i], tp2[i] / 1e6);
	printf("   ratio isola/mutex: %.2fx (target >= 0.5x)\n\n", tp2[0] / tp2[1]);
	printf("3. ping-pong round trip (us, median / p99)\n");
	printf("   %-16s %8.2f / %.2f  (blocking recv: spin, then sleep)\n", impl_name[0], med[0] / 1e3, p99[0] / 1e3);
	printf("   %-16s %8.2f / %.2f\n", impl_name[1], med[1] / 1e3, p99[1] / 1e3);
	printf("   %-16s %8.2f / %.2f  (both sides spinning)\n", impl_name[2], med[2] / 1e3, p99[2] / 1e3);
	printf("   ratio isola/spsc: %.2fx (target <= 2x)\n\n", med[0] / med[2]);
	printf("4. send+recv of a payload (us)\n");
	printf("   1 KiB copied %8.2f   as blob %8.3f\n", copy1k / 1e3, blob1k / 1e3);
	printf("   1 MiB copied %8.2f   as blob %8.3f\n", copy1m / 1e3, blob1m / 1e3);
	printf("   blob 1 MiB / blob 1 KiB: %.2fx (target ~1: independent of size)\n\n", blob1m / blob1k);
	printf("5. ping-pong, %d alternating runs (us, median of the runs' medians)\n", vs_runs);
	printf("   %-16s %8.2f\n", "isola", vs_cur / 1e3);
	printf("   %-16s %8.2f  (wait code of 4a5d8e0, bench/baseline)\n", "isola 4a5d8e0", vs_base / 1e3);
	printf("   %-16s %8.2f\n", impl_name[2], vs_ring / 1e3);
	printf("   ratio isola/4a5d8e0: %.2fx (target <= 1.1x), isola/spsc: %.2fx (target <= 1.5x)\n",
	       vs_cur / vs_base, vs_cur / vs_ring);
	printf("\n6. ping-pong of a pair started on one CPU, %d alternating runs (us, median)\n",
	       vs_runs);
	printf("   %-16s %8.2f\n", "isola", tg_cur / 1e3);
	printf("   %-16s %8.2f  (wait code of 4a5d8e0)\n", "isola 4a5d8e0", tg_base / 1e3);
	printf("   ratio isola/4a5d8e0: %.2fx\n", tg_cur / tg_base);
	return 0;
}
