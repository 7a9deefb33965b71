/* test_pychannel.c - Python channels across interpreters on different
 * threads, through isola_interp_call; calls and their errors. */
#include <criterion/criterion.h>
#include <msgpack.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "isola.h"

static char dir[64];

static const char *helper =
	"import isola\n"
	"def produce(ch, n):\n"
	"    for i in range(n):\n"
	"        ch.send({'i': i, 'sq': i * i})\n"
	"    ch.close()\n"
	"    return n\n"
	"def consume(ch):\n"
	"    count = total = 0\n"
	"    for m in ch:\n"
	"        count += 1\n"
	"        total += m['sq']\n"
	"    return [count, total]\n"
	"def make_and_send(carrier):\n"
	"    mine = isola.Channel(4)\n"
	"    carrier.send(mine)\n"
	"    return mine.recv(timeout=10)\n"
	"def receive_and_reply(carrier):\n"
	"    ch = carrier.recv(timeout=10)\n"
	"    ch.send('hello from B')\n"
	"    return 'ok'\n"
	"def send_big(ch):\n"
	"    ch.send(b'z' * 1000000)\n"
	"    return True\n"
	"def recv_big(ch):\n"
	"    d = ch.recv(timeout=10)\n"
	"    return [len(d), type(d).__name__, bytes(d[:3])]\n"
	"def add(a, b=0):\n"
	"    return a + b\n"
	"def boom(x):\n"
	"    raise KeyError(x)\n";

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/isola-pych-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	char path[128];
	snprintf(path, sizeof(path), "%s/pych_helper.py", dir);
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

TestSuite(pychannel, .init = setup, .fini = teardown, .timeout = 60);

/* Arguments [channel, extra ints...] as a message carrying ch. */
static void args_with_channel(isola_msg *m, isola_channel *ch, int extra)
{
	unsigned char buf[16];
	size_t n = 0;
	buf[n++] = (unsigned char)(0x90 | (extra >= 0 ? 2 : 1)); /* fixarray */
	buf[n++] = 0xd4; /* fixext 1 */
	buf[n++] = 13;   /* ISOLA_EXT_CHANNEL */
	buf[n++] = 0;    /* reference 0 */
	if (extra >= 0)
		buf[n++] = (unsigned char)extra; /* positive fixint */
	isola_msg_init(m);
	cr_assert_eq(isola_msg_set_bytes(m, buf, n), 0);
	cr_assert_eq(isola_msg_attach_channel(m, ch), 0);
}

struct call {
	const char *target;
	isola_channel *ch;
	int extra;
	int status;
	isola_msg res;            /* the encoded result (kept: result points in) */
	msgpack_unpacked result;  /* decoded result */
	char error[512];
};

static void *call_in_new_interp(void *arg)
{
	struct call *c = arg;
	const char *paths[] = { dir };
	isola_interp_options o = { .sys_path = paths, .n_sys_path = 1 };
	isola_interp *in;
	c->status = isola_interp_create(&o, &in, NULL);
	if (c->status != 0)
		return NULL;
	isola_msg args;
	args_with_channel(&args, c->ch, c->extra);
	msgpack_unpacked_init(&c->result);
	c->status = isola_interp_call(in, c->target, &args, &c->res);
	isola_msg_clear(&args);
	if (c->status == 0) {
		const void *p;
		size_t len;
		isola_msg_bytes(&c->res, &p, &len);
		msgpack_unpack_next(&c->result, p, len, NULL);
	} else {
		const char *type, *msg, *tb;
		isola_interp_error(in, &type, &msg, &tb);
		snprintf(c->error, sizeof(c->error), "%s: %s\n%s", type, msg, tb);
	}
	isola_interp_destroy(in);
	return NULL;
}

Test(pychannel, producer_and_consumer_in_two_interpreters)
{
	isola_channel *ch;
	cr_assert_eq(isola_channel_create(8, &ch), 0);
	struct call prod = { .target = "pych_helper:produce", .ch = ch, .extra = 100 };
	struct call cons = { .target = "pych_helper:consume", .ch = ch, .extra = -1 };
	pthread_t a, b;
	pthread_create(&a, NULL, call_in_new_interp, &cons);
	pthread_create(&b, NULL, call_in_new_interp, &prod);
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	cr_assert_eq(prod.status, 0, "%s", prod.error);
	cr_assert_eq(cons.status, 0, "%s", cons.error);
	msgpack_object r = cons.result.data;
	cr_assert_eq(r.type, MSGPACK_OBJECT_ARRAY);
	cr_assert_eq(r.via.array.ptr[0].via.u64, 100);
	cr_assert_eq(r.via.array.ptr[1].via.u64, 328350); /* sum of squares 0..99 */
	msgpack_unpacked_destroy(&cons.result);
	msgpack_unpacked_destroy(&prod.result);
	isola_msg_clear(&cons.res);
	isola_msg_clear(&prod.res);
	isola_channel_release(ch);
}

Test(pychannel, a_channel_made_in_python_travels_to_another_interpreter)
{
	isola_channel *carrier;
	cr_assert_eq(isola_channel_create(2, &carrier), 0);
	struct call a = { .target = "pych_helper:make_and_send", .ch = carrier, .extra = -1 };
	struct call b = { .target = "pych_helper:receive_and_reply", .ch = carrier, .extra = -1 };
	pthread_t ta, tb;
	pthread_create(&ta, NULL, call_in_new_interp, &a);
	pthread_create(&tb, NULL, call_in_new_interp, &b);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	cr_assert_eq(a.status, 0, "%s", a.error);
	cr_assert_eq(b.status, 0, "%s", b.error);
	msgpack_object r = a.result.data;
	cr_assert_eq(r.type, MSGPACK_OBJECT_STR);
	cr_assert_eq(strncmp(r.via.str.ptr, "hello from B", r.via.str.size), 0);
	msgpack_unpacked_destroy(&a.result);
	msgpack_unpacked_destroy(&b.result);
	isola_msg_clear(&a.res);
	isola_msg_clear(&b.res);
	isola_channel_release(carrier);
}

Test(pychannel, large_bytes_cross_as_a_zero_copy_buffer)
{
	isola_channel *ch;
	cr_assert_eq(isola_channel_create(2, &ch), 0);
	struct call s = { .target = "pych_helper:send_big", .ch = ch, .extra = -1 };
	struct call r = { .target = "pych_helper:recv_big", .ch = ch, .extra = -1 };
	pthread_t ts, tr;
	pthread_create(&ts, NULL, call_in_new_interp, &s);
	pthread_create(&tr, NULL, call_in_new_interp, &r);
	pthread_join(ts, NULL);
	pthread_join(tr, NULL);
	cr_assert_eq(s.status, 0, "%s", s.error);
	cr_assert_eq(r.status, 0, "%s", r.error);
	msgpack_object o = r.result.data;
	cr_assert_eq(o.via.array.ptr[0].via.u64, 1000000);
	cr_assert_eq(strncmp(o.via.array.ptr[1].via.str.ptr, "Buffer", 6), 0);
	cr_assert_eq(memcmp(o.via.array.ptr[2].via.bin.ptr, "zzz", 3), 0);
	msgpack_unpacked_destroy(&s.result);
	msgpack_unpacked_destroy(&r.result);
	isola_msg_clear(&s.res);
	isola_msg_clear(&r.res);
	/* The sender's interpreter is gone while the blob may still be
	 * queued for release: that must be safe (run under valgrind/ASan). */
	isola_channel_release(ch);
}

static isola_interp *helper_interp(void)
{
	const char *paths[] = { dir };
	isola_interp_options o = { .sys_path = paths, .n_sys_path = 1 };
	isola_interp *in;
	cr_assert_eq(isola_interp_create(&o, &in, NULL), 0);
	return in;
}

Test(pychannel, call_with_positional_and_keyword_args)
{
	isola_interp *in = helper_interp();
	isola_msg args, res;
	isola_msg_init(&args);
	isola_msg_set_bytes(&args, "\x92\x05\x07", 3); /* [5, 7] */
	cr_assert_eq(isola_interp_call(in, "pych_helper:add", &args, &res), 0);
	const void *p;
	size_t len;
	isola_msg_bytes(&res, &p, &len);
	cr_assert_eq(len, 1);
	cr_assert_eq(((const unsigned char *)p)[0], 12);
	isola_msg_clear(&res);
	isola_msg_set_bytes(&args, "\x82\xa1" "a\x01\xa1" "b\x02", 7); /* {a:1, b:2} */
	cr_assert_eq(isola_interp_call(in, "pych_helper:add", &args, &res), 0);
	isola_msg_bytes(&res, &p, &len);
	cr_assert_eq(((const unsigned char *)p)[0], 3);
	isola_msg_clear(&res);
	cr_assert_eq(isola_interp_call(in, "builtins:len", NULL, &res), ISOLA_EPYTHON,
		     "len() with no args raises TypeError");
	isola_msg_clear(&args);
	isola_interp_destroy(in);
}

Test(pychannel, call_errors)
{
	isola_interp *in = helper_interp();
	isola_msg args, res;
	isola_msg_init(&args);
	isola_msg_set_bytes(&args, "\x91\xa3" "key", 5); /* ["key"] */
	const char *type, *msg, *tb;
	cr_assert_eq(isola_interp_call(in, "pych_helper:boom", &args, &res), ISOLA_EPYTHON);
	isola_interp_error(in, &type, &msg, &tb);
	cr_assert_str_eq(type, "KeyError");
	cr_assert_not_null(strstr(tb, "in boom"), "%s", tb);
	cr_assert_eq(isola_interp_call(in, "no_such_mod_q:f", &args, &res), ISOLA_ENOTFOUND);
	isola_interp_error(in, &type, NULL, NULL);
	cr_assert_str_eq(type, "ModuleNotFoundError");
	cr_assert_eq(isola_interp_call(in, "pych_helper:nope", &args, &res), ISOLA_ENOTFOUND);
	cr_assert_eq(isola_interp_call(in, "no colon", &args, &res), ISOLA_EPYTHON);
	isola_interp_error(in, &type, &msg, NULL);
	cr_assert_str_eq(type, "ValueError");
	isola_msg_set_bytes(&args, "\x92\x01", 2); /* truncated */
	cr_assert_eq(isola_interp_call(in, "pych_helper:add", &args, &res), ISOLA_EPYTHON);
	isola_interp_error(in, &type, &msg, NULL);
	cr_assert_str_eq(type, "ValueError");
	cr_assert_not_null(strstr(msg, "offset"), "%s", msg);
	isola_msg_clear(&args);
	isola_interp_destroy(in);
}
