/*
 * obj_core.c - what the object-store engines share beyond the worker: creation and destruction
 * of an engine of a protocol (OBJ's S3, AZURE_BLOB), the environment fallback of parameters, the
 * limits every protocol takes, and percent-encoding.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "be_param.h"
#include "obj_priv.h"

const char *obj_param_env(const nixl_be_init_t *init, const char *key, const char *const *envs)
{
    const char *v = nixl_be_param(init, key);
    if (v && *v)
        return v;
    for (; envs && *envs; envs++) {
        v = getenv(*envs);
        if (v && *v)
            return v;
    }
    return NULL;
}

bool obj_dup(char **dst, const char *v)
{
    *dst = NULL;
    if (!v)
        return true;
    *dst = strdup(v);
    return *dst != NULL;
}

bool obj_params_common(const nixl_be_init_t *init, obj_params_t *p, const char *thr_key,
                       const char *part_key, uint64_t part_min, uint64_t part_max)
{
    return nixl_be_param_u64(init, thr_key, 32ull << 20, part_min, 5ull << 40,
                             &p->mpu_threshold) &&
           nixl_be_param_u64(init, part_key, 8ull << 20, part_min, part_max, &p->part_size) &&
           nixl_be_param_u64(init, "max_inflight", 64, 1, 4096, &p->max_inflight) &&
           nixl_be_param_u64(init, "max_descs", 65536, 1, (uint64_t)1 << 32, &p->max_descs) &&
           nixl_be_param_u64(init, "stall_timeout_s", 30, 1, 86400, &p->stall_s) &&
           nixl_be_param_u64(init, "connect_timeout_s", 10, 1, 3600, &p->connect_s) &&
           nixl_be_param_u64(init, "vram_stage_max", 1ull << 30, 1ull << 20, 1ull << 40,
                             &p->vram_stage_max);
}

void obj_pct(const char *s, size_t n, bool keep_slash, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~' || (keep_slash && c == '/')) {
            *out++ = (char)c;
        } else {
            *out++ = '%';
            *out++ = hex[c >> 4];
            *out++ = hex[c & 15];
        }
    }
    *out = '\0';
}

void obj_engine_destroy(nixl_be_engine_t *eng)
{
    if (!eng)
        return;
    if (eng->multi) {
        obj_worker_stop(eng);
        curl_multi_cleanup(eng->multi);
    }
    if (eng->live_reqs)
        NIXL_BE_LOG(eng->host, NIXL_LOG_WARN, "engine destroyed with %zu request(s) alive",
                    eng->live_reqs);
    free(eng->mpu_ready);
    eng->proto->free(eng);
    pthread_cond_destroy(&eng->done_cv);
    pthread_mutex_destroy(&eng->lock);
    free(eng);
    curl_global_cleanup();
}

nixl_status_t obj_engine_create(const nixl_be_init_t *init, const obj_proto_t *proto,
                                nixl_be_engine_t **out)
{
    if (!init || !init->host || !out)
        return NIXL_ERR_INVALID_PARAM;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return NIXL_BE_ERR(init->host, NIXL_ERR_BACKEND, "curl_global_init failed");
    nixl_be_engine_t *eng = calloc(1, sizeof(*eng));
    if (!eng) {
        curl_global_cleanup();
        return NIXL_BE_ERR(init->host, NIXL_ERR_UNKNOWN, "out of memory");
    }
    eng->host = init->host;
    eng->proto = proto;
    pthread_mutex_init(&eng->lock, NULL);
    pthread_cond_init(&eng->done_cv, NULL);
    nixl_status_t st = proto->parse(init, eng);
    if (st != NIXL_SUCCESS) {
        obj_engine_destroy(eng);
        return st;
    }
    eng->multi = curl_multi_init();
    if (!eng->multi) {
        obj_engine_destroy(eng);
        return NIXL_BE_ERR(init->host, NIXL_ERR_BACKEND, "curl_multi_init failed");
    }
    /* Connections stay open between exchanges, as many as may run at once. */
    curl_multi_setopt(eng->multi, CURLMOPT_MAXCONNECTS, (long)eng->p.max_inflight);
    curl_multi_setopt(eng->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)eng->p.max_inflight);
    int rc = obj_worker_start(eng);
    if (rc != 0) {
        obj_engine_destroy(eng);
        return NIXL_BE_ERR(init->host, NIXL_ERR_BACKEND, "cannot start the worker thread: %s",
                           strerror(rc));
    }
    *out = eng;
    return NIXL_SUCCESS;
}
