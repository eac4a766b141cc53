/* A parallel loop over image indices for decoding and gathering. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "source.h"

typedef struct {
    clcl_parallel_fn fn;
    void *user;
    int n;
    atomic_int next;   /* the next index to hand out */
    atomic_int failed; /* set once a call failed: hand out no more */
    pthread_mutex_t lock;
    int error_index; /* lowest failing index so far (n when none) */
    clcl_status error;
    char message[1024];
} parallel_job;

static void *parallel_worker(void *arg) {
    parallel_job *job = arg;
    for (;;) {
        if (atomic_load(&job->failed))
            break;
        int i = atomic_fetch_add(&job->next, 1);
        if (i >= job->n)
            break;
        clcl_status st = job->fn(job->user, i);
        if (st == CLCL_OK)
            continue;

        /* Keep the failure with the lowest index; its message is this thread's. */
        pthread_mutex_lock(&job->lock);
        if (i < job->error_index) {
            job->error_index = i;
            job->error = st;
            strncpy(job->message, clcl_last_error(), sizeof job->message - 1);
        }
        pthread_mutex_unlock(&job->lock);
        atomic_store(&job->failed, 1);
    }
    return NULL;
}

int clcl_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

clcl_status clcl_parallel_for(int n, int threads, clcl_parallel_fn fn, void *user) {
    if (n <= 0)
        return CLCL_OK;
    if (threads <= 0)
        threads = clcl_cpu_count();
    if (threads > n)
        threads = n;

    /* One thread: no job, the status and message are already this thread's. */
    if (threads == 1) {
        for (int i = 0; i < n; i++)
            CLCL_TRY(fn(user, i));
        return CLCL_OK;
    }

    parallel_job job = {.fn = fn, .user = user, .n = n, .error_index = n};
    atomic_init(&job.next, 0);
    atomic_init(&job.failed, 0);
    pthread_mutex_init(&job.lock, NULL);

    /* Start the helpers, work on this thread too, then wait for them. */
    pthread_t *tid = calloc((size_t)threads - 1, sizeof *tid);
    int started = 0;
    while (tid && started < threads - 1 &&
           pthread_create(&tid[started], NULL, parallel_worker, &job) == 0)
        started++;
    parallel_worker(&job);
    for (int t = 0; t < started; t++)
        pthread_join(tid[t], NULL);
    free(tid);
    pthread_mutex_destroy(&job.lock);

    if (job.error_index < n)
        return clcl_fail(job.error, "%s", job.message);
    return CLCL_OK;
}
