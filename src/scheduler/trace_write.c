/*
 * trace_write.c - trace files: the writer that drains workers' rings
 * (trace.h) into Trace Event Format JSON, and the pools that share a file.
 *
 * One session per file path: the first traced pool opens it and starts
 * its writer thread; later pools tracing to the same path join it (one
 * process track each, "pid" = the pool's number in the file); the last
 * pool to leave writes the end and closes it.  A pool made later that
 * traces to a file this process finished carries on in it, after its
 * last event (struct finished).  The writer wakes every
 * DRAIN_MS, formats every ring's committed events (by hand: snprintf per
 * field would cost the machine more than the recording does) and hands
 * the slots back.  The file is written from start to end as
 *
 *   {"traceEvents":[ event, ... metadata ... ],
 *    "displayTimeUnit":"ns","otherData":{"isola_dropped_events":N, ...}}
 *
 * sessions_lock guards the list of sessions; a session's lock guards its
 * pools, its file and its counters (the writer holds it while draining,
 * so a pool leaving waits for at most one drain).
 */
#include "scheduler/trace.h"
#include "scheduler/pool.h"

#include "common/alloc.h"
#include "channels/wait.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DRAIN_MS 10
#define BUF_SIZE (1 << 20)
#define EVENT_MAX 2048 /* the longest event or metadata line formatted */
#define WD_EVENTS 256 /* a watchdog's ring: interrupts are rare */

struct trace_member {
	struct isola_pool *pool;
	struct trace_member *next;
};

struct session {
	char *path;
	int fd;
	bool write_failed; /* lock: an error was reported; the rest is dropped */
	char *buf;         /* lock: formatted, not yet written (BUF_SIZE) */
	size_t buf_n;
	off_t written;     /* lock: bytes in the file before buf */
	int refs;         /* sessions_lock: pools in it */
	int next_pid;     /* lock */
	bool any;         /* lock: an event was written (comma before the next) */
	uint64_t events, dropped; /* lock: totals for otherData */
	struct trace_member *members; /* lock */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop; /* lock */
	pthread_t writer;
	pid_t owner;      /* the process whose writer thread this is */
	struct session *next; /* sessions_lock */
};

/* A pool's part in a session (isola_pool.trace). */
struct isola__trace_pool {
	struct session *s;
	int pid;
	bool ended; /* s->lock */
};

static pthread_mutex_t sessions_lock = PTHREAD_MUTEX_INITIALIZER;
static struct session *sessions; /* sessions_lock */

/* A file this process finished: a later pool tracing to it carries on
 * there (its end cut off, its events kept), so that a program whose
 * pools come one after the other (ISOLA_TRACE) leaves all of them in
 * one file, valid after each pool; unless the file changed meanwhile. */
struct finished {
	char *path;
	off_t tail_at, size; /* where the end begins, the file's size */
	int next_pid;
	uint64_t events, dropped;
	struct finished *next;
};
static struct finished *finished; /* sessions_lock */

/* Take path's record off the list (NULL: none).  Needs sessions_lock. */
static struct finished *finished_take(const char *path)
{
	for (struct finished **pp = &finished; *pp != NULL; pp = &(*pp)->next)
		if (strcmp((*pp)->path, path) == 0) {
			struct finished *f = *pp;
			*pp = f->next;
			return f;
		}
	return NULL;
}

/* ---- formatting ------------------------------------------------------
 * Straight into the session's buffer (no stdio, no per-field snprintf):
 * emit_begin() makes room for EVENT_MAX bytes, which bounds any one line (names
 * are at most ISOLA__TRACE_NAME bytes, 6 when escaped). */

struct out {
	char *p;
};

static void put(struct out *o, const char *s, size_t n)
{
	memcpy(o->p, s, n);
	o->p += n;
}

#define PUT(o, lit) put((o), lit, sizeof(lit) - 1)

static void put_u64(struct out *o, uint64_t v)
{
	char tmp[24];
	int i = sizeof(tmp);
	do {
		tmp[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	put(o, tmp + i, sizeof(tmp) - (size_t)i);
}

/* Nanoseconds as microseconds with three decimals (the format's unit). */
static void put_us(struct out *o, int64_t ns)
{
	if (ns < 0) {
		PUT(o, "-");
		ns = -ns;
	}
	put_u64(o, (uint64_t)ns / 1000);
	char frac[4] = { '.', (char)('0' + ns / 100 % 10), (char)('0' + ns / 10 % 10),
			 (char)('0' + ns % 10) };
	put(o, frac, 4);
}

/* A JSON string (quoted, escaped); s is at most 128 bytes. */
static void put_str(struct out *o, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	char *p = o->p;
	*p++ = '"';
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c >= 0x20 && c != '"' && c != '\\') {
			*p++ = (char)c;
		} else if (c >= 0x20) {
			*p++ = '\\';
			*p++ = (char)c;
		} else {
			memcpy(p, "\\u00", 4);
			p[4] = hex[c >> 4];
			p[5] = hex[c & 15];
			p += 6;
		}
	}
	*p++ = '"';
	o->p = p;
}

/* Write what the buffer holds.  Needs s->lock. */
static void flush_buf(struct session *s)
{
	size_t done = 0;
	while (done < s->buf_n && !s->write_failed) {
		ssize_t k = write(s->fd, s->buf + done, s->buf_n - done);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			fprintf(stderr, "isola: writing the trace %s failed: %s\n", s->path,
				k < 0 ? strerror(errno) : "no progress");
			s->write_failed = true;
		} else {
			done += (size_t)k;
		}
	}
	s->written += (off_t)s->buf_n;
	s->buf_n = 0;
}

/* Where the next line goes: a separator written, room for EVENT_MAX
 * bytes made.  Needs s->lock; finish with emit_end(). */
static struct out emit_begin(struct session *s)
{
	if (s->buf_n + EVENT_MAX > BUF_SIZE)
		flush_buf(s);
	struct out o = { s->buf + s->buf_n };
	if (s->any)
		PUT(&o, ",\n");
	s->any = true;
	return o;
}

static void emit_end(struct session *s, struct out *o)
{
	s->buf_n = (size_t)(o->p - s->buf);
}

static const char *const outcome_names[] = {
	[TRACE_OK] = "ok",
	[TRACE_ERROR] = "error",
	[TRACE_CANCELLED] = "cancelled",
	[TRACE_INTERRUPTED] = "interrupted",
	[TRACE_TIMED_OUT] = "timed out",
	[TRACE_STILL_RUNNING] = "still running",
};

static const char *category(const struct isola__trace_event *e)
{
	switch (e->kind) {
	case TRACE_EV_INTERRUPT:
		return "interrupt";
	case TRACE_EV_WORKER_START:
	case TRACE_EV_WORKER_END:
		return "worker";
	default:
		break;
	}
	switch (e->task_kind) {
	case TASK_CHUNK:
		return "map chunk";
	case TASK_RUN:
		return "run";
	case TASK_ACTOR_NEW:
	case TASK_ACTOR_CALL:
	case TASK_ACTOR_KILL:
		return "actor";
	default:
		return "task";
	}
}

/* One event as JSON.  Needs s->lock. */
static void write_event(struct session *s, int pid, int tid, const struct isola__trace_event *e)
{
	struct out o = emit_begin(s);
	bool slice = e->kind == TRACE_EV_TASK || e->kind == TRACE_EV_WORKER_START ||
		     e->kind == TRACE_EV_WORKER_END;
	PUT(&o, "{\"name\":");
	put_str(&o, e->kind == TRACE_EV_INTERRUPT ? "interrupt" : e->name);
	PUT(&o, ",\"cat\":");
	put_str(&o, category(e));
	if (slice)
		PUT(&o, ",\"ph\":\"X\",\"ts\":");
	else
		PUT(&o, ",\"ph\":\"i\",\"s\":\"t\",\"ts\":");
	put_us(&o, e->start_ns);
	if (slice) {
		PUT(&o, ",\"dur\":");
		put_us(&o, e->end_ns - e->start_ns);
	}
	PUT(&o, ",\"pid\":");
	put_u64(&o, (uint64_t)pid);
	PUT(&o, ",\"tid\":");
	put_u64(&o, (uint64_t)tid);
	if (e->kind != TRACE_EV_WORKER_START && e->kind != TRACE_EV_WORKER_END) {
		PUT(&o, ",\"args\":{\"outcome\":");
		put_str(&o, outcome_names[e->outcome <= TRACE_STILL_RUNNING ? e->outcome : 0]);
		if (e->kind == TRACE_EV_INTERRUPT) {
			PUT(&o, ",\"task\":");
			put_str(&o, e->name);
		}
		if (e->error[0]) {
			PUT(&o, ",\"error\":");
			put_str(&o, e->error);
		}
		if (e->queued_ns > 0) {
			PUT(&o, ",\"queued_us\":");
			put_us(&o, e->start_ns > e->queued_ns ? e->start_ns - e->queued_ns : 0);
		}
		if (e->calls > 0) {
			PUT(&o, ",\"calls\":");
			put_u64(&o, e->calls);
		}
		PUT(&o, "}");
	}
	PUT(&o, "}");
	emit_end(s, &o);
	s->events++;
}

/* Format and hand back every committed event of r.  Needs s->lock. */
static void drain_ring(struct session *s, int pid, struct isola__trace_ring *r)
{
	if (r == NULL)
		return;
	/* Acquire: pairs with the producer's release of head (the events
	 * below are complete). */
	uint64_t h = __atomic_load_n(&r->head, __ATOMIC_ACQUIRE);
	uint64_t t = r->tail; /* only this side writes tail */
	int tid = __atomic_load_n(&r->os_tid, __ATOMIC_RELAXED); /* see trace.c */
	for (; t != h; t++)
		write_event(s, pid, tid, &r->ev[t & r->mask]);
	/* Release: the slots were read before the producer may reuse them. */
	__atomic_store_n(&r->tail, t, __ATOMIC_RELEASE);
}

/* Needs s->lock. */
static void drain_pool(struct session *s, struct isola_pool *p)
{
	for (int i = 0; i < p->n; i++) {
		drain_ring(s, p->trace->pid, p->workers[i].trace);
		drain_ring(s, p->trace->pid, p->workers[i].trace_wd);
	}
}

static void *writer_main(void *arg)
{
	struct session *s = arg;
	pthread_setname_np(pthread_self(), "isola-trace");
	pthread_mutex_lock(&s->lock);
	while (!s->stop) {
		for (struct trace_member *m = s->members; m != NULL; m = m->next)
			drain_pool(s, m->pool);
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += DRAIN_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&s->cond, &s->lock, &ts);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* A task w still runs as its pool leaves the file (abandoned: the process
 * exits under it) is a slice up to now, "still running".  Needs s->lock. */
static void write_still_running(struct session *s, int pid, int tid, struct worker *w)
{
	struct isola__trace_event e = { .kind = TRACE_EV_TASK, .outcome = TRACE_STILL_RUNNING };
	char name[ISOLA_RUNNING_NAME_MAX];
	uint64_t ns;
	isola__worker_running(w, name, &ns);
	if (name[0] == '\0')
		return;
	isola__trace_copy_name(e.name, name, sizeof(e.name));
	e.end_ns = isola__now_ns();
	e.start_ns = e.end_ns - (int64_t)ns;
	write_event(s, pid, tid, &e);
}

/* The metadata of a pool leaving: names of its process and threads (the
 * dropped count in a worker's name, where a viewer shows it).  Needs
 * s->lock. */
static void write_pool_end(struct session *s, struct isola_pool *p)
{
	struct out o;
	char name[128];
	snprintf(name, sizeof(name), "isola pool %d (%d worker%s)", p->trace->pid, p->n,
		 p->n == 1 ? "" : "s");
	o = emit_begin(s);
	PUT(&o, "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":");
	put_u64(&o, (uint64_t)p->trace->pid);
	PUT(&o, ",\"args\":{\"name\":");
	put_str(&o, name);
	PUT(&o, "}}");
	emit_end(s, &o);
	o = emit_begin(s);
	PUT(&o, "{\"name\":\"process_sort_index\",\"ph\":\"M\",\"pid\":");
	put_u64(&o, (uint64_t)p->trace->pid);
	PUT(&o, ",\"args\":{\"sort_index\":");
	put_u64(&o, (uint64_t)p->trace->pid);
	PUT(&o, "}}");
	emit_end(s, &o);
	for (int i = 0; i < p->n; i++) {
		struct worker *w = &p->workers[i];
		uint64_t dropped = __atomic_load_n(&w->trace->dropped, __ATOMIC_RELAXED) +
				   (w->trace_wd ? __atomic_load_n(&w->trace_wd->dropped,
								  __ATOMIC_RELAXED) : 0);
		s->dropped += dropped;
		int tid = __atomic_load_n(&w->trace->os_tid, __ATOMIC_RELAXED);
		if (dropped > 0)
			snprintf(name, sizeof(name), "worker %d (%llu events dropped)", i,
				 (unsigned long long)dropped);
		else
			snprintf(name, sizeof(name), "worker %d", i);
		write_still_running(s, p->trace->pid, tid, w);
		const char *meta[2] = { "thread_name", "thread_sort_index" };
		for (int k = 0; k < 2; k++) {
			o = emit_begin(s);
			PUT(&o, "{\"name\":");
			put_str(&o, meta[k]);
			PUT(&o, ",\"ph\":\"M\",\"pid\":");
			put_u64(&o, (uint64_t)p->trace->pid);
			PUT(&o, ",\"tid\":");
			put_u64(&o, (uint64_t)tid);
			PUT(&o, ",\"args\":{");
			if (k == 0) {
				PUT(&o, "\"name\":");
				put_str(&o, name);
				PUT(&o, ",\"worker\":");
				put_u64(&o, (uint64_t)i);
				PUT(&o, ",\"dropped\":");
				put_u64(&o, dropped);
			} else {
				PUT(&o, "\"sort_index\":");
				put_u64(&o, (uint64_t)i);
			}
			PUT(&o, "}}");
			emit_end(s, &o);
		}
	}
}

static void trace_atexit(void);

/* ---- sessions -------------------------------------------------------- */

/* The session writing path, opened if none does (a new one truncates the
 * file), with one more reference.  NULL with errno set on failure.
 * Needs sessions_lock. */
static struct session *session_get(const char *path)
{
	for (struct session *s = sessions; s != NULL; s = s->next)
		if (strcmp(s->path, path) == 0) {
			s->refs++;
			return s;
		}
	struct session *s = isola__calloc(1, sizeof(*s));
	if (s == NULL || (s->path = isola__strdup(path)) == NULL) {
		isola__free(s);
		errno = ENOMEM;
		return NULL;
	}
	struct finished *was = finished_take(path);
	struct stat st;
	s->fd = -1;
	if (was != NULL && stat(path, &st) == 0 && st.st_size == was->size) {
		/* Carry on after the last event: cut the end off. */
		s->fd = open(path, O_WRONLY | O_CLOEXEC);
		if (s->fd >= 0 && (ftruncate(s->fd, was->tail_at) != 0 ||
				   lseek(s->fd, was->tail_at, SEEK_SET) != was->tail_at)) {
			close(s->fd);
			s->fd = -1;
		}
		if (s->fd >= 0) {
			s->written = was->tail_at;
			s->any = true;
			s->next_pid = was->next_pid;
			s->events = was->events;
			s->dropped = was->dropped;
		}
	}
	if (was != NULL) {
		isola__free(was->path);
		isola__free(was);
	}
	bool fresh = s->fd < 0;
	if (fresh)
		s->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	s->buf = s->fd >= 0 ? isola__malloc(BUF_SIZE) : NULL;
	if (s->buf == NULL) {
		int e = s->fd < 0 ? errno : ENOMEM;
		if (s->fd >= 0)
			close(s->fd);
		isola__free(s->path);
		isola__free(s);
		errno = e;
		return NULL;
	}
	static const char head[] = "{\"traceEvents\":[\n";
	if (fresh) {
		memcpy(s->buf, head, sizeof(head) - 1);
		s->buf_n = sizeof(head) - 1;
	}
	pthread_mutex_init(&s->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&s->writer, NULL, writer_main, s) != 0) {
		close(s->fd);
		remove(path);
		isola__free(s->buf);
		pthread_mutex_destroy(&s->lock);
		pthread_cond_destroy(&s->cond);
		isola__free(s->path);
		isola__free(s);
		errno = EAGAIN;
		return NULL;
	}
	static bool hooked;
	if (!hooked)
		hooked = atexit(trace_atexit) == 0;
	s->refs = 1;
	s->owner = getpid();
	s->next = sessions;
	sessions = s;
	return s;
}

/* Drop a reference; the last one writes the end and closes the file.
 * Needs sessions_lock. */
static void session_put(struct session *s)
{
	if (--s->refs > 0)
		return;
	for (struct session **pp = &sessions; *pp != NULL; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	pthread_mutex_lock(&s->lock);
	s->stop = true;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->writer, NULL);
	if (s->buf_n + EVENT_MAX > BUF_SIZE)
		flush_buf(s);
	off_t tail_at = s->written + (off_t)s->buf_n;
	s->buf_n += (size_t)snprintf(s->buf + s->buf_n, EVENT_MAX,
		"\n],\"displayTimeUnit\":\"ns\",\"otherData\":{\"isola_events\":%llu,"
		"\"isola_dropped_events\":%llu,\"clock\":\"CLOCK_MONOTONIC\"}}\n",
		(unsigned long long)s->events, (unsigned long long)s->dropped);
	flush_buf(s);
	if (close(s->fd) != 0 && !s->write_failed) {
		fprintf(stderr, "isola: writing the trace %s failed: %s\n", s->path,
			strerror(errno));
		s->write_failed = true;
	}
	struct finished *f = s->write_failed ? NULL : isola__calloc(1, sizeof(*f));
	if (f != NULL && (f->path = isola__strdup(s->path)) != NULL) {
		f->tail_at = tail_at;
		f->size = s->written;
		f->next_pid = s->next_pid;
		f->events = s->events;
		f->dropped = s->dropped;
		f->next = finished;
		finished = f;
	} else {
		isola__free(f);
	}
	isola__free(s->buf);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	isola__free(s->path);
	isola__free(s);
}

static uint32_t events_wanted(uint32_t asked)
{
	if (asked > 0)
		return asked;
	const char *env = getenv("ISOLA_TRACE_BUFFER");
	long v = env != NULL ? strtol(env, NULL, 10) : 0;
	return v > 0 && v < (1L << 24) ? (uint32_t)v : ISOLA__TRACE_DEFAULT_EVENTS;
}

int isola__trace_pool_begin(struct isola_pool *p, const char *path,
			    uint32_t events_per_worker, char **error_out)
{
	bool from_env = path == NULL || path[0] == '\0';
	if (from_env)
		path = getenv("ISOLA_TRACE");
	if (path == NULL || path[0] == '\0')
		return 0;
	struct isola__trace_pool *tp = isola__calloc(1, sizeof(*tp));
	if (tp == NULL)
		return ISOLA_ENOMEM;
	uint32_t cap = events_wanted(events_per_worker);
	for (int i = 0; i < p->n; i++) {
		p->workers[i].trace = isola__trace_ring_new(cap);
		p->workers[i].trace_wd = isola__trace_ring_new(WD_EVENTS);
		if (p->workers[i].trace == NULL || p->workers[i].trace_wd == NULL) {
			p->trace = tp; /* for isola__trace_pool_free */
			isola__trace_pool_free(p);
			return ISOLA_ENOMEM;
		}
	}
	pthread_mutex_lock(&sessions_lock);
	struct session *s = session_get(path);
	pthread_mutex_unlock(&sessions_lock);
	if (s == NULL) {
		char msg[512];
		snprintf(msg, sizeof(msg), "cannot write the trace %s: %s", path, strerror(errno));
		p->trace = tp;
		isola__trace_pool_free(p);
		if (from_env) { /* the environment's wish: warn, run untraced */
			fprintf(stderr, "isola: ISOLA_TRACE: %s\n", msg);
			return 0;
		}
		if (error_out != NULL)
			*error_out = isola__strdup(msg);
		return ISOLA_ESYS;
	}
	struct trace_member *m = isola__calloc(1, sizeof(*m));
	if (m == NULL) {
		pthread_mutex_lock(&sessions_lock);
		session_put(s);
		pthread_mutex_unlock(&sessions_lock);
		p->trace = tp;
		isola__trace_pool_free(p);
		return ISOLA_ENOMEM;
	}
	tp->s = s;
	p->trace = tp;
	m->pool = p;
	pthread_mutex_lock(&s->lock);
	tp->pid = ++s->next_pid;
	m->next = s->members;
	s->members = m;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

/* Drain p's rings, write its metadata, take it out of its session.
 * Needs sessions_lock; false if it had left already. */
static bool leave(struct isola_pool *p)
{
	struct isola__trace_pool *tp = p->trace;
	struct session *s = tp != NULL ? tp->s : NULL;
	if (s == NULL)
		return false;
	pthread_mutex_lock(&s->lock);
	tp->ended = true;
	drain_pool(s, p);
	write_pool_end(s, p);
	for (struct trace_member **mm = &s->members; *mm != NULL; mm = &(*mm)->next)
		if ((*mm)->pool == p) {
			struct trace_member *m = *mm;
			*mm = m->next;
			isola__free(m);
			break;
		}
	flush_buf(s); /* this pool's part is on disk */
	pthread_mutex_unlock(&s->lock);
	tp->s = NULL;
	return true;
}

void isola__trace_pool_end(struct isola_pool *p)
{
	if (p->trace == NULL)
		return;
	pthread_mutex_lock(&sessions_lock);
	struct session *s = p->trace->s;
	if (leave(p))
		session_put(s);
	pthread_mutex_unlock(&sessions_lock);
}

void isola__trace_close_all(void)
{
	pthread_mutex_lock(&sessions_lock);
	while (sessions != NULL) {
		struct session *s = sessions;
		if (s->owner != getpid()) {
			/* A forked child's copy: its writer thread is the
			 * parent's, and the file too.  Forget it. */
			sessions = s->next;
			continue;
		}
		while (s->members != NULL)
			leave(s->members->pool);
		s->refs = 1;
		session_put(s);
	}
	pthread_mutex_unlock(&sessions_lock);
}

static void trace_atexit(void)
{
	isola__trace_close_all();
}

void isola__trace_pool_free(struct isola_pool *p)
{
	if (p->trace == NULL)
		return;
	isola__trace_pool_end(p);
	for (int i = 0; p->workers != NULL && i < p->n; i++) {
		isola__free(p->workers[i].trace);
		isola__free(p->workers[i].trace_wd);
		p->workers[i].trace = NULL;
		p->workers[i].trace_wd = NULL;
	}
	isola__free(p->trace);
	p->trace = NULL;
}
