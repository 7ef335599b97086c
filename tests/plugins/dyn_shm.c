/*
 * The SHM engine, loaded as a dynamic plugin named SHMDYN: exercises the dlopen path of the
 * loader with a real backend.
 */
#include "nixl_plugin.h"
#include "shm.h"

const nixl_backend_ops_t *nixl_plugin_init(void);

const nixl_backend_ops_t *nixl_plugin_init(void)
{
    static nixl_backend_ops_t table;
    table = *nixl_shm_plugin_init();
    table.name = "SHMDYN";
    return &table;
}
