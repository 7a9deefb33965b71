/*
 * frozen_view.c - isola.FrozenMap and isola.FrozenSeq: read-only views of
 * a frozen image (frozen.h), decoding only what is read.
 *
 * Every read is bounds-checked against the container's payload, so a
 * view never reads outside its image whatever offset it was given.  A
 * view holds its image through an isola.Buffer of its own interpreter
 * (nested views share it: no atomic operation per read); what it
 * returns is decoded into the reader's heap and owes the image nothing.
 */
#include "interp/frozen.h"

#include "channels/blob.h"
#include "interp/codec.h"
#include "interp/wire.h"

/* ---- making views ------------------------------------------------------ */

static PyObject *malformed(const char *what)
{
	PyErr_Format(PyExc_ValueError, "malformed frozen image: %s", what);
	return NULL;
}

/* Where a mapping's first key starts (after the header and the slots). */
static uint32_t first_key(const isola__frozen_obj *f)
{
	return ISOLA__FROZEN_MAP_HEAD + 4 * f->cap;
}

/* The payload end, for decoding. */
static const unsigned char *end_of(const isola__frozen_obj *f)
{
	return f->p + f->size;
}

static PyObject *decode_at(isola__frozen_obj *f, uint32_t off, int thaw,
			   const unsigned char **next)
{
	if (off >= f->size)
		return malformed("offset past its container");
	isola__state *st = PyType_GetModuleState(Py_TYPE(f));
	return isola__frozen_decode(st, f->owner, f->p + off, end_of(f), thaw, next);
}

/* Item i of the whole sequence (0 <= i < n). */
static PyObject *seq_get(isola__frozen_obj *f, Py_ssize_t i, int thaw)
{
	return decode_at(f, isola__rd32(f->p + 4 + 4 * (size_t)i), thaw, NULL);
}

static PyObject *thaw_container(isola__state *st, PyObject *owner, int type,
				const unsigned char *p, size_t size);

PyObject *isola__frozen_container(isola__state *st, PyObject *owner, int type,
				  const unsigned char *p, size_t size, int thaw)
{
	if (size < 4 || size > UINT32_MAX)
		return malformed("container too small");
	uint64_t n = isola__rd32(p), cap = 0;
	if (type == ISOLA_EXT_FROZEN_SEQ) {
		if (4 + 4 * n > size)
			return malformed("sequence table past its container");
	} else {
		if (size < ISOLA__FROZEN_MAP_HEAD)
			return malformed("mapping too small");
		cap = isola__rd32(p + 4);
		if (cap == 0 || (cap & (cap - 1)) != 0 || cap <= n ||
		    ISOLA__FROZEN_MAP_HEAD + 4 * cap > size)
			return malformed("mapping index past its container");
	}
	if (thaw)
		return thaw_container(st, owner, type, p, size);
	PyTypeObject *tp = type == ISOLA_EXT_FROZEN_SEQ ? st->frozen_seq_type : st->frozen_map_type;
	isola__frozen_obj *f = PyObject_New(isola__frozen_obj, tp);
	if (f == NULL)
		return NULL;
	f->owner = Py_NewRef(owner);
	f->p = p;
	f->size = (uint32_t)size;
	f->n = (uint32_t)n;
	f->cap = (uint32_t)cap;
	f->start = 0;
	f->step = 1;
	f->len = (Py_ssize_t)n;
	f->hash = -1;
	return (PyObject *)f;
}

PyObject *isola__frozen_at(isola__state *st, isola_blob *blob, size_t offset)
{
	if (!isola__blob_is_image(blob) || offset >= blob->len)
		return malformed("reference outside its image");
	PyObject *owner = isola__buffer_wrap(st, blob);
	if (owner == NULL)
		return NULL;
	const unsigned char *data = blob->data;
	PyObject *r = isola__frozen_decode(st, owner, data + offset, data + blob->len, 0, NULL);
	Py_DECREF(owner);
	return r;
}

isola_blob *isola__frozen_blob(const isola__frozen_obj *f, size_t *offset)
{
	isola_blob *blob = ((isola__buffer_obj *)f->owner)->blob;
	*offset = (size_t)(f->p - ISOLA__FROZEN_HDR - (const unsigned char *)blob->data);
	return blob;
}

/* ---- mappings ---------------------------------------------------------- */

/* The length of the msgpack str at k (bounded by end), or -1 when k is
 * not a plain str; *hdr receives its header size. */
static int64_t str_at(const unsigned char *k, const unsigned char *end, int *hdr)
{
	size_t left = (size_t)(end - k);
	if (left < 1)
		return -1;
	unsigned char b = k[0];
	int64_t len;
	if ((b & 0xe0) == 0xa0) {
		*hdr = 1;
		len = b & 0x1f;
	} else if (b == 0xd9 && left >= 2) {
		*hdr = 2;
		len = k[1];
	} else if (b == 0xda && left >= 3) {
		*hdr = 3;
		len = ((int64_t)k[1] << 8) | k[2];
	} else if (b == 0xdb && left >= 5) {
		*hdr = 5;
		len = ((int64_t)k[1] << 24) | ((int64_t)k[2] << 16) | ((int64_t)k[3] << 8) | k[4];
	} else {
		return -1;
	}
	return (size_t)*hdr + (size_t)len <= left ? len : -1;
}

/* The msgpack int at k (bounded by end): 1 (*v, *neg: a negative int64,
 * else a uint64), or 0 when k is not a msgpack int. */
static int int_at(const unsigned char *k, const unsigned char *end, uint64_t *v, int *neg)
{
	static const unsigned char width[8] = { 1, 2, 4, 8, 1, 2, 4, 8 };
	if (k >= end)
		return 0;
	unsigned char b = k[0];
	*neg = 0;
	if (b <= 0x7f) {
		*v = b;
		return 1;
	}
	if (b >= 0xe0) {
		*v = (uint64_t)(int64_t)(int8_t)b;
		*neg = 1;
		return 1;
	}
	if (b < 0xcc || b > 0xd3)
		return 0;
	int w = width[b - 0xcc];
	if (end - k - 1 < w)
		return 0;
	uint64_t u = 0;
	for (int i = 0; i < w; i++)
		u = u << 8 | k[1 + i];
	if (b >= 0xd0) { /* int8..int64: sign-extend */
		int shift = 64 - 8 * w;
		int64_t sv = (int64_t)(u << shift) >> shift;
		*neg = sv < 0;
		u = (uint64_t)sv;
	}
	*v = u;
	return 1;
}

/* A key to look up, prepared once for every probe: its UTF-8 bytes (a
 * str), or its value (an int that fits 64 bits), compared with stored
 * keys without making objects. */
typedef struct {
	PyObject *key;
	const char *utf8; /* str: its UTF-8, else NULL */
	Py_ssize_t utf8_len;
	int is_int;       /* an exact int in [-2^63, 2^64) */
	int neg;          /* is_int: negative (v is an int64) */
	uint64_t v;
} probe_key;

static void probe_key_init(probe_key *pk, PyObject *key)
{
	pk->key = key;
	pk->utf8 = NULL;
	pk->utf8_len = 0;
	pk->is_int = 0;
	if (PyUnicode_CheckExact(key)) {
		if ((pk->utf8 = PyUnicode_AsUTF8AndSize(key, &pk->utf8_len)) == NULL)
			PyErr_Clear(); /* lone surrogates: compared as objects */
	} else if (PyLong_CheckExact(key)) {
		int overflow;
		long long sv = PyLong_AsLongLongAndOverflow(key, &overflow);
		if (overflow == 0 && !(sv == -1 && PyErr_Occurred())) {
			pk->is_int = 1, pk->neg = sv < 0, pk->v = (uint64_t)sv;
		} else if (overflow > 0) {
			unsigned long long u = PyLong_AsUnsignedLongLong(key);
			if (!(u == (unsigned long long)-1 && PyErr_Occurred()))
				pk->is_int = 1, pk->neg = 0, pk->v = u;
		}
		PyErr_Clear();
	}
}

/* Does the key at koff equal pk's?  1 yes (*value: where its value
 * starts), 0 no, -1 error.  A str key against a stored str compares
 * UTF-8 bytes, an int against a stored int their values (no object
 * made); other keys are decoded and compared (isola__frozen_same). */
static int key_matches(isola__frozen_obj *f, uint32_t koff, const probe_key *pk,
		       const unsigned char **value)
{
	if (koff < first_key(f) || koff >= f->size) {
		malformed("key offset outside its container");
		return -1;
	}
	const unsigned char *k = f->p + koff;
	int hdr;
	int64_t len;
	if (pk->utf8 != NULL && (len = str_at(k, end_of(f), &hdr)) >= 0) {
		*value = k + hdr + len;
		return len == pk->utf8_len && memcmp(k + hdr, pk->utf8, (size_t)len) == 0;
	}
	uint64_t v;
	int neg;
	if (pk->is_int && int_at(k, end_of(f), &v, &neg)) {
		if (v != pk->v || neg != pk->neg)
			return 0;
		const unsigned char *next = isola__skip_value(k, end_of(f), 0);
		if (next == NULL) {
			malformed("key past its container");
			return -1;
		}
		*value = next;
		return 1;
	}
	PyObject *stored = decode_at(f, koff, 0, value);
	if (stored == NULL)
		return -1;
	int eq = isola__frozen_same(stored, pk->key);
	Py_DECREF(stored);
	return eq;
}

/* The index's seed and longest displacement (frozen.h). */
static uint32_t map_seed(const isola__frozen_obj *f)
{
	return isola__rd32(f->p + 8);
}

static uint32_t map_maxd(const isola__frozen_obj *f)
{
	return isola__rd32(f->p + 12);
}

/* Find key: 1 (*value set), 0 (absent), -1 (error: unhashable...).
 * Probes at most maxd + 1 slots from the key's home (and never more
 * than cap, whatever a malformed maxd says). */
static int map_find(isola__frozen_obj *f, PyObject *key, const unsigned char **value)
{
	uint64_t h;
	if (isola__frozen_key_hash(key, &h) < 0)
		return -1;
	probe_key pk;
	probe_key_init(&pk, key);
	const unsigned char *slots = f->p + ISOLA__FROZEN_MAP_HEAD;
	uint32_t mask = f->cap - 1, maxd = map_maxd(f);
	uint32_t probes = maxd < mask ? maxd + 1 : f->cap;
	for (uint32_t s = isola__frozen_home(h, map_seed(f), mask), i = 0; i < probes;
	     s = (s + 1) & mask, i++) {
		uint32_t koff = isola__rd32(slots + 4 * (size_t)s);
		if (koff == 0)
			return 0;
		int m = key_matches(f, koff, &pk, value);
		if (m != 0)
			return m;
	}
	return 0;
}

/* The value starting at value; with cur, *cur moves past it (to the
 * next entry). */
static PyObject *map_value(isola__frozen_obj *f, const unsigned char *value, int thaw,
			   uint32_t *cur)
{
	if (value >= end_of(f))
		return malformed("value past its container");
	const unsigned char *next;
	PyObject *v = decode_at(f, (uint32_t)(value - f->p), thaw, &next);
	if (v != NULL && cur != NULL)
		*cur = (uint32_t)(next - f->p);
	return v;
}

static Py_ssize_t fz_len(PyObject *self)
{
	return ((isola__frozen_obj *)self)->len;
}

static PyObject *map_subscript(PyObject *self, PyObject *key)
{
	isola__frozen_obj *f = (isola__frozen_obj *)self;
	const unsigned char *value;
	int r = map_find(f, key, &value);
	if (r > 0)
		return map_value(f, value, 0, NULL);
	if (r == 0)
		PyErr_SetObject(PyExc_KeyError, key);
	return NULL;
}

static int map_contains(PyObject *self, PyObject *key)
{
	const unsigned char *value;
	return map_find((isola__frozen_obj *)self, key, &value);
}

static PyObject *map_get(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
	if (nargs < 1 || nargs > 2)
		return PyErr_Format(PyExc_TypeError, "get expected 1 or 2 arguments, got %zd", nargs);
	isola__frozen_obj *f = (isola__frozen_obj *)self;
	const unsigned char *value;
	int r = map_find(f, args[0], &value);
	if (r > 0)
		return map_value(f, value, 0, NULL);
	return r < 0 ? NULL : Py_NewRef(nargs == 2 ? args[1] : Py_None);
}

/* Entries are read in insertion order with a cursor: the offset of an
 * entry's key; each read moves it past the entry's value. */

/* frozen.h: the value at p skipped, without decoding it. */
const unsigned char *isola__skip_value(const unsigned char *p, const unsigned char *end, int depth)
{
	enum { DATA, EXT, ARRAY, MAP } kind = DATA;
	if (p >= end || depth > ISOLA__MAX_DEPTH_DEFAULT)
		return NULL;
	unsigned char b = *p++;
	uint64_t len = 0, items = 0;
	int width = 0; /* bytes of a length or count that follow */
	if (b <= 0x7f || b >= 0xe0 || (b >= 0xc0 && b <= 0xc3))
		return p; /* fixint, nil, bools */
	if ((b & 0xe0) == 0xa0) {
		len = b & 0x1f;
	} else if ((b & 0xf0) == 0x90) {
		items = b & 0x0f;
	} else if ((b & 0xf0) == 0x80) {
		items = 2 * (uint64_t)(b & 0x0f);
	} else {
		switch (b) {
		case 0xcc: case 0xd0: len = 1; break;
		case 0xcd: case 0xd1: len = 2; break;
		case 0xca: case 0xce: case 0xd2: len = 4; break;
		case 0xcb: case 0xcf: case 0xd3: len = 8; break;
		case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: /* fixext: type + data */
			len = 1 + ((uint64_t)1 << (b - 0xd4));
			break;
		case 0xc4: case 0xd9: width = 1; break;
		case 0xc5: case 0xda: width = 2; break;
		case 0xc6: case 0xdb: width = 4; break;
		case 0xc7: width = 1, kind = EXT; break; /* then the type byte */
		case 0xc8: width = 2, kind = EXT; break;
		case 0xc9: width = 4, kind = EXT; break;
		case 0xdc: width = 2, kind = ARRAY; break;
		case 0xdd: width = 4, kind = ARRAY; break;
		case 0xde: width = 2, kind = MAP; break;
		case 0xdf: width = 4, kind = MAP; break;
		default: return NULL;
		}
		if (width > 0) {
			if ((size_t)(end - p) < (size_t)width)
				return NULL;
			uint64_t v = 0;
			for (int i = 0; i < width; i++)
				v = v << 8 | p[i];
			p += width;
			if (kind == ARRAY || kind == MAP)
				items = kind == MAP ? 2 * v : v;
			else
				len = v + (kind == EXT); /* an ext's type byte */
		}
	}
	if (len > (uint64_t)(end - p))
		return NULL;
	p += len;
	for (uint64_t i = 0; p != NULL && i < items; i++)
		p = isola__skip_value(p, end, depth + 1);
	return p;
}

/* The key at *cur (and, with value, where its value starts); *cur moves
 * past the entry when value is NULL (the value is skipped). */
static PyObject *map_key_at(isola__frozen_obj *f, uint32_t *cur, const unsigned char **value)
{
	const unsigned char *v;
	PyObject *k = decode_at(f, *cur, 0, &v);
	if (k == NULL)
		return NULL;
	if (value != NULL) {
		*value = v;
		return k;
	}
	const unsigned char *next = isola__skip_value(v, end_of(f), 0);
	if (next == NULL) {
		Py_DECREF(k);
		return malformed("value past its container");
	}
	*cur = (uint32_t)(next - f->p);
	return k;
}

/* The value of the entry at *cur (its key skipped, not decoded); *cur
 * moves past the entry. */
static PyObject *map_value_at(isola__frozen_obj *f, uint32_t *cur)
{
	if (*cur >= f->size)
		return malformed("entry past its container");
	const unsigned char *value = isola__skip_value(f->p + *cur, end_of(f), 0);
	if (value == NULL)
		return malformed("key past its container");
	return map_value(f, value, 0, cur);
}

/* ---- iterators --------------------------------------------------------- */

enum iter_mode { IT_SEQ, IT_KEYS, IT_VALUES, IT_ITEMS };

typedef struct {
	PyObject_HEAD
	isola__frozen_obj *view;
	Py_ssize_t i;
	uint32_t cur; /* mappings: the next entry's key offset */
	enum iter_mode mode;
} frozen_iter;

static PyObject *iter_new(PyObject *self, enum iter_mode mode)
{
	isola__state *st = PyType_GetModuleState(Py_TYPE(self));
	frozen_iter *it = PyObject_New(frozen_iter, st->frozen_iter_type);
	if (it == NULL)
		return NULL;
	it->view = (isola__frozen_obj *)Py_NewRef(self);
	it->i = 0;
	it->cur = mode == IT_SEQ ? 0 : first_key(it->view);
	it->mode = mode;
	return (PyObject *)it;
}

static PyObject *iter_next(PyObject *self)
{
	frozen_iter *it = (frozen_iter *)self;
	isola__frozen_obj *f = it->view;
	if (it->i >= f->len)
		return NULL;
	Py_ssize_t i = it->i++;
	switch (it->mode) {
	case IT_SEQ:
		return seq_get(f, f->start + i * f->step, 0);
	case IT_KEYS:
		return map_key_at(f, &it->cur, NULL);
	case IT_VALUES:
		return map_value_at(f, &it->cur);
	case IT_ITEMS: {
		const unsigned char *value;
		PyObject *k = map_key_at(f, &it->cur, &value);
		PyObject *v = k ? map_value(f, value, 0, &it->cur) : NULL;
		PyObject *r = v ? PyTuple_Pack(2, k, v) : NULL;
		Py_XDECREF(k);
		Py_XDECREF(v);
		return r;
	}
	}
	return NULL;
}

static PyObject *iter_length_hint(PyObject *self, PyObject *unused)
{
	(void)unused;
	frozen_iter *it = (frozen_iter *)self;
	return PyLong_FromSsize_t(it->view->len - it->i);
}

static void iter_dealloc(PyObject *self)
{
	PyTypeObject *tp = Py_TYPE(self);
	Py_DECREF(((frozen_iter *)self)->view);
	tp->tp_free(self);
	Py_DECREF(tp);
}

static PyMethodDef iter_methods[] = {
	{ "__length_hint__", iter_length_hint, METH_NOARGS, NULL },
	{ NULL, NULL, 0, NULL },
};

static PyType_Slot iter_slots[] = {
	{ Py_tp_dealloc, iter_dealloc },
	{ Py_tp_iter, PyObject_SelfIter },
	{ Py_tp_iternext, iter_next },
	{ Py_tp_methods, iter_methods },
	{ 0, NULL },
};

PyType_Spec isola__frozen_iter_spec = {
	.name = "isola._FrozenIterator",
	.basicsize = sizeof(frozen_iter),
	.flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
	.slots = iter_slots,
};

static PyObject *map_iter(PyObject *self)
{
	return iter_new(self, IT_KEYS);
}

static PyObject *map_iter_values(PyObject *self, PyObject *unused)
{
	(void)unused;
	return iter_new(self, IT_VALUES);
}

static PyObject *map_iter_items(PyObject *self, PyObject *unused)
{
	(void)unused;
	return iter_new(self, IT_ITEMS);
}

/* _index_stats(): the index measured, for tests and benchmarks: slots,
 * entries, the recorded longest displacement, and the longest and mean
 * displacement found by rehashing every key in its slot (a lookup
 * probes displacement + 1 slots). */
static PyObject *map_index_stats(PyObject *self, PyObject *unused)
{
	(void)unused;
	isola__frozen_obj *f = (isola__frozen_obj *)self;
	const unsigned char *slots = f->p + ISOLA__FROZEN_MAP_HEAD;
	uint32_t mask = f->cap - 1, seed = map_seed(f), longest = 0;
	uint64_t total = 0, used = 0;
	for (uint32_t s = 0; s < f->cap; s++) {
		uint32_t koff = isola__rd32(slots + 4 * (size_t)s);
		if (koff == 0)
			continue;
		PyObject *k = decode_at(f, koff, 0, NULL);
		uint64_t h;
		int r = k ? isola__frozen_key_hash(k, &h) : -1;
		Py_XDECREF(k);
		if (r < 0)
			return NULL;
		uint32_t d = (s - isola__frozen_home(h, seed, mask)) & mask;
		longest = d > longest ? d : longest;
		total += d;
		used++;
	}
	return Py_BuildValue("{sIsKsIsIsd}", "cap", f->cap, "entries", (unsigned long long)used,
			     "recorded_max_displacement", map_maxd(f), "max_displacement", longest,
			     "mean_displacement", used ? (double)total / (double)used : 0.0);
}

/* keys()/values()/items(): collections.abc views (set-like keys and
 * items), made at module exec; values and items iterate with the
 * iterators above rather than a lookup per key. */
static PyObject *map_keys(PyObject *self, PyObject *unused)
{
	(void)unused;
	isola__state *st = PyType_GetModuleState(Py_TYPE(self));
	return PyObject_CallOneArg(st->frozen_views[0], self);
}

static PyObject *map_values(PyObject *self, PyObject *unused)
{
	(void)unused;
	isola__state *st = PyType_GetModuleState(Py_TYPE(self));
	return PyObject_CallOneArg(st->frozen_views[1], self);
}

static PyObject *map_items(PyObject *self, PyObject *unused)
{
	(void)unused;
	isola__state *st = PyType_GetModuleState(Py_TYPE(self));
	return PyObject_CallOneArg(st->frozen_views[2], self);
}

/* ---- thawing and comparing --------------------------------------------- */

static PyObject *thaw_container(isola__state *st, PyObject *owner, int type,
				const unsigned char *p, size_t size)
{
	isola__frozen_obj *f = (isola__frozen_obj *)isola__frozen_container(st, owner, type, p,
									     size, 0);
	if (f == NULL)
		return NULL;
	PyObject *r = type == ISOLA_EXT_FROZEN_SEQ ? PyList_New(f->n) : PyDict_New();
	uint32_t cur = type == ISOLA_EXT_FROZEN_SEQ ? 0 : first_key(f);
	for (uint32_t j = 0; r != NULL && j < f->n; j++) {
		if (type == ISOLA_EXT_FROZEN_SEQ) {
			PyObject *item = seq_get(f, j, 1);
			if (item == NULL)
				Py_CLEAR(r);
			else
				PyList_SET_ITEM(r, j, item);
			continue;
		}
		const unsigned char *value;
		PyObject *k = map_key_at(f, &cur, &value);
		PyObject *v = k ? map_value(f, value, 1, &cur) : NULL;
		if (v == NULL || PyDict_SetItem(r, k, v) < 0)
			Py_CLEAR(r);
		Py_XDECREF(k);
		Py_XDECREF(v);
	}
	Py_DECREF(f);
	return r;
}

PyObject *isola__thaw(isola__state *st, PyObject *obj)
{
	PyTypeObject *t = Py_TYPE(obj);
	if (t == st->frozen_map_type || t == st->frozen_seq_type) {
		isola__frozen_obj *f = (isola__frozen_obj *)obj;
		int type = t == st->frozen_map_type ? ISOLA_EXT_FROZEN_MAP : ISOLA_EXT_FROZEN_SEQ;
		if (isola__frozen_whole(f))
			return thaw_container(st, f->owner, type, f->p, f->size);
		PyObject *r = PyList_New(f->len);
		for (Py_ssize_t i = 0; r != NULL && i < f->len; i++) {
			PyObject *item = seq_get(f, f->start + i * f->step, 1);
			if (item == NULL)
				Py_CLEAR(r);
			else
				PyList_SET_ITEM(r, i, item);
		}
		return r;
	}
	if (t == &PyTuple_Type || t == &PyList_Type) {
		Py_ssize_t n = PySequence_Fast_GET_SIZE(obj);
		PyObject *r = t == &PyTuple_Type ? PyTuple_New(n) : PyList_New(n);
		for (Py_ssize_t i = 0; r != NULL && i < n; i++) {
			PyObject *item = isola__thaw(st, PySequence_Fast_GET_ITEM(obj, i));
			if (item == NULL)
				Py_CLEAR(r);
			else if (t == &PyTuple_Type)
				PyTuple_SET_ITEM(r, i, item);
			else
				PyList_SET_ITEM(r, i, item);
		}
		return r;
	}
	if (t == &PyDict_Type) {
		PyObject *r = PyDict_New(), *k, *v;
		Py_ssize_t pos = 0;
		while (r != NULL && PyDict_Next(obj, &pos, &k, &v)) {
			PyObject *tv = isola__thaw(st, v);
			if (tv == NULL || PyDict_SetItem(r, k, tv) < 0)
				Py_CLEAR(r);
			Py_XDECREF(tv);
		}
		return r;
	}
	return Py_NewRef(obj);
}

static PyObject *fz_thawed(PyObject *self)
{
	return isola__thaw(PyType_GetModuleState(Py_TYPE(self)), self);
}

/* eq (1, 0, or -1 with an exception) as the answer to == / !=. */
static PyObject *eq_answer(int eq, int op)
{
	if (eq < 0)
		return NULL;
	return PyBool_FromLong(op == Py_EQ ? eq : !eq);
}

/* The hash of plain (a new reference, or NULL), remembered in f. */
static Py_hash_t hash_as(isola__frozen_obj *f, PyObject *plain)
{
	if (plain == NULL)
		return -1;
	f->hash = PyObject_Hash(plain);
	Py_DECREF(plain);
	return f->hash;
}

/* Equal to a dict with equal entries: each of the dict's keys is looked
 * up here (so a NaN key, found here by its bits, finds its entry), and
 * values compare as isola__frozen_same.  1, 0 or -1. */
static int map_equals_dict(isola__frozen_obj *f, PyObject *other)
{
	int eq = PyDict_GET_SIZE(other) == f->len;
	Py_ssize_t pos = 0;
	PyObject *k, *ov;
	while (eq == 1 && PyDict_Next(other, &pos, &k, &ov)) {
		Py_INCREF(k); /* a value's __eq__ may change the dict */
		Py_INCREF(ov);
		const unsigned char *value;
		eq = map_find(f, k, &value);
		if (eq > 0) {
			PyObject *v = map_value(f, value, 0, NULL);
			eq = v ? isola__frozen_same(v, ov) : -1;
			Py_XDECREF(v);
		}
		Py_DECREF(k);
		Py_DECREF(ov);
	}
	return eq;
}

static PyObject *map_richcompare(PyObject *self, PyObject *other, int op)
{
	isola__frozen_obj *f = (isola__frozen_obj *)self;
	if ((op != Py_EQ && op != Py_NE) || !(PyDict_Check(other) || Py_TYPE(other) == Py_TYPE(self)))
		Py_RETURN_NOTIMPLEMENTED;
	if (PyDict_Check(other))
		return eq_answer(map_equals_dict(f, other), op);
	int eq = PyObject_Size(other) == f->len;
	if (eq && ((isola__frozen_obj *)other)->p == f->p)
		return PyBool_FromLong(op == Py_EQ);
	uint32_t cur = first_key(f);
	for (uint32_t j = 0; eq == 1 && j < f->n; j++) {
		const unsigned char *value;
		PyObject *k = map_key_at(f, &cur, &value);
		PyObject *v = k ? map_value(f, value, 0, &cur) : NULL;
		PyObject *ov = v ? PyObject_GetItem(other, k) : NULL;
		if (ov != NULL)
			eq = isola__frozen_same(v, ov);
		else if (v != NULL && PyErr_ExceptionMatches(PyExc_KeyError))
			PyErr_Clear(), eq = 0;
		else
			eq = -1;
		Py_XDECREF(k);
		Py_XDECREF(v);
		Py_XDECREF(ov);
	}
	return eq_answer(eq, op);
}

/* As frozenset(self.items()), a NaN hashed by its bits
 * (isola__frozen_hashable): equal mappings hash alike. */
static Py_hash_t map_hash(PyObject *self)
{
	isola__frozen_obj *f = (isola__frozen_obj *)self;
	if (f->hash != -1)
		return f->hash;
	PyObject *items = map_iter_items(self, NULL);
	PyObject *list = items ? PySequence_List(items) : NULL;
	Py_XDECREF(items);
	for (Py_ssize_t i = 0; list != NULL && i < PyList_GET_SIZE(list); i++) {
		PyObject *x = isola__frozen_hashable(PyList_GET_ITEM(list, i));
		if (x == NULL)
			Py_CLEAR(list);
		else
			PyList_SetItem(list, i, x);
	}
	PyObject *set = list ? PyFrozenSet_New(list) : NULL;
	Py_XDECREF(list);
	return hash_as(f, set);
}

static PyObject *fz_repr(PyObject *self)
{
	PyObject *plain = fz_thawed(self);
	if (plain == NULL)
		return NULL;
	PyObject *r = PyUnicode_FromFormat("%s(%R)", Py_TYPE(self)->tp_name, plain);
	Py_DECREF(plain);
	return r;
}

static void fz_dealloc(PyObject *self)
{
	PyTypeObject *tp = Py_TYPE(self);
	Py_DECREF(((isola__frozen_obj *)self)->owner);
	tp->tp_free(self);
	Py_DECREF(tp);
}

/* Immutable: copies are the value itself. */
static PyObject *fz_copy(PyObject *self, PyObject *unused)
{
	(void)unused;
	return Py_NewRef(self);
}

/* pickle: a plain copy, frozen again where it is loaded. */
static PyObject *fz_reduce(PyObject *self, PyObject *unused)
{
	(void)unused;
	PyObject *mod = PyImport_ImportModule("isola");
	PyObject *freeze = mod ? PyObject_GetAttrString(mod, "freeze") : NULL;
	PyObject *plain = freeze ? fz_thawed(self) : NULL;
	PyObject *r = plain ? Py_BuildValue("O(O)", freeze, plain) : NULL;
	Py_XDECREF(plain);
	Py_XDECREF(freeze);
	Py_XDECREF(mod);
	return r;
}

static PyObject *fz_deepcopy(PyObject *self, PyObject *memo)
{
	(void)memo;
	return Py_NewRef(self);
}

/* The whole image's size: what the value costs the process, once. */
static PyObject *fz_nbytes(PyObject *self, void *closure)
{
	(void)closure;
	size_t offset;
	isola_blob *image = isola__frozen_blob((isola__frozen_obj *)self, &offset);
	return PyLong_FromSize_t(image->len);
}

static PyGetSetDef fz_getset[] = {
	{ "nbytes", fz_nbytes, NULL,
	  "Bytes of the frozen image this value lives in (shared by every interpreter).", NULL },
	{ NULL, NULL, NULL, NULL, NULL },
};

#define COMMON_METHODS                                                                  \
	{ "__copy__", fz_copy, METH_NOARGS, NULL },                                      \
	{ "__deepcopy__", fz_deepcopy, METH_O, NULL },                                   \
	{ "__reduce__", fz_reduce, METH_NOARGS, NULL }

static PyMethodDef map_methods[] = {
	{ "get", (PyCFunction)(void (*)(void))map_get, METH_FASTCALL,
	  "get(key, default=None)\n--\n\nself[key] if key is in the mapping, else default." },
	{ "keys", map_keys, METH_NOARGS, "A set-like view of the keys." },
	{ "values", map_values, METH_NOARGS, "A view of the values." },
	{ "items", map_items, METH_NOARGS, "A set-like view of the (key, value) pairs." },
	{ "_iter_values", map_iter_values, METH_NOARGS, NULL },
	{ "_iter_items", map_iter_items, METH_NOARGS, NULL },
	{ "_index_stats", map_index_stats, METH_NOARGS,
	  "The hash index measured: cap, entries, max/mean displacement (tests, benchmarks)." },
	COMMON_METHODS,
	{ NULL, NULL, 0, NULL },
};

static PyType_Slot map_slots[] = {
	{ Py_tp_doc, "A frozen mapping (isola.freeze of a dict): read-only, shared by every "
		     "interpreter without copying; a collections.abc.Mapping." },
	{ Py_tp_dealloc, fz_dealloc },
	{ Py_tp_repr, fz_repr },
	{ Py_tp_hash, map_hash },
	{ Py_tp_richcompare, map_richcompare },
	{ Py_tp_iter, map_iter },
	{ Py_tp_methods, map_methods },
	{ Py_tp_getset, fz_getset },
	{ Py_mp_length, fz_len },
	{ Py_mp_subscript, map_subscript },
	{ Py_sq_contains, map_contains },
	{ 0, NULL },
};

PyType_Spec isola__frozen_map_spec = {
	.name = "isola.FrozenMap",
	.basicsize = sizeof(isola__frozen_obj),
	.flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE |
		 Py_TPFLAGS_DISALLOW_INSTANTIATION | Py_TPFLAGS_MAPPING,
	.slots = map_slots,
};

/* ---- sequences --------------------------------------------------------- */

static PyObject *seq_item(PyObject *self, Py_ssize_t i)
{
	isola__frozen_obj *f = (isola__frozen_obj *)self;
	if (i < 0 || i >= f->len) {
		PyErr_SetString(PyExc_IndexError, "FrozenSeq index out of range");
		return NULL;
	}
	return seq_get(f, f->start + i * f->step, 0);
}

static PyObject *seq_subscript(PyObject *self, PyObject *key)
{
	isola__frozen_obj *f = (isola__frozen_obj *)self;
	if (PyIndex_Check(key)) {
		Py_ssize_t i = PyNumber_AsSsize_t(key, PyExc_IndexError);
		if (i == -1 && PyErr_Occurred())
			return NULL;
		return seq_item(self, i < 0 ? i + f->len : i);
	}
	if (!PySlice_Check(key))
		return PyErr_Format(PyExc_TypeError,
				    "FrozenSeq indices must be integers or slices, not %s",
				    Py_TYPE(key)->tp_name);
	Py_ssize_t start, stop, step;
	if (PySlice_Unpack(key, &start, &stop, &step) < 0)
		return NULL;
	Py_ssize_t n = PySlice_AdjustIndices(f->len, &start, &stop, step);
	isola__frozen_obj *s = PyObject_New(isola__frozen_obj, Py_TYPE(self));
	if (s == NULL)
		return NULL;
	/* the same container, another window on it */
	s->owner = Py_NewRef(f->owner);
	s->p = f->p;
	s->size = f->size;
	s->n = f->n;
	s->cap = f->cap;
	s->start = f->start + start * f->step;
	s->step = f->step * step;
	s->len = n;
	s->hash = -1;
	return (PyObject *)s;
}

static PyObject *seq_iter(PyObject *self)
{
	return iter_new(self, IT_SEQ);
}

/* Scan for items equal to x: the first index (or -1), or with count set
 * how many; -2 on error. */
static Py_ssize_t seq_scan(PyObject *self, PyObject *x, int count)
{
	isola__frozen_obj *f = (isola__frozen_obj *)self;
	Py_ssize_t found = 0;
	for (Py_ssize_t i = 0; i < f->len; i++) {
		PyObject *item = seq_get(f, f->start + i * f->step, 0);
		int eq = item ? isola__frozen_same(item, x) : -1;
		Py_XDECREF(item);
		if (eq < 0)
			return -2;
		if (eq && !count)
			return i;
		found += eq;
	}
	return count ? found : -1;
}

static int seq_contains(PyObject *self, PyObject *x)
{
	Py_ssize_t i = seq_scan(self, x, 0);
	return i == -2 ? -1 : i >= 0;
}

static PyObject *seq_index(PyObject *self, PyObject *x)
{
	Py_ssize_t i = seq_scan(self, x, 0);
	if (i == -1)
		PyErr_SetString(PyExc_ValueError, "FrozenSeq.index(x): x not in sequence");
	return i < 0 ? NULL : PyLong_FromSsize_t(i);
}

static PyObject *seq_count(PyObject *self, PyObject *x)
{
	Py_ssize_t c = seq_scan(self, x, 1);
	return c < 0 ? NULL : PyLong_FromSsize_t(c);
}

/* Equal to a list (or FrozenSeq) of equal items, as a list would be. */
static PyObject *seq_richcompare(PyObject *self, PyObject *other, int op)
{
	isola__frozen_obj *f = (isola__frozen_obj *)self;
	if ((op != Py_EQ && op != Py_NE) || !(PyList_Check(other) || Py_TYPE(other) == Py_TYPE(self)))
		Py_RETURN_NOTIMPLEMENTED;
	int eq = PyObject_Size(other) == f->len;
	for (Py_ssize_t i = 0; eq == 1 && i < f->len; i++) {
		PyObject *a = seq_get(f, f->start + i * f->step, 0);
		PyObject *b = a ? PySequence_GetItem(other, i) : NULL;
		eq = b ? isola__frozen_same(a, b) : -1;
		Py_XDECREF(a);
		Py_XDECREF(b);
	}
	return eq_answer(eq, op);
}

/* As tuple(self), a NaN hashed by its bits. */
static Py_hash_t seq_hash(PyObject *self)
{
	isola__frozen_obj *f = (isola__frozen_obj *)self;
	if (f->hash != -1)
		return f->hash;
	PyObject *items = PySequence_Tuple(self);
	PyObject *t = items ? isola__frozen_hashable(items) : NULL;
	Py_XDECREF(items);
	return hash_as(f, t);
}

static PyMethodDef seq_methods[] = {
	{ "index", seq_index, METH_O, "index(x)\n--\n\nThe first index of x." },
	{ "count", seq_count, METH_O, "count(x)\n--\n\nHow many items equal x." },
	COMMON_METHODS,
	{ NULL, NULL, 0, NULL },
};

static PyType_Slot seq_slots[] = {
	{ Py_tp_doc, "A frozen sequence (isola.freeze of a list): read-only, shared by every "
		     "interpreter without copying; a collections.abc.Sequence." },
	{ Py_tp_dealloc, fz_dealloc },
	{ Py_tp_repr, fz_repr },
	{ Py_tp_hash, seq_hash },
	{ Py_tp_richcompare, seq_richcompare },
	{ Py_tp_iter, seq_iter },
	{ Py_tp_methods, seq_methods },
	{ Py_tp_getset, fz_getset },
	{ Py_sq_length, fz_len },
	{ Py_sq_item, seq_item },
	{ Py_sq_contains, seq_contains },
	{ Py_mp_length, fz_len },
	{ Py_mp_subscript, seq_subscript },
	{ 0, NULL },
};

PyType_Spec isola__frozen_seq_spec = {
	.name = "isola.FrozenSeq",
	.basicsize = sizeof(isola__frozen_obj),
	.flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE |
		 Py_TPFLAGS_DISALLOW_INSTANTIATION | Py_TPFLAGS_SEQUENCE,
	.slots = seq_slots,
};

/* ---- the types ---------------------------------------------------------- */

int isola__frozen_types_add(PyObject *m, isola__state *st)
{
	st->frozen_map_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &isola__frozen_map_spec, NULL);
	st->frozen_seq_type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &isola__frozen_seq_spec, NULL);
	st->frozen_iter_type =
		(PyTypeObject *)PyType_FromModuleAndSpec(m, &isola__frozen_iter_spec, NULL);
	if (st->frozen_map_type == NULL || st->frozen_seq_type == NULL ||
	    st->frozen_iter_type == NULL || PyModule_AddType(m, st->frozen_map_type) < 0 ||
	    PyModule_AddType(m, st->frozen_seq_type) < 0)
		return -1;
	/* isinstance(v, Mapping / Sequence) in every interpreter, and the
	 * views keys()/values()/items() return. */
	static const char src[] =
		"from _collections_abc import Mapping, Sequence, KeysView, ValuesView, ItemsView\n"
		"Mapping.register(FrozenMap)\n"
		"Sequence.register(FrozenSeq)\n"
		"class FrozenValuesView(ValuesView):\n"
		"    __slots__ = ()\n"
		"    def __iter__(self):\n"
		"        return self._mapping._iter_values()\n"
		"class FrozenItemsView(ItemsView):\n"
		"    __slots__ = ()\n"
		"    def __iter__(self):\n"
		"        return self._mapping._iter_items()\n"
		"views = (KeysView, FrozenValuesView, FrozenItemsView)\n";
	PyObject *ns = Py_BuildValue("{sOsO}", "FrozenMap", st->frozen_map_type, "FrozenSeq",
				     st->frozen_seq_type);
	PyObject *builtins = ns ? PyEval_GetBuiltins() : NULL; /* borrowed */
	int ok = builtins != NULL && PyDict_SetItemString(ns, "__builtins__", builtins) == 0;
	PyObject *r = ok ? PyRun_String(src, Py_file_input, ns, ns) : NULL;
	PyObject *views = r ? PyDict_GetItemString(ns, "views") : NULL; /* borrowed */
	ok = views != NULL;
	for (int i = 0; ok && i < 3; i++)
		st->frozen_views[i] = Py_NewRef(PyTuple_GET_ITEM(views, i));
	Py_XDECREF(r);
	Py_XDECREF(ns);
	return ok ? 0 : -1;
}
