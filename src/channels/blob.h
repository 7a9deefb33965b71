/* blob.h - the layout of isola_blob (internal). */
#ifndef ISOLA_CHANNELS_BLOB_H
#define ISOLA_CHANNELS_BLOB_H

#include "isola.h"

#include <stdbool.h>

struct isola_blob {
	uint64_t refs; /* atomic: holders of a reference */
	unsigned char *data;
	size_t len;
	isola_blob_free_fn free_fn; /* NULL: data is inline or not ours */
	void *ctx;
	/* Its copy in a sealed memfd for process workers (blobshm.h), made
	 * the first time it is sent to one; NULL until then (atomic). */
	struct isola__mirror *mirror;
};

/* A new reference, unless the last one is gone already (refs 0: the
 * blob is being freed): a cache that finds blobs by a weak pointer. */
bool isola__blob_try_retain(isola_blob *blob);

/* A frozen value (isola.freeze): the value at byte `offset` of an image
 * blob (src/interp/frozen.h), the handle holding one reference. */
struct isola_frozen {
	isola_blob *image;
	uint32_t offset;
};

/* The free function of image blobs (isola.freeze), which marks them: only
 * an image is read as one (a FROZEN_REF to another blob is refused). */
void isola__image_free(void *ctx, void *data, size_t len);
bool isola__blob_is_image(const isola_blob *blob);

/* The registry's functions (isola.h) with the name's length given:
 * EINVAL for a name with a NUL byte inside (the Python module's). */
int isola__frozen_publish_n(const char *name, size_t len, const isola_frozen *value);
int isola__frozen_unpublish_n(const char *name, size_t len);
int isola__frozen_lookup_n(const char *name, size_t len, isola_frozen **out);

/* Drop every name of the registry (isola_fini). */
void isola__registry_clear(void);

#endif
