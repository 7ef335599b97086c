/*
 * test_posix_xfer.c - the POSIX backend moving data: WRITE memory -> file, READ file ->
 * memory, verified byte for byte, on each I/O engine, for 1 to 4096 descriptors of 4 KiB to
 * 16 MiB; reposting a handle with a new pattern; O_DIRECT (aligned works, misaligned is
 * refused at prep with the reason); a read past a file truncated after prep fails instead of
 * returning a short success; query_mem; bad parameters.
 */
#include "posix_test.h"

/* Write n x bs with pattern 1, read it back, compare; then repost both handles with
 * pattern 2. */
static void roundtrip(p_engine_t e, size_t n, size_t bs)
{
    p_rig_t g;
    p_rig_open(&g, e, NULL, 0, "rt", 0, n, bs);
    for (unsigned seed = 1; seed <= 2; seed++) {
        p_rig_roundtrip(&g, seed);
        struct stat st;
        assert_int_equal(fstat(g.fd, &st), 0);
        assert_int_equal((size_t)st.st_size, g.len);
    }
    p_rig_close(&g);
}

/* The sizes of the issue: 1..4096 descriptors, 4 KiB..16 MiB each, a few tens of MB a run. */
static void sizes(p_engine_t e)
{
    roundtrip(e, 1, 4096);
    roundtrip(e, 1, 16u << 20);
    roundtrip(e, 4096, 4096);
    roundtrip(e, 256, 64u << 10);
    roundtrip(e, 3, (16u << 20) / 3 + 1); /* odd lengths and offsets */
}

static void test_auto(void **s) { (void)s; sizes(P_AUTO); }
static void test_uring(void **s) { (void)s; sizes(P_URING); }
static void test_aio(void **s) { (void)s; sizes(P_AIO); }
static void test_pool(void **s) { (void)s; sizes(P_POOL); }

/* Queue shallower than the list: the rest waits its turn, nothing is lost. */
static void test_small_queue(void **state)
{
    (void)state;
    for (p_engine_t e = P_URING; e <= P_POOL; e++) {
        nixl_param_t q[] = {{"kernel_queue_size", "4"}, {"num_threads", "2"}};
        p_rig_t g;
        p_rig_open(&g, e, q, 2, "q", 0, 300, 8192);
        p_rig_roundtrip(&g, 7);
        p_rig_close(&g);
    }
}

static void test_direct(void **state)
{
    (void)state;
    p_rig_t g;
    p_rig_open(&g, P_AUTO, NULL, 0, "direct", O_DIRECT, 16, 64u << 10);
    p_rig_roundtrip(&g, 3);
    nixl_agent_t *a = g.a;
    char *buf = g.buf;
    int fd = g.fd;

    /* Misaligned buffer, length, offset: refused before any I/O, saying why. */
    nixl_desc_t l[3] = {{(uintptr_t)buf + 1, 4096, 0}, {(uintptr_t)buf, 1000, 0},
                        {(uintptr_t)buf, 4096, 0}};
    nixl_desc_t rr[3] = {{0, 4096, (uint64_t)fd}, {0, 1000, (uint64_t)fd},
                         {100, 4096, (uint64_t)fd}};
    for (int i = 0; i < 3; i++) {
        nixl_xfer_req_t *bad = NULL;
        EXPECT_ERR(NIXL_ERR_INVALID_PARAM, "O_DIRECT",
                   nixl_agent_create_xfer_req(a, NIXL_WRITE, NIXL_DRAM_SEG, &l[i], 1,
                                              NIXL_FILE_SEG, &rr[i], 1, "self", NULL, &bad));
        assert_null(bad);
    }
    p_rig_close(&g);
}

/* A file cut short after the read was prepared: the post fails, naming the end of file. */
static void test_truncated(void **state)
{
    (void)state;
    for (p_engine_t e = P_URING; e <= P_POOL; e++) {
        p_rig_t g;
        p_rig_open(&g, e, NULL, 0, "trunc", 0, 8, 1u << 20);
        p_rig_roundtrip(&g, 5);
        assert_int_equal(ftruncate(g.fd, (off_t)(g.len / 2 + 100)), 0);
        assert_int_equal(p_post_final(g.a, g.r), NIXL_ERR_BACKEND);
        EXPECT_LASTERR("short read");
        /* and the handle stays usable once the file is whole again */
        p_rig_roundtrip(&g, 6);
        p_rig_close(&g);
    }
}

/* Release while in flight: the queued ops are dropped, the ones in the kernel waited for;
 * then another request on the same engine still runs. */
static void test_release_in_flight(void **state)
{
    (void)state;
    for (p_engine_t e = P_URING; e <= P_POOL; e++) {
        nixl_param_t q[] = {{"kernel_queue_size", "2"}, {"num_threads", "1"}};
        p_rig_t g;
        p_rig_open(&g, e, q, 2, "rel", 0, 1024, 16384);
        t_fill(g.buf, g.len, 8);
        nixl_status_t st = nixl_agent_post_xfer_req(g.a, g.w, NULL);
        assert_true(st == NIXL_IN_PROG || st == NIXL_SUCCESS);
        EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(g.a, g.w));
        g.w = p_req(g.a, NIXL_WRITE, g.buf, g.n, g.bs, (uint64_t)g.fd);
        p_rig_roundtrip(&g, 9);
        p_rig_close(&g);
    }
}

static void test_query(void **state)
{
    (void)state;
    nixl_backend_t *be = NULL;
    nixl_agent_t *a = p_agent(P_AUTO, NULL, 0, &be);
    char p1[256], p2[256], spec[300];
    snprintf(p1, sizeof(p1), "%s/q1", p_dir);
    snprintf(p2, sizeof(p2), "%s/missing", p_dir);
    snprintf(spec, sizeof(spec), "ro:%s", p1);
    int fd = open(p1, O_CREAT | O_WRONLY | O_TRUNC, 0600);
    assert_int_equal(write(fd, "Test content for file 1\n", 24), 24);
    close(fd);
    nixl_reg_desc_t d[4] = {{0, 0, 0, p1, strlen(p1)}, {0, 0, 0, p2, strlen(p2)},
                            {0, 0, 0, "", 0}, {0, 0, 0, spec, strlen(spec)}};
    nixl_opt_args_t opt;
    nixl_opt_args_init(&opt);
    opt.backends = &be;
    opt.num_backends = 1;
    nixl_query_resp_t *resp = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_query_mem(a, NIXL_FILE_SEG, d, 4, &opt, &resp));
    assert_true(resp[0].has_value);
    assert_false(resp[1].has_value);
    assert_false(resp[2].has_value);
    assert_true(resp[3].has_value);
    assert_int_equal(resp[0].params.count, 3);
    for (size_t k = 0; k < 3; k++) {
        const nixl_param_t *p = &resp[0].params.items[k];
        if (!strcmp(p->key, "size"))
            assert_string_equal(p->value, "24");
        else if (!strcmp(p->key, "mode"))
            assert_int_equal(strtoul(p->value, NULL, 10), S_IFREG | 0600);
        else
            assert_string_equal(p->key, "mtime");
    }
    nixl_free(resp);
    resp = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_query_mem(a, NIXL_FILE_SEG, d, 0, &opt, &resp));
    nixl_free(resp);
    nixl_agent_destroy(a);
}

static void test_params(void **state)
{
    (void)state;
    nixl_agent_t *a = NULL;
    nixl_backend_t *be = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create("self", NULL, &a));
    nixl_param_t two[] = {{"use_uring", "true"}, {"use_aio", "true"}};
    EXPECT_ERR(NIXL_ERR_BACKEND, "exclusive",
               nixl_agent_create_backend(a, "POSIX", two, 2, &be));
    nixl_param_t bad[] = {{"kernel_queue_size", "0"}};
    EXPECT_ERR(NIXL_ERR_BACKEND, "kernel_queue_size",
               nixl_agent_create_backend(a, "POSIX", bad, 1, &be));
    nixl_param_t notbool[] = {{"use_uring", "maybe"}};
    EXPECT_ERR(NIXL_ERR_BACKEND, "use_uring",
               nixl_agent_create_backend(a, "POSIX", notbool, 1, &be));
    nixl_agent_destroy(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auto),      cmocka_unit_test(test_uring),
        cmocka_unit_test(test_aio),       cmocka_unit_test(test_pool),
        cmocka_unit_test(test_small_queue), cmocka_unit_test(test_direct),
        cmocka_unit_test(test_truncated), cmocka_unit_test(test_release_in_flight),
        cmocka_unit_test(test_query),
        cmocka_unit_test(test_params),
    };
    return cmocka_run_group_tests(tests, p_setup, p_teardown);
}
