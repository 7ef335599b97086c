/*
 * test_dlist_serdes.c - the public descriptor-list serialization (nixl.h), through libnixl.so as
 * a user (and the Python package) sees it: the reference's bytes round-trip exactly, each call
 * accepts only its own kind, and what it returns owns its memory.
 *
 * The reference's bytes are the states inside the pickles of tests/data, kept as fuzz seeds
 * (tests/fuzz/corpus/md/golden_*_dlist_*.serdes).
 */
#include "agent_test.h"

#ifndef NIXL_FUZZ_CORPUS_DIR
#define NIXL_FUZZ_CORPUS_DIR "tests/fuzz/corpus/md"
#endif

typedef struct bytes {
    uint8_t *p;
    size_t len;
} bytes_t;

static bytes_t load(const char *name)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", NIXL_FUZZ_CORPUS_DIR, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    bytes_t b = {malloc(4096), 0};
    assert_non_null(b.p);
    b.len = fread(b.p, 1, 4096, f);
    fclose(f);
    assert_true(b.len > 0 && b.len < 4096);
    return b;
}

/* A serialize call gave back exactly `want` (the reference's bytes); frees what it returned. */
#define EXPECT_SAME_BYTES(want, call_with_out_len)                                           \
    do {                                                                                     \
        void *out = NULL;                                                                    \
        size_t len = 0;                                                                      \
        EXPECT_ST(NIXL_SUCCESS, call_with_out_len);                                          \
        assert_int_equal(len, (want).len);                                                   \
        assert_memory_equal(out, (want).p, len);                                             \
        nixl_free(out);                                                                      \
    } while (0)

static void test_xfer_golden(void **state)
{
    (void)state;
    bytes_t in = load("golden_xfer_dlist_3.serdes");
    nixl_mem_t type = NIXL_FILE_SEG;
    nixl_desc_t *d = NULL;
    size_t n = 0;
    EXPECT_ST(NIXL_SUCCESS, nixl_xfer_dlist_deserialize(in.p, in.len, &type, &d, &n));
    assert_int_equal(type, NIXL_DRAM_SEG);
    assert_int_equal(n, 3);
    assert_int_equal(d[1].addr, d[0].addr + 4096); /* tests/data/README.md: A, A+4096, A+65536 */
    assert_int_equal(d[0].len, 4096);
    assert_int_equal(d[1].len, 100);
    assert_int_equal(d[2].len, 8192);
    EXPECT_SAME_BYTES(in, nixl_xfer_dlist_serialize(type, d, n, &out, &len));
    nixl_free(d);
    free(in.p);
}

static void test_reg_golden_owns_meta(void **state)
{
    (void)state;
    bytes_t in = load("golden_reg_dlist_2.serdes");
    nixl_mem_t type;
    nixl_reg_desc_t *r = NULL;
    size_t n = 0;
    EXPECT_ST(NIXL_SUCCESS, nixl_reg_dlist_deserialize(in.p, in.len, &type, &r, &n));
    assert_int_equal(n, 2);
    assert_int_equal(type, NIXL_DRAM_SEG);
    /* Nothing points into the input: scribble over it and free it first. */
    bytes_t copy = {malloc(in.len), in.len};
    assert_non_null(copy.p);
    memcpy(copy.p, in.p, in.len);
    memset(in.p, 0xEE, in.len);
    free(in.p);
    assert_int_equal(r[0].meta_len, 1);
    assert_memory_equal(r[0].meta, "x", 1);
    assert_int_equal(r[1].meta_len, 8);
    assert_memory_equal(r[1].meta, "meta-two", 8);
    EXPECT_SAME_BYTES(copy, nixl_reg_dlist_serialize(type, r, n, &out, &len));
    nixl_free(r);
    free(copy.p);
}

static void test_kinds_do_not_mix(void **state)
{
    (void)state;
    bytes_t x = load("golden_xfer_dlist_3.serdes"), g = load("golden_reg_dlist_2.serdes");
    nixl_mem_t type = NIXL_VRAM_SEG;
    nixl_desc_t *d = NULL;
    nixl_reg_desc_t *r = NULL;
    size_t n = 7;
    EXPECT_ERR(NIXL_ERR_MISMATCH, "registration list",
               nixl_xfer_dlist_deserialize(g.p, g.len, &type, &d, &n));
    EXPECT_ERR(NIXL_ERR_MISMATCH, "transfer list",
               nixl_reg_dlist_deserialize(x.p, x.len, &type, &r, &n));
    /* outputs are written only on success */
    assert_null(d);
    assert_null(r);
    assert_int_equal(n, 7);
    assert_int_equal(type, NIXL_VRAM_SEG);
    free(x.p);
    free(g.p);
}

static void test_empty_lists(void **state)
{
    (void)state;
    for (int m = 0; m < NIXL_MEM_COUNT; m++) {
        void *out = NULL;
        size_t len = 0, n = 9;
        nixl_mem_t type;
        nixl_desc_t *d = NULL;
        EXPECT_ST(NIXL_SUCCESS, nixl_xfer_dlist_serialize((nixl_mem_t)m, NULL, 0, &out, &len));
        EXPECT_ST(NIXL_SUCCESS, nixl_xfer_dlist_deserialize(out, len, &type, &d, &n));
        assert_int_equal(type, m);
        assert_int_equal(n, 0);
        assert_non_null(d);
        nixl_free(d);
        nixl_free(out);

        nixl_reg_desc_t *r = NULL;
        EXPECT_ST(NIXL_SUCCESS, nixl_reg_dlist_serialize((nixl_mem_t)m, NULL, 0, &out, &len));
        EXPECT_ST(NIXL_SUCCESS, nixl_reg_dlist_deserialize(out, len, &type, &r, &n));
        assert_int_equal(type, m);
        assert_int_equal(n, 0);
        assert_non_null(r);
        nixl_free(r);
        nixl_free(out);
    }
}

static void test_reg_roundtrip_binary_meta(void **state)
{
    (void)state;
    static const char bin[] = {'a', '\0', 'b', '|', '\xff'};
    nixl_reg_desc_t in[3] = {
        {0x1000, 64, 3, bin, sizeof(bin)},
        {0, 0, 42, NULL, 0}, /* FILE-style: whole object, no meta */
        {0x2000, 8, 0, "ro:/tmp/x", 9},
    };
    void *out = NULL;
    size_t len = 0, n = 0;
    EXPECT_ST(NIXL_SUCCESS, nixl_reg_dlist_serialize(NIXL_FILE_SEG, in, 3, &out, &len));
    nixl_mem_t type;
    nixl_reg_desc_t *r = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_reg_dlist_deserialize(out, len, &type, &r, &n));
    assert_int_equal(type, NIXL_FILE_SEG);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(r[i].addr, in[i].addr);
        assert_int_equal(r[i].len, in[i].len);
        assert_int_equal(r[i].dev_id, in[i].dev_id);
        assert_int_equal(r[i].meta_len, in[i].meta_len);
        if (in[i].meta_len)
            assert_memory_equal(r[i].meta, in[i].meta, in[i].meta_len);
    }
    nixl_free(r);
    nixl_free(out);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    void *out = NULL;
    size_t len = 0, n = 0;
    nixl_desc_t one = {0x1000, 1, 0};
    nixl_reg_desc_t bad_meta = {0x1000, 1, 0, NULL, 4};
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, "memory type",
               nixl_xfer_dlist_serialize((nixl_mem_t)NIXL_MEM_COUNT, &one, 1, &out, &len));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL,
               nixl_xfer_dlist_serialize(NIXL_DRAM_SEG, NULL, 1, &out, &len));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL,
               nixl_xfer_dlist_serialize(NIXL_DRAM_SEG, &one, 1, NULL, &len));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, "meta",
               nixl_reg_dlist_serialize(NIXL_DRAM_SEG, &bad_meta, 1, &out, &len));
    assert_null(out);

    nixl_mem_t type;
    nixl_desc_t *d = NULL;
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL, nixl_xfer_dlist_deserialize(NULL, 5, &type, &d, &n));
    EXPECT_ERR(NIXL_ERR_MISMATCH, NULL, nixl_xfer_dlist_deserialize(NULL, 0, &type, &d, &n));
    EXPECT_ERR(NIXL_ERR_MISMATCH, NULL, nixl_xfer_dlist_deserialize("garbage", 7, &type, &d, &n));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL, nixl_xfer_dlist_deserialize("x", 1, NULL, &d, &n));
    assert_null(d);
}

/* Every truncation of the reference's bytes is refused, with a reason. */
static void test_truncations(void **state)
{
    (void)state;
    const char *names[] = {"golden_xfer_dlist_3.serdes", "golden_reg_dlist_2.serdes"};
    for (size_t k = 0; k < 2; k++) {
        bytes_t in = load(names[k]);
        for (size_t cut = 0; cut < in.len; cut++) {
            uint8_t *p = malloc(cut ? cut : 1); /* exact size: ASan/valgrind see overreads */
            assert_non_null(p);
            memcpy(p, in.p, cut);
            nixl_mem_t type;
            nixl_desc_t *d = NULL;
            nixl_reg_desc_t *r = NULL;
            size_t n = 0;
            nixl_status_t st = k == 0 ? nixl_xfer_dlist_deserialize(p, cut, &type, &d, &n)
                                      : nixl_reg_dlist_deserialize(p, cut, &type, &r, &n);
            if (st != NIXL_ERR_MISMATCH)
                fail_msg("%s cut at %zu: %s", names[k], cut, nixl_status_str(st));
            assert_true(nixl_last_error()[0] != '\0');
            free(p);
        }
        free(in.p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xfer_golden),
        cmocka_unit_test(test_reg_golden_owns_meta),
        cmocka_unit_test(test_kinds_do_not_mix),
        cmocka_unit_test(test_empty_lists),
        cmocka_unit_test(test_reg_roundtrip_binary_meta),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_truncations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
