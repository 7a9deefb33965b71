/* test_graph.c - task graphs from C (isola_pool_submit_after). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "isola.h"
#include "scheduler/future.h" /* a foreign owner's link and futures */

static char dir[64];

static const char *helper = "import time\n"
			    "def inc(x):\n"
			    "    return x + 1\n"
			    "def sub(a, b=0, *, c=0):\n"
			    "    return a - b - c\n"
			    "def fails(x):\n"
			    "    raise ValueError('bad %d' % x)\n"
			    "def sleep(s):\n"
			    "    time.sleep(s)\n"
			    "    return 0\n";

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/isola-graph-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	char path[128];
	snprintf(path, sizeof(path), "%s/graph_helper.py", dir);
	FILE *f = fopen(path, "w");
	fputs(helper, f);
	fclose(f);
	cr_assert_eq(isola_init(NULL), 0);
}

static void teardown(void)
{
	cr_assert_eq(isola_fini(), 0);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(graph, .init = setup, .fini = teardown, .timeout = 120);

static isola_pool *make_pool(int workers)
{
	const char *paths[] = { dir };
	const char *preload[] = { "graph_helper" };
	isola_pool_options o = { .workers = workers,
				 .setup = { .sys_path = paths, .n_sys_path = 1,
					    .preload = preload, .n_preload = 1 } };
	isola_pool *p = NULL;
	char *err = NULL;
	int r = isola_pool_create(&o, &p, &err);
	cr_assert_eq(r, 0, "pool_create: %s %s", isola_strerror(r), err ? err : "");
	return p;
}

/* Positional int arguments (n of them). */
static void ints(isola_msg *m, int n, const long long *v)
{
	isola_writer *w;
	cr_assert_eq(isola_writer_create(&w), 0);
	cr_assert_eq(isola_write_list(w, (size_t)n), 0);
	for (int i = 0; i < n; i++)
		cr_assert_eq(isola_write_int(w, v[i]), 0);
	isola_msg_init(m);
	cr_assert_eq(isola_writer_finish(w, m), 0);
	isola_writer_destroy(w);
}

static isola_future *call(isola_pool *p, const char *target, long long x)
{
	isola_msg a;
	ints(&a, 1, &x);
	isola_future *f;
	cr_assert_eq(isola_pool_submit(p, target, &a, 0, &f), 0);
	return f;
}

static long long int_result(isola_future *f)
{
	cr_assert_eq(isola_future_wait(f, -1), 0);
	isola_msg m;
	isola_msg_init(&m);
	int r = isola_future_result(f, &m);
	const char *type = "", *msg = "";
	if (r != 0)
		isola_future_error(f, &type, &msg, NULL);
	cr_assert_eq(r, 0, "%s: %s %s", isola_strerror(r), type, msg);
	isola_reader *rd;
	const isola_value *v;
	cr_assert_eq(isola_reader_create(&m, &rd, &v), 0);
	cr_assert_eq(v->type, ISOLA_VALUE_INT);
	long long out = v->as.i;
	isola_reader_destroy(rd);
	isola_msg_clear(&m);
	return out;
}

Test(graph, a_chain_runs_inside_the_pool)
{
	isola_pool *p = make_pool(2);
	isola_future *f = call(p, "graph_helper:inc", 0);
	for (int i = 0; i < 1000; i++) {
		isola_input in = { .future = f, .position = 0 };
		isola_future *next;
		cr_assert_eq(isola_pool_submit_after(p, "graph_helper:inc", NULL, &in, 1, 0, &next), 0);
		isola_future_release(f); /* the dependent holds its own reference */
		f = next;
	}
	cr_assert_eq(int_result(f), 1001);
	isola_future_release(f);
	cr_assert_eq(isola_pool_destroy(p), 0);
}

Test(graph, inputs_take_their_positions_and_keywords)
{
	isola_pool *p = make_pool(2);
	isola_future *a = call(p, "graph_helper:inc", 99);  /* 100 */
	isola_future *c = call(p, "graph_helper:inc", 2);   /* 3 */
	long long b = 10;
	isola_msg args;
	ints(&args, 1, &b); /* sub(a, 10, c=c) */
	isola_input in[2] = { { .future = c, .keyword = "c" }, { .future = a, .position = 0 } };
	isola_future *f;
	cr_assert_eq(isola_pool_submit_after(p, "graph_helper:sub", &args, in, 2, 0, &f), 0);
	cr_assert_eq(int_result(f), 100 - 10 - 3);
	isola_future_release(f);
	isola_future_release(a);
	isola_future_release(c);
	cr_assert_eq(isola_pool_destroy(p), 0);
}

Test(graph, a_failed_input_fails_the_dependent_naming_it)
{
	isola_pool *p = make_pool(1);
	isola_future *bad = call(p, "graph_helper:fails", 7);
	isola_input in = { .future = bad, .position = 0 };
	isola_future *f;
	cr_assert_eq(isola_pool_submit_after(p, "graph_helper:inc", NULL, &in, 1, 0, &f), 0);
	cr_assert_eq(isola_future_wait(f, -1), 0);
	cr_assert_eq(isola_future_result(f, NULL), ISOLA_EPYTHON);
	const char *type, *msg;
	cr_assert_eq(isola_future_error(f, &type, &msg, NULL), 0);
	cr_assert_str_eq(type, "isola.InputFailed");
	cr_assert_not_null(strstr(msg, "positional argument 0"), "%s", msg);
	cr_assert_not_null(strstr(msg, "ValueError: bad 7"), "%s", msg);
	isola_future_release(f);
	isola_future_release(bad);
	cr_assert_eq(isola_pool_destroy(p), 0);
}

Test(graph, a_cancelled_input_fails_the_dependent_and_cancelling_it_leaves_inputs)
{
	isola_pool *p = make_pool(1);
	isola_msg s;
	isola_writer *w;
	cr_assert_eq(isola_writer_create(&w), 0);
	cr_assert_eq(isola_write_list(w, 1), 0);
	cr_assert_eq(isola_write_float(w, 0.2), 0);
	isola_msg_init(&s);
	cr_assert_eq(isola_writer_finish(w, &s), 0);
	isola_writer_destroy(w);
	isola_future *blocker;
	cr_assert_eq(isola_pool_submit(p, "graph_helper:sleep", &s, 0, &blocker), 0);
	isola_future *queued = call(p, "graph_helper:inc", 1);
	isola_future *kept = call(p, "graph_helper:inc", 5);
	isola_input in1 = { .future = queued, .position = 0 };
	isola_input in2 = { .future = kept, .position = 0 };
	isola_future *dep1, *dep2;
	cr_assert_eq(isola_pool_submit_after(p, "graph_helper:inc", NULL, &in1, 1, 0, &dep1), 0);
	cr_assert_eq(isola_pool_submit_after(p, "graph_helper:inc", NULL, &in2, 1, 0, &dep2), 0);
	cr_assert_eq(isola_future_cancel(queued), 0);
	cr_assert_eq(isola_future_cancel(dep2), 0); /* the dependent, not its input */
	cr_assert_eq(isola_future_wait(dep1, -1), 0);
	const char *type, *msg;
	cr_assert_eq(isola_future_result(dep1, NULL), ISOLA_EPYTHON);
	cr_assert_eq(isola_future_error(dep1, &type, &msg, NULL), 0);
	cr_assert_str_eq(type, "isola.InputFailed");
	cr_assert_not_null(strstr(msg, "CancelledError"), "%s", msg);
	cr_assert_eq(int_result(kept), 6, "its dependent's cancel left the input running");
	cr_assert_eq(isola_future_wait(dep2, -1), 0);
	cr_assert_eq(isola_future_result(dep2, NULL), ISOLA_ECANCELED);
	isola_future *all[] = { blocker, queued, kept, dep1, dep2 };
	for (size_t i = 0; i < 5; i++)
		isola_future_release(all[i]);
	cr_assert_eq(isola_pool_destroy(p), 0);
}

Test(graph, misuse_is_refused_with_nothing_taken)
{
	isola_pool *p = make_pool(1), *q = make_pool(1);
	isola_future *mine = call(p, "graph_helper:inc", 1);
	isola_future *theirs = call(q, "graph_helper:inc", 1);
	isola_msg args;
	long long v = 1;
	ints(&args, 1, &v);
	isola_future *f = NULL;
	isola_input other = { .future = theirs, .position = 0 };
	cr_assert_eq(isola_pool_submit_after(p, "graph_helper:sub", &args, &other, 1, 0, &f),
		     ISOLA_EINVAL);
	isola_input none = { .future = NULL, .position = 0 };
	cr_assert_eq(isola_pool_submit_after(p, "graph_helper:sub", &args, &none, 1, 0, &f),
		     ISOLA_EINVAL);
	isola_input neg = { .future = mine, .position = -1 };
	cr_assert_eq(isola_pool_submit_after(p, "graph_helper:sub", &args, &neg, 1, 0, &f),
		     ISOLA_EINVAL);
	isola_input empty_kw = { .future = mine, .keyword = "" };
	cr_assert_eq(isola_pool_submit_after(p, "graph_helper:sub", &args, &empty_kw, 1, 0, &f),
		     ISOLA_EINVAL);
	cr_assert_null(f);
	size_t len;
	const void *d;
	cr_assert_eq(isola_msg_bytes(&args, &d, &len), 0);
	cr_assert_gt(len, 0, "the arguments stay the caller's");
	isola_msg_clear(&args);
	isola_future_release(mine);
	isola_future_release(theirs);
	cr_assert_eq(isola_pool_destroy(q), 0);
	cr_assert_eq(isola_pool_destroy(p), 0);
}

Test(graph, shutdown_runs_waiting_tasks_and_cancel_ends_every_future)
{
	/* Without cancel: a task still waiting for its input at shutdown
	 * runs (it was submitted before). */
	isola_pool *p = make_pool(2);
	isola_future *a = call(p, "graph_helper:inc", 1);
	isola_input in = { .future = a, .position = 0 };
	isola_future *b;
	cr_assert_eq(isola_pool_submit_after(p, "graph_helper:inc", NULL, &in, 1, 0, &b), 0);
	cr_assert_eq(isola_pool_shutdown(p, 0, -1), 0);
	cr_assert_eq(int_result(b), 3);
	isola_future_release(a);
	isola_future_release(b);
	cr_assert_eq(isola_pool_destroy(p), 0);

	/* With cancel: a half-done graph ends, every future done. */
	p = make_pool(1);
	enum { N = 200 };
	isola_future *fs[N];
	fs[0] = call(p, "graph_helper:inc", 0);
	for (int i = 1; i < N; i++) {
		isola_input e = { .future = fs[(i - 1) / 2], .position = 0 };
		cr_assert_eq(isola_pool_submit_after(p, "graph_helper:inc", NULL, &e, 1, 0, &fs[i]), 0);
	}
	cr_assert_eq(isola_pool_destroy(p), 0);
	for (int i = 0; i < N; i++) {
		int s;
		cr_assert_eq(isola_future_state(fs[i], &s), 0);
		cr_assert_geq(s, ISOLA_FUTURE_DONE, "future %d still pending", i);
		isola_future_release(fs[i]);
	}
}

/* Futures of another owner (a process lane's, isola__pool_accept_link):
 * refused as inputs until the pool accepts their link; then a task may
 * wait on one, and the pool's shutdown, cancelling, waits for that task
 * (it ends with the future) before the pool is joined and freed. */
Test(graph, inputs_of_an_accepted_owner_and_a_shutdown_that_waits_for_them)
{
	isola_pool *p = make_pool(1);
	struct isola__pool_link *link = isola__pool_link_new(NULL);
	isola_future *foreign = isola__future_new_linked(link);
	isola_input in = { .future = foreign, .position = 0 };
	isola_future *dep;
	cr_assert_eq(isola_pool_submit_after(p, "graph_helper:inc", NULL, &in, 1, 0, &dep),
		     ISOLA_EINVAL);
	cr_assert_eq(isola__pool_accept_link(p, link), 0);
	cr_assert_eq(isola__pool_accept_link(p, link), 0); /* the same again: fine */
	struct isola__pool_link *other = isola__pool_link_new(NULL);
	cr_assert_eq(isola__pool_accept_link(p, other), ISOLA_EINVAL); /* one at most */
	isola__pool_link_release(other);
	/* It runs once its input is done (41 + 1). */
	cr_assert_eq(isola_pool_submit_after(p, "graph_helper:inc", NULL, &in, 1, 0, &dep), 0);
	isola_msg one;
	isola_msg_init(&one);
	isola_writer *w;
	cr_assert_eq(isola_writer_create(&w), 0);
	cr_assert_eq(isola_write_int(w, 41), 0);
	cr_assert_eq(isola_writer_finish(w, &one), 0);
	isola_writer_destroy(w);
	cr_assert(isola__future_complete(foreign, 0, &one, NULL));
	cr_assert_eq(int_result(dep), 42);
	isola_future_release(dep);
	isola_future_release(foreign);
	/* A task waiting on a foreign future at shutdown: cancelled at once,
	 * but the pool is joined only once that future ended. */
	foreign = isola__future_new_linked(link);
	in.future = foreign;
	cr_assert_eq(isola_pool_submit_after(p, "graph_helper:inc", NULL, &in, 1, 0, &dep), 0);
	cr_assert_eq(isola_pool_shutdown(p, ISOLA_SHUTDOWN_CANCEL, 200000000), ISOLA_ETIMEDOUT);
	int state;
	isola_future_state(dep, &state);
	cr_assert_eq(state, ISOLA_FUTURE_CANCELLED);
	cr_assert(isola__future_complete(foreign, ISOLA_ECANCELED, NULL, NULL));
	cr_assert_eq(isola_pool_shutdown(p, ISOLA_SHUTDOWN_CANCEL, 10000000000LL), 0);
	isola_future_release(dep);
	isola_future_release(foreign);
	cr_assert_eq(isola_pool_destroy(p), 0);
	isola__pool_link_release(link);
}
