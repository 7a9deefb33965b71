/*
 * state.h - the isola module's per-interpreter state (no global PyObject
 * anywhere: each interpreter has its own types, exceptions and caches).
 */
#ifndef ISOLA_INTERP_STATE_H
#define ISOLA_INTERP_STATE_H

#include "interp/pycompat.h"
#include "interp/release.h"
#include "isola.h"

/* Every object reference below is in module.c's STATE_REFS (traverse, clear). */
typedef struct isola__state {
	PyTypeObject *channel_type;
	PyTypeObject *buffer_type;
	PyObject *ChannelClosed, *ChannelFull, *ChannelEmpty;
	PyObject *RemoteError, *Cancelled, *InputFailed;
	/* Imported on first use (NULL until then). */
	PyObject *datetime_mod;
	PyObject *dt_datetime, *dt_date, *dt_time, *dt_timedelta, *dt_timezone;
	PyObject *dt_utc;
	PyObject *pickle_dumps, *pickle_loads;
	PyObject *remote_error_classes; /* builtin base name -> RemoteError subclass */
	isola__owner *owner; /* release queue for zero-copy blobs */
	PyObject *main_path;  /* workers: the caller's __main__ script, or NULL */
	PyObject *main_refusal; /* workers: why it must not be imported (str), or NULL */
	PyObject *targets;    /* "mod:qual" -> callable, for pool tasks (call.c) */
	PyObject *actors;     /* actor id -> instance (actor_host.c) */
	PyObject *actor_raised; /* what an actor's method last raised, for its hook */
	int importing_main;   /* importing it now (a Pool made then: no guard) */
	/* Extension imports refused and not yet taken (refusal.c): module
	 * name -> [where (str or None), times], or NULL; and the phase that
	 * names where ("preload", "init"; NULL: a task). */
	PyObject *refusals;
	const char *refusal_where;
	PyTypeObject *pool_type, *cfuture_type;
	PyTypeObject *frozen_map_type, *frozen_seq_type, *frozen_iter_type;
	PyObject *frozen_views[3]; /* the classes of keys(), values(), items() */
	int front_loaded;     /* front.py has run in this interpreter */
} isola__state;

/* isola.Channel instances.  Whether a channel takes the pickle fallback
 * is a tag of the C channel itself (ISOLA__TAG_NO_PICKLE), shared by
 * every handle in every interpreter. */
typedef struct {
	PyObject_HEAD
	isola_channel *ch; /* never changes once set */
} isola__channel_obj;

#define ISOLA__TAG_NO_PICKLE 1u


/* isola.Buffer instances: a read-only view of a blob, keeping it alive. */
typedef struct {
	PyObject_HEAD
	isola_blob *blob;
	const void *data;
	Py_ssize_t len;
} isola__buffer_obj;

/* Where each interpreter's dict keeps the module (module exec puts it). */
#define ISOLA__STATE_KEY "isola.module"

/* The calling interpreter's isola state, importing the module if needed.
 * GIL held.  NULL with an exception set on failure. */
isola__state *isola__state_current(void);

/* New Channel / Buffer objects; each takes a new reference to ch / blob. */
PyObject *isola__channel_wrap(isola__state *st, isola_channel *ch);
PyObject *isola__buffer_wrap(isola__state *st, isola_blob *blob);

/* Where a code comes from: the same code means different exceptions
 * (ECLOSED: ChannelClosed for a channel or an actor, RuntimeError for a
 * pool, as concurrent.futures has it; EAGAIN: ChannelFull on a send,
 * ChannelEmpty on a receive, TimeoutError for the rest). */
enum isola__raise_ctx {
	ISOLA__FOR_SEND,
	ISOLA__FOR_RECV,
	ISOLA__FOR_POOL,
	ISOLA__FOR_ACTOR,
	ISOLA__FOR_OTHER,
};

/* The one mapping of ISOLA_E* codes to Python exceptions: raise it and
 * return NULL.  what names the operation in the message. */
PyObject *isola__raise(isola__state *st, int code, enum isola__raise_ctx ctx, const char *what);

#endif
