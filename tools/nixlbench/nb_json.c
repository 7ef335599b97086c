/*
 * nb_json.c - --json FILE: the configuration and every row with all its percentiles, for
 * scripts (bench/ reads it to write docs/BENCHMARKS.md). Not in the reference.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "nb.h"

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static void json_dist(FILE *f, const char *name, const nb_dist_t *d)
{
    fprintf(f, ", \"%s\": {\"avg\": %.3f, \"p50\": %.3f, \"p90\": %.3f, \"p99\": %.3f, "
               "\"max\": %.3f}",
            name, d->avg, d->p50, d->p90, d->p99, d->max);
}

static void json_config(FILE *f, const nb_cfg_t *cfg)
{
    char num[32];
    fputs("  \"config\": {", f);
    bool first = true;
    for (size_t i = 0; i < nb_num_opts; i++) {
        const nb_opt_t *o = &nb_opts[i];
        if (!o->help || !strcmp(o->name, "help"))
            continue;
        fprintf(f, "%s\n    ", first ? "" : ",");
        first = false;
        json_str(f, o->name);
        fputs(": ", f);
        const char *v = nb_opt_value(cfg, o, num, sizeof(num));
        if (o->kind == NB_BOOL)
            fputs(*v == '1' ? "true" : "false", f);
        else if (o->kind == NB_U64 || o->kind == NB_SIZE)
            fputs(v, f);
        else
            json_str(f, v);
    }
    fputs("\n  },\n", f);
}

int nb_json_write(const nb_cfg_t *cfg, const char *path, const char *const *backends,
                  nb_row_t *const *rows, size_t nbackends, size_t nrows,
                  const double *memcpy_gbps)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return nb_fail("cannot write --json %s: %s", path, strerror(errno));
    fputs("{\n  \"tool\": \"nixlbench\",\n  \"nixl_version\": ", f);
    json_str(f, nixl_version());
    fputs(",\n", f);
    json_config(f, cfg);
    fputs("  \"backends\": [", f);
    for (size_t b = 0; b < nbackends; b++) {
        fputs(b ? ", " : "", f);
        json_str(f, backends[b]);
    }
    fputs("],\n  \"rows\": [", f);
    bool first = true;
    for (size_t b = 0; b < nbackends; b++)
        for (size_t i = 0; i < nrows; i++) {
            const nb_row_t *r = &rows[b][i];
            fprintf(f, "%s\n    {\"backend\": ", first ? "" : ",");
            first = false;
            json_str(f, backends[b]);
            fprintf(f, ", \"op\": \"%s\", \"block_size\": %llu, \"batch_size\": %llu, "
                       "\"iterations\": %llu, \"seconds\": %.6f, \"bw_gbps\": %.6f, "
                       "\"avg_lat_us\": %.3f",
                    nixl_op_str(cfg->op), (unsigned long long)r->block,
                    (unsigned long long)r->batch, (unsigned long long)r->iters, r->seconds,
                    r->gbps, r->avg_lat_us);
            json_dist(f, "prep_us", &r->prep);
            json_dist(f, "post_us", &r->post);
            json_dist(f, "tx_us", &r->tx);
            if (memcpy_gbps)
                fprintf(f, ", \"memcpy_gbps\": %.6f", memcpy_gbps[i]);
            fputc('}', f);
        }
    fputs("\n  ]\n}\n", f);
    if (fclose(f) != 0)
        return nb_fail("cannot write --json %s: %s", path, strerror(errno));
    return 0;
}
