/*
 * config.h - options from the environment and the TOML configuration file
 * (reference NIXL-SEMANTICS 9): NIXL_X is looked up in the environment first, then as a
 * top-level key of the file named by NIXL_CONFIG_FILE, else $HOME/.nixl.cfg, else
 * /etc/nixl.cfg. The file is read once, at the first lookup.
 */
#ifndef NIXL_UTIL_CONFIG_H
#define NIXL_UTIL_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "nixl.h"
#include "parse.h"

/* Load the file if not done yet. NIXL_ERR_MISMATCH with a reason (file, line) on a parse
 * error; the error is remembered and returned by every later call. */
nixl_status_t nixl_config_load(void);

/* Whether the option exists (in the environment, or as a file key). */
bool nixl_config_exists(const char *name);

/*
 * An option that is not set is not an error: the getters return NIXL_SUCCESS and leave the
 * reason of nixl_last_error() alone, so that the caller's default applies. Errors are values
 * that cannot be converted (NIXL_ERR_MISMATCH) and a configuration file that does not load.
 */

/* The option as a string: *out is NULL when absent; otherwise a malloc'ed copy (caller frees).
 * A file key that is not a string gives NIXL_ERR_MISMATCH. */
nixl_status_t nixl_config_string(const char *name, char **out);

/* Booleans: y yes on 1 true enable / n no off 0 false disable, any case (env), TOML bool (file).
 * *out is left untouched when absent: initialise it with the default. */
nixl_status_t nixl_config_bool(const char *name, bool *out);
/* Minimal decimal (no sign, spaces or leading zeros); unsigned also 0x hex. */
nixl_status_t nixl_config_u64(const char *name, uint64_t *out);
nixl_status_t nixl_config_i64(const char *name, int64_t *out);

/* Forget the loaded file (tests only). */
void nixl_config_reset(void);

#endif
