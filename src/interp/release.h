/*
 * release.h - giving Python objects back to the interpreter that owns them.
 *
 * A zero-copy blob can wrap memory owned by a Python object (the data of
 * a bytes object).  The blob may be released last by any thread, which
 * must not touch that object.  So its free function pushes the object
 * onto its owner's release queue (a lock-free intrusive stack),
 * and the owning interpreter drains the queue, holding its own GIL, on
 * its next codec call and when it shuts down; and, when the queue was
 * empty, the owner's waker (if one is set) is called, so that an idle
 * interpreter drains at once (a pool worker posts itself a drain task).
 *
 * The owner record is raw memory with its own refcount (one for the
 * interpreter, one per outstanding blob), so it outlives the interpreter
 * if it must.  Objects released after their interpreter is gone are
 * leaked (never touched): that interpreter's memory is no longer ours.
 */
#ifndef ISOLA_INTERP_RELEASE_H
#define ISOLA_INTERP_RELEASE_H

#include "interp/pycompat.h"
#include "isola.h"


typedef struct isola__owner isola__owner;

/* A new owner for the calling interpreter (GIL held); NULL on no memory. */
isola__owner *isola__owner_new(void);

/* The interpreter is going away: drain, then drop its reference. */
void isola__owner_retire(isola__owner *owner);

/* Called (from any thread, holding no GIL) when something is queued
 * for a drain; must not block.  Set once, before blobs are made. */
typedef void (*isola__owner_waker)(void *arg);
void isola__owner_set_waker(isola__owner *owner, isola__owner_waker wake, void *arg,
			    void (*free_arg)(void *arg));

/* DECREF everything queued for this owner.  GIL of the owner held.
 * Cheap (one atomic load) when nothing is queued. */
void isola__owner_drain(isola__owner *owner);

/* Wrap obj's bytes (len bytes at data, which obj keeps alive) in a
 * blob, zero-copy.  Takes a new reference to obj, given back through the
 * owner's queue when the blob dies.  GIL held.  Returns an ISOLA_E code. */
int isola__owner_blob(isola__owner *owner, PyObject *obj, const void *data,
		      size_t len, isola_blob **out);

#endif
