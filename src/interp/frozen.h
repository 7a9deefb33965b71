/*
 * frozen.h - frozen values (isola.freeze): deeply immutable data written
 * once into an image, a blob that every interpreter reads in place.
 *
 * An image is isola's wire format (docs/wire.md) in which every list is a
 * FROZEN_SEQ (an offset table, then the items) and every dict a
 * FROZEN_MAP (a hash index, then the keys and values), so that one item
 * is found without reading the others.  Readers get views: FrozenMap and
 * FrozenSeq objects of their own interpreter pointing into the image,
 * which decode only what is read, into the reader's own heap.  Nothing
 * in an image is ever written after it is published, and nothing read
 * out of it points back into it: the lifetime rule is the blob's
 * (the image is freed when the last view, message or registry entry
 * holding it is gone).  An index places keys by Python's hashes (mixed
 * with a seed: frozen_index.c), so an image is only valid inside the
 * process that made it.
 */
#ifndef ISOLA_INTERP_FROZEN_H
#define ISOLA_INTERP_FROZEN_H

#include "interp/state.h"
#include "channels/blob.h" /* isola__blob_is_image */

#include <stdint.h>
#include <string.h>

/* Frozen containers are always written with a 6-byte ext32 header. */
#define ISOLA__FROZEN_HDR 6

/* A frozen mapping's payload: [u32 n][u32 cap][u32 seed][u32 maxd]
 * [cap x u32 slots][key value...] (docs/wire.md); the slots start here. */
#define ISOLA__FROZEN_MAP_HEAD 16

typedef struct {
	PyObject_HEAD
	PyObject *owner;        /* the isola.Buffer holding the image blob */
	const unsigned char *p; /* the container's payload */
	uint32_t size;          /* payload bytes */
	uint32_t n;             /* entries (map) / items of the whole sequence */
	uint32_t cap;           /* map: index slots (a power of two) */
	/* sequence: item i is item start + i * step of the payload */
	Py_ssize_t start, step, len;
	Py_hash_t hash;         /* -1 until computed */
} isola__frozen_obj;

static inline uint32_t isola__rd32(const unsigned char *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

/* The msgpack value at p (bounded by end) skipped: where the next one
 * starts, or NULL if it is malformed or nested past the codec's depth
 * (depth: how deep p already is). */
const unsigned char *isola__skip_value(const unsigned char *p, const unsigned char *end,
				       int depth);

/* Freeze obj into a new image (*out, one reference).  0, or a negative
 * ISOLA_E* code with TypeError/ValueError set naming the path. */
int isola__freeze_image(isola__state *st, PyObject *obj, isola_blob **out);

/* Decode the value at p (bounded by end) of the image owner holds: frozen
 * containers become views (thaw 0) or plain dicts/lists (thaw 1).  *next
 * (may be NULL) receives the end of the value.  NULL with ValueError on
 * bytes that are not a value. */
PyObject *isola__frozen_decode(isola__state *st, PyObject *owner, const unsigned char *p,
			       const unsigned char *end, int thaw, const unsigned char **next);

/* The container of ext type `type` whose payload is p[0..size): a view,
 * or (thaw) a plain dict/list. */
PyObject *isola__frozen_container(isola__state *st, PyObject *owner, int type,
				  const unsigned char *p, size_t size, int thaw);

/* The value at byte `offset` of image blob: what a FROZEN_REF or the
 * registry points at.  Checks that blob is an image and offset in it. */
PyObject *isola__frozen_at(isola__state *st, isola_blob *blob, size_t offset);

/* Where a view's container starts in its image (for FROZEN_REF). */
isola_blob *isola__frozen_blob(const isola__frozen_obj *f, size_t *offset);

/* Whether obj is a FrozenMap or FrozenSeq of this interpreter. */
static inline int isola__is_frozen_view(const isola__state *st, PyObject *obj)
{
	PyTypeObject *t = Py_TYPE(obj);
	return t == st->frozen_map_type || t == st->frozen_seq_type;
}

/* Whether a view covers its whole container (not a slice of it). */
static inline int isola__frozen_whole(const isola__frozen_obj *f)
{
	return f->start == 0 && f->step == 1 && f->len == (Py_ssize_t)f->n;
}

/* ---- the index of a mapping (frozen_index.c) ---- */

/* The hash a key is placed by: Python's, except a NaN's, which is its
 * bits (Python's is its address).  0, or -1 with an exception set
 * (unhashable). */
int isola__frozen_key_hash(PyObject *key, uint64_t *out);

/* Whether a frozen value read out equals another as a key or item:
 * Python's ==, except that a NaN equals a NaN of the same type and bits
 * (what identity is to a dict).  1, 0, or -1 with an exception. */
int isola__frozen_same(PyObject *a, PyObject *b);

/* What stands for a key or item (a tuple: each of its items) in a
 * FrozenMap's or FrozenSeq's hash: itself, or for a NaN a tuple of its
 * bits, so that views equal by isola__frozen_same hash alike (Python
 * hashes a NaN by its address).  A new reference, or NULL. */
PyObject *isola__frozen_hashable(PyObject *obj);

/* A key's home slot: its hash mixed with the image's seed (murmur3's
 * fmix64), masked to the table. */
static inline uint32_t isola__frozen_home(uint64_t hash, uint32_t seed, uint32_t mask)
{
	uint64_t k = hash ^ ((uint64_t)seed * 0x9e3779b97f4a7c15u);
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdu;
	k ^= k >> 33;
	k *= 0xc4ceb9fe1a85ec53u;
	k ^= k >> 33;
	return (uint32_t)k & mask;
}

/* Fill slots[0..cap) (cap a power of two above n) for n keys with these
 * hashes (isola__frozen_key_hash) and payload offsets: Robin Hood
 * insertion, with a seed that keeps the longest displacement small.
 * *seed and *maxd (the longest displacement) go in the header.  0 or
 * ISOLA_ENOMEM. */
int isola__frozen_index_build(unsigned char *slots, uint32_t cap, const uint64_t *hashes,
			      const uint32_t *offsets, uint32_t n, uint32_t *seed, uint32_t *maxd);

/* thaw(obj): plain dicts and lists for every view inside obj. */
PyObject *isola__thaw(isola__state *st, PyObject *obj);


/* Make the view types in module m and register them with
 * collections.abc (module exec). */
int isola__frozen_types_add(PyObject *m, isola__state *st);

extern PyType_Spec isola__frozen_map_spec, isola__frozen_seq_spec, isola__frozen_iter_spec;

#endif
