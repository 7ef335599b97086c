#include "plugin.h"

#include <dirent.h>
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "array.h"
#include "config.h"
#include "error.h"
#include "elf_exports.h"
#include "log.h"


#define PLUGIN_PREFIX "libplugin_"
#define PLUGIN_SUFFIX ".so"
#define MAX_LOADED 64

/* Loaded plugins, built-in and from files: records never move once published, since engines
 * point at them. Plugins are never unloaded: engines and their threads may hold code of the
 * plugin until process exit. */
static pthread_mutex_t plugins_lock = PTHREAD_MUTEX_INITIALIZER;
static nixl_plugin_rec_t loaded[MAX_LOADED];
static size_t num_loaded;

char *nixl_plugin_dir(void)
{
    char *dir = NULL;
    if (nixl_config_string("NIXL_PLUGIN_DIR", &dir) == NIXL_SUCCESS && dir && *dir)
        return dir;
    free(dir);
    Dl_info info;
    if (!dladdr((void *)nixl_plugin_dir, &info) || !info.dli_fname)
        return strdup("plugins");
    const char *slash = strrchr(info.dli_fname, '/');
    size_t n = slash ? (size_t)(slash - info.dli_fname) : 1;
    const char *base = slash ? info.dli_fname : ".";
    size_t len = n + sizeof("/plugins");
    dir = malloc(len);
    if (dir)
        snprintf(dir, len, "%.*s/plugins", (int)n, base);
    return dir;
}

static bool name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* ---- the core's defaults for optional operations (written once, for every plugin) ----
 * They give no reason: the caller, which knows the backend's name and the user's call, says
 * what was not supported. */

static void default_unload_md(nixl_be_engine_t *eng, const nixl_be_mds_t *mds)
{
    (void)eng, (void)mds;
}

static nixl_status_t default_peer_op(nixl_be_engine_t *eng, const char *agent)
{
    (void)eng, (void)agent;
    return NIXL_SUCCESS;
}

static nixl_status_t default_progress(nixl_be_engine_t *eng)
{
    (void)eng;
    return NIXL_SUCCESS;
}

static nixl_status_t default_gen_notif(nixl_be_engine_t *eng, const char *agent, const void *msg,
                                       size_t len)
{
    (void)eng, (void)agent, (void)msg, (void)len;
    return NIXL_ERR_NOT_SUPPORTED;
}

static nixl_status_t default_query_mem(nixl_be_engine_t *eng, nixl_mem_t type,
                                       const nixl_reg_desc_t *descs, size_t count,
                                       nixl_query_resp_t *out)
{
    (void)eng, (void)type, (void)descs, (void)count, (void)out;
    return NIXL_ERR_NOT_SUPPORTED;
}

static nixl_status_t default_estimate_cost(nixl_be_engine_t *eng, nixl_be_req_t *req,
                                           int64_t *duration_us, int64_t *err_margin_us,
                                           nixl_cost_t *method)
{
    (void)eng, (void)req, (void)duration_us, (void)err_margin_us, (void)method;
    return NIXL_ERR_NOT_SUPPORTED;
}

/* Copy a table that starts with its size into `dst` (ours, `dst_size` bytes): what the plugin's
 * table does not reach reads as zero. NULL or a size too small to hold the size field: false. */
static bool copy_sized(void *dst, size_t dst_size, const void *src)
{
    memset(dst, 0, dst_size);
    if (!src)
        return false;
    size_t n;
    memcpy(&n, src, sizeof(n));
    if (n < sizeof(size_t))
        return false;
    memcpy(dst, src, n < dst_size ? n : dst_size);
    return true;
}

/* Read a plugin's description into `rec`, check it, and give absent optional operations their
 * defaults. Refusals name `where` (the file, or "built-in"). */
static nixl_status_t plugin_adopt(const nixl_plugin_t *p, const char *name, const char *where,
                                  nixl_plugin_rec_t *rec)
{
    nixl_plugin_t d;
    if (!copy_sized(&d, sizeof(d), p))
        return nixl_err(NIXL_ERR_NOT_FOUND, "plugin %s (%s): the entry point returned %s", name,
                        where, p ? "a description without a size" : "nothing");
    if (d.abi_min > NIXL_PLUGIN_ABI_VERSION)
        return nixl_err(NIXL_ERR_NOT_FOUND,
                        "plugin %s (%s) needs plugin ABI %u or newer; this library has ABI %u "
                        "(use a newer libnixl, or rebuild the plugin against this nixl_plugin.h)",
                        name, where, d.abi_min, NIXL_PLUGIN_ABI_VERSION);
    if (d.abi_version < NIXL_PLUGIN_ABI_OLDEST)
        return nixl_err(NIXL_ERR_NOT_FOUND,
                        "plugin %s (%s) was built for plugin ABI %u; this library loads ABI %u "
                        "to %u (rebuild the plugin against this nixl_plugin.h)",
                        name, where, d.abi_version, NIXL_PLUGIN_ABI_OLDEST,
                        NIXL_PLUGIN_ABI_VERSION);
    memset(rec, 0, sizeof(*rec));
    if (!copy_sized(&rec->info, sizeof(rec->info), d.info) ||
        !copy_sized(&rec->ops, sizeof(rec->ops), d.ops))
        return nixl_err(NIXL_ERR_NOT_FOUND, "plugin %s (%s): no %s table", name, where,
                        d.info ? "operation" : "description");
    rec->abi_version = d.abi_version;
    nixl_plugin_info_t *info = &rec->info;
    nixl_be_ops_t *o = &rec->ops;
    if (!info->name || strcmp(info->name, name) != 0)
        return nixl_err(NIXL_ERR_NOT_FOUND, "plugin %s (%s): calls itself '%s'", name, where,
                        info->name ? info->name : "(null)");
    if (info->num_default_params && !info->default_params)
        return nixl_err(NIXL_ERR_NOT_FOUND, "plugin %s (%s): %zu default parameters, no array",
                        name, where, info->num_default_params);

    const char *missing = !o->create ? "create" : !o->destroy ? "destroy"
                        : !o->register_mem ? "register_mem" : !o->deregister_mem ? "deregister_mem"
                        : !o->prep_xfer ? "prep_xfer" : !o->post_xfer ? "post_xfer"
                        : !o->check_xfer ? "check_xfer" : !o->release_req ? "release_req" : NULL;
    if (!missing && (info->caps & NIXL_BE_CAP_REMOTE))
        missing = !(info->caps & NIXL_BE_CAP_NOTIF) ? "notifications (NIXL_BE_CAP_NOTIF)"
                : !o->get_conn_info ? "get_conn_info" : !o->get_public_blobs ? "get_public_blobs"
                : !o->load_remote_conn ? "load_remote_conn"
                : !o->load_remote_md ? "load_remote_md" : NULL;
    if (!missing && (info->caps & NIXL_BE_CAP_LOCAL) && !o->load_local_md)
        missing = "load_local_md";
    if (!missing && (info->caps & NIXL_BE_CAP_NOTIF) && !o->gen_notif)
        missing = "gen_notif";
    if (missing)
        return nixl_err(NIXL_ERR_NOT_FOUND,
                        "plugin %s (%s): its capabilities need %s, which it lacks", name, where,
                        missing);

    if (!o->unload_md)
        o->unload_md = default_unload_md;
    if (!o->connect)
        o->connect = default_peer_op;
    if (!o->disconnect)
        o->disconnect = default_peer_op;
    if (!o->progress)
        o->progress = default_progress;
    if (!o->gen_notif)
        o->gen_notif = default_gen_notif;
    if (!o->query_mem)
        o->query_mem = default_query_mem;
    if (!o->estimate_cost)
        o->estimate_cost = default_estimate_cost;
    if (!o->cancel_xfer)
        o->cancel_xfer = o->check_xfer; /* nothing to stop with: wait for it */
    snprintf(rec->name, sizeof(rec->name), "%s", name);
    return NIXL_SUCCESS;
}

static nixl_status_t load_file(const char *name, nixl_plugin_rec_t *rec)
{
    char *dir = nixl_plugin_dir();
    if (!dir)
        return nixl_err_oom("the plugin directory of %s", name);
    char path[PATH_MAX];
    int n = snprintf(path, sizeof(path), "%s/" PLUGIN_PREFIX "%s" PLUGIN_SUFFIX, dir, name);
    free(dir);
    if (n < 0 || (size_t)n >= sizeof(path))
        return nixl_err(NIXL_ERR_NOT_FOUND, "plugin %s: path too long", name);

    /* Look before loading: dlopen() runs the file's constructors, and a plugin of another ABI
     * (the reference's C++ plugins export nixl_plugin_init) must not run at all. A file we
     * cannot read as ELF is left to dlopen(), whose error says more. */
    static const char *const entries[] = {NIXL_PLUGIN_ENTRY_SYMBOL, NIXL_PLUGIN_FOREIGN_SYMBOL};
    bool has[2];
    if (nixl_elf_file_exports(path, entries, 2, has) == NIXL_ELF_ABSENT && !has[0]) {
        if (has[1])
            return nixl_err(NIXL_ERR_NOT_FOUND,
                            "plugin %s: %s is not a plugin of this library: it exports %s, the "
                            "entry point of the reference NIXL's C++ plugins (and of this "
                            "library's plugin ABI 1), not %s; it was not loaded",
                            name, path, NIXL_PLUGIN_FOREIGN_SYMBOL, NIXL_PLUGIN_ENTRY_SYMBOL);
        return nixl_err(NIXL_ERR_NOT_FOUND, "plugin %s: %s exports no %s; it was not loaded",
                        name, path, NIXL_PLUGIN_ENTRY_SYMBOL);
    }

    /* RTLD_LOCAL keeps plugins' symbols apart; RTLD_NODELETE because we never unload. */
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!h) {
        const char *why = dlerror();
        return nixl_err(NIXL_ERR_NOT_FOUND, "plugin %s: cannot load %s: %s", name, path,
                        why ? why : "unknown reason");
    }
    nixl_plugin_entry_fn entry;
    *(void **)&entry = dlsym(h, NIXL_PLUGIN_ENTRY_SYMBOL);
    if (!entry) {
        const char *why = dlerror(); /* freed by dlclose: format it first */
        nixl_status_t st = nixl_err(NIXL_ERR_NOT_FOUND, "plugin %s: %s exports no %s: %s", name,
                                    path, NIXL_PLUGIN_ENTRY_SYMBOL, why ? why : "");
        dlclose(h);
        return st;
    }
    nixl_status_t st = plugin_adopt(entry(NIXL_PLUGIN_ABI_VERSION), name, path, rec);
    if (st != NIXL_SUCCESS) {
        dlclose(h);
        return st;
    }
    NIXL_INFO("loaded plugin %s from %s (version %s, plugin ABI %u)", name, path,
              rec->info.version ? rec->info.version : "?", rec->abi_version);
    return NIXL_SUCCESS;
}

nixl_status_t nixl_plugin_get(const char *name, const nixl_plugin_rec_t **out)
{
    if (!name || !name_valid(name))
        return nixl_err(NIXL_ERR_NOT_FOUND,
                        "plugin name '%s' is not valid (letters, digits, _ and -)",
                        name ? name : "(null)");
    pthread_mutex_lock(&plugins_lock);
    for (size_t i = 0; i < num_loaded; i++) {
        if (!strcmp(loaded[i].name, name)) {
            *out = &loaded[i];
            pthread_mutex_unlock(&plugins_lock);
            return NIXL_SUCCESS;
        }
    }
    nixl_status_t st = NIXL_ERR_NOT_FOUND;
    if (num_loaded == MAX_LOADED) {
        nixl_err(st, "plugin %s: too many plugins loaded (%d)", name, MAX_LOADED);
        goto out;
    }
    nixl_plugin_rec_t *rec = &loaded[num_loaded];
    const nixl_builtin_plugin_t *builtin = NULL;
    for (size_t i = 0; i < nixl_num_builtin_plugins; i++)
        if (!strcmp(nixl_builtin_plugins[i].name, name))
            builtin = &nixl_builtin_plugins[i];
    if (builtin) {
        st = plugin_adopt(builtin->entry(NIXL_PLUGIN_ABI_VERSION), name, "built-in", rec);
        rec->builtin = true;
    } else {
        st = load_file(name, rec);
    }
    if (st == NIXL_SUCCESS) {
        num_loaded++;
        *out = rec;
    }
out:
    pthread_mutex_unlock(&plugins_lock);
    return st;
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef struct name_set {
    char **names;
    size_t count, cap;
} name_set_t;

static bool set_has(const name_set_t *s, const char *name)
{
    for (size_t i = 0; i < s->count; i++)
        if (!strcmp(s->names[i], name))
            return true;
    return false;
}

static bool set_add(name_set_t *s, const char *name)
{
    if (set_has(s, name))
        return true;
    char *copy = strdup(name);
    char **slot = copy ? nixl_array_push(s->names, s->count, s->cap) : NULL;
    if (!slot) {
        free(copy);
        return false;
    }
    *slot = copy;
    return true;
}

static void set_free(name_set_t *s)
{
    for (size_t i = 0; i < s->count; i++)
        free(s->names[i]);
    free(s->names);
}

nixl_status_t nixl_plugin_list(char ***out, size_t *count)
{
    name_set_t have = {0}, found = {0};
    bool ok = true;
    for (size_t i = 0; i < nixl_num_builtin_plugins; i++)
        ok = ok && set_add(&have, nixl_builtin_plugins[i].name);
    pthread_mutex_lock(&plugins_lock);
    for (size_t i = 0; i < num_loaded; i++)
        ok = ok && set_add(&have, loaded[i].name);
    pthread_mutex_unlock(&plugins_lock);
    qsort(have.names, have.count, sizeof(char *), str_cmp);

    char *dir = nixl_plugin_dir();
    DIR *d = dir ? opendir(dir) : NULL;
    if (d) {
        struct dirent *e;
        const size_t pre = strlen(PLUGIN_PREFIX), suf = strlen(PLUGIN_SUFFIX);
        while ((e = readdir(d)) != NULL) {
            size_t n = strlen(e->d_name);
            if (n <= pre + suf || strncmp(e->d_name, PLUGIN_PREFIX, pre) != 0 ||
                strcmp(e->d_name + n - suf, PLUGIN_SUFFIX) != 0)
                continue;
            char name[NAME_MAX + 1];
            snprintf(name, sizeof(name), "%.*s", (int)(n - pre - suf), e->d_name + pre);
            if (name_valid(name) && !set_has(&have, name))
                ok = ok && set_add(&found, name);
        }
        closedir(d);
    }
    free(dir);
    if (found.count) /* qsort's base must not be NULL, even for 0 elements */
        qsort(found.names, found.count, sizeof(char *), str_cmp);

    /* One allocation: the pointer array, then the strings. */
    size_t total = have.count + found.count;
    size_t bytes = (total + 1) * sizeof(char *);
    for (size_t i = 0; i < have.count; i++)
        bytes += strlen(have.names[i]) + 1;
    for (size_t i = 0; i < found.count; i++)
        bytes += strlen(found.names[i]) + 1;
    char **arr = ok ? malloc(bytes) : NULL;
    if (arr) {
        char *p = (char *)(arr + total + 1);
        size_t k = 0;
        for (int pass = 0; pass < 2; pass++) {
            const name_set_t *s = pass ? &found : &have;
            for (size_t i = 0; i < s->count; i++) {
                size_t n = strlen(s->names[i]) + 1;
                memcpy(p, s->names[i], n);
                arr[k++] = p;
                p += n;
            }
        }
        arr[total] = NULL;
    }
    set_free(&have);
    set_free(&found);
    if (!arr)
        return nixl_err_oom("listing plugins");
    *out = arr;
    *count = total;
    return NIXL_SUCCESS;
}
