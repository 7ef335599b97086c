/*
 * two_process.c - two agents in two processes move data through the SHM backend.
 *
 * The program forks: the child is the target, the parent the initiator. Metadata goes through a
 * pipe (until the side channel exists). The initiator WRITEs its buffer into the target's with a
 * notification; the target checks every byte when the notification arrives, refills its buffer
 * and says so; the initiator READs it back and checks every byte. Then both sides time repeated
 * WRITEs and READs and the initiator prints the throughput.
 *
 *   nixl_example_two_process [buffer MiB (default 64)] [iterations (default 20)]
 *
 * Built alone, as docs/getting-started.md shows:
 *   cc -std=c11 two_process.c -o two_process $(pkg-config --cflags --libs nixl)
 */
/* fork, pipe and clock_gettime(CLOCK_MONOTONIC) are POSIX, which strict -std=c11 hides. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nixl.h"

#define CHECK(call)                                                                          \
    do {                                                                                     \
        nixl_status_t st_ = (call);                                                          \
        if (st_ < 0) {                                                                       \
            fprintf(stderr, "%s:%d: %s failed: %s: %s\n", __FILE__, __LINE__, #call,        \
                    nixl_status_str(st_), nixl_last_error());                                \
            exit(1);                                                                         \
        }                                                                                    \
    } while (0)

static void write_all(int fd, const void *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            perror("write");
            exit(1);
        }
        p = (const char *)p + w;
        n -= (size_t)w;
    }
}

static void read_all(int fd, void *p, size_t n)
{
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            fprintf(stderr, "read: the other process went away\n");
            exit(1);
        }
        p = (char *)p + r;
        n -= (size_t)r;
    }
}

/* A message on a pipe: 8-byte length, then the bytes. */
static void send_msg(int fd, const void *p, size_t n)
{
    uint64_t len = n;
    write_all(fd, &len, sizeof(len));
    write_all(fd, p, n);
}

static void *recv_msg(int fd, size_t *n)
{
    uint64_t len;
    read_all(fd, &len, sizeof(len));
    void *p = malloc(len ? len : 1);
    if (!p)
        exit(1);
    read_all(fd, p, len);
    *n = len;
    return p;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed + i * 31 + (i >> 12));
}

static size_t mismatch(const uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (uint8_t)(seed + i * 31 + (i >> 12)))
            return i + 1;
    return 0;
}

/*
 * Notifications seen so far, counted per payload: one get_notifs call may return the
 * notifications of several steps at once, and none may be lost while waiting for another.
 */
#define MAX_TAGS 8
static struct {
    char tag[16];
    int count;
} seen[MAX_TAGS];

static void tally(const char *from, const nixl_notif_list_t *l)
{
    for (size_t i = 0; i < l->count; i++) {
        if (strcmp(l->items[i].agent, from) != 0 || l->items[i].msg_len >= sizeof(seen[0].tag))
            continue;
        for (int t = 0; t < MAX_TAGS; t++) {
            if (!seen[t].tag[0])
                memcpy(seen[t].tag, l->items[i].msg, l->items[i].msg_len);
            if (strlen(seen[t].tag) == l->items[i].msg_len &&
                !memcmp(seen[t].tag, l->items[i].msg, l->items[i].msg_len)) {
                seen[t].count++;
                break;
            }
        }
    }
}

static int *tag_count(const char *tag)
{
    for (int t = 0; t < MAX_TAGS; t++)
        if (!strcmp(seen[t].tag, tag))
            return &seen[t].count;
    return NULL;
}

/* Wait until `count` notifications from `from` with payload `tag` have arrived; consume them. */
static void wait_notifs(nixl_agent_t *agent, const char *from, const char *tag, int count)
{
    double deadline = now_s() + 30;
    for (;;) {
        int *have = tag_count(tag);
        if (have && *have >= count) {
            *have -= count;
            return;
        }
        nixl_notif_list_t *l;
        CHECK(nixl_agent_get_notifs(agent, NULL, &l));
        tally(from, l);
        nixl_free(l);
        if (now_s() > deadline) {
            fprintf(stderr, "%d '%s' notification(s) from %s missing after 30 s\n",
                    count - (have ? *have : 0), tag, from);
            exit(1);
        }
    }
}

static nixl_agent_t *agent_with_shm(const char *name, uint8_t *buf, size_t size)
{
    nixl_agent_t *agent;
    nixl_backend_t *shm;
    CHECK(nixl_agent_create(name, NULL, &agent));
    CHECK(nixl_agent_create_backend(agent, "SHM", NULL, 0, &shm));
    nixl_reg_desc_t reg = {.addr = (uintptr_t)buf, .len = size, .dev_id = 0};
    CHECK(nixl_agent_register_mem(agent, NIXL_DRAM_SEG, &reg, 1, NULL));
    return agent;
}

static int run_target(int in, int out, size_t size, int iters)
{
    uint8_t *buf = aligned_alloc(4096, size);
    if (!buf)
        return 1;
    memset(buf, 0, size);
    nixl_agent_t *agent = agent_with_shm("target", buf, size);

    void *md;
    size_t md_len;
    CHECK(nixl_agent_get_local_md(agent, &md, &md_len));
    send_msg(out, md, md_len);
    uint64_t addr = (uintptr_t)buf;
    send_msg(out, &addr, sizeof(addr));
    nixl_free(md);

    wait_notifs(agent, "initiator", "written", 1);
    size_t bad = mismatch(buf, size, 0x11);
    if (bad) {
        fprintf(stderr, "target: byte %zu differs after the WRITE\n", bad - 1);
        return 1;
    }
    printf("target: all %zu bytes written by the initiator are correct\n", size);
    fill(buf, size, 0x5a);
    char ready = 'R';
    write_all(out, &ready, 1);
    wait_notifs(agent, "initiator", "read", 1);
    /* the timed loops: one notification per iteration, each direction */
    wait_notifs(agent, "initiator", "bench", 2 * iters);
    write_all(out, &ready, 1);
    /* stay registered until the initiator is done with our memory */
    char quit;
    read_all(in, &quit, 1);
    nixl_agent_destroy(agent);
    free(buf);
    return 0;
}

static double timed(nixl_agent_t *agent, nixl_xfer_req_t *req, int iters)
{
    nixl_opt_args_t opt;
    nixl_opt_args_init(&opt);
    opt.has_notif = true;
    opt.notif = "bench";
    opt.notif_len = 5;
    double t0 = now_s();
    for (int i = 0; i < iters; i++) {
        nixl_status_t st = nixl_agent_post_xfer_req(agent, req, &opt);
        while (st == NIXL_IN_PROG)
            st = nixl_agent_get_xfer_status(agent, req);
        CHECK(st);
    }
    return now_s() - t0;
}

static int run_initiator(int in, int out, size_t size, int iters)
{
    uint8_t *buf = aligned_alloc(4096, size);
    if (!buf)
        return 1;
    fill(buf, size, 0x11);
    nixl_agent_t *agent = agent_with_shm("initiator", buf, size);

    size_t md_len, addr_len;
    void *md = recv_msg(in, &md_len);
    uint64_t *taddr = recv_msg(in, &addr_len);
    char *peer;
    CHECK(nixl_agent_load_remote_md(agent, md, md_len, &peer));
    free(md);
    printf("initiator: loaded the metadata of '%s' (%zu bytes)\n", peer, md_len);

    nixl_desc_t local = {(uintptr_t)buf, size, 0}, remote = {(uintptr_t)*taddr, size, 0};
    nixl_opt_args_t opt;
    nixl_opt_args_init(&opt);
    opt.has_notif = true;
    opt.notif = "written";
    opt.notif_len = 7;
    nixl_xfer_req_t *wr, *rd;
    CHECK(nixl_agent_create_xfer_req(agent, NIXL_WRITE, NIXL_DRAM_SEG, &local, 1, NIXL_DRAM_SEG,
                                     &remote, 1, peer, &opt, &wr));
    nixl_status_t st = nixl_agent_post_xfer_req(agent, wr, NULL);
    while (st == NIXL_IN_PROG)
        st = nixl_agent_get_xfer_status(agent, wr);
    CHECK(st);

    char ready;
    read_all(in, &ready, 1);
    opt.notif = "read";
    opt.notif_len = 4;
    CHECK(nixl_agent_create_xfer_req(agent, NIXL_READ, NIXL_DRAM_SEG, &local, 1, NIXL_DRAM_SEG,
                                     &remote, 1, peer, &opt, &rd));
    st = nixl_agent_post_xfer_req(agent, rd, NULL);
    while (st == NIXL_IN_PROG)
        st = nixl_agent_get_xfer_status(agent, rd);
    CHECK(st);
    size_t bad = mismatch(buf, size, 0x5a);
    if (bad) {
        fprintf(stderr, "initiator: byte %zu differs after the READ\n", bad - 1);
        return 1;
    }
    printf("initiator: all %zu bytes read from the target are correct\n", size);

    double tw = timed(agent, wr, iters);
    double tr = timed(agent, rd, iters);
    read_all(in, &ready, 1);
    char quit = 'Q';
    write_all(out, &quit, 1);
    printf("WRITE %d x %zu MiB: %.2f GB/s\n", iters, size >> 20, (double)size * iters / tw / 1e9);
    printf("READ  %d x %zu MiB: %.2f GB/s\n", iters, size >> 20, (double)size * iters / tr / 1e9);

    CHECK(nixl_agent_release_xfer_req(agent, wr));
    CHECK(nixl_agent_release_xfer_req(agent, rd));
    nixl_free(peer);
    free(taddr);
    nixl_agent_destroy(agent);
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 64;
    int iters = argc > 2 ? atoi(argv[2]) : 20;
    if (!mib || iters <= 0) {
        fprintf(stderr, "usage: %s [buffer MiB] [iterations]\n", argv[0]);
        return 2;
    }
    int to_init[2], to_target[2];
    if (pipe(to_init) || pipe(to_target)) {
        perror("pipe");
        return 1;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        close(to_init[0]);
        close(to_target[1]);
        int rc = run_target(to_target[0], to_init[1], mib << 20, iters);
        fflush(stdout);
        _exit(rc);
    }
    close(to_init[1]);
    close(to_target[0]);
    int rc = run_initiator(to_init[0], to_target[1], mib << 20, iters);
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "the target process failed\n");
        rc = 1;
    }
    printf(rc == 0 ? "example: OK\n" : "example: FAILED\n");
    return rc;
}
