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
