/*
 * gds_engine.c - creating and destroying a GDS or GDS_MT engine: cuFile present, a GPU
 * visible, cuFile's driver started, then the kind's runner; the mode cuFile runs in is logged.
 *
 * Local only: transfers are loopback requests to the agent's own name, READ = file -> memory,
 * WRITE = memory -> file, memory being DRAM or VRAM. The core refuses GDS and GDS_MT in one
 * agent (NIXL_ERR_NOT_ALLOWED), as the reference does.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gds_priv.h"

static const char *mode_text(const gds_cufile_t *cf)
{
    const char *force = getenv("CUFILE_FORCE_COMPAT_MODE");
    if (force && (!strcmp(force, "true") || !strcmp(force, "1")))
        return "compatibility mode (CUFILE_FORCE_COMPAT_MODE is set: data moves through host "
               "memory with POSIX I/O)";
    if (!cf->nvfs)
        return "compatibility mode (the nvidia-fs kernel module is not loaded: data moves "
               "through host memory with POSIX I/O)";
    return "GDS mode (nvidia-fs is loaded: direct GPU-storage I/O on file systems that support "
           "it, compatibility mode on the others)";
}

nixl_status_t gds_create(const nixl_be_init_t *init, gds_kind_t kind,
                         const gds_runner_ops_t *run_ops, nixl_be_engine_t **out)
{
    if (!init || !init->host || !out)
        return NIXL_ERR_INVALID_PARAM;
    const nixl_host_t *host = init->host;
    gds_params_t params;
    nixl_status_t st = gds_params_parse(init, kind, &params);
    if (st != NIXL_SUCCESS)
        return st;
    char why[GDS_ERR_MAX];
    /* The library first: on a host without it that is the whole story. */
    if (!gds_cufile_present(why, sizeof(why)))
        return NIXL_BE_ERR(host, NIXL_ERR_NOT_SUPPORTED, "%s", why);
    const nixl_gpu_ops_t *gpu = nixl_host_gpu(host);
    if (!gpu || gpu->device_count() <= 0) {
        return NIXL_BE_ERR(host, NIXL_ERR_NOT_SUPPORTED,
                           "no GPU is visible to this process (no CUDA driver, no device, or "
                           "CUDA_VISIBLE_DEVICES hides them); cuFile needs one");
    }
    const gds_cufile_t *cf = gds_cufile_get(why, sizeof(why));
    if (!cf)
        return NIXL_BE_ERR(host, NIXL_ERR_NOT_SUPPORTED, "%s", why);
    nixl_be_engine_t *eng = calloc(1, sizeof(*eng));
    if (!eng)
        return NIXL_BE_ERR(host, NIXL_ERR_UNKNOWN, "out of memory");
    eng->host = host;
    eng->cf = cf;
    eng->gpu = gpu;
    eng->kind = kind;
    eng->params = params;
    eng->run_ops = run_ops;
    st = run_ops->start(eng, why, sizeof(why));
    if (st != NIXL_SUCCESS) {
        free(eng);
        return NIXL_BE_ERR(host, st, "%s", why);
    }
    const char *json = getenv("CUFILE_ENV_PATH_JSON");
    NIXL_BE_LOG(host, NIXL_LOG_INFO, "engine of '%s': cuFile (%s) in %s; configuration %s%s; %s",
                init->local_agent ? init->local_agent : "", cf->lib, mode_text(cf),
                json ? json : "/etc/cufile.json", json ? " (CUFILE_ENV_PATH_JSON)" : "",
                run_ops->what);
    *out = eng;
    return NIXL_SUCCESS;
}

void gds_destroy(nixl_be_engine_t *eng)
{
    if (!eng)
        return;
    eng->run_ops->stop(eng);
    size_t live = atomic_load(&eng->live_reqs);
    if (live)
        NIXL_BE_LOG(eng->host, NIXL_LOG_WARN, "engine destroyed with %zu request(s) alive", live);
    if (eng->nfiles)
        NIXL_BE_LOG(eng->host, NIXL_LOG_WARN, "engine destroyed with %zu file(s) registered",
                    eng->nfiles);
    free(eng->files);
    free(eng);
}
