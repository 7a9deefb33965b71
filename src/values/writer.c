/*
 * writer.c - isola_writer: values in isola's wire format (docs/wire.md)
 * written with msgpack-c's packer, so C callers never write msgpack by
 * hand.  Containers close by themselves once their n items are written;
 * a tuple (ext 1) is an ext 32 whose length is patched then, as the
 * codec writes it.  References (blobs, channels) are attached to the
 * message being built as they are written (ext 12/13 carry the index).
 */
#include "isola.h"
#include "common/alloc.h"

#include "channels/blob.h"
#include "values/values.h"

#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#define WRITER_MAX_DEPTH 512 /* the codec's nesting limit */

struct frame {
	size_t left;      /* items (map: keys + values) still to write */
	size_t ext_at;    /* tuple: offset of its ext 32 header, else SIZE_MAX */
};

struct isola_writer {
	msgpack_sbuffer sb;
	msgpack_packer pk;
	isola_msg refs; /* the references written so far (no payload) */
	struct frame stack[WRITER_MAX_DEPTH];
	int depth;
	int done;   /* the top-level value is complete */
	int failed; /* an allocation failed: finish reports ENOMEM */
	int overfull; /* a second top-level value was refused (ESTATE) */
};

int isola_writer_create(isola_writer **out)
{
	if (out == NULL)
		return ISOLA_EINVAL;
	isola_writer *w = isola__calloc(1, sizeof(*w));
	if (w == NULL)
		return ISOLA_ENOMEM;
	msgpack_sbuffer_init(&w->sb);
	msgpack_packer_init(&w->pk, &w->sb, msgpack_sbuffer_write);
	isola_msg_init(&w->refs);
	*out = w;
	return 0;
}

/* Empty w; a buffer of the first chunk's size is kept for the next
 * value (a writer reused call after call allocates nothing more). */
static void reset(isola_writer *w)
{
	if (w->sb.alloc <= MSGPACK_SBUFFER_INIT_SIZE) {
		w->sb.size = 0;
	} else {
		msgpack_sbuffer_destroy(&w->sb);
		msgpack_sbuffer_init(&w->sb);
	}
	isola_msg_clear(&w->refs);
	w->depth = 0;
	w->done = 0;
	w->failed = 0;
	w->overfull = 0;
}

void isola_writer_destroy(isola_writer *w)
{
	if (w == NULL)
		return;
	reset(w);
	msgpack_sbuffer_destroy(&w->sb);
	isola__free(w);
}

/* Before a value: is there room for one? */
static int room(isola_writer *w)
{
	if (w == NULL)
		return ISOLA_EINVAL;
	if (w->done) {
		w->overfull = 1; /* remembered: a host call reports it */
		return ISOLA_ESTATE; /* one top-level value per message */
	}
	return 0;
}

/* After a complete value (a scalar, or a container's last item). */
static void value_done(isola_writer *w)
{
	for (;;) {
		if (w->depth == 0) {
			w->done = 1;
			return;
		}
		struct frame *f = &w->stack[w->depth - 1];
		if (--f->left > 0)
			return;
		if (f->ext_at != SIZE_MAX) { /* a tuple: patch its ext 32 length */
			size_t len = w->sb.size - f->ext_at - 6;
			unsigned char *h = (unsigned char *)w->sb.data + f->ext_at + 1;
			h[0] = (unsigned char)(len >> 24);
			h[1] = (unsigned char)(len >> 16);
			h[2] = (unsigned char)(len >> 8);
			h[3] = (unsigned char)len;
		}
		w->depth--; /* the container itself is a complete value now */
	}
}

static int packed(isola_writer *w, int r)
{
	if (r != 0) {
		w->failed = 1;
		return ISOLA_ENOMEM;
	}
	value_done(w);
	return 0;
}

int isola_write_nil(isola_writer *w)
{
	int r = room(w);
	return r ? r : packed(w, msgpack_pack_nil(&w->pk));
}

int isola_write_bool(isola_writer *w, int value)
{
	int r = room(w);
	return r ? r : packed(w, value ? msgpack_pack_true(&w->pk) : msgpack_pack_false(&w->pk));
}

int isola_write_int(isola_writer *w, int64_t value)
{
	int r = room(w);
	return r ? r : packed(w, msgpack_pack_int64(&w->pk, value));
}

int isola_write_uint(isola_writer *w, uint64_t value)
{
	int r = room(w);
	return r ? r : packed(w, msgpack_pack_uint64(&w->pk, value));
}

int isola_write_float(isola_writer *w, double value)
{
	int r = room(w);
	return r ? r : packed(w, msgpack_pack_double(&w->pk, value));
}

int isola_write_str(isola_writer *w, const char *s, size_t len)
{
	int r = room(w);
	if (r)
		return r;
	if (s == NULL && len != 0)
		return ISOLA_EINVAL;
	if (len == ISOLA_STRLEN)
		len = s ? strlen(s) : 0;
	if (len > UINT32_MAX)
		return ISOLA_ETOOBIG;
	return packed(w, msgpack_pack_str_with_body(&w->pk, s, len));
}

int isola_write_bytes(isola_writer *w, const void *data, size_t len)
{
	int r = room(w);
	if (r)
		return r;
	if (data == NULL && len != 0)
		return ISOLA_EINVAL;
	if (len > UINT32_MAX)
		return ISOLA_ETOOBIG;
	return packed(w, msgpack_pack_bin_with_body(&w->pk, data, len));
}

/* Open a container of n > 0 items; an empty one is complete at once. */
static int open_container(isola_writer *w, size_t n, size_t ext_at)
{
	if (n == 0) {
		value_done(w);
		return 0;
	}
	w->stack[w->depth++] = (struct frame){ .left = n, .ext_at = ext_at };
	return 0;
}

/* Before a container header: room for a value, n items allowed, and one
 * more level of nesting. */
static int can_open(isola_writer *w, size_t n, size_t max)
{
	int r = room(w);
	if (r)
		return r;
	if (n > max)
		return ISOLA_ETOOBIG;
	return w->depth == WRITER_MAX_DEPTH ? ISOLA_ELIMIT : 0;
}

int isola_write_list(isola_writer *w, size_t n)
{
	int r = can_open(w, n, UINT32_MAX);
	if (r)
		return r;
	if (msgpack_pack_array(&w->pk, n) != 0)
		return packed(w, -1);
	return open_container(w, n, SIZE_MAX);
}

int isola_write_map(isola_writer *w, size_t n)
{
	int r = can_open(w, n, UINT32_MAX / 2);
	if (r)
		return r;
	if (msgpack_pack_map(&w->pk, n) != 0)
		return packed(w, -1);
	return open_container(w, 2 * n, SIZE_MAX);
}

int isola_write_tuple(isola_writer *w, size_t n)
{
	int r = can_open(w, n, UINT32_MAX);
	if (r)
		return r;
	size_t at = w->sb.size;
	/* ext 32, type 1, length patched once the items are written */
	static const unsigned char hdr[6] = { 0xc9, 0, 0, 0, 0, 1 };
	if (msgpack_sbuffer_write(&w->sb, (const char *)hdr, sizeof(hdr)) != 0 ||
	    msgpack_pack_array(&w->pk, n) != 0)
		return packed(w, -1);
	if (n == 0) { /* complete at once: patch now */
		w->stack[w->depth++] = (struct frame){ .left = 1, .ext_at = at };
		value_done(w);
		return 0;
	}
	return open_container(w, n, at);
}

static int write_ref(isola_writer *w, int8_t ext, int attached)
{
	if (attached != 0)
		return attached; /* EINVAL, ELIMIT: nothing written */
	size_t n;
	isola_msg_ref_count(&w->refs, &n);
	unsigned char idx = (unsigned char)(n - 1);
	if (msgpack_pack_ext(&w->pk, 1, ext) != 0 ||
	    msgpack_pack_ext_body(&w->pk, (const char *)&idx, 1) != 0)
		return packed(w, -1);
	return packed(w, 0);
}

int isola_write_blob(isola_writer *w, isola_blob *blob)
{
	int r = room(w);
	return r ? r : write_ref(w, 12, isola_msg_attach_blob(&w->refs, blob));
}

int isola_write_channel(isola_writer *w, isola_channel *ch)
{
	int r = room(w);
	return r ? r : write_ref(w, 13, isola_msg_attach_channel(&w->refs, ch));
}

int isola_write_frozen(isola_writer *w, const isola_frozen *value)
{
	if (w == NULL || value == NULL || value->image == NULL)
		return ISOLA_EINVAL;
	int r = room(w);
	if (r != 0)
		return r;
	r = isola_msg_attach_blob(&w->refs, value->image);
	if (r != 0)
		return r;
	size_t n;
	isola_msg_ref_count(&w->refs, &n);
	uint32_t off = value->offset;
	/* ext 18: [ref index][offset, 4 bytes big-endian] (docs/wire.md) */
	unsigned char ref[5] = { (unsigned char)(n - 1), (unsigned char)(off >> 24),
				 (unsigned char)(off >> 16), (unsigned char)(off >> 8),
				 (unsigned char)off };
	if (msgpack_pack_ext(&w->pk, sizeof(ref), 18) != 0 ||
	    msgpack_pack_ext_body(&w->pk, (const char *)ref, sizeof(ref)) != 0)
		return packed(w, -1);
	return packed(w, 0);
}

int isola_writer_finish(isola_writer *w, isola_msg *out)
{
	if (w == NULL || out == NULL)
		return ISOLA_EINVAL;
	if (w->failed)
		return ISOLA_ENOMEM;
	if (!w->done)
		return ISOLA_ESTATE; /* no value yet, or a container still open */
	if (w->sb.size > UINT32_MAX)
		return ISOLA_ETOOBIG;
	isola_msg m = w->refs; /* the references move over */
	isola_msg_init(&w->refs);
	int r = isola_msg_set_bytes(&m, w->sb.data, w->sb.size);
	if (r != 0) {
		w->refs = m;
		return r;
	}
	*out = m;
	reset(w);
	return 0;
}

int isola__writer_state(const isola_writer *w)
{
	if (w->failed)
		return ISOLA__WRITER_FAILED;
	if (w->overfull)
		return ISOLA__WRITER_OVERFULL;
	if (w->done)
		return ISOLA__WRITER_DONE;
	return w->sb.size == 0 && w->depth == 0 ? ISOLA__WRITER_EMPTY : ISOLA__WRITER_OPEN;
}

void isola__writer_reset(isola_writer *w)
{
	reset(w);
}
