/* error.c - isola_strerror() and isola_err_name(), from ISOLA_ERRNO_MAP. */
#include "isola.h"

const char *isola_strerror(int code)
{
	switch (code) {
	case ISOLA_OK:
		return "success";
#define ISOLA__ERR_MSG(name, value, msg)                                      \
	case ISOLA_##name:                                                    \
		return msg;
		ISOLA_ERRNO_MAP(ISOLA__ERR_MSG)
#undef ISOLA__ERR_MSG
	}
	return "unknown error";
}

const char *isola_err_name(int code)
{
	switch (code) {
	case ISOLA_OK:
		return "ISOLA_OK";
#define ISOLA__ERR_NAME(name, value, msg)                                     \
	case ISOLA_##name:                                                    \
		return "ISOLA_" #name;
		ISOLA_ERRNO_MAP(ISOLA__ERR_NAME)
#undef ISOLA__ERR_NAME
	}
	return "ISOLA_UNKNOWN";
}
