/* metadata.c - exporting our metadata, loading peers' metadata, invalidation and checks. */
#include <stdlib.h>
#include <string.h>

#include "agent_impl.h"
#include "error.h"
#include "log.h"
#include "codec.h"
#include "scratch.h"

static bool engine_remote(const nixl_backend_t *b)
{
    return (b->info->caps & NIXL_BE_CAP_REMOTE) != 0;
}

static nixl_status_t blob_out(nixl_buf_t *buf, void **out_blob, size_t *out_len)
{
    if (buf->oom) {
        nixl_buf_free(buf);
        return nixl_err_oom("serializing metadata");
    }
    *out_blob = nixl_buf_take(buf, out_len);
    return NIXL_SUCCESS;
}

/* Roughly the encoded size of a section, to allocate the buffer once. */
static size_t section_size_hint(const nixl_section_t *s)
{
    size_t n = 128;
    for (size_t i = 0; i < s->count; i++)
        n += 24 + 10 + s->regions[i].blob_len;
    return n;
}

nixl_status_t nixl_agent_get_local_md(nixl_agent_t *agent, void **out_blob, size_t *out_len)
{
    if (!agent || !out_blob || !out_len)
        return nixl_err(NIXL_ERR_INVALID_PARAM, "get_local_md: agent and outputs are required");
    agent_rdlock(agent);
    nixl_status_t st = NIXL_SUCCESS;
    size_t conns = 0, sections = 0, hint = 256;
    for (unsigned e = 0; e < agent->num_engines; e++) {
        if (!engine_remote(agent->engines[e]))
            continue;
        conns++;
        hint += agent->engines[e]->conn_len + 32;
        for (unsigned t = 0; t < NIXL_MEM_COUNT; t++)
            if (agent->local[e][t].count) {
                sections++;
                hint += section_size_hint(&agent->local[e][t]);
            }
    }
    if (!conns) {
        st = nixl_err(NIXL_ERR_INVALID_PARAM,
                      "get_local_md: agent '%s' has no backend that talks to other agents",
                      agent->name);
        goto out;
    }
    nixl_buf_t buf;
    nixl_buf_init(&buf, hint);
    nixl_md_enc_begin(&buf, agent->name, strlen(agent->name), conns);
    for (unsigned e = 0; e < agent->num_engines; e++)
        if (engine_remote(agent->engines[e]))
            nixl_md_enc_conn(&buf, agent->engines[e]->name, agent->engines[e]->conn_info,
                             agent->engines[e]->conn_len);
    nixl_md_enc_sections(&buf, sections);
    for (unsigned t = 0; t < NIXL_MEM_COUNT; t++) {
        for (unsigned e = 0; e < agent->num_engines; e++) {
            const nixl_section_t *s = &agent->local[e][t];
            if (!engine_remote(agent->engines[e]) || !s->count)
                continue;
            nixl_md_enc_section(&buf, agent->engines[e]->name, (nixl_mem_t)t, s->count);
            for (size_t i = 0; i < s->count; i++) {
                const nixl_region_t *r = &s->regions[i];
                /* "whole object" goes out as the length 0 it was registered with */
                nixl_desc_t d = {r->addr, r->len == SIZE_MAX ? 0 : r->len, r->dev_id};
                nixl_md_enc_region(&buf, &d, r->blob, r->blob_len);
            }
        }
    }
    st = blob_out(&buf, out_blob, out_len);
out:
    agent_unlock(agent);
    return st;
}

nixl_status_t nixl_agent_get_local_partial_md(nixl_agent_t *agent, nixl_mem_t type,
                                              const nixl_reg_desc_t *descs, size_t count,
                                              const nixl_opt_args_t *opt, void **out_blob,
                                              size_t *out_len)
{
    if (!agent || !out_blob || !out_len)
        return nixl_err(NIXL_ERR_INVALID_PARAM,
                        "get_local_partial_md: agent and outputs are required");
    if ((unsigned)type >= NIXL_MEM_COUNT || (count && !descs))
        return nixl_err(NIXL_ERR_INVALID_PARAM,
                        "get_local_partial_md: bad memory type or NULL descriptor array");
    agent_rdlock(agent);
    uint32_t mask;
    bool hinted;
    nixl_status_t st = engines_from_opt(agent, opt, &mask, &hinted);
    if (st != NIXL_SUCCESS)
        goto out;
    for (unsigned e = 0; e < agent->num_engines; e++) {
        const nixl_backend_t *b = agent->engines[e];
        bool keep = engine_remote(b) && (hinted || !count || (b->info->mems & NIXL_MEM_BIT(type)));
        if (!keep)
            mask &= ~(1u << e);
    }
    if (!mask && count) {
        st = nixl_err(NIXL_ERR_BACKEND,
                      "get_local_partial_md: no backend that talks to other agents serves %s",
                      nixl_mem_str(type));
        goto out;
    }
    bool with_conn = !count || (OPT_HAS(opt, include_conn_info) && opt->include_conn_info);

    /* Find every descriptor's region first: nothing is written unless all are registered. */
    size_t *found = count ? malloc(count * NIXL_MAX_ENGINES * sizeof(*found)) : NULL;
    if (count && !found) {
        st = nixl_err_oom("get_local_partial_md: %zu descriptors", count);
        goto out;
    }
    size_t conns = 0, sections = 0;
    for (unsigned e = 0; e < agent->num_engines; e++) {
        if (!(mask & (1u << e)))
            continue;
        conns++;
        const nixl_section_t *s = &agent->local[e][type];
        if (!count || !s->count)
            continue;
        sections++;
        for (size_t i = 0; i < count; i++) {
            ptrdiff_t k = nixl_section_find_exact(s, descs[i].addr,
                                                  nixl_region_len(type, descs[i].len),
                                                  descs[i].dev_id, NULL);
            if (k < 0) {
                st = nixl_err(NIXL_ERR_NOT_FOUND,
                              "get_local_partial_md: descriptor %zu (addr 0x%lx, len %zu, dev %lu) "
                              "is not a region registered with %s", i,
                              (unsigned long)descs[i].addr, descs[i].len,
                              (unsigned long)descs[i].dev_id, agent->engines[e]->name);
                free(found);
                goto out;
            }
            found[e * count + i] = (size_t)k;
        }
    }
    nixl_buf_t buf;
    nixl_buf_init(&buf, 256 + count * 64);
    nixl_md_enc_begin(&buf, agent->name, strlen(agent->name), with_conn ? conns : 0);
    if (with_conn)
        for (unsigned e = 0; e < agent->num_engines; e++)
            if (mask & (1u << e))
                nixl_md_enc_conn(&buf, agent->engines[e]->name, agent->engines[e]->conn_info,
                                 agent->engines[e]->conn_len);
    nixl_md_enc_sections(&buf, sections);
    for (unsigned e = 0; e < agent->num_engines && count; e++) {
        const nixl_section_t *s = &agent->local[e][type];
        if (!(mask & (1u << e)) || !s->count)
            continue;
        nixl_md_enc_section(&buf, agent->engines[e]->name, type, count);
        for (size_t i = 0; i < count; i++) {
            const nixl_region_t *r = &s->regions[found[e * count + i]];
            nixl_desc_t d = {r->addr, r->len == SIZE_MAX ? 0 : r->len, r->dev_id};
            nixl_md_enc_region(&buf, &d, r->blob, r->blob_len);
        }
    }
    free(found);
    st = blob_out(&buf, out_blob, out_len);
out:
    agent_unlock(agent);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* Loading                                                                                     */
/* ------------------------------------------------------------------------------------------ */

/* Regions of one section that are new to us, waiting to be loaded into the engine. */
typedef struct staged {
    nixl_backend_t *engine;
    nixl_mem_t type;
    size_t first, count; /* in the shared staging arrays */
    bool loaded;         /* the engine holds metadata for them */
} staged_t;

/*
 * A load runs in a control call with the tables released while the engines work (loading
 * connection info can mean dialing the peer): what it adds is staged here and installed in
 * one step under the write lock (load_commit), so the data path never sees half a load.
 */
typedef struct load_ctx {
    nixl_agent_t *a;
    nixl_peer_t *peer;
    bool created;        /* the peer did not exist before this load: not in the table yet */
    uint32_t conn_added; /* engines whose connection info this load added (staged below) */
    bool committed;      /* the staged connection info is installed in the peer */
    peer_conn_state_t conn[NIXL_MAX_ENGINES];
    uint8_t *conn_info[NIXL_MAX_ENGINES];
    size_t conn_len[NIXL_MAX_ENGINES];
    nixl_desc_t *descs;  /* staging arrays, one slot per region of the blob */
    nixl_be_blob_t *blobs;
    nixl_be_md_t **mds;
    staged_t *staged;
    size_t num_staged, num_descs;
} load_ctx_t;

/* The state of engine `e` for the peer, this load's staged changes included. */
static peer_conn_state_t ctx_conn(const load_ctx_t *c, unsigned e)
{
    return (c->conn_added & (1u << e)) ? c->conn[e] : c->peer->conn[e];
}

static bool ctx_conn_same(const load_ctx_t *c, unsigned e, const nixl_md_conn_t *conn)
{
    bool staged = c->conn_added & (1u << e);
    const uint8_t *info = staged ? c->conn_info[e] : c->peer->conn_info[e];
    size_t len = staged ? c->conn_len[e] : c->peer->conn_len[e];
    return len == conn->info_len && memcmp(info, conn->info, len) == 0;
}

static nixl_status_t load_conns(load_ctx_t *c, const nixl_md_view_t *v)
{
    nixl_peer_t *p = c->peer;
    size_t usable = 0;
    for (size_t i = 0; i < v->num_conns; i++) {
        const nixl_md_conn_t *conn = &v->conns[i];
        if (!conn->backend_len || !conn->info_len)
            return nixl_err(NIXL_ERR_MISMATCH, "load_remote_md: agent '%s' sent an empty backend "
                            "name or connection info", p->name);
        nixl_backend_t *b = engine_by_name(c->a, conn->backend, conn->backend_len);
        if (!b || !engine_remote(b)) {
            NIXL_DEBUG("load_remote_md: no local %.*s backend for agent '%s'",
                       (int)conn->backend_len, conn->backend, p->name);
            continue;
        }
        unsigned e = b->index;
        if (ctx_conn(c, e) != PEER_CONN_NONE) {
            if (!ctx_conn_same(c, e, conn))
                return nixl_err(NIXL_ERR_NOT_ALLOWED,
                                "load_remote_md: agent '%s' sent new %s connection info while "
                                "the old is loaded (a restarted peer must be invalidated first)",
                                p->name, b->name);
            usable += ctx_conn(c, e) == PEER_CONN_LOADED;
            continue;
        }
        uint8_t *copy = malloc(conn->info_len);
        if (!copy)
            return nixl_err_oom("load_remote_md: connection info of '%s'", p->name);
        memcpy(copy, conn->info, conn->info_len);
        nixl_err_arm();
        nixl_status_t st = b->ops->load_remote_conn(b->eng, p->name, conn->info, conn->info_len);
        if (st == NIXL_ERR_NOT_SUPPORTED) {
            if (nixl_err_unset())
                nixl_err_set("no reason given");
            NIXL_INFO("agent '%s' is not reachable through %s: %s", p->name, b->name,
                      nixl_last_error());
            c->conn[e] = PEER_CONN_UNREACHABLE;
        } else if (st == NIXL_SUCCESS) {
            c->conn[e] = PEER_CONN_LOADED;
            usable++;
        } else {
            free(copy);
            nixl_err_prefix("load_remote_md: %s refused the connection info of '%s'", b->name,
                            p->name);
            return st;
        }
        c->conn_info[e] = copy;
        c->conn_len[e] = conn->info_len;
        c->conn_added |= 1u << e;
    }
    if (v->num_conns && !usable) {
        bool any_loaded = false;
        for (unsigned e = 0; e < c->a->num_engines; e++)
            any_loaded = any_loaded || ctx_conn(c, e) == PEER_CONN_LOADED;
        if (!any_loaded)
            return nixl_err(NIXL_ERR_BACKEND,
                            "load_remote_md: no backend of agent '%s' can reach agent '%s' "
                            "(no common backend)", c->a->name, p->name);
    }
    return NIXL_SUCCESS;
}

/* Whether the blob brings connection info that differs from what is loaded for the peer. */
static bool conn_changed(nixl_agent_t *a, const nixl_peer_t *p, const nixl_md_view_t *v)
{
    for (size_t i = 0; i < v->num_conns; i++) {
        const nixl_md_conn_t *conn = &v->conns[i];
        nixl_backend_t *b = engine_by_name(a, conn->backend, conn->backend_len);
        if (!b || p->conn[b->index] == PEER_CONN_NONE)
            continue;
        if (p->conn_len[b->index] != conn->info_len ||
            memcmp(p->conn_info[b->index], conn->info, conn->info_len) != 0)
            return true;
    }
    return false;
}

/*
 * A peer restarted under the same name before any transfer noticed that the old one died:
 * if every engine connected to the old one says it is gone, the old metadata is stale and
 * the new one replaces it. A live agent reusing the name is still refused (NOT_ALLOWED).
 */
static bool peer_gone(nixl_agent_t *a, nixl_peer_t *p)
{
    bool any = false;
    for (unsigned e = 0; e < a->num_engines; e++) {
        if (p->conn[e] != PEER_CONN_LOADED)
            continue;
        any = true;
        if (a->engines[e]->ops->connect(a->engines[e]->eng, p->name) != NIXL_ERR_REMOTE_DISCONNECT)
            return false;
    }
    return any;
}

static int staged_cmp(const void *x, const void *y, void *arg)
{
    const nixl_desc_t *d = arg;
    const nixl_desc_t *a = &d[*(const size_t *)x], *b = &d[*(const size_t *)y];
    if (a->dev_id != b->dev_id)
        return a->dev_id < b->dev_id ? -1 : 1;
    if (a->addr != b->addr)
        return a->addr < b->addr ? -1 : 1;
    return a->len < b->len ? -1 : a->len > b->len;
}

/* Pick the regions of one section that we do not know yet; refuse changed blobs. */
static nixl_status_t stage_section(load_ctx_t *c, const nixl_md_view_t *v,
                                   const nixl_md_section_t *sec)
{
    nixl_peer_t *p = c->peer;
    nixl_backend_t *b = engine_by_name(c->a, sec->backend, sec->backend_len);
    if (!b || !engine_remote(b))
        return NIXL_SUCCESS;
    if (!sec->count)
        return nixl_err(NIXL_ERR_NOT_FOUND, "load_remote_md: agent '%s' sent an empty %s section",
                        p->name, b->name);
    if (ctx_conn(c, b->index) == PEER_CONN_UNREACHABLE)
        return NIXL_SUCCESS;
    if (ctx_conn(c, b->index) == PEER_CONN_NONE)
        return nixl_err(NIXL_ERR_NOT_FOUND,
                        "load_remote_md: regions of agent '%s' for %s arrived before its "
                        "connection info (load metadata that includes connection info first)",
                        p->name, b->name);
    const nixl_section_t *have = &p->sections[b->index][sec->type];
    staged_t *st = &c->staged[c->num_staged];
    *st = (staged_t){.engine = b, .type = sec->type, .first = c->num_descs};
    bool sorted = true;
    for (size_t i = 0; i < sec->count; i++) {
        const nixl_md_region_t *r = &v->regions[sec->first + i];
        nixl_desc_t d = r->desc;
        d.len = nixl_region_len(sec->type, d.len);
        if (have->count) {
            ptrdiff_t k = nixl_section_find_exact(have, d.addr, d.len, d.dev_id, NULL);
            if (k >= 0) {
                const nixl_region_t *old = &have->regions[k];
                if (old->blob_len != r->blob_len ||
                    (r->blob_len && memcmp(old->blob, r->blob, r->blob_len)))
                    return nixl_err(NIXL_ERR_NOT_ALLOWED,
                                    "load_remote_md: agent '%s' changed the %s blob of region "
                                    "0x%lx+%zu (invalidate it first)", p->name, b->name,
                                    (unsigned long)d.addr, r->desc.len);
                continue;
            }
        }
        size_t n = c->num_descs;
        if (n > st->first && sorted) {
            const nixl_desc_t *prev = &c->descs[n - 1];
            sorted = prev->dev_id < d.dev_id ||
                     (prev->dev_id == d.dev_id && (prev->addr < d.addr ||
                                                   (prev->addr == d.addr && prev->len <= d.len)));
        }
        c->descs[n] = d;
        c->blobs[n] = (nixl_be_blob_t){r->blob, r->blob_len};
        c->num_descs++;
    }
    st->count = c->num_descs - st->first;
    if (!st->count)
        return NIXL_SUCCESS;

    /* Sort the staged range if the peer did not (ours are sorted), then drop a region
     * listed twice if its blobs agree. */
    if (!sorted) {
        size_t *order = malloc(st->count * sizeof(*order));
        nixl_desc_t *td = malloc(st->count * sizeof(*td));
        nixl_be_blob_t *tb = malloc(st->count * sizeof(*tb));
        if (!order || !td || !tb) {
            free(order), free(td), free(tb);
            return nixl_err_oom("load_remote_md: sorting %zu regions", st->count);
        }
        for (size_t i = 0; i < st->count; i++)
            order[i] = st->first + i;
        qsort_r(order, st->count, sizeof(*order), staged_cmp, c->descs);
        for (size_t i = 0; i < st->count; i++) {
            td[i] = c->descs[order[i]];
            tb[i] = c->blobs[order[i]];
        }
        memcpy(c->descs + st->first, td, st->count * sizeof(*td));
        memcpy(c->blobs + st->first, tb, st->count * sizeof(*tb));
        free(order), free(td), free(tb);
    }
    size_t kept = st->first;
    for (size_t cur = st->first; cur < st->first + st->count; cur++) {
        if (kept > st->first) {
            const nixl_desc_t *a = &c->descs[kept - 1], *d = &c->descs[cur];
            if (a->addr == d->addr && a->len == d->len && a->dev_id == d->dev_id) {
                const nixl_be_blob_t *ab = &c->blobs[kept - 1], *db = &c->blobs[cur];
                if (ab->len != db->len || (ab->len && memcmp(ab->data, db->data, ab->len)))
                    return nixl_err(NIXL_ERR_NOT_ALLOWED,
                                    "load_remote_md: agent '%s' sent region 0x%lx twice with "
                                    "different %s blobs", p->name, (unsigned long)d->addr,
                                    b->name);
                continue;
            }
        }
        c->descs[kept] = c->descs[cur];
        c->blobs[kept] = c->blobs[cur];
        kept++;
    }
    st->count = kept - st->first;
    c->num_descs = kept;
    c->num_staged++;
    return NIXL_SUCCESS;
}

/* Insert loaded regions into the peer's sections, their blobs copied into one arena. */
static nixl_status_t commit_staged(load_ctx_t *c)
{
    size_t bytes = 0;
    for (size_t i = 0; i < c->num_descs; i++)
        bytes += c->blobs[i].len;
    nixl_arena_t *arena = NULL;
    if (bytes) {
        arena = malloc(sizeof(*arena) + bytes);
        if (!arena)
            return nixl_err_oom("load_remote_md: %zu bytes of region blobs", bytes);
    }
    size_t max = 0;
    for (size_t s = 0; s < c->num_staged; s++)
        max = c->staged[s].count > max ? c->staged[s].count : max;
    nixl_region_t *regs = malloc((max ? max : 1) * sizeof(*regs));
    if (!regs) {
        free(arena);
        return nixl_err_oom("load_remote_md: %zu regions", max);
    }
    uint8_t *w = arena ? arena->data : NULL;
    nixl_status_t st = NIXL_SUCCESS;
    for (size_t s = 0; s < c->num_staged && st == NIXL_SUCCESS; s++) {
        staged_t *sg = &c->staged[s];
        for (size_t i = 0; i < sg->count; i++) {
            size_t k = sg->first + i;
            regs[i] = (nixl_region_t){
                .addr = c->descs[k].addr,
                .len = c->descs[k].len,
                .dev_id = c->descs[k].dev_id,
                .md = c->mds[k],
                .blob = w,
                .blob_len = c->blobs[k].len,
            };
            if (c->blobs[k].len) {
                memcpy(w, c->blobs[k].data, c->blobs[k].len);
                w += c->blobs[k].len;
            }
        }
        st = nixl_section_insert(&c->peer->sections[sg->engine->index][sg->type], regs, sg->count);
        if (st == NIXL_SUCCESS)
            sg->loaded = false; /* owned by the section now */
        else
            nixl_err_oom("load_remote_md: %zu regions", sg->count);
    }
    free(regs);
    if (arena) {
        arena->next = c->peer->arenas;
        c->peer->arenas = arena;
    }
    return st;
}

/* Install the load (tables locked): connection info, then regions, then a new peer in the
 * table. When memory runs short halfway, what is installed of a known peer stays (it is
 * consistent: regions only of engines whose connection info is in); a new peer stays out. */
static nixl_status_t load_commit(load_ctx_t *c)
{
    nixl_peer_t *p = c->peer;
    for (unsigned e = 0; e < c->a->num_engines; e++) {
        if (!(c->conn_added & (1u << e)))
            continue;
        p->conn[e] = c->conn[e];
        p->conn_info[e] = c->conn_info[e];
        p->conn_len[e] = c->conn_len[e];
        c->conn_info[e] = NULL;
    }
    c->committed = true;
    nixl_status_t st = commit_staged(c);
    if (st == NIXL_SUCCESS && c->created && !peer_insert(c->a, p))
        st = nixl_err_oom("load_remote_md: the peer table for '%s'", p->name);
    return st;
}

/* Give back what the engines took for a load that failed (tables released: none of it is
 * published, but for the part of a known peer that load_commit installed). */
static void load_rollback(load_ctx_t *c)
{
    for (size_t s = 0; s < c->num_staged; s++) {
        staged_t *sg = &c->staged[s];
        if (sg->loaded)
            sg->engine->ops->unload_md(sg->engine->eng,
                                       &(nixl_be_mds_t){.base = c->mds + sg->first,
                                                        .stride = sizeof(*c->mds),
                                                        .count = sg->count});
    }
    for (unsigned e = 0; e < c->a->num_engines && !c->committed; e++) {
        if (!(c->conn_added & (1u << e)))
            continue;
        if (c->conn[e] == PEER_CONN_LOADED)
            c->a->engines[e]->ops->disconnect(c->a->engines[e]->eng, c->peer->name);
        free(c->conn_info[e]);
        c->conn_info[e] = NULL;
    }
    if (c->created) {
        peer_unload(c->a, c->peer);
        peer_unref(c->peer);
    }
}

nixl_status_t nixl_agent_load_remote_md(nixl_agent_t *agent, const void *blob, size_t len,
                                        char **out_name)
{
    return agent_load_md_bounded(agent, blob, len, SIZE_MAX, out_name);
}

nixl_status_t agent_load_md_bounded(nixl_agent_t *agent, const void *blob, size_t len,
                                    size_t max_peers, char **out_name)
{
    if (!agent || (!blob && len))
        return nixl_err(NIXL_ERR_INVALID_PARAM, "load_remote_md: agent and blob are required");
    nixl_md_view_t v;
    nixl_status_t st = nixl_md_decode(blob, len, &v);
    if (st != NIXL_SUCCESS)
        return st;
    char name[NIXL_MAX_NAME + 1];
    if (v.name_len > NIXL_MAX_NAME) {
        nixl_md_view_free(&v);
        return nixl_err(NIXL_ERR_MISMATCH, "load_remote_md: agent name of %zu bytes (at most %d)",
                        v.name_len, NIXL_MAX_NAME);
    }
    memcpy(name, v.name, v.name_len);
    name[v.name_len] = '\0';
    char *name_copy = NULL;
    if (out_name && !(name_copy = strdup(name))) {
        nixl_md_view_free(&v);
        return nixl_err_oom("load_remote_md: agent name");
    }

    /* The staging arrays live for this call only: per-thread scratch, one block. */
    load_ctx_t c = {.a = agent};
    size_t n = v.num_regions ? v.num_regions : 1, ns = v.num_sections ? v.num_sections : 1;
    size_t bytes = n * (sizeof(*c.descs) + sizeof(*c.blobs) + sizeof(*c.mds)) +
                   ns * sizeof(*c.staged);
    uint8_t *block = n < SIZE_MAX / 64 && ns < SIZE_MAX / 64 ? nixl_scratch_get(bytes) : NULL;
    if (block) {
        c.descs = (nixl_desc_t *)block;
        c.blobs = (nixl_be_blob_t *)(c.descs + n);
        c.mds = (nixl_be_md_t **)(c.blobs + n);
        c.staged = (staged_t *)(c.mds + n);
    }
    if (!block) {
        st = nixl_err_oom("load_remote_md: %zu regions", v.num_regions);
        goto out_free;
    }

    /* An engine that cannot reach the peer (another host for SHM) is no failure of the load,
     * nor is an old incarnation of the peer found gone. */
    nixl_err_saved_t saved;
    nixl_err_save(&saved);
    /* A control call, with the tables released while the engines work (asking whether an old
     * incarnation is gone, dialing the peer): transfers to other peers go on meanwhile. The
     * tables can be read without their lock: only control calls change them. */
    agent_wrlock(agent);
    agent_tables_release(agent);
    if (!strcmp(name, agent->name)) {
        st = nixl_err(NIXL_ERR_INVALID_PARAM,
                      "load_remote_md: the metadata is agent '%s''s own", name);
        goto out_unlock;
    }
    c.peer = peer_find(agent, name);
    if (c.peer && conn_changed(agent, c.peer, &v) && peer_gone(agent, c.peer)) {
        NIXL_INFO("agent '%s': '%s' restarted; its old metadata is replaced", agent->name, name);
        agent_tables_take(agent);
        peer_remove(agent, c.peer);
        agent_tables_release(agent);
        c.peer = NULL;
    }
    if (!c.peer && agent->peers.count >= max_peers) {
        st = nixl_err(NIXL_ERR_NOT_ALLOWED, "load_remote_md: %zu peers are loaded already "
                      "(NIXL_SIDECHANNEL_MAX_PEERS); '%s' is refused", agent->peers.count, name);
        goto out_unlock;
    }
    if (!c.peer) {
        c.peer = peer_alloc(name);
        c.created = true;
        if (!c.peer) {
            st = nixl_err_oom("load_remote_md: agent '%s'", name);
            goto out_unlock;
        }
    }
    st = load_conns(&c, &v);
    for (size_t s = 0; s < v.num_sections && st == NIXL_SUCCESS; s++)
        st = stage_section(&c, &v, &v.sections[s]);
    for (size_t s = 0; s < c.num_staged && st == NIXL_SUCCESS; s++) {
        staged_t *sg = &c.staged[s];
        nixl_err_arm();
        st = sg->engine->ops->load_remote_md(sg->engine->eng, name, sg->type,
                                             c.descs + sg->first, c.blobs + sg->first,
                                             sg->count, c.mds + sg->first);
        if (st == NIXL_SUCCESS)
            sg->loaded = true;
        else
            nixl_err_prefix("load_remote_md: %s refused regions of '%s'", sg->engine->name, name);
    }
    if (st == NIXL_SUCCESS) {
        agent_tables_take(agent);
        st = load_commit(&c);
        agent_tables_release(agent);
    }
    if (st != NIXL_SUCCESS) {
        load_rollback(&c);
    } else {
        nixl_err_restore(&saved);
        NIXL_DEBUG("agent '%s': loaded metadata of '%s' (%zu new regions)", agent->name, name,
                   c.num_descs);
    }
out_unlock:
    agent_tables_take(agent);
    agent_wrunlock(agent);
out_free:
    nixl_scratch_trim();
    nixl_md_view_free(&v);
    if (st == NIXL_SUCCESS && out_name)
        *out_name = name_copy;
    else
        free(name_copy);
    return st;
}

nixl_status_t nixl_agent_invalidate_remote_md(nixl_agent_t *agent, const char *name)
{
    if (!agent || !name)
        return nixl_err(NIXL_ERR_INVALID_PARAM,
                        "invalidate_remote_md: agent and name are required");
    agent_wrlock(agent);
    nixl_status_t st = NIXL_SUCCESS;
    if (!strcmp(name, agent->name)) {
        st = nixl_err(NIXL_ERR_INVALID_PARAM, "invalidate_remote_md: '%s' is this agent", name);
    } else {
        nixl_peer_t *p = peer_find(agent, name);
        nixl_err_saved_t saved; /* unload_md and disconnect report nothing to check */
        nixl_err_save(&saved);
        if (p) {
            peer_remove(agent, p); /* the engines let go with the tables released */
            nixl_err_restore(&saved);
        } else {
            st = nixl_err(NIXL_ERR_NOT_FOUND, "invalidate_remote_md: no metadata of '%s' is loaded",
                          name);
        }
    }
    agent_wrunlock(agent);
    return st;
}

/* Whether every descriptor lies in one region of `s`. On failure *bad is the first misfit. */
static bool section_covers_all(const nixl_section_t *s, const nixl_desc_t *descs, size_t count,
                               size_t *bad)
{
    const nixl_region_t *last = NULL;
    for (size_t i = 0; i < count; i++) {
        const nixl_desc_t *d = &descs[i];
        if (last && nixl_region_covers(last, d->addr, d->len, d->dev_id))
            continue;
        last = nixl_section_lookup(s, d->addr, d->len, d->dev_id);
        if (!last) {
            *bad = i;
            return false;
        }
    }
    return true;
}

nixl_status_t nixl_agent_check_remote_md(nixl_agent_t *agent, const char *name, nixl_mem_t type,
                                         const nixl_desc_t *descs, size_t count)
{
    if (!agent || !name || (count && !descs) || (unsigned)type >= NIXL_MEM_COUNT)
        return nixl_err(NIXL_ERR_INVALID_PARAM, "check_remote_md: bad arguments");
    agent_rdlock(agent);
    nixl_status_t st = NIXL_ERR_NOT_FOUND;
    bool self = !strcmp(name, agent->name);
    nixl_peer_t *p = peer_target(agent, name);
    if (!p) {
        nixl_err_set("check_remote_md: no metadata of '%s' is loaded", name);
    } else if (!count) {
        st = NIXL_SUCCESS;
    } else {
        size_t bad = 0;
        for (unsigned e = 0; e < agent->num_engines && st != NIXL_SUCCESS; e++)
            if ((self ? (agent->engines[e]->info->caps & NIXL_BE_CAP_LOCAL) != 0
                      : p->conn[e] == PEER_CONN_LOADED) &&
                section_covers_all(&p->sections[e][type], descs, count, &bad))
                st = NIXL_SUCCESS;
        if (st != NIXL_SUCCESS)
            nixl_err_set("check_remote_md: descriptor %zu is not inside a known region of '%s'",
                         bad, name);
    }
    agent_unlock(agent);
    if (!p) {
        /* A failed fetch says more than "not loaded". */
        nixl_status_t fst = md_fetch_failure(agent, name);
        if (fst != NIXL_SUCCESS)
            st = fst;
    }
    return st;
}

nixl_status_t nixl_agent_make_connection(nixl_agent_t *agent, const char *name,
                                         const nixl_opt_args_t *opt)
{
    if (!agent || !name)
        return nixl_err(NIXL_ERR_INVALID_PARAM, "make_connection: agent and name are required");
    /* A control call that changes no table: the engines connect with the tables released,
     * so transfers go on meanwhile, and ctl_lock keeps the peer from going away. */
    agent_wrlock(agent);
    agent_tables_release(agent);
    uint32_t mask;
    bool hinted;
    nixl_status_t st = engines_from_opt(agent, opt, &mask, &hinted);
    if (st != NIXL_SUCCESS)
        goto out;
    nixl_peer_t *p = peer_find(agent, name);
    bool any_conn = false;
    for (unsigned e = 0; p && e < agent->num_engines; e++)
        any_conn = any_conn || p->conn[e] == PEER_CONN_LOADED;
    if (!p || !any_conn) {
        st = nixl_err(NIXL_ERR_NOT_FOUND, "make_connection: no connection info of '%s' is loaded",
                      name);
        goto out;
    }
    unsigned tried = 0;
    for (unsigned e = 0; e < agent->num_engines; e++) {
        if (!(mask & (1u << e)) || p->conn[e] != PEER_CONN_LOADED)
            continue;
        tried++;
        nixl_backend_t *b = agent->engines[e];
        nixl_err_arm();
        st = b->ops->connect(b->eng, name);
        if (st != NIXL_SUCCESS) {
            nixl_err_prefix("make_connection: %s to '%s'", b->name, name);
            goto out;
        }
        nixl_err_settle(st);
    }
    if (!tried)
        st = nixl_err(NIXL_ERR_BACKEND, "make_connection: none of the given backends has "
                      "connection info of '%s'", name);
out:
    agent_tables_take(agent);
    agent_wrunlock(agent);
    return st;
}
