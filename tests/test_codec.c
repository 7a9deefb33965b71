/* test_codec.c - the codec from C: isola_encode / isola_decode against
 * msgpack-c's own packer and unpacker, and their error codes; and a
 * message made plain (without references) for another process. */
#include <Python.h>
#include <criterion/criterion.h>
#include <msgpack.h>
#include <string.h>

#include "isola.h"
#include "values/values.h" /* isola__msg_plain */

static PyGILState_STATE gil;

static void setup(void)
{
	cr_assert_eq(isola_init(NULL), 0);
	gil = PyGILState_Ensure(); /* the main interpreter */
}

static void teardown(void)
{
	PyGILState_Release(gil);
	cr_assert_eq(isola_fini(), 0);
}

TestSuite(codec, .init = setup, .fini = teardown, .timeout = 60);

static PyObject *eval(const char *expr)
{
	PyObject *g = PyDict_New();
	PyDict_SetItemString(g, "__builtins__", PyEval_GetBuiltins());
	PyObject *r = PyRun_String(expr, Py_eval_input, g, g);
	Py_DECREF(g);
	if (r == NULL)
		PyErr_Print();
	cr_assert_not_null(r, "eval(%s)", expr);
	return r;
}

Test(codec, encoded_python_reads_back_with_msgpack_c)
{
	PyObject *obj = eval("{'a': 1, 'b': [1, 2.5, 'xyz', None, True], 'c': b'\\x00\\x01'}");
	isola_msg m;
	cr_assert_eq(isola_encode(obj, &m), 0);
	Py_DECREF(obj);
	const void *p;
	size_t len;
	isola_msg_bytes(&m, &p, &len);
	msgpack_unpacked u;
	msgpack_unpacked_init(&u);
	cr_assert_eq(msgpack_unpack_next(&u, p, len, NULL), MSGPACK_UNPACK_SUCCESS);
	msgpack_object o = u.data;
	cr_assert_eq(o.type, MSGPACK_OBJECT_MAP);
	cr_assert_eq(o.via.map.size, 3);
	msgpack_object_kv *kv = o.via.map.ptr;
	cr_assert_eq(strncmp(kv[0].key.via.str.ptr, "a", 1), 0, "insertion order kept");
	cr_assert_eq(kv[0].val.via.u64, 1);
	msgpack_object_array b = kv[1].val.via.array;
	cr_assert_eq(b.size, 5);
	cr_assert_float_eq(b.ptr[1].via.f64, 2.5, 1e-12);
	cr_assert_eq(b.ptr[3].type, MSGPACK_OBJECT_NIL);
	cr_assert_eq(b.ptr[4].type, MSGPACK_OBJECT_BOOLEAN);
	cr_assert_eq(kv[2].val.type, MSGPACK_OBJECT_BIN);
	cr_assert_eq(kv[2].val.via.bin.size, 2);
	msgpack_unpacked_destroy(&u);
	isola_msg_clear(&m);
}

Test(codec, msgpack_c_output_decodes_to_python)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 2);
	msgpack_pack_str_with_body(&pk, "nums", 4);
	msgpack_pack_array(&pk, 3);
	msgpack_pack_int(&pk, -5);
	msgpack_pack_uint64(&pk, UINT64_MAX);
	msgpack_pack_float(&pk, 0.5f);
	msgpack_pack_str_with_body(&pk, "tup", 3);
	/* ext 1 (tuple) holding the array [1, "a"] */
	msgpack_pack_ext(&pk, 4, 1);
	msgpack_pack_ext_body(&pk, "\x92\x01\xa1" "a", 4);
	isola_msg m;
	isola_msg_init(&m);
	isola_msg_set_bytes(&m, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
	void *out = NULL;
	cr_assert_eq(isola_decode(&m, &out), 0);
	PyObject *want = eval("{'nums': [-5, 2**64 - 1, 0.5], 'tup': (1, 'a')}");
	cr_assert_eq(PyObject_RichCompareBool(out, want, Py_EQ), 1);
	Py_DECREF(want);
	Py_DECREF((PyObject *)out);
	isola_msg_clear(&m);
}

Test(codec, error_codes)
{
	isola_msg m;
	PyObject *lam = eval("[lambda: 1]");
	cr_assert_eq(isola_encode(lam, &m), ISOLA_ETYPE);
	cr_assert(PyErr_ExceptionMatches(PyExc_TypeError));
	PyErr_Clear();
	Py_DECREF(lam);

	PyObject *cyc = eval("(lambda l: (l.append(l), l)[1])([])");
	cr_assert_eq(isola_encode(cyc, &m), ISOLA_EINVAL);
	cr_assert(PyErr_ExceptionMatches(PyExc_ValueError));
	PyErr_Clear();
	PyList_SetSlice(cyc, 0, 1, NULL); /* break the cycle */
	Py_DECREF(cyc);

	isola_msg_init(&m);
	isola_msg_set_bytes(&m, "\x93\x01\x02", 3); /* array of 3, only 2 items */
	void *out = NULL;
	cr_assert_eq(isola_decode(&m, &out), ISOLA_EDECODE);
	cr_assert_null(out);
	PyObject *exc = PyErr_GetRaisedException();
	PyObject *s = PyObject_Str(exc);
	/* the claim is checked against what is left before reading items */
	cr_assert_not_null(strstr(PyUnicode_AsUTF8(s), "offset 0: array claims 3"), "%s",
			   PyUnicode_AsUTF8(s));
	Py_DECREF(s);
	Py_DECREF(exc);
	isola_msg_set_bytes(&m, "\x92\x01\xcd\x01", 4); /* uint16 cut short */
	cr_assert_eq(isola_decode(&m, &out), ISOLA_EDECODE);
	exc = PyErr_GetRaisedException();
	s = PyObject_Str(exc);
	cr_assert_not_null(strstr(PyUnicode_AsUTF8(s), "offset 3: truncated"), "%s",
			   PyUnicode_AsUTF8(s));
	Py_DECREF(s);
	Py_DECREF(exc);
	cr_assert_eq(isola_encode(NULL, &m), ISOLA_EINVAL);
	isola_msg_clear(&m);
}

/* isola__msg_plain (values/plain.c): what a process worker gets of a
 * result made in this process.  Encoded here with references (large
 * bytes and isola.share as blobs, isola.freeze as a frozen image), made
 * plain, decoded: the same value with bytes for blobs and the frozen
 * values' plain content, and no reference left. */
static void plain_roundtrip(const char *expr, const char *want_expr, size_t min_refs)
{
	PyObject *obj = eval(expr);
	isola_msg m, p;
	cr_assert_eq(isola_encode(obj, &m), 0, "%s", expr);
	Py_DECREF(obj);
	size_t refs = 0;
	isola_msg_ref_count(&m, &refs);
	cr_assert_geq(refs, min_refs, "%s: %zu references", expr, refs);
	cr_assert_eq(isola__msg_plain(&m, &p), 0, "%s", expr);
	isola_msg_ref_count(&p, &refs);
	cr_assert_eq(refs, 0);
	isola_msg_clear(&m); /* the plain copy owns its bytes */
	void *out = NULL;
	if (isola_decode(&p, &out) != 0)
		PyErr_Print();
	cr_assert_not_null(out, "%s", expr);
	PyObject *want = eval(want_expr);
	PyObject *r = PyObject_Repr(out);
	cr_assert_eq(PyObject_RichCompareBool(out, want, Py_EQ), 1, "%s: got %s", expr,
		     PyUnicode_AsUTF8(r));
	Py_DECREF(r);
	Py_DECREF(want);
	Py_DECREF((PyObject *)out);
	isola_msg_clear(&p);
}

Test(codec, a_message_made_plain_for_another_process)
{
	PyObject *mod = PyImport_ImportModule("isola");
	cr_assert_not_null(mod);
	PyObject *main = PyImport_AddModule("__main__");
	PyObject *g = PyModule_GetDict(main);
	PyDict_SetItemString(g, "isola", mod);
	Py_DECREF(mod);
	/* eval() runs in fresh globals: isola through builtins */
	PyObject *b = PyEval_GetBuiltins();
	PyDict_SetItemString(b, "isola", PyDict_GetItemString(g, "isola"));

	plain_roundtrip("[1, 'a', b'x' * 100000]", "[1, 'a', b'x' * 100000]", 1);
	plain_roundtrip("(isola.share(b'y' * 70000), {'k': (1, frozenset({2, 3}), {4})})",
			"(b'y' * 70000, {'k': (1, frozenset({2, 3}), {4})})", 1);
	plain_roundtrip("{'f': isola.freeze({'a': [1, (2, 'z'), {'d': None}], 'b': b'q' * 300,"
			" 'c': [[], {}], 's': frozenset({5})}), 'n': 7}",
			"{'f': {'a': [1, (2, 'z'), {'d': None}], 'b': b'q' * 300, 'c': [[], {}],"
			" 's': frozenset({5})}, 'n': 7}", 1);
	plain_roundtrip("[isola.freeze(list(range(1000))), isola.freeze('text'), b'z' * 65536]",
			"[list(range(1000)), 'text', b'z' * 65536]", 2);
	/* Nine blobs: more than a message carries, inlined by the encoder past
	 * the eighth; the rest made plain here. */
	plain_roundtrip("[bytes([65 + i]) * 70000 for i in range(9)]",
			"[bytes([65 + i]) * 70000 for i in range(9)]", 8);
	/* An exception whose argument is a blob, nested in a tuple. */
	PyObject *obj = eval("(ValueError(b'e' * 80000), 2)");
	isola_msg m, p;
	cr_assert_eq(isola_encode(obj, &m), 0);
	Py_DECREF(obj);
	cr_assert_eq(isola__msg_plain(&m, &p), 0);
	isola_msg_clear(&m);
	void *out = NULL;
	cr_assert_eq(isola_decode(&p, &out), 0);
	PyObject *e = PyTuple_GetItem(out, 0);
	cr_assert(PyObject_IsInstance(e, PyExc_ValueError) == 1);
	PyObject *args = PyObject_GetAttrString(e, "args");
	PyObject *arg = PyTuple_GetItem(args, 0);
	cr_assert(PyBytes_Check(arg) && PyBytes_GET_SIZE(arg) == 80000);
	Py_DECREF(args);
	Py_DECREF((PyObject *)out);
	isola_msg_clear(&p);

	/* Without references: the same bytes. */
	obj = eval("{'a': [1.5, None, (1, 2)]}");
	cr_assert_eq(isola_encode(obj, &m), 0);
	Py_DECREF(obj);
	cr_assert_eq(isola__msg_plain(&m, &p), 0);
	const void *d1, *d2;
	size_t n1, n2;
	isola_msg_bytes(&m, &d1, &n1);
	isola_msg_bytes(&p, &d2, &n2);
	cr_assert(n1 == n2 && memcmp(d1, d2, n1) == 0);
	isola_msg_clear(&m);
	isola_msg_clear(&p);

	/* A channel has no plain form, deep down too; p is left empty. */
	obj = eval("[b'x' * 100000, {'c': (isola.Channel(1),)}]");
	cr_assert_eq(isola_encode(obj, &m), 0);
	Py_DECREF(obj);
	cr_assert_eq(isola__msg_plain(&m, &p), ISOLA_ETYPE);
	isola_msg_bytes(&p, &d2, &n2);
	cr_assert_eq(n2, 0);
	isola_msg_clear(&m);

	/* Malformed: a blob reference to a reference the message lacks, a
	 * truncated array, trailing bytes. */
	isola_blob *blob;
	cr_assert_eq(isola_blob_create("abc", 3, &blob), 0);
	const char *bad[] = { "\x92\xd4\x0c\x05\x01", "\x93\xd4\x0c\x00\x01",
			      "\x91\xd4\x0c\x00\x01" };
	const size_t bad_len[] = { 5, 5, 6 };
	for (int i = 0; i < 3; i++) {
		isola_msg_init(&m);
		isola_msg_set_bytes(&m, bad[i], bad_len[i]);
		isola_msg_attach_blob(&m, blob);
		cr_assert_eq(isola__msg_plain(&m, &p), ISOLA_EDECODE, "case %d", i);
		isola_msg_clear(&m);
	}
	/* And a good one: [b'abc', 1]. */
	isola_msg_init(&m);
	isola_msg_set_bytes(&m, "\x92\xd4\x0c\x00\x01", 5);
	isola_msg_attach_blob(&m, blob);
	cr_assert_eq(isola__msg_plain(&m, &p), 0);
	isola_msg_bytes(&p, &d2, &n2);
	cr_assert_eq(n2, 7);
	cr_assert_eq(memcmp(d2, "\x92\xc4\x03" "abc" "\x01", 7), 0);
	isola_msg_clear(&m);
	isola_msg_clear(&p);
	isola_blob_release(blob);
}
