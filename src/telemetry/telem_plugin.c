/*
 * telem_plugin.c - finding an exporter by name: the built-in BUFFER, or the plugin
 * libtelemetry_exporter_<name>.so in the plugin directory (include/nixl_telemetry_plugin.h),
 * loaded once per process and never unloaded; and the services the library offers exporters.
 */
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config.h"
#include "elf_exports.h"
#include "error.h"
#include "log.h"
#include "telem.h"

#define MAX_LOADED 8
#define HOST_MSG_MAX 1024

static pthread_mutex_t loaded_lock = PTHREAD_MUTEX_INITIALIZER;
static const nixl_telemetry_exporter_ops_t *loaded[MAX_LOADED];
static size_t num_loaded;

static bool name_valid(const char *name)
{
    if (!*name || strlen(name) > 64)
        return false;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-'))
            return false;
    return true;
}

/* Check a table a plugin handed us; reason set when refused. */
static nixl_status_t adopt(const nixl_telemetry_exporter_ops_t *ops, const char *name,
                           const char *path)
{
    if (!ops)
        return nixl_err(NIXL_ERR_NOT_SUPPORTED, "telemetry exporter %s: %s returned no table",
                        name, path);
    if (ops->struct_size < offsetof(nixl_telemetry_exporter_ops_t, destroy) + sizeof(ops->destroy))
        return nixl_err(NIXL_ERR_NOT_SUPPORTED, "telemetry exporter %s: %s: its table (%zu "
                        "bytes) is too short for this library", name, path, ops->struct_size);
    if (ops->min_abi > NIXL_TELEMETRY_EXPORTER_ABI_VERSION)
        return nixl_err(NIXL_ERR_NOT_SUPPORTED, "telemetry exporter %s: %s needs exporter ABI "
                        "%u, this library has %u", name, path, ops->min_abi,
                        NIXL_TELEMETRY_EXPORTER_ABI_VERSION);
    if (!ops->create || !ops->export_events || !ops->destroy || !ops->name)
        return nixl_err(NIXL_ERR_NOT_SUPPORTED, "telemetry exporter %s: %s: create, "
                        "export_events, destroy and name are required", name, path);
    if (strcmp(ops->name, name) != 0)
        return nixl_err(NIXL_ERR_NOT_SUPPORTED, "telemetry exporter %s: %s calls itself '%s'",
                        name, path, ops->name);
    return NIXL_SUCCESS;
}

/* No file for exporter `name`: say why, knowing what the tree provides. */
static nixl_status_t missing(const char *name, const char *path)
{
    if (strcmp(name, "prometheus") == 0 || strcmp(name, "prometheus_mp") == 0) {
        if (!NIXL_PROMETHEUS_BUILT)
            return nixl_err(NIXL_ERR_NOT_SUPPORTED, "telemetry exporter %s: this build of nixl "
                            "has no Prometheus exporters (they need libmicrohttpd: install "
                            "libmicrohttpd-dev and rebuild)", name);
        return nixl_err(NIXL_ERR_NOT_SUPPORTED, "telemetry exporter %s: %s is missing (is "
                        "NIXL_PLUGIN_DIR the directory of the installed plugins?)", name, path);
    }
    if (strcmp(name, "doca") == 0)
        return nixl_err(NIXL_ERR_NOT_SUPPORTED, "telemetry exporter doca: not provided by this "
                        "implementation (docs/differences.md)");
    return nixl_err(NIXL_ERR_NOT_FOUND, "NIXL_TELEMETRY_EXPORTER=%s: no such telemetry exporter "
                    "(built in: BUFFER, NOP; plugins: %s not found)", name, path);
}

nixl_status_t nixl_telem_exporter_find(const char *name, const char *plugin_dir,
                                       const nixl_telemetry_exporter_ops_t **out)
{
    if (strcasecmp(name, nixl_telem_buffer_exporter.name) == 0) {
        *out = &nixl_telem_buffer_exporter;
        return NIXL_SUCCESS;
    }
    if (!name_valid(name))
        return nixl_err(NIXL_ERR_NOT_FOUND, "NIXL_TELEMETRY_EXPORTER=%s: not a valid exporter "
                        "name (letters, digits, _ and -)", name);
    pthread_mutex_lock(&loaded_lock);
    for (size_t i = 0; i < num_loaded; i++)
        if (strcmp(loaded[i]->name, name) == 0) {
            *out = loaded[i];
            pthread_mutex_unlock(&loaded_lock);
            return NIXL_SUCCESS;
        }
    nixl_status_t st;
    char path[PATH_MAX];
    int n = snprintf(path, sizeof(path), "%s/" NIXL_TELEMETRY_EXPORTER_PREFIX "%s.so",
                     plugin_dir ? plugin_dir : ".", name);
    if (n < 0 || (size_t)n >= sizeof(path)) {
        st = nixl_err(NIXL_ERR_NOT_FOUND, "telemetry exporter %s: path too long", name);
        goto out;
    }
    if (access(path, F_OK) != 0) {
        st = missing(name, path);
        goto out;
    }
    /* Look before loading: a file that is not one of our exporters must not run. */
    static const char *const entry_name[] = {NIXL_TELEMETRY_EXPORTER_ENTRY_SYMBOL};
    bool has[1];
    nixl_elf_result_t es = nixl_elf_file_exports(path, entry_name, 1, has);
    if (es == NIXL_ELF_ABSENT && !has[0]) {
        st = nixl_err(NIXL_ERR_NOT_SUPPORTED, "telemetry exporter %s: %s exports no %s (not an "
                      "exporter of this library); it was not loaded", name, path,
                      NIXL_TELEMETRY_EXPORTER_ENTRY_SYMBOL);
        goto out;
    }
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!h) {
        const char *why = dlerror();
        st = nixl_err(NIXL_ERR_NOT_FOUND, "NIXL_TELEMETRY_EXPORTER=%s: no such telemetry "
                      "exporter: built in are BUFFER and NOP, and %s cannot be loaded (%s)",
                      name, path, why ? why : "unknown reason");
        goto out;
    }
    nixl_telemetry_exporter_entry_t entry;
    *(void **)&entry = dlsym(h, NIXL_TELEMETRY_EXPORTER_ENTRY_SYMBOL);
    if (!entry) {
        st = nixl_err(NIXL_ERR_NOT_SUPPORTED, "telemetry exporter %s: %s exports no %s", name,
                      path, NIXL_TELEMETRY_EXPORTER_ENTRY_SYMBOL);
        dlclose(h);
        goto out;
    }
    const nixl_telemetry_exporter_ops_t *ops = entry();
    st = adopt(ops, name, path);
    if (st != NIXL_SUCCESS) {
        dlclose(h);
        goto out;
    }
    if (num_loaded == MAX_LOADED) {
        st = nixl_err(NIXL_ERR_NOT_ALLOWED, "telemetry exporter %s: at most %d exporter plugins "
                      "per process", name, MAX_LOADED);
        goto out; /* the handle stays open (RTLD_NODELETE): harmless */
    }
    loaded[num_loaded++] = ops;
    NIXL_INFO("loaded telemetry exporter %s from %s (version %s)", name, path,
              ops->version ? ops->version : "?");
    *out = ops;
out:
    pthread_mutex_unlock(&loaded_lock);
    return st;
}

/* ---- the host services ---- */

static nixl_status_t host_config_string(const nixl_telemetry_host_t *host, const char *name,
                                        char **out)
{
    (void)host;
    return nixl_config_string(name, out);
}

__attribute__((format(printf, 3, 4))) static void host_log(const nixl_telemetry_host_t *host,
                                                          nixl_log_level_t level,
                                                          const char *fmt, ...)
{
    char who[96];
    snprintf(who, sizeof(who), "telemetry exporter %s", (const char *)host->priv);
    va_list ap;
    va_start(ap, fmt);
    nixl_log_vwrite_from(level, who, fmt, ap);
    va_end(ap);
}

__attribute__((format(printf, 3, 4))) static void host_fail(const nixl_telemetry_host_t *host,
                                                           nixl_status_t status,
                                                           const char *fmt, ...)
{
    char text[HOST_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    nixl_err_set("telemetry exporter %s: %s", (const char *)host->priv, text);
    NIXL_DEBUG("telemetry exporter %s: failing with status %d: %s", (const char *)host->priv,
               (int)status, text);
}

void nixl_telem_host_init(nixl_telemetry_host_t *host, const char *exporter_name)
{
    *host = (nixl_telemetry_host_t){
        .struct_size = sizeof(*host),
        .config_string = host_config_string,
        .log = host_log,
        .fail = host_fail,
        .priv = exporter_name,
    };
}
