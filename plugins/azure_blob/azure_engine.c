/*
 * azure_engine.c - the AZURE_BLOB storage plugin (libplugin_AZURE_BLOB.so): its table and
 * engine creation. The engine is the object-store engine of plugins/obj (one curl multi handle
 * driven by one worker thread, releases that cancel what is in flight, query_mem through HEAD)
 * with the Azure Blob protocol: Put Blob, or Put Block + Put Block List from max_single_put_size
 * on, and Get Blob with x-ms-range.
 *
 * Local only, like the reference's: READ = blob -> memory (at the descriptor's offset), WRITE =
 * memory -> whole blob. Memory types DRAM and OBJ.
 */
#include <stdio.h>

#include "azure_priv.h"
#include "be_storage.h"

/* Advertised as the reference does; empty values fall back to the AZURE_STORAGE_* environment. */
static const nixl_param_t az_default_params[] = {
    {"account_url", ""}, {"container_name", ""}, {"connection_string", ""}, {"ca_bundle", ""},
};

static const obj_proto_t az_proto = {
    .name = AZ_NAME,
    .mpu_init = false,  /* block ids are ours: the blocks go at once */
    .part_etag = false, /* the block list names the blocks by id */
    .mpu_abort = false, /* uncommitted blocks expire on the server */
    .max_parts = AZ_MAX_BLOCKS,
    .kind_name = {"Get Blob", "Put Blob", "-", "Put Block", "Put Block List", "-",
                  "Get Blob Properties"},
    .parse = az_params_parse,
    .free = az_params_free,
    .url = az_url,
    .query = az_query,
    .build = az_build,
};

static nixl_status_t az_create(const nixl_be_init_t *init, nixl_be_engine_t **out)
{
    nixl_status_t st = obj_engine_create(init, &az_proto, out);
    if (st != NIXL_SUCCESS)
        return st;
    const nixl_be_engine_t *eng = *out;
    const az_params_t *az = eng->pd;
    NIXL_BE_LOG(eng->host, NIXL_LOG_INFO,
                "engine of '%s': container '%s' of account '%s' at %s (%s), up to %llu exchanges "
                "in flight, staged blocks from %llu bytes",
                init->local_agent ? init->local_agent : "", az->container, az->account, az->base,
                az->auth, (unsigned long long)eng->p.max_inflight,
                (unsigned long long)eng->p.mpu_threshold);
    return NIXL_SUCCESS;
}

static const nixl_plugin_info_t az_info = {
    .struct_size = sizeof(nixl_plugin_info_t),
    .name = AZ_NAME,
    .version = NIXL_VERSION_STRING,
    .caps = NIXL_BE_CAP_LOCAL,
    .mems = NIXL_MEM_BIT(NIXL_DRAM_SEG) | NIXL_MEM_BIT(NIXL_VRAM_SEG) | NIXL_MEM_BIT(NIXL_OBJ_SEG),
    .default_params = az_default_params,
    .num_default_params = sizeof(az_default_params) / sizeof(az_default_params[0]),
};

static const nixl_be_ops_t az_ops = OBJ_PLUGIN_OPS(az_create);

NIXL_PLUGIN_EXPORT_ENTRY(&az_info, &az_ops)
