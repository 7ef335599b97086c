/*
 * lf_wire.c - writers and bounds-checked parsers of the LIBFABRIC backend's connection info,
 * region blobs and messages (the layouts are in lf_wire.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lf_wire.h"

static bool refuse(char *why, size_t why_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool refuse(char *why, size_t why_len, const char *fmt, ...)
{
    if (why && why_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, why_len, fmt, ap);
        va_end(ap);
    }
    return false;
}

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
    return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static void wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void wr32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void wr64(uint8_t *p, uint64_t v)
{
    wr32(p, (uint32_t)v);
    wr32(p + 4, (uint32_t)(v >> 32));
}

bool lf_conn_parse(const void *blob, size_t len, lf_conn_info_t *out, char *why, size_t why_len)
{
    const uint8_t *p = blob;
    if (!p || len < 8)
        return refuse(why, why_len, "connection info of %zu bytes (at least 8 expected)", len);
    if (memcmp(p, "NXLF", 4) != 0)
        return refuse(why, why_len, "connection info without the NXLF magic (not ours, or "
                                    "another version of the backend)");
    if (p[4] != 1)
        return refuse(why, why_len, "connection info version %u (1 expected)", p[4]);
    unsigned nrails = p[5], plen = p[6], fmt = p[7];
    if (nrails < 1 || nrails > LF_RAILS_MAX)
        return refuse(why, why_len, "connection info with %u rails (1 to %u)", nrails,
                      LF_RAILS_MAX);
    if (plen < 1 || plen > LF_PROV_MAX)
        return refuse(why, why_len, "provider name of %u bytes (1 to %u)", plen, LF_PROV_MAX);
    if (fmt >= 64)
        return refuse(why, why_len, "address format %u is not a libfabric one", fmt);
    size_t off = 8;
    if (len - off < plen)
        return refuse(why, why_len, "connection info ends inside the provider name");
    for (unsigned i = 0; i < plen; i++)
        if (p[off + i] < 0x21 || p[off + i] > 0x7e)
            return refuse(why, why_len, "provider name byte %u is not printable", i);
    memcpy(out->prov, p + off, plen);
    out->prov[plen] = '\0';
    off += plen;
    for (unsigned r = 0; r < nrails; r++) {
        if (len - off < 2)
            return refuse(why, why_len, "connection info ends before rail %u's address", r);
        size_t alen = rd16(p + off);
        off += 2;
        if (alen < 1 || alen > LF_ADDR_MAX)
            return refuse(why, why_len, "rail %u: address of %zu bytes (1 to %u)", r, alen,
                          LF_ADDR_MAX);
        if (len - off < alen)
            return refuse(why, why_len, "rail %u: the address runs past the end (%zu bytes "
                          "announced, %zu left)", r, alen, len - off);
        out->addr[r] = p + off;
        out->addr_len[r] = alen;
        off += alen;
    }
    if (off != len)
        return refuse(why, why_len, "%zu bytes after the last address", len - off);
    out->nrails = nrails;
    out->addr_format = fmt;
    return true;
}

size_t lf_conn_write(const lf_conn_info_t *ci, uint8_t *out)
{
    size_t plen = strlen(ci->prov), n = 8 + plen;
    for (unsigned r = 0; r < ci->nrails; r++)
        n += 2 + ci->addr_len[r];
    if (!out)
        return n;
    memcpy(out, "NXLF", 4);
    out[4] = 1;
    out[5] = (uint8_t)ci->nrails;
    out[6] = (uint8_t)plen;
    out[7] = (uint8_t)ci->addr_format;
    memcpy(out + 8, ci->prov, plen);
    size_t off = 8 + plen;
    for (unsigned r = 0; r < ci->nrails; r++) {
        wr16(out + off, (uint16_t)ci->addr_len[r]);
        memcpy(out + off + 2, ci->addr[r], ci->addr_len[r]);
        off += 2 + ci->addr_len[r];
    }
    return n;
}

bool lf_region_parse(const void *blob, size_t len, lf_region_info_t *out, char *why,
                     size_t why_len)
{
    const uint8_t *p = blob;
    if (!p || len < LF_REGION_BLOB_LEN(1))
        return refuse(why, why_len, "region blob of %zu bytes (at least %u expected)", len,
                      LF_REGION_BLOB_LEN(1));
    if (memcmp(p, "NXLR", 4) != 0)
        return refuse(why, why_len, "region blob without the NXLR magic");
    if (p[4] != 1)
        return refuse(why, why_len, "region blob version %u (1 expected)", p[4]);
    unsigned nrails = p[5];
    if (nrails < 1 || nrails > LF_RAILS_MAX)
        return refuse(why, why_len, "region blob with %u rails (1 to %u)", nrails,
                      LF_RAILS_MAX);
    if (len != LF_REGION_BLOB_LEN(nrails))
        return refuse(why, why_len, "region blob of %zu bytes for %u rails (%u expected)", len,
                      nrails, LF_REGION_BLOB_LEN(nrails));
    if (p[6] & ~3u)
        return refuse(why, why_len, "region blob flags 0x%x (only bits 0 and 1 are defined)",
                      p[6]);
    if (p[7])
        return refuse(why, why_len, "region blob reserved byte is %u (0 expected)", p[7]);
    uint64_t base = rd64(p + 8), rlen = rd64(p + 16);
    if (rlen == 0 || base + rlen < base)
        return refuse(why, why_len, "region blob range 0x%llx + %llu is empty or wraps",
                      (unsigned long long)base, (unsigned long long)rlen);
    out->nrails = nrails;
    out->virt_addr = p[6] & 1u;
    out->staged = p[6] & 2u;
    out->base = base;
    out->len = rlen;
    for (unsigned r = 0; r < nrails; r++)
        out->key[r] = rd64(p + 24 + 8 * r);
    return true;
}

void lf_region_write(const lf_region_info_t *ri, uint8_t *out)
{
    memcpy(out, "NXLR", 4);
    out[4] = 1;
    out[5] = (uint8_t)ri->nrails;
    out[6] = (uint8_t)((ri->virt_addr ? 1u : 0u) | (ri->staged ? 2u : 0u));
    out[7] = 0;
    wr64(out + 8, ri->base);
    wr64(out + 16, ri->len);
    for (unsigned r = 0; r < ri->nrails; r++)
        wr64(out + 24 + 8 * r, ri->key[r]);
}

bool lf_msg_parse(const void *buf, size_t len, lf_msg_t *out, char *why, size_t why_len)
{
    const uint8_t *p = buf;
    if (!p || len < LF_MSG_HDR)
        return refuse(why, why_len, "message of %zu bytes (at least %u expected)", len,
                      LF_MSG_HDR);
    if (memcmp(p, "NXLM", 4) != 0)
        return refuse(why, why_len, "message without the NXLM magic");
    if (p[4] != 1)
        return refuse(why, why_len, "message version %u (1 expected)", p[4]);
    if (p[5] != LF_MSG_NOTIF)
        return refuse(why, why_len, "message type %u unknown", p[5]);
    size_t nlen = rd16(p + 6), mlen = rd32(p + 8);
    if (nlen < 1 || nlen > LF_NAME_MAX)
        return refuse(why, why_len, "sender name of %zu bytes (1 to %u)", nlen, LF_NAME_MAX);
    if (mlen > LF_NOTIF_MAX)
        return refuse(why, why_len, "notification of %zu bytes (at most %u)", mlen,
                      LF_NOTIF_MAX);
    if (len != LF_MSG_HDR + nlen + mlen)
        return refuse(why, why_len, "message of %zu bytes announces %zu", len,
                      LF_MSG_HDR + nlen + mlen);
    if (memchr(p + LF_MSG_HDR, '\0', nlen))
        return refuse(why, why_len, "sender name contains a NUL byte");
    out->type = p[5];
    out->name = (const char *)p + LF_MSG_HDR;
    out->name_len = nlen;
    out->payload = p + LF_MSG_HDR + nlen;
    out->len = mlen;
    return true;
}

size_t lf_msg_write(unsigned type, const char *name, size_t name_len, const void *payload,
                    size_t len, uint8_t *out)
{
    size_t n = LF_MSG_HDR + name_len + len;
    if (!out)
        return n;
    memcpy(out, "NXLM", 4);
    out[4] = 1;
    out[5] = (uint8_t)type;
    wr16(out + 6, (uint16_t)name_len);
    wr32(out + 8, (uint32_t)len);
    memcpy(out + LF_MSG_HDR, name, name_len);
    if (len)
        memcpy(out + LF_MSG_HDR + name_len, payload, len);
    return n;
}
