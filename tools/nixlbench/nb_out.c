/*
 * nb_out.c - what the user reads: the reference's config block and table (fixed widths, left
 * aligned, decimal GB/s), the --compare table, the progress line and error messages.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "nb.h"

#define RULE 160

const char *nb_who = "nixlbench";
static char *capture;
static size_t capture_len;

void nb_fail_capture(char *buf, size_t len)
{
    capture = buf;
    capture_len = len;
}

int nb_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (capture && !capture[0]) { /* the first reason is the cause; later ones follow from it */
        vsnprintf(capture, capture_len, fmt, ap);
    } else if (!capture) {
        nb_progress_clear();
        fprintf(stderr, "%s: ", nb_who);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
    }
    va_end(ap);
    return NB_EXIT_FAIL;
}

static void rule(char c)
{
    char line[RULE + 1];
    memset(line, c, RULE);
    line[RULE] = '\0';
    puts(line);
}

/* "Title (--name=[A,B])": the description column of the config block. */
static void describe(const nb_opt_t *o, char *out, size_t len)
{
    char choices[160] = "N";
    if (o->kind == NB_BOOL)
        snprintf(choices, sizeof(choices), "[0,1]");
    else if (o->kind == NB_STR)
        snprintf(choices, sizeof(choices), "%s", strcmp(o->name, "device_list") ? "PATH"
                                                                                : "dev1,dev2,...");
    else if (o->kind == NB_ENUM) {
        snprintf(choices, sizeof(choices), "[%s]", o->choices);
        for (char *c = choices; *c; c++)
            *c = *c == '|' ? ',' : *c;
    }
    snprintf(out, len, "%s (--%s=%s)", o->title, o->name, choices);
    /* Keep long choice lists inside the 60-column description. */
    if (strlen(out) > 59 && len > 60) {
        char *cut = out + 59 - strlen(",...])");
        while (cut > out && *cut != ',')
            cut--;
        strcpy(cut, ",...])");
    }
}

static void line(const char *desc, const char *value)
{
    printf("%-60s: %s\n", desc, value);
}

void nb_print_config(const nb_cfg_t *cfg, const char *backend)
{
    char desc[256], num[32];
    printf("NIXLBench Configuration\n");
    rule('-');
    for (size_t i = 0; i < nb_num_opts; i++) {
        const nb_opt_t *o = &nb_opts[i];
        if (!o->title)
            continue;
        if (!cfg->storage && (!strcmp(o->name, "filepath") || !strcmp(o->name, "num_files") ||
                              !strcmp(o->name, "storage_enable_direct")))
            continue;
        describe(o, desc, sizeof(desc));
        const char *v = nb_opt_value(cfg, o, num, sizeof(num));
        if (!strcmp(o->name, "backend"))
            v = backend;
        if (!strcmp(o->name, "runtime_type"))
            v = *v ? v : "LOCAL";
        line(desc, v);
        if (!strcmp(o->name, "runtime_type") && !strcmp(v, "ASIO")) {
            line("ASIO address (--asio_address=HOST)", cfg->asio_address);
            snprintf(num, sizeof(num), "%llu", (unsigned long long)cfg->asio_port);
            line("ASIO port (--asio_port=N)", num);
        }
    }
    rule('-');
    putchar('\n');
}

static const char *const columns[] = {"Block Size (B)", "Batch Size",    "B/W (GB/Sec)",
                                      "Avg Lat. (us)",  "Avg Prep (us)", "P99 Prep (us)",
                                      "Avg Post (us)",  "P99 Post (us)", "Avg Tx (us)",
                                      "P99 Tx (us)"};

void nb_print_header(void)
{
    for (size_t i = 0; i < sizeof(columns) / sizeof(columns[0]); i++)
        printf("%-*s", i == 0 ? 20 : 15, columns[i]);
    putchar('\n');
    rule('-');
    fflush(stdout);
}

void nb_print_row(const nb_row_t *r)
{
    nb_progress_clear();
    printf("%-20llu%-15llu%-15.6f%-15.1f%-15.1f%-15.1f%-15.1f%-15.1f%-15.1f%-15.1f\n",
           (unsigned long long)r->block, (unsigned long long)r->batch, r->gbps, r->avg_lat_us,
           r->prep.avg, r->prep.p99, r->post.avg, r->post.p99, r->tx.avg, r->tx.p99);
    fflush(stdout);
}

static int compare_width(const char *name)
{
    int w = (int)strlen(name) + (int)strlen(" (GB/Sec)") + 2;
    return w < 15 ? 15 : w;
}

void nb_print_compare_header(const char *const *backends, size_t n)
{
    printf("%-20s%-15s", columns[0], columns[1]);
    char head[96];
    for (size_t i = 0; i <= n; i++) {
        const char *name = i < n ? backends[i] : "memcpy";
        snprintf(head, sizeof(head), "%s (GB/Sec)", name);
        printf("%-*s", compare_width(name), head);
    }
    putchar('\n');
    rule('-');
    fflush(stdout);
}

void nb_print_compare_row(const char *const *backends, const nb_row_t *rows, size_t n,
                          double memcpy_gbps)
{
    nb_progress_clear();
    printf("%-20llu%-15llu", (unsigned long long)rows[0].block, (unsigned long long)rows[0].batch);
    for (size_t i = 0; i < n; i++)
        printf("%-*.6f", compare_width(backends[i]), rows[i].gbps);
    printf("%-*.6f\n", compare_width("memcpy"), memcpy_gbps);
    fflush(stdout);
}

/* ---- progress: only on a terminal, only once a run has lasted a few seconds ---- */

static int progress_tty = -1;
static double progress_t0, progress_last;
static bool progress_shown;

void nb_progress(const char *what, uint64_t done, uint64_t total)
{
    if (progress_tty < 0) {
        progress_tty = isatty(STDERR_FILENO);
        progress_t0 = nb_now_us() / 1e6;
    }
    double now = nb_now_us() / 1e6;
    if (!progress_tty || now - progress_t0 < 3.0 || now - progress_last < 0.25)
        return;
    progress_last = now;
    fprintf(stderr, "\r\033[K[%.0f s] %s: %llu/%llu", now - progress_t0, what,
            (unsigned long long)done, (unsigned long long)total);
    fflush(stderr);
    progress_shown = true;
}

void nb_progress_clear(void)
{
    if (!progress_shown)
        return;
    fputs("\r\033[K", stderr);
    fflush(stderr);
    progress_shown = false;
}
