/*
 * shm_trust.c - who may talk to an SHM engine (docs/security.md).
 *
 * The engine's socket is an abstract Unix socket: any process of the host (of its network
 * namespace) can find it in /proc/net/unix and connect. What such a connection can do is send
 * notifications, which the application may act on, so:
 *  - a connection is accepted only from a process of our own uid, or of a uid listed in the
 *    `trusted_uids` parameter (the kernel says who connected: SO_PEERCRED);
 *  - a notification signed with the name of a loaded peer is delivered only when the process
 *    that sent it is the one that peer's metadata describes (its pid is the connection's):
 *    nobody can speak for an agent we know (`notif_senders=checked`, the default). A name we
 *    have not loaded is accepted from any process of a trusted uid, because with the
 *    reference a target need not load its initiators' metadata to hear from them;
 *    `notif_senders=loaded` refuses those too (only loaded peers, from their own pid), and
 *    `notif_senders=user` checks no names at all (the reference). Our own process is always
 *    trusted (its agents share an address space anyway).
 *
 * Memory itself is not guarded here: process_vm_readv/writev obey the kernel's ptrace rules
 * (same uid, or CAP_SYS_PTRACE; Yama on top), which is what the `ptracer` parameter is about.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log_limit.h"
#include "shm_priv.h"

#define SHM_TRUST_SEP ", \t"

/* "1000,1001 1002": at most SHM_TRUSTED_UIDS_MAX uids. */
static nixl_status_t parse_uids(const nixl_host_t *host, const char *v, shm_trust_t *t)
{
    char buf[512];
    if (strlen(v) >= sizeof(buf))
        return NIXL_BE_ERR(host, NIXL_ERR_INVALID_PARAM, "trusted_uids is too long");
    strcpy(buf, v);
    char *save = NULL;
    for (char *tok = strtok_r(buf, SHM_TRUST_SEP, &save); tok;
         tok = strtok_r(NULL, SHM_TRUST_SEP, &save)) {
        uint64_t uid;
        if (!nixl_parse_u64(tok, &uid) || uid >= (uint64_t)(uid_t)-1)
            return NIXL_BE_ERR(host, NIXL_ERR_INVALID_PARAM,
                               "trusted_uids: '%s' is not a uid (a list of decimal uids, "
                               "separated by commas or spaces)", tok);
        if (t->num_uids == SHM_TRUSTED_UIDS_MAX)
            return NIXL_BE_ERR(host, NIXL_ERR_INVALID_PARAM,
                               "trusted_uids: more than %u uids", SHM_TRUSTED_UIDS_MAX);
        t->uids[t->num_uids++] = (uid_t)uid;
    }
    return NIXL_SUCCESS;
}

nixl_status_t shm_trust_parse(const nixl_be_init_t *init, shm_trust_t *t)
{
    memset(t, 0, sizeof(*t));
    t->ptracer_any = true;
    t->senders = SHM_SENDERS_CHECKED;
    for (size_t i = 0; i < init->num_params; i++) {
        const nixl_param_t *p = &init->params[i];
        if (!p->key || !p->value)
            continue;
        nixl_status_t st = NIXL_SUCCESS;
        if (strcmp(p->key, "trusted_uids") == 0) {
            st = parse_uids(init->host, p->value, t);
        } else if (strcmp(p->key, "ptracer") == 0) {
            if (strcmp(p->value, "any") == 0 || strcmp(p->value, "none") == 0)
                t->ptracer_any = strcmp(p->value, "any") == 0;
            else
                st = NIXL_BE_ERR(init->host, NIXL_ERR_INVALID_PARAM,
                                 "ptracer='%s' must be 'any' (under Yama ptrace_scope=1 let "
                                 "any process of this user attach, so that peers can copy) or "
                                 "'none' (leave Yama alone: peers then need CAP_SYS_PTRACE or "
                                 "to be an ancestor)", p->value);
        } else if (strcmp(p->key, "notif_senders") == 0) {
            if (strcmp(p->value, "checked") == 0)
                t->senders = SHM_SENDERS_CHECKED;
            else if (strcmp(p->value, "loaded") == 0)
                t->senders = SHM_SENDERS_LOADED;
            else if (strcmp(p->value, "user") == 0)
                t->senders = SHM_SENDERS_USER;
            else
                st = NIXL_BE_ERR(init->host, NIXL_ERR_INVALID_PARAM,
                                 "notif_senders='%s' must be 'checked' (a loaded peer's name "
                                 "only from its pid), 'loaded' (only loaded peers, from their "
                                 "pid) or 'user' (any process of a trusted uid, as the "
                                 "reference)", p->value);
        }
        if (st != NIXL_SUCCESS)
            return st;
    }
    return NIXL_SUCCESS;
}

bool shm_trust_uid(const nixl_be_engine_t *eng, uid_t uid)
{
    if (uid == geteuid())
        return true;
    for (unsigned i = 0; i < eng->trust.num_uids; i++)
        if (eng->trust.uids[i] == uid)
            return true;
    return false;
}

bool shm_trust_accept(nixl_be_engine_t *eng, int fd, shm_conn_t *conn)
{
    struct ucred cred = {0};
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof(cred)) {
        static nixl_log_limit_t lim = NIXL_LOG_LIMIT_INIT;
        uint64_t rep;
        if (nixl_log_limit_pass(&lim, "no credentials", nixl_now_ns(), &rep))
            NIXL_BE_LOG(eng->host, NIXL_LOG_WARN,
                        "refused a connection whose credentials cannot be read: %s "
                        "(%llu more before)", strerror(errno), (unsigned long long)rep);
        return false;
    }
    if (!shm_trust_uid(eng, cred.uid)) {
        static nixl_log_limit_t lim = NIXL_LOG_LIMIT_INIT;
        char line[96];
        snprintf(line, sizeof(line), "uid %u", (unsigned)cred.uid);
        uint64_t rep;
        if (nixl_log_limit_pass(&lim, line, nixl_now_ns(), &rep))
            NIXL_BE_LOG(eng->host, NIXL_LOG_WARN,
                        "refused a connection from pid %d, uid %u: not this engine's uid "
                        "and not in trusted_uids (%llu refused before)", (int)cred.pid,
                        (unsigned)cred.uid, (unsigned long long)rep);
        return false;
    }
    conn->cred_pid = cred.pid;
    return true;
}

/* A loaded peer named `name` whose metadata gives `pid`, with a reference; NULL if none.
 * *name_loaded: some loaded peer has that name (whatever its pid). */
static shm_peer_t *loaded_peer_of(nixl_be_engine_t *eng, const char *name, size_t name_len,
                                  pid_t pid, bool *name_loaded)
{
    shm_peer_t *found = NULL;
    *name_loaded = false;
    pthread_mutex_lock(&eng->all_lock); /* a leaf: callers hold ev_lock */
    for (shm_peer_t *p = eng->all_peers; p && !found; p = p->anext) {
        if (p->is_self || p->name_len != name_len || memcmp(p->name, name, name_len) != 0 ||
            atomic_load(&p->forgotten))
            continue;
        *name_loaded = true;
        /* A peer in another pid namespace cannot be matched by pid (its metadata gives its pid
         * there; the kernel gives us its pid here): its name is taken on trust from a process
         * of a trusted uid (docs/security.md). */
        if (p->pid == pid || p->other_pidns) {
            shm_peer_ref(p, 1);
            found = p;
        }
    }
    pthread_mutex_unlock(&eng->all_lock);
    return found;
}

bool shm_trust_sender(nixl_be_engine_t *eng, shm_conn_t *conn, const char *name,
                      size_t name_len)
{
    if (eng->trust.senders == SHM_SENDERS_USER || conn->from_self)
        return true;
    shm_peer_t *v = conn->sender;
    if (v && !atomic_load(&v->forgotten) && v->name_len == name_len &&
        memcmp(v->name, name, name_len) == 0)
        return true;
    /* Not checked yet, another name, or the peer was invalidated (and maybe reloaded). */
    bool name_loaded;
    shm_peer_t *p = loaded_peer_of(eng, name, name_len, conn->cred_pid, &name_loaded);
    if (p) {
        if (v)
            shm_peer_unref(v, 1);
        conn->sender = p;
        return true;
    }
    if (!name_loaded && eng->trust.senders == SHM_SENDERS_CHECKED)
        return true; /* an initiator we never loaded, as the reference allows */
    static nixl_log_limit_t lim = NIXL_LOG_LIMIT_INIT;
    char line[160];
    snprintf(line, sizeof(line), "pid %d as '%.*s'", (int)conn->cred_pid,
             (int)(name_len < 64 ? name_len : 64), name);
    uint64_t rep;
    if (nixl_log_limit_pass(&lim, line, nixl_now_ns(), &rep))
        NIXL_BE_LOG(eng->host, NIXL_LOG_WARN,
                    "dropped a notification from pid %d signed '%.*s': %s (%llu dropped "
                    "before)",
                    (int)conn->cred_pid, (int)(name_len < 64 ? name_len : 64), name,
                    name_loaded ? "the peer of that name has another pid (an impostor, or it "
                                  "restarted and was not reloaded)"
                                : "no peer of that name is loaded (notif_senders=loaded)",
                    (unsigned long long)rep);
    return false;
}

void shm_trust_forget(shm_conn_t *conn)
{
    if (conn->sender)
        shm_peer_unref(conn->sender, 1);
    conn->sender = NULL;
}
