/* soak_io.c - the line protocol between the soak's driver and its agents (soak.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "soak.h"

int lb_fill(linebuf_t *lb, int fd)
{
    if (lb->n == sizeof(lb->buf))
        return 1; /* a line longer than the buffer: lb_line drops it */
    ssize_t r = read(fd, lb->buf + lb->n, sizeof(lb->buf) - lb->n);
    if (r > 0) {
        lb->n += (size_t)r;
        return 1;
    }
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    return -1;
}

bool lb_line(linebuf_t *lb, char *out, size_t cap)
{
    char *nl = memchr(lb->buf, '\n', lb->n);
    if (!nl) {
        if (lb->n == sizeof(lb->buf))
            lb->n = 0;
        return false;
    }
    size_t len = (size_t)(nl - lb->buf);
    size_t c = len < cap - 1 ? len : cap - 1;
    memcpy(out, lb->buf, c);
    out[c] = '\0';
    memmove(lb->buf, nl + 1, lb->n - len - 1);
    lb->n -= len + 1;
    return true;
}

bool put_line(int fd, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(line) - 1)
        return false;
    line[n++] = '\n';
    for (;;) {
        ssize_t w = write(fd, line, (size_t)n);
        if (w == n)
            return true;
        if (w < 0 && errno == EINTR)
            continue;
        return false;
    }
}

void set_nonblock(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}
