/* buf.h - a growable byte buffer for building blobs (metadata, frames). */
#ifndef NIXL_UTIL_BUF_H
#define NIXL_UTIL_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct nixl_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
    bool oom; /* an allocation failed: the content is incomplete */
} nixl_buf_t;

/* Start empty with room for `hint` bytes (0: grow on demand). */
void nixl_buf_init(nixl_buf_t *b, size_t hint);
/* Make room for `extra` more bytes; false (and b->oom) when memory is short. */
bool nixl_buf_reserve(nixl_buf_t *b, size_t extra);
void nixl_buf_append(nixl_buf_t *b, const void *data, size_t len);
void nixl_buf_append_u8(nixl_buf_t *b, uint8_t v);
/* Host-endian fixed-width integers (the reference wire formats are host-endian). */
void nixl_buf_append_u32(nixl_buf_t *b, uint32_t v);
void nixl_buf_append_u64(nixl_buf_t *b, uint64_t v);
/* Hand the bytes over (caller frees with free()); the buffer is left empty. */
uint8_t *nixl_buf_take(nixl_buf_t *b, size_t *len);
void nixl_buf_free(nixl_buf_t *b);

#endif
