/*
 * it_errors.c - peers that die (SIGKILL) around transfers, between real processes (reference
 * error_handling.cpp). Every scenario runs for WRITE and READ, synchronous and asynchronous
 * (async_threshold=1 on the initiator), with a 256-byte buffer and the notification
 * "notification".
 *
 *  BasicXfer            one transfer, exactly one notification, data equal on both sides
 *  LoadRemoteThenFail   the target dies after the request is made, before the post: post or
 *                       the status polls give REMOTE_DISCONNECT within 5 s (never NOT_POSTED),
 *                       the request can still be released, the peer's metadata is forgotten
 *  XferThenFail         iteration 0 succeeds, the target dies, iteration 1 gives
 *                       REMOTE_DISCONNECT
 *  XferFailRestore      then a new target with the same name: its metadata loads, the old
 *                       request is refused with NOT_FOUND, a new one moves data
 *  XferPostThenFail     the target dies right after the post of a large async transfer (or
 *                       during a large synchronous one): SUCCESS or REMOTE_DISCONNECT within
 *                       5 s, never a hang
 *  Survivor             with two targets, the second keeps working after the first dies
 *  RestartBeforePost    the target dies and a new one with the same name starts before any
 *                       call of ours noticed: after at most an explicit invalidation, the
 *                       new metadata loads and works
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "it_util.h"
#include "peer.h"

#define SMALL 256
#define LARGE ((size_t)128 << 20)
#define DISCONNECT_MS 5000

static const char NOTIF[] = "notification";

typedef struct mode {
    nixl_xfer_op_t op;
    bool async;
} mode_t_;

typedef struct ctx {
    mode_t_ m;
    size_t size;
    uint8_t *buf;
    nixl_agent_t *agent;
    it_peer_t target;
    uint64_t taddr;
} ctx_t;

static int setup(ctx_t *c, const mode_t_ *m, size_t size, uint64_t threshold)
{
    memset(c, 0, sizeof(*c));
    c->m = *m;
    c->size = size;
    c->target.ch.rd = c->target.ch.wr = -1;
    c->buf = it_alloc(size);
    if (!c->buf)
        return -1;
    c->agent = it_agent("initiator", threshold);
    if (!c->agent || it_register(c->agent, c->buf, size) != 0)
        return -1;
    return it_target_start(&c->target, "target", size, c->agent, &c->taddr);
}

static void teardown(ctx_t *c)
{
    it_peer_cleanup(&c->target);
    nixl_agent_destroy(c->agent);
    free(c->buf);
}

static int make_req(ctx_t *c, nixl_xfer_req_t **req)
{
    nixl_desc_t l = {(uintptr_t)c->buf, c->size, 0}, r = {(uintptr_t)c->taddr, c->size, 0};
    nixl_opt_args_t opt;
    it_notif_opt(&opt, NOTIF, strlen(NOTIF));
    IT_CHECK_ST(nixl_agent_create_xfer_req(c->agent, c->m.op, NIXL_DRAM_SEG, &l, 1,
                                           NIXL_DRAM_SEG, &r, 1, "target", &opt, req),
                NIXL_SUCCESS);
    return 0;
fail:
    return -1;
}

/* One successful iteration, checked on both sides; the request carries NOTIF. */
static int iteration_ok(ctx_t *c, it_peer_t *target, nixl_xfer_req_t *req, uint64_t seed)
{
    nixl_status_t st;
    if (c->m.op == NIXL_WRITE) {
        it_fill(c->buf, c->size, seed);
    } else {
        it_fill(c->buf, c->size, seed + 1); /* stale bytes must not pass */
        IT_CHECK(it_cmd(&target->ch, "fill 0 %zu %llu", c->size, (unsigned long long)seed) == 0,
                 "target fill");
    }
    st = nixl_agent_post_xfer_req(c->agent, req, NULL);
    IT_CHECK(st == (c->m.async ? NIXL_IN_PROG : NIXL_SUCCESS),
             "post returned %s, expected %s (%s)", nixl_status_str(st),
             c->m.async ? "IN_PROG" : "SUCCESS", nixl_last_error());
    st = it_wait_xfer(c->agent, req, IT_TIMEOUT_MS);
    IT_CHECK(st == NIXL_SUCCESS, "transfer ended with %s (%s)", nixl_status_str(st),
             nixl_last_error());
    IT_CHECK(it_cmd(&target->ch, "notifs 1 initiator %s", NOTIF) == 0, "notification");
    if (c->m.op == NIXL_WRITE) {
        IT_CHECK(it_cmd(&target->ch, "verify 0 %zu %llu", c->size, (unsigned long long)seed) == 0,
                 "target data");
    } else {
        size_t bad = it_verify(c->buf, c->size, seed);
        IT_CHECK(!bad, "READ: byte %zu differs", bad - 1);
    }
    return 0;
fail:
    return -1;
}

/* Post `req` at a dead peer: REMOTE_DISCONNECT from the post or the status, within 5 s. */
static int expect_disconnect(ctx_t *c, nixl_xfer_req_t *req)
{
    uint64_t t0 = it_now_ms();
    nixl_status_t st = nixl_agent_post_xfer_req(c->agent, req, NULL);
    IT_CHECK(st != NIXL_ERR_NOT_POSTED, "post returned NOT_POSTED");
    while (st == NIXL_IN_PROG && it_now_ms() - t0 < DISCONNECT_MS) {
        st = nixl_agent_get_xfer_status(c->agent, req);
        IT_CHECK(st != NIXL_ERR_NOT_POSTED, "status returned NOT_POSTED");
        if (st == NIXL_IN_PROG)
            it_sleep_ms(1);
    }
    IT_CHECK(st == NIXL_ERR_REMOTE_DISCONNECT,
             "a transfer to a dead peer ended with %s after %llu ms, expected "
             "REMOTE_DISCONNECT (%s)",
             nixl_status_str(st), (unsigned long long)(it_now_ms() - t0), nixl_last_error());
    /* The status stays what it was, and the peer is forgotten. */
    st = nixl_agent_get_xfer_status(c->agent, req);
    IT_CHECK(st == NIXL_ERR_REMOTE_DISCONNECT, "status after the failure: %s",
             nixl_status_str(st));
    st = nixl_agent_check_remote_md(c->agent, "target", NIXL_DRAM_SEG, NULL, 0);
    IT_CHECK(st == NIXL_ERR_NOT_FOUND,
             "check_remote_md after REMOTE_DISCONNECT: %s, expected NOT_FOUND (metadata "
             "invalidated on disconnect)", nixl_status_str(st));
    return 0;
fail:
    return -1;
}

/* ------------------------------------------------------------------------------------------ */

static int basic_xfer(const void *arg)
{
    ctx_t c;
    nixl_xfer_req_t *req = NULL;
    if (setup(&c, arg, SMALL, ((const mode_t_ *)arg)->async) != 0)
        goto fail;
    IT_CHECK(make_req(&c, &req) == 0, "make request");
    IT_CHECK(it_wait_xfer(c.agent, req, 10) == NIXL_ERR_NOT_POSTED, "fresh request not NOT_POSTED");
    IT_CHECK(iteration_ok(&c, &c.target, req, 0xb0) == 0, "transfer");
    IT_CHECK_ST(nixl_agent_release_xfer_req(c.agent, req), NIXL_SUCCESS);
    req = NULL;
    IT_CHECK(it_peer_quit(&c.target) == 0, "target exit");
    teardown(&c);
    return 0;
fail:
    nixl_agent_release_xfer_req(c.agent, req);
    teardown(&c);
    return -1;
}

static int load_remote_then_fail(const void *arg)
{
    ctx_t c;
    nixl_xfer_req_t *req = NULL;
    if (setup(&c, arg, SMALL, ((const mode_t_ *)arg)->async) != 0)
        goto fail;
    IT_CHECK(make_req(&c, &req) == 0, "make request");
    it_peer_kill(&c.target);
    IT_CHECK(expect_disconnect(&c, req) == 0, "disconnect");
    IT_CHECK_ST(nixl_agent_release_xfer_req(c.agent, req), NIXL_SUCCESS);
    req = NULL;
    teardown(&c);
    return 0;
fail:
    nixl_agent_release_xfer_req(c.agent, req);
    teardown(&c);
    return -1;
}

/* Iteration 0 succeeds, the target dies, iteration 1 fails; *req stays for the caller. */
static int xfer_then_fail_steps(ctx_t *c, nixl_xfer_req_t **req)
{
    IT_CHECK(make_req(c, req) == 0, "make request");
    IT_CHECK(iteration_ok(c, &c->target, *req, 0x10) == 0, "iteration 0");
    it_peer_kill(&c->target);
    IT_CHECK(expect_disconnect(c, *req) == 0, "iteration 1");
    return 0;
fail:
    return -1;
}

static int xfer_then_fail(const void *arg)
{
    ctx_t c;
    nixl_xfer_req_t *req = NULL;
    if (setup(&c, arg, SMALL, ((const mode_t_ *)arg)->async) != 0)
        goto fail;
    IT_CHECK(xfer_then_fail_steps(&c, &req) == 0, "steps");
    IT_CHECK_ST(nixl_agent_release_xfer_req(c.agent, req), NIXL_SUCCESS);
    req = NULL;
    teardown(&c);
    return 0;
fail:
    nixl_agent_release_xfer_req(c.agent, req);
    teardown(&c);
    return -1;
}

static int xfer_fail_restore(const void *arg)
{
    ctx_t c;
    nixl_xfer_req_t *req = NULL, *req2 = NULL;
    if (setup(&c, arg, SMALL, ((const mode_t_ *)arg)->async) != 0)
        goto fail;
    IT_CHECK(xfer_then_fail_steps(&c, &req) == 0, "steps");

    /* The same name again, in a new process: its metadata must load (the old was dropped). */
    IT_CHECK(it_target_start(&c.target, "target", c.size, c.agent, &c.taddr) == 0,
             "restarted target");
    nixl_status_t st = nixl_agent_post_xfer_req(c.agent, req, NULL);
    IT_CHECK(st == NIXL_ERR_NOT_FOUND, "posting the old request gave %s, expected NOT_FOUND",
             nixl_status_str(st));
    IT_CHECK_ST(nixl_agent_release_xfer_req(c.agent, req), NIXL_SUCCESS);
    req = NULL;
    IT_CHECK(make_req(&c, &req2) == 0, "new request");
    IT_CHECK(iteration_ok(&c, &c.target, req2, 0x20) == 0, "iteration 2");
    IT_CHECK(iteration_ok(&c, &c.target, req2, 0x21) == 0, "iteration 3");
    IT_CHECK_ST(nixl_agent_release_xfer_req(c.agent, req2), NIXL_SUCCESS);
    req2 = NULL;
    IT_CHECK(it_peer_quit(&c.target) == 0, "target exit");
    teardown(&c);
    return 0;
fail:
    nixl_agent_release_xfer_req(c.agent, req);
    nixl_agent_release_xfer_req(c.agent, req2);
    teardown(&c);
    return -1;
}

typedef struct killer {
    pid_t pid;
    unsigned delay_ms;
} killer_t;

static void *killer_main(void *arg)
{
    killer_t *k = arg;
    it_sleep_ms(k->delay_ms);
    kill(k->pid, SIGKILL);
    return NULL;
}

/* A large transfer, the target killed right after the post (async) or during it (sync, from a
 * helper thread): it must end, as SUCCESS or REMOTE_DISCONNECT, within 5 s. */
static int xfer_post_then_fail(const void *arg)
{
    const mode_t_ *m = arg;
    ctx_t c;
    nixl_xfer_req_t *req = NULL;
    pthread_t killer;
    bool killer_started = false;
    if (setup(&c, m, LARGE, m->async ? 1 : 0) != 0)
        goto fail;
    IT_CHECK(make_req(&c, &req) == 0, "make request");
    it_fill(c.buf, c.size, 0x77);
    killer_t k = {.pid = c.target.pid, .delay_ms = 2};
    if (!m->async) {
        IT_CHECK(pthread_create(&killer, NULL, killer_main, &k) == 0, "thread");
        killer_started = true;
    }
    uint64_t t0 = it_now_ms();
    nixl_status_t st = nixl_agent_post_xfer_req(c.agent, req, NULL);
    if (m->async)
        kill(c.target.pid, SIGKILL);
    IT_CHECK(st != NIXL_ERR_NOT_POSTED, "post returned NOT_POSTED");
    IT_CHECK(st == NIXL_IN_PROG || st == NIXL_SUCCESS || st == NIXL_ERR_REMOTE_DISCONNECT,
             "post returned %s (%s)", nixl_status_str(st), nixl_last_error());
    while (st == NIXL_IN_PROG && it_now_ms() - t0 < DISCONNECT_MS) {
        st = nixl_agent_get_xfer_status(c.agent, req);
        IT_CHECK(st != NIXL_ERR_NOT_POSTED, "status returned NOT_POSTED");
        if (st == NIXL_IN_PROG)
            it_sleep_ms(1);
    }
    IT_CHECK(st == NIXL_SUCCESS || st == NIXL_ERR_REMOTE_DISCONNECT,
             "ended with %s after %llu ms (%s)", nixl_status_str(st),
             (unsigned long long)(it_now_ms() - t0), nixl_last_error());
    it_log("%s %s: the transfer ended with %s after %llu ms", nixl_op_str(m->op),
           m->async ? "async" : "sync", nixl_status_str(st),
           (unsigned long long)(it_now_ms() - t0));
    if (killer_started) {
        pthread_join(killer, NULL);
        killer_started = false;
    }
    it_peer_kill(&c.target);
    if (st == NIXL_ERR_REMOTE_DISCONNECT) {
        /* The peer is forgotten: the request is stale now. */
        st = nixl_agent_post_xfer_req(c.agent, req, NULL);
        IT_CHECK(st == NIXL_ERR_NOT_FOUND, "repost after REMOTE_DISCONNECT: %s",
                 nixl_status_str(st));
    } else {
        /* It completed before the death: the next post must notice it. */
        IT_CHECK(expect_disconnect(&c, req) == 0, "repost after the death");
    }
    IT_CHECK_ST(nixl_agent_release_xfer_req(c.agent, req), NIXL_SUCCESS);
    req = NULL;
    teardown(&c);
    return 0;
fail:
    if (killer_started)
        pthread_join(killer, NULL);
    nixl_agent_release_xfer_req(c.agent, req);
    teardown(&c);
    return -1;
}

/* Two targets; the first dies, the second keeps working. */
static int survivor(const void *arg)
{
    const mode_t_ *m = arg;
    ctx_t c;
    it_peer_t b = {.ch = {-1, -1}};
    uint64_t baddr = 0;
    nixl_xfer_req_t *ra = NULL, *rb = NULL, *ra2 = NULL;
    if (setup(&c, m, SMALL, m->async) != 0)
        goto fail;
    IT_CHECK(it_target_start(&b, "target-b", SMALL, c.agent, &baddr) == 0, "second target");
    IT_CHECK(make_req(&c, &ra) == 0, "request to a");
    nixl_desc_t l = {(uintptr_t)c.buf, c.size, 0}, r = {(uintptr_t)baddr, c.size, 0};
    nixl_opt_args_t opt;
    it_notif_opt(&opt, NOTIF, strlen(NOTIF));
    IT_CHECK_ST(nixl_agent_create_xfer_req(c.agent, m->op, NIXL_DRAM_SEG, &l, 1, NIXL_DRAM_SEG,
                                           &r, 1, "target-b", &opt, &rb),
                NIXL_SUCCESS);
    IT_CHECK(iteration_ok(&c, &c.target, ra, 0x30) == 0, "a before");
    IT_CHECK(iteration_ok(&c, &b, rb, 0x31) == 0, "b before");
    it_peer_kill(&c.target);
    IT_CHECK(expect_disconnect(&c, ra) == 0, "a after its death");
    for (unsigned i = 0; i < 5; i++)
        IT_CHECK(iteration_ok(&c, &b, rb, 0x40 + i) == 0, "b after a died (%u)", i);
    IT_CHECK_ST(nixl_agent_gen_notif(c.agent, "target-b", NOTIF, strlen(NOTIF), NULL),
                NIXL_SUCCESS);
    IT_CHECK(it_cmd(&b.ch, "notifs 1 initiator %s", NOTIF) == 0, "gen_notif to b");
    nixl_status_t st = nixl_agent_gen_notif(c.agent, "target", NOTIF, strlen(NOTIF), NULL);
    IT_CHECK(st == NIXL_ERR_NOT_FOUND, "gen_notif to the dead (forgotten) target: %s",
             nixl_status_str(st));
    st = nixl_agent_create_xfer_req(c.agent, m->op, NIXL_DRAM_SEG, &l, 1, NIXL_DRAM_SEG, &r, 1,
                                    "target", &opt, &ra2);
    IT_CHECK(st == NIXL_ERR_NOT_FOUND, "a request to the forgotten target: %s",
             nixl_status_str(st));
    IT_CHECK_ST(nixl_agent_release_xfer_req(c.agent, ra), NIXL_SUCCESS);
    IT_CHECK_ST(nixl_agent_release_xfer_req(c.agent, rb), NIXL_SUCCESS);
    ra = rb = NULL;
    IT_CHECK(it_peer_quit(&b) == 0, "b exit");
    teardown(&c);
    return 0;
fail:
    nixl_agent_release_xfer_req(c.agent, ra);
    nixl_agent_release_xfer_req(c.agent, rb);
    nixl_agent_release_xfer_req(c.agent, ra2);
    it_peer_cleanup(&b);
    teardown(&c);
    return -1;
}

/* The target is replaced before any call of ours noticed its death. Loading the new metadata
 * is refused (NOT_ALLOWED: the old connection info is still loaded; only a failed post, status
 * or gen_notif invalidates it) or accepted; after an explicit invalidation it must load and
 * work. */
static int restart_before_post(const void *arg)
{
    ctx_t c;
    nixl_xfer_req_t *req = NULL;
    void *md = NULL;
    size_t md_len;
    if (setup(&c, arg, SMALL, ((const mode_t_ *)arg)->async) != 0)
        goto fail;
    it_peer_kill(&c.target);
    it_sleep_ms(200); /* the hang-up has been seen by now */
    IT_CHECK(it_target_start(&c.target, "target", c.size, NULL, &c.taddr) == 0,
             "restarted target");
    IT_CHECK(it_sendf(&c.target.ch, "md") == 0, "md command");
    IT_CHECK(it_recv(&c.target.ch, &md, &md_len, IT_TIMEOUT_MS, false) == 0, "metadata");
    nixl_status_t st = nixl_agent_load_remote_md(c.agent, md, md_len, NULL);
    IT_CHECK(st == NIXL_SUCCESS || st == NIXL_ERR_NOT_ALLOWED, "loading the new metadata: %s",
             nixl_status_str(st));
    if (st == NIXL_ERR_NOT_ALLOWED) {
        IT_CHECK_ST(nixl_agent_invalidate_remote_md(c.agent, "target"), NIXL_SUCCESS);
        IT_CHECK_ST(nixl_agent_load_remote_md(c.agent, md, md_len, NULL), NIXL_SUCCESS);
    }
    IT_CHECK(make_req(&c, &req) == 0, "request");
    IT_CHECK(iteration_ok(&c, &c.target, req, 0x50) == 0, "transfer to the new target");
    IT_CHECK_ST(nixl_agent_release_xfer_req(c.agent, req), NIXL_SUCCESS);
    req = NULL;
    IT_CHECK(it_peer_quit(&c.target) == 0, "target exit");
    free(md);
    teardown(&c);
    return 0;
fail:
    free(md);
    nixl_agent_release_xfer_req(c.agent, req);
    teardown(&c);
    return -1;
}

static const mode_t_ W = {NIXL_WRITE, false}, R = {NIXL_READ, false};
static const mode_t_ WA = {NIXL_WRITE, true}, RA = {NIXL_READ, true};

#define FOUR(name, fn)                                                                         \
    {name "/WRITE", fn, &W}, {name "/READ", fn, &R}, {name "/WRITE-async", fn, &WA},           \
        {name "/READ-async", fn, &RA}

static const it_scenario_t scenarios[] = {
    FOUR("BasicXfer", basic_xfer),
    FOUR("LoadRemoteThenFail", load_remote_then_fail),
    FOUR("XferThenFail", xfer_then_fail),
    FOUR("XferFailRestore", xfer_fail_restore),
    FOUR("XferPostThenFail", xfer_post_then_fail),
    FOUR("Survivor", survivor),
    FOUR("RestartBeforePost", restart_before_post),
};

static const it_role_t roles[] = {{"target", it_target_role}};

int main(int argc, char **argv)
{
    return it_main(argc, argv, roles, sizeof(roles) / sizeof(roles[0]), scenarios,
                   sizeof(scenarios) / sizeof(scenarios[0]));
}
