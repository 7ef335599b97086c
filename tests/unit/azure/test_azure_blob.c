/*
 * test_azure_blob.c - the AZURE_BLOB backend through the public API against Azurite (npm, in
 * build-npm/ by scripts/install-deps.sh), started by the test in blob-only mode on a free
 * loopback port with its well-known development account. The independent client is
 * az_check.py (the REST API through Python's urllib, with its own SharedKey signature): what we
 * wrote it reads byte for byte, what it wrote we read, and it counts the committed blocks of a
 * staged blob. Cases: several blobs and a repost, names from metaInfo and devId, a read at an
 * offset and past the end, a 24 MiB blob in 6 staged blocks, 1,000 small blobs in one request,
 * query_mem, a connection string and the AZURE_STORAGE_* environment, a bad key (403 with
 * the reason), a missing container, bad parameters, release in flight, and the server killed
 * mid-transfer (an error, never a hang). Skips (77) when azurite is not installed.
 */
#include "obj_test.h"
#include "az_test.h"
#include "s3_server.h"

#define DEV_KEY "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

/* Base64 of 42 zero bytes: a well-formed key that is not the account's. */
#define BAD_KEY "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

static s3_server_t srv;
static char account_url[96];

/* Start azurite-blob on a free port with a fresh directory; 0, or -1 with the reason. */
static int azurite_start(s3_server_t *s)
{
    const char *bin = getenv("NIXL_AZURITE");
    const char *const argv[] = {bin, "--blobHost", "127.0.0.1", "--blobPort", "%PORT%",
                                "--location", "%DIR%", "--skipApiVersionCheck", "--loose",
                                "--disableTelemetry", NULL};
    return s3_spawn(s, argv, NULL);
}

/* Run az_check.py against the server at url (the account's) with args; its exit status. */
static int pycheck_at(const char *url, const char *fmt, ...)
{
    char args[512], cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof(cmd), "python3 '%s' '%s' ctr %s", getenv("NIXL_AZ_CHECK"), url, args);
    return system(cmd);
}
#define pycheck(...) pycheck_at(account_url, __VA_ARGS__)

/* The same on our server, for obj_test.h's ot_check. */
static int pycheck_fn(const char *fmt, ...)
{
    char args[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    return pycheck_at(account_url, "%s", args);
}

/* Point the helpers at the account of server s (SharedKey with the development key). */
static void use_server(s3_server_t *s, char *url, size_t len)
{
    snprintf(url, len, "%s/devstoreaccount1", s->endpoint);
    ot_backend = "AZURE_BLOB";
    ot_params[0] = (nixl_param_t){"account_url", url};
    ot_params[1] = (nixl_param_t){"container_name", "ctr"};
    ot_params[2] = (nixl_param_t){"account_key", DEV_KEY};
    ot_nparams = 3;
}

static int setup(void **state)
{
    (void)state;
    az_clear_storage_env();
    if (azurite_start(&srv) != 0)
        return -1;
    use_server(&srv, account_url, sizeof(account_url));
    return az_use_check(pycheck_fn);
}

static int teardown(void **state)
{
    (void)state;
    s3_server_destroy(&srv);
    return 0;
}

/* az_check.py writes, we read (whole, and at an offset); past the end is an error. */
static void test_read_offset(void **state)
{
    (void)state;
    ot_read_foreign("from-py", "BlobNotFound");
}

/* 24 MiB in staged blocks of 4 MiB: read back by us and by az_check.py, 6 blocks committed. */
static void test_staged_blocks(void **state)
{
    (void)state;
    nixl_param_t p[] = {{"max_single_put_size", "4194304"}, {"block_size", "4194304"}};
    ot_big_roundtrip(p, 2, "big/staged", 24u << 20);
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "test \"$(python3 '%s' '%s' ctr blocks big/staged)\" = 6",
             getenv("NIXL_AZ_CHECK"), account_url);
    assert_int_equal(system(cmd), 0);
    /* Below the threshold: one Put Blob, no block list. */
    ot_big_roundtrip(p, 2, "small/one", (4u << 20) - 1);
    snprintf(cmd, sizeof(cmd), "test \"$(python3 '%s' '%s' ctr blocks small/one)\" = 0",
             getenv("NIXL_AZ_CHECK"), account_url);
    assert_int_equal(system(cmd), 0);
}

static void test_query(void **state)
{
    (void)state;
    nixl_param_t bad[] = {{"account_key", BAD_KEY}};
    ot_query(bad, 1);
}

static void test_query_edges(void **state)
{
    (void)state;
    char url[96]; /* nothing listens there */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/devstoreaccount1", s3_free_port());
    ot_query_edges((nixl_param_t){"account_url", url});
}

static void test_errors(void **state)
{
    (void)state;
    char url[96]; /* nothing listens there: the reason is the connection's */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/devstoreaccount1", s3_free_port());
    const ot_case_t fail[] = {
        {{"account_key", BAD_KEY}, "403 AuthorizationFailure: Server failed to authenticate"},
        {{"container_name", "no-such-container"}, "ContainerNotFound"},
        {{"account_url", url}, "onnect"}};
    static const ot_case_t refused[] = {
        {{"container_name", ""}, "no container"},
        {{"container_name", "Bad_Name"}, "not a container name"},
        {{"account_url", "ftp://x"}, "http(s)://"},
        {{"account_url", "http://127.0.0.1:1"}, "names no account"},
        {{"account_key", "not base64!"}, "not base64"},
        {{"connection_string", "AccountName"}, "not Key=Value"},
        {{"connection_string", "AccountKey=" BAD_KEY}, "neither BlobEndpoint nor AccountName"},
        {{"block_size", "0"}, "block_size"}};
    ot_errors(fail, 3, refused, sizeof(refused) / sizeof(refused[0]));
}

/* Written through a connection string, read through the AZURE_STORAGE_* environment. */
static void test_conn_string_env(void **state)
{
    (void)state;
    char cs[512];
    snprintf(cs, sizeof(cs), "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
             "AccountKey=%s;BlobEndpoint=%s;", DEV_KEY, account_url);
    nixl_agent_t *a = NULL;
    nixl_backend_t *be = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create("self", NULL, &a));
    nixl_param_t p[] = {{"connection_string", cs}, {"container_name", "ctr"}};
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create_backend(a, "AZURE_BLOB", p, 2, &be));
    char *key = "cs/blob";
    reg_objs(a, &key, 1, 1, false);
    char *buf = t_alloc(65536);
    t_reg(a, buf, 65536);
    t_fill(buf, 65536, 30);
    nixl_xfer_req_t *w = req_of(a, NIXL_WRITE, buf, 1, 65536, 1);
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(a, w, NULL));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(a, w));
    t_dereg(a, buf, 65536);
    nixl_agent_destroy(a);
    ot_expect_object(key, 65536, 30);

    setenv("AZURE_STORAGE_ACCOUNT_URL", account_url, 1);
    setenv("AZURE_STORAGE_CONTAINER_NAME", "ctr", 1);
    setenv("AZURE_STORAGE_ACCOUNT_KEY", DEV_KEY, 1);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create("self", NULL, &a));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create_backend(a, "AZURE_BLOB", NULL, 0, &be));
    unsetenv("AZURE_STORAGE_ACCOUNT_URL");
    unsetenv("AZURE_STORAGE_CONTAINER_NAME");
    unsetenv("AZURE_STORAGE_ACCOUNT_KEY");
    reg_objs(a, &key, 1, 1, false);
    t_reg(a, buf, 65536);
    memset(buf, 0, 65536);
    nixl_xfer_req_t *r = req_of(a, NIXL_READ, buf, 1, 65536, 1);
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(a, r, NULL));
    EXPECT_PATTERN(buf, 65536, 30);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(a, r));
    t_dereg(a, buf, 65536);
    nixl_agent_destroy(a);

    /* The development account's well-known key, at our server's endpoint. */
    snprintf(cs, sizeof(cs), "UseDevelopmentStorage=true;BlobEndpoint=%s", account_url);
    nixl_param_t dev[] = {{"connection_string", cs}, {"account_url", ""}, {"account_key", ""}};
    a = agent_with(dev, 3, NULL, NIXL_SUCCESS, NULL);
    reg_objs(a, &key, 1, 1, false);
    t_reg(a, buf, 65536);
    roundtrip(a, buf, 1, 65536, 1, 31);
    t_dereg(a, buf, 65536);
    nixl_agent_destroy(a);
    ot_expect_object(key, 65536, 32);
    free(buf);
}

/* An account SAS (from az_check.py) made with permissions perms, into sas. */
static void make_sas(const char *perms, char *sas, size_t len)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "python3 '%s' '%s' ctr sas %s", getenv("NIXL_AZ_CHECK"),
             account_url, perms);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    assert_non_null(fgets(sas, (int)len, f));
    assert_int_equal(pclose(f), 0);
    sas[strcspn(sas, "\n")] = '\0';
}

/* SAS tokens instead of the key: as sas_token, on account_url, in a connection string; a
 * read-only one refuses writes (403 with the reason). */
static void test_sas(void **state)
{
    (void)state;
    char rw[512], ro[512], url[768], cs[1024];
    make_sas("rwlac", rw, sizeof(rw));
    make_sas("rl", ro, sizeof(ro));
    snprintf(url, sizeof(url), "%s?%s", account_url, rw);
    snprintf(cs, sizeof(cs), "BlobEndpoint=%s;SharedAccessSignature=%s", account_url, rw);
    /* the first in 4 staged blocks (Put Block, Put Block List), the others by Put Blob */
    const nixl_param_t ways[3][4] = {
        {{"sas_token", rw}, {"account_key", ""}, {"max_single_put_size", "16384"},
         {"block_size", "16384"}},
        {{"account_url", url}, {"account_key", ""}},
        {{"connection_string", cs}, {"account_url", ""}}};
    for (unsigned w = 0; w < 3; w++) {
        nixl_agent_t *a = agent_with(ways[w], w ? 2 : 4, NULL, NIXL_SUCCESS, NULL);
        char *key = "sas/blob";
        reg_objs(a, &key, 1, 1, false);
        char *buf = t_alloc(65536);
        t_reg(a, buf, 65536);
        roundtrip(a, buf, 1, 65536, 1, 50 + w);
        t_dereg(a, buf, 65536);
        nixl_agent_destroy(a);
        free(buf);
        ot_expect_object(key, 65536, 51 + w);
        if (w == 0)
            assert_int_equal(pycheck("blocks sas/blob | grep -qx 4"), 0);
    }
    /* Read-only: reads go, writes are refused with the server's reason. */
    nixl_param_t p[] = {{"sas_token", ro}, {"account_key", ""}};
    nixl_agent_t *a = agent_with(p, 2, NULL, NIXL_SUCCESS, NULL);
    char *key = "sas/blob";
    reg_objs(a, &key, 1, 1, false);
    char *buf = t_alloc(65536);
    t_reg(a, buf, 65536);
    nixl_xfer_req_t *r = req_of(a, NIXL_READ, buf, 1, 65536, 1);
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(a, r, NULL));
    EXPECT_PATTERN(buf, 65536, 53);
    nixl_xfer_req_t *wr = req_of(a, NIXL_WRITE, buf, 1, 65536, 1);
    EXPECT_ERR(NIXL_ERR_BACKEND, "403", t_post_wait(a, wr, NULL));
    fprintf(stderr, "write with a read-only SAS: %s\n", nixl_last_error());
    assert_null(strstr(nixl_last_error(), "sig=")); /* the token is a credential */
    assert_non_null(strstr(nixl_last_error(), "AuthorizationPermissionMismatch"));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(a, r));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(a, wr));
    t_dereg(a, buf, 65536);
    nixl_agent_destroy(a);
    free(buf);
}

/* The server dies while 128 MiB (staged blocks) are on the way: an error, bounded. */
static void test_server_killed(void **state)
{
    (void)state;
    s3_server_t own;
    char url[96];
    assert_int_equal(azurite_start(&own), 0);
    use_server(&own, url, sizeof(url));
    assert_int_equal(pycheck_at(url, "mkcontainer"), 0);
    nixl_param_t p[] = {{"max_single_put_size", "8388608"}, {"block_size", "4194304"}};
    ot_killed_mid_write(p, 2, s3_server_kill, &own);
    s3_server_destroy(&own);
    use_server(&srv, account_url, sizeof(account_url));
}

/* argv[1]: the azurite-blob program, argv[2]: az_check.py (NIXL_AZURITE / NIXL_AZ_CHECK win). */
int main(int argc, char **argv)
{
    int skip = az_need_azurite(argc, argv);
    if (skip)
        return skip;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ot_test_roundtrip_keys),   cmocka_unit_test(test_read_offset),
        cmocka_unit_test(test_staged_blocks),     cmocka_unit_test(ot_test_thousand),
        cmocka_unit_test(test_query),             cmocka_unit_test(test_errors),
        cmocka_unit_test(test_conn_string_env),   cmocka_unit_test(ot_test_release_in_flight),
        cmocka_unit_test(test_sas),               cmocka_unit_test(test_query_edges),
        cmocka_unit_test(test_server_killed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
