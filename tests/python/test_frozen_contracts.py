"""Frozen values at their edges (issue #30): names with a NUL byte,
keys whose hashes cluster, NaN keys, time zones."""
import datetime
import math
import pickle
import unittest

import isola

try:
    import zoneinfo
except (ImportError, AttributeError):  # 3.12 sub-interpreters: _zoneinfo needs the C datetime
    zoneinfo = None


class Names(unittest.TestCase):
    def test_a_name_with_a_nul_byte_is_refused(self):
        # Before: "config\x00x" was cut at the NUL and replaced "config".
        isola.publish("test_contracts.config", {"v": 1})
        self.addCleanup(isola.unpublish, "test_contracts.config")
        for call in (lambda n: isola.publish(n, {"v": 2}), isola.lookup, isola.unpublish):
            with self.assertRaisesRegex(ValueError, "NUL"):
                call("test_contracts.config\x00x")
        self.assertEqual(isola.lookup("test_contracts.config")["v"], 1)
        with self.assertRaises(KeyError):
            isola.lookup("test_contracts.conf")


class NaNKeys(unittest.TestCase):
    """A NaN key behaves as it does in its dict (identity first): a dict
    finds its NaN key by identity; a frozen mapping has no identity to
    keep (each read makes a new float), so a NaN is found by its bits.
    Before: m[nan] KeyError even with the same object, dict(m) KeyError,
    m != source."""

    def test_a_nan_key_is_found_and_compares_equal(self):
        nan = float("nan")
        cnan = complex(nan, 1.0)
        src = {nan: "float", cnan: "complex", "k": 1}
        m = isola.freeze(src)
        self.assertEqual(m[nan], "float")
        self.assertEqual(m[cnan], "complex")
        self.assertIn(nan, m)
        self.assertEqual(m.get(nan), "float")
        copy = dict(m)  # keys read out are new NaN objects
        self.assertEqual(len(copy), 3)
        self.assertEqual(sorted(map(str, copy.values())), ["1", "complex", "float"])
        self.assertTrue(m == src)
        self.assertFalse(m != src)
        self.assertTrue(src == m)
        self.assertEqual(m, isola.freeze(src))  # another image
        self.assertEqual(isola.thaw(m)["k"], 1)
        # every key read out finds its own entry
        for k in m:
            self.assertIs(type(m[k]), str if isinstance(k, (float, complex)) else int)
        # a NaN key is not an ordinary float: 0.0 and inf are still absent
        for absent in (0.0, math.inf, complex(1.0, nan)):
            self.assertNotIn(absent, m)
        self.assertNotIn(nan, isola.freeze({1.0: 1}))

    def test_nan_values_and_items_compare_equal_to_their_source(self):
        nan = float("nan")
        self.assertEqual(isola.freeze({"a": nan}), {"a": nan})
        self.assertEqual(isola.freeze([1, nan]), [1, nan])
        self.assertIn(nan, isola.freeze([nan]))
        self.assertEqual(isola.freeze([nan]).index(nan), 0)
        self.assertNotEqual(isola.freeze({"a": nan}), {"a": 1.0})

    def test_equal_views_with_nan_hash_alike(self):
        # Python hashes a NaN by its address; two images of one source
        # are equal, so they must hash alike
        nan = float("nan")
        for src in ({nan: 1}, {"k": nan}, {(1, 2): [nan]}):
            a, b = isola.freeze(src), isola.freeze(src)
            self.assertEqual(a, b)
            self.assertEqual(hash(a), hash(b))
        self.assertEqual(hash(isola.freeze([nan, 1])), hash(isola.freeze([nan, 1])))
        self.assertEqual(hash(isola.freeze({"a": 1})), hash(frozenset({("a", 1)})))
        self.assertEqual(hash(isola.freeze([1, "a"])), hash((1, "a")))


@unittest.skipIf(zoneinfo is None, "zoneinfo cannot be imported in this interpreter")
class TimeZones(unittest.TestCase):
    """A datetime whose tzinfo is a zoneinfo.ZoneInfo made from a key is
    frozen (and travels) with that key.  Before: "datetime.datetime
    cannot be frozen"."""

    def test_a_zoneinfo_datetime_is_frozen_with_its_zone(self):
        paris = zoneinfo.ZoneInfo("Europe/Paris")
        # the second 02:30 of the night the clocks go back (fold=1)
        dt = datetime.datetime(2024, 10, 27, 2, 30, tzinfo=paris, fold=1)
        m = isola.freeze({"when": dt, dt: "as a key", "list": [dt]})
        got = m["when"]
        self.assertEqual(got, dt)
        self.assertIs(got.tzinfo, paris)  # zoneinfo's cache: the same zone
        self.assertEqual(got.fold, 1)
        self.assertEqual(got.utcoffset(), datetime.timedelta(hours=1))
        self.assertEqual(m[dt], "as a key")
        self.assertEqual(m["list"][0], dt)
        self.assertEqual(isola.loads(isola.dumps(dt)), dt)  # no pickle needed
        ch = isola.Channel(allow_pickle=False)
        ch.send(dt)
        self.assertEqual(ch.recv().tzinfo, paris)

    def test_other_tzinfos_are_refused_by_name(self):
        class Custom(datetime.tzinfo):
            def utcoffset(self, dt):
                return datetime.timedelta(hours=2)

        with open("/usr/share/zoneinfo/UTC", "rb") as f:
            from_file = zoneinfo.ZoneInfo.from_file(f)  # no key
        for tz in (Custom(), from_file):
            with self.subTest(tz=tz):
                with self.assertRaisesRegex(TypeError, "zoneinfo.ZoneInfo made from a key"):
                    isola.freeze({"k": datetime.datetime(2024, 1, 1, tzinfo=tz)})
        with self.assertRaisesRegex(TypeError, "tzinfo"):
            isola.freeze(datetime.time(1, tzinfo=zoneinfo.ZoneInfo("Europe/Paris")))
        fixed = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone(datetime.timedelta(hours=3)))
        self.assertEqual(isola.freeze([fixed])[0], fixed)

    def test_a_bad_zone_key_in_a_message_is_a_decode_error(self):
        dt = datetime.datetime(2024, 1, 1, tzinfo=zoneinfo.ZoneInfo("UTC"))
        data = isola.dumps(dt)
        bad = data.replace(b"UTC", b"XYZ")
        with self.assertRaisesRegex(ValueError, "unknown time zone key"):
            isola.loads(bad)


class ReferenceSlots(unittest.TestCase):
    """A message has 8 reference slots.  Blobs (large bytes, Buffers,
    frozen values) can be copied inline when none is left; channels
    cannot.  Before: eight blobs then a channel was refused while the
    channel then eight blobs was accepted."""

    def _round_trip(self, value):
        ch = isola.Channel()
        ch.send(value)
        return ch.recv()

    def test_the_order_of_blobs_and_channels_does_not_matter(self):
        chan = isola.Channel()
        big = [bytes([i]) * (isola.BLOB_THRESHOLD + i) for i in range(8)]
        shared = [isola.share(bytes([i]) * 100) for i in range(8)]
        frozen = [isola.freeze({"i": i}) for i in range(8)]
        for name, blobs in (("large bytes", big), ("Buffers", shared), ("frozen", frozen)):
            for order in ("blobs first", "channel first", "channels between"):
                with self.subTest(name, order=order):
                    if order == "blobs first":
                        value = blobs + [chan, chan]
                    elif order == "channel first":
                        value = [chan] + blobs + [chan]
                    else:
                        value = blobs[:3] + [chan] + blobs[3:] + [chan]
                    got = self._round_trip(value)
                    self.assertEqual(len(got), 10)
                    self.assertEqual([bytes(x) if isinstance(x, isola.Buffer) else x
                                      for x in got if not isinstance(x, isola.Channel)],
                                     [bytes(x) if isinstance(x, isola.Buffer) else x
                                      for x in blobs])
                    chans = [x for x in got if isinstance(x, isola.Channel)]
                    self.assertEqual(len(chans), 2)
                    chans[0].send("ping")
                    self.assertEqual(chan.recv(), "ping")

    def test_eight_channels_fit_and_a_ninth_is_refused_whatever_the_blobs(self):
        chans = [isola.Channel() for _ in range(9)]
        blob = b"x" * isola.BLOB_THRESHOLD
        got = self._round_trip([blob] * 3 + chans[:8] + [blob])
        self.assertEqual(got[0], blob)
        self.assertEqual(got[-1], blob)
        for value in ([blob] * 3 + chans, chans + [blob]):
            with self.assertRaisesRegex(ValueError, "at most 8"):
                isola.Channel().send(value)

    def test_a_channel_in_an_exception_after_blobs(self):
        # exception args are written best-effort (repr when they cannot
        # travel): the channel still gets a slot, not a repr
        chan = isola.Channel()
        big = [bytes([i]) * isola.BLOB_THRESHOLD for i in range(8)]
        got = self._round_trip([big, RuntimeError(chan)])
        self.assertIsInstance(got[1].args[0], isola.Channel)
        self.assertEqual(got[0], big)


if __name__ == "__main__":
    unittest.main()


def _aligned(shift, n=100_000):
    return {x << shift: x for x in range(n)}


class ClusteredKeys(unittest.TestCase):
    """Issue #30.8: ints aligned to a power of two shared their low hash
    bits, and 100,000 keys aligned to 1 MiB sat in a few clusters (a
    lookup walked thousands of slots).  The index mixes the hash and
    records its longest displacement: a structural bound, not a time."""

    BOUND = 40  # 16 + 2 * log2(cap) for 100,000 keys (cap 2^18) is 52

    def test_aligned_int_keys_stay_near_their_home_slot(self):
        for shift in (12, 20, 32):
            with self.subTest(aligned_to=1 << shift):
                d = _aligned(shift)
                m = isola.freeze(d)
                stats = m._index_stats()
                self.assertEqual(stats["entries"], len(d))
                self.assertLessEqual(stats["max_displacement"], self.BOUND, stats)
                self.assertLess(stats["mean_displacement"], 2.0, stats)
                self.assertEqual(stats["recorded_max_displacement"], stats["max_displacement"])
                for k in list(d)[::997]:
                    self.assertEqual(m[k], d[k])
                    self.assertNotIn(k + 1, m)
                self.assertEqual(m, d)

    def test_keys_with_equal_python_hashes_are_still_all_found(self):
        # k * (2**61 - 1) all hash to 0: no index can spread them (a dict
        # cannot either); every one is found, absent ones are not.
        keys = [k * (2 ** 61 - 1) for k in range(1, 300)]
        m = isola.freeze({k: i for i, k in enumerate(keys)})
        for i, k in enumerate(keys):
            self.assertEqual(m[k], i)
        self.assertNotIn(0, m)
        self.assertNotIn(300 * (2 ** 61 - 1), m)

    def test_int_keys_compare_by_value_across_encodings(self):
        # Int keys are matched on their msgpack bytes: every width and
        # sign, and equal keys of other types (True, 1.0) as a dict does.
        ints = [0, 1, 127, 128, 255, 256, 65535, 65536, 2 ** 32, 2 ** 63 - 1, 2 ** 63,
                2 ** 64 - 1, -1, -32, -33, -128, -129, -32768, -32769, -2 ** 31 - 1, -2 ** 63]
        d = {k: str(k) for k in ints}
        d[2 ** 64] = "big"
        d[-2 ** 63 - 1] = "big negative"
        d[1.5] = "float"
        m = isola.freeze(d)
        for k, v in d.items():
            self.assertEqual(m[k], v, k)
        self.assertEqual(m[True], "1")
        self.assertEqual(m[1.0], "1")
        self.assertEqual(m[0.0], "0")
        for absent in (2, -2, 2 ** 63 + 1, 2 ** 64 + 1, -2 ** 63 + 1, 10 ** 30, 2.5):
            self.assertNotIn(absent, m)
        self.assertEqual(isola.freeze({True: "t", 2.0: "f"})[1], "t")
        self.assertEqual(isola.freeze({True: "t", 2.0: "f"})[2], "f")
