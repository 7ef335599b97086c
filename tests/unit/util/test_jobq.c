/*
 * test_jobq.c - the worker thread's job queue of src/util: jobs run one at a time in the order
 * they were queued, in the queue's thread; the thread starts only with the first job; a queued
 * job taken back never runs, a running one cannot be taken back; busy() follows a job from push
 * to its end (or to job_over); stop lets the running job finish, drops what is queued, joins.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "jobq.h"

#define NJOBS 64

typedef struct job {
    nixl_fifo_node_t node;
    int id;
    pthread_t ran_on;
} job_t;

typedef struct owner {
    nixl_jobq_t q;
    int order[NJOBS + 1];
    int nran;
    /* the blocking job: runs until `release`, with `lock`/`cond` of the queue */
    int block_id;
    bool blocked, release, over_early;
} owner_t;

static void run(void *arg, nixl_fifo_node_t *node)
{
    owner_t *o = arg;
    job_t *j = nixl_list_entry(node, job_t, node);
    j->ran_on = pthread_self();
    pthread_mutex_lock(&o->q.lock);
    o->order[o->nran++] = j->id;
    if (j->id == o->block_id) {
        o->blocked = true;
        pthread_cond_broadcast(&o->q.cond);
        while (!o->release && !nixl_jobq_stopping(&o->q))
            pthread_cond_wait(&o->q.cond, &o->q.lock);
    }
    pthread_mutex_unlock(&o->q.lock);
    if (j->id == o->block_id && o->over_early)
        nixl_jobq_job_over(&o->q, node);
}

static void wait_blocked(owner_t *o)
{
    pthread_mutex_lock(&o->q.lock);
    while (!o->blocked)
        pthread_cond_wait(&o->q.cond, &o->q.lock);
    pthread_mutex_unlock(&o->q.lock);
}

static void release_blocked(owner_t *o)
{
    pthread_mutex_lock(&o->q.lock);
    o->release = true;
    pthread_mutex_unlock(&o->q.lock);
    nixl_jobq_wake(&o->q);
}

static void wait_idle(owner_t *o, int nran)
{
    for (;;) {
        pthread_mutex_lock(&o->q.lock);
        bool done = o->nran >= nran && nixl_fifo_empty(&o->q.fifo) && !o->q.running;
        pthread_mutex_unlock(&o->q.lock);
        if (done)
            return;
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
    }
}

static void test_order_and_thread(void **state)
{
    (void)state;
    static owner_t o;
    static job_t jobs[NJOBS];
    memset(&o, 0, sizeof(o));
    o.block_id = -1;
    nixl_jobq_init(&o.q, "test-jobq", run, &o);
    assert_false(o.q.started); /* no thread before the first job */
    for (int i = 0; i < NJOBS; i++) {
        jobs[i].id = i;
        assert_int_equal(nixl_jobq_push(&o.q, &jobs[i].node), 0);
    }
    assert_true(o.q.started);
    wait_idle(&o, NJOBS);
    for (int i = 0; i < NJOBS; i++) {
        assert_int_equal(o.order[i], i);
        assert_false(pthread_equal(jobs[i].ran_on, pthread_self()));
        assert_true(pthread_equal(jobs[i].ran_on, jobs[0].ran_on)); /* one thread */
        assert_false(nixl_jobq_busy(&o.q, &jobs[i].node));
    }
    /* a job may be queued again once it ran */
    assert_int_equal(nixl_jobq_push(&o.q, &jobs[3].node), 0);
    wait_idle(&o, NJOBS + 1);
    assert_int_equal(o.order[NJOBS], 3);
    nixl_jobq_stop(&o.q);
    nixl_jobq_fini(&o.q);
}

static void test_take_back_and_busy(void **state)
{
    (void)state;
    static owner_t o;
    static job_t a, b, c;
    memset(&o, 0, sizeof(o));
    a.id = 0, b.id = 1, c.id = 2;
    o.block_id = 0;
    nixl_jobq_init(&o.q, "test-jobq", run, &o);
    assert_false(nixl_jobq_take_back(&o.q, &a.node)); /* never queued */
    assert_int_equal(nixl_jobq_push(&o.q, &a.node), 0);
    assert_int_equal(nixl_jobq_push(&o.q, &b.node), 0);
    assert_int_equal(nixl_jobq_push(&o.q, &c.node), 0);
    wait_blocked(&o);
    assert_true(nixl_jobq_busy(&o.q, &a.node));  /* running */
    assert_true(nixl_jobq_busy(&o.q, &b.node));  /* queued */
    assert_false(nixl_jobq_take_back(&o.q, &a.node)); /* running: the owner's to stop */
    assert_true(nixl_jobq_take_back(&o.q, &b.node));
    assert_false(nixl_jobq_busy(&o.q, &b.node));
    assert_false(nixl_jobq_take_back(&o.q, &b.node)); /* twice: a no-op */
    release_blocked(&o);
    wait_idle(&o, 2);
    assert_int_equal(o.nran, 2);
    assert_int_equal(o.order[0], 0);
    assert_int_equal(o.order[1], 2); /* b never ran */
    assert_false(nixl_jobq_busy(&o.q, &a.node));
    nixl_jobq_stop(&o.q);
    nixl_jobq_fini(&o.q);
}

static void test_job_over(void **state)
{
    (void)state;
    static owner_t o;
    static job_t a;
    memset(&o, 0, sizeof(o));
    o.block_id = 0;
    o.over_early = true;
    nixl_jobq_init(&o.q, "test-jobq", run, &o);
    assert_int_equal(nixl_jobq_push(&o.q, &a.node), 0);
    wait_blocked(&o);
    assert_true(nixl_jobq_busy(&o.q, &a.node));
    release_blocked(&o);
    wait_idle(&o, 1);
    assert_false(nixl_jobq_busy(&o.q, &a.node));
    nixl_jobq_stop(&o.q);
    nixl_jobq_fini(&o.q);
}

/* stop: the running job sees stopping() and ends; what is still queued never runs. */
static void test_stop(void **state)
{
    (void)state;
    static owner_t o;
    static job_t a, b;
    memset(&o, 0, sizeof(o));
    a.id = 0, b.id = 1;
    o.block_id = 0;
    nixl_jobq_init(&o.q, "test-jobq", run, &o);
    assert_int_equal(nixl_jobq_push(&o.q, &a.node), 0);
    assert_int_equal(nixl_jobq_push(&o.q, &b.node), 0);
    wait_blocked(&o);
    nixl_jobq_stop(&o.q); /* returns only once the thread is gone */
    assert_int_equal(o.nran, 1);
    assert_false(o.q.started);
    nixl_jobq_fini(&o.q);
    /* a queue that never ran a job stops at once */
    static owner_t idle;
    nixl_jobq_init(&idle.q, NULL, run, &idle);
    nixl_jobq_stop(&idle.q);
    nixl_jobq_fini(&idle.q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_thread),
        cmocka_unit_test(test_take_back_and_busy),
        cmocka_unit_test(test_job_over),
        cmocka_unit_test(test_stop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
