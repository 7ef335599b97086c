/*
 * bench_telemetry.c - what telemetry costs a transfer: 4 KiB DRAM -> DRAM WRITEs through SHM,
 * post to completion, first loopback (one agent writing to itself: a memcpy, the worst case
 * for any per-request cost), then into a second process (the target this program starts: the
 * SHM WRITE that nixlbench measures), with telemetry off and on (BUFFER exporter into
 * a temporary directory, nobody reading, so the ring also runs full: the drop path is timed
 * too) in the same run, and on with the NOP exporter (per-request timing alone, no events):
 * the difference between the last two is the cost of recording the events. Rounds alternate between the two agents so that drift of the shared
 * machine hits both alike; each figure is the median over the rounds of the mean per transfer.
 *
 *   nixl_bench_telemetry [--rounds N] [--iters N] [--loopback-only]
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

#define TARGET "bench-telem-target"

/* The target process: an SHM agent with a registered 4 KiB buffer (bench_target_serve). */
static int target_main(void)
{
    nixl_agent_config_t cfg;
    nixl_agent_config_init(&cfg);
    cfg.use_listen_thread = true;
    cfg.listen_port = 0;
    cfg.capture_telemetry = false;
    nixl_agent_t *a;
    CHECK(nixl_agent_create(TARGET, &cfg, &a));
    nixl_backend_t *be;
    CHECK(nixl_agent_create_backend(a, "SHM", NULL, 0, &be));
    uint8_t *buf = aligned_alloc(4096, BLOCK);
    if (!buf)
        return 1;
    memset(buf, 0, BLOCK);
    bench_target_serve(a, buf, BLOCK);
    nixl_agent_destroy(a);
    free(buf);
    return 0;
}

/* An agent (telemetry on or off) with a prepared 4 KiB WRITE: to itself when `t` is NULL,
 * else into the target process. */
static void side_init(side_t *s, const char *name, bool telemetry, const bench_target_t *t)
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
    nixl_desc_t d = {.addr = t ? t->addr : (uintptr_t)s->dst, .len = BLOCK};
    if (t) {
        nixl_opt_args_t o;
        nixl_opt_args_init(&o);
        o.ip_addr = "127.0.0.1";
        o.port = t->port;
        CHECK(nixl_agent_fetch_remote_md(s->agent, TARGET, &o));
        nixl_status_t st;
        while ((st = nixl_agent_get_fetch_status(s->agent, TARGET)) == NIXL_IN_PROG)
            usleep(1000);
        CHECK(st);
    }
    CHECK(nixl_agent_create_xfer_req(s->agent, NIXL_WRITE, NIXL_DRAM_SEG, &l, 1, NIXL_DRAM_SEG,
                                     &d, 1, t ? TARGET : name, NULL, &s->req));
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

/* One table: the three agents, rounds rotating between them. */
static void run_case(const char *what, const bench_target_t *t, int rounds, int iters,
                     const char *dir)
{
    side_t sides[3];
    const char *labels[3] = {"telemetry off", "telemetry on, NOP exporter (timing only)",
                             "telemetry on, BUFFER exporter (timing + events)"};
    const char *names[3] = {"bench-telem-off", "bench-telem-nop", "bench-telem-on"};
    side_init(&sides[0], names[0], false, t);
    setenv("NIXL_TELEMETRY_EXPORTER", "NOP", 1);
    side_init(&sides[1], names[1], true, t);
    unsetenv("NIXL_TELEMETRY_EXPORTER");
    side_init(&sides[2], names[2], true, t);
    double *v[3];
    for (int k = 0; k < 3; k++) {
        v[k] = calloc((size_t)rounds, sizeof(double));
        if (!v[k])
            exit(1);
        side_round(&sides[k], iters); /* warm-up */
    }
    for (int r = 0; r < rounds; r++)
        for (int k = 0; k < 3; k++) {
            int which = (k + r) % 3; /* rotate the order */
            v[which][r] = side_round(&sides[which], iters);
        }
    printf("4 KiB SHM WRITE (%s), post to completion, median [min-max] of %d rounds x %d "
           "transfers\n", what, rounds, iters);
    double base = 0;
    for (int k = 0; k < 3; k++) {
        double m = median(v[k], rounds); /* sorts */
        if (k == 0)
            base = m;
        printf("  %-48s %8.1f ns [%.1f-%.1f]  %+6.1f%%\n", labels[k], m, v[k][0],
               v[k][rounds - 1], (m / base - 1) * 100);
        side_fini(&sides[k]);
        free(v[k]);
    }
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, names[2]);
    unlink(path);
}

int main(int argc, char **argv)
{
    int rounds = 41, iters = 20000;
    bool loopback_only = false;
    if (argc == 2 && strcmp(argv[1], "--target") == 0)
        return target_main();
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
            rounds = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--iters") == 0 && i + 1 < argc) {
            iters = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--loopback-only") == 0) {
            loopback_only = true;
        } else {
            fprintf(stderr, "usage: %s [--rounds N] [--iters N] [--loopback-only]\n", argv[0]);
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
    run_case("loopback, one process", NULL, rounds, iters, dir);
    if (!loopback_only) {
        bench_target_t t;
        char *targv[] = {"nixl_bench_telemetry", "--target", NULL};
        if (bench_target_start(targv, &t) != 0) {
            fprintf(stderr, "the target process did not start\n");
            return 1;
        }
        run_case("into a second process", &t, rounds, iters, dir);
        bench_target_stop(&t);
    }
    rmdir(dir);
    return 0;
}
