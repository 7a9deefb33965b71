/*
 * host_kv.c - a C program whose state stays in C (an in-memory
 * inventory: a key-value store of item -> count under a read-write
 * lock) and whose pool tasks query and update it through host
 * functions: `import store; store.get(item)`, `store.take(item, n)`.
 *
 *   build/.../demos/host_kv
 *
 * Four workers fill 2,000 orders in parallel; every order reserves its
 * items all or nothing, in C, under the store's lock.  The program then
 * checks that nothing was sold twice: stock + sold == the start.
 */
#include <pthread.h>
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

/* ---- the host's state: isola never sees it ---------------------------- */

#define ITEMS 4
static struct store {
	pthread_rwlock_t lock;
	const char *name[ITEMS];
	long long count[ITEMS];
	long long sold[ITEMS];
} inventory = {
	.lock = PTHREAD_RWLOCK_INITIALIZER,
	.name = { "apple", "pear", "plum", "fig" },
	.count = { 3000, 2000, 1000, 500 },
};

static int find(const struct store *s, const isola_value *key)
{
	if (key->type != ISOLA_VALUE_STR)
		return -1;
	for (int i = 0; i < ITEMS; i++)
		if (strlen(s->name[i]) == key->as.bytes.len &&
		    memcmp(s->name[i], key->as.bytes.ptr, key->as.bytes.len) == 0)
			return i;
	return -1;
}

/* ---- host functions: isola values in, one value out ------------------- */

/* store.get(item) -> count; LookupError for an unknown item. */
static int store_get(void *ctx, const isola_value *args, size_t nargs,
		     isola_writer *result, isola_host_call *call)
{
	(void)nargs;
	struct store *s = ctx;
	int i = find(s, &args[0]);
	if (i < 0)
		return isola_host_error(call, ISOLA_ENOTFOUND, "no such item");
	pthread_rwlock_rdlock(&s->lock);
	long long n = s->count[i];
	pthread_rwlock_unlock(&s->lock);
	return isola_write_int(result, n);
}

/* store.take(order) -> bool: order is a dict {item: n}; all of it is
 * reserved, or none of it (False when one item is short). */
static int store_take(void *ctx, const isola_value *args, size_t nargs,
		      isola_writer *result, isola_host_call *call)
{
	(void)nargs;
	struct store *s = ctx;
	const isola_value *order = &args[0];
	if (order->type != ISOLA_VALUE_MAP)
		return isola_host_error(call, ISOLA_ETYPE, "take() wants a dict {item: count}");
	int idx[16];
	long long want[16];
	size_t n = order->as.seq.n;
	if (n > 16)
		return isola_host_error(call, ISOLA_ELIMIT, "at most 16 lines per order");
	for (size_t k = 0; k < n; k++) {
		const isola_value *key = &order->as.seq.items[2 * k];
		const isola_value *val = &order->as.seq.items[2 * k + 1];
		idx[k] = find(s, key);
		if (idx[k] < 0)
			return isola_host_error(call, ISOLA_ENOTFOUND, "no such item");
		if (val->type != ISOLA_VALUE_INT || val->as.i <= 0)
			return isola_host_error(call, ISOLA_EINVAL, "counts are positive ints");
		want[k] = val->as.i;
	}
	pthread_rwlock_wrlock(&s->lock);
	int ok = 1;
	for (size_t k = 0; k < n; k++)
		ok &= s->count[idx[k]] >= want[k];
	for (size_t k = 0; ok && k < n; k++) {
		s->count[idx[k]] -= want[k];
		s->sold[idx[k]] += want[k];
	}
	pthread_rwlock_unlock(&s->lock);
	return isola_write_bool(result, ok);
}

/* ---- Python run by the tasks --------------------------------------------- */

/* The tasks' module, made in every worker at start (init_source). */
static const char *tasks_module =
	"import sys, types\n"
	"sys.modules['shop'] = shop = types.ModuleType('shop')\n"
	"exec('''\n"
	"import random, store\n"
	"def fill(seed):\n"
	"    rng = random.Random(seed)\n"
	"    items = rng.sample(['apple', 'pear', 'plum', 'fig'], rng.randint(1, 3))\n"
	"    order = {item: rng.randint(1, 5) for item in items}\n"
	"    if min(store.get(item) for item in order) == 0:\n"
	"        return 0                      # sold out: do not even ask\n"
	"    return 1 if store.take(order) else 0\n"
	"''', shop.__dict__)\n";

int main(void)
{
	/* Register before any interpreter exists, then start. */
	CHECK(isola_host_register("store", "get", store_get, &inventory, 1));
	CHECK(isola_host_register("store", "take", store_take, &inventory, 1));
	CHECK(isola_init(NULL));

	isola_pool_options o = { .workers = 4, .setup = { .init_source = tasks_module } };
	isola_pool *pool;
	char *err = NULL;
	if (isola_pool_create(&o, &pool, &err) != 0) {
		fprintf(stderr, "pool: %s\n", err ? err : "failed");
		return 1;
	}

	enum { ORDERS = 2000, CHUNK = 100 };
	isola_writer *w;
	CHECK(isola_writer_create(&w));
	isola_msg *argsets = calloc(ORDERS, sizeof(isola_msg));
	for (int i = 0; i < ORDERS; i++) {
		CHECK(isola_write_list(w, 1)); /* fill(seed=i) */
		CHECK(isola_write_int(w, i));
		CHECK(isola_writer_finish(w, &argsets[i]));
	}
	isola_writer_destroy(w);
	isola_future *chunks[ORDERS / CHUNK];
	size_t nchunks;
	CHECK(isola_pool_map(pool, "shop:fill", argsets, ORDERS, CHUNK, chunks, &nchunks));

	long filled = 0;
	for (size_t c = 0; c < nchunks; c++) {
		isola_msg res;
		isola_msg_init(&res);
		CHECK(isola_future_wait(chunks[c], -1));
		if (isola_future_result(chunks[c], &res) != 0) {
			const char *type, *msg;
			isola_future_error(chunks[c], &type, &msg, NULL);
			fprintf(stderr, "chunk %zu: %s: %s\n", c, type, msg);
			return 1;
		}
		isola_reader *r;
		const isola_value *v;
		CHECK(isola_reader_create(&res, &r, &v));
		for (size_t k = 0; k < v->as.seq.n; k++)
			filled += v->as.seq.items[k].as.i;
		isola_reader_destroy(r);
		isola_msg_clear(&res);
		isola_future_release(chunks[c]);
	}
	free(argsets);
	CHECK(isola_pool_destroy(pool));
	CHECK(isola_fini());

	static const long long start[ITEMS] = { 3000, 2000, 1000, 500 };
	int consistent = 1;
	printf("%ld of %d orders filled by 4 workers\n", filled, ORDERS);
	for (int i = 0; i < ITEMS; i++) {
		printf("  %-6s %5lld sold, %5lld left\n", inventory.name[i], inventory.sold[i],
		       inventory.count[i]);
		consistent &= inventory.sold[i] + inventory.count[i] == start[i];
	}
	printf(consistent ? "consistent: nothing sold twice\n" : "INCONSISTENT\n");
	return consistent ? 0 : 1;
}
