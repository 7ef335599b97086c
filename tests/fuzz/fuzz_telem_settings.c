/*
 * fuzz_telem_settings.c - libFuzzer target for the telemetry variables an agent reads from its
 * environment (src/telemetry/telem_settings.c): NIXL_TELEMETRY_BUFFER_SIZE and _RUN_INTERVAL
 * (numbers) and _ENABLED_METRICS (a comma-separated glob allowlist over event names), with
 * _EXPORTER beside them.
 *
 * The input is split at newlines into BUFFER_SIZE, RUN_INTERVAL, ENABLED_METRICS and EXPORTER
 * (a NUL ends a value, as the environment would; a missing line leaves the variable unset).
 * Accepted settings are in range and a plain decimal number reads as itself; refused ones say
 * why. The allowlist's mask has only event bits, every exact event name in the list sets its
 * bit, and it is computed in bounded time (-timeout).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "telem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "fuzz_telem_settings: %s:%d: check failed: %s\n", __FILE__,  \
                    __LINE__, #cond);                                                   \
            abort();                                                                    \
        }                                                                               \
    } while (0)

static const char *const names[NIXL_TELEM_EVENT_COUNT] = {
#define NAME_(s, id, name, unit) [id] = name,
    NIXL_TELEMETRY_EVENT_MAP(NAME_)
#undef NAME_
};

static const char *const vars[] = {"NIXL_TELEMETRY_BUFFER_SIZE", "NIXL_TELEMETRY_RUN_INTERVAL",
                                   "NIXL_TELEMETRY_ENABLED_METRICS", "NIXL_TELEMETRY_EXPORTER"};
#define NVARS (sizeof(vars) / sizeof(vars[0]))

/* A value of decimal digits only, without a leading zero: what it must read as. */
static bool plain_decimal(const char *s, uint64_t *out)
{
    if (!*s || *s == '0' || strlen(s) > 19)
        return false;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    *out = strtoull(s, NULL, 10);
    return true;
}

/* Whether the comma-separated list holds `name` as a whole entry (blanks around it ignored). */
static bool lists_exactly(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; p;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (strncmp(p, name, n) == 0) {
            const char *q = p + n;
            while (*q == ' ' || *q == '\t')
                q++;
            if (*q == ',' || *q == '\0')
                return true;
        }
        p = strchr(p, ',');
        if (p)
            p++;
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool once;
    if (!once) {
        setenv("NIXL_LOG_LEVEL", "ERROR", 1); /* no warning per unmatched glob */
        setenv("NIXL_TELEMETRY_ENABLE", "y", 1);
        unsetenv("NIXL_TELEMETRY_DIR");
        once = true;
    }
    char *copy = malloc(size + 1);
    CHECK(copy);
    memcpy(copy, data, size);
    copy[size] = '\0';
    const char *val[NVARS] = {NULL};
    char *p = copy;
    for (size_t i = 0; i < NVARS && p; i++) {
        char *nl = strchr(p, '\n');
        if (nl)
            *nl = '\0';
        val[i] = p;
        p = nl ? nl + 1 : NULL;
    }
    /* putenv with a buffer of our own per variable: setenv would keep every value it was
     * given for the life of the process (glibc never frees them) */
    static char env[NVARS][4160];
    for (size_t i = 0; i < NVARS; i++) {
        unsetenv(vars[i]);
        if (val[i]) {
            snprintf(env[i], sizeof(env[i]), "%s=%.4096s", vars[i], val[i]);
            val[i] = strchr(env[i], '=') + 1; /* what the library sees (cut at 4096 bytes) */
            CHECK(putenv(env[i]) == 0);
        }
    }

    nixl_telem_settings_t s;
    memset(&s, 0xa5, sizeof(s));
    nixl_err_clear();
    nixl_status_t st = nixl_telem_settings_read(false, "fuzz", &s);
    if (st != NIXL_SUCCESS) {
        CHECK(st < 0);
        CHECK(nixl_err_text()[0] != '\0');
    } else {
        CHECK(s.enabled);
        CHECK(s.buffer_size >= 1 && s.buffer_size <= (1ull << 24));
        CHECK(s.run_interval_ms >= 1 && s.run_interval_ms <= 3600u * 1000u);
        CHECK(memchr(s.exporter, '\0', sizeof(s.exporter)) != NULL);
        uint64_t v;
        if (val[0] && plain_decimal(val[0], &v))
            CHECK(s.buffer_size == v);
        if (val[1] && plain_decimal(val[1], &v))
            CHECK(s.run_interval_ms == v);
    }
    /* the allowlist on its own */
    const char *list = val[2] ? val[2] : "";
    uint32_t mask = nixl_telem_metrics_mask(list, "fuzz");
    CHECK((mask >> NIXL_TELEM_EVENT_COUNT) == 0);
    if (!*list)
        CHECK(mask == (1u << NIXL_TELEM_EVENT_COUNT) - 1);
    for (unsigned i = 0; i < NIXL_TELEM_EVENT_COUNT; i++)
        if (lists_exactly(list, names[i]))
            CHECK(mask & (1u << i));
    if (st == NIXL_SUCCESS)
        CHECK(s.enabled_mask == mask);
    free(copy);
    return 0;
}
