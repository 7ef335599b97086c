/* plugin_builtin.h - the plugins linked into libnixl. */
#ifndef NIXL_CORE_PLUGIN_BUILTIN_H
#define NIXL_CORE_PLUGIN_BUILTIN_H

#include "nixl_plugin.h"

typedef struct nixl_builtin_plugin {
    const char *name;
    nixl_plugin_init_fn init;
} nixl_builtin_plugin_t;

extern const nixl_builtin_plugin_t nixl_builtin_plugins[];
extern const size_t nixl_num_builtin_plugins;

#endif
