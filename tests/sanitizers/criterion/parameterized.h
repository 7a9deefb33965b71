/* Parameterized tests for the TSan-only Criterion stand-in. */
#ifndef ISOLA_TSAN_CRITERION_SHIM_PARAM_H
#define ISOLA_TSAN_CRITERION_SHIM_PARAM_H

#include "criterion.h"

struct criterion_test_params {
	size_t size;
	void *params;
	size_t length;
};
#define cr_make_param_array(Type, Arr, Len)                                   \
	((struct criterion_test_params){ sizeof(Type), (void *)(Arr), (Len) })
#define ParameterizedTestParameters(suite, name)                              \
	static struct criterion_test_params suite##_##name##_params(void)
#define ParameterizedTest(Param, suite, name, ...)                            \
	static void suite##_##name##_body(Param);                             \
	static void suite##_##name##_all(void)                                \
	{                                                                     \
		struct criterion_test_params p = suite##_##name##_params();   \
		for (size_t i = 0; i < p.length; i++)                         \
			suite##_##name##_body(                                \
				(void *)((char *)p.params + i * p.size));     \
	}                                                                     \
	SHIM_REGISTER(suite##_##name##_s, suite, name, suite##_##name##_all)  \
	static void suite##_##name##_body(Param)
#endif
