/*
 * test_etcd.c - the etcd client's pieces that need no server: base64, the cutting of a watch
 * stream into messages, endpoint lists; and, through the agent, what an unreachable etcd
 * looks like (a fetch that fails observably, not a hang) and the option checks.
 * Against a real server: tests/integration/it_etcd.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "etcd_priv.h"
#include "nixl.h"

static void test_b64(void **state)
{
    (void)state;
    uint8_t in[64];
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (uint8_t)(i * 37 + 11);
    for (size_t n = 0; n <= sizeof(in); n++) {
        char *e = etcd_b64_encode(in, n);
        size_t len = 99;
        uint8_t *d = etcd_b64_decode(e, &len);
        assert_non_null(d);
        assert_int_equal(len, n);
        assert_memory_equal(d, in, n);
        free(e);
        free(d);
    }
    char *e = etcd_b64_encode("/nixl/agents//A/", 16);
    assert_string_equal(e, "L25peGwvYWdlbnRzLy9BLw==");
    free(e);
    size_t len;
    assert_null(etcd_b64_decode("abc", &len));
    assert_null(etcd_b64_decode("a===", &len));
    assert_null(etcd_b64_decode("@@@@", &len));
    assert_null(etcd_b64_decode("ab==cd==", &len));
}

static void feed(etcd_stream_t *s, const char *text)
{
    nixl_buf_append(&s->in, text, strlen(text));
}

static void test_stream(void **state)
{
    (void)state;
    etcd_stream_t s;
    memset(&s, 0, sizeof(s));
    nixl_buf_init(&s.in, 0);
    assert_null(etcd_stream_next(&s));
    feed(&s, "{\"result\":{\"created\":true}}\n{\"result\":{\"ev");
    json_object *m = etcd_stream_next(&s);
    assert_non_null(m);
    json_object *r;
    assert_true(json_object_object_get_ex(m, "result", &r));
    json_object_put(m);
    assert_null(etcd_stream_next(&s)); /* the second is incomplete */
    assert_false(s.done);
    feed(&s, "ents\":[{\"type\":\"DELETE\",\"kv\":{\"mod_revision\":\"42\"}}]}}\r\n");
    m = etcd_stream_next(&s);
    assert_non_null(m);
    assert_true(json_object_object_get_ex(m, "result", &r));
    json_object *evs = json_object_object_get(r, "events");
    json_object *kv = json_object_object_get(json_object_array_get_idx(evs, 0), "kv");
    assert_int_equal(etcd_json_i64(kv, "mod_revision", 0), 42);
    assert_int_equal(etcd_json_i64(kv, "absent", -7), -7);
    json_object_put(m);
    assert_null(etcd_stream_next(&s));
    feed(&s, "}garbage");
    assert_null(etcd_stream_next(&s));
    assert_true(s.done);
    nixl_buf_free(&s.in);
}

static void test_endpoints(void **state)
{
    (void)state;
    etcd_http_t h;
    assert_int_equal(etcd_http_init(&h, " 10.0.0.1:2379, https://b:2/ ,,"), NIXL_SUCCESS);
    assert_int_equal(h.num_endpoints, 2);
    assert_string_equal(h.endpoints[0], "http://10.0.0.1:2379");
    assert_string_equal(h.endpoints[1], "https://b:2");
    etcd_http_fini(&h);
    assert_int_equal(etcd_http_init(&h, " , "), NIXL_ERR_INVALID_PARAM);
    char *end = etcd_prefix_end("/nixl/agents//A/");
    assert_string_equal(end, "/nixl/agents//A0");
    free(end);
}

/* TLS options: files are checked when the client starts, and reach every handle. */
static void test_tls_options(void **state)
{
    (void)state;
    etcd_http_t h;
    setenv("NIXL_ETCD_CA_FILE", "/nonexistent/ca.pem", 1);
    assert_int_equal(etcd_http_init(&h, "https://127.0.0.1:2379"), NIXL_ERR_INVALID_PARAM);
    assert_non_null(strstr(nixl_last_error(), "NIXL_ETCD_CA_FILE"));
    setenv("NIXL_ETCD_CA_FILE", "/etc/hostname", 1); /* any readable file */
    setenv("NIXL_ETCD_KEY_FILE", "/etc/hostname", 1);
    assert_int_equal(etcd_http_init(&h, "https://127.0.0.1:2379"), NIXL_ERR_INVALID_PARAM);
    setenv("NIXL_ETCD_CERT_FILE", "/etc/hostname", 1);
    assert_int_equal(etcd_http_init(&h, "https://127.0.0.1:2379"), NIXL_SUCCESS);
    assert_string_equal(h.ca_file, "/etc/hostname");
    assert_string_equal(h.cert_file, "/etc/hostname");
    assert_string_equal(h.key_file, "/etc/hostname");
    etcd_http_fini(&h);
    unsetenv("NIXL_ETCD_CA_FILE");
    unsetenv("NIXL_ETCD_CERT_FILE");
    unsetenv("NIXL_ETCD_KEY_FILE");
    assert_int_equal(etcd_http_init(&h, "https://127.0.0.1:2379"), NIXL_SUCCESS);
    assert_null(h.ca_file);
    etcd_http_fini(&h);
}

/* etcd nowhere: calls still return at once; the fetch fails after the watch timeout. */
static void test_unreachable(void **state)
{
    (void)state;
    setenv("NIXL_ETCD_ENDPOINTS", "http://127.0.0.1:1", 1);
    nixl_agent_config_t cfg;
    nixl_agent_config_init(&cfg);
    cfg.etcd_watch_timeout_us = 300000;
    nixl_agent_t *a = NULL;
    assert_int_equal(nixl_agent_create("solo", &cfg, &a), NIXL_SUCCESS);
    nixl_opt_args_t opt;
    nixl_opt_args_init(&opt);
    assert_int_equal(nixl_agent_send_local_partial_md(a, NIXL_DRAM_SEG, NULL, 0, &opt),
                     NIXL_ERR_INVALID_PARAM);
    assert_non_null(strstr(nixl_last_error(), "metadata_label"));
    assert_int_equal(nixl_agent_fetch_remote_md(a, "peer", NULL), NIXL_SUCCESS);
    assert_int_equal(nixl_agent_fetch_remote_md(a, "solo", NULL), NIXL_ERR_INVALID_PARAM);
    nixl_status_t st = NIXL_IN_PROG;
    for (int i = 0; i < 300 && st == NIXL_IN_PROG; i++) {
        usleep(10000);
        st = nixl_agent_get_fetch_status(a, "peer");
    }
    assert_int_equal(st, NIXL_ERR_BACKEND);
    assert_non_null(strstr(nixl_last_error(), "unreachable"));
    assert_int_equal(nixl_agent_invalidate_local_md(a, NULL), NIXL_SUCCESS);
    nixl_agent_destroy(a); /* bounded: the pending deletion gets a short drain */

    setenv("NIXL_ETCD_LEASE_TTL_S", "100000", 1);
    assert_int_equal(nixl_agent_create("solo", &cfg, &a), NIXL_ERR_INVALID_PARAM);
    unsetenv("NIXL_ETCD_LEASE_TTL_S");
    setenv("NIXL_ETCD_ENDPOINTS", "", 1); /* empty: no etcd, as in the reference */
    assert_int_equal(nixl_agent_create("solo", &cfg, &a), NIXL_SUCCESS);
    assert_int_equal(nixl_agent_fetch_remote_md(a, "peer", NULL), NIXL_ERR_INVALID_PARAM);
    nixl_agent_destroy(a);
    unsetenv("NIXL_ETCD_ENDPOINTS");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64),
        cmocka_unit_test(test_stream),
        cmocka_unit_test(test_endpoints),
        cmocka_unit_test(test_tls_options),
        cmocka_unit_test(test_unreachable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
