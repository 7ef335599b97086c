#include "plugin.h"

#include <dirent.h>
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "error.h"
#include "log.h"


#define PLUGIN_PREFIX "libplugin_"
#define PLUGIN_SUFFIX ".so"
#define MAX_LOADED 64

typedef struct loaded_plugin {
    char name[NAME_MAX + 1];
    const nixl_backend_ops_t *ops;
} loaded_plugin_t;

/* Loaded dynamic plugins; built-ins are looked up in their own table. Plugins are never
 * unloaded: engines and their threads may hold code of the plugin until process exit. */
static pthread_mutex_t plugins_lock = PTHREAD_MUTEX_INITIALIZER;
static loaded_plugin_t loaded[MAX_LOADED];
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

/* Refuse tables we cannot use safely, with a reason that names `where`. */
static nixl_status_t table_check(const nixl_backend_ops_t *t, const char *name, const char *where)
{
    if (!t)
        return nixl_err(NIXL_ERR_NOT_FOUND, "plugin %s (%s): init returned no table", name, where);
    if (t->abi_version != NIXL_PLUGIN_ABI_VERSION)
        return nixl_err(NIXL_ERR_NOT_FOUND,
                        "plugin %s (%s): ABI version %u, this library needs version %u "
                        "(rebuild the plugin against this nixl_plugin.h)",
                        name, where, t->abi_version, NIXL_PLUGIN_ABI_VERSION);
    if (t->struct_size < sizeof(nixl_backend_ops_t))
        return nixl_err(NIXL_ERR_NOT_FOUND,
                        "plugin %s (%s): operation table of %zu bytes, expected at least %zu",
                        name, where, t->struct_size, sizeof(nixl_backend_ops_t));
    if (!t->name || strcmp(t->name, name) != 0)
        return nixl_err(NIXL_ERR_NOT_FOUND, "plugin %s (%s): calls itself '%s'", name, where,
                        t->name ? t->name : "(null)");
    if (!t->create || !t->destroy || !t->register_mem || !t->deregister_mem || !t->prep_xfer ||
        !t->post_xfer || !t->check_xfer || !t->release_req || !t->unload_md || !t->connect ||
        !t->disconnect)
        return nixl_err(NIXL_ERR_NOT_FOUND, "plugin %s (%s): a required operation is missing",
                        name, where);
    if ((t->caps & NIXL_BE_CAP_REMOTE) &&
        (!(t->caps & NIXL_BE_CAP_NOTIF) || !t->get_conn_info || !t->get_public_blob ||
         !t->load_remote_conn || !t->load_remote_md))
        return nixl_err(NIXL_ERR_NOT_FOUND,
                        "plugin %s (%s): remote-capable but lacks notifications or the "
                        "connection/metadata operations", name, where);
    if ((t->caps & NIXL_BE_CAP_LOCAL) && !t->load_local_md)
        return nixl_err(NIXL_ERR_NOT_FOUND, "plugin %s (%s): local-capable without load_local_md",
                        name, where);
    if ((t->caps & NIXL_BE_CAP_NOTIF) && !t->gen_notif)
        return nixl_err(NIXL_ERR_NOT_FOUND, "plugin %s (%s): notifications without gen_notif",
                        name, where);
    return NIXL_SUCCESS;
}

static nixl_status_t load_file(const char *name, const nixl_backend_ops_t **out)
{
    char *dir = nixl_plugin_dir();
    if (!dir)
        return nixl_err(NIXL_ERR_UNKNOWN, "out of memory");
    char path[PATH_MAX];
    int n = snprintf(path, sizeof(path), "%s/" PLUGIN_PREFIX "%s" PLUGIN_SUFFIX, dir, name);
    free(dir);
    if (n < 0 || (size_t)n >= sizeof(path))
        return nixl_err(NIXL_ERR_NOT_FOUND, "plugin %s: path too long", name);

    /* RTLD_LOCAL keeps plugins' symbols apart; RTLD_NODELETE because we never unload. */
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!h) {
        const char *why = dlerror();
        return nixl_err(NIXL_ERR_NOT_FOUND, "plugin %s: cannot load %s: %s", name, path,
                        why ? why : "unknown reason");
    }
    nixl_plugin_init_fn init;
    *(void **)&init = dlsym(h, NIXL_PLUGIN_INIT_SYMBOL);
    if (!init) {
        const char *why = dlerror(); /* freed by dlclose: format it first */
        nixl_status_t st = nixl_err(NIXL_ERR_NOT_FOUND, "plugin %s: %s exports no %s: %s", name,
                                    path, NIXL_PLUGIN_INIT_SYMBOL, why ? why : "");
        dlclose(h);
        return st;
    }
    const nixl_backend_ops_t *t = init();
    nixl_status_t st = table_check(t, name, path);
    if (st != NIXL_SUCCESS) {
        dlclose(h);
        return st;
    }
    NIXL_INFO("loaded plugin %s from %s (version %s)", name, path, t->version ? t->version : "?");
    *out = t;
    return NIXL_SUCCESS;
}

nixl_status_t nixl_plugin_get(const char *name, const nixl_backend_ops_t **out)
{
    if (!name || !name_valid(name))
        return nixl_err(NIXL_ERR_NOT_FOUND, "plugin name '%s' is not valid (letters, digits, _ and -)",
                        name ? name : "(null)");
    for (size_t i = 0; i < nixl_num_builtin_plugins; i++) {
        if (!strcmp(nixl_builtin_plugins[i].name, name)) {
            const nixl_backend_ops_t *t = nixl_builtin_plugins[i].init();
            nixl_status_t st = table_check(t, name, "built-in");
            if (st == NIXL_SUCCESS)
                *out = t;
            return st;
        }
    }
    pthread_mutex_lock(&plugins_lock);
    for (size_t i = 0; i < num_loaded; i++) {
        if (!strcmp(loaded[i].name, name)) {
            *out = loaded[i].ops;
            pthread_mutex_unlock(&plugins_lock);
            return NIXL_SUCCESS;
        }
    }
    nixl_status_t st = NIXL_ERR_NOT_FOUND;
    if (num_loaded == MAX_LOADED) {
        nixl_err(st, "plugin %s: too many plugins loaded (%d)", name, MAX_LOADED);
    } else {
        st = load_file(name, out);
        if (st == NIXL_SUCCESS) {
            snprintf(loaded[num_loaded].name, sizeof(loaded[num_loaded].name), "%s", name);
            loaded[num_loaded].ops = *out;
            num_loaded++;
        }
    }
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
    if (s->count == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        char **p = realloc(s->names, cap * sizeof(*p));
        if (!p)
            return false;
        s->names = p;
        s->cap = cap;
    }
    s->names[s->count] = strdup(name);
    if (!s->names[s->count])
        return false;
    s->count++;
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
        return nixl_err(NIXL_ERR_UNKNOWN, "out of memory listing plugins");
    *out = arr;
    *count = total;
    return NIXL_SUCCESS;
}
