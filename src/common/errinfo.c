/* errinfo.c - errors as text (errinfo.h). */
#include "common/errinfo.h"
#include "common/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *isola__strdup(const char *s)
{
	if (s == NULL)
		return NULL;
	size_t n = strlen(s) + 1;
	char *d = isola__malloc(n);
	if (d != NULL)
		memcpy(d, s, n);
	return d;
}

void isola__error_clear(isola__error *err)
{
	isola__free(err->type);
	isola__free(err->message);
	isola__free(err->traceback);
	err->type = err->message = err->traceback = NULL;
}

char *isola__error_format(const isola__error *err)
{
	const char *t = err->type ? err->type : "Exception";
	const char *m = err->message ? err->message : "";
	const char *tb = err->traceback ? err->traceback : "";
	size_t n = strlen(t) + strlen(m) + strlen(tb) + 4;
	char *r = isola__malloc(n);
	if (r != NULL)
		snprintf(r, n, "%s: %s\n%s", t, m, tb);
	return r;
}
