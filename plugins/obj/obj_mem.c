/*
 * obj_mem.c - registration of DRAM and OBJ regions, and query_mem (HEAD of each object).
 *
 * An OBJ region names one object (an S3 object or an Azure blob): its key is the metaInfo when
 * there is one, else the decimal devId (the reference's rule). A VRAM region is checked to be
 * GPU memory (obj_vram.c). Nothing is asked of the server at registration: an object to
 * be written need not exist yet. The URL is built once here, so a post formats nothing.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "be_storage.h"
#include "obj_priv.h"

#define OBJ_KEY_MAX 1024 /* S3's longest key, in bytes */

const char *obj_desc_key(const nixl_reg_desc_t *d, char num[24], size_t *klen)
{
    if (d->meta && d->meta_len) {
        *klen = d->meta_len;
        return d->meta;
    }
    *klen = (size_t)snprintf(num, 24, "%" PRIu64, d->dev_id);
    return num;
}

static void md_free(nixl_be_engine_t *eng, nixl_be_md_t *md)
{
    (void)eng;
    if (!md)
        return;
    free(md->url);
    free(md->key);
    free(md);
}

static nixl_status_t reg_one(nixl_be_engine_t *eng, nixl_mem_t type, size_t i,
                             const nixl_reg_desc_t *d, nixl_be_md_t *md)
{
    md->type = type;
    md->gpu = -1;
    if (type == NIXL_DRAM_SEG)
        return NIXL_SUCCESS;
    if (type == NIXL_VRAM_SEG)
        return obj_vram_register(eng, i, d, md);
    char num[24];
    size_t klen;
    const char *key = obj_desc_key(d, num, &klen);
    if (klen > OBJ_KEY_MAX || memchr(key, '\0', klen))
        return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                           "descriptor %zu: object key of %zu bytes is longer than %d bytes or "
                           "contains a NUL byte",
                           i, klen, OBJ_KEY_MAX);
    md->key = strndup(key, klen);
    md->url = eng->proto->url(eng, key, klen);
    if (!md->key || !md->url) {
        free(md->key);
        free(md->url);
        return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory");
    }
    return NIXL_SUCCESS;
}

nixl_status_t obj_register_mem(nixl_be_engine_t *eng, nixl_mem_t type,
                               const nixl_reg_desc_t *descs, size_t count, nixl_be_md_t **out)
{
    if (type != NIXL_DRAM_SEG && type != NIXL_VRAM_SEG && type != NIXL_OBJ_SEG)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_NOT_SUPPORTED,
                           "cannot register memory type %d (DRAM, VRAM and OBJ only)", (int)type);
    return nixl_be_register_each(eng, eng->host, type, descs, count, sizeof(nixl_be_md_t), reg_one,
                                 md_free, out);
}

void obj_deregister_mem(nixl_be_engine_t *eng, const nixl_be_mds_t *mds)
{
    for (size_t i = 0; i < mds->count; i++)
        md_free(eng, nixl_be_md_at(mds, i));
}

/* ---- query_mem: HEAD every object, max_inflight at a time, on a multi handle of the call ---- */

static bool set_size(nixl_query_resp_t *r, curl_off_t size)
{
    char num[32];
    snprintf(num, sizeof(num), "%" CURL_FORMAT_CURL_OFF_T, size);
    r->params.items = calloc(1, sizeof(nixl_param_t));
    if (!r->params.items)
        return false;
    r->params.items[0].key = strdup("size");
    r->params.items[0].value = strdup(num);
    r->params.count = 1; /* the core frees what is there, even half filled */
    return r->params.items[0].key && r->params.items[0].value;
}

typedef struct q_state {
    nixl_be_engine_t *eng;
    CURLM *m;
    const nixl_reg_desc_t *descs;
    size_t count, next, running;
    nixl_query_resp_t *out;
    nixl_status_t st;
} q_state_t;

static bool q_start(q_state_t *q, char *why, size_t whylen)
{
    size_t i = q->next++;
    char num[24];
    size_t klen;
    const char *key = obj_desc_key(&q->descs[i], num, &klen);
    char *url = q->eng->proto->url(q->eng, key, klen), qs[OBJ_QUERY_MAX];
    if (url)
        q->eng->proto->query(q->eng, OBJ_HEAD, NULL, 0, qs, sizeof(qs));
    obj_xfer_t *x = url ? obj_xfer_new(q->eng, OBJ_HEAD, NULL, i, url, qs, why, whylen) : NULL;
    free(url);
    if (!x) {
        snprintf(why, whylen, "out of memory");
        return false;
    }
    curl_multi_add_handle(q->m, x->h);
    q->running++;
    return true;
}

/* One HEAD ended: a value (200), no value (404), or the failure of the whole query. */
static void q_done(q_state_t *q, obj_xfer_t *x, CURLcode code)
{
    nixl_be_engine_t *eng = q->eng;
    long status = 0;
    curl_off_t size = -1;
    curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(x->h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &size);
    if (q->st != NIXL_SUCCESS)
        return;
    if (code == CURLE_OK && status == 200 && size >= 0) {
        if (!set_size(&q->out[x->part], size))
            q->st = NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory");
        else
            q->out[x->part].has_value = true;
    } else if (code != CURLE_OK || status != 404) {
        char r[OBJ_ERR_MAX];
        if (code != CURLE_OK)
            snprintf(r, sizeof(r), "%s%s%s", curl_easy_strerror(code), x->cerr[0] ? ": " : "",
                     x->cerr);
        else
            obj_http_reason(status, x->body, x->blen, r, sizeof(r));
        if (code == CURLE_OK && x->errcode[0]) { /* a HEAD's answer has no body */
            size_t n = strlen(r);
            snprintf(r + n, sizeof(r) - n, " (%s)", x->errcode);
        }
        q->st = NIXL_BE_ERR(eng->host, NIXL_ERR_BACKEND, "descriptor %zu: HEAD %s: %s", x->part,
                            x->shown, r);
    }
}

nixl_status_t obj_query_mem(nixl_be_engine_t *eng, nixl_mem_t type, const nixl_reg_desc_t *descs,
                            size_t count, nixl_query_resp_t *out)
{
    if (type != NIXL_OBJ_SEG)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_NOT_SUPPORTED,
                           "query_mem answers for OBJ descriptors only (memory type %d given)",
                           (int)type);
    q_state_t q = {.eng = eng, .descs = descs, .count = count, .out = out, .st = NIXL_SUCCESS};
    char why[OBJ_ERR_MAX];
    if (!count)
        return NIXL_SUCCESS;
    q.m = curl_multi_init();
    if (!q.m)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "curl_multi_init failed");
    while (q.next < q.count || q.running) {
        while (q.st == NIXL_SUCCESS && q.next < q.count && q.running < eng->p.max_inflight)
            if (!q_start(&q, why, sizeof(why)))
                q.st = NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "%s", why);
        if (q.st != NIXL_SUCCESS)
            q.next = q.count; /* start nothing more; finish what runs */
        if (!q.running)
            break;
        int still = 0;
        curl_multi_perform(q.m, &still);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(q.m, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            obj_xfer_t *x = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
            CURLcode code = msg->data.result;
            curl_multi_remove_handle(q.m, x->h);
            q_done(&q, x, code);
            obj_xfer_free(x);
            q.running--;
        }
        if (q.running)
            curl_multi_poll(q.m, NULL, 0, 1000, NULL);
    }
    curl_multi_cleanup(q.m);
    return q.st;
}
