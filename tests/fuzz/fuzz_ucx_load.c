/*
 * fuzz_ucx_load.c - libFuzzer target for the path from a metadata LOAD to UCX: each input is
 * handed to nixl_agent_load_remote_md of an agent with a real UCX engine (over TCP), so its
 * UCX connection info reaches ucp_ep_create unless the backend's checks
 * (plugins/ucx/ucx_validate.c) refuse it first. Region blobs are checked at load too; UCX's
 * ucp_ep_rkey_unpack only sees them when a transfer is first created on the region, which needs
 * a live peer (the corpus's peers are gone, so their loads stop at the connection). What loads
 * is invalidated again. Besides "no crash, no abort inside UCX", it checks that the checks are consistent
 * with the LOAD: metadata whose UCX parts fail them never loads.
 *
 * The checks are also called directly on each UCX part of the input: in the libFuzzer build
 * they are compiled into the target, instrumented, so the fuzzer is guided through them (the
 * library and the plugin it loads are not instrumented).
 *
 * The corpus (tests/fuzz/corpus/ucx) is written by this target itself:
 *   NIXL_FUZZ_UCX_GEN=DIR NIXL_PLUGIN_DIR=build/tests/plugins build/tests/fuzz/fuzz_ucx_load_replay x
 * the real metadata of an agent with two UCX regions over TCP, and the mutations of issue 12.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "nixl.h"
#include "ucx_validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "fuzz_ucx_load: %s:%d: check failed: %s\n", __FILE__,       \
                    __LINE__, #cond);                                                   \
            abort();                                                                    \
        }                                                                               \
    } while (0)

static nixl_agent_t *victim;

static nixl_agent_t *ucx_agent(const char *name)
{
    nixl_agent_t *a = NULL;
    CHECK(nixl_agent_create(name, NULL, &a) == NIXL_SUCCESS);
    nixl_backend_t *be = NULL;
    if (nixl_agent_create_backend(a, "UCX", NULL, 0, &be) != NIXL_SUCCESS) {
        fprintf(stderr, "fuzz_ucx_load: no UCX engine: %s\n", nixl_last_error());
        exit(1);
    }
    return a;
}

static bool is_ucx(const char *s, size_t n)
{
    return n == 3 && !memcmp(s, "UCX", 3);
}

/* false: a UCX part of the view fails the checks */
static bool ucx_parts_ok(const nixl_md_view_t *v)
{
    bool ok = true;
    char why[160];
    for (size_t i = 0; i < v->num_conns; i++)
        if (is_ucx(v->conns[i].backend, v->conns[i].backend_len) &&
            !ucx_addr_check(v->conns[i].info, v->conns[i].info_len, why, sizeof(why))) {
            CHECK(why[0]);
            ok = false;
        }
    for (size_t s = 0; s < v->num_sections; s++) {
        const nixl_md_section_t *sec = &v->sections[s];
        if (!is_ucx(sec->backend, sec->backend_len))
            continue;
        for (size_t i = sec->first; i < sec->first + sec->count; i++)
            if (!ucx_rkey_check(v->regions[i].blob, v->regions[i].blob_len, why,
                                sizeof(why))) {
                CHECK(why[0]);
                ok = false;
            }
    }
    return ok;
}

/* ---- the corpus ---- */

static void put(const char *dir, const char *name, const nixl_md_view_t *v)
{
    nixl_buf_t b;
    nixl_buf_init(&b, 0);
    nixl_md_view_encode(&b, v);
    CHECK(!b.oom);
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s.bin", dir, name);
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(b.data, 1, b.len, f) == b.len && fclose(f) == 0);
    nixl_buf_free(&b);
}

/* The view `v` with UCX part `which` (a conn info if `conn`, else a region blob) replaced by a
 * mutated copy of itself: `edit` gets the bytes and may shorten them. */
static void put_mutant(const char *dir, const char *name, const nixl_md_view_t *v, bool conn,
                       size_t which, void (*edit)(uint8_t *p, size_t *len))
{
    const uint8_t *orig = conn ? v->conns[which].info : v->regions[which].blob;
    size_t len = conn ? v->conns[which].info_len : v->regions[which].blob_len, olen = len;
    uint8_t *copy = malloc(len + 16);
    CHECK(copy);
    memcpy(copy, orig, len);
    edit(copy, &len);
    if (conn) {
        v->conns[which].info = copy;
        v->conns[which].info_len = len;
    } else {
        v->regions[which].blob = copy;
        v->regions[which].blob_len = len;
    }
    put(dir, name, v);
    if (conn) {
        v->conns[which].info = orig;
        v->conns[which].info_len = olen;
    } else {
        v->regions[which].blob = orig;
        v->regions[which].blob_len = olen;
    }
    free(copy);
}

static void first_ff(uint8_t *p, size_t *n) { (void)n; p[0] = 0xff; }
static void truncate_half(uint8_t *p, size_t *n) { (void)p; *n /= 2; }
static void truncate_one(uint8_t *p, size_t *n) { (void)p; *n -= 1; }
static void version_2(uint8_t *p, size_t *n) { (void)n; p[0] = (uint8_t)((p[0] & 0xf0) | 1); }
static void version_15(uint8_t *p, size_t *n) { (void)n; p[0] |= 0x0f; }
static void debug_flag(uint8_t *p, size_t *n) { (void)n; p[0] |= 0x10; }
static void mem_type_7f(uint8_t *p, size_t *n) { (void)n; p[8] = 0x7f; }
static void md_map_all(uint8_t *p, size_t *n) { (void)n; memset(p, 0xff, 8); }
static void add_byte(uint8_t *p, size_t *n) { p[(*n)++] = 0x42; }
/* The device of a TCP address: header, uuid, then the md byte and the device length byte. */
static void dev_len_max(uint8_t *p, size_t *n) { (void)n; p[10] = 0x1f; }
static void not_last_dev(uint8_t *p, size_t *n)
{
    for (size_t i = 10; i < *n; i++)
        if (p[i] & 0x80) {
            p[i] &= 0x7f; /* clears the first LAST flag after the header */
            return;
        }
}
/* The first transport's overhead (after header, uuid, md, device length, device address and
 * the name checksum) made a NaN. */
static void nan_overhead(uint8_t *p, size_t *n)
{
    size_t at = 1 + 8 + 2 + (p[10] & 0x1f) + 2;
    if (at + 4 <= *n)
        memcpy(p + at, "\x00\x00\xc0\x7f", 4);
}

static void write_corpus(const char *dir)
{
    setenv("UCX_TLS", "tcp", 1);
    nixl_agent_t *peer = ucx_agent("peer");
    static uint8_t mem[2][4096];
    nixl_reg_desc_t regs[2] = {{.addr = (uintptr_t)mem[0], .len = sizeof(mem[0])},
                               {.addr = (uintptr_t)mem[1], .len = sizeof(mem[1])}};
    CHECK(nixl_agent_register_mem(peer, NIXL_DRAM_SEG, regs, 2, NULL) == NIXL_SUCCESS);
    void *md = NULL;
    size_t len = 0;
    CHECK(nixl_agent_get_local_md(peer, &md, &len) == NIXL_SUCCESS);
    nixl_md_view_t v;
    CHECK(nixl_md_decode(md, len, &v) == NIXL_SUCCESS);
    CHECK(v.num_conns == 1 && is_ucx(v.conns[0].backend, v.conns[0].backend_len));
    CHECK(v.num_regions == 2 && ucx_parts_ok(&v));
    put(dir, "golden_ucx_tcp_2_regions", &v);
    put_mutant(dir, "bad_rkey_first_byte_ff", &v, false, 0, first_ff);
    put_mutant(dir, "bad_rkey_md_map_all", &v, false, 1, md_map_all);
    put_mutant(dir, "bad_rkey_mem_type", &v, false, 0, mem_type_7f);
    put_mutant(dir, "bad_rkey_truncated", &v, false, 0, truncate_one);
    put_mutant(dir, "bad_addr_truncated_half", &v, true, 0, truncate_half);
    put_mutant(dir, "bad_addr_truncated_one", &v, true, 0, truncate_one);
    put_mutant(dir, "bad_addr_version_2", &v, true, 0, version_2);
    put_mutant(dir, "bad_addr_version_15", &v, true, 0, version_15);
    put_mutant(dir, "bad_addr_debug_flag", &v, true, 0, debug_flag);
    put_mutant(dir, "bad_addr_trailing_byte", &v, true, 0, add_byte);
    put_mutant(dir, "bad_addr_dev_len_max", &v, true, 0, dev_len_max);
    put_mutant(dir, "bad_addr_not_last_dev", &v, true, 0, not_last_dev);
    put_mutant(dir, "bad_addr_nan_overhead", &v, true, 0, nan_overhead);
    nixl_md_view_free(&v);
    free(md);
    CHECK(nixl_agent_deregister_mem(peer, NIXL_DRAM_SEG, regs, 2, NULL) == NIXL_SUCCESS);
    nixl_agent_destroy(peer);
}

/* ---- the target ---- */

static void cleanup(void)
{
    if (victim)
        nixl_agent_destroy(victim);
    victim = NULL;
}

static void init(void)
{
    const char *gen = getenv("NIXL_FUZZ_UCX_GEN");
    if (gen) {
        write_corpus(gen);
        exit(0);
    }
    /* TCP only: the loaded addresses are those of TCP agents, and peer failure detection
     * (the default error mode) needs it on UCX 1.13. */
    setenv("UCX_TLS", "tcp", 1);
    /* The endpoints to the corpus's addresses fail to connect: that is expected, not news. */
    setenv("UCX_LOG_LEVEL", "fatal", 0);
    victim = ucx_agent("victim");
    atexit(cleanup);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!victim)
        init();
    nixl_md_view_t v;
    bool decodes = nixl_md_decode(data, size, &v) == NIXL_SUCCESS;
    bool parts_ok = decodes && ucx_parts_ok(&v);
    if (decodes)
        nixl_md_view_free(&v);

    char *name = NULL;
    nixl_status_t st = nixl_agent_load_remote_md(victim, data, size, &name);
    if (st == NIXL_SUCCESS) {
        CHECK(decodes && parts_ok && name);
        CHECK(nixl_agent_invalidate_remote_md(victim, name) == NIXL_SUCCESS);
    } else {
        CHECK(nixl_last_error()[0] != '\0');
    }
    nixl_free(name);
    return 0;
}
