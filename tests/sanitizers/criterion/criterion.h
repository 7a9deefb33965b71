/*
 * A minimal in-process stand-in for Criterion, used ONLY for the
 * ThreadSanitizer build: Criterion's sandbox cannot start under TSan
 * (Snaipe/Criterion#274, "Could not initialize inheritable arena").
 * The tests compile unchanged against it; it runs them one after the
 * other in this process and prints Criterion's synthesis line.
 */
#ifndef ISOLA_TSAN_CRITERION_SHIM_H
#define ISOLA_TSAN_CRITERION_SHIM_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct shim_test {
	const char *suite, *name;
	void (*fn)(void);
	struct shim_test *next;
};
static struct shim_test *shim_tests, **shim_tail = &shim_tests;
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

#define SHIM_REGISTER(id, suite, name, fn)                                    \
	static struct shim_test id##_t = { #suite, #name, fn, NULL };         \
	__attribute__((constructor)) static void id##_reg(void)               \
	{                                                                     \
		shim_register(&id##_t);                                       \
	}

#define Test(suite, name, ...)                                                \
	static void suite##_##name(void);                                     \
	SHIM_REGISTER(suite##_##name##_s, suite, name, suite##_##name)        \
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

int main(void)
{
	int n = 0;
	for (struct shim_test *t = shim_tests; t != NULL; t = t->next, n++) {
		fprintf(stderr, "[RUN ] %s::%s\n", t->suite, t->name);
		t->fn();
	}
	fprintf(stderr, "[====] Synthesis: Tested: %d | Passing: %d | Failing: 0 | Crashing: 0\n",
		n, n);
	return 0;
}
#endif
