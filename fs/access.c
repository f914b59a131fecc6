/*
 * access.c - who uses the mount, and what they may do: the session of a
 * request, the checks the handlers make through the engine's rule, the
 * permission bits stat() shows, what listings leave out, and the rules
 * of the .acl and .auth directories.
 *
 * Workload: a mount without a rule (the default) must pay nothing, so
 * every function here returns before it looks anything up when the
 * session has no rule.  A bound session costs a path and an ACL walk per
 * check (a walk of the rule's compiled ACL: a few memcmp per level); the
 * checked mount asks the daemon for every name and listing (TIMEOUT_OF),
 * since the kernel's caches are shared by every user and would also keep
 * showing what an ACL change took away.  Nothing is cached here: the
 * rule recompiles its ACL when the engine's ACL generation moves, so a
 * change counts from the next request.
 *
 * Threads: the checks run on FUSE threads under the engine's read lock.
 * The rule writes its refusal into the session's why, which the loop
 * thread also writes (dkv_engine_apply, for the jobs): so a FUSE thread
 * checks with a copy of the session on its stack.
 */
#include "fs_int.h"
#include "distkv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const uint8_t USER_ELEM[] = {0xa4, 'u', 's', 'e', 'r'};

/* ---- sessions ---- */

/* Bind s to the distkv user name: under the current method, or when
 * none is current under the first of _test and password that has it. */
static int bind_user(struct dkvfs *fs, struct dkv_session *s, const char *name, char *err,
		     size_t errlen, const char *what)
{
	int cur = dkv_auth_current(fs->e);
	int tries[2] = {DKV_AUTH_TEST, DKV_AUTH_PASSWORD};
	size_t n = strlen(name);
	if (cur != DKV_AUTH_NONE) {
		if (!dkv_auth_bind_user(fs->e, s, cur, name, n))
			return 0;
		snprintf(err, errlen, "%s: there is no distkv user %s (method %s)", what, name,
			 dkv_auth_method_name(cur));
		return -ENOENT;
	}
	for (int i = 0; i < 2; i++)
		if (!dkv_auth_bind_user(fs->e, s, tries[i], name, n))
			return 0;
	snprintf(err, errlen, "%s: there is no distkv user %s (methods _test, password)", what,
		 name);
	return -ENOENT;
}

int dkvfs__sessions_init(struct dkvfs *fs, char *err, size_t errlen)
{
	int rc = 0;
	char what[64];
	fs->allow_other = fs->opts.allow_other;
	if (fs->opts.user)
		rc = bind_user(fs, &fs->sess, fs->opts.user, err, errlen, "server.mount.user");
	if (fs->opts.allow_other && fs->opts.nusers) {
		fs->users = dkv_xcalloc(fs->opts.nusers, sizeof *fs->users);
		for (size_t i = 0; i < fs->opts.nusers && !rc; i++) {
			fs->users[i].uid = fs->opts.users[i].uid;
			fs->nusers++;
			snprintf(what, sizeof what, "server.mount.users.%u",
				 (unsigned)fs->opts.users[i].uid);
			rc = bind_user(fs, &fs->users[i].sess, fs->opts.users[i].user, err, errlen,
				       what);
		}
	}
	fs->checked = fs->allow_other || fs->sess.check;
	/* the options are the caller's: nothing of them is kept */
	fs->opts.user = NULL;
	fs->opts.users = NULL;
	fs->opts.nusers = 0;
	return rc;
}

void dkvfs__sessions_release(struct dkvfs *fs)
{
	dkv_session_release(&fs->sess);
	dkv_session_release(&fs->full);
	for (size_t i = 0; i < fs->nusers; i++)
		dkv_session_release(&fs->users[i].sess);
	free(fs->users);
	fs->users = NULL;
	fs->nusers = 0;
}

struct dkv_session *dkvfs__session(struct dkvfs *fs, fuse_req_t req)
{
	if (!fs->checked)
		return &fs->sess;
	if (dkvfs__from_notifier(fs, req))
		return &fs->full;
	if (!fs->allow_other)
		return &fs->sess; /* the kernel lets only the mounting user in */
	uid_t uid = fuse_req_ctx(req)->uid;
	for (size_t i = 0; i < fs->nusers; i++)
		if (fs->users[i].uid == uid)
			return &fs->users[i].sess;
	if (uid == fs->uid)
		return &fs->sess;
	if (uid == 0)
		return &fs->full;
	return NULL;
}

bool dkvfs__own_session(const struct dkvfs *fs, const struct dkv_session *s)
{
	if (s == &fs->sess || s == &fs->full)
		return true;
	for (size_t i = 0; i < fs->nusers; i++)
		if (s == &fs->users[i].sess)
			return true;
	return false;
}

/* ---- checks ---- */

/* ent is below None: its path is relative to it (an internal path). */
static bool is_internal(struct dkvfs *fs, const struct dkv_entry *ent)
{
	const struct dkv_entry *meta = dkv_engine_meta(fs->e);
	for (const struct dkv_entry *x = ent; x; x = x->parent)
		if (x == meta)
			return true;
	return false;
}

/* ent's path (plus elem), for the rule. */
static bool path_of(struct dkvfs *fs, const struct dkv_entry *ent, const uint8_t *elem,
		    size_t elen, bool *internal, struct dkv_path *p)
{
	*internal = is_internal(fs, ent);
	dkv_path_init(p);
	if (*internal && ent == dkv_engine_meta(fs->e))
		return false; /* None itself: never asked about */
	if (!dkv_entry_path(ent, *internal ? dkv_engine_meta(fs->e) : NULL, p))
		return false;
	if (elem)
		dkv_buf_append(&p->enc, elem, elen);
	return true;
}

int dkvfs__check(struct dkvfs *fs, struct dkv_session *s, const struct dkv_entry *ent,
		 const uint8_t *elem, size_t elen, unsigned mode)
{
	if (s && !s->check)
		return 0;
	struct dkv_buf rel = {0};
	if (!s) {
		dkvfs__entry_relpath(fs, ent, &rel);
		dkv_report(DKV_REPORT_DEBUG, "%s/%s: refused: uid not in server.mount.users",
			   fs->mnt, dkv_buf_cstr(&rel));
		dkv_buf_release(&rel);
		return -EACCES;
	}
	struct dkv_session tmp = {.user = s->user, .check = s->check, .rule = s->rule};
	struct dkv_path p;
	bool internal;
	int rc = -EACCES;
	if (path_of(fs, ent, elem, elen, &internal, &p))
		rc = tmp.check(&tmp, p.enc.data, p.enc.len, internal, mode);
	else
		snprintf(tmp.why, sizeof tmp.why, "no path");
	/* a refused change is worth a line; refused reads and lookups
	 * (ls, find) would flood the log: those only with -vv */
	if (rc) {
		bool change = mode & (DKV_ACL_WRITE | DKV_ACL_CREATE | DKV_ACL_DELETE);
		dkvfs__entry_relpath(fs, ent, &rel);
		dkv_report(change ? DKV_REPORT_INFO : DKV_REPORT_DEBUG, "%s/%s: refused to %s: %s",
			   fs->mnt, dkv_buf_cstr(&rel), tmp.user ? tmp.user : "?", tmp.why);
	}
	dkv_path_release(&p);
	dkv_buf_release(&rel);
	return rc;
}

unsigned dkvfs__modes(struct dkvfs *fs, struct dkv_session *s, const struct dkv_entry *ent)
{
	if (!s)
		return 0;
	if (!s->check)
		return dkv_session_modes(s, NULL, 0, false);
	struct dkv_path p;
	bool internal;
	unsigned m = 0;
	if (path_of(fs, ent, NULL, 0, &internal, &p))
		m = dkv_session_modes(s, p.enc.data, p.enc.len, internal);
	dkv_path_release(&p);
	return m;
}

/* ---- listings ---- */

#define BELOW_BUDGET 64 /* entries looked at below an unmatched one */

/*
 * Whether a listing shows the child directory ent to s:
 *  - never when s cannot reach it (an ancestor's match withholds x);
 *  - when s may read its value;
 *  - when an ACL entry matches it and allows listing it (e and x);
 *  - when no ACL entry matches it (but one below may: else its modes
 *    are 0), only if something below is shown: a readable value or an
 *    entry that may be listed.  That search looks at no more than
 *    BELOW_BUDGET entries and shows the directory when it runs out (a
 *    big unmatched subtree is listed, and may turn out empty).
 */
bool dkvfs__listed(struct dkvfs *fs, struct dkv_session *s, struct dkv_entry *ent)
{
	if (s && !s->check)
		return true;
	unsigned m = dkvfs__modes(fs, s, ent);
	if (!m)
		return false;
	if ((m & DKV_ACL_READ) && dkv_entry_has_value(ent))
		return true;
	if (!(m & DKV_ACL_UNMATCHED))
		return dkv_acl_may_descend(m);
	unsigned budget = BELOW_BUDGET;
	struct dkv_entry *x = ent->kids;
	while (x) {
		if (!budget--)
			return true;
		bool descend = false;
		if (dkv_entry_visible(x)) {
			unsigned mx = dkvfs__modes(fs, s, x);
			if (mx && (mx & DKV_ACL_READ) && dkv_entry_has_value(x))
				return true;
			if (mx && !(mx & DKV_ACL_UNMATCHED) && dkv_acl_may_descend(mx))
				return true;
			descend = mx && (mx & DKV_ACL_UNMATCHED);
		}
		x = dkv_entry_walk_next(x, ent, descend);
	}
	return false;
}

bool dkvfs__special_shown(const struct dkvfs *fs, const struct dkv_session *s,
			  const struct special *sp)
{
	(void)fs;
	return s && (!s->check || !sp->internal);
}

/* ---- permission bits ---- */

/*
 * The bits stat() shows (doc/filesystem.md, "Users and ACLs"), for a
 * session with a rule.  They describe what the session may do; the
 * kernel does not check them (a checked mount has no
 * default_permissions: the daemon decides every request).
 *   directory: r (0444) it may be listed (e and x, or no ACL entry
 *              matches it but one below may), x (0111) it may be
 *              entered (the same with x), w (0200) a value may be
 *              created in it (c);
 *   "_":       r (0444) read, w (0200) write;
 *   .meta, .watch: r (0444) read.
 * A "_" of a user record that holds a password hash is read-only for
 * everybody: what it shows leaves the hash out, and writing that back
 * would lose it.
 */
void dkvfs__perm(struct dkvfs *fs, struct dkv_session *s, const struct dkv_entry *ent,
		 enum fskind k, const struct dkv_value *val, struct stat *st)
{
	mode_t type = st->st_mode & S_IFMT;
	if (k == K_VALUE && dkvfs__holds_hash(val) && dkvfs__is_user_record(fs, ent))
		st->st_mode &= ~(mode_t)0222;
	if (s && !s->check)
		return;
	unsigned m = k == K_STATS ? DKV_ACL_READ : dkvfs__modes(fs, s, ent);
	mode_t bits = 0;
	switch (k) {
	case K_DIR:
		/* what a count of subdirectories would tell is not the
		 * session's to know; 1 is "unknown" to find and fts */
		st->st_nlink = 1;
		if (m && dkv_acl_may_descend(m))
			bits |= 0444;
		if (m & (DKV_ACL_ACCESS | DKV_ACL_UNMATCHED))
			bits |= 0111;
		if (m & DKV_ACL_CREATE)
			bits |= 0200;
		break;
	case K_VALUE:
		if (m & DKV_ACL_READ)
			bits |= 0444;
		if (m & DKV_ACL_WRITE)
			bits |= 0200;
		break;
	case K_META:
	case K_WATCH:
	case K_STATS:
	case K_STATE:
		if (m & DKV_ACL_READ)
			bits |= 0444;
		break;
	}
	st->st_mode = type | (bits & st->st_mode) | (bits & 0111);
}

void dkvfs__op_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	struct dkvfs *fs = FS(req);
	if (ino & VIEW_BIT) {
		dkvfs__ev_access(req, ino, mask);
		return;
	}
	struct dkv_session *s = dkvfs__session(fs, req);
	struct fsver *ver = NULL;
	enum fskind k;
	struct stat st;
	struct dkv_entry *ent = dkvfs__ino_entry_ver(fs, ino, &k, &ver);
	if (!ent) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	if (!s) {
		fuse_reply_err(req, EACCES);
		return;
	}
	dkvfs__attrs_for_reply(fs, s, ent, k, ver, &st);
	bool ok = (!(mask & R_OK) || (st.st_mode & 0400)) && (!(mask & W_OK) || (st.st_mode & 0200)) &&
		  (!(mask & X_OK) || (st.st_mode & 0100));
	fuse_reply_err(req, ok ? 0 : EACCES);
}

/* ---- .auth and .acl ---- */

bool dkvfs__is_user_record(const struct dkvfs *fs, const struct dkv_entry *ent)
{
	const struct dkv_entry *u = ent->parent;
	return fs->auth_dir && u && u->parent && u->parent->parent == fs->auth_dir &&
	       u->namelen == sizeof USER_ELEM && !memcmp(u->name, USER_ELEM, sizeof USER_ELEM);
}

/* Find "password" among the keys of the map at r; the map's pair count
 * in *n.  Leaves r anywhere. */
static bool find_password(struct dkv_mp_reader *r, uint32_t *n, const uint8_t **kstart,
			  const uint8_t **vend)
{
	struct dkv_mp_item it;
	if (dkv_mp_read(r, &it) || it.type != DKV_MP_MAP)
		return false;
	*n = it.v.n;
	for (uint32_t i = 0; i < *n; i++) {
		const uint8_t *k = r->p;
		if (dkv_mp_read(r, &it))
			return false;
		bool pw = it.type == DKV_MP_STR && dkv_mp_streq(&it, "password");
		if (it.type == DKV_MP_STR || it.type == DKV_MP_BIN) {
			/* read consumed the head only for containers: strings are whole */
		} else {
			r->p = k;
			if (dkv_mp_skip(r))
				return false;
		}
		if (dkv_mp_skip(r))
			return false;
		if (pw) {
			*kstart = k;
			*vend = r->p;
			return true;
		}
	}
	return false;
}

bool dkvfs__holds_hash(const struct dkv_value *val)
{
	struct dkv_mp_reader r;
	uint32_t n;
	const uint8_t *k, *e;
	if (!val || !val->len)
		return false;
	dkv_mp_reader_init(&r, dkv_value_data(val), val->len);
	return find_password(&r, &n, &k, &e);
}

/* A data value as the mount's user (server.mount.user) reads it: its
 * converter's encoding (codec.h), in conv.  When the codec fails, the
 * text says why in a comment (and true: nothing else to show). */
static bool encode_value(const struct dkvfs *fs, const struct dkv_entry *ent,
			 const uint8_t **data, size_t *len, struct dkv_buf *conv, struct dkv_buf *out)
{
	if (!fs->sess.conv)
		return false;
	struct dkv_path p;
	char why[300];
	struct dkv_buf enc = {0};
	int rc = 0;
	dkv_path_init(&p);
	dkv_entry_path(ent, NULL, &p);
	if (!(p.enc.len && p.enc.data[0] == 0xc0))
		rc = dkv_session_encode(&fs->sess, p.enc.data, p.enc.len, data, len, &enc, why,
					sizeof why);
	dkv_path_release(&p);
	if (!rc && enc.len) { /* *data points into enc: conv keeps it */
		dkv_buf_release(conv);
		*conv = enc;
		return false;
	}
	dkv_buf_release(&enc);
	if (rc)
		dkv_buf_printf(out, "# not shown: %s\n", why);
	return rc != 0;
}

void dkvfs__render_value(const struct dkvfs *fs, const struct dkv_entry *ent, struct dkv_buf *out)
{
	if (!dkv_entry_has_value(ent))
		return;
	const uint8_t *data = dkv_value_data(ent->value);
	size_t len = ent->value->len;
	struct dkv_buf shown = {0};
	struct dkv_mp_reader r;
	uint32_t n;
	const uint8_t *k, *e;
	dkv_mp_reader_init(&r, data, len);
	if (dkvfs__is_user_record(fs, ent) && find_password(&r, &n, &k, &e)) {
		/* the map without its password pair */
		struct dkv_mp_reader h;
		struct dkv_mp_item it;
		dkv_mp_reader_init(&h, data, len);
		dkv_mp_read(&h, &it);
		dkv_mp_map(&shown, n - 1);
		dkv_buf_append(&shown, h.p, (size_t)(k - h.p));
		dkv_buf_append(&shown, e, (size_t)(data + len - e));
		data = shown.data;
		len = shown.len;
	}
	if (encode_value(fs, ent, &data, &len, &shown, out)) {
		dkv_buf_release(&shown);
		return;
	}
	if (dkv_yaml_emit(out, data, len))
		dkv_buf_puts(out, "# (a value that cannot be shown as YAML)\n");
	dkv_buf_release(&shown);
}

int dkvfs__check_value(struct dkvfs *fs, const struct dkv_entry *ent, const struct dkv_buf *mp)
{
	const struct dkv_entry *x = ent;
	while (x && x->parent != fs->acl_dir)
		x = x->parent;
	if (!x || !fs->acl_dir)
		return 0;
	struct dkv_mp_reader r;
	struct dkv_mp_item it;
	unsigned modes;
	dkv_mp_reader_init(&r, mp->data, mp->len);
	if (!dkv_mp_read(&r, &it) && it.type == DKV_MP_STR &&
	    !dkv_acl_parse((const char *)it.v.s.p, it.v.s.len, &modes))
		return 0;
	struct dkv_buf rel = {0};
	dkv_engine_rdlock(fs->e);
	dkvfs__entry_relpath(fs, ent, &rel);
	dkv_engine_unlock(fs->e);
	dkv_report(DKV_REPORT_ERROR,
		   "%s/%s/_: not stored: an ACL entry is a string of the mode letters arwcdxen",
		   fs->mnt, dkv_buf_cstr(&rel));
	dkv_buf_release(&rel);
	return -EINVAL;
}
