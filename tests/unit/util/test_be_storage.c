/*
 * test_be_storage.c - what the storage backends share (src/util/be_storage.c), on its own:
 * all-or-nothing registration (the undo, last first, of what was done), the ordering and
 * checks of a descriptor pair, O_DIRECT alignment, the start of a post and the status a
 * failed request reports, each refusal with the status and the reason given to the host.
 * The GDS plugins use the same code and cannot run without a GPU: this is where it is tested
 * on every host.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "be_storage.h"

/* ---- a host that records the last reason ---- */

static nixl_status_t last_st;
static char last_msg[512];
static int nfails;

static void h_fail(const nixl_host_t *host, nixl_status_t st, const char *fmt, ...)
{
    (void)host;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_msg, sizeof(last_msg), fmt, ap);
    va_end(ap);
    last_st = st;
    nfails++;
}

static void h_log(const nixl_host_t *host, nixl_log_level_t level, const char *fmt, ...)
{
    (void)host;
    (void)level;
    (void)fmt;
}

static bool h_log_enabled(const nixl_host_t *host, nixl_log_level_t level)
{
    (void)host;
    (void)level;
    return false;
}

static const nixl_host_t host = {
    .struct_size = sizeof(nixl_host_t),
    .log = h_log,
    .log_enabled = h_log_enabled,
    .fail = h_fail,
};

static int reset(void **state)
{
    (void)state;
    last_st = NIXL_SUCCESS;
    last_msg[0] = '\0';
    nfails = 0;
    return 0;
}

/* ---- registration ---- */

struct nixl_be_md {
    size_t index;
    uint64_t tag;
};

/* The "engine": which descriptor fails, and what was undone, in order. */
typedef struct reg_rig {
    size_t fail_at;
    size_t freed[8];
    size_t nfreed;
} reg_rig_t;

static nixl_status_t reg_one(nixl_be_engine_t *eng, nixl_mem_t type, size_t i,
                             const nixl_reg_desc_t *d, nixl_be_md_t *md)
{
    reg_rig_t *r = (reg_rig_t *)eng;
    assert_int_equal(type, NIXL_FILE_SEG);
    assert_int_equal(md->index, 0); /* zeroed */
    assert_int_equal(md->tag, 0);
    if (i == r->fail_at) { /* NIXL_BE_ERR's host->fail() meets cmocka's fail() macro */
        h_fail(&host, NIXL_ERR_INVALID_PARAM, "descriptor %zu: refused", i);
        return NIXL_ERR_INVALID_PARAM;
    }
    md->index = i;
    md->tag = d->dev_id;
    return NIXL_SUCCESS;
}

static void md_free(nixl_be_engine_t *eng, nixl_be_md_t *md)
{
    reg_rig_t *r = (reg_rig_t *)eng;
    r->freed[r->nfreed++] = md->index;
    free(md);
}

static void test_register_all(void **state)
{
    (void)state;
    reg_rig_t r = {.fail_at = SIZE_MAX};
    nixl_reg_desc_t d[4] = {{.dev_id = 10}, {.dev_id = 11}, {.dev_id = 12}, {.dev_id = 13}};
    nixl_be_md_t *out[4] = {0};
    assert_int_equal(nixl_be_register_each((nixl_be_engine_t *)&r, &host, NIXL_FILE_SEG, d, 4,
                                           sizeof(nixl_be_md_t), reg_one, md_free, out),
                     NIXL_SUCCESS);
    assert_int_equal(nfails, 0);
    for (size_t i = 0; i < 4; i++) {
        assert_non_null(out[i]);
        assert_int_equal(out[i]->index, i);
        assert_int_equal(out[i]->tag, 10 + i);
    }
    assert_int_equal(r.nfreed, 0);
    for (size_t i = 0; i < 4; i++)
        md_free((nixl_be_engine_t *)&r, out[i]);
    /* none at all: nothing to do, nothing written */
    nixl_be_md_t *none = (nixl_be_md_t *)&r;
    assert_int_equal(nixl_be_register_each((nixl_be_engine_t *)&r, &host, NIXL_FILE_SEG, d, 0,
                                           sizeof(nixl_be_md_t), reg_one, md_free, &none),
                     NIXL_SUCCESS);
    assert_ptr_equal(none, (nixl_be_md_t *)&r);
}

static void test_register_undoes_on_failure(void **state)
{
    (void)state;
    reg_rig_t r = {.fail_at = 3};
    nixl_reg_desc_t d[4] = {{.dev_id = 10}, {.dev_id = 11}, {.dev_id = 12}, {.dev_id = 13}};
    nixl_be_md_t *out[4] = {0};
    assert_int_equal(nixl_be_register_each((nixl_be_engine_t *)&r, &host, NIXL_FILE_SEG, d, 4,
                                           sizeof(nixl_be_md_t), reg_one, md_free, out),
                     NIXL_ERR_INVALID_PARAM);
    /* the failure's own reason stands, and the three done were undone, last first */
    assert_int_equal(nfails, 1);
    assert_string_equal(last_msg, "descriptor 3: refused");
    assert_int_equal(r.nfreed, 3);
    assert_int_equal(r.freed[0], 2);
    assert_int_equal(r.freed[1], 1);
    assert_int_equal(r.freed[2], 0);
    assert_null(out[3]);

    /* the first one fails: nothing to undo */
    reg_rig_t r0 = {.fail_at = 0};
    assert_int_equal(nixl_be_register_each((nixl_be_engine_t *)&r0, &host, NIXL_FILE_SEG, d, 4,
                                           sizeof(nixl_be_md_t), reg_one, md_free, out),
                     NIXL_ERR_INVALID_PARAM);
    assert_int_equal(r0.nfreed, 0);
}

static void test_load_self(void **state)
{
    (void)state;
    nixl_be_md_t a, b, c;
    nixl_be_md_t *regs[3] = {&a, &b, &c}, *out[3] = {0};
    nixl_be_mds_t mds = {.base = regs, .stride = sizeof(regs[0]), .count = 3};
    assert_int_equal(nixl_be_load_self(NULL, &mds, out), NIXL_SUCCESS);
    assert_ptr_equal(out[0], &a);
    assert_ptr_equal(out[1], &b);
    assert_ptr_equal(out[2], &c);
}

/* ---- preparing ---- */

static const nixl_be_side_t MEM = NIXL_BE_SIDE_MEM, STO = NIXL_BE_SIDE_STORAGE,
                            OTH = NIXL_BE_SIDE_OTHER;

static void test_pair_order(void **state)
{
    (void)state;
    nixl_be_desc_t buf = {.addr = 0x1000, .len = 64}, file = {.addr = 4096, .len = 64};
    const nixl_be_desc_t *m = NULL, *f = NULL;
    assert_int_equal(nixl_be_storage_pair(&host, 0, &buf, MEM, &file, STO, "X", &m, &f),
                     NIXL_SUCCESS);
    assert_ptr_equal(m, &buf);
    assert_ptr_equal(f, &file);
    /* the storage given as the local side: still memory <-> file */
    assert_int_equal(nixl_be_storage_pair(&host, 0, &file, STO, &buf, MEM, "X", &m, &f),
                     NIXL_SUCCESS);
    assert_ptr_equal(m, &buf);
    assert_ptr_equal(f, &file);
    assert_int_equal(nfails, 0);
}

static void test_pair_refusals(void **state)
{
    (void)state;
    nixl_be_desc_t buf = {.addr = 0x1000, .len = 64}, file = {.addr = 4096, .len = 64};
    const nixl_be_desc_t *m, *f;
    const nixl_be_side_t bad[][2] = {{MEM, MEM}, {STO, STO}, {OTH, STO}, {STO, OTH}, {MEM, OTH}};
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        reset(NULL);
        assert_int_equal(nixl_be_storage_pair(&host, 7, &buf, bad[k][0], &file, bad[k][1],
                                              "DRAM and FILE/BLOCK", &m, &f),
                         NIXL_ERR_INVALID_PARAM);
        assert_int_equal(last_st, NIXL_ERR_INVALID_PARAM);
        assert_string_equal(last_msg, "descriptor 7: transfers go between DRAM and FILE/BLOCK");
    }
    reset(NULL);
    nixl_be_desc_t shorter = {.addr = 4096, .len = 32};
    assert_int_equal(nixl_be_storage_pair(&host, 2, &buf, MEM, &shorter, STO, "X", &m, &f),
                     NIXL_ERR_INVALID_PARAM);
    assert_string_equal(last_msg,
                        "descriptor 2: lengths differ (64 and 32) or offset 4096 + 32 overflows");
    /* an offset whose end does not fit off_t */
    reset(NULL);
    nixl_be_desc_t far = {.addr = (uint64_t)INT64_MAX - 64, .len = 64}; /* ends at INT64_MAX */
    assert_int_equal(nixl_be_storage_pair(&host, 0, &buf, MEM, &far, STO, "X", &m, &f),
                     NIXL_SUCCESS);
    far.addr++;
    assert_int_equal(nixl_be_storage_pair(&host, 0, &buf, MEM, &far, STO, "X", &m, &f),
                     NIXL_ERR_INVALID_PARAM);
    assert_non_null(strstr(last_msg, "overflows"));
}

static void test_direct(void **state)
{
    (void)state;
    nixl_be_desc_t buf = {.addr = 0x10000, .len = 8192}, file = {.addr = 4096, .len = 8192};
    assert_int_equal(nixl_be_storage_direct(&host, 0, &buf, &file, 5, 4096), NIXL_SUCCESS);
    assert_int_equal(nixl_be_storage_direct(&host, 0, &buf, &file, 5, 0), NIXL_SUCCESS);
    assert_int_equal(nfails, 0);
    /* each of address, length and offset on its own */
    nixl_be_desc_t b2 = buf, f2 = file;
    b2.addr += 512;
    assert_int_equal(nixl_be_storage_direct(&host, 3, &b2, &file, 5, 4096),
                     NIXL_ERR_INVALID_PARAM);
    assert_string_equal(last_msg,
                        "descriptor 3: file descriptor 5 is open with O_DIRECT, which needs the "
                        "buffer address, the length and the file offset aligned to 4096 bytes "
                        "(address 0x10200, length 8192, offset 4096)");
    b2 = buf;
    b2.len = 4000;
    assert_int_equal(nixl_be_storage_direct(&host, 0, &b2, &file, 5, 4096),
                     NIXL_ERR_INVALID_PARAM);
    f2.addr = 100;
    assert_int_equal(nixl_be_storage_direct(&host, 0, &buf, &f2, 5, 4096),
                     NIXL_ERR_INVALID_PARAM);
    /* not open with O_DIRECT: anything goes */
    reset(NULL);
    assert_int_equal(nixl_be_storage_direct(&host, 0, &buf, &f2, 5, 0), NIXL_SUCCESS);
    assert_int_equal(nfails, 0);
}

static void test_no_notif(void **state)
{
    (void)state;
    assert_int_equal(nixl_be_storage_no_notif(&host, NULL), NIXL_SUCCESS);
    nixl_be_xfer_opts_t o = {.struct_size = sizeof(o)};
    assert_int_equal(nixl_be_storage_no_notif(&host, &o), NIXL_SUCCESS);
    assert_int_equal(nfails, 0);
    o.has_notif = true;
    assert_int_equal(nixl_be_storage_no_notif(&host, &o), NIXL_ERR_NOT_SUPPORTED);
    assert_string_equal(last_msg, "storage transfers carry no notification");
}

/* ---- posting and checking ---- */

static void test_post_begin(void **state)
{
    (void)state;
    _Atomic int st = NIXL_ERR_NOT_POSTED;
    assert_int_equal(nixl_be_storage_post_begin(&host, NULL, &st, 3), NIXL_IN_PROG);
    assert_int_equal(atomic_load(&st), NIXL_ERR_NOT_POSTED); /* the caller publishes IN_PROG */
    atomic_store(&st, NIXL_ERR_BACKEND);                     /* a failed post may post again */
    assert_int_equal(nixl_be_storage_post_begin(&host, NULL, &st, 3), NIXL_IN_PROG);
    assert_int_equal(nfails, 0);
    /* a request of no I/O is done at once */
    atomic_store(&st, NIXL_ERR_NOT_POSTED);
    assert_int_equal(nixl_be_storage_post_begin(&host, NULL, &st, 0), NIXL_SUCCESS);
    assert_int_equal(atomic_load(&st), NIXL_SUCCESS);
    /* still in flight */
    atomic_store(&st, NIXL_IN_PROG);
    assert_int_equal(nixl_be_storage_post_begin(&host, NULL, &st, 3), NIXL_ERR_REPOST_ACTIVE);
    assert_string_equal(last_msg, "the request is still in flight");
    assert_int_equal(atomic_load(&st), NIXL_IN_PROG);
    /* a notification is refused first, whatever the state */
    nixl_be_xfer_opts_t o = {.struct_size = sizeof(o), .has_notif = true};
    atomic_store(&st, NIXL_ERR_NOT_POSTED);
    assert_int_equal(nixl_be_storage_post_begin(&host, &o, &st, 0), NIXL_ERR_NOT_SUPPORTED);
    assert_int_equal(atomic_load(&st), NIXL_ERR_NOT_POSTED);
}

static void test_status(void **state)
{
    (void)state;
    const nixl_status_t quiet[] = {NIXL_SUCCESS, NIXL_IN_PROG, NIXL_ERR_NOT_POSTED};
    for (size_t k = 0; k < sizeof(quiet) / sizeof(quiet[0]); k++)
        assert_int_equal(nixl_be_storage_status(&host, quiet[k], "unused"), quiet[k]);
    assert_int_equal(nfails, 0);
    assert_int_equal(nixl_be_storage_status(&host, NIXL_ERR_BACKEND, "descriptor 1: short read"),
                     NIXL_ERR_BACKEND);
    assert_int_equal(last_st, NIXL_ERR_BACKEND);
    assert_string_equal(last_msg, "descriptor 1: short read");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_register_all, reset),
        cmocka_unit_test_setup(test_register_undoes_on_failure, reset),
        cmocka_unit_test_setup(test_load_self, reset),
        cmocka_unit_test_setup(test_pair_order, reset),
        cmocka_unit_test_setup(test_pair_refusals, reset),
        cmocka_unit_test_setup(test_direct, reset),
        cmocka_unit_test_setup(test_no_notif, reset),
        cmocka_unit_test_setup(test_post_begin, reset),
        cmocka_unit_test_setup(test_status, reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
