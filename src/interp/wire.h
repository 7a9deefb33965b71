/*
 * wire.h - isola's msgpack ext type numbers (docs/wire.md has the
 * layouts).  Changing a number breaks the wire format.
 */
#ifndef ISOLA_INTERP_WIRE_H
#define ISOLA_INTERP_WIRE_H

enum isola_ext_type {
	ISOLA_EXT_TIMESTAMP = -1,      /* msgpack's own: UTC datetime */
	ISOLA_EXT_TUPLE = 1,           /* payload: a msgpack array */
	ISOLA_EXT_SET = 2,             /* payload: a msgpack array */
	ISOLA_EXT_FROZENSET = 3,       /* payload: a msgpack array */
	ISOLA_EXT_BIGINT = 4,          /* big-endian two's complement */
	ISOLA_EXT_COMPLEX = 5,         /* 2 big-endian float64 */
	ISOLA_EXT_BYTEARRAY = 6,       /* raw bytes */
	ISOLA_EXT_DATETIME = 7,        /* array, see docs/wire.md */
	ISOLA_EXT_DATE = 8,            /* [year, month, day] */
	ISOLA_EXT_TIME = 9,            /* array, see docs/wire.md */
	ISOLA_EXT_TIMEDELTA = 10,      /* [days, seconds, microseconds] */
	ISOLA_EXT_EXCEPTION = 11,      /* [module, qualname, args, message, traceback] */
	ISOLA_EXT_BLOB = 12,           /* 1 byte: index of an attached blob */
	ISOLA_EXT_CHANNEL = 13,        /* 1 byte: index of an attached channel */
	ISOLA_EXT_PICKLE = 14,         /* pickle protocol 5 bytes */
	ISOLA_EXT_STR_SURROGATES = 15, /* UTF-8 with lone surrogates (surrogatepass) */
	/* Frozen images (isola.freeze, process-local; docs/wire.md): */
	ISOLA_EXT_FROZEN_MAP = 16,     /* only inside an image: indexed mapping */
	ISOLA_EXT_FROZEN_SEQ = 17,     /* only inside an image: offset table */
	ISOLA_EXT_FROZEN_REF = 18,     /* 1 byte ref index + 4 byte BE offset */
};

#endif
