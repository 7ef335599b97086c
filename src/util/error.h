/* error.h - the thread-local "last error" behind nixl_last_error(). */
#ifndef NIXL_UTIL_ERROR_H
#define NIXL_UTIL_ERROR_H

#include <stdarg.h>
#include <stdbool.h>

#include "nixl.h"

/* Record why the current call fails and return `status`, so a failure reads
 * `return nixl_err(NIXL_ERR_NOT_FOUND, "agent '%s' is not loaded", name);`. */
nixl_status_t nixl_err(nixl_status_t status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void nixl_err_set(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Out of memory is one status everywhere (docs/errors.md): NIXL_ERR_UNKNOWN, the reference's
 * "internal error" (the reference itself throws std::bad_alloc and has no status for it).
 * nixl_err_oom() records "out of memory (<what>)" and returns NIXL_ERR_OOM:
 * `return nixl_err_oom("%zu descriptors", count);`. Code that hands a status and a reason to
 * someone else instead (a background thread's hooks) uses NIXL_ERR_OOM and NIXL_OOM_REASON.
 */
#define NIXL_ERR_OOM NIXL_ERR_UNKNOWN
#define NIXL_OOM_REASON "out of memory"
nixl_status_t nixl_err_oom(const char *what_fmt, ...) __attribute__((format(printf, 1, 2)));
void nixl_err_vset(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
/*
 * Before calling into a plugin: remember that no reason has been given yet, without wiping the
 * reason of an earlier failure (it must survive successful calls). After the call,
 * nixl_err_unset() says whether the plugin gave a reason, and nixl_err_prefix() does not put
 * the stale text of an earlier failure behind its context.
 */
void nixl_err_arm(void);
bool nixl_err_unset(void);
/* The current thread's reason: what nixl_last_error() returns. Internal (not exported), so a
 * program that links this layer statically beside libnixl.so keeps the two apart. */
const char *nixl_err_text(void);
/* Wipe the reason (tests use it to see that a call sets one). */
void nixl_err_clear(void);
/* Prefix the reason with more context: "<prefix>: <reason>" ("<prefix>" if none was given
 * since nixl_err_arm()). */
void nixl_err_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
