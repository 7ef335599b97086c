/*
 * nb_loop.h - the measured loop of one (block, batch) step, run by num_threads initiator
 * threads, each on its own slice of the local and the remote buffer.
 */
#ifndef NB_LOOP_H
#define NB_LOOP_H

#include "nb.h"

typedef struct nb_step_result {
    double seconds;      /* first thread's start of the timed loop to the last thread's end */
    double *prep, *post, *tx; /* samples in microseconds, all threads (malloc'ed) */
    size_t nprep, npost, ntx;
} nb_step_result_t;

/*
 * Run warmup and timed iterations of `plan` on every thread. `slice` is each thread's share of
 * the buffers, `nslots` how many requests of block x batch bytes fit side by side in it (at
 * most pipeline_depth). Returns 0, or non-zero after printing why (a failed transfer, the
 * target gone, a transfer that did not complete in time).
 */
int nb_loop_run(const nb_cfg_t *cfg, nb_side_t *side, nb_rt_t *rt, const nb_plan_t *plan,
                uint64_t slice, uint64_t nslots, const char *label, nb_step_result_t *out);
void nb_step_result_free(nb_step_result_t *r);

#endif
