/* prom_store.c - reading the prometheus_mp stores (prom_store.h). */
#include "prom_store.h"

#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * Read with pread, not through a mapping: a store is a file of the directory that any process
 * allowed to write there can truncate, and reading a truncated mapping is SIGBUS. The sequence
 * counter lies before the values, so a copy whose counter was even and is the same when read
 * again after the copy saw no write (a seqlock read through the page cache).
 */
static bool store_snapshot(int fd, mp_store_t *out)
{
    for (int tries = 0; tries < 100; tries++) {
        if (pread(fd, out, sizeof(*out), 0) != (ssize_t)sizeof(*out))
            return false;
        if (memcmp(out->magic, MP_MAGIC, sizeof(MP_MAGIC)) != 0 || out->version != MP_VERSION)
            return false;
        uint64_t before = atomic_load(&out->seq), after = 0;
        if (before & 1) {
            sched_yield();
            continue;
        }
        if (pread(fd, &after, sizeof(after), offsetof(mp_store_t, seq)) != (ssize_t)sizeof(after))
            return false;
        if (after == before)
            return true;
    }
    return false;
}

bool mp_store_read(int fd, mp_store_t *out)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size != sizeof(mp_store_t) ||
        !store_snapshot(fd, out))
        return false;
    out->agent[sizeof(out->agent) - 1] = '\0';
    out->hostname[sizeof(out->hostname) - 1] = '\0';
    out->local_rank[sizeof(out->local_rank) - 1] = '\0';
    /* bounds as prom_bounds_parse gives them: a repeated one would render one series twice,
     * and Prometheus then refuses the whole scrape, every other agent's series with it */
    const prom_bounds_t *b = &out->bounds;
    if (b->n == 0 || b->n > MP_MAX_BOUNDS || b->le[0] == 0)
        return false;
    for (size_t i = 1; i < b->n; i++)
        if (b->le[i] <= b->le[i - 1])
            return false;
    return true;
}

void mp_store_labels(const mp_store_t *s, prom_labels_t *out)
{
    char pid[16], inst[16];
    snprintf(pid, sizeof(pid), "%d", (int)s->pid);
    snprintf(inst, sizeof(inst), "%u", s->instance);
    const char *names[] = {"pid", "agent_instance", "local_rank"};
    const char *values[] = {pid, inst, s->local_rank};
    prom_labels_make(out, s->hostname, s->agent, names, values, s->local_rank[0] ? 3 : 2);
}
