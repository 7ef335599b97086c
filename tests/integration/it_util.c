/* it_util.c - NIXL helpers of the integration programs (see it_util.h). */
#include "it_util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------ */
/* Agents                                                                                      */
/* ------------------------------------------------------------------------------------------ */

nixl_agent_t *it_agent(const char *name, uint64_t async_threshold)
{
    nixl_agent_t *agent = NULL;
    nixl_backend_t *be;
    char thr[32];
    snprintf(thr, sizeof(thr), "%" PRIu64, async_threshold);
    nixl_param_t param = {"async_threshold", thr};
    IT_CHECK_ST(nixl_agent_create(name, NULL, &agent), NIXL_SUCCESS);
    IT_CHECK_ST(nixl_agent_create_backend(agent, "SHM", &param, 1, &be), NIXL_SUCCESS);
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
    it_sleep_ms(300); /* anything extra would have arrived by now */
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

int it_target_role(it_chan_t *ch, const char *arg)
{
    char name[256];
    size_t size = 0;
    if (sscanf(arg, "%255s %zu", name, &size) != 2 || !size) {
        it_fail(__FILE__, __LINE__, "target: bad argument '%s'", arg);
        return 2;
    }
    uint8_t *buf = it_alloc(size);
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
        } else {
            it_sendf(ch, "bad command '%s'", cmd);
        }
        free(cmd);
    }
    it_notifs_clear(&notifs);
    nixl_agent_destroy(agent);
    free(buf);
    return rc;
}

int it_target_start(it_peer_t *p, const char *name, size_t size, nixl_agent_t *agent,
                    uint64_t *addr)
{
    char arg[300];
    snprintf(arg, sizeof(arg), "%s %zu", name, size);
    if (it_peer_spawn(p, "target", arg) != 0)
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
