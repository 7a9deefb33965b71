/*
 * proclane.h - the process lane: process workers for code that
 * sub-interpreters refuse (internal; Python-free).
 *
 * A lane owns N process workers.  Each is a thread of this process (its
 * proxy) and a child process it started with posix_spawn (never fork:
 * the parent has threads) from the executable and argv the binding
 * gives, with the memfd of a procring region as file descriptor 3.  The
 * proxy takes the next task from the lane's queue, writes it to the
 * child's ring (the task's own encoded arguments: the wire format is the
 * pool's), waits for the reply and completes the task's isola_future
 * with it.  The child runs the target in its main interpreter
 * (pymod/pyproc.c) with the same call routine as an interpreter worker.
 *
 * Failures stay with one task: a child that dies (a signal, an exit)
 * fails the task it ran with ISOLA_ECRASHED and a message naming the
 * signal or status; the proxy reaps it (waitpid) and starts another.
 * Interrupts (a cancel of a running task, its timeout, a shutdown) write
 * the task's number to the region's shared word and send SIGINT: the
 * child raises isola.Cancelled in the task; a task still running
 * grace_ns later is killed (SIGKILL) and its child replaced.  Children
 * die with the proxy thread that started them (PR_SET_PDEATHSIG, set by
 * the child, plus its getppid() check), so none outlives the lane or the
 * parent process.
 *
 * Thread rules: submit, cancel (through the future), stats and shutdown
 * from any thread; destroy once, after a shutdown that joined.
 */
#ifndef ISOLA_SCHEDULER_PROCLANE_H
#define ISOLA_SCHEDULER_PROCLANE_H

#include "isola.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct isola__proclane isola__proclane;

typedef struct isola__proclane_options {
	int workers;             /* child processes, >= 1 */
	const char *exe;         /* the executable to start (sys.executable) */
	const char *const *argv; /* its argv, NULL-terminated; the lane appends
				  * the region's fd number and the parent's pid */
	const char *const *envp; /* its environment, NULL-terminated */
	int64_t grace_ns;        /* interrupted -> killed after this long */
	size_t ring_bytes;       /* per direction; 0: 1 MiB */
	size_t mirror_min;       /* blobs of at least this many bytes reach a child
				  * as a mapped memfd (blobshm.h), smaller ones
				  * inline; 0: ISOLA__MIRROR_MIN_DEFAULT */
} isola__proclane_options;

#define ISOLA__MIRROR_MIN_DEFAULT ((size_t)256 * 1024)

/* Start the lane: its proxies start their children in the background.
 * Options are copied.  0, ISOLA_EINVAL, ISOLA_ENOMEM, ISOLA_ESYS. */
int isola__proclane_create(const isola__proclane_options *o, isola__proclane **out);

/* Wait until every child is ready (its setup ran) or one failed: 0, or
 * ISOLA_EPYTHON with *why (malloc'd, the caller frees it) saying why,
 * or ISOLA_ETIMEDOUT. */
int isola__proclane_wait_ready(isola__proclane *l, int64_t timeout_ns, char **why);

enum isola__proclane_kind { ISOLA__PROC_CALL = 1, ISOLA__PROC_CHUNK = 2 };

/* Queue a task: target(*args) (CALL), or target over argsets[0..n)
 * (CHUNK; first: the index of argsets[0] in the whole map).  The
 * messages are taken on success (left to the caller on failure); their
 * references may be blobs only (channels and frozen images are this
 * process's memory: ISOLA_ETYPE).  A blob of at least mirror_min bytes
 * gets its mirror here, in the caller's thread (one copy, once per blob:
 * see blobshm.h); each request passes the child its memfd and the child
 * maps it; smaller blobs, and any that cannot have a mirror, are copied
 * into the request.  *out: a new future (the caller releases it).
 * timeout_ns > 0: interrupted past it (ISOLA_ETIMEDOUT).  flags: 1 =
 * allow the pickle fallback.  0, or ISOLA_ECLOSED (shut down),
 * ISOLA_ETYPE, ISOLA_ENOMEM. */
int isola__proclane_submit(isola__proclane *l, int kind, const char *target, isola_msg *args,
			   isola_msg *argsets, size_t n, size_t first, int64_t timeout_ns,
			   int flags, isola_future **out);

/* Task graphs: a CALL of target that waits, inside the lane, until
 * in[0 .. n) are done (futures of this lane or of the interpreter pool
 * beside it: isola_input as for isola_pool_submit_after), then runs in a
 * process worker, which gets the inputs' encoded results (without
 * references: blobs inlined as bytes, frozen values as their plain
 * content; a result holding a channel fails the task with TypeError)
 * and splices them into the arguments as an interpreter worker does
 * (isola.InputFailed when an input failed, was cancelled or timed out).
 * No caller thread waits and the caller decodes nothing.  A cancel of
 * the future before it ran cancels it; shutdown with CANCEL cancels the
 * waiting tasks, without CANCEL they run (the queue closes once none
 * waits).  At most ISOLA_MAX_WAITING wait at once: past that, with wait
 * the call waits for room, else ISOLA_EAGAIN.  n == 0: a plain submit.
 * 0, or ISOLA_EINVAL, ISOLA_ECLOSED, ISOLA_ETYPE (args hold references),
 * ISOLA_EAGAIN, ISOLA_ENOMEM; args are taken on success only. */
int isola__proclane_submit_after(isola__proclane *l, const char *target, isola_msg *args,
				 const isola_input *in, size_t n, int64_t timeout_ns, int flags,
				 bool wait, isola_future **out);

/* What the lane's futures reach it through (the interpreter pool takes
 * them as inputs: isola__pool_accept_link). */
struct isola__pool_link *isola__proclane_link(isola__proclane *l);

/* One process worker's figures. */
typedef struct isola__proc_stats {
	int pid;             /* 0 while none runs */
	uint64_t tasks_run;
	uint64_t crashes;    /* children that died under a task or at start */
	uint64_t starts;     /* children started (1 + replacements) */
	char running[ISOLA_RUNNING_NAME_MAX]; /* "" when idle */
	uint64_t blobs_mapped; /* blob references sent as a memfd to map */
	uint64_t blobs_copied; /* ... and copied into the request */
} isola__proc_stats;

/* Size of the lane, and worker i's figures (i < size). */
int isola__proclane_size(isola__proclane *l);
void isola__proclane_stats(isola__proclane *l, int i, isola__proc_stats *out);
/* Tasks queued and not yet taken; tasks waiting for inputs. */
size_t isola__proclane_queued(isola__proclane *l);
size_t isola__proclane_waiting(isola__proclane *l);

/* Stop taking work (how: ISOLA_SHUTDOWN_* bits: CANCEL cancels what is
 * queued, INTERRUPT interrupts what runs), then, with wait, join the
 * proxies for up to timeout_ns (< 0: forever): 0 when joined, else
 * ISOLA_ETIMEDOUT (call again, e.g. with INTERRUPT).  A joined lane has
 * no child left (every one exited or was killed, and was reaped). */
int isola__proclane_shutdown(isola__proclane *l, int how, int wait, int64_t timeout_ns);

/* Free a lane that shutdown joined (NULL is fine). */
void isola__proclane_destroy(isola__proclane *l);

#endif
