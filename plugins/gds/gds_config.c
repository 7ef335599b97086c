/*
 * gds_config.c - the parameters of GDS and GDS_MT (reference names; unknown keys are ignored,
 * bad values refused with a reason).
 *
 * GDS:
 *   batch_pool_size   cuFile batch handles set up at creation and reused (default 32); a post
 *                     needing more sets up extra ones and destroys them after
 *   batch_limit       I/Os per cuFile batch (default 128, at most batch_inflight_limit); a
 *                     request with more is several batches
 *   batch_inflight_limit
 *                     batch entries submitted to cuFile and not final yet, in the process
 *                     (default 64; ours): further batches wait for earlier ones to complete
 *                     (see gds_batch.c for why)
 *   max_request_size  descriptors longer than this are cut into I/Os of this size (default
 *                     16 MiB; a multiple of 4 KiB, so the pieces of an aligned descriptor stay
 *                     aligned for O_DIRECT)
 * GDS_MT:
 *   thread_count      workers calling cuFileRead/cuFileWrite (default 16)
 */
#include "be_param.h"
#include "gds_priv.h"

#define GDS_MAX_THREADS 256u

const nixl_param_t gds_default_params[GDS_NUM_DEFAULTS] = {
    {"batch_pool_size", "32"},
    {"batch_limit", "128"},
    {"max_request_size", "16777216"},
    {"batch_inflight_limit", "64"},
};

const nixl_param_t gdsmt_default_params[GDSMT_NUM_DEFAULTS] = {
    {"thread_count", "16"},
};

nixl_status_t gds_params_parse(const nixl_be_init_t *init, gds_kind_t kind, gds_params_t *out)
{
    gds_params_t p = {0};
    if (kind == GDS_KIND_MT) {
        if (!nixl_be_param_u64(init, "thread_count", 16, 1, GDS_MAX_THREADS, &p.thread_count))
            return NIXL_ERR_INVALID_PARAM;
        p.max_request_size = (uint64_t)1 << 24; /* GDS_MT cuts like GDS: one worker per piece */
        *out = p;
        return NIXL_SUCCESS;
    }
    if (!nixl_be_param_u64(init, "batch_pool_size", 32, 1, 4096, &p.batch_pool_size) ||
        !nixl_be_param_u64(init, "batch_limit", 128, 1, 65536, &p.batch_limit) ||
        !nixl_be_param_u64(init, "max_request_size", (uint64_t)1 << 24, GDS_DIRECT_ALIGN,
                           (uint64_t)1 << 40, &p.max_request_size) ||
        !nixl_be_param_u64(init, "batch_inflight_limit", 64, 1, (uint64_t)1 << 32,
                           &p.inflight_limit))
        return NIXL_ERR_INVALID_PARAM;
    if (p.max_request_size % GDS_DIRECT_ALIGN) {
        return NIXL_BE_ERR(init->host, NIXL_ERR_INVALID_PARAM,
                           "parameter max_request_size=%llu must be a multiple of %u, so that "
                           "the pieces of an aligned descriptor stay aligned for O_DIRECT",
                           (unsigned long long)p.max_request_size, GDS_DIRECT_ALIGN);
    }
    *out = p;
    return NIXL_SUCCESS;
}
