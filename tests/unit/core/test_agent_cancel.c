/*
 * test_agent_cancel.c - stopping transfers: nixl_agent_cancel_xfer_req and post deadlines
 * (opt->deadline_us), with two agents of one process over SHM whose worker thread carries every
 * transfer (async_threshold=1), so that a large one is in flight when it is canceled.
 *
 * A canceled transfer ends NIXL_ERR_CANCELED (or its own status if it finished first), never
 * hangs, and the request can be posted again and then moves every byte.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent_test.h"

#define BIG ((size_t)256 << 20)

typedef struct {
    nixl_agent_t *a, *b;
    uint8_t *src, *dst;
    nixl_xfer_req_t *req;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    f->a = t_agent("A", NULL, "1", NULL);
    f->b = t_agent("B", NULL, "1", NULL);
    f->src = t_alloc(BIG);
    f->dst = t_alloc_zero(BIG);
    t_fill(f->src, BIG, 7);
    t_reg(f->a, f->src, BIG);
    t_reg(f->b, f->dst, BIG);
    t_load(f->a, f->b);
    nixl_desc_t l = t_desc(f->src, BIG), r = t_desc(f->dst, BIG);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create_xfer_req(f->a, NIXL_WRITE, NIXL_DRAM_SEG, &l, 1,
                                                       NIXL_DRAM_SEG, &r, 1, "B", NULL,
                                                       &f->req));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(f->a, f->req));
    nixl_agent_destroy(f->a);
    nixl_agent_destroy(f->b);
    free(f->src);
    t_free_zero(f->dst, BIG);
    free(f);
    return 0;
}

/* After a cancel or a deadline the request posts again and moves every byte. */
static void repost_whole(fx_t *f)
{
    memset(f->dst, 0, BIG);
    nixl_opt_args_t none;
    nixl_opt_args_init(&none); /* no deadline this time */
    nixl_status_t st = nixl_agent_post_xfer_req(f->a, f->req, &none);
    assert_true(st == NIXL_SUCCESS || st == NIXL_IN_PROG);
    EXPECT_ST(NIXL_SUCCESS, t_wait(f->a, f->req, 60000));
    assert_int_equal(t_check(f->dst, BIG, 7), -1);
}

static void test_cancel_not_posted(void **state)
{
    fx_t *f = *state;
    EXPECT_ST(NIXL_ERR_NOT_POSTED, nixl_agent_cancel_xfer_req(f->a, f->req));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL, nixl_agent_cancel_xfer_req(f->a, NULL));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL, nixl_agent_cancel_xfer_req(f->b, f->req));
}

static void test_cancel_in_flight(void **state)
{
    fx_t *f = *state;
    int canceled = 0;
    for (int round = 0; round < 5; round++) {
        nixl_status_t st = nixl_agent_post_xfer_req(f->a, f->req, NULL);
        assert_true(st == NIXL_IN_PROG || st == NIXL_SUCCESS);
        uint64_t t0 = t_now_ns();
        st = nixl_agent_cancel_xfer_req(f->a, f->req);
        uint64_t took_ms = (t_now_ns() - t0) / 1000000u;
        /* stopped between chunks, or done first: never left running, never slow */
        assert_true(st == NIXL_ERR_CANCELED || st == NIXL_SUCCESS);
        assert_true(took_ms < 1000);
        assert_int_equal(nixl_agent_get_xfer_status(f->a, f->req), st);
        canceled += st == NIXL_ERR_CANCELED;
        if (st == NIXL_ERR_CANCELED)
            EXPECT_LASTERR("stopped");
        /* a second cancel changes nothing */
        assert_int_equal(nixl_agent_cancel_xfer_req(f->a, f->req), st);
    }
    print_message("canceled %d of 5 posts of 256 MiB in flight\n", canceled);
    assert_true(canceled > 0);
    repost_whole(f);
}

static void test_deadline(void **state)
{
    fx_t *f = *state;
    nixl_opt_args_t opt;
    nixl_opt_args_init(&opt);
    opt.deadline_us = 1; /* long past when the status is first asked */
    nixl_status_t st = nixl_agent_post_xfer_req(f->a, f->req, &opt);
    assert_true(st == NIXL_IN_PROG || st == NIXL_SUCCESS);
    t_sleep_us(100);
    st = t_wait(f->a, f->req, 5000);
    assert_true(st == NIXL_ERR_CANCELED || st == NIXL_SUCCESS);
    if (st == NIXL_ERR_CANCELED)
        EXPECT_LASTERR("deadline");
    repost_whole(f);

    /* a deadline far away changes nothing */
    memset(f->dst, 0, BIG);
    opt.deadline_us = 60u * 1000 * 1000;
    st = nixl_agent_post_xfer_req(f->a, f->req, &opt);
    assert_true(st == NIXL_IN_PROG || st == NIXL_SUCCESS);
    EXPECT_ST(NIXL_SUCCESS, t_wait(f->a, f->req, 60000));
    assert_int_equal(t_check(f->dst, BIG, 7), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cancel_not_posted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
