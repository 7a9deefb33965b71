/*
 * errinfo.h - an error as text (type, message, traceback), in raw memory
 * so any thread may read it later; Python-free (the scheduler keeps one
 * per failed future; interp/pyerror.h fills it from an exception).
 */
#ifndef ISOLA_COMMON_ERRINFO_H
#define ISOLA_COMMON_ERRINFO_H

typedef struct isola__error {
	char *type;      /* "ValueError", "mypkg.mod.MyError" */
	char *message;   /* str(exc) */
	char *traceback; /* traceback.format_exception(exc), joined */
} isola__error;

/* Free err's strings and make it empty. */
void isola__error_clear(isola__error *err);

/* One line: "Type: message" followed by the traceback; malloc'd (or NULL
 * on no memory). */
char *isola__error_format(const isola__error *err);

/* malloc'd copy of s (NULL stays NULL). */
char *isola__strdup(const char *s);

#endif
