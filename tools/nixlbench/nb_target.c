/*
 * nb_target.c - the passive side. It registers its buffer (0xAA), hands its metadata to the
 * initiator, then serves the initiator's steps: refill the bytes a step uses, poll
 * notifications while the initiator transfers (polling is also what progresses backends that
 * need the target's help, like UCX over TCP), and at the end of a step compare the count of
 * "0xBEEF" notifications from "initiator" with the transfers made and, for WRITE, check the
 * bytes. Its failures go to the initiator, which reports them.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nb.h"

static int count_notifs(nb_side_t *s, uint64_t *count)
{
    nixl_notif_list_t *l;
    nixl_status_t st = nixl_agent_get_notifs(s->agent, NULL, &l);
    if (st != NIXL_SUCCESS)
        return nb_fail("get_notifs: %s: %s", nixl_status_str(st), nixl_last_error());
    size_t n = strlen(NB_NOTIF);
    for (size_t i = 0; i < l->count; i++)
        if (!strcmp(l->items[i].agent, NB_INITIATOR) && l->items[i].msg_len == n &&
            !memcmp(l->items[i].msg, NB_NOTIF, n))
            (*count)++;
    nixl_free(l);
    return 0;
}

static int on_step(nb_side_t *s, nb_rt_t *rt, const nb_step_t *st)
{
    if (!st->threads || st->span > st->slice || st->slice * st->threads > s->len)
        return nb_fail("protocol error: a step outside the buffer");
    if (st->fill)
        for (uint32_t t = 0; t < st->threads; t++)
            if (nb_side_fill(s, t * st->slice, st->span, NB_FILL_TARGET))
                return NB_EXIT_FAIL;
    return nb_rt_send(rt, NB_MSG_READY, NULL, 0);
}

static int on_done(const nb_cfg_t *cfg, nb_side_t *s, nb_rt_t *rt, const nb_step_t *st,
                   const nb_done_t *d, uint64_t *notifs)
{
    long long deadline = nb_now_ms() + NB_NOTIF_TIMEOUT_MS;
    while (*notifs < d->notifs && nb_now_ms() < deadline) {
        uint64_t before = *notifs;
        if (count_notifs(s, notifs))
            return NB_EXIT_FAIL;
        if (*notifs == before)
            usleep(50);
    }
    nb_verdict_t v = {.ok = 1};
    if (*notifs != d->notifs)
        snprintf(v.why, sizeof(v.why), "%llu notifications arrived for %llu transfers",
                 (unsigned long long)*notifs, (unsigned long long)d->notifs);
    for (uint32_t t = 0; d->verify && !v.why[0] && t < st->threads; t++) {
        long long bad;
        uint8_t seen;
        if (nb_side_find_other(s, t * st->slice, st->span, NB_FILL_INITIATOR, &bad, &seen))
            return NB_EXIT_FAIL;
        if (bad >= 0)
            snprintf(v.why, sizeof(v.why),
                     "Consistency check failed: target %s byte %lld is 0x%02x after WRITE, "
                     "expected 0x%02x",
                     s->mem == NIXL_VRAM_SEG ? "VRAM" : "DRAM", bad, seen, NB_FILL_INITIATOR);
    }
    v.ok = !v.why[0];
    *notifs = 0;
    if (!v.ok && !*cfg->peer && !strncmp(v.why, "Consistency", 11)) {
        printf("Consistency check failed\n"); /* our own stdout, as the reference's target */
        fflush(stdout);
    }
    if (nb_rt_send(rt, NB_MSG_VERDICT, &v, sizeof(v)))
        return NB_EXIT_FAIL;
    return v.ok ? 0 : NB_EXIT_FAIL;
}

static int serve(const nb_cfg_t *cfg, nb_rt_t *rt, nb_side_t *s)
{
    nb_hello_t h;
    if (nb_rt_recv_into(rt, NB_MSG_HELLO, &h, sizeof(h), NB_REPLY_TIMEOUT_MS))
        return NB_EXIT_FAIL;
    h.backend[sizeof(h.backend) - 1] = '\0';
    if (h.version != NB_PROTOCOL)
        return nb_fail("the initiator runs another version of nixlbench");
    /* The initiator's --target_seg_type decides, as its --backend does: the two processes
     * cannot disagree. */
    nixl_mem_t mem = h.target_vram ? NIXL_VRAM_SEG : NIXL_DRAM_SEG;
    int rc;
    if ((rc = nb_side_open(s, cfg, NB_TARGET, h.backend, 1)) ||
        (rc = nb_side_alloc(s, cfg, mem, h.buffer_size, NB_FILL_TARGET)) ||
        (rc = nb_side_send_md(s, rt)) || (rc = nb_side_recv_md(s, rt)) ||
        (rc = nb_rt_send(rt, NB_MSG_READY, NULL, 0)))
        return rc;
    nb_step_t step = {0};
    bool in_step = false;
    uint64_t notifs = 0;
    double next_look = 0;
    for (;;) {
        /* Busy while the initiator transfers (it may need our progress), idle between. While
         * busy, the runtime's socket is looked at once a millisecond, not on every pass: a
         * poll() is a system call (about 1 us on a small VM), and this loop is the one that
         * serves backends needing the target's progress, as the reference's target does with
         * getNotifs alone. A step's end waits at most that millisecond more (not timed). */
        int n = 0;
        double now = in_step ? nb_now_us() : 0;
        if (!in_step || now >= next_look) {
            struct pollfd p = {.fd = rt->fd, .events = POLLIN};
            n = poll(&p, 1, in_step ? 0 : 10);
            next_look = now + 1000;
        }
        if (count_notifs(s, &notifs))
            return NB_EXIT_FAIL;
        if (n <= 0)
            continue;
        uint32_t type;
        void *msg;
        size_t len;
        if (nb_rt_next(rt, &type, &msg, &len, NB_REPLY_TIMEOUT_MS))
            return NB_EXIT_FAIL;
        nb_done_t d;
        rc = 0;
        if (type == NB_MSG_STEP && len == sizeof(step)) {
            memcpy(&step, msg, sizeof(step));
            rc = on_step(s, rt, &step);
            in_step = true;
        } else if (type == NB_MSG_DONE && len == sizeof(d)) {
            memcpy(&d, msg, sizeof(d));
            rc = on_done(cfg, s, rt, &step, &d, &notifs);
            in_step = false;
        } else if (type != NB_MSG_FIN) {
            rc = nb_fail("protocol error: message %u of %zu bytes", type, len);
        }
        free(msg);
        if (rc || type == NB_MSG_FIN)
            return rc;
    }
}

int nb_target_run(const nb_cfg_t *cfg, nb_rt_t *rt)
{
    char why[512] = "";
    nb_side_t s = {0};
    nb_fail_capture(why, sizeof(why));
    int rc = serve(cfg, rt, &s);
    nb_fail_capture(NULL, 0);
    bool peer_gone = __atomic_load_n(&rt->gone_told, __ATOMIC_ACQUIRE);
    /* Tell the initiator why we stop, unless it is gone; a spawned target's initiator shares
     * our stderr and reports for both. */
    if (rc && why[0] && (peer_gone || nb_rt_send(rt, NB_MSG_ERROR, why, strlen(why) + 1)) &&
        !*cfg->peer)
        fprintf(stderr, "%s: %s\n", nb_who, why);
    nb_side_close(&s);
    return rc;
}
