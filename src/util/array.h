/*
 * array.h - growable arrays of any element type, kept in the caller's own typed fields
 * (`T *data; size_t count, cap;`), so that elements stay plain `data[i]` with no casts.
 *
 *     nb_row_t *rows = NULL;
 *     size_t nrows = 0, cap = 0;
 *     nb_row_t *slot = nixl_array_push(rows, nrows, cap);
 *     if (!slot)
 *         return out_of_memory;
 *     *slot = row;
 *     ...
 *     nixl_array_free(rows, nrows, cap);
 *
 * The capacity doubles, from NIXL_ARRAY_MIN_CAP, so n pushes copy O(n) elements in all; a
 * reserve beyond twice the capacity gets exactly what it asks for (a list built in one go
 * is not rounded up). Every
 * size is checked: a capacity whose size in bytes would not fit in size_t fails as an
 * allocation that fails does, it never wraps. Storage comes from malloc/realloc; release it
 * with free() or nixl_array_free().
 *
 * The macros evaluate their arguments more than once: pass plain lvalues (a variable, a
 * field), `cap` of type size_t.
 */
#ifndef NIXL_UTIL_ARRAY_H
#define NIXL_UTIL_ARRAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>

#define NIXL_ARRAY_MIN_CAP 16u

/* The capacity for an array of `elem`-byte elements that has `cap` and needs `need`: `cap` when
 * it is enough, else the larger of twice `cap` (NIXL_ARRAY_MIN_CAP when 0) and `need`, at most
 * what fits in size_t bytes. 0 when `need` elements do not fit. */
size_t nixl_array_grow_cap(size_t cap, size_t need, size_t elem);

/* realloc(data, n * elem) with the product checked: NULL when it overflows, when it is 0 (so
 * that a 0 from nixl_array_grow_cap fails here) or when memory is short; `data` is then
 * untouched and still the caller's. For arrays that share one capacity. */
void *nixl_array_realloc(void *data, size_t n, size_t elem);

/* The storage with room for `need` elements and *cap updated; on failure `data` itself with
 * *cap unchanged. Use the macros below. */
void *nixl_array_reserve_(void *data, size_t *cap, size_t need, size_t elem);
static inline bool nixl_array_fits_(size_t cap, size_t need)
{
    return cap >= need;
}

/* Room for `need` elements in all (not `need` more): true; false when memory is short or the
 * size overflows, the array unchanged. */
#define nixl_array_reserve(data, cap, need)                                                  \
    (((data) = nixl_array_reserve_((data), &(cap), (need), sizeof(*(data)))),                 \
     nixl_array_fits_((cap), (need)))

/* A pointer to a new, uninitialised last element (count grows by one); NULL when memory is
 * short, the array unchanged. */
#define nixl_array_push(data, count, cap)                                                    \
    (nixl_array_reserve(data, cap, (count) + 1) ? &(data)[(count)++] : NULL)

/* Free the storage and leave the array empty. */
#define nixl_array_free(data, count, cap)                                                    \
    do {                                                                                     \
        free(data);                                                                          \
        (data) = NULL;                                                                       \
        (count) = 0;                                                                         \
        (cap) = 0;                                                                           \
    } while (0)

#endif
