/*
 * blobshm.c - mirrors of blobs in sealed memfds, their mappings in
 * process workers, and passing memfds over a unix socket (blobshm.h).
 *
 * Why pwrite and not a writable mapping in the parent: writing through
 * write(2) fills the memfd's pages without page-table work in this
 * process (bench/bench_blobshm.c on the 2-core VM of bench/README.md,
 * 16 MiB: 7.7 ms, against 16.4 ms for mmap + memcpy and 11.1 ms for
 * fresh pages + memcpy),
 * and with no writable mapping left the seals can be added at once
 * (F_SEAL_WRITE fails while one exists).
 */
#include "channels/blobshm.h"

#include "channels/blob.h"
#include "common/alloc.h"
#include "common/atomics.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define SEALS (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW)
#define RECENT 8                          /* mappings the cache keeps itself */
#define RECENT_BYTES ((size_t)256 << 20) /* ... up to this many bytes in all */

#define FORGET_RING 256 /* freed mirror ids remembered for the children */

static struct {
	uint64_t next_id; /* atomic */
	uint64_t forget_ids[FORGET_RING]; /* forget_lock */
	uint64_t forget_seq;              /* ids pushed so far: written under
					   * forget_lock, read also without (atomic) */
	pthread_mutex_t forget_lock;      /* a leaf: blob releases take it */
	uint64_t made, live, live_bytes, refused; /* atomic, figures */
	uint64_t maps, hits, mapped, mapped_bytes; /* atomic, figures */
	int cap;          /* live mirrors allowed, set once (atomic) */
	pthread_mutex_t make_lock;
} g = { .make_lock = PTHREAD_MUTEX_INITIALIZER, .forget_lock = PTHREAD_MUTEX_INITIALIZER };

/* ---- the parent's mirrors ------------------------------------------ */

static int mirror_cap(void)
{
	int cap = __atomic_load_n(&g.cap, __ATOMIC_RELAXED);
	if (cap == 0) {
		struct rlimit rl;
		rlim_t n = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 1024;
		if (n == RLIM_INFINITY || n > 4 * 65536)
			n = 4 * 65536;
		cap = (int)(n / 4) < 64 ? 64 : (int)(n / 4);
		__atomic_store_n(&g.cap, cap, __ATOMIC_RELAXED); /* same value from any thread */
	}
	return cap;
}

struct isola__mirror *isola__blob_mirror_peek(const isola_blob *blob)
{
	/* Acquire: pairs with the maker's release CAS (the fields first). */
	return __atomic_load_n(&blob->mirror, __ATOMIC_ACQUIRE);
}

static int make_mirror(const isola_blob *b, struct isola__mirror **out)
{
	if (__atomic_load_n(&g.live, __ATOMIC_RELAXED) >= (uint64_t)mirror_cap())
		return ISOLA_ELIMIT;
	struct isola__mirror *m = isola__malloc(sizeof(*m));
	if (m == NULL)
		return ISOLA_ENOMEM;
	int fd = memfd_create("isola-blob", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0) {
		isola__free(m);
		return ISOLA_ESYS;
	}
	int r = 0;
	/* One copy: the bytes go into the memfd's pages. */
	for (size_t off = 0; off < b->len && r == 0;) {
		ssize_t k = pwrite(fd, b->data + off, b->len - off, (off_t)off);
		if (k > 0)
			off += (size_t)k;
		else if (k < 0 && errno == EINTR)
			continue;
		else
			r = ISOLA_ESYS;
	}
	struct stat st;
	if (r == 0 && (fcntl(fd, F_ADD_SEALS, SEALS | F_SEAL_SEAL) != 0 || fstat(fd, &st) != 0 ||
		       (size_t)st.st_size != b->len))
		r = ISOLA_ESYS;
	if (r != 0) {
		close(fd);
		isola__free(m);
		return r;
	}
	m->fd = fd;
	m->ino = (uint64_t)st.st_ino;
	m->uses = 0;
	m->id = __atomic_add_fetch(&g.next_id, 1, __ATOMIC_RELAXED); /* unique, no order */
	*out = m;
	return 0;
}

int isola__blob_mirror(isola_blob *blob, struct isola__mirror **out)
{
	*out = NULL;
	if (blob == NULL || blob->len == 0)
		return ISOLA_EINVAL;
	struct isola__mirror *have = isola__blob_mirror_peek(blob);
	if (have != NULL) {
		*out = have;
		return 0;
	}
	/* One maker at a time: two threads sending a new blob at once make
	 * one copy, not two. */
	pthread_mutex_lock(&g.make_lock);
	int r = 0;
	have = isola__blob_mirror_peek(blob);
	if (have == NULL) {
		struct isola__mirror *m;
		r = make_mirror(blob, &m);
		if (r == 0) {
			/* Release: the mirror's fields before its pointer. */
			__atomic_store_n(&blob->mirror, m, __ATOMIC_RELEASE);
			isola__add_relaxed(&g.made, 1);
			isola__add_relaxed(&g.live, 1);
			isola__add_relaxed(&g.live_bytes, blob->len);
			have = m;
		} else {
			isola__add_relaxed(&g.refused, 1);
		}
	}
	pthread_mutex_unlock(&g.make_lock);
	*out = have;
	return r;
}

void isola__mirror_free(struct isola__mirror *m, size_t len)
{
	if (m == NULL)
		return;
	/* Relaxed: the last holder's release ordered every increment. */
	if (__atomic_load_n(&m->uses, __ATOMIC_RELAXED) > 1) {
		pthread_mutex_lock(&g.forget_lock);
		g.forget_ids[g.forget_seq % FORGET_RING] = m->id;
		/* Release: read without the lock by isola__mirror_forgotten. */
		__atomic_store_n(&g.forget_seq, g.forget_seq + 1, __ATOMIC_RELEASE);
		pthread_mutex_unlock(&g.forget_lock);
	}
	close(m->fd);
	isola__free(m);
	__atomic_sub_fetch(&g.live, 1, __ATOMIC_RELAXED);
	__atomic_sub_fetch(&g.live_bytes, len, __ATOMIC_RELAXED);
}

uint64_t isola__mirror_forget_seq(void)
{
	pthread_mutex_lock(&g.forget_lock);
	uint64_t seq = g.forget_seq;
	pthread_mutex_unlock(&g.forget_lock);
	return seq;
}

size_t isola__mirror_forgotten(uint64_t *seq, uint64_t *ids, size_t cap)
{
	/* Acquire: pairs with the release store below (the common case, no
	 * mirror freed since, takes no lock on a request's path). */
	if (__atomic_load_n(&g.forget_seq, __ATOMIC_ACQUIRE) == *seq)
		return 0;
	pthread_mutex_lock(&g.forget_lock);
	uint64_t now = g.forget_seq, from = *seq;
	size_t n = 0;
	if (now - from > cap || now - from > FORGET_RING) {
		n = SIZE_MAX;
	} else {
		for (uint64_t k = from; k < now; k++)
			ids[n++] = g.forget_ids[k % FORGET_RING];
	}
	*seq = now;
	pthread_mutex_unlock(&g.forget_lock);
	return n;
}

/* ---- the child's mappings ------------------------------------------- */

struct mapping {
	isola_blob *blob; /* weak: the entry goes when the blob is freed */
	uint64_t id, ino;
	struct mapping *next;
};

#define TABLE 256
static struct {
	pthread_mutex_t lock;
	struct mapping *table[TABLE];
	isola_blob *recent[RECENT]; /* [0] newest; strong references */
	size_t nrecent, recent_bytes;
} c = { .lock = PTHREAD_MUTEX_INITIALIZER };

static struct mapping **slot_of(uint64_t id)
{
	return &c.table[(id * 0x9e3779b97f4a7c15ULL) >> 56];
}

/* The blob's free function: unlink the entry, unmap. */
static void mapping_free(void *ctx, void *data, size_t len)
{
	struct mapping *e = ctx;
	pthread_mutex_lock(&c.lock);
	for (struct mapping **p = slot_of(e->id); *p != NULL; p = &(*p)->next) {
		if (*p == e) {
			*p = e->next;
			break;
		}
	}
	pthread_mutex_unlock(&c.lock);
	if (len > 0)
		munmap(data, len);
	isola__free(e);
	__atomic_sub_fetch(&g.mapped, 1, __ATOMIC_RELAXED);
	__atomic_sub_fetch(&g.mapped_bytes, len, __ATOMIC_RELAXED);
}

bool isola__blob_mapped(const isola_blob *blob, uint64_t *id, uint64_t *ino)
{
	if (blob == NULL || blob->free_fn != mapping_free)
		return false;
	const struct mapping *e = blob->ctx;
	*id = e->id;
	*ino = e->ino;
	return true;
}

/* Keep b among the recent mappings (the cache's own reference), newest
 * first; what falls out goes to *drop (released by the caller, outside
 * the lock: its free function takes it).  c.lock held. */
static size_t keep_recent(isola_blob *b, bool keep, isola_blob **drop)
{
	size_t ndrop = 0, at = c.nrecent;
	for (size_t i = 0; i < c.nrecent; i++)
		if (c.recent[i] == b)
			at = i;
	if (at < c.nrecent) { /* already kept: to the front */
		memmove(c.recent + 1, c.recent, at * sizeof(c.recent[0]));
		c.recent[0] = b;
		return 0;
	}
	if (!keep || b->len > RECENT_BYTES)
		return 0; /* unmapped with its last holder */
	isola_blob_retain(b);
	while (c.nrecent > 0 && (c.nrecent == RECENT || c.recent_bytes + b->len > RECENT_BYTES)) {
		isola_blob *old = c.recent[--c.nrecent];
		c.recent_bytes -= old->len;
		drop[ndrop++] = old;
	}
	memmove(c.recent + 1, c.recent, c.nrecent * sizeof(c.recent[0]));
	c.recent[0] = b;
	c.nrecent++;
	c.recent_bytes += b->len;
	return ndrop;
}

int isola__mirror_map(uint64_t id, size_t len, int fd, bool keep, isola_blob **out)
{
	*out = NULL;
	if (id == 0 || len == 0)
		return ISOLA_EINVAL;
	isola_blob *drop[RECENT];
	size_t ndrop = 0;
	pthread_mutex_lock(&c.lock);
	for (struct mapping *e = *slot_of(id); e != NULL; e = e->next) {
		/* An entry whose blob is being freed (no reference left) is
		 * not found: it unlinks itself. */
		if (e->id == id && e->blob->len == len && isola__blob_try_retain(e->blob)) {
			*out = e->blob;
			ndrop = keep_recent(e->blob, keep, drop);
			break;
		}
	}
	pthread_mutex_unlock(&c.lock);
	for (size_t i = 0; i < ndrop; i++)
		isola_blob_release(drop[i]);
	if (*out != NULL) {
		isola__add_relaxed(&g.hits, 1);
		return 0;
	}
	if (fd < 0)
		return ISOLA_ENOTFOUND;
	/* Only a sealed memfd of the announced size: its pages can neither
	 * change under a reader nor go away (a shrink would SIGBUS it). */
	struct stat st;
	int seals = fcntl(fd, F_GET_SEALS);
	if (fstat(fd, &st) != 0 || (size_t)st.st_size != len || seals < 0 ||
	    (seals & SEALS) != SEALS)
		return ISOLA_EDECODE;
	struct mapping *e = isola__malloc(sizeof(*e));
	if (e == NULL)
		return ISOLA_ENOMEM;
	void *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		isola__free(e);
		return ISOLA_ESYS;
	}
	isola_blob *b;
	if (isola_blob_wrap(p, len, mapping_free, e, &b) != 0) {
		munmap(p, len);
		isola__free(e);
		return ISOLA_ENOMEM;
	}
	isola__add_relaxed(&g.maps, 1);
	isola__add_relaxed(&g.mapped, 1);
	isola__add_relaxed(&g.mapped_bytes, len);
	e->blob = b;
	e->id = id;
	e->ino = (uint64_t)st.st_ino;
	pthread_mutex_lock(&c.lock);
	struct mapping **slot = slot_of(id);
	e->next = *slot;
	*slot = e;
	ndrop = keep_recent(b, keep, drop);
	pthread_mutex_unlock(&c.lock);
	for (size_t i = 0; i < ndrop; i++)
		isola_blob_release(drop[i]);
	*out = b;
	return 0;
}

void isola__mirror_forget(const uint64_t *ids, size_t n)
{
	isola_blob *drop[RECENT];
	size_t ndrop = 0, kept = 0;
	pthread_mutex_lock(&c.lock);
	for (size_t i = 0; i < c.nrecent; i++) {
		isola_blob *b = c.recent[i];
		const struct mapping *e = b->ctx;
		bool gone = n == SIZE_MAX;
		for (size_t k = 0; !gone && k < n; k++)
			gone = ids[k] == e->id;
		if (gone) {
			drop[ndrop++] = b;
			c.recent_bytes -= b->len;
		} else {
			c.recent[kept++] = b;
		}
	}
	c.nrecent = kept;
	pthread_mutex_unlock(&c.lock);
	for (size_t i = 0; i < ndrop; i++)
		isola_blob_release(drop[i]);
}

void isola__mirror_stats_get(isola__mirror_stats *out)
{
	/* Relaxed: figures, each read whole. */
	out->made = isola__load_relaxed(&g.made);
	out->live = isola__load_relaxed(&g.live);
	out->live_bytes = isola__load_relaxed(&g.live_bytes);
	out->refused = isola__load_relaxed(&g.refused);
	out->maps = isola__load_relaxed(&g.maps);
	out->hits = isola__load_relaxed(&g.hits);
	out->mapped = isola__load_relaxed(&g.mapped);
	out->mapped_bytes = isola__load_relaxed(&g.mapped_bytes);
	pthread_mutex_lock(&c.lock);
	out->recent = c.nrecent;
	pthread_mutex_unlock(&c.lock);
}

/* ---- passing fds --------------------------------------------------- */

struct fds_head {
	uint64_t tag;
	uint32_t n;
	uint32_t pad;
};

static int send_one(int sock, uint64_t tag, const int *fds, const uint64_t *ids, size_t n,
		    bool wait, int64_t slice_ns, int (*check)(void *), void *arg)
{
	struct fds_head h = { .tag = tag, .n = (uint32_t)n };
	struct iovec v[2] = { { &h, sizeof(h) }, { (void *)ids, n * sizeof(uint64_t) } };
	union {
		char buf[CMSG_SPACE(sizeof(int) * ISOLA__FDS_PER_DATAGRAM)];
		struct cmsghdr align;
	} u;
	memset(&u, 0, sizeof(u));
	struct msghdr mh = { .msg_iov = v, .msg_iovlen = 2, .msg_control = u.buf,
			     .msg_controllen = CMSG_SPACE(sizeof(int) * n) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int) * n);
	memcpy(CMSG_DATA(cm), fds, sizeof(int) * n);
	for (;;) {
		ssize_t k = sendmsg(sock, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (k >= 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN ||
		    errno == ECONNREFUSED)
			return ISOLA_ECLOSED;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return ISOLA_ESYS;
		if (!wait)
			return ISOLA_EAGAIN;
		struct pollfd p = { .fd = sock, .events = POLLOUT };
		int ms = (int)(slice_ns / 1000000);
		poll(&p, 1, ms > 0 ? ms : 1);
		int r = check != NULL ? check(arg) : 0;
		if (r != 0)
			return r;
	}
}

int isola__fds_send(int sock, uint64_t tag, const int *fds, const uint64_t *ids, size_t n,
		    bool wait, int64_t slice_ns, int (*check)(void *), void *arg)
{
	for (size_t off = 0; off < n; off += ISOLA__FDS_PER_DATAGRAM) {
		size_t k = n - off < ISOLA__FDS_PER_DATAGRAM ? n - off : ISOLA__FDS_PER_DATAGRAM;
		int r = send_one(sock, tag, fds + off, ids + off, k, wait, slice_ns, check, arg);
		if (r != 0)
			return r;
	}
	return 0;
}

/* Take the next datagram: its head, up to cap ids and the fds it
 * carried (*nfd of them, the caller's).  0, ENOTFOUND (none), ELIMIT
 * (its fds were dropped: this process is out of descriptors), EDECODE,
 * ESYS. */
static int take_one(int sock, struct fds_head *h, uint64_t *ids, int *fds, size_t cap, size_t *nfd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * ISOLA__FDS_PER_DATAGRAM)];
		struct cmsghdr align;
	} u;
	uint64_t idbuf[ISOLA__FDS_PER_DATAGRAM];
	struct iovec v[2] = { { h, sizeof(*h) }, { idbuf, sizeof(idbuf) } };
	struct msghdr mh = { .msg_iov = v, .msg_iovlen = 2, .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf) };
	ssize_t k;
	do
		k = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	while (k < 0 && errno == EINTR);
	*nfd = 0;
	if (k < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? ISOLA_ENOTFOUND : ISOLA_ESYS;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t got = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < got && *nfd < ISOLA__FDS_PER_DATAGRAM; i++)
			memcpy(&fds[(*nfd)++], CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
	}
	/* A short datagram, ids and fds that disagree, or fds lost on the
	 * way (MSG_CTRUNC: this process is out of descriptors). */
	if ((size_t)k < sizeof(*h) || h->n > cap || (size_t)k != sizeof(*h) + h->n * sizeof(uint64_t) ||
	    *nfd != h->n || (mh.msg_flags & MSG_CTRUNC)) {
		for (size_t i = 0; i < *nfd; i++)
			close(fds[i]);
		*nfd = 0;
		return (mh.msg_flags & MSG_CTRUNC) ? ISOLA_ELIMIT : ISOLA_EDECODE;
	}
	memcpy(ids, idbuf, h->n * sizeof(uint64_t));
	return 0;
}

int isola__fds_recv(int sock, uint64_t tag, int *fds, uint64_t *ids, size_t n)
{
	size_t got = 0;
	int r = 0;
	while (got < n) {
		/* Look first: a datagram of a later request stays for it. */
		struct fds_head h;
		ssize_t k;
		do
			k = recv(sock, &h, sizeof(h), MSG_PEEK | MSG_DONTWAIT);
		while (k < 0 && errno == EINTR);
		if (k < 0) {
			r = errno == EAGAIN || errno == EWOULDBLOCK ? ISOLA_ENOTFOUND : ISOLA_ESYS;
			break;
		}
		if ((size_t)k == sizeof(h) && h.tag > tag) {
			r = ISOLA_EDECODE;
			break;
		}
		int tmp[ISOLA__FDS_PER_DATAGRAM];
		uint64_t tids[ISOLA__FDS_PER_DATAGRAM];
		size_t nfd;
		r = take_one(sock, &h, tids, tmp, ISOLA__FDS_PER_DATAGRAM, &nfd);
		if (r == ISOLA_EDECODE && h.tag < tag) {
			r = 0; /* a malformed leftover of an earlier request */
			continue;
		}
		if (r != 0)
			break;
		if (h.tag < tag || got + nfd > n) { /* a leftover (a request sent another way) */
			for (size_t i = 0; i < nfd; i++)
				close(tmp[i]);
			if (h.tag < tag)
				continue;
			r = ISOLA_EDECODE;
			break;
		}
		memcpy(fds + got, tmp, nfd * sizeof(int));
		memcpy(ids + got, tids, nfd * sizeof(uint64_t));
		got += nfd;
	}
	if (r != 0) {
		for (size_t i = 0; i < got; i++)
			close(fds[i]);
	}
	return r;
}
