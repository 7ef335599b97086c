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
#include "s3_priv.h"

/* Advertised as the reference does; empty values fall back to the AWS_* environment. */
static const nixl_param_t obj_default_params[] = {
    {"bucket", ""},        {"endpoint_override", ""},       {"access_key", ""},
    {"secret_key", ""},    {"session_token", ""},           {"scheme", "https"},
    {"region", ""},        {"use_virtual_addressing", "false"}, {"req_checksum", "supported"},
    {"resp_checksum", "supported"}, {"ca_bundle", ""},      {"crtMinLimit", "0"},
    {"accelerated", "false"},
};

/* The S3 protocol: obj_config.c (parameters, URLs) and s3_req.c (queries, requests). */
static const obj_proto_t s3_proto = {
    .name = OBJ_NAME,
    .mpu_init = true,
    .part_etag = true,
    .mpu_abort = true,
    .max_parts = OBJ_MAX_PARTS,
    .kind_name = {"GET", "PUT", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload",
                  "AbortMultipartUpload", "HEAD"},
    .parse = obj_params_parse,
    .free = obj_params_free,
    .url = obj_url,
    .query = s3_query,
    .build = s3_build,
};

static nixl_status_t obj_create(const nixl_be_init_t *init, nixl_be_engine_t **out)
{
    nixl_status_t st = obj_engine_create(init, &s3_proto, out);
    if (st != NIXL_SUCCESS)
        return st;
    nixl_be_engine_t *eng = *out;
    NIXL_BE_LOG(eng->host, NIXL_LOG_INFO,
                "engine of '%s': bucket '%s' at %s (%s, %s), up to %llu exchanges in flight, "
                "multipart from %llu bytes",
                init->local_agent ? init->local_agent : "", eng->p.bucket, eng->p.base,
                eng->p.virtual_host ? "virtual-host addressing" : "path addressing",
                eng->p.sigv4 ? "SigV4" : "unsigned", (unsigned long long)eng->p.max_inflight,
                (unsigned long long)eng->p.mpu_threshold);
    return NIXL_SUCCESS;
}

static const nixl_plugin_info_t obj_info = {
    .struct_size = sizeof(nixl_plugin_info_t),
    .name = OBJ_NAME,
    .version = NIXL_VERSION_STRING,
    .caps = NIXL_BE_CAP_LOCAL,
    .mems = NIXL_MEM_BIT(NIXL_DRAM_SEG) | NIXL_MEM_BIT(NIXL_VRAM_SEG) | NIXL_MEM_BIT(NIXL_OBJ_SEG),
    .default_params = obj_default_params,
    .num_default_params = sizeof(obj_default_params) / sizeof(obj_default_params[0]),
};

static const nixl_be_ops_t obj_ops = OBJ_PLUGIN_OPS(obj_create);

NIXL_PLUGIN_EXPORT_ENTRY(&obj_info, &obj_ops)
