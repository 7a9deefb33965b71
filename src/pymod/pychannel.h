/* pychannel.h - isola.Channel and the blocking helpers it shares. */
#ifndef ISOLA_PYMOD_PYCHANNEL_H
#define ISOLA_PYMOD_PYCHANNEL_H

#include "interp/codec.h"
#include "interp/state.h"

/* Codec options for messages of ch (its pickle setting). */
isola__codec_opts isola__channel_codec_opts(isola_channel *ch);

extern PyType_Spec isola__channel_spec;
extern PyType_Spec isola__buffer_spec;
extern PyType_Spec isola__pool_spec;
extern PyType_Spec isola__cfuture_spec;

PyObject *isola__set_main_path(PyObject *m, PyObject *args);
PyObject *isola__py_task_deadline(PyObject *m, PyObject *seconds);

/* Error convention of this layer (CPython's): 0, or -1 with a Python
 * exception set; an ISOLA_E* code becomes one through isola__raise. */

/* A Python timeout (None, or seconds >= 0) as *ns (-1: forever).  0, or
 * -1 with ValueError/TypeError set. */
int isola__timeout_arg(PyObject *timeout, int64_t *ns);

/* The one blocking loop: run op(arg) with the GIL released until it
 * returns anything but ISOLA_EINTR (op waits with
 * ISOLA__WAIT_INTERRUPTIBLE); after an EINTR, signal handlers run and a
 * cancel of the task this worker runs is honoured.  0 with *status =
 * op's result, or -1 with an exception set (KeyboardInterrupt,
 * isola.Cancelled, whatever a signal handler raised). */
int isola__wait_released(int (*op)(void *arg), void *arg, int *status);

/* Send or receive: a first try with the GIL held, then (unless nowait,
 * or timeout_ns == 0) a wait with it released.  0, or -1 with an
 * exception set: ChannelFull / ChannelEmpty (nowait), TimeoutError,
 * ChannelClosed, ... */
int isola__channel_wait_op(isola_channel *ch, isola_msg *msg, int64_t timeout_ns,
			   int is_send, int nowait);

#endif
