/*
 * test_prometheus_rules.c - the `prometheus` exporter's rules inside one process (reference
 * 8.4): one endpoint shared by the agents of the process, a duplicate agent name refused, a
 * port in use only warned about (the agent runs), a bad bucket list refused with the reason;
 * the endpoint goes with the last agent; prometheus_mp's settings and labels, and stores that
 * another process wrote badly (tests/fuzz/fuzz_prom_store.c found them). Through the public
 * API and plain HTTP on loopback.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "nixl.h"
#include "prom_store.h"

static int port;
static char port_s[16];

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

/* GET /metrics; the body (malloc'ed) or NULL when nobody answers. */
static char *scrape(int p)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return NULL;
    }
    const char req[] = "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n";
    assert_int_equal(write(fd, req, sizeof(req) - 1), (ssize_t)(sizeof(req) - 1));
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap);
    ssize_t n;
    while ((n = read(fd, buf + len, cap - len - 1)) > 0)
        len += (size_t)n;
    close(fd);
    buf[len] = '\0';
    if (!strstr(buf, "200 OK")) {
        free(buf);
        return NULL;
    }
    return buf;
}

static int setup(void **state)
{
    (void)state;
    port = free_port();
    snprintf(port_s, sizeof(port_s), "%d", port);
    unsetenv("NIXL_TELEMETRY_DIR");
    unsetenv("NIXL_TELEMETRY_HISTOGRAM_BUCKETS_US");
    setenv("NIXL_TELEMETRY_ENABLE", "y", 1);
    setenv("NIXL_TELEMETRY_EXPORTER", "prometheus", 1);
    setenv("NIXL_TELEMETRY_PROMETHEUS_LOCAL", "y", 1);
    setenv("NIXL_TELEMETRY_PROMETHEUS_PORT", port_s, 1);
    return 0;
}

static void test_shared_endpoint(void **state)
{
    (void)state;
    nixl_agent_t *a = NULL, *b = NULL, *dup = NULL;
    assert_int_equal(nixl_agent_create("prom-a", NULL, &a), NIXL_SUCCESS);
    assert_int_equal(nixl_agent_create("prom-b", NULL, &b), NIXL_SUCCESS);
    char *body = scrape(port);
    assert_non_null(body);
    assert_non_null(strstr(body, "agent_tx_bytes_total{hostname="));
    assert_non_null(strstr(body, "agent_name=\"prom-a\"} 0"));
    assert_non_null(strstr(body, "agent_name=\"prom-b\"} 0"));
    /* one family header for both agents */
    char *first = strstr(body, "# TYPE agent_tx_bytes_total counter");
    assert_non_null(first);
    assert_null(strstr(first + 1, "# TYPE agent_tx_bytes_total counter"));
    free(body);

    assert_int_equal(nixl_agent_create("prom-a", NULL, &dup), NIXL_ERR_INVALID_PARAM);
    assert_null(dup);
    assert_non_null(strstr(nixl_last_error(), "unique per process"));

    nixl_agent_destroy(a);
    body = scrape(port); /* still served for prom-b */
    assert_non_null(body);
    assert_null(strstr(body, "prom-a"));
    assert_non_null(strstr(body, "prom-b"));
    free(body);
    nixl_agent_destroy(b);
    assert_null(scrape(port)); /* the last agent took the endpoint with it */
}

static void test_port_in_use(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 1), 0);
    nixl_agent_t *a = NULL;
    /* a warning, and the agent runs without Prometheus telemetry */
    assert_int_equal(nixl_agent_create("prom-busy", NULL, &a), NIXL_SUCCESS);
    nixl_agent_destroy(a);
    close(fd);
}

static void test_bad_settings(void **state)
{
    (void)state;
    nixl_agent_t *a = NULL;
    const char *bad[] = {"10,5", "0,10", "10,x", "10,,20"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        setenv("NIXL_TELEMETRY_HISTOGRAM_BUCKETS_US", bad[i], 1);
        assert_int_equal(nixl_agent_create("prom-bad", NULL, &a), NIXL_ERR_INVALID_PARAM);
        assert_non_null(strstr(nixl_last_error(), "NIXL_TELEMETRY_HISTOGRAM_BUCKETS_US"));
    }
    setenv("NIXL_TELEMETRY_HISTOGRAM_BUCKETS_US", "5,50,500", 1);
    assert_int_equal(nixl_agent_create("prom-buckets", NULL, &a), NIXL_SUCCESS);
    char *body = scrape(port);
    assert_non_null(body);
    assert_non_null(strstr(body, "le=\"500\"} 0"));
    assert_null(strstr(body, "le=\"10\""));
    free(body);
    nixl_agent_destroy(a);
    unsetenv("NIXL_TELEMETRY_HISTOGRAM_BUCKETS_US");
    setenv("NIXL_TELEMETRY_PROMETHEUS_PORT", "70000", 1);
    assert_int_equal(nixl_agent_create("prom-bad", NULL, &a), NIXL_ERR_INVALID_PARAM);
    assert_non_null(strstr(nixl_last_error(), "not a TCP port"));
    setenv("NIXL_TELEMETRY_PROMETHEUS_PORT", port_s, 1);
    setenv("NIXL_TELEMETRY_PROMETHEUS_LOCAL", "perhaps", 1);
    assert_int_equal(nixl_agent_create("prom-bad", NULL, &a), NIXL_ERR_INVALID_PARAM);
    setenv("NIXL_TELEMETRY_PROMETHEUS_LOCAL", "y", 1);
}

/* prometheus_mp's own settings; an exporter this implementation lacks. */
static void test_mp_settings(void **state)
{
    (void)state;
    nixl_agent_t *a = NULL;
    setenv("NIXL_TELEMETRY_EXPORTER", "prometheus_mp", 1);
    unsetenv("NIXL_TELEMETRY_MULTIPROC_DIR");
    assert_int_equal(nixl_agent_create("mp-bad", NULL, &a), NIXL_ERR_INVALID_PARAM);
    assert_non_null(strstr(nixl_last_error(), "NIXL_TELEMETRY_MULTIPROC_DIR is required"));
    setenv("NIXL_TELEMETRY_MULTIPROC_DIR", "/nonexistent-nixl-dir", 1);
    assert_int_equal(nixl_agent_create("mp-bad", NULL, &a), NIXL_ERR_NOT_FOUND);
    char dir[] = "/tmp/nixl-mp-XXXXXX";
    assert_non_null(mkdtemp(dir));
    setenv("NIXL_TELEMETRY_MULTIPROC_DIR", dir, 1);
    /* 33 bounds: one more than the multi-process store holds */
    char many[512] = "";
    for (int i = 1; i <= 33; i++)
        snprintf(many + strlen(many), sizeof(many) - strlen(many), "%s%d", i > 1 ? "," : "", i);
    setenv("NIXL_TELEMETRY_HISTOGRAM_BUCKETS_US", many, 1);
    assert_int_equal(nixl_agent_create("mp-bad", NULL, &a), NIXL_ERR_INVALID_PARAM);
    assert_non_null(strstr(nixl_last_error(), "more than 32"));
    unsetenv("NIXL_TELEMETRY_HISTOGRAM_BUCKETS_US");
    setenv("NIXL_TELEMETRY_MP_STALE_TTL", "0", 1);
    assert_int_equal(nixl_agent_create("mp-bad", NULL, &a), NIXL_ERR_INVALID_PARAM);
    unsetenv("NIXL_TELEMETRY_MP_STALE_TTL");
    nixl_agent_t *b = NULL, *dup = NULL;
    assert_int_equal(nixl_agent_create("mp-a", NULL, &a), NIXL_SUCCESS);
    assert_int_equal(nixl_agent_create("mp-b", NULL, &b), NIXL_SUCCESS);
    assert_int_equal(nixl_agent_create("mp-a", NULL, &dup), NIXL_ERR_INVALID_PARAM);
    char *body = scrape(port);
    assert_non_null(body);
    assert_non_null(strstr(body, "agent_name=\"mp-a\",pid=\""));
    assert_non_null(strstr(body, "agent_instance=\"1\""));
    free(body);
    nixl_agent_destroy(a);
    nixl_agent_destroy(b);
    assert_null(scrape(port));
    char cmd[64];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);

    setenv("NIXL_TELEMETRY_EXPORTER", "doca", 1);
    assert_int_equal(nixl_agent_create("doca", NULL, &a), NIXL_ERR_NOT_SUPPORTED);
    assert_non_null(strstr(nixl_last_error(), "doca"));
}

/* Write `s` as the store of pid `pid` in `dir`. */
static void put_store(const char *dir, int pid, const mp_store_t *s)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/nixl-store.%d.0", dir, pid);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, s, sizeof(*s)), (ssize_t)sizeof(*s));
    close(fd);
}

/* Stores of other processes in the directory, as anyone allowed to write there can leave them:
 * an agent name that is not UTF-8 is served with '?' for its bad bytes (Prometheus refuses a
 * scrape with invalid UTF-8, every agent's series with it); a store whose bounds repeat is
 * skipped (it would render one series twice, which fails the scrape the same way). */
static void test_mp_hostile_stores(void **state)
{
    (void)state;
    char dir[] = "/tmp/nixl-mp-XXXXXX";
    assert_non_null(mkdtemp(dir));
    setenv("NIXL_TELEMETRY_EXPORTER", "prometheus_mp", 1);
    setenv("NIXL_TELEMETRY_MULTIPROC_DIR", dir, 1);
    nixl_agent_t *a = NULL;
    assert_int_equal(nixl_agent_create("mp-ok", NULL, &a), NIXL_SUCCESS);
    /* our own store, as the template of the others */
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    mp_store_t *own = calloc(1, sizeof(*own)), *s = calloc(1, sizeof(*s));
    bool found = false;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "nixl-store.", 11) != 0)
            continue;
        int fd = openat(dirfd(d), e->d_name, O_RDONLY);
        assert_true(fd >= 0);
        assert_int_equal(pread(fd, own, sizeof(*own), 0), (ssize_t)sizeof(*own));
        close(fd);
        found = true;
    }
    closedir(d);
    assert_true(found);
    assert_string_equal(own->agent, "mp-ok");

    memcpy(s, own, sizeof(*s));
    s->pid = 999999;
    snprintf(s->agent, sizeof(s->agent), "bad-\xff\xfe-name");
    snprintf(s->hostname, sizeof(s->hostname), "host-\xc3");
    put_store(dir, 999999, s);
    memcpy(s, own, sizeof(*s));
    s->pid = 999998;
    snprintf(s->agent, sizeof(s->agent), "repeated-bounds");
    s->bounds.n = 2;
    s->bounds.le[0] = s->bounds.le[1] = 5;
    put_store(dir, 999998, s);

    char *body = scrape(port);
    assert_non_null(body);
    assert_non_null(strstr(body, "agent_name=\"mp-ok\""));
    assert_non_null(strstr(body, "hostname=\"host-?\",agent_name=\"bad-?" "?-name\","
                                 "pid=\"999999\""));
    assert_null(strstr(body, "repeated-bounds"));
    for (const unsigned char *p = (const unsigned char *)body; *p; p++)
        assert_true(*p < 0x80); /* every name here is ASCII once the bad bytes are replaced */
    free(body);
    nixl_agent_destroy(a);
    free(own);
    free(s);
    char cmd[64];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    unsetenv("NIXL_TELEMETRY_MULTIPROC_DIR");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_shared_endpoint, setup),
        cmocka_unit_test_setup(test_port_in_use, setup),
        cmocka_unit_test_setup(test_bad_settings, setup),
        cmocka_unit_test_setup(test_mp_settings, setup),
        cmocka_unit_test_setup(test_mp_hostile_stores, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
