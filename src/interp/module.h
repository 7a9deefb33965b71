/* module.h - the isola module definition and its installation. */
#ifndef ISOLA_INTERP_MODULE_H
#define ISOLA_INTERP_MODULE_H

#include "interp/state.h"

extern PyModuleDef isola__module_def;

PyMODINIT_FUNC PyInit_isola(void);

/* Make `import isola` work in the calling interpreter (GIL held) even
 * when the module is not on its import path: create it from its def and
 * put it in sys.modules.  No-op if already imported.  0 or -1 (error set). */
int isola__module_install(void);

/* Run front.py (Pool, Executor, ...) in the module, once. 0 or -1. */
int isola__front_load(PyObject *module);

#endif
