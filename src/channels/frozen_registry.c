/*
 * frozen_registry.c - frozen values by name, process-wide (isola.publish,
 * isola_frozen_publish), like Erlang's persistent_term: written rarely,
 * read by any interpreter.  An entry holds one reference to its image;
 * a lookup takes a reference of its own, so unpublishing never frees
 * what a reader holds.  One mutex: publishing and looking up are
 * per-table operations (a worker looks a table up once, then reads it
 * without the registry).  A name is a string of bytes with no NUL in it:
 * the *_n entry points (the Python module's) take its length and refuse
 * a NUL inside, which a C string would silently cut the name at
 * ("config\0x" would be "config").
 */
#include "channels/blob.h"
#include "common/alloc.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct entry {
	char *name;
	isola_frozen value;
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct entry *entries;
static size_t n_entries, cap_entries;

/* 0 if name[0..len) is a usable name (no NUL inside), else EINVAL. */
static int check_name(const char *name, size_t len)
{
	if (name == NULL || memchr(name, '\0', len) != NULL)
		return ISOLA_EINVAL;
	return 0;
}

/* The entry named name[0..len), or NULL.  needs reg_lock */
static struct entry *find(const char *name, size_t len)
{
	for (size_t i = 0; i < n_entries; i++)
		if (strncmp(entries[i].name, name, len) == 0 && entries[i].name[len] == '\0')
			return &entries[i];
	return NULL;
}

int isola_frozen_publish(const char *name, const isola_frozen *value)
{
	return isola__frozen_publish_n(name, name ? strlen(name) : 0, value);
}

int isola__frozen_publish_n(const char *name, size_t len, const isola_frozen *value)
{
	if (check_name(name, len) != 0 || value == NULL || value->image == NULL)
		return ISOLA_EINVAL;
	char *copy = isola__malloc(len + 1);
	if (copy == NULL)
		return ISOLA_ENOMEM;
	memcpy(copy, name, len);
	copy[len] = '\0';
	pthread_mutex_lock(&reg_lock);
	struct entry *e = find(copy, len);
	if (e == NULL && n_entries == cap_entries) {
		size_t cap = cap_entries ? 2 * cap_entries : 16;
		struct entry *grown = isola__realloc(entries, cap * sizeof(*grown));
		if (grown == NULL) {
			pthread_mutex_unlock(&reg_lock);
			isola__free(copy);
			return ISOLA_ENOMEM;
		}
		entries = grown;
		cap_entries = cap;
	}
	isola_blob *old = NULL;
	if (e == NULL) {
		e = &entries[n_entries++];
		e->name = copy;
	} else {
		isola__free(copy);
		old = e->value.image;
	}
	isola_blob_retain(value->image);
	e->value = *value;
	pthread_mutex_unlock(&reg_lock);
	isola_blob_release(old); /* outside the lock: it may free an image */
	return 0;
}

int isola_frozen_unpublish(const char *name)
{
	return isola__frozen_unpublish_n(name, name ? strlen(name) : 0);
}

int isola__frozen_unpublish_n(const char *name, size_t len)
{
	if (check_name(name, len) != 0)
		return ISOLA_EINVAL;
	pthread_mutex_lock(&reg_lock);
	struct entry *e = find(name, len);
	if (e == NULL) {
		pthread_mutex_unlock(&reg_lock);
		return ISOLA_ENOTFOUND;
	}
	struct entry gone = *e;
	*e = entries[--n_entries];
	pthread_mutex_unlock(&reg_lock);
	isola__free(gone.name);
	isola_blob_release(gone.value.image);
	return 0;
}

int isola_frozen_lookup(const char *name, isola_frozen **out)
{
	return isola__frozen_lookup_n(name, name ? strlen(name) : 0, out);
}

int isola__frozen_lookup_n(const char *name, size_t len, isola_frozen **out)
{
	if (check_name(name, len) != 0 || out == NULL)
		return ISOLA_EINVAL;
	isola_frozen v = { 0 };
	pthread_mutex_lock(&reg_lock);
	struct entry *e = find(name, len);
	if (e != NULL) {
		v = e->value;
		isola_blob_retain(v.image); /* so an unpublish now cannot free it */
	}
	pthread_mutex_unlock(&reg_lock);
	if (e == NULL)
		return ISOLA_ENOTFOUND;
	int r = isola_frozen_copy(&v, out);
	isola_blob_release(v.image);
	return r;
}

int isola_frozen_release(isola_frozen *f)
{
	if (f == NULL)
		return 0;
	isola_blob_release(f->image);
	isola__free(f);
	return 0;
}

int isola_frozen_copy(const isola_frozen *value, isola_frozen **out)
{
	if (value == NULL || out == NULL || value->image == NULL)
		return ISOLA_EINVAL;
	isola_frozen *f = isola__malloc(sizeof(*f));
	if (f == NULL)
		return ISOLA_ENOMEM;
	*f = *value;
	isola_blob_retain(f->image);
	*out = f;
	return 0;
}

int isola_frozen_size(const isola_frozen *f, size_t *bytes)
{
	if (f == NULL || bytes == NULL)
		return ISOLA_EINVAL;
	*bytes = f->image->len;
	return 0;
}

void isola__registry_clear(void)
{
	pthread_mutex_lock(&reg_lock);
	struct entry *all = entries;
	size_t n = n_entries;
	entries = NULL;
	n_entries = cap_entries = 0;
	pthread_mutex_unlock(&reg_lock);
	for (size_t i = 0; i < n; i++) {
		isola__free(all[i].name);
		isola_blob_release(all[i].value.image);
	}
	isola__free(all);
}
