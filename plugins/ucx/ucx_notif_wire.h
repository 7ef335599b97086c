/*
 * ucx_notif_wire.h - the notification message's bytes (ucx_notif_wire.c): written for a send,
 * parsed (bounds-checked) when a peer's arrives. Pure functions of the bytes, no UCX state, so
 * the active-message handler and the fuzz target (tests/fuzz/fuzz_ucx_notif.c) run the same
 * parser.
 */
#ifndef NIXL_UCX_NOTIF_WIRE_H
#define NIXL_UCX_NOTIF_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest notification we send or accept: far above any real use, small enough that a hostile
 * peer cannot make us allocate gigabytes. */
#define UCX_NOTIF_MAX ((size_t)64 << 20)
/* Longest agent name (ours when created, a sender's when received). */
#define UCX_NAME_MAX 4096u

/* A parsed notification: pointers into the bytes given to ucx_notif_parse(). */
typedef struct ucx_notif_view {
    const char *name; /* the sender's name, name_len bytes, not NUL-terminated */
    size_t name_len;
    const uint8_t *msg;
    size_t msg_len;
} ucx_notif_view_t;

/* Bytes of the message from sender `name_len` carrying `len` bytes. */
size_t ucx_notif_wire_size(size_t name_len, size_t len);
/* Write it into out (ucx_notif_wire_size bytes). */
void ucx_notif_wire_write(const char *name, size_t name_len, const void *msg, size_t len,
                          uint8_t *out);

/*
 * Parse a received message. true: *v points into data. false: *why (a constant string) says
 * what is wrong: not the container, a record missing or misnamed, a length past the end, a
 * sender name that is empty, longer than UCX_NAME_MAX or holds a NUL byte, a message over
 * UCX_NOTIF_MAX, or bytes after the message record.
 */
bool ucx_notif_parse(const void *data, size_t len, ucx_notif_view_t *v, const char **why);

#endif
