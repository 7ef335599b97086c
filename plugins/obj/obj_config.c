/*
 * obj_config.c - the OBJ backend's parameters and object URLs.
 *
 * Reference parameters (an unset or empty value falls back to the environment, then to the
 * default):
 *   bucket                  AWS_DEFAULT_BUCKET; required
 *   endpoint_override       AWS_ENDPOINT_OVERRIDE, AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL; else
 *                           s3.<region>.amazonaws.com. "host[:port]" or "scheme://host[:port]"
 *   scheme                  http | https (default https); an endpoint with a scheme keeps its own
 *   region                  AWS_REGION, AWS_DEFAULT_REGION; default us-east-1
 *   access_key, secret_key  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY; none: unsigned requests
 *   session_token           AWS_SESSION_TOKEN (sent as x-amz-security-token, signed)
 *   use_virtual_addressing  bucket in the host name instead of the path (default false)
 *   req_checksum            supported | required: required sends Content-MD5 with every upload,
 *                           which the server verifies (needs libcrypto in the build)
 *   resp_checksum           supported | required: accepted; see docs/backends.md
 *   ca_bundle               AWS_CA_BUNDLE; CA file for https
 *   crtMinLimit             > 0: objects of at least this size go as multipart uploads (the
 *                           reference sends them through its CRT client, which does multipart)
 *   accelerated, type       vendor-accelerated clients: not available, accelerated=true refused
 *   throughput_target_gbps, num_threads   accepted, no effect (see docs/backends.md)
 * Ours: multipart_threshold (32 MiB), multipart_part_size (8 MiB), max_inflight (64),
 *   max_descs (65536), stall_timeout_s (30), connect_timeout_s (10).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "be_param.h"
#include "s3_priv.h"

/* supported|required (case-insensitive); unset is supported. */
static bool parse_checksum(const nixl_be_init_t *init, const char *key, bool *required)
{
    const char *v = nixl_be_param(init, key);
    *required = false;
    if (!v || !*v || !strcasecmp(v, "supported") || !strcasecmp(v, "when_supported"))
        return true;
    if (!strcasecmp(v, "required") || !strcasecmp(v, "when_required")) {
        *required = true;
        return true;
    }
    (void)NIXL_BE_ERR(init->host, NIXL_ERR_INVALID_PARAM,
                      "parameter %s='%s' must be 'supported' or 'required'", key, v);
    return false;
}

void obj_params_free(nixl_be_engine_t *eng)
{
    obj_params_t *p = &eng->p;
    free(p->bucket);
    free(p->base);
    free(p->access_key);
    free(p->secret_key);
    free(p->session_token);
    free(p->region);
    free(p->ca_bundle);
    free(p->sigv4);
    *p = (obj_params_t){0};
}

/* base = scheme://[bucket.]host[:port] from the endpoint (or the AWS default for the region). */
static nixl_status_t make_base(const nixl_be_init_t *init, obj_params_t *p, const char *endpoint,
                               const char *scheme)
{
    char host[512];
    const char *sep = endpoint ? strstr(endpoint, "://") : NULL;
    if (sep) {
        size_t sl = (size_t)(sep - endpoint);
        if (!((sl == 4 && !strncasecmp(endpoint, "http", 4)) ||
              (sl == 5 && !strncasecmp(endpoint, "https", 5))))
            return NIXL_BE_ERR(init->host, NIXL_ERR_INVALID_PARAM,
                               "endpoint_override '%s': the scheme must be http or https",
                               endpoint);
        scheme = sl == 4 ? "http" : "https";
        endpoint = sep + 3;
    }
    if (endpoint) {
        size_t hl = strcspn(endpoint, "/");
        if (!hl || hl >= sizeof(host) || strspn(endpoint + hl, "/") != strlen(endpoint + hl))
            return NIXL_BE_ERR(init->host, NIXL_ERR_INVALID_PARAM,
                               "endpoint_override '%s' must be [scheme://]host[:port] with no "
                               "path", endpoint);
        memcpy(host, endpoint, hl);
        host[hl] = '\0';
    } else {
        snprintf(host, sizeof(host), "s3.%s.amazonaws.com", p->region);
    }
    size_t n = strlen(scheme) + strlen(host) + strlen(p->bucket) + 8;
    p->base = malloc(n);
    if (!p->base)
        return NIXL_BE_ERR(init->host, NIXL_ERR_UNKNOWN, "out of memory");
    if (p->virtual_host)
        snprintf(p->base, n, "%s://%s.%s", scheme, p->bucket, host);
    else
        snprintf(p->base, n, "%s://%s", scheme, host);
    return NIXL_SUCCESS;
}

nixl_status_t obj_params_parse(const nixl_be_init_t *init, nixl_be_engine_t *eng)
{
    obj_params_t *out = &eng->p;
    static const char *const env_bucket[] = {"AWS_DEFAULT_BUCKET", NULL};
    static const char *const env_endpoint[] = {"AWS_ENDPOINT_OVERRIDE", "AWS_ENDPOINT_URL_S3",
                                               "AWS_ENDPOINT_URL", NULL};
    static const char *const env_region[] = {"AWS_REGION", "AWS_DEFAULT_REGION", NULL};
    static const char *const env_ak[] = {"AWS_ACCESS_KEY_ID", NULL};
    static const char *const env_sk[] = {"AWS_SECRET_ACCESS_KEY", NULL};
    static const char *const env_tok[] = {"AWS_SESSION_TOKEN", NULL};
    static const char *const env_ca[] = {"AWS_CA_BUNDLE", NULL};
    obj_params_t p = {0};
    nixl_status_t st = NIXL_ERR_INVALID_PARAM;
    bool resp_required, accelerated;
    uint64_t crt_min = 0;
    const char *bucket = obj_param_env(init, "bucket", env_bucket);
    const char *region = obj_param_env(init, "region", env_region);
    const char *scheme = nixl_be_param(init, "scheme");
    if (!scheme || !*scheme)
        scheme = "https";
    if (strcasecmp(scheme, "http") && strcasecmp(scheme, "https"))
        return NIXL_BE_ERR(init->host, NIXL_ERR_INVALID_PARAM,
                           "parameter scheme='%s' must be http or https", scheme);
    scheme = strcasecmp(scheme, "http") ? "https" : "http";
    if (!bucket)
        return NIXL_BE_ERR(init->host, NIXL_ERR_INVALID_PARAM,
                           "no bucket: set the 'bucket' parameter or AWS_DEFAULT_BUCKET");
    if (strchr(bucket, '/') || strlen(bucket) > 255)
        return NIXL_BE_ERR(init->host, NIXL_ERR_INVALID_PARAM,
                           "bucket '%s' is not a bucket name", bucket);
    if (!nixl_be_param_bool(init, "use_virtual_addressing", &p.virtual_host) ||
        !parse_checksum(init, "req_checksum", &p.checksum) ||
        !parse_checksum(init, "resp_checksum", &resp_required) ||
        !nixl_be_param_bool(init, "accelerated", &accelerated) ||
        !nixl_be_param_u64(init, "crtMinLimit", 0, 0, UINT64_MAX, &crt_min) ||
        !obj_params_common(init, &p, "multipart_threshold", "multipart_part_size",
                           OBJ_MIN_PART, 5ull << 30))
        return NIXL_ERR_INVALID_PARAM;
    if (accelerated)
        return NIXL_BE_ERR(init->host, NIXL_ERR_NOT_SUPPORTED,
                           "accelerated=true: this build has no vendor-accelerated object "
                           "client; leave it false");
#ifndef NIXL_OBJ_HAVE_MD5
    if (p.checksum)
        return NIXL_BE_ERR(init->host, NIXL_ERR_NOT_SUPPORTED,
                           "req_checksum=required needs Content-MD5, and this build has no "
                           "libcrypto");
#endif
    if (crt_min) /* the reference's large-object path: multipart above this size */
        p.mpu_threshold = crt_min > OBJ_MIN_PART ? crt_min : OBJ_MIN_PART;
    const char *ak = obj_param_env(init, "access_key", env_ak);
    const char *sk = obj_param_env(init, "secret_key", env_sk);
    if (!ak != !sk)
        return NIXL_BE_ERR(init->host, NIXL_ERR_INVALID_PARAM,
                           "access_key and secret_key go together: %s is set, %s is not "
                           "(parameters or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)",
                           ak ? "access_key" : "secret_key", ak ? "secret_key" : "access_key");
    if (!obj_dup(&p.bucket, bucket) || !obj_dup(&p.region, region ? region : "us-east-1") ||
        !obj_dup(&p.access_key, ak) || !obj_dup(&p.secret_key, sk) ||
        !obj_dup(&p.session_token, obj_param_env(init, "session_token", env_tok)) ||
        !obj_dup(&p.ca_bundle, obj_param_env(init, "ca_bundle", env_ca))) {
        st = NIXL_BE_ERR(init->host, NIXL_ERR_UNKNOWN, "out of memory");
        goto fail;
    }
    if (strchr(p.region, ':')) {
        st = NIXL_BE_ERR(init->host, NIXL_ERR_INVALID_PARAM, "region '%s' is not a region name",
                         p.region);
        goto fail;
    }
    st = make_base(init, &p, obj_param_env(init, "endpoint_override", env_endpoint), scheme);
    if (st != NIXL_SUCCESS)
        goto fail;
    if (p.access_key) {
        size_t n = strlen(p.region) + 16;
        p.sigv4 = malloc(n);
        if (!p.sigv4) {
            st = NIXL_BE_ERR(init->host, NIXL_ERR_UNKNOWN, "out of memory");
            goto fail;
        }
        snprintf(p.sigv4, n, "aws:amz:%s:s3", p.region);
    }
    *out = p;
    return NIXL_SUCCESS;
fail:
    eng->p = p;
    obj_params_free(eng);
    return st;
}

char *obj_url(const nixl_be_engine_t *eng, const char *key, size_t klen)
{
    const obj_params_t *p = &eng->p;
    size_t n = strlen(p->base) + strlen(p->bucket) + 3 * klen + 4;
    char *u = malloc(n);
    if (!u)
        return NULL;
    /* S3 keys are signed as their RFC 3986 encoding with '/' kept. */
    if (p->virtual_host)
        obj_pct(key, klen, true, u + snprintf(u, n, "%s/", p->base));
    else
        obj_pct(key, klen, true, u + snprintf(u, n, "%s/%s/", p->base, p->bucket));
    return u;
}
