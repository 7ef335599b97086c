/* sc_proto.c - side-channel frames and commands (sc_proto.h). */
#include "sc_proto.h"

#include <stdlib.h>
#include <string.h>

#include "array.h"

/* Growth step of a frame body: large enough to keep reallocations rare, small enough that a
 * peer announcing a huge frame and sending nothing costs little. */
#define SC_BODY_STEP (64u * 1024u)

uint8_t *sc_frame_build(const char *verb, const void *payload, size_t len, size_t *out_len)
{
    size_t body = SC_MAGIC_LEN + SC_VERB_LEN + len;
    if (len > SIZE_MAX - SC_HDR_LEN - SC_MAGIC_LEN - SC_VERB_LEN)
        return NULL;
    uint8_t *f = malloc(SC_HDR_LEN + body);
    if (!f)
        return NULL;
    uint64_t n = body;
    memcpy(f, &n, SC_HDR_LEN); /* host-endian, as the reference writes it */
    memcpy(f + SC_HDR_LEN, SC_MAGIC, SC_MAGIC_LEN);
    memcpy(f + SC_HDR_LEN + SC_MAGIC_LEN, verb, SC_VERB_LEN);
    if (len)
        memcpy(f + SC_HDR_LEN + SC_MAGIC_LEN + SC_VERB_LEN, payload, len);
    *out_len = SC_HDR_LEN + body;
    return f;
}

void sc_body_iter_init(sc_body_iter_t *it, const void *body, size_t len)
{
    it->p = body;
    it->len = len;
    it->pos = 0;
}

/* Where the next "NIXLCOMM:" starts at or after `from`, or `len` if nowhere. */
static size_t next_magic(const uint8_t *p, size_t len, size_t from)
{
    while (from + SC_MAGIC_LEN <= len) {
        const uint8_t *hit = memchr(p + from, SC_MAGIC[0], len - from - SC_MAGIC_LEN + 1);
        if (!hit)
            break;
        size_t at = (size_t)(hit - p);
        if (memcmp(hit, SC_MAGIC, SC_MAGIC_LEN) == 0)
            return at;
        from = at + 1;
    }
    return len;
}

static sc_verb_t verb_of(const uint8_t *v)
{
    if (memcmp(v, "LOAD", SC_VERB_LEN) == 0)
        return SC_VERB_LOAD;
    if (memcmp(v, "SEND", SC_VERB_LEN) == 0)
        return SC_VERB_SEND;
    if (memcmp(v, "INVL", SC_VERB_LEN) == 0)
        return SC_VERB_INVL;
    if (memcmp(v, "AUTH", SC_VERB_LEN) == 0)
        return SC_VERB_AUTH;
    if (memcmp(v, "DENY", SC_VERB_LEN) == 0)
        return SC_VERB_DENY;
    return SC_VERB_UNKNOWN;
}

int sc_body_next(sc_body_iter_t *it, sc_cmd_t *cmd, const char **why)
{
    if (it->pos >= it->len)
        return 0;
    size_t left = it->len - it->pos;
    const uint8_t *p = it->p + it->pos;
    if (left < SC_MAGIC_LEN || memcmp(p, SC_MAGIC, SC_MAGIC_LEN) != 0) {
        *why = "the message does not start with \"NIXLCOMM:\"";
        return -1;
    }
    if (left < SC_MAGIC_LEN + SC_VERB_LEN) {
        *why = "the message ends inside its command name";
        return -1;
    }
    const uint8_t *v = p + SC_MAGIC_LEN;
    size_t start = it->pos + SC_MAGIC_LEN + SC_VERB_LEN;
    cmd->verb = verb_of(v);
    cmd->verb_text = (const char *)v;
    /* A metadata blob (bare or in an envelope) may contain any bytes: it runs to the end of
     * the frame. */
    bool to_end = cmd->verb == SC_VERB_LOAD || cmd->verb == SC_VERB_AUTH;
    size_t end = to_end ? it->len : next_magic(it->p, it->len, start);
    cmd->payload = it->p + start;
    cmd->len = end - start;
    it->pos = end;
    return 1;
}

void sc_reader_init(sc_reader_t *r, uint64_t max_frame)
{
    memset(r, 0, sizeof(*r));
    r->max_frame = max_frame;
}

void sc_reader_free(sc_reader_t *r)
{
    free(r->body);
    r->body = NULL;
    r->cap = r->got = r->hdr_got = 0;
}

bool sc_reader_partial(const sc_reader_t *r)
{
    return r->hdr_got > 0;
}

uint64_t sc_reader_announced(const sc_reader_t *r)
{
    return r->need;
}

sc_feed_result_t sc_reader_feed(sc_reader_t *r, const uint8_t *data, size_t len, size_t *used)
{
    size_t pos = 0;
    if (r->hdr_got < SC_HDR_LEN) {
        size_t n = SC_HDR_LEN - r->hdr_got;
        if (n > len)
            n = len;
        memcpy(r->hdr + r->hdr_got, data, n);
        r->hdr_got += n;
        pos += n;
        if (r->hdr_got < SC_HDR_LEN) {
            *used = pos;
            return SC_FEED_MORE;
        }
        memcpy(&r->need, r->hdr, SC_HDR_LEN);
        r->got = 0;
        if (r->need > r->max_frame) {
            *used = pos;
            return SC_FEED_TOO_LARGE;
        }
    }
    size_t want = (size_t)(r->need - r->got);
    size_t n = len - pos < want ? len - pos : want;
    if (n) {
        if (r->got + n > r->cap) {
            size_t cap = nixl_array_grow_cap(r->cap ? r->cap : SC_BODY_STEP, r->got + n, 1);
            if (cap > r->need)
                cap = (size_t)r->need;
            uint8_t *b = realloc(r->body, cap);
            if (!b) {
                *used = pos;
                return SC_FEED_NOMEM;
            }
            r->body = b;
            r->cap = cap;
        }
        memcpy(r->body + r->got, data + pos, n);
        r->got += n;
        pos += n;
    }
    *used = pos;
    return r->got == r->need ? SC_FEED_FRAME : SC_FEED_MORE;
}

uint8_t *sc_reader_take(sc_reader_t *r, size_t *len)
{
    uint8_t *b = r->body;
    *len = r->got;
    r->body = NULL;
    r->cap = r->got = r->hdr_got = 0;
    r->need = 0;
    return b;
}
