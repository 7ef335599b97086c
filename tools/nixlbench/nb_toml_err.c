/*
 * nb_toml_err.c - the one error hook that src/core/toml.c needs, for the copy of the TOML
 * reader compiled into nixlbench. The library's own nixl_err() is internal (not exported), so
 * this definition does not replace it; nixl_last_error() stays the library's.
 */
#include <stdarg.h>
#include <stdio.h>

#include "core/error.h"

static char toml_error[1024];

nixl_status_t nixl_err(nixl_status_t status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(toml_error, sizeof(toml_error), fmt, ap);
    va_end(ap);
    return status;
}

const char *nb_toml_last_error(void);
const char *nb_toml_last_error(void)
{
    return toml_error;
}
