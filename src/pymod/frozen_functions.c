/*
 * frozen_functions.c - the module's isola.freeze / thaw / publish /
 * lookup / unpublish (interp/frozen.h has the design of frozen values).
 */
#include "interp/frozen.h"

#include "channels/blob.h"
#include "interp/codec.h"
#include "pymod/module.h"

/* obj as an image and an offset in it (a new reference to the image):
 * a whole view is its own image, anything else is frozen now. */
static int image_of(isola__state *st, PyObject *obj, isola_frozen *out)
{
	if (isola__is_frozen_view(st, obj) && isola__frozen_whole((isola__frozen_obj *)obj)) {
		size_t offset;
		out->image = isola__frozen_blob((isola__frozen_obj *)obj, &offset);
		if (offset > UINT32_MAX) { /* deep inside an image past 4 GiB */
			PyErr_SetString(PyExc_ValueError, "frozen value too deep in its image");
			return -1;
		}
		isola_blob_retain(out->image);
		out->offset = (uint32_t)offset;
		return 0;
	}
	out->offset = 0;
	return isola__freeze_image(st, obj, &out->image) == 0 ? 0 : -1;
}

PyObject *isola__py_freeze(PyObject *m, PyObject *obj)
{
	isola__state *st = PyModule_GetState(m);
	if (isola__is_frozen_view(st, obj))
		return Py_NewRef(obj);
	isola_frozen f;
	if (image_of(st, obj, &f) < 0)
		return NULL;
	PyObject *r = isola__frozen_at(st, f.image, f.offset);
	isola_blob_release(f.image); /* the views hold their own */
	return r;
}

PyObject *isola__py_thaw(PyObject *m, PyObject *obj)
{
	return isola__thaw(PyModule_GetState(m), obj);
}

static const char *name_of(PyObject *name)
{
	if (!PyUnicode_Check(name)) {
		PyErr_Format(PyExc_TypeError, "a frozen value's name is a str, not %s",
			     Py_TYPE(name)->tp_name);
		return NULL;
	}
	return PyUnicode_AsUTF8(name);
}

PyObject *isola__py_publish(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
	if (nargs != 2)
		return PyErr_Format(PyExc_TypeError, "publish(name, value) takes 2 arguments");
	isola__state *st = PyModule_GetState(m);
	const char *name = name_of(args[0]);
	isola_frozen f;
	if (name == NULL || image_of(st, args[1], &f) < 0)
		return NULL;
	int r = isola_frozen_publish(name, &f);
	PyObject *value = r == 0 ? isola__frozen_at(st, f.image, f.offset) : NULL;
	isola_blob_release(f.image);
	return r == 0 ? value : isola__raise(st, r, ISOLA__FOR_OTHER, "publish");
}

PyObject *isola__py_lookup(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
	if (nargs < 1 || nargs > 2)
		return PyErr_Format(PyExc_TypeError, "lookup(name[, default]) takes 1 or 2 arguments");
	isola__state *st = PyModule_GetState(m);
	const char *name = name_of(args[0]);
	if (name == NULL)
		return NULL;
	isola_frozen *f;
	int r = isola_frozen_lookup(name, &f);
	if (r == ISOLA_ENOTFOUND) {
		if (nargs == 2)
			return Py_NewRef(args[1]);
		PyErr_Format(PyExc_KeyError, "no frozen value is published as %R", args[0]);
		return NULL;
	}
	if (r != 0)
		return isola__raise(st, r, ISOLA__FOR_OTHER, "lookup");
	PyObject *value = isola__frozen_at(st, f->image, f->offset);
	isola_frozen_release(f);
	return value;
}

PyObject *isola__py_unpublish(PyObject *m, PyObject *name)
{
	const char *s = name_of(name);
	if (s == NULL)
		return NULL;
	int r = isola_frozen_unpublish(s);
	if (r == ISOLA_ENOTFOUND) {
		PyErr_Format(PyExc_KeyError, "no frozen value is published as %R", name);
		return NULL;
	}
	if (r != 0)
		return isola__raise(PyModule_GetState(m), r, ISOLA__FOR_OTHER, "unpublish");
	Py_RETURN_NONE;
}

