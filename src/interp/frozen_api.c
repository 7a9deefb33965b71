/*
 * frozen_api.c - isola_frozen_from_msgpack: a frozen value made by a C
 * program (frozen.h has the design; the module's functions are in
 * src/pymod/frozen_functions.c).
 */
#include "interp/frozen.h"
#include "common/alloc.h"

#include "channels/blob.h"
#include "interp/codec.h"
#include "interp/runtime.h"

#include <stdlib.h>

int isola_frozen_from_msgpack(const void *data, size_t len, isola_frozen **out)
{
	if (out == NULL || (data == NULL && len > 0))
		return ISOLA_EINVAL;
	if (!isola__runtime_ready())
		return ISOLA_ESTATE;
	if (isola__tstate_unchecked() != NULL)
		return ISOLA_ESTATE; /* attached elsewhere: PyGILState would mix them */
	isola_frozen *f = isola__malloc(sizeof(*f));
	if (f == NULL)
		return ISOLA_ENOMEM;
	PyGILState_STATE g = PyGILState_Ensure();
	static const isola__codec_opts plain = {
		.allow_pickle = 0,
		.allow_refs = 0,
		.blob_threshold = SIZE_MAX,
		.max_size = ISOLA__MAX_SIZE_DEFAULT,
		.max_depth = ISOLA__MAX_DEPTH_DEFAULT,
	};
	int r = ISOLA_EINVAL;
	isola__state *st = isola__state_current();
	PyObject *obj = st ? isola__decode_bytes(st, data, len, &plain) : NULL;
	if (obj != NULL) {
		r = isola__freeze_image(st, obj, &f->image);
		f->offset = 0;
		Py_DECREF(obj);
	} else if (st == NULL) {
		r = ISOLA_EPYTHON;
	}
	PyErr_Clear();
	PyGILState_Release(g);
	if (r != 0) {
		isola__free(f);
		return r;
	}
	*out = f;
	return 0;
}
