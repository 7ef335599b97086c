/*
 * telem_writer.c - an agent that moves known bytes, for the telemetry ring tests
 * (test_telemetry_tool.py): it registers two 4 KiB buffers, does N1 loopback SHM WRITEs of
 * 4 KiB (DELAY_US apart), prints "paused" and sleeps PAUSE_MS (when not 0), does N2 more, and ends (destroying the agent
 * flushes its events). Telemetry comes from the NIXL_TELEMETRY_* variables.
 *
 *   telem_writer NAME N1 PAUSE_MS N2 DELAY_US
 *
 * TELEM_WRITER_ERRORS=k first makes k requests to an unknown agent (NIXL_ERR_NOT_FOUND).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nixl.h"

#define BLOCK 4096

static void check(nixl_status_t st, const char *what)
{
    if (st < 0) {
        fprintf(stderr, "telem_writer: %s: %s: %s\n", what, nixl_status_str(st),
                nixl_last_error());
        exit(1);
    }
}

static void sleep_us(long us)
{
    struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static void writes(nixl_agent_t *a, nixl_xfer_req_t *r, long n, long delay_us)
{
    for (long i = 0; i < n; i++) {
        nixl_status_t st = nixl_agent_post_xfer_req(a, r, NULL);
        while (st == NIXL_IN_PROG)
            st = nixl_agent_get_xfer_status(a, r);
        check(st, "post");
        if (delay_us)
            sleep_us(delay_us);
    }
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s NAME N1 PAUSE_MS N2 DELAY_US\n", argv[0]);
        return 2;
    }
    const char *name = argv[1];
    long n1 = atol(argv[2]), pause_ms = atol(argv[3]), n2 = atol(argv[4]);
    long delay_us = atol(argv[5]);
    nixl_agent_t *a;
    check(nixl_agent_create(name, NULL, &a), "agent_create");
    nixl_backend_t *be;
    check(nixl_agent_create_backend(a, "SHM", NULL, 0, &be), "create_backend");
    static uint8_t src[BLOCK] __attribute__((aligned(4096))), dst[BLOCK]
        __attribute__((aligned(4096)));
    memset(src, 7, sizeof(src));
    nixl_reg_desc_t reg[2] = {{.addr = (uintptr_t)src, .len = BLOCK},
                              {.addr = (uintptr_t)dst, .len = BLOCK}};
    check(nixl_agent_register_mem(a, NIXL_DRAM_SEG, reg, 2, NULL), "register_mem");
    nixl_desc_t l = {.addr = (uintptr_t)src, .len = BLOCK};
    nixl_desc_t d = {.addr = (uintptr_t)dst, .len = BLOCK};
    nixl_xfer_req_t *r;
    check(nixl_agent_create_xfer_req(a, NIXL_WRITE, NIXL_DRAM_SEG, &l, 1, NIXL_DRAM_SEG, &d, 1,
                                     name, NULL, &r),
          "create_xfer_req");
    /* TELEM_WRITER_ERRORS=k: k requests to an agent nobody loaded (NIXL_ERR_NOT_FOUND) */
    const char *errs = getenv("TELEM_WRITER_ERRORS");
    for (long i = 0, k = errs ? atol(errs) : 0; i < k; i++) {
        nixl_xfer_req_t *bad = NULL;
        if (nixl_agent_create_xfer_req(a, NIXL_WRITE, NIXL_DRAM_SEG, &l, 1, NIXL_DRAM_SEG, &d,
                                       1, "nobody", NULL, &bad) != NIXL_ERR_NOT_FOUND) {
            fprintf(stderr, "telem_writer: a request to an unknown agent did not fail\n");
            return 1;
        }
    }
    writes(a, r, n1, delay_us);
    if (pause_ms) {
        printf("paused\n"); /* the test reads the ring now */
        fflush(stdout);
    }
    sleep_us(pause_ms * 1000);
    writes(a, r, n2, delay_us);
    check(nixl_agent_release_xfer_req(a, r), "release");
    nixl_agent_destroy(a);
    if (memcmp(src, dst, BLOCK) != 0 && n1 + n2 > 0) {
        fprintf(stderr, "telem_writer: the bytes did not arrive\n");
        return 1;
    }
    return 0;
}
