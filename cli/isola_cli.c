/*
 * isola_cli.c - the `isola` command.
 *
 * The commands (map, run, bench) are written in Python (isola_cli.py,
 * isola_map.py) and run by the Python this isola was built for.  That
 * keeps a mapped function at the interpreter's own speed: Debian's
 * /usr/bin/python3.X is linked statically and runs Python code ~1.2x
 * faster than a program linked with libpython3.X.so (README, "The
 * command line").  This program only finds that Python and isola's
 * module directory and replaces itself with `python -m isola_cli ARGS`:
 * same process, so signals and the exit status are the command's own.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef ISOLA_PYTHON /* the Python isola was built for */
#error "ISOLA_PYTHON must name the Python executable"
#endif

/* Where the isola module and isola_cli.py are, from the directory of
 * this executable: in the build tree, and relative when installed (so a
 * tree installed under another prefix or DESTDIR works too). */
static int module_dir(char *out, size_t n)
{
	char self[PATH_MAX];
	ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (len <= 0)
		return -1;
	self[len] = '\0';
	char *slash = strrchr(self, '/');
	if (slash == NULL)
		return -1;
	*slash = '\0';
	int r = strcmp(self, ISOLA_BUILD_CLI_DIR) == 0
			? snprintf(out, n, "%s", ISOLA_BUILD_MODULE_DIR)
			: snprintf(out, n, "%s/%s", self, ISOLA_INSTALLED_MODULE_DIR);
	return r > 0 && (size_t)r < n ? 0 : -1;
}

int main(int argc, char **argv)
{
	char dir[PATH_MAX];
	if (module_dir(dir, sizeof(dir)) != 0) {
		fprintf(stderr, "isola: cannot find where this program is (/proc/self/exe)\n");
		return 2;
	}
	const char *old = getenv("PYTHONPATH");
	size_t n = strlen(dir) + (old ? strlen(old) + 1 : 0) + 1;
	char *path = malloc(n);
	if (path == NULL)
		return 2;
	snprintf(path, n, "%s%s%s", dir, old && *old ? ":" : "", old && *old ? old : "");
	if (setenv("PYTHONPATH", path, 1) != 0 ||
	    (getenv("ISOLA_BENCH_DIR") == NULL && setenv("ISOLA_BENCH_DIR", ISOLA_BENCH_DIR, 1) != 0)) {
		perror("isola: setenv");
		return 2;
	}
	free(path);
	char **args = calloc((size_t)argc + 3, sizeof(char *));
	if (args == NULL)
		return 2;
	args[0] = ISOLA_PYTHON;
	args[1] = "-m";
	args[2] = "isola_cli";
	for (int i = 1; i < argc; i++)
		args[i + 2] = argv[i];
	execv(ISOLA_PYTHON, args);
	fprintf(stderr, "isola: cannot run %s: %s\n", ISOLA_PYTHON, strerror(errno));
	return 2;
}
