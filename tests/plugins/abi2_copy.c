/*
 * ABI2COPY: a small loopback DRAM backend (memcpy) built against the FROZEN plugin header of
 * ABI 2 (tests/plugins/abi2/nixl_plugin.h), whose operation table is shorter than the live one.
 * The core must load it, run its transfers, and give the operations appended since (ABI 3:
 * estimate_cost) their defaults. It also shows the least a plugin needs: no connect,
 * disconnect, unload_md, progress or notifications.
 */
#include <stdlib.h>
#include <string.h>

#include "nixl_plugin.h"

#if NIXL_PLUGIN_ABI_VERSION != 2
#error "abi2_copy.c must be built against the frozen ABI 2 header"
#endif

struct nixl_be_engine {
    const nixl_host_t *host;
};

struct nixl_be_md {
    int unused;
};

struct nixl_be_req {
    nixl_xfer_op_t op;
    size_t count;
    nixl_be_desc_t pairs[]; /* local[i] at 2i, remote[i] at 2i+1 */
};

static struct nixl_be_md copy_md;

static nixl_status_t copy_create(const nixl_be_init_t *init, nixl_be_engine_t **out)
{
    nixl_be_engine_t *eng = calloc(1, sizeof(*eng));
    if (!eng)
        return NIXL_BE_ERR(init->host, NIXL_ERR_BACKEND, "out of memory");
    eng->host = init->host;
    *out = eng;
    return NIXL_SUCCESS;
}

static void copy_destroy(nixl_be_engine_t *eng)
{
    free(eng);
}

static nixl_status_t copy_register(nixl_be_engine_t *eng, nixl_mem_t type,
                                   const nixl_reg_desc_t *descs, size_t count,
                                   nixl_be_md_t **out_mds)
{
    (void)descs;
    if (type != NIXL_DRAM_SEG)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_NOT_SUPPORTED, "DRAM only (got %d)", (int)type);
    for (size_t i = 0; i < count; i++)
        out_mds[i] = &copy_md;
    return NIXL_SUCCESS;
}

static void copy_deregister(nixl_be_engine_t *eng, const nixl_be_mds_t *mds)
{
    (void)eng, (void)mds;
}

static nixl_status_t copy_load_local(nixl_be_engine_t *eng, const nixl_be_mds_t *mds,
                                     nixl_be_md_t **out)
{
    (void)eng;
    for (size_t i = 0; i < mds->count; i++)
        out[i] = nixl_be_md_at(mds, i);
    return NIXL_SUCCESS;
}

static nixl_status_t copy_prep(nixl_be_engine_t *eng, nixl_xfer_op_t op,
                               const nixl_be_desc_t *local, const nixl_be_desc_t *remote,
                               size_t count, const char *remote_agent,
                               const nixl_be_xfer_opts_t *opts, nixl_be_req_t **out)
{
    (void)remote_agent, (void)opts;
    nixl_be_req_t *req = malloc(sizeof(*req) + 2 * count * sizeof(nixl_be_desc_t));
    if (!req)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_BACKEND, "out of memory");
    req->op = op;
    req->count = count;
    for (size_t i = 0; i < count; i++) {
        req->pairs[2 * i] = local[i];
        req->pairs[2 * i + 1] = remote[i];
    }
    *out = req;
    return NIXL_SUCCESS;
}

static nixl_status_t copy_post(nixl_be_engine_t *eng, nixl_be_req_t *req,
                               const nixl_be_xfer_opts_t *opts)
{
    (void)eng, (void)opts;
    for (size_t i = 0; i < req->count; i++) {
        const nixl_be_desc_t *l = &req->pairs[2 * i], *r = &req->pairs[2 * i + 1];
        if (req->op == NIXL_WRITE)
            memmove((void *)r->addr, (const void *)l->addr, l->len);
        else
            memmove((void *)l->addr, (const void *)r->addr, l->len);
    }
    return NIXL_SUCCESS;
}

static nixl_status_t copy_check(nixl_be_engine_t *eng, nixl_be_req_t *req)
{
    (void)eng, (void)req;
    return NIXL_SUCCESS;
}

static nixl_status_t copy_release(nixl_be_engine_t *eng, nixl_be_req_t *req)
{
    (void)eng;
    free(req);
    return NIXL_SUCCESS;
}

static const nixl_plugin_info_t copy_info = {
    .struct_size = sizeof(nixl_plugin_info_t),
    .name = "ABI2COPY",
    .version = "2.0",
    .caps = NIXL_BE_CAP_LOCAL,
    .mems = NIXL_MEM_BIT(NIXL_DRAM_SEG),
};

static const nixl_be_ops_t copy_ops = {
    .struct_size = sizeof(nixl_be_ops_t),
    .create = copy_create,
    .destroy = copy_destroy,
    .register_mem = copy_register,
    .deregister_mem = copy_deregister,
    .load_local_md = copy_load_local,
    .prep_xfer = copy_prep,
    .post_xfer = copy_post,
    .check_xfer = copy_check,
    .release_req = copy_release,
};

__attribute__((visibility("default"))) const nixl_plugin_t *
nixl_c_plugin_entry(uint32_t host_abi_version);

const nixl_plugin_t *nixl_c_plugin_entry(uint32_t host_abi_version)
{
    static const nixl_plugin_t plugin = NIXL_PLUGIN_DESCRIPTION(&copy_info, &copy_ops);
    (void)host_abi_version;
    return &plugin;
}
