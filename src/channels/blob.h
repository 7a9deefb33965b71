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
};

#endif
