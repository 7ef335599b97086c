/*
 * The SHM engine, loaded as a dynamic plugin named SHMDYN: exercises the dlopen path of the
 * loader with a real backend.
 */
#include "nixl_plugin.h"
#include "shm.h"

__attribute__((visibility("default"))) const nixl_plugin_t *
nixl_c_plugin_entry(uint32_t host_abi_version);

const nixl_plugin_t *nixl_c_plugin_entry(uint32_t host_abi_version)
{
    static nixl_plugin_info_t info;
    static nixl_plugin_t plugin;
    const nixl_plugin_t *shm = nixl_shm_plugin_entry(host_abi_version);
    info = *shm->info;
    info.name = "SHMDYN";
    plugin = *shm;
    plugin.info = &info;
    return &plugin;
}
