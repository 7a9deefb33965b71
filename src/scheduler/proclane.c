/*
 * proclane.c - the process lane (proclane.h): a proxy thread per child
 * process, the lane's task queue, crash handling and interrupts.
 *
 * One proxy thread owns one child at a time: it starts it, sends it
 * tasks, reads its replies, reaps it.  So the child's pid, its region
 * and waitpid all belong to that thread, and a child can never be
 * reaped twice or outlive its proxy.  Other threads only read figures
 * (stats) and ask for interrupts through the future (f->interrupt) or
 * the lane (interrupt_all); the proxy sees either at its next check
 * (every SLICE_NS while it waits for a reply).
 */
#include "scheduler/proclane.h"

#include "channels/blob.h"
#include "channels/blobshm.h"
#include "channels/channel.h"
#include "channels/procring.h"
#include "channels/wait.h"
#include "common/alloc.h"
#include "common/atomics.h"
#include "common/errinfo.h"
#include "scheduler/future.h"
#include "scheduler/procframe.h"
#include "values/values.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define SLICE_NS 2000000 /* a proxy's checks (death, interrupts) while it waits */
#define QUEUE_CAP 65536
#define START_TIMEOUT_NS 120000000000LL /* a child's setup: a hang limit only */
#define PIPELINE_DEPTH 8        /* requests in a child's ring at once */
#define PIPELINE_NS 200000      /* ... while the last task took less than this */

/* A task graph's input, as the child gets it (see ready_inputs). */
struct pinput {
	isola_future *f;   /* held until the task is freed (a new child may need it) */
	int position;
	char *keyword;     /* owned, or NULL */
	/* Set when the task is ready: */
	int status;
	uint32_t flags;    /* PROC_INPUT_* */
	const char *type, *msg; /* borrowed from f->err, or static */
	const isola_msg *value; /* &f->result, &plain, or NULL */
	isola_msg plain;   /* f->result without references, when it had some */
};

struct ptask {
	int kind;
	char *target;
	isola_msg args;   /* CALL */
	isola_msg *sets;  /* CHUNK */
	size_t n, first;
	int flags;
	int64_t timeout_ns;
	isola_future *f;
	uint64_t id;       /* its request's number, once given one */
	bool sent;         /* the submitter wrote the request (direct hand-off) */
	bool started;      /* its future was started by a submitter that then
			    * handed it over unsent (its memfds did not fit) */
	/* Task graphs (isola__proclane_submit_after). */
	struct lgate *gate;   /* a reference, while it waits for its inputs */
	uint32_t pending;     /* atomic: inputs not yet done, + 1 while submitting */
	bool inputs_oom;      /* a callback could not be registered */
	size_t n_inputs;
	struct pinput *inputs;
	struct ptask *wprev, *wnext; /* gate->lock: the gate's waiting list */
	struct ptask *onext;         /* gate->lock: its overflow list */
};

/*
 * Task graphs: process tasks waiting for their inputs (futures of the
 * lane or of the interpreter pool beside it).  Refcounted: the lane
 * holds a reference and so does each waiting task, because an input may
 * end after the lane was shut down and destroyed (an interpreter task
 * still running after a cancelling shutdown): its callback then finds
 * the gate and the lane's queue, closed, and cancels the task.  The
 * queue closes (after a shutdown without cancel) once no task waits.
 */
struct lgate {
	uint64_t refs;                /* atomic */
	pthread_mutex_t lock;         /* lane, the lists */
	struct isola__proclane *lane; /* NULL once destroyed */
	isola_channel *queue;         /* the lane's (a reference of its own) */
	int closing;                  /* atomic: enum lane_closing, only rises */
	struct ptask *waiting;        /* lock: tasks whose inputs are not all done */
	struct ptask *overflow;       /* lock: ready tasks that found the queue full */
	uint32_t n_waiting;           /* atomic */
	uint32_t n_overflow;          /* atomic */
	struct ck_ec32 ec;            /* bumped as n_waiting falls (room to wait) */
};

/* A proxy's child, as the proxy's wait sees it. */
enum child_state {
	CHILD_NONE = 0,  /* not started, or reaped */
	CHILD_RUNNING,
};

struct pworker {
	struct isola__proclane *lane;
	int index;
	pthread_t thread;
	bool thread_started;
	/* Proxy thread only, except pid (atomic, read by stats). */
	int pid;
	enum child_state state;
	int wstatus;          /* how the child ended, once reaped */
	isola__procshm *shm;  /* ring_lock to unmap; see idle */
	int sock;             /* the socket memfds go to the child on, or -1
			       * (ring_lock to close: a submitter may use it) */
	uint64_t next_id;     /* atomic: request numbers */
	/*
	 * Direct hand-off (a submitter writes the request itself, so a sync
	 * call costs no wake-up of the proxy on its path).  idle (atomic):
	 * 1 while the proxy waits for work with a live child and an empty
	 * request ring; a submitter that swaps it to 0 owns the ring's
	 * producer side: it posts the task on `direct` (so the proxy waits
	 * for its reply), then writes the request under ring_lock (so the
	 * proxy never unmaps the region under the write).  The proxy writes
	 * requests only after it has swapped idle to 0 itself.
	 */
	int idle;
	isola_channel *direct;
	pthread_mutex_t ring_lock;
	/* The head request: the task the child runs now (proxy thread only). */
	struct ptask *task;
	int64_t head_since;   /* when it became the head */
	int64_t last_ns;      /* how long the last head took (pipelining) */
	uint64_t task_id;
	int64_t deadline;     /* ns, 0: none */
	int64_t interrupted_at; /* ns, 0: not interrupted */
	int interrupt_why;    /* enum interrupt_reason sent */
	bool killed;          /* the proxy killed the child (grace ran out) */
	/* Figures (relaxed atomics) and the running name (name_lock). */
	uint64_t tasks_run, crashes, starts;
	uint64_t blobs_mapped, blobs_copied;
	/* Freed mirrors the child has been told of (isola__mirror_forgotten):
	 * the ring's owner only (the proxy, or a submitter that claimed it). */
	uint64_t forget_seq;
	pthread_mutex_t name_lock;
	char running[ISOLA_RUNNING_NAME_MAX];
};

/* isola__proclane->closing, only rises. */
enum lane_closing { LANE_OPEN = 0, LANE_FINISH = 1, LANE_CANCEL = 2 };

struct isola__proclane {
	int n;
	char *exe;
	char **argv, **envp; /* copies, NULL-terminated; argv has 2 free slots */
	size_t argc;
	int64_t grace_ns;
	size_t ring_bytes;
	size_t mirror_min;
	isola_channel *queue; /* struct ptask *, 8-byte inline messages */
	struct isola__pool_link *link;
	struct pworker *w;
	int closing;       /* atomic: enum lane_closing */
	struct lgate *gate; /* task graphs */
	unsigned rotor;    /* atomic: where hand_to_idle starts looking */
	int interrupt_all; /* atomic: interrupt every running task */
	pid_t parent;
	/* Start-up and joining. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int ready, failed, exited;
	char *why;
	bool joined;
};

static size_t queue_depth(isola_channel *q)
{
	isola_channel_stats st;
	isola_channel_stats_get(q, &st);
	return (size_t)st.depth;
}

/* ---- tasks ------------------------------------------------------------- */

static void ptask_free(struct ptask *t)
{
	if (t == NULL)
		return;
	isola_msg_clear(&t->args);
	for (size_t i = 0; t->sets != NULL && i < t->n; i++)
		isola_msg_clear(&t->sets[i]);
	isola__free(t->sets);
	isola__free(t->target);
	isola_future_release(t->f);
	for (size_t i = 0; t->inputs != NULL && i < t->n_inputs; i++) {
		isola_future_release(t->inputs[i].f);
		isola__free(t->inputs[i].keyword);
		isola_msg_clear(&t->inputs[i].plain);
	}
	isola__free(t->inputs);
	isola__free(t);
}

static void fail_task(struct ptask *t, int status, const char *type, const char *msg)
{
	isola__error e = { isola__strdup(type), isola__strdup(msg), NULL };
	isola__future_complete(t->f, status, NULL, &e);
	isola__error_clear(&e);
}

/* Only blobs can reach a child (as memfds it maps, or copied): a
 * channel or a frozen image is this process's memory.  ISOLA_ETYPE. */
static int check_refs(const isola_msg *m)
{
	for (size_t i = 0; i < isola__msg_nrefs(m); i++) {
		int kind;
		void *p;
		isola_msg_ref(m, i, &kind, &p);
		if (kind != ISOLA_REF_BLOB || isola__blob_is_image(p))
			return ISOLA_ETYPE;
	}
	return 0;
}

/* The mirrors of m's blobs of at least mirror_min bytes (made once per
 * blob; a blob without one is copied into each request instead). */
static void make_mirrors(const isola__proclane *l, const isola_msg *m)
{
	for (size_t i = 0; i < isola__msg_nrefs(m); i++) {
		int kind;
		void *p;
		const void *d;
		size_t len;
		struct isola__mirror *mir;
		isola_msg_ref(m, i, &kind, &p);
		isola_blob_data(p, &d, &len);
		/* Failed: copied.  Uses: a mirror sent again may stay mapped in
		 * a child between tasks. */
		if (len > 0 && len >= l->mirror_min && isola__blob_mirror(p, &mir) == 0)
			__atomic_add_fetch(&mir->uses, 1, __ATOMIC_RELAXED); /* a hint */
	}
}

static const isola_msg *task_set(const struct ptask *t, uint32_t i)
{
	return t->kind == ISOLA__PROC_CALL ? &t->args : &t->sets[i];
}

/* A request's frame (procframe.h) as iovecs, and the memfds to pass
 * before it. */
struct reqbuf {
	struct proc_req h;
	struct iovec *v;
	size_t nv;
	struct proc_set *sets;
	struct proc_ref *refs;
	int *fds;
	uint64_t *ids;
	size_t nfds;
	uint64_t forget[16];   /* mirrors freed since the child last heard */
	uint64_t forget_seq;   /* where the worker's count goes once written */
	size_t total;          /* bytes on the ring, the length word included */
	size_t mapped, copied; /* blob references of each kind */
};

static void reqbuf_free(struct reqbuf *rb)
{
	isola__free(rb->v); /* the one allocation (build_request) */
}

static int send_request(struct pworker *w, struct ptask *t);
static int build_request(const struct pworker *w, const struct ptask *t, bool copy_all,
			 struct reqbuf *rb);
static int write_request(struct pworker *w, struct reqbuf *rb, bool direct);

/* The direct hand-off (see struct pworker): give t to an idle worker and
 * write its request to the child from this thread.  0 if done (t is the
 * worker's now), ISOLA_EAGAIN (no idle worker, or t does not fit: queue
 * it), or ISOLA_ECLOSED: the worker's proxy is gone (shutdown) and t,
 * started already, is still the caller's to fail. */
static int hand_to_idle(isola__proclane *l, struct ptask *t)
{
	/* Relaxed: only spreads claims over the workers. */
	unsigned start = __atomic_fetch_add(&l->rotor, 1, __ATOMIC_RELAXED);
	for (int k = 0; k < l->n; k++) {
		struct pworker *w = &l->w[(start + (unsigned)k) % (unsigned)l->n];
		int one = 1;
		/* Acquire: the proxy's writes (a live child, its region) before
		 * it published idle are visible to this claimer. */
		if (!__atomic_compare_exchange_n(&w->idle, &one, 0, false, __ATOMIC_ACQUIRE,
						 __ATOMIC_RELAXED))
			continue;
		struct reqbuf rb;
		/* Held from here: the proxy unmaps the region (drop_child) only
		 * under it, and a proxy leaving at shutdown may not have seen
		 * this claim (then shm is NULL, or direct is closed). */
		pthread_mutex_lock(&w->ring_lock);
		/* Relaxed: a unique number is all that is needed (the claim
		 * orders this side's writes to the ring). */
		t->id = __atomic_add_fetch(&w->next_id, 1, __ATOMIC_RELAXED);
		bool built = w->shm != NULL && build_request(w, t, false, &rb) == 0;
		bool fits = built && rb.total <= isola__procring_room(w->shm, ISOLA__PROC_PARENT);
		if (!fits || !isola__future_start(t->f)) {
			pthread_mutex_unlock(&w->ring_lock);
			if (built)
				reqbuf_free(&rb);
			/* Release: give the claim back (the proxy polls it while it
			 * waits for a hand-off that will not come). */
			__atomic_store_n(&w->idle, 1, __ATOMIC_RELEASE);
			return ISOLA_EAGAIN;
		}
		/* Its memfds first (never waiting here); if the socket will not
		 * take them now, the proxy sends the task (it may wait). */
		t->sent = rb.nfds == 0 ||
			  isola__fds_send(w->sock, t->id, rb.fds, rb.ids, rb.nfds, false, 0, NULL,
					  NULL) == 0;
		t->started = !t->sent;
		isola_msg m;
		isola_msg_init(&m);
		isola_msg_set_bytes(&m, &t, sizeof(t));
		/* First the proxy learns of t (so it waits for t's reply, and
		 * gives the region up only after it), then the request. */
		int r = isola_channel_send(w->direct, &m, 0);
		if (r == 0 && t->sent)
			r = write_request(w, &rb, true);
		pthread_mutex_unlock(&w->ring_lock);
		reqbuf_free(&rb);
		/* Else the proxy is gone (shutdown); it saw nothing. */
		return r == 0 ? 0 : ISOLA_ECLOSED;
	}
	return ISOLA_EAGAIN;
}

int isola__proclane_submit(isola__proclane *l, int kind, const char *target, isola_msg *args,
			   isola_msg *argsets, size_t n, size_t first, int64_t timeout_ns,
			   int flags, isola_future **out)
{
	*out = NULL;
	if (kind != ISOLA__PROC_CALL && kind != ISOLA__PROC_CHUNK)
		return ISOLA_EINVAL;
	/* Acquire: pairs with shutdown's CAS (a hint only: the queue's close
	 * is what refuses a late task). */
	if (isola__load_acquire(&l->closing) != LANE_OPEN)
		return ISOLA_ECLOSED;
	if (kind == ISOLA__PROC_CALL && args != NULL && check_refs(args) != 0)
		return ISOLA_ETYPE;
	for (size_t i = 0; kind == ISOLA__PROC_CHUNK && i < n; i++)
		if (check_refs(&argsets[i]) != 0)
			return ISOLA_ETYPE;
	if (kind == ISOLA__PROC_CALL && args != NULL)
		make_mirrors(l, args);
	for (size_t i = 0; kind == ISOLA__PROC_CHUNK && i < n; i++)
		make_mirrors(l, &argsets[i]);
	struct ptask *t = isola__calloc(1, sizeof(*t));
	if (t == NULL)
		return ISOLA_ENOMEM;
	isola_msg_init(&t->args);
	t->kind = kind;
	t->target = isola__strdup(target);
	t->f = isola__future_new_linked(l->link);
	if (kind == ISOLA__PROC_CHUNK)
		t->sets = isola__calloc(n ? n : 1, sizeof(isola_msg));
	if (t->target == NULL || t->f == NULL || (kind == ISOLA__PROC_CHUNK && t->sets == NULL)) {
		ptask_free(t);
		return ISOLA_ENOMEM;
	}
	t->n = n;
	t->first = first;
	t->flags = flags;
	t->timeout_ns = timeout_ns;
	isola_future_retain(t->f); /* one for the caller, one for the task */
	isola_future *f = t->f;
	/* The messages move into the task (back to the caller on failure). */
	if (kind == ISOLA__PROC_CALL && args != NULL) {
		t->args = *args;
		isola_msg_init(args);
	}
	for (size_t i = 0; kind == ISOLA__PROC_CHUNK && i < n; i++) {
		t->sets[i] = argsets[i];
		isola_msg_init(&argsets[i]);
	}
	int hr = hand_to_idle(l, t);
	if (hr == ISOLA_ECLOSED) {
		fail_task(t, ISOLA_ECANCELED, "isola.Cancelled", "the pool shut down before it ran");
		ptask_free(t);
	}
	if (hr != ISOLA_EAGAIN) {
		*out = f;
		return 0;
	}
	isola_msg m;
	isola_msg_init(&m);
	isola_msg_set_bytes(&m, &t, sizeof(t));
	/* The channel's send and the proxy's receive order the task's fields
	 * (written above) before the proxy reads them. */
	int r = isola_channel_send(l->queue, &m, -1);
	if (r != 0) {
		if (kind == ISOLA__PROC_CALL && args != NULL) {
			*args = t->args;
			isola_msg_init(&t->args);
		}
		for (size_t i = 0; kind == ISOLA__PROC_CHUNK && i < n; i++) {
			argsets[i] = t->sets[i];
			isola_msg_init(&t->sets[i]);
		}
		isola_future_release(f);
		ptask_free(t);
		return r;
	}
	*out = f;
	return 0;
}

/* ---- task graphs ----------------------------------------------------------- */

static struct lgate *gate_new(isola_channel *queue)
{
	struct lgate *g = isola__calloc(1, sizeof(*g));
	if (g == NULL)
		return NULL;
	g->refs = 1;
	pthread_mutex_init(&g->lock, NULL);
	ck_ec32_init(&g->ec, 0);
	isola_channel_retain(queue);
	g->queue = queue;
	return g;
}

static void gate_release(struct lgate *g)
{
	if (g == NULL || !isola__ref_dec_is_last(&g->refs))
		return;
	assert(g->waiting == NULL && g->overflow == NULL);
	isola_channel_release(g->queue);
	pthread_mutex_destroy(&g->lock);
	isola__free(g);
}

/* Close the lane's queue and its workers' hand-off channels (any
 * thread, idempotent): the proxies end once they drained them. */
static void gate_close_queues(struct lgate *g)
{
	pthread_mutex_lock(&g->lock);
	isola_channel_close(g->queue);
	for (int i = 0; g->lane != NULL && i < g->lane->n; i++)
		isola_channel_close(g->lane->w[i].direct);
	pthread_mutex_unlock(&g->lock);
}

/* After a shutdown without cancel: the queues close once no task waits
 * for inputs (those were submitted before the shutdown: they run), by
 * whichever thread sees that last.  seq_cst on closing and the counts:
 * graph.c's close_if_idle says why. */
static void gate_close_if_idle(struct lgate *g)
{
	if (__atomic_load_n(&g->closing, __ATOMIC_SEQ_CST) != LANE_OPEN &&
	    __atomic_load_n(&g->n_waiting, __ATOMIC_SEQ_CST) == 0 &&
	    __atomic_load_n(&g->n_overflow, __ATOMIC_SEQ_CST) == 0)
		gate_close_queues(g);
}

/* Move ready tasks that found the queue full into it (a proxy, before it
 * takes the next task).  Cheap when there are none. */
static void gate_drain(struct lgate *g)
{
	/* Relaxed: a hint; a task pushed just after is seen next time. */
	if (__atomic_load_n(&g->n_overflow, __ATOMIC_RELAXED) == 0)
		return;
	struct ptask *refused = NULL;
	pthread_mutex_lock(&g->lock);
	while (g->overflow != NULL) {
		struct ptask *t = g->overflow;
		isola_msg m;
		isola_msg_init(&m);
		isola_msg_set_bytes(&m, &t, sizeof(t));
		int r = isola__channel_try_send(g->queue, &m);
		if (r == ISOLA_EAGAIN)
			break; /* still full: the next look tries again */
		g->overflow = t->onext;
		__atomic_sub_fetch(&g->n_overflow, 1, __ATOMIC_SEQ_CST); /* see close_if_idle */
		if (r != 0) {
			t->onext = refused;
			refused = t;
		}
	}
	pthread_mutex_unlock(&g->lock);
	while (refused != NULL) {
		struct ptask *next = refused->onext;
		fail_task(refused, ISOLA_ECANCELED, "isola.Cancelled", "the pool shut down before it ran");
		ptask_free(refused);
		refused = next;
	}
	gate_close_if_idle(g);
}

/* Shutdown with cancel: cancel the waiting tasks' futures and what
 * overflowed (the queues are closed already).  A waiting task stays
 * listed until its inputs end; it is then freed without running. */
static void gate_cancel(struct lgate *g)
{
	pthread_mutex_lock(&g->lock);
	size_t n = 0;
	for (struct ptask *t = g->waiting; t != NULL; t = t->wnext)
		n++;
	isola_future **fs = n ? isola__calloc(n, sizeof(*fs)) : NULL;
	size_t k = 0;
	for (struct ptask *t = g->waiting; fs != NULL && t != NULL; t = t->wnext)
		if (isola_future_retain(t->f) == 0)
			fs[k++] = t->f;
	struct ptask *over = g->overflow;
	g->overflow = NULL;
	__atomic_store_n(&g->n_overflow, 0, __ATOMIC_SEQ_CST);
	pthread_mutex_unlock(&g->lock);
	/* Outside the lock: a cancel runs callbacks, which may make other
	 * tasks ready. */
	for (size_t i = 0; i < k; i++) {
		isola__future_cancel_pending(fs[i], "the pool shut down before it ran");
		isola_future_release(fs[i]);
	}
	isola__free(fs);
	while (over != NULL) {
		struct ptask *next = over->onext;
		fail_task(over, ISOLA_ECANCELED, "isola.Cancelled", "the pool shut down before it ran");
		ptask_free(over);
		over = next;
	}
}

/* Each input's outcome as the child gets it.  Every input is done (the
 * task is ready), so its outcome is read without a lock; the task holds
 * the future.  A result holding references (blobs, frozen values) goes
 * as its plain copy; one holding a channel cannot go at all. */
static void ready_inputs(struct ptask *t)
{
	for (size_t i = 0; i < t->n_inputs; i++) {
		struct pinput *pi = &t->inputs[i];
		const isola_future *f = pi->f;
		int state = isola__load_acquire(&f->state);
		pi->flags = 0;
		pi->status = state == ISOLA_FUTURE_DONE ? 0 : f->status ? f->status : ISOLA_EPYTHON;
		pi->type = f->err.type;
		pi->msg = f->err.message;
		pi->value = &f->result;
		if (t->inputs_oom || state < ISOLA_FUTURE_DONE) { /* ENOMEM at submit */
			pi->status = ISOLA_ENOMEM;
			pi->value = NULL;
			pi->type = "MemoryError";
			pi->msg = "the task could not wait for this input";
			continue;
		}
		if (pi->status == ISOLA_ECANCELED || pi->status == ISOLA_ETIMEDOUT) {
			pi->value = NULL; /* the child makes the exception from the status */
			continue;
		}
		size_t refs = 0;
		isola_msg_ref_count(&f->result, &refs);
		if (refs == 0)
			continue;
		int r = isola__msg_plain(&f->result, &pi->plain);
		if (r == 0) {
			pi->value = &pi->plain;
		} else if (pi->status != 0) {
			pi->value = NULL; /* an exception that cannot go: its type and text do */
		} else {
			pi->value = NULL;
			pi->flags = PROC_INPUT_UNSENDABLE;
			pi->type = "TypeError";
			pi->msg = r == ISOLA_ETYPE
					  ? "its result holds an isola.Channel, which a process worker "
					    "cannot receive (channels are this process's)"
				  : r == ISOLA_ENOMEM ? "out of memory copying its result"
						      : "its result could not be copied for a process worker";
		}
	}
}

/* Every input of t is done: hand it to an idle worker or queue it (never
 * waiting: this may run on a worker that completed an input). */
static void make_ready(struct ptask *t)
{
	struct lgate *g = t->gate;
	t->gate = NULL;
	pthread_mutex_lock(&g->lock);
	if (t->wprev != NULL)
		t->wprev->wnext = t->wnext;
	else
		g->waiting = t->wnext;
	if (t->wnext != NULL)
		t->wnext->wprev = t->wprev;
	t->wprev = t->wnext = NULL;
	pthread_mutex_unlock(&g->lock);
	int r;
	/* Acquire: pairs with the canceller's CAS. */
	if (isola__load_acquire(&t->f->state) != ISOLA_FUTURE_PENDING) {
		r = ISOLA_ESTATE; /* cancelled while it waited */
	} else if (__atomic_load_n(&g->closing, __ATOMIC_SEQ_CST) == LANE_CANCEL) {
		r = ISOLA_ECLOSED;
	} else {
		ready_inputs(t);
		pthread_mutex_lock(&g->lock); /* the lane is not destroyed meanwhile */
		r = g->lane != NULL ? hand_to_idle(g->lane, t) : ISOLA_EAGAIN;
		if (r == ISOLA_EAGAIN) {
			isola_msg m;
			isola_msg_init(&m);
			isola_msg_set_bytes(&m, &t, sizeof(t));
			/* The channel's send and the proxy's receive order t's
			 * fields before the proxy reads them. */
			r = isola__channel_try_send(g->queue, &m);
			if (r == ISOLA_EAGAIN) { /* full: a proxy moves it in later */
				t->onext = g->overflow;
				g->overflow = t;
				__atomic_add_fetch(&g->n_overflow, 1, __ATOMIC_SEQ_CST);
				r = 0;
			}
		}
		pthread_mutex_unlock(&g->lock);
	}
	if (r == ISOLA_ECLOSED)
		fail_task(t, ISOLA_ECANCELED, "isola.Cancelled", "the pool shut down before it ran");
	if (r != 0)
		ptask_free(t);
	/* Only now, once queued (or failed): a shutdown without cancel keeps
	 * the queue open while this count is not zero.  The increment wakes
	 * submitters waiting for room. */
	__atomic_sub_fetch(&g->n_waiting, 1, __ATOMIC_SEQ_CST);
	ck_ec32_inc(&g->ec, &isola__ec_mode);
	gate_close_if_idle(g);
	gate_release(g); /* the task's */
}

static void input_done(isola_future *f, void *arg)
{
	(void)f;
	struct ptask *t = arg;
	/* acq_rel: the last decrement sees every input's completion. */
	if (__atomic_sub_fetch(&t->pending, 1, __ATOMIC_ACQ_REL) == 0)
		make_ready(t);
}

/* isola__wait's condition: room among the waiting tasks. */
static int room_to_wait(void *arg)
{
	struct lgate *g = arg;
	return __atomic_load_n(&g->n_waiting, __ATOMIC_ACQUIRE) < ISOLA_MAX_WAITING ? 0
										   : ISOLA_EAGAIN;
}

int isola__proclane_submit_after(isola__proclane *l, const char *target, isola_msg *args,
				 const isola_input *in, size_t n, int64_t timeout_ns, int flags,
				 bool wait, isola_future **out)
{
	*out = NULL;
	if (n == 0)
		return isola__proclane_submit(l, ISOLA__PROC_CALL, target, args, NULL, 0, 0,
					      timeout_ns, flags, out);
	if (in == NULL || n > 255)
		return ISOLA_EINVAL;
	for (size_t i = 0; i < n; i++)
		if (in[i].future == NULL ||
		    (in[i].keyword != NULL ? in[i].keyword[0] == '\0' : in[i].position < 0))
			return ISOLA_EINVAL;
	/* Acquire: pairs with shutdown's CAS (a hint: see make_ready). */
	if (isola__load_acquire(&l->closing) != LANE_OPEN)
		return ISOLA_ECLOSED;
	if (args != NULL && check_refs(args) != 0)
		return ISOLA_ETYPE;
	if (args != NULL)
		make_mirrors(l, args);
	struct lgate *g = l->gate;
	if (room_to_wait(g) != 0) {
		if (!wait)
			return ISOLA_EAGAIN;
		isola__deadline forever;
		isola__deadline_init(&forever, -1);
		isola__wait(&g->ec, room_to_wait, g, &forever, 0);
	}
	struct ptask *t = isola__calloc(1, sizeof(*t));
	if (t == NULL)
		return ISOLA_ENOMEM;
	isola_msg_init(&t->args);
	t->kind = ISOLA__PROC_CALL;
	t->target = isola__strdup(target);
	t->f = isola__future_new_linked(l->link);
	t->inputs = isola__calloc(n, sizeof(*t->inputs));
	bool oom = t->target == NULL || t->f == NULL || t->inputs == NULL;
	for (size_t i = 0; !oom && i < n; i++) {
		struct pinput *pi = &t->inputs[i];
		isola_msg_init(&pi->plain);
		pi->f = in[i].future;
		isola_future_retain(pi->f);
		t->n_inputs = i + 1;
		pi->position = in[i].keyword != NULL ? -1 : in[i].position;
		if (in[i].keyword != NULL)
			oom = (pi->keyword = isola__strdup(in[i].keyword)) == NULL;
	}
	if (oom) {
		ptask_free(t);
		return ISOLA_ENOMEM;
	}
	t->flags = flags;
	t->timeout_ns = timeout_ns;
	if (args != NULL) {
		t->args = *args;
		isola_msg_init(args);
	}
	isola_future *f = t->f;
	isola_future_retain(f); /* the caller's */
	isola__ref_inc(&g->refs); /* the task's, until it is ready */
	t->gate = g;
	t->pending = (uint32_t)n + 1; /* + 1: ours, until every callback is set */
	pthread_mutex_lock(&g->lock);
	t->wnext = g->waiting;
	if (g->waiting != NULL)
		g->waiting->wprev = t;
	g->waiting = t;
	pthread_mutex_unlock(&g->lock);
	/* seq_cst: see gate_close_if_idle.  A submit that races with a
	 * shutdown may find the queue closed when its task is ready: the
	 * task then ends cancelled, as a plain submit would be refused. */
	__atomic_add_fetch(&g->n_waiting, 1, __ATOMIC_SEQ_CST);
	for (size_t i = 0; i < n; i++) {
		int cr = isola__future_on_done_pending(t->inputs[i].f, input_done, t);
		if (cr == ISOLA_ESTATE) { /* done already */
			__atomic_sub_fetch(&t->pending, 1, __ATOMIC_ACQ_REL);
		} else if (cr != 0) { /* no callback: the task fails when it runs */
			t->inputs_oom = true;
			__atomic_sub_fetch(&t->pending, 1, __ATOMIC_ACQ_REL);
		}
	}
	if (__atomic_sub_fetch(&t->pending, 1, __ATOMIC_ACQ_REL) == 0)
		make_ready(t);
	*out = f;
	return 0;
}

struct isola__pool_link *isola__proclane_link(isola__proclane *l)
{
	return l->link;
}

size_t isola__proclane_waiting(isola__proclane *l)
{
	return __atomic_load_n(&l->gate->n_waiting, __ATOMIC_RELAXED);
}

/* ---- children ------------------------------------------------------------ */

static void describe_death(char *buf, size_t n, const struct pworker *w, int wstatus)
{
	if (WIFSIGNALED(wstatus)) {
		int sig = WTERMSIG(wstatus);
		const char *abbrev = sigabbrev_np(sig);
		snprintf(buf, n, "process worker %d (pid %d) was killed by signal %d (SIG%s: %s)",
			 w->index, w->pid, sig, abbrev ? abbrev : "?", strsignal(sig));
	} else if (WIFEXITED(wstatus)) {
		snprintf(buf, n, "process worker %d (pid %d) exited with status %d", w->index,
			 w->pid, WEXITSTATUS(wstatus));
	} else {
		snprintf(buf, n, "process worker %d (pid %d) ended (wait status %#x)", w->index,
			 w->pid, wstatus);
	}
}

/* Reap the child if it has ended (block: wait for it).  True once
 * reaped (w->wstatus says how). */
static bool reap(struct pworker *w, bool block)
{
	if (w->state != CHILD_RUNNING)
		return true;
	for (;;) {
		pid_t r = waitpid(w->pid, &w->wstatus, block ? 0 : WNOHANG);
		if (r == w->pid) {
			w->state = CHILD_NONE;
			return true;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) { /* not ours any more (SIGCHLD ignored?): treat as gone */
			w->wstatus = 0;
			w->state = CHILD_NONE;
			return true;
		}
		return false;
	}
}

static void drop_child(struct pworker *w)
{
	if (w->state == CHILD_RUNNING) {
		kill(w->pid, SIGKILL);
		reap(w, true);
	}
	pthread_mutex_lock(&w->ring_lock); /* no submitter writes to it now */
	isola__procshm_unmap(w->shm);
	w->shm = NULL;
	if (w->sock >= 0)
		close(w->sock);
	w->sock = -1;
	pthread_mutex_unlock(&w->ring_lock);
	__atomic_store_n(&w->pid, 0, __ATOMIC_RELAXED); /* stats only */
}

/* fd moved above the numbers the child's fds get (a dup2 onto itself
 * would keep close-on-exec, and one dup2 must not overwrite the other's
 * source); -1 on failure (fd closed either way). */
static int above_child_fds(int fd)
{
	if (fd < 0 || fd > PROC_CHILD_SOCK)
		return fd;
	int g = fcntl(fd, F_DUPFD_CLOEXEC, PROC_CHILD_SOCK + 1);
	close(fd);
	return g;
}

/* posix_spawn a child with a fresh region as PROC_CHILD_FD and its end of
 * a new socket as PROC_CHILD_SOCK.  0 or ESYS. */
static int spawn_child(struct pworker *w)
{
	struct isola__proclane *l = w->lane;
	int fd, sv[2];
	int r = isola__procshm_create(l->ring_bytes, &w->shm, &fd);
	if (r != 0)
		return r;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
		close(fd);
		isola__procshm_unmap(w->shm);
		w->shm = NULL;
		return ISOLA_ESYS;
	}
	fd = above_child_fds(fd);
	sv[1] = above_child_fds(sv[1]);
	if (fd < 0 || sv[1] < 0) {
		if (fd >= 0)
			close(fd);
		if (sv[1] >= 0)
			close(sv[1]);
		close(sv[0]);
		isola__procshm_unmap(w->shm);
		w->shm = NULL;
		return ISOLA_ESYS;
	}
	char fdnum[16], ppid[24];
	snprintf(fdnum, sizeof(fdnum), "%d", PROC_CHILD_FD);
	snprintf(ppid, sizeof(ppid), "%d", (int)l->parent);
	/* argv's two free slots (this thread's copy on the stack). */
	char *argv[l->argc + 3];
	for (size_t i = 0; i < l->argc; i++)
		argv[i] = l->argv[i];
	argv[l->argc] = fdnum;
	argv[l->argc + 1] = ppid;
	argv[l->argc + 2] = NULL;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fd, PROC_CHILD_FD);
	posix_spawn_file_actions_adddup2(&fa, sv[1], PROC_CHILD_SOCK);
	posix_spawnattr_init(&at);
	sigset_t none, all;
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &all);
	/* Its own process group: a terminal's Ctrl-C reaches the parent,
	 * which interrupts tasks itself; children are not hit mid-setup. */
	posix_spawnattr_setpgroup(&at, 0);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
					      POSIX_SPAWN_SETPGROUP);
	pid_t pid;
	int e = posix_spawn(&pid, l->exe, &fa, &at, argv, l->envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	close(fd);
	close(sv[1]);
	if (e != 0) {
		close(sv[0]);
		isola__procshm_unmap(w->shm);
		w->shm = NULL;
		errno = e;
		return ISOLA_ESYS;
	}
	pthread_mutex_lock(&w->ring_lock); /* submitters read it under the lock */
	w->sock = sv[0];
	w->forget_seq = isola__mirror_forget_seq(); /* a new child has nothing to forget */
	pthread_mutex_unlock(&w->ring_lock);
	w->state = CHILD_RUNNING;
	w->killed = false;
	__atomic_store_n(&w->pid, (int)pid, __ATOMIC_RELAXED); /* stats only */
	isola__add_relaxed(&w->starts, 1); /* stats only */
	return 0;
}

/* ---- waiting for the child -------------------------------------------- */

static void send_interrupt(struct pworker *w, int why)
{
	if (w->interrupted_at != 0 || w->task == NULL)
		return;
	/* Release: the child reads the word in its SIGINT handler, after
	 * the signal (which orders it anyway: kill is a system call). */
	__atomic_store_n(isola__procshm_word(w->shm), w->task_id, __ATOMIC_RELEASE);
	w->interrupt_why = why;
	w->interrupted_at = isola__now_ns();
	kill(w->pid, SIGINT);
}

/* The proxy's check between sleeps: the child died (ECRASHED), or an
 * interrupt is due (sent; after grace, the child is killed). */
static int check_child(void *arg)
{
	struct pworker *w = arg;
	if (reap(w, false))
		return ISOLA_ECRASHED;
	if (w->task == NULL)
		return 0;
	int64_t now = isola__now_ns();
	if (w->interrupted_at == 0) {
		/* Acquire/acq_rel: pair with isola_future_cancel's CAS of the
		 * request (any thread); a CAS here loses to a cancel made first,
		 * and says which reason the task ends with. */
		int want = isola__load_acquire(&w->task->f->interrupt);
		if (want == INTERRUPT_NONE && w->deadline != 0 && now >= w->deadline) {
			int none = INTERRUPT_NONE;
			isola__cas_acq_rel(&w->task->f->interrupt, &none, INTERRUPT_TIMEOUT);
			want = isola__load_acquire(&w->task->f->interrupt);
		}
		/* Acquire: pairs with shutdown's release store. */
		if (want == INTERRUPT_NONE && isola__load_acquire(&w->lane->interrupt_all)) {
			int none = INTERRUPT_NONE;
			isola__cas_acq_rel(&w->task->f->interrupt, &none, INTERRUPT_CANCEL);
			want = isola__load_acquire(&w->task->f->interrupt);
		}
		if (want != INTERRUPT_NONE)
			send_interrupt(w, want);
	} else if (!w->killed && now - w->interrupted_at >= w->lane->grace_ns) {
		w->killed = true;
		kill(w->pid, SIGKILL);
	}
	return 0;
}

/* ---- the proxy ------------------------------------------------------------- */

/* Read the setup reply: 0, or a failure with *why (malloc'd). */
static int await_ready(struct pworker *w, char **why)
{
	isola__deadline d;
	isola__deadline_init(&d, START_TIMEOUT_NS);
	void *b;
	size_t len;
	int r = isola__procring_recv(w->shm, ISOLA__PROC_PARENT, &b, &len, &d, SLICE_NS,
				     check_child, w);
	char buf[512];
	if (r == ISOLA_ECRASHED || r == ISOLA_ECLOSED) {
		describe_death(buf, sizeof(buf), w, w->wstatus);
		size_t k = strlen(buf);
		snprintf(buf + k, sizeof(buf) - k, " while starting");
		*why = isola__strdup(buf);
		return ISOLA_ECRASHED;
	}
	if (r != 0) {
		snprintf(buf, sizeof(buf), "process worker %d: no word from its child (%s)",
			 w->index, isola_strerror(r));
		*why = isola__strdup(buf);
		return r;
	}
	struct proc_rep h;
	int status = ISOLA_EDECODE;
	if (len >= sizeof(h)) {
		memcpy(&h, b, sizeof(h));
		status = h.status;
	}
	if (status != 0) {
		size_t off = sizeof(h) + (size_t)h.result_len + h.type_len;
		size_t k = len >= off + h.msg_len ? h.msg_len : 0;
		char *m = isola__malloc(k + 1);
		if (m != NULL) {
			memcpy(m, (char *)b + off, k);
			m[k] = '\0';
		}
		*why = m;
	}
	isola__free(b);
	return status;
}

static char *dup_n(const char *s, size_t n)
{
	char *c = isola__malloc(n + 1);
	if (c != NULL) {
		memcpy(c, s, n);
		c[n] = '\0';
	}
	return c;
}

/* t's request frame (procframe.h) into rb; 0 or ENOMEM (rb then holds
 * nothing to free; reqbuf_free after 0).  Blobs with a mirror are named by it (their memfds in
 * rb->fds, each once), the others copied into the frame; copy_all: every
 * blob copied (its memfds could not be passed). */
static int build_request(const struct pworker *w, const struct ptask *t, bool copy_all,
			 struct reqbuf *rb)
{
	memset(rb, 0, sizeof(*rb));
	struct proc_req *h = &rb->h;
	*h = (struct proc_req){ .kind = (uint32_t)t->kind, .flags = (uint32_t)t->flags,
				.id = t->id, .first = t->first,
				.target_len = (uint32_t)strlen(t->target),
				.n = t->kind == ISOLA__PROC_CALL ? 1u : (uint32_t)t->n,
				.n_inputs = (uint32_t)t->n_inputs };
	size_t nrefs = 0;
	for (uint32_t i = 0; i < h->n; i++)
		nrefs += isola__msg_nrefs(task_set(t, i));
	/* One allocation for the arrays (a request's path: no more mallocs
	 * than before the references): iovecs, sets, refs, mirror ids, then
	 * the input headers and the fds (4-byte items last). */
	size_t cap = 3 + 3 * (size_t)h->n + nrefs + 5 * t->n_inputs;
	size_t bytes = cap * sizeof(*rb->v) + h->n * sizeof(*rb->sets) +
		       nrefs * (sizeof(*rb->refs) + sizeof(*rb->ids)) +
		       t->n_inputs * sizeof(struct proc_input) + nrefs * sizeof(*rb->fds);
	char *mem = isola__malloc(bytes ? bytes : 1);
	if (mem == NULL)
		return ISOLA_ENOMEM;
	/* Each array aligned for its type: 16-, 24-, 8-, 8-, 8-, 4-byte items. */
	rb->v = (struct iovec *)mem;
	rb->sets = (struct proc_set *)(rb->v + cap);
	rb->refs = (struct proc_ref *)(rb->sets + h->n);
	rb->ids = (uint64_t *)(rb->refs + nrefs);
	struct proc_input *in = (struct proc_input *)(rb->ids + nrefs);
	rb->fds = (int *)(in + t->n_inputs);
	struct iovec *v = rb->v;
	size_t nv = 0, k = 0;
	v[nv++] = (struct iovec){ h, sizeof(*h) };
	v[nv++] = (struct iovec){ t->target, h->target_len };
	rb->total = sizeof(uint64_t) + sizeof(*h) + h->target_len;
	rb->forget_seq = w->forget_seq;
	size_t nf = isola__mirror_forgotten(&rb->forget_seq, rb->forget, 16);
	if (nf == SIZE_MAX) {
		h->flags |= PROC_FORGET_ALL;
	} else if (nf > 0) {
		h->nforget = (uint32_t)nf;
		v[nv++] = (struct iovec){ rb->forget, nf * sizeof(uint64_t) };
		rb->total += nf * sizeof(uint64_t);
	}
	for (uint32_t i = 0; i < h->n; i++) {
		const isola_msg *m = task_set(t, i);
		const void *p = NULL;
		size_t len = 0, nr = isola__msg_nrefs(m);
		isola_msg_bytes(m, &p, &len);
		rb->sets[i] = (struct proc_set){ .len = len, .nrefs = (uint32_t)nr };
		v[nv++] = (struct iovec){ &rb->sets[i], sizeof(rb->sets[i]) };
		rb->total += sizeof(rb->sets[i]);
		if (nr > 0) {
			v[nv++] = (struct iovec){ &rb->refs[k], nr * sizeof(rb->refs[0]) };
			rb->total += nr * sizeof(rb->refs[0]);
		}
		for (size_t j = 0; j < nr; j++, k++) {
			int kind;
			void *b;
			const void *d;
			size_t bl;
			isola_msg_ref(m, j, &kind, &b);
			isola_blob_data(b, &d, &bl);
			const struct isola__mirror *mir = copy_all ? NULL : isola__blob_mirror_peek(b);
			if (mir != NULL) {
				rb->refs[k] = (struct proc_ref){
					.mirror = mir->id, .len = bl,
					.keep = __atomic_load_n(&mir->uses, __ATOMIC_RELAXED) > 1
				};
				size_t f = 0;
				while (f < rb->nfds && rb->ids[f] != mir->id)
					f++;
				if (f == rb->nfds) {
					rb->ids[rb->nfds] = mir->id;
					rb->fds[rb->nfds++] = mir->fd;
				}
				rb->mapped++;
			} else {
				rb->refs[k] = (struct proc_ref){ .mirror = 0, .len = bl };
				if (bl > 0)
					v[nv++] = (struct iovec){ (void *)d, bl };
				rb->total += bl;
				rb->copied++;
			}
		}
		v[nv++] = (struct iovec){ (void *)p, len };
		rb->total += len;
	}
	/* Task graphs: each input's header, keyword, error texts and plain
	 * value (no references: isola__msg_plain). */
	for (size_t i = 0; i < t->n_inputs; i++) {
		const struct pinput *pi = &t->inputs[i];
		const void *p = NULL;
		size_t len = 0;
		if (pi->value != NULL)
			isola_msg_bytes(pi->value, &p, &len);
		const char *type = pi->type ? pi->type : "", *msg = pi->msg ? pi->msg : "";
		in[i] = (struct proc_input){ .status = pi->status, .position = pi->position,
					     .flags = pi->flags,
					     .keyword_len = pi->keyword ? (uint32_t)strlen(pi->keyword) : 0,
					     .type_len = (uint32_t)strlen(type),
					     .msg_len = (uint32_t)strlen(msg), .value_len = len };
		v[nv++] = (struct iovec){ &in[i], sizeof(in[i]) };
		v[nv++] = (struct iovec){ (void *)pi->keyword, in[i].keyword_len };
		v[nv++] = (struct iovec){ (void *)type, in[i].type_len };
		v[nv++] = (struct iovec){ (void *)msg, in[i].msg_len };
		v[nv++] = (struct iovec){ (void *)p, len };
		rb->total += sizeof(in[i]) + in[i].keyword_len + in[i].type_len + in[i].msg_len + len;
	}
	rb->nv = nv;
	h->nfds = (uint32_t)rb->nfds;
	return 0;
}

/* rb's frame on w's ring (its memfds already on the socket). */
static int write_request(struct pworker *w, struct reqbuf *rb, bool direct)
{
	isola__deadline forever;
	isola__deadline_init(&forever, -1);
	int r = isola__procring_send(w->shm, ISOLA__PROC_PARENT, rb->v, (int)rb->nv, &forever,
				     SLICE_NS, direct ? NULL : check_child, w);
	if (r == 0) {
		w->forget_seq = rb->forget_seq; /* this side owns the ring */
		/* stats only */
		isola__add_relaxed(&w->blobs_mapped, rb->mapped);
		isola__add_relaxed(&w->blobs_copied, rb->copied);
	}
	return r;
}

/* Write t's request to w's child from the proxy: its memfds on the
 * socket (waiting for room, checking the child between slices), then
 * the frame.  Memfds the socket refuses (the child closed its end, the
 * kernel's limit on descriptors in flight) are not an error: the blobs
 * are copied into the frame instead. */
static int send_request(struct pworker *w, struct ptask *t)
{
	struct reqbuf rb;
	int r = build_request(w, t, false, &rb);
	if (r != 0)
		return r;
	if (rb.nfds > 0) {
		r = isola__fds_send(w->sock, t->id, rb.fds, rb.ids, rb.nfds, true, SLICE_NS,
				    check_child, w);
		if (r == ISOLA_ECRASHED) {
			reqbuf_free(&rb);
			return r; /* the child is gone */
		}
		if (r != 0) { /* refused (a child that closed its end, say): copies */
			reqbuf_free(&rb);
			if ((r = build_request(w, t, true, &rb)) != 0)
				return r;
		}
	}
	r = write_request(w, &rb, false);
	reqbuf_free(&rb);
	return r;
}

/* t becomes the head of w's requests: the one the child runs now (it
 * runs them in order), which interrupts, the deadline and the running
 * name are about. */
static void begin_head(struct pworker *w, struct ptask *t)
{
	w->task = t;
	w->task_id = t->id;
	w->interrupted_at = 0;
	w->interrupt_why = INTERRUPT_NONE;
	w->head_since = isola__now_ns();
	w->deadline = t->timeout_ns > 0 ? w->head_since + t->timeout_ns : 0;
	pthread_mutex_lock(&w->name_lock);
	snprintf(w->running, sizeof(w->running), "%s", t->target);
	pthread_mutex_unlock(&w->name_lock);
}

/* Wait for the head's reply and complete its future.  False when the
 * child is gone (the head completed with the reason). */
static bool await_head(struct pworker *w)
{
	struct ptask *t = w->task;
	int r = 0;
	void *b = NULL;
	size_t len = 0;
	struct proc_rep rep;
	if (r == 0) {
		for (;;) {
			isola__deadline forever;
			isola__deadline_init(&forever, -1);
			r = isola__procring_recv(w->shm, ISOLA__PROC_PARENT, &b, &len, &forever,
						 SLICE_NS, check_child, w);
			if (r != 0)
				break;
			if (len < sizeof(rep)) {
				r = ISOLA_EDECODE;
				break;
			}
			memcpy(&rep, b, sizeof(rep));
			if (rep.id == w->task_id)
				break;
			isola__free(b); /* a stale reply: never expected, but harmless */
			b = NULL;
		}
	}
	bool alive = true;
	if (r == 0 && sizeof(rep) + rep.result_len + rep.type_len + rep.msg_len + rep.tb_len > len)
		r = ISOLA_EDECODE;
	if (r == 0) {
		const char *p = (const char *)b + sizeof(rep);
		isola__error e = { 0 };
		int status = rep.status;
		if (status != 0) {
			const char *q = p + rep.result_len;
			e.type = dup_n(q, rep.type_len);
			e.message = dup_n(q + rep.type_len, rep.msg_len);
			e.traceback = dup_n(q + rep.type_len + rep.msg_len, rep.tb_len);
			/* The child knows it was interrupted (ECANCELED); the proxy
			 * knows why. */
			if (status == ISOLA_ECANCELED && w->interrupt_why == INTERRUPT_TIMEOUT)
				status = ISOLA_ETIMEDOUT;
		}
		isola_msg res;
		isola_msg_init(&res);
		if (rep.result_len > 4096) { /* big: the reply's buffer becomes the message */
			memmove(b, p, (size_t)rep.result_len);
			if (isola_msg_adopt(&res, b, (size_t)rep.result_len) == 0)
				b = NULL;
		} else {
			isola_msg_set_bytes(&res, p, (size_t)rep.result_len);
		}
		isola__future_complete(t->f, status, &res, status ? &e : NULL);
		isola_msg_clear(&res);
		isola__error_clear(&e);
	} else {
		/* The child died (or its ring broke): this task fails alone. */
		alive = false;
		if (w->state == CHILD_RUNNING) {
			kill(w->pid, SIGKILL);
			reap(w, true);
		}
		char buf[512];
		describe_death(buf, sizeof(buf), w, w->wstatus);
		size_t k = strlen(buf);
		if (w->killed) {
			snprintf(buf + k, sizeof(buf) - k,
				 ": %s was interrupted and still ran %.1f s later, so it was killed",
				 t->target, (double)w->lane->grace_ns / 1e9);
			fail_task(t, w->interrupt_why == INTERRUPT_TIMEOUT ? ISOLA_ETIMEDOUT
									   : ISOLA_ECANCELED,
				  "isola.Cancelled", buf);
		} else {
			if (r != ISOLA_ECRASHED)
				snprintf(buf + k, sizeof(buf) - k, " (%s)", isola_strerror(r));
			k = strlen(buf);
			snprintf(buf + k, sizeof(buf) - k, " while running %s", t->target);
			isola__add_relaxed(&w->crashes, 1); /* stats only */
			fail_task(t, ISOLA_ECRASHED, "isola.WorkerCrashed", buf);
		}
	}
	isola__free(b);
	int64_t took = isola__now_ns() - w->head_since;
	w->last_ns = took;
	w->task = NULL;
	pthread_mutex_lock(&w->name_lock);
	w->running[0] = '\0';
	pthread_mutex_unlock(&w->name_lock);
	return alive;
}

/* Start (or restart) the child; report the first start to the lane.
 * False if the lane is to stop (setup failed). */
static bool start_child(struct pworker *w, bool first)
{
	struct isola__proclane *l = w->lane;
	char *why = NULL;
	int r = spawn_child(w);
	if (r != 0) {
		char buf[256];
		snprintf(buf, sizeof(buf), "process worker %d: cannot start %s: %s", w->index,
			 l->exe, strerror(errno));
		why = isola__strdup(buf);
	} else {
		r = await_ready(w, &why);
		if (r == ISOLA_ECRASHED)
			isola__add_relaxed(&w->crashes, 1); /* stats only */
	}
	if (r != 0)
		drop_child(w);
	if (first || r != 0) {
		pthread_mutex_lock(&l->lock);
		if (r == 0) {
			l->ready++;
		} else {
			l->failed++;
			if (l->why == NULL)
				l->why = why ? why : isola__strdup("a process worker failed to start");
			else
				isola__free(why);
			why = NULL;
		}
		pthread_cond_broadcast(&l->cond);
		pthread_mutex_unlock(&l->lock);
	}
	isola__free(why);
	return r == 0;
}

/* The proxy's next task: one handed to it directly (its request already
 * sent), or one from the lane's queue (then this proxy owns its ring:
 * idle swapped back to 0).  Publishes idle while it waits, if it may take
 * hand-offs (a live child).  NULL once the lane is closed and drained. */
static struct ptask *next_task(struct pworker *w, bool can_take, struct ptask **pending)
{
	struct isola__proclane *l = w->lane;
	if (*pending != NULL) {
		struct ptask *t = *pending;
		*pending = NULL;
		return t;
	}
	gate_drain(l->gate);
	if (can_take) /* Release: the child and its region are ready for claimers. */
		__atomic_store_n(&w->idle, 1, __ATOMIC_RELEASE);
	isola_channel *qs[2] = { w->direct, l->queue };
	isola_msg m;
	isola_msg_init(&m);
	size_t idx;
	int r = isola_channel_select(qs, 2, &m, -1, &idx);
	if (r != 0) {
		/* Closed and drained; a claimer that swapped idle now finds the
		 * direct queue closed and backs off.  Acq_rel: take the ring
		 * back (pairs with a claimer's acquire CAS). */
		int one = 1;
		__atomic_compare_exchange_n(&w->idle, &one, 0, false, __ATOMIC_ACQ_REL,
					    __ATOMIC_RELAXED);
		return NULL;
	}
	struct ptask *t;
	const void *p;
	size_t k;
	isola_msg_bytes(&m, &p, &k);
	memcpy(&t, p, sizeof(t));
	isola_msg_clear(&m);
	if (idx == 0)
		return t; /* handed over: idle was swapped by its submitter */
	int one = 1;
	/* Acq_rel: take the ring back from would-be claimers. */
	if (!can_take || __atomic_compare_exchange_n(&w->idle, &one, 0, false, __ATOMIC_ACQ_REL,
						     __ATOMIC_RELAXED))
		return t;
	/* A submitter claimed this worker meanwhile: its task comes first
	 * (on `direct`), unless it gives the claim back (idle 1 again). */
	for (;;) {
		isola_msg_init(&m);
		r = isola_channel_recv(w->direct, &m, 1000000);
		if (r == 0) {
			isola_msg_bytes(&m, &p, &k);
			struct ptask *d;
			memcpy(&d, p, sizeof(d));
			isola_msg_clear(&m);
			*pending = t;
			return d;
		}
		one = 1;
		/* Acq_rel: the claim given back (its release store) is seen, and
		 * the ring is this proxy's again. */
		if (__atomic_compare_exchange_n(&w->idle, &one, 0, false, __ATOMIC_ACQ_REL,
						__ATOMIC_RELAXED) || r == ISOLA_ECLOSED)
			return t;
	}
}

/* A task the proxy took: false if it is not to run (cancelled while
 * queued, or the lane cancels, or no child: then it is completed and
 * freed here). */
static bool accept_task(struct pworker *w, struct ptask *t, bool *ok)
{
	struct isola__proclane *l = w->lane;
	if (t->sent)
		return true; /* started by its submitter; the child has it */
	/* Acquire: pairs with shutdown's CAS. */
	if (isola__load_acquire(&l->closing) == LANE_CANCEL) {
		fail_task(t, ISOLA_ECANCELED, "isola.Cancelled", "the pool shut down before it ran");
		ptask_free(t);
		return false;
	}
	if (!*ok) {
		pthread_mutex_lock(&l->lock);
		char *why = isola__strdup(l->why ? l->why : "no process worker");
		pthread_mutex_unlock(&l->lock);
		fail_task(t, ISOLA_ECRASHED, "isola.BrokenPool", why);
		isola__free(why);
		ptask_free(t);
		/* Try again for the next task: what failed may pass (a
		 * transient crash); a broken setup fails each task fast. */
		if (isola__load_acquire(&l->closing) == LANE_OPEN || isola__proclane_waiting(l) > 0)
			*ok = start_child(w, false);
		return false;
	}
	/* Cancelled while queued (unless its submitter started it). */
	if (!t->started && !isola__future_start(t->f)) {
		ptask_free(t);
		return false;
	}
	t->id = __atomic_add_fetch(&w->next_id, 1, __ATOMIC_RELAXED); /* unique, no order */
	return true;
}

/* The next queued task without waiting, or NULL. */
static struct ptask *try_queued(struct isola__proclane *l)
{
	gate_drain(l->gate);
	isola_msg m;
	isola_msg_init(&m);
	if (isola_channel_recv(l->queue, &m, 0) != 0)
		return NULL;
	struct ptask *t;
	const void *p;
	size_t k;
	isola_msg_bytes(&m, &p, &k);
	memcpy(&t, p, sizeof(t));
	isola_msg_clear(&m);
	return t;
}

/*
 * The proxy.  Pipelining: while tasks are short (the last one took under
 * PIPELINE_NS), up to PIPELINE_DEPTH requests are in the child's ring at
 * once, so a stream of small tasks costs the child no sleep between
 * them; the child runs them in order, the first unanswered one (the
 * head) is the running one.  A long task keeps the depth at 1, so no
 * task waits behind it while another worker is free.  When the child
 * dies, the head fails and the requests behind it go to the next child.
 */
static void *proxy_main(void *arg)
{
	struct pworker *w = arg;
	struct isola__proclane *l = w->lane;
	bool ok = start_child(w, true);
	struct ptask *pending = NULL;
	struct ptask *flight[PIPELINE_DEPTH]; /* [0] is the head */
	int n = 0;
	bool closed = false;
	for (;;) {
		/* Fill the pipeline. */
		while (!closed) {
			/* Deeper only for short tasks with more queued than workers
			 * (others are busy too: nothing waits behind a long task
			 * while a worker idles, unless the task turns out long). */
			int depth = w->last_ns < PIPELINE_NS && queue_depth(l->queue) >= (size_t)l->n
					    ? PIPELINE_DEPTH : 1;
			if (n >= depth || (n > 0 && !ok))
				break;
			struct ptask *t;
			if (n == 0) {
				t = next_task(w, ok, &pending);
				if (t == NULL) {
					closed = true;
					break;
				}
			} else if (pending != NULL) {
				t = pending;
				pending = NULL;
			} else if ((t = try_queued(l)) == NULL) {
				break;
			}
			if (!accept_task(w, t, &ok))
				continue;
			if (!t->sent && send_request(w, t) != 0) {
				/* The child died under the send: it goes with the
				 * others to the next child (the head fails below). */
				flight[n++] = t;
				if (n == 1)
					begin_head(w, t);
				break;
			}
			flight[n++] = t;
			if (n == 1)
				begin_head(w, t);
		}
		if (n == 0) {
			if (closed)
				break;
			continue;
		}
		bool alive = await_head(w);
		isola__add_relaxed(&w->tasks_run, 1); /* stats only */
		ptask_free(flight[0]);
		memmove(flight, flight + 1, (size_t)(n - 1) * sizeof(flight[0]));
		n--;
		if (!alive) {
			drop_child(w);
			ok = (isola__load_acquire(&l->closing) == LANE_OPEN || n > 0 ||
			      queue_depth(l->queue) > 0 || isola__proclane_waiting(l) > 0) &&
			     start_child(w, false);
			/* Requests the dead child had not started: to the new one. */
			for (int i = 0; i < n; i++) {
				flight[i]->sent = false;
				if (!ok || send_request(w, flight[i]) != 0) {
					for (int j = i; j < n; j++) {
						fail_task(flight[j], ISOLA_ECRASHED, "isola.WorkerCrashed",
							  "its process worker died before it ran, and no "
							  "other could start");
						ptask_free(flight[j]);
					}
					n = i;
					break;
				}
			}
		}
		if (n > 0)
			begin_head(w, flight[0]);
	}
	/* Goodbye: the child leaves its loop and exits; after the grace it
	 * is killed.  Reaped either way. */
	if (w->shm != NULL && w->state == CHILD_RUNNING) {
		isola__procring_close(w->shm, ISOLA__PROC_PARENT);
		int64_t end = isola__now_ns() + l->grace_ns;
		while (!reap(w, false) && isola__now_ns() < end)
			usleep(1000);
	}
	drop_child(w);
	pthread_mutex_lock(&l->lock);
	l->exited++;
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->lock);
	return NULL;
}

/* ---- the lane ------------------------------------------------------------ */

static char **copy_strv(const char *const *v, size_t *n, size_t spare)
{
	size_t k = 0;
	while (v != NULL && v[k] != NULL)
		k++;
	char **c = isola__calloc(k + 1 + spare, sizeof(char *));
	for (size_t i = 0; c != NULL && i < k; i++) {
		c[i] = isola__strdup(v[i]);
		if (c[i] == NULL) {
			for (size_t j = 0; j < i; j++)
				isola__free(c[j]);
			isola__free(c);
			return NULL;
		}
	}
	if (n != NULL)
		*n = k;
	return c;
}

static void free_strv(char **v)
{
	for (size_t i = 0; v != NULL && v[i] != NULL; i++)
		isola__free(v[i]);
	isola__free(v);
}

void isola__proclane_destroy(isola__proclane *l)
{
	if (l == NULL)
		return;
	for (int i = 0; l->w != NULL && i < l->n; i++) {
		pthread_mutex_destroy(&l->w[i].name_lock);
		pthread_mutex_destroy(&l->w[i].ring_lock);
		isola_channel_release(l->w[i].direct);
	}
	if (l->gate != NULL) {
		pthread_mutex_lock(&l->gate->lock); /* a ready task no longer hands off here */
		l->gate->lane = NULL;
		pthread_mutex_unlock(&l->gate->lock);
		gate_release(l->gate);
	}
	isola__free(l->w);
	isola_channel_release(l->queue);
	isola__pool_link_release(l->link);
	free_strv(l->argv);
	free_strv(l->envp);
	isola__free(l->exe);
	isola__free(l->why);
	pthread_mutex_destroy(&l->lock);
	pthread_cond_destroy(&l->cond);
	isola__free(l);
}

int isola__proclane_create(const isola__proclane_options *o, isola__proclane **out)
{
	*out = NULL;
	if (o == NULL || o->workers < 1 || o->workers > ISOLA_MAX_WORKERS || o->exe == NULL ||
	    o->argv == NULL || o->grace_ns < 0)
		return ISOLA_EINVAL;
	isola__proclane *l = isola__calloc(1, sizeof(*l));
	if (l == NULL)
		return ISOLA_ENOMEM;
	pthread_mutex_init(&l->lock, NULL);
	pthread_cond_init(&l->cond, NULL);
	l->n = o->workers;
	l->grace_ns = o->grace_ns;
	l->ring_bytes = o->ring_bytes ? o->ring_bytes : ((size_t)1 << 20);
	l->mirror_min = o->mirror_min ? o->mirror_min : ISOLA__MIRROR_MIN_DEFAULT;
	l->parent = getpid();
	l->exe = isola__strdup(o->exe);
	l->argv = copy_strv(o->argv, &l->argc, 2);
	const char *const empty[] = { NULL };
	l->envp = copy_strv(o->envp ? o->envp : empty, NULL, 0);
	l->link = isola__pool_link_new(NULL);
	l->w = isola__calloc((size_t)l->n, sizeof(*l->w));
	int r = l->exe && l->argv && l->envp && l->link && l->w ? 0 : ISOLA_ENOMEM;
	if (r == 0)
		r = isola_channel_create(QUEUE_CAP, &l->queue);
	if (r == 0 && (l->gate = gate_new(l->queue)) == NULL)
		r = ISOLA_ENOMEM;
	if (r != 0) {
		l->n = l->w ? l->n : 0;
		isola__proclane_destroy(l);
		return r;
	}
	for (int i = 0; i < l->n; i++) {
		l->w[i].lane = l;
		l->w[i].index = i;
		l->w[i].last_ns = PIPELINE_NS; /* no pipelining before a short task */
		l->w[i].sock = -1;
		pthread_mutex_init(&l->w[i].name_lock, NULL);
		pthread_mutex_init(&l->w[i].ring_lock, NULL);
		if (r == 0)
			r = isola_channel_create(2, &l->w[i].direct);
	}
	if (r != 0) {
		isola__proclane_destroy(l);
		return r;
	}
	l->gate->lane = l; /* before any thread can see the gate */
	int started = 0;
	for (; started < l->n; started++) {
		if (pthread_create(&l->w[started].thread, NULL, proxy_main, &l->w[started]) != 0)
			break;
		l->w[started].thread_started = true;
	}
	if (started < l->n) {
		isola_channel_close(l->queue);
		for (int i = 0; i < l->n; i++)
			isola_channel_close(l->w[i].direct);
		for (int i = 0; i < started; i++)
			pthread_join(l->w[i].thread, NULL);
		isola__proclane_destroy(l);
		return ISOLA_ESYS;
	}
	*out = l;
	return 0;
}

int isola__proclane_wait_ready(isola__proclane *l, int64_t timeout_ns, char **why)
{
	*why = NULL;
	isola__deadline d;
	isola__deadline_init(&d, timeout_ns);
	pthread_mutex_lock(&l->lock);
	int r = 0;
	while (l->ready < l->n && l->failed == 0) {
		if (d.forever) {
			pthread_cond_wait(&l->cond, &l->lock);
		} else {
			struct timespec ts; /* the cond uses CLOCK_REALTIME */
			clock_gettime(CLOCK_REALTIME, &ts);
			int64_t left = ((int64_t)d.at.tv_sec * 1000000000 + d.at.tv_nsec) -
				       isola__now_ns();
			if (left <= 0) {
				r = ISOLA_ETIMEDOUT;
				break;
			}
			int64_t at = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + left;
			ts.tv_sec = at / 1000000000;
			ts.tv_nsec = at % 1000000000;
			pthread_cond_timedwait(&l->cond, &l->lock, &ts);
		}
	}
	if (r == 0 && l->failed > 0) {
		r = ISOLA_EPYTHON;
		*why = isola__strdup(l->why ? l->why : "a process worker failed to start");
	}
	pthread_mutex_unlock(&l->lock);
	return r;
}

int isola__proclane_size(isola__proclane *l)
{
	return l->n;
}

size_t isola__proclane_queued(isola__proclane *l)
{
	return queue_depth(l->queue);
}

void isola__proclane_stats(isola__proclane *l, int i, isola__proc_stats *out)
{
	struct pworker *w = &l->w[i];
	/* Relaxed: figures, each read whole; no data depends on them. */
	out->pid = __atomic_load_n(&w->pid, __ATOMIC_RELAXED);
	out->tasks_run = isola__load_relaxed(&w->tasks_run);
	out->crashes = isola__load_relaxed(&w->crashes);
	out->starts = isola__load_relaxed(&w->starts);
	out->blobs_mapped = isola__load_relaxed(&w->blobs_mapped);
	out->blobs_copied = isola__load_relaxed(&w->blobs_copied);
	pthread_mutex_lock(&w->name_lock);
	memcpy(out->running, w->running, sizeof(out->running));
	pthread_mutex_unlock(&w->name_lock);
}

int isola__proclane_shutdown(isola__proclane *l, int how, int wait, int64_t timeout_ns)
{
	int level = how & ISOLA_SHUTDOWN_CANCEL ? LANE_CANCEL : LANE_FINISH;
	/* Acq_rel CAS: the level before the queue closes (proxies read it
	 * with acquire after taking a task).  Only rises: a later FINISH
	 * never lowers a CANCEL. */
	int cur = isola__load_acquire(&l->closing);
	while (cur < level && !isola__cas_acq_rel(&l->closing, &cur, level))
		;
	/* The gate's copy, seq_cst (see gate_close_if_idle); only rises. */
	cur = __atomic_load_n(&l->gate->closing, __ATOMIC_SEQ_CST);
	while (cur < level && !__atomic_compare_exchange_n(&l->gate->closing, &cur, level, false,
							  __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
		;
	if (how & ISOLA_SHUTDOWN_INTERRUPT) /* read by the proxies' checks */
		isola__store_release(&l->interrupt_all, 1);
	if (level == LANE_CANCEL) {
		gate_close_queues(l->gate);
		gate_cancel(l->gate);
	} else {
		/* Tasks waiting for inputs were submitted before: they run, so
		 * the queues close once none waits (the last make_ready). */
		gate_close_if_idle(l->gate);
	}
	if (!wait)
		return 0;
	isola__deadline d;
	isola__deadline_init(&d, timeout_ns);
	pthread_mutex_lock(&l->lock);
	int r = 0;
	while (l->exited < l->n && r == 0) {
		if (d.forever) {
			pthread_cond_wait(&l->cond, &l->lock);
			continue;
		}
		int64_t left = ((int64_t)d.at.tv_sec * 1000000000 + d.at.tv_nsec) - isola__now_ns();
		if (left <= 0) {
			r = ISOLA_ETIMEDOUT;
			break;
		}
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		int64_t at = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + left;
		ts.tv_sec = at / 1000000000;
		ts.tv_nsec = at % 1000000000;
		pthread_cond_timedwait(&l->cond, &l->lock, &ts);
	}
	bool join = r == 0 && !l->joined;
	if (join)
		l->joined = true;
	pthread_mutex_unlock(&l->lock);
	for (int i = 0; join && i < l->n; i++)
		pthread_join(l->w[i].thread, NULL);
	return r;
}
