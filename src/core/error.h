/* error.h - the thread-local "last error" behind nixl_last_error(). */
#ifndef NIXL_CORE_ERROR_H
#define NIXL_CORE_ERROR_H

#include <stdarg.h>

#include "nixl.h"

/* Record why the current call fails and return `status`, so a failure reads
 * `return nixl_err(NIXL_ERR_NOT_FOUND, "agent '%s' is not loaded", name);`. */
nixl_status_t nixl_err(nixl_status_t status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void nixl_err_set(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void nixl_err_vset(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
/* Prefix the current reason with more context: "<prefix>: <old reason>". */
void nixl_err_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void nixl_err_clear(void);

#endif
