/*
 * plugin.h - the process-wide plugin manager: built-in plugins, and libplugin_<NAME>.so files
 * in the plugin directory (NIXL_PLUGIN_DIR, else plugins/ beside libnixl.so), opened only when
 * a plugin is first needed and kept for the life of the process.
 *
 * A plugin's tables are read once, when it is first needed, into a record of the sizes this
 * library knows: fields and operations past the end of the plugin's tables read as absent, and
 * absent optional operations get the core's defaults. The rest of the core calls the record's
 * operations without checking for NULL.
 */
#ifndef NIXL_CORE_PLUGIN_H
#define NIXL_CORE_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>

#include "nixl_plugin.h"

typedef struct nixl_plugin_rec {
    char name[65];
    bool builtin;
    uint32_t abi_version;   /* what the plugin was built against */
    nixl_plugin_info_t info; /* the plugin's description, at our size */
    nixl_be_ops_t ops;       /* every operation set: the plugin's, or the core's default */
} nixl_plugin_rec_t;

/* The record of plugin `name`, loading it if needed (stable for the life of the process).
 * NIXL_ERR_NOT_FOUND with a reason naming the file and why when it cannot be loaded or is
 * refused. */
nixl_status_t nixl_plugin_get(const char *name, const nixl_plugin_rec_t **out);

/* Names of loaded plugins (sorted), then of plugin files found and not loaded (sorted). One
 * allocation (array of pointers followed by the strings): free with free(). */
nixl_status_t nixl_plugin_list(char ***out, size_t *count);

/* The directory searched now: NIXL_PLUGIN_DIR, else <dir of libnixl>/plugins (malloc'ed). */
char *nixl_plugin_dir(void);

#endif
