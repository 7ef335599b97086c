/*
 * hashmap.h - a hash map from byte-string keys (binary-safe, length given) to pointers.
 *
 * Open addressing with linear probing over one array of slots, because the tables of this
 * library are small and read far more often than written (peers by name, configuration keys):
 * one allocation for the whole table instead of one per entry, a probe walks adjacent memory,
 * and each slot keeps its key's full hash, so keys are compared only when the hashes agree.
 * A lookup never allocates. Removal leaves a tombstone instead of shifting the entries that
 * follow, so that nothing moves between two rebuilds: that is what makes removal safe during
 * an iteration. Tombstones count towards the load, at most 3/4 of the slots; a put that would
 * pass it rebuilds the table (twice the size when more than half the slots hold live entries,
 * else the same size without the tombstones).
 *
 * The hash is FNV-1a 64; the slot is taken from the hash folded onto itself, since the low
 * bits of FNV-1a depend only on the low bits of the key's bytes.
 *
 * Ownership: the map stores the key's address and length, never a copy of the bytes: they
 * must stay valid and unchanged while the entry is in the map (the usual key is the value's
 * own name, e.g. a peer's). Values are opaque pointers the map never dereferences or frees. The
 * map owns only its slot array, released by nixl_hmap_free().
 *
 * Thread safety: none; callers that share a map lock around every call, lookups included.
 */
#ifndef NIXL_UTIL_HASHMAP_H
#define NIXL_UTIL_HASHMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct nixl_hmap_slot {
    uint64_t hash; /* 0: empty, 1: tombstone, else the key's hash (moved above 1) */
    const void *key;
    size_t key_len;
    void *value;
} nixl_hmap_slot_t;

/* A zero-initialised map is empty and valid (nixl_hmap_init does the same). */
typedef struct nixl_hmap {
    nixl_hmap_slot_t *slots;
    size_t nslots; /* 0 or a power of two */
    size_t count;  /* live entries */
    size_t used;   /* live entries and tombstones */
} nixl_hmap_t;

/* FNV-1a 64 of `len` bytes (offset basis 0xcbf29ce484222325, prime 0x100000001b3). */
uint64_t nixl_hash_fnv1a(const void *data, size_t len);

void nixl_hmap_init(nixl_hmap_t *m);
/* Release the slot array (keys and values are the caller's) and leave the map empty. */
void nixl_hmap_free(nixl_hmap_t *m);

static inline size_t nixl_hmap_count(const nixl_hmap_t *m)
{
    return m->count;
}

/* Make room for `n` entries in all, so that puts up to that count neither rebuild nor fail.
 * false when memory is short (the map is unchanged). */
bool nixl_hmap_reserve(nixl_hmap_t *m, size_t n);

/* The value stored under the key, or NULL when there is none. Use nixl_hmap_find where NULL is
 * a value. */
void *nixl_hmap_get(const nixl_hmap_t *m, const void *key, size_t len);

/* Whether the key is present; its value in *value (when value is not NULL). */
bool nixl_hmap_find(const nixl_hmap_t *m, const void *key, size_t len, void **value);

/*
 * Store `value` under the key (the bytes are borrowed, see above). A key already present gets
 * the new value and the new key address (the old value is forgotten: look it up first when it
 * must be released). May rebuild the table: not during an iteration.
 *
 * @return true; false when memory is short, with the map unchanged.
 */
bool nixl_hmap_put(nixl_hmap_t *m, const void *key, size_t len, void *value);

/* Take the key out; its value, or NULL when it was not there. Allowed during an iteration. */
void *nixl_hmap_remove(nixl_hmap_t *m, const void *key, size_t len);

/*
 * Iterate: start with *iter = 0 and call until false. Each call gives one live entry (any
 * output may be NULL). Entries come in no particular order. While iterating, removing entries
 * (the current one or others) is allowed and every entry not removed is still visited once;
 * a put is not (it may rebuild the table): start again after one.
 */
bool nixl_hmap_next(const nixl_hmap_t *m, size_t *iter, const void **key, size_t *len,
                    void **value);

#endif
