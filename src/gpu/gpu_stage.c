/*
 * gpu_stage.c - staging through pinned host memory, for memory the GPU cannot reach: a list of
 * copies cut into rounds through two pinned buffers used in turn, each round's GPU part a
 * prepared batch (one launch), the far part left to the caller (a syscall, a network put).
 *
 * Pinned buffers are slow to get (the driver pins every page): they are kept per device for
 * reuse, up to GPU_BOUNCE_KEEP of each size.
 */
#include <stdlib.h>
#include <string.h>

#include "gpu_priv.h"

#define GPU_BOUNCE_KEEP 8u

typedef struct bounce {
    struct bounce *next;
    void *p;
    size_t size;
    int device;
} bounce_t;

static bounce_t *pool;
static unsigned pool_len;
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;

struct nixl_gpu_stage {
    gpu_dev_t *dev;
    bounce_t *buf[2];
    size_t nrounds;
    nixl_gpu_batch_t **batch; /* one per round */
    size_t *first;            /* round k's pieces: pieces[first[k] .. first[k + 1]) */
    nixl_gpu_seg_t *pieces;
};

static bounce_t *bounce_get(gpu_dev_t *d, size_t size, nixl_gpu_err_t *err)
{
    pthread_mutex_lock(&pool_lock);
    for (bounce_t **pp = &pool; *pp; pp = &(*pp)->next)
        if ((*pp)->size == size && (*pp)->device == d->ordinal) {
            bounce_t *b = *pp;
            *pp = b->next;
            pool_len--;
            pthread_mutex_unlock(&pool_lock);
            return b;
        }
    pthread_mutex_unlock(&pool_lock);
    bounce_t *b = calloc(1, sizeof(*b));
    if (!b) {
        gpu_fail(err, NIXL_ERR_UNKNOWN, "out of memory for a staging buffer");
        return NULL;
    }
    cu_ctx_t prev;
    if (gpu_ctx_push(d, &prev, err) != NIXL_SUCCESS) {
        free(b);
        return NULL;
    }
    cu_result_t r = gpu_cu->MemAllocHost(&b->p, size);
    gpu_ctx_pop(prev);
    if (r != CU_SUCCESS) {
        gpu_fail(err, NIXL_ERR_BACKEND, "cannot pin %zu bytes of host memory for staging: %s",
                 size, cu_errstr(r));
        free(b);
        return NULL;
    }
    b->size = size;
    b->device = d->ordinal;
    return b;
}

static void bounce_put(gpu_dev_t *d, bounce_t *b)
{
    if (!b)
        return;
    pthread_mutex_lock(&pool_lock);
    if (pool_len < GPU_BOUNCE_KEEP) {
        b->next = pool;
        pool = b;
        pool_len++;
        b = NULL;
    }
    pthread_mutex_unlock(&pool_lock);
    if (b) {
        cu_ctx_t prev;
        if (gpu_ctx_push(d, &prev, NULL) == NIXL_SUCCESS) {
            gpu_cu->MemFreeHost(b->p);
            gpu_ctx_pop(prev);
        }
        free(b);
    }
}

void gpu_stage_destroy(nixl_gpu_stage_t *st)
{
    if (!st)
        return;
    for (size_t k = 0; st->batch && k < st->nrounds; k++)
        gpu_batch_destroy(st->batch[k]);
    bounce_put(st->dev, st->buf[0]);
    bounce_put(st->dev, st->buf[1]);
    free(st->batch);
    free(st->first);
    free(st->pieces);
    free(st);
}

nixl_status_t gpu_stage_create(int device, bool to_far, const nixl_gpu_seg_t *segs, size_t count,
                               size_t round, unsigned flags, unsigned max_blocks,
                               nixl_gpu_stage_t **out, nixl_gpu_err_t *err)
{
    gpu_dev_t *d = gpu_dev(device, err);
    if (!d)
        return NIXL_ERR_BACKEND;
    if (round == 0)
        return gpu_fail(err, NIXL_ERR_INVALID_PARAM, "staging rounds of 0 bytes");
    uint64_t total = 0;
    size_t npieces = 0;
    for (size_t i = 0; i < count; i++)
        total += segs[i].len;
    size_t nrounds = (size_t)((total + round - 1) / round);
    /* Each element is cut at most once per round boundary it spans. */
    npieces = count + nrounds;
    nixl_gpu_stage_t *st = calloc(1, sizeof(*st));
    nixl_gpu_seg_t *gsegs = malloc((npieces ? npieces : 1) * sizeof(*gsegs));
    if (st) {
        st->dev = d;
        st->batch = calloc(nrounds ? nrounds : 1, sizeof(*st->batch));
        st->first = malloc((nrounds + 1) * sizeof(*st->first));
        st->pieces = malloc((npieces ? npieces : 1) * sizeof(*st->pieces));
    }
    nixl_status_t s = NIXL_SUCCESS;
    if (!st || !gsegs || !st->batch || !st->first || !st->pieces) {
        s = gpu_fail(err, NIXL_ERR_UNKNOWN, "out of memory staging %zu copies", count);
        goto fail;
    }
    st->nrounds = nrounds;
    if (nrounds && (!(st->buf[0] = bounce_get(d, round, err)) ||
                    (nrounds > 1 && !(st->buf[1] = bounce_get(d, round, err))))) {
        s = NIXL_ERR_BACKEND;
        goto fail;
    }
    size_t k = 0, fill = 0, np = 0, round_start = 0;
    st->first[0] = 0;
    for (size_t i = 0; i < count; i++) {
        for (uint64_t off = 0; off < segs[i].len;) {
            uint64_t n = segs[i].len - off;
            if (n > round - fill)
                n = round - fill;
            uint64_t b = (uint64_t)(uintptr_t)st->buf[k % 2]->p + fill;
            if (to_far) { /* GPU side -> buffer, then buffer -> far */
                gsegs[np] = (nixl_gpu_seg_t){b, segs[i].src + off, n};
                st->pieces[np] = (nixl_gpu_seg_t){segs[i].dst + off, b, n};
            } else { /* far -> buffer, then buffer -> GPU side */
                gsegs[np] = (nixl_gpu_seg_t){segs[i].dst + off, b, n};
                st->pieces[np] = (nixl_gpu_seg_t){b, segs[i].src + off, n};
            }
            np++;
            off += n;
            fill += (size_t)n;
            if (fill == round) {
                s = gpu_batch_create(device, gsegs + round_start, np - round_start, flags,
                                     max_blocks, &st->batch[k], err);
                if (s != NIXL_SUCCESS)
                    goto fail;
                st->first[++k] = np;
                round_start = np;
                fill = 0;
            }
        }
    }
    if (fill) {
        s = gpu_batch_create(device, gsegs + round_start, np - round_start, flags, max_blocks,
                             &st->batch[k], err);
        if (s != NIXL_SUCCESS)
            goto fail;
        st->first[++k] = np;
    }
    free(gsegs);
    *out = st;
    return NIXL_SUCCESS;

fail:
    free(gsegs);
    gpu_stage_destroy(st);
    return s;
}

size_t gpu_stage_rounds(const nixl_gpu_stage_t *st)
{
    return st->nrounds;
}

const nixl_gpu_seg_t *gpu_stage_pieces(const nixl_gpu_stage_t *st, size_t k, size_t *n)
{
    *n = st->first[k + 1] - st->first[k];
    return st->pieces + st->first[k];
}

nixl_status_t gpu_stage_post(nixl_gpu_stage_t *st, size_t k, nixl_gpu_err_t *err)
{
    return gpu_batch_post(st->batch[k], err);
}

nixl_status_t gpu_stage_wait(nixl_gpu_stage_t *st, size_t k, nixl_gpu_err_t *err)
{
    return gpu_batch_wait(st->batch[k], err);
}
