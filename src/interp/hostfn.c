/*
 * hostfn.c - the table of host functions (isola_host_register) and the
 * modules that show it to each interpreter.
 *
 * The table is a list under table_lock until sealed (hostfn.h states
 * the invariant).  Each interpreter gets one module per module name,
 * made by multi-phase init from host_module_def (per-interpreter GIL
 * supported: the module holds nothing but functions of its own
 * interpreter) and put in its sys.modules, so `import name` finds it
 * whatever the import path is.
 */
#include "interp/hostfn.h"
#include "common/alloc.h"

#include <string.h>

#include <pthread.h>

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static isola__hostfn *table;      /* needs table_lock until sealed; in registration order */
static isola__hostfn **table_end = &table;
static int sealed;                /* needs table_lock */

/* A Python identifier in ASCII (no dots), 1..ISOLA_HOST_NAME_MAX bytes. */
static int valid_name(const char *s)
{
	if (s == NULL || s[0] == 0 || strlen(s) > ISOLA_HOST_NAME_MAX)
		return 0;
	for (const char *p = s; *p; p++) {
		char c = *p;
		int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
		if (!alpha && !(p != s && c >= '0' && c <= '9'))
			return 0;
	}
	return 1;
}

int isola_host_register(const char *module, const char *name, isola_host_fn fn,
			void *ctx, int nargs)
{
	if (fn == NULL || !valid_name(module) || !valid_name(name) ||
	    strcmp(module, "isola") == 0 || nargs < ISOLA_HOST_VARARGS || nargs > 255)
		return ISOLA_EINVAL;
	isola__hostfn *h = isola__calloc(1, sizeof(*h));
	if (h == NULL)
		return ISOLA_ENOMEM;
	strcpy(h->module, module);
	strcpy(h->name, name);
	strcpy(h->qualname, module);
	strcat(h->qualname, ".");
	strcat(h->qualname, name);
	h->fn = fn;
	h->ctx = ctx;
	h->nargs = nargs;
	h->def = (PyMethodDef){ h->name, (PyCFunction)(void (*)(void))isola__hostfn_call,
				METH_FASTCALL, "A host function (isola_host_register)." };
	pthread_mutex_lock(&table_lock);
	int r = sealed ? ISOLA_ESTATE : 0;
	for (isola__hostfn *o = table; r == 0 && o != NULL; o = o->next)
		if (strcmp(o->module, module) == 0 && strcmp(o->name, name) == 0)
			r = ISOLA_EEXIST;
	if (r == 0) {
		*table_end = h;
		table_end = &h->next;
	}
	pthread_mutex_unlock(&table_lock);
	if (r != 0)
		isola__free(h);
	return r;
}

const isola__hostfn *isola__hostfn_seal(void)
{
	pthread_mutex_lock(&table_lock);
	sealed = 1;
	const isola__hostfn *t = table;
	pthread_mutex_unlock(&table_lock);
	return t;
}

void isola__hostfn_clear(void)
{
	pthread_mutex_lock(&table_lock);
	isola__hostfn *h = table;
	table = NULL;
	table_end = &table;
	sealed = 0;
	pthread_mutex_unlock(&table_lock);
	while (h != NULL) {
		isola__hostfn *next = h->next;
		isola__free(h);
		h = next;
	}
	isola__hostfn_thread_cache_free();
}

/* ---- the modules -------------------------------------------------------- */

/* Exec: add the table's functions of this module's name.  Each one's
 * self is a capsule of its entry (valid while any interpreter lives). */
static int host_module_exec(PyObject *m)
{
	const char *mname = PyModule_GetName(m);
	if (mname == NULL)
		return -1;
	PyObject *modname = PyModule_GetNameObject(m);
	if (modname == NULL)
		return -1;
	int r = 0;
	for (const isola__hostfn *h = isola__hostfn_seal(); h != NULL && r == 0; h = h->next) {
		if (strcmp(h->module, mname) != 0)
			continue;
		PyObject *cap = PyCapsule_New((void *)h, NULL, NULL);
		PyObject *f = cap ? PyCFunction_NewEx((PyMethodDef *)&h->def, cap, modname) : NULL;
		Py_XDECREF(cap);
		r = f ? PyModule_AddObjectRef(m, h->name, f) : -1;
		Py_XDECREF(f);
	}
	Py_DECREF(modname);
	return r;
}

static PyModuleDef_Slot host_module_slots[] = {
	{ Py_mod_exec, host_module_exec },
	{ Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED },
#if PY_VERSION_HEX >= 0x030D0000
	{ Py_mod_gil, Py_MOD_GIL_USED },
#endif
	{ 0, NULL },
};

static PyModuleDef host_module_def = {
	PyModuleDef_HEAD_INIT,
	.m_name = "isola.host_module",
	.m_doc = "Host functions registered by the program that embeds isola "
		 "(isola_host_register).",
	.m_size = 0,
	.m_slots = host_module_slots,
};

/* sys.modules[name] = a new host module named name. */
static int install_one(PyObject *modules, PyObject *machinery, const char *name)
{
	PyObject *spec = PyObject_CallMethod(machinery, "ModuleSpec", "sO", name, Py_None);
	if (spec == NULL)
		return -1;
	PyObject *m = PyModule_FromDefAndSpec(&host_module_def, spec);
	Py_DECREF(spec);
	if (m == NULL)
		return -1;
	int r = PyModule_ExecDef(m, &host_module_def);
	if (r == 0)
		r = PyDict_SetItemString(modules, name, m);
	Py_DECREF(m);
	return r;
}

int isola__hostfn_install(void)
{
	const isola__hostfn *t = isola__hostfn_seal();
	if (t == NULL)
		return 0;
	PyObject *modules = PyImport_GetModuleDict(); /* borrowed */
	PyObject *machinery = PyImport_ImportModule("importlib.machinery");
	if (machinery == NULL)
		return -1;
	int r = 0;
	for (const isola__hostfn *h = t; h != NULL && r == 0; h = h->next) {
		int first = 1; /* the first entry of its module name makes it */
		for (const isola__hostfn *o = t; o != h; o = o->next)
			if (strcmp(o->module, h->module) == 0)
				first = 0;
		if (first)
			r = install_one(modules, machinery, h->module);
	}
	Py_DECREF(machinery);
	return r;
}
