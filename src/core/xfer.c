/* xfer.c - prepared lists, transfer requests and their state machine (reference 6.1-6.10). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent_impl.h"
#include "error.h"
#include "log.h"
#include "scratch.h"

/* ------------------------------------------------------------------------------------------ */
/* Handle bookkeeping: everything not released is freed by nixl_agent_destroy().               */
/* ------------------------------------------------------------------------------------------ */

static void handle_link(nixl_agent_t *a, nixl_list_node_t **head, nixl_list_node_t *n)
{
    pthread_mutex_lock(&a->handles_lock);
    nixl_list_push(head, n);
    pthread_mutex_unlock(&a->handles_lock);
}

static void handle_unlink(nixl_agent_t *a, nixl_list_node_t **head, nixl_list_node_t *n)
{
    pthread_mutex_lock(&a->handles_lock);
    nixl_list_remove(head, n);
    pthread_mutex_unlock(&a->handles_lock);
}

static void dlist_free(nixl_dlist_t *d)
{
    for (unsigned e = 0; e < NIXL_MAX_ENGINES; e++)
        free(d->resolved[e]);
    peer_unref(d->peer);
    free(d);
}

static void req_free(nixl_xfer_req_t *r)
{
    peer_unref(r->peer);
    free(r->notif);
    free(r);
}

/* How long destroy keeps asking an engine to let go of a request it refuses to release. */
#define DESTROY_RELEASE_WAIT_MS 30000
#define DESTROY_RELEASE_RETRY_US 10000

/* "request 0x... (POSIX, WRITE of 3 descriptor(s) with 'peer')" for the log. */
static void req_describe(const nixl_xfer_req_t *r, char *buf, size_t size)
{
    snprintf(buf, size, "request %p (%s, %s of %zu descriptor(s) with '%s')", (void *)r,
             r->engine->name, nixl_op_str(r->op), r->count, r->peer->name);
}

static nixl_status_t req_release_once(nixl_xfer_req_t *r)
{
    nixl_err_arm();
    nixl_status_t st = r->engine->ops->release_req(r->engine->eng, r->be_req);
    if (st != NIXL_SUCCESS && nixl_err_unset())
        nixl_err_set("%s gave no reason", r->engine->name);
    return st;
}

uint32_t xfer_release_all(nixl_agent_t *a)
{
    /* The list is newest first: release in that order; the refused ones move to `held`. */
    nixl_list_node_t *held = NULL;
    while (a->reqs) {
        nixl_xfer_req_t *r = nixl_list_entry(a->reqs, nixl_xfer_req_t, node);
        nixl_list_remove(&a->reqs, &r->node);
        if (req_release_once(r) == NIXL_SUCCESS) {
            req_free(r);
            continue;
        }
        char what[256];
        req_describe(r, what, sizeof(what));
        NIXL_WARN("agent '%s': destroy: %s could not be released yet (%s); retrying for up to "
                  "%d ms", a->name, what, nixl_last_error(), DESTROY_RELEASE_WAIT_MS);
        nixl_list_push(&held, &r->node);
    }
    /* Never free what an engine still uses: ask again until it lets go, for a while. */
    uint64_t deadline = nixl_now_ns() + (uint64_t)DESTROY_RELEASE_WAIT_MS * 1000000u;
    while (held && nixl_now_ns() < deadline) {
        struct timespec pause = {0, DESTROY_RELEASE_RETRY_US * 1000L};
        nanosleep(&pause, NULL);
        for (nixl_list_node_t *n = held, *next; n; n = next) {
            next = n->next;
            nixl_xfer_req_t *r = nixl_list_entry(n, nixl_xfer_req_t, node);
            if (req_release_once(r) != NIXL_SUCCESS)
                continue;
            nixl_list_remove(&held, n);
            req_free(r);
        }
    }
    uint32_t stuck = 0;
    for (nixl_list_node_t *n = held; n; n = n->next) {
        nixl_xfer_req_t *r = nixl_list_entry(n, nixl_xfer_req_t, node);
        char what[256];
        req_describe(r, what, sizeof(what));
        NIXL_ERROR("agent '%s': destroy: %s is still refused after %d ms (%s); it and its %s "
                   "engine are left alive rather than freed under the engine", a->name, what,
                   DESTROY_RELEASE_WAIT_MS, nixl_last_error(), r->engine->name);
        stuck |= 1u << r->engine->index;
    }
    while (a->dlists) {
        nixl_dlist_t *d = nixl_list_entry(a->dlists, nixl_dlist_t, node);
        nixl_list_remove(&a->dlists, &d->node);
        dlist_free(d);
    }
    return stuck;
}

/* ------------------------------------------------------------------------------------------ */
/* Resolution: descriptors -> (descriptor, region metadata)                                    */
/* ------------------------------------------------------------------------------------------ */

/* Resolve every descriptor against one section. Consecutive descriptors usually fall in the
 * same region, so the last hit is tried before the O(log n) search. */
static bool resolve(const nixl_section_t *s, const nixl_desc_t *descs, size_t count,
                    nixl_be_desc_t *out, size_t *bad)
{
    const nixl_region_t *last = NULL;
    for (size_t i = 0; i < count; i++) {
        const nixl_desc_t *d = &descs[i];
        if (!last || !nixl_region_covers(last, d->addr, d->len, d->dev_id)) {
            last = nixl_section_lookup(s, d->addr, d->len, d->dev_id);
            if (!last) {
                *bad = i;
                return false;
            }
        }
        out[i] = (nixl_be_desc_t){d->addr, d->len, d->dev_id, last->md};
    }
    return true;
}

/* Resolve both lists of a request in one pass (each side keeps its own last hit). On failure
 * *bad is the first misfit and *bad_remote says on which side. */
static bool resolve_pair(const nixl_section_t *ls, const nixl_section_t *rs,
                         const nixl_desc_t *local, const nixl_desc_t *remote, size_t count,
                         nixl_be_desc_t *lout, nixl_be_desc_t *rout, size_t *bad,
                         bool *bad_remote)
{
    const nixl_region_t *lr = NULL, *rr = NULL;
    for (size_t i = 0; i < count; i++) {
        const nixl_desc_t *l = &local[i], *r = &remote[i];
        if (!lr || !nixl_region_covers(lr, l->addr, l->len, l->dev_id)) {
            lr = nixl_section_lookup(ls, l->addr, l->len, l->dev_id);
            if (!lr) {
                *bad = i;
                *bad_remote = false;
                return false;
            }
        }
        if (!rr || !nixl_region_covers(rr, r->addr, r->len, r->dev_id)) {
            rr = nixl_section_lookup(rs, r->addr, r->len, r->dev_id);
            if (!rr) {
                *bad = i;
                *bad_remote = true;
                return false;
            }
        }
        lout[i] = (nixl_be_desc_t){l->addr, l->len, l->dev_id, lr->md};
        rout[i] = (nixl_be_desc_t){r->addr, r->len, r->dev_id, rr->md};
    }
    return true;
}

static const nixl_section_t *side_section(nixl_agent_t *a, nixl_peer_t *peer, unsigned e,
                                          nixl_mem_t type)
{
    if (!peer)
        return &a->local[e][type];
    if (peer->is_self)
        return (a->engines[e]->info->caps & NIXL_BE_CAP_LOCAL) ? &peer->sections[e][type] : NULL;
    return peer->conn[e] == PEER_CONN_LOADED ? &peer->sections[e][type] : NULL;
}

static const char *side_name(const nixl_peer_t *peer)
{
    return peer ? peer->name : "local";
}

static nixl_status_t misfit(const nixl_desc_t *descs, size_t bad, unsigned tried,
                            const nixl_peer_t *peer, nixl_mem_t type)
{
    if (!tried)
        return nixl_err(NIXL_ERR_NOT_FOUND, "no backend has %s regions registered for side '%s'",
                        nixl_mem_str(type), side_name(peer));
    return nixl_err(NIXL_ERR_NOT_FOUND,
                    "descriptor %zu (addr 0x%lx, len %zu, dev %lu) is not inside one registered "
                    "%s region of side '%s'", bad, (unsigned long)descs[bad].addr, descs[bad].len,
                    (unsigned long)descs[bad].dev_id, nixl_mem_str(type), side_name(peer));
}

static nixl_status_t check_op(nixl_xfer_op_t op)
{
    if (op != NIXL_READ && op != NIXL_WRITE)
        return nixl_err(NIXL_ERR_INVALID_PARAM, "transfer operation %d is neither READ nor WRITE",
                        (int)op);
    return NIXL_SUCCESS;
}

/* ------------------------------------------------------------------------------------------ */
/* Prepared lists                                                                              */
/* ------------------------------------------------------------------------------------------ */

static nixl_status_t prep_xfer_dlist(nixl_agent_t *agent, const char *agent_name,
                                     nixl_mem_t type, const nixl_desc_t *descs, size_t count,
                                     const nixl_opt_args_t *opt, nixl_dlist_t **out)
{
    if (!agent || !agent_name || !out || (count && !descs) || (unsigned)type >= NIXL_MEM_COUNT)
        return nixl_err(NIXL_ERR_INVALID_PARAM, "prep_xfer_dlist: agent, agent_name, out and a "
                                                "valid memory type are required");
    if (!count)
        return nixl_err(NIXL_ERR_NOT_FOUND, "prep_xfer_dlist: the descriptor list is empty");
    agent_rdlock(agent);
    nixl_status_t st;
    nixl_dlist_t *d = NULL;
    nixl_peer_t *peer = NULL;
    if (*agent_name && !(peer = peer_target(agent, agent_name))) {
        st = nixl_err(NIXL_ERR_NOT_FOUND, "prep_xfer_dlist: no metadata of '%s' is loaded",
                      agent_name);
        goto out;
    }
    uint32_t mask;
    bool hinted;
    st = engines_from_opt(agent, opt, &mask, &hinted);
    if (st != NIXL_SUCCESS)
        goto out;
    d = calloc(1, sizeof(*d));
    if (!d) {
        st = nixl_err_oom("prep_xfer_dlist");
        goto out;
    }
    unsigned tried = 0;
    size_t bad = 0;
    for (unsigned e = 0; e < agent->num_engines; e++) {
        const nixl_section_t *s = side_section(agent, peer, e, type);
        if (!(mask & (1u << e)) || !s || !s->count)
            continue;
        tried++;
        nixl_be_desc_t *r = malloc(count * sizeof(*r));
        if (!r) {
            st = nixl_err_oom("prep_xfer_dlist: %zu descriptors", count);
            goto out;
        }
        size_t b = 0;
        if (resolve(s, descs, count, r, &b)) {
            d->resolved[e] = r;
            d->engines |= 1u << e;
        } else {
            bad = b > bad ? b : bad;
            free(r);
        }
    }
    if (!d->engines) {
        st = misfit(descs, bad, tried, peer, type);
        nixl_err_prefix("prep_xfer_dlist");
        goto out;
    }
    d->agent = agent;
    d->type = type;
    d->count = count;
    d->peer = peer;
    if (peer) {
        peer_ref(peer);
        d->generation = peer->generation;
    }
    handle_link(agent, &agent->dlists, &d->node);
    *out = d;
    d = NULL;
out:
    agent_unlock(agent);
    if (d)
        dlist_free(d);
    return st;
}

nixl_status_t nixl_agent_release_dlist(nixl_agent_t *agent, nixl_dlist_t *dlist)
{
    if (!dlist)
        return NIXL_SUCCESS;
    if (!agent || dlist->agent != agent)
        return nixl_err(NIXL_ERR_INVALID_PARAM, "release_dlist: the list belongs to another agent");
    handle_unlink(agent, &agent->dlists, &dlist->node);
    dlist_free(dlist);
    return NIXL_SUCCESS;
}

/* ------------------------------------------------------------------------------------------ */
/* Requests                                                                                    */
/* ------------------------------------------------------------------------------------------ */

/* Resolved lists only live until the backend has prepared its own form of the request: they
 * go in the per-thread scratch buffer (util/scratch.h). */
static nixl_xfer_req_t *req_alloc(size_t count, nixl_be_desc_t **local, nixl_be_desc_t **remote)
{
    if (count > (SIZE_MAX / 2) / sizeof(nixl_be_desc_t))
        return NULL;
    nixl_xfer_req_t *r = malloc(sizeof(*r));
    nixl_be_desc_t *descs = nixl_scratch_get(2 * count * sizeof(*descs));
    if (!r || !descs) {
        free(r);
        return NULL;
    }
    memset(r, 0, sizeof(*r));
    *local = descs;
    *remote = descs + count;
    return r;
}

/* Take the notification of `opt` (none if it has none); on error the stored one is kept. */
static nixl_status_t req_notif_from_opt(nixl_xfer_req_t *r, const nixl_opt_args_t *opt)
{
    bool has = OPT_HAS(opt, notif_len) && opt->has_notif;
    uint8_t *copy = NULL;
    if (has) {
        if (opt->notif_len && !opt->notif)
            return nixl_err(NIXL_ERR_INVALID_PARAM, "opt->notif is NULL with notif_len %zu",
                            opt->notif_len);
        if (!(r->engine->info->caps & NIXL_BE_CAP_NOTIF))
            return nixl_err(NIXL_ERR_BACKEND, "backend %s does not support notifications",
                            r->engine->name);
        if (opt->notif_len) {
            copy = malloc(opt->notif_len);
            if (!copy)
                return nixl_err_oom("a %zu-byte notification", opt->notif_len);
            memcpy(copy, opt->notif, opt->notif_len);
        }
    }
    free(r->notif);
    r->notif = copy;
    r->notif_len = has ? opt->notif_len : 0;
    r->has_notif = has;
    return NIXL_SUCCESS;
}

static nixl_be_xfer_opts_t req_be_opts(const nixl_xfer_req_t *r, const nixl_opt_args_t *opt)
{
    nixl_be_xfer_opts_t o = {.struct_size = sizeof(o), .has_notif = r->has_notif,
                             .notif = r->notif, .notif_len = r->notif_len};
    if (OPT_HAS(opt, custom_param_len) && opt->custom_param_len) {
        o.custom_param = opt->custom_param;
        o.custom_param_len = opt->custom_param_len;
    }
    return o;
}

/* Hand the resolved lists to the engine; on success the request is complete and linked. */
static nixl_status_t req_finish(nixl_agent_t *a, nixl_xfer_req_t *r, const nixl_be_desc_t *local,
                                const nixl_be_desc_t *remote, size_t n,
                                const nixl_opt_args_t *opt)
{
    nixl_be_xfer_opts_t o = req_be_opts(r, opt);
    nixl_err_arm();
    nixl_status_t st = r->engine->ops->prep_xfer(r->engine->eng, r->op, local, remote, n,
                                                 r->peer->name, &o, &r->be_req);
    if (st != NIXL_SUCCESS) {
        if (nixl_err_unset())
            nixl_err_set("%s could not prepare the transfer", r->engine->name);
        return st;
    }
    nixl_err_settle(st);
    r->agent = a;
    r->count = n;
    atomic_init(&r->status, NIXL_ERR_NOT_POSTED);
    peer_ref(r->peer);
    handle_link(a, &a->reqs, &r->node);
    return NIXL_SUCCESS;
}

/*
 * A request that could not be made because its engine found the peer's connection failed
 * (NIXL_ERR_REMOTE_DISCONNECT): the peer is lost, as when a post or a status check finds it
 * so (its metadata is invalidated; the caller reloads it). Called on the way out with the
 * agent read-locked; returns the peer (referenced) for peer_lost() once the lock is released,
 * or NULL.
 */
static nixl_peer_t *req_failed_peer(const nixl_xfer_req_t *r, nixl_status_t st)
{
    if (st != NIXL_ERR_REMOTE_DISCONNECT || !r || !r->peer)
        return NULL;
    peer_ref(r->peer);
    return r->peer;
}

static nixl_status_t make_xfer_req(nixl_agent_t *agent, nixl_xfer_op_t op,
                                   const nixl_dlist_t *local, const int *local_idx,
                                   size_t local_count, const nixl_dlist_t *remote,
                                   const int *remote_idx, size_t remote_count,
                                   const nixl_opt_args_t *opt, nixl_xfer_req_t **out)
{
    if (!agent || !local || !remote || !out)
        return nixl_err(NIXL_ERR_INVALID_PARAM, "make_xfer_req: agent, both lists and out are "
                                                "required");
    nixl_status_t st = check_op(op);
    if (st != NIXL_SUCCESS)
        return st;
    if (local->agent != agent || remote->agent != agent)
        return nixl_err(NIXL_ERR_INVALID_PARAM, "make_xfer_req: a list belongs to another agent");
    if (local->peer)
        return nixl_err(NIXL_ERR_INVALID_PARAM,
                        "make_xfer_req: the local list was prepared for agent '%s', not the "
                        "local side", local->peer->name);
    if (!remote->peer)
        return nixl_err(NIXL_ERR_INVALID_PARAM,
                        "make_xfer_req: the remote list was prepared for the local side");
    if (!local_count || local_count != remote_count || !local_idx || !remote_idx)
        return nixl_err(NIXL_ERR_INVALID_PARAM,
                        "make_xfer_req: index lists must be non-empty and of equal length "
                        "(got %zu and %zu)", local_count, remote_count);

    agent_rdlock(agent);
    nixl_xfer_req_t *r = NULL;
    nixl_be_desc_t *ld = NULL, *rd = NULL;
    uint32_t mask;
    bool hinted;
    st = engines_from_opt(agent, opt, &mask, &hinted);
    if (st != NIXL_SUCCESS)
        goto out;
    unsigned order[NIXL_MAX_ENGINES];
    size_t n_engines = engines_ordered(agent, opt, mask & local->engines & remote->engines, order);
    if (!n_engines) {
        st = nixl_err(NIXL_ERR_INVALID_PARAM,
                      "make_xfer_req: no backend prepared both lists%s",
                      hinted ? " among the given backends" : "");
        goto out;
    }
    nixl_peer_t *peer = remote->peer;
    if (!atomic_load(&peer->valid) || peer->generation != remote->generation) {
        st = nixl_err(NIXL_ERR_NOT_FOUND,
                      "make_xfer_req: the metadata of '%s' was invalidated after the remote list "
                      "was prepared", peer->name);
        goto out;
    }
    unsigned e = order[0];
    r = req_alloc(local_count, &ld, &rd);
    if (!r) {
        st = nixl_err_oom("a request of %zu descriptors", local_count);
        goto out;
    }
    r->engine = agent->engines[e];
    r->peer = peer;
    r->generation = peer->generation;
    r->op = op;
    st = req_notif_from_opt(r, opt);
    if (st != NIXL_SUCCESS)
        goto out;

    const nixl_be_desc_t *L = local->resolved[e], *R = remote->resolved[e];
    bool merge = !(OPT_HAS(opt, skip_desc_merge) && opt->skip_desc_merge);
    size_t n = 0;
    uint64_t bytes = 0;
    for (size_t i = 0; i < local_count; i++) {
        int li = local_idx[i], ri = remote_idx[i];
        if (li < 0 || (size_t)li >= local->count || ri < 0 || (size_t)ri >= remote->count) {
            st = nixl_err(NIXL_ERR_INVALID_PARAM,
                          "make_xfer_req: index pair %zu (%d, %d) is out of range (lists of %zu "
                          "and %zu)", i, li, ri, local->count, remote->count);
            goto out;
        }
        const nixl_be_desc_t *l = &L[li], *rr = &R[ri];
        if (l->len != rr->len) {
            st = nixl_err(NIXL_ERR_INVALID_PARAM,
                          "make_xfer_req: pair %zu has lengths %zu (local) and %zu (remote)", i,
                          l->len, rr->len);
            goto out;
        }
        bytes += l->len;
        /* Fuse a pair that continues the previous one on both sides, inside the same
         * region (same metadata), when the indices advance together. */
        if (merge && n && li == local_idx[i - 1] + 1 && ri == remote_idx[i - 1] + 1) {
            nixl_be_desc_t *pl = &ld[n - 1], *pr = &rd[n - 1];
            if (pl->md == l->md && pr->md == rr->md && pl->dev_id == l->dev_id &&
                pr->dev_id == rr->dev_id && pl->addr + pl->len == l->addr &&
                pr->addr + pr->len == rr->addr) {
                pl->len += l->len;
                pr->len += rr->len;
                continue;
            }
        }
        ld[n] = *l;
        rd[n] = *rr;
        n++;
    }
    r->total_bytes = bytes;
    st = req_finish(agent, r, ld, rd, n, opt);
    if (st == NIXL_SUCCESS) {
        *out = r;
        r = NULL;
    }
out:;
    nixl_peer_t *lost = req_failed_peer(r, st);
    agent_unlock(agent);
    if (lost) {
        peer_lost(agent, lost, r->generation);
        peer_unref(lost);
    }
    if (ld)
        nixl_scratch_trim();
    if (r) {
        free(r->notif);
        free(r);
    }
    return st;
}

static nixl_status_t create_xfer_req(nixl_agent_t *agent, nixl_xfer_op_t op,
                                     nixl_mem_t local_type, const nixl_desc_t *local,
                                     size_t local_count, nixl_mem_t remote_type,
                                     const nixl_desc_t *remote, size_t remote_count,
                                     const char *remote_agent, const nixl_opt_args_t *opt,
                                     nixl_xfer_req_t **out)
{
    if (!agent || !remote_agent || !out || (local_count && !local) || (remote_count && !remote) ||
        (unsigned)local_type >= NIXL_MEM_COUNT || (unsigned)remote_type >= NIXL_MEM_COUNT)
        return nixl_err(NIXL_ERR_INVALID_PARAM, "create_xfer_req: agent, remote_agent, out, the "
                        "lists and valid memory types are required");
    nixl_status_t st = check_op(op);
    if (st != NIXL_SUCCESS)
        return st;
    if (local_count != remote_count)
        return nixl_err(NIXL_ERR_INVALID_PARAM,
                        "create_xfer_req: %zu local and %zu remote descriptors", local_count,
                        remote_count);
    uint64_t bytes = 0;
    for (size_t i = 0; i < local_count; i++) {
        if (local[i].len != remote[i].len)
            return nixl_err(NIXL_ERR_INVALID_PARAM,
                            "create_xfer_req: pair %zu has lengths %zu (local) and %zu (remote)",
                            i, local[i].len, remote[i].len);
        bytes += local[i].len;
    }
    if (!local_count)
        return nixl_err(NIXL_ERR_NOT_FOUND, "create_xfer_req: the descriptor lists are empty");

    agent_rdlock(agent);
    nixl_xfer_req_t *r = NULL;
    nixl_be_desc_t *ld = NULL, *rd = NULL;
    nixl_peer_t *peer = peer_target(agent, remote_agent);
    if (!peer) {
        st = nixl_err(NIXL_ERR_NOT_FOUND, "create_xfer_req: no metadata of '%s' is loaded",
                      remote_agent);
        goto out;
    }
    uint32_t mask;
    bool hinted;
    st = engines_from_opt(agent, opt, &mask, &hinted);
    if (st != NIXL_SUCCESS)
        goto out;
    unsigned order[NIXL_MAX_ENGINES];
    size_t n_engines = engines_ordered(agent, opt, mask, order);
    r = req_alloc(local_count, &ld, &rd);
    if (!r) {
        st = nixl_err_oom("a request of %zu descriptors", local_count);
        goto out;
    }
    r->peer = peer;
    r->generation = peer->generation;
    r->op = op;
    r->total_bytes = bytes;
    /* Engines that do not fit before the one that takes the request leave no reason behind. */
    nixl_err_saved_t saved;
    nixl_err_save(&saved);
    bool tried = false;
    st = NIXL_ERR_NOT_FOUND;
    for (size_t k = 0; k < n_engines; k++) {
        unsigned e = order[k];
        const nixl_section_t *ls = side_section(agent, NULL, e, local_type);
        const nixl_section_t *rs = side_section(agent, peer, e, remote_type);
        if (!ls || !rs || !ls->count || !rs->count)
            continue;
        tried = true;
        size_t bad = 0;
        bool bad_remote = false;
        if (!resolve_pair(ls, rs, local, remote, local_count, ld, rd, &bad, &bad_remote)) {
            st = bad_remote ? misfit(remote, bad, 1, peer, remote_type)
                            : misfit(local, bad, 1, NULL, local_type);
            continue;
        }
        r->engine = agent->engines[e];
        st = req_notif_from_opt(r, opt);
        if (st != NIXL_SUCCESS)
            break;
        /* A backend that cannot prepare this transfer leaves it to the next one. */
        st = req_finish(agent, r, ld, rd, local_count, opt);
        if (st == NIXL_SUCCESS)
            break;
        NIXL_DEBUG("create_xfer_req: %s could not prepare: %s", agent->engines[e]->name,
                   nixl_last_error());
    }
    if (st == NIXL_SUCCESS) {
        nixl_err_restore(&saved);
        *out = r;
        r = NULL;
    } else {
        if (!tried)
            nixl_err_set("no backend has %s regions on both sides (local and '%s')",
                         nixl_mem_str(local_type), remote_agent);
        nixl_err_prefix("create_xfer_req");
    }
out:;
    nixl_peer_t *lost = req_failed_peer(r, st);
    agent_unlock(agent);
    if (lost) {
        peer_lost(agent, lost, r->generation);
        peer_unref(lost);
    }
    if (ld)
        nixl_scratch_trim();
    if (r) {
        free(r->notif);
        free(r);
    }
    return st;
}

static nixl_status_t req_stale(const nixl_xfer_req_t *r)
{
    if (!atomic_load(&r->peer->valid))
        return nixl_err(NIXL_ERR_NOT_FOUND,
                        "the metadata of '%s' was invalidated after this request was made "
                        "(make a new request after reloading it)", r->peer->name);
    return NIXL_SUCCESS;
}

static bool req_mine(nixl_agent_t *a, const nixl_xfer_req_t *r)
{
    return a && r && r->agent == a;
}

/* How long nixl_agent_cancel_xfer_req (and a deadline) waits for a backend to stop a transfer. */
#define CANCEL_WAIT_MS 1000

/* Ask the engine to stop the request until it has, for at most `wait_ms`; tables read-locked.
 * The request's final status, NIXL_ERR_CANCELED, or NIXL_IN_PROG if it still runs. */
static nixl_status_t req_cancel(nixl_xfer_req_t *req, unsigned wait_ms)
{
    uint64_t until = nixl_now_ms() + wait_ms;
    for (;;) {
        nixl_err_arm();
        nixl_status_t st = req->engine->ops->cancel_xfer(req->engine->eng, req->be_req);
        nixl_err_settle(st);
        if (st != NIXL_IN_PROG || nixl_now_ms() >= until)
            return st;
        nanosleep(&(struct timespec){.tv_nsec = 200000}, NULL);
    }
}

/* A request left IN_PROG for `st` (SUCCESS or an error): only the caller that makes the
 * change reports it, so a completion is counted once however many threads poll. `now_ns` is
 * the completion time when the caller has just read the clock, else 0. */
static bool req_settle(nixl_xfer_req_t *req, nixl_status_t st, uint64_t now_ns)
{
    int expected = NIXL_IN_PROG;
    if (!atomic_compare_exchange_strong(&req->status, &expected, st))
        return false;
    nixl_agent_t *a = req->agent;
    if (st == NIXL_SUCCESS && a->telemetry) {
        req->done_ns = now_ns ? now_ns : telem_clock_now_ns();
        /* the CPU counters of two cores may differ by a few ticks: never a negative time */
        uint64_t xfer_ns = req->done_ns > req->start_ns ? req->done_ns - req->start_ns : 0;
        nixl_telem_record_completion(a->telem, req->op == NIXL_WRITE, req->post_ns / 1000,
                                     xfer_ns / 1000, req->total_bytes);
    }
    return true;
}

static nixl_status_t post_xfer_req(nixl_agent_t *agent, nixl_xfer_req_t *req,
                                   const nixl_opt_args_t *opt)
{
    if (!req_mine(agent, req))
        return nixl_err(NIXL_ERR_INVALID_PARAM, "post_xfer_req: NULL or foreign request");
    agent_rdlock(agent);
    const nixl_be_ops_t *ops = req->engine->ops;
    nixl_status_t st = req_stale(req);
    if (st != NIXL_SUCCESS)
        goto out;
    if (atomic_load(&req->stopping)) {
        /* canceled at its deadline while the backend still ran it: not before it stopped */
        if (req_cancel(req, 0) == NIXL_IN_PROG) {
            st = nixl_err(NIXL_ERR_REPOST_ACTIVE, "post_xfer_req: the previous post passed its "
                          "deadline and the backend is still stopping it");
            goto out;
        }
        atomic_store(&req->stopping, false);
    }
    if (atomic_load(&req->status) == NIXL_IN_PROG) {
        nixl_err_arm();
        st = ops->check_xfer(req->engine->eng, req->be_req);
        if (st != NIXL_ERR_REMOTE_DISCONNECT)
            nixl_err_undo(); /* how the previous run ended is not this post's failure */
        if (st == NIXL_IN_PROG) {
            st = nixl_err(NIXL_ERR_REPOST_ACTIVE, "post_xfer_req: the previous post is still "
                                                  "in progress");
            goto out;
        }
        req_settle(req, st, 0);
        if (st == NIXL_ERR_REMOTE_DISCONNECT)
            goto out;
    }
    if (opt) {
        st = req_notif_from_opt(req, opt);
        if (st != NIXL_SUCCESS)
            goto out;
    }
    nixl_be_xfer_opts_t o = req_be_opts(req, opt);
    uint64_t t0 = agent->telemetry ? telem_clock_now_ns() : 0;
    req->deadline_ns = OPT_HAS(opt, deadline_us) && opt->deadline_us
                           ? nixl_now_ns() + opt->deadline_us * 1000u
                           : 0;
    nixl_err_arm();
    st = ops->post_xfer(req->engine->eng, req->be_req, &o);
    uint64_t t1 = 0;
    if (agent->telemetry) {
        t1 = telem_clock_now_ns();
        req->start_ns = t0;
        req->post_ns = t1 > t0 ? t1 - t0 : 0; /* the thread may have changed cores */
    }
    /* the status goes through IN_PROG so that a completion is reported by req_settle alone */
    atomic_store(&req->status, NIXL_IN_PROG);
    if (st != NIXL_IN_PROG)
        req_settle(req, st, t1);
    if (st < 0 && nixl_err_unset())
        nixl_err_set("%s failed to post the transfer", req->engine->name);
    nixl_err_settle(st);
out:
    agent_unlock(agent);
    if (st == NIXL_ERR_REMOTE_DISCONNECT)
        peer_lost(agent, req->peer, req->generation);
    return st;
}

nixl_status_t nixl_agent_cancel_xfer_req(nixl_agent_t *agent, nixl_xfer_req_t *req)
{
    if (!req_mine(agent, req))
        return nixl_err(NIXL_ERR_INVALID_PARAM, "cancel_xfer_req: NULL or foreign request");
    nixl_status_t st = atomic_load(&req->status);
    if (st != NIXL_IN_PROG)
        return st; /* nothing runs: its final state stands */
    agent_rdlock(agent);
    st = req_cancel(req, CANCEL_WAIT_MS);
    if (st != NIXL_IN_PROG)
        atomic_store(&req->status, st);
    agent_unlock(agent);
    if (st == NIXL_IN_PROG)
        return nixl_err(NIXL_ERR_REPOST_ACTIVE,
                        "cancel_xfer_req: %s could not stop the transfer within %d ms (it cannot "
                        "abort what is already in flight): it still runs, keep its buffers and "
                        "ask again or release it later",
                        req->engine->name, CANCEL_WAIT_MS);
    if (st == NIXL_ERR_CANCELED)
        nixl_err_set("cancel_xfer_req: the transfer was stopped; part of its bytes may have "
                     "moved");
    return st;
}

nixl_status_t nixl_agent_get_xfer_status(nixl_agent_t *agent, nixl_xfer_req_t *req)
{
    if (!req_mine(agent, req))
        return nixl_err(NIXL_ERR_INVALID_PARAM, "get_xfer_status: NULL or foreign request");
    nixl_status_t st = atomic_load(&req->status);
    if (st != NIXL_IN_PROG)
        return st;
    agent_rdlock(agent);
    st = req_stale(req);
    if (st == NIXL_SUCCESS) {
        nixl_err_arm();
        st = req->engine->ops->check_xfer(req->engine->eng, req->be_req);
        if (st < 0 && nixl_err_unset())
            nixl_err_set("%s reports the transfer failed", req->engine->name);
        nixl_err_settle(st);
        if (st == NIXL_IN_PROG && req->deadline_ns && nixl_now_ns() >= req->deadline_ns) {
            /* Past its deadline: stop it. What the backend cannot stop at once is reported as
             * canceled all the same (the caller asked not to wait); the request stays
             * unreleasable and unpostable until the backend is done with it. */
            nixl_status_t c = req_cancel(req, 0);
            st = c == NIXL_IN_PROG || c == NIXL_ERR_CANCELED ? NIXL_ERR_CANCELED : c;
            atomic_store(&req->stopping, c == NIXL_IN_PROG);
            if (st == NIXL_ERR_CANCELED)
                nixl_err_set("get_xfer_status: the transfer ran past its deadline and was "
                             "canceled%s", c == NIXL_IN_PROG ? " (the backend is still "
                             "stopping it: a repost or release waits for that)" : "");
        }
        if (st != NIXL_IN_PROG && req_settle(req, st, 0))
            agent_telem_status(agent, st); /* an error counts once, where it is seen first */
    } else {
        agent_telem_status(agent, st); /* stale */
    }
    agent_unlock(agent);
    if (st == NIXL_ERR_REMOTE_DISCONNECT)
        peer_lost(agent, req->peer, req->generation);
    return st;
}

nixl_status_t nixl_agent_release_xfer_req(nixl_agent_t *agent, nixl_xfer_req_t *req)
{
    if (!req)
        return NIXL_SUCCESS;
    if (!req_mine(agent, req))
        return nixl_err(NIXL_ERR_INVALID_PARAM, "release_xfer_req: foreign request");
    agent_rdlock(agent);
    if (atomic_load(&req->status) == NIXL_IN_PROG) {
        nixl_err_arm();
        nixl_status_t now = req->engine->ops->check_xfer(req->engine->eng, req->be_req);
        nixl_err_undo(); /* how the transfer ended is not the release's failure */
        if (now != NIXL_IN_PROG)
            req_settle(req, now, 0);
    }
    nixl_status_t st = req_release_once(req);
    agent_unlock(agent);
    if (st != NIXL_SUCCESS) {
        /* The engine could not stop the transfer: freeing the request now would pull it from
         * under the engine (and the kernel may still be writing into the user's memory). */
        nixl_err_prefix("release_xfer_req: %s could not stop the transfer (%s); the request "
                        "stays valid: release it again later", req->engine->name,
                        nixl_status_str(st));
        return NIXL_ERR_REPOST_ACTIVE;
    }
    handle_unlink(agent, &agent->reqs, &req->node);
    req_free(req);
    return NIXL_SUCCESS;
}

nixl_status_t nixl_agent_query_xfer_backend(nixl_agent_t *agent, const nixl_xfer_req_t *req,
                                            nixl_backend_t **out)
{
    if (!req_mine(agent, req) || !out)
        return nixl_err(NIXL_ERR_INVALID_PARAM, "query_xfer_backend: NULL or foreign request");
    *out = req->engine;
    return NIXL_SUCCESS;
}

nixl_status_t nixl_agent_estimate_xfer_cost(nixl_agent_t *agent, const nixl_xfer_req_t *req,
                                            int64_t *out_duration_us, int64_t *out_err_margin_us,
                                            nixl_cost_t *out_method)
{
    if (!req_mine(agent, req) || !out_duration_us || !out_err_margin_us || !out_method)
        return nixl_err(NIXL_ERR_INVALID_PARAM,
                        "estimate_xfer_cost: a request of this agent and all outputs are required");
    agent_rdlock(agent);
    nixl_status_t st = req_stale(req);
    if (st == NIXL_SUCCESS) {
        int64_t d = 0, m = 0;
        nixl_cost_t c = NIXL_COST_ANALYTICAL_BACKEND;
        nixl_err_arm();
        st = req->engine->ops->estimate_cost(req->engine->eng, req->be_req, &d, &m, &c);
        nixl_err_settle(st);
        if (st == NIXL_SUCCESS) {
            *out_duration_us = d;
            *out_err_margin_us = m;
            *out_method = c;
        } else if (st == NIXL_ERR_NOT_SUPPORTED && nixl_err_unset()) {
            nixl_err_set("backend %s gives no cost estimates", req->engine->name);
        } else if (nixl_err_unset()) {
            nixl_err_set("backend %s could not estimate the cost", req->engine->name);
        }
    }
    agent_unlock(agent);
    return st;
}

nixl_status_t nixl_agent_get_xfer_telemetry(nixl_agent_t *agent, const nixl_xfer_req_t *req,
                                            nixl_xfer_telem_t *out)
{
    if (!req_mine(agent, req) || !out)
        return nixl_err(NIXL_ERR_INVALID_PARAM, "get_xfer_telemetry: NULL or foreign request");
    if (!agent->telemetry)
        return nixl_err(NIXL_ERR_NO_TELEMETRY, "telemetry is off for agent '%s' (set "
                        "NIXL_TELEMETRY_ENABLE=y or capture_telemetry)", agent->name);
    nixl_status_t st = atomic_load(&req->status);
    if (st != NIXL_SUCCESS)
        return st;
    out->start_time_us = req->start_ns / 1000;
    out->post_duration_us = req->post_ns / 1000;
    out->xfer_duration_us =
        req->done_ns > req->start_ns ? (req->done_ns - req->start_ns) / 1000 : 0;
    out->total_bytes = req->total_bytes;
    out->desc_count = req->count;
    return NIXL_SUCCESS;
}

/* ------------------------------------------------------------------------------------------ */
/* The public entry points that count their failures (reference 8.2: agent_err_* events)      */
/* ------------------------------------------------------------------------------------------ */

nixl_status_t nixl_agent_prep_xfer_dlist(nixl_agent_t *agent, const char *agent_name,
                                         nixl_mem_t type, const nixl_desc_t *descs, size_t count,
                                         const nixl_opt_args_t *opt, nixl_dlist_t **out)
{
    return agent_telem_status(agent, prep_xfer_dlist(agent, agent_name, type, descs, count, opt,
                                                     out));
}

nixl_status_t nixl_agent_make_xfer_req(nixl_agent_t *agent, nixl_xfer_op_t op,
                                       const nixl_dlist_t *local, const int *local_idx,
                                       size_t local_count, const nixl_dlist_t *remote,
                                       const int *remote_idx, size_t remote_count,
                                       const nixl_opt_args_t *opt, nixl_xfer_req_t **out)
{
    return agent_telem_status(agent, make_xfer_req(agent, op, local, local_idx, local_count,
                                                   remote, remote_idx, remote_count, opt, out));
}

nixl_status_t nixl_agent_create_xfer_req(nixl_agent_t *agent, nixl_xfer_op_t op,
                                         nixl_mem_t local_type, const nixl_desc_t *local,
                                         size_t local_count, nixl_mem_t remote_type,
                                         const nixl_desc_t *remote, size_t remote_count,
                                         const char *remote_agent, const nixl_opt_args_t *opt,
                                         nixl_xfer_req_t **out)
{
    return agent_telem_status(agent, create_xfer_req(agent, op, local_type, local, local_count,
                                                     remote_type, remote, remote_count,
                                                     remote_agent, opt, out));
}

nixl_status_t nixl_agent_post_xfer_req(nixl_agent_t *agent, nixl_xfer_req_t *req,
                                       const nixl_opt_args_t *opt)
{
    return agent_telem_status(req_mine(agent, req) ? agent : NULL,
                              post_xfer_req(agent, req, opt));
}
