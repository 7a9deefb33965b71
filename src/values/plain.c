/*
 * plain.c - a message without references (values.h: isola__msg_plain).
 *
 * A message's references are this process's memory: a blob (large
 * bytes, an isola.Buffer) or a frozen image is a pointer, a channel a
 * handle.  Another process (a process worker) can take the bytes only.
 * This walks the msgpack value (docs/wire.md) and writes it again with
 * each blob reference (ext 12) as a bin of the blob's bytes and each
 * frozen reference (ext 18) as the plain value it reads as (a frozen
 * sequence as an array, a frozen mapping as a map in insertion order:
 * what isola.thaw gives).  Everything else is copied as it is, except
 * that the container ext types that hold values (tuple, set, frozenset,
 * exception) are written with an ext 32 header, their contents being
 * walked too.  A channel (ext 13) cannot be written so: ISOLA_ETYPE.
 * Python-free: the same bytes a codec with references turned off would
 * have written, as far as a decoder can tell.
 */
#include "values/values.h"

#include "channels/blob.h"
#include "common/alloc.h"

#include <stdint.h>
#include <string.h>

/* docs/wire.md's numbers (interp/wire.h is a layer above). */
enum {
	EXT_TUPLE = 1,
	EXT_SET = 2,
	EXT_FROZENSET = 3,
	EXT_EXCEPTION = 11,
	EXT_BLOB = 12,
	EXT_CHANNEL = 13,
	EXT_FROZEN_MAP = 16,
	EXT_FROZEN_SEQ = 17,
	EXT_FROZEN_REF = 18,
};

#define PLAIN_MAX_DEPTH 512  /* the codec's nesting limit */
#define FROZEN_MAP_HEAD 16   /* [u32 n][u32 cap][u32 seed][u32 maxd] */

struct out {
	unsigned char *b;
	size_t len, cap;
	const isola_msg *msg; /* the references */
};

static int grow(struct out *o, size_t more)
{
	if (more > SIZE_MAX - o->len)
		return ISOLA_ETOOBIG;
	if (o->len + more <= o->cap)
		return 0;
	size_t cap = o->cap ? o->cap : 256;
	while (cap < o->len + more)
		cap = cap > SIZE_MAX / 2 ? o->len + more : 2 * cap;
	unsigned char *b = isola__realloc(o->b, cap);
	if (b == NULL)
		return ISOLA_ENOMEM;
	o->b = b;
	o->cap = cap;
	return 0;
}

static int put(struct out *o, const void *p, size_t n)
{
	int r = grow(o, n);
	if (r == 0 && n > 0) {
		memcpy(o->b + o->len, p, n);
		o->len += n;
	}
	return r;
}

static void be(unsigned char *p, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)v;
}

static uint64_t rd_be(const unsigned char *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/* Native-order u32, as images store them (they never leave a process). */
static uint32_t rd32(const unsigned char *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

/* A header: fix (the one-byte form, or -1 if none), then tags for 8, 16
 * and 32-bit lengths. */
static int put_head(struct out *o, uint64_t n, int fix_base, uint64_t fix_max, int t8, int t16,
		    int t32)
{
	unsigned char h[5];
	if (fix_base >= 0 && n <= fix_max) {
		h[0] = (unsigned char)(fix_base | (int)n);
		return put(o, h, 1);
	}
	if (t8 >= 0 && n <= 0xff) {
		h[0] = (unsigned char)t8;
		h[1] = (unsigned char)n;
		return put(o, h, 2);
	}
	if (n <= 0xffff) {
		h[0] = (unsigned char)t16;
		be(h + 1, n, 2);
		return put(o, h, 3);
	}
	if (n > UINT32_MAX)
		return ISOLA_ETOOBIG;
	h[0] = (unsigned char)t32;
	be(h + 1, n, 4);
	return put(o, h, 5);
}

static int put_array(struct out *o, uint64_t n)
{
	return put_head(o, n, 0x90, 15, -1, 0xdc, 0xdd);
}

static int put_map(struct out *o, uint64_t n)
{
	return put_head(o, n, 0x80, 15, -1, 0xde, 0xdf);
}

static int put_bin(struct out *o, const void *p, size_t n)
{
	int r = put_head(o, n, -1, 0, 0xc4, 0xc5, 0xc6);
	return r ? r : put(o, p, n);
}

/* One value at *pp (before end) written plain to o; *pp moves past it.
 * image: inside a frozen image (frozen containers may appear). */
static int walk(struct out *o, const unsigned char **pp, const unsigned char *end, int depth,
		bool image);

/* A frozen container's payload p[0..size) (ext 16 or 17) as a map or an
 * array. */
static int walk_frozen(struct out *o, int type, const unsigned char *p, size_t size, int depth)
{
	const unsigned char *end = p + size;
	if (size < 4)
		return ISOLA_EDECODE;
	uint64_t n = rd32(p);
	if (type == EXT_FROZEN_SEQ) {
		if (4 + 4 * n > size)
			return ISOLA_EDECODE;
		int r = put_array(o, n);
		for (uint64_t i = 0; r == 0 && i < n; i++) {
			uint32_t off = rd32(p + 4 + 4 * i);
			const unsigned char *q = p + off;
			r = off < size ? walk(o, &q, end, depth + 1, true) : ISOLA_EDECODE;
		}
		return r;
	}
	if (size < FROZEN_MAP_HEAD)
		return ISOLA_EDECODE;
	uint64_t cap = rd32(p + 4);
	if (FROZEN_MAP_HEAD + 4 * cap > size)
		return ISOLA_EDECODE;
	const unsigned char *q = p + FROZEN_MAP_HEAD + 4 * cap; /* key value ... in order */
	int r = put_map(o, n);
	for (uint64_t i = 0; r == 0 && i < 2 * n; i++)
		r = walk(o, &q, end, depth + 1, true);
	return r;
}

/* The attached reference i of the message: a blob, else ETYPE (a
 * channel) or EDECODE (none). */
static int ref_blob(struct out *o, unsigned idx, isola_blob **blob)
{
	int kind;
	void *ptr;
	if (isola_msg_ref(o->msg, idx, &kind, &ptr) != 0)
		return ISOLA_EDECODE;
	if (kind != ISOLA_REF_BLOB)
		return ISOLA_ETYPE;
	*blob = ptr;
	return 0;
}

static int walk_ext(struct out *o, int8_t type, const unsigned char *hdr, size_t hdr_len,
		    const unsigned char *p, size_t size, int depth, bool image)
{
	switch (type) {
	case EXT_BLOB: {
		isola_blob *b;
		int r = size == 1 ? ref_blob(o, p[0], &b) : ISOLA_EDECODE;
		return r ? r : put_bin(o, b->data, b->len);
	}
	case EXT_CHANNEL:
		return ISOLA_ETYPE;
	case EXT_FROZEN_REF: {
		isola_blob *b;
		int r = size == 5 ? ref_blob(o, p[0], &b) : ISOLA_EDECODE;
		if (r != 0)
			return r;
		uint64_t off = rd_be(p + 1, 4);
		if (!isola__blob_is_image(b) || off >= b->len)
			return ISOLA_EDECODE;
		const unsigned char *q = (const unsigned char *)b->data + off;
		return walk(o, &q, (const unsigned char *)b->data + b->len, depth + 1, true);
	}
	case EXT_FROZEN_MAP:
	case EXT_FROZEN_SEQ:
		if (!image)
			break; /* not ours to read outside an image: as it is */
		return walk_frozen(o, type, p, size, depth);
	case EXT_TUPLE:
	case EXT_SET:
	case EXT_FROZENSET:
	case EXT_EXCEPTION: {
		/* ext 32 with the length patched after the contents. */
		unsigned char h[6] = { 0xc9, 0, 0, 0, 0, (unsigned char)type };
		size_t at = o->len;
		int r = put(o, h, sizeof(h));
		const unsigned char *q = p;
		if (r == 0)
			r = walk(o, &q, p + size, depth + 1, image);
		if (r == 0 && q != p + size)
			r = ISOLA_EDECODE; /* one value, exactly */
		if (r == 0 && o->len - at - sizeof(h) > UINT32_MAX)
			r = ISOLA_ETOOBIG;
		if (r == 0)
			be(o->b + at + 1, o->len - at - sizeof(h), 4);
		return r;
	}
	default:
		break;
	}
	int r = put(o, hdr, hdr_len);
	return r ? r : put(o, p, size);
}

static int walk(struct out *o, const unsigned char **pp, const unsigned char *end, int depth,
		bool image)
{
	const unsigned char *p = *pp;
	if (depth > PLAIN_MAX_DEPTH || p >= end)
		return ISOLA_EDECODE;
	size_t left = (size_t)(end - p);
	unsigned char c = p[0];
	uint64_t n = 0;   /* items (array), pairs (map) */
	size_t head = 1;  /* bytes of the header */
	size_t body = 0;  /* bytes after it, for scalars, str, bin */
	int kind = 0;     /* 0 scalar/str/bin, 1 array, 2 map, 3 ext */
	int8_t ext_type = 0;
	if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) {
	} else if (c <= 0x8f) {
		kind = 2, n = c & 0x0f;
	} else if (c <= 0x9f) {
		kind = 1, n = c & 0x0f;
	} else if (c <= 0xbf) {
		body = c & 0x1f;
	} else {
		static const struct { unsigned char tag, lenb, fixed, kind; } t[] = {
			{ 0xc4, 1, 0, 0 }, { 0xc5, 2, 0, 0 }, { 0xc6, 4, 0, 0 },   /* bin */
			{ 0xc7, 1, 0, 3 }, { 0xc8, 2, 0, 3 }, { 0xc9, 4, 0, 3 },   /* ext */
			{ 0xca, 0, 4, 0 }, { 0xcb, 0, 8, 0 },                     /* float */
			{ 0xcc, 0, 1, 0 }, { 0xcd, 0, 2, 0 }, { 0xce, 0, 4, 0 }, { 0xcf, 0, 8, 0 },
			{ 0xd0, 0, 1, 0 }, { 0xd1, 0, 2, 0 }, { 0xd2, 0, 4, 0 }, { 0xd3, 0, 8, 0 },
			{ 0xd4, 0, 1, 3 }, { 0xd5, 0, 2, 3 }, { 0xd6, 0, 4, 3 }, { 0xd7, 0, 8, 3 },
			{ 0xd8, 0, 16, 3 },                                       /* fixext */
			{ 0xd9, 1, 0, 0 }, { 0xda, 2, 0, 0 }, { 0xdb, 4, 0, 0 },   /* str */
			{ 0xdc, 2, 0, 1 }, { 0xdd, 4, 0, 1 },                     /* array */
			{ 0xde, 2, 0, 2 }, { 0xdf, 4, 0, 2 },                     /* map */
		};
		size_t i = 0;
		while (i < sizeof(t) / sizeof(t[0]) && t[i].tag != c)
			i++;
		if (i == sizeof(t) / sizeof(t[0]))
			return ISOLA_EDECODE; /* 0xc1 */
		kind = t[i].kind;
		if (left < 1 + (size_t)t[i].lenb)
			return ISOLA_EDECODE;
		uint64_t len = t[i].lenb ? rd_be(p + 1, t[i].lenb) : t[i].fixed;
		head = 1 + t[i].lenb;
		if (kind == 1 || kind == 2)
			n = len;
		else
			body = (size_t)len;
		if (kind == 3) { /* the type byte follows the length */
			if (left < head + 1)
				return ISOLA_EDECODE;
			ext_type = (int8_t)p[head];
			head++;
		}
	}
	if (left < head || left - head < body)
		return ISOLA_EDECODE;
	*pp = p + head + body;
	if (kind == 0)
		return put(o, p, head + body);
	if (kind == 3)
		return walk_ext(o, ext_type, p, head, p + head, body, depth, image);
	if (n > left) /* every item takes a byte at least */
		return ISOLA_EDECODE;
	int r = put(o, p, head);
	for (uint64_t i = 0; r == 0 && i < (kind == 2 ? 2 * n : n); i++)
		r = walk(o, pp, end, depth + 1, image);
	return r;
}

int isola__msg_plain(const isola_msg *in, isola_msg *out)
{
	isola_msg_init(out);
	const void *data;
	size_t len, nrefs = 0;
	isola_msg_bytes(in, &data, &len);
	isola_msg_ref_count(in, &nrefs);
	if (nrefs == 0)
		return isola_msg_set_bytes(out, data, len);
	struct out o = { .msg = in };
	const unsigned char *p = data, *end = p + len;
	int r = grow(&o, len + 64);
	if (r == 0 && len > 0)
		r = walk(&o, &p, end, 0, false);
	if (r == 0 && p != end)
		r = ISOLA_EDECODE; /* trailing bytes */
	if (r == 0 && o.len <= ISOLA_MSG_INLINE) {
		r = isola_msg_set_bytes(out, o.b, o.len);
		isola__free(o.b);
	} else if (r == 0) {
		r = isola_msg_adopt(out, o.b, o.len);
		if (r != 0)
			isola__free(o.b);
	} else {
		isola__free(o.b);
	}
	return r;
}
