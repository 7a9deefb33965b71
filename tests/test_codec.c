/* test_codec.c - the codec from C: isola_encode / isola_decode against
 * msgpack-c's own packer and unpacker, and their error codes. */
#include <Python.h>
#include <criterion/criterion.h>
#include <msgpack.h>
#include <string.h>

#include "isola.h"

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
