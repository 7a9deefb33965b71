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

/* A name's UTF-8 bytes and their count (*len), or NULL with TypeError
 * (not a str) or ValueError (a NUL inside: a C name would end there). */
static const char *name_of(PyObject *name, Py_ssize_t *len)
{
	if (!PyUnicode_Check(name)) {
		PyErr_Format(PyExc_TypeError, "a frozen value's name is a str, not %s",
			     Py_TYPE(name)->tp_name);
		return NULL;
	}
	const char *s = PyUnicode_AsUTF8AndSize(name, len);
	if (s != NULL && memchr(s, '\0', (size_t)*len) != NULL) {
		PyErr_Format(PyExc_ValueError, "a frozen value's name cannot contain a NUL byte: %R",
			     name);
		return NULL;
	}
	return s;
}

PyObject *isola__py_publish(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
	if (nargs != 2)
		return PyErr_Format(PyExc_TypeError, "publish(name, value) takes 2 arguments");
	isola__state *st = PyModule_GetState(m);
	Py_ssize_t len;
	const char *name = name_of(args[0], &len);
	isola_frozen f;
	if (name == NULL || image_of(st, args[1], &f) < 0)
		return NULL;
	int r = isola__frozen_publish_n(name, (size_t)len, &f);
	PyObject *value = r == 0 ? isola__frozen_at(st, f.image, f.offset) : NULL;
	isola_blob_release(f.image);
	return r == 0 ? value : isola__raise(st, r, ISOLA__FOR_OTHER, "publish");
}

PyObject *isola__py_lookup(PyObject *m, PyObject *const *args, Py_ssize_t nargs)
{
	if (nargs < 1 || nargs > 2)
		return PyErr_Format(PyExc_TypeError, "lookup(name[, default]) takes 1 or 2 arguments");
	isola__state *st = PyModule_GetState(m);
	Py_ssize_t len;
	const char *name = name_of(args[0], &len);
	if (name == NULL)
		return NULL;
	isola_frozen *f;
	int r = isola__frozen_lookup_n(name, (size_t)len, &f);
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
	Py_ssize_t len;
	const char *s = name_of(name, &len);
	if (s == NULL)
		return NULL;
	int r = isola__frozen_unpublish_n(s, (size_t)len);
	if (r == ISOLA_ENOTFOUND) {
		PyErr_Format(PyExc_KeyError, "no frozen value is published as %R", name);
		return NULL;
	}
	if (r != 0)
		return isola__raise(PyModule_GetState(m), r, ISOLA__FOR_OTHER, "unpublish");
	Py_RETURN_NONE;
}

