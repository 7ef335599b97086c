/*
 * dlist_serdes.c - the public face of the descriptor-list codec (nixl.h, "Serialized descriptor
 * lists"). The format itself lives in src/md/codec.c, which is fuzzed; this file only checks
 * arguments, picks the kind the caller asked for and hands out memory the caller can free with
 * nixl_free(), with nothing pointing back into the caller's bytes.
 */
#include <stdlib.h>
#include <string.h>

#include "nixl.h"
#include "buf.h"
#include "codec.h"
#include "error.h"

static const char WHAT[] = "descriptor list";

static nixl_status_t check_args(nixl_mem_t type, const void *descs, size_t count,
                                const void *out_blob, const void *out_len)
{
    if ((unsigned)type >= NIXL_MEM_COUNT)
        return nixl_err(NIXL_ERR_INVALID_PARAM, "%s: bad memory type %d", WHAT, (int)type);
    if (!descs && count)
        return nixl_err(NIXL_ERR_INVALID_PARAM, "%s: %zu descriptors but no array", WHAT, count);
    if (!out_blob || !out_len)
        return nixl_err(NIXL_ERR_INVALID_PARAM, "%s: NULL output", WHAT);
    return NIXL_SUCCESS;
}

static nixl_status_t hand_over(nixl_buf_t *b, void **out_blob, size_t *out_len)
{
    if (b->oom) {
        nixl_buf_free(b);
        return nixl_err_oom("%s: serializing", WHAT);
    }
    *out_blob = nixl_buf_take(b, out_len);
    return NIXL_SUCCESS;
}

nixl_status_t nixl_xfer_dlist_serialize(nixl_mem_t type, const nixl_desc_t *descs, size_t count,
                                        void **out_blob, size_t *out_len)
{
    nixl_status_t st = check_args(type, descs, count, out_blob, out_len);
    if (st != NIXL_SUCCESS)
        return st;
    nixl_buf_t b;
    nixl_buf_init(&b, NIXL_SERDES_MAGIC_LEN + 64 + count * sizeof(*descs));
    nixl_dlist_encode(&b, type, descs, count);
    return hand_over(&b, out_blob, out_len);
}

nixl_status_t nixl_reg_dlist_serialize(nixl_mem_t type, const nixl_reg_desc_t *descs, size_t count,
                                       void **out_blob, size_t *out_len)
{
    nixl_status_t st = check_args(type, descs, count, out_blob, out_len);
    if (st != NIXL_SUCCESS)
        return st;
    for (size_t i = 0; i < count; i++)
        if (!descs[i].meta && descs[i].meta_len)
            return nixl_err(NIXL_ERR_INVALID_PARAM, "%s: descriptor %zu: meta_len %zu, meta NULL",
                            WHAT, i, descs[i].meta_len);
    nixl_buf_t b;
    nixl_buf_init(&b, 0);
    nixl_reg_dlist_encode(&b, type, descs, count);
    return hand_over(&b, out_blob, out_len);
}

/* What the codec decoded: `descs` for a transfer list, `reg` for a registration list. */
typedef struct decoded {
    nixl_mem_t type;
    nixl_desc_t *descs;
    nixl_reg_desc_t *reg;
    size_t count;
} decoded_t;

/* The codec decodes either kind; a caller of one kind must not get the other silently. */
static nixl_status_t decode(const void *blob, size_t len, bool want_reg, bool have_outputs,
                            decoded_t *d)
{
    if (!have_outputs)
        return nixl_err(NIXL_ERR_INVALID_PARAM, "%s: NULL output", WHAT);
    if (!blob && len)
        return nixl_err(NIXL_ERR_INVALID_PARAM, "%s: %zu bytes but no buffer", WHAT, len);
    *d = (decoded_t){0};
    nixl_status_t st = nixl_any_dlist_decode(blob ? blob : "", len, &d->type, &d->descs, &d->reg,
                                             &d->count);
    if (st != NIXL_SUCCESS)
        return st;
    if (want_reg != (d->reg != NULL)) {
        free(d->descs);
        free(d->reg);
        return nixl_err(NIXL_ERR_MISMATCH, "%s: this is a %s list (%s), expected a %s list", WHAT,
                        want_reg ? "transfer" : "registration",
                        want_reg ? "nixlBDList" : "nixlSDList",
                        want_reg ? "registration" : "transfer");
    }
    return NIXL_SUCCESS;
}

nixl_status_t nixl_xfer_dlist_deserialize(const void *blob, size_t len, nixl_mem_t *out_type,
                                          nixl_desc_t **out_descs, size_t *out_count)
{
    decoded_t d;
    nixl_status_t st = decode(blob, len, false, out_type && out_descs && out_count, &d);
    if (st != NIXL_SUCCESS)
        return st;
    *out_type = d.type;
    *out_descs = d.descs; /* malloc'd by the codec: nixl_free() releases it */
    *out_count = d.count;
    return NIXL_SUCCESS;
}

nixl_status_t nixl_reg_dlist_deserialize(const void *blob, size_t len, nixl_mem_t *out_type,
                                         nixl_reg_desc_t **out_descs, size_t *out_count)
{
    decoded_t d;
    nixl_status_t st = decode(blob, len, true, out_type && out_descs && out_count, &d);
    if (st != NIXL_SUCCESS)
        return st;

    /* The codec's meta pointers point into `blob`: copy them behind the array, so that the
     * result is one allocation and outlives the input. Both sizes are bounded by `len`. */
    size_t meta_total = 0;
    for (size_t i = 0; i < d.count; i++)
        meta_total += d.reg[i].meta_len;
    size_t head = (d.count ? d.count : 1) * sizeof(*d.reg);
    nixl_reg_desc_t *out = malloc(head + meta_total);
    if (!out) {
        free(d.reg);
        return nixl_err_oom("%s: %zu descriptors", WHAT, d.count);
    }
    char *meta = (char *)out + head;
    for (size_t i = 0; i < d.count; i++) {
        out[i] = d.reg[i];
        out[i].meta = meta;
        if (d.reg[i].meta_len)
            memcpy(meta, d.reg[i].meta, d.reg[i].meta_len);
        meta += d.reg[i].meta_len;
    }
    free(d.reg);
    *out_type = d.type;
    *out_descs = out;
    *out_count = d.count;
    return NIXL_SUCCESS;
}
