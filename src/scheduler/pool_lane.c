/*
 * pool_lane.c - process workers for an embedder's pool (isola.h:
 * isola_pool_options.process_workers, isola_pool_place,
 * isola_pool_submit_lane).
 *
 * The lane itself (proclane.c) is Python-free; what an embedder's pool
 * adds is what the Python front does for an isola.Pool: the Python to
 * start (options, else the one isola was built for), the children's
 * setup from the pool's (sys.path first and on PYTHONPATH, preload,
 * init source, in the environment that isola._proc_worker reads), and
 * placements: which targets go to processes.  Placements are few and
 * written rarely: a list under a mutex, looked up by submits only once
 * one exists (a relaxed count says so).
 */
#include "scheduler/pool.h"

#include "common/alloc.h"
#include "scheduler/proclane.h"
#include "scheduler/procframe.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

#ifndef ISOLA_PYTHON_EXE
#define ISOLA_PYTHON_EXE "python3"
#endif
#ifndef ISOLA_PYTHON_MODULE_DIR
#define ISOLA_PYTHON_MODULE_DIR ""
#endif

#define PROCESS_GRACE_NS 2000000000LL /* interrupted -> killed after this long */

struct placement {
	char *key; /* "module" (and its submodules) or "module:qualname" */
	int lane;
};

struct isola__pool_lane {
	isola__proclane *lane;
	pthread_mutex_t lock; /* place, n_place */
	struct placement *place;
	size_t n_place;
	uint32_t placed; /* relaxed: place holds a process placement (a hint) */
};

/* "NAME=" + value, malloc'd. */
static char *env_entry(const char *name, const char *value)
{
	size_t a = strlen(name), b = strlen(value);
	char *s = isola__malloc(a + b + 2);
	if (s != NULL) {
		memcpy(s, name, a);
		s[a] = '=';
		memcpy(s + a + 1, value, b + 1);
	}
	return s;
}

/* The items joined by sep, malloc'd ("" for none). */
static char *joined(const char *const *items, size_t n, char sep)
{
	size_t len = 1;
	for (size_t i = 0; i < n; i++)
		len += strlen(items[i]) + 1;
	char *s = isola__malloc(len), *at = s;
	if (s == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		size_t k = strlen(items[i]);
		if (i > 0)
			*at++ = sep;
		memcpy(at, items[i], k);
		at += k;
	}
	*at = '\0';
	return s;
}

static bool is_ours(const char *entry)
{
	static const char *const names[] = { "PYTHONPATH=", "ISOLA_PROC_PATH=",
					     "ISOLA_PROC_PRELOAD=", "ISOLA_PROC_INIT=" };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strncmp(entry, names[i], strlen(names[i])) == 0)
			return true;
	return false;
}

static void strv_free(char **v)
{
	for (size_t i = 0; v != NULL && v[i] != NULL; i++)
		isola__free(v[i]);
	isola__free(v);
}

/* The children's environment: this process's, with the pool's setup
 * (isola/_proc_worker.py reads it) and PYTHONPATH = the pool's sys.path,
 * the caller's PYTHONPATH, then where isola's module is installed. */
static char **child_env(const isola_interp_options *s)
{
	size_t n = 0;
	while (environ != NULL && environ[n] != NULL)
		n++;
	char **e = isola__calloc(n + 5, sizeof(char *));
	if (e == NULL)
		return NULL;
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (!is_ours(environ[i]) && (e[k++] = isola__strdup(environ[i])) == NULL)
			goto oom;
	const char *old = getenv("PYTHONPATH");
	const char **parts = isola__calloc(s->n_sys_path + 2, sizeof(char *));
	size_t m = 0;
	for (size_t i = 0; parts != NULL && i < s->n_sys_path; i++)
		parts[m++] = s->sys_path[i];
	if (parts != NULL && old != NULL && old[0] != '\0')
		parts[m++] = old;
	if (parts != NULL && ISOLA_PYTHON_MODULE_DIR[0] != '\0')
		parts[m++] = ISOLA_PYTHON_MODULE_DIR;
	char *path = parts ? joined(parts, m, ':') : NULL;
	isola__free(parts);
	char *front = joined(s->sys_path, s->n_sys_path, ':');
	char *pre = joined(s->preload, s->n_preload, ',');
	if (path && front && pre) {
		e[k++] = env_entry("PYTHONPATH", path);
		e[k++] = env_entry("ISOLA_PROC_PATH", front);
		e[k++] = env_entry("ISOLA_PROC_PRELOAD", pre);
		e[k++] = env_entry("ISOLA_PROC_INIT", s->init_source ? s->init_source : "");
	}
	isola__free(path);
	isola__free(front);
	isola__free(pre);
	for (size_t i = 0; i < k; i++)
		if (e[i] == NULL)
			goto oom;
	if (k == 0 || strncmp(e[k - 1], "ISOLA_PROC_INIT=", 16) != 0)
		goto oom;
	return e;
oom:
	strv_free(e);
	return NULL;
}

int isola__pool_lane_start(struct isola_pool *p, int workers, const char *python,
			   char **error_out)
{
	struct isola__pool_lane *pl = isola__calloc(1, sizeof(*pl));
	if (pl == NULL)
		return ISOLA_ENOMEM;
	pthread_mutex_init(&pl->lock, NULL);
	p->plane = pl;
	const char *exe = python && python[0] ? python : ISOLA_PYTHON_EXE;
	char **env = child_env(&p->setup);
	if (env == NULL)
		return ISOLA_ENOMEM;
	const char *argv[] = { exe, "-m", "isola._proc_worker", NULL };
	isola__proclane_options o = { .workers = workers, .exe = exe, .argv = argv,
				      .envp = (const char *const *)env,
				      .grace_ns = PROCESS_GRACE_NS };
	int r = isola__proclane_create(&o, &pl->lane);
	strv_free(env);
	if (r != 0)
		return r;
	char *why = NULL;
	r = isola__proclane_wait_ready(pl->lane, -1, &why);
	if (r != 0 && error_out != NULL)
		*error_out = why ? why : isola__strdup("a process worker could not start");
	else
		isola__free(why);
	return r;
}

/* The lane of target: its own placement, else its module's or an
 * enclosing package's, else interpreters.  pl->lock held. */
static int lane_of(const struct isola__pool_lane *pl, const char *target)
{
	size_t mlen = strcspn(target, ":");
	for (size_t i = 0; i < pl->n_place; i++)
		if (strcmp(pl->place[i].key, target) == 0)
			return pl->place[i].lane;
	/* "a.b.c", then "a.b", then "a": the longest module key wins. */
	for (size_t len = mlen; len > 0;) {
		for (size_t i = 0; i < pl->n_place; i++)
			if (strlen(pl->place[i].key) == len &&
			    strncmp(pl->place[i].key, target, len) == 0)
				return pl->place[i].lane;
		while (len > 0 && target[len - 1] != '.')
			len--;
		if (len > 0)
			len--; /* drop the dot */
	}
	return ISOLA_LANE_INTERPRETER;
}

bool isola__pool_lane_wants(struct isola_pool *p, const char *target)
{
	struct isola__pool_lane *pl = p->plane;
	/* Relaxed: a placement made concurrently with a submit may or may
	 * not apply to it, as with any two unordered calls. */
	if (pl == NULL || __atomic_load_n(&pl->placed, __ATOMIC_RELAXED) == 0)
		return false;
	pthread_mutex_lock(&pl->lock);
	int lane = lane_of(pl, target);
	pthread_mutex_unlock(&pl->lock);
	return lane == ISOLA_LANE_PROCESS;
}

static bool valid_key(const char *what)
{
	if (what == NULL || what[0] == '\0' || what[0] == ':' || what[0] == '.')
		return false;
	const char *colon = strchr(what, ':');
	return colon == NULL || (colon[1] != '\0' && strchr(colon + 1, ':') == NULL);
}

int isola_pool_place(isola_pool *p, const char *what, int lane)
{
	ISOLA__CHECK_POOL(p);
	if (p == NULL || !valid_key(what) ||
	    (lane != ISOLA_LANE_INTERPRETER && lane != ISOLA_LANE_PROCESS))
		return ISOLA_EINVAL;
	struct isola__pool_lane *pl = p->plane;
	if (pl == NULL)
		return lane == ISOLA_LANE_PROCESS ? ISOLA_ESTATE : 0;
	int r = 0;
	pthread_mutex_lock(&pl->lock);
	size_t i = 0;
	while (i < pl->n_place && strcmp(pl->place[i].key, what) != 0)
		i++;
	if (i == pl->n_place) {
		struct placement *grown =
			isola__realloc(pl->place, (pl->n_place + 1) * sizeof(*grown));
		char *key = grown ? isola__strdup(what) : NULL;
		if (grown != NULL)
			pl->place = grown;
		if (key == NULL)
			r = ISOLA_ENOMEM;
		else
			pl->place[pl->n_place++] = (struct placement){ key, lane };
	} else {
		pl->place[i].lane = lane;
	}
	if (r == 0 && lane == ISOLA_LANE_PROCESS)
		__atomic_store_n(&pl->placed, 1, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&pl->lock);
	return r;
}

int isola__pool_lane_submit(struct isola_pool *p, int kind, const char *target, isola_msg *args,
			    isola_msg *argsets, size_t n, size_t first, int64_t timeout_ns,
			    isola_future **out)
{
	struct isola__pool_lane *pl = p->plane;
	if (pl == NULL)
		return ISOLA_ESTATE;
	return isola__proclane_submit(pl->lane, kind, target, args, argsets, n, first,
				      timeout_ns > 0 ? timeout_ns : 0,
				      p->no_pickle ? 0 : PROC_ALLOW_PICKLE, out);
}

int isola__pool_lane_map(struct isola_pool *p, const char *target, isola_msg *argsets, size_t n,
			 size_t chunksize, int64_t timeout_ns, isola_future **out, size_t *n_chunks)
{
	size_t k = n / chunksize + (n % chunksize != 0);
	size_t c = 0;
	int r = 0;
	for (; c < k; c++) {
		size_t first = c * chunksize, m = n - first < chunksize ? n - first : chunksize;
		if ((r = isola__pool_lane_submit(p, ISOLA__PROC_CHUNK, target, NULL, &argsets[first],
						 m, first, timeout_ns, &out[c])) != 0)
			break;
	}
	if (r != 0) {
		/* As isola_pool_map_ex: what was queued is cancelled (its
		 * argument sets went with it), the rest stay the caller's. */
		while (c-- > 0) {
			isola__future_cancel_pending(out[c], "the map could not be queued whole");
			isola_future_release(out[c]);
		}
		return r;
	}
	*n_chunks = k;
	return 0;
}

int isola__pool_lane_shutdown(struct isola_pool *p, int how, int wait, int64_t timeout_ns)
{
	struct isola__pool_lane *pl = p->plane;
	if (pl == NULL || pl->lane == NULL)
		return 0;
	return isola__proclane_shutdown(pl->lane, how, wait, timeout_ns);
}

int isola__pool_lane_size(struct isola_pool *p)
{
	struct isola__pool_lane *pl = p->plane;
	return pl != NULL && pl->lane != NULL ? isola__proclane_size(pl->lane) : 0;
}

void isola__pool_lane_free(struct isola_pool *p)
{
	struct isola__pool_lane *pl = p->plane;
	if (pl == NULL)
		return;
	p->plane = NULL;
	if (pl->lane != NULL) {
		isola__proclane_shutdown(pl->lane, ISOLA_SHUTDOWN_CANCEL | ISOLA_SHUTDOWN_INTERRUPT,
					 1, -1);
		isola__proclane_destroy(pl->lane);
	}
	for (size_t i = 0; i < pl->n_place; i++)
		isola__free(pl->place[i].key);
	isola__free(pl->place);
	pthread_mutex_destroy(&pl->lock);
	isola__free(pl);
}
