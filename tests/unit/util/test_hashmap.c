/*
 * test_hashmap.c - the hash map of src/util: the FNV-1a 64 vectors, binary keys, growth, keys
 * that share a home slot, tombstones, removal during iteration, and a long random run checked
 * against a plain array.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hashmap.h"

/* Keys that outlive the map in each test: the map borrows them. */
#define NKEYS 10000
static char keys[NKEYS][16];
static size_t key_lens[NKEYS];

static void make_keys(void)
{
    for (size_t i = 0; i < NKEYS; i++)
        key_lens[i] = (size_t)snprintf(keys[i], sizeof(keys[i]), "key-%zu", i);
}

static void *val(size_t i)
{
    return (void *)(uintptr_t)(i + 1);
}

/* The home slot, as hashmap.c computes it (the test looks inside to build collisions). */
static size_t home_of(const void *key, size_t len, size_t nslots)
{
    uint64_t h = nixl_hash_fnv1a(key, len);
    if (h < 2)
        h += 2;
    return (size_t)(h ^ (h >> 32)) & (nslots - 1);
}

static void test_fnv_vectors(void **state)
{
    (void)state;
    assert_int_equal(nixl_hash_fnv1a("", 0), 0xcbf29ce484222325ull);
    assert_int_equal(nixl_hash_fnv1a(NULL, 0), 0xcbf29ce484222325ull);
    assert_int_equal(nixl_hash_fnv1a("a", 1), 0xaf63dc4c8601ec8cull);
    assert_int_equal(nixl_hash_fnv1a("foobar", 6), 0x85944171f73967e8ull);
    assert_int_equal(nixl_hash_fnv1a("a\0b", 3), 0xe5d29919042666b2ull);
}

static void test_empty(void **state)
{
    (void)state;
    nixl_hmap_t m = {0};
    assert_null(nixl_hmap_get(&m, "x", 1));
    assert_false(nixl_hmap_find(&m, "x", 1, NULL));
    assert_null(nixl_hmap_remove(&m, "x", 1));
    size_t it = 0;
    assert_false(nixl_hmap_next(&m, &it, NULL, NULL, NULL));
    assert_int_equal(nixl_hmap_count(&m), 0);
    nixl_hmap_free(&m);
    nixl_hmap_free(&m);
}

static void test_put_get_replace(void **state)
{
    (void)state;
    nixl_hmap_t m;
    nixl_hmap_init(&m);
    char a[] = "alpha", b[] = "alpha";
    assert_true(nixl_hmap_put(&m, a, 5, val(1)));
    assert_ptr_equal(nixl_hmap_get(&m, "alpha", 5), val(1));
    assert_null(nixl_hmap_get(&m, "alph", 4));
    assert_null(nixl_hmap_get(&m, "alphaa", 6));
    /* The same key again: new value and the new address (the old key may be freed now). */
    assert_true(nixl_hmap_put(&m, b, 5, val(2)));
    assert_int_equal(nixl_hmap_count(&m), 1);
    size_t it = 0, len;
    const void *k;
    void *v;
    assert_true(nixl_hmap_next(&m, &it, &k, &len, &v));
    assert_ptr_equal(k, b);
    assert_int_equal(len, 5);
    assert_ptr_equal(v, val(2));
    assert_false(nixl_hmap_next(&m, &it, &k, &len, &v));
    /* NULL is a value; find tells it from absence. */
    assert_true(nixl_hmap_put(&m, "nil", 3, NULL));
    void *got = val(7);
    assert_true(nixl_hmap_find(&m, "nil", 3, &got));
    assert_null(got);
    assert_ptr_equal(nixl_hmap_remove(&m, "alpha", 5), val(2));
    assert_null(nixl_hmap_get(&m, "alpha", 5));
    assert_int_equal(nixl_hmap_count(&m), 1);
    nixl_hmap_free(&m);
}

static void test_binary_keys(void **state)
{
    (void)state;
    static const char k0[] = "";
    static const char k1[] = {0};
    static const char k2[] = {0, 0};
    static const char k3[] = {'a', 0, 'b'};
    static const char k4[] = {'a', 0, 'c'};
    static const char k5[] = {'a'};
    const struct {
        const char *k;
        size_t len;
    } ks[] = {{k0, 0}, {k1, 1}, {k2, 2}, {k3, 3}, {k4, 3}, {k5, 1}, {NULL, 0}};
    nixl_hmap_t m = {0};
    for (size_t i = 0; i < 6; i++)
        assert_true(nixl_hmap_put(&m, ks[i].k, ks[i].len, val(i)));
    assert_int_equal(nixl_hmap_count(&m), 6);
    for (size_t i = 0; i < 6; i++)
        assert_ptr_equal(nixl_hmap_get(&m, ks[i].k, ks[i].len), val(i));
    /* The empty key is one key whatever its address. */
    assert_ptr_equal(nixl_hmap_get(&m, ks[6].k, 0), val(0));
    assert_ptr_equal(nixl_hmap_remove(&m, k2, 2), val(2));
    assert_null(nixl_hmap_get(&m, k2, 2));
    assert_ptr_equal(nixl_hmap_get(&m, k1, 1), val(1));
    nixl_hmap_free(&m);
}

static void test_growth(void **state)
{
    (void)state;
    nixl_hmap_t m = {0};
    size_t last_slots = 0;
    for (size_t i = 0; i < NKEYS; i++) {
        assert_true(nixl_hmap_put(&m, keys[i], key_lens[i], val(i)));
        assert_int_equal(nixl_hmap_count(&m), i + 1);
        assert_true(m.used * 4 <= m.nslots * 3);
        assert_int_equal(m.nslots & (m.nslots - 1), 0);
        assert_true(m.nslots >= last_slots);
        last_slots = m.nslots;
    }
    /* Doubling only: between 4/3 and 8/3 slots an entry. */
    assert_true(m.nslots * 3 <= NKEYS * 8);
    for (size_t i = 0; i < NKEYS; i++)
        assert_ptr_equal(nixl_hmap_get(&m, keys[i], key_lens[i]), val(i));
    assert_null(nixl_hmap_get(&m, "key-10000", 9));
    nixl_hmap_free(&m);
    assert_null(m.slots);
    assert_int_equal(m.count, 0);
}

static void test_reserve(void **state)
{
    (void)state;
    nixl_hmap_t m = {0};
    assert_true(nixl_hmap_reserve(&m, 1000));
    nixl_hmap_slot_t *slots = m.slots;
    for (size_t i = 0; i < 1000; i++)
        assert_true(nixl_hmap_put(&m, keys[i], key_lens[i], val(i)));
    assert_ptr_equal(m.slots, slots); /* no rebuild */
    assert_true(nixl_hmap_reserve(&m, 10)); /* less than the count: nothing to do */
    assert_ptr_equal(m.slots, slots);
    assert_false(nixl_hmap_reserve(&m, SIZE_MAX / 2));
    assert_ptr_equal(m.slots, slots);
    for (size_t i = 0; i < 1000; i++)
        assert_ptr_equal(nixl_hmap_get(&m, keys[i], key_lens[i]), val(i));
    nixl_hmap_free(&m);
}

/* Keys that all start their probe at one slot of a 16-slot table: a chain with removals in
 * its middle must still find what lies behind them. */
static void test_collisions(void **state)
{
    (void)state;
    size_t same[8], n = 0;
    size_t want = home_of(keys[0], key_lens[0], 16);
    for (size_t i = 0; i < NKEYS && n < 8; i++)
        if (home_of(keys[i], key_lens[i], 16) == want)
            same[n++] = i;
    assert_int_equal(n, 8);
    nixl_hmap_t m = {0};
    for (size_t i = 0; i < 8; i++)
        assert_true(nixl_hmap_put(&m, keys[same[i]], key_lens[same[i]], val(same[i])));
    assert_int_equal(m.nslots, 16);
    for (size_t i = 0; i < 8; i++)
        assert_ptr_equal(nixl_hmap_get(&m, keys[same[i]], key_lens[same[i]]), val(same[i]));
    /* Remove the middle of the chain: tombstones keep the tail reachable. */
    for (size_t i = 2; i < 5; i++)
        assert_ptr_equal(nixl_hmap_remove(&m, keys[same[i]], key_lens[same[i]]), val(same[i]));
    assert_int_equal(m.used, 8);
    for (size_t i = 0; i < 8; i++)
        if (i < 2 || i >= 5)
            assert_ptr_equal(nixl_hmap_get(&m, keys[same[i]], key_lens[same[i]]), val(same[i]));
        else
            assert_null(nixl_hmap_get(&m, keys[same[i]], key_lens[same[i]]));
    /* A put of a key that is present behind a tombstone replaces it, never duplicates it. */
    assert_true(nixl_hmap_put(&m, keys[same[7]], key_lens[same[7]], val(99)));
    assert_int_equal(nixl_hmap_count(&m), 5);
    /* A new key reuses a tombstone. */
    assert_true(nixl_hmap_put(&m, keys[same[3]], key_lens[same[3]], val(3)));
    assert_int_equal(m.used, 8);
    assert_ptr_equal(nixl_hmap_get(&m, keys[same[7]], key_lens[same[7]]), val(99));
    assert_ptr_equal(nixl_hmap_get(&m, keys[same[3]], key_lens[same[3]]), val(3));
    /* The end of a chain goes back to empty. */
    assert_ptr_equal(nixl_hmap_remove(&m, keys[same[7]], key_lens[same[7]]), val(99));
    assert_int_equal(m.used, 7);
    nixl_hmap_free(&m);
}

/* Put and remove for ever with few live keys: tombstones are swept, the table stays small. */
static void test_churn(void **state)
{
    (void)state;
    nixl_hmap_t m = {0};
    for (size_t i = 0; i < NKEYS; i++) {
        assert_true(nixl_hmap_put(&m, keys[i], key_lens[i], val(i)));
        if (i >= 5)
            assert_ptr_equal(nixl_hmap_remove(&m, keys[i - 5], key_lens[i - 5]), val(i - 5));
        assert_true(m.nslots <= 16);
    }
    assert_int_equal(nixl_hmap_count(&m), 5);
    for (size_t i = NKEYS - 5; i < NKEYS; i++)
        assert_ptr_equal(nixl_hmap_get(&m, keys[i], key_lens[i]), val(i));
    nixl_hmap_free(&m);
}

/* Removing during an iteration, the current entry and others: each survivor is seen once. */
static void test_remove_while_iterating(void **state)
{
    (void)state;
    enum { N = 2000 };
    nixl_hmap_t m = {0};
    for (size_t i = 0; i < N; i++)
        assert_true(nixl_hmap_put(&m, keys[i], key_lens[i], val(i)));
    unsigned seen[N] = {0};
    bool removed[N] = {false};
    size_t it = 0;
    const void *k;
    size_t len;
    void *v;
    while (nixl_hmap_next(&m, &it, &k, &len, &v)) {
        size_t i = (size_t)(uintptr_t)v - 1;
        assert_false(removed[i]);
        seen[i]++;
        assert_ptr_equal(k, keys[i]);
        if (i % 3 == 0) { /* the current one */
            assert_ptr_equal(nixl_hmap_remove(&m, k, len), v);
            removed[i] = true;
        }
        size_t j = (i * 7 + 1) % N; /* another one, visited or not */
        if (!removed[j] && j % 3 == 1) {
            assert_ptr_equal(nixl_hmap_remove(&m, keys[j], key_lens[j]), val(j));
            removed[j] = true;
        }
    }
    size_t left = 0;
    for (size_t i = 0; i < N; i++) {
        assert_true(seen[i] <= 1);
        if (!removed[i]) {
            assert_int_equal(seen[i], 1);
            assert_ptr_equal(nixl_hmap_get(&m, keys[i], key_lens[i]), val(i));
            left++;
        } else {
            assert_null(nixl_hmap_get(&m, keys[i], key_lens[i]));
        }
    }
    assert_int_equal(nixl_hmap_count(&m), left);
    /* Emptying the map by iteration leaves it usable. */
    it = 0;
    while (nixl_hmap_next(&m, &it, &k, &len, NULL))
        nixl_hmap_remove(&m, k, len);
    assert_int_equal(nixl_hmap_count(&m), 0);
    assert_true(nixl_hmap_put(&m, keys[1], key_lens[1], val(1)));
    assert_ptr_equal(nixl_hmap_get(&m, keys[1], key_lens[1]), val(1));
    nixl_hmap_free(&m);
}

/* A long random mix of operations, checked against a plain array. */
static void test_random_against_array(void **state)
{
    (void)state;
    enum { N = 512, OPS = 200000 };
    void *ref[N] = {0};
    size_t live = 0;
    nixl_hmap_t m = {0};
    uint64_t x = 88172645463325252ull;
    for (size_t op = 0; op < OPS; op++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t i = (size_t)(x % N);
        switch ((x >> 32) % 4) {
        case 0:
        case 1:
            if (!ref[i])
                live++;
            ref[i] = val(op);
            assert_true(nixl_hmap_put(&m, keys[i], key_lens[i], ref[i]));
            break;
        case 2:
            assert_ptr_equal(nixl_hmap_remove(&m, keys[i], key_lens[i]), ref[i]);
            if (ref[i])
                live--;
            ref[i] = NULL;
            break;
        default:
            assert_ptr_equal(nixl_hmap_get(&m, keys[i], key_lens[i]), ref[i]);
        }
        assert_int_equal(nixl_hmap_count(&m), live);
        assert_true(m.used * 4 <= m.nslots * 3);
    }
    size_t it = 0, n = 0;
    void *v;
    const void *k;
    size_t len;
    while (nixl_hmap_next(&m, &it, &k, &len, &v)) {
        size_t i = (size_t)((const char (*)[16])k - keys);
        assert_ptr_equal(ref[i], v);
        n++;
    }
    assert_int_equal(n, live);
    nixl_hmap_free(&m);
}

int main(void)
{
    make_keys();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fnv_vectors),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_put_get_replace),
        cmocka_unit_test(test_binary_keys),
        cmocka_unit_test(test_growth),
        cmocka_unit_test(test_reserve),
        cmocka_unit_test(test_collisions),
        cmocka_unit_test(test_churn),
        cmocka_unit_test(test_remove_while_iterating),
        cmocka_unit_test(test_random_against_array),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
