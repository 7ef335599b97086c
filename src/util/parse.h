/* parse.h - the reference's string conversions, shared by configuration and backend params. */
#ifndef NIXL_UTIL_PARSE_H
#define NIXL_UTIL_PARSE_H

#include <stdbool.h>
#include <stdint.h>

/* y yes on 1 true enable / n no off 0 false disable, any case. False if neither. */
bool nixl_parse_bool(const char *s, bool *out);
/* Minimal decimal (no sign, spaces or leading zeros) or 0x hex. False if invalid or too big. */
bool nixl_parse_u64(const char *s, uint64_t *out);
/* Minimal decimal with an optional '-'. False if invalid or out of range. */
bool nixl_parse_i64(const char *s, int64_t *out);

/* The value of a hexadecimal digit, or -1. */
static inline int nixl_hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

#endif
