/* test_interp.c - sub-interpreter lifecycle, running code, errors. */
#include <Python.h>
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "isola.h"

static void start(void)
{
	cr_assert_eq(isola_init(NULL), 0);
}

static void stop(void)
{
	cr_assert_eq(isola_fini(), 0);
}

TestSuite(interp, .init = start, .fini = stop, .timeout = 120);

Test(interp, create_run_destroy)
{
	isola_interp *in = NULL;
	cr_assert_eq(isola_interp_create(NULL, &in, NULL), 0);
	cr_assert_not_null(in);
	cr_assert_eq(isola_interp_run(in, "x = 40 + 2\nassert x == 42\n"), 0);
	cr_assert_eq(isola_interp_run(in, "assert x == 42, 'state kept'\n"), 0);
	const char *type;
	cr_assert_eq(isola_interp_error(in, &type, NULL, NULL), ISOLA_ENOTFOUND);
	cr_assert_eq(isola_interp_destroy(in), 0);
	cr_assert_eq(isola_interp_destroy(NULL), 0);
}

Test(interp, init_twice_is_an_error)
{
	cr_assert_eq(isola_init(NULL), ISOLA_ESTATE);
}

Test(interp, is_isolated_with_its_own_gil)
{
	isola_interp *in;
	cr_assert_eq(isola_interp_create(NULL, &in, NULL), 0);
	/* A subinterpreter configured as isolated: fork is refused there,
	 * and it has its own module objects (a change does not leak out). */
	cr_assert_eq(isola_interp_run(in, "import json\njson.marker = 1\n"), 0);
	isola_interp *other;
	cr_assert_eq(isola_interp_create(NULL, &other, NULL), 0);
	cr_assert_eq(isola_interp_run(other,
		"import json\nassert not hasattr(json, 'marker')\n"), 0);
	isola_interp_destroy(other);
	cr_assert_eq(isola_interp_run(in, "import os\nos.fork()\n"), ISOLA_EPYTHON);
	const char *type, *msg;
	cr_assert_eq(isola_interp_error(in, &type, &msg, NULL), 0);
	cr_assert_str_eq(type, "RuntimeError");
	isola_interp_destroy(in);
}

Test(interp, errors_carry_type_message_and_traceback)
{
	isola_interp *in;
	cr_assert_eq(isola_interp_create(NULL, &in, NULL), 0);
	cr_assert_eq(isola_interp_run(in,
		"def inner():\n"
		"    raise ValueError('bad value 7')\n"
		"inner()\n"), ISOLA_EPYTHON);
	const char *type, *msg, *tb;
	cr_assert_eq(isola_interp_error(in, &type, &msg, &tb), 0);
	cr_assert_str_eq(type, "ValueError");
	cr_assert_str_eq(msg, "bad value 7");
	cr_assert_not_null(strstr(tb, "in inner"), "traceback: %s", tb);
	cr_assert_not_null(strstr(tb, "ValueError: bad value 7"));

	cr_assert_eq(isola_interp_run(in,
		"class MyError(Exception): pass\nraise MyError('x')\n"), ISOLA_EPYTHON);
	isola_interp_error(in, &type, &msg, &tb);
	cr_assert_str_eq(type, "__main__.MyError");

	cr_assert_eq(isola_interp_run(in, "def broken(:\n"), ISOLA_EPYTHON);
	isola_interp_error(in, &type, NULL, NULL);
	cr_assert_str_eq(type, "SyntaxError");

	cr_assert_eq(isola_interp_run(in, "pass\n"), 0);
	cr_assert_eq(isola_interp_error(in, &type, NULL, NULL), ISOLA_ENOTFOUND,
		     "a success clears the last error");
	cr_assert_eq(isola_interp_run(in, NULL), ISOLA_EINVAL);
	isola_interp_destroy(in);
}

Test(interp, options_path_preload_and_init)
{
	char dir[] = "/tmp/isola-test-XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	char file[256];
	snprintf(file, sizeof(file), "%s/isola_probe_mod.py", dir);
	FILE *f = fopen(file, "w");
	fputs("VALUE = 'probe'\n", f);
	fclose(f);

	const char *paths[] = { dir };
	const char *preload[] = { "json", "isola_probe_mod" };
	isola_interp_options o = {
		.sys_path = paths, .n_sys_path = 1,
		.preload = preload, .n_preload = 2,
		.init_source = "import sys\nready = 'json' in sys.modules\n",
	};
	isola_interp *in;
	cr_assert_eq(isola_interp_create(&o, &in, NULL), 0);
	char check[512];
	snprintf(check, sizeof(check),
		 "import sys\n"
		 "assert sys.path[0] == '%s', sys.path\n"
		 "assert ready\n"
		 "assert sys.modules['isola_probe_mod'].VALUE == 'probe'\n", dir);
	cr_assert_eq(isola_interp_run(in, check), 0);
	isola_interp_destroy(in);

	const char *missing[] = { "no_such_module_xyz" };
	isola_interp_options bad = { .preload = missing, .n_preload = 1 };
	char *err = NULL;
	in = NULL;
	cr_assert_eq(isola_interp_create(&bad, &in, &err), ISOLA_EPYTHON);
	cr_assert_null(in);
	cr_assert_not_null(err);
	cr_assert_not_null(strstr(err, "ModuleNotFoundError"), "%s", err);
	cr_assert_not_null(strstr(err, "no_such_module_xyz"));
	free(err);

	isola_interp_options bad_init = { .init_source = "1/0\n" };
	cr_assert_eq(isola_interp_create(&bad_init, &in, &err), ISOLA_EPYTHON);
	cr_assert_not_null(strstr(err, "ZeroDivisionError"), "%s", err);
	free(err);
	unlink(file);
	rmdir(dir);
}

Test(interp, fini_refuses_while_interpreters_live)
{
	isola_interp *in;
	cr_assert_eq(isola_interp_create(NULL, &in, NULL), 0);
	cr_assert_eq(isola_fini(), ISOLA_ESTATE);
	isola_interp_destroy(in);
}

static int thread_failures;

static void *many_worker(void *arg)
{
	(void)arg;
	for (int round = 0; round < 3; round++) {
		isola_interp *in;
		if (isola_interp_create(NULL, &in, NULL) != 0) {
			__atomic_add_fetch(&thread_failures, 1, __ATOMIC_SEQ_CST);
			return NULL;
		}
		if (isola_interp_run(in, "import json\n"
					 "s = sum(range(100000))\n"
					 "assert json.loads(json.dumps(s)) == s\n") != 0)
			__atomic_add_fetch(&thread_failures, 1, __ATOMIC_SEQ_CST);
		isola_interp_destroy(in);
	}
	return NULL;
}

Test(interp, many_interpreters_on_many_threads_at_once)
{
	enum { N = 8 };
	pthread_t t[N];
	thread_failures = 0;
	for (int i = 0; i < N; i++)
		pthread_create(&t[i], NULL, many_worker, NULL);
	for (int i = 0; i < N; i++)
		pthread_join(t[i], NULL);
	cr_assert_eq(thread_failures, 0);
}

static long rss_kib(void)
{
	long pages = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (f == NULL || fscanf(f, "%ld %ld", &pages, &resident) != 2)
		resident = 0;
	if (f)
		fclose(f);
	return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* 200 create/destroy cycles; RSS may grow at most 16 MiB after warm-up
 * (allocator caches), i.e. well under 100 KiB per cycle.  CPython before
 * 3.14 leaks each interpreter state (~2.1 MiB here: gh-140067, fixed
 * upstream in Oct 2025, after Debian's 3.13.5); there the bound is that
 * leak plus the same 16 MiB, so anything of isola's would still show. */
Test(interp, create_destroy_cycles_do_not_leak, .timeout = 300)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	/* Sanitizers keep freed memory and shadow state resident: RSS says
	 * nothing there (LeakSanitizer checks for leaks instead). */
	cr_skip_test("RSS is not meaningful under a sanitizer");
#endif
	for (int i = 0; i < 20; i++) {
		isola_interp *in;
		cr_assert_eq(isola_interp_create(NULL, &in, NULL), 0);
		isola_interp_run(in, "import json, re\nx = [str(i) for i in range(1000)]\n");
		isola_interp_destroy(in);
	}
	long before = rss_kib();
	for (int i = 0; i < 200; i++) {
		isola_interp *in;
		cr_assert_eq(isola_interp_create(NULL, &in, NULL), 0);
		isola_interp_run(in, "import json, re\nx = [str(i) for i in range(1000)]\n");
		isola_interp_destroy(in);
	}
	long growth = rss_kib() - before;
	long bound = 16 * 1024;
	if (PY_VERSION_HEX < 0x030E0000)
		bound += 200 * 3000; /* CPython's per-interpreter leak, measured 2.0-2.7 MiB */
	cr_log_info("RSS growth over 200 cycles: %ld KiB (bound %ld)", growth, bound);
	cr_assert_lt(growth, bound, "RSS grew %ld KiB", growth);
}
