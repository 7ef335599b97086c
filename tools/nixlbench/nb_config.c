/*
 * nb_config.c - from argv and --config_file to a checked nb_cfg_t. The command line wins over
 * the file; a flag given twice takes its last value (as gflags does). Anything unknown,
 * malformed or contradictory stops the run before any process or memory is set up.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "array.h"
#include "error.h"
#include "toml.h"
#include "nb.h"

#define GiB (1ull << 30)


static int usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("nixlbench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs(" (see --help)\n", stderr);
    va_end(ap);
    return NB_EXIT_USAGE;
}

static int unknown(const char *name, const char *where)
{
    const char *s = nb_opt_suggest(name);
    if (s)
        return usage("%sunknown flag '--%s'; did you mean '--%s'?", where, name, s);
    return usage("%sunknown flag '--%s'", where, name);
}

bool nb_backend_is_storage(const char *name)
{
    static const char *storage[] = {"GDS", "GDS_MT", "POSIX", "HF3FS", "OBJ", "GUSLI",
                                    "AZURE_BLOB", "INFINIA"};
    for (size_t i = 0; i < sizeof(storage) / sizeof(storage[0]); i++)
        if (!strcmp(name, storage[i]))
            return true;
    return false;
}

static int parse_argv(nb_cfg_t *cfg, int argc, char **argv)
{
    char err[256], name[128];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || !a[1])
            return usage("unexpected argument '%s' (flags start with --)", a);
        a += (a[1] == '-') ? 2 : 1;
        const char *eq = strchr(a, '=');
        size_t n = eq ? (size_t)(eq - a) : strlen(a);
        if (n == 0 || n >= sizeof(name))
            return usage("malformed flag '%s'", argv[i]);
        memcpy(name, a, n);
        name[n] = '\0';
        const nb_opt_t *o = nb_opt_find(name);
        const char *value = eq ? eq + 1 : NULL;
        if (!o && !eq && !strncmp(name, "no", 2)) {
            const nb_opt_t *neg = nb_opt_find(name + 2);
            if (neg && neg->kind == NB_BOOL) {
                o = neg;
                value = "false"; /* gflags' --noflag */
            }
        }
        if (!o)
            return unknown(name, "");
        if (!value && o->kind == NB_BOOL)
            value = "true";
        if (!value) {
            if (i + 1 >= argc)
                return usage("--%s needs a value", o->name);
            value = argv[++i];
        }
        if (!nb_opt_set(cfg, o, value, err, sizeof(err)))
            return usage("%s", err);
        cfg->set[o - nb_opts] = true;
    }
    return 0;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *text = NULL;
    size_t cap = 0;
    *len = 0;
    for (;;) {
        if (!nixl_array_reserve(text, cap, *len + 4096))
            break;
        size_t got = fread(text + *len, 1, cap - *len, f);
        *len += got;
        if (got == 0)
            break;
    }
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        free(text);
        return NULL;
    }
    return text;
}

static int apply_entry(nb_cfg_t *cfg, const char *path, const nixl_toml_entry_t *e,
                       const bool *cmdline)
{
    char where[512], value[64], err[256];
    snprintf(where, sizeof(where), "%s:%u: ", path, e->line);
    const nb_opt_t *o = nb_opt_find(e->key);
    if (!o || !o->help || !strcmp(o->name, "config_file"))
        return unknown(e->key, where);
    if (cmdline[o - nb_opts])
        return 0;
    const char *text;
    switch (e->v.type) {
    case NIXL_TOML_STRING:
        text = e->v.str;
        break;
    case NIXL_TOML_INTEGER:
        if (e->v.i < 0)
            return usage("%s%s must not be negative", where, o->name);
        snprintf(value, sizeof(value), "%lld", (long long)e->v.i);
        text = value;
        break;
    case NIXL_TOML_BOOL:
        text = e->v.b ? "true" : "false";
        break;
    default:
        return usage("%s%s: a %s is not accepted here", where, o->name,
                     nixl_toml_type_name(e->v.type));
    }
    if (!nb_opt_set(cfg, o, text, err, sizeof(err)))
        return usage("%s%s", where, err);
    cfg->set[o - nb_opts] = true;
    return 0;
}

static int load_file(nb_cfg_t *cfg, const char *path)
{
    size_t len;
    char *text = read_file(path, &len);
    if (!text)
        return usage("cannot read --config_file %s: %s", path, strerror(errno));
    nixl_toml_doc_t doc = {0};
    nixl_status_t st = nixl_toml_parse(path, text, len, &doc);
    free(text);
    if (st != NIXL_SUCCESS)
        return usage("%s", nixl_err_text());
    bool *cmdline = calloc(nb_num_opts, sizeof(bool));
    int rc = cmdline ? 0 : usage("out of memory");
    if (cmdline)
        memcpy(cmdline, cfg->set, nb_num_opts * sizeof(bool));
    for (size_t i = 0; rc == 0 && i < doc.count; i++)
        rc = apply_entry(cfg, path, &doc.entries[i], cmdline);
    free(cmdline);
    nixl_toml_free(&doc);
    return rc;
}

/* --compare: known network backends, at most 8, rewritten as the table spells them. */
static int check_compare(nb_cfg_t *cfg)
{
    char out[256] = "", item[64];
    const nb_opt_t *be = nb_opt_find("backend");
    size_t count = 0;
    for (const char *p = cfg->compare; *p;) {
        size_t n = strcspn(p, ","), len;
        snprintf(item, sizeof(item), "%.*s", (int)n, p);
        const char *c = nb_opt_choice(be, item, &len);
        if (!c)
            return usage("--compare: '%s' is not a backend (%s)", item, be->choices);
        snprintf(item, sizeof(item), "%.*s", (int)len, c);
        if (nb_backend_is_storage(item))
            return usage("--compare: %s is a storage backend; compare network backends", item);
        if (++count > 8)
            return usage("--compare: at most 8 backends");
        size_t at = strlen(out);
        snprintf(out + at, sizeof(out) - at, "%s%s", at ? "," : "", item);
        p += n + (p[n] == ',');
    }
    if (!count)
        return usage("--compare needs at least one backend");
    free(cfg->compare);
    cfg->compare = strdup(out);
    return cfg->compare ? 0 : usage("out of memory");
}

static bool was_set(const nb_cfg_t *cfg, const char *name)
{
    return cfg->set[nb_opt_find(name) - nb_opts];
}

/* Checks of single values and of combinations; the reasons name the flags involved. */
static int validate(nb_cfg_t *cfg)
{
    if (!cfg->num_iter || !cfg->num_threads || !cfg->pipeline_depth || !cfg->large_blk_iter_ftr)
        return usage("num_iter, num_threads, pipeline_depth and large_blk_iter_ftr must be at "
                     "least 1");
    if (!cfg->start_block_size || cfg->start_block_size > cfg->max_block_size)
        return usage("need 1 <= start_block_size (%llu) <= max_block_size (%llu)",
                     (unsigned long long)cfg->start_block_size,
                     (unsigned long long)cfg->max_block_size);
    if (!cfg->start_batch_size || cfg->start_batch_size > cfg->max_batch_size)
        return usage("need 1 <= start_batch_size (%llu) <= max_batch_size (%llu)",
                     (unsigned long long)cfg->start_batch_size,
                     (unsigned long long)cfg->max_batch_size);
    if (!cfg->asio_port)
        return usage("--asio_port must be between 1 and 65535");
    if (cfg->prepared_xfer && cfg->reregister_mem)
        return usage("--prepared_xfer and --reregister_mem cannot be combined (a prepared list "
                     "cannot outlive its registration)");
    if (!strcmp(cfg->randomize_location_mode, "bytealigned") &&
        (cfg->storage_enable_direct || cfg->check_consistency))
        return usage("--randomize_location_mode=bytealigned cannot be combined with "
                     "--storage_enable_direct or --check_consistency");
    if (cfg->same_block && cfg->check_consistency)
        return usage("--same_block and --check_consistency cannot be combined (every descriptor "
                     "writes the same block, so the others are never written)");
    if (*cfg->etcd_endpoints && !strcmp(cfg->runtime_type, "ASIO"))
        return usage("--etcd_endpoints and --runtime_type=ASIO contradict each other");
    if (*cfg->compare && (was_set(cfg, "backend") || *cfg->runtime_type || *cfg->etcd_endpoints))
        return usage("--compare names the backends and spawns its own targets: drop --backend, "
                     "--runtime_type and --etcd_endpoints");
    if (*cfg->compare && check_compare(cfg))
        return NB_EXIT_USAGE;
    if (cfg->num_initiator_dev != 1 || cfg->num_target_dev != 1)
        return usage("only one initiator and one target process are supported "
                     "(--num_initiator_dev=1 --num_target_dev=1)");
    if (*cfg->filenames) {
        uint64_t n = 1;
        for (const char *p = cfg->filenames; *p; p++)
            n += *p == ',';
        if (n != cfg->num_files)
            return usage("--filenames names %llu files but --num_files is %llu",
                         (unsigned long long)n, (unsigned long long)cfg->num_files);
    }
    uint64_t need = cfg->max_block_size * cfg->max_batch_size;
    if (need / cfg->max_batch_size != cfg->max_block_size ||
        need * cfg->num_threads / cfg->num_threads != need)
        return usage("max_block_size x max_batch_size x num_threads overflows");
    if (cfg->auto_buffer)
        cfg->total_buffer_size = need * cfg->num_threads <= 8 * GiB ? need * cfg->num_threads
                                                                    : 8 * GiB;
    if (need > cfg->total_buffer_size / cfg->num_threads)
        return usage("max_block_size x max_batch_size (%llu bytes) exceeds total_buffer_size / "
                     "num_threads (%llu bytes)",
                     (unsigned long long)need,
                     (unsigned long long)(cfg->total_buffer_size / cfg->num_threads));
    return 0;
}

int nb_config_load(nb_cfg_t *cfg, int argc, char **argv)
{
    char err[256];
    memset(cfg, 0, sizeof(*cfg));
    cfg->set = calloc(nb_num_opts, sizeof(bool));
    if (!cfg->set)
        return usage("out of memory");
    for (size_t i = 0; i < nb_num_opts; i++)
        if (!nb_opt_set(cfg, &nb_opts[i], nb_opts[i].def, err, sizeof(err)))
            return usage("%s", err);
    int rc = parse_argv(cfg, argc, argv);
    if (rc == 0 && *cfg->config_file)
        rc = load_file(cfg, cfg->config_file);
    if (rc || cfg->help)
        return rc;
    cfg->auto_backend = !was_set(cfg, "backend");
    cfg->auto_buffer = !was_set(cfg, "total_buffer_size");
    cfg->local = (!*cfg->runtime_type || !strcmp(cfg->runtime_type, "LOCAL")) &&
                 !*cfg->etcd_endpoints;
    /* The target we spawn on this host is our own mode. Without --backend it uses SHM, the
     * best backend between two processes of one host, and the reference's full sweep. Over
     * UCX (on one host: TCP) the sweep stops at 16 MiB unless told otherwise, so that a local
     * run ends in seconds. */
    cfg->auto_max_block = cfg->local && !cfg->auto_backend && !strcmp(cfg->backend, "UCX") &&
                          !was_set(cfg, "max_block_size") &&
                          cfg->start_block_size <= NB_LOCAL_MAX_BLOCK;
    if (cfg->auto_max_block)
        cfg->max_block_size = NB_LOCAL_MAX_BLOCK;
    cfg->storage = !cfg->auto_backend && nb_backend_is_storage(cfg->backend);
    cfg->op = strcmp(cfg->op_type, "READ") ? NIXL_WRITE : NIXL_READ;
    if (cfg->reregister_mem)
        cfg->recreate_xfer = true; /* a request cannot outlive the registration it uses */
    rc = validate(cfg);
    if (rc)
        return rc;
    /* Each thread does an equal share. */
    cfg->num_iter -= cfg->num_iter % cfg->num_threads;
    if (!cfg->num_iter)
        cfg->num_iter = cfg->num_threads;
    cfg->warmup_iter -= cfg->warmup_iter % cfg->num_threads;
    return 0;
}

void nb_config_free(nb_cfg_t *cfg)
{
    for (size_t i = 0; i < nb_num_opts; i++)
        if (nb_opts[i].kind == NB_STR || nb_opts[i].kind == NB_ENUM)
            free(*(char **)((char *)cfg + nb_opts[i].off));
    free(cfg->set);
    memset(cfg, 0, sizeof(*cfg));
}

void nb_plan_iters(const nb_cfg_t *cfg, uint64_t block, nb_plan_t *plan)
{
    uint64_t iters = cfg->num_iter, warmup = cfg->warmup_iter;
    if (block > NB_LARGE_BLOCK) {
        iters /= cfg->large_blk_iter_ftr;
        warmup /= cfg->large_blk_iter_ftr;
    }
    plan->block = block;
    plan->iters = iters / cfg->num_threads ? iters / cfg->num_threads : 1;
    plan->warmup = warmup / cfg->num_threads;
}
