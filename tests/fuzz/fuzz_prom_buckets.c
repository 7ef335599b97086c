/*
 * fuzz_prom_buckets.c - libFuzzer target for NIXL_TELEMETRY_HISTOGRAM_BUCKETS_US, the bucket
 * list of the Prometheus exporters (prom_bounds_parse, plugins/telemetry_prometheus).
 *
 * The input (to its first NUL) is the list, parsed with the single-process limit (64) and the
 * multi-process one (32). A list refused says why; a list accepted has 1..limit positive,
 * strictly increasing bounds, a list of plain decimals is accepted exactly when it is strictly
 * increasing, positive and within the limit, and observations spread over its buckets render as
 * an exposition Prometheus's parser takes (prom_expo_check.h) with cumulative counts that end
 * at the number observed.
 */
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prom_expo_check.h"
#include "prom_metrics.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "fuzz_prom_buckets: %s:%d: check failed: %s\n", __FILE__,    \
                    __LINE__, #cond);                                                   \
            abort();                                                                    \
        }                                                                               \
    } while (0)

/* The plain-decimal oracle: -1 not plain; 0 plain but must be refused; 1 must be accepted. */
static int oracle(const char *text, size_t max)
{
    size_t n = 0;
    uint64_t prev = 0;
    const char *p = text;
    if (!*p)
        return 1; /* the defaults */
    for (;;) {
        if (*p < '1' || *p > '9')
            return -1;
        const char *q = p;
        while (*q >= '0' && *q <= '9')
            q++;
        if (q - p > 18 || (*q != ',' && *q != '\0'))
            return -1;
        uint64_t v = strtoull(p, NULL, 10);
        if ((n && v <= prev) || ++n > max)
            return 0;
        prev = v;
        if (!*q)
            return 1;
        p = q + 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    CHECK(text);
    memcpy(text, data, size);
    text[size] = '\0';
    const size_t limits[2] = {PROM_MAX_BOUNDS, 32};
    for (int k = 0; k < 2; k++) {
        prom_bounds_t b;
        memset(&b, 0xa5, sizeof(b));
        char why[256] = "";
        bool ok = prom_bounds_parse(text, limits[k], &b, why, sizeof(why));
        int want = oracle(text, limits[k]);
        if (want >= 0)
            CHECK(ok == (want == 1));
        if (!ok) {
            CHECK(why[0] != '\0');
            continue;
        }
        CHECK(b.n >= 1 && b.n <= limits[k]);
        for (size_t i = 0; i < b.n; i++)
            CHECK(b.le[i] > 0 && (i == 0 || b.le[i] > b.le[i - 1]));
        /* observations: one at, one past each bound, and the input's bytes as values */
        prom_values_t v;
        memset(&v, 0, sizeof(v));
        uint64_t observed = 0;
        for (size_t i = 0; i < b.n; i++) {
            nixl_telemetry_event_t ev[2] = {{.id = NIXL_TELEM_XFER_TIME, .value = b.le[i]},
                                            {.id = NIXL_TELEM_XFER_POST_TIME,
                                             .value = b.le[i] + 1}};
            prom_values_add(&v, &b, ev, 2);
            observed++;
        }
        for (size_t i = 0; i < size && i < 64; i++) {
            nixl_telemetry_event_t ev = {.id = NIXL_TELEM_XFER_TIME, .value = data[i] * 997u};
            prom_values_add(&v, &b, &ev, 1);
            observed++;
        }
        CHECK(v.xfer_time.count == observed);
        uint64_t sum = 0;
        for (size_t i = 0; i <= b.n; i++)
            sum += v.xfer_time.counts[i];
        CHECK(sum == observed);
        prom_labels_t l;
        prom_labels_make(&l, "fuzz-host", "fuzz-agent", NULL, NULL, 0);
        const prom_labels_t *lp = &l;
        const prom_values_t *vp = &v;
        const prom_bounds_t *bp = &b;
        nixl_buf_t out;
        nixl_buf_init(&out, 0);
        prom_render(&out, &lp, &vp, &bp, 1);
        CHECK(!out.oom);
        expo_check((const char *)out.data, out.len);
        /* the +Inf bucket of agent_xfer_time_us carries every observation */
        char inf[128];
        snprintf(inf, sizeof(inf), "agent_xfer_time_us_bucket{%s,le=\"+Inf\"} %" PRIu64 "\n",
                 l.text, observed);
        nixl_buf_append_u8(&out, 0);
        CHECK(strstr((const char *)out.data, inf) != NULL);
        nixl_buf_free(&out);
    }
    free(text);
    return 0;
}
