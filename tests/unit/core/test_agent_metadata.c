/*
 * test_agent_metadata.c - exporting, loading, checking and invalidating metadata between two
 * agents of one process (A and B, both with SHM, 5 x 1 KiB buffers registered on each), full
 * and partial, and what malformed or conflicting metadata does.
 *
 * Some blobs are built here by hand in the reference wire format (NIXL-SEMANTICS 5.8) to reach
 * load failures that an agent never produces: a tiny writer and reader for serdes records.
 */
#include <unistd.h>

#include "agent_test.h"

#define NBUF 5
#define BUFLEN 1024

typedef struct fix {
    nixl_agent_t *a, *b;
    nixl_backend_t *abe, *bbe;
    uint8_t *abuf[NBUF], *bbuf[NBUF];
    nixl_reg_desc_t breg[NBUF];
    nixl_desc_t bdesc[NBUF];
    uint8_t *unreg; /* never registered anywhere */
} fix_t;

static void fix_register(nixl_agent_t *ag, uint8_t **bufs)
{
    nixl_reg_desc_t d[NBUF];
    for (size_t i = 0; i < NBUF; i++)
        d[i] = t_rdesc(bufs[i], BUFLEN);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_register_mem(ag, NIXL_DRAM_SEG, d, NBUF, NULL));
}

static int setup(void **state)
{
    fix_t *f = calloc(1, sizeof(*f));
    f->a = t_agent("A", NULL, NULL, &f->abe);
    f->b = t_agent("B", NULL, NULL, &f->bbe);
    for (size_t i = 0; i < NBUF; i++) {
        f->abuf[i] = t_alloc(BUFLEN);
        f->bbuf[i] = t_alloc(BUFLEN);
        t_fill(f->abuf[i], BUFLEN, (unsigned)i);
        f->breg[i] = t_rdesc(f->bbuf[i], BUFLEN);
        f->bdesc[i] = t_desc(f->bbuf[i], BUFLEN);
    }
    f->unreg = t_alloc(BUFLEN);
    fix_register(f->a, f->abuf);
    fix_register(f->b, f->bbuf);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fix_t *f = *state;
    nixl_agent_destroy(f->a);
    nixl_agent_destroy(f->b);
    for (size_t i = 0; i < NBUF; i++) {
        free(f->abuf[i]);
        free(f->bbuf[i]);
    }
    free(f->unreg);
    free(f);
    return 0;
}

static nixl_status_t check_b(fix_t *f, const nixl_desc_t *d, size_t n)
{
    return nixl_agent_check_remote_md(f->a, "B", NIXL_DRAM_SEG, d, n);
}

/* B's partial metadata for `n` of its buffers starting at `first`. */
static void *partial_b(fix_t *f, size_t first, size_t n, bool conn, nixl_backend_t *only,
                       size_t *len)
{
    nixl_opt_args_t o;
    nixl_opt_args_init(&o);
    o.include_conn_info = conn;
    if (only) {
        o.backends = &only;
        o.num_backends = 1;
    }
    void *blob = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_get_local_partial_md(f->b, NIXL_DRAM_SEG, f->breg + first,
                                                             n, &o, &blob, len));
    assert_non_null(blob);
    return blob;
}

static nixl_status_t load(nixl_agent_t *into, const void *blob, size_t len)
{
    char *name = NULL;
    nixl_status_t st = nixl_agent_load_remote_md(into, blob, len, &name);
    if (st == NIXL_SUCCESS) {
        assert_non_null(name);
        assert_string_equal(name, "B");
    } else {
        assert_null(name);
    }
    nixl_free(name);
    return st;
}

/* A WRITE of A's buffer i into B's buffer i, checked byte by byte on B's side. */
static void write_a_to_b(fix_t *f, size_t i)
{
    nixl_desc_t s = t_desc(f->abuf[i], BUFLEN);
    nixl_xfer_req_t *r = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create_xfer_req(f->a, NIXL_WRITE, NIXL_DRAM_SEG, &s, 1,
                                                       NIXL_DRAM_SEG, &f->bdesc[i], 1, "B", NULL,
                                                       &r));
    memset(f->bbuf[i], 0, BUFLEN);
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(f->a, r, NULL));
    EXPECT_PATTERN(f->bbuf[i], BUFLEN, (unsigned)i);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(f->a, r));
}

/* ------------------------------------------------------------------------------------------ */
/* A hand-made metadata blob (reference serdes format)                                         */
/* ------------------------------------------------------------------------------------------ */

typedef struct wbuf {
    uint8_t *p;
    size_t len, cap;
} wbuf_t;

static void w_put(wbuf_t *w, const void *p, size_t n)
{
    if (w->len + n > w->cap) {
        w->cap = (w->len + n) * 2 + 64;
        w->p = realloc(w->p, w->cap);
        assert_non_null(w->p);
    }
    if (n)
        memcpy(w->p + w->len, p, n);
    w->len += n;
}

static void w_rec(wbuf_t *w, const char *tag, const void *a, size_t alen, const void *b,
                  size_t blen)
{
    uint64_t n = alen + blen;
    w_put(w, tag, strlen(tag));
    w_put(w, &n, sizeof(n));
    w_put(w, a, alen);
    w_put(w, b, blen);
    w_put(w, "|", 1);
}

static void w_u64(wbuf_t *w, const char *tag, uint64_t v)
{
    w_rec(w, tag, &v, sizeof(v), NULL, 0);
}

static void w_begin(wbuf_t *w, const char *name, const void *conn, size_t conn_len)
{
    w_put(w, "nixlSerDes|", 11);
    w_rec(w, "Agent", name, strlen(name), NULL, 0);
    w_u64(w, "Conns", conn ? 1 : 0);
    if (conn) {
        w_rec(w, "t", "SHM", 3, NULL, 0);
        w_rec(w, "c", conn, conn_len, NULL, 0);
    }
}

static void w_sections(wbuf_t *w, size_t n)
{
    w_rec(w, "", "MemSection", 10, NULL, 0);
    w_u64(w, "nixlSecElms", n);
}

static void w_section(wbuf_t *w, size_t count)
{
    uint32_t type = NIXL_DRAM_SEG;
    w_rec(w, "bknd", "SHM", 3, NULL, 0);
    w_rec(w, "nixlDList", "nixlSDList", 10, NULL, 0);
    w_rec(w, "t", &type, sizeof(type), NULL, 0);
    w_u64(w, "n", count);
}

static void w_region(wbuf_t *w, const nixl_desc_t *d, const void *blob, size_t blob_len)
{
    w_rec(w, "", d, sizeof(*d), blob, blob_len);
}

/* The payload of record `tag` at *pos (advanced past it). */
static const uint8_t *r_rec(const uint8_t *p, size_t len, size_t *pos, const char *tag,
                            uint64_t *n)
{
    size_t tl = strlen(tag);
    assert_true(*pos + tl + 8 <= len);
    assert_memory_equal(p + *pos, tag, tl);
    memcpy(n, p + *pos + tl, 8);
    const uint8_t *payload = p + *pos + tl + 8;
    assert_true(*pos + tl + 8 + *n + 1 <= len);
    assert_int_equal(payload[*n], '|');
    *pos += tl + 8 + *n + 1;
    return payload;
}

/* B's SHM connection info, read out of its connection-only partial metadata. */
static uint8_t *conn_info_of(nixl_agent_t *ag, size_t *out_len)
{
    void *blob = NULL;
    size_t len = 0;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_get_local_partial_md(ag, NIXL_DRAM_SEG, NULL, 0, NULL,
                                                             &blob, &len));
    const uint8_t *p = blob;
    assert_memory_equal(p, "nixlSerDes|", 11);
    size_t pos = 11;
    uint64_t n, count;
    r_rec(p, len, &pos, "Agent", &n);
    memcpy(&count, r_rec(p, len, &pos, "Conns", &n), 8);
    assert_int_equal(count, 1);
    const uint8_t *t = r_rec(p, len, &pos, "t", &n);
    assert_int_equal(n, 3);
    assert_memory_equal(t, "SHM", 3);
    const uint8_t *c = r_rec(p, len, &pos, "c", &n);
    uint8_t *copy = malloc(n);
    memcpy(copy, c, n);
    *out_len = n;
    nixl_free(blob);
    return copy;
}

/* ------------------------------------------------------------------------------------------ */
/* Full metadata                                                                               */
/* ------------------------------------------------------------------------------------------ */

static void test_load_and_check(void **state)
{
    fix_t *f = *state;
    void *blob = NULL;
    size_t len = 0;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_get_local_md(f->b, &blob, &len));
    assert_non_null(blob);
    assert_true(len > 11 + 5 * 24);
    assert_memory_equal(blob, "nixlSerDes|", 11);

    /* nothing is known before the load */
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, "B", check_b(f, NULL, 0));
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, "B", check_b(f, f->bdesc, NBUF));

    EXPECT_ST(NIXL_SUCCESS, load(f->a, blob, len));
    EXPECT_ST(NIXL_SUCCESS, check_b(f, NULL, 0));
    EXPECT_ST(NIXL_SUCCESS, check_b(f, f->bdesc, NBUF));
    for (size_t i = 0; i < NBUF; i++)
        EXPECT_ST(NIXL_SUCCESS, check_b(f, &f->bdesc[i], 1));
    nixl_desc_t inside = t_desc(f->bbuf[2] + 100, 500);
    EXPECT_ST(NIXL_SUCCESS, check_b(f, &inside, 1));

    /* what B did not register */
    nixl_desc_t unreg = t_desc(f->unreg, BUFLEN);
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, "B", check_b(f, &unreg, 1));
    nixl_desc_t past_end = t_desc(f->bbuf[1] + 1000, 100);
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, NULL, check_b(f, &past_end, 1));
    nixl_desc_t mixed[2] = {f->bdesc[0], unreg};
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, "descriptor 1", check_b(f, mixed, 2));
    nixl_desc_t other_dev = f->bdesc[0];
    other_dev.dev_id = 1;
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, NULL, check_b(f, &other_dev, 1));
    /* a type B has no regions of */
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, NULL,
               nixl_agent_check_remote_md(f->a, "B", NIXL_VRAM_SEG, f->bdesc, 1));
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, NULL,
               nixl_agent_check_remote_md(f->a, "C", NIXL_DRAM_SEG, f->bdesc, 1));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL,
               nixl_agent_check_remote_md(f->a, "B", (nixl_mem_t)7, f->bdesc, 1));

    /* loading again is idempotent; the name output is optional */
    EXPECT_ST(NIXL_SUCCESS, load(f->a, blob, len));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_load_remote_md(f->a, blob, len, NULL));
    EXPECT_ST(NIXL_SUCCESS, check_b(f, f->bdesc, NBUF));
    nixl_free(blob);

    /* and it works: A writes into each of B's buffers */
    for (size_t i = 0; i < NBUF; i++)
        write_a_to_b(f, i);

    /* the other way round too */
    t_load(f->b, f->a);
    nixl_desc_t ad = t_desc(f->abuf[4], BUFLEN);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_check_remote_md(f->b, "A", NIXL_DRAM_SEG, &ad, 1));
}

static void test_no_remote_backend(void **state)
{
    fix_t *f = *state;
    nixl_agent_t *c = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create("C", NULL, &c));
    void *blob = (void *)0x1;
    size_t len = 77;
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, "C", nixl_agent_get_local_md(c, &blob, &len));
    assert_ptr_equal(blob, (void *)0x1);
    assert_int_equal(len, 77);
    nixl_reg_desc_t d = t_rdesc(f->unreg, BUFLEN);
    EXPECT_ERR(NIXL_ERR_BACKEND, NULL,
               nixl_agent_get_local_partial_md(c, NIXL_DRAM_SEG, &d, 1, NULL, &blob, &len));
    /* no backend serves FILE on B either */
    EXPECT_ERR(NIXL_ERR_BACKEND, "FILE_SEG",
               nixl_agent_get_local_partial_md(f->b, NIXL_FILE_SEG, &d, 1, NULL, &blob, &len));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL, nixl_agent_get_local_md(f->b, NULL, &len));
    assert_ptr_equal(blob, (void *)0x1);
    nixl_agent_destroy(c);
}

static void test_invalidate(void **state)
{
    fix_t *f = *state;
    t_load(f->a, f->b);
    EXPECT_ST(NIXL_SUCCESS, check_b(f, f->bdesc, NBUF));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_invalidate_remote_md(f->a, "B"));
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, "B", check_b(f, f->bdesc, NBUF));
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, "B", check_b(f, NULL, 0));
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, "B", nixl_agent_invalidate_remote_md(f->a, "B"));
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, "nobody", nixl_agent_invalidate_remote_md(f->a, "nobody"));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, "A", nixl_agent_invalidate_remote_md(f->a, "A"));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL, nixl_agent_invalidate_remote_md(f->a, NULL));
    /* nothing of B is usable: no transfer, no notification, no connection */
    nixl_desc_t s = t_desc(f->abuf[0], BUFLEN);
    nixl_xfer_req_t *r = NULL;
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, "B",
               nixl_agent_create_xfer_req(f->a, NIXL_WRITE, NIXL_DRAM_SEG, &s, 1, NIXL_DRAM_SEG,
                                          &f->bdesc[0], 1, "B", NULL, &r));
    assert_null(r);
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, "B", nixl_agent_gen_notif(f->a, "B", "x", 1, NULL));
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, "B", nixl_agent_make_connection(f->a, "B", NULL));
    /* reloading brings it all back */
    t_load(f->a, f->b);
    EXPECT_ST(NIXL_SUCCESS, check_b(f, f->bdesc, NBUF));
    write_a_to_b(f, 3);
}

static void test_load_own_and_garbage(void **state)
{
    fix_t *f = *state;
    void *blob = NULL;
    size_t len = 0;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_get_local_md(f->a, &blob, &len));
    char *name = (char *)0x1;
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, "own", nixl_agent_load_remote_md(f->a, blob, len, &name));
    assert_ptr_equal(name, (char *)0x1);
    nixl_free(blob);

    EXPECT_ERR(NIXL_ERR_MISMATCH, NULL, nixl_agent_load_remote_md(f->a, "invalid", 7, &name));
    EXPECT_ERR(NIXL_ERR_MISMATCH, NULL, nixl_agent_load_remote_md(f->a, "invalid", 8, &name));
    EXPECT_ERR(NIXL_ERR_MISMATCH, NULL, nixl_agent_load_remote_md(f->a, "", 0, &name));
    EXPECT_ERR(NIXL_ERR_MISMATCH, NULL, nixl_agent_load_remote_md(f->a, "nixlSerDes|", 11, &name));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL, nixl_agent_load_remote_md(f->a, NULL, 5, &name));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL, nixl_agent_load_remote_md(NULL, "x", 1, &name));
    assert_ptr_equal(name, (char *)0x1);

    /* an empty agent name, or one longer than 255 bytes, is malformed */
    char longname[300];
    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    const char *names[] = {"", longname};
    for (size_t i = 0; i < 2; i++) {
        wbuf_t w = {0};
        w_begin(&w, names[i], NULL, 0);
        w_sections(&w, 0);
        EXPECT_ERR(NIXL_ERR_MISMATCH, NULL, nixl_agent_load_remote_md(f->a, w.p, w.len, &name));
        free(w.p);
    }
    assert_ptr_equal(name, (char *)0x1);
    /* but a well-formed blob with no connection info and no regions is fine: it names a peer */
    wbuf_t w = {0};
    w_begin(&w, "empty", NULL, 0);
    w_sections(&w, 0);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_load_remote_md(f->a, w.p, w.len, NULL));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_check_remote_md(f->a, "empty", NIXL_DRAM_SEG, NULL, 0));
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, NULL, nixl_agent_make_connection(f->a, "empty", NULL));
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, NULL, nixl_agent_gen_notif(f->a, "empty", "x", 1, NULL));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_invalidate_remote_md(f->a, "empty"));
    free(w.p);
}

static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint64_t rnd(void)
{
    return t_rnd(&rng);
}

/* Truncated and bit-flipped metadata fails cleanly (never crashes, never leaks, never leaves
 * half a peer behind); the real blob still loads afterwards. Run under valgrind too. */
static void test_load_corrupted(void **state)
{
    fix_t *f = *state;
    void *blob = NULL;
    size_t len = 0;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_get_local_md(f->b, &blob, &len));
    uint8_t *copy = malloc(len);

    for (size_t n = 0; n < len; n++) {
        memcpy(copy, blob, n);
        char *name = NULL;
        nixl_status_t st = nixl_agent_load_remote_md(f->a, copy, n, &name);
        if (st != NIXL_ERR_MISMATCH)
            print_error("truncated to %zu of %zu bytes: %s (%s)\n", n, len,
                        nixl_status_str(st), nixl_last_error());
        assert_int_equal(st, NIXL_ERR_MISMATCH);
        assert_true(nixl_last_error()[0] != '\0');
        assert_null(name);
        EXPECT_ST(NIXL_ERR_NOT_FOUND, check_b(f, NULL, 0));
    }

    size_t loaded = 0, failed = 0;
    for (int iter = 0; iter < 3000; iter++) {
        memcpy(copy, blob, len);
        int flips = 1 + (int)(rnd() % 3);
        for (int k = 0; k < flips; k++) {
            size_t at = (size_t)(rnd() % len);
            copy[at] ^= (uint8_t)(1u << (rnd() % 8));
        }
        char *name = NULL;
        nixl_status_t st = nixl_agent_load_remote_md(f->a, copy, len, &name);
        assert_true(st <= NIXL_SUCCESS && st >= NIXL_ERR_NO_TELEMETRY);
        if (st == NIXL_SUCCESS) {
            loaded++;
            assert_non_null(name);
            EXPECT_ST(NIXL_SUCCESS, nixl_agent_invalidate_remote_md(f->a, name));
            nixl_free(name);
        } else {
            failed++;
            assert_null(name);
            assert_true(nixl_last_error()[0] != '\0');
            /* a failed first load leaves no trace of B */
            EXPECT_ST(NIXL_ERR_NOT_FOUND, check_b(f, NULL, 0));
        }
    }
    print_message("bit flips: %zu loaded, %zu refused\n", loaded, failed);
    assert_true(failed > 0);

    EXPECT_ST(NIXL_SUCCESS, load(f->a, blob, len));
    EXPECT_ST(NIXL_SUCCESS, check_b(f, f->bdesc, NBUF));
    write_a_to_b(f, 0);
    free(copy);
    nixl_free(blob);
}

static void test_load_without_common_backend(void **state)
{
    fix_t *f = *state;
    nixl_agent_t *c = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create("C", NULL, &c));
    void *blob = NULL;
    size_t len = 0;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_get_local_md(f->b, &blob, &len));
    char *name = NULL;
    EXPECT_ERR(NIXL_ERR_BACKEND, "no common backend", nixl_agent_load_remote_md(c, blob, len, &name));
    assert_null(name);
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, NULL, nixl_agent_check_remote_md(c, "B", NIXL_DRAM_SEG, NULL, 0));
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, NULL,
               nixl_agent_check_remote_md(c, "B", NIXL_DRAM_SEG, f->bdesc, NBUF));
    nixl_free(blob);

    /* connection info alone does not help either */
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_get_local_partial_md(f->b, NIXL_DRAM_SEG, NULL, 0, NULL,
                                                             &blob, &len));
    EXPECT_ERR(NIXL_ERR_BACKEND, "no common backend", nixl_agent_load_remote_md(c, blob, len, NULL));
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, NULL, nixl_agent_check_remote_md(c, "B", NIXL_DRAM_SEG, NULL, 0));
    nixl_free(blob);
    nixl_agent_destroy(c);
}

/* ------------------------------------------------------------------------------------------ */
/* Partial metadata                                                                            */
/* ------------------------------------------------------------------------------------------ */

static void test_partial_accumulates(void **state)
{
    fix_t *f = *state;
    size_t len;
    /* an empty list: connection info only */
    void *blob = partial_b(f, 0, 0, false, NULL, &len);
    EXPECT_ST(NIXL_SUCCESS, load(f->a, blob, len));
    nixl_free(blob);
    EXPECT_ST(NIXL_SUCCESS, check_b(f, NULL, 0));
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, NULL, check_b(f, f->bdesc, 1));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_make_connection(f->a, "B", NULL));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_gen_notif(f->a, "B", "hello", 5, NULL));
    t_expect_one_notif(f->b, "A", "hello");

    /* B's descriptors were not sent: they cannot be prepared; the output stays alone */
    nixl_dlist_t *dl = NULL;
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, NULL,
               nixl_agent_prep_xfer_dlist(f->a, "B", NIXL_DRAM_SEG, f->bdesc, NBUF, NULL, &dl));
    assert_null(dl);
    dl = (nixl_dlist_t *)0x1;
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, NULL,
               nixl_agent_prep_xfer_dlist(f->a, "B", NIXL_DRAM_SEG, f->bdesc, 1, NULL, &dl));
    assert_ptr_equal(dl, (nixl_dlist_t *)0x1);

    /* 4 of 5, without connection info (it is loaded already) */
    blob = partial_b(f, 0, 4, false, NULL, &len);
    EXPECT_ST(NIXL_SUCCESS, load(f->a, blob, len));
    nixl_free(blob);
    EXPECT_ST(NIXL_SUCCESS, check_b(f, f->bdesc, 4));
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, NULL, check_b(f, &f->bdesc[4], 1));
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, NULL, check_b(f, f->bdesc, NBUF));
    dl = NULL;
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, NULL,
               nixl_agent_prep_xfer_dlist(f->a, "B", NIXL_DRAM_SEG, f->bdesc, NBUF, NULL, &dl));
    assert_null(dl);
    write_a_to_b(f, 1);

    /* the 5th later: all five (accumulated) */
    blob = partial_b(f, 4, 1, false, NULL, &len);
    EXPECT_ST(NIXL_SUCCESS, load(f->a, blob, len));
    nixl_free(blob);
    EXPECT_ST(NIXL_SUCCESS, check_b(f, f->bdesc, NBUF));
    EXPECT_ST(NIXL_SUCCESS,
              nixl_agent_prep_xfer_dlist(f->a, "B", NIXL_DRAM_SEG, f->bdesc, NBUF, NULL, &dl));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_dlist(f->a, dl));
    write_a_to_b(f, 4);
    /* toggling include_conn_info on later updates changes nothing */
    blob = partial_b(f, 2, 2, true, NULL, &len);
    EXPECT_ST(NIXL_SUCCESS, load(f->a, blob, len));
    nixl_free(blob);
    EXPECT_ST(NIXL_SUCCESS, check_b(f, f->bdesc, NBUF));
}

static void partial_with_conn(fix_t *f, nixl_agent_t *into, nixl_backend_t *only)
{
    size_t len;
    void *blob = partial_b(f, 0, 4, true, only, &len);
    EXPECT_ST(NIXL_SUCCESS, load(into, blob, len));
    nixl_free(blob);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_check_remote_md(into, "B", NIXL_DRAM_SEG, f->bdesc, 4));
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, NULL,
               nixl_agent_check_remote_md(into, "B", NIXL_DRAM_SEG, &f->bdesc[4], 1));
    blob = partial_b(f, 4, 1, true, only, &len);
    EXPECT_ST(NIXL_SUCCESS, load(into, blob, len));
    nixl_free(blob);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_check_remote_md(into, "B", NIXL_DRAM_SEG, f->bdesc, NBUF));
}

static void test_partial_with_conn_info(void **state)
{
    fix_t *f = *state;
    partial_with_conn(f, f->a, NULL);
    write_a_to_b(f, 2);
    /* the same restricted to one backend, into another agent */
    nixl_agent_t *c = t_agent("C", NULL, NULL, NULL);
    partial_with_conn(f, c, f->bbe);
    nixl_agent_destroy(c);
}

static void test_partial_errors(void **state)
{
    fix_t *f = *state;
    void *blob = (void *)0x1;
    size_t len = 0;
    /* a region B never registered */
    nixl_reg_desc_t unreg = t_rdesc(f->unreg, BUFLEN);
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, "descriptor 0",
               nixl_agent_get_local_partial_md(f->b, NIXL_DRAM_SEG, &unreg, 1, NULL, &blob, &len));
    /* a part of a registered region is not a registered region */
    nixl_reg_desc_t part = t_rdesc(f->bbuf[0], BUFLEN / 2);
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, NULL,
               nixl_agent_get_local_partial_md(f->b, NIXL_DRAM_SEG, &part, 1, NULL, &blob, &len));
    nixl_reg_desc_t list[2] = {f->breg[0], unreg};
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, "descriptor 1",
               nixl_agent_get_local_partial_md(f->b, NIXL_DRAM_SEG, list, 2, NULL, &blob, &len));
    assert_ptr_equal(blob, (void *)0x1);

    /* descriptors without connection info, into an agent that has none of B's */
    blob = partial_b(f, 0, 2, false, NULL, &len);
    char *name = NULL;
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, "connection info",
               nixl_agent_load_remote_md(f->a, blob, len, &name));
    assert_null(name);
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, NULL, check_b(f, NULL, 0));
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, NULL, check_b(f, f->bdesc, 2));
    /* the same blob is fine once the connection info is there */
    size_t clen;
    void *conn = partial_b(f, 0, 0, false, NULL, &clen);
    EXPECT_ST(NIXL_SUCCESS, load(f->a, conn, clen));
    EXPECT_ST(NIXL_SUCCESS, load(f->a, blob, len));
    EXPECT_ST(NIXL_SUCCESS, check_b(f, f->bdesc, 2));
    nixl_free(conn);
    nixl_free(blob);
}

/* ------------------------------------------------------------------------------------------ */
/* Conflicts and failed loads                                                                  */
/* ------------------------------------------------------------------------------------------ */

/*
 * Another live agent under a loaded peer's name (new connection info) is refused until the
 * peer is invalidated.
 */
static void test_reload_changed_conn_info(void **state)
{
    fix_t *f = *state;
    t_load(f->a, f->b);
    nixl_backend_t *b2be;
    nixl_agent_t *b2 = t_agent("B", NULL, NULL, &b2be); /* the first B stays alive */
    fix_register(b2, f->bbuf);
    nixl_desc_t extra = t_desc(f->unreg, BUFLEN);
    t_reg(b2, f->unreg, BUFLEN);

    void *blob = NULL;
    size_t len = 0;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_get_local_md(b2, &blob, &len));
    EXPECT_ERR(NIXL_ERR_NOT_ALLOWED, "invalidate", load(f->a, blob, len));
    /* the refused load changed nothing: what was known of B is still known, nothing new */
    EXPECT_ST(NIXL_SUCCESS, check_b(f, f->bdesc, NBUF));
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, NULL, check_b(f, &extra, 1));
    /* partial connection info that changed is refused the same way */
    size_t clen;
    nixl_agent_t *keep = f->b;
    f->b = b2;
    void *conn = partial_b(f, 0, 0, false, NULL, &clen);
    f->b = keep;
    EXPECT_ERR(NIXL_ERR_NOT_ALLOWED, NULL, load(f->a, conn, clen));
    nixl_free(conn);

    EXPECT_ST(NIXL_SUCCESS, nixl_agent_invalidate_remote_md(f->a, "B"));
    EXPECT_ST(NIXL_SUCCESS, load(f->a, blob, len));
    EXPECT_ST(NIXL_SUCCESS, check_b(f, &extra, 1));
    nixl_free(blob);
    nixl_agent_destroy(f->b);
    f->b = b2; /* the fixture's B is now the second one */
    f->bbe = b2be;
    write_a_to_b(f, 1);
}

/*
 * A peer that exited and was restarted under the same name is loaded without an explicit
 * invalidation once its engines know the old one is gone (docs/differences.md).
 */
static void test_reload_restarted_peer(void **state)
{
    fix_t *f = *state;
    t_load(f->a, f->b);
    nixl_agent_destroy(f->b);
    f->b = t_agent("B", NULL, NULL, &f->bbe);
    fix_register(f->b, f->bbuf);
    void *blob = NULL;
    size_t len = 0;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_get_local_md(f->b, &blob, &len));
    /* SHM notices the old B's socket closing on its event thread: give it a moment */
    nixl_status_t st = NIXL_ERR_NOT_ALLOWED;
    for (int i = 0; i < 200 && st == NIXL_ERR_NOT_ALLOWED; i++) {
        st = load(f->a, blob, len);
        if (st == NIXL_ERR_NOT_ALLOWED)
            usleep(10000);
    }
    EXPECT_ST(NIXL_SUCCESS, st);
    EXPECT_ST(NIXL_SUCCESS, check_b(f, f->bdesc, NBUF));
    write_a_to_b(f, 1);
    nixl_free(blob);
}

/*
 * A load that fails halfway (after new regions were staged) leaves what was loaded before
 * intact and adds nothing (docs/differences.md item 4); a request made earlier still works.
 */
static void test_failed_load_keeps_state(void **state)
{
    fix_t *f = *state;
    size_t len;
    void *blob = partial_b(f, 0, 4, true, NULL, &len);
    EXPECT_ST(NIXL_SUCCESS, load(f->a, blob, len));
    nixl_free(blob);
    nixl_desc_t s = t_desc(f->abuf[0], BUFLEN);
    nixl_xfer_req_t *r = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create_xfer_req(f->a, NIXL_WRITE, NIXL_DRAM_SEG, &s, 1,
                                                       NIXL_DRAM_SEG, &f->bdesc[0], 1, "B", NULL,
                                                       &r));
    size_t clen;
    uint8_t *conn = conn_info_of(f->b, &clen);
    static const uint8_t one = 1;

    for (int variant = 0; variant < 3; variant++) {
        wbuf_t w = {0};
        w_begin(&w, "B", conn, clen);
        nixl_status_t want;
        const char *why;
        if (variant == 0) {
            /* the 5th region, then an empty section */
            w_sections(&w, 2);
            w_section(&w, 1);
            w_region(&w, &f->bdesc[4], NULL, 0);
            w_section(&w, 0);
            want = NIXL_ERR_NOT_FOUND;
            why = "empty";
        } else if (variant == 1) {
            /* the 5th region with a blob SHM refuses */
            w_sections(&w, 1);
            w_section(&w, 1);
            w_region(&w, &f->bdesc[4], &one, 1);
            want = NIXL_ERR_MISMATCH;
            why = "SHM";
        } else {
            /* the 5th region, and a known region whose blob changed */
            w_sections(&w, 2);
            w_section(&w, 1);
            w_region(&w, &f->bdesc[4], NULL, 0);
            w_section(&w, 1);
            w_region(&w, &f->bdesc[1], &one, 1);
            want = NIXL_ERR_NOT_ALLOWED;
            why = "blob";
        }
        EXPECT_ERR(want, why, load(f->a, w.p, w.len));
        EXPECT_ST(NIXL_SUCCESS, check_b(f, f->bdesc, 4));
        EXPECT_ERR(NIXL_ERR_NOT_FOUND, NULL, check_b(f, &f->bdesc[4], 1));
        memset(f->bbuf[0], 0, BUFLEN);
        EXPECT_ST(NIXL_SUCCESS, t_post_wait(f->a, r, NULL));
        EXPECT_PATTERN(f->bbuf[0], BUFLEN, 0);
        EXPECT_ST(NIXL_SUCCESS, nixl_agent_gen_notif(f->a, "B", "still here", 10, NULL));
        t_expect_one_notif(f->b, "A", "still here");
        free(w.p);
    }

    /* the hand-made format is right: the same blob without the bad part loads */
    wbuf_t w = {0};
    w_begin(&w, "B", conn, clen);
    w_sections(&w, 1);
    w_section(&w, 1);
    w_region(&w, &f->bdesc[4], NULL, 0);
    EXPECT_ST(NIXL_SUCCESS, load(f->a, w.p, w.len));
    EXPECT_ST(NIXL_SUCCESS, check_b(f, f->bdesc, NBUF));
    write_a_to_b(f, 4);
    free(w.p);

    /* a failed first load of a new peer leaves no peer behind */
    w = (wbuf_t){0};
    w_begin(&w, "Z", conn, clen);
    w_sections(&w, 1);
    w_section(&w, 0);
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, NULL, nixl_agent_load_remote_md(f->a, w.p, w.len, NULL));
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, NULL,
               nixl_agent_check_remote_md(f->a, "Z", NIXL_DRAM_SEG, NULL, 0));
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, NULL, nixl_agent_invalidate_remote_md(f->a, "Z"));
    free(w.p);
    free(conn);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(f->a, r));
}

static void test_make_connection(void **state)
{
    fix_t *f = *state;
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, "B", nixl_agent_make_connection(f->a, "B", NULL));
    t_load(f->a, f->b);
    t_load(f->b, f->a);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_make_connection(f->a, "B", NULL));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_make_connection(f->b, "A", NULL));
    nixl_opt_args_t o;
    nixl_opt_args_init(&o);
    o.backends = &f->abe;
    o.num_backends = 1;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_make_connection(f->a, "B", &o));
    o.backends = &f->bbe; /* a backend of another agent */
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL, nixl_agent_make_connection(f->a, "B", &o));
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, "nobody", nixl_agent_make_connection(f->a, "nobody", NULL));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL, nixl_agent_make_connection(f->a, NULL, NULL));
}

static void test_md_exchange_needs_an_address(void **state)
{
    fix_t *f = *state;
    nixl_opt_args_t o;
    nixl_opt_args_init(&o);
    /* no ip_addr and no metadata server: nothing to send to */
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, "ip_addr", nixl_agent_send_local_md(f->a, &o));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, "ip_addr", nixl_agent_send_local_md(f->a, NULL));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, "ip_addr",
               nixl_agent_send_local_partial_md(f->b, NIXL_DRAM_SEG, f->breg, 1, &o));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, "ip_addr", nixl_agent_fetch_remote_md(f->a, "B", &o));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, "ip_addr", nixl_agent_invalidate_local_md(f->a, &o));
    o.ip_addr = "127.0.0.1";
    o.port = 0;
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, "port", nixl_agent_send_local_md(f->a, &o));
    o.port = 70000;
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, "port", nixl_agent_fetch_remote_md(f->a, "B", &o));
    o.port = 8888;
    o.ip_addr = "bad host";
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, "not allowed", nixl_agent_invalidate_local_md(f->a, &o));
    o.ip_addr = "[::1";
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, "brackets", nixl_agent_fetch_remote_md(f->a, "B", &o));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, "fetch", nixl_agent_fetch_remote_md(f->a, "", &o));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, "this agent", nixl_agent_fetch_remote_md(f->a, "A", &o));
    /* the failed fetch is on record, and says why */
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, "brackets", nixl_agent_get_fetch_status(f->a, "B"));
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, "no fetch", nixl_agent_get_fetch_status(f->a, "C"));
    int port;
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, "use_listen_thread", nixl_agent_get_listen_port(f->a, &port));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL, nixl_agent_get_listen_port(NULL, &port));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL, nixl_agent_get_fetch_status(f->a, NULL));
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_load_and_check),
        T(test_no_remote_backend),
        T(test_invalidate),
        T(test_load_own_and_garbage),
        T(test_load_corrupted),
        T(test_load_without_common_backend),
        T(test_partial_accumulates),
        T(test_partial_with_conn_info),
        T(test_partial_errors),
        T(test_reload_changed_conn_info),
        T(test_reload_restarted_peer),
        T(test_failed_load_keeps_state),
        T(test_make_connection),
        T(test_md_exchange_needs_an_address),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
