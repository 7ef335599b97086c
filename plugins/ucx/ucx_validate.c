/*
 * ucx_validate.c - bounds-checked structural checks of what a peer hands to UCX: its worker
 * address (the connection info) and its packed remote keys (the region blobs).
 *
 * UCX parses both without a length (ucp_ep_create takes an address, ucp_ep_rkey_unpack a
 * buffer, neither its size) and trusts every length and index inside: a mutated byte sends it
 * past the end of the buffer or into an assertion. So before UCX sees a blob, we walk it as
 * UCX will, with the length we know, and refuse it with the reason when any part is out of
 * bounds, uses a version or flag we do not know, or leaves bytes over.
 *
 * The formats, as UCX 1.13 to 1.16 write them (little-endian, no padding):
 *
 * Worker address, address version 1 (the default of every UCX since 1.12; version 2, chosen
 * with UCX_ADDRESS_VERSION=v2, is refused: see docs/differences.md):
 *   header    u8: bits 0-3 the address version (0 = v1), bits 4-7 flags: 0x10 debug info
 *                 (the worker name follows), 0x20 worker uuid, 0x40 client id, 0x80 AM only
 *   uuid      u64, if flagged; client id u64, if flagged; name u8 length + bytes, if flagged
 *   devices, each:
 *     md      u8: 0xff alone = no device at all (the address ends there); else bit 7 = the
 *                 device has no transports, bits 5-6 = MD capability flags, bits 0-4 the index
 *     dev len u8: bit 7 = last device, bit 6 = a path count follows the device address,
 *                 bit 5 = a system device id follows; bits 0-4 the device address length
 *     device address, [paths u8, never 0], [system device u8]
 *     transports (unless the device has none), each:
 *       name checksum u16; attributes: overhead f32, bandwidth f32, latency overhead f32,
 *       priority and capability flags u32 (all floats finite, overheads not negative);
 *       iface len u8: bit 7 = last transport of the device, bit 6 = endpoint addresses follow
 *       (never in a worker address, refused); bits 0-5 the interface address length;
 *       interface address
 *   nothing after the last device.
 *
 * Remote key (ucp_rkey_pack):
 *   md map u64 (bit i: the key carries a transport key of the packer's MD i), memory type u8
 *   (a ucs_memory_type_t), then one transport key per bit of the map in increasing order:
 *   length u8 + bytes. UCX may append information about the memory's system device (GPU
 *   memory); it is not structured for us to check, so up to UCX_RKEY_TRAILER_MAX bytes are
 *   accepted, and the key is always handed to UCX in a copy padded with zeros (ucx_mem.c).
 *
 * The engine checks its own address and keys with the same code (ucx_conn.c, ucx_mem.c): a UCX
 * whose format is not this one (the unified mode, UCX_UNIFIED_MODE=y, packs shorter transport
 * attributes, for one) is noticed there, and its peers' blobs are refused with that reason
 * instead of being trusted.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <ucs/memory/memory_type.h>

#include "ucx_validate.h"

typedef struct {
    const uint8_t *p;
    size_t n, off;
    char *why;
    size_t why_len;
} rd_t;

static bool fail(rd_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool fail(rd_t *r, const char *fmt, ...)
{
    if (r->why && r->why_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->why, r->why_len, fmt, ap);
        va_end(ap);
    }
    return false;
}

/* `k` more bytes are there */
static bool have(const rd_t *r, size_t k)
{
    return r->n - r->off >= k;
}

static bool u8(rd_t *r, const char *what, uint8_t *out)
{
    if (!have(r, 1))
        return fail(r, "%s at byte %zu is past the end (%zu bytes)", what, r->off, r->n);
    *out = r->p[r->off++];
    return true;
}

static bool skip(rd_t *r, size_t k, const char *what)
{
    if (!have(r, k))
        return fail(r, "%s (%zu bytes at byte %zu) runs past the end (%zu bytes)", what, k,
                    r->off, r->n);
    r->off += k;
    return true;
}

static float f32(const uint8_t *p)
{
    uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                 (uint32_t)p[3] << 24;
    float f;
    memcpy(&f, &v, sizeof(f));
    return f;
}

#define ADDR_VERSION_MASK 0x0fu
#define ADDR_FLAG_DEBUG_INFO 0x10u
#define ADDR_FLAG_UUID 0x20u
#define ADDR_FLAG_CLIENT_ID 0x40u
#define ADDR_FLAG_AM_ONLY 0x80u
#define ADDR_NULL_MD 0xffu
#define ADDR_MD_EMPTY 0x80u
#define ADDR_LAST 0x80u
#define ADDR_DEV_PATHS 0x40u
#define ADDR_DEV_SYSDEV 0x20u
#define ADDR_DEV_LEN 0x1fu
#define ADDR_IFACE_EP 0x40u
#define ADDR_IFACE_LEN 0x3fu
#define ADDR_ATTR_LEN 16u
/* UCX keeps at most 64 transport resources (UCP_MAX_RESOURCES in 1.13), so never more
 * entries than that in an address. */
#define ADDR_MAX_TLS 64u

static bool check_attr(rd_t *r, unsigned dev, unsigned tl)
{
    size_t at = r->off;
    if (!skip(r, ADDR_ATTR_LEN, "transport attributes"))
        return false;
    float ovh = f32(r->p + at), bw = f32(r->p + at + 4), lat = f32(r->p + at + 8);
    if (!isfinite(ovh) || !isfinite(bw) || !isfinite(lat) || ovh < 0 || lat < 0)
        return fail(r,
                    "device %u transport %u: its performance attributes (overhead %g, "
                    "bandwidth %g, latency overhead %g) are not finite non-negative numbers",
                    dev, tl, (double)ovh, (double)bw, (double)lat);
    return true;
}

bool ucx_addr_check(const void *blob, size_t len, char *why, size_t why_len)
{
    rd_t r = {.p = blob, .n = len, .why = why, .why_len = why_len};
    uint8_t h = 0, b = 0;
    if (!blob || !len)
        return fail(&r, "the worker address is empty");
    if (!u8(&r, "the header", &h))
        return false;
    if ((h & ADDR_VERSION_MASK) != 0)
        return fail(&r,
                    "worker address version %u is not one this backend can check (only "
                    "version 1, UCX's default; UCX_ADDRESS_VERSION=v2 is not supported)",
                    (unsigned)(h & ADDR_VERSION_MASK) + 1);
    if ((h & ADDR_FLAG_UUID) && !skip(&r, 8, "the worker uuid"))
        return false;
    if ((h & ADDR_FLAG_CLIENT_ID) && !skip(&r, 8, "the client id"))
        return false;
    if (h & ADDR_FLAG_DEBUG_INFO) {
        if (!u8(&r, "the worker name length", &b) || !skip(&r, b, "the worker name"))
            return false;
    }
    (void)ADDR_FLAG_AM_ONLY; /* changes nothing in the layout */
    if (!have(&r, 1))
        return fail(&r, "the address ends before its device list (byte %zu)", r.off);
    if (r.p[r.off] == ADDR_NULL_MD) {
        r.off++;
    } else {
        unsigned ntl = 0;
        for (unsigned dev = 0;; dev++) {
            uint8_t md = 0, dl = 0;
            if (!u8(&r, "a device's MD index", &md) || !u8(&r, "a device's address length", &dl))
                return false;
            if (md == ADDR_NULL_MD)
                return fail(&r, "device %u: the 'no device' mark inside a device list", dev);
            if (!skip(&r, dl & ADDR_DEV_LEN, "a device address"))
                return false;
            if (dl & ADDR_DEV_PATHS) {
                if (!u8(&r, "a device's path count", &b))
                    return false;
                if (!b)
                    return fail(&r, "device %u has 0 network paths", dev);
            }
            if ((dl & ADDR_DEV_SYSDEV) && !skip(&r, 1, "a device's system device"))
                return false;
            if (!(md & ADDR_MD_EMPTY)) {
                for (unsigned tl = 0;; tl++) {
                    if (++ntl > ADDR_MAX_TLS)
                        return fail(&r, "more than %u transports", ADDR_MAX_TLS);
                    if (!skip(&r, 2, "a transport name checksum") || !check_attr(&r, dev, tl) ||
                        !u8(&r, "an interface address length", &b))
                        return false;
                    if (b & ADDR_IFACE_EP)
                        return fail(&r,
                                    "device %u transport %u carries endpoint addresses, which "
                                    "a worker address never has",
                                    dev, tl);
                    if (!skip(&r, b & ADDR_IFACE_LEN, "an interface address"))
                        return false;
                    if (b & ADDR_LAST)
                        break;
                }
            }
            if (dl & ADDR_LAST)
                break;
        }
    }
    if (r.off != len)
        return fail(&r, "%zu unexpected bytes after the last device (at byte %zu)", len - r.off,
                    r.off);
    return true;
}

/* The memory types the UCX we were built with knows: a key of another type would index
 * UCX's per-type tables out of bounds. */
#define RKEY_MEM_TYPES ((unsigned)UCS_MEMORY_TYPE_LAST)

bool ucx_rkey_check(const void *blob, size_t len, char *why, size_t why_len)
{
    rd_t r = {.p = blob, .n = len, .why = why, .why_len = why_len};
    if (!blob || !len)
        return fail(&r, "the remote key is empty");
    if (!have(&r, 9))
        return fail(&r, "a remote key of %zu bytes is shorter than its header (9 bytes)", len);
    uint64_t map = 0;
    for (unsigned i = 0; i < 8; i++)
        map |= (uint64_t)r.p[i] << (8 * i);
    r.off = 8;
    uint8_t mt = 0, b = 0;
    (void)u8(&r, "the memory type", &mt);
    if (!map)
        return fail(&r, "the remote key names no memory domain");
    if (mt >= RKEY_MEM_TYPES)
        return fail(&r, "memory type %u of the remote key is unknown", mt);
    for (unsigned md = 0; md < 64; md++) {
        if (!(map & ((uint64_t)1 << md)))
            continue;
        if (!u8(&r, "a transport key length", &b))
            return fail(&r,
                        "the remote key's MD map 0x%llx needs a transport key for MD %u, past "
                        "its end (%zu bytes)",
                        (unsigned long long)map, md, len);
        if (!skip(&r, b, "a transport key"))
            return false;
    }
    if (len - r.off > UCX_RKEY_TRAILER_MAX)
        return fail(&r, "%zu unexpected bytes after the last transport key", len - r.off);
    return true;
}
