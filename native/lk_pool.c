/* Lumina HAL twin kernel: a small persistent pool of helper threads (pthreads).
 *
 * Creating and joining a thread per call costs 10-30 us here, as much as a whole 1024x1024
 * GEMV, so helpers are started on first need and then wait for work. A call posts a job,
 * runs its own share on the calling thread, and waits until every helper that took part has
 * finished. Work is shared through a counter inside the job (see lumina_kernel.c), so a job
 * is correct, and gives the same bits, with any number of helpers, including none: when
 * the pool is busy with another caller or a thread cannot be started, the call simply runs
 * with fewer helpers.
 *
 * After a job, helpers poll briefly (about 50 us, yielding the CPU between polls) before
 * sleeping on a condition variable, so back-to-back calls do not pay a futex wake-up each.
 * The caller, once its share is done, polls the same way for the helpers still inside the
 * job: sleeping on the condition variable and being woken costs a futex round trip and a
 * reschedule, which made a 256x256 batch-32 call slower on 2 threads than on 1.
 * Helpers block all signals, so signals keep going to the application's threads. A forked
 * child starts with an empty pool.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "lk_internal.h"

#define LK_POOL_MAX 63        /* helpers at most (the caller is the 64th worker) */
#define LK_POOL_SPIN_NS 50000 /* how long an idle helper polls before sleeping */

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_wake = PTHREAD_COND_INITIALIZER; /* helpers: a new job */
static pthread_cond_t pool_done = PTHREAD_COND_INITIALIZER; /* caller: helpers finished */
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

/* All fields below are guarded by pool_mu, except generation, which is also polled. */
static atomic_ulong generation; /* bumped once per job */
static int started;             /* helpers alive, with indices 1 .. started */
static int busy;                /* a caller owns the pool */
static int want;                /* helpers 1 .. want may take part in the current job */
static int entered;             /* helpers that started the current job */
static int closed;              /* the caller finished its share: late helpers skip the job */
static atomic_int active;       /* helpers of the current job that have not finished it
                                   (changed under pool_mu; the caller also polls it) */
static void (*job_fn)(void *, int);
static void *job_arg;
static unsigned long start_seen[LK_POOL_MAX + 1]; /* generation at each helper's creation */

static void cpu_relax(void) {
#if LK_X86
    __builtin_ia32_pause();
#endif
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Poll while waiting(arg) holds, for at most LK_POOL_SPIN_NS: 64 pauses, then yielding the
 * CPU between polls, so a spinning thread never holds back a thread that needs its core. */
static void poll_briefly(int (*waiting)(const void *), const void *arg) {
    const int64_t until = now_ns() + LK_POOL_SPIN_NS;
    for (int i = 0; waiting(arg); i++) {
        if (i < 64) {
            cpu_relax();
            continue;
        }
        sched_yield();
        if (now_ns() > until) break;
    }
}

static int no_new_job(const void *seen) {
    return atomic_load_explicit(&generation, memory_order_acquire) == *(const unsigned long *)seen;
}

static int helpers_inside(const void *unused) {
    (void)unused;
    return atomic_load_explicit(&active, memory_order_acquire) > 0;
}

/* Wait until the generation differs from seen: poll briefly, then sleep on the condition
 * variable. */
static void wait_for_job(unsigned long seen) {
    poll_briefly(no_new_job, &seen);
    pthread_mutex_lock(&pool_mu);
    while (atomic_load_explicit(&generation, memory_order_relaxed) == seen) {
        pthread_cond_wait(&pool_wake, &pool_mu);
    }
    /* returns with pool_mu held */
}

static void *helper_main(void *p) {
    const int idx = (int)(intptr_t)p;
    pthread_mutex_lock(&pool_mu);
    unsigned long seen = start_seen[idx];
    pthread_mutex_unlock(&pool_mu);
    for (;;) {
        wait_for_job(seen);
        seen = atomic_load_explicit(&generation, memory_order_relaxed);
        const int mine = idx <= want && !closed;
        if (mine) entered++;
        void (*fn)(void *, int) = job_fn;
        void *arg = job_arg;
        pthread_mutex_unlock(&pool_mu);
        if (!mine) continue;
        fn(arg, idx);
        pthread_mutex_lock(&pool_mu);
        if (atomic_fetch_sub_explicit(&active, 1, memory_order_release) == 1) {
            pthread_cond_signal(&pool_done);
        }
        pthread_mutex_unlock(&pool_mu);
    }
    return NULL;
}

/* fork(): hold the lock across it so the child copies a consistent state, then give the
 * child an empty pool (its helpers do not exist there). */
static void atfork_prepare(void) { pthread_mutex_lock(&pool_mu); }
static void atfork_parent(void) { pthread_mutex_unlock(&pool_mu); }
static void atfork_child(void) {
    started = 0;
    busy = 0;
    want = 0;
    entered = 0;
    closed = 0;
    atomic_store(&active, 0);
    pthread_mutex_init(&pool_mu, NULL);
    pthread_cond_init(&pool_wake, NULL);
    pthread_cond_init(&pool_done, NULL);
}

static void pool_init(void) { pthread_atfork(atfork_prepare, atfork_parent, atfork_child); }

/* Start helper number idx (pool_mu held). Returns 0 on success. */
static int start_helper(int idx) {
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0) return -1;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* the helper inherits "all blocked" */
    start_seen[idx] = atomic_load_explicit(&generation, memory_order_relaxed);
    pthread_t t;
    const int rc = pthread_create(&t, &attr, helper_main, (void *)(intptr_t)idx);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    return rc;
}

void lk_pool_run(int workers, void (*fn)(void *, int), void *arg) {
    int owner = 0;
    if (workers > 1) {
        pthread_once(&pool_once, pool_init);
        pthread_mutex_lock(&pool_mu);
        if (!busy) {
            busy = 1;
            owner = 1;
            const int wanted = workers - 1 < LK_POOL_MAX ? workers - 1 : LK_POOL_MAX;
            while (started < wanted && start_helper(started + 1) == 0) started++;
            want = wanted < started ? wanted : started;
            atomic_store_explicit(&active, want, memory_order_relaxed);
            entered = 0;
            closed = 0;
            job_fn = fn;
            job_arg = arg;
            atomic_fetch_add_explicit(&generation, 1, memory_order_release);
            pthread_cond_broadcast(&pool_wake);
        }
        pthread_mutex_unlock(&pool_mu);
    }
    fn(arg, 0); /* returns when no work is left to claim */
    if (owner) {
        pthread_mutex_lock(&pool_mu);
        closed = 1; /* helpers not yet in the job will not enter it ... */
        atomic_fetch_sub_explicit(&active, want - entered, memory_order_relaxed);
        /* ... so only those inside are waited for: first by polling (they are usually
         * about to finish their last unit; a futex sleep and wake-up would cost more than
         * the wait), then on the condition variable */
        if (helpers_inside(NULL)) {
            pthread_mutex_unlock(&pool_mu);
            poll_briefly(helpers_inside, NULL);
            pthread_mutex_lock(&pool_mu);
        }
        while (atomic_load_explicit(&active, memory_order_relaxed) > 0) {
            pthread_cond_wait(&pool_done, &pool_mu);
        }
        busy = 0;
        pthread_mutex_unlock(&pool_mu);
    }
}
