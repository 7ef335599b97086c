/*
 * fuzz_etcd.c - libFuzzer target for what the etcd client reads from the server: the watch
 * stream cut into JSON messages (etcd_stream_next), the fields read from them, and base64.
 *
 * The input is fed as a watch stream in two pieces (a split chosen by the input): every
 * message is taken, its "value" decoded from base64 and its "revision" read; a message never
 * starts past the bytes fed. The input is also decoded as one base64 string, and whatever
 * decodes must survive an encode-decode round trip; and encoded, which must decode back to
 * the bytes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etcd_priv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "fuzz_etcd: %s:%d: check failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                             \
            abort();                                                                    \
        }                                                                               \
    } while (0)

static void take_all(etcd_stream_t *s)
{
    json_object *o;
    for (int guard = 0; guard < 4096 && (o = etcd_stream_next(s)); guard++) {
        CHECK(s->pos <= s->in.len);
        size_t len = 0;
        uint8_t *v = etcd_json_bytes(o, "value", &len);
        free(v);
        (void)etcd_json_i64(o, "revision", -1);
        json_object_put(o);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    etcd_stream_t s;
    memset(&s, 0, sizeof(s));
    nixl_buf_init(&s.in, 0);
    size_t cut = size ? data[0] % (size + 1) : 0;
    nixl_buf_append(&s.in, data, cut);
    take_all(&s);
    nixl_buf_append(&s.in, data + cut, size - cut);
    take_all(&s);
    nixl_buf_free(&s.in);

    char *text = malloc(size + 1);
    CHECK(text);
    memcpy(text, data, size);
    text[size] = '\0';
    size_t n = 0;
    uint8_t *bytes = etcd_b64_decode(text, &n);
    if (bytes) {
        /* (non-canonical text, e.g. set padding bits, decodes too: the bytes must survive a
         * round trip of their own) */
        char *again = etcd_b64_encode(bytes, n);
        size_t m = 0;
        uint8_t *back = again ? etcd_b64_decode(again, &m) : NULL;
        CHECK(back && m == n && (n == 0 || memcmp(back, bytes, n) == 0));
        free(back);
        free(again);
        free(bytes);
    }
    free(text);
    char *enc = etcd_b64_encode(data, size);
    CHECK(enc);
    bytes = etcd_b64_decode(enc, &n);
    CHECK(bytes && n == size && (size == 0 || memcmp(bytes, data, size) == 0));
    free(bytes);
    free(enc);
    return 0;
}
