/*
 * isola_cli.c - the `isola` command: map a Python function over JSON
 * lines in parallel, run a script with a ready pool, run the benchmarks.
 * Built on the public C API only (include/isola.h).
 */
#include <Python.h>
#include <errno.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "isola.h"

#ifndef ISOLA_BENCH_DIR
#define ISOLA_BENCH_DIR "bench"
#endif
#ifndef ISOLA_PYMOD_DIR /* where the isola module was built */
#define ISOLA_PYMOD_DIR ""
#endif

static const char *usage_top =
	"usage: isola COMMAND [options]\n"
	"\n"
	"Run Python on every core: one sub-interpreter per thread.\n"
	"\n"
	"commands:\n"
	"  map MODULE:FUNC   call FUNC on every input line, in parallel\n"
	"  run FILE.py       run FILE's main(pool) with a ready pool\n"
	"  bench             run the benchmark suite and print its tables\n"
	"\n"
	"`isola COMMAND --help` for each.\n";

static const char *usage_map =
	"usage: isola map MODULE:FUNC [-j N] [--in FILE] [--out FILE] [--ordered]\n"
	"                 [--chunk K] [--path DIR]... [--preload MOD]... [--lines]\n"
	"\n"
	"Read JSON lines (or plain lines with --lines), call FUNC(value) for each in\n"
	"a pool of N interpreters, and write one JSON line per input:\n"
	"  --ordered: the results, in input order;\n"
	"  default:   {\"index\": i, \"result\": ...} as they finish.\n"
	"A failing input gives {\"index\": i, \"error\": TYPE, \"message\": MSG} and the\n"
	"run goes on; the exit code is 1 if any input failed, 2 for a setup error.\n"
	"A progress bar goes to stderr when it is a terminal; a summary line always.\n"
	"\n"
	"options:\n"
	"  -j N          interpreters (default: the number of CPUs)\n"
	"  --in FILE     input (default: stdin)      --out FILE  output (default: stdout)\n"
	"  --chunk K     inputs per task (default 64)\n"
	"  --path DIR    add DIR to the workers' sys.path (the current directory is on it)\n"
	"  --preload MOD import MOD in every worker first\n"
	"\n"
	"examples:\n"
	"  seq 1 20 | isola map math:factorial --ordered\n"
	"  printf 'a\\nb\\n' | isola map builtins:str.upper --lines --ordered\n"
	"  isola map mytools:score --in items.jsonl --out scores.jsonl -j 8\n";

static const char *usage_run =
	"usage: isola run FILE.py [-j N] [ARGS...]\n"
	"\n"
	"Import FILE (as __isola_main__, so its `if __name__ == \"__main__\":` block\n"
	"does not run), then call its main(pool) with an isola.Pool of N workers;\n"
	"sys.argv is [FILE, ARGS...].  Exit status: main's return value if an int.\n"
	"\n"
	"example:\n"
	"  isola run demos/stdlib_ast.py -j 2\n";

static const char *usage_bench =
	"usage: isola bench [--quick] [--dir DIR]\n"
	"\n"
	"Run the benchmarks (codec, channels between interpreters, pools) and print\n"
	"their tables.  DIR: where the bench_*.py files are (default: the build's).\n";

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die_usage(const char *usage, const char *fmt, const char *arg)
{
	fprintf(stderr, "isola: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n\n%s", usage);
	exit(2);
}

/* ---- msgpack helpers ------------------------------------------------- */

static void pack_str(msgpack_packer *pk, const char *s, size_t n)
{
	msgpack_pack_str_with_body(pk, s, n);
}

/* A done future's result, unpacked (the caller destroys u and clears m). */
static int unpack_result(isola_future *f, isola_msg *m, msgpack_unpacked *u)
{
	int r = isola_future_result(f, m);
	if (r != 0)
		return r;
	const void *d;
	size_t len;
	isola_msg_bytes(m, &d, &len);
	msgpack_unpacked_init(u);
	return msgpack_unpack_next(u, d, len, NULL) == MSGPACK_UNPACK_SUCCESS ? 0 : ISOLA_EDECODE;
}

/* ---- isola map ----------------------------------------------------------- */

/* Inputs per task at most: a chunk's lines are held in memory at once. */
#define MAX_CHUNK 1000000

struct chunk {
	isola_future *f;
	size_t first, n; /* input indices */
};

struct map_run {
	FILE *out;
	int ordered;
	size_t done, errors;
	size_t total; /* known input count (0: unknown) */
	double t0, last_bar;
	int bar;
};

static void progress(struct map_run *m, int final)
{
	if (!m->bar)
		return;
	double t = now_s();
	if (!final && t - m->last_bar < 0.1)
		return;
	m->last_bar = t;
	double rate = m->done / (t - m->t0 > 1e-9 ? t - m->t0 : 1e-9);
	if (m->total > 0) {
		int width = 30, filled = (int)(width * (double)m->done / (double)m->total);
		double eta = rate > 0 ? (double)(m->total - m->done) / rate : 0;
		fprintf(stderr, "\r[%.*s%*s] %zu/%zu  %.0f/s  ETA %.0fs  errors %zu ", filled,
			"##############################", width - filled, "", m->done, m->total,
			rate, eta, m->errors);
	} else {
		fprintf(stderr, "\r%zu done  %.0f/s  errors %zu ", m->done, rate, m->errors);
	}
	if (final)
		fputc('\n', stderr);
	fflush(stderr);
}

static void write_chunk(struct map_run *m, struct chunk *c)
{
	isola_future_wait(c->f, -1);
	isola_msg res;
	msgpack_unpacked u;
	int r = unpack_result(c->f, &res, &u);
	if (r != 0 || u.data.type != MSGPACK_OBJECT_ARRAY) {
		/* the whole chunk failed (cancelled, or worse): one record each */
		const char *type = "isola.Error", *msg = isola_strerror(r), *tb;
		isola_future_error(c->f, &type, &msg, &tb);
		for (size_t i = 0; i < c->n; i++) {
			fprintf(m->out, "{\"index\": %zu, \"error\": \"%s\", \"message\": \"%s\"}\n",
				c->first + i, type, "the task failed as a whole (see stderr)");
			m->errors++;
		}
		fprintf(stderr, "isola map: a chunk failed: %s: %s\n", type, msg);
		if (r == 0)
			msgpack_unpacked_destroy(&u);
		isola_msg_clear(&res);
		m->done += c->n;
		return;
	}
	msgpack_object_array a = u.data.via.array;
	for (size_t i = 0; i < a.size; i++) {
		msgpack_object_array rec = a.ptr[i].via.array;
		size_t index = c->first + i;
		if (rec.ptr[0].via.boolean) {
			msgpack_object_str s = rec.ptr[1].via.str;
			if (m->ordered)
				fprintf(m->out, "%.*s\n", (int)s.size, s.ptr);
			else
				fprintf(m->out, "{\"index\": %zu, \"result\": %.*s}\n", index,
					(int)s.size, s.ptr);
		} else {
			msgpack_object_str t = rec.ptr[1].via.str, s = rec.ptr[2].via.str;
			/* the message as a JSON string: escape what must be */
			fprintf(m->out, "{\"index\": %zu, \"error\": \"%.*s\", \"message\": \"", index,
				(int)t.size, t.ptr);
			for (size_t k = 0; k < s.size; k++) {
				unsigned char ch = (unsigned char)s.ptr[k];
				if (ch == '"' || ch == '\\')
					fprintf(m->out, "\\%c", ch);
				else if (ch < 0x20)
					fprintf(m->out, "\\u%04x", ch);
				else
					fputc(ch, m->out);
			}
			fprintf(m->out, "\"}\n");
			m->errors++;
		}
	}
	m->done += c->n;
	msgpack_unpacked_destroy(&u);
	isola_msg_clear(&res);
}

/* Submit lines[0..n) as one task. */
static int submit_chunk(isola_pool *pool, const char *target, char **lines, size_t n,
			size_t first, int plain, isola_future **f)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 4);
	pack_str(&pk, target, strlen(target));
	msgpack_pack_uint64(&pk, first);
	msgpack_pack_array(&pk, n);
	for (size_t i = 0; i < n; i++)
		pack_str(&pk, lines[i], strlen(lines[i]));
	if (plain)
		msgpack_pack_true(&pk);
	else
		msgpack_pack_false(&pk);
	isola_msg args;
	isola_msg_init(&args);
	int r = isola_msg_adopt(&args, sb.data, sb.size);
	if (r != 0) {
		msgpack_sbuffer_destroy(&sb);
		return r;
	}
	r = isola_pool_submit(pool, "isola:_cli_apply_chunk", &args, 0, f);
	isola_msg_clear(&args);
	return r;
}

/* Check target in a worker; 0, or print why not and return 2. */
static int check_target(isola_pool *pool, const char *target)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 1);
	pack_str(&pk, target, strlen(target));
	isola_msg args;
	isola_msg_init(&args);
	isola_msg_set_bytes(&args, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
	isola_future *f;
	int r = isola_pool_submit(pool, "isola:_cli_check", &args, 0, &f);
	if (r != 0) {
		isola_msg_clear(&args);
		fprintf(stderr, "isola map: %s\n", isola_strerror(r));
		return 2;
	}
	isola_future_wait(f, -1);
	r = isola_future_result(f, NULL);
	if (r != 0) {
		const char *type = "?", *msg = "", *tb;
		isola_future_error(f, &type, &msg, &tb);
		fprintf(stderr, "isola map: cannot use %s: %s: %s\n", target, type, msg);
		isola_future_release(f);
		return 2;
	}
	isola_future_release(f);
	return 0;
}

static size_t count_lines(FILE *f)
{
	size_t n = 0;
	int c, last = '\n';
	while ((c = getc(f)) != EOF) {
		if (c == '\n')
			n++;
		last = c;
	}
	if (last != '\n')
		n++;
	rewind(f);
	return n;
}

static int cmd_map(int argc, char **argv)
{
	const char *target = NULL, *in_path = NULL, *out_path = NULL;
	int workers = 0, ordered = 0, plain = 0;
	size_t chunk = 64;
	const char *paths[64], *preload[64];
	size_t npaths = 0, npre = 0;
	char cwd[4096];
	if (getcwd(cwd, sizeof(cwd)) != NULL)
		paths[npaths++] = cwd;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(usage_map, stdout);
			return 0;
		} else if (!strcmp(a, "-j") && v) {
			workers = atoi(v), i++;
			if (workers < 1)
				die_usage(usage_map, "-j takes a number >= 1, not %s", v);
		} else if (!strcmp(a, "--in") && v) {
			in_path = v, i++;
		} else if (!strcmp(a, "--out") && v) {
			out_path = v, i++;
		} else if (!strcmp(a, "--chunk") && v) {
			char *end = NULL;
			long long k = strtoll(v, &end, 10);
			if (end == v || *end != '\0' || k < 1 || k > MAX_CHUNK)
				die_usage(usage_map, "--chunk takes a number from 1 to 1000000, not %s",
					  v);
			chunk = (size_t)k, i++;
		} else if (!strcmp(a, "--path") && v && npaths < 64) {
			paths[npaths++] = v, i++;
		} else if (!strcmp(a, "--preload") && v && npre < 64) {
			preload[npre++] = v, i++;
		} else if (!strcmp(a, "--ordered")) {
			ordered = 1;
		} else if (!strcmp(a, "--lines")) {
			plain = 1;
		} else if (a[0] == '-') {
			die_usage(usage_map, "unknown or incomplete option %s", a);
		} else if (target == NULL) {
			target = a;
		} else {
			die_usage(usage_map, "unexpected argument %s", a);
		}
	}
	if (target == NULL)
		die_usage(usage_map, "%s", "map needs MODULE:FUNC");
	const char *colon = strchr(target, ':');
	if (colon == NULL || colon == target || colon[1] == '\0')
		die_usage(usage_map, "bad function name %s: expected MODULE:FUNC", target);
	FILE *in = in_path ? fopen(in_path, "r") : stdin;
	if (in == NULL) {
		fprintf(stderr, "isola map: cannot open %s: %s\n", in_path, strerror(errno));
		return 2;
	}
	FILE *out = out_path ? fopen(out_path, "w") : stdout;
	if (out == NULL) {
		fprintf(stderr, "isola map: cannot create %s: %s\n", out_path, strerror(errno));
		return 2;
	}
	if (isola_init(NULL) != 0) {
		fprintf(stderr, "isola map: cannot start Python\n");
		return 2;
	}
	isola_pool_options po = { .workers = workers,
				  .setup = { .sys_path = paths, .n_sys_path = npaths,
					     .preload = preload, .n_preload = npre } };
	isola_pool *pool;
	char *err = NULL;
	int r = isola_pool_create(&po, &pool, &err);
	if (r != 0) {
		fprintf(stderr, "isola map: starting the workers failed: %s\n", err ? err : isola_strerror(r));
		free(err);
		return 2;
	}
	if (check_target(pool, target) != 0) {
		isola_pool_destroy(pool);
		isola_fini();
		return 2;
	}
	size_t nworkers;
	isola_pool_size(pool, &nworkers);
	struct map_run m = { .out = out, .ordered = ordered, .t0 = now_s(),
			     .bar = isatty(fileno(stderr)),
			     .total = (in_path && isatty(fileno(stderr))) ? count_lines(in) : 0 };
	/* A window of chunks in flight; results are written in order of
	 * submission when --ordered, else whichever finished first. */
	size_t window = 4 * nworkers + 2;
	struct chunk *inflight = calloc(window, sizeof(*inflight));
	size_t head = 0, count = 0, index = 0;
	char **lines = calloc(chunk, sizeof(char *));
	if (inflight == NULL || lines == NULL) {
		fprintf(stderr, "isola map: out of memory for %zu chunks of %zu inputs\n", window,
			chunk);
		exit(2);
	}
	size_t nl = 0;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int eof = 0;
	while (!eof || nl > 0 || count > 0) {
		if (!eof && nl < chunk && count < window) {
			len = getline(&line, &cap, in);
			if (len < 0) {
				eof = 1;
			} else {
				while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
					line[--len] = '\0';
				lines[nl++] = strdup(line);
			}
			if (nl < chunk && !eof)
				continue;
		}
		if (nl > 0 && count < window) {
			struct chunk *c = &inflight[(head + count) % window];
			c->first = index;
			c->n = nl;
			r = submit_chunk(pool, target, lines, nl, index, plain, &c->f);
			for (size_t i = 0; i < nl; i++)
				free(lines[i]);
			if (r != 0) {
				fprintf(stderr, "isola map: submit failed: %s\n", isola_strerror(r));
				break;
			}
			index += nl;
			nl = 0;
			count++;
			continue;
		}
		if (count == 0)
			continue;
		/* Window full or input done: write a finished chunk. */
		size_t pick = head;
		if (!ordered) {
			for (;;) {
				int found = 0;
				for (size_t k = 0; k < count; k++) {
					int st;
					isola_future_state(inflight[(head + k) % window].f, &st);
					if (st >= ISOLA_FUTURE_DONE) {
						pick = (head + k) % window;
						found = 1;
						break;
					}
				}
				if (found)
					break;
				isola_future_wait(inflight[head].f, 2000000); /* 2 ms */
			}
		}
		write_chunk(&m, &inflight[pick]);
		isola_future_release(inflight[pick].f);
		/* keep the ring contiguous: move the head chunk into the gap */
		if (pick != head)
			inflight[pick] = inflight[head];
		head = (head + 1) % window;
		count--;
		progress(&m, 0);
	}
	free(line);
	free(lines);
	free(inflight);
	progress(&m, 1);
	double wall = now_s() - m.t0;
	fprintf(stderr, "isola map: %zu items, %zu errors, %.2f s, %.0f items/s\n", m.done,
		m.errors, wall, m.done / (wall > 1e-9 ? wall : 1e-9));
	fflush(out);
	if (out != stdout)
		fclose(out);
	if (in != stdin)
		fclose(in);
	isola_pool_destroy(pool);
	isola_fini();
	return m.errors > 0 || r != 0 ? 1 : 0;
}

/* ---- isola run / bench: Python in the main interpreter -------------------- */

static int run_python_main_argv(const char *source, const char *const *argv, size_t argc,
				int workers);

static int run_python_main(const char *source)
{
	return run_python_main_argv(source, NULL, 0, 0);
}

/* Run source in __main__ with _isola_run_argv = [argv...] (str, decoded
 * as the file system does) and _isola_run_workers = workers. */
static int run_python_main_argv(const char *source, const char *const *argv, size_t argc,
				int workers)
{
	if (isola_init(NULL) != 0) {
		fprintf(stderr, "isola: cannot start Python\n");
		return 2;
	}
	PyGILState_STATE g = PyGILState_Ensure();
	PyObject *main = PyImport_AddModule("__main__");
	PyObject *globals = PyModule_GetDict(main);
	PyObject *list = PyList_New((Py_ssize_t)argc);
	for (size_t i = 0; list != NULL && i < argc; i++) {
		PyObject *a = PyUnicode_DecodeFSDefault(argv[i]);
		if (a == NULL)
			Py_CLEAR(list);
		else
			PyList_SET_ITEM(list, (Py_ssize_t)i, a);
	}
	PyObject *nw = PyLong_FromLong(workers);
	PyObject *r = NULL;
	if (list != NULL && nw != NULL && PyDict_SetItemString(globals, "_isola_run_argv", list) == 0 &&
	    PyDict_SetItemString(globals, "_isola_run_workers", nw) == 0)
		r = PyRun_String(source, Py_file_input, globals, globals);
	Py_XDECREF(list);
	Py_XDECREF(nw);
	int status = 0;
	if (r == NULL) {
		if (PyErr_ExceptionMatches(PyExc_SystemExit)) {
			PyObject *exc = PyErr_GetRaisedException();
			PyObject *code = PyObject_GetAttrString(exc, "code");
			status = code && PyLong_Check(code) ? (int)PyLong_AsLong(code)
				 : code && code != Py_None  ? 1
							    : 0;
			if (code && code != Py_None && !PyLong_Check(code)) {
				PyObject *s = PyObject_Str(code);
				if (s)
					fprintf(stderr, "%s\n", PyUnicode_AsUTF8(s));
				Py_XDECREF(s);
			}
			Py_XDECREF(code);
			Py_DECREF(exc);
		} else {
			PyErr_Print();
			status = 1;
		}
	}
	Py_XDECREF(r);
	PyGILState_Release(g);
	isola_fini();
	return status;
}

/* A Python string literal for s (repr-like, for paths and args). */
static void py_literal(char *out, size_t n, const char *s)
{
	size_t k = 0;
	out[k++] = '\'';
	for (; *s && k + 5 < n; s++) {
		if (*s == '\\' || *s == '\'')
			out[k++] = '\\';
		out[k++] = *s;
	}
	out[k++] = '\'';
	out[k] = '\0';
}

/* isola run [-j N] FILE.py [-j N] [ARGS...]: the file and its arguments
 * reach Python as str objects (sys.argv), never pasted into source text,
 * so any argument (newlines, quotes, any length, any number) arrives as
 * it was given. */
static int cmd_run(int argc, char **argv)
{
	const char *file = NULL;
	int workers = 0, first_arg = argc;
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			fputs(usage_run, stdout);
			return 0;
		}
		if (!strcmp(argv[i], "-j") && i + 1 < argc) {
			workers = atoi(argv[++i]);
			if (workers < 1)
				die_usage(usage_run, "-j takes a number >= 1, not %s", argv[i]);
		} else if (file == NULL) {
			file = argv[i];
		} else {
			first_arg = i;
			break;
		}
	}
	if (file == NULL)
		die_usage(usage_run, "%s", "run needs FILE.py");
	if (access(file, R_OK) != 0) {
		fprintf(stderr, "isola run: cannot read %s: %s\n", file, strerror(errno));
		return 2;
	}
	static const char src[] =
		"import importlib.util, os, sys\n"
		"import isola\n"
		"path = os.path.abspath(_isola_run_argv[0])\n"
		"sys.argv = [path] + _isola_run_argv[1:]\n"
		"sys.path.insert(0, os.path.dirname(path))\n"
		"spec = importlib.util.spec_from_file_location('__isola_main__', path)\n"
		"mod = importlib.util.module_from_spec(spec)\n"
		"sys.modules['__isola_main__'] = mod\n"
		"spec.loader.exec_module(mod)\n"
		"main = getattr(mod, 'main', None)\n"
		"if not callable(main):\n"
		"    raise SystemExit(f'isola run: {path} has no main(pool) function')\n"
		"import __main__\n"
		"__main__.__file__ = path  # workers import the script from here\n"
		"with isola.Pool(_isola_run_workers or None) as pool:\n"
		"    rv = main(pool)\n"
		"raise SystemExit(rv if isinstance(rv, int) else 0)\n";
	const char **av = malloc(sizeof(char *) * (size_t)(argc - first_arg + 1));
	if (av == NULL)
		return 2;
	av[0] = file;
	for (int i = first_arg; i < argc; i++)
		av[1 + i - first_arg] = argv[i];
	int r = run_python_main_argv(src, av, (size_t)(argc - first_arg + 1), workers);
	free(av);
	return r;
}

static int cmd_bench(int argc, char **argv)
{
	const char *dir = ISOLA_BENCH_DIR;
	int quick = 0;
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			fputs(usage_bench, stdout);
			return 0;
		} else if (!strcmp(argv[i], "--quick")) {
			quick = 1;
		} else if (!strcmp(argv[i], "--dir") && i + 1 < argc) {
			dir = argv[++i];
		} else {
			die_usage(usage_bench, "unknown option %s", argv[i]);
		}
	}
	char lit[4096], src[16384];
	py_literal(lit, sizeof(lit), dir);
	/* Each benchmark runs as its own process of the matching Python (they
	 * start process pools, which need a real interpreter executable). */
	char mod_lit[4096];
	py_literal(mod_lit, sizeof(mod_lit), ISOLA_PYMOD_DIR);
	snprintf(src, sizeof(src),
		 "import os, shutil, subprocess, sys\n"
		 "exe = shutil.which(f'python{sys.version_info[0]}.{sys.version_info[1]}')\n"
		 "if not exe:\n"
		 "    raise SystemExit('isola bench: python%%d.%%d not found' %% sys.version_info[:2])\n"
		 "d = os.path.abspath(%s)\n"
		 "env = dict(os.environ)\n"
		 "env['PYTHONPATH'] = os.pathsep.join([%s, d, env.get('PYTHONPATH', '')])\n"
		 "status = 0\n"
		 "for name in ('bench_codec.py', 'bench_interp.py', 'bench_pool.py'):\n"
		 "    path = os.path.join(d, name)\n"
		 "    if not os.path.exists(path):\n"
		 "        raise SystemExit(f'isola bench: {path} not found (use --dir)')\n"
		 "    print(f'== {name}', flush=True)\n"
		 "    r = subprocess.run([exe, path] + (['--quick'] if %d else []), env=env)\n"
		 "    status = status or r.returncode\n"
		 "    print(flush=True)\n"
		 "raise SystemExit(status)\n",
		 lit, mod_lit, quick);
	return run_python_main(src);
}

int main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		fputs(usage_top, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (!strcmp(argv[1], "map"))
		return cmd_map(argc - 2, argv + 2);
	if (!strcmp(argv[1], "run"))
		return cmd_run(argc - 2, argv + 2);
	if (!strcmp(argv[1], "bench"))
		return cmd_bench(argc - 2, argv + 2);
	fprintf(stderr, "isola: unknown command %s\n\n%s", argv[1], usage_top);
	return 2;
}
