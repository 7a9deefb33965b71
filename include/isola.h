/*
 * isola.h - the one public header of isola.
 *
 * isola hosts one CPython sub-interpreter per OS thread and connects them
 * with lock-free channels carrying msgpack messages and shared immutable
 * blobs.  Anything not declared here is internal.
 *
 * Conventions (they hold for every function below unless it says
 * otherwise):
 *   - Every function returns an int status: 0 on success or a negative
 *     ISOLA_E* code; isola_strerror() turns it into a message.
 *   - Destroy/release functions accept NULL and then do nothing.
 *   - A function that fails leaves its output arguments and everything
 *     the caller owns unchanged, and runs no callback.
 *   - Thread rules are stated per section; "any thread" means the call
 *     may race with any other call on the same object.
 *   - Pointer handles (isola_pool, isola_future, isola_channel,
 *     isola_blob, isola_interp) must not be used after they were
 *     destroyed or their last reference released: that is undefined
 *     behaviour, as with free().  Debug builds (-Dbuildtype=debug) check
 *     a tag in each pool and future and abort with a message on such a
 *     use where the memory still holds it; release builds do not check.
 *     Actors, which can die while handles to them remain, are ids passed
 *     by value: a stale one gives ISOLA_ECLOSED.
 */
#ifndef ISOLA_H
#define ISOLA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ISOLA_VERSION_MAJOR 0
#define ISOLA_VERSION_MINOR 1
#define ISOLA_VERSION_PATCH 0

/* ------------------------------------------------------------------ */
/* Errors                                                              */
/* ------------------------------------------------------------------ */

/* X(name, value, message): the single list every error view is made from. */
#define ISOLA_ERRNO_MAP(X)                                                    \
	X(EINVAL, -1, "invalid argument")                                     \
	X(ENOMEM, -2, "out of memory")                                        \
	X(EAGAIN, -3, "would block (channel full or empty)")                  \
	X(ETIMEDOUT, -4, "timed out")                                         \
	X(ECLOSED, -5, "closed")                                              \
	X(ETOOBIG, -6, "message or value too large")                          \
	X(EDECODE, -7, "malformed message")                                   \
	X(ETYPE, -8, "object cannot be transferred")                          \
	X(EPYTHON, -9, "Python raised an exception")                          \
	X(ECANCELED, -10, "cancelled")                                        \
	X(EINTR, -11, "interrupted by a signal")                              \
	X(ESTATE, -12, "not allowed in the current state")                    \
	X(ESYS, -13, "operating system call failed")                          \
	X(ENOTFOUND, -14, "not found")                                        \
	X(ELIMIT, -15, "limit exceeded")                                      \
	X(EEXIST, -16, "already exists")                                      \
	X(ECRASHED, -17, "a worker process died")

enum isola_errno {
	ISOLA_OK = 0,
#define ISOLA__ERR_ENUM(name, value, msg) ISOLA_##name = (value),
	ISOLA_ERRNO_MAP(ISOLA__ERR_ENUM)
#undef ISOLA__ERR_ENUM
};

/* A static English message for code; "unknown error" for other values.
 * Any thread.  (Returns a string, the one exception to the int rule.) */
const char *isola_strerror(int code);

/* The code's symbolic name ("ISOLA_ECLOSED"), or "ISOLA_UNKNOWN". */
const char *isola_err_name(int code);

/* ------------------------------------------------------------------ */
/* Blobs: immutable bytes shared between threads without copying        */
/* ------------------------------------------------------------------ */

/*
 * A blob is an immutable byte range with an atomic reference count.  The
 * thread that drops the last reference frees it.  Blobs are how large
 * data and shared immutable objects cross interpreters with zero copies.
 * All blob functions: any thread.
 */
typedef struct isola_blob isola_blob;

/* Called once, by the thread dropping the last reference, to free data. */
typedef void (*isola_blob_free_fn)(void *ctx, void *data, size_t len);

/* Copy len bytes of data into a new blob (one allocation).  On success
 * *out holds the only reference, owned by the caller; data stays the
 * caller's.  len may be 0.  Fails with EINVAL, ENOMEM. */
int isola_blob_create(const void *data, size_t len, isola_blob **out);

/* Wrap data without copying.  On success the blob owns data and will
 * call free_fn(ctx, data, len) when the last reference goes (free_fn may
 * be NULL: data then outlives the blob by the caller's promise).  On
 * failure data stays the caller's.  Fails with EINVAL, ENOMEM. */
int isola_blob_wrap(void *data, size_t len, isola_blob_free_fn free_fn,
		    void *ctx, isola_blob **out);

/* Take one more reference. */
int isola_blob_retain(isola_blob *blob);

/* Drop one reference; frees the blob when it was the last.  NULL is ok. */
int isola_blob_release(isola_blob *blob);

/* Borrow the bytes: valid while the caller holds a reference. */
int isola_blob_data(const isola_blob *blob, const void **data, size_t *len);

/* ------------------------------------------------------------------ */
/* Messages                                                            */
/* ------------------------------------------------------------------ */

typedef struct isola_channel isola_channel;

#define ISOLA_MSG_INLINE 48  /* payloads up to this size need no heap */
#define ISOLA_MSG_MAX_REFS 8 /* attached blob/channel references      */
#define ISOLA_MSG_MAX_LEN 0xFFFFFFFFu

enum isola_ref_kind { ISOLA_REF_BLOB = 0, ISOLA_REF_CHANNEL = 1 };

/*
 * A message: payload bytes (msgpack, opaque to the channel) plus up to
 * ISOLA_MSG_MAX_REFS attached references.  The struct is public so that
 * it can live on the stack; its fields are private: use the functions.
 * A message is owned by one thread at a time (not thread-safe); sending
 * it moves its contents into the channel.  Zero-initialised memory
 * (or isola_msg_init) is an empty message.
 */
typedef struct isola_msg {
	uint32_t len_;
	uint8_t nrefs_;
	uint8_t heap_; /* payload lives in u_.heap (malloc'd) */
	uint16_t reserved_;
	union {
		unsigned char inline_[ISOLA_MSG_INLINE];
		void *heap;
	} u_;
	uintptr_t refs_[ISOLA_MSG_MAX_REFS]; /* pointer | isola_ref_kind */
} isola_msg;

/* Make msg empty without freeing anything it held. */
int isola_msg_init(isola_msg *msg);

/* Free the payload and drop every attached reference; msg is empty
 * afterwards.  NULL is ok. */
int isola_msg_clear(isola_msg *msg);

/* Replace the payload with a copy of len bytes of data (inline when
 * len <= ISOLA_MSG_INLINE, else one malloc).  data stays the caller's.
 * Fails with EINVAL, ETOOBIG (len > ISOLA_MSG_MAX_LEN), ENOMEM; on
 * failure the old payload is kept. */
int isola_msg_set_bytes(isola_msg *msg, const void *data, size_t len);

/* Replace the payload with buf, taking ownership of it on success (it
 * must come from malloc/realloc; the message frees it).  On failure buf
 * stays the caller's.  Fails with EINVAL, ETOOBIG. */
int isola_msg_adopt(isola_msg *msg, void *buf, size_t len);

/* Borrow the payload: valid until msg is changed or cleared. */
int isola_msg_bytes(const isola_msg *msg, const void **data, size_t *len);

/* Attach a blob/channel: the message takes a new reference of its own
 * (the caller keeps theirs).  Fails with EINVAL, ELIMIT (already
 * ISOLA_MSG_MAX_REFS). */
int isola_msg_attach_blob(isola_msg *msg, isola_blob *blob);
int isola_msg_attach_channel(isola_msg *msg, isola_channel *ch);

/* Number of attached references. */
int isola_msg_ref_count(const isola_msg *msg, size_t *n);

/* Borrow reference i: *kind is an isola_ref_kind and *ptr an isola_blob*
 * or isola_channel*, valid while msg holds it (retain to keep it).
 * Fails with EINVAL (i out of range). */
int isola_msg_ref(const isola_msg *msg, size_t i, int *kind, void **ptr);

/* ------------------------------------------------------------------ */
/* Values: writing and reading messages without msgpack by hand        */
/* ------------------------------------------------------------------ */

/*
 * An isola_writer builds one value in isola's wire format (docs/wire.md)
 * into a message: call arguments (a list of the positional arguments, a
 * map of keyword arguments, or a tuple of [list, map]), or anything sent
 * on a channel.  Write a container's header with its item count, then
 * its items (a map: key, value, key, value...); it closes by itself
 * after the last.  A writer is used by one thread at a time and is
 * reusable after isola_writer_finish.
 *
 *   isola_writer *w; isola_writer_create(&w);
 *   isola_write_list(w, 2);           // (1071, 462) as positional arguments
 *   isola_write_int(w, 1071);
 *   isola_write_int(w, 462);
 *   isola_msg args; isola_msg_init(&args);
 *   isola_writer_finish(w, &args);    // args holds the bytes (and references)
 *
 * Write calls fail with EINVAL (NULL data with a length), ESTATE (the
 * value is already complete), ETOOBIG, ELIMIT (nesting past 512, a ninth
 * reference), ENOMEM; a failed call writes nothing.
 */
typedef struct isola_writer isola_writer;

#define ISOLA_STRLEN ((size_t)-1) /* isola_write_str: s is NUL-terminated */

int isola_writer_create(isola_writer **out);
void isola_writer_destroy(isola_writer *w); /* NULL is ok; drops what was written */

int isola_write_nil(isola_writer *w);                 /* None */
int isola_write_bool(isola_writer *w, int value);     /* bool */
int isola_write_int(isola_writer *w, int64_t value);  /* int */
int isola_write_uint(isola_writer *w, uint64_t value); /* int */
int isola_write_float(isola_writer *w, double value); /* float */
int isola_write_str(isola_writer *w, const char *s, size_t len); /* str (UTF-8) */
int isola_write_bytes(isola_writer *w, const void *data, size_t len); /* bytes (copied) */
int isola_write_list(isola_writer *w, size_t n);  /* list: n items follow */
int isola_write_map(isola_writer *w, size_t n);   /* dict: n key/value pairs follow */
int isola_write_tuple(isola_writer *w, size_t n); /* tuple: n items follow */
/* A reference: the message takes a reference of its own (the caller
 * keeps theirs); arrives as isola.Buffer / isola.Channel. */
int isola_write_blob(isola_writer *w, isola_blob *blob);
int isola_write_channel(isola_writer *w, isola_channel *ch);
/* A frozen value (isola_frozen_*, below), by reference: O(1) whatever its
 * size; arrives as the frozen value itself (FrozenMap, FrozenSeq...). */
typedef struct isola_frozen isola_frozen;
int isola_write_frozen(isola_writer *w, const isola_frozen *value);

/* Move the finished value into *out (overwritten: pass an empty message)
 * and make the writer empty.  ESTATE while no value, or a container, is
 * incomplete; ENOMEM if a write ran out of memory. */
int isola_writer_finish(isola_writer *w, isola_msg *out);

/*
 * An isola_reader shows a message (a result, a received message) as a
 * tree of isola_value nodes, with the type names of docs/wire.md.
 * Everything it points to (strings, bytes, blobs, channels) is borrowed
 * from the message and the reader: valid until either is cleared or
 * destroyed (retain a blob or channel to keep it).
 */
enum isola_value_type {
	ISOLA_VALUE_NIL,
	ISOLA_VALUE_BOOL,      /* as.b */
	ISOLA_VALUE_INT,       /* as.i */
	ISOLA_VALUE_UINT,      /* as.u: above INT64_MAX */
	ISOLA_VALUE_FLOAT,     /* as.f */
	ISOLA_VALUE_STR,       /* as.bytes: UTF-8, not NUL-terminated */
	ISOLA_VALUE_BYTES,     /* as.bytes */
	ISOLA_VALUE_LIST,      /* as.seq: n items */
	ISOLA_VALUE_MAP,       /* as.seq: n pairs, items[2k] key, items[2k+1] value */
	ISOLA_VALUE_TUPLE,     /* as.seq */
	ISOLA_VALUE_SET,       /* as.seq */
	ISOLA_VALUE_FROZENSET, /* as.seq */
	ISOLA_VALUE_EXCEPTION, /* as.seq: [module, qualname, args, message, traceback, base, attrs] */
	ISOLA_VALUE_BIGINT,    /* as.bytes: ext 4's payload (docs/wire.md) */
	ISOLA_VALUE_BLOB,      /* as.blob */
	ISOLA_VALUE_CHANNEL,   /* as.channel */
	ISOLA_VALUE_EXT,       /* ext_type and its raw payload in as.bytes (datetime, ...) */
	ISOLA_VALUE_FROZEN,    /* as.frozen: a frozen value (isola_frozen_copy to keep it) */
};

typedef struct isola_value isola_value;
struct isola_value {
	int type;        /* enum isola_value_type */
	int8_t ext_type; /* BIGINT, EXT: the msgpack ext type */
	union {
		int b;
		int64_t i;
		uint64_t u;
		double f;
		struct {
			const char *ptr;
			size_t len;
		} bytes;
		struct {
			const isola_value *items;
			size_t n;
			size_t first_; /* private */
		} seq;
		isola_blob *blob;
		isola_channel *channel;
		const isola_frozen *frozen;
	} as;
};

typedef struct isola_reader isola_reader;

/* Read msg: *root is its value.  Fails with EINVAL (not a well-formed
 * message, a reference it does not carry), ELIMIT (nesting past 512),
 * ENOMEM. */
int isola_reader_create(const isola_msg *msg, isola_reader **out, const isola_value **root);
void isola_reader_destroy(isola_reader *r); /* NULL is ok */

/* ------------------------------------------------------------------ */
/* Channels                                                            */
/* ------------------------------------------------------------------ */

/*
 * A bounded multi-producer multi-consumer FIFO of messages, lock-free on
 * the fast path.  A channel is a refcounted handle: any thread may hold
 * one, and every function here may be called from any thread.  Messages
 * still queued when the last handle goes are freed with their references
 * (a message that holds a handle to its own channel keeps it alive: do
 * not build such cycles).
 *
 * Timeouts are in nanoseconds: 0 tries once, a negative value waits
 * forever.  Waiters spin briefly, then sleep; a blocked call never
 * holds a lock.
 */

#define ISOLA_CHANNEL_MAX_CAPACITY (1u << 30)
#define ISOLA_SELECT_MAX 64

/* Create a channel holding up to capacity messages (1 ..
 * ISOLA_CHANNEL_MAX_CAPACITY, rounded up to a power of two).  *out holds
 * the only handle.  Fails with EINVAL, ENOMEM. */
int isola_channel_create(size_t capacity, isola_channel **out);

/* Take / drop a handle.  release accepts NULL. */
int isola_channel_retain(isola_channel *ch);
int isola_channel_release(isola_channel *ch);

/*
 * Send msg.  On success the channel owns msg's contents and msg is left
 * empty.  On failure msg is unchanged and still the caller's.  Fails
 * with ECLOSED (closed, before or while waiting), EAGAIN (full and
 * timeout_ns == 0), ETIMEDOUT.
 */
int isola_channel_send(isola_channel *ch, isola_msg *msg, int64_t timeout_ns);

/*
 * Receive the oldest message into *out, which must be empty (it is
 * overwritten, not cleared); the caller owns it after success.  Fails
 * with ECLOSED (closed and drained), EAGAIN (empty and timeout_ns == 0),
 * ETIMEDOUT.
 */
int isola_channel_recv(isola_channel *ch, isola_msg *out, int64_t timeout_ns);

/* Close: later sends fail with ECLOSED; receivers drain what is queued,
 * then get ECLOSED; every blocked sender, receiver and select wakes at
 * once.  Closing twice is fine. */
int isola_channel_close(isola_channel *ch);

/*
 * Receive from whichever of chans[0..n) first has a message (n <=
 * ISOLA_SELECT_MAX; ready channels are tried from a rotating start so
 * none starves).  *index is the channel it came from.  Closed, drained
 * channels are skipped; fails with ECLOSED once all of them are closed
 * and drained, EAGAIN (nothing ready and timeout_ns == 0), ETIMEDOUT,
 * EINVAL.
 */
int isola_channel_select(isola_channel *const *chans, size_t n,
			 isola_msg *out, int64_t timeout_ns, size_t *index);

typedef struct isola_channel_stats {
	uint64_t capacity;
	uint64_t sent;       /* messages accepted by send */
	uint64_t received;   /* messages taken by recv/select */
	uint64_t depth;      /* queued now (sent - received) */
	uint64_t peak_depth; /* highest depth seen by a sender */
	uint64_t full_waits; /* times a sender waited because it was full */
	int closed;
} isola_channel_stats;

/* A consistent-enough snapshot of the counters (each read atomically). */
int isola_channel_stats_get(isola_channel *ch, isola_channel_stats *out);

/* ------------------------------------------------------------------ */
/* The Python runtime                                                  */
/* ------------------------------------------------------------------ */

typedef struct isola_init_options {
	const char *python_home;        /* NULL: the build's default */
	/* prepended to sys.path: of the main interpreter, and of every
	 * interpreter isola creates (pool workers included, after their own
	 * setup.sys_path) */
	const char *const *module_paths;
	size_t n_module_paths;
} isola_init_options;

/*
 * Start CPython for a C program that uses isola on its own (opts may be
 * NULL).  If Python is already running (isola imported from Python, or
 * an embedder that initialised it), attach to it instead; opts are then
 * ignored.  Call once, from the thread that will call isola_fini(); it
 * returns with no Python thread state attached on the calling thread.
 * Signals: no Python handlers are installed (Ctrl-C stays the program's);
 * only a SIGPIPE still at its default (terminate) is set to ignored, as
 * python3 does, so a worker writing to a closed pipe or socket gets
 * BrokenPipeError instead of killing the process.  Set SIGPIPE after
 * isola_init to choose otherwise.
 * Fails with ESTATE (called twice), EPYTHON (CPython failed to start).
 */
int isola_init(const isola_init_options *opts);

/* Finalise what isola_init started (nothing if it only attached).  Every
 * interpreter and pool must be destroyed first (else ESTATE).  From the
 * thread that called isola_init (else ESTATE: CPython must end where it
 * started). */
int isola_fini(void);

/* ------------------------------------------------------------------ */
/* Frozen values: one immutable copy read by every interpreter          */
/* ------------------------------------------------------------------ */

/*
 * A frozen value (isola.freeze in Python) is written once into an image,
 * an immutable blob that every interpreter reads in place: a dict
 * becomes a read-only mapping with a hash index, a list a sequence with
 * an offset table, and a reader decodes only what it reads, into its
 * own heap.  It travels (isola_write_frozen, channels, task arguments
 * and results) as a reference: the same cost for 1 KB and 1 GB.
 *
 * Lifetime: the image lives while anything holds it (an isola_frozen
 * handle, a message, a registry name, a FrozenMap/FrozenSeq in any
 * interpreter) and is freed by the last release.  Nothing read out of it
 * points into it, so nothing can outlive it.  Images hold Python's
 * string hashes: they are valid inside this process only.
 *
 * Handles are owned by the caller (release each one) and may be used
 * from any thread.
 */

/* Freeze the msgpack value data[0..len) (isola's wire format, as an
 * isola_writer writes it) into a new image.  Needs isola_init; call with
 * no Python thread state attached on this thread.  Fails with EINVAL
 * (not a value, or a type that cannot be frozen: channels, blobs),
 * ESTATE (no runtime), ENOMEM. */
int isola_frozen_from_msgpack(const void *data, size_t len, isola_frozen **out);

/* Drop the handle.  NULL is ok. */
int isola_frozen_release(isola_frozen *value);

/* A new handle on the same value (one read by an isola_reader, say). */
int isola_frozen_copy(const isola_frozen *value, isola_frozen **out);

/* The image's size in bytes. */
int isola_frozen_size(const isola_frozen *value, size_t *bytes);

/*
 * A process-wide registry by name (isola.publish / isola.lookup in
 * Python).  publish stores a reference of its own under name, replacing
 * what was there; unpublish drops it (ENOTFOUND if none); lookup gives a
 * new handle (ENOTFOUND).  Readers that looked a value up keep it after
 * it is unpublished or replaced.  isola_fini empties the registry.
 * A name is a NUL-terminated string (EINVAL for NULL); in Python a str
 * with a NUL inside is refused (ValueError), never cut at the NUL.
 */
int isola_frozen_publish(const char *name, const isola_frozen *value);
int isola_frozen_unpublish(const char *name);
int isola_frozen_lookup(const char *name, isola_frozen **out);

/* ------------------------------------------------------------------ */
/* Interpreters: one isolated sub-interpreter on the calling thread     */
/* ------------------------------------------------------------------ */

/*
 * An isola_interp is a CPython sub-interpreter with its own GIL and its
 * own object allocator (PEP 684), bound to the OS thread that created
 * it: every isola_interp_* call on it must come from that thread, and
 * that thread must not have another Python thread state attached.
 * Between calls its GIL is released.
 */
typedef struct isola_interp isola_interp;

typedef struct isola_interp_options {
	const char *const *sys_path; /* extra sys.path entries, prepended */
	size_t n_sys_path;
	const char *const *preload; /* modules imported at creation */
	size_t n_preload;
	const char *init_source; /* run once after the imports (may be NULL) */
} isola_interp_options;

/* Create an interpreter on the calling thread (opts may be NULL).  On
 * failure nothing is left behind; if the Python part of the setup raised
 * (a preload import, init_source), the error is ISOLA_EPYTHON and its
 * text is in *error_out when that is non-NULL (free() it).  Fails with
 * ESTATE (isola_init not called), ENOMEM, EPYTHON. */
int isola_interp_create(const isola_interp_options *opts, isola_interp **out,
			char **error_out);

/* Run source as a module body in the interpreter's __main__.  Fails
 * with EPYTHON (see isola_interp_error), EINVAL. */
int isola_interp_run(isola_interp *interp, const char *source);

/*
 * The last Python error of this interpreter, borrowed until the next
 * call on it: exception type name (module-qualified unless builtin), the
 * message (str of the exception), and the formatted traceback.  Fails
 * with ENOTFOUND when the last call succeeded.
 */
int isola_interp_error(const isola_interp *interp, const char **type,
		       const char **message, const char **traceback);

/*
 * Call target, "package.module:qualname" (imported on first use), with
 * the arguments in args: a msgpack array (positional), a map (keyword
 * arguments), or a tuple ext (docs/wire.md) of [array, map] for both, in
 * the wire format of docs/wire.md, whose attached blobs and
 * channels arrive as isola.Buffer and isola.Channel objects.  args may be
 * NULL for no arguments; it stays the caller's.  On success the return
 * value is encoded into *result (overwritten; the caller owns it and
 * clears it).  Fails with EINVAL, ENOTFOUND (no such module/attribute;
 * detail in isola_interp_error), EPYTHON (it raised, or the arguments or
 * result could not be converted: isola_interp_error).
 */
int isola_interp_call(isola_interp *interp, const char *target,
		      const isola_msg *args, isola_msg *result);

/*
 * The codec, for C code that runs inside an interpreter (an extension
 * function, or code between PyEval_RestoreThread/PyEval_SaveThread): the
 * calling thread must hold that interpreter's GIL.  pyobj is a PyObject*.
 *
 * isola_encode: encode pyobj (borrowed) into *out (overwritten; the
 * caller owns it on success, it is left empty on failure).  Fails with
 * ETYPE (cannot travel), ETOOBIG (size limit), EINVAL (nesting or
 * self-reference), ENOMEM, EPYTHON; a Python exception is then set, as
 * for any failing CPython call, naming the path and the problem.
 *
 * isola_decode: decode msg (borrowed) into a new reference in *pyobj.
 * Fails with EDECODE (malformed: the exception names the offset),
 * ENOMEM, EPYTHON; the Python exception is then set.
 */
int isola_encode(void *pyobj, isola_msg *out);
int isola_decode(const isola_msg *msg, void **pyobj);

/* Destroy the interpreter (same thread).  NULL is ok. */
int isola_interp_destroy(isola_interp *interp);

/* ------------------------------------------------------------------ */
/* Host functions: C functions every interpreter can call               */
/* ------------------------------------------------------------------ */

/*
 * A C program registers functions under a module name; every interpreter
 * isola creates afterwards (pool workers, isola_interp_create) can
 * `import module` and call them like Python functions:
 *
 *   static int add(void *ctx, const isola_value *args, size_t nargs,
 *                  isola_writer *result, isola_host_call *call)
 *   {
 *       if (args[0].type != ISOLA_VALUE_INT || args[1].type != ISOLA_VALUE_INT)
 *           return isola_host_error(call, ISOLA_ETYPE, "add() takes two ints");
 *       return isola_write_int(result, args[0].as.i + args[1].as.i);
 *   }
 *   isola_host_register("calc", "add", add, NULL, 2);   // before the pool
 *   ...  in a worker:  import calc; calc.add(1, 2) == 3
 *
 * The call: positional arguments only, converted by the codec (the same
 * types as a task's arguments: docs/wire.md) into args[0..nargs), which
 * are borrowed until fn returns (retain a blob, channel or frozen value
 * to keep it); a bytes argument of BLOB_THRESHOLD bytes or more, or an
 * isola.Buffer, arrives as ISOLA_VALUE_BLOB, zero-copy.  fn writes at
 * most one value into result (isola_write_*): nothing written returns
 * None; a blob written (isola_write_blob) arrives as isola.Buffer,
 * zero-copy.  fn returns 0, or a negative ISOLA_E* code that becomes a
 * Python exception (isola_host_error gives it a message).
 *
 * Threads: fn runs on the thread of the Python code that called it (a
 * pool worker), with that interpreter's GIL released, so a long or
 * blocking call does not stop the interpreter's other threads, nor the
 * watchdog that cancels its task (the cancel is raised once fn returns,
 * or sooner if fn polls isola_host_interrupted).  Many threads call fn at once, and
 * isola holds no lock of its own during a call: the thread safety of
 * ctx and of whatever fn touches is the host's.  fn must not call the
 * CPython API, nor wait for the pool whose worker called it.
 *
 * Exceptions (str(exc) is the message, or isola_strerror(code) when
 * none was given; exc.isola_error is the code's name, "ISOLA_ENOTFOUND"):
 *   EINVAL, EDECODE, ETOOBIG -> ValueError   ETYPE -> TypeError
 *   ENOTFOUND -> LookupError                 ENOMEM -> MemoryError
 *   ETIMEDOUT, EAGAIN -> TimeoutError        EINTR -> InterruptedError
 *   ESYS -> OSError        ELIMIT -> OverflowError
 *   ECANCELED -> isola.Cancelled when the calling task was asked to
 *   stop (isola_host_interrupted), else RuntimeError
 *   anything else (ECLOSED, ESTATE, ...) -> RuntimeError
 * Misuse raises too: a wrong argument count (TypeError) when nargs was
 * declared; a code that is no ISOLA_E*, a result left incomplete (a
 * container short of items) or a second value written
 * (SystemError, naming the function).
 */
typedef struct isola_host_call isola_host_call; /* valid during one call */

typedef int (*isola_host_fn)(void *ctx, const isola_value *args, size_t nargs,
			     isola_writer *result, isola_host_call *call);

#define ISOLA_HOST_VARARGS (-1) /* isola_host_register: any argument count */
#define ISOLA_HOST_NAME_MAX 63  /* longest module or function name */

/*
 * Register fn as module.name (each a Python identifier without dots, up
 * to ISOLA_HOST_NAME_MAX bytes; both are copied), called with ctx (the
 * host's, never touched by isola) and exactly nargs arguments
 * (0..255, or ISOLA_HOST_VARARGS).  Allowed until isola creates its
 * first interpreter (a pool's workers, isola_interp_create), before or
 * after isola_init; the table is fixed from then on, until isola_fini
 * empties it.  Any thread.  Fails with EINVAL (NULL fn, a bad name or
 * nargs), EEXIST (module.name is already registered), ESTATE (an
 * interpreter was already created), ENOMEM.
 */
int isola_host_register(const char *module, const char *name, isola_host_fn fn,
			void *ctx, int nargs);

/*
 * From fn: *yes = 1 when the pool task whose code called fn has been
 * asked to stop since (cancelled, past its timeout, its pool shutting
 * down with interrupt), else 0 (always 0 off a pool worker's thread).
 * isola cannot stop C code: a function that may run or block for long
 * polls this and returns ISOLA_ECANCELED, which then raises
 * isola.Cancelled, as an interrupted isola wait does (ECANCELED
 * returned otherwise raises RuntimeError).  Fails with EINVAL.
 */
int isola_host_interrupted(isola_host_call *call, int *yes);

/*
 * From fn: set the message of the exception the call raises (copied;
 * a later call replaces it) and return code, so that fn can end with
 * `return isola_host_error(call, ISOLA_ENOTFOUND, "no such key")`.
 * message may be NULL (isola_strerror(code) is used).  Returns EINVAL
 * instead when call is NULL or code is not a negative ISOLA_E* code.
 */
int isola_host_error(isola_host_call *call, int code, const char *message);

/* ------------------------------------------------------------------ */
/* Futures                                                             */
/* ------------------------------------------------------------------ */

/*
 * The outcome of a task: refcounted, any thread.  A future is done once
 * it has a result, an error, or was cancelled; it never changes after.
 */
typedef struct isola_future isola_future;

enum isola_future_state {
	ISOLA_FUTURE_PENDING = 0, /* queued */
	ISOLA_FUTURE_RUNNING = 1,
	ISOLA_FUTURE_DONE = 2,      /* returned a value */
	ISOLA_FUTURE_FAILED = 3,    /* raised (or its result could not travel) */
	ISOLA_FUTURE_CANCELLED = 4, /* cancelled, or timed out */
};

int isola_future_retain(isola_future *f);
int isola_future_release(isola_future *f); /* NULL is ok */

/* Wait until done: 0, or ETIMEDOUT (timeout_ns as for channels). */
int isola_future_wait(isola_future *f, int64_t timeout_ns);

/* Wait until one of fs[0..n-1] is done: 0 with its position in *index
 * (the lowest done one), or ETIMEDOUT (timeout_ns as for channels),
 * EINVAL, ENOMEM.  For as-completed loops: wait, handle fs[*index], take
 * it out of the array, repeat.  Each call that has to sleep leaves a
 * small callback on every future not yet done (run and freed when it
 * completes). */
int isola_future_wait_any(isola_future *const *fs, size_t n, int64_t timeout_ns, size_t *index);

/* The current isola_future_state in *state (never blocks). */
int isola_future_state(isola_future *f, int *state);

/*
 * The outcome, once done (else EAGAIN).  0: *result receives a copy of
 * the encoded return value (msgpack + references; the caller owns it and
 * clears it).  *result is overwritten, not cleared first: pass an empty
 * message (isola_msg_init(), or cleared since the last call), else what
 * it held leaks.  Each call makes a new copy.  result may be NULL.
 * EPYTHON: the task raised; *result receives the encoded exception (ext
 * 11, docs/wire.md) and isola_future_error() has its text.  ENOTFOUND:
 * the target's module or attribute does not exist (encoded and texted as
 * for EPYTHON: ModuleNotFoundError, AttributeError).  ECANCELED:
 * cancelled, or the pool shut down before it ran (isola_future_error
 * says which).  ETIMEDOUT: the task ran past its own timeout and was
 * interrupted (error type isola.Cancelled, message saying so).
 */
int isola_future_result(isola_future *f, isola_msg *result);

/* Error text of a failed/cancelled future, borrowed while f is held.
 * ENOTFOUND if it did not fail. */
int isola_future_error(isola_future *f, const char **type, const char **message,
		       const char **traceback);

/*
 * Cancel.  A queued task is cancelled at once (0).  A running task is
 * interrupted at its next bytecode boundary by isola.Cancelled raised in
 * its own interpreter (0; the future then ends ECANCELED unless the code
 * swallowed it and returned: a task that returns before Cancelled
 * reaches it, from one C call such as sleep, ends ECANCELED too).
 * ESTATE if already done, or if the task has returned and is completing.
 */
int isola_future_cancel(isola_future *f);

/* Call cb(f, arg) once f is done: at once on this thread if it already
 * is, else on the thread that completes it (a worker: keep cb short and
 * never block in it).  Fails with ENOMEM (cb will not run). */
typedef void (*isola_future_cb)(isola_future *f, void *arg);
int isola_future_on_done(isola_future *f, isola_future_cb cb, void *arg);

/* ------------------------------------------------------------------ */
/* Pools: N workers, each an OS thread hosting one sub-interpreter       */
/* ------------------------------------------------------------------ */

typedef struct isola_pool isola_pool;

/* Each worker is a thread with its own interpreter: about 2.5 MB of
 * memory and 10-20 ms of CPU to start (measured: 2000 workers took 4.9 GB
 * and 22 s).  More than this many is refused with ELIMIT. */
#define ISOLA_MAX_WORKERS 1024

typedef struct isola_pool_options {
	int workers;                /* <= 0: the number of online CPUs; at most ISOLA_MAX_WORKERS */
	isola_interp_options setup; /* per worker: sys.path, preload, init */
	int no_pickle;              /* refuse the pickle fallback (untrusted) */
	/* How long submit, map, run and actor spawn/call/send/kill wait for
	 * room when a queue is full (the shared queue holds 65,536 tasks, an
	 * actor's worker 4,096 messages): 0 forever, > 0 that many ns, then
	 * they fail with ISOLA_EAGAIN and leave everything with the caller. */
	int64_t queue_wait_ns;
	/* A timeline of what every worker runs, written to this file as
	 * Trace Event Format JSON (open it in https://ui.perfetto.dev or
	 * chrome://tracing) until the pool is destroyed.  NULL: the
	 * environment variable ISOLA_TRACE names the file, if set.  Pools
	 * tracing to one path share the file (a process track each; a pool
	 * made after the others were destroyed carries on after their
	 * events); the file is complete whenever no pool tracing to it is
	 * alive (and at exit).
	 * A file that cannot be written fails isola_pool_create with ESYS
	 * (for ISOLA_TRACE: a warning on stderr, the pool runs untraced). */
	const char *trace;
	/* Events each worker buffers between the writer's drains (every
	 * 10 ms): 0: ISOLA_TRACE_BUFFER or 16,384.  Events past a full
	 * buffer are dropped, counted in the file. */
	uint32_t trace_events;
	/* Process workers (the process lane, docs/proclane.md): child
	 * processes that run tasks in their main interpreter, for code that
	 * sub-interpreters refuse (numpy, lxml, ...).  0: none.  Each runs
	 * `process_python -m isola._proc_worker`, started with posix_spawn
	 * (never fork), with setup's sys.path first (and on PYTHONPATH, then
	 * the caller's PYTHONPATH, then where isola's Python module is
	 * installed), preload and init_source; the isola module must import
	 * there.  Targets go to them by placement (isola_pool_place) or per
	 * call (isola_pool_submit_lane).  A child that fails its setup fails
	 * isola_pool_create with EPYTHON (its traceback in *error_out). */
	int process_workers;
	/* The Python the children run: NULL for the one isola was built for
	 * (its path at build time).  Not the embedding program. */
	const char *process_python;
} isola_pool_options;

/*
 * Start a pool (opts may be NULL): the workers create their interpreters
 * in parallel, and this returns once all are ready.  isola_init() first.
 * If any worker's setup fails, everything started is torn down, the
 * error is EPYTHON and its text goes to *error_out (free() it) when
 * error_out is not NULL.  Fails with ESTATE, ELIMIT (workers above
 * ISOLA_MAX_WORKERS), EINVAL (a NULL string in setup's lists), ENOMEM,
 * ESYS, EPYTHON.
 * Pool functions may be called from any thread, except destroy.
 */
int isola_pool_create(const isola_pool_options *opts, isola_pool **out,
		      char **error_out);

/*
 * Submit a call of target ("package.module:qualname") with args (see
 * isola_interp_call; NULL: no arguments).  The pool takes args' contents
 * on success (args is left empty) and leaves them on failure.  target
 * must have a non-empty module and qualname (else EINVAL, at once); one
 * that does not exist fails the future with ENOTFOUND.
 * timeout_ns > 0 interrupts the task once it has run that long (its
 * future ends ETIMEDOUT); <= 0: no limit.  *out: a new future the caller
 * releases.  Fails with ECLOSED (shutting down), EINVAL, ENOMEM.
 */
int isola_pool_submit(isola_pool *pool, const char *target, isola_msg *args,
		      int64_t timeout_ns, isola_future **out);

/* Lanes: where a pool runs a task. */
#define ISOLA_LANE_INTERPRETER 0 /* a worker thread's sub-interpreter (the default) */
#define ISOLA_LANE_PROCESS 1     /* a process worker (options.process_workers) */

/*
 * Run targets of `what` in `lane` from now on: what is a module name
 * ("pkg.mod": its submodules too, the longest match wins) or one target
 * ("pkg.mod:qualname", before any module placement).  Applies to
 * isola_pool_submit and isola_pool_map(_ex) of later calls.  In a
 * process worker a task gets the same contract as in an interpreter
 * (future, result or exception message, timeout, cancel while queued,
 * shutdown), plus: a crash of the child fails only its task with
 * ISOLA_ECRASHED (the message names the signal or status) and the child
 * is replaced; a task still running 2 s after an interrupt is killed.
 * Blobs in its arguments (isola_write_blob) reach the child without a
 * copy per process: each blob of 256 KiB or more is copied once into a
 * sealed memfd the children map read-only; smaller ones are copied into
 * the request (docs/proclane.md).  Channels and frozen values cannot go
 * there (the submit fails with ETYPE); results come back copied.  map's
 * per_element is not supported there (EINVAL), nor task graphs
 * (isola_pool_submit_after keeps to interpreters).  EINVAL (a bad name
 * or lane), ESTATE (ISOLA_LANE_PROCESS on a pool without process
 * workers), ENOMEM.  Any thread.
 */
int isola_pool_place(isola_pool *pool, const char *what, int lane);

/* isola_pool_submit in the given lane, whatever the placement.  ESTATE:
 * ISOLA_LANE_PROCESS on a pool without process workers; ETYPE: args hold
 * a channel or a frozen value (process lane); else as isola_pool_submit. */
int isola_pool_submit_lane(isola_pool *pool, int lane, const char *target, isola_msg *args,
			   int64_t timeout_ns, isola_future **out);

/*
 * Task graphs: a call whose arguments include the results of other
 * tasks of the same pool.  The task waits inside the pool (not in the
 * caller) until every input is done, then runs with their results: each
 * input's result message is decoded by the worker that runs the task,
 * as it is (blobs and frozen values stay zero-copy).
 *
 * An input is inserted into the call's arguments: at positional index
 * `position` of the final argument list (inputs with positions are
 * applied in ascending order, so give each the index it has in the
 * call), or as keyword argument `keyword` when that is not NULL.
 *
 * If an input fails, is cancelled or times out, the task does not run:
 * its future fails with EPYTHON, an isola.InputFailed exception whose
 * message names the input (argument position or keyword) and whose
 * __cause__ is the input's exception (concurrent.futures.CancelledError
 * or TimeoutError for a cancelled or timed-out input); isola_future_error
 * gives "isola.InputFailed" and the text.  Cancelling the dependent does
 * not cancel its inputs.  An input's result is kept until every task
 * that uses it has started (and its futures are released).
 *
 * At most ISOLA_MAX_WAITING tasks of a pool wait for inputs at once:
 * past that, this waits for room as isola_pool_submit does for a full
 * queue (queue_wait_ns, then EAGAIN), so a chain of any length runs in
 * bounded memory.  Shutdown without CANCEL waits for waiting tasks to
 * become ready and run; with CANCEL it cancels them.
 */
#define ISOLA_MAX_WAITING 65536

typedef struct isola_input {
	isola_future *future; /* borrowed: the pool takes its own reference */
	int position;         /* >= 0: index in the positional arguments */
	const char *keyword;  /* non-NULL: this keyword argument instead (copied) */
} isola_input;

/*
 * isola_pool_submit whose task waits for inputs[0 .. n_inputs) (n_inputs
 * 0: the same as isola_pool_submit).  args as for isola_pool_submit
 * (without the inputs).  Fails at once, with nothing taken, with EINVAL
 * (a NULL future, a future of another pool, a negative position without
 * a keyword, an empty keyword, more than 255 inputs), ECLOSED, EAGAIN
 * (ISOLA_MAX_WAITING tasks waiting past queue_wait_ns), ENOMEM.  Once it
 * returns 0 every later failure is the future's.  Any thread.
 */
int isola_pool_submit_after(isola_pool *pool, const char *target, isola_msg *args,
			    const isola_input *inputs, size_t n_inputs, int64_t timeout_ns,
			    isola_future **out);

/*
 * Map target over n argument sets (each an array or map, as for submit),
 * in chunks: one task and one future per chunk, whose result is the array
 * of that chunk's outcomes, in order.  The caller provides
 * ceil(n / chunksize) slots in out (chunksize as resolved below).
 *
 * 0: every chunk is queued; out[0 .. *n_chunks) are new futures the
 * caller releases, and the pool took the contents of every argsets[i].
 * On failure out and *n_chunks are not written: EINVAL (bad arguments),
 * ECLOSED (shut down) or ENOMEM with nothing queued and argsets as they
 * were; ECLOSED or EAGAIN (the queue stayed full past queue_wait_ns)
 * from the queue refusing a chunk: the chunks queued before it are
 * cancelled (one a worker had already started runs on, its result
 * dropped) and their argument sets are consumed; the others are left.
 * References: at most 8 per chunk in all.
 */
typedef struct isola_map_options {
	/* Calls per chunk.  0: n / (4 * workers), at least 1. */
	size_t chunksize;
	/* > 0: a chunk that has run this long is interrupted (its future
	 * ends ETIMEDOUT, as a submitted task's); <= 0: no limit. */
	int64_t timeout_ns;
	/* 0: a chunk fails (EPYTHON) at its first exception, and its error
	 * message starts "map element I: " (I counts from 0 over all n).
	 * 1: per element: each slot of the chunk's result array holds that
	 * call's return value or the Exception it raised (the wire type
	 * exception: ISOLA_VALUE_EXCEPTION for isola_reader), and the chunk
	 * fails only as a whole (timeout, cancel, shutdown, or an interrupt
	 * that is not an Exception). */
	int per_element;
} isola_map_options;

/* opts NULL: all defaults (every field 0). */
int isola_pool_map_ex(isola_pool *pool, const char *target, isola_msg *argsets,
		      size_t n, const isola_map_options *opts, isola_future **out,
		      size_t *n_chunks);

/* isola_pool_map_ex with only a chunk size (0: the default). */
int isola_pool_map(isola_pool *pool, const char *target, isola_msg *argsets,
		   size_t n, size_t chunksize, isola_future **out, size_t *n_chunks);

/* Run source on every worker (e.g. to set a global); waits.  EPYTHON
 * with the first error's text in *error_out (free() it).  ECLOSED after
 * shutdown; ESTATE from one of the pool's own workers. */
int isola_pool_run(isola_pool *pool, const char *source, char **error_out);

/* isola_pool_shutdown's how: 0 finishes everything queued. */
#define ISOLA_SHUTDOWN_CANCEL 1    /* cancel what is queued (futures end ECANCELED) */
#define ISOLA_SHUTDOWN_INTERRUPT 2 /* also interrupt what runs (isola.Cancelled) */

/*
 * Stop accepting work.  how: 0, or ISOLA_SHUTDOWN_CANCEL, optionally |
 * ISOLA_SHUTDOWN_INTERRUPT (EINVAL for other bits).  With CANCEL, the
 * queued tasks' futures are cancelled before this returns.  Waits up to
 * timeout_ns (0: not at all, < 0: forever) for every worker to leave
 * (ETIMEDOUT).  Calling it again is fine (the stronger how wins).
 */
int isola_pool_shutdown(isola_pool *pool, int how, int64_t timeout_ns);

/* Shut down (cancelling pending work, interrupting running tasks), join
 * every worker, free the pool.  Futures stay valid until released.
 * ESTATE (and nothing done) from one of its own workers, e.g. in an
 * on_done callback; NULL is ok. */
int isola_pool_destroy(isola_pool *pool);

#define ISOLA_RUNNING_NAME_MAX 96

typedef struct isola_worker_stats {
	uint64_t tasks_run;  /* tasks and actor messages handled */
	uint64_t busy_ns;    /* time spent running them */
	uint64_t queue_depth; /* its private (actor) queue */
	int actors;          /* actors living on it */
	/* The task running now: its target ("module:qualname", an actor's
	 * method, or the first line of isola_pool_run's source; cut to fit,
	 * NUL-terminated), "" when idle; and for how long it has run. */
	char running[ISOLA_RUNNING_NAME_MAX];
	uint64_t running_ns;
} isola_worker_stats;

/* Number of workers. */
int isola_pool_size(isola_pool *pool, size_t *n);

/* Stats of worker i (any thread, lock-free reads); shared_depth (may be
 * NULL) gets the depth of the shared task queue. */
int isola_pool_worker_stats(isola_pool *pool, size_t i, isola_worker_stats *out,
			    uint64_t *shared_depth);

/* ------------------------------------------------------------------ */
/* Actors                                                              */
/* ------------------------------------------------------------------ */

/*
 * An actor is an instance of a Python class living on one worker; its
 * methods run there in the order they were sent, one at a time.  It is
 * named by an id passed by value: using a dead actor's id returns
 * ECLOSED, never touches freed memory.
 *
 * Supervision: when a method raises, its caller gets the error and the
 * actor lives on, unless the instance has __isola_restart__(exc): that
 * hook runs, and if it raises the actor has crashed.  When the
 * constructor fails, the actor crashes, or it is killed, the policy
 * applies: stop, or restart (construct again with the original
 * arguments) up to max_restarts times within window_ns.  Each stop or
 * restart sends {"actor": id, "event": "stopped"|"restarted",
 * "reason": str} to the pool's monitor channel.
 */
typedef struct isola_actor {
	uint64_t id;
} isola_actor;

#define ISOLA_ACTOR_MAX_RESTARTS 3            /* max_restarts' default */
#define ISOLA_ACTOR_WINDOW_NS 5000000000LL    /* window_ns' default: 5 s */

typedef struct isola_actor_options {
	int restart;         /* 0: stop on crash; 1: restart */
	int max_restarts;    /* within window_ns (<= 0: ISOLA_ACTOR_MAX_RESTARTS) */
	int64_t window_ns;   /* <= 0: ISOLA_ACTOR_WINDOW_NS */
	int worker;          /* < 0: the least loaded */
} isola_actor_options;

/* Spawn target ("module:Class") with args (the pool takes their contents
 * on success).  The constructor runs on the worker; its failure is
 * reported through the monitor and later calls (ECLOSED once stopped). */
int isola_actor_spawn(isola_pool *pool, const char *target, isola_msg *args,
		      const isola_actor_options *opts, isola_actor *out);

/* Call method with args; *out: a future for the result.  send: the same
 * without a future: a send whose method raises, or whose actor is dead
 * or killed by the time it comes up, is not reported but counted
 * (isola_pool_send_errors).  ECLOSED: dead. */
int isola_actor_call(isola_pool *pool, isola_actor a, const char *method,
		     isola_msg *args, isola_future **out);
int isola_actor_send(isola_pool *pool, isola_actor a, const char *method,
		     isola_msg *args);

/* Kill: what is queued for it fails with ECLOSED; the policy applies
 * (a restarting actor comes back).  ECLOSED if already dead.
 * Asynchronous: it returns once the kill is queued; a call made right
 * after it may still be accepted (0) and then fail with ECLOSED.  Watch
 * the monitor (or a call's future) to know it happened. */
int isola_actor_kill(isola_pool *pool, isola_actor a);

/* Mailbox depth (messages not yet handled) and liveness. */
int isola_actor_stats(isola_pool *pool, isola_actor a, uint64_t *mailbox_depth,
		      int *alive);

/* The monitor channel (a new handle: release it).  It holds 1024 events;
 * when it is full, later events are dropped (a worker never blocks on
 * it) and counted: isola_pool_monitor_dropped. */
int isola_pool_monitor(isola_pool *pool, isola_channel **out);

/* Actor sends (isola_actor_send) that failed so far: their method
 * raised, or their actor was dead or killed when they came up. */
int isola_pool_send_errors(isola_pool *pool, uint64_t *n);

/* Monitor events dropped so far because the monitor channel was full. */
int isola_pool_monitor_dropped(isola_pool *pool, uint64_t *n);

/*
 * Silent fallbacks: extension modules that the pool's interpreters
 * refused (CPython's ImportError "module X does not support loading in
 * subinterpreters") while the task, or the workers' setup, went on
 * without them: the package caught the ImportError and ran something
 * else, typically a slower pure-Python path (PyYAML, msgpack,
 * simplejson, rapidfuzz do).  A refusal that made the task fail is not
 * one.  One record per module, in the order first seen; the count only
 * grows.  Any thread.  For the C speed, run the target in a process
 * worker: isola_pool_place(pool, target, ISOLA_LANE_PROCESS).
 */
int isola_pool_fallbacks(isola_pool *pool, size_t *n);

/* Record i (< isola_pool_fallbacks' n): the module, the target of the
 * task during which it was first refused ("module:qualname", an actor's
 * class target or method name, "run" for isola_pool_run, "preload" or
 * "init" for the workers' setup), and how many imports of it were
 * refused so far (each worker's first import at least).  The strings
 * live as long as the pool; any pointer may be NULL.  ENOTFOUND past
 * the end. */
int isola_pool_fallback(isola_pool *pool, size_t i, const char **module, const char **target,
			uint64_t *times);

#ifdef __cplusplus
}
#endif
#endif /* ISOLA_H */
