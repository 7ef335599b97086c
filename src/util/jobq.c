/*
 * jobq.c - a lazily started worker thread with a FIFO of jobs (jobq.h). The build defines
 * _GNU_SOURCE (pthread_setname_np).
 */
#include "jobq.h"

#include <string.h>

void nixl_jobq_init(nixl_jobq_t *q, const char *name, nixl_job_fn run, void *owner)
{
    memset(q, 0, sizeof(*q));
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->cond, NULL);
    q->run = run;
    q->owner = owner;
    q->name = name;
}

static void *jobq_main(void *arg)
{
    nixl_jobq_t *q = arg;
    pthread_mutex_lock(&q->lock);
    for (;;) {
        while (nixl_fifo_empty(&q->fifo) && !q->stop)
            pthread_cond_wait(&q->cond, &q->lock);
        if (q->stop)
            break;
        nixl_fifo_node_t *job = nixl_fifo_front(&q->fifo);
        nixl_fifo_remove(&q->fifo, job);
        q->running = job;
        pthread_mutex_unlock(&q->lock);
        q->run(q->owner, job);
        pthread_mutex_lock(&q->lock);
        q->running = NULL;
        pthread_cond_broadcast(&q->cond); /* nixl_jobq_wait_over() */
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

int nixl_jobq_push(nixl_jobq_t *q, nixl_fifo_node_t *job)
{
    pthread_mutex_lock(&q->lock);
    if (!q->started) {
        int rc = pthread_create(&q->thread, NULL, jobq_main, q);
        if (rc != 0) {
            pthread_mutex_unlock(&q->lock);
            return rc;
        }
        if (q->name)
            pthread_setname_np(q->thread, q->name);
        q->started = true;
    }
    nixl_fifo_push(&q->fifo, job);
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
    return 0;
}

bool nixl_jobq_take_back(nixl_jobq_t *q, nixl_fifo_node_t *job)
{
    pthread_mutex_lock(&q->lock);
    bool was = nixl_fifo_remove(&q->fifo, job);
    pthread_mutex_unlock(&q->lock);
    return was;
}

bool nixl_jobq_busy(nixl_jobq_t *q, const nixl_fifo_node_t *job)
{
    pthread_mutex_lock(&q->lock);
    bool busy = job->queued || q->running == job;
    pthread_mutex_unlock(&q->lock);
    return busy;
}

void nixl_jobq_job_over(nixl_jobq_t *q, const nixl_fifo_node_t *job)
{
    pthread_mutex_lock(&q->lock);
    if (q->running == job)
        q->running = NULL;
    pthread_mutex_unlock(&q->lock);
}

void nixl_jobq_wait_over(nixl_jobq_t *q, const nixl_fifo_node_t *job)
{
    pthread_mutex_lock(&q->lock);
    while (q->running == job)
        pthread_cond_wait(&q->cond, &q->lock);
    pthread_mutex_unlock(&q->lock);
}

void nixl_jobq_wake(nixl_jobq_t *q)
{
    pthread_mutex_lock(&q->lock);
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
}

void nixl_jobq_stop(nixl_jobq_t *q)
{
    pthread_mutex_lock(&q->lock);
    q->stop = true;
    pthread_cond_broadcast(&q->cond);
    bool started = q->started;
    pthread_mutex_unlock(&q->lock);
    if (started)
        pthread_join(q->thread, NULL);
    q->started = false;
}

void nixl_jobq_fini(nixl_jobq_t *q)
{
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->cond);
}
