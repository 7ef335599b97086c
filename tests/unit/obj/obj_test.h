/*
 * obj_test.h - helpers of the OBJ backend tests: an agent "self" whose one engine is OBJ on the
 * server at ot_endpoint (keys ot_ak / ot_sk), registrations of objects by key or devId, and
 * loopback requests between DRAM blocks and objects. Only the public API, plus agent_test.h.
 */
#ifndef NIXL_TEST_OBJ_TEST_H
#define NIXL_TEST_OBJ_TEST_H

#include "agent_test.h"

/* The server the helpers talk to (set by the test before use). */
static const char *ot_endpoint, *ot_ak, *ot_sk;

/* An agent "self" with one OBJ engine on our server; extra params override. */
static inline nixl_agent_t *agent_with(const nixl_param_t *extra, size_t nextra, nixl_backend_t **be,
                                nixl_status_t want, const char *reason)
{
    nixl_param_t p[16] = {{"bucket", "bkt"},        {"endpoint_override", ot_endpoint},
                          {"access_key", ot_ak}, {"secret_key", ot_sk},
                          {"scheme", "http"},       {"region", "us-east-1"}};
    size_t n = 6;
    for (size_t i = 0; i < nextra; i++) {
        size_t k = 0;
        while (k < n && strcmp(p[k].key, extra[i].key))
            k++;
        p[k] = extra[i];
        if (k == n)
            n++;
    }
    nixl_agent_t *a = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create("self", NULL, &a));
    nixl_backend_t *b = NULL;
    nixl_status_t st = nixl_agent_create_backend(a, "OBJ", p, n, &b);
    if (reason)
        EXPECT_ERR(want, reason, st);
    else
        EXPECT_ST(want, st);
    if (be)
        *be = b;
    return a;
}

static inline nixl_agent_t *agent(nixl_backend_t **be)
{
    return agent_with(NULL, 0, be, NIXL_SUCCESS, NULL);
}

/* Register n objects named keys[i] (NULL: by devId dev0 + i, no metaInfo). */
static inline void reg_objs(nixl_agent_t *a, char **keys, size_t n, uint64_t dev0, bool dereg)
{
    nixl_reg_desc_t *d = calloc(n, sizeof(*d));
    assert_non_null(d);
    for (size_t i = 0; i < n; i++)
        d[i] = (nixl_reg_desc_t){.addr = 0, .len = 0, .dev_id = dev0 + i,
                                 .meta = keys ? keys[i] : NULL,
                                 .meta_len = keys ? strlen(keys[i]) : 0};
    if (dereg)
        EXPECT_ST(NIXL_SUCCESS, nixl_agent_deregister_mem(a, NIXL_OBJ_SEG, d, n, NULL));
    else
        EXPECT_ST(NIXL_SUCCESS, nixl_agent_register_mem(a, NIXL_OBJ_SEG, d, n, NULL));
    free(d);
}

/* A request of n pieces: buffer block i (bs bytes) <-> object dev0 + i at offset off. */
static inline nixl_status_t make_req(nixl_agent_t *a, nixl_xfer_op_t op, char *buf, size_t n, size_t bs,
                              uint64_t dev0, uint64_t off, nixl_xfer_req_t **req)
{
    nixl_desc_t *l = calloc(n, sizeof(*l)), *r = calloc(n, sizeof(*r));
    assert_non_null(l);
    assert_non_null(r);
    for (size_t i = 0; i < n; i++) {
        l[i] = (nixl_desc_t){(uintptr_t)(buf + i * bs), bs, 0};
        r[i] = (nixl_desc_t){off, bs, dev0 + i};
    }
    nixl_opt_args_t opt;
    nixl_opt_args_init(&opt);
    opt.skip_desc_merge = true;
    nixl_status_t st = nixl_agent_create_xfer_req(a, op, NIXL_DRAM_SEG, l, n, NIXL_OBJ_SEG, r, n,
                                                  "self", &opt, req);
    free(l);
    free(r);
    return st;
}

static inline nixl_xfer_req_t *req_of(nixl_agent_t *a, nixl_xfer_op_t op, char *buf, size_t n,
                               size_t bs, uint64_t dev0)
{
    nixl_xfer_req_t *r = NULL;
    EXPECT_ST(NIXL_SUCCESS, make_req(a, op, buf, n, bs, dev0, 0, &r));
    return r;
}

/* Write n objects of bs bytes with pattern seed (seed + i per object), read back, verify. */
static inline void roundtrip(nixl_agent_t *a, char *buf, size_t n, size_t bs, uint64_t dev0,
                      unsigned seed)
{
    nixl_xfer_req_t *w = req_of(a, NIXL_WRITE, buf, n, bs, dev0);
    nixl_xfer_req_t *r = req_of(a, NIXL_READ, buf, n, bs, dev0);
    for (unsigned s = seed; s < seed + 2; s++) { /* the second round reposts both handles */
        for (size_t i = 0; i < n; i++)
            t_fill(buf + i * bs, bs, s + (unsigned)i);
        EXPECT_ST(NIXL_SUCCESS, t_post_wait(a, w, NULL));
        memset(buf, 0, n * bs);
        EXPECT_ST(NIXL_SUCCESS, t_post_wait(a, r, NULL));
        for (size_t i = 0; i < n; i++)
            EXPECT_PATTERN(buf + i * bs, bs, s + (unsigned)i);
    }
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(a, w));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(a, r));
}

/* An engine with these parameters fails a WRITE and a READ with `code` in the reason. */
static inline void expect_fail(const nixl_param_t *p, size_t np, const char *code)
{
    nixl_agent_t *a = agent_with(p, np, NULL, NIXL_SUCCESS, NULL);
    char *key = "x";
    reg_objs(a, &key, 1, 1, false);
    char *buf = t_alloc(4096);
    t_reg(a, buf, 4096);
    nixl_xfer_req_t *w = req_of(a, NIXL_WRITE, buf, 1, 4096, 1);
    nixl_xfer_req_t *r = req_of(a, NIXL_READ, buf, 1, 4096, 1);
    EXPECT_ERR(NIXL_ERR_BACKEND, code, t_post_wait(a, w, NULL));
    EXPECT_ERR(NIXL_ERR_BACKEND, code, t_post_wait(a, r, NULL));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(a, w));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(a, r));
    t_dereg(a, buf, 4096);
    nixl_agent_destroy(a);
    free(buf);
}

#endif
