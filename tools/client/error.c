/*
 * error.c - the error commands: list, get, resolve, delete.
 *
 * The error log is ordinary data (doc/errors.md): records at
 * (".distkv", "error", NODE, TOCK), each node's details of one below it
 * at (..., DNODE).  Every command reads the whole log with one get_tree
 * (records and details, depth 2 and 3: a log holds hundreds of records,
 * not millions) and then picks, filters and prints; resolve and delete
 * write with the plain data actions.  A record is named by where it is
 * (NODE TOCK) or by what it is about (-s SUBSYSTEM PATH...), since
 * (path, subsystem) is unique.
 *
 * What is not a record -- no map, no subsystem, no path -- is left out
 * of listings with a note on standard error, and `error get` shows it as
 * it is: a broken record must not hide the others.
 */
#include "client_int.h"

#include "distkv.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* (".distkv", "error") */
static const uint8_t ERR_ROOT[] = {0xa7, '.', 'd', 'i', 's', 't', 'k', 'v',
				   0xa5, 'e', 'r', 'r', 'o', 'r'};

/* One node's details of an error: (..., TOCK, DNODE). */
struct detail {
	uint8_t *node; /* the DNODE element's encoding */
	size_t nlen;
	uint8_t *val;  /* msgpack */
	size_t vlen;
};

/* One record, as read. */
struct rec {
	uint8_t *where;   /* NODE and TOCK, element encodings back to back */
	size_t wlen;
	uint8_t *val;     /* the record's msgpack; NULL: the entry has no value */
	size_t vlen;
	struct detail *det;
	size_t ndet;
	/* what rec_parse found */
	const char *bad;  /* why it is no record; NULL: it is one */
	char *subsys;
	struct dkv_path path;
	bool resolved;
	double first_seen;
};

struct recs {
	struct rec *v;
	size_t n, cap;
};

static void recs_release(struct recs *rs)
{
	for (size_t i = 0; i < rs->n; i++) {
		struct rec *r = &rs->v[i];
		for (size_t j = 0; j < r->ndet; j++) {
			free(r->det[j].node);
			free(r->det[j].val);
		}
		free(r->det);
		free(r->where);
		free(r->val);
		free(r->subsys);
		dkv_path_release(&r->path);
	}
	free(rs->v);
	*rs = (struct recs){0};
}

static uint8_t *dup_bytes(const uint8_t *p, size_t n)
{
	uint8_t *d = dkv_xmalloc(n ? n : 1);
	if (n)
		memcpy(d, p, n);
	return d;
}

/* Whether p starts with the elements in prefix (either may be empty,
 * its data NULL). */
static bool starts_with(const struct dkv_path *p, const uint8_t *prefix, size_t len)
{
	return p->enc.len >= len && (!len || !memcmp(p->enc.data, prefix, len));
}

static bool path_is(const struct dkv_path *p, const uint8_t *enc, size_t len)
{
	return p->enc.len == len && starts_with(p, enc, len);
}

/* ---- reading the log ---- */

static void rec_parse(struct rec *r)
{
	struct dkv_mp_reader rd;
	struct dkv_mp_item it, k, v;
	bool has_path = false;
	dkv_path_init(&r->path);
	if (!r->val) {
		r->bad = "details without a record";
		return;
	}
	dkv_mp_reader_init(&rd, r->val, r->vlen);
	if (dkv_mp_read(&rd, &it) || it.type != DKV_MP_MAP) {
		r->bad = "not a map";
		return;
	}
	for (uint32_t i = 0; i < it.v.n; i++) {
		if (dkv_mp_read(&rd, &k))
			goto broken;
		if (k.type == DKV_MP_STR && dkv_mp_streq(&k, "path")) {
			if (dkv_path_decode(&r->path, &rd)) {
				r->bad = "its path is not a path";
				return;
			}
			has_path = true;
			continue;
		}
		struct dkv_mp_reader vr = rd;
		if (dkv_mp_read(&vr, &v) || dkv_mp_skip(&rd))
			goto broken;
		if (k.type != DKV_MP_STR)
			continue;
		if (dkv_mp_streq(&k, "subsystem") && v.type == DKV_MP_STR) {
			free(r->subsys);
			r->subsys = dkv_xstrndup((const char *)v.v.s.p, v.v.s.len);
		} else if (dkv_mp_streq(&k, "resolved")) {
			r->resolved = dkv_mp_truthy(&v);
		} else if (dkv_mp_streq(&k, "first_seen")) {
			r->first_seen = v.type == DKV_MP_FLOAT ? v.v.f
				      : v.type == DKV_MP_UINT ? (double)v.v.u : 0;
		}
	}
	if (!r->subsys)
		r->bad = "no subsystem";
	else if (!has_path)
		r->bad = "no path";
	return;
broken:
	r->bad = "a damaged map";
}

struct fetch_state {
	struct recs *rs;
	struct dkv_client_path rel;
};

/* The record at where[0..wlen): the last one when it is that (replies
 * come depth first), else a new one. */
static struct rec *rec_at(struct recs *rs, const uint8_t *where, size_t wlen)
{
	if (rs->n) {
		struct rec *last = &rs->v[rs->n - 1];
		if (last->wlen == wlen && !memcmp(last->where, where, wlen))
			return last;
	}
	if (rs->n == rs->cap) {
		rs->cap = rs->cap ? 2 * rs->cap : 32;
		rs->v = dkv_xrealloc(rs->v, rs->cap * sizeof *rs->v);
	}
	struct rec *r = &rs->v[rs->n++];
	memset(r, 0, sizeof *r);
	r->where = dup_bytes(where, wlen);
	r->wlen = wlen;
	return r;
}

static int fetch_cb(void *arg, const uint8_t *m, size_t n)
{
	struct fetch_state *s = arg;
	const uint8_t *v;
	size_t vlen;
	if (dkv_client_path_update(&s->rel, m, n) < 0 ||
	    dkv_client_field(m, n, "value", &v, &vlen) < 0)
		return 0;
	const struct dkv_client_path *p = &s->rel;
	if (p->n != 2 && p->n != 3)
		return 0;
	struct rec *r = rec_at(s->rs, p->enc.data, p->offs[2]);
	if (p->n == 2) {
		free(r->val);
		r->val = dup_bytes(v, vlen);
		r->vlen = vlen;
		return 0;
	}
	r->det = dkv_xrealloc(r->det, (r->ndet + 1) * sizeof *r->det);
	struct detail *d = &r->det[r->ndet++];
	d->nlen = p->offs[3] - p->offs[2];
	d->node = dup_bytes(p->enc.data + p->offs[2], d->nlen);
	d->val = dup_bytes(v, vlen);
	d->vlen = vlen;
	return 0;
}

/* Every record of the log, parsed.  0 or 1. */
static int fetch(struct dkv__cli_ctx *x, struct recs *rs)
{
	struct dkv__cli_req q;
	struct dkv_buf root = {0};
	struct fetch_state s = {.rs = rs};
	dkv_buf_append(&root, ERR_ROOT, sizeof ERR_ROOT);
	dkv__cli_req_init(&q, "get_tree");
	dkv__cli_req_path(&q, &root);
	dkv__cli_req_int(&q, "min_depth", 2);
	dkv__cli_req_int(&q, "max_depth", 3);
	int rc = dkv__cli_stream(x, &q, fetch_cb, &s);
	for (size_t i = 0; i < rs->n; i++)
		rec_parse(&rs->v[i]);
	dkv_client_path_release(&s.rel);
	dkv__cli_req_release(&q);
	dkv_buf_release(&root);
	return rc;
}

/* "NODE TOCK" of a record, as words, for messages. */
static void where_text(struct dkv_buf *out, const struct rec *r)
{
	struct dkv_path_iter it;
	const uint8_t *e;
	size_t elen;
	dkv_path_iter_init(&it, r->where, r->wlen);
	for (bool first = true; dkv_path_iter_next(&it, &e, &elen); first = false) {
		if (!first)
			dkv_buf_putc(out, ' ');
		dkv_pathtext_format(out, e, elen, 0);
	}
}

static void note_bad(struct dkv__cli_ctx *x, const struct rec *r)
{
	struct dkv_buf w = {0};
	where_text(&w, r);
	fprintf(stderr, "%s: .distkv error %s: not an error record (%s); skipped\n",
		x->cli->progname, dkv_buf_cstr(&w), r->bad);
	dkv_buf_release(&w);
}

/* Which of two records about the same error is the one: the first seen,
 * then the lower NODE, then the lower TOCK (as the servers decide). */
static bool rec_before(const struct rec *a, const struct rec *b)
{
	if (a->first_seen != b->first_seen)
		return a->first_seen < b->first_seen;
	size_t n = a->wlen < b->wlen ? a->wlen : b->wlen;
	int c = memcmp(a->where, b->where, n);
	return c ? c < 0 : a->wlen < b->wlen;
}

static bool same_error(const struct rec *a, const struct rec *b)
{
	return !a->bad && !b->bad && !strcmp(a->subsys, b->subsys) &&
	       path_is(&a->path, b->path.enc.data, b->path.enc.len);
}

/* Whether another record of the same error comes before rs->v[i]: two
 * nodes that met an error at once made one each. */
static bool shadowed(const struct recs *rs, size_t i)
{
	for (size_t j = 0; j < rs->n; j++)
		if (j != i && same_error(&rs->v[j], &rs->v[i]) && rec_before(&rs->v[j], &rs->v[i]))
			return true;
	return false;
}

/* ---- printing ---- */

/* "2026-11-26 09:15:32.773", local time, as the original shows dates. */
static void date_text(char *buf, size_t n, double t)
{
	time_t s = (time_t)t;
	struct tm tm;
	localtime_r(&s, &tm);
	size_t k = strftime(buf, n, "%Y-%m-%d %H:%M:%S", &tm);
	int ms = (int)((t - (double)s) * 1000);
	snprintf(buf + k, n - k, ".%03d", ms < 0 ? 0 : ms > 999 ? 999 : ms);
}

struct print_opts {
	bool drop_path;       /* -d: the path is where the record is printed */
	bool details;         /* -a: every node's details */
	const uint8_t *node;  /* -n: only this node's (element encoding); NULL: -a decides */
	size_t nlen;
	bool trace;           /* keep the details' tracebacks */
};

/* Append the map mp with a "_KEY" date after every number KEY that is
 * within a year of now (as the original's add_dates), leaving out the
 * keys in skip, plus extra pairs (already encoded, nextra of them). */
static void map_with_dates(struct dkv_buf *out, const uint8_t *mp, size_t len,
			   const char *const *skip, const struct dkv_buf *extra, uint32_t nextra)
{
	struct dkv_mp_reader r;
	struct dkv_mp_item it, k, v;
	struct dkv_buf body = {0};
	uint32_t n = 0;
	double now = (double)time(NULL), year = 366 * 86400.0;
	dkv_mp_reader_init(&r, mp, len);
	if (!dkv_mp_read(&r, &it) && it.type == DKV_MP_MAP) {
		for (uint32_t i = 0; i < it.v.n; i++) {
			const uint8_t *start = r.p;
			struct dkv_mp_reader kr = r, vr;
			if (dkv_mp_read(&kr, &k) || dkv_mp_skip(&r))
				break;
			vr = r;
			if (dkv_mp_read(&vr, &v) || dkv_mp_skip(&r))
				break;
			bool drop = false;
			for (const char *const *s = skip; s && *s && !drop; s++)
				drop = dkv_mp_streq(&k, *s);
			if (drop)
				continue;
			dkv_buf_append(&body, start, (size_t)(r.p - start));
			n++;
			double t = v.type == DKV_MP_FLOAT ? v.v.f : v.type == DKV_MP_UINT ? (double)v.v.u : 0;
			if (k.type == DKV_MP_STR && k.v.s.len && k.v.s.p[0] != '_' && t &&
			    t >= now - year && t <= now + year) {
				char key[80], date[64];
				snprintf(key, sizeof key, "_%.*s", (int)(k.v.s.len > 70 ? 70 : k.v.s.len),
					 (const char *)k.v.s.p);
				date_text(date, sizeof date, t);
				dkv_mp_cstr(&body, key);
				dkv_mp_cstr(&body, date);
				n++;
			}
		}
	}
	dkv_mp_map(out, n + nextra);
	dkv_buf_append(out, body.data, body.len);
	if (extra)
		dkv_buf_append(out, extra->data, extra->len);
	dkv_buf_release(&body);
}

/* The details o selects; their count. */
static uint32_t details_of(const struct rec *r, const struct print_opts *o, struct dkv_buf *out)
{
	static const char *const no_trace[] = {"trace", NULL};
	uint32_t n = 0;
	for (size_t i = 0; i < r->ndet; i++) {
		const struct detail *d = &r->det[i];
		if (o->node ? !(d->nlen == o->nlen && !memcmp(d->node, o->node, d->nlen))
			    : !o->details)
			continue;
		dkv_buf_append(out, d->node, d->nlen);
		map_with_dates(out, d->val, d->vlen, o->trace ? NULL : no_trace, NULL, 0);
		n++;
	}
	return n;
}

/* The record as printed: its fields with dates, syspath (NODE, TOCK),
 * and the details o selects as nodes: {DNODE: ...}. */
static void rec_shown(struct dkv_buf *out, const struct rec *r, const struct print_opts *o)
{
	static const char *const no_path[] = {"path", "syspath", "nodes", NULL};
	static const char *const keep_path[] = {"syspath", "nodes", NULL};
	struct dkv_buf extra = {0}, dets = {0};
	uint32_t nextra = 1;
	dkv_mp_cstr(&extra, "syspath");
	dkv_path_encode(&extra, r->where, r->wlen);
	uint32_t nd = details_of(r, o, &dets);
	if (nd) {
		dkv_mp_cstr(&extra, "nodes");
		dkv_mp_map(&extra, nd);
		dkv_buf_append(&extra, dets.data, dets.len);
		nextra++;
	}
	map_with_dates(out, r->val, r->vlen, o->drop_path ? no_path : keep_path, &extra, nextra);
	dkv_buf_release(&extra);
	dkv_buf_release(&dets);
}

/* ---- the nested mapping of "list -d KEY" ---- */

struct tnode {
	uint8_t *key;  /* an element's encoding */
	size_t klen;
	uint8_t *val;  /* NULL: none */
	size_t vlen;
	struct tnode *kids;
	size_t nkids;
};

static void tnode_release(struct tnode *t)
{
	for (size_t i = 0; i < t->nkids; i++)
		tnode_release(&t->kids[i]);
	free(t->kids);
	free(t->key);
	free(t->val);
}

static struct tnode *tnode_child(struct tnode *t, const uint8_t *key, size_t klen)
{
	for (size_t i = 0; i < t->nkids; i++)
		if (t->kids[i].klen == klen && !memcmp(t->kids[i].key, key, klen))
			return &t->kids[i];
	t->kids = dkv_xrealloc(t->kids, (t->nkids + 1) * sizeof *t->kids);
	struct tnode *c = &t->kids[t->nkids++];
	memset(c, 0, sizeof *c);
	c->key = dup_bytes(key, klen);
	c->klen = klen;
	return c;
}

/* NEEDSWORK: as in data.c, a path element equal to KEY collides with the
 * record in the output mapping. */
static void tnode_encode(struct dkv_buf *out, const struct tnode *t, const char *vkey)
{
	dkv_mp_map(out, (uint32_t)(t->nkids + (t->val ? 1 : 0)));
	if (t->val) {
		dkv_mp_cstr(out, vkey);
		dkv_buf_append(out, t->val, t->vlen);
	}
	for (size_t i = 0; i < t->nkids; i++) {
		dkv_buf_append(out, t->kids[i].key, t->kids[i].klen);
		tnode_encode(out, &t->kids[i], vkey);
	}
}

/* ---- naming a record ---- */

/* A TOCK word: a plain number, or colon notation. */
static int parse_tock(struct dkv__cli_ctx *x, const char *w, struct dkv_buf *out)
{
	long v;
	if (dkv__cli_parse_int(w, &v) == 0 && v >= 0) {
		dkv_mp_int(out, v);
		return 0;
	}
	return dkv__cli_parse_path(x, 1, (char **)&w, out);
}

/* What a command names: NODE TOCK, or -s SUBSYSTEM PATH... */
struct target {
	const char *subsys;  /* -s; NULL: where */
	struct dkv_buf where; /* NODE TOCK */
	struct dkv_buf path;  /* PATH */
};

static int parse_target(struct dkv__cli_ctx *x, struct target *t, int argc, char **argv)
{
	if (t->subsys)
		return dkv__cli_parse_path(x, argc, argv, &t->path);
	if (argc != 2)
		return dkv__cli_usage_error(x, "%s", "name the error: NODE TOCK, or -s SUBSYSTEM PATH...");
	int rc = dkv__cli_parse_path(x, 1, argv, &t->where);
	return rc ? rc : parse_tock(x, argv[1], &t->where);
}

static bool is_target(const struct rec *r, const struct target *t)
{
	if (!t->subsys)
		return r->wlen == t->where.len && !memcmp(r->where, t->where.data, r->wlen);
	return !r->bad && !strcmp(r->subsys, t->subsys) &&
	       path_is(&r->path, t->path.data, t->path.len);
}

static int no_target(struct dkv__cli_ctx *x, const struct target *t, int argc, char **argv)
{
	char *w = dkv__cli_words_text(argc, argv, ":");
	if (t->subsys)
		fprintf(stderr, "%s: no error of %s at %s\n", x->cli->progname, t->subsys, w);
	else
		fprintf(stderr, "%s: no error record at %s\n", x->cli->progname, w);
	free(w);
	return 1;
}

static void target_release(struct target *t)
{
	dkv_buf_release(&t->where);
	dkv_buf_release(&t->path);
}

/* The full path of r: (".distkv", "error", NODE, TOCK). */
static void rec_path(struct dkv_buf *out, const struct rec *r)
{
	dkv_buf_append(out, ERR_ROOT, sizeof ERR_ROOT);
	dkv_buf_append(out, r->where, r->wlen);
}

/* ---- error list ---- */

struct list_args {
	const char *as_dict, *node, *subsys;
	bool all, resolved;
};

static int cmd_list(struct dkv__cli_ctx *x, int argc, char **argv)
{
	struct list_args a = {0};
	const struct dkv__cli_opt opts[] = {
		{.name = "as-dict", .letter = 'd', .arg = "KEY", .str = &a.as_dict,
		 .help = "one mapping, by subsystem and path, each record\n"
			 "under KEY (the tutorial's -d_)"},
		{.name = "all", .letter = 'a', .flag = &a.all,
		 .help = "add every node's details (without tracebacks)"},
		{.name = "node", .letter = 'n', .arg = "NODE", .str = &a.node,
		 .help = "only errors NODE saw, with NODE's details"},
		{.name = "subsystem", .letter = 's', .arg = "SUBSYS", .str = &a.subsys,
		 .help = "only errors of this subsystem (run, type, ...)"},
		{.name = "resolved", .letter = 'r', .flag = &a.resolved,
		 .help = "the resolved errors instead of the open ones"},
		{NULL},
	};
	int rc = dkv__cli_options(x, opts, argc, argv);
	if (rc >= 0)
		return rc;
	struct dkv_buf prefix = {0}, node = {0}, out = {0};
	struct recs rs = {0};
	struct tnode root = {0};
	rc = dkv__cli_parse_path(x, argc - optind, argv + optind, &prefix);
	if (!rc && a.node)
		rc = dkv__cli_parse_path(x, 1, (char **)&a.node, &node);
	if (!rc)
		rc = fetch(x, &rs);
	if (rc)
		goto out;
	struct print_opts po = {
		.drop_path = a.as_dict != NULL,
		.details = a.all,
		.node = a.node ? node.data : NULL,
		.nlen = node.len,
	};
	for (size_t i = 0; i < rs.n; i++) {
		const struct rec *r = &rs.v[i];
		if (r->bad) {
			note_bad(x, r);
			continue;
		}
		if (a.as_dict && shadowed(&rs, i))
			continue;
		if ((a.subsys && strcmp(r->subsys, a.subsys)) || r->resolved != a.resolved ||
		    !starts_with(&r->path, prefix.data, prefix.len))
			continue;
		if (a.node) {
			struct dkv_buf seen = {0};
			uint32_t nd = details_of(r, &po, &seen);
			dkv_buf_release(&seen);
			if (!nd)
				continue;
		}
		out.len = 0;
		rec_shown(&out, r, &po);
		if (!a.as_dict) {
			fputs("---\n", stdout);
			if ((rc = dkv__cli_print_yaml(x, out.data, out.len)))
				goto out;
			continue;
		}
		/* -d: under subsystem (unless -s), then the path below PATH */
		struct tnode *t = &root;
		if (!a.subsys) {
			struct dkv_buf s = {0};
			dkv_mp_cstr(&s, r->subsys);
			t = tnode_child(t, s.data, s.len);
			dkv_buf_release(&s);
		}
		struct dkv_path_iter it;
		const uint8_t *e;
		size_t elen;
		if (r->path.enc.len > prefix.len) {
			dkv_path_iter_init(&it, r->path.enc.data + prefix.len,
					   r->path.enc.len - prefix.len);
			while (dkv_path_iter_next(&it, &e, &elen))
				t = tnode_child(t, e, elen);
		}
		if (t->val) /* two records of one error: the one wins (shadowed) */
			free(t->val);
		t->val = dup_bytes(out.data, out.len);
		t->vlen = out.len;
	}
	if (a.as_dict) {
		out.len = 0;
		tnode_encode(&out, &root, a.as_dict);
		rc = dkv__cli_print_yaml(x, out.data, out.len);
	}
out:
	tnode_release(&root);
	recs_release(&rs);
	dkv_buf_release(&prefix);
	dkv_buf_release(&node);
	dkv_buf_release(&out);
	return rc;
}

static const struct dkv__cli_cmd list_cmd = {
	.name = "list", .run = cmd_list, .summary = "list the errors",
	.usage = "error list [-d KEY] [-a] [-n NODE] [-s SUBSYS] [-r] [PATH...]",
	.about = "Print the open errors (with -r, the resolved ones) whose path starts\n"
		 "with PATH, one YAML document each; with -d KEY, one mapping by\n"
		 "subsystem and path (PATH left off), each record under KEY.  Each\n"
		 "record gets its syspath (NODE TOCK, which names it for get, resolve\n"
		 "and delete) and a readable date beside each time.\n",
	.help_col = 26,
};

/* ---- error get ---- */

/* -s and the target's words: -1 when the command goes on, else its exit
 * status (0 after --help). */
static int target_opts(struct dkv__cli_ctx *x, struct target *t, int argc, char **argv,
		       const char *subsys_help)
{
	const struct dkv__cli_opt opts[] = {
		{.name = "subsystem", .letter = 's', .arg = "SUBSYS", .str = &t->subsys,
		 .help = subsys_help},
		{NULL},
	};
	int rc = dkv__cli_options(x, opts, argc, argv);
	if (rc >= 0)
		return rc;
	rc = parse_target(x, t, argc - optind, argv + optind);
	return rc ? rc : -1;
}

static int cmd_get(struct dkv__cli_ctx *x, int argc, char **argv)
{
	struct target t = {0};
	struct recs rs = {0};
	struct dkv_buf out = {0};
	size_t shown = 0;
	int rc = target_opts(x, &t, argc, argv, "name the error by its subsystem and PATH");
	if (rc >= 0)
		goto out;
	if ((rc = fetch(x, &rs)))
		goto out;
	struct print_opts po = {.details = true, .trace = true};
	size_t found = 0;
	for (size_t i = 0; i < rs.n; i++)
		found += is_target(&rs.v[i], &t) && rs.v[i].val;
	for (size_t i = 0; i < rs.n; i++) {
		const struct rec *r = &rs.v[i];
		if (!is_target(r, &t))
			continue;
		shown++;
		if (found > 1)
			fputs("---\n", stdout);
		out.len = 0;
		if (r->bad) {
			note_bad(x, r);
			if (!r->val)
				continue;
			dkv_buf_append(&out, r->val, r->vlen); /* as it is */
		} else {
			rec_shown(&out, r, &po);
		}
		if ((rc = dkv__cli_print_yaml(x, out.data, out.len)))
			goto out;
	}
	if (!shown)
		rc = no_target(x, &t, argc - optind, argv + optind);
out:
	target_release(&t);
	recs_release(&rs);
	dkv_buf_release(&out);
	return rc;
}

static const struct dkv__cli_cmd get_cmd = {
	.name = "get", .run = cmd_get, .summary = "print one error with every node's details",
	.usage = "error get NODE TOCK | error get -s SUBSYS PATH...",
	.about = "Print the error record at NODE TOCK (its syspath), or the one of\n"
		 "SUBSYS at PATH, with every node's details, tracebacks included.\n",
	.help_col = 26,
};

/* ---- error resolve ---- */

/* Append the pairs of the map m[0..n) whose key is not in skip
 * (NULL-terminated); returns how many. */
static uint32_t copy_except(struct dkv_buf *out, const uint8_t *m, size_t n,
			    const char *const *skip)
{
	struct dkv_mp_reader rd;
	struct dkv_mp_item it, k;
	uint32_t kept = 0;
	dkv_mp_reader_init(&rd, m, n);
	if (dkv_mp_read(&rd, &it) || it.type != DKV_MP_MAP)
		return 0;
	for (uint32_t i = 0; i < it.v.n; i++) {
		const uint8_t *start = rd.p;
		struct dkv_mp_reader kr = rd;
		bool drop = false;
		if (dkv_mp_read(&kr, &k) || dkv_mp_skip(&rd) || dkv_mp_skip(&rd))
			break;
		for (const char *const *sk = skip; *sk && !drop; sk++)
			drop = dkv_mp_streq(&k, *sk);
		if (!drop) {
			dkv_buf_append(out, start, (size_t)(rd.p - start));
			kept++;
		}
	}
	return kept;
}

/* The server's tock now.  0 or 1. */
static int server_tock(struct dkv__cli_ctx *x, int64_t *tock)
{
	struct dkv__cli_req q;
	struct dkv_buf rep = {0};
	dkv__cli_req_init(&q, "get_tock");
	int rc = dkv__cli_call(x, &q, &rep);
	if (!rc && dkv_client_field_int(rep.data, rep.len, "tock", tock) < 0) {
		fprintf(stderr, "%s: the server's get_tock answer has no tock\n", x->cli->progname);
		rc = 1;
	}
	dkv__cli_req_release(&q);
	dkv_buf_release(&rep);
	return rc;
}

/* Set resolved on r, on the condition that nobody changed it since it
 * was read (its chain, read again here).  0 or 1. */
static int resolve_one(struct dkv__cli_ctx *x, const struct rec *r, int64_t tock)
{
	static const char *const skip[] = {"resolved", NULL};
	struct dkv__cli_req q;
	struct dkv_buf path = {0}, rep = {0}, body = {0}, val = {0};
	const uint8_t *v, *chain;
	size_t vlen, clen;
	rec_path(&path, r);
	dkv__cli_req_init(&q, "get_value");
	dkv__cli_req_path(&q, &path);
	dkv__cli_req_int(&q, "nchain", 1);
	int rc = dkv__cli_call(x, &q, &rep);
	dkv__cli_req_release(&q);
	if (rc)
		goto out;
	if (dkv_client_field(rep.data, rep.len, "value", &v, &vlen) < 0 ||
	    dkv_client_field(rep.data, rep.len, "chain", &chain, &clen) < 0) {
		fprintf(stderr, "%s: the record went away meanwhile\n", x->cli->progname);
		rc = 1;
		goto out;
	}
	uint32_t kept = copy_except(&body, v, vlen, skip);
	dkv_mp_map(&val, kept + 1);
	dkv_buf_append(&val, body.data, body.len);
	dkv_mp_cstr(&val, "resolved");
	dkv_mp_int(&val, tock);
	dkv__cli_req_init(&q, "set_value");
	dkv__cli_req_path(&q, &path);
	dkv_buf_append(dkv__cli_req_key(&q, "value"), val.data, val.len);
	dkv_buf_append(dkv__cli_req_key(&q, "chain"), chain, clen);
	rc = dkv__cli_call(x, &q, NULL);
	dkv__cli_req_release(&q);
out:
	dkv_buf_release(&path);
	dkv_buf_release(&rep);
	dkv_buf_release(&body);
	dkv_buf_release(&val);
	return rc;
}

static int cmd_resolve(struct dkv__cli_ctx *x, int argc, char **argv)
{
	struct target t = {0};
	struct recs rs = {0};
	size_t found = 0, done = 0;
	int64_t tock = 0;
	int rc = target_opts(x, &t, argc, argv, "name the error by its subsystem and PATH");
	if (rc >= 0) {
		target_release(&t);
		return rc;
	}
	rc = fetch(x, &rs);
	for (size_t i = 0; !rc && i < rs.n; i++) {
		const struct rec *r = &rs.v[i];
		if (!is_target(r, &t))
			continue;
		found++;
		if (r->bad) {
			note_bad(x, r);
			continue;
		}
		if (r->resolved)
			continue;
		if (!tock && (rc = server_tock(x, &tock)))
			break;
		if (!(rc = resolve_one(x, r, tock)))
			done++;
	}
	if (!rc && !found)
		rc = no_target(x, &t, argc - optind, argv + optind);
	else if (!rc && !done)
		fprintf(stderr, "Already resolved.\n");
	target_release(&t);
	recs_release(&rs);
	return rc;
}

static const struct dkv__cli_cmd resolve_cmd = {
	.name = "resolve", .run = cmd_resolve, .summary = "mark an error as resolved",
	.usage = "error resolve NODE TOCK | error resolve -s SUBSYS PATH...",
	.about = "Mark the error at NODE TOCK, or the one of SUBSYS at PATH, as resolved:\n"
		 "its record keeps everything and gets resolved: TOCK (the server's\n"
		 "tock now), so that list shows it only with -r.  A new occurrence\n"
		 "opens it again.\n",
	.help_col = 26,
};

/* ---- error delete ---- */

static int delete_one(struct dkv__cli_ctx *x, const struct rec *r)
{
	struct dkv__cli_req q;
	struct dkv_buf path = {0};
	rec_path(&path, r);
	dkv__cli_req_init(&q, "delete_tree");
	dkv__cli_req_path(&q, &path);
	int rc = dkv__cli_call(x, &q, NULL);
	dkv__cli_req_release(&q);
	dkv_buf_release(&path);
	return rc;
}

static int cmd_delete(struct dkv__cli_ctx *x, int argc, char **argv)
{
	struct target t = {0};
	struct recs rs = {0};
	bool resolved = false;
	size_t found = 0;
	const struct dkv__cli_opt opts[] = {
		{.name = "subsystem", .letter = 's', .arg = "SUBSYS", .str = &t.subsys,
		 .help = "name the error by its subsystem and PATH"},
		{.name = "resolved", .letter = 'r', .flag = &resolved,
		 .help = "delete every resolved error (at or below PATH,\n"
			 "of SUBSYS when given)"},
		{NULL},
	};
	int rc = dkv__cli_options(x, opts, argc, argv);
	if (rc >= 0)
		return rc;
	if (resolved)
		rc = dkv__cli_parse_path(x, argc - optind, argv + optind, &t.path);
	else
		rc = parse_target(x, &t, argc - optind, argv + optind);
	if (!rc)
		rc = fetch(x, &rs);
	for (size_t i = 0; !rc && i < rs.n; i++) {
		const struct rec *r = &rs.v[i];
		bool hit;
		if (resolved)
			hit = !r->bad && r->resolved && (!t.subsys || !strcmp(r->subsys, t.subsys)) &&
			      starts_with(&r->path, t.path.data, t.path.len);
		else
			hit = is_target(r, &t);
		if (hit) {
			found++;
			rc = delete_one(x, r);
		}
	}
	if (!rc && !found && !resolved)
		rc = no_target(x, &t, argc - optind, argv + optind);
	target_release(&t);
	recs_release(&rs);
	return rc;
}

static const struct dkv__cli_cmd delete_cmd = {
	.name = "delete", .run = cmd_delete, .summary = "delete errors",
	.usage = "error delete NODE TOCK | error delete -s SUBSYS PATH... |\n"
		 "       error delete -r [-s SUBSYS] [PATH...]",
	.about = "Delete the error record at NODE TOCK, or the one of SUBSYS at PATH,\n"
		 "with its details; with -r, every resolved error whose path starts\n"
		 "with PATH.\n",
	.help_col = 26,
};

const struct dkv__cli_cmd *const dkv__cli_error_cmds[] = {
	&list_cmd, &get_cmd, &resolve_cmd, &delete_cmd, NULL,
};
