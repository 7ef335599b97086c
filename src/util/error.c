#include "error.h"

#include <stdio.h>
#include <string.h>

/* Long enough for a path, a dlerror() text and some context. */
#define NIXL_ERR_MAX 1024

static _Thread_local char last_error[NIXL_ERR_MAX];
static _Thread_local bool armed; /* no reason given since nixl_err_arm() */

void nixl_err_vset(const char *fmt, va_list ap)
{
    /* Through a copy: callers may pass nixl_err_text() itself as an argument, and
     * vsnprintf's source and destination must not overlap. */
    char text[NIXL_ERR_MAX];
    armed = false;
    vsnprintf(text, sizeof(text), fmt, ap);
    memcpy(last_error, text, sizeof(text));
}

void nixl_err_arm(void)
{
    armed = true;
}

bool nixl_err_unset(void)
{
    return armed;
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

void nixl_err_prefix(const char *fmt, ...)
{
    char old[NIXL_ERR_MAX];
    char head[NIXL_ERR_MAX];
    memcpy(old, last_error, sizeof(old));
    if (armed)
        old[0] = '\0';
    armed = false;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof(head), fmt, ap);
    va_end(ap);
    if (old[0])
        snprintf(last_error, sizeof(last_error), "%s: %s", head, old);
    else
        snprintf(last_error, sizeof(last_error), "%s", head);
}

const char *nixl_err_text(void)
{
    return last_error;
}

void nixl_err_clear(void)
{
    last_error[0] = '\0';
    armed = true;
}
