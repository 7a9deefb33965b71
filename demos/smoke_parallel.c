/*
 * smoke_parallel.c - the smallest proof that isola runs Python in
 * parallel: one sub-interpreter per thread, each with its own GIL.
 *
 * It times a CPU-bound pure-Python loop in one interpreter, then in N
 * interpreters side by side (N = 2, or argv[1]), and prints the speed-up
 * N * t(1) / t(N): N means perfect parallelism, 1 means none (as with
 * threads sharing one GIL).
 */
#include <pthread.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "isola.h"

static const char *work =
	"total = 0\n"
	"for i in range(3_000_000):\n"
	"    total += i * i % 7\n";

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct job {
	pthread_barrier_t *start;
	double seconds;
	int status;
};

static void *worker(void *arg)
{
	struct job *job = arg;
	isola_interp *in = NULL;
	char *err = NULL;
	job->status = isola_interp_create(NULL, &in, &err);
	if (job->status != 0) {
		fprintf(stderr, "create: %s %s\n", isola_strerror(job->status),
			err ? err : "");
		free(err);
		pthread_barrier_wait(job->start);
		return NULL;
	}
	pthread_barrier_wait(job->start); /* all created: time the work only */
	double t0 = now_s();
	job->status = isola_interp_run(in, work);
	job->seconds = now_s() - t0;
	if (job->status != 0) {
		const char *type, *msg, *tb;
		isola_interp_error(in, &type, &msg, &tb);
		fprintf(stderr, "%s: %s\n%s", type, msg, tb);
	}
	isola_interp_destroy(in);
	return NULL;
}

/* Wall time of n interpreters running the work side by side. */
static double run_side_by_side(int n)
{
	pthread_t t[64];
	struct job jobs[64];
	pthread_barrier_t start;
	pthread_barrier_init(&start, NULL, (unsigned)n + 1);
	for (int i = 0; i < n; i++) {
		jobs[i] = (struct job){ .start = &start };
		pthread_create(&t[i], NULL, worker, &jobs[i]);
	}
	pthread_barrier_wait(&start);
	double t0 = now_s();
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	double wall = now_s() - t0;
	pthread_barrier_destroy(&start);
	for (int i = 0; i < n; i++)
		if (jobs[i].status != 0)
			exit(1);
	return wall;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 2;
	if (n < 1 || n > 64) {
		fprintf(stderr, "usage: %s [interpreters, 1..64]\n", argv[0]);
		return 2;
	}
	int r = isola_init(NULL);
	if (r != 0) {
		fprintf(stderr, "isola_init: %s\n", isola_strerror(r));
		return 1;
	}
	double one = run_side_by_side(1);
	double many = run_side_by_side(n);
	printf("one interpreter:            %.3f s\n", one);
	printf("%d interpreters side by side: %.3f s (same work each)\n", n, many);
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	int possible = n < cores ? n : (int)cores;
	printf("parallel speed-up: %.2fx of %d possible on %ld cores (ratio %.2f)\n",
	       n * one / many, possible, cores, n * one / many / possible);
	r = isola_fini();
	if (r != 0) {
		fprintf(stderr, "isola_fini: %s\n", isola_strerror(r));
		return 1;
	}
	return 0;
}
