/*
 * be_param.h - reading a backend's init parameters (nixl_be_init_t) the same way in every
 * plugin: a missing or empty value takes the default, a bad one is refused with a reason given
 * through the host (it becomes nixl_last_error() of the createBackend call).
 */
#ifndef NIXL_UTIL_BE_PARAM_H
#define NIXL_UTIL_BE_PARAM_H

#include <stdbool.h>
#include <stdint.h>

#include "nixl_plugin.h"

/* The value of `key`, or NULL when the user did not set it (and no default was merged in). */
const char *nixl_be_param(const nixl_be_init_t *init, const char *key);
/* A boolean (nixl_parse_bool words); false when unset. False, with the reason given, when the
 * value is not a boolean. */
bool nixl_be_param_bool(const nixl_be_init_t *init, const char *key, bool *out);
/* A number in [min, max]; `def` when unset. False, with the reason given, otherwise. */
bool nixl_be_param_u64(const nixl_be_init_t *init, const char *key, uint64_t def, uint64_t min,
                       uint64_t max, uint64_t *out);

#endif
