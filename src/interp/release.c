/* release.c - the owner's release queue for zero-copy blobs (release.h). */
#include "interp/release.h"

#include "common/atomics.h"

#include <stdlib.h>

struct isola__owner {
	ck_stack_t queue; /* struct pending, via .entry */
	uint64_t refs;    /* atomic: the interpreter + outstanding blobs */
	int alive;        /* atomic: 0 once the interpreter retired */
};

struct pending {
	ck_stack_entry_t entry; /* first: the stack links through it */
	isola__owner *owner;
	PyObject *obj;
};

isola__owner *isola__owner_new(void)
{
	isola__owner *o = calloc(1, sizeof(*o));
	if (o == NULL)
		return NULL;
	ck_stack_init(&o->queue);
	o->refs = 1;
	o->alive = 1;
	return o;
}

static void owner_unref(isola__owner *o)
{
	if (isola__ref_dec_is_last(&o->refs))
		free(o);
}

void isola__owner_drain(isola__owner *o)
{
	if (CK_STACK_ISEMPTY(&o->queue))
		return;
	/* ck_stack's batch pop takes the whole list in one atomic exchange:
	 * no ABA, any number of concurrent pushers. */
	ck_stack_entry_t *e = ck_stack_batch_pop_upmc(&o->queue);
	while (e != NULL) {
		ck_stack_entry_t *next = e->next;
		struct pending *p = (struct pending *)e;
		Py_DECREF(p->obj);
		free(p);
		e = next;
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
		ck_stack_push_upmc(&o->queue, &p->entry);
	} else {
		free(p); /* leak p->obj: its interpreter is gone */
	}
	owner_unref(o);
}

int isola__owner_blob(isola__owner *o, PyObject *obj, const void *data,
		      size_t len, isola_blob **out)
{
	struct pending *p = malloc(sizeof(*p));
	if (p == NULL)
		return ISOLA_ENOMEM;
	p->owner = o;
	p->obj = obj;
	int r = isola_blob_wrap((void *)data, len, release_to_owner, p, out);
	if (r != 0) {
		free(p);
		return r;
	}
	Py_INCREF(obj);
	isola__ref_inc(&o->refs);
	return 0;
}
