/*
 * test_codec.c - the metadata / descriptor-list codec against the reference's own bytes
 * (tests/data), and against every class of malformed input we can derive from them.
 *
 * Every decode in this file reads from a heap copy of exactly the bytes under test, so that
 * valgrind and ASan see any read past the end.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "error.h"
#include "codec.h"

#ifndef NIXL_TEST_DATA_DIR
#define NIXL_TEST_DATA_DIR "tests/data"
#endif

/* The regions of tests/data/README.md. */
#define REG_A 0x7fcffe800000ull
#define REG_B 0x7fcffe700000ull
#define MIB (1024u * 1024u)

static const char *const MD_SAMPLES[] = {
    "md_full_no_regions.bin", "md_full_1_region.bin",   "md_full_3_regions.bin",
    "md_partial_1_noconn.bin", "md_partial_1_conn.bin", "md_partial_empty_list.bin",
};
#define NUM_MD_SAMPLES (sizeof(MD_SAMPLES) / sizeof(MD_SAMPLES[0]))

/* ------------------------------------------------------------------------------------------ */
/* helpers                                                                                    */

typedef struct bytes {
    uint8_t *p;
    size_t len;
} bytes_t;

static bytes_t load(const char *name)
{
    const char *dir = getenv("NIXL_TEST_DATA");
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir && *dir ? dir : NIXL_TEST_DATA_DIR, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s (set NIXL_TEST_DATA)", path);
    bytes_t b = {NULL, 0};
    size_t cap = 0;
    for (;;) {
        if (b.len == cap) {
            cap = cap ? cap * 2 : 4096;
            b.p = realloc(b.p, cap);
            assert_non_null(b.p);
        }
        size_t got = fread(b.p + b.len, 1, cap - b.len, f);
        if (got == 0)
            break;
        b.len += got;
    }
    fclose(f);
    return b;
}

/* An exact-size heap copy, so an over-read is caught by the memory checkers. */
static bytes_t dup_bytes(const void *p, size_t len)
{
    bytes_t b = {malloc(len ? len : 1), len};
    assert_non_null(b.p);
    if (len)
        memcpy(b.p, p, len);
    return b;
}

static bytes_t take_buf(nixl_buf_t *buf)
{
    assert_false(buf->oom);
    bytes_t b;
    b.p = nixl_buf_take(buf, &b.len);
    return b;
}

static void assert_same_bytes(const bytes_t *a, const void *p, size_t len)
{
    assert_int_equal(a->len, len);
    for (size_t i = 0; i < len; i++)
        if (a->p[i] != ((const uint8_t *)p)[i])
            fail_msg("first difference at byte %zu: 0x%02x vs 0x%02x", i, a->p[i],
                     ((const uint8_t *)p)[i]);
}

static void assert_str_n(const char *want, const void *p, size_t len)
{
    assert_int_equal(strlen(want), len);
    assert_memory_equal(want, p, len);
}

static void assert_reason_starts(const char *prefix)
{
    const char *why = nixl_last_error();
    if (strncmp(why, prefix, strlen(prefix)) != 0)
        fail_msg("reason '%s' does not start with '%s'", why, prefix);
}

/* Decode from an exact-size copy; on success the view is freed (we only want the status). */
static nixl_status_t md_status(const void *p, size_t len)
{
    bytes_t c = dup_bytes(p, len);
    nixl_md_view_t v;
    memset(&v, 0xa5, sizeof(v));
    nixl_md_view_t before = v;
    nixl_err_clear();
    nixl_status_t st = nixl_md_decode(c.p, c.len, &v);
    if (st == NIXL_SUCCESS) {
        nixl_md_view_free(&v);
    } else {
        /* outputs are set only on success, and a failure always says why */
        assert_memory_equal(&v, &before, sizeof(v));
        assert_true(nixl_last_error()[0] != '\0');
        assert_int_equal(st, NIXL_ERR_MISMATCH);
        assert_reason_starts("metadata: ");
    }
    free(c.p);
    return st;
}

static nixl_status_t dlist_status(const void *p, size_t len)
{
    bytes_t c = dup_bytes(p, len);
    nixl_mem_t type = (nixl_mem_t)99;
    nixl_desc_t *descs = (nixl_desc_t *)&type;
    nixl_reg_desc_t *reg = (nixl_reg_desc_t *)&type;
    size_t count = 12345;
    nixl_err_clear();
    nixl_status_t st = nixl_any_dlist_decode(c.p, c.len, &type, &descs, &reg, &count);
    if (st == NIXL_SUCCESS) {
        assert_true((descs == NULL) != (reg == NULL));
        free(descs);
        free(reg);
    } else {
        assert_int_equal(type, 99);
        assert_int_equal(count, 12345);
        assert_ptr_equal(descs, &type);
        assert_ptr_equal(reg, &type);
        assert_int_equal(st, NIXL_ERR_MISMATCH);
        assert_reason_starts("descriptor list: ");
    }
    free(c.p);
    return st;
}

/*
 * An independent walk of a valid container (no codec code), listing where every tag, length
 * field, payload and terminator is, so the malformed-input tests can aim at each of them.
 */
typedef struct rec {
    const char *tag;
    size_t tag_at, tag_len, len_at, body_at, body_len, bar_at;
    int is_count; /* Conns, nixlSecElms, n */
    int is_type;  /* the 4-byte memory type */
} rec_t;

#define MAX_RECS 30000

typedef struct walk {
    const uint8_t *p;
    size_t len, pos, n;
    rec_t *recs;
} walk_t;

static const rec_t *walk_next(walk_t *w, const char *tag)
{
    size_t tl = strlen(tag);
    assert_true(w->n < MAX_RECS);
    assert_true(w->pos + tl + 8 <= w->len);
    assert_memory_equal(w->p + w->pos, tag, tl);
    rec_t *r = &w->recs[w->n++];
    uint64_t n;
    memcpy(&n, w->p + w->pos + tl, 8);
    *r = (rec_t){tag, w->pos, tl, w->pos + tl, w->pos + tl + 8, (size_t)n, w->pos + tl + 8 + n,
                 0, 0};
    assert_true(r->bar_at < w->len);
    assert_int_equal(w->p[r->bar_at], '|');
    w->pos = r->bar_at + 1;
    return r;
}

static uint64_t walk_count(walk_t *w, const char *tag)
{
    const rec_t *r = walk_next(w, tag);
    w->recs[w->n - 1].is_count = 1;
    assert_int_equal(r->body_len, 8);
    uint64_t v;
    memcpy(&v, w->p + r->body_at, 8);
    return v;
}

static void walk_dlist_body(walk_t *w, int sections_only)
{
    const rec_t *k = walk_next(w, "nixlDList");
    int basic = memcmp(w->p + k->body_at, "nixlBDList", 10) == 0;
    assert_false(sections_only && basic);
    walk_next(w, "t");
    w->recs[w->n - 1].is_type = 1;
    uint64_t n = walk_count(w, "n");
    if (basic) {
        if (n)
            walk_next(w, "");
    } else {
        for (uint64_t i = 0; i < n; i++)
            walk_next(w, "");
    }
}

static size_t walk_md(const bytes_t *b, rec_t *recs)
{
    walk_t w = {b->p, b->len, 11, 0, recs};
    assert_memory_equal(b->p, "nixlSerDes|", 11);
    walk_next(&w, "Agent");
    uint64_t c = walk_count(&w, "Conns");
    for (uint64_t i = 0; i < c; i++) {
        walk_next(&w, "t");
        walk_next(&w, "c");
    }
    walk_next(&w, "");
    uint64_t s = walk_count(&w, "nixlSecElms");
    for (uint64_t i = 0; i < s; i++) {
        walk_next(&w, "bknd");
        walk_dlist_body(&w, 1);
    }
    assert_int_equal(w.pos, b->len);
    return w.n;
}

static size_t walk_dlist(const bytes_t *b, rec_t *recs)
{
    walk_t w = {b->p, b->len, 11, 0, recs};
    assert_memory_equal(b->p, "nixlSerDes|", 11);
    walk_dlist_body(&w, 0);
    assert_int_equal(w.pos, b->len);
    return w.n;
}

/* The serdes container inside a pickle: the bytes object (SHORT_BINBYTES / BINBYTES) that
 * starts with the magic. */
static bytes_t pickle_container(const char *name)
{
    bytes_t f = load(name);
    const uint8_t *m = memmem(f.p, f.len, "nixlSerDes|", 11);
    assert_non_null(m);
    size_t at = (size_t)(m - f.p), len;
    if (at >= 2 && f.p[at - 2] == 'C') {
        len = f.p[at - 1];
    } else if (at >= 5 && f.p[at - 5] == 'B') {
        len = (size_t)f.p[at - 4] | (size_t)f.p[at - 3] << 8 | (size_t)f.p[at - 2] << 16 |
              (size_t)f.p[at - 1] << 24;
    } else {
        fail_msg("%s: the container is not a pickle bytes object", name);
        len = 0;
    }
    assert_true(len <= f.len - at);
    bytes_t c = dup_bytes(m, len);
    free(f.p);
    return c;
}

/* Metadata blob of the first side-channel frame: 8-byte LE length, "NIXLCOMM:LOAD", blob. */
static bytes_t sidechannel_md(void)
{
    bytes_t f = load("sidechannel_stream_load_send_invl.bin");
    assert_true(f.len >= 8 + 13);
    uint64_t flen = 0;
    for (int i = 7; i >= 0; i--)
        flen = flen << 8 | f.p[i];
    assert_true(flen <= f.len - 8 && flen >= 13);
    assert_memory_equal(f.p + 8, "NIXLCOMM:LOAD", 13);
    bytes_t c = dup_bytes(f.p + 8 + 13, (size_t)flen - 13);
    free(f.p);
    return c;
}

static bytes_t patch_u64(const bytes_t *b, size_t at, uint64_t v)
{
    bytes_t c = dup_bytes(b->p, b->len);
    memcpy(c.p + at, &v, 8);
    return c;
}

/* ------------------------------------------------------------------------------------------ */
/* golden samples                                                                             */

static void check_ucx_conn(const nixl_md_view_t *v, const uint8_t *raw)
{
    assert_int_equal(v->num_conns, 1);
    assert_str_n("UCX", v->conns[0].backend, v->conns[0].backend_len);
    assert_int_equal(v->conns[0].info_len, 0xd7);
    /* zero-copy: the info is the sample's own bytes, right after the "c" tag and length */
    assert_true(v->conns[0].info > raw && v->conns[0].info[v->conns[0].info_len] == '|');
}

static void check_region(const nixl_md_view_t *v, size_t i, uint64_t addr, size_t len)
{
    assert_true(i < v->num_regions);
    assert_int_equal(v->regions[i].desc.addr, addr);
    assert_int_equal(v->regions[i].desc.len, len);
    assert_int_equal(v->regions[i].desc.dev_id, 0);
    /* a UCX packed rkey of this UCX version: 12 bytes */
    assert_int_equal(v->regions[i].blob_len, 12);
}

static void check_one_section(const nixl_md_view_t *v, size_t count)
{
    assert_int_equal(v->num_sections, 1);
    assert_str_n("UCX", v->sections[0].backend, v->sections[0].backend_len);
    assert_int_equal(v->sections[0].type, NIXL_DRAM_SEG);
    assert_int_equal(v->sections[0].first, 0);
    assert_int_equal(v->sections[0].count, count);
    assert_int_equal(v->num_regions, count);
}

static void decode_sample(const char *name, bytes_t *b, nixl_md_view_t *v)
{
    *b = load(name);
    nixl_status_t st = nixl_md_decode(b->p, b->len, v);
    if (st != NIXL_SUCCESS)
        fail_msg("%s: %s", name, nixl_last_error());
    assert_str_n("agentA", v->name, v->name_len);
}

static void test_golden_fields(void **state)
{
    (void)state;
    bytes_t b;
    nixl_md_view_t v;

    decode_sample("md_full_no_regions.bin", &b, &v);
    check_ucx_conn(&v, b.p);
    assert_int_equal(v.num_sections, 0);
    assert_int_equal(v.num_regions, 0);
    nixl_md_view_free(&v);
    free(b.p);

    decode_sample("md_partial_empty_list.bin", &b, &v);
    check_ucx_conn(&v, b.p);
    assert_int_equal(v.num_sections, 0);
    nixl_md_view_free(&v);
    free(b.p);

    decode_sample("md_full_1_region.bin", &b, &v);
    check_ucx_conn(&v, b.p);
    check_one_section(&v, 1);
    check_region(&v, 0, REG_A, MIB);
    nixl_md_view_free(&v);
    free(b.p);

    bytes_t b3;
    nixl_md_view_t v3;
    decode_sample("md_full_3_regions.bin", &b3, &v3);
    check_ucx_conn(&v3, b3.p);
    check_one_section(&v3, 3);
    /* sections list regions in address order */
    check_region(&v3, 0, REG_B, 4096);
    check_region(&v3, 1, REG_B + 8192, 4096);
    check_region(&v3, 2, REG_A, MIB);

    decode_sample("md_partial_1_noconn.bin", &b, &v);
    assert_int_equal(v.num_conns, 0);
    check_one_section(&v, 1);
    check_region(&v, 0, REG_B, 4096);
    /* the rkey of B is the same blob in full and partial metadata */
    assert_memory_equal(v.regions[0].blob, v3.regions[0].blob, 12);
    nixl_md_view_free(&v);
    free(b.p);

    decode_sample("md_partial_1_conn.bin", &b, &v);
    check_ucx_conn(&v, b.p);
    assert_memory_equal(v.conns[0].info, v3.conns[0].info, v3.conns[0].info_len);
    check_one_section(&v, 1);
    check_region(&v, 0, REG_B, 4096);
    assert_memory_equal(v.regions[0].blob, v3.regions[0].blob, 12);
    nixl_md_view_free(&v);
    free(b.p);

    nixl_md_view_free(&v3);
    free(b3.p);
}

static void test_sidechannel_md(void **state)
{
    (void)state;
    bytes_t b = sidechannel_md();
    nixl_md_view_t v;
    assert_int_equal(nixl_md_decode(b.p, b.len, &v), NIXL_SUCCESS);
    assert_str_n("agentB", v.name, v.name_len);
    check_ucx_conn(&v, b.p);
    check_one_section(&v, 1);
    /* agentB registered only the first 4 KiB of A */
    check_region(&v, 0, REG_A, 4096);

    nixl_buf_t out;
    nixl_buf_init(&out, 0);
    nixl_md_view_encode(&out, &v);
    bytes_t e = take_buf(&out);
    assert_same_bytes(&e, b.p, b.len);
    free(e.p);
    nixl_md_view_free(&v);
    free(b.p);
}

/* Through the public step-by-step encoder, as the agent will use it. */
static bytes_t encode_stepwise(const nixl_md_view_t *v)
{
    nixl_buf_t out;
    char name[64];
    nixl_buf_init(&out, 0);
    nixl_md_enc_begin(&out, v->name, v->name_len, v->num_conns);
    for (size_t i = 0; i < v->num_conns; i++) {
        assert_true(v->conns[i].backend_len < sizeof(name));
        snprintf(name, sizeof(name), "%.*s", (int)v->conns[i].backend_len, v->conns[i].backend);
        nixl_md_enc_conn(&out, name, v->conns[i].info, v->conns[i].info_len);
    }
    nixl_md_enc_sections(&out, v->num_sections);
    for (size_t s = 0; s < v->num_sections; s++) {
        const nixl_md_section_t *sec = &v->sections[s];
        assert_true(sec->backend_len < sizeof(name));
        snprintf(name, sizeof(name), "%.*s", (int)sec->backend_len, sec->backend);
        nixl_md_enc_section(&out, name, sec->type, sec->count);
        for (size_t i = 0; i < sec->count; i++) {
            const nixl_md_region_t *r = &v->regions[sec->first + i];
            nixl_md_enc_region(&out, &r->desc, r->blob, r->blob_len);
        }
    }
    return take_buf(&out);
}

static void test_reencode_identical(void **state)
{
    (void)state;
    for (size_t k = 0; k < NUM_MD_SAMPLES; k++) {
        bytes_t b = load(MD_SAMPLES[k]);
        nixl_md_view_t v;
        assert_int_equal(nixl_md_decode(b.p, b.len, &v), NIXL_SUCCESS);

        nixl_buf_t out;
        nixl_buf_init(&out, 0);
        nixl_md_view_encode(&out, &v);
        bytes_t e = take_buf(&out);
        assert_same_bytes(&e, b.p, b.len);
        free(e.p);

        e = encode_stepwise(&v);
        assert_same_bytes(&e, b.p, b.len);
        free(e.p);

        nixl_md_view_free(&v);
        free(b.p);
    }
}

/* md_full_3_regions.bin rebuilt from constants, with only the UCX blobs taken from the sample. */
static void test_build_from_scratch(void **state)
{
    (void)state;
    bytes_t b = load("md_full_3_regions.bin");
    nixl_md_view_t v;
    assert_int_equal(nixl_md_decode(b.p, b.len, &v), NIXL_SUCCESS);

    const nixl_desc_t descs[3] = {{REG_B, 4096, 0}, {REG_B + 8192, 4096, 0}, {REG_A, MIB, 0}};
    nixl_buf_t out;
    nixl_buf_init(&out, 0);
    nixl_md_enc_begin(&out, "agentA", 6, 1);
    nixl_md_enc_conn(&out, "UCX", v.conns[0].info, v.conns[0].info_len);
    nixl_md_enc_sections(&out, 1);
    nixl_md_enc_section(&out, "UCX", NIXL_DRAM_SEG, 3);
    for (int i = 0; i < 3; i++)
        nixl_md_enc_region(&out, &descs[i], v.regions[i].blob, v.regions[i].blob_len);
    bytes_t e = take_buf(&out);
    assert_same_bytes(&e, b.p, b.len);
    free(e.p);

    /* and the partial blob without conn info, from the same pieces */
    bytes_t p = load("md_partial_1_noconn.bin");
    nixl_buf_init(&out, 0);
    nixl_md_enc_begin(&out, "agentA", 6, 0);
    nixl_md_enc_sections(&out, 1);
    nixl_md_enc_section(&out, "UCX", NIXL_DRAM_SEG, 1);
    nixl_md_enc_region(&out, &descs[0], v.regions[0].blob, v.regions[0].blob_len);
    e = take_buf(&out);
    assert_same_bytes(&e, p.p, p.len);
    free(e.p);
    free(p.p);

    /* nothing registered */
    p = load("md_full_no_regions.bin");
    nixl_buf_init(&out, 0);
    nixl_md_enc_begin(&out, "agentA", 6, 1);
    nixl_md_enc_conn(&out, "UCX", v.conns[0].info, v.conns[0].info_len);
    nixl_md_enc_sections(&out, 0);
    e = take_buf(&out);
    assert_same_bytes(&e, p.p, p.len);
    free(e.p);
    free(p.p);

    nixl_md_view_free(&v);
    free(b.p);
}

static void test_pickle_xfer_dlist(void **state)
{
    (void)state;
    bytes_t c = pickle_container("xfer_dlist_3.pickle");
    nixl_mem_t type;
    nixl_desc_t *descs;
    nixl_reg_desc_t *reg;
    size_t count;
    assert_int_equal(nixl_any_dlist_decode(c.p, c.len, &type, &descs, &reg, &count),
                     NIXL_SUCCESS);
    const nixl_desc_t want[3] = {{REG_A, 4096, 0}, {REG_A + 4096, 100, 0}, {REG_A + 65536, 8192, 0}};
    assert_int_equal(type, NIXL_DRAM_SEG);
    assert_null(reg);
    assert_non_null(descs);
    assert_int_equal(count, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(descs[i].addr, want[i].addr);
        assert_int_equal(descs[i].len, want[i].len);
        assert_int_equal(descs[i].dev_id, want[i].dev_id);
    }
    free(descs);

    nixl_buf_t out;
    nixl_buf_init(&out, 0);
    nixl_dlist_encode(&out, NIXL_DRAM_SEG, want, 3);
    bytes_t e = take_buf(&out);
    assert_same_bytes(&e, c.p, c.len);
    free(e.p);

    /* a list is not metadata, and metadata is not a list */
    assert_int_equal(md_status(c.p, c.len), NIXL_ERR_MISMATCH);
    bytes_t m = load("md_full_1_region.bin");
    assert_int_equal(dlist_status(m.p, m.len), NIXL_ERR_MISMATCH);
    free(m.p);
    free(c.p);
}

static void test_pickle_reg_dlist(void **state)
{
    (void)state;
    bytes_t c = pickle_container("reg_dlist_2.pickle");
    nixl_mem_t type;
    nixl_desc_t *descs;
    nixl_reg_desc_t *reg;
    size_t count;
    assert_int_equal(nixl_any_dlist_decode(c.p, c.len, &type, &descs, &reg, &count),
                     NIXL_SUCCESS);
    assert_int_equal(type, NIXL_DRAM_SEG);
    assert_null(descs);
    assert_non_null(reg);
    assert_int_equal(count, 2);
    assert_int_equal(reg[0].addr, REG_B);
    assert_int_equal(reg[0].len, 4096);
    assert_int_equal(reg[0].dev_id, 0);
    assert_str_n("x", reg[0].meta, reg[0].meta_len);
    assert_int_equal(reg[1].addr, REG_B + 8192);
    assert_int_equal(reg[1].len, 4096);
    assert_int_equal(reg[1].dev_id, 0);
    assert_str_n("meta-two", reg[1].meta, reg[1].meta_len);
    /* zero-copy: meta points into the input */
    assert_true((const uint8_t *)reg[1].meta > c.p &&
                (const uint8_t *)reg[1].meta < c.p + c.len);
    free(reg);

    const nixl_reg_desc_t want[2] = {{REG_B, 4096, 0, "x", 1},
                                     {REG_B + 8192, 4096, 0, "meta-two", 8}};
    nixl_buf_t out;
    nixl_buf_init(&out, 0);
    nixl_reg_dlist_encode(&out, NIXL_DRAM_SEG, want, 2);
    bytes_t e = take_buf(&out);
    assert_same_bytes(&e, c.p, c.len);
    free(e.p);
    free(c.p);
}

/* ------------------------------------------------------------------------------------------ */
/* malformed input, derived from every sample                                                 */

typedef nixl_status_t (*status_fn)(const void *, size_t);

typedef struct sample {
    bytes_t b;
    int is_dlist;
    const char *name;
} sample_t;

#define NUM_SAMPLES (NUM_MD_SAMPLES + 3)

static void load_samples(sample_t *s)
{
    for (size_t k = 0; k < NUM_MD_SAMPLES; k++)
        s[k] = (sample_t){load(MD_SAMPLES[k]), 0, MD_SAMPLES[k]};
    s[NUM_MD_SAMPLES] = (sample_t){sidechannel_md(), 0, "sidechannel LOAD frame"};
    s[NUM_MD_SAMPLES + 1] = (sample_t){pickle_container("xfer_dlist_3.pickle"), 1, "xfer pickle"};
    s[NUM_MD_SAMPLES + 2] = (sample_t){pickle_container("reg_dlist_2.pickle"), 1, "reg pickle"};
}

static void free_samples(sample_t *s)
{
    for (size_t k = 0; k < NUM_SAMPLES; k++)
        free(s[k].b.p);
}

static size_t walk_sample(const sample_t *s, rec_t *recs)
{
    return s->is_dlist ? walk_dlist(&s->b, recs) : walk_md(&s->b, recs);
}

static void expect_mismatch(const sample_t *s, const bytes_t *c, const char *what, size_t at)
{
    status_fn fn = s->is_dlist ? dlist_status : md_status;
    if (fn(c->p, c->len) != NIXL_ERR_MISMATCH)
        fail_msg("%s: %s at offset %zu was accepted", s->name, what, at);
}

static void test_truncation_every_offset(void **state)
{
    (void)state;
    sample_t s[NUM_SAMPLES];
    load_samples(s);
    for (size_t k = 0; k < NUM_SAMPLES; k++) {
        status_fn fn = s[k].is_dlist ? dlist_status : md_status;
        assert_int_equal(fn(s[k].b.p, s[k].b.len), NIXL_SUCCESS);
        for (size_t cut = 0; cut < s[k].b.len; cut++)
            if (fn(s[k].b.p, cut) != NIXL_ERR_MISMATCH)
                fail_msg("%s truncated to %zu bytes was accepted", s[k].name, cut);
    }
    free_samples(s);

    /* the reason names the record and where it starts */
    bytes_t b = load("md_full_1_region.bin");
    assert_int_equal(md_status(b.p, 40), NIXL_ERR_MISMATCH);
    assert_non_null(strstr(nixl_last_error(), "metadata: truncated 'Conns' record at offset 31"));
    free(b.p);
}

static void test_length_fields(void **state)
{
    (void)state;
    sample_t s[NUM_SAMPLES];
    rec_t *recs = calloc(MAX_RECS, sizeof(*recs));
    assert_non_null(recs);
    load_samples(s);
    for (size_t k = 0; k < NUM_SAMPLES; k++) {
        size_t n = walk_sample(&s[k], recs);
        for (size_t i = 0; i < n; i++) {
            const rec_t *r = &recs[i];
            const uint64_t bad[] = {UINT64_MAX,
                                    UINT64_MAX - 8,
                                    UINT64_MAX - r->len_at,
                                    1ull << 63,
                                    1ull << 32,
                                    (uint64_t)r->body_len + 1,
                                    (uint64_t)(s[k].b.len - r->body_at),
                                    (uint64_t)(s[k].b.len - r->body_at) - 1,
                                    r->body_len ? (uint64_t)r->body_len - 1 : 7};
            for (size_t j = 0; j < sizeof(bad) / sizeof(bad[0]); j++) {
                if (bad[j] == r->body_len)
                    continue;
                bytes_t c = patch_u64(&s[k].b, r->len_at, bad[j]);
                expect_mismatch(&s[k], &c, "a wrong record length", r->len_at);
                free(c.p);
            }
        }
    }
    free_samples(s);
    free(recs);
}

static void test_huge_counts(void **state)
{
    (void)state;
    sample_t s[NUM_SAMPLES];
    rec_t *recs = calloc(MAX_RECS, sizeof(*recs));
    assert_non_null(recs);
    load_samples(s);
    for (size_t k = 0; k < NUM_SAMPLES; k++) {
        size_t n = walk_sample(&s[k], recs);
        for (size_t i = 0; i < n; i++) {
            if (!recs[i].is_count)
                continue;
            uint64_t count;
            memcpy(&count, s[k].b.p + recs[i].body_at, 8);
            const uint64_t bad[] = {UINT64_MAX, 1ull << 63, 1ull << 32, UINT64_MAX / 24 + 1,
                                    count + 1, count ? count - 1 : 2};
            for (size_t j = 0; j < sizeof(bad) / sizeof(bad[0]); j++) {
                bytes_t c = patch_u64(&s[k].b, recs[i].body_at, bad[j]);
                expect_mismatch(&s[k], &c, "a wrong count", recs[i].body_at);
                if (j < 4 && strstr(nixl_last_error(), "count") == NULL)
                    fail_msg("%s: the reason '%s' does not name the count", s[k].name,
                             nixl_last_error());
                free(c.p);
            }
        }
    }
    free_samples(s);
    free(recs);
}

static void test_magic(void **state)
{
    (void)state;
    sample_t s[NUM_SAMPLES];
    load_samples(s);
    for (size_t k = 0; k < NUM_SAMPLES; k++) {
        for (size_t i = 0; i < NIXL_SERDES_MAGIC_LEN; i++) {
            bytes_t c = dup_bytes(s[k].b.p, s[k].b.len);
            c.p[i] ^= 0x01;
            expect_mismatch(&s[k], &c, "a damaged magic", i);
            free(c.p);
        }
    }
    free_samples(s);
    assert_int_equal(nixl_md_decode(NULL, 0, &(nixl_md_view_t){0}), NIXL_ERR_MISMATCH);
    assert_int_equal(md_status("", 0), NIXL_ERR_MISMATCH);
    assert_int_equal(md_status("nixlSerDes|", 11), NIXL_ERR_MISMATCH);
    assert_int_equal(dlist_status("nixlSerDes|", 11), NIXL_ERR_MISMATCH);
    assert_int_equal(md_status("nixlSerDes", 10), NIXL_ERR_MISMATCH);
}

static void test_tags_and_terminators(void **state)
{
    (void)state;
    sample_t s[NUM_SAMPLES];
    rec_t *recs = calloc(MAX_RECS, sizeof(*recs));
    assert_non_null(recs);
    load_samples(s);
    for (size_t k = 0; k < NUM_SAMPLES; k++) {
        size_t n = walk_sample(&s[k], recs);
        for (size_t i = 0; i < n; i++) {
            const rec_t *r = &recs[i];
            for (size_t t = 0; t < r->tag_len; t++) {
                bytes_t c = dup_bytes(s[k].b.p, s[k].b.len);
                c.p[r->tag_at + t] ^= 0x20;
                expect_mismatch(&s[k], &c, "a damaged tag", r->tag_at + t);
                free(c.p);
            }
            /* a record of another kind in place of this one */
            if (r->tag_len) {
                bytes_t c = dup_bytes(s[k].b.p, s[k].b.len);
                memset(c.p + r->tag_at, 'q', r->tag_len);
                expect_mismatch(&s[k], &c, "an unknown tag", r->tag_at);
                free(c.p);
            }

            bytes_t c = dup_bytes(s[k].b.p, s[k].b.len);
            c.p[r->bar_at] = '#';
            expect_mismatch(&s[k], &c, "a missing '|'", r->bar_at);
            free(c.p);

            /* the terminator dropped altogether */
            c = dup_bytes(s[k].b.p, s[k].b.len - 1);
            memcpy(c.p + r->bar_at, s[k].b.p + r->bar_at + 1, s[k].b.len - r->bar_at - 1);
            expect_mismatch(&s[k], &c, "a dropped '|'", r->bar_at);
            free(c.p);
        }
    }
    free_samples(s);
    free(recs);
}

static void test_mem_types(void **state)
{
    (void)state;
    sample_t s[NUM_SAMPLES];
    rec_t *recs = calloc(MAX_RECS, sizeof(*recs));
    assert_non_null(recs);
    load_samples(s);
    for (size_t k = 0; k < NUM_SAMPLES; k++) {
        size_t n = walk_sample(&s[k], recs);
        for (size_t i = 0; i < n; i++) {
            if (!recs[i].is_type)
                continue;
            assert_int_equal(recs[i].body_len, 4);
            for (uint32_t t = 0; t <= 4; t++) {
                bytes_t c = dup_bytes(s[k].b.p, s[k].b.len);
                uint8_t *at = c.p + recs[i].body_at; /* (one store per byte: gcc 13 at -O3
                                                      * takes a 4-byte memcpy for an overflow) */
                for (int b = 0; b < 4; b++)
                    at[b] = (uint8_t)(t >> (8 * b));
                if (s[k].is_dlist) {
                    nixl_mem_t type;
                    nixl_desc_t *d;
                    nixl_reg_desc_t *rg;
                    size_t cnt;
                    assert_int_equal(nixl_any_dlist_decode(c.p, c.len, &type, &d, &rg, &cnt),
                                     NIXL_SUCCESS);
                    assert_int_equal(type, t);
                    free(d);
                    free(rg);
                } else {
                    nixl_md_view_t v;
                    assert_int_equal(nixl_md_decode(c.p, c.len, &v), NIXL_SUCCESS);
                    assert_int_equal(v.sections[0].type, t);
                    nixl_md_view_free(&v);
                }
                free(c.p);
            }
            const uint32_t bad[] = {5, 6, 0x7fffffff, 0x80000000u, 0xffffffffu};
            for (size_t j = 0; j < sizeof(bad) / sizeof(bad[0]); j++) {
                bytes_t c = dup_bytes(s[k].b.p, s[k].b.len);
                memcpy(c.p + recs[i].body_at, &bad[j], 4);
                expect_mismatch(&s[k], &c, "a bad memory type", recs[i].body_at);
                assert_non_null(strstr(nixl_last_error(), "bad memory type"));
                free(c.p);
            }
        }
    }
    free_samples(s);
    free(recs);

    /* a type record of the wrong size */
    nixl_buf_t b;
    nixl_buf_init(&b, 0);
    nixl_serdes_begin(&b);
    nixl_serdes_put(&b, "nixlDList", "nixlBDList", 10);
    nixl_serdes_put_u64(&b, "t", 0);
    nixl_serdes_put_u64(&b, "n", 0);
    bytes_t e = take_buf(&b);
    assert_int_equal(dlist_status(e.p, e.len), NIXL_ERR_MISMATCH);
    free(e.p);
}

static void test_trailing_bytes(void **state)
{
    (void)state;
    sample_t s[NUM_SAMPLES];
    load_samples(s);
    static const struct {
        const char *bytes;
        size_t len;
    } tails[] = {{"\0", 1}, {"|", 1}, {"nixlSerDes|", 11}, {"\0\0\0\0\0\0\0\0|", 9},
                 {"t\0\0\0\0\0\0\0\0|", 10}};
    for (size_t k = 0; k < NUM_SAMPLES; k++) {
        for (size_t j = 0; j < sizeof(tails) / sizeof(tails[0]); j++) {
            bytes_t c = {malloc(s[k].b.len + tails[j].len), s[k].b.len + tails[j].len};
            assert_non_null(c.p);
            memcpy(c.p, s[k].b.p, s[k].b.len);
            memcpy(c.p + s[k].b.len, tails[j].bytes, tails[j].len);
            expect_mismatch(&s[k], &c, "trailing bytes", s[k].b.len);
            assert_non_null(strstr(nixl_last_error(), "trailing"));
            free(c.p);
        }
    }
    free_samples(s);
}

/* ------------------------------------------------------------------------------------------ */
/* hand-built blobs                                                                           */

static const nixl_desc_t D0 = {0x1000, 64, 0};

static bytes_t md_one(const char *name, size_t name_len, const char *conn_be, const void *info,
                      size_t info_len, const char *sec_be, size_t regions)
{
    nixl_buf_t b;
    nixl_buf_init(&b, 0);
    nixl_md_enc_begin(&b, name, name_len, conn_be ? 1 : 0);
    if (conn_be)
        nixl_md_enc_conn(&b, conn_be, info, info_len);
    nixl_md_enc_sections(&b, sec_be ? 1 : 0);
    if (sec_be) {
        nixl_md_enc_section(&b, sec_be, NIXL_VRAM_SEG, regions);
        for (size_t i = 0; i < regions; i++)
            nixl_md_enc_region(&b, &D0, "rk", 2);
    }
    return take_buf(&b);
}

static void expect_md(bytes_t e, nixl_status_t want, const char *reason)
{
    assert_int_equal(md_status(e.p, e.len), want);
    if (reason && strstr(nixl_last_error(), reason) == NULL)
        fail_msg("reason '%s' lacks '%s'", nixl_last_error(), reason);
    free(e.p);
}

static void test_names(void **state)
{
    (void)state;
    expect_md(md_one("a", 1, "UCX", "i", 1, "UCX", 1), NIXL_SUCCESS, NULL);
    expect_md(md_one("", 0, "UCX", "i", 1, "UCX", 1), NIXL_ERR_MISMATCH, "empty agent name");
    expect_md(md_one("a\0b", 3, "UCX", "i", 1, "UCX", 1), NIXL_ERR_MISMATCH, "NUL");
    expect_md(md_one("a", 1, "", "i", 1, "UCX", 1), NIXL_ERR_MISMATCH, "empty connection backend");
    expect_md(md_one("a", 1, "UCX", "", 0, "UCX", 1), NIXL_ERR_MISMATCH, "empty connection info");
    expect_md(md_one("a", 1, "UCX", "i", 1, "", 1), NIXL_ERR_MISMATCH, "empty section backend");

    /* NUL inside a backend name, written through the raw serdes API */
    nixl_buf_t b;
    nixl_buf_init(&b, 0);
    nixl_md_enc_begin(&b, "a", 1, 1);
    nixl_serdes_put(&b, "t", "UC\0X", 4);
    nixl_serdes_put(&b, "c", "i", 1);
    nixl_md_enc_sections(&b, 0);
    expect_md(take_buf(&b), NIXL_ERR_MISMATCH, "NUL");
}

static void test_sections(void **state)
{
    (void)state;
    /* a zero-region section is decoded; the agent decides what it means */
    bytes_t e = md_one("a", 1, NULL, NULL, 0, "UCX", 0);
    nixl_md_view_t v;
    assert_int_equal(nixl_md_decode(e.p, e.len, &v), NIXL_SUCCESS);
    assert_int_equal(v.num_conns, 0);
    assert_int_equal(v.num_sections, 1);
    assert_int_equal(v.sections[0].count, 0);
    assert_int_equal(v.sections[0].type, NIXL_VRAM_SEG);
    assert_int_equal(v.num_regions, 0);
    nixl_md_view_free(&v);
    free(e.p);

    /* sections index into one region array; empty blobs are legal */
    nixl_buf_t b;
    nixl_buf_init(&b, 0);
    nixl_md_enc_begin(&b, "peer", 4, 2);
    nixl_md_enc_conn(&b, "UCX", "u", 1);
    nixl_md_enc_conn(&b, "LIBFABRIC", "lf", 2);
    nixl_md_enc_sections(&b, 3);
    nixl_md_enc_section(&b, "UCX", NIXL_DRAM_SEG, 2);
    nixl_md_enc_region(&b, &(nixl_desc_t){1, 2, 3}, "", 0);
    nixl_md_enc_region(&b, &(nixl_desc_t){4, 5, 6}, "abc", 3);
    nixl_md_enc_section(&b, "UCX", NIXL_FILE_SEG, 0);
    nixl_md_enc_section(&b, "LIBFABRIC", NIXL_VRAM_SEG, 1);
    nixl_md_enc_region(&b, &(nixl_desc_t){UINT64_MAX, SIZE_MAX, UINT64_MAX}, "z", 1);
    e = take_buf(&b);
    assert_int_equal(nixl_md_decode(e.p, e.len, &v), NIXL_SUCCESS);
    assert_int_equal(v.num_conns, 2);
    assert_str_n("LIBFABRIC", v.conns[1].backend, v.conns[1].backend_len);
    assert_str_n("lf", v.conns[1].info, v.conns[1].info_len);
    assert_int_equal(v.num_sections, 3);
    assert_int_equal(v.num_regions, 3);
    assert_int_equal(v.sections[0].first, 0);
    assert_int_equal(v.sections[0].count, 2);
    assert_int_equal(v.sections[1].first, 2);
    assert_int_equal(v.sections[1].count, 0);
    assert_int_equal(v.sections[1].type, NIXL_FILE_SEG);
    assert_int_equal(v.sections[2].first, 2);
    assert_int_equal(v.sections[2].count, 1);
    assert_str_n("LIBFABRIC", v.sections[2].backend, v.sections[2].backend_len);
    assert_int_equal(v.regions[0].blob_len, 0);
    assert_int_equal(v.regions[1].desc.dev_id, 6);
    assert_str_n("abc", v.regions[1].blob, v.regions[1].blob_len);
    assert_int_equal(v.regions[2].desc.addr, UINT64_MAX);
    assert_int_equal(v.regions[2].desc.len, SIZE_MAX);
    nixl_buf_init(&b, 0);
    nixl_md_view_encode(&b, &v);
    bytes_t again = take_buf(&b);
    assert_same_bytes(&again, e.p, e.len);
    free(again.p);
    nixl_md_view_free(&v);
    free(e.p);

    /* a basic list where a section list belongs */
    nixl_buf_init(&b, 0);
    nixl_md_enc_begin(&b, "a", 1, 0);
    nixl_md_enc_sections(&b, 1);
    nixl_serdes_put(&b, "bknd", "UCX", 3);
    nixl_serdes_put(&b, "nixlDList", "nixlBDList", 10);
    nixl_serdes_put(&b, "t", "\0\0\0\0", 4);
    nixl_serdes_put_u64(&b, "n", 0);
    expect_md(take_buf(&b), NIXL_ERR_MISMATCH, "nixlSDList");

    /* a region record shorter than a descriptor */
    nixl_buf_init(&b, 0);
    nixl_md_enc_begin(&b, "a", 1, 0);
    nixl_md_enc_sections(&b, 1);
    nixl_md_enc_section(&b, "UCX", NIXL_DRAM_SEG, 1);
    nixl_serdes_put(&b, "", "0123456789abcdef0123456", 23);
    /* enough bytes after it that the count alone is plausible */
    nixl_serdes_put(&b, "", "0123456789abcdef01234567", 24);
    expect_md(take_buf(&b), NIXL_ERR_MISMATCH, "less than a descriptor");

    /* a wrong MemSection marker */
    nixl_buf_init(&b, 0);
    nixl_md_enc_begin(&b, "a", 1, 0);
    nixl_serdes_put(&b, "", "MemSectioN", 10);
    nixl_serdes_put_u64(&b, "nixlSecElms", 0);
    expect_md(take_buf(&b), NIXL_ERR_MISMATCH, "MemSection");

    /* counts of the wrong width */
    nixl_buf_init(&b, 0);
    nixl_serdes_begin(&b);
    nixl_serdes_put(&b, "Agent", "a", 1);
    nixl_serdes_put(&b, "Conns", "\0\0\0\0", 4);
    nixl_md_enc_sections(&b, 0);
    expect_md(take_buf(&b), NIXL_ERR_MISMATCH, "expected 8");
}

static bytes_t raw_dlist(const char *kind, uint32_t type, uint64_t n, const void *body,
                         size_t body_len, int records)
{
    nixl_buf_t b;
    nixl_buf_init(&b, 0);
    nixl_serdes_begin(&b);
    nixl_serdes_put(&b, "nixlDList", kind, strlen(kind));
    nixl_serdes_put(&b, "t", &type, 4);
    nixl_serdes_put_u64(&b, "n", n);
    for (int i = 0; i < records; i++)
        nixl_serdes_put(&b, "", body, body_len);
    return take_buf(&b);
}

static void test_dlists(void **state)
{
    (void)state;
    uint8_t raw[3 * 24] = {0};
    nixl_mem_t type;
    nixl_desc_t *descs;
    nixl_reg_desc_t *reg;
    size_t count;

    /* empty lists of both kinds: the kind's array is still allocated */
    nixl_buf_t b;
    nixl_buf_init(&b, 0);
    nixl_dlist_encode(&b, NIXL_OBJ_SEG, NULL, 0);
    bytes_t e = take_buf(&b);
    assert_int_equal(nixl_any_dlist_decode(e.p, e.len, &type, &descs, &reg, &count),
                     NIXL_SUCCESS);
    assert_int_equal(type, NIXL_OBJ_SEG);
    assert_int_equal(count, 0);
    assert_non_null(descs);
    assert_null(reg);
    free(descs);
    free(e.p);

    nixl_buf_init(&b, 0);
    nixl_reg_dlist_encode(&b, NIXL_BLK_SEG, NULL, 0);
    e = take_buf(&b);
    assert_int_equal(nixl_any_dlist_decode(e.p, e.len, &type, &descs, &reg, &count),
                     NIXL_SUCCESS);
    assert_int_equal(type, NIXL_BLK_SEG);
    assert_int_equal(count, 0);
    assert_null(descs);
    assert_non_null(reg);
    free(reg);
    free(e.p);

    /* registration descriptors with empty meta */
    nixl_reg_desc_t rd[2] = {{7, 8, 9, NULL, 0}, {10, 11, 12, "m", 1}};
    nixl_buf_init(&b, 0);
    nixl_reg_dlist_encode(&b, NIXL_FILE_SEG, rd, 2);
    e = take_buf(&b);
    assert_int_equal(nixl_any_dlist_decode(e.p, e.len, &type, &descs, &reg, &count),
                     NIXL_SUCCESS);
    assert_int_equal(count, 2);
    assert_int_equal(reg[0].dev_id, 9);
    assert_int_equal(reg[0].meta_len, 0);
    assert_str_n("m", reg[1].meta, reg[1].meta_len);
    free(reg);
    free(e.p);

    struct {
        bytes_t e;
        const char *reason;
    } bad[] = {
        {raw_dlist("nixlBDList", 0, 3, raw, 71, 1), "expected 3 x 24"},
        {raw_dlist("nixlBDList", 0, 3, raw, 48, 1), "count"},
        {raw_dlist("nixlBDList", 0, 2, raw, 72, 1), "expected 2 x 24"},
        {raw_dlist("nixlBDList", 0, 0, raw, 0, 1), "trailing"},
        {raw_dlist("nixlBDList", 0, 1, raw, 24, 2), "trailing"},
        {raw_dlist("nixlBDList", 0, 1, raw, 24, 0), "count"},
        {raw_dlist("nixlBDList", 0, 4, raw, 72, 1), "count"},
        {raw_dlist("nixlSDList", 0, 2, raw, 24, 1), "count"},
        {raw_dlist("nixlSDList", 0, 1, raw, 23, 2), "less than 24"},
        {raw_dlist("nixlSDList", 0, 1, raw, 24, 2), "trailing"},
        {raw_dlist("nixlXDList", 0, 0, raw, 0, 0), "unknown list kind"},
        {raw_dlist("nixlBDLis", 0, 0, raw, 0, 0), "unknown list kind"},
        {raw_dlist("nixlBDList", 5, 0, raw, 0, 0), "bad memory type"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(dlist_status(bad[i].e.p, bad[i].e.len), NIXL_ERR_MISMATCH);
        if (!strstr(nixl_last_error(), bad[i].reason))
            fail_msg("case %zu: reason '%s' lacks '%s'", i, nixl_last_error(), bad[i].reason);
        free(bad[i].e.p);
    }
}

/* The generic container as the UCX notification uses it: "name" then "msg" (may be empty). */
static void test_serdes_api(void **state)
{
    (void)state;
    nixl_buf_t b;
    nixl_buf_init(&b, 0);
    nixl_serdes_begin(&b);
    nixl_serdes_put(&b, "name", "agentA", 6);
    nixl_serdes_put(&b, "msg", NULL, 0);
    nixl_serdes_put_u64(&b, "v", 0x0102030405060708ull);
    bytes_t e = take_buf(&b);

    nixl_serdes_reader_t r;
    const uint8_t *p;
    size_t n;
    uint64_t v;
    assert_int_equal(nixl_serdes_open(&r, e.p, e.len), NIXL_SUCCESS);
    assert_int_equal(nixl_serdes_get(&r, "name", &p, &n), NIXL_SUCCESS);
    assert_str_n("agentA", p, n);
    assert_int_equal(nixl_serdes_get(&r, "msg", &p, &n), NIXL_SUCCESS);
    assert_int_equal(n, 0);
    size_t at = r.pos;
    assert_int_equal(nixl_serdes_get(&r, "w", &p, &n), NIXL_ERR_MISMATCH);
    assert_non_null(strstr(nixl_last_error(), "expected a 'w' record"));
    assert_int_equal(r.pos, at);
    assert_int_equal(nixl_serdes_get_u64(&r, "v", &v), NIXL_SUCCESS);
    assert_int_equal(v, 0x0102030405060708ull);
    assert_int_equal(r.pos, e.len);
    assert_int_equal(nixl_serdes_get(&r, "x", &p, &n), NIXL_ERR_MISMATCH);

    assert_int_equal(nixl_serdes_open(&r, e.p, e.len), NIXL_SUCCESS);
    assert_int_equal(nixl_serdes_get_u64(&r, "name", &v), NIXL_ERR_MISMATCH);
    assert_int_equal(nixl_serdes_open(&r, e.p, 5), NIXL_ERR_MISMATCH);
    free(e.p);

    /* sizes no buffer can hold mark the buffer failed instead of wrapping */
    nixl_buf_init(&b, 0);
    nixl_serdes_put(&b, "tag", "", SIZE_MAX - 3);
    assert_true(b.oom);
    nixl_buf_free(&b);
    nixl_buf_init(&b, 0);
    nixl_md_enc_region(&b, &D0, "", SIZE_MAX - 20);
    assert_true(b.oom);
    nixl_buf_free(&b);
    nixl_buf_init(&b, 0);
    nixl_dlist_encode(&b, NIXL_DRAM_SEG, &D0, SIZE_MAX / 24 + 1);
    assert_true(b.oom);
    nixl_buf_free(&b);
    nixl_md_view_free(NULL);
}

/* 10,000 regions: correct at scale, and the cost per region printed for the record. */
static void test_many_regions(void **state)
{
    (void)state;
    enum { N = 10000 };
    nixl_buf_t b;
    nixl_buf_init(&b, 0);
    nixl_md_enc_begin(&b, "big", 3, 1);
    nixl_md_enc_conn(&b, "UCX", "conn", 4);
    nixl_md_enc_sections(&b, 2);
    nixl_md_enc_section(&b, "UCX", NIXL_DRAM_SEG, N / 2);
    for (size_t i = 0; i < N; i++) {
        if (i == N / 2)
            nixl_md_enc_section(&b, "UCX", NIXL_VRAM_SEG, N / 2);
        nixl_desc_t d = {0x100000000ull + i * 4096, 4096, i >= N / 2};
        uint8_t rkey[12];
        memset(rkey, (int)(i & 0xff), sizeof(rkey));
        nixl_md_enc_region(&b, &d, rkey, sizeof(rkey));
    }
    bytes_t e = take_buf(&b);

    nixl_md_view_t v;
    assert_int_equal(nixl_md_decode(e.p, e.len, &v), NIXL_SUCCESS);
    assert_int_equal(v.num_regions, N);
    assert_int_equal(v.sections[1].first, N / 2);
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(v.regions[i].desc.addr, 0x100000000ull + i * 4096);
        assert_int_equal(v.regions[i].desc.dev_id, i >= N / 2);
        assert_int_equal(v.regions[i].blob_len, 12);
        assert_int_equal(v.regions[i].blob[11], i & 0xff);
    }
    nixl_buf_init(&b, 0);
    nixl_md_view_encode(&b, &v);
    bytes_t again = take_buf(&b);
    assert_same_bytes(&again, e.p, e.len);
    free(again.p);
    nixl_md_view_free(&v);

    enum { ROUNDS = 50 };
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int k = 0; k < ROUNDS; k++) {
        assert_int_equal(nixl_md_decode(e.p, e.len, &v), NIXL_SUCCESS);
        nixl_md_view_free(&v);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ns = ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) /
                ((double)ROUNDS * N);
    print_message("decode: %.1f ns per region (%d regions, %zu bytes)\n", ns, N, e.len);
    free(e.p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_fields),
        cmocka_unit_test(test_sidechannel_md),
        cmocka_unit_test(test_reencode_identical),
        cmocka_unit_test(test_build_from_scratch),
        cmocka_unit_test(test_pickle_xfer_dlist),
        cmocka_unit_test(test_pickle_reg_dlist),
        cmocka_unit_test(test_truncation_every_offset),
        cmocka_unit_test(test_length_fields),
        cmocka_unit_test(test_huge_counts),
        cmocka_unit_test(test_magic),
        cmocka_unit_test(test_tags_and_terminators),
        cmocka_unit_test(test_mem_types),
        cmocka_unit_test(test_trailing_bytes),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_sections),
        cmocka_unit_test(test_dlists),
        cmocka_unit_test(test_serdes_api),
        cmocka_unit_test(test_many_regions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
