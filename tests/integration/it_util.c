/* it_util.c - NIXL helpers of the integration programs (see it_util.h). */
#include "it_util.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------------ */
/* Agents                                                                                      */
/* ------------------------------------------------------------------------------------------ */

nixl_agent_t *it_agent(const char *name, uint64_t async_threshold)
{
    nixl_agent_t *agent = NULL;
    nixl_backend_t *be;
    char thr[32];
    snprintf(thr, sizeof(thr), "%" PRIu64, async_threshold);
    /* IT_SHM_TRUSTED_UIDS: SHM's trusted_uids (scenarios with a peer of another uid) */
    const char *uids = getenv("IT_SHM_TRUSTED_UIDS");
    nixl_param_t params[2] = {{"async_threshold", thr}, {"trusted_uids", uids ? uids : ""}};
    IT_CHECK_ST(nixl_agent_create(name, NULL, &agent), NIXL_SUCCESS);
    IT_CHECK_ST(nixl_agent_create_backend(agent, "SHM", params, uids ? 2 : 1, &be),
                NIXL_SUCCESS);
    return agent;
fail:
    nixl_agent_destroy(agent);
    return NULL;
}

int it_register(nixl_agent_t *agent, const void *buf, size_t len)
{
    nixl_reg_desc_t reg = {.addr = (uintptr_t)buf, .len = len, .dev_id = 0};
    IT_CHECK_ST(nixl_agent_register_mem(agent, NIXL_DRAM_SEG, &reg, 1, NULL), NIXL_SUCCESS);
    return 0;
fail:
    return -1;
}

void *it_alloc(size_t len)
{
    size_t rounded = (len + 4095) & ~(size_t)4095;
    void *p = aligned_alloc(4096, rounded ? rounded : 4096);
    if (!p) {
        it_fail(__FILE__, __LINE__, "out of memory (%zu bytes)", len);
        return NULL;
    }
    memset(p, 0, rounded);
    return p;
}

/* ------------------------------------------------------------------------------------------ */
/* Metadata                                                                                    */
/* ------------------------------------------------------------------------------------------ */

int it_send_md(it_chan_t *ch, nixl_agent_t *agent)
{
    void *md = NULL;
    size_t len = 0;
    IT_CHECK_ST(nixl_agent_get_local_md(agent, &md, &len), NIXL_SUCCESS);
    int rc = it_send(ch, md, len);
    nixl_free(md);
    if (rc != 0)
        return it_fail(__FILE__, __LINE__, "sending metadata: the other process is gone");
    return 0;
fail:
    return -1;
}

int it_recv_load_md(it_chan_t *ch, nixl_agent_t *agent, const char *expect)
{
    void *md = NULL;
    size_t len;
    char *name = NULL;
    if (it_recv(ch, &md, &len, IT_TIMEOUT_MS, false) != 0)
        return -1;
    IT_CHECK_ST(nixl_agent_load_remote_md(agent, md, len, &name), NIXL_SUCCESS);
    IT_CHECK(!expect || strcmp(name, expect) == 0, "loaded metadata of '%s', expected '%s'", name,
             expect);
    nixl_free(name);
    free(md);
    return 0;
fail:
    nixl_free(name);
    free(md);
    return -1;
}

/* ------------------------------------------------------------------------------------------ */
/* Transfers                                                                                   */
/* ------------------------------------------------------------------------------------------ */

nixl_status_t it_wait_xfer(nixl_agent_t *agent, nixl_xfer_req_t *req, int timeout_ms)
{
    uint64_t deadline = it_now_ms() + (uint64_t)timeout_ms;
    unsigned spins = 0;
    for (;;) {
        nixl_status_t st = nixl_agent_get_xfer_status(agent, req);
        if (st != NIXL_IN_PROG)
            return st;
        if (it_now_ms() >= deadline) {
            it_fail(__FILE__, __LINE__, "transfer still in progress after %d ms", timeout_ms);
            return NIXL_IN_PROG;
        }
        if (++spins > 64) /* two cores: let the worker run */
            it_sleep_ms(1);
    }
}

nixl_status_t it_post_wait(nixl_agent_t *agent, nixl_xfer_req_t *req, const nixl_opt_args_t *opt,
                           int timeout_ms)
{
    nixl_status_t st = nixl_agent_post_xfer_req(agent, req, opt);
    if (st != NIXL_IN_PROG)
        return st;
    return it_wait_xfer(agent, req, timeout_ms);
}

void it_notif_opt(nixl_opt_args_t *opt, const void *msg, size_t len)
{
    nixl_opt_args_init(opt);
    opt->has_notif = true;
    opt->notif = msg;
    opt->notif_len = len;
}

/* ------------------------------------------------------------------------------------------ */
/* Notifications                                                                               */
/* ------------------------------------------------------------------------------------------ */

int it_notifs_poll(nixl_agent_t *agent, it_notifs_t *n)
{
    nixl_notif_list_t *l = NULL;
    nixl_status_t st = nixl_agent_get_notifs(agent, NULL, &l);
    if (st != NIXL_SUCCESS)
        return it_fail(__FILE__, __LINE__, "get_notifs: %s (%s)", nixl_status_str(st),
                       nixl_last_error());
    if (n->count + l->count > n->cap) {
        size_t cap = n->cap ? n->cap : 64;
        while (cap < n->count + l->count)
            cap *= 2;
        it_notif_t *items = realloc(n->items, cap * sizeof(*items));
        if (!items) {
            nixl_free(l);
            return it_fail(__FILE__, __LINE__, "out of memory");
        }
        n->items = items;
        n->cap = cap;
    }
    for (size_t i = 0; i < l->count; i++) {
        it_notif_t *it = &n->items[n->count];
        it->agent = strdup(l->items[i].agent);
        it->msg = malloc(l->items[i].msg_len + 1);
        if (!it->agent || !it->msg) {
            free(it->agent);
            free(it->msg);
            nixl_free(l);
            return it_fail(__FILE__, __LINE__, "out of memory");
        }
        if (l->items[i].msg_len)
            memcpy(it->msg, l->items[i].msg, l->items[i].msg_len);
        it->msg[l->items[i].msg_len] = 0;
        it->len = l->items[i].msg_len;
        it->used = false;
        n->count++;
    }
    nixl_free(l);
    return 0;
}

int it_notifs_wait(nixl_agent_t *agent, it_notifs_t *n, size_t want, int timeout_ms)
{
    uint64_t deadline = it_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        if (it_notifs_poll(agent, n) != 0)
            return -1;
        if (n->count >= want)
            return 0;
        if (it_now_ms() >= deadline)
            return it_fail(__FILE__, __LINE__, "%zu of %zu notifications after %d ms", n->count,
                           want, timeout_ms);
        it_sleep_ms(1);
    }
}

long it_notifs_find(const it_notifs_t *n, const char *agent, const void *msg, size_t len)
{
    for (size_t i = 0; i < n->count; i++) {
        const it_notif_t *it = &n->items[i];
        if (!it->used && it->len == len && strcmp(it->agent, agent) == 0 &&
            (!len || memcmp(it->msg, msg, len) == 0))
            return (long)i;
    }
    return -1;
}

int it_notifs_take(nixl_agent_t *agent, it_notifs_t *n, const char *from, const void *msg,
                   size_t len, int timeout_ms)
{
    uint64_t deadline = it_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        long i = it_notifs_find(n, from, msg, len);
        if (i >= 0) {
            n->items[i].used = true;
            return 0;
        }
        if (it_now_ms() >= deadline)
            return it_fail(__FILE__, __LINE__,
                           "notification '%.*s' from '%s' did not arrive in %d ms (%zu others)",
                           (int)(len > 64 ? 64 : len), (const char *)msg, from, timeout_ms,
                           n->count);
        if (it_notifs_poll(agent, n) != 0)
            return -1;
        if (it_notifs_find(n, from, msg, len) < 0)
            it_sleep_ms(1);
    }
}

void it_notifs_clear(it_notifs_t *n)
{
    for (size_t i = 0; i < n->count; i++) {
        free(n->items[i].agent);
        free(n->items[i].msg);
    }
    free(n->items);
    n->items = NULL;
    n->count = n->cap = 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Patterns                                                                                    */
/* ------------------------------------------------------------------------------------------ */

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

uint64_t it_seed(uint64_t a, uint64_t b, uint64_t c)
{
    return mix(mix(mix(a) ^ b) ^ c);
}

/* xor with a seed and a xorshift are bijections: two seeds differ in every word. */
static inline uint64_t pat_word(uint64_t seed, uint64_t i)
{
    uint64_t v = seed ^ (i * 0x9e3779b97f4a7c15ull);
    return v ^ (v >> 31);
}

void it_fill(void *p, size_t len, uint64_t seed)
{
    uint8_t *b = p;
    size_t words = len / 8;
    for (size_t i = 0; i < words; i++) {
        uint64_t w = pat_word(seed, i);
        memcpy(b + 8 * i, &w, 8);
    }
    uint64_t w = pat_word(seed, words);
    memcpy(b + 8 * words, &w, len % 8);
}

size_t it_verify(const void *p, size_t len, uint64_t seed)
{
    const uint8_t *b = p;
    size_t words = len / 8;
    for (size_t i = 0; i < words; i++) {
        uint64_t w = pat_word(seed, i), have;
        memcpy(&have, b + 8 * i, 8);
        if (have != w) {
            for (size_t k = 0; k < 8; k++)
                if (((const uint8_t *)&have)[k] != ((const uint8_t *)&w)[k])
                    return 8 * i + k + 1;
        }
    }
    uint64_t w = pat_word(seed, words);
    for (size_t k = 0; k < len % 8; k++)
        if (b[8 * words + k] != ((const uint8_t *)&w)[k])
            return 8 * words + k + 1;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* The generic target                                                                          */
/* ------------------------------------------------------------------------------------------ */

static void reply_notifs(it_chan_t *ch, nixl_agent_t *agent, it_notifs_t *n, const char *cmd)
{
    size_t want = 0;
    char sender[300], msg[300];
    if (sscanf(cmd, "notifs %zu %299s %299s", &want, sender, msg) != 3) {
        it_sendf(ch, "bad command '%s'", cmd);
        return;
    }
    const char *payload = strcmp(msg, "-") == 0 ? "" : msg;
    if (it_notifs_wait(agent, n, want, IT_TIMEOUT_MS) != 0) {
        it_sendf(ch, "only %zu of %zu notifications arrived", n->count, want);
        goto out;
    }
    it_sleep_ms(IT_EXTRA_NOTIF_MS); /* anything extra would have arrived by now */
    if (it_notifs_poll(agent, n) != 0) {
        it_sendf(ch, "get_notifs failed");
        goto out;
    }
    if (n->count != want) {
        it_sendf(ch, "%zu notifications arrived, expected exactly %zu", n->count, want);
        goto out;
    }
    for (size_t i = 0; i < n->count; i++)
        if (strcmp(n->items[i].agent, sender) != 0 || n->items[i].len != strlen(payload) ||
            memcmp(n->items[i].msg, payload, n->items[i].len) != 0) {
            it_sendf(ch, "notification %zu is '%.100s' (%zu bytes) from '%s', expected '%s' "
                         "from '%s'",
                     i, (const char *)n->items[i].msg, n->items[i].len, n->items[i].agent,
                     payload, sender);
            goto out;
        }
    it_sendf(ch, "ok");
out:
    it_notifs_clear(n);
}

/* The target's buffer, as IT_TARGET_MEM says (see it_util.h); NULL reported. */
static uint8_t *target_buf(size_t size, size_t *maplen)
{
    const char *how = getenv("IT_TARGET_MEM");
    *maplen = 0;
    if (!how || !*how || strcmp(how, "malloc") == 0)
        return it_alloc(size);
    size_t len = (size + ((size_t)2 << 20) - 1) & ~(((size_t)2 << 20) - 1);
    int fd = -1;
    char name[64];
    bool keep = false;
    bool seal = false;
    if (strcmp(how, "memfd") == 0 || strcmp(how, "memfd-closed") == 0) {
        fd = memfd_create("it-target", MFD_CLOEXEC);
        keep = strcmp(how, "memfd") == 0;
    } else if (strcmp(how, "memfd-sealed") == 0) { /* sealed against shrinking, kept open */
        fd = memfd_create("it-target", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        keep = seal = true;
    } else if (strcmp(how, "memfd-huge") == 0) {
        fd = memfd_create("it-target", MFD_CLOEXEC | MFD_HUGETLB);
    } else if (strcmp(how, "devshm") == 0) {
        snprintf(name, sizeof(name), "/dev/shm/it-target-%d", (int)getpid());
        fd = open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    } else {
        it_fail(__FILE__, __LINE__, "IT_TARGET_MEM='%s' is none of malloc, memfd, memfd-closed, "
                "memfd-sealed, memfd-huge, devshm", how);
        return NULL;
    }
    void *p = fd >= 0 && ftruncate(fd, (off_t)len) == 0 &&
                      (!seal || fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) == 0)
                  ? mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
                  : MAP_FAILED;
    if (p == MAP_FAILED) {
        it_fail(__FILE__, __LINE__, "a %zu-byte %s buffer: %m", len, how);
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    /* "memfd" keeps its descriptor open (as most owners do); the others close it at once */
    if (!keep)
        close(fd);
    *maplen = len;
    return p;
}

int it_target_role(it_chan_t *ch, const char *arg)
{
    char name[256];
    size_t size = 0;
    if (sscanf(arg, "%255s %zu", name, &size) != 2 || !size) {
        it_fail(__FILE__, __LINE__, "target: bad argument '%s'", arg);
        return 2;
    }
    size_t maplen;
    uint8_t *buf = target_buf(size, &maplen);
    nixl_agent_t *agent = buf ? it_agent(name, 0) : NULL;
    if (!agent || it_register(agent, buf, size) != 0 || it_send_md(ch, agent) != 0)
        return 1;
    uint64_t addr = (uintptr_t)buf;
    if (it_send(ch, &addr, sizeof(addr)) != 0)
        return 1;

    it_notifs_t notifs = {0};
    int rc = 1;
    for (;;) {
        void *m;
        size_t len;
        /* The initiator may sit in a long scenario between commands; EOF ends us anyway. */
        if (it_recv(ch, &m, &len, 120000, true) != 0)
            break;
        char *cmd = m;
        size_t off, n;
        uint64_t seed;
        if (strcmp(cmd, "quit") == 0) {
            free(cmd);
            rc = 0;
            break;
        } else if (sscanf(cmd, "fill %zu %zu %" SCNu64, &off, &n, &seed) == 3 &&
                   off + n <= size) {
            it_fill(buf + off, n, seed);
            it_sendf(ch, "ok");
        } else if (sscanf(cmd, "verify %zu %zu %" SCNu64, &off, &n, &seed) == 3 &&
                   off + n <= size) {
            size_t bad = it_verify(buf + off, n, seed);
            if (bad)
                it_sendf(ch, "byte %zu of [%zu, +%zu) differs", bad - 1, off, n);
            else
                it_sendf(ch, "ok");
        } else if (strncmp(cmd, "notifs ", 7) == 0) {
            reply_notifs(ch, agent, &notifs, cmd);
        } else if (strcmp(cmd, "md") == 0) {
            it_send_md(ch, agent);
        } else if (strcmp(cmd, "staged") == 0) {
            it_sendf(ch, it_maps_staging_ring() ? "ok" : "no staging ring is mapped");
        } else {
            it_sendf(ch, "bad command '%s'", cmd);
        }
        free(cmd);
    }
    it_notifs_clear(&notifs);
    nixl_agent_destroy(agent);
    if (maplen) {
        munmap(buf, maplen);
        char path[64];
        snprintf(path, sizeof(path), "/dev/shm/it-target-%d", (int)getpid());
        unlink(path); /* IT_TARGET_MEM=devshm */
    } else {
        free(buf);
    }
    return rc;
}

bool it_maps_staging_ring(void)
{
    return it_maps("memfd:nixl-shm-stage");
}

size_t it_staging_rings(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    size_t n = 0;
    while (f && fgets(line, sizeof(line), f))
        n += strstr(line, "memfd:nixl-shm-stage") != NULL;
    if (f)
        fclose(f);
    return n;
}

bool it_maps(const char *what)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    bool found = false;
    while (f && !found && fgets(line, sizeof(line), f))
        found = strstr(line, what) != NULL;
    if (f)
        fclose(f);
    return found;
}

int it_target_start(it_peer_t *p, const char *name, size_t size, nixl_agent_t *agent,
                    uint64_t *addr)
{
    return it_target_start_role(p, "target", name, size, agent, addr);
}

int it_target_start_role(it_peer_t *p, const char *role, const char *name, size_t size,
                         nixl_agent_t *agent, uint64_t *addr)
{
    char arg[300];
    snprintf(arg, sizeof(arg), "%s %zu", name, size);
    if (it_peer_spawn(p, role, arg) != 0)
        return -1;
    void *m = NULL;
    size_t len;
    if (agent) {
        if (it_recv_load_md(&p->ch, agent, name) != 0)
            goto fail;
    } else {
        if (it_recv(&p->ch, &m, &len, IT_TIMEOUT_MS, false) != 0)
            goto fail;
        free(m);
        m = NULL;
    }
    if (it_recv(&p->ch, &m, &len, IT_TIMEOUT_MS, false) != 0)
        goto fail;
    IT_CHECK(len == sizeof(*addr), "target sent a %zu-byte address", len);
    memcpy(addr, m, sizeof(*addr));
    free(m);
    return 0;
fail:
    free(m);
    it_peer_cleanup(p);
    return -1;
}

/* ------------------------------------------------------------------------------------------ */
/* Any backend, metadata over the side channel                                                 */
/* ------------------------------------------------------------------------------------------ */

const char *it_backend(void)
{
    const char *b = getenv("IT_BACKEND");
    return b && *b ? b : "UCX";
}

int it_backend_probe(const char *backend)
{
    nixl_agent_t *agent = NULL;
    nixl_backend_t *be;
    int rc = 1;
    IT_CHECK_ST(nixl_agent_create("probe", NULL, &agent), NIXL_SUCCESS);
    nixl_status_t st = nixl_agent_create_backend(agent, backend, NULL, 0, &be);
    if (st == NIXL_ERR_NOT_FOUND) {
        fprintf(stderr, "SKIP: the %s backend is not available here: %s\n", backend,
                nixl_last_error());
        rc = 77;
    } else if (st != NIXL_SUCCESS) {
        it_fail(__FILE__, __LINE__, "creating a %s engine: %s (%s)", backend,
                nixl_status_str(st), nixl_last_error());
    } else {
        rc = 0;
    }
fail:
    nixl_agent_destroy(agent);
    return rc;
}

nixl_agent_t *it_agent_be(const char *name, const char *backend, bool listen, int *port)
{
    nixl_agent_t *agent = NULL;
    nixl_backend_t *be;
    nixl_agent_config_t cfg;
    nixl_agent_config_init(&cfg);
    cfg.use_listen_thread = listen;
    cfg.listen_port = 0;
    const char *mode = getenv("IT_UCX_ERR_MODE");
    nixl_param_t param = {"ucx_error_handling_mode", mode};
    size_t nparams = mode && *mode && strcmp(backend, "UCX") == 0 ? 1 : 0;
    IT_CHECK_ST(nixl_agent_create(name, &cfg, &agent), NIXL_SUCCESS);
    IT_CHECK_ST(nixl_agent_create_backend(agent, backend, &param, nparams, &be), NIXL_SUCCESS);
    if (listen) {
        IT_CHECK_ST(nixl_agent_get_listen_port(agent, port), NIXL_SUCCESS);
        IT_CHECK(*port > 0 && *port < 65536, "listen port %d", *port);
    }
    return agent;
fail:
    nixl_agent_destroy(agent);
    return NULL;
}

int it_fetch_md(nixl_agent_t *agent, const char *name, const char *ip, int port, int timeout_ms)
{
    nixl_opt_args_t opt;
    nixl_opt_args_init(&opt);
    opt.ip_addr = ip;
    opt.port = port;
    IT_CHECK_ST(nixl_agent_fetch_remote_md(agent, name, &opt), NIXL_SUCCESS);
    uint64_t deadline = it_now_ms() + (uint64_t)timeout_ms;
    nixl_status_t st;
    while ((st = nixl_agent_get_fetch_status(agent, name)) == NIXL_IN_PROG &&
           it_now_ms() < deadline)
        it_sleep_ms(1);
    IT_CHECK(st == NIXL_SUCCESS, "fetching the metadata of '%s' from %s:%d: %s (%s)", name, ip,
             port, nixl_status_str(st), st == NIXL_IN_PROG ? "still running" : nixl_last_error());
    return 0;
fail:
    return -1;
}

int it_wait_md(nixl_agent_t *agent, const char *name, const nixl_desc_t *descs, size_t count,
               int timeout_ms)
{
    uint64_t deadline = it_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        nixl_status_t st = nixl_agent_check_remote_md(agent, name, NIXL_DRAM_SEG, descs, count);
        if (st == NIXL_SUCCESS)
            return 0;
        if (it_now_ms() >= deadline)
            return it_fail(__FILE__, __LINE__,
                           "metadata of '%s' (%zu descriptors) not loaded after %d ms: %s (%s)",
                           name, count, timeout_ms, nixl_status_str(st), nixl_last_error());
        it_sleep_ms(2);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Slots                                                                                       */
/* ------------------------------------------------------------------------------------------ */

void it_slots_fill(void *base, size_t count, size_t size, size_t stride, uint64_t seed,
                   bool reverse)
{
    for (size_t i = 0; i < count; i++)
        it_fill((uint8_t *)base + i * stride, size, it_seed(seed, reverse ? count - 1 - i : i, 0));
}

int it_slots_verify(const void *base, size_t count, size_t size, size_t stride, uint64_t seed,
                    bool reverse, char *why, size_t why_len)
{
    for (size_t i = 0; i < count; i++) {
        size_t bad = it_verify((const uint8_t *)base + i * stride, size,
                               it_seed(seed, reverse ? count - 1 - i : i, 0));
        if (bad) {
            snprintf(why, why_len, "slot %zu of %zu (%zu bytes): byte %zu differs", i, count,
                     size, bad - 1);
            return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* The side-channel target                                                                     */
/* ------------------------------------------------------------------------------------------ */

typedef struct sct {
    it_chan_t *ch;
    nixl_agent_t *agent;
    uint8_t *area;
    size_t area_len;
    it_notifs_t notifs;
} sct_t;

/* Whether count slots of size every stride lie inside the area. */
static bool sct_fits(const sct_t *t, size_t count, size_t size, size_t stride)
{
    return count && size && size <= stride && stride <= t->area_len &&
           count <= (t->area_len - size) / stride + 1;
}

static void sct_drop_used(it_notifs_t *n)
{
    size_t k = 0;
    for (size_t i = 0; i < n->count; i++) {
        if (n->items[i].used) {
            free(n->items[i].agent);
            free(n->items[i].msg);
        } else {
            n->items[k++] = n->items[i];
        }
    }
    n->count = k;
}

static void sct_await(sct_t *t, const char *cmd)
{
    char from[256], msg[256], seed_s[32];
    size_t count, size, stride;
    if (sscanf(cmd, "await %255s %255s %zu %zu %zu %31s", from, msg, &count, &size, &stride,
               seed_s) != 6 ||
        (count && !sct_fits(t, count, size, stride))) {
        it_sendf(t->ch, "bad command '%s'", cmd);
        return;
    }
    it_sendf(t->ch, "armed");
    if (it_notifs_take(t->agent, &t->notifs, from, msg, strlen(msg), IT_TIMEOUT_MS) != 0) {
        it_sendf(t->ch, "notification '%s' from '%s' did not arrive", msg, from);
        return;
    }
    char why[200];
    if (count && it_slots_verify(t->area, count, size, stride, strtoull(seed_s, NULL, 10), false,
                                 why, sizeof(why)) != 0)
        it_sendf(t->ch, "when '%s' arrived, %s", msg, why);
    else
        it_sendf(t->ch, "ok");
    sct_drop_used(&t->notifs);
}

static void sct_dump(sct_t *t, size_t want)
{
    uint64_t deadline = it_now_ms() + (uint64_t)IT_TIMEOUT_MS;
    while (t->notifs.count < want && it_now_ms() < deadline) {
        if (it_notifs_poll(t->agent, &t->notifs) != 0)
            break;
        if (t->notifs.count < want)
            it_sleep_ms(1);
    }
    it_sleep_ms(IT_EXTRA_NOTIF_MS); /* anything extra would have arrived by now */
    it_notifs_poll(t->agent, &t->notifs);
    size_t cap = 32, len = 0;
    for (size_t i = 0; i < t->notifs.count; i++)
        cap += strlen(t->notifs.items[i].agent) + t->notifs.items[i].len + 2;
    char *out = malloc(cap);
    if (!out) {
        it_sendf(t->ch, "out of memory");
        return;
    }
    len += (size_t)snprintf(out, cap, "%zu\n", t->notifs.count);
    for (size_t i = 0; i < t->notifs.count; i++)
        len += (size_t)snprintf(out + len, cap - len, "%s %s\n", t->notifs.items[i].agent,
                                (const char *)t->notifs.items[i].msg);
    it_send(t->ch, out, len);
    free(out);
    it_notifs_clear(&t->notifs);
}

static void sct_command(sct_t *t, const char *cmd)
{
    size_t count, size, stride, n;
    uint64_t seed, addr;
    char name[256], ip[128], why[200];
    int port;
    if (sscanf(cmd, "fill %zu %zu %zu %" SCNu64, &count, &size, &stride, &seed) == 4 &&
        sct_fits(t, count, size, stride)) {
        it_slots_fill(t->area, count, size, stride, seed, false);
        it_sendf(t->ch, "ok");
    } else if (sscanf(cmd, "verify %zu %zu %zu %" SCNu64, &count, &size, &stride, &seed) == 4 &&
               sct_fits(t, count, size, stride)) {
        if (it_slots_verify(t->area, count, size, stride, seed, false, why, sizeof(why)) != 0)
            it_sendf(t->ch, "%s", why);
        else
            it_sendf(t->ch, "ok");
    } else if (strncmp(cmd, "await ", 6) == 0) {
        sct_await(t, cmd);
    } else if (sscanf(cmd, "dump %zu", &n) == 1) {
        sct_dump(t, n);
    } else if (sscanf(cmd, "fetch %255s %127s %d", name, ip, &port) == 3) {
        if (it_fetch_md(t->agent, name, ip, port, IT_TIMEOUT_MS) != 0)
            it_sendf(t->ch, "fetching '%s' from %s:%d failed: %s", name, ip, port,
                     nixl_last_error());
        else
            it_sendf(t->ch, "ok");
    } else if (sscanf(cmd, "check %255s %" SCNu64 " %zu", name, &addr, &size) == 3) {
        nixl_desc_t d = {.addr = (uintptr_t)addr, .len = size, .dev_id = 0};
        if (it_wait_md(t->agent, name, &d, size ? 1 : 0, IT_TIMEOUT_MS) != 0)
            it_sendf(t->ch, "metadata of '%s' not loaded: %s", name, nixl_last_error());
        else
            it_sendf(t->ch, "ok");
    } else {
        it_sendf(t->ch, "bad command '%s'", cmd);
    }
}

int it_sc_target_role(it_chan_t *ch, const char *arg)
{
    char name[256];
    size_t regions = 0, reg_len = 0, reg_stride = 0;
    sct_t t = {.ch = ch};
    nixl_reg_desc_t *reg = NULL;
    int port = 0, rc = 1;
    if (sscanf(arg, "%255s %zu %zu %zu %zu", name, &t.area_len, &regions, &reg_len,
               &reg_stride) != 5 ||
        !sct_fits(&t, regions, reg_len, reg_stride)) {
        it_fail(__FILE__, __LINE__, "sctarget: bad argument '%s'", arg);
        return 2;
    }
    t.area = it_alloc(t.area_len);
    reg = calloc(regions, sizeof(*reg));
    IT_CHECK(t.area && reg, "out of memory");
    t.agent = it_agent_be(name, it_backend(), true, &port);
    IT_CHECK(t.agent, "agent");
    for (size_t i = 0; i < regions; i++)
        reg[i] = (nixl_reg_desc_t){.addr = (uintptr_t)(t.area + i * reg_stride), .len = reg_len};
    IT_CHECK_ST(nixl_agent_register_mem(t.agent, NIXL_DRAM_SEG, reg, regions, NULL),
                NIXL_SUCCESS);
    IT_CHECK(it_sendf(ch, "%d %" PRIu64, port, (uint64_t)(uintptr_t)t.area) == 0, "send");
    for (;;) {
        /* The initiator may sit in a long scenario between commands; EOF ends us anyway. */
        char *cmd = it_recv_str(ch, 120000);
        if (!cmd)
            break;
        if (strcmp(cmd, "quit") == 0) {
            free(cmd);
            rc = 0;
            break;
        }
        sct_command(&t, cmd);
        free(cmd);
    }
fail:
    it_notifs_clear(&t.notifs);
    nixl_agent_destroy(t.agent);
    free(reg);
    free(t.area);
    return rc;
}

int it_sc_target_start(it_peer_t *p, const char *role, const char *arg, int *port,
                       uint64_t *base)
{
    if (it_peer_spawn(p, role, arg) != 0)
        return -1;
    char *s = it_recv_str(&p->ch, IT_TIMEOUT_MS);
    IT_CHECK(s && sscanf(s, "%d %" SCNu64, port, base) == 2, "target %s sent '%s'", arg,
             s ? s : "nothing");
    free(s);
    return 0;
fail:
    free(s);
    it_peer_cleanup(p);
    return -1;
}

/* ------------------------------------------------------------------------------------------ */
/* The initiator's side of a side-channel target                                               */
/* ------------------------------------------------------------------------------------------ */

nixl_status_t it_req_slots(nixl_agent_t *agent, nixl_xfer_op_t op, const uint8_t *local,
                           uint64_t rbase, size_t count, size_t size, size_t stride,
                           const char *peer, const char *notif, nixl_xfer_req_t **out)
{
    nixl_desc_t *l = calloc(count, sizeof(*l)), *r = calloc(count, sizeof(*r));
    if (!l || !r) {
        free(l);
        free(r);
        it_fail(__FILE__, __LINE__, "out of memory");
        return NIXL_ERR_UNKNOWN;
    }
    for (size_t i = 0; i < count; i++) {
        l[i] = (nixl_desc_t){(uintptr_t)(local + i * size), size, 0};
        r[i] = (nixl_desc_t){(uintptr_t)(rbase + (count - 1 - i) * stride), size, 0};
    }
    nixl_opt_args_t opt;
    nixl_opt_args_init(&opt);
    if (notif)
        it_notif_opt(&opt, notif, strlen(notif));
    nixl_status_t st = nixl_agent_create_xfer_req(agent, op, NIXL_DRAM_SEG, l, count,
                                                  NIXL_DRAM_SEG, r, count, peer, &opt, out);
    free(l);
    free(r);
    return st;
}

nixl_status_t it_post_notif(nixl_agent_t *agent, nixl_xfer_req_t *req, const char *notif)
{
    nixl_opt_args_t opt;
    it_notif_opt(&opt, notif, strlen(notif));
    return it_post_wait(agent, req, &opt, IT_TIMEOUT_MS);
}

int it_sc_send_md(nixl_agent_t *agent, const char *ip, int port)
{
    nixl_opt_args_t opt;
    nixl_opt_args_init(&opt);
    opt.ip_addr = ip;
    opt.port = port;
    IT_CHECK_ST(nixl_agent_send_local_md(agent, &opt), NIXL_SUCCESS);
    return 0;
fail:
    return -1;
}

int it_sc_connect(nixl_agent_t *agent, it_chan_t *ch, const char *name, const char *ip, int port,
                  uint64_t base, size_t size, const void *local, size_t local_len)
{
    IT_CHECK(it_fetch_md(agent, name, ip, port, IT_TIMEOUT_MS) == 0, "fetch %s", name);
    nixl_desc_t all = {(uintptr_t)base, size, 0};
    IT_CHECK_ST(nixl_agent_check_remote_md(agent, name, NIXL_DRAM_SEG, &all, 1), NIXL_SUCCESS);
    IT_CHECK(it_sc_send_md(agent, ip, port) == 0, "send_local_md");
    IT_CHECK(it_cmd(ch, "check %s %" PRIu64 " %zu", nixl_agent_name(agent),
                    (uint64_t)(uintptr_t)local, local_len) == 0,
             "%s did not get our metadata", name);
    return 0;
fail:
    return -1;
}

/* Arm the target: it answers "armed", then waits for `notif` and checks the slots. */
static int sc_arm(nixl_agent_t *agent, it_chan_t *ch, const char *notif, size_t count,
                  size_t size, size_t stride, uint64_t seed)
{
    if (it_sendf(ch, "await %s %s %zu %zu %zu %" PRIu64, nixl_agent_name(agent), notif, count,
                 size, stride, seed) != 0)
        return it_fail(__FILE__, __LINE__, "arming the target: it is gone");
    return it_expect(ch, "armed", IT_TIMEOUT_MS);
}

static int sc_write_checked(nixl_agent_t *agent, it_chan_t *ch, nixl_xfer_req_t *req,
                            uint8_t *local, size_t count, size_t size, size_t stride,
                            const char *notif, uint64_t seed)
{
    it_slots_fill(local, count, size, size, seed, true);
    IT_CHECK(sc_arm(agent, ch, notif, count, size, stride, seed) == 0, "arm");
    nixl_status_t st = it_post_notif(agent, req, notif);
    IT_CHECK(st == NIXL_SUCCESS, "WRITE %s (%zu x %zu): %s (%s)", notif, count, size,
             nixl_status_str(st), nixl_last_error());
    IT_CHECK(it_expect(ch, "ok", IT_TIMEOUT_MS + 5000) == 0, "the target's check of %s", notif);
    return 0;
fail:
    return -1;
}

static int sc_read_checked(nixl_agent_t *agent, it_chan_t *ch, nixl_xfer_req_t *req,
                           uint8_t *local, size_t count, size_t size, size_t stride,
                           const char *notif, uint64_t seed)
{
    char why[200];
    IT_CHECK(it_cmd(ch, "fill %zu %zu %zu %" PRIu64, count, size, stride, seed) == 0, "fill");
    memset(local, 0, count * size);
    IT_CHECK(sc_arm(agent, ch, notif, count, size, stride, seed) == 0, "arm");
    nixl_status_t st = it_post_notif(agent, req, notif);
    IT_CHECK(st == NIXL_SUCCESS, "READ %s (%zu x %zu): %s (%s)", notif, count, size,
             nixl_status_str(st), nixl_last_error());
    IT_CHECK(it_slots_verify(local, count, size, size, seed, true, why, sizeof(why)) == 0,
             "READ %s: %s", notif, why);
    IT_CHECK(it_expect(ch, "ok", IT_TIMEOUT_MS + 5000) == 0, "the target's view of %s", notif);
    return 0;
fail:
    return -1;
}

int it_sc_write_read(nixl_agent_t *agent, it_chan_t *ch, const char *peer, uint8_t *local,
                     uint64_t rbase, size_t count, size_t size, size_t stride, const char *tag,
                     unsigned posts)
{
    nixl_xfer_req_t *w = NULL, *r = NULL;
    char notif[96];
    nixl_status_t st =
        it_req_slots(agent, NIXL_WRITE, local, rbase, count, size, stride, peer, "-", &w);
    IT_CHECK(st == NIXL_SUCCESS, "WRITE request: %s (%s)", nixl_status_str(st),
             nixl_last_error());
    st = it_req_slots(agent, NIXL_READ, local, rbase, count, size, stride, peer, "-", &r);
    IT_CHECK(st == NIXL_SUCCESS, "READ request: %s (%s)", nixl_status_str(st), nixl_last_error());
    for (unsigned k = 0; k < posts; k++) {
        snprintf(notif, sizeof(notif), "W-%s-%u", tag, k);
        IT_CHECK(sc_write_checked(agent, ch, w, local, count, size, stride, notif,
                                  it_seed(count, size, 2 * k)) == 0,
                 "%s", notif);
        snprintf(notif, sizeof(notif), "R-%s-%u", tag, k);
        IT_CHECK(sc_read_checked(agent, ch, r, local, count, size, stride, notif,
                                 it_seed(count, size, 2 * k + 1)) == 0,
                 "%s", notif);
    }
    IT_CHECK_ST(nixl_agent_release_xfer_req(agent, w), NIXL_SUCCESS);
    IT_CHECK_ST(nixl_agent_release_xfer_req(agent, r), NIXL_SUCCESS);
    return 0;
fail:
    if (w)
        nixl_agent_release_xfer_req(agent, w);
    if (r)
        nixl_agent_release_xfer_req(agent, r);
    return -1;
}

char *it_sc_dump(it_chan_t *ch, size_t want, size_t *count)
{
    if (it_sendf(ch, "dump %zu", want) != 0) {
        it_fail(__FILE__, __LINE__, "dump: the target is gone");
        return NULL;
    }
    char *s = it_recv_str(ch, IT_TIMEOUT_MS + 5000);
    if (!s)
        return NULL;
    char *end;
    *count = strtoull(s, &end, 10);
    if (end == s || *end != '\n') {
        it_fail(__FILE__, __LINE__, "dump answered '%.200s'", s);
        free(s);
        return NULL;
    }
    return s;
}

int it_sc_expect_no_notifs(it_chan_t *ch)
{
    size_t n = 0;
    char *s = it_sc_dump(ch, 0, &n);
    IT_CHECK(s && n == 0, "unexpected notifications: %.300s", s ? s : "(no answer)");
    free(s);
    return 0;
fail:
    free(s);
    return -1;
}
