/*
 * workers.c - the threads that answer the kernel's FUSE requests.
 *
 * A request's round trip is mostly scheduling: the kernel queues it, wakes
 * a thread sleeping in read(/dev/fuse), that thread answers, the kernel
 * wakes the caller.  On a virtual machine waking a sleeping CPU is the
 * dearest part, and sequential callers (ls -R, find, a shell loop of cat)
 * pay it on every request.  So a thread that just answered a request does
 * not go to sleep at once: for a short while (spin_us) it keeps asking the
 * device, non-blocking, for the next one.  Measured on a 2-CPU VM with a
 * minimal libfuse filesystem: a GETATTR round trip of 15-23 us sleeping,
 * 8-9 us spinning.  A mount with nobody using it spins for nothing.
 *
 * Leader and followers: one thread at a time (the leader) reads the
 * device, so only one spins and a request wakes only one thread.  The
 * leader answers quick requests itself and stays leader.  Before a
 * request whose handler may wait (for the loop thread, the log, the
 * notifier, or a .watch stream), it hands leadership to a follower
 * (starting a thread if none is idle, up to max_threads), so that requests
 * keep being read while it waits; the notifier's invalidations may depend
 * on them.  Nobody spins while such a handler waits: what it waits for
 * (the loop thread, the notifier) needs the CPU.
 *
 * NEEDSWORK: quick requests are answered one at a time by the leader.  On
 * this 2-CPU machine that is as fast as libfuse's pool or faster (see
 * doc/benchmarks.md); with many CPUs and many busy readers, handing over
 * when more requests are queued would let them run in parallel.
 */
#include "fs_int.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct workers {
	struct dkvfs *fs;
	pthread_mutex_t mu;
	pthread_cond_t cond;   /* followers wait here to lead; also "a thread ended" */
	bool leading;          /* a thread is the leader */
	bool done;             /* the session ended */
	unsigned idle;         /* followers waiting */
	unsigned nthreads;     /* running */
	unsigned max_threads;
	_Atomic unsigned waiting; /* threads in a handler that may wait */
	int64_t spin_ns;
	_Atomic int64_t last_ns; /* when a request last came */
};

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Whether the handler of the request in buf may wait for something other
 * than a short lock: then the leader hands over before running it. */
static bool may_wait(const struct fuse_buf *buf)
{
	if (buf->flags & FUSE_BUF_IS_FD || buf->size < sizeof(struct fuse_in_header))
		return true;
	const struct fuse_in_header *in = buf->mem;
	switch (in->opcode) {
	case FUSE_LOOKUP:
	case FUSE_FORGET:
	case FUSE_BATCH_FORGET:
	case FUSE_GETATTR:
	case FUSE_OPENDIR:
	case FUSE_WRITE: /* collects text; the commit is at FLUSH */
	case FUSE_READDIR:
	case FUSE_READDIRPLUS:
	case FUSE_STATFS:
	case FUSE_ACCESS:
	case FUSE_GETXATTR:
	case FUSE_LISTXATTR:
		return false;
	case FUSE_OPEN: /* a .watch open starts its stream on the loop thread */
	case FUSE_READ: /* and a .watch read blocks until there is news */
		return !(in->nodeid & VER_BIT) && (in->nodeid & KIND_MASK) == K_WATCH;
	case FUSE_RELEASE: { /* a read-only open of a version has nothing to commit */
		const struct fuse_release_in *rel = (const void *)(in + 1);
		return buf->size < sizeof *in + sizeof *rel || rel->fh != 0;
	}
	default:
		return true;
	}
}

/* The next request, or 0 when the session is over (<0: an error). */
static int next_request(struct workers *w, struct fuse_buf *buf)
{
	struct fuse_session *se = w->fs->se;
	for (;;) {
		int r = fuse_session_receive_buf(se, buf);
		if (r > 0) {
			atomic_store_explicit(&w->last_ns, mono_ns(), memory_order_relaxed);
			return r;
		}
		if (r == 0 || fuse_session_exited(se))
			return 0;
		if (r == -EINTR)
			continue;
		if (r != -EAGAIN)
			return r;
		/* not while a handler waits: that is for the loop thread or the
		 * notifier, which would then share a CPU with this one */
		if (!atomic_load_explicit(&w->waiting, memory_order_relaxed) &&
		    mono_ns() - atomic_load_explicit(&w->last_ns, memory_order_relaxed) < w->spin_ns) {
			sched_yield(); /* a task waiting for this CPU goes first */
			continue;
		}
		/* the connection's end (unmount, abort) shows as POLLERR; the
		 * next read then ends the session */
		struct pollfd p = {.fd = fuse_session_fd(se), .events = POLLIN};
		if (p.fd < 0)
			return 0; /* unmounted */
		if (poll(&p, 1, 1000) < 0 && errno != EINTR)
			return -errno;
		if (p.revents & POLLNVAL)
			return 0;
	}
}

static void *worker_main(void *arg);

/* Under w->mu: let another thread lead (a follower, or a new thread). */
static void hand_over(struct workers *w)
{
	w->leading = false;
	if (w->idle) {
		pthread_cond_signal(&w->cond);
		return;
	}
	if (w->nthreads >= w->max_threads)
		return; /* the first thread back will lead */
	pthread_t t;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (!pthread_create(&t, &attr, worker_main, w))
		w->nthreads++;
	pthread_attr_destroy(&attr);
}

static void *worker_main(void *arg)
{
	struct workers *w = arg;
	struct fuse_buf buf = {0};
	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (w->leading && !w->done) {
			w->idle++;
			pthread_cond_wait(&w->cond, &w->mu);
			w->idle--;
		}
		if (w->done)
			break;
		w->leading = true;
		pthread_mutex_unlock(&w->mu);
		int r = next_request(w, &buf);
		pthread_mutex_lock(&w->mu);
		if (r <= 0) {
			if (r < 0)
				dkv_report(DKV_REPORT_ERROR, "%s: reading FUSE requests: %s",
					   w->fs->mnt, dkv_strerror(r));
			w->done = true;
			pthread_cond_broadcast(&w->cond);
			break;
		}
		bool waits = may_wait(&buf);
		if (waits) {
			atomic_fetch_add(&w->waiting, 1);
			hand_over(w);
		}
		pthread_mutex_unlock(&w->mu);
		fuse_session_process_buf(w->fs->se, &buf);
		if (waits)
			atomic_fetch_sub(&w->waiting, 1);
		pthread_mutex_lock(&w->mu);
		if (!waits)
			w->leading = false; /* and lead again, unless a follower took over */
	}
	w->nthreads--;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->mu);
	free(buf.mem);
	return NULL;
}

int dkvfs__workers_run(struct dkvfs *fs)
{
	struct workers w = {
		.fs = fs,
		.max_threads = fs->opts.max_threads > 0 ? (unsigned)fs->opts.max_threads : 64,
		.spin_ns = (int64_t)fs->opts.spin_us * 1000,
		.nthreads = 1,
	};
	int fd = fuse_session_fd(fs->se);
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	pthread_mutex_init(&w.mu, NULL);
	pthread_cond_init(&w.cond, NULL);
	worker_main(&w); /* this thread is the first worker */
	pthread_mutex_lock(&w.mu);
	while (w.nthreads) /* the others see done, or finish their request */
		pthread_cond_wait(&w.cond, &w.mu);
	pthread_mutex_unlock(&w.mu);
	pthread_cond_destroy(&w.cond);
	pthread_mutex_destroy(&w.mu);
	return 0;
}
