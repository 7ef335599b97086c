/*
 * dlist_codec.c - the reference "serdes" encoding of descriptor lists, used for pickling
 * (reference NIXL-SEMANTICS 5.8). Kept in the extension so that libnixl need not export its
 * internal codec; the format is small: "nixlSerDes|" then records tag | u64 len | payload | '|'.
 */
#include <string.h>

#include "bind.h"
#include "buf.h"
#include "dlist_codec.h"

#define MAGIC "nixlSerDes|"
#define MAGIC_LEN 11

/* A record's tag and payload length; the payload and '|' follow. */
static void put_head(nixl_buf_t *b, const char *tag, size_t n)
{
    nixl_buf_append(b, tag, strlen(tag));
    nixl_buf_append_u64(b, n);
}

static void put(nixl_buf_t *b, const char *tag, const void *p, size_t n)
{
    put_head(b, tag, n);
    nixl_buf_append(b, p, n);
    nixl_buf_append_u8(b, '|');
}

PyObject *dlist_encode(dlist_obj *l)
{
    uint32_t t = (uint32_t)l->type;
    uint64_t n = l->count;
    nixl_buf_t b;
    nixl_buf_init(&b, 256);
    nixl_buf_append(&b, MAGIC, MAGIC_LEN);
    const char *kind = l->kind == DL_REG ? "nixlSDList" : "nixlBDList";
    put(&b, "nixlDList", kind, 10);
    put(&b, "t", &t, 4);
    put(&b, "n", &n, 8);
    if (l->kind == DL_XFER && n > 0) {
        put(&b, "", l->d, n * sizeof(nixl_desc_t));
    } else if (l->kind == DL_REG) {
        for (size_t i = 0; i < l->count; i++) {
            size_t ml = (size_t)PyBytes_GET_SIZE(l->extra[i]);
            put_head(&b, "", 24 + ml);
            nixl_buf_append(&b, &l->d[i], 24);
            nixl_buf_append(&b, PyBytes_AS_STRING(l->extra[i]), ml);
            nixl_buf_append_u8(&b, '|');
        }
    }
    PyObject *res = b.oom ? PyErr_NoMemory()
                          : PyBytes_FromStringAndSize((const char *)b.data, (Py_ssize_t)b.len);
    nixl_buf_free(&b);
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
    PyErr_Format(bind_status_exc[5], "NIXL_ERR_MISMATCH: malformed descriptor list: record '%s' "
                 "expected at offset %zu", tag, r->pos);
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
        PyErr_SetString(bind_status_exc[5], "NIXL_ERR_MISMATCH: not a serialized descriptor list");
        return -1;
    }
    if (get(&r, "nixlDList", &pl, &n) < 0)
        return -1;
    if (n != 10 || memcmp(pl, l->kind == DL_REG ? "nixlSDList" : "nixlBDList", 10) != 0) {
        PyErr_SetString(bind_status_exc[5], "NIXL_ERR_MISMATCH: descriptor list of another kind");
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
    PyErr_SetString(bind_status_exc[5], "NIXL_ERR_MISMATCH: malformed descriptor list");
    return -1;
}
