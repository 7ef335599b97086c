/*
 * nb_storage.c - the single-process storage mode of nixlbench (--backend POSIX, GDS, GDS_MT,
 * OBJ, AZURE_BLOB; objects, in a bucket or a container: see obj_register and layout):
 * one agent moves its buffer to and from files with loopback transfers (WRITE = memory ->
 * files, READ = files -> memory), timed like the network mode and printed in the same table.
 * The buffer is DRAM, or VRAM with GDS/GDS_MT and --initiator_seg_type VRAM (cuFile moves GPU
 * memory itself; POSIX reaches files through DRAM only).
 *
 * Layout of a step (block b, batch n, F files): descriptor i is buffer bytes [i*b, (i+1)*b)
 * and file i % F at slot i / F (offset slot * b; --randomize_location_mode shuffles the slots,
 * or picks byte offsets). Descriptors are never merged, so the files see n I/Os of b bytes,
 * the pattern fio is given in docs/BENCHMARKS.md. Files are opened in fd mode (O_DIRECT with
 * --storage_enable_direct); a second, buffered descriptor of each file prepares and checks
 * contents: before a step the files hold the target pattern (0xAA) and the buffer the
 * initiator's (0xBB); --check_consistency then checks the buffer after READ and reads the
 * files back after WRITE. --pipeline_depth requests are kept in flight, each on its own blocks
 * of the buffer and the files (as many as total_buffer_size holds).
 */
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "array.h"
#include "nb_cuda.h"
#include "nb_storage.h"

typedef struct sfile {
    char *path;
    int fd, plain_fd; /* fd: registered (maybe O_DIRECT); plain_fd: setup and checks */
    bool made;        /* created by us under an automatic name: removed at the end */
} sfile_t;

typedef struct srun {
    const nb_cfg_t *cfg;
    nixl_agent_t *agent;
    uint8_t *buf; /* host address (DRAM) or GPU address (VRAM) */
    size_t len;
    nixl_mem_t mem;
    sfile_t *files;
    size_t nf;
    unsigned seed;
    bool obj; /* --backend OBJ or AZURE_BLOB: descriptor i is object nixlbench_obj_<i> (devId i) */
    uint64_t nobjs;    /* objects registered so far */
} srun_t;

static bool is_gds(const nb_cfg_t *cfg)
{
    return !strcmp(cfg->backend, "GDS") || !strcmp(cfg->backend, "GDS_MT");
}

/* The pairs of all[] whose value is set, copied to p; their number. Empty flags are left out,
 * so that the plugins' environment fallbacks apply. */
static size_t set_params(const nixl_param_t *all, size_t n, nixl_param_t *p)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (all[i].value && *all[i].value)
            p[k++] = all[i];
    return k;
}

/* OBJ's parameters from the --obj_* flags (unset ones: the plugin's AWS_* fallbacks). */
static size_t obj_params(const nb_cfg_t *cfg, nixl_param_t *p)
{
    const nixl_param_t all[] = {
        {"bucket", cfg->obj_bucket_name},
        {"endpoint_override", cfg->obj_endpoint_override},
        {"access_key", cfg->obj_access_key},
        {"secret_key", cfg->obj_secret_key},
        {"session_token", cfg->obj_session_token},
        {"scheme", cfg->obj_scheme},
        {"region", cfg->obj_region},
        {"use_virtual_addressing", cfg->obj_use_virtual_addressing ? "true" : "false"},
        {"req_checksum", cfg->obj_req_checksum},
        {"ca_bundle", cfg->obj_ca_bundle},
    };
    return set_params(all, sizeof(all) / sizeof(all[0]), p);
}

/* AZURE_BLOB's parameters from the --azure_blob_* flags (unset ones: the plugin's
 * AZURE_STORAGE_* fallbacks; the account key has no flag in the reference, so it comes from
 * AZURE_STORAGE_ACCOUNT_KEY or the connection string, else an Azure AD credential of the
 * environment signs the requests). */
static size_t azure_params(const nb_cfg_t *cfg, nixl_param_t *p)
{
    const nixl_param_t all[] = {
        {"account_url", cfg->azure_blob_account_url},
        {"container_name", cfg->azure_blob_container_name},
        {"connection_string", cfg->azure_blob_connection_string},
    };
    return set_params(all, sizeof(all) / sizeof(all[0]), p);
}

/* The backend's parameters from the reference's flags: n of them in p (strings in num). */
static size_t backend_params(const nb_cfg_t *cfg, nixl_param_t *p, char num[3][32])
{
    if (!strcmp(cfg->backend, "OBJ"))
        return obj_params(cfg, p);
    if (!strcmp(cfg->backend, "AZURE_BLOB"))
        return azure_params(cfg, p);
    if (!strcmp(cfg->backend, "GDS")) {
        snprintf(num[0], 32, "%llu", (unsigned long long)cfg->gds_batch_pool_size);
        snprintf(num[1], 32, "%llu", (unsigned long long)cfg->gds_batch_limit);
        p[0] = (nixl_param_t){"batch_pool_size", num[0]};
        p[1] = (nixl_param_t){"batch_limit", num[1]};
        return 2;
    }
    if (!strcmp(cfg->backend, "GDS_MT")) {
        snprintf(num[0], 32, "%llu", (unsigned long long)cfg->gds_mt_num_threads);
        p[0] = (nixl_param_t){"thread_count", num[0]};
        return 1;
    }
    snprintf(num[0], 32, "%llu", (unsigned long long)cfg->posix_ios_pool_size);
    snprintf(num[1], 32, "%llu", (unsigned long long)cfg->posix_kernel_queue_size);
    const char *engine = !strcmp(cfg->posix_api_type, "URING")      ? "use_uring"
                         : !strcmp(cfg->posix_api_type, "POSIXAIO") ? "use_posix_aio"
                                                                    : "use_aio";
    p[0] = (nixl_param_t){engine, "true"};
    p[1] = (nixl_param_t){"ios_pool_size", num[0]};
    p[2] = (nixl_param_t){"kernel_queue_size", num[1]};
    return 3;
}

static int open_backend(srun_t *r)
{
    const nb_cfg_t *cfg = r->cfg;
    r->obj = !strcmp(cfg->backend, "OBJ") || !strcmp(cfg->backend, "AZURE_BLOB");
    if (strcmp(cfg->backend, "POSIX") && !is_gds(cfg) && !r->obj)
        return nb_fail("backend %s: the storage mode of this nixlbench drives POSIX, GDS, "
                       "GDS_MT, OBJ and AZURE_BLOB only", cfg->backend);
    if (cfg->num_threads != 1)
        return nb_fail("storage mode: --num_threads must be 1 (one process, one thread)");
    nixl_param_t p[12];
    char num[3][32];
    size_t np = backend_params(cfg, p, num);
    nixl_backend_t *be;
    if (nixl_agent_create(NB_INITIATOR, NULL, &r->agent) != NIXL_SUCCESS)
        return nb_fail("cannot create an agent: %s", nixl_last_error());
    if (nixl_agent_create_backend(r->agent, cfg->backend, p, np, &be) != NIXL_SUCCESS)
        return nb_fail("backend %s cannot start here: %s", cfg->backend, nixl_last_error());
    return 0;
}

static int open_files(srun_t *r)
{
    const nb_cfg_t *cfg = r->cfg;
    if (r->obj) {
        r->nf = 1; /* objects are registered as the steps need them (obj_register) */
        return 0;
    }
    r->nf = cfg->num_files ? cfg->num_files : 1;
    r->files = calloc(r->nf, sizeof(*r->files));
    if (!r->files)
        return nb_fail("out of memory");
    const char *dir = *cfg->filepath ? cfg->filepath : ".";
    const char *names = cfg->filenames;
    for (size_t i = 0; i < r->nf; i++) {
        sfile_t *f = &r->files[i];
        f->fd = f->plain_fd = -1;
        char path[4096];
        if (*names) {
            size_t n = strcspn(names, ",");
            snprintf(path, sizeof(path), "%s/%.*s", dir, (int)n, names);
            names += n + (names[n] == ',');
        } else {
            char lower[16] = "";
            for (size_t k = 0; cfg->backend[k] && k + 1 < sizeof(lower); k++)
                lower[k] = (char)(cfg->backend[k] | 0x20); /* names are ASCII letters and _ */
            snprintf(path, sizeof(path), "%s/nixlbench_%s_test_file_initiator_%zu", dir, lower,
                     i);
            f->made = access(path, F_OK) != 0;
        }
        if (!(f->path = strdup(path)))
            return nb_fail("out of memory");
        printf("Creating file: %s\n", path);
        int direct = cfg->storage_enable_direct ? O_DIRECT : 0;
        f->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | direct, 0644);
        f->plain_fd = open(path, O_RDWR | O_CLOEXEC);
        if (f->fd < 0 || f->plain_fd < 0)
            return nb_fail("cannot open %s%s: %m", path, direct ? " with O_DIRECT" : "");
        nixl_reg_desc_t d = {.addr = 0, .len = 0, .dev_id = (uint64_t)f->fd};
        if (nixl_agent_register_mem(r->agent, NIXL_FILE_SEG, &d, 1, NULL) != NIXL_SUCCESS)
            return nb_fail("registering %s failed: %s", path, nixl_last_error());
    }
    fflush(stdout);
    return 0;
}

/* Fill [off, off + len) of the buffer, DRAM or VRAM. */
static int fill(srun_t *r, size_t off, size_t len, uint8_t byte)
{
    if (r->mem == NIXL_VRAM_SEG)
        return nb_cuda_fill((uintptr_t)r->buf + off, len, byte);
    memset(r->buf + off, byte, len);
    return 0;
}

static int alloc_buffer(srun_t *r)
{
    r->len = r->cfg->total_buffer_size;
    r->mem = is_gds(r->cfg) ? nb_seg_mem(r->cfg->initiator_seg_type) : NIXL_DRAM_SEG;
    if (r->mem == NIXL_VRAM_SEG) {
        uintptr_t p;
        if (nb_cuda_open(NB_GPU, "--initiator_seg_type VRAM") || nb_cuda_alloc(r->len, &p))
            return NB_EXIT_FAIL;
        r->buf = (uint8_t *)p;
    } else {
        r->buf = mmap(NULL, r->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (r->buf == MAP_FAILED) {
            r->buf = NULL;
            return nb_fail("cannot allocate %zu bytes: %m", r->len);
        }
    }
    if (fill(r, 0, r->len, NB_FILL_INITIATOR))
        return NB_EXIT_FAIL;
    nixl_reg_desc_t d = {.addr = (uintptr_t)r->buf, .len = r->len,
                         .dev_id = r->mem == NIXL_VRAM_SEG ? NB_GPU : 0};
    if (nixl_agent_register_mem(r->agent, r->mem, &d, 1, NULL) != NIXL_SUCCESS)
        return nb_fail("registering the %s buffer failed: %s",
                       r->mem == NIXL_VRAM_SEG ? "VRAM" : "DRAM", nixl_last_error());
    return 0;
}

static void close_all(srun_t *r)
{
    if (r->agent)
        nixl_agent_destroy(r->agent); /* deregisters everything */
    for (size_t i = 0; r->files && i < r->nf; i++) {
        if (r->files[i].fd >= 0)
            close(r->files[i].fd);
        if (r->files[i].plain_fd >= 0)
            close(r->files[i].plain_fd);
        if (r->files[i].made && r->files[i].path)
            unlink(r->files[i].path);
        free(r->files[i].path);
    }
    free(r->files);
    if (r->buf && r->mem == NIXL_VRAM_SEG)
        nb_cuda_free((uintptr_t)r->buf);
    else if (r->buf)
        munmap(r->buf, r->len);
}

/* Objects [r->nobjs, count) registered: key nixlbench_obj_<i>, devId i, whole object. */
static int obj_register(srun_t *r, uint64_t count)
{
    if (count <= r->nobjs)
        return 0;
    uint64_t n = count - r->nobjs;
    nixl_reg_desc_t *d = calloc(n, sizeof(*d));
    char(*keys)[32] = calloc(n, sizeof(*keys));
    int rc = d && keys ? 0 : nb_fail("out of memory");
    for (uint64_t k = 0; !rc && k < n; k++) {
        uint64_t i = r->nobjs + k;
        int len = snprintf(keys[k], sizeof(keys[k]), "nixlbench_obj_%llu", (unsigned long long)i);
        d[k] = (nixl_reg_desc_t){.addr = 0, .len = 0, .dev_id = i, .meta = keys[k],
                                 .meta_len = (size_t)len};
    }
    if (!rc && nixl_agent_register_mem(r->agent, NIXL_OBJ_SEG, d, n, NULL) != NIXL_SUCCESS)
        rc = nb_fail("registering %llu objects failed: %s", (unsigned long long)n,
                     nixl_last_error());
    if (!rc)
        r->nobjs = count;
    free(d);
    free(keys);
    return rc;
}

static nixl_status_t wait_req(srun_t *r, nixl_xfer_req_t *req, double last_us);

/* One untimed transfer of n descriptors between the buffer and the objects. */
static int obj_move(srun_t *r, nixl_xfer_op_t op, const nixl_desc_t *l, const nixl_desc_t *rd,
                    uint64_t n)
{
    nixl_opt_args_t opt;
    nixl_opt_args_init(&opt);
    opt.skip_desc_merge = true;
    nixl_xfer_req_t *req = NULL;
    nixl_status_t st = nixl_agent_create_xfer_req(r->agent, op, r->mem, l, n, NIXL_OBJ_SEG, rd,
                                                  n, NB_INITIATOR, &opt, &req);
    if (st == NIXL_SUCCESS) {
        st = nixl_agent_post_xfer_req(r->agent, req, NULL);
        if (st == NIXL_IN_PROG)
            st = wait_req(r, req, 0);
        nixl_agent_release_xfer_req(r->agent, req);
    }
    if (st != NIXL_SUCCESS)
        return nb_fail("%s of %llu objects (untimed) failed: %s: %s",
                       op == NIXL_WRITE ? "writing" : "reading", (unsigned long long)n,
                       nixl_status_str(st), nixl_last_error());
    return 0;
}

/* File offsets of the step's descriptors (the remote side of the requests). */
static void layout(srun_t *r, uint64_t b, uint64_t n, nixl_desc_t *l, nixl_desc_t *rd)
{
    if (r->obj) { /* one object per descriptor, written whole, read from offset 0 */
        for (uint64_t i = 0; i < n; i++) {
            l[i] = (nixl_desc_t){(uintptr_t)(r->buf + i * b), b, 0};
            rd[i] = (nixl_desc_t){0, b, i};
        }
        return;
    }
    uint64_t nper = (n + r->nf - 1) / r->nf, *slot = malloc(n * sizeof(*slot));
    const char *mode = r->cfg->randomize_location_mode;
    for (uint64_t i = 0; i < n; i++)
        slot[i] = slot ? i / r->nf : 0;
    if (slot && !strcmp(mode, "blockaligned")) /* shuffle the slots of each file */
        for (uint64_t i = n; i-- > r->nf;) {
            uint64_t j = (uint64_t)rand_r(&r->seed) % (i / r->nf + 1) * r->nf + i % r->nf;
            uint64_t t = slot[i];
            slot[i] = slot[j], slot[j] = t;
        }
    for (uint64_t i = 0; i < n; i++) {
        uint64_t off = (slot ? slot[i] : i / r->nf) * b;
        if (!strcmp(mode, "bytealigned"))
            off = (uint64_t)rand_r(&r->seed) % ((nper - 1) * b + 1);
        l[i] = (nixl_desc_t){(uintptr_t)(r->buf + i * b), b,
                             r->mem == NIXL_VRAM_SEG ? NB_GPU : 0};
        rd[i] = (nixl_desc_t){(uintptr_t)off, b, (uint64_t)r->files[i % r->nf].fd};
    }
    free(slot);
}

/* Files: the target pattern over the bytes the step uses; buffer: the initiator's. */
static int prepare(srun_t *r, uint64_t span, uint64_t used)
{
    static uint8_t chunk[1 << 20];
    memset(chunk, NB_FILL_TARGET, sizeof(chunk));
    for (size_t f = 0; f < r->nf; f++)
        for (uint64_t at = 0; at < span;) {
            size_t n = span - at < sizeof(chunk) ? (size_t)(span - at) : sizeof(chunk);
            if (pwrite(r->files[f].plain_fd, chunk, n, (off_t)at) != (ssize_t)n)
                return nb_fail("preparing %s failed: %m", r->files[f].path);
            at += n;
        }
    return fill(r, 0, used, NB_FILL_INITIATOR);
}

/* Objects: written with the target pattern through the backend (untimed); buffer: the
 * initiator's. */
static int obj_prepare(srun_t *r, const nixl_desc_t *l, const nixl_desc_t *rd, uint64_t n,
                       uint64_t b)
{
    int rc = obj_register(r, n);
    if (!rc)
        rc = fill(r, 0, n * b, NB_FILL_TARGET);
    if (!rc)
        rc = obj_move(r, NIXL_WRITE, l, rd, n);
    return rc ? rc : fill(r, 0, n * b, NB_FILL_INITIATOR);
}

static int verify(srun_t *r, const nixl_desc_t *l, const nixl_desc_t *rd, uint64_t n,
                  uint64_t b)
{
    bool obj_write = r->obj && r->cfg->op == NIXL_WRITE;
    if (obj_write) { /* read the objects back over the buffer, which is no longer needed */
        int rc = fill(r, 0, n * b, 0);
        if (!rc)
            rc = obj_move(r, NIXL_READ, l, rd, n);
        if (rc)
            return rc;
    }
    uint8_t *tmp = r->cfg->op == NIXL_WRITE && !r->obj ? malloc(b) : NULL;
    int rc = 0;
    for (uint64_t i = 0; i < n && !rc; i++) {
        const uint8_t *p = r->buf + i * b;
        uint8_t want = obj_write ? NB_FILL_INITIATOR : NB_FILL_TARGET, seen = 0;
        long long bad = -1;
        if (!tmp && r->mem == NIXL_VRAM_SEG) { /* READ into VRAM: look at it from the host */
            rc = nb_cuda_find_other((uintptr_t)r->buf, i * b, b, want, &bad, &seen);
            if (!rc && bad >= 0)
                rc = nb_fail("consistency check failed: descriptor %llu byte %lld is 0x%02x "
                             "after READ, expected 0x%02x",
                             (unsigned long long)i, bad - (long long)(i * b), seen, want);
            if (rc) {
                printf("Consistency check failed\n");
                fflush(stdout);
            }
            continue;
        }
        if (tmp) {
            const sfile_t *f = &r->files[i % r->nf];
            if (pread(f->plain_fd, tmp, b, (off_t)rd[i].addr) != (ssize_t)b)
                rc = nb_fail("reading %s back failed: %m", f->path);
            p = tmp;
            want = NB_FILL_INITIATOR;
        }
        bad = rc ? -1 : nb_check_fill(p, 0, b, want);
        if (bad >= 0) {
            printf("Consistency check failed\n");
            fflush(stdout);
            rc = nb_fail("consistency check failed: descriptor %llu byte %lld is 0x%02x after "
                         "%s, expected 0x%02x", (unsigned long long)i, bad, p[bad],
                         r->cfg->op_type, want);
        }
    }
    free(tmp);
    return rc;
}

/* Poll the request. A transfer that took `last_us` before is first left alone for most of
 * that time; then yield for 50 us (small transfers end quickly), then sleep between looks, so
 * that the backend's completion thread and the kernel's I/O workers keep the cores. */
static nixl_status_t wait_req(srun_t *r, nixl_xfer_req_t *req, double last_us)
{
    double t0 = nb_now_us();
    long long deadline = nb_now_ms() + NB_XFER_TIMEOUT_MS;
    nixl_status_t st;
    unsigned looks = 0;
    if (last_us > 500)
        usleep((useconds_t)(last_us * 0.8));
    while ((st = nixl_agent_get_xfer_status(r->agent, req)) == NIXL_IN_PROG) {
        if (++looks % 256 == 0 && nb_now_ms() > deadline)
            return NIXL_IN_PROG;
        if (nb_now_us() - t0 < 50)
            sched_yield();
        else
            usleep(20);
    }
    return st;
}

static int make_req(srun_t *r, const nixl_desc_t *l, const nixl_desc_t *rd, uint64_t n,
                    nixl_xfer_req_t **req, double *prep_us)
{
    nixl_opt_args_t opt;
    nixl_opt_args_init(&opt);
    opt.skip_desc_merge = true;
    double t0 = nb_now_us();
    if (nixl_agent_create_xfer_req(r->agent, r->cfg->op, r->mem, l, n,
                                   r->obj ? NIXL_OBJ_SEG : NIXL_FILE_SEG, rd, n, NB_INITIATOR,
                                   &opt, req) != NIXL_SUCCESS)
        return nb_fail("create_xfer_req failed: %s", nixl_last_error());
    *prep_us = nb_now_us() - t0;
    return 0;
}

/* Up to --pipeline_depth requests in flight ("slots"), each on its own n blocks of the buffer
 * and of the files: slot k is descriptors [k*n, (k+1)*n) of one layout. */
typedef struct sstep {
    srun_t *r;
    const nb_plan_t *p;
    uint64_t nslots;
    nixl_desc_t *l, *rd;
    nixl_xfer_req_t **req;
    double *t_post, *prep, *post, *tx, last_us;
    bool *busy, *timed;
    size_t *txi; /* per slot: its sample in tx */
    size_t nprep, nposts;
} sstep_t;

static int wait_slot(sstep_t *x, uint64_t k)
{
    double hint = x->nslots == 1 ? x->last_us : 0;
    nixl_status_t st = wait_req(x->r, x->req[k], hint);
    x->busy[k] = false;
    if (st != NIXL_SUCCESS)
        return nb_fail("%s of %llu x %llu bytes failed: %s: %s", x->r->cfg->op_type,
                       (unsigned long long)x->p->batch, (unsigned long long)x->p->block,
                       nixl_status_str(st),
                       st == NIXL_IN_PROG ? "no completion in time" : nixl_last_error());
    x->last_us = nb_now_us() - x->t_post[k];
    if (x->timed[k])
        x->tx[x->txi[k]] = x->last_us;
    return 0;
}

static int drain(sstep_t *x)
{
    int rc = 0;
    for (uint64_t k = 0; k < x->nslots; k++)
        if (x->busy[k] && !rc)
            rc = wait_slot(x, k);
    return rc;
}

static int post_slot(sstep_t *x, uint64_t k, bool timed)
{
    int rc = x->busy[k] ? wait_slot(x, k) : 0;
    if (!rc && (!x->req[k] || x->r->cfg->recreate_xfer)) {
        if (x->req[k])
            nixl_agent_release_xfer_req(x->r->agent, x->req[k]);
        x->req[k] = NULL;
        rc = make_req(x->r, x->l + k * x->p->batch, x->rd + k * x->p->batch, x->p->batch,
                      &x->req[k], &x->prep[x->nprep++]);
    }
    if (rc)
        return rc;
    x->t_post[k] = nb_now_us();
    nixl_status_t st = nixl_agent_post_xfer_req(x->r->agent, x->req[k], NULL);
    double t1 = nb_now_us();
    x->timed[k] = timed;
    if (timed) {
        x->txi[k] = x->nposts;
        x->post[x->nposts] = t1 - x->t_post[k];
        x->tx[x->nposts++] = t1 - x->t_post[k]; /* final when it completes */
    }
    if (st == NIXL_IN_PROG) {
        x->busy[k] = true;
        return 0;
    }
    if (st != NIXL_SUCCESS)
        return nb_fail("posting %s of %llu x %llu bytes failed: %s: %s", x->r->cfg->op_type,
                       (unsigned long long)x->p->batch, (unsigned long long)x->p->block,
                       nixl_status_str(st), nixl_last_error());
    x->last_us = t1 - x->t_post[k];
    return 0;
}

static int step(srun_t *r, const nb_plan_t *p, nb_row_t *row)
{
    uint64_t b = p->block, n = p->batch, total = p->iters + p->warmup;
    uint64_t fit = r->len / (b * n), K = r->cfg->pipeline_depth < fit ? r->cfg->pipeline_depth
                                                                       : fit;
    if (K > total)
        K = total;
    if (!K)
        K = 1;
    sstep_t x = {.r = r, .p = p, .nslots = K};
    x.l = calloc(K * n, sizeof(*x.l));
    x.rd = calloc(K * n, sizeof(*x.rd));
    x.req = calloc(K, sizeof(*x.req));
    x.busy = calloc(2 * K, sizeof(bool));
    x.timed = x.busy ? x.busy + K : NULL;
    x.txi = calloc(K, sizeof(*x.txi));
    double *s = calloc(3 * (total + 1) + K, sizeof(double));
    int rc = x.l && x.rd && x.req && x.busy && x.txi && s ? 0 : nb_fail("out of memory");
    if (!rc) {
        x.prep = s, x.post = s + total + 1, x.tx = s + 2 * (total + 1);
        x.t_post = s + 3 * (total + 1);
        layout(r, b, K * n, x.l, x.rd);
        rc = r->obj ? obj_prepare(r, x.l, x.rd, K * n, b)
                    : prepare(r, ((K * n + r->nf - 1) / r->nf) * b, K * n * b);
    }
    double t_start = 0;
    for (uint64_t it = 0; !rc && it < total; it++) {
        if (it == p->warmup) {
            rc = drain(&x); /* the timed part starts with nothing in flight */
            t_start = nb_now_us();
        }
        if (!rc)
            rc = post_slot(&x, it % K, it >= p->warmup);
    }
    if (!rc)
        rc = drain(&x);
    double seconds = (nb_now_us() - t_start) / 1e6;
    if (rc)
        drain(&x); /* nothing may be in flight when the requests go */
    for (uint64_t k = 0; x.req && k < K; k++)
        if (x.req[k])
            nixl_agent_release_xfer_req(r->agent, x.req[k]);
    if (!rc && r->cfg->check_consistency)
        rc = verify(r, x.l, x.rd, K * n, b);
    if (!rc) {
        memset(row, 0, sizeof(*row));
        row->block = b;
        row->batch = n;
        row->iters = p->iters;
        row->seconds = seconds;
        row->gbps = seconds > 0 ? (double)b * (double)n * (double)p->iters / 1e9 / seconds : 0;
        row->avg_lat_us = seconds * 1e6 / ((double)p->iters * (double)n);
        nb_dist_of(x.prep, x.nprep, &row->prep);
        nb_dist_of(x.post, x.nposts, &row->post);
        nb_dist_of(x.tx, x.nposts, &row->tx);
    }
    free(x.l);
    free(x.rd);
    free(x.req);
    free(x.busy);
    free(x.txi);
    free(s);
    return rc;
}

int nb_storage_run(const nb_cfg_t *cfg)
{
    srun_t r = {.cfg = cfg, .seed = (unsigned)cfg->randomize_location_mode_seed};
    if (!r.seed)
        r.seed = (unsigned)getpid() ^ (unsigned)nb_now_ms();
    nb_row_t *rows = NULL;
    size_t nrows = 0, cap = 0;
    int rc = open_backend(&r);
    if (!rc)
        rc = alloc_buffer(&r);
    if (!rc)
        rc = open_files(&r);
    if (!rc) {
        nb_print_config(cfg, cfg->backend);
        nb_print_header();
    }
    for (uint64_t b = cfg->start_block_size; !rc && b && b <= cfg->max_block_size; b *= 2)
        for (uint64_t n = cfg->start_batch_size; !rc && n && n <= cfg->max_batch_size; n *= 2) {
            nb_plan_t p;
            nb_plan_iters(cfg, b, &p);
            p.batch = n;
            if (!nixl_array_reserve(rows, cap, nrows + 1)) {
                rc = nb_fail("out of memory");
                break;
            }
            rc = step(&r, &p, &rows[nrows]);
            if (!rc)
                nb_print_row(&rows[nrows++]);
        }
    if (!rc && *cfg->json) {
        const char *name = cfg->backend;
        rc = nb_json_write(cfg, cfg->json, &name, &rows, 1, nrows, NULL);
    }
    free(rows);
    close_all(&r);
    return rc;
}
