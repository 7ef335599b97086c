/*
 * posix_engine.c - the POSIX storage plugin (libplugin_POSIX.so): its table, engine creation
 * (which I/O engine, with the reason of every fallback logged) and destruction.
 *
 * Local only: transfers are loopback requests to the agent's own name, READ = file -> memory,
 * WRITE = memory -> file. Memory types DRAM, FILE and BLOCK (a block device is a file here).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "be_storage.h"
#include "posix_priv.h"

#ifdef NIXL_POSIX_HAVE_VALGRIND_H
#include <valgrind/valgrind.h>
#endif

#ifdef NIXL_POSIX_HAVE_URING
/* Valgrind (3.19) does not emulate io_uring: a ring under it never completes, so the engine
 * would hang instead of failing. Treated as "io_uring unavailable". */
static bool under_valgrind(void)
{
#ifdef NIXL_POSIX_HAVE_VALGRIND_H
    return RUNNING_ON_VALGRIND != 0;
#else
    return false;
#endif
}
#endif

static const nixl_param_t px_default_params[] = {
    {"use_uring", "false"},       {"use_aio", "false"},          {"use_posix_aio", "false"},
    {"ios_pool_size", "65536"},   {"kernel_queue_size", "256"},  {"num_threads", "16"},
};

static const char *const kind_names[] = {"io_uring", "libaio", "thread pool"};

static int io_create(nixl_be_engine_t *eng, px_kind_t kind, char *why, size_t whylen)
{
    switch (kind) {
    case PX_URING:
#ifdef NIXL_POSIX_HAVE_URING
        if (under_valgrind()) {
            snprintf(why, whylen, "running under valgrind, which does not support io_uring");
            return -1;
        }
        return px_uring_create(eng, &eng->io, why, whylen);
#else
        snprintf(why, whylen, "this build has no liburing");
        return -1;
#endif
    case PX_AIO:
#ifdef NIXL_POSIX_HAVE_AIO
        return px_aio_create(eng, &eng->io, why, whylen);
#else
        snprintf(why, whylen, "this build has no libaio");
        return -1;
#endif
    case PX_POOL:
        return px_pool_create(eng, &eng->io, why, whylen);
    }
    return -1;
}

/* The wanted engine first, then the others in the automatic order. */
static nixl_status_t io_choose(nixl_be_engine_t *eng)
{
    px_kind_t order[4], want = PX_URING;
    size_t n = 0;
    if (eng->params.want_aio)
        want = PX_AIO;
    else if (eng->params.want_pool)
        want = PX_POOL;
    order[n++] = want;
    for (px_kind_t k = PX_URING; k <= PX_POOL; k++)
        if (k != want)
            order[n++] = k;
    bool asked = eng->params.want_uring || eng->params.want_aio || eng->params.want_pool;
    char why[PX_ERR_MAX];
    for (size_t i = 0; i < n; i++) {
        why[0] = '\0';
        if (io_create(eng, order[i], why, sizeof(why)) == 0) {
            eng->kind = order[i];
            return NIXL_SUCCESS;
        }
        NIXL_BE_LOG(eng->host, i == 0 && asked ? NIXL_LOG_WARN : NIXL_LOG_INFO,
                    "%s engine unavailable (%s); trying %s", kind_names[order[i]], why,
                    i + 1 < n ? kind_names[order[i + 1]] : "nothing else");
    }
    return NIXL_BE_ERR(eng->host, NIXL_ERR_BACKEND, "no I/O engine could be started (last: %s)",
                       why);
}

static void px_destroy(nixl_be_engine_t *eng)
{
    if (!eng)
        return;
    if (eng->io)
        eng->io->ops->destroy(eng->io);
    if (eng->live_reqs)
        NIXL_BE_LOG(eng->host, NIXL_LOG_WARN, "engine destroyed with %zu request(s) alive",
                    eng->live_reqs);
    pthread_cond_destroy(&eng->done_cv);
    pthread_mutex_destroy(&eng->lock);
    free(eng->files);
    free(eng);
}

static nixl_status_t px_create(const nixl_be_init_t *init, nixl_be_engine_t **out)
{
    if (!init || !init->host || !out)
        return NIXL_ERR_INVALID_PARAM;
    px_params_t params;
    nixl_status_t st = px_params_parse(init, &params);
    if (st != NIXL_SUCCESS)
        return st;
    nixl_be_engine_t *eng = calloc(1, sizeof(*eng));
    if (!eng) {
        return NIXL_BE_ERR(init->host, NIXL_ERR_UNKNOWN, "out of memory");
    }
    eng->host = init->host;
    eng->params = params;
    pthread_mutex_init(&eng->lock, NULL);
    pthread_cond_init(&eng->done_cv, NULL);
    st = io_choose(eng);
    if (st != NIXL_SUCCESS) {
        px_destroy(eng);
        return st;
    }
    NIXL_BE_LOG(eng->host, NIXL_LOG_INFO,
                "engine of '%s' uses %s (kernel_queue_size %llu, "
                "ios_pool_size %llu, %u thread(s))",
                init->local_agent ? init->local_agent : "", kind_names[eng->kind],
                (unsigned long long)params.kernel_queue_size,
                (unsigned long long)params.ios_pool_size,
                eng->kind == PX_POOL ? params.pool_threads : 1);
    *out = eng;
    return NIXL_SUCCESS;
}

static const nixl_plugin_info_t px_info = {
    .struct_size = sizeof(nixl_plugin_info_t),
    .name = PX_NAME,
    .version = NIXL_VERSION_STRING,
    .caps = NIXL_BE_CAP_LOCAL,
    .mems = NIXL_MEM_BIT(NIXL_DRAM_SEG) | NIXL_MEM_BIT(NIXL_FILE_SEG) |
            NIXL_MEM_BIT(NIXL_BLK_SEG),
    .default_params = px_default_params,
    .num_default_params = sizeof(px_default_params) / sizeof(px_default_params[0]),
};

/* Storage needs no connections: connect, disconnect and unload_md are the core's defaults. */
static const nixl_be_ops_t px_ops = {
    .struct_size = sizeof(nixl_be_ops_t),
    .create = px_create,
    .destroy = px_destroy,
    .register_mem = px_register_mem,
    .deregister_mem = px_deregister_mem,
    .load_local_md = nixl_be_load_self, /* the loopback target is the registration */
    .prep_xfer = px_prep_xfer,
    .post_xfer = px_post_xfer,
    .check_xfer = px_check_xfer,
    .release_req = px_release_req,
    .query_mem = px_query_mem,
};

/* The one symbol the plugin exports (it is built with hidden visibility). */
NIXL_PLUGIN_EXPORT_ENTRY(&px_info, &px_ops)
