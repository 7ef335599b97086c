/* test_log_limit.c - the rule behind rate-limited log lines (log_limit.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "log_limit.h"

static void test_identical_lines_are_counted(void **state)
{
    (void)state;
    nixl_log_limit_t l = NIXL_LOG_LIMIT_INIT;
    uint64_t rep = 99;
    assert_true(nixl_log_limit_pass(&l, "accept: too many open files", 1000, &rep));
    assert_int_equal(rep, 0);
    for (int i = 0; i < 1000; i++)
        assert_false(nixl_log_limit_pass(&l, "accept: too many open files", 2000 + i, &rep));
    /* Another line is written at once and says how many were held back. */
    assert_true(nixl_log_limit_pass(&l, "accept: out of memory", 5000, &rep));
    assert_int_equal(rep, 1000);
    assert_false(nixl_log_limit_pass(&l, "accept: out of memory", 6000, &rep));
    /* The same line again once the period is over. */
    assert_true(nixl_log_limit_pass(&l, "accept: out of memory", 5000 + NIXL_LOG_REPEAT_NS, &rep));
    assert_int_equal(rep, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_identical_lines_are_counted)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
