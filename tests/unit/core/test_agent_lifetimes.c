/*
 * test_agent_lifetimes.c - a request that its engine refuses to release, released by the user
 * and left to nixl_agent_destroy() (nixl.h at both). Destroy with ordinary outstanding handles
 * is test_destroy_with_outstanding in test_agent_prep.c.
 *
 * The refusal is real: POSIX (thread-pool engine) writes a buffer to a file with pwrite(), and
 * the buffer's page is missing under a userfaultfd, so the kernel's copy blocks until this test
 * supplies the page. POSIX cannot take an I/O back from the kernel: after waiting 5 s for it,
 * its release fails. Without userfaultfd (no privilege, or a sandbox) those tests skip.
 */
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent_test.h"

#define PAGE 4096

/* ------------------------------------------------------------------------------------------ */
/* A request the engine cannot let go                                                          */
/* ------------------------------------------------------------------------------------------ */

typedef struct stuck {
    int uffd;
    uint8_t *page;  /* missing until resolved */
    int fd;         /* the file */
    nixl_agent_t *a;
    nixl_xfer_req_t *req;
    unsigned resolve_after_ms; /* resolver thread */
} stuck_t;

/* A page whose first touch blocks until uffd_resolve(); false without userfaultfd. */
static bool uffd_page(stuck_t *s)
{
    s->uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    if (s->uffd < 0)
        return false;
    struct uffdio_api api = {.api = UFFD_API};
    if (ioctl(s->uffd, UFFDIO_API, &api) != 0) {
        close(s->uffd);
        return false;
    }
    s->page = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(s->page != MAP_FAILED);
    struct uffdio_register reg = {.range = {(uintptr_t)s->page, PAGE},
                                  .mode = UFFDIO_REGISTER_MODE_MISSING};
    if (ioctl(s->uffd, UFFDIO_REGISTER, &reg) != 0) {
        munmap(s->page, PAGE);
        close(s->uffd);
        return false;
    }
    return true;
}

/* Whether the kernel is blocked on the page (a fault is waiting), within `ms`. */
static bool uffd_fault_pending(stuck_t *s, int ms)
{
    struct pollfd p = {s->uffd, POLLIN, 0};
    return poll(&p, 1, ms) == 1;
}

/* Supply the page (its bytes: 0x5a), so the blocked copy goes on. */
static void uffd_resolve(stuck_t *s)
{
    static uint8_t src[PAGE];
    memset(src, 0x5a, sizeof(src));
    struct uffd_msg msg;
    while (read(s->uffd, &msg, sizeof(msg)) == (ssize_t)sizeof(msg)) {
    }
    struct uffdio_copy c = {.dst = (uintptr_t)s->page, .src = (uintptr_t)src, .len = PAGE};
    assert_int_equal(ioctl(s->uffd, UFFDIO_COPY, &c), 0);
}

/* An agent with POSIX on its thread pool, a WRITE of the page to a file posted, and the
 * kernel blocked on the page. False (test skipped) without userfaultfd. */
static bool stuck_setup(stuck_t *s, const char *name)
{
    memset(s, 0, sizeof(*s));
    if (!uffd_page(s))
        return false;
    char path[] = "/tmp/nixl-life-XXXXXX";
    s->fd = mkstemp(path);
    assert_true(s->fd >= 0);
    unlink(path);
    nixl_param_t pool = {"use_posix_aio", "true"};
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create(name, NULL, &s->a));
    nixl_backend_t *be = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create_backend(s->a, "POSIX", &pool, 1, &be));
    nixl_reg_desc_t mem = t_rdesc(s->page, PAGE);
    nixl_reg_desc_t file = {.addr = 0, .len = 0, .dev_id = (uint64_t)s->fd};
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_register_mem(s->a, NIXL_DRAM_SEG, &mem, 1, NULL));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_register_mem(s->a, NIXL_FILE_SEG, &file, 1, NULL));
    nixl_desc_t l = t_desc(s->page, PAGE), r = {.addr = 0, .len = PAGE, .dev_id = (uint64_t)s->fd};
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create_xfer_req(s->a, NIXL_WRITE, NIXL_DRAM_SEG, &l, 1,
                                                       NIXL_FILE_SEG, &r, 1, name, NULL,
                                                       &s->req));
    EXPECT_ST(NIXL_IN_PROG, nixl_agent_post_xfer_req(s->a, s->req, NULL));
    assert_true(uffd_fault_pending(s, 10000));
    return true;
}

static void stuck_teardown(stuck_t *s)
{
    close(s->fd);
    munmap(s->page, PAGE);
    close(s->uffd);
}

/* The file holds the page's bytes: the write completed into it. */
static void expect_file_written(int fd)
{
    uint8_t back[PAGE];
    assert_int_equal(pread(fd, back, PAGE, 0), PAGE);
    EXPECT_BYTES(back, PAGE, 0x5a);
}

/* release fails while the engine cannot stop the write; the request stays valid and a later
 * release succeeds. */
static void test_release_refused_keeps_request(void **state)
{
    (void)state;
    stuck_t s;
    if (!stuck_setup(&s, "life-release"))
        skip();
    EXPECT_ERR(NIXL_ERR_REPOST_ACTIVE, "stays valid", nixl_agent_release_xfer_req(s.a, s.req));
    EXPECT_LASTERR("POSIX");
    /* Still a live request: its status can be asked, a repost is refused as running. */
    EXPECT_ST(NIXL_IN_PROG, nixl_agent_get_xfer_status(s.a, s.req));
    EXPECT_ST(NIXL_ERR_REPOST_ACTIVE, nixl_agent_post_xfer_req(s.a, s.req, NULL));
    nixl_backend_t *be = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_query_xfer_backend(s.a, s.req, &be));
    assert_string_equal(nixl_backend_name(be), "POSIX");
    uffd_resolve(&s);
    EXPECT_ST(NIXL_SUCCESS, t_wait(s.a, s.req, 10000));
    expect_file_written(s.fd);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(s.a, s.req));
    nixl_agent_destroy(s.a);
    stuck_teardown(&s);
}

static void *resolver(void *arg)
{
    stuck_t *s = arg;
    t_sleep_us(s->resolve_after_ms * 1000u);
    uffd_resolve(s);
    return NULL;
}

/* Destroy with such a request: the first release is refused (after POSIX's 5 s), destroy warns,
 * naming the request, asks again and gets it once the write completes; then everything goes. */
static void test_destroy_waits_for_refused_request(void **state)
{
    (void)state;
    stuck_t s;
    if (!stuck_setup(&s, "life-destroy"))
        skip();
    s.resolve_after_ms = 6500;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, resolver, &s), 0);

    /* Catch the log (stderr) around destroy. */
    char logpath[] = "/tmp/nixl-life-log-XXXXXX";
    int logfd = mkstemp(logpath);
    assert_true(logfd >= 0);
    unlink(logpath);
    fflush(stderr);
    int saved = dup(2);
    assert_int_equal(dup2(logfd, 2), 2);
    uint64_t t0 = t_now_ns();
    nixl_agent_destroy(s.a);
    uint64_t took_ms = (t_now_ns() - t0) / 1000000u;
    fflush(stderr);
    assert_int_equal(dup2(saved, 2), 2);
    close(saved);
    assert_int_equal(pthread_join(t, NULL), 0);

    char log[8192] = "";
    ssize_t n = pread(logfd, log, sizeof(log) - 1, 0);
    close(logfd);
    log[n > 0 ? n : 0] = '\0';
    print_message("destroy took %llu ms; log:\n%s", (unsigned long long)took_ms, log);
    assert_true(took_ms >= s.resolve_after_ms - 100);
    assert_non_null(strstr(log, "could not be released yet"));
    assert_non_null(strstr(log, "(POSIX, WRITE of 1 descriptor(s) with 'life-destroy')"));
    assert_null(strstr(log, "left alive"));
    expect_file_written(s.fd);
    stuck_teardown(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_release_refused_keeps_request),
        cmocka_unit_test(test_destroy_waits_for_refused_request),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
