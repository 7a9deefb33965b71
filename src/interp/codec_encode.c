/*
 * codec_encode.c - Python objects to msgpack (docs/wire.md).
 *
 * One recursive walk over the object, writing with msgpack-c's packer
 * into a growable buffer (stack storage first).  Ext types that contain
 * other objects (tuple, set, exception, ...) are written with a 6-byte
 * ext32 header whose length is patched once the contents are written, so
 * nested containers are never copied.  The walk keeps the path of
 * containers it is in: to detect self-reference, and to name where an
 * object that cannot travel sits ("args[1]['key']").
 */
#include "interp/codec.h"
#include "common/alloc.h"

#include "channels/blob.h"
#include "channels/channel.h"
#include "interp/frozen.h"
#include "interp/wire.h"

#include <msgpack.h>
#include <string.h>

const isola__codec_opts isola__codec_defaults = {
	.allow_pickle = 1,
	.allow_refs = 1,
	.blob_threshold = ISOLA__BLOB_THRESHOLD_DEFAULT,
	.max_size = ISOLA__MAX_SIZE_DEFAULT,
	.max_depth = ISOLA__MAX_DEPTH_DEFAULT,
};

/* ---- output buffer -------------------------------------------------- */

typedef struct wbuf {
	char *data;
	size_t len, cap, max;
	int heap;      /* data is malloc'd (else it is small[]) */
	int too_big;   /* a write would have passed max */
	int no_memory; /* realloc failed */
	char small[256];
} wbuf;

/* Give b a capacity of cap bytes (> its length).  0, or -1: no memory. */
static int wbuf_resize(wbuf *b, size_t cap)
{
	char *d = b->heap ? isola__realloc(b->data, cap) : isola__malloc(cap);
	if (d == NULL) {
		b->no_memory = 1;
		return -1;
	}
	if (!b->heap)
		memcpy(d, b->data, b->len);
	b->data = d;
	b->cap = cap;
	b->heap = 1;
	return 0;
}

/* Grow b to hold at least want bytes in one step (0, or -1: no memory). */
static int wbuf_ensure(wbuf *b, size_t want)
{
	if (want <= b->cap || want > b->max)
		return 0; /* enough, or wbuf_write reports the limit */
	return wbuf_resize(b, want);
}

static int wbuf_write(void *ctx, const char *src, size_t n)
{
	wbuf *b = ctx;
	if (n > b->max - b->len) {
		b->too_big = 1;
		return -1;
	}
	if (b->len + n > b->cap) {
		size_t cap = b->cap * 2;
		while (cap < b->len + n)
			cap *= 2;
		if (wbuf_resize(b, cap) < 0)
			return -1;
	}
	memcpy(b->data + b->len, src, n);
	b->len += n;
	return 0;
}

/* ---- the walk ------------------------------------------------------- */

enum frame_kind { F_INDEX, F_VALUE, F_KEY, F_MEMBER, F_ARG };

struct frame {
	PyObject *container;
	enum frame_kind kind;
	Py_ssize_t index;
	PyObject *key; /* borrowed, for F_VALUE */
};

typedef struct enc {
	isola__state *st;
	const isola__codec_opts *o;
	isola_msg *msg; /* receives references (NULL: none allowed) */
	msgpack_packer pk;
	wbuf buf;
	int depth;
	const char *root; /* name of the top object in paths */
	int code;         /* ISOLA_E* of the failure, when known */
	int freeze;       /* writing a frozen image (isola.freeze) */
	/* References that could be written inline instead (blobs, Buffers,
	 * frozen images), against a channel that cannot: at most
	 * inline_budget of them are attached; a channel finding no slot
	 * while some are sets retry, and isola__encode writes the message
	 * again with a smaller budget, so the order of a message's channels
	 * and blobs never decides whether it can be sent. */
	int inline_budget;
	int inline_refs;
	int retry;
	/* The path of containers being encoded: inline for the usual shallow
	 * objects, on the heap only past 16 levels, so an encode allocates
	 * nothing of its own (the encoder lives on the caller's stack). */
	struct frame *frames;
	int frames_cap;
	struct frame inline_frames[16];
} enc;

static int enc_obj(enc *e, PyObject *obj);
static int enc_frozen_obj(enc *e, PyObject *obj);
static int enc_frozen_ref(enc *e, PyObject *obj);

/* "root[1]['key']" for the current path. */
static PyObject *path_str(enc *e)
{
	PyObject *parts = PyList_New(0);
	if (parts == NULL)
		return NULL;
	PyObject *s = PyUnicode_FromString(e->root);
	PyList_Append(parts, s);
	Py_XDECREF(s);
	for (int i = 0; i < e->depth; i++) {
		struct frame *f = &e->frames[i];
		switch (f->kind) {
		case F_INDEX:
			s = PyUnicode_FromFormat("[%zd]", f->index);
			break;
		case F_VALUE:
			s = PyUnicode_FromFormat("[%R]", f->key);
			break;
		case F_KEY:
			s = PyUnicode_FromString(".<key>");
			break;
		case F_MEMBER:
			s = PyUnicode_FromString(".<member>");
			break;
		case F_ARG:
			s = PyUnicode_FromFormat(".args[%zd]", f->index);
			break;
		}
		if (s == NULL) {
			PyErr_Clear();
			continue;
		}
		PyList_Append(parts, s);
		Py_DECREF(s);
	}
	PyObject *empty = PyUnicode_FromString("");
	PyObject *r = empty ? PyUnicode_Join(empty, parts) : NULL;
	Py_XDECREF(empty);
	Py_DECREF(parts);
	return r;
}

/* Raise exc_type("<path>: <type> <what>"), chaining any current error. */
static int fail_at(enc *e, PyObject *exc_type, PyObject *obj, const char *what)
{
	e->code = exc_type == PyExc_TypeError ? ISOLA_ETYPE
		  : exc_type == PyExc_MemoryError ? ISOLA_ENOMEM
						   : ISOLA_EINVAL;
	PyObject *cause = PyErr_GetRaisedException();
	PyObject *path = path_str(e);
	if (path == NULL) {
		PyErr_Clear();
		path = PyUnicode_FromString(e->root);
	}
	PyErr_Format(exc_type, "%U: %s %s", path, Py_TYPE(obj)->tp_name, what);
	Py_XDECREF(path);
	if (cause != NULL) {
		PyObject *exc = PyErr_GetRaisedException();
		PyException_SetCause(exc, cause); /* steals cause */
		PyErr_SetRaisedException(exc);
	}
	return -1;
}

/* A write failed: say why (size limit or memory). */
static int write_failed(enc *e)
{
	if (e->buf.no_memory) {
		e->code = ISOLA_ENOMEM;
		PyErr_NoMemory();
	} else {
		e->code = ISOLA_ETOOBIG;
		PyErr_Format(PyExc_ValueError,
			     "message too large: the encoding passes the limit of %zu bytes",
			     e->o->max_size);
	}
	return -1;
}

/* Append n bytes without going through the packer's callback (hot path). */
static inline int put(enc *e, const void *src, size_t n)
{
	wbuf *b = &e->buf;
	if (b->cap - b->len >= n && b->max - b->len >= n) {
		memcpy(b->data + b->len, src, n);
		b->len += n;
		return 0;
	}
	return wbuf_write(b, src, n) == 0 ? 0 : write_failed(e);
}

/* float 64, big-endian, written directly. */
static inline int put_double(enc *e, double d)
{
	unsigned char b[9];
	uint64_t u;
	memcpy(&u, &d, 8);
	u = __builtin_bswap64(u);
	b[0] = 0xcb;
	memcpy(b + 1, &u, 8);
	return put(e, b, 9);
}

#define PK(call)                                                              \
	do {                                                                  \
		if ((call) != 0)                                              \
			return write_failed(e);                               \
	} while (0)

/* Enter a container: check depth and self-reference. */
static int push(enc *e, PyObject *container, enum frame_kind kind)
{
	if (e->depth >= e->o->max_depth || e->depth >= ISOLA__MAX_DEPTH_DEFAULT) {
		fail_at(e, PyExc_ValueError, container, "nested too deeply");
		return -1;
	}
	for (int i = 0; i < e->depth; i++)
		if (e->frames[i].container == container)
			return fail_at(e, PyExc_ValueError, container,
				       "contains itself (self-referencing container)");
	if (e->depth == e->frames_cap) {
		int cap = e->frames_cap * 2;
		struct frame *grown = PyMem_Malloc((size_t)cap * sizeof(struct frame));
		if (grown == NULL) {
			e->code = ISOLA_ENOMEM;
			PyErr_NoMemory();
			return -1;
		}
		memcpy(grown, e->frames, (size_t)e->depth * sizeof(struct frame));
		if (e->frames != e->inline_frames)
			PyMem_Free(e->frames);
		e->frames = grown;
		e->frames_cap = cap;
	}
	struct frame *f = &e->frames[e->depth++];
	f->container = container;
	f->kind = kind;
	f->index = 0;
	f->key = NULL;
	return 0;
}

static void pop(enc *e)
{
	e->depth--;
}

/* Start an ext whose length is patched by ext_end: returns its offset. */
static int ext_begin(enc *e, int8_t type, size_t *at)
{
	char hdr[6] = { (char)0xc9, 0, 0, 0, 0, (char)type };
	*at = e->buf.len;
	PK(wbuf_write(&e->buf, hdr, sizeof(hdr)));
	return 0;
}

static void ext_end(enc *e, size_t at)
{
	uint32_t n = (uint32_t)(e->buf.len - at - 6);
	unsigned char *p = (unsigned char *)e->buf.data + at + 1;
	p[0] = (unsigned char)(n >> 24);
	p[1] = (unsigned char)(n >> 16);
	p[2] = (unsigned char)(n >> 8);
	p[3] = (unsigned char)n;
}

/* ext_end for an image's small values: a payload under 256 bytes gets
 * a 3-byte ext8 header instead (the payload moves down 3 bytes; nothing
 * in it records an absolute position: frozen containers' offsets are
 * relative to their own payload).  A million (int, str) tuples: 3 MB. */
static void ext_end_small(enc *e, size_t at)
{
	size_t n = e->buf.len - at - 6;
	if (n > 255) {
		ext_end(e, at);
		return;
	}
	unsigned char *p = (unsigned char *)e->buf.data + at;
	int8_t type = (int8_t)p[5];
	memmove(p + 3, p + 6, n);
	p[0] = 0xc7;
	p[1] = (unsigned char)n;
	p[2] = (unsigned char)type;
	e->buf.len -= 3;
}

static int enc_sequence_items(enc *e, PyObject *seq, enum frame_kind kind)
{
	if (push(e, seq, kind) < 0)
		return -1;
	Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
	if (msgpack_pack_array(&e->pk, (size_t)n) != 0)
		return write_failed(e);
	for (Py_ssize_t i = 0; i < n; i++) {
		/* Re-check the size: encoding may run Python code (pickle). */
		if (i >= PySequence_Fast_GET_SIZE(seq)) {
			PyErr_SetString(PyExc_RuntimeError, "list changed size during encoding");
			return -1;
		}
		PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
		if (PyFloat_CheckExact(item)) { /* runs no Python code: no ref */
			if (put_double(e, PyFloat_AS_DOUBLE(item)) < 0)
				return -1;
			continue;
		}
		Py_INCREF(item);
		e->frames[e->depth - 1].index = i;
		int r = enc_obj(e, item);
		Py_DECREF(item);
		if (r < 0)
			return -1;
	}
	pop(e);
	return 0;
}

/* One key and its value of the dict on top of the path. */
static int enc_pair(enc *e, PyObject *k, PyObject *v)
{
	Py_INCREF(k);
	Py_INCREF(v);
	/* An index, not a pointer: encoding the key may grow (move) the
	 * frames array (found by fuzz_encode: a deep tuple key). */
	int fi = e->depth - 1;
	e->frames[fi].kind = F_KEY;
	int r = enc_obj(e, k);
	if (r == 0) {
		e->frames[fi].kind = F_VALUE;
		e->frames[fi].key = k;
		r = enc_obj(e, v);
	}
	Py_DECREF(k);
	Py_DECREF(v);
	return r;
}

static int enc_dict(enc *e, PyObject *d)
{
	if (push(e, d, F_VALUE) < 0)
		return -1;
	if (msgpack_pack_map(&e->pk, (size_t)PyDict_GET_SIZE(d)) != 0)
		return write_failed(e);
	Py_ssize_t pos = 0, n = PyDict_GET_SIZE(d), seen = 0;
	PyObject *k, *v;
	while (PyDict_Next(d, &pos, &k, &v)) {
		if (++seen > n || PyDict_GET_SIZE(d) != n) {
			PyErr_SetString(PyExc_RuntimeError, "dict changed size during encoding");
			return -1;
		}
		if (enc_pair(e, k, v) < 0)
			return -1;
	}
	/* The header promised n pairs: a dict that shrank while encoding ran
	 * Python code (another thread's turn) must not give a short map. */
	if (seen != n || PyDict_GET_SIZE(d) != n) {
		PyErr_SetString(PyExc_RuntimeError, "dict changed size during encoding");
		return -1;
	}
	pop(e);
	return 0;
}

/* tuple, set, frozenset: an ext holding a msgpack array. */
static int enc_wrapped_seq(enc *e, PyObject *obj, int8_t type)
{
	PyObject *seq = PySequence_Fast(obj, "not iterable");
	if (seq == NULL)
		return -1;
	size_t at;
	int r = ext_begin(e, type, &at);
	if (r == 0)
		r = enc_sequence_items(e, seq, F_MEMBER);
	if (r == 0)
		ext_end(e, at);
	Py_DECREF(seq);
	return r;
}

static int enc_bigint(enc *e, PyObject *obj)
{
	PyObject *bits = PyObject_CallMethod(obj, "bit_length", NULL);
	if (bits == NULL)
		return -1;
	Py_ssize_t nbits = PyLong_AsSsize_t(bits);
	Py_DECREF(bits);
	if (nbits < 0)
		return -1;
	Py_ssize_t nbytes = nbits / 8 + 1; /* room for the sign bit */
	PyObject *args = Py_BuildValue("(ns)", nbytes, "big");
	PyObject *kw = Py_BuildValue("{s:O}", "signed", Py_True);
	PyObject *meth = PyObject_GetAttrString(obj, "to_bytes");
	PyObject *b = (args && kw && meth) ? PyObject_Call(meth, args, kw) : NULL;
	Py_XDECREF(args);
	Py_XDECREF(kw);
	Py_XDECREF(meth);
	if (b == NULL)
		return -1;
	int r = msgpack_pack_ext(&e->pk, (size_t)PyBytes_GET_SIZE(b), ISOLA_EXT_BIGINT);
	if (r == 0)
		r = msgpack_pack_ext_body(&e->pk, PyBytes_AS_STRING(b),
					  (size_t)PyBytes_GET_SIZE(b));
	Py_DECREF(b);
	return r != 0 ? write_failed(e) : 0;
}

static int enc_int(enc *e, PyObject *obj)
{
	int overflow;
	long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
	if (v == -1 && PyErr_Occurred())
		return -1;
	if (!overflow) {
		PK(msgpack_pack_long_long(&e->pk, v));
		return 0;
	}
	if (overflow > 0) {
		unsigned long long u = PyLong_AsUnsignedLongLong(obj);
		if (!(u == (unsigned long long)-1 && PyErr_Occurred())) {
			PK(msgpack_pack_unsigned_long_long(&e->pk, u));
			return 0;
		}
		PyErr_Clear();
	}
	/* Only the ints that need more than 64 bits call into Python. */
	return enc_bigint(e, obj);
}

static int enc_str(enc *e, PyObject *obj)
{
	Py_ssize_t n;
	const char *s = PyUnicode_AsUTF8AndSize(obj, &n);
	if (s != NULL) {
		PK(msgpack_pack_str_with_body(&e->pk, s, (size_t)n));
		return 0;
	}
	if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError))
		return -1;
	/* Lone surrogates are valid in a str but not in UTF-8. */
	PyErr_Clear();
	PyObject *b = PyUnicode_AsEncodedString(obj, "utf-8", "surrogatepass");
	if (b == NULL)
		return -1;
	int r = msgpack_pack_ext(&e->pk, (size_t)PyBytes_GET_SIZE(b), ISOLA_EXT_STR_SURROGATES);
	if (r == 0)
		r = msgpack_pack_ext_body(&e->pk, PyBytes_AS_STRING(b), (size_t)PyBytes_GET_SIZE(b));
	Py_DECREF(b);
	return r != 0 ? write_failed(e) : 0;
}

/* Whether a reference that could also be written inline (a blob, a
 * Buffer, a frozen image) may take a slot of the message. */
static int inline_ref_fits(const enc *e)
{
	return e->msg != NULL && e->o->allow_refs &&
	       isola__msg_nrefs(e->msg) < ISOLA_MSG_MAX_REFS && e->inline_refs < e->inline_budget;
}

/* A reference to blob (the message takes its own reference). */
static int enc_blob_ref(enc *e, PyObject *obj, isola_blob *blob)
{
	if (e->msg == NULL || !e->o->allow_refs)
		return fail_at(e, PyExc_TypeError, obj,
			       "can only travel through a channel (as a zero-copy reference)");
	size_t index = isola__msg_nrefs(e->msg);
	int r = isola_msg_attach_blob(e->msg, blob);
	if (r == ISOLA_ELIMIT)
		return fail_at(e, PyExc_ValueError, obj,
			       "is one reference too many: a message carries at most 8 blobs/channels");
	if (r != 0)
		return fail_at(e, PyExc_MemoryError, obj, "could not be attached");
	e->inline_refs++;
	unsigned char idx = (unsigned char)index;
	PK(msgpack_pack_ext(&e->pk, 1, ISOLA_EXT_BLOB));
	PK(msgpack_pack_ext_body(&e->pk, &idx, 1));
	return 0;
}

/* bytes-like: inline (bin / bytearray ext), or a blob when large. */
static int enc_bytes_like(enc *e, PyObject *obj, const void *data, size_t len,
			  int8_t ext_type, int immutable)
{
	/* Large: a zero-copy blob, unless the message has no reference slot
	 * left (a chunk of many large results): then copied inline, since
	 * how isola batches results must never make them fail. */
	if (len >= e->o->blob_threshold && inline_ref_fits(e)) {
		isola_blob *blob = NULL;
		int r = immutable ? isola__owner_blob(e->st->owner, obj, data, len, &blob)
				  : isola_blob_create(data, len, &blob);
		if (r != 0) {
			PyErr_NoMemory();
			return -1;
		}
		r = enc_blob_ref(e, obj, blob);
		isola_blob_release(blob); /* the message holds its own */
		return r;
	}
	if (ext_type == 0) {
		PK(msgpack_pack_bin_with_body(&e->pk, data, len));
	} else {
		PK(msgpack_pack_ext(&e->pk, len, ext_type));
		PK(msgpack_pack_ext_body(&e->pk, data, len));
	}
	return 0;
}

static int enc_buffer_protocol(enc *e, PyObject *obj)
{
	Py_buffer view;
	if (PyObject_GetBuffer(obj, &view, PyBUF_FULL_RO) < 0)
		return -1;
	int r;
	if (PyBuffer_IsContiguous(&view, 'C')) {
		r = enc_bytes_like(e, obj, view.buf, (size_t)view.len, 0, 0);
	} else {
		void *tmp = PyMem_Malloc((size_t)view.len ? (size_t)view.len : 1);
		if (tmp == NULL) {
			PyBuffer_Release(&view);
			PyErr_NoMemory();
			return -1;
		}
		r = PyBuffer_ToContiguous(tmp, &view, view.len, 'C');
		if (r == 0)
			r = enc_bytes_like(e, obj, tmp, (size_t)view.len, 0, 0);
		PyMem_Free(tmp);
	}
	PyBuffer_Release(&view);
	return r;
}

static int enc_complex(enc *e, PyObject *obj)
{
	unsigned char b[16];
	double parts[2] = { PyComplex_RealAsDouble(obj), PyComplex_ImagAsDouble(obj) };
	for (int i = 0; i < 2; i++) {
		uint64_t u;
		memcpy(&u, &parts[i], 8);
		for (int j = 0; j < 8; j++)
			b[i * 8 + j] = (unsigned char)(u >> (56 - 8 * j));
	}
	PK(msgpack_pack_ext(&e->pk, 16, ISOLA_EXT_COMPLEX));
	PK(msgpack_pack_ext_body(&e->pk, b, 16));
	return 0;
}

/* Call obj.attr(), or get obj.attr when call == 0, as a C long long. */
static int get_ll(PyObject *obj, const char *attr, long long *out)
{
	PyObject *v = PyObject_GetAttrString(obj, attr);
	if (v == NULL)
		return -1;
	*out = PyLong_AsLongLong(v);
	Py_DECREF(v);
	return (*out == -1 && PyErr_Occurred()) ? -1 : 0;
}

/* Pack an int list of attributes: [a, b, ...]. */
static int pack_attrs(enc *e, PyObject *obj, const char *const *attrs, int n)
{
	for (int i = 0; i < n; i++) {
		long long v;
		if (get_ll(obj, attrs[i], &v) < 0)
			return -1;
		PK(msgpack_pack_long_long(&e->pk, v));
	}
	return 0;
}

/* utcoffset() in microseconds, or nil. */
static int pack_offset(enc *e, PyObject *obj)
{
	PyObject *off = PyObject_CallMethod(obj, "utcoffset", NULL);
	if (off == NULL)
		return -1;
	if (off == Py_None) {
		Py_DECREF(off);
		PK(msgpack_pack_nil(&e->pk));
		return 0;
	}
	long long d = 0, s = 0, us = 0;
	int r = get_ll(off, "days", &d) | get_ll(off, "seconds", &s) |
		get_ll(off, "microseconds", &us);
	Py_DECREF(off);
	if (r < 0)
		return -1;
	PK(msgpack_pack_long_long(&e->pk, (d * 86400 + s) * 1000000 + us));
	return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static long long days_from_civil(long long y, unsigned m, unsigned d)
{
	y -= m <= 2;
	long long era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (long long)doe - 719468;
}

/* The IANA key of tz when it is a zoneinfo.ZoneInfo made from one (a
 * new reference in *key): 1; 0 for any other tzinfo (or a ZoneInfo
 * from a file, which has no key); -1 on error. */
static int zone_key(PyObject *tz, PyObject **key)
{
	*key = NULL;
	/* zoneinfo is imported wherever a ZoneInfo exists: no import here */
	PyObject *name = PyUnicode_FromString("zoneinfo");
	PyObject *mod = name ? PyImport_GetModule(name) : NULL;
	Py_XDECREF(name);
	if (mod == NULL)
		return PyErr_Occurred() ? -1 : 0;
	PyObject *type = PyObject_GetAttrString(mod, "ZoneInfo");
	Py_DECREF(mod);
	if (type == NULL)
		return -1;
	int is_zone = (PyObject *)Py_TYPE(tz) == type;
	Py_DECREF(type);
	if (!is_zone)
		return 0;
	PyObject *k = PyObject_GetAttrString(tz, "key");
	if (k == NULL)
		return -1;
	if (!PyUnicode_CheckExact(k)) { /* ZoneInfo.from_file: None */
		Py_DECREF(k);
		return 0;
	}
	*key = k;
	return 1;
}

static int enc_datetime_kind(enc *e, PyObject *obj)
{
	static const char *const date_f[] = { "year", "month", "day" };
	static const char *const dt_f[] = { "year", "month", "day", "hour", "minute",
					    "second", "microsecond" };
	static const char *const time_f[] = { "hour", "minute", "second", "microsecond" };
	static const char *const td_f[] = { "days", "seconds", "microseconds" };
	isola__state *st = e->st;
	PyObject *t = (PyObject *)Py_TYPE(obj);
	size_t at;
	if (t == st->dt_datetime) {
		PyObject *tz = PyObject_GetAttrString(obj, "tzinfo");
		if (tz == NULL)
			return -1;
		int utc = tz == st->dt_utc;
		int other_tz = tz != Py_None && !utc &&
			       Py_TYPE(tz) != (PyTypeObject *)st->dt_timezone;
		PyObject *key = NULL; /* a zoneinfo.ZoneInfo's key: travels as such */
		int zone = other_tz ? zone_key(tz, &key) : 0;
		Py_DECREF(tz);
		if (zone < 0)
			return -1;
		if (other_tz && !zone)
			return 1; /* pytz, dateutil, ...: not exactly representable */
		if (utc) {
			/* msgpack timestamp 96: uint32 ns, int64 seconds */
			long long v[7];
			for (int i = 0; i < 7; i++)
				if (get_ll(obj, dt_f[i], &v[i]) < 0)
					return -1;
			long long secs = days_from_civil(v[0], (unsigned)v[1], (unsigned)v[2]) * 86400 +
					 v[3] * 3600 + v[4] * 60 + v[5];
			uint32_t ns = (uint32_t)(v[6] * 1000);
			unsigned char b[12];
			for (int j = 0; j < 4; j++)
				b[j] = (unsigned char)(ns >> (24 - 8 * j));
			for (int j = 0; j < 8; j++)
				b[4 + j] = (unsigned char)((uint64_t)secs >> (56 - 8 * j));
			PK(msgpack_pack_ext(&e->pk, 12, -1));
			PK(msgpack_pack_ext_body(&e->pk, b, 12));
			return 0;
		}
		long long fold;
		int r = ext_begin(e, ISOLA_EXT_DATETIME, &at);
		if (r == 0 && msgpack_pack_array(&e->pk, key ? 10 : 9) != 0)
			r = write_failed(e);
		if (r == 0 && (pack_attrs(e, obj, dt_f, 7) < 0 || pack_offset(e, obj) < 0 ||
			       get_ll(obj, "fold", &fold) < 0))
			r = -1;
		if (r == 0 && msgpack_pack_long_long(&e->pk, fold) != 0)
			r = write_failed(e);
		if (r == 0 && key != NULL)
			r = enc_str(e, key);
		Py_XDECREF(key);
		if (r < 0)
			return -1;
	} else if (t == st->dt_date) {
		if (ext_begin(e, ISOLA_EXT_DATE, &at) < 0)
			return -1;
		PK(msgpack_pack_array(&e->pk, 3));
		if (pack_attrs(e, obj, date_f, 3) < 0)
			return -1;
	} else if (t == st->dt_time) {
		PyObject *tz = PyObject_GetAttrString(obj, "tzinfo");
		if (tz == NULL)
			return -1;
		int other_tz = tz != Py_None && Py_TYPE(tz) != (PyTypeObject *)st->dt_timezone;
		Py_DECREF(tz);
		if (other_tz)
			return 1;
		if (ext_begin(e, ISOLA_EXT_TIME, &at) < 0)
			return -1;
		PK(msgpack_pack_array(&e->pk, 6));
		if (pack_attrs(e, obj, time_f, 4) < 0 || pack_offset(e, obj) < 0)
			return -1;
		long long fold;
		if (get_ll(obj, "fold", &fold) < 0)
			return -1;
		PK(msgpack_pack_long_long(&e->pk, fold));
	} else if (t == st->dt_timedelta) {
		if (ext_begin(e, ISOLA_EXT_TIMEDELTA, &at) < 0)
			return -1;
		PK(msgpack_pack_array(&e->pk, 3));
		if (pack_attrs(e, obj, td_f, 3) < 0)
			return -1;
	} else {
		return 1;
	}
	ext_end(e, at);
	return 0;
}

static int ensure_datetime(isola__state *st)
{
	if (st->datetime_mod != NULL)
		return 0;
	PyObject *m = PyImport_ImportModule("datetime");
	if (m == NULL)
		return -1;
	st->dt_datetime = PyObject_GetAttrString(m, "datetime");
	st->dt_date = PyObject_GetAttrString(m, "date");
	st->dt_time = PyObject_GetAttrString(m, "time");
	st->dt_timedelta = PyObject_GetAttrString(m, "timedelta");
	st->dt_timezone = PyObject_GetAttrString(m, "timezone");
	st->dt_utc = st->dt_timezone ? PyObject_GetAttrString(st->dt_timezone, "utc") : NULL;
	if (!st->dt_datetime || !st->dt_date || !st->dt_time || !st->dt_timedelta ||
	    !st->dt_utc) {
		Py_DECREF(m);
		return -1;
	}
	st->datetime_mod = m;
	return 0;
}

int isola__ensure_datetime(isola__state *st)
{
	return ensure_datetime(st);
}

static int ensure_pickle(isola__state *st)
{
	if (st->pickle_dumps != NULL)
		return 0;
	PyObject *m = PyImport_ImportModule("pickle");
	if (m == NULL)
		return -1;
	st->pickle_dumps = PyObject_GetAttrString(m, "dumps");
	st->pickle_loads = PyObject_GetAttrString(m, "loads");
	Py_DECREF(m);
	return st->pickle_dumps && st->pickle_loads ? 0 : -1;
}

int isola__ensure_pickle(isola__state *st)
{
	return ensure_pickle(st);
}

static int enc_pickled(enc *e, PyObject *obj)
{
	if (!e->o->allow_pickle)
		return fail_at(e, PyExc_TypeError, obj,
			       "cannot be sent: not a msgpack type, and the pickle "
			       "fallback is off for this channel/pool");
	if (ensure_pickle(e->st) < 0)
		return -1;
	PyObject *b = PyObject_CallFunction(e->st->pickle_dumps, "Oi", obj, 5);
	if (b == NULL && !PyErr_ExceptionMatches(PyExc_Exception))
		return -1; /* KeyboardInterrupt, Cancelled: not "cannot be sent" */
	if (b == NULL)
		return fail_at(e, PyExc_TypeError, obj,
			       "cannot be sent: it is neither a msgpack type nor picklable");
	int r = msgpack_pack_ext(&e->pk, (size_t)PyBytes_GET_SIZE(b), ISOLA_EXT_PICKLE);
	if (r == 0)
		r = msgpack_pack_ext_body(&e->pk, PyBytes_AS_STRING(b), (size_t)PyBytes_GET_SIZE(b));
	Py_DECREF(b);
	return r != 0 ? write_failed(e) : 0;
}

/* Pack a str object, or nil for NULL. */
static int pack_str_obj(enc *e, PyObject *s)
{
	if (s == NULL || !PyUnicode_Check(s)) {
		PK(msgpack_pack_nil(&e->pk));
		return 0;
	}
	return enc_str(e, s);
}

/* Encode obj, or, if it cannot travel, its repr() in its place: the
 * buffer, the references and the path are rolled back to where they
 * were.  An interrupt (KeyboardInterrupt, Cancelled: not an Exception)
 * is not swallowed. */
static int enc_or_repr(enc *e, PyObject *obj)
{
	size_t mark = e->buf.len;
	int depth = e->depth;
	size_t refs = e->msg ? isola__msg_nrefs(e->msg) : 0;
	int inline_refs = e->inline_refs;
	if (enc_obj(e, obj) == 0)
		return 0;
	if (e->retry || !PyErr_ExceptionMatches(PyExc_Exception))
		return -1; /* an interrupt, or the whole message is written again */
	PyObject *why = PyErr_GetRaisedException();
	e->buf.len = mark;
	e->depth = depth; /* frames pushed by the failed walk */
	if (e->msg)
		isola__msg_drop_refs(e->msg, refs);
	e->inline_refs = inline_refs;
	PyObject *rep = PyObject_Repr(obj);
	if (rep == NULL) {
		/* No repr either (a list nested too deeply for repr, say):
		 * the encoder's own reason is the one to report. */
		PyErr_Clear();
		PyErr_SetRaisedException(why);
		return -1;
	}
	Py_DECREF(why);
	int r = enc_str(e, rep);
	Py_DECREF(rep);
	return r;
}

/* The name of the nearest builtin exception class in type's MRO. */
static PyObject *builtin_base_name(PyTypeObject *type)
{
	PyObject *mro = type->tp_mro;
	for (Py_ssize_t i = 0; mro != NULL && i < PyTuple_GET_SIZE(mro); i++) {
		PyTypeObject *t = (PyTypeObject *)PyTuple_GET_ITEM(mro, i);
		if (!(t->tp_flags & Py_TPFLAGS_HEAPTYPE) && strchr(t->tp_name, '.') == NULL)
			return PyUnicode_FromString(t->tp_name);
	}
	return PyUnicode_FromString("Exception");
}

/* The instance attributes (its __dict__, __notes__ included), values that
 * cannot travel as their repr(); nil when there are none. */
static int enc_exc_attrs(enc *e, PyObject *exc)
{
	PyObject *dict = PyObject_GenericGetDict(exc, NULL);
	if (dict == NULL) {
		PyErr_Clear();
		PK(msgpack_pack_nil(&e->pk));
		return 0;
	}
	/* A snapshot: the encoder calls Python code (repr) between items. */
	PyObject *items = PyDict_Items(dict);
	Py_DECREF(dict);
	if (items == NULL)
		return -1;
	Py_ssize_t n = 0, len = PyList_GET_SIZE(items);
	for (Py_ssize_t i = 0; i < len; i++)
		n += PyUnicode_Check(PyTuple_GET_ITEM(PyList_GET_ITEM(items, i), 0));
	int r = 0;
	if (n == 0)
		r = msgpack_pack_nil(&e->pk) == 0 ? 0 : (write_failed(e), -1);
	else if (msgpack_pack_map(&e->pk, (size_t)n) != 0)
		r = (write_failed(e), -1);
	for (Py_ssize_t i = 0; r == 0 && n > 0 && i < len; i++) {
		PyObject *kv = PyList_GET_ITEM(items, i);
		PyObject *k = PyTuple_GET_ITEM(kv, 0);
		if (!PyUnicode_Check(k))
			continue;
		if (enc_str(e, k) < 0 || enc_or_repr(e, PyTuple_GET_ITEM(kv, 1)) < 0)
			r = -1;
	}
	Py_DECREF(items);
	return r;
}

/* Exceptions: [module, qualname, args, message, traceback, builtin base,
 * attributes] (docs/wire.md). */
/* After a best-effort call that returned NULL: clear an Exception (the
 * part is left out), keep an interrupt (returns 1: stop).  No call may
 * follow with an exception set (CPython 3.12 then fails it too). */
static int interrupted_or_clear(void)
{
	if (!PyErr_Occurred())
		return 0;
	if (!PyErr_ExceptionMatches(PyExc_Exception))
		return 1;
	PyErr_Clear();
	return 0;
}

static int enc_exception(enc *e, PyObject *exc)
{
	PyTypeObject *type = Py_TYPE(exc);
	PyObject *mod = NULL, *qual = NULL, *msg = NULL, *args = NULL, *base = NULL;
	PyObject *tb_text = NULL, *cause = NULL;
	int r = -1;
	/* Best effort for everything but args' encoding; an interrupt still
	 * stops. */
	if (((args = PyObject_GetAttrString(exc, "args")) == NULL && interrupted_or_clear()) ||
	    ((mod = PyObject_GetAttrString((PyObject *)type, "__module__")) == NULL &&
	     interrupted_or_clear()) ||
	    ((qual = PyObject_GetAttrString((PyObject *)type, "__qualname__")) == NULL &&
	     interrupted_or_clear()) ||
	    ((msg = PyObject_Str(exc)) == NULL && interrupted_or_clear()))
		goto done;
	if (type->tp_flags & Py_TPFLAGS_HEAPTYPE) {
		base = builtin_base_name(type);
		if (base == NULL && interrupted_or_clear())
			goto done;
	}
	PyObject *tbmod = PyImport_ImportModule("traceback");
	if (tbmod != NULL) {
		PyObject *lines = PyObject_CallMethod(tbmod, "format_exception", "O", exc);
		PyObject *empty = lines ? PyUnicode_FromString("") : NULL;
		if (lines && empty)
			tb_text = PyUnicode_Join(empty, lines);
		Py_XDECREF(lines);
		Py_XDECREF(empty);
		Py_DECREF(tbmod);
	}
	if (tb_text == NULL && interrupted_or_clear())
		goto done;
	/* Its __cause__ travels too (8th item), as an exception of its own:
	 * a chain that loops back is cut by push's self-reference check
	 * (the cause then travels as its repr). */
	cause = PyException_GetCause(exc);
	if (cause != NULL && !PyExceptionInstance_Check(cause))
		Py_CLEAR(cause);
	size_t at;
	if (ext_begin(e, ISOLA_EXT_EXCEPTION, &at) < 0)
		goto done;
	if (msgpack_pack_array(&e->pk, cause != NULL ? 8 : 7) != 0) {
		write_failed(e);
		goto done;
	}
	if (pack_str_obj(e, mod) < 0 || pack_str_obj(e, qual) < 0)
		goto done;
	/* args: each that cannot travel is replaced by its repr */
	Py_ssize_t n = args && PyTuple_Check(args) ? PyTuple_GET_SIZE(args) : 0;
	if (push(e, exc, F_ARG) < 0)
		goto done;
	if (msgpack_pack_array(&e->pk, (size_t)n) != 0) {
		write_failed(e);
		goto done;
	}
	for (Py_ssize_t i = 0; i < n; i++) {
		e->frames[e->depth - 1].index = i;
		if (enc_or_repr(e, PyTuple_GET_ITEM(args, i)) < 0)
			goto done;
	}
	if (pack_str_obj(e, msg) < 0 || pack_str_obj(e, tb_text) < 0 || pack_str_obj(e, base) < 0 ||
	    enc_exc_attrs(e, exc) < 0)
		goto done;
	if (cause != NULL && enc_or_repr(e, cause) < 0)
		goto done;
	pop(e);
	ext_end(e, at);
	r = 0;
done:
	Py_XDECREF(mod);
	Py_XDECREF(qual);
	Py_XDECREF(msg);
	Py_XDECREF(args);
	Py_XDECREF(base);
	Py_XDECREF(tb_text);
	Py_XDECREF(cause);
	return r;
}

/* ---- frozen images (frozen.h) ---------------------------------------- */

static void put32_at(enc *e, size_t at, uint32_t v)
{
	memcpy(e->buf.data + at, &v, 4);
}

/* Reserve n zero bytes; their offset in *at. */
static int reserve(enc *e, size_t n, size_t *at)
{
	static const char zeros[256];
	*at = e->buf.len;
	for (size_t done = 0; done < n;) {
		size_t k = n - done < sizeof(zeros) ? n - done : sizeof(zeros);
		if (put(e, zeros, k) < 0)
			return -1;
		done += k;
	}
	return 0;
}

static int frozen_too_big(enc *e, PyObject *obj)
{
	return fail_at(e, PyExc_ValueError, obj, "is too large to freeze (a frozen container "
						 "holds at most 4 GiB)");
}

/* Offsets inside a container's payload are 32 bits. */
static int payload_off(enc *e, PyObject *obj, size_t payload, uint32_t *out)
{
	size_t off = e->buf.len - payload;
	if (off > UINT32_MAX)
		return frozen_too_big(e, obj);
	*out = (uint32_t)off;
	return 0;
}

/* FROZEN_SEQ: [u32 n][u32 offset of item i]...[items]. */
static int enc_frozen_seq(enc *e, PyObject *list)
{
	size_t at, table;
	Py_ssize_t n = PyList_GET_SIZE(list);
	if ((uint64_t)n > UINT32_MAX / 8)
		return frozen_too_big(e, list);
	if (push(e, list, F_INDEX) < 0 || ext_begin(e, ISOLA_EXT_FROZEN_SEQ, &at) < 0)
		return -1;
	size_t payload = at + ISOLA__FROZEN_HDR;
	uint32_t n32 = (uint32_t)n;
	if (put(e, &n32, 4) < 0 || reserve(e, 4 * (size_t)n, &table) < 0)
		return -1;
	for (Py_ssize_t i = 0; i < n; i++) {
		if (i >= PyList_GET_SIZE(list)) {
			PyErr_SetString(PyExc_RuntimeError, "list changed size while freezing");
			return -1;
		}
		uint32_t off;
		if (payload_off(e, list, payload, &off) < 0)
			return -1;
		put32_at(e, table + 4 * (size_t)i, off);
		PyObject *item = Py_NewRef(PyList_GET_ITEM(list, i));
		e->frames[e->depth - 1].index = i;
		int r = enc_obj(e, item);
		Py_DECREF(item);
		if (r < 0)
			return -1;
	}
	if (e->buf.len - payload > UINT32_MAX)
		return frozen_too_big(e, list);
	ext_end(e, at);
	pop(e);
	return 0;
}

/* Index slots: a power of two with load at most 2/3. */
static uint32_t slot_count(uint32_t n)
{
	uint64_t want = (uint64_t)n + n / 2 + 1, cap = 1;
	while (cap < want)
		cap <<= 1;
	return (uint32_t)cap;
}

/* FROZEN_MAP: [u32 n][u32 cap][u32 seed][u32 maxd][cap x u32 slot: a
 * key's offset, or 0][key value key value... in insertion order].  The
 * slots are an open-addressing index over a mixed hash (frozen_index.c:
 * Robin Hood insertion, a seed, maxd the longest displacement).  No hash
 * is stored: a probe compares the key itself (str and int keys by their
 * bytes), which keeps the index at 4 bytes per slot. */
static int enc_frozen_map(enc *e, PyObject *d)
{
	Py_ssize_t n = PyDict_GET_SIZE(d);
	if ((uint64_t)n > UINT32_MAX / 16)
		return frozen_too_big(e, d);
	uint32_t n32 = (uint32_t)n, cap = slot_count(n32);
	size_t at, head, slots;
	if (push(e, d, F_VALUE) < 0 || ext_begin(e, ISOLA_EXT_FROZEN_MAP, &at) < 0)
		return -1;
	size_t payload = at + ISOLA__FROZEN_HDR;
	/* Room for the index and ~32 bytes an entry at once: a big image then
	 * grows in one allocation (mapped, and remapped if it grows on) and
	 * leaves no chunk of every size in between behind in the heap (it
	 * did: 8 MiB of slack after freezing a million entries). */
	if (wbuf_ensure(&e->buf, e->buf.len + ISOLA__FROZEN_MAP_HEAD + 4 * (size_t)cap +
					 32 * (size_t)n) < 0)
		return write_failed(e);
	if (put(e, &n32, 4) < 0 || put(e, &cap, 4) < 0 || reserve(e, 8, &head) < 0 ||
	    reserve(e, 4 * (size_t)cap, &slots) < 0)
		return -1;

	Py_ssize_t pos = 0, i = 0;
	PyObject *k, *v;
	while (PyDict_Next(d, &pos, &k, &v)) {
		if (i >= n || PyDict_GET_SIZE(d) != n) {
			PyErr_SetString(PyExc_RuntimeError, "dict changed size while freezing");
			return -1;
		}
		if (PyObject_Hash(k) == -1 || enc_pair(e, k, v) < 0)
			return -1;
		i++;
	}
	if (i != n || PyDict_GET_SIZE(d) != n) {
		PyErr_SetString(PyExc_RuntimeError, "dict changed size while freezing");
		return -1;
	}
	if (e->buf.len - payload > UINT32_MAX)
		return frozen_too_big(e, d);
	/* The index, now that the buffer no longer moves, in a pass of its
	 * own: the keys' hashes again (cached by str; freezable keys' hashes
	 * have no side effect), their offsets by walking the entries just
	 * written (never 0: keys follow the slots). */
	uint64_t *hashes = isola__malloc((size_t)n * sizeof(*hashes) + 1);
	uint32_t *offsets = isola__malloc((size_t)n * sizeof(*offsets) + 1);
	if (hashes == NULL || offsets == NULL) {
		isola__free(hashes);
		isola__free(offsets);
		PyErr_NoMemory();
		return -1;
	}
	const unsigned char *base = (const unsigned char *)e->buf.data + payload;
	const unsigned char *cur = base + ISOLA__FROZEN_MAP_HEAD + 4 * (size_t)cap;
	const unsigned char *end = base + (e->buf.len - payload);
	int r = 0;
	for (pos = 0, i = 0; r == 0 && PyDict_Next(d, &pos, &k, &v); i++) {
		const unsigned char *next = isola__skip_value(cur, end, 0);
		next = next ? isola__skip_value(next, end, 0) : NULL;
		if (isola__frozen_key_hash(k, &hashes[i]) < 0) {
			r = -1;
		} else if (next == NULL) {
			PyErr_SetString(PyExc_SystemError, "freeze: an entry could not be walked");
			r = -1;
		} else {
			offsets[i] = (uint32_t)(cur - base);
			cur = next;
		}
	}
	uint32_t seed = 0, maxd = 0;
	if (r == 0 && isola__frozen_index_build((unsigned char *)e->buf.data + slots, cap, hashes,
						offsets, n32, &seed, &maxd) != 0) {
		PyErr_NoMemory();
		r = -1;
	}
	isola__free(hashes);
	isola__free(offsets);
	if (r < 0)
		return -1;
	memcpy(e->buf.data + head, &seed, 4);
	memcpy(e->buf.data + head + 4, &maxd, 4);
	ext_end(e, at);
	pop(e);
	return 0;
}

/* A view inside a new image: its container's bytes, copied (offsets are
 * relative, so they stay right); a slice is written item by item. */
static int enc_frozen_view_copy(enc *e, PyObject *obj)
{
	isola__frozen_obj *f = (isola__frozen_obj *)obj;
	if (isola__frozen_whole(f))
		return put(e, f->p - ISOLA__FROZEN_HDR, (size_t)f->size + ISOLA__FROZEN_HDR);
	PyObject *items = PySequence_List(obj);
	if (items == NULL)
		return -1;
	int r = enc_frozen_seq(e, items);
	Py_DECREF(items);
	return r;
}

/* What isola.freeze accepts; anything else is a TypeError naming its path. */
static int enc_frozen_obj(enc *e, PyObject *obj)
{
	/* enc_obj wrote None, bool, int, float, str and bytes before coming
	 * here: they are frozen exactly as they travel. */
	PyTypeObject *t = Py_TYPE(obj);
	if (t == &PyComplex_Type)
		return enc_complex(e, obj);
	if (t == &PyList_Type)
		return enc_frozen_seq(e, obj);
	if (t == &PyDict_Type)
		return enc_frozen_map(e, obj);
	if (t == &PyTuple_Type) {
		size_t at;
		if (ext_begin(e, ISOLA_EXT_TUPLE, &at) < 0 || enc_sequence_items(e, obj, F_INDEX) < 0)
			return -1;
		ext_end_small(e, at);
		return 0;
	}
	if (t == &PySet_Type || t == &PyFrozenSet_Type)
		return enc_wrapped_seq(e, obj, ISOLA_EXT_FROZENSET);
	if (isola__is_frozen_view(e->st, obj))
		return enc_frozen_view_copy(e, obj);
	/* datetime types, C or (3.12's sub-interpreters) pure Python ones */
	if (ensure_datetime(e->st) < 0)
		return -1;
	int r = enc_datetime_kind(e, obj);
	if (r <= 0)
		return r;
	if ((PyObject *)t == e->st->dt_datetime)
		return fail_at(e, PyExc_TypeError, obj,
			       "cannot be frozen with this tzinfo (naive datetimes can, and those "
			       "whose tzinfo is a datetime.timezone or a zoneinfo.ZoneInfo made "
			       "from a key)");
	if ((PyObject *)t == e->st->dt_time)
		return fail_at(e, PyExc_TypeError, obj,
			       "cannot be frozen with this tzinfo (naive times can, and those "
			       "whose tzinfo is a datetime.timezone)");
	return fail_at(e, PyExc_TypeError, obj,
		       "cannot be frozen (None, bool, int, float, complex, str, bytes, "
		       "tuple, list, dict, set/frozenset and datetime types can)");
}

/* A view travelling in a message: a reference to its image, O(1).  With
 * no reference slot (bytes, or a ninth reference), its content. */
static int enc_frozen_ref(enc *e, PyObject *obj)
{
	isola__frozen_obj *f = (isola__frozen_obj *)obj;
	size_t offset;
	isola_blob *image = isola__frozen_blob(f, &offset);
	/* A process worker: images are this process's (pointers, string
	 * hashes), so the value travels thawed. */
	if (e->o->proc || !inline_ref_fits(e) || !isola__frozen_whole(f) || offset > UINT32_MAX) {
		PyObject *plain = isola__thaw(e->st, obj);
		if (plain == NULL)
			return -1;
		int r = enc_obj(e, plain);
		Py_DECREF(plain);
		return r;
	}
	/* The same image already attached: its index again. */
	size_t nrefs = isola__msg_nrefs(e->msg), index = nrefs;
	for (size_t i = 0; i < nrefs; i++) {
		int kind;
		void *ptr;
		if (isola_msg_ref(e->msg, i, &kind, &ptr) == 0 && kind == ISOLA_REF_BLOB &&
		    ptr == (void *)image)
			index = i;
	}
	if (index == nrefs && isola_msg_attach_blob(e->msg, image) != 0)
		return fail_at(e, PyExc_MemoryError, obj, "could not be attached");
	e->inline_refs += index == nrefs;
	unsigned char ref[5] = { (unsigned char)index, (unsigned char)(offset >> 24),
				 (unsigned char)(offset >> 16), (unsigned char)(offset >> 8),
				 (unsigned char)offset };
	PK(msgpack_pack_ext(&e->pk, sizeof(ref), ISOLA_EXT_FROZEN_REF));
	PK(msgpack_pack_ext_body(&e->pk, ref, sizeof(ref)));
	return 0;
}

static int enc_obj(enc *e, PyObject *obj)
{
	PyTypeObject *t = Py_TYPE(obj);
	/* Exact builtin types first: the common, fast cases. */
	if (obj == Py_None) {
		PK(msgpack_pack_nil(&e->pk));
		return 0;
	}
	if (obj == Py_True) {
		PK(msgpack_pack_true(&e->pk));
		return 0;
	}
	if (obj == Py_False) {
		PK(msgpack_pack_false(&e->pk));
		return 0;
	}
	if (t == &PyLong_Type)
		return enc_int(e, obj);
	if (t == &PyFloat_Type)
		return put_double(e, PyFloat_AS_DOUBLE(obj));
	if (t == &PyUnicode_Type)
		return enc_str(e, obj);
	if (t == &PyBytes_Type)
		return enc_bytes_like(e, obj, PyBytes_AS_STRING(obj),
				      (size_t)PyBytes_GET_SIZE(obj), 0, 1);
	if (e->freeze)
		return enc_frozen_obj(e, obj);
	if (t == &PyList_Type)
		return enc_sequence_items(e, obj, F_INDEX);
	if (t == &PyDict_Type)
		return enc_dict(e, obj);
	if (t == &PyTuple_Type) {
		size_t at;
		if (ext_begin(e, ISOLA_EXT_TUPLE, &at) < 0 ||
		    enc_sequence_items(e, obj, F_INDEX) < 0)
			return -1;
		ext_end(e, at);
		return 0;
	}
	if (t == &PyByteArray_Type)
		return enc_bytes_like(e, obj, PyByteArray_AS_STRING(obj),
				      (size_t)PyByteArray_GET_SIZE(obj),
				      ISOLA_EXT_BYTEARRAY, 0);
	if (t == &PySet_Type || t == &PyFrozenSet_Type) {
		return enc_wrapped_seq(e, obj, t == &PySet_Type ? ISOLA_EXT_SET
								 : ISOLA_EXT_FROZENSET);
	}
	if (t == &PyComplex_Type)
		return enc_complex(e, obj);
	if (isola__is_frozen_view(e->st, obj))
		return enc_frozen_ref(e, obj);
	if (t == e->st->buffer_type) {
		isola__buffer_obj *b = (isola__buffer_obj *)obj;
		/* No reference slot left (many shared results in one chunk),
		 * or a result of a process worker: its bytes, copied, rather
		 * than a failure. */
		if ((e->o->proc || (e->msg != NULL && e->o->allow_refs)) && !inline_ref_fits(e)) {
			PK(msgpack_pack_bin(&e->pk, (size_t)b->len));
			PK(msgpack_pack_bin_body(&e->pk, b->data, (size_t)b->len));
			return 0;
		}
		return enc_blob_ref(e, obj, b->blob);
	}
	if (t == e->st->channel_type) {
		if (e->o->proc)
			return fail_at(e, PyExc_TypeError, obj,
				       "cannot travel to or from a process worker (a channel "
				       "lives in this process's memory)");
		if (e->msg == NULL || !e->o->allow_refs)
			return fail_at(e, PyExc_TypeError, obj,
				       "can only travel through a channel, not as bytes");
		size_t index = isola__msg_nrefs(e->msg);
		int r = isola_msg_attach_channel(e->msg, ((isola__channel_obj *)obj)->ch);
		if (r == ISOLA_ELIMIT && e->inline_refs > 0) {
			/* blobs took the slots: write the message again, with
			 * one blob fewer attached (copied inline instead) */
			e->retry = 1;
			e->inline_budget = e->inline_refs - 1;
		}
		if (r == ISOLA_ELIMIT)
			return fail_at(e, PyExc_ValueError, obj,
				       "is one reference too many: a message carries at most 8 "
				       "channels (and blobs, which are copied inline to make room "
				       "for channels)");
		if (r != 0)
			return fail_at(e, PyExc_MemoryError, obj, "could not be attached");
		unsigned char idx = (unsigned char)index;
		PK(msgpack_pack_ext(&e->pk, 1, ISOLA_EXT_CHANNEL));
		PK(msgpack_pack_ext_body(&e->pk, &idx, 1));
		return 0;
	}
	if (strncmp(t->tp_name, "datetime.", 9) == 0) {
		if (ensure_datetime(e->st) < 0)
			return -1;
		int r = enc_datetime_kind(e, obj);
		if (r <= 0)
			return r;
	}
	if (PyExceptionInstance_Check(obj))
		return enc_exception(e, obj);
	if (PyObject_CheckBuffer(obj) && !PyType_IsSubtype(t, &PyBytes_Type) &&
	    !PyType_IsSubtype(t, &PyByteArray_Type))
		return enc_buffer_protocol(e, obj);
	return enc_pickled(e, obj);
}

static void encode_init(isola__state *st, const isola__codec_opts *o, isola_msg *msg, enc *e,
			int inline_budget)
{
	e->inline_budget = inline_budget;
	e->inline_refs = 0;
	e->retry = 0;
	e->st = st;
	e->o = o;
	e->msg = msg;
	e->depth = 0;
	e->frames = e->inline_frames;
	e->frames_cap = (int)(sizeof(e->inline_frames) / sizeof(e->inline_frames[0]));
	e->root = "obj";
	e->code = ISOLA_EPYTHON;
	e->freeze = 0;
	e->buf.data = e->buf.small;
	e->buf.len = 0;
	e->buf.cap = sizeof(e->buf.small);
	e->buf.max = o->max_size;
	e->buf.heap = e->buf.too_big = e->buf.no_memory = 0;
	msgpack_packer_init(&e->pk, &e->buf, wbuf_write);
	if (st->owner != NULL)
		isola__owner_drain(st->owner);
}

static int encode_into(isola__state *st, PyObject *obj, const isola__codec_opts *o,
		       isola_msg *msg, enc *e, int freeze, int inline_budget)
{
	encode_init(st, o, msg, e, inline_budget);
	e->freeze = freeze;
	return enc_obj(e, obj);
}

/* Free what an encode may have allocated (output buffer, deep frames). */
static void encode_done(enc *e)
{
	if (e->buf.heap)
		isola__free(e->buf.data);
	if (e->frames != e->inline_frames)
		PyMem_Free(e->frames);
}

/* The end of an encode into a message: move the bytes into out (r: the
 * walk's result), free the rest.  0 or the failure's code. */
static int encode_finish(enc *e, int r, isola_msg *out)
{
	if (r == 0) {
		if (e->buf.len <= ISOLA_MSG_INLINE) {
			r = isola_msg_set_bytes(out, e->buf.data, e->buf.len);
		} else if (e->buf.heap) {
			r = isola_msg_adopt(out, e->buf.data, e->buf.len);
			if (r == 0)
				e->buf.heap = 0; /* the message owns it now */
		} else {
			r = isola_msg_set_bytes(out, e->buf.data, e->buf.len);
		}
		if (r != 0) {
			PyErr_NoMemory();
			e->code = ISOLA_ENOMEM;
			r = -1;
		}
	}
	encode_done(e);
	if (r != 0) {
		isola_msg_clear(out);
		r = e->code;
	}
	return r;
}

int isola__encode(isola__state *st, PyObject *obj, const isola__codec_opts *o,
		  isola_msg *out)
{
	enc stack_enc, *e = &stack_enc;
	isola_msg_init(out);
	int r = encode_into(st, obj, o, out, e, 0, ISOLA_MSG_MAX_REFS);
	while (r != 0 && e->retry) { /* a channel found blobs in every slot */
		int budget = e->inline_budget;
		PyErr_Clear();
		encode_done(e);
		isola_msg_clear(out);
		r = encode_into(st, obj, o, out, e, 0, budget);
	}
	return encode_finish(e, r, out);
}

/* The items as one array, each encoded as enc_obj would at depth 1. */
static int enc_items(enc *e, PyObject *const *items, size_t n)
{
	if (push(e, NULL, F_INDEX) < 0)
		return -1;
	PK(msgpack_pack_array(&e->pk, n));
	for (size_t i = 0; i < n; i++) {
		e->frames[e->depth - 1].index = (Py_ssize_t)i;
		if (enc_obj(e, items[i]) < 0)
			return -1;
	}
	pop(e);
	return 0;
}

int isola__encode_items(isola__state *st, PyObject *const *items, size_t n,
			const isola__codec_opts *o, isola_msg *out)
{
	enc stack_enc, *e = &stack_enc;
	isola_msg_init(out);
	int budget = ISOLA_MSG_MAX_REFS, r;
	for (;;) {
		encode_init(st, o, out, e, budget);
		e->root = "args";
		r = enc_items(e, items, n);
		if (r == 0 || !e->retry)
			break;
		budget = e->inline_budget; /* as isola__encode: one blob fewer attached */
		PyErr_Clear();
		encode_done(e);
		isola_msg_clear(out);
	}
	return encode_finish(e, r, out);
}

PyObject *isola__encode_bytes(isola__state *st, PyObject *obj, const isola__codec_opts *o)
{
	enc stack_enc, *e = &stack_enc;
	PyObject *r = NULL;
	if (encode_into(st, obj, o, NULL, e, 0, 0) == 0)
		r = PyBytes_FromStringAndSize(e->buf.data, (Py_ssize_t)e->buf.len);
	encode_done(e);
	return r;
}

int isola__freeze_image(isola__state *st, PyObject *obj, isola_blob **out)
{
	static const isola__codec_opts frozen_opts = {
		.allow_pickle = 0,
		.allow_refs = 0,
		.blob_threshold = SIZE_MAX,
		.max_size = SIZE_MAX,
		.max_depth = ISOLA__MAX_DEPTH_DEFAULT,
	};
	enc stack_enc, *e = &stack_enc;
	*out = NULL;
	int r = encode_into(st, obj, &frozen_opts, NULL, e, 1, 0);
	if (r == 0) {
		size_t len = e->buf.len;
		char *data;
		if (e->buf.heap) { /* shrink to fit: the image lives long */
			data = isola__realloc(e->buf.data, len);
			if (data != NULL)
				e->buf.heap = 0; /* data owns the bytes now */
		} else if ((data = isola__malloc(len)) != NULL) {
			memcpy(data, e->buf.data, len);
		}
		if (data == NULL || isola_blob_wrap(data, len, isola__image_free, NULL, out) != 0) {
			isola__free(data);
			PyErr_NoMemory();
			e->code = ISOLA_ENOMEM;
			r = -1;
		}
	}
	encode_done(e);
	return r == 0 ? 0 : e->code;
}
