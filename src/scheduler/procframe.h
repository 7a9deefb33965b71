/*
 * procframe.h - the frames a process worker's proxy and its child
 * exchange through their procring (internal; both ends are this build of
 * isola, started from the same executable, so the layout is native).
 *
 * Request (proxy -> child): struct proc_req, the target (target_len
 * bytes), nforget mirror ids (uint64_t: mirrors this process freed, which
 * the child's cache lets go of), then n argument messages (the pool's wire format), each a
 * struct proc_set, its nrefs references (struct proc_ref: the blobs the
 * message attached, in order), the bytes of those sent inline, then the
 * message's len bytes.  A reference names a mirror (blobshm.h: a sealed
 * memfd the child maps) or, mirror 0, travels inline.  The memfds of a
 * request's mirrors (nfds of them, each once) go on the child's socket
 * (PROC_CHILD_SOCK) before the request goes on the ring, in datagrams
 * tagged with the request's id (isola__fds_send).  Then n_inputs inputs
 * (task graphs: results of other tasks, spliced into a CALL's arguments
 * by the child), each a struct proc_input followed by its keyword, error
 * type, error message and value (the input's encoded result or
 * exception, made plain: without references).
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
	uint32_t nfds;  /* memfds on the socket for this request */
	uint32_t nforget;
	uint32_t n_inputs; /* CALL: inputs after the arguments (task graphs) */
	uint32_t reserved;
};

struct proc_set {
	uint64_t len;   /* the message's bytes */
	uint32_t nrefs; /* struct proc_ref that follow */
	uint32_t pad;
};

struct proc_ref {
	uint64_t mirror; /* the mirror's id; 0: the bytes follow inline */
	uint64_t len;
	uint32_t keep;   /* sent more than once: the child's cache may keep it */
	uint32_t pad;
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

enum { PROC_ALLOW_PICKLE = 1, PROC_FORGET_ALL = 2 /* more freed than nforget can say */ };

/* The input's result holds what another process cannot take (a
 * channel): the task fails with TypeError naming the argument (msg
 * says why); there is no value. */
enum { PROC_INPUT_UNSENDABLE = 1 };

/* The region's fd number in the child, and its end of the socket the
 * parent passes memfds on (a SOCK_SEQPACKET unix socket). */
#define PROC_CHILD_FD 3
#define PROC_CHILD_SOCK 4

#endif
