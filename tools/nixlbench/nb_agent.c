/*
 * nb_agent.c - one side of the benchmark: its agent (named "initiator" or "target" as in the
 * reference, so that notifications name their sender), its backend, and the exchange of
 * metadata with the peer over the runtime connection. Its buffer is in nb_buf.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nb.h"

#define MD_HEAD 32 /* the metadata message's head: base, length, memory type, device */

#define NB_UCX_EXTRA_MAX 8

/* NIXLBENCH_UCX_PARAMS="key=value,key=value" adds UCX backend parameters the reference's flags
 * cannot set (ours: ucx_error_handling_mode=none is what UCX 1.13's shared-memory transports
 * need, for bench/ucx_perftest.py). Entries without '=' are ignored. */
static int ucx_extra_params(nixl_param_t *p, char *buf, size_t cap)
{
    const char *e = getenv("NIXLBENCH_UCX_PARAMS");
    int n = 0;
    if (!e || !*e)
        return 0;
    snprintf(buf, cap, "%s", e);
    for (char *save = NULL, *kv = strtok_r(buf, ",", &save); kv && n < NB_UCX_EXTRA_MAX;
         kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq || eq == kv)
            continue;
        *eq = '\0';
        p[n++] = (nixl_param_t){kv, eq + 1};
    }
    return n;
}

/* UCX takes the reference's options: progress threads, one worker per thread plus one, and the
 * device list (a comma list gives each rank its own entry). */
static int ucx_params(const nb_cfg_t *cfg, int rank, nixl_param_t *p, char bufs[4][256])
{
    int n = 0;
    snprintf(bufs[0], 256, "%llu", (unsigned long long)cfg->progress_threads);
    p[n++] = (nixl_param_t){"num_threads", bufs[0]};
    snprintf(bufs[1], 256, "%llu", (unsigned long long)cfg->num_threads + 1);
    p[n++] = (nixl_param_t){"num_workers", bufs[1]};
    if (strcmp(cfg->device_list, "all")) {
        const char *d = cfg->device_list;
        size_t entries = 1;
        for (const char *c = d; *c; c++)
            entries += *c == ',';
        if (entries > 1) {
            for (int r = 0; r < rank && strchr(d, ','); r++)
                d = strchr(d, ',') + 1;
            snprintf(bufs[2], 256, "%.*s", (int)strcspn(d, ","), d);
        } else {
            snprintf(bufs[2], 256, "%s", d);
        }
        p[n++] = (nixl_param_t){"device_list", bufs[2]};
    }
    return n + ucx_extra_params(p + n, bufs[3], sizeof(bufs[3]));
}

static nixl_status_t try_backend(nb_side_t *s, const nb_cfg_t *cfg, const char *backend,
                                 int rank)
{
    nixl_param_t params[3 + NB_UCX_EXTRA_MAX];
    char bufs[4][256];
    int n = strcmp(backend, "UCX") ? 0 : ucx_params(cfg, rank, params, bufs);
    nixl_backend_t *be;
    nixl_status_t st = nixl_agent_create_backend(s->agent, backend, params, (size_t)n, &be);
    if (st == NIXL_SUCCESS)
        s->backend = nixl_backend_name(be);
    return st;
}

int nb_side_open(nb_side_t *s, const nb_cfg_t *cfg, const char *name, const char *backend,
                 int rank)
{
    memset(s, 0, sizeof(*s));
    nixl_agent_config_t ac;
    nixl_agent_config_init(&ac);
    ac.use_prog_thread = cfg->enable_pt;
    ac.sync_mode = cfg->num_threads > 1 ? NIXL_THREAD_SYNC_RW : NIXL_THREAD_SYNC_DEFAULT;
    nixl_status_t st = nixl_agent_create(name, &ac, &s->agent);
    if (st != NIXL_SUCCESS)
        return nb_fail("cannot create agent '%s': %s", name, nixl_last_error());
    if (!backend && cfg->local) {
        /* No --backend, both processes on this host: SHM is the best backend here. */
        printf("Backend not given: using SHM (both processes are on this host)\n");
        backend = "SHM";
    } else if (!backend) {
        /* Across hosts: the network backend if this host has it, else same-host SHM. */
        if (try_backend(s, cfg, "UCX", rank) == NIXL_SUCCESS) {
            printf("Backend not given: using UCX\n");
            return 0;
        }
        printf("Backend not given: UCX is not available here (%s); using SHM\n",
               nixl_last_error());
        backend = "SHM";
    }
    st = try_backend(s, cfg, backend, rank);
    if (st == NIXL_SUCCESS)
        return 0;
    if (st == NIXL_ERR_NOT_FOUND)
        return nb_fail("backend %s is not available in this build: %s", backend,
                       nixl_last_error());
    return nb_fail("cannot create backend %s: %s: %s", backend, nixl_status_str(st),
                   nixl_last_error());
}

int nb_side_send_md(nb_side_t *s, nb_rt_t *rt)
{
    void *blob;
    size_t len;
    if (nixl_agent_get_local_md(s->agent, &blob, &len) != NIXL_SUCCESS)
        return nb_fail("cannot get the agent's metadata: %s", nixl_last_error());
    uint8_t *msg = malloc(MD_HEAD + len);
    if (!msg) {
        nixl_free(blob);
        return nb_fail("out of memory");
    }
    uint64_t head[4] = {(uintptr_t)s->buf, s->len, (uint64_t)s->mem, s->dev};
    memcpy(msg, head, MD_HEAD);
    memcpy(msg + MD_HEAD, blob, len);
    nixl_free(blob);
    int rc = nb_rt_send(rt, NB_MSG_MD, msg, MD_HEAD + len);
    free(msg);
    return rc;
}

int nb_side_recv_md(nb_side_t *s, nb_rt_t *rt)
{
    void *msg;
    size_t len;
    if (nb_rt_recv(rt, NB_MSG_MD, &msg, &len, NB_REPLY_TIMEOUT_MS))
        return NB_EXIT_FAIL;
    uint64_t head[4];
    if (len < MD_HEAD) {
        free(msg);
        return nb_fail("protocol error: short metadata message");
    }
    memcpy(head, msg, MD_HEAD);
    s->remote_base = (uintptr_t)head[0];
    s->remote_len = head[1];
    s->remote_mem = (nixl_mem_t)head[2];
    s->remote_dev = head[3];
    char *name = NULL;
    nixl_status_t st =
        nixl_agent_load_remote_md(s->agent, (uint8_t *)msg + MD_HEAD, len - MD_HEAD, &name);
    free(msg);
    if (st != NIXL_SUCCESS)
        return nb_fail("cannot load the peer's metadata: %s: %s", nixl_status_str(st),
                       nixl_last_error());
    const char *want = strcmp(nixl_agent_name(s->agent), NB_INITIATOR) ? NB_INITIATOR
                                                                       : NB_TARGET;
    int rc = strcmp(name, want) ? nb_fail("the peer is agent '%s', not '%s'", name, want) : 0;
    nixl_free(name);
    return rc;
}

void nb_side_close(nb_side_t *s)
{
    nixl_agent_destroy(s->agent); /* deregisters what is left */
    nb_side_free_buf(s);
    memset(s, 0, sizeof(*s));
}
