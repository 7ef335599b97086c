/*
 * test_ucx_hostile.c - the metadata of a live UCX agent with one part mutated as in issue 12
 * (tests/fuzz/corpus/ucx has the same mutations, for the fuzz target): each is refused by the
 * backend's checks, with the reason, before UCX sees it, and the agent goes on working (the
 * unmutated metadata loads before and after). Before the checks, the first of them killed
 * the process.
 */
#include <stdio.h>
#include <string.h>

#include "ucx_test.h"

/* The metadata of a live agent "peer" (UCX over TCP, one region), mutated in place. */
typedef struct {
    uint8_t *md;
    size_t len;
    size_t addr; /* offset of the worker address: after "UCX|", tag c, its 8-byte length */
    size_t rkey; /* offset of the region's packed key (TCP: map 0x1, host memory, one empty key) */
} md_t;

static size_t find(const uint8_t *p, size_t n, const void *what, size_t wn)
{
    for (size_t i = 0; i + wn <= n; i++)
        if (!memcmp(p + i, what, wn))
            return i;
    fail_msg("pattern not found in the metadata");
    return 0;
}

static void load(nixl_agent_t *a, const md_t *m, const char *what, nixl_status_t want,
                 const char *why)
{
    print_message("%s\n", what);
    nixl_status_t st = nixl_agent_load_remote_md(a, m->md, m->len, NULL);
    if (st != NIXL_SUCCESS)
        print_message("  %s: %s\n", nixl_status_str(st), nixl_last_error());
    EXPECT_ST(want, st);
    if (why)
        EXPECT_LASTERR(why);
    if (st == NIXL_SUCCESS)
        EXPECT_ST(NIXL_SUCCESS, nixl_agent_invalidate_remote_md(a, "peer"));
}

static void test_mutations_refused(void **state)
{
    (void)state;
    nixl_agent_t *peer = u_agent("peer", U_TCP);
    uint8_t *buf = t_alloc_zero(4096);
    t_reg(peer, buf, 4096);
    nixl_agent_t *a = u_agent("victim", U_TCP);
    void *blob = NULL;
    md_t m = {0};
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_get_local_md(peer, &blob, &m.len));
    m.md = blob;
    m.addr = find(m.md, m.len, "UCX|c", 5) + 5 + 8;
    static const uint8_t tcp_rkey[10] = {1, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    m.rkey = find(m.md, m.len, tcp_rkey, sizeof(tcp_rkey));
    uint8_t *orig = malloc(m.len);
    assert_non_null(orig);
    memcpy(orig, m.md, m.len);
#define RESET() memcpy(m.md, orig, m.len)

    load(a, &m, "the metadata as it is", NIXL_SUCCESS, NULL);
    m.md[m.rkey] = 0xff; /* issue 12: this killed the loading process */
    load(a, &m, "first rkey byte 0xff", NIXL_ERR_MISMATCH, "MD map");
    RESET();
    m.md[m.rkey + 8] = 0x7f;
    load(a, &m, "rkey memory type 0x7f", NIXL_ERR_MISMATCH, "memory type");
    RESET();
    memset(m.md + m.rkey, 0, 8);
    load(a, &m, "rkey without MDs", NIXL_ERR_MISMATCH, "no memory domain");
    RESET();
    m.md[m.addr] = (uint8_t)((m.md[m.addr] & 0xf0) | 1);
    load(a, &m, "address version 2", NIXL_ERR_MISMATCH, "version 2");
    RESET();
    m.md[m.addr] |= 0x0f;
    load(a, &m, "address version 16", NIXL_ERR_MISMATCH, "version 16");
    RESET();
    m.md[m.addr + 10] = 0x1f; /* the first device's address length */
    load(a, &m, "device address length 31", NIXL_ERR_MISMATCH, "worker address");
    RESET();
    m.md[m.addr + 10] |= 0x80; /* "last device" on the first device, with more after it */
    load(a, &m, "early last device", NIXL_ERR_MISMATCH, NULL);
    RESET();
    size_t attr = m.addr + 11 + (m.md[m.addr + 10] & 0x1f) + 2;
    memcpy(m.md + attr, "\x00\x00\xc0\x7f", 4);
    load(a, &m, "NaN transport overhead", NIXL_ERR_MISMATCH, "not finite");
    RESET();
    load(a, &m, "the metadata as it is, again", NIXL_SUCCESS, NULL);

    free(orig);
    nixl_free(blob);
    nixl_agent_destroy(a);
    nixl_agent_destroy(peer);
    t_free_zero(buf, 4096);
}

static void test_peer_timeout_param(void **state)
{
    (void)state;
    u_use(U_TCP);
    nixl_agent_t *a = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create("p", NULL, &a));
    nixl_param_t bad = {"ucx_peer_timeout_ms", "soon"};
    nixl_backend_t *be = NULL;
    assert_int_not_equal(nixl_agent_create_backend(a, "UCX", &bad, 1, &be), NIXL_SUCCESS);
    EXPECT_LASTERR("ucx_peer_timeout_ms");
    nixl_param_t off = {"ucx_peer_timeout_ms", "0"};
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create_backend(a, "UCX", &off, 1, &be));
    nixl_agent_destroy(a);
}

int main(void)
{
    unsetenv("NIXL_TELEMETRY_ENABLE");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mutations_refused),
        cmocka_unit_test(test_peer_timeout_param),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
