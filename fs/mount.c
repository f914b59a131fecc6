/*
 * mount.c - the mount's life: dkvfs_mount (detaching a dead daemon's
 * stale mount first), dkvfs_close, the table of FUSE operations, and the
 * handlers that concern the whole mount (INIT, STATFS, POLL).
 */
#include "fs_int.h"
#include "distkv.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

static const char *const special_names[][3] = {
	/* name, first element ("" = None), second element */
	{".acl", "", "acl"},       {".auth", "", "auth"},     {".type", "", "type"},
	{".codec", "", "codec"},   {".conv", "", "conv"},     {".match", "", "match"},
	{".code", "", "code"},     {".module", "", "module"}, {".run", ".distkv", "run"},
	{".errors", ".distkv", "error"},
};

/* The connection's options; not a request (no reply). */
static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	/* "echo x > _" must truncate: open gets O_TRUNC itself */
	conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	conn->want &= ~(unsigned)FUSE_CAP_READDIRPLUS_AUTO;
	conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE; /* see doc/filesystem.md */
	conn->want &= ~(unsigned)FUSE_CAP_AUTO_INVAL_DATA;
	(void)userdata;
	if (conn->capable & FUSE_CAP_EXPLICIT_INVAL_DATA)
		conn->want |= FUSE_CAP_EXPLICIT_INVAL_DATA;
}

/* Valid replies: fuse_reply_statfs.  Made-up sizes with room to spare
 * (df, and programs that check for space before writing). */
static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	COUNT(FS(req), statfs);
	struct dkvfs *fs = FS(req);
	struct statvfs sv;
	(void)ino;
	if (!dkvfs__session(fs, req)) {
		fuse_reply_err(req, EACCES);
		return;
	}
	memset(&sv, 0, sizeof sv);
	sv.f_bsize = 4096;
	sv.f_frsize = 4096;
	sv.f_blocks = 1u << 30;
	sv.f_bfree = 1u << 29;
	sv.f_bavail = 1u << 29;
	sv.f_files = dkv_engine_entry_count(fs->e) + (1u << 20);
	sv.f_ffree = 1u << 20;
	sv.f_favail = 1u << 20;
	sv.f_namemax = 255;
	fuse_reply_statfs(req, &sv);
}

/* Valid replies: fuse_reply_poll.  A .watch is readable while news is
 * pending; every other file always is, and writable. */
static void op_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		    struct fuse_pollhandle *ph)
{
	COUNT(FS(req), poll);
	struct dkvfs *fs = FS(req);
	enum fskind k;
	dkvfs__ino_entry(fs, ino, &k);
	if (k == K_WATCH) {
		dkvfs__watch_poll(fs, req, fi->fh, ph);
		return;
	}
	if (ph)
		fuse_pollhandle_destroy(ph);
	fuse_reply_poll(req, POLLIN | POLLOUT);
}

static const struct fuse_lowlevel_ops ops = {
	.init = op_init,
	.lookup = dkvfs__op_lookup,
	.forget = dkvfs__op_forget,
	.forget_multi = dkvfs__op_forget_multi,
	.getattr = dkvfs__op_getattr,
	.setattr = dkvfs__op_setattr,
	.open = dkvfs__op_open,
	.create = dkvfs__op_create,
	.read = dkvfs__op_read,
	.write = dkvfs__op_write,
	.flush = dkvfs__op_flush,
	.release = dkvfs__op_release,
	.opendir = dkvfs__op_opendir,
	.readdir = dkvfs__op_readdir,
	.readdirplus = dkvfs__op_readdirplus,
	.releasedir = dkvfs__op_releasedir,
	.mkdir = dkvfs__op_mkdir,
	.rmdir = dkvfs__op_rmdir,
	.unlink = dkvfs__op_unlink,
	.rename = dkvfs__op_rename,
	.statfs = op_statfs,
	.poll = op_poll,
	.access = dkvfs__op_access,
};

static void on_async(uv_async_t *h)
{
	dkvfs__run_jobs(h->data);
}

static void *fuse_main_thread(void *arg)
{
	struct dkvfs *fs = arg;
	int rc = dkvfs__workers_run(fs);
	if (rc)
		dkv_report(DKV_REPORT_ERROR, "%s: cannot serve FUSE requests: %s", fs->mnt,
			   dkv_strerror(rc));
	return NULL;
}

/* Abort a FUSE connection through fusectl: every process blocked on the
 * dead daemon's mount (even inside the dead daemon) gets ENOTCONN. */
static void abort_connection(unsigned minor)
{
	char path[96];
	struct stat st;
	if (stat("/sys/fs/fuse/connections", &st) == 0) {
		snprintf(path, sizeof path, "/sys/fs/fuse/connections/%u/abort", minor);
		if (access(path, F_OK))
			mount("fusectl", "/sys/fs/fuse/connections", "fusectl", 0, NULL);
		FILE *f = fopen(path, "w");
		if (f) {
			fputs("1", f);
			fclose(f);
		}
	}
}

/* A dead daemon's mount answers "Transport endpoint is not connected"
 * (stat may still be answered from the kernel's caches; statfs is not);
 * abort and detach it so that we can mount again.  A live one is left
 * alone. */
/* Whether the daemon that mounted a tree (its pid is in the mount's
 * source, "distkv:PID") still runs: not gone, not a zombie, not being
 * killed (a SIGKILL pending; a thread stuck in the kernel can keep such a
 * process from ever exiting). */
static bool daemon_alive(pid_t pid)
{
	char path[64], line[256];
	bool alive = false;
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	alive = true;
	while (fgets(line, sizeof line, f)) {
		unsigned long long mask;
		if (!strncmp(line, "State:", 6) && strchr(line, 'Z'))
			alive = false;
		if ((sscanf(line, "ShdPnd: %llx", &mask) == 1 || sscanf(line, "SigPnd: %llx", &mask) == 1) &&
		    (mask & (1ull << (SIGKILL - 1))))
			alive = false;
	}
	fclose(f);
	return alive;
}

static int clear_stale_mount(const char *mnt, char *err, size_t errlen)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[4096];
	unsigned min = 0;
	int pid = 0;
	bool mounted = false;
	while (f && fgets(line, sizeof line, f)) {
		char path[4096];
		unsigned a, b;
		if (sscanf(line, "%*s %*s %u:%u %*s %4095s", &a, &b, path) == 3 && !strcmp(path, mnt) &&
		    strstr(line, " fuse.distkv ")) {
			const char *src = strstr(line, " fuse.distkv ") + strlen(" fuse.distkv ");
			mounted = true;
			min = b;
			if (sscanf(src, "distkv:%d", &pid) != 1)
				pid = 0;
		}
	}
	if (f)
		fclose(f);
	if (mounted) {
		/* never statfs it: a dead daemon's mount can hang the caller */
		if (pid > 0 && daemon_alive(pid)) {
			snprintf(err, errlen, "%s: another distkv node (pid %d) is mounted here", mnt,
				 pid);
			return -EBUSY;
		}
		dkv_report(DKV_REPORT_INFO, "%s: detaching the stale mount of a dead daemon", mnt);
		abort_connection(min);
		if (umount2(mnt, MNT_DETACH) && errno != EINVAL) {
			int rc = -errno;
			snprintf(err, errlen, "%s: cannot detach stale mount: %s", mnt,
				 dkv_strerror(rc));
			return rc;
		}
	}
	struct stat st;
	if (stat(mnt, &st) == 0) {
		if (!S_ISDIR(st.st_mode)) {
			snprintf(err, errlen, "%s: not a directory", mnt);
			return -ENOTDIR;
		}
		return 0;
	}
	if (errno == ENOTCONN || errno == ECONNABORTED) { /* a stale mount of another kind */
		if (umount2(mnt, MNT_DETACH) && errno != EINVAL) {
			int rc = -errno;
			snprintf(err, errlen, "%s: cannot detach stale mount: %s", mnt,
				 dkv_strerror(rc));
			return rc;
		}
		return 0;
	}
	if (errno == ENOENT && mkdir(mnt, 0755) == 0)
		return 0;
	int rc = -errno;
	snprintf(err, errlen, "%s: %s", mnt, dkv_strerror(rc));
	return rc;
}

static void make_specials(struct dkvfs *fs)
{
	struct dkv_entry *meta = dkv_engine_meta(fs->e);
	for (size_t i = 0; i < sizeof special_names / sizeof special_names[0]; i++) {
		struct dkv_path p;
		dkv_path_init(&p);
		struct dkv_entry *base = meta;
		if (special_names[i][1][0]) {
			base = NULL;
			dkv_path_push_str(&p, special_names[i][1]);
		}
		dkv_path_push_str(&p, special_names[i][2]);
		struct dkv_entry *ent = dkv_entry_lookup(fs->e, base, p.enc.data, p.enc.len, true);
		dkv_path_release(&p);
		dkv_entry_pin(ent);
		fs->specials[fs->nspecials].name = special_names[i][0];
		fs->specials[fs->nspecials].ent = ent;
		fs->specials[fs->nspecials].internal = base == meta;
		if (base == meta && !strcmp(special_names[i][2], "acl"))
			fs->acl_dir = ent;
		if (base == meta && !strcmp(special_names[i][2], "auth"))
			fs->auth_dir = ent;
		if (base != meta && !strcmp(special_names[i][2], "run"))
			fs->run_dir = ent;
		if (base != meta && !strcmp(special_names[i][2], "error"))
			fs->err_dir = ent;
		fs->nspecials++;
	}
	struct dkv_path p;
	dkv_path_init(&p);
	dkv_path_push_str(&p, ".distkv");
	dkv_path_push_str(&p, "state");
	fs->state_dir = dkv_entry_lookup(fs->e, NULL, p.enc.data, p.enc.len, true);
	dkv_entry_pin(fs->state_dir);
	dkv_path_release(&p);
}

int dkvfs_mount(struct dkvfs **out, uv_loop_t *loop, struct dkv_engine *e,
		const struct dkvfs_opts *opts, char *err, size_t errlen)
{
	struct dkvfs *fs;
	int rc;

	*out = NULL;
	char *mnt = realpath(opts->mountpoint, NULL);
	if (!mnt) {
		if (errno == ENOENT && mkdir(opts->mountpoint, 0755) == 0)
			mnt = realpath(opts->mountpoint, NULL);
		else if (errno == ENOTCONN)
			mnt = dkv_xstrdup(opts->mountpoint);
	}
	if (!mnt) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", opts->mountpoint, dkv_strerror(rc));
		return rc;
	}
	rc = clear_stale_mount(mnt, err, errlen);
	if (rc) {
		free(mnt);
		return rc;
	}

	fs = dkv_xcalloc(1, sizeof *fs);
	fs->e = e;
	fs->loop = loop;
	fs->opts = *opts;
	fs->mnt = mnt;
	fs->uid = getuid();
	fs->gid = getgid();
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	fs->mount_time_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
	dkvfs__inodes_init(fs);
	fs->jobs_tail = &fs->jobs;
	pthread_mutex_init(&fs->mu, NULL);
	pthread_cond_init(&fs->cond, NULL);
	uv_async_init(loop, &fs->async, on_async);
	fs->async.data = fs;
	make_specials(fs);
	dkvfs__ev_init(fs);
	rc = dkvfs__sessions_init(fs, err, errlen);
	if (rc)
		goto fail;

	/* Unchecked, the kernel checks the bits itself and only the user
	 * that mounted gets in (FUSE's default).  Checked, the daemon
	 * decides every request (access.c) and the bits only inform. */
	char mopts[160];
	snprintf(mopts, sizeof mopts, "fsname=distkv:%d,subtype=distkv%s%s", (int)getpid(),
		 fs->checked ? "" : ",default_permissions", fs->allow_other ? ",allow_other" : "");
	char *argv[] = {"distkv", "-o", mopts, opts->debug ? "-d" : NULL, NULL};
	struct fuse_args args = FUSE_ARGS_INIT(opts->debug ? 4 : 3, argv);
	fs->se = fuse_session_new(&args, &ops, sizeof ops, fs);
	fuse_opt_free_args(&args);
	if (!fs->se) {
		snprintf(err, errlen, "%s: cannot create the FUSE session", mnt);
		rc = -EIO;
		goto fail;
	}
	if (fuse_session_mount(fs->se, mnt)) {
		snprintf(err, errlen, "%s: mount failed (is /dev/fuse there, and are we root?)", mnt);
		rc = -EIO;
		goto fail;
	}
	dkv_engine_add_hook(e, dkvfs__on_change, fs);
	if (opts->logger)
		dkv_logger_add_notify(opts->logger, dkvfs__on_log_durable, fs);
	rc = dkvfs__notify_start(fs);
	if (rc) {
		snprintf(err, errlen, "cannot start the notifier thread: %s", dkv_strerror(rc));
		if (opts->logger)
			dkv_logger_remove_notify(opts->logger, dkvfs__on_log_durable, fs);
		dkv_engine_remove_hook(e, dkvfs__on_change, fs);
		fuse_session_unmount(fs->se);
		goto fail;
	}
	rc = -pthread_create(&fs->fuse_thread, NULL, fuse_main_thread, fs);
	if (rc) {
		snprintf(err, errlen, "cannot start the FUSE thread: %s", dkv_strerror(rc));
		dkvfs__notify_stop(fs);
		if (opts->logger)
			dkv_logger_remove_notify(opts->logger, dkvfs__on_log_durable, fs);
		dkv_engine_remove_hook(e, dkvfs__on_change, fs);
		fuse_session_unmount(fs->se);
		goto fail;
	}
	fs->fuse_thread_running = true;
	*out = fs;
	return 0;

fail:
	if (fs->se)
		fuse_session_destroy(fs->se);
	for (unsigned i = 0; i < fs->nspecials; i++)
		dkv_entry_unpin(e, fs->specials[i].ent);
	if (fs->state_dir)
		dkv_entry_unpin(e, fs->state_dir);
	dkvfs__sessions_release(fs);
	dkvfs__ev_free(fs);
	uv_close((uv_handle_t *)&fs->async, NULL);
	/* fs is freed by the caller's loop run via the closer below */
	fs->se = NULL;
	dkvfs__inodes_release(fs);
	free(fs->mnt);
	pthread_mutex_destroy(&fs->mu);
	pthread_cond_destroy(&fs->cond);
	fs->mnt = NULL;
	/* NEEDSWORK: fs leaks on this error path because the async handle
	 * closes asynchronously; the daemon exits right after anyway. */
	return rc;
}

static void fs_free(uv_handle_t *h)
{
	struct dkvfs *fs = h->data;
	void (*cb)(void *) = fs->close_cb;
	void *arg = fs->close_arg;
	dkvfs__inodes_release(fs);
	dkvfs__ev_free(fs);
	for (size_t i = 0; i < fs->nunpins; i++)
		dkv_entry_unpin(fs->e, fs->unpins[i]);
	for (unsigned i = 0; i < fs->nspecials; i++)
		dkv_entry_unpin(fs->e, fs->specials[i].ent);
	dkv_entry_unpin(fs->e, fs->state_dir);
	free(fs->unpins);
	free(fs->awaited);
	dkvfs__sessions_release(fs);
	free(fs->mnt);
	dkv_buf_release(&fs->expect.name);
	for (unsigned i = 0; i < 32; i++)
		dkv_buf_release(&fs->cursors[i].name);
	while (fs->vfiles)
		dkvfs__vfile_free(fs, fs->vfiles);
	pthread_mutex_destroy(&fs->mu);
	pthread_cond_destroy(&fs->cond);
	free(fs);
	if (cb)
		cb(arg);
}

/* Poll until the FUSE thread is gone; meanwhile the loop keeps running
 * the jobs that its threads may be waiting for. */
static void closer_tick(uv_idle_t *h)
{
	struct dkvfs *fs = h->data;
	dkvfs__run_jobs(fs);
	if (pthread_tryjoin_np(fs->fuse_thread, NULL) != 0) {
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
		return;
	}
	uv_idle_stop(h);
	fuse_session_destroy(fs->se);
	fs->se = NULL;
	dkvfs__run_jobs(fs);
	dkvfs__watch_drop_all(fs); /* readers the kernel never released */
	uv_close((uv_handle_t *)h, NULL);
	uv_close((uv_handle_t *)&fs->async, fs_free);
}

void dkvfs_close(struct dkvfs *fs, void (*cb)(void *arg), void *arg)
{
	if (!fs) {
		if (cb)
			cb(arg);
		return;
	}
	fs->close_cb = cb;
	fs->close_arg = arg;
	fs->opts.fence_moved = NULL; /* the server may go first */
	dkv_engine_remove_hook(fs->e, dkvfs__on_change, fs);
	if (fs->opts.logger) {
		/* nobody may wait for a log that is about to close */
		dkv_logger_remove_notify(fs->opts.logger, dkvfs__on_log_durable, fs);
		fs->opts.logger = NULL;
		dkvfs__on_log_durable(fs);
	}
	dkvfs__notify_stop(fs);
	dkvfs__watch_close_all(fs);
	fuse_session_exit(fs->se);
	/* detaching the mount ends the kernel side; the worker threads then
	 * see ENODEV and return */
	fuse_session_unmount(fs->se);
	uv_idle_init(fs->loop, &fs->closer);
	fs->closer.data = fs;
	uv_idle_start(&fs->closer, closer_tick);
}

