/* Registry: sorted sections and the cover lookup, checked against a brute-force search. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "registry.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static nixl_region_t reg(uintptr_t addr, size_t len, uint64_t dev)
{
    return (nixl_region_t){.addr = addr, .len = len, .dev_id = dev};
}

static void assert_sorted(const nixl_section_t *s)
{
    for (size_t i = 1; i < s->count; i++)
        assert_true(nixl_region_cmp(&s->regions[i - 1], &s->regions[i]) <= 0);
}

static bool brute_covered(const nixl_region_t *all, size_t n, uintptr_t a, size_t l, uint64_t d)
{
    for (size_t i = 0; i < n; i++)
        if (nixl_region_covers(&all[i], a, l, d))
            return true;
    return false;
}

static void test_lookup_matches_brute_force_with_overlaps(void **state)
{
    (void)state;
    enum { N = 600 };
    nixl_region_t all[N];
    nixl_section_t s;
    nixl_section_init(&s);
    for (size_t i = 0; i < N; i++) {
        /* heavy overlap: addresses in a small window, lengths from tiny to huge */
        all[i] = reg(0x1000 + rnd() % 100000, 1 + rnd() % ((i % 7 == 0) ? 80000 : 300),
                     rnd() % 3);
        /* insert in batches of varying size and in single inserts */
        if (i % 50 == 49) {
            assert_int_equal(nixl_section_insert(&s, &all[i - 49], 50), NIXL_SUCCESS);
        }
    }
    assert_int_equal(s.count, N);
    assert_sorted(&s);
    for (int q = 0; q < 20000; q++) {
        uintptr_t a = 0x1000 + rnd() % 110000;
        size_t l = rnd() % 2000;
        uint64_t d = rnd() % 4;
        const nixl_region_t *r = nixl_section_lookup(&s, a, l, d);
        bool expect = brute_covered(all, N, a, l, d);
        assert_int_equal(r != NULL, expect);
        if (r)
            assert_true(nixl_region_covers(r, a, l, d));
    }
    nixl_section_free(&s);
}

static void test_overlap_missed_by_naive_search(void **state)
{
    (void)state;
    /* A big region, then a small one starting later: a search that only looks at the nearest
     * predecessor misses the big one for a query past the small one's end. */
    nixl_region_t items[] = {reg(0, 1 << 20, 0), reg(4096, 64, 0)};
    nixl_section_t s;
    nixl_section_init(&s);
    assert_int_equal(nixl_section_insert(&s, items, 2), NIXL_SUCCESS);
    const nixl_region_t *r = nixl_section_lookup(&s, 8192, 4096, 0);
    assert_non_null(r);
    assert_int_equal(r->len, 1 << 20);
    assert_null(nixl_section_lookup(&s, 8192, 1 << 20, 0));
    assert_null(nixl_section_lookup(&s, 0, 64, 1));
    /* a descriptor spanning two adjacent registrations is not covered by one region */
    nixl_region_t adj[] = {reg(1 << 21, 4096, 0), reg((1 << 21) + 4096, 4096, 0)};
    assert_int_equal(nixl_section_insert(&s, adj, 2), NIXL_SUCCESS);
    assert_null(nixl_section_lookup(&s, (1 << 21) + 2048, 4096, 0));
    nixl_section_free(&s);
}

static void test_duplicates_kept_and_removed_one_by_one(void **state)
{
    (void)state;
    nixl_section_t s;
    nixl_section_init(&s);
    nixl_region_t a = reg(100, 10, 0), b = reg(100, 10, 0);
    a.md = (nixl_be_md_t *)(uintptr_t)1;
    b.md = (nixl_be_md_t *)(uintptr_t)2;
    assert_int_equal(nixl_section_insert(&s, &a, 1), NIXL_SUCCESS);
    assert_int_equal(nixl_section_insert(&s, &b, 1), NIXL_SUCCESS);
    assert_int_equal(s.count, 2);
    ptrdiff_t k = nixl_section_find_exact(&s, 100, 10, 0, b.md);
    assert_true(k >= 0);
    assert_ptr_equal(s.regions[k].md, b.md);
    size_t idx = (size_t)k;
    nixl_section_remove(&s, &idx, 1);
    assert_int_equal(s.count, 1);
    assert_ptr_equal(s.regions[0].md, a.md);
    assert_int_equal(nixl_section_find_exact(&s, 100, 10, 0, b.md), -1);
    assert_int_equal(nixl_section_find_exact(&s, 100, 10, 0, NULL), 0);
    idx = 0;
    nixl_section_remove(&s, &idx, 1);
    assert_int_equal(s.count, 0);
    assert_null(nixl_section_lookup(&s, 100, 1, 0));
    nixl_section_free(&s);
}

static void test_whole_object_regions(void **state)
{
    (void)state;
    assert_int_equal(nixl_region_len(NIXL_FILE_SEG, 0), SIZE_MAX);
    assert_int_equal(nixl_region_len(NIXL_OBJ_SEG, 0), SIZE_MAX);
    assert_int_equal(nixl_region_len(NIXL_BLK_SEG, 0), SIZE_MAX);
    assert_int_equal(nixl_region_len(NIXL_DRAM_SEG, 0), 0);
    assert_int_equal(nixl_region_len(NIXL_FILE_SEG, 7), 7);
    nixl_section_t s;
    nixl_section_init(&s);
    nixl_region_t f = reg(0, nixl_region_len(NIXL_FILE_SEG, 0), 5);
    assert_int_equal(nixl_section_insert(&s, &f, 1), NIXL_SUCCESS);
    /* any offset and size of that file is covered; other files are not */
    assert_non_null(nixl_section_lookup(&s, 1ull << 40, 1 << 30, 5));
    assert_null(nixl_section_lookup(&s, 0, 1, 6));
    assert_true(nixl_section_find_exact(&s, 0, SIZE_MAX, 5, NULL) >= 0);
    nixl_section_free(&s);
}

static void test_batch_merge_keeps_order(void **state)
{
    (void)state;
    nixl_section_t s;
    nixl_section_init(&s);
    for (int round = 0; round < 20; round++) {
        nixl_region_t batch[37];
        for (size_t i = 0; i < 37; i++)
            batch[i] = reg(rnd() % 5000, 1 + rnd() % 100, rnd() % 2);
        assert_int_equal(nixl_section_insert(&s, batch, 37), NIXL_SUCCESS);
        assert_sorted(&s);
    }
    assert_int_equal(s.count, 20 * 37);
    /* remove every third region; the rest stays sorted and searchable */
    size_t idx[300], n = 0;
    for (size_t i = 0; i < s.count; i += 3)
        idx[n++] = i;
    nixl_section_remove(&s, idx, n);
    assert_int_equal(s.count, 20 * 37 - n);
    assert_sorted(&s);
    for (size_t i = 0; i < s.count; i++) {
        const nixl_region_t *r = &s.regions[i];
        assert_non_null(nixl_section_lookup(&s, r->addr, r->len, r->dev_id));
    }
    nixl_section_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookup_matches_brute_force_with_overlaps),
        cmocka_unit_test(test_overlap_missed_by_naive_search),
        cmocka_unit_test(test_duplicates_kept_and_removed_one_by_one),
        cmocka_unit_test(test_whole_object_regions),
        cmocka_unit_test(test_batch_merge_keeps_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
