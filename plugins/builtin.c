/* builtin.c - the plugins linked into libnixl (the table the core's loader searches first). */
#include "nixl_plugin.h"
#include "shm.h"

const nixl_builtin_plugin_t nixl_builtin_plugins[] = {
    {"SHM", nixl_shm_plugin_entry},
};
const size_t nixl_num_builtin_plugins = sizeof(nixl_builtin_plugins) / sizeof(nixl_builtin_plugins[0]);
