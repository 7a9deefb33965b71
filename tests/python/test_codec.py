"""The codec: exact round trips, references, limits, errors, hostile input."""
import datetime as dt
import math
import pickle
import socket
import unittest

import isola

UTC = dt.timezone.utc


def same(a, b):
    """Equal in value and type, recursively (NaN equals NaN, -0.0 keeps its sign)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return a == b


VALUES = [
    None, True, False,
    0, 1, -1, 127, 128, -32, -33, 255, 256, 65535, 65536, 2**31, 2**32,
    2**63 - 1, -2**63, 2**64 - 1, 2**64, -2**63 - 1, 10**100, -10**100, 2**1000,
    0.0, -0.0, 1.5, -2.25, float("inf"), float("-inf"), float("nan"), 1e-308, 5e-324,
    "", "a", "héllo wörld", "日本語", "😀", "\udc80lone surrogate", "\ud800", "x" * 70000,
    b"", b"\x00\xff", b"y" * 1000, bytearray(), bytearray(b"mutable"),
    [], [1, [2, [3, [4]]]], (), (1,), (1, (2, 3), [4]), [(), ()],
    {}, {"a": 1, "b": [1, 2, 3], "c": "xyz"}, {1: "int key", (1, 2): "tuple key", None: 0, 2.5: "f"},
    {"z": 1, "a": 2, "m": 3},  # insertion order kept
    set(), {1, 2, 3}, frozenset(), frozenset({"a", (1, 2)}),
    0j, 3 + 4j, complex(float("inf"), -0.0),
    dt.datetime(2024, 2, 29, 23, 59, 59, 999999), dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59),
    dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC), dt.datetime(1969, 12, 31, 23, 59, 59, 1, tzinfo=UTC),
    dt.datetime(1, 1, 1, tzinfo=UTC), dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    dt.datetime(2020, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))),
    dt.datetime(2021, 11, 7, 1, 30, fold=1),
    dt.date(2020, 2, 29), dt.date(1, 1, 1), dt.time(0, 0), dt.time(23, 59, 59, 999999),
    dt.time(12, 0, tzinfo=dt.timezone(dt.timedelta(hours=-3))),
    dt.timedelta(0), dt.timedelta(days=-1, seconds=5, microseconds=7), dt.timedelta(days=999999999),
]


# CPython 3.12's isolated sub-interpreters cannot load the C datetime
# module (single-phase init) and fall back to the pure-Python one, whose
# classes isola's codec does not know: those values travel by pickle there
# (refused by loads' default).  3.13+ load the C module everywhere.
PURE_DATETIME = not hasattr(dt, "datetime_CAPI")


def is_datetime(v):
    return isinstance(v, (dt.date, dt.time, dt.timedelta, dt.tzinfo))


class RoundTrip(unittest.TestCase):
    def test_every_value_round_trips_exactly(self):
        for v in VALUES:
            if PURE_DATETIME and is_datetime(v):
                continue  # see PURE_DATETIME
            with self.subTest(v=repr(v)[:60]):
                w = isola.loads(isola.dumps(v))
                self.assertTrue(same(v, w), f"{v!r} came back as {w!r}")

    def test_through_a_channel(self):
        ch = isola.Channel(4)
        for v in VALUES:
            with self.subTest(v=repr(v)[:60]):
                ch.send(v)
                w = ch.recv()
                self.assertTrue(same(v, w), f"{v!r} came back as {w!r}")

    @unittest.skipIf(PURE_DATETIME, "pure-Python datetime (see PURE_DATETIME)")
    def test_nested_everything(self):
        v = {"list": [1, (2, {3: frozenset({4})}), [b"5", bytearray(b"6")]], "t": (dt.date(2000, 1, 1),)}
        self.assertTrue(same(v, isola.loads(isola.dumps(v))))

    def test_buffer_protocol_travels_as_bytes(self):
        import array
        self.assertEqual(isola.loads(isola.dumps(memoryview(b"abc"))), b"abc")
        a = array.array("i", [1, 2, 3])
        self.assertEqual(isola.loads(isola.dumps(a)), a.tobytes())
        strided = memoryview(b"abcdef")[::2]
        self.assertEqual(isola.loads(isola.dumps(strided)), b"ace")

    def test_pickle_fallback(self):
        import fractions, decimal, collections
        for v in (fractions.Fraction(1, 3), decimal.Decimal("1.10"), collections.OrderedDict(a=1)):
            w = isola.loads(isola.dumps(v), allow_pickle=True)
            self.assertEqual(type(w), type(v))
            self.assertEqual(w, v)

    def test_pickle_fallback_off(self):
        import fractions
        with self.assertRaises(TypeError) as cm:
            isola.dumps({"x": [fractions.Fraction(1, 3)]}, allow_pickle=False)
        self.assertIn("obj['x'][0]: Fraction", str(cm.exception))
        data = isola.dumps(fractions.Fraction(1, 3))
        with self.assertRaises(ValueError) as cm:
            isola.loads(data, allow_pickle=False)
        self.assertIn("pickle", str(cm.exception))

    def test_loads_refuses_pickle_by_default(self):
        # issue 14.18: bytes from outside the process must not run code
        import fractions
        data = isola.dumps(fractions.Fraction(1, 3))
        with self.assertRaises(ValueError) as cm:
            isola.loads(data)
        self.assertIn("pickle", str(cm.exception))
        self.assertEqual(isola.loads(data, allow_pickle=True), fractions.Fraction(1, 3))

    def test_max_size_cannot_pass_32_bit_lengths(self):
        with self.assertRaises(ValueError):
            isola.dumps(b"x", max_size=2**32)
        self.assertEqual(isola.loads(isola.dumps(b"x", max_size=2**32 - 1)), b"x")

    def test_unsendable_names_type_and_path(self):
        s = socket.socket()
        try:
            with self.assertRaises(TypeError) as cm:
                isola.dumps((1, {"key": [0, s]}))
            msg = str(cm.exception)
            self.assertIn("obj[1]['key'][1]", msg)
            self.assertIn("socket", msg)
        finally:
            s.close()

    def test_lambda_is_refused_clearly(self):
        with self.assertRaises(TypeError) as cm:
            isola.dumps([lambda: 1], allow_pickle=True)
        self.assertIn("obj[0]: function", str(cm.exception))


class Exceptions(unittest.TestCase):
    def raise_and_catch(self, exc):
        try:
            raise exc
        except BaseException as e:
            return e

    def test_builtin_exception_keeps_type_args_and_traceback(self):
        e = self.raise_and_catch(KeyError("missing", 3))
        w = isola.loads(isola.dumps(e))
        self.assertIs(type(w), KeyError)
        self.assertEqual(w.args, ("missing", 3))
        self.assertIn("raise_and_catch", w.remote_traceback)
        self.assertTrue(any("Remote traceback" in n for n in w.__notes__))

    def test_custom_exception_becomes_remote_error(self):
        class Custom(Exception):
            pass
        w = isola.loads(isola.dumps(self.raise_and_catch(Custom("bad", 42))))
        self.assertIsInstance(w, isola.RemoteError)
        self.assertTrue(w.type_name.endswith("Custom"))
        self.assertEqual(w.remote_args, ("bad", 42))
        self.assertEqual(w.message, "('bad', 42)")
        self.assertIn("Custom", w.remote_traceback)

    def test_importable_exception_class_is_rebuilt(self):
        import json
        e = self.raise_and_catch(json.JSONDecodeError("Expecting value", "x{", 1))
        e.add_note("a note of the sender")
        w = isola.loads(isola.dumps(e))
        self.assertIs(type(w), json.JSONDecodeError, "except json.JSONDecodeError still works")
        self.assertEqual((w.msg, w.doc, w.pos, w.args), (e.msg, e.doc, e.pos, e.args))
        self.assertIn("a note of the sender", w.__notes__)
        self.assertTrue(any("Remote traceback" in n for n in w.__notes__))
        self.assertIn("raise_and_catch", w.remote_traceback)

    def test_remote_error_subclasses_the_builtin_base(self):
        import pool_helpers
        data = isola.dumps(self.raise_and_catch(pool_helpers.CustomValueError("bad")))
        # a receiver that does not have the module (and may not import it)
        data = data.replace(b"pool_helpers", b"not_a_module")
        w = isola.loads(data, allow_pickle=False)
        self.assertIsInstance(w, isola.RemoteError)
        self.assertIsInstance(w, ValueError, "except ValueError still catches it")
        self.assertEqual(w.type_name, "not_a_module.CustomValueError")
        self.assertEqual(w.remote_args, ("bad",))

    def test_same_exception_twice_and_many_with_unencodable_args(self):
        # issue 14.9: the repr fallback leaked the failed walk's frames
        e = self.raise_and_catch(ValueError("x", [socket]))
        a, b = isola.loads(isola.dumps([e, e]))
        self.assertEqual((a.args[0], b.args[0]), ("x", "x"))
        many = [Exception([1, {2: socket}]) for _ in range(600)] + [Exception([1, 2, 3])]
        self.assertEqual(isola.loads(isola.dumps(many))[-1].args, ([1, 2, 3],))

    def test_dict_with_a_deep_key(self):
        # found by fuzz_encode: encoding the key grew the path array under
        # a pointer the dict still used (heap use-after-free under ASan)
        key = ()
        for _ in range(40):
            key = (key,)
        v = [{key: [1, 2]} for _ in range(3)]
        self.assertEqual(isola.loads(isola.dumps(v)), v)

    def test_deep_exception_argument_is_a_value_error(self):
        # issue 14.16: RecursionError from repr() replaced the encoder's reason
        deep = []
        for _ in range(100000):
            deep = [deep]
        with self.assertRaises(ValueError) as cm:
            isola.dumps(ValueError(deep))
        self.assertIn("nested too deeply", str(cm.exception))

    def test_interrupt_while_pickling_stays_an_interrupt(self):
        # issue 14.16: a KeyboardInterrupt during encoding became a TypeError
        class Interrupting:
            def __reduce__(self):
                raise KeyboardInterrupt
        with self.assertRaises(KeyboardInterrupt):
            isola.dumps([Interrupting()])

    def test_extreme_timestamps_are_refused_cleanly(self):
        # issue 14.16: signed overflow (UBSan) for extreme seconds
        for secs in (-(2**63), 2**63 - 1, -62135596801, 253402300800):
            data = b"\xc7\x0c\xff" + (0).to_bytes(4, "big") + secs.to_bytes(8, "big", signed=True)
            with self.assertRaises(ValueError) as cm:
                isola.loads(data)
            self.assertIn("outside datetime's range", str(cm.exception))

    def test_unencodable_args_become_reprs(self):
        s = socket.socket()
        try:
            w = isola.loads(isola.dumps(ValueError("x", s)))
        finally:
            s.close()
        self.assertIs(type(w), ValueError)
        self.assertEqual(w.args[0], "x")
        self.assertIn("socket", w.args[1])


class Limits(unittest.TestCase):
    def test_self_reference_is_a_value_error(self):
        l = [1]
        l.append(l)
        with self.assertRaises(ValueError) as cm:
            isola.dumps(l)
        self.assertIn("contains itself", str(cm.exception))
        d = {}
        d["me"] = [d]
        with self.assertRaises(ValueError):
            isola.dumps(d)

    def test_shared_but_not_cyclic_is_fine(self):
        inner = [1, 2]
        self.assertEqual(isola.loads(isola.dumps([inner, inner])), [[1, 2], [1, 2]])

    def test_depth_limit(self):
        v = []
        for _ in range(600):
            v = [v]
        with self.assertRaises(ValueError) as cm:
            isola.dumps(v)
        self.assertIn("nested too deeply", str(cm.exception))
        ok = []
        for _ in range(400):
            ok = [ok]
        self.assertEqual(isola.loads(isola.dumps(ok)), ok)

    def test_size_limit(self):
        with self.assertRaises(ValueError) as cm:
            isola.dumps([b"x" * 600, b"y" * 600], max_size=1000)
        self.assertIn("too large", str(cm.exception))
        data = isola.dumps(b"x" * 600)
        self.assertEqual(isola.loads(data, max_size=1000), b"x" * 600)
        with self.assertRaises(ValueError) as cm:
            isola.loads(data, max_size=100)
        self.assertIn("passes the limit", str(cm.exception))

    def test_custom_depth_limit(self):
        v = [[[[1]]]]
        self.assertEqual(isola.loads(isola.dumps(v, max_depth=4), max_depth=4), v)
        with self.assertRaises(ValueError):
            isola.dumps(v, max_depth=3)
        with self.assertRaises(ValueError):
            isola.loads(isola.dumps(v), max_depth=3)
        with self.assertRaises(ValueError):
            isola.dumps(v, max_depth=0)

    def test_decode_depth_limit(self):
        data = b"\x91" * 1000 + b"\xc0"
        with self.assertRaises(ValueError) as cm:
            isola.loads(data)
        self.assertIn("nested deeper", str(cm.exception))


class HostileInput(unittest.TestCase):
    def bad(self, data, *words):
        with self.assertRaises(ValueError) as cm:
            isola.loads(data)
        msg = str(cm.exception)
        self.assertIn("offset", msg)
        for w in words:
            self.assertIn(w, msg)
        return msg

    def test_truncated(self):
        full = isola.dumps({"a": [1, 2, "three", b"four", 2**70]})
        for cut in range(len(full)):
            with self.subTest(cut=cut):
                self.bad(full[:cut])

    def test_bad_lengths_and_claims(self):
        self.bad(b"\xdd\xff\xff\xff\xff", "array claims")
        self.bad(b"\xdf\xff\xff\xff\xff", "map claims")
        self.bad(b"\xdb\xff\xff\xff\xff", "str of")
        self.bad(b"\xc6\xff\xff\xff\xffab", "bin of")
        self.bad(b"\xc9\xff\xff\xff\xff\x01", "ext of")

    def test_unknown_ext_and_invalid_bytes(self):
        self.bad(b"\xd4\x63\x00", "unknown ext type 99")
        self.bad(b"\xc1", "invalid type byte 0xc1")
        self.bad(b"\xa2\xff\xfe", "UTF-8")
        self.bad(b"\x01\x02", "trailing")

    def test_bad_ext_payloads(self):
        self.bad(b"\xd4\x0c\x00", "outside a message")   # blob ref in bare bytes
        self.bad(b"\xd4\x05\x00", "complex")              # wrong size complex
        self.bad(b"\xc7\x01\x01\x05", "should be an array")  # tuple of an int
        self.bad(b"\xc7\x02\x02\x91\x90", "hashable")    # set containing a list
        self.bad(b"\x81\x90\x01", "not hashable")          # map with a list key
        self.bad(b"\xc7\x0c\xff" + b"\xff" * 4 + b"\x00" * 8, "nanoseconds")  # ns > 1e9
        self.bad(b"\xc7\x0c\xff" + b"\x00" * 4 + b"\x7f" + b"\xff" * 7, "timestamp")  # year > 9999
        self.bad(b"\xd5\xff\x00\x00", "timestamp ext of 2 bytes")

    def test_random_garbage_never_crashes(self):
        import random
        rnd = random.Random(1234)
        seeds = [isola.dumps(v) for v in VALUES[:60]]
        for i in range(3000):
            data = bytearray(rnd.choice(seeds))
            for _ in range(rnd.randint(1, 4)):
                if data:
                    data[rnd.randrange(len(data))] = rnd.randrange(256)
            try:
                isola.loads(bytes(data))
            except ValueError:
                pass


class Blobs(unittest.TestCase):
    def test_large_bytes_travel_as_zero_copy_buffer(self):
        ch = isola.Channel(2)
        big = bytes(range(256)) * 4096  # 1 MiB
        ch.send(big)
        got = ch.recv()
        self.assertIsInstance(got, isola.Buffer)
        self.assertEqual(len(got), len(big))
        self.assertEqual(got, big)
        self.assertEqual(bytes(got), big)
        self.assertEqual(memoryview(got)[10:20].tobytes(), big[10:20])
        self.assertEqual(got[10:20], big[10:20])
        self.assertEqual(got[::4096], big[::4096])
        self.assertEqual(got[-1], big[-1])
        self.assertEqual(got[5], big[5])
        with self.assertRaises(IndexError):
            got[len(big)]
        self.assertEqual(sum(got[:100]), sum(big[:100]))
        with self.assertRaises(TypeError):
            memoryview(got)[0] = 1  # read-only

    def test_below_threshold_stays_bytes(self):
        ch = isola.Channel(2)
        ch.send(b"x" * (isola.BLOB_THRESHOLD - 1))
        self.assertIs(type(ch.recv()), bytes)

    def test_share_and_resend(self):
        data = b"shared" * 10
        buf = isola.share(data)
        self.assertIsInstance(buf, isola.Buffer)
        self.assertEqual(buf, data)
        ch = isola.Channel(4)
        ch.send([buf, buf])
        a, b = ch.recv()
        self.assertEqual(a, data)
        self.assertEqual(b, data)
        self.assertIs(isola.share(buf), buf)
        self.assertEqual(isola.share(bytearray(b"copy")), b"copy")
        with self.assertRaises(TypeError):
            isola.share(12)

    def test_buffer_keeps_data_alive_after_sender_drops_it(self):
        ch = isola.Channel(2)
        data = bytes(100000)
        ch.send(data)
        del data
        got = ch.recv()
        import gc
        gc.collect()
        self.assertEqual(len(got), 100000)
        self.assertEqual(got.tobytes(), bytes(100000))

    def test_dumps_refuses_references(self):
        with self.assertRaises(TypeError):
            isola.dumps(isola.Channel(1))
        with self.assertRaises(TypeError):
            isola.dumps(isola.share(b"x"))


if __name__ == "__main__":
    unittest.main()
