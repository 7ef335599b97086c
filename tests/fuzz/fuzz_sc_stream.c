/*
 * fuzz_sc_stream.c - libFuzzer target for the side channel's stream reader and command parser.
 *
 * The input is a byte stream as a peer would send it. It is fed twice, whole and in chunks
 * whose sizes come from the input itself, and both feedings must produce the same frames
 * (reassembly must not depend on how TCP cut the stream). Every frame's commands are walked;
 * a LOAD payload must end exactly at the end of its frame.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sc_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "fuzz_sc_stream: %s:%d: check failed: %s\n", __FILE__,      \
                    __LINE__, #cond);                                                   \
            abort();                                                                    \
        }                                                                               \
    } while (0)

#define MAX_FRAMES 64
#define LIMIT 4096

typedef struct {
    size_t n;
    size_t lens[MAX_FRAMES];
    uint64_t sums[MAX_FRAMES];
    int end; /* last feed result that stopped the stream, or -1 */
} frames_t;

static void walk(const uint8_t *body, size_t len)
{
    sc_body_iter_t it;
    sc_body_iter_init(&it, body, len);
    sc_cmd_t c;
    const char *why = NULL;
    int r;
    while ((r = sc_body_next(&it, &c, &why)) > 0) {
        CHECK(c.payload >= body && c.payload + c.len <= body + len);
        if (c.verb == SC_VERB_LOAD)
            CHECK(c.payload + c.len == body + len);
    }
    CHECK(r == 0 || why != NULL);
}

static void feed(const uint8_t *data, size_t size, size_t step, frames_t *out)
{
    sc_reader_t r;
    sc_reader_init(&r, LIMIT);
    out->n = 0;
    out->end = -1;
    size_t pos = 0;
    while (pos < size && out->end < 0) {
        size_t chunk = size - pos < step ? size - pos : step;
        size_t used = 0;
        sc_feed_result_t fr = sc_reader_feed(&r, data + pos, chunk, &used);
        CHECK(used <= chunk);
        pos += used;
        if (fr == SC_FEED_FRAME) {
            size_t len;
            uint8_t *b = sc_reader_take(&r, &len);
            CHECK(len <= LIMIT && (len == 0 || b));
            walk(b, len);
            if (out->n < MAX_FRAMES) {
                uint64_t s = 0;
                for (size_t i = 0; i < len; i++)
                    s = s * 131 + b[i];
                out->lens[out->n] = len;
                out->sums[out->n] = s;
                out->n++;
            }
            free(b);
        } else if (fr != SC_FEED_MORE) {
            out->end = (int)fr;
        } else {
            CHECK(used == chunk);
        }
    }
    sc_reader_free(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    frames_t whole, pieces;
    feed(data, size, size ? size : 1, &whole);
    feed(data, size, size ? (size_t)(data[0] % 13) + 1 : 1, &pieces);
    CHECK(whole.n == pieces.n && whole.end == pieces.end);
    for (size_t i = 0; i < whole.n; i++)
        CHECK(whole.lens[i] == pieces.lens[i] && whole.sums[i] == pieces.sums[i]);
    return 0;
}
