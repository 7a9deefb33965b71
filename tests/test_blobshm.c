/* test_blobshm.c - blobs' memfd mirrors, their mappings, and passing
 * memfds over a unix socket (channels/blobshm.h). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "channels/blob.h"
#include "channels/blobshm.h"
#include "isola.h"

static isola_blob *pattern_blob(size_t n, unsigned seed)
{
	unsigned char *b = malloc(n);
	for (size_t i = 0; i < n; i++)
		b[i] = (unsigned char)(i * 131 + seed);
	isola_blob *blob;
	cr_assert_eq(isola_blob_create(b, n, &blob), 0);
	free(b);
	return blob;
}

static int open_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	for (struct dirent *e; (e = readdir(d)) != NULL;)
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1; /* the directory's own */
}

static void socket_pair(int sv[2])
{
	cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
}

Test(blobshm, a_mirror_is_made_once_sealed_and_closed_with_its_blob)
{
	isola__mirror_stats s0, s;
	isola__mirror_stats_get(&s0);
	int fds0 = open_fds();
	isola_blob *b = pattern_blob(3 << 20, 7);
	struct isola__mirror *m, *m2;
	cr_assert_eq(isola__blob_mirror(b, &m), 0);
	cr_assert_eq(isola__blob_mirror(b, &m2), 0);
	cr_assert_eq(m, m2, "cached on the blob");
	cr_assert_eq(isola__blob_mirror_peek(b), m);
	cr_assert_neq(m->id, 0);
	isola__mirror_stats_get(&s);
	cr_assert_eq(s.made - s0.made, 1);
	cr_assert_eq(s.live - s0.live, 1);
	cr_assert_eq(s.live_bytes - s0.live_bytes, 3 << 20);
	/* Sealed: no write, no resize, no more seals; the bytes are the blob's. */
	int seals = fcntl(m->fd, F_GET_SEALS);
	cr_assert_eq(seals & (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
		     F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
	cr_assert_eq(pwrite(m->fd, "x", 1, 0), -1);
	cr_assert_eq(errno, EPERM);
	cr_assert_eq(ftruncate(m->fd, 10), -1);
	unsigned char *back = malloc(3 << 20);
	cr_assert_eq(pread(m->fd, back, 3 << 20, 0), 3 << 20);
	const void *d;
	size_t len;
	isola_blob_data(b, &d, &len);
	cr_assert_eq(memcmp(back, d, len), 0);
	free(back);
	cr_assert_eq(open_fds(), fds0 + 1, "one memfd");
	isola_blob_release(b);
	isola__mirror_stats_get(&s);
	cr_assert_eq(s.live, s0.live);
	cr_assert_eq(open_fds(), fds0, "closed with the blob");
}

Test(blobshm, an_empty_blob_has_no_mirror)
{
	isola_blob *b;
	cr_assert_eq(isola_blob_create(NULL, 0, &b), 0);
	struct isola__mirror *m;
	cr_assert_eq(isola__blob_mirror(b, &m), ISOLA_EINVAL);
	cr_assert_null(isola__blob_mirror_peek(b));
	isola_blob_release(b);
}

Test(blobshm, a_mapping_reads_the_mirror_and_outlives_it)
{
	isola_blob *b = pattern_blob(1 << 20, 3);
	struct isola__mirror *m;
	cr_assert_eq(isola__blob_mirror(b, &m), 0);
	uint64_t id = m->id, ino = m->ino;
	isola_blob *mapped;
	cr_assert_eq(isola__mirror_map(id, 1 << 20, m->fd, false, &mapped), 0);
	uint64_t mid, mino;
	cr_assert(isola__blob_mapped(mapped, &mid, &mino));
	cr_assert_eq(mid, id);
	cr_assert_eq(mino, ino);
	cr_assert(!(isola__blob_mapped(b, &mid, &mino)));
	const void *d1, *d2;
	size_t l1, l2;
	isola_blob_data(b, &d1, &l1);
	isola_blob_data(mapped, &d2, &l2);
	cr_assert_eq(l1, l2);
	cr_assert_neq(d1, d2, "a mapping, not the parent's buffer");
	cr_assert_eq(memcmp(d1, d2, l1), 0);
	/* Found again by id while held, even without an fd. */
	isola_blob *again;
	cr_assert_eq(isola__mirror_map(id, 1 << 20, -1, false, &again), 0);
	cr_assert_eq(again, mapped);
	isola_blob_release(again);
	/* The parent drops its blob (the memfd closes): the pages stay. */
	unsigned char first = ((const unsigned char *)d2)[12345];
	isola_blob_release(b);
	cr_assert_eq(((const unsigned char *)d2)[12345], first);
	isola__mirror_stats s;
	isola__mirror_stats_get(&s);
	cr_assert_eq(s.maps, 1);
	cr_assert_eq(s.hits, 1);
	cr_assert_eq(s.mapped, 1);
	isola_blob_release(mapped);
	isola__mirror_stats_get(&s);
	cr_assert_eq(s.mapped, 0, "not kept: unmapped with its last holder");
	cr_assert_eq(isola__mirror_map(id, 1 << 20, -1, false, &again), ISOLA_ENOTFOUND);
}

Test(blobshm, kept_mappings_stay_until_forgotten_and_are_bounded)
{
	isola_blob *blobs[10];
	uint64_t ids[10];
	for (int i = 0; i < 10; i++) {
		blobs[i] = pattern_blob(4096 * 3, (unsigned)i);
		struct isola__mirror *m;
		cr_assert_eq(isola__blob_mirror(blobs[i], &m), 0);
		ids[i] = m->id;
		isola_blob *mapped;
		cr_assert_eq(isola__mirror_map(m->id, 4096 * 3, m->fd, true, &mapped), 0);
		isola_blob_release(mapped);
	}
	isola__mirror_stats s;
	isola__mirror_stats_get(&s);
	cr_assert_eq(s.recent, 8, "the cache keeps the last 8");
	cr_assert_eq(s.mapped, 8);
	/* The newest is found without an fd; the oldest was let go. */
	isola_blob *again;
	cr_assert_eq(isola__mirror_map(ids[9], 4096 * 3, -1, true, &again), 0);
	isola_blob_release(again);
	cr_assert_eq(isola__mirror_map(ids[0], 4096 * 3, -1, true, &again), ISOLA_ENOTFOUND);
	isola__mirror_forget(&ids[9], 1);
	isola__mirror_stats_get(&s);
	cr_assert_eq(s.recent, 7);
	cr_assert_eq(s.mapped, 7);
	isola__mirror_forget(NULL, SIZE_MAX);
	isola__mirror_stats_get(&s);
	cr_assert_eq(s.mapped, 0);
	for (int i = 0; i < 10; i++)
		isola_blob_release(blobs[i]);
}

Test(blobshm, only_sealed_memfds_of_the_announced_size_are_mapped)
{
	isola_blob *b = pattern_blob(8192, 1);
	struct isola__mirror *m;
	cr_assert_eq(isola__blob_mirror(b, &m), 0);
	isola_blob *out;
	cr_assert_eq(isola__mirror_map(m->id, 4096, m->fd, false, &out), ISOLA_EDECODE);
	int plain = memfd_create("plain", MFD_CLOEXEC);
	cr_assert_eq(ftruncate(plain, 8192), 0);
	cr_assert_eq(isola__mirror_map(77777, 8192, plain, false, &out), ISOLA_EDECODE);
	close(plain);
	isola_blob_release(b);
}

Test(blobshm, freed_mirrors_used_twice_are_told)
{
	uint64_t seq = isola__mirror_forget_seq(), ids[16];
	isola_blob *once = pattern_blob(100, 1), *twice = pattern_blob(100, 2);
	struct isola__mirror *m1, *m2;
	cr_assert_eq(isola__blob_mirror(once, &m1), 0);
	cr_assert_eq(isola__blob_mirror(twice, &m2), 0);
	m1->uses = 1;
	m2->uses = 2;
	uint64_t id2 = m2->id;
	isola_blob_release(once);
	isola_blob_release(twice);
	cr_assert_eq(isola__mirror_forgotten(&seq, ids, 16), 1);
	cr_assert_eq(ids[0], id2);
	cr_assert_eq(isola__mirror_forgotten(&seq, ids, 16), 0);
	/* More than the caller can take: forget all. */
	for (int i = 0; i < 20; i++) {
		isola_blob *b = pattern_blob(10, 3);
		struct isola__mirror *m;
		cr_assert_eq(isola__blob_mirror(b, &m), 0);
		m->uses = 5;
		isola_blob_release(b);
	}
	cr_assert_eq(isola__mirror_forgotten(&seq, ids, 16), SIZE_MAX);
}

Test(blobshm, try_retain_refuses_a_blob_being_freed)
{
	isola_blob *b = pattern_blob(10, 0);
	cr_assert(isola__blob_try_retain(b));
	isola_blob_release(b);
	b->refs = 0; /* as seen by a cache between the last release and the free */
	cr_assert(!(isola__blob_try_retain(b)));
	b->refs = 1;
	isola_blob_release(b);
}

Test(blobshm, fds_travel_tagged_and_in_datagrams_of_64)
{
	int sv[2];
	socket_pair(sv);
	isola_blob *b = pattern_blob(4096, 9);
	struct isola__mirror *m;
	cr_assert_eq(isola__blob_mirror(b, &m), 0);
	int fds[100];
	uint64_t ids[100];
	for (int i = 0; i < 100; i++) {
		fds[i] = m->fd;
		ids[i] = 1000 + (uint64_t)i;
	}
	int fds0 = open_fds();
	cr_assert_eq(isola__fds_send(sv[0], 5, fds, ids, 100, false, 0, NULL, NULL), 0);
	int got[100];
	uint64_t gid[100];
	cr_assert_eq(isola__fds_recv(sv[1], 5, got, gid, 100), 0);
	for (int i = 0; i < 100; i++) {
		struct stat a, c;
		cr_assert_eq(gid[i], 1000 + (uint64_t)i);
		cr_assert_eq(fstat(got[i], &a), 0);
		cr_assert_eq(fstat(m->fd, &c), 0);
		cr_assert_eq(a.st_ino, c.st_ino, "the same memfd");
		cr_assert(fcntl(got[i], F_GETFD) & FD_CLOEXEC);
		close(got[i]);
	}
	cr_assert_eq(open_fds(), fds0);
	cr_assert_eq(isola__fds_recv(sv[1], 6, got, gid, 1), ISOLA_ENOTFOUND, "nothing there");
	close(sv[0]);
	close(sv[1]);
	isola_blob_release(b);
}

Test(blobshm, earlier_tags_are_dropped_later_ones_kept)
{
	int sv[2];
	socket_pair(sv);
	isola_blob *b = pattern_blob(4096, 9);
	struct isola__mirror *m;
	cr_assert_eq(isola__blob_mirror(b, &m), 0);
	int fds[2] = { m->fd, m->fd };
	uint64_t ids[2] = { 1, 2 };
	int fds0 = open_fds();
	cr_assert_eq(isola__fds_send(sv[0], 1, fds, ids, 2, false, 0, NULL, NULL), 0);
	cr_assert_eq(isola__fds_send(sv[0], 2, fds, ids, 1, false, 0, NULL, NULL), 0);
	cr_assert_eq(isola__fds_send(sv[0], 9, fds, ids, 1, false, 0, NULL, NULL), 0);
	int got[2];
	uint64_t gid[2];
	cr_assert_eq(isola__fds_recv(sv[1], 2, got, gid, 1), 0, "tag 1 dropped on the way");
	close(got[0]);
	/* Tag 9 is a later request's: refused, and left for it. */
	cr_assert_eq(isola__fds_recv(sv[1], 3, got, gid, 1), ISOLA_EDECODE);
	cr_assert_eq(isola__fds_recv(sv[1], 9, got, gid, 1), 0);
	close(got[0]);
	cr_assert_eq(open_fds(), fds0, "the dropped ones were closed");
	close(sv[0]);
	close(sv[1]);
	isola_blob_release(b);
}

Test(blobshm, a_peer_gone_or_a_full_socket)
{
	int sv[2];
	socket_pair(sv);
	isola_blob *b = pattern_blob(4096, 9);
	struct isola__mirror *m;
	cr_assert_eq(isola__blob_mirror(b, &m), 0);
	uint64_t id = 1;
	int n = 0, r;
	while ((r = isola__fds_send(sv[0], 1, &m->fd, &id, 1, false, 0, NULL, NULL)) == 0)
		n++;
	cr_assert_eq(r, ISOLA_EAGAIN, "a full socket, never waiting");
	cr_assert_gt(n, 8);
	close(sv[1]);
	cr_assert_eq(isola__fds_send(sv[0], 1, &m->fd, &id, 1, false, 0, NULL, NULL), ISOLA_ECLOSED);
	close(sv[0]);
	isola_blob_release(b);
}

Test(blobshm, a_forked_child_maps_what_it_is_sent)
{
	int sv[2];
	socket_pair(sv);
	isola_blob *b = pattern_blob(2 << 20, 5);
	struct isola__mirror *m;
	cr_assert_eq(isola__blob_mirror(b, &m), 0);
	pid_t pid = fork();
	if (pid == 0) {
		close(sv[0]);
		int fd;
		uint64_t id;
		/* Wait (a little) for the datagram: recv never waits itself. */
		for (int i = 0; i < 2000 && isola__fds_recv(sv[1], 1, &fd, &id, 1) != 0; i++)
			usleep(1000);
		isola_blob *mapped;
		if (isola__mirror_map(id, 2 << 20, fd, false, &mapped) != 0) {
			isola_blob_release(b);
			_exit(2);
		}
		close(fd);
		const unsigned char *p;
		size_t len;
		isola_blob_data(mapped, (const void **)&p, &len);
		int bad = 0;
		for (size_t i = 0; i < len; i++)
			bad |= p[i] != (unsigned char)(i * 131 + 5);
		isola_blob_release(mapped); /* nothing left for valgrind to count */
		isola_blob_release(b);
		_exit(bad ? 3 : 0);
	}
	close(sv[1]);
	cr_assert_eq(isola__fds_send(sv[0], 1, &m->fd, &m->id, 1, true, 1000000, NULL, NULL), 0);
	/* The parent may drop its blob (and memfd) at once: the fd is in flight. */
	isola_blob_release(b);
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st));
	cr_assert_eq(WEXITSTATUS(st), 0);
	close(sv[0]);
}
