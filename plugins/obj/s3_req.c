/*
 * s3_req.c - what an S3 exchange sends: its query, method, headers and body, signed by
 * libcurl's SigV4.
 *
 * Every request carries x-amz-content-sha256: UNSIGNED-PAYLOAD (libcurl signs it and uses it as
 * the payload hash, so a body streamed from memory need not be hashed first); with
 * req_checksum=required uploads also carry Content-MD5, which the server checks.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef NIXL_OBJ_HAVE_MD5
#include <openssl/evp.h>
#endif

#include "s3_priv.h"

void s3_query(const nixl_be_engine_t *eng, int kind, const char *upload_id, size_t part, char *q,
              size_t qlen)
{
    (void)eng;
    char id[400 * 3 + 1];
    q[0] = '\0';
    if (kind == OBJ_MPU_INIT) {
        snprintf(q, qlen, "uploads=");
        return;
    }
    if (!upload_id || strlen(upload_id) >= 400)
        return;
    /* upload ids may hold '/', '+', '=' */
    obj_pct(upload_id, strlen(upload_id), false, id);
    if (kind == OBJ_MPU_PART)
        snprintf(q, qlen, "partNumber=%zu&uploadId=%s", part + 1, id);
    else if (kind == OBJ_MPU_DONE || kind == OBJ_MPU_ABORT)
        snprintf(q, qlen, "uploadId=%s", id);
}

static bool sign(const obj_params_t *p, obj_xfer_t *x)
{
    /* No "Expect:" to drop curl's 100-continue: libcurl would sign the empty header it then
     * does not send, and a verifying server refuses the signature. */
    bool ok = obj_add_hdr(&x->hdrs, "x-amz-content-sha256: UNSIGNED-PAYLOAD");
    if (ok && p->session_token) {
        size_t n = strlen(p->session_token) + 32;
        char *t = malloc(n);
        ok = t != NULL;
        if (t) {
            snprintf(t, n, "x-amz-security-token: %s", p->session_token);
            ok = obj_add_hdr(&x->hdrs, t);
            free(t);
        }
    }
    if (ok && p->sigv4) {
        curl_easy_setopt(x->h, CURLOPT_AWS_SIGV4, p->sigv4);
        curl_easy_setopt(x->h, CURLOPT_USERNAME, p->access_key);
        curl_easy_setopt(x->h, CURLOPT_PASSWORD, p->secret_key);
    }
    return ok;
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
    return obj_add_hdr(hdrs, h);
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

bool s3_build(nixl_be_engine_t *eng, obj_xfer_t *x)
{
    const obj_params_t *p = &eng->p;
    obj_job_t *job = x->job;
    char range[96], *data = NULL;
    size_t dlen = 0;
    bool ok = sign(p, x);
    if (!ok)
        return false;
    switch (x->kind) {
    case OBJ_GET:
        snprintf(range, sizeof(range), "Range: bytes=%" PRIu64 "-%" PRIu64, job->off,
                 job->off + job->len - 1);
        ok = obj_add_hdr(&x->hdrs, range);
        break;
    case OBJ_PUT:
    case OBJ_MPU_PART:
        obj_part_span(eng, x, &data, &dlen);
        obj_set_body(x, data, dlen);
#ifdef NIXL_OBJ_HAVE_MD5
        if (p->checksum)
            ok = add_md5(&x->hdrs, data, dlen);
#endif
        break;
    case OBJ_MPU_INIT:
        /* curl would say form data; S3 keeps this as the object's type. */
        ok = obj_add_hdr(&x->hdrs, "Content-Type: binary/octet-stream");
        curl_easy_setopt(x->h, CURLOPT_POST, 1L);
        curl_easy_setopt(x->h, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(x->h, CURLOPT_POSTFIELDSIZE, 0L);
        break;
    case OBJ_MPU_DONE:
        /* Not form data either: a server may parse (and consume) a form body. */
        ok = (x->data = complete_xml(job, &x->dlen)) != NULL &&
             obj_add_hdr(&x->hdrs, "Content-Type: application/xml");
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
    return ok;
}
