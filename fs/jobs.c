/*
 * jobs.c - changes handed from the FUSE threads to the loop thread, which
 * owns the engine (struct fsjob).
 *
 * A FUSE thread queues a job, wakes the loop and sleeps until the job has
 * run.  A commit of a written "_" also waits, like a protocol reply, for
 * an `always` change log to have the change on disk and for the notifier
 * to have dropped what the kernel caches of the old value.  Jobs are few
 * (a close() of a written file, mkdir, rmdir, unlink of "_"); the loop
 * runs every queued one in one round.
 */
#include "fs_int.h"
#include "distkv.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

/* Whether a job's writer must still wait for the log (on the loop); the
 * wait for the notifier is the writer's own (dkvfs__submit). */
static bool job_waits(struct dkvfs *fs, const struct fsjob *j)
{
	return j->need && fs->opts.logger && !dkv_logger_is_durable(fs->opts.logger, j->need);
}

/* On the loop: release the writers whose changes are on disk now. */
static void release_waiters(struct dkvfs *fs)
{
	struct fsjob **pp = &fs->durable_wait;
	bool any = false;
	if (!*pp)
		return;
	pthread_mutex_lock(&fs->mu);
	while (*pp) {
		struct fsjob *j = *pp;
		if (job_waits(fs, j)) {
			pp = &j->next;
			continue;
		}
		*pp = j->next;
		j->done = true;
		any = true;
	}
	if (any)
		pthread_cond_broadcast(&fs->cond);
	pthread_mutex_unlock(&fs->mu);
}

void dkvfs__run_jobs(struct dkvfs *fs)
{
	pthread_mutex_lock(&fs->mu);
	struct fsjob *jobs = fs->jobs;
	fs->jobs = NULL;
	fs->jobs_tail = &fs->jobs;
	struct dkv_entry **unpins = fs->unpins;
	size_t nunpins = fs->nunpins;
	fs->unpins = NULL;
	fs->nunpins = fs->unpins_cap = 0;
	pthread_mutex_unlock(&fs->mu);

	for (size_t i = 0; i < nunpins; i++)
		dkv_entry_unpin(fs->e, unpins[i]);
	free(unpins);
	while (jobs) {
		struct fsjob *j = jobs;
		jobs = j->next;
		j->need = 0;
		j->need_fence = 0;
		int rc = j->run(fs, j);
		/* Only a commit of written text waits for the notifier: its
		 * writer holds no locks then.  unlink, mkdir, rmdir hold their
		 * directory's lock, which the notifier's invalidation takes (and
		 * the kernel updates its own caches after those). */
		if (!rc && j->fenced)
			j->need_fence = atomic_load(&fs->nq_seq);
		if (!rc && job_waits(fs, j)) {
			/* like a protocol reply: close() returns once the change is
			 * on disk (and, see dkvfs__submit, the kernel's caches have
			 * let go of the old value) */
			j->rc = rc;
			j->next = fs->durable_wait;
			fs->durable_wait = j;
			continue;
		}
		pthread_mutex_lock(&fs->mu);
		j->rc = rc;
		j->done = true;
		pthread_cond_broadcast(&fs->cond);
		pthread_mutex_unlock(&fs->mu);
	}
	release_waiters(fs);
	uint64_t done = atomic_load(&fs->inval_done);
	if (done != fs->fence_told) {
		fs->fence_told = done;
		if (fs->opts.fence_moved)
			fs->opts.fence_moved(fs->opts.fence_arg);
	}
}

/* The logger's listener, on the loop. */
void dkvfs__on_log_durable(void *arg)
{
	release_waiters(arg);
}

#define FENCE_WAIT_S 2 /* longest a writer's close() waits for the notifier */

int dkvfs__submit(struct dkvfs *fs, struct fsjob *j)
{
	pthread_mutex_lock(&fs->mu);
	j->next = NULL;
	j->done = false;
	*fs->jobs_tail = j;
	fs->jobs_tail = &j->next;
	pthread_mutex_unlock(&fs->mu);
	uv_async_send(&fs->async);
	pthread_mutex_lock(&fs->mu);
	while (!j->done)
		pthread_cond_wait(&fs->cond, &fs->mu);
	/* the notifier wakes us itself: one thread hop less than via the loop.
	 * The wait is bounded: should every worker thread be waiting here
	 * while the notifier needs one of them (an invalidation that waits for
	 * a directory lock held by a request in the queue), close() returns
	 * after FENCE_WAIT_S with the change applied but other readers'
	 * caches possibly not yet dropped, instead of hanging. */
	if (j->need_fence) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += FENCE_WAIT_S;
		while (!dkvfs__fence_passed(fs, j->need_fence) &&
		       pthread_cond_timedwait(&fs->cond, &fs->mu, &until) != ETIMEDOUT)
			;
	}
	pthread_mutex_unlock(&fs->mu);
	return j->rc;
}

/* The path of ent (internal entries are below None: relative to it). */
static bool job_path(struct dkvfs *fs, const struct dkv_entry *ent, bool *internal,
		     struct dkv_path *p)
{
	struct dkv_entry *meta = dkv_engine_meta(fs->e);
	*internal = false;
	dkv_path_init(p);
	for (const struct dkv_entry *x = ent; x; x = x->parent)
		*internal |= x == meta;
	return dkv_entry_path(ent, *internal ? meta : NULL, p);
}

/* A job's session refused: say why in the log (the caller gets EACCES
 * only).  Not per read: only changes are logged at info level. */
static void log_refusal(struct dkvfs *fs, const struct fsjob *j, const char *what)
{
	struct dkv_buf rel = {0};
	dkvfs__entry_relpath(fs, j->ent, &rel);
	dkv_report(DKV_REPORT_INFO, "%s%s%s: %s refused to %s: %s", fs->mnt, rel.len ? "/" : "",
		   dkv_buf_cstr(&rel), what, j->sess->user ? j->sess->user : "?", j->sess->why);
	dkv_buf_release(&rel);
}

/* The value the mount's user (server.mount.user) writes to a data path,
 * decoded by its converter (codec.h) into conv; a failure is logged and
 * stores nothing (-EINVAL).  The uid sessions of server.mount.users
 * read and write values as stored: the texts of `_` are shared. */
static int decode_value(struct dkvfs *fs, const struct fsjob *j, struct dkv_change *c,
			struct dkv_buf *conv)
{
	char why[300];
	if (!c->value || c->internal || j->sess != &fs->sess)
		return 0;
	int rc = dkv_session_decode(j->sess, c->path, c->path_len, &c->value, &c->value_len, conv,
				    why, sizeof why);
	if (rc) {
		struct dkv_buf rel = {0};
		dkvfs__entry_relpath(fs, j->ent, &rel);
		dkv_report(DKV_REPORT_ERROR, "%s%s%s/_: not stored: %s", fs->mnt, rel.len ? "/" : "",
			   dkv_buf_cstr(&rel), why);
		dkv_buf_release(&rel);
		rc = -EINVAL;
	}
	return rc;
}

/* A checker refused a change (a type check): say why in the log, since
 * the writer gets an errno only. */
static void log_checker(struct dkvfs *fs, const struct fsjob *j, const char *why)
{
	struct dkv_buf rel = {0};
	dkvfs__entry_relpath(fs, j->ent, &rel);
	dkv_report(DKV_REPORT_INFO, "%s%s%s: %s refused: %s", fs->mnt, rel.len ? "/" : "",
		   dkv_buf_cstr(&rel), j->data.len ? "write" : "delete", why);
	dkv_buf_release(&rel);
}

/* Set or delete the value of j->ent (a local change). */
int dkvfs__job_set(struct dkvfs *fs, struct fsjob *j)
{
	struct dkv_path p;
	struct dkv_result res;
	struct dkv_change c = {0};
	bool internal;
	if (!j->sess)
		j->sess = &fs->sess;
	if (!job_path(fs, j->ent, &internal, &p)) {
		dkv_path_release(&p);
		return -ENOENT;
	}
	c.path = p.enc.data;
	c.path_len = p.enc.len;
	c.internal = internal;
	c.value = j->data.len ? j->data.data : NULL;
	c.value_len = j->data.len;
	struct dkv_buf conv = {0};
	int rc = decode_value(fs, j, &c, &conv);
	if (rc) {
		dkv_buf_release(&conv);
		dkv_path_release(&p);
		return rc;
	}
	c.pre = (enum dkv_precond)j->pre;
	c.src = DKV_SRC_LOCAL;
	c.sess = j->sess; /* its inotify events came from the writer itself */
	/* NEEDSWORK: the in-place candidate still travels beside the apply,
	 * not with the change: dkv_change has no room for caller data */
	fs->inplace = j->inplace;
	rc = dkv_engine_apply(fs->e, &c, &res);
	fs->inplace = (struct inplace){0};
	if (!rc && fs->opts.logger)
		j->need = dkv_logger_need(fs->opts.logger);
	if (!rc && !j->data.len && !res.changed)
		rc = -ENOENT; /* nothing to delete */
	if (rc == -EACCES)
		log_refusal(fs, j, j->data.len ? "write" : "delete");
	else if (rc && res.why[0])
		log_checker(fs, j, res.why);
	dkv_result_release(fs->e, &res);
	dkv_buf_release(&conv);
	dkv_path_release(&p);
	return rc;
}

/* rm _: like a file removed from a directory, the directory stays
 * (until rmdir), although an entry without a value is not shown otherwise */
int dkvfs__job_unlink(struct dkvfs *fs, struct fsjob *j)
{
	int rc = dkvfs__job_set(fs, j);
	if (!rc)
		dkv_engine_set_keep(fs->e, j->ent, true);
	return rc;
}

/* May j's session use mode at j->ent's child j->data?  A directory is
 * made where a value could be created (c), and removed where one could
 * be deleted (d): mkdir and rmdir change only what this node shows. */
static int job_check(struct dkvfs *fs, struct fsjob *j, unsigned mode, const char *what)
{
	struct dkv_path p;
	bool internal;
	int rc = -ENOENT;
	if (!j->sess || !j->sess->check)
		return 0;
	if (job_path(fs, j->ent, &internal, &p)) {
		dkv_buf_append(&p.enc, j->data.data, j->data.len);
		rc = dkv_session_check(j->sess, p.enc.data, p.enc.len, internal, mode);
		if (rc == -EACCES)
			log_refusal(fs, j, what);
	}
	dkv_path_release(&p);
	return rc;
}

int dkvfs__job_mkdir(struct dkvfs *fs, struct fsjob *j)
{
	int rc = job_check(fs, j, DKV_ACL_CREATE, "mkdir");
	if (rc)
		return rc;
	return dkv_engine_mkdir(fs->e, j->ent, j->data.data, j->data.len, &j->out);
}

int dkvfs__job_rmdir(struct dkvfs *fs, struct fsjob *j)
{
	struct dkv_entry *k = dkv_entry_child(fs->e, j->ent, j->data.data, j->data.len);
	if (!k)
		return -ENOENT;
	for (unsigned i = 0; i < fs->nspecials; i++)
		if (fs->specials[i].ent == k)
			return -EPERM;
	int rc = job_check(fs, j, DKV_ACL_DELETE, "rmdir");
	return rc ? rc : dkv_engine_rmdir(fs->e, k);
}
