/*
 * nb_init.c - the initiator's side of a run: set up with the target, then for every
 * (block, batch) of the sweep agree on the bytes used, run the loop, collect the target's
 * verdict (notification count, WRITE consistency), check READ consistency here, and hand the
 * row on.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nb_loop.h"

static int setup(const nb_cfg_t *cfg, const char *backend, nb_rt_t *rt, nb_side_t *s)
{
    int rc = nb_side_open(s, cfg, NB_INITIATOR, backend, 0);
    if (rc)
        return rc;
    if ((rc = nb_side_alloc(s, cfg, nb_seg_mem(cfg->initiator_seg_type),
                            cfg->total_buffer_size, NB_FILL_INITIATOR)))
        return rc;
    nixl_mem_t target_mem = nb_seg_mem(cfg->target_seg_type);
    nb_hello_t h = {.version = NB_PROTOCOL,
                    .buffer_size = cfg->total_buffer_size,
                    .num_threads = (uint32_t)cfg->num_threads,
                    .check_consistency = cfg->check_consistency,
                    .target_vram = target_mem == NIXL_VRAM_SEG};
    snprintf(h.backend, sizeof(h.backend), "%s", s->backend);
    if (nb_rt_send(rt, NB_MSG_HELLO, &h, sizeof(h)) || nb_side_recv_md(s, rt) ||
        nb_side_send_md(s, rt))
        return NB_EXIT_FAIL;
    void *ready;
    size_t len;
    if (nb_rt_recv(rt, NB_MSG_READY, &ready, &len, NB_REPLY_TIMEOUT_MS))
        return NB_EXIT_FAIL;
    free(ready);
    if (s->remote_len < cfg->total_buffer_size)
        return nb_fail("the target's buffer (%llu bytes) is smaller than ours",
                       (unsigned long long)s->remote_len);
    if (s->remote_mem != target_mem)
        return nb_fail("the target's buffer is not in %s", cfg->target_seg_type);
    return 0;
}

static void row_of(const nb_cfg_t *cfg, const nb_plan_t *p, nb_step_result_t *r, nb_row_t *row)
{
    memset(row, 0, sizeof(*row));
    row->block = p->block;
    row->batch = p->batch;
    row->iters = p->iters * cfg->num_threads;
    row->seconds = r->seconds;
    double bytes = (double)p->block * (double)p->batch * (double)row->iters;
    row->gbps = r->seconds > 0 ? bytes / 1e9 / r->seconds : 0;
    row->avg_lat_us = r->seconds * 1e6 / ((double)p->iters * (double)p->batch);
    nb_dist_of(r->prep, r->nprep, &row->prep);
    nb_dist_of(r->post, r->npost, &row->post);
    nb_dist_of(r->tx, r->ntx, &row->tx);
}

/* READ: the bytes this step used must now hold the target's pattern. */
static int check_local(const nb_cfg_t *cfg, const nb_side_t *s, uint64_t slice, uint64_t span)
{
    for (uint64_t t = 0; t < cfg->num_threads; t++) {
        long long bad;
        uint8_t seen;
        if (nb_side_find_other(s, t * slice, span, NB_FILL_TARGET, &bad, &seen))
            return NB_EXIT_FAIL;
        if (bad >= 0) {
            printf("Consistency check failed\n");
            fflush(stdout);
            return nb_fail("consistency check failed: initiator %s byte %lld is 0x%02x after "
                           "READ, expected 0x%02x",
                           cfg->initiator_seg_type, bad, seen, NB_FILL_TARGET);
        }
    }
    return 0;
}

static int step(const nb_cfg_t *cfg, nb_side_t *s, nb_rt_t *rt, const nb_plan_t *p,
                const char *label, nb_row_t *row)
{
    uint64_t slice = cfg->total_buffer_size / cfg->num_threads, span = p->block * p->batch;
    uint64_t nslots = slice / span < cfg->pipeline_depth ? slice / span : cfg->pipeline_depth;
    /* Requests take slots in order, so a short step leaves the last ones unused. */
    uint64_t posts = p->iters > p->warmup ? p->iters : p->warmup;
    uint64_t used = posts < nslots ? posts : nslots;
    nb_step_t st = {.slice = slice, .span = used * span, .threads = (uint32_t)cfg->num_threads,
                    .fill = cfg->check_consistency};
    if (cfg->check_consistency) /* so that every step proves it moved its own bytes */
        for (uint64_t t = 0; t < cfg->num_threads; t++)
            if (nb_side_fill(s, t * slice, st.span, NB_FILL_INITIATOR))
                return NB_EXIT_FAIL;
    void *msg;
    size_t len;
    if (nb_rt_send(rt, NB_MSG_STEP, &st, sizeof(st)) ||
        nb_rt_recv(rt, NB_MSG_READY, &msg, &len, NB_REPLY_TIMEOUT_MS))
        return NB_EXIT_FAIL;
    free(msg);
    nb_step_result_t r;
    int rc = nb_loop_run(cfg, s, rt, p, slice, nslots, label, &r);
    if (rc)
        return rc;
    nb_done_t d = {.notifs = (p->iters + p->warmup) * cfg->num_threads,
                   .verify = cfg->check_consistency && cfg->op == NIXL_WRITE};
    nb_verdict_t v;
    if (nb_rt_send(rt, NB_MSG_DONE, &d, sizeof(d)) ||
        nb_rt_recv_into(rt, NB_MSG_VERDICT, &v, sizeof(v), NB_REPLY_TIMEOUT_MS)) {
        nb_step_result_free(&r);
        return NB_EXIT_FAIL;
    }
    v.why[sizeof(v.why) - 1] = '\0';
    if (!v.ok) {
        nb_step_result_free(&r);
        if (!strncmp(v.why, "Consistency", 11)) {
            printf("Consistency check failed\n");
            fflush(stdout);
        }
        return nb_fail("target: %s", v.why);
    }
    if (cfg->check_consistency && cfg->op == NIXL_READ &&
        (rc = check_local(cfg, s, slice, st.span))) {
        nb_step_result_free(&r);
        return rc;
    }
    row_of(cfg, p, &r, row);
    nb_step_result_free(&r);
    return 0;
}

int nb_initiator_run(const nb_cfg_t *cfg, const char *backend, nb_rt_t *rt,
                     const nb_hooks_t *hooks)
{
    nb_side_t s;
    int rc = setup(cfg, backend, rt, &s);
    if (rc == 0 && hooks->on_start)
        hooks->on_start(cfg, s.backend, hooks->arg);
    uint64_t nsteps = 0, at = 0;
    for (uint64_t b = cfg->start_block_size; b && b <= cfg->max_block_size; b *= 2)
        for (uint64_t n = cfg->start_batch_size; n && n <= cfg->max_batch_size; n *= 2)
            nsteps++;
    for (uint64_t b = cfg->start_block_size; !rc && b && b <= cfg->max_block_size; b *= 2)
        for (uint64_t n = cfg->start_batch_size; !rc && n && n <= cfg->max_batch_size; n *= 2) {
            nb_plan_t p;
            nb_plan_iters(cfg, b, &p);
            p.batch = n;
            char label[128];
            snprintf(label, sizeof(label), "%s step %llu/%llu: block %llu x %llu", s.backend,
                     (unsigned long long)++at, (unsigned long long)nsteps,
                     (unsigned long long)b, (unsigned long long)n);
            nb_row_t row;
            rc = step(cfg, &s, rt, &p, label, &row);
            if (!rc && hooks->on_row)
                hooks->on_row(cfg, &row, hooks->arg);
        }
    if (rc == 0)
        rc = nb_rt_send(rt, NB_MSG_FIN, NULL, 0) ? NB_EXIT_FAIL : 0;
    nb_side_close(&s);
    return rc;
}
