/*
 * test_agent_prep.c - prepared descriptor lists and requests made from them by index: the
 * three kinds of list (local, loopback, remote), argument checking, descriptor merging (seen
 * through telemetry's desc_count), lists and requests that outlive their peer's metadata, and
 * an agent destroyed with requests and lists still outstanding.
 */
#include "agent_test.h"

#define NDESC 8
#define DLEN 1024
#define LEN (NDESC * DLEN)

typedef struct fix {
    nixl_agent_t *a, *b;
    uint8_t *asrc, *adst, *bbuf;
    nixl_desc_t src[NDESC], dst[NDESC], bd[NDESC]; /* NDESC contiguous pieces of each */
} fix_t;

static int setup(void **state)
{
    fix_t *f = calloc(1, sizeof(*f));
    nixl_agent_config_t cfg;
    nixl_agent_config_init(&cfg);
    cfg.capture_telemetry = true;
    f->a = t_agent("A", &cfg, NULL, NULL);
    f->b = t_agent("B", &cfg, NULL, NULL);
    f->asrc = t_alloc(LEN);
    f->adst = t_alloc(LEN);
    f->bbuf = t_alloc(LEN);
    for (size_t i = 0; i < NDESC; i++) {
        f->src[i] = t_desc(f->asrc + i * DLEN, DLEN);
        f->dst[i] = t_desc(f->adst + i * DLEN, DLEN);
        f->bd[i] = t_desc(f->bbuf + i * DLEN, DLEN);
    }
    t_reg(f->a, f->asrc, LEN);
    t_reg(f->a, f->adst, LEN);
    t_reg(f->b, f->bbuf, LEN);
    t_load(f->a, f->b);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fix_t *f = *state;
    nixl_agent_destroy(f->a);
    nixl_agent_destroy(f->b);
    free(f->asrc);
    free(f->adst);
    free(f->bbuf);
    free(f);
    return 0;
}

static nixl_dlist_t *prep(nixl_agent_t *ag, const char *who, const nixl_desc_t *d, size_t n)
{
    nixl_dlist_t *dl = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_prep_xfer_dlist(ag, who, NIXL_DRAM_SEG, d, n, NULL, &dl));
    assert_non_null(dl);
    return dl;
}

static void seq(int *idx, size_t n, int first, int step)
{
    for (size_t i = 0; i < n; i++)
        idx[i] = first + (int)i * step;
}

/* ------------------------------------------------------------------------------------------ */

static void test_prep_errors(void **state)
{
    fix_t *f = *state;
    nixl_dlist_t *dl = (nixl_dlist_t *)0x1;
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, "nobody",
               nixl_agent_prep_xfer_dlist(f->a, "nobody", NIXL_DRAM_SEG, f->bd, 1, NULL, &dl));
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, NULL,
               nixl_agent_prep_xfer_dlist(f->a, "B", NIXL_DRAM_SEG, f->bd, 0, NULL, &dl));
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, NULL,
               nixl_agent_prep_xfer_dlist(f->a, NIXL_INIT_AGENT, NIXL_DRAM_SEG, f->src, 0, NULL, &dl));
    /* B's memory is not A's, and A's is not B's */
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, NULL,
               nixl_agent_prep_xfer_dlist(f->a, NIXL_INIT_AGENT, NIXL_DRAM_SEG, f->bd, 1, NULL, &dl));
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, NULL,
               nixl_agent_prep_xfer_dlist(f->a, "B", NIXL_DRAM_SEG, f->src, 1, NULL, &dl));
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, NULL,
               nixl_agent_prep_xfer_dlist(f->a, "A", NIXL_DRAM_SEG, f->bd, 1, NULL, &dl));
    /* one bad descriptor spoils the list, and is named */
    nixl_desc_t mixed[3] = {f->src[0], f->src[1], t_desc(f->asrc + LEN - 10, 20)};
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, "descriptor 2",
               nixl_agent_prep_xfer_dlist(f->a, NIXL_INIT_AGENT, NIXL_DRAM_SEG, mixed, 3, NULL, &dl));
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, NULL,
               nixl_agent_prep_xfer_dlist(f->a, NIXL_INIT_AGENT, NIXL_VRAM_SEG, f->src, 1, NULL, &dl));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL,
               nixl_agent_prep_xfer_dlist(f->a, NIXL_INIT_AGENT, (nixl_mem_t)5, f->src, 1, NULL, &dl));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL,
               nixl_agent_prep_xfer_dlist(f->a, NULL, NIXL_DRAM_SEG, f->src, 1, NULL, &dl));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL,
               nixl_agent_prep_xfer_dlist(f->a, NIXL_INIT_AGENT, NIXL_DRAM_SEG, NULL, 1, NULL, &dl));
    assert_ptr_equal(dl, (nixl_dlist_t *)0x1);
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL,
               nixl_agent_prep_xfer_dlist(f->a, NIXL_INIT_AGENT, NIXL_DRAM_SEG, f->src, 1, NULL, NULL));
    /* releasing: NULL is fine, a list of another agent is not */
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_dlist(f->a, NULL));
    nixl_dlist_t *mine = prep(f->a, NIXL_INIT_AGENT, f->src, 1);
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL, nixl_agent_release_dlist(f->b, mine));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_dlist(f->a, mine));
}

static void test_make_errors(void **state)
{
    fix_t *f = *state;
    nixl_dlist_t *loc = prep(f->a, NIXL_INIT_AGENT, f->src, NDESC);
    nixl_dlist_t *rem = prep(f->a, "B", f->bd, NDESC);
    nixl_dlist_t *self = prep(f->a, "A", f->dst, NDESC);
    /* a list with a shorter descriptor */
    nixl_desc_t shorter[2] = {f->bd[0], t_desc(f->bbuf + DLEN, DLEN - 1)};
    nixl_dlist_t *rshort = prep(f->a, "B", shorter, 2);
    nixl_dlist_t *bloc = prep(f->b, NIXL_INIT_AGENT, f->bd, NDESC);
    int li[NDESC], ri[NDESC];
    seq(li, NDESC, 0, 1);
    seq(ri, NDESC, 0, 1);
    nixl_xfer_req_t *r = (nixl_xfer_req_t *)0x1;
    nixl_agent_t *a = f->a;

    /* wrong kinds: the local side must be local, the remote side must not */
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, "local",
               nixl_agent_make_xfer_req(a, NIXL_WRITE, rem, li, 1, rem, ri, 1, NULL, &r));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, "local",
               nixl_agent_make_xfer_req(a, NIXL_WRITE, loc, li, 1, loc, ri, 1, NULL, &r));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL,
               nixl_agent_make_xfer_req(a, NIXL_WRITE, self, li, 1, rem, ri, 1, NULL, &r));
    /* a list of another agent */
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL,
               nixl_agent_make_xfer_req(a, NIXL_WRITE, bloc, li, 1, rem, ri, 1, NULL, &r));
    /* index lists */
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, "equal length",
               nixl_agent_make_xfer_req(a, NIXL_WRITE, loc, li, 3, rem, ri, 2, NULL, &r));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL,
               nixl_agent_make_xfer_req(a, NIXL_WRITE, loc, li, 0, rem, ri, 0, NULL, &r));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL,
               nixl_agent_make_xfer_req(a, NIXL_WRITE, loc, NULL, 1, rem, ri, 1, NULL, &r));
    int out_of_range[2] = {0, NDESC};
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, "out of range",
               nixl_agent_make_xfer_req(a, NIXL_WRITE, loc, li, 2, rem, out_of_range, 2, NULL, &r));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, "out of range",
               nixl_agent_make_xfer_req(a, NIXL_WRITE, loc, out_of_range, 2, rem, ri, 2, NULL, &r));
    int negative[2] = {1, -1};
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, "out of range",
               nixl_agent_make_xfer_req(a, NIXL_WRITE, loc, negative, 2, rem, ri, 2, NULL, &r));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, "out of range",
               nixl_agent_make_xfer_req(a, NIXL_WRITE, loc, li, 2, rem, negative, 2, NULL, &r));
    /* lengths of a pair differ */
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, "pair 1",
               nixl_agent_make_xfer_req(a, NIXL_WRITE, loc, li, 2, rshort, ri, 2, NULL, &r));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL,
               nixl_agent_make_xfer_req(a, (nixl_xfer_op_t)9, loc, li, 1, rem, ri, 1, NULL, &r));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL,
               nixl_agent_make_xfer_req(a, NIXL_WRITE, NULL, li, 1, rem, ri, 1, NULL, &r));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL,
               nixl_agent_make_xfer_req(a, NIXL_WRITE, loc, li, 1, rem, ri, 1, NULL, NULL));
    assert_ptr_equal(r, (nixl_xfer_req_t *)0x1);

    /* the one with a short descriptor works where lengths agree */
    r = NULL;
    int i0 = 0;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_make_xfer_req(a, NIXL_WRITE, loc, &i0, 1, rshort, &i0, 1,
                                                     NULL, &r));
    EXPECT_ST(NIXL_ERR_NOT_POSTED, nixl_agent_get_xfer_status(a, r));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(a, r));
    nixl_agent_release_dlist(a, loc);
    nixl_agent_release_dlist(a, rem);
    nixl_agent_release_dlist(a, self);
    nixl_agent_release_dlist(a, rshort);
    nixl_agent_release_dlist(f->b, bloc);
}

/* Requests by index move exactly the chosen pieces, to a peer and loopback; the lists can be
 * released as soon as the requests exist. */
static void test_make_by_index(void **state)
{
    fix_t *f = *state;
    nixl_dlist_t *loc = prep(f->a, NIXL_INIT_AGENT, f->src, NDESC);
    nixl_dlist_t *rem = prep(f->a, "B", f->bd, NDESC);
    nixl_dlist_t *self = prep(f->a, "A", f->dst, NDESC);
    /* piece i of the source goes to piece (NDESC-1-i), only the even ones */
    int li[NDESC / 2], ri[NDESC / 2];
    for (int i = 0; i < NDESC / 2; i++) {
        li[i] = 2 * i;
        ri[i] = NDESC - 1 - 2 * i;
    }
    nixl_opt_args_t o = t_notif_opt("by index");
    nixl_xfer_req_t *w = NULL, *lb = NULL, *rd = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_make_xfer_req(f->a, NIXL_WRITE, loc, li, NDESC / 2, rem,
                                                     ri, NDESC / 2, &o, &w));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_make_xfer_req(f->a, NIXL_WRITE, loc, li, NDESC / 2, self,
                                                     ri, NDESC / 2, &o, &lb));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_make_xfer_req(f->a, NIXL_READ, loc, ri, NDESC / 2, rem,
                                                     li, NDESC / 2, NULL, &rd));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_dlist(f->a, loc));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_dlist(f->a, rem));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_dlist(f->a, self));

    t_fill(f->asrc, LEN, 61);
    memset(f->bbuf, 0xcc, LEN);
    memset(f->adst, 0xcc, LEN);
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(f->a, w, NULL));
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(f->a, lb, NULL));
    for (int i = 0; i < NDESC; i++) {
        uint8_t *bpiece = f->bbuf + (size_t)i * DLEN, *apiece = f->adst + (size_t)i * DLEN;
        if (i % 2) { /* odd pieces of the target received even pieces of the source */
            const uint8_t *from = f->asrc + (size_t)(NDESC - 1 - i) * DLEN;
            assert_memory_equal(bpiece, from, DLEN);
            assert_memory_equal(apiece, from, DLEN);
        } else {
            EXPECT_BYTES(bpiece, DLEN, 0xcc);
            EXPECT_BYTES(apiece, DLEN, 0xcc);
        }
    }
    t_expect_one_notif(f->b, "A", "by index");
    t_expect_one_notif(f->a, "A", "by index");

    /* READ back from B's odd pieces into A's odd source pieces */
    t_fill(f->bbuf, LEN, 62);
    uint8_t *before = malloc(LEN);
    memcpy(before, f->asrc, LEN);
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(f->a, rd, NULL));
    for (int i = 0; i < NDESC; i++) {
        size_t off = (size_t)i * DLEN;
        if (i % 2)
            assert_memory_equal(f->asrc + off, f->bbuf + (size_t)(NDESC - 1 - i) * DLEN, DLEN);
        else
            assert_memory_equal(f->asrc + off, before + off, DLEN);
    }
    free(before);
    t_expect_no_notif(f->b);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(f->a, w));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(f->a, lb));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(f->a, rd));
}

/* desc_count after posting a request made with these indices (and merge setting). */
static uint64_t merged_count(fix_t *f, nixl_dlist_t *loc, nixl_dlist_t *rem, const int *li,
                             const int *ri, size_t n, bool skip_merge, uint64_t *bytes)
{
    nixl_opt_args_t o;
    nixl_opt_args_init(&o);
    o.skip_desc_merge = skip_merge;
    nixl_xfer_req_t *r = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_make_xfer_req(f->a, NIXL_WRITE, loc, li, n, rem, ri, n, &o, &r));
    t_fill(f->asrc, LEN, 70 + (unsigned)n);
    memset(f->bbuf, 0, LEN);
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(f->a, r, NULL));
    /* merged or not, the same bytes moved */
    nixl_desc_t *ld = f->src, *bd = f->bd;
    for (size_t i = 0; i < n; i++)
        assert_memory_equal((void *)bd[ri[i]].addr, (void *)ld[li[i]].addr, DLEN);
    nixl_xfer_telem_t tel;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_get_xfer_telemetry(f->a, r, &tel));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(f->a, r));
    *bytes = tel.total_bytes;
    return tel.desc_count;
}

static void test_merging(void **state)
{
    fix_t *f = *state;
    nixl_dlist_t *loc = prep(f->a, NIXL_INIT_AGENT, f->src, NDESC);
    nixl_dlist_t *rem = prep(f->a, "B", f->bd, NDESC);
    int li[NDESC], ri[NDESC];
    uint64_t bytes;

    seq(li, NDESC, 0, 1);
    seq(ri, NDESC, 0, 1);
    uint64_t merged = merged_count(f, loc, rem, li, ri, NDESC, false, &bytes);
    assert_int_equal(bytes, LEN);
    uint64_t unmerged = merged_count(f, loc, rem, li, ri, NDESC, true, &bytes);
    assert_int_equal(bytes, LEN);
    assert_int_equal(unmerged, NDESC);
    assert_true(merged < unmerged);
    assert_int_equal(merged, 1);

    /* two runs: 0,1,2 then 5,6,7 */
    int l2[6] = {0, 1, 2, 5, 6, 7}, r2[6] = {0, 1, 2, 5, 6, 7};
    assert_int_equal(merged_count(f, loc, rem, l2, r2, 6, false, &bytes), 2);
    assert_int_equal(bytes, 6 * DLEN);
    /* contiguous on one side only: nothing to fuse */
    int r3[4] = {0, 2, 4, 6};
    seq(li, 4, 0, 1);
    assert_int_equal(merged_count(f, loc, rem, li, r3, 4, false, &bytes), 4);
    /* descending indices are not consecutive */
    seq(li, NDESC, NDESC - 1, -1);
    assert_int_equal(merged_count(f, loc, rem, li, li, NDESC, false, &bytes), NDESC);
    /* shifted by one on the remote side: still one run */
    seq(li, NDESC - 1, 0, 1);
    seq(ri, NDESC - 1, 1, 1);
    assert_int_equal(merged_count(f, loc, rem, li, ri, NDESC - 1, false, &bytes), 1);
    assert_int_equal(bytes, (NDESC - 1) * DLEN);
    nixl_agent_release_dlist(f->a, loc);
    nixl_agent_release_dlist(f->a, rem);
}

/* Prepared lists remember the peer's generation (docs/differences.md item 5). */
static void test_stale_dlists(void **state)
{
    fix_t *f = *state;
    nixl_dlist_t *loc = prep(f->a, NIXL_INIT_AGENT, f->src, NDESC);
    nixl_dlist_t *rem = prep(f->a, "B", f->bd, NDESC);
    int idx[1] = {0};
    nixl_xfer_req_t *before = NULL, *r = (nixl_xfer_req_t *)0x1;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_make_xfer_req(f->a, NIXL_WRITE, loc, idx, 1, rem, idx, 1,
                                                     NULL, &before));

    /* invalidated and reloaded: the old list and the old request are refused */
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_invalidate_remote_md(f->a, "B"));
    t_load(f->a, f->b);
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, "invalidated",
               nixl_agent_make_xfer_req(f->a, NIXL_WRITE, loc, idx, 1, rem, idx, 1, NULL, &r));
    assert_ptr_equal(r, (nixl_xfer_req_t *)0x1);
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, NULL, nixl_agent_post_xfer_req(f->a, before, NULL));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(f->a, before));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_dlist(f->a, rem));

    /* a fresh list works */
    rem = prep(f->a, "B", f->bd, NDESC);
    r = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_make_xfer_req(f->a, NIXL_WRITE, loc, idx, 1, rem, idx, 1,
                                                     NULL, &r));
    t_fill(f->asrc, DLEN, 80);
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(f->a, r, NULL));
    EXPECT_PATTERN(f->bbuf, DLEN, 80);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(f->a, r));

    /* invalidated only */
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_invalidate_remote_md(f->a, "B"));
    r = (nixl_xfer_req_t *)0x1;
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, NULL,
               nixl_agent_make_xfer_req(f->a, NIXL_WRITE, loc, idx, 1, rem, idx, 1, NULL, &r));
    assert_ptr_equal(r, (nixl_xfer_req_t *)0x1);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_dlist(f->a, rem));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_dlist(f->a, loc));

    /* a loopback list survives anything done to peers */
    nixl_dlist_t *l2 = prep(f->a, NIXL_INIT_AGENT, f->src, NDESC);
    nixl_dlist_t *self = prep(f->a, "A", f->dst, NDESC);
    t_load(f->a, f->b);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_invalidate_remote_md(f->a, "B"));
    r = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_make_xfer_req(f->a, NIXL_WRITE, l2, idx, 1, self, idx, 1,
                                                     NULL, &r));
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(f->a, r, NULL));
    EXPECT_PATTERN(f->adst, DLEN, 80);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(f->a, r));
    nixl_agent_release_dlist(f->a, l2);
    nixl_agent_release_dlist(f->a, self);
}

/* Destroying agents with requests (unposted, done, in flight) and lists still outstanding
 * frees them (docs/differences.md item 15); valgrind and ASan check that nothing leaks. */
static void test_destroy_with_outstanding(void **state)
{
    (void)state;
    const size_t big = (size_t)64 << 20;
    nixl_agent_t *a = t_agent("A", NULL, "1048576", NULL);
    nixl_agent_t *b = t_agent("B", NULL, NULL, NULL);
    uint8_t *abuf = t_alloc(big), *bbuf = t_alloc(big);
    t_reg(a, abuf, big);
    t_reg(b, bbuf, big);
    t_load(a, b);
    t_load(b, a);
    nixl_desc_t ad = t_desc(abuf, big), bd = t_desc(bbuf, big), small = t_desc(abuf, 4096);
    nixl_desc_t bsmall = t_desc(bbuf, 4096);
    nixl_xfer_req_t *unposted = NULL, *done = NULL, *inflight = NULL, *loop = NULL, *byb = NULL;
    nixl_opt_args_t o = t_notif_opt("bye");
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create_xfer_req(a, NIXL_WRITE, NIXL_DRAM_SEG, &small, 1,
                                                       NIXL_DRAM_SEG, &bsmall, 1, "B", &o,
                                                       &unposted));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create_xfer_req(a, NIXL_READ, NIXL_DRAM_SEG, &small, 1,
                                                       NIXL_DRAM_SEG, &bsmall, 1, "B", &o, &done));
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(a, done, NULL));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create_xfer_req(a, NIXL_WRITE, NIXL_DRAM_SEG, &ad, 1,
                                                       NIXL_DRAM_SEG, &bd, 1, "B", &o, &inflight));
    EXPECT_ST(NIXL_IN_PROG, nixl_agent_post_xfer_req(a, inflight, NULL));
    nixl_desc_t lh = t_desc(abuf, big / 2), rh = t_desc(abuf + big / 2, big / 2);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create_xfer_req(a, NIXL_WRITE, NIXL_DRAM_SEG, &lh, 1,
                                                       NIXL_DRAM_SEG, &rh, 1, "A", &o, &loop));
    EXPECT_ST(NIXL_IN_PROG, nixl_agent_post_xfer_req(a, loop, NULL));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create_xfer_req(b, NIXL_WRITE, NIXL_DRAM_SEG, &bsmall, 1,
                                                       NIXL_DRAM_SEG, &small, 1, "A", &o, &byb));
    nixl_dlist_t *l1 = prep(a, NIXL_INIT_AGENT, &small, 1), *l2 = prep(a, "B", &bsmall, 1);
    nixl_dlist_t *l3 = prep(a, "A", &small, 1), *l4 = prep(b, NIXL_INIT_AGENT, &bsmall, 1);
    (void)l1, (void)l2, (void)l3, (void)l4;
    /* notifications waiting in a queue are freed too */
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_gen_notif(a, "A", "pending", 7, NULL));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_gen_notif(b, "A", "pending", 7, NULL));
    nixl_agent_destroy(a);
    nixl_agent_destroy(b);
    free(abuf);
    free(bbuf);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    unsetenv("NIXL_TELEMETRY_ENABLE");
    const struct CMUnitTest tests[] = {
        T(test_prep_errors),
        T(test_make_errors),
        T(test_make_by_index),
        T(test_merging),
        T(test_stale_dlists),
        cmocka_unit_test(test_destroy_with_outstanding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
