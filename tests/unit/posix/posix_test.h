/*
 * posix_test.h - helpers of the POSIX backend tests: an agent whose only engine is POSIX on a
 * chosen I/O engine, a private temporary directory, and loopback transfers between DRAM
 * buffers and file offsets. Only the public API is used, plus agent_test.h of the core tests.
 */
#ifndef NIXL_TEST_POSIX_TEST_H
#define NIXL_TEST_POSIX_TEST_H

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent_test.h"

typedef enum { P_AUTO, P_URING, P_AIO, P_POOL } p_engine_t;

static const char *const p_engine_key[] = {NULL, "use_uring", "use_aio", "use_posix_aio"};

/* An agent named "self" with one POSIX engine (extra params may be NULL). */
static inline nixl_agent_t *p_agent(p_engine_t e, const nixl_param_t *extra, size_t nextra,
                                    nixl_backend_t **out_be)
{
    nixl_param_t params[8];
    size_t n = 0;
    if (p_engine_key[e])
        params[n++] = (nixl_param_t){p_engine_key[e], "true"};
    for (size_t i = 0; i < nextra && n < 8; i++)
        params[n++] = extra[i];
    nixl_agent_t *a = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create("self", NULL, &a));
    nixl_backend_t *be = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create_backend(a, "POSIX", params, n, &be));
    if (out_be)
        *out_be = be;
    return a;
}

/* The test program's directory: made by p_setup (a cmocka group setup), removed with its
 * files by p_teardown. */
static char *p_dir;

/* A fresh directory under /tmp (the caller removes it with p_rmdir). */
static inline char *p_mkdtemp(void)
{
    char *d = strdup("/tmp/nixl-posix-test-XXXXXX");
    assert_non_null(d);
    assert_non_null(mkdtemp(d));
    return d;
}

static inline void p_rmdir(char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[512];
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(dir);
    free(dir);
}

static inline int p_open(const char *dir, const char *name, int flags)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, flags | O_CREAT | O_RDWR | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    return fd;
}

/* Register the whole file `fd` (fd mode). */
static inline void p_reg_fd(nixl_agent_t *a, int fd)
{
    nixl_reg_desc_t d = {.addr = 0, .len = 0, .dev_id = (uint64_t)fd};
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_register_mem(a, NIXL_FILE_SEG, &d, 1, NULL));
}

static inline void p_dereg_fd(nixl_agent_t *a, int fd)
{
    nixl_reg_desc_t d = {.addr = 0, .len = 0, .dev_id = (uint64_t)fd};
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_deregister_mem(a, NIXL_FILE_SEG, &d, 1, NULL));
}

/* A loopback request: n blocks of `bs` bytes, buffer block i <-> file offset i * bs. */
static inline nixl_xfer_req_t *p_req(nixl_agent_t *a, nixl_xfer_op_t op, char *buf, size_t n,
                                     size_t bs, uint64_t dev)
{
    nixl_desc_t *l = calloc(n, sizeof(*l)), *r = calloc(n, sizeof(*r));
    assert_non_null(l);
    assert_non_null(r);
    for (size_t i = 0; i < n; i++) {
        l[i] = (nixl_desc_t){(uintptr_t)(buf + i * bs), bs, 0};
        r[i] = (nixl_desc_t){(uintptr_t)(i * bs), bs, dev};
    }
    nixl_xfer_req_t *req = NULL;
    nixl_opt_args_t opt;
    nixl_opt_args_init(&opt);
    opt.skip_desc_merge = true; /* keep the descriptors: the test is about many of them */
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create_xfer_req(a, op, NIXL_DRAM_SEG, l, n, NIXL_FILE_SEG,
                                                       r, n, "self", &opt, &req));
    free(l);
    free(r);
    return req;
}

/* Open descriptors of this process. */
static inline int p_count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    assert_non_null(d);
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static inline int p_setup(void **state)
{
    (void)state;
    p_dir = p_mkdtemp();
    return 0;
}

static inline int p_teardown(void **state)
{
    (void)state;
    p_rmdir(p_dir);
    return 0;
}

/* One agent, one registered buffer of n x bs bytes, one registered file (fd mode) and a WRITE
 * and a READ request between them (buffer block i <-> file offset i * bs). */
typedef struct p_rig {
    nixl_agent_t *a;
    char *buf;
    size_t n, bs, len;
    int fd;
    nixl_xfer_req_t *w, *r;
} p_rig_t;

static inline void p_rig_open(p_rig_t *g, p_engine_t e, const nixl_param_t *params, size_t np,
                              const char *file, int flags, size_t n, size_t bs)
{
    g->a = p_agent(e, params, np, NULL);
    g->n = n;
    g->bs = bs;
    g->len = n * bs;
    g->buf = t_alloc(g->len);
    g->fd = p_open(p_dir, file, O_TRUNC | flags);
    t_reg(g->a, g->buf, g->len);
    p_reg_fd(g->a, g->fd);
    g->w = p_req(g->a, NIXL_WRITE, g->buf, n, bs, (uint64_t)g->fd);
    g->r = p_req(g->a, NIXL_READ, g->buf, n, bs, (uint64_t)g->fd);
}

/* Write pattern `seed`, clear the buffer, read back, compare. */
static inline void p_rig_roundtrip(p_rig_t *g, unsigned seed)
{
    t_fill(g->buf, g->len, seed);
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(g->a, g->w, NULL));
    memset(g->buf, 0, g->len);
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(g->a, g->r, NULL));
    EXPECT_PATTERN(g->buf, g->len, seed);
}

/* Post and wait; the final status (the request must not stay IN_PROG). */
static inline nixl_status_t p_post_final(nixl_agent_t *a, nixl_xfer_req_t *req)
{
    nixl_status_t st = nixl_agent_post_xfer_req(a, req, NULL);
    if (st == NIXL_IN_PROG)
        st = t_wait(a, req, 30000);
    return st;
}

static inline void p_rig_close(p_rig_t *g)
{
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(g->a, g->w));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(g->a, g->r));
    p_dereg_fd(g->a, g->fd);
    t_dereg(g->a, g->buf, g->len);
    nixl_agent_destroy(g->a);
    close(g->fd);
    free(g->buf);
}

#endif
