/*
 * codec.c - the reference serdes container, metadata blob and descriptor lists (codec.h).
 *
 * Decoding walks the input twice: once to validate and count, once to fill arrays allocated in
 * one piece from those counts. Nothing untrusted sizes an allocation, and no region costs a
 * malloc.
 */
#include "codec.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

/* Descriptors travel as raw struct bytes in the reference format, so the layout must match. */
_Static_assert(sizeof(nixl_desc_t) == 24 && offsetof(nixl_desc_t, len) == 8 &&
                   offsetof(nixl_desc_t, dev_id) == 16,
               "nixl_desc_t must have the reference 24-byte layout");
_Static_assert(sizeof(uintptr_t) == 8 && sizeof(size_t) == 8,
               "the wire format stores addresses and sizes as 8 bytes");
/* The view's three arrays share one allocation, laid out conns | sections | regions. */
_Static_assert(sizeof(nixl_md_conn_t) % _Alignof(nixl_md_section_t) == 0 &&
                   sizeof(nixl_md_section_t) % _Alignof(nixl_md_region_t) == 0,
               "view arrays must stay aligned when packed back to back");

#define DESC_LEN 24
/* Everything of a record but its tag and payload: the 8-byte length and the '|'. */
#define REC_OVERHEAD 9
#define MIN_REC(tag_len, payload) ((tag_len) + REC_OVERHEAD + (payload))

/*
 * Smallest encodings, used to refuse a count before anything is sized from it. They only need
 * to be lower bounds: a count that passes still has to be backed by real records.
 */
#define CONN_MIN (MIN_REC(1, 1) + MIN_REC(1, 1))
#define SECTION_MIN (MIN_REC(4, 1) + MIN_REC(9, 10) + MIN_REC(1, 4) + MIN_REC(1, 8))
#define REGION_MIN MIN_REC(0, DESC_LEN)

static const char MEM_SECTION[] = "MemSection";
static const char SDLIST[] = "nixlSDList";
static const char BDLIST[] = "nixlBDList";
#define KIND_LEN 10 /* both list kind strings, and the MemSection marker */

static const char MD[] = "metadata";
static const char DL[] = "descriptor list";

/* ------------------------------------------------------------------------------------------ */
/* writer                                                                                     */

/* A record whose payload comes in two pieces, so a region needs no staging copy. */
static void put_rec2(nixl_buf_t *b, const char *tag, size_t tag_len, const void *a, size_t alen,
                     const void *c, size_t clen)
{
    if (alen > SIZE_MAX - MIN_REC(tag_len, 0) || clen > SIZE_MAX - MIN_REC(tag_len, 0) - alen) {
        b->oom = true;
        return;
    }
    uint64_t len = (uint64_t)alen + clen;
    size_t total = MIN_REC(tag_len, alen + clen);
    if (!nixl_buf_reserve(b, total))
        return;
    uint8_t *w = b->data + b->len;
    if (tag_len)
        memcpy(w, tag, tag_len);
    w += tag_len;
    memcpy(w, &len, sizeof(len));
    w += sizeof(len);
    if (alen)
        memcpy(w, a, alen);
    w += alen;
    if (clen)
        memcpy(w, c, clen);
    w[clen] = '|';
    b->len += total;
}

static void put_rec(nixl_buf_t *b, const char *tag, size_t tag_len, const void *p, size_t len)
{
    put_rec2(b, tag, tag_len, p, len, NULL, 0);
}

static void put_u64(nixl_buf_t *b, const char *tag, size_t tag_len, uint64_t v)
{
    put_rec(b, tag, tag_len, &v, sizeof(v));
}

/* The enum is stored as the reference's 4-byte int. */
static void put_type(nixl_buf_t *b, nixl_mem_t type)
{
    uint32_t t = (uint32_t)type;
    put_rec(b, "t", 1, &t, sizeof(t));
}

void nixl_serdes_begin(nixl_buf_t *b)
{
    nixl_buf_append(b, NIXL_SERDES_MAGIC, NIXL_SERDES_MAGIC_LEN);
}

void nixl_serdes_put(nixl_buf_t *b, const char *tag, const void *payload, size_t len)
{
    put_rec(b, tag, strlen(tag), payload, len);
}

void nixl_serdes_put_u64(nixl_buf_t *b, const char *tag, uint64_t v)
{
    put_u64(b, tag, strlen(tag), v);
}

/* ------------------------------------------------------------------------------------------ */
/* reader                                                                                     */

static nixl_status_t rd_open(nixl_serdes_reader_t *r, const char *what, const void *data,
                             size_t len)
{
    if (!data || len < NIXL_SERDES_MAGIC_LEN ||
        memcmp(data, NIXL_SERDES_MAGIC, NIXL_SERDES_MAGIC_LEN) != 0)
        return nixl_err(NIXL_ERR_MISMATCH, "%s: missing '%s' header (%zu bytes)", what,
                        NIXL_SERDES_MAGIC, len);
    r->p = data;
    r->len = len;
    r->pos = NIXL_SERDES_MAGIC_LEN;
    return NIXL_SUCCESS;
}

/*
 * `label` names the record in messages (the tag, or what an empty-tag record holds). Every
 * comparison is against the bytes left, never a sum that could wrap.
 */
static inline nixl_status_t rd_rec(nixl_serdes_reader_t *r, const char *what, const char *tag,
                                   size_t tag_len, const char *label, const uint8_t **payload,
                                   size_t *plen)
{
    size_t at = r->pos;
    size_t left = r->len - at;
    const uint8_t *q = r->p + at;
    if (left < tag_len)
        return nixl_err(NIXL_ERR_MISMATCH, "%s: truncated '%s' record at offset %zu", what, label,
                        at);
    if (tag_len && memcmp(q, tag, tag_len) != 0)
        return nixl_err(NIXL_ERR_MISMATCH, "%s: expected a '%s' record at offset %zu", what,
                        label, at);
    left -= tag_len;
    if (left < sizeof(uint64_t))
        return nixl_err(NIXL_ERR_MISMATCH, "%s: truncated '%s' record at offset %zu", what, label,
                        at);
    uint64_t n;
    memcpy(&n, q + tag_len, sizeof(n));
    left -= sizeof(n);
    if (left == 0 || n > left - 1)
        return nixl_err(NIXL_ERR_MISMATCH,
                        "%s: truncated '%s' record at offset %zu (%llu-byte payload, %zu bytes "
                        "left)",
                        what, label, at, (unsigned long long)n, left);
    const uint8_t *body = q + tag_len + sizeof(n);
    if (body[n] != '|')
        return nixl_err(NIXL_ERR_MISMATCH, "%s: '%s' record at offset %zu lacks its '|' terminator",
                        what, label, at);
    *payload = body;
    *plen = (size_t)n;
    r->pos = at + MIN_REC(tag_len, (size_t)n);
    return NIXL_SUCCESS;
}

static nixl_status_t rd_u64(nixl_serdes_reader_t *r, const char *what, const char *tag,
                            size_t tag_len, uint64_t *v)
{
    size_t at = r->pos;
    const uint8_t *p = NULL;
    size_t n = 0;
    nixl_status_t st = rd_rec(r, what, tag, tag_len, tag, &p, &n);
    if (st != NIXL_SUCCESS)
        return st;
    if (n != sizeof(*v))
        return nixl_err(NIXL_ERR_MISMATCH,
                        "%s: '%s' record at offset %zu has %zu bytes, expected 8", what, tag, at,
                        n);
    memcpy(v, p, sizeof(*v));
    return NIXL_SUCCESS;
}

nixl_status_t nixl_serdes_open(nixl_serdes_reader_t *r, const void *data, size_t len)
{
    return rd_open(r, "serdes", data, len);
}

nixl_status_t nixl_serdes_get(nixl_serdes_reader_t *r, const char *tag, const uint8_t **payload,
                              size_t *len)
{
    return rd_rec(r, "serdes", tag, strlen(tag), tag, payload, len);
}

nixl_status_t nixl_serdes_get_u64(nixl_serdes_reader_t *r, const char *tag, uint64_t *v)
{
    return rd_u64(r, "serdes", tag, strlen(tag), v);
}

/* A count is refused while it is still only a number, before it sizes a loop or an array. */
static nixl_status_t check_count(const nixl_serdes_reader_t *r, const char *what,
                                 const char *tag, size_t at, uint64_t count, size_t min_each)
{
    size_t left = r->len - r->pos;
    if (count > left / min_each)
        return nixl_err(NIXL_ERR_MISMATCH,
                        "%s: '%s' count %llu at offset %zu is more than the %zu bytes left can "
                        "hold",
                        what, tag, (unsigned long long)count, at, left);
    return NIXL_SUCCESS;
}

static nixl_status_t rd_count(nixl_serdes_reader_t *r, const char *what, const char *tag,
                              size_t tag_len, size_t min_each, size_t *count)
{
    size_t at = r->pos;
    uint64_t v = 0;
    nixl_status_t st = rd_u64(r, what, tag, tag_len, &v);
    if (st == NIXL_SUCCESS)
        st = check_count(r, what, tag, at, v, min_each);
    if (st == NIXL_SUCCESS)
        *count = (size_t)v;
    return st;
}

static nixl_status_t rd_type(nixl_serdes_reader_t *r, const char *what, nixl_mem_t *type)
{
    size_t at = r->pos;
    const uint8_t *p = NULL;
    size_t n = 0;
    nixl_status_t st = rd_rec(r, what, "t", 1, "t", &p, &n);
    if (st != NIXL_SUCCESS)
        return st;
    if (n != sizeof(uint32_t))
        return nixl_err(NIXL_ERR_MISMATCH,
                        "%s: memory type record at offset %zu has %zu bytes, expected 4", what, at,
                        n);
    uint32_t t;
    memcpy(&t, p, sizeof(t));
    if (t > NIXL_FILE_SEG)
        return nixl_err(NIXL_ERR_MISMATCH, "%s: bad memory type %u at offset %zu", what, t, at);
    *type = (nixl_mem_t)t;
    return NIXL_SUCCESS;
}

/* Names end up compared with C strings (plugin names, agent names): no empty, no NUL. */
static nixl_status_t rd_name(nixl_serdes_reader_t *r, const char *what, const char *tag,
                             size_t tag_len, const char *label, const uint8_t **p, size_t *n)
{
    size_t at = r->pos;
    nixl_status_t st = rd_rec(r, what, tag, tag_len, tag, p, n);
    if (st != NIXL_SUCCESS)
        return st;
    if (*n == 0)
        return nixl_err(NIXL_ERR_MISMATCH, "%s: empty %s at offset %zu", what, label, at);
    if (memchr(*p, '\0', *n))
        return nixl_err(NIXL_ERR_MISMATCH, "%s: %s at offset %zu contains a NUL byte", what,
                        label, at);
    return NIXL_SUCCESS;
}

/* ------------------------------------------------------------------------------------------ */
/* metadata blob                                                                              */

static void enc_begin(nixl_buf_t *b, const void *name, size_t name_len, size_t num_conns)
{
    nixl_serdes_begin(b);
    put_rec(b, "Agent", 5, name, name_len);
    put_u64(b, "Conns", 5, num_conns);
}

static void enc_conn(nixl_buf_t *b, const void *backend, size_t backend_len, const void *info,
                     size_t info_len)
{
    put_rec(b, "t", 1, backend, backend_len);
    put_rec(b, "c", 1, info, info_len);
}

static void enc_section(nixl_buf_t *b, const void *backend, size_t backend_len, nixl_mem_t type,
                        size_t count)
{
    put_rec(b, "bknd", 4, backend, backend_len);
    put_rec(b, "nixlDList", 9, SDLIST, KIND_LEN);
    put_type(b, type);
    put_u64(b, "n", 1, count);
}

void nixl_md_enc_begin(nixl_buf_t *b, const char *name, size_t name_len, size_t num_conns)
{
    enc_begin(b, name, name_len, num_conns);
}

void nixl_md_enc_conn(nixl_buf_t *b, const char *backend, const void *info, size_t info_len)
{
    enc_conn(b, backend, strlen(backend), info, info_len);
}

void nixl_md_enc_sections(nixl_buf_t *b, size_t num_sections)
{
    put_rec(b, "", 0, MEM_SECTION, KIND_LEN);
    put_u64(b, "nixlSecElms", 11, num_sections);
}

void nixl_md_enc_section(nixl_buf_t *b, const char *backend, nixl_mem_t type, size_t count)
{
    enc_section(b, backend, strlen(backend), type, count);
}

void nixl_md_enc_region(nixl_buf_t *b, const nixl_desc_t *desc, const void *blob, size_t blob_len)
{
    put_rec2(b, "", 0, desc, DESC_LEN, blob, blob_len);
}

void nixl_md_view_encode(nixl_buf_t *b, const nixl_md_view_t *v)
{
    enc_begin(b, v->name, v->name_len, v->num_conns);
    for (size_t i = 0; i < v->num_conns; i++)
        enc_conn(b, v->conns[i].backend, v->conns[i].backend_len, v->conns[i].info,
                 v->conns[i].info_len);
    nixl_md_enc_sections(b, v->num_sections);
    for (size_t s = 0; s < v->num_sections; s++) {
        const nixl_md_section_t *sec = &v->sections[s];
        enc_section(b, sec->backend, sec->backend_len, sec->type, sec->count);
        for (size_t i = sec->first; i < sec->first + sec->count; i++)
            nixl_md_enc_region(b, &v->regions[i].desc, v->regions[i].blob,
                               v->regions[i].blob_len);
    }
}

/*
 * One walk serves both passes: the first (fill false) validates everything and counts the
 * regions, so the second can fill arrays sized exactly, from a single allocation, and cannot
 * fail. Nothing is allocated from an unchecked count.
 */
static nixl_status_t md_walk(nixl_serdes_reader_t *r, nixl_md_view_t *v, bool fill)
{
    const uint8_t *p = NULL;
    size_t n = 0, at, count = 0;
    nixl_status_t st;

#define TRY(call)                          \
    do {                                   \
        if ((st = (call)) != NIXL_SUCCESS) \
            return st;                     \
    } while (0)

    TRY(rd_name(r, MD, "Agent", 5, "agent name", &p, &n));
    v->name = (const char *)p;
    v->name_len = n;

    TRY(rd_count(r, MD, "Conns", 5, CONN_MIN, &count));
    v->num_conns = count;
    for (size_t i = 0; i < v->num_conns; i++) {
        const uint8_t *info = NULL;
        size_t info_len = 0;
        TRY(rd_name(r, MD, "t", 1, "connection backend name", &p, &n));
        at = r->pos;
        TRY(rd_rec(r, MD, "c", 1, "c", &info, &info_len));
        /* The reference refuses to load empty connection info; say so here, with the offset. */
        if (info_len == 0)
            return nixl_err(NIXL_ERR_MISMATCH,
                            "%s: empty connection info for backend '%.*s' at offset %zu", MD,
                            (int)(n < 64 ? n : 64), (const char *)p, at);
        if (fill)
            v->conns[i] = (nixl_md_conn_t){(const char *)p, n, info, info_len};
    }

    at = r->pos;
    TRY(rd_rec(r, MD, "", 0, "MemSection", &p, &n));
    if (n != KIND_LEN || memcmp(p, MEM_SECTION, KIND_LEN) != 0)
        return nixl_err(NIXL_ERR_MISMATCH, "%s: expected the 'MemSection' marker at offset %zu",
                        MD, at);

    TRY(rd_count(r, MD, "nixlSecElms", 11, SECTION_MIN, &count));
    v->num_sections = count;
    size_t first = 0;
    for (size_t s = 0; s < v->num_sections; s++) {
        const uint8_t *backend = NULL;
        size_t backend_len = 0;
        nixl_mem_t type;
        TRY(rd_name(r, MD, "bknd", 4, "section backend name", &backend, &backend_len));
        at = r->pos;
        TRY(rd_rec(r, MD, "nixlDList", 9, "nixlDList", &p, &n));
        if (n != KIND_LEN || memcmp(p, SDLIST, KIND_LEN) != 0)
            return nixl_err(NIXL_ERR_MISMATCH,
                            "%s: section %zu at offset %zu is not a 'nixlSDList' list", MD, s, at);
        TRY(rd_type(r, MD, &type));
        TRY(rd_count(r, MD, "n", 1, REGION_MIN, &count));
        if (fill)
            v->sections[s] = (nixl_md_section_t){(const char *)backend, backend_len, type, first,
                                                 count};
        for (size_t i = 0; i < count; i++) {
            at = r->pos;
            TRY(rd_rec(r, MD, "", 0, "region", &p, &n));
            if (n < DESC_LEN)
                return nixl_err(NIXL_ERR_MISMATCH,
                                "%s: region record at offset %zu has %zu bytes, less than a "
                                "descriptor",
                                MD, at, n);
            if (fill) {
                nixl_md_region_t *reg = &v->regions[first + i];
                memcpy(&reg->desc, p, DESC_LEN);
                reg->blob = p + DESC_LEN;
                reg->blob_len = n - DESC_LEN;
            }
        }
        /* Cannot wrap: every region counted consumed at least REGION_MIN input bytes. */
        first += count;
    }
    v->num_regions = first;

    if (r->pos != r->len)
        return nixl_err(NIXL_ERR_MISMATCH, "%s: %zu trailing bytes at offset %zu", MD,
                        r->len - r->pos, r->pos);
    return NIXL_SUCCESS;
#undef TRY
}

nixl_status_t nixl_md_decode(const void *blob, size_t len, nixl_md_view_t *out)
{
    nixl_serdes_reader_t r = {0};
    nixl_md_view_t v = {0};
    nixl_status_t st = rd_open(&r, MD, blob, len);
    if (st == NIXL_SUCCESS)
        st = md_walk(&r, &v, false);
    if (st != NIXL_SUCCESS)
        return st;

    /* The counts are bounded by len / (minimum record size), so these products cannot wrap. */
    size_t conns_sz = v.num_conns * sizeof(nixl_md_conn_t);
    size_t secs_sz = v.num_sections * sizeof(nixl_md_section_t);
    size_t regs_sz = v.num_regions * sizeof(nixl_md_region_t);
    if (conns_sz + secs_sz + regs_sz) {
        uint8_t *mem = malloc(conns_sz + secs_sz + regs_sz);
        if (!mem)
            return nixl_err_oom("metadata of %zu regions", v.num_regions);
        v.conns = (nixl_md_conn_t *)mem;
        v.sections = (nixl_md_section_t *)(mem + conns_sz);
        v.regions = (nixl_md_region_t *)(mem + conns_sz + secs_sz);
        r.pos = NIXL_SERDES_MAGIC_LEN;
        st = md_walk(&r, &v, true);
        if (st != NIXL_SUCCESS) { /* unreachable: the same bytes passed the first walk */
            free(mem);
            return st;
        }
    }
    *out = v;
    return NIXL_SUCCESS;
}

void nixl_md_view_free(nixl_md_view_t *v)
{
    if (!v)
        return;
    free(v->conns); /* the base of the one allocation behind all three arrays */
    *v = (nixl_md_view_t){0};
}

/* ------------------------------------------------------------------------------------------ */
/* standalone descriptor lists                                                                */

void nixl_dlist_encode(nixl_buf_t *b, nixl_mem_t type, const nixl_desc_t *descs, size_t count)
{
    nixl_serdes_begin(b);
    put_rec(b, "nixlDList", 9, BDLIST, KIND_LEN);
    put_type(b, type);
    put_u64(b, "n", 1, count);
    if (count == 0)
        return;
    if (count > SIZE_MAX / DESC_LEN) {
        b->oom = true;
        return;
    }
    put_rec(b, "", 0, descs, count * DESC_LEN);
}

void nixl_reg_dlist_encode(nixl_buf_t *b, nixl_mem_t type, const nixl_reg_desc_t *descs,
                           size_t count)
{
    nixl_serdes_begin(b);
    put_rec(b, "nixlDList", 9, SDLIST, KIND_LEN);
    put_type(b, type);
    put_u64(b, "n", 1, count);
    for (size_t i = 0; i < count; i++) {
        nixl_desc_t d = {descs[i].addr, descs[i].len, descs[i].dev_id};
        put_rec2(b, "", 0, &d, DESC_LEN, descs[i].meta, descs[i].meta_len);
    }
}

nixl_status_t nixl_any_dlist_decode(const void *data, size_t len, nixl_mem_t *out_type,
                                    nixl_desc_t **out_descs, nixl_reg_desc_t **out_reg,
                                    size_t *out_count)
{
    nixl_serdes_reader_t r = {0}; /* gcc 13 -O3 cannot see rd_open fill it */
    const uint8_t *p = NULL;
    size_t n = 0, at, count = 0;
    nixl_mem_t type;
    nixl_desc_t *descs = NULL;
    nixl_reg_desc_t *reg = NULL;

    nixl_status_t st = rd_open(&r, DL, data, len);
    if (st != NIXL_SUCCESS)
        return st;
    at = r.pos;
    if ((st = rd_rec(&r, DL, "nixlDList", 9, "nixlDList", &p, &n)) != NIXL_SUCCESS)
        return st;
    bool basic;
    if (n == KIND_LEN && memcmp(p, BDLIST, KIND_LEN) == 0)
        basic = true;
    else if (n == KIND_LEN && memcmp(p, SDLIST, KIND_LEN) == 0)
        basic = false;
    else
        return nixl_err(NIXL_ERR_MISMATCH, "%s: unknown list kind at offset %zu", DL, at);
    if ((st = rd_type(&r, DL, &type)) != NIXL_SUCCESS)
        return st;
    if ((st = rd_count(&r, DL, "n", 1, basic ? DESC_LEN : REGION_MIN, &count)) != NIXL_SUCCESS)
        return st;

    /* Never a zero-byte allocation: the non-NULL pointer is what tells the caller the kind. */
    size_t alloc_n = count ? count : 1;
    if (basic) {
        if (count) {
            at = r.pos;
            if ((st = rd_rec(&r, DL, "", 0, "descriptors", &p, &n)) != NIXL_SUCCESS)
                return st;
            if (n != count * DESC_LEN)
                return nixl_err(NIXL_ERR_MISMATCH,
                                "%s: descriptor record at offset %zu has %zu bytes, expected %zu "
                                "x 24",
                                DL, at, n, count);
        }
        if (r.pos != r.len)
            return nixl_err(NIXL_ERR_MISMATCH, "%s: %zu trailing bytes at offset %zu", DL,
                            r.len - r.pos, r.pos);
        descs = malloc(alloc_n * sizeof(*descs));
        if (!descs)
            return nixl_err_oom("%s of %zu descriptors", DL, count);
        if (count)
            memcpy(descs, p, count * DESC_LEN);
    } else {
        reg = malloc(alloc_n * sizeof(*reg));
        if (!reg)
            return nixl_err_oom("%s of %zu descriptors", DL, count);
        for (size_t i = 0; i < count; i++) {
            at = r.pos;
            if ((st = rd_rec(&r, DL, "", 0, "descriptor", &p, &n)) != NIXL_SUCCESS)
                goto free_reg;
            if (n < DESC_LEN) {
                st = nixl_err(NIXL_ERR_MISMATCH,
                              "%s: descriptor record at offset %zu has %zu bytes, less than 24",
                              DL, at, n);
                goto free_reg;
            }
            nixl_desc_t d;
            memcpy(&d, p, DESC_LEN);
            reg[i] = (nixl_reg_desc_t){d.addr, d.len, d.dev_id, p + DESC_LEN, n - DESC_LEN};
        }
        if (r.pos != r.len) {
            st = nixl_err(NIXL_ERR_MISMATCH, "%s: %zu trailing bytes at offset %zu", DL,
                          r.len - r.pos, r.pos);
            goto free_reg;
        }
    }
    *out_type = type;
    *out_descs = descs;
    *out_reg = reg;
    *out_count = count;
    return NIXL_SUCCESS;

free_reg:
    free(reg);
    return st;
}
