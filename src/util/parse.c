/*
 * parse.c - strict string conversions. strtoull() and friends skip spaces, accept signs and
 * wrap "-1" to UINT64_MAX; a configuration value that is not exactly a number must be refused,
 * so the digits are walked by hand.
 */
#include "parse.h"

#include <stddef.h>
#include <strings.h>

static const char *const true_words[] = {"y", "yes", "on", "1", "true", "enable"};
static const char *const false_words[] = {"n", "no", "off", "0", "false", "disable"};

bool nixl_parse_bool(const char *s, bool *out)
{
    if (!s)
        return false;
    for (size_t i = 0; i < sizeof(true_words) / sizeof(true_words[0]); i++) {
        if (strcasecmp(s, true_words[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(s, false_words[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}


/* "0" or [1-9][0-9]*, nothing else, at most `limit`. */
static bool parse_decimal(const char *s, uint64_t limit, uint64_t *out)
{
    if (s[0] < '0' || s[0] > '9')
        return false;
    if (s[0] == '0') {
        if (s[1] != '\0')
            return false;
        *out = 0;
        return true;
    }
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        unsigned d = (unsigned)(*p - '0');
        if (v > (limit - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

bool nixl_parse_u64(const char *s, uint64_t *out)
{
    if (!s)
        return false;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        const char *p = s + 2;
        if (*p == '\0')
            return false;
        uint64_t v = 0;
        for (; *p; p++) {
            int d = nixl_hex_digit(*p);
            if (d < 0 || v > (UINT64_MAX >> 4))
                return false;
            v = (v << 4) | (uint64_t)d;
        }
        *out = v;
        return true;
    }
    uint64_t v;
    if (!parse_decimal(s, UINT64_MAX, &v))
        return false;
    *out = v;
    return true;
}

bool nixl_parse_i64(const char *s, int64_t *out)
{
    if (!s)
        return false;
    bool neg = s[0] == '-';
    uint64_t mag;
    /* The magnitude of INT64_MIN is one more than INT64_MAX. */
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    if (!parse_decimal(s + (neg ? 1 : 0), limit, &mag))
        return false;
    if (neg && mag == 0) /* "-0" is not minimal */
        return false;
    if (neg)
        *out = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
    else
        *out = (int64_t)mag;
    return true;
}
