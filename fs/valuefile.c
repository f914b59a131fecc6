/*
 * valuefile.c - open files: "_" (the value as YAML) and the read-only
 * ".meta" and ".stats" (".watch" is watchfile.c's).
 *
 * Most opens of "_" are reads, served from the page cache of the version
 * opened (fs_int.h, struct fsver).  A writer's text collects in its open
 * file (struct vfile) and is parsed and stored when the file is flushed
 * or released, unless its writer was killed or an earlier write failed:
 * then the file is poisoned and never stores.  Every refusal is said in
 * the daemon's log, since the writer gets only an errno (a shell's
 * redirection not even that).
 */
#include "fs_int.h"
#include "distkv.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_WRITE (16u << 20)  /* largest text written to a "_" file */

struct vfile {
	struct dkv_buf text; /* what reads return; what writes change */
	bool writable;
	bool dirty;          /* changed since the last commit (written, or O_TRUNC) */
	bool written;        /* write() or ftruncate() since the last commit */
	bool excl;           /* created with O_EXCL: commit only if still new */
	bool notifier;       /* the notifier's own: nothing to commit */
	bool created;        /* made by create(): the kernel thinks "_" exists */
	int failed;          /* negative errno: a write, truncation or commit of this
			      * open file failed, so what it holds is not what its
			      * writer meant; it never commits, and every later write,
			      * truncation, flush and close gets this error */
	struct fsver *ver;   /* the version opened for writing (or created); the
			      * kernel holds it while the file is open */
	struct dkv_session *sess; /* who opened it: its commits are theirs */
	struct vfile *next, *prev; /* fs->vfiles, under fs->mu */
	pthread_mutex_t mu;  /* one open file may be used by several threads */
};

/* Open files are listed so that those the kernel never releases (the
 * mount went away under them) can be freed at the end. */
static struct vfile *vfile_new(struct dkvfs *fs)
{
	struct vfile *v = dkv_xcalloc(1, sizeof *v);
	pthread_mutex_init(&v->mu, NULL);
	pthread_mutex_lock(&fs->mu);
	v->next = fs->vfiles;
	if (v->next)
		v->next->prev = v;
	fs->vfiles = v;
	pthread_mutex_unlock(&fs->mu);
	return v;
}

void dkvfs__vfile_free(struct dkvfs *fs, struct vfile *v)
{
	pthread_mutex_lock(&fs->mu);
	if (v->prev)
		v->prev->next = v->next;
	else
		fs->vfiles = v->next;
	if (v->next)
		v->next->prev = v->prev;
	pthread_mutex_unlock(&fs->mu);
	dkv_buf_release(&v->text);
	pthread_mutex_destroy(&v->mu);
	free(v);
}

/* The kernel let go of a file opened for writing (or created): it no
 * longer writes the version's size. */
static void vfile_release_version(struct dkvfs *fs, struct vfile *v)
{
	if (!v->ver)
		return;
	pthread_mutex_lock(&fs->mu);
	v->ver->writers--;
	pthread_mutex_unlock(&fs->mu);
	v->ver = NULL;
}

/* Say in the log why a write to ent's "_" was not stored: the writer gets
 * only an errno, and a shell's redirection not even that. */
static void log_not_stored(struct dkvfs *fs, struct dkv_entry *ent, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void log_not_stored(struct dkvfs *fs, struct dkv_entry *ent, const char *fmt, ...)
{
	char why[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	struct dkv_buf p = {0};
	dkv_engine_rdlock(fs->e);
	dkvfs__entry_relpath(fs, ent, &p);
	dkv_engine_unlock(fs->e);
	dkv_report(DKV_REPORT_ERROR, "%s%s%s/_: not stored: %s", fs->mnt, p.len ? "/" : "",
		   dkv_buf_cstr(&p), why);
	dkv_buf_release(&p);
}

/* Under v->mu.  The first failure is the one every later call reports. */
static int vfile_fail(struct vfile *v, int err)
{
	if (!v->failed)
		v->failed = err;
	v->dirty = v->written = false;
	return v->failed;
}

/* Parse the text and commit it as the entry's value.  Every failure is
 * logged here, naming the file. */
static int vfile_commit(struct dkvfs *fs, struct dkv_entry *ent, struct vfile *v)
{
	char err[256];
	struct fsjob j = {.run = dkvfs__job_set, .ent = ent, .fenced = true, .sess = v->sess};
	if (dkv_yaml_parse(&j.data, (const char *)v->text.data, v->text.len, err, sizeof err)) {
		log_not_stored(fs, ent, "%s", err);
		dkv_buf_release(&j.data);
		/* the kernel truncated or overwrote its cached copy of the text
		 * when the file was written: make it forget that copy */
		dkvfs__notify_inval(fs, ent, true);
		return -EINVAL;
	}
	size_t at, bad;
	if (dkv_mp_find_bad_utf8(j.data.data, j.data.len, &at, &bad)) {
		/* only !nonutf8 spells one; clients may not store new ones */
		log_not_stored(fs, ent, "a string is not valid UTF-8 (!nonutf8): text must be "
					"UTF-8; write bytes as !!binary");
		dkv_buf_release(&j.data);
		dkvfs__notify_inval(fs, ent, true);
		return -EINVAL;
	}
	if (dkvfs__check_value(fs, ent, &j.data)) { /* logged */
		dkv_buf_release(&j.data);
		dkvfs__notify_inval(fs, ent, true);
		return -EINVAL;
	}
	j.pre = v->excl ? DKV_PRE_NEW : DKV_PRE_NONE;
	/* a user record's text leaves its hash out: it never reads back as written */
	if (v->ver && !v->created && !dkvfs__is_user_record(fs, ent) &&
	    !(v->sess && v->sess->conv)) { /* a codec's text need not read back as written */
		/* the inode may stay if it reads back as written (struct inplace) */
		struct dkv_buf canon = {0};
		if (!dkv_yaml_emit(&canon, j.data.data, j.data.len) && canon.len == v->text.len &&
		    !memcmp(canon.data, v->text.data, canon.len))
			j.inplace = (struct inplace){.ver = v->ver, .text = &v->text};
		dkv_buf_release(&canon);
	}
	int rc = dkvfs__submit(fs, &j);
	dkv_buf_release(&j.data);
	if (rc) {
		if (rc == -EEXIST)
			log_not_stored(fs, ent, "opened with O_EXCL, but the entry got a value before the close");
		else if (rc != -EACCES) /* the job said why */
			log_not_stored(fs, ent, "%s", dkv_strerror(rc));
		dkvfs__notify_inval(fs, ent, true);
	}
	return rc;
}

/* The process whose request this is dies of a signal: the number of the
 * signal, else 0.  A process that is killed (kill -9, a crash) closes its
 * files as it exits, like any other, and so sends FLUSH; but its text may
 * be cut anywhere, and storing it would replace a good value with a
 * fragment, which a killed "write a new file, then rename it" never does
 * on a local file system either.  The kernel marks the exiting task
 * (PF_EXITING in the flags, field 9 of /proc/TID/stat) and sets its exit
 * code (field 52: the signal in the low 7 bits) before it closes its
 * files.  A normal exit, whatever its status, stores.
 * NEEDSWORK: a writer in another pid namespace (pid 0 here), or a daemon
 * not allowed to read the writer's exit code, is taken as not killed. */
#define TASK_PF_EXITING 0x4u
static int writer_killed(fuse_req_t req)
{
	pid_t pid = fuse_req_ctx(req)->pid;
	char path[64], buf[2048], *save = NULL;
	if (pid <= 0)
		return 0;
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	char *p = strrchr(buf, ')'); /* the command name may hold anything */
	if (!p)
		return 0;
	unsigned long long flags = 0, code = 0;
	int field = 3;
	for (char *tok = strtok_r(p + 1, " ", &save); tok && field <= 52;
	     tok = strtok_r(NULL, " ", &save), field++) {
		if (field == 9)
			flags = strtoull(tok, NULL, 10);
		else if (field == 52)
			code = strtoull(tok, NULL, 10);
	}
	if (field <= 52 || !(flags & TASK_PF_EXITING))
		return 0;
	return (int)(code & 0x7f);
}

#define AWAIT_NS 5000000000 /* longest a writer that got ESTALE is waited for */

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Under mu: a writer will open ent's "_" again (struct awaited). */
static void await_writer(struct dkvfs *fs, const struct dkv_entry *ent, pid_t tid)
{
	if (fs->nawaited == fs->awaited_cap) {
		fs->awaited_cap = fs->awaited_cap ? 2 * fs->awaited_cap : 8;
		fs->awaited = dkv_xrealloc(fs->awaited, fs->awaited_cap * sizeof *fs->awaited);
	}
	fs->awaited[fs->nawaited++] = (struct awaited){.ent = ent, .tid = tid, .since_ns = mono_ns()};
}

/* Under mu: whether a writer is awaited at ent's "_"; tid non-zero: that
 * writer has come (it is awaited no more).  Forgets the writers that will
 * not come. */
static bool awaited(struct dkvfs *fs, const struct dkv_entry *ent, pid_t tid)
{
	bool any = false;
	int64_t now = fs->nawaited ? mono_ns() : 0;
	for (size_t i = 0; i < fs->nawaited;) {
		struct awaited *a = &fs->awaited[i];
		bool gone = now - a->since_ns > AWAIT_NS || (a->tid > 0 && kill(a->tid, 0) && errno == ESRCH);
		if (gone || (tid && a->ent == ent && a->tid == tid)) {
			*a = fs->awaited[--fs->nawaited];
			continue;
		}
		any |= a->ent == ent;
		i++;
	}
	return any;
}

/* Open a version of "_" (ver NULL: create() of a new one in ent).
 * Read-only opens need nothing of their own while nobody writes the
 * version: reads come from it, through the page cache, which is kept (an
 * inode is one version, so what the kernel cached is right for as long as
 * it has the inode), and close() sends no FLUSH.  Beside a writer (struct
 * fsver) a read-only open gets a copy of the version's text, read past
 * the page cache.  Writable opens collect their text in a vfile and go
 * past the page cache too; one that page-cache readers would share the
 * inode with gets ESTALE, and the kernel looks "_" up again for it. */
static void open_value(struct dkvfs *fs, fuse_req_t req, struct dkv_session *s,
		       struct dkv_entry *ent, struct fsver *ver, struct fuse_file_info *fi,
		       bool created)
{
	int acc = fi->flags & O_ACCMODE;
	if (!created && acc == O_RDONLY) {
		struct dkv_buf copy = {0};
		pthread_mutex_lock(&fs->mu);
		bool shared = ver->writers || awaited(fs, ent, 0);
		if (shared)
			dkv_buf_append(&copy, ver->text.data, ver->text.len);
		else
			ver->cached_opens++;
		pthread_mutex_unlock(&fs->mu);
		fi->noflush = 1;
		if (shared) {
			struct vfile *v = vfile_new(fs);
			dkv_buf_release(&v->text);
			v->text = copy;
			fi->direct_io = 1;
			fi->fh = (uint64_t)(uintptr_t)v;
			if (fuse_reply_open(req, fi) == -ENOENT) /* the open was interrupted */
				dkvfs__vfile_free(fs, v);
			return;
		}
		fi->fh = 0;
		fi->keep_cache = 1;
		if (fuse_reply_open(req, fi) == -ENOENT) { /* no RELEASE will come */
			pthread_mutex_lock(&fs->mu);
			ver->cached_opens--;
			pthread_mutex_unlock(&fs->mu);
		}
		return;
	}
	if (!created) {
		pid_t tid = fuse_req_ctx(req)->pid;
		pthread_mutex_lock(&fs->mu);
		if (ver->cached_opens) {
			/* its writes would change the size the kernel keeps for
			 * the readers' inode: the kernel retries the open (once),
			 * after a lookup that must find an inode of its own.
			 * NEEDSWORK: opens that do not walk a path (/proc/PID/fd/N,
			 * /dev/stdout) are not retried and fail with ESTALE; and a
			 * reader that closed just before counts until its RELEASE
			 * arrives, which costs this writer its in-place write */
			struct fsver **slot = dkvfs__ver_slot(fs, ent);
			ver->retired = true;
			if (slot && *slot)
				(*slot)->retired = true;
			await_writer(fs, ent, tid);
			pthread_mutex_unlock(&fs->mu);
			fuse_reply_err(req, ESTALE);
			return;
		}
		awaited(fs, ent, tid);
		ver->writers++;
		pthread_mutex_unlock(&fs->mu);
	}
	struct vfile *v = vfile_new(fs);
	v->sess = s;
	v->writable = acc != O_RDONLY;
	v->notifier = dkvfs__from_notifier(fs, req);
	v->excl = created && (fi->flags & O_EXCL);
	v->created = created;
	if (!created) {
		pthread_mutex_lock(&fs->mu);
		if (!(fi->flags & O_TRUNC))
			dkv_buf_append(&v->text, ver->text.data, ver->text.len);
		else
			ver->attrs_told = false; /* the kernel makes the size 0, and stale */
		v->ver = ver;
		pthread_mutex_unlock(&fs->mu);
	}
	fi->direct_io = 1;
	if ((fi->flags & O_TRUNC) || created)
		v->dirty = v->writable && !v->notifier;
	fi->fh = (uint64_t)(uintptr_t)v;
	int rc;
	if (created) {
		struct fuse_entry_param e;
		memset(&e, 0, sizeof e);
		dkv_engine_rdlock(fs->e);
		v->ver = dkvfs__make_value_entry(fs, s, ent, true, &e);
		dkv_engine_unlock(fs->e);
		e.attr.st_size = 0;
		e.attr_timeout = 0; /* what the file holds is decided at close */
		rc = fuse_reply_create(req, &e, fi);
	} else {
		rc = fuse_reply_open(req, fi);
	}
	if (rc == -ENOENT) { /* interrupted: no RELEASE will come */
		vfile_release_version(fs, v);
		dkvfs__vfile_free(fs, v);
	}
}

/* What opening ent's "_" with flags needs: r to read; to write, w
 * where a value is and c where none is (the engine decides again at the
 * commit).  A user record that holds a hash is never written: what it
 * shows lacks the hash (access.c).  0 or -EACCES.  Not the notifier's
 * own opens (its session has no rule, and it writes nothing). */
static int may_open(struct dkvfs *fs, struct dkv_session *s, struct dkv_entry *ent,
		    const struct dkv_value *val, int flags, bool notifier)
{
	int acc = flags & O_ACCMODE;
	if (!s)
		return -EACCES;
	if (notifier)
		return 0;
	if (acc != O_RDONLY && dkvfs__holds_hash(val) && dkvfs__is_user_record(fs, ent)) {
		dkv_report(DKV_REPORT_INFO, "%s: a user record holding a password hash is read-only here; "
			   "use `distkv client auth` to change it", fs->mnt);
		return -EACCES;
	}
	if (!s->check)
		return 0;
	dkv_engine_rdlock(fs->e);
	unsigned mode = acc == O_WRONLY ? 0 : DKV_ACL_READ;
	if (acc != O_RDONLY)
		mode |= dkv_entry_has_value(ent) ? DKV_ACL_WRITE : DKV_ACL_CREATE;
	int rc = dkvfs__check(fs, s, ent, NULL, 0, mode);
	dkv_engine_unlock(fs->e);
	return rc;
}

void dkvfs__op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	COUNT(FS(req), open);
	struct dkvfs *fs = FS(req);
	if (ino & VIEW_BIT) {
		dkvfs__ev_open(req, ino, fi);
		return;
	}
	enum fskind k;
	struct fsver *ver = NULL;
	struct dkv_entry *ent = dkvfs__ino_entry_ver(fs, ino, &k, &ver);
	struct dkv_session *s = dkvfs__session(fs, req);
	int rc;
	if (!ent) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	if (!s) {
		fuse_reply_err(req, EACCES);
		return;
	}
	switch (k) {
	case K_DIR:
		fuse_reply_err(req, EISDIR);
		return;
	case K_VALUE:
		/* the version's value: ver lives while the kernel holds the inode */
		pthread_mutex_lock(&fs->mu);
		struct dkv_value *val = dkv_value_ref(ver ? ver->value : NULL);
		pthread_mutex_unlock(&fs->mu);
		rc = may_open(fs, s, ent, val, fi->flags, dkvfs__from_notifier(fs, req));
		dkv_value_unref(val);
		if (rc) {
			reply_rc(req, rc);
			return;
		}
		open_value(fs, req, s, ent, ver, fi, false);
		return;
	case K_META:
	case K_STATE:
	case K_STATS: {
		if ((fi->flags & O_ACCMODE) != O_RDONLY) {
			fuse_reply_err(req, EACCES);
			return;
		}
		struct vfile *v = NULL;
		dkv_engine_rdlock(fs->e);
		/* .state shows the job's state record: the session reads that */
		struct dkv_entry *x = k == K_STATE ? dkvfs__job_state(fs, ent) : ent;
		rc = 0;
		if (!x)
			rc = -ENOENT; /* the state record went away since the lookup */
		else if (k != K_STATS && s->check)
			rc = dkvfs__check(fs, s, x, NULL, 0, DKV_ACL_READ);
		if (!rc) {
			v = vfile_new(fs);
			if (k == K_META)
				dkvfs__render_meta(ent, &v->text);
			else if (k == K_STATE)
				dkvfs__render_value(fs, x, &v->text);
			else
				dkvfs__render_stats(fs, &v->text);
		}
		dkv_engine_unlock(fs->e);
		if (rc) {
			reply_rc(req, rc);
			return;
		}
		fi->direct_io = 1; /* small and changing: never cached */
		fi->noflush = 1;
		fi->fh = (uint64_t)(uintptr_t)v;
		fuse_reply_open(req, fi);
		return;
	}
	case K_WATCH:
		if ((fi->flags & O_ACCMODE) != O_RDONLY) {
			fuse_reply_err(req, EACCES);
			return;
		}
		if (s->check) {
			dkv_engine_rdlock(fs->e);
			rc = dkvfs__check(fs, s, ent, NULL, 0, 0);
			dkv_engine_unlock(fs->e);
			if (rc) {
				reply_rc(req, rc);
				return;
			}
		}
		dkvfs__watch_open(fs, req, s, ent, fi);
		return;
	}
}

void dkvfs__op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	COUNT(FS(req), create);
	struct dkvfs *fs = FS(req);
	if (parent & VIEW_BIT) {
		dkvfs__ev_create(req, parent, name, fi);
		return;
	}
	enum fskind pk;
	struct dkv_entry *dir = dkvfs__ino_entry(fs, parent, &pk);
	(void)mode;
	if (pk != K_DIR) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	if (!name_is(name, "_")) {
		/* only values can be files; say so in the log, since EPERM alone
		 * puzzles whoever ran cp or tar */
		dkv_report(DKV_REPORT_ERROR, "%s: only files named _ can be created (not %s)",
			   fs->mnt, name);
		fuse_reply_err(req, EPERM);
		return;
	}
	struct dkv_session *s = dkvfs__session(fs, req);
	bool notifier = dkvfs__from_notifier(fs, req);
	if (!notifier) {
		dkv_engine_rdlock(fs->e);
		bool exists = dkv_entry_has_value(dir);
		struct dkv_value *val = dkv_value_ref(dir->value);
		dkv_engine_unlock(fs->e);
		if (exists && (fi->flags & O_EXCL)) {
			dkv_value_unref(val);
			fuse_reply_err(req, EEXIST);
			return;
		}
		int acc = fi->flags & O_ACCMODE;
		int rc = may_open(fs, s, dir, val, acc == O_RDWR ? O_RDWR : O_WRONLY, false);
		dkv_value_unref(val);
		if (rc) {
			reply_rc(req, rc);
			return;
		}
	}
	open_value(fs, req, s, dir, NULL, fi, true);
}

void dkvfs__op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	COUNT(FS(req), read);
	struct dkvfs *fs = FS(req);
	if (ino & VIEW_BIT) {
		dkvfs__ev_read(req, size, off, fi);
		return;
	}
	enum fskind k;
	struct fsver *ver = NULL;
	dkvfs__ino_entry_ver(fs, ino, &k, &ver);
	if (k == K_WATCH) {
		dkvfs__watch_read(fs, req, fi->fh, size, fi);
		return;
	}
	/* Reply from a copy: once the kernel has the reply, the reader may
	 * close the file, and the kernel release it or forget the version
	 * (another thread then frees v or ver), before this thread is back
	 * from writev, where ASan's interceptor still reads the buffer. */
	if (!fi->fh) { /* a read-only open of a version */
		struct dkv_buf b = {0};
		pthread_mutex_lock(&fs->mu);
		size_t len = ver ? ver->text.len : 0;
		if ((size_t)off < len) {
			if (size > len - (size_t)off)
				size = len - (size_t)off;
			dkv_buf_append(&b, ver->text.data + off, size);
		}
		if (ver) /* a short read tells the kernel the size */
			ver->attrs_told = true;
		pthread_mutex_unlock(&fs->mu);
		fuse_reply_buf(req, (const char *)b.data, b.len);
		dkv_buf_release(&b);
		return;
	}
	/* the same, and the copy is taken under the file's lock */
	struct vfile *v = (struct vfile *)(uintptr_t)fi->fh;
	struct dkv_buf b = {0};
	pthread_mutex_lock(&v->mu);
	size_t len = v->text.len;
	if ((size_t)off < len) {
		if (size > len - (size_t)off)
			size = len - (size_t)off;
		dkv_buf_append(&b, v->text.data + off, size);
	}
	pthread_mutex_unlock(&v->mu);
	fuse_reply_buf(req, (const char *)b.data, b.len);
	dkv_buf_release(&b);
}

void dkvfs__op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	COUNT(FS(req), write);
	struct dkvfs *fs = FS(req);
	if (ino & VIEW_BIT) {
		dkvfs__ev_write(req, buf, size, off, fi);
		return;
	}
	struct vfile *v = (struct vfile *)(uintptr_t)fi->fh;
	if (!v || !v->writable) {
		fuse_reply_err(req, EBADF);
		return;
	}
	pthread_mutex_lock(&v->mu);
	int rc = v->failed;
	if (!rc && !v->notifier && (uint64_t)off + size > MAX_WRITE) {
		/* what was written before is only part of the text: never store it */
		enum fskind k;
		log_not_stored(fs, dkvfs__ino_entry(fs, ino, &k),
			       "a write would make the text %llu bytes long; it may have at most %u MiB",
			       (unsigned long long)off + size, MAX_WRITE >> 20);
		rc = vfile_fail(v, -EFBIG);
	}
	if (rc) {
		pthread_mutex_unlock(&v->mu);
		reply_rc(req, rc);
		return;
	}
	if (v->ver) {
		/* the kernel marks the size stale once this write is answered */
		pthread_mutex_lock(&fs->mu);
		v->ver->attrs_told = false;
		pthread_mutex_unlock(&fs->mu);
	}
	if (!v->notifier) {
		size_t end = (size_t)off + size;
		if (end > v->text.len) {
			dkv_buf_reserve(&v->text, end - v->text.len);
			memset(v->text.data + v->text.len, 0, end - v->text.len);
			v->text.len = end;
		}
		memcpy(v->text.data + off, buf, size);
		v->dirty = true;
		v->written = true;
	}
	pthread_mutex_unlock(&v->mu);
	fuse_reply_write(req, size);
}

void dkvfs__op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	COUNT(FS(req), flush);
	struct dkvfs *fs = FS(req);
	if (ino & VIEW_BIT) {
		dkvfs__ev_flush(req, fi);
		return;
	}
	enum fskind k;
	struct dkv_entry *ent = dkvfs__ino_entry(fs, ino, &k);
	int rc = 0;
	if (k == K_VALUE && fi->fh) {
		struct vfile *v = (struct vfile *)(uintptr_t)fi->fh;
		pthread_mutex_lock(&v->mu);
		int sig;
		if (v->failed) {
			rc = v->failed;
		} else if (v->dirty && !v->notifier && (sig = writer_killed(req))) {
			log_not_stored(fs, ent, "the writer (pid %d) was killed by signal %d with the file open",
				       (int)fuse_req_ctx(req)->pid, sig);
			rc = vfile_fail(v, -EIO);
		} else if (v->dirty && v->written && !v->notifier) {
			/* a shell's "> _" opens, dup2()s and closes the first
			 * descriptor before anything is written: that flush must not
			 * store "" */
			v->dirty = v->written = false; /* one attempt: the error goes to this close */
			rc = vfile_commit(fs, ent, v);
			if (rc)
				vfile_fail(v, rc);
			v->excl = false;
		}
		pthread_mutex_unlock(&v->mu);
	}
	reply_rc(req, rc);
}

void dkvfs__op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	COUNT(FS(req), release);
	struct dkvfs *fs = FS(req);
	if (ino & VIEW_BIT) {
		dkvfs__ev_release(req, fi);
		return;
	}
	enum fskind k;
	struct dkv_entry *ent = dkvfs__ino_entry(fs, ino, &k);
	if (k == K_WATCH) {
		dkvfs__watch_release(fs, req, fi->fh);
		return;
	}
	struct vfile *v = (struct vfile *)(uintptr_t)fi->fh;
	if (!v) { /* a read-only open of a version, through the page cache */
		pthread_mutex_lock(&fs->mu);
		struct fsver *ver = ino & VER_BIT ? dkvfs__ver_find(fs, ino) : NULL;
		if (ver && ver->cached_opens)
			ver->cached_opens--;
		pthread_mutex_unlock(&fs->mu);
		fuse_reply_err(req, 0);
		return;
	}
	if (k == K_VALUE && !v->notifier) {
		if (v->dirty && !v->failed)
			vfile_commit(fs, ent, v); /* no flush came (or it was interrupted) */
		else if (v->failed)
			/* the writer's truncation and writes changed the kernel's
			 * idea of the file's size: the old value is what it holds */
			dkvfs__notify_inval(fs, ent, true);
	}
	vfile_release_version(fs, v);
	dkvfs__vfile_free(fs, v);
	fuse_reply_err(req, 0);
}

void dkvfs__op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	COUNT(FS(req), setattr);
	struct dkvfs *fs = FS(req);
	if (ino & VIEW_BIT) {
		dkvfs__ev_setattr(req, ino, attr, to_set, fi);
		return;
	}
	enum fskind k;
	struct fsver *ver = NULL;
	struct dkv_entry *ent = dkvfs__ino_entry_ver(fs, ino, &k, &ver);
	struct stat st;

	struct dkv_session *s = dkvfs__session(fs, req);
	if (!ent) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	if (!s) {
		fuse_reply_err(req, EACCES);
		return;
	}
	if ((to_set & FUSE_SET_ATTR_SIZE) && k != K_VALUE) {
		fuse_reply_err(req, k == K_DIR ? EISDIR : EACCES);
		return;
	}
	if ((to_set & FUSE_SET_ATTR_SIZE) && !dkvfs__from_notifier(fs, req)) {
		uint64_t size = (uint64_t)attr->st_size;
		if (fi && fi->fh) { /* ftruncate of an open file: part of the write */
			struct vfile *v = (struct vfile *)(uintptr_t)fi->fh;
			pthread_mutex_lock(&v->mu);
			int rc = v->failed;
			if (!rc && size > MAX_WRITE) {
				log_not_stored(fs, ent, "truncating to %llu bytes; the text may have at most %u MiB",
					       (unsigned long long)size, MAX_WRITE >> 20);
				rc = vfile_fail(v, -EFBIG);
			}
			if (rc) {
				pthread_mutex_unlock(&v->mu);
				reply_rc(req, rc);
				return;
			}
			size_t old = v->text.len;
			dkv_buf_reserve(&v->text, size > old ? size - old : 0);
			if (size > old)
				memset(v->text.data + old, 0, size - old);
			v->text.len = size;
			v->dirty = true;
			v->written = true;
			pthread_mutex_unlock(&v->mu);
		} else { /* truncate(2) by name: a change of its own */
			pthread_mutex_lock(&fs->mu);
			struct dkv_value *val = dkv_value_ref(ver ? ver->value : NULL);
			pthread_mutex_unlock(&fs->mu);
			int rc = may_open(fs, s, ent, val, O_WRONLY, false);
			dkv_value_unref(val);
			if (rc) {
				reply_rc(req, rc);
				return;
			}
			if (size > MAX_WRITE) {
				log_not_stored(fs, ent, "truncating to %llu bytes; the text may have at most %u MiB",
					       (unsigned long long)size, MAX_WRITE >> 20);
				fuse_reply_err(req, EFBIG);
				return;
			}
			struct vfile *v = vfile_new(fs);
			v->sess = s;
			dkv_engine_rdlock(fs->e);
			dkvfs__render_value(fs, ent, &v->text);
			dkv_engine_unlock(fs->e);
			if (size < v->text.len) {
				v->text.len = size;
			} else {
				dkv_buf_reserve(&v->text, size - v->text.len);
				memset(v->text.data + v->text.len, 0, size - v->text.len);
				v->text.len = size;
			}
			rc = vfile_commit(fs, ent, v);
			dkvfs__vfile_free(fs, v);
			if (rc) {
				reply_rc(req, rc);
				return;
			}
		}
	}
	/* modes, owners and times are not stored: accept them so that cp -p
	 * and tar work, and report what is true */
	dkvfs__attrs_for_reply(fs, s, ent, k, ver, &st);
	/* ftruncate: the writer's file has the size it asked for.  truncate
	 * by name stored a new value, which is a new version; this one, which
	 * readers may have open, keeps its size (the kernel would cut their
	 * page cache to the size in the reply) */
	bool writers_size = (to_set & FUSE_SET_ATTR_SIZE) && fi && fi->fh;
	if (writers_size)
		st.st_size = attr->st_size;
	fuse_reply_attr(req, &st, writers_size ? 0 : TIMEOUT_OF(fs));
}
