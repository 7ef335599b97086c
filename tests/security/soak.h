/*
 * soak.h - what the soak's driver (soak.c) and its agent processes (soak_agent.c) share: the
 * sizes and bounds, the counters an agent reports, the byte patterns, and the line protocol
 * over their pipes (soak_io.c). soak.c's header describes the whole.
 */
#ifndef NIXL_SOAK_H
#define NIXL_SOAK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MIB ((size_t)1 << 20)
#define MAX_AGENTS 64
#define EXPOSED (4 * MIB)
#define SLOT (4 * MIB)
#define MAX_XFER (4 * MIB)
#define MIN_XFER 4096u
#define MAX_DESCS 64
#define GAP 64u
#define LOCAL_BUF (MAX_XFER + MAX_DESCS * GAP)
#define DEADLINE_US 5000000u /* opt->deadline_us of every post */
#define HANG_MS 10000u       /* a post not ended by then (deadline + 5 s) is a hang */
#define RELEASE_MS 60000u    /* a request UCX still holds after this is a hang */
#define REPORT_MS 30000u     /* an agent silent this long is hung */
#define QUIT_MS 15000u       /* a clean exit takes at most this once the agent reads "quit" */
#define STATS_MS 250u
#define WARM_MS 10000u       /* resident size is compared from here to the end of a life */
#define IDLE_LIMIT_MS 20000u /* an agent alive this long must have moved bytes */

/* ------------------------------------------------------------------------------------------ */
/* Counters: one array, reported as "stats <v0> <v1> ...", summed by the driver                */
/* ------------------------------------------------------------------------------------------ */

enum {
    C_OK,          /* transfers that ended SUCCESS (readbacks included) */
    C_BYTES,       /* bytes they moved */
    C_WRITES,      /* verified WRITE + readback pairs */
    C_READS,       /* verified READs of an exposed area */
    C_ERRS,        /* transfers that ended with an error (any stage) */
    C_CORRUPT,     /* bytes that differed from their pattern after SUCCESS */
    C_NOTIF_SENT,  /* notifications of transfers that succeeded, and gen_notifs */
    C_NOTIF_RECV,  /* notifications received and checked */
    C_NOTIF_STALE, /* from an older generation after a newer one (not an error) */
    C_FETCH_FAIL,  /* metadata fetches that failed (peer dead or restarting) */
    C_RELOADS,     /* peers reloaded after REMOTE_DISCONNECT from create_xfer_req/gen_notif */
    C_UCX,         /* transfers that went through UCX */
    C_MAX_XFER_MS, /* longest post-to-end time (max, not summed) */
    C_MAX_REL_MS,  /* longest release (max): UCX waits for what it cannot cancel */
    C_RSS_KB,      /* VmRSS now (max, not summed) */
    C_HWM_KB,      /* VmHWM (max) */
    C_FDS,         /* open descriptors now (max) */
    C_ST0,         /* errors by status: C_ST0 + (-status), statuses -1..-12 */
    C_COUNT = C_ST0 + 13
};
static inline bool counter_is_max(int i)
{
    return i == C_MAX_XFER_MS || i == C_MAX_REL_MS || i == C_RSS_KB || i == C_HWM_KB || i == C_FDS;
}

/* ------------------------------------------------------------------------------------------ */
/* Patterns                                                                                    */
/* ------------------------------------------------------------------------------------------ */

static inline uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}
static inline uint64_t key_of(uint64_t seed, uint64_t kind, uint64_t agent, uint64_t gen,
                              uint64_t iter)
{
    return mix64(mix64(mix64(mix64(seed ^ kind) ^ agent) ^ gen) ^ iter);
}
static inline uint64_t word_of(uint64_t key, uint64_t j)
{
    return mix64(key ^ (j * 0xd6e8feb86659fd93ull));
}

/* Bytes of `w` that differ from `want`. */
static inline unsigned bad_bytes(uint64_t w, uint64_t want)
{
    uint64_t d = w ^ want;
    unsigned n = 0;
    for (int b = 0; b < 8; b++)
        n += ((d >> (8 * b)) & 0xff) != 0;
    return n;
}

/* ------------------------------------------------------------------------------------------ */
/* Lines over pipes (soak_io.c)                                                                */
/* ------------------------------------------------------------------------------------------ */

typedef struct linebuf {
    char buf[16384];
    size_t n;
} linebuf_t;

/* Read what is there (fd non-blocking). 1 data read, 0 nothing, -1 EOF or error. */
int lb_fill(linebuf_t *lb, int fd);
/* The next complete line (NUL-terminated, into out), or false. */
bool lb_line(linebuf_t *lb, char *out, size_t cap);
/* One line, written whole (lines are below PIPE_BUF, so a pipe takes them atomically). */
bool put_line(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void set_nonblock(int fd);

/* The agent process: its index, generation, the number of agents, the seed and its pipes
 * (commands in, reports out). Returns its exit code. */
int soak_agent_main(int idx, uint64_t gen, int n, uint64_t seed, int cmd_fd, int rep_fd);

#endif
