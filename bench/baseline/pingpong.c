/*
 * pingpong.c - bench only: the ping-pong of bench_channel, built into
 * libisola_chanbase (the channel core with the wait code of 4a5d8e0,
 * everything but bench_base_pingpong hidden), so that one process runs
 * it through both cores.
 */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <time.h>

#include "isola.h"

int bench_base_pingpong(long rounds, int64_t *lat, int together);

struct pp {
	isola_channel *a, *b;
	long rounds;
	cpu_set_t all; /* together: the CPUs to let the pair go to */
	int together;
};

static void *echo(void *arg)
{
	struct pp *p = arg;
	if (p->together) /* started on its creator's one CPU: let go */
		pthread_setaffinity_np(pthread_self(), sizeof(p->all), &p->all);
	for (long i = 0; i < p->rounds; i++) {
		isola_msg m;
		isola_msg_init(&m);
		isola_channel_recv(p->a, &m, -1);
		isola_channel_send(p->b, &m, -1);
	}
	return NULL;
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* rounds round trips of a 16-byte message; each one's ns in lat.
 * together: both threads start on one CPU, then may go anywhere. */
int bench_base_pingpong(long rounds, int64_t *lat, int together)
{
	struct pp p = { .rounds = rounds, .together = together };
	if (isola_channel_create(16, &p.a) != 0 || isola_channel_create(16, &p.b) != 0)
		return -1;
	sched_getaffinity(0, sizeof(p.all), &p.all);
	if (together) {
		cpu_set_t one;
		CPU_ZERO(&one);
		CPU_SET(sched_getcpu(), &one);
		pthread_setaffinity_np(pthread_self(), sizeof(one), &one);
	}
	pthread_t th;
	pthread_create(&th, NULL, echo, &p);
	if (together)
		pthread_setaffinity_np(pthread_self(), sizeof(p.all), &p.all);
	for (long i = 0; i < rounds; i++) {
		int64_t t0 = now_ns();
		isola_msg m;
		isola_msg_init(&m);
		isola_msg_set_bytes(&m, "ping-ping-ping-p", 16);
		isola_channel_send(p.a, &m, -1);
		isola_channel_recv(p.b, &m, -1);
		isola_msg_clear(&m);
		lat[i] = now_ns() - t0;
	}
	pthread_join(th, NULL);
	isola_channel_release(p.a);
	isola_channel_release(p.b);
	return 0;
}
