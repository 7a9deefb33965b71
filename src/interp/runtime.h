/* runtime.h - the process-wide CPython runtime isola runs in (internal). */
#ifndef ISOLA_INTERP_RUNTIME_H
#define ISOLA_INTERP_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>

/* Note that CPython is running without isola having started it (isola
 * imported as an extension module).  Idempotent, any thread. */
void isola__runtime_attach(void);

/* Before 3.14: import in the main interpreter the stdlib extensions that
 * crash when fresh workers import them at once (runtime.c).  GIL held;
 * nothing on 3.14 or in other interpreters. */
void isola__preload_single_phase(void);

/* On a CPython known to crash with isolated sub-interpreters at exit
 * (3.12: gh-112140, abort after a worker imported asyncio or ssl), the
 * warning text; else NULL. */
const char *isola__python_warning(void);

/* isola_init_options.module_paths (n of them; none when attached). */
const char *const *isola__runtime_module_paths(size_t *n);

/* True once isola_init or isola__runtime_attach has run. */
bool isola__runtime_ready(void);

/* Count of live interpreters (isola_fini refuses while > 0). */
void isola__runtime_interp_added(void);
void isola__runtime_interp_removed(void);

#endif
