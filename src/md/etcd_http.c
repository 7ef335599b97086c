/*
 * etcd_http.c - etcd's v3 JSON gateway over libcurl (etcd_priv.h).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "array.h"
#include "config.h"
#include "error.h"
#include "log.h"
#include "etcd_priv.h"

/* ---- base64 (the gateway's encoding of keys and values) ---- */

static const char b64_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *etcd_b64_encode(const void *data, size_t len)
{
    const uint8_t *p = data;
    char *out = malloc((len + 2) / 3 * 4 + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < len)
            v |= p[i + 2];
        *o++ = b64_chars[v >> 18 & 63];
        *o++ = b64_chars[v >> 12 & 63];
        *o++ = i + 1 < len ? b64_chars[v >> 6 & 63] : '=';
        *o++ = i + 2 < len ? b64_chars[v & 63] : '=';
    }
    *o = 0;
    return out;
}

static int b64_val(char c)
{
    const char *p = c ? strchr(b64_chars, c) : NULL;
    return p ? (int)(p - b64_chars) : -1;
}

uint8_t *etcd_b64_decode(const char *s, size_t *len)
{
    size_t n = strlen(s);
    if (n % 4)
        return NULL;
    uint8_t *out = malloc(n / 4 * 3 + 1);
    size_t k = 0;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        for (int j = 0; j < 4; j++)
            v[j] = s[i + j] == '=' && i + 4 == n && j >= 2 ? 0 : b64_val(s[i + j]);
        if (v[0] < 0 || v[1] < 0 || v[2] < 0 || v[3] < 0)
            goto bad;
        uint32_t x = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
                     (uint32_t)v[3];
        out[k++] = (uint8_t)(x >> 16);
        if (s[i + 2] != '=')
            out[k++] = (uint8_t)(x >> 8);
        if (s[i + 3] != '=')
            out[k++] = (uint8_t)x;
    }
    out[k] = 0;
    *len = k;
    return out;
bad:
    free(out);
    return NULL;
}

bool etcd_json_add_b64(json_object *o, const char *name, const void *data, size_t len)
{
    char *s = etcd_b64_encode(data, len);
    json_object *v = s ? json_object_new_string(s) : NULL;
    free(s);
    if (!v)
        return false;
    json_object_object_add(o, name, v);
    return true;
}

int64_t etcd_json_i64(json_object *o, const char *name, int64_t dflt)
{
    json_object *v;
    if (!o || !json_object_object_get_ex(o, name, &v))
        return dflt;
    if (json_object_is_type(v, json_type_string))
        return strtoll(json_object_get_string(v), NULL, 10);
    return json_object_get_int64(v);
}

uint8_t *etcd_json_bytes(json_object *o, const char *name, size_t *len)
{
    json_object *v;
    *len = 0;
    if (!o || !json_object_object_get_ex(o, name, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return etcd_b64_decode(json_object_get_string(v), len);
}

char *etcd_prefix_end(const char *prefix)
{
    char *end = strdup(prefix);
    size_t n = end ? strlen(end) : 0;
    if (n)
        end[n - 1]++; /* prefixes end in '/', never in 0xff */
    return end;
}

/* ---- endpoints and unary calls ---- */

/* One TLS file option: absent is fine (libcurl's default); present must be readable now, so
 * that a typo is an error of agent creation rather than a handshake failure later. */
static nixl_status_t tls_file(const char *option, char **out)
{
    nixl_status_t st = nixl_config_string(option, out);
    if (st != NIXL_SUCCESS || !*out)
        return st;
    if (!**out) {
        free(*out);
        *out = NULL;
    } else if (access(*out, R_OK) != 0) {
        st = nixl_err(NIXL_ERR_INVALID_PARAM, "%s='%s' cannot be read: %s", option, *out,
                      strerror(errno));
    }
    return st;
}

static nixl_status_t tls_options(etcd_http_t *h)
{
    nixl_status_t st;
    if ((st = tls_file("NIXL_ETCD_CA_FILE", &h->ca_file)) != NIXL_SUCCESS ||
        (st = tls_file("NIXL_ETCD_CERT_FILE", &h->cert_file)) != NIXL_SUCCESS ||
        (st = tls_file("NIXL_ETCD_KEY_FILE", &h->key_file)) != NIXL_SUCCESS)
        return st;
    if (h->key_file && !h->cert_file)
        return nixl_err(NIXL_ERR_INVALID_PARAM, "NIXL_ETCD_KEY_FILE is set without "
                        "NIXL_ETCD_CERT_FILE");
    bool https = false;
    for (size_t i = 0; i < h->num_endpoints; i++)
        https |= strncmp(h->endpoints[i], "https://", 8) == 0;
    if ((h->ca_file || h->cert_file) && !https)
        NIXL_WARN("etcd: TLS files are set (NIXL_ETCD_CA_FILE/CERT_FILE) but no endpoint is "
                  "https://: they are not used");
    return NIXL_SUCCESS;
}

nixl_status_t etcd_http_init(etcd_http_t *h, const char *endpoints)
{
    memset(h, 0, sizeof(*h));
    h->connect_ms = 1000;
    h->call_ms = 5000;
    char *list = strdup(endpoints), *save = NULL;
    size_t cap = 0;
    if (!list)
        return nixl_err_oom("etcd endpoints");
    for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*t))
            t++;
        size_t n = strlen(t);
        while (n && (isspace((unsigned char)t[n - 1]) || t[n - 1] == '/'))
            t[--n] = 0;
        if (!n)
            continue;
        char *ep = malloc(n + 8);
        char **slot = ep ? nixl_array_push(h->endpoints, h->num_endpoints, cap) : NULL;
        if (!slot) {
            free(ep);
            free(list);
            etcd_http_fini(h);
            return nixl_err_oom("etcd endpoints");
        }
        snprintf(ep, n + 8, "%s%s", strstr(t, "://") ? "" : "http://", t);
        *slot = ep;
    }
    free(list);
    if (!h->num_endpoints)
        return nixl_err(NIXL_ERR_INVALID_PARAM, "NIXL_ETCD_ENDPOINTS='%s' names no endpoint",
                        endpoints);
    nixl_status_t st = tls_options(h);
    if (st != NIXL_SUCCESS) {
        etcd_http_fini(h);
        return st;
    }
    h->easy = curl_easy_init();
    h->multi = curl_multi_init();
    if (!h->easy || !h->multi) {
        etcd_http_fini(h);
        return nixl_err(NIXL_ERR_BACKEND, "libcurl failed to initialise");
    }
    return NIXL_SUCCESS;
}

void etcd_http_fini(etcd_http_t *h)
{
    for (size_t i = 0; i < h->num_endpoints; i++)
        free(h->endpoints[i]);
    free(h->endpoints);
    free(h->ca_file);
    free(h->cert_file);
    free(h->key_file);
    if (h->easy)
        curl_easy_cleanup(h->easy);
    if (h->multi)
        curl_multi_cleanup(h->multi);
    memset(h, 0, sizeof(*h));
}

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
    nixl_buf_append(ud, p, size * n);
    return ((nixl_buf_t *)ud)->oom ? 0 : size * n;
}

static void easy_common(etcd_http_t *h, CURL *c, const char *path, const char *body,
                        char *errbuf)
{
    char url[512];
    snprintf(url, sizeof(url), "%s%s", h->endpoints[h->cur], path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)h->connect_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    if (h->ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, h->ca_file);
    if (h->cert_file)
        curl_easy_setopt(c, CURLOPT_SSLCERT, h->cert_file);
    if (h->key_file)
        curl_easy_setopt(c, CURLOPT_SSLKEY, h->key_file);
    errbuf[0] = 0;
}

nixl_status_t etcd_call(etcd_http_t *h, const char *path, json_object *req, json_object **resp,
                        char *why)
{
    const char *body = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
    char errbuf[CURL_ERROR_SIZE];
    for (size_t tries = 0; tries < h->num_endpoints; tries++) {
        nixl_buf_t in;
        nixl_buf_init(&in, 0);
        curl_easy_reset(h->easy);
        easy_common(h, h->easy, path, body, errbuf);
        curl_easy_setopt(h->easy, CURLOPT_WRITEDATA, &in);
        curl_easy_setopt(h->easy, CURLOPT_TIMEOUT_MS, (long)h->call_ms);
        CURLcode rc = curl_easy_perform(h->easy);
        nixl_buf_append_u8(&in, 0);
        if (in.oom) {
            snprintf(why, ETCD_WHY, NIXL_OOM_REASON " reading the answer of etcd %s%s",
                     h->endpoints[h->cur], path);
            nixl_buf_free(&in);
            return NIXL_ERR_OOM;
        }
        if (rc != CURLE_OK) {
            snprintf(why, ETCD_WHY, "etcd %s%s: %s", h->endpoints[h->cur], path,
                     errbuf[0] ? errbuf : curl_easy_strerror(rc));
            nixl_buf_free(&in);
            h->cur = (h->cur + 1) % h->num_endpoints;
            continue;
        }
        long code = 0;
        curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &code);
        json_object *o = json_tokener_parse((const char *)in.data);
        json_object *err = NULL;
        if (o && json_object_object_get_ex(o, "error", &err))
            code = code == 200 ? 500 : code;
        if (code != 200 || !o) {
            snprintf(why, ETCD_WHY, "etcd %s%s answered HTTP %ld: %.160s", h->endpoints[h->cur],
                     path, code, in.data ? (const char *)in.data : "");
            json_object_put(o);
            nixl_buf_free(&in);
            return NIXL_ERR_BACKEND;
        }
        nixl_buf_free(&in);
        *resp = o;
        return NIXL_SUCCESS;
    }
    return NIXL_ERR_REMOTE_DISCONNECT;
}

/* ---- watch streams ---- */

static size_t stream_collect(char *p, size_t size, size_t n, void *ud)
{
    etcd_stream_t *s = ud;
    nixl_buf_append(&s->in, p, size * n);
    return s->in.oom ? 0 : size * n;
}

nixl_status_t etcd_stream_start(etcd_http_t *h, etcd_stream_t *s, json_object *req)
{
    etcd_stream_stop(h, s);
    s->body = strdup(json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN));
    s->easy = curl_easy_init();
    if (!s->body || !s->easy)
        goto fail;
    easy_common(h, s->easy, "/v3/watch", s->body, s->errbuf);
    curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, stream_collect);
    curl_easy_setopt(s->easy, CURLOPT_PRIVATE, s);
    /* A silent peer host is noticed by TCP keepalive; etcd itself sends nothing when idle. */
    curl_easy_setopt(s->easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(s->easy, CURLOPT_TCP_KEEPIDLE, 5L);
    curl_easy_setopt(s->easy, CURLOPT_TCP_KEEPINTVL, 2L);
    if (curl_multi_add_handle(h->multi, s->easy) != CURLM_OK)
        goto fail;
    s->running = true;
    s->done = false;
    return NIXL_SUCCESS;
fail:
    etcd_stream_stop(h, s);
    return NIXL_ERR_OOM;
}

void etcd_stream_stop(etcd_http_t *h, etcd_stream_t *s)
{
    if (s->easy) {
        if (s->running)
            curl_multi_remove_handle(h->multi, s->easy);
        curl_easy_cleanup(s->easy);
    }
    free(s->body);
    nixl_buf_free(&s->in);
    s->easy = NULL;
    s->body = NULL;
    s->pos = 0;
    s->running = false;
    s->done = false;
}

json_object *etcd_stream_next(etcd_stream_t *s)
{
    while (s->pos < s->in.len && isspace(s->in.data[s->pos]))
        s->pos++;
    if (s->pos >= s->in.len)
        return NULL;
    json_tokener *tok = json_tokener_new();
    if (!tok)
        return NULL;
    json_object *o = json_tokener_parse_ex(tok, (const char *)s->in.data + s->pos,
                                           (int)(s->in.len - s->pos));
    enum json_tokener_error e = json_tokener_get_error(tok);
    if (o) {
        s->pos += json_tokener_get_parse_end(tok);
    } else if (e != json_tokener_continue) {
        NIXL_WARN("etcd watch: unreadable message (%s); restarting the watch",
                  json_tokener_error_desc(e));
        s->done = true;
        s->pos = s->in.len;
    }
    json_tokener_free(tok);
    if (s->pos == s->in.len) {
        s->in.len = 0;
        s->pos = 0;
    }
    return o;
}

void etcd_http_poll(etcd_http_t *h, int timeout_ms)
{
    int running = 0, left = 0;
    curl_multi_perform(h->multi, &running);
    curl_multi_poll(h->multi, NULL, 0, timeout_ms, NULL);
    curl_multi_perform(h->multi, &running);
    CURLMsg *m;
    while ((m = curl_multi_info_read(h->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        etcd_stream_t *s = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&s);
        if (!s)
            continue;
        NIXL_DEBUG("etcd watch ended: %s", s->errbuf[0] ? s->errbuf
                                                        : curl_easy_strerror(m->data.result));
        if (m->data.result == CURLE_COULDNT_CONNECT || m->data.result == CURLE_OPERATION_TIMEDOUT)
            h->cur = (h->cur + 1) % h->num_endpoints;
        s->done = true;
    }
}

void etcd_http_wakeup(etcd_http_t *h)
{
    curl_multi_wakeup(h->multi);
}
