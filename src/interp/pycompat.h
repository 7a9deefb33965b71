/* pycompat.h - the few CPython API differences across 3.12, 3.13, 3.14. */
#ifndef ISOLA_INTERP_PYCOMPAT_H
#define ISOLA_INTERP_PYCOMPAT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <assert.h>

#if PY_VERSION_HEX < 0x030C0000
#error "isola needs CPython 3.12 or newer (per-interpreter GIL, PEP 684)"
#endif

/* The calling thread's attached thread state, or NULL (never fails). */
#if PY_VERSION_HEX >= 0x030D0000
#define isola__tstate_unchecked() PyThreadState_GetUnchecked()
#else
#define isola__tstate_unchecked() _PyThreadState_UncheckedGet()
#endif

/* Debug builds: "GIL held" stated as a check (in a GIL build, a thread
 * with an attached thread state holds its interpreter's GIL). */
#define ISOLA__ASSERT_GIL() assert(isola__tstate_unchecked() != NULL || !"isola: GIL not held")

#if PY_VERSION_HEX < 0x030D0000
#define Py_HashPointer _Py_HashPointer
#endif

/* A signed big-endian two's complement integer of n bytes. */
#if PY_VERSION_HEX >= 0x030D0000
#define isola__long_from_be_signed(p, n)                                      \
	PyLong_FromNativeBytes((p), (n), Py_ASNATIVEBYTES_BIG_ENDIAN)
#else
#define isola__long_from_be_signed(p, n) _PyLong_FromByteArray((p), (n), 0, 1)
#endif

#endif
