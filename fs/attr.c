/*
 * attr.c - what stat() and the small rendered files show: attributes of
 * every kind of inode, the YAML of "_" and ".meta", the counts of
 * ".stats".
 *
 * The kernel caches the attributes of directories and of versions of "_"
 * until the notifier invalidates them, so most stat() calls never reach
 * here; ".meta" and ".stats" change without a new inode and are computed
 * on every request.
 */
#include "fs_int.h"
#include "distkv.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* ---- rendering ---- */

/* dkvfs__render_value is access.c's: a user record's hides its hash */

void dkvfs__render_meta(const struct dkv_entry *ent, struct dkv_buf *out)
{
	const struct dkv_value *v = ent->value;
	char tbuf[64] = "never";
	if (ent->mtime_ns) {
		time_t t = (time_t)(ent->mtime_ns / 1000000000);
		struct tm tm;
		gmtime_r(&t, &tm);
		/* quoted: YAML 1.1 readers (PyYAML) would make a timestamp of
		 * it, ours a string */
		snprintf(tbuf, sizeof tbuf, "'%04d-%02d-%02dT%02d:%02d:%02d.%06dZ'", tm.tm_year + 1900,
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

struct dkv_entry *dkvfs__job_state(const struct dkvfs *fs, const struct dkv_entry *ent)
{
	struct dkv_path rel;
	struct dkv_entry *st = NULL;
	dkv_path_init(&rel);
	if (fs->run_dir && ent != fs->run_dir && dkv_entry_path(ent, fs->run_dir, &rel))
		st = dkv_entry_lookup(fs->e, fs->state_dir, rel.enc.data, rel.enc.len, false);
	dkv_path_release(&rel);
	return st && dkv_entry_has_value(st) ? st : NULL;
}

static const char *const op_names[] = {
#define X(n) #n,
	DKVFS_OPS(X)
#undef X
};

void dkvfs__render_stats(struct dkvfs *fs, struct dkv_buf *out)
{
	for (int i = 0; i < OP__COUNT; i++)
		dkv_buf_printf(out, "%s: %llu\n", op_names[i],
			       (unsigned long long)atomic_load(&fs->ops[i]));
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
void dkvfs__fill_attr(struct dkvfs *fs, struct dkv_entry *ent, enum fskind k, struct stat *st)
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
	case K_VALUE: /* versions: dkvfs__fill_ver_attr */
	case K_META: { /* the size is that of the text a read would give */
		struct dkv_buf t = {0};
		dkvfs__render_meta(ent, &t);
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = (off_t)t.len;
		dkv_buf_release(&t);
		break;
	}
	case K_STATE: {
		struct dkv_buf t = {0};
		struct dkv_entry *x = dkvfs__job_state(fs, ent);
		if (x)
			dkvfs__render_value(fs, x, &t);
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = (off_t)t.len;
		if (x)
			fill_times(fs, st, x);
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
void dkvfs__fill_ver_attr(const struct dkvfs *fs, const struct fsver *v, struct stat *st)
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

void dkvfs__attrs_for_reply(struct dkvfs *fs, struct dkv_session *s, struct dkv_entry *ent,
			    enum fskind k, struct fsver *ver, struct stat *st)
{
	if (ver) {
		pthread_mutex_lock(&fs->mu);
		dkvfs__fill_ver_attr(fs, ver, st);
		ver->attrs_told = true;
		struct dkv_value *val = dkv_value_ref(ver->value);
		pthread_mutex_unlock(&fs->mu);
		if (s->check || dkvfs__is_user_record(fs, ent)) {
			dkv_engine_rdlock(fs->e);
			dkvfs__perm(fs, s, ent, k, val, st);
			dkv_engine_unlock(fs->e);
		}
		dkv_value_unref(val);
		return;
	}
	dkv_engine_rdlock(fs->e);
	dkvfs__fill_attr(fs, ent, k, st);
	dkvfs__perm(fs, s, ent, k, NULL, st);
	dkv_engine_unlock(fs->e);
}

void dkvfs__op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	COUNT(FS(req), getattr);
	struct dkvfs *fs = FS(req);
	struct stat st;
	enum fskind k;
	struct fsver *ver = NULL;
	(void)fi;
	if (ino & VIEW_BIT) {
		dkvfs__ev_getattr(req, ino);
		return;
	}
	struct dkv_entry *ent = dkvfs__ino_entry_ver(fs, ino, &k, &ver);
	struct dkv_session *s = dkvfs__session(fs, req);
	if (!ent) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	if (!s) {
		fuse_reply_err(req, EACCES);
		return;
	}
	dkvfs__attrs_for_reply(fs, s, ent, k, ver, &st);
	fuse_reply_attr(req, &st, ver || k == K_DIR ? TIMEOUT_OF(fs) : 0);
}
