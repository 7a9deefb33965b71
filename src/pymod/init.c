/*
 * init.c - isola_init: bind the Python module to the runtime, then start
 * it (interp/runtime.c does the rest; isola_fini is there too).
 */
#include "pymod/module.h"

#include "interp/binding.h"

const isola__binding isola__pymod_binding = {
	.module_init = PyInit_isola,
	.module_install = isola__module_install,
};

int isola_init(const isola_init_options *opts)
{
	isola__runtime_bind(&isola__pymod_binding);
	return isola__runtime_start(opts);
}
