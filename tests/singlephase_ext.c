/* singlephase_ext.c - a legacy single-phase extension module (no
 * multi-phase init, no per-interpreter state), like numpy today: CPython
 * refuses to import it in an isolated sub-interpreter.  impl() returns
 * "c": tests/python/fallback_pkg uses it as msgpack uses its
 * _cmsgpack, with a pure-Python fallback when the import is refused. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *impl(PyObject *m, PyObject *unused)
{
	(void)m;
	(void)unused;
	return PyUnicode_FromString("c");
}

static PyMethodDef methods[] = {
	{ "impl", impl, METH_NOARGS, "impl()\n--\n\n\"c\": the C extension runs." },
	{ NULL, NULL, 0, NULL },
};

static struct PyModuleDef def = {
	PyModuleDef_HEAD_INIT, "singlephase_ext", "A single-phase test module.", -1, methods,
	NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_singlephase_ext(void)
{
	return PyModule_Create(&def);
}
