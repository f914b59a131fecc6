/*
 * exec.c - the Python thread: where the server's calls into stored code
 * run, so that no caller waits on Python longer than the time limit.
 *
 * The watchdog (proc.c) interrupts a script looping in Python, but not C
 * code that holds the GIL (a huge integer power, sum(range(10**12)), a
 * regex backtracking) nor a blocking call; a caller that ran such a call
 * itself would be stuck with it, and with the event loop in that caller,
 * every client.  So callers hand their call to this one thread and wait
 * for it with a bound: the time limit plus a grace for the watchdog's
 * TimeoutError to land.  A call that is not done by then is abandoned:
 * the caller reports a timeout and goes on, the thread finishes the call
 * whenever it ends and frees it.  While it is in an abandoned call, every
 * new call fails at once ("Python is busy ...") instead of queueing
 * behind it, so a stuck script costs its callers nothing but errors.
 *
 * The workload: short calls (a type check, a codec) one after the other
 * from the loop, tens of thousands a second.  A handover costs a queue
 * lock and, when the thread has been idle for more than SPIN_US, one
 * wake-up; a caller spins for up to SPIN_US before it sleeps on the
 * answer, so a call of a few microseconds costs no sleep at either end.
 */
#include "py_int.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SPIN_US 30 /* how long either side spins before it sleeps */

enum { QUEUED, RUNNING, DONE, ABANDONED };

static struct {
	pthread_mutex_t lock;
	pthread_cond_t work, done; /* on CLOCK_MONOTONIC */
	pthread_t thread;
	bool started;
	bool sleeping;                 /* the thread waits for work; lock */
	struct dkv__py_job *head, *tail; /* the queue; lock */
	atomic_bool queued;            /* head != NULL, for spinning without the lock */
	atomic_uint waiters;           /* callers asleep on done */
	uint64_t next_id;              /* lock */
	_Atomic uint64_t running;      /* the id of the job running; 0: none */
	_Atomic uint64_t abandoned;    /* the id of the last job abandoned running */
	_Atomic double abandoned_at;   /* when, monotonic seconds */
	bool stop;                     /* lock */
} ex = {.lock = PTHREAD_MUTEX_INITIALIZER};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static struct timespec abs_time(double t)
{
	struct timespec ts;
	ts.tv_sec = (time_t)t;
	ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
	return ts;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* The next job, or NULL once asked to stop with nothing queued. */
static struct dkv__py_job *take(void)
{
	double until = now() + SPIN_US * 1e-6;
	for (unsigned i = 0; !atomic_load_explicit(&ex.queued, memory_order_acquire); i++) {
		cpu_relax();
		if ((i & 63) == 63 && now() > until)
			break;
	}
	pthread_mutex_lock(&ex.lock);
	if (!ex.head) /* idle: the watchdog and others may have the GIL */
		dkv__py_keep_gil(false);
	while (!ex.head && !ex.stop) {
		ex.sleeping = true;
		pthread_cond_wait(&ex.work, &ex.lock);
		ex.sleeping = false;
	}
	struct dkv__py_job *j = ex.head;
	if (j) {
		ex.head = j->next;
		if (!ex.head) {
			ex.tail = NULL;
			atomic_store_explicit(&ex.queued, false, memory_order_relaxed);
		}
	}
	pthread_mutex_unlock(&ex.lock);
	return j;
}

static void *python_thread(void *arg)
{
	struct dkv__py_job *j;
	(void)arg;
	while ((j = take())) {
		dkv__py_keep_gil(true);
		int expect = QUEUED;
		atomic_store(&ex.running, j->id);
		if (atomic_compare_exchange_strong(&j->state, &expect, RUNNING))
			j->run(j);
		atomic_store(&ex.running, 0);
		bool detached = j->detached; /* a waiter may free j once it is DONE */
		int was = atomic_exchange(&j->state, DONE);
		if (was == ABANDONED || detached)
			j->drop(j);
		else if (atomic_load(&ex.waiters)) {
			pthread_mutex_lock(&ex.lock);
			pthread_cond_broadcast(&ex.done);
			pthread_mutex_unlock(&ex.lock);
		}
	}
	dkv__py_keep_gil(false);
	dkv__py_finish();
	return NULL;
}

/* With ex.lock.  The thread blocks every signal: the event loop owns
 * them. */
static int start_locked(void)
{
	pthread_condattr_t ca;
	sigset_t all, old;
	int rc;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ex.work, &ca);
	pthread_cond_init(&ex.done, &ca);
	pthread_condattr_destroy(&ca);
	ex.stop = false;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&ex.thread, NULL, python_thread, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		pthread_cond_destroy(&ex.work);
		pthread_cond_destroy(&ex.done);
		return -rc;
	}
	ex.started = true;
	return 0;
}

static int submit(struct dkv__py_job *j)
{
	j->next = NULL;
	atomic_store(&j->state, QUEUED);
	pthread_mutex_lock(&ex.lock);
	int rc = ex.started ? 0 : start_locked();
	if (!rc) {
		j->id = ++ex.next_id;
		if (ex.tail)
			ex.tail->next = j;
		else
			ex.head = j;
		ex.tail = j;
		atomic_store_explicit(&ex.queued, true, memory_order_release);
		if (ex.sleeping)
			pthread_cond_signal(&ex.work);
	}
	pthread_mutex_unlock(&ex.lock);
	return rc;
}

static atomic_bool inline_calls; /* dkv_py_set_inline */

void dkv_py_set_inline(bool on)
{
	atomic_store(&inline_calls, on);
}

int dkv__py_exec(struct dkv__py_job *j, double wait, char *err, size_t errlen)
{
	if (atomic_load_explicit(&inline_calls, memory_order_relaxed)) {
		j->run(j);
		return 0;
	}
	uint64_t running = atomic_load(&ex.running);
	if (running && running == atomic_load(&ex.abandoned)) {
		snprintf(err, errlen,
			 "TimeoutError('Python is busy: a stored script overran its time "
			 "limit %.1f s ago and has not returned')",
			 now() - atomic_load(&ex.abandoned_at));
		return -EBUSY;
	}
	j->detached = false;
	int rc = submit(j);
	if (rc) {
		snprintf(err, errlen, "cannot start the Python thread: %s", strerror(-rc));
		return rc;
	}
	double deadline = wait > 0 ? now() + wait : 0;
	double until = now() + SPIN_US * 1e-6;
	for (unsigned i = 0; atomic_load(&j->state) != DONE; i++) {
		cpu_relax();
		if ((i & 63) == 63 && now() > until)
			break;
	}
	if (atomic_load(&j->state) == DONE)
		return 0;
	pthread_mutex_lock(&ex.lock);
	atomic_fetch_add(&ex.waiters, 1);
	while (atomic_load(&j->state) != DONE) {
		if (!deadline) {
			pthread_cond_wait(&ex.done, &ex.lock);
			continue;
		}
		struct timespec ts = abs_time(deadline);
		if (pthread_cond_timedwait(&ex.done, &ex.lock, &ts) == ETIMEDOUT)
			break;
	}
	atomic_fetch_sub(&ex.waiters, 1);
	pthread_mutex_unlock(&ex.lock);
	int state = atomic_load(&j->state);
	while (state != DONE) {
		if (atomic_compare_exchange_weak(&j->state, &state, ABANDONED)) {
			if (state == RUNNING) {
				atomic_store(&ex.abandoned_at, now());
				atomic_store(&ex.abandoned, j->id);
			}
			return -ETIMEDOUT; /* the job is the thread's now */
		}
	}
	return 0;
}

int dkv__py_exec_later(struct dkv__py_job *j)
{
	if (atomic_load_explicit(&inline_calls, memory_order_relaxed)) {
		j->run(j);
		j->drop(j);
		return 0;
	}
	j->detached = true;
	return submit(j);
}

bool dkv__py_exec_stop(double wait)
{
	pthread_mutex_lock(&ex.lock);
	bool started = ex.started;
	ex.stop = true;
	if (started)
		pthread_cond_signal(&ex.work);
	pthread_mutex_unlock(&ex.lock);
	if (!started) { /* inline calls: the interpreter is the caller's to stop */
		dkv__py_finish();
		return true;
	}
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)wait + 1;
	if (pthread_timedjoin_np(ex.thread, NULL, &ts))
		return false; /* stuck in a call: it and the interpreter stay */
	pthread_cond_destroy(&ex.work);
	pthread_cond_destroy(&ex.done);
	ex.started = false;
	return true;
}

bool dkv__py_on_thread(void)
{
	return ex.started && pthread_equal(pthread_self(), ex.thread);
}
