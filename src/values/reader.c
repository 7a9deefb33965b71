/*
 * reader.c - isola_reader: a message in isola's wire format (docs/wire.md)
 * as a tree of isola_value nodes, unpacked with msgpack-c.  Tuples, sets
 * and frozensets (ext 1-3) and exceptions (ext 11) are unpacked into
 * their items; blob and channel references (ext 12/13) resolve to the
 * message's attached references, a frozen reference (ext 18) to an
 * isola_frozen; other ext types are handed over raw.
 */
#include "isola.h"
#include "common/alloc.h"

#include "channels/blob.h"
#include "values/values.h"

#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#define READER_MAX_DEPTH 512 /* the codec's nesting limit */

struct isola_reader {
	const isola_msg *msg;
	msgpack_zone *zone;         /* every msgpack object unpacked, ext payloads too */
	isola_value *nodes;         /* one array, children after their parent's turn */
	size_t n, cap;
};

static isola_value *node_new(isola_reader *r)
{
	if (r->n == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 64;
		isola_value *v = isola__realloc(r->nodes, cap * sizeof(*v));
		if (v == NULL)
			return NULL;
		r->nodes = v;
		r->cap = cap;
	}
	isola_value *v = &r->nodes[r->n++];
	memset(v, 0, sizeof(*v));
	return v;
}

/* Nodes are addressed by index while the array may move; items[] is set
 * from indexes at the end (fixup). */
static int convert(isola_reader *r, const msgpack_object *o, size_t at, int depth);

static int convert_items(isola_reader *r, const msgpack_object *items, size_t n, size_t at,
			 int depth)
{
	size_t first = r->n;
	for (size_t i = 0; i < n; i++)
		if (node_new(r) == NULL)
			return ISOLA_ENOMEM;
	r->nodes[at].as.seq.n = n;
	r->nodes[at].as.seq.first_ = first;
	for (size_t i = 0; i < n; i++) {
		int e = convert(r, &items[i], first + i, depth + 1);
		if (e != 0)
			return e;
	}
	return 0;
}

/* A frozen reference: an attached image and an offset inside it. */
static int frozen_ref(isola_reader *r, const msgpack_object_ext *ext, isola_value *v)
{
	const unsigned char *p = (const unsigned char *)ext->ptr;
	int k;
	void *ptr;
	if (ext->size != 5 || isola_msg_ref(r->msg, p[0], &k, &ptr) != 0 ||
	    k != ISOLA_REF_BLOB || !isola__blob_is_image(ptr))
		return ISOLA_EINVAL;
	uint32_t off = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
	if (off >= ((isola_blob *)ptr)->len)
		return ISOLA_EINVAL;
	isola_frozen *f = msgpack_zone_malloc(r->zone, sizeof(*f));
	if (f == NULL)
		return ISOLA_ENOMEM;
	f->image = ptr; /* borrowed from the message, as blobs are */
	f->offset = off;
	v->type = ISOLA_VALUE_FROZEN;
	v->as.frozen = f;
	return 0;
}

/* The msgpack array inside an ext payload (tuple, set, exception). */
static int unpack_inner_array(isola_reader *r, const msgpack_object_ext *ext, msgpack_object *out)
{
	size_t off = 0;
	msgpack_unpack_return u = msgpack_unpack(ext->ptr, ext->size, &off, r->zone, out);
	if (u != MSGPACK_UNPACK_SUCCESS || off != ext->size || out->type != MSGPACK_OBJECT_ARRAY)
		return ISOLA_EINVAL;
	return 0;
}

static int convert(isola_reader *r, const msgpack_object *o, size_t at, int depth)
{
	if (depth > READER_MAX_DEPTH)
		return ISOLA_ELIMIT;
	isola_value *v = &r->nodes[at];
	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		v->type = ISOLA_VALUE_NIL;
		return 0;
	case MSGPACK_OBJECT_BOOLEAN:
		v->type = ISOLA_VALUE_BOOL;
		v->as.b = o->via.boolean;
		return 0;
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		if (o->via.u64 > INT64_MAX) {
			v->type = ISOLA_VALUE_UINT;
			v->as.u = o->via.u64;
		} else {
			v->type = ISOLA_VALUE_INT;
			v->as.i = (int64_t)o->via.u64;
		}
		return 0;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		v->type = ISOLA_VALUE_INT;
		v->as.i = o->via.i64;
		return 0;
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		v->type = ISOLA_VALUE_FLOAT;
		v->as.f = o->via.f64;
		return 0;
	case MSGPACK_OBJECT_STR:
		v->type = ISOLA_VALUE_STR;
		v->as.bytes.ptr = o->via.str.ptr;
		v->as.bytes.len = o->via.str.size;
		return 0;
	case MSGPACK_OBJECT_BIN:
		v->type = ISOLA_VALUE_BYTES;
		v->as.bytes.ptr = o->via.bin.ptr;
		v->as.bytes.len = o->via.bin.size;
		return 0;
	case MSGPACK_OBJECT_ARRAY:
		v->type = ISOLA_VALUE_LIST;
		return convert_items(r, o->via.array.ptr, o->via.array.size, at, depth);
	case MSGPACK_OBJECT_MAP: {
		v->type = ISOLA_VALUE_MAP;
		size_t n = o->via.map.size;
		size_t first = r->n;
		for (size_t i = 0; i < 2 * n; i++)
			if (node_new(r) == NULL)
				return ISOLA_ENOMEM;
		r->nodes[at].as.seq.n = n; /* pairs: items are key, value, key, ... */
		r->nodes[at].as.seq.first_ = first;
		for (size_t i = 0; i < n; i++) {
			int e = convert(r, &o->via.map.ptr[i].key, first + 2 * i, depth + 1);
			if (e == 0)
				e = convert(r, &o->via.map.ptr[i].val, first + 2 * i + 1, depth + 1);
			if (e != 0)
				return e;
		}
		return 0;
	}
	case MSGPACK_OBJECT_EXT: {
		const msgpack_object_ext *ext = &o->via.ext;
		int kind = ext->type == 1 ? ISOLA_VALUE_TUPLE : ext->type == 2 ? ISOLA_VALUE_SET
			   : ext->type == 3 ? ISOLA_VALUE_FROZENSET
			   : ext->type == 11 ? ISOLA_VALUE_EXCEPTION : -1;
		if (kind >= 0) {
			msgpack_object inner;
			int e = unpack_inner_array(r, ext, &inner);
			if (e != 0)
				return e;
			r->nodes[at].type = kind;
			return convert_items(r, inner.via.array.ptr, inner.via.array.size, at, depth);
		}
		if (ext->type == 12 || ext->type == 13) {
			if (ext->size != 1)
				return ISOLA_EINVAL;
			int k;
			void *ptr;
			if (isola_msg_ref(r->msg, (unsigned char)ext->ptr[0], &k, &ptr) != 0 ||
			    k != (ext->type == 12 ? ISOLA_REF_BLOB : ISOLA_REF_CHANNEL))
				return ISOLA_EINVAL; /* a reference the message does not carry */
			v->type = ext->type == 12 ? ISOLA_VALUE_BLOB : ISOLA_VALUE_CHANNEL;
			if (ext->type == 12)
				v->as.blob = ptr;
			else
				v->as.channel = ptr;
			return 0;
		}
		if (ext->type == 18) /* a frozen value: [ref index][u32 BE offset] */
			return frozen_ref(r, ext, v);
		v->type = ext->type == 4 ? ISOLA_VALUE_BIGINT : ISOLA_VALUE_EXT;
		v->ext_type = ext->type;
		v->as.bytes.ptr = ext->ptr;
		v->as.bytes.len = ext->size;
		return 0;
	}
	default:
		return ISOLA_EINVAL;
	}
}

void isola_reader_destroy(isola_reader *r)
{
	if (r == NULL)
		return;
	if (r->zone != NULL)
		msgpack_zone_free(r->zone);
	isola__free(r->nodes);
	isola__free(r);
}

/* Unpack msg into r (empty, with its zone): the tree, pointers fixed. */
static int load(isola_reader *r, const isola_msg *msg, const isola_value **root)
{
	const void *data;
	size_t len;
	isola_msg_bytes(msg, &data, &len);
	r->msg = msg;
	msgpack_object top;
	size_t off = 0;
	int e = msgpack_unpack(data, len, &off, r->zone, &top) == MSGPACK_UNPACK_SUCCESS && off == len
			? 0 : ISOLA_EINVAL;
	if (e == 0)
		e = node_new(r) ? convert(r, &top, 0, 0) : ISOLA_ENOMEM;
	if (e != 0)
		return e;
	/* The array stopped moving: turn indexes into pointers. */
	for (size_t i = 0; i < r->n; i++) {
		isola_value *v = &r->nodes[i];
		if (v->type == ISOLA_VALUE_LIST || v->type == ISOLA_VALUE_MAP ||
		    v->type == ISOLA_VALUE_TUPLE || v->type == ISOLA_VALUE_SET ||
		    v->type == ISOLA_VALUE_FROZENSET || v->type == ISOLA_VALUE_EXCEPTION)
			v->as.seq.items = v->as.seq.n ? &r->nodes[v->as.seq.first_] : NULL;
	}
	*root = &r->nodes[0];
	return 0;
}

int isola_reader_create(const isola_msg *msg, isola_reader **out, const isola_value **root)
{
	if (msg == NULL || out == NULL || root == NULL)
		return ISOLA_EINVAL;
	isola_reader *r = isola__calloc(1, sizeof(*r));
	if (r == NULL || (r->zone = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE)) == NULL) {
		isola_reader_destroy(r);
		return ISOLA_ENOMEM;
	}
	int e = load(r, msg, root);
	if (e != 0) {
		isola_reader_destroy(r);
		return e;
	}
	*out = r;
	return 0;
}

int isola__reader_reload(isola_reader *r, const isola_msg *msg, const isola_value **root)
{
	/* Frozen handles live in the zone and hold no reference (they
	 * borrow the message's), so clearing it drops nothing. */
	msgpack_zone_clear(r->zone);
	r->n = 0;
	int e = load(r, msg, root);
	if (e != 0) {
		msgpack_zone_clear(r->zone);
		r->n = 0;
	}
	return e;
}
