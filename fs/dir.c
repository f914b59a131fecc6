/*
 * dir.c - directories: names (the colon notation, the special directories
 * at the root), LOOKUP, listings, mkdir, rmdir, unlink of "_", rename.
 *
 * The kernel keeps a directory's listing until the notifier invalidates
 * it.  A big directory is listed in pieces (one READDIR fills one
 * buffer): a few cursors remember where recent listings stopped, so that
 * the next piece starts there instead of walking the children from the
 * first.
 */
#include "fs_int.h"
#include "distkv.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

/* ---- names ---- */

int dkvfs__entry_name(const struct dkvfs *fs, const struct dkv_entry *ent, struct dkv_buf *out)
{
	for (unsigned i = 0; i < fs->nspecials; i++) {
		/* .errors is a view of its own: its entry is .distkv/error */
		if (fs->specials[i].ent == ent && ent != fs->err_dir) {
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
			special |= fs->specials[i].ent == x && x != fs->err_dir;
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
static struct dkv_entry *child_by_name(struct dkvfs *fs, struct dkv_session *s,
				       struct dkv_entry *dir, const char *name, bool want_hidden)
{
	struct dkv_buf el = {0};
	struct dkv_entry *k = NULL;
	if (dir == dkv_engine_root(fs->e)) {
		for (unsigned i = 0; i < fs->nspecials; i++)
			if (name_is(name, fs->specials[i].name))
				return dkvfs__special_shown(fs, s, &fs->specials[i]) ? fs->specials[i].ent
										     : NULL;
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

void dkvfs__op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	COUNT(FS(req), lookup);
	struct dkvfs *fs = FS(req);
	struct fuse_entry_param e;
	enum fskind pk;
	if (parent & VIEW_BIT) {
		dkvfs__ev_lookup(req, parent, name);
		return;
	}
	struct dkv_entry *dir = dkvfs__ino_entry(fs, parent, &pk);
	int rc = -ENOENT;

	if (pk != K_DIR) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	struct dkv_session *s = dkvfs__session(fs, req);
	if (!s) {
		fuse_reply_err(req, EACCES);
		return;
	}
	bool notifier = dkvfs__from_notifier(fs, req);
	bool expect_absent = false, expect_present = false;
	if (notifier) {
		int x = dkvfs__expected(fs, parent, name);
		expect_present = x > 0;
		expect_absent = x < 0;
		if (expect_absent) {
			fuse_reply_err(req, ENOENT);
			return;
		}
	}

	dkv_engine_rdlock(fs->e);
	/* a name in dir can be found where dir can be reached (x) */
	if (s->check && dkvfs__check(fs, s, dir, NULL, 0, 0)) {
		rc = -EACCES;
	} else if (name_is(name, "_")) {
		if (dkv_entry_has_value(dir) || expect_present) {
			dkvfs__make_entry(fs, req, dir, K_VALUE, &e);
			rc = 0;
		}
	} else if (name_is(name, ".meta")) {
		if (dir->value) {
			dkvfs__make_entry(fs, req, dir, K_META, &e);
			rc = 0;
		}
	} else if (name_is(name, ".watch")) {
		dkvfs__make_entry(fs, req, dir, K_WATCH, &e);
		rc = 0;
	} else if (name_is(name, ".state") && dkvfs__job_state(fs, dir)) {
		struct dkv_entry *x = dkvfs__job_state(fs, dir);
		if (s->check && dkvfs__check(fs, s, x, NULL, 0, DKV_ACL_READ)) {
			rc = -EACCES;
		} else {
			dkvfs__make_entry(fs, req, dir, K_STATE, &e);
			rc = 0;
		}
	} else if (name_is(name, ".stats") && dir == dkv_engine_root(fs->e)) {
		dkvfs__make_entry(fs, req, dir, K_STATS, &e);
		rc = 0;
	} else if (name_is(name, ".errors") && dir == dkv_engine_root(fs->e)) {
		dkvfs__ev_root_entry(fs, s, &e);
		rc = 0;
	} else {
		struct dkv_entry *k = child_by_name(fs, s, dir, name, notifier);
		if (k && s->check && dkvfs__check(fs, s, k, NULL, 0, 0))
			rc = -EACCES;
		else if (k) {
			dkvfs__make_entry(fs, req, k, K_DIR, &e);
			rc = 0;
		}
	}
	dkv_engine_unlock(fs->e);
	if (rc)
		reply_rc(req, rc);
	else
		fuse_reply_entry(req, &e);
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
void dkvfs__op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	COUNT(FS(req), opendir);
	struct dkvfs *fs = FS(req);
	if (!fs->checked) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	if (ino & VIEW_BIT) {
		dkvfs__ev_opendir(req, ino, fi);
		return;
	}
	/* checked: each open lists afresh, for whoever opens it (access.c) */
	struct dkv_session *s = dkvfs__session(fs, req);
	enum fskind k;
	struct dkv_entry *dir = dkvfs__ino_entry(fs, ino, &k);
	int rc = -EACCES;
	if (s) {
		dkv_engine_rdlock(fs->e);
		unsigned m = dkvfs__modes(fs, s, dir);
		if (m && dkv_acl_may_descend(m))
			rc = 0;
		else
			dkvfs__check(fs, s, dir, NULL, 0, DKV_ACL_ENUM | DKV_ACL_ACCESS); /* says why */
		dkv_engine_unlock(fs->e);
	}
	if (rc) {
		reply_rc(req, rc);
		return;
	}
	fi->cache_readdir = 0;
	fi->keep_cache = 0;
	fuse_reply_open(req, fi);
}

void dkvfs__op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
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
		if (k == K_DIR && ent == fs->err_dir && !strcmp(name, ".errors")) {
			dkvfs__ev_root_entry(fs, dkvfs__session(fs, req), &e);
		} else if (!strcmp(name, ".") || !strcmp(name, "..")) {
			/* not a lookup, and the kernel ignores their attributes:
			 * no counting of a big parent's children for every leaf */
			e.ino = dkvfs__ino(fs, ent, K_DIR);
			e.attr.st_ino = e.ino;
			e.attr.st_mode = S_IFDIR | 0755;
		} else {
			dkvfs__make_entry(fs, req, ent, k, &e); /* counts as a lookup */
		}
		dkv_buf_reserve(buf, need);
		fuse_add_direntry_plus(req, (char *)buf->data + buf->len, need, name, &e, next);
		buf->len += need;
	} else {
		struct stat st;
		memset(&st, 0, sizeof st);
		st.st_ino = dkvfs__ino(fs, ent, k);
		if (k == K_DIR && ent == fs->err_dir && !strcmp(name, ".errors"))
			st.st_ino = dkvfs__ev_root_ino(fs);
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
	if (ino & VIEW_BIT) {
		dkvfs__ev_readdir(req, ino, size, off, plus);
		return;
	}
	struct dkv_entry *dir = dkvfs__ino_entry(fs, ino, &k);
	struct dkv_buf buf = {0}, name = {0};
	(void)fi;
	bool is_root = dir == dkv_engine_root(fs->e);
	struct dkv_session *s = dkvfs__session(fs, req);
	if (!s) { /* a listing opened by someone else: refused at OPENDIR */
		fuse_reply_err(req, EACCES);
		return;
	}
	bool checked = s->check != NULL;

	dkv_engine_rdlock(fs->e);
	unsigned dm = checked ? dkvfs__modes(fs, s, dir) : 0;
	if (off < OFF_DOT && !add_dirent(fs, req, &buf, size, plus, ".", dir, K_DIR, OFF_DOT))
		goto full;
	if (off < OFF_DOTDOT &&
	    !add_dirent(fs, req, &buf, size, plus, "..", dir->parent ? dir->parent : dir, K_DIR,
			OFF_DOTDOT))
		goto full;
	if (off < OFF_VALUE && dkv_entry_has_value(dir) && (!checked || (dm & DKV_ACL_READ)) &&
	    !add_dirent(fs, req, &buf, size, plus, "_", dir, K_VALUE, OFF_VALUE))
		goto full;
	for (unsigned i = 0; is_root && i < fs->nspecials; i++) {
		off_t o = OFF_SPECIAL + i;
		if (off < o && dkvfs__special_shown(fs, s, &fs->specials[i]) &&
		    (!checked || dkvfs__listed(fs, s, fs->specials[i].ent)) &&
		    !add_dirent(fs, req, &buf, size, plus, fs->specials[i].name,
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
		if (checked && !dkvfs__listed(fs, s, c))
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

void dkvfs__op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	COUNT(FS(req), readdir);
	do_readdir(req, ino, size, off, fi, false);
}

void dkvfs__op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	COUNT(FS(req), readdirplus);
	do_readdir(req, ino, size, off, fi, true);
}

void dkvfs__op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	COUNT(FS(req), mkdir);
	struct dkvfs *fs = FS(req);
	if (parent & VIEW_BIT) {
		dkvfs__ev_mkdir(req, parent, name);
		return;
	}
	enum fskind pk;
	struct dkv_entry *dir = dkvfs__ino_entry(fs, parent, &pk);
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
		struct dkv_entry *k = child_by_name(fs, &fs->full, dir, name, true);
		if (k)
			dkvfs__make_entry(fs, req, k, K_DIR, &e);
		dkv_engine_unlock(fs->e);
		if (k)
			fuse_reply_entry(req, &e);
		else
			fuse_reply_err(req, ENOENT);
		return;
	}
	struct fsjob j = {.run = dkvfs__job_mkdir, .ent = dir, .sess = dkvfs__session(fs, req)};
	if (!j.sess) {
		fuse_reply_err(req, EACCES);
		return;
	}
	if (dkv_pathtext_parse(&j.data, name, strlen(name), DKV_PT_FS) ||
	    (dir == dkv_engine_root(fs->e) && j.data.len == 1 && j.data.data[0] == 0xc0)) {
		dkv_buf_release(&j.data);
		fuse_reply_err(req, EINVAL);
		return;
	}
	int rc = dkvfs__submit(fs, &j);
	dkv_buf_release(&j.data);
	if (rc) {
		reply_rc(req, rc);
		return;
	}
	dkv_engine_rdlock(fs->e);
	dkvfs__make_entry(fs, req, j.out, K_DIR, &e);
	dkv_engine_unlock(fs->e);
	fuse_reply_entry(req, &e);
}

void dkvfs__op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	COUNT(FS(req), rmdir);
	struct dkvfs *fs = FS(req);
	if (parent & VIEW_BIT) {
		dkvfs__ev_rmdir(req, parent, name);
		return;
	}
	enum fskind pk;
	struct dkv_entry *dir = dkvfs__ino_entry(fs, parent, &pk);
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
	struct fsjob j = {.run = dkvfs__job_rmdir, .ent = dir, .sess = dkvfs__session(fs, req)};
	if (!j.sess) {
		fuse_reply_err(req, EACCES);
		return;
	}
	if (pk != K_DIR || dkv_pathtext_parse(&j.data, name, strlen(name), DKV_PT_FS)) {
		dkv_buf_release(&j.data);
		fuse_reply_err(req, pk != K_DIR ? ENOTDIR : ENOENT);
		return;
	}
	int rc = dkvfs__submit(fs, &j);
	dkv_buf_release(&j.data);
	reply_rc(req, rc);
}

void dkvfs__op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	COUNT(FS(req), unlink);
	struct dkvfs *fs = FS(req);
	if (parent & VIEW_BIT) {
		dkvfs__ev_unlink(req, parent, name);
		return;
	}
	enum fskind pk;
	struct dkv_entry *dir = dkvfs__ino_entry(fs, parent, &pk);
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
	struct fsjob j = {.run = dkvfs__job_unlink, .ent = dir, .sess = dkvfs__session(fs, req)};
	reply_rc(req, j.sess ? dkvfs__submit(fs, &j) : -EACCES);
}

void dkvfs__op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
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
