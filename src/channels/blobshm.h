/*
 * blobshm.h - blobs shared with process workers without a copy per
 * process (internal; Python-free).
 *
 * Parent side: a blob sent to a process worker gets, once, a mirror: a
 * memfd holding a copy of its bytes, sealed (no write, shrink or grow)
 * after that one copy, cached on the blob (blob->mirror) and closed when
 * the blob is freed.  Each request that carries the blob passes the
 * memfd to the child (SCM_RIGHTS over a unix socket, isola__fds_send)
 * and names it by its id.
 *
 * Child side: isola__mirror_map maps a mirror read-only and wraps the
 * mapping in a blob (its bytes are the parent's pages: no copy).  Mappings
 * are cached by mirror id: a blob is found again while anything holds it;
 * a mirror the parent has sent more than once (a Buffer sent task after
 * task) also stays mapped after its holders are gone, among the last 8
 * such (256 MiB at most), until the parent says it freed the mirror
 * (isola__mirror_forgotten: the ids travel with the next request) or the
 * cache drops it for a newer one.  Other mappings are unmapped when their
 * last holder releases them.
 *
 * Thread rules: any thread, both sides.
 */
#ifndef ISOLA_CHANNELS_BLOBSHM_H
#define ISOLA_CHANNELS_BLOBSHM_H

#include "isola.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct isola__mirror {
	int fd;        /* sealed memfd, close-on-exec; closed with the blob */
	uint64_t id;   /* unique in this process, never 0 */
	uint64_t ino;  /* the memfd's inode (tests and stats) */
	uint64_t uses; /* atomic: tasks it was submitted with */
};

/* blob's mirror, made now if it has none (one copy: pwrite into a new
 * memfd).  0 with *out borrowed (valid while the caller holds blob), or
 * ISOLA_ELIMIT (as many mirrors live as this process allows: a quarter
 * of RLIMIT_NOFILE, at least 64), ISOLA_ESYS, ISOLA_ENOMEM.  A blob of 0
 * bytes is never mirrored (ISOLA_EINVAL). */
int isola__blob_mirror(isola_blob *blob, struct isola__mirror **out);

/* The mirror blob has, or NULL (no mirror made). */
struct isola__mirror *isola__blob_mirror_peek(const isola_blob *blob);

/* Mirrors freed (whose ids went to children that may keep them: used
 * more than once) since *seq, into ids[0..cap): their number, or
 * SIZE_MAX when more than cap (or than the last 256) were freed (forget
 * them all).  *seq moves to now.  A new child starts from
 * isola__mirror_forget_seq(). */
size_t isola__mirror_forgotten(uint64_t *seq, uint64_t *ids, size_t cap);
uint64_t isola__mirror_forget_seq(void);

/* Called by isola_blob_release with the last reference (len: the blob's). */
void isola__mirror_free(struct isola__mirror *m, size_t len);

/* Whether blob is a child's mapping of a mirror; then its id and inode. */
bool isola__blob_mapped(const isola_blob *blob, uint64_t *id, uint64_t *ino);

/* The child's mapping of mirror id (len bytes): from the cache (fd may
 * be -1 then), else mapped from fd (which stays the caller's).  keep:
 * the cache keeps it mapped after its holders are gone (see above).
 * *out: a new reference.  0, or ISOLA_ENOTFOUND (not cached and no fd),
 * ISOLA_EDECODE (fd is not a sealed memfd of len bytes), ISOLA_ESYS
 * (mmap failed), ISOLA_ENOMEM. */
int isola__mirror_map(uint64_t id, size_t len, int fd, bool keep, isola_blob **out);

/* The parent freed these mirrors: the cache lets go of them (unmapped
 * once nothing else holds them).  n == SIZE_MAX: all of them. */
void isola__mirror_forget(const uint64_t *ids, size_t n);

typedef struct isola__mirror_stats {
	/* parent side */
	uint64_t made;       /* mirrors made */
	uint64_t live;       /* mirrors alive (memfds open) */
	uint64_t live_bytes;
	uint64_t refused;    /* not made (limit, or memfd/pwrite failed) */
	/* child side */
	uint64_t maps;       /* mmap calls */
	uint64_t hits;       /* found in the cache */
	uint64_t mapped;     /* mappings alive */
	uint64_t mapped_bytes;
	uint64_t recent;     /* of them, kept by the cache itself */
} isola__mirror_stats;

void isola__mirror_stats_get(isola__mirror_stats *out);

/* ---- passing memfds (SCM_RIGHTS over a SOCK_SEQPACKET unix socket) ---- */

/* Datagrams of at most this many fds each. */
#define ISOLA__FDS_PER_DATAGRAM 64

/* Send n (fd, id) pairs tagged with tag (a request's number), in
 * datagrams of up to ISOLA__FDS_PER_DATAGRAM.  wait: when the socket is
 * full, poll it in slices of slice_ns, calling check(arg) between them
 * (a non-zero return ends the send with that code); else ISOLA_EAGAIN.
 * 0, or ISOLA_EAGAIN, ISOLA_ECLOSED (the peer is gone), ISOLA_ESYS.  The
 * fds stay the caller's (the peer gets its own). */
int isola__fds_send(int sock, uint64_t tag, const int *fds, const uint64_t *ids, size_t n,
		    bool wait, int64_t slice_ns, int (*check)(void *), void *arg);

/* Receive the n (fd, id) pairs tagged tag, never waiting: datagrams of
 * an earlier tag are dropped (their fds closed).  0 with fds[0..n) the
 * caller's to close, or ISOLA_ENOTFOUND (not there, or fewer than n),
 * ISOLA_ELIMIT (the kernel dropped them: this process is out of file
 * descriptors), ISOLA_EDECODE (a datagram of a later tag, or a malformed
 * one: left where it is, or dropped), ISOLA_ESYS.  On failure nothing is left
 * open. */
int isola__fds_recv(int sock, uint64_t tag, int *fds, uint64_t *ids, size_t n);

#endif
