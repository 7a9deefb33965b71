/*
 * fuzz_decode.c - libFuzzer target for the decoder, the first code that
 * untrusted bytes reach.  Build: meson setup build/fuzz -Dfuzz=true with
 * CC=clang and -Db_sanitize=address.  Properties checked on every input:
 *   - decoding never crashes and fails only with ValueError;
 *   - whatever decodes re-encodes (or fails with ValueError/TypeError),
 *     and that encoding decodes again.
 * The pickle fallback is off: unpickling untrusted bytes is unsafe by
 * design, which is why channels and pools can turn it off.
 */
#include <stdint.h>
#include <stdlib.h>

#include "interp/codec.h"
#include "pymod/module.h"

static isola__state *st;
static isola__codec_opts opts;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	Py_InitializeEx(0);
	if (isola__module_install() < 0 || (st = isola__state_current()) == NULL) {
		PyErr_Print();
		abort();
	}
	opts = isola__codec_defaults;
	opts.allow_pickle = 0;
	return 0;
}

static void expect_error(PyObject *allowed1, PyObject *allowed2)
{
	if (!PyErr_Occurred())
		abort(); /* NULL without an exception */
	if (!PyErr_ExceptionMatches(allowed1) &&
	    !(allowed2 != NULL && PyErr_ExceptionMatches(allowed2))) {
		PyErr_Print();
		abort();
	}
	PyErr_Clear();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	PyObject *v = isola__decode_bytes(st, data, size, &opts);
	if (v == NULL) {
		expect_error(PyExc_ValueError, NULL);
		return 0;
	}
	PyObject *b = isola__encode_bytes(st, v, &opts);
	if (b == NULL) {
		expect_error(PyExc_ValueError, PyExc_TypeError);
	} else {
		PyObject *v2 = isola__decode_bytes(st, PyBytes_AS_STRING(b),
						   (size_t)PyBytes_GET_SIZE(b), &opts);
		if (v2 == NULL) {
			PyErr_Print();
			abort(); /* our own encoding must decode */
		}
		Py_DECREF(v2);
		Py_DECREF(b);
	}
	Py_DECREF(v);
	return 0;
}
