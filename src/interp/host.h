/*
 * host.h - interp's entry points for the scheduler: everything a pool
 * worker, its watchdog and its actors do in an interpreter goes through
 * these (the scheduler never calls CPython, and this header is
 * Python-free).  "GIL held" means the caller entered the interpreter
 * with isola__interp_enter on its own thread.
 *
 * Error convention: 0, or a negative ISOLA_E*; where a Python exception
 * is the outcome it stays set until isola__outcome_capture or
 * isola__outcome_discard takes it.
 */
#ifndef ISOLA_INTERP_HOST_H
#define ISOLA_INTERP_HOST_H

#include "isola.h"

#include "common/errinfo.h"
#include "interp/codec_opts.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Attach to / detach from the interpreter's GIL on its own thread. */
void isola__interp_enter(isola_interp *in);
void isola__interp_leave(isola_interp *in);

/* ---- jobs (call.c) ------------------------------------------------ */

enum isola__job_kind {
	ISOLA__JOB_CALL,   /* target(*args) */
	ISOLA__JOB_CHUNK,  /* target over argsets[0..n): the list of results */
	ISOLA__JOB_SOURCE, /* exec source in __main__; the result is None */
};

/* A task graph's input (isola_pool_submit_after), inserted into a CALL
 * job's arguments. */
typedef struct isola__job_input {
	const isola_msg *value; /* its result: the return value, or its encoded exception */
	int status;             /* 0, or the input's ISOLA_E* outcome */
	const char *error_type, *error_message; /* status != 0 (may be NULL) */
	int position;           /* >= 0: positional index (unless keyword) */
	const char *keyword;    /* a keyword argument instead */
} isola__job_input;

typedef struct isola__job {
	enum isola__job_kind kind;
	const char *target; /* "mod:qual", or the source */
	const isola_msg *args;    /* CALL; NULL: none */
	const isola_msg *argsets; /* CHUNK */
	size_t n;
	/* CHUNK: an Exception raised by one call becomes that slot's value
	 * (the wire's exception type) and the others still run; otherwise the
	 * chunk stops at it and *failed_at says which. */
	bool per_element;
	bool cached; /* resolve through the interpreter's cache of targets */
	const isola__codec_opts *codec;
	/* CALL: inputs[0 .. n_inputs) join args (positional ones in
	 * ascending position).  If one failed, the job raises
	 * isola.InputFailed from its exception instead of calling.  Once the
	 * arguments are built (or the job failed), inputs_used(inputs_arg)
	 * runs, so the inputs' memory can go before the call returns. */
	const isola__job_input *inputs;
	size_t n_inputs;
	void (*inputs_used)(void *arg);
	void *inputs_arg;
} isola__job;

/* Run a job in the calling interpreter; result gets the encoded return
 * value.  0, or ENOTFOUND / EPYTHON with the exception set (and for a
 * chunk that stopped, *failed_at = the index of the call that raised). */
int isola__job_run(const isola__job *j, isola_msg *result, size_t *failed_at);

/* The exception that ended a task, as its outcome (clears it): the
 * status (EPYTHON; interrupt_status instead, ECANCELED or ETIMEDOUT, when
 * the exception is the isola.Cancelled that an interrupt raised, 0 if
 * none was asked for), the encoded exception in *res, the text in *err. */
int isola__outcome_capture(int interrupt_status, const isola__codec_opts *o,
			   isola_msg *res, isola__error *err);

/* The pending exception dropped (an outcome nobody is told of). */
void isola__outcome_discard(void);

/* ---- extension imports its interpreter refused (refusal.c) --------- */

/* Any thread, no lock: true if some interpreter refused an extension
 * import since *seen was last updated here (then updated).  A worker
 * asks after each task: a task that imported nothing pays one load. */
bool isola__refusals_new(uint64_t *seen);

/* GIL held: the calling interpreter's refusals not yet taken, each as
 * fn(arg, module, where, times), then forgotten.  where: "preload" or
 * "init" when the workers' setup ran then, else NULL (the task that
 * just ran); times: how many imports of it were refused.  Refusals
 * that failed the task (or the setup) are not among them: its outcome
 * (isola__outcome_capture) dropped them. */
void isola__refusals_take(void (*fn)(void *arg, const char *module, const char *where,
				     uint64_t times),
			  void *arg);

/* ---- a worker's interpreter (host.c) ------------------------------- */

/* On in's own thread, after isola_interp_create: give memory that other
 * interpreters held zero-copy back through wake(arg) (a drain request:
 * the worker then calls isola__host_drain); release(arg) when the
 * interpreter no longer needs it.  0 or ISOLA_EPYTHON. */
int isola__host_begin(isola_interp *in, void (*wake)(void *), void *arg,
		      void (*release)(void *));

/* Give back what wake asked for (enters and leaves in itself). */
void isola__host_drain(isola_interp *in);

/* Drop the interpreter's actors and cached targets before it is
 * destroyed (enters and leaves in itself), so their finalizers run
 * while the interpreter is whole. */
void isola__host_end(isola_interp *in);

/* Under in's GIL (held by its own thread or by a visitor): make in's own
 * thread raise isola.Cancelled at its next bytecode boundary (raise), or
 * withdraw one not yet raised (!raise).  0, or ISOLA_EPYTHON (no module
 * state: nothing was raised). */
int isola__interp_async_cancel(isola_interp *in, bool raise);

/* On in's own thread, GIL held: true if an isola.Cancelled asked with
 * isola__interp_async_cancel is still pending (not yet raised). */
bool isola__interp_async_pending(isola_interp *in);

/* From another thread: attach a thread state of its own to in's
 * interpreter (taking its GIL, which the running code hands over at its
 * next switch-interval check), run fn(arg), then detach and delete it.
 * The caller keeps in alive meanwhile.  0 or ISOLA_ENOMEM. */
int isola__interp_visit(isola_interp *in, void (*fn)(void *), void *arg);

/* ---- actors' instances (actor_host.c), GIL held --------------------- */

/* target(*args) kept as actor id's instance.  0, or ISOLA_EPYTHON with
 * the exception taken (cleared) as an outcome: encoded in *exc (an empty
 * message on entry; the caller clears it), its text in *err (the caller
 * clears it). */
int isola__actor_construct(uint64_t id, const char *target, const isola_msg *args,
			   const isola__codec_opts *o, isola_msg *exc, isola__error *err);

/* Drop actor id's instance, if it has one. */
void isola__actor_forget(uint64_t id);

/* Call method on actor id's instance; result (NULL: discard it) gets the
 * encoded return value.  0; ENOTFOUND when there is no instance; or
 * EPYTHON with the exception set (the host also keeps it for
 * isola__actor_restart_hook). */
int isola__actor_call_method(uint64_t id, const char *method, const isola_msg *args,
			     const isola__codec_opts *o, isola_msg *result);

/* After a method raised: call the instance's __isola_restart__(exc), if
 * it has one, with the exception the method raised.  0 (no hook, or it
 * returned), or ISOLA_EPYTHON with *why = "Type: message" (malloc'd). */
int isola__actor_restart_hook(uint64_t id, char **why);

#endif
