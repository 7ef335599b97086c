/*
 * ucx_flush_bw - bare UCX doing what every NIXL transfer over UCX does: post a batch of puts
 * (or gets), flush the endpoint and wait for it, because only the flush says the bytes reached
 * the target (NIXL-SEMANTICS 6.7; issue #12 forbids reporting a transfer done before), then
 * send the transfer's notification as an active message.
 *
 * Why it exists: ucx_perftest's ucp_put_bw flushes once, at the end of the run; its puts queue
 * inside UCX and stream. A NIXL request cannot do that, so at small blocks over TCP ucx_perftest
 * is no yardstick for the per-request protocol. This program is: the UCX calls the plugin makes
 * (ucp_put_nbx / ucp_get_nbx per block, ucp_ep_flush_nbx per batch, ucp_am_send_nbx with a
 * nixlbench-sized notification), without the library around them. --flush end gives
 * ucx_perftest's pattern with the same program (no notification); there the operations UCX
 * cannot send at once wait in its queue, one request each, so memory grows with --iters.
 *
 *   ucx_flush_bw [--op put|get] [--size B] [--batch N] [--iters I] [--warmup W]
 *                [--flush batch|end] [--notif on|off] [--err peer|none]
 *
 * It forks the target; the two exchange worker addresses and the remote key over a socket
 * pair. The target progresses its worker until the initiator is done and every notification
 * came (it fails otherwise). One line on stdout:
 *   ucx_flush_bw op=put size=4096 batch=128 flush=batch notif=on iters=2000 gbps=0.532
 * (decimal GB/s over the timed iterations, the final flush included). UCX's own environment
 * (UCX_TLS, ...) configures the transport.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <ucp/api/ucp.h>
#include <unistd.h>

typedef struct {
    bool get, flush_end, err_peer, notif;
    size_t size, batch, iters, warmup;
} opts_t;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void die(const char *what, const char *why)
{
    fprintf(stderr, "ucx_flush_bw: %s: %s\n", what, why);
    exit(1);
}

static void check(ucs_status_t s, const char *what)
{
    if (s != UCS_OK)
        die(what, ucs_status_string(s));
}

/* A length-prefixed blob over the socket pair. */
static void send_blob(int fd, const void *p, size_t n)
{
    uint64_t len = n;
    if (write(fd, &len, sizeof(len)) != (ssize_t)sizeof(len) || write(fd, p, n) != (ssize_t)n)
        die("socket write", strerror(errno));
}

static void *recv_blob(int fd)
{
    uint64_t len;
    if (read(fd, &len, sizeof(len)) != (ssize_t)sizeof(len) || len > (64u << 20))
        die("socket read", "short or oversized blob");
    char *p = malloc(len ? len : 1);
    if (!p)
        die("malloc", "out of memory");
    for (size_t got = 0; got < len;) {
        ssize_t r = read(fd, p + got, len - got);
        if (r <= 0)
            die("socket read", r ? strerror(errno) : "peer closed");
        got += (size_t)r;
    }
    return p;
}

static void flag_closed(void *request, ucs_status_t status, void *user)
{
    (void)request;
    (void)status; /* a forced close may report the peer's state: nothing to measure there */
    *(bool *)user = true;
}

static void flag_done(void *request, ucs_status_t status, void *user)
{
    (void)request;
    if (status != UCS_OK)
        die("operation", ucs_status_string(status));
    *(bool *)user = true;
}

/* Parameters of a *_nbx call whose callback sets *done. */
static ucp_request_param_t done_param(ucp_send_nbx_callback_t cb, bool *done, uint32_t flags)
{
    return (ucp_request_param_t){
        .op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA |
                        UCP_OP_ATTR_FIELD_FLAGS,
        .cb.send = cb,
        .user_data = done,
        .flags = flags,
    };
}

/* Wait for a request returned by a *_nbx call made with done_param(..., done, ...). */
static void wait_req(ucp_worker_h w, ucs_status_ptr_t r, const bool *done)
{
    if (UCS_PTR_IS_ERR(r))
        die("post", ucs_status_string(UCS_PTR_STATUS(r)));
    if (!r)
        return;
    while (!*done)
        ucp_worker_progress(w);
    ucp_request_free(r);
}

static void flush_ep(ucp_worker_h w, ucp_ep_h ep)
{
    bool done = false;
    ucp_request_param_t p = done_param(flag_done, &done, 0);
    wait_req(w, ucp_ep_flush_nbx(ep, &p), &done);
}

/* The notification of a NIXL transfer: an active message after the flush, as the plugin sends
 * it (id 0, eager, a payload the size of nixlbench's: its serialized name and "0xBEEF"). */
static void notify(ucp_worker_h w, ucp_ep_h ep)
{
    static const char msg[59] = "nixlSerDes|name initiator msg 0xBEEF";
    bool done = false;
    ucp_request_param_t p = done_param(flag_done, &done, UCP_AM_SEND_FLAG_EAGER);
    wait_req(w, ucp_am_send_nbx(ep, 0, NULL, 0, msg, sizeof(msg), &p), &done);
}

static ucs_status_t count_notif(void *arg, const void *header, size_t header_len, void *data,
                                size_t len, const ucp_am_recv_param_t *param)
{
    (void)header, (void)header_len, (void)data, (void)len, (void)param;
    (*(uint64_t *)arg)++;
    return UCS_OK;
}

static void parse(int argc, char **argv, opts_t *o)
{
    *o = (opts_t){
        .size = 4096, .batch = 128, .iters = 2000, .warmup = 200, .err_peer = true, .notif = true};
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            die(k, "needs a value");
        i++;
        if (strcmp(k, "--op") == 0 && (strcmp(v, "put") == 0 || strcmp(v, "get") == 0))
            o->get = strcmp(v, "get") == 0;
        else if (strcmp(k, "--flush") == 0 && (strcmp(v, "batch") == 0 || strcmp(v, "end") == 0))
            o->flush_end = strcmp(v, "end") == 0;
        else if (strcmp(k, "--notif") == 0 && (strcmp(v, "on") == 0 || strcmp(v, "off") == 0))
            o->notif = strcmp(v, "on") == 0;
        else if (strcmp(k, "--err") == 0 && (strcmp(v, "peer") == 0 || strcmp(v, "none") == 0))
            o->err_peer = strcmp(v, "peer") == 0;
        else if (strcmp(k, "--size") == 0)
            o->size = strtoull(v, NULL, 0);
        else if (strcmp(k, "--batch") == 0)
            o->batch = strtoull(v, NULL, 0);
        else if (strcmp(k, "--iters") == 0)
            o->iters = strtoull(v, NULL, 0);
        else if (strcmp(k, "--warmup") == 0)
            o->warmup = strtoull(v, NULL, 0);
        else
            die(k, "unknown option or bad value (see the comment at the top of ucx_flush_bw.c)");
    }
    if (!o->size || !o->batch || !o->iters || o->size > (SIZE_MAX >> 1) / o->batch)
        die("options", "size, batch and iters must be positive and size x batch must fit");
}

/* The timed loop, then the endpoint closed while the target still progresses (by force where
 * the error mode allows it: the last flush covered every operation). */
static void initiate(const opts_t *o, ucp_worker_h w, void *peer_addr, void *peer_rkey,
                     uint64_t peer_base, char *buf)
{
    ucp_ep_params_t ep_params = {
        .field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE,
        .address = peer_addr,
        .err_mode = o->err_peer ? UCP_ERR_HANDLING_MODE_PEER : UCP_ERR_HANDLING_MODE_NONE,
    };
    ucp_ep_h ep;
    check(ucp_ep_create(w, &ep_params, &ep), "ucp_ep_create");
    ucp_rkey_h rkey;
    check(ucp_ep_rkey_unpack(ep, peer_rkey, &rkey), "ucp_ep_rkey_unpack");

    double t0 = now_s();
    for (size_t it = 0; it < o->warmup + o->iters; it++) {
        if (it == o->warmup)
            t0 = now_s();
        for (size_t i = 0; i < o->batch; i++) {
            ucp_request_param_t p = {0}; /* no callback: an unfinished request is freed at once */
            size_t off = i * o->size;
            ucs_status_ptr_t r = o->get ? ucp_get_nbx(ep, buf + off, o->size, peer_base + off, rkey,
                                                      &p)
                                        : ucp_put_nbx(ep, buf + off, o->size, peer_base + off, rkey,
                                                      &p);
            if (UCS_PTR_IS_ERR(r))
                die("post", ucs_status_string(UCS_PTR_STATUS(r)));
            if (r)
                ucp_request_free(r); /* the flush covers it */
        }
        if (o->flush_end) {
            ucp_worker_progress(w);
        } else {
            flush_ep(w, ep);
            if (o->notif)
                notify(w, ep);
        }
    }
    flush_ep(w, ep);
    double dt = now_s() - t0;
    printf("ucx_flush_bw op=%s size=%zu batch=%zu flush=%s notif=%s iters=%zu gbps=%.3f\n",
           o->get ? "get" : "put", o->size, o->batch, o->flush_end ? "end" : "batch",
           o->notif && !o->flush_end ? "on" : "off", o->iters,
           (double)(o->size * o->batch * o->iters) / dt / 1e9);
    fflush(stdout);
    ucp_rkey_destroy(rkey);
    bool done = false;
    /* UCX refuses a forced close without error handling: there the close flushes */
    ucp_request_param_t p = done_param(flag_closed, &done,
                                       o->err_peer ? UCP_EP_CLOSE_FLAG_FORCE : 0);
    wait_req(w, ucp_ep_close_nbx(ep, &p), &done);
}

int main(int argc, char **argv)
{
    opts_t o;
    parse(argc, argv, &o);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        die("socketpair", strerror(errno));
    pid_t pid = fork();
    if (pid < 0)
        die("fork", strerror(errno));
    bool target = pid == 0;
    int fd = target ? sv[1] : sv[0];
    close(target ? sv[0] : sv[1]);

    ucp_params_t cp = {.field_mask = UCP_PARAM_FIELD_FEATURES,
                       .features = UCP_FEATURE_RMA | UCP_FEATURE_AM};
    ucp_context_h ctx;
    check(ucp_init(&cp, NULL, &ctx), "ucp_init");
    ucp_worker_params_t wp = {.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE,
                              .thread_mode = UCS_THREAD_MODE_SINGLE};
    ucp_worker_h w;
    check(ucp_worker_create(ctx, &wp, &w), "ucp_worker_create");

    /* distinct blocks, as nixlbench's descriptors are */
    size_t len = o.size * o.batch;
    char *buf = aligned_alloc(4096, (len + 4095) & ~(size_t)4095);
    if (!buf)
        die("aligned_alloc", "out of memory");
    memset(buf, target ? 0xaa : 0xbb, len);
    ucp_mem_map_params_t mp = {
        .field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH,
        .address = buf,
        .length = len,
    };
    ucp_mem_h memh;
    check(ucp_mem_map(ctx, &mp, &memh), "ucp_mem_map");
    ucp_address_t *addr;
    size_t addr_len;
    check(ucp_worker_get_address(w, &addr, &addr_len), "ucp_worker_get_address");
    void *rkey_buf;
    size_t rkey_len;
    check(ucp_rkey_pack(ctx, memh, &rkey_buf, &rkey_len), "ucp_rkey_pack");
    uint64_t base = (uintptr_t)buf;
    send_blob(fd, addr, addr_len);
    send_blob(fd, rkey_buf, rkey_len);
    send_blob(fd, &base, sizeof(base));
    void *peer_addr = recv_blob(fd), *peer_rkey = recv_blob(fd);
    uint64_t *peer_base = recv_blob(fd);

    uint64_t notifs = 0;
    ucp_am_handler_param_t hp = {
        .field_mask = UCP_AM_HANDLER_PARAM_FIELD_ID | UCP_AM_HANDLER_PARAM_FIELD_CB |
                      UCP_AM_HANDLER_PARAM_FIELD_ARG,
        .id = 0,
        .cb = count_notif,
        .arg = &notifs,
    };
    check(ucp_worker_set_am_recv_handler(w, &hp), "ucp_worker_set_am_recv_handler");
    if (target) {
        /* progress until the initiator writes its one byte (looked for every 1,024 rounds),
         * then until every notification it sent has come (5 s at most) */
        uint64_t want = o.notif && !o.flush_end ? o.warmup + o.iters : 0;
        double stop = 0;
        char c;
        for (unsigned long k = 1; !stop || notifs < want; k++) {
            ucp_worker_progress(w);
            if (!stop && !(k & 1023)) {
                ssize_t r = recv(fd, &c, 1, MSG_DONTWAIT);
                if (r == 0)
                    die("target", "the initiator went away");
                if (r == 1)
                    stop = now_s();
            }
            if (stop && now_s() - stop > 5.0)
                die("target", "notifications missing 5 s after the initiator finished");
        }
    } else {
        initiate(&o, w, peer_addr, peer_rkey, *peer_base, buf);
        char c = 1;
        if (write(fd, &c, 1) != 1)
            die("socket write", strerror(errno));
    }
    ucp_rkey_buffer_release(rkey_buf);
    ucp_worker_release_address(w, addr);
    check(ucp_mem_unmap(ctx, memh), "ucp_mem_unmap");
    ucp_worker_destroy(w);
    ucp_cleanup(ctx);
    free(buf);
    free(peer_addr);
    free(peer_rkey);
    free(peer_base);
    close(fd);
    if (target)
        return 0;
    int st;
    if (waitpid(pid, &st, 0) != pid)
        die("waitpid", strerror(errno));
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}
