/*
 * codec.h - Python objects to msgpack and back (the wire format is in
 * docs/wire.md).  Encoding runs in the sending interpreter and decoding
 * in the receiving one, each with its own GIL held; nothing else ever
 * sees a PyObject.
 */
#ifndef ISOLA_INTERP_CODEC_H
#define ISOLA_INTERP_CODEC_H

#include "interp/codec_opts.h"
#include "interp/state.h"


/* Encode obj into out (overwritten), attaching blob/channel references.
 * 0, or a negative ISOLA_E* code with a Python exception set: ETYPE
 * (TypeError: cannot travel, naming its type and path), ETOOBIG / EINVAL
 * (ValueError: size limit / nesting or self-reference), ENOMEM, EPYTHON
 * (whatever Python code it ran raised).  out is left empty on failure. */
int isola__encode(isola__state *st, PyObject *obj, const isola__codec_opts *o,
		  isola_msg *out);

/* The n objects items[0..n) as one msgpack array (a call's positional
 * arguments, without a list object; paths name them "args[i]").  As
 * isola__encode otherwise.  The items are borrowed: encoding may run
 * Python code, so the caller keeps them alive. */
int isola__encode_items(isola__state *st, PyObject *const *items, size_t n,
			const isola__codec_opts *o, isola_msg *out);

/* Decode a message into new objects of the calling interpreter.  NULL
 * with ValueError (naming the offset and the problem) on bad input. */
PyObject *isola__decode(isola__state *st, const isola_msg *msg,
			const isola__codec_opts *o);

/* Decode bare bytes (no references available). */
PyObject *isola__decode_bytes(isola__state *st, const void *data, size_t len,
			      const isola__codec_opts *o);

/* Encode to a bytes object (no references: what dumps() returns). */
PyObject *isola__encode_bytes(isola__state *st, PyObject *obj,
			      const isola__codec_opts *o);

/* Import datetime / pickle into the state on first use (GIL held). */
int isola__ensure_datetime(isola__state *st);
int isola__ensure_pickle(isola__state *st);

#endif
