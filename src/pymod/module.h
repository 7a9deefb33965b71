/* module.h - the isola module definition and its installation. */
#ifndef ISOLA_PYMOD_MODULE_H
#define ISOLA_PYMOD_MODULE_H

#include "interp/state.h"

extern PyModuleDef isola__module_def;

PyMODINIT_FUNC PyInit_isola(void);

/* Make `import isola` work in the calling interpreter (GIL held) even
 * when the module is not on its import path: create it from its def and
 * put it in sys.modules.  No-op if already imported.  0 or -1 (error set). */
int isola__module_install(void);

/* Run front.py (Pool, Executor, ...) in the module, once. 0 or -1. */
int isola__front_load(PyObject *module);

/* _channel_publish/_lookup/_unpublish and _host_wait (exports.c). */
extern PyMethodDef isola__exports_methods[];

/* What isola_init and the module's exec bind to the runtime (init.c). */
struct isola__binding;
extern const struct isola__binding isola__pymod_binding;

/* The module's frozen-value functions (frozen_functions.c). */
PyObject *isola__py_freeze(PyObject *m, PyObject *obj);
PyObject *isola__py_thaw(PyObject *m, PyObject *obj);
PyObject *isola__py_publish(PyObject *m, PyObject *const *args, Py_ssize_t nargs);
PyObject *isola__py_lookup(PyObject *m, PyObject *const *args, Py_ssize_t nargs);
PyObject *isola__py_unpublish(PyObject *m, PyObject *name);

#endif
