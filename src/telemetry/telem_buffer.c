/*
 * telem_buffer.c - the BUFFER exporter: the shared-memory ring of nixl_telemetry.h (reference
 * NIXL-SEMANTICS 8.3) in the file <NIXL_TELEMETRY_DIR>/<agent name>, which a reader maps and
 * consumes (tools/nixl-telemetry). We are its only writer: the agent's exporter thread.
 *
 * Unlike the reference, events the ring has no room for are counted, and the count is written
 * as an agent_telemetry_events_dropped event as soon as there is room (docs/differences.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "error.h"
#include "log.h"
#include "telem.h"

typedef struct ring_exp {
    nixl_telemetry_ring_header_t *hdr;
    nixl_telemetry_event_t *events;
    size_t map_len;
    uint64_t mask;
    uint64_t pending_drops; /* not written yet: the ring was full */
} ring_exp_t;

static bool ring_put(ring_exp_t *r, const nixl_telemetry_event_t *ev)
{
    uint64_t w = __atomic_load_n(&r->hdr->write_pos, __ATOMIC_RELAXED) & r->mask;
    uint64_t next = (w + 1) & r->mask;
    if (next == (__atomic_load_n(&r->hdr->read_pos, __ATOMIC_ACQUIRE) & r->mask))
        return false; /* full */
    r->events[w] = (nixl_telemetry_event_t){.id = ev->id, .pad = 0, .value = ev->value};
    __atomic_store_n(&r->hdr->write_pos, next, __ATOMIC_RELEASE);
    return true;
}

static void ring_export(void *exp, const nixl_telemetry_event_t *ev, size_t n)
{
    ring_exp_t *r = exp;
    if (r->pending_drops) {
        nixl_telemetry_event_t d = {.id = NIXL_TELEM_TELEMETRY_EVENTS_DROPPED,
                                    .value = r->pending_drops};
        if (ring_put(r, &d))
            r->pending_drops = 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (ring_put(r, &ev[i]))
            continue;
        /* a drop report that does not fit carries its count on; any other event is one more */
        r->pending_drops += ev[i].id == NIXL_TELEM_TELEMETRY_EVENTS_DROPPED ? ev[i].value : 1;
    }
}

static nixl_status_t ring_create(const nixl_telemetry_exporter_init_t *init, void **out)
{
    const char *agent = init->agent_name;
    uint64_t capacity = init->capacity;
    if (capacity < 2 || (capacity & (capacity - 1)))
        return nixl_err(NIXL_ERR_INVALID_PARAM, "NIXL_TELEMETRY_BUFFER_SIZE=%llu: the BUFFER "
                        "exporter needs a power of two (2, 4, ... 4096 ...)",
                        (unsigned long long)capacity);
    if (!*agent || strchr(agent, '/') || strcmp(agent, ".") == 0 || strcmp(agent, "..") == 0)
        return nixl_err(NIXL_ERR_INVALID_PARAM, "telemetry exporter BUFFER: the agent name "
                        "'%s' cannot name a file in NIXL_TELEMETRY_DIR", agent);
    char *dir = NULL;
    nixl_status_t st = nixl_config_string("NIXL_TELEMETRY_DIR", &dir);
    if (st != NIXL_SUCCESS)
        return st;
    if (!dir || !*dir) {
        free(dir);
        return nixl_err(NIXL_ERR_INVALID_PARAM, "telemetry exporter BUFFER: set "
                        "NIXL_TELEMETRY_DIR to the directory of its files");
    }
    size_t plen = strlen(dir) + 1 + strlen(agent) + 1;
    char *path = malloc(plen);
    ring_exp_t *r = calloc(1, sizeof(*r));
    if (!path || !r) {
        st = nixl_err_oom("telemetry ring of agent '%s'", agent);
        goto free_path;
    }
    snprintf(path, plen, "%s/%s", dir, agent);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
        st = nixl_err(errno == ENOENT ? NIXL_ERR_NOT_FOUND : NIXL_ERR_BACKEND,
                      "telemetry exporter BUFFER: cannot open %s: %s", path, strerror(errno));
        goto free_path;
    }
    r->map_len = NIXL_TELEMETRY_RING_HEADER_SIZE + capacity * NIXL_TELEMETRY_RING_EVENT_SIZE;
    if (ftruncate(fd, (off_t)r->map_len) != 0) {
        st = nixl_err(NIXL_ERR_BACKEND, "telemetry exporter BUFFER: cannot size %s to %zu "
                      "bytes: %s", path, r->map_len, strerror(errno));
        goto close_fd;
    }
    void *map = mmap(NULL, r->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        st = nixl_err(NIXL_ERR_BACKEND, "telemetry exporter BUFFER: cannot map %s: %s", path,
                      strerror(errno));
        goto close_fd;
    }
    close(fd);
    r->hdr = map;
    r->events = (nixl_telemetry_event_t *)((char *)map + NIXL_TELEMETRY_RING_HEADER_SIZE);
    r->mask = capacity - 1;
    /* A reader that maps the file now sees no version until the header is whole. */
    __atomic_store_n(&r->hdr->version, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&r->hdr->write_pos, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&r->hdr->read_pos, 0, __ATOMIC_RELAXED);
    r->hdr->expected_version = NIXL_TELEMETRY_RING_VERSION;
    r->hdr->capacity = capacity;
    r->hdr->mask = capacity - 1;
    __atomic_store_n(&r->hdr->version, NIXL_TELEMETRY_RING_VERSION, __ATOMIC_RELEASE);
    NIXL_INFO("agent '%s': telemetry ring %s (%llu events)", agent, path,
              (unsigned long long)capacity);
    free(path);
    free(dir);
    *out = r;
    return NIXL_SUCCESS;

close_fd:
    close(fd);
free_path:
    free(r);
    free(path);
    free(dir);
    return st;
}

static void ring_destroy(void *exp)
{
    ring_exp_t *r = exp;
    if (!r)
        return;
    if (r->pending_drops)
        NIXL_INFO("telemetry ring: %llu events dropped at the end (no reader drained it)",
                  (unsigned long long)r->pending_drops);
    munmap(r->hdr, r->map_len); /* the file stays for readers */
    free(r);
}

const nixl_telemetry_exporter_ops_t nixl_telem_buffer_exporter = {
    .struct_size = sizeof(nixl_telemetry_exporter_ops_t),
    .abi_version = NIXL_TELEMETRY_EXPORTER_ABI_VERSION,
    .min_abi = 1,
    .name = "BUFFER",
    .version = "built in",
    .create = ring_create,
    .export_events = ring_export,
    .destroy = ring_destroy,
};
