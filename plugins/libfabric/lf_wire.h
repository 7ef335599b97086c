/*
 * lf_wire.h - the three byte formats the LIBFABRIC backend exchanges with peers, and their
 * bounds-checked parsers. Pure functions of the bytes (no libfabric state), so the fuzz target
 * runs them as the engine does. Every byte from a peer is hostile: a parser accepts exactly the
 * documented layout (magic, version, every length in range, nothing left over) or refuses it
 * with a reason, before anything of it reaches libfabric (fi_av_insert reads an address without
 * a length; a key or address of the wrong size would be read past its end).
 *
 * All integers little-endian, no padding.
 *
 * Connection info ("NXLF", version 1): what load_remote_conn gets
 *   magic[4] "NXLF" | version u8 = 1 | nrails u8 (1..LF_RAILS_MAX) | prov_len u8 (1..63) |
 *   addr_format u8 (libfabric's FI_ADDR_* of the addresses, < 64) | provider name (prov_len
 *   printable bytes) | per rail: addr_len u16 (1..LF_ADDR_MAX) + address bytes
 *
 * Region blob ("NXLR", version 1): the public blob of one registered region
 *   magic[4] "NXLR" | version u8 = 1 | nrails u8 (1..LF_RAILS_MAX) | flags u8 (bit 0: remote
 *   addresses are virtual addresses, else offsets from base; bit 1: GPU memory that its agent
 *   stages through its own pinned buffers, out of peers' reach (keys 0); no other bit) |
 *   reserved u8 = 0 | base u64 | len u64 (not 0, base + len does not wrap) | per rail: key u64
 *
 * Message ("NXLM", version 1): one message on the endpoint (a notification)
 *   magic[4] "NXLM" | version u8 = 1 | type u8 (1: notification) | name_len u16 (1..LF_NAME_MAX)
 *   | msg_len u32 (<= LF_NOTIF_MAX) | sender's agent name | payload
 */
#ifndef NIXL_LF_WIRE_H
#define NIXL_LF_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LF_RAILS_MAX 8u
#define LF_ADDR_MAX 256u
#define LF_PROV_MAX 63u
#define LF_NAME_MAX 1024u
/* One message (a receive buffer) is at most this long; a notification payload what is left. */
#define LF_MSG_MAX 65536u
#define LF_MSG_HDR 12u
#define LF_NOTIF_MAX (LF_MSG_MAX - LF_MSG_HDR - LF_NAME_MAX)
#define LF_REGION_BLOB_LEN(nrails) (24u + 8u * (nrails))
#define LF_MSG_NOTIF 1u

typedef struct lf_conn_info {
    unsigned nrails;
    unsigned addr_format;
    char prov[LF_PROV_MAX + 1];
    size_t addr_len[LF_RAILS_MAX];
    const uint8_t *addr[LF_RAILS_MAX]; /* point into the parsed blob */
} lf_conn_info_t;

typedef struct lf_region_info {
    unsigned nrails;
    bool virt_addr;
    bool staged; /* GPU memory peers cannot reach (flag bit 1) */
    uint64_t base, len;
    uint64_t key[LF_RAILS_MAX];
} lf_region_info_t;

typedef struct lf_msg {
    unsigned type;
    const char *name; /* not NUL-terminated: name_len bytes */
    size_t name_len;
    const uint8_t *payload;
    size_t len;
} lf_msg_t;

/* Parse; false with `why` (NUL-terminated, may be NULL) saying what is wrong. */
bool lf_conn_parse(const void *blob, size_t len, lf_conn_info_t *out, char *why, size_t why_len);
bool lf_region_parse(const void *blob, size_t len, lf_region_info_t *out, char *why,
                     size_t why_len);
bool lf_msg_parse(const void *buf, size_t len, lf_msg_t *out, char *why, size_t why_len);

/* Writers: the exact size first (out NULL), then the bytes. */
size_t lf_conn_write(const lf_conn_info_t *ci, uint8_t *out);
void lf_region_write(const lf_region_info_t *ri, uint8_t *out);
size_t lf_msg_write(unsigned type, const char *name, size_t name_len, const void *payload,
                    size_t len, uint8_t *out);

#endif
