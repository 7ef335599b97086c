/* mem.c - memory registration, deregistration and storage queries. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent_impl.h"
#include "error.h"
#include "gpu.h"
#include "log.h"

static nixl_status_t check_descs(nixl_mem_t type, const nixl_reg_desc_t *descs, size_t count,
                                 const char *what)
{
    if ((unsigned)type >= NIXL_MEM_COUNT)
        return nixl_err(NIXL_ERR_INVALID_PARAM, "%s: memory type %d is not valid", what, (int)type);
    if (count && !descs)
        return nixl_err(NIXL_ERR_INVALID_PARAM, "%s: descriptor array is NULL with count %zu",
                        what, count);
    for (size_t i = 0; i < count; i++)
        if (descs[i].meta_len && !descs[i].meta)
            return nixl_err(NIXL_ERR_INVALID_PARAM,
                            "%s: descriptor %zu has meta_len %zu and no meta", what, i,
                            descs[i].meta_len);
    return NIXL_SUCCESS;
}

/* Register the list with one engine: all of it or nothing. Called with the tables released
 * (pinning large regions can take long): the regions are published at the end, under them. */
/* The bytes a registration list covers (telemetry). */
static uint64_t descs_bytes(const nixl_reg_desc_t *descs, size_t count)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < count; i++)
        sum += descs[i].len;
    return sum;
}

static nixl_status_t register_one(nixl_agent_t *a, nixl_backend_t *b, nixl_mem_t type,
                                  const nixl_reg_desc_t *descs, size_t count)
{
    const nixl_be_ops_t *ops = b->ops;
    bool local = b->info->caps & NIXL_BE_CAP_LOCAL, remote = b->info->caps & NIXL_BE_CAP_REMOTE;
    nixl_be_md_t **mds = calloc(count * 2, sizeof(*mds));
    nixl_region_t *regs = malloc(count * sizeof(*regs));
    nixl_status_t st = NIXL_SUCCESS;
    if (!mds || !regs) {
        st = nixl_err_oom("register_mem: %zu descriptors", count);
        goto out_free;
    }
    nixl_be_md_t **lb = mds + count;
    nixl_err_arm();
    st = ops->register_mem(b->eng, type, descs, count, mds);
    if (st != NIXL_SUCCESS) {
        if (nixl_err_unset())
            nixl_err_set("%s refused the registration", b->name);
        goto out_free;
    }
    if (local) {
        nixl_be_mds_t view = {.base = mds, .stride = sizeof(*mds), .count = count};
        nixl_err_arm();
        st = ops->load_local_md(b->eng, &view, lb);
        if (st != NIXL_SUCCESS) {
            if (nixl_err_unset())
                nixl_err_set("%s could not make loopback metadata for the regions", b->name);
            goto err_dereg;
        }
    }
    for (size_t i = 0; i < count; i++)
        regs[i] = (nixl_region_t){
            .addr = descs[i].addr,
            .len = nixl_region_len(type, descs[i].len),
            .dev_id = descs[i].dev_id,
            .md = mds[i],
            .aux = local ? lb[i] : NULL,
        };
    if (remote) {
        /* One call for the whole list (blobs stay owned by the engine's mds). */
        nixl_be_blob_t *blobs = malloc(count * sizeof(*blobs));
        nixl_be_mds_t view = {.base = mds, .stride = sizeof(*mds), .count = count};
        nixl_err_arm();
        st = blobs ? ops->get_public_blobs(b->eng, &view, blobs)
                   : nixl_err_oom("public blobs of %zu regions", count);
        if (st != NIXL_SUCCESS) {
            if (nixl_err_unset())
                nixl_err_set("%s gave no public blobs for the regions", b->name);
            free(blobs);
            goto err_unload;
        }
        for (size_t i = 0; i < count; i++) {
            regs[i].blob = blobs[i].data;
            regs[i].blob_len = blobs[i].len;
        }
        free(blobs);
    }
    agent_tables_take(a);
    st = nixl_section_insert(&a->local[b->index][type], regs, count);
    if (st != NIXL_SUCCESS) {
        agent_tables_release(a);
        nixl_err_oom("register_mem: %zu regions of %s", count, b->name);
        goto err_unload;
    }
    if (local) {
        /* the loopback view: same ranges, the loopback metadata */
        for (size_t i = 0; i < count; i++) {
            regs[i].md = lb[i];
            regs[i].aux = NULL;
        }
        st = nixl_section_insert(&a->self->sections[b->index][type], regs, count);
        if (st != NIXL_SUCCESS) {
            nixl_section_t *s = &a->local[b->index][type];
            for (size_t i = 0; i < count; i++) {
                ptrdiff_t k = nixl_section_find_exact(s, regs[i].addr, regs[i].len,
                                                      regs[i].dev_id, mds[i]);
                size_t idx = (size_t)k;
                if (k >= 0)
                    nixl_section_remove(s, &idx, 1);
            }
            agent_tables_release(a);
            nixl_err_oom("register_mem: %zu loopback regions of %s", count, b->name);
            goto err_unload;
        }
    }
    agent_tables_release(a);
    free(mds);
    free(regs);
    return NIXL_SUCCESS;

err_unload:
    if (local)
        ops->unload_md(b->eng, &(nixl_be_mds_t){.base = lb, .stride = sizeof(*lb), .count = count});
err_dereg:
    ops->deregister_mem(b->eng,
                        &(nixl_be_mds_t){.base = mds, .stride = sizeof(*mds), .count = count});
out_free:
    free(mds);
    free(regs);
    return st == NIXL_SUCCESS ? NIXL_ERR_UNKNOWN : st;
}

nixl_status_t nixl_agent_register_mem(nixl_agent_t *agent, nixl_mem_t type,
                                      const nixl_reg_desc_t *descs, size_t count,
                                      const nixl_opt_args_t *opt)
{
    if (!agent)
        return nixl_err(NIXL_ERR_INVALID_PARAM, "register_mem: agent is NULL");
    nixl_status_t st = check_descs(type, descs, count, "register_mem");
    if (st != NIXL_SUCCESS)
        return st;

    agent_wrlock(agent);
    uint32_t mask;
    bool hinted;
    st = engines_from_opt(agent, opt, &mask, &hinted);
    if (st != NIXL_SUCCESS)
        goto out;
    if (hinted)
        mask = engines_with_implicit(agent, mask); /* SHM beside a hinted UCX registers too */
    for (unsigned e = 0; e < agent->num_engines; e++) {
        const nixl_backend_t *b = agent->engines[e];
        if ((!hinted || b->implicit) && !(b->info->mems & NIXL_MEM_BIT(type)))
            mask &= ~(1u << e);
    }
    if (!mask) {
        st = nixl_err(NIXL_ERR_NOT_FOUND, "register_mem: no backend of agent '%s' supports %s",
                      agent->name, nixl_mem_str(type));
        goto out;
    }
    if (count == 0)
        goto out;
    /* VRAM must be GPU memory of the GPU its devId names, whatever the backend: a wrong devId
     * or a host pointer would otherwise surface as a fault in a later copy. */
    if (type == NIXL_VRAM_SEG && (st = nixl_gpu_check_vram(descs, count)) != NIXL_SUCCESS)
        goto out;

    /* A backend that refuses the list while another takes it is no failure of the call. */
    nixl_err_saved_t saved;
    nixl_err_save(&saved);
    unsigned done = 0;
    char first_reason[512] = "";
    agent_tables_release(agent);
    for (unsigned e = 0; e < agent->num_engines; e++) {
        if (!(mask & (1u << e)))
            continue;
        nixl_backend_t *b = agent->engines[e];
        nixl_status_t est = register_one(agent, b, type, descs, count);
        if (est == NIXL_SUCCESS) {
            done++;
            continue;
        }
        if (!first_reason[0]) {
            /* Name the backend, unless its reason already starts with its name. */
            const char *why = nixl_last_error();
            size_t n = strlen(b->name);
            bool named = !strncmp(why, b->name, n) && why[n] == ':';
            snprintf(first_reason, sizeof(first_reason), "%s%s%s (%s)", named ? "" : b->name,
                     named ? "" : ": ", why, nixl_status_str(est));
        }
        NIXL_DEBUG("register_mem: %s refused the list: %s", b->name, nixl_last_error());
    }
    agent_tables_take(agent);
    if (!done)
        st = nixl_err(NIXL_ERR_BACKEND, "register_mem: no backend registered the %zu "
                      "descriptor(s); %s", count, first_reason);
    else
        nixl_err_restore(&saved);
    if (done)
        nixl_telem_record(agent->telem, NIXL_TELEM_MEMORY_REGISTERED, descs_bytes(descs, count));
out:
    agent_wrunlock(agent);
    return st;
}

/* Deregister the list from one engine: all of it or nothing (tables locked). */
static nixl_status_t deregister_one(nixl_agent_t *a, nixl_backend_t *b, nixl_mem_t type,
                                    const nixl_reg_desc_t *descs, size_t count)
{
    nixl_section_t *s = &a->local[b->index][type];
    nixl_section_t *lbs = &a->self->sections[b->index][type];
    size_t *idx = malloc(count * 2 * sizeof(*idx));
    bool *taken = calloc(s->count ? s->count : 1, sizeof(*taken));
    nixl_be_md_t **mds = malloc(count * 2 * sizeof(*mds));
    nixl_status_t st = NIXL_SUCCESS;
    if (!idx || !taken || !mds) {
        st = nixl_err_oom("deregister_mem: %zu descriptors", count);
        goto out;
    }
    for (size_t i = 0; i < count; i++) {
        size_t len = nixl_region_len(type, descs[i].len);
        ptrdiff_t k = nixl_section_find_exact(s, descs[i].addr, len, descs[i].dev_id, NULL);
        /* the same range listed twice takes two registrations of it */
        while (k >= 0 && (size_t)k < s->count && taken[k] &&
               s->regions[k].addr == descs[i].addr && s->regions[k].len == len &&
               s->regions[k].dev_id == descs[i].dev_id)
            k++;
        if (k < 0 || (size_t)k >= s->count || taken[k] || s->regions[k].addr != descs[i].addr ||
            s->regions[k].len != len || s->regions[k].dev_id != descs[i].dev_id) {
            st = nixl_err(NIXL_ERR_NOT_FOUND,
                          "deregister_mem: descriptor %zu (addr 0x%lx, len %zu, dev %lu) is not "
                          "registered with %s", i, (unsigned long)descs[i].addr, descs[i].len,
                          (unsigned long)descs[i].dev_id, b->name);
            goto out;
        }
        taken[k] = true;
    }
    size_t n = 0;
    for (size_t k = 0; k < s->count; k++)
        if (taken[k]) {
            idx[n] = k;
            mds[n] = s->regions[k].md;
            mds[count + n] = s->regions[k].aux;
            n++;
        }
    if (b->info->caps & NIXL_BE_CAP_LOCAL) {
        /* The loopback entries of these regions. A backend may use one loopback md for many
         * regions, so the same range listed twice must take two different entries. */
        size_t *lidx = idx + count;
        size_t m = 0;
        bool *ltaken = calloc(lbs->count ? lbs->count : 1, sizeof(*ltaken));
        if (!ltaken) {
            st = nixl_err_oom("deregister_mem: %zu loopback regions", lbs->count);
            goto out;
        }
        for (size_t i = 0; i < n; i++) {
            const nixl_region_t *r = &s->regions[idx[i]];
            ptrdiff_t k = nixl_section_find_exact(lbs, r->addr, r->len, r->dev_id, r->aux);
            while (k >= 0 && (size_t)k < lbs->count &&
                   (ltaken[k] || lbs->regions[k].md != r->aux)) {
                k++;
                if ((size_t)k < lbs->count && (lbs->regions[k].addr != r->addr ||
                                               lbs->regions[k].len != r->len ||
                                               lbs->regions[k].dev_id != r->dev_id))
                    k = -1;
            }
            if (k >= 0 && (size_t)k < lbs->count) {
                ltaken[k] = true;
                lidx[m++] = (size_t)k;
            }
        }
        free(ltaken);
        /* indices must be ascending for removal */
        for (size_t i = 1; i < m; i++)
            for (size_t j = i; j > 0 && lidx[j - 1] > lidx[j]; j--) {
                size_t t = lidx[j];
                lidx[j] = lidx[j - 1];
                lidx[j - 1] = t;
            }
        nixl_section_remove(lbs, lidx, m);
    }
    nixl_section_remove(s, idx, n);
    /* Unpublished: the engine lets go of them with the tables released. */
    agent_tables_release(a);
    if (b->info->caps & NIXL_BE_CAP_LOCAL)
        b->ops->unload_md(b->eng, &(nixl_be_mds_t){.base = mds + count, .stride = sizeof(*mds),
                                                   .count = n});
    b->ops->deregister_mem(b->eng,
                           &(nixl_be_mds_t){.base = mds, .stride = sizeof(*mds), .count = n});
    agent_tables_take(a);
out:
    free(idx);
    free(taken);
    free(mds);
    return st;
}

nixl_status_t nixl_agent_deregister_mem(nixl_agent_t *agent, nixl_mem_t type,
                                        const nixl_reg_desc_t *descs, size_t count,
                                        const nixl_opt_args_t *opt)
{
    if (!agent)
        return nixl_err(NIXL_ERR_INVALID_PARAM, "deregister_mem: agent is NULL");
    nixl_status_t st = check_descs(type, descs, count, "deregister_mem");
    if (st != NIXL_SUCCESS)
        return st;
    agent_wrlock(agent);
    uint32_t mask;
    bool hinted;
    st = engines_from_opt(agent, opt, &mask, &hinted);
    if (st != NIXL_SUCCESS)
        goto out;
    if (hinted)
        mask = engines_with_implicit(agent, mask);
    for (unsigned e = 0; e < agent->num_engines; e++)
        if ((!hinted || agent->engines[e]->implicit) && !agent->local[e][type].count)
            mask &= ~(1u << e);
    if (!mask) {
        st = nixl_err(NIXL_ERR_NOT_FOUND, "deregister_mem: agent '%s' has no %s registrations",
                      agent->name, nixl_mem_str(type));
        goto out;
    }
    nixl_status_t last = NIXL_SUCCESS;
    nixl_err_saved_t saved; /* deregister_mem and unload_md return nothing to check */
    nixl_err_save(&saved);
    for (unsigned e = 0; e < agent->num_engines && count; e++) {
        if (!(mask & (1u << e)))
            continue;
        nixl_backend_t *b = agent->engines[e];
        nixl_status_t est = deregister_one(agent, b, type, descs, count);
        if (est != NIXL_SUCCESS && b->implicit && est == NIXL_ERR_NOT_FOUND) {
            /* SHM beside UCX may have refused these regions when they were registered */
            NIXL_DEBUG("deregister_mem: %s: %s", b->name, nixl_last_error());
            continue;
        }
        if (est != NIXL_SUCCESS)
            last = est;
    }
    st = last;
    if (st == NIXL_SUCCESS) {
        nixl_err_restore(&saved);
        if (count)
            nixl_telem_record(agent->telem, NIXL_TELEM_MEMORY_DEREGISTERED,
                              descs_bytes(descs, count));
    }
out:
    agent_wrunlock(agent);
    return st;
}

/* Pack the plugin's per-descriptor answers into one user-freeable allocation. */
static nixl_query_resp_t *query_pack(nixl_query_resp_t *raw, size_t count)
{
    size_t bytes = count * sizeof(nixl_query_resp_t);
    for (size_t i = 0; i < count; i++) {
        bytes += raw[i].params.count * sizeof(nixl_param_t);
        for (size_t k = 0; k < raw[i].params.count; k++)
            bytes += strlen(raw[i].params.items[k].key) + strlen(raw[i].params.items[k].value) + 2;
    }
    nixl_query_resp_t *out = malloc(bytes ? bytes : 1);
    if (!out)
        return NULL;
    nixl_param_t *items = (nixl_param_t *)(out + count);
    size_t total_items = 0;
    for (size_t i = 0; i < count; i++)
        total_items += raw[i].params.count;
    char *p = (char *)(items + total_items);
    for (size_t i = 0; i < count; i++) {
        out[i].has_value = raw[i].has_value;
        out[i].params.count = raw[i].params.count;
        out[i].params.items = items;
        for (size_t k = 0; k < raw[i].params.count; k++) {
            size_t kl = strlen(raw[i].params.items[k].key) + 1;
            size_t vl = strlen(raw[i].params.items[k].value) + 1;
            memcpy(p, raw[i].params.items[k].key, kl);
            items[k].key = p;
            p += kl;
            memcpy(p, raw[i].params.items[k].value, vl);
            items[k].value = p;
            p += vl;
        }
        items += raw[i].params.count;
    }
    return out;
}

static void query_raw_free(nixl_query_resp_t *raw, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        for (size_t k = 0; k < raw[i].params.count; k++) {
            free((void *)raw[i].params.items[k].key);
            free((void *)raw[i].params.items[k].value);
        }
        free(raw[i].params.items);
    }
    free(raw);
}

nixl_status_t nixl_agent_query_mem(nixl_agent_t *agent, nixl_mem_t type,
                                   const nixl_reg_desc_t *descs, size_t count,
                                   const nixl_opt_args_t *opt, nixl_query_resp_t **out_resp)
{
    if (!agent || !out_resp)
        return nixl_err(NIXL_ERR_INVALID_PARAM, "query_mem: agent and out_resp are required");
    nixl_status_t st = check_descs(type, descs, count, "query_mem");
    if (st != NIXL_SUCCESS)
        return st;
    if (!OPT_HAS(opt, num_backends) || opt->num_backends != 1 || !opt->backends ||
        !opt->backends[0] || opt->backends[0]->agent != agent)
        return nixl_err(NIXL_ERR_INVALID_PARAM,
                        "query_mem: opt->backends must name exactly one backend of this agent");
    nixl_backend_t *b = opt->backends[0];
    nixl_query_resp_t *raw = calloc(count ? count : 1, sizeof(*raw));
    if (!raw)
        return nixl_err_oom("query_mem: %zu descriptors", count);
    nixl_err_arm();
    st = b->ops->query_mem(b->eng, type, descs, count, raw);
    nixl_err_settle(st);
    if (st == NIXL_ERR_NOT_SUPPORTED && nixl_err_unset())
        nixl_err_set("query_mem: backend %s cannot answer queries", b->name);
    else if (st != NIXL_SUCCESS && nixl_err_unset())
        nixl_err_set("query_mem: %s failed", b->name);
    if (st == NIXL_SUCCESS) {
        nixl_query_resp_t *packed = query_pack(raw, count);
        if (packed)
            *out_resp = packed;
        else
            st = nixl_err_oom("query_mem: %zu answers", count);
    }
    query_raw_free(raw, count);
    return st;
}
