/*
 * telem.c - the exporter thread and the completion batch. The settings (reference
 * NIXL-SEMANTICS 8.1) are telem_settings.c; the staging queue telem_queue.h; the BUFFER
 * exporter telem_buffer.c.
 */
#include "telem.h"

#include <errno.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "error.h"
#include "log.h"

/* ------------------------------------------------------------------------------------------ */
/* The exporter thread                                                                         */
/* ------------------------------------------------------------------------------------------ */

typedef struct telem_full {
    nixl_telem_t pub; /* first: nixl_telem_t * is a telem_full_t * */
    const nixl_telemetry_exporter_ops_t *ops;
    void *exp;
    nixl_telemetry_host_t host;
    char exporter_name[64];
    uint64_t interval_ms;
    nixl_telemetry_event_t *batch; /* capacity + 1 (the drop count) */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;  /* to the thread: stop, or flush now */
    pthread_cond_t done;  /* from the thread: a flush ended */
    bool stop;
    uint64_t flush_asked, flush_done;
} telem_full_t;

static void flush_once(telem_full_t *f)
{
    nixl_telem_t *t = &f->pub;
    size_t n = telem_queue_pop(&t->queue, f->batch, t->queue.capacity);
    uint64_t dropped = telem_queue_take_dropped(&t->queue);
    if (dropped && (t->enabled_mask & (1u << NIXL_TELEM_TELEMETRY_EVENTS_DROPPED)))
        f->batch[n++] = (nixl_telemetry_event_t){.id = NIXL_TELEM_TELEMETRY_EVENTS_DROPPED,
                                                 .value = dropped};
    f->ops->export_events(f->exp, f->batch, n); /* n == 0: a tick (nixl_telemetry_plugin.h) */
}

static void *exporter_main(void *arg)
{
    telem_full_t *f = arg;
    pthread_mutex_lock(&f->lock);
    for (;;) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        uint64_t ns = (uint64_t)until.tv_nsec + (f->interval_ms % 1000u) * 1000000u;
        until.tv_sec += (time_t)(f->interval_ms / 1000u + ns / 1000000000u);
        until.tv_nsec = (long)(ns % 1000000000u);
        while (!f->stop && f->flush_asked == f->flush_done)
            if (pthread_cond_timedwait(&f->wake, &f->lock, &until) == ETIMEDOUT)
                break;
        bool stop = f->stop;
        uint64_t asked = f->flush_asked;
        pthread_mutex_unlock(&f->lock);
        flush_once(f);
        pthread_mutex_lock(&f->lock);
        f->flush_done = asked;
        pthread_cond_broadcast(&f->done);
        if (stop)
            break;
    }
    pthread_mutex_unlock(&f->lock);
    return NULL;
}

nixl_status_t nixl_telem_create(const char *agent, const nixl_telem_settings_t *s,
                                const char *plugin_dir, nixl_telem_t **out)
{
    *out = NULL;
    if (!s->enabled || !s->exporter[0])
        return NIXL_SUCCESS; /* off, or collect-only (NOP) */
    const nixl_telemetry_exporter_ops_t *ops;
    nixl_status_t st = nixl_telem_exporter_find(s->exporter, plugin_dir, &ops);
    if (st != NIXL_SUCCESS)
        return st;
    telem_full_t *f = calloc(1, sizeof(*f));
    if (!f)
        return nixl_err_oom("telemetry of agent '%s'", agent);
    f->ops = ops;
    f->interval_ms = s->run_interval_ms;
    f->pub.enabled_mask = s->enabled_mask;
    f->batch = calloc(s->buffer_size + 1, sizeof(*f->batch));
    if (!f->batch || !telem_queue_init(&f->pub.queue, s->buffer_size)) {
        free(f->batch);
        free(f);
        return nixl_err_oom("telemetry queue of %llu events", (unsigned long long)s->buffer_size);
    }
    snprintf(f->exporter_name, sizeof(f->exporter_name), "%s", ops->name);
    nixl_telem_host_init(&f->host, f->exporter_name);
    nixl_telemetry_exporter_init_t init = {.struct_size = sizeof(init), .agent_name = agent,
                                           .capacity = s->buffer_size, .host = &f->host};
    nixl_err_arm();
    st = ops->create(&init, &f->exp);
    if (st < 0 && nixl_err_unset())
        nixl_err_set("telemetry exporter %s failed for agent '%s'", ops->name, agent);
    nixl_err_settle(st);
    if (st != NIXL_SUCCESS)
        goto free_queue;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&f->wake, &ca);
    pthread_cond_init(&f->done, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&f->lock, NULL);
    int rc = pthread_create(&f->thread, NULL, exporter_main, f);
    if (rc != 0) {
        st = nixl_err(NIXL_ERR_UNKNOWN, "telemetry of agent '%s': cannot start the exporter "
                      "thread: %s", agent, strerror(rc));
        goto destroy_sync;
    }
    NIXL_INFO("agent '%s': telemetry exporter %s, %llu events every %llu ms", agent, ops->name,
              (unsigned long long)s->buffer_size, (unsigned long long)s->run_interval_ms);
    *out = &f->pub;
    return NIXL_SUCCESS;

destroy_sync:
    pthread_mutex_destroy(&f->lock);
    pthread_cond_destroy(&f->done);
    pthread_cond_destroy(&f->wake);
    ops->destroy(f->exp);
free_queue:
    telem_queue_fini(&f->pub.queue);
    free(f->batch);
    free(f);
    return st;
}

void nixl_telem_flush(nixl_telem_t *t)
{
    if (!t)
        return;
    telem_full_t *f = (telem_full_t *)t;
    pthread_mutex_lock(&f->lock);
    uint64_t want = ++f->flush_asked;
    pthread_cond_signal(&f->wake);
    while (f->flush_done < want)
        pthread_cond_wait(&f->done, &f->lock);
    pthread_mutex_unlock(&f->lock);
}

void nixl_telem_destroy(nixl_telem_t *t)
{
    if (!t)
        return;
    telem_full_t *f = (telem_full_t *)t;
    pthread_mutex_lock(&f->lock);
    f->stop = true; /* the thread flushes once more, then ends */
    pthread_cond_signal(&f->wake);
    pthread_mutex_unlock(&f->lock);
    pthread_join(f->thread, NULL);
    f->ops->destroy(f->exp);
    pthread_mutex_destroy(&f->lock);
    pthread_cond_destroy(&f->done);
    pthread_cond_destroy(&f->wake);
    telem_queue_fini(&f->pub.queue);
    free(f->batch);
    free(f);
}

void nixl_telem_record_completion(nixl_telem_t *t, bool write, uint64_t post_us,
                                  uint64_t xfer_us, uint64_t bytes)
{
    if (!t)
        return;
    nixl_telemetry_event_t ev[4];
    size_t n = 0;
    const uint32_t ids[4] = {NIXL_TELEM_XFER_POST_TIME, NIXL_TELEM_XFER_TIME,
                             write ? NIXL_TELEM_TX_BYTES : NIXL_TELEM_RX_BYTES,
                             write ? NIXL_TELEM_TX_REQUESTS_NUM : NIXL_TELEM_RX_REQUESTS_NUM};
    const uint64_t values[4] = {post_us, xfer_us, bytes, 1};
    for (unsigned i = 0; i < 4; i++)
        if (t->enabled_mask & (1u << ids[i]))
            ev[n++] = (nixl_telemetry_event_t){.id = ids[i], .pad = 0, .value = values[i]};
    if (n)
        telem_queue_push(&t->queue, ev, n);
}
