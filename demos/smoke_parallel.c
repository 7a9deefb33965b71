/*
 * smoke_parallel.c - the smallest proof that isola runs Python in
 * parallel: one sub-interpreter per thread, each with its own GIL.
 *
 * It times a CPU-bound pure-Python loop in one interpreter, then in N
 * interpreters side by side (N = 2, or argv[1]), and prints the speed-up
 * N * t(1) / t(N): N means perfect parallelism, 1 means none (as with
 * threads sharing one GIL).
 *
 * Measured fairly (issue #31.13): the same loop also runs in 1 and in N
 * separate processes (this program again, with --child), which is what
 * the machine itself allows right now (other load, turbo, shared caches);
 * the four measures are interleaved over R rounds (argv[2], default 3,
 * the order reversed every other round) and the best of each is kept.
 */
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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

extern char **environ;

/* --child: one interpreter in this process; "r" on stdout once ready,
 * then the loop when a byte comes on stdin, then "d". */
static int child(void)
{
	if (isola_init(NULL) != 0)
		return 1;
	isola_interp *in = NULL;
	if (isola_interp_create(NULL, &in, NULL) != 0)
		return 1;
	char c;
	if (write(1, "r", 1) != 1 || read(0, &c, 1) != 1)
		return 1;
	int r = isola_interp_run(in, work);
	if (write(1, "d", 1) != 1)
		return 1;
	isola_interp_destroy(in);
	isola_fini();
	return r != 0;
}

/* Wall time of n processes running the work side by side, timed from
 * the moment all are ready (start-up is not counted). */
static double run_processes(int n, const char *self)
{
	pid_t pids[64];
	int to[64], from[64];
	for (int i = 0; i < n; i++) {
		int a[2], b[2];
		if (pipe(a) != 0 || pipe(b) != 0)
			exit(1);
		posix_spawn_file_actions_t fa;
		posix_spawn_file_actions_init(&fa);
		posix_spawn_file_actions_adddup2(&fa, a[0], 0);
		posix_spawn_file_actions_adddup2(&fa, b[1], 1);
		posix_spawn_file_actions_addclose(&fa, a[1]);
		posix_spawn_file_actions_addclose(&fa, b[0]);
		char *argv[] = { (char *)self, "--child", NULL };
		if (posix_spawn(&pids[i], self, &fa, NULL, argv, environ) != 0) {
			perror("posix_spawn");
			exit(1);
		}
		posix_spawn_file_actions_destroy(&fa);
		close(a[0]);
		close(b[1]);
		to[i] = a[1];
		from[i] = b[0];
	}
	char c;
	for (int i = 0; i < n; i++)
		if (read(from[i], &c, 1) != 1 || c != 'r')
			exit(1);
	double t0 = now_s();
	for (int i = 0; i < n; i++)
		if (write(to[i], "g", 1) != 1)
			exit(1);
	for (int i = 0; i < n; i++)
		if (read(from[i], &c, 1) != 1 || c != 'd')
			exit(1);
	double wall = now_s() - t0;
	for (int i = 0; i < n; i++) {
		int st;
		close(to[i]);
		close(from[i]);
		if (waitpid(pids[i], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			exit(1);
	}
	return wall;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--child") == 0)
		return child();
	int n = argc > 1 ? atoi(argv[1]) : 2;
	int rounds = argc > 2 ? atoi(argv[2]) : 3;
	if (n < 1 || n > 64 || rounds < 1) {
		fprintf(stderr, "usage: %s [interpreters, 1..64] [rounds]\n", argv[0]);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	int r = isola_init(NULL);
	if (r != 0) {
		fprintf(stderr, "isola_init: %s\n", isola_strerror(r));
		return 1;
	}
	/* best[0]: 1 interpreter, [1]: n interpreters, [2]: 1 process,
	 * [3]: n processes. */
	double best[4] = { 1e300, 1e300, 1e300, 1e300 }, worst[4] = { 0, 0, 0, 0 };
	for (int k = 0; k < rounds; k++) {
		for (int j = 0; j < 4; j++) {
			int m = k % 2 == 0 ? j : 3 - j;
			int count = m % 2 == 0 ? 1 : n;
			double t = m < 2 ? run_side_by_side(count) : run_processes(count, "/proc/self/exe");
			if (t < best[m])
				best[m] = t;
			if (t > worst[m])
				worst[m] = t;
		}
	}
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	int possible = n < cores ? n : (int)cores;
	double isola_x = n * best[0] / best[1], machine_x = n * best[2] / best[3];
	printf("best of %d interleaved rounds, the same loop in each interpreter:\n", rounds);
	printf("one interpreter:             %.3f s\n", best[0]);
	printf("%d interpreters side by side: %.3f s   speed-up %.2fx\n", n, best[1], isola_x);
	printf("one process:                 %.3f s\n", best[2]);
	printf("%d processes side by side:    %.3f s   speed-up %.2fx (what this machine allows now)\n",
	       n, best[3], machine_x);
	printf("isola: %.2fx of %d possible on %ld cores, %.0f%% of the machine's own %.2fx\n",
	       isola_x, possible, cores, 100 * isola_x / machine_x, machine_x);
	double spread = 1;
	for (int m = 0; m < 4; m++)
		if (worst[m] / best[m] > spread)
			spread = worst[m] / best[m];
	if (spread > 1.25)
		printf("the rounds varied up to %.1fx: this machine is busy, and these figures "
		       "move from run to run\n", spread);
	r = isola_fini();
	if (r != 0) {
		fprintf(stderr, "isola_fini: %s\n", isola_strerror(r));
		return 1;
	}
	return 0;
}
