/*
 * fuzz_prom_store.c - libFuzzer target for the store files of the `prometheus_mp` exporter
 * (mp_store_read, plugins/telemetry_prometheus/prom_store.c): the serving process reads every
 * nixl-store.* file of a directory other processes write, with pread, and renders them all in
 * one scrape, so one hostile store must neither crash it nor spoil the others' series.
 *
 * The first byte picks the file's shape: mostly the input laid over a store of the exact size
 * with a good magic and version (so the fuzzer reaches the contents), sometimes the raw input
 * after the first byte (any size, any magic). The file is a memfd read through mp_store_read. A store read is
 * rendered beside a well-formed one, and the exposition must pass prom_expo_check.h; with its
 * bounds, it observes a value past the last bound.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "prom_expo_check.h"
#include "prom_store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "fuzz_prom_store: %s:%d: check failed: %s\n", __FILE__,     \
                    __LINE__, #cond);                                                   \
            abort();                                                                    \
        }                                                                               \
    } while (0)

static int fd = -1;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fd < 0) {
        fd = memfd_create("fuzz-store", MFD_CLOEXEC);
        CHECK(fd >= 0);
    }
    mp_store_t img;
    const void *file = size ? data + 1 : data; /* raw: the input after its first byte */
    size_t len = size ? size - 1 : 0;
    if (size == 0 || data[0] % 8 != 0) {
        /* the input over a store: magic and version right, seq even */
        memset(&img, 0, sizeof(img));
        memcpy(&img, data + (size ? 1 : 0), size > 1 ? (size - 1 < sizeof(img) ? size - 1
                                                                              : sizeof(img))
                                                      : 0);
        memcpy(img.magic, MP_MAGIC, sizeof(MP_MAGIC));
        img.version = MP_VERSION;
        atomic_store(&img.seq, atomic_load(&img.seq) & ~1ull);
        file = &img;
        len = sizeof(img);
    }
    CHECK(ftruncate(fd, 0) == 0);
    CHECK(pwrite(fd, file, len, 0) == (ssize_t)len);

    mp_store_t *s = malloc(sizeof(*s));
    CHECK(s);
    if (!mp_store_read(fd, s)) {
        free(s);
        return 0;
    }
    CHECK(len == sizeof(mp_store_t));
    CHECK(memchr(s->agent, '\0', sizeof(s->agent)) && memchr(s->hostname, '\0',
                                                              sizeof(s->hostname)));
    CHECK(s->bounds.n <= MP_MAX_BOUNDS);

    /* beside a well-formed agent of another process */
    mp_store_t *good = calloc(1, sizeof(*good));
    CHECK(good);
    char why[128];
    CHECK(prom_bounds_parse(NULL, MP_MAX_BOUNDS, &good->bounds, why, sizeof(why)));
    snprintf(good->agent, sizeof(good->agent), "good-agent");
    snprintf(good->hostname, sizeof(good->hostname), "good-host");
    good->pid = s->pid == 4242 ? 4243 : 4242;
    nixl_telemetry_event_t ev = {.id = NIXL_TELEM_XFER_TIME, .value = UINT64_MAX};
    prom_values_add(&s->values, &s->bounds, &ev, 1);
    prom_labels_t labels[2];
    mp_store_labels(s, &labels[0]);
    mp_store_labels(good, &labels[1]);
    const prom_labels_t *l[2] = {&labels[0], &labels[1]};
    const prom_values_t *v[2] = {&s->values, &good->values};
    const prom_bounds_t *b[2] = {&s->bounds, &good->bounds};
    nixl_buf_t out;
    nixl_buf_init(&out, 0);
    prom_render(&out, l, v, b, 2);
    CHECK(!out.oom);
    expo_check((const char *)out.data, out.len);
    nixl_buf_free(&out);
    free(good);
    free(s);
    return 0;
}
