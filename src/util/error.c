#include "error.h"

#include <stdio.h>
#include <string.h>

/*
 * Two buffers per thread: texts[cur] is the reason. The first reason written after
 * nixl_err_arm() goes to the other buffer, so the one from before the arm stays intact and
 * nixl_err_settle() / nixl_err_undo() put it back by switching, without copying.
 */
static _Thread_local char texts[2][NIXL_ERR_MAX];
static _Thread_local unsigned cur;
static _Thread_local bool armed; /* no reason given since nixl_err_arm() */
static _Thread_local bool moved; /* ... and the one given since went to the other buffer */

/* Where the next reason goes. */
static char *err_target(void)
{
    if (armed) {
        cur ^= 1u;
        moved = true;
        armed = false;
    }
    return texts[cur];
}

void nixl_err_vset(const char *fmt, va_list ap)
{
    /* Through a copy: callers may pass nixl_err_text() itself as an argument, and
     * vsnprintf's source and destination must not overlap. */
    char text[NIXL_ERR_MAX];
    vsnprintf(text, sizeof(text), fmt, ap);
    memcpy(err_target(), text, sizeof(text));
}

void nixl_err_set(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    nixl_err_vset(fmt, ap);
    va_end(ap);
}

nixl_status_t nixl_err(nixl_status_t status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    nixl_err_vset(fmt, ap);
    va_end(ap);
    return status;
}

nixl_status_t nixl_err_oom(const char *what_fmt, ...)
{
    char what[NIXL_ERR_MAX / 2];
    va_list ap;
    va_start(ap, what_fmt);
    vsnprintf(what, sizeof(what), what_fmt, ap);
    va_end(ap);
    return nixl_err(NIXL_ERR_OOM, NIXL_OOM_REASON " (%s)", what);
}

void nixl_err_arm(void)
{
    armed = true;
    moved = false;
}

bool nixl_err_unset(void)
{
    return armed;
}

void nixl_err_undo(void)
{
    if (moved)
        cur ^= 1u;
    moved = false;
    armed = true;
}

void nixl_err_settle(nixl_status_t status)
{
    if (status >= 0)
        nixl_err_undo();
}

void nixl_err_save(nixl_err_saved_t *saved)
{
    memcpy(saved->text, texts[cur], sizeof(saved->text));
}

void nixl_err_restore(const nixl_err_saved_t *saved)
{
    memcpy(texts[cur], saved->text, sizeof(saved->text));
}

void nixl_err_prefix(const char *fmt, ...)
{
    char old[NIXL_ERR_MAX];
    char head[NIXL_ERR_MAX];
    memcpy(old, texts[cur], sizeof(old));
    if (armed)
        old[0] = '\0';
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof(head), fmt, ap);
    va_end(ap);
    if (old[0])
        nixl_err_set("%s: %s", head, old);
    else
        nixl_err_set("%s", head);
}

const char *nixl_err_text(void)
{
    return texts[cur];
}

void nixl_err_clear(void)
{
    texts[cur][0] = '\0';
    armed = true;
    moved = false;
}
