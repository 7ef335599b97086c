/* A plugin built against another ABI version: the loader must refuse it with a message. */
#include "nixl_plugin.h"

const nixl_backend_ops_t *nixl_plugin_init(void);

static const nixl_backend_ops_t table = {
    .struct_size = sizeof(nixl_backend_ops_t),
    .abi_version = NIXL_PLUGIN_ABI_VERSION + 98,
    .name = "BADABI",
    .version = "0",
};

const nixl_backend_ops_t *nixl_plugin_init(void)
{
    return &table;
}
