/*
 * test_gds.c - the GDS and GDS_MT backends moving VRAM and DRAM to files and back through
 * cuFile, on a machine with a GPU and libcufile (compatibility mode is enough).
 *
 * For each backend and each memory type: WRITE memory -> file, check the file's bytes with
 * pread, clear the memory, READ back, check every byte, for 1 to 4,096 descriptors at odd
 * buffer and file offsets and odd lengths (one longer than max_request_size, so it is cut);
 * files opened with O_DIRECT (4 KiB aligned transfers work, misaligned ones are refused at
 * prep naming the descriptor); two requests in flight at once, more batch entries than the
 * window between them, the second waited for first; path-mode registration (the backend opens
 * the file named in metaInfo); a devId that is no open file; queryMem of a missing and an
 * existing file; a read past the end of a file (an error, never a short success). Also: GDS
 * and GDS_MT in one agent is refused NIXL_ERR_NOT_ALLOWED.
 * Files go to $NIXL_GDS_TEST_DIR (default /tmp; O_DIRECT needs a disk file system, not tmpfs).
 * Exit 77 (skip) without a GPU or without libcufile.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpu_test.h"

static const char *dir;
static int file_seq;
static nixl_backend_t *cur_be; /* the backend of the last agent_with (queryMem names it) */

static uint8_t pattern(size_t i, unsigned seed)
{
    return (uint8_t)(seed * 131u + i * 7u + (i >> 9));
}

/* A buffer of `len` bytes in VRAM or (4 KiB aligned) DRAM. */
typedef struct area {
    bool vram;
    uintptr_t addr;
    size_t len;
} area_t;

static area_t area_new(bool vram, size_t len)
{
    area_t a = {.vram = vram, .len = len};
    if (vram) {
        a.addr = (uintptr_t)gt_alloc(len);
    } else {
        void *p = NULL;
        if (posix_memalign(&p, 4096, len)) {
            fprintf(stderr, "out of memory\n");
            exit(1);
        }
        a.addr = (uintptr_t)p;
    }
    return a;
}

static void area_free(area_t *a)
{
    if (a->vram)
        gt_free(a->addr);
    else
        free((void *)a->addr);
}

static void area_put(area_t *a, const uint8_t *src)
{
    if (a->vram)
        gt_htod(a->addr, src, a->len);
    else
        memcpy((void *)a->addr, src, a->len);
}

static void area_get(const area_t *a, uint8_t *dst)
{
    if (a->vram)
        gt_dtoh(dst, a->addr, a->len);
    else
        memcpy(dst, (const void *)a->addr, a->len);
}

static nixl_mem_t area_mem(const area_t *a)
{
    return a->vram ? NIXL_VRAM_SEG : NIXL_DRAM_SEG;
}

static int open_file(int flags, char *path, size_t pathlen)
{
    snprintf(path, pathlen, "%s/nixl-gds-test-%d-%d", dir, (int)getpid(), file_seq++);
    return open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | flags, 0644);
}

static nixl_agent_t *agent_with(const char *plugin)
{
    nixl_agent_t *a = NULL;
    nixl_backend_t *be = NULL;
    if (nixl_agent_create("self", NULL, &a) != NIXL_SUCCESS) {
        fprintf(stderr, "agent: %s\n", nixl_last_error());
        exit(1);
    }
    nixl_param_t p[] = {{"thread_count", "8"}};
    nixl_status_t st = nixl_agent_create_backend(a, plugin, !strcmp(plugin, "GDS_MT") ? p : NULL,
                                                 !strcmp(plugin, "GDS_MT") ? 1 : 0, &be);
    if (st != NIXL_SUCCESS) {
        fprintf(stderr, "backend %s: %s: %s\n", plugin, nixl_status_str(st), nixl_last_error());
        exit(1);
    }
    cur_be = be;
    return a;
}

static void reg(nixl_agent_t *a, nixl_mem_t mem, uintptr_t addr, size_t len, uint64_t dev,
                bool on)
{
    nixl_reg_desc_t d = {.addr = addr, .len = len, .dev_id = dev};
    nixl_status_t st = on ? nixl_agent_register_mem(a, mem, &d, 1, NULL)
                          : nixl_agent_deregister_mem(a, mem, &d, 1, NULL);
    GT_CHECK(st == NIXL_SUCCESS, "%sregister type %d: %s", on ? "" : "de", (int)mem,
             nixl_status_str(st));
}

/* n descriptors of `len` bytes: memory at mem_off + i * stride, file at file_off + i * stride. */
static nixl_status_t xfer(nixl_agent_t *a, nixl_xfer_op_t op, const area_t *m, int fd, size_t n,
                          size_t len, size_t stride, size_t mem_off, size_t file_off)
{
    nixl_desc_t *l = calloc(n, sizeof(*l)), *r = calloc(n, sizeof(*r));
    for (size_t i = 0; i < n; i++) {
        l[i] = (nixl_desc_t){m->addr + mem_off + i * stride, len, 0}; /* GPU 0 or DRAM */
        r[i] = (nixl_desc_t){file_off + i * stride, len, (uint64_t)fd};
    }
    nixl_opt_args_t opt;
    nixl_opt_args_init(&opt);
    opt.skip_desc_merge = true; /* keep the descriptors: the test is about many of them */
    nixl_xfer_req_t *req = NULL;
    nixl_status_t st = nixl_agent_create_xfer_req(a, op, area_mem(m), l, n, NIXL_FILE_SEG, r, n,
                                                  "self", &opt, &req);
    free(l);
    free(r);
    if (st != NIXL_SUCCESS)
        return st;
    st = gt_wait(a, req, nixl_agent_post_xfer_req(a, req, NULL));
    nixl_status_t rel = nixl_agent_release_xfer_req(a, req);
    GT_CHECK(rel == NIXL_SUCCESS, "release: %s", nixl_status_str(rel));
    return st;
}

/* A request of n descriptors of len bytes, memory at mem_off + i * len, file at the same. */
static nixl_xfer_req_t *make_req(nixl_agent_t *a, nixl_xfer_op_t op, const area_t *m, int fd,
                                 size_t n, size_t len, size_t off)
{
    nixl_desc_t *l = calloc(n, sizeof(*l)), *r = calloc(n, sizeof(*r));
    for (size_t i = 0; i < n; i++) {
        l[i] = (nixl_desc_t){m->addr + off + i * len, len, 0};
        r[i] = (nixl_desc_t){off + i * len, len, (uint64_t)fd};
    }
    nixl_opt_args_t opt;
    nixl_opt_args_init(&opt);
    opt.skip_desc_merge = true;
    nixl_xfer_req_t *req = NULL;
    nixl_status_t st = nixl_agent_create_xfer_req(a, op, area_mem(m), l, n, NIXL_FILE_SEG, r, n,
                                                  "self", &opt, &req);
    GT_CHECK(st == NIXL_SUCCESS, "create_xfer_req: %s", nixl_status_str(st));
    free(l);
    free(r);
    return req;
}

/* Two requests in flight, more entries than the window between them: the one posted second is
 * waited for first, so it must complete while nobody polls the first (its thread reaps the
 * first's batches), and both move every byte. */
static void two_in_flight(nixl_agent_t *a, const char *plugin, bool vram, int oflags)
{
    const size_t n = 512, len = 16384, half = n * len;
    area_t m = area_new(vram, 2 * half);
    uint8_t *want = malloc(2 * half), *got = malloc(2 * half);
    for (size_t i = 0; i < 2 * half; i++)
        want[i] = pattern(i, 77);
    area_put(&m, want);
    char path[512];
    int fd = open_file(oflags, path, sizeof(path));
    reg(a, area_mem(&m), m.addr, m.len, 0, true);
    reg(a, NIXL_FILE_SEG, 0, 0, (uint64_t)fd, true);
    nixl_xfer_req_t *first = make_req(a, NIXL_WRITE, &m, fd, n, len, 0);
    nixl_xfer_req_t *second = make_req(a, NIXL_WRITE, &m, fd, n, len, half);
    double t0 = gt_now();
    nixl_status_t p1 = first ? nixl_agent_post_xfer_req(a, first, NULL) : NIXL_ERR_UNKNOWN;
    nixl_status_t p2 = second ? nixl_agent_post_xfer_req(a, second, NULL) : NIXL_ERR_UNKNOWN;
    nixl_status_t s2 = second ? gt_wait(a, second, p2) : p2;
    nixl_status_t s1 = first ? gt_wait(a, first, p1) : p1;
    GT_CHECK(s1 == NIXL_SUCCESS && s2 == NIXL_SUCCESS, "%s %s two requests in flight%s: %s, %s",
             plugin, vram ? "VRAM" : "DRAM", oflags ? " O_DIRECT" : "", nixl_status_str(s1),
             nixl_status_str(s2));
    int plain = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t r = pread(plain, got, 2 * half, 0);
    close(plain);
    GT_CHECK(r == (ssize_t)(2 * half) && !memcmp(got, want, 2 * half),
             "%s two requests in flight: the file's bytes differ (%zd read)", plugin, r);
    printf("    two requests of %zu x %zu in flight%s: %.2f s\n", n, len,
           oflags ? " O_DIRECT" : "", gt_now() - t0);
    if (first)
        nixl_agent_release_xfer_req(a, first);
    if (second)
        nixl_agent_release_xfer_req(a, second);
    reg(a, NIXL_FILE_SEG, 0, 0, (uint64_t)fd, false);
    reg(a, area_mem(&m), m.addr, m.len, 0, false);
    close(fd);
    unlink(path);
    area_free(&m);
    free(want);
    free(got);
}

/* Write, check the file, clear, read back, check; seed changes the bytes. */
static void roundtrip(nixl_agent_t *a, const char *plugin, bool vram, int oflags, size_t n,
                      size_t len, size_t stride, size_t mem_off, size_t file_off)
{
    size_t total = mem_off + (n - 1) * stride + len, fspan = file_off + (n - 1) * stride + len;
    double t0 = gt_now();
    area_t m = area_new(vram, total);
    uint8_t *want = malloc(total), *got = malloc(total > fspan ? total : fspan);
    char path[512];
    int fd = open_file(oflags, path, sizeof(path));
    GT_CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
    if (fd < 0)
        goto out;
    for (size_t i = 0; i < total; i++)
        want[i] = pattern(i, (unsigned)n);
    area_put(&m, want);
    reg(a, area_mem(&m), m.addr, m.len, 0, true);
    reg(a, NIXL_FILE_SEG, 0, 0, (uint64_t)fd, true);
    const char *what = vram ? "VRAM" : "DRAM";
    nixl_status_t st = xfer(a, NIXL_WRITE, &m, fd, n, len, stride, mem_off, file_off);
    GT_CHECK(st == NIXL_SUCCESS, "%s %s WRITE %zu x %zu%s: %s", plugin, what, n, len,
             oflags ? " O_DIRECT" : "", nixl_status_str(st));
    int plain = open(path, O_RDONLY | O_CLOEXEC);
    for (size_t i = 0; st == NIXL_SUCCESS && i < n; i++) {
        ssize_t r = pread(plain, got, len, (off_t)(file_off + i * stride));
        size_t at = mem_off + i * stride;
        GT_CHECK(r == (ssize_t)len && !memcmp(got, want + at, len),
                 "%s %s WRITE: file bytes of descriptor %zu differ", plugin, what, i);
        if (r != (ssize_t)len || memcmp(got, want + at, len))
            break;
    }
    close(plain);
    memset(got, 0, total);
    area_put(&m, got);
    st = xfer(a, NIXL_READ, &m, fd, n, len, stride, mem_off, file_off);
    GT_CHECK(st == NIXL_SUCCESS, "%s %s READ %zu x %zu%s: %s", plugin, what, n, len,
             oflags ? " O_DIRECT" : "", nixl_status_str(st));
    area_get(&m, got);
    for (size_t i = 0; st == NIXL_SUCCESS && i < n; i++) {
        size_t at = mem_off + i * stride;
        GT_CHECK(!memcmp(got + at, want + at, len), "%s %s READ: descriptor %zu differs",
                 plugin, what, i);
        if (memcmp(got + at, want + at, len))
            break;
    }
    reg(a, NIXL_FILE_SEG, 0, 0, (uint64_t)fd, false);
    reg(a, area_mem(&m), m.addr, m.len, 0, false);
    close(fd);
    unlink(path);
    printf("    %zu x %zu%s: %.2f s\n", n, len, oflags ? " O_DIRECT" : "", gt_now() - t0);
out:
    area_free(&m);
    free(want);
    free(got);
}

static bool direct_works(void)
{
    char path[512];
    int fd = open_file(O_DIRECT, path, sizeof(path));
    if (fd >= 0) {
        close(fd);
        unlink(path);
        return true;
    }
    printf("note: O_DIRECT cannot be used in %s (%s): the O_DIRECT cases are skipped; set "
           "NIXL_GDS_TEST_DIR to a directory on a disk file system\n", dir, strerror(errno));
    return false;
}

/* Misaligned transfers on an O_DIRECT file: refused at prep, naming O_DIRECT and the
 * descriptor. */
static void direct_refusals(nixl_agent_t *a, const char *plugin, bool vram)
{
    area_t m = area_new(vram, 3 * 4096);
    char path[512];
    int fd = open_file(O_DIRECT, path, sizeof(path));
    reg(a, area_mem(&m), m.addr, m.len, 0, true);
    reg(a, NIXL_FILE_SEG, 0, 0, (uint64_t)fd, true);
    const size_t cases[3][3] = {{1, 4096, 0}, {0, 1000, 0}, {0, 4096, 100}}; /* mem, len, file */
    for (int c = 0; c < 3; c++) {
        nixl_status_t st = xfer(a, NIXL_WRITE, &m, fd, 1, cases[c][1], 0, cases[c][0],
                                cases[c][2]);
        GT_CHECK(st == NIXL_ERR_INVALID_PARAM && strstr(nixl_last_error(), "O_DIRECT") &&
                     strstr(nixl_last_error(), "descriptor 0"),
                 "%s: misaligned O_DIRECT case %d: %s", plugin, c, nixl_status_str(st));
    }
    reg(a, NIXL_FILE_SEG, 0, 0, (uint64_t)fd, false);
    reg(a, area_mem(&m), m.addr, m.len, 0, false);
    close(fd);
    unlink(path);
    area_free(&m);
}

/* A read past the end of the file fails (the bytes that are there are not a success). */
static void past_eof(nixl_agent_t *a, const char *plugin, bool vram)
{
    area_t m = area_new(vram, 8192);
    char path[512];
    int fd = open_file(0, path, sizeof(path));
    uint8_t block[4096];
    memset(block, 0x5a, sizeof(block));
    GT_CHECK(pwrite(fd, block, sizeof(block), 0) == (ssize_t)sizeof(block), "pwrite");
    reg(a, area_mem(&m), m.addr, m.len, 0, true);
    reg(a, NIXL_FILE_SEG, 0, 0, (uint64_t)fd, true);
    nixl_status_t st = xfer(a, NIXL_READ, &m, fd, 1, 8192, 0, 0, 0); /* half there */
    GT_CHECK(st == NIXL_ERR_BACKEND, "%s: read of 8192 bytes from a 4096-byte file: %s", plugin,
             nixl_status_str(st));
    printf("  %s read past the end: %s: %s\n", plugin, nixl_status_str(st), nixl_last_error());
    st = xfer(a, NIXL_READ, &m, fd, 1, 4096, 0, 0, 1 << 20); /* nothing there */
    GT_CHECK(st == NIXL_ERR_BACKEND, "%s: read at 1 MiB of a 4096-byte file: %s", plugin,
             nixl_status_str(st));
    reg(a, NIXL_FILE_SEG, 0, 0, (uint64_t)fd, false);
    reg(a, area_mem(&m), m.addr, m.len, 0, false);
    close(fd);
    unlink(path);
    area_free(&m);
}

/* Path mode (as the reference): metaInfo "rw,create[,direct]:<path>" and a devId of our
 * choosing; the backend opens the file, moves the bytes, and closes it at deregistration.
 * A bad spec and a devId used twice are refused. */
static void path_mode(nixl_agent_t *a, const char *plugin, bool vram, bool direct)
{
    const size_t n = 16, len = 4096, total = n * len;
    const uint64_t dev = 4242;
    area_t m = area_new(vram, total);
    uint8_t *want = malloc(total), *got = malloc(total);
    for (size_t i = 0; i < total; i++)
        want[i] = pattern(i, 99);
    area_put(&m, want);
    char path[512], spec[600];
    snprintf(path, sizeof(path), "%s/nixl-gds-path-%d-%d", dir, (int)getpid(), file_seq++);
    snprintf(spec, sizeof(spec), "rw,create%s:%s", direct ? ",direct" : "", path);
    reg(a, area_mem(&m), m.addr, m.len, 0, true);
    nixl_reg_desc_t f = {.addr = 0, .len = 0, .dev_id = dev, .meta = spec,
                         .meta_len = strlen(spec)};
    nixl_status_t st = nixl_agent_register_mem(a, NIXL_FILE_SEG, &f, 1, NULL);
    GT_CHECK(st == NIXL_SUCCESS, "%s path mode: register '%s': %s", plugin, spec,
             nixl_status_str(st));
    nixl_status_t again = nixl_agent_register_mem(a, NIXL_FILE_SEG, &f, 1, NULL);
    /* The core answers NIXL_ERR_BACKEND when no backend took the list, with the backend's
     * reason (and its INVALID_PARAM) in the message. */
    GT_CHECK(again != NIXL_SUCCESS && strstr(nixl_last_error(), "already names"),
             "%s path mode: devId registered twice: %s", plugin, nixl_status_str(again));
    nixl_reg_desc_t bad = {.dev_id = dev + 1, .meta = "rw,bogus:/tmp/x", .meta_len = 15};
    nixl_status_t b = nixl_agent_register_mem(a, NIXL_FILE_SEG, &bad, 1, NULL);
    GT_CHECK(b != NIXL_SUCCESS && strstr(nixl_last_error(), "bogus"),
             "%s path mode: a bad spec: %s", plugin, nixl_status_str(b));
    if (st == NIXL_SUCCESS) {
        st = xfer(a, NIXL_WRITE, &m, (int)dev, n, len, len, 0, 0);
        GT_CHECK(st == NIXL_SUCCESS, "%s path mode WRITE: %s", plugin, nixl_status_str(st));
        int plain = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t r = plain >= 0 ? pread(plain, got, total, 0) : -1;
        if (plain >= 0)
            close(plain);
        GT_CHECK(r == (ssize_t)total && !memcmp(got, want, total),
                 "%s path mode: the file's bytes differ (%zd read)", plugin, r);
        memset(got, 0, total);
        area_put(&m, got);
        st = xfer(a, NIXL_READ, &m, (int)dev, n, len, len, 0, 0);
        area_get(&m, got);
        GT_CHECK(st == NIXL_SUCCESS && !memcmp(got, want, total), "%s path mode READ: %s%s",
                 plugin, nixl_status_str(st), st == NIXL_SUCCESS ? " (bytes differ)" : "");
        reg(a, NIXL_FILE_SEG, 0, 0, dev, false);
    }
    reg(a, area_mem(&m), m.addr, m.len, 0, false);
    printf("    path mode%s\n", direct ? " (direct)" : "");
    unlink(path);
    area_free(&m);
    free(want);
    free(got);
}

/* A devId that is no open descriptor; queryMem of a missing and of an existing file. */
static void missing_file(nixl_agent_t *a, const char *plugin)
{
    char path[512];
    int fd = open_file(0, path, sizeof(path));
    GT_CHECK(pwrite(fd, "abc", 3, 0) == 3, "pwrite");
    close(fd);
    nixl_reg_desc_t d = {.addr = 0, .len = 0, .dev_id = (uint64_t)fd}; /* closed now */
    nixl_status_t st = nixl_agent_register_mem(a, NIXL_FILE_SEG, &d, 1, NULL);
    GT_CHECK(st != NIXL_SUCCESS && strstr(nixl_last_error(), "not an open file descriptor"),
             "%s: registering a closed fd: %s", plugin, nixl_status_str(st));
    char missing[600];
    snprintf(missing, sizeof(missing), "%s.missing", path);
    nixl_reg_desc_t q[2] = {{.meta = missing, .meta_len = strlen(missing)},
                            {.meta = path, .meta_len = strlen(path)}};
    nixl_query_resp_t *resp = NULL;
    nixl_opt_args_t opt;
    nixl_opt_args_init(&opt);
    opt.backends = &cur_be;
    opt.num_backends = 1;
    st = nixl_agent_query_mem(a, NIXL_FILE_SEG, q, 2, &opt, &resp);
    GT_CHECK(st == NIXL_SUCCESS, "%s: queryMem: %s", plugin, nixl_status_str(st));
    if (st == NIXL_SUCCESS) {
        GT_CHECK(!resp[0].has_value, "%s: queryMem says a missing file exists", plugin);
        bool size3 = false;
        for (size_t i = 0; resp[1].has_value && i < resp[1].params.count; i++)
            size3 |= !strcmp(resp[1].params.items[i].key, "size") &&
                     !strcmp(resp[1].params.items[i].value, "3");
        GT_CHECK(size3, "%s: queryMem of a 3-byte file has no size 3", plugin);
        nixl_free(resp);
    }
    unlink(path);
}

static void run_backend(const char *plugin, bool direct)
{
    printf("%s\n", plugin);
    nixl_agent_t *a = agent_with(plugin);
    for (int v = 0; v < 2; v++) {
        bool vram = v == 0;
        printf("  %s\n", vram ? "VRAM" : "DRAM");
        roundtrip(a, plugin, vram, 0, 1, 4096, 0, 0, 0);
        roundtrip(a, plugin, vram, 0, 1, (1u << 20) + 7, 0, 3, 5);       /* odd everything */
        roundtrip(a, plugin, vram, 0, 7, 12345, 20011, 1, 4097);         /* gaps between */
        roundtrip(a, plugin, vram, 0, 4096, 1001, 1001, 13, 3);          /* many, odd */
        roundtrip(a, plugin, vram, 0, 2, (40u << 20) + 123, (40u << 20) + 4096, 0, 11); /* cut */
        if (direct) {
            roundtrip(a, plugin, vram, O_DIRECT, 1, 1u << 20, 0, 0, 0);
            roundtrip(a, plugin, vram, O_DIRECT, 4096, 4096, 4096, 0, 8192);
            roundtrip(a, plugin, vram, O_DIRECT, 64, 64u << 10, 128u << 10, 4096, 4096);
            roundtrip(a, plugin, vram, O_DIRECT, 1024, 16384, 16384, 0, 0);
            two_in_flight(a, plugin, vram, O_DIRECT);
            direct_refusals(a, plugin, vram);
        }
        two_in_flight(a, plugin, vram, 0);
        path_mode(a, plugin, vram, false);
        if (direct)
            path_mode(a, plugin, vram, true);
        past_eof(a, plugin, vram);
    }
    missing_file(a, plugin);
    nixl_agent_destroy(a);
}

static void not_both(void)
{
    nixl_agent_t *a = agent_with("GDS");
    nixl_backend_t *be = NULL;
    nixl_status_t st = nixl_agent_create_backend(a, "GDS_MT", NULL, 0, &be);
    GT_CHECK(st == NIXL_ERR_NOT_ALLOWED, "GDS_MT beside GDS: %s", nixl_status_str(st));
    nixl_agent_destroy(a);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* progress shows even if a timeout kills us */
    int rc = gt_init();
    if (rc)
        return rc;
    void *cf = dlopen("libcufile.so.0", RTLD_NOW | RTLD_LOCAL);
    if (!cf) {
        printf("skip: no libcufile here (%s)\n", dlerror());
        return GT_SKIP;
    }
    dlclose(cf);
    dir = getenv("NIXL_GDS_TEST_DIR") ? getenv("NIXL_GDS_TEST_DIR") : "/tmp";
    bool direct = direct_works();
    double t0 = gt_now();
    run_backend("GDS", direct);
    run_backend("GDS_MT", direct);
    not_both();
    printf("test_gds: %s (%d failure(s), %.1f s)\n", gt_failures ? "FAILED" : "passed",
           gt_failures, gt_now() - t0);
    return gt_failures ? 1 : 0;
}
