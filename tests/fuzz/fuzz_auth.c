/*
 * fuzz_auth.c - libFuzzer target for authenticated metadata envelopes (src/md/auth.c): what
 * an agent with a secret reads from anyone on the network before it trusts a byte.
 *
 * Each input is opened as an envelope, fresh (side channel) and not (etcd): nothing forged
 * verifies, and whatever does verify points inside the input. Then the input is sealed as a
 * payload under a sender name cut from it: the envelope opens to the same bytes, a second open
 * of the same bytes is a replay and is refused, and flipping one byte of it (chosen by the
 * input) makes it fail. Sealed for an etcd key, it opens under that key only.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "fuzz_auth: %s:%d: check failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                             \
            abort();                                                                    \
        }                                                                               \
    } while (0)

static nixl_auth_t *auth;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!auth)
        CHECK(nixl_auth_create("fuzzing-secret-0123456789", 25, 300, &auth) == NIXL_SUCCESS);
    nixl_auth_msg_t m;
    for (int fresh = 0; fresh < 2; fresh++) {
        if (nixl_auth_open(auth, NIXL_AUTH_SIDECHANNEL, NULL, data, size, fresh, &m) ==
            NIXL_SUCCESS)
            CHECK(m.payload >= data && m.payload + m.len <= data + size);
    }

    char sender[33];
    size_t nlen = size < 32 ? size : 32;
    for (size_t i = 0; i < nlen; i++)
        sender[i] = (char)('a' + data[i] % 26);
    sender[nlen] = '\0';
    if (!nlen)
        snprintf(sender, sizeof(sender), "x");
    size_t elen = 0;
    uint8_t *env =
        nixl_auth_seal(auth, NIXL_AUTH_SIDECHANNEL, "LOAD", sender, NULL, data, size, &elen);
    CHECK(env && nixl_auth_is_envelope(env, elen));
    CHECK(nixl_auth_open(auth, NIXL_AUTH_SIDECHANNEL, NULL, env, elen, true, &m) ==
          NIXL_SUCCESS);
    CHECK(m.len == size && (size == 0 || memcmp(m.payload, data, size) == 0));
    CHECK(strcmp(m.sender, sender) == 0 && strcmp(m.verb, "LOAD") == 0);
    CHECK(nixl_auth_open(auth, NIXL_AUTH_SIDECHANNEL, NULL, env, elen, true, &m) !=
          NIXL_SUCCESS);
    CHECK(nixl_auth_open(auth, NIXL_AUTH_ETCD, NULL, env, elen, false, &m) != NIXL_SUCCESS);
    size_t at = (size ? data[0] * 131u + size : 0) % elen;
    if (at >= NIXL_AUTH_PREFIX_LEN) { /* a changed byte anywhere after the prefix */
        env[at] ^= 0x01;
        CHECK(nixl_auth_open(auth, NIXL_AUTH_SIDECHANNEL, NULL, env, elen, false, &m) !=
              NIXL_SUCCESS);
    }
    free(env);

    /* an etcd blob opens under the key it was sealed for, and under no other (nor none) */
    char bind[64], other[64];
    snprintf(bind, sizeof(bind), "/nixl/agents//%s/metadata", sender);
    snprintf(other, sizeof(other), "/nixl/agents//%s/metadatb", sender);
    env = nixl_auth_seal(auth, NIXL_AUTH_ETCD, "LOAD", sender, bind, data, size, &elen);
    CHECK(env != NULL);
    CHECK(nixl_auth_open(auth, NIXL_AUTH_ETCD, bind, env, elen, false, &m) == NIXL_SUCCESS);
    CHECK(nixl_auth_open(auth, NIXL_AUTH_ETCD, other, env, elen, false, &m) != NIXL_SUCCESS);
    CHECK(nixl_auth_open(auth, NIXL_AUTH_ETCD, NULL, env, elen, false, &m) != NIXL_SUCCESS);
    free(env);
    return 0;
}
