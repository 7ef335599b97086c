/*
 * ucx_test.h - helpers of the UCX backend tests: agents whose only engine is UCX, on the
 * transports a test chooses (UCX reads UCX_TLS when an engine is created, so a test sets it
 * before creating its agents). Only the public API is used, plus agent_test.h of the core
 * tests.
 */
#ifndef NIXL_TEST_UCX_TEST_H
#define NIXL_TEST_UCX_TEST_H

#include <stdlib.h>

#include "agent_test.h"

/* Transports: TCP (peer failure detection works) and shared memory (UCX 1.13's shared-memory
 * transports cannot detect failed peers, so those engines use ucx_error_handling_mode=none). */
typedef enum { U_TCP, U_SHM } u_tls_t;

static inline void u_use(u_tls_t tls)
{
    setenv("UCX_TLS", tls == U_TCP ? "tcp" : "sm,self", 1);
}

/* An agent with only a UCX engine; params as given (plus error mode "none" for U_SHM). */
static inline nixl_agent_t *u_agent_p(const char *name, u_tls_t tls, const nixl_param_t *params,
                                      size_t n, nixl_backend_t **out_be)
{
    nixl_param_t all[8];
    assert_true(n < 8);
    for (size_t i = 0; i < n; i++)
        all[i] = params[i];
    if (tls == U_SHM)
        all[n++] = (nixl_param_t){"ucx_error_handling_mode", "none"};
    u_use(tls);
    nixl_agent_t *a = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create(name, NULL, &a));
    nixl_backend_t *be = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create_backend(a, "UCX", all, n, &be));
    assert_non_null(be);
    if (out_be)
        *out_be = be;
    return a;
}

static inline nixl_agent_t *u_agent(const char *name, u_tls_t tls)
{
    return u_agent_p(name, tls, NULL, 0, NULL);
}

/* create_xfer_req of one list pair; asserts success. */
static inline nixl_xfer_req_t *u_req(nixl_agent_t *a, nixl_xfer_op_t op, const nixl_desc_t *l,
                                     const nixl_desc_t *r, size_t n, const char *peer,
                                     const nixl_opt_args_t *opt)
{
    nixl_xfer_req_t *req = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create_xfer_req(a, op, NIXL_DRAM_SEG, l, n, NIXL_DRAM_SEG,
                                                       r, n, peer, opt, &req));
    assert_non_null(req);
    return req;
}

/* One element, local p <-> remote q. */
static inline nixl_xfer_req_t *u_req1(nixl_agent_t *a, nixl_xfer_op_t op, const void *p,
                                      const void *q, size_t len, const char *peer,
                                      const nixl_opt_args_t *opt)
{
    nixl_desc_t l = t_desc(p, len), r = t_desc(q, len);
    return u_req(a, op, &l, &r, 1, peer, opt);
}

/* Wait for `want` notifications on `a` (the caller frees n). */
static inline void u_notifs(nixl_agent_t *a, t_notifs_t *n, size_t want)
{
    assert_int_equal(t_notifs_wait(a, n, want, 20000), want);
}

#endif
