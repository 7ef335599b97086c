/*
 * fuzz_md_decode.c - libFuzzer target for the metadata and descriptor-list decoders, and for the
 * public descriptor-list calls built on them (src/core/dlist_serdes.c).
 *
 * Besides "no crash, no leak", it checks the property the agent relies on when it caches and
 * forwards metadata: the wire format is canonical, so anything that decodes re-encodes to the
 * very same bytes, and decoding that again gives the same view.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "fuzz_md_decode: %s:%d: check failed: %s\n", __FILE__,      \
                    __LINE__, #cond);                                                   \
            abort();                                                                    \
        }                                                                               \
    } while (0)

static int same_mem(const void *a, const void *b, size_t n)
{
    return n == 0 || memcmp(a, b, n) == 0;
}

/* Views of different buffers: compare contents, not pointers. */
static void check_same_view(const nixl_md_view_t *a, const nixl_md_view_t *b)
{
    CHECK(a->name_len == b->name_len && same_mem(a->name, b->name, a->name_len));
    CHECK(a->num_conns == b->num_conns);
    for (size_t i = 0; i < a->num_conns; i++) {
        const nixl_md_conn_t *x = &a->conns[i], *y = &b->conns[i];
        CHECK(x->backend_len == y->backend_len &&
              same_mem(x->backend, y->backend, x->backend_len));
        CHECK(x->info_len == y->info_len && same_mem(x->info, y->info, x->info_len));
    }
    CHECK(a->num_sections == b->num_sections);
    CHECK(a->num_regions == b->num_regions);
    size_t next = 0;
    for (size_t s = 0; s < a->num_sections; s++) {
        const nixl_md_section_t *x = &a->sections[s], *y = &b->sections[s];
        CHECK(x->backend_len == y->backend_len &&
              same_mem(x->backend, y->backend, x->backend_len));
        CHECK(x->type == y->type && x->type <= NIXL_FILE_SEG);
        CHECK(x->first == y->first && x->count == y->count);
        /* sections tile the region array in order */
        CHECK(x->first == next);
        next += x->count;
    }
    CHECK(next == a->num_regions);
    for (size_t i = 0; i < a->num_regions; i++) {
        const nixl_md_region_t *x = &a->regions[i], *y = &b->regions[i];
        CHECK(x->desc.addr == y->desc.addr && x->desc.len == y->desc.len &&
              x->desc.dev_id == y->desc.dev_id);
        CHECK(x->blob_len == y->blob_len && same_mem(x->blob, y->blob, x->blob_len));
    }
}

static void check_inside(const void *p, size_t n, const uint8_t *data, size_t size)
{
    const uint8_t *q = p;
    CHECK(n <= size);
    CHECK(n == 0 || (q >= data && (size_t)(q - data) <= size - n));
}

static void fuzz_md(const uint8_t *data, size_t size)
{
    nixl_md_view_t v;
    if (nixl_md_decode(data, size, &v) != NIXL_SUCCESS) {
        CHECK(nixl_last_error()[0] != '\0');
        return;
    }
    /* zero-copy: everything points into the input */
    CHECK(v.name_len > 0 && memchr(v.name, '\0', v.name_len) == NULL);
    check_inside(v.name, v.name_len, data, size);
    for (size_t i = 0; i < v.num_conns; i++) {
        check_inside(v.conns[i].backend, v.conns[i].backend_len, data, size);
        check_inside(v.conns[i].info, v.conns[i].info_len, data, size);
    }
    for (size_t i = 0; i < v.num_regions; i++)
        check_inside(v.regions[i].blob, v.regions[i].blob_len, data, size);

    nixl_buf_t b;
    nixl_buf_init(&b, 0);
    nixl_md_view_encode(&b, &v);
    CHECK(!b.oom);
    CHECK(b.len == size && memcmp(b.data, data, size) == 0);

    nixl_md_view_t w;
    CHECK(nixl_md_decode(b.data, b.len, &w) == NIXL_SUCCESS);
    check_same_view(&v, &w);
    nixl_md_view_free(&w);
    nixl_buf_free(&b);
    nixl_md_view_free(&v);
}

static void fuzz_dlist(const uint8_t *data, size_t size)
{
    nixl_mem_t type;
    nixl_desc_t *descs = NULL;
    nixl_reg_desc_t *reg = NULL;
    size_t count = 0;
    if (nixl_any_dlist_decode(data, size, &type, &descs, &reg, &count) != NIXL_SUCCESS) {
        CHECK(nixl_last_error()[0] != '\0');
        return;
    }
    CHECK((descs == NULL) != (reg == NULL));
    CHECK(type <= NIXL_FILE_SEG);
    nixl_buf_t b;
    nixl_buf_init(&b, 0);
    if (descs) {
        nixl_dlist_encode(&b, type, descs, count);
    } else {
        for (size_t i = 0; i < count; i++)
            check_inside(reg[i].meta, reg[i].meta_len, data, size);
        nixl_reg_dlist_encode(&b, type, reg, count);
    }
    CHECK(!b.oom);
    CHECK(b.len == size && memcmp(b.data, data, size) == 0);
    nixl_buf_free(&b);
    free(descs);
    free(reg);
}

/*
 * The public calls (nixl.h; what the Python pickles go through): each accepts exactly its own
 * kind of what the codec accepts, re-serializes to the same bytes, and returns memory that does
 * not point into the input.
 */
static void fuzz_public_dlist(const uint8_t *data, size_t size)
{
    nixl_mem_t type, any_type;
    nixl_desc_t *any_d = NULL, *d = NULL;
    nixl_reg_desc_t *any_r = NULL, *r = NULL;
    size_t any_n = 0, n = 0;
    bool ok = nixl_any_dlist_decode(data, size, &any_type, &any_d, &any_r, &any_n) ==
              NIXL_SUCCESS;
    nixl_status_t xs = nixl_xfer_dlist_deserialize(data, size, &type, &d, &n);
    CHECK(xs == NIXL_SUCCESS ? ok && any_d : xs == NIXL_ERR_MISMATCH);
    if (xs != NIXL_SUCCESS)
        CHECK(nixl_last_error()[0] != '\0');
    nixl_status_t rs = nixl_reg_dlist_deserialize(data, size, &type, &r, &n);
    CHECK(rs == NIXL_SUCCESS ? ok && any_r : rs == NIXL_ERR_MISMATCH);
    if (rs != NIXL_SUCCESS)
        CHECK(nixl_last_error()[0] != '\0');
    CHECK(!(xs == NIXL_SUCCESS && rs == NIXL_SUCCESS));
    CHECK(ok == (xs == NIXL_SUCCESS || rs == NIXL_SUCCESS));

    void *out = NULL;
    size_t len = 0;
    if (xs == NIXL_SUCCESS) {
        CHECK(n == any_n && type == any_type && d);
        CHECK(nixl_xfer_dlist_serialize(type, d, n, &out, &len) == NIXL_SUCCESS);
    } else if (rs == NIXL_SUCCESS) {
        CHECK(n == any_n && type == any_type && r);
        for (size_t i = 0; i < n; i++) {
            /* copied behind the array, never into the input */
            uintptr_t m = (uintptr_t)r[i].meta, lo = (uintptr_t)data;
            CHECK(r[i].meta_len == any_r[i].meta_len);
            CHECK(r[i].meta_len == 0 || m < lo || m >= lo + size);
            CHECK(same_mem(r[i].meta, any_r[i].meta, r[i].meta_len));
        }
        CHECK(nixl_reg_dlist_serialize(type, r, n, &out, &len) == NIXL_SUCCESS);
    }
    if (out)
        CHECK(len == size && memcmp(out, data, size) == 0);
    free(out);
    free(d);
    free(r);
    free(any_d);
    free(any_r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_md(data, size);
    fuzz_dlist(data, size);
    fuzz_public_dlist(data, size);
    return 0;
}
