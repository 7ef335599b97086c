#include "scratch.h"

#include <pthread.h>
#include <stdlib.h>

#define SCRATCH_KEEP (8u << 20)

static pthread_key_t scratch_key; /* frees the buffer when its thread exits */
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static _Thread_local struct scratch {
    void *p;
    size_t cap;
} scratch;

static void scratch_thread_exit(void *p)
{
    free(p);
}

static void scratch_key_init(void)
{
    pthread_key_create(&scratch_key, scratch_thread_exit);
}

void *nixl_scratch_get(size_t bytes)
{
    if (bytes <= scratch.cap)
        return scratch.p;
    pthread_once(&scratch_once, scratch_key_init);
    void *p = realloc(scratch.p, bytes);
    if (!p)
        return NULL;
    scratch.p = p;
    scratch.cap = bytes;
    pthread_setspecific(scratch_key, p);
    return p;
}

void nixl_scratch_trim(void)
{
    if (scratch.cap > SCRATCH_KEEP) {
        free(scratch.p);
        scratch.p = NULL;
        scratch.cap = 0;
        pthread_setspecific(scratch_key, NULL);
    }
}
