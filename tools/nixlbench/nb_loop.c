/*
 * nb_loop.c - what is timed. Per iteration: prep (create or make the request, and register
 * the memory with --reregister_mem), post (the post call itself) and tx (post to observed
 * completion). Up to pipeline_depth requests are in flight per thread. Without
 * --recreate_xfer a request is made once per step and reposted; its creation is the only prep
 * sample. Every transfer carries the notification "0xBEEF", which the target counts.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nb_loop.h"

typedef struct slot {
    nixl_desc_t *local, *remote;
    nixl_dlist_t *dl_local, *dl_remote;
    nixl_xfer_req_t *req;
    bool busy, registered;
    double t_post;
} slot_t;

typedef struct ctx {
    const nb_cfg_t *cfg;
    nb_side_t *side;
    nb_rt_t *rt;
    const nb_plan_t *plan;
    uint64_t slice, nslots;
    const char *label;
    int *idx;                 /* 0 .. batch-1, for make_xfer_req */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned arrived, gen;
    int abort;
    double t_start;
} ctx_t;

enum { PREP, POST, TX, KINDS };

typedef struct samples {
    double *v; /* microseconds */
    size_t n;
} samples_t;

typedef struct thr {
    ctx_t *c;
    unsigned id;
    pthread_t tid;
    slot_t *slots;
    samples_t s[KINDS];
    double t_end;
    int rc;
} thr_t;

static void sample(thr_t *t, int kind, double us)
{
    t->s[kind].v[t->s[kind].n++] = us;
}

static bool aborted(ctx_t *c)
{
    return __atomic_load_n(&c->abort, __ATOMIC_ACQUIRE);
}

static int fail(thr_t *t, const char *what, nixl_status_t st)
{
    __atomic_store_n(&t->c->abort, 1, __ATOMIC_RELEASE);
    pthread_mutex_lock(&t->c->mu);
    pthread_cond_broadcast(&t->c->cv);
    pthread_mutex_unlock(&t->c->mu);
    /* A backend that saw the peer go first: the runtime's socket says how it ended. */
    for (int i = 0; st == NIXL_ERR_REMOTE_DISCONNECT && i < 50; i++) {
        if (nb_rt_peer_gone(t->c->rt))
            return t->rc = NB_EXIT_FAIL;
        usleep(10000);
    }
    if (what)
        nb_fail("%s failed: %s: %s", what, nixl_status_str(st), nixl_last_error());
    return t->rc = NB_EXIT_FAIL;
}

/* All threads start the timed loop together; the last one to arrive starts the clock. An
 * aborted run releases everyone. */
static bool barrier(thr_t *t)
{
    ctx_t *c = t->c;
    pthread_mutex_lock(&c->mu);
    unsigned gen = c->gen;
    if (++c->arrived == c->cfg->num_threads) {
        c->arrived = 0;
        c->gen++;
        c->t_start = nb_now_us();
        pthread_cond_broadcast(&c->cv);
    }
    while (gen == c->gen && !aborted(c))
        pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
    return !aborted(c);
}

static int make_req(thr_t *t, slot_t *s, bool timed)
{
    ctx_t *c = t->c;
    const nb_plan_t *p = c->plan;
    nixl_opt_args_t opt;
    nixl_opt_args_init(&opt);
    opt.has_notif = true;
    opt.notif = NB_NOTIF;
    opt.notif_len = strlen(NB_NOTIF);
    nixl_agent_t *a = c->side->agent;
    nixl_status_t st;
    double t0 = nb_now_us();
    if (c->cfg->reregister_mem) {
        nixl_reg_desc_t r = {.addr = s->local[0].addr, .len = p->block * p->batch,
                             .dev_id = c->side->dev};
        if ((st = nixl_agent_register_mem(a, c->side->mem, &r, 1, NULL)) != NIXL_SUCCESS)
            return fail(t, "register_mem", st);
        s->registered = true;
    }
    if (c->cfg->prepared_xfer) {
        if (!s->dl_local &&
            ((st = nixl_agent_prep_xfer_dlist(a, NIXL_INIT_AGENT, c->side->mem, s->local,
                                              p->batch, NULL, &s->dl_local)) != NIXL_SUCCESS ||
             (st = nixl_agent_prep_xfer_dlist(a, NB_TARGET, c->side->remote_mem, s->remote,
                                              p->batch, NULL, &s->dl_remote)) != NIXL_SUCCESS))
            return fail(t, "prep_xfer_dlist", st);
        st = nixl_agent_make_xfer_req(a, c->cfg->op, s->dl_local, c->idx, p->batch,
                                      s->dl_remote, c->idx, p->batch, &opt, &s->req);
        if (st != NIXL_SUCCESS)
            return fail(t, "make_xfer_req", st);
    } else {
        st = nixl_agent_create_xfer_req(a, c->cfg->op, c->side->mem, s->local, p->batch,
                                        c->side->remote_mem, s->remote, p->batch, NB_TARGET,
                                        &opt, &s->req);
        if (st != NIXL_SUCCESS)
            return fail(t, "create_xfer_req", st);
    }
    if (timed)
        sample(t, PREP, nb_now_us() - t0);
    return 0;
}

static int drop_req(thr_t *t, slot_t *s)
{
    nixl_agent_t *a = t->c->side->agent;
    nixl_status_t st = NIXL_SUCCESS;
    if (s->req)
        st = nixl_agent_release_xfer_req(a, s->req);
    s->req = NULL;
    if (st != NIXL_SUCCESS)
        return fail(t, "release_xfer_req", st);
    if (s->registered) {
        nixl_reg_desc_t r = {.addr = s->local[0].addr,
                             .len = t->c->plan->block * t->c->plan->batch,
                             .dev_id = t->c->side->dev};
        s->registered = false;
        if ((st = nixl_agent_deregister_mem(a, t->c->side->mem, &r, 1, NULL)) != NIXL_SUCCESS)
            return fail(t, "deregister_mem", st);
    }
    return 0;
}

static void complete(thr_t *t, slot_t *s, double at, bool timed)
{
    if (timed)
        sample(t, TX, at - s->t_post);
    s->busy = false;
}

/* Watch for a dead target and a transfer that never completes, every few milliseconds. */
static int watchdog(thr_t *t, double now, double *next)
{
    if (now < *next)
        return 0;
    *next = now + 5000;
    if (aborted(t->c))
        return t->rc = NB_EXIT_FAIL;
    if (nb_rt_peer_gone(t->c->rt))
        return fail(t, NULL, NIXL_SUCCESS);
    for (uint64_t j = 0; j < t->c->cfg->pipeline_depth; j++)
        if (t->slots[j].busy && now - t->slots[j].t_post > NB_XFER_TIMEOUT_MS * 1000.0) {
            nb_fail("a transfer did not complete within %d s", NB_XFER_TIMEOUT_MS / 1000);
            return fail(t, NULL, NIXL_SUCCESS);
        }
    return 0;
}

static int iterate(thr_t *t, uint64_t iters, bool timed)
{
    ctx_t *c = t->c;
    nixl_agent_t *a = c->side->agent;
    uint64_t depth = c->cfg->pipeline_depth, posted = 0, done = 0;
    double next_check = 0;
    while (done < iters) {
        for (uint64_t j = 0; j < depth && posted < iters; j++) {
            slot_t *s = &t->slots[j];
            if (s->busy)
                continue;
            if (c->cfg->recreate_xfer && (drop_req(t, s) || make_req(t, s, timed)))
                return t->rc;
            double t0 = nb_now_us();
            nixl_status_t st = nixl_agent_post_xfer_req(a, s->req, NULL);
            double t1 = nb_now_us();
            if (st < 0)
                return fail(t, "post_xfer_req", st);
            if (timed)
                sample(t, POST, t1 - t0);
            s->busy = true;
            s->t_post = t0;
            posted++;
            if (st == NIXL_SUCCESS) {
                complete(t, s, t1, timed);
                done++;
            }
        }
        for (uint64_t j = 0; j < depth; j++) {
            slot_t *s = &t->slots[j];
            if (!s->busy)
                continue;
            nixl_status_t st = nixl_agent_get_xfer_status(a, s->req);
            if (st < 0)
                return fail(t, "transfer", st);
            if (st == NIXL_SUCCESS) {
                complete(t, s, nb_now_us(), timed);
                done++;
            }
        }
        double now = nb_now_us();
        if (watchdog(t, now, &next_check))
            return t->rc;
        if (t->id == 0 && timed && done % 64 == 0)
            nb_progress(c->label, done, iters);
    }
    return 0;
}

static void *thread_main(void *arg)
{
    thr_t *t = arg;
    ctx_t *c = t->c;
    const nb_plan_t *p = c->plan;
    uint64_t depth = c->cfg->pipeline_depth, span = p->block * p->batch;
    /* --same_block: the batch moves one block again and again, cache-hot on both sides, as
     * ucx_perftest does with its one buffer (the yardstick of bench/ucx_perftest.py) */
    uint64_t stride = c->cfg->same_block ? 0 : p->block;
    for (uint64_t j = 0; j < depth; j++) {
        slot_t *s = &t->slots[j];
        uint64_t off = t->id * c->slice + (j % c->nslots) * span;
        for (uint64_t i = 0; i < p->batch; i++) {
            s->local[i] = (nixl_desc_t){(uintptr_t)c->side->buf + off + i * stride, p->block,
                                        c->side->dev};
            s->remote[i] = (nixl_desc_t){c->side->remote_base + off + i * stride, p->block,
                                         c->side->remote_dev};
        }
        if (!c->cfg->recreate_xfer && make_req(t, s, true))
            break;
    }
    if (!t->rc && iterate(t, p->warmup, false) == 0 && barrier(t) &&
        iterate(t, p->iters, true) == 0)
        t->t_end = nb_now_us();
    if (t->rc)
        fail(t, NULL, NIXL_SUCCESS); /* release the others from the barrier */
    for (uint64_t j = 0; j < depth; j++) {
        slot_t *s = &t->slots[j];
        /* After a failure this only tidies up: errors were told already. */
        if (s->req)
            nixl_agent_release_xfer_req(c->side->agent, s->req);
        if (s->registered) {
            nixl_reg_desc_t r = {.addr = s->local[0].addr, .len = span, .dev_id = c->side->dev};
            nixl_agent_deregister_mem(c->side->agent, c->side->mem, &r, 1, NULL);
        }
        nixl_agent_release_dlist(c->side->agent, s->dl_local);
        nixl_agent_release_dlist(c->side->agent, s->dl_remote);
    }
    return NULL;
}

static int thr_alloc(thr_t *t, uint64_t depth, uint64_t batch, uint64_t iters)
{
    t->slots = calloc(depth, sizeof(slot_t));
    for (int k = 0; k < KINDS; k++)
        if (!(t->s[k].v = malloc((iters + depth) * sizeof(double))))
            return -1;
    if (!t->slots)
        return -1;
    for (uint64_t j = 0; j < depth; j++) {
        t->slots[j].local = calloc(batch, sizeof(nixl_desc_t));
        t->slots[j].remote = calloc(batch, sizeof(nixl_desc_t));
        if (!t->slots[j].local || !t->slots[j].remote)
            return -1;
    }
    return 0;
}

static void thr_free(thr_t *t, uint64_t depth)
{
    for (uint64_t j = 0; t->slots && j < depth; j++) {
        free(t->slots[j].local);
        free(t->slots[j].remote);
    }
    free(t->slots);
    for (int k = 0; k < KINDS; k++)
        free(t->s[k].v);
}

/* Concatenate one kind of samples of all threads. */
static double *gather(const thr_t *th, unsigned n, int kind, size_t *count)
{
    size_t total = 0;
    for (unsigned i = 0; i < n; i++)
        total += th[i].s[kind].n;
    double *v = malloc((total ? total : 1) * sizeof(double));
    *count = 0;
    for (unsigned i = 0; v && i < n; i++) {
        memcpy(v + *count, th[i].s[kind].v, th[i].s[kind].n * sizeof(double));
        *count += th[i].s[kind].n;
    }
    return v;
}

int nb_loop_run(const nb_cfg_t *cfg, nb_side_t *side, nb_rt_t *rt, const nb_plan_t *plan,
                uint64_t slice, uint64_t nslots, const char *label, nb_step_result_t *out)
{
    memset(out, 0, sizeof(*out));
    unsigned n = (unsigned)cfg->num_threads;
    uint64_t depth = cfg->pipeline_depth;
    ctx_t c = {.cfg = cfg, .side = side, .rt = rt, .plan = plan, .slice = slice,
               .nslots = nslots, .label = label};
    thr_t *th = calloc(n, sizeof(thr_t));
    c.idx = malloc(plan->batch * sizeof(int));
    int rc = th && c.idx ? 0 : nb_fail("out of memory");
    for (uint64_t i = 0; !rc && i < plan->batch; i++)
        c.idx[i] = (int)i;
    for (unsigned i = 0; !rc && i < n; i++) {
        th[i] = (thr_t){.c = &c, .id = i};
        if (thr_alloc(&th[i], depth, plan->batch, plan->iters))
            rc = nb_fail("out of memory");
    }
    pthread_mutex_init(&c.mu, NULL);
    pthread_cond_init(&c.cv, NULL);
    unsigned started = 0;
    for (; !rc && started < n; started++)
        if (pthread_create(&th[started].tid, NULL, thread_main, &th[started])) {
            __atomic_store_n(&c.abort, 1, __ATOMIC_RELEASE);
            pthread_mutex_lock(&c.mu);
            pthread_cond_broadcast(&c.cv);
            pthread_mutex_unlock(&c.mu);
            rc = nb_fail("cannot start a thread");
        }
    double t_end = 0;
    for (unsigned i = 0; i < started; i++) {
        pthread_join(th[i].tid, NULL);
        rc = rc ? rc : th[i].rc;
        t_end = th[i].t_end > t_end ? th[i].t_end : t_end;
    }
    nb_progress_clear();
    if (!rc) {
        out->seconds = (t_end - c.t_start) / 1e6;
        out->prep = gather(th, n, PREP, &out->nprep);
        out->post = gather(th, n, POST, &out->npost);
        out->tx = gather(th, n, TX, &out->ntx);
        if (!out->prep || !out->post || !out->tx)
            rc = nb_fail("out of memory");
    }
    for (unsigned i = 0; th && i < n; i++)
        thr_free(&th[i], depth);
    free(th);
    free(c.idx);
    pthread_mutex_destroy(&c.mu);
    pthread_cond_destroy(&c.cv);
    return rc;
}

void nb_step_result_free(nb_step_result_t *r)
{
    free(r->prep);
    free(r->post);
    free(r->tx);
    memset(r, 0, sizeof(*r));
}
