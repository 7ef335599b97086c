/*
 * fuzz_ucx_notif.c - libFuzzer target for the UCX notification message as a peer's active
 * message hands it to us (plugins/ucx/ucx_notif_wire.c, the parser the handler calls).
 *
 * Any bytes: parsed; what parses must lie inside the input, carry a sender name of 1 to
 * UCX_NAME_MAX bytes without a NUL and a message of at most UCX_NOTIF_MAX bytes, and write back
 * to exactly the input (so a message means one (sender, payload) pair and nothing else). The
 * other way round, the input cut into a name and a message must be written and parsed back to
 * the same two, or refused for the name alone.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ucx_notif_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "fuzz_ucx_notif: %s:%d: check failed: %s\n", __FILE__,      \
                    __LINE__, #cond);                                                   \
            abort();                                                                    \
        }                                                                               \
    } while (0)

static int inside(const void *p, size_t len, const uint8_t *data, size_t size)
{
    const uint8_t *q = p;
    return q >= data && len <= size && (size_t)(q - data) <= size - len;
}

/* The input as it parses, or not. */
static void parse_side(const uint8_t *data, size_t size)
{
    ucx_notif_view_t v;
    const char *why = NULL;
    if (!ucx_notif_parse(size ? data : NULL, size, &v, &why)) {
        CHECK(why != NULL && *why);
        return;
    }
    CHECK(inside(v.name, v.name_len, data, size) && inside(v.msg, v.msg_len, data, size));
    CHECK(v.name_len >= 1 && v.name_len <= UCX_NAME_MAX && !memchr(v.name, 0, v.name_len));
    CHECK(v.msg_len <= UCX_NOTIF_MAX);
    size_t n = ucx_notif_wire_size(v.name_len, v.msg_len);
    CHECK(n == size);
    uint8_t *out = malloc(n);
    CHECK(out != NULL);
    ucx_notif_wire_write(v.name, v.name_len, v.msg, v.msg_len, out);
    CHECK(memcmp(out, data, size) == 0);
    free(out);
}

/* The input's first byte says where to cut the rest into a sender name and a message. */
static void write_side(const uint8_t *data, size_t size)
{
    if (size < 1)
        return;
    size_t cut = data[0] % size;
    const char *name = (const char *)data + 1;
    size_t name_len = cut, msg_len = size - 1 - cut;
    const uint8_t *msg = data + 1 + cut;
    size_t n = ucx_notif_wire_size(name_len, msg_len);
    uint8_t *out = malloc(n);
    CHECK(out != NULL);
    ucx_notif_wire_write(name, name_len, msg, msg_len, out);
    ucx_notif_view_t v;
    const char *why = NULL;
    int ok = ucx_notif_parse(out, n, &v, &why);
    int name_ok = name_len >= 1 && name_len <= UCX_NAME_MAX && !memchr(name, 0, name_len);
    CHECK(ok == name_ok);
    if (ok)
        CHECK(v.name_len == name_len && !memcmp(v.name, name, name_len) &&
              v.msg_len == msg_len && (!msg_len || !memcmp(v.msg, msg, msg_len)));
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    parse_side(data, size);
    write_side(data, size);
    return 0;
}
