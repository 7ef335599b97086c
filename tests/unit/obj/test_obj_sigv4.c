/*
 * test_obj_sigv4.c - the OBJ backend against an S3 server that verifies every SigV4 signature:
 * moto's server (moto_server), started on a free loopback port with IAM enforcement
 * (INITIAL_NO_AUTH_ACTION_COUNT), given a user and key by moto_setup.py. What s3rver does not
 * check (test_obj) is checked here: the signatures libcurl makes for ranged GETs, PUTs, HEADs
 * and each multipart request (query strings included), and a wrong secret refused with
 * SignatureDoesNotMatch. Skips (77) where moto_server or a python3 with boto3 is missing.
 *
 * Keys here are plain: moto's own check of percent-encoded keys is wrong (it refuses boto3's
 * requests for "a+b" as well), so test_obj covers such keys.
 */
#include "obj_test.h"
#include "s3_server.h"

static s3_server_t srv;
static char ak[128], sk[128];

static bool find_python(char *py, size_t len)
{
    static const char *const cands[] = {"/usr/bin/python3", "python3"};
    for (size_t i = 0; i < 2; i++) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "%s -c 'import boto3' >/dev/null 2>&1", cands[i]);
        if (system(cmd) == 0) {
            snprintf(py, len, "%s", cands[i]);
            return true;
        }
    }
    return false;
}

static int setup(void **state)
{
    (void)state;
    char py[64], cmd[512];
    const char *moto = getenv("NIXL_MOTO_SERVER");
    const char *const argv[] = {moto && *moto ? moto : "moto_server", "-H", "127.0.0.1", "-p",
                                "%PORT%", NULL};
    if (!find_python(py, sizeof(py)) ||
        s3_spawn(&srv, argv, "INITIAL_NO_AUTH_ACTION_COUNT=4") != 0)
        return -1;
    snprintf(cmd, sizeof(cmd), "%s '%s' %s", py, getenv("NIXL_MOTO_SETUP"), srv.endpoint);
    FILE *f = popen(cmd, "r");
    int got = f ? fscanf(f, "%127s %127s", ak, sk) : 0;
    if (!f || pclose(f) != 0 || got != 2) {
        fprintf(stderr, "moto_setup.py failed\n");
        return -1;
    }
    ot_endpoint = srv.endpoint;
    ot_ak = ak;
    ot_sk = sk;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    s3_server_destroy(&srv);
    return 0;
}

/* PUTs and ranged GETs of several objects (by key and by devId), a repost, a read at an
 * offset, query_mem: every request signed and accepted. */
static void test_signed(void **state)
{
    (void)state;
    nixl_backend_t *be = NULL;
    nixl_agent_t *a = agent(&be);
    char *keys[2] = {"plain", "dir/sub-1_x.y~z"};
    size_t bs = 256u << 10;
    char *buf = t_alloc(3 * bs);
    t_reg(a, buf, 3 * bs);
    reg_objs(a, keys, 2, 1, false);
    reg_objs(a, NULL, 1, 3, false); /* key "3" */
    roundtrip(a, buf, 3, bs, 1, 1);
    nixl_xfer_req_t *r = NULL;
    memset(buf, 0, bs);
    EXPECT_ST(NIXL_SUCCESS, make_req(a, NIXL_READ, buf, 1, 1000, 2, 777, &r));
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(a, r, NULL));
    char *want = t_alloc(bs);
    t_fill(want, bs, 3); /* the second round's pattern of object 2 */
    assert_memory_equal(buf, want + 777, 1000);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(a, r));
    nixl_reg_desc_t d[2] = {{0, 0, 0, "plain", 5}, {0, 0, 0, "none", 4}};
    nixl_opt_args_t opt;
    nixl_opt_args_init(&opt);
    opt.backends = &be;
    opt.num_backends = 1;
    nixl_query_resp_t *resp = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_query_mem(a, NIXL_OBJ_SEG, d, 2, &opt, &resp));
    assert_true(resp[0].has_value);
    assert_string_equal(resp[0].params.items[0].value, "262144");
    assert_false(resp[1].has_value);
    nixl_free(resp);
    t_dereg(a, buf, 3 * bs);
    nixl_agent_destroy(a);
    free(buf);
    free(want);
}

/* A multipart upload of 3 parts (5, 5 and 2 MiB): create, parts and complete all signed. */
static void test_signed_multipart(void **state)
{
    (void)state;
    nixl_param_t p[] = {{"multipart_threshold", "5242880"}, {"multipart_part_size", "5242880"}};
    nixl_agent_t *a = agent_with(p, 2, NULL, NIXL_SUCCESS, NULL);
    size_t len = 12u << 20;
    char *key = "big/mpu";
    reg_objs(a, &key, 1, 1, false);
    char *buf = t_alloc(len);
    t_reg(a, buf, len);
    roundtrip(a, buf, 1, len, 1, 7);
    t_dereg(a, buf, len);
    nixl_agent_destroy(a);
    free(buf);
}

/* The right key with a wrong secret: refused by the server on every kind of request. */
static void test_wrong_secret(void **state)
{
    (void)state;
    nixl_param_t p[] = {{"secret_key", "not-the-secret"}};
    expect_fail(p, 1, "SignatureDoesNotMatch");
    nixl_param_t mp[] = {{"secret_key", "not-the-secret"}, {"multipart_threshold", "5242880"}};
    nixl_agent_t *a = agent_with(mp, 2, NULL, NIXL_SUCCESS, NULL);
    char *key = "big/denied";
    reg_objs(a, &key, 1, 1, false);
    char *buf = t_alloc(6u << 20);
    t_reg(a, buf, 6u << 20);
    nixl_xfer_req_t *w = req_of(a, NIXL_WRITE, buf, 1, 6u << 20, 1);
    EXPECT_ERR(NIXL_ERR_BACKEND, "SignatureDoesNotMatch", t_post_wait(a, w, NULL));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(a, w));
    t_dereg(a, buf, 6u << 20);
    nixl_agent_destroy(a);
    free(buf);
}

/* argv[1]: moto_setup.py (NIXL_MOTO_SETUP wins). */
int main(int argc, char **argv)
{
    if (argc > 1)
        setenv("NIXL_MOTO_SETUP", argv[1], 0);
    char py[64], cmd[160];
    const char *moto = getenv("NIXL_MOTO_SERVER");
    snprintf(cmd, sizeof(cmd), "command -v '%s' >/dev/null 2>&1", moto && *moto ? moto
                                                                                 : "moto_server");
    if (system(cmd) != 0 || !find_python(py, sizeof(py))) {
        fprintf(stderr, "skip: needs moto_server (moto's S3 server) on PATH or in "
                "NIXL_MOTO_SERVER, and a python3 with boto3\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signed),
        cmocka_unit_test(test_signed_multipart),
        cmocka_unit_test(test_wrong_secret),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
