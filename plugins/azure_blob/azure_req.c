/*
 * azure_req.c - what an Azure Blob exchange sends: Get Blob with x-ms-range, Put Blob (a
 * BlockBlob), Put Block and Put Block List for staged blocks, Get Blob Properties (HEAD); and
 * how it is authorized: a SAS token appended to the query, or a SharedKey signature
 * (HMAC-SHA256 with the account key of the canonical string of the request), or an Azure AD
 * bearer token (the current one of azure_ad.c), or nothing.
 *
 * Block ids: the base64 of the block's 0-based index as six decimal digits, the same length for
 * every block of a blob (which Azure requires), so a retried post stages the same ids again.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "azure_priv.h"

/* The block id of part k (8 base64 characters). */
static void block_id(size_t k, char out[16])
{
    char raw[8];
    snprintf(raw, sizeof(raw), "%06zu", k % 1000000);
    EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)raw, 6);
}

void az_query(const nixl_be_engine_t *eng, int kind, const char *upload_id, size_t part, char *q,
              size_t qlen)
{
    (void)upload_id;
    const az_params_t *az = eng->pd;
    char id[16], enc[48];
    size_t n = 0;
    q[0] = '\0';
    if (kind == OBJ_MPU_PART) {
        block_id(part, id);
        obj_pct(id, strlen(id), false, enc);
        n = (size_t)snprintf(q, qlen, "comp=block&blockid=%s", enc);
    } else if (kind == OBJ_MPU_DONE) {
        n = (size_t)snprintf(q, qlen, "comp=blocklist");
    }
    if (az->sas && n < qlen)
        snprintf(q + n, qlen - n, "%s%s", n ? "&" : "", az->sas);
}

/* <BlockList> naming every block of the job, in order. */
static char *block_list(const obj_job_t *job, size_t *len)
{
    size_t cap = 96 + job->nparts * 32;
    char *s = malloc(cap), id[16];
    if (!s)
        return NULL;
    size_t n = (size_t)snprintf(s, cap, "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>");
    for (size_t i = 0; i < job->nparts; i++) {
        block_id(i, id);
        n += (size_t)snprintf(s + n, cap - n, "<Latest>%s</Latest>", id);
    }
    n += (size_t)snprintf(s + n, cap - n, "</BlockList>");
    *len = n;
    return s;
}

/* Append the header "name: v". */
static bool add_kv(struct curl_slist **l, const char *name, const char *v)
{
    char h[512];
    snprintf(h, sizeof(h), "%s: %s", name, v);
    return obj_add_hdr(l, h);
}

/* The SharedKey Authorization header of the request: the canonical string is the verb, the
 * standard headers we send (Content-Length, Content-Type), our x-ms-* headers sorted, and the
 * resource (/account/path plus the query's parameters, sorted, decoded). */
static bool shared_key(const az_params_t *az, obj_xfer_t *x, const char *verb, size_t clen,
                       const char *ctype, const char *xms)
{
    char sts[8192], num[24] = "", mac_b64[64], h[600];
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    const char *path = strstr(x->url, "://");
    path = path ? strchr(path + 3, '/') : NULL;
    if (!path)
        return false;
    size_t plen = strcspn(path, "?");
    if (clen)
        snprintf(num, sizeof(num), "%zu", clen);
    int n = snprintf(sts, sizeof(sts), "%s\n\n\n%s\n\n%s\n\n\n\n\n\n\n%s/%s%.*s", verb, num, ctype,
                     xms, az->account, (int)plen, path);
    if (n < 0 || (size_t)n >= sizeof(sts))
        return false;
    size_t len = (size_t)n;
    char id[16];
    if (x->kind == OBJ_MPU_PART) {
        block_id(x->part, id);
        len += (size_t)snprintf(sts + len, sizeof(sts) - len, "\nblockid:%s\ncomp:block", id);
    } else if (x->kind == OBJ_MPU_DONE) {
        len += (size_t)snprintf(sts + len, sizeof(sts) - len, "\ncomp:blocklist");
    }
    if (!HMAC(EVP_sha256(), az->key, (int)az->key_len, (const unsigned char *)sts, len, mac,
              &maclen))
        return false;
    EVP_EncodeBlock((unsigned char *)mac_b64, mac, (int)maclen);
    snprintf(h, sizeof(h), "Authorization: SharedKey %s:%s", az->account, mac_b64);
    return obj_add_hdr(&x->hdrs, h);
}

bool az_build(nixl_be_engine_t *eng, obj_xfer_t *x)
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    const az_params_t *az = eng->pd;
    obj_job_t *job = x->job;
    char date[64], range[96] = "", xms[512], *data = NULL;
    size_t dlen = 0;
    const char *verb = "GET", *ctype = "";
    bool upload = false, ok = true;
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    snprintf(date, sizeof(date), "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday],
             tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    switch (x->kind) {
    case OBJ_GET:
        snprintf(range, sizeof(range), "bytes=%" PRIu64 "-%" PRIu64, job->off,
                 job->off + job->len - 1);
        ok = add_kv(&x->hdrs, "x-ms-range", range);
        break;
    case OBJ_PUT:
        ok = obj_add_hdr(&x->hdrs, "x-ms-blob-type: BlockBlob");
        /* fall through */
    case OBJ_MPU_PART:
        obj_part_span(eng, x, &data, &dlen);
        upload = true;
        break;
    case OBJ_MPU_DONE:
        ok = (data = block_list(job, &dlen)) != NULL;
        x->data = data; /* ours: obj_xfer_free frees a completion's body */
        ctype = "application/xml";
        upload = true;
        break;
    case OBJ_HEAD:
        verb = "HEAD";
        curl_easy_setopt(x->h, CURLOPT_NOBODY, 1L);
        break;
    default: /* no upload to start or abort: Azure's blocks need neither */
        return false;
    }
    if (upload) {
        verb = "PUT";
        obj_set_body(x, data, dlen);
        /* no 100-continue round trip (the header is not part of a SharedKey signature) */
        ok = ok && obj_add_hdr(&x->hdrs, "Expect:");
        if (ok && *ctype)
            ok = add_kv(&x->hdrs, "Content-Type", ctype);
    }
    ok = ok && add_kv(&x->hdrs, "x-ms-date", date) &&
         obj_add_hdr(&x->hdrs, "x-ms-version: " AZ_VERSION);
    if (ok && !az->sas && az->key_len) {
        snprintf(xms, sizeof(xms), "%sx-ms-date:%s\n%s%s%sx-ms-version:" AZ_VERSION "\n",
                 x->kind == OBJ_PUT ? "x-ms-blob-type:BlockBlob\n" : "", date,
                 range[0] ? "x-ms-range:" : "", range, range[0] ? "\n" : "");
        ok = shared_key(az, x, verb, upload ? dlen : 0, ctype, xms);
    } else if (ok && az->ad) {
        ok = az_ad_auth_header(az->ad, &x->hdrs);
    }
    return ok;
}
