/*
 * telem_settings.c - the telemetry variables of reference NIXL-SEMANTICS 8.1, read from the
 * environment or the configuration file: bytes from outside, checked here (and fuzzed:
 * tests/fuzz/fuzz_telem_settings.c).
 */
#include "telem.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "error.h"
#include "log.h"

#define DEFAULT_BUFFER_SIZE 4096u
#define DEFAULT_RUN_INTERVAL_MS 100u
#define MAX_BUFFER_SIZE (1ull << 24) /* 16 Mi events: 256 MiB of ring */
#define MAX_RUN_INTERVAL_MS (3600u * 1000u)
#define ALL_EVENTS ((uint32_t)((1ull << NIXL_TELEM_EVENT_COUNT) - 1))

static const char *const event_names[NIXL_TELEM_EVENT_COUNT] = {
#define NAME_(s, id, name, unit) [id] = name,
    NIXL_TELEMETRY_EVENT_MAP(NAME_)
#undef NAME_
};

uint32_t nixl_telem_metrics_mask(const char *list, const char *agent)
{
    if (!list || !*list)
        return ALL_EVENTS;
    uint32_t mask = 0;
    const char *p = list;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len && (*p == ' ' || *p == '\t'))
            p++, len--;
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len) {
            char tok[128];
            bool matched = false;
            if (len < sizeof(tok)) {
                memcpy(tok, p, len);
                tok[len] = '\0';
                for (unsigned i = 0; i < NIXL_TELEM_EVENT_COUNT; i++)
                    if (fnmatch(tok, event_names[i], 0) == 0) {
                        mask |= 1u << i;
                        matched = true;
                    }
            }
            if (!matched)
                NIXL_WARN("agent '%s': NIXL_TELEMETRY_ENABLED_METRICS: '%.*s' matches no "
                          "telemetry event", agent, (int)len, p);
        }
        if (!end)
            break;
        p = end + 1;
    }
    return mask;
}

nixl_status_t nixl_telem_settings_read(bool capture, const char *agent,
                                       nixl_telem_settings_t *out)
{
    nixl_telem_settings_t s = {.enabled = capture, .buffer_size = DEFAULT_BUFFER_SIZE,
                               .run_interval_ms = DEFAULT_RUN_INTERVAL_MS,
                               .enabled_mask = ALL_EVENTS};
    nixl_status_t st = nixl_config_bool("NIXL_TELEMETRY_ENABLE", &s.enabled);
    if (st != NIXL_SUCCESS)
        return st;
    if (!s.enabled && capture)
        NIXL_WARN("agent '%s': NIXL_TELEMETRY_ENABLE is false, ignoring telemetry requested "
                  "through agent config", agent);
    if (!s.enabled) {
        *out = s;
        return NIXL_SUCCESS;
    }
    telem_clock_init(); /* the clock of per-request timing, whatever the exporter */
    char *exp = NULL;
    st = nixl_config_string("NIXL_TELEMETRY_EXPORTER", &exp);
    if (st != NIXL_SUCCESS)
        return st;
    if (exp && *exp) {
        if (strlen(exp) >= sizeof(s.exporter)) {
            free(exp);
            return nixl_err(NIXL_ERR_INVALID_PARAM, "NIXL_TELEMETRY_EXPORTER: the name is "
                            "longer than %zu bytes", sizeof(s.exporter) - 1);
        }
        strcpy(s.exporter, exp);
    } else if (nixl_config_exists("NIXL_TELEMETRY_DIR")) {
        strcpy(s.exporter, "BUFFER");
    }
    free(exp);
    if (strcasecmp(s.exporter, "NOP") == 0)
        s.exporter[0] = '\0';

    st = nixl_config_u64("NIXL_TELEMETRY_BUFFER_SIZE", &s.buffer_size);
    if (st != NIXL_SUCCESS)
        return st;
    if (s.buffer_size == 0 || s.buffer_size > MAX_BUFFER_SIZE)
        return nixl_err(NIXL_ERR_INVALID_PARAM, "NIXL_TELEMETRY_BUFFER_SIZE=%llu: must be 1 "
                        "to %llu events", (unsigned long long)s.buffer_size,
                        (unsigned long long)MAX_BUFFER_SIZE);
    st = nixl_config_u64("NIXL_TELEMETRY_RUN_INTERVAL", &s.run_interval_ms);
    if (st != NIXL_SUCCESS)
        return st;
    if (s.run_interval_ms == 0 || s.run_interval_ms > MAX_RUN_INTERVAL_MS)
        return nixl_err(NIXL_ERR_INVALID_PARAM, "NIXL_TELEMETRY_RUN_INTERVAL=%llu: must be 1 "
                        "to %u ms", (unsigned long long)s.run_interval_ms, MAX_RUN_INTERVAL_MS);
    char *list = NULL;
    st = nixl_config_string("NIXL_TELEMETRY_ENABLED_METRICS", &list);
    if (st != NIXL_SUCCESS)
        return st;
    s.enabled_mask = nixl_telem_metrics_mask(list, agent);
    free(list);
    *out = s;
    return NIXL_SUCCESS;
}
