/*
 * lf_peer.c - peers (their addresses in each rail's address vector) and memory: local
 * registrations with their region blobs, peers' regions loaded from theirs. Everything that
 * comes from a peer is parsed by lf_wire.c and checked against this engine (same provider,
 * same address format and size, same addressing mode, keys that fit) before libfabric sees it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "lf_priv.h"

/* ---- connections ---- */

lf_conn_t *lf_conn_get(nixl_be_engine_t *eng, const char *name)
{
    pthread_mutex_lock(&eng->conns_lock);
    lf_conn_t *c = nixl_hmap_get(&eng->conns, name, strlen(name));
    if (c)
        atomic_fetch_add(&c->refs, 1);
    pthread_mutex_unlock(&eng->conns_lock);
    return c;
}

void lf_conn_unref(lf_conn_t *c)
{
    if (!c || atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    nixl_be_engine_t *eng = c->eng;
    for (unsigned r = 0; r < c->nrails; r++) {
        lf_rail_t *rail = &eng->rails[r];
        pthread_mutex_lock(&rail->lock);
        fi_av_remove(rail->av, &c->addr[r], 1, 0);
        pthread_mutex_unlock(&rail->lock);
    }
    free(c->name);
    free(c);
}

void lf_conn_fail(lf_conn_t *c, const char *fmt, ...)
{
    if (!c || atomic_flag_test_and_set(&c->why_set))
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->why, sizeof(c->why), fmt, ap);
    va_end(ap);
    atomic_store(&c->failed, true);
    lf_stage_wake(c->eng); /* a staged request waiting for a round to this peer gives up */
    NIXL_BE_LOG(c->eng->host, NIXL_LOG_INFO, "agent '%s' failed: %s", c->name, c->why);
}

static void conn_forget(lf_conn_t *c)
{
    atomic_store(&c->forgotten, true);
    lf_conn_unref(c);
}

void lf_conns_free_all(nixl_be_engine_t *eng)
{
    size_t it = 0;
    const void *k;
    size_t kl;
    void *v;
    while (nixl_hmap_next(&eng->conns, &it, &k, &kl, &v))
        conn_forget(v);
    nixl_hmap_free(&eng->conns);
}

/* The family of a socket address must be the one its libfabric format names. */
static bool family_ok(unsigned fmt, const uint8_t *a, size_t len)
{
    if (len < sizeof(sa_family_t))
        return false;
    sa_family_t fam;
    memcpy(&fam, a, sizeof(fam));
    switch (fmt) {
    case FI_SOCKADDR_IN:
        return fam == AF_INET;
    case FI_SOCKADDR_IN6:
        return fam == AF_INET6;
    case FI_SOCKADDR:
        return fam == AF_INET || fam == AF_INET6;
    default:
        return true; /* provider formats: only the size can be checked */
    }
}

/* Whether a peer's address can be handed to fi_av_insert. A string address (FI_ADDR_STR:
 * shm's "fi_shm://<pid>:<n>:<n>", whose length follows the process id) must be printable text,
 * with at most its terminating NUL, shorter than the buffer it is copied into (zero-filled:
 * libfabric reads up to a NUL); any other format must have our size, and a socket address the
 * family its format names. */
static bool addr_ok(unsigned fmt, const uint8_t *a, size_t len, size_t own_len)
{
    if (fmt == FI_ADDR_STR) {
        size_t text = len && a[len - 1] == '\0' ? len - 1 : len;
        if (text == 0 || len >= LF_ADDR_MAX)
            return false;
        for (size_t i = 0; i < text; i++)
            if (a[i] < 0x20 || a[i] > 0x7e)
                return false;
        return true;
    }
    return len == own_len && family_ok(fmt, a, len);
}

nixl_status_t lf_load_remote_conn(nixl_be_engine_t *eng, const char *agent, const void *blob,
                                  size_t len)
{
    lf_conn_info_t ci;
    char why[200];
    if (!lf_conn_parse(blob, len, &ci, why, sizeof(why)))
        return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                           "connection info of agent '%s' refused: %s", agent, why);
    if (strcmp(ci.prov, eng->prov) != 0)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_NOT_SUPPORTED,
                           "agent '%s' uses provider %s, this engine %s: they cannot talk",
                           agent, ci.prov, eng->prov);
    if (ci.addr_format != eng->addr_format)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_NOT_SUPPORTED,
                           "agent '%s' has addresses of format %u, this engine %u", agent,
                           ci.addr_format, eng->addr_format);
    unsigned n = ci.nrails < eng->nrails ? ci.nrails : eng->nrails;
    for (unsigned r = 0; r < n; r++)
        if (!addr_ok(ci.addr_format, ci.addr[r], ci.addr_len[r], eng->rails[r].addr_len))
            return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                               "connection info of agent '%s' refused: rail %u's address (%zu "
                               "bytes) is not a %s address (%s)", agent, r, ci.addr_len[r],
                               eng->prov,
                               ci.addr_format == FI_ADDR_STR
                                   ? "printable text and its NUL"
                                   : "the size and family of this engine's own");
    if (strcmp(agent, eng->name) == 0)
        return NIXL_SUCCESS; /* loopback is a copy (lf_xfer.c): no address needed */

    lf_conn_t *c = calloc(1, sizeof(*c));
    if (!c || !(c->name = strdup(agent))) {
        free(c);
        return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory");
    }
    c->eng = eng;
    atomic_init(&c->refs, 1);
    atomic_flag_clear(&c->why_set);
    for (unsigned r = 0; r < n; r++) {
        uint8_t addr[LF_ADDR_MAX] = {0}; /* the provider reads its own size: ours */
        memcpy(addr, ci.addr[r], ci.addr_len[r]);
        lf_rail_t *rail = &eng->rails[r];
        pthread_mutex_lock(&rail->lock);
        int ret = fi_av_insert(rail->av, addr, 1, &c->addr[r], 0, NULL);
        pthread_mutex_unlock(&rail->lock);
        if (ret != 1) {
            c->nrails = r;
            lf_conn_unref(c);
            return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                               "agent '%s': rail %u's address was refused by the address "
                               "vector: %s", agent, r, ret < 0 ? fi_strerror(-ret) : "not added");
        }
        c->nrails = r + 1;
    }
    pthread_mutex_lock(&eng->conns_lock);
    lf_conn_t *old = nixl_hmap_remove(&eng->conns, agent, strlen(agent));
    bool ok = nixl_hmap_put(&eng->conns, c->name, strlen(c->name), c);
    pthread_mutex_unlock(&eng->conns_lock);
    if (old)
        conn_forget(old); /* the peer restarted, or sent its metadata again */
    if (!ok) {
        lf_conn_unref(c);
        return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory");
    }
    NIXL_BE_LOG(eng->host, NIXL_LOG_DEBUG, "agent '%s' loaded: %u rail(s) over %s", agent, n,
                eng->prov);
    return NIXL_SUCCESS;
}

nixl_status_t lf_disconnect(nixl_be_engine_t *eng, const char *agent)
{
    pthread_mutex_lock(&eng->conns_lock);
    lf_conn_t *c = nixl_hmap_remove(&eng->conns, agent, strlen(agent));
    pthread_mutex_unlock(&eng->conns_lock);
    if (c)
        conn_forget(c);
    return NIXL_SUCCESS;
}

/* ---- metadata ---- */

void lf_md_ref(nixl_be_md_t *md)
{
    atomic_fetch_add(&md->refs, 1);
}

void lf_md_unref(nixl_be_md_t *md)
{
    if (!md || atomic_fetch_sub(&md->refs, 1) != 1)
        return;
    nixl_be_engine_t *eng = md->eng;
    if (md->kind == LF_MD_LOCAL) {
        lf_lmd_t *l = (lf_lmd_t *)md;
        for (unsigned r = 0; r < eng->nrails; r++) {
            if (!l->mr[r])
                continue;
            pthread_mutex_lock(&eng->rails[r].lock);
            fi_close(&l->mr[r]->fid);
            pthread_mutex_unlock(&eng->rails[r].lock);
        }
    } else {
        lf_conn_unref(((lf_rmd_t *)md)->conn);
    }
    free(md);
}

static lf_lmd_t *lmd_new(nixl_be_engine_t *eng, uintptr_t addr, size_t len, int gpu)
{
    lf_lmd_t *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->hdr.kind = LF_MD_LOCAL;
    l->hdr.eng = eng;
    atomic_init(&l->hdr.refs, 1);
    l->base = addr;
    l->len = len;
    l->gpu = gpu;
    return l;
}

nixl_status_t lf_reg_host(nixl_be_engine_t *eng, uintptr_t addr, size_t len, const char *what,
                          lf_lmd_t **out)
{
    if (!len)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                           "%s: a region of 0 bytes cannot be registered", what);
    lf_lmd_t *l = lmd_new(eng, addr, len, -1);
    if (!l)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory");
    lf_region_info_t ri = {.nrails = eng->nrails, .virt_addr = eng->virt_addr,
                           .base = addr, .len = len};
    for (unsigned r = 0; r < eng->nrails; r++) {
        lf_rail_t *rail = &eng->rails[r];
        uint64_t want = eng->prov_key ? 0 : atomic_fetch_add(&eng->next_key, 1);
        pthread_mutex_lock(&rail->lock);
        int ret = fi_mr_reg(rail->domain, (void *)addr, len,
                            FI_READ | FI_WRITE | FI_REMOTE_READ | FI_REMOTE_WRITE, 0, want, 0,
                            &l->mr[r], NULL);
        const char *call = "fi_mr_reg";
        if (!ret && rail->mr_endpoint) {
            call = "binding the registration to the endpoint";
            ret = fi_mr_bind(l->mr[r], &rail->ep->fid, 0);
            if (!ret)
                ret = fi_mr_enable(l->mr[r]);
        }
        pthread_mutex_unlock(&rail->lock);
        if (ret) {
            lf_md_unref(&l->hdr);
            return NIXL_BE_ERR(eng->host, NIXL_ERR_BACKEND, "%s (0x%llx, %zu bytes), rail %u: %s: %s",
                               what, (unsigned long long)addr, len, r, call, fi_strerror(-ret));
        }
        l->desc[r] = fi_mr_desc(l->mr[r]);
        ri.key[r] = fi_mr_key(l->mr[r]);
        if (ri.key[r] == FI_KEY_NOTAVAIL) {
            lf_md_unref(&l->hdr);
            return NIXL_BE_ERR(eng->host, NIXL_ERR_NOT_SUPPORTED,
                               "provider %s has no key for a registration (raw keys are not "
                               "supported)", eng->prov);
        }
    }
    lf_region_write(&ri, l->blob);
    l->blob_len = LF_REGION_BLOB_LEN(eng->nrails);
    *out = l;
    return NIXL_SUCCESS;
}

/*
 * GPU memory: no provider here can reach it (no FI_HMEM on tcp or shm), so it gets no memory
 * region; transfers stage it through pinned host buffers (lf_stage.c). Its blob tells peers
 * that they cannot reach it.
 */
static nixl_status_t reg_gpu(nixl_be_engine_t *eng, const nixl_reg_desc_t *d, size_t i,
                             lf_lmd_t **out)
{
    const nixl_gpu_ops_t *g = nixl_host_gpu(eng->host);
    if (!g || g->device_count() == 0)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_NOT_SUPPORTED,
                           "VRAM descriptor %zu: %s; LIBFABRIC moves GPU memory through pinned "
                           "host buffers, which needs the driver and a GPU",
                           i, g ? "the CUDA driver sees no GPU" : "no CUDA driver in this process");
    if (!d->len)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                           "descriptor %zu: a region of 0 bytes cannot be registered", i);
    nixl_gpu_ptr_t p = {0};
    nixl_gpu_err_t err;
    nixl_status_t st = g->ptr_query(d->addr, d->len, &p, &err);
    if (st != NIXL_SUCCESS)
        return NIXL_BE_ERR(eng->host, st, "VRAM descriptor %zu (0x%llx, %zu bytes): %s", i,
                           (unsigned long long)d->addr, d->len, err.msg);
    if (p.kind != NIXL_GPU_MEM_DEVICE && p.kind != NIXL_GPU_MEM_MANAGED)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                           "VRAM descriptor %zu (0x%llx, %zu bytes) is host memory, not GPU "
                           "memory: register it as DRAM", i, (unsigned long long)d->addr, d->len);
    lf_lmd_t *l = lmd_new(eng, d->addr, d->len, p.device);
    if (!l)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory");
    lf_region_info_t ri = {.nrails = eng->nrails, .virt_addr = eng->virt_addr, .staged = true,
                           .base = d->addr, .len = d->len};
    lf_region_write(&ri, l->blob);
    l->blob_len = LF_REGION_BLOB_LEN(eng->nrails);
    *out = l;
    return NIXL_SUCCESS;
}

int lf_md_gpu(const nixl_be_md_t *md)
{
    return md->kind == LF_MD_LOCAL ? ((const lf_lmd_t *)md)->gpu : -1;
}

nixl_status_t lf_register_mem(nixl_be_engine_t *eng, nixl_mem_t type,
                              const nixl_reg_desc_t *descs, size_t count, nixl_be_md_t **out)
{
    if (type != NIXL_DRAM_SEG && type != NIXL_VRAM_SEG)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_NOT_SUPPORTED,
                           "only DRAM and VRAM can be registered (got type %d)", (int)type);
    for (size_t i = 0; i < count; i++) {
        lf_lmd_t *l;
        char what[48];
        snprintf(what, sizeof(what), "descriptor %zu", i);
        nixl_status_t st = type == NIXL_VRAM_SEG
                               ? reg_gpu(eng, &descs[i], i, &l)
                               : lf_reg_host(eng, descs[i].addr, descs[i].len, what, &l);
        if (st != NIXL_SUCCESS) {
            while (i--)
                lf_md_unref(out[i]);
            return st;
        }
        out[i] = &l->hdr;
    }
    return NIXL_SUCCESS;
}

void lf_deregister_mem(nixl_be_engine_t *eng, const nixl_be_mds_t *mds)
{
    (void)eng;
    for (size_t i = 0; i < mds->count; i++)
        lf_md_unref(nixl_be_md_at(mds, i));
}

nixl_status_t lf_get_public_blobs(nixl_be_engine_t *eng, const nixl_be_mds_t *mds,
                                  nixl_be_blob_t *out)
{
    (void)eng;
    for (size_t i = 0; i < mds->count; i++) {
        const lf_lmd_t *l = (const lf_lmd_t *)nixl_be_md_at(mds, i);
        out[i] = (nixl_be_blob_t){l->blob, l->blob_len};
    }
    return NIXL_SUCCESS;
}

nixl_status_t lf_load_remote_md(nixl_be_engine_t *eng, const char *agent, nixl_mem_t type,
                                const nixl_desc_t *descs, const nixl_be_blob_t *blobs,
                                size_t count, nixl_be_md_t **out)
{
    if (type != NIXL_DRAM_SEG && type != NIXL_VRAM_SEG)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_NOT_SUPPORTED,
                           "only DRAM and VRAM regions (got type %d)", (int)type);
    lf_conn_t *c = lf_conn_get(eng, agent);
    if (!c)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_NOT_FOUND,
                           "no connection info of agent '%s' is loaded", agent);
    nixl_status_t st = NIXL_SUCCESS;
    size_t i;
    for (i = 0; i < count && st == NIXL_SUCCESS; i++) {
        lf_region_info_t ri;
        char why[200];
        if (!lf_region_parse(blobs[i].data, blobs[i].len, &ri, why, sizeof(why))) {
            st = NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                             "region %zu of agent '%s' refused: %s", i, agent, why);
            break;
        }
        const char *bad = NULL;
        if (ri.nrails < c->nrails)
            bad = "it has fewer rails than the agent's connection info";
        else if (ri.virt_addr != eng->virt_addr)
            bad = "its addressing mode (virtual or offset) is not the provider's";
        else if (descs[i].addr < ri.base || descs[i].len > ri.len ||
                 descs[i].addr - ri.base > ri.len - descs[i].len)
            bad = "the region descriptor lies outside the registered range of its blob";
        for (unsigned r = 0; !bad && r < c->nrails; r++)
            if (eng->key_size < 8 && ri.key[r] >> (8 * eng->key_size))
                bad = "a key is wider than the provider's keys";
        if (bad) {
            st = NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                             "region %zu of agent '%s' refused: %s", i, agent, bad);
            break;
        }
        lf_rmd_t *m = calloc(1, sizeof(*m));
        if (!m) {
            st = NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory");
            break;
        }
        m->hdr.kind = LF_MD_REMOTE;
        m->hdr.eng = eng;
        atomic_init(&m->hdr.refs, 1);
        atomic_fetch_add(&c->refs, 1);
        m->conn = c;
        m->ri = ri;
        out[i] = &m->hdr;
    }
    if (st != NIXL_SUCCESS)
        while (i--)
            lf_md_unref(out[i]);
    lf_conn_unref(c);
    return st;
}

nixl_status_t lf_load_local_md(nixl_be_engine_t *eng, const nixl_be_mds_t *mds,
                               nixl_be_md_t **out)
{
    (void)eng;
    for (size_t i = 0; i < mds->count; i++) {
        out[i] = nixl_be_md_at(mds, i);
        lf_md_ref(out[i]);
    }
    return NIXL_SUCCESS;
}

void lf_unload_md(nixl_be_engine_t *eng, const nixl_be_mds_t *mds)
{
    (void)eng;
    for (size_t i = 0; i < mds->count; i++)
        lf_md_unref(nixl_be_md_at(mds, i));
}
