/*
 * azure_config.c - the AZURE_BLOB backend's parameters and blob URLs.
 *
 * Reference parameters (an unset or empty value falls back to the environment):
 *   connection_string  AZURE_STORAGE_CONNECTION_STRING: "Key=Value;..." with AccountName,
 *                      AccountKey, BlobEndpoint, DefaultEndpointsProtocol, EndpointSuffix,
 *                      SharedAccessSignature, or UseDevelopmentStorage=true (Azurite's
 *                      well-known account on 127.0.0.1:10000). Wins over account_url.
 *   account_url        AZURE_STORAGE_ACCOUNT_URL: https://<account>.blob.core.windows.net, or
 *                      an emulator's http://host:port/<account>; a "?<SAS>" on it is the SAS
 *   container_name     AZURE_STORAGE_CONTAINER_NAME; required (must exist)
 *   ca_bundle          AZURE_CA_BUNDLE; CA file for https
 *   azure_ad (ours)    auto (default): with account_url and neither SAS nor key, the Azure AD
 *                      credential of the environment (azure_ad.c: service principal, workload
 *                      identity, App Service managed identity); on: also IMDS (an Azure VM's
 *                      managed identity), and no token is an error; off: never Azure AD
 * Ours, for account_url:
 *   account_name       AZURE_STORAGE_ACCOUNT_NAME, AZURE_STORAGE_ACCOUNT; else from the URL
 *   account_key        AZURE_STORAGE_ACCOUNT_KEY, AZURE_STORAGE_KEY: SharedKey signatures
 *   sas_token          AZURE_STORAGE_SAS_TOKEN: appended to every request (wins over a key)
 *   max_single_put_size (32 MiB): blobs of at least this size go as staged blocks
 *   block_size (8 MiB), max_inflight (64), max_descs (65536), stall_timeout_s (30),
 *   connect_timeout_s (10).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "azure_priv.h"
#include "be_param.h"

/* Azurite's published development account. */
#define DEV_ACCOUNT "devstoreaccount1"
#define DEV_KEY "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
#define DEV_URL "http://127.0.0.1:10000/" DEV_ACCOUNT

void az_params_free(nixl_be_engine_t *eng)
{
    az_params_t *az = eng->pd;
    if (az) {
        free(az->account);
        free(az->base);
        free(az->container);
        free(az->sas);
        az_ad_free(az->ad);
        OPENSSL_cleanse(az->key, sizeof(az->key));
        free(az);
        eng->pd = NULL;
    }
    free(eng->p.ca_bundle);
    eng->p.ca_bundle = NULL;
}

/* The connection string's fields that we use. */
typedef struct cs_fields {
    char *name, *key, *endpoint, *proto, *suffix, *sas;
    bool dev;
} cs_fields_t;

static void cs_free(cs_fields_t *f)
{
    free(f->name);
    free(f->key);
    free(f->endpoint);
    free(f->proto);
    free(f->suffix);
    free(f->sas);
}

static nixl_status_t cs_parse(const nixl_be_init_t *init, const char *cs, cs_fields_t *f)
{
    static const char *const keys[] = {"AccountName", "AccountKey", "BlobEndpoint",
                                       "DefaultEndpointsProtocol", "EndpointSuffix",
                                       "SharedAccessSignature"};
    const char *p = cs;
    while (*p) {
        size_t n = strcspn(p, ";");
        const char *eq = memchr(p, '=', n);
        if (n && !eq)
            return NIXL_BE_ERR(init->host, NIXL_ERR_INVALID_PARAM,
                               "connection_string: '%.*s' is not Key=Value", (int)n, p);
        if (n) {
            size_t kl = (size_t)(eq - p), vl = n - kl - 1;
            char **slots[] = {&f->name, &f->key, &f->endpoint, &f->proto, &f->suffix, &f->sas};
            size_t k = 0;
            for (; k < sizeof(keys) / sizeof(keys[0]); k++)
                if (strlen(keys[k]) == kl && !strncasecmp(p, keys[k], kl))
                    break;
            if (k < sizeof(keys) / sizeof(keys[0])) {
                free(*slots[k]);
                if (!(*slots[k] = strndup(eq + 1, vl)))
                    return NIXL_BE_ERR(init->host, NIXL_ERR_UNKNOWN, "out of memory");
            } else if (kl == 21 && !strncasecmp(p, "UseDevelopmentStorage", kl)) {
                f->dev = vl == 4 && !strncasecmp(eq + 1, "true", 4);
            } /* other fields (QueueEndpoint, ...) do not concern blobs */
        }
        p += n;
        if (*p == ';')
            p++;
    }
    return NIXL_SUCCESS;
}

/* The account's name from its URL: the host's first label (<account>.blob.<suffix>), else the
 * first path segment (an emulator's http://host:port/<account>). */
static char *name_from_url(const char *url)
{
    if (!url)
        return NULL;
    const char *h = strstr(url, "://");
    h = h ? h + 3 : url;
    size_t hl = strcspn(h, "/?");
    const char *dot = memchr(h, '.', hl);
    if (dot && hl > 6 && memmem(h, hl, ".blob.", 6))
        return strndup(h, (size_t)(dot - h));
    const char *path = h + hl;
    if (*path != '/' || !path[1] || path[1] == '?')
        return NULL;
    return strndup(path + 1, strcspn(path + 1, "/?"));
}

static nixl_status_t set_key(const nixl_be_init_t *init, az_params_t *az, const char *b64)
{
    size_t n = strlen(b64), pad = 0;
    unsigned char tmp[AZ_KEY_MAX * 2];
    if (n == 0 || n % 4 || n > sizeof(tmp) * 4 / 3 ||
        strspn(b64, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") != n)
        return NIXL_BE_ERR(init->host, NIXL_ERR_INVALID_PARAM,
                           "the account key is not base64 (%zu characters)", n);
    int len = EVP_DecodeBlock(tmp, (const unsigned char *)b64, (int)n);
    while (pad < 2 && n > pad && b64[n - 1 - pad] == '=')
        pad++;
    if (len < 0 || (size_t)len - pad > AZ_KEY_MAX || (size_t)len <= pad)
        return NIXL_BE_ERR(init->host, NIXL_ERR_INVALID_PARAM,
                           "the account key is not base64 of at most %d bytes", AZ_KEY_MAX);
    az->key_len = (size_t)len - pad;
    memcpy(az->key, tmp, az->key_len);
    OPENSSL_cleanse(tmp, sizeof(tmp));
    return NIXL_SUCCESS;
}

/* base: the URL without its query and trailing '/'; a query is the SAS. */
static nixl_status_t set_base(const nixl_be_init_t *init, az_params_t *az, const char *url,
                              const char *what)
{
    const char *sep = strstr(url, "://");
    size_t sl = sep ? (size_t)(sep - url) : 0;
    if (!sep || !((sl == 4 && !strncasecmp(url, "http", 4)) ||
                  (sl == 5 && !strncasecmp(url, "https", 5))) || !sep[3] || sep[3] == '/')
        return NIXL_BE_ERR(init->host, NIXL_ERR_INVALID_PARAM,
                           "%s '%s' must be http(s)://host[:port][/path]", what, url);
    size_t n = strcspn(url, "?");
    while (n > sl + 3 && url[n - 1] == '/')
        n--;
    if (url[strcspn(url, "?")] == '?' && url[strcspn(url, "?") + 1] && !az->sas &&
        !(az->sas = strdup(url + strcspn(url, "?") + 1)))
        return NIXL_BE_ERR(init->host, NIXL_ERR_UNKNOWN, "out of memory");
    if (!(az->base = strndup(url, n)))
        return NIXL_BE_ERR(init->host, NIXL_ERR_UNKNOWN, "out of memory");
    return NIXL_SUCCESS;
}

static nixl_status_t from_conn_string(const nixl_be_init_t *init, az_params_t *az, const char *cs)
{
    cs_fields_t f = {0};
    nixl_status_t st = cs_parse(init, cs, &f);
    char url[1024];
    if (st == NIXL_SUCCESS && f.dev) {
        st = set_base(init, az, f.endpoint ? f.endpoint : DEV_URL, "BlobEndpoint");
        if (st == NIXL_SUCCESS && !(az->account = strdup(DEV_ACCOUNT)))
            st = NIXL_BE_ERR(init->host, NIXL_ERR_UNKNOWN, "out of memory");
        if (st == NIXL_SUCCESS)
            st = set_key(init, az, DEV_KEY);
        cs_free(&f);
        return st;
    }
    if (st == NIXL_SUCCESS && f.sas && *f.sas && !(az->sas = strdup(f.sas + (*f.sas == '?'))))
        st = NIXL_BE_ERR(init->host, NIXL_ERR_UNKNOWN, "out of memory");
    if (st == NIXL_SUCCESS && !f.endpoint && !f.name)
        st = NIXL_BE_ERR(init->host, NIXL_ERR_INVALID_PARAM,
                         "connection_string has neither BlobEndpoint nor AccountName");
    if (st == NIXL_SUCCESS) {
        if (!f.endpoint)
            snprintf(url, sizeof(url), "%s://%s.blob.%s", f.proto ? f.proto : "https", f.name,
                     f.suffix ? f.suffix : "core.windows.net");
        st = set_base(init, az, f.endpoint ? f.endpoint : url, "BlobEndpoint");
    }
    if (st == NIXL_SUCCESS && !(az->account = f.name ? strdup(f.name) : name_from_url(az->base)))
        st = NIXL_BE_ERR(init->host, NIXL_ERR_INVALID_PARAM,
                         "connection_string: no AccountName, and none in BlobEndpoint '%s'",
                         az->base);
    if (st == NIXL_SUCCESS && f.key && *f.key)
        st = set_key(init, az, f.key);
    cs_free(&f);
    return st;
}

nixl_status_t az_params_parse(const nixl_be_init_t *init, nixl_be_engine_t *eng)
{
    static const char *const env_cs[] = {"AZURE_STORAGE_CONNECTION_STRING", NULL};
    static const char *const env_url[] = {"AZURE_STORAGE_ACCOUNT_URL", NULL};
    static const char *const env_ctr[] = {"AZURE_STORAGE_CONTAINER_NAME", NULL};
    static const char *const env_name[] = {"AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT",
                                           NULL};
    static const char *const env_key[] = {"AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_KEY", NULL};
    static const char *const env_sas[] = {"AZURE_STORAGE_SAS_TOKEN", NULL};
    static const char *const env_ca[] = {"AZURE_CA_BUNDLE", NULL};
    if (!obj_params_common(init, &eng->p, "max_single_put_size", "block_size", 1,
                           4000ull << 20))
        return NIXL_ERR_INVALID_PARAM;
    az_params_t *az = calloc(1, sizeof(*az));
    if (!(eng->pd = az) || !obj_dup(&eng->p.ca_bundle, obj_param_env(init, "ca_bundle", env_ca)))
        return NIXL_BE_ERR(init->host, NIXL_ERR_UNKNOWN, "out of memory");
    const char *ctr = obj_param_env(init, "container_name", env_ctr);
    if (!ctr)
        return NIXL_BE_ERR(init->host, NIXL_ERR_INVALID_PARAM,
                           "no container: set the 'container_name' parameter or "
                           "AZURE_STORAGE_CONTAINER_NAME");
    if (strlen(ctr) > 63 || strspn(ctr, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(ctr))
        return NIXL_BE_ERR(init->host, NIXL_ERR_INVALID_PARAM,
                           "container '%s' is not a container name (lowercase letters, digits "
                           "and '-', at most 63)", ctr);
    if (!(az->container = strdup(ctr)))
        return NIXL_BE_ERR(init->host, NIXL_ERR_UNKNOWN, "out of memory");
    const char *sas = obj_param_env(init, "sas_token", env_sas);
    if (sas && !(az->sas = strdup(sas + (*sas == '?'))))
        return NIXL_BE_ERR(init->host, NIXL_ERR_UNKNOWN, "out of memory");
    const char *cs = obj_param_env(init, "connection_string", env_cs);
    nixl_status_t st;
    if (cs) {
        st = from_conn_string(init, az, cs);
    } else {
        const char *url = obj_param_env(init, "account_url", env_url);
        if (!url)
            return NIXL_BE_ERR(init->host, NIXL_ERR_INVALID_PARAM,
                               "no account: set 'connection_string' or 'account_url' (or "
                               "AZURE_STORAGE_CONNECTION_STRING / AZURE_STORAGE_ACCOUNT_URL)");
        st = set_base(init, az, url, "account_url");
        const char *name = obj_param_env(init, "account_name", env_name);
        if (st == NIXL_SUCCESS && !(az->account = name ? strdup(name) : name_from_url(az->base)))
            st = NIXL_BE_ERR(init->host, NIXL_ERR_INVALID_PARAM,
                             "account_url '%s' names no account: set 'account_name' or "
                             "AZURE_STORAGE_ACCOUNT_NAME", az->base);
        const char *key = obj_param_env(init, "account_key", env_key);
        if (st == NIXL_SUCCESS && key)
            st = set_key(init, az, key);
    }
    if (st != NIXL_SUCCESS)
        return st;
    az->auth = az->sas ? "SAS" : az->key_len ? "SharedKey" : "anonymous";
    /* The reference's DefaultAzureCredential: account_url alone (a connection string without
     * a key or SAS stays anonymous there too). */
    const char *mode = nixl_be_param(init, "azure_ad");
    if (!cs && !az->sas && !az->key_len)
        return az_ad_setup(init, eng, mode && *mode ? mode : NULL);
    if (mode && *mode && strcasecmp(mode, "auto") && strcasecmp(mode, "on") &&
        strcasecmp(mode, "off"))
        return NIXL_BE_ERR(init->host, NIXL_ERR_INVALID_PARAM,
                           "azure_ad '%s' is not one of auto, on, off", mode);
    return NIXL_SUCCESS;
}

char *az_url(const nixl_be_engine_t *eng, const char *key, size_t klen)
{
    const az_params_t *az = eng->pd;
    size_t n = strlen(az->base) + strlen(az->container) + 3 * klen + 4;
    char *u = malloc(n);
    if (u) /* blob names are sent (and signed) percent-encoded, '/' kept */
        obj_pct(key, klen, true, u + snprintf(u, n, "%s/%s/", az->base, az->container));
    return u;
}
