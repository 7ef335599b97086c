/*
 * test_agent_basics.c - agent creation and configuration, plugin discovery and loading,
 * backends and their parameters, the name strings of the public enums.
 *
 * NIXL_PLUGIN_DIR points at the test plugins: BADABI (a newer ABI), NOSYM (no entry
 * point), BROKEN (not an ELF file) and SHMDYN (the SHM engine loaded through dlopen). Plugins
 * are process-wide and never unloaded, so the first test looks at the list before anything
 * loads SHMDYN.
 */
#include <dlfcn.h>
#include <pthread.h>

#include "agent_test.h"

static const char *plugin_dir(void)
{
    const char *d = getenv("NIXL_PLUGIN_DIR");
    assert_non_null(d);
    return d;
}

static size_t index_of(char **names, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(names[i], name))
            return i;
    return SIZE_MAX;
}

static bool sorted(char **names, size_t from, size_t to)
{
    for (size_t i = from + 1; i < to; i++)
        if (strcmp(names[i - 1], names[i]) >= 0)
            return false;
    return true;
}

/* ------------------------------------------------------------------------------------------ */
/* Plugins (first: nothing is loaded yet)                                                      */
/* ------------------------------------------------------------------------------------------ */

static void test_avail_plugins_order(void **state)
{
    (void)state;
    nixl_agent_t *a = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create("A", NULL, &a));
    char **names = NULL;
    size_t n = 0;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_get_avail_plugins(a, &names, &n));
    assert_true(n >= 7);
    assert_null(names[n]); /* the array is NULL-terminated too */
    assert_string_equal(names[0], "SHM");
    size_t bad = index_of(names, n, "BADABI"), broken = index_of(names, n, "BROKEN");
    size_t nosym = index_of(names, n, "NOSYM"), dyn = index_of(names, n, "SHMDYN");
    size_t old = index_of(names, n, "ABI2COPY"), foreign = index_of(names, n, "FOREIGN");
    assert_true(bad != SIZE_MAX && broken != SIZE_MAX && nosym != SIZE_MAX && dyn != SIZE_MAX);
    /* not loaded: after the built-in, sorted among themselves */
    assert_true(old > 0 && old < bad && bad < broken && broken < foreign && foreign < nosym &&
                nosym < dyn);
    assert_true(sorted(names, bad, n));
    nixl_free(names);

    /* Loading SHMDYN moves it into the first (loaded) group, sorted after SHM. */
    nixl_mem_mask_t mems = 0;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_get_plugin_params(a, "SHMDYN", &mems, NULL));
    assert_int_equal(mems, NIXL_MEM_BIT(NIXL_DRAM_SEG) | NIXL_MEM_BIT(NIXL_VRAM_SEG));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_get_avail_plugins(a, &names, &n));
    assert_string_equal(names[0], "SHM");
    assert_string_equal(names[1], "SHMDYN");
    assert_int_equal(index_of(names, n, "SHMDYN"), 1); /* listed once */
    assert_string_equal(names[2], "ABI2COPY");
    assert_true(sorted(names, 2, n));
    nixl_free(names);

    /* bad arguments */
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL, nixl_agent_get_avail_plugins(a, NULL, &n));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL, nixl_agent_get_avail_plugins(NULL, &names, &n));
    nixl_agent_destroy(a);
}

/* NIXL_PLUGIN_DIR is read at every lookup (docs/differences.md item 11). */
static void test_plugin_dir_read_each_time(void **state)
{
    (void)state;
    nixl_agent_t *a = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create("A", NULL, &a));
    char *saved = strdup(plugin_dir());
    assert_int_equal(setenv("NIXL_PLUGIN_DIR", "/nonexistent/nixl-plugins", 1), 0);
    char **names = NULL;
    size_t n = 0;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_get_avail_plugins(a, &names, &n));
    assert_int_equal(index_of(names, n, "NOSYM"), SIZE_MAX);
    assert_int_equal(index_of(names, n, "BROKEN"), SIZE_MAX);
    assert_string_equal(names[0], "SHM");
    nixl_free(names);
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, "/nonexistent/nixl-plugins/libplugin_NOSYM.so",
               nixl_agent_get_plugin_params(a, "NOSYM", NULL, NULL));
    assert_int_equal(setenv("NIXL_PLUGIN_DIR", saved, 1), 0);
    free(saved);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_get_avail_plugins(a, &names, &n));
    assert_true(index_of(names, n, "NOSYM") != SIZE_MAX);
    nixl_free(names);
    nixl_agent_destroy(a);
}

static void test_plugin_params_shm(void **state)
{
    (void)state;
    nixl_agent_t *a = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create("A", NULL, &a));
    nixl_mem_mask_t mems = 0xffff;
    nixl_param_list_t *params = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_get_plugin_params(a, "SHM", &mems, &params));
    assert_int_equal(mems, NIXL_MEM_BIT(NIXL_DRAM_SEG) | NIXL_MEM_BIT(NIXL_VRAM_SEG));
    assert_non_null(params);
    bool found = false;
    for (size_t i = 0; i < params->count; i++)
        if (!strcmp(params->items[i].key, "async_threshold")) {
            found = true;
            assert_string_equal(params->items[i].value, "0");
        }
    assert_true(found);
    nixl_free(params);
    /* either output may be NULL */
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_get_plugin_params(a, "SHM", NULL, NULL));

    /* unknown or unusable names */
    params = (nixl_param_list_t *)0x1;
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, "NOPE", nixl_agent_get_plugin_params(a, "NOPE", &mems, &params));
    assert_ptr_equal(params, (nixl_param_list_t *)0x1);
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, NULL, nixl_agent_get_plugin_params(a, "../SHM", NULL, NULL));
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, NULL, nixl_agent_get_plugin_params(a, "", NULL, NULL));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL, nixl_agent_get_plugin_params(a, NULL, NULL, NULL));
    nixl_backend_t *be = (nixl_backend_t *)0x1;
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, "NOPE", nixl_agent_create_backend(a, "NOPE", NULL, 0, &be));
    assert_ptr_equal(be, (nixl_backend_t *)0x1);
    nixl_agent_destroy(a);
}

/* A plugin file that cannot be used is NOT_FOUND, and the reason names the file and why. */
static void test_plugin_bad_files(void **state)
{
    (void)state;
    nixl_agent_t *a = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create("A", NULL, &a));
    char path[4096];

    snprintf(path, sizeof(path), "%s/libplugin_BADABI.so", plugin_dir());
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, path, nixl_agent_get_plugin_params(a, "BADABI", NULL, NULL));
    EXPECT_LASTERR("plugin ABI");
    nixl_backend_t *be = NULL;
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, "plugin ABI", nixl_agent_create_backend(a, "BADABI", NULL, 0, &be));
    assert_null(be);

    snprintf(path, sizeof(path), "%s/libplugin_NOSYM.so", plugin_dir());
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, path, nixl_agent_get_plugin_params(a, "NOSYM", NULL, NULL));
    EXPECT_LASTERR("exports no nixl_c_plugin_entry");
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, "nixl_c_plugin_entry",
               nixl_agent_create_backend(a, "NOSYM", NULL, 0, &be));

    /* BROKEN: the loader's own reason, whatever this libc says for a text file */
    snprintf(path, sizeof(path), "%s/libplugin_BROKEN.so", plugin_dir());
    assert_null(dlopen(path, RTLD_NOW | RTLD_LOCAL));
    const char *why = dlerror();
    assert_non_null(why);
    char expect[4096];
    snprintf(expect, sizeof(expect), "%s", why);
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, path, nixl_agent_get_plugin_params(a, "BROKEN", NULL, NULL));
    EXPECT_LASTERR(expect);
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, "BROKEN", nixl_agent_create_backend(a, "BROKEN", NULL, 0, &be));
    assert_null(be);

    /* the failures left the agent usable */
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create_backend(a, "SHM", NULL, 0, &be));
    nixl_agent_destroy(a);
}

/* SHMDYN is the SHM engine behind dlopen: it transfers like the built-in. */
static void test_shmdyn_loopback(void **state)
{
    (void)state;
    nixl_agent_t *a = NULL;
    nixl_backend_t *be = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create("A", NULL, &a));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create_backend(a, "SHMDYN", NULL, 0, &be));
    assert_string_equal(nixl_backend_name(be), "SHMDYN");
    enum { LEN = 64 * 1024 };
    uint8_t *buf = t_alloc(2 * LEN);
    t_fill(buf, LEN, 3);
    t_reg(a, buf, 2 * LEN);
    nixl_desc_t src = t_desc(buf, LEN), dst = t_desc(buf + LEN, LEN);
    nixl_opt_args_t o = t_notif_opt("dyn");
    nixl_xfer_req_t *r = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create_xfer_req(a, NIXL_WRITE, NIXL_DRAM_SEG, &src, 1,
                                                       NIXL_DRAM_SEG, &dst, 1, "A", &o, &r));
    nixl_backend_t *used = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_query_xfer_backend(a, r, &used));
    assert_ptr_equal(used, be);
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(a, r, NULL));
    EXPECT_PATTERN(buf + LEN, LEN, 3);
    t_expect_one_notif(a, "A", "dyn");
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(a, r));
    t_dereg(a, buf, 2 * LEN);
    nixl_agent_destroy(a);
    free(buf);
}

/* ------------------------------------------------------------------------------------------ */
/* Agent creation                                                                              */
/* ------------------------------------------------------------------------------------------ */

static void test_create_bad_names(void **state)
{
    (void)state;
    nixl_agent_t *a = (nixl_agent_t *)0x1;
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, "name", nixl_agent_create(NULL, NULL, &a));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, "name", nixl_agent_create("", NULL, &a));
    char name[301];
    memset(name, 'n', 300);
    name[300] = '\0';
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, "name", nixl_agent_create(name, NULL, &a));
    name[256] = '\0';
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, "255", nixl_agent_create(name, NULL, &a));
    assert_ptr_equal(a, (nixl_agent_t *)0x1); /* untouched on failure */
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL, nixl_agent_create("A", NULL, NULL));

    /* 255 bytes is the longest name; the agent keeps its own copy */
    name[255] = '\0';
    a = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create(name, NULL, &a));
    const char *kept = nixl_agent_name(a);
    assert_ptr_not_equal(kept, name);
    name[0] = 'x';
    assert_int_equal(strlen(kept), 255);
    assert_int_equal(kept[0], 'n');
    nixl_agent_destroy(a);
    nixl_agent_destroy(NULL); /* no-op */
}

static void test_create_bad_config(void **state)
{
    (void)state;
    nixl_agent_config_t cfg;
    nixl_agent_t *a = (nixl_agent_t *)0x1;

    nixl_agent_config_init(&cfg);
    cfg.sync_mode = (nixl_thread_sync_t)7;
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, "sync_mode", nixl_agent_create("A", &cfg, &a));
    cfg.sync_mode = (nixl_thread_sync_t)-1;
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, "sync_mode", nixl_agent_create("A", &cfg, &a));

    nixl_agent_config_init(&cfg);
    cfg.listen_port = -1;
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, "listen_port", nixl_agent_create("A", &cfg, &a));
    cfg.listen_port = 65536;
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, "listen_port", nixl_agent_create("A", &cfg, &a));

    nixl_agent_config_init(&cfg);
    cfg.struct_size = 0;
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, "struct_size", nixl_agent_create("A", &cfg, &a));
    cfg.struct_size = sizeof(cfg) + 64;
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, "struct_size", nixl_agent_create("A", &cfg, &a));

    /* a caller that knows only the first fields: the rest is garbage and must not be read */
    memset(&cfg, 0xff, sizeof(cfg));
    cfg.struct_size = offsetof(nixl_agent_config_t, listen_port);
    cfg.use_prog_thread = false;
    cfg.use_listen_thread = false;
    nixl_agent_t *old = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create("A", &cfg, &old));
    nixl_agent_destroy(old);

    /* a listener on a port that is taken fails the creation, with the port in the reason */
    nixl_agent_config_init(&cfg);
    cfg.use_listen_thread = true;
    cfg.listen_port = 0;
    nixl_agent_t *first = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create("A", &cfg, &first));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_get_listen_port(first, &cfg.listen_port));
    assert_true(cfg.listen_port > 0);
    EXPECT_ERR(NIXL_ERR_BACKEND, "in use", nixl_agent_create("A2", &cfg, &a));
    assert_ptr_equal(a, (nixl_agent_t *)0x1);
    nixl_agent_destroy(first);
}

static void test_config_defaults_and_sync_modes(void **state)
{
    (void)state;
    nixl_agent_config_t cfg;
    memset(&cfg, 0xa5, sizeof(cfg));
    nixl_agent_config_init(&cfg);
    assert_int_equal(cfg.struct_size, sizeof(cfg));
    assert_false(cfg.use_prog_thread);
    assert_false(cfg.use_listen_thread);
    assert_int_equal(cfg.listen_port, NIXL_DEFAULT_COMM_PORT);
    assert_int_equal(cfg.listen_port, 8888);
    assert_int_equal(cfg.sync_mode, NIXL_THREAD_SYNC_DEFAULT);
    assert_int_equal(NIXL_THREAD_SYNC_DEFAULT, NIXL_THREAD_SYNC_NONE);
    assert_false(cfg.capture_telemetry);
    assert_int_equal(cfg.pthr_delay_us, 0);
    assert_int_equal(cfg.lthr_delay_us, 100000);
    assert_int_equal(cfg.etcd_watch_timeout_us, 5000000);

    nixl_opt_args_t o;
    memset(&o, 0xa5, sizeof(o));
    nixl_opt_args_init(&o);
    assert_int_equal(o.struct_size, sizeof(o));
    assert_null(o.backends);
    assert_int_equal(o.num_backends, 0);
    assert_false(o.has_notif);
    assert_false(o.skip_desc_merge);
    assert_false(o.include_conn_info);
    assert_int_equal(o.port, 8888);

    /* every sync mode gives a working agent; port 0 and 65535 are valid ports */
    const nixl_thread_sync_t modes[] = {NIXL_THREAD_SYNC_NONE, NIXL_THREAD_SYNC_STRICT,
                                        NIXL_THREAD_SYNC_RW};
    for (size_t i = 0; i < 3; i++) {
        cfg.sync_mode = modes[i];
        cfg.listen_port = i == 1 ? 0 : 65535;
        nixl_agent_t *a = t_agent("A", &cfg, NULL, NULL);
        uint8_t buf[256];
        t_fill(buf, 128, 1);
        t_reg(a, buf, sizeof(buf));
        nixl_desc_t s = t_desc(buf, 128), d = t_desc(buf + 128, 128);
        nixl_xfer_req_t *r = NULL;
        EXPECT_ST(NIXL_SUCCESS, nixl_agent_create_xfer_req(a, NIXL_WRITE, NIXL_DRAM_SEG, &s, 1,
                                                           NIXL_DRAM_SEG, &d, 1, "A", NULL, &r));
        EXPECT_ST(NIXL_SUCCESS, t_post_wait(a, r, NULL));
        EXPECT_PATTERN(buf + 128, 128, 1);
        EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(a, r));
        nixl_agent_destroy(a);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Backends                                                                                    */
/* ------------------------------------------------------------------------------------------ */

static void test_create_backend_errors(void **state)
{
    (void)state;
    nixl_agent_t *a = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create("A", NULL, &a));
    nixl_backend_t *be = NULL, *again = (nixl_backend_t *)0x1;

    /* a parameter SHM cannot parse: the engine does not start, the reason says why */
    nixl_param_t bad = {"async_threshold", "lots"};
    EXPECT_ERR(NIXL_ERR_BACKEND, "async_threshold",
               nixl_agent_create_backend(a, "SHM", &bad, 1, &again));
    assert_ptr_equal(again, (nixl_backend_t *)0x1);
    nixl_param_t nullval = {"async_threshold", NULL};
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL, nixl_agent_create_backend(a, "SHM", &nullval, 1, &be));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL, nixl_agent_create_backend(a, "SHM", NULL, 1, &be));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL, nixl_agent_create_backend(a, "SHM", NULL, 0, NULL));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL, nixl_agent_create_backend(NULL, "SHM", NULL, 0, &be));

    /* after the failures the first real creation works; a second is refused */
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create_backend(a, "SHM", NULL, 0, &be));
    assert_non_null(be);
    assert_string_equal(nixl_backend_name(be), "SHM");
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, "SHM", nixl_agent_create_backend(a, "SHM", NULL, 0, &again));
    assert_ptr_equal(again, (nixl_backend_t *)0x1);
    /* another plugin of the same engine is another backend */
    nixl_backend_t *dyn = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create_backend(a, "SHMDYN", NULL, 0, &dyn));
    assert_ptr_not_equal(dyn, be);
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, "SHMDYN",
               nixl_agent_create_backend(a, "SHMDYN", NULL, 0, &again));
    nixl_agent_destroy(a);
}

static const char *param_get(const nixl_param_list_t *l, const char *key, size_t *times)
{
    const char *v = NULL;
    *times = 0;
    for (size_t i = 0; i < l->count; i++)
        if (!strcmp(l->items[i].key, key)) {
            v = l->items[i].value;
            (*times)++;
        }
    return v;
}

static void test_backend_params(void **state)
{
    (void)state;
    nixl_agent_t *a = NULL, *b = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create("A", NULL, &a));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create("B", NULL, &b));
    nixl_param_t params[] = {{"async_threshold", "4096"}, {"custom_key", "custom value"}};
    nixl_backend_t *be = NULL, *bbe = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create_backend(a, "SHM", params, 2, &be));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create_backend(b, "SHM", NULL, 0, &bbe));

    nixl_mem_mask_t mems = 0;
    nixl_param_list_t *l = (nixl_param_list_t *)0x1;
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL, nixl_agent_get_backend_params(a, NULL, &mems, &l));
    assert_ptr_equal(l, (nixl_param_list_t *)0x1);
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL, nixl_agent_get_backend_params(a, bbe, &mems, &l));

    /* the user's parameters, as given, no default duplicated */
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_get_backend_params(a, be, &mems, &l));
    assert_int_equal(mems, NIXL_MEM_BIT(NIXL_DRAM_SEG) | NIXL_MEM_BIT(NIXL_VRAM_SEG));
    size_t times;
    assert_string_equal(param_get(l, "async_threshold", &times), "4096");
    assert_int_equal(times, 1);
    assert_string_equal(param_get(l, "custom_key", &times), "custom value");
    assert_int_equal(times, 1);
    assert_string_equal(param_get(l, "notif_ring_size", &times), "262144"); /* a default */
    assert_int_equal(times, 1);
    assert_int_equal(l->count, 13); /* + gpu_max_blocks, trusted_uids, notif_senders, ptracer,
                                     * transport, stage_ring_size, stage_rings, map_max_bytes,
                                     * copy_threads, hugepages: defaults */
    nixl_free(l);

    /* without user parameters: the plugin defaults (docs/differences.md item 10) */
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_get_backend_params(b, bbe, NULL, &l));
    assert_string_equal(param_get(l, "async_threshold", &times), "0");
    assert_int_equal(times, 1);
    nixl_free(l);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_get_backend_params(b, bbe, NULL, NULL));

    /* the parameters were copied: the caller's array may go away */
    params[0].value = "changed";
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_get_backend_params(a, be, NULL, &l));
    assert_string_equal(param_get(l, "async_threshold", &times), "4096");
    nixl_free(l);
    nixl_agent_destroy(a);
    nixl_agent_destroy(b);
}

/* ------------------------------------------------------------------------------------------ */
/* Names and small functions                                                                   */
/* ------------------------------------------------------------------------------------------ */

static void test_status_names(void **state)
{
    (void)state;
    static const struct {
        nixl_status_t st;
        int value;
        const char *name;
    } want[] = {
        {NIXL_IN_PROG, 1, "NIXL_IN_PROG"},
        {NIXL_SUCCESS, 0, "NIXL_SUCCESS"},
        {NIXL_ERR_NOT_POSTED, -1, "NIXL_ERR_NOT_POSTED"},
        {NIXL_ERR_INVALID_PARAM, -2, "NIXL_ERR_INVALID_PARAM"},
        {NIXL_ERR_BACKEND, -3, "NIXL_ERR_BACKEND"},
        {NIXL_ERR_NOT_FOUND, -4, "NIXL_ERR_NOT_FOUND"},
        {NIXL_ERR_MISMATCH, -5, "NIXL_ERR_MISMATCH"},
        {NIXL_ERR_NOT_ALLOWED, -6, "NIXL_ERR_NOT_ALLOWED"},
        {NIXL_ERR_REPOST_ACTIVE, -7, "NIXL_ERR_REPOST_ACTIVE"},
        {NIXL_ERR_UNKNOWN, -8, "NIXL_ERR_UNKNOWN"},
        {NIXL_ERR_NOT_SUPPORTED, -9, "NIXL_ERR_NOT_SUPPORTED"},
        {NIXL_ERR_REMOTE_DISCONNECT, -10, "NIXL_ERR_REMOTE_DISCONNECT"},
        {NIXL_ERR_CANCELED, -11, "NIXL_ERR_CANCELED"},
        {NIXL_ERR_NO_TELEMETRY, -12, "NIXL_ERR_NO_TELEMETRY"},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        assert_int_equal((int)want[i].st, want[i].value);
        assert_string_equal(nixl_status_str(want[i].st), want[i].name);
        const char *m = nixl_status_message(want[i].st);
        assert_true(m && m[0] && strcmp(m, "unknown status") != 0);
    }
    /* NIXL_STATUS_MAP has these rows, in this order, and no other. */
    static const int rows[] = {
#define ROW_(name, value, message) (value),
        NIXL_STATUS_MAP(ROW_)
#undef ROW_
    };
    assert_int_equal(sizeof(rows) / sizeof(rows[0]), sizeof(want) / sizeof(want[0]));
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        assert_int_equal(rows[i], want[i].value);
    assert_string_equal(nixl_status_str((nixl_status_t)2), "BAD_STATUS");
    assert_string_equal(nixl_status_str((nixl_status_t)-13), "BAD_STATUS");
    assert_string_equal(nixl_status_str((nixl_status_t)-1000), "BAD_STATUS");
    assert_string_equal(nixl_status_message((nixl_status_t)-13), "unknown status");
    assert_string_equal(nixl_status_message(NIXL_ERR_INVALID_PARAM), "invalid argument");
}

static void test_mem_and_op_names(void **state)
{
    (void)state;
    assert_int_equal(NIXL_DRAM_SEG, 0);
    assert_int_equal(NIXL_VRAM_SEG, 1);
    assert_int_equal(NIXL_BLK_SEG, 2);
    assert_int_equal(NIXL_OBJ_SEG, 3);
    assert_int_equal(NIXL_FILE_SEG, 4);
    assert_int_equal(NIXL_MEM_COUNT, 5);
    assert_string_equal(nixl_mem_str(NIXL_DRAM_SEG), "DRAM_SEG");
    assert_string_equal(nixl_mem_str(NIXL_VRAM_SEG), "VRAM_SEG");
    assert_string_equal(nixl_mem_str(NIXL_BLK_SEG), "BLK_SEG");
    assert_string_equal(nixl_mem_str(NIXL_OBJ_SEG), "OBJ_SEG");
    assert_string_equal(nixl_mem_str(NIXL_FILE_SEG), "FILE_SEG");
    assert_string_equal(nixl_mem_str((nixl_mem_t)5), "BAD_SEG");
    assert_string_equal(nixl_mem_str((nixl_mem_t)-1), "BAD_SEG");

    assert_int_equal(NIXL_READ, 0);
    assert_int_equal(NIXL_WRITE, 1);
    assert_string_equal(nixl_op_str(NIXL_READ), "READ");
    assert_string_equal(nixl_op_str(NIXL_WRITE), "WRITE");
    assert_string_equal(nixl_op_str((nixl_xfer_op_t)2), "BAD_OP");
    assert_string_equal(nixl_op_str((nixl_xfer_op_t)-1), "BAD_OP");
}

static void test_mem_from_str(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        nixl_mem_t t;
    } ok[] = {
        {"DRAM", NIXL_DRAM_SEG}, {"DRAM_SEG", NIXL_DRAM_SEG}, {"cpu", NIXL_DRAM_SEG},
        {"VRAM", NIXL_VRAM_SEG}, {"VRAM_SEG", NIXL_VRAM_SEG}, {"cuda", NIXL_VRAM_SEG},
        {"BLOCK", NIXL_BLK_SEG}, {"BLK_SEG", NIXL_BLK_SEG},   {"OBJ", NIXL_OBJ_SEG},
        {"OBJ_SEG", NIXL_OBJ_SEG}, {"FILE", NIXL_FILE_SEG},   {"FILE_SEG", NIXL_FILE_SEG},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        nixl_mem_t t = (nixl_mem_t)99;
        EXPECT_ST(NIXL_SUCCESS, nixl_mem_from_str(ok[i].s, &t));
        assert_int_equal(t, ok[i].t);
        /* the string form of a type parses back to it */
        EXPECT_ST(NIXL_SUCCESS, nixl_mem_from_str(nixl_mem_str(ok[i].t), &t));
        assert_int_equal(t, ok[i].t);
    }
    nixl_mem_t t = (nixl_mem_t)99;
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, "bogus", nixl_mem_from_str("bogus", &t));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL, nixl_mem_from_str("", &t));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL, nixl_mem_from_str("BAD_SEG", &t));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL, nixl_mem_from_str("DRAMX", &t));
    assert_int_equal(t, 99);
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL, nixl_mem_from_str(NULL, &t));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL, nixl_mem_from_str("DRAM", NULL));
}

static void *last_error_in_thread(void *arg)
{
    (void)arg;
    return (void *)(uintptr_t)(nixl_last_error()[0] == '\0');
}

static void test_last_error_and_version(void **state)
{
    (void)state;
    char v[64];
    snprintf(v, sizeof(v), "%d.%d.%d", NIXL_VERSION_MAJOR, NIXL_VERSION_MINOR, NIXL_VERSION_PATCH);
    assert_string_equal(nixl_version(), v);

    /* the reason is per thread: a failure here is not seen by another thread */
    nixl_mem_t t;
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL, nixl_mem_from_str("bogus", &t));
    pthread_t th;
    void *clean = NULL;
    assert_int_equal(pthread_create(&th, NULL, last_error_in_thread, NULL), 0);
    assert_int_equal(pthread_join(th, &clean), 0);
    assert_true(clean != NULL);
    EXPECT_LASTERR("bogus");
    nixl_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_avail_plugins_order), /* first: SHMDYN not loaded yet */
        cmocka_unit_test(test_plugin_dir_read_each_time),
        cmocka_unit_test(test_plugin_params_shm),
        cmocka_unit_test(test_plugin_bad_files),
        cmocka_unit_test(test_shmdyn_loopback),
        cmocka_unit_test(test_create_bad_names),
        cmocka_unit_test(test_create_bad_config),
        cmocka_unit_test(test_config_defaults_and_sync_modes),
        cmocka_unit_test(test_create_backend_errors),
        cmocka_unit_test(test_backend_params),
        cmocka_unit_test(test_status_names),
        cmocka_unit_test(test_mem_and_op_names),
        cmocka_unit_test(test_mem_from_str),
        cmocka_unit_test(test_last_error_and_version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
