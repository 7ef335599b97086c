/*
 * it_etcd_tls.c - metadata through a real etcd server over TLS with client certificates
 * (docs/metadata.md, "TLS"), end to end. The program makes a CA, a server and a client
 * certificate (and a second, unrelated CA) with the openssl command in a temporary folder,
 * starts etcd serving https only with --client-cert-auth, and runs the scenarios; without etcd
 * or openssl it skips (77).
 *
 *  Exchange    a peer process publishes over https (CA, certificate and key options, and a
 *              shared secret, so the envelope path runs over TLS too); this process fetches
 *              it, READs the peer's pattern and WRITEs one that the peer checks
 *  WrongCA     the server's certificate does not chain to NIXL_ETCD_CA_FILE: the fetch ends
 *              (no hang) with NIXL_ERR_BACKEND and a reason that names the certificate
 *  NoClientCert  no client certificate: etcd refuses the connection; the fetch ends the same
 *              way, the reason saying etcd was unreachable and libcurl's words for it
 *  BadFile     a CA file that does not exist: the agent is not created, with the path named
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "it_etcd_srv.h"
#include "it_util.h"
#include "peer.h"

#define BUF 65536u
#define NO_PEER {.pid = 0, .ch = {-1, -1}}
#define SECRET "tls-test shared secret 0123456789"
/* How long a failing fetch may take: the watch timeout below plus a margin. */
#define WATCH_US 2000000u
#define FAIL_BOUND_MS 8000u

static it_etcd_t srv;
static char dir[128]; /* the certificates */

/* The options every agent of the program gets (inherited by the peer process). */
static void set_env(const char *ca, bool client_cert)
{
    char path[192];
    setenv("NIXL_ETCD_ENDPOINTS", srv.url, 1);
    setenv("NIXL_ETCD_LEASE_TTL_S", "0", 1);
    setenv("NIXL_AUTH_SECRET", SECRET, 1);
    snprintf(path, sizeof(path), "%s/%s", dir, ca);
    setenv("NIXL_ETCD_CA_FILE", path, 1);
    if (client_cert) {
        snprintf(path, sizeof(path), "%s/client.pem", dir);
        setenv("NIXL_ETCD_CERT_FILE", path, 1);
        snprintf(path, sizeof(path), "%s/client.key", dir);
        setenv("NIXL_ETCD_KEY_FILE", path, 1);
    } else {
        unsetenv("NIXL_ETCD_CERT_FILE");
        unsetenv("NIXL_ETCD_KEY_FILE");
    }
}

/* ---- the peer: "<name> <seed>" ----
 * Registers a buffer holding the pattern of <seed>, publishes its metadata to etcd, answers
 * "ready <addr>", then serves "verify <seed>" (-> ok | error) and "quit". */
static int peer_role(it_chan_t *ch, const char *arg)
{
    char name[64];
    uint64_t seed;
    if (sscanf(arg, "%63s %" SCNu64, name, &seed) != 2)
        return 2;
    nixl_agent_t *agent = it_agent(name, 0);
    uint8_t *buf = it_alloc(BUF);
    int rc = 1;
    if (!agent || !buf)
        goto out;
    it_fill(buf, BUF, seed);
    if (it_register(agent, buf, BUF))
        goto out;
    IT_CHECK_ST(nixl_agent_send_local_md(agent, NULL), NIXL_SUCCESS);
    it_sendf(ch, "ready %" PRIuPTR, (uintptr_t)buf);
    for (;;) {
        char *cmd = it_recv_str(ch, 120000);
        uint64_t s;
        if (!cmd)
            goto out;
        if (!strcmp(cmd, "quit")) {
            free(cmd);
            rc = 0;
            goto out;
        }
        if (sscanf(cmd, "verify %" SCNu64, &s) == 1) {
            size_t bad = it_verify(buf, BUF, s);
            if (bad)
                it_sendf(ch, "error: byte %zu differs", bad - 1);
            else
                it_sendf(ch, "ok");
        } else {
            it_sendf(ch, "error: unknown command %s", cmd);
        }
        free(cmd);
    }
fail:
out:
    nixl_agent_destroy(agent);
    free(buf);
    return rc;
}

/* Fetch `name` and wait for the end of the fetch: its status, and in *ms how long it took. */
static nixl_status_t fetch(nixl_agent_t *a, const char *name, uint64_t *ms)
{
    uint64_t start = it_now_ms();
    nixl_status_t st = nixl_agent_fetch_remote_md(a, name, NULL);
    while (st == NIXL_SUCCESS || st == NIXL_IN_PROG) {
        st = nixl_agent_get_fetch_status(a, name);
        if (st != NIXL_IN_PROG || it_now_ms() - start > 30000)
            break;
        it_sleep_ms(20);
    }
    *ms = it_now_ms() - start;
    return st;
}

/* One transfer of the whole buffer between local and the peer's remote address. */
static int xfer(nixl_agent_t *a, nixl_xfer_op_t op, uint8_t *local, uintptr_t remote,
                const char *peer)
{
    nixl_desc_t l = {.addr = (uintptr_t)local, .len = BUF}, r = {.addr = remote, .len = BUF};
    nixl_xfer_req_t *req = NULL;
    IT_CHECK_ST(nixl_agent_create_xfer_req(a, op, NIXL_DRAM_SEG, &l, 1, NIXL_DRAM_SEG, &r, 1,
                                           peer, NULL, &req),
                NIXL_SUCCESS);
    IT_CHECK_ST(it_post_wait(a, req, NULL, IT_TIMEOUT_MS), NIXL_SUCCESS);
    nixl_agent_release_xfer_req(a, req);
    return 0;
fail:
    if (req)
        nixl_agent_release_xfer_req(a, req);
    return -1;
}

static int exchange(const void *arg)
{
    (void)arg;
    it_peer_t p = NO_PEER;
    nixl_agent_t *b = NULL;
    uint8_t *local = it_alloc(BUF);
    uint64_t ms = 0;
    set_env("ca.pem", true);
    IT_CHECK(local, "alloc");
    IT_CHECK(it_peer_spawn(&p, "peer", "TA 11") == 0, "spawn");
    char *ready = it_recv_str(&p.ch, IT_TIMEOUT_MS);
    IT_CHECK(ready && !strncmp(ready, "ready ", 6), "the peer did not start: %s",
             ready ? ready : "(nothing)");
    uintptr_t remote = (uintptr_t)strtoull(ready + 6, NULL, 10);
    free(ready);
    IT_CHECK(it_etcd_has_key(&srv, "/nixl/agents//TA/metadata") >= 0,
             "etcd did not answer over https (IT_ETCD_DEBUG=1 says why)");
    b = it_etcd_agent("TB", WATCH_US);
    IT_CHECK(b && it_register(b, local, BUF) == 0, "agent");
    nixl_status_t st = fetch(b, "TA", &ms);
    IT_CHECK(st == NIXL_SUCCESS, "fetch over https: %s (%s)", nixl_status_str(st),
             nixl_last_error());
    it_log("fetched TA over https in %" PRIu64 " ms", ms);
    IT_CHECK(xfer(b, NIXL_READ, local, remote, "TA") == 0, "READ");
    size_t bad = it_verify(local, BUF, 11);
    IT_CHECK(bad == 0, "READ: byte %zu differs", bad - 1);
    it_fill(local, BUF, 12);
    IT_CHECK(xfer(b, NIXL_WRITE, local, remote, "TA") == 0, "WRITE");
    IT_CHECK(it_cmd(&p.ch, "verify 12") == 0, "the peer's check of the WRITE");
    it_log("READ and WRITE of %u bytes verified", BUF);
    IT_CHECK(it_peer_quit(&p) == 0, "peer quit");
    it_peer_cleanup(&p);
    nixl_agent_destroy(b);
    free(local);
    return 0;
fail:
    it_peer_cleanup(&p);
    nixl_agent_destroy(b);
    free(local);
    return -1;
}

/* A fetch that must fail over TLS: bounded, NIXL_ERR_BACKEND, a reason holding `want`. */
static int refused(const char *ca, bool client_cert, const char *want)
{
    set_env(ca, client_cert);
    nixl_agent_t *b = it_etcd_agent("TC", WATCH_US);
    uint64_t ms = 0;
    IT_CHECK(b, "agent");
    nixl_status_t st = fetch(b, "TA", &ms);
    IT_CHECK(st == NIXL_ERR_BACKEND, "fetch: %s, wanted NIXL_ERR_BACKEND", nixl_status_str(st));
    IT_CHECK(ms <= FAIL_BOUND_MS, "the failing fetch took %" PRIu64 " ms", ms);
    IT_CHECK(strstr(nixl_last_error(), want), "reason without '%s': %s", want,
             nixl_last_error());
    it_log("refused in %" PRIu64 " ms: %s", ms, nixl_last_error());
    nixl_agent_destroy(b);
    return 0;
fail:
    nixl_agent_destroy(b);
    return -1;
}

static int wrong_ca(const void *arg)
{
    (void)arg;
    return refused("other-ca.pem", true, "certificate");
}

static int no_client_cert(const void *arg)
{
    (void)arg;
    /* the server refuses us after the handshake (TLS 1.3), so libcurl's words vary: "alert
     * bad certificate", or a connection already closed */
    return refused("ca.pem", false, "etcd unreachable");
}

static int bad_file(const void *arg)
{
    (void)arg;
    set_env("missing-ca.pem", true);
    nixl_agent_config_t cfg;
    nixl_agent_config_init(&cfg);
    nixl_agent_t *a = NULL;
    nixl_status_t st = nixl_agent_create("TD", &cfg, &a);
    IT_CHECK(st != NIXL_SUCCESS, "agent created with a missing CA file");
    IT_CHECK(strstr(nixl_last_error(), "missing-ca.pem"), "reason: %s", nixl_last_error());
    it_log("refused: %s", nixl_last_error());
    return 0;
fail:
    nixl_agent_destroy(a);
    return -1;
}

/* The certificates, made with the openssl command. 0, or -1 (reported). */
static int make_certs(void)
{
    static const char *const steps[] = {
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
        "-subj /CN=nixl-test-ca -keyout ca.key -out ca.pem",
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
        "-subj /CN=nixl-other-ca -keyout other-ca.key -out other-ca.pem",
        /* clientAuth too: etcd's JSON gateway reaches its own gRPC server with the server
         * certificate, which --client-cert-auth then checks as a client's */
        "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n"
        "extendedKeyUsage=serverAuth,clientAuth\\n' "
        "> server.ext && printf 'extendedKeyUsage=clientAuth\\n' > client.ext",
        "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
        "-subj /CN=127.0.0.1 -keyout server.key -out server.csr",
        "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
        "-extfile server.ext -out server.pem",
        "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
        "-subj /CN=nixl-client -keyout client.key -out client.csr",
        "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
        "-extfile client.ext -out client.pem",
        "chmod 600 *.key",
    };
    for (size_t i = 0; i < sizeof(steps) / sizeof(*steps); i++) {
        char cmd[640];
        snprintf(cmd, sizeof(cmd), "cd '%s' && %s >>openssl.log 2>&1", dir, steps[i]);
        if (system(cmd) != 0)
            return it_fail(__FILE__, __LINE__, "%s failed (see %s/openssl.log)", steps[i], dir);
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const it_role_t roles[] = {{"peer", peer_role}};
    static const it_scenario_t scenarios[] = {
        {"Exchange", exchange, NULL},
        {"WrongCA", wrong_ca, NULL},
        {"NoClientCert", no_client_cert, NULL},
        {"BadFile", bad_file, NULL},
    };
    bool peer = argc > 1 && !strcmp(argv[1], "--it-peer");
    if (!peer) {
        if (!it_etcd_available() || system("command -v openssl >/dev/null 2>&1") != 0) {
            fprintf(stderr, "etcd or openssl is not installed: skipping\n");
            return 77;
        }
        snprintf(dir, sizeof(dir), "/tmp/nixl-it-tls-XXXXXX");
        if (!mkdtemp(dir) || make_certs())
            return 1;
        snprintf(srv.tls_dir, sizeof(srv.tls_dir), "%s", dir);
        if (it_etcd_start(&srv))
            return 1;
    }
    int rc = it_main(argc, argv, roles, 1, scenarios, sizeof(scenarios) / sizeof(*scenarios));
    if (!peer) {
        it_etcd_destroy(&srv);
        char cmd[192];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", dir);
    }
    return rc;
}
