/* pyproc.h - the process lane in the isola module (pyproc.c), and what it
 * borrows from the pool binding (pypool.c). */
#ifndef ISOLA_PYMOD_PYPROC_H
#define ISOLA_PYMOD_PYPROC_H

#include "interp/state.h"

struct isola__pool_link;

extern PyType_Spec isola__proclane_spec;

/* The child's loop and its SIGINT handler's question (module functions). */
PyObject *isola__py_proc_serve(PyObject *m, PyObject *args);
PyObject *isola__py_proc_interrupt_due(PyObject *m, PyObject *unused);

/* Figures of the blobs shared with process workers, and where one
 * Buffer's bytes live (module functions, private: tests and benches). */
PyObject *isola__py_proc_mirror_stats(PyObject *m, PyObject *unused);
PyObject *isola__py_buffer_shm(PyObject *m, PyObject *buf);

/* pypool.c: a _Future of pool (an isola._Pool) for f, which it takes
 * (NULL with an error set, f cancelled and released); pool's call
 * arguments encoded for a process worker (blobs as references, frozen
 * values thawed, channels refused: 0, or -1 with an error set);
 * whether pool allows the pickle fallback. */
PyObject *isola__pool_wrap_future(PyObject *pool, isola_future *f);
int isola__pool_encode_proc(PyObject *pool, PyObject *args, PyObject *kwargs, isola_msg *out);
int isola__pool_allow_pickle(PyObject *pool);
/* pypool.c: task-graph inputs, a list of (_Future, position, keyword or
 * None), into in[0 .. n) (borrowed: they live while the list does); 0 or
 * -1 with an error set.  And: pool's tasks may take futures reaching
 * their owner through link (its process lane's) as inputs; 0 or -1. */
int isola__pool_parse_inputs(PyObject *pool, PyObject *list, isola_input *in, size_t n);
int isola__pool_accept_inputs_of(PyObject *pool, struct isola__pool_link *link);

#endif
