/*
 * fuzz_encode.c - libFuzzer target for the encoder: the input bytes drive
 * a small generator of Python values (nested lists, dicts, tuples, sets,
 * str with surrogates, ints of any size, floats with NaN/-0.0, bytes,
 * None/bools, datetimes, exceptions carrying any of these).  Properties
 * checked on every value:
 *   - encoding never crashes and fails only with ValueError/TypeError
 *     (too deep, too big, a self-reference it cannot have here);
 *   - every message it emits decodes (never a malformed message), and
 *     the decoded value encodes to the same bytes (a stable round trip).
 * Build and run: scripts/fuzz.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "interp/codec.h"
#include "pymod/module.h"

static isola__state *st;
static isola__codec_opts opts;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	Py_InitializeEx(0);
	if (isola__module_install() < 0 || (st = isola__state_current()) == NULL ||
	    isola__ensure_datetime(st) < 0) {
		PyErr_Print();
		abort();
	}
	opts = isola__codec_defaults;
	opts.allow_pickle = 0;
	return 0;
}

/* The generator's input: bytes taken from the front, zeros once spent. */
struct gen {
	const uint8_t *p, *end;
	int unstable; /* made a set or an exception: see the round-trip check */
};

static unsigned take(struct gen *g)
{
	return g->p < g->end ? *g->p++ : 0;
}

static uint64_t take64(struct gen *g)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | take(g);
	return v;
}

static PyObject *value(struct gen *g, int depth);

/* A container of up to 7 values. */
static PyObject *items(struct gen *g, int depth)
{
	unsigned n = take(g) % 8;
	PyObject *l = PyList_New(0);
	for (unsigned i = 0; l != NULL && i < n; i++) {
		PyObject *v = value(g, depth + 1);
		if (v == NULL || PyList_Append(l, v) < 0)
			Py_CLEAR(l);
		Py_XDECREF(v);
	}
	return l;
}

static PyObject *value(struct gen *g, int depth)
{
	unsigned k = take(g) % (depth > 40 ? 8 : 16);
	switch (k) {
	case 0:
		return Py_NewRef(Py_None);
	case 1:
		return Py_NewRef(take(g) & 1 ? Py_True : Py_False);
	case 2:
		return PyLong_FromLongLong((long long)take64(g));
	case 3: { /* a big int: up to 40 bytes, either sign */
		unsigned char b[40];
		unsigned n = 1 + take(g) % 40;
		for (unsigned i = 0; i < n; i++)
			b[i] = (unsigned char)take(g);
		return _PyLong_FromByteArray(b, n, 1, 1);
	}
	case 4: {
		uint64_t bits = take64(g);
		double d;
		memcpy(&d, &bits, sizeof(d)); /* NaNs, infinities, -0.0 too */
		return PyFloat_FromDouble(d);
	}
	case 5: { /* str: code points from the input, surrogates included */
		unsigned n = take(g) % 12;
		Py_UCS4 cps[12];
		for (unsigned i = 0; i < n; i++)
			cps[i] = (Py_UCS4)((take(g) << 12 | take(g) << 4 | (take(g) & 15)) % 0x110000);
		return PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, cps, n);
	}
	case 6: {
		unsigned n = take(g) % 16;
		char b[16];
		for (unsigned i = 0; i < n; i++)
			b[i] = (char)take(g);
		return PyBytes_FromStringAndSize(b, n);
	}
	case 7: { /* a datetime, aware or naive */
		PyObject *mod = PyImport_ImportModule("datetime");
		PyObject *r = mod ? PyObject_CallMethod(mod, "datetime", "iiiiiii",
							1 + take(g) * 37 % 9999, 1 + take(g) % 12,
							1 + take(g) % 28, take(g) % 24, take(g) % 60,
							take(g) % 60, (int)(take64(g) % 1000000))
				  : NULL;
		if (r != NULL && take(g) & 1) {
			PyObject *utc = PyObject_GetAttrString(mod, "timezone");
			PyObject *tz = utc ? PyObject_GetAttrString(utc, "utc") : NULL;
			PyObject *kw = tz ? Py_BuildValue("{s:O}", "tzinfo", tz) : NULL;
			PyObject *rep = kw ? PyObject_GetAttrString(r, "replace") : NULL;
			PyObject *aware = rep ? PyObject_Call(rep, PyTuple_New(0), kw) : NULL;
			Py_XDECREF(utc);
			Py_XDECREF(tz);
			Py_XDECREF(kw);
			Py_XDECREF(rep);
			Py_SETREF(r, aware);
		}
		Py_XDECREF(mod);
		return r;
	}
	case 8:
	case 9:
		return items(g, depth);
	case 10: {
		PyObject *l = items(g, depth);
		PyObject *t = l ? PyList_AsTuple(l) : NULL;
		Py_XDECREF(l);
		return t;
	}
	case 11: { /* dict: keys from hashable values (else skipped) */
		PyObject *l = items(g, depth), *d = l ? PyDict_New() : NULL;
		for (Py_ssize_t i = 0; d != NULL && i + 1 < PyList_GET_SIZE(l); i += 2)
			if (PyDict_SetItem(d, PyList_GET_ITEM(l, i), PyList_GET_ITEM(l, i + 1)) < 0)
				PyErr_Clear(); /* unhashable key */
		Py_XDECREF(l);
		return d;
	}
	case 12: { /* set / frozenset of the hashable ones */
		PyObject *l = items(g, depth), *s = l ? PySet_New(NULL) : NULL;
		for (Py_ssize_t i = 0; s != NULL && i < PyList_GET_SIZE(l); i++)
			if (PySet_Add(s, PyList_GET_ITEM(l, i)) < 0)
				PyErr_Clear();
		Py_XDECREF(l);
		if (s != NULL && take(g) & 1)
			Py_SETREF(s, PyFrozenSet_New(s));
		g->unstable = 1;
		return s;
	}
	case 13: { /* an exception with such arguments */
		static const char *const names[] = { "ValueError", "KeyError", "OSError",
						     "RuntimeError" };
		PyObject *l = items(g, depth);
		PyObject *t = l ? PyList_AsTuple(l) : NULL;
		PyObject *cls = PyDict_GetItemString(PyEval_GetBuiltins(), names[take(g) % 4]);
		PyObject *e = t && cls ? PyObject_Call(cls, t, NULL) : NULL;
		Py_XDECREF(l);
		Py_XDECREF(t);
		g->unstable = 1;
		return e;
	}
	default: { /* nested deeper, in a list of one */
		PyObject *v = value(g, depth + 1);
		PyObject *l = v ? PyList_New(1) : NULL;
		if (l != NULL)
			PyList_SET_ITEM(l, 0, v);
		else
			Py_XDECREF(v);
		return l;
	}
	}
}

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_encode: %s\n", what);
	if (PyErr_Occurred())
		PyErr_Print();
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gen g = { data, data + size, 0 };
	PyObject *v = value(&g, 0);
	if (v == NULL) {
		PyErr_Clear(); /* the generator's own limits (e.g. a bad date) */
		return 0;
	}
	PyObject *b = isola__encode_bytes(st, v, &opts);
	if (b == NULL) {
		if (!PyErr_ExceptionMatches(PyExc_ValueError) &&
		    !PyErr_ExceptionMatches(PyExc_TypeError))
			fail("encoding failed with an unexpected exception");
		PyErr_Clear();
		Py_DECREF(v);
		return 0;
	}
	PyObject *v2 = isola__decode_bytes(st, PyBytes_AS_STRING(b), (size_t)PyBytes_GET_SIZE(b),
					   &opts);
	if (v2 == NULL)
		fail("the encoder emitted a message that does not decode");
	PyObject *b2 = isola__encode_bytes(st, v2, &opts);
	if (b2 == NULL)
		fail("a decoded value does not encode again");
	/* A decoded exception carries the remote traceback as a note, and a
	 * rebuilt set may iterate in another order; everything else must
	 * encode to the same bytes. */
	if (!g.unstable && PyObject_RichCompareBool(b, b2, Py_EQ) != 1)
		fail("the round trip is not stable");
	Py_DECREF(b2);
	Py_DECREF(v2);
	Py_DECREF(b);
	Py_DECREF(v);
	return 0;
}
