/* codec_opts.h - the codec's settings (Python-free: the scheduler passes
 * them through interp's entry points). */
#ifndef ISOLA_INTERP_CODEC_OPTS_H
#define ISOLA_INTERP_CODEC_OPTS_H

#include <stddef.h>

typedef struct isola__codec_opts {
	int allow_pickle;      /* encode/decode the pickle fallback */
	int allow_refs;        /* blobs and channels as references */
	int proc;              /* to or from a process worker: blobs (large bytes,
				* Buffers) as references only if allow_refs, else
				* copied inline; frozen values thawed; channels
				* refused (TypeError) */
	size_t blob_threshold; /* bytes-like at least this big travel as blobs */
	size_t max_size;       /* encoded size limit */
	int max_depth;         /* nesting limit */
} isola__codec_opts;

#define ISOLA__BLOB_THRESHOLD_DEFAULT ((size_t)64 * 1024)
#define ISOLA__MAX_SIZE_DEFAULT ((size_t)1 << 30)
#define ISOLA__MAX_DEPTH_DEFAULT 512

extern const isola__codec_opts isola__codec_defaults;

#endif
