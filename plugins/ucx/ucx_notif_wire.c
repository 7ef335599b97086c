/*
 * ucx_notif_wire.c - the notification message in the reference's form: a serdes container
 * {"name": sender, "msg": payload}, that is "nixlSerDes|", then per record the tag bytes, an
 * 8-byte host-endian length, the payload and one '|'.
 *
 * The parser trusts nothing of a peer's bytes: every length is checked against what is left
 * before it is used (with no addition that could wrap), the records must come in the
 * reference's order with the reference's tags, and the whole message must be consumed, so a
 * message means exactly one (sender, payload) pair.
 */
#include "ucx_notif_wire.h"

#include <string.h>

#define SERDES_MAGIC "nixlSerDes|"
#define SERDES_MAGIC_LEN 11u
#define TAG_NAME "name"
#define TAG_MSG "msg"

static size_t record_size(size_t tag_len, size_t len)
{
    return tag_len + sizeof(uint64_t) + len + 1;
}

size_t ucx_notif_wire_size(size_t name_len, size_t len)
{
    return SERDES_MAGIC_LEN + record_size(strlen(TAG_NAME), name_len) +
           record_size(strlen(TAG_MSG), len);
}

static uint8_t *put_record(uint8_t *p, const char *tag, const void *data, size_t len)
{
    size_t tag_len = strlen(tag);
    uint64_t l = len;
    memcpy(p, tag, tag_len);
    p += tag_len;
    memcpy(p, &l, sizeof(l));
    p += sizeof(l);
    if (len)
        memcpy(p, data, len);
    p += len;
    *p++ = '|';
    return p;
}

void ucx_notif_wire_write(const char *name, size_t name_len, const void *msg, size_t len,
                          uint8_t *out)
{
    memcpy(out, SERDES_MAGIC, SERDES_MAGIC_LEN);
    uint8_t *p = put_record(out + SERDES_MAGIC_LEN, TAG_NAME, name, name_len);
    put_record(p, TAG_MSG, msg, len);
}

/* The record `tag` at p (before `end`); NULL and *why when it is not there. */
static const uint8_t *get_record(const uint8_t *p, const uint8_t *end, const char *tag,
                                 const uint8_t **data, size_t *len, const char **why)
{
    size_t tag_len = strlen(tag);
    uint64_t l;
    if ((size_t)(end - p) < tag_len + sizeof(l) + 1 || memcmp(p, tag, tag_len)) {
        *why = "a record missing (the sender name, then the message)";
        return NULL;
    }
    p += tag_len;
    memcpy(&l, p, sizeof(l));
    p += sizeof(l);
    /* at least one byte (the '|') is left here, so the comparison cannot wrap */
    if (l >= (uint64_t)(end - p) || p[l] != '|') {
        *why = "a length past the end of the message";
        return NULL;
    }
    *data = p;
    *len = (size_t)l;
    return p + l + 1;
}

bool ucx_notif_parse(const void *data, size_t len, ucx_notif_view_t *v, const char **why)
{
    const uint8_t *p = data, *end, *name = NULL, *msg = NULL;
    size_t name_len = 0, msg_len = 0;
    if (!data || len < SERDES_MAGIC_LEN || memcmp(p, SERDES_MAGIC, SERDES_MAGIC_LEN)) {
        *why = "not a serdes container";
        return false;
    }
    end = p + len;
    p = get_record(p + SERDES_MAGIC_LEN, end, TAG_NAME, &name, &name_len, why);
    if (!p || !(p = get_record(p, end, TAG_MSG, &msg, &msg_len, why)))
        return false;
    if (!name_len || name_len > UCX_NAME_MAX || memchr(name, '\0', name_len)) {
        *why = "a sender name that is empty, too long or has a NUL byte";
        return false;
    }
    if (msg_len > UCX_NOTIF_MAX) {
        *why = "a message over the notification size limit";
        return false;
    }
    if (p != end) {
        *why = "bytes after the message record";
        return false;
    }
    v->name = (const char *)name;
    v->name_len = name_len;
    v->msg = msg;
    v->msg_len = msg_len;
    return true;
}
