/* test_blob.c - blobs: copy, wrap, refcounts, lifetime across threads. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>

#include "common/alloc.h"
#include "isola.h"

Test(blob, create_copies_the_bytes)
{
	char src[] = "hello blob";
	isola_blob *b = NULL;
	cr_assert_eq(isola_blob_create(src, sizeof(src), &b), 0);
	src[0] = 'X';
	const void *data;
	size_t len;
	cr_assert_eq(isola_blob_data(b, &data, &len), 0);
	cr_assert_eq(len, sizeof(src));
	cr_assert_eq(memcmp(data, "hello blob", len), 0);
	cr_assert_eq(isola_blob_release(b), 0);
}

Test(blob, empty_blob)
{
	isola_blob *b = NULL;
	cr_assert_eq(isola_blob_create(NULL, 0, &b), 0);
	const void *data;
	size_t len = 99;
	cr_assert_eq(isola_blob_data(b, &data, &len), 0);
	cr_assert_eq(len, 0);
	isola_blob_release(b);
}

Test(blob, bad_arguments)
{
	isola_blob *b = (isola_blob *)0x1;
	cr_assert_eq(isola_blob_create(NULL, 5, &b), ISOLA_EINVAL);
	cr_assert_eq(b, (isola_blob *)0x1, "output untouched on failure");
	cr_assert_eq(isola_blob_create("x", 1, NULL), ISOLA_EINVAL);
	cr_assert_eq(isola_blob_retain(NULL), ISOLA_EINVAL);
	cr_assert_eq(isola_blob_release(NULL), 0);
}

Test(blob, allocation_failure_leaves_output_alone)
{
	isola_blob *b = NULL;
	isola__alloc_fail_after(1, 0);
	cr_assert_eq(isola_blob_create("abc", 3, &b), ISOLA_ENOMEM);
	cr_assert_null(b);
	cr_assert_eq(isola_blob_create("abc", 3, &b), 0);
	isola_blob_release(b);
}

/* Helper threads record problems here; the test thread asserts on it
 * (cr_assert is not safe off the test's own thread). */
static int thread_errors;
static int freed_count;
static void count_free(void *ctx, void *data, size_t len)
{
	if (ctx != &freed_count || len != 4)
		__atomic_add_fetch(&thread_errors, 1, __ATOMIC_SEQ_CST);
	__atomic_add_fetch(&freed_count, 1, __ATOMIC_SEQ_CST);
	free(data);
}

Test(blob, wrap_frees_once_on_last_release)
{
	freed_count = 0;
	char *data = malloc(4);
	memcpy(data, "abcd", 4);
	isola_blob *b;
	cr_assert_eq(isola_blob_wrap(data, 4, count_free, &freed_count, &b), 0);
	const void *p;
	size_t len;
	isola_blob_data(b, &p, &len);
	cr_assert_eq(p, data, "wrap does not copy");
	isola_blob_retain(b);
	isola_blob_retain(b);
	isola_blob_release(b);
	isola_blob_release(b);
	cr_assert_eq(freed_count, 0);
	isola_blob_release(b);
	cr_assert_eq(freed_count, 1);
	cr_assert_eq(thread_errors, 0);
}

#define HOLDERS 8
#define ROUNDS 20000
static void *hammer(void *arg)
{
	isola_blob *b = arg;
	for (int i = 0; i < ROUNDS; i++) {
		isola_blob_retain(b);
		const void *p;
		size_t len;
		isola_blob_data(b, &p, &len);
		if (len != 4 || ((const char *)p)[0] != 'a')
			__atomic_add_fetch(&thread_errors, 1, __ATOMIC_SEQ_CST);
		isola_blob_release(b);
	}
	isola_blob_release(b); /* the reference it was given */
	return NULL;
}

Test(blob, last_release_on_any_thread_frees_exactly_once)
{
	freed_count = 0;
	char *data = malloc(4);
	memcpy(data, "abcd", 4);
	isola_blob *b;
	cr_assert_eq(isola_blob_wrap(data, 4, count_free, &freed_count, &b), 0);
	pthread_t t[HOLDERS];
	for (int i = 0; i < HOLDERS; i++) {
		isola_blob_retain(b);
		pthread_create(&t[i], NULL, hammer, b);
	}
	isola_blob_release(b);
	for (int i = 0; i < HOLDERS; i++)
		pthread_join(t[i], NULL);
	cr_assert_eq(freed_count, 1);
	cr_assert_eq(thread_errors, 0);
}

/* The registry of frozen values by name (frozen_registry.c, Python-free):
 * a name with a NUL inside is refused, not cut there (issue #30.7). */
#include "channels/blob.h"

Test(blob, registry_names_with_a_nul_are_refused)
{
	isola_blob *b = NULL;
	cr_assert_eq(isola_blob_create("img", 3, &b), 0);
	isola_frozen v = { .image = b, .offset = 0 }, *got = NULL;
	cr_assert_eq(isola_frozen_publish("blob.config", &v), 0);
	/* "blob.config\0x": 13 bytes, a NUL inside */
	cr_assert_eq(isola__frozen_publish_n("blob.config\0x", 13, &v), ISOLA_EINVAL);
	cr_assert_eq(isola__frozen_lookup_n("blob.config\0x", 13, &got), ISOLA_EINVAL);
	cr_assert_eq(isola__frozen_unpublish_n("blob.config\0x", 13), ISOLA_EINVAL);
	cr_assert_null(got);
	/* a prefix of a name, or the name plus more, is another name */
	cr_assert_eq(isola__frozen_lookup_n("blob.config", 4, &got), ISOLA_ENOTFOUND);
	cr_assert_eq(isola__frozen_lookup_n("blob.configX", 12, &got), ISOLA_ENOTFOUND);
	cr_assert_eq(isola__frozen_lookup_n("blob.config!", 11, &got), 0);
	cr_assert_eq(got->image, b);
	cr_assert_eq(isola_frozen_release(got), 0);
	cr_assert_eq(isola_frozen_unpublish("blob.config"), 0);
	cr_assert_eq(isola_frozen_unpublish("blob.config"), ISOLA_ENOTFOUND);
	cr_assert_eq(isola_blob_release(b), 0);
}

/* Giving a burst's freed message memory back (common/alloc.h): pending
 * once enough large payloads were freed, done only once the frees have
 * stopped for a moment, then no longer pending. */
Test(alloc, freed_message_memory_is_trimmed_once_the_burst_is_over)
{
	cr_assert_eq(isola__trim_if_due(), 0, "nothing freed: no trim");
	for (int i = 0; i < 300; i++) { /* 300 payloads of 64 KiB: 19 MiB */
		isola_msg m;
		isola_msg_init(&m);
		char *big = calloc(1, 64 * 1024);
		cr_assert_not_null(big);
		cr_assert_eq(isola_msg_set_bytes(&m, big, 64 * 1024), 0);
		free(big);
		isola_msg_clear(&m);
	}
	cr_assert(isola__trim_pending());
	cr_assert_eq(isola__trim_if_due(), 0, "trimmed in the middle of the burst");
	struct timespec ts = { 0, (long)ISOLA__TRIM_QUIET_NS + 20000000 };
	nanosleep(&ts, NULL);
	cr_assert_eq(isola__trim_if_due(), 1, "not trimmed after the burst");
	cr_assert(!isola__trim_pending());
	/* Small payloads are not counted. */
	for (int i = 0; i < 1000; i++) {
		isola_msg m;
		isola_msg_init(&m);
		char small[1024] = { 0 };
		cr_assert_eq(isola_msg_set_bytes(&m, small, sizeof(small)), 0);
		isola_msg_clear(&m);
	}
	cr_assert(!isola__trim_pending());
}
