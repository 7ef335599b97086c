/*
 * prometheus_mp.c - the `prometheus_mp` telemetry exporter (reference NIXL-SEMANTICS 8.4): the
 * agents of several processes (ranks) of a host share one endpoint. Every agent keeps its
 * values in a store file of its own under NIXL_TELEMETRY_MULTIPROC_DIR; one process, elected by
 * flock(2) on nixl-owner.<addr>:<port>.lock in that directory, serves /metrics and reads every
 * store for each scrape. When it ends, another process takes the lock at its next tick.
 *
 * Series: those of `prometheus`, with the labels pid, agent_instance (the agent's number in
 * its process, from 0) and, when the variable named by NIXL_TELEMETRY_RANK_ENV (default
 * LOCAL_RANK) is set, local_rank. A store whose owner has not ticked for
 * NIXL_TELEMETRY_MP_STALE_TTL seconds (default 30) is removed by the serving process; an owner
 * that finds its store removed writes it again. At most 32 histogram bounds.
 *
 * A store is written by its owner's exporter thread alone, under a sequence counter (odd while
 * writing) that readers check around their copy.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "nixl_telemetry_plugin.h"
#include "parse.h"
#include "prom_config.h"
#include "prom_http.h"
#include "prom_metrics.h"
#include "prom_store.h"

#define MP_STORE_PREFIX "nixl-store."
#define MP_MAX_STORES 4096
#define DEFAULT_TTL_S 30

typedef struct mp_agent {
    struct mp_agent *next;
    const nixl_telemetry_host_t *host;
    int fd;
    mp_store_t *store;
    prom_values_t values; /* the owner's copy, written into the store at each tick */
    prom_bounds_t bounds;
    uint32_t instance;
    char local_rank[32];
    char path[PATH_MAX];
    char name[];
} mp_agent_t;

/* Process-wide. life_lock: the agent list, the election and the server. */
static pthread_mutex_t life_lock = PTHREAD_MUTEX_INITIALIZER;
static mp_agent_t *agents;
static uint32_t next_instance;
static char dir[PATH_MAX];
static prom_config_t endpoint;
static uint64_t ttl_ms;
static int owner_fd = -1;
static prom_http_t *server;
static bool bind_warned;
static _Atomic uint64_t last_try_ms; /* the last election attempt of a tick */
static char hostname[64];

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- the stores ---- */

static void store_write(mp_agent_t *a)
{
    mp_store_t *s = a->store;
    atomic_fetch_add(&s->seq, 1);
    s->values = a->values;
    atomic_fetch_add(&s->seq, 1);
    atomic_store(&s->heartbeat_ms, now_ms());
}

/* Create (or truncate) the agent's store and fill it. False with errno. */
static bool store_open(mp_agent_t *a)
{
    int fd = open(a->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        return false;
    if (ftruncate(fd, sizeof(mp_store_t)) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return false;
    }
    mp_store_t *s = mmap(NULL, sizeof(*s), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (s == MAP_FAILED) {
        int e = errno;
        close(fd);
        errno = e;
        return false;
    }
    s->version = MP_VERSION;
    s->pid = (int32_t)getpid();
    s->instance = a->instance;
    snprintf(s->agent, sizeof(s->agent), "%s", a->name);
    snprintf(s->hostname, sizeof(s->hostname), "%s", hostname);
    snprintf(s->local_rank, sizeof(s->local_rank), "%s", a->local_rank);
    s->bounds = a->bounds;
    a->fd = fd;
    a->store = s;
    store_write(a);
    memcpy(s->magic, MP_MAGIC, sizeof(MP_MAGIC)); /* last: readers skip it until then */
    return true;
}

static void store_close(mp_agent_t *a, bool remove)
{
    if (!a->store)
        return;
    if (remove)
        unlink(a->path);
    munmap(a->store, sizeof(*a->store));
    close(a->fd);
    a->store = NULL;
}

/* ---- serving: every store of the directory, stale ones removed ---- */

static void render(nixl_buf_t *out, void *ctx)
{
    (void)ctx;
    DIR *d = opendir(dir);
    if (!d) {
        out->oom = true; /* the scrape fails visibly */
        return;
    }
    mp_store_t *snaps = calloc(MP_MAX_STORES, sizeof(*snaps));
    prom_labels_t *labels = calloc(MP_MAX_STORES, sizeof(*labels));
    const prom_labels_t **l = calloc(MP_MAX_STORES, sizeof(*l));
    const prom_values_t **v = calloc(MP_MAX_STORES, sizeof(*v));
    const prom_bounds_t **b = calloc(MP_MAX_STORES, sizeof(*b));
    size_t n = 0;
    uint64_t now = now_ms();
    struct dirent *e;
    while (snaps && labels && l && v && b && n < MP_MAX_STORES && (e = readdir(d))) {
        if (strncmp(e->d_name, MP_STORE_PREFIX, strlen(MP_STORE_PREFIX)) != 0)
            continue;
        int fd = openat(dirfd(d), e->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
            continue;
        bool ok = mp_store_read(fd, &snaps[n]);
        close(fd);
        if (!ok)
            continue;
        uint64_t beat = atomic_load(&snaps[n].heartbeat_ms);
        if (now > beat && now - beat > ttl_ms) {
            unlinkat(dirfd(d), e->d_name, 0); /* its owner stopped ticking: reap */
            continue;
        }
        mp_store_labels(&snaps[n], &labels[n]);
        l[n] = &labels[n];
        v[n] = &snaps[n].values;
        b[n] = &snaps[n].bounds;
        n++;
    }
    closedir(d);
    if (snaps && labels && l && v && b)
        prom_render(out, l, v, b, n);
    else
        out->oom = true;
    free(snaps);
    free(labels);
    free(l);
    free(v);
    free(b);
}

/* Try to become the serving process (life_lock held). */
static void elect(const nixl_telemetry_host_t *host)
{
    if (server)
        return;
    char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/nixl-owner.%s:%u.lock", dir, endpoint.addr,
             (unsigned)endpoint.port);
    if (owner_fd < 0) {
        owner_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (owner_fd < 0) {
            if (!bind_warned)
                host->log(host, NIXL_LOG_WARN, "cannot open %s: %s", path, strerror(errno));
            bind_warned = true;
            return;
        }
    }
    if (flock(owner_fd, LOCK_EX | LOCK_NB) != 0)
        return; /* another process serves */
    char why[256];
    int e = prom_http_start(endpoint.addr, endpoint.port, render, NULL, &server, why,
                            sizeof(why));
    if (e == 0) {
        host->log(host, NIXL_LOG_INFO, "this process (pid %d) serves http://%s:%u/metrics for "
                  "the stores in %s", (int)getpid(), endpoint.addr, (unsigned)endpoint.port,
                  dir);
        bind_warned = false;
        return;
    }
    if (!bind_warned)
        host->log(host, NIXL_LOG_WARN, "elected to serve, but %s; retrying", why);
    bind_warned = true;
    flock(owner_fd, LOCK_UN); /* let another process try */
}

static void resign(void)
{
    prom_http_stop(server);
    server = NULL;
    if (owner_fd >= 0) {
        close(owner_fd); /* releases the lock */
        owner_fd = -1;
    }
}

/* ---- the exporter ---- */

/* `st`, after freeing the option strings. */
static nixl_status_t mp_fail(nixl_status_t st, char *a, char *b, char *c)
{
    free(a);
    free(b);
    free(c);
    return st;
}

static nixl_status_t mp_create(const nixl_telemetry_exporter_init_t *init, void **out)
{
    const nixl_telemetry_host_t *host = init->host;
    prom_config_t cfg;
    nixl_status_t st = prom_config_read(host, MP_MAX_BOUNDS, &cfg);
    if (st != NIXL_SUCCESS)
        return st;
    char *mdir = NULL, *rank_env = NULL, *ttl_s = NULL;
    if (!prom_option(host, "NIXL_TELEMETRY_MULTIPROC_DIR", &mdir) ||
        !prom_option(host, "NIXL_TELEMETRY_RANK_ENV", &rank_env) ||
        !prom_option(host, "NIXL_TELEMETRY_MP_STALE_TTL", &ttl_s))
        return mp_fail(NIXL_ERR_MISMATCH, mdir, rank_env, ttl_s);
    uint64_t ttl = DEFAULT_TTL_S;
    struct stat st_dir;
    if (!mdir || !*mdir) {
        host->fail(host, NIXL_ERR_INVALID_PARAM, "NIXL_TELEMETRY_MULTIPROC_DIR is required (the "
                   "directory shared by the processes' stores)");
        return mp_fail(NIXL_ERR_INVALID_PARAM, mdir, rank_env, ttl_s);
    }
    if (strlen(mdir) >= sizeof(dir) - 128 || stat(mdir, &st_dir) != 0 ||
        !S_ISDIR(st_dir.st_mode)) {
        host->fail(host, NIXL_ERR_NOT_FOUND, "NIXL_TELEMETRY_MULTIPROC_DIR=%s is not a "
                   "directory", mdir);
        return mp_fail(NIXL_ERR_NOT_FOUND, mdir, rank_env, ttl_s);
    }
    if (ttl_s && (!nixl_parse_u64(ttl_s, &ttl) || ttl == 0 || ttl > 86400)) {
        host->fail(host, NIXL_ERR_INVALID_PARAM, "NIXL_TELEMETRY_MP_STALE_TTL=%s: 1 to 86400 "
                   "seconds", ttl_s);
        return mp_fail(NIXL_ERR_INVALID_PARAM, mdir, rank_env, ttl_s);
    }
    size_t len = strlen(init->agent_name);
    mp_agent_t *a = calloc(1, sizeof(*a) + len + 1);
    if (!a) {
        host->fail(host, NIXL_ERR_UNKNOWN, "out of memory");
        return mp_fail(NIXL_ERR_UNKNOWN, mdir, rank_env, ttl_s);
    }
    memcpy(a->name, init->agent_name, len + 1);
    a->host = host;
    a->bounds = cfg.bounds;
    const char *rank = getenv(rank_env && *rank_env ? rank_env : "LOCAL_RANK");
    snprintf(a->local_rank, sizeof(a->local_rank), "%s", rank ? rank : "");

    pthread_mutex_lock(&life_lock);
    for (mp_agent_t *o = agents; o; o = o->next)
        if (strcmp(o->name, a->name) == 0) {
            pthread_mutex_unlock(&life_lock);
            host->fail(host, NIXL_ERR_INVALID_PARAM, "agent '%s' is already exported by this "
                       "process: agent names must be unique per process", a->name);
            free(a);
            return mp_fail(NIXL_ERR_INVALID_PARAM, mdir, rank_env, ttl_s);
        }
    if (!agents) { /* the first agent of the process sets the process's endpoint */
        snprintf(dir, sizeof(dir), "%s", mdir);
        endpoint = cfg;
        ttl_ms = ttl * 1000u;
        prom_hostname(hostname, sizeof(hostname));
    } else if (strcmp(dir, mdir) != 0 || endpoint.port != cfg.port) {
        host->log(host, NIXL_LOG_WARN, "agent '%s': this process already uses %s and port %u; "
                  "its store goes there", a->name, dir, (unsigned)endpoint.port);
    }
    a->instance = next_instance++;
    snprintf(a->path, sizeof(a->path), "%s/" MP_STORE_PREFIX "%d.%u", dir, (int)getpid(),
             a->instance);
    if (!store_open(a)) {
        int e = errno;
        pthread_mutex_unlock(&life_lock);
        host->fail(host, NIXL_ERR_BACKEND, "cannot create the store %s: %s", a->path,
                   strerror(e));
        free(a);
        return mp_fail(NIXL_ERR_BACKEND, mdir, rank_env, ttl_s);
    }
    a->next = agents;
    agents = a;
    elect(host);
    pthread_mutex_unlock(&life_lock);
    *out = a;
    return mp_fail(NIXL_SUCCESS, mdir, rank_env, ttl_s);
}

static void mp_export(void *exp, const nixl_telemetry_event_t *ev, size_t n)
{
    mp_agent_t *a = exp;
    prom_values_add(&a->values, &a->bounds, ev, n);
    struct stat st;
    if (!a->store || (fstat(a->fd, &st) == 0 && st.st_nlink == 0)) {
        /* reaped while we were stopped (or never written): write it again */
        store_close(a, false);
        if (!store_open(a))
            return;
    }
    store_write(a);
    uint64_t now = now_ms(), last = atomic_load(&last_try_ms);
    if (now - last >= 1000 && atomic_compare_exchange_strong(&last_try_ms, &last, now)) {
        pthread_mutex_lock(&life_lock); /* at most once a second per process */
        elect(a->host);
        pthread_mutex_unlock(&life_lock);
    }
}

static void mp_destroy(void *exp)
{
    mp_agent_t *a = exp;
    if (!a)
        return;
    pthread_mutex_lock(&life_lock);
    for (mp_agent_t **p = &agents; *p; p = &(*p)->next)
        if (*p == a) {
            *p = a->next;
            break;
        }
    store_close(a, true);
    if (!agents)
        resign(); /* another process takes over at its next tick */
    pthread_mutex_unlock(&life_lock);
    free(a);
}

static const nixl_telemetry_exporter_ops_t mp_ops = {
    .struct_size = sizeof(nixl_telemetry_exporter_ops_t),
    .abi_version = NIXL_TELEMETRY_EXPORTER_ABI_VERSION,
    .min_abi = 1,
    .name = "prometheus_mp",
    .version = "1.0",
    .create = mp_create,
    .export_events = mp_export,
    .destroy = mp_destroy,
};

__attribute__((visibility("default"))) const nixl_telemetry_exporter_ops_t *
nixl_telemetry_exporter_entry(void);
const nixl_telemetry_exporter_ops_t *nixl_telemetry_exporter_entry(void)
{
    return &mp_ops;
}
