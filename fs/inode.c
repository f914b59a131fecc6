/*
 * inode.c - what the kernel holds: inode numbers, the entries it has
 * looked up (struct fsnode) and the versions of "_" it has looked up
 * (struct fsver), with the kernel's lookup counts.
 *
 * An inode number is an entry's address and a kind, so most requests
 * find their entry without any table.  The tables exist for the lookup
 * counts: an entry the kernel has looked up stays pinned until FORGET
 * brings its count to zero (an inode lives as long as the kernel's
 * lookups, not until unlink).  A lookup or forget is one probe of a hash
 * table under fs->mu.
 */
#include "fs_int.h"
#include "distkv.h"

#include <stdlib.h>
#include <string.h>

/* ---- inodes and the kernel's lookups ---- */

uint64_t dkvfs__ino(const struct dkvfs *fs, const struct dkv_entry *ent, enum fskind k)
{
	if (ent == dkv_engine_root(fs->e) && k == K_DIR)
		return FUSE_ROOT_ID;
	return (uint64_t)(uintptr_t)ent | k;
}

/* The entry of an inode and its kind; for a "_" also its version (verp
 * may be NULL).  NULL only for a version the kernel has forgotten, which
 * it does not ask about. */
struct dkv_entry *dkvfs__ino_entry_ver(struct dkvfs *fs, fuse_ino_t ino, enum fskind *k,
				       struct fsver **verp)
{
	if (ino == FUSE_ROOT_ID) {
		*k = K_DIR;
		return dkv_engine_root(fs->e);
	}
	if (ino & VER_BIT) {
		pthread_mutex_lock(&fs->mu);
		struct fsver *v = dkvfs__ver_find(fs, ino);
		pthread_mutex_unlock(&fs->mu);
		*k = K_VALUE;
		if (verp)
			*verp = v;
		return v ? v->ent : NULL;
	}
	*k = (enum fskind)(ino & KIND_MASK);
	return (struct dkv_entry *)(uintptr_t)(ino & ~(uint64_t)KIND_MASK);
}

struct dkv_entry *dkvfs__ino_entry(struct dkvfs *fs, fuse_ino_t ino, enum fskind *k)
{
	return dkvfs__ino_entry_ver(fs, ino, k, NULL);
}

static size_t entry_hash(const struct dkv_entry *ent)
{
	uint64_t x = (uint64_t)(uintptr_t)ent >> 4;
	x ^= x >> 29;
	x *= 0xbf58476d1ce4e5b9ull;
	return (size_t)(x ^ (x >> 32));
}

static size_t node_hash(const void *node)
{
	return entry_hash(((const struct fsnode *)node)->ent);
}

static size_t node_bucket(const struct dkvfs *fs, const struct dkv_entry *ent)
{
	return entry_hash(ent) & fs->nodes_mask;
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
		if (fs->nnodes >= fs->nodes_mask)
			dkv_hashtab_grow(&fs->nodes, &fs->nodes_mask, offsetof(struct fsnode, hnext),
					 node_hash);
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
	struct dkv_entry *ent = dkvfs__ino_entry(fs, ino, &k);
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

static size_t id_hash(uint64_t id)
{
	uint64_t x = id >> 4;
	x *= 0x9e3779b97f4a7c15ull;
	return (size_t)(x >> 32);
}

static size_t ver_hash(const void *node)
{
	return id_hash(((const struct fsver *)node)->id);
}

static size_t ver_bucket(const struct dkvfs *fs, uint64_t id)
{
	return id_hash(id) & fs->vers_mask;
}

struct fsver *dkvfs__ver_find(struct dkvfs *fs, uint64_t id)
{
	for (struct fsver *v = fs->vers[ver_bucket(fs, id)]; v; v = v->hnext)
		if (v->id == id)
			return v;
	return NULL;
}

/* Where the newest version of ent's "_" is kept; NULL when the kernel
 * does not know ent's directory.  Under mu. */
struct fsver **dkvfs__ver_slot(struct dkvfs *fs, const struct dkv_entry *ent)
{
	if (ent == dkv_engine_root(fs->e))
		return &fs->root_ver;
	struct fsnode *n = dkvfs__node_find(fs, ent);
	return n ? &n->ver : NULL;
}

uint64_t dkvfs__value_ino(struct dkvfs *fs, const struct dkv_entry *ent)
{
	struct fsver **slot = dkvfs__ver_slot(fs, ent);
	return slot && *slot ? (*slot)->id : 0;
}

static void ver_insert(struct dkvfs *fs, struct fsver *v)
{
	if (fs->nvers >= fs->vers_mask)
		dkv_hashtab_grow(&fs->vers, &fs->vers_mask, offsetof(struct fsver, hnext), ver_hash);
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

void dkvfs__inodes_init(struct dkvfs *fs)
{
	fs->nodes_mask = 1023;
	fs->nodes = dkv_xcalloc(fs->nodes_mask + 1, sizeof *fs->nodes);
	fs->vers_mask = 1023;
	fs->vers = dkv_xcalloc(fs->vers_mask + 1, sizeof *fs->vers);
}

void dkvfs__inodes_release(struct dkvfs *fs)
{
	for (size_t i = 0; fs->nodes && i <= fs->nodes_mask; i++) {
		for (struct fsnode *n = fs->nodes[i], *nx; n; n = nx) {
			nx = n->hnext;
			dkv_entry_unpin(fs->e, n->ent);
			free(n);
		}
	}
	for (size_t i = 0; fs->vers && i <= fs->vers_mask; i++) {
		for (struct fsver *v = fs->vers[i], *nx; v; v = nx) {
			nx = v->hnext;
			dkv_entry_unpin(fs->e, v->ent);
			ver_free(v);
		}
	}
	free(fs->nodes);
	free(fs->vers);
	fs->nodes = NULL;
	fs->vers = NULL;
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
	struct fsver **slot = dkvfs__ver_slot(fs, ent);
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
	dkvfs__render_value(fs, ent, &nv->text);

	pthread_mutex_lock(&fs->mu);
	slot = dkvfs__ver_slot(fs, ent);
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
		struct fsver **slot = dkvfs__ver_slot(fs, v->ent);
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
	if (!v || !dkvfs__own_session(fs, ev->sess) || v->ent != ent)
		return false;
	struct fsver **slot = dkvfs__ver_slot(fs, ent);
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

/* Fill e for (ent, k) and count the kernel's lookup.  Under the read lock.
 * Directories and versions of "_" are cached until the notifier
 * invalidates them (protocol replies wait for that: see notify.c); .meta
 * and .stats change without a new inode and are never cached. */
struct fsver *dkvfs__make_value_entry(struct dkvfs *fs, struct dkv_session *s,
				      struct dkv_entry *ent, bool create,
				      struct fuse_entry_param *e)
{
	struct fsver *v = ver_ref(fs, ent, create);
	e->ino = v->id;
	e->attr_timeout = TIMEOUT_OF(fs);
	e->entry_timeout = TIMEOUT_OF(fs);
	pthread_mutex_lock(&fs->mu);
	dkvfs__fill_ver_attr(fs, v, &e->attr);
	pthread_mutex_unlock(&fs->mu);
	dkvfs__perm(fs, s, ent, K_VALUE, ent->value, &e->attr);
	return v;
}

void dkvfs__make_entry(struct dkvfs *fs, fuse_req_t req, struct dkv_entry *ent, enum fskind k,
		       struct fuse_entry_param *e)
{
	struct dkv_session *s = dkvfs__session(fs, req);
	memset(e, 0, sizeof *e);
	if (k == K_VALUE) {
		dkvfs__make_value_entry(fs, s, ent, false, e);
		return;
	}
	e->ino = dkvfs__ino(fs, ent, k);
	e->attr_timeout = k == K_DIR ? TIMEOUT_OF(fs) : 0;
	e->entry_timeout = k == K_DIR ? TIMEOUT_OF(fs) : 0;
	dkvfs__fill_attr(fs, ent, k, &e->attr);
	dkvfs__perm(fs, s, ent, k, NULL, &e->attr);
	pthread_mutex_lock(&fs->mu);
	node_ref(fs, ent);
	pthread_mutex_unlock(&fs->mu);
}

/* The kernel let go of inodes: drop our counts, and let the loop unpin
 * the entries nobody holds any more. */
static void forget_all(struct dkvfs *fs, size_t count, const struct fuse_forget_data *forgets)
{
	/* .errors first: its lock comes before mu */
	for (size_t i = 0; i < count; i++)
		if (forgets[i].ino & VIEW_BIT)
			dkvfs__ev_forget(fs, forgets[i].ino, forgets[i].nlookup);
	pthread_mutex_lock(&fs->mu);
	for (size_t i = 0; i < count; i++)
		if (forgets[i].ino & VIEW_BIT)
			continue;
		else if (forgets[i].ino & VER_BIT)
			ver_forget(fs, forgets[i].ino, forgets[i].nlookup);
		else if (forgets[i].ino != FUSE_ROOT_ID)
			node_forget(fs, forgets[i].ino, forgets[i].nlookup);
	bool wake = fs->nunpins > 0;
	pthread_mutex_unlock(&fs->mu);
	if (wake)
		uv_async_send(&fs->async);
}

void dkvfs__op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	COUNT(FS(req), forget);
	struct fuse_forget_data one = {.ino = ino, .nlookup = nlookup};
	forget_all(FS(req), 1, &one);
	fuse_reply_none(req);
}

void dkvfs__op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	COUNT(FS(req), forget);
	forget_all(FS(req), count, forgets);
	fuse_reply_none(req);
}
