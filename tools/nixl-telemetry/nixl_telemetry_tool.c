/*
 * nixl-telemetry - read an agent's telemetry ring (the BUFFER exporter's file, layout in
 * include/nixl_telemetry.h): a summary of the events waiting, or every event as it comes.
 *
 *   nixl-telemetry [--dir DIR] [--follow] [--json] [--interval MS] [--count N] AGENT|FILE
 *
 * Reading consumes: the ring has one reader, and this tool advances its read position.
 * Exit status: 0; 1 when the file is missing (without --follow), of another version or not a
 * telemetry ring; 2 for bad arguments.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "nixl_telemetry.h"
#include "ring_read.h"

static const struct {
    const char *name, *unit;
} catalogue[NIXL_TELEM_EVENT_COUNT] = {
#define ENTRY_(s, id, name, unit) [id] = {name, unit},
    NIXL_TELEMETRY_EVENT_MAP(ENTRY_)
#undef ENTRY_
};

typedef struct ring {
    uint8_t *map;
    size_t len;
    ring_view_t view;
    dev_t dev;
    ino_t ino;
} ring_t;

static volatile sig_atomic_t stop;

/* A writer that shrinks the file under our mapping makes the next read of a page past its end
 * fault (SIGBUS): while we read the ring, that ends the read instead of the process. */
static sigjmp_buf bus_jump;
static volatile sig_atomic_t bus_armed;

static void on_bus(int sig)
{
    if (bus_armed) {
        bus_armed = 0;
        siglongjmp(bus_jump, 1);
    }
    signal(sig, SIG_DFL); /* a fault of ours: the default action, with a core */
    raise(sig);
}

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void ring_close(ring_t *r)
{
    if (r->map)
        munmap(r->map, r->len);
    memset(r, 0, sizeof(*r));
}

/* 0: mapped; 1: not there yet (ENOENT) or being initialised (version 0), `why` says which;
 * -1: unusable, `why` says why. The header checks are ring_read.c's. */
static int ring_open(ring_t *r, const char *path, char *why, size_t why_len)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, why_len, "%s: %s", path, strerror(errno));
        return errno == ENOENT ? 1 : -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        snprintf(why, why_len, "%s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(why, why_len, "%s: not a regular file", path);
        close(fd);
        return -1;
    }
    if ((size_t)st.st_size < NIXL_TELEMETRY_RING_HEADER_SIZE) {
        close(fd);
        return ring_view_attach(&r->view, NULL, (size_t)st.st_size, path, why, why_len);
    }
    uint8_t *m = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED) {
        snprintf(why, why_len, "%s: cannot map: %s", path, strerror(errno));
        return -1;
    }
    int rc = ring_view_attach(&r->view, m, (size_t)st.st_size, path, why, why_len);
    if (rc != 0) {
        munmap(m, (size_t)st.st_size);
        return rc;
    }
    r->map = m;
    r->len = (size_t)st.st_size;
    r->dev = st.st_dev;
    r->ino = st.st_ino;
    return 0;
}

/* Whether the file was replaced or re-created with another size since we mapped it. */
static bool ring_stale(const ring_t *r, const char *path)
{
    struct stat st;
    return stat(path, &st) != 0 || st.st_ino != r->ino || st.st_dev != r->dev ||
           (size_t)st.st_size != r->len;
}

typedef struct stat_row {
    uint64_t count, sum, min, max, last;
} stat_row_t;

typedef struct summary {
    stat_row_t rows[NIXL_TELEM_EVENT_COUNT];
    uint64_t unknown;
} summary_t;

static void summary_add(void *ctx, const nixl_telemetry_event_t *ev)
{
    summary_t *sum = ctx;
    if (ev->id >= NIXL_TELEM_EVENT_COUNT) {
        sum->unknown++;
        return;
    }
    stat_row_t *s = &sum->rows[ev->id];
    s->min = s->count ? (ev->value < s->min ? ev->value : s->min) : ev->value;
    s->max = ev->value > s->max ? ev->value : s->max;
    s->sum += ev->value;
    s->last = ev->value;
    s->count++;
}

static void print_event(const char *agent, const nixl_telemetry_event_t *ev, bool json)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    const char *name = ev->id < NIXL_TELEM_EVENT_COUNT ? catalogue[ev->id].name : "unknown";
    const char *unit = ev->id < NIXL_TELEM_EVENT_COUNT ? catalogue[ev->id].unit : "";
    if (json)
        printf("{\"agent\":\"%s\",\"time_ms\":%" PRIu64 ",\"id\":%u,\"event\":\"%s\","
               "\"value\":%" PRIu64 ",\"unit\":\"%s\"}\n",
               agent, ms, ev->id, name, ev->value, unit);
    else
        printf("%" PRIu64 ".%03u %-32s %12" PRIu64 " %s\n", ms / 1000, (unsigned)(ms % 1000),
               name, ev->value, unit);
}

/* The summary of what waits (one lap at most); false when the file shrank under us. */
static bool summary_read(ring_t *r, summary_t *sum)
{
    if (sigsetjmp(bus_jump, 1))
        return false;
    bus_armed = 1;
    ring_view_drain(&r->view, summary_add, sum);
    bus_armed = 0;
    return true;
}

/* Print the events waiting; how many, or -1 when the file shrank under us. *done once
 * `max_count` (if not 0) events were printed in all (`seen`). */
static long follow_batch(ring_t *r, const char *agent, bool json, uint64_t *seen,
                         uint64_t max_count, bool *done)
{
    volatile long n = 0;
    if (sigsetjmp(bus_jump, 1))
        return -1;
    nixl_telemetry_event_t ev;
    bus_armed = 1;
    while (!stop && ring_view_take(&r->view, &ev)) {
        bus_armed = 0; /* printing touches no mapping */
        n++;
        print_event(agent, &ev, json);
        if (max_count && ++*seen >= max_count) {
            *done = true;
            break;
        }
        bus_armed = 1;
    }
    bus_armed = 0;
    return n;
}

static void print_summary(const char *agent, const stat_row_t *rows, bool json)
{
    if (!json)
        printf("%-32s %10s %16s %12s %12s %12s  %s\n", "event", "count", "sum", "min", "max",
               "last", "unit");
    for (unsigned i = 0; i < NIXL_TELEM_EVENT_COUNT; i++) {
        const stat_row_t *s = &rows[i];
        if (!s->count)
            continue;
        if (json)
            printf("{\"agent\":\"%s\",\"id\":%u,\"event\":\"%s\",\"unit\":\"%s\",\"count\":%" PRIu64
                   ",\"sum\":%" PRIu64 ",\"min\":%" PRIu64 ",\"max\":%" PRIu64 ",\"last\":%" PRIu64
                   "}\n",
                   agent, i, catalogue[i].name, catalogue[i].unit, s->count, s->sum, s->min,
                   s->max, s->last);
        else
            printf("%-32s %10" PRIu64 " %16" PRIu64 " %12" PRIu64 " %12" PRIu64 " %12" PRIu64
                   "  %s\n",
                   catalogue[i].name, s->count, s->sum, s->min, s->max, s->last,
                   catalogue[i].unit);
    }
}

/* The agent name: the file's last path component. A JSON string needs no escaping for the
 * names we print unless they hold quotes or backslashes; those are replaced. */
static void agent_label(const char *path, char *out, size_t len)
{
    const char *slash = strrchr(path, '/');
    snprintf(out, len, "%s", slash ? slash + 1 : path);
    for (char *p = out; *p; p++)
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
            *p = '_';
}

static void usage(FILE *f, const char *argv0)
{
    fprintf(f,
            "usage: %s [--dir DIR] [--follow] [--json] [--interval MS] [--count N] AGENT|FILE\n"
            "  Reads (and consumes) the telemetry ring of an agent: the file AGENT in DIR\n"
            "  (default $NIXL_TELEMETRY_DIR), or FILE when it contains a '/'.\n"
            "  without --follow: a summary of the events waiting (count, sum, min, max, last)\n"
            "  --follow        print every event as it arrives (waits for the file to appear)\n"
            "  --json          JSON lines instead of a table\n"
            "  --interval MS   polling period with --follow (default 100)\n"
            "  --count N       with --follow: stop after N events\n",
            argv0);
}

static bool parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end || errno || *s == '-')
        return false;
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    const char *dir = getenv("NIXL_TELEMETRY_DIR"), *target = NULL;
    bool follow = false, json = false;
    uint64_t interval_ms = 100, max_count = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else if (strcmp(argv[i], "--follow") == 0 || strcmp(argv[i], "-f") == 0) {
            follow = true;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "--interval") == 0 && i + 1 < argc) {
            if (!parse_u64(argv[++i], &interval_ms) || !interval_ms || interval_ms > 60000) {
                fprintf(stderr, "%s: --interval takes 1 to 60000 (ms)\n", argv[0]);
                return 2;
            }
        } else if (strcmp(argv[i], "--count") == 0 && i + 1 < argc) {
            if (!parse_u64(argv[++i], &max_count) || !max_count) {
                fprintf(stderr, "%s: --count takes a positive number\n", argv[0]);
                return 2;
            }
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout, argv[0]);
            return 0;
        } else if (argv[i][0] != '-' && !target) {
            target = argv[i];
        } else {
            usage(stderr, argv[0]);
            return 2;
        }
    }
    if (!target) {
        usage(stderr, argv[0]);
        return 2;
    }
    char path[4096];
    if (strchr(target, '/')) {
        snprintf(path, sizeof(path), "%s", target);
    } else if (dir && *dir) {
        if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, target) >= sizeof(path)) {
            fprintf(stderr, "%s: path too long\n", argv[0]);
            return 2;
        }
    } else {
        fprintf(stderr, "%s: no directory: pass --dir or set NIXL_TELEMETRY_DIR\n", argv[0]);
        return 2;
    }
    char agent[256];
    agent_label(path, agent, sizeof(agent));
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    struct sigaction bus = {.sa_handler = on_bus};
    sigaction(SIGBUS, &bus, NULL);
    setvbuf(stdout, NULL, _IOLBF, 0);

    ring_t ring = {0};
    char why[4352];
    struct timespec nap = {.tv_sec = (time_t)(interval_ms / 1000),
                           .tv_nsec = (long)(interval_ms % 1000) * 1000000L};
    if (!follow) {
        if (ring_open(&ring, path, why, sizeof(why)) != 0) {
            fprintf(stderr, "nixl-telemetry: %s\n", why);
            return 1;
        }
        summary_t sum = {0};
        if (!summary_read(&ring, &sum)) {
            fprintf(stderr, "nixl-telemetry: %s: the file shrank while it was read\n", path);
            ring_close(&ring);
            return 1;
        }
        print_summary(agent, sum.rows, json);
        if (sum.unknown)
            fprintf(stderr, "nixl-telemetry: %" PRIu64 " events of unknown ids skipped\n",
                    sum.unknown);
        ring_close(&ring);
        return 0;
    }

    uint64_t seen = 0;
    bool told = false;
    while (!stop) {
        if (!ring.map) {
            int rc = ring_open(&ring, path, why, sizeof(why));
            if (rc < 0) {
                fprintf(stderr, "nixl-telemetry: %s\n", why);
                return 1;
            }
            if (rc > 0) {
                if (!told)
                    fprintf(stderr, "nixl-telemetry: waiting: %s\n", why);
                told = true;
                nanosleep(&nap, NULL);
                continue;
            }
        }
        if (ring_stale(&ring, path)) {
            /* a new writer re-created or resized the file: map it again before reading (a
             * mapping past a shrunken file's end would fault) */
            ring_close(&ring);
            continue;
        }
        bool done = false;
        long any = follow_batch(&ring, agent, json, &seen, max_count, &done);
        if (any < 0) {
            fprintf(stderr, "nixl-telemetry: %s: the file shrank while it was read: mapping "
                    "it again\n", path);
            ring_close(&ring);
            continue;
        }
        if (done) {
            ring_close(&ring);
            return 0;
        }
        if (!any)
            nanosleep(&nap, NULL);
    }
    ring_close(&ring);
    return 0;
}
