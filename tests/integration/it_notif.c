/*
 * it_notif.c - notifications between two processes (reference test_transfer.cpp
 * NotificationOnly / EmptyNotificationPayload, plus ordering against the data).
 *
 *  NotificationOnly   4 threads x 100 gen_notif "t<thread>-<i>": all 400 arrive, each once,
 *                     from "initiator", and each thread's in the order it sent them
 *  EmptyPayload       2 threads x 16 empty gen_notif: 32 empty notifications arrive
 *  LargePayload       a 1 MiB and an 8 MiB payload, between two small ones: intact, in order
 *  AfterData/lockstep 100 WRITEs with different patterns, one at a time; the target polls
 *                     while each is posted and, the moment it sees the notification, finds
 *                     exactly that WRITE's bytes (sync and async initiator)
 *  AfterData/freerun  100 WRITEs posted back to back; whenever the target sees notification k
 *                     every word of its buffer is from WRITE k or a later one, never older
 *  GenNotifToDead     gen_notif to a peer that was killed fails quickly instead of hanging
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "it_util.h"
#include "peer.h"

#define NBUF ((size_t)1 << 20)
#define WRITES 100
#define VERSION_SHIFT 40 /* versions stay below 256: one byte, which cannot tear */
#define INDEX_MASK ((1ull << VERSION_SHIFT) - 1)

/* Word i of version k: the version in byte 5, the index below. */
static void fill_version(uint8_t *buf, size_t len, unsigned k)
{
    for (size_t i = 0; i < len / 8; i++) {
        uint64_t w = (uint64_t)k << VERSION_SHIFT | i;
        memcpy(buf + 8 * i, &w, 8);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* The target                                                                                  */
/* ------------------------------------------------------------------------------------------ */

typedef struct nt {
    it_chan_t *ch;
    nixl_agent_t *agent;
    uint8_t *buf;
    it_notifs_t n;
} nt_t;

/* All `want` notifications "t<x>-<i>" (x < threads, i < per), each once, per-thread order. */
static void nt_count(nt_t *g, unsigned threads, unsigned per)
{
    size_t want = (size_t)threads * per;
    unsigned *next = calloc(threads, sizeof(*next));
    if (it_notifs_wait(g->agent, &g->n, want, IT_TIMEOUT_MS) != 0) {
        it_sendf(g->ch, "%zu of %zu notifications arrived", g->n.count, want);
        goto out;
    }
    it_sleep_ms(300);
    if (it_notifs_poll(g->agent, &g->n) != 0 || g->n.count != want) {
        it_sendf(g->ch, "%zu notifications arrived, expected exactly %zu", g->n.count, want);
        goto out;
    }
    for (size_t k = 0; k < g->n.count; k++) {
        const it_notif_t *it = &g->n.items[k];
        unsigned t, i;
        char tail;
        if (strcmp(it->agent, "initiator") != 0 ||
            sscanf((const char *)it->msg, "t%u-%u%c", &t, &i, &tail) != 2 || t >= threads ||
            i >= per || it->len != strlen((const char *)it->msg)) {
            it_sendf(g->ch, "unexpected notification '%.60s' from '%s'", (const char *)it->msg,
                     it->agent);
            goto out;
        }
        if (i != next[t]) {
            it_sendf(g->ch, "thread %u: notification %u arrived where %u was expected (lost, "
                     "duplicated or reordered)", t, i, next[t]);
            goto out;
        }
        next[t]++;
    }
    it_sendf(g->ch, "ok");
out:
    free(next);
    it_notifs_clear(&g->n);
}

static void nt_empty(nt_t *g, size_t want)
{
    if (it_notifs_wait(g->agent, &g->n, want, IT_TIMEOUT_MS) != 0) {
        it_sendf(g->ch, "%zu of %zu empty notifications arrived", g->n.count, want);
        goto out;
    }
    it_sleep_ms(300);
    if (it_notifs_poll(g->agent, &g->n) != 0 || g->n.count != want) {
        it_sendf(g->ch, "%zu notifications arrived, expected exactly %zu", g->n.count, want);
        goto out;
    }
    for (size_t k = 0; k < g->n.count; k++)
        if (g->n.items[k].len != 0 || strcmp(g->n.items[k].agent, "initiator") != 0) {
            it_sendf(g->ch, "notification %zu has %zu bytes, from '%s'", k, g->n.items[k].len,
                     g->n.items[k].agent);
            goto out;
        }
    it_sendf(g->ch, "ok");
out:
    it_notifs_clear(&g->n);
}

/* "before", <len bytes of pattern seed>, "after", in this order. */
static void nt_large(nt_t *g, size_t len, uint64_t seed)
{
    if (it_notifs_wait(g->agent, &g->n, 3, IT_TIMEOUT_MS) != 0) {
        it_sendf(g->ch, "%zu of 3 notifications arrived", g->n.count);
        goto out;
    }
    it_sleep_ms(100);
    it_notifs_poll(g->agent, &g->n);
    const it_notif_t *it = g->n.items;
    size_t bad = 0;
    if (g->n.count != 3 || it[0].len != 6 || memcmp(it[0].msg, "before", 6) ||
        it[2].len != 5 || memcmp(it[2].msg, "after", 5)) {
        it_sendf(g->ch, "expected 'before', payload, 'after'; got %zu notifications", g->n.count);
        goto out;
    }
    if (it[1].len != len || (bad = it_verify(it[1].msg, len, seed)) != 0) {
        it_sendf(g->ch, "the large payload has %zu bytes (expected %zu), first bad byte %zu",
                 it[1].len, len, bad ? bad - 1 : 0);
        goto out;
    }
    for (size_t k = 0; k < 3; k++)
        if (strcmp(it[k].agent, "initiator") != 0) {
            it_sendf(g->ch, "sender '%s'", it[k].agent);
            goto out;
        }
    it_sendf(g->ch, "ok");
out:
    it_notifs_clear(&g->n);
}

/* Say "ready", then poll until notification "v<k>" is seen: at that moment the buffer must
 * hold exactly version k (the initiator posts WRITE k after "ready" and waits for our verdict
 * before the next). */
static void nt_lockstep(nt_t *g, unsigned k)
{
    char want[16];
    int n = snprintf(want, sizeof(want), "v%u", k);
    it_sendf(g->ch, "ready");
    uint64_t deadline = it_now_ms() + IT_TIMEOUT_MS;
    while (it_notifs_find(&g->n, "initiator", want, (size_t)n) < 0) {
        if (it_now_ms() > deadline || it_notifs_poll(g->agent, &g->n) != 0) {
            it_sendf(g->ch, "notification %s missing", want);
            return;
        }
    }
    for (size_t i = 0; i < NBUF / 8; i++) {
        uint64_t w;
        memcpy(&w, g->buf + 8 * i, 8);
        if (w != ((uint64_t)k << VERSION_SHIFT | i)) {
            it_sendf(g->ch, "at notification %s word %zu is version %llu index %llu", want, i,
                     (unsigned long long)(w >> VERSION_SHIFT),
                     (unsigned long long)(w & INDEX_MASK));
            return;
        }
    }
    it_notifs_clear(&g->n);
    it_sendf(g->ch, "ok");
}

/* WRITEs 1..count arrive back to back; check the buffer whenever a notification is seen. */
static void nt_freerun(nt_t *g, unsigned count)
{
    it_sendf(g->ch, "ready");
    unsigned seen = 0, checks = 0;
    uint64_t deadline = it_now_ms() + IT_TIMEOUT_MS;
    while (seen < count) {
        if (it_now_ms() > deadline) {
            it_sendf(g->ch, "%u of %u notifications arrived", seen, count);
            goto out;
        }
        size_t before = g->n.count;
        if (it_notifs_poll(g->agent, &g->n) != 0) {
            it_sendf(g->ch, "get_notifs failed");
            goto out;
        }
        unsigned newest = 0;
        for (size_t k = before; k < g->n.count; k++) {
            unsigned v;
            char tail;
            if (sscanf((const char *)g->n.items[k].msg, "v%u%c", &v, &tail) != 1 || v != seen + 1) {
                it_sendf(g->ch, "notification '%.20s' arrived after v%u",
                         (const char *)g->n.items[k].msg,
                         seen);
                goto out;
            }
            seen = newest = v;
        }
        if (!newest)
            continue;
        checks++;
        for (size_t i = 0; i < NBUF / 8; i++) {
            uint64_t w;
            memcpy(&w, g->buf + 8 * i, 8);
            uint64_t v = w >> VERSION_SHIFT;
            if ((w & INDEX_MASK) != i || v < newest || v > count) {
                it_sendf(g->ch, "when notification v%u was seen, word %zu was version %llu "
                         "index %llu: the data was not in place",
                         newest, i, (unsigned long long)v, (unsigned long long)(w & INDEX_MASK));
                goto out;
            }
        }
    }
    it_log("freerun: %u notifications, the buffer checked at %u moments", seen, checks);
    it_sendf(g->ch, "ok");
out:
    it_notifs_clear(&g->n);
}

static int ntarget_role(it_chan_t *ch, const char *arg)
{
    (void)arg;
    nt_t g = {.ch = ch};
    g.buf = it_alloc(NBUF);
    g.agent = g.buf ? it_agent("target", 0) : NULL;
    if (!g.agent || it_register(g.agent, g.buf, NBUF) != 0 || it_send_md(ch, g.agent) != 0)
        return 1;
    uint64_t addr = (uintptr_t)g.buf;
    if (it_send(ch, &addr, sizeof(addr)) != 0)
        return 1;
    int rc = 1;
    for (;;) {
        char *cmd = it_recv_str(ch, 120000);
        if (!cmd)
            break;
        unsigned a, b;
        size_t len;
        uint64_t seed;
        if (strcmp(cmd, "quit") == 0) {
            rc = 0;
            free(cmd);
            break;
        } else if (sscanf(cmd, "count %u %u", &a, &b) == 2) {
            nt_count(&g, a, b);
        } else if (sscanf(cmd, "empty %u", &a) == 1) {
            nt_empty(&g, a);
        } else if (sscanf(cmd, "large %zu %" SCNu64, &len, &seed) == 2) {
            nt_large(&g, len, seed);
        } else if (sscanf(cmd, "lockstep %u", &a) == 1) {
            nt_lockstep(&g, a);
        } else if (sscanf(cmd, "freerun %u", &a) == 1) {
            nt_freerun(&g, a);
        } else {
            it_sendf(ch, "bad command '%s'", cmd);
        }
        free(cmd);
    }
    it_notifs_clear(&g.n);
    nixl_agent_destroy(g.agent);
    free(g.buf);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* The initiator                                                                               */
/* ------------------------------------------------------------------------------------------ */

typedef struct env {
    nixl_agent_t *agent;
    uint8_t *buf;
    it_peer_t target;
    uint64_t taddr;
} env_t;

static int env_setup(env_t *e, uint64_t threshold)
{
    memset(e, 0, sizeof(*e));
    e->target.ch.rd = e->target.ch.wr = -1;
    e->buf = it_alloc(NBUF);
    e->agent = e->buf ? it_agent("initiator", threshold) : NULL;
    if (!e->agent || it_register(e->agent, e->buf, NBUF) != 0)
        return -1;
    if (it_peer_spawn(&e->target, "ntarget", "") != 0)
        return -1;
    void *m;
    size_t len;
    if (it_recv_load_md(&e->target.ch, e->agent, "target") != 0 ||
        it_recv(&e->target.ch, &m, &len, IT_TIMEOUT_MS, false) != 0)
        return -1;
    memcpy(&e->taddr, m, sizeof(e->taddr));
    free(m);
    return 0;
}

static int env_done(env_t *e, int rc)
{
    if (rc == 0 && it_peer_quit(&e->target) != 0)
        rc = -1;
    it_peer_cleanup(&e->target);
    nixl_agent_destroy(e->agent);
    free(e->buf);
    return rc;
}

typedef struct sender {
    nixl_agent_t *agent;
    unsigned t, count;
    bool empty;
    int rc;
    pthread_t thread;
} sender_t;

static void *sender_main(void *arg)
{
    sender_t *s = arg;
    s->rc = 0;
    for (unsigned i = 0; i < s->count; i++) {
        char msg[32];
        int n = s->empty ? 0 : snprintf(msg, sizeof(msg), "t%u-%u", s->t, i);
        nixl_status_t st = nixl_agent_gen_notif(s->agent, "target", s->empty ? NULL : msg,
                                                (size_t)n, NULL);
        if (st != NIXL_SUCCESS) {
            s->rc = it_fail(__FILE__, __LINE__, "thread %u: gen_notif %u: %s (%s)", s->t, i,
                            nixl_status_str(st), nixl_last_error());
            return NULL;
        }
    }
    return NULL;
}

static int run_senders(env_t *e, unsigned threads, unsigned per, bool empty)
{
    sender_t s[8];
    unsigned started = 0;
    int rc = 0;
    for (; started < threads; started++) {
        s[started] = (sender_t){.agent = e->agent, .t = started, .count = per, .empty = empty};
        if (pthread_create(&s[started].thread, NULL, sender_main, &s[started]) != 0) {
            rc = it_fail(__FILE__, __LINE__, "pthread_create");
            break;
        }
    }
    for (unsigned t = 0; t < started; t++) {
        pthread_join(s[t].thread, NULL);
        rc |= s[t].rc;
    }
    return rc;
}

static int notification_only(const void *arg)
{
    (void)arg;
    env_t e;
    int rc = env_setup(&e, 0);
    if (rc == 0)
        rc = run_senders(&e, 4, 100, false);
    if (rc == 0)
        rc = it_cmd(&e.target.ch, "count 4 100");
    return env_done(&e, rc);
}

static int empty_payload(const void *arg)
{
    (void)arg;
    env_t e;
    int rc = env_setup(&e, 0);
    if (rc == 0)
        rc = run_senders(&e, 2, 16, true);
    if (rc == 0)
        rc = it_cmd(&e.target.ch, "empty 32");
    return env_done(&e, rc);
}

static int large_payload(const void *arg)
{
    size_t len = *(const size_t *)arg;
    env_t e;
    uint8_t *big = malloc(len);
    if (env_setup(&e, 0) != 0 || !big)
        goto fail;
    it_fill(big, len, 0xb16);
    IT_CHECK_ST(nixl_agent_gen_notif(e.agent, "target", "before", 6, NULL), NIXL_SUCCESS);
    IT_CHECK_ST(nixl_agent_gen_notif(e.agent, "target", big, len, NULL), NIXL_SUCCESS);
    IT_CHECK_ST(nixl_agent_gen_notif(e.agent, "target", "after", 5, NULL), NIXL_SUCCESS);
    IT_CHECK(it_cmd(&e.target.ch, "large %zu %llu", len, 0xb16ull) == 0, "large payload");
    free(big);
    return env_done(&e, 0);
fail:
    free(big);
    return env_done(&e, -1);
}

static int write_version(env_t *e, nixl_xfer_req_t *req, unsigned k, bool async)
{
    char notif[16];
    int n = snprintf(notif, sizeof(notif), "v%u", k);
    fill_version(e->buf, NBUF, k);
    nixl_opt_args_t opt;
    it_notif_opt(&opt, notif, (size_t)n);
    nixl_status_t st = nixl_agent_post_xfer_req(e->agent, req, &opt);
    IT_CHECK(st == (async ? NIXL_IN_PROG : NIXL_SUCCESS), "post v%u: %s (%s)", k,
             nixl_status_str(st), nixl_last_error());
    st = it_wait_xfer(e->agent, req, IT_TIMEOUT_MS);
    IT_CHECK(st == NIXL_SUCCESS, "v%u: %s (%s)", k, nixl_status_str(st), nixl_last_error());
    return 0;
fail:
    return -1;
}

typedef struct after_mode {
    bool async, lockstep;
} after_mode_t;

static int after_data(const void *arg)
{
    const after_mode_t *m = arg;
    env_t e;
    nixl_xfer_req_t *req = NULL;
    IT_CHECK(env_setup(&e, m->async ? 1 : 0) == 0, "setup");
    nixl_desc_t l = {(uintptr_t)e.buf, NBUF, 0}, r = {(uintptr_t)e.taddr, NBUF, 0};
    IT_CHECK_ST(nixl_agent_create_xfer_req(e.agent, NIXL_WRITE, NIXL_DRAM_SEG, &l, 1,
                                           NIXL_DRAM_SEG, &r, 1, "target", NULL, &req),
                NIXL_SUCCESS);
    if (m->lockstep) {
        for (unsigned k = 1; k <= WRITES; k++) {
            IT_CHECK(it_sendf(&e.target.ch, "lockstep %u", k) == 0, "command");
            IT_CHECK(it_expect(&e.target.ch, "ready", IT_TIMEOUT_MS) == 0, "ready");
            IT_CHECK(write_version(&e, req, k, m->async) == 0, "write");
            IT_CHECK(it_expect(&e.target.ch, "ok", IT_TIMEOUT_MS + 5000) == 0, "lockstep %u",
                     k);
        }
    } else {
        IT_CHECK(it_sendf(&e.target.ch, "freerun %u", WRITES) == 0, "command");
        IT_CHECK(it_expect(&e.target.ch, "ready", IT_TIMEOUT_MS) == 0, "ready");
        for (unsigned k = 1; k <= WRITES; k++)
            IT_CHECK(write_version(&e, req, k, m->async) == 0, "write");
        IT_CHECK(it_expect(&e.target.ch, "ok", IT_TIMEOUT_MS + 5000) == 0, "freerun");
    }
    IT_CHECK_ST(nixl_agent_release_xfer_req(e.agent, req), NIXL_SUCCESS);
    return env_done(&e, 0);
fail:
    nixl_agent_release_xfer_req(e.agent, req);
    return env_done(&e, -1);
}

static int gen_notif_to_dead(const void *arg)
{
    (void)arg;
    env_t e;
    IT_CHECK(env_setup(&e, 0) == 0, "setup");
    IT_CHECK_ST(nixl_agent_gen_notif(e.agent, "target", "alive", 5, NULL), NIXL_SUCCESS);
    it_peer_kill(&e.target);
    uint64_t t0 = it_now_ms();
    nixl_status_t st = nixl_agent_gen_notif(e.agent, "target", "dead?", 5, NULL);
    uint64_t took = it_now_ms() - t0;
    IT_CHECK(st < 0, "gen_notif to a killed peer returned %s", nixl_status_str(st));
    IT_CHECK(took < 5000, "gen_notif to a killed peer took %llu ms", (unsigned long long)took);
    it_log("gen_notif to the killed peer: %s in %llu ms (%s)", nixl_status_str(st),
           (unsigned long long)took, nixl_last_error());
    st = nixl_agent_gen_notif(e.agent, "target", "dead?", 5, NULL);
    IT_CHECK(st < 0, "a second gen_notif to a killed peer returned %s", nixl_status_str(st));
    it_log("the second gen_notif: %s", nixl_status_str(st));
    it_peer_cleanup(&e.target);
    nixl_agent_destroy(e.agent);
    free(e.buf);
    return 0;
fail:
    return env_done(&e, -1);
}

static const size_t MIB1 = (size_t)1 << 20, MIB8 = (size_t)8 << 20;

static const it_scenario_t scenarios[] = {
    {"NotificationOnly", notification_only, NULL},
    {"EmptyPayload", empty_payload, NULL},
    {"LargePayload/1MiB", large_payload, &MIB1},
    {"LargePayload/8MiB", large_payload, &MIB8},
    {"AfterData/lockstep", after_data, &(const after_mode_t){false, true}},
    {"AfterData/lockstep-async", after_data, &(const after_mode_t){true, true}},
    {"AfterData/freerun", after_data, &(const after_mode_t){false, false}},
    {"AfterData/freerun-async", after_data, &(const after_mode_t){true, false}},
    {"GenNotifToDead", gen_notif_to_dead, NULL},
};

static const it_role_t roles[] = {{"ntarget", ntarget_role}};

int main(int argc, char **argv)
{
    return it_main(argc, argv, roles, sizeof(roles) / sizeof(roles[0]), scenarios,
                   sizeof(scenarios) / sizeof(scenarios[0]));
}
