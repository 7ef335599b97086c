/*
 * sc_proto.h - the metadata side channel's wire protocol (reference NIXL-SEMANTICS 5.10), as
 * pure functions over bytes so that they can be tested and fuzzed without sockets.
 *
 * A message is a frame: an 8-byte host-endian length, then that many body bytes. A body holds
 * commands "NIXLCOMM:" + a 4-character verb + payload:
 *   LOAD <metadata blob>   load the sender's metadata
 *   SEND                   reply on this connection with LOAD + the full local metadata
 *   INVL <agent name>      forget the named agent
 * and, only between agents of ours (a reference agent logs unknown verbs and goes on):
 *   AUTH <envelope>        one of the above, with its proof (auth.h; a secret is set)
 *   DENY <reason>          the receiver refused a command: it needs a proof, or has no secret
 *
 * The reference splits a body on every occurrence of the text "NIXLCOMM:", so a blob that
 * happens to contain it is cut in two. We read a LOAD payload to the end of its frame (every
 * known sender puts one command in a frame), and only SEND and INVL are followed by further
 * commands.
 */
#ifndef NIXL_MD_SC_PROTO_H
#define NIXL_MD_SC_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nixl.h"

#define SC_MAGIC "NIXLCOMM:"
#define SC_MAGIC_LEN 9
#define SC_VERB_LEN 4
#define SC_HDR_LEN 8

typedef enum sc_verb {
    SC_VERB_LOAD,
    SC_VERB_SEND,
    SC_VERB_INVL,
    SC_VERB_AUTH, /* an authenticated command (auth.h); binary, runs to the end of the frame */
    SC_VERB_DENY, /* a refusal and its reason, from an agent that could not accept ours */
    SC_VERB_UNKNOWN, /* well-formed but not ours: skipped with a warning */
} sc_verb_t;

typedef struct sc_cmd {
    sc_verb_t verb;
    const char *verb_text; /* the 4 verb bytes as received (not NUL-terminated) */
    const uint8_t *payload;
    size_t len;
} sc_cmd_t;

/*
 * A whole frame, header included, in one allocation: what goes on the wire for `verb` and
 * `payload`. NULL when memory is short.
 */
uint8_t *sc_frame_build(const char *verb, const void *payload, size_t len, size_t *out_len);

/* Walks the commands of one frame body. */
typedef struct sc_body_iter {
    const uint8_t *p;
    size_t len;
    size_t pos;
} sc_body_iter_t;

void sc_body_iter_init(sc_body_iter_t *it, const void *body, size_t len);
/*
 * The next command: 1 and *cmd, 0 at the end of the body, -1 when the body is not made of
 * commands (it does not start with "NIXLCOMM:" + a verb); *why then says what is wrong.
 */
int sc_body_next(sc_body_iter_t *it, sc_cmd_t *cmd, const char **why);

/*
 * Reassembles frames from a byte stream. Bodies are allocated as their bytes arrive (never
 * from the announced length alone), so a peer that announces a large frame costs only what it
 * really sends.
 */
typedef struct sc_reader {
    uint8_t hdr[SC_HDR_LEN];
    size_t hdr_got;
    uint64_t need; /* body length of the frame being read */
    uint8_t *body;
    size_t cap;
    size_t got;
    uint64_t max_frame;
} sc_reader_t;

void sc_reader_init(sc_reader_t *r, uint64_t max_frame);
void sc_reader_free(sc_reader_t *r);
/* Whether the reader is in the middle of a frame. */
bool sc_reader_partial(const sc_reader_t *r);

typedef enum sc_feed_result {
    SC_FEED_MORE,      /* all input consumed, no complete frame */
    SC_FEED_FRAME,     /* a frame is complete: sc_reader_take() it; *used bytes were consumed */
    SC_FEED_TOO_LARGE, /* the announced length exceeds max_frame: stop reading this stream */
    SC_FEED_NOMEM,
} sc_feed_result_t;

/* Consume up to `len` bytes; *used says how many were taken. */
sc_feed_result_t sc_reader_feed(sc_reader_t *r, const uint8_t *data, size_t len, size_t *used);
/* The announced length of the frame being read (after SC_FEED_TOO_LARGE, for the log). */
uint64_t sc_reader_announced(const sc_reader_t *r);
/* Hand over the completed body (caller frees) and reset for the next frame. */
uint8_t *sc_reader_take(sc_reader_t *r, size_t *len);

#endif
