/*
 * test_azure_ad.c - the AZURE_BLOB backend with Microsoft Entra ID (Azure AD) tokens, against
 * real servers on loopback started by the test: Azurite over HTTPS with `--oauth basic` (a
 * throwaway self-signed certificate made with openssl, passed as ca_bundle), and
 * az_token_server.py as the token endpoint (Azure AD cannot run here), whose tokens Azurite
 * checks (issuer, audience, not-before, expiry) and which records every request.
 *
 * Cases: a service principal (the form it posts, byte-verified WRITE and READ with the bearer
 * token, az_check.py reading what we wrote and writing what we read), a workload identity (the
 * federated token file re-read at each refresh), an App Service managed identity endpoint,
 * IMDS (azure_ad=on), a short-lived token refreshed before the next transfer (the first one
 * has expired by then, so Azurite would refuse it), token endpoints answering 400 and 401 with
 * an error JSON, garbage, 100 KiB, or a token with a CR LF (clear errors at creation), a token
 * for the wrong audience (refused by Azurite with its reason), http account URLs and unsafe
 * authorities, and no token in any log line (DEBUG logs captured). Skips (77) without azurite
 * or openssl.
 */
#include <fcntl.h>

#include "obj_test.h"
#include "az_test.h"
#include "s3_server.h"

static s3_server_t azurite, tokens;
static char account_url[96], cert[128], key_pem[128], certdir[64], authority[96];

static const char *const ad_env[] = {"AZURE_TENANT_ID",      "AZURE_CLIENT_ID",
                                     "AZURE_CLIENT_SECRET",  "AZURE_FEDERATED_TOKEN_FILE",
                                     "AZURE_AUTHORITY_HOST", "IDENTITY_ENDPOINT",
                                     "IDENTITY_HEADER",      "AZURE_POD_IDENTITY_AUTHORITY_HOST"};

static void clear_ad_env(void)
{
    for (size_t i = 0; i < sizeof(ad_env) / sizeof(ad_env[0]); i++)
        unsetenv(ad_env[i]);
}

/* az_check.py (SharedKey over https, trusting our certificate) on the account. */
static int pycheck_fn(const char *fmt, ...)
{
    char args[512], cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof(cmd), "SSL_CERT_FILE='%s' python3 '%s' '%s' ctr %s", cert,
             getenv("NIXL_AZ_CHECK"), account_url, args);
    return system(cmd);
}

/* The token server's request log (malloc, "" when none). */
static char *requests(void)
{
    char path[96];
    snprintf(path, sizeof(path), "%s/requests.log", tokens.dir);
    FILE *f = fopen(path, "rb");
    char *s = calloc(1, 1 << 20);
    assert_non_null(s);
    if (f) {
        size_t n = fread(s, 1, (1 << 20) - 1, f);
        s[n] = '\0';
        fclose(f);
    }
    return s;
}

/* Lines of the request log that hold `needle`. */
static int count_requests(const char *needle)
{
    char *s = requests();
    int n = 0;
    for (char *line = strtok(s, "\n"); line; line = strtok(NULL, "\n"))
        n += strstr(line, needle) != NULL;
    free(s);
    return n;
}

static void expect_request(const char *line)
{
    if (count_requests(line) < 1) {
        char *s = requests();
        fprintf(stderr, "no request '%s' in:\n%s\n", line, s);
        free(s);
        fail();
    }
}

/* stderr (the library's logs at DEBUG) into a file between capture_begin and capture_end,
 * which prints it and checks that no token the server issued, nor `secret`, is in it. */
static int saved_err = -1;
static char cap_path[64];

static void capture_begin(void)
{
    fflush(stderr);
    snprintf(cap_path, sizeof(cap_path), "/tmp/nixl-azad-log.%d", getpid());
    int fd = open(cap_path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    assert_true(fd >= 0);
    saved_err = dup(2);
    dup2(fd, 2);
    close(fd);
}

static void capture_end(const char *must_have, const char *secret)
{
    fflush(stderr);
    dup2(saved_err, 2);
    close(saved_err);
    size_t len;
    char *logs = ot_take_file(cap_path, &len);
    char *s = realloc(logs, len + 1);
    assert_non_null(s);
    s[len] = '\0';
    fwrite(s, 1, len, stderr);
    assert_non_null(strstr(s, must_have)); /* the capture saw the library's lines */
    if (secret)
        assert_null(strstr(s, secret));
    char *req = requests();
    int issued = 0;
    for (char *line = strtok(req, "\n"); line; line = strtok(NULL, "\n"))
        if (!strncmp(line, "issued ", 7)) {
            issued++;
            /* the token's payload and signature parts: long, unique */
            assert_null(strstr(s, strchr(line + 7, '.')));
        }
    assert_true(issued > 0);
    free(req);
    free(s);
}

static int setup(void **state)
{
    (void)state;
    az_clear_storage_env();
    clear_ad_env();
    snprintf(certdir, sizeof(certdir), "/tmp/nixl-azad-XXXXXX");
    if (!mkdtemp(certdir))
        return -1;
    snprintf(cert, sizeof(cert), "%s/cert.pem", certdir);
    snprintf(key_pem, sizeof(key_pem), "%s/key.pem", certdir);
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "
             "/CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout '%s' -out '%s' "
             ">/dev/null 2>&1",
             key_pem, cert);
    if (system(cmd) != 0) {
        fprintf(stderr, "openssl could not make a certificate\n");
        return -1;
    }
    const char *const az_argv[] = {getenv("NIXL_AZURITE"),
                                   "--blobHost",
                                   "127.0.0.1",
                                   "--blobPort",
                                   "%PORT%",
                                   "--location",
                                   "%DIR%",
                                   "--skipApiVersionCheck",
                                   "--loose",
                                   "--disableTelemetry",
                                   "--oauth",
                                   "basic",
                                   "--cert",
                                   cert,
                                   "--key",
                                   key_pem,
                                   NULL};
    if (s3_spawn(&azurite, az_argv, NULL) != 0)
        return -1;
    const char *const tk_argv[] = {"python3", getenv("NIXL_AZ_TOKEN_SERVER"), "%PORT%", "%DIR%",
                                   NULL};
    if (s3_spawn(&tokens, tk_argv, NULL) != 0)
        return -1;
    snprintf(account_url, sizeof(account_url), "https://127.0.0.1:%d/devstoreaccount1",
             azurite.port);
    snprintf(authority, sizeof(authority), "http://127.0.0.1:%d", tokens.port);
    ot_backend = "AZURE_BLOB";
    ot_params[0] = (nixl_param_t){"account_url", account_url};
    ot_params[1] = (nixl_param_t){"container_name", "ctr"};
    ot_params[2] = (nixl_param_t){"ca_bundle", cert};
    ot_nparams = 3;
    return az_use_check(pycheck_fn);
}

static int teardown(void **state)
{
    (void)state;
    s3_server_destroy(&azurite);
    s3_server_destroy(&tokens);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", certdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", certdir);
    return 0;
}

/* A service principal of tenant `mode` at our token server. */
static void use_sp(const char *mode)
{
    clear_ad_env();
    setenv("AZURE_TENANT_ID", mode, 1);
    setenv("AZURE_CLIENT_ID", "cid-1", 1);
    setenv("AZURE_CLIENT_SECRET", "s3cret! &=x", 1); /* form-encoded on the way */
    setenv("AZURE_AUTHORITY_HOST", authority, 1);
}

/* On agent a: the 64 KiB blob `key` written and read back twice (patterns seed, seed + 1,
 * byte-verified); az_check.py then reads what we wrote. */
static void roundtrip_on(nixl_agent_t *a, const char *key, unsigned seed)
{
    char *k = (char *)key;
    reg_objs(a, &k, 1, 1, false);
    char *buf = t_alloc(65536);
    t_reg(a, buf, 65536);
    roundtrip(a, buf, 1, 65536, 1, seed);
    t_dereg(a, buf, 65536);
    free(buf);
    ot_expect_object(key, 65536, seed + 1);
}

/* The service principal's form; WRITE and READ with its token, checked by az_check.py both
 * ways; no token or secret in the DEBUG logs. */
static void test_service_principal(void **state)
{
    (void)state;
    use_sp("ok");
    capture_begin();
    ot_big_roundtrip(NULL, 0, "ad/sp", 65536);
    ot_read_foreign("ad/foreign", "BlobNotFound"); /* az_check.py writes, we read */
    capture_end("Azure AD: token of the service principal", "s3cret");
    expect_request("sp tenant=ok grant_type=client_credentials "
                   "scope=https://storage.azure.com/.default client_id=cid-1 "
                   "secret=s3cret! &=x assertion=- assertion_type=- "
                   "ctype=application/x-www-form-urlencoded");
}

/* A workload identity: the federated token file as the client assertion, re-read at each
 * refresh (3 s tokens here). */
static void test_workload_identity(void **state)
{
    (void)state;
    char file[160], cmd[320];
    snprintf(file, sizeof(file), "%s/federated", certdir);
    snprintf(cmd, sizeof(cmd), "printf 'assert-one\\n' > '%s'", file);
    assert_int_equal(system(cmd), 0);
    clear_ad_env();
    setenv("AZURE_TENANT_ID", "short", 1);
    setenv("AZURE_CLIENT_ID", "wi-cid", 1);
    setenv("AZURE_FEDERATED_TOKEN_FILE", file, 1);
    setenv("AZURE_AUTHORITY_HOST", authority, 1);
    nixl_agent_t *a = agent_with(NULL, 0, NULL, NIXL_SUCCESS, NULL);
    expect_request("sp tenant=short grant_type=client_credentials "
                   "scope=https://storage.azure.com/.default client_id=wi-cid secret=- "
                   "assertion=assert-one "
                   "assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
    snprintf(cmd, sizeof(cmd), "printf 'assert-two' > '%s'", file);
    assert_int_equal(system(cmd), 0);
    sleep(4); /* the first token is refreshed after 2 s, with the new assertion */
    expect_request("client_id=wi-cid secret=- assertion=assert-two");
    roundtrip_on(a, "ad/wi", 20);
    nixl_agent_destroy(a);
    /* a missing file is the engine's error, naming it */
    setenv("AZURE_FEDERATED_TOKEN_FILE", "/nonexistent/token", 1);
    nixl_agent_destroy(agent_with(NULL, 0, NULL, NIXL_ERR_BACKEND,
                                  "cannot read AZURE_FEDERATED_TOKEN_FILE '/nonexistent/token'"));
}

/* App Service's managed identity endpoint (IDENTITY_ENDPOINT + IDENTITY_HEADER), for a
 * user-assigned identity (AZURE_CLIENT_ID); a wrong header is its 401, at creation. */
static void test_app_service(void **state)
{
    (void)state;
    char ep[128];
    snprintf(ep, sizeof(ep), "%s/msi/ok", authority);
    clear_ad_env();
    setenv("IDENTITY_ENDPOINT", ep, 1);
    setenv("IDENTITY_HEADER", "idh-secret", 1);
    setenv("AZURE_CLIENT_ID", "mi-cid", 1);
    ot_big_roundtrip(NULL, 0, "ad/msi", 65536);
    expect_request("msi mode=ok api-version=2019-08-01 resource=https://storage.azure.com/ "
                   "client_id=mi-cid header=idh-secret");
    setenv("IDENTITY_HEADER", "wrong", 1);
    nixl_agent_t *a = agent_with(NULL, 0, NULL, NIXL_ERR_BACKEND,
                                 "managed identity mi-cid (IDENTITY_ENDPOINT) at ");
    assert_non_null(strstr(nixl_last_error(), "HTTP 401: unauthorized: bad X-IDENTITY-HEADER"));
    nixl_agent_destroy(a);
}

/* IMDS only with azure_ad=on (its host from AZURE_POD_IDENTITY_AUTHORITY_HOST); auto without
 * a credential is anonymous (Azurite refuses it); on with nothing listening is an error. */
static void test_imds(void **state)
{
    (void)state;
    clear_ad_env();
    setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", authority, 1);
    nixl_param_t on[] = {{"azure_ad", "on"}};
    int before = count_requests("imds ");
    ot_big_roundtrip(on, 1, "ad/imds", 65536);
    expect_request("imds api-version=2018-02-01 resource=https://storage.azure.com/ "
                   "client_id=- metadata=true");
    /* auto: IMDS is not asked, requests go anonymous and are refused */
    int after = count_requests("imds ");
    assert_true(after > before);
    nixl_param_t au[] = {{"azure_ad", "auto"}};
    expect_fail(au, 1, "HTTP 40");
    nixl_param_t off[] = {{"azure_ad", "off"}};
    expect_fail(off, 1, "HTTP 40");
    assert_int_equal(count_requests("imds "), after);
    char dead[96];
    snprintf(dead, sizeof(dead), "http://127.0.0.1:%d", s3_free_port());
    setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", dead, 1);
    nixl_agent_destroy(agent_with(on, 1, NULL, NIXL_ERR_BACKEND,
                                  "no token from the managed identity (IMDS) at http://127"));
    nixl_param_t bad[] = {{"azure_ad", "maybe"}};
    nixl_agent_destroy(agent_with(bad, 1, NULL, NIXL_ERR_BACKEND, "not one of auto, on, off"));
}

/* 3 s tokens: refreshed after 2 s by the engine's thread; 4.5 s after creation the first one
 * has expired (Azurite would refuse it) and transfers still go, with a later one. */
static void test_refresh(void **state)
{
    (void)state;
    use_sp("short");
    int before = count_requests("sp tenant=short");
    capture_begin();
    nixl_agent_t *a = agent_with(NULL, 0, NULL, NIXL_SUCCESS, NULL);
    assert_int_equal(count_requests("sp tenant=short"), before + 1);
    usleep(4500 * 1000);
    roundtrip_on(a, "ad/refresh", 50);
    int fetched = count_requests("sp tenant=short") - before;
    nixl_agent_destroy(a);
    capture_end("refreshed, valid for", "s3cret");
    fprintf(stderr, "tokens fetched in 4.5 s of 3 s tokens: %d\n", fetched);
    assert_true(fetched >= 3 && fetched <= 6); /* at 0, ~2, ~4 s: never per request */
}

/* Token endpoints that give no token: the engine is not created, and the reason names the
 * credential and the server's error; never the secret. */
static void test_endpoint_errors(void **state)
{
    (void)state;
    static const struct {
        const char *mode, *why;
    } cases[] = {
        {"err400", "HTTP 400: invalid_request: AADSTS90002: Tenant 'err400' not found."},
        {"err401", "HTTP 401: invalid_client: AADSTS7000215: Invalid client secret provided."},
        {"garbage", "HTTP 200: the answer is not the JSON expected"},
        {"huge", "an answer of more than 65536 bytes, refused"},
        {"crlf", "the access_token has a byte that is not visible ASCII"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        use_sp(cases[i].mode);
        nixl_agent_t *a = agent_with(NULL, 0, NULL, NIXL_ERR_BACKEND, cases[i].why);
        fprintf(stderr, "%s: %s\n", cases[i].mode, nixl_last_error());
        assert_non_null(strstr(nixl_last_error(), "service principal (AZURE_CLIENT_ID cid-1"));
        assert_null(strstr(nixl_last_error(), "s3cret"));
        nixl_agent_destroy(a);
    }
}

/* A token for another audience: fetched, then refused by Azurite with its reason. */
static void test_wrong_audience(void **state)
{
    (void)state;
    use_sp("wrongaud");
    expect_fail(NULL, 0, "HTTP 403 AuthenticationFailed");
    expect_fail(NULL, 0, "Invalid token audience.");
    fprintf(stderr, "wrong audience: %s\n", nixl_last_error());
}

/* Tokens never go over http: an http account URL is anonymous with auto, refused with on; a
 * secret never goes to an http authority off loopback. */
static void test_http_refused(void **state)
{
    (void)state;
    use_sp("ok");
    char url[96];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/devstoreaccount1", azurite.port);
    int before = count_requests("sp tenant=ok");
    nixl_param_t p[] = {{"account_url", url}, {"azure_ad", "auto"}};
    nixl_agent_destroy(agent_with(p, 2, NULL, NIXL_SUCCESS, NULL));
    assert_int_equal(count_requests("sp tenant=ok"), before); /* no token asked for */
    p[1].value = "on";
    nixl_agent_destroy(agent_with(p, 2, NULL, NIXL_ERR_BACKEND, "tokens go only over https"));
    setenv("AZURE_AUTHORITY_HOST", "http://login.example.com", 1);
    nixl_agent_destroy(agent_with(NULL, 0, NULL, NIXL_ERR_BACKEND,
                                  "token endpoint http://login.example.com/ok/oauth2/v2.0/token "
                                  "is neither https nor on loopback"));
    assert_int_equal(count_requests("sp tenant=ok"), before);
    clear_ad_env();
}

/* argv[1]: azurite-blob, argv[2]: az_check.py, argv[3]: az_token_server.py. */
int main(int argc, char **argv)
{
    if (argc > 3)
        setenv("NIXL_AZ_TOKEN_SERVER", argv[3], 0);
    int skip = az_need_azurite(argc, argv);
    if (skip)
        return skip;
    if (system("openssl version >/dev/null 2>&1") != 0) {
        fprintf(stderr, "no openssl for the test's certificate\n");
        return 77;
    }
    setenv("NIXL_LOG_LEVEL", "DEBUG", 1); /* every line the library logs is checked */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_service_principal), cmocka_unit_test(test_workload_identity),
        cmocka_unit_test(test_app_service),       cmocka_unit_test(test_imds),
        cmocka_unit_test(test_refresh),           cmocka_unit_test(test_endpoint_errors),
        cmocka_unit_test(test_wrong_audience),    cmocka_unit_test(test_http_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
