/*
 * sec_auth.c - authenticated metadata (docs/security.md), with real agents on loopback:
 *
 *   sec_auth exchange      two agents with the secret exchange metadata and transfer
 *   sec_auth no-secret     an agent without the secret is refused, both ways, with the reason
 *   sec_auth forged        unauthenticated INVL/LOAD, an INVL of another agent, a renamed LOAD,
 *                          a LOAD under another secret: all refused and counted
 *   sec_auth replay        a LOAD captured on the wire and sent again is refused
 *   sec_auth secret-file   NIXL_AUTH_SECRET_FILE readable by others, a short secret: refused
 *   sec_auth etcd          through etcd: exchange, a tampered blob, a blob signed for
 *                          another name, an agent without the secret, an authentic blob
 *                          copied under another label or agent, an older authentic blob put
 *                          back (a rollback)
 *
 * The "insider" cases seal envelopes with the library's own auth.h, as a process holding the
 * secret (or another one) could.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "sec_util.h"

#define SECRET "correct horse battery staple 42"
#define WAIT_MS 3000u

static nixl_agent_t *agent(const char *name, const char *secret, int *port)
{
    nixl_agent_config_t cfg;
    nixl_agent_config_init(&cfg);
    cfg.use_listen_thread = port != NULL;
    cfg.listen_port = 0;
    cfg.listen_addr = "127.0.0.1";
    cfg.auth_secret = secret;
    nixl_agent_t *a = NULL;
    SEC_ST(nixl_agent_create(name, &cfg, &a));
    if (port)
        SEC_ST(nixl_agent_get_listen_port(a, port));
    sec_shm(a, NULL);
    return a;
}

static nixl_opt_args_t to(int port)
{
    nixl_opt_args_t o;
    nixl_opt_args_init(&o);
    o.ip_addr = "127.0.0.1";
    o.port = port;
    return o;
}

/* The end of a fetch (not IN_PROG) within WAIT_MS. */
static nixl_status_t fetch_end(nixl_agent_t *a, const char *name)
{
    uint64_t end = sec_now_ms() + WAIT_MS * 4;
    nixl_status_t st;
    while ((st = nixl_agent_get_fetch_status(a, name)) == NIXL_IN_PROG && sec_now_ms() < end)
        sec_sleep_ms(5);
    return st;
}

static uint64_t refused(nixl_agent_t *a)
{
    uint64_t n = 0;
    SEC_ST(nixl_agent_get_auth_refused(a, &n));
    return n;
}

/* Wait until the refusal counter of `a` passes `before`. */
static bool refusal_seen(nixl_agent_t *a, uint64_t before)
{
    uint64_t end = sec_now_ms() + WAIT_MS;
    while (refused(a) <= before && sec_now_ms() < end)
        sec_sleep_ms(5);
    return refused(a) > before;
}

static bool loaded(nixl_agent_t *a, const char *name)
{
    return nixl_agent_check_remote_md(a, name, NIXL_DRAM_SEG, NULL, 0) == NIXL_SUCCESS;
}

/* One WRITE of 64 KiB from `src` to `dst`'s registered buffer, checked byte for byte. */
static void write_and_check(nixl_agent_t *src, nixl_agent_t *dst, const char *dst_name,
                            const char *src_name, int dst_port)
{
    enum { LEN = 64 * 1024 };
    uint8_t *a = malloc(LEN), *b = calloc(1, LEN);
    SEC_CHECK(a && b, "no memory");
    for (size_t i = 0; i < LEN; i++)
        a[i] = (uint8_t)(i * 7 + 3);
    nixl_reg_desc_t ra = {.addr = (uintptr_t)a, .len = LEN}, rb = {.addr = (uintptr_t)b, .len = LEN};
    SEC_ST(nixl_agent_register_mem(src, NIXL_DRAM_SEG, &ra, 1, NULL));
    SEC_ST(nixl_agent_register_mem(dst, NIXL_DRAM_SEG, &rb, 1, NULL));
    nixl_opt_args_t o = to(dst_port);
    SEC_ST(nixl_agent_send_local_md(src, &o)); /* the target learns the initiator */
    SEC_ST(nixl_agent_fetch_remote_md(src, dst_name, &o));
    SEC_CHECK(fetch_end(src, dst_name) == NIXL_SUCCESS, "fetch of '%s' failed: %s", dst_name,
              nixl_last_error());
    SEC_CHECK(sec_wait_loaded(dst, src_name, WAIT_MS), "'%s' not loaded by '%s'", src_name,
              dst_name);
    nixl_desc_t la = {.addr = (uintptr_t)a, .len = LEN}, lb = {.addr = (uintptr_t)b, .len = LEN};
    nixl_xfer_req_t *req = NULL;
    SEC_ST(nixl_agent_create_xfer_req(src, NIXL_WRITE, NIXL_DRAM_SEG, &la, 1, NIXL_DRAM_SEG,
                                      &lb, 1, dst_name, NULL, &req));
    nixl_status_t st = nixl_agent_post_xfer_req(src, req, NULL);
    uint64_t end = sec_now_ms() + WAIT_MS;
    while (st == NIXL_IN_PROG && sec_now_ms() < end) {
        sec_sleep_ms(1);
        st = nixl_agent_get_xfer_status(src, req);
    }
    SEC_CHECK(st == NIXL_SUCCESS, "transfer: %s (%s)", nixl_status_str(st), nixl_last_error());
    SEC_CHECK(memcmp(a, b, LEN) == 0, "transferred bytes differ");
    SEC_ST(nixl_agent_release_xfer_req(src, req));
    printf("64 KiB written from '%s' to '%s' and checked\n", src_name, dst_name);
    nixl_agent_destroy(src);
    nixl_agent_destroy(dst);
    free(a);
    free(b);
}

static int exchange(void)
{
    int port;
    nixl_agent_t *t = agent("target", SECRET, &port);
    nixl_agent_t *i = agent("initiator", SECRET, NULL);
    write_and_check(i, t, "target", "initiator", port);
    return 0;
}

static int no_secret(void)
{
    int port, open_port;
    nixl_agent_t *t = agent("target", SECRET, &port);
    nixl_agent_t *plain = agent("plain", NULL, &open_port);
    nixl_opt_args_t o = to(port);
    /* a plain agent fetching from one with the secret: refused, and told why */
    SEC_ST(nixl_agent_fetch_remote_md(plain, "target", &o));
    nixl_status_t st = fetch_end(plain, "target");
    const char *why = nixl_last_error();
    SEC_CHECK(st == NIXL_ERR_NOT_ALLOWED, "plain fetch: %s", nixl_status_str(st));
    SEC_CHECK(nixl_agent_check_remote_md(plain, "target", NIXL_DRAM_SEG, NULL, 0) ==
                  NIXL_ERR_NOT_ALLOWED, "check_remote_md does not carry the refusal");
    why = nixl_last_error();
    SEC_CHECK(strstr(why, "NIXL_AUTH_SECRET"), "the reason does not name the secret: %s", why);
    printf("plain agent refused: %s\n", why);
    /* its LOAD is refused and counted */
    uint64_t r0 = refused(t);
    SEC_ST(nixl_agent_send_local_md(plain, &o));
    SEC_CHECK(refusal_seen(t, r0), "the plain LOAD was not counted");
    SEC_CHECK(!loaded(t, "plain"), "the plain LOAD was loaded");
    /* and the other way: an agent with the secret fetching from a plain one */
    nixl_opt_args_t p = to(open_port);
    SEC_ST(nixl_agent_fetch_remote_md(t, "plain", &p));
    st = fetch_end(t, "plain");
    SEC_CHECK(st == NIXL_ERR_NOT_ALLOWED, "fetch from plain: %s", nixl_status_str(st));
    nixl_agent_check_remote_md(t, "plain", NIXL_DRAM_SEG, NULL, 0);
    printf("agent with the secret, from a plain one: %s\n", nixl_last_error());
    SEC_CHECK(strstr(nixl_last_error(), "no auth secret"), "unclear reason");
    nixl_agent_destroy(plain);
    nixl_agent_destroy(t);
    return 0;
}

/* Send one raw frame body (already "NIXLCOMM:..." or an envelope) to port. */
static void send_body(int port, const uint8_t *body, size_t len)
{
    int fd = sec_connect(port);
    SEC_CHECK(fd >= 0, "connect: %s", strerror(errno));
    uint64_t n = len;
    SEC_CHECK(write(fd, &n, 8) == 8 && write(fd, body, len) == (ssize_t)len, "write failed");
    sec_sleep_ms(100);
    close(fd);
}

static void send_sealed(int port, nixl_auth_t *key, const char *verb, const char *sender,
                        const void *payload, size_t len)
{
    size_t env_len;
    uint8_t *env = nixl_auth_seal(key, NIXL_AUTH_SIDECHANNEL, verb, sender, NULL, payload, len,
                                  &env_len);
    SEC_CHECK(env, "seal failed");
    send_body(port, env, env_len);
    free(env);
}

static int forged(void)
{
    int port;
    nixl_agent_t *t = agent("target", SECRET, &port);
    nixl_agent_t *alice = agent("alice", SECRET, NULL);
    nixl_agent_t *mallory = agent("mallory", NULL, NULL);
    nixl_opt_args_t o = to(port);
    SEC_ST(nixl_agent_send_local_md(alice, &o));
    SEC_CHECK(sec_wait_loaded(t, "alice", WAIT_MS), "alice not loaded");
    void *mblob;
    size_t mlen;
    SEC_ST(nixl_agent_get_local_md(mallory, &mblob, &mlen));

    /* 1. a stranger's plain INVL of alice, then a plain LOAD: refused */
    uint64_t r = refused(t);
    SEC_CHECK(sec_connect(port) >= 0, "connect");
    int fd = sec_connect(port);
    SEC_CHECK(sec_send_frame(fd, "INVL", "alice", 5), "send");
    SEC_CHECK(refusal_seen(t, r), "plain INVL not counted");
    SEC_CHECK(loaded(t, "alice"), "a plain INVL made the target forget alice");
    close(fd);

    /* 2. an insider with the secret, signing as mallory, invalidates alice: refused */
    nixl_auth_t *key = NULL, *other = NULL;
    SEC_ST(nixl_auth_create(SECRET, strlen(SECRET), 300, &key));
    SEC_ST(nixl_auth_create("another secret, 32 bytes long..", 32, 300, &other));
    r = refused(t);
    send_sealed(port, key, "INVL", "mallory", "alice", 5);
    SEC_CHECK(refusal_seen(t, r), "INVL of another agent not counted");
    SEC_CHECK(loaded(t, "alice"), "mallory's INVL made the target forget alice");

    /* 3. mallory's metadata under alice's proof name... and alice's name on mallory's: both
     * are renames (the metadata names another agent than the proof) */
    r = refused(t);
    send_sealed(port, key, "LOAD", "alice", mblob, mlen);
    SEC_CHECK(refusal_seen(t, r), "renamed LOAD not counted");
    SEC_CHECK(!loaded(t, "mallory"), "a renamed LOAD was loaded");

    /* 4. a LOAD sealed with another secret */
    r = refused(t);
    send_sealed(port, other, "LOAD", "mallory", mblob, mlen);
    SEC_CHECK(refusal_seen(t, r), "LOAD under another secret not counted");
    SEC_CHECK(!loaded(t, "mallory"), "a LOAD under another secret was loaded");

    /* 5. alice's own authenticated INVL works */
    SEC_ST(nixl_agent_invalidate_local_md(alice, &o));
    uint64_t end = sec_now_ms() + WAIT_MS;
    while (loaded(t, "alice") && sec_now_ms() < end)
        sec_sleep_ms(5);
    SEC_CHECK(!loaded(t, "alice"), "alice's own INVL was not applied");
    printf("refused: %llu messages\n", (unsigned long long)refused(t));
    nixl_auth_destroy(key);
    nixl_auth_destroy(other);
    free(mblob);
    nixl_agent_destroy(mallory);
    nixl_agent_destroy(alice);
    nixl_agent_destroy(t);
    return 0;
}

/* A listener of the test's own that keeps the first frame it receives (header included). */
static uint8_t *capture(nixl_agent_t *sender, size_t *len)
{
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    SEC_CHECK(ls >= 0 && bind(ls, (struct sockaddr *)&sa, sl) == 0 && listen(ls, 4) == 0 &&
                  getsockname(ls, (struct sockaddr *)&sa, &sl) == 0, "listen: %s",
              strerror(errno));
    nixl_opt_args_t o = to(ntohs(sa.sin_port));
    SEC_ST(nixl_agent_send_local_md(sender, &o));
    struct pollfd p = {.fd = ls, .events = POLLIN};
    SEC_CHECK(poll(&p, 1, (int)WAIT_MS) == 1, "nothing connected");
    int fd = accept(ls, NULL, NULL);
    uint64_t n = 0;
    SEC_CHECK(fd >= 0 && recv(fd, &n, 8, MSG_WAITALL) == 8 && n < (1u << 24), "no frame");
    uint8_t *body = malloc(n);
    SEC_CHECK(body && recv(fd, body, n, MSG_WAITALL) == (ssize_t)n, "short frame");
    close(fd);
    close(ls);
    *len = n;
    return body;
}

static int replay(void)
{
    int port;
    nixl_agent_t *t = agent("target", SECRET, &port);
    nixl_agent_t *alice = agent("alice", SECRET, NULL);
    size_t len;
    uint8_t *body = capture(alice, &len);
    SEC_CHECK(nixl_auth_is_envelope(body, len), "the captured LOAD is not authenticated");
    send_body(port, body, len);
    SEC_CHECK(sec_wait_loaded(t, "alice", WAIT_MS), "the captured LOAD, sent once, not loaded");
    SEC_ST(nixl_agent_invalidate_remote_md(t, "alice"));
    uint64_t r = refused(t);
    send_body(port, body, len);
    SEC_CHECK(refusal_seen(t, r), "the replay was not counted");
    SEC_CHECK(!loaded(t, "alice"), "the replayed LOAD was loaded");
    /* a byte changed anywhere in the captured message: refused too */
    body[len / 2] ^= 1;
    r = refused(t);
    send_body(port, body, len);
    SEC_CHECK(refusal_seen(t, r), "the altered message was not counted");
    SEC_CHECK(!loaded(t, "alice"), "the altered LOAD was loaded");
    printf("replayed and altered LOADs refused\n");
    free(body);
    nixl_agent_destroy(alice);
    nixl_agent_destroy(t);
    return 0;
}

static int secret_file(void)
{
    char path[] = "/tmp/nixl-secret-XXXXXX";
    int fd = mkstemp(path);
    SEC_CHECK(fd >= 0 && write(fd, SECRET "\n", strlen(SECRET) + 1) > 0, "mkstemp");
    close(fd);
    chmod(path, 0644);
    nixl_agent_config_t cfg;
    nixl_agent_config_init(&cfg);
    cfg.auth_secret_file = path;
    nixl_agent_t *a = NULL;
    nixl_status_t st = nixl_agent_create("a", &cfg, &a);
    SEC_CHECK(st == NIXL_ERR_INVALID_PARAM && strstr(nixl_last_error(), "chmod 600"),
              "a 0644 secret file: %s (%s)", nixl_status_str(st), nixl_last_error());
    printf("0644: %s\n", nixl_last_error());
    chmod(path, 0600);
    setenv("NIXL_AUTH_SECRET_FILE", path, 1); /* the environment way */
    SEC_ST(nixl_agent_create("a", NULL, &a));
    nixl_agent_destroy(a);
    unsetenv("NIXL_AUTH_SECRET_FILE");
    cfg.auth_secret_file = NULL;
    cfg.auth_secret = "short";
    st = nixl_agent_create("a", &cfg, &a);
    SEC_CHECK(st == NIXL_ERR_INVALID_PARAM, "a short secret: %s", nixl_status_str(st));
    printf("short: %s\n", nixl_last_error());
    unlink(path);
    return 0;
}

/* ---- etcd ---- */
#ifdef SEC_WITH_ETCD
#include <stdarg.h>

#include "it_etcd_srv.h"

/* What it_etcd_srv.c needs of the integration tests' peer.c, on sec_util. */
uint64_t it_now_ms(void);
void it_sleep_ms(unsigned ms);
int it_fail(const char *file, int line, const char *fmt, ...);
void it_log(const char *fmt, ...);
uint64_t it_now_ms(void)
{
    return sec_now_ms();
}
void it_sleep_ms(unsigned ms)
{
    sec_sleep_ms(ms);
}
int it_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL %s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return -1;
}
void it_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

/* Put `value` under `key` through etcd's JSON gateway (curl and base64 of coreutils). */
static void etcd_put(const it_etcd_t *s, const char *key, const void *value, size_t len)
{
    char path[] = "/tmp/nixl-etcd-value-XXXXXX";
    int fd = mkstemp(path);
    SEC_CHECK(fd >= 0 && write(fd, value, len) == (ssize_t)len, "temp file");
    close(fd);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "curl -sf -o /dev/null %s/v3/kv/put -d \"{\\\"key\\\":\\\"$(printf "
             "%%s '%s' | base64 -w0)\\\",\\\"value\\\":\\\"$(base64 -w0 %s)\\\"}\"", s->url, key,
             path);
    SEC_CHECK(system(cmd) == 0, "etcd put failed: %s", cmd);
    unlink(path);
}

static nixl_status_t etcd_fetch(nixl_agent_t *a, const char *name)
{
    SEC_ST(nixl_agent_fetch_remote_md(a, name, NULL));
    return fetch_end(a, name);
}

static int etcd(void)
{
    if (!it_etcd_available()) {
        printf("etcd is not installed: skipped\n");
        return 77;
    }
    it_etcd_t srv;
    memset(&srv, 0, sizeof(srv));
    if (it_etcd_start(&srv))
        return 1;
    setenv("NIXL_ETCD_ENDPOINTS", srv.url, 1);
    setenv("NIXL_ETCD_LEASE_TTL_S", "0", 1);
    nixl_agent_t *alice = agent("alice", SECRET, NULL);
    nixl_agent_t *bob = agent("bob", SECRET, NULL);
    SEC_ST(nixl_agent_send_local_md(alice, NULL));
    nixl_status_t st = etcd_fetch(bob, "alice");
    SEC_CHECK(st == NIXL_SUCCESS, "fetch through etcd: %s (%s)", nixl_status_str(st),
              nixl_last_error());
    printf("bob fetched alice through etcd\n");

    nixl_agent_t *plain = agent("plain", NULL, NULL);
    st = etcd_fetch(plain, "alice");
    SEC_CHECK(st == NIXL_ERR_NOT_ALLOWED, "plain fetch: %s", nixl_status_str(st));
    nixl_agent_check_remote_md(plain, "alice", NIXL_DRAM_SEG, NULL, 0);
    printf("plain agent: %s\n", nixl_last_error());

    /* an altered blob, and alice's metadata signed by mallory (who holds the secret) */
    void *blob;
    size_t len, env_len;
    SEC_ST(nixl_agent_get_local_md(alice, &blob, &len));
    nixl_auth_t *key = NULL;
    SEC_ST(nixl_auth_create(SECRET, strlen(SECRET), 300, &key));
    const char *alice_key = "/nixl/agents//alice/metadata";
    uint8_t *env =
        nixl_auth_seal(key, NIXL_AUTH_ETCD, "LOAD", "alice", alice_key, blob, len, &env_len);
    env[env_len - 40] ^= 0x20;
    etcd_put(&srv, "/nixl/agents//alice/metadata", env, env_len);
    free(env);
    nixl_agent_t *carol = agent("carol", SECRET, NULL);
    uint64_t r = refused(carol);
    st = etcd_fetch(carol, "alice");
    SEC_CHECK(st == NIXL_ERR_NOT_ALLOWED, "tampered blob: %s", nixl_status_str(st));
    SEC_CHECK(refused(carol) > r, "tampered blob not counted");
    nixl_agent_check_remote_md(carol, "alice", NIXL_DRAM_SEG, NULL, 0);
    printf("tampered: %s\n", nixl_last_error());

    env = nixl_auth_seal(key, NIXL_AUTH_ETCD, "LOAD", "mallory", alice_key, blob, len, &env_len);
    etcd_put(&srv, "/nixl/agents//alice/metadata", env, env_len);
    free(env);
    nixl_agent_t *dave = agent("dave", SECRET, NULL);
    st = etcd_fetch(dave, "alice");
    SEC_CHECK(st == NIXL_ERR_NOT_ALLOWED, "blob signed for another name: %s",
              nixl_status_str(st));
    SEC_CHECK(!loaded(dave, "alice"), "alice loaded from mallory's blob");
    nixl_agent_check_remote_md(dave, "alice", NIXL_DRAM_SEG, NULL, 0);
    printf("renamed: %s\n", nixl_last_error());

    /* alice's authentic blob, copied under another label of hers and under another agent */
    env = nixl_auth_seal(key, NIXL_AUTH_ETCD, "LOAD", "alice", alice_key, blob, len, &env_len);
    etcd_put(&srv, "/nixl/agents//alice/other", env, env_len);
    etcd_put(&srv, "/nixl/agents//alias/metadata", env, env_len);
    free(env);
    nixl_agent_t *erin = agent("erin", SECRET, NULL);
    nixl_opt_args_t other;
    nixl_opt_args_init(&other);
    other.metadata_label = "other";
    SEC_ST(nixl_agent_fetch_remote_md(erin, "alice", &other));
    st = fetch_end(erin, "alice");
    SEC_CHECK(st == NIXL_ERR_NOT_ALLOWED, "blob copied under another label: %s",
              nixl_status_str(st));
    SEC_CHECK(!loaded(erin, "alice"), "alice loaded from a blob under another label");
    printf("copied to another label: %s\n", nixl_last_error());
    st = etcd_fetch(erin, "alias");
    SEC_CHECK(st == NIXL_ERR_NOT_ALLOWED, "blob copied under another agent: %s",
              nixl_status_str(st));
    printf("copied to another agent: %s\n", nixl_last_error());

    /* a rollback: frank loads alice's newer blob; the older one put back is refused, and the
     * fetch status says why */
    uint8_t *old_env =
        nixl_auth_seal(key, NIXL_AUTH_ETCD, "LOAD", "alice", alice_key, blob, len, &env_len);
    sec_sleep_ms(20);
    size_t new_len;
    uint8_t *new_env =
        nixl_auth_seal(key, NIXL_AUTH_ETCD, "LOAD", "alice", alice_key, blob, len, &new_len);
    etcd_put(&srv, alice_key, new_env, new_len);
    nixl_agent_t *frank = agent("frank", SECRET, NULL);
    st = etcd_fetch(frank, "alice");
    SEC_CHECK(st == NIXL_SUCCESS, "fetch of the newer blob: %s (%s)", nixl_status_str(st),
              nixl_last_error());
    etcd_put(&srv, alice_key, old_env, env_len); /* frank's watch sees it */
    uint64_t end = sec_now_ms() + WAIT_MS;
    while ((st = nixl_agent_get_fetch_status(frank, "alice")) == NIXL_SUCCESS &&
           sec_now_ms() < end)
        sec_sleep_ms(5);
    SEC_CHECK(st == NIXL_ERR_NOT_ALLOWED, "rollback through the watch: %s",
              nixl_status_str(st));
    SEC_CHECK(strstr(nixl_last_error(), "rollback") != NULL, "no reason: %s",
              nixl_last_error());
    printf("rolled back (watch): %s\n", nixl_last_error());
    /* and fetched again: still refused (the newest stamp is remembered past the unload) */
    st = etcd_fetch(frank, "alice");
    SEC_CHECK(st == NIXL_ERR_NOT_ALLOWED, "rollback on a new fetch: %s", nixl_status_str(st));
    printf("rolled back (fetch): %s\n", nixl_last_error());
    /* the newer blob again is accepted */
    etcd_put(&srv, alice_key, new_env, new_len);
    st = etcd_fetch(frank, "alice");
    SEC_CHECK(st == NIXL_SUCCESS, "the newer blob again: %s (%s)", nixl_status_str(st),
              nixl_last_error());
    free(old_env);
    free(new_env);
    nixl_auth_destroy(key);
    free(blob);
    nixl_agent_destroy(frank);
    nixl_agent_destroy(erin);
    nixl_agent_destroy(dave);
    nixl_agent_destroy(carol);
    nixl_agent_destroy(plain);
    nixl_agent_destroy(bob);
    nixl_agent_destroy(alice);
    it_etcd_destroy(&srv);
    return 0;
}

#else
static int etcd(void)
{
    printf("skip: built without the etcd client (libcurl, json-c)\n");
    return 77;
}
#endif

int main(int argc, char **argv)
{
    static const sec_case_t cases[] = {
        {"exchange", exchange}, {"no-secret", no_secret}, {"forged", forged},
        {"replay", replay},     {"secret-file", secret_file}, {"etcd", etcd},
    };
    return sec_main(argc, argv, cases, sizeof(cases) / sizeof(*cases));
}
