/*
 * config.c - NIXL options: the environment first, then a top-level key of the TOML file.
 * The file is chosen and parsed once, under a mutex (not pthread_once, because tests reset it);
 * the outcome, success or error, stays until nixl_config_reset().
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "log.h"
#include "toml.h"

/* A configuration file is a few lines; anything near this is a mistake (or an attack). */
#define CONFIG_MAX_BYTES (1u << 20)
#define CONFIG_REASON_MAX 1024

static pthread_mutex_t cfg_lock = PTHREAD_MUTEX_INITIALIZER;
static bool cfg_loaded;
static nixl_status_t cfg_status;
static char cfg_reason[CONFIG_REASON_MAX];
static char cfg_path[PATH_MAX];
static nixl_toml_doc_t cfg_doc;

/* Read a whole regular file of at most CONFIG_MAX_BYTES. */
static nixl_status_t read_file(const char *path, char **text, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return nixl_err(NIXL_ERR_MISMATCH, "cannot open configuration file %s: %s", path,
                        strerror(errno));
    nixl_status_t st;
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        st = nixl_err(NIXL_ERR_MISMATCH, "cannot stat configuration file %s: %s", path,
                      strerror(errno));
        goto close_fd;
    }
    if (!S_ISREG(sb.st_mode)) {
        st = nixl_err(NIXL_ERR_MISMATCH, "configuration file %s is not a regular file", path);
        goto close_fd;
    }
    if (sb.st_size > (off_t)CONFIG_MAX_BYTES) {
        st = nixl_err(NIXL_ERR_MISMATCH,
                      "configuration file %s is %lld bytes, more than the limit of %u", path,
                      (long long)sb.st_size, CONFIG_MAX_BYTES);
        goto close_fd;
    }
    /* Read one byte past the limit so that a file that grew since fstat() is caught too. */
    char *buf = malloc(CONFIG_MAX_BYTES + 1);
    if (!buf) {
        st = nixl_err_oom("reading %s", path);
        goto close_fd;
    }
    size_t got = 0;
    while (got <= CONFIG_MAX_BYTES) {
        ssize_t n = read(fd, buf + got, CONFIG_MAX_BYTES + 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            st = nixl_err(NIXL_ERR_MISMATCH, "cannot read configuration file %s: %s", path,
                          strerror(errno));
            goto free_buf;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    if (got > CONFIG_MAX_BYTES) {
        st = nixl_err(NIXL_ERR_MISMATCH, "configuration file %s is larger than %u bytes", path,
                      CONFIG_MAX_BYTES);
        goto free_buf;
    }
    *text = buf;
    *len = got;
    close(fd);
    return NIXL_SUCCESS;
free_buf:
    free(buf);
close_fd:
    close(fd);
    return st;
}

/* Whether a search candidate is there; an unreadable one counts as there (and fails later). */
static bool candidate_exists(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) == 0)
        return true;
    return errno != ENOENT && errno != ENOTDIR;
}

/* Which file, if any: NIXL_CONFIG_FILE, else $HOME/.nixl.cfg, else /etc/nixl.cfg. */
static nixl_status_t choose_file(char *path, size_t size, bool *found)
{
    *found = false;
    const char *env = getenv("NIXL_CONFIG_FILE");
    if (env) {
        /* Set but empty: explicitly no file (handy for tests and containers). */
        if (!*env)
            return NIXL_SUCCESS;
        struct stat sb;
        if (stat(env, &sb) != 0 && (errno == ENOENT || errno == ENOTDIR))
            return nixl_err(NIXL_ERR_MISMATCH, "NIXL_CONFIG_FILE=%s does not exist", env);
        if ((size_t)snprintf(path, size, "%s", env) >= size)
            return nixl_err(NIXL_ERR_MISMATCH, "NIXL_CONFIG_FILE=%.64s... is too long", env);
        *found = true;
        return NIXL_SUCCESS;
    }
    const char *home = getenv("HOME");
    if (home && *home) {
        int n = snprintf(path, size, "%s/.nixl.cfg", home);
        if (n > 0 && (size_t)n < size && candidate_exists(path)) {
            *found = true;
            return NIXL_SUCCESS;
        }
    }
    if (candidate_exists("/etc/nixl.cfg")) {
        snprintf(path, size, "%s", "/etc/nixl.cfg");
        *found = true;
    }
    return NIXL_SUCCESS;
}

static nixl_status_t load_file(void)
{
    bool found;
    nixl_status_t st = choose_file(cfg_path, sizeof(cfg_path), &found);
    if (st != NIXL_SUCCESS)
        return st;
    if (!found) {
        NIXL_DEBUG("no configuration file");
        return NIXL_SUCCESS;
    }
    char *text = NULL;
    size_t len = 0;
    st = read_file(cfg_path, &text, &len);
    if (st != NIXL_SUCCESS)
        return st;
    st = nixl_toml_parse(cfg_path, text, len, &cfg_doc);
    free(text);
    if (st == NIXL_SUCCESS)
        NIXL_DEBUG("configuration file %s: %zu top-level keys", cfg_path, cfg_doc.count);
    return st;
}

/* With cfg_lock held. On failure nixl_last_error() is the remembered reason. */
static nixl_status_t load_locked(void)
{
    if (!cfg_loaded) {
        cfg_status = load_file();
        /* A file that is wrong stays wrong; memory that was short may not be next time. */
        cfg_loaded = cfg_status != NIXL_ERR_OOM;
        if (cfg_status != NIXL_SUCCESS) {
            snprintf(cfg_reason, sizeof(cfg_reason), "%s", nixl_err_text());
            NIXL_WARN("%s", cfg_reason);
        }
    } else if (cfg_status != NIXL_SUCCESS) {
        nixl_err_set("%s", cfg_reason);
    }
    return cfg_status;
}

nixl_status_t nixl_config_load(void)
{
    pthread_mutex_lock(&cfg_lock);
    nixl_status_t st = load_locked();
    pthread_mutex_unlock(&cfg_lock);
    return st;
}

void nixl_config_reset(void)
{
    pthread_mutex_lock(&cfg_lock);
    nixl_toml_free(&cfg_doc);
    cfg_loaded = false;
    cfg_status = NIXL_SUCCESS;
    cfg_reason[0] = '\0';
    cfg_path[0] = '\0';
    pthread_mutex_unlock(&cfg_lock);
}

bool nixl_config_exists(const char *name)
{
    if (!name)
        return false;
    if (getenv(name))
        return true;
    pthread_mutex_lock(&cfg_lock);
    bool found = load_locked() == NIXL_SUCCESS && nixl_toml_find(&cfg_doc, name) != NULL;
    pthread_mutex_unlock(&cfg_lock);
    return found;
}

/* Which value a typed getter gets from the file. */
typedef enum { WANT_STRING, WANT_BOOL, WANT_U64, WANT_I64 } want_t;

typedef struct {
    bool found;
    bool b;
    int64_t i;
    uint64_t u;
    char *s;
} file_value_t;

static bool ends_with_ms(const char *name)
{
    size_t n = strlen(name);
    return n >= 3 && !strcmp(name + n - 3, "_MS");
}

/* Look `name` up in the file and convert it, all under the lock (the entry is not kept). */
static nixl_status_t file_lookup(const char *name, want_t want, file_value_t *out)
{
    static const char *const want_names[] = {"a TOML string", "a TOML boolean",
                                             "a non-negative TOML integer", "a TOML integer"};
    pthread_mutex_lock(&cfg_lock);
    nixl_status_t st = load_locked();
    if (st != NIXL_SUCCESS)
        goto unlock;
    const nixl_toml_entry_t *e = nixl_toml_find(&cfg_doc, name);
    if (!e) {
        out->found = false;
        goto unlock;
    }
    const nixl_toml_value_t *v = &e->v;
    bool ok = false;
    switch (want) {
    case WANT_STRING:
        if (v->type == NIXL_TOML_STRING && strlen(v->str) == v->str_len) {
            out->s = strdup(v->str);
            if (!out->s) {
                st = nixl_err_oom("configuration value of %s", name);
                goto unlock;
            }
            ok = true;
        }
        break;
    case WANT_BOOL:
        ok = v->type == NIXL_TOML_BOOL;
        out->b = v->b;
        break;
    case WANT_U64:
        if (v->type == NIXL_TOML_INTEGER && v->i >= 0) {
            out->u = (uint64_t)v->i;
            ok = true;
        } else if (v->type == NIXL_TOML_TIME && ends_with_ms(name)) {
            out->u = v->ms;
            ok = true;
        }
        break;
    case WANT_I64:
        if (v->type == NIXL_TOML_INTEGER) {
            out->i = v->i;
            ok = true;
        } else if (v->type == NIXL_TOML_TIME && ends_with_ms(name)) {
            out->i = (int64_t)v->ms;
            ok = true;
        }
        break;
    }
    if (!ok) {
        const char *what = nixl_toml_type_name(v->type);
        if (want == WANT_STRING && v->type == NIXL_TOML_STRING)
            what = "string containing a NUL character";
        if (want == WANT_U64 && v->type == NIXL_TOML_INTEGER)
            what = "negative integer";
        st = nixl_err(NIXL_ERR_MISMATCH, "%s:%u: %s must be %s, but it is %s %s", cfg_path,
                      e->line, name, want_names[want], strchr("aeiou", what[0]) ? "an" : "a",
                      what);
        goto unlock;
    }
    out->found = true;
unlock:
    pthread_mutex_unlock(&cfg_lock);
    return st;
}

nixl_status_t nixl_config_string(const char *name, char **out)
{
    if (!name || !out)
        return nixl_err(NIXL_ERR_INVALID_PARAM, "nixl_config_string: NULL argument");
    const char *env = getenv(name);
    if (env) {
        char *copy = strdup(env);
        if (!copy)
            return nixl_err_oom("configuration value of %s", name);
        *out = copy;
        return NIXL_SUCCESS;
    }
    file_value_t fv = {0};
    nixl_status_t st = file_lookup(name, WANT_STRING, &fv);
    if (st != NIXL_SUCCESS)
        return st;
    *out = fv.found ? fv.s : NULL;
    return NIXL_SUCCESS;
}

nixl_status_t nixl_config_bool(const char *name, bool *out)
{
    if (!name || !out)
        return nixl_err(NIXL_ERR_INVALID_PARAM, "nixl_config_bool: NULL argument");
    const char *env = getenv(name);
    if (env) {
        bool b;
        if (!nixl_parse_bool(env, &b))
            return nixl_err(NIXL_ERR_MISMATCH,
                            "%s='%s' is not a boolean (y yes on 1 true enable / n no off 0 "
                            "false disable)", name, env);
        *out = b;
        return NIXL_SUCCESS;
    }
    file_value_t fv = {0};
    nixl_status_t st = file_lookup(name, WANT_BOOL, &fv);
    if (st != NIXL_SUCCESS)
        return st;
    if (fv.found)
        *out = fv.b;
    return NIXL_SUCCESS;
}

nixl_status_t nixl_config_u64(const char *name, uint64_t *out)
{
    if (!name || !out)
        return nixl_err(NIXL_ERR_INVALID_PARAM, "nixl_config_u64: NULL argument");
    const char *env = getenv(name);
    if (env) {
        uint64_t u;
        if (!nixl_parse_u64(env, &u))
            return nixl_err(NIXL_ERR_MISMATCH,
                            "%s='%s' is not an unsigned 64-bit integer (decimal without sign or "
                            "leading zeros, or 0x hexadecimal)", name, env);
        *out = u;
        return NIXL_SUCCESS;
    }
    file_value_t fv = {0};
    nixl_status_t st = file_lookup(name, WANT_U64, &fv);
    if (st != NIXL_SUCCESS)
        return st;
    if (fv.found)
        *out = fv.u;
    return NIXL_SUCCESS;
}

nixl_status_t nixl_config_i64(const char *name, int64_t *out)
{
    if (!name || !out)
        return nixl_err(NIXL_ERR_INVALID_PARAM, "nixl_config_i64: NULL argument");
    const char *env = getenv(name);
    if (env) {
        int64_t i;
        if (!nixl_parse_i64(env, &i))
            return nixl_err(NIXL_ERR_MISMATCH,
                            "%s='%s' is not a 64-bit integer (decimal without '+', spaces or "
                            "leading zeros)", name, env);
        *out = i;
        return NIXL_SUCCESS;
    }
    file_value_t fv = {0};
    nixl_status_t st = file_lookup(name, WANT_I64, &fv);
    if (st != NIXL_SUCCESS)
        return st;
    if (fv.found)
        *out = fv.i;
    return NIXL_SUCCESS;
}
