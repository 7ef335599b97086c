/*
 * bench_telemetry.c - what telemetry costs a transfer: 4 KiB DRAM -> DRAM WRITEs through SHM
 * (loopback, one process), post to completion, with telemetry off and on (BUFFER exporter into
 * a temporary directory, nobody reading, so the ring also runs full: the drop path is timed
 * too) in the same run, and on with the NOP exporter (per-request timing alone, no events):
 * the difference between the last two is the cost of recording the events. Rounds alternate between the two agents so that drift of the shared
 * machine hits both alike; each figure is the median over the rounds of the mean per transfer.
 *
 *   nixl_bench_telemetry [--rounds N] [--iters N]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"
#include "nixl.h"

#define BLOCK 4096

typedef struct {
    nixl_agent_t *agent;
    nixl_xfer_req_t *req;
    uint8_t *src, *dst;
} side_t;

static void side_init(side_t *s, const char *name, bool telemetry)
{
    nixl_agent_config_t cfg;
    nixl_agent_config_init(&cfg);
    cfg.capture_telemetry = telemetry;
    CHECK(nixl_agent_create(name, &cfg, &s->agent));
    nixl_backend_t *be;
    CHECK(nixl_agent_create_backend(s->agent, "SHM", NULL, 0, &be));
    s->src = aligned_alloc(4096, BLOCK);
    s->dst = aligned_alloc(4096, BLOCK);
    if (!s->src || !s->dst)
        exit(1);
    memset(s->src, 1, BLOCK);
    memset(s->dst, 0, BLOCK);
    nixl_reg_desc_t r[2] = {{.addr = (uintptr_t)s->src, .len = BLOCK},
                            {.addr = (uintptr_t)s->dst, .len = BLOCK}};
    CHECK(nixl_agent_register_mem(s->agent, NIXL_DRAM_SEG, r, 2, NULL));
    nixl_desc_t l = {.addr = (uintptr_t)s->src, .len = BLOCK};
    nixl_desc_t d = {.addr = (uintptr_t)s->dst, .len = BLOCK};
    CHECK(nixl_agent_create_xfer_req(s->agent, NIXL_WRITE, NIXL_DRAM_SEG, &l, 1, NIXL_DRAM_SEG,
                                     &d, 1, name, NULL, &s->req));
}

static double side_round(side_t *s, int iters)
{
    double t0 = now_ns();
    for (int i = 0; i < iters; i++) {
        nixl_status_t st = nixl_agent_post_xfer_req(s->agent, s->req, NULL);
        while (st == NIXL_IN_PROG)
            st = nixl_agent_get_xfer_status(s->agent, s->req);
        CHECK(st);
    }
    return (now_ns() - t0) / iters;
}

static void side_fini(side_t *s)
{
    CHECK(nixl_agent_release_xfer_req(s->agent, s->req));
    nixl_agent_destroy(s->agent);
    free(s->src);
    free(s->dst);
}

int main(int argc, char **argv)
{
    int rounds = 41, iters = 20000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
            rounds = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--iters") == 0 && i + 1 < argc) {
            iters = atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: %s [--rounds N] [--iters N]\n", argv[0]);
            return 2;
        }
    }
    if (rounds < 1 || iters < 1) {
        fprintf(stderr, "--rounds and --iters must be positive\n");
        return 2;
    }
    char dir[] = "/tmp/nixl-bench-telem-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    unsetenv("NIXL_TELEMETRY_ENABLE"); /* the agents' flags decide */
    unsetenv("NIXL_TELEMETRY_EXPORTER");
    setenv("NIXL_TELEMETRY_DIR", dir, 1);
    side_t sides[3];
    const char *labels[3] = {"telemetry off", "telemetry on, NOP exporter (timing only)",
                             "telemetry on, BUFFER exporter (timing + events)"};
    side_init(&sides[0], "bench-telem-off", false);
    setenv("NIXL_TELEMETRY_EXPORTER", "NOP", 1);
    side_init(&sides[1], "bench-telem-nop", true);
    unsetenv("NIXL_TELEMETRY_EXPORTER");
    side_init(&sides[2], "bench-telem-on", true);
    double *t[3];
    for (int k = 0; k < 3; k++) {
        t[k] = calloc((size_t)rounds, sizeof(double));
        if (!t[k])
            return 1;
        side_round(&sides[k], iters); /* warm-up */
    }
    for (int r = 0; r < rounds; r++)
        for (int k = 0; k < 3; k++) {
            int which = (k + r) % 3; /* rotate the order */
            t[which][r] = side_round(&sides[which], iters);
        }
    printf("4 KiB SHM WRITE (loopback), post to completion, median of %d rounds x %d "
           "transfers\n", rounds, iters);
    double base = median(t[0], rounds);
    for (int k = 0; k < 3; k++) {
        double m = k ? median(t[k], rounds) : base;
        printf("%-48s %7.1f ns  %+6.1f%%\n", labels[k], m, (m / base - 1) * 100);
        side_fini(&sides[k]);
        free(t[k]);
    }
    char path[128];
    snprintf(path, sizeof(path), "%s/bench-telem-on", dir);
    unlink(path);
    rmdir(dir);
    return 0;
}
