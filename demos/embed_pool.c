/*
 * embed_pool.c - the template for C programs that embed isola: start a
 * pool of sub-interpreters, submit calls with msgpack arguments built with
 * msgpack-c, and read the msgpack results.
 *
 *   build/.../demos/embed_pool
 *
 * Every isola function returns 0 or a negative ISOLA_E* code
 * (isola_strerror() says what it means).
 */
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "isola.h"

#define CHECK(call)                                                           \
	do {                                                                  \
		int r_ = (call);                                              \
		if (r_ != 0) {                                                \
			fprintf(stderr, "%s: %s\n", #call, isola_strerror(r_)); \
			exit(1);                                              \
		}                                                             \
	} while (0)

/* Arguments for a call: a msgpack array of positional arguments. */
static void args_ints(isola_msg *m, long long a, long long b)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 2);
	msgpack_pack_long_long(&pk, a);
	msgpack_pack_long_long(&pk, b);
	isola_msg_init(m);
	CHECK(isola_msg_set_bytes(m, sb.data, sb.size)); /* copied */
	msgpack_sbuffer_destroy(&sb);
}

/* Print a future's result (msgpack) with msgpack-c's printer. */
static void print_result(const char *what, isola_future *f)
{
	CHECK(isola_future_wait(f, -1));
	isola_msg res;
	int r = isola_future_result(f, &res);
	if (r != 0) {
		const char *type, *msg, *tb;
		isola_future_error(f, &type, &msg, &tb);
		printf("%-26s raised %s: %s\n", what, type, msg);
		return;
	}
	const void *data;
	size_t len;
	isola_msg_bytes(&res, &data, &len);
	msgpack_unpacked u;
	msgpack_unpacked_init(&u);
	msgpack_unpack_next(&u, data, len, NULL);
	printf("%-26s = ", what);
	msgpack_object_print(stdout, u.data);
	printf("\n");
	msgpack_unpacked_destroy(&u);
	isola_msg_clear(&res);
}

int main(void)
{
	/* Start CPython, then a pool: one sub-interpreter per worker thread,
	 * each importing math first. */
	CHECK(isola_init(NULL));
	const char *preload[] = { "math" };
	isola_pool_options opts = { .workers = 2,
				    .setup = { .preload = preload, .n_preload = 1 } };
	isola_pool *pool;
	char *err = NULL;
	if (isola_pool_create(&opts, &pool, &err) != 0) {
		fprintf(stderr, "pool: %s\n", err);
		return 1;
	}

	/* Calls by name, "module:function", with msgpack arguments.  The pool
	 * takes the arguments' contents on success. */
	isola_msg args;
	isola_future *gcd, *pow, *bad;
	args_ints(&args, 1071, 462);
	CHECK(isola_pool_submit(pool, "math:gcd", &args, 0, &gcd));
	args_ints(&args, 2, 100);
	CHECK(isola_pool_submit(pool, "builtins:pow", &args, 0, &pow)); /* a big int */
	args_ints(&args, -1, 0);
	CHECK(isola_pool_submit(pool, "math:sqrt", &args, 0, &bad)); /* raises */

	/* map: many argument sets, chunked; one future per chunk. */
	enum { N = 10 };
	isola_msg sets[N];
	for (int i = 0; i < N; i++)
		args_ints(&sets[i], i, 3);
	isola_future *chunks[N];
	size_t nchunks;
	CHECK(isola_pool_map(pool, "math:comb", sets, N, 5, chunks, &nchunks));

	print_result("math.gcd(1071, 462)", gcd);
	print_result("pow(2, 100) (ext 4: big int)", pow);
	print_result("math.sqrt(-1, 0)", bad);
	for (size_t c = 0; c < nchunks; c++) {
		char what[64];
		snprintf(what, sizeof(what), "comb(i, 3), chunk %zu", c);
		print_result(what, chunks[c]);
		isola_future_release(chunks[c]);
	}
	isola_future_release(gcd);
	isola_future_release(pow);
	isola_future_release(bad);

	/* Stats any thread can read. */
	for (size_t i = 0; i < 2; i++) {
		isola_worker_stats st;
		isola_pool_worker_stats(pool, i, &st, NULL);
		printf("worker %zu ran %llu tasks\n", i, (unsigned long long)st.tasks_run);
	}
	CHECK(isola_pool_destroy(pool));
	CHECK(isola_fini());
	return 0;
}
