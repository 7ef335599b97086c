/*
 * jobq.h - one worker thread that runs queued jobs one at a time, first in first out; for
 * plugins that hand long multi-step work (staged GPU rounds) to a thread of their own. The
 * thread starts with the first job and sleeps on a condition variable between jobs, never
 * spins. A queued job can be taken back before it starts (cancel, release); a running one is
 * the owner's to stop, which it does between its steps by looking at its own flags.
 *
 * The owner may guard its jobs' state with `lock` and wait on `cond` inside a job (for a round's
 * end, say): nixl_jobq_wake() wakes such waits, and nixl_jobq_stopping() tells them to give up.
 */
#ifndef NIXL_UTIL_JOBQ_H
#define NIXL_UTIL_JOBQ_H

#include <pthread.h>
#include <stdbool.h>

#include "fifo.h"

typedef struct nixl_jobq nixl_jobq_t;
/* Runs one job, in the queue's thread, without the lock held. */
typedef void (*nixl_job_fn)(void *owner, nixl_fifo_node_t *job);

struct nixl_jobq {
    pthread_mutex_t lock; /* the queue, `running`, `stop`; and what the owner guards with it */
    pthread_cond_t cond;  /* a job queued or ended, stop, and the owner's own wake-ups */
    nixl_fifo_t fifo;
    nixl_fifo_node_t *running; /* the job in the thread's hands, NULL between jobs */
    nixl_job_fn run;
    void *owner;
    const char *name; /* the thread's name (at most 15 characters) */
    bool started, stop;
    pthread_t thread;
};

void nixl_jobq_init(nixl_jobq_t *q, const char *name, nixl_job_fn run, void *owner);
/* Queue a job, starting the thread if it is the first. 0, or the error of pthread_create (the
 * job is then not queued). */
int nixl_jobq_push(nixl_jobq_t *q, nixl_fifo_node_t *job);
/* Take a job out of the queue if it has not started: true if it was queued (it will not run). */
bool nixl_jobq_take_back(nixl_jobq_t *q, nixl_fifo_node_t *job);
/* Queued, or being run and not yet marked over by nixl_jobq_job_over(). */
bool nixl_jobq_busy(nixl_jobq_t *q, const nixl_fifo_node_t *job);
/* Called by a job before it publishes its end, so that an owner who sees that end finds the
 * job no longer busy. */
void nixl_jobq_job_over(nixl_jobq_t *q, const nixl_fifo_node_t *job);
/* Wait until `job` is not being run (returns at once if it is not). Not from the job itself. */
void nixl_jobq_wait_over(nixl_jobq_t *q, const nixl_fifo_node_t *job);
/* Wake every wait on `cond` (a step of a job ended, a peer failed). */
void nixl_jobq_wake(nixl_jobq_t *q);
/* With `lock` held: true once nixl_jobq_stop() was called. */
static inline bool nixl_jobq_stopping(const nixl_jobq_t *q)
{
    return q->stop;
}
/* Stop the thread after the job it runs (jobs still queued never run) and join it. */
void nixl_jobq_stop(nixl_jobq_t *q);
/* After nixl_jobq_stop(). */
void nixl_jobq_fini(nixl_jobq_t *q);

#endif
