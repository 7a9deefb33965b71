/*
 * bench_busy_c.c - the C API's synchronous call (isola_pool_submit +
 * isola_future_wait) with 0, 1 and N (= cores) busy processes that this
 * benchmark starts itself (each a `for (;;)` loop), and with 4N workers.
 *
 *   build/py3.14/bench/bench_busy_c [calls]
 *
 * Prints p50 / p99 per row, in us.  Run by bench/bench_busy.py too.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "isola.h"

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* One call: math.sqrt(2.0); msgpack [2.0] written once. */
static int call(isola_pool *pool)
{
	static const unsigned char args[] = { 0x91, 0xcb, 0x40, 0, 0, 0, 0, 0, 0, 0 };
	isola_msg m;
	isola_msg_init(&m);
	int r = isola_msg_set_bytes(&m, args, sizeof(args));
	isola_future *f;
	if (r == 0)
		r = isola_pool_submit(pool, "math:sqrt", &m, 0, &f);
	if (r != 0) {
		isola_msg_clear(&m);
		return r;
	}
	r = isola_future_wait(f, -1);
	isola_future_release(f);
	return r;
}

static int row(int busy, int workers, int calls)
{
	pid_t pids[64];
	for (int i = 0; i < busy && i < 64; i++) {
		pids[i] = fork();
		if (pids[i] == 0)
			for (;;)
				__asm__ volatile("" ::: "memory");
	}
	usleep(200000);
	isola_pool_options opts = { .workers = (size_t)workers };
	isola_pool *pool;
	char *err = NULL;
	int r = isola_pool_create(&opts, &pool, &err);
	int64_t *lat = malloc(sizeof(int64_t) * (size_t)calls);
	int n = 0;
	if (r == 0 && lat != NULL) {
		for (int i = 0; i < 100 && r == 0; i++)
			r = call(pool);
		int64_t stop = now_ns() + 8000000000LL; /* a stalled row ends */
		for (; n < calls && r == 0 && now_ns() < stop; n++) {
			int64_t t0 = now_ns();
			r = call(pool);
			lat[n] = now_ns() - t0;
		}
		isola_pool_destroy(pool);
	}
	for (int i = 0; i < busy && i < 64; i++) {
		kill(pids[i], SIGKILL);
		waitpid(pids[i], NULL, 0);
	}
	if (r != 0 || n == 0) {
		fprintf(stderr, "row %d/%d: %s %s\n", busy, workers, isola_strerror(r),
			err ? err : "");
		free(lat);
		return 1;
	}
	qsort(lat, (size_t)n, sizeof(int64_t), cmp64);
	printf("busy %d workers %d: p50 %.1f us p99 %.1f us (%d calls)\n", busy, workers,
	       lat[n / 2] / 1e3, lat[n * 99 / 100] / 1e3, n);
	free(lat);
	return 0;
}

int main(int argc, char **argv)
{
	int calls = argc > 1 ? atoi(argv[1]) : 20000;
	int cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (isola_init(NULL) != 0)
		return 1;
	int fails = 0;
	fails += row(0, cores, calls);
	fails += row(1, cores, calls);
	fails += row(cores, cores, calls);
	fails += row(0, 4 * cores, calls);
	fails += row(cores, 4 * cores, calls);
	isola_fini();
	return fails != 0;
}
