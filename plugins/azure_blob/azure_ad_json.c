/*
 * azure_ad_json.c - reading a token endpoint's answer (azure_ad_json.h): one JSON object whose
 * members access_token, expires_in, expires_on, token_type, error and error_description we
 * keep; any other member is skipped (any JSON value, nested at most AZ_JSON_DEPTH deep).
 * expires_in and expires_on are whole seconds, as a number or a string of digits (the
 * identity platform sends numbers, IMDS strings).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "azure_ad_json.h"
#include "parse.h"

typedef struct jp {
    const char *p, *end;
    const char *err; /* the first syntax error */
} jp_t;

static bool fail(jp_t *j, const char *what)
{
    if (!j->err)
        j->err = what;
    return false;
}

static void ws(jp_t *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

/* Append byte c to out[0, cap) at *n; past cap only counts (*n grows, nothing written). */
static void put(char *out, size_t cap, size_t *n, char c)
{
    if (out && *n < cap)
        out[*n] = c;
    (*n)++;
}

/* The code point of \u escape at j->p (after "\u"); a surrogate pair is joined, a lone
 * surrogate is U+FFFD. */
static long uescape(jp_t *j)
{
    long cp = 0;
    if (j->end - j->p < 4)
        return -1;
    for (int i = 0; i < 4; i++) {
        int h = nixl_hex_digit(j->p[i]);
        if (h < 0)
            return -1;
        cp = cp * 16 + h;
    }
    j->p += 4;
    if (cp >= 0xd800 && cp < 0xdc00 && j->end - j->p >= 6 && j->p[0] == '\\' && j->p[1] == 'u') {
        long lo = 0;
        for (int i = 2; i < 6; i++) {
            int h = nixl_hex_digit(j->p[i]);
            if (h < 0)
                return -1;
            lo = lo * 16 + h;
        }
        if (lo >= 0xdc00 && lo < 0xe000) {
            j->p += 6;
            return 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        }
    }
    return cp >= 0xd800 && cp < 0xe000 ? 0xfffd : cp;
}

/* The string at j->p (its opening quote), decoded into out[0, cap) (not terminated; NULL: only
 * checked); its decoded length in *len, which may pass cap (0 when it fails). */
static bool string(jp_t *j, char *out, size_t cap, size_t *len)
{
    size_t n = 0;
    *len = 0; /* a failed string: empty to a caller that prints it */
    if (j->p >= j->end || *j->p != '"')
        return fail(j, "a string was expected");
    j->p++;
    while (j->p < j->end) {
        unsigned char c = (unsigned char)*j->p++;
        if (c == '"') {
            *len = n;
            return true;
        }
        if (c < 0x20)
            return fail(j, "a control character in a string");
        if (c != '\\') {
            put(out, cap, &n, (char)c);
            continue;
        }
        if (j->p >= j->end)
            break;
        char e = *j->p++;
        const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
        const char *k = e ? strchr(from, e) : NULL;
        if (k) {
            put(out, cap, &n, to[k - from]);
            continue;
        }
        if (e != 'u')
            return fail(j, "a bad escape in a string");
        long cp = uescape(j);
        if (cp < 0)
            return fail(j, "a bad \\u escape in a string");
        if (cp < 0x80) {
            put(out, cap, &n, (char)cp);
        } else if (cp < 0x800) {
            put(out, cap, &n, (char)(0xc0 | (cp >> 6)));
            put(out, cap, &n, (char)(0x80 | (cp & 0x3f)));
        } else if (cp < 0x10000) {
            put(out, cap, &n, (char)(0xe0 | (cp >> 12)));
            put(out, cap, &n, (char)(0x80 | ((cp >> 6) & 0x3f)));
            put(out, cap, &n, (char)(0x80 | (cp & 0x3f)));
        } else {
            put(out, cap, &n, (char)(0xf0 | (cp >> 18)));
            put(out, cap, &n, (char)(0x80 | ((cp >> 12) & 0x3f)));
            put(out, cap, &n, (char)(0x80 | ((cp >> 6) & 0x3f)));
            put(out, cap, &n, (char)(0x80 | (cp & 0x3f)));
        }
    }
    return fail(j, "an unterminated string");
}

/* A number (JSON's grammar); its text into out when it fits (else out is ""). */
static bool number(jp_t *j, char *out, size_t cap)
{
    const char *s = j->p;
    if (j->p < j->end && *j->p == '-')
        j->p++;
    if (j->p >= j->end || *j->p < '0' || *j->p > '9')
        return fail(j, "a bad number");
    if (*j->p == '0')
        j->p++;
    else
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
            j->p++;
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (j->p >= j->end || *j->p < '0' || *j->p > '9')
            return fail(j, "a bad number");
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
            j->p++;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
            j->p++;
        if (j->p >= j->end || *j->p < '0' || *j->p > '9')
            return fail(j, "a bad number");
        while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
            j->p++;
    }
    size_t n = (size_t)(j->p - s);
    if (out) {
        out[0] = '\0';
        if (n < cap) {
            memcpy(out, s, n);
            out[n] = '\0';
        }
    }
    return true;
}

static bool literal(jp_t *j, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, w, n))
        return fail(j, "an unknown literal");
    j->p += n;
    return true;
}

/* Any value, nested at most `depth` deeper. */
static bool value(jp_t *j, int depth)
{
    size_t len;
    ws(j);
    if (j->p >= j->end)
        return fail(j, "the answer ends where a value was expected");
    char c = *j->p;
    if (c == '"')
        return string(j, NULL, 0, &len);
    if (c == 't')
        return literal(j, "true");
    if (c == 'f')
        return literal(j, "false");
    if (c == 'n')
        return literal(j, "null");
    if (c != '{' && c != '[')
        return number(j, NULL, 0);
    if (depth <= 0)
        return fail(j, "values nested too deep");
    char close = c == '{' ? '}' : ']';
    j->p++;
    ws(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        return true;
    }
    for (;;) {
        if (c == '{') {
            ws(j);
            if (!string(j, NULL, 0, &len))
                return false;
            ws(j);
            if (j->p >= j->end || *j->p++ != ':')
                return fail(j, "a ':' was expected");
        }
        if (!value(j, depth - 1))
            return false;
        ws(j);
        if (j->p >= j->end)
            return fail(j, "the answer ends inside a value");
        char s = *j->p++;
        if (s == close)
            return true;
        if (s != ',')
            return fail(j, "a ',' was expected");
    }
}

/* A decoded string for a message: bytes below 0x20 and DEL become spaces. */
static void printable(char *s, size_t n, size_t cap)
{
    if (n >= cap)
        n = cap - 1;
    s[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            s[i] = ' ';
}

/* A member holding whole seconds: a number or a string of digits. *v = -1: absent or not
 * whole seconds (the text kept in txt for the message). */
static bool seconds(jp_t *j, long long *v, char *txt, size_t tcap)
{
    char buf[32];
    size_t n = 0;
    *v = -1;
    txt[0] = '\0';
    if (j->p < j->end && *j->p == '"') {
        if (!string(j, buf, sizeof(buf) - 1, &n))
            return false;
        printable(buf, n, sizeof(buf)); /* it may go into a message */
    } else if (!number(j, buf, sizeof(buf))) {
        return false;
    }
    n = strlen(buf);
    snprintf(txt, tcap, "%s", buf);
    if (n == 0 || n > 15 || strspn(buf, "0123456789") != n)
        return true;
    long long x = 0;
    for (size_t i = 0; i < n; i++)
        x = x * 10 + (buf[i] - '0');
    *v = x;
    return true;
}

bool az_token_parse(const char *body, size_t len, int64_t now, az_token_answer_t *out, char *why,
                    size_t whylen)
{
    jp_t j = {.p = body, .end = body + len, .err = NULL};
    long long expires_in = -1, expires_on = -1;
    char in_txt[32] = "", on_txt[32] = "", type[32] = "";
    bool has_token = false, has_in = false, has_on = false, long_token = false;
    size_t n;
    memset(out, 0, sizeof(*out));
    if (!body || len == 0) {
        snprintf(why, whylen, "an empty answer");
        return false;
    }
    if (len > AZ_TOKEN_BODY_MAX) {
        snprintf(why, whylen, "an answer of more than %u bytes", AZ_TOKEN_BODY_MAX);
        return false;
    }
    ws(&j);
    bool ok = j.p < j.end && *j.p == '{' ? true : fail(&j, "the answer is not a JSON object");
    if (ok) {
        j.p++;
        ws(&j);
        if (j.p < j.end && *j.p == '}')
            j.p++;
        else
            for (;;) {
                char key[32];
                size_t kl;
                ws(&j);
                if (!(ok = string(&j, key, sizeof(key) - 1, &kl)))
                    break;
                key[kl < sizeof(key) ? kl : sizeof(key) - 1] = '\0';
                if (kl >= sizeof(key))
                    key[0] = '\0'; /* not one of ours */
                ws(&j);
                if (j.p >= j.end || *j.p++ != ':') {
                    ok = fail(&j, "a ':' was expected");
                    break;
                }
                ws(&j);
                bool is_str = j.p < j.end && *j.p == '"';
                if (!strcmp(key, "access_token") && is_str) {
                    ok = string(&j, out->token, AZ_TOKEN_MAX, &n);
                    has_token = true;
                    long_token = n > AZ_TOKEN_MAX;
                    out->token_len = long_token ? 0 : n;
                    out->token[out->token_len] = '\0';
                } else if (!strcmp(key, "expires_in")) {
                    ok = seconds(&j, &expires_in, in_txt, sizeof(in_txt));
                    has_in = true;
                } else if (!strcmp(key, "expires_on")) {
                    ok = seconds(&j, &expires_on, on_txt, sizeof(on_txt));
                    has_on = true;
                } else if (!strcmp(key, "token_type") && is_str) {
                    ok = string(&j, type, sizeof(type) - 1, &n);
                    printable(type, n, sizeof(type));
                } else if (!strcmp(key, "error") && is_str) {
                    ok = string(&j, out->error, sizeof(out->error) - 1, &n);
                    printable(out->error, n, sizeof(out->error));
                } else if (!strcmp(key, "error_description") && is_str) {
                    ok = string(&j, out->error_desc, sizeof(out->error_desc) - 1, &n);
                    printable(out->error_desc, n, sizeof(out->error_desc));
                } else {
                    ok = value(&j, AZ_JSON_DEPTH - 1);
                }
                if (!ok)
                    break;
                ws(&j);
                if (j.p >= j.end) {
                    ok = fail(&j, "the answer ends inside its object");
                    break;
                }
                char s = *j.p++;
                if (s == '}')
                    break;
                if (s != ',') {
                    ok = fail(&j, "a ',' was expected");
                    break;
                }
            }
    }
    if (ok) {
        ws(&j);
        if (j.p != j.end)
            ok = fail(&j, "bytes after the JSON object");
    }
    if (!ok) {
        snprintf(why, whylen, "the answer is not the JSON expected (%s at byte %zu of %zu)",
                 j.err ? j.err : "a syntax error", (size_t)(j.p - body), len);
        goto refuse;
    }
    if (out->error[0] || (!has_token && out->error_desc[0])) {
        snprintf(why, whylen, "%s%s%s", out->error[0] ? out->error : "error",
                 out->error_desc[0] ? ": " : "", out->error_desc);
        goto refuse;
    }
    if (!has_token) {
        snprintf(why, whylen, "the answer has no access_token");
        goto refuse;
    }
    if (long_token || out->token_len == 0) {
        snprintf(why, whylen, "the access_token is %s",
                 long_token ? "longer than 16384 bytes" : "empty");
        goto refuse;
    }
    for (size_t i = 0; i < out->token_len; i++)
        if ((unsigned char)out->token[i] <= 0x20 || (unsigned char)out->token[i] >= 0x7f) {
            snprintf(why, whylen,
                     "the access_token has a byte that is not visible ASCII "
                     "(offset %zu)",
                     i);
            goto refuse;
        }
    if (type[0] && strcasecmp(type, "Bearer")) {
        snprintf(why, whylen, "the token_type is '%s', not Bearer", type);
        goto refuse;
    }
    if (expires_in >= 1 && expires_in <= AZ_TOKEN_LIFE_MAX) {
        out->expires_at = now + expires_in;
    } else if (has_in) {
        snprintf(why, whylen, "expires_in '%s' is not a number of seconds from 1 to %lld", in_txt,
                 (long long)AZ_TOKEN_LIFE_MAX);
        goto refuse;
    } else if (expires_on > now && expires_on - now <= AZ_TOKEN_LIFE_MAX) {
        out->expires_at = expires_on;
    } else if (has_on) {
        snprintf(why, whylen,
                 "expires_on '%s' is not a time (seconds since the epoch) within "
                 "%lld s from now",
                 on_txt, (long long)AZ_TOKEN_LIFE_MAX);
        goto refuse;
    } else {
        snprintf(why, whylen, "the answer has neither expires_in nor expires_on");
        goto refuse;
    }
    return true;
refuse:
    memset(out->token, 0, sizeof(out->token));
    out->token_len = 0;
    out->expires_at = 0;
    return false;
}
