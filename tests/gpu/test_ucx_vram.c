/*
 * test_ucx_vram.c - GPU memory through the UCX backend, on a machine with an NVIDIA GPU.
 *
 * Loopback through the agent's own UCX endpoint, a list of odd-sized descriptors spanning
 * several staging rounds, every byte of the destination checked (guard bytes included):
 *   - local VRAM -> DRAM (WRITE) and DRAM -> local VRAM (READ): with a UCX without CUDA support
 *     these go through pinned buffers (ucx_stage.c); with CUDA support, UCX moves them itself;
 *   - DRAM -> VRAM as the remote side: works with CUDA support; without it UCX cannot reach
 *     the region and the request is refused with a reason that says what to do.
 * The driver is opened at run time (gpu_test.c). Exit 77 without a driver, a GPU or the UCX
 * plugin.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_test.h"

#define LEN (10u << 20) /* three 4 MiB staging rounds */
#define NDESC 1000u

static nixl_status_t move(nixl_agent_t *a, nixl_xfer_op_t op, nixl_mem_t lt, uintptr_t la,
                          nixl_mem_t rt, uintptr_t ra)
{
    static nixl_desc_t l[NDESC], r[NDESC];
    gt_pieces(l, r, la, ra, LEN, NDESC);
    nixl_opt_args_t opt;
    nixl_opt_args_init(&opt);
    opt.has_notif = true;
    opt.notif = "staged";
    opt.notif_len = 6;
    nixl_xfer_req_t *req;
    nixl_status_t st = nixl_agent_create_xfer_req(a, op, lt, l, NDESC, rt, r, NDESC,
                                                  nixl_agent_name(a), &opt, &req);
    if (st != NIXL_SUCCESS)
        return st;
    for (int rep = 0; rep < 2 && st == NIXL_SUCCESS; rep++) /* a prepared request reposts */
        st = gt_wait(a, req, nixl_agent_post_xfer_req(a, req, NULL));
    nixl_status_t rst = nixl_agent_release_xfer_req(a, req);
    return st != NIXL_SUCCESS ? st : rst;
}

static bool got_notif(nixl_agent_t *a)
{
    double deadline = gt_now() + 10;
    while (gt_now() < deadline) {
        nixl_notif_list_t *l = NULL;
        bool hit = false;
        if (nixl_agent_get_notifs(a, NULL, &l) == NIXL_SUCCESS && l) {
            hit = l->count > 0;
            nixl_free(l);
        }
        if (hit)
            return true;
    }
    return false;
}

int main(void)
{
    int rc = gt_init();
    if (rc)
        return rc;
    nixl_agent_t *a = NULL;
    uint8_t *host = malloc(LEN), *img = malloc(LEN), *want = malloc(LEN), *got = malloc(LEN);
    if (!host || !img || !want || !got || nixl_agent_create("gpu", NULL, &a) != NIXL_SUCCESS) {
        printf("FAIL: setup: %s\n", nixl_last_error());
        return 1;
    }
    nixl_backend_t *be;
    nixl_status_t st = nixl_agent_create_backend(a, "UCX", NULL, 0, &be);
    if (st == NIXL_ERR_NOT_FOUND) {
        printf("SKIP: no UCX plugin (%s)\n", nixl_last_error());
        nixl_agent_destroy(a);
        return GT_SKIP;
    }
    GT_CHECK(st == NIXL_SUCCESS, "UCX backend: %s", nixl_status_str(st));
    uint64_t gpu = gt_alloc(LEN);
    nixl_reg_desc_t vr = {.addr = (uintptr_t)gpu, .len = LEN, .dev_id = 0};
    nixl_reg_desc_t hr = {.addr = (uintptr_t)host, .len = LEN};
    st = nixl_agent_register_mem(a, NIXL_VRAM_SEG, &vr, 1, NULL);
    GT_CHECK(st == NIXL_SUCCESS, "register VRAM with UCX: %s", nixl_status_str(st));
    st = nixl_agent_register_mem(a, NIXL_DRAM_SEG, &hr, 1, NULL);
    GT_CHECK(st == NIXL_SUCCESS, "register DRAM with UCX: %s", nixl_status_str(st));

    /* WRITE: local VRAM (pattern 1) -> DRAM (pattern 9 before) */
    gt_fill(img, LEN, 1);
    gt_htod(gpu, img, LEN);
    gt_fill(host, LEN, 9);
    gt_expect(want, host, img, LEN, NDESC);
    st = move(a, NIXL_WRITE, NIXL_VRAM_SEG, (uintptr_t)gpu, NIXL_DRAM_SEG, (uintptr_t)host);
    GT_CHECK(st == NIXL_SUCCESS, "WRITE VRAM -> DRAM: %s", nixl_status_str(st));
    GT_CHECK(memcmp(host, want, LEN) == 0, "WRITE VRAM -> DRAM: the DRAM is not as expected");
    GT_CHECK(got_notif(a), "WRITE VRAM -> DRAM: no notification");

    /* READ: local VRAM (pattern 3 before) <- DRAM (pattern 2) */
    gt_fill(host, LEN, 2);
    gt_fill(img, LEN, 3);
    gt_htod(gpu, img, LEN);
    gt_expect(want, img, host, LEN, NDESC);
    st = move(a, NIXL_READ, NIXL_VRAM_SEG, (uintptr_t)gpu, NIXL_DRAM_SEG, (uintptr_t)host);
    GT_CHECK(st == NIXL_SUCCESS, "READ VRAM <- DRAM: %s", nixl_status_str(st));
    gt_dtoh(got, gpu, LEN);
    GT_CHECK(memcmp(got, want, LEN) == 0, "READ VRAM <- DRAM: the GPU's bytes are not as expected");

    /* VRAM as the remote side */
    st = move(a, NIXL_WRITE, NIXL_DRAM_SEG, (uintptr_t)host, NIXL_VRAM_SEG, (uintptr_t)gpu);
    if (st != NIXL_SUCCESS)
        GT_CHECK(st == NIXL_ERR_NOT_SUPPORTED && strstr(nixl_last_error(), "cannot reach"),
                 "DRAM -> remote VRAM: refused without the reason: %s", nixl_status_str(st));
    else
        printf("this UCX has CUDA support: VRAM is reachable as a remote side\n");

    printf("%s: %d failure(s)\n", "test_ucx_vram", gt_failures);
    nixl_agent_destroy(a);
    gt_free(gpu);
    free(host);
    free(img);
    free(want);
    free(got);
    return gt_failures ? 1 : 0;
}
