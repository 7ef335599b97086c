/*
 * nb_etcd.c - nixlbench's ETCD runtime: the processes register under xferbench/<group>/ with
 * the reference's keys (a lock, `size`, `rank/<r>` = "active" on a 30 s lease), the first
 * becomes the initiator (rank 0), and the two meet over TCP: rank 0 publishes the address of a
 * listener under `addr` (not a reference key) and rank 1 connects to it. The benchmark's own
 * messages then travel on that connection, as with the ASIO runtime; the reference instead
 * polls etcd keys every 3 s for each message and barrier. Rank 0 removes the namespace once
 * both are connected.
 *
 * It uses the HTTP/JSON layer of the library's etcd client (src/md/etcd_http.c), compiled in.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nb.h"

#ifndef NB_HAVE_ETCD
int nb_rt_etcd(nb_rt_t *rt, const nb_cfg_t *cfg)
{
    (void)cfg;
    *rt = (nb_rt_t){.fd = -1};
    return nb_fail("the ETCD runtime is not available: this nixlbench was built without "
                   "libcurl and json-c; use --runtime_type=ASIO");
}
#else

#include "error.h"
#include "log.h"
#include "etcd_priv.h"

#define WORLD 2
#define LEASE_TTL_S 30
#define WAIT_MS 60000

typedef struct nb_etcd {
    etcd_http_t http;
    char ns[200];
} nb_etcd_t;

static int call(nb_etcd_t *e, const char *path, json_object *req, json_object **resp)
{
    char why[ETCD_WHY];
    json_object *r = NULL;
    nixl_status_t st = etcd_call(&e->http, path, req, &r, why);
    json_object_put(req);
    if (st != NIXL_SUCCESS)
        return nb_fail("%s", why);
    if (resp)
        *resp = r;
    else
        json_object_put(r);
    return 0;
}

/* A request naming key `suffix` of our namespace (and, with `prefix`, everything under it). */
static json_object *key_req(nb_etcd_t *e, const char *suffix, bool prefix)
{
    char key[300];
    snprintf(key, sizeof(key), "%s%s", e->ns, suffix);
    json_object *req = json_object_new_object();
    etcd_json_add_b64(req, "key", key, strlen(key));
    if (prefix) {
        char *end = etcd_prefix_end(key);
        etcd_json_add_b64(req, "range_end", end, strlen(end));
        free(end);
    }
    return req;
}

static json_object *put_req(nb_etcd_t *e, const char *suffix, const char *val, int64_t lease)
{
    json_object *req = key_req(e, suffix, false);
    etcd_json_add_b64(req, "value", val, strlen(val));
    if (lease)
        json_object_object_add(req, "lease", json_object_new_int64(lease));
    return req;
}

/* The value of a key (malloc'ed) in *val, NULL when absent. */
static int get(nb_etcd_t *e, const char *suffix, char **val)
{
    json_object *resp = NULL, *kvs;
    *val = NULL;
    if (call(e, "/v3/kv/range", key_req(e, suffix, false), &resp))
        return -1;
    size_t len;
    if (json_object_object_get_ex(resp, "kvs", &kvs) && json_object_array_length(kvs) > 0)
        *val = (char *)etcd_json_bytes(json_object_array_get_idx(kvs, 0), "value", &len);
    json_object_put(resp);
    return 0;
}

/* The reference's lock on `lock`: create it if absent, else wait. */
static int lock_take(nb_etcd_t *e, int64_t lease)
{
    for (long long end = nb_now_ms() + WAIT_MS; nb_now_ms() < end; usleep(100000)) {
        json_object *cmp = key_req(e, "lock", false), *resp = NULL, *ok;
        json_object_object_add(cmp, "target", json_object_new_string("CREATE"));
        json_object_object_add(cmp, "create_revision", json_object_new_int64(0));
        json_object *put = json_object_new_object();
        json_object_object_add(put, "request_put", put_req(e, "lock", "locked", lease));
        json_object *req = json_object_new_object(), *c = json_object_new_array(),
                    *s = json_object_new_array();
        json_object_array_add(c, cmp);
        json_object_array_add(s, put);
        json_object_object_add(req, "compare", c);
        json_object_object_add(req, "success", s);
        if (call(e, "/v3/kv/txn", req, &resp))
            return -1;
        bool got = json_object_object_get_ex(resp, "succeeded", &ok) && json_object_get_boolean(ok);
        json_object_put(resp);
        if (got)
            return 0;
    }
    return nb_fail("the etcd lock %slock stayed taken for %d s", e->ns, WAIT_MS / 1000);
}

/* Register: my rank is the `size` found under the lock. */
static int enroll(nb_etcd_t *e, int *rank)
{
    json_object *req = json_object_new_object(), *resp = NULL;
    json_object_object_add(req, "TTL", json_object_new_int64(LEASE_TTL_S));
    if (call(e, "/v3/lease/grant", req, &resp))
        return -1;
    int64_t lease = etcd_json_i64(resp, "ID", 0);
    json_object_put(resp);
    if (lock_take(e, lease))
        return -1;
    char *size = NULL, rk[32], next[16];
    int rc = get(e, "size", &size);
    *rank = size ? atoi(size) : 0;
    free(size);
    if (!rc && *rank >= WORLD)
        rc = nb_fail("%d processes are registered under %s already; this benchmark needs %d "
                     "(another run uses --benchmark_group?)", *rank, e->ns, WORLD);
    snprintf(rk, sizeof(rk), "rank/%d", *rank);
    snprintf(next, sizeof(next), "%d", *rank + 1);
    if (!rc)
        rc = call(e, "/v3/kv/put", put_req(e, rk, "active", lease), NULL) ||
             call(e, "/v3/kv/put", put_req(e, "size", next, 0), NULL);
    if (call(e, "/v3/kv/deleterange", key_req(e, "lock", false), NULL))
        rc = -1;
    if (!rc)
        printf("ETCD Runtime: Registered as rank %d item %d of %d\n", *rank, *rank + 1, WORLD);
    fflush(stdout);
    return rc;
}

/* The local address the peer can reach us on: the one our route to etcd leaves from. */
static void local_addr(nb_etcd_t *e, char *out, size_t len)
{
    snprintf(out, len, "127.0.0.1");
    const char *h = strstr(e->http.endpoints[e->http.cur], "://");
    char host[128];
    if (!h || sscanf(h + 3, h[3] == '[' ? "[%127[^]]" : "%127[^:/]", host) != 1)
        return;
    struct addrinfo hints = {.ai_socktype = SOCK_DGRAM, .ai_family = AF_INET}, *ai;
    if (getaddrinfo(host, "9", &hints, &ai))
        return;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in me;
    socklen_t sl = sizeof(me);
    if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
        getsockname(fd, (struct sockaddr *)&me, &sl) == 0)
        inet_ntop(AF_INET, &me.sin_addr, out, (socklen_t)len);
    if (fd >= 0)
        close(fd);
    freeaddrinfo(ai);
}

static int meet(nb_etcd_t *e, nb_rt_t *rt, int rank)
{
    char *addr = NULL, host[64];
    int port;
    if (rank == 0) {
        int lfd = nb_rt_listener(false, &port);
        if (lfd < 0)
            return -1;
        char val[96];
        local_addr(e, host, sizeof(host));
        snprintf(val, sizeof(val), "%s %d", host, port);
        if (call(e, "/v3/kv/put", put_req(e, "addr", val, 0), NULL)) {
            close(lfd);
            return -1;
        }
        printf("Waiting for all processes to start...\n");
        fflush(stdout);
        int rc = nb_rt_accept(rt, lfd);
        /* Both are here: the namespace has served (the reference removes it at exit). */
        call(e, "/v3/kv/deleterange", key_req(e, "", true), NULL);
        return rc;
    }
    for (long long end = nb_now_ms() + WAIT_MS; !addr && nb_now_ms() < end; usleep(100000))
        if (get(e, "addr", &addr))
            return -1;
    if (!addr || sscanf(addr, "%63s %d", host, &port) != 2) {
        free(addr);
        return nb_fail("rank 0 did not publish its address under %saddr within %d s", e->ns,
                       WAIT_MS / 1000);
    }
    free(addr);
    return nb_rt_connect(rt, host, port);
}

int nb_rt_etcd(nb_rt_t *rt, const nb_cfg_t *cfg)
{
    nb_etcd_t e;
    *rt = (nb_rt_t){.fd = -1};
    const char *eps = *cfg->etcd_endpoints ? cfg->etcd_endpoints : "http://localhost:2379";
    snprintf(e.ns, sizeof(e.ns), "xferbench/%s/", cfg->benchmark_group);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (etcd_http_init(&e.http, eps) != NIXL_SUCCESS)
        return nb_fail("bad --etcd_endpoints '%s'", eps);
    int rank = -1;
    int rc = enroll(&e, &rank);
    if (!rc)
        rc = meet(&e, rt, rank);
    etcd_http_fini(&e.http);
    return rc ? -1 : 0;
}

#endif
