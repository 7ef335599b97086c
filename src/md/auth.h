/*
 * auth.h - authenticated metadata (docs/security.md, "Authenticated metadata").
 *
 * With a shared secret configured, every side-channel command and every metadata blob put in
 * etcd travels in an *envelope* that proves it was made by a holder of the secret, for a named
 * sender, at a given time, once:
 *
 *   "NIXLCOMM:AUTH" version(1) verb(4) name_len(1) name ts_ms(8, big-endian) nonce(16)
 *                   payload_len(8, big-endian) payload mac(32)
 *
 * mac = HMAC-SHA256(secret, context NUL [bind NUL] every envelope byte from `version` to the
 * payload's end), where the context ("nixl-sc-v1" or "nixl-etcd-v2") keeps a blob stored in
 * etcd from being replayed as a side-channel command, and `bind` (etcd: the key the blob is
 * stored under, <namespace>/<agent>/<label>; none on the side channel) keeps an authentic blob
 * from being copied under another key. The bound string travels outside the envelope: the
 * reader supplies the one it read from. The verb sits inside the MAC, so a proof made for
 * a LOAD cannot be turned into an INVL. A reference agent sees an unknown verb "AUTH" and, as
 * it does with any unknown verb, logs it and goes on; in etcd it sees a value that is not a
 * metadata blob. The envelope never contains "NIXLCOMM:" except by chance inside the payload,
 * so a reference agent never finds the inner command.
 *
 * The secret itself never leaves the process. Builds without libcrypto get a stub whose
 * nixl_auth_create() fails with a reason.
 */
#ifndef NIXL_MD_AUTH_H
#define NIXL_MD_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nixl.h"

#define NIXL_AUTH_VERB "AUTH"
#define NIXL_AUTH_PREFIX "NIXLCOMM:AUTH"
#define NIXL_AUTH_PREFIX_LEN 13
#define NIXL_AUTH_MIN_SECRET 16 /* bytes; shorter secrets are refused as guessable */

typedef struct nixl_auth nixl_auth_t;

typedef enum nixl_auth_context {
    NIXL_AUTH_SIDECHANNEL,
    NIXL_AUTH_ETCD,
} nixl_auth_context_t;

/* A verified envelope; pointers into the bytes given to nixl_auth_open(). */
typedef struct nixl_auth_msg {
    char verb[5];
    char sender[256];
    const uint8_t *payload;
    size_t len;
    uint64_t ts_ms;
} nixl_auth_msg_t;

/*
 * The secret of an agent: `secret` (the agent configuration's), else the file `secret_file`,
 * else NIXL_AUTH_SECRET, else NIXL_AUTH_SECRET_FILE (environment or configuration file). A
 * file readable by group or others is refused, as ssh refuses such a key. *out is NULL when
 * none is configured (the reference's unauthenticated protocol). NIXL_ERR_NOT_SUPPORTED when
 * one is configured in a build without libcrypto. NIXL_AUTH_MAX_SKEW_S (default 300) is the
 * window of accepted timestamps.
 */
nixl_status_t nixl_auth_from_config(const char *secret, const char *secret_file,
                                    nixl_auth_t **out);
/* An authenticator for `len` bytes of secret (copied). */
nixl_status_t nixl_auth_create(const void *secret, size_t len, uint32_t max_skew_s,
                               nixl_auth_t **out);
void nixl_auth_destroy(nixl_auth_t *a);

/* The envelope, "NIXLCOMM:AUTH" included, malloc'ed; NULL when memory is short. `bind`: a
 * string the proof also covers (NULL: none), which nixl_auth_open() must be given again. */
uint8_t *nixl_auth_seal(nixl_auth_t *a, nixl_auth_context_t ctx, const char *verb,
                        const char *sender, const char *bind, const void *payload, size_t len,
                        size_t *out_len);

/*
 * Check an envelope ("NIXLCOMM:AUTH" included). With `fresh`, its timestamp must lie within
 * the skew window and its nonce must not have been seen (the side channel: a captured
 * message cannot be sent again); without it (etcd, where one blob is read many times) only
 * the MAC is checked (the caller compares msg->ts_ms with what it loaded before, to refuse a
 * rollback). `bind` must be the string the envelope was sealed with (NULL for none).
 * NIXL_ERR_NOT_ALLOWED with nixl_last_error() saying why.
 */
nixl_status_t nixl_auth_open(nixl_auth_t *a, nixl_auth_context_t ctx, const char *bind,
                             const uint8_t *env, size_t len, bool fresh, nixl_auth_msg_t *msg);

/* Whether bytes start with an envelope (so a peer without the secret can say why it fails). */
bool nixl_auth_is_envelope(const void *data, size_t len);

/* Messages refused for want of a valid proof (counted by callers through this). */
void nixl_auth_count_refused(nixl_auth_t *a);
uint64_t nixl_auth_refused(const nixl_auth_t *a);

#endif
