/*
 * azure_ad_json.h - the answer of a Microsoft Entra ID (Azure AD) token endpoint, read with a
 * small bounded JSON parser: the identity platform's /oauth2/v2.0/token, a managed identity's
 * endpoint (IMDS, App Service). The answer is hostile input: its size is capped by the caller
 * (AZ_TOKEN_BODY_MAX), nesting by AZ_JSON_DEPTH, the token's length by AZ_TOKEN_MAX, and the
 * token may hold only visible ASCII (it goes into an HTTP header). Pure code: no curl, no
 * threads, so that tests/fuzz can run it alone.
 */
#ifndef NIXL_AZURE_AD_JSON_H
#define NIXL_AZURE_AD_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AZ_TOKEN_MAX 16384                /* bytes of an access token */
#define AZ_TOKEN_BODY_MAX (64u << 10)     /* bytes of a token endpoint's answer */
#define AZ_JSON_DEPTH 16                  /* nesting of the answer's values */
#define AZ_TOKEN_LIFE_MAX (400ll * 86400) /* longest lifetime believed (s) */

typedef struct az_token_answer {
    char token[AZ_TOKEN_MAX + 1]; /* access_token */
    size_t token_len;
    int64_t expires_at;   /* seconds since the epoch */
    char error[128];      /* "error" of a refusal, printable */
    char error_desc[512]; /* "error_description" of a refusal, printable */
} az_token_answer_t;

/* Read the answer body[0, len) received at `now` (seconds since the epoch). True with the token
 * and its expiry (expires_in, else expires_on); false with the reason in why: the answer's
 * error and error_description when it has them, else what is wrong with it. The reason never
 * holds the token. */
bool az_token_parse(const char *body, size_t len, int64_t now, az_token_answer_t *out, char *why,
                    size_t whylen);

#endif
