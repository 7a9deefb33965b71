/*
 * runtime.c - starting, attaching to and finalising CPython.
 *
 * A C program calls isola_init(), which starts CPython (signal handlers
 * left alone: Ctrl-C stays the C program's business; only a default
 * SIGPIPE is ignored, as python3 does) and releases the main
 * interpreter's GIL, so the calling thread holds no thread state.
 * From Python, the isola module attaches to the runtime already running.
 */
#include "interp/runtime.h"
#include "common/alloc.h"

#include "interp/binding.h" /* Python.h first: it sets _POSIX_C_SOURCE */
#include "interp/pycompat.h"
#include "interp/pyerror.h"
#include "interp/hostfn.h"
#include "channels/blob.h"
#include "common/atomics.h"
#include "isola.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include <pthread.h>

static pthread_mutex_t rt_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	int ready;              /* atomic: 1 once started or attached */
	int owns;               /* isola_init started CPython */
	PyThreadState *main_ts; /* main interpreter's state, detached */
	long live_interps;      /* atomic */
	pthread_t init_thread;  /* isola_init's (isola_fini must match) */
	/* isola_init_options.module_paths, copied: every interpreter gets
	 * them (set before ready is published, freed after the last
	 * interpreter is gone). */
	char **paths;
	size_t npaths;
} rt;

const char *const *isola__runtime_module_paths(size_t *n)
{
	*n = rt.npaths;
	return (const char *const *)rt.paths;
}

static void free_paths(void)
{
	for (size_t i = 0; i < rt.npaths; i++)
		isola__free(rt.paths[i]);
	isola__free(rt.paths);
	rt.paths = NULL;
	rt.npaths = 0;
}

static int copy_paths(const isola_init_options *opts)
{
	if (opts == NULL || opts->n_module_paths == 0)
		return 0;
	rt.paths = isola__calloc(opts->n_module_paths, sizeof(char *));
	if (rt.paths == NULL)
		return -1;
	for (; rt.npaths < opts->n_module_paths; rt.npaths++) {
		const char *src = opts->module_paths[rt.npaths];
		if (src == NULL || (rt.paths[rt.npaths] = isola__strdup(src)) == NULL) {
			free_paths();
			return -1;
		}
	}
	return 0;
}

static const isola__binding *binding; /* atomic */

void isola__runtime_bind(const isola__binding *b)
{
	/* Release: a thread that sees the pointer sees what it points to. */
	__atomic_store_n(&binding, b, __ATOMIC_RELEASE);
}

int isola__module_install_here(void)
{
	const isola__binding *b = __atomic_load_n(&binding, __ATOMIC_ACQUIRE); /* as above */
	if (b == NULL) {
		PyErr_SetString(PyExc_ImportError, "the isola module is not bound to the runtime");
		return -1;
	}
	return b->module_install();
}

void isola__runtime_attach(void)
{
	isola__store_release(&rt.ready, 1);
}

bool isola__runtime_ready(void)
{
	return isola__load_acquire(&rt.ready) != 0;
}

void isola__runtime_interp_added(void)
{
	__atomic_add_fetch(&rt.live_interps, 1, __ATOMIC_RELAXED);
}

void isola__runtime_interp_removed(void)
{
	__atomic_sub_fetch(&rt.live_interps, 1, __ATOMIC_RELAXED);
}

static int prepend_paths(const isola_init_options *opts)
{
	if (opts == NULL || opts->n_module_paths == 0)
		return 0;
	PyObject *path = PySys_GetObject("path"); /* borrowed */
	if (path == NULL)
		return -1;
	for (size_t i = opts->n_module_paths; i-- > 0;) {
		PyObject *s = PyUnicode_DecodeFSDefault(opts->module_paths[i]);
		if (s == NULL || PyList_Insert(path, 0, s) < 0) {
			Py_XDECREF(s);
			return -1;
		}
		Py_DECREF(s);
	}
	return 0;
}

const char *isola__python_warning(void)
{
	/* Py_Version: the running library's version (not the headers'). */
	if (Py_Version < 0x030D0000)
		return "isola: CPython 3.12 may abort at exit (\"isola__free(): invalid size\") once a "
		       "worker has imported asyncio or ssl (CPython gh-112140, seen on 3.12.1); "
		       "use Python 3.13 or newer";
	return NULL;
}

/*
 * Fresh workers importing the same C extension at once crash CPython
 * before 3.14 unless the main interpreter imported it first:
 * - 3.12 runs a single-phase extension's init in an isolated
 *   sub-interpreter before refusing it ("does not support loading in
 *   subinterpreters"), and two doing that at once corrupt the static
 *   types it shares (`import datetime` in two fresh workers segfaults,
 *   with 3.12.1's own _xxsubinterpreters too).  Once the main interpreter
 *   has the module, 3.12 refuses it up front and the stdlib falls back to
 *   its pure-Python version (_pydatetime, _pydecimal...).
 * - 3.13's _datetime (and zoneinfo, which imports it) crashes the same way
 *   ("double free or corruption", Debian's 3.13 and pyenv's 3.13.0): its
 *   static types are readied by the first interpreter to import it.
 * So the main interpreter imports those modules when isola starts (a few
 * ms).  Seen with tests/python/test_fresh_imports.py; 3.14 has neither
 * problem.  GIL held.
 */
void isola__preload_single_phase(void)
{
#if PY_VERSION_HEX < 0x030D0000
	static const char *const mods[] = { "_datetime", "_decimal", "_elementtree",
					    "pyexpat", "_ctypes", "_lsprof" };
#elif PY_VERSION_HEX < 0x030E0000
	static const char *const mods[] = { "_datetime" };
#else
	static const char *const mods[] = { NULL };
#endif
	if (mods[0] == NULL || PyInterpreterState_Get() != PyInterpreterState_Main())
		return;
	for (size_t i = 0; i < sizeof(mods) / sizeof(mods[0]); i++) {
		PyObject *m = PyImport_ImportModule(mods[i]);
		Py_XDECREF(m);
		PyErr_Clear(); /* not built here: nothing to protect */
	}
}

/* python3 ignores SIGPIPE so that a write to a closed pipe or socket
 * raises BrokenPipeError; Python code in workers relies on that.  Left
 * alone when the program chose a disposition of its own. */
static void ignore_default_sigpipe(void)
{
	struct sigaction old;
	if (sigaction(SIGPIPE, NULL, &old) == 0 && !(old.sa_flags & SA_SIGINFO) &&
	    old.sa_handler == SIG_DFL)
		signal(SIGPIPE, SIG_IGN);
}

static void warn_old_python(void)
{
	const char *w = isola__python_warning();
	if (w != NULL)
		fprintf(stderr, "%s\n", w);
}

int isola__runtime_start(const isola_init_options *opts)
{
	pthread_mutex_lock(&rt_lock);
	if (isola__runtime_ready()) {
		pthread_mutex_unlock(&rt_lock);
		return ISOLA_ESTATE;
	}
	if (Py_IsInitialized()) {
		/* Someone else runs CPython: attach, change nothing. */
		rt.owns = 0;
		isola__runtime_attach();
		pthread_mutex_unlock(&rt_lock);
		warn_old_python();
		return 0;
	}
	/* `import isola` works in every interpreter of a runtime we start. */
	const isola__binding *b = __atomic_load_n(&binding, __ATOMIC_ACQUIRE); /* as above */
	if (b == NULL || PyImport_AppendInittab("isola", b->module_init) < 0) {
		pthread_mutex_unlock(&rt_lock);
		return ISOLA_ENOMEM;
	}
	PyConfig config;
	PyConfig_InitPythonConfig(&config);
	config.install_signal_handlers = 0;
	config.parse_argv = 0;
	PyStatus st = PyStatus_Ok();
	if (opts != NULL && opts->python_home != NULL)
		st = PyConfig_SetBytesString(&config, &config.home, opts->python_home);
	if (!PyStatus_Exception(st))
		st = Py_InitializeFromConfig(&config);
	PyConfig_Clear(&config);
	if (PyStatus_Exception(st)) {
		pthread_mutex_unlock(&rt_lock);
		return ISOLA_EPYTHON;
	}
	if (prepend_paths(opts) < 0 || copy_paths(opts) < 0) {
		PyErr_Clear();
		Py_FinalizeEx();
		pthread_mutex_unlock(&rt_lock);
		return ISOLA_EPYTHON;
	}
	ignore_default_sigpipe();
	isola__preload_single_phase();
	rt.owns = 1;
	rt.init_thread = pthread_self();
	rt.main_ts = PyEval_SaveThread(); /* leave the caller detached */
	isola__runtime_attach();
	pthread_mutex_unlock(&rt_lock);
	warn_old_python();
	return 0;
}

int isola_fini(void)
{
	pthread_mutex_lock(&rt_lock);
	if (!isola__runtime_ready() ||
	    __atomic_load_n(&rt.live_interps, __ATOMIC_RELAXED) != 0) {
		pthread_mutex_unlock(&rt_lock);
		return ISOLA_ESTATE;
	}
	if (rt.owns && !pthread_equal(pthread_self(), rt.init_thread)) {
		pthread_mutex_unlock(&rt_lock);
		return ISOLA_ESTATE; /* CPython must end on the thread it started on */
	}
	int r = 0;
	if (rt.owns) {
		PyEval_RestoreThread(rt.main_ts);
		if (Py_FinalizeEx() < 0)
			r = ISOLA_EPYTHON;
		rt.owns = 0;
		rt.main_ts = NULL;
	}
	free_paths();
	isola__registry_clear();
	isola__hostfn_clear();
	isola__store_release(&rt.ready, 0);
	pthread_mutex_unlock(&rt_lock);
	return r;
}
