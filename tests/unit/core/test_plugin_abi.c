/*
 * test_plugin_abi.c - the plugin ABI grows without breaking plugins built before, and the
 * loader refuses what it cannot use with a reason, without running it.
 *
 * NIXL_PLUGIN_DIR points at tests/plugins: ABI2COPY is built against the frozen ABI 2 header
 * (tests/plugins/abi2/nixl_plugin.h), one operation shorter than the live one; BADABI needs a
 * newer ABI than this library's; FOREIGN exports the reference's nixl_plugin_init and aborts
 * the process if it is ever loaded.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent_test.h"
#include "nixl.h"
#include "nixl_plugin.h"

/* The live header has grown past ABI 2 (otherwise this test would prove nothing). */
_Static_assert(NIXL_PLUGIN_ABI_VERSION > 2, "the live plugin ABI must be newer than ABI 2");
_Static_assert(offsetof(nixl_be_ops_t, estimate_cost) >= offsetof(nixl_be_ops_t, query_mem) +
                                                          sizeof(void *),
               "estimate_cost is the operation appended after ABI 2");

/* A plugin built against ABI 2 loads into this library and moves bytes; the operation added
 * since gets the core's default. */
static void test_old_plugin_works(void **state)
{
    (void)state;
    nixl_agent_t *a = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create("A", NULL, &a));
    nixl_mem_mask_t mems = 0;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_get_plugin_params(a, "ABI2COPY", &mems, NULL));
    assert_int_equal(mems, NIXL_MEM_BIT(NIXL_DRAM_SEG));
    nixl_backend_t *be = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create_backend(a, "ABI2COPY", NULL, 0, &be));
    assert_non_null(be);

    enum { LEN = 1 << 20 };
    uint8_t *src = t_alloc(LEN), *dst = t_alloc_zero(LEN);
    t_fill(src, LEN, 7);
    nixl_reg_desc_t rd[2] = {t_rdesc(src, LEN), t_rdesc(dst, LEN)};
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_register_mem(a, NIXL_DRAM_SEG, rd, 2, NULL));

    /* WRITE src -> dst in two descriptors, then READ dst's second half back over src's first */
    nixl_desc_t l[2] = {t_desc(src, LEN / 2), t_desc(src + LEN / 2, LEN / 2)};
    nixl_desc_t r[2] = {t_desc(dst, LEN / 2), t_desc(dst + LEN / 2, LEN / 2)};
    nixl_xfer_req_t *req = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create_xfer_req(a, NIXL_WRITE, NIXL_DRAM_SEG, l, 2,
                                                       NIXL_DRAM_SEG, r, 2, "A", NULL, &req));
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(a, req, NULL));
    EXPECT_PATTERN(dst, LEN, 7);

    /* the operation appended in ABI 3: the core's default answers */
    int64_t d = 0, m = 0;
    nixl_cost_t c;
    EXPECT_ERR(NIXL_ERR_NOT_SUPPORTED, "ABI2COPY",
               nixl_agent_estimate_xfer_cost(a, req, &d, &m, &c));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(a, req));

    memset(src, 0, LEN);
    nixl_desc_t back_l = t_desc(src, LEN), back_r = t_desc(dst, LEN);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create_xfer_req(a, NIXL_READ, NIXL_DRAM_SEG, &back_l, 1,
                                                       NIXL_DRAM_SEG, &back_r, 1, "A", NULL,
                                                       &req));
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(a, req, NULL));
    EXPECT_PATTERN(src, LEN, 7);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(a, req));

    /* optional operations the plugin left out: defaults, with a reason naming the backend */
    nixl_opt_args_t opt;
    nixl_opt_args_init(&opt);
    opt.backends = &be;
    opt.num_backends = 1;
    nixl_query_resp_t *resp = NULL;
    EXPECT_ERR(NIXL_ERR_NOT_SUPPORTED, "ABI2COPY",
               nixl_agent_query_mem(a, NIXL_DRAM_SEG, rd, 1, &opt, &resp));

    EXPECT_ST(NIXL_SUCCESS, nixl_agent_deregister_mem(a, NIXL_DRAM_SEG, rd, 2, NULL));
    nixl_agent_destroy(a);
    free(src);
    t_free_zero(dst, LEN);
}

/* A plugin that needs a newer ABI is refused, and the message names both versions. */
static void test_newer_plugin_refused(void **state)
{
    (void)state;
    nixl_agent_t *a = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create("A", NULL, &a));
    char want[128], have[128];
    snprintf(want, sizeof(want), "needs plugin ABI %u or newer", NIXL_PLUGIN_ABI_VERSION + 97);
    snprintf(have, sizeof(have), "this library has ABI %u", NIXL_PLUGIN_ABI_VERSION);
    nixl_backend_t *be = NULL;
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, want, nixl_agent_create_backend(a, "BADABI", NULL, 0, &be));
    EXPECT_LASTERR(have);
    assert_null(be);
    nixl_agent_destroy(a);
}

/* The reference's plugins (entry point nixl_plugin_init) are recognised and refused without
 * running their code: FOREIGN aborts the process if it is loaded at all. */
static void test_foreign_plugin_not_run(void **state)
{
    (void)state;
    nixl_agent_t *a = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create("A", NULL, &a));
    nixl_backend_t *be = NULL;
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, "reference NIXL",
               nixl_agent_create_backend(a, "FOREIGN", NULL, 0, &be));
    EXPECT_LASTERR("nixl_plugin_init");
    EXPECT_LASTERR("not loaded");
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, "reference NIXL",
               nixl_agent_get_plugin_params(a, "FOREIGN", NULL, NULL));
    assert_null(be);
    /* and the agent still works */
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create_backend(a, "SHM", NULL, 0, &be));
    nixl_agent_destroy(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_old_plugin_works),
        cmocka_unit_test(test_newer_plugin_refused),
        cmocka_unit_test(test_foreign_plugin_not_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
