/* singlephase_ext.c - a legacy single-phase extension module (no
 * multi-phase init, no per-interpreter state), like numpy today: CPython
 * refuses to import it in an isolated sub-interpreter. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static struct PyModuleDef def = {
	PyModuleDef_HEAD_INIT, "singlephase_ext", "A single-phase test module.", -1, NULL,
	NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_singlephase_ext(void)
{
	return PyModule_Create(&def);
}
