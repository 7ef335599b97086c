/*
 * test_posix_path.c - path-mode registration of the POSIX backend: "<ro|rw>[,flags]:<path>"
 * opens the file at registration and closes it at deregistration. Covered: create, read-only
 * on a missing path fails cleanly, bad specs are refused (not taken as paths), devId unique
 * per file (in one list and across registrations, free again after deregistration), fd mode
 * sharing one fd, and no descriptor leaked over 100 register/write/read/deregister cycles.
 * A registration that every backend refuses is NIXL_ERR_BACKEND (reference behaviour), with
 * the plugin's reason in nixl_last_error().
 */
#include "posix_test.h"

static nixl_reg_desc_t spec_desc(char *buf, size_t len, const char *modes, const char *name,
                                 uint64_t dev)
{
    snprintf(buf, len, "%s:%s/%s", modes, p_dir, name);
    return (nixl_reg_desc_t){.addr = 0, .len = 0, .dev_id = dev, .meta = buf,
                             .meta_len = strlen(buf)};
}

static bool exists(const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", p_dir, name);
    return access(path, F_OK) == 0;
}

static void test_create_and_missing(void **state)
{
    (void)state;
    nixl_agent_t *a = p_agent(P_AUTO, NULL, 0, NULL);
    char s1[512], s2[512];
    int fds = p_count_fds();
    nixl_reg_desc_t ro = spec_desc(s1, sizeof(s1), "ro", "nofile", 10);
    EXPECT_ERR(NIXL_ERR_BACKEND, "nofile", nixl_agent_register_mem(a, NIXL_FILE_SEG, &ro, 1, NULL));
    assert_false(exists("nofile"));
    nixl_reg_desc_t rw = spec_desc(s2, sizeof(s2), "rw", "nofile", 10);
    EXPECT_ERR(NIXL_ERR_BACKEND, "nofile", nixl_agent_register_mem(a, NIXL_FILE_SEG, &rw, 1, NULL));
    assert_int_equal(p_count_fds(), fds);

    nixl_reg_desc_t cr = spec_desc(s1, sizeof(s1), "rw,create,noatime", "made", 10);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_register_mem(a, NIXL_FILE_SEG, &cr, 1, NULL));
    assert_true(exists("made"));
    assert_int_equal(p_count_fds(), fds + 1);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_deregister_mem(a, NIXL_FILE_SEG, &cr, 1, NULL));
    assert_int_equal(p_count_fds(), fds);
    nixl_agent_destroy(a);
}

static void test_bad_specs(void **state)
{
    (void)state;
    nixl_agent_t *a = p_agent(P_AUTO, NULL, 0, NULL);
    const char *bad[] = {"rw,bogus:/tmp/x", "ro,create:/tmp/x", "rw:", "rw,direct"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        nixl_reg_desc_t d = {0, 0, 20, bad[i], strlen(bad[i])};
        EXPECT_ERR(NIXL_ERR_BACKEND, "spec",
                   nixl_agent_register_mem(a, NIXL_FILE_SEG, &d, 1, NULL));
    }
    /* Not a spec and not an open fd either: fd mode, refused for the fd. */
    nixl_reg_desc_t plain = {0, 0, 999999, "/tmp/x", 6};
    EXPECT_ERR(NIXL_ERR_BACKEND, "file descriptor",
               nixl_agent_register_mem(a, NIXL_FILE_SEG, &plain, 1, NULL));
    nixl_agent_destroy(a);
}

static void test_devid_unique(void **state)
{
    (void)state;
    nixl_agent_t *a = p_agent(P_AUTO, NULL, 0, NULL);
    char s1[512], s2[512], s3[512];
    int fds = p_count_fds();
    nixl_reg_desc_t two[2] = {spec_desc(s1, sizeof(s1), "rw,create", "u1", 30),
                              spec_desc(s2, sizeof(s2), "rw,create", "u2", 30)};
    EXPECT_ERR(NIXL_ERR_BACKEND, "devId",
               nixl_agent_register_mem(a, NIXL_FILE_SEG, two, 2, NULL));
    assert_int_equal(p_count_fds(), fds); /* all or nothing: the first was closed again */
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_register_mem(a, NIXL_FILE_SEG, &two[0], 1, NULL));
    nixl_reg_desc_t again = spec_desc(s3, sizeof(s3), "rw,create", "u3", 30);
    EXPECT_ERR(NIXL_ERR_BACKEND, "devId",
               nixl_agent_register_mem(a, NIXL_FILE_SEG, &again, 1, NULL));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_deregister_mem(a, NIXL_FILE_SEG, &two[0], 1, NULL));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_register_mem(a, NIXL_FILE_SEG, &again, 1, NULL));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_deregister_mem(a, NIXL_FILE_SEG, &again, 1, NULL));
    assert_int_equal(p_count_fds(), fds);
    nixl_agent_destroy(a);
}

/* fd mode: one fd backs several regions; they all move data. */
static void test_fd_shared(void **state)
{
    (void)state;
    nixl_agent_t *a = p_agent(P_AUTO, NULL, 0, NULL);
    int fd = p_open(p_dir, "shared", O_TRUNC);
    nixl_reg_desc_t regs[2] = {{0, 4096, (uint64_t)fd, NULL, 0},
                               {4096, 4096, (uint64_t)fd, "plain metadata", 14}};
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_register_mem(a, NIXL_FILE_SEG, regs, 2, NULL));
    char *buf = t_alloc(8192);
    t_reg(a, buf, 8192);
    t_fill(buf, 8192, 9);
    nixl_xfer_req_t *w = p_req(a, NIXL_WRITE, buf, 2, 4096, (uint64_t)fd);
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(a, w, NULL));
    memset(buf, 0, 8192);
    nixl_xfer_req_t *r = p_req(a, NIXL_READ, buf, 2, 4096, (uint64_t)fd);
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(a, r, NULL));
    EXPECT_PATTERN(buf, 8192, 9);
    nixl_agent_release_xfer_req(a, w);
    nixl_agent_release_xfer_req(a, r);
    nixl_agent_destroy(a);
    close(fd);
    free(buf);
}

/* Register, write, read, deregister, 100 times, on each engine: the fd count comes back. */
static void test_no_leak(void **state)
{
    (void)state;
    for (p_engine_t e = P_URING; e <= P_POOL; e++) {
        nixl_agent_t *a = p_agent(e, NULL, 0, NULL);
        char *buf = t_alloc(65536);
        t_reg(a, buf, 65536);
        int fds = p_count_fds();
        for (unsigned c = 0; c < 100; c++) {
            char s[512];
            nixl_reg_desc_t d = spec_desc(s, sizeof(s), c % 2 ? "rw,create,sync" : "rw,create",
                                          "cycle", 40 + c % 3);
            EXPECT_ST(NIXL_SUCCESS, nixl_agent_register_mem(a, NIXL_FILE_SEG, &d, 1, NULL));
            t_fill(buf, 65536, c);
            nixl_xfer_req_t *w = p_req(a, NIXL_WRITE, buf, 4, 16384, d.dev_id);
            EXPECT_ST(NIXL_SUCCESS, t_post_wait(a, w, NULL));
            memset(buf, 0, 65536);
            nixl_xfer_req_t *r = p_req(a, NIXL_READ, buf, 4, 16384, d.dev_id);
            EXPECT_ST(NIXL_SUCCESS, t_post_wait(a, r, NULL));
            EXPECT_PATTERN(buf, 65536, c);
            EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(a, w));
            EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(a, r));
            EXPECT_ST(NIXL_SUCCESS, nixl_agent_deregister_mem(a, NIXL_FILE_SEG, &d, 1, NULL));
        }
        assert_int_equal(p_count_fds(), fds);
        nixl_agent_destroy(a);
        free(buf);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_and_missing), cmocka_unit_test(test_bad_specs),
        cmocka_unit_test(test_devid_unique),       cmocka_unit_test(test_fd_shared),
        cmocka_unit_test(test_no_leak),
    };
    return cmocka_run_group_tests(tests, p_setup, p_teardown);
}
