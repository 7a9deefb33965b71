"""Frozen values at their edges (issue #30): names with a NUL byte,
keys whose hashes cluster, NaN keys, time zones."""
import unittest

import isola


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
