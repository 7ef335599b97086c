/*
 * test_lf_stage.c - the LIBFABRIC plugin's staging of local GPU memory (lf_stage.c), on a
 * machine without a GPU: the plugin is loaded by itself (dlopen) and given a host whose GPU
 * services are a stand-in. "GPU memory" is host memory that the stand-in's ptr_query calls
 * device memory; its staging cuts the copies into rounds through two buffers exactly as the
 * core's service documents (nixl_plugin.h), and runs a round's copies at the moment the
 * contract allows it to: in the "late" mode only when stage_wait is called (a plugin that
 * uses a buffer before waiting for its GPU copy moves stale bytes), in the "early" mode at
 * stage_post (a plugin that fills a buffer whose network operations still run corrupts them).
 * Everything else is real: two engines on the tcp;ofi_rxm provider over loopback.
 *
 * Checked: registration of VRAM (no driver, host memory, a range past its allocation);
 * WRITE and READ of 1,000 odd-sized elements over several rounds, every byte and the guard
 * bytes around each element; reposts; the notification, with the data in place when it
 * arrives; a list mixing host and GPU memory; GPU memory of two GPUs refused; a peer's GPU
 * memory refused at prep with the reason; loopback with GPU memory; a release and a cancel
 * in flight (the request stops between rounds, nothing is touched after), then a repost.
 * The GPU test tests/gpu/test_lf_vram.c runs the same paths on a real GPU.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "nixl_plugin.h"

#define MDS(arr, n) (&(nixl_be_mds_t){.base = (arr), .stride = sizeof(nixl_be_md_t *), .count = (n)})
#define ST(want, expr) assert_int_equal((int)(want), (int)(expr))

static const nixl_be_ops_t *ops;
static _Thread_local char t_err[1024];

/* ---- the stand-in GPU ---- */

static struct fake_alloc {
    uintptr_t base;
    size_t size;
    int device;
} allocs[4];
static unsigned nallocs;
static bool late_copies;             /* run a round's copies at stage_wait, else at stage_post */
static atomic_uint wait_delay_us;    /* each stage_wait takes this long (a slow GPU) */
static atomic_uint misuse;           /* calls the contract forbids */
static atomic_uint stages_alive, rounds_waited;

static int f_device_count(void)
{
    return 2;
}

static nixl_status_t f_ptr_query(uintptr_t addr, size_t len, nixl_gpu_ptr_t *out,
                                 nixl_gpu_err_t *err)
{
    for (unsigned i = 0; i < nallocs; i++) {
        const struct fake_alloc *a = &allocs[i];
        if (addr < a->base || addr >= a->base + a->size)
            continue;
        if (len > a->base + a->size - addr) {
            snprintf(err->msg, sizeof(err->msg), "the range spans allocations");
            return NIXL_ERR_INVALID_PARAM;
        }
        *out = (nixl_gpu_ptr_t){NIXL_GPU_MEM_DEVICE, a->device, a->base, a->size};
        return NIXL_SUCCESS;
    }
    *out = (nixl_gpu_ptr_t){NIXL_GPU_MEM_PAGEABLE, -1, 0, 0};
    return NIXL_SUCCESS;
}

static void copy_segs(const nixl_gpu_seg_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        memmove((void *)(uintptr_t)s[i].dst, (const void *)(uintptr_t)s[i].src, s[i].len);
}

struct nixl_gpu_batch {
    nixl_gpu_seg_t *segs;
    size_t n;
    bool posted;
};

static nixl_status_t f_batch_create(int device, const nixl_gpu_seg_t *segs, size_t count,
                                    unsigned flags, unsigned max_blocks, nixl_gpu_batch_t **out,
                                    nixl_gpu_err_t *err)
{
    (void)device, (void)flags, (void)max_blocks, (void)err;
    nixl_gpu_batch_t *b = calloc(1, sizeof(*b));
    assert_non_null(b);
    b->segs = malloc((count ? count : 1) * sizeof(*segs));
    assert_non_null(b->segs);
    memcpy(b->segs, segs, count * sizeof(*segs));
    b->n = count;
    *out = b;
    return NIXL_SUCCESS;
}

static nixl_status_t f_batch_post(nixl_gpu_batch_t *b, nixl_gpu_err_t *err)
{
    (void)err;
    if (b->posted)
        atomic_fetch_add(&misuse, 1);
    if (!late_copies)
        copy_segs(b->segs, b->n);
    b->posted = true;
    return NIXL_SUCCESS;
}

static nixl_status_t f_batch_wait(nixl_gpu_batch_t *b, nixl_gpu_err_t *err)
{
    (void)err;
    if (b->posted && late_copies)
        copy_segs(b->segs, b->n);
    b->posted = false;
    return NIXL_SUCCESS;
}

static nixl_status_t f_batch_check(nixl_gpu_batch_t *b, nixl_gpu_err_t *err)
{
    return f_batch_wait(b, err);
}

static void f_batch_destroy(nixl_gpu_batch_t *b)
{
    nixl_gpu_err_t err;
    f_batch_wait(b, &err);
    free(b->segs);
    free(b);
}

struct nixl_gpu_stage {
    uint8_t *buf[2];
    size_t nrounds;
    size_t *first;          /* round k: pieces[first[k] .. first[k + 1]) */
    nixl_gpu_seg_t *pieces; /* the caller's copies */
    nixl_gpu_seg_t *gsegs;  /* the GPU's copies, same indexes */
    bool *posted;
};

static nixl_status_t f_stage_create(int device, bool to_far, const nixl_gpu_seg_t *segs,
                                    size_t count, size_t round, unsigned flags,
                                    unsigned max_blocks, nixl_gpu_stage_t **out,
                                    nixl_gpu_err_t *err)
{
    (void)flags, (void)max_blocks, (void)err;
    assert_true(device == 0 || device == 1);
    uint64_t total = 0;
    for (size_t i = 0; i < count; i++)
        total += segs[i].len;
    nixl_gpu_stage_t *st = calloc(1, sizeof(*st));
    assert_non_null(st);
    st->nrounds = (size_t)((total + round - 1) / round);
    size_t cap = count + st->nrounds + 1;
    st->first = calloc(st->nrounds + 1, sizeof(*st->first));
    st->pieces = calloc(cap, sizeof(*st->pieces));
    st->gsegs = calloc(cap, sizeof(*st->gsegs));
    st->posted = calloc(st->nrounds + 1, sizeof(*st->posted));
    assert_true(st->first && st->pieces && st->gsegs && st->posted);
    for (int b = 0; b < 2 && (size_t)b < st->nrounds; b++) {
        st->buf[b] = malloc(round);
        assert_non_null(st->buf[b]);
        memset(st->buf[b], 0xee, round);
    }
    size_t k = 0, used = 0, np = 0;
    for (size_t i = 0; i < count; i++)
        for (uint64_t off = 0; off < segs[i].len;) {
            uint64_t n = segs[i].len - off < round - used ? segs[i].len - off : round - used;
            uint64_t b = (uint64_t)(uintptr_t)(st->buf[k % 2] + used);
            if (to_far) {
                st->gsegs[np] = (nixl_gpu_seg_t){b, segs[i].src + off, n};
                st->pieces[np] = (nixl_gpu_seg_t){segs[i].dst + off, b, n};
            } else {
                st->pieces[np] = (nixl_gpu_seg_t){b, segs[i].src + off, n};
                st->gsegs[np] = (nixl_gpu_seg_t){segs[i].dst + off, b, n};
            }
            np++;
            off += n;
            used += (size_t)n;
            if (used == round) {
                st->first[++k] = np;
                used = 0;
            }
        }
    if (used)
        st->first[++k] = np;
    assert_int_equal(k, st->nrounds);
    atomic_fetch_add(&stages_alive, 1);
    *out = st;
    return NIXL_SUCCESS;
}

static size_t f_stage_rounds(const nixl_gpu_stage_t *st)
{
    return st->nrounds;
}

static const nixl_gpu_seg_t *f_stage_pieces(const nixl_gpu_stage_t *st, size_t k, size_t *n)
{
    assert_true(k < st->nrounds);
    *n = st->first[k + 1] - st->first[k];
    return st->pieces + st->first[k];
}

static nixl_status_t f_stage_post(nixl_gpu_stage_t *st, size_t k, nixl_gpu_err_t *err)
{
    (void)err;
    if (k >= st->nrounds || st->posted[k])
        atomic_fetch_add(&misuse, 1);
    if (!late_copies)
        copy_segs(st->gsegs + st->first[k], st->first[k + 1] - st->first[k]);
    st->posted[k] = true;
    return NIXL_SUCCESS;
}

static nixl_status_t f_stage_wait(nixl_gpu_stage_t *st, size_t k, nixl_gpu_err_t *err)
{
    (void)err;
    if (k >= st->nrounds)
        atomic_fetch_add(&misuse, 1);
    unsigned us = atomic_load(&wait_delay_us);
    if (us && st->posted[k])
        usleep(us);
    if (st->posted[k] && late_copies)
        copy_segs(st->gsegs + st->first[k], st->first[k + 1] - st->first[k]);
    if (st->posted[k])
        atomic_fetch_add(&rounds_waited, 1);
    st->posted[k] = false;
    return NIXL_SUCCESS;
}

static void f_stage_destroy(nixl_gpu_stage_t *st)
{
    for (size_t k = 0; k < st->nrounds; k++)
        if (st->posted[k]) /* the real service waits for copies in flight: they run */
            f_stage_wait(st, k, &(nixl_gpu_err_t){{0}});
    free(st->buf[0]);
    free(st->buf[1]);
    free(st->first);
    free(st->pieces);
    free(st->gsegs);
    free(st->posted);
    free(st);
    atomic_fetch_sub(&stages_alive, 1);
}

static const nixl_gpu_ops_t fake_gpu = {
    .struct_size = sizeof(nixl_gpu_ops_t),
    .device_count = f_device_count,
    .ptr_query = f_ptr_query,
    .batch_create = f_batch_create,
    .batch_post = f_batch_post,
    .batch_check = f_batch_check,
    .batch_wait = f_batch_wait,
    .batch_destroy = f_batch_destroy,
    .stage_create = f_stage_create,
    .stage_rounds = f_stage_rounds,
    .stage_pieces = f_stage_pieces,
    .stage_post = f_stage_post,
    .stage_wait = f_stage_wait,
    .stage_destroy = f_stage_destroy,
};

/* ---- the host ---- */

typedef struct thost {
    nixl_host_t host;
    pthread_mutex_t mu;
    unsigned notifs;
    char last[64];
    /* at a notification: whether dst held `want` (the data arrived before it) */
    const uint8_t *check_dst, *check_want;
    size_t check_len;
    unsigned data_ok;
} thost_t;

static void t_notif(const nixl_host_t *host, const char *agent, size_t agent_len,
                    const void *msg, size_t len)
{
    thost_t *h = (thost_t *)host;
    (void)agent, (void)agent_len;
    pthread_mutex_lock(&h->mu);
    h->notifs++;
    snprintf(h->last, sizeof(h->last), "%.*s", (int)len, (const char *)msg);
    if (h->check_dst && !memcmp(h->check_dst, h->check_want, h->check_len))
        h->data_ok++;
    pthread_mutex_unlock(&h->mu);
}

static void t_log(const nixl_host_t *host, nixl_log_level_t level, const char *fmt, ...)
{
    (void)host, (void)level, (void)fmt;
}

static bool t_log_enabled(const nixl_host_t *host, nixl_log_level_t level)
{
    (void)host, (void)level;
    return false;
}

static void t_fail(const nixl_host_t *host, nixl_status_t status, const char *fmt, ...)
{
    (void)host, (void)status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t_err, sizeof(t_err), fmt, ap);
    va_end(ap);
}

static void thost_init(thost_t *h, bool gpu)
{
    memset(h, 0, sizeof(*h));
    h->host = (nixl_host_t){.struct_size = sizeof(nixl_host_t), .notif = t_notif, .log = t_log,
                            .log_enabled = t_log_enabled, .fail = t_fail,
                            .gpu = gpu ? &fake_gpu : NULL};
    pthread_mutex_init(&h->mu, NULL);
}

static unsigned notifs_of(thost_t *h, unsigned *data_ok)
{
    pthread_mutex_lock(&h->mu);
    unsigned n = h->notifs;
    if (data_ok)
        *data_ok = h->data_ok;
    pthread_mutex_unlock(&h->mu);
    return n;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- two engines ---- */

#define LEN ((size_t)10 << 20) /* three 4 MiB rounds */
#define NDESC 1000u

typedef struct pair {
    thost_t ha, hb;
    nixl_be_engine_t *a, *b;
    uint8_t *gpu, *gpu1, *adram, *bdram; /* gpu: device 0, gpu1: device 1 */
    nixl_be_md_t *gpu_md, *gpu1_md, *adram_md, *bdram_md; /* a's regions, b's */
    nixl_be_md_t *bdram_rmd;                               /* b's region loaded into a */
    nixl_be_md_t *gpu_lb, *adram_lb;                       /* a's own, for loopback */
} pair_t;

static nixl_be_engine_t *eng_new(thost_t *h, const char *name)
{
    nixl_param_t p = {"provider", "tcp;ofi_rxm"};
    nixl_be_init_t init = {.struct_size = sizeof(init), .local_agent = name, .type = "LIBFABRIC",
                           .params = &p, .num_params = 1, .host = &h->host};
    nixl_be_engine_t *e = NULL;
    nixl_status_t st = ops->create(&init, &e);
    if (st != NIXL_SUCCESS)
        print_message("create: %s\n", t_err);
    ST(NIXL_SUCCESS, st);
    return e;
}

static void introduce(nixl_be_engine_t *a, const char *bname, nixl_be_engine_t *b)
{
    const void *blob;
    size_t len;
    ST(NIXL_SUCCESS, ops->get_conn_info(b, &blob, &len));
    ST(NIXL_SUCCESS, ops->load_remote_conn(a, bname, blob, len));
}

static nixl_status_t reg(nixl_be_engine_t *e, nixl_mem_t type, void *p, size_t len,
                         nixl_be_md_t **md)
{
    nixl_reg_desc_t d = {.addr = (uintptr_t)p, .len = len};
    return ops->register_mem(e, type, &d, 1, md);
}

/* `md` of `owner` loaded into `into` as a region of agent `owner_name`. */
static nixl_be_md_t *load_region(nixl_be_engine_t *into, const char *owner_name,
                                 nixl_be_engine_t *owner, nixl_mem_t type, nixl_be_md_t *md,
                                 void *addr, size_t len)
{
    nixl_be_blob_t blob;
    ST(NIXL_SUCCESS, ops->get_public_blobs(owner, MDS(&md, 1), &blob));
    nixl_desc_t d = {(uintptr_t)addr, len, 0};
    nixl_be_md_t *out = NULL;
    ST(NIXL_SUCCESS, ops->load_remote_md(into, owner_name, type, &d, &blob, 1, &out));
    return out;
}

static uint8_t *fake_gpu_alloc(size_t len, int device)
{
    uint8_t *p = malloc(len);
    assert_non_null(p);
    assert_true(nallocs < 4);
    allocs[nallocs++] = (struct fake_alloc){(uintptr_t)p, len, device};
    return p;
}

static int pair_setup(void **state)
{
    pair_t *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    nallocs = 0;
    thost_init(&p->ha, true);
    thost_init(&p->hb, true);
    p->a = eng_new(&p->ha, "A");
    p->b = eng_new(&p->hb, "B");
    introduce(p->a, "B", p->b);
    introduce(p->b, "A", p->a);
    p->gpu = fake_gpu_alloc(LEN, 0);
    p->gpu1 = fake_gpu_alloc(1 << 20, 1);
    p->adram = malloc(LEN);
    p->bdram = malloc(LEN);
    assert_true(p->adram && p->bdram);
    ST(NIXL_SUCCESS, reg(p->a, NIXL_VRAM_SEG, p->gpu, LEN, &p->gpu_md));
    ST(NIXL_SUCCESS, reg(p->a, NIXL_VRAM_SEG, p->gpu1, 1 << 20, &p->gpu1_md));
    ST(NIXL_SUCCESS, reg(p->a, NIXL_DRAM_SEG, p->adram, LEN, &p->adram_md));
    ST(NIXL_SUCCESS, reg(p->b, NIXL_DRAM_SEG, p->bdram, LEN, &p->bdram_md));
    p->bdram_rmd = load_region(p->a, "B", p->b, NIXL_DRAM_SEG, p->bdram_md, p->bdram, LEN);
    ST(NIXL_SUCCESS, ops->load_local_md(p->a, MDS(&p->gpu_md, 1), &p->gpu_lb));
    ST(NIXL_SUCCESS, ops->load_local_md(p->a, MDS(&p->adram_md, 1), &p->adram_lb));
    atomic_store(&misuse, 0);
    *state = p;
    return 0;
}

static int pair_teardown(void **state)
{
    pair_t *p = *state;
    ops->unload_md(p->a, MDS(&p->bdram_rmd, 1));
    ops->unload_md(p->a, MDS(&p->gpu_lb, 1));
    ops->unload_md(p->a, MDS(&p->adram_lb, 1));
    nixl_be_md_t *amds[] = {p->gpu_md, p->gpu1_md, p->adram_md};
    ops->deregister_mem(p->a, MDS(amds, 3));
    ops->deregister_mem(p->b, MDS(&p->bdram_md, 1));
    ops->destroy(p->a);
    ops->destroy(p->b);
    assert_int_equal(atomic_load(&stages_alive), 0); /* every staging plan was freed */
    assert_int_equal(atomic_load(&misuse), 0);
    free(p->gpu);
    free(p->gpu1);
    free(p->adram);
    free(p->bdram);
    pthread_mutex_destroy(&p->ha.mu);
    pthread_mutex_destroy(&p->hb.mu);
    free(p);
    return 0;
}

static void fill(uint8_t *b, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(i * 131 + seed + (i >> 12));
}

/* NDESC odd-sized elements at odd offsets, the same offsets on both sides, gaps between
 * them (guard bytes that must stay as they were). `gpu_every`: element i is on the GPU side
 * unless gpu_every > 1 and i % gpu_every == 1 (then it is host memory: mixed lists). */
static void lists(nixl_be_desc_t *l, nixl_be_desc_t *r, const pair_t *p, nixl_be_md_t *rmd,
                  uintptr_t rbase, unsigned gpu_every)
{
    size_t off = 3, step = LEN / NDESC;
    for (size_t i = 0; i < NDESC; i++) {
        size_t len = step - 8 - i % 13;
        bool host = gpu_every > 1 && i % gpu_every == 1;
        l[i] = (nixl_be_desc_t){(uintptr_t)(host ? p->adram : p->gpu) + off, len, 0,
                                host ? p->adram_md : p->gpu_md};
        r[i] = (nixl_be_desc_t){rbase + off, len, 0, rmd};
        off += step;
    }
}

/* What `dst` holds after the elements moved from src (its other bytes as they were). */
static void expect(uint8_t *want, const uint8_t *dst_before, const uint8_t *src_gpu,
                   const uint8_t *src_host, const nixl_be_desc_t *l, const uint8_t *lbase_gpu,
                   const uint8_t *lbase_host, unsigned gpu_every)
{
    memcpy(want, dst_before, LEN);
    for (size_t i = 0; i < NDESC; i++) {
        bool host = gpu_every > 1 && i % gpu_every == 1;
        size_t off = l[i].addr - (uintptr_t)(host ? lbase_host : lbase_gpu);
        memcpy(want + off, (host ? src_host : src_gpu) + off, l[i].len);
    }
}

static nixl_status_t wait_req(nixl_be_engine_t *e, nixl_be_req_t *req, nixl_status_t st)
{
    double end = now_s() + 30;
    while (st == NIXL_IN_PROG && now_s() < end) {
        st = ops->check_xfer(e, req);
        if (st == NIXL_IN_PROG)
            usleep(100);
    }
    return st;
}

static nixl_be_xfer_opts_t notif_opts(const char *msg)
{
    return (nixl_be_xfer_opts_t){.struct_size = sizeof(nixl_be_xfer_opts_t), .has_notif = true,
                                 .notif = msg, .notif_len = strlen(msg)};
}

static nixl_be_desc_t L[NDESC], R[NDESC];

/* WRITE (a's GPU memory, or a mix with a's host memory) -> b's DRAM, then READ back into a
 * cleared GPU memory; three posts of each prepared request. */
static void write_read(pair_t *p, unsigned gpu_every)
{
    uint8_t *want = malloc(LEN), *img = malloc(LEN), *himg = malloc(LEN);
    assert_true(want && img && himg);
    lists(L, R, p, p->bdram_rmd, (uintptr_t)p->bdram, gpu_every);

    /* WRITE */
    fill(p->gpu, LEN, 1);
    fill(p->adram, LEN, 5);
    fill(p->bdram, LEN, 9);
    expect(want, p->bdram, p->gpu, p->adram, L, p->gpu, p->adram, gpu_every);
    nixl_be_req_t *req = NULL;
    nixl_be_xfer_opts_t o = notif_opts("written");
    ST(NIXL_SUCCESS, ops->prep_xfer(p->a, NIXL_WRITE, L, R, NDESC, "B", &o, &req));
    pthread_mutex_lock(&p->hb.mu);
    p->hb.check_dst = p->bdram;
    p->hb.check_want = want;
    p->hb.check_len = LEN;
    pthread_mutex_unlock(&p->hb.mu);
    for (int rep = 0; rep < 3; rep++) {
        unsigned ok_before, ok_after;
        unsigned before = notifs_of(&p->hb, &ok_before);
        if (rep == 2)
            fill(p->bdram, LEN, 9); /* the last post writes over the old bytes again */
        ST(NIXL_SUCCESS, wait_req(p->a, req, ops->post_xfer(p->a, req, &o)));
        assert_memory_equal(p->bdram, want, LEN);
        double end = now_s() + 10;
        while (notifs_of(&p->hb, NULL) == before && now_s() < end)
            usleep(1000);
        assert_int_equal(notifs_of(&p->hb, &ok_after), before + 1);
        assert_int_equal(ok_after, ok_before + 1); /* the data was there before it */
        assert_string_equal(p->hb.last, "written");
    }
    pthread_mutex_lock(&p->hb.mu);
    p->hb.check_dst = NULL;
    pthread_mutex_unlock(&p->hb.mu);
    ST(NIXL_SUCCESS, ops->release_req(p->a, req));

    /* READ */
    fill(p->bdram, LEN, 2);
    fill(p->gpu, LEN, 3);
    fill(p->adram, LEN, 4);
    memcpy(img, p->gpu, LEN);
    memcpy(himg, p->adram, LEN);
    uint8_t *want_h = malloc(LEN);
    assert_non_null(want_h);
    /* the GPU side gets its elements from b, the host side its own */
    memcpy(want, img, LEN);
    memcpy(want_h, himg, LEN);
    for (size_t i = 0; i < NDESC; i++) {
        bool host = gpu_every > 1 && i % gpu_every == 1;
        size_t off = L[i].addr - (uintptr_t)(host ? p->adram : p->gpu);
        memcpy((host ? want_h : want) + off, p->bdram + off, L[i].len);
    }
    o = notif_opts("read");
    ST(NIXL_SUCCESS, ops->prep_xfer(p->a, NIXL_READ, L, R, NDESC, "B", &o, &req));
    for (int rep = 0; rep < 3; rep++) {
        memcpy(p->gpu, img, LEN);
        memcpy(p->adram, himg, LEN);
        unsigned before = notifs_of(&p->hb, NULL);
        ST(NIXL_SUCCESS, wait_req(p->a, req, ops->post_xfer(p->a, req, &o)));
        assert_memory_equal(p->gpu, want, LEN);
        assert_memory_equal(p->adram, want_h, LEN);
        double end = now_s() + 10;
        while (notifs_of(&p->hb, NULL) == before && now_s() < end)
            usleep(1000);
        assert_int_equal(notifs_of(&p->hb, NULL), before + 1);
        assert_string_equal(p->hb.last, "read");
    }
    ST(NIXL_SUCCESS, ops->release_req(p->a, req));
    free(want);
    free(want_h);
    free(img);
    free(himg);
}

static void test_write_read_late(void **state)
{
    late_copies = true;
    write_read(*state, 0);
}

static void test_write_read_early(void **state)
{
    late_copies = false;
    write_read(*state, 0);
}

static void test_mixed(void **state)
{
    late_copies = true;
    write_read(*state, 3);
}

static void test_refusals(void **state)
{
    pair_t *p = *state;
    nixl_be_req_t *req = NULL;
    /* two GPUs in one request */
    nixl_be_desc_t l[2] = {{(uintptr_t)p->gpu, 64, 0, p->gpu_md},
                           {(uintptr_t)p->gpu1, 64, 1, p->gpu1_md}};
    nixl_be_desc_t r[2] = {{(uintptr_t)p->bdram, 64, 0, p->bdram_rmd},
                           {(uintptr_t)p->bdram + 64, 64, 0, p->bdram_rmd}};
    ST(NIXL_ERR_INVALID_PARAM, ops->prep_xfer(p->a, NIXL_WRITE, l, r, 2, "B", NULL, &req));
    print_message("  two GPUs: %s\n", t_err);
    assert_non_null(strstr(t_err, "GPU 1"));
    assert_non_null(strstr(t_err, "split the list"));
    /* the peer's GPU memory: b loads a's VRAM region and cannot reach it */
    nixl_be_md_t *rgpu = load_region(p->b, "A", p->a, NIXL_VRAM_SEG, p->gpu_md, p->gpu, LEN);
    nixl_be_desc_t bl = {(uintptr_t)p->bdram, 4096, 0, p->bdram_md};
    nixl_be_desc_t br = {(uintptr_t)p->gpu, 4096, 0, rgpu};
    for (int op = 0; op < 2; op++) {
        ST(NIXL_ERR_NOT_SUPPORTED, ops->prep_xfer(p->b, op ? NIXL_READ : NIXL_WRITE, &bl, &br, 1,
                                                  "A", NULL, &req));
        print_message("  remote VRAM: %s\n", t_err);
        assert_non_null(strstr(t_err, "GPU memory of agent 'A'"));
        assert_non_null(strstr(t_err, "DRAM"));
        assert_non_null(strstr(t_err, "UCX"));
    }
    ops->unload_md(p->b, MDS(&rgpu, 1));
    /* registration: a range past its allocation; host memory called VRAM */
    nixl_be_md_t *md = NULL;
    ST(NIXL_ERR_INVALID_PARAM, reg(p->a, NIXL_VRAM_SEG, p->gpu1 + 4096, 1 << 20, &md));
    print_message("  past the allocation: %s\n", t_err);
    assert_non_null(strstr(t_err, "spans"));
    ST(NIXL_ERR_INVALID_PARAM, reg(p->a, NIXL_VRAM_SEG, p->adram, 4096, &md));
    print_message("  host memory as VRAM: %s\n", t_err);
    assert_non_null(strstr(t_err, "not GPU memory"));
}

/* Without GPU services (no driver), VRAM cannot be registered; DRAM can. */
static void test_no_driver(void **state)
{
    (void)state;
    thost_t h;
    thost_init(&h, false);
    nixl_be_engine_t *e = eng_new(&h, "nogpu");
    uint8_t buf[4096];
    nixl_be_md_t *md = NULL;
    ST(NIXL_ERR_NOT_SUPPORTED, reg(e, NIXL_VRAM_SEG, buf, sizeof(buf), &md));
    print_message("  %s\n", t_err);
    assert_non_null(strstr(t_err, "no CUDA driver"));
    ST(NIXL_SUCCESS, reg(e, NIXL_DRAM_SEG, buf, sizeof(buf), &md));
    ops->deregister_mem(e, MDS(&md, 1));
    ops->destroy(e);
    pthread_mutex_destroy(&h.mu);
}

/* The own agent: a GPU batch, with the notification after it. */
static void test_loopback(void **state)
{
    pair_t *p = *state;
    late_copies = true;
    fill(p->gpu, LEN, 7);
    memset(p->adram, 0, LEN);
    nixl_be_desc_t l = {(uintptr_t)p->gpu + 5, 100000, 0, p->gpu_md};
    nixl_be_desc_t r = {(uintptr_t)p->adram + 5, 100000, 0, p->adram_lb};
    nixl_be_req_t *req = NULL;
    nixl_be_xfer_opts_t o = notif_opts("self");
    ST(NIXL_SUCCESS, ops->prep_xfer(p->a, NIXL_WRITE, &l, &r, 1, "A", &o, &req));
    ST(NIXL_SUCCESS, ops->post_xfer(p->a, req, &o));
    assert_memory_equal(p->adram + 5, p->gpu + 5, 100000);
    assert_int_equal(p->adram[4], 0);
    assert_int_equal(p->adram[100005], 0);
    assert_int_equal(notifs_of(&p->ha, NULL), 1);
    ST(NIXL_SUCCESS, ops->release_req(p->a, req));
    /* READ into GPU memory from the own DRAM */
    fill(p->adram, LEN, 8);
    ST(NIXL_SUCCESS, ops->prep_xfer(p->a, NIXL_READ, &l, &r, 1, "A", NULL, &req));
    ST(NIXL_SUCCESS, ops->post_xfer(p->a, req, NULL));
    assert_memory_equal(p->adram + 5, p->gpu + 5, 100000);
    ST(NIXL_SUCCESS, ops->release_req(p->a, req));
}

/* A slow GPU (50 ms a round, three rounds): a cancel lands between rounds; the request then
 * moves everything when posted again; a release in flight stops it and frees it (the teardown
 * then checks that every staging plan is gone, and a sanitizer build that nothing was touched
 * after); a request queued behind another is canceled before it starts. */
static void test_cancel_release(void **state)
{
    pair_t *p = *state;
    late_copies = true;
    size_t step = LEN / 40;
    nixl_be_desc_t l[40], r[40];
    for (size_t i = 0; i < 40; i++) {
        l[i] = (nixl_be_desc_t){(uintptr_t)p->gpu + i * step, step, 0, p->gpu_md};
        r[i] = (nixl_be_desc_t){(uintptr_t)p->bdram + i * step, step, 0, p->bdram_rmd};
    }
    fill(p->gpu, LEN, 11);
    memset(p->bdram, 0, LEN);
    nixl_be_req_t *req = NULL;
    nixl_be_xfer_opts_t o = notif_opts("after");
    ST(NIXL_SUCCESS, ops->prep_xfer(p->a, NIXL_WRITE, l, r, 40, "B", &o, &req));
    atomic_store(&wait_delay_us, 50000);
    unsigned notifs = notifs_of(&p->hb, NULL);
    ST(NIXL_IN_PROG, ops->post_xfer(p->a, req, &o));
    usleep(25000); /* in round 0's GPU copy */
    ST(NIXL_ERR_REPOST_ACTIVE, ops->post_xfer(p->a, req, &o));
    nixl_status_t st;
    double end = now_s() + 10;
    while ((st = ops->cancel_xfer(p->a, req)) == NIXL_IN_PROG && now_s() < end)
        usleep(1000);
    print_message("  cancel: %d (%s)\n", (int)st, st == NIXL_ERR_CANCELED ? t_err : "");
    assert_true(st == NIXL_ERR_CANCELED || st == NIXL_SUCCESS);
    if (st == NIXL_ERR_CANCELED) {
        assert_non_null(strstr(t_err, "canceled"));
        usleep(20000);
        assert_int_equal(notifs_of(&p->hb, NULL), notifs); /* no notification for it */
    }
    /* a repost moves everything */
    atomic_store(&wait_delay_us, 0);
    ST(NIXL_SUCCESS, wait_req(p->a, req, ops->post_xfer(p->a, req, &o)));
    assert_memory_equal(p->bdram, p->gpu, LEN);
    /* a release in flight */
    atomic_store(&wait_delay_us, 50000);
    ST(NIXL_IN_PROG, ops->post_xfer(p->a, req, &o));
    usleep(5000);
    st = ops->release_req(p->a, req);
    end = now_s() + 10;
    while (st != NIXL_SUCCESS && now_s() < end) { /* the core asks again */
        usleep(10000);
        st = ops->release_req(p->a, req);
    }
    ST(NIXL_SUCCESS, st);
    atomic_store(&wait_delay_us, 0);
    /* queued behind another request: canceled before it starts */
    nixl_be_req_t *r1 = NULL, *r2 = NULL;
    ST(NIXL_SUCCESS, ops->prep_xfer(p->a, NIXL_WRITE, l, r, 40, "B", NULL, &r1));
    ST(NIXL_SUCCESS, ops->prep_xfer(p->a, NIXL_WRITE, l, r, 40, "B", NULL, &r2));
    atomic_store(&wait_delay_us, 50000);
    ST(NIXL_IN_PROG, ops->post_xfer(p->a, r1, NULL));
    ST(NIXL_IN_PROG, ops->post_xfer(p->a, r2, NULL));
    st = ops->cancel_xfer(p->a, r2);
    assert_true(st == NIXL_ERR_CANCELED || st == NIXL_IN_PROG);
    ST(NIXL_SUCCESS, wait_req(p->a, r1, NIXL_IN_PROG));
    atomic_store(&wait_delay_us, 0);
    while ((st = ops->cancel_xfer(p->a, r2)) == NIXL_IN_PROG)
        usleep(1000);
    assert_true(st == NIXL_ERR_CANCELED || st == NIXL_SUCCESS);
    ST(NIXL_SUCCESS, ops->release_req(p->a, r1));
    ST(NIXL_SUCCESS, ops->release_req(p->a, r2));
}

/* Not staging, but the plugin alone is what it needs: a peer's string address (the shm
 * provider's "fi_shm://<pid>:<n>:<n>", whose length follows the peer's process id) is taken
 * at any length, with or without its NUL; text that is not printable is refused with the
 * reason. Before, a peer whose pid had one digit more than ours was refused (it-libfabric's
 * shm case failed on pids either side of 10000). */
static void put_conn(uint8_t *out, size_t *len, const uint8_t *hdr, size_t hdr_len,
                     const char *addr, size_t addr_len)
{
    memcpy(out, hdr, hdr_len);
    out[hdr_len] = (uint8_t)addr_len;
    out[hdr_len + 1] = (uint8_t)(addr_len >> 8);
    memcpy(out + hdr_len + 2, addr, addr_len);
    *len = hdr_len + 2 + addr_len;
}

static void test_shm_addresses(void **state)
{
    (void)state;
    thost_t h;
    thost_init(&h, false);
    nixl_param_t p = {"provider", "shm"};
    nixl_be_init_t init = {.struct_size = sizeof(init), .local_agent = "A", .type = "LIBFABRIC",
                           .params = &p, .num_params = 1, .host = &h.host};
    nixl_be_engine_t *a = NULL;
    if (ops->create(&init, &a) != NIXL_SUCCESS) {
        print_message("no shm provider here: %s\n", t_err);
        skip();
    }
    const uint8_t *blob;
    size_t len;
    ST(NIXL_SUCCESS, ops->get_conn_info(a, (const void **)&blob, &len));
    assert_int_equal(blob[5], 1); /* one rail */
    size_t hdr = 8 + blob[6];
    uint8_t conn[512];
    size_t clen;
    static const struct {
        const char *addr;
        size_t len;
        bool ok;
    } cases[] = {
        {"fi_shm://4194303:0:0", 21, true}, /* a 7-digit pid, with its NUL */
        {"fi_shm://42:0:0", 16, true},      /* a 2-digit one */
        {"fi_shm://42:0:0", 15, true},      /* without the NUL */
        {"fi_shm://4\x01:0:0", 16, false},  /* not text */
        {"fi_shm\0//42:0:0", 16, false},    /* a NUL inside */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        put_conn(conn, &clen, blob, hdr, cases[i].addr, cases[i].len);
        char name[16];
        snprintf(name, sizeof(name), "peer%zu", i);
        t_err[0] = '\0';
        nixl_status_t st = ops->load_remote_conn(a, name, conn, clen);
        print_message("%s (%zu bytes): status %d %s\n", cases[i].addr, cases[i].len, (int)st,
                      t_err);
        if (cases[i].ok) {
            ST(NIXL_SUCCESS, st);
            ops->disconnect(a, name);
        } else {
            ST(NIXL_ERR_INVALID_PARAM, st);
            assert_non_null(strstr(t_err, "printable"));
        }
    }
    ops->destroy(a);
}

int main(void)
{
    const char *dir = getenv("NIXL_PLUGIN_DIR");
    char path[4096];
    snprintf(path, sizeof(path), "%s/libplugin_LIBFABRIC.so", dir ? dir : ".");
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        printf("SKIP: %s\n", dlerror());
        return 77;
    }
    nixl_plugin_entry_fn entry = (nixl_plugin_entry_fn)dlsym(h, NIXL_PLUGIN_ENTRY_SYMBOL);
    if (!entry || !entry(NIXL_PLUGIN_ABI_VERSION)) {
        printf("FAIL: %s has no entry point\n", path);
        return 1;
    }
    ops = entry(NIXL_PLUGIN_ABI_VERSION)->ops;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_driver),
        cmocka_unit_test(test_shm_addresses),
        cmocka_unit_test_setup_teardown(test_refusals, pair_setup, pair_teardown),
        cmocka_unit_test_setup_teardown(test_write_read_late, pair_setup, pair_teardown),
        cmocka_unit_test_setup_teardown(test_write_read_early, pair_setup, pair_teardown),
        cmocka_unit_test_setup_teardown(test_mixed, pair_setup, pair_teardown),
        cmocka_unit_test_setup_teardown(test_loopback, pair_setup, pair_teardown),
        cmocka_unit_test_setup_teardown(test_cancel_release, pair_setup, pair_teardown),
    };
    /* The plugin stays loaded to the end (no dlclose): unloading it unloads libfabric, whose
     * providers' allocations, still referenced by its globals until then, LeakSanitizer would
     * report as leaks at exit. */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
