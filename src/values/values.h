/*
 * values.h - what interp needs of the writer and reader beyond the
 * public API: a writer's state after someone else wrote into it (a host
 * function), and a reader reused for message after message (one per
 * thread on the host-call path, so a call allocates nothing here).
 */
#ifndef ISOLA_VALUES_VALUES_H
#define ISOLA_VALUES_VALUES_H

#include "isola.h"

enum isola__writer_state {
	ISOLA__WRITER_EMPTY,    /* nothing written */
	ISOLA__WRITER_OPEN,     /* a container is short of items */
	ISOLA__WRITER_DONE,     /* one complete value */
	ISOLA__WRITER_OVERFULL, /* one value, and a write of a second was refused */
	ISOLA__WRITER_FAILED,   /* a write ran out of memory */
};

/* w's state (enum isola__writer_state); w not NULL. */
int isola__writer_state(const isola_writer *w);

/* Drop whatever w holds (as isola_writer_finish would leave it, without
 * producing a message): the writer is empty and reusable. */
void isola__writer_reset(isola_writer *w);

/* Read msg with r, which drops what it read before but keeps its
 * memory.  Results as isola_reader_create; on failure r is empty and
 * still reusable. */
int isola__reader_reload(isola_reader *r, const isola_msg *msg, const isola_value **root);

/* msg written again without references (plain.c), into out (initialised
 * here): each blob reference as a bin of the blob's bytes, each frozen
 * reference as the plain value it reads as (arrays and maps); a message
 * without references is copied as it is.  0, ISOLA_ETYPE (it holds a
 * channel, which has no plain form), ISOLA_EDECODE (malformed),
 * ISOLA_ENOMEM, ISOLA_ETOOBIG; out is empty on failure.  Python-free:
 * what a process worker gets of a result made in this process. */
int isola__msg_plain(const isola_msg *in, isola_msg *out);

#endif
