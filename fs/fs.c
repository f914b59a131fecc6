/*
 * fs.c - the FUSE operations of the mounted tree.
 *
 * Workload: reads dominate (cat, ls -R, find, grep -r), mostly of data that
 * has not changed since the kernel last saw it, so the kernel's caches do
 * most of the work: long attribute and entry timeouts, kept page caches and
 * cached directory listings, invalidated when something changes.  The
 * handlers read the tree under the engine's read lock; every change is a
 * job for the loop thread, which owns the engine.
 */
#include "fs_int.h"
#include "distkv.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define TIMEOUT 86400.0        /* seconds; we invalidate explicitly */
#define MAX_WRITE (16u << 20)  /* largest text written to a "_" file */

static const char *const special_names[][3] = {
	/* name, first element ("" = None), second element */
	{".acl", "", "acl"},       {".auth", "", "auth"},     {".type", "", "type"},
	{".codec", "", "codec"},   {".conv", "", "conv"},     {".match", "", "match"},
	{".code", ".distkv", "code"}, {".run", ".distkv", "run"},
	{".errors", ".distkv", "error"},
};

/* ---- inodes and the kernel's lookups ---- */

uint64_t dkvfs__ino(const struct dkvfs *fs, const struct dkv_entry *ent, enum fskind k)
{
	if (ent == dkv_engine_root(fs->e) && k == K_DIR)
		return FUSE_ROOT_ID;
	return (uint64_t)(uintptr_t)ent | k;
}

static struct fsver *ver_find(struct dkvfs *fs, uint64_t id);

/* The entry of an inode and its kind; for a "_" also its version (verp
 * may be NULL).  NULL only for a version the kernel has forgotten, which
 * it does not ask about. */
static struct dkv_entry *ino_entry_ver(struct dkvfs *fs, fuse_ino_t ino, enum fskind *k,
				       struct fsver **verp)
{
	if (ino == FUSE_ROOT_ID) {
		*k = K_DIR;
		return dkv_engine_root(fs->e);
	}
	if (ino & VER_BIT) {
		pthread_mutex_lock(&fs->mu);
		struct fsver *v = ver_find(fs, ino);
		pthread_mutex_unlock(&fs->mu);
		*k = K_VALUE;
		if (verp)
			*verp = v;
		return v ? v->ent : NULL;
	}
	*k = (enum fskind)(ino & KIND_MASK);
	return (struct dkv_entry *)(uintptr_t)(ino & ~(uint64_t)KIND_MASK);
}

static struct dkv_entry *ino_entry(struct dkvfs *fs, fuse_ino_t ino, enum fskind *k)
{
	return ino_entry_ver(fs, ino, k, NULL);
}

static size_t node_bucket(const struct dkvfs *fs, const struct dkv_entry *ent)
{
	uint64_t x = (uint64_t)(uintptr_t)ent >> 4;
	x ^= x >> 29;
	x *= 0xbf58476d1ce4e5b9ull;
	return (size_t)(x ^ (x >> 32)) & fs->nodes_mask;
}

struct fsnode *dkvfs__node_find(struct dkvfs *fs, const struct dkv_entry *ent)
{
	for (struct fsnode *n = fs->nodes[node_bucket(fs, ent)]; n; n = n->hnext)
		if (n->ent == ent)
			return n;
	return NULL;
}

/* Count one kernel lookup of ent; under the engine read lock and mu. */
static struct fsnode *node_ref(struct dkvfs *fs, struct dkv_entry *ent)
{
	struct fsnode *n = dkvfs__node_find(fs, ent);
	if (!n) {
		if (fs->nnodes >= fs->nodes_mask) {
			size_t nb = (fs->nodes_mask + 1) * 2;
			struct fsnode **t = dkv_xcalloc(nb, sizeof *t);
			size_t oldn = fs->nodes_mask + 1;
			struct fsnode **old = fs->nodes;
			fs->nodes = t;
			fs->nodes_mask = nb - 1;
			for (size_t i = 0; i < oldn; i++) {
				for (struct fsnode *x = old[i], *nx; x; x = nx) {
					nx = x->hnext;
					size_t b = node_bucket(fs, x->ent);
					x->hnext = t[b];
					t[b] = x;
				}
			}
			free(old);
		}
		n = dkv_xcalloc(1, sizeof *n);
		n->ent = ent;
		size_t b = node_bucket(fs, ent);
		n->hnext = fs->nodes[b];
		fs->nodes[b] = n;
		fs->nnodes++;
		dkv_entry_pin(ent); /* freed only after the kernel forgets it */
	}
	n->nlookup++;
	return n;
}

void dkvfs__queue_unpin(struct dkvfs *fs, struct dkv_entry *ent)
{
	if (fs->nunpins == fs->unpins_cap) {
		fs->unpins_cap = fs->unpins_cap ? 2 * fs->unpins_cap : 64;
		fs->unpins = dkv_xrealloc(fs->unpins, fs->unpins_cap * sizeof *fs->unpins);
	}
	fs->unpins[fs->nunpins++] = ent;
}

static void node_forget(struct dkvfs *fs, fuse_ino_t ino, uint64_t nlookup)
{
	enum fskind k;
	struct dkv_entry *ent = ino_entry(fs, ino, &k);
	struct fsnode **pp = &fs->nodes[node_bucket(fs, ent)];
	for (; *pp; pp = &(*pp)->hnext) {
		struct fsnode *n = *pp;
		if (n->ent != ent)
			continue;
		n->nlookup = n->nlookup > nlookup ? n->nlookup - nlookup : 0;
		if (!n->nlookup) {
			*pp = n->hnext;
			fs->nnodes--;
			dkvfs__queue_unpin(fs, ent);
			free(n);
		}
		return;
	}
}

/* ---- versions of "_" ---- */

static size_t ver_bucket(const struct dkvfs *fs, uint64_t id)
{
	uint64_t x = id >> 4;
	x *= 0x9e3779b97f4a7c15ull;
	return (size_t)(x >> 32) & fs->vers_mask;
}

static struct fsver *ver_find(struct dkvfs *fs, uint64_t id)
{
	for (struct fsver *v = fs->vers[ver_bucket(fs, id)]; v; v = v->hnext)
		if (v->id == id)
			return v;
	return NULL;
}

/* Where the newest version of ent's "_" is kept; NULL when the kernel
 * does not know ent's directory.  Under mu. */
static struct fsver **ver_slot(struct dkvfs *fs, const struct dkv_entry *ent)
{
	if (ent == dkv_engine_root(fs->e))
		return &fs->root_ver;
	struct fsnode *n = dkvfs__node_find(fs, ent);
	return n ? &n->ver : NULL;
}

uint64_t dkvfs__value_ino(struct dkvfs *fs, const struct dkv_entry *ent)
{
	struct fsver **slot = ver_slot(fs, ent);
	return slot && *slot ? (*slot)->id : 0;
}

static void ver_insert(struct dkvfs *fs, struct fsver *v)
{
	if (fs->nvers >= fs->vers_mask) {
		size_t nb = (fs->vers_mask + 1) * 2;
		struct fsver **t = dkv_xcalloc(nb, sizeof *t);
		size_t oldn = fs->vers_mask + 1;
		struct fsver **old = fs->vers;
		fs->vers = t;
		fs->vers_mask = nb - 1;
		for (size_t i = 0; i < oldn; i++) {
			for (struct fsver *x = old[i], *nx; x; x = nx) {
				nx = x->hnext;
				size_t b = ver_bucket(fs, x->id);
				x->hnext = t[b];
				t[b] = x;
			}
		}
		free(old);
	}
	size_t b = ver_bucket(fs, v->id);
	v->hnext = fs->vers[b];
	fs->vers[b] = v;
	fs->nvers++;
}

static void ver_free(struct fsver *v)
{
	dkv_value_unref(v->value);
	dkv_buf_release(&v->text);
	free(v);
}

/* Whether a lookup of ent's "_" may give the kernel version v again. */
static bool ver_current(const struct fsver *v, const struct dkv_entry *ent)
{
	return v && v->value == ent->value && !v->retired;
}

/* The version of "_" that ent's value is now, with one more kernel
 * lookup counted; the reply gives the kernel its attributes.  create: a
 * new version in any case, with its creator counted as a writer (the
 * kernel's size for it is 0 until the text is written, which must not
 * be a version that readers have open).  Under the read lock (ent->value
 * stays put). */
static struct fsver *ver_ref(struct dkvfs *fs, struct dkv_entry *ent, bool create)
{
	pthread_mutex_lock(&fs->mu);
	struct fsver **slot = ver_slot(fs, ent);
	if (!create && slot && ver_current(*slot, ent)) {
		(*slot)->nlookup++;
		(*slot)->attrs_told = true;
		pthread_mutex_unlock(&fs->mu);
		return *slot;
	}
	pthread_mutex_unlock(&fs->mu);

	struct fsver *nv = dkv_xcalloc(1, sizeof *nv);
	nv->ent = ent;
	nv->value = dkv_value_ref(ent->value);
	nv->mtime_ns = ent->mtime_ns;
	nv->nlookup = 1;
	dkvfs__render_value(ent, &nv->text);

	pthread_mutex_lock(&fs->mu);
	slot = ver_slot(fs, ent);
	if (!create && slot && ver_current(*slot, ent)) { /* another thread was quicker */
		struct fsver *v = *slot;
		v->nlookup++;
		v->attrs_told = true;
		pthread_mutex_unlock(&fs->mu);
		ver_free(nv);
		return v;
	}
	nv->attrs_told = true;
	nv->writers = create;
	nv->id = VER_BIT | (++fs->next_ver << 4) | K_VALUE;
	ver_insert(fs, nv);
	dkv_entry_pin(ent); /* freed only after the kernel forgets the version */
	if (slot)
		*slot = nv;
	pthread_mutex_unlock(&fs->mu);
	return nv;
}

/* Under mu. */
static void ver_forget(struct dkvfs *fs, uint64_t id, uint64_t nlookup)
{
	struct fsver **pp = &fs->vers[ver_bucket(fs, id)];
	for (; *pp; pp = &(*pp)->hnext) {
		struct fsver *v = *pp;
		if (v->id != id)
			continue;
		v->nlookup = v->nlookup > nlookup ? v->nlookup - nlookup : 0;
		if (v->nlookup)
			return;
		*pp = v->hnext;
		fs->nvers--;
		struct fsver **slot = ver_slot(fs, v->ent);
		if (slot && *slot == v)
			*slot = NULL;
		dkvfs__queue_unpin(fs, v->ent);
		ver_free(v);
		return;
	}
}

bool dkvfs__ver_take(struct dkvfs *fs, const struct dkv_event *ev)
{
	struct fsver *v = fs->inplace.ver;
	struct dkv_entry *ent = ev->entry;
	if (!v || fs->applying != ent || v->ent != ent)
		return false;
	struct fsver **slot = ver_slot(fs, ent);
	/* the kernel's newest version of "_", holding the value just replaced,
	 * and no reply told the kernel its old size since the last write made
	 * that stale (struct inplace) */
	if (!slot || *slot != v || !ev->prev || v->value != ev->prev || !ev->value->len ||
	    ev->created || v->attrs_told || !dkv_entry_has_value(ent))
		return false;
	dkv_value_unref(v->value);
	v->value = dkv_value_ref(ent->value);
	v->text.len = 0;
	dkv_buf_append(&v->text, fs->inplace.text->data, fs->inplace.text->len);
	v->mtime_ns = ent->mtime_ns;
	return true;
}

/* ---- rendering ---- */

void dkvfs__render_value(const struct dkv_entry *ent, struct dkv_buf *out)
{
	if (!dkv_entry_has_value(ent))
		return;
	if (dkv_yaml_emit(out, dkv_value_data(ent->value), ent->value->len))
		dkv_buf_puts(out, "# (a value that cannot be shown as YAML)\n");
}

void dkvfs__render_meta(const struct dkv_entry *ent, struct dkv_buf *out)
{
	const struct dkv_value *v = ent->value;
	char tbuf[64] = "never";
	if (ent->mtime_ns) {
		time_t t = (time_t)(ent->mtime_ns / 1000000000);
		struct tm tm;
		gmtime_r(&t, &tm);
		snprintf(tbuf, sizeof tbuf, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900,
			 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
			 (int)(ent->mtime_ns % 1000000000 / 1000));
	}
	dkv_buf_puts(out, "chain:");
	if (!v || !v->nchain)
		dkv_buf_puts(out, " []\n");
	else
		dkv_buf_putc(out, '\n');
	for (uint32_t i = 0; v && i < v->nchain; i++) {
		struct dkv_buf nm = {0};
		dkv_mp_cstr(&nm, v->chain[i].node->name);
		dkv_buf_puts(out, "- node: ");
		struct dkv_buf y = {0};
		dkv_yaml_emit(&y, nm.data, nm.len);
		dkv_buf_append(out, y.data, y.len);
		dkv_buf_printf(out, "  tick: %llu\n", (unsigned long long)v->chain[i].tick);
		dkv_buf_release(&y);
		dkv_buf_release(&nm);
	}
	dkv_buf_printf(out, "tock: %llu\nchanged: %s\ndeleted: %s\n", (unsigned long long)ent->tock,
		       tbuf, dkv_entry_is_tombstone(ent) ? "true" : "false");
}

/* ---- names ---- */

static bool name_is(const char *name, const char *s)
{
	return !strcmp(name, s);
}

int dkvfs__entry_name(const struct dkvfs *fs, const struct dkv_entry *ent, struct dkv_buf *out)
{
	for (unsigned i = 0; i < fs->nspecials; i++) {
		if (fs->specials[i].ent == ent) {
			dkv_buf_puts(out, fs->specials[i].name);
			return 0;
		}
	}
	return dkv_pathtext_format(out, ent->name, ent->namelen, DKV_PT_FS);
}

bool dkvfs__entry_relpath(const struct dkvfs *fs, const struct dkv_entry *ent,
			  struct dkv_buf *out)
{
	const struct dkv_entry *stack[256];
	unsigned n = 0;
	const struct dkv_entry *root = dkv_engine_root(fs->e);
	const struct dkv_entry *x = ent;
	while (x && x != root) {
		bool special = false;
		for (unsigned i = 0; i < fs->nspecials; i++)
			special |= fs->specials[i].ent == x;
		if (n == 256)
			return false;
		stack[n++] = x;
		if (special)
			break;
		if (x->parent == root && x->namelen == 1 && x->name[0] == 0xc0)
			return false; /* inside None but not below a special directory */
		x = x->parent;
	}
	out->len = 0;
	while (n--) {
		if (out->len)
			dkv_buf_putc(out, '/');
		if (dkvfs__entry_name(fs, stack[n], out))
			return false;
	}
	return true;
}

/* The directory entry named name in dir; NULL when there is none (or it
 * is not shown).  Under the read lock. */
static struct dkv_entry *child_by_name(struct dkvfs *fs, struct dkv_entry *dir, const char *name,
				       bool want_hidden)
{
	struct dkv_buf el = {0};
	struct dkv_entry *k = NULL;
	if (dir == dkv_engine_root(fs->e)) {
		for (unsigned i = 0; i < fs->nspecials; i++)
			if (name_is(name, fs->specials[i].name))
				return fs->specials[i].ent;
	}
	if (!dkv_pathtext_parse(&el, name, strlen(name), DKV_PT_FS)) {
		k = dkv_entry_child(fs->e, dir, el.data, el.len);
		if (k && dir == dkv_engine_root(fs->e) && k->namelen == 1 && k->name[0] == 0xc0)
			k = NULL;
		if (k && !want_hidden && !dkv_entry_visible(k))
			k = NULL;
	}
	dkv_buf_release(&el);
	return k;
}

/* ---- attributes ---- */

static void fill_times(const struct dkvfs *fs, struct stat *st, const struct dkv_entry *ent)
{
	int64_t ns = ent->mtime_ns;
	if (!ns)
		ns = fs->mount_time_ns; /* never changed: a time that stays put (tar checks) */
	st->st_mtim.tv_sec = ns / 1000000000;
	st->st_mtim.tv_nsec = ns % 1000000000;
	st->st_atim = st->st_mtim;
	st->st_ctim = st->st_mtim;
}

/* Under the read lock. */
static void fill_attr(struct dkvfs *fs, struct dkv_entry *ent, enum fskind k, struct stat *st)
{
	memset(st, 0, sizeof *st);
	st->st_ino = dkvfs__ino(fs, ent, k);
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_blksize = 4096;
	fill_times(fs, st, ent);
	switch (k) {
	case K_DIR: {
		nlink_t links = 2;
		for (struct dkv_entry *c = ent->kids; c; c = c->next)
			links += dkv_entry_visible(c);
		if (ent == dkv_engine_root(fs->e))
			links += fs->nspecials;
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = links;
		st->st_size = 4096;
		break;
	}
	case K_VALUE: /* versions: fill_ver_attr */
	case K_META: { /* the size is that of the text a read would give */
		struct dkv_buf t = {0};
		dkvfs__render_meta(ent, &t);
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = (off_t)t.len;
		dkv_buf_release(&t);
		break;
	}
	case K_WATCH:
	case K_STATS:
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = 0;
		break;
	}
	st->st_blocks = (st->st_size + 511) / 512;
}

/* A version's attributes; under mu. */
static void fill_ver_attr(const struct dkvfs *fs, const struct fsver *v, struct stat *st)
{
	memset(st, 0, sizeof *st);
	st->st_ino = v->id;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_blksize = 4096;
	int64_t ns = v->mtime_ns ? v->mtime_ns : fs->mount_time_ns;
	st->st_mtim.tv_sec = ns / 1000000000;
	st->st_mtim.tv_nsec = ns % 1000000000;
	st->st_atim = st->st_mtim;
	st->st_ctim = st->st_mtim;
	st->st_mode = S_IFREG | 0644;
	st->st_nlink = 1;
	st->st_size = (off_t)v->text.len;
	st->st_blocks = (st->st_size + 511) / 512;
}

/* Fill e for (ent, k) and count the kernel's lookup.  Under the read lock.
 * Directories and versions of "_" are cached until the notifier
 * invalidates them (protocol replies wait for that: see notify.c); .meta
 * and .stats change without a new inode and are never cached. */
static struct fsver *make_value_entry(struct dkvfs *fs, struct dkv_entry *ent, bool create,
				      struct fuse_entry_param *e)
{
	struct fsver *v = ver_ref(fs, ent, create);
	e->ino = v->id;
	e->attr_timeout = TIMEOUT;
	e->entry_timeout = TIMEOUT;
	pthread_mutex_lock(&fs->mu);
	fill_ver_attr(fs, v, &e->attr);
	pthread_mutex_unlock(&fs->mu);
	return v;
}

static void make_entry(struct dkvfs *fs, fuse_req_t req, struct dkv_entry *ent, enum fskind k,
		       struct fuse_entry_param *e)
{
	(void)req;
	memset(e, 0, sizeof *e);
	if (k == K_VALUE) {
		make_value_entry(fs, ent, false, e);
		return;
	}
	e->ino = dkvfs__ino(fs, ent, k);
	e->attr_timeout = k == K_DIR ? TIMEOUT : 0;
	e->entry_timeout = k == K_DIR ? TIMEOUT : 0;
	fill_attr(fs, ent, k, &e->attr);
	pthread_mutex_lock(&fs->mu);
	node_ref(fs, ent);
	pthread_mutex_unlock(&fs->mu);
}

/* ---- jobs for the loop thread ---- */

static void on_async(uv_async_t *h)
{
	dkvfs__run_jobs(h->data);
}

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
static void on_log_durable(void *arg)
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

/* Set or delete the value of j->ent (a local change). */
static int job_set(struct dkvfs *fs, struct fsjob *j)
{
	struct dkv_path p;
	struct dkv_result res;
	struct dkv_change c = {0};
	dkv_path_init(&p);
	bool internal = false;
	struct dkv_entry *meta = dkv_engine_meta(fs->e);
	/* internal entries are below None: their path is relative to it */
	for (struct dkv_entry *x = j->ent; x; x = x->parent)
		internal |= x == meta;
	if (!dkv_entry_path(j->ent, internal ? meta : NULL, &p)) {
		dkv_path_release(&p);
		return -ENOENT;
	}
	c.path = p.enc.data;
	c.path_len = p.enc.len;
	c.internal = internal;
	c.value = j->data.len ? j->data.data : NULL;
	c.value_len = j->data.len;
	c.pre = (enum dkv_precond)j->pre;
	c.src = DKV_SRC_LOCAL;
	fs->applying = j->ent; /* its inotify events came from the writer itself */
	fs->inplace = j->inplace;
	int rc = dkv_engine_apply(fs->e, &c, &res);
	fs->applying = NULL;
	fs->inplace = (struct inplace){0};
	if (!rc && fs->opts.logger)
		j->need = dkv_logger_need(fs->opts.logger);
	if (!rc && !j->data.len && !res.changed)
		rc = -ENOENT; /* nothing to delete */
	dkv_result_release(fs->e, &res);
	dkv_path_release(&p);
	return rc;
}

/* rm _: like a file removed from a directory, the directory stays
 * (until rmdir), although an entry without a value is not shown otherwise */
static int job_unlink(struct dkvfs *fs, struct fsjob *j)
{
	int rc = job_set(fs, j);
	if (!rc)
		dkv_engine_set_keep(fs->e, j->ent, true);
	return rc;
}

static int job_mkdir(struct dkvfs *fs, struct fsjob *j)
{
	return dkv_engine_mkdir(fs->e, j->ent, j->data.data, j->data.len, &j->out);
}

static int job_rmdir(struct dkvfs *fs, struct fsjob *j)
{
	struct dkv_entry *k = dkv_entry_child(fs->e, j->ent, j->data.data, j->data.len);
	if (!k)
		return -ENOENT;
	for (unsigned i = 0; i < fs->nspecials; i++)
		if (fs->specials[i].ent == k)
			return -EPERM;
	return dkv_engine_rmdir(fs->e, k);
}

/* ---- requests ---- */

static struct dkvfs *FS(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

#define COUNT(fs, op) atomic_fetch_add_explicit(&(fs)->ops[OP_##op], 1, memory_order_relaxed)

static const char *const op_names[] = {
#define X(n) #n,
	DKVFS_OPS(X)
#undef X
};

static void render_stats(struct dkvfs *fs, struct dkv_buf *out)
{
	for (int i = 0; i < OP__COUNT; i++)
		dkv_buf_printf(out, "%s: %llu\n", op_names[i],
			       (unsigned long long)atomic_load(&fs->ops[i]));
}

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

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	COUNT(FS(req), lookup);
	struct dkvfs *fs = FS(req);
	struct fuse_entry_param e;
	enum fskind pk;
	struct dkv_entry *dir = ino_entry(fs, parent, &pk);
	int err = ENOENT;

	if (pk != K_DIR) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	bool notifier = dkvfs__from_notifier(fs, req);
	bool expect_absent = false, expect_present = false;
	if (notifier) {
		pthread_mutex_lock(&fs->mu);
		if (fs->expect.dir == dir && fs->expect.name.len == strlen(name) &&
		    !memcmp(fs->expect.name.data, name, fs->expect.name.len)) {
			expect_present = fs->expect.present;
			expect_absent = !fs->expect.present;
		}
		pthread_mutex_unlock(&fs->mu);
		if (expect_absent) {
			fuse_reply_err(req, ENOENT);
			return;
		}
	}

	dkv_engine_rdlock(fs->e);
	if (name_is(name, "_")) {
		if (dkv_entry_has_value(dir) || expect_present) {
			make_entry(fs, req, dir, K_VALUE, &e);
			err = 0;
		}
	} else if (name_is(name, ".meta")) {
		if (dir->value) {
			make_entry(fs, req, dir, K_META, &e);
			err = 0;
		}
	} else if (name_is(name, ".watch")) {
		make_entry(fs, req, dir, K_WATCH, &e);
		err = 0;
	} else if (name_is(name, ".stats") && dir == dkv_engine_root(fs->e)) {
		make_entry(fs, req, dir, K_STATS, &e);
		err = 0;
	} else {
		struct dkv_entry *k = child_by_name(fs, dir, name, notifier);
		if (k) {
			make_entry(fs, req, k, K_DIR, &e);
			err = 0;
		}
	}
	dkv_engine_unlock(fs->e);
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_entry(req, &e);
}

/* The kernel let go of inodes: drop our counts, and let the loop unpin
 * the entries nobody holds any more. */
static void forget_all(struct dkvfs *fs, size_t count, const struct fuse_forget_data *forgets)
{
	pthread_mutex_lock(&fs->mu);
	for (size_t i = 0; i < count; i++)
		if (forgets[i].ino & VER_BIT)
			ver_forget(fs, forgets[i].ino, forgets[i].nlookup);
		else if (forgets[i].ino != FUSE_ROOT_ID)
			node_forget(fs, forgets[i].ino, forgets[i].nlookup);
	bool wake = fs->nunpins > 0;
	pthread_mutex_unlock(&fs->mu);
	if (wake)
		uv_async_send(&fs->async);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	COUNT(FS(req), forget);
	struct fuse_forget_data one = {.ino = ino, .nlookup = nlookup};
	forget_all(FS(req), 1, &one);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	COUNT(FS(req), forget);
	forget_all(FS(req), count, forgets);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	COUNT(FS(req), getattr);
	struct dkvfs *fs = FS(req);
	struct stat st;
	enum fskind k;
	struct fsver *ver = NULL;
	struct dkv_entry *ent = ino_entry_ver(fs, ino, &k, &ver);
	(void)fi;
	if (!ent) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	if (ver) {
		pthread_mutex_lock(&fs->mu);
		fill_ver_attr(fs, ver, &st);
		ver->attrs_told = true;
		pthread_mutex_unlock(&fs->mu);
		fuse_reply_attr(req, &st, TIMEOUT);
		return;
	}
	dkv_engine_rdlock(fs->e);
	fill_attr(fs, ent, k, &st);
	dkv_engine_unlock(fs->e);
	fuse_reply_attr(req, &st, k == K_DIR ? TIMEOUT : 0);
}

/* ---- value files ---- */

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

static void vfile_free(struct dkvfs *fs, struct vfile *v)
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
	fprintf(stderr, "distkv: %s%s%s/_: not stored: %s\n", fs->mnt, p.len ? "/" : "",
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
	struct fsjob j = {.run = job_set, .ent = ent, .fenced = true};
	if (dkv_yaml_parse(&j.data, (const char *)v->text.data, v->text.len, err, sizeof err)) {
		log_not_stored(fs, ent, "%s", err);
		dkv_buf_release(&j.data);
		/* the kernel truncated or overwrote its cached copy of the text
		 * when the file was written: make it forget that copy */
		dkvfs__notify_inval(fs, ent, true);
		return -EINVAL;
	}
	j.pre = v->excl ? DKV_PRE_NEW : DKV_PRE_NONE;
	if (v->ver && !v->created) {
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
		else
			log_not_stored(fs, ent, "%s", strerror(-rc));
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
static void open_value(struct dkvfs *fs, fuse_req_t req, struct dkv_entry *ent,
		       struct fsver *ver, struct fuse_file_info *fi, bool created)
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
				vfile_free(fs, v);
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
			struct fsver **slot = ver_slot(fs, ent);
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
		v->ver = make_value_entry(fs, ent, true, &e);
		dkv_engine_unlock(fs->e);
		e.attr.st_size = 0;
		e.attr_timeout = 0; /* what the file holds is decided at close */
		rc = fuse_reply_create(req, &e, fi);
	} else {
		rc = fuse_reply_open(req, fi);
	}
	if (rc == -ENOENT) { /* interrupted: no RELEASE will come */
		vfile_release_version(fs, v);
		vfile_free(fs, v);
	}
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	COUNT(FS(req), open);
	struct dkvfs *fs = FS(req);
	enum fskind k;
	struct fsver *ver = NULL;
	struct dkv_entry *ent = ino_entry_ver(fs, ino, &k, &ver);
	if (!ent) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	switch (k) {
	case K_DIR:
		fuse_reply_err(req, EISDIR);
		return;
	case K_VALUE:
		open_value(fs, req, ent, ver, fi, false);
		return;
	case K_META:
	case K_STATS: {
		if ((fi->flags & O_ACCMODE) != O_RDONLY) {
			fuse_reply_err(req, EACCES);
			return;
		}
		struct vfile *v = vfile_new(fs);
		dkv_engine_rdlock(fs->e);
		if (k == K_META)
			dkvfs__render_meta(ent, &v->text);
		else
			render_stats(fs, &v->text);
		dkv_engine_unlock(fs->e);
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
		dkvfs__watch_open(fs, req, ent, fi);
		return;
	}
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	COUNT(FS(req), create);
	struct dkvfs *fs = FS(req);
	enum fskind pk;
	struct dkv_entry *dir = ino_entry(fs, parent, &pk);
	(void)mode;
	if (pk != K_DIR) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	if (!name_is(name, "_")) {
		/* only values can be files; say so in the log, since EPERM alone
		 * puzzles whoever ran cp or tar */
		fprintf(stderr, "distkv: %s: only files named _ can be created (not %s)\n",
			fs->mnt, name);
		fuse_reply_err(req, EPERM);
		return;
	}
	if (!dkvfs__from_notifier(fs, req)) {
		dkv_engine_rdlock(fs->e);
		bool exists = dkv_entry_has_value(dir);
		dkv_engine_unlock(fs->e);
		if (exists && (fi->flags & O_EXCL)) {
			fuse_reply_err(req, EEXIST);
			return;
		}
	}
	open_value(fs, req, dir, NULL, fi, true);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	COUNT(FS(req), read);
	struct dkvfs *fs = FS(req);
	enum fskind k;
	struct fsver *ver = NULL;
	ino_entry_ver(fs, ino, &k, &ver);
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

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	COUNT(FS(req), write);
	struct dkvfs *fs = FS(req);
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
		log_not_stored(fs, ino_entry(fs, ino, &k),
			       "a write would make the text %llu bytes long; it may have at most %u MiB",
			       (unsigned long long)off + size, MAX_WRITE >> 20);
		rc = vfile_fail(v, -EFBIG);
	}
	if (rc) {
		pthread_mutex_unlock(&v->mu);
		fuse_reply_err(req, -rc);
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

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	COUNT(FS(req), flush);
	struct dkvfs *fs = FS(req);
	enum fskind k;
	struct dkv_entry *ent = ino_entry(fs, ino, &k);
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
	fuse_reply_err(req, -rc);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	COUNT(FS(req), release);
	struct dkvfs *fs = FS(req);
	enum fskind k;
	struct dkv_entry *ent = ino_entry(fs, ino, &k);
	if (k == K_WATCH) {
		dkvfs__watch_release(fs, req, fi->fh);
		return;
	}
	struct vfile *v = (struct vfile *)(uintptr_t)fi->fh;
	if (!v) { /* a read-only open of a version, through the page cache */
		pthread_mutex_lock(&fs->mu);
		struct fsver *ver = ino & VER_BIT ? ver_find(fs, ino) : NULL;
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
	vfile_free(fs, v);
	fuse_reply_err(req, 0);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	COUNT(FS(req), setattr);
	struct dkvfs *fs = FS(req);
	enum fskind k;
	struct fsver *ver = NULL;
	struct dkv_entry *ent = ino_entry_ver(fs, ino, &k, &ver);
	struct stat st;

	if (!ent) {
		fuse_reply_err(req, ESTALE);
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
				fuse_reply_err(req, -rc);
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
			if (size > MAX_WRITE) {
				log_not_stored(fs, ent, "truncating to %llu bytes; the text may have at most %u MiB",
					       (unsigned long long)size, MAX_WRITE >> 20);
				fuse_reply_err(req, EFBIG);
				return;
			}
			struct vfile *v = vfile_new(fs);
			dkv_engine_rdlock(fs->e);
			dkvfs__render_value(ent, &v->text);
			dkv_engine_unlock(fs->e);
			if (size < v->text.len) {
				v->text.len = size;
			} else {
				dkv_buf_reserve(&v->text, size - v->text.len);
				memset(v->text.data + v->text.len, 0, size - v->text.len);
				v->text.len = size;
			}
			int rc = vfile_commit(fs, ent, v);
			vfile_free(fs, v);
			if (rc) {
				fuse_reply_err(req, -rc);
				return;
			}
		}
	}
	/* modes, owners and times are not stored: accept them so that cp -p
	 * and tar work, and report what is true */
	if (ver) {
		pthread_mutex_lock(&fs->mu);
		fill_ver_attr(fs, ver, &st);
		ver->attrs_told = true;
		pthread_mutex_unlock(&fs->mu);
	} else {
		dkv_engine_rdlock(fs->e);
		fill_attr(fs, ent, k, &st);
		dkv_engine_unlock(fs->e);
	}
	/* ftruncate: the writer's file has the size it asked for.  truncate
	 * by name stored a new value, which is a new version; this one, which
	 * readers may have open, keeps its size (the kernel would cut their
	 * page cache to the size in the reply) */
	bool writers_size = (to_set & FUSE_SET_ATTR_SIZE) && fi && fi->fh;
	if (writers_size)
		st.st_size = attr->st_size;
	fuse_reply_attr(req, &st, writers_size ? 0 : TIMEOUT);
}

/* ---- directories ---- */

#define OFF_DOT 1
#define OFF_DOTDOT 2
#define OFF_VALUE 3
#define OFF_SPECIAL 4   /* + index */
#define OFF_CHILD 100   /* + seq */

/* No OPENDIR/RELEASEDIR: after this ENOSYS the kernel opens directories
 * without asking and keeps their listings (FOPEN_CACHE_DIR|KEEP_CACHE is
 * its default then) until the notifier invalidates them; protocol replies
 * wait for that, and the kernel drops a listing itself after a change made
 * through the mount, so a listing is exact after any change. */
static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	COUNT(FS(req), opendir);
	(void)ino;
	(void)fi;
	fuse_reply_err(req, ENOSYS);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	COUNT(FS(req), releasedir);
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

/* Append one directory entry; false when the buffer is full. */
static bool add_dirent(struct dkvfs *fs, fuse_req_t req, struct dkv_buf *buf, size_t size,
		       bool plus, const char *name, struct dkv_entry *ent, enum fskind k,
		       off_t next)
{
	size_t room = size - buf->len;
	size_t need;
	if (plus) {
		struct fuse_entry_param e;
		memset(&e, 0, sizeof e);
		need = fuse_add_direntry_plus(req, NULL, 0, name, &e, next);
		if (need > room)
			return false;
		if (!strcmp(name, ".") || !strcmp(name, "..")) {
			/* not a lookup, and the kernel ignores their attributes:
			 * no counting of a big parent's children for every leaf */
			e.ino = dkvfs__ino(fs, ent, K_DIR);
			e.attr.st_ino = e.ino;
			e.attr.st_mode = S_IFDIR | 0755;
		} else {
			make_entry(fs, req, ent, k, &e); /* counts as a lookup */
		}
		dkv_buf_reserve(buf, need);
		fuse_add_direntry_plus(req, (char *)buf->data + buf->len, need, name, &e, next);
		buf->len += need;
	} else {
		struct stat st;
		memset(&st, 0, sizeof st);
		st.st_ino = dkvfs__ino(fs, ent, k);
		if (k == K_VALUE) {
			pthread_mutex_lock(&fs->mu);
			uint64_t vino = dkvfs__value_ino(fs, ent);
			pthread_mutex_unlock(&fs->mu);
			if (vino)
				st.st_ino = vino;
		}
		st.st_mode = k == K_DIR ? S_IFDIR : S_IFREG;
		need = fuse_add_direntry(req, NULL, 0, name, &st, next);
		if (need > room)
			return false;
		dkv_buf_reserve(buf, need);
		fuse_add_direntry(req, (char *)buf->data + buf->len, need, name, &st, next);
		buf->len += need;
	}
	return true;
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi, bool plus)
{
	struct dkvfs *fs = FS(req);
	enum fskind k;
	struct dkv_entry *dir = ino_entry(fs, ino, &k);
	struct dkv_buf buf = {0}, name = {0};
	(void)fi;
	bool is_root = dir == dkv_engine_root(fs->e);

	dkv_engine_rdlock(fs->e);
	if (off < OFF_DOT && !add_dirent(fs, req, &buf, size, plus, ".", dir, K_DIR, OFF_DOT))
		goto full;
	if (off < OFF_DOTDOT &&
	    !add_dirent(fs, req, &buf, size, plus, "..", dir->parent ? dir->parent : dir, K_DIR,
			OFF_DOTDOT))
		goto full;
	if (off < OFF_VALUE && dkv_entry_has_value(dir) &&
	    !add_dirent(fs, req, &buf, size, plus, "_", dir, K_VALUE, OFF_VALUE))
		goto full;
	for (unsigned i = 0; is_root && i < fs->nspecials; i++) {
		off_t o = OFF_SPECIAL + i;
		if (off < o && !add_dirent(fs, req, &buf, size, plus, fs->specials[i].name,
					   fs->specials[i].ent, K_DIR, o))
			goto full;
	}
	/* children, in insertion order; offsets are their seq numbers */
	struct dkv_entry *c = dir->kids;
	if (off >= OFF_CHILD) {
		uint32_t after = (uint32_t)(off - OFF_CHILD);
		struct dkv_entry *last = NULL;
		pthread_mutex_lock(&fs->mu);
		for (unsigned i = 0; i < 32 && !last; i++) {
			struct cursor *cu = &fs->cursors[i];
			if (cu->dir == dir && cu->off == off && cu->seq == after) {
				last = dkv_entry_child(fs->e, dir, cu->name.data, cu->name.len);
				if (last && last->seq != after)
					last = NULL;
			}
		}
		pthread_mutex_unlock(&fs->mu);
		if (last) {
			c = last->next;
		} else { /* no cursor, or its entry went away: find our place by number */
			for (c = dir->kids; c && c->seq <= after; c = c->next)
				;
		}
	}
	struct dkv_entry *listed = NULL;
	off_t listed_off = 0;
	for (; c; c = c->next) {
		if (is_root && c->namelen == 1 && c->name[0] == 0xc0)
			continue;
		if (!dkv_entry_visible(c))
			continue;
		name.len = 0;
		if (dkv_pathtext_format(&name, c->name, c->namelen, DKV_PT_FS))
			continue;
		off_t o = OFF_CHILD + (off_t)c->seq;
		if (!add_dirent(fs, req, &buf, size, plus, dkv_buf_cstr(&name), c, K_DIR, o))
			break;
		listed = c;
		listed_off = o;
	}
	if (listed && c) { /* more to come: remember where we stopped */
		pthread_mutex_lock(&fs->mu);
		struct cursor *cu = &fs->cursors[fs->next_cursor++ % 32];
		cu->dir = dir;
		cu->off = listed_off;
		cu->seq = listed->seq;
		cu->name.len = 0;
		dkv_buf_append(&cu->name, listed->name, listed->namelen);
		pthread_mutex_unlock(&fs->mu);
	}
full:
	dkv_engine_unlock(fs->e);
	fuse_reply_buf(req, (const char *)buf.data, buf.len);
	dkv_buf_release(&buf);
	dkv_buf_release(&name);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	COUNT(FS(req), readdir);
	do_readdir(req, ino, size, off, fi, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	COUNT(FS(req), readdirplus);
	do_readdir(req, ino, size, off, fi, true);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	COUNT(FS(req), mkdir);
	struct dkvfs *fs = FS(req);
	enum fskind pk;
	struct dkv_entry *dir = ino_entry(fs, parent, &pk);
	struct fuse_entry_param e;
	(void)mode;
	if (pk != K_DIR) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	if (name_is(name, "_") || name_is(name, ".meta") || name_is(name, ".watch")) {
		fuse_reply_err(req, EEXIST);
		return;
	}
	if (dkvfs__from_notifier(fs, req)) {
		/* repeating a change that already happened: just show it */
		dkv_engine_rdlock(fs->e);
		struct dkv_entry *k = child_by_name(fs, dir, name, true);
		if (k)
			make_entry(fs, req, k, K_DIR, &e);
		dkv_engine_unlock(fs->e);
		if (k)
			fuse_reply_entry(req, &e);
		else
			fuse_reply_err(req, ENOENT);
		return;
	}
	struct fsjob j = {.run = job_mkdir, .ent = dir};
	if (dkv_pathtext_parse(&j.data, name, strlen(name), DKV_PT_FS) ||
	    (dir == dkv_engine_root(fs->e) && j.data.len == 1 && j.data.data[0] == 0xc0)) {
		dkv_buf_release(&j.data);
		fuse_reply_err(req, EINVAL);
		return;
	}
	int rc = dkvfs__submit(fs, &j);
	dkv_buf_release(&j.data);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	dkv_engine_rdlock(fs->e);
	make_entry(fs, req, j.out, K_DIR, &e);
	dkv_engine_unlock(fs->e);
	fuse_reply_entry(req, &e);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	COUNT(FS(req), rmdir);
	struct dkvfs *fs = FS(req);
	enum fskind pk;
	struct dkv_entry *dir = ino_entry(fs, parent, &pk);
	if (dkvfs__from_notifier(fs, req)) {
		fuse_reply_err(req, 0);
		return;
	}
	if (dir == dkv_engine_root(fs->e)) {
		for (unsigned i = 0; i < fs->nspecials; i++) {
			if (name_is(name, fs->specials[i].name)) {
				fuse_reply_err(req, EPERM);
				return;
			}
		}
	}
	struct fsjob j = {.run = job_rmdir, .ent = dir};
	if (pk != K_DIR || dkv_pathtext_parse(&j.data, name, strlen(name), DKV_PT_FS)) {
		dkv_buf_release(&j.data);
		fuse_reply_err(req, pk != K_DIR ? ENOTDIR : ENOENT);
		return;
	}
	int rc = dkvfs__submit(fs, &j);
	dkv_buf_release(&j.data);
	fuse_reply_err(req, -rc);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	COUNT(FS(req), unlink);
	struct dkvfs *fs = FS(req);
	enum fskind pk;
	struct dkv_entry *dir = ino_entry(fs, parent, &pk);
	if (dkvfs__from_notifier(fs, req)) {
		fuse_reply_err(req, 0);
		return;
	}
	if (pk != K_DIR) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	if (!name_is(name, "_")) {
		fuse_reply_err(req, name_is(name, ".meta") || name_is(name, ".watch") ? EPERM : ENOENT);
		return;
	}
	struct fsjob j = {.run = job_unlink, .ent = dir};
	fuse_reply_err(req, -dkvfs__submit(fs, &j));
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	COUNT(FS(req), rename);
	(void)parent;
	(void)name;
	(void)newparent;
	(void)newname;
	(void)flags;
	/* Entries have no identity apart from their path, so a rename would be
	 * a copy and a delete: EXDEV makes mv do exactly that, visibly. */
	fuse_reply_err(req, EXDEV);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	COUNT(FS(req), statfs);
	struct dkvfs *fs = FS(req);
	struct statvfs sv;
	(void)ino;
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

static void op_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		    struct fuse_pollhandle *ph)
{
	COUNT(FS(req), poll);
	struct dkvfs *fs = FS(req);
	enum fskind k;
	ino_entry(fs, ino, &k);
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
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.open = op_open,
	.create = op_create,
	.read = op_read,
	.write = op_write,
	.flush = op_flush,
	.release = op_release,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.mkdir = op_mkdir,
	.rmdir = op_rmdir,
	.unlink = op_unlink,
	.rename = op_rename,
	.statfs = op_statfs,
	.poll = op_poll,
};

/* ---- mounting ---- */

static void *fuse_main_thread(void *arg)
{
	struct dkvfs *fs = arg;
	int rc = dkvfs__workers_run(fs);
	if (rc)
		fprintf(stderr, "distkv: %s: cannot serve FUSE requests: %s\n", fs->mnt, strerror(-rc));
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
		fprintf(stderr, "distkv: %s: detaching the stale mount of a dead daemon\n", mnt);
		abort_connection(min);
		if (umount2(mnt, MNT_DETACH) && errno != EINVAL) {
			snprintf(err, errlen, "%s: cannot detach stale mount: %s", mnt,
				 strerror(errno));
			return -errno;
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
			snprintf(err, errlen, "%s: cannot detach stale mount: %s", mnt,
				 strerror(errno));
			return -errno;
		}
		return 0;
	}
	if (errno == ENOENT && mkdir(mnt, 0755) == 0)
		return 0;
	snprintf(err, errlen, "%s: %s", mnt, strerror(errno));
	return -errno;
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
		fs->nspecials++;
	}
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
		snprintf(err, errlen, "%s: %s", opts->mountpoint, strerror(errno));
		return -errno;
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
	fs->nodes_mask = 1023;
	fs->nodes = dkv_xcalloc(fs->nodes_mask + 1, sizeof *fs->nodes);
	fs->vers_mask = 1023;
	fs->vers = dkv_xcalloc(fs->vers_mask + 1, sizeof *fs->vers);
	fs->jobs_tail = &fs->jobs;
	pthread_mutex_init(&fs->mu, NULL);
	pthread_cond_init(&fs->cond, NULL);
	uv_async_init(loop, &fs->async, on_async);
	fs->async.data = fs;
	make_specials(fs);

	char mopts[128];
	snprintf(mopts, sizeof mopts,
		 "fsname=distkv:%d,subtype=distkv,default_permissions,allow_other", (int)getpid());
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
		dkv_logger_add_notify(opts->logger, on_log_durable, fs);
	rc = dkvfs__notify_start(fs);
	if (rc) {
		snprintf(err, errlen, "cannot start the notifier thread: %s", strerror(-rc));
		if (opts->logger)
			dkv_logger_remove_notify(opts->logger, on_log_durable, fs);
		dkv_engine_remove_hook(e, dkvfs__on_change, fs);
		fuse_session_unmount(fs->se);
		goto fail;
	}
	rc = pthread_create(&fs->fuse_thread, NULL, fuse_main_thread, fs);
	if (rc) {
		snprintf(err, errlen, "cannot start the FUSE thread: %s", strerror(rc));
		rc = -rc;
		dkvfs__notify_stop(fs);
		if (opts->logger)
			dkv_logger_remove_notify(opts->logger, on_log_durable, fs);
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
	uv_close((uv_handle_t *)&fs->async, NULL);
	/* fs is freed by the caller's loop run via the closer below */
	fs->se = NULL;
	free(fs->nodes);
	free(fs->vers);
	free(fs->mnt);
	pthread_mutex_destroy(&fs->mu);
	pthread_cond_destroy(&fs->cond);
	fs->nodes = NULL;
	fs->vers = NULL;
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
	for (size_t i = 0; i <= fs->nodes_mask; i++) {
		for (struct fsnode *n = fs->nodes[i], *nx; n; n = nx) {
			nx = n->hnext;
			dkv_entry_unpin(fs->e, n->ent);
			free(n);
		}
	}
	for (size_t i = 0; i <= fs->vers_mask; i++) {
		for (struct fsver *v = fs->vers[i], *nx; v; v = nx) {
			nx = v->hnext;
			dkv_entry_unpin(fs->e, v->ent);
			ver_free(v);
		}
	}
	free(fs->vers);
	for (size_t i = 0; i < fs->nunpins; i++)
		dkv_entry_unpin(fs->e, fs->unpins[i]);
	for (unsigned i = 0; i < fs->nspecials; i++)
		dkv_entry_unpin(fs->e, fs->specials[i].ent);
	free(fs->unpins);
	free(fs->awaited);
	free(fs->nodes);
	free(fs->mnt);
	dkv_buf_release(&fs->expect.name);
	for (unsigned i = 0; i < 32; i++)
		dkv_buf_release(&fs->cursors[i].name);
	while (fs->vfiles)
		vfile_free(fs, fs->vfiles);
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
	fs->close_cb = cb;
	fs->close_arg = arg;
	fs->opts.fence_moved = NULL; /* the server may go first */
	dkv_engine_remove_hook(fs->e, dkvfs__on_change, fs);
	if (fs->opts.logger) {
		/* nobody may wait for a log that is about to close */
		dkv_logger_remove_notify(fs->opts.logger, on_log_durable, fs);
		fs->opts.logger = NULL;
		on_log_durable(fs);
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
