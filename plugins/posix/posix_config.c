/*
 * posix_config.c - the POSIX backend's parameters (its path-mode specs are parsed by
 * nixl_be_file_spec_parse, src/util/be_storage.c, shared with GDS).
 *
 * Parameters (reference names; unknown keys are ignored, bad values refused with a reason):
 *   use_uring / use_aio / use_posix_aio   pick io_uring, libaio or the thread pool; at most
 *                                         one may be true; none: io_uring, then libaio, then
 *                                         the pool, whichever works first on this host
 *   ios_pool_size      most descriptors in one prepared request (default 65536)
 *   kernel_queue_size  most I/Os in flight per engine: ring / AIO context size (default 256)
 *   num_threads        thread-pool workers (default 16; ours, the reference has no pool)
 *
 * Path-mode spec (registration metaInfo): "<ro|rw>[,direct|sync|noatime|create]...:<path>".
 * Metadata that does not begin with "ro" or "rw" followed by ',' or ':' is not a spec: the
 * registration is then in fd mode (devId is the caller's fd) and the metadata is ignored. A
 * meta that begins like a spec but has an unknown flag, no ':' or an empty path is refused.
 */
#include <stdio.h>

#include "posix_priv.h"
#include "be_param.h"

nixl_status_t px_params_parse(const nixl_be_init_t *init, px_params_t *out)
{
    px_params_t p = {0};
    uint64_t threads = 0;
    if (!nixl_be_param_bool(init, "use_uring", &p.want_uring) ||
        !nixl_be_param_bool(init, "use_aio", &p.want_aio) ||
        !nixl_be_param_bool(init, "use_posix_aio", &p.want_pool) ||
        !nixl_be_param_u64(init, "ios_pool_size", 65536, 1, (uint64_t)1 << 32, &p.ios_pool_size) ||
        !nixl_be_param_u64(init, "kernel_queue_size", 256, 1, 32768, &p.kernel_queue_size) ||
        !nixl_be_param_u64(init, "num_threads", 16, 1, PX_MAX_THREADS, &threads))
        return NIXL_ERR_INVALID_PARAM;
    if ((int)p.want_uring + (int)p.want_aio + (int)p.want_pool > 1) {
        return NIXL_BE_ERR(init->host, NIXL_ERR_INVALID_PARAM,
                           "use_uring, use_aio and use_posix_aio are exclusive; "
                           "set at most one of them to true");
    }
    p.pool_threads = (unsigned)threads;
    *out = p;
    return NIXL_SUCCESS;
}
