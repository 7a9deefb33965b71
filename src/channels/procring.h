/*
 * procring.h - messages between two processes through shared memory: the
 * process lane's transport (Python-free).
 *
 * One region (a memfd, mapped by both processes) holds two
 * single-producer/single-consumer byte rings: the parent writes to the
 * child on one and reads from it on the other.  A message is a 64-bit
 * length and that many bytes; a message bigger than the ring streams
 * through it (the writer waits for room, the reader for data), so any
 * size travels.  Each side sleeps on a process-shared futex word of the
 * ring it waits on, after a short spin, and only a side that sleeps costs
 * its peer a wake-up system call (a sleeping flag beside the word).
 *
 * A dead peer: a sleeper never sleeps longer than a slice of the
 * caller's choosing, and between slices calls check(arg); the caller's
 * check says whether the peer lives (the parent reaps its child with
 * waitpid, the child compares getppid()).  A non-zero return ends the
 * wait with that code.  Either side can also close its outgoing ring
 * (a clean goodbye): the reader sees ISOLA_ECLOSED once it is empty.
 *
 * Invariant of one ring: 0 <= head - tail <= cap; only the producer
 * writes head and only the consumer writes tail; bytes in
 * [tail, head) are the consumer's, the rest the producer's.
 */
#ifndef ISOLA_CHANNELS_PROCRING_H
#define ISOLA_CHANNELS_PROCRING_H

#include "channels/wait.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

typedef struct isola__procshm isola__procshm;

/* Which end of the region a process holds. */
enum isola__proc_side {
	ISOLA__PROC_PARENT = 0, /* writes ring 0, reads ring 1 */
	ISOLA__PROC_CHILD = 1,  /* writes ring 1, reads ring 0 */
};

/* Create a region with two rings of cap bytes each (rounded up to a power
 * of two, at least 4 KiB): *out is mapped, *fd the memfd to hand to the
 * child (close-on-exec; the spawner dups it into the child).  0,
 * ISOLA_EINVAL (cap over 1 GiB), or ISOLA_ESYS. */
int isola__procshm_create(size_t cap, isola__procshm **out, int *fd);

/* Map the region behind fd (the child's end); fd stays the caller's.
 * 0, or ISOLA_EINVAL (not such a region), ISOLA_ESYS. */
int isola__procshm_attach(int fd, isola__procshm **out);

/* Unmap (NULL is fine).  The other process keeps its own mapping. */
void isola__procshm_unmap(isola__procshm *s);

/* A word the parent and the child share beside the rings (the process
 * lane keeps the id of a task to interrupt there). */
uint64_t *isola__procshm_word(isola__procshm *s);

/* The caller's check between sleeps: 0 to go on, else the code to end
 * the wait with (e.g. ISOLA_ECLOSED: the peer died). */
typedef int (*isola__proc_check)(void *arg);

/* Send the concatenation of iov[0..n) as one message on side's outgoing
 * ring.  Waits for room until the deadline, sleeping at most slice_ns at
 * a time and calling check(arg) (NULL: none) between sleeps.  0, or
 * ISOLA_ETIMEDOUT, ISOLA_ECLOSED (the peer closed its end: nobody
 * reads), or check's code.  A send that failed part way leaves the ring
 * unusable (callers then drop the peer). */
int isola__procring_send(isola__procshm *s, int side, const struct iovec *iov, int n,
			 const isola__deadline *d, int64_t slice_ns, isola__proc_check check,
			 void *arg);

/* Receive one message from side's incoming ring into *buf (malloc'd with
 * isola__malloc, the caller's; *len bytes).  Waits as send does.  0, or
 * ISOLA_ETIMEDOUT (nothing was taken), ISOLA_ECLOSED (the peer closed
 * and the ring is empty), ISOLA_ENOMEM, or check's code. */
int isola__procring_recv(isola__procshm *s, int side, void **buf, size_t *len,
			 const isola__deadline *d, int64_t slice_ns, isola__proc_check check,
			 void *arg);

/* Bytes side can write to its outgoing ring now without waiting (the
 * producer's view: only grows until this side writes).  Any thread of the
 * producer's process. */
size_t isola__procring_room(isola__procshm *s, int side);

/* Close side's outgoing ring (the peer reads what is left, then
 * ISOLA_ECLOSED) and its incoming one (the peer's sends fail with
 * ISOLA_ECLOSED); wakes the peer. */
void isola__procring_close(isola__procshm *s, int side);

#endif
