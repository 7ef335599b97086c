/*
 * obj_engine.c - the OBJ (S3) storage plugin (libplugin_OBJ.so): its table, engine creation
 * and destruction.
 *
 * Local only, like the reference's: transfers are loopback requests to the agent's own name,
 * READ = object -> memory (at the descriptor's offset), WRITE = memory -> whole object. Memory
 * types DRAM and OBJ. HTTP through libcurl, signed by libcurl's own SigV4.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "be_storage.h"
#include "obj_priv.h"

/* Advertised as the reference does; empty values fall back to the AWS_* environment. */
static const nixl_param_t obj_default_params[] = {
    {"bucket", ""},        {"endpoint_override", ""},       {"access_key", ""},
    {"secret_key", ""},    {"session_token", ""},           {"scheme", "https"},
    {"region", ""},        {"use_virtual_addressing", "false"}, {"req_checksum", "supported"},
    {"resp_checksum", "supported"}, {"ca_bundle", ""},      {"crtMinLimit", "0"},
    {"accelerated", "false"},
};

static void obj_destroy(nixl_be_engine_t *eng)
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
    obj_params_free(&eng->p);
    pthread_cond_destroy(&eng->done_cv);
    pthread_mutex_destroy(&eng->lock);
    free(eng);
    curl_global_cleanup();
}

static nixl_status_t obj_create(const nixl_be_init_t *init, nixl_be_engine_t **out)
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
    pthread_mutex_init(&eng->lock, NULL);
    pthread_cond_init(&eng->done_cv, NULL);
    nixl_status_t st = obj_params_parse(init, &eng->p);
    if (st != NIXL_SUCCESS) {
        obj_destroy(eng);
        return st;
    }
    eng->multi = curl_multi_init();
    if (!eng->multi) {
        obj_destroy(eng);
        return NIXL_BE_ERR(init->host, NIXL_ERR_BACKEND, "curl_multi_init failed");
    }
    /* Connections stay open between exchanges, as many as may run at once. */
    curl_multi_setopt(eng->multi, CURLMOPT_MAXCONNECTS, (long)eng->p.max_inflight);
    curl_multi_setopt(eng->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)eng->p.max_inflight);
    int rc = obj_worker_start(eng);
    if (rc != 0) {
        obj_destroy(eng);
        return NIXL_BE_ERR(init->host, NIXL_ERR_BACKEND, "cannot start the worker thread: %s",
                           strerror(rc));
    }
    NIXL_BE_LOG(eng->host, NIXL_LOG_INFO,
                "engine of '%s': bucket '%s' at %s (%s, %s), up to %llu exchanges in flight, "
                "multipart from %llu bytes",
                init->local_agent ? init->local_agent : "", eng->p.bucket, eng->p.base,
                eng->p.virtual_host ? "virtual-host addressing" : "path addressing",
                eng->p.sigv4 ? "SigV4" : "unsigned", (unsigned long long)eng->p.max_inflight,
                (unsigned long long)eng->p.mpu_threshold);
    *out = eng;
    return NIXL_SUCCESS;
}

static const nixl_plugin_info_t obj_info = {
    .struct_size = sizeof(nixl_plugin_info_t),
    .name = OBJ_NAME,
    .version = NIXL_VERSION_STRING,
    .caps = NIXL_BE_CAP_LOCAL,
    .mems = NIXL_MEM_BIT(NIXL_DRAM_SEG) | NIXL_MEM_BIT(NIXL_OBJ_SEG),
    .default_params = obj_default_params,
    .num_default_params = sizeof(obj_default_params) / sizeof(obj_default_params[0]),
};

static const nixl_be_ops_t obj_ops = {
    .struct_size = sizeof(nixl_be_ops_t),
    .create = obj_create,
    .destroy = obj_destroy,
    .register_mem = obj_register_mem,
    .deregister_mem = obj_deregister_mem,
    .load_local_md = nixl_be_load_self, /* the loopback target is the registration */
    .prep_xfer = obj_prep_xfer,
    .post_xfer = obj_post_xfer,
    .check_xfer = obj_check_xfer,
    .release_req = obj_release_req,
    .query_mem = obj_query_mem,
    .cancel_xfer = obj_cancel_xfer,
};

NIXL_PLUGIN_EXPORT_ENTRY(&obj_info, &obj_ops)
