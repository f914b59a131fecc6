/*
 * notify.c - keeping the kernel's view of the tree fresh.
 *
 * After a change from any source the kernel may hold stale attributes,
 * page cache, directory listings and dentries; and inotify watchers on the
 * mount have seen nothing, because no FUSE notify call makes inotify
 * report anything.  So for every changed entry a dedicated thread
 *   1. drops the kernel's caches (notify_inval_inode / _entry), and
 *   2. repeats the change through the mount with real file operations
 *      (mkdir, open/write/close of "_", unlink, rmdir), which the FUSE
 *      handlers recognise as the notifier's own and do not apply again.
 * Both must run on a thread that holds none of our locks and answers no
 * FUSE requests; otherwise kernel and daemon wait on each other forever.
 *
 * Changes to one entry that arrive while it waits in the queue are merged,
 * so a hot key costs one round of work, not one per change.
 *
 * The kernel keeps directories, listings, and the versions of "_" (inode.c)
 * until step 1 drops them, so a read right after a change could still see
 * the old state: protocol replies (and close() of a written "_") wait for
 * step 1 of the changes made before them.  Every change queued gets the
 * next number (nq_seq); when the notifier takes an item off the queue,
 * every change numbered below the next queued item's first number (or, if
 * none is left, every change so far) is in this item or was in an earlier
 * one, so once step 1 of this item is done that number is published as
 * inval_done (the fence that conn.c holds replies for).
 */
#include "fs_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct notify_item {
	struct notify_item *next;  /* queue */
	struct notify_item *hnext; /* index */
	struct dkv_entry *ent;     /* pinned until processed; NULL: a view item */
	struct evnode *vnode;      /* a view item's node of .errors (errview.c), held */
	bool had_value;            /* what the kernel last saw */
	unsigned created;          /* entries made by the changes (path tail) */
	bool value_only;           /* a later round: no more invalidation */
	bool no_repeat;            /* made through the mount: inotify saw it already */
	int64_t due_ns;            /* not before (CLOCK_MONOTONIC) */
	uint64_t seq;              /* the number of its first change */
	uint64_t upto;             /* invalidated, every change up to this one is */
	/* the new directories to repeat, outermost first, fixed in the first
	 * round (pinned); mk_done of them are made */
	struct dkv_entry *mk[16];
	unsigned nmk, mk_done;
};

/* Under mu.  A view item's node is let go of by the caller
 * (dkvfs__ev_unref, without mu), or, when the notifier stops, here
 * without pruning it (the view is freed whole at the end). */
static void item_free(struct dkvfs *fs, struct notify_item *it)
{
	if (it->vnode) {
		dkvfs__ev_unref_nolock(it->vnode);
		free(it);
		return;
	}
	dkvfs__queue_unpin(fs, it->ent);
	for (unsigned i = 0; i < it->nmk; i++)
		dkvfs__queue_unpin(fs, it->mk[i]);
	free(it);
}

/* A recursive inotify watcher (inotifywait -r) adds a watch on a new
 * directory only after it has read the directory's IN_CREATE; a "_"
 * created at once inside would go unseen.  So the "_" of an entry whose
 * directory was just made comes this much later. */
#define NEW_DIR_DELAY_NS 20000000

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static size_t idx_bucket(const struct dkvfs *fs, const struct dkv_entry *ent)
{
	uint64_t x = (uint64_t)(uintptr_t)ent >> 4;
	x *= 0x9e3779b97f4a7c15ull;
	return (size_t)(x >> 32) & fs->nq_mask;
}

bool dkvfs__from_notifier(struct dkvfs *fs, fuse_req_t req)
{
	return fs->notify_tid && fuse_req_ctx(req)->pid == fs->notify_tid;
}

static bool known(struct dkvfs *fs, const struct dkv_entry *ent)
{
	if (ent == dkv_engine_root(fs->e))
		return true;
	pthread_mutex_lock(&fs->mu);
	bool k = dkvfs__node_find(fs, ent) != NULL;
	pthread_mutex_unlock(&fs->mu);
	return k;
}

void dkvfs__queue_poll(struct dkvfs *fs, struct fuse_pollhandle *ph)
{
	if (fs->npolls == fs->polls_cap) {
		fs->polls_cap = fs->polls_cap ? 2 * fs->polls_cap : 16;
		fs->polls = dkv_xrealloc(fs->polls, fs->polls_cap * sizeof *fs->polls);
	}
	fs->polls[fs->npolls++] = ph;
	pthread_cond_signal(&fs->ncond);
}

/* Under mu: ent's item in the queue, or NULL. */
static struct notify_item *item_find(struct dkvfs *fs, const struct dkv_entry *ent)
{
	struct notify_item *it;
	for (it = fs->nq_index[idx_bucket(fs, ent)]; it; it = it->hnext)
		if (it->ent == ent)
			break;
	return it;
}

/* Under mu: a new item for ent (pinned until processed) at the end of
 * the queue, its first change numbered seq; the notifier is woken. */
static struct notify_item *item_queue(struct dkvfs *fs, struct dkv_entry *ent, uint64_t seq)
{
	struct notify_item *it = dkv_xcalloc(1, sizeof *it);
	it->ent = ent;
	it->seq = seq;
	dkv_entry_pin(ent);
	size_t b = idx_bucket(fs, ent);
	it->hnext = fs->nq_index[b];
	fs->nq_index[b] = it;
	*fs->nq_tail = it;
	fs->nq_tail = &it->next;
	fs->nq_len++;
	pthread_cond_signal(&fs->ncond);
	return it;
}

/* The engine hook, on the loop thread. */
void dkvfs__on_change(void *ctx, const struct dkv_event *ev)
{
	struct dkvfs *fs = ctx;
	struct dkv_entry *ent = ev->entry;
	bool had = ev->prev && ev->prev->len;

	dkvfs__ev_on_change(fs, ev); /* .errors, when ent is an error record */
	pthread_mutex_lock(&fs->mu);
	if (fs->stopping) {
		pthread_mutex_unlock(&fs->mu);
		return;
	}
	struct notify_item *it = item_find(fs, ent);
	/* a write through the mount that kept its inode: the kernel holds
	 * nothing stale, and inotify saw the writer (struct inplace) */
	if (!it && dkvfs__ver_take(fs, ev)) {
		pthread_mutex_unlock(&fs->mu);
		return;
	}
	uint64_t seq = atomic_load(&fs->nq_seq) + 1;
	atomic_store(&fs->nq_seq, seq);
	bool own = dkvfs__own_session(fs, ev->sess); /* made through the mount (dkvfs__job_set) */
	if (it) {
		it->created += ev->created;
		it->no_repeat &= own;
	} else {
		it = item_queue(fs, ent, seq);
		it->had_value = had;
		it->created = ev->created;
		it->no_repeat = own;
	}
	pthread_mutex_unlock(&fs->mu);
}

bool dkvfs__notify_view(struct dkvfs *fs, struct evnode *n, bool own)
{
	pthread_mutex_lock(&fs->mu);
	bool ok = !fs->stopping && fs->nq_index;
	if (ok) {
		uint64_t seq = atomic_load(&fs->nq_seq) + 1;
		atomic_store(&fs->nq_seq, seq);
		struct notify_item *it = dkv_xcalloc(1, sizeof *it);
		it->vnode = n;
		it->seq = seq;
		it->no_repeat = own;
		*fs->nq_tail = it;
		fs->nq_tail = &it->next;
		fs->nq_len++;
		pthread_cond_signal(&fs->ncond);
	}
	pthread_mutex_unlock(&fs->mu);
	return ok;
}

void dkvfs__notify_inval(struct dkvfs *fs, struct dkv_entry *ent, bool kernel_has_value)
{
	dkv_engine_rdlock(fs->e);
	bool has = dkv_entry_has_value(ent);
	dkv_engine_unlock(fs->e);
	pthread_mutex_lock(&fs->mu);
	if (!item_find(fs, ent) && !fs->stopping) {
		uint64_t seq = atomic_load(&fs->nq_seq) + 1;
		atomic_store(&fs->nq_seq, seq);
		/* pinning is safe: the kernel holds ent, so it cannot go */
		struct notify_item *it = item_queue(fs, ent, seq);
		it->had_value = kernel_has_value || has; /* "_" made by create() but refused */
		it->no_repeat = true;
	}
	pthread_mutex_unlock(&fs->mu);
}

/*
 * The repeats run in a child process, not in a thread of ours: a thread
 * blocked in a request to our own mount would keep a crashed (kill -9)
 * daemon from ever exiting, since the mount's connection only ends when
 * the daemon's last thread is gone.  The child holds no descriptor of the
 * connection, so when the daemon dies its requests fail with ENOTCONN and
 * it exits.  It was forked from a threaded process: it only makes system
 * calls on a buffer of its own (no malloc, no stdio).
 */
static void helper_main(int sock)
{
	char helper_buf[8192];
	for (;;) {
		ssize_t n = read(sock, helper_buf, sizeof helper_buf - 1);
		if (n <= 1)
			_exit(0);
		helper_buf[n] = 0;
		const char *path = helper_buf + 1;
		int rc = 0, fd = -1;
		switch (helper_buf[0]) {
		case H_MKDIR:
			rc = mkdir(path, 0755);
			break;
		case H_MODIFY:
		case H_CREATE:
			fd = open(path, O_WRONLY | O_CLOEXEC | (helper_buf[0] == H_CREATE ? O_CREAT : 0),
				  0644);
			/* one byte is enough: writable opens go past the page cache, and the
			 * daemon ignores what we write; inotify sees IN_MODIFY */
			if (fd >= 0) {
				rc = write(fd, "\n", 1) < 0 ? -1 : 0;
				close(fd);
			} else {
				rc = -1;
			}
			break;
		case H_UNLINK:
			rc = unlink(path);
			break;
		case H_RMDIR:
			rc = rmdir(path);
			break;
		}
		int res = rc ? -errno : 0;
		if (write(sock, &res, sizeof res) != sizeof res)
			_exit(0);
	}
}

static int helper_start(struct dkvfs *fs)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
		return -errno;
	int fusefd = fuse_session_fd(fs->se);
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(sv[0]);
		close(sv[1]);
		return -e;
	}
	if (pid == 0) {
		/* keep nothing of the daemon's: above all not the connection */
		for (int fd = 3; fd < 65536; fd++)
			if (fd != sv[1])
				close(fd);
		(void)fusefd;
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		helper_main(sv[1]);
		_exit(0);
	}
	close(sv[1]);
	fs->helper_sock = sv[0];
	fs->helper_pid = pid;
	fs->notify_tid = pid;
	return 0;
}

static void helper_stop(struct dkvfs *fs)
{
	if (fs->helper_sock >= 0) {
		close(fs->helper_sock);
		fs->helper_sock = -1;
	}
	if (fs->helper_pid > 0) {
		int st;
		kill(fs->helper_pid, SIGKILL);
		waitpid(fs->helper_pid, &st, 0);
		fs->helper_pid = 0;
	}
}

/* Ask the helper to do one operation; returns 0 or a negative errno. */
int dkvfs__helper_do(struct dkvfs *fs, int op, const struct dkv_buf *path)
{
	char msg[8192];
	int res = -EIO;
	if (fs->helper_sock < 0 || path->len + 2 > sizeof msg)
		return -EIO;
	msg[0] = (char)op;
	memcpy(msg + 1, path->data, path->len);
	if (write(fs->helper_sock, msg, path->len + 1) < 0 ||
	    read(fs->helper_sock, &res, sizeof res) != sizeof res)
		return -EIO;
	return res;
}

void dkvfs__expect(struct dkvfs *fs, uint64_t dir, const char *name, bool present)
{
	pthread_mutex_lock(&fs->mu);
	fs->expect.dir = dir;
	fs->expect.name.len = 0;
	if (name)
		dkv_buf_puts(&fs->expect.name, name);
	fs->expect.present = present;
	pthread_mutex_unlock(&fs->mu);
}

int dkvfs__expected(struct dkvfs *fs, uint64_t dir, const char *name)
{
	int x = 0;
	pthread_mutex_lock(&fs->mu);
	if (fs->expect.dir && fs->expect.dir == dir && fs->expect.name.len == strlen(name) &&
	    !memcmp(fs->expect.name.data, name, fs->expect.name.len))
		x = fs->expect.present ? 1 : -1;
	pthread_mutex_unlock(&fs->mu);
	return x;
}

/* set_expect for an entry's directory (NULL: none). */
static void set_expect(struct dkvfs *fs, const struct dkv_entry *dir, const char *name,
		       bool present)
{
	dkvfs__expect(fs, dir ? dkvfs__ino(fs, dir, K_DIR) : 0, name, present);
}


/* What one item needs, read under the engine's read lock. */
struct snapshot {
	bool has_value;
	bool visible;
	bool shown;               /* the entry has a path in the mount */
	bool hidden;              /* the mount's user may not read it: no repeat */
	struct dkv_buf rel;       /* its path below the mount */
	struct dkv_buf name;      /* its name in its parent directory */
	struct dkv_entry *parent;
	/* the newly created directories, outermost first */
	struct dkv_entry *made[16];
	unsigned nmade;
	/* the directories whose listings and link counts changed */
	struct dkv_entry *changed[64];
	unsigned nchanged;
};

/* After a change that may have made ent appear or disappear: the
 * directories whose listings (and link counts) changed.  Its parent's;
 * and further up only while the directory above has nothing else to
 * show, so that its own visibility went with ent's (a new entry deep
 * below a visible one changes one listing, not all of its ancestors').
 * Under the read lock. */
static unsigned changed_dirs(const struct dkv_entry *ent, struct dkv_entry **out, unsigned max)
{
	unsigned n = 0;
	for (const struct dkv_entry *x = ent; x->parent && n < max; x = x->parent) {
		struct dkv_entry *p = x->parent;
		out[n++] = p;
		if (dkv_entry_has_value(p) || (p->flags & DKV_ENTRY_KEEP))
			break;
		bool other = false;
		for (const struct dkv_entry *k = p->kids; k && !other; k = k->next)
			other = k != x && dkv_entry_visible(k);
		if (other)
			break;
	}
	return n;
}

static void snapshot_take(struct dkvfs *fs, struct notify_item *it, struct snapshot *s)
{
	struct dkv_entry *ent = it->ent;
	dkv_engine_rdlock(fs->e);
	s->has_value = dkv_entry_has_value(ent);
	s->visible = dkv_entry_visible(ent);
	s->shown = dkvfs__entry_relpath(fs, ent, &s->rel);
	/* inotify tells every watcher: a bound mount repeats only what its
	 * own user may read (access.c) */
	s->hidden = fs->sess.check && !(dkvfs__modes(fs, &fs->sess, ent) & DKV_ACL_READ);
	s->parent = ent->parent;
	if (ent->parent)
		dkvfs__entry_name(fs, ent, &s->name);
	if (!it->value_only && (it->created || it->had_value != s->has_value))
		s->nchanged = changed_dirs(ent, s->changed, 64);
	dkv_engine_unlock(fs->e);
	/* the directories the kernel does not have: new ones, and ones an
	 * earlier round removed from its view while they were empty.  Fixed
	 * in the first round: a recursive watcher that lists the outermost
	 * new directory makes the kernel know the levels below it, which
	 * must still be repeated for it to report them. */
	if (!it->value_only && s->has_value) {
		struct dkv_entry *up[16];
		unsigned n = 0;
		for (struct dkv_entry *x = ent; x && x->parent && n < 16 && !known(fs, x);
		     x = x->parent)
			up[n++] = x;
		for (unsigned i = 0; i < n; i++) {
			it->mk[i] = up[n - 1 - i];
			dkv_entry_pin(it->mk[i]); /* safe: ent is pinned, and so its ancestors */
		}
		it->nmk = n;
	}
	s->nmade = 0;
	if (s->has_value)
		for (unsigned i = it->mk_done; i < it->nmk; i++)
			s->made[s->nmade++] = it->mk[i];
}

static void snapshot_release(struct snapshot *s)
{
	dkv_buf_release(&s->rel);
	dkv_buf_release(&s->name);
}


/*
 * Who is watching?  Repeating a change through the mount costs several
 * FUSE round trips, so it is done only where an inotify watch can see it:
 * on a directory (or "_") that is watched, or below a watched directory
 * (a recursive watcher adds watches on new directories as they appear).
 * The kernel lists every inotify watch in /proc/PID/fdinfo; we read those
 * at most every WATCH_SCAN_NS, on the notifier thread only.
 */
#define WATCH_SCAN_NS 50000000

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void scan_fdinfo(struct dkvfs *fs, const char *pid, unsigned maj, unsigned min)
{
	char path[600], link[64];
	snprintf(path, sizeof path, "/proc/%s/fd", pid);
	DIR *d = opendir(path);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "/proc/%s/fd/%s", pid, de->d_name);
		ssize_t n = readlink(path, link, sizeof link - 1);
		if (n <= 0)
			continue;
		link[n] = 0;
		if (strcmp(link, "anon_inode:inotify"))
			continue;
		snprintf(path, sizeof path, "/proc/%s/fdinfo/%s", pid, de->d_name);
		FILE *f = fopen(path, "r");
		char line[512];
		while (f && fgets(line, sizeof line, f)) {
			unsigned long long ino;
			unsigned sdev;
			const char *p = strstr(line, " ino:");
			const char *q = strstr(line, " sdev:");
			if (strncmp(line, "inotify ", 8) || !p || !q || sscanf(p, " ino:%llx", &ino) != 1 ||
			    sscanf(q, " sdev:%x", &sdev) != 1)
				continue;
			if (sdev >> 20 != maj || (sdev & 0xfffff) != min)
				continue;
			if (fs->nwatched == fs->watched_cap) {
				fs->watched_cap = fs->watched_cap ? 2 * fs->watched_cap : 64;
				fs->watched = dkv_xrealloc(fs->watched,
							   fs->watched_cap * sizeof *fs->watched);
			}
			fs->watched[fs->nwatched++] = ino;
		}
		if (f)
			fclose(f);
	}
	closedir(d);
}

/* A recursive watcher lists every directory it adds watches to. */
static uint64_t listings(struct dkvfs *fs)
{
	return atomic_load_explicit(&fs->ops[OP_readdirplus], memory_order_relaxed) +
	       atomic_load_explicit(&fs->ops[OP_readdir], memory_order_relaxed);
}

static void scan_watches(struct dkvfs *fs)
{
	int64_t now = mono_ns();
	/* a watcher that appears must be noticed at once; one that goes may
	 * be noticed a little later (that only costs a few wasted repeats) */
	int64_t ttl = fs->nwatched ? WATCH_SCAN_NS : WATCH_SCAN_NS / 10;
	if (fs->scan_ns && now - fs->scan_ns < ttl)
		return;
	fs->scan_ns = now;
	fs->scan_listings = listings(fs);
	if (!fs->dev) {
		struct stat st;
		if (stat(fs->mnt, &st))
			return;
		fs->dev = st.st_dev;
	}
	fs->nwatched = 0;
	DIR *proc = opendir("/proc");
	struct dirent *de;
	while (proc && (de = readdir(proc)))
		if (de->d_name[0] >= '1' && de->d_name[0] <= '9')
			scan_fdinfo(fs, de->d_name, major(fs->dev), minor(fs->dev));
	if (proc)
		closedir(proc);
	if (fs->nwatched > 1)
		qsort(fs->watched, fs->nwatched, sizeof *fs->watched, cmp_u64);
}

static bool is_watched(const struct dkvfs *fs, uint64_t ino)
{
	return fs->nwatched && bsearch(&ino, fs->watched, fs->nwatched, sizeof ino, cmp_u64) != NULL;
}

static bool watched_now(struct dkvfs *fs, const struct dkv_entry *ent);

/* Whether an inotify watch can see changes in ent's directory.  Before
 * saying no on the strength of an older scan, look again: a watcher that
 * is still adding its watches (inotifywait -r walks the tree) may have
 * reached this directory since. */
static bool watched_maybe(struct dkvfs *fs, const struct dkv_entry *ent)
{
	/* a watch holds its directory's inode: no inode in the kernel, no watch */
	if (!known(fs, ent))
		return false;
	if (watched_now(fs, ent))
		return true;
	/* a recursive watcher lists every directory it adds watches to: if
	 * none was listed since the last scan, that scan is still good for a
	 * while; otherwise a watcher may have just started */
	int64_t age = mono_ns() - fs->scan_ns;
	bool opened = listings(fs) != fs->scan_listings;
	if (age < (opened ? WATCH_SCAN_NS / 100 : WATCH_SCAN_NS / 10))
		return false;
	fs->scan_ns = 0;
	scan_watches(fs);
	return watched_now(fs, ent);
}

bool dkvfs__inos_watched(struct dkvfs *fs, const uint64_t *inos, unsigned n)
{
	for (int round = 0; round < 2; round++) {
		for (unsigned i = 0; i < n; i++)
			if (is_watched(fs, inos[i]))
				return true;
		/* as watched_maybe: look again unless the last scan is fresh */
		int64_t age = mono_ns() - fs->scan_ns;
		bool opened = listings(fs) != fs->scan_listings;
		if (round || age < (opened ? WATCH_SCAN_NS / 100 : WATCH_SCAN_NS / 10))
			return false;
		fs->scan_ns = 0;
		scan_watches(fs);
	}
	return false;
}

static bool watched_now(struct dkvfs *fs, const struct dkv_entry *ent)
{
	if (!fs->nwatched)
		return false;
	pthread_mutex_lock(&fs->mu);
	uint64_t vino = dkvfs__value_ino(fs, ent);
	pthread_mutex_unlock(&fs->mu);
	if (vino && is_watched(fs, vino))
		return true;
	dkv_engine_rdlock(fs->e);
	bool w = false;
	for (const struct dkv_entry *x = ent; x && !w; x = x->parent)
		w = is_watched(fs, dkvfs__ino(fs, x, K_DIR));
	dkv_engine_unlock(fs->e);
	return w;
}


/* Step 1: drop what the kernel caches about the entry. */
static void invalidate(struct dkvfs *fs, struct notify_item *it, struct snapshot *s)
{
	struct dkv_entry *ent = it->ent;
	if (known(fs, ent)) {
		/* the next lookup of "_" finds the new version (or none); the
		 * version the kernel had may hold a writer's truncation or a
		 * refused text: drop its pages too.  (.meta is never cached.) */
		pthread_mutex_lock(&fs->mu);
		uint64_t vino = dkvfs__value_ino(fs, ent);
		pthread_mutex_unlock(&fs->mu);
		fuse_lowlevel_notify_inval_entry(fs->se, dkvfs__ino(fs, ent, K_DIR), "_", 1);
		if (vino)
			fuse_lowlevel_notify_inval_inode(fs->se, vino, 0, 0);
		if (it->had_value != s->has_value)
			fuse_lowlevel_notify_inval_inode(fs->se, dkvfs__ino(fs, ent, K_DIR), 0, 0);
	}
	if (it->created || it->had_value != s->has_value) {
		/* the entry's visibility may have changed, and with it the
		 * listings and link counts of directories above it */
		for (unsigned i = 0; i < s->nchanged; i++)
			if (known(fs, s->changed[i]))
				fuse_lowlevel_notify_inval_inode(fs->se,
								 dkvfs__ino(fs, s->changed[i], K_DIR), 0, 0);
		if (s->parent && s->name.len && known(fs, s->parent))
			fuse_lowlevel_notify_inval_entry(fs->se, dkvfs__ino(fs, s->parent, K_DIR),
							 (const char *)s->name.data, s->name.len);
	}
}

static int at(struct dkvfs *fs, struct dkv_buf *path, const char *rel, const char *leaf)
{
	path->len = 0;
	dkv_buf_puts(path, fs->mnt);
	if (rel && *rel) {
		dkv_buf_putc(path, '/');
		dkv_buf_puts(path, rel);
	}
	if (leaf) {
		dkv_buf_putc(path, '/');
		dkv_buf_puts(path, leaf);
	}
	dkv_buf_cstr(path);
	return 0;
}

/* Step 2: repeat the change through the mount for inotify.  Returns true
 * when the value must still be created, after NEW_DIR_DELAY_NS. */
static bool repeat(struct dkvfs *fs, struct notify_item *it, struct snapshot *s)
{
	struct dkv_buf path = {0}, rel = {0}, nm = {0};
	const char *relp = dkv_buf_cstr(&s->rel);
	bool made = false;

	/* new directories, outermost first, one per round; an inotify watch
	 * needs the directory's inode, so where the kernel does not know the
	 * parent nobody can be watching and nothing needs repeating */
	unsigned used = 0;
	for (unsigned i = 0; i < s->nmade && !made; i++) {
		struct dkv_entry *d = s->made[i];
		used++;
		if (!watched_maybe(fs, d->parent)) {
			set_expect(fs, NULL, NULL, false);
			dkv_buf_release(&path);
			dkv_buf_release(&rel);
			dkv_buf_release(&nm);
			return false;
		}
		rel.len = 0;
		nm.len = 0;
		dkv_engine_rdlock(fs->e);
		bool ok = dkvfs__entry_relpath(fs, d, &rel) && !dkvfs__entry_name(fs, d, &nm) &&
			  dkv_entry_visible(d);
		struct dkv_entry *parent = d->parent;
		dkv_engine_unlock(fs->e);
		if (!ok)
			continue;
		set_expect(fs, parent, dkv_buf_cstr(&nm), false);
		/* a listing (readdirplus) may have given the kernel a dentry
		 * already; mkdir on it would be EEXIST and report nothing */
		if (known(fs, parent))
			fuse_lowlevel_notify_inval_entry(fs->se, dkvfs__ino(fs, parent, K_DIR),
							 (const char *)nm.data, nm.len);
		at(fs, &path, dkv_buf_cstr(&rel), NULL);
		int rc = dkvfs__helper_do(fs, H_MKDIR, &path);
		if (rc && rc != -EEXIST)
			break;
		made = true;
	}

	/* the made directory is known now; the next round makes the next one */
	it->mk_done += used;
	if (made && ((s->has_value && !it->had_value) || s->nmade > used)) {
		set_expect(fs, NULL, NULL, false);
		dkv_buf_release(&path);
		dkv_buf_release(&rel);
		dkv_buf_release(&nm);
		return true;
	}
	if (!watched_maybe(fs, it->ent)) {
		/* nobody watches a directory that nobody has looked up */
	} else if (s->has_value) {
		at(fs, &path, relp, "_");
		if (it->had_value) {
			set_expect(fs, NULL, NULL, false);
			dkvfs__helper_do(fs, H_MODIFY, &path);
		} else {
			set_expect(fs, it->ent, "_", false);
			if (known(fs, it->ent))
				fuse_lowlevel_notify_inval_entry(fs->se, dkvfs__ino(fs, it->ent, K_DIR),
								 "_", 1);
			dkvfs__helper_do(fs, H_CREATE, &path);
		}
	} else if (it->had_value) {
		set_expect(fs, it->ent, "_", true);
		at(fs, &path, relp, "_");
		dkvfs__helper_do(fs, H_UNLINK, &path);
		/* the directory, and ancestors left with nothing to show */
		struct dkv_entry *x = it->ent;
		while (x) {
			rel.len = 0;
			nm.len = 0;
			dkv_engine_rdlock(fs->e);
			struct dkv_entry *parent = x->parent;
			bool gone = parent && !dkv_entry_visible(x) &&
				    dkvfs__entry_relpath(fs, x, &rel) && !dkvfs__entry_name(fs, x, &nm);
			for (unsigned i = 0; gone && i < fs->nspecials; i++)
				gone = fs->specials[i].ent != x;
			dkv_engine_unlock(fs->e);
			if (!gone)
				break;
			set_expect(fs, parent, dkv_buf_cstr(&nm), true);
			at(fs, &path, dkv_buf_cstr(&rel), NULL);
			if (dkvfs__helper_do(fs, H_RMDIR, &path))
				break;
			x = parent;
		}
	}
	set_expect(fs, NULL, NULL, false);
	dkv_buf_release(&path);
	dkv_buf_release(&rel);
	dkv_buf_release(&nm);
	return false;
}

/* Step 1 of the item is done: publish the fence. */
static void fence_publish(struct dkvfs *fs, const struct notify_item *it)
{
	if (it->upto > atomic_load(&fs->inval_done)) {
		atomic_store(&fs->inval_done, it->upto);
		uv_async_send(&fs->async); /* the loop lets held replies go */
		pthread_mutex_lock(&fs->mu);
		pthread_cond_broadcast(&fs->cond); /* writers in close() */
		pthread_mutex_unlock(&fs->mu);
	}
}

/* A node of .errors changed: the kernel drops what it keeps of it and
 * its ancestors, then the change is repeated for inotify (errview.c). */
static bool process_view(struct dkvfs *fs, struct notify_item *it)
{
	if (!it->value_only) {
		dkvfs__ev_invalidate(fs, it->vnode);
		fence_publish(fs, it);
	}
	return fs->opts.inotify && dkvfs__ev_repeat(fs, it->vnode, it->no_repeat);
}

/* Returns true when the item must come back for a second round. */
static bool process(struct dkvfs *fs, struct notify_item *it)
{
	struct snapshot s = {0};
	bool again = false;
	if (it->vnode)
		return process_view(fs, it);
	snapshot_take(fs, it, &s);
	if (!it->value_only) {
		invalidate(fs, it, &s);
		fence_publish(fs, it);
	}
	if (fs->opts.inotify && s.shown && !s.hidden && !it->no_repeat)
		again = repeat(fs, it, &s);
	snapshot_release(&s);
	return again;
}

static void *notify_main(void *arg)
{
	struct dkvfs *fs = arg;
	pthread_mutex_lock(&fs->mu);
	while (!fs->stopping) {
		if (fs->npolls) {
			struct fuse_pollhandle **polls = fs->polls;
			size_t n = fs->npolls;
			fs->polls = NULL;
			fs->npolls = fs->polls_cap = 0;
			pthread_mutex_unlock(&fs->mu);
			for (size_t i = 0; i < n; i++) {
				fuse_lowlevel_notify_poll(polls[i]);
				fuse_pollhandle_destroy(polls[i]);
			}
			free(polls);
			pthread_mutex_lock(&fs->mu);
			continue;
		}
		struct notify_item *it = fs->nq_head;
		if (!it && fs->later_head && fs->later_head->due_ns <= mono_ns()) {
			it = fs->later_head;
			fs->later_head = it->next;
			if (!fs->later_head)
				fs->later_tail = &fs->later_head;
		} else if (!it) {
			if (fs->later_head) {
				struct timespec ts;
				clock_gettime(CLOCK_REALTIME, &ts);
				int64_t wait = fs->later_head->due_ns - mono_ns();
				ts.tv_nsec += wait > 0 ? wait : 0;
				ts.tv_sec += ts.tv_nsec / 1000000000;
				ts.tv_nsec %= 1000000000;
				pthread_cond_timedwait(&fs->ncond, &fs->mu, &ts);
			} else {
				pthread_cond_wait(&fs->ncond, &fs->mu);
			}
			continue;
		} else {
			fs->nq_head = it->next;
			if (!fs->nq_head)
				fs->nq_tail = &fs->nq_head;
			fs->nq_len--;
			if (it->ent) {
				struct notify_item **pp = &fs->nq_index[idx_bucket(fs, it->ent)];
				while (*pp != it)
					pp = &(*pp)->hnext;
				*pp = it->hnext;
			}
			it->upto = fs->nq_head ? fs->nq_head->seq - 1 : atomic_load(&fs->nq_seq);
		}
		pthread_mutex_unlock(&fs->mu);

		bool again = process(fs, it);

		pthread_mutex_lock(&fs->mu);
		if (again) {
			it->value_only = true;
			it->due_ns = mono_ns() + NEW_DIR_DELAY_NS;
			it->next = NULL;
			*fs->later_tail = it;
			fs->later_tail = &it->next;
			continue;
		}
		if (it->vnode) { /* the view's lock comes before mu */
			pthread_mutex_unlock(&fs->mu);
			dkvfs__ev_unref(fs, it->vnode);
			free(it);
			pthread_mutex_lock(&fs->mu);
			continue;
		}
		item_free(fs, it);
		uv_async_send(&fs->async);
	}
	pthread_mutex_unlock(&fs->mu);
	return NULL;
}

int dkvfs__notify_start(struct dkvfs *fs)
{
	fs->nq_tail = &fs->nq_head;
	fs->later_tail = &fs->later_head;
	fs->nq_mask = 4095;
	fs->nq_index = dkv_xcalloc(fs->nq_mask + 1, sizeof *fs->nq_index);
	pthread_cond_init(&fs->ncond, NULL);
	fs->helper_sock = -1;
	int rc = helper_start(fs);
	if (rc)
		return rc;
	rc = -pthread_create(&fs->notify_thread, NULL, notify_main, fs);
	if (rc) {
		helper_stop(fs);
		return rc;
	}
	fs->notify_running = true;
	return 0;
}

/* ---- the fence ---- */

static uint64_t fence_need(void *arg)
{
	struct dkvfs *fs = arg;
	uint64_t n = atomic_load(&fs->nq_seq);
	return n > atomic_load(&fs->inval_done) ? n : 0;
}

bool dkvfs__fence_passed(struct dkvfs *fs, uint64_t n)
{
	return atomic_load(&fs->inval_done) >= n;
}

static bool fence_passed(void *arg, uint64_t n)
{
	return dkvfs__fence_passed(arg, n);
}

void dkvfs_fence(struct dkvfs *fs, struct dkv_fence *out)
{
	out->need = fence_need;
	out->passed = fence_passed;
	out->arg = fs;
}

void dkvfs__notify_stop(struct dkvfs *fs)
{
	pthread_mutex_lock(&fs->mu);
	fs->stopping = true;
	atomic_store(&fs->inval_done, UINT64_MAX); /* nobody waits any more */
	pthread_cond_broadcast(&fs->cond);
	pthread_cond_broadcast(&fs->ncond);
	pthread_mutex_unlock(&fs->mu);
	if (fs->notify_running) {
		/* the notifier may wait for a FUSE reply that needs the loop:
		 * keep serving jobs while it finishes */
		while (pthread_tryjoin_np(fs->notify_thread, NULL)) {
			dkvfs__run_jobs(fs);
			usleep(1000);
		}
		fs->notify_running = false;
	}
	helper_stop(fs);
	/* what was still queued: let go of the entries */
	pthread_mutex_lock(&fs->mu);
	while (fs->nq_head) {
		struct notify_item *it = fs->nq_head;
		fs->nq_head = it->next;
		item_free(fs, it);
	}
	fs->nq_tail = &fs->nq_head;
	while (fs->later_head) {
		struct notify_item *it = fs->later_head;
		fs->later_head = it->next;
		item_free(fs, it);
	}
	fs->later_tail = &fs->later_head;
	for (size_t i = 0; i < fs->npolls; i++)
		fuse_pollhandle_destroy(fs->polls[i]);
	free(fs->polls);
	fs->polls = NULL;
	fs->npolls = fs->polls_cap = 0;
	free(fs->nq_index);
	fs->nq_index = NULL;
	free(fs->watched);
	fs->watched = NULL;
	fs->nwatched = fs->watched_cap = 0;
	pthread_mutex_unlock(&fs->mu);
	pthread_cond_destroy(&fs->ncond);
}
