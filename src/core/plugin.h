/*
 * plugin.h - the process-wide plugin manager: built-in plugins, and libplugin_<NAME>.so files
 * in the plugin directory (NIXL_PLUGIN_DIR, else plugins/ beside libnixl.so), opened only when
 * a plugin is first needed and kept for the life of the process.
 */
#ifndef NIXL_CORE_PLUGIN_H
#define NIXL_CORE_PLUGIN_H

#include <stddef.h>

#include "nixl_plugin.h"

/* The table of plugin `name`, loading it if needed. NIXL_ERR_NOT_FOUND with a reason naming the
 * file and the loader's error when it cannot be loaded or is refused. */
nixl_status_t nixl_plugin_get(const char *name, const nixl_backend_ops_t **out);

/* Names of loaded plugins (sorted), then of plugin files found and not loaded (sorted). One
 * allocation (array of pointers followed by the strings): free with free(). */
nixl_status_t nixl_plugin_list(char ***out, size_t *count);

/* The directory searched now: NIXL_PLUGIN_DIR, else <dir of libnixl>/plugins (malloc'ed). */
char *nixl_plugin_dir(void);

#endif
