/*
 * it_ucx.c - the UCX backend between real processes, metadata only through the side channel:
 * every target listens on a free port and tells the initiator the port through the harness
 * pipe; the initiator fetches the target's metadata (nixl_agent_fetch_remote_md) and sends
 * its own (nixl_agent_send_local_md). The engine is IT_BACKEND (default "UCX"; "SHM" and
 * "LIBFABRIC" run every scenario as well: LIBFABRIC's "tcp" over its tcp;ofi_rxm provider, its
 * "shm" over the shm provider); the program skips (77) when that plugin is missing. UCX_TLS is set
 * per scenario before any engine is created (peers inherit it), and so is IT_UCX_ERR_MODE
 * (see it_agent_be); UCX error handling stays at its default ("peer") except in "shm".
 *
 *  tcp, shm       UCX_TLS=tcp / sm,self (the shared-memory transports of UCX 1.13 cannot
 *                 detect a dead peer, so UCX refuses them in error mode "peer": "shm" runs
 *                 with ucx_error_handling_mode=none). WRITE and READ with notifications,
 *                 shapes 4 KiB x 64, 1 MiB x 4, 16 MiB x 1, 512 B x 16,384, local descriptor i to remote slot
 *                 count-1-i (no merging), each request posted twice with a new notification
 *                 and new bytes.
 *                 The target checks WRITE bytes the moment it sees the notification; READ
 *                 bytes are checked by the initiator and the target sees each READ's
 *                 notification; no other notification arrives. Ranges outside the target's
 *                 region are refused by check_remote_md.
 *  regions-10k    the target registers 10,000 separate 64-byte regions (128 bytes apart); its
 *                 whole metadata comes over the socket; check_remote_md accepts all of them
 *                 (as one list and one by one) and refuses a gap and a straddling range; one
 *                 WRITE and one READ, each touching all 10,000 regions, are verified.
 *  notif-threads  4 initiator threads x 100 gen_notif and x 100 notifying WRITEs: the target
 *                 receives exactly 400 of each kind, all distinct, all from "initiator", and
 *                 every thread's slot holds its bytes.
 *  peer-killed    targets T1 and T2 (UCX over TCP). One thread posts WRITEs to T1 in a loop,
 *                 another WRITEs to T2 and reads back and verifies, in a loop. T1 is SIGKILLed
 *                 mid-run: the T1 thread must get NIXL_ERR_REMOTE_DISCONNECT within 5 s of the
 *                 kill, while the T2 thread keeps succeeding and T2 fetches the initiator's
 *                 metadata from the initiator's listener. T1's metadata is then forgotten
 *                 (check_remote_md, the old request, gen_notif: NOT_FOUND). A new T1 with the
 *                 same name is fetched again and WRITE/READ with it are verified; T2 received
 *                 exactly one notification per WRITE of the T2 thread.
 *  create-after-kill  a target is SIGKILLed after a verified WRITE and READ; with nothing
 *                 posted, create_xfer_req for it must fail with NIXL_ERR_REMOTE_DISCONNECT
 *                 within 5 s, and that failure forgets the target (check_remote_md and the
 *                 next create_xfer_req: NOT_FOUND), as a failed post does.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "it_util.h"
#include "peer.h"

#define LOCALHOST "127.0.0.1"

/* The UCX environment of a scenario (peers inherit it). */
typedef struct ucx_env {
    const char *tls;
    const char *err_mode; /* NULL: the default */
} ucx_env_t;

static void set_env(const void *arg)
{
    const ucx_env_t *e = arg;
    setenv("UCX_TLS", e->tls, 1);
    /* LIBFABRIC runs the same scenarios over its tcp and shm providers. */
    setenv("NIXL_LIBFABRIC_PROVIDER", strcmp(e->tls, "tcp") ? "shm" : "tcp;ofi_rxm", 1);
    if (e->err_mode)
        setenv("IT_UCX_ERR_MODE", e->err_mode, 1);
    else
        unsetenv("IT_UCX_ERR_MODE");
}
#define MIB ((size_t)1 << 20)
#define DETECT_LIMIT_MS 5000u

/* A target with one region of `size` bytes, connected both ways through the side channel. */
static int start_target(it_peer_t *p, const char *name, size_t size, nixl_agent_t *agent,
                        const void *local, size_t local_len, int *port, uint64_t *base)
{
    char arg[200];
    snprintf(arg, sizeof(arg), "%s %zu 1 %zu %zu", name, size, size, size);
    if (it_sc_target_start(p, "sctarget", arg, port, base) != 0)
        return -1;
    if (it_sc_connect(agent, &p->ch, name, LOCALHOST, *port, *base, size, local, local_len) !=
        0) {
        it_peer_cleanup(p);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* tcp, shm                                                                                    */
/* ------------------------------------------------------------------------------------------ */

static const struct shape {
    size_t count, size;
} shapes[] = {{64, 4096}, {4, MIB}, {1, 16 * MIB}, {16384, 512}};

#define AREA (16 * MIB)

static int sc_transfer(const void *arg)
{
    set_env(arg);
    it_peer_t p = {.pid = 0, .ch = {-1, -1}};
    nixl_agent_t *agent = NULL;
    uint8_t *local = it_alloc(AREA);
    int port, rc = -1;
    uint64_t base;
    IT_CHECK(local, "memory");
    agent = it_agent_be("initiator", it_backend(), false, NULL);
    IT_CHECK(agent && it_register(agent, local, AREA) == 0, "initiator agent");
    IT_CHECK(start_target(&p, "target", AREA, agent, local, AREA, &port, &base) == 0, "target");

    /* Only the region the target registered is known. */
    nixl_desc_t past = {(uintptr_t)(base + AREA - 4096), 8192, 0};
    IT_CHECK_ST(nixl_agent_check_remote_md(agent, "target", NIXL_DRAM_SEG, &past, 1),
                NIXL_ERR_NOT_FOUND);

    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        char tag[32];
        snprintf(tag, sizeof(tag), "%zux%zu", shapes[s].count, shapes[s].size);
        uint64_t t0 = it_now_ms();
        IT_CHECK(it_sc_write_read(agent, &p.ch, "target", local, base, shapes[s].count,
                                  shapes[s].size, shapes[s].size, tag, 2) == 0,
                 "shape %s", tag);
        it_log("UCX_TLS=%s: %s WRITE+READ x2 in %llu ms", ((const ucx_env_t *)arg)->tls, tag,
               (unsigned long long)(it_now_ms() - t0));
    }
    IT_CHECK(it_sc_expect_no_notifs(&p.ch) == 0, "stray notifications");
    IT_CHECK(it_peer_quit(&p) == 0, "target quit");
    rc = 0;
fail:
    it_peer_cleanup(&p);
    nixl_agent_destroy(agent);
    free(local);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* regions-10k                                                                                 */
/* ------------------------------------------------------------------------------------------ */

#define MANY 10000u
#define MANY_LEN 64u
#define MANY_STRIDE 128u

static int sc_regions(const void *arg)
{
    set_env(arg);
    it_peer_t p = {.pid = 0, .ch = {-1, -1}};
    nixl_agent_t *agent = NULL;
    uint8_t *local = it_alloc((size_t)MANY * MANY_LEN);
    nixl_desc_t *r = calloc(MANY, sizeof(*r));
    int port, rc = -1;
    uint64_t base;
    char targ[128];
    IT_CHECK(local && r, "memory");
    agent = it_agent_be("initiator", it_backend(), false, NULL);
    IT_CHECK(agent && it_register(agent, local, (size_t)MANY * MANY_LEN) == 0, "agent");
    snprintf(targ, sizeof(targ), "many %zu %u %u %u", (size_t)MANY * MANY_STRIDE, MANY, MANY_LEN,
             MANY_STRIDE);
    int started = it_sc_target_start(&p, "sctarget", targ, &port, &base);
    IT_CHECK(started == 0, "target");

    uint64_t t0 = it_now_ms();
    IT_CHECK(it_fetch_md(agent, "many", LOCALHOST, port, IT_TIMEOUT_MS) == 0, "fetch");
    it_log("fetched the metadata of %u regions in %llu ms", MANY,
           (unsigned long long)(it_now_ms() - t0));
    for (unsigned i = 0; i < MANY; i++)
        r[i] = (nixl_desc_t){(uintptr_t)(base + (uint64_t)i * MANY_STRIDE), MANY_LEN, 0};
    IT_CHECK_ST(nixl_agent_check_remote_md(agent, "many", NIXL_DRAM_SEG, r, MANY), NIXL_SUCCESS);
    for (unsigned i = 0; i < MANY; i++) {
        nixl_status_t st = nixl_agent_check_remote_md(agent, "many", NIXL_DRAM_SEG, &r[i], 1);
        IT_CHECK(st == NIXL_SUCCESS, "check_remote_md of region %u: %s (%s)", i,
                 nixl_status_str(st), nixl_last_error());
    }
    nixl_desc_t gap = {(uintptr_t)(base + MANY_LEN), MANY_STRIDE - MANY_LEN, 0};
    nixl_desc_t straddle = {(uintptr_t)(base + MANY_LEN / 2), MANY_STRIDE, 0};
    IT_CHECK_ST(nixl_agent_check_remote_md(agent, "many", NIXL_DRAM_SEG, &gap, 1),
                NIXL_ERR_NOT_FOUND);
    IT_CHECK_ST(nixl_agent_check_remote_md(agent, "many", NIXL_DRAM_SEG, &straddle, 1),
                NIXL_ERR_NOT_FOUND);
    IT_CHECK(it_sc_send_md(agent, LOCALHOST, port) == 0 &&
                 it_cmd(&p.ch, "check initiator %" PRIu64 " %zu", (uint64_t)(uintptr_t)local,
                        (size_t)MANY * MANY_LEN) == 0,
             "the target did not get our metadata");

    t0 = it_now_ms();
    IT_CHECK(it_sc_write_read(agent, &p.ch, "many", local, base, MANY, MANY_LEN, MANY_STRIDE,
                              "10k", 1) == 0,
             "10,000 regions");
    it_log("WRITE+READ over %u regions in %llu ms", MANY, (unsigned long long)(it_now_ms() - t0));
    IT_CHECK(it_sc_expect_no_notifs(&p.ch) == 0, "stray notifications");
    IT_CHECK(it_peer_quit(&p) == 0, "target quit");
    rc = 0;
fail:
    it_peer_cleanup(&p);
    nixl_agent_destroy(agent);
    free(r);
    free(local);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* notif-threads                                                                               */
/* ------------------------------------------------------------------------------------------ */

#define NT_THREADS 4u
#define NT_EACH 100u
#define NT_SLOT 4096u

typedef struct nt_arg {
    nixl_agent_t *agent;
    uint8_t *local;
    uint64_t rbase;
    unsigned t;
} nt_arg_t;

static void *nt_thread(void *varg)
{
    nt_arg_t *a = varg;
    nixl_xfer_req_t *req = NULL;
    char msg[32];
    /* One descriptor: local slot t to remote slot t (count 1: no reversal). */
    nixl_status_t st = it_req_slots(a->agent, NIXL_WRITE, a->local + a->t * NT_SLOT,
                                    a->rbase + a->t * NT_SLOT, 1, NT_SLOT, NT_SLOT, "nt", "-",
                                    &req);
    IT_CHECK(st == NIXL_SUCCESS, "thread %u: request: %s (%s)", a->t, nixl_status_str(st),
             nixl_last_error());
    for (unsigned k = 0; k < NT_EACH; k++) {
        snprintf(msg, sizeof(msg), "g-%u-%u", a->t, k);
        st = nixl_agent_gen_notif(a->agent, "nt", msg, strlen(msg), NULL);
        IT_CHECK(st == NIXL_SUCCESS, "thread %u: gen_notif %s: %s (%s)", a->t, msg,
                 nixl_status_str(st), nixl_last_error());
        snprintf(msg, sizeof(msg), "x-%u-%u", a->t, k);
        st = it_post_notif(a->agent, req, msg);
        IT_CHECK(st == NIXL_SUCCESS, "thread %u: WRITE %s: %s (%s)", a->t, msg,
                 nixl_status_str(st), nixl_last_error());
    }
fail:
    if (req)
        nixl_agent_release_xfer_req(a->agent, req);
    return NULL;
}

/* Every line of a dump must be "initiator <g|x>-<thread>-<k>", each once. */
static int nt_check_dump(char *s, size_t count)
{
    static uint8_t seen[2][NT_THREADS][NT_EACH];
    memset(seen, 0, sizeof(seen));
    size_t lines = 0, kinds[2] = {0, 0};
    char *save = NULL;
    strtok_r(s, "\n", &save); /* the count */
    for (char *line = strtok_r(NULL, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char kind, tail;
        unsigned t, k;
        lines++;
        IT_CHECK(strncmp(line, "initiator ", 10) == 0, "notification '%s': wrong sender", line);
        IT_CHECK(sscanf(line + 10, "%c-%u-%u%c", &kind, &t, &k, &tail) == 3 &&
                     (kind == 'g' || kind == 'x') && t < NT_THREADS && k < NT_EACH,
                 "unexpected notification '%s'", line);
        IT_CHECK(!seen[kind == 'x'][t][k]++, "notification '%s' arrived twice", line);
        kinds[kind == 'x']++;
    }
    IT_CHECK(lines == count, "dump of %zu notifications has %zu lines", count, lines);
    IT_CHECK(kinds[0] == NT_THREADS * NT_EACH && kinds[1] == NT_THREADS * NT_EACH,
             "%zu gen_notif and %zu transfer notifications arrived, expected %u of each",
             kinds[0], kinds[1], NT_THREADS * NT_EACH);
    return 0;
fail:
    return -1;
}

static int sc_notif_threads(const void *arg)
{
    set_env(arg);
    it_peer_t p = {.pid = 0, .ch = {-1, -1}};
    nixl_agent_t *agent = NULL;
    const size_t area = (size_t)NT_THREADS * NT_SLOT;
    uint8_t *local = it_alloc(area);
    char *dump = NULL;
    int port, rc = -1;
    uint64_t base;
    pthread_t th[NT_THREADS];
    nt_arg_t args[NT_THREADS];
    unsigned started = 0;
    IT_CHECK(local, "memory");
    agent = it_agent_be("initiator", it_backend(), false, NULL);
    IT_CHECK(agent && it_register(agent, local, area) == 0, "agent");
    IT_CHECK(start_target(&p, "nt", area, agent, local, area, &port, &base) == 0, "target");
    uint64_t seed = it_seed(7, 7, 7);
    it_slots_fill(local, NT_THREADS, NT_SLOT, NT_SLOT, seed, false);

    uint64_t t0 = it_now_ms();
    for (; started < NT_THREADS; started++) {
        args[started] = (nt_arg_t){agent, local, base, started};
        IT_CHECK(pthread_create(&th[started], NULL, nt_thread, &args[started]) == 0,
                 "pthread_create");
    }
    for (unsigned t = 0; t < started; t++)
        pthread_join(th[t], NULL);
    started = 0;
    it_log("%u threads sent %u notifications each way in %llu ms", NT_THREADS, NT_EACH,
           (unsigned long long)(it_now_ms() - t0));

    size_t count = 0;
    dump = it_sc_dump(&p.ch, 2 * NT_THREADS * NT_EACH, &count);
    IT_CHECK(dump, "no dump");
    IT_CHECK(count == 2 * NT_THREADS * NT_EACH, "the target received %zu notifications, "
             "expected exactly %u", count, 2 * NT_THREADS * NT_EACH);
    IT_CHECK(nt_check_dump(dump, count) == 0, "notifications");
    IT_CHECK(it_cmd(&p.ch, "verify %u %u %u %" PRIu64, NT_THREADS, NT_SLOT, NT_SLOT, seed) == 0,
             "the threads' bytes");
    IT_CHECK(it_peer_quit(&p) == 0, "target quit");
    rc = 0;
fail:
    for (unsigned t = 0; t < started; t++)
        pthread_join(th[t], NULL);
    free(dump);
    it_peer_cleanup(&p);
    nixl_agent_destroy(agent);
    free(local);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* peer-killed                                                                                 */
/* ------------------------------------------------------------------------------------------ */

#define PK_COUNT 4u
#define PK_SIZE (256u * 1024u)
#define PK_AREA ((size_t)PK_COUNT * PK_SIZE)

typedef struct pk_loop {
    nixl_agent_t *agent;
    nixl_xfer_req_t *req;  /* T1 loop: WRITE to T1 */
    nixl_xfer_req_t *rreq; /* T2 loop: READ back from T2 */
    uint8_t *local, *back;
    atomic_bool stop;
    atomic_uint rounds;     /* successful rounds */
    atomic_uint_fast64_t err_ms; /* when the loop ended with an error (0: it did not) */
    nixl_status_t err;
    char why[1024];
} pk_loop_t;

/* Post WRITEs to T1 until one fails. */
static void *pk_t1_loop(void *varg)
{
    pk_loop_t *l = varg;
    while (!atomic_load(&l->stop)) {
        nixl_status_t st = it_post_wait(l->agent, l->req, NULL, IT_TIMEOUT_MS);
        if (st != NIXL_SUCCESS) {
            l->err = st;
            snprintf(l->why, sizeof(l->why), "%s", nixl_last_error());
            atomic_store(&l->err_ms, it_now_ms());
            break;
        }
        atomic_fetch_add(&l->rounds, 1);
    }
    return NULL;
}

/* WRITE new bytes to T2 (notification "b-<round>"), READ them back, compare; until stopped or
 * something fails. */
static void *pk_t2_loop(void *varg)
{
    pk_loop_t *l = varg;
    char why[200], notif[32];
    while (!atomic_load(&l->stop)) {
        unsigned k = atomic_load(&l->rounds);
        uint64_t seed = it_seed(2, k, 0);
        it_slots_fill(l->local, PK_COUNT, PK_SIZE, PK_SIZE, seed, true);
        snprintf(notif, sizeof(notif), "b-%u", k);
        nixl_status_t st = it_post_notif(l->agent, l->req, notif);
        if (st == NIXL_SUCCESS) {
            memset(l->back, 0, PK_AREA);
            st = it_post_wait(l->agent, l->rreq, NULL, IT_TIMEOUT_MS);
        }
        if (st != NIXL_SUCCESS) {
            l->err = st;
            snprintf(l->why, sizeof(l->why), "round %u: %s: %s", k, nixl_status_str(st),
                     nixl_last_error());
            atomic_store(&l->err_ms, it_now_ms());
            break;
        }
        if (it_slots_verify(l->back, PK_COUNT, PK_SIZE, PK_SIZE, seed, true, why, sizeof(why))) {
            l->err = NIXL_ERR_MISMATCH;
            snprintf(l->why, sizeof(l->why), "round %u read back: %s", k, why);
            atomic_store(&l->err_ms, it_now_ms());
            break;
        }
        atomic_fetch_add(&l->rounds, 1);
    }
    return NULL;
}

/* Wait until the loop has done `want` rounds, at most timeout_ms; false early if it failed. */
static bool pk_wait_rounds(pk_loop_t *l, unsigned want, int timeout_ms)
{
    uint64_t deadline = it_now_ms() + (uint64_t)timeout_ms;
    while (atomic_load(&l->rounds) < want && !atomic_load(&l->err_ms) && it_now_ms() < deadline)
        it_sleep_ms(1);
    return atomic_load(&l->rounds) >= want && !atomic_load(&l->err_ms);
}

/* Wait until the loop has ended with an error, at most timeout_ms. */
static bool pk_wait_error(pk_loop_t *l, int timeout_ms)
{
    uint64_t deadline = it_now_ms() + (uint64_t)timeout_ms;
    while (!atomic_load(&l->err_ms) && it_now_ms() < deadline)
        it_sleep_ms(1);
    return atomic_load(&l->err_ms) != 0;
}

/* With UCX, the engine of `req` runs in error handling mode "peer" (the default). */
static int check_err_mode_peer(nixl_agent_t *agent, const nixl_xfer_req_t *req)
{
    nixl_backend_t *be;
    nixl_param_list_t *params = NULL;
    if (strcmp(it_backend(), "UCX") != 0)
        return 0;
    IT_CHECK_ST(nixl_agent_query_xfer_backend(agent, req, &be), NIXL_SUCCESS);
    IT_CHECK_ST(nixl_agent_get_backend_params(agent, be, NULL, &params), NIXL_SUCCESS);
    const char *mode = "(not listed)";
    for (size_t i = 0; i < params->count; i++)
        if (strcmp(params->items[i].key, "ucx_error_handling_mode") == 0)
            mode = params->items[i].value;
    bool peer = strcmp(mode, "peer") == 0;
    IT_CHECK(peer, "ucx_error_handling_mode is '%s', expected the default 'peer'", mode);
    nixl_free(params);
    return 0;
fail:
    nixl_free(params);
    return -1;
}

static int sc_peer_killed(const void *arg)
{
    set_env(arg);
    it_peer_t t1 = {.pid = 0, .ch = {-1, -1}}, t2 = {.pid = 0, .ch = {-1, -1}};
    nixl_agent_t *agent = NULL;
    uint8_t *l1 = it_alloc(PK_AREA), *l2 = it_alloc(PK_AREA), *back = it_alloc(PK_AREA);
    pk_loop_t a = {0}, b = {0};
    pthread_t tha, thb;
    bool a_started = false, b_started = false;
    char *dump = NULL;
    int p1, p2, my_port, rc = -1;
    uint64_t base1, base2;
    nixl_status_t st;
    IT_CHECK(l1 && l2 && back, "memory");
    agent = it_agent_be("initiator", it_backend(), true, &my_port);
    IT_CHECK(agent && it_register(agent, l1, PK_AREA) == 0 &&
                 it_register(agent, l2, PK_AREA) == 0 && it_register(agent, back, PK_AREA) == 0,
             "agent");
    IT_CHECK(start_target(&t1, "T1", PK_AREA, agent, l1, PK_AREA, &p1, &base1) == 0, "T1");
    /* T2 gets our metadata later, by fetching it itself. */
    char targ[128];
    snprintf(targ, sizeof(targ), "T2 %zu 1 %zu %zu", PK_AREA, PK_AREA, PK_AREA);
    IT_CHECK(it_sc_target_start(&t2, "sctarget", targ, &p2, &base2) == 0, "T2");
    IT_CHECK(it_fetch_md(agent, "T2", LOCALHOST, p2, IT_TIMEOUT_MS) == 0, "fetch T2");

    it_slots_fill(l1, PK_COUNT, PK_SIZE, PK_SIZE, it_seed(1, 1, 1), true);
    st = it_req_slots(agent, NIXL_WRITE, l1, base1, PK_COUNT, PK_SIZE, PK_SIZE, "T1", "a",
                      &a.req);
    IT_CHECK(st == NIXL_SUCCESS, "T1 request: %s (%s)", nixl_status_str(st), nixl_last_error());
    IT_CHECK(check_err_mode_peer(agent, a.req) == 0, "UCX error handling mode");
    st = it_req_slots(agent, NIXL_WRITE, l2, base2, PK_COUNT, PK_SIZE, PK_SIZE, "T2", "b",
                      &b.req);
    IT_CHECK(st == NIXL_SUCCESS, "T2 WRITE: %s (%s)", nixl_status_str(st), nixl_last_error());
    /* READ into `back` with the WRITE's layout, without notification. */
    st = it_req_slots(agent, NIXL_READ, back, base2, PK_COUNT, PK_SIZE, PK_SIZE, "T2", NULL,
                      &b.rreq);
    IT_CHECK(st == NIXL_SUCCESS, "T2 READ: %s (%s)", nixl_status_str(st), nixl_last_error());
    a.agent = b.agent = agent;
    b.local = l2;
    b.back = back;
    IT_CHECK(pthread_create(&tha, NULL, pk_t1_loop, &a) == 0, "pthread_create");
    a_started = true;
    IT_CHECK(pthread_create(&thb, NULL, pk_t2_loop, &b) == 0, "pthread_create");
    b_started = true;

    IT_CHECK(pk_wait_rounds(&a, 20, IT_TIMEOUT_MS) && pk_wait_rounds(&b, 3, IT_TIMEOUT_MS),
             "before the kill: %u T1 rounds (%s: %s), %u T2 rounds (%s: %s)",
             atomic_load(&a.rounds), nixl_status_str(a.err), a.why, atomic_load(&b.rounds),
             nixl_status_str(b.err), b.why);

    /* Mid-run: the T1 loop has a transfer in flight or is about to post one. */
    unsigned a_before = atomic_load(&a.rounds);
    uint64_t t_kill = it_now_ms();
    it_peer_kill(&t1);
    IT_CHECK(pk_wait_error(&a, 2 * DETECT_LIMIT_MS),
             "the T1 loop saw no error %u ms after T1 was killed (%u rounds after the kill)",
             2 * DETECT_LIMIT_MS, atomic_load(&a.rounds) - a_before);
    pthread_join(tha, NULL);
    a_started = false;
    uint64_t detect = atomic_load(&a.err_ms) - t_kill;
    it_log("peer-killed: REMOTE_DISCONNECT seen %llu ms after SIGKILL (%u rounds after the kill)",
           (unsigned long long)detect, a.rounds - a_before);
    IT_CHECK(a.err == NIXL_ERR_REMOTE_DISCONNECT, "the T1 loop ended with %s (%s), expected "
             "NIXL_ERR_REMOTE_DISCONNECT", nixl_status_str(a.err), a.why);
    IT_CHECK(detect <= DETECT_LIMIT_MS, "REMOTE_DISCONNECT came %llu ms after the kill (limit %u)",
             (unsigned long long)detect, DETECT_LIMIT_MS);

    /* T2 is untouched: it fetches our metadata from our listener while the loop runs on. */
    unsigned b_at_detect = atomic_load(&b.rounds);
    IT_CHECK(it_cmd(&t2.ch, "fetch initiator %s %d", LOCALHOST, my_port) == 0, "T2 fetch");
    IT_CHECK(it_cmd(&t2.ch, "check initiator %" PRIu64 " %zu", (uint64_t)(uintptr_t)l2,
                    PK_AREA) == 0,
             "T2 check");
    IT_CHECK(pk_wait_rounds(&b, b_at_detect + 5, IT_TIMEOUT_MS),
             "T2 after the kill: %u rounds, then %s (%s)", atomic_load(&b.rounds) - b_at_detect,
             nixl_status_str(b.err), b.why);

    /* The lost peer is forgotten; the old request is refused, not used. */
    IT_CHECK_ST(nixl_agent_check_remote_md(agent, "T1", NIXL_DRAM_SEG, NULL, 0),
                NIXL_ERR_NOT_FOUND);
    st = nixl_agent_post_xfer_req(agent, a.req, NULL);
    IT_CHECK(st == NIXL_ERR_NOT_FOUND, "posting the old T1 request: %s (%s), expected "
             "NIXL_ERR_NOT_FOUND", nixl_status_str(st), nixl_last_error());
    IT_CHECK_ST(nixl_agent_release_xfer_req(agent, a.req), NIXL_SUCCESS);
    a.req = NULL;
    IT_CHECK_ST(nixl_agent_gen_notif(agent, "T1", "late", 4, NULL), NIXL_ERR_NOT_FOUND);

    /* T1 again, same name, new process and port. */
    IT_CHECK(start_target(&t1, "T1", PK_AREA, agent, l1, PK_AREA, &p1, &base1) == 0,
             "restarted T1");
    IT_CHECK(it_sc_write_read(agent, &t1.ch, "T1", l1, base1, PK_COUNT, PK_SIZE, PK_SIZE,
                              "again", 2) == 0,
             "transfers with the restarted T1");
    IT_CHECK(it_sc_expect_no_notifs(&t1.ch) == 0, "stray notifications at the new T1");

    atomic_store(&b.stop, true);
    pthread_join(thb, NULL);
    b_started = false;
    IT_CHECK(!atomic_load(&b.err_ms), "T2 loop: %s", b.why);
    unsigned rounds = atomic_load(&b.rounds);
    it_log("peer-killed: %u verified round trips with T2", rounds);

    /* Exactly one notification per WRITE of the T2 loop, none from the READs. */
    size_t count = 0;
    dump = it_sc_dump(&t2.ch, rounds, &count);
    IT_CHECK(dump, "T2 dump");
    IT_CHECK(count == rounds, "T2 received %zu notifications for %u WRITEs", count, rounds);
    char *save = NULL, *line = strtok_r(dump, "\n", &save), *bad = NULL;
    uint8_t *seen = calloc(rounds ? rounds : 1, 1);
    IT_CHECK(seen, "memory");
    for (line = strtok_r(NULL, "\n", &save); line && !bad; line = strtok_r(NULL, "\n", &save)) {
        unsigned k;
        char tail;
        if (strncmp(line, "initiator b-", 12) != 0 || sscanf(line + 12, "%u%c", &k, &tail) != 1 ||
            k >= rounds || seen[k]++)
            bad = line;
    }
    free(seen);
    IT_CHECK(!bad, "T2: unexpected or repeated notification '%s'", bad);

    IT_CHECK_ST(nixl_agent_release_xfer_req(agent, b.req), NIXL_SUCCESS);
    IT_CHECK_ST(nixl_agent_release_xfer_req(agent, b.rreq), NIXL_SUCCESS);
    b.req = b.rreq = NULL;
    IT_CHECK(it_peer_quit(&t1) == 0 && it_peer_quit(&t2) == 0, "targets quit");
    rc = 0;
fail:
    atomic_store(&a.stop, true);
    atomic_store(&b.stop, true);
    if (a_started)
        pthread_join(tha, NULL);
    if (b_started)
        pthread_join(thb, NULL);
    free(dump);
    it_peer_cleanup(&t1);
    it_peer_cleanup(&t2);
    nixl_agent_destroy(agent); /* releases the requests left */
    free(l1);
    free(l2);
    free(back);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* create-after-kill                                                                           */
/* ------------------------------------------------------------------------------------------ */

#define CK_SIZE ((size_t)1 << 20)

/* One request to T, created and released; its status. */
static nixl_status_t ck_create(nixl_agent_t *agent, uint8_t *local, uint64_t base)
{
    nixl_xfer_req_t *req = NULL;
    nixl_status_t st = it_req_slots(agent, NIXL_WRITE, local, base, 4, 4096, 4096, "T", NULL, &req);
    if (st == NIXL_SUCCESS)
        nixl_agent_release_xfer_req(agent, req);
    return st;
}

static int sc_create_after_kill(const void *arg)
{
    /* UCX notices the dead peer by itself (the reset connection) before any transfer is
     * tried; other backends find out when one is. */
    if (strcmp(it_backend(), "UCX") != 0) {
        printf("note: create-after-kill is a UCX case; %s is not checked\n", it_backend());
        return 0;
    }
    set_env(arg);
    it_peer_t t = {.pid = 0, .ch = {-1, -1}};
    nixl_agent_t *agent = NULL;
    uint8_t *local = it_alloc(CK_SIZE);
    int port, rc = -1;
    uint64_t base;
    nixl_status_t st = NIXL_SUCCESS;
    IT_CHECK(local, "memory");
    agent = it_agent_be("initiator", it_backend(), false, NULL);
    IT_CHECK(agent && it_register(agent, local, CK_SIZE) == 0, "initiator agent");
    IT_CHECK(start_target(&t, "T", CK_SIZE, agent, local, CK_SIZE, &port, &base) == 0, "T");
    IT_CHECK(it_sc_write_read(agent, &t.ch, "T", local, base, 4, 4096, 4096, "ck", 1) == 0,
             "WRITE and READ before the kill");
    it_peer_kill(&t);
    /* Nothing is posted: the engine learns of the failed connection on its own, and the next
     * request made for T is refused with REMOTE_DISCONNECT... */
    uint64_t end = it_now_ms() + DETECT_LIMIT_MS;
    while ((st = ck_create(agent, local, base)) == NIXL_SUCCESS && it_now_ms() < end)
        it_sleep_ms(20);
    IT_CHECK(st == NIXL_ERR_REMOTE_DISCONNECT,
             "create_xfer_req %u ms after the kill: %s (%s), expected "
             "NIXL_ERR_REMOTE_DISCONNECT",
             DETECT_LIMIT_MS, nixl_status_str(st), nixl_last_error());
    /* ...which, as a post or a status check would, forgets T: the caller reloads it. */
    IT_CHECK_ST(nixl_agent_check_remote_md(agent, "T", NIXL_DRAM_SEG, NULL, 0), NIXL_ERR_NOT_FOUND);
    IT_CHECK_ST(ck_create(agent, local, base), NIXL_ERR_NOT_FOUND);
    rc = 0;
fail:
    it_peer_cleanup(&t);
    nixl_agent_destroy(agent);
    free(local);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */

static const it_role_t roles[] = {{"sctarget", it_sc_target_role}};

static const ucx_env_t tcp = {"tcp", NULL}, shm = {"sm,self", "none"};

static const it_scenario_t scenarios[] = {
    {"tcp", sc_transfer, &tcp},
    {"shm", sc_transfer, &shm},
    {"regions-10k", sc_regions, &tcp},
    {"notif-threads", sc_notif_threads, &tcp},
    {"peer-killed", sc_peer_killed, &tcp},
    {"create-after-kill", sc_create_after_kill, &tcp},
};

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--it-peer") != 0) {
        int rc = it_backend_probe(it_backend());
        if (rc != 0)
            return rc;
        /* Under ASan the targets leave without LeakSanitizer's exit check (peer.c says why);
         * the initiators of every scenario keep it. */
        setenv("IT_SKIP_EXIT_LEAK_CHECK", "1", 1);
    }
    return it_main(argc, argv, roles, sizeof(roles) / sizeof(roles[0]), scenarios,
                   sizeof(scenarios) / sizeof(scenarios[0]));
}
