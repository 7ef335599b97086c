/*
 * test_gds_params.c - the GDS and GDS_MT plugins on any host, GPU or not: they load (no CUDA
 * or cuFile needed to build or load them), advertise the reference's memory types and
 * parameters, refuse bad parameters with the reason before touching cuFile, and, where cuFile
 * or a GPU is missing, refuse to create an engine with a reason that says which. The plugin
 * answers NOT_SUPPORTED (or INVALID_PARAM); the core reports every failed creation as
 * NIXL_ERR_BACKEND, as the reference does, keeping the plugin's reason in nixl_last_error().
 * The data paths need a GPU: tests/gpu/test_gds.c.
 */
#include <dlfcn.h>

#include "agent_test.h"

static const char *const plugins[] = {"GDS", "GDS_MT"};

static bool cufile_loads(void)
{
    void *h = dlopen("libcufile.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!h)
        h = dlopen("libcufile.so", RTLD_NOW | RTLD_LOCAL);
    if (h)
        dlclose(h);
    return h != NULL;
}

static const char *param_value(const nixl_param_list_t *l, const char *key)
{
    for (size_t i = 0; i < l->count; i++)
        if (!strcmp(l->items[i].key, key))
            return l->items[i].value;
    return NULL;
}

static void test_described(void **state)
{
    (void)state;
    nixl_agent_t *a = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create("self", NULL, &a));
    for (int k = 0; k < 2; k++) {
        nixl_mem_mask_t mems = 0;
        nixl_param_list_t *params = NULL;
        EXPECT_ST(NIXL_SUCCESS, nixl_agent_get_plugin_params(a, plugins[k], &mems, &params));
        assert_int_equal(mems, NIXL_MEM_BIT(NIXL_DRAM_SEG) | NIXL_MEM_BIT(NIXL_VRAM_SEG) |
                                   NIXL_MEM_BIT(NIXL_FILE_SEG));
        assert_non_null(params);
        if (k == 0) {
            assert_string_equal(param_value(params, "batch_pool_size"), "32");
            assert_string_equal(param_value(params, "batch_limit"), "128");
            assert_string_equal(param_value(params, "batch_inflight_limit"), "64");
            assert_non_null(param_value(params, "max_request_size"));
        } else {
            assert_non_null(param_value(params, "thread_count"));
        }
        nixl_free(params);
    }
    nixl_agent_destroy(a);
}

static void expect_bad(const char *plugin, const char *key, const char *value, const char *why)
{
    nixl_agent_t *a = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create("self", NULL, &a));
    nixl_param_t p = {key, value};
    nixl_backend_t *be = NULL;
    EXPECT_ERR(NIXL_ERR_BACKEND, why, nixl_agent_create_backend(a, plugin, &p, 1, &be));
    assert_null(be);
    nixl_agent_destroy(a);
}

/* Refused before cuFile is looked for, so the same on every host. */
static void test_bad_params(void **state)
{
    (void)state;
    expect_bad("GDS", "batch_pool_size", "0", "batch_pool_size");
    expect_bad("GDS", "batch_limit", "many", "batch_limit");
    expect_bad("GDS", "batch_limit", "0", "batch_limit");
    expect_bad("GDS", "max_request_size", "5000", "multiple of 4096");
    expect_bad("GDS", "max_request_size", "1024", "max_request_size");
    expect_bad("GDS_MT", "thread_count", "0", "thread_count");
    expect_bad("GDS_MT", "thread_count", "-3", "thread_count");
    expect_bad("GDS_MT", "thread_count", "100000", "thread_count");
}

/* Without cuFile (this CI host): refused, naming cuFile. With it: created, or refused with a
 * reason (no GPU, the driver refused). Never silent. */
static void test_create_or_reason(void **state)
{
    (void)state;
    bool have = cufile_loads();
    for (int k = 0; k < 2; k++) {
        nixl_agent_t *a = NULL;
        EXPECT_ST(NIXL_SUCCESS, nixl_agent_create("self", NULL, &a));
        nixl_backend_t *be = NULL;
        nixl_status_t st = nixl_agent_create_backend(a, plugins[k], NULL, 0, &be);
        if (!have) {
            assert_int_equal(st, NIXL_ERR_BACKEND);
            EXPECT_LASTERR("cuFile is not installed");
            EXPECT_LASTERR("libcufile");
            assert_null(be);
        } else if (st != NIXL_SUCCESS) {
            assert_int_equal(st, NIXL_ERR_BACKEND);
            EXPECT_LASTERR(plugins[k]);
        }
        nixl_agent_destroy(a);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_described),
        cmocka_unit_test(test_bad_params),
        cmocka_unit_test(test_create_or_reason),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
