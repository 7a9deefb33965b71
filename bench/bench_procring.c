/*
 * bench_procring.c - the process lane's transport alone: round trips of a
 * small message between this process and a forked child through a
 * procring (src/channels/procring.c), p50 and p99.  The floor under the
 * process lane's synchronous call (bench_proclane.py), measured in the
 * same conditions.
 *
 *     build/py3.14/bench/bench_procring [ROUNDS]
 */
#include "channels/procring.h"
#include "common/alloc.h"
#include "isola.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static int cmp(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 20000;
	if (rounds < 100)
		rounds = 100;
	isola__procshm *s;
	int fd;
	if (isola__procshm_create(1 << 20, &s, &fd) != 0)
		return 1;
	isola__deadline forever;
	isola__deadline_init(&forever, -1);
	pid_t pid = fork(); /* single-threaded here: fork is fine */
	if (pid == 0) {
		for (;;) {
			void *b;
			size_t n;
			if (isola__procring_recv(s, ISOLA__PROC_CHILD, &b, &n, &forever, 10000000, NULL,
						 NULL) != 0)
				_exit(0);
			struct iovec v = { b, n };
			isola__procring_send(s, ISOLA__PROC_CHILD, &v, 1, &forever, 10000000, NULL, NULL);
			isola__free(b);
		}
	}
	int64_t *lat = malloc(sizeof(int64_t) * (size_t)rounds);
	char msg[64] = "a small task";
	for (int i = 0; i < rounds; i++) {
		int64_t t0 = isola__now_ns();
		struct iovec v = { msg, sizeof(msg) };
		isola__procring_send(s, ISOLA__PROC_PARENT, &v, 1, &forever, 10000000, NULL, NULL);
		void *b;
		size_t n;
		isola__procring_recv(s, ISOLA__PROC_PARENT, &b, &n, &forever, 10000000, NULL, NULL);
		isola__free(b);
		lat[i] = isola__now_ns() - t0;
	}
	qsort(lat, (size_t)rounds, sizeof(int64_t), cmp);
	printf("procring round trip (64 B, %d rounds): p50 %.1f us, p90 %.1f us, p99 %.1f us\n",
	       rounds, (double)lat[rounds / 2] / 1e3, (double)lat[rounds * 9 / 10] / 1e3,
	       (double)lat[rounds * 99 / 100] / 1e3);
	isola__procring_close(s, ISOLA__PROC_PARENT);
	waitpid(pid, NULL, 0);
	free(lat);
	isola__procshm_unmap(s);
	close(fd);
	return 0;
}
