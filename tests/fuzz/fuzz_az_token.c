/*
 * fuzz_az_token.c - libFuzzer target for the AZURE_BLOB backend's reading of a token
 * endpoint's answer (plugins/azure_blob/azure_ad_json.h), which comes from the network. What it
 * accepts must be a token of visible ASCII within AZ_TOKEN_MAX bytes expiring within
 * AZ_TOKEN_LIFE_MAX from now; a refusal must say why and leave no token behind; neither ever
 * reads past the input.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "azure_ad_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_az_token: %s:%d: check failed: %s\n", __FILE__, __LINE__,        \
                    #cond);                                                                        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static az_token_answer_t ans; /* 16 KiB: not on the stack */
    const int64_t now = 1700000000;
    char why[512];
    why[0] = '\0';
    if (az_token_parse((const char *)data, size, now, &ans, why, sizeof(why))) {
        CHECK(ans.token_len >= 1 && ans.token_len <= AZ_TOKEN_MAX);
        CHECK(ans.token[ans.token_len] == '\0' && strlen(ans.token) == ans.token_len);
        for (size_t i = 0; i < ans.token_len; i++)
            CHECK(ans.token[i] > 0x20 && ans.token[i] < 0x7f);
        CHECK(ans.expires_at > now && ans.expires_at <= now + AZ_TOKEN_LIFE_MAX);
    } else {
        CHECK(why[0]);
        CHECK(ans.token_len == 0 && ans.token[0] == '\0' && ans.expires_at == 0);
        for (size_t i = 0; why[i]; i++) /* a message: one line */
            CHECK(why[i] != '\n' && why[i] != '\r');
    }
    return 0;
}
