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

static void write_file(const char *path, const void *p, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, len, f), len);
    fclose(f);
}

/* The file's bytes (malloc), its length in *len. */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc(*len ? *len : 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, *len, f), *len);
    fclose(f);
    return p;
}

static void test_roundtrip_keys(void **state)
{
    (void)state;
    nixl_agent_t *a = agent(NULL);
    char *keys[3] = {"rt/a", "rt/b c+d", "rt/\xc3\xa9t\xc3\xa9?x=1&y"};
    size_t bs = 1u << 20;
    char *buf = t_alloc(3 * bs);
    t_reg(a, buf, 3 * bs);
    reg_objs(a, keys, 3, 100, false);
    roundtrip(a, buf, 3, bs, 100, 1);
    /* boto3 reads what we wrote (the second round: seed 2 + i), keys as they are. */
    if (py[0]) {
        for (size_t i = 0; i < 3; i++) {
            size_t len;
            assert_int_equal(boto("get '%s' /tmp/nixl-obj-get.%d", keys[i], getpid()), 0);
            char path[64];
            snprintf(path, sizeof(path), "/tmp/nixl-obj-get.%d", getpid());
            char *got = read_file(path, &len);
            unlink(path);
            assert_int_equal(len, bs);
            EXPECT_PATTERN(got, len, 2 + (unsigned)i);
            free(got);
        }
    }
    reg_objs(a, keys, 3, 100, true);
    /* Without metaInfo the key is the decimal devId. */
    reg_objs(a, NULL, 1, 4242, false);
    roundtrip(a, buf, 1, 4096, 4242, 5);
    if (py[0]) {
        char path[64];
        size_t len;
        snprintf(path, sizeof(path), "/tmp/nixl-obj-get.%d", getpid());
        assert_int_equal(boto("get 4242 %s", path), 0);
        char *got = read_file(path, &len);
        unlink(path);
        assert_int_equal(len, 4096);
        EXPECT_PATTERN(got, len, 6);
        free(got);
    }
    t_dereg(a, buf, 3 * bs);
    nixl_agent_destroy(a);
    free(buf);
}

/* boto3 writes, we read (whole, and at an offset); past the end is an error. */
static void test_read_boto_offset(void **state)
{
    (void)state;
    NEED_BOTO();
    size_t len = 3u << 20;
    char *src = t_alloc(len), path[64];
    t_fill(src, len, 9);
    snprintf(path, sizeof(path), "/tmp/nixl-obj-put.%d", getpid());
    write_file(path, src, len);
    assert_int_equal(boto("put from-boto %s", path), 0);
    unlink(path);

    nixl_agent_t *a = agent(NULL);
    char *key = "from-boto";
    reg_objs(a, &key, 1, 7, false);
    char *buf = t_alloc(len);
    t_reg(a, buf, len);
    nixl_xfer_req_t *r = req_of(a, NIXL_READ, buf, 1, len, 7);
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(a, r, NULL));
    assert_memory_equal(buf, src, len);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(a, r));

    /* [1000, 1000 + 5000) of the object into the buffer's start */
    memset(buf, 0, len);
    EXPECT_ST(NIXL_SUCCESS, make_req(a, NIXL_READ, buf, 1, 5000, 7, 1000, &r));
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(a, r, NULL));
    assert_memory_equal(buf, src + 1000, 5000);
    EXPECT_BYTES(buf + 5000, 100, 0);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(a, r));

    /* A range that runs past the end: an error naming it, not a short success. */
    EXPECT_ST(NIXL_SUCCESS, make_req(a, NIXL_READ, buf, 1, 4096, 7, len - 100, &r));
    EXPECT_ERR(NIXL_ERR_BACKEND, "ends before the range", t_post_wait(a, r, NULL));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(a, r));
    /* A missing object: the S3 error code in the reason. */
    char *missing = "no-such-key";
    reg_objs(a, &missing, 1, 8, false);
    EXPECT_ST(NIXL_SUCCESS, make_req(a, NIXL_READ, buf, 1, 4096, 8, 0, &r));
    EXPECT_ERR(NIXL_ERR_BACKEND, "NoSuchKey", t_post_wait(a, r, NULL));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(a, r));

    /* A whole-object write at an offset: refused at prep. */
    r = NULL;
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, "offset", make_req(a, NIXL_WRITE, buf, 1, 4096, 7, 10, &r));
    assert_null(r);
    t_dereg(a, buf, len);
    nixl_agent_destroy(a);
    free(buf);
    free(src);
}

/* 64 MiB as a multipart upload (8 parts of 8 MiB), read back by us and by boto3. */
static void test_multipart(void **state)
{
    (void)state;
    size_t len = 64u << 20;
    nixl_param_t p[] = {{"multipart_threshold", "16777216"}, {"multipart_part_size", "8388608"}};
    nixl_agent_t *a = agent_with(p, 2, NULL, NIXL_SUCCESS, NULL);
    char *key = "big/mpu";
    reg_objs(a, &key, 1, 1, false);
    char *buf = t_alloc(len);
    t_reg(a, buf, len);
    t_fill(buf, len, 11);
    nixl_xfer_req_t *w = req_of(a, NIXL_WRITE, buf, 1, len, 1);
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(a, w, NULL));
    memset(buf, 0, len);
    nixl_xfer_req_t *r = req_of(a, NIXL_READ, buf, 1, len, 1);
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(a, r, NULL));
    EXPECT_PATTERN(buf, len, 11);
    if (py[0]) {
        char path[64];
        size_t got_len;
        snprintf(path, sizeof(path), "/tmp/nixl-obj-get.%d", getpid());
        assert_int_equal(boto("get big/mpu %s", path), 0);
        char *got = read_file(path, &got_len);
        unlink(path);
        assert_int_equal(got_len, len);
        EXPECT_PATTERN(got, got_len, 11);
        free(got);
    }
    /* It went in 8 parts: the server's log has a line per request. */
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "grep -q 'Stored part 8 of' '%s.log' && "
             "! grep -q 'Stored part 9 of' '%s.log'", srv.dir, srv.dir);
    assert_int_equal(system(cmd), 0);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(a, w));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(a, r));
    t_dereg(a, buf, len);
    nixl_agent_destroy(a);
    free(buf);
}

/* 1,000 objects of 4 KiB in one request each way; boto3 reads them all. */
static void test_thousand(void **state)
{
    (void)state;
    size_t n = 1000, bs = 4096;
    nixl_agent_t *a = agent(NULL);
    char **keys = calloc(n, sizeof(*keys));
    assert_non_null(keys);
    for (size_t i = 0; i < n; i++) {
        keys[i] = malloc(32);
        snprintf(keys[i], 32, "many/%zu", i);
    }
    reg_objs(a, keys, n, 10000, false);
    char *buf = t_alloc(n * bs);
    t_reg(a, buf, n * bs);
    roundtrip(a, buf, n, bs, 10000, 20);
    if (py[0]) {
        char path[64];
        size_t len;
        snprintf(path, sizeof(path), "/tmp/nixl-obj-many.%d", getpid());
        assert_int_equal(boto("getmany many/ %zu %s", n, path), 0);
        char *got = read_file(path, &len);
        unlink(path);
        assert_int_equal(len, n * bs);
        for (size_t i = 0; i < n; i++)
            EXPECT_PATTERN(got + i * bs, bs, 21 + (unsigned)i);
        free(got);
    }
    reg_objs(a, keys, n, 10000, true);
    for (size_t i = 0; i < n; i++)
        free(keys[i]);
    free(keys);
    t_dereg(a, buf, n * bs);
    nixl_agent_destroy(a);
    free(buf);
}

static void test_query(void **state)
{
    (void)state;
    nixl_backend_t *be = NULL;
    nixl_agent_t *a = agent(&be);
    char *key = "q/one";
    reg_objs(a, &key, 1, 1, false);
    char *buf = t_alloc(12345);
    t_reg(a, buf, 12345);
    nixl_xfer_req_t *w = req_of(a, NIXL_WRITE, buf, 1, 12345, 1);
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(a, w, NULL));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(a, w));
    /* Registration is not needed; metaInfo names the key, else devId. */
    nixl_reg_desc_t d[3] = {{0, 0, 0, "q/one", 5}, {0, 0, 0, "q/none", 6}, {0, 0, 99, NULL, 0}};
    nixl_opt_args_t opt;
    nixl_opt_args_init(&opt);
    opt.backends = &be;
    opt.num_backends = 1;
    nixl_query_resp_t *resp = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_query_mem(a, NIXL_OBJ_SEG, d, 3, &opt, &resp));
    assert_true(resp[0].has_value);
    assert_int_equal(resp[0].params.count, 1);
    assert_string_equal(resp[0].params.items[0].key, "size");
    assert_string_equal(resp[0].params.items[0].value, "12345");
    assert_false(resp[1].has_value);
    assert_false(resp[2].has_value);
    nixl_free(resp);
    t_dereg(a, buf, 12345);
    nixl_agent_destroy(a);

    /* Bad credentials: the whole query fails with the reason. */
    nixl_param_t bad[] = {{"access_key", "WRONG"}};
    a = agent_with(bad, 1, &be, NIXL_SUCCESS, NULL);
    opt.backends = &be;
    resp = NULL;
    EXPECT_ERR(NIXL_ERR_BACKEND, "403", nixl_agent_query_mem(a, NIXL_OBJ_SEG, d, 1, &opt, &resp));
    nixl_agent_destroy(a);
    free(buf);
}

static void test_errors(void **state)
{
    (void)state;
    nixl_param_t bad_key[] = {{"access_key", "WRONG"}};
    expect_fail(bad_key, 1, "InvalidAccessKeyId");
    nixl_param_t no_bucket[] = {{"bucket", "no-such-bucket"}};
    expect_fail(no_bucket, 1, "NoSuchBucket");
    /* Parameters refused at createBackend, each with its reason. */
    nixl_param_t p1[] = {{"bucket", ""}};
    nixl_agent_destroy(agent_with(p1, 1, NULL, NIXL_ERR_BACKEND, "bucket"));
    nixl_param_t p2[] = {{"scheme", "ftp"}};
    nixl_agent_destroy(agent_with(p2, 1, NULL, NIXL_ERR_BACKEND, "scheme"));
    nixl_param_t p3[] = {{"accelerated", "true"}};
    nixl_agent_destroy(agent_with(p3, 1, NULL, NIXL_ERR_BACKEND, "accelerated"));
    nixl_param_t p4[] = {{"req_checksum", "sometimes"}};
    nixl_agent_destroy(agent_with(p4, 1, NULL, NIXL_ERR_BACKEND, "req_checksum"));
    nixl_param_t p5[] = {{"multipart_part_size", "1000"}};
    nixl_agent_destroy(agent_with(p5, 1, NULL, NIXL_ERR_BACKEND, "multipart_part_size"));
    nixl_param_t p6[] = {{"endpoint_override", "http://127.0.0.1:1/path"}};
    nixl_agent_destroy(agent_with(p6, 1, NULL, NIXL_ERR_BACKEND, "no path"));
    /* Nothing listens: the reason is the connection's. */
    char ep[64];
    snprintf(ep, sizeof(ep), "http://127.0.0.1:%d", s3_free_port());
    nixl_param_t dead[] = {{"endpoint_override", ep}};
    expect_fail(dead, 1, "onnect");
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

/* Releasing requests in flight: they stop, nothing is left running, the engine goes on. */
static void test_release_in_flight(void **state)
{
    (void)state;
    size_t n = 64, bs = 1u << 20;
    nixl_agent_t *a = agent(NULL);
    reg_objs(a, NULL, n, 500, false);
    char *buf = t_alloc(n * bs);
    t_reg(a, buf, n * bs);
    for (int round = 0; round < 3; round++) {
        nixl_xfer_req_t *w = req_of(a, NIXL_WRITE, buf, n, bs, 500);
        nixl_status_t st = nixl_agent_post_xfer_req(a, w, NULL);
        assert_true(st == NIXL_IN_PROG || st == NIXL_SUCCESS);
        t_sleep_us(round * 20000);
        EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(a, w));
    }
    roundtrip(a, buf, 4, bs, 500, 40); /* and it still works */
    t_dereg(a, buf, n * bs);
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
    size_t n = 8, bs = 16u << 20;
    nixl_agent_t *a = agent(NULL);
    reg_objs(a, NULL, n, 1, false);
    char *buf = t_alloc(n * bs);
    t_reg(a, buf, n * bs);
    t_fill(buf, n * bs, 3);
    nixl_xfer_req_t *w = req_of(a, NIXL_WRITE, buf, n, bs, 1);
    EXPECT_ST(NIXL_IN_PROG, nixl_agent_post_xfer_req(a, w, NULL));
    t_sleep_us(30000);
    s3_server_stop(&own);
    uint64_t t0 = t_now_ns();
    nixl_status_t st = t_wait(a, w, 60000);
    assert_true(st < 0 && st != NIXL_ERR_NOT_POSTED);
    assert_true(t_now_ns() - t0 < 60000000000ull);
    const char *why = nixl_last_error();
    fprintf(stderr, "after the kill: %s (%s)\n", nixl_status_str(st), why ? why : "");
    /* Posting again: nothing listens now, an error again. */
    EXPECT_ERR(NIXL_ERR_BACKEND, "onnect", t_post_wait(a, w, NULL));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(a, w));
    t_dereg(a, buf, n * bs);
    nixl_agent_destroy(a);
    free(buf);
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
        cmocka_unit_test(test_roundtrip_keys), cmocka_unit_test(test_read_boto_offset),
        cmocka_unit_test(test_multipart),      cmocka_unit_test(test_thousand),
        cmocka_unit_test(test_query),          cmocka_unit_test(test_errors),
        cmocka_unit_test(test_env),            cmocka_unit_test(test_release_in_flight),
        cmocka_unit_test(test_server_killed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
