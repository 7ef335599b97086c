/*
 * test_ucx_vram.c - GPU memory through the UCX backend, on a machine with an NVIDIA GPU.
 *
 * The CUDA driver (libcuda.so.1) is opened at run time (gpu_test.c), as the library itself
 * would: no CUDA header or library is needed to build this test. With a GPU and a UCX built with CUDA
 * support, a VRAM region is registered and moved to and from DRAM through the agent's own
 * UCX endpoint (loopback), both directions verified byte for byte with the driver's copies.
 * With a UCX that lacks CUDA support, registering VRAM must fail with a message that says so.
 * Exit 77 (skip) without a driver, a GPU or the UCX plugin.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_test.h"

#define LEN (4u << 20)

static int failures;
#define CHECK(cond, ...)                                                                     \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                 \
            fprintf(stderr, __VA_ARGS__);                                                    \
            fprintf(stderr, "\n");                                                           \
            failures++;                                                                      \
            goto out;                                                                        \
        }                                                                                    \
    } while (0)
#define CHECK_ST(call)                                                                       \
    do {                                                                                     \
        nixl_status_t st_ = (call);                                                          \
        CHECK(st_ == NIXL_SUCCESS, "%s: %s: %s", #call, nixl_status_str(st_),              \
              nixl_last_error());                                                            \
    } while (0)

static void fill(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 131 + seed + (i >> 12));
}

/* One loopback transfer of the whole region; waits for completion. */
static nixl_status_t move(nixl_agent_t *a, nixl_xfer_op_t op, uint8_t *host, uint64_t gpu)
{
    nixl_desc_t l = {(uintptr_t)host, LEN, 0}, r = {(uintptr_t)gpu, LEN, 0};
    nixl_xfer_req_t *req;
    nixl_status_t st = nixl_agent_create_xfer_req(a, op, NIXL_DRAM_SEG, &l, 1, NIXL_VRAM_SEG,
                                                  &r, 1, nixl_agent_name(a), NULL, &req);
    if (st != NIXL_SUCCESS)
        return st;
    st = nixl_agent_post_xfer_req(a, req, NULL);
    while (st == NIXL_IN_PROG)
        st = nixl_agent_get_xfer_status(a, req);
    nixl_status_t rst = nixl_agent_release_xfer_req(a, req);
    return st != NIXL_SUCCESS ? st : rst;
}

int main(void)
{
    int rc = gt_init();
    if (rc)
        return rc;
    nixl_agent_t *a = NULL;
    uint64_t gpu = 0;
    uint8_t *host = malloc(LEN), *check = malloc(LEN);
    if (!host || !check || nixl_agent_create("gpu", NULL, &a) != NIXL_SUCCESS) {
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
    CHECK_ST(st);
    gpu = gt_alloc(LEN);
    fill(host, LEN, 1);
    gt_htod(gpu, host, LEN);

    nixl_reg_desc_t vr = {.addr = (uintptr_t)gpu, .len = LEN, .dev_id = 0};
    st = nixl_agent_register_mem(a, NIXL_VRAM_SEG, &vr, 1, NULL);
    if (st != NIXL_SUCCESS) {
        /* Allowed only as the documented refusal of a UCX without CUDA support. */
        CHECK(strstr(nixl_last_error(), "CUDA"), "register VRAM: %s: %s", nixl_status_str(st),
              nixl_last_error());
        printf("ok: this UCX has no CUDA support and says so: %s\n", nixl_last_error());
        goto out;
    }
    nixl_reg_desc_t hr = {.addr = (uintptr_t)host, .len = LEN};
    CHECK_ST(nixl_agent_register_mem(a, NIXL_DRAM_SEG, &hr, 1, NULL));

    /* READ: VRAM (pattern 1) -> DRAM */
    memset(host, 0, LEN);
    CHECK_ST(move(a, NIXL_READ, host, gpu));
    fill(check, LEN, 1);
    CHECK(memcmp(host, check, LEN) == 0, "READ from VRAM: DRAM differs from the GPU's bytes");

    /* WRITE: DRAM (pattern 2) -> VRAM, checked with the driver's own copy */
    fill(host, LEN, 2);
    CHECK_ST(move(a, NIXL_WRITE, host, gpu));
    memset(check, 0, LEN);
    gt_dtoh(check, gpu, LEN);
    CHECK(memcmp(host, check, LEN) == 0, "WRITE to VRAM: the GPU's bytes differ");
    CHECK_ST(nixl_agent_deregister_mem(a, NIXL_DRAM_SEG, &hr, 1, NULL));
    CHECK_ST(nixl_agent_deregister_mem(a, NIXL_VRAM_SEG, &vr, 1, NULL));
    printf("ok: %u bytes VRAM -> DRAM and DRAM -> VRAM through UCX, verified\n", LEN);
out:
    nixl_agent_destroy(a);
    if (gpu)
        gt_free(gpu);
    free(host);
    free(check);
    return failures ? 1 : 0;
}
