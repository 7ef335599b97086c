/* auth_stub.c - the build without libcrypto: a configured secret is refused, with the reason,
 * rather than ignored (an agent must never believe it is protected when it is not). */
#include "auth.h"

#include "error.h"

nixl_status_t nixl_auth_create(const void *secret, size_t len, uint32_t max_skew_s,
                               nixl_auth_t **out)
{
    (void)secret;
    (void)len;
    (void)max_skew_s;
    (void)out;
    return nixl_err(NIXL_ERR_NOT_SUPPORTED, "an auth secret is set (NIXL_AUTH_SECRET, "
                    "NIXL_AUTH_SECRET_FILE or the agent configuration) but this build of NIXL "
                    "has no libcrypto: install libssl-dev and rebuild (meson option 'auth')");
}

void nixl_auth_destroy(nixl_auth_t *a)
{
    (void)a;
}

uint8_t *nixl_auth_seal(nixl_auth_t *a, nixl_auth_context_t ctx, const char *verb,
                        const char *sender, const char *bind, const void *payload, size_t len,
                        size_t *out_len)
{
    (void)a, (void)ctx, (void)verb, (void)sender, (void)bind, (void)payload, (void)len;
    (void)out_len;
    return NULL;
}

nixl_status_t nixl_auth_open(nixl_auth_t *a, nixl_auth_context_t ctx, const char *bind,
                             const uint8_t *env, size_t len, bool fresh, nixl_auth_msg_t *msg)
{
    (void)a, (void)ctx, (void)bind, (void)env, (void)len, (void)fresh, (void)msg;
    return nixl_err(NIXL_ERR_NOT_SUPPORTED, "no libcrypto in this build");
}

void nixl_auth_count_refused(nixl_auth_t *a)
{
    (void)a;
}

uint64_t nixl_auth_refused(const nixl_auth_t *a)
{
    (void)a;
    return 0;
}
