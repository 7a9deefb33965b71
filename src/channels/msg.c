/* msg.c - message payloads (inline or one owned buffer) and references. */
#include "channels/channel.h"

#include "common/alloc.h"

#include <string.h>

int isola_msg_init(isola_msg *msg)
{
	if (msg == NULL)
		return ISOLA_EINVAL;
	msg->len_ = 0;
	msg->nrefs_ = 0;
	msg->heap_ = 0;
	msg->reserved_ = 0;
	return 0;
}

static void free_payload(isola_msg *msg)
{
	if (msg->heap_) {
		isola__free(msg->u_.heap);
		isola__note_freed(msg->len_); /* alloc.h: giving freed memory back */
	}
	msg->heap_ = 0;
	msg->len_ = 0;
}

int isola_msg_clear(isola_msg *msg)
{
	if (msg == NULL)
		return 0;
	free_payload(msg);
	for (unsigned i = 0; i < msg->nrefs_; i++)
		isola__ref_release(msg->refs_[i]);
	msg->nrefs_ = 0;
	return 0;
}

int isola_msg_set_bytes(isola_msg *msg, const void *data, size_t len)
{
	if (msg == NULL || (data == NULL && len > 0))
		return ISOLA_EINVAL;
	if (len > ISOLA_MSG_MAX_LEN)
		return ISOLA_ETOOBIG;
	if (len <= ISOLA_MSG_INLINE) {
		/* data may alias the old payload only if it is heap: copy
		 * first, then free. */
		unsigned char tmp[ISOLA_MSG_INLINE];
		if (len > 0)
			memcpy(tmp, data, len);
		free_payload(msg);
		if (len > 0)
			memcpy(msg->u_.inline_, tmp, len);
		msg->len_ = (uint32_t)len;
		return 0;
	}
	void *buf = isola__malloc(len);
	if (buf == NULL)
		return ISOLA_ENOMEM;
	memcpy(buf, data, len);
	free_payload(msg);
	msg->u_.heap = buf;
	msg->heap_ = 1;
	msg->len_ = (uint32_t)len;
	return 0;
}

int isola_msg_adopt(isola_msg *msg, void *buf, size_t len)
{
	if (msg == NULL || buf == NULL)
		return ISOLA_EINVAL;
	if (len > ISOLA_MSG_MAX_LEN)
		return ISOLA_ETOOBIG;
	free_payload(msg);
	msg->u_.heap = buf;
	msg->heap_ = 1;
	msg->len_ = (uint32_t)len;
	return 0;
}

int isola_msg_bytes(const isola_msg *msg, const void **data, size_t *len)
{
	if (msg == NULL || data == NULL || len == NULL)
		return ISOLA_EINVAL;
	*data = msg->heap_ ? msg->u_.heap : msg->u_.inline_;
	*len = msg->len_;
	return 0;
}

static int attach(isola_msg *msg, void *ptr, int kind)
{
	if (msg == NULL || ptr == NULL)
		return ISOLA_EINVAL;
	if (msg->nrefs_ >= ISOLA_MSG_MAX_REFS)
		return ISOLA_ELIMIT;
	uintptr_t ref = (uintptr_t)ptr | (uintptr_t)kind;
	isola__ref_retain(ref);
	msg->refs_[msg->nrefs_++] = ref;
	return 0;
}

int isola_msg_attach_blob(isola_msg *msg, isola_blob *blob)
{
	return attach(msg, blob, ISOLA_REF_BLOB);
}

int isola_msg_attach_channel(isola_msg *msg, isola_channel *ch)
{
	return attach(msg, ch, ISOLA_REF_CHANNEL);
}

int isola_msg_ref_count(const isola_msg *msg, size_t *n)
{
	if (msg == NULL || n == NULL)
		return ISOLA_EINVAL;
	*n = msg->nrefs_;
	return 0;
}

int isola_msg_ref(const isola_msg *msg, size_t i, int *kind, void **ptr)
{
	if (msg == NULL || kind == NULL || ptr == NULL || i >= msg->nrefs_)
		return ISOLA_EINVAL;
	*kind = (int)(msg->refs_[i] & ISOLA__REF_KIND_MASK);
	*ptr = (void *)(msg->refs_[i] & ~ISOLA__REF_KIND_MASK);
	return 0;
}

void isola__ref_retain(uintptr_t ref)
{
	void *p = (void *)(ref & ~ISOLA__REF_KIND_MASK);
	if ((ref & ISOLA__REF_KIND_MASK) == ISOLA_REF_CHANNEL)
		isola_channel_retain(p);
	else
		isola_blob_retain(p);
}

void isola__ref_release(uintptr_t ref)
{
	void *p = (void *)(ref & ~ISOLA__REF_KIND_MASK);
	if ((ref & ISOLA__REF_KIND_MASK) == ISOLA_REF_CHANNEL)
		isola_channel_release(p);
	else
		isola_blob_release(p);
}

void isola__msg_move(isola_msg *dst, isola_msg *src)
{
	/* Copy only the live parts: header, payload (or pointer), refs. */
	dst->len_ = src->len_;
	dst->nrefs_ = src->nrefs_;
	dst->heap_ = src->heap_;
	dst->reserved_ = 0;
	if (src->heap_)
		dst->u_.heap = src->u_.heap;
	else if (src->len_ > 0)
		memcpy(dst->u_.inline_, src->u_.inline_, src->len_);
	if (src->nrefs_ > 0)
		memcpy(dst->refs_, src->refs_, src->nrefs_ * sizeof(uintptr_t));
	src->len_ = 0;
	src->nrefs_ = 0;
	src->heap_ = 0;
}

int isola__msg_copy(isola_msg *dst, const isola_msg *src)
{
	const void *p = src->heap_ ? src->u_.heap : src->u_.inline_;
	isola_msg_init(dst);
	int r = isola_msg_set_bytes(dst, p, src->len_);
	for (unsigned i = 0; r == 0 && i < src->nrefs_; i++) {
		isola__ref_retain(src->refs_[i]);
		dst->refs_[dst->nrefs_++] = src->refs_[i];
	}
	if (r != 0)
		isola_msg_clear(dst);
	return r;
}

bool isola__msg_is_empty(const isola_msg *msg)
{
	return msg->len_ == 0 && msg->nrefs_ == 0;
}

size_t isola__msg_nrefs(const isola_msg *msg)
{
	return msg->nrefs_;
}

void isola__msg_drop_refs(isola_msg *msg, size_t keep)
{
	while (msg->nrefs_ > keep)
		isola__ref_release(msg->refs_[--msg->nrefs_]);
}
