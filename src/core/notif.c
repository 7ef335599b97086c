/* notif.c - notification queues (filled by plugins), get_notifs and gen_notif. */
#include <stdlib.h>
#include <string.h>

#include "agent_impl.h"
#include "error.h"
#include "log.h"

void notif_host_push(nixl_backend_t *b, const char *agent, size_t agent_len, const void *msg,
                     size_t len)
{
    if (agent_len > NIXL_MAX_NAME || memchr(agent, '\0', agent_len)) {
        NIXL_WARN("%s: dropped a notification whose sender name is not valid", b->name);
        return;
    }
    nixl_notif_entry_t *n = malloc(sizeof(*n) + agent_len + 1 + len);
    if (!n) {
        NIXL_ERROR("%s: out of memory, a notification from '%.*s' is lost", b->name,
                   (int)agent_len, agent);
        return;
    }
    n->next = NULL;
    n->name_len = agent_len;
    n->msg_len = len;
    memcpy(n->data, agent, agent_len);
    n->data[agent_len] = '\0';
    if (len)
        memcpy(n->data + agent_len + 1, msg, len);
    pthread_mutex_lock(&b->notif_lock);
    *b->notif_tail = n;
    b->notif_tail = &n->next;
    pthread_mutex_unlock(&b->notif_lock);
}

void notif_queue_free(nixl_backend_t *b)
{
    while (b->notif_head) {
        nixl_notif_entry_t *n = b->notif_head->next;
        free(b->notif_head);
        b->notif_head = n;
    }
    b->notif_tail = &b->notif_head;
}

static uint32_t notif_engines(nixl_agent_t *a, const nixl_opt_args_t *opt, nixl_status_t *st)
{
    uint32_t mask;
    bool hinted;
    *st = engines_from_opt(a, opt, &mask, &hinted);
    if (*st != NIXL_SUCCESS)
        return 0;
    for (unsigned e = 0; e < a->num_engines; e++)
        if (!(a->engines[e]->info->caps & NIXL_BE_CAP_NOTIF))
            mask &= ~(1u << e);
    if (!mask)
        *st = nixl_err(NIXL_ERR_BACKEND, "agent '%s' has no backend with notifications%s",
                       a->name, hinted ? " among the given backends" : "");
    return mask;
}

nixl_status_t nixl_agent_get_notifs(nixl_agent_t *agent, const nixl_opt_args_t *opt,
                                    nixl_notif_list_t **out)
{
    if (!agent || !out)
        return nixl_err(NIXL_ERR_INVALID_PARAM, "get_notifs: agent and out are required");
    /* Shared lock: polling for notifications must not stall the data path. */
    agent_rdlock(agent);
    nixl_status_t st;
    uint32_t mask = notif_engines(agent, opt, &st);
    if (!mask) {
        agent_unlock(agent);
        return st;
    }
    nixl_notif_entry_t *heads[NIXL_MAX_ENGINES] = {0};
    size_t count = 0, bytes = 0;
    nixl_status_t last = NIXL_SUCCESS;
    for (unsigned e = 0; e < agent->num_engines; e++) {
        if (!(mask & (1u << e)))
            continue;
        nixl_backend_t *b = agent->engines[e];
        nixl_err_arm();
        nixl_status_t pst = b->ops->progress(b->eng);
        nixl_err_settle(pst);
        if (pst != NIXL_SUCCESS) {
            NIXL_WARN("get_notifs: %s: %s", b->name, nixl_last_error());
            last = pst;
        }
        pthread_mutex_lock(&b->notif_lock);
        heads[e] = b->notif_head;
        b->notif_head = NULL;
        b->notif_tail = &b->notif_head;
        pthread_mutex_unlock(&b->notif_lock);
        for (nixl_notif_entry_t *n = heads[e]; n; n = n->next) {
            count++;
            bytes += n->name_len + 1 + n->msg_len;
        }
    }
    agent_unlock(agent);

    nixl_notif_list_t *l = malloc(sizeof(*l) + count * sizeof(nixl_notif_t) + bytes);
    if (!l) {
        /* give them back rather than lose them */
        for (unsigned e = 0; e < NIXL_MAX_ENGINES; e++) {
            if (!heads[e])
                continue;
            nixl_backend_t *b = agent->engines[e];
            nixl_notif_entry_t *tail = heads[e];
            while (tail->next)
                tail = tail->next;
            pthread_mutex_lock(&b->notif_lock);
            tail->next = b->notif_head;
            if (!b->notif_head)
                b->notif_tail = &tail->next;
            b->notif_head = heads[e];
            pthread_mutex_unlock(&b->notif_lock);
        }
        return nixl_err_oom("get_notifs: %zu notifications", count);
    }
    l->count = count;
    l->items = (nixl_notif_t *)(l + 1);
    char *p = (char *)(l->items + count);
    size_t k = 0;
    for (unsigned e = 0; e < NIXL_MAX_ENGINES; e++) {
        while (heads[e]) {
            nixl_notif_entry_t *n = heads[e];
            size_t sz = n->name_len + 1 + n->msg_len;
            memcpy(p, n->data, sz);
            l->items[k].agent = p;
            l->items[k].msg = p + n->name_len + 1;
            l->items[k].msg_len = n->msg_len;
            p += sz;
            k++;
            heads[e] = n->next;
            free(n);
        }
    }
    *out = l;
    return last;
}

nixl_status_t nixl_agent_gen_notif(nixl_agent_t *agent, const char *remote_agent, const void *msg,
                                   size_t len, const nixl_opt_args_t *opt)
{
    if (!agent || !remote_agent || (len && !msg))
        return nixl_err(NIXL_ERR_INVALID_PARAM,
                        "gen_notif: agent and remote_agent are required (msg may be NULL only "
                        "when empty)");
    agent_rdlock(agent);
    nixl_status_t st;
    uint32_t mask = notif_engines(agent, opt, &st);
    nixl_peer_t *peer = NULL;
    uint64_t generation = 0;
    if (!mask)
        goto out;
    unsigned order[NIXL_MAX_ENGINES];
    size_t n = engines_ordered(agent, opt, mask, order);
    bool self = !strcmp(remote_agent, agent->name);
    if (!self) {
        peer = peer_find(agent, remote_agent);
        if (peer) {
            peer_ref(peer); /* for peer_lost after the lock */
            generation = peer->generation;
        }
    }
    bool tried = false;
    for (size_t k = 0; k < n && !tried; k++) {
        nixl_backend_t *b = agent->engines[order[k]];
        bool usable = self ? (b->info->caps & NIXL_BE_CAP_LOCAL) != 0
                           : peer && peer->conn[b->index] == PEER_CONN_LOADED;
        if (!usable)
            continue;
        tried = true;
        nixl_err_arm();
        st = b->ops->gen_notif(b->eng, remote_agent, msg, len);
        if (st != NIXL_SUCCESS)
            nixl_err_prefix("gen_notif: %s to '%s'", b->name, remote_agent);
        else
            nixl_err_settle(st);
    }
    if (!tried)
        st = nixl_err(NIXL_ERR_NOT_FOUND, self ? "gen_notif: no backend can notify this agent "
                                                 "itself"
                                               : "gen_notif: no connection info of '%s' is loaded",
                      remote_agent);
out:
    agent_unlock(agent);
    if (st == NIXL_ERR_REMOTE_DISCONNECT && peer)
        peer_lost(agent, peer, generation); /* the same recovery as a failed transfer */
    peer_unref(peer);
    return st;
}
