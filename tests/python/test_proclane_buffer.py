"""isola.Buffer and large bytes sent to process workers (issue #33): one
copy into a sealed memfd (the blob's mirror), mapped read-only by every
child that receives it, with no copy per process or per task."""
import gc
import os
import subprocess
import sys
import textwrap
import unittest
import zlib

import isola

import proc_helpers as h
from test_proclane import HANG, IN_SUB, child_env, wait_until

MB = 1 << 20


def parent_fds():
    return len(os.listdir("/proc/self/fd"))


@unittest.skipIf(IN_SUB, "starts child processes from the main interpreter")
class SharedBuffers(unittest.TestCase):
    def test_a_buffer_of_several_mb_is_mapped_by_two_workers_with_one_copy(self):
        data = os.urandom(8 * MB)
        want = zlib.crc32(data)
        made = isola._proc_mirror_stats()["made"]
        with isola.Pool(1, processes=2) as pool:
            buf = isola.share(data)
            # Each task holds its worker a moment: both workers take some.
            fs = [pool.apply_async(h.buffer_info, (buf, 0.05), lane="process")
                  for _ in range(16)]
            rs = [f.result(HANG) for f in fs]
            mine = isola._buffer_shm(buf)
            workers = pool.stats()["processes"]["workers"]
        self.assertEqual({r["pid"] for r in rs}, {w["pid"] for w in workers}, "both workers")
        self.assertEqual(isola._proc_mirror_stats()["made"] - made, 1,
                         "one mirror (one copy) for 16 tasks in 2 processes")
        self.assertEqual(mine["side"], "parent")
        for r in rs:
            self.assertEqual((r["type"], r["len"], r["crc"], r["readonly"]),
                             ("Buffer", len(data), want, True))
            # The child reads the parent's memfd pages: the same inode,
            # mapped shared and read-only, no copy of its own.
            self.assertEqual(r["shm"]["side"], "child")
            self.assertEqual((r["shm"]["mirror"], r["shm"]["inode"]),
                             (mine["mirror"], mine["inode"]))
            self.assertIn("/memfd:isola-blob", r["maps"])
            self.assertEqual(r["maps"].split()[1], "r--s", r["maps"])
        self.assertEqual(sum(w["blobs_mapped"] for w in workers), 16)
        self.assertEqual(sum(w["blobs_copied"] for w in workers), 0)
        # Task after task, a worker maps the mirror at most twice (once
        # before it knows the Buffer comes again), then finds it cached.
        last = {}
        for r in rs:
            last[r["pid"]] = r["stats"]
        for s in last.values():
            self.assertLessEqual(s["maps"], 2, s)
        self.assertGreaterEqual(sum(s["hits"] for s in last.values()), 16 - 4)

    def test_the_buffer_is_read_only_in_the_child(self):
        with isola.Pool(1, processes=1) as pool:
            buf = isola.share(b"\x01" * (2 * MB))
            r = pool.apply_async(h.buffer_info, (buf,), lane="process").result(HANG)
            self.assertTrue(r["readonly"])
            # Not even through the mapping's own protection: the memfd is
            # sealed against writes, and mapped without PROT_WRITE.
            self.assertEqual(r["maps"].split()[1], "r--s")

    def test_large_bytes_arrive_as_a_buffer_small_blobs_are_copied(self):
        big, mid = os.urandom(2 * MB), os.urandom(100_000)  # mid: a blob, under 256 KiB
        with isola.Pool(1, processes=1) as pool:
            r = pool.apply_async(h.buffer_info, (big,), lane="process").result(HANG)
            self.assertEqual((r["type"], r["crc"]), ("Buffer", zlib.crc32(big)))
            self.assertEqual(r["shm"]["side"], "child")
            r = pool.apply_async(h.buffer_info, (mid,), lane="process").result(HANG)
            self.assertEqual((r["type"], r["crc"], r["shm"]), ("Buffer", zlib.crc32(mid), None))
            small = pool.apply_async(h.buffer_info, (b"abc",), lane="process").result(HANG)
            self.assertEqual(small["type"], "bytes")
            w = pool.stats()["processes"]["workers"][0]
            self.assertEqual((w["blobs_mapped"], w["blobs_copied"]), (1, 1))

    def test_results_come_back_copied(self):
        data = os.urandom(3 * MB)
        with isola.Pool(1, processes=1, place={"proc_helpers": "process"}) as pool:
            buf = isola.share(data)
            back = pool.submit(h.echo, buf).result(HANG)
            self.assertEqual((type(back), back == data), (bytes, True))
            # Through map's chunks too (one message, several results).
            self.assertEqual(list(pool.map(h.echo, [buf, data, buf], chunksize=3)),
                             [data] * 3)

    def test_map_chunks_pass_each_mirror_once(self):
        data = os.urandom(1 * MB)
        with isola.Pool(1, processes=1, place={"proc_helpers": "process"}) as pool:
            buf = isola.share(data)
            crcs = list(pool.map(h.stash, [buf] * 50, chunksize=25))
            self.assertEqual(crcs, [zlib.crc32(data)] * 50)
            pool.submit(h.drop_stash).result(HANG)

    def test_the_child_keeps_its_mapping_after_the_parent_drops_the_buffer(self):
        data = os.urandom(4 * MB)
        with isola.Pool(1, processes=1) as pool:
            live = isola._proc_mirror_stats()["live"]
            buf = isola.share(data)
            self.assertEqual(pool.apply_async(h.stash, (buf,), lane="process").result(HANG),
                             zlib.crc32(data))
            self.assertEqual(isola._proc_mirror_stats()["live"], live + 1)
            del buf
            gc.collect()
            # The parent's mirror is gone (its memfd closed, once the
            # proxy has let go of the task's message) ...
            self.assertTrue(wait_until(lambda: isola._proc_mirror_stats()["live"] == live))
            # ... and the child's mapping still holds the pages.
            self.assertEqual(pool.apply_async(h.stash_crcs, lane="process").result(HANG),
                             [zlib.crc32(data)])
            s = pool.apply_async(h.drop_stash, lane="process").result(HANG)
            self.assertEqual(s["mapped"], 0, s)

    def test_a_child_that_dies_holding_a_mapping(self):
        data = os.urandom(4 * MB)
        with isola.Pool(1, processes=1) as pool:
            buf = isola.share(data)
            with self.assertRaises(isola.WorkerCrashed):
                pool.apply_async(h.stash_then_exit, (buf,), lane="process").result(HANG)
            # The next child maps the same mirror.
            r = pool.apply_async(h.buffer_info, (buf,), lane="process").result(HANG)
            self.assertEqual(r["crc"], zlib.crc32(data))
            self.assertEqual(r["shm"]["mirror"], isola._buffer_shm(buf)["mirror"])
            self.assertEqual(pool.stats()["processes"]["workers"][0]["starts"], 2)

    def test_many_distinct_buffers_leak_no_fds_in_parent_or_child(self):
        with isola.Pool(1, processes=1) as pool:
            pool.apply_async(h.pid, lane="process").result(HANG)
            gc.collect()
            before, child_before = parent_fds(), pool.apply_async(
                h.fd_count, lane="process").result(HANG)
            live = isola._proc_mirror_stats()["live"]
            for i in range(150):
                b = isola.share(bytes([i]) * 300_000)
                r = pool.apply_async(h.buffer_info, (b,), lane="process").result(HANG)
                self.assertEqual(r["crc"], zlib.crc32(bytes([i]) * 300_000))
                del b
            # Some sent twice in a row (the child may keep those mapped).
            for i in range(30):
                b = isola.share(bytes([i]) * 300_000)
                for _ in range(2):
                    pool.apply_async(h.buffer_info, (b,), lane="process").result(HANG)
                del b
            gc.collect()
            # The proxy lets go of a task's message just after its result.
            self.assertTrue(wait_until(lambda: isola._proc_mirror_stats()["live"] == live))
            self.assertEqual(parent_fds(), before)
            self.assertEqual(pool.apply_async(h.fd_count, lane="process").result(HANG),
                             child_before)
            s = pool.apply_async(h.mirror_stats, lane="process").result(HANG)
            # The parent said it freed them: the child let go of its
            # mappings too (none is left mapped).
            self.assertEqual(s["mapped"], 0, s)

    def test_a_child_out_of_descriptors_fails_that_task_clearly(self):
        data = os.urandom(1 * MB)
        with isola.Pool(1, processes=1) as pool:
            pool.apply_async(h.limit_fds, lane="process").result(HANG)
            buf = isola.share(data)
            with self.assertRaisesRegex(OSError, "out of file descriptors"):
                pool.apply_async(h.buffer_info, (buf,), lane="process").result(HANG)
            self.assertTrue(pool.apply_async(h.restore_fds, lane="process").result(HANG))
            r = pool.apply_async(h.buffer_info, (buf,), lane="process").result(HANG)
            self.assertEqual(r["crc"], zlib.crc32(data))
            self.assertEqual(pool.stats()["processes"]["workers"][0]["starts"], 1,
                             "the worker survived")

    def test_a_child_that_closed_its_socket_gets_copies(self):
        data = os.urandom(1 * MB)
        with isola.Pool(1, processes=1) as pool:
            self.assertTrue(pool.apply_async(h.close_memfd_socket, lane="process").result(HANG))
            buf = isola.share(data)
            for _ in range(2):
                r = pool.apply_async(h.buffer_info, (buf,), lane="process").result(HANG)
                self.assertEqual((r["type"], r["crc"], r["shm"]), ("Buffer", zlib.crc32(data), None))
            w = pool.stats()["processes"]["workers"][0]
            self.assertEqual((w["blobs_mapped"], w["blobs_copied"], w["starts"]), (0, 2, 1))

    def test_past_the_mirror_limit_buffers_are_copied(self):
        # A quarter of RLIMIT_NOFILE (at least 64) mirrors may live at
        # once; past that, Buffers are copied into the request instead.
        r = subprocess.run([sys.executable, "-c", textwrap.dedent("""
            import resource, zlib, isola, proc_helpers as h
            resource.setrlimit(resource.RLIMIT_NOFILE,
                               (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
            bufs = [isola.share(bytes([i]) * 300_000) for i in range(80)]
            with isola.Pool(1, processes=1) as pool:
                rs = [pool.apply_async(h.buffer_info, (b,), lane="process").result(60)
                      for b in bufs]
                assert [r["crc"] for r in rs] == [zlib.crc32(b) for b in bufs]
                w = pool.stats()["processes"]["workers"][0]
                s = isola._proc_mirror_stats()
                print(w["blobs_mapped"], w["blobs_copied"], s["live"], s["refused"])
        """)], capture_output=True, text=True, timeout=HANG, env=child_env())
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.split(), ["64", "16", "64", "16"])

    def test_channels_cannot_go_to_a_process_worker(self):
        ch = isola.Channel()
        with isola.Pool(1, processes=1) as pool:
            with self.assertRaisesRegex(TypeError, "process worker"):
                pool.apply_async(h.echo, (ch,), lane="process")

    def test_the_interpreter_lane_makes_no_mirror(self):
        made = isola._proc_mirror_stats()["made"]
        with isola.Pool(1, processes=0) as pool:
            buf = isola.share(os.urandom(2 * MB))
            self.assertEqual(pool.submit(len, buf).result(HANG), 2 * MB)
        self.assertIsNone(isola._buffer_shm(buf))
        self.assertEqual(isola._proc_mirror_stats()["made"], made)


if __name__ == "__main__":
    unittest.main()
