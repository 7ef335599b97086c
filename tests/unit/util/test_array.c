/*
 * test_array.c - the growable array of src/util: doubling growth, reserve, push, free, and
 * sizes that would overflow size_t.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "array.h"

typedef struct item {
    uint64_t a;
    uint32_t b;
} item_t;

static void test_push_grows_by_doubling(void **state)
{
    (void)state;
    item_t *v = NULL;
    size_t n = 0, cap = 0;
    size_t caps_seen = 0;
    for (size_t i = 0; i < 10000; i++) {
        size_t before = cap;
        item_t *slot = nixl_array_push(v, n, cap);
        assert_non_null(slot);
        assert_ptr_equal(slot, &v[i]);
        *slot = (item_t){.a = i * 3, .b = (uint32_t)i};
        assert_int_equal(n, i + 1);
        if (cap != before) {
            assert_int_equal(cap, before ? before * 2 : NIXL_ARRAY_MIN_CAP);
            caps_seen++;
        }
    }
    assert_int_equal(caps_seen, 11); /* 16 ... 16384 */
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(v[i].a, i * 3);
        assert_int_equal(v[i].b, i);
    }
    nixl_array_free(v, n, cap);
    assert_null(v);
    assert_int_equal(n, 0);
    assert_int_equal(cap, 0);
}

static void test_reserve(void **state)
{
    (void)state;
    uint32_t *v = NULL;
    size_t n = 0, cap = 0;
    assert_true(nixl_array_reserve(v, cap, 0));
    assert_null(v);
    assert_true(nixl_array_reserve(v, cap, 100)); /* beyond twice the capacity: exactly */
    assert_int_equal(cap, 100);
    assert_true(nixl_array_reserve(v, cap, 128));
    assert_int_equal(cap, 200);
    uint32_t *kept = v;
    for (uint32_t i = 0; i < 128; i++)
        *nixl_array_push(v, n, cap) = i;
    assert_ptr_equal(v, kept); /* no reallocation within the reserved room */
    assert_int_equal(cap, 200);
    assert_true(nixl_array_reserve(v, cap, 50)); /* smaller: nothing to do */
    assert_int_equal(cap, 200);
    assert_true(nixl_array_reserve(v, cap, 201));
    assert_int_equal(cap, 400);
    for (uint32_t i = 0; i < 128; i++)
        assert_int_equal(v[i], i);
    nixl_array_free(v, n, cap);
}

static void test_grow_cap(void **state)
{
    (void)state;
    assert_int_equal(nixl_array_grow_cap(0, 1, 8), NIXL_ARRAY_MIN_CAP);
    assert_int_equal(nixl_array_grow_cap(0, 17, 8), 17);
    assert_int_equal(nixl_array_grow_cap(16, 17, 8), 32);
    assert_int_equal(nixl_array_grow_cap(10, 5, 8), 10);
    assert_int_equal(nixl_array_grow_cap(10, 11, 8), 20);
    assert_int_equal(nixl_array_grow_cap(3, 100, 1), 100);
    /* The element count whose byte size fits, exactly. */
    size_t max = SIZE_MAX / 24;
    assert_int_equal(nixl_array_grow_cap(0, max + 1, 24), 0);
    assert_int_equal(nixl_array_grow_cap(0, max, 24), max);
    /* Doubling past the limit stops at it rather than wrapping. */
    assert_int_equal(nixl_array_grow_cap(max / 2 + 1, max / 2 + 2, 24), max);
    assert_int_equal(nixl_array_grow_cap(SIZE_MAX / 2 + 1, SIZE_MAX, 1), SIZE_MAX);
    /* Elements too large for even the first capacity. */
    assert_int_equal(nixl_array_grow_cap(0, 1, SIZE_MAX / 4), 4);
}

typedef struct big {
    char bytes[1 << 16];
} big_t;

static void test_overflow_fails_cleanly(void **state)
{
    (void)state;
    big_t *v = NULL;
    size_t n = 0, cap = 0;
    assert_non_null(nixl_array_push(v, n, cap));
    big_t *kept = v;
    /* need * 64 KiB overflows size_t: refused, the array as it was. */
    assert_false(nixl_array_reserve(v, cap, SIZE_MAX / 1000));
    assert_ptr_equal(v, kept);
    assert_int_equal(cap, NIXL_ARRAY_MIN_CAP);
    assert_int_equal(n, 1);
    /* nixl_array_realloc checks the product too and leaves the storage alone. */
    assert_null(nixl_array_realloc(v, SIZE_MAX / 2, sizeof(big_t)));
    assert_null(nixl_array_realloc(v, 0, sizeof(big_t))); /* a failed nixl_array_grow_cap */
    v[0].bytes[0] = 1; /* still ours */
    nixl_array_free(v, n, cap);
}

static void test_parallel_arrays(void **state)
{
    (void)state;
    /* Two arrays sharing one count and capacity, grown with the two functions. */
    uint64_t *a = NULL;
    uint8_t *b = NULL;
    size_t n = 0, cap = 0;
    for (size_t i = 0; i < 1000; i++) {
        if (n == cap) {
            size_t nc = nixl_array_grow_cap(cap, n + 1, sizeof(*a));
            assert_int_not_equal(nc, 0);
            uint64_t *na = nixl_array_realloc(a, nc, sizeof(*a));
            assert_non_null(na);
            a = na;
            uint8_t *nb = nixl_array_realloc(b, nc, sizeof(*b));
            assert_non_null(nb);
            b = nb;
            cap = nc;
        }
        a[n] = i;
        b[n++] = (uint8_t)i;
    }
    for (size_t i = 0; i < n; i++)
        assert_true(a[i] == i && b[i] == (uint8_t)i);
    free(a);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_push_grows_by_doubling),
        cmocka_unit_test(test_reserve),
        cmocka_unit_test(test_grow_cap),
        cmocka_unit_test(test_overflow_fails_cleanly),
        cmocka_unit_test(test_parallel_arrays),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
