#include "array.h"

#include <stdint.h>

size_t nixl_array_grow_cap(size_t cap, size_t need, size_t elem)
{
    size_t max = SIZE_MAX / (elem ? elem : 1);
    if (need > max)
        return 0;
    if (need <= cap)
        return cap;
    size_t n = !cap ? NIXL_ARRAY_MIN_CAP : cap > max / 2 ? max : cap * 2;
    if (n < need)
        n = need;
    return n < max ? n : max;
}

void *nixl_array_realloc(void *data, size_t n, size_t elem)
{
    if (!n || !elem || n > SIZE_MAX / elem)
        return NULL;
    return realloc(data, n * elem);
}

void *nixl_array_reserve_(void *data, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return data;
    size_t n = nixl_array_grow_cap(*cap, need, elem);
    if (!n)
        return data;
    void *p = realloc(data, n * elem);
    if (!p)
        return data;
    *cap = n;
    return p;
}
