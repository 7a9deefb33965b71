/*
 * codec_decode.c - msgpack to Python objects (docs/wire.md).
 *
 * The first code untrusted bytes reach, so it is a bounds-checked reader
 * of its own rather than msgpack-c's unpacker: every read is checked
 * against the end, every length is checked against what is left before
 * anything is allocated, and every failure is a ValueError naming the
 * byte offset and the problem.  It never crashes and never leaks: each
 * object is owned by the container being built as soon as it exists.
 */
#include "interp/codec.h"
#include "channels/channel.h"

#include "interp/frozen.h"
#include "interp/wire.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef struct dec {
	isola__state *st;
	const isola__codec_opts *o;
	const isola_msg *msg; /* NULL: no references available */
	const unsigned char *start, *p, *end;
	int depth;
	PyObject *frozen_owner; /* decoding an image: the Buffer holding it */
	int thaw;               /* its containers as plain dicts/lists */
} dec;

static PyObject *dec_obj(dec *d);

/* ValueError("malformed message at offset N: ..."); returns NULL. */
static PyObject *derr(dec *d, const unsigned char *at, const char *fmt, ...)
{
	char what[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	PyObject *cause = PyErr_GetRaisedException();
	PyErr_Format(PyExc_ValueError, "malformed message at offset %zd: %s",
		     (Py_ssize_t)(at - d->start), what);
	if (cause != NULL) {
		PyObject *exc = PyErr_GetRaisedException();
		PyException_SetCause(exc, cause);
		PyErr_SetRaisedException(exc);
	}
	return NULL;
}

/* ValueError("message at offset N: a pickled object failed to load
 * (Type: text)"), the unpickler's exception as its cause and in its text:
 * the cause does not travel with an error sent to another interpreter
 * (issue #31.3: "module '__main__' has no attribute 'Pt'" was hidden).
 * Not "malformed": the bytes were fine, loading them was not. */
static PyObject *pickle_err(dec *d, const unsigned char *at)
{
	PyObject *cause = PyErr_GetRaisedException();
	PyObject *text = cause ? PyUnicode_FromFormat("%s: %S", Py_TYPE(cause)->tp_name, cause)
			       : NULL;
	if (text == NULL)
		PyErr_Clear();
	PyErr_Format(PyExc_ValueError, "message at offset %zd: a pickled object failed to load (%U)",
		     (Py_ssize_t)(at - d->start), text ? text : Py_None);
	Py_XDECREF(text);
	if (cause != NULL) {
		PyObject *exc = PyErr_GetRaisedException();
		PyException_SetCause(exc, cause);
		PyErr_SetRaisedException(exc);
	}
	return NULL;
}

static size_t left(const dec *d)
{
	return (size_t)(d->end - d->p);
}

static int need(dec *d, size_t n)
{
	if (left(d) >= n)
		return 0;
	derr(d, d->p, "truncated: %zu more byte(s) needed, %zu left", n, left(d));
	return -1;
}

static inline uint64_t be(const unsigned char *p, int n)
{
	switch (n) {
	case 1:
		return p[0];
	case 2: {
		uint16_t v;
		memcpy(&v, p, 2);
		return __builtin_bswap16(v);
	}
	case 4: {
		uint32_t v;
		memcpy(&v, p, 4);
		return __builtin_bswap32(v);
	}
	case 8: {
		uint64_t v;
		memcpy(&v, p, 8);
		return __builtin_bswap64(v);
	}
	}
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

/* Read an n-byte big-endian length/count. */
static int read_len(dec *d, int n, uint64_t *out)
{
	if (need(d, (size_t)n) < 0)
		return -1;
	*out = be(d->p, n);
	d->p += n;
	return 0;
}

static PyObject *dec_str(dec *d, const unsigned char *at, uint64_t n)
{
	if (n > left(d))
		return derr(d, at, "str of %llu bytes, but only %zu left",
			    (unsigned long long)n, left(d));
	PyObject *s = PyUnicode_DecodeUTF8((const char *)d->p, (Py_ssize_t)n, "strict");
	if (s == NULL)
		return derr(d, at, "str is not valid UTF-8");
	d->p += n;
	return s;
}

static PyObject *dec_bin(dec *d, const unsigned char *at, uint64_t n)
{
	if (n > left(d))
		return derr(d, at, "bin of %llu bytes, but only %zu left",
			    (unsigned long long)n, left(d));
	PyObject *b = PyBytes_FromStringAndSize((const char *)d->p, (Py_ssize_t)n);
	d->p += n;
	return b;
}

static int enter(dec *d, const unsigned char *at)
{
	if (++d->depth > d->o->max_depth) {
		derr(d, at, "nested deeper than the limit of %d", d->o->max_depth);
		return -1;
	}
	return 0;
}

static PyObject *dec_array(dec *d, const unsigned char *at, uint64_t n)
{
	/* every element takes at least one byte */
	if (n > left(d))
		return derr(d, at, "array claims %llu elements, but only %zu bytes are left",
			    (unsigned long long)n, left(d));
	if (enter(d, at) < 0)
		return NULL;
	PyObject *list = PyList_New((Py_ssize_t)n);
	if (list == NULL)
		return NULL;
	for (uint64_t i = 0; i < n; i++) {
		PyObject *item = dec_obj(d);
		if (item == NULL) {
			Py_DECREF(list);
			return NULL;
		}
		PyList_SET_ITEM(list, (Py_ssize_t)i, item);
	}
	d->depth--;
	return list;
}

static PyObject *dec_map(dec *d, const unsigned char *at, uint64_t n)
{
	if (n > left(d) / 2)
		return derr(d, at, "map claims %llu entries, but only %zu bytes are left",
			    (unsigned long long)n, left(d));
	if (enter(d, at) < 0)
		return NULL;
	PyObject *dict = PyDict_New();
	if (dict == NULL)
		return NULL;
	for (uint64_t i = 0; i < n; i++) {
		const unsigned char *kat = d->p;
		PyObject *k = dec_obj(d);
		if (k == NULL)
			goto fail;
		PyObject *v = dec_obj(d);
		if (v == NULL) {
			Py_DECREF(k);
			goto fail;
		}
		int r = PyDict_SetItem(dict, k, v);
		Py_DECREF(v);
		if (r < 0) {
			derr(d, kat, "map key of type %s is not hashable", Py_TYPE(k)->tp_name);
			Py_DECREF(k);
			goto fail;
		}
		Py_DECREF(k);
	}
	d->depth--;
	return dict;
fail:
	Py_DECREF(dict);
	return NULL;
}

/* Decode the single msgpack array filling an ext payload exactly. */
static PyObject *payload_array(dec *d, const unsigned char *at,
			       const unsigned char *pend, Py_ssize_t want)
{
	dec sub = *d;
	sub.end = pend;
	const unsigned char *aat = sub.p;
	PyObject *o = dec_obj(&sub);
	if (o == NULL)
		return NULL;
	if (!PyList_Check(o)) {
		Py_DECREF(o);
		return derr(d, aat, "ext payload should be an array");
	}
	if (sub.p != pend) {
		Py_DECREF(o);
		return derr(d, sub.p, "ext payload has %zd trailing byte(s)",
			    (Py_ssize_t)(pend - sub.p));
	}
	if (want >= 0 && PyList_GET_SIZE(o) != want) {
		Py_DECREF(o);
		return derr(d, at, "ext payload should have %zd items", want);
	}
	d->p = pend;
	return o;
}

/* Call callable(*args, **kw); a failure becomes a decode error. */
static PyObject *construct(dec *d, const unsigned char *at, PyObject *callable,
			   PyObject *args, PyObject *kw, const char *what)
{
	PyObject *r = args ? PyObject_Call(callable, args, kw) : NULL;
	if (r == NULL)
		return derr(d, at, "invalid %s", what);
	return r;
}

/* Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant). */
static void civil_from_days(long long z, long long *y, unsigned *m, unsigned *dd)
{
	z += 719468;
	long long era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	long long yy = (long long)yoe + era * 400;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	*dd = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = yy + (*m <= 2);
}

static PyObject *dec_timestamp(dec *d, const unsigned char *at, const unsigned char *p,
			       uint64_t n)
{
	int64_t secs;
	uint32_t ns;
	if (n == 4) {
		secs = (int64_t)be(p, 4);
		ns = 0;
	} else if (n == 8) {
		uint64_t v = be(p, 8);
		ns = (uint32_t)(v >> 34);
		secs = (int64_t)(v & 0x3ffffffffULL);
	} else if (n == 12) {
		ns = (uint32_t)be(p, 4);
		secs = (int64_t)be(p + 4, 8);
	} else {
		return derr(d, at, "timestamp ext of %llu bytes (4, 8 or 12 expected)",
			    (unsigned long long)n);
	}
	if (ns > 999999999)
		return derr(d, at, "timestamp nanoseconds out of range");
	/* datetime's years 1..9999 (and no signed overflow below) */
	if (secs < -62135596800LL || secs > 253402300799LL)
		return derr(d, at, "timestamp of %lld seconds is outside datetime's range",
			    (long long)secs);
	if (isola__ensure_datetime(d->st) < 0)
		return NULL;
	long long days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
	long long rem = secs - days * 86400;
	long long y;
	unsigned mo, dd;
	civil_from_days(days, &y, &mo, &dd);
	PyObject *args = Py_BuildValue("(LIIIIII)", y, mo, dd, (unsigned)(rem / 3600),
				       (unsigned)(rem / 60 % 60), (unsigned)(rem % 60),
				       (unsigned)(ns / 1000));
	PyObject *kw = Py_BuildValue("{s:O}", "tzinfo", d->st->dt_utc);
	PyObject *r = construct(d, at, d->st->dt_datetime, args, kw, "timestamp");
	Py_XDECREF(args);
	Py_XDECREF(kw);
	return r;
}

/* An offset in microseconds (or None) to a tzinfo (or None). */
static PyObject *make_tz(isola__state *st, PyObject *off)
{
	if (off == Py_None)
		return Py_NewRef(Py_None);
	PyObject *td_args = PyTuple_New(0);
	PyObject *td_kw = Py_BuildValue("{s:O}", "microseconds", off);
	PyObject *td = td_args && td_kw ? PyObject_Call(st->dt_timedelta, td_args, td_kw) : NULL;
	Py_XDECREF(td_args);
	Py_XDECREF(td_kw);
	if (td == NULL)
		return NULL;
	PyObject *tz = PyObject_CallOneArg(st->dt_timezone, td);
	Py_DECREF(td);
	return tz;
}

/* zoneinfo.ZoneInfo(key): the zone of that IANA key (cached by
 * zoneinfo, so equal to the sender's), or NULL with an exception. */
static PyObject *make_zone(PyObject *key)
{
	PyObject *mod = PyImport_ImportModule("zoneinfo");
	PyObject *zi = mod ? PyObject_CallMethod(mod, "ZoneInfo", "O", key) : NULL;
	Py_XDECREF(mod);
	return zi;
}

static int all_ints(PyObject *list, Py_ssize_t from, Py_ssize_t to)
{
	for (Py_ssize_t i = from; i < to; i++)
		if (!PyLong_CheckExact(PyList_GET_ITEM(list, i)))
			return 0;
	return 1;
}

static PyObject *dec_datetime_kind(dec *d, const unsigned char *at, int8_t type,
				   const unsigned char *pend)
{
	if (isola__ensure_datetime(d->st) < 0)
		return NULL;
	isola__state *st = d->st;
	Py_ssize_t want = type == ISOLA_EXT_DATETIME ? 9 : type == ISOLA_EXT_TIME ? 6 : 3;
	/* a datetime may have a 10th item: a zoneinfo key */
	PyObject *l = payload_array(d, at, pend, type == ISOLA_EXT_DATETIME ? -1 : want);
	if (l == NULL)
		return NULL;
	PyObject *r = NULL, *zone_key = NULL;
	if (type == ISOLA_EXT_DATETIME) {
		Py_ssize_t got = PyList_GET_SIZE(l);
		if (got == 10)
			zone_key = PyList_GET_ITEM(l, 9); /* borrowed */
		if ((got != 9 && got != 10) || (zone_key && !PyUnicode_CheckExact(zone_key))) {
			derr(d, at, "ext payload should have 9 items, or 10 with a zone key");
			goto done;
		}
	}
	Py_ssize_t nint = type == ISOLA_EXT_DATETIME ? 7 : type == ISOLA_EXT_TIME ? 4 : 3;
	if (!all_ints(l, 0, nint) || (want > 3 && !all_ints(l, want - 1, want)) ||
	    (want > 3 && PyList_GET_ITEM(l, want - 2) != Py_None &&
	     !PyLong_CheckExact(PyList_GET_ITEM(l, want - 2)))) {
		derr(d, at, "date/time fields must be integers");
		goto done;
	}
	if (type == ISOLA_EXT_DATE || type == ISOLA_EXT_TIMEDELTA) {
		PyObject *args = PyList_AsTuple(l);
		r = construct(d, at, type == ISOLA_EXT_DATE ? st->dt_date : st->dt_timedelta,
			      args, NULL, type == ISOLA_EXT_DATE ? "date" : "timedelta");
		Py_XDECREF(args);
		goto done;
	}
	PyObject *tz = zone_key ? make_zone(zone_key) : make_tz(st, PyList_GET_ITEM(l, want - 2));
	if (tz == NULL) {
		if (zone_key != NULL)
			derr(d, at, "unknown time zone key (zoneinfo.ZoneInfo(key) failed)");
		else
			derr(d, at, "invalid UTC offset");
		goto done;
	}
	PyObject *args = PyList_GetSlice(l, 0, nint);
	PyObject *targs = args ? PyList_AsTuple(args) : NULL;
	PyObject *kw = Py_BuildValue("{s:O,s:O}", "tzinfo", tz, "fold",
				     PyList_GET_ITEM(l, want - 1));
	r = construct(d, at, type == ISOLA_EXT_DATETIME ? st->dt_datetime : st->dt_time,
		      targs, kw, type == ISOLA_EXT_DATETIME ? "datetime" : "time");
	Py_XDECREF(args);
	Py_XDECREF(targs);
	Py_XDECREF(kw);
	Py_DECREF(tz);
done:
	Py_DECREF(l);
	return r;
}

/* Attach the remote traceback as a note, and as .remote_traceback. */
static void add_remote_traceback(PyObject *exc, PyObject *tb)
{
	if (tb == NULL || !PyUnicode_Check(tb))
		return;
	PyObject_SetAttrString(exc, "remote_traceback", tb);
	PyObject *note = PyUnicode_FromFormat("Remote traceback (from another interpreter):\n%U", tb);
	if (note != NULL) {
		PyObject *r = PyObject_CallMethod(exc, "add_note", "O", note);
		Py_XDECREF(r);
		Py_DECREF(note);
	}
	PyErr_Clear();
}

/* The exception class module:qualname names, or NULL (no error set).
 * A module not imported yet is imported only when the pickle fallback
 * is allowed (a trusted peer): otherwise a message could make this
 * interpreter import any module on its path. */
static PyObject *exception_class(dec *d, PyObject *mod, PyObject *qual)
{
	PyObject *obj = NULL;
	if (PyUnicode_CompareWithASCIIString(mod, "builtins") == 0) {
		obj = PyDict_GetItemWithError(PyEval_GetBuiltins(), qual);
		Py_XINCREF(obj);
	} else {
		PyObject *mods = PyImport_GetModuleDict(); /* borrowed */
		obj = PyDict_GetItemWithError(mods, mod);
		Py_XINCREF(obj);
		if (obj == NULL && !PyErr_Occurred() && d->o->allow_pickle)
			obj = PyImport_Import(mod);
		/* qualname: attribute by attribute ("Outer.Inner") */
		PyObject *dot = obj ? PyUnicode_FromString(".") : NULL;
		PyObject *parts = dot ? PyUnicode_Split(qual, dot, -1) : NULL;
		Py_XDECREF(dot);
		for (Py_ssize_t i = 0; obj != NULL && parts != NULL && i < PyList_GET_SIZE(parts); i++)
			Py_SETREF(obj, PyObject_GetAttr(obj, PyList_GET_ITEM(parts, i)));
		Py_XDECREF(parts);
	}
	PyErr_Clear();
	if (obj != NULL && !(PyType_Check(obj) && PyType_IsSubtype((PyTypeObject *)obj,
							     (PyTypeObject *)PyExc_BaseException)))
		Py_CLEAR(obj);
	return obj;
}

/* cls(*args), or, if its constructor takes other arguments (as
 * json.JSONDecodeError's does), an instance made without calling it,
 * with .args set; attrs (the sender's __dict__, notes included) are set
 * on it either way.  NULL with no error set if it cannot be made. */
static PyObject *rebuild_exception(PyObject *cls, PyObject *args, PyObject *attrs)
{
	PyObject *exc = PyObject_Call(cls, args, NULL);
	if (exc == NULL || !PyExceptionInstance_Check(exc)) {
		PyErr_Clear();
		Py_XDECREF(exc);
		PyTypeObject *t = (PyTypeObject *)cls;
		exc = t->tp_new ? t->tp_new(t, args, NULL) : NULL;
		if (exc != NULL && PyObject_SetAttrString(exc, "args", args) < 0)
			Py_CLEAR(exc);
	}
	if (exc != NULL && PyDict_Check(attrs)) {
		PyObject *k, *v;
		Py_ssize_t pos = 0;
		while (PyDict_Next(attrs, &pos, &k, &v))
			if (PyObject_SetAttr(exc, k, v) < 0)
				PyErr_Clear(); /* a read-only property: skip it */
	}
	PyErr_Clear();
	return exc;
}

/* RemoteError, or a subclass of it and of the builtin base the sender
 * named (so that `except ValueError` still catches it), cached per
 * interpreter. */
static PyObject *remote_error_class(dec *d, PyObject *base)
{
	PyObject *cls = NULL;
	if (base != NULL && PyUnicode_Check(base) &&
	    PyUnicode_CompareWithASCIIString(base, "Exception") != 0 &&
	    PyUnicode_CompareWithASCIIString(base, "BaseException") != 0) {
		if (d->st->remote_error_classes == NULL)
			d->st->remote_error_classes = PyDict_New();
		PyObject *cache = d->st->remote_error_classes;
		cls = cache ? PyDict_GetItemWithError(cache, base) : NULL;
		if (cls != NULL)
			return Py_NewRef(cls);
		PyObject *b = cache ? PyDict_GetItemWithError(PyEval_GetBuiltins(), base) : NULL;
		if (b != NULL && PyType_Check(b) &&
		    PyType_IsSubtype((PyTypeObject *)b, (PyTypeObject *)PyExc_Exception)) {
			PyObject *name = PyUnicode_FromFormat("isola.RemoteError[%U]", base);
			const char *n = name ? PyUnicode_AsUTF8(name) : NULL;
			PyObject *bases = n ? PyTuple_Pack(2, d->st->RemoteError, b) : NULL;
			cls = bases ? PyErr_NewException(n, bases, NULL) : NULL;
			if (cls != NULL && PyDict_SetItem(cache, base, cls) < 0)
				Py_CLEAR(cls);
			Py_XDECREF(bases);
			Py_XDECREF(name);
		}
		PyErr_Clear();
	}
	return cls != NULL ? cls : Py_NewRef(d->st->RemoteError);
}

/* [module, qualname, args, message, traceback(, builtin base, attrs)]:
 * the real class when this interpreter has it (builtins always; others
 * if imported, or importable with the pickle fallback allowed), else
 * RemoteError (a subclass of the builtin base when it is known). */
static PyObject *dec_exception(dec *d, const unsigned char *at, const unsigned char *pend)
{
	PyObject *l = payload_array(d, at, pend, -1);
	if (l == NULL)
		return NULL;
	Py_ssize_t n = PyList_GET_SIZE(l);
	if (n != 5 && n != 7 && n != 8) {
		Py_DECREF(l);
		return derr(d, at, "exception ext should have 5, 7 or 8 items, not %zd", n);
	}
	PyObject *mod = PyList_GET_ITEM(l, 0), *qual = PyList_GET_ITEM(l, 1);
	PyObject *args = PyList_GET_ITEM(l, 2), *msg = PyList_GET_ITEM(l, 3);
	PyObject *tb = PyList_GET_ITEM(l, 4);
	PyObject *base = n >= 7 ? PyList_GET_ITEM(l, 5) : Py_None;
	PyObject *attrs = n >= 7 ? PyList_GET_ITEM(l, 6) : Py_None;
	PyObject *exc = NULL;
	if (!PyUnicode_Check(mod) || !PyUnicode_Check(qual) || !PyList_Check(args) ||
	    !(PyUnicode_Check(msg) || msg == Py_None) ||
	    !(PyUnicode_Check(tb) || tb == Py_None) ||
	    !(PyUnicode_Check(base) || base == Py_None) ||
	    !(PyDict_Check(attrs) || attrs == Py_None)) {
		Py_DECREF(l);
		return derr(d, at, "exception ext has fields of the wrong types");
	}
	PyObject *targs = PyList_AsTuple(args);
	if (targs == NULL)
		goto done;
	PyObject *cls = exception_class(d, mod, qual);
	if (cls != NULL) {
		exc = rebuild_exception(cls, targs, attrs);
		Py_DECREF(cls);
	}
	if (exc == NULL) {
		PyObject *name = PyUnicode_CompareWithASCIIString(mod, "builtins") == 0
					 ? Py_NewRef(qual)
					 : PyUnicode_FromFormat("%U.%U", mod, qual);
		PyObject *text = name ? PyUnicode_FromFormat("%U: %S", name, msg) : NULL;
		PyObject *rcls = text ? remote_error_class(d, base) : NULL;
		exc = rcls ? PyObject_CallOneArg(rcls, text) : NULL;
		Py_XDECREF(rcls);
		if (exc != NULL) {
			PyObject_SetAttrString(exc, "type_name", name);
			PyObject_SetAttrString(exc, "remote_args", targs);
			PyObject_SetAttrString(exc, "message", msg);
		}
		Py_XDECREF(name);
		Py_XDECREF(text);
	}
	if (exc != NULL)
		add_remote_traceback(exc, tb);
	if (exc != NULL && n == 8 && PyExceptionInstance_Check(PyList_GET_ITEM(l, 7)))
		PyException_SetCause(exc, Py_NewRef(PyList_GET_ITEM(l, 7))); /* steals */
done:
	Py_XDECREF(targs);
	Py_DECREF(l);
	return exc;
}

static PyObject *dec_ref(dec *d, const unsigned char *at, const unsigned char *p,
			 uint64_t n, int kind)
{
	if (n != 1)
		return derr(d, at, "reference ext of %llu bytes (1 expected)", (unsigned long long)n);
	if (d->msg == NULL)
		return derr(d, at, "a blob/channel reference outside a message");
	size_t index = p[0];
	int k;
	void *ptr;
	if (isola_msg_ref(d->msg, index, &k, &ptr) != 0)
		return derr(d, at, "reference %zu, but the message carries %u", index,
			    (unsigned)isola__msg_nrefs(d->msg));
	if (k != kind)
		return derr(d, at, "reference %zu is not a %s", index,
			    kind == ISOLA_REF_BLOB ? "blob" : "channel");
	return kind == ISOLA_REF_BLOB ? isola__buffer_wrap(d->st, ptr)
				      : isola__channel_wrap(d->st, ptr);
}

/* A frozen value by reference: [ref index][u32 BE offset in the image]. */
static PyObject *dec_frozen_ref(dec *d, const unsigned char *at, const unsigned char *p,
				uint64_t n)
{
	if (n != 5)
		return derr(d, at, "frozen reference of %llu bytes (5 expected)", (unsigned long long)n);
	if (d->msg == NULL)
		return derr(d, at, "a frozen reference outside a message");
	int k;
	void *ptr;
	if (isola_msg_ref(d->msg, p[0], &k, &ptr) != 0 || k != ISOLA_REF_BLOB ||
	    !isola__blob_is_image(ptr))
		return derr(d, at, "frozen reference %u is not an attached image", (unsigned)p[0]);
	PyObject *r = isola__frozen_at(d->st, ptr, (size_t)be(p + 1, 4));
	return r != NULL ? r : derr(d, at, "bad frozen reference");
}

static PyObject *dec_ext(dec *d, const unsigned char *at, uint64_t n)
{
	if (need(d, 1) < 0)
		return NULL;
	int8_t type = (int8_t)*d->p++;
	if (n > left(d))
		return derr(d, at, "ext of %llu bytes, but only %zu left",
			    (unsigned long long)n, left(d));
	const unsigned char *p = d->p, *pend = d->p + n;
	PyObject *r = NULL, *l;
	switch (type) {
	case ISOLA_EXT_TIMESTAMP:
		r = dec_timestamp(d, at, p, n);
		break;
	case ISOLA_EXT_TUPLE:
	case ISOLA_EXT_SET:
	case ISOLA_EXT_FROZENSET:
		l = payload_array(d, at, pend, -1);
		if (l == NULL)
			return NULL;
		if (type == ISOLA_EXT_TUPLE)
			r = PyList_AsTuple(l);
		else
			r = type == ISOLA_EXT_SET ? PySet_New(l) : PyFrozenSet_New(l);
		Py_DECREF(l);
		if (r == NULL)
			return derr(d, at, "set member is not hashable");
		return r;
	case ISOLA_EXT_BIGINT:
		if (n == 0)
			return derr(d, at, "empty big int");
		r = isola__long_from_be_signed(p, (size_t)n);
		break;
	case ISOLA_EXT_COMPLEX: {
		if (n != 16)
			return derr(d, at, "complex ext of %llu bytes (16 expected)",
				    (unsigned long long)n);
		double parts[2];
		for (int i = 0; i < 2; i++) {
			uint64_t u = be(p + 8 * i, 8);
			memcpy(&parts[i], &u, 8);
		}
		r = PyComplex_FromDoubles(parts[0], parts[1]);
		break;
	}
	case ISOLA_EXT_BYTEARRAY:
		r = PyByteArray_FromStringAndSize((const char *)p, (Py_ssize_t)n);
		break;
	case ISOLA_EXT_DATETIME:
	case ISOLA_EXT_DATE:
	case ISOLA_EXT_TIME:
	case ISOLA_EXT_TIMEDELTA:
		return dec_datetime_kind(d, at, type, pend);
	case ISOLA_EXT_EXCEPTION:
		return dec_exception(d, at, pend);
	case ISOLA_EXT_BLOB:
		r = dec_ref(d, at, p, n, ISOLA_REF_BLOB);
		break;
	case ISOLA_EXT_CHANNEL:
		r = dec_ref(d, at, p, n, ISOLA_REF_CHANNEL);
		break;
	case ISOLA_EXT_PICKLE:
		if (!d->o->allow_pickle)
			return derr(d, at, "pickled object refused: the pickle fallback "
					   "is off for this channel/pool");
		if (isola__ensure_pickle(d->st) < 0)
			return NULL;
		{
			PyObject *b = PyBytes_FromStringAndSize((const char *)p, (Py_ssize_t)n);
			r = b ? PyObject_CallOneArg(d->st->pickle_loads, b) : NULL;
			Py_XDECREF(b);
		}
		if (r == NULL)
			return pickle_err(d, at);
		break;
	case ISOLA_EXT_FROZEN_MAP:
	case ISOLA_EXT_FROZEN_SEQ:
		if (d->frozen_owner == NULL)
			return derr(d, at, "a frozen container outside a frozen image");
		r = isola__frozen_container(d->st, d->frozen_owner, type, p, (size_t)n, d->thaw);
		break;
	case ISOLA_EXT_FROZEN_REF:
		r = dec_frozen_ref(d, at, p, n);
		break;
	case ISOLA_EXT_STR_SURROGATES:
		r = PyUnicode_DecodeUTF8((const char *)p, (Py_ssize_t)n, "surrogatepass");
		if (r == NULL)
			return derr(d, at, "str ext is not valid (surrogatepass) UTF-8");
		break;
	default:
		return derr(d, at, "unknown ext type %d", type);
	}
	if (r != NULL)
		d->p = pend;
	return r;
}

static PyObject *dec_obj(dec *d)
{
	if (need(d, 1) < 0)
		return NULL;
	const unsigned char *at = d->p;
	unsigned char b = *d->p++;
	uint64_t n;
	if (b <= 0x7f)
		return PyLong_FromLong(b);
	if (b >= 0xe0)
		return PyLong_FromLong((int8_t)b);
	if ((b & 0xe0) == 0xa0)
		return dec_str(d, at, b & 0x1f);
	if ((b & 0xf0) == 0x90)
		return dec_array(d, at, b & 0x0f);
	if ((b & 0xf0) == 0x80)
		return dec_map(d, at, b & 0x0f);
	switch (b) {
	case 0xc0:
		Py_RETURN_NONE;
	case 0xc2:
		Py_RETURN_FALSE;
	case 0xc3:
		Py_RETURN_TRUE;
	case 0xc4: case 0xc5: case 0xc6:
		if (read_len(d, 1 << (b - 0xc4), &n) < 0)
			return NULL;
		return dec_bin(d, at, n);
	case 0xc7: case 0xc8: case 0xc9:
		if (read_len(d, 1 << (b - 0xc7), &n) < 0)
			return NULL;
		return dec_ext(d, at, n);
	case 0xca: {
		if (need(d, 4) < 0)
			return NULL;
		uint32_t u = (uint32_t)be(d->p, 4);
		float f;
		memcpy(&f, &u, 4);
		d->p += 4;
		return PyFloat_FromDouble(f);
	}
	case 0xcb: {
		if (need(d, 8) < 0)
			return NULL;
		uint64_t u = be(d->p, 8);
		double f;
		memcpy(&f, &u, 8);
		d->p += 8;
		return PyFloat_FromDouble(f);
	}
	case 0xcc: case 0xcd: case 0xce: case 0xcf:
		if (read_len(d, 1 << (b - 0xcc), &n) < 0)
			return NULL;
		return PyLong_FromUnsignedLongLong(n);
	case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
		int w = 1 << (b - 0xd0);
		if (read_len(d, w, &n) < 0)
			return NULL;
		int64_t v = w == 8 ? (int64_t)n : (int64_t)(n << (64 - 8 * w)) >> (64 - 8 * w);
		return PyLong_FromLongLong(v);
	}
	case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
		return dec_ext(d, at, (uint64_t)1 << (b - 0xd4));
	case 0xd9: case 0xda: case 0xdb:
		if (read_len(d, 1 << (b - 0xd9), &n) < 0)
			return NULL;
		return dec_str(d, at, n);
	case 0xdc: case 0xdd:
		if (read_len(d, b == 0xdc ? 2 : 4, &n) < 0)
			return NULL;
		return dec_array(d, at, n);
	case 0xde: case 0xdf:
		if (read_len(d, b == 0xde ? 2 : 4, &n) < 0)
			return NULL;
		return dec_map(d, at, n);
	default: /* 0xc1 is never used */
		return derr(d, at, "invalid type byte 0x%02x", b);
	}
}

static PyObject *decode(isola__state *st, const void *data, size_t len,
			const isola_msg *msg, const isola__codec_opts *o)
{
	if (st->owner != NULL)
		isola__owner_drain(st->owner);
	dec d = { .st = st, .o = o, .msg = msg, .start = data, .p = data,
		  .end = (const unsigned char *)data + len };
	if (len > o->max_size) {
		d.p = d.end;
		return derr(&d, d.start, "message of %zu bytes passes the limit of %zu",
			    len, o->max_size);
	}
	PyObject *r = dec_obj(&d);
	if (r != NULL && d.p != d.end) {
		Py_DECREF(r);
		return derr(&d, d.p, "%zd trailing byte(s) after the value",
			    (Py_ssize_t)(d.end - d.p));
	}
	return r;
}

PyObject *isola__decode(isola__state *st, const isola_msg *msg, const isola__codec_opts *o)
{
	const void *data;
	size_t len;
	isola_msg_bytes(msg, &data, &len);
	return decode(st, data, len, msg, o);
}

PyObject *isola__decode_bytes(isola__state *st, const void *data, size_t len,
			      const isola__codec_opts *o)
{
	return decode(st, data, len, NULL, o);
}

PyObject *isola__frozen_decode(isola__state *st, PyObject *owner, const unsigned char *p,
			       const unsigned char *end, int thaw, const unsigned char **next)
{
	/* Images never hold a pickle (freeze refuses what would need one): a
	 * reference pointing into bytes that look like one is refused too. */
	static const isola__codec_opts image = {
		.allow_pickle = 0,
		.allow_refs = 0,
		.blob_threshold = SIZE_MAX,
		.max_size = SIZE_MAX,
		.max_depth = ISOLA__MAX_DEPTH_DEFAULT,
	};
	dec d = { .st = st, .o = &image, .msg = NULL, .start = p, .p = p,
		  .end = end, .frozen_owner = owner, .thaw = thaw };
	PyObject *r = dec_obj(&d);
	if (next != NULL)
		*next = d.p;
	return r;
}
