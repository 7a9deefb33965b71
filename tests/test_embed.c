/* test_embed.c - what isola.h promises a C embedder, written against the
 * public header only (issue #17: the header says what happens). */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "isola.h"

static char dir[64];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/isola-embed-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	char path[128];
	snprintf(path, sizeof(path), "%s/embed_helper.py", dir);
	FILE *f = fopen(path, "w");
	fputs("import time\n"
	      "def seven():\n    return 7\n"
	      "def nap(s):\n    time.sleep(s)\n    return s\n"
	      "def spin():\n    while True:\n        pass\n",
	      f);
	fclose(f);
	/* module_paths only: no pool below names dir in its own setup. */
	const char *paths[] = { dir };
	isola_init_options o = { .module_paths = paths, .n_module_paths = 1 };
	cr_assert_eq(isola_init(&o), 0);
}

static void teardown(void)
{
	cr_assert_eq(isola_fini(), 0);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(embed, .init = setup, .fini = teardown, .timeout = 60);

static isola_pool *pool(int workers)
{
	isola_pool_options o = { .workers = workers };
	isola_pool *p = NULL;
	char *err = NULL;
	int r = isola_pool_create(&o, &p, &err);
	cr_assert_eq(r, 0, "pool_create: %s %s", isola_strerror(r), err ? err : "");
	return p;
}

/* msgpack [x] for one float x (0xcb + 8 big-endian bytes). */
static void float_arg(isola_msg *m, double x)
{
	unsigned char b[10] = { 0x91, 0xcb };
	uint64_t u;
	memcpy(&u, &x, 8);
	for (int i = 0; i < 8; i++)
		b[2 + i] = (unsigned char)(u >> (56 - 8 * i));
	isola_msg_init(m);
	cr_assert_eq(isola_msg_set_bytes(m, b, sizeof(b)), 0);
}

Test(embed, module_paths_reach_pool_workers)
{
	isola_pool *p = pool(2);
	isola_future *f;
	cr_assert_eq(isola_pool_submit(p, "embed_helper:seven", NULL, 0, &f), 0);
	cr_assert_eq(isola_future_wait(f, -1), 0);
	isola_msg r;
	isola_msg_init(&r);
	int s = isola_future_result(f, &r);
	const char *type = "", *msg = "";
	isola_future_error(f, &type, &msg, NULL);
	cr_assert_eq(s, 0, "%s: %s", type, msg);
	const void *d;
	size_t n;
	isola_msg_bytes(&r, &d, &n);
	cr_assert_eq(n, 1);
	cr_assert_eq(((const unsigned char *)d)[0], 7); /* msgpack fixint 7 */
	isola_msg_clear(&r);
	isola_future_release(f);
	cr_assert_eq(isola_pool_destroy(p), 0);
}

static void *fini_elsewhere(void *arg)
{
	*(int *)arg = isola_fini();
	return NULL;
}

Test(embed, fini_from_another_thread_is_refused)
{
	int r = 0;
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, fini_elsewhere, &r), 0);
	pthread_join(t, NULL);
	cr_assert_eq(r, ISOLA_ESTATE); /* teardown's fini, on this thread, works */
}

Test(embed, malformed_targets_fail_at_submit)
{
	isola_pool *p = pool(1);
	const char *bad[] = { "embed_helper", ":seven", "embed_helper:", "", ":" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		isola_future *f = NULL;
		cr_assert_eq(isola_pool_submit(p, bad[i], NULL, 0, &f), ISOLA_EINVAL, "%s", bad[i]);
		cr_assert_null(f);
	}
	cr_assert_eq(isola_pool_destroy(p), 0);
}

Test(embed, unknown_module_or_name_is_enotfound)
{
	isola_pool *p = pool(1);
	const char *missing[] = { "no_such_module_xyz:f", "embed_helper:no_such_name" };
	const char *types[] = { "ModuleNotFoundError", "AttributeError" };
	for (int i = 0; i < 2; i++) {
		isola_future *f;
		cr_assert_eq(isola_pool_submit(p, missing[i], NULL, 0, &f), 0);
		cr_assert_eq(isola_future_wait(f, -1), 0);
		cr_assert_eq(isola_future_result(f, NULL), ISOLA_ENOTFOUND, "%s", missing[i]);
		const char *type = NULL;
		cr_assert_eq(isola_future_error(f, &type, NULL, NULL), 0);
		cr_assert_str_eq(type, types[i]);
		isola_future_release(f);
	}
	cr_assert_eq(isola_pool_destroy(p), 0);
}

Test(embed, a_timed_out_task_says_so)
{
	isola_pool *p = pool(1);
	isola_future *f;
	cr_assert_eq(isola_pool_submit(p, "embed_helper:spin", NULL, 100000000, &f), 0);
	cr_assert_eq(isola_future_wait(f, -1), 0);
	cr_assert_eq(isola_future_result(f, NULL), ISOLA_ETIMEDOUT);
	const char *type = NULL, *msg = NULL;
	cr_assert_eq(isola_future_error(f, &type, &msg, NULL), 0);
	cr_assert_str_eq(type, "isola.Cancelled");
	cr_assert(strstr(msg, "timeout") != NULL, "message: '%s'", msg);
	isola_future_release(f);
	cr_assert_eq(isola_pool_destroy(p), 0);
}

Test(embed, absurd_worker_counts_are_refused)
{
	isola_pool_options o = { .workers = ISOLA_MAX_WORKERS + 1 };
	isola_pool *p = NULL;
	cr_assert_eq(isola_pool_create(&o, &p, NULL), ISOLA_ELIMIT);
	cr_assert_null(p);
}

Test(embed, wait_any_returns_the_first_done)
{
	isola_pool *p = pool(2);
	isola_future *fs[2];
	isola_msg a;
	float_arg(&a, 0.5);
	cr_assert_eq(isola_pool_submit(p, "embed_helper:nap", &a, 0, &fs[0]), 0);
	float_arg(&a, 0.0);
	cr_assert_eq(isola_pool_submit(p, "embed_helper:nap", &a, 0, &fs[1]), 0);
	size_t i = 99;
	cr_assert_eq(isola_future_wait_any(fs, 2, 10000000000LL, &i), 0);
	cr_assert_eq(i, 1, "the short nap ends first");
	cr_assert_eq(isola_future_wait_any(fs, 1, 0, &i), ISOLA_ETIMEDOUT, "the long one still runs");
	cr_assert_eq(isola_future_wait_any(fs, 1, 10000000000LL, &i), 0);
	cr_assert_eq(i, 0);
	cr_assert_eq(isola_future_wait_any(NULL, 1, 0, &i), ISOLA_EINVAL);
	isola_future_release(fs[0]);
	isola_future_release(fs[1]);
	cr_assert_eq(isola_pool_destroy(p), 0);
}
