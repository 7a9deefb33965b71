/* pychannel.h - isola.Channel and the blocking helpers it shares. */
#ifndef ISOLA_PYMOD_PYCHANNEL_H
#define ISOLA_PYMOD_PYCHANNEL_H

#include "interp/codec.h"
#include "interp/state.h"

/* Codec options for messages of ch (its pickle setting). */
isola__codec_opts isola__channel_codec_opts(isola_channel *ch);

/* A Python exception is set (returned in place of an ISOLA_E* code). */
#define ISOLA__PYERR (-1000)

extern PyType_Spec isola__channel_spec;
extern PyType_Spec isola__buffer_spec;
extern PyType_Spec isola__pool_spec;
extern PyType_Spec isola__cfuture_spec;

PyObject *isola__set_main_path(PyObject *m, PyObject *path);
PyObject *isola__py_task_deadline(PyObject *m, PyObject *seconds);

/* None -> -1 (forever), seconds >= 0 -> ns; -2 with an exception set. */
int64_t isola__timeout_ns(PyObject *timeout);

/* After an ISOLA_EINTR wait (GIL held): run signal handlers, and raise
 * isola.Cancelled if this worker's task was cancelled meanwhile.  -1
 * with an exception set: end the wait; 0: wait again. */
int isola__wait_interrupted(void);

/* Send or receive with the GIL held for the first try and released for
 * the wait; signal handlers run on EINTR.  Returns 0, an ISOLA_E* code,
 * or ISOLA__PYERR. */
int isola__channel_wait_op(isola_channel *ch, isola_msg *msg, int64_t timeout_ns,
			   int is_send);

#endif
