/* test_procring.c - the process lane's shared-memory rings, between a test
 * process and a child it forks (the test process has no other thread). */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "channels/procring.h"
#include "common/alloc.h"
#include "isola.h"

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Message k: its size (some larger than the 4 KiB ring) and content. */
static size_t msg_size(int k)
{
	return k % 50 == 7 ? 10000 + (size_t)k * 3 : (size_t)(k % 300);
}

static void fill(unsigned char *b, size_t n, int k)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (unsigned char)(i * 31 + (size_t)k);
}

struct child_check {
	pid_t pid;
	int status;
};

/* The parent's check between sleeps: the child died -> ISOLA_ECLOSED. */
static int child_alive(void *arg)
{
	struct child_check *c = arg;
	if (c->pid > 0 && waitpid(c->pid, &c->status, WNOHANG) == c->pid) {
		c->pid = -1;
		return ISOLA_ECLOSED;
	}
	return 0;
}

/* In the child: echo every message back until the parent closes. */
static void echo_child(int fd)
{
	isola__procshm *s;
	if (isola__procshm_attach(fd, &s) != 0)
		_exit(3);
	isola__deadline forever;
	isola__deadline_init(&forever, -1);
	for (;;) {
		void *b;
		size_t n;
		int r = isola__procring_recv(s, ISOLA__PROC_CHILD, &b, &n, &forever, 5000000, NULL, NULL);
		if (r == ISOLA_ECLOSED)
			_exit(0);
		if (r != 0)
			_exit(4);
		struct iovec v = { b, n };
		if (isola__procring_send(s, ISOLA__PROC_CHILD, &v, 1, &forever, 5000000, NULL, NULL) != 0)
			_exit(5);
		isola__free(b);
	}
}

Test(procring, messages_of_every_size_round_trip_between_processes)
{
	isola__procshm *s;
	int fd;
	cr_assert_eq(isola__procshm_create(4096, &s, &fd), 0);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0)
		echo_child(fd);
	close(fd);
	struct child_check c = { pid, 0 };
	isola__deadline forever;
	isola__deadline_init(&forever, -1);
	unsigned char *want = malloc(20000);
	for (int k = 0; k < 2000; k++) {
		size_t n = msg_size(k);
		fill(want, n, k);
		/* Two pieces: the message is their concatenation. */
		struct iovec v[2] = { { want, n / 3 }, { want + n / 3, n - n / 3 } };
		cr_assert_eq(isola__procring_send(s, ISOLA__PROC_PARENT, v, 2, &forever, 5000000,
						  child_alive, &c), 0, "send %d", k);
		void *got;
		size_t len;
		cr_assert_eq(isola__procring_recv(s, ISOLA__PROC_PARENT, &got, &len, &forever,
						  5000000, child_alive, &c), 0, "recv %d", k);
		cr_assert_eq(len, n, "message %d: %zu bytes, want %zu", k, len, n);
		cr_assert(memcmp(got, want, n) == 0, "message %d differs", k);
		isola__free(got);
	}
	isola__procring_close(s, ISOLA__PROC_PARENT);
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
	free(want);
	isola__procshm_unmap(s);
}

Test(procring, a_dead_peer_ends_the_wait_with_the_check_code)
{
	isola__procshm *s;
	int fd;
	cr_assert_eq(isola__procshm_create(4096, &s, &fd), 0);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0)
		kill(getpid(), SIGKILL); /* dies without a word */
	close(fd);
	struct child_check c = { pid, 0 };
	isola__deadline d;
	isola__deadline_init(&d, 60000000000LL); /* a hang limit only */
	void *got;
	size_t len;
	int64_t t0 = now_ns();
	cr_assert_eq(isola__procring_recv(s, ISOLA__PROC_PARENT, &got, &len, &d, 2000000,
					  child_alive, &c), ISOLA_ECLOSED);
	cr_assert(now_ns() - t0 < 30000000000LL);
	cr_assert_eq(c.pid, -1, "reaped by the check");
	cr_assert(WIFSIGNALED(c.status) && WTERMSIG(c.status) == SIGKILL);
	isola__procshm_unmap(s);
}

Test(procring, a_full_ring_waits_for_a_reader_that_died)
{
	isola__procshm *s;
	int fd;
	cr_assert_eq(isola__procshm_create(4096, &s, &fd), 0);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0)
		_exit(9); /* never reads */
	close(fd);
	struct child_check c = { pid, 0 };
	isola__deadline d;
	isola__deadline_init(&d, 60000000000LL);
	unsigned char big[10000] = { 0 };
	struct iovec v = { big, sizeof(big) };
	cr_assert_eq(isola__procring_send(s, ISOLA__PROC_PARENT, &v, 1, &d, 2000000, child_alive,
					  &c), ISOLA_ECLOSED);
	cr_assert(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 9);
	isola__procshm_unmap(s);
}

Test(procring, a_goodbye_is_read_after_what_came_before)
{
	isola__procshm *s;
	int fd;
	cr_assert_eq(isola__procshm_create(4096, &s, &fd), 0);
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		isola__procshm *cs;
		if (isola__procshm_attach(fd, &cs) != 0)
			_exit(3);
		isola__deadline forever;
		isola__deadline_init(&forever, -1);
		struct iovec v = { "last words", 10 };
		isola__procring_send(cs, ISOLA__PROC_CHILD, &v, 1, &forever, 5000000, NULL, NULL);
		isola__procring_close(cs, ISOLA__PROC_CHILD);
		pause(); /* stays alive: the goodbye alone must end the wait */
		_exit(0);
	}
	close(fd);
	isola__deadline forever;
	isola__deadline_init(&forever, -1);
	void *got;
	size_t len;
	cr_assert_eq(isola__procring_recv(s, ISOLA__PROC_PARENT, &got, &len, &forever, 5000000,
					  NULL, NULL), 0);
	cr_assert_eq(len, 10);
	cr_assert(memcmp(got, "last words", 10) == 0);
	isola__free(got);
	cr_assert_eq(isola__procring_recv(s, ISOLA__PROC_PARENT, &got, &len, &forever, 5000000,
					  NULL, NULL), ISOLA_ECLOSED);
	struct iovec v = { "x", 1 };
	cr_assert_eq(isola__procring_send(s, ISOLA__PROC_PARENT, &v, 1, &forever, 5000000, NULL,
					  NULL), ISOLA_ECLOSED, "nobody reads: refused");
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	isola__procshm_unmap(s);
}

Test(procring, recv_times_out_and_attach_refuses_other_files)
{
	isola__procshm *s;
	int fd;
	cr_assert_eq(isola__procshm_create(1, &s, &fd), 0);
	isola__deadline d;
	isola__deadline_init(&d, 20000000);
	void *got;
	size_t len;
	int64_t t0 = now_ns();
	cr_assert_eq(isola__procring_recv(s, ISOLA__PROC_PARENT, &got, &len, &d, 5000000, NULL,
					  NULL), ISOLA_ETIMEDOUT);
	cr_assert(now_ns() - t0 >= 20000000, "not early");
	isola__deadline_init(&d, 0);
	cr_assert_eq(isola__procring_recv(s, ISOLA__PROC_PARENT, &got, &len, &d, 5000000, NULL,
					  NULL), ISOLA_ETIMEDOUT);
	isola__procshm *again;
	cr_assert_eq(isola__procshm_attach(fd, &again), 0, "its own memfd maps");
	*isola__procshm_word(s) = 42;
	cr_assert_eq(*isola__procshm_word(again), 42, "the shared word is shared");
	isola__procshm_unmap(again);
	close(fd);
	isola__procshm_unmap(s);
	FILE *f = tmpfile();
	char junk[8192] = { 1 };
	fwrite(junk, 1, sizeof(junk), f);
	fflush(f);
	cr_assert_eq(isola__procshm_attach(fileno(f), &again), ISOLA_EINVAL);
	fclose(f);
}
