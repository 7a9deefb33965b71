/*
 * bench_blobshm.c - what a blob's mirror costs (channels/blobshm.h), per
 * size, against the copy it replaces.
 *
 *     build/py3.14/bench/bench_blobshm [reps]
 *
 * Per size, best of reps: fresh pages + memcpy (malloc's large-block path,
 * what a copy of the bytes into a new buffer costs), mmap of a new memfd
 * + memcpy (a mirror written through a mapping), the mirror as made
 * (pwrite into a new memfd, then seals), and a child's side: mapping it
 * read-only and touching every page.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "channels/blob.h"
#include "channels/blobshm.h"

static double now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

int main(int argc, char **argv)
{
	int reps = argc > 1 ? atoi(argv[1]) : 30;
	size_t sizes[] = { 16 << 10, 64 << 10, 256 << 10, 1 << 20, 16 << 20 };
	printf("best of %d, us: size, fresh pages+memcpy, memfd mmap+memcpy, mirror "
	       "(pwrite+seal), child map+touch\n", reps);
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		size_t n = sizes[s];
		unsigned char *src = malloc(n);
		memset(src, 7, n);
		double fresh = 1e18, mapcopy = 1e18, mirror = 1e18, child = 1e18;
		for (int r = 0; r < reps; r++) {
			double t0 = now_us();
			void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			memcpy(p, src, n);
			double t1 = now_us();
			munmap(p, n);
			fresh = t1 - t0 < fresh ? t1 - t0 : fresh;

			t0 = now_us();
			int fd = memfd_create("bench", MFD_CLOEXEC);
			if (ftruncate(fd, (off_t)n) != 0)
				return 1;
			p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
			memcpy(p, src, n);
			t1 = now_us();
			munmap(p, n);
			close(fd);
			mapcopy = t1 - t0 < mapcopy ? t1 - t0 : mapcopy;

			isola_blob *b;
			isola_blob_wrap(src, n, NULL, NULL, &b);
			struct isola__mirror *m;
			t0 = now_us();
			if (isola__blob_mirror(b, &m) != 0)
				return 1;
			t1 = now_us();
			mirror = t1 - t0 < mirror ? t1 - t0 : mirror;

			t0 = now_us();
			const volatile unsigned char *q = mmap(NULL, n, PROT_READ, MAP_SHARED, m->fd, 0);
			unsigned sum = 0;
			for (size_t i = 0; i < n; i += 4096)
				sum += q[i];
			munmap((void *)q, n);
			t1 = now_us();
			(void)sum;
			child = t1 - t0 < child ? t1 - t0 : child;
			isola_blob_release(b);
		}
		printf("%9zu %10.1f %10.1f %10.1f %10.1f\n", n, fresh, mapcopy, mirror, child);
		free(src);
	}
	return 0;
}
