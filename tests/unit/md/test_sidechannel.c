/*
 * test_sidechannel.c - the metadata side channel: the protocol functions on bytes (golden
 * stream of the reference included), then real agents and real sockets on loopback: send,
 * fetch, invalidate, IPv6 and host names, port 0, and peers that misbehave (garbage,
 * oversized frames, stalls, silence, nobody listening) without disturbing anyone else.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent_test.h"
#include "codec.h"
#include "sc_proto.h"

/* ---- protocol on bytes ---- */

static uint8_t *read_sample(const char *file, size_t *len)
{
    char path[1024];
    const char *dir = getenv("NIXL_TEST_DATA");
    snprintf(path, sizeof(path), "%s/%s", dir ? dir : NIXL_TEST_DATA_DIR, file);
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    uint8_t *buf = malloc(1 << 20);
    *len = fread(buf, 1, 1 << 20, fp);
    fclose(fp);
    return buf;
}

/* Split a stream into frames, feeding the reader `step` bytes at a time. */
static size_t split_stream(const uint8_t *s, size_t len, size_t step, uint8_t **bodies,
                           size_t *lens, size_t max)
{
    sc_reader_t r;
    sc_reader_init(&r, 1 << 20);
    size_t n = 0, pos = 0;
    while (pos < len) {
        size_t chunk = len - pos < step ? len - pos : step;
        size_t off = 0;
        while (off < chunk) {
            size_t used;
            sc_feed_result_t fr = sc_reader_feed(&r, s + pos + off, chunk - off, &used);
            off += used;
            if (fr == SC_FEED_FRAME) {
                assert_true(n < max);
                bodies[n] = sc_reader_take(&r, &lens[n]);
                n++;
            } else {
                assert_int_equal(fr, SC_FEED_MORE);
            }
        }
        pos += chunk;
    }
    assert_false(sc_reader_partial(&r));
    sc_reader_free(&r);
    return n;
}

static void test_golden_stream(void **state)
{
    (void)state;
    size_t len;
    uint8_t *s = read_sample("sidechannel_stream_load_send_invl.bin", &len);
    static const size_t steps[] = {1, 3, 8, 9, 100, 1 << 20};
    for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
        uint8_t *bodies[4];
        size_t lens[4];
        assert_int_equal(split_stream(s, len, steps[k], bodies, lens, 4), 3);
        sc_verb_t want[3] = {SC_VERB_LOAD, SC_VERB_SEND, SC_VERB_INVL};
        for (size_t i = 0; i < 3; i++) {
            sc_body_iter_t it;
            sc_body_iter_init(&it, bodies[i], lens[i]);
            sc_cmd_t c;
            const char *why = NULL;
            assert_int_equal(sc_body_next(&it, &c, &why), 1);
            assert_int_equal(c.verb, want[i]);
            if (i == 0) {
                nixl_md_view_t v;
                EXPECT_ST(NIXL_SUCCESS, nixl_md_decode(c.payload, c.len, &v));
                assert_memory_equal(v.name, "agentB", 6);
                nixl_md_view_free(&v);
            } else if (i == 1) {
                assert_int_equal(c.len, 0);
            } else {
                assert_int_equal(c.len, 6);
                assert_memory_equal(c.payload, "agentB", 6);
            }
            assert_int_equal(sc_body_next(&it, &c, &why), 0);
            free(bodies[i]);
        }
    }
    /* Our frames are the reference's bytes. */
    size_t flen;
    uint8_t *f = sc_frame_build("INVL", "agentB", 6, &flen);
    assert_int_equal(flen, 8 + 19);
    assert_memory_equal(f, s + len - flen, flen);
    free(f);
    f = sc_frame_build("SEND", NULL, 0, &flen);
    assert_memory_equal(f, s + len - 27 - flen, flen);
    free(f);
    free(s);
}

static void test_body_commands(void **state)
{
    (void)state;
    sc_body_iter_t it;
    sc_cmd_t c;
    const char *why = NULL;
    /* several commands in one body; an unknown verb is reported as such, not fatal */
    const char *multi = "NIXLCOMM:SENDNIXLCOMM:INVLpeerNIXLCOMM:PINGxNIXLCOMM:LOADab"
                        "NIXLCOMM:cd";
    sc_body_iter_init(&it, multi, strlen(multi));
    assert_int_equal(sc_body_next(&it, &c, &why), 1);
    assert_int_equal(c.verb, SC_VERB_SEND);
    assert_int_equal(sc_body_next(&it, &c, &why), 1);
    assert_int_equal(c.verb, SC_VERB_INVL);
    assert_int_equal(c.len, 4);
    assert_int_equal(sc_body_next(&it, &c, &why), 1);
    assert_int_equal(c.verb, SC_VERB_UNKNOWN);
    assert_memory_equal(c.verb_text, "PING", 4);
    /* a LOAD payload runs to the end of the frame, "NIXLCOMM:" inside it included */
    assert_int_equal(sc_body_next(&it, &c, &why), 1);
    assert_int_equal(c.verb, SC_VERB_LOAD);
    assert_int_equal(c.len, strlen("abNIXLCOMM:cd"));
    assert_int_equal(sc_body_next(&it, &c, &why), 0);
    /* not ours */
    static const char *bad[] = {"GET / HTTP/1.1\r\n", "NIXLCOMM", "NIXLCOMM:LO", "nixlcomm:SEND"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sc_body_iter_init(&it, bad[i], strlen(bad[i]));
        why = NULL;
        assert_int_equal(sc_body_next(&it, &c, &why), -1);
        assert_non_null(why);
    }
}

static void test_reader_limits(void **state)
{
    (void)state;
    sc_reader_t r;
    sc_reader_init(&r, 100);
    uint8_t hdr[8];
    uint64_t big = 101;
    memcpy(hdr, &big, 8);
    size_t used;
    assert_int_equal(sc_reader_feed(&r, hdr, 8, &used), SC_FEED_TOO_LARGE);
    assert_int_equal(used, 8);
    assert_int_equal(sc_reader_announced(&r), 101);
    sc_reader_free(&r);
    /* a huge announcement costs only what arrives */
    sc_reader_init(&r, UINT64_MAX);
    big = UINT64_MAX / 2;
    memcpy(hdr, &big, 8);
    assert_int_equal(sc_reader_feed(&r, hdr, 8, &used), SC_FEED_MORE);
    assert_int_equal(sc_reader_feed(&r, (const uint8_t *)"abc", 3, &used), SC_FEED_MORE);
    assert_true(r.cap <= 64 * 1024);
    assert_true(sc_reader_partial(&r));
    sc_reader_free(&r);
    /* an empty frame is a frame */
    sc_reader_init(&r, 100);
    uint64_t zero = 0;
    memcpy(hdr, &zero, 8);
    assert_int_equal(sc_reader_feed(&r, hdr, 8, &used), SC_FEED_FRAME);
    size_t blen;
    free(sc_reader_take(&r, &blen));
    assert_int_equal(blen, 0);
    sc_reader_free(&r);
}

/* ---- agents over loopback ---- */

static nixl_agent_t *listener(const char *name, int *port)
{
    nixl_agent_config_t cfg;
    nixl_agent_config_init(&cfg);
    cfg.use_listen_thread = true;
    cfg.listen_port = 0;
    nixl_agent_t *a = t_agent(name, &cfg, NULL, NULL);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_get_listen_port(a, port));
    assert_true(*port > 0 && *port < 65536);
    return a;
}

static nixl_opt_args_t to(const char *ip, int port)
{
    nixl_opt_args_t o;
    nixl_opt_args_init(&o);
    o.ip_addr = ip;
    o.port = port;
    return o;
}

/* Wait up to 5 s for check_remote_md(name) to give `want`. */
static void wait_loaded(nixl_agent_t *a, const char *name, nixl_status_t want)
{
    uint64_t end = t_now_ns() + 5000000000ull;
    nixl_status_t st;
    while ((st = nixl_agent_check_remote_md(a, name, NIXL_DRAM_SEG, NULL, 0)) != want &&
           t_now_ns() < end)
        t_sleep_us(2000);
    EXPECT_ST(want, st);
}

/* Wait up to 5 s for the fetch of `name` to end; returns its status. */
static nixl_status_t wait_fetch(nixl_agent_t *a, const char *name)
{
    return t_wait_fetch(a, name, 5000);
}

static void test_send_fetch_invalidate(void **state)
{
    (void)state;
    int port;
    nixl_agent_t *a = listener("A", &port);
    nixl_agent_t *b = t_agent("B", NULL, NULL, NULL); /* no listener of its own */
    uint8_t *abuf = t_alloc(4096), *bbuf = t_alloc(4096);
    t_reg(a, abuf, 4096);
    t_reg(b, bbuf, 4096);

    nixl_opt_args_t o = to("127.0.0.1", port);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_send_local_md(b, &o));
    wait_loaded(a, "B", NIXL_SUCCESS);
    nixl_desc_t bd = t_desc(bbuf, 4096);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_check_remote_md(a, "B", NIXL_DRAM_SEG, &bd, 1));

    /* fetch: the reply comes back on B's own connection */
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_fetch_remote_md(b, "A", &o));
    EXPECT_ST(NIXL_SUCCESS, wait_fetch(b, "A"));
    nixl_desc_t ad = t_desc(abuf, 4096);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_check_remote_md(b, "A", NIXL_DRAM_SEG, &ad, 1));

    /* B asks A to forget it */
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_invalidate_local_md(b, &o));
    wait_loaded(a, "B", NIXL_ERR_NOT_FOUND);

    /* partial metadata: conn info only, then one region */
    nixl_opt_args_t po = o;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_send_local_partial_md(b, NIXL_DRAM_SEG, NULL, 0, &po));
    wait_loaded(a, "B", NIXL_SUCCESS);
    EXPECT_ST(NIXL_ERR_NOT_FOUND, nixl_agent_check_remote_md(a, "B", NIXL_DRAM_SEG, &bd, 1));
    nixl_reg_desc_t br = t_rdesc(bbuf, 4096);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_send_local_partial_md(b, NIXL_DRAM_SEG, &br, 1, &po));
    uint64_t end = t_now_ns() + 5000000000ull;
    while (nixl_agent_check_remote_md(a, "B", NIXL_DRAM_SEG, &bd, 1) != NIXL_SUCCESS &&
           t_now_ns() < end)
        t_sleep_us(2000);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_check_remote_md(a, "B", NIXL_DRAM_SEG, &bd, 1));

    /* IPv6 literal (with and without brackets) and a host name reach the same listener */
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_invalidate_remote_md(b, "A"));
    const char *hosts[] = {"::1", "[::1]", "localhost"};
    for (size_t i = 0; i < 3; i++) {
        nixl_opt_args_t h = to(hosts[i], port);
        EXPECT_ST(NIXL_SUCCESS, nixl_agent_fetch_remote_md(b, "A", &h));
        nixl_status_t st = wait_fetch(b, "A");
        if (st == NIXL_ERR_REMOTE_DISCONNECT && i < 2) {
            print_message("note: no IPv6 loopback here (%s)\n", nixl_last_error());
            continue;
        }
        EXPECT_ST(NIXL_SUCCESS, st);
        EXPECT_ST(NIXL_SUCCESS, nixl_agent_check_remote_md(b, "A", NIXL_DRAM_SEG, &ad, 1));
        EXPECT_ST(NIXL_SUCCESS, nixl_agent_invalidate_remote_md(b, "A"));
    }

    /* a fetch that reaches another agent than the one named is a failure, not a silent load */
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_fetch_remote_md(b, "Z", &o));
    assert_int_equal(wait_fetch(b, "Z"), NIXL_ERR_MISMATCH);
    EXPECT_ERR(NIXL_ERR_MISMATCH, "'A', not 'Z'", nixl_agent_check_remote_md(b, "Z",
                                                                            NIXL_DRAM_SEG, NULL, 0));

    nixl_agent_destroy(b);
    nixl_agent_destroy(a);
    free(abuf);
    free(bbuf);
}

/* A port nobody listens on: bind, note the port, close. */
static int dead_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t sl = sizeof(sa);
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    close(fd);
    return ntohs(sa.sin_port);
}

static void test_fetch_failures_are_observable(void **state)
{
    (void)state;
    nixl_agent_t *b = t_agent("B", NULL, NULL, NULL);
    nixl_opt_args_t o = to("127.0.0.1", dead_port());
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_fetch_remote_md(b, "A", &o));
    assert_int_equal(wait_fetch(b, "A"), NIXL_ERR_REMOTE_DISCONNECT);
    EXPECT_LASTERR("refused");
    EXPECT_ERR(NIXL_ERR_REMOTE_DISCONNECT, "refused",
               nixl_agent_check_remote_md(b, "A", NIXL_DRAM_SEG, NULL, 0));

    /* a name that does not resolve */
    nixl_opt_args_t n = to("no-such-host.invalid", 8888);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_fetch_remote_md(b, "A", &n));
    assert_int_equal(wait_fetch(b, "A"), NIXL_ERR_REMOTE_DISCONNECT);
    EXPECT_LASTERR("resolve");

    /* a peer that accepts and never answers: the fetch times out (reply timeout 300 ms) */
    int srv = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(srv, (struct sockaddr *)&sa, sizeof(sa)), 0);
    listen(srv, 4);
    socklen_t sl = sizeof(sa);
    getsockname(srv, (struct sockaddr *)&sa, &sl);
    nixl_opt_args_t s = to("127.0.0.1", ntohs(sa.sin_port));
    uint64_t t0 = t_now_ns();
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_fetch_remote_md(b, "A", &s));
    assert_int_equal(wait_fetch(b, "A"), NIXL_ERR_BACKEND);
    EXPECT_LASTERR("within 300 ms");
    assert_true(t_now_ns() - t0 < 3000000000ull);

    /* a peer that answers with garbage */
    int c = accept(srv, NULL, NULL);
    assert_true(c >= 0);
    close(c);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_fetch_remote_md(b, "A", &s));
    c = accept(srv, NULL, NULL);
    uint8_t junk[8 + 13];
    uint64_t n13 = 13;
    memcpy(junk, &n13, 8);
    memcpy(junk + 8, "NIXLCOMM:LOAD", 13);
    assert_int_equal(write(c, junk, sizeof(junk)), (ssize_t)sizeof(junk));
    assert_int_equal(wait_fetch(b, "A"), NIXL_ERR_MISMATCH);
    EXPECT_LASTERR("could not be loaded");
    close(c);
    close(srv);
    nixl_agent_destroy(b);
}

/* A raw client of a listener. */
static int raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

/* Whether the peer closed `fd` within `ms` (reads and discards what comes). */
static bool closed_within(int fd, int ms)
{
    uint64_t end = t_now_ns() + (uint64_t)ms * 1000000ull;
    while (t_now_ns() < end) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 50) > 0) {
            char b[256];
            ssize_t n = read(fd, b, sizeof(b));
            if (n <= 0)
                return true;
        }
    }
    return false;
}

static void test_misbehaving_peers(void **state)
{
    (void)state;
    int port;
    nixl_agent_t *a = listener("A", &port);
    nixl_agent_t *b = t_agent("B", NULL, NULL, NULL);
    nixl_opt_args_t o = to("127.0.0.1", port);

    /* a stalled peer (half a header, then silence) is open while others are served */
    int stalled = raw_connect(port);
    assert_int_equal(write(stalled, "\x10\x00\x00", 3), 3);

    /* garbage: dropped */
    int g = raw_connect(port);
    const char http[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(write(g, http, sizeof(http) - 1), (ssize_t)sizeof(http) - 1);
    assert_true(closed_within(g, 3000));
    close(g);

    /* a well-framed message that is not ours: dropped too */
    g = raw_connect(port);
    uint8_t frame[8 + 5];
    uint64_t five = 5;
    memcpy(frame, &five, 8);
    memcpy(frame + 8, "hello", 5);
    assert_int_equal(write(g, frame, sizeof(frame)), (ssize_t)sizeof(frame));
    assert_true(closed_within(g, 3000));
    close(g);

    /* oversized announcement: refused unread (limit 1 MiB in this test) */
    int big = raw_connect(port);
    uint64_t huge = 1ull << 21;
    assert_int_equal(write(big, &huge, 8), 8);
    assert_true(closed_within(big, 3000));
    close(big);

    /* everyone else is still served, while the stalled peer still holds its connection */
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_fetch_remote_md(b, "A", &o));
    EXPECT_ST(NIXL_SUCCESS, wait_fetch(b, "A"));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_send_local_md(b, &o));
    wait_loaded(a, "B", NIXL_SUCCESS);

    /* the stalled peer is dropped after the stall timeout (300 ms in this test) */
    assert_true(closed_within(stalled, 3000));
    close(stalled);

    /* the reference stream: LOAD of a UCX-only agent (not loadable here: logged), SEND
     * (answered with our metadata, byte for byte), INVL (of an agent we do not know) */
    size_t len;
    uint8_t *s = read_sample("sidechannel_stream_load_send_invl.bin", &len);
    int r = raw_connect(port);
    assert_int_equal(write(r, s, len), (ssize_t)len);
    void *mine;
    size_t mine_len;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_get_local_md(a, &mine, &mine_len));
    size_t want = 8 + 13 + mine_len, got = 0;
    uint8_t *reply = malloc(want);
    while (got < want) {
        struct pollfd p = {.fd = r, .events = POLLIN};
        assert_true(poll(&p, 1, 5000) > 0);
        ssize_t n = read(r, reply + got, want - got);
        assert_true(n > 0);
        got += (size_t)n;
    }
    uint64_t flen;
    memcpy(&flen, reply, 8);
    assert_int_equal(flen, 13 + mine_len);
    assert_memory_equal(reply + 8, "NIXLCOMM:LOAD", 13);
    assert_memory_equal(reply + 21, mine, mine_len);
    nixl_free(mine);
    free(reply);
    free(s);
    close(r);
    EXPECT_ST(NIXL_ERR_NOT_FOUND, nixl_agent_check_remote_md(a, "agentB", NIXL_DRAM_SEG, NULL, 0));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_check_remote_md(a, "B", NIXL_DRAM_SEG, NULL, 0));

    nixl_agent_destroy(b);
    nixl_agent_destroy(a);
}

/* Messages queued just before destroy still leave. */
static void test_destroy_drains(void **state)
{
    (void)state;
    int port;
    nixl_agent_t *a = listener("A", &port);
    for (int i = 0; i < 20; i++) {
        char name[16];
        snprintf(name, sizeof(name), "B%d", i);
        nixl_agent_t *b = t_agent(name, NULL, NULL, NULL);
        nixl_opt_args_t o = to("127.0.0.1", port);
        EXPECT_ST(NIXL_SUCCESS, nixl_agent_send_local_md(b, &o));
        nixl_agent_destroy(b);
        wait_loaded(a, name, NIXL_SUCCESS);
    }
    nixl_agent_destroy(a);
}

int main(void)
{
    setenv("NIXL_SIDECHANNEL_STALL_TIMEOUT_MS", "300", 1);
    setenv("NIXL_SIDECHANNEL_REPLY_TIMEOUT_MS", "300", 1);
    setenv("NIXL_SIDECHANNEL_MAX_FRAME", "1048576", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_stream),
        cmocka_unit_test(test_body_commands),
        cmocka_unit_test(test_reader_limits),
        cmocka_unit_test(test_send_fetch_invalidate),
        cmocka_unit_test(test_fetch_failures_are_observable),
        cmocka_unit_test(test_misbehaving_peers),
        cmocka_unit_test(test_destroy_drains),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
