/*
 * test_lf_vram.c - GPU memory through the LIBFABRIC backend, on a machine with an NVIDIA GPU.
 *
 * Two agents in this process, each with a LIBFABRIC engine on the tcp provider over loopback
 * (NIXL_LIBFABRIC_PROVIDER overrides it): "gpu" owns GPU memory, "host" owns host memory. No
 * provider here reaches GPU memory, so every transfer below is staged by "gpu" through pinned
 * buffers (plugins/libfabric/lf_stage.c). A list of 1,000 odd-sized descriptors at odd offsets
 * spans three 4 MiB rounds; after each transfer every byte of the destination is compared
 * (the gaps between descriptors are guard bytes that must not change):
 *   - WRITE "gpu" VRAM -> "host" DRAM, posted three times (the DRAM reset in between), each
 *     with its notification to "host" (the ordering of data and notification itself is
 *     checked by test_lf_stage.c, inside the notification callback);
 *   - READ "host" DRAM -> "gpu" VRAM, posted three times (the GPU image reset in between);
 *   - a cancel and a release while a transfer runs (stopped between rounds or finished), then
 *     a repost that moves every byte;
 *   - loopback: "gpu" VRAM -> its own DRAM;
 *   - "host" naming "gpu"'s VRAM as its remote side: refused at prep with the reason.
 * GPU memory of two GPUs in one request and lists mixing host and GPU memory are covered by
 * tests/unit/libfabric/test_lf_stage.c (the public API takes one memory type per side).
 * The driver is opened at run time (gpu_test.c). Exit 77 without a driver, a GPU or the
 * LIBFABRIC plugin.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gpu_test.h"

#define LEN ((size_t)10 << 20) /* three 4 MiB staging rounds */
#define NDESC 1000u

/* Wait for one notification on `a` with payload `msg`; with `dst`, whether it held `want`
 * when the notification was taken (the data arrives before its notification). 1: arrived
 * with the data, 2: arrived without it, 0: none within 10 s. */
static int take_notif(nixl_agent_t *a, const char *msg, const uint8_t *dst, const uint8_t *want)
{
    double deadline = gt_now() + 10;
    while (gt_now() < deadline) {
        nixl_notif_list_t *l = NULL;
        int got = 0;
        if (nixl_agent_get_notifs(a, NULL, &l) == NIXL_SUCCESS && l) {
            for (size_t i = 0; i < l->count && !got; i++)
                if (l->items[i].msg_len == strlen(msg) &&
                    !memcmp(l->items[i].msg, msg, l->items[i].msg_len))
                    got = !dst || !memcmp(dst, want, LEN) ? 1 : 2;
            nixl_free(l);
        }
        if (got)
            return got;
        nanosleep(&(struct timespec){0, 200000}, NULL);
    }
    return 0;
}

static nixl_status_t load_peer(nixl_agent_t *into, nixl_agent_t *from)
{
    void *blob = NULL;
    size_t len = 0;
    nixl_status_t st = nixl_agent_get_local_md(from, &blob, &len);
    if (st == NIXL_SUCCESS)
        st = nixl_agent_load_remote_md(into, blob, len, NULL);
    nixl_free(blob);
    return st;
}

static nixl_agent_t *lf_agent(const char *name, nixl_status_t *st)
{
    nixl_agent_t *a = NULL;
    if (nixl_agent_create(name, NULL, &a) != NIXL_SUCCESS) {
        *st = NIXL_ERR_UNKNOWN;
        return NULL;
    }
    const char *prov = getenv("NIXL_LIBFABRIC_PROVIDER");
    nixl_param_t p = {"provider", prov && *prov ? prov : "tcp;ofi_rxm"};
    nixl_backend_t *be;
    *st = nixl_agent_create_backend(a, "LIBFABRIC", &p, 1, &be);
    return a;
}

/* A request of the NDESC elements l <-> r whose posts notify `peer` with `msg` (NULL: none). */
static nixl_status_t make_req(nixl_agent_t *a, nixl_xfer_op_t op, nixl_mem_t lt,
                              const nixl_desc_t *l, nixl_mem_t rt, const nixl_desc_t *r,
                              const char *peer, const char *msg, nixl_xfer_req_t **req)
{
    nixl_opt_args_t opt;
    nixl_opt_args_init(&opt);
    opt.has_notif = msg != NULL;
    opt.notif = msg;
    opt.notif_len = msg ? strlen(msg) : 0;
    return nixl_agent_create_xfer_req(a, op, lt, l, NDESC, rt, r, NDESC, peer, &opt, req);
}

static nixl_status_t run(nixl_agent_t *a, nixl_xfer_req_t *req, const nixl_opt_args_t *opt)
{
    return gt_wait(a, req, nixl_agent_post_xfer_req(a, req, opt));
}

int main(void)
{
    int rc = gt_init();
    if (rc)
        return rc;
    setenv("NIXL_AUTO_SHM", "0", 1); /* LIBFABRIC alone, not SHM beside it */
    nixl_status_t st;
    nixl_agent_t *g = lf_agent("gpu", &st);
    if (st == NIXL_ERR_NOT_FOUND) {
        printf("SKIP: no LIBFABRIC plugin (%s)\n", nixl_last_error());
        nixl_agent_destroy(g);
        return GT_SKIP;
    }
    if (!g || st != NIXL_SUCCESS) {
        printf("FAIL: LIBFABRIC backend: %s: %s\n", nixl_status_str(st), nixl_last_error());
        return 1;
    }
    nixl_agent_t *h = lf_agent("host", &st);
    if (!h || st != NIXL_SUCCESS) {
        printf("FAIL: LIBFABRIC backend: %s: %s\n", nixl_status_str(st), nixl_last_error());
        return 1;
    }
    uint8_t *hbuf = malloc(LEN), *gdram = malloc(LEN), *img = malloc(LEN), *want = malloc(LEN),
            *got = malloc(LEN);
    if (!hbuf || !gdram || !img || !want || !got) {
        printf("FAIL: out of memory\n");
        return 1;
    }
    uint64_t gpu = gt_alloc(LEN);
    nixl_reg_desc_t vr = {.addr = (uintptr_t)gpu, .len = LEN, .dev_id = 0};
    nixl_reg_desc_t gr = {.addr = (uintptr_t)gdram, .len = LEN};
    nixl_reg_desc_t hr = {.addr = (uintptr_t)hbuf, .len = LEN};
    st = nixl_agent_register_mem(g, NIXL_VRAM_SEG, &vr, 1, NULL);
    GT_CHECK(st == NIXL_SUCCESS, "register VRAM with LIBFABRIC: %s", nixl_status_str(st));
    st = nixl_agent_register_mem(g, NIXL_DRAM_SEG, &gr, 1, NULL);
    GT_CHECK(st == NIXL_SUCCESS, "register DRAM of 'gpu': %s", nixl_status_str(st));
    st = nixl_agent_register_mem(h, NIXL_DRAM_SEG, &hr, 1, NULL);
    GT_CHECK(st == NIXL_SUCCESS, "register DRAM of 'host': %s", nixl_status_str(st));
    st = load_peer(g, h);
    GT_CHECK(st == NIXL_SUCCESS, "'gpu' loads 'host': %s", nixl_status_str(st));
    st = load_peer(h, g);
    GT_CHECK(st == NIXL_SUCCESS, "'host' loads 'gpu' (its VRAM region included): %s",
             nixl_status_str(st));
    if (gt_failures)
        goto out;

    static nixl_desc_t l[NDESC], r[NDESC];
    nixl_xfer_req_t *req = NULL;

    /* WRITE: "gpu" VRAM (pattern 1) -> "host" DRAM (pattern 9 before) */
    gt_fill(img, LEN, 1);
    gt_htod(gpu, img, LEN);
    gt_fill(hbuf, LEN, 9);
    gt_expect(want, hbuf, img, LEN, NDESC);
    gt_pieces(l, r, (uintptr_t)gpu, (uintptr_t)hbuf, LEN, NDESC);
    st = make_req(g, NIXL_WRITE, NIXL_VRAM_SEG, l, NIXL_DRAM_SEG, r, "host", "lf-vram-w", &req);
    GT_CHECK(st == NIXL_SUCCESS, "WRITE VRAM -> DRAM: prep: %s", nixl_status_str(st));
    for (int rep = 0; st == NIXL_SUCCESS && rep < 3; rep++) {
        gt_fill(hbuf, LEN, 9); /* each post writes over the old bytes */
        st = run(g, req, NULL);
        GT_CHECK(st == NIXL_SUCCESS, "WRITE VRAM -> DRAM, post %d: %s", rep, nixl_status_str(st));
        GT_CHECK(memcmp(hbuf, want, LEN) == 0, "WRITE VRAM -> DRAM, post %d: the DRAM is not as "
                 "expected", rep);
        int n = take_notif(h, "lf-vram-w", hbuf, want);
        GT_CHECK(n == 1, "WRITE VRAM -> DRAM, post %d: %s", rep,
                 n ? "the notification came before the data" : "no notification");
    }
    if (req)
        GT_CHECK(nixl_agent_release_xfer_req(g, req) == NIXL_SUCCESS, "release: %s",
                 nixl_last_error());
    req = NULL;

    /* READ: "gpu" VRAM (pattern 3 before) <- "host" DRAM (pattern 2) */
    gt_fill(hbuf, LEN, 2);
    gt_fill(img, LEN, 3);
    gt_expect(want, img, hbuf, LEN, NDESC);
    st = make_req(g, NIXL_READ, NIXL_VRAM_SEG, l, NIXL_DRAM_SEG, r, "host", "lf-vram-r", &req);
    GT_CHECK(st == NIXL_SUCCESS, "READ VRAM <- DRAM: prep: %s", nixl_status_str(st));
    for (int rep = 0; st == NIXL_SUCCESS && rep < 3; rep++) {
        gt_htod(gpu, img, LEN);
        st = run(g, req, NULL);
        GT_CHECK(st == NIXL_SUCCESS, "READ VRAM <- DRAM, post %d: %s", rep, nixl_status_str(st));
        gt_dtoh(got, gpu, LEN);
        GT_CHECK(memcmp(got, want, LEN) == 0, "READ VRAM <- DRAM, post %d: the GPU's bytes are "
                 "not as expected", rep);
        GT_CHECK(take_notif(h, "lf-vram-r", NULL, NULL) == 1,
                 "READ VRAM <- DRAM, post %d: no notification", rep);
    }

    /* Cancel while it runs (it stops between rounds, or it had finished), then a repost. */
    if (st == NIXL_SUCCESS) {
        gt_htod(gpu, img, LEN);
        st = nixl_agent_post_xfer_req(g, req, NULL);
        GT_CHECK(st == NIXL_IN_PROG || st == NIXL_SUCCESS, "READ post: %s", nixl_status_str(st));
        nixl_status_t c = nixl_agent_cancel_xfer_req(g, req);
        printf("cancel in flight: %s (%s)\n", nixl_status_str(c),
               c == NIXL_SUCCESS ? "it had finished" : nixl_last_error());
        GT_CHECK(c == NIXL_ERR_CANCELED || c == NIXL_SUCCESS, "cancel: %s: %s",
                 nixl_status_str(c), nixl_last_error());
        st = run(g, req, NULL);
        gt_dtoh(got, gpu, LEN);
        GT_CHECK(st == NIXL_SUCCESS && memcmp(got, want, LEN) == 0,
                 "the repost after a cancel: %s, bytes %s", nixl_status_str(st),
                 memcmp(got, want, LEN) ? "wrong" : "right");
        take_notif(h, "lf-vram-r", NULL, NULL);
        /* A release while it runs: stopped, then freed (asked again as the core would). */
        st = nixl_agent_post_xfer_req(g, req, NULL);
        nixl_status_t rs = nixl_agent_release_xfer_req(g, req);
        for (int k = 0; rs != NIXL_SUCCESS && k < 100; k++) {
            nanosleep(&(struct timespec){0, 10000000}, NULL);
            rs = nixl_agent_release_xfer_req(g, req);
        }
        GT_CHECK(rs == NIXL_SUCCESS, "release in flight: %s", nixl_last_error());
        req = NULL;
        st = NIXL_SUCCESS;
    }
    if (req)
        nixl_agent_release_xfer_req(g, req);
    req = NULL;

    /* Loopback: "gpu" VRAM (pattern 4) -> its own DRAM (pattern 5 before) */
    gt_fill(img, LEN, 4);
    gt_htod(gpu, img, LEN);
    gt_fill(gdram, LEN, 5);
    gt_expect(want, gdram, img, LEN, NDESC);
    gt_pieces(l, r, (uintptr_t)gpu, (uintptr_t)gdram, LEN, NDESC);
    st = make_req(g, NIXL_WRITE, NIXL_VRAM_SEG, l, NIXL_DRAM_SEG, r, "gpu", "lf-vram-self", &req);
    GT_CHECK(st == NIXL_SUCCESS, "loopback VRAM -> DRAM: prep: %s", nixl_status_str(st));
    if (st == NIXL_SUCCESS) {
        st = run(g, req, NULL);
        GT_CHECK(st == NIXL_SUCCESS, "loopback VRAM -> DRAM: %s", nixl_status_str(st));
        GT_CHECK(memcmp(gdram, want, LEN) == 0, "loopback VRAM -> DRAM: wrong bytes");
        GT_CHECK(take_notif(g, "lf-vram-self", NULL, NULL) == 1, "loopback: no notification");
        nixl_agent_release_xfer_req(g, req);
    }
    req = NULL;

    /* "host" names the VRAM of "gpu" as its remote side: refused at prep, with the reason. */
    gt_pieces(l, r, (uintptr_t)hbuf, (uintptr_t)gpu, LEN, NDESC);
    st = make_req(h, NIXL_WRITE, NIXL_DRAM_SEG, l, NIXL_VRAM_SEG, r, "gpu", NULL, &req);
    GT_CHECK(st == NIXL_ERR_NOT_SUPPORTED && strstr(nixl_last_error(), "cannot reach"),
             "DRAM -> remote VRAM: %s (refused with the reason expected): %s",
             nixl_status_str(st), nixl_last_error());
    if (st == NIXL_SUCCESS)
        nixl_agent_release_xfer_req(h, req);
    else
        printf("remote VRAM refused: %s\n", nixl_last_error());

out:
    printf("%s: %d failure(s)\n", "test_lf_vram", gt_failures);
    nixl_agent_destroy(h);
    nixl_agent_destroy(g);
    gt_free(gpu);
    free(hbuf);
    free(gdram);
    free(img);
    free(want);
    free(got);
    return gt_failures ? 1 : 0;
}
