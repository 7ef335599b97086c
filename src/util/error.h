/* error.h - the thread-local "last error" behind nixl_last_error(). */
#ifndef NIXL_UTIL_ERROR_H
#define NIXL_UTIL_ERROR_H

#include <stdarg.h>
#include <stdbool.h>

#include "nixl.h"

/* Long enough for a path, a dlerror() text and some context. */
#define NIXL_ERR_MAX 1024

/*
 * The rule (nixl.h at nixl_last_error(), docs/errors.md): a failing call sets the reason, a
 * successful call leaves it as it was, so the reason of the last failure survives any number
 * of successful calls. Two tools keep successful calls clean:
 *  - around a plugin call, nixl_err_arm() before and nixl_err_settle(status) after: a plugin
 *    that wrote a reason and then succeeded leaves nothing behind (O(1), fit for posts);
 *  - around a step whose failure the call tolerates (another backend takes what the first
 *    refused), nixl_err_save() at the start and nixl_err_restore() when the call succeeds.
 */

/* Record why the current call fails and return `status`, so a failure reads
 * `return nixl_err(NIXL_ERR_NOT_FOUND, "agent '%s' is not loaded", name);`. */
nixl_status_t nixl_err(nixl_status_t status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void nixl_err_set(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void nixl_err_vset(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

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

/*
 * Before calling into a plugin: remember that no reason has been given yet, without wiping the
 * reason of an earlier failure. After the call, nixl_err_unset() says whether the plugin gave a
 * reason, nixl_err_prefix() does not put the stale text of an earlier failure behind its
 * context, and nixl_err_settle() drops a reason given by a call that succeeded after all
 * (status >= 0), putting back the one from before nixl_err_arm(). nixl_err_undo() does that
 * whatever the status (a failure the caller recovers from).
 */
void nixl_err_arm(void);
bool nixl_err_unset(void);
void nixl_err_settle(nixl_status_t status);
void nixl_err_undo(void);

/* The reason as it is now, to put back when a call succeeds after a tolerated failure. */
typedef struct nixl_err_saved {
    char text[NIXL_ERR_MAX];
} nixl_err_saved_t;
void nixl_err_save(nixl_err_saved_t *saved);
void nixl_err_restore(const nixl_err_saved_t *saved);

/* The current thread's reason: what nixl_last_error() returns. Internal (not exported), so a
 * program that links this layer statically beside libnixl.so keeps the two apart. */
const char *nixl_err_text(void);
/* Wipe the reason (tests use it to see that a call sets one). */
void nixl_err_clear(void);
/* Prefix the reason with more context: "<prefix>: <reason>" ("<prefix>" if none was given
 * since nixl_err_arm()). */
void nixl_err_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
