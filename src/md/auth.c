/*
 * auth.c - envelopes sealed and opened with HMAC-SHA256 (OpenSSL's libcrypto: EVP_MAC,
 * CRYPTO_memcmp, RAND_bytes), and the replay cache of the side channel (auth.h).
 */
#include "auth.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "error.h"

#define VERSION 1
#define NONCE_LEN 16
#define MAC_LEN 32
/* version, verb, name length | name | timestamp, nonce, payload length */
#define FIXED_LEN (1 + 4 + 1 + 8 + NONCE_LEN + 8)
/* Nonces remembered: each costs 24 bytes. When the cache is full the oldest entry leaves and
 * nothing stamped before it is accepted any more, so a nonce forgotten early cannot be
 * replayed either (fail closed rather than open). */
#define NONCE_CACHE 16384

typedef struct seen {
    uint8_t nonce[NONCE_LEN];
    uint64_t ts_ms;
} seen_t;

struct nixl_auth {
    EVP_MAC *mac;
    uint8_t *key;
    size_t key_len;
    uint32_t max_skew_s;
    pthread_mutex_t lock; /* guards the cache and the counter */
    seen_t *seen;         /* ring, oldest at `head` */
    size_t head, count;
    uint64_t floor_ms; /* stamps at or below it are refused (the cache dropped one) */
    uint64_t refused;
};

static const char *const context_label[] = {
    [NIXL_AUTH_SIDECHANNEL] = "nixl-sc-v1",
    [NIXL_AUTH_ETCD] = "nixl-etcd-v2", /* v2: the key is bound (v1 blobs do not verify) */
};

nixl_status_t nixl_auth_create(const void *secret, size_t len, uint32_t max_skew_s,
                               nixl_auth_t **out)
{
    nixl_auth_t *a = calloc(1, sizeof(*a));
    if (!a)
        return nixl_err_oom("authenticator");
    a->key = malloc(len);
    a->seen = calloc(NONCE_CACHE, sizeof(*a->seen));
    a->mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (!a->key || !a->seen || !a->mac) {
        bool no_hmac = !a->mac; /* read before the free */
        nixl_auth_destroy(a);
        return no_hmac ? nixl_err(NIXL_ERR_NOT_SUPPORTED, "libcrypto offers no HMAC")
                       : nixl_err_oom("authenticator");
    }
    memcpy(a->key, secret, len);
    a->key_len = len;
    a->max_skew_s = max_skew_s;
    pthread_mutex_init(&a->lock, NULL);
    *out = a;
    return NIXL_SUCCESS;
}

void nixl_auth_destroy(nixl_auth_t *a)
{
    if (!a)
        return;
    if (a->key) {
        OPENSSL_cleanse(a->key, a->key_len);
        free(a->key);
    }
    EVP_MAC_free(a->mac);
    if (a->seen)
        pthread_mutex_destroy(&a->lock);
    free(a->seen);
    free(a);
}

/* HMAC-SHA256(key, label || [bind NUL] || data) into out. */
static bool mac_of(nixl_auth_t *a, nixl_auth_context_t ctx, const char *bind,
                   const uint8_t *data, size_t len, uint8_t out[MAC_LEN])
{
    EVP_MAC_CTX *c = EVP_MAC_CTX_new(a->mac);
    if (!c)
        return false;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    const char *label = context_label[ctx];
    size_t out_len = 0;
    bool ok = EVP_MAC_init(c, a->key, a->key_len, params) == 1 &&
              EVP_MAC_update(c, (const uint8_t *)label, strlen(label) + 1) == 1 &&
              (!bind || EVP_MAC_update(c, (const uint8_t *)bind, strlen(bind) + 1) == 1) &&
              EVP_MAC_update(c, data, len) == 1 &&
              EVP_MAC_final(c, out, &out_len, MAC_LEN) == 1 && out_len == MAC_LEN;
    EVP_MAC_CTX_free(c);
    return ok;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

uint8_t *nixl_auth_seal(nixl_auth_t *a, nixl_auth_context_t ctx, const char *verb,
                        const char *sender, const char *bind, const void *payload, size_t len,
                        size_t *out_len)
{
    size_t name_len = strlen(sender);
    if (name_len > 255 || strlen(verb) != 4 ||
        len > SIZE_MAX - NIXL_AUTH_PREFIX_LEN - FIXED_LEN - 255 - MAC_LEN)
        return NULL;
    size_t total = NIXL_AUTH_PREFIX_LEN + FIXED_LEN + name_len + len + MAC_LEN;
    uint8_t *env = malloc(total);
    if (!env)
        return NULL;
    uint8_t *p = env;
    memcpy(p, NIXL_AUTH_PREFIX, NIXL_AUTH_PREFIX_LEN);
    p += NIXL_AUTH_PREFIX_LEN;
    uint8_t *signed_start = p;
    *p++ = VERSION;
    memcpy(p, verb, 4);
    p += 4;
    *p++ = (uint8_t)name_len;
    memcpy(p, sender, name_len);
    p += name_len;
    put_be64(p, wall_ms());
    p += 8;
    if (RAND_bytes(p, NONCE_LEN) != 1) {
        free(env);
        return NULL;
    }
    p += NONCE_LEN;
    put_be64(p, len);
    p += 8;
    if (len)
        memcpy(p, payload, len);
    p += len;
    if (!mac_of(a, ctx, bind, signed_start, (size_t)(p - signed_start), p)) {
        free(env);
        return NULL;
    }
    *out_len = total;
    return env;
}

/* Under a->lock: refuse a nonce seen (or older than what the cache still remembers), then
 * remember it. Stamps past the window need no memory: they are refused by time. */
static bool nonce_fresh(nixl_auth_t *a, const uint8_t *nonce, uint64_t ts_ms, uint64_t now_ms)
{
    uint64_t window_ms = (uint64_t)a->max_skew_s * 1000u;
    while (a->count && a->seen[a->head].ts_ms + window_ms < now_ms) {
        a->head = (a->head + 1) % NONCE_CACHE;
        a->count--;
    }
    if (ts_ms <= a->floor_ms)
        return false;
    for (size_t i = 0; i < a->count; i++)
        if (memcmp(a->seen[(a->head + i) % NONCE_CACHE].nonce, nonce, NONCE_LEN) == 0)
            return false;
    if (a->count == NONCE_CACHE) {
        if (a->seen[a->head].ts_ms > a->floor_ms)
            a->floor_ms = a->seen[a->head].ts_ms;
        a->head = (a->head + 1) % NONCE_CACHE;
        a->count--;
    }
    seen_t *s = &a->seen[(a->head + a->count) % NONCE_CACHE];
    memcpy(s->nonce, nonce, NONCE_LEN);
    s->ts_ms = ts_ms;
    a->count++;
    return true;
}

nixl_status_t nixl_auth_open(nixl_auth_t *a, nixl_auth_context_t ctx, const char *bind,
                             const uint8_t *env, size_t len, bool fresh, nixl_auth_msg_t *msg)
{
    if (!nixl_auth_is_envelope(env, len))
        return nixl_err(NIXL_ERR_NOT_ALLOWED, "not an authenticated message");
    const uint8_t *p = env + NIXL_AUTH_PREFIX_LEN;
    size_t left = len - NIXL_AUTH_PREFIX_LEN;
    if (left < FIXED_LEN + MAC_LEN || p[0] != VERSION)
        return nixl_err(NIXL_ERR_NOT_ALLOWED, "authenticated message of unknown version or "
                        "truncated (%zu bytes)", len);
    size_t name_len = p[5];
    if (left < FIXED_LEN + name_len + MAC_LEN)
        return nixl_err(NIXL_ERR_NOT_ALLOWED, "authenticated message truncated");
    const uint8_t *q = p + 6 + name_len;
    uint64_t ts = get_be64(q);
    const uint8_t *nonce = q + 8;
    uint64_t plen = get_be64(q + 8 + NONCE_LEN);
    size_t head = FIXED_LEN + name_len;
    if (plen != left - head - MAC_LEN)
        return nixl_err(NIXL_ERR_NOT_ALLOWED, "authenticated message: its payload length "
                        "does not match its size");
    uint8_t want[MAC_LEN];
    if (!mac_of(a, ctx, bind, p, left - MAC_LEN, want))
        return nixl_err(NIXL_ERR_BACKEND, "HMAC computation failed");
    if (CRYPTO_memcmp(want, p + left - MAC_LEN, MAC_LEN) != 0)
        return nixl_err(NIXL_ERR_NOT_ALLOWED, "the message's proof does not verify (a "
                        "different secret, altered bytes%s)",
                        bind ? ", or sealed for another key" : "");
    if (name_len == 0 || memchr(p + 6, 0, name_len))
        return nixl_err(NIXL_ERR_NOT_ALLOWED, "authenticated message without a sender name");
    if (fresh) {
        uint64_t now = wall_ms(), window = (uint64_t)a->max_skew_s * 1000u;
        if (ts + window < now || ts > now + window)
            return nixl_err(NIXL_ERR_NOT_ALLOWED, "the message is stamped %lld ms from now, "
                            "outside the accepted window of %u s (NIXL_AUTH_MAX_SKEW_S; are "
                            "the clocks synchronised?)", (long long)(ts - now),
                            a->max_skew_s);
        pthread_mutex_lock(&a->lock);
        bool ok = nonce_fresh(a, nonce, ts, now);
        pthread_mutex_unlock(&a->lock);
        if (!ok)
            return nixl_err(NIXL_ERR_NOT_ALLOWED, "the message was already received (a "
                            "replay)");
    }
    memcpy(msg->verb, p + 1, 4);
    msg->verb[4] = '\0';
    memcpy(msg->sender, p + 6, name_len);
    msg->sender[name_len] = '\0';
    msg->payload = p + head;
    msg->len = (size_t)plen;
    msg->ts_ms = ts;
    return NIXL_SUCCESS;
}

void nixl_auth_count_refused(nixl_auth_t *a)
{
    pthread_mutex_lock(&a->lock);
    a->refused++;
    pthread_mutex_unlock(&a->lock);
}

uint64_t nixl_auth_refused(const nixl_auth_t *a)
{
    nixl_auth_t *m = (nixl_auth_t *)a; /* the lock is state, not the value */
    pthread_mutex_lock(&m->lock);
    uint64_t n = m->refused;
    pthread_mutex_unlock(&m->lock);
    return n;
}
