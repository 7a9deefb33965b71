/*
 * embed_pool.c - the template for C programs that embed isola: start a
 * pool of sub-interpreters, submit calls whose arguments are built with
 * isola_writer, and read the results with isola_reader (no msgpack by
 * hand).
 *
 *   build/.../demos/embed_pool
 *
 * Every isola function returns 0 or a negative ISOLA_E* code
 * (isola_strerror() says what it means).
 */
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

/* Positional arguments (a, b): a list of two ints. */
static void args_ints(isola_writer *w, isola_msg *m, long long a, long long b)
{
	CHECK(isola_write_list(w, 2));
	CHECK(isola_write_int(w, a));
	CHECK(isola_write_int(w, b));
	isola_msg_init(m);
	CHECK(isola_writer_finish(w, m));
}

/* Print a value read back from a result. */
static void print_value(const isola_value *v)
{
	switch (v->type) {
	case ISOLA_VALUE_NIL:
		printf("None");
		break;
	case ISOLA_VALUE_BOOL:
		printf(v->as.b ? "True" : "False");
		break;
	case ISOLA_VALUE_INT:
		printf("%lld", (long long)v->as.i);
		break;
	case ISOLA_VALUE_UINT:
		printf("%llu", (unsigned long long)v->as.u);
		break;
	case ISOLA_VALUE_FLOAT:
		printf("%g", v->as.f);
		break;
	case ISOLA_VALUE_STR:
		printf("'%.*s'", (int)v->as.bytes.len, v->as.bytes.ptr);
		break;
	case ISOLA_VALUE_BIGINT:
		printf("<big int, %zu bytes>", v->as.bytes.len);
		break;
	case ISOLA_VALUE_LIST:
	case ISOLA_VALUE_TUPLE:
		printf(v->type == ISOLA_VALUE_LIST ? "[" : "(");
		for (size_t i = 0; i < v->as.seq.n; i++) {
			printf(i ? ", " : "");
			print_value(&v->as.seq.items[i]);
		}
		printf(v->type == ISOLA_VALUE_LIST ? "]" : ")");
		break;
	default:
		printf("<%s>", v->type == ISOLA_VALUE_MAP ? "dict" : "value");
	}
}

/* Print a future's result, or the exception it raised. */
static void print_result(const char *what, isola_future *f)
{
	CHECK(isola_future_wait(f, -1));
	isola_msg res;
	isola_msg_init(&res);
	int r = isola_future_result(f, &res);
	if (r != 0) {
		const char *type, *msg, *tb;
		isola_future_error(f, &type, &msg, &tb);
		printf("%-26s raised %s: %s\n", what, type, msg);
		isola_msg_clear(&res);
		return;
	}
	isola_reader *rd;
	const isola_value *v;
	CHECK(isola_reader_create(&res, &rd, &v));
	printf("%-26s = ", what);
	print_value(v);
	printf("\n");
	isola_reader_destroy(rd);
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
	isola_writer *w;
	CHECK(isola_writer_create(&w));

	/* Calls by name, "module:function".  The pool takes the arguments'
	 * contents on success. */
	isola_msg args;
	isola_future *gcd, *pow, *bad;
	args_ints(w, &args, 1071, 462);
	CHECK(isola_pool_submit(pool, "math:gcd", &args, 0, &gcd));
	args_ints(w, &args, 2, 100);
	CHECK(isola_pool_submit(pool, "builtins:pow", &args, 0, &pow)); /* a big int */
	args_ints(w, &args, -1, 0);
	CHECK(isola_pool_submit(pool, "math:sqrt", &args, 0, &bad)); /* raises */

	/* map: many argument sets, chunked; one future per chunk. */
	enum { N = 10 };
	isola_msg sets[N];
	for (int i = 0; i < N; i++)
		args_ints(w, &sets[i], i, 3);
	isola_future *chunks[N];
	size_t nchunks;
	CHECK(isola_pool_map(pool, "math:comb", sets, N, 5, chunks, &nchunks));

	print_result("math.gcd(1071, 462)", gcd);
	print_result("pow(2, 100)", pow);
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
	isola_writer_destroy(w);

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
