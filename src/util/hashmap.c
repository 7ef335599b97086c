#include "hashmap.h"

#include <stdlib.h>
#include <string.h>

#define SLOT_EMPTY 0u
#define SLOT_TOMB 1u
#define MIN_SLOTS 16u

uint64_t nixl_hash_fnv1a(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* The stored hash: never one of the two markers. */
static uint64_t key_hash(const void *key, size_t len)
{
    uint64_t h = nixl_hash_fnv1a(key, len);
    return h > SLOT_TOMB ? h : h + 2;
}

static size_t home(uint64_t hash, size_t nslots)
{
    return (size_t)(hash ^ (hash >> 32)) & (nslots - 1);
}

/* Most slots, live and tombstones together, that a table of `nslots` may use. */
static size_t max_used(size_t nslots)
{
    return nslots / 4 * 3;
}

static bool same_key(const nixl_hmap_slot_t *s, uint64_t hash, const void *key, size_t len)
{
    return s->hash == hash && s->key_len == len && (len == 0 || !memcmp(s->key, key, len));
}

void nixl_hmap_init(nixl_hmap_t *m)
{
    memset(m, 0, sizeof(*m));
}

void nixl_hmap_free(nixl_hmap_t *m)
{
    free(m->slots);
    nixl_hmap_init(m);
}

/* The live slot of the key, or NULL. */
static nixl_hmap_slot_t *lookup(const nixl_hmap_t *m, uint64_t hash, const void *key,
                                size_t len)
{
    if (!m->count)
        return NULL;
    size_t mask = m->nslots - 1;
    /* Ends: at most 3/4 of the slots are used, so an empty one comes. */
    for (size_t i = home(hash, m->nslots);; i = (i + 1) & mask) {
        nixl_hmap_slot_t *s = &m->slots[i];
        if (s->hash == SLOT_EMPTY)
            return NULL;
        if (same_key(s, hash, key, len))
            return s;
    }
}

/* Move the live entries into a fresh array of `nslots` slots (tombstones are dropped). */
static bool rebuild(nixl_hmap_t *m, size_t nslots)
{
    nixl_hmap_slot_t *slots = calloc(nslots, sizeof(*slots));
    if (!slots)
        return false;
    for (size_t i = 0; i < m->nslots; i++) {
        const nixl_hmap_slot_t *s = &m->slots[i];
        if (s->hash <= SLOT_TOMB)
            continue;
        size_t j = home(s->hash, nslots);
        while (slots[j].hash != SLOT_EMPTY)
            j = (j + 1) & (nslots - 1);
        slots[j] = *s;
    }
    free(m->slots);
    m->slots = slots;
    m->nslots = nslots;
    m->used = m->count;
    return true;
}

/* The smallest table that holds `n` entries within the load limit; 0 when none does. */
static size_t slots_for(size_t n)
{
    size_t nslots = MIN_SLOTS;
    while (max_used(nslots) < n) {
        if (nslots > SIZE_MAX / 2 / sizeof(nixl_hmap_slot_t))
            return 0;
        nslots *= 2;
    }
    return nslots;
}

bool nixl_hmap_reserve(nixl_hmap_t *m, size_t n)
{
    if (n < m->count)
        n = m->count;
    /* Tombstones go at a rebuild, so only live entries count towards the new size. */
    if (n - m->count <= max_used(m->nslots) - m->used)
        return true;
    size_t nslots = slots_for(n);
    if (!nslots)
        return false;
    return rebuild(m, nslots > m->nslots ? nslots : m->nslots);
}

void *nixl_hmap_get(const nixl_hmap_t *m, const void *key, size_t len)
{
    nixl_hmap_slot_t *s = lookup(m, key_hash(key, len), key, len);
    return s ? s->value : NULL;
}

bool nixl_hmap_find(const nixl_hmap_t *m, const void *key, size_t len, void **value)
{
    nixl_hmap_slot_t *s = lookup(m, key_hash(key, len), key, len);
    if (s && value)
        *value = s->value;
    return s != NULL;
}

bool nixl_hmap_put(nixl_hmap_t *m, const void *key, size_t len, void *value)
{
    uint64_t hash = key_hash(key, len);
    nixl_hmap_slot_t *reuse = NULL;
    if (m->nslots) {
        size_t mask = m->nslots - 1;
        for (size_t i = home(hash, m->nslots);; i = (i + 1) & mask) {
            nixl_hmap_slot_t *s = &m->slots[i];
            if (s->hash == SLOT_EMPTY)
                break;
            if (s->hash == SLOT_TOMB) {
                if (!reuse)
                    reuse = s;
            } else if (same_key(s, hash, key, len)) {
                s->key = key;
                s->value = value;
                return true;
            }
        }
    }
    if (!reuse) {
        if (m->used + 1 > max_used(m->nslots)) {
            /* Double when live entries fill half the table, else only sweep tombstones. */
            size_t nslots = slots_for(m->count + 1);
            if (!nslots)
                return false;
            if (nslots < m->nslots)
                nslots = m->nslots;
            if ((m->count + 1) * 2 > nslots && nslots <= SIZE_MAX / 2 / sizeof(*reuse))
                nslots *= 2;
            if (!rebuild(m, nslots))
                return false;
        }
        size_t i = home(hash, m->nslots);
        while (m->slots[i].hash != SLOT_EMPTY)
            i = (i + 1) & (m->nslots - 1);
        reuse = &m->slots[i];
        m->used++;
    }
    *reuse = (nixl_hmap_slot_t){.hash = hash, .key = key, .key_len = len, .value = value};
    m->count++;
    return true;
}

void *nixl_hmap_remove(nixl_hmap_t *m, const void *key, size_t len)
{
    nixl_hmap_slot_t *s = lookup(m, key_hash(key, len), key, len);
    if (!s)
        return NULL;
    void *value = s->value;
    /* A slot followed by an empty one ends no probe chain: it can be empty again. Either way
     * no entry moves, which keeps iterations valid. */
    size_t next = ((size_t)(s - m->slots) + 1) & (m->nslots - 1);
    if (m->slots[next].hash == SLOT_EMPTY) {
        *s = (nixl_hmap_slot_t){.hash = SLOT_EMPTY};
        m->used--;
    } else {
        *s = (nixl_hmap_slot_t){.hash = SLOT_TOMB};
    }
    m->count--;
    return value;
}

bool nixl_hmap_next(const nixl_hmap_t *m, size_t *iter, const void **key, size_t *len,
                    void **value)
{
    for (size_t i = *iter; i < m->nslots; i++) {
        const nixl_hmap_slot_t *s = &m->slots[i];
        if (s->hash <= SLOT_TOMB)
            continue;
        if (key)
            *key = s->key;
        if (len)
            *len = s->key_len;
        if (value)
            *value = s->value;
        *iter = i + 1;
        return true;
    }
    *iter = m->nslots;
    return false;
}
