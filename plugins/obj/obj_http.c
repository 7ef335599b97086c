/*
 * obj_http.c - one object-store exchange on a curl easy handle: the options every protocol
 * shares, where the bytes go, and whether it succeeded, with the error code and message of the
 * response body (S3 and Azure both answer <Error><Code/><Message/></Error>) in the reason. What
 * the request says and how it is signed is the protocol's build (s3_req.c, azure_req.c).
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "obj_priv.h"


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

/* If the header line p[0, len) is "name: value", its trimmed value into out (when it fits). */
static void hdr_value(const char *p, size_t len, const char *name, char *out, size_t outlen)
{
    size_t nl = strlen(name), i = nl, e = len;
    if (len <= nl || strncasecmp(p, name, nl))
        return;
    while (i < e && isspace((unsigned char)p[i]))
        i++;
    while (e > i && isspace((unsigned char)p[e - 1]))
        e--;
    if (e - i < outlen) {
        memcpy(out, p + i, e - i);
        out[e - i] = '\0';
    }
}

static size_t on_header(char *p, size_t sz, size_t n, void *arg)
{
    obj_xfer_t *x = arg;
    size_t len = sz * n;
    hdr_value(p, len, "ETag:", x->etag, sizeof(x->etag));
    /* Azure's error code: the only one a HEAD answer (no body) has */
    hdr_value(p, len, "x-ms-error-code:", x->errcode, sizeof(x->errcode));
    return len;
}

bool obj_add_hdr(struct curl_slist **l, const char *h)
{
    struct curl_slist *n = curl_slist_append(*l, h);
    if (n)
        *l = n;
    return n != NULL;
}

void obj_set_body(obj_xfer_t *x, char *data, size_t len)
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

void obj_part_span(const nixl_be_engine_t *eng, const obj_xfer_t *x, char **data, size_t *len)
{
    const obj_job_t *job = x->job;
    size_t ps = (size_t)eng->p.part_size;
    if (x->kind == OBJ_PUT) {
        *data = job->buf;
        *len = job->len;
    } else {
        *data = job->buf + x->part * ps;
        *len = x->part + 1 < job->nparts ? ps : job->len - x->part * ps;
    }
}

/* The URL as messages show it: the object's without the query when that holds a SAS token
 * (a credential), else the whole of it (full). */
static char *shown_url(const char *url, const char *query, const char *full)
{
    if (query && strstr(query, "sig=")) {
        size_t n = strlen(url) + 16;
        char *s = malloc(n);
        if (s)
            snprintf(s, n, "%s?<SAS>", url);
        return s;
    }
    return strdup(full);
}

obj_xfer_t *obj_xfer_new(nixl_be_engine_t *eng, enum obj_kind kind, obj_job_t *job, size_t part,
                         const char *url, const char *query, char *why, size_t whylen)
{
    const obj_params_t *p = &eng->p;
    obj_xfer_t *x = calloc(1, sizeof(*x));
    bool hasq = query && *query;
    size_t ulen = strlen(url) + (hasq ? strlen(query) + 2 : 1);
    bool ok = x && (x->url = malloc(ulen)) && (x->h = curl_easy_init());
    if (ok) {
        x->kind = kind;
        x->name = eng->proto->kind_name[kind];
        x->job = job;
        x->part = part;
        snprintf(x->url, ulen, "%s%s%s", url, hasq ? "?" : "", hasq ? query : "");
        ok = (x->shown = shown_url(url, hasq ? query : NULL, x->url)) != NULL;
    }
    if (ok) {
        CURL *h = x->h;
        curl_easy_setopt(h, CURLOPT_URL, x->url);
        curl_easy_setopt(h, CURLOPT_PRIVATE, x);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x->cerr);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)p->connect_s);
        /* A server that stops sending (or taking) bytes ends the exchange, never hangs it. */
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)p->stall_s);
        if (p->ca_bundle)
            curl_easy_setopt(h, CURLOPT_CAINFO, p->ca_bundle);
        if (kind == OBJ_GET) {
            x->dst = job->buf;
            x->dcap = job->len;
        }
        ok = eng->proto->build(eng, x);
    }
    if (ok) {
        curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, x->hdrs); /* the list may have moved */
        return x;
    }
    snprintf(why, whylen, "out of memory preparing %s %s", eng->proto->kind_name[kind], url);
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
        free(x->data); /* the protocol's completion body */
    free(x->body);
    free(x->url);
    free(x->shown);
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
        if (k == sizeof(ents) / sizeof(ents[0])) {
            /* Azure's messages are lines: one line of text, whitespace as spaces */
            char c = isspace((unsigned char)*b) ? ' ' : isprint((unsigned char)*b) ? *b : '?';
            b++;
            if (c != ' ' || (n && out[n - 1] != ' '))
                out[n++] = c;
        }
    }
    out[n] = '\0';
    return true;
}

void obj_http_reason(long status, const char *body, size_t blen, char *out, size_t outlen)
{
    char code[128], msg[256], detail[256];
    bool has_code = obj_xml_text(body, blen, "Code", code, sizeof(code));
    bool has_msg = obj_xml_text(body, blen, "Message", msg, sizeof(msg));
    /* Azure says why a credential was refused (a token's audience, its lifetime) apart */
    bool has_detail = obj_xml_text(body, blen, "AuthenticationErrorDetail", detail,
                                   sizeof(detail));
    if (has_code)
        snprintf(out, outlen, "HTTP %ld %s%s%s%s%s%s", status, code, has_msg ? ": " : "",
                 has_msg ? msg : "", has_detail ? " (" : "", has_detail ? detail : "",
                 has_detail ? ")" : "");
    else if (status == 403)
        snprintf(out, outlen, "HTTP 403 (access denied: check the credentials)");
    else if (status == 404)
        snprintf(out, outlen, "HTTP 404 (no such object or bucket)");
    else
        snprintf(out, outlen, "HTTP %ld", status);
}

bool obj_xfer_ok(obj_xfer_t *x, CURLcode code, char *why, size_t whylen)
{
    const char *what = x->name;
    long status = 0;
    if (code == CURLE_WRITE_ERROR && x->kind == OBJ_GET) {
        snprintf(why, whylen, "%s %s: the server sent more than the %zu bytes asked for",
                 what, x->shown, x->dcap);
        return false;
    }
    if (code != CURLE_OK) {
        snprintf(why, whylen, "%s %s: %s%s%s", what, x->shown, curl_easy_strerror(code),
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
    case OBJ_HEAD:
        good = status == 200;
        break;
    default: /* Azure answers 201 Created to its uploads */
        good = status == 200 || status == 201;
    }
    /* CompleteMultipartUpload may answer 200 with an error in the body. */
    if (good && x->kind == OBJ_MPU_DONE && x->body && strstr(x->body, "<Error>"))
        good = false;
    if (!good) {
        char r[OBJ_ERR_MAX];
        obj_http_reason(status, x->body, x->blen, r, sizeof(r));
        if (x->errcode[0] && !strstr(r, x->errcode))
            snprintf(why, whylen, "%s %s: %s (%s)", what, x->shown, r, x->errcode);
        else
            snprintf(why, whylen, "%s %s: %s", what, x->shown, r);
        return false;
    }
    if (x->kind == OBJ_GET && x->got != x->dcap) {
        snprintf(why, whylen, "GET %s: the object ends before the range: %zu of %zu bytes at "
                 "offset %" PRIu64, x->shown, x->got, x->dcap, x->job->off);
        return false;
    }
    return true;
}
