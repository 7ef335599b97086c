/*
 * be_param.c - backend init parameters (be_param.h).
 */
#include <string.h>

#include "be_param.h"
#include "parse.h"

const char *nixl_be_param(const nixl_be_init_t *init, const char *key)
{
    for (size_t i = 0; i < init->num_params; i++)
        if (init->params[i].key && !strcmp(init->params[i].key, key))
            return init->params[i].value;
    return NULL;
}

bool nixl_be_param_bool(const nixl_be_init_t *init, const char *key, bool *out)
{
    const char *v = nixl_be_param(init, key);
    *out = false;
    if (!v || !*v)
        return true;
    if (nixl_parse_bool(v, out))
        return true;
    (void)NIXL_BE_ERR(init->host, NIXL_ERR_INVALID_PARAM, "parameter %s='%s' is not a boolean", key,
                      v);
    return false;
}

bool nixl_be_param_u64(const nixl_be_init_t *init, const char *key, uint64_t def, uint64_t min,
                       uint64_t max, uint64_t *out)
{
    const char *v = nixl_be_param(init, key);
    *out = def;
    if (!v || !*v)
        return true;
    if (nixl_parse_u64(v, out) && *out >= min && *out <= max)
        return true;
    (void)NIXL_BE_ERR(init->host, NIXL_ERR_INVALID_PARAM,
                      "parameter %s='%s' must be a number from %llu to %llu", key, v,
                      (unsigned long long)min, (unsigned long long)max);
    return false;
}
