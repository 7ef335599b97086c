/*
 * lf_rail.c - a rail: one fabric, domain, RDM endpoint, address vector and completion queue,
 * and the thread that owns its data path (see lf_priv.h).
 *
 * Work handed to a rail (parts of requests, notifications) is posted by the caller's thread
 * when the rail's lock is free, else by the thread, woken; at most tx_max operations in flight
 * and never retrying a refused post before completions were read (libfabric answers -FI_EAGAIN
 * when its queues are full: progress frees them). The thread reads the completion queue,
 * receives messages, retries what did not fit and fails a peer whose operations stay
 * outstanding past peer_timeout_ms. It sleeps in epoll on the queue's wait fd, after
 * fi_trywait said nothing is pending, and on an eventfd that user threads write. A user thread
 * polling check_xfer / get_notifs reads the queue too (lf_rail_progress); while one spins on
 * the rail, the thread sleeps on the eventfd only and looks every LF_POLLED_MS (not even that
 * when the caller holds the rail then), so events wake nobody but the spinning caller (two
 * cores and two spinning callers leave no room for more).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "lf_priv.h"

#define LF_FI_VERSION FI_VERSION(1, 9)

static struct fi_info *rail_hints(const nixl_be_engine_t *eng, const char *prov,
                                  const char *domain, bool delivery)
{
    struct fi_info *h = fi_allocinfo();
    if (!h)
        return NULL;
    h->ep_attr->type = FI_EP_RDM;
    h->caps = FI_MSG | FI_RMA | FI_READ | FI_WRITE | FI_REMOTE_READ | FI_REMOTE_WRITE |
              FI_SEND | FI_RECV;
    h->mode = FI_CONTEXT | FI_CONTEXT2;
    /* Every mode we handle: local descriptors, virtual addresses or offsets, provider keys,
     * registrations bound to the endpoint. Not FI_MR_RAW (keys longer than 8 bytes). */
    h->domain_attr->mr_mode = FI_MR_LOCAL | FI_MR_VIRT_ADDR | FI_MR_ALLOCATED |
                              FI_MR_PROV_KEY | FI_MR_ENDPOINT;
    h->domain_attr->threading = FI_THREAD_DOMAIN;
    if (delivery)
        h->tx_attr->op_flags = FI_DELIVERY_COMPLETE;
    if (prov && *prov)
        h->fabric_attr->prov_name = strdup(prov);
    if (domain && *domain)
        h->domain_attr->name = strdup(domain);
    (void)eng;
    return h;
}

/* fi_getinfo for `prov` on `domain`; with FI_DELIVERY_COMPLETE if the provider has it. */
static int rail_getinfo(nixl_be_engine_t *eng, const char *prov, const char *domain,
                        struct fi_info **out, bool *delivery)
{
    int ret = -FI_ENODATA;
    for (int d = 1; d >= 0; d--) {
        struct fi_info *h = rail_hints(eng, prov, domain, d);
        if (!h)
            return -FI_ENOMEM;
        struct fi_info *list = NULL;
        ret = fi_getinfo(LF_FI_VERSION, NULL, NULL, 0, h, &list);
        fi_freeinfo(h);
        if (ret)
            continue;
        /* Layered providers (ofi_rxm) ignore the domain of the hints: pick it ourselves. */
        struct fi_info *pick = list;
        while (pick && domain && *domain && strcmp(pick->domain_attr->name, domain) != 0)
            pick = pick->next;
        *out = pick ? fi_dupinfo(pick) : NULL;
        fi_freeinfo(list);
        if (!*out) {
            ret = pick ? -FI_ENOMEM : -FI_ENODATA;
            continue;
        }
        *delivery = d;
        return 0;
    }
    return ret;
}

static const char *const auto_providers[] = {"efa", "verbs;ofi_rxm", "tcp;ofi_rxm", "tcp"};

static nixl_status_t rail_find(nixl_be_engine_t *eng, lf_rail_t *rail, const char *domain)
{
    const char *want = rail->idx > 0 ? eng->prov : eng->params.provider;
    bool delivery = false;
    int ret = -FI_ENODATA;
    if (*want) {
        ret = rail_getinfo(eng, want, domain, &rail->info, &delivery);
    } else {
        for (size_t i = 0; i < sizeof(auto_providers) / sizeof(*auto_providers) && ret; i++)
            ret = rail_getinfo(eng, auto_providers[i], domain, &rail->info, &delivery);
    }
    if (ret)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_BACKEND,
                           "no libfabric provider %s%s%s offers RDM endpoints with RMA and "
                           "messages: fi_getinfo: %s",
                           *want ? want : "(tried efa, verbs;ofi_rxm, tcp;ofi_rxm, tcp)",
                           domain && *domain ? " on domain " : "", domain ? domain : "",
                           fi_strerror(-ret));
    if (rail->idx == 0) {
        snprintf(eng->prov, sizeof(eng->prov), "%s", rail->info->fabric_attr->prov_name);
        eng->addr_format = rail->info->addr_format;
        eng->virt_addr = rail->info->domain_attr->mr_mode & FI_MR_VIRT_ADDR;
        eng->prov_key = rail->info->domain_attr->mr_mode & FI_MR_PROV_KEY;
        eng->key_size = rail->info->domain_attr->mr_key_size;
        eng->delivery_complete = delivery;
        eng->order_saw = rail->info->tx_attr->msg_order & FI_ORDER_SAW;
    } else if ((bool)(rail->info->domain_attr->mr_mode & FI_MR_VIRT_ADDR) != eng->virt_addr ||
               (bool)(rail->info->domain_attr->mr_mode & FI_MR_PROV_KEY) != eng->prov_key) {
        return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                           "rail %u (domain %s) has other memory registration modes than "
                           "rail 0", rail->idx, rail->info->domain_attr->name);
    }
    if (eng->key_size > 8 || eng->key_size == 0)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_NOT_SUPPORTED,
                           "provider %s has %zu-byte memory keys (1 to 8 supported)", eng->prov,
                           eng->key_size);
    return NIXL_SUCCESS;
}

#define FI_TRY(call, what)                                                                     \
    do {                                                                                       \
        int ret_ = (call);                                                                     \
        if (ret_)                                                                              \
            return NIXL_BE_ERR(eng->host, NIXL_ERR_BACKEND, "rail %u: %s failed: %s",         \
                               rail->idx, what, fi_strerror(-ret_));                          \
    } while (0)

static int post_recv(lf_rail_t *rail, lf_slot_t *s)
{
    return (int)fi_recv(rail->ep, rail->bufs + (size_t)s->idx * LF_MSG_MAX, LF_MSG_MAX,
                        rail->bufs_desc, FI_ADDR_UNSPEC, &s->ctx.fi);
}

nixl_status_t lf_rail_open(nixl_be_engine_t *eng, lf_rail_t *rail, const char *domain)
{
    rail->eng = eng;
    rail->cq_fd = rail->wake_fd = rail->epfd = -1;
    pthread_mutex_init(&rail->lock, NULL);
    pthread_mutex_init(&rail->qlock, NULL);
    rail->in_jobs_tail = &rail->in_jobs;
    rail->jobs_tail = &rail->jobs;
    nixl_status_t st = rail_find(eng, rail, domain);
    if (st != NIXL_SUCCESS)
        return st;
    struct fi_info *info = rail->info;
    rail->mr_local = info->domain_attr->mr_mode & FI_MR_LOCAL;
    rail->mr_endpoint = info->domain_attr->mr_mode & FI_MR_ENDPOINT;
    size_t iov = info->tx_attr->iov_limit, riov = info->tx_attr->rma_iov_limit;
    rail->iov_n = iov < riov ? iov : riov;
    if (rail->iov_n > LF_IOV_MAX)
        rail->iov_n = LF_IOV_MAX;
    if (rail->iov_n == 0)
        rail->iov_n = 1;
    rail->tx_max = info->tx_attr->size ? info->tx_attr->size : 64;
    if (rail->tx_max > 4096)
        rail->tx_max = 4096;
    rail->max_msg = info->ep_attr->max_msg_size ? info->ep_attr->max_msg_size : UINT64_MAX;
    if (info->ep_attr->max_msg_size && info->ep_attr->max_msg_size < LF_MSG_MAX)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_NOT_SUPPORTED,
                           "provider %s carries messages of %zu bytes at most (%u needed)",
                           eng->prov, info->ep_attr->max_msg_size, LF_MSG_MAX);

    FI_TRY(fi_fabric(info->fabric_attr, &rail->fabric, NULL), "fi_fabric");
    FI_TRY(fi_domain(rail->fabric, info, &rail->domain, NULL), "fi_domain");
    struct fi_av_attr av_attr = {.type = FI_AV_TABLE};
    if (fi_av_open(rail->domain, &av_attr, &rail->av, NULL)) {
        av_attr.type = FI_AV_UNSPEC;
        FI_TRY(fi_av_open(rail->domain, &av_attr, &rail->av, NULL), "fi_av_open");
    }
    struct fi_cq_attr cq_attr = {.format = FI_CQ_FORMAT_MSG, .wait_obj = FI_WAIT_FD,
                                 .size = rail->tx_max + LF_RECV_BUFS + LF_SEND_SLOTS};
    if (fi_cq_open(rail->domain, &cq_attr, &rail->cq, NULL)) {
        /* A provider without wait fds: the thread then sleeps in bounded steps. */
        cq_attr.wait_obj = FI_WAIT_NONE;
        FI_TRY(fi_cq_open(rail->domain, &cq_attr, &rail->cq, NULL), "fi_cq_open");
    } else if (fi_control(&rail->cq->fid, FI_GETWAIT, &rail->cq_fd)) {
        rail->cq_fd = -1;
    }
    FI_TRY(fi_endpoint(rail->domain, info, &rail->ep, NULL), "fi_endpoint");
    FI_TRY(fi_ep_bind(rail->ep, &rail->av->fid, 0), "binding the address vector");
    FI_TRY(fi_ep_bind(rail->ep, &rail->cq->fid, FI_TRANSMIT | FI_RECV), "binding the queue");
    FI_TRY(fi_enable(rail->ep), "fi_enable");
    rail->addr_len = sizeof(rail->addr);
    FI_TRY(fi_getname(&rail->ep->fid, rail->addr, &rail->addr_len), "fi_getname");

    size_t nb = LF_RECV_BUFS + LF_SEND_SLOTS;
    rail->bufs = aligned_alloc(4096, nb * LF_MSG_MAX);
    if (!rail->bufs)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory");
    uint64_t key = eng->prov_key ? 0 : atomic_fetch_add(&eng->next_key, 1);
    FI_TRY(fi_mr_reg(rail->domain, rail->bufs, nb * LF_MSG_MAX, FI_SEND | FI_RECV, 0, key, 0,
                     &rail->bufs_mr, NULL),
           "registering the message buffers");
    if (rail->mr_endpoint) {
        FI_TRY(fi_mr_bind(rail->bufs_mr, &rail->ep->fid, 0), "fi_mr_bind");
        FI_TRY(fi_mr_enable(rail->bufs_mr), "fi_mr_enable");
    }
    rail->bufs_desc = fi_mr_desc(rail->bufs_mr);
    for (unsigned i = 0; i < LF_RECV_BUFS; i++) {
        rail->recv[i] = (lf_slot_t){.ctx.kind = LF_OP_RECV, .idx = i};
        FI_TRY(post_recv(rail, &rail->recv[i]), "posting a receive");
    }
    for (unsigned i = 0; i < LF_SEND_SLOTS; i++) {
        rail->send[i] = (lf_slot_t){.ctx.kind = LF_OP_SEND, .idx = LF_RECV_BUFS + i};
        rail->send_free[rail->nsend_free++] = i;
    }

    rail->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    rail->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (rail->wake_fd < 0 || rail->epfd < 0)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_BACKEND, "eventfd/epoll: %s", strerror(errno));
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = rail->wake_fd};
    if (epoll_ctl(rail->epfd, EPOLL_CTL_ADD, rail->wake_fd, &ev))
        return NIXL_BE_ERR(eng->host, NIXL_ERR_BACKEND, "epoll_ctl: %s", strerror(errno));
    ev.data.fd = rail->cq_fd;
    if (rail->cq_fd >= 0 && epoll_ctl(rail->epfd, EPOLL_CTL_ADD, rail->cq_fd, &ev))
        rail->cq_fd = -1;
    return NIXL_SUCCESS;
}

static void wake(lf_rail_t *rail)
{
    uint64_t one = 1;
    ssize_t n = write(rail->wake_fd, &one, sizeof(one));
    (void)n; /* EAGAIN: the counter is already non-zero, the thread wakes anyway */
}

/* Whether a completion error means the peer is gone (rather than a bad request). */
static bool conn_errno(int e)
{
    switch (e) {
    case FI_ECONNRESET: case FI_ECONNREFUSED: case FI_ECONNABORTED: case FI_ENOTCONN:
    case FI_ETIMEDOUT: case FI_EHOSTUNREACH: case FI_ENETUNREACH: case FI_ENETDOWN:
    case EPIPE: case FI_EIO: case FI_ESHUTDOWN: case FI_EADDRNOTAVAIL:
    case FI_ECANCELED: /* rxm cancels what was queued on a connection that broke */
        return true;
    default:
        return false;
    }
}

static void job_done(lf_rail_t *rail, lf_send_job_t *job, int err, const char *why)
{
    if (err && conn_errno(err))
        lf_conn_fail(job->conn, "sending to it failed: %s", why);
    if (job->req) {
        lf_req_notif_done(job->req, err);
        return;
    }
    if (err)
        NIXL_BE_LOG(rail->eng->host, NIXL_LOG_WARN, "a notification to '%s' was lost: %s",
                    job->conn->name, why);
    /* Freed, with its reference, after the rail's lock (the last reference of a connection
     * takes every rail's lock). */
    job->next = rail->done_jobs;
    rail->done_jobs = job;
}

/* Called under rail->lock: the standalone notifications to free once it is let go. */
static lf_send_job_t *take_done(lf_rail_t *rail)
{
    lf_send_job_t *j = rail->done_jobs;
    rail->done_jobs = NULL;
    return j;
}

static void free_done(lf_send_job_t *j)
{
    for (lf_send_job_t *next; j; j = next) {
        next = j->next;
        lf_conn_unref(j->conn);
        free(j);
    }
}

/* The part ended on this rail: off the active list before its request can be posted again. */
static void part_ops_done(lf_rail_t *rail, lf_part_t *part, size_t n, size_t bad, int err,
                          const char *why)
{
    if (part->next == part->nrma && part->outstanding == 0)
        nixl_list_remove(&rail->active, &part->node);
    if (bad && conn_errno(err) && part->req->conn)
        lf_conn_fail(part->req->conn, "%s", why);
    lf_req_ops_done(part->req, n, bad, err, why);
}

static void one_completion(lf_rail_t *rail, lf_ctx_t *ctx, size_t len, int err,
                           const char *why)
{
    switch (ctx->kind) {
    case LF_OP_RMA: {
        lf_rma_t *m = (lf_rma_t *)ctx;
        lf_part_t *part = &m->req->parts[m->rail];
        part->outstanding--;
        rail->inflight--;
        part_ops_done(rail, part, 1, err != 0, err, why);
        break;
    }
    case LF_OP_RECV: {
        lf_slot_t *s = (lf_slot_t *)ctx;
        if (err == FI_ECANCELED)
            return; /* the endpoint is closing */
        if (!err)
            lf_msg_received(rail->eng, rail->bufs + (size_t)s->idx * LF_MSG_MAX, len);
        else
            atomic_fetch_add(&rail->eng->dropped, 1);
        if (post_recv(rail, s))
            NIXL_BE_LOG(rail->eng->host, NIXL_LOG_ERROR,
                        "rail %u: a receive buffer could not be posted again", rail->idx);
        break;
    }
    case LF_OP_SEND: {
        lf_slot_t *s = (lf_slot_t *)ctx;
        lf_send_job_t *job = s->job;
        s->job = NULL;
        rail->send_free[rail->nsend_free++] = s->idx - LF_RECV_BUFS;
        rail->inflight--;
        job_done(rail, job, err, why);
        break;
    }
    default:
        break;
    }
}

/* Read what the queue holds; how many completions were handled. */
static size_t read_cq(lf_rail_t *rail)
{
    struct fi_cq_msg_entry ent[32];
    size_t total = 0;
    for (;;) {
        ssize_t n = fi_cq_read(rail->cq, ent, 32);
        if (n > 0) {
            for (ssize_t i = 0; i < n; i++)
                one_completion(rail, ent[i].op_context, ent[i].len, 0, NULL);
            total += (size_t)n;
            continue;
        }
        if (n == -FI_EAVAIL) {
            struct fi_cq_err_entry e = {0};
            if (fi_cq_readerr(rail->cq, &e, 0) != 1)
                break;
            char why[256];
            const char *ps = fi_cq_strerror(rail->cq, e.prov_errno, e.err_data, NULL, 0);
            snprintf(why, sizeof(why), "%s (provider: %s)", fi_strerror(e.err),
                     ps ? ps : "-");
            if (e.op_context)
                one_completion(rail, e.op_context, e.len, e.err ? e.err : FI_EOTHER, why);
            total++;
            continue;
        }
        break; /* -FI_EAGAIN: empty; anything else: looked at again next round */
    }
    return total;
}

static void post_parts(lf_rail_t *rail)
{
    nixl_list_node_t *next;
    for (nixl_list_node_t *nd = rail->active; nd; nd = next) {
        next = nd->next;
        lf_part_t *part = nixl_list_entry(nd, lf_part_t, node);
        nixl_be_req_t *req = part->req;
        lf_conn_t *conn = req->conn;
        if (part->next < part->nrma && atomic_load(&conn->failed)) {
            size_t n = part->nrma - part->next;
            part->next = part->nrma;
            part_ops_done(rail, part, n, n, FI_ECONNABORTED, conn->why);
            continue;
        }
        while (part->next < part->nrma && rail->inflight < rail->tx_max) {
            lf_rma_t *m = &part->rma[part->next];
            struct fi_msg_rma msg = {
                .msg_iov = &part->iov[m->first],
                .desc = rail->mr_local ? &part->desc[m->first] : NULL,
                .iov_count = m->n,
                .addr = conn->addr[rail->idx],
                .rma_iov = &part->riov[m->first],
                .rma_iov_count = m->n,
                .context = &m->ctx.fi,
            };
            ssize_t ret;
            if (req->op == NIXL_WRITE)
                ret = fi_writemsg(rail->ep, &msg,
                                  FI_COMPLETION |
                                      (rail->eng->delivery_complete ? FI_DELIVERY_COMPLETE : 0));
            else
                ret = fi_readmsg(rail->ep, &msg, FI_COMPLETION);
            if (ret == -FI_EAGAIN)
                return; /* full: completions first */
            part->next++;
            if (ret) {
                char why[160];
                snprintf(why, sizeof(why), "%s refused an operation: %s",
                         req->op == NIXL_WRITE ? "fi_writemsg" : "fi_readmsg",
                         fi_strerror((int)-ret));
                part_ops_done(rail, part, 1, 1, (int)-ret, why);
                break;
            }
            part->outstanding++;
            rail->inflight++;
        }
    }
}

static void post_jobs(lf_rail_t *rail)
{
    while (rail->jobs && rail->nsend_free && rail->inflight < rail->tx_max) {
        lf_send_job_t *job = rail->jobs;
        /* A notification ordered behind its writes (lf_xfer.c) leaves after all of them. */
        if (job->req && job->req->notif_early && job->req->parts[0].next < job->req->parts[0].nrma)
            return;
        if (atomic_load(&job->conn->failed)) {
            rail->jobs = job->next;
            if (!rail->jobs)
                rail->jobs_tail = &rail->jobs;
            job_done(rail, job, FI_ECONNABORTED, job->conn->why);
            continue;
        }
        unsigned si = rail->send_free[rail->nsend_free - 1];
        lf_slot_t *s = &rail->send[si];
        uint8_t *buf = rail->bufs + (size_t)s->idx * LF_MSG_MAX;
        memcpy(buf, job->msg, job->len);
        s->job = job;
        /* Transmit-complete, even where writes are delivery-complete: a notification ends
         * a request whose data is already where it belongs (at the target for a WRITE, here
         * for a READ, and behind the writes on the wire for an early one), so waiting for the
         * target's acknowledgement would only add a round trip. */
        struct iovec iov = {buf, job->len};
        void *desc = rail->bufs_desc;
        struct fi_msg msg = {.msg_iov = &iov, .desc = &desc, .iov_count = 1,
                             .addr = job->conn->addr[rail->idx], .context = &s->ctx.fi};
        ssize_t ret = fi_sendmsg(rail->ep, &msg, FI_COMPLETION | FI_TRANSMIT_COMPLETE);
        if (ret == -FI_EAGAIN) {
            s->job = NULL;
            return;
        }
        rail->jobs = job->next;
        if (!rail->jobs)
            rail->jobs_tail = &rail->jobs;
        if (ret) {
            s->job = NULL;
            char why[128];
            snprintf(why, sizeof(why), "fi_send: %s", fi_strerror((int)-ret));
            job_done(rail, job, (int)-ret, why);
            continue;
        }
        rail->nsend_free--;
        rail->inflight++;
    }
}

/* Peers whose operations stay outstanding past the timeout have failed. */
static void check_timeouts(lf_rail_t *rail, uint64_t now)
{
    uint64_t limit = rail->eng->params.peer_timeout_ms;
    if (!limit)
        return;
    for (nixl_list_node_t *nd = rail->active; nd; nd = nd->next) {
        lf_part_t *part = nixl_list_entry(nd, lf_part_t, node);
        nixl_be_req_t *req = part->req;
        if (part->outstanding && now > req->posted_ns && now - req->posted_ns > limit * 1000000u &&
            !atomic_load(&req->conn->failed))
            lf_conn_fail(req->conn, "operations to it outstanding for more than %llu ms "
                         "(peer_timeout_ms)", (unsigned long long)limit);
    }
}

static void take_incoming(lf_rail_t *rail)
{
    pthread_mutex_lock(&rail->qlock);
    while (rail->in_parts) {
        nixl_list_node_t *nd = rail->in_parts;
        nixl_list_remove(&rail->in_parts, nd);
        nixl_list_push(&rail->active, nd);
    }
    if (rail->in_jobs) {
        *rail->jobs_tail = rail->in_jobs;
        rail->jobs_tail = rail->in_jobs_tail;
        rail->in_jobs = NULL;
        rail->in_jobs_tail = &rail->in_jobs;
    }
    pthread_mutex_unlock(&rail->qlock);
}

/* The rail whose lock this thread holds (rail thread, or a user thread posting or
 * progressing): work for it found under that lock is queued without a wake-up. */
static _Thread_local lf_rail_t *held_rail;

lf_rail_t *lf_rail_held(void)
{
    return held_rail;
}

/* Whether handed-over work is still waiting to be posted (rail->lock held). */
static bool unposted(const lf_rail_t *rail)
{
    if (rail->jobs) /* (in_parts and in_jobs: whoever queues there kicks the rail) */
        return true;
    for (const nixl_list_node_t *nd = rail->active; nd; nd = nd->next) {
        const lf_part_t *part = nixl_list_entry(nd, lf_part_t, node);
        if (part->next < part->nrma)
            return true;
    }
    return false;
}

enum { RAN_ALL, RAN_LEFT, RAN_BUSY };

/* One pass of the rail's work in the calling thread, if the rail's lock is free: queued
 * work posted, and with `completions` the queue read. RAN_LEFT: something could not be posted
 * (the queue is full); RAN_BUSY: the lock was taken (the rail thread is at work). */
static int run_here(lf_rail_t *rail, bool completions)
{
    if (pthread_mutex_trylock(&rail->lock) != 0)
        return RAN_BUSY;
    held_rail = rail;
    take_incoming(rail);
    if (completions)
        read_cq(rail);
    post_parts(rail);
    post_jobs(rail);
    bool left = unposted(rail);
    lf_send_job_t *done_jobs = take_done(rail);
    held_rail = NULL;
    pthread_mutex_unlock(&rail->lock);
    free_done(done_jobs);
    return left ? RAN_LEFT : RAN_ALL;
}

/* Work was queued: post it from this thread when the rail is free (no thread wake-up on the
 * way to the wire; completions wake the rail thread through the queue's fd), else leave it
 * to the rail thread, woken, as for what did not fit (it retries after completions). */
static void kick(lf_rail_t *rail)
{
    if (held_rail == rail)
        return; /* the holder posts it before it lets go of the lock */
    if (run_here(rail, false) != RAN_ALL)
        wake(rail);
}

void lf_rail_progress(lf_rail_t *rail)
{
    atomic_store(&rail->polled_ns, nixl_now_ns());
    /* Busy: the rail thread is reading the queue already. */
    if (held_rail == NULL && run_here(rail, true) == RAN_LEFT)
        wake(rail);
}

void lf_rail_post_part(lf_rail_t *rail, lf_part_t *part)
{
    pthread_mutex_lock(&rail->qlock);
    nixl_list_push(&rail->in_parts, &part->node);
    pthread_mutex_unlock(&rail->qlock);
    kick(rail);
}

void lf_rail_post_job(lf_rail_t *rail, lf_send_job_t *job)
{
    job->next = NULL;
    if (held_rail == rail) { /* straight onto the rail's own list: posted in this pass */
        *rail->jobs_tail = job;
        rail->jobs_tail = &job->next;
        return;
    }
    pthread_mutex_lock(&rail->qlock);
    *rail->in_jobs_tail = job;
    rail->in_jobs_tail = &job->next;
    pthread_mutex_unlock(&rail->qlock);
    kick(rail);
}

static void drain_wake(lf_rail_t *rail)
{
    uint64_t v;
    ssize_t r = read(rail->wake_fd, &v, sizeof(v));
    (void)r;
}

/* The polled sleep: LF_POLLED_MS on the eventfd only. True when it ran out with nobody waking
 * the thread (its timer alone ends it). */
static bool polled_sleep(lf_rail_t *rail)
{
    struct pollfd p = {.fd = rail->wake_fd, .events = POLLIN};
    if (poll(&p, 1, LF_POLLED_MS) == 1) {
        drain_wake(rail);
        return false;
    }
    return true;
}

static void *rail_thread(void *arg)
{
    lf_rail_t *rail = arg;
    uint64_t last_timeout_check = 0;
    bool timer_only = false; /* this pass follows a polled sleep that nobody cut short */
    while (!atomic_load(&rail->stop)) {
        /* Woken by its own timer while a caller spins on the rail and holds it: the caller
         * is reading the queue and posting, nothing asked for this thread, so it goes back
         * to sleep rather than block on the lock (a wake-up and a context switch for nothing,
         * on a host whose cores the spinning callers already fill). Not when the timeouts are
         * due: callers that keep the rail busy must not hide a dead peer. */
        bool held = false;
        if (timer_only && nixl_now_ms() - last_timeout_check < 100) {
            if (pthread_mutex_trylock(&rail->lock) != 0) {
                timer_only = polled_sleep(rail);
                continue;
            }
            held = true;
        }
        if (!held)
            pthread_mutex_lock(&rail->lock);
        timer_only = false;
        held_rail = rail;
        take_incoming(rail);
        size_t done = read_cq(rail);
        post_parts(rail);
        post_jobs(rail);
        uint64_t now = nixl_now_ms();
        if (now - last_timeout_check >= 100) {
            if (rail->active)
                check_timeouts(rail, nixl_now_ns());
            last_timeout_check = now;
        }
        bool busy = rail->active || rail->jobs || rail->inflight;
        /* While a user thread spins on this rail (check_xfer, get_notifs), the queue's fd
         * is left to it: events then wake no thread of ours; we look every LF_POLLED_MS. */
        bool polled = rail->cq_fd >= 0 &&
                      nixl_now_ns() - atomic_load(&rail->polled_ns) < LF_POLL_GAP_US * 1000u;
        bool can_sleep = done == 0;
        if (can_sleep && rail->cq_fd >= 0 && !polled) {
            struct fid *f = &rail->cq->fid;
            can_sleep = fi_trywait(rail->fabric, &f, 1) == FI_SUCCESS;
        }
        lf_send_job_t *done_jobs = take_done(rail);
        held_rail = NULL;
        pthread_mutex_unlock(&rail->lock);
        free_done(done_jobs);
        if (!can_sleep)
            continue;
        if (polled) {
            timer_only = polled_sleep(rail);
            continue;
        }
        int ms = busy || rail->cq_fd < 0 ? LF_BUSY_WAIT_MS : LF_IDLE_WAIT_MS;
        struct epoll_event ev[2];
        int n = epoll_wait(rail->epfd, ev, 2, ms);
        for (int i = 0; i < n; i++)
            if (ev[i].data.fd == rail->wake_fd)
                drain_wake(rail);
    }
    return NULL;
}

nixl_status_t lf_rail_start(lf_rail_t *rail)
{
    int e = pthread_create(&rail->thread, NULL, rail_thread, rail);
    if (e)
        return NIXL_BE_ERR(rail->eng->host, NIXL_ERR_BACKEND, "rail %u: pthread_create: %s",
                           rail->idx, strerror(e));
    char name[16];
    snprintf(name, sizeof(name), "lf-rail%u", rail->idx);
    pthread_setname_np(rail->thread, name); /* a name for ps, top and the tests */
    rail->started = true;
    return NIXL_SUCCESS;
}

void lf_rail_close(lf_rail_t *rail)
{
    if (rail->started) {
        atomic_store(&rail->stop, true);
        wake(rail);
        pthread_join(rail->thread, NULL);
        rail->started = false;
    }
    free_done(take_done(rail));
    /* Standalone notifications never sent: their memory and references. */
    lf_send_job_t *lists[2] = {rail->jobs, rail->in_jobs};
    for (int l = 0; l < 2; l++)
        for (lf_send_job_t *j = lists[l], *nx; j; j = nx) {
            nx = j->next;
            if (!j->req) {
                lf_conn_unref(j->conn);
                free(j);
            }
        }
    for (unsigned i = 0; i < LF_SEND_SLOTS; i++)
        if (rail->send[i].job && !rail->send[i].job->req) {
            lf_conn_unref(rail->send[i].job->conn);
            free(rail->send[i].job);
        }
    rail->jobs = rail->in_jobs = NULL;
    if (rail->ep)
        fi_close(&rail->ep->fid);
    if (rail->bufs_mr)
        fi_close(&rail->bufs_mr->fid);
    if (rail->av)
        fi_close(&rail->av->fid);
    if (rail->cq)
        fi_close(&rail->cq->fid);
    if (rail->domain)
        fi_close(&rail->domain->fid);
    if (rail->fabric)
        fi_close(&rail->fabric->fid);
    if (rail->info)
        fi_freeinfo(rail->info);
    if (rail->wake_fd >= 0)
        close(rail->wake_fd);
    if (rail->epfd >= 0)
        close(rail->epfd);
    free(rail->bufs);
    pthread_mutex_destroy(&rail->lock);
    pthread_mutex_destroy(&rail->qlock);
}
