/*
 * test_posix_enospc.c - a full disk: a 1 MiB tmpfs, mounted by the test in a private mount
 * namespace (so nothing outside the process sees it), takes a 4 MiB write. The transfer must
 * fail with the reason (no space) and never report success for part of the data. Without the
 * privilege to make the namespace or mount the file system the test skips (exit 77).
 */
#include <errno.h>
#include <sched.h>
#include <sys/mount.h>

#include "posix_test.h"


static void write_full(p_engine_t e)
{
    p_rig_t g;
    p_rig_open(&g, e, NULL, 0, "full", 0, 64, 64u << 10); /* 4 MiB into 1 MiB */
    t_fill(g.buf, g.len, 1);
    assert_int_equal(p_post_final(g.a, g.w), NIXL_ERR_BACKEND);
    const char *why = nixl_last_error();
    if (!strstr(why, "No space") && !strstr(why, "no space")) {
        print_error("unexpected reason: %s\n", why);
        fail();
    }
    /* A repost fails the same way: no partial success, ever. */
    assert_int_equal(p_post_final(g.a, g.w), NIXL_ERR_BACKEND);
    assert_int_equal(ftruncate(g.fd, 0), 0);
    p_rig_close(&g);
}

static void test_uring(void **s) { (void)s; write_full(P_URING); }
static void test_aio(void **s) { (void)s; write_full(P_AIO); }
static void test_pool(void **s) { (void)s; write_full(P_POOL); }

int main(void)
{
    /* Before any thread exists: unshare needs a single-threaded process. */
    int flags = CLONE_NEWNS | (geteuid() == 0 ? 0 : CLONE_NEWUSER);
    if (unshare(flags) != 0) {
        printf("skip: cannot make a private mount namespace: %s\n", strerror(errno));
        return 77;
    }
    /* Source and type are ignored for a propagation change; named anyway, because valgrind
     * flags a NULL type. */
    if (mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) != 0) {
        printf("skip: cannot make mounts private: %s\n", strerror(errno));
        return 77;
    }
    p_dir = p_mkdtemp();
    if (mount("tmpfs", p_dir, "tmpfs", 0, "size=1m") != 0) {
        printf("skip: cannot mount a tmpfs: %s\n", strerror(errno));
        rmdir(p_dir);
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uring),
        cmocka_unit_test(test_aio),
        cmocka_unit_test(test_pool),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    umount2(p_dir, MNT_DETACH);
    rmdir(p_dir);
    free(p_dir);
    return rc;
}
