/* test_trace.c - timeline traces from C: the ring, ISOLA_TRACE, overflow. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "isola.h"
#include "scheduler/trace.h"

static char dir[64];
static char path[128];

static void setup(void)
{
	strcpy(dir, "/tmp/isola-trace-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/run.json", dir);
	cr_assert_eq(isola_init(NULL), 0);
}

static void teardown(void)
{
	cr_assert_eq(isola_fini(), 0);
	unlink(path);
	rmdir(dir);
}

TestSuite(trace, .init = setup, .fini = teardown, .timeout = 120);

/* (a, b) as positional arguments. */
static void pair_args(isola_msg *m, long long a, long long b)
{
	isola_writer *w;
	cr_assert_eq(isola_writer_create(&w), 0);
	isola_write_list(w, 2);
	isola_write_int(w, a);
	isola_write_int(w, b);
	isola_msg_init(m);
	cr_assert_eq(isola_writer_finish(w, m), 0);
	isola_writer_destroy(w);
}

/* Run python3 on a check of the trace at `path`; its exit status. */
static int check_trace(const char *code)
{
	char cmd[4096];
	snprintf(cmd, sizeof(cmd), "python3 -c '%s' %s", code, path);
	return system(cmd);
}

Test(trace, ring_counts_what_a_full_ring_drops)
{
	struct isola__trace_ring *r = isola__trace_ring_new(10); /* rounded up to 16 */
	cr_assert_not_null(r);
	for (int i = 0; i < 20; i++) {
		struct isola__trace_event *e = isola__trace_reserve(r);
		if (i < 16) {
			cr_assert_not_null(e);
			e->start_ns = i;
			isola__trace_commit(r);
		} else {
			cr_assert_null(e);
		}
	}
	cr_assert_eq(r->dropped, 4);
	/* The consumer hands 8 slots back: 8 more fit. */
	__atomic_store_n(&r->tail, 8, __ATOMIC_RELEASE);
	for (int i = 0; i < 8; i++) {
		cr_assert_not_null(isola__trace_reserve(r));
		isola__trace_commit(r);
	}
	cr_assert_null(isola__trace_reserve(r));
	cr_assert_eq(r->dropped, 5);
	cr_assert_eq(r->ev[3].start_ns, 3);
	free(r);
}

Test(trace, env_variable_traces_an_embedder)
{
	cr_assert_eq(setenv("ISOLA_TRACE", path, 1), 0);
	isola_pool *p;
	int r = isola_pool_create(&(isola_pool_options){ .workers = 2 }, &p, NULL);
	unsetenv("ISOLA_TRACE");
	cr_assert_eq(r, 0);
	enum { N = 200 };
	isola_future *fs[N + 1];
	for (int i = 0; i < N; i++) {
		isola_msg a;
		pair_args(&a, 1071 + i, 462);
		cr_assert_eq(isola_pool_submit(p, "math:gcd", &a, 0, &fs[i]), 0);
	}
	cr_assert_eq(isola_pool_submit(p, "math:no_such_function", NULL, 0, &fs[N]), 0);
	for (int i = 0; i <= N; i++) {
		cr_assert_eq(isola_future_wait(fs[i], -1), 0);
		isola_future_release(fs[i]);
	}
	cr_assert_eq(isola_pool_destroy(p), 0);
	cr_assert_eq(check_trace(
		"import json, sys\n"
		"d = json.load(open(sys.argv[1]))\n"
		"ev = d[\"traceEvents\"]\n"
		"gcd = [e for e in ev if e[\"name\"] == \"math:gcd\" and e[\"ph\"] == \"X\"]\n"
		"assert len(gcd) == 200, len(gcd)\n"
		"assert all(e[\"dur\"] > 0 and e[\"args\"][\"outcome\"] == \"ok\" for e in gcd)\n"
		"bad = [e for e in ev if e[\"name\"] == \"math:no_such_function\"]\n"
		"assert len(bad) == 1 and bad[0][\"args\"][\"outcome\"] == \"error\", bad\n"
		"names = [e for e in ev if e[\"name\"] == \"thread_name\"]\n"
		"assert len(names) == 2 and len({e[\"tid\"] for e in names}) == 2, names\n"
		"starts = [e for e in ev if e[\"name\"] == \"start interpreter\"]\n"
		"assert len(starts) == 2, starts\n"
		"assert d[\"otherData\"][\"isola_dropped_events\"] == 0\n"),
		     0);
}

Test(trace, a_full_buffer_drops_and_counts)
{
	isola_pool *p;
	cr_assert_eq(isola_pool_create(&(isola_pool_options){ .workers = 2, .trace = path,
							      .trace_events = 16 },
				       &p, NULL),
		     0);
	enum { N = 5000 };
	isola_msg *sets = calloc(N, sizeof(isola_msg));
	for (int i = 0; i < N; i++)
		pair_args(&sets[i], i, 6);
	isola_future *chunks[N];
	size_t k = 0;
	cr_assert_eq(isola_pool_map(p, "math:gcd", sets, N, 1, chunks, &k), 0);
	cr_assert_eq(k, N);
	for (size_t i = 0; i < k; i++) {
		cr_assert_eq(isola_future_wait(chunks[i], -1), 0);
		isola_future_release(chunks[i]);
	}
	free(sets);
	cr_assert_eq(isola_pool_destroy(p), 0);
	/* Every event is either in the file or counted as dropped. */
	cr_assert_eq(check_trace(
		"import json, sys\n"
		"d = json.load(open(sys.argv[1]))\n"
		"ev = d[\"traceEvents\"]\n"
		"x = [e for e in ev if e[\"ph\"] == \"X\"]\n"
		"dropped = d[\"otherData\"][\"isola_dropped_events\"]\n"
		"per_worker = sum(e[\"args\"][\"dropped\"] for e in ev if e[\"name\"] == \"thread_name\")\n"
		"assert dropped > 0 and dropped == per_worker, (dropped, per_worker)\n"
		"assert len(x) + dropped == 5000 + 4, (len(x), dropped)\n"),
		     0);
}

Test(trace, an_unwritable_file_fails_the_pool)
{
	isola_pool *p = NULL;
	char *err = NULL;
	int r = isola_pool_create(&(isola_pool_options){ .workers = 1,
							 .trace = "/nonexistent-dir/run.json" },
				  &p, &err);
	cr_assert_eq(r, ISOLA_ESYS);
	cr_assert_null(p);
	cr_assert_not_null(err);
	cr_assert_not_null(strstr(err, "/nonexistent-dir/run.json"), "%s", err);
	free(err);
}
