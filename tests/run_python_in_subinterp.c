/*
 * run_python_in_subinterp.c - runs the unittest suites of tests/python
 * inside an isola sub-interpreter (own GIL, own obmalloc) on a worker
 * thread, through the public C API, and prints "N passed, N failed".
 * Usage: run_python_in_subinterp TESTS_DIR [PATTERN]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "isola.h"

static const char *dir, *pattern = "test_*.py";
static int status = 1;

static void *worker(void *arg)
{
	(void)arg;
	const char *paths[] = { dir };
	isola_interp_options o = {
		.sys_path = paths, .n_sys_path = 1,
		.init_source = "import sys\nsys._isola_subinterpreter = True\n",
	};
	isola_interp *in;
	char *err = NULL;
	int r = isola_interp_create(&o, &in, &err);
	if (r != 0) {
		fprintf(stderr, "interp create: %s\n%s\n", isola_strerror(r), err ? err : "");
		free(err);
		return NULL;
	}
	char src[512];
	snprintf(src, sizeof(src),
		 "import run\n"
		 "p, f, s = run.run_suites(%s%s%s)\n"
		 "print(f'{p} passed, {f} failed, {s} skipped', flush=True)\n"
		 "if f or not p: raise SystemExit(1)\n",
		 "'", pattern, "'");
	r = isola_interp_run(in, src);
	if (r != 0) {
		const char *type, *msg, *tb;
		isola_interp_error(in, &type, &msg, &tb);
		if (type[0] != 'S') /* SystemExit: the counts say it all */
			fprintf(stderr, "%s: %s\n%s", type, msg, tb);
	}
	status = r == 0 ? 0 : 1;
	isola_interp_destroy(in);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s TESTS_DIR [PATTERN]\n", argv[0]);
		return 2;
	}
	dir = argv[1];
	if (argc > 2)
		pattern = argv[2];
	int r = isola_init(NULL);
	if (r != 0) {
		fprintf(stderr, "isola_init: %s\n", isola_strerror(r));
		return 2;
	}
	pthread_t t;
	pthread_create(&t, NULL, worker, NULL);
	pthread_join(t, NULL);
	if (getenv("ISOLA_TEST_SKIP_FINI") != NULL) {
		/* CPython 3.12 aborts in Py_FinalizeEx after a sub-interpreter
		 * imported asyncio (gh-112140): the result is already out. */
		fflush(NULL);
		_exit(status);
	}
	isola_fini();
	return status;
}
