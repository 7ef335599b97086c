/*
 * test_lf_hostile.c - the LIBFABRIC backend (tcp provider on loopback) against hostile peer
 * bytes and bad parameters, through the public API: the metadata of a live agent with one
 * field of its connection info or region blob mutated in place is refused with the reason,
 * before libfabric sees it, and the agent goes on working (the unmutated metadata loads before
 * and after, and a WRITE through it is verified).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent_test.h"

static nixl_agent_t *lf_agent(const char *name, const nixl_param_t *p, size_t n)
{
    nixl_agent_t *a = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create(name, NULL, &a));
    nixl_backend_t *be = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create_backend(a, "LIBFABRIC", p, n, &be));
    return a;
}

static size_t find(const uint8_t *p, size_t n, const char *what)
{
    size_t wn = strlen(what);
    for (size_t i = 0; i + wn <= n; i++)
        if (!memcmp(p + i, what, wn))
            return i;
    fail_msg("'%s' not found in the metadata", what);
    return 0;
}

static void load(nixl_agent_t *a, const uint8_t *md, size_t len, const char *what, bool ok,
                 const char *why)
{
    print_message("%s\n", what);
    nixl_status_t st = nixl_agent_load_remote_md(a, md, len, NULL);
    if (st != NIXL_SUCCESS)
        print_message("  %s: %s\n", nixl_status_str(st), nixl_last_error());
    if (ok) {
        EXPECT_ST(NIXL_SUCCESS, st);
        EXPECT_ST(NIXL_SUCCESS, nixl_agent_invalidate_remote_md(a, "peer"));
        return;
    }
    assert_int_not_equal(st, NIXL_SUCCESS);
    if (why)
        EXPECT_LASTERR(why);
}

static void test_mutations_refused(void **state)
{
    (void)state;
    nixl_param_t tcp = {"provider", "tcp;ofi_rxm"};
    nixl_agent_t *peer = lf_agent("peer", &tcp, 1);
    uint8_t *buf = t_alloc_zero(4096), *mine = t_alloc_zero(4096);
    t_reg(peer, buf, 4096);
    nixl_agent_t *a = lf_agent("victim", &tcp, 1);
    t_reg(a, mine, 4096);
    void *blob = NULL;
    size_t len = 0;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_get_local_md(peer, &blob, &len));
    uint8_t *md = blob, *orig = malloc(len);
    assert_non_null(orig);
    memcpy(orig, md, len);
    size_t c = find(md, len, "NXLF"), r = find(md, len, "NXLR");
    size_t addr = c + 8 + md[c + 6] + 2; /* rail 0's address, after its length */
#define RESET() memcpy(md, orig, len)

    load(a, md, len, "the metadata as it is", true, NULL);
    md[c + 4] = 2;
    load(a, md, len, "connection info version 2", false, "version 2");
    RESET();
    md[c + 5] = 9;
    load(a, md, len, "9 rails", false, "9 rails");
    RESET();
    md[c + 5] = 0;
    load(a, md, len, "no rails", false, "0 rails");
    RESET();
    md[c + 8 + md[c + 6]] = 0xff; /* rail 0's address length, low byte */
    load(a, md, len, "an address longer than the blob", false, "address");
    RESET();
    md[addr] = 1, md[addr + 1] = 0; /* AF_UNIX where an IPv4 address must be */
    load(a, md, len, "address family AF_UNIX", false, "address");
    RESET();
    md[c + 8] = 'x'; /* another provider: this engine cannot reach it, nor can another */
    load(a, md, len, "another provider", false, "no common backend");
    RESET();
    md[r] = 'X';
    load(a, md, len, "region magic", false, "NXLR");
    RESET();
    md[r + 6] = 0x80;
    load(a, md, len, "region flags 0x80", false, "flags");
    RESET();
    memset(md + r + 16, 0, 8);
    load(a, md, len, "region of 0 bytes", false, "empty");
    RESET();
    md[r + 5] = 2;
    load(a, md, len, "region blob shorter than its rails", false, "2 rails");
    RESET();
    md[r + 8] ^= 0x40; /* the base moves: the descriptor is no longer inside */
    load(a, md, len, "region base moved", false, "outside");
    RESET();
    load(a, md, len, "the metadata as it is, again", true, NULL);

    /* And it still moves bytes. */
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_load_remote_md(a, md, len, NULL));
    for (int i = 0; i < 4096; i++)
        mine[i] = (uint8_t)(i * 7 + 1);
    nixl_desc_t l = {(uintptr_t)mine, 4096, 0}, rd = {(uintptr_t)buf, 4096, 0};
    nixl_xfer_req_t *req = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create_xfer_req(a, NIXL_WRITE, NIXL_DRAM_SEG, &l, 1,
                                                       NIXL_DRAM_SEG, &rd, 1, "peer", NULL,
                                                       &req));
    nixl_status_t st = nixl_agent_post_xfer_req(a, req, NULL);
    for (int k = 0; st == NIXL_IN_PROG && k < 10000; k++) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
        st = nixl_agent_get_xfer_status(a, req);
    }
    EXPECT_ST(NIXL_SUCCESS, st);
    assert_memory_equal(buf, mine, 4096);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(a, req));

    free(orig);
    nixl_free(blob);
    nixl_agent_destroy(a);
    nixl_agent_destroy(peer);
    t_free_zero(buf, 4096);
    t_free_zero(mine, 4096);
}

static void refused(const nixl_param_t *p, size_t n, const char *why)
{
    nixl_agent_t *a = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create("p", NULL, &a));
    nixl_backend_t *be = NULL;
    assert_int_not_equal(nixl_agent_create_backend(a, "LIBFABRIC", p, n, &be), NIXL_SUCCESS);
    print_message("  %s\n", nixl_last_error());
    EXPECT_LASTERR(why);
    nixl_agent_destroy(a);
}

static void test_params(void **state)
{
    (void)state;
    refused(&(nixl_param_t){"provider", "nosuchprovider"}, 1, "nosuchprovider");
    refused(&(nixl_param_t){"split_batch_size", "0"}, 1, "split_batch_size");
    refused(&(nixl_param_t){"peer_timeout_ms", "soon"}, 1, "peer_timeout_ms");
    refused(&(nixl_param_t){"caller_progress", "2"}, 1, "caller_progress");
    refused(&(nixl_param_t){"num_threads", "257"}, 1, "num_threads");
    setenv("NIXL_LIBFABRIC_CALLER_PROGRESS", "yes", 1);
    refused(NULL, 0, "NIXL_LIBFABRIC_CALLER_PROGRESS");
    unsetenv("NIXL_LIBFABRIC_CALLER_PROGRESS");
    refused(&(nixl_param_t){"device_list", "no-such-nic"}, 1, "no-such-nic");
    setenv("NIXL_LIBFABRIC_MAX_BW_PER_DRAM_SEG", "fast", 1);
    refused(NULL, 0, "NIXL_LIBFABRIC_MAX_BW_PER_DRAM_SEG");
    unsetenv("NIXL_LIBFABRIC_MAX_BW_PER_DRAM_SEG");
}

/* What creating an engine with `p` writes to stderr (INFO and up: main sets the level). */
static char *creation_log(const nixl_param_t *p, size_t n)
{
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0 && dup2(fileno(tmp), STDERR_FILENO) >= 0);
    nixl_agent_t *a = lf_agent("logged", p, n);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    nixl_agent_destroy(a);
    long len = ftell(tmp);
    assert_true(len >= 0);
    char *s = calloc(1, (size_t)len + 1);
    assert_non_null(s);
    rewind(tmp);
    assert_int_equal(fread(s, 1, (size_t)len, tmp), (size_t)len);
    fclose(tmp);
    return s;
}

/* num_threads has no effect: said once, at creation, only when it is set. */
static void test_num_threads_logged(void **state)
{
    (void)state;
    nixl_param_t four[] = {{"provider", "tcp;ofi_rxm"}, {"num_threads", "4"}};
    char *log = creation_log(four, 2);
    const char *hit = strstr(log, "num_threads=4 has no effect");
    assert_non_null(hit);
    assert_null(strstr(hit + 1, "num_threads=4 has no effect"));
    free(log);
    log = creation_log(four, 1);
    assert_null(strstr(log, "num_threads"));
    free(log);
}

/* Transfers with the own agent are copies; the notification arrives. */
static void test_loopback(void **state)
{
    (void)state;
    nixl_agent_t *a = lf_agent("self", NULL, 0);
    uint8_t *src = t_alloc_zero(8192), *dst = src + 4096;
    for (int i = 0; i < 4096; i++)
        src[i] = (uint8_t)(i ^ 0x5a);
    t_reg(a, src, 8192);
    void *blob = NULL;
    size_t len = 0;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_get_local_md(a, &blob, &len));
    nixl_free(blob);
    nixl_desc_t l = {(uintptr_t)src, 4096, 0}, r = {(uintptr_t)dst, 4096, 0};
    nixl_xfer_req_t *req = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create_xfer_req(a, NIXL_WRITE, NIXL_DRAM_SEG, &l, 1,
                                                       NIXL_DRAM_SEG, &r, 1, "self", NULL, &req));
    nixl_opt_args_t opt;
    nixl_opt_args_init(&opt);
    opt.has_notif = true;
    opt.notif = "own";
    opt.notif_len = 3;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_post_xfer_req(a, req, &opt));
    assert_memory_equal(src, dst, 4096);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(a, req));
    nixl_agent_destroy(a);
    t_free_zero(src, 8192);
}

/* VRAM that cannot be staged (no GPU here; host memory on a GPU machine) is refused with the
 * reason, and the agent's DRAM still registers. */
static void test_vram_refused(void **state)
{
    (void)state;
    nixl_agent_t *a = lf_agent("novram", NULL, 0);
    uint8_t *buf = t_alloc_zero(4096);
    nixl_reg_desc_t d = {.addr = (uintptr_t)buf, .len = 4096, .dev_id = 0};
    nixl_status_t st = nixl_agent_register_mem(a, NIXL_VRAM_SEG, &d, 1, NULL);
    print_message("  %s: %s\n", nixl_status_str(st), nixl_last_error());
    assert_true(st == NIXL_ERR_NOT_SUPPORTED || st == NIXL_ERR_INVALID_PARAM);
    EXPECT_LASTERR("VRAM");
    assert_true(strstr(nixl_last_error(), "driver") || strstr(nixl_last_error(), "GPU") ||
                strstr(nixl_last_error(), "not GPU memory"));
    t_reg(a, buf, 4096);
    nixl_agent_destroy(a);
    t_free_zero(buf, 4096);
}

int main(void)
{
    unsetenv("NIXL_TELEMETRY_ENABLE");
    setenv("NIXL_LOG_LEVEL", "INFO", 0); /* test_num_threads_logged reads the INFO line */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mutations_refused),
        cmocka_unit_test(test_params),
        cmocka_unit_test(test_loopback),
        cmocka_unit_test(test_num_threads_logged),
        cmocka_unit_test(test_vram_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
