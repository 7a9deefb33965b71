/*
 * A minimal stand-in for Criterion, used ONLY for the ThreadSanitizer
 * build: Criterion's sandbox cannot start under TSan (Snaipe/Criterion
 * #274, "Could not initialize inheritable arena").  The tests compile
 * unchanged against it.  Like Criterion, it runs each test in a forked
 * child (suite init, test, suite fini) and prints the synthesis line.
 */
#ifndef ISOLA_TSAN_CRITERION_SHIM_H
#define ISOLA_TSAN_CRITERION_SHIM_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct shim_test {
	const char *suite, *name;
	void (*fn)(void);
	struct shim_test *next;
	int signal; /* Criterion's .signal: the test passes if it dies of it */
};
struct shim_test_opts { /* the Test() options the suites use */
	int unused_;  /* lets "{ 0, __VA_ARGS__ }" be valid with no options */
	int signal;
	int timeout; /* ignored: the CI runner bounds the whole binary */
};
struct shim_suite {
	const char *name;
	void (*init)(void);
	void (*fini)(void);
	int timeout;
	struct shim_suite *next;
};
static struct shim_test *shim_tests, **shim_tail = &shim_tests;
static struct shim_suite *shim_suites;

static void shim_register(struct shim_test *t)
{
	*shim_tail = t;
	shim_tail = &t->next;
}
static void shim_fail(const char *file, int line, const char *expr)
{
	fprintf(stderr, "[FAIL] %s:%d: %s\n", file, line, expr);
	exit(1);
}

#define SHIM_REGISTER(id, suite, name, fn, ...)                               \
	static struct shim_test id##_t = { #suite, #name, fn, NULL, 0 };      \
	__attribute__((constructor)) static void id##_reg(void)               \
	{                                                                     \
		id##_t.signal = ((struct shim_test_opts){ 0, __VA_ARGS__ }).signal; \
		shim_register(&id##_t);                                       \
	}

#define TestSuite(suite, ...)                                                 \
	static struct shim_suite suite##_shim_suite = { .name = #suite, __VA_ARGS__ }; \
	__attribute__((constructor)) static void suite##_shim_suite_reg(void) \
	{                                                                     \
		suite##_shim_suite.next = shim_suites;                        \
		shim_suites = &suite##_shim_suite;                            \
	}

#define Test(suite, name, ...)                                                \
	static void suite##_##name(void);                                     \
	SHIM_REGISTER(suite##_##name##_s, suite, name, suite##_##name, ##__VA_ARGS__) \
	static void suite##_##name(void)

#define cr_assert(cond, ...)                                                  \
	do {                                                                  \
		if (!(cond))                                                  \
			shim_fail(__FILE__, __LINE__, #cond);                 \
	} while (0)
#define cr_assert_eq(a, b, ...) cr_assert((a) == (b))
#define cr_assert_neq(a, b, ...) cr_assert((a) != (b))
#define cr_assert_lt(a, b, ...) cr_assert((a) < (b))
#define cr_assert_leq(a, b, ...) cr_assert((a) <= (b))
#define cr_assert_gt(a, b, ...) cr_assert((a) > (b))
#define cr_assert_geq(a, b, ...) cr_assert((a) >= (b))
#define cr_assert_null(a, ...) cr_assert((a) == NULL)
#define cr_assert_not_null(a, ...) cr_assert((a) != NULL)
#define cr_assert_str_eq(a, b, ...) cr_assert(strcmp((a), (b)) == 0)
#define cr_assert_str_neq(a, b, ...) cr_assert(strcmp((a), (b)) != 0)
#define cr_assert_float_eq(a, b, eps, ...) cr_assert(fabs((double)(a) - (double)(b)) <= (eps))
#define cr_log_info(...) (fprintf(stderr, __VA_ARGS__), fputc('\n', stderr))
#define cr_skip_test(...)                                                     \
	do {                                                                  \
		fprintf(stderr, "[SKIP] " __VA_ARGS__);                       \
		fputc('\n', stderr);                                          \
		exit(0);                                                      \
	} while (0)

static struct shim_suite *shim_find_suite(const char *name)
{
	for (struct shim_suite *s = shim_suites; s != NULL; s = s->next)
		if (strcmp(s->name, name) == 0)
			return s;
	return NULL;
}

int main(void)
{
	int n = 0, passed = 0;
	for (struct shim_test *t = shim_tests; t != NULL; t = t->next, n++) {
		fprintf(stderr, "[RUN ] %s::%s\n", t->suite, t->name);
		fflush(stderr);
		pid_t pid = fork();
		if (pid == 0) {
			struct shim_suite *s = shim_find_suite(t->suite);
			if (s && s->init)
				s->init();
			t->fn();
			if (s && s->fini)
				s->fini();
			fflush(NULL);
			_exit(0);
		}
		int status = 0;
		waitpid(pid, &status, 0);
		if (t->signal ? WIFSIGNALED(status) && WTERMSIG(status) == t->signal
			      : WIFEXITED(status) && WEXITSTATUS(status) == 0)
			passed++;
		else
			fprintf(stderr, "[FAIL] %s::%s (status %d)\n", t->suite, t->name, status);
	}
	fprintf(stderr, "[====] Synthesis: Tested: %d | Passing: %d | Failing: %d | Crashing: 0\n",
		n, passed, n - passed);
	return passed == n ? 0 : 1;
}
#endif
