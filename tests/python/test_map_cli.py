"""`isola map` as a data tool (issue 16): real files, pipes, signals, every
numbered problem of the issue and the options users of GNU parallel look
for.  Each case runs the command as a subprocess with a hard timeout."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

BUILD = os.environ.get("ISOLA_BUILD_DIR")
IN_SUB = getattr(sys, "_isola_subinterpreter", False)

TOOLS = r'''
import os, sys, time

def double(x):
    return 2 * x

def where(x):
    return sys.executable

def chatty(x):
    print("chatter", x)
    sys.stdout.flush()
    return x

def forever(x):
    if x == 3:
        while True:
            pass
    return x

def nan(x):
    return float("nan") if x == 2 else x

def quit(x):
    if x == 2:
        os._exit(5)
    if x == 3:
        sys.exit("bye")
    return x

def flaky(path):
    # fails the first time it sees path, then works
    if not os.path.exists(path):
        open(path, "w").close()
        raise RuntimeError("first try")
    return "ok"

def slow(x):
    time.sleep(0.01)
    return x

def translate(word):
    import isola
    table = isola.lookup("vocab")
    return [type(table).__name__, table.get(word, "?")]

def boom(x):
    if x % 2:
        raise KeyError(x)
    return x

def nap(x):
    # a C call that isola cannot interrupt
    if x:
        open("nap.started", "w").close()
        time.sleep(3600)
    return x

def twice(path):
    # the first call spins until --timeout interrupts it; the retry takes 2.4 s
    if not os.path.exists(path):
        open(path, "w").close()
        while True:
            pass
    end = time.monotonic() + 2.4
    while time.monotonic() < end:
        pass
    return "ok"

def lag(x):
    # line 40 spins (interruptibly) until lag.done exists
    while x == 40 and not os.path.exists("lag.done"):
        pass
    return x
'''


class _CliCase(unittest.TestCase):
    """A directory holding the tools modules, and ways to run `isola`."""
    FILES = {"tools.py": TOOLS}

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.dir = cls.tmp.name
        for name, text in cls.FILES.items():
            with open(os.path.join(cls.dir, name), "w") as f:
                f.write(text)
        cls.isola = os.path.join(BUILD, "cli", "isola")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def path(self, name):
        return os.path.join(self.dir, name)

    def write(self, name, data):
        with open(self.path(name), "wb" if isinstance(data, bytes) else "w") as f:
            f.write(data)
        return self.path(name)

    def read(self, name):
        with open(self.path(name)) as f:
            return f.read()

    def run_isola(self, *args, input=None, timeout=120, **kw):
        return subprocess.run([self.isola, *args], input=input, capture_output=True,
                              text=not isinstance(input, bytes), cwd=self.dir, timeout=timeout,
                              **kw)

    def popen(self, *args, **kw):
        kw.setdefault("stderr", subprocess.PIPE)
        return subprocess.Popen([self.isola, *args], cwd=self.dir, text=True,
                                start_new_session=True, **kw)

    def finish(self, p, timeout=60, input=None):
        try:
            out, err = p.communicate(input, timeout=timeout)
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        return out, err

    def wait_for_lines(self, path, n, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.exists(path):
                with open(path) as f:
                    if len(f.read().splitlines()) >= n:
                        return
            time.sleep(0.02)
        self.fail(f"{path}: fewer than {n} lines after {timeout} s")


@unittest.skipIf(IN_SUB or not BUILD, "needs ISOLA_BUILD_DIR and subprocesses")
@unittest.skipIf(os.environ.get("ISOLA_SKIP_CLI_TESTS"), "the command line is tested with the newest Python only (scripts/test)")
class MapCli(_CliCase):

    # 1. the mapped function runs in the Python isola was built for
    def test_runs_in_the_interpreter_binary(self):
        r = self.run_isola("map", "tools:where", "--ordered", input="1\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        exe = json.loads(r.stdout)
        self.assertNotEqual(os.path.realpath(exe), os.path.realpath(self.isola))
        self.assertRegex(os.path.basename(exe), r"^python3\.\d+")
        v = self.run_isola("--version")
        self.assertEqual(v.returncode, 0)
        self.assertIn("isola 0.", v.stdout)
        self.assertIn(exe, v.stdout)

    # 2. standard input read in blocks, not a byte per system call
    def test_reads_a_pipe_in_blocks(self):
        if shutil.which("strace") is None:
            self.skipTest("no strace")
        data = "".join(f"{i}\n" for i in range(200000))
        r = subprocess.run(["strace", "-f", "-c", "-e", "trace=read", self.isola, "map",
                            "tools:double", "--ordered"], input=data, capture_output=True,
                           text=True, cwd=self.dir, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        self.assertEqual(len(r.stdout.splitlines()), 200000)
        calls = [l.split() for l in r.stderr.splitlines() if l.rstrip().endswith(" read")]
        self.assertTrue(calls, r.stderr[-2000:])
        self.assertLess(int(calls[0][3]), 20000, "read(2) calls for 1.3 MB of input")

    def test_one_huge_line_from_a_pipe(self):
        big = json.dumps("x" * (20 << 20)) + "\n1\n"
        r = self.run_isola("map", "builtins:len", "--ordered", input=big, timeout=120)
        self.assertEqual(r.returncode, 1, r.stderr)  # len(1) fails, on its own line
        self.assertEqual(r.stdout, f"{20 << 20}\n\n")

    # #18: --shared NAME=FILE.json, frozen once and read in place by FUNC
    def test_shared_table(self):
        vocab = self.write("vocab.json", json.dumps({"one": 1, "two": [2, "deux"]}))
        r = self.run_isola("map", "tools:translate", "--ordered", "--lines", "-j", "2",
                           "--shared", f"vocab={vocab}", input="one\ntwo\nthree\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([json.loads(l) for l in r.stdout.splitlines()],
                         [["FrozenMap", 1], ["FrozenMap", [2, "deux"]], ["FrozenMap", "?"]])
        for bad in ("vocab", f"={vocab}", "vocab=/nonexistent.json",
                    f"vocab={self.write('bad.json', '{')}"):
            r = self.run_isola("map", "tools:translate", "--shared", bad, input="one\n")
            self.assertEqual(r.returncode, 2, (bad, r.stderr))
            self.assertIn("--shared", r.stderr)

    # 3. write errors are errors
    def test_full_disk(self):
        if not os.path.exists("/dev/full"):
            self.skipTest("no /dev/full")
        data = "".join(f"{i}\n" for i in range(1000))
        r = self.run_isola("map", "tools:double", "--out", "/dev/full", input=data)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("No space left on device", r.stderr)
        with open("/dev/full", "w") as full:
            r = subprocess.run([self.isola, "map", "tools:double"], input=data, stdout=full,
                               stderr=subprocess.PIPE, text=True, cwd=self.dir, timeout=120)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("No space left on device", r.stderr)

    # 4. Ctrl-C and SIGTERM: whole lines, a summary, 130/143, --resume
    def stop_run(self, sig, name):
        data = self.write(f"{name}.in", "".join(f"{i}\n" for i in range(3000)))
        out, log = self.path(f"{name}.out"), self.path(f"{name}.log")
        p = subprocess.Popen([self.isola, "map", "tools:slow", data, "--out", out, "--joblog",
                              log, "-j", "2", "--chunk", "5"], cwd=self.dir,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # until some lines are written
                if os.path.exists(out) and os.path.getsize(out) > 200:
                    break
                time.sleep(0.05)
            p.send_signal(sig)
            _, err = p.communicate(timeout=60)
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        return p.returncode, err, data, out, log

    def check_resumed(self, data, out, log):
        with open(out) as f:
            rows = [json.loads(l) for l in f]  # every line whole
        first = {r["index"] for r in rows}
        self.assertLess(len(first), 3000, "the run stopped early")
        r = self.run_isola("map", "tools:slow", data, "--out", out, "--joblog", log, "--resume")
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(out) as f:
            rows = [json.loads(l) for l in f]
        self.assertEqual(sorted(x["index"] for x in rows), list(range(3000)),
                         "after --resume, every line once")
        self.assertTrue(all(x["result"] == x["index"] for x in rows))

    def test_sigint_stops_cleanly_and_resume_finishes(self):
        code, err, data, out, log = self.stop_run(signal.SIGINT, "int")
        self.assertEqual(code, 130, err)
        self.assertIn("stopped by SIGINT", err)
        self.assertIn("items,", err)
        self.check_resumed(data, out, log)

    def test_sigterm_stops_cleanly(self):
        code, err, data, out, log = self.stop_run(signal.SIGTERM, "term")
        self.assertEqual(code, 143, err)
        self.assertIn("stopped by SIGTERM", err)
        self.check_resumed(data, out, log)

    def test_stopping_a_stuck_line(self):
        # a line that never ends is interrupted after the grace
        p = subprocess.Popen([self.isola, "map", "tools:forever", "--ordered"], cwd=self.dir,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            p.stdin.write("1\n2\n3\n")
            p.stdin.flush()
            time.sleep(1.0)
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=60)
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        self.assertEqual(p.returncode, 130, err)
        self.assertIn("stopped by SIGINT", err)

    # 5. a bad line fails alone
    def test_invalid_utf8_fails_its_line_only(self):
        lines = [b"%d" % i for i in range(64)]
        lines[10] = b'"\xff\xfe"'
        r = self.run_isola("map", "tools:double", "--chunk", "64", "--errors",
                           self.path("bad.jsonl"), input=b"\n".join(lines) + b"\n")
        self.assertEqual(r.returncode, 1)
        rows = [json.loads(l) for l in r.stdout.splitlines()]
        self.assertEqual(sorted(x["index"] for x in rows), [i for i in range(64) if i != 10])
        bad = [json.loads(l) for l in self.read("bad.jsonl").splitlines()]
        self.assertEqual(len(bad), 1)
        self.assertEqual((bad[0]["index"], bad[0]["line"], bad[0]["error"]),
                         (10, 11, "UnicodeDecodeError"))
        self.assertNotIn(b"as a whole", r.stderr)

    # 6. a failed run leaves the output alone
    def test_output_kept_when_setup_fails(self):
        keep = self.write("keep.jsonl", "precious\n")
        r = self.run_isola("map", "no_such_module_qq:f", "--out", keep, input="1\n")
        self.assertEqual(r.returncode, 2)
        self.assertEqual(self.read("keep.jsonl"), "precious\n")
        same = self.write("same.jsonl", "1\n2\n")
        r = self.run_isola("map", "tools:double", "--in", same, "--out", same)
        self.assertEqual(r.returncode, 2)
        self.assertIn("refusing", r.stderr)
        self.assertEqual(self.read("same.jsonl"), "1\n2\n")
        r = self.run_isola("map", "tools:double", "--out", keep, "--ordered", input="4\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.read("keep.jsonl"), "8\n")
        self.assertEqual([f for f in os.listdir(self.dir) if f.endswith(".isola-tmp")], [])

    # 7. error rows: told apart, with tracebacks
    def test_errors_file_keeps_output_clean(self):
        r = self.run_isola("map", "tools:boom", "--errors", self.path("e.jsonl"), "--ordered",
                           input="".join(f"{i}\n" for i in range(10)))
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stdout.splitlines(), ["0", "", "2", "", "4", "", "6", "", "8", ""])
        errs = [json.loads(l) for l in self.read("e.jsonl").splitlines()]
        self.assertEqual(sorted(e["index"] for e in errs), [1, 3, 5, 7, 9])
        self.assertTrue(all(e["error"] == "KeyError" and "in boom" in e["traceback"]
                            for e in errs))
        self.assertIn("5 errors", r.stderr)

    # 8. blank lines (--ordered: kept as the placeholder, issue 31.11)
    def test_blank_lines_are_skipped(self):
        r = self.run_isola("map", "tools:double", "--ordered", input="1\n\n  \n2\n\r\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "2\n\n\n4\n\n")
        self.assertIn("3 blank lines skipped", r.stderr)

    # 9. print() in the function goes to standard error
    def test_print_goes_to_stderr(self):
        r = self.run_isola("map", "tools:chatty", "--ordered", input="1\n2\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "1\n2\n")
        self.assertIn("chatter 1", r.stderr)

    # 10. a per-line timeout
    def test_timeout_interrupts_one_line(self):
        r = self.run_isola("map", "tools:forever", "--timeout", "0.5", "--chunk", "5",
                           input="1\n2\n3\n4\n5\n", timeout=60)
        self.assertEqual(r.returncode, 1, r.stderr)
        rows = {x["index"]: x for x in map(json.loads, r.stdout.splitlines())}
        self.assertEqual(sorted(rows), [0, 1, 2, 3, 4])
        self.assertEqual(rows[2]["error"], "TimeoutError")
        self.assertEqual([rows[i]["result"] for i in (0, 1, 3, 4)], [1, 2, 4, 5])

    # 11. help, version, NaN
    def test_help_says_what_happens(self):
        h = self.run_isola("map", "--help").stdout
        for word in ("--ordered", "--lines", "one argument", "NaN", "--timeout", "--retries",
                     "--halt", "--errors", "--joblog", "--resume", "Containment", "130",
                     "--placeholder", "abandoned", "141"):
            self.assertIn(word, h)
        self.assertIn("--version", self.run_isola("--help").stdout)

    def test_nan_is_an_error_not_bad_json(self):
        r = self.run_isola("map", "tools:nan", "--ordered", input="1\n2\n3\n")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stdout, "1\n\n3\n")
        self.assertIn("cannot be written as JSON", r.stderr)

    # what users of GNU parallel and multiprocessing look for
    def test_retries(self):
        marker = self.path("flaky.marker")
        r = self.run_isola("map", "tools:flaky", "--ordered", input=json.dumps(marker) + "\n")
        self.assertEqual(r.returncode, 1)
        os.unlink(marker)
        r = self.run_isola("map", "tools:flaky", "--ordered", "--retries", "1",
                           input=json.dumps(marker) + "\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, '"ok"\n')

    def test_halt_stops_early(self):
        data = "".join(f"{i}\n" for i in range(5000))
        r = self.run_isola("map", "tools:boom", "--halt", "1", "--chunk", "1", "-j", "1",
                           input=data)
        self.assertEqual(r.returncode, 1)
        self.assertIn("halted", r.stderr)
        self.assertLess(len(r.stdout.splitlines()), 5000)

    def test_several_input_files(self):
        a = self.write("a.jsonl", "1\n2\n")
        b = self.write("b.jsonl", "3\n{oops\n")
        r = self.run_isola("map", "tools:double", a, "--in", b, "--ordered")
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stdout, "2\n4\n6\n\n")
        self.assertIn("b.jsonl:2 (index 3)", r.stderr)

    def test_os_exit_and_sys_exit_fail_their_line(self):
        r = self.run_isola("map", "tools:quit", "--ordered", input="1\n2\n3\n4\n")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(r.stdout, "1\n\n\n4\n")
        self.assertIn("os._exit(5)", r.stderr)
        self.assertIn("SystemExit: bye", r.stderr)

    def test_usage_errors_are_short(self):
        r = self.run_isola("map", "tools:double", "-j", "0")
        self.assertEqual(r.returncode, 2)
        self.assertIn("-j takes a number from 1 to 1024", r.stderr)
        self.assertLess(len(r.stderr.splitlines()), 5)
        r = self.run_isola("map", "tools:double", "--resume")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--resume needs --joblog", r.stderr)
        r = self.run_isola("map", "tools:double", "-j2", "--timeout=1", "--ordered", input="1\n")
        self.assertEqual((r.returncode, r.stdout), (0, "2\n"), r.stderr)


    # the progress bar: drawn when standard error is a terminal, never otherwise
    def test_progress_bar_on_a_terminal(self):
        import pty
        src = self.write("bar_in.txt", "".join(f"{i}\n" for i in range(300)))
        master, slave = pty.openpty()
        try:
            p = subprocess.Popen([self.isola, "map", "tools:slow", "--in", src, "--out",
                                  self.path("bar_out.jsonl"), "-j", "2"],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=slave, cwd=self.dir)
            os.close(slave)
            slave = None
            seen = b""
            while True:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                seen += chunk
            self.assertEqual(p.wait(timeout=60), 0, seen)
        finally:
            if slave is not None:
                os.close(slave)
            os.close(master)
        text = seen.decode(errors="replace")
        self.assertIn("\r[", text)           # redrawn in place
        self.assertIn("/300", text)           # knows the total of a regular file
        self.assertIn("300/300", text)        # the final state is drawn
        self.assertRegex(text, r"\d+/s")      # a rate
        r = self.run_isola("map", "tools:slow", "--in", src, "--out", self.path("b2.jsonl"))
        self.assertNotIn("\r[", r.stderr)    # not a terminal: no bar


    # -- issue 30 and 31 ---------------------------------------------------

    # 30.4: a line stuck in a C call that cannot be interrupted is
    # abandoned after the grace: the run still ends with 143 (130)
    def test_signal_stops_a_call_stuck_in_c(self):
        out, started = self.path("nap.out"), self.path("nap.started")
        if os.path.exists(started):
            os.unlink(started)
        p = self.popen("map", "tools:nap", self.write("nap.in", "0\n1\n"), "--ordered", "-j", "2",
                       "--chunk", "1", "--out", out, "--joblog", self.path("nap.log"))
        self.wait_for_lines(out, 1)
        self.wait_for_lines(started, 0)  # line 1 has started (and blocks in C)
        p.send_signal(signal.SIGTERM)  # a grace, the interrupt, a grace, abandoned
        _, err = self.finish(p)
        self.assertEqual(p.returncode, 143, err)
        self.assertIn("stopped by SIGTERM", err)
        self.assertIn("abandoned", err)
        self.assertNotIn("Traceback", err)
        self.assertEqual(self.read("nap.out"), "0\n")
        # each further signal takes the next step at once
        os.unlink(started)
        p = self.popen("map", "tools:nap", self.write("nap1.in", "1\n"), "-j", "1",
                       stdout=subprocess.PIPE)
        self.wait_for_lines(started, 0)
        for _ in range(3):
            p.send_signal(signal.SIGINT)
            time.sleep(0.2)
        t0 = time.monotonic()
        _, err = self.finish(p)
        self.assertEqual(p.returncode, 130, err)
        self.assertIn("abandoned", err)
        self.assertLess(time.monotonic() - t0, 30, "stopped in steps, not by the hard timeout")

    # 30.4: --timeout on a call that cannot be interrupted: the line fails
    # after --timeout and the grace, the other lines of its task run again
    # elsewhere, its worker is given up on; with every worker stuck the run
    # stops
    def test_timeout_gives_up_on_a_call_stuck_in_c(self):
        src = self.write("nap4.in", "0\n1\n0\n0\n")
        p = self.popen("map", "tools:nap", src, "-j", "2", "--chunk", "4", "--timeout", "0.5",
                       "--ordered", "--placeholder", "null", stdout=subprocess.PIPE)
        out, err = self.finish(p)
        self.assertEqual(p.returncode, 1, err)
        self.assertEqual(out, "0\nnull\n0\n0\n")
        self.assertIn("(index 1): TimeoutError", err)
        self.assertIn("could not be interrupted", err)
        self.assertIn("abandoned", err)
        p = self.popen("map", "tools:nap", src, "-j", "1", "--timeout", "0.5",
                       stdout=subprocess.PIPE)
        out, err = self.finish(p)
        self.assertEqual(p.returncode, 1, err)
        self.assertIn("every worker is stuck", err)
        self.assertEqual([json.loads(l).get("error") for l in out.splitlines()], ["TimeoutError"])

    def test_timeout_clock_starts_again_for_a_retry(self):
        # a retry gets its own --timeout: the line is not given up on
        # --timeout + STOP_GRACE after its first call started
        marker = self.path("twice.marker")
        if os.path.exists(marker):
            os.unlink(marker)
        r = self.run_isola("map", "tools:twice", "--ordered", "--timeout", "2.5", "--retries", "1",
                           input=json.dumps(marker) + "\n", timeout=60)
        self.assertEqual((r.returncode, r.stdout), (0, '"ok"\n'), r.stderr)

    # 30.5: --ordered output stays a prefix of the input order when a run
    # stops with a chunk unfinished, and --resume completes it in order
    def test_ordered_stop_keeps_a_prefix_and_resume_completes_it(self):
        done = self.path("lag.done")
        if os.path.exists(done):
            os.unlink(done)
        data = self.write("lag.in", "".join(f"{i}\n" for i in range(200)))
        out, log = self.path("lag.out"), self.path("lag.log")
        args = ["map", "tools:lag", data, "--ordered", "--out", out, "--joblog", log,
                "-j", "2", "--chunk", "5"]
        p = self.popen(*args)
        self.wait_for_lines(out, 40)
        time.sleep(0.5)  # the other worker finishes chunks past line 40
        p.send_signal(signal.SIGINT)
        time.sleep(0.2)
        p.send_signal(signal.SIGINT)  # interrupt the spinning line at once
        _, err = self.finish(p)
        self.assertEqual(p.returncode, 130, err)
        lines = self.read("lag.out").splitlines()
        self.assertEqual(lines, [str(i) for i in range(len(lines))], "a prefix of the input")
        self.assertEqual(len(lines), 40)
        open(done, "w").close()
        r = self.run_isola(*args, "--resume")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.read("lag.out").splitlines(), [str(i) for i in range(200)])

    # 30.5: a run that ended between writing a part and logging it (a
    # crash, SIGKILL): --resume cuts the output back to what the joblog
    # lists, and a joblog line cut short is not done
    def test_resume_after_a_run_killed_between_output_and_joblog(self):
        data = self.write("kill.in", "".join(f"{i}\n" for i in range(10)))
        out, log, err = self.path("kill.out"), self.path("kill.log"), self.path("kill.err")
        args = ["map", "tools:boom", data, "--ordered", "--chunk", "3", "--out", out,
                "--joblog", log, "--errors", err]
        r = self.run_isola(*args)
        self.assertEqual(r.returncode, 1, r.stderr)
        expected = (self.read("kill.out"), self.read("kill.err"))
        with open(log) as f:
            logged = f.read()
        # the last part's log line is cut short and the output has more
        with open(log, "w") as f:
            f.write(logged[:-3])
        with open(out, "a") as f:
            f.write("written but never logged\n")
        with open(err, "a") as f:
            f.write('{"index": 99}\n')
        r = self.run_isola(*args, "--resume")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual((self.read("kill.out"), self.read("kill.err")), expected)
        self.assertIn("1 items", r.stderr)  # the one line of the last part, again
        r = self.run_isola(*args, "--resume")
        self.assertEqual(r.returncode, 0, r.stderr)  # all done: the joblog is whole
        self.assertEqual(self.read("kill.out"), expected[0])

    # 30.9: a joblog that cannot be written is an output error (exit 2)
    def test_joblog_on_a_full_disk(self):
        if not os.path.exists("/dev/full"):
            self.skipTest("no /dev/full")
        r = self.run_isola("map", "tools:double", "--joblog", "/dev/full", "--out",
                           self.path("full.out"), input="1\n2\n")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("No space left on device", r.stderr)
        self.assertNotIn("Traceback", r.stderr)
        self.assertNotIn("Exception ignored", r.stderr)

    # 30, contracts: --halt N counts failed lines, not chunks
    def test_halt_counts_lines(self):
        data = "".join(f"{i}\n" for i in range(300))  # every odd line fails
        r = self.run_isola("map", "tools:boom", "--halt", "3", "--chunk", "100", "-j", "1",
                           input=data)
        self.assertEqual(r.returncode, 1, r.stderr)
        rows = [json.loads(l) for l in r.stdout.splitlines()]
        # Three failed lines, not a chunk's 50: which three depends on
        # which chunk ended first (unordered; on a contended machine a
        # call routed to the one worker may run after the next one).
        failed = sorted(x["index"] for x in rows if "error" in x)
        self.assertEqual(len(failed), 3, failed)
        self.assertTrue(all(i % 2 == 1 for i in failed), failed)
        self.assertEqual(failed[2] - failed[0], 4, failed)  # consecutive, in one chunk
        self.assertIn("halted after 3 failed lines", r.stderr)
        r = self.run_isola("map", "tools:boom", "--halt", "3", "--chunk", "100", "-j", "1",
                           "--ordered", "--errors", self.path("halt.err"), input=data)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(r.stdout, "0\n\n2\n\n4\n\n")
        self.assertEqual([json.loads(l)["index"] for l in self.read("halt.err").splitlines()],
                         [1, 3, 5])

    # 31.10: `isola map ... | head` ends quietly
    def test_closed_pipe_stops_quietly(self):
        data = self.write("many.in", "".join(f"{i}\n" for i in range(200000)))
        p = self.popen("map", "tools:double", data, "--ordered", stdout=subprocess.PIPE)
        first = p.stdout.readline()
        p.stdout.close()
        _, err = self.finish(p)
        self.assertEqual(first, "0\n")
        self.assertEqual(p.returncode, 141, err)  # as a tool killed by SIGPIPE
        self.assertEqual(err, "")

    # 31.11: --ordered keeps output line N for input line N
    def test_ordered_output_stays_aligned(self):
        inp = "1\n\n3\n{bad\n5\n" * 3
        r = self.run_isola("map", "tools:boom", "--ordered", "--chunk", "4", input=inp)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stdout.split("\n")[:-1], ["", "", "", "", ""] * 3)
        r = self.run_isola("map", "tools:double", "--ordered", "--placeholder", "null",
                           input=inp)
        self.assertEqual(r.returncode, 1)
        self.assertEqual([json.loads(l) for l in r.stdout.splitlines()],
                         [2, None, 6, None, 10] * 3)
        r = self.run_isola("map", "tools:double", "--placeholder", "null", input="1\n")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--placeholder goes with --ordered", r.stderr)

# -- issue #33: the process lane -----------------------------------------------

# Targets a sub-interpreter refuses: lanetools imports the tests' single-phase
# extension (tests/singlephase_ext.c, as numpy does for real) at import,
# lazytools inside the call, for some lines only.
LANE_TOOLS = r"""
import os, signal, sys, time
import singlephase_ext

def double(x):
    return 2 * x

def where(x):
    return [2 * x, os.getpid()]

def mixed(x):
    # one run, every kind of line
    if x == 2:
        import ctypes
        ctypes.string_at(0)  # SIGSEGV
    if x == 3:
        os._exit(5)
    if x == 4:
        sys.exit("bye")
    if x == 5:
        raise KeyError(x)
    if x == 6:
        print("chatter", x)
        sys.stdout.flush()
    return 2 * x

def spin(x):
    while x == 3:
        pass
    return x

def nap(x):
    if x == 3:
        time.sleep(3600)  # a SIGALRM ends it in a process worker
    return x

def stuck(x):
    # a call that ignores signals, as a C call that never checks them
    if x:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGALRM})
        open("stuck.started", "w").close()
        time.sleep(3600)
    return x

def slow(x):
    time.sleep(0.01)
    return x

def boom(x):
    if x % 2:
        raise KeyError(x)
    return x

def translate(word):
    import isola
    table = isola.lookup("vocab")
    return [type(table).__name__, table.get(word, "?")]
"""

LAZY_TOOLS = r"""
import os

def triple(x):
    if x % 100 == 99:  # a refusal in the middle of the run
        import singlephase_ext
    return [3 * x, os.getpid()]
"""

# A package that catches the refusal and falls back (as msgpack does): a
# silent fallback, said once by --lane auto.
FALLBACK_TOOLS = r"""
try:
    from singlephase_ext import impl
    IMPL = impl()
except ImportError:
    IMPL = "python"

def which(x):
    return [IMPL, 2 * x]
"""

try:
    import importlib.util
    HAVE_EXT = importlib.util.find_spec("singlephase_ext") is not None
except ImportError:
    HAVE_EXT = False


def lane_children(parent):
    """Live processes running isola._proc_worker for parent (the pid is
    their last argument)."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        argv = [a for a in argv if a]
        if b"isola._proc_worker" in argv and argv[-1] == str(parent).encode():
            found.append(int(d))
    return found


@unittest.skipIf(IN_SUB or not BUILD, "needs ISOLA_BUILD_DIR and subprocesses")
@unittest.skipIf(os.environ.get("ISOLA_SKIP_CLI_TESTS"), "the command line is tested with the newest Python only (scripts/test)")
@unittest.skipUnless(HAVE_EXT, "singlephase_ext is built by the test suite (PYTHONPATH)")
class MapCliProcessLane(_CliCase):
    """isola map with targets that refuse sub-interpreters (issue #33).
    Each case runs the command as a subprocess with a hard timeout."""
    FILES = {"tools.py": TOOLS, "lanetools.py": LANE_TOOLS, "lazytools.py": LAZY_TOOLS,
             "fallbacktools.py": FALLBACK_TOOLS}

    def warnings_in(self, err):
        return [l for l in err.splitlines() if "does not support sub-interpreters" in l]

    def test_auto_moves_to_processes_with_one_warning(self):
        data = "".join(f"{i}\n" for i in range(2000))
        p = self.popen("map", "lanetools:where", "--ordered", "-j", "2", stdin=subprocess.PIPE,
                       stdout=subprocess.PIPE)
        out, err = self.finish(p, 120, data)
        self.assertEqual(p.returncode, 0, err)
        rows = [json.loads(l) for l in out.splitlines()]
        self.assertEqual([r[0] for r in rows], [2 * i for i in range(2000)])
        pids = {r[1] for r in rows}
        self.assertNotIn(p.pid, pids)  # the launcher execs: p.pid is the engine
        self.assertLessEqual(len(pids), 2)
        warned = self.warnings_in(err)
        self.assertEqual(len(warned), 1, err)
        self.assertIn("singlephase_ext", warned[0])
        self.assertIn("lanetools:where", warned[0])
        self.assertEqual(lane_children(p.pid), [])  # none left behind
        # a refusal in the middle of the run (an import inside FUNC): the
        # chunks refused move, every line once, in order
        data = "".join(f"{i}\n" for i in range(1000))
        p = self.popen("map", "lazytools:triple", "--ordered", "-j", "2", "--chunk", "7",
                       stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        out, err = self.finish(p, 120, data)
        self.assertEqual(p.returncode, 0, err)
        rows = [json.loads(l) for l in out.splitlines()]
        self.assertEqual([r[0] for r in rows], [3 * i for i in range(1000)])
        self.assertEqual(rows[0][1], p.pid)  # in an interpreter (of the engine's process)
        # chunks already sent to interpreters when line 99 was refused end
        # there (5 chunks of 7 in flight with -j 2); every later one is moved
        self.assertTrue(all(r[1] != p.pid for r in rows[99 + 7 * 7:]),
                        "after the refusal every line ran in a process worker")
        self.assertEqual(len(self.warnings_in(err)), 1, err)
        r = self.run_isola("map", "lazytools:triple", "-j", "2", "--chunk", "3", input=data)
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = [json.loads(l) for l in r.stdout.splitlines()]
        self.assertEqual(sorted(x["index"] for x in rows), list(range(1000)))
        self.assertTrue(all(x["result"][0] == 3 * x["index"] for x in rows))

    def test_lane_interpreter_keeps_the_error(self):
        r = self.run_isola("map", "lanetools:double", "--lane", "interpreter", input="1\n")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("does not support loading in subinterpreters", r.stderr)
        self.assertIn("--lane process", r.stderr)
        r = self.run_isola("map", "lazytools:triple", "--lane", "interpreter", "--ordered",
                           input="98\n99\n100\n")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual([l and json.loads(l)[0] for l in r.stdout.split("\n")[:-1]],
                         [294, "", 300])
        self.assertIn("(index 1): ImportError", r.stderr)
        self.assertEqual(self.warnings_in(r.stderr), [])
        r = self.run_isola("map", "tools:double", "--lane", "interpreter", "--processes", "2")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--processes", r.stderr)
        r = self.run_isola("map", "tools:double", "--lane", "threads")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--lane takes one of auto, interpreter, process", r.stderr)

    def test_lane_process_from_the_start(self):
        for module in ("lanetools:where", "lazytools:triple"):  # refused or not
            p = self.popen("map", module, "--ordered", "--lane", "process", "--processes", "3",
                           "-j", "1", "--chunk", "1", stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE)
            out, err = self.finish(p, 120, "".join(f"{i}\n" for i in range(99)))
            self.assertEqual(p.returncode, 0, err)
            rows = [json.loads(l) for l in out.splitlines()]
            k = 2 if module == "lanetools:where" else 3
            self.assertEqual([r[0] for r in rows], [k * i for i in range(99)])
            pids = {r[1] for r in rows}
            self.assertNotIn(p.pid, pids)
            self.assertLessEqual(len(pids), 3)
            self.assertEqual(self.warnings_in(err), [])  # asked for: no warning
        # a --preload a sub-interpreter refuses: auto moves, process starts there
        for lane in ("auto", "process"):
            r = self.run_isola("map", "tools:double", "--preload", "singlephase_ext", "--lane",
                               lane, "--ordered", input="1\n2\n")
            self.assertEqual((r.returncode, r.stdout), (0, "2\n4\n"), r.stderr)
            self.assertEqual(len(self.warnings_in(r.stderr)), lane == "auto", r.stderr)
        r = self.run_isola("map", "no_such_module_qq:f", "--lane", "process", input="1\n")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("No module named 'no_such_module_qq'", r.stderr)

    def test_a_silent_fallback_is_said_once_in_the_commands_words(self):
        data = "".join(f"{i}\n" for i in range(50))
        for lane, impl, said in (("auto", "python", 1), ("process", "c", 0),
                                 ("interpreter", "python", 0)):
            with self.subTest(lane=lane):
                r = self.run_isola("map", "fallbacktools:which", "--ordered", "-j", "2",
                                   "--lane", lane, input=data)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual([json.loads(l) for l in r.stdout.splitlines()],
                                 [[impl, 2 * i] for i in range(50)])
                lines = [l for l in r.stderr.splitlines() if "caught that" in l]
                self.assertEqual(len(lines), said, r.stderr)
                self.assertNotIn("RuntimeWarning", r.stderr)  # not the pool's own warning
                if said:
                    self.assertIn("singlephase_ext", lines[0])
                    self.assertIn("fallbacktools:which", lines[0])
                    self.assertIn("--lane process", lines[0])

    def test_help_documents_the_lane(self):
        h = self.run_isola("map", "--help").stdout
        for word in ("--lane", "auto", "interpreter", "process", "--processes",
                     "does not support loading in subinterpreters", "WorkerCrashed"):
            self.assertIn(word, h)

    def test_failures_belong_to_their_line(self):
        # a segfault, os._exit, sys.exit, an exception: each fails its line
        # alone; print() goes to standard error
        r = self.run_isola("map", "lanetools:mixed", "--ordered", "--placeholder", "null",
                           "-j", "2", "--chunk", "4", "--errors", self.path("mixed.err"),
                           input="".join(f"{i}\n" for i in range(1, 11)))
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual([json.loads(l) for l in r.stdout.splitlines()],
                         [2, None, None, None, None, 12, 14, 16, 18, 20])
        errs = {e["index"]: e for e in map(json.loads, self.read("mixed.err").splitlines())}
        self.assertEqual(sorted(errs), [1, 2, 3, 4])
        self.assertEqual(errs[1]["error"], "isola.WorkerCrashed")
        self.assertIn("SIGSEGV", errs[1]["message"])
        self.assertIn("lanetools:mixed", errs[1]["message"])
        self.assertIn("os._exit(5)", errs[2]["message"])
        self.assertEqual((errs[3]["error"], errs[3]["message"]), ("SystemExit", "bye"))
        self.assertEqual(errs[4]["error"], "KeyError")
        self.assertIn("chatter 6", r.stderr)
        self.assertIn("4 errors", r.stderr)

    def test_timeout(self):
        # Python code and time.sleep are interrupted at --timeout (SIGALRM)
        for fn in ("spin", "nap"):
            r = self.run_isola("map", f"lanetools:{fn}", "--timeout", "0.5", "--chunk", "5",
                               input="1\n2\n3\n4\n5\n", timeout=60)
            self.assertEqual(r.returncode, 1, r.stderr)
            rows = {x["index"]: x for x in map(json.loads, r.stdout.splitlines())}
            self.assertEqual(sorted(rows), [0, 1, 2, 3, 4])
            self.assertEqual(rows[2]["error"], "TimeoutError")
            self.assertIn("was interrupted", rows[2]["message"])
            self.assertEqual([rows[i]["result"] for i in (0, 1, 3, 4)], [1, 2, 4, 5])
        # a call that ignores signals: its line fails STOP_GRACE later, its
        # process worker is killed and replaced, and the run goes on (one
        # worker: the lines after it ran in the new one)
        t0 = time.monotonic()
        p = self.popen("map", "lanetools:stuck", "-j", "1", "--chunk", "5", "--timeout", "0.5",
                       "--ordered", "--placeholder", "null", stdin=subprocess.PIPE,
                       stdout=subprocess.PIPE)
        out, err = self.finish(p, 60, "0\n1\n0\n0\n")
        self.assertEqual(p.returncode, 1, err)
        self.assertEqual(out, "0\nnull\n0\n0\n")
        self.assertIn("(index 1): TimeoutError", err)
        self.assertIn("process worker is killed", err)
        self.assertNotIn("abandoned", err)
        self.assertNotIn("every worker is stuck", err)
        self.assertLess(time.monotonic() - t0, 30)

    def test_sigint_stops_cleanly_and_resume_finishes(self):
        data = self.write("lane_int.in", "".join(f"{i}\n" for i in range(600)))
        out, log = self.path("lane_int.out"), self.path("lane_int.log")
        p = self.popen("map", "lanetools:slow", data, "--out", out, "--joblog", log, "-j", "2",
                       "--chunk", "5")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until some lines are written
            if os.path.exists(out) and os.path.getsize(out) > 200:
                break
            time.sleep(0.05)
        p.send_signal(signal.SIGINT)
        _, err = self.finish(p)
        self.assertEqual(p.returncode, 130, err)
        self.assertIn("stopped by SIGINT", err)
        self.assertEqual(lane_children(p.pid), [])
        with open(out) as f:
            rows = [json.loads(l) for l in f]  # every line whole
        self.assertLess(len(rows), 600, "the run stopped early")
        r = self.run_isola("map", "lanetools:slow", data, "--out", out, "--joblog", log,
                           "--resume", "--lane", "process")
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(out) as f:
            rows = [json.loads(l) for l in f]
        self.assertEqual(sorted(x["index"] for x in rows), list(range(600)))
        self.assertTrue(all(x["result"] == x["index"] for x in rows))

    def test_sigterm_with_a_call_that_ignores_signals(self):
        # the running task is interrupted after the grace and killed a grace
        # later: nothing is abandoned, the run ends 143 with a prefix
        started = self.path("stuck.started")
        if os.path.exists(started):
            os.unlink(started)
        out = self.path("lane_stuck.out")
        p = self.popen("map", "lanetools:stuck", self.write("lane_stuck.in", "0\n1\n0\n"),
                       "--ordered", "-j", "2", "--chunk", "1", "--out", out, "--joblog",
                       self.path("lane_stuck.log"))
        self.wait_for_lines(started, 0)
        self.wait_for_lines(out, 1)
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        _, err = self.finish(p)
        self.assertEqual(p.returncode, 143, err)
        self.assertIn("stopped by SIGTERM", err)
        self.assertNotIn("abandoned", err)
        self.assertNotIn("Traceback", err)
        self.assertEqual(self.read("lane_stuck.out"), "0\n")
        self.assertLess(time.monotonic() - t0, 30)
        self.assertEqual(lane_children(p.pid), [])

    def test_halt_shared_and_ordered(self):
        data = "".join(f"{i}\n" for i in range(300))  # every odd line fails
        r = self.run_isola("map", "lanetools:boom", "--halt", "3", "--chunk", "100", "-j", "1",
                           "--ordered", "--errors", self.path("lane_halt.err"), input=data)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(r.stdout, "0\n\n2\n\n4\n\n")
        self.assertEqual([json.loads(l)["index"]
                          for l in self.read("lane_halt.err").splitlines()], [1, 3, 5])
        self.assertIn("halted after 3 failed lines", r.stderr)
        vocab = self.write("lane_vocab.json", json.dumps({"one": 1}))
        r = self.run_isola("map", "lanetools:translate", "--ordered", "--lines",
                           "--shared", f"vocab={vocab}", input="one\ntwo\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([json.loads(l) for l in r.stdout.splitlines()],
                         [["FrozenMap", 1], ["FrozenMap", "?"]])


if __name__ == "__main__":
    unittest.main()
