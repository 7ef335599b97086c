#include "buf.h"

#include <stdlib.h>
#include <string.h>

#include "array.h"

void nixl_buf_init(nixl_buf_t *b, size_t hint)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->oom = false;
    if (hint)
        nixl_buf_reserve(b, hint);
}

bool nixl_buf_reserve(nixl_buf_t *b, size_t extra)
{
    if (b->oom)
        return false;
    if (extra <= b->cap - b->len)
        return true;
    if (extra > SIZE_MAX - b->len) {
        b->oom = true;
        return false;
    }
    size_t cap = nixl_array_grow_cap(b->cap ? b->cap : 64, b->len + extra, 1);
    uint8_t *p = realloc(b->data, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->data = p;
    b->cap = cap;
    return true;
}

void nixl_buf_append(nixl_buf_t *b, const void *data, size_t len)
{
    if (!len || !nixl_buf_reserve(b, len))
        return;
    memcpy(b->data + b->len, data, len);
    b->len += len;
}

void nixl_buf_append_u8(nixl_buf_t *b, uint8_t v)
{
    nixl_buf_append(b, &v, 1);
}

void nixl_buf_append_u32(nixl_buf_t *b, uint32_t v)
{
    nixl_buf_append(b, &v, sizeof(v));
}

void nixl_buf_append_u64(nixl_buf_t *b, uint64_t v)
{
    nixl_buf_append(b, &v, sizeof(v));
}

uint8_t *nixl_buf_take(nixl_buf_t *b, size_t *len)
{
    uint8_t *p = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

void nixl_buf_free(nixl_buf_t *b)
{
    free(b->data);
    nixl_buf_init(b, 0);
}
