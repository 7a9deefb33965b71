/* u32_messages.h - test helpers: one uint32_t per message on a channel. */
#ifndef ISOLA_TESTS_U32_MESSAGES_H
#define ISOLA_TESTS_U32_MESSAGES_H

#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "isola.h"

static inline void send_u32(isola_channel *ch, uint32_t v)
{
	isola_msg m;
	isola_msg_init(&m);
	cr_assert_eq(isola_msg_set_bytes(&m, &v, sizeof(v)), 0);
	cr_assert_eq(isola_channel_send(ch, &m, 0), 0);
}

/* Receive one (timeout as isola_channel_recv's: 0 = must be there). */
static inline uint32_t recv_u32_within(isola_channel *ch, int64_t timeout_ns)
{
	isola_msg m;
	isola_msg_init(&m);
	cr_assert_eq(isola_channel_recv(ch, &m, timeout_ns), 0);
	const void *p;
	size_t len;
	isola_msg_bytes(&m, &p, &len);
	cr_assert_eq(len, sizeof(uint32_t));
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	isola_msg_clear(&m);
	return v;
}

#endif
