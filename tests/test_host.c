/* test_host.c - host functions (isola_host_register): registration
 * rules, calls from workers (several at once), values both ways (blobs
 * zero-copy), errors as exceptions, and every misuse. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "isola.h"

/* Internal (src/common/alloc.h), linked from the static library. */
void isola__alloc_fail_after(long n, int persist);
/* Internal (src/interp/hostfn.h): empty the table. */
void isola__hostfn_clear(void);

static void setup(void)
{
	cr_assert_eq(isola_init(NULL), 0);
}

static int finalized; /* a test ended the runtime itself */

static void teardown(void)
{
	if (!finalized)
		cr_assert_eq(isola_fini(), 0);
}

TestSuite(host, .init = setup, .fini = teardown, .timeout = 120);

/* ---- host functions used below ------------------------------------------- */

static int add3(void *ctx, const isola_value *a, size_t n, isola_writer *res,
		isola_host_call *call)
{
	(void)ctx;
	(void)n;
	for (int i = 0; i < 3; i++)
		if (a[i].type != ISOLA_VALUE_INT)
			return isola_host_error(call, ISOLA_ETYPE, "add3 takes ints");
	return isola_write_int(res, a[0].as.i + a[1].as.i + a[2].as.i);
}

/* Write v (any reader value but ext/exception/frozen) into w. */
static int copy_value(isola_writer *w, const isola_value *v)
{
	int r = 0;
	switch (v->type) {
	case ISOLA_VALUE_NIL: return isola_write_nil(w);
	case ISOLA_VALUE_BOOL: return isola_write_bool(w, v->as.b);
	case ISOLA_VALUE_INT: return isola_write_int(w, v->as.i);
	case ISOLA_VALUE_UINT: return isola_write_uint(w, v->as.u);
	case ISOLA_VALUE_FLOAT: return isola_write_float(w, v->as.f);
	case ISOLA_VALUE_STR: return isola_write_str(w, v->as.bytes.ptr, v->as.bytes.len);
	case ISOLA_VALUE_BYTES: return isola_write_bytes(w, v->as.bytes.ptr, v->as.bytes.len);
	case ISOLA_VALUE_BLOB: return isola_write_blob(w, v->as.blob);
	case ISOLA_VALUE_CHANNEL: return isola_write_channel(w, v->as.channel);
	case ISOLA_VALUE_LIST: r = isola_write_list(w, v->as.seq.n); break;
	case ISOLA_VALUE_TUPLE: r = isola_write_tuple(w, v->as.seq.n); break;
	case ISOLA_VALUE_MAP: r = isola_write_map(w, v->as.seq.n); break;
	default: return ISOLA_ETYPE;
	}
	size_t items = v->type == ISOLA_VALUE_MAP ? 2 * v->as.seq.n : v->as.seq.n;
	for (size_t i = 0; r == 0 && i < items; i++)
		r = copy_value(w, &v->as.seq.items[i]);
	return r;
}

/* echo(*args): args as a tuple, each copied through the writer. */
static int echo(void *ctx, const isola_value *a, size_t n, isola_writer *res,
		isola_host_call *call)
{
	(void)ctx;
	int r = isola_write_tuple(res, n);
	for (size_t i = 0; r == 0 && i < n; i++)
		r = copy_value(res, &a[i]);
	return r ? isola_host_error(call, r, "echo: a value it cannot copy") : 0;
}

/* kind(x): the isola_value type of x. */
static int kind(void *ctx, const isola_value *a, size_t n, isola_writer *res,
		isola_host_call *call)
{
	(void)ctx, (void)n, (void)call;
	return isola_write_int(res, a[0].type);
}

/* A key-value store of ints under a mutex: put(k, v), get(k). */
#define KV_SLOTS 64
static struct {
	pthread_mutex_t lock;
	int64_t key[KV_SLOTS], value[KV_SLOTS];
	int used;
} kv = { .lock = PTHREAD_MUTEX_INITIALIZER };

static int kv_put(void *ctx, const isola_value *a, size_t n, isola_writer *res,
		  isola_host_call *call)
{
	(void)ctx, (void)n, (void)res;
	if (a[0].type != ISOLA_VALUE_INT || a[1].type != ISOLA_VALUE_INT)
		return isola_host_error(call, ISOLA_ETYPE, "put(int, int)");
	pthread_mutex_lock(&kv.lock);
	int i = 0;
	while (i < kv.used && kv.key[i] != a[0].as.i)
		i++;
	int r = 0;
	if (i == KV_SLOTS)
		r = ISOLA_ELIMIT;
	else {
		kv.key[i] = a[0].as.i;
		kv.value[i] = a[1].as.i;
		if (i == kv.used)
			kv.used++;
	}
	pthread_mutex_unlock(&kv.lock);
	return r; /* no value written: None */
}

static int kv_get(void *ctx, const isola_value *a, size_t n, isola_writer *res,
		  isola_host_call *call)
{
	(void)ctx, (void)n;
	pthread_mutex_lock(&kv.lock);
	int i = 0;
	while (i < kv.used && kv.key[i] != a[0].as.i)
		i++;
	int found = i < kv.used;
	int64_t v = found ? kv.value[i] : 0;
	pthread_mutex_unlock(&kv.lock);
	if (!found) {
		char msg[64];
		snprintf(msg, sizeof msg, "no key %lld", (long long)a[0].as.i);
		return isola_host_error(call, ISOLA_ENOTFOUND, msg);
	}
	return isola_write_int(res, v);
}

/* A counter bumped by every call from every worker. */
static long counter;

static int bump(void *ctx, const isola_value *a, size_t n, isola_writer *res,
		isola_host_call *call)
{
	(void)a, (void)n, (void)call;
	long *c = ctx;
	/* relaxed: a count, read after the workers' tasks are done */
	return isola_write_int(res, __atomic_add_fetch(c, 1, __ATOMIC_RELAXED));
}

/* Zero-copy: give_blob() wraps static memory; is_mine(buf) says whether
 * buf's bytes are that very memory. */
static char big[256 * 1024];
static int big_freed;

static void big_free(void *ctx, void *data, size_t len)
{
	(void)ctx, (void)data, (void)len;
	__atomic_add_fetch(&big_freed, 1, __ATOMIC_RELAXED); /* a count */
}

static int give_blob(void *ctx, const isola_value *a, size_t n, isola_writer *res,
		     isola_host_call *call)
{
	(void)ctx, (void)a, (void)n, (void)call;
	isola_blob *b;
	int r = isola_blob_wrap(big, sizeof big, big_free, NULL, &b);
	if (r == 0) {
		r = isola_write_blob(res, b);
		isola_blob_release(b); /* the result holds its own */
	}
	return r;
}

static int is_mine(void *ctx, const isola_value *a, size_t n, isola_writer *res,
		   isola_host_call *call)
{
	(void)ctx, (void)n, (void)call;
	if (a[0].type != ISOLA_VALUE_BLOB)
		return isola_write_bool(res, 0);
	const void *d;
	size_t len;
	isola_blob_data(a[0].as.blob, &d, &len);
	return isola_write_bool(res, d == (const void *)big && len == sizeof big);
}

/* Misuse: every way a host function can get its result wrong. */
static int unfinished(void *ctx, const isola_value *a, size_t n, isola_writer *res,
		      isola_host_call *call)
{
	(void)ctx, (void)a, (void)n, (void)call;
	isola_write_list(res, 2);
	return isola_write_int(res, 1); /* one item short */
}

static int two_values(void *ctx, const isola_value *a, size_t n, isola_writer *res,
		      isola_host_call *call)
{
	(void)ctx, (void)a, (void)n, (void)call;
	isola_write_int(res, 1);
	isola_write_int(res, 2); /* ESTATE, ignored */
	return 0;
}

static int bad_code(void *ctx, const isola_value *a, size_t n, isola_writer *res,
		    isola_host_call *call)
{
	(void)ctx, (void)n, (void)res, (void)call;
	return (int)a[0].as.i;
}

static int no_message(void *ctx, const isola_value *a, size_t n, isola_writer *res,
		      isola_host_call *call)
{
	(void)ctx, (void)a, (void)n, (void)res, (void)call;
	return ISOLA_ETIMEDOUT;
}

/* isola_host_error with a code that is none: EINVAL comes back instead. */
static int bad_error(void *ctx, const isola_value *a, size_t n, isola_writer *res,
		     isola_host_call *call)
{
	(void)ctx, (void)a, (void)n, (void)res;
	int r = isola_host_error(call, 5, "five is no code");
	return r == ISOLA_EINVAL ? isola_host_error(call, -9999, "nor is this") : 0;
}

/* poll_ms(ms): waits up to ms, polling isola_host_interrupted every
 * millisecond: ECANCELED once interrupted, else False after ms. */
static int poll_ms(void *ctx, const isola_value *a, size_t n, isola_writer *res,
		   isola_host_call *call)
{
	(void)ctx, (void)n;
	for (int64_t i = 0; i < a[0].as.i; i++) {
		int yes = -1;
		if (isola_host_interrupted(call, &yes) != 0 || (yes != 0 && yes != 1))
			return isola_host_error(call, ISOLA_ESTATE, "isola_host_interrupted failed");
		if (yes)
			return isola_host_error(call, ISOLA_ECANCELED, "stopped polling");
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
	return isola_write_bool(res, 0);
}

/* sleep_ms(ms): blocks the calling thread (its GIL released). */
static int sleep_ms(void *ctx, const isola_value *a, size_t n, isola_writer *res,
		    isola_host_call *call)
{
	(void)ctx, (void)n, (void)res, (void)call;
	struct timespec ts = { a[0].as.i / 1000, (a[0].as.i % 1000) * 1000000L };
	nanosleep(&ts, NULL);
	return 0;
}

/* fail_after(n): the nth allocation of isola's from now fails. */
static int fail_after(void *ctx, const isola_value *a, size_t n, isola_writer *res,
		      isola_host_call *call)
{
	(void)ctx, (void)n, (void)res, (void)call;
	isola__alloc_fail_after(a[0].as.i, 0);
	return 0;
}

static void register_all(void)
{
	cr_assert_eq(isola_host_register("calc", "add3", add3, NULL, 3), 0);
	cr_assert_eq(isola_host_register("calc", "echo", echo, NULL, ISOLA_HOST_VARARGS), 0);
	cr_assert_eq(isola_host_register("calc", "kind", kind, NULL, 1), 0);
	cr_assert_eq(isola_host_register("calc", "bump", bump, &counter, 0), 0);
	cr_assert_eq(isola_host_register("calc", "sleep_ms", sleep_ms, NULL, 1), 0);
	cr_assert_eq(isola_host_register("kv", "put", kv_put, NULL, 2), 0);
	cr_assert_eq(isola_host_register("kv", "get", kv_get, NULL, 1), 0);
	cr_assert_eq(isola_host_register("blobs", "give", give_blob, NULL, 0), 0);
	cr_assert_eq(isola_host_register("blobs", "is_mine", is_mine, NULL, 1), 0);
	cr_assert_eq(isola_host_register("bad", "unfinished", unfinished, NULL, 0), 0);
	cr_assert_eq(isola_host_register("bad", "two_values", two_values, NULL, 0), 0);
	cr_assert_eq(isola_host_register("bad", "bad_code", bad_code, NULL, 1), 0);
	cr_assert_eq(isola_host_register("bad", "no_message", no_message, NULL, 0), 0);
	cr_assert_eq(isola_host_register("bad", "fail_after", fail_after, NULL, 1), 0);
	cr_assert_eq(isola_host_register("bad", "bad_error", bad_error, NULL, 0), 0);
	cr_assert_eq(isola_host_register("calc", "poll_ms", poll_ms, NULL, 1), 0);
}

static isola_pool *make_pool(int workers)
{
	isola_pool_options o = { .workers = workers };
	isola_pool *p = NULL;
	char *err = NULL;
	int r = isola_pool_create(&o, &p, &err);
	cr_assert_eq(r, 0, "pool_create: %s %s", isola_strerror(r), err ? err : "");
	return p;
}

/* Run src on every worker of p; fail the test with its error if it raised. */
static void run_ok(isola_pool *p, const char *src)
{
	char *err = NULL;
	int r = isola_pool_run(p, src, &err);
	cr_assert_eq(r, 0, "%s\n--- raised:\n%s", src, err ? err : isola_strerror(r));
	free(err);
}

/* ---- registration ------------------------------------------------------------ */

Test(host, registration_errors)
{
	cr_assert_eq(isola_host_register("m", "f", NULL, NULL, 0), ISOLA_EINVAL);
	cr_assert_eq(isola_host_register(NULL, "f", add3, NULL, 0), ISOLA_EINVAL);
	cr_assert_eq(isola_host_register("m", NULL, add3, NULL, 0), ISOLA_EINVAL);
	cr_assert_eq(isola_host_register("a.b", "f", add3, NULL, 0), ISOLA_EINVAL);
	cr_assert_eq(isola_host_register("m", "1f", add3, NULL, 0), ISOLA_EINVAL);
	cr_assert_eq(isola_host_register("m", "", add3, NULL, 0), ISOLA_EINVAL);
	cr_assert_eq(isola_host_register("isola", "f", add3, NULL, 0), ISOLA_EINVAL);
	cr_assert_eq(isola_host_register("m", "f", add3, NULL, -2), ISOLA_EINVAL);
	cr_assert_eq(isola_host_register("m", "f", add3, NULL, 256), ISOLA_EINVAL);
	char longname[ISOLA_HOST_NAME_MAX + 2];
	memset(longname, 'x', sizeof longname - 1);
	longname[sizeof longname - 1] = 0;
	cr_assert_eq(isola_host_register("m", longname, add3, NULL, 0), ISOLA_EINVAL);
	longname[ISOLA_HOST_NAME_MAX] = 0;
	cr_assert_eq(isola_host_register("m", longname, add3, NULL, 0), 0);

	cr_assert_eq(isola_host_register("m", "f", add3, NULL, 3), 0);
	cr_assert_eq(isola_host_register("m", "f", echo, NULL, 1), ISOLA_EEXIST);
	cr_assert_eq(isola_host_register("m2", "f", echo, NULL, 1), 0, "other module: fine");
	cr_assert_str_eq(isola_err_name(ISOLA_EEXIST), "ISOLA_EEXIST");

	isola_pool *p = make_pool(1);
	cr_assert_eq(isola_host_register("late", "f", add3, NULL, 3), ISOLA_ESTATE,
		     "after a pool exists");
	run_ok(p, "import m, m2\nassert m.f(1, 2, 3) == 6\nassert not hasattr(m2, 'f2')\n"
		  "import sys\nassert 'late' not in sys.modules\n");
	cr_assert_eq(isola_pool_destroy(p), 0);
	cr_assert_eq(isola_host_register("late", "f", add3, NULL, 3), ISOLA_ESTATE,
		     "sealed until isola_fini");
}

Test(host, host_error_rejects_what_is_not_a_code)
{
	cr_assert_eq(isola_host_error(NULL, ISOLA_EINVAL, "x"), ISOLA_EINVAL);
}

Test(host, isola_fini_empties_the_table)
{
	cr_assert_eq(isola_host_register("m", "f", add3, NULL, 3), 0);
	isola_pool *p = make_pool(1);
	cr_assert_eq(isola_pool_destroy(p), 0);
	cr_assert_eq(isola_host_register("m", "g", echo, NULL, 1), ISOLA_ESTATE);
	cr_assert_eq(isola_fini(), 0);
	finalized = 1;
	/* Empty and open again (not EEXIST, not ESTATE), for a runtime
	 * started anew (not done here: CPython 3.12 crashes starting again
	 * in a process whose first runtime had sub-interpreters). */
	cr_assert_eq(isola_host_register("m", "f", echo, NULL, 1), 0, "registered anew");
	cr_assert_eq(isola_host_register("m", "f", echo, NULL, 1), ISOLA_EEXIST);
	isola__hostfn_clear(); /* what the next isola_fini would do: no leak */
}

/* ---- calls --------------------------------------------------------------------- */

Test(host, values_travel_both_ways)
{
	register_all();
	isola_pool *p = make_pool(1);
	run_ok(p,
	       "import calc\n"
	       "assert calc.add3(1, 2, 3) == 6\n"
	       "assert calc.add3(-5, 2**40, 0) == 2**40 - 5\n"
	       "v = (None, True, False, 7, -2**63, 2**64 - 1, 1.5, 'héllo', b'\\x00b',\n"
	       "     [1, [2, 'x']], {'a': 1, 'b': [None]}, (1, (2,)))\n"
	       "assert calc.echo(*v) == v, calc.echo(*v)\n"
	       "assert calc.echo() == ()\n"
	       "assert calc.__name__ == 'calc' and calc.add3.__module__ == 'calc'\n"
	       "assert calc.add3.__name__ == 'add3'\n");
	cr_assert_eq(isola_pool_destroy(p), 0);
}

Test(host, interp_create_imports_them_too)
{
	register_all();
	isola_interp *in = NULL;
	cr_assert_eq(isola_interp_create(NULL, &in, NULL), 0);
	cr_assert_eq(isola_interp_run(in, "import kv\nkv.put(1, 10)\nassert kv.get(1) == 10\n"), 0);
	cr_assert_eq(isola_interp_destroy(in), 0);
}

Test(host, blobs_are_zero_copy_both_ways)
{
	register_all();
	isola_pool *p = make_pool(1);
	run_ok(p,
	       "import blobs, calc, isola\n"
	       "b = blobs.give()\n"
	       "assert type(b) is isola.Buffer, type(b)\n"
	       "assert len(b) == 256 * 1024\n"
	       "assert blobs.is_mine(b)\n"
	       "assert not blobs.is_mine(b'x')\n"
	       "del b\n"
	       "# bytes at BLOB_THRESHOLD or more arrive as a blob (13 = ISOLA_VALUE_BLOB... \n"
	       "# checked against the small case)\n"
	       "assert calc.kind(b'x' * isola.BLOB_THRESHOLD) != calc.kind(b'x')\n"
	       "assert calc.kind(isola.share(b'abc')) == calc.kind(b'x' * isola.BLOB_THRESHOLD)\n"
	       "assert calc.kind(b'x') == 6  # ISOLA_VALUE_BYTES\n");
	cr_assert_eq(isola_pool_destroy(p), 0);
	cr_assert_eq(ISOLA_VALUE_BYTES, 6);
	cr_assert_eq(__atomic_load_n(&big_freed, __ATOMIC_RELAXED), 1,
		     "the Buffer dropped the last reference");
}

Test(host, errors_become_exceptions_with_their_message)
{
	register_all();
	isola_pool *p = make_pool(1);
	run_ok(p,
	       "import kv, calc, bad\n"
	       "try:\n"
	       "    kv.get(42)\n"
	       "except LookupError as e:\n"
	       "    assert str(e) == 'no key 42', str(e)\n"
	       "    assert e.isola_error == 'ISOLA_ENOTFOUND'\n"
	       "else:\n"
	       "    raise AssertionError('no exception')\n"
	       "try:\n"
	       "    calc.add3(1, 2, 'x')\n"
	       "except TypeError as e:\n"
	       "    assert str(e) == 'add3 takes ints', str(e)\n"
	       "else:\n"
	       "    raise AssertionError('no exception')\n"
	       "try:\n"
	       "    bad.no_message()\n"
	       "except TimeoutError as e:\n"
	       "    assert str(e) == 'timed out', str(e)\n"
	       "else:\n"
	       "    raise AssertionError('no exception')\n"
	       "for code, cls in [(-1, ValueError), (-2, MemoryError), (-5, RuntimeError),\n"
	       "                  (-13, OSError), (-15, OverflowError), (-11, InterruptedError)]:\n"
	       "    try:\n"
	       "        bad.bad_code(code)\n"
	       "    except Exception as e:\n"
	       "        assert type(e) is cls, (code, type(e))\n"
	       "    else:\n"
	       "        raise AssertionError(code)\n"
	       "assert kv.put(42, 1) is None and kv.get(42) == 1\n");
	cr_assert_eq(isola_pool_destroy(p), 0);
}

Test(host, misuse_is_reported_never_a_crash)
{
	register_all();
	isola_pool *p = make_pool(1);
	run_ok(p,
	       "import bad, calc\n"
	       "def raises(cls, text, f, *a, **kw):\n"
	       "    try:\n"
	       "        f(*a, **kw)\n"
	       "    except cls as e:\n"
	       "        assert text in str(e), (text, str(e))\n"
	       "    else:\n"
	       "        raise AssertionError(f'{f} did not raise')\n"
	       "raises(SystemError, 'bad.unfinished left its result incomplete', bad.unfinished)\n"
	       "raises(SystemError, 'bad.two_values wrote more than one value', bad.two_values)\n"
	       "raises(SystemError, 'bad.bad_code returned 7, which is not an ISOLA_E', bad.bad_code, 7)\n"
	       "raises(SystemError, 'returned -999', bad.bad_code, -999)\n"
	       "raises(TypeError, 'calc.add3() takes 3 positional arguments (2 given)', calc.add3, 1, 2)\n"
	       "raises(TypeError, 'calc.kind() takes 1 positional argument (0 given)', calc.kind)\n"
	       "raises(TypeError, 'takes no keyword arguments', calc.add3, 1, 2, c=3)\n"
	       "raises(Exception, 'args[1]', calc.echo, 1, lambda: 0)\n"
	       "# isola_host_error refused 5, then -9999: EINVAL, no message kept\n"
	       "raises(ValueError, 'invalid argument', bad.bad_error)\n"
	       "# ECANCELED with no interrupt asked: RuntimeError\n"
	       "raises(RuntimeError, 'cancelled', bad.bad_code, -10)\n"
	       "# the thread's writer is clean again after each misuse\n"
	       "assert calc.add3(1, 2, 3) == 6\n"
	       "assert bad.bad_code(0) is None\n");
	cr_assert_eq(isola_pool_destroy(p), 0);
}

Test(host, blocking_call_releases_the_gil)
{
	register_all();
	isola_pool *p = make_pool(1);
	/* A thread of the same interpreter counts while the host function
	 * sleeps: with the GIL held during the call it could not. */
	run_ok(p,
	       "import calc, threading\n"
	       "n = 0\n"
	       "stop = False\n"
	       "def count():\n"
	       "    global n\n"
	       "    while not stop:\n"
	       "        n += 1\n"
	       "t = threading.Thread(target=count)\n"
	       "t.start()\n"
	       "while n == 0:\n"
	       "    pass\n"
	       "before = n\n"
	       "calc.sleep_ms(300)\n"
	       "during = n - before\n"
	       "stop = True\n"
	       "t.join()\n"
	       "assert during > 1000, during\n");
	cr_assert_eq(isola_pool_destroy(p), 0);
}

Test(host, several_workers_call_at_once)
{
	register_all();
	enum { WORKERS = 4, CALLS = 5000 };
	isola_pool *p = make_pool(WORKERS);
	/* Every worker at once: a barrier of the workers' own, so that the
	 * calls overlap, then CALLS calls of each kind. */
	char src[1024];
	snprintf(src, sizeof src,
		 "import calc, kv, blobs, threading\n"
		 "me = threading.get_ident()\n"
		 "for i in range(%d):\n"
		 "    assert calc.add3(i, me, 1) == i + me + 1\n"
		 "    calc.bump()\n"
		 "    kv.put(me, i)\n"
		 "    assert kv.get(me) == i\n"
		 "    assert calc.echo(i, 'x', [i]) == (i, 'x', [i])\n"
		 "    if i %% 100 == 0:\n"
		 "        assert blobs.is_mine(blobs.give())\n",
		 CALLS);
	run_ok(p, src);
	cr_assert_eq(__atomic_load_n(&counter, __ATOMIC_RELAXED), (long)WORKERS * CALLS);
	cr_assert_eq(isola_pool_destroy(p), 0);
}

Test(host, registration_out_of_memory_leaves_the_table_as_it_was)
{
	isola__alloc_fail_after(1, 0);
	cr_assert_eq(isola_host_register("m", "f", add3, NULL, 3), ISOLA_ENOMEM);
	cr_assert_eq(isola_host_register("m", "f", add3, NULL, 3), 0, "not half-registered");
}

Test(host, every_allocation_of_a_call_can_fail)
{
	register_all();
	isola_pool *p = make_pool(1);
	/* The nth allocation from the call on fails, for each n, on a fresh
	 * thread each time (so the thread's cache is made anew too): a clean
	 * MemoryError or the right result, never a crash (nor, under ASan, a
	 * leak). */
	run_ok(p,
	       "import bad, calc, blobs, threading\n"
	       "big = b'y' * (100 * 1024)\n"
	       "v = ([1] * 100, 'x' * 100, big, {'k': (1.5, None)})\n"
	       "seen = {'ok': 0, 'nomem': 0}\n"
	       "def attempt(n):\n"
	       "    try:\n"
	       "        bad.fail_after(n)\n"
	       "        r = calc.echo(*v)\n"
	       "        b = blobs.give()\n"
	       "        bad.fail_after(0)\n"
	       "        assert r[:2] == v[:2] and bytes(r[2]) == big and r[3] == v[3], r\n"
	       "        assert blobs.is_mine(b)\n"
	       "        seen['ok'] += 1\n"
	       "    except MemoryError:\n"
	       "        bad.fail_after(0)\n"
	       "        seen['nomem'] += 1\n"
	       "for n in range(1, 30):\n"
	       "    t = threading.Thread(target=attempt, args=(n,))\n"
	       "    t.start()\n"
	       "    t.join()\n"
	       "assert seen['ok'] + seen['nomem'] == 29, seen\n"
	       "assert seen['nomem'] > 0 and seen['ok'] > 0, seen\n"
	       "assert calc.add3(1, 2, 3) == 6\n");
	cr_assert_eq(isola_pool_destroy(p), 0);
}

/* Main-interpreter exports (a Python feature: here the pool is made by
 * Python code in an interpreter of the test's thread) whose export
 * submits to its own pool and waits, from every worker at once: the
 * waiting workers run those tasks nested (the sanitizer runs cover that
 * path). */
Test(host, exports_waiting_on_their_own_pool)
{
	char dir[] = "/tmp/isola-host-XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	char path[128], src[1024];
	snprintf(path, sizeof path, "%s/hostx.py", dir);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs("import isola\n"
	      "pool = None\n"
	      "def sq(x):\n"
	      "    return x * x\n"
	      "def fan(n):\n"
	      "    return sum(pool.map(sq, range(n), chunksize=1))\n"
	      "def call_fan(n):\n"
	      "    return isola.host.fan(n)\n",
	      f);
	fclose(f);
	snprintf(src, sizeof src,
		 "import sys\n"
		 "sys.path.insert(0, %s%s%s)\n"
		 "import isola, hostx\n"
		 "with isola.Pool(2, exports={'fan': hostx.fan}) as p:\n"
		 "    hostx.pool = p\n"
		 "    fs = [p.submit(hostx.call_fan, 10) for _ in range(6)]\n"
		 "    assert [f.result(60) for f in fs] == [285] * 6\n"
		 "    hostx.pool = None\n",
		 "'", dir, "'");
	isola_interp *in = NULL;
	cr_assert_eq(isola_interp_create(NULL, &in, NULL), 0);
	int r = isola_interp_run(in, src);
	const char *type = "", *msg = "";
	if (r != 0)
		isola_interp_error(in, &type, &msg, NULL);
	cr_assert_eq(r, 0, "%s: %s", type, msg);
	cr_assert_eq(isola_interp_destroy(in), 0);
	unlink(path);
	rmdir(dir);
}

/* A task whose code waits in a host function that polls
 * isola_host_interrupted: its timeout and a cancel end it (the C
 * function sees them, and its ECANCELED becomes isola.Cancelled, which
 * the future reports as the interrupt it was). */
static void submit_poll(isola_pool *p, isola_writer *w, int64_t ms, int64_t timeout_ns,
			isola_future **f)
{
	isola_msg args;
	cr_assert_eq(isola_write_list(w, 1), 0);
	cr_assert_eq(isola_write_int(w, ms), 0);
	isola_msg_init(&args);
	cr_assert_eq(isola_writer_finish(w, &args), 0);
	cr_assert_eq(isola_pool_submit(p, "hw:run", &args, timeout_ns, f), 0);
}

Test(host, a_polling_host_function_sees_timeout_and_cancel)
{
	register_all();
	static const char *mod =
		"import sys, types\n"
		"sys.modules['hw'] = hw = types.ModuleType('hw')\n"
		"exec('''\n"
		"import calc, isola\n"
		"def run(ms):\n"
		"    try:\n"
		"        return calc.poll_ms(ms)\n"
		"    except isola.Cancelled as e:\n"
		"        assert str(e) == 'stopped polling', str(e)\n"
		"        raise\n"
		"''', hw.__dict__)\n";
	isola_pool_options o = { .workers = 1, .setup = { .init_source = mod } };
	isola_pool *p = NULL;
	char *err = NULL;
	cr_assert_eq(isola_pool_create(&o, &p, &err), 0, "%s", err ? err : "");
	isola_writer *w;
	cr_assert_eq(isola_writer_create(&w), 0);
	isola_future *f;
	/* its own timeout (0.2 s) while it polls for up to 30 s */
	submit_poll(p, w, 30000, 200000000LL, &f);
	cr_assert_eq(isola_future_wait(f, -1), 0);
	cr_assert_eq(isola_future_result(f, NULL), ISOLA_ETIMEDOUT);
	isola_future_release(f);
	/* a cancel of the running task */
	submit_poll(p, w, 30000, 0, &f);
	int state = ISOLA_FUTURE_PENDING;
	while (isola_future_state(f, &state) == 0 && state == ISOLA_FUTURE_PENDING) {
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
	cr_assert_eq(isola_future_cancel(f), 0);
	cr_assert_eq(isola_future_wait(f, -1), 0);
	cr_assert_eq(isola_future_result(f, NULL), ISOLA_ECANCELED);
	isola_future_release(f);
	/* not interrupted: it returns what it wrote */
	submit_poll(p, w, 5, 0, &f);
	cr_assert_eq(isola_future_wait(f, -1), 0);
	isola_msg res;
	isola_msg_init(&res);
	cr_assert_eq(isola_future_result(f, &res), 0);
	isola_msg_clear(&res);
	isola_future_release(f);
	isola_writer_destroy(w);
	cr_assert_eq(isola_pool_destroy(p), 0);
	cr_assert_eq(isola_host_interrupted(NULL, &state), ISOLA_EINVAL);
}
