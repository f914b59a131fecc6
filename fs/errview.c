/*
 * errview.c - .errors: the error log shown by error path (doc/errors.md,
 * "In the mount").
 *
 * The records live at (".distkv", "error", NODE, TOCK), one directory per
 * record in the data tree (.distkv/error).  Here they are shown by what
 * failed: an error whose path is (one, two) is .errors/one/two/_, whose
 * text is a map by subsystem of that path's errors, each with its counts,
 * times, resolved and every node's details.  The directories of this view
 * are no entries of the tree, so they get inode numbers of their own
 * (VIEW_BIT | the node's address | kind) and handlers of their own, which
 * the handlers of dir.c, attr.c and valuefile.c hand view inodes to.
 *
 * Workload: records number in the hundreds, rarely thousands, and change
 * at most once per interval each (errlog.h); reads are ls -R and cat.  So
 * the view is a small trie of path elements kept by the mount's hook on
 * the loop thread (every change below (".distkv", "error") updates it),
 * read by the FUSE threads under ev->mu, and every text is rendered when
 * it is opened: the kernel keeps no attributes, names or pages of the
 * view (timeouts 0, direct_io), only listings, which the notifier drops
 * after each change (notify.c).  inotify watchers see the view change
 * because the notifier repeats the difference between what it showed
 * them last (evnode.shown) and what is there now, with real file
 * operations, as it does for the data tree.
 *
 * Lock order: the engine's read lock, then ev->mu, then fs->mu.  Only
 * the loop thread changes the records of a node; the FUSE threads count
 * lookups, and any thread may prune a node nobody holds.
 */
#include "fs_int.h"
#include "distkv.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* A record as the view knows it. */
struct evrec {
	struct evrec *next;    /* the node's records */
	struct evrec *hnext;   /* by entry */
	struct dkv_entry *ent; /* (".distkv", "error", NODE, TOCK): pinned */
	struct evnode *node;
	char *subsys;
	double first_seen;     /* unix time; 0: none */
};

/* One path of the view: a directory. */
struct evnode {
	struct evnode *parent; /* NULL: .errors itself */
	struct evnode *kids;   /* first child; new ones go last */
	struct evnode *next;   /* siblings, in order of appearance */
	uint32_t seq;          /* among its siblings: the listing's offset */
	uint32_t kid_seq;      /* the next child's seq */
	struct evrec *recs;    /* the records of exactly this path */
	size_t below;          /* records at and below it */
	uint64_t nlookup;      /* kernel lookups of its directory and its "_" */
	atomic_uint refs;      /* the notifier's queued items */
	/* the notifier's own: what inotify watchers were shown last */
	bool shown, value_shown;
	int64_t made_ns;       /* when its directory was repeated (CLOCK_MONOTONIC) */
	/* its "_" was removed through the mount: it and its ancestors stay,
	 * empty, until rmdir (as the data tree keeps a directory), so that
	 * rm -r can remove them; the loop sets it, rmdir clears it */
	bool kept;
	uint8_t *el;           /* the element's canonical encoding */
	size_t ellen;
	char *name;            /* as the mount shows it; NULL: none (not listed) */
};

struct errview {
	pthread_mutex_t mu;
	struct evnode *root;   /* .errors */
	struct evrec **byent;  /* hash by entry */
	size_t mask, nrecs;
	struct evfile *files;  /* open "_" files, to free those never released */
};

/* An open "_" of the view. */
struct evfile {
	struct evfile *next, *prev; /* ev->files, under ev->mu */
	struct evnode *node;
	struct dkv_buf text;        /* what reads return; what writes change */
	bool writable, dirty, notifier;
	int failed;                 /* a negative errno: every later call gets it */
	struct dkv_session *sess;
	pthread_mutex_t mu;
};

/* ---- inode numbers ---- */

static uint64_t node_ino(const struct evnode *n, enum fskind k)
{
	return VIEW_BIT | (uint64_t)(uintptr_t)n | k;
}

uint64_t dkvfs__ev_root_ino(const struct dkvfs *fs)
{
	return node_ino(fs->ev->root, K_DIR);
}

static struct evnode *ino_node(fuse_ino_t ino, enum fskind *k)
{
	*k = (enum fskind)(ino & KIND_MASK);
	return (struct evnode *)(uintptr_t)(ino & ~(VIEW_BIT | KIND_MASK));
}

/* ---- the index (the loop thread changes it, under ev->mu) ---- */

static size_t ent_hash(const void *p)
{
	uint64_t x = (uint64_t)(uintptr_t)p >> 4;
	x *= 0x9e3779b97f4a7c15ull;
	return (size_t)(x >> 29);
}

static size_t rec_hash(const void *r)
{
	return ent_hash(((const struct evrec *)r)->ent);
}

static struct evrec **rec_slot(struct errview *ev, const struct dkv_entry *ent)
{
	struct evrec **pp = &ev->byent[ent_hash(ent) & ev->mask];
	while (*pp && (*pp)->ent != ent)
		pp = &(*pp)->hnext;
	return pp;
}

static struct evnode *node_new(struct evnode *parent, const uint8_t *el, size_t ellen)
{
	struct evnode *n = dkv_xcalloc(1, sizeof *n);
	n->parent = parent;
	if (!parent)
		return n;
	n->el = dkv_xmalloc(ellen);
	memcpy(n->el, el, ellen);
	n->ellen = ellen;
	struct dkv_buf name = {0};
	if (!dkv_pathtext_format(&name, el, ellen, DKV_PT_FS))
		n->name = dkv_xstrdup(dkv_buf_cstr(&name));
	dkv_buf_release(&name);
	n->seq = parent->kid_seq++;
	struct evnode **pp = &parent->kids;
	while (*pp)
		pp = &(*pp)->next;
	*pp = n;
	return n;
}

static void node_free(struct evnode *n)
{
	free(n->el);
	free(n->name);
	free(n);
}

/* Drop n and its ancestors while nothing holds them.  Under ev->mu. */
static void prune_up(struct errview *ev, struct evnode *n)
{
	while (n && n->parent && !n->kids && !n->recs && !n->below && !n->nlookup && !n->kept &&
	       !atomic_load(&n->refs)) {
		struct evnode *p = n->parent;
		struct evnode **pp = &p->kids;
		while (*pp != n)
			pp = &(*pp)->next;
		*pp = n->next;
		node_free(n);
		n = p;
	}
}

/* The node of path (element encodings), made if need be. */
static struct evnode *node_at(struct errview *ev, const uint8_t *path, size_t plen)
{
	struct evnode *n = ev->root;
	struct dkv_path_iter it;
	const uint8_t *el;
	size_t len;
	dkv_path_iter_init(&it, path, plen);
	while (dkv_path_iter_next(&it, &el, &len)) {
		struct evnode *k = n->kids;
		while (k && !(k->ellen == len && !memcmp(k->el, el, len)))
			k = k->next;
		n = k ? k : node_new(n, el, len);
	}
	return n;
}

static void count_below(struct evnode *n, long delta)
{
	for (; n; n = n->parent)
		n->below = (size_t)((long)n->below + delta);
}

/* What the index needs of a record; -EINVAL: not a record. */
static int rec_parse(const struct dkv_value *v, struct dkv_path *path, char **subsys,
		     double *first_seen)
{
	struct dkv_mp_reader r;
	struct dkv_mp_item it, k, x;
	bool has_path = false;
	*subsys = NULL;
	*first_seen = 0;
	if (!v || !v->len)
		return -EINVAL;
	dkv_mp_reader_init(&r, dkv_value_data(v), v->len);
	if (dkv_mp_read(&r, &it) || it.type != DKV_MP_MAP)
		return -EINVAL;
	for (uint32_t i = 0; i < it.v.n; i++) {
		if (dkv_mp_read(&r, &k))
			goto bad;
		if (k.type == DKV_MP_STR && dkv_mp_streq(&k, "path") && !has_path) {
			if (dkv_path_decode(path, &r))
				goto bad;
			has_path = true;
			continue;
		}
		struct dkv_mp_reader vr = r;
		if (dkv_mp_read(&vr, &x) || dkv_mp_skip(&r))
			goto bad;
		if (k.type != DKV_MP_STR)
			continue;
		if (dkv_mp_streq(&k, "subsystem") && x.type == DKV_MP_STR && !*subsys)
			*subsys = dkv_xstrndup((const char *)x.v.s.p, x.v.s.len);
		else if (dkv_mp_streq(&k, "first_seen") && x.type == DKV_MP_FLOAT)
			*first_seen = x.v.f;
		else if (dkv_mp_streq(&k, "first_seen") && x.type == DKV_MP_UINT)
			*first_seen = (double)x.v.u;
	}
	if (has_path && *subsys)
		return 0;
bad:
	free(*subsys);
	*subsys = NULL;
	return -EINVAL;
}

/* Take r out of its node (r stays in the table). */
static void rec_detach(struct evrec *r)
{
	struct evrec **pp = &r->node->recs;
	while (*pp != r)
		pp = &(*pp)->next;
	*pp = r->next;
	count_below(r->node, -1);
}

/* Queue n for the notifier, which holds it meanwhile.  Under ev->mu. */
static void tell(struct dkvfs *fs, struct evnode *n, bool own)
{
	atomic_fetch_add(&n->refs, 1);
	if (!dkvfs__notify_view(fs, n, own))
		atomic_fetch_sub(&n->refs, 1);
}

/* The record entry ent is as it is now: index it, and tell the notifier
 * which nodes changed (own: made through the mount).  On the loop. */
static void record_changed(struct dkvfs *fs, struct dkv_entry *ent, bool own, bool notify)
{
	struct errview *ev = fs->ev;
	struct dkv_path path;
	char *subsys;
	double first;
	dkv_path_init(&path);
	bool ok = !rec_parse(ent->value, &path, &subsys, &first);
	struct evnode *was = NULL, *now = NULL;
	bool unpin = false;

	pthread_mutex_lock(&ev->mu);
	struct evrec **slot = rec_slot(ev, ent);
	struct evrec *r = *slot;
	if (r) {
		was = r->node;
		rec_detach(r);
		free(r->subsys);
		r->subsys = NULL;
		if (!ok) {
			*slot = r->hnext;
			ev->nrecs--;
			free(r);
			r = NULL;
			unpin = true;
		}
	}
	if (ok) {
		if (!r) {
			if (ev->nrecs >= ev->mask)
				dkv_hashtab_grow(&ev->byent, &ev->mask, offsetof(struct evrec, hnext),
						 rec_hash);
			r = dkv_xcalloc(1, sizeof *r);
			r->ent = ent;
			dkv_entry_pin(ent);
			struct evrec **s = &ev->byent[ent_hash(ent) & ev->mask];
			r->hnext = *s;
			*s = r;
			ev->nrecs++;
		}
		r->subsys = subsys;
		r->first_seen = first;
		now = r->node = node_at(ev, path.enc.data, path.enc.len);
		r->next = now->recs;
		now->recs = r;
		count_below(now, +1);
	}
	if (was && notify)
		tell(fs, was, own);
	if (now && now != was && notify)
		tell(fs, now, own);
	if (was)
		prune_up(ev, was);
	pthread_mutex_unlock(&ev->mu);
	dkv_path_release(&path);
	if (unpin)
		dkv_entry_unpin(fs->e, ent);
}

void dkvfs__ev_on_change(struct dkvfs *fs, const struct dkv_event *ev)
{
	struct dkv_entry *ent = ev->entry;
	struct dkv_entry *top = fs->err_dir;
	if (!ent->parent || !ent->parent->parent)
		return;
	bool own = dkvfs__own_session(fs, ev->sess);
	if (ent->parent->parent == top) {
		record_changed(fs, ent, own, true);
	} else if (ent->parent->parent->parent == top) {
		/* a node's details: the text of the record's path changed */
		pthread_mutex_lock(&fs->ev->mu);
		struct evrec *r = *rec_slot(fs->ev, ent->parent);
		if (r)
			tell(fs, r->node, own);
		pthread_mutex_unlock(&fs->ev->mu);
	}
}

void dkvfs__ev_init(struct dkvfs *fs)
{
	struct errview *ev = dkv_xcalloc(1, sizeof *ev);
	pthread_mutex_init(&ev->mu, NULL);
	ev->root = node_new(NULL, NULL, 0);
	ev->mask = 63;
	ev->byent = dkv_xcalloc(ev->mask + 1, sizeof *ev->byent);
	fs->ev = ev;
	for (struct dkv_entry *n = fs->err_dir->kids; n; n = n->next)
		for (struct dkv_entry *r = n->kids; r; r = r->next)
			if (dkv_entry_has_value(r))
				record_changed(fs, r, true, false);
	/* nobody has seen anything yet: what is there is what they will see */
	pthread_mutex_lock(&ev->mu);
	for (struct evnode *n = ev->root; n;) {
		n->shown = n->below > 0;
		n->value_shown = n->recs != NULL;
		if (n->kids) {
			n = n->kids;
			continue;
		}
		while (n && !n->next)
			n = n->parent;
		if (n)
			n = n->next;
	}
	pthread_mutex_unlock(&ev->mu);
}

static void free_subtree(struct evnode *n)
{
	while (n) {
		struct evnode *next = n->next;
		free_subtree(n->kids);
		node_free(n);
		n = next;
	}
}

void dkvfs__ev_free(struct dkvfs *fs)
{
	struct errview *ev = fs->ev;
	if (!ev)
		return;
	for (size_t b = 0; b <= ev->mask; b++)
		for (struct evrec *r = ev->byent[b], *nx; r; r = nx) {
			nx = r->hnext;
			dkv_entry_unpin(fs->e, r->ent);
			free(r->subsys);
			free(r);
		}
	while (ev->files) {
		struct evfile *f = ev->files;
		ev->files = f->next;
		dkv_buf_release(&f->text);
		pthread_mutex_destroy(&f->mu);
		free(f);
	}
	free_subtree(ev->root);
	free(ev->byent);
	pthread_mutex_destroy(&ev->mu);
	free(ev);
	fs->ev = NULL;
}

/* ---- what a session sees (under the read lock and ev->mu) ---- */

static bool rec_shown(struct dkvfs *fs, struct dkv_session *s, const struct evrec *r)
{
	if (!s)
		return false;
	if (!s->check)
		return true;
	return (dkvfs__modes(fs, s, r->ent) & DKV_ACL_READ) != 0;
}

static bool has_value(struct dkvfs *fs, struct dkv_session *s, const struct evnode *n)
{
	for (const struct evrec *r = n->recs; r; r = r->next)
		if (rec_shown(fs, s, r))
			return true;
	return false;
}

static bool node_shown(struct dkvfs *fs, struct dkv_session *s, const struct evnode *n)
{
	if (!s)
		return false;
	if (n->kept || (!s->check && n->below))
		return true;
	if (s->check && has_value(fs, s, n))
		return true;
	for (const struct evnode *k = n->kids; k; k = k->next)
		if (node_shown(fs, s, k))
			return true;
	return false;
}

/* What rmdir finds: errors s sees at n, or a directory shown below it. */
static bool has_content(struct dkvfs *fs, struct dkv_session *s, const struct evnode *n)
{
	if (has_value(fs, s, n))
		return true;
	for (const struct evnode *k = n->kids; k; k = k->next)
		if (node_shown(fs, s, k))
			return true;
	return false;
}

/* Which of two records of one (path, subsystem) is the one: the first
 * seen, then the lower node, then the lower number (errlog.c's order). */
static int elem_cmp(const struct dkv_entry *a, const struct dkv_entry *b)
{
	size_t n = a->namelen < b->namelen ? a->namelen : b->namelen;
	int c = memcmp(a->name, b->name, n);
	return c ? c : (int)a->namelen - (int)b->namelen;
}

static int rec_cmp(const void *pa, const void *pb)
{
	const struct evrec *a = *(const struct evrec *const *)pa, *b = *(const struct evrec *const *)pb;
	int c = strcmp(a->subsys, b->subsys);
	if (c)
		return c;
	if (a->first_seen != b->first_seen)
		return a->first_seen < b->first_seen ? -1 : 1;
	c = elem_cmp(a->ent->parent, b->ent->parent);
	return c ? c : elem_cmp(a->ent, b->ent);
}

/* The records of n that s sees, sorted (rec_cmp); the caller frees. */
static size_t shown_recs(struct dkvfs *fs, struct dkv_session *s, const struct evnode *n,
			 struct evrec ***out)
{
	size_t cnt = 0;
	for (const struct evrec *r = n->recs; r; r = r->next)
		cnt++;
	struct evrec **v = dkv_xmalloc((cnt ? cnt : 1) * sizeof *v);
	cnt = 0;
	for (struct evrec *r = n->recs; r; r = r->next)
		if (rec_shown(fs, s, r))
			v[cnt++] = r;
	qsort(v, cnt, sizeof *v, rec_cmp);
	*out = v;
	return cnt;
}

/* One subsystem's part of the text: the record's fields, where it is
 * stored (syspath: NODE.:TOCK, as `error list` names it), and its nodes'
 * details. */
static void render_rec(const struct evrec *r, struct dkv_buf *mp)
{
	struct dkv_buf body = {0};
	static const char *const skip[] = {"path", "subsystem"};
	int n = dkv_mp_copy_pairs(&body, dkv_value_data(r->ent->value), r->ent->value->len,
				  skip, 2);
	uint32_t ndet = 0;
	for (const struct dkv_entry *d = r->ent->kids; d; d = d->next)
		ndet += dkv_entry_has_value(d);
	dkv_mp_map(mp, (uint32_t)(n > 0 ? n : 0) + 1 + (ndet > 0));
	dkv_buf_append(mp, body.data, body.len);
	dkv_mp_cstr(mp, "syspath");
	struct dkv_buf sp = {0};
	dkv_buf_append(&sp, r->ent->parent->name, r->ent->parent->namelen);
	dkv_buf_append(&sp, r->ent->name, r->ent->namelen);
	dkv_path_encode(mp, sp.data, sp.len);
	dkv_buf_release(&sp);
	if (ndet) {
		dkv_mp_cstr(mp, "nodes");
		dkv_mp_map(mp, ndet);
		for (const struct dkv_entry *d = r->ent->kids; d; d = d->next) {
			if (!dkv_entry_has_value(d))
				continue;
			dkv_buf_append(mp, d->name, d->namelen);
			dkv_buf_append(mp, dkv_value_data(d->value), d->value->len);
		}
	}
	dkv_buf_release(&body);
}

/* The text of n's "_": a map by subsystem.  Where two records share a
 * subsystem (two nodes made one at once, before the merge), the one that
 * counts is shown.  Under the read lock and ev->mu. */
static void render(struct dkvfs *fs, struct dkv_session *s, const struct evnode *n,
		   struct dkv_buf *out)
{
	struct evrec **v;
	size_t cnt = shown_recs(fs, s, n, &v);
	uint32_t nsub = 0;
	for (size_t i = 0; i < cnt; i++)
		nsub += !i || strcmp(v[i]->subsys, v[i - 1]->subsys);
	struct dkv_buf mp = {0};
	dkv_mp_map(&mp, nsub);
	for (size_t i = 0; i < cnt; i++) {
		if (i && !strcmp(v[i]->subsys, v[i - 1]->subsys))
			continue;
		dkv_mp_cstr(&mp, v[i]->subsys);
		render_rec(v[i], &mp);
	}
	out->len = 0;
	if (cnt)
		dkv_yaml_emit(out, mp.data, mp.len);
	dkv_buf_release(&mp);
	free(v);
}

/* The newest change of n's records and their details (0: none). */
static int64_t newest(const struct evnode *n)
{
	int64_t t = 0;
	for (const struct evrec *r = n->recs; r; r = r->next) {
		if (r->ent->mtime_ns > t)
			t = r->ent->mtime_ns;
		for (const struct dkv_entry *d = r->ent->kids; d; d = d->next)
			if (d->mtime_ns > t)
				t = d->mtime_ns;
	}
	return t;
}

static void fill_attr(struct dkvfs *fs, struct dkv_session *s, const struct evnode *n,
		      enum fskind k, struct stat *st)
{
	memset(st, 0, sizeof *st);
	st->st_ino = n->parent || k != K_DIR ? node_ino(n, k) : dkvfs__ev_root_ino(fs);
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_blksize = 4096;
	int64_t ns = k == K_VALUE ? newest(n) : 0;
	if (!ns)
		ns = fs->mount_time_ns;
	st->st_mtim.tv_sec = ns / 1000000000;
	st->st_mtim.tv_nsec = ns % 1000000000;
	st->st_atim = st->st_ctim = st->st_mtim;
	if (k == K_DIR) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
		for (const struct evnode *c = n->kids; c; c = c->next)
			st->st_nlink += c->below > 0;
		if (s && s->check)
			st->st_nlink = 1; /* as access.c: not the session's to know */
		st->st_size = 4096;
	} else {
		struct dkv_buf t = {0};
		render(fs, s, n, &t);
		st->st_mode = S_IFREG | 0644;
		st->st_nlink = 1;
		st->st_size = (off_t)t.len;
		dkv_buf_release(&t);
	}
	st->st_blocks = (st->st_size + 511) / 512;
}

/* Fill e for (n, k) and count the kernel's lookup.  Under the read lock
 * and ev->mu. */
static void make_entry(struct dkvfs *fs, struct dkv_session *s, struct evnode *n, enum fskind k,
		       struct fuse_entry_param *e)
{
	memset(e, 0, sizeof *e);
	fill_attr(fs, s, n, k, &e->attr);
	e->ino = e->attr.st_ino;
	/* names and directories stay until the notifier drops them; the
	 * size of a "_" is asked for each time (it is rendered anyway) */
	e->attr_timeout = k == K_DIR ? TIMEOUT_OF(fs) : 0;
	e->entry_timeout = TIMEOUT_OF(fs);
	n->nlookup++;
}

void dkvfs__ev_root_entry(struct dkvfs *fs, struct dkv_session *s, struct fuse_entry_param *e)
{
	pthread_mutex_lock(&fs->ev->mu);
	make_entry(fs, s, fs->ev->root, K_DIR, e);
	pthread_mutex_unlock(&fs->ev->mu);
}

static struct evnode *kid_named(const struct evnode *dir, const char *name)
{
	for (struct evnode *k = dir->kids; k; k = k->next)
		if (k->name && !strcmp(k->name, name))
			return k;
	return NULL;
}

/* ---- the handlers (dir.c, attr.c, valuefile.c, inode.c pass view
 * inodes here; fs_int.h lists their replies and errors) ---- */

void dkvfs__ev_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct dkvfs *fs = FS(req);
	struct dkv_session *s = dkvfs__session(fs, req);
	enum fskind pk;
	struct evnode *dir = ino_node(parent, &pk);
	struct fuse_entry_param e;
	int rc = -ENOENT;
	if (pk != K_DIR) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	if (!s) {
		fuse_reply_err(req, EACCES);
		return;
	}
	bool present = false, notifier = dkvfs__from_notifier(fs, req);
	if (notifier) {
		int x = dkvfs__expected(fs, parent, name);
		if (x < 0) {
			fuse_reply_err(req, ENOENT);
			return;
		}
		present = x > 0;
	}
	dkv_engine_rdlock(fs->e);
	pthread_mutex_lock(&fs->ev->mu);
	if (name_is(name, "_")) {
		if (present || has_value(fs, s, dir)) {
			make_entry(fs, s, dir, K_VALUE, &e);
			rc = 0;
		}
	} else {
		struct evnode *k = kid_named(dir, name);
		/* the notifier walks to directories that are going, to repeat that */
		if (k && (present || notifier || node_shown(fs, s, k))) {
			make_entry(fs, s, k, K_DIR, &e);
			rc = 0;
		}
	}
	pthread_mutex_unlock(&fs->ev->mu);
	dkv_engine_unlock(fs->e);
	if (rc)
		reply_rc(req, rc);
	else
		fuse_reply_entry(req, &e);
}

void dkvfs__ev_forget(struct dkvfs *fs, fuse_ino_t ino, uint64_t nlookup)
{
	enum fskind k;
	struct evnode *n = ino_node(ino, &k);
	pthread_mutex_lock(&fs->ev->mu);
	n->nlookup = n->nlookup > nlookup ? n->nlookup - nlookup : 0;
	prune_up(fs->ev, n);
	pthread_mutex_unlock(&fs->ev->mu);
}

void dkvfs__ev_unref_nolock(struct evnode *n)
{
	atomic_fetch_sub(&n->refs, 1);
}

void dkvfs__ev_unref(struct dkvfs *fs, struct evnode *n)
{
	pthread_mutex_lock(&fs->ev->mu);
	atomic_fetch_sub(&n->refs, 1);
	prune_up(fs->ev, n);
	pthread_mutex_unlock(&fs->ev->mu);
}

void dkvfs__ev_getattr(fuse_req_t req, fuse_ino_t ino)
{
	struct dkvfs *fs = FS(req);
	struct dkv_session *s = dkvfs__session(fs, req);
	enum fskind k;
	struct evnode *n = ino_node(ino, &k);
	struct stat st;
	if (!s) {
		fuse_reply_err(req, EACCES);
		return;
	}
	dkv_engine_rdlock(fs->e);
	pthread_mutex_lock(&fs->ev->mu);
	fill_attr(fs, s, n, k, &st);
	pthread_mutex_unlock(&fs->ev->mu);
	dkv_engine_unlock(fs->e);
	fuse_reply_attr(req, &st, k == K_DIR ? TIMEOUT_OF(fs) : 0);
}

void dkvfs__ev_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	struct dkvfs *fs = FS(req);
	struct dkv_session *s = dkvfs__session(fs, req);
	enum fskind k;
	struct evnode *n = ino_node(ino, &k);
	bool ok = s != NULL;
	if (ok && s->check) {
		dkv_engine_rdlock(fs->e);
		pthread_mutex_lock(&fs->ev->mu);
		ok = !n->parent || node_shown(fs, s, n);
		pthread_mutex_unlock(&fs->ev->mu);
		dkv_engine_unlock(fs->e);
	}
	(void)mask;
	fuse_reply_err(req, ok ? 0 : EACCES);
}

void dkvfs__ev_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dkvfs *fs = FS(req);
	(void)ino;
	if (!fs->checked) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	if (!dkvfs__session(fs, req)) {
		fuse_reply_err(req, EACCES);
		return;
	}
	fi->cache_readdir = 0;
	fi->keep_cache = 0;
	fuse_reply_open(req, fi);
}

#define OFF_DOT 1
#define OFF_DOTDOT 2
#define OFF_VALUE 3
#define OFF_CHILD 100 /* + seq */

static bool add(struct dkvfs *fs, fuse_req_t req, struct dkv_session *s, struct dkv_buf *buf,
		size_t size, bool plus, const char *name, struct evnode *n, enum fskind k,
		uint64_t ino, off_t next)
{
	size_t need;
	if (plus) {
		struct fuse_entry_param e;
		memset(&e, 0, sizeof e);
		need = fuse_add_direntry_plus(req, NULL, 0, name, &e, next);
		if (need > size - buf->len)
			return false;
		if (n) {
			make_entry(fs, s, n, k, &e);
		} else { /* "." and "..": not lookups */
			e.ino = ino;
			e.attr.st_ino = ino;
			e.attr.st_mode = S_IFDIR | 0755;
		}
		dkv_buf_reserve(buf, need);
		fuse_add_direntry_plus(req, (char *)buf->data + buf->len, need, name, &e, next);
	} else {
		struct stat st;
		memset(&st, 0, sizeof st);
		st.st_ino = n ? (n->parent || k != K_DIR ? node_ino(n, k) : dkvfs__ev_root_ino(fs)) : ino;
		st.st_mode = k == K_DIR ? S_IFDIR : S_IFREG;
		need = fuse_add_direntry(req, NULL, 0, name, &st, next);
		if (need > size - buf->len)
			return false;
		dkv_buf_reserve(buf, need);
		fuse_add_direntry(req, (char *)buf->data + buf->len, need, name, &st, next);
	}
	buf->len += need;
	return true;
}

void dkvfs__ev_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus)
{
	struct dkvfs *fs = FS(req);
	struct dkv_session *s = dkvfs__session(fs, req);
	enum fskind k;
	struct evnode *dir = ino_node(ino, &k);
	struct dkv_buf buf = {0};
	if (!s) {
		fuse_reply_err(req, EACCES);
		return;
	}
	dkv_engine_rdlock(fs->e);
	pthread_mutex_lock(&fs->ev->mu);
	uint64_t up = dir->parent ? node_ino(dir->parent, K_DIR) : FUSE_ROOT_ID;
	if (dir->parent && !dir->parent->parent)
		up = dkvfs__ev_root_ino(fs);
	if (off < OFF_DOT && !add(fs, req, s, &buf, size, plus, ".", NULL, K_DIR, ino, OFF_DOT))
		goto full;
	if (off < OFF_DOTDOT && !add(fs, req, s, &buf, size, plus, "..", NULL, K_DIR, up, OFF_DOTDOT))
		goto full;
	if (off < OFF_VALUE && has_value(fs, s, dir) &&
	    !add(fs, req, s, &buf, size, plus, "_", dir, K_VALUE, 0, OFF_VALUE))
		goto full;
	for (struct evnode *c = dir->kids; c; c = c->next) {
		off_t o = OFF_CHILD + (off_t)c->seq;
		if (o <= off || !c->name || !node_shown(fs, s, c))
			continue;
		if (!add(fs, req, s, &buf, size, plus, c->name, c, K_DIR, 0, o))
			break;
	}
full:
	pthread_mutex_unlock(&fs->ev->mu);
	dkv_engine_unlock(fs->e);
	fuse_reply_buf(req, (const char *)buf.data, buf.len);
	dkv_buf_release(&buf);
}

/* ---- "_": reading, and resolving by writing ---- */

static struct evfile *file_new(struct dkvfs *fs, struct evnode *n)
{
	struct evfile *f = dkv_xcalloc(1, sizeof *f);
	pthread_mutex_init(&f->mu, NULL);
	f->node = n;
	pthread_mutex_lock(&fs->ev->mu);
	n->nlookup++; /* the open file holds the node, as the kernel's inode does */
	f->next = fs->ev->files;
	if (f->next)
		f->next->prev = f;
	fs->ev->files = f;
	pthread_mutex_unlock(&fs->ev->mu);
	return f;
}

static void file_free(struct dkvfs *fs, struct evfile *f)
{
	pthread_mutex_lock(&fs->ev->mu);
	if (f->prev)
		f->prev->next = f->next;
	else
		fs->ev->files = f->next;
	if (f->next)
		f->next->prev = f->prev;
	f->node->nlookup--;
	prune_up(fs->ev, f->node);
	pthread_mutex_unlock(&fs->ev->mu);
	dkv_buf_release(&f->text);
	pthread_mutex_destroy(&f->mu);
	free(f);
}

static void open_file(struct dkvfs *fs, fuse_req_t req, struct dkv_session *s, struct evnode *n,
		      struct fuse_file_info *fi, bool create)
{
	struct evfile *f = file_new(fs, n);
	f->sess = s;
	f->notifier = dkvfs__from_notifier(fs, req);
	f->writable = (fi->flags & O_ACCMODE) != O_RDONLY;
	if (!(fi->flags & O_TRUNC) && !create) {
		dkv_engine_rdlock(fs->e);
		pthread_mutex_lock(&fs->ev->mu);
		render(fs, s, n, &f->text);
		pthread_mutex_unlock(&fs->ev->mu);
		dkv_engine_unlock(fs->e);
	}
	f->dirty = f->writable && !f->notifier && (fi->flags & O_TRUNC);
	fi->direct_io = 1; /* rendered at the open: never cached */
	fi->noflush = !f->writable;
	fi->fh = (uint64_t)(uintptr_t)f;
	int rc;
	if (create) {
		struct fuse_entry_param e;
		dkv_engine_rdlock(fs->e);
		pthread_mutex_lock(&fs->ev->mu);
		make_entry(fs, s, n, K_VALUE, &e);
		pthread_mutex_unlock(&fs->ev->mu);
		dkv_engine_unlock(fs->e);
		rc = fuse_reply_create(req, &e, fi);
	} else {
		rc = fuse_reply_open(req, fi);
	}
	if (rc == -ENOENT) /* interrupted: no RELEASE comes */
		file_free(fs, f);
}

void dkvfs__ev_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dkvfs *fs = FS(req);
	struct dkv_session *s = dkvfs__session(fs, req);
	enum fskind k;
	struct evnode *n = ino_node(ino, &k);
	if (k == K_DIR) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if (!s) {
		fuse_reply_err(req, EACCES);
		return;
	}
	open_file(fs, req, s, n, fi, false);
}

void dkvfs__ev_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      struct fuse_file_info *fi)
{
	struct dkvfs *fs = FS(req);
	enum fskind k;
	struct evnode *n = ino_node(parent, &k);
	/* errors are made by what fails, not by writing files: only the
	 * notifier, repeating a "_" that appeared, creates one */
	if (!name_is(name, "_") || !dkvfs__from_notifier(fs, req)) {
		dkv_report(DKV_REPORT_INFO, "%s/.errors: only an error's _ can be written, and only "
			   "where it is (not %s)", fs->mnt, name);
		fuse_reply_err(req, EPERM);
		return;
	}
	open_file(fs, req, dkvfs__session(fs, req), n, fi, true);
}

void dkvfs__ev_read(fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct evfile *f = (struct evfile *)(uintptr_t)fi->fh;
	struct dkv_buf b = {0};
	pthread_mutex_lock(&f->mu);
	if ((size_t)off < f->text.len) {
		if (size > f->text.len - (size_t)off)
			size = f->text.len - (size_t)off;
		dkv_buf_append(&b, f->text.data + off, size);
	}
	pthread_mutex_unlock(&f->mu);
	fuse_reply_buf(req, (const char *)b.data, b.len);
	dkv_buf_release(&b);
}

#define MAX_TEXT (1u << 20) /* what is written to a view's "_" is short */

void dkvfs__ev_write(fuse_req_t req, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct evfile *f = (struct evfile *)(uintptr_t)fi->fh;
	if (!f || !f->writable) {
		fuse_reply_err(req, EBADF);
		return;
	}
	pthread_mutex_lock(&f->mu);
	if (!f->failed && !f->notifier && (uint64_t)off + size > MAX_TEXT)
		f->failed = -EFBIG;
	int rc = f->failed;
	if (!rc && !f->notifier) {
		size_t end = (size_t)off + size;
		if (end > f->text.len) {
			dkv_buf_reserve(&f->text, end - f->text.len);
			memset(f->text.data + f->text.len, 0, end - f->text.len);
			f->text.len = end;
		}
		memcpy(f->text.data + off, buf, size);
		f->dirty = true;
	}
	pthread_mutex_unlock(&f->mu);
	if (rc)
		reply_rc(req, rc);
	else
		fuse_reply_write(req, size);
}

/* What a write asks for: per subsystem, resolve (1) or reopen (0). */
struct evfix {
	char *subsys; /* NULL: every subsystem */
	bool resolve;
};

struct evjob {
	struct evnode *node;
	struct evfix *fix;
	size_t nfix;
	struct dkv_entry **recs; /* what the job changes: pinned */
	size_t nrecs;
	const char *why;         /* a refusal, for the log */
};

/* Whether the item at r says resolve (true, an integer other than 0) or
 * reopen (false, null, 0); -EINVAL for anything else. */
static int resolved_of(const struct dkv_mp_item *v)
{
	switch (v->type) {
	case DKV_MP_BOOL:
	case DKV_MP_NIL:
	case DKV_MP_UINT:
	case DKV_MP_INT:
		return dkv_mp_truthy(v);
	default:
		return -EINVAL;
	}
}

/* The "resolved" of a map (its other keys are read-only fields of the
 * text, taken as they are): 0/1, -ENOENT when it has none, -EINVAL. */
static int map_resolved(struct dkv_mp_reader *r, uint32_t n)
{
	int res = -ENOENT;
	struct dkv_mp_item k, v;
	for (uint32_t i = 0; i < n; i++) {
		if (dkv_mp_read(r, &k))
			return -EINVAL;
		struct dkv_mp_reader vr = *r;
		if (dkv_mp_read(&vr, &v) || dkv_mp_skip(r))
			return -EINVAL;
		if (k.type == DKV_MP_STR && dkv_mp_streq(&k, "resolved")) {
			res = resolved_of(&v);
			if (res < 0)
				return res;
		}
	}
	return res;
}

/* Parse what was written into fixes: `resolved: X` (every subsystem
 * here), or a map by subsystem, each `{resolved: X, ...}` (what cat
 * shows, edited).  0, or -EINVAL with why. */
static int parse_fixes(const struct dkv_buf *mp, struct evjob *jb, const char **why)
{
	struct dkv_mp_reader r;
	struct dkv_mp_item it, k, v;
	dkv_mp_reader_init(&r, mp->data, mp->len);
	*why = "not a map of subsystems, nor resolved: true/false";
	if (dkv_mp_read(&r, &it) || it.type != DKV_MP_MAP || !it.v.n)
		return -EINVAL;
	jb->fix = dkv_xcalloc(it.v.n, sizeof *jb->fix);
	for (uint32_t i = 0; i < it.v.n; i++) {
		if (dkv_mp_read(&r, &k) || k.type != DKV_MP_STR)
			return -EINVAL;
		struct evfix *fx = &jb->fix[jb->nfix++];
		if (dkv_mp_streq(&k, "resolved")) {
			if (dkv_mp_read(&r, &v) || resolved_of(&v) < 0) {
				*why = "resolved is true or false";
				return -EINVAL;
			}
			fx->resolve = resolved_of(&v);
			continue;
		}
		fx->subsys = dkv_xstrndup((const char *)k.v.s.p, k.v.s.len);
		if (dkv_mp_read(&r, &v) || v.type != DKV_MP_MAP) {
			*why = "a subsystem's part is a map";
			return -EINVAL;
		}
		int res = map_resolved(&r, v.v.n);
		if (res < 0) {
			*why = res == -ENOENT ? "a subsystem's part has no resolved"
					      : "resolved is true or false";
			return -EINVAL;
		}
		fx->resolve = res;
	}
	return 0;
}

/* Unpinning is the loop's: from a FUSE thread, hand it over. */
static void unpin_later(struct dkvfs *fs, struct dkv_entry *ent)
{
	pthread_mutex_lock(&fs->mu);
	dkvfs__queue_unpin(fs, ent);
	pthread_mutex_unlock(&fs->mu);
	uv_async_send(&fs->async);
}

static void evjob_release(struct dkvfs *fs, struct evjob *jb)
{
	for (size_t i = 0; i < jb->nfix; i++)
		free(jb->fix[i].subsys);
	free(jb->fix);
	for (size_t i = 0; i < jb->nrecs; i++)
		unpin_later(fs, jb->recs[i]);
	free(jb->recs);
}

/* On the loop: the entries of the records of jb->node that s sees. */
static void collect(struct dkvfs *fs, struct dkv_session *s, struct evjob *jb)
{
	pthread_mutex_lock(&fs->ev->mu);
	size_t cnt = 0;
	for (struct evrec *r = jb->node->recs; r; r = r->next)
		cnt++;
	jb->recs = dkv_xmalloc((cnt ? cnt : 1) * sizeof *jb->recs);
	for (struct evrec *r = jb->node->recs; r; r = r->next) {
		if (rec_shown(fs, s, r)) {
			dkv_entry_pin(r->ent);
			jb->recs[jb->nrecs++] = r->ent;
		}
	}
	pthread_mutex_unlock(&fs->ev->mu);
}

/* The fix that applies to a record of subsys; NULL: none. */
static const struct evfix *fix_for(const struct evjob *jb, const char *subsys)
{
	const struct evfix *any = NULL;
	for (size_t i = 0; i < jb->nfix; i++) {
		if (jb->fix[i].subsys && !strcmp(jb->fix[i].subsys, subsys))
			return &jb->fix[i];
		if (!jb->fix[i].subsys)
			any = &jb->fix[i];
	}
	return any;
}

static int apply(struct dkvfs *fs, struct fsjob *j, struct dkv_entry *ent, const uint8_t *v,
		 size_t vlen)
{
	struct dkv_path p;
	struct dkv_result res;
	dkv_path_init(&p);
	dkv_entry_path(ent, NULL, &p);
	struct dkv_change c = {
		.path = p.enc.data,
		.path_len = p.enc.len,
		.value = v,
		.value_len = vlen,
		.src = DKV_SRC_LOCAL,
		.sess = j->sess,
	};
	int rc = dkv_engine_apply(fs->e, &c, &res);
	if (!rc && fs->opts.logger)
		j->need = dkv_logger_need(fs->opts.logger);
	if (rc) {
		struct dkv_buf d = {0};
		dkv_path_describe(&d, p.enc.data, p.enc.len);
		dkv_report(DKV_REPORT_INFO, "%s/.errors: cannot change the record %s: %s%s%s", fs->mnt,
			   dkv_buf_cstr(&d), dkv_strerror(rc), res.why[0] ? ": " : "", res.why);
		dkv_buf_release(&d);
	}
	dkv_result_release(fs->e, &res);
	dkv_path_release(&p);
	return rc;
}

/* The record's value with resolved set (the current tock) or cleared. */
static int resolve_one(struct dkvfs *fs, struct fsjob *j, struct dkv_entry *ent, bool resolve)
{
	struct dkv_mp_reader r;
	struct dkv_mp_item it, k;
	if (!dkv_entry_has_value(ent))
		return 0; /* gone meanwhile */
	const uint8_t *mp = dkv_value_data(ent->value);
	dkv_mp_reader_init(&r, mp, ent->value->len);
	if (dkv_mp_read(&r, &it) || it.type != DKV_MP_MAP)
		return 0;
	struct dkv_buf body = {0}, v = {0};
	uint32_t n = 0;
	bool was = false;
	for (uint32_t i = 0; i < it.v.n; i++) {
		const uint8_t *start = r.p;
		struct dkv_mp_reader kr = r;
		if (dkv_mp_read(&kr, &k) || dkv_mp_skip(&r))
			goto out;
		if (k.type == DKV_MP_STR && dkv_mp_streq(&k, "resolved")) {
			struct dkv_mp_item x;
			if (dkv_mp_read(&r, &x))
				goto out;
			was = dkv_mp_truthy(&x);
			continue;
		}
		if (dkv_mp_skip(&r))
			goto out;
		dkv_buf_append(&body, start, (size_t)(r.p - start));
		n++;
	}
	int rc = 0;
	if (was != resolve) {
		dkv_mp_map(&v, n + 1);
		dkv_buf_append(&v, body.data, body.len);
		dkv_mp_cstr(&v, "resolved");
		if (resolve)
			dkv_mp_uint(&v, dkv_engine_tock(fs->e));
		else
			dkv_mp_bool(&v, false);
		rc = apply(fs, j, ent, v.data, v.len);
	}
	dkv_buf_release(&body);
	dkv_buf_release(&v);
	return rc;
out:
	dkv_buf_release(&body);
	return 0;
}

static int job_resolve(struct dkvfs *fs, struct fsjob *j)
{
	struct evjob *jb = j->ptr;
	collect(fs, j->sess, jb);
	if (!jb->nrecs)
		return -ENOENT;
	for (size_t i = 0; i < jb->nfix; i++) { /* every subsystem named must be here */
		bool found = !jb->fix[i].subsys;
		for (size_t r = 0; r < jb->nrecs && !found; r++) {
			pthread_mutex_lock(&fs->ev->mu);
			struct evrec *x = *rec_slot(fs->ev, jb->recs[r]);
			found = x && !strcmp(x->subsys, jb->fix[i].subsys);
			pthread_mutex_unlock(&fs->ev->mu);
		}
		if (!found) {
			jb->why = "no error of that subsystem here";
			return -EINVAL;
		}
	}
	int rc = 0;
	for (size_t i = 0; i < jb->nrecs && !rc; i++) {
		pthread_mutex_lock(&fs->ev->mu);
		struct evrec *x = *rec_slot(fs->ev, jb->recs[i]);
		const struct evfix *fx = x ? fix_for(jb, x->subsys) : NULL;
		bool resolve = fx && fx->resolve;
		pthread_mutex_unlock(&fs->ev->mu);
		if (fx)
			rc = resolve_one(fs, j, jb->recs[i], resolve);
	}
	return rc;
}

static int job_delete(struct dkvfs *fs, struct fsjob *j)
{
	struct evjob *jb = j->ptr;
	collect(fs, j->sess, jb);
	if (!jb->nrecs)
		return -ENOENT;
	pthread_mutex_lock(&fs->ev->mu);
	for (struct evnode *x = jb->node; x->parent; x = x->parent)
		x->kept = true;
	pthread_mutex_unlock(&fs->ev->mu);
	int rc = 0;
	for (size_t i = 0; i < jb->nrecs && !rc; i++) {
		struct dkv_entry *ent = jb->recs[i];
		/* the details first: a record is never gone while they stay */
		for (struct dkv_entry *d = ent->kids, *nx; d && !rc; d = nx) {
			dkv_entry_pin(d);
			if (dkv_entry_has_value(d))
				rc = apply(fs, j, d, NULL, 0);
			nx = d->next;
			dkv_entry_unpin(fs->e, d);
		}
		if (!rc && dkv_entry_has_value(ent))
			rc = apply(fs, j, ent, NULL, 0);
	}
	return rc;
}

/* Store what f holds: parse it and resolve or reopen.  Every refusal is
 * said in the log, naming the file. */
static int commit(struct dkvfs *fs, struct evfile *f)
{
	char err[256];
	struct dkv_buf mp = {0};
	struct evjob jb = {.node = f->node};
	struct fsjob j = {.run = job_resolve, .ptr = &jb, .sess = f->sess, .fenced = true};
	const char *why = NULL;
	int rc;
	if (dkv_yaml_parse(&mp, (const char *)f->text.data, f->text.len, err, sizeof err)) {
		why = err;
		rc = -EINVAL;
	} else {
		rc = parse_fixes(&mp, &jb, &why);
		if (!rc) {
			rc = dkvfs__submit(fs, &j);
			why = rc == -ENOENT ? "no error here" : jb.why ? jb.why : dkv_strerror(rc);
		}
	}
	if (rc) {
		struct dkv_buf rel = {0};
		dkvfs__ev_relpath(fs, f->node, &rel);
		dkv_report(DKV_REPORT_ERROR, "%s/%s/_: not stored: %s", fs->mnt, dkv_buf_cstr(&rel),
			   why);
		dkv_buf_release(&rel);
	}
	evjob_release(fs, &jb);
	dkv_buf_release(&mp);
	return rc;
}

void dkvfs__ev_flush(fuse_req_t req, struct fuse_file_info *fi)
{
	struct dkvfs *fs = FS(req);
	struct evfile *f = (struct evfile *)(uintptr_t)fi->fh;
	int rc = 0;
	pthread_mutex_lock(&f->mu);
	if (f->failed) {
		rc = f->failed;
	} else if (f->dirty && f->text.len && !f->notifier) {
		/* a shell's "> _" closes a descriptor before anything is
		 * written: that flush commits nothing */
		f->dirty = false;
		rc = commit(fs, f);
		f->failed = rc;
	}
	pthread_mutex_unlock(&f->mu);
	reply_rc(req, rc);
}

void dkvfs__ev_release(fuse_req_t req, struct fuse_file_info *fi)
{
	struct dkvfs *fs = FS(req);
	struct evfile *f = (struct evfile *)(uintptr_t)fi->fh;
	if (f->dirty && !f->failed && !f->notifier && f->text.len)
		commit(fs, f); /* no flush came */
	file_free(fs, f);
	fuse_reply_err(req, 0);
}

void dkvfs__ev_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct dkvfs *fs = FS(req);
	struct dkv_session *s = dkvfs__session(fs, req);
	enum fskind k;
	struct evnode *n = ino_node(ino, &k);
	struct stat st;
	if (!s) {
		fuse_reply_err(req, EACCES);
		return;
	}
	if ((to_set & FUSE_SET_ATTR_SIZE) && !dkvfs__from_notifier(fs, req)) {
		struct evfile *f = fi ? (struct evfile *)(uintptr_t)fi->fh : NULL;
		if (k == K_DIR) {
			fuse_reply_err(req, EISDIR);
			return;
		}
		if (!f || !f->writable) { /* truncate(2) by name: there is nothing to write */
			fuse_reply_err(req, EPERM);
			return;
		}
		pthread_mutex_lock(&f->mu);
		if ((uint64_t)attr->st_size > MAX_TEXT && !f->failed)
			f->failed = -EFBIG;
		int rc = f->failed;
		if (!rc) {
			size_t size = (size_t)attr->st_size, old = f->text.len;
			dkv_buf_reserve(&f->text, size > old ? size - old : 0);
			if (size > old)
				memset(f->text.data + old, 0, size - old);
			f->text.len = size;
			f->dirty = true;
		}
		pthread_mutex_unlock(&f->mu);
		if (rc) {
			reply_rc(req, rc);
			return;
		}
	}
	dkv_engine_rdlock(fs->e);
	pthread_mutex_lock(&fs->ev->mu);
	fill_attr(fs, s, n, k, &st);
	pthread_mutex_unlock(&fs->ev->mu);
	dkv_engine_unlock(fs->e);
	if ((to_set & FUSE_SET_ATTR_SIZE) && fi && fi->fh)
		st.st_size = attr->st_size;
	fuse_reply_attr(req, &st, 0);
}

void dkvfs__ev_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct dkvfs *fs = FS(req);
	enum fskind k;
	struct evnode *dir = ino_node(parent, &k);
	if (dkvfs__from_notifier(fs, req)) { /* repeating a directory that appeared */
		struct fuse_entry_param e;
		struct evnode *n = NULL;
		dkv_engine_rdlock(fs->e);
		pthread_mutex_lock(&fs->ev->mu);
		n = kid_named(dir, name);
		if (n)
			make_entry(fs, &fs->full, n, K_DIR, &e);
		pthread_mutex_unlock(&fs->ev->mu);
		dkv_engine_unlock(fs->e);
		if (n)
			fuse_reply_entry(req, &e);
		else
			fuse_reply_err(req, ENOENT);
		return;
	}
	dkv_report(DKV_REPORT_INFO, "%s/.errors: errors appear where something fails; no directory "
		   "can be made here (%s)", fs->mnt, name);
	fuse_reply_err(req, EPERM);
}

void dkvfs__ev_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct dkvfs *fs = FS(req);
	struct dkv_session *s = dkvfs__session(fs, req);
	enum fskind k;
	struct evnode *dir = ino_node(parent, &k);
	int rc = -ENOENT;
	if (dkvfs__from_notifier(fs, req)) {
		fuse_reply_err(req, 0);
		return;
	}
	if (!s) {
		fuse_reply_err(req, EACCES);
		return;
	}
	dkv_engine_rdlock(fs->e);
	pthread_mutex_lock(&fs->ev->mu);
	struct evnode *n = kid_named(dir, name);
	/* a directory whose errors are gone (rm -r removed its "_" and those
	 * below) goes with them: it is only a path of the view */
	if (n && node_shown(fs, s, n)) {
		rc = has_content(fs, s, n) ? -ENOTEMPTY : 0;
		if (!rc) {
			n->kept = false;
			prune_up(fs->ev, n);
		}
	}
	pthread_mutex_unlock(&fs->ev->mu);
	dkv_engine_unlock(fs->e);
	reply_rc(req, rc);
}

void dkvfs__ev_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct dkvfs *fs = FS(req);
	enum fskind k;
	struct evnode *dir = ino_node(parent, &k);
	if (dkvfs__from_notifier(fs, req)) {
		fuse_reply_err(req, 0);
		return;
	}
	if (!name_is(name, "_")) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	struct evjob jb = {.node = dir};
	struct fsjob j = {.run = job_delete, .ptr = &jb, .sess = dkvfs__session(fs, req)};
	/* the open "_" files and the kernel's lookup hold dir meanwhile */
	int rc = j.sess ? dkvfs__submit(fs, &j) : -EACCES;
	evjob_release(fs, &jb);
	reply_rc(req, rc);
}

/* ---- for the notifier ---- */

bool dkvfs__ev_relpath(struct dkvfs *fs, const struct evnode *n, struct dkv_buf *out)
{
	const struct evnode *stack[256];
	unsigned depth = 0;
	(void)fs;
	for (const struct evnode *x = n; x->parent; x = x->parent) {
		if (depth == 256 || !x->name)
			return false;
		stack[depth++] = x;
	}
	out->len = 0;
	dkv_buf_puts(out, ".errors");
	while (depth--) {
		dkv_buf_putc(out, '/');
		dkv_buf_puts(out, stack[depth]->name);
	}
	dkv_buf_cstr(out);
	return true;
}

void dkvfs__ev_invalidate(struct dkvfs *fs, struct evnode *n)
{
	struct inval {
		uint64_t ino;  /* the directory */
		char *name;    /* NULL: its listing and attributes; else a name in it */
	} todo[3 * 64 + 1];
	unsigned k = 0;
	pthread_mutex_lock(&fs->ev->mu);
	if (n->nlookup)
		todo[k++] = (struct inval){n->parent ? node_ino(n, K_DIR) : dkvfs__ev_root_ino(fs),
					   dkv_xstrdup("_")};
	for (struct evnode *x = n; x && k + 2 < 3 * 64; x = x->parent) {
		uint64_t ino = x->parent ? node_ino(x, K_DIR) : dkvfs__ev_root_ino(fs);
		if (x->nlookup)
			todo[k++] = (struct inval){ino, NULL};
		if (x->parent && x->name && (x->parent->nlookup || !x->parent->parent))
			todo[k++] = (struct inval){x->parent->parent ? node_ino(x->parent, K_DIR)
								     : dkvfs__ev_root_ino(fs),
						   dkv_xstrdup(x->name)};
	}
	pthread_mutex_unlock(&fs->ev->mu);
	for (unsigned i = 0; i < k; i++) {
		if (todo[i].name)
			fuse_lowlevel_notify_inval_entry(fs->se, todo[i].ino, todo[i].name,
							 strlen(todo[i].name));
		else
			fuse_lowlevel_notify_inval_inode(fs->se, todo[i].ino, 0, 0);
		free(todo[i].name);
	}
}

/* One level of the path from .errors down to the node that changed. */
struct step {
	struct evnode *n;
	uint64_t ino, pino; /* its directory's and its parent's inode numbers */
	bool vis, has;      /* shown now; its "_" is */
	struct dkv_buf rel; /* below the mount */
};

#define MAX_STEPS 64

/* The path of n from the top, as the notifier needs it; 0 when it is too
 * deep or has a name the mount cannot show.  known: the kernel knows
 * .errors (nobody can watch anything in it otherwise). */
static unsigned steps_take(struct dkvfs *fs, struct evnode *n, struct step *st, bool *known)
{
	struct evnode *chain[MAX_STEPS];
	unsigned depth = 0;
	struct dkv_session *s = &fs->sess;
	dkv_engine_rdlock(fs->e);
	pthread_mutex_lock(&fs->ev->mu);
	*known = fs->ev->root->nlookup > 0;
	for (struct evnode *x = n; x->parent; x = x->parent) {
		if (depth == MAX_STEPS || !x->name) {
			depth = 0;
			goto out;
		}
		chain[depth++] = x;
	}
	for (unsigned i = 0; i < depth; i++) {
		struct step *p = &st[i];
		p->n = chain[depth - 1 - i];
		p->ino = node_ino(p->n, K_DIR);
		p->pino = p->n->parent->parent ? node_ino(p->n->parent, K_DIR) : dkvfs__ev_root_ino(fs);
		p->vis = node_shown(fs, s, p->n);
		p->has = has_value(fs, s, p->n);
		p->rel = (struct dkv_buf){0};
		dkvfs__ev_relpath(fs, p->n, &p->rel);
	}
out:
	pthread_mutex_unlock(&fs->ev->mu);
	dkv_engine_unlock(fs->e);
	return depth;
}

static void at(struct dkvfs *fs, struct dkv_buf *path, const struct dkv_buf *rel, const char *leaf)
{
	path->len = 0;
	dkv_buf_puts(path, fs->mnt);
	dkv_buf_putc(path, '/');
	dkv_buf_append(path, rel->data, rel->len);
	if (leaf) {
		dkv_buf_putc(path, '/');
		dkv_buf_puts(path, leaf);
	}
	dkv_buf_cstr(path);
}

/* How long after repeating a new directory the notifier waits before it
 * makes anything inside (notify.c's NEW_DIR_DELAY_NS). */
#define NEW_DIR_NS 20000000

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A listing (readdirplus) may have given the kernel the name already:
 * a mkdir or O_CREAT open on it would report nothing. */
static void forget_name(struct dkvfs *fs, uint64_t dir, const char *name)
{
	fuse_lowlevel_notify_inval_entry(fs->se, dir, name, strlen(name));
}

bool dkvfs__ev_repeat(struct dkvfs *fs, struct evnode *n, bool own)
{
	struct step st[MAX_STEPS];
	bool known, again = false;
	struct dkv_buf path = {0};
	if (!n->parent) {
		/* the errors of the root path: .errors/_ */
		struct dkv_buf rel = {0};
		dkv_buf_puts(&rel, ".errors");
		dkv_engine_rdlock(fs->e);
		pthread_mutex_lock(&fs->ev->mu);
		bool has = has_value(fs, &fs->sess, n), watch = n->nlookup > 0;
		pthread_mutex_unlock(&fs->ev->mu);
		dkv_engine_unlock(fs->e);
		uint64_t inos[2] = {dkvfs__ev_root_ino(fs), node_ino(n, K_VALUE)};
		if (!own && watch && has != n->value_shown && dkvfs__inos_watched(fs, inos, 2)) {
			at(fs, &path, &rel, "_");
			dkvfs__expect(fs, inos[0], "_", !has);
			forget_name(fs, inos[0], "_");
			dkvfs__helper_do(fs, has ? H_CREATE : H_UNLINK, &path);
			dkvfs__expect(fs, 0, NULL, false);
		} else if (!own && watch && has && dkvfs__inos_watched(fs, inos, 2)) {
			at(fs, &path, &rel, "_");
			dkvfs__helper_do(fs, H_MODIFY, &path);
		}
		n->value_shown = has;
		dkv_buf_release(&rel);
		dkv_buf_release(&path);
		return false;
	}
	unsigned depth = steps_take(fs, n, st, &known);
	if (!depth)
		return false;
	uint64_t inos[MAX_STEPS + 3];
	unsigned ni = 0;
	inos[ni++] = FUSE_ROOT_ID;
	inos[ni++] = dkvfs__ev_root_ino(fs);
	for (unsigned i = 0; i < depth; i++)
		inos[ni++] = st[i].ino;
	inos[ni++] = node_ino(n, K_VALUE);
	if (own || !known || !dkvfs__inos_watched(fs, inos, ni)) {
		/* nobody saw it happen, or the writer did: only remember */
		for (unsigned i = 0; i < depth; i++)
			st[i].n->shown = st[i].vis;
		n->value_shown = st[depth - 1].has;
		goto out;
	}
	/* directories that appeared, outermost first, one per round: a
	 * recursive watcher adds its watch on a new directory after it has
	 * read its IN_CREATE, so what is made in it comes a round later */
	int64_t now = mono_ns();
	for (unsigned i = 0; i < depth && !again; i++) {
		struct step *p = &st[i];
		if (p->n->made_ns && now - p->n->made_ns < NEW_DIR_NS) {
			again = true;
			break;
		}
		if (!p->vis || p->n->shown)
			continue;
		dkvfs__expect(fs, p->pino, p->n->name, false);
		forget_name(fs, p->pino, p->n->name);
		at(fs, &path, &p->rel, NULL);
		dkvfs__helper_do(fs, H_MKDIR, &path);
		p->n->shown = true;
		p->n->made_ns = now;
		again = true;
	}
	if (again)
		goto out;
	struct step *last = &st[depth - 1];
	if (last->has) {
		at(fs, &path, &last->rel, "_");
		if (n->value_shown) {
			dkvfs__expect(fs, 0, NULL, false);
			dkvfs__helper_do(fs, H_MODIFY, &path);
		} else {
			dkvfs__expect(fs, last->ino, "_", false);
			forget_name(fs, last->ino, "_");
			dkvfs__helper_do(fs, H_CREATE, &path);
		}
		n->value_shown = true;
	} else if (n->value_shown) {
		at(fs, &path, &last->rel, "_");
		dkvfs__expect(fs, last->ino, "_", true);
		dkvfs__helper_do(fs, H_UNLINK, &path);
		n->value_shown = false;
	}
	/* directories left with nothing to show, innermost first */
	for (unsigned i = depth; i--;) {
		struct step *p = &st[i];
		if (p->vis || !p->n->shown)
			break;
		if (p->n->value_shown) { /* an ancestor whose own "_" went too */
			at(fs, &path, &p->rel, "_");
			dkvfs__expect(fs, p->ino, "_", true);
			dkvfs__helper_do(fs, H_UNLINK, &path);
			p->n->value_shown = false;
		}
		dkvfs__expect(fs, p->pino, p->n->name, true);
		at(fs, &path, &p->rel, NULL);
		dkvfs__helper_do(fs, H_RMDIR, &path);
		p->n->shown = false;
	}
out:
	dkvfs__expect(fs, 0, NULL, false);
	for (unsigned i = 0; i < depth; i++)
		dkv_buf_release(&st[i].rel);
	dkv_buf_release(&path);
	return again;
}
