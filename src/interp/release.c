/* release.c - the owner's release queue for zero-copy blobs (release.h). */
#include "interp/release.h"
#include "common/alloc.h"

#include "common/atomics.h"

#include <stdlib.h>

/*
 * The queue is an intrusive LIFO: any thread pushes with a release CAS
 * on head (Treiber); the owner takes the whole list at once with an
 * acquire exchange, so there is no ABA and no per-item pop.  (The same
 * shape as ck_stack's push_upmc/batch_pop_upmc, written with C11-model
 * atomics so that ThreadSanitizer can check the ordering; see
 * common/atomics.h.)
 */
struct pending {
	struct pending *next;
	struct isola__owner *owner;
	PyObject *obj;
};

struct isola__owner {
	struct pending *head; /* atomic: pushed, not yet drained */
	uint64_t refs;        /* atomic: the interpreter + outstanding blobs */
	int alive;            /* atomic: 0 once the interpreter retired */
	/* Set once before any blob exists (the blob's creation publishes
	 * them); arg lives as long as the owner record. */
	isola__owner_waker wake;
	void *wake_arg;
	void (*free_wake_arg)(void *);
};

isola__owner *isola__owner_new(void)
{
	isola__owner *o = isola__calloc(1, sizeof(*o));
	if (o == NULL)
		return NULL;
	o->head = NULL;
	o->refs = 1;
	o->alive = 1;
	return o;
}

static void owner_unref(isola__owner *o)
{
	if (!isola__ref_dec_is_last(&o->refs))
		return;
	if (o->free_wake_arg != NULL)
		o->free_wake_arg(o->wake_arg);
	isola__free(o);
}

void isola__owner_set_waker(isola__owner *o, isola__owner_waker wake, void *arg,
			    void (*free_arg)(void *arg))
{
	o->wake = wake;
	o->wake_arg = arg;
	o->free_wake_arg = free_arg;
}

void isola__owner_drain(isola__owner *o)
{
	if (isola__load_relaxed(&o->head) == NULL)
		return;
	/* Acquire: pairs with the pushers' release CAS, so each node's
	 * fields are visible. */
	struct pending *p = __atomic_exchange_n(&o->head, NULL, __ATOMIC_ACQUIRE);
	while (p != NULL) {
		struct pending *next = p->next;
		Py_DECREF(p->obj);
		isola__free(p);
		p = next;
	}
}

void isola__owner_retire(isola__owner *o)
{
	if (o == NULL)
		return;
	isola__owner_drain(o);
	/* Release: pushes that see alive == 0 leak their object rather
	 * than queue it for an interpreter that will never drain again. */
	isola__store_release(&o->alive, 0);
	isola__owner_drain(o); /* anything pushed meanwhile */
	/* A release that read alive == 1 just before the store above and
	 * pushes after this drain leaks its object: only at shutdown, and
	 * never a use after free. */
	owner_unref(o);
}

/* isola_blob_free_fn: runs on whichever thread drops the last reference. */
static void release_to_owner(void *ctx, void *data, size_t len)
{
	(void)data;
	(void)len;
	struct pending *p = ctx;
	isola__owner *o = p->owner;
	if (isola__load_acquire(&o->alive)) {
		/* Release: p's fields are written before it is reachable. */
		struct pending *old = isola__load_relaxed(&o->head);
		do
			p->next = old;
		while (!__atomic_compare_exchange_n(&o->head, &old, p, false, __ATOMIC_RELEASE,
						    __ATOMIC_RELAXED));
		/* The first queued since the last drain: ask for a drain, so
		 * an idle interpreter does not hold the memory.  (old, not
		 * p->next: once published, p may be drained and freed.) */
		if (old == NULL && o->wake != NULL)
			o->wake(o->wake_arg);
	} else {
		isola__free(p); /* leak p->obj: its interpreter is gone */
	}
	owner_unref(o);
}

int isola__owner_blob(isola__owner *o, PyObject *obj, const void *data,
		      size_t len, isola_blob **out)
{
	struct pending *p = isola__malloc(sizeof(*p));
	if (p == NULL)
		return ISOLA_ENOMEM;
	p->owner = o;
	p->obj = obj;
	int r = isola_blob_wrap((void *)data, len, release_to_owner, p, out);
	if (r != 0) {
		isola__free(p);
		return r;
	}
	Py_INCREF(obj);
	isola__ref_inc(&o->refs);
	return 0;
}
