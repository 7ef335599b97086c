/* A plugin that needs a newer plugin ABI than this library has: the loader must refuse it with
 * a message naming both versions, and never create an engine. */
#include <stdlib.h>

#include "nixl_plugin.h"

static nixl_status_t never_create(const nixl_be_init_t *init, nixl_be_engine_t **out)
{
    (void)init, (void)out;
    abort(); /* the loader must refuse the plugin before any engine exists */
}

static const nixl_plugin_info_t info = {
    .struct_size = sizeof(nixl_plugin_info_t),
    .name = "BADABI",
    .version = "0",
    .caps = NIXL_BE_CAP_LOCAL,
};

static const nixl_be_ops_t ops = {
    .struct_size = sizeof(nixl_be_ops_t),
    .create = never_create,
};

__attribute__((visibility("default"))) const nixl_plugin_t *
nixl_c_plugin_entry(uint32_t host_abi_version);

const nixl_plugin_t *nixl_c_plugin_entry(uint32_t host_abi_version)
{
    static const nixl_plugin_t plugin = {
        .struct_size = sizeof(nixl_plugin_t),
        .abi_version = NIXL_PLUGIN_ABI_VERSION + 98,
        .abi_min = NIXL_PLUGIN_ABI_VERSION + 97,
        .info = &info,
        .ops = &ops,
    };
    (void)host_abi_version;
    return &plugin;
}
