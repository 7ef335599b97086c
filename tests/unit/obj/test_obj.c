/*
 * test_obj.c - the OBJ (S3) backend through the public API against a real S3 server (s3rver,
 * started by the test on a free loopback port), with boto3 as the independent client: what we
 * wrote it reads byte for byte, what it wrote we read. Cases: several objects and a repost,
 * keys from metaInfo and from devId, a read at an offset and past the end, a whole-object write
 * at an offset refused at prep, a 64 MiB multipart object, 1,000 small objects in one request,
 * query_mem, the AWS_* environment, bad credentials, a missing bucket, bad parameters, release
 * of a request in flight, and the server killed mid-transfer (an error, never a hang).
 * Skips (77) when s3rver is not installed.
 */
#include "obj_test.h"
#include "s3_server.h"

static s3_server_t srv;
static int boto(const char *fmt, ...);
static char py[64]; /* a python3 with boto3, or "" */

static int setup(void **state)
{
    (void)state;
    static const char *const clear[] = {"AWS_DEFAULT_BUCKET", "AWS_ENDPOINT_OVERRIDE",
                                        "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_REGION",
                                        "AWS_DEFAULT_REGION", "AWS_SESSION_TOKEN",
                                        "AWS_CA_BUNDLE", "AWS_PROFILE"};
    for (size_t i = 0; i < sizeof(clear) / sizeof(clear[0]); i++)
        unsetenv(clear[i]);
    setenv("AWS_ACCESS_KEY_ID", "S3RVER", 1); /* for boto3 */
    setenv("AWS_SECRET_ACCESS_KEY", "S3RVER", 1);
    if (s3_server_start(&srv) != 0)
        return -1;
    ot_endpoint = srv.endpoint;
    ot_ak = ot_sk = "S3RVER";
    static const char *const cands[] = {"/usr/bin/python3", "python3"};
    for (size_t i = 0; i < 2 && !py[0]; i++) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "%s -c 'import boto3' >/dev/null 2>&1", cands[i]);
        if (system(cmd) == 0)
            snprintf(py, sizeof(py), "%s", cands[i]);
    }
    if (!py[0])
        fprintf(stderr, "no python3 with boto3 (python3-boto3): the cross-checks skip\n");
    else
        ot_check = boto;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    s3_server_destroy(&srv);
    return 0;
}

/* Run s3_check.py on our server with "args"; its exit status. */
static int boto(const char *fmt, ...)
{
    char args[512], cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof(cmd), "%s '%s' '%s' bkt %s", py, getenv("NIXL_OBJ_CHECK"), srv.endpoint,
             args);
    return system(cmd);
}

#define NEED_BOTO()                                                                           \
    do {                                                                                      \
        if (!py[0])                                                                           \
            skip();                                                                           \
    } while (0)

/* boto3 writes, we read (whole, and at an offset); past the end is an error. */
static void test_read_boto_offset(void **state)
{
    (void)state;
    NEED_BOTO();
    ot_read_foreign("from-boto", "NoSuchKey");
}

/* 64 MiB as a multipart upload (8 parts of 8 MiB), read back by us and by boto3. */
static void test_multipart(void **state)
{
    (void)state;
    nixl_param_t p[] = {{"multipart_threshold", "16777216"}, {"multipart_part_size", "8388608"}};
    ot_big_roundtrip(p, 2, "big/mpu", 64u << 20);
    /* It went in 8 parts: the server's log has a line per request. */
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "grep -q 'Stored part 8 of' '%s.log' && "
             "! grep -q 'Stored part 9 of' '%s.log'", srv.dir, srv.dir);
    assert_int_equal(system(cmd), 0);
}

static void test_query(void **state)
{
    (void)state;
    nixl_param_t bad[] = {{"access_key", "WRONG"}};
    ot_query(bad, 1);
}

static void test_query_edges(void **state)
{
    (void)state;
    char ep[64]; /* nothing listens there */
    snprintf(ep, sizeof(ep), "http://127.0.0.1:%d", s3_free_port());
    ot_query_edges((nixl_param_t){"endpoint_override", ep});
}

static void test_errors(void **state)
{
    (void)state;
    char ep[64]; /* nothing listens there: the reason is the connection's */
    snprintf(ep, sizeof(ep), "http://127.0.0.1:%d", s3_free_port());
    const ot_case_t fail[] = {{{"access_key", "WRONG"}, "InvalidAccessKeyId"},
                              {{"bucket", "no-such-bucket"}, "NoSuchBucket"},
                              {{"endpoint_override", ep}, "onnect"}};
    static const ot_case_t refused[] = {
        {{"bucket", ""}, "bucket"},
        {{"scheme", "ftp"}, "scheme"},
        {{"accelerated", "true"}, "accelerated"},
        {{"req_checksum", "sometimes"}, "req_checksum"},
        {{"multipart_part_size", "1000"}, "multipart_part_size"},
        {{"endpoint_override", "http://127.0.0.1:1/path"}, "no path"}};
    ot_errors(fail, 3, refused, sizeof(refused) / sizeof(refused[0]));
    /* Host memory registered as VRAM: refused (no GPU here, or not GPU memory), with the
     * reason; nothing registered. */
    nixl_agent_t *a = agent(NULL);
    char *buf = t_alloc(4096);
    nixl_reg_desc_t d = {.addr = (uintptr_t)buf, .len = 4096};
    nixl_status_t st = nixl_agent_register_mem(a, NIXL_VRAM_SEG, &d, 1, NULL);
    assert_true(st == NIXL_ERR_NOT_SUPPORTED || st == NIXL_ERR_INVALID_PARAM);
    assert_non_null(strstr(nixl_last_error(), "VRAM"));
    EXPECT_ST(NIXL_ERR_NOT_FOUND, nixl_agent_deregister_mem(a, NIXL_VRAM_SEG, &d, 1, NULL));
    nixl_agent_destroy(a);
    free(buf);
}

/* Everything from the AWS_* environment, with Content-MD5 on uploads (req_checksum). */
static void test_env(void **state)
{
    (void)state;
    setenv("AWS_DEFAULT_BUCKET", "bkt", 1);
    setenv("AWS_ENDPOINT_OVERRIDE", srv.endpoint, 1);
    setenv("AWS_REGION", "us-east-1", 1);
    nixl_agent_t *a = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create("self", NULL, &a));
    nixl_param_t p[] = {{"req_checksum", "required"}};
    nixl_backend_t *be = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create_backend(a, "OBJ", p, 1, &be));
    unsetenv("AWS_DEFAULT_BUCKET");
    unsetenv("AWS_ENDPOINT_OVERRIDE");
    unsetenv("AWS_REGION");
    char *key = "env/obj";
    reg_objs(a, &key, 1, 1, false);
    char *buf = t_alloc(65536);
    t_reg(a, buf, 65536);
    roundtrip(a, buf, 1, 65536, 1, 30);
    t_dereg(a, buf, 65536);
    nixl_agent_destroy(a);
    free(buf);
}

/* The server dies while 128 MiB are on the way: the request ends in an error, bounded. */
static void test_server_killed(void **state)
{
    (void)state;
    s3_server_t own;
    assert_int_equal(s3_server_start(&own), 0);
    ot_endpoint = own.endpoint; /* agent() points at this one */
    ot_killed_mid_write(NULL, 0, s3_server_kill, &own);
    s3_server_destroy(&own);
    ot_endpoint = srv.endpoint;
}

/* argv[1]: the s3rver program, argv[2]: s3_check.py (NIXL_S3RVER / NIXL_OBJ_CHECK win). */
int main(int argc, char **argv)
{
    if (argc > 2) {
        setenv("NIXL_S3RVER", argv[1], 0);
        setenv("NIXL_OBJ_CHECK", argv[2], 0);
    }
    if (!s3_server_bin())
        return 77;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ot_test_roundtrip_keys), cmocka_unit_test(test_read_boto_offset),
        cmocka_unit_test(test_multipart),      cmocka_unit_test(ot_test_thousand),
        cmocka_unit_test(test_query),          cmocka_unit_test(test_errors),
        cmocka_unit_test(test_env),            cmocka_unit_test(ot_test_release_in_flight),
        cmocka_unit_test(test_query_edges),    cmocka_unit_test(test_server_killed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
