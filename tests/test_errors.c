/* test_errors.c - the error list, isola_strerror() and isola_err_name(). */
#include <criterion/criterion.h>
#include <string.h>

#include "isola.h"

Test(errors, every_code_has_a_distinct_name_and_message)
{
	static const int codes[] = {
#define CODE(name, value, msg) ISOLA_##name,
		ISOLA_ERRNO_MAP(CODE)
#undef CODE
	};
	size_t n = sizeof(codes) / sizeof(codes[0]);
	cr_assert_geq(n, 10);
	for (size_t i = 0; i < n; i++) {
		cr_assert_lt(codes[i], 0, "codes are negative");
		cr_assert_str_neq(isola_strerror(codes[i]), "unknown error");
		cr_assert_str_neq(isola_err_name(codes[i]), "ISOLA_UNKNOWN");
		cr_assert_eq(strncmp(isola_err_name(codes[i]), "ISOLA_E", 7), 0);
		for (size_t j = 0; j < i; j++) {
			cr_assert_neq(codes[i], codes[j]);
			cr_assert_str_neq(isola_err_name(codes[i]),
					  isola_err_name(codes[j]));
		}
	}
}

Test(errors, known_values)
{
	cr_assert_str_eq(isola_err_name(ISOLA_ECLOSED), "ISOLA_ECLOSED");
	cr_assert_str_eq(isola_strerror(ISOLA_ECLOSED), "closed");
	cr_assert_str_eq(isola_err_name(0), "ISOLA_OK");
	cr_assert_str_eq(isola_strerror(0), "success");
}

Test(errors, unknown_codes)
{
	cr_assert_str_eq(isola_strerror(-9999), "unknown error");
	cr_assert_str_eq(isola_strerror(5), "unknown error");
	cr_assert_str_eq(isola_err_name(-9999), "ISOLA_UNKNOWN");
}
