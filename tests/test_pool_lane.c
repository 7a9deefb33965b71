/*
 * test_pool_lane.c - an embedder's pool with process workers (isola.h:
 * process_workers, isola_pool_place, isola_pool_submit_lane; issue #33).
 *
 * The children are the Python isola was built for, importing the isola
 * module of this build (ISOLA_TEST_MODULE_DIR) and the tests' helpers
 * (tests/python/proc_helpers.py, and singlephase_ext: a single-phase
 * extension that sub-interpreters refuse).
 */
#include <criterion/criterion.h>
#include <msgpack.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "isola.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#else
#define SANITIZED 0
#endif

static void setup(void)
{
	cr_assert_eq(isola_init(NULL), 0);
}

static void teardown(void)
{
	cr_assert_eq(isola_fini(), 0);
}

TestSuite(pool_lane, .init = setup, .fini = teardown, .timeout = 120);

static const char *const paths[] = { ISOLA_TEST_MODULE_DIR, ISOLA_TEST_PY_DIR,
				     ISOLA_TEST_EXT_DIR };

static isola_pool *make_pool(int processes, const char *python)
{
	if (SANITIZED)
		cr_skip_test("a child Python cannot load this build's sanitized isola module");
	isola_pool_options o = { .workers = 1,
				 .setup = { .sys_path = paths, .n_sys_path = 3 },
				 .process_workers = processes,
				 .process_python = python };
	isola_pool *p = NULL;
	char *err = NULL;
	int r = isola_pool_create(&o, &p, &err);
	cr_assert_eq(r, 0, "pool_create: %s %s", isola_strerror(r), err ? err : "");
	return p;
}

static void int_args(isola_msg *m, long long v)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 1);
	msgpack_pack_int64(&pk, v);
	isola_msg_init(m);
	cr_assert_eq(isola_msg_set_bytes(m, sb.data, sb.size), 0);
	msgpack_sbuffer_destroy(&sb);
}

/* The done future's result, unpacked (the caller destroys u). */
static void result_of(isola_future *f, msgpack_unpacked *u)
{
	cr_assert_eq(isola_future_wait(f, 60LL * 1000000000), 0);
	isola_msg r;
	isola_msg_init(&r);
	int s = isola_future_result(f, &r);
	const char *type = "", *msg = "", *tb = "";
	isola_future_error(f, &type, &msg, &tb);
	cr_assert_eq(s, 0, "%s: %s: %s\n%s", isola_err_name(s), type, msg, tb);
	const void *p;
	size_t len;
	isola_msg_bytes(&r, &p, &len);
	msgpack_unpacked_init(u);
	cr_assert_eq(msgpack_unpack_next(u, p, len, NULL), MSGPACK_UNPACK_SUCCESS);
	isola_msg_clear(&r);
}

/* target(arg), or target() for arg < 0: its int result. */
static long long call_int(isola_pool *p, int lane, const char *target, long long arg)
{
	isola_msg a;
	if (arg >= 0)
		int_args(&a, arg);
	else
		isola_msg_init(&a);
	isola_future *f = NULL;
	int r = lane < 0 ? isola_pool_submit(p, target, &a, 0, &f)
			 : isola_pool_submit_lane(p, lane, target, &a, 0, &f);
	cr_assert_eq(r, 0, "submit %s: %s", target, isola_strerror(r));
	msgpack_unpacked u;
	result_of(f, &u);
	cr_assert(u.data.type == MSGPACK_OBJECT_POSITIVE_INTEGER, "%s: not an int", target);
	long long v = (long long)u.data.via.u64;
	msgpack_unpacked_destroy(&u);
	isola_future_release(f);
	return v;
}

Test(pool_lane, a_placed_target_runs_in_a_child_process_and_per_call_lanes_override)
{
	isola_pool *p = make_pool(1, NULL);
	long long here = getpid();
	/* Not placed: an interpreter worker, in this process. */
	cr_assert_eq(call_int(p, -1, "proc_helpers:pid", -1), here);
	cr_assert_eq(isola_pool_place(p, "proc_helpers:pid", ISOLA_LANE_PROCESS), 0);
	long long child = call_int(p, -1, "proc_helpers:pid", -1);
	cr_assert_neq(child, here, "a placed target ran in this process");
	cr_assert_eq(call_int(p, ISOLA_LANE_INTERPRETER, "proc_helpers:pid", -1), here);
	cr_assert_eq(call_int(p, -1, "proc_helpers:square", 7), 49); /* not placed */
	cr_assert_eq(call_int(p, ISOLA_LANE_PROCESS, "proc_helpers:square", 9), 81);
	cr_assert_eq(call_int(p, -1, "proc_helpers:pid", -1), child, "one child serves");
	cr_assert_eq(isola_pool_destroy(p), 0);
	/* Joined: the child is gone (reaped, so not even a zombie). */
	cr_assert_eq(kill((pid_t)child, 0), -1, "child %lld outlived its pool", child);
}

Test(pool_lane, an_extension_that_interpreters_refuse_runs_when_its_module_is_placed)
{
	isola_pool *p = make_pool(1, NULL);
	isola_msg a;
	int_args(&a, 21);
	isola_future *f = NULL;
	cr_assert_eq(isola_pool_submit(p, "proc_helpers:uses_singlephase", &a, 0, &f), 0);
	cr_assert_eq(isola_future_wait(f, -1), 0);
	cr_assert_eq(isola_future_result(f, NULL), ISOLA_EPYTHON);
	const char *type, *msg, *tb;
	cr_assert_eq(isola_future_error(f, &type, &msg, &tb), 0);
	cr_assert(strstr(msg, "does not support loading in subinterpreters") != NULL, "%s: %s",
		  type, msg);
	isola_future_release(f);
	/* A module placement covers its functions. */
	cr_assert_eq(isola_pool_place(p, "proc_helpers", ISOLA_LANE_PROCESS), 0);
	int_args(&a, 21);
	cr_assert_eq(isola_pool_submit(p, "proc_helpers:uses_singlephase", &a, 0, &f), 0);
	msgpack_unpacked u, items;
	result_of(f, &u);
	/* A tuple: ext 1 holding an array (docs/wire.md). */
	cr_assert_eq(u.data.type, MSGPACK_OBJECT_EXT);
	cr_assert_eq(u.data.via.ext.type, 1);
	msgpack_unpacked_init(&items);
	cr_assert_eq(msgpack_unpack_next(&items, u.data.via.ext.ptr, u.data.via.ext.size, NULL),
		     MSGPACK_UNPACK_SUCCESS);
	cr_assert_eq(items.data.type, MSGPACK_OBJECT_ARRAY);
	cr_assert_eq(items.data.via.array.ptr[0].via.u64, 42);
	cr_assert_neq((long long)items.data.via.array.ptr[1].via.u64, (long long)getpid());
	msgpack_unpacked_destroy(&items);
	msgpack_unpacked_destroy(&u);
	isola_future_release(f);
	/* A target placement wins over its module's. */
	cr_assert_eq(isola_pool_place(p, "proc_helpers:pid", ISOLA_LANE_INTERPRETER), 0);
	cr_assert_eq(call_int(p, -1, "proc_helpers:pid", -1), getpid());
	isola_pool_destroy(p);
}

Test(pool_lane, a_child_that_crashes_fails_only_its_task_and_is_replaced)
{
	isola_pool *p = make_pool(1, NULL);
	cr_assert_eq(isola_pool_place(p, "proc_helpers", ISOLA_LANE_PROCESS), 0);
	long long first = call_int(p, -1, "proc_helpers:pid", -1);
	isola_msg none;
	isola_msg_init(&none);
	isola_future *f = NULL;
	cr_assert_eq(isola_pool_submit(p, "proc_helpers:segfault", &none, 0, &f), 0);
	cr_assert_eq(isola_future_wait(f, -1), 0);
	cr_assert_eq(isola_future_result(f, NULL), ISOLA_ECRASHED);
	const char *type, *msg, *tb;
	cr_assert_eq(isola_future_error(f, &type, &msg, &tb), 0);
	cr_assert(strstr(msg, "SIGSEGV") != NULL, "%s", msg);
	isola_future_release(f);
	long long next = call_int(p, -1, "proc_helpers:pid", -1);
	cr_assert_neq(next, first, "not replaced");
	cr_assert_eq(call_int(p, -1, "proc_helpers:square", 12), 144);
	isola_pool_destroy(p);
}

Test(pool_lane, a_map_of_a_placed_target_runs_its_chunks_in_processes)
{
	isola_pool *p = make_pool(2, NULL);
	cr_assert_eq(isola_pool_place(p, "proc_helpers:square", ISOLA_LANE_PROCESS), 0);
	enum { N = 10 };
	isola_msg sets[N];
	for (int i = 0; i < N; i++)
		int_args(&sets[i], i);
	isola_future *chunks[N];
	size_t k = 0;
	isola_map_options o = { .chunksize = 3 };
	cr_assert_eq(isola_pool_map_ex(p, "proc_helpers:square", sets, N, &o, chunks, &k), 0);
	cr_assert_eq(k, 4);
	int at = 0;
	for (size_t c = 0; c < k; c++) {
		msgpack_unpacked u;
		result_of(chunks[c], &u);
		cr_assert_eq(u.data.type, MSGPACK_OBJECT_ARRAY);
		for (uint32_t i = 0; i < u.data.via.array.size; i++, at++)
			cr_assert_eq(u.data.via.array.ptr[i].via.u64, (uint64_t)(at * at));
		msgpack_unpacked_destroy(&u);
		isola_future_release(chunks[c]);
	}
	cr_assert_eq(at, N);
	o.per_element = 1;
	for (int i = 0; i < N; i++)
		int_args(&sets[i], i);
	cr_assert_eq(isola_pool_map_ex(p, "proc_helpers:square", sets, N, &o, chunks, &k),
		     ISOLA_EINVAL);
	for (int i = 0; i < N; i++)
		isola_msg_clear(&sets[i]);
	isola_pool_destroy(p);
}

/* args: [blob] (one reference attached), or [channel]. */
static void ref_args(isola_msg *m, isola_blob *blob, isola_channel *ch)
{
	isola_writer *w;
	cr_assert_eq(isola_writer_create(&w), 0);
	cr_assert_eq(isola_write_list(w, 1), 0);
	cr_assert_eq(blob ? isola_write_blob(w, blob) : isola_write_channel(w, ch), 0);
	isola_msg_init(m);
	cr_assert_eq(isola_writer_finish(w, m), 0);
	isola_writer_destroy(w);
}

Test(pool_lane, a_blob_reaches_a_child_mapped_and_a_channel_is_refused)
{
	isola_pool *p = make_pool(1, NULL);
	size_t n = (size_t)1 << 20;
	unsigned char *bytes = malloc(n);
	unsigned long long sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += bytes[i] = (unsigned char)(i * 7);
	isola_blob *blob;
	cr_assert_eq(isola_blob_create(bytes, n, &blob), 0);
	free(bytes);
	for (int k = 0; k < 3; k++) { /* the same blob again: one mirror, mapped */
		isola_msg a;
		ref_args(&a, blob, NULL);
		isola_future *f = NULL;
		cr_assert_eq(isola_pool_submit_lane(p, ISOLA_LANE_PROCESS, "proc_helpers:blob_summary",
						    &a, 0, &f), 0);
		msgpack_unpacked u;
		result_of(f, &u);
		cr_assert_eq(u.data.type, MSGPACK_OBJECT_ARRAY);
		msgpack_object *it = u.data.via.array.ptr;
		cr_assert_eq(u.data.via.array.size, 4);
		cr_assert_eq(it[0].via.str.size, 6);
		cr_assert_eq(memcmp(it[0].via.str.ptr, "Buffer", 6), 0);
		cr_assert_eq(it[1].via.u64, n);
		cr_assert_eq(it[2].via.u64, sum);
		cr_assert_eq(it[3].via.str.size, 5, "the child reads a mapping of this process's memfd");
		msgpack_unpacked_destroy(&u);
		isola_future_release(f);
	}
	isola_blob_release(blob);
	isola_channel *ch;
	cr_assert_eq(isola_channel_create(4, &ch), 0);
	isola_msg a;
	ref_args(&a, NULL, ch);
	isola_future *f = NULL;
	cr_assert_eq(isola_pool_submit_lane(p, ISOLA_LANE_PROCESS, "proc_helpers:echo", &a, 0, &f),
		     ISOLA_ETYPE);
	isola_msg_clear(&a);
	isola_channel_release(ch);
	cr_assert_eq(isola_pool_destroy(p), 0);
}

Test(pool_lane, bad_placements_and_lanes_are_refused_with_nothing_lost)
{
	isola_pool *p = make_pool(0, NULL); /* no process workers */
	cr_assert_eq(isola_pool_place(p, "proc_helpers", ISOLA_LANE_PROCESS), ISOLA_ESTATE);
	cr_assert_eq(isola_pool_place(p, "proc_helpers", ISOLA_LANE_INTERPRETER), 0);
	cr_assert_eq(isola_pool_place(p, "", ISOLA_LANE_INTERPRETER), ISOLA_EINVAL);
	cr_assert_eq(isola_pool_place(p, "a:", ISOLA_LANE_INTERPRETER), ISOLA_EINVAL);
	cr_assert_eq(isola_pool_place(p, "a:b:c", ISOLA_LANE_INTERPRETER), ISOLA_EINVAL);
	cr_assert_eq(isola_pool_place(p, "mod", 7), ISOLA_EINVAL);
	cr_assert_eq(isola_pool_place(NULL, "mod", ISOLA_LANE_PROCESS), ISOLA_EINVAL);
	isola_msg a;
	int_args(&a, 5);
	isola_future *f = NULL;
	cr_assert_eq(isola_pool_submit_lane(p, ISOLA_LANE_PROCESS, "proc_helpers:square", &a, 0, &f),
		     ISOLA_ESTATE);
	cr_assert_eq(isola_pool_submit_lane(p, 3, "proc_helpers:square", &a, 0, &f), ISOLA_EINVAL);
	/* The arguments are still the caller's: they run elsewhere. */
	cr_assert_eq(isola_pool_submit(p, "proc_helpers:square", &a, 0, &f), 0);
	msgpack_unpacked u;
	result_of(f, &u);
	cr_assert_eq(u.data.via.u64, 25);
	msgpack_unpacked_destroy(&u);
	isola_future_release(f);
	isola_pool_destroy(p);
}

Test(pool_lane, a_python_that_cannot_start_fails_the_pool_with_a_reason)
{
	if (SANITIZED)
		cr_skip_test("a child Python cannot load this build's sanitized isola module");
	isola_pool_options o = { .workers = 1, .process_workers = 1,
				 .process_python = "/nonexistent/python3" };
	isola_pool *p = NULL;
	char *err = NULL;
	int r = isola_pool_create(&o, &p, &err);
	cr_assert_neq(r, 0, "a pool whose process workers cannot start was made");
	cr_assert_null(p);
	cr_assert_not_null(err);
	cr_assert(strstr(err, "/nonexistent/python3") != NULL, "%s", err);
	free(err);
}
