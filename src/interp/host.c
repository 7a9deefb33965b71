/*
 * host.c - a pool worker's interpreter, as the scheduler drives it
 * (host.h): its setup on its own thread, giving zero-copy memory back,
 * its end, and the two ways in from another thread (visit, async cancel).
 *
 * Interrupting a running task, on CPython 3.12 to 3.14 alike: the
 * watchdog thread makes a thread state of its own in the worker's
 * interpreter and attaches it (isola__interp_visit), which takes that
 * interpreter's GIL; holding it, it calls PyThreadState_SetAsyncExc on
 * the worker's thread with that interpreter's own isola.Cancelled, which
 * the worker raises at its next bytecode boundary.
 */
#include "interp/interp.h"

#include "interp/state.h"

int isola__host_begin(isola_interp *in, void (*wake)(void *), void *arg,
		      void (*release)(void *))
{
	isola__interp_enter(in);
	isola__state *st = isola__state_current();
	if (st != NULL && st->owner != NULL)
		isola__owner_set_waker(st->owner, wake, arg, release);
	int r = st != NULL && st->owner != NULL ? 0 : ISOLA_EPYTHON;
	PyErr_Clear();
	isola__interp_leave(in);
	return r;
}

void isola__host_drain(isola_interp *in)
{
	isola__interp_enter(in);
	isola__state *st = isola__state_current();
	if (st != NULL && st->owner != NULL)
		isola__owner_drain(st->owner);
	PyErr_Clear();
	isola__interp_leave(in);
}

void isola__host_end(isola_interp *in)
{
	isola__interp_enter(in);
	isola__state *st = isola__state_current();
	if (st != NULL) {
		Py_CLEAR(st->actors);
		Py_CLEAR(st->targets);
	}
	PyErr_Clear();
	isola__interp_leave(in);
}

int isola__interp_async_cancel(isola_interp *in, bool raise)
{
	ISOLA__ASSERT_GIL();
	if (!raise) {
		PyThreadState_SetAsyncExc(in->thread_ident, NULL);
		return 0;
	}
	isola__state *st = isola__state_current();
	if (st == NULL) {
		PyErr_Clear();
		return ISOLA_EPYTHON;
	}
	PyThreadState_SetAsyncExc(in->thread_ident, st->Cancelled);
	return 0;
}

bool isola__interp_async_pending(isola_interp *in)
{
	ISOLA__ASSERT_GIL();
	(void)in;
	/* The field CPython raises from at the next eval-breaker check
	 * (cpython/pystate.h, 3.12-3.14); set and read under this GIL. */
	return PyThreadState_Get()->async_exc != NULL;
}

int isola__interp_visit(isola_interp *in, void (*fn)(void *), void *arg)
{
	PyThreadState *ts = PyThreadState_New(in->istate);
	if (ts == NULL)
		return ISOLA_ENOMEM;
	PyEval_RestoreThread(ts);
	fn(arg);
	PyThreadState_Clear(ts);
	PyThreadState_DeleteCurrent(); /* releases the GIL */
	return 0;
}
