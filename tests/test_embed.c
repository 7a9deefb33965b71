/* test_embed.c - what isola.h promises a C embedder, written against the
 * public header only (issue #17: the header says what happens).  Built in
 * the tree, and by scripts/test from an installed tree with
 * `pkg-config --cflags --libs isola` alone. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* mkdtemp */
#endif
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
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
	      "def spin():\n    while True:\n        pass\n"
	      "def echo(*a):\n    return a\n"
	      "def types(*a):\n    return [type(x).__name__ for x in a]\n"
	      "def put(ch, v):\n    ch.send(v)\n    return big()\n"
	      "def big():\n    return 2**70\n"
	      "def looked_up(name, key):\n    import isola\n    return isola.lookup(name)[key]\n"
	      "def get(m, key):\n    return (type(m).__name__, m[key])\n"
	      "def frozen_back(name):\n    import isola\n    return isola.lookup(name)\n"
	      "def inv(x):\n    return 1 / x\n"
	      "def hold(ch):\n    return ch.recv()\n"
	      "def read_loop(name, seconds):\n"
	      "    import isola\n    t = isola.lookup(name)\n    n = rounds = 0\n"
	      "    end = time.monotonic() + seconds\n"
	      "    while time.monotonic() < end or rounds == 0:\n"
	      "        for k in t:\n            n += t[k][0]\n        rounds += 1\n"
	      "    return [n, rounds]\n"
	      "def churn(seconds):\n"
	      "    import isola\n    i = 0\n    end = time.monotonic() + seconds\n"
	      "    while time.monotonic() < end or i == 0:\n"
	      "        v = isola.freeze({str(j): (j, 'x' * j) for j in range(50)})\n"
	      "        isola.publish('embed.churn', v)\n        isola.lookup('embed.churn')['7']\n"
	      "        isola.unpublish('embed.churn')\n        del v\n        i += 1\n"
	      "    return i\n"
	      "class Box:\n    def ok(self):\n        return 1\n"
	      "    def bad(self):\n        raise ValueError('no')\n",
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

/* isola.h: a default SIGPIPE is ignored, so Python code gets EPIPE. */
Test(embed, default_sigpipe_is_ignored_after_init)
{
	struct sigaction sa;
	cr_assert_eq(sigaction(SIGPIPE, NULL, &sa), 0);
	cr_assert(sa.sa_handler == SIG_IGN);
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

/* Values without hand-written msgpack: the writer and the reader. */
static isola_msg wait_result(isola_future *f)
{
	cr_assert_eq(isola_future_wait(f, -1), 0);
	isola_msg r;
	isola_msg_init(&r);
	int s = isola_future_result(f, &r);
	const char *type = "", *msg = "";
	isola_future_error(f, &type, &msg, NULL);
	cr_assert_eq(s, 0, "%s: %s", type, msg);
	isola_future_release(f);
	return r;
}

/* A pool of one, a channel and a writer, for the value tests. */
struct rig {
	isola_pool *p;
	isola_channel *ch;
	isola_writer *w;
};

static struct rig rig_open(void)
{
	struct rig g = { .p = pool(1) };
	cr_assert_eq(isola_channel_create(4, &g.ch), 0);
	cr_assert_eq(isola_writer_create(&g.w), 0);
	return g;
}

static void rig_close(struct rig *g)
{
	isola_writer_destroy(g->w);
	isola_channel_release(g->ch);
	cr_assert_eq(isola_pool_destroy(g->p), 0);
}

/* Finish w's value as the arguments of target; the result message. */
static isola_msg call_written(isola_pool *p, const char *target, isola_writer *w)
{
	isola_msg args;
	isola_msg_init(&args);
	cr_assert_eq(isola_writer_finish(w, &args), 0);
	isola_future *f;
	cr_assert_eq(isola_pool_submit(p, target, &args, 0, &f), 0);
	return wait_result(f);
}

static void write_sample(isola_writer *w, isola_channel *ch)
{
	cr_assert_eq(isola_write_list(w, 12), 0); /* the positional arguments */
	cr_assert_eq(isola_write_int(w, -2), 0);
	cr_assert_eq(isola_write_uint(w, UINT64_MAX), 0);
	cr_assert_eq(isola_write_float(w, 1.5), 0);
	cr_assert_eq(isola_write_str(w, "h\xc3\xa9llo", ISOLA_STRLEN), 0);
	cr_assert_eq(isola_write_bytes(w, "\0\1", 2), 0);
	cr_assert_eq(isola_write_nil(w), 0);
	cr_assert_eq(isola_write_bool(w, 1), 0);
	cr_assert_eq(isola_write_tuple(w, 2), 0);
	cr_assert_eq(isola_write_int(w, 1), 0);
	cr_assert_eq(isola_write_str(w, "a", 1), 0);
	cr_assert_eq(isola_write_map(w, 1), 0);
	cr_assert_eq(isola_write_str(w, "k", 1), 0);
	cr_assert_eq(isola_write_list(w, 2), 0);
	cr_assert_eq(isola_write_int(w, 1), 0);
	cr_assert_eq(isola_write_int(w, 2), 0);
	cr_assert_eq(isola_write_tuple(w, 0), 0);
	cr_assert_eq(isola_write_list(w, 0), 0);
	cr_assert_eq(isola_write_channel(w, ch), 0);
}

Test(embed, python_sees_the_written_types)
{
	struct rig g = rig_open();
	isola_pool *p = g.p;
	isola_channel *ch = g.ch;
	isola_writer *w = g.w;
	write_sample(w, ch);
	cr_assert_eq(isola_write_int(w, 3), ISOLA_ESTATE, "the value is complete");
	isola_msg r = call_written(p, "embed_helper:types", w);
	isola_reader *rd;
	const isola_value *v;
	cr_assert_eq(isola_reader_create(&r, &rd, &v), 0);
	const char *want[] = { "int", "int", "float", "str", "bytes", "NoneType", "bool",
			       "tuple", "dict", "tuple", "list", "Channel" };
	cr_assert_eq(v->type, ISOLA_VALUE_LIST);
	cr_assert_eq(v->as.seq.n, 12);
	for (size_t i = 0; i < 12; i++) {
		const isola_value *it = &v->as.seq.items[i];
		cr_assert_eq(it->type, ISOLA_VALUE_STR);
		cr_assert(it->as.bytes.len == strlen(want[i]) &&
				  memcmp(it->as.bytes.ptr, want[i], it->as.bytes.len) == 0,
			  "argument %zu: %.*s, not %s", i, (int)it->as.bytes.len, it->as.bytes.ptr,
			  want[i]);
	}
	isola_reader_destroy(rd);
	isola_msg_clear(&r);
	rig_close(&g);
}

Test(embed, values_come_back_as_written)
{
	struct rig g = rig_open();
	isola_pool *p = g.p;
	isola_channel *ch = g.ch;
	isola_writer *w = g.w;
	write_sample(w, ch);
	isola_msg r = call_written(p, "embed_helper:echo", w);
	isola_reader *rd;
	const isola_value *v;
	cr_assert_eq(isola_reader_create(&r, &rd, &v), 0);
	cr_assert_eq(v->type, ISOLA_VALUE_TUPLE); /* echo returns its args tuple */
	cr_assert_eq(v->as.seq.n, 12);
	const isola_value *a = v->as.seq.items;
	cr_assert(a[0].type == ISOLA_VALUE_INT && a[0].as.i == -2);
	cr_assert(a[1].type == ISOLA_VALUE_UINT && a[1].as.u == UINT64_MAX);
	cr_assert(a[2].type == ISOLA_VALUE_FLOAT && a[2].as.f == 1.5);
	cr_assert(a[3].type == ISOLA_VALUE_STR && a[3].as.bytes.len == 6 &&
		  memcmp(a[3].as.bytes.ptr, "h\xc3\xa9llo", 6) == 0);
	cr_assert(a[4].type == ISOLA_VALUE_BYTES && a[4].as.bytes.len == 2);
	cr_assert_eq(a[5].type, ISOLA_VALUE_NIL);
	cr_assert(a[6].type == ISOLA_VALUE_BOOL && a[6].as.b);
	cr_assert(a[7].type == ISOLA_VALUE_TUPLE && a[7].as.seq.n == 2 &&
		  a[7].as.seq.items[1].type == ISOLA_VALUE_STR);
	cr_assert(a[8].type == ISOLA_VALUE_MAP && a[8].as.seq.n == 1);
	const isola_value *kv = a[8].as.seq.items;
	cr_assert(kv[0].type == ISOLA_VALUE_STR && kv[1].type == ISOLA_VALUE_LIST &&
		  kv[1].as.seq.n == 2 && kv[1].as.seq.items[1].as.i == 2);
	cr_assert(a[9].type == ISOLA_VALUE_TUPLE && a[9].as.seq.n == 0);
	cr_assert(a[10].type == ISOLA_VALUE_LIST && a[10].as.seq.n == 0);
	cr_assert(a[11].type == ISOLA_VALUE_CHANNEL && a[11].as.channel == ch, "the same channel");
	isola_reader_destroy(rd);
	isola_msg_clear(&r);
	rig_close(&g);
}

Test(embed, a_channel_argument_reaches_the_task_and_back)
{
	struct rig g = rig_open();
	isola_pool *p = g.p;
	isola_channel *ch = g.ch;
	isola_writer *w = g.w;
	cr_assert_eq(isola_write_list(w, 2), 0);
	cr_assert_eq(isola_write_channel(w, ch), 0);
	cr_assert_eq(isola_write_map(w, 1), 0);
	cr_assert_eq(isola_write_str(w, "n", 1), 0);
	cr_assert_eq(isola_write_int(w, 41), 0);
	isola_msg r = call_written(p, "embed_helper:put", w); /* 2**70: a big int */
	isola_reader *rd;
	const isola_value *v;
	cr_assert_eq(isola_reader_create(&r, &rd, &v), 0);
	cr_assert_eq(v->type, ISOLA_VALUE_BIGINT);
	cr_assert_eq(v->ext_type, 4);
	isola_reader_destroy(rd);
	isola_msg_clear(&r);
	isola_msg m;
	isola_msg_init(&m);
	cr_assert_eq(isola_channel_recv(ch, &m, 5000000000LL), 0);
	cr_assert_eq(isola_reader_create(&m, &rd, &v), 0);
	cr_assert(v->type == ISOLA_VALUE_MAP && v->as.seq.n == 1 &&
		  v->as.seq.items[1].as.i == 41);
	isola_reader_destroy(rd);
	isola_msg_clear(&m);
	rig_close(&g);
}

Test(embed, writer_and_reader_refuse_bad_input)
{
	isola_writer *w;
	cr_assert_eq(isola_writer_create(&w), 0);
	isola_msg m;
	isola_msg_init(&m);
	cr_assert_eq(isola_writer_finish(w, &m), ISOLA_ESTATE, "nothing written");
	cr_assert_eq(isola_write_list(w, 2), 0);
	cr_assert_eq(isola_write_int(w, 1), 0);
	cr_assert_eq(isola_writer_finish(w, &m), ISOLA_ESTATE, "a list still open");
	cr_assert_eq(isola_write_bytes(w, NULL, 3), ISOLA_EINVAL);
	cr_assert_eq(isola_write_int(w, 2), 0);
	cr_assert_eq(isola_writer_finish(w, &m), 0);
	isola_msg_clear(&m);
	/* Nesting past the limit. */
	int r = 0;
	for (int i = 0; i < 600 && r == 0; i++)
		r = isola_write_list(w, 1);
	cr_assert_eq(r, ISOLA_ELIMIT);
	isola_writer_destroy(w); /* drops the unfinished value */
	/* Malformed bytes, a reference the message does not carry. */
	isola_reader *rd = NULL;
	const isola_value *v;
	cr_assert_eq(isola_msg_set_bytes(&m, "\x92\x01", 2), 0); /* truncated */
	cr_assert_eq(isola_reader_create(&m, &rd, &v), ISOLA_EINVAL);
	cr_assert_eq(isola_msg_set_bytes(&m, "\xd4\x0d\x00", 3), 0); /* channel #0, none attached */
	cr_assert_eq(isola_reader_create(&m, &rd, &v), ISOLA_EINVAL);
	cr_assert_null(rd);
	isola_msg_clear(&m);
}

/* The C side of isola.freeze: freeze from msgpack, publish, pass by
 * reference; workers of two pools read it at once (tsan runs this). */
Test(embed, a_frozen_table_from_c_reaches_every_worker)
{
	isola_writer *w;
	cr_assert_eq(isola_writer_create(&w), 0);
	cr_assert_eq(isola_write_map(w, 2), 0);
	cr_assert_eq(isola_write_str(w, "answer", ISOLA_STRLEN), 0);
	cr_assert_eq(isola_write_int(w, 42), 0);
	cr_assert_eq(isola_write_str(w, "list", ISOLA_STRLEN), 0);
	cr_assert_eq(isola_write_list(w, 3), 0);
	for (int i = 1; i <= 3; i++)
		cr_assert_eq(isola_write_int(w, i), 0);
	isola_msg m;
	isola_msg_init(&m);
	cr_assert_eq(isola_writer_finish(w, &m), 0);
	const void *data;
	size_t len, size;
	isola_msg_bytes(&m, &data, &len);
	isola_frozen *table;
	cr_assert_eq(isola_frozen_from_msgpack(data, len, &table), 0);
	isola_msg_clear(&m);
	cr_assert_eq(isola_frozen_size(table, &size), 0);
	cr_assert_gt(size, len, "an image holds an index too");
	cr_assert_eq(isola_frozen_publish("embed.table", table), 0);

	isola_pool *p = pool(4);
	isola_future *f[8];
	for (int i = 0; i < 8; i++) {
		if (i % 2 == 0) { /* by name */
			cr_assert_eq(isola_write_list(w, 2), 0);
			cr_assert_eq(isola_write_str(w, "embed.table", ISOLA_STRLEN), 0);
			cr_assert_eq(isola_write_str(w, "answer", ISOLA_STRLEN), 0);
		} else { /* by reference, as an argument */
			cr_assert_eq(isola_write_list(w, 2), 0);
			cr_assert_eq(isola_write_frozen(w, table), 0);
			cr_assert_eq(isola_write_str(w, "answer", ISOLA_STRLEN), 0);
		}
		isola_msg args;
		isola_msg_init(&args);
		cr_assert_eq(isola_writer_finish(w, &args), 0);
		cr_assert_eq(isola_pool_submit(p, i % 2 ? "embed_helper:get" : "embed_helper:looked_up",
					       &args, 0, &f[i]), 0);
	}
	for (int i = 0; i < 8; i++) {
		isola_msg r = wait_result(f[i]);
		isola_reader *rd;
		const isola_value *v;
		cr_assert_eq(isola_reader_create(&r, &rd, &v), 0);
		if (i % 2 == 0) {
			cr_assert(v->type == ISOLA_VALUE_INT && v->as.i == 42);
		} else {
			cr_assert_eq(v->type, ISOLA_VALUE_TUPLE);
			const isola_value *name = &v->as.seq.items[0];
			cr_assert(name->as.bytes.len == 9 && memcmp(name->as.bytes.ptr, "FrozenMap", 9) == 0);
			cr_assert_eq(v->as.seq.items[1].as.i, 42);
		}
		isola_reader_destroy(rd);
		isola_msg_clear(&r);
	}

	/* A frozen result comes back as a frozen value the reader shows. */
	cr_assert_eq(isola_write_list(w, 1), 0);
	cr_assert_eq(isola_write_str(w, "embed.table", ISOLA_STRLEN), 0);
	isola_msg args;
	isola_msg_init(&args);
	cr_assert_eq(isola_writer_finish(w, &args), 0);
	isola_future *back;
	cr_assert_eq(isola_pool_submit(p, "embed_helper:frozen_back", &args, 0, &back), 0);
	isola_msg r = wait_result(back);
	isola_reader *rd;
	const isola_value *v;
	cr_assert_eq(isola_reader_create(&r, &rd, &v), 0);
	cr_assert_eq(v->type, ISOLA_VALUE_FROZEN);
	isola_frozen *kept;
	cr_assert_eq(isola_frozen_copy(v->as.frozen, &kept), 0);
	isola_reader_destroy(rd);
	isola_msg_clear(&r);
	size_t kept_size;
	cr_assert_eq(isola_frozen_size(kept, &kept_size), 0);
	cr_assert_eq(kept_size, size, "the same image came back");
	isola_frozen_release(kept);
	cr_assert_eq(isola_pool_destroy(p), 0);

	isola_frozen *again;
	cr_assert_eq(isola_frozen_lookup("embed.table", &again), 0);
	cr_assert_eq(isola_frozen_unpublish("embed.table"), 0);
	cr_assert_eq(isola_frozen_unpublish("embed.table"), ISOLA_ENOTFOUND);
	cr_assert_eq(isola_frozen_lookup("embed.table", &table), ISOLA_ENOTFOUND);
	isola_frozen_release(again); /* still valid after unpublishing */
	isola_frozen_release(table);

	/* Bad input: not a value, trailing bytes, a NULL out. */
	isola_frozen *bad = NULL;
	cr_assert_eq(isola_frozen_from_msgpack("\xc1", 1, &bad), ISOLA_EINVAL);
	cr_assert_eq(isola_frozen_from_msgpack("\x01\x02", 2, &bad), ISOLA_EINVAL);
	cr_assert_eq(isola_frozen_from_msgpack("\x01", 1, NULL), ISOLA_EINVAL);
	cr_assert_null(bad);
	cr_assert_eq(isola_frozen_publish(NULL, NULL), ISOLA_EINVAL);
	isola_writer_destroy(w);
}

/* Argument sets [x] for x = start, start+1, ... (ints, via the writer). */
static void int_argsets(isola_msg *sets, size_t n, int start)
{
	isola_writer *w;
	cr_assert_eq(isola_writer_create(&w), 0);
	for (size_t i = 0; i < n; i++) {
		cr_assert_eq(isola_write_list(w, 1), 0);
		cr_assert_eq(isola_write_int(w, start + (int)i), 0);
		isola_msg_init(&sets[i]);
		cr_assert_eq(isola_writer_finish(w, &sets[i]), 0);
	}
	isola_writer_destroy(w);
}

static void clear_all(isola_msg *sets, size_t n)
{
	for (size_t i = 0; i < n; i++)
		isola_msg_clear(&sets[i]);
}

Test(embed, a_failed_map_chunk_names_its_element)
{
	isola_pool *p = pool(2);
	isola_msg sets[6];
	int_argsets(sets, 6, -3); /* -3 .. 2: element 3 divides by zero */
	isola_future *out[3];
	size_t k = 0;
	cr_assert_eq(isola_pool_map(p, "embed_helper:inv", sets, 6, 2, out, &k), 0);
	cr_assert_eq(k, 3);
	int failed = 0;
	for (size_t c = 0; c < k; c++) {
		cr_assert_eq(isola_future_wait(out[c], -1), 0);
		int s = isola_future_result(out[c], NULL);
		if (c == 1) {
			const char *type = NULL, *msg = NULL;
			cr_assert_eq(s, ISOLA_EPYTHON);
			cr_assert_eq(isola_future_error(out[c], &type, &msg, NULL), 0);
			cr_assert_str_eq(type, "ZeroDivisionError");
			cr_assert(strncmp(msg, "map element 3: ", 15) == 0, "message: '%s'", msg);
			failed++;
		} else {
			cr_assert_eq(s, 0, "chunk %zu", c);
		}
		isola_future_release(out[c]);
	}
	cr_assert_eq(failed, 1);
	cr_assert_eq(isola_pool_destroy(p), 0);
}

Test(embed, a_per_element_map_reports_every_call)
{
	isola_pool *p = pool(2);
	isola_msg sets[5];
	int_argsets(sets, 5, -2); /* -2 .. 2 */
	isola_future *out[5];
	size_t k = 0;
	isola_map_options o = { .chunksize = 5, .per_element = 1 };
	cr_assert_eq(isola_pool_map_ex(p, "embed_helper:inv", sets, 5, &o, out, &k), 0);
	cr_assert_eq(k, 1);
	isola_msg r = wait_result(out[0]); /* the chunk as a whole succeeded */
	isola_reader *rd;
	const isola_value *v;
	cr_assert_eq(isola_reader_create(&r, &rd, &v), 0);
	cr_assert_eq(v->type, ISOLA_VALUE_LIST);
	cr_assert_eq(v->as.seq.n, 5);
	for (size_t i = 0; i < 5; i++) {
		const isola_value *it = &v->as.seq.items[i];
		if (i == 2) {
			cr_assert_eq(it->type, ISOLA_VALUE_EXCEPTION);
			const isola_value *qual = &it->as.seq.items[1];
			cr_assert(qual->as.bytes.len == 17 &&
				  memcmp(qual->as.bytes.ptr, "ZeroDivisionError", 17) == 0);
		} else {
			cr_assert_eq(it->type, ISOLA_VALUE_FLOAT, "element %zu", i);
			cr_assert_float_eq(it->as.f, 1.0 / ((double)i - 2), 1e-12);
		}
	}
	isola_reader_destroy(rd);
	isola_msg_clear(&r);
	cr_assert_eq(isola_pool_destroy(p), 0);
}

Test(embed, a_map_timeout_interrupts_its_chunk)
{
	isola_pool *p = pool(1);
	isola_writer *w;
	cr_assert_eq(isola_writer_create(&w), 0);
	isola_msg sets[1];
	cr_assert_eq(isola_write_list(w, 0), 0);
	isola_msg_init(&sets[0]);
	cr_assert_eq(isola_writer_finish(w, &sets[0]), 0);
	isola_writer_destroy(w);
	isola_future *out[1];
	size_t k = 0;
	isola_map_options o = { .timeout_ns = 100000000 };
	cr_assert_eq(isola_pool_map_ex(p, "embed_helper:spin", sets, 1, &o, out, &k), 0);
	cr_assert_eq(k, 1);
	cr_assert_eq(isola_future_wait(out[0], 20000000000LL), 0);
	cr_assert_eq(isola_future_result(out[0], NULL), ISOLA_ETIMEDOUT);
	isola_future_release(out[0]);
	cr_assert_eq(isola_pool_destroy(p), 0);
}

Test(embed, a_refused_map_writes_no_output)
{
	isola_pool *p = pool(1);
	isola_msg sets[3];
	int_argsets(sets, 3, 1);
	isola_future *out[3] = { NULL, NULL, NULL };
	size_t k = 77;
	cr_assert_eq(isola_pool_map(p, "no_colon", sets, 3, 1, out, &k), ISOLA_EINVAL);
	cr_assert_eq(isola_pool_shutdown(p, 0, -1), 0);
	cr_assert_eq(isola_pool_map(p, "embed_helper:inv", sets, 3, 1, out, &k), ISOLA_ECLOSED);
	cr_assert_eq(k, 77, "n_chunks untouched");
	for (size_t i = 0; i < 3; i++) {
		cr_assert_null(out[i]);
		const void *d;
		size_t len = 0;
		cr_assert_eq(isola_msg_bytes(&sets[i], &d, &len), 0);
		cr_assert_gt(len, 0, "argument set %zu kept", i);
	}
	clear_all(sets, 3);
	cr_assert_eq(isola_pool_destroy(p), 0);
}

Test(embed, a_map_the_queue_cannot_take_whole_reports_nothing)
{
	isola_pool_options po = { .workers = 1, .queue_wait_ns = 1000000 };
	isola_pool *p = NULL;
	cr_assert_eq(isola_pool_create(&po, &p, NULL), 0);
	/* The only worker waits on a channel until this test lets it go. */
	isola_channel *gate;
	cr_assert_eq(isola_channel_create(1, &gate), 0);
	isola_writer *gw;
	cr_assert_eq(isola_writer_create(&gw), 0);
	cr_assert_eq(isola_write_list(gw, 1), 0);
	cr_assert_eq(isola_write_channel(gw, gate), 0);
	isola_msg a;
	isola_msg_init(&a);
	cr_assert_eq(isola_writer_finish(gw, &a), 0);
	isola_future *busy;
	cr_assert_eq(isola_pool_submit(p, "embed_helper:hold", &a, 0, &busy), 0);
	enum { N = 70000 }; /* more chunks than the shared queue holds */
	isola_msg *sets = calloc(N, sizeof(*sets));
	isola_future **out = calloc(N, sizeof(*out));
	cr_assert(sets != NULL && out != NULL);
	isola_writer *w;
	cr_assert_eq(isola_writer_create(&w), 0);
	for (size_t i = 0; i < N; i++) {
		cr_assert_eq(isola_write_list(w, 0), 0);
		isola_msg_init(&sets[i]);
		cr_assert_eq(isola_writer_finish(w, &sets[i]), 0);
	}
	isola_writer_destroy(w);
	size_t k = 77;
	cr_assert_eq(isola_pool_map(p, "embed_helper:seven", sets, N, 1, out, &k), ISOLA_EAGAIN);
	cr_assert_eq(k, 77, "n_chunks untouched");
	for (size_t i = 0; i < N; i++)
		cr_assert_null(out[i], "out[%zu] untouched", i);
	const void *d;
	size_t len = 0;
	cr_assert_eq(isola_msg_bytes(&sets[N - 1], &d, &len), 0);
	cr_assert_gt(len, 0, "the sets that were not queued stay the caller's");
	clear_all(sets, N);
	free(sets);
	free(out);
	cr_assert_eq(isola_write_nil(gw), 0); /* let the worker go */
	isola_msg go;
	isola_msg_init(&go);
	cr_assert_eq(isola_writer_finish(gw, &go), 0);
	cr_assert_eq(isola_channel_send(gate, &go, -1), 0);
	isola_msg r = wait_result(busy);
	isola_msg_clear(&r);
	isola_writer_destroy(gw);
	isola_channel_release(gate);
	cr_assert_eq(isola_pool_destroy(p), 0);
}

Test(embed, failed_actor_sends_are_counted)
{
	isola_pool *p = pool(1);
	isola_actor a;
	cr_assert_eq(isola_actor_spawn(p, "embed_helper:Box", NULL, NULL, &a), 0);
	uint64_t n = 99;
	cr_assert_eq(isola_pool_send_errors(p, &n), 0);
	cr_assert_eq(n, 0);
	cr_assert_eq(isola_actor_send(p, a, "ok", NULL), 0);
	cr_assert_eq(isola_actor_send(p, a, "bad", NULL), 0);
	cr_assert_eq(isola_actor_send(p, a, "bad", NULL), 0);
	isola_future *f; /* the mailbox is ordered: once this is done, so are the sends */
	cr_assert_eq(isola_actor_call(p, a, "ok", NULL, &f), 0);
	isola_msg r = wait_result(f);
	isola_msg_clear(&r);
	cr_assert_eq(isola_pool_send_errors(p, &n), 0);
	cr_assert_eq(n, 2, "two sends raised");
	cr_assert_eq(isola_pool_send_errors(NULL, &n), ISOLA_EINVAL);
	cr_assert_eq(isola_pool_destroy(p), 0);
}

Test(embed, a_null_setup_string_is_einval)
{
	const char *paths[] = { "/tmp", NULL };
	isola_pool_options o = { .workers = 1, .setup = { .sys_path = paths, .n_sys_path = 2 } };
	isola_pool *p = NULL;
	cr_assert_eq(isola_pool_create(&o, &p, NULL), ISOLA_EINVAL);
	cr_assert_null(p);
	const char *pre[] = { NULL };
	isola_pool_options o2 = { .workers = 1, .setup = { .preload = pre, .n_preload = 1 } };
	cr_assert_eq(isola_pool_create(&o2, &p, NULL), ISOLA_EINVAL);
	cr_assert_null(p);
}

/* Issue #18: four interpreters read one frozen table while a fifth and
 * this thread freeze, publish and drop others (run under ASan and TSan
 * by scripts/test-sanitizers). */
Test(embed, readers_of_a_frozen_table_while_others_freeze_publish_and_drop)
{
	enum { ENTRIES = 100 };
	isola_writer *w;
	cr_assert_eq(isola_writer_create(&w), 0);
	cr_assert_eq(isola_write_map(w, ENTRIES), 0);
	long long sum = 0;
	for (int i = 0; i < ENTRIES; i++) {
		char key[16];
		snprintf(key, sizeof(key), "k%d", i);
		cr_assert_eq(isola_write_str(w, key, ISOLA_STRLEN), 0);
		cr_assert_eq(isola_write_tuple(w, 2), 0);
		cr_assert_eq(isola_write_int(w, i), 0);
		cr_assert_eq(isola_write_str(w, key, ISOLA_STRLEN), 0);
		sum += i;
	}
	isola_msg m;
	isola_msg_init(&m);
	cr_assert_eq(isola_writer_finish(w, &m), 0);
	const void *data;
	size_t len;
	isola_msg_bytes(&m, &data, &len);
	isola_frozen *table;
	cr_assert_eq(isola_frozen_from_msgpack(data, len, &table), 0);
	cr_assert_eq(isola_frozen_publish("embed.shared", table), 0);

	isola_pool *p = pool(5);
	isola_future *f[5];
	for (int i = 0; i < 5; i++) {
		cr_assert_eq(isola_write_list(w, i < 4 ? 2 : 1), 0);
		if (i < 4)
			cr_assert_eq(isola_write_str(w, "embed.shared", ISOLA_STRLEN), 0);
		cr_assert_eq(isola_write_float(w, 0.5), 0);
		isola_msg args;
		isola_msg_init(&args);
		cr_assert_eq(isola_writer_finish(w, &args), 0);
		cr_assert_eq(isola_pool_submit(p, i < 4 ? "embed_helper:read_loop" : "embed_helper:churn",
					       &args, 0, &f[i]),
			     0);
	}
	/* Meanwhile here: freeze from msgpack, publish, look up, drop. */
	int mine = 0;
	for (int done = 0; !done; mine++) {
		isola_frozen *v, *got;
		cr_assert_eq(isola_frozen_from_msgpack(data, len, &v), 0);
		cr_assert_eq(isola_frozen_publish("embed.mine", v), 0);
		cr_assert_eq(isola_frozen_lookup("embed.mine", &got), 0);
		isola_frozen_release(got);
		cr_assert_eq(isola_frozen_unpublish("embed.mine"), 0);
		isola_frozen_release(v);
		int st;
		cr_assert_eq(isola_future_state(f[0], &st), 0);
		done = st >= ISOLA_FUTURE_DONE;
	}
	isola_msg_clear(&m);
	for (int i = 0; i < 5; i++) {
		isola_msg r = wait_result(f[i]);
		isola_reader *rd;
		const isola_value *v;
		cr_assert_eq(isola_reader_create(&r, &rd, &v), 0);
		if (i < 4) {
			cr_assert_eq(v->type, ISOLA_VALUE_LIST);
			long long n = v->as.seq.items[0].as.i, rounds = v->as.seq.items[1].as.i;
			cr_assert_gt(rounds, 0);
			cr_assert_eq(n, rounds * sum, "reader %d read every entry right", i);
		} else {
			cr_assert_gt(v->as.i, 0, "the churner froze, published and dropped");
		}
		isola_reader_destroy(rd);
		isola_msg_clear(&r);
	}
	cr_assert_gt(mine, 0);
	cr_assert_eq(isola_frozen_unpublish("embed.shared"), 0);
	isola_frozen_release(table);
	isola_writer_destroy(w);
	cr_assert_eq(isola_pool_destroy(p), 0);
}
