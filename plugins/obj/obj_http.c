/*
 * obj_http.c - one S3 exchange on a curl easy handle: what it sends (signed by libcurl's
 * SigV4), where the bytes go, and whether it succeeded, with the S3 error code and message of
 * the response body in the reason.
 *
 * Every request carries x-amz-content-sha256: UNSIGNED-PAYLOAD (libcurl signs it and uses it as
 * the payload hash, so a body streamed from memory need not be hashed first); with
 * req_checksum=required uploads also carry Content-MD5, which the server checks.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#ifdef NIXL_OBJ_HAVE_MD5
#include <openssl/evp.h>
#endif

#include "obj_priv.h"

static const char *const kind_name[] = {"GET", "PUT", "CreateMultipartUpload", "UploadPart",
                                        "CompleteMultipartUpload", "AbortMultipartUpload",
                                        "HEAD"};

/* Keep up to OBJ_BODY_MAX bytes of a response body (errors, XML). */
static void keep_body(obj_xfer_t *x, const char *p, size_t n)
{
    if (x->blen >= OBJ_BODY_MAX)
        return;
    if (n > OBJ_BODY_MAX - x->blen)
        n = OBJ_BODY_MAX - x->blen;
    if (!x->body) {
        x->body = malloc(OBJ_BODY_MAX + 1);
        if (!x->body)
            return;
    }
    memcpy(x->body + x->blen, p, n);
    x->blen += n;
    x->body[x->blen] = '\0';
}

static size_t on_body(char *p, size_t sz, size_t n, void *arg)
{
    obj_xfer_t *x = arg;
    size_t len = sz * n;
    long code = 0;
    curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &code);
    if (x->kind == OBJ_GET && (code == 200 || code == 206)) {
        if (len > x->dcap - x->got)
            return 0; /* more than asked for: refused (CURLE_WRITE_ERROR), not truncated */
        memcpy(x->dst + x->got, p, len);
        x->got += len;
        return len;
    }
    keep_body(x, p, len);
    return len;
}

static size_t on_read(char *p, size_t sz, size_t n, void *arg)
{
    obj_xfer_t *x = arg;
    size_t len = sz * n, left = x->dlen - x->dpos;
    if (len > left)
        len = left;
    memcpy(p, x->data + x->dpos, len);
    x->dpos += len;
    return len;
}

/* curl may rewind an upload (a redirect is off, but a retried connection is not). */
static int on_seek(void *arg, curl_off_t off, int origin)
{
    obj_xfer_t *x = arg;
    if (origin != SEEK_SET || off < 0 || (uint64_t)off > x->dlen)
        return CURL_SEEKFUNC_FAIL;
    x->dpos = (size_t)off;
    return CURL_SEEKFUNC_OK;
}

static size_t on_header(char *p, size_t sz, size_t n, void *arg)
{
    obj_xfer_t *x = arg;
    size_t len = sz * n;
    if (len > 5 && !strncasecmp(p, "ETag:", 5)) {
        size_t i = 5, e = len;
        while (i < e && isspace((unsigned char)p[i]))
            i++;
        while (e > i && isspace((unsigned char)p[e - 1]))
            e--;
        if (e - i < sizeof(x->etag)) {
            memcpy(x->etag, p + i, e - i);
            x->etag[e - i] = '\0';
        }
    }
    return len;
}

static bool add_hdr(struct curl_slist **l, const char *h)
{
    struct curl_slist *n = curl_slist_append(*l, h);
    if (n)
        *l = n;
    return n != NULL;
}

bool obj_easy_common(const obj_params_t *p, CURL *h, struct curl_slist **hdrs, char *cerr)
{
    /* No "Expect:" to drop curl's 100-continue: libcurl would sign the empty header it then
     * does not send, and a verifying server refuses the signature. */
    bool ok = add_hdr(hdrs, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
    if (ok && p->session_token) {
        size_t n = strlen(p->session_token) + 32;
        char *t = malloc(n);
        ok = t != NULL;
        if (t) {
            snprintf(t, n, "x-amz-security-token: %s", p->session_token);
            ok = add_hdr(hdrs, t);
            free(t);
        }
    }
    if (!ok)
        return false;
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)p->connect_s);
    /* A server that stops sending (or taking) bytes ends the exchange, never hangs it. */
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)p->stall_s);
    if (p->sigv4) {
        curl_easy_setopt(h, CURLOPT_AWS_SIGV4, p->sigv4);
        curl_easy_setopt(h, CURLOPT_USERNAME, p->access_key);
        curl_easy_setopt(h, CURLOPT_PASSWORD, p->secret_key);
    }
    if (p->ca_bundle)
        curl_easy_setopt(h, CURLOPT_CAINFO, p->ca_bundle);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, *hdrs);
    return true;
}

#ifdef NIXL_OBJ_HAVE_MD5
static bool add_md5(struct curl_slist **hdrs, const void *data, size_t len)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char b64[64], h[96];
    if (!EVP_Digest(data, len, md, &mdlen, EVP_md5(), NULL))
        return false;
    EVP_EncodeBlock((unsigned char *)b64, md, (int)mdlen);
    snprintf(h, sizeof(h), "Content-MD5: %s", b64);
    return add_hdr(hdrs, h);
}
#endif

/* <CompleteMultipartUpload> with every part's number and ETag. */
static char *complete_xml(const obj_job_t *job, size_t *len)
{
    size_t cap = 64 + job->nparts * (64 + sizeof(job->etags[0]));
    char *s = malloc(cap);
    if (!s)
        return NULL;
    size_t n = (size_t)snprintf(s, cap, "<CompleteMultipartUpload>");
    for (size_t i = 0; i < job->nparts; i++)
        n += (size_t)snprintf(s + n, cap - n,
                              "<Part><PartNumber>%zu</PartNumber><ETag>%s</ETag></Part>", i + 1,
                              job->etags[i]);
    n += (size_t)snprintf(s + n, cap - n, "</CompleteMultipartUpload>");
    *len = n;
    return s;
}

static void set_body(obj_xfer_t *x, char *data, size_t len)
{
    x->data = data;
    x->dlen = len;
    curl_easy_setopt(x->h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(x->h, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(x->h, CURLOPT_READDATA, x);
    curl_easy_setopt(x->h, CURLOPT_SEEKFUNCTION, on_seek);
    curl_easy_setopt(x->h, CURLOPT_SEEKDATA, x);
    curl_easy_setopt(x->h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
}

obj_xfer_t *obj_xfer_new(nixl_be_engine_t *eng, enum obj_kind kind, obj_job_t *job, size_t part,
                         const char *url, const char *query, char *why, size_t whylen)
{
    const obj_params_t *p = &eng->p;
    obj_xfer_t *x = calloc(1, sizeof(*x));
    size_t ulen = strlen(url) + (query ? strlen(query) + 2 : 1);
    char range[96];
    bool ok = x && (x->url = malloc(ulen)) && (x->h = curl_easy_init());
    if (ok) {
        x->kind = kind;
        x->job = job;
        x->part = part;
        snprintf(x->url, ulen, "%s%s%s", url, query ? "?" : "", query ? query : "");
        ok = obj_easy_common(p, x->h, &x->hdrs, x->cerr);
    }
    if (ok) {
        curl_easy_setopt(x->h, CURLOPT_URL, x->url);
        curl_easy_setopt(x->h, CURLOPT_PRIVATE, x);
        curl_easy_setopt(x->h, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(x->h, CURLOPT_WRITEDATA, x);
        curl_easy_setopt(x->h, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(x->h, CURLOPT_HEADERDATA, x);
    }
    char *data = NULL;
    size_t dlen = 0;
    if (ok) {
        switch (kind) {
        case OBJ_GET:
            x->dst = job->buf;
            x->dcap = job->len;
            snprintf(range, sizeof(range), "Range: bytes=%" PRIu64 "-%" PRIu64, job->off,
                     job->off + job->len - 1);
            ok = add_hdr(&x->hdrs, range);
            break;
        case OBJ_PUT:
            data = job->buf;
            dlen = job->len;
            break;
        case OBJ_MPU_PART:
            data = job->buf + part * p->part_size;
            dlen = part + 1 < job->nparts ? p->part_size : job->len - part * p->part_size;
            break;
        case OBJ_MPU_INIT:
            /* curl would say form data; S3 keeps this as the object's type. */
            ok = add_hdr(&x->hdrs, "Content-Type: binary/octet-stream");
            curl_easy_setopt(x->h, CURLOPT_POST, 1L);
            curl_easy_setopt(x->h, CURLOPT_POSTFIELDS, "");
            curl_easy_setopt(x->h, CURLOPT_POSTFIELDSIZE, 0L);
            break;
        case OBJ_MPU_DONE:
            /* Not form data either: a server may parse (and consume) a form body. */
            ok = (x->data = complete_xml(job, &x->dlen)) != NULL &&
                 add_hdr(&x->hdrs, "Content-Type: application/xml");
            if (ok) {
                curl_easy_setopt(x->h, CURLOPT_POST, 1L);
                curl_easy_setopt(x->h, CURLOPT_POSTFIELDS, x->data);
                curl_easy_setopt(x->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->dlen);
            }
            break;
        case OBJ_MPU_ABORT:
            curl_easy_setopt(x->h, CURLOPT_CUSTOMREQUEST, "DELETE");
            break;
        case OBJ_HEAD:
            curl_easy_setopt(x->h, CURLOPT_NOBODY, 1L);
            break;
        }
    }
    if (ok && (kind == OBJ_PUT || kind == OBJ_MPU_PART)) {
        set_body(x, data, dlen);
#ifdef NIXL_OBJ_HAVE_MD5
        if (p->checksum)
            ok = add_md5(&x->hdrs, data, dlen);
#endif
    }
    if (ok) {
        curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, x->hdrs); /* the list may have moved */
        return x;
    }
    snprintf(why, whylen, "out of memory preparing %s %s", kind_name[kind], url);
    obj_xfer_free(x);
    return NULL;
}

void obj_xfer_free(obj_xfer_t *x)
{
    if (!x)
        return;
    if (x->h)
        curl_easy_cleanup(x->h);
    curl_slist_free_all(x->hdrs);
    if (x->kind == OBJ_MPU_DONE)
        free(x->data);
    free(x->body);
    free(x->url);
    free(x);
}

bool obj_xml_text(const char *xml, size_t len, const char *tag, char *out, size_t outlen)
{
    static const struct {
        const char *ent;
        char c;
    } ents[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
    char open[64], close[64];
    snprintf(open, sizeof(open), "<%s>", tag);
    snprintf(close, sizeof(close), "</%s>", tag);
    if (!xml || !outlen)
        return false;
    const char *b = memmem(xml, len, open, strlen(open));
    if (!b)
        return false;
    b += strlen(open);
    const char *e = memmem(b, len - (size_t)(b - xml), close, strlen(close));
    if (!e)
        return false;
    size_t n = 0;
    while (b < e && n + 1 < outlen) {
        size_t k = 0;
        for (; k < sizeof(ents) / sizeof(ents[0]); k++) {
            size_t el = strlen(ents[k].ent);
            if ((size_t)(e - b) >= el && !memcmp(b, ents[k].ent, el)) {
                out[n++] = ents[k].c;
                b += el;
                break;
            }
        }
        if (k == sizeof(ents) / sizeof(ents[0]))
            out[n++] = isprint((unsigned char)*b) ? *b : '?', b++;
    }
    out[n] = '\0';
    return true;
}

void obj_http_reason(long status, const char *body, size_t blen, char *out, size_t outlen)
{
    char code[128], msg[256];
    bool has_code = obj_xml_text(body, blen, "Code", code, sizeof(code));
    bool has_msg = obj_xml_text(body, blen, "Message", msg, sizeof(msg));
    if (has_code)
        snprintf(out, outlen, "HTTP %ld %s%s%s", status, code, has_msg ? ": " : "",
                 has_msg ? msg : "");
    else if (status == 403)
        snprintf(out, outlen, "HTTP 403 (access denied: check the credentials)");
    else if (status == 404)
        snprintf(out, outlen, "HTTP 404 (no such object or bucket)");
    else
        snprintf(out, outlen, "HTTP %ld", status);
}

bool obj_xfer_ok(obj_xfer_t *x, CURLcode code, char *why, size_t whylen)
{
    const char *what = kind_name[x->kind];
    long status = 0;
    if (code == CURLE_WRITE_ERROR && x->kind == OBJ_GET) {
        snprintf(why, whylen, "%s %s: the server sent more than the %zu bytes asked for",
                 what, x->url, x->dcap);
        return false;
    }
    if (code != CURLE_OK) {
        snprintf(why, whylen, "%s %s: %s%s%s", what, x->url, curl_easy_strerror(code),
                 x->cerr[0] ? ": " : "", x->cerr);
        return false;
    }
    curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
    bool good;
    switch (x->kind) {
    case OBJ_GET:
        /* 200: the server ignored the range; right only for a whole object read from 0. */
        good = status == 206 || (status == 200 && x->job->off == 0);
        break;
    case OBJ_MPU_ABORT:
        good = status == 204 || status == 200;
        break;
    default:
        good = status == 200;
    }
    /* CompleteMultipartUpload may answer 200 with an error in the body. */
    if (good && x->kind == OBJ_MPU_DONE && x->body && strstr(x->body, "<Error>"))
        good = false;
    if (!good) {
        char r[OBJ_ERR_MAX];
        obj_http_reason(status, x->body, x->blen, r, sizeof(r));
        snprintf(why, whylen, "%s %s: %s", what, x->url, r);
        return false;
    }
    if (x->kind == OBJ_GET && x->got != x->dcap) {
        snprintf(why, whylen, "GET %s: the object ends before the range: %zu of %zu bytes at "
                 "offset %" PRIu64, x->url, x->got, x->dcap, x->job->off);
        return false;
    }
    return true;
}
