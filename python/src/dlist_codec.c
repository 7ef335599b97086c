/*
 * dlist_codec.c - the reference "serdes" encoding of descriptor lists, used for pickling
 * (reference NIXL-SEMANTICS 5.8). Kept in the extension so that libnixl need not export its
 * internal codec; the format is small: "nixlSerDes|" then records tag | u64 len | payload | '|'.
 */
#include <string.h>

#include "bind.h"
#include "dlist_codec.h"

#define MAGIC "nixlSerDes|"
#define MAGIC_LEN 11

static int put(char **buf, size_t *len, size_t *cap, const char *tag, const void *p, size_t n)
{
    size_t tl = strlen(tag), need = *len + tl + 8 + n + 1;
    if (need > *cap) {
        size_t nc = *cap ? *cap : 256;
        while (nc < need)
            nc *= 2;
        char *nb = PyMem_Realloc(*buf, nc);
        if (!nb) {
            PyErr_NoMemory();
            return -1;
        }
        *buf = nb;
        *cap = nc;
    }
    uint64_t n64 = n;
    memcpy(*buf + *len, tag, tl);
    memcpy(*buf + *len + tl, &n64, 8);
    if (n)
        memcpy(*buf + *len + tl + 8, p, n);
    (*buf)[*len + tl + 8 + n] = '|';
    *len = need;
    return 0;
}

PyObject *dlist_encode(dlist_obj *l)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    uint32_t t = (uint32_t)l->type;
    uint64_t n = l->count;
    PyObject *res = NULL;
    buf = PyMem_Malloc(256);
    if (!buf) {
        PyErr_NoMemory();
        goto done;
    }
    cap = 256;
    memcpy(buf, MAGIC, MAGIC_LEN);
    len = MAGIC_LEN;
    const char *kind = l->kind == DL_REG ? "nixlSDList" : "nixlBDList";
    if (put(&buf, &len, &cap, "nixlDList", kind, 10) < 0 ||
        put(&buf, &len, &cap, "t", &t, 4) < 0 || put(&buf, &len, &cap, "n", &n, 8) < 0)
        goto done;
    if (l->kind == DL_XFER && n > 0) {
        if (put(&buf, &len, &cap, "", l->d, n * sizeof(nixl_desc_t)) < 0)
            goto done;
    } else if (l->kind == DL_REG) {
        for (size_t i = 0; i < l->count; i++) {
            char *m = PyBytes_AS_STRING(l->extra[i]);
            size_t ml = (size_t)PyBytes_GET_SIZE(l->extra[i]);
            char *tmp = PyMem_Malloc(24 + ml + 1);
            if (!tmp) {
                PyErr_NoMemory();
                goto done;
            }
            memcpy(tmp, &l->d[i], 24);
            memcpy(tmp + 24, m, ml);
            int rc = put(&buf, &len, &cap, "", tmp, 24 + ml);
            PyMem_Free(tmp);
            if (rc < 0)
                goto done;
        }
    }
    res = PyBytes_FromStringAndSize(buf, (Py_ssize_t)len);
done:
    PyMem_Free(buf);
    return res;
}

typedef struct {
    const uint8_t *p;
    size_t len, pos;
} reader_t;

static int get(reader_t *r, const char *tag, const uint8_t **pl, size_t *n)
{
    size_t tl = strlen(tag);
    uint64_t n64;
    if (r->len - r->pos < tl + 8 || memcmp(r->p + r->pos, tag, tl) != 0)
        goto bad;
    memcpy(&n64, r->p + r->pos + tl, 8);
    if (n64 > r->len - r->pos - tl - 8 || r->len - r->pos - tl - 8 - n64 < 1 ||
        r->p[r->pos + tl + 8 + n64] != '|')
        goto bad;
    *pl = r->p + r->pos + tl + 8;
    *n = (size_t)n64;
    r->pos += tl + 8 + n64 + 1;
    return 0;
bad:
    PyErr_Format(bind_status_exc[-NIXL_ERR_MISMATCH],
                 "NIXL_ERR_MISMATCH: malformed descriptor list: record '%s' expected at offset %zu",
                 tag, r->pos);
    return -1;
}

int dlist_decode(dlist_obj *l, const void *data, size_t len,
                 int (*add)(dlist_obj *, const nixl_desc_t *, const char *, size_t))
{
    reader_t r = { data, len, MAGIC_LEN };
    const uint8_t *pl;
    size_t n;
    uint32_t t;
    uint64_t cnt;
    if (len < MAGIC_LEN || memcmp(data, MAGIC, MAGIC_LEN) != 0) {
        PyErr_SetString(bind_status_exc[-NIXL_ERR_MISMATCH],
                        "NIXL_ERR_MISMATCH: not a serialized descriptor list");
        return -1;
    }
    if (get(&r, "nixlDList", &pl, &n) < 0)
        return -1;
    if (n != 10 || memcmp(pl, l->kind == DL_REG ? "nixlSDList" : "nixlBDList", 10) != 0) {
        PyErr_SetString(bind_status_exc[-NIXL_ERR_MISMATCH],
                        "NIXL_ERR_MISMATCH: descriptor list of another kind");
        return -1;
    }
    if (get(&r, "t", &pl, &n) < 0)
        return -1;
    if (n != 4 || (memcpy(&t, pl, 4), t >= NIXL_MEM_COUNT))
        goto bad;
    if (get(&r, "n", &pl, &n) < 0)
        return -1;
    if (n != 8)
        goto bad;
    memcpy(&cnt, pl, 8);
    l->type = (nixl_mem_t)t;
    if (l->kind == DL_XFER && cnt > 0) {
        if (get(&r, "", &pl, &n) < 0)
            return -1;
        if (n / sizeof(nixl_desc_t) != cnt || n % sizeof(nixl_desc_t))
            goto bad;
        for (uint64_t i = 0; i < cnt; i++) {
            nixl_desc_t d;
            memcpy(&d, pl + i * sizeof d, sizeof d);
            if (add(l, &d, NULL, 0) < 0)
                return -1;
        }
    } else if (l->kind == DL_REG) {
        for (uint64_t i = 0; i < cnt; i++) {
            nixl_desc_t d;
            if (get(&r, "", &pl, &n) < 0)
                return -1;
            if (n < 24)
                goto bad;
            memcpy(&d, pl, 24);
            if (add(l, &d, (const char *)pl + 24, n - 24) < 0)
                return -1;
        }
    }
    if (r.pos != r.len)
        goto bad;
    return 0;
bad:
    PyErr_SetString(bind_status_exc[-NIXL_ERR_MISMATCH],
                    "NIXL_ERR_MISMATCH: malformed descriptor list");
    return -1;
}
