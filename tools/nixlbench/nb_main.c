/*
 * nb_main.c - nixlbench: which role this process plays and how it meets its peer.
 *
 *   no runtime flags       spawn a target of ourselves on this host, be the initiator
 *   --runtime_type=ASIO    two processes: whoever binds --asio_port first is the initiator
 *   --etcd_endpoints       the ETCD runtime: two processes meet through etcd (nb_etcd.c)
 *   storage backends       one process, no runtime (nb_storage.c)
 *   --compare A,B          a spawned target per backend, one table with memcpy as ceiling
 *   --nb_peer (hidden)     the spawned target
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "array.h"
#include "nb.h"
#include "nb_cuda.h"
#include "nb_storage.h"

typedef struct rows {
    nb_row_t *v;
    size_t n, cap;
    bool print;
} rows_t;

static void on_start(const nb_cfg_t *cfg, const char *backend, void *arg)
{
    rows_t *r = arg;
    if (!r->print)
        return;
    nb_print_config(cfg, backend);
    nb_print_header();
}

static void on_row(const nb_cfg_t *cfg, const nb_row_t *row, void *arg)
{
    (void)cfg;
    rows_t *r = arg;
    if (r->print)
        nb_print_row(row);
    nb_row_t *slot = nixl_array_push(r->v, r->n, r->cap);
    if (!slot)
        return; /* the row is printed; only --json misses it */
    *slot = *row;
}

/* Features of the reference that need hardware or services this build does not drive, and
 * the GPU a VRAM run needs. */
static int check_available(const nb_cfg_t *cfg)
{
    if (!strcmp(cfg->worker_type, "nvshmem"))
        return nb_fail("--worker_type=nvshmem is not available in this build");
    if (cfg->use_device_api || cfg->enable_vmm)
        return nb_fail("--use_device_api and --enable_vmm are not available in this build of "
                       "nixlbench (VRAM segments are: cuMemAlloc'ed GPU memory)");
    bool init_vram = nb_seg_mem(cfg->initiator_seg_type) == NIXL_VRAM_SEG;
    bool target_vram = nb_seg_mem(cfg->target_seg_type) == NIXL_VRAM_SEG;
    if (cfg->storage) {
        bool gds = !strcmp(cfg->backend, "GDS") || !strcmp(cfg->backend, "GDS_MT");
        if (gds && init_vram)
            return nb_cuda_open(NB_GPU, "--initiator_seg_type VRAM") ? NB_EXIT_FAIL : 0;
        if (!gds && (init_vram || target_vram))
            printf("Backend %s moves files to and from DRAM: the seg types are ignored, as in "
                   "the reference\n",
                   cfg->backend);
        else if (target_vram)
            printf("Backend %s moves files to and from the initiator's buffer: "
                   "--target_seg_type is ignored\n",
                   cfg->backend);
        return 0;
    }
    /* A target we spawn runs on this host: without a GPU here, say so before starting it. In
     * the ASIO and ETCD runtimes the other process may be elsewhere; it allocates and tells. */
    if (init_vram && nb_cuda_open(NB_GPU, "--initiator_seg_type VRAM"))
        return NB_EXIT_FAIL;
    if (target_vram && (cfg->local || *cfg->compare) &&
        nb_cuda_open(NB_GPU, "--target_seg_type VRAM"))
        return NB_EXIT_FAIL;
    return 0;
}

static void notes(const nb_cfg_t *cfg)
{
    if (strcmp(cfg->scheme, "pairwise"))
        printf("Scheme %s with one initiator and one target is the same as pairwise\n",
               cfg->scheme);
    if (strcmp(cfg->mode, "SG"))
        printf("Mode %s with one device per process is the same as SG\n", cfg->mode);
    if (cfg->auto_max_block)
        printf("max_block_size not given: the sweep on this host stops at %u bytes (the "
               "reference default is 67108864; give --max_block_size to change it)\n",
               NB_LOCAL_MAX_BLOCK);
    if (cfg->auto_buffer)
        printf("total_buffer_size not given: using %llu bytes, what the sweep needs "
               "(the reference default is 8 GiB)\n",
               (unsigned long long)cfg->total_buffer_size);
    fflush(stdout);
}

static int run_one(nb_cfg_t *cfg, int argc, char **argv)
{
    nb_rt_t rt;
    int rc;
    if (!strcmp(cfg->runtime_type, "ASIO"))
        rc = nb_rt_asio(&rt, cfg->asio_address, (int)cfg->asio_port);
    else if (*cfg->etcd_endpoints || !strcmp(cfg->runtime_type, "ETCD"))
        rc = nb_rt_etcd(&rt, cfg);
    else
        rc = nb_rt_spawn(&rt, argc, argv);
    if (rc) {
        nb_rt_close(&rt);
        return NB_EXIT_FAIL;
    }
    if (rt.rank == 1) {
        nb_who = "nixlbench (target)";
        rc = nb_target_run(cfg, &rt);
        nb_rt_close(&rt);
        return rc;
    }
    notes(cfg);
    rows_t rows = {.print = true};
    nb_hooks_t hooks = {on_start, on_row, &rows};
    rc = nb_initiator_run(cfg, cfg->auto_backend ? NULL : cfg->backend, &rt, &hooks);
    nb_rt_close(&rt);
    if (!rc && *cfg->json) {
        const char *name = cfg->auto_backend ? "auto" : cfg->backend;
        nb_row_t *v = rows.v;
        rc = nb_json_write(cfg, cfg->json, &name, &v, 1, rows.n, NULL);
    }
    free(rows.v);
    return rc;
}

static int run_compare(nb_cfg_t *cfg, int argc, char **argv)
{
    char *list = strdup(cfg->compare), *save = NULL;
    const char *names[16];
    nb_row_t *table[16] = {0};
    size_t n = 0, nrows = 0;
    int rc = list ? 0 : nb_fail("out of memory");
    for (char *t = list ? strtok_r(list, ",", &save) : NULL; t && !rc;
         t = strtok_r(NULL, ",", &save))
        names[n++] = t;
    notes(cfg);
    for (size_t b = 0; b < n && !rc; b++) {
        nb_rt_t rt;
        rows_t rows = {.print = false};
        nb_hooks_t hooks = {NULL, on_row, &rows};
        rc = nb_rt_spawn(&rt, argc, argv);
        if (!rc)
            rc = nb_initiator_run(cfg, names[b], &rt, &hooks);
        nb_rt_close(&rt);
        table[b] = rows.v;
        nrows = rows.n;
    }
    double *mc = rc ? NULL : calloc(nrows ? nrows : 1, sizeof(double));
    if (!rc && mc) {
        nb_print_config(cfg, cfg->compare);
        nb_print_compare_header(names, n);
        for (size_t i = 0; i < nrows; i++) {
            nb_row_t line[16];
            for (size_t b = 0; b < n; b++)
                line[b] = table[b][i];
            mc[i] = nb_memcpy_gbps(line[0].block, line[0].batch, line[0].iters);
            nb_print_compare_row(names, line, n, mc[i]);
        }
        if (*cfg->json)
            rc = nb_json_write(cfg, cfg->json, names, table, n, nrows, mc);
    }
    free(mc);
    for (size_t b = 0; b < n; b++)
        free(table[b]);
    free(list);
    return rc;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    /* --backend names what is measured: no SHM beside UCX (the user may still ask for it) */
    setenv("NIXL_AUTO_SHM", "0", 0);
    nb_cfg_t cfg;
    int rc = nb_config_load(&cfg, argc, argv);
    if (rc == 0 && cfg.help)
        nb_print_help(argv[0]);
    else if (rc == 0 && *cfg.peer) {
        nb_who = "nixlbench (target)";
        nb_rt_t rt;
        rc = nb_rt_join(&rt, cfg.peer);
        if (rc == 0)
            rc = nb_target_run(&cfg, &rt);
        nb_rt_close(&rt);
    } else if (rc == 0 && (rc = check_available(&cfg)) == 0) {
        rc = *cfg.compare  ? run_compare(&cfg, argc, argv)
             : cfg.storage ? nb_storage_run(&cfg)
                           : run_one(&cfg, argc, argv);
    }
    nb_config_free(&cfg);
    return rc;
}
