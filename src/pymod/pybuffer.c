/*
 * pybuffer.c - isola.Buffer: a read-only, zero-copy view of a blob.
 *
 * What large bytes-like values and isola.share()d data arrive as.  It
 * supports the buffer protocol (memoryview(b), bytes(b), numpy-free
 * slicing through memoryview), len(), == with any bytes-like object, and
 * keeps its blob alive as long as it or any view of it lives.  Sending
 * a Buffer sends the same blob again, without copying.
 */
#include "pymod/pychannel.h"

#include <string.h>

static void buf_dealloc(PyObject *self)
{
	PyTypeObject *tp = Py_TYPE(self);
	isola_blob_release(((isola__buffer_obj *)self)->blob);
	tp->tp_free(self);
	Py_DECREF(tp);
}

static int buf_getbuffer(PyObject *self, Py_buffer *view, int flags)
{
	isola__buffer_obj *b = (isola__buffer_obj *)self;
	return PyBuffer_FillInfo(view, self, (void *)b->data, b->len, 1, flags);
}

static Py_ssize_t buf_len(PyObject *self)
{
	return ((isola__buffer_obj *)self)->len;
}

/* buf[i] -> int, buf[a:b:c] -> bytes (a copy, as for bytes). */
static PyObject *buf_subscript(PyObject *self, PyObject *key)
{
	isola__buffer_obj *b = (isola__buffer_obj *)self;
	const unsigned char *data = b->data;
	if (PyIndex_Check(key)) {
		Py_ssize_t i = PyNumber_AsSsize_t(key, PyExc_IndexError);
		if (i == -1 && PyErr_Occurred())
			return NULL;
		if (i < 0)
			i += b->len;
		if (i < 0 || i >= b->len) {
			PyErr_SetString(PyExc_IndexError, "Buffer index out of range");
			return NULL;
		}
		return PyLong_FromLong(data[i]);
	}
	if (PySlice_Check(key)) {
		Py_ssize_t start, stop, step;
		if (PySlice_Unpack(key, &start, &stop, &step) < 0)
			return NULL;
		Py_ssize_t n = PySlice_AdjustIndices(b->len, &start, &stop, step);
		if (step == 1)
			return PyBytes_FromStringAndSize((const char *)data + start, n);
		PyObject *r = PyBytes_FromStringAndSize(NULL, n);
		if (r == NULL)
			return NULL;
		char *out = PyBytes_AS_STRING(r);
		for (Py_ssize_t k = 0, i = start; k < n; k++, i += step)
			out[k] = (char)data[i];
		return r;
	}
	return PyErr_Format(PyExc_TypeError, "Buffer indices must be integers or slices, not %s",
			    Py_TYPE(key)->tp_name);
}

static PyObject *buf_item(PyObject *self, Py_ssize_t i)
{
	isola__buffer_obj *b = (isola__buffer_obj *)self;
	if (i < 0 || i >= b->len) {
		PyErr_SetString(PyExc_IndexError, "Buffer index out of range");
		return NULL;
	}
	return PyLong_FromLong(((const unsigned char *)b->data)[i]);
}

static PyObject *buf_tobytes(PyObject *self, PyObject *unused)
{
	(void)unused;
	isola__buffer_obj *b = (isola__buffer_obj *)self;
	return PyBytes_FromStringAndSize(b->data, b->len);
}

static PyObject *buf_repr(PyObject *self)
{
	return PyUnicode_FromFormat("<isola.Buffer %zd bytes>", ((isola__buffer_obj *)self)->len);
}

static PyObject *buf_richcompare(PyObject *a, PyObject *other, int op)
{
	if ((op != Py_EQ && op != Py_NE) || !PyObject_CheckBuffer(other))
		Py_RETURN_NOTIMPLEMENTED;
	Py_buffer v;
	if (PyObject_GetBuffer(other, &v, PyBUF_SIMPLE) < 0) {
		PyErr_Clear();
		Py_RETURN_NOTIMPLEMENTED;
	}
	isola__buffer_obj *b = (isola__buffer_obj *)a;
	int eq = v.len == b->len && memcmp(v.buf, b->data, (size_t)b->len) == 0;
	PyBuffer_Release(&v);
	return PyBool_FromLong(op == Py_EQ ? eq : !eq);
}

static PyMethodDef buf_methods[] = {
	{ "tobytes", buf_tobytes, METH_NOARGS,
	  "tobytes()\n--\n\nA bytes copy of the data." },
	{ NULL, NULL, 0, NULL },
};

static PyType_Slot buf_slots[] = {
	{ Py_tp_doc, "A read-only, zero-copy view of shared bytes (see isola.share).  "
		     "Supports the buffer protocol: memoryview(buf), bytes(buf)." },
	{ Py_tp_dealloc, buf_dealloc },
	{ Py_tp_methods, buf_methods },
	{ Py_tp_repr, buf_repr },
	{ Py_tp_richcompare, buf_richcompare },
	{ Py_bf_getbuffer, buf_getbuffer },
	{ Py_sq_length, buf_len },
	{ Py_sq_item, buf_item },
	{ Py_mp_length, buf_len },
	{ Py_mp_subscript, buf_subscript },
	{ 0, NULL },
};

PyType_Spec isola__buffer_spec = {
	.name = "isola.Buffer",
	.basicsize = sizeof(isola__buffer_obj),
	.flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
	.slots = buf_slots,
};
