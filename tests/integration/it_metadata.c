/*
 * it_metadata.c - metadata between two processes (reference metadata_exchange.cpp and
 * test_transfer.cpp CommSize, with pipes and files instead of the socket side channel).
 *
 *  FullMd10000    the target registers 10,000 separate 64-byte buffers; its full metadata
 *                 travels through a file; check_remote_md accepts all 10,000 (as one list
 *                 and one by one) and refuses ranges outside them; WRITE and READ with the
 *                 last buffer work, and one request over all 10,000 moves every byte
 *  PartialSteps   partial metadata in steps: connection info only, then 4 of 5 buffers, then
 *                 the 5th: what is loaded accumulates, checks and requests follow it; reloads
 *                 are idempotent; invalidation forgets everything and a reload works again
 *  StaleRegion    the target unmaps a buffer after its metadata was loaded: a transfer to it
 *                 fails with an error (no crash, no hang) and the peer stays usable
 * A peer on another host cannot be simulated here.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "it_util.h"
#include "peer.h"

#define MANY 10000u
#define MANY_LEN 64u
#define MANY_STRIDE 128u
#define PARTS 5u
#define PART_LEN 1024u

/* ------------------------------------------------------------------------------------------ */
/* Target roles                                                                                */
/* ------------------------------------------------------------------------------------------ */

/* Commands common to the roles: regions are numbered, `where` gives their addresses. */
static bool region_cmd(it_chan_t *ch, const char *cmd, uint8_t *const *where, size_t n,
                       size_t len)
{
    unsigned i, count;
    uint64_t seed;
    if (sscanf(cmd, "fill %u %u %" SCNu64, &i, &count, &seed) == 3 && i + count <= n) {
        for (unsigned k = i; k < i + count; k++)
            it_fill(where[k], len, seed + k);
        it_sendf(ch, "ok");
        return true;
    }
    if (sscanf(cmd, "verify %u %u %" SCNu64, &i, &count, &seed) == 3 && i + count <= n) {
        for (unsigned k = i; k < i + count; k++) {
            size_t bad = it_verify(where[k], len, seed + k);
            if (bad) {
                it_sendf(ch, "region %u: byte %zu differs", k, bad - 1);
                return true;
            }
        }
        it_sendf(ch, "ok");
        return true;
    }
    return false;
}

/* Expect exactly `n` notifications `msg` from "initiator" (one per transfer). */
static void notif_cmd(it_chan_t *ch, nixl_agent_t *agent, it_notifs_t *nt, const char *msg,
                      size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (it_notifs_take(agent, nt, "initiator", msg, strlen(msg), IT_TIMEOUT_MS) != 0) {
            it_sendf(ch, "notification %zu of %zu missing", k, n);
            it_notifs_clear(nt);
            return;
        }
    it_sleep_ms(100);
    it_notifs_poll(agent, nt);
    size_t extra = nt->count - n;
    it_notifs_clear(nt);
    if (extra)
        it_sendf(ch, "%zu unexpected notifications", extra);
    else
        it_sendf(ch, "ok");
}

/* 10,000 regions of 64 bytes at a stride of 128; the metadata goes through a file. */
static int many_role(it_chan_t *ch, const char *arg)
{
    (void)arg;
    uint8_t *base = it_alloc((size_t)MANY * MANY_STRIDE);
    uint8_t **where = calloc(MANY, sizeof(*where));
    nixl_reg_desc_t *reg = calloc(MANY, sizeof(*reg));
    nixl_agent_t *agent = NULL;
    it_notifs_t nt = {0};
    void *md = NULL;
    size_t md_len = 0;
    int rc = 1;
    char path[] = "/tmp/nixl-it-md-XXXXXX";
    IT_CHECK(base && where && reg, "memory");
    for (unsigned i = 0; i < MANY; i++) {
        where[i] = base + (size_t)i * MANY_STRIDE;
        reg[i] = (nixl_reg_desc_t){.addr = (uintptr_t)where[i], .len = MANY_LEN};
    }
    agent = it_agent("many", 0);
    IT_CHECK(agent, "agent");
    IT_CHECK_ST(nixl_agent_register_mem(agent, NIXL_DRAM_SEG, reg, MANY, NULL), NIXL_SUCCESS);
    IT_CHECK_ST(nixl_agent_get_local_md(agent, &md, &md_len), NIXL_SUCCESS);
    int fd = mkstemp(path);
    IT_CHECK(fd >= 0, "mkstemp");
    ssize_t w = write(fd, md, md_len);
    close(fd);
    IT_CHECK(w == (ssize_t)md_len, "writing the metadata file");
    uint64_t addr = (uintptr_t)base;
    IT_CHECK(it_sendf(ch, "%s", path) == 0 && it_send(ch, &addr, sizeof(addr)) == 0, "send");
    for (;;) {
        char *cmd = it_recv_str(ch, 120000);
        if (!cmd)
            break;
        unsigned n;
        char msg[64];
        if (strcmp(cmd, "quit") == 0) {
            free(cmd);
            rc = 0;
            break;
        } else if (sscanf(cmd, "notifs %u %63s", &n, msg) == 2) {
            notif_cmd(ch, agent, &nt, msg, n);
        } else if (!region_cmd(ch, cmd, where, MANY, MANY_LEN)) {
            it_sendf(ch, "bad command '%s'", cmd);
        }
        free(cmd);
    }
fail:
    unlink(path);
    nixl_free(md);
    nixl_agent_destroy(agent);
    free(reg);
    free(where);
    free(base);
    return rc;
}

/* Five separate 1 KiB buffers; metadata (full or partial) on request. Buffer 4 is mmap'ed
 * so that "unmap" can take it away. */
static int parts_role(it_chan_t *ch, const char *arg)
{
    (void)arg;
    uint8_t *where[PARTS] = {0};
    nixl_reg_desc_t reg[PARTS];
    nixl_agent_t *agent = NULL;
    it_notifs_t nt = {0};
    int rc = 1;
    for (unsigned i = 0; i < PARTS; i++) {
        if (i == PARTS - 1) {
            void *p = mmap(NULL, PART_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                           -1, 0);
            where[i] = p == MAP_FAILED ? NULL : p;
        } else {
            where[i] = it_alloc(PART_LEN);
        }
        IT_CHECK(where[i], "memory");
        reg[i] = (nixl_reg_desc_t){.addr = (uintptr_t)where[i], .len = PART_LEN};
    }
    agent = it_agent("parts", 0);
    IT_CHECK(agent, "agent");
    IT_CHECK_ST(nixl_agent_register_mem(agent, NIXL_DRAM_SEG, reg, PARTS, NULL), NIXL_SUCCESS);
    uint64_t addrs[PARTS];
    for (unsigned i = 0; i < PARTS; i++)
        addrs[i] = (uintptr_t)where[i];
    IT_CHECK(it_send(ch, addrs, sizeof(addrs)) == 0, "send");
    for (;;) {
        char *cmd = it_recv_str(ch, 120000);
        if (!cmd)
            break;
        unsigned mask, conn, n;
        char msg[64];
        if (strcmp(cmd, "quit") == 0) {
            free(cmd);
            rc = 0;
            break;
        } else if (strcmp(cmd, "full") == 0) {
            it_send_md(ch, agent);
        } else if (sscanf(cmd, "partial %u %u", &mask, &conn) == 2) {
            /* mask: which buffers; conn: include connection info */
            nixl_reg_desc_t sel[PARTS];
            size_t count = 0;
            for (unsigned i = 0; i < PARTS; i++)
                if (mask & (1u << i))
                    sel[count++] = reg[i];
            nixl_opt_args_t opt;
            nixl_opt_args_init(&opt);
            opt.include_conn_info = conn != 0;
            void *md = NULL;
            size_t len = 0;
            nixl_status_t st = nixl_agent_get_local_partial_md(agent, NIXL_DRAM_SEG, sel, count,
                                                               &opt, &md, &len);
            if (st != NIXL_SUCCESS)
                it_fail(__FILE__, __LINE__, "get_local_partial_md: %s", nixl_status_str(st));
            it_send(ch, md, len); /* an empty message tells the initiator it failed */
            nixl_free(md);
        } else if (strcmp(cmd, "partial-bad") == 0) {
            /* A sub-range of a registered buffer is not a registered region. */
            nixl_reg_desc_t sub = {.addr = reg[0].addr + 8, .len = 8};
            void *md = NULL;
            size_t len;
            nixl_status_t st =
                nixl_agent_get_local_partial_md(agent, NIXL_DRAM_SEG, &sub, 1, NULL, &md, &len);
            nixl_free(md);
            if (st == NIXL_ERR_NOT_FOUND)
                it_sendf(ch, "ok");
            else
                it_sendf(ch, "partial metadata of a sub-range: %s", nixl_status_str(st));
        } else if (strcmp(cmd, "unmap") == 0) {
            /* Take buffer 4 away without deregistering: peers still have its metadata. */
            munmap(where[PARTS - 1], PART_LEN);
            where[PARTS - 1] = NULL;
            it_sendf(ch, "ok");
        } else if (sscanf(cmd, "notifs %u %63s", &n, msg) == 2) {
            notif_cmd(ch, agent, &nt, msg, n);
        } else if (!region_cmd(ch, cmd, where, where[PARTS - 1] ? PARTS : PARTS - 1, PART_LEN)) {
            it_sendf(ch, "bad command '%s'", cmd);
        }
        free(cmd);
    }
fail:
    nixl_agent_destroy(agent);
    for (unsigned i = 0; i < PARTS; i++) {
        if (i == PARTS - 1 && where[i])
            munmap(where[i], PART_LEN);
        else if (i < PARTS - 1)
            free(where[i]);
    }
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* The initiator                                                                               */
/* ------------------------------------------------------------------------------------------ */

/* The reason of the last failing xfer() (release_xfer_req clears nixl_last_error()). */
static char xfer_why[1024];

/* One transfer local[0..n) <-> remote[0..n) on `peer` with notification `notif`. */
static nixl_status_t xfer(nixl_agent_t *agent, nixl_xfer_op_t op, const nixl_desc_t *l,
                          const nixl_desc_t *r, size_t n, const char *peer, const char *notif)
{
    nixl_xfer_req_t *req = NULL;
    nixl_opt_args_t opt;
    it_notif_opt(&opt, notif, strlen(notif));
    nixl_status_t st = nixl_agent_create_xfer_req(agent, op, NIXL_DRAM_SEG, l, n, NIXL_DRAM_SEG,
                                                  r, n, peer, &opt, &req);
    if (st != NIXL_SUCCESS)
        return st;
    st = it_post_wait(agent, req, NULL, IT_TIMEOUT_MS);
    snprintf(xfer_why, sizeof(xfer_why), "%s", st < 0 ? nixl_last_error() : "");
    nixl_status_t rst = nixl_agent_release_xfer_req(agent, req);
    return st != NIXL_SUCCESS ? st : rst;
}

static int full_md_10000(const void *arg)
{
    (void)arg;
    it_peer_t p = {.ch = {-1, -1}};
    nixl_agent_t *agent = NULL;
    uint8_t *local = NULL;
    nixl_desc_t *l = NULL, *r = NULL;
    char *path = NULL;
    void *md = NULL, *m = NULL;
    size_t md_len = 0, len;
    char *name = NULL;
    IT_CHECK(it_peer_spawn(&p, "many", "") == 0, "spawn");
    path = it_recv_str(&p.ch, IT_TIMEOUT_MS);
    IT_CHECK(path, "metadata path");
    IT_CHECK(it_recv(&p.ch, &m, &len, IT_TIMEOUT_MS, false) == 0 && len == 8, "address");
    uint64_t base;
    memcpy(&base, m, 8);
    FILE *f = fopen(path, "rb");
    IT_CHECK(f, "open %s", path);
    fseek(f, 0, SEEK_END);
    md_len = (size_t)ftell(f);
    rewind(f);
    md = malloc(md_len);
    size_t got = md ? fread(md, 1, md_len, f) : 0;
    fclose(f);
    IT_CHECK(got == md_len, "reading %zu bytes of metadata", md_len);
    it_log("full metadata of %u regions: %zu bytes", MANY, md_len);
    IT_CHECK(md_len > (size_t)MANY * 24, "the metadata is too small to hold %u regions", MANY);

    local = it_alloc((size_t)MANY * MANY_LEN);
    agent = it_agent("initiator", 0);
    IT_CHECK(local && agent && it_register(agent, local, (size_t)MANY * MANY_LEN) == 0, "agent");
    IT_CHECK_ST(nixl_agent_load_remote_md(agent, md, md_len, &name), NIXL_SUCCESS);
    IT_CHECK(strcmp(name, "many") == 0, "peer name '%s'", name);

    l = calloc(MANY, sizeof(*l));
    r = calloc(MANY, sizeof(*r));
    IT_CHECK(l && r, "memory");
    for (unsigned i = 0; i < MANY; i++) {
        l[i] = (nixl_desc_t){(uintptr_t)local + (size_t)i * MANY_LEN, MANY_LEN, 0};
        r[i] = (nixl_desc_t){(uintptr_t)(base + (uint64_t)i * MANY_STRIDE), MANY_LEN, 0};
    }
    IT_CHECK_ST(nixl_agent_check_remote_md(agent, "many", NIXL_DRAM_SEG, r, MANY), NIXL_SUCCESS);
    for (unsigned i = 0; i < MANY; i++) {
        nixl_status_t st = nixl_agent_check_remote_md(agent, "many", NIXL_DRAM_SEG, &r[i], 1);
        IT_CHECK(st == NIXL_SUCCESS, "check_remote_md of region %u: %s", i, nixl_status_str(st));
    }
    /* Not inside one region: across two, in a gap, just past the last. */
    nixl_desc_t across = {(uintptr_t)base, MANY_STRIDE, 0};
    nixl_desc_t gap = {(uintptr_t)base + MANY_LEN, 8, 0};
    nixl_desc_t past = {(uintptr_t)(base + (uint64_t)(MANY - 1) * MANY_STRIDE + 8), MANY_LEN, 0};
    IT_CHECK_ST(nixl_agent_check_remote_md(agent, "many", NIXL_DRAM_SEG, &across, 1),
                NIXL_ERR_NOT_FOUND);
    IT_CHECK_ST(nixl_agent_check_remote_md(agent, "many", NIXL_DRAM_SEG, &gap, 1),
                NIXL_ERR_NOT_FOUND);
    IT_CHECK_ST(nixl_agent_check_remote_md(agent, "many", NIXL_DRAM_SEG, &past, 1),
                NIXL_ERR_NOT_FOUND);

    /* The last region: WRITE, then READ. */
    const unsigned last = MANY - 1;
    it_fill((void *)l[last].addr, MANY_LEN, 0x1000 + last);
    IT_CHECK_ST(xfer(agent, NIXL_WRITE, &l[last], &r[last], 1, "many", "last"), NIXL_SUCCESS);
    IT_CHECK(it_cmd(&p.ch, "notifs 1 last") == 0, "notification");
    IT_CHECK(it_cmd(&p.ch, "verify %u 1 %u", last, 0x1000) == 0, "WRITE to the last region");
    IT_CHECK(it_cmd(&p.ch, "fill %u 1 %u", last, 0x2000) == 0, "fill");
    IT_CHECK_ST(xfer(agent, NIXL_READ, &l[last], &r[last], 1, "many", "last"), NIXL_SUCCESS);
    size_t bad = it_verify((void *)l[last].addr, MANY_LEN, 0x2000 + last);
    IT_CHECK(!bad, "READ from the last region: byte %zu differs", bad - 1);
    IT_CHECK(it_cmd(&p.ch, "notifs 1 last") == 0, "notification");

    /* All 10,000 in one request, both ways. */
    for (unsigned i = 0; i < MANY; i++)
        it_fill((void *)l[i].addr, MANY_LEN, 0x3000 + i);
    IT_CHECK_ST(xfer(agent, NIXL_WRITE, l, r, MANY, "many", "all"), NIXL_SUCCESS);
    IT_CHECK(it_cmd(&p.ch, "notifs 1 all") == 0, "notification");
    IT_CHECK(it_cmd(&p.ch, "verify 0 %u %u", MANY, 0x3000) == 0, "WRITE to all regions");
    IT_CHECK(it_cmd(&p.ch, "fill 0 %u %u", MANY, 0x4000) == 0, "fill");
    IT_CHECK_ST(xfer(agent, NIXL_READ, l, r, MANY, "many", "all"), NIXL_SUCCESS);
    for (unsigned i = 0; i < MANY; i++) {
        bad = it_verify((void *)l[i].addr, MANY_LEN, 0x4000 + i);
        IT_CHECK(!bad, "READ of all regions: region %u byte %zu differs", i, bad - 1);
    }
    IT_CHECK(it_cmd(&p.ch, "notifs 1 all") == 0, "notification");
    IT_CHECK(it_peer_quit(&p) == 0, "exit");
    nixl_agent_destroy(agent);
    free(local);
    free(l);
    free(r);
    free(path);
    free(md);
    free(m);
    nixl_free(name);
    return 0;
fail:
    it_peer_cleanup(&p);
    nixl_agent_destroy(agent);
    free(local);
    free(l);
    free(r);
    free(path);
    free(md);
    free(m);
    nixl_free(name);
    return -1;
}

typedef struct parts {
    it_peer_t p;
    nixl_agent_t *agent;
    uint8_t *local;
    nixl_desc_t l[PARTS], r[PARTS];
} parts_t;

static int parts_setup(parts_t *s)
{
    memset(s, 0, sizeof(*s));
    s->p.ch.rd = s->p.ch.wr = -1;
    void *m = NULL;
    size_t len;
    IT_CHECK(it_peer_spawn(&s->p, "parts", "") == 0, "spawn");
    IT_CHECK(it_recv(&s->p.ch, &m, &len, IT_TIMEOUT_MS, false) == 0 &&
                 len == PARTS * sizeof(uint64_t),
             "addresses");
    s->local = it_alloc((size_t)PARTS * PART_LEN);
    s->agent = it_agent("initiator", 0);
    IT_CHECK(s->local && s->agent &&
                 it_register(s->agent, s->local, (size_t)PARTS * PART_LEN) == 0,
             "agent");
    for (unsigned i = 0; i < PARTS; i++) {
        uint64_t a;
        memcpy(&a, (uint8_t *)m + 8 * i, 8);
        s->l[i] = (nixl_desc_t){(uintptr_t)s->local + (size_t)i * PART_LEN, PART_LEN, 0};
        s->r[i] = (nixl_desc_t){(uintptr_t)a, PART_LEN, 0};
    }
    free(m);
    return 0;
fail:
    free(m);
    return -1;
}

static int parts_done(parts_t *s, int rc)
{
    if (rc == 0 && it_peer_quit(&s->p) != 0)
        rc = -1;
    it_peer_cleanup(&s->p);
    nixl_agent_destroy(s->agent);
    free(s->local);
    return rc;
}

/* Ask for metadata ("full" or "partial <mask> <conn>") and load it; returns the load status
 * (NIXL_ERR_UNKNOWN if the metadata could not be had). */
static nixl_status_t load_from(parts_t *s, const char *what)
{
    void *md = NULL;
    size_t len = 0;
    if (it_sendf(&s->p.ch, "%s", what) != 0 ||
        it_recv(&s->p.ch, &md, &len, IT_TIMEOUT_MS, false) != 0 || !len) {
        free(md);
        it_fail(__FILE__, __LINE__, "no metadata for '%s'", what);
        return NIXL_ERR_UNKNOWN;
    }
    char *name = NULL;
    nixl_status_t st = nixl_agent_load_remote_md(s->agent, md, len, &name);
    if (st == NIXL_SUCCESS && strcmp(name, "parts") != 0) {
        it_fail(__FILE__, __LINE__, "loaded '%s'", name);
        st = NIXL_ERR_UNKNOWN;
    }
    nixl_free(name);
    free(md);
    return st;
}

static nixl_status_t check(parts_t *s, unsigned first, unsigned n)
{
    return nixl_agent_check_remote_md(s->agent, "parts", NIXL_DRAM_SEG, &s->r[first], n);
}

/* WRITE local i -> remote i and READ it back through the target's fill; both verified. */
static int roundtrip(parts_t *s, unsigned i, uint64_t seed)
{
    it_fill((void *)s->l[i].addr, PART_LEN, seed + i);
    IT_CHECK_ST(xfer(s->agent, NIXL_WRITE, &s->l[i], &s->r[i], 1, "parts", "rt"), NIXL_SUCCESS);
    IT_CHECK(it_cmd(&s->p.ch, "notifs 1 rt") == 0, "notification");
    IT_CHECK(it_cmd(&s->p.ch, "verify %u 1 %" PRIu64, i, seed) == 0, "WRITE region %u", i);
    IT_CHECK(it_cmd(&s->p.ch, "fill %u 1 %" PRIu64, i, seed + 100) == 0, "fill");
    IT_CHECK_ST(xfer(s->agent, NIXL_READ, &s->l[i], &s->r[i], 1, "parts", "rt"), NIXL_SUCCESS);
    IT_CHECK(it_cmd(&s->p.ch, "notifs 1 rt") == 0, "notification");
    size_t bad = it_verify((void *)s->l[i].addr, PART_LEN, seed + 100 + i);
    IT_CHECK(!bad, "READ region %u: byte %zu differs", i, bad - 1);
    return 0;
fail:
    return -1;
}

static int partial_steps(const void *arg)
{
    (void)arg;
    parts_t s;
    IT_CHECK(parts_setup(&s) == 0, "setup");
    IT_CHECK(it_cmd(&s.p.ch, "partial-bad") == 0, "partial metadata of unregistered memory");

    /* Regions before any connection info: refused, and nothing stays. */
    IT_CHECK_ST(load_from(&s, "partial 31 0"), NIXL_ERR_NOT_FOUND);
    IT_CHECK_ST(nixl_agent_check_remote_md(s.agent, "parts", NIXL_DRAM_SEG, NULL, 0),
                NIXL_ERR_NOT_FOUND);

    /* Step 1: connection info only. */
    IT_CHECK_ST(load_from(&s, "partial 0 0"), NIXL_SUCCESS);
    IT_CHECK_ST(nixl_agent_check_remote_md(s.agent, "parts", NIXL_DRAM_SEG, NULL, 0),
                NIXL_SUCCESS);
    IT_CHECK_ST(check(&s, 0, 1), NIXL_ERR_NOT_FOUND);
    IT_CHECK_ST(nixl_agent_gen_notif(s.agent, "parts", "conn", 4, NULL), NIXL_SUCCESS);
    IT_CHECK(it_cmd(&s.p.ch, "notifs 1 conn") == 0, "notification with connection info only");

    /* Step 2: buffers 0..3, without connection info. */
    IT_CHECK_ST(load_from(&s, "partial 15 0"), NIXL_SUCCESS);
    for (unsigned i = 0; i < 4; i++)
        IT_CHECK(check(&s, i, 1) == NIXL_SUCCESS, "region %u after step 2", i);
    IT_CHECK_ST(check(&s, 0, 4), NIXL_SUCCESS);
    IT_CHECK_ST(check(&s, 4, 1), NIXL_ERR_NOT_FOUND);
    IT_CHECK_ST(check(&s, 0, 5), NIXL_ERR_NOT_FOUND);
    IT_CHECK_ST(xfer(s.agent, NIXL_WRITE, &s.l[4], &s.r[4], 1, "parts", "x"), NIXL_ERR_NOT_FOUND);
    IT_CHECK(roundtrip(&s, 3, 0x300) == 0, "region 3 after step 2");

    /* Step 3: buffer 4, with (the same) connection info. */
    IT_CHECK_ST(load_from(&s, "partial 16 1"), NIXL_SUCCESS);
    IT_CHECK_ST(check(&s, 0, 5), NIXL_SUCCESS);
    IT_CHECK(roundtrip(&s, 4, 0x400) == 0, "region 4 after step 3");

    /* Reloads add nothing and break nothing. */
    IT_CHECK_ST(load_from(&s, "partial 15 0"), NIXL_SUCCESS);
    IT_CHECK_ST(load_from(&s, "full"), NIXL_SUCCESS);
    IT_CHECK_ST(check(&s, 0, 5), NIXL_SUCCESS);
    IT_CHECK(roundtrip(&s, 0, 0x500) == 0, "region 0 after reloads");

    /* Invalidation forgets everything; a second one finds nothing. */
    IT_CHECK_ST(nixl_agent_invalidate_remote_md(s.agent, "parts"), NIXL_SUCCESS);
    IT_CHECK_ST(nixl_agent_check_remote_md(s.agent, "parts", NIXL_DRAM_SEG, NULL, 0),
                NIXL_ERR_NOT_FOUND);
    IT_CHECK_ST(check(&s, 0, 1), NIXL_ERR_NOT_FOUND);
    IT_CHECK_ST(nixl_agent_invalidate_remote_md(s.agent, "parts"), NIXL_ERR_NOT_FOUND);
    IT_CHECK_ST(nixl_agent_gen_notif(s.agent, "parts", "x", 1, NULL), NIXL_ERR_NOT_FOUND);

    /* And everything comes back. */
    IT_CHECK_ST(load_from(&s, "partial 0 0"), NIXL_SUCCESS);
    IT_CHECK_ST(load_from(&s, "partial 31 0"), NIXL_SUCCESS);
    IT_CHECK_ST(check(&s, 0, 5), NIXL_SUCCESS);
    IT_CHECK(roundtrip(&s, 2, 0x600) == 0, "region 2 after invalidation and reload");
    return parts_done(&s, 0);
fail:
    return parts_done(&s, -1);
}

static int stale_region(const void *arg)
{
    (void)arg;
    parts_t s;
    IT_CHECK(parts_setup(&s) == 0, "setup");
    IT_CHECK_ST(load_from(&s, "full"), NIXL_SUCCESS);
    IT_CHECK(roundtrip(&s, 4, 0x700) == 0, "region 4 before");
    IT_CHECK(it_cmd(&s.p.ch, "unmap") == 0, "unmap");
    for (int op = NIXL_READ; op <= NIXL_WRITE; op++) {
        uint64_t t0 = it_now_ms();
        nixl_status_t st = xfer(s.agent, (nixl_xfer_op_t)op, &s.l[4], &s.r[4], 1, "parts", "x");
        IT_CHECK(st < 0 && st != NIXL_ERR_REMOTE_DISCONNECT,
                 "%s to an unmapped region: %s, expected an error (not REMOTE_DISCONNECT: the "
                 "peer is alive)", nixl_op_str(op), nixl_status_str(st));
        IT_CHECK(xfer_why[0], "%s to an unmapped region failed without a reason",
                 nixl_op_str(op));
        it_log("%s to an unmapped region: %s after %llu ms (%s)", nixl_op_str(op),
               nixl_status_str(st), (unsigned long long)(it_now_ms() - t0), xfer_why);
    }
    IT_CHECK(roundtrip(&s, 1, 0x800) == 0, "region 1 after the failures");
    return parts_done(&s, 0);
fail:
    return parts_done(&s, -1);
}

static const it_scenario_t scenarios[] = {
    {"FullMd10000", full_md_10000, NULL},
    {"PartialSteps", partial_steps, NULL},
    {"StaleRegion", stale_region, NULL},
};

static const it_role_t roles[] = {{"many", many_role}, {"parts", parts_role}};

int main(int argc, char **argv)
{
    return it_main(argc, argv, roles, sizeof(roles) / sizeof(roles[0]), scenarios,
                   sizeof(scenarios) / sizeof(scenarios[0]));
}
