/*
 * interp.c - one isolated sub-interpreter on the calling thread.
 *
 * Creation follows CPython's own _PyXI_NewInterpreter: with no thread
 * state attached, Py_NewInterpreterFromConfig() makes an interpreter
 * with its own GIL and obmalloc and leaves its first thread state
 * attached; we do the setup, then release its GIL.  Each later call
 * re-attaches on the same thread, and detaches before returning.
 */
#include "interp/interp.h"
#include "common/alloc.h"

#include "interp/call.h"
#include "interp/binding.h"
#include "interp/hostfn.h"
#include "interp/refusal.h"
#include "interp/state.h"
#include "interp/runtime.h"

#include <stdlib.h>
#include <string.h>

#include <pthread.h>

void isola__interp_enter(isola_interp *in)
{
	assert(pthread_equal(pthread_self(), in->thread) || !"isola: interpreter used off its thread");
	PyEval_RestoreThread(in->tstate);
}

void isola__interp_leave(isola_interp *in)
{
	in->tstate = PyEval_SaveThread();
}

static int prepend_sys_path(const isola_interp_options *o)
{
	PyObject *path = PySys_GetObject("path"); /* borrowed */
	if (path == NULL) {
		PyErr_SetString(PyExc_RuntimeError, "sys.path is missing");
		return -1;
	}
	/* isola_init's module_paths, then (in front) the interpreter's own. */
	size_t nrt;
	const char *const *rt = isola__runtime_module_paths(&nrt);
	for (int pass = 0; pass < 2; pass++) {
		const char *const *v = pass == 0 ? rt : o->sys_path;
		for (size_t i = pass == 0 ? nrt : o->n_sys_path; i-- > 0;) {
			PyObject *s = PyUnicode_DecodeFSDefault(v[i]);
			int r = s ? PyList_Insert(path, 0, s) : -1;
			Py_XDECREF(s);
			if (r < 0)
				return -1;
		}
	}
	return 0;
}

static int run_in_main(const char *source)
{
	PyObject *main = PyImport_AddModule("__main__"); /* borrowed */
	if (main == NULL)
		return -1;
	PyObject *globals = PyModule_GetDict(main); /* borrowed */
	PyObject *r = PyRun_String(source, Py_file_input, globals, globals);
	Py_XDECREF(r);
	return r == NULL ? -1 : 0;
}

/* The Python side of creation: paths, preloads, init source. */
static int setup(const isola_interp_options *o)
{
	if (isola__module_install_here() < 0 || isola__hostfn_install() < 0)
		return -1;
	/* Extension imports refused from here on are recorded (issue #33:
	 * silent fallbacks), with the phase that ran them. */
	isola__refusal_hook_install();
	static const isola_interp_options none = { 0 };
	if (o == NULL)
		o = &none; /* isola_init's module_paths still apply */
	if (prepend_sys_path(o) < 0)
		return -1;
	isola__refusal_phase("preload");
	for (size_t i = 0; i < o->n_preload; i++) {
		PyObject *m = PyImport_ImportModule(o->preload[i]);
		if (m == NULL)
			return -1;
		Py_DECREF(m);
	}
	isola__refusal_phase("init");
	if (o->init_source != NULL && run_in_main(o->init_source) < 0)
		return -1;
	isola__refusal_phase(NULL);
	return 0;
}

/*
 * CPython 3.13/3.14 can fail to create an interpreter ("Failed to import
 * encodings module") when several are created at once, or while another
 * one ends (python/cpython#125716, #128381, #131485; seen in our CI on
 * 3.13 when a pool started its workers).  Creations are serialised by one
 * process-wide lock (a pool's workers start one after another: ~10 ms
 * each), and a failed creation is tried once more, for the race with an
 * interpreter that is ending, which is not serialised: Py_EndInterpreter
 * runs Python code (atexit, joining threads) that may wait on anything.
 */
static pthread_mutex_t create_lock = PTHREAD_MUTEX_INITIALIZER;

static PyStatus new_interpreter(const PyInterpreterConfig *config, PyThreadState **ts)
{
	PyStatus st = PyStatus_Ok();
	pthread_mutex_lock(&create_lock);
	for (int attempt = 0; attempt < 2; attempt++) {
		*ts = NULL;
		st = Py_NewInterpreterFromConfig(ts, config);
		if (!PyStatus_Exception(st) && *ts != NULL)
			break;
	}
	pthread_mutex_unlock(&create_lock);
	return st;
}

int isola_interp_create(const isola_interp_options *opts, isola_interp **out,
			char **error_out)
{
	if (out == NULL)
		return ISOLA_EINVAL;
	if (!isola__runtime_ready())
		return ISOLA_ESTATE;
	if (isola__tstate_unchecked() != NULL)
		return ISOLA_ESTATE; /* this thread is attached elsewhere */
	isola_interp *in = isola__calloc(1, sizeof(*in));
	if (in == NULL)
		return ISOLA_ENOMEM;

	const PyInterpreterConfig config = {
		.use_main_obmalloc = 0,
		.allow_fork = 0,
		.allow_exec = 0,
		.allow_threads = 1,
		.allow_daemon_threads = 0,
		.check_multi_interp_extensions = 1,
		.gil = PyInterpreterConfig_OWN_GIL,
	};
	PyThreadState *ts = NULL;
	PyStatus st = new_interpreter(&config, &ts);
	if (PyStatus_Exception(st) || ts == NULL) {
		if (error_out != NULL)
			*error_out = isola__strdup(st.err_msg ? st.err_msg
							      : "interpreter creation failed");
		isola__free(in);
		return ISOLA_EPYTHON;
	}
	in->tstate = ts;
	in->istate = PyThreadState_GetInterpreter(ts);
	in->thread = pthread_self();
	in->thread_ident = PyThread_get_thread_ident();
	if (setup(opts) < 0) {
		isola__error_capture(&in->err);
		if (error_out != NULL)
			*error_out = isola__error_format(&in->err);
		isola__error_clear(&in->err);
		Py_EndInterpreter(ts);
		isola__free(in);
		return ISOLA_EPYTHON;
	}
	isola__interp_leave(in);
	isola__runtime_interp_added();
	*out = in;
	return 0;
}

int isola_interp_run(isola_interp *in, const char *source)
{
	if (in == NULL || source == NULL)
		return ISOLA_EINVAL;
	isola__interp_enter(in);
	isola__error_clear(&in->err);
	int r = run_in_main(source) < 0 ? isola__error_capture(&in->err) : 0;
	isola__interp_leave(in);
	return r;
}

int isola_interp_error(const isola_interp *in, const char **type,
		       const char **message, const char **traceback)
{
	if (in == NULL)
		return ISOLA_EINVAL;
	if (in->err.type == NULL)
		return ISOLA_ENOTFOUND;
	if (type != NULL)
		*type = in->err.type;
	if (message != NULL)
		*message = in->err.message ? in->err.message : "";
	if (traceback != NULL)
		*traceback = in->err.traceback ? in->err.traceback : "";
	return 0;
}

int isola_interp_call(isola_interp *in, const char *target, const isola_msg *args,
		      isola_msg *result)
{
	if (in == NULL || target == NULL || result == NULL)
		return ISOLA_EINVAL;
	isola__interp_enter(in);
	isola__error_clear(&in->err);
	isola__job j = { .kind = ISOLA__JOB_CALL, .target = target, .args = args,
			 .codec = &isola__codec_defaults };
	int r = isola__job_run(&j, result, NULL);
	if (r < 0)
		isola__error_capture(&in->err);
	isola__interp_leave(in);
	return r;
}

int isola_interp_destroy(isola_interp *in)
{
	if (in == NULL)
		return 0;
	isola__interp_enter(in);
	Py_EndInterpreter(in->tstate); /* leaves no thread state attached */
	isola__error_clear(&in->err);
	isola__free(in);
	isola__runtime_interp_removed();
	return 0;
}
