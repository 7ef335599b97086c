/*
 * azure_ad.c - Microsoft Entra ID (Azure AD) tokens for the AZURE_BLOB backend: what the
 * reference's DefaultAzureCredential gives an account_url without a SAS or a key, in C over
 * libcurl. The credential is the first of these that applies:
 *   1. service principal: AZURE_TENANT_ID + AZURE_CLIENT_ID + AZURE_CLIENT_SECRET ->
 *      POST {AZURE_AUTHORITY_HOST}/{tenant}/oauth2/v2.0/token, grant_type=client_credentials,
 *      scope=https://storage.azure.com/.default;
 *   2. workload identity: AZURE_TENANT_ID + AZURE_CLIENT_ID + AZURE_FEDERATED_TOKEN_FILE -> the
 *      same with the file's contents as a jwt-bearer client_assertion (read at each fetch: the
 *      platform rotates it);
 *   3. managed identity, App Service style: IDENTITY_ENDPOINT + IDENTITY_HEADER -> GET
 *      ?api-version=2019-08-01&resource=https://storage.azure.com/ with X-IDENTITY-HEADER;
 *   4. managed identity through IMDS (only with azure_ad=on: probing a link-local address on
 *      every machine would cost a timeout): GET http://169.254.169.254/metadata/identity/
 *      oauth2/token?api-version=2018-02-01&resource=... with "Metadata: true", a 1 s connect
 *      timeout (AZURE_POD_IDENTITY_AUTHORITY_HOST, as the SDKs read it, replaces the host).
 * A managed identity is asked for AZURE_CLIENT_ID's identity when that is set.
 *
 * The first token is fetched at engine creation (a failure is the engine's error, naming the
 * credential and the server's error and error_description). A thread of ours refreshes it
 * before it expires: 5 minutes before, or at half its life when that is shorter; a failed
 * refresh is logged and retried (2 s, doubling to 60 s) while the old token is kept. Every
 * request reads the current token under the mutex (az_ad_auth_header). Tokens, secrets and
 * assertions never go into a message or a log line; their buffers are wiped when dropped.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>

#include "azure_ad_json.h"
#include "azure_priv.h"

#define AZ_SCOPE "https://storage.azure.com/.default"
#define AZ_RESOURCE "https://storage.azure.com/"
#define AZ_AUTHORITY "https://login.microsoftonline.com"
#define AZ_IMDS "http://169.254.169.254"
#define AZ_REFRESH_EARLY 300 /* s before expiry a token is refreshed */
#define AZ_RETRY_MIN 2       /* s: first retry of a failed refresh, doubling */
#define AZ_RETRY_MAX 60
#define AZ_ASSERTION_MAX (64u << 10)

enum az_ad_kind {
    AZ_AD_SP,
    AZ_AD_WI,
    AZ_AD_APPSVC,
    AZ_AD_IMDS
};

struct az_ad {
    enum az_ad_kind kind;
    char what[256]; /* the credential for messages: "service principal (client ..)" */
    char *url;      /* the token endpoint (with its query for a managed identity) */
    char *client_id, *tenant;
    char *secret;      /* service principal */
    char *assert_file; /* workload identity */
    char *id_header;   /* App Service: "X-IDENTITY-HEADER: ..." */
    long connect_s, timeout_s;
    const nixl_host_t *host;
    pthread_mutex_t mu;
    pthread_cond_t cv;  /* on CLOCK_MONOTONIC: stop */
    char *token;        /* under mu */
    int64_t expires_at; /* under mu */
    int64_t refresh_at; /* refresher thread only (set before it starts) */
    atomic_bool stop;
    pthread_t thread;
    bool started;
};

/* A growing buffer for an answer, capped at AZ_TOKEN_BODY_MAX. */
typedef struct ans_buf {
    char *p;
    size_t n;
    bool over;
} ans_buf_t;

static size_t on_answer(char *p, size_t sz, size_t nm, void *arg)
{
    ans_buf_t *b = arg;
    size_t len = sz * nm;
    if (len > AZ_TOKEN_BODY_MAX - b->n) {
        b->over = true;
        return 0; /* curl ends the exchange (CURLE_WRITE_ERROR) */
    }
    memcpy(b->p + b->n, p, len);
    b->n += len;
    return len;
}

static int on_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)a, (void)b, (void)c, (void)d;
    const struct az_ad *ad = arg;
    return atomic_load(&ad->stop) ? 1 : 0; /* destroy does not wait for a slow endpoint */
}

/* The federated token file's contents (trailing whitespace dropped), or NULL with why. */
static char *read_assertion(const char *path, char *why, size_t whylen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(why, whylen, "cannot read AZURE_FEDERATED_TOKEN_FILE '%s': %s", path,
                 strerror(errno));
        return NULL;
    }
    char *s = malloc(AZ_ASSERTION_MAX + 1);
    size_t n = s ? fread(s, 1, AZ_ASSERTION_MAX + 1, f) : 0;
    bool err = ferror(f);
    fclose(f);
    if (!s || err || n > AZ_ASSERTION_MAX) {
        snprintf(why, whylen, "AZURE_FEDERATED_TOKEN_FILE '%s': %s", path,
                 !s    ? "out of memory"
                 : err ? "read error"
                       : "larger than 64 KiB");
        free(s);
        return NULL;
    }
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    s[n] = '\0';
    if (!n) {
        snprintf(why, whylen, "AZURE_FEDERATED_TOKEN_FILE '%s' is empty", path);
        free(s);
        return NULL;
    }
    return s;
}

/* "&name=<escaped v>" appended to the form body *body (realloc); false when out of memory. */
static bool form_add(CURL *h, char **body, size_t *len, const char *name, const char *v)
{
    char *e = curl_easy_escape(h, v, 0);
    if (!e)
        return false;
    size_t el = strlen(e), nl = strlen(name), need = *len + nl + el + 3;
    char *nb = realloc(*body, need);
    if (nb) {
        *len += (size_t)snprintf(nb + *len, need - *len, "%s%s=%s", *len ? "&" : "", name, e);
        *body = nb;
    }
    OPENSSL_cleanse(e, el);
    curl_free(e);
    return nb != NULL;
}

static void wipe_free(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

/* One token from the credential's endpoint into ans; false with the reason in why. */
static bool fetch(struct az_ad *ad, az_token_answer_t *ans, char *why, size_t whylen)
{
    char r[600] = "", cerr[CURL_ERROR_SIZE] = "";
    ans_buf_t b = {.p = malloc(AZ_TOKEN_BODY_MAX)};
    char *form = NULL, *assertion = NULL;
    size_t flen = 0;
    struct curl_slist *hdrs = NULL, *t;
    bool ok = false;
    CURL *h = b.p ? curl_easy_init() : NULL;
    if (!h) {
        snprintf(r, sizeof(r), "out of memory");
        goto out;
    }
    if (ad->kind == AZ_AD_SP || ad->kind == AZ_AD_WI) {
        if (ad->kind == AZ_AD_WI && !(assertion = read_assertion(ad->assert_file, r, sizeof(r))))
            goto out;
        bool f = form_add(h, &form, &flen, "grant_type", "client_credentials") &&
                 form_add(h, &form, &flen, "client_id", ad->client_id) &&
                 form_add(h, &form, &flen, "scope", AZ_SCOPE) &&
                 (ad->kind == AZ_AD_SP
                      ? form_add(h, &form, &flen, "client_secret", ad->secret)
                      : form_add(h, &form, &flen, "client_assertion_type",
                                 "urn:ietf:params:oauth:client-assertion-type:jwt-bearer") &&
                            form_add(h, &form, &flen, "client_assertion", assertion));
        if (!f) {
            snprintf(r, sizeof(r), "out of memory");
            goto out;
        }
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, form);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)flen);
        if ((t = curl_slist_append(hdrs, "Content-Type: application/x-www-form-urlencoded")))
            hdrs = t;
    } else if (ad->kind == AZ_AD_APPSVC) {
        if ((t = curl_slist_append(hdrs, ad->id_header)))
            hdrs = t;
    } else if ((t = curl_slist_append(hdrs, "Metadata: true"))) {
        hdrs = t;
    }
    if ((t = curl_slist_append(hdrs, "Accept: application/json")))
        hdrs = t;
    curl_easy_setopt(h, CURLOPT_URL, ad->url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_answer);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    if (ad->kind == AZ_AD_APPSVC || ad->kind == AZ_AD_IMDS) /* local: never through a proxy */
        curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, ad->connect_s);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, ad->timeout_s);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, ad);
    CURLcode code = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (b.over) {
        snprintf(r, sizeof(r), "HTTP %ld: an answer of more than %u bytes, refused", status,
                 AZ_TOKEN_BODY_MAX);
    } else if (code != CURLE_OK) {
        snprintf(r, sizeof(r), "%s%s%s", curl_easy_strerror(code), cerr[0] ? ": " : "", cerr);
    } else {
        char pr[520];
        ok = az_token_parse(b.p, b.n, (int64_t)time(NULL), ans, pr, sizeof(pr));
        if (ok && (status < 200 || status > 299)) { /* a token with an error status: no */
            OPENSSL_cleanse(ans->token, sizeof(ans->token));
            ok = false;
            snprintf(pr, sizeof(pr), "an error status with a token");
        }
        if (!ok)
            snprintf(r, sizeof(r), "HTTP %ld: %s", status, pr);
    }
out:
    if (!ok)
        snprintf(why, whylen, "no token from the %s at %s: %s", ad->what, ad->url, r);
    if (h)
        curl_easy_cleanup(h);
    curl_slist_free_all(hdrs);
    if (b.p) {
        OPENSSL_cleanse(b.p, b.n);
        free(b.p);
    }
    if (form) {
        OPENSSL_cleanse(form, flen);
        free(form);
    }
    wipe_free(assertion);
    return ok;
}

/* When a token of lifetime `life` (s) is refreshed: 5 minutes early, or at half its life. */
static int64_t refresh_time(int64_t fetched, int64_t expires_at)
{
    int64_t life = expires_at - fetched, early = life / 2;
    if (early > AZ_REFRESH_EARLY)
        early = AZ_REFRESH_EARLY;
    return expires_at - early;
}

/* Take the answer's token as the current one (under mu). */
static bool install(struct az_ad *ad, const az_token_answer_t *ans)
{
    char *tok = malloc(ans->token_len + 1);
    if (!tok)
        return false;
    memcpy(tok, ans->token, ans->token_len + 1);
    pthread_mutex_lock(&ad->mu);
    char *old = ad->token;
    ad->token = tok;
    ad->expires_at = ans->expires_at;
    pthread_mutex_unlock(&ad->mu);
    wipe_free(old);
    return true;
}

/* Sleep until wall-clock second `until` or stop (mu held). The wait is measured from the
 * wall clock to the nanosecond (a whole-second difference could wake up to a second late, at
 * a short token's expiry) and carried out on the monotonic clock. */
static void wait_until(struct az_ad *ad, int64_t until)
{
    struct timespec wall, ts;
    clock_gettime(CLOCK_REALTIME, &wall);
    int64_t left_ns = (until - (int64_t)wall.tv_sec) * 1000000000ll - wall.tv_nsec;
    if (left_ns <= 0)
        return;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t ns = ts.tv_nsec + left_ns % 1000000000ll;
    ts.tv_sec += (time_t)(left_ns / 1000000000ll + ns / 1000000000ll);
    ts.tv_nsec = (long)(ns % 1000000000ll);
    pthread_cond_timedwait(&ad->cv, &ad->mu, &ts);
}

static void *refresher(void *arg)
{
    struct az_ad *ad = arg;
    az_token_answer_t *ans = malloc(sizeof(*ans));
    int64_t retry = AZ_RETRY_MIN;
    pthread_mutex_lock(&ad->mu);
    while (!atomic_load(&ad->stop)) {
        if ((int64_t)time(NULL) < ad->refresh_at) {
            wait_until(ad, ad->refresh_at);
            continue;
        }
        pthread_mutex_unlock(&ad->mu);
        char why[OBJ_ERR_MAX];
        int64_t now = (int64_t)time(NULL);
        bool ok = ans && fetch(ad, ans, why, sizeof(why));
        if (!ans)
            snprintf(why, sizeof(why), "out of memory");
        else if (ok && !install(ad, ans)) {
            snprintf(why, sizeof(why), "out of memory");
            ok = false;
        }
        if (ans)
            OPENSSL_cleanse(ans->token, sizeof(ans->token));
        pthread_mutex_lock(&ad->mu);
        if (atomic_load(&ad->stop))
            break;
        if (ok) {
            ad->refresh_at = refresh_time(now, ad->expires_at);
            retry = AZ_RETRY_MIN;
            NIXL_BE_LOG(ad->host, NIXL_LOG_DEBUG,
                        "Azure AD: token of the %s refreshed, valid "
                        "for %lld s",
                        ad->what, (long long)(ad->expires_at - now));
        } else {
            NIXL_BE_LOG(ad->host, NIXL_LOG_WARN,
                        "Azure AD: refresh failed (the current token "
                        "expires in %lld s; next try in %lld s): %s",
                        (long long)(ad->expires_at - now), (long long)retry, why);
            ad->refresh_at = now + retry;
            retry = retry * 2 > AZ_RETRY_MAX ? AZ_RETRY_MAX : retry * 2;
        }
    }
    pthread_mutex_unlock(&ad->mu);
    free(ans);
    return NULL;
}

void az_ad_free(struct az_ad *ad)
{
    if (!ad)
        return;
    if (ad->started) {
        pthread_mutex_lock(&ad->mu);
        atomic_store(&ad->stop, true);
        pthread_cond_broadcast(&ad->cv);
        pthread_mutex_unlock(&ad->mu);
        pthread_join(ad->thread, NULL);
    }
    pthread_cond_destroy(&ad->cv);
    pthread_mutex_destroy(&ad->mu);
    wipe_free(ad->token);
    wipe_free(ad->secret);
    wipe_free(ad->id_header);
    free(ad->url);
    free(ad->client_id);
    free(ad->tenant);
    free(ad->assert_file);
    free(ad);
}

bool az_ad_auth_header(struct az_ad *ad, struct curl_slist **l)
{
    pthread_mutex_lock(&ad->mu);
    size_t n = strlen(ad->token) + 32;
    char *h = malloc(n);
    if (h)
        snprintf(h, n, "Authorization: Bearer %s", ad->token);
    pthread_mutex_unlock(&ad->mu);
    if (!h)
        return false;
    bool ok = obj_add_hdr(l, h);
    OPENSSL_cleanse(h, n);
    free(h);
    return ok;
}

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* base (no trailing '/') + path, or NULL when out of memory. */
static char *url_join(const char *base, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *url_join(const char *base, const char *fmt, ...)
{
    char tail[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tail, sizeof(tail), fmt, ap);
    va_end(ap);
    size_t bl = strlen(base);
    while (bl && base[bl - 1] == '/')
        bl--;
    size_t n = bl + strlen(tail) + 1;
    char *u = malloc(n);
    if (u)
        snprintf(u, n, "%.*s%s", (int)bl, base, tail);
    return u;
}

/* A token endpoint that is sent a secret or an assertion: https, or http on loopback (a
 * test's). */
static bool safe_authority(const char *url)
{
    if (!strncasecmp(url, "https://", 8))
        return true;
    static const char *const local[] = {"http://127.0.0.1", "http://localhost", "http://[::1]"};
    for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++) {
        size_t n = strlen(local[i]);
        if (!strncasecmp(url, local[i], n) && (url[n] == ':' || url[n] == '/' || !url[n]))
            return true;
    }
    return false;
}

/* The credential from the environment (IMDS only when imds) into ad: 1, 0 when none applies,
 * -1 when out of memory. */
static int choose(struct az_ad *ad, bool imds)
{
    const char *tenant = env("AZURE_TENANT_ID"), *client = env("AZURE_CLIENT_ID");
    const char *secret = env("AZURE_CLIENT_SECRET"), *file = env("AZURE_FEDERATED_TOKEN_FILE");
    const char *authority = env("AZURE_AUTHORITY_HOST");
    const char *ie = env("IDENTITY_ENDPOINT"), *ih = env("IDENTITY_HEADER");
    bool sp = tenant && client && (secret || file), mi = ie && ih;
    if (!sp && !mi && !imds)
        return 0;
    CURL *h = curl_easy_init();
    char cid[160] = "", *ecid = NULL, *et = NULL;
    if (!h || (client && !(ecid = curl_easy_escape(h, client, 0))) ||
        (sp && !(et = curl_easy_escape(h, tenant, 0)))) {
        curl_free(ecid);
        if (h)
            curl_easy_cleanup(h);
        return -1;
    }
    if (ecid)
        snprintf(cid, sizeof(cid), "&client_id=%.140s", ecid);
    bool ok;
    if (sp) {
        ad->kind = secret ? AZ_AD_SP : AZ_AD_WI;
        ok = obj_dup(&ad->tenant, tenant) && obj_dup(&ad->client_id, client) &&
             (ad->url = url_join(authority ? authority : AZ_AUTHORITY, "/%s/oauth2/v2.0/token",
                                 et)) &&
             (secret ? obj_dup(&ad->secret, secret) : obj_dup(&ad->assert_file, file));
        snprintf(ad->what, sizeof(ad->what), "%s (AZURE_CLIENT_ID %.64s, tenant %.64s)",
                 secret ? "service principal" : "workload identity", client, tenant);
    } else if (mi) {
        size_t n = strlen(ih) + 24;
        ad->kind = AZ_AD_APPSVC;
        ok = (ad->id_header = malloc(n)) &&
             (ad->url = url_join(ie, "%sapi-version=2019-08-01&resource=%s%s",
                                 strchr(ie, '?') ? "&" : "?", AZ_RESOURCE, cid));
        if (ad->id_header)
            snprintf(ad->id_header, n, "X-IDENTITY-HEADER: %s", ih);
        snprintf(ad->what, sizeof(ad->what), "managed identity%s%.64s (IDENTITY_ENDPOINT)",
                 client ? " " : "", client ? client : "");
    } else {
        const char *host = env("AZURE_POD_IDENTITY_AUTHORITY_HOST");
        ad->kind = AZ_AD_IMDS;
        ok = (ad->url = url_join(host ? host : AZ_IMDS,
                                 "/metadata/identity/oauth2/token?"
                                 "api-version=2018-02-01&resource=%s%s",
                                 AZ_RESOURCE, cid)) != NULL;
        ad->connect_s = 1; /* nothing there is the common case off Azure */
        snprintf(ad->what, sizeof(ad->what), "managed identity%s%.64s (IMDS)", client ? " " : "",
                 client ? client : "");
    }
    curl_free(ecid);
    curl_free(et);
    curl_easy_cleanup(h);
    return ok ? 1 : -1;
}

/* The engine's error st with the reason, after dropping ad. */
static nixl_status_t give_up(const nixl_host_t *host, struct az_ad *ad, nixl_status_t st,
                             const char *why)
{
    az_ad_free(ad);
    return NIXL_BE_ERR(host, st, "%s", why);
}

nixl_status_t az_ad_setup(const nixl_be_init_t *init, nixl_be_engine_t *eng, const char *mode)
{
    az_params_t *az = eng->pd;
    bool on = mode && !strcasecmp(mode, "on");
    if (mode && !on && strcasecmp(mode, "auto") && strcasecmp(mode, "off"))
        return NIXL_BE_ERR(init->host, NIXL_ERR_INVALID_PARAM,
                           "azure_ad '%s' is not one of auto, on, off", mode);
    if (mode && !strcasecmp(mode, "off"))
        return NIXL_SUCCESS;
    struct az_ad *ad = calloc(1, sizeof(*ad));
    if (!ad)
        return NIXL_BE_ERR(init->host, NIXL_ERR_UNKNOWN, "out of memory");
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&ad->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&ad->mu, NULL);
    ad->host = init->host;
    ad->connect_s = (long)eng->p.connect_s;
    ad->timeout_s = (long)eng->p.stall_s;
    int c = choose(ad, on);
    if (c <= 0) {
        az_ad_free(ad);
        return c ? NIXL_BE_ERR(init->host, NIXL_ERR_UNKNOWN, "out of memory")
                 : NIXL_SUCCESS; /* auto, no credential set: anonymous requests */
    }
    char why[OBJ_ERR_MAX];
    if (strncasecmp(az->base, "https://", 8)) {
        /* A bearer token is a credential: never over plain http (Azure refuses it too). */
        if (!on) {
            NIXL_BE_LOG(init->host, NIXL_LOG_INFO,
                        "Azure AD: the %s is not used over http "
                        "(%s): anonymous requests",
                        ad->what, az->base);
            az_ad_free(ad);
            return NIXL_SUCCESS;
        }
        snprintf(why, sizeof(why),
                 "azure_ad=on: the %s's tokens go only over https, and "
                 "account_url is %s",
                 ad->what, az->base);
        return give_up(init->host, ad, NIXL_ERR_INVALID_PARAM, why);
    }
    if ((ad->kind == AZ_AD_SP || ad->kind == AZ_AD_WI) && !safe_authority(ad->url)) {
        snprintf(why, sizeof(why),
                 "Azure AD: the %s's token endpoint %s is neither https nor "
                 "on loopback (AZURE_AUTHORITY_HOST)",
                 ad->what, ad->url);
        return give_up(init->host, ad, NIXL_ERR_INVALID_PARAM, why);
    }
    az_token_answer_t *ans = malloc(sizeof(*ans));
    int64_t now = (int64_t)time(NULL);
    if (!ans || !fetch(ad, ans, why, sizeof(why))) {
        if (!ans)
            snprintf(why, sizeof(why), "out of memory");
        free(ans);
        az_ad_free(ad);
        return NIXL_BE_ERR(init->host, NIXL_ERR_BACKEND, "Azure AD: %s", why);
    }
    bool ok = install(ad, ans);
    OPENSSL_cleanse(ans->token, sizeof(ans->token));
    free(ans);
    ad->refresh_at = refresh_time(now, ad->expires_at);
    long long life = (long long)(ad->expires_at - now); /* the refresher owns it from here */
    int rc = ok ? pthread_create(&ad->thread, NULL, refresher, ad) : ENOMEM;
    if (rc != 0) {
        az_ad_free(ad);
        return NIXL_BE_ERR(init->host, NIXL_ERR_BACKEND,
                           "Azure AD: cannot start the token "
                           "refresher: %s",
                           strerror(rc));
    }
    ad->started = true;
    NIXL_BE_LOG(init->host, NIXL_LOG_INFO, "Azure AD: token of the %s from %s, valid for %lld s",
                ad->what, ad->url, life);
    az->ad = ad;
    snprintf(az->auth_buf, sizeof(az->auth_buf), "Azure AD %s", ad->what);
    az->auth = az->auth_buf;
    return NIXL_SUCCESS;
}
