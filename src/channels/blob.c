/*
 * blob.c - immutable refcounted byte ranges.
 *
 * Invariant: refs counts the holders; the holder whose release takes it
 * from 1 to 0 is the only one left and frees the blob.
 */
#include "channels/blob.h"

#include "channels/blobshm.h"

#include "common/alloc.h"

#include "common/atomics.h"
#include <stdlib.h>
#include <string.h>

int isola_blob_create(const void *data, size_t len, isola_blob **out)
{
	if (out == NULL || (data == NULL && len > 0))
		return ISOLA_EINVAL;
	if (len > SIZE_MAX - sizeof(isola_blob))
		return ISOLA_ETOOBIG;
	/* One allocation: the bytes follow the header. */
	isola_blob *b = isola__malloc(sizeof(*b) + len);
	if (b == NULL)
		return ISOLA_ENOMEM;
	b->refs = 1;
	b->data = (unsigned char *)(b + 1);
	b->len = len;
	b->free_fn = NULL;
	b->ctx = NULL;
	b->mirror = NULL;
	if (len > 0)
		memcpy(b->data, data, len);
	*out = b;
	return 0;
}

int isola_blob_wrap(void *data, size_t len, isola_blob_free_fn free_fn,
		    void *ctx, isola_blob **out)
{
	if (out == NULL || (data == NULL && len > 0))
		return ISOLA_EINVAL;
	isola_blob *b = isola__malloc(sizeof(*b));
	if (b == NULL)
		return ISOLA_ENOMEM;
	b->refs = 1;
	b->data = data;
	b->len = len;
	b->free_fn = free_fn;
	b->ctx = ctx;
	b->mirror = NULL;
	*out = b;
	return 0;
}

int isola_blob_retain(isola_blob *blob)
{
	if (blob == NULL)
		return ISOLA_EINVAL;
	isola__ref_inc(&blob->refs);
	return 0;
}

bool isola__blob_try_retain(isola_blob *blob)
{
	uint64_t n = __atomic_load_n(&blob->refs, __ATOMIC_RELAXED);
	/* Relaxed as isola_blob_retain: the caller reaches the blob through
	 * a lock that orders what it reads. */
	while (n > 0 && !__atomic_compare_exchange_n(&blob->refs, &n, n + 1, true,
						      __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
	return n > 0;
}

int isola_blob_release(isola_blob *blob)
{
	if (blob == NULL)
		return 0;
	/* acq_rel: every holder's reads of the bytes happen before the
	 * last holder frees them. */
	if (!isola__ref_dec_is_last(&blob->refs))
		return 0;
	/* Relaxed: the decrement above ordered its maker's store. */
	struct isola__mirror *m = __atomic_load_n(&blob->mirror, __ATOMIC_RELAXED);
	if (m != NULL) /* only blobs sent to a process worker have one */
		isola__mirror_free(m, blob->len);
	if (blob->free_fn != NULL)
		blob->free_fn(blob->ctx, blob->data, blob->len);
	isola__free(blob);
	return 0;
}

int isola_blob_data(const isola_blob *blob, const void **data, size_t *len)
{
	if (blob == NULL || data == NULL || len == NULL)
		return ISOLA_EINVAL;
	*data = blob->data;
	*len = blob->len;
	return 0;
}

void isola__image_free(void *ctx, void *data, size_t len)
{
	(void)ctx;
	(void)len;
	isola__free(data); /* the freezer's malloc/realloc'd buffer */
}

bool isola__blob_is_image(const isola_blob *blob)
{
	return blob != NULL && blob->free_fn == isola__image_free;
}
