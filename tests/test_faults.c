/* test_faults.c - every allocation isola makes can fail (issue #12):
 * fail the Nth allocation of a whole lifecycle, for every N, and get a
 * clean error, no crash, no hang, and (under ASan) no leak. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "isola.h"

/* Internal (src/common/alloc.h), linked from the static library. */
void isola__alloc_fail_after(long n, int persist);
long isola__alloc_fail_pending(void);

static char dir[64];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/isola-faults-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	char path[128];
	snprintf(path, sizeof(path), "%s/fault_helper.py", dir);
	FILE *f = fopen(path, "w");
	fputs("def echo(*a):\n    return list(a)\n"
	      "class Acc:\n    def __init__(self):\n        self.n = 0\n"
	      "    def add(self, k):\n        self.n += k\n        return self.n\n"
	      "    def bad(self):\n        raise ValueError('x')\n",
	      f);
	fclose(f);
	cr_assert_eq(isola_init(NULL), 0);
}

static void teardown(void)
{
	isola__alloc_fail_after(0, 0);
	cr_assert_eq(isola_fini(), 0);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(faults, .init = setup, .fini = teardown, .timeout = 600);

/* A status an API call may return when an allocation fails under it. */
static void assert_clean(int r, const char *what)
{
	(void)what; /* the message's; the TSan stand-in drops messages */
	cr_assert(r == 0 || r == ISOLA_ENOMEM || r == ISOLA_EPYTHON || r == ISOLA_ECLOSED,
		  "%s: %s", what, isola_err_name(r));
}

/* "[1, 2]" without the writer (which allocates too): msgpack by hand is
 * fine in a test of allocation failures. */
static void two_ints(isola_msg *m)
{
	static const unsigned char b[] = { 0x92, 0x01, 0x02 };
	isola_msg_init(m);
	isola_msg_set_bytes(m, b, sizeof(b)); /* inline: no allocation */
}

/* Wait for f, accept any outcome, release it. */
static void settle(isola_future *f)
{
	cr_assert_eq(isola_future_wait(f, 60LL * 1000000000), 0, "a future never ended");
	isola_msg r;
	isola_msg_init(&r);
	int s = isola_future_result(f, &r);
	cr_assert(s == 0 || s < 0);
	isola_msg_clear(&r);
	isola_future_release(f);
}

/* One pool lifecycle: create, submit, map, an actor (spawn, call, a
 * failing send, kill), run, destroy.  Every step may fail cleanly. */
static void lifecycle(void)
{
	const char *paths[] = { dir };
	isola_pool_options o = { .workers = 1, .setup = { .sys_path = paths, .n_sys_path = 1 } };
	isola_pool *p = NULL;
	char *err = NULL;
	int r = isola_pool_create(&o, &p, &err);
	free(err);
	assert_clean(r, "pool_create");
	if (r != 0) {
		cr_assert_null(p);
		return;
	}
	isola_msg a;
	two_ints(&a);
	isola_future *f = NULL;
	r = isola_pool_submit(p, "fault_helper:echo", &a, 0, &f);
	assert_clean(r, "submit");
	if (r == 0)
		settle(f);
	isola_msg_clear(&a);
	isola_msg sets[3];
	for (int i = 0; i < 3; i++)
		two_ints(&sets[i]);
	isola_future *out[2];
	size_t k = 0;
	r = isola_pool_map(p, "fault_helper:echo", sets, 3, 2, out, &k);
	assert_clean(r, "map");
	for (size_t i = 0; r == 0 && i < k; i++)
		settle(out[i]);
	for (int i = 0; i < 3; i++)
		isola_msg_clear(&sets[i]);
	isola_actor act;
	r = isola_actor_spawn(p, "fault_helper:Acc", NULL, NULL, &act);
	assert_clean(r, "actor_spawn");
	if (r == 0) {
		two_ints(&a);
		r = isola_actor_send(p, act, "bad", NULL);
		assert_clean(r, "actor_send");
		isola_msg one;
		static const unsigned char b1[] = { 0x91, 0x05 };
		isola_msg_init(&one);
		isola_msg_set_bytes(&one, b1, sizeof(b1));
		r = isola_actor_call(p, act, "add", &one, &f);
		assert_clean(r, "actor_call");
		if (r == 0)
			settle(f);
		isola_msg_clear(&one);
		isola_msg_clear(&a);
		assert_clean(isola_actor_kill(p, act), "actor_kill");
	}
	char *run_err = NULL;
	r = isola_pool_run(p, "x = 1", &run_err);
	free(run_err);
	assert_clean(r, "run");
	cr_assert_eq(isola_pool_destroy(p), 0);
}

Test(faults, every_failed_allocation_of_a_pool_lifecycle_is_clean)
{
	long n = 1;
	for (;; n++) {
		cr_assert_lt(n, 20000, "a lifecycle should not take this many allocations");
		isola__alloc_fail_after(n, 0);
		lifecycle();
		long left = isola__alloc_fail_pending();
		isola__alloc_fail_after(0, 0);
		if (left > 0)
			break; /* the lifecycle ended before the Nth allocation */
	}
	cr_log_info("%ld allocations in a pool lifecycle, each failed once", n - 1);
	cr_assert_gt(n, 20, "the pool's allocations go through isola's allocator");
}

/* One interpreter: create, a call whose arguments and result are big
 * enough to be heap messages (the codec's buffers), a channel round trip
 * through Python, destroy. */
static void interp_lifecycle(void)
{
	const char *paths[] = { dir };
	isola_interp_options o = { .sys_path = paths, .n_sys_path = 1 };
	isola_interp *in = NULL;
	char *err = NULL;
	int r = isola_interp_create(&o, &in, &err);
	free(err);
	assert_clean(r, "interp_create");
	if (r != 0)
		return;
	unsigned char big[1 + 2 + 300];
	big[0] = 0xdc; /* array 16 */
	big[1] = 0x01;
	big[2] = 0x2c; /* 300 items */
	memset(big + 3, 0x07, 300);
	isola_msg a, res;
	isola_msg_init(&a);
	isola_msg_init(&res);
	r = isola_msg_set_bytes(&a, big, sizeof(big));
	assert_clean(r, "msg_set_bytes");
	if (r == 0)
		assert_clean(isola_interp_call(in, "fault_helper:echo", &a, &res), "interp_call");
	isola_msg_clear(&a);
	isola_msg_clear(&res);
	assert_clean(isola_interp_run(in, "import isola\n"
				      "c = isola.Channel(4)\n"
				      "c.send({'k': [1.5] * 100, 'b': b'x' * 100000})\n"
				      "assert c.recv()['k'][0] == 1.5\n"),
		     "interp_run");
	cr_assert_eq(isola_interp_destroy(in), 0);
}

Test(faults, every_failed_allocation_of_an_interpreter_and_the_codec_is_clean)
{
	long n = 1;
	for (;; n++) {
		cr_assert_lt(n, 20000);
		isola__alloc_fail_after(n, 0);
		interp_lifecycle();
		long left = isola__alloc_fail_pending();
		isola__alloc_fail_after(0, 0);
		if (left > 0)
			break;
	}
	cr_log_info("%ld allocations in an interpreter lifecycle, each failed once", n - 1);
	cr_assert_gt(n, 5);
}
