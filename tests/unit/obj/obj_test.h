/*
 * obj_test.h - helpers of the object-store backend tests: an agent "self" whose one engine is
 * OBJ on the server at ot_endpoint (keys ot_ak / ot_sk), or ot_backend with the parameters
 * ot_params when the test sets them (AZURE_BLOB), registrations of objects by key or devId, and
 * loopback requests between DRAM blocks and objects. Only the public API, plus agent_test.h.
 */
#ifndef NIXL_TEST_OBJ_TEST_H
#define NIXL_TEST_OBJ_TEST_H

#include <unistd.h>

#include "agent_test.h"

/* The server the helpers talk to (set by the test before use). */
static const char *ot_endpoint, *ot_ak, *ot_sk;
/* Another backend than OBJ, and its base parameters (at most 8). */
static const char *ot_backend;
static nixl_param_t ot_params[8];
static size_t ot_nparams;

/* An agent "self" with one OBJ engine on our server; extra params override. */
static inline nixl_agent_t *agent_with(const nixl_param_t *extra, size_t nextra, nixl_backend_t **be,
                                nixl_status_t want, const char *reason)
{
    nixl_param_t p[16] = {{"bucket", "bkt"},        {"endpoint_override", ot_endpoint},
                          {"access_key", ot_ak}, {"secret_key", ot_sk},
                          {"scheme", "http"},       {"region", "us-east-1"}};
    size_t n = 6;
    if (ot_backend) {
        n = ot_nparams;
        memcpy(p, ot_params, n * sizeof(p[0]));
    }
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
    nixl_status_t st = nixl_agent_create_backend(a, ot_backend ? ot_backend : "OBJ", p, n, &b);
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

/* The independent client of the test (boto3, az_check.py): "put KEY FILE" uploads FILE,
 * "getmany PREFIX N FILE" writes objects PREFIX0..PREFIX<N-1> concatenated into FILE; its exit status. NULL: none. */
static int (*ot_check)(const char *fmt, ...);

/* One parameter and the reason of the failure it brings. */
typedef struct ot_case {
    nixl_param_t p;
    const char *why;
} ot_case_t;

/* Each of fail[] alone makes a WRITE and a READ fail (NIXL_ERR_BACKEND, its reason); each of
 * refused[] alone is refused at createBackend with its reason. */
static inline void ot_errors(const ot_case_t *fail, size_t nfail, const ot_case_t *refused,
                             size_t nrefused)
{
    for (size_t i = 0; i < nfail; i++)
        expect_fail(&fail[i].p, 1, fail[i].why);
    for (size_t i = 0; i < nrefused; i++)
        nixl_agent_destroy(agent_with(&refused[i].p, 1, NULL, NIXL_ERR_BACKEND, refused[i].why));
}


/* The file's bytes (malloc), its length in *len; the file is removed. */
static inline char *ot_take_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc(*len ? *len : 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, *len, f), *len);
    fclose(f);
    unlink(path);
    return p;
}

/* The independent client reads object `key`: len bytes of pattern seed. */
static inline void ot_expect_object(const char *key, size_t len, unsigned seed)
{
    char path[64];
    size_t got_len;
    snprintf(path, sizeof(path), "/tmp/nixl-obj-get.%d", getpid());
    assert_int_equal(ot_check("get '%s' %s", key, path), 0);
    char *got = ot_take_file(path, &got_len);
    assert_int_equal(got_len, len);
    EXPECT_PATTERN(got, got_len, seed);
    free(got);
}

/* Three objects named by metaInfo (with characters to encode) and one by devId: written and
 * read back twice by us, then read by the independent client, names as they are. */
static inline void ot_test_roundtrip_keys(void **state)
{
    (void)state;
    nixl_agent_t *a = agent(NULL);
    char *keys[3] = {"rt/a", "rt/b c+d", "rt/\xc3\xa9t\xc3\xa9?x=1&y"};
    size_t bs = 1u << 20;
    char *buf = t_alloc(3 * bs);
    t_reg(a, buf, 3 * bs);
    reg_objs(a, keys, 3, 100, false);
    roundtrip(a, buf, 3, bs, 100, 1);
    for (size_t i = 0; ot_check && i < 3; i++) /* the second round: seed 2 + i */
        ot_expect_object(keys[i], bs, 2 + (unsigned)i);
    reg_objs(a, keys, 3, 100, true);
    /* Without metaInfo the key is the decimal devId. */
    reg_objs(a, NULL, 1, 4242, false);
    roundtrip(a, buf, 1, 4096, 4242, 5);
    if (ot_check)
        ot_expect_object("4242", 4096, 6);
    t_dereg(a, buf, 3 * bs);
    nixl_agent_destroy(a);
    free(buf);
}

/* One object `key` of len bytes (a staged upload with the parameters p) written and read back
 * twice by us, then read by the independent client (when there is one). */
static inline void ot_big_roundtrip(const nixl_param_t *p, size_t np, const char *key, size_t len)
{
    nixl_agent_t *a = agent_with(p, np, NULL, NIXL_SUCCESS, NULL);
    char *k = (char *)key;
    reg_objs(a, &k, 1, 1, false);
    char *buf = t_alloc(len);
    t_reg(a, buf, len);
    roundtrip(a, buf, 1, len, 1, 11);
    if (ot_check)
        ot_expect_object(key, len, 12);
    t_dereg(a, buf, len);
    nixl_agent_destroy(a);
    free(buf);
}

/* The independent client writes the object `key` (3 MiB): we read it whole and at an offset;
 * a range past the end and a missing object (missing_code in the reason) are errors, and a
 * whole-object write at an offset is refused at prep. */
static inline void ot_read_foreign(const char *key, const char *missing_code)
{
    size_t len = 3u << 20;
    char *src = t_alloc(len), path[64];
    t_fill(src, len, 9);
    snprintf(path, sizeof(path), "/tmp/nixl-obj-put.%d", getpid());
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(src, 1, len, f), len);
    fclose(f);
    assert_int_equal(ot_check("put '%s' %s", key, path), 0);
    unlink(path);

    nixl_agent_t *a = agent(NULL);
    char *k = (char *)key;
    reg_objs(a, &k, 1, 7, false);
    char *buf = t_alloc(len);
    t_reg(a, buf, len);
    nixl_xfer_req_t *r = req_of(a, NIXL_READ, buf, 1, len, 7);
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(a, r, NULL));
    assert_memory_equal(buf, src, len);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(a, r));

    /* [1000, 1000 + 5000) of the object into the buffer's start */
    memset(buf, 0, len);
    EXPECT_ST(NIXL_SUCCESS, make_req(a, NIXL_READ, buf, 1, 5000, 7, 1000, &r));
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(a, r, NULL));
    assert_memory_equal(buf, src + 1000, 5000);
    EXPECT_BYTES(buf + 5000, 100, 0);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(a, r));

    /* A range that runs past the end: an error naming it, not a short success. */
    EXPECT_ST(NIXL_SUCCESS, make_req(a, NIXL_READ, buf, 1, 4096, 7, len - 100, &r));
    EXPECT_ERR(NIXL_ERR_BACKEND, "ends before the range", t_post_wait(a, r, NULL));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(a, r));
    /* A missing object: the server's error code in the reason. */
    char *missing = "no-such-key";
    reg_objs(a, &missing, 1, 8, false);
    EXPECT_ST(NIXL_SUCCESS, make_req(a, NIXL_READ, buf, 1, 4096, 8, 0, &r));
    EXPECT_ERR(NIXL_ERR_BACKEND, missing_code, t_post_wait(a, r, NULL));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(a, r));

    /* A whole-object write at an offset: refused at prep. */
    r = NULL;
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, "offset", make_req(a, NIXL_WRITE, buf, 1, 4096, 7, 10, &r));
    assert_null(r);
    t_dereg(a, buf, len);
    nixl_agent_destroy(a);
    free(buf);
    free(src);
}

/* 1,000 objects of 4 KiB in one request each way; the independent client reads them all. */
static inline void ot_test_thousand(void **state)
{
    (void)state;
    size_t n = 1000, bs = 4096;
    nixl_agent_t *a = agent(NULL);
    char **keys = calloc(n, sizeof(*keys));
    assert_non_null(keys);
    for (size_t i = 0; i < n; i++) {
        keys[i] = malloc(32);
        snprintf(keys[i], 32, "many/%zu", i);
    }
    reg_objs(a, keys, n, 10000, false);
    char *buf = t_alloc(n * bs);
    t_reg(a, buf, n * bs);
    roundtrip(a, buf, n, bs, 10000, 20);
    if (ot_check) {
        char path[64];
        size_t len;
        snprintf(path, sizeof(path), "/tmp/nixl-obj-many.%d", getpid());
        assert_int_equal(ot_check("getmany many/ %zu %s", n, path), 0);
        char *got = ot_take_file(path, &len);
        assert_int_equal(len, n * bs);
        for (size_t i = 0; i < n; i++)
            EXPECT_PATTERN(got + i * bs, bs, 21 + (unsigned)i);
        free(got);
    }
    reg_objs(a, keys, n, 10000, true);
    for (size_t i = 0; i < n; i++)
        free(keys[i]);
    free(keys);
    t_dereg(a, buf, n * bs);
    nixl_agent_destroy(a);
    free(buf);
}

/* query_mem: size of an object written, no value for missing ones (by metaInfo and devId);
 * with the parameters `bad` (wrong credentials) the whole query fails with "403". */
static inline void ot_query(const nixl_param_t *bad, size_t nbad)
{
    nixl_backend_t *be = NULL;
    nixl_agent_t *a = agent(&be);
    char *key = "q/one";
    reg_objs(a, &key, 1, 1, false);
    char *buf = t_alloc(12345);
    t_reg(a, buf, 12345);
    nixl_xfer_req_t *w = req_of(a, NIXL_WRITE, buf, 1, 12345, 1);
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(a, w, NULL));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(a, w));
    /* Registration is not needed; metaInfo names the key, else devId. */
    nixl_reg_desc_t d[3] = {{0, 0, 0, "q/one", 5}, {0, 0, 0, "q/none", 6}, {0, 0, 99, NULL, 0}};
    nixl_opt_args_t opt;
    nixl_opt_args_init(&opt);
    opt.backends = &be;
    opt.num_backends = 1;
    nixl_query_resp_t *resp = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_query_mem(a, NIXL_OBJ_SEG, d, 3, &opt, &resp));
    assert_true(resp[0].has_value);
    assert_int_equal(resp[0].params.count, 1);
    assert_string_equal(resp[0].params.items[0].key, "size");
    assert_string_equal(resp[0].params.items[0].value, "12345");
    assert_false(resp[1].has_value);
    assert_false(resp[2].has_value);
    nixl_free(resp);
    t_dereg(a, buf, 12345);
    nixl_agent_destroy(a);

    a = agent_with(bad, nbad, &be, NIXL_SUCCESS, NULL);
    opt.backends = &be;
    resp = NULL;
    EXPECT_ERR(NIXL_ERR_BACKEND, "403", nixl_agent_query_mem(a, NIXL_OBJ_SEG, d, 1, &opt, &resp));
    fprintf(stderr, "query with bad credentials: %s\n", nixl_last_error());
    nixl_agent_destroy(a);
    free(buf);
}

/* query_mem's edges: 150 descriptors with max_inflight 4 (each answer in its own slot: ten
 * objects of distinct sizes, names to encode among them, missing ones by metaInfo and by
 * devId), an empty object the independent client wrote (size "0"), no descriptors at all, a
 * memory type other than OBJ, and an engine whose server is not there (the parameter `dead`:
 * the whole query fails with the connection's reason, "onnect"). */
static inline void ot_query_edges(nixl_param_t dead)
{
    nixl_backend_t *be = NULL;
    const nixl_param_t few = {"max_inflight", "4"};
    nixl_agent_t *a = agent_with(&few, 1, &be, NIXL_SUCCESS, NULL);
    char names[10][32], *buf = t_alloc(128), path[64];
    t_reg(a, buf, 128);
    for (int k = 0; k < 10; k++) {
        snprintf(names[k], sizeof(names[k]), k % 2 ? "qe/%d \xc3\xa9+x?y" : "qe/%d", k);
        char *key = names[k];
        reg_objs(a, &key, 1, 500 + (uint64_t)k, false);
        nixl_xfer_req_t *w = req_of(a, NIXL_WRITE, buf, 1, 100 + (size_t)k, 500 + (uint64_t)k);
        EXPECT_ST(NIXL_SUCCESS, t_post_wait(a, w, NULL));
        EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(a, w));
    }
    if (ot_check) {
        snprintf(path, sizeof(path), "/tmp/nixl-obj-empty.%d", getpid());
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        fclose(f);
        assert_int_equal(ot_check("put qe/empty %s", path), 0);
        unlink(path);
    }
    enum { N = 151 };
    nixl_reg_desc_t d[N];
    char missing[N][32];
    for (size_t i = 0; i < N - 1; i++) {
        size_t j = i % 12;
        snprintf(missing[i], sizeof(missing[i]), "qe/none/%zu", i);
        const char *key = j < 10 ? names[j] : j == 10 ? missing[i] : NULL;
        d[i] = (nixl_reg_desc_t){.dev_id = 900000 + i, .meta = key,
                                 .meta_len = key ? strlen(key) : 0};
    }
    d[N - 1] = (nixl_reg_desc_t){.meta = "qe/empty", .meta_len = 8};
    nixl_opt_args_t opt;
    nixl_opt_args_init(&opt);
    opt.backends = &be;
    opt.num_backends = 1;
    nixl_query_resp_t *resp = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_query_mem(a, NIXL_OBJ_SEG, d, ot_check ? N : N - 1, &opt,
                                                 &resp));
    for (size_t i = 0; i < N - 1; i++) {
        size_t j = i % 12;
        assert_int_equal(resp[i].has_value, j < 10);
        if (j < 10) {
            char want[8];
            snprintf(want, sizeof(want), "%zu", 100 + j);
            assert_int_equal(resp[i].params.count, 1);
            assert_string_equal(resp[i].params.items[0].key, "size");
            assert_string_equal(resp[i].params.items[0].value, want);
        }
    }
    if (ot_check) {
        assert_true(resp[N - 1].has_value);
        assert_string_equal(resp[N - 1].params.items[0].value, "0");
    }
    nixl_free(resp);
    resp = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_query_mem(a, NIXL_OBJ_SEG, NULL, 0, &opt, &resp));
    nixl_free(resp);
    resp = NULL;
    EXPECT_ERR(NIXL_ERR_NOT_SUPPORTED, "OBJ descriptors only",
               nixl_agent_query_mem(a, NIXL_DRAM_SEG, d, 1, &opt, &resp));
    assert_null(resp);
    t_dereg(a, buf, 128);
    nixl_agent_destroy(a);
    free(buf);

    a = agent_with(&dead, 1, &be, NIXL_SUCCESS, NULL);
    opt.backends = &be;
    EXPECT_ERR(NIXL_ERR_BACKEND, "onnect", nixl_agent_query_mem(a, NIXL_OBJ_SEG, d, 3, &opt,
                                                                 &resp));
    assert_null(resp);
    fprintf(stderr, "query without a server: %s\n", nixl_last_error());
    nixl_agent_destroy(a);
}

/* Releasing requests in flight: they stop, nothing is left running, the engine goes on. */
static inline void ot_test_release_in_flight(void **state)
{
    (void)state;
    size_t n = 64, bs = 1u << 20;
    nixl_agent_t *a = agent(NULL);
    reg_objs(a, NULL, n, 500, false);
    char *buf = t_alloc(n * bs);
    t_reg(a, buf, n * bs);
    for (int round = 0; round < 3; round++) {
        nixl_xfer_req_t *w = req_of(a, NIXL_WRITE, buf, n, bs, 500);
        nixl_status_t st = nixl_agent_post_xfer_req(a, w, NULL);
        assert_true(st == NIXL_IN_PROG || st == NIXL_SUCCESS);
        t_sleep_us(round * 20000);
        EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(a, w));
    }
    roundtrip(a, buf, 4, bs, 500, 40); /* and it still works */
    t_dereg(a, buf, n * bs);
    nixl_agent_destroy(a);
    free(buf);
}

/* 128 MiB on the way (engine parameters p) when kill(arg) stops the server: the request ends
 * in an error within 60 s, and a repost fails to connect. */
static inline void ot_killed_mid_write(const nixl_param_t *p, size_t np, void (*kill_fn)(void *),
                                       void *arg)
{
    size_t n = 8, bs = 16u << 20;
    nixl_agent_t *a = agent_with(p, np, NULL, NIXL_SUCCESS, NULL);
    reg_objs(a, NULL, n, 1, false);
    char *buf = t_alloc(n * bs);
    t_reg(a, buf, n * bs);
    t_fill(buf, n * bs, 3);
    nixl_xfer_req_t *w = req_of(a, NIXL_WRITE, buf, n, bs, 1);
    EXPECT_ST(NIXL_IN_PROG, nixl_agent_post_xfer_req(a, w, NULL));
    t_sleep_us(30000);
    kill_fn(arg);
    uint64_t t0 = t_now_ns();
    nixl_status_t st = t_wait(a, w, 60000);
    assert_true(st < 0 && st != NIXL_ERR_NOT_POSTED);
    assert_true(t_now_ns() - t0 < 60000000000ull);
    const char *why = nixl_last_error();
    fprintf(stderr, "after the kill: %s (%s)\n", nixl_status_str(st), why ? why : "");
    /* Posting again: nothing listens now, an error again. */
    EXPECT_ERR(NIXL_ERR_BACKEND, "onnect", t_post_wait(a, w, NULL));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(a, w));
    t_dereg(a, buf, n * bs);
    nixl_agent_destroy(a);
    free(buf);
}

#endif
