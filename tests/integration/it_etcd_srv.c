/*
 * it_etcd_srv.c - the test's etcd server (it_etcd_srv.h).
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "it_etcd_srv.h"
#include "it_util.h"
#include "peer.h"

bool it_etcd_available(void)
{
    return system("command -v etcd >/dev/null 2>&1") == 0;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static size_t sink(char *p, size_t size, size_t n, void *ud)
{
    char *buf = ud;
    size_t have = strlen(buf), add = size * n;
    if (have + add < 1023) {
        memcpy(buf + have, p, add);
        buf[have + add] = 0;
    }
    return add;
}

/* POST body to path; the answer's first 1023 bytes in `out`. 0 on HTTP 200. */
static int post(const it_etcd_t *s, const char *path, const char *body, char *out)
{
    char url[128];
    snprintf(url, sizeof(url), "%s%s", s->url, path);
    out[0] = 0;
    CURL *c = curl_easy_init();
    if (!c)
        return -1;
    curl_easy_setopt(c, CURLOPT_URL, url);
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 2000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    char ca[160], cert[160], key[160];
    if (s->tls_dir[0]) {
        snprintf(ca, sizeof(ca), "%s/ca.pem", s->tls_dir);
        snprintf(cert, sizeof(cert), "%s/client.pem", s->tls_dir);
        snprintf(key, sizeof(key), "%s/client.key", s->tls_dir);
        curl_easy_setopt(c, CURLOPT_CAINFO, ca);
        curl_easy_setopt(c, CURLOPT_SSLCERT, cert);
        curl_easy_setopt(c, CURLOPT_SSLKEY, key);
    }
    long code = 0;
    char err[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, err);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    if (getenv("IT_ETCD_DEBUG") && (rc != CURLE_OK || code != 200))
        fprintf(stderr, "etcd %s: %s, HTTP %ld: %s\n", url, err, code, out);
    return rc == CURLE_OK && code == 200 ? 0 : -1;
}

/* Move the calling (single-threaded, forked) process into s->netns, if set. 0 or -1. */
static int enter_ns(const it_etcd_t *s)
{
    if (!s->netns[0])
        return 0;
    char path[96];
    snprintf(path, sizeof(path), "/var/run/netns/%s", s->netns);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int rc = fd >= 0 ? setns(fd, CLONE_NEWNET) : -1;
    if (fd >= 0)
        close(fd);
    return rc;
}

/* Whether etcd answers /health within the deadline; from inside its namespace when it has
 * one (a forked child enters it, so the program keeps its own). */
static bool healthy(const it_etcd_t *s, uint64_t end)
{
    char out[1024];
    if (!s->netns[0])
        return post(s, "/health", NULL, out) == 0 && strstr(out, "true");
    pid_t pid = fork();
    if (pid == 0) {
        if (enter_ns(s))
            _exit(2);
        while (it_now_ms() < end) {
            if (post(s, "/health", NULL, out) == 0 && strstr(out, "true"))
                _exit(0);
            it_sleep_ms(100);
        }
        _exit(1);
    }
    int status = 0;
    while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static int launch(it_etcd_t *s)
{
    char client[64], peer[64], cluster[96], log[160];
    snprintf(client, sizeof(client), "%s://%s:%d", s->tls_dir[0] ? "https" : "http", s->host,
             s->client_port);
    snprintf(peer, sizeof(peer), "http://%s:%d", s->host, s->peer_port);
    snprintf(cluster, sizeof(cluster), "it=%s", peer);
    snprintf(log, sizeof(log), "%s/etcd.log", s->dir);
    snprintf(s->url, sizeof(s->url), "%s", client);
    pid_t pid = fork();
    if (pid < 0)
        return it_fail(__FILE__, __LINE__, "fork failed");
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (enter_ns(s))
            _exit(126);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        char data[160];
        snprintf(data, sizeof(data), "%s/data", s->dir);
        if (s->tls_dir[0]) {
            char cert[160], key[160], ca[160];
            snprintf(cert, sizeof(cert), "%s/server.pem", s->tls_dir);
            snprintf(key, sizeof(key), "%s/server.key", s->tls_dir);
            snprintf(ca, sizeof(ca), "%s/ca.pem", s->tls_dir);
            execlp("etcd", "etcd", "--name", "it", "--data-dir", data, "--listen-client-urls",
                   client, "--advertise-client-urls", client, "--listen-peer-urls", peer,
                   "--initial-advertise-peer-urls", peer, "--initial-cluster", cluster,
                   "--cert-file", cert, "--key-file", key, "--client-cert-auth",
                   "--trusted-ca-file", ca, (char *)NULL);
        }
        execlp("etcd", "etcd", "--name", "it", "--data-dir", data, "--listen-client-urls", client,
               "--advertise-client-urls", client, "--listen-peer-urls", peer,
               "--initial-advertise-peer-urls", peer, "--initial-cluster", cluster,
               (char *)NULL);
        _exit(127);
    }
    s->pid = pid;
    uint64_t end = it_now_ms() + 15000;
    for (; it_now_ms() < end; it_sleep_ms(100)) {
        if (healthy(s, end))
            return 0;
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            s->pid = 0;
            return it_fail(__FILE__, __LINE__, "etcd exited at start (see %s)", log);
        }
    }
    it_etcd_stop(s);
    return it_fail(__FILE__, __LINE__, "etcd did not become healthy in 15 s (see %s)", log);
}

int it_etcd_start(it_etcd_t *s)
{
    char host[32], netns[32], tls_dir[128];
    snprintf(host, sizeof(host), "%s", s->host[0] ? s->host : "127.0.0.1");
    snprintf(netns, sizeof(netns), "%s", s->netns);
    snprintf(tls_dir, sizeof(tls_dir), "%s", s->tls_dir);
    memset(s, 0, sizeof(*s));
    memcpy(s->host, host, sizeof(host));
    memcpy(s->netns, netns, sizeof(netns));
    memcpy(s->tls_dir, tls_dir, sizeof(tls_dir));
    curl_global_init(CURL_GLOBAL_DEFAULT);
    snprintf(s->dir, sizeof(s->dir), "/tmp/nixl-it-etcd-XXXXXX");
    if (!mkdtemp(s->dir))
        return it_fail(__FILE__, __LINE__, "mkdtemp failed");
    s->client_port = free_port();
    s->peer_port = free_port();
    if (s->client_port < 0 || s->peer_port < 0 || s->client_port == s->peer_port)
        return it_fail(__FILE__, __LINE__, "no free ports");
    return launch(s);
}

int it_etcd_restart(it_etcd_t *s)
{
    return launch(s);
}

void it_etcd_stop(it_etcd_t *s)
{
    if (!s->pid)
        return;
    kill(s->pid, SIGTERM);
    for (uint64_t end = it_now_ms() + 5000; it_now_ms() < end; it_sleep_ms(20))
        if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
            s->pid = 0;
            return;
        }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
}

void it_etcd_destroy(it_etcd_t *s)
{
    it_etcd_stop(s);
    if (s->dir[0]) {
        char cmd[200];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s->dir);
        if (system(cmd) != 0)
            it_log("could not remove %s", s->dir);
        s->dir[0] = 0;
    }
}

static void b64(const char *in, char *out)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(in), k = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned char)in[i] << 16;
        v |= i + 1 < n ? (unsigned char)in[i + 1] << 8 : 0;
        v |= i + 2 < n ? (unsigned char)in[i + 2] : 0;
        out[k++] = t[v >> 18 & 63];
        out[k++] = t[v >> 12 & 63];
        out[k++] = i + 1 < n ? t[v >> 6 & 63] : '=';
        out[k++] = i + 2 < n ? t[v & 63] : '=';
    }
    out[k] = 0;
}

int it_etcd_has_key(const it_etcd_t *s, const char *key)
{
    char k[512], body[600], out[1024];
    if (strlen(key) > 300)
        return -1;
    b64(key, k);
    snprintf(body, sizeof(body), "{\"key\":\"%s\",\"count_only\":true}", k);
    if (post(s, "/v3/kv/range", body, out) != 0)
        return -1;
    return strstr(out, "\"count\"") != NULL;
}

nixl_agent_t *it_etcd_agent(const char *name, uint64_t watch_timeout_us)
{
    nixl_agent_config_t cfg;
    nixl_agent_config_init(&cfg);
    cfg.etcd_watch_timeout_us = watch_timeout_us;
    nixl_agent_t *a = NULL;
    nixl_backend_t *be;
    IT_CHECK_ST(nixl_agent_create(name, &cfg, &a), NIXL_SUCCESS);
    /* SHM unless the test names another (IT_BACKEND: it-etcd-libfabric) */
    const char *backend = getenv("IT_BACKEND") && *getenv("IT_BACKEND") ? getenv("IT_BACKEND")
                                                                         : "SHM";
    IT_CHECK_ST(nixl_agent_create_backend(a, backend, NULL, 0, &be), NIXL_SUCCESS);
    return a;
fail:
    nixl_agent_destroy(a);
    return NULL;
}
