/*
 * procframe.h - the frames a process worker's proxy and its child
 * exchange through their procring (internal; both ends are this build of
 * isola, started from the same executable, so the layout is native).
 *
 * Request (proxy -> child): struct proc_req, the target (target_len
 * bytes), then n argument messages, each a uint64_t length and that many
 * bytes (the pool's wire format, without references), then n_inputs
 * inputs (task graphs: results of other tasks, spliced into a CALL's
 * arguments by the child), each a struct proc_input followed by its
 * keyword, error type, error message and value (the input's encoded
 * result or exception, without references).
 * Reply (child -> proxy): struct proc_rep, result_len bytes of result
 * (the encoded value, or the encoded exception), then the error's type,
 * message and traceback texts (lengths in the header, no NULs).  The
 * child's first reply, id 0, says whether its setup (preload, init,
 * initializer) worked.
 */
#ifndef ISOLA_SCHEDULER_PROCFRAME_H
#define ISOLA_SCHEDULER_PROCFRAME_H

#include <stdint.h>

struct proc_req {
	uint32_t kind;  /* enum isola__proclane_kind */
	uint32_t flags; /* PROC_ALLOW_PICKLE */
	uint64_t id;    /* the task's number (never 0); the interrupt word names it */
	uint64_t first; /* CHUNK: index of the first argument set in the map */
	uint32_t target_len;
	uint32_t n;     /* argument messages that follow */
	uint32_t n_inputs; /* CALL: inputs after the arguments (task graphs) */
	uint32_t reserved;
};

/* One input of a task graph (isola__job_input's fields). */
struct proc_input {
	int32_t status;       /* 0, or the input's ISOLA_E* outcome */
	int32_t position;     /* >= 0: positional index (keyword_len == 0) */
	uint32_t flags;       /* PROC_INPUT_* */
	uint32_t keyword_len; /* > 0: a keyword argument instead */
	uint32_t type_len, msg_len; /* status != 0 (or UNSENDABLE): its error */
	uint64_t value_len;
};

struct proc_rep {
	int32_t status; /* 0, or ISOLA_E* (EPYTHON, ENOTFOUND, ECANCELED) */
	uint32_t type_len, msg_len, tb_len;
	uint64_t id;        /* the request's, 0 for the setup reply */
	uint64_t failed_at; /* CHUNK: the call that raised, or UINT64_MAX */
	uint64_t result_len;
};

enum { PROC_ALLOW_PICKLE = 1 };

/* The input's result holds what another process cannot take (a
 * channel): the task fails with TypeError naming the argument (msg
 * says why); there is no value. */
enum { PROC_INPUT_UNSENDABLE = 1 };

/* The region's fd number in the child. */
#define PROC_CHILD_FD 3

#endif
