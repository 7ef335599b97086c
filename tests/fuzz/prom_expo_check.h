/*
 * prom_expo_check.h - what the Prometheus fuzz targets check of an exposition they rendered
 * (text format 0.0.4, as Prometheus's own parser takes it): every line is a HELP or TYPE
 * comment or `name{key="value",...} number`; label values escape only \\, \" and \n and are
 * valid UTF-8; no series appears twice (a duplicate fails the whole scrape). Aborts with the
 * offending line otherwise.
 */
#ifndef NIXL_FUZZ_PROM_EXPO_CHECK_H
#define NIXL_FUZZ_PROM_EXPO_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void expo_fail(const char *why, const char *line, size_t len)
{
    fprintf(stderr, "exposition check failed: %s: '%.*s'\n", why, (int)(len > 300 ? 300 : len),
            line);
    abort();
}

/* Length of the valid UTF-8 sequence at p (n bytes left), 0 if invalid. */
static size_t expo_utf8(const unsigned char *p, size_t n)
{
    if (p[0] < 0x80)
        return 1;
    size_t len = p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc2 ? 2 : 0;
    if (p[0] >= 0xf5 || !len || len > n)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    unsigned cp = p[0] & (0x7f >> len);
    for (size_t i = 1; i < len; i++)
        cp = cp << 6 | (p[i] & 0x3f);
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return len;
}

static bool expo_name_char(char c, bool first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
           (!first && c >= '0' && c <= '9');
}

static int expo_cmp(const void *a, const void *b)
{
    const char *const *x = a, *const *y = b;
    return strcmp(*x, *y);
}

/* Check `text` (n bytes); returns the number of samples. */
static size_t expo_check(const char *text, size_t n)
{
    size_t cap = 64, count = 0;
    char **keys = malloc(cap * sizeof(*keys));
    if (!keys)
        abort();
    const char *p = text, *end = text + n;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            expo_fail("no newline at the end", p, (size_t)(end - p));
        size_t len = (size_t)(nl - p);
        if (len >= 7 && (memcmp(p, "# HELP ", 7) == 0 || memcmp(p, "# TYPE ", 7) == 0)) {
            p = nl + 1;
            continue;
        }
        const char *q = p;
        if (!expo_name_char(*q, true))
            expo_fail("bad metric name", p, len);
        while (q < nl && expo_name_char(*q, false))
            q++;
        if (q < nl && *q == '{') {
            q++;
            for (;;) {
                if (!expo_name_char(*q, true))
                    expo_fail("bad label name", p, len);
                while (q < nl && expo_name_char(*q, false))
                    q++;
                if (q + 1 >= nl || q[0] != '=' || q[1] != '"')
                    expo_fail("label without =\"", p, len);
                q += 2;
                while (q < nl && *q != '"') {
                    if (*q == '\\') {
                        if (q + 1 >= nl || (q[1] != '\\' && q[1] != '"' && q[1] != 'n'))
                            expo_fail("bad escape in a label value", p, len);
                        q += 2;
                        continue;
                    }
                    size_t u = expo_utf8((const unsigned char *)q, (size_t)(nl - q));
                    if (!u)
                        expo_fail("label value not UTF-8", p, len);
                    q += u;
                }
                if (q >= nl)
                    expo_fail("unterminated label value", p, len);
                q++;
                if (q < nl && *q == ',') {
                    q++;
                    continue;
                }
                if (q < nl && *q == '}') {
                    q++;
                    break;
                }
                expo_fail("labels not closed", p, len);
            }
        }
        if (q >= nl || *q != ' ')
            expo_fail("no space before the value", p, len);
        const char *key_end = q++;
        if (q >= nl)
            expo_fail("no value", p, len);
        for (; q < nl; q++)
            if (*q < '0' || *q > '9')
                expo_fail("value not a number", p, len);
        if (count == cap) {
            cap *= 2;
            char **k = realloc(keys, cap * sizeof(*keys));
            if (!k)
                abort();
            keys = k;
        }
        keys[count] = strndup(p, (size_t)(key_end - p));
        if (!keys[count])
            abort();
        count++;
        p = nl + 1;
    }
    qsort(keys, count, sizeof(*keys), expo_cmp);
    for (size_t i = 1; i < count; i++)
        if (strcmp(keys[i - 1], keys[i]) == 0)
            expo_fail("a series appears twice", keys[i], strlen(keys[i]));
    for (size_t i = 0; i < count; i++)
        free(keys[i]);
    free(keys);
    return count;
}

#endif
