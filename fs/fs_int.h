/*
 * fs_int.h - what the files of fs/ share: struct dkvfs, the inode kinds,
 * the jobs for the loop thread, and every dkvfs__ function, with the
 * FUSE handlers' replies and errors (the manual for each request).
 *
 * Workload: reads dominate (cat, ls -R, find, grep -r), mostly of data
 * that has not changed since the kernel last saw it, so the kernel's
 * caches do most of the work: long attribute and entry timeouts, kept
 * page caches and cached directory listings, invalidated when something
 * changes (notify.c).  The handlers read the tree under the engine's read
 * lock; every change is a job for the loop thread, which owns the engine.
 *
 * Files: inode.c (inode numbers, lookup counts, versions of "_"), attr.c
 * (attributes, rendered texts), dir.c (names, LOOKUP, listings, mkdir,
 * rmdir, unlink), valuefile.c (open files: "_", .meta, .stats), jobs.c
 * (changes handed to the loop), mount.c (mount, close, the operations
 * table), notify.c (the notifier thread), watchfile.c (.watch),
 * workers.c (the threads that read requests), access.c (who asks, and
 * what they may do), errview.c (.errors, the error log by path).
 *
 * Lock order: the engine's read lock before fs->mu; nobody waits for the
 * loop thread while holding either.
 */
#ifndef DKVFS_INT_H
#define DKVFS_INT_H

#define FUSE_USE_VERSION 312
#include "dkvfs.h"
#include "distkv.h"

#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/types.h>

/* An inode number is an entry's address with the kind in the low bits
 * (entries are 16-byte aligned); the root entry's directory is inode 1.
 * The "_" files are the exception: each version of a value is an inode of
 * its own, VER_BIT | counter << 4 | K_VALUE (struct fsver). */
enum fskind {
	K_DIR = 0,
	K_VALUE = 1, /* "_" */
	K_META = 2,  /* ".meta" */
	K_WATCH = 3, /* ".watch" */
	K_STATS = 4, /* ".stats" at the root: FUSE requests served, by kind */
	K_STATE = 5, /* ".state" in a job's directory below .run: the job's state record */
};

/* FUSE requests counted for .stats (benchmarks report requests per
 * operation: they are stable where times are noisy). */
#define DKVFS_OPS(X) X(lookup) X(forget) X(getattr) X(setattr) X(open) X(create) \
	X(read) X(write) X(flush) X(release) X(opendir) X(readdir) X(readdirplus) \
	X(releasedir) X(mkdir) X(rmdir) X(unlink) X(rename) X(statfs) X(poll)
enum fsop {
#define X(n) OP_##n,
	DKVFS_OPS(X)
#undef X
	OP__COUNT
};
#define KIND_MASK 15u
#define VER_BIT (1ull << 63) /* never set in an entry's address */
/* The directories and "_" files of .errors (errview.c) are no entries:
 * VIEW_BIT | the view node's address | K_DIR or K_VALUE. */
#define VIEW_BIT (1ull << 62)

/* One version of a "_" file: what the kernel knows as one inode.  A new
 * value gets a new inode number (a counter, never reused), so the page
 * cache and attributes the kernel keeps for an old version stay right for
 * whoever still has it; the notifier drops the dentry of "_" after a
 * change, so that the next lookup finds the new version.  The exception
 * is a write through the mount that the kernel already saw happen to the
 * inode (struct inplace): the version then takes the new value.  Owned
 * under fs->mu, and value, text and mtime_ns are read under it; the
 * version lives while the kernel has looked it up (until FORGET).
 *
 * Readers and writers never share an inode.  While a file is open for
 * writing, the kernel changes the size it keeps for the inode itself:
 * O_TRUNC makes it 0, a write past the end makes it the end, before the
 * daemon has stored anything.  A reader of the same inode through the
 * page cache gets its pages from READs answered from text, but stops at
 * the kernel's size: the text of one version cut to, or padded with
 * zeros to, the size of another's (a torn read).  So: a read-only open
 * uses the page cache only while no writer has the inode open, and gets
 * a copy of text of its own otherwise (cached_opens, writers); a writable
 * open of an inode that page-cache readers have open is refused with
 * ESTALE, which makes the kernel look "_" up again and open the new inode
 * that lookup gets (retired); until it did, no reader of the entry uses
 * the page cache (struct awaited).  Between writers, the kernel's
 * pages of the inode are empty (a writable open drops them, and nobody
 * reads into them), and its size is marked stale by every writer's
 * O_TRUNC and write, so that the first reader asks for it again --
 * unless a reply told the kernel the size since (attrs_told). */
struct fsver {
	uint64_t id;              /* the inode number */
	struct fsver *hnext;      /* fs->vers */
	struct dkv_entry *ent;    /* pinned */
	struct dkv_value *value;  /* referenced: the version's identity (NULL: none) */
	struct dkv_buf text;      /* the YAML text reads return */
	int64_t mtime_ns;         /* the entry's, when the version was made */
	uint64_t nlookup;         /* kernel lookups */
	uint32_t cached_opens;    /* read-only opens using the page cache, not released */
	uint32_t writers;         /* writable opens (the notifier's too), not released */
	bool retired;             /* a writer got ESTALE: lookups make a new version */
	bool attrs_told;          /* a reply (LOOKUP, GETATTR, SETATTR, READ) gave the
				   * kernel a size from text since a writer's O_TRUNC or
				   * write last marked it stale */
};

/* A write through the mount may keep its inode.  The kernel dropped the
 * version's page cache when the writer opened it and nobody read into it
 * since (struct fsver: no page-cache readers beside a writer), the
 * writes have marked its size and times stale, and its name still leads
 * to it: if the text written is exactly what the new value renders to,
 * and no reply told the kernel the old size after the last write
 * (attrs_told), nothing the kernel holds is wrong.  Then the notifier has
 * nothing to do, and the writer's next open needs no LOOKUP (a new inode)
 * and no GETATTR of the directory (dropping a name marks the directory's
 * attributes stale).  Set by the FUSE thread (vfile_commit), used by the
 * hook on the loop thread. */
struct inplace {
	struct fsver *ver;          /* the version the writer opened; NULL: none */
	const struct dkv_buf *text; /* what was written (the writer's, locked) */
};

/* A writer that got ESTALE (struct fsver) and will open the entry's "_"
 * again, after a new lookup: until it did, readers of the entry get
 * copies, so that the inode it gets has no page-cache readers either.  A
 * writer that never comes back (killed meanwhile) is forgotten after
 * AWAIT_NS or when its thread is gone.  Under fs->mu. */
struct awaited {
	const struct dkv_entry *ent;
	pid_t tid;        /* the writing thread, as FUSE requests name it */
	int64_t since_ns; /* CLOCK_MONOTONIC */
};

/* What the kernel knows of one entry.  Owned under fs->mu. */
struct fsnode {
	struct dkv_entry *ent;
	struct fsnode *hnext;
	uint64_t nlookup;    /* kernel lookups of the entry's inodes but "_" */
	struct fsver *ver;   /* the newest version of "_" the kernel looked up */
};

/* A change handed from a FUSE thread to the loop thread. */
struct fsjob {
	struct fsjob *next;
	int (*run)(struct dkvfs *fs, struct fsjob *j); /* on the loop thread */
	int rc;
	bool done;
	struct dkv_entry *ent;   /* the directory (or the entry) concerned */
	struct dkv_buf data;     /* msgpack value, or a path element */
	int pre;                 /* enum dkv_precond */
	void *ptr;               /* job-specific */
	struct dkv_entry *out;   /* the entry made (mkdir) */
	uint64_t need;           /* log record that must be on disk first (0: none) */
	bool fenced;             /* the writer waits for the notifier, too (see run_jobs) */
	struct inplace inplace;  /* job_set: the version may take the value */
	uint64_t need_fence;     /* change the notifier must have invalidated first (0: none) */
	struct dkv_session *sess; /* who asks (NULL: fs->sess) */
};

/* The notifier's current expectation: the FUSE handlers answer the
 * notifier's own lookups so that its mkdir/unlink/... go through. */
struct expect {
	uint64_t dir;                /* the parent directory's inode; 0: none */
	struct dkv_buf name;         /* the name, as the kernel passes it */
	bool present;                /* answer lookups as present (for unlink/rmdir) */
};

struct notify_item; /* notify.c */
struct errview;     /* errview.c */
struct evnode;
struct vfile;       /* valuefile.c */
struct wstream;     /* watchfile.c */

struct dkvfs {
	struct dkv_engine *e;
	uv_loop_t *loop;
	struct dkvfs_opts opts;
	char *mnt;
	uid_t uid;             /* the daemon's: every file is its own */
	gid_t gid;
	int64_t mount_time_ns; /* CLOCK_REALTIME: the times of entries never changed */
	struct fuse_session *se;
	pthread_t fuse_thread;
	bool fuse_thread_running;

	pthread_mutex_t mu;
	pthread_cond_t cond;        /* jobs done */
	pthread_cond_t ncond;       /* work for the notifier */
	struct fsnode **nodes;      /* hash by entry address */
	size_t nodes_mask;
	size_t nnodes;
	struct fsver **vers;        /* hash by id */
	size_t vers_mask, nvers;
	uint64_t next_ver;
	struct fsver *root_ver;     /* the root has no fsnode */
	struct fsjob *jobs, **jobs_tail;        /* for the loop */
	struct fsjob *durable_wait;             /* loop: done, waiting for the log or the fence */
	struct dkv_entry **unpins;              /* for the loop: kernel forgot them */
	size_t nunpins, unpins_cap;
	uv_async_t async;

	/* notifier (notify.c) */
	pthread_t notify_thread;
	bool notify_running;
	pid_t notify_tid;     /* the helper process that repeats changes */
	pid_t helper_pid;
	int helper_sock;      /* its end of a socketpair; -1: none */
	struct notify_item *nq_head, **nq_tail;
	size_t nq_len;
	struct notify_item *later_head, **later_tail; /* second rounds, by due time */
	struct notify_item **nq_index; /* by entry, to merge repeated changes */
	/* the fence (dkvfs_fence): every change queued gets the next number;
	 * inval_done is the highest number whose change, and every one
	 * before it, the notifier has invalidated */
	_Atomic uint64_t nq_seq;     /* written under mu */
	_Atomic uint64_t inval_done; /* written by the notifier */
	uint64_t fence_told;         /* loop: inval_done when fence_moved last ran */
	size_t nq_mask;
	struct fuse_pollhandle **polls; /* .watch readers to wake */
	size_t npolls, polls_cap;
	struct expect expect; /* under mu */
	uint64_t *watched;    /* notifier thread: inodes with inotify watches, sorted */
	size_t nwatched, watched_cap;
	int64_t scan_ns;      /* when they were last read */
	uint64_t scan_listings; /* READDIR(PLUS) requests counted at that scan */
	/* Who asks (access.c).  sess: the mount's own session, bound to
	 * server.mount.user or without a rule (full rights); the Unix user
	 * that mounted uses it.  full: no rule, for the notifier (and root,
	 * with allow_other).  users: server.mount.users, by uid.  Set at the
	 * mount and not changed afterwards.  Every change the mount makes
	 * carries one of them (dkvfs__own_session), so the notifier knows an
	 * event as one the writer has seen happen.  FUSE threads check with
	 * a copy (access.c): only the loop thread writes a shared why */
	struct dkv_session sess;
	struct dkv_session full;
	struct fsuser {
		uid_t uid;
		struct dkv_session sess;
	} *users;
	size_t nusers;
	bool allow_other;
	/* some session has a rule, or other users may come: every request
	 * is checked, and the kernel caches no names, attributes or
	 * listings (TIMEOUT_OF), since it would answer from them for anyone */
	bool checked;
	/* loop thread: while dkvfs__job_set applies a write through the mount,
	 * that write's in-place candidate (struct inplace), for the hook.  It
	 * belongs to the one change, not to the session, and the engine's
	 * change and event carry nothing of the caller's */
	struct inplace inplace;
	bool stopping;

	/* special directories at the root */
	struct special {
		const char *name;
		struct dkv_entry *ent; /* pinned while mounted */
		bool internal;         /* below None: never shown to a bound session */
	} specials[12];
	struct dkv_entry *acl_dir, *auth_dir; /* the entries of .acl and .auth */
	/* .run's entry, (".distkv", "run"), and where the jobs' state
	 * records are, (".distkv", "state"): pinned while mounted */
	struct dkv_entry *run_dir, *state_dir;
	unsigned nspecials;
	/* .errors: the error log by path (errview.c), made from the records
	 * at (".distkv", "error"), err_dir (pinned while mounted) */
	struct errview *ev;
	struct dkv_entry *err_dir;

	struct awaited *awaited; /* writers retrying an open, under mu */
	size_t nawaited, awaited_cap;

	struct wstream *streams; /* open .watch files, under mu */
	struct vfile *vfiles;    /* open "_", .meta, .stats files, under mu */
	/* where recent listings stopped, to resume without a scan; under mu */
	struct cursor {
		const struct dkv_entry *dir;
		off_t off;            /* the offset the next call will ask for */
		struct dkv_buf name;  /* the last child listed */
		uint32_t seq;
	} cursors[32];
	unsigned next_cursor;
	_Atomic uint64_t ops[OP__COUNT];

	void (*close_cb)(void *arg);
	void *close_arg;
	uv_idle_t closer;
	unsigned close_ticks;
	dev_t dev; /* of the mount, to abort the connection if unmounting hangs */
};

#define TIMEOUT 86400.0 /* seconds the kernel keeps entries and attributes; we invalidate */
/* A checked mount (struct dkvfs) has the kernel keep nothing. */
#define TIMEOUT_OF(fs) ((fs)->checked ? 0.0 : TIMEOUT)

static inline struct dkvfs *FS(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* Count a request for .stats. */
#define COUNT(fs, op) atomic_fetch_add_explicit(&(fs)->ops[OP_##op], 1, memory_order_relaxed)

/* Answer req with rc: 0, or a negative errno or project code.  This is
 * where fs/ turns a result into the positive errno the kernel wants
 * (dkv_errno: a project code becomes its table's errno, so
 * DKV_E_INTERNAL is EINVAL, not 1001). */
static inline void reply_rc(fuse_req_t req, int rc)
{
	fuse_reply_err(req, rc ? dkv_errno(rc) : 0);
}

static inline bool name_is(const char *name, const char *s)
{
	return !strcmp(name, s);
}

/*
 * The FUSE handlers (mount.c's table holds them).  Each lists, as
 * fuse_lowlevel.h does, its valid replies, and the errors it answers
 * with.  "The commit's errors" are those of storing a written "_"
 * (dkvfs__job_set): EINVAL (the text is not YAML; below .acl, not a
 * string of mode letters), EEXIST (created with O_EXCL, and the entry
 * got a value before the close), ENOENT (the entry has no path any
 * more), EFBIG (a value over DKV_VALUE_MAX), EACCES (the session's ACL
 * refuses it); each is also said in the daemon's log.  ESTALE for an inode means a version
 * of "_" the kernel has forgotten, which it should not ask about.
 */

/* inode.c */

/* Valid replies: fuse_reply_none. */
void dkvfs__op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup);
/* Valid replies: fuse_reply_none. */
void dkvfs__op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets);

/* attr.c */

/* Valid replies: fuse_reply_attr, fuse_reply_err.
 * Errors: ESTALE, EACCES (a uid the mount does not serve). */
void dkvfs__op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);

/* dir.c */

/* Valid replies: fuse_reply_entry, fuse_reply_err.
 * Errors: ENOTDIR (parent is a file), ENOENT (no such name; also a name
 * the notifier is about to create; a special directory of internal data
 * for a bound session; .state where the job has no state record),
 * EACCES (the session may not reach the name). */
void dkvfs__op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
/* Valid replies: fuse_reply_open, fuse_reply_err.
 * Errors: ENOSYS, always on a mount that is not checked: the kernel then
 * opens directories itself and keeps their listings (see dir.c).  On a
 * checked one: EACCES (the session may not list the directory), else an
 * open whose listing the kernel does not keep. */
void dkvfs__op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
/* Valid replies: fuse_reply_err (0). */
void dkvfs__op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
/* Valid replies: fuse_reply_buf (empty at the end). */
void dkvfs__op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi);
/* Valid replies: fuse_reply_buf (empty at the end).  Each name but "."
 * and ".." counts as a lookup. */
void dkvfs__op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi);
/* Valid replies: fuse_reply_entry, fuse_reply_err.
 * Errors: ENOTDIR, EEXIST (a reserved name: _, .meta, .watch; or an
 * entry already shown), EINVAL (not a name in the colon notation, or
 * None at the root), ENOENT (the notifier's repeat of a directory that
 * is gone again), EACCES (the session may not create a value there). */
void dkvfs__op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode);
/* Valid replies: fuse_reply_err (0 on success).
 * Errors: ENOTDIR, EPERM (a special directory), ENOENT, ENOTEMPTY (a
 * value or visible children), EACCES (the session may not delete it). */
void dkvfs__op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
/* Valid replies: fuse_reply_err (0 on success).
 * Errors: ENOTDIR, EPERM (.meta, .watch), ENOENT (any other name than
 * "_", or no value to delete), EACCES (the session may not delete it). */
void dkvfs__op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
/* Valid replies: fuse_reply_err.
 * Errors: EXDEV, always: mv copies and deletes, visibly. */
void dkvfs__op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags);

/* valuefile.c */

/* Valid replies: fuse_reply_open, fuse_reply_err.
 * Errors: ESTALE (also a writable open of a version that page-cache
 * readers have open: the kernel looks "_" up again and retries), EISDIR,
 * EACCES (a writable open of .meta, .stats, .watch or of a user record
 * that holds a password hash; an open the session may not make). */
void dkvfs__op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
/* Valid replies: fuse_reply_create, fuse_reply_err.
 * Errors: ENOTDIR, EPERM (a name other than "_"; logged), EEXIST
 * (O_EXCL, and the entry has a value), EACCES (as for open). */
void dkvfs__op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi);
/* Valid replies: fuse_reply_buf, fuse_reply_err.
 * Errors: .watch only: EAGAIN (O_NONBLOCK, nothing pending), EINTR. */
void dkvfs__op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi);
/* Valid replies: fuse_reply_write, fuse_reply_err.
 * Errors: EBADF (not open for writing), EFBIG (the text would pass
 * MAX_WRITE), and whatever failed this open file before (it stays
 * failed: every later write, truncation, flush and close gets it). */
void dkvfs__op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi);
/* Valid replies: fuse_reply_err (0 on success).
 * Errors: the commit's errors, EIO (the writer was killed by a signal
 * with the file open: nothing is stored), and an earlier failure of this
 * open file. */
void dkvfs__op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
/* Valid replies: fuse_reply_err (0: the kernel ignores anything else;
 * a commit that fails here is only logged). */
void dkvfs__op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
/* Valid replies: fuse_reply_attr, fuse_reply_err.
 * Errors: ESTALE, EISDIR (the size of a directory), EACCES (the size of
 * .meta, .watch, .stats, or of a "_" the session may not write; a uid
 * the mount does not serve), EFBIG (past MAX_WRITE); truncate(2) by name:
 * the commit's errors; ftruncate(2): an earlier failure of the open
 * file.  Modes, owners and times are accepted and not stored. */
void dkvfs__op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi);

/* access.c */

/* Valid replies: fuse_reply_err.  Only a checked mount is asked (the
 * kernel checks itself with default_permissions).
 * Errors: EACCES (what the modes of getattr do not allow). */
void dkvfs__op_access(fuse_req_t req, fuse_ino_t ino, int mask);

/* ---- what the files share ---- */

/* access.c */

/* The session req acts with; NULL: its uid may not use the mount. */
struct dkv_session *dkvfs__session(struct dkvfs *fs, fuse_req_t req);
/* Whether s is one of the mount's sessions (an event made through it). */
bool dkvfs__own_session(const struct dkvfs *fs, const struct dkv_session *s);
/* Whether s may use mode (DKV_ACL_*; 0: only reach it) at ent, or at
 * its child elem (elem NULL: ent itself): 0, or -EACCES with the reason
 * in the daemon's log (at debug level).  s NULL: -EACCES.  Under the
 * read lock, on any thread. */
int dkvfs__check(struct dkvfs *fs, struct dkv_session *s, const struct dkv_entry *ent,
		 const uint8_t *elem, size_t elen, unsigned mode);
/* What s may do at ent: dkv_session_modes (every bit without a rule;
 * 0 for s NULL).  Under the read lock. */
unsigned dkvfs__modes(struct dkvfs *fs, struct dkv_session *s, const struct dkv_entry *ent);
/* Whether a listing shows the child directory ent to s.  Under the read
 * lock. */
bool dkvfs__listed(struct dkvfs *fs, struct dkv_session *s, struct dkv_entry *ent);
/* Turn the full-rights permission bits in st into those s has at (ent,
 * k); val: for a "_", the version's value.  Under the read lock. */
void dkvfs__perm(struct dkvfs *fs, struct dkv_session *s, const struct dkv_entry *ent,
		 enum fskind k, const struct dkv_value *val, struct stat *st);
/* Whether the special directory is shown to s. */
bool dkvfs__special_shown(const struct dkvfs *fs, const struct dkv_session *s,
			  const struct special *sp);
/* ent is a user record below .auth (None, auth, METHOD, user, NAME). */
bool dkvfs__is_user_record(const struct dkvfs *fs, const struct dkv_entry *ent);
/* val (a user record's) holds a password hash: its "_" is read-only. */
bool dkvfs__holds_hash(const struct dkv_value *val);
/* The value (msgpack) to store at ent is acceptable there: below .acl,
 * a string of mode letters.  0 or -EINVAL (logged). */
int dkvfs__check_value(struct dkvfs *fs, const struct dkv_entry *ent, const struct dkv_buf *mp);
/* Bind the mount's sessions (dkvfs_mount, on the loop): 0, or -ENOENT
 * with err naming the user that does not exist. */
int dkvfs__sessions_init(struct dkvfs *fs, char *err, size_t errlen);
void dkvfs__sessions_release(struct dkvfs *fs);


/* inode.c */

/* The tables of nodes and versions: made empty at the mount; released
 * (every entry unpinned) when the FUSE threads are gone. */
void dkvfs__inodes_init(struct dkvfs *fs);
void dkvfs__inodes_release(struct dkvfs *fs);
uint64_t dkvfs__ino(const struct dkvfs *fs, const struct dkv_entry *ent, enum fskind k);
/* The entry of an inode and its kind; for a "_" also its version (verp
 * may be NULL).  NULL only for a version the kernel has forgotten, which
 * it does not ask about. */
struct dkv_entry *dkvfs__ino_entry_ver(struct dkvfs *fs, fuse_ino_t ino, enum fskind *k,
				       struct fsver **verp);
struct dkv_entry *dkvfs__ino_entry(struct dkvfs *fs, fuse_ino_t ino, enum fskind *k);
struct fsnode *dkvfs__node_find(struct dkvfs *fs, const struct dkv_entry *ent);
/* The version with inode number id; NULL: forgotten.  Under mu. */
struct fsver *dkvfs__ver_find(struct dkvfs *fs, uint64_t id);
/* Where the newest version of ent's "_" is kept; NULL when the kernel
 * does not know ent's directory.  Under mu. */
struct fsver **dkvfs__ver_slot(struct dkvfs *fs, const struct dkv_entry *ent);
/* The inode number of the newest version of ent's "_" that the kernel
 * looked up; 0: none.  Under mu. */
uint64_t dkvfs__value_ino(struct dkvfs *fs, const struct dkv_entry *ent);
/* Give a version the entry's new value after a write through the mount
 * (struct inplace); false if it may not.  Under mu, on the loop thread. */
bool dkvfs__ver_take(struct dkvfs *fs, const struct dkv_event *ev);
/* Fill e for (ent, k) and count the kernel's lookup.  Under the read
 * lock.  Directories and versions of "_" are cached until the notifier
 * invalidates them (protocol replies wait for that: see notify.c); .meta
 * and .stats change without a new inode and are never cached. */
void dkvfs__make_entry(struct dkvfs *fs, fuse_req_t req, struct dkv_entry *ent, enum fskind k,
		       struct fuse_entry_param *e);
/* The same for ent's "_", with the bits s has; create: a new version
 * (create()). */
struct fsver *dkvfs__make_value_entry(struct dkvfs *fs, struct dkv_session *s,
				      struct dkv_entry *ent, bool create,
				      struct fuse_entry_param *e);
void dkvfs__queue_unpin(struct dkvfs *fs, struct dkv_entry *ent); /* under mu */

/* attr.c */

/* Render the YAML text of a value file / meta file; under the read lock.
 * A user record's "_" leaves its password hash out. */
void dkvfs__render_value(const struct dkvfs *fs, const struct dkv_entry *ent, struct dkv_buf *out);
void dkvfs__render_meta(const struct dkv_entry *ent, struct dkv_buf *out);
/* The text of .stats: the requests served, by kind. */
void dkvfs__render_stats(struct dkvfs *fs, struct dkv_buf *out);
/* The state record of the job at ent (below .run): the entry at the same
 * place below (".distkv", "state"), if it has a value; NULL else.  Under
 * the read lock. */
struct dkv_entry *dkvfs__job_state(const struct dkvfs *fs, const struct dkv_entry *ent);
/* The attributes of (ent, k) but a version of "_"; under the read lock. */
void dkvfs__fill_attr(struct dkvfs *fs, struct dkv_entry *ent, enum fskind k, struct stat *st);
/* A version's attributes; under mu. */
void dkvfs__fill_ver_attr(const struct dkvfs *fs, const struct fsver *v, struct stat *st);
/* The attributes an ATTR reply gives the kernel for an inode: those of
 * the version ver (which then counts as having told the kernel its size:
 * struct fsver, attrs_told), else those of (ent, k), with the permission
 * bits s has.  Takes the lock each needs. */
void dkvfs__attrs_for_reply(struct dkvfs *fs, struct dkv_session *s, struct dkv_entry *ent,
			    enum fskind k, struct fsver *ver, struct stat *st);

/* dir.c */

/* The file name of an entry in its parent's directory. */
int dkvfs__entry_name(const struct dkvfs *fs, const struct dkv_entry *ent, struct dkv_buf *out);
/* The entry's path below the mount point ("a/b/c"); false if not shown. */
bool dkvfs__entry_relpath(const struct dkvfs *fs, const struct dkv_entry *ent,
			  struct dkv_buf *out);

/* valuefile.c */

/* Free an open file (also one the kernel never released). */
void dkvfs__vfile_free(struct dkvfs *fs, struct vfile *v);

/* jobs.c */

/* Run a job on the loop thread and wait for it; returns its result. */
int dkvfs__submit(struct dkvfs *fs, struct fsjob *j);
/* On the loop thread: run the queued jobs and unpins now. */
void dkvfs__run_jobs(struct dkvfs *fs);
/* The logger's listener (dkv_logger_add_notify), on the loop: let the
 * writers whose changes are on disk now go. */
void dkvfs__on_log_durable(void *arg);
/* Jobs (fsjob.run), on the loop thread.  job_set: set or delete the
 * value of j->ent (j->data; empty: delete); job_unlink: the same, and
 * the directory stays; job_mkdir: make the child j->data of j->ent
 * (j->out); job_rmdir: remove it.  0 or a negative errno / code. */
int dkvfs__job_set(struct dkvfs *fs, struct fsjob *j);
int dkvfs__job_unlink(struct dkvfs *fs, struct fsjob *j);
int dkvfs__job_mkdir(struct dkvfs *fs, struct fsjob *j);
int dkvfs__job_rmdir(struct dkvfs *fs, struct fsjob *j);

/* workers.c: answer requests until the session ends; 0 or a negative
 * errno. */
int dkvfs__workers_run(struct dkvfs *fs);

/* notify.c */
int dkvfs__notify_start(struct dkvfs *fs);
/* Whether the notifier has invalidated change n (and all before it). */
bool dkvfs__fence_passed(struct dkvfs *fs, uint64_t n);
void dkvfs__notify_stop(struct dkvfs *fs);
/* The engine hook: every change, on the loop thread. */
void dkvfs__on_change(void *ctx, const struct dkv_event *ev);
bool dkvfs__from_notifier(struct dkvfs *fs, fuse_req_t req);
/* From a FUSE thread: the kernel's copy of ent's text is wrong (a write
 * that was refused); have the notifier drop it. ent must be known to the
 * kernel (an open file of it). */
void dkvfs__notify_inval(struct dkvfs *fs, struct dkv_entry *ent, bool kernel_has_value);

/* The notifier's helper process repeats changes with these operations
 * on a path below the mount (notify.c). */
enum { H_MKDIR = 1, H_MODIFY, H_CREATE, H_UNLINK, H_RMDIR };
/* Have the helper do op on path: 0 or a negative errno.  Notifier thread. */
int dkvfs__helper_do(struct dkvfs *fs, int op, const struct dkv_buf *path);
/* Answer the notifier's lookup of name in directory dir as present or
 * absent (dir 0: no expectation). */
void dkvfs__expect(struct dkvfs *fs, uint64_t dir, const char *name, bool present);
/* From a FUSE thread, for a request of the notifier: 1 when name in dir
 * is expected present, -1 absent, 0 no expectation. */
int dkvfs__expected(struct dkvfs *fs, uint64_t dir, const char *name);
/* Whether an inotify watch may see any of the inodes (notifier thread;
 * scans /proc for watches now and then). */
bool dkvfs__inos_watched(struct dkvfs *fs, const uint64_t *inos, unsigned n);
/* The view's hook: node n of .errors changed (own: through the mount);
 * queued for the notifier (false: the notifier is stopping).  Under
 * ev->mu, on the loop thread. */
bool dkvfs__notify_view(struct dkvfs *fs, struct evnode *n, bool own);

/* errview.c: .errors.  The view is made at the mount from the records
 * there (on the loop, before the hook is added) and kept by the hook */
void dkvfs__ev_init(struct dkvfs *fs);
void dkvfs__ev_free(struct dkvfs *fs); /* after the FUSE threads are gone */
/* The hook's part: ev's entry is below (".distkv", "error").  Loop thread. */
void dkvfs__ev_on_change(struct dkvfs *fs, const struct dkv_event *ev);
/* .errors' own inode, and its entry in the root (counts a lookup). */
uint64_t dkvfs__ev_root_ino(const struct dkvfs *fs);
void dkvfs__ev_root_entry(struct dkvfs *fs, struct dkv_session *s, struct fuse_entry_param *e);
/* The handlers of view inodes (ino & VIEW_BIT), called by those of the
 * tree, which they answer for.  Replies and errors:
 *   lookup: entry; ENOTDIR, ENOENT (no such path, no error there, or
 *     none the session may read), EACCES.
 *   getattr, setattr: attr; EACCES, EISDIR (the size of a directory),
 *     EPERM (truncate(2) of "_" by name), EFBIG (past 1 MiB).
 *   open: open; EISDIR, EACCES.  create: create (the notifier's only);
 *     EPERM for anybody else.
 *   read: buf.  write: write; EBADF, EFBIG, an earlier failure.
 *   flush: err; EINVAL (not YAML; not `resolved: X` nor a map of
 *     subsystems each with resolved; a subsystem not there), ENOENT (no
 *     error left there), EACCES (the session may not write a record).
 *   release: err (0).
 *   mkdir: EPERM (but the notifier's).  rmdir: 0 (nothing left there),
 *     ENOTEMPTY (errors at or below it), ENOENT.  unlink: 0 (the errors at
 *     that path deleted, details first), ENOENT (not "_"; none there),
 *     EACCES.
 *   opendir: ENOSYS on a mount that is not checked; open; EACCES.
 *   access: err (0 or EACCES). */
void dkvfs__ev_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void dkvfs__ev_forget(struct dkvfs *fs, fuse_ino_t ino, uint64_t nlookup);
void dkvfs__ev_getattr(fuse_req_t req, fuse_ino_t ino);
void dkvfs__ev_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi);
void dkvfs__ev_access(fuse_req_t req, fuse_ino_t ino, int mask);
void dkvfs__ev_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void dkvfs__ev_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus);
void dkvfs__ev_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void dkvfs__ev_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      struct fuse_file_info *fi);
void dkvfs__ev_read(fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi);
void dkvfs__ev_write(fuse_req_t req, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi);
void dkvfs__ev_flush(fuse_req_t req, struct fuse_file_info *fi);
void dkvfs__ev_release(fuse_req_t req, struct fuse_file_info *fi);
void dkvfs__ev_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void dkvfs__ev_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void dkvfs__ev_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
/* For the notifier: n's path below the mount (".errors/a/b"); false when
 * the mount cannot show it.  After n changed, drop what the kernel holds
 * of it and its ancestors (listings, attributes, their names, its "_").
 * The repeat of
 * n's change for inotify (own: the writer saw it; only remember it):
 * true when its "_" must come in a later round.  A queued item is done
 * with n (the node may go). */
bool dkvfs__ev_relpath(struct dkvfs *fs, const struct evnode *n, struct dkv_buf *out);
void dkvfs__ev_invalidate(struct dkvfs *fs, struct evnode *n);
bool dkvfs__ev_repeat(struct dkvfs *fs, struct evnode *n, bool own);
void dkvfs__ev_unref(struct dkvfs *fs, struct evnode *n);
void dkvfs__ev_unref_nolock(struct evnode *n); /* the notifier stops: no pruning */

/* watchfile.c */
/* A stream of the changes below ent that s may read. */
void dkvfs__watch_open(struct dkvfs *fs, fuse_req_t req, struct dkv_session *s,
		       struct dkv_entry *ent, struct fuse_file_info *fi);
void dkvfs__watch_read(struct dkvfs *fs, fuse_req_t req, uint64_t fh, size_t size,
		       struct fuse_file_info *fi);
void dkvfs__watch_poll(struct dkvfs *fs, fuse_req_t req, uint64_t fh, struct fuse_pollhandle *ph);
void dkvfs__watch_release(struct dkvfs *fs, fuse_req_t req, uint64_t fh);
void dkvfs__watch_close_all(struct dkvfs *fs);
/* After the FUSE threads are gone, on the loop thread: end every stream. */
void dkvfs__watch_drop_all(struct dkvfs *fs);
/* Ask the notifier to wake a poller; under mu. */
void dkvfs__queue_poll(struct dkvfs *fs, struct fuse_pollhandle *ph);

#endif
