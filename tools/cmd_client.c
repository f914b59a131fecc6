/*
 * cmd_client.c - "distkv client": the data and internal commands.
 *
 * Each command parses its options, turns the remaining words into a path
 * (one word per element, colon notation), sends one request over a
 * blocking connection and prints the answer as YAML.  Output formats are
 * described in doc/cli.md.
 *
 * Exit status: 0 success, 1 failure (server error, unreachable server),
 * 2 bad usage.  The connection is opened only after the command line has
 * been checked, so "--help" and usage errors never need a server.
 */
#include "cli.h"

#include "client.h"
#include "config.h"
#include "path.h"
#include "pathtext.h"
#include "py.h"
#include "yaml.h"

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXIT_USAGE 2

struct ctx {
	struct dkv_cli *cli;
	const char *cmdname; /* "distkv client" or "dkv", for usage lines */
	const char *host;
	unsigned port;
	struct dkv_client *conn;
};

/* ---- small helpers ---- */

/* fmt NULL: getopt has already said what is wrong. */
static int usage_error(struct ctx *x, const char *usage, const char *fmt, const char *arg)
{
	if (fmt) {
		fprintf(stderr, "%s: ", x->cli->progname);
		fprintf(stderr, fmt, arg);
		fputc('\n', stderr);
	}
	fprintf(stderr, "usage: %s %s\n", x->cmdname, usage);
	return EXIT_USAGE;
}

static int help(struct ctx *x, const char *usage, const char *text)
{
	printf("usage: %s %s\n\n%s", x->cmdname, usage, text);
	return 0;
}

static int ctx_connect(struct ctx *x)
{
	char err[600];
	double timeout = dkv_config_float(x->cli->cfg, "connect.init_timeout", 5);
	if (dkv_client_connect(&x->conn, x->host, x->port, timeout, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: %s\n", x->cli->progname, err);
		return 1;
	}
	return 0;
}

/* Report a failed request: the server's own words, or what went wrong
 * with the connection. */
static int request_failed(struct ctx *x, int r)
{
	if (r == -EREMOTEIO)
		fprintf(stderr, "%s\n", dkv_client_errmsg(x->conn));
	else
		fprintf(stderr, "%s: %s:%u: %s\n", x->cli->progname, x->host, x->port,
			dkv_client_errmsg(x->conn));
	return 1;
}

/* The exit status for a request's outcome: -EIO was already reported. */
static int request_status(struct ctx *x, int r)
{
	if (r >= 0)
		return 0;
	return r == -EIO ? 1 : request_failed(x, r);
}

/* Turn command-line words into a path (element encodings back to back). */
static int parse_path(struct ctx *x, int argc, char **argv, struct dkv_buf *enc)
{
	for (int i = 0; i < argc; i++) {
		if (dkv_pathtext_parse(enc, argv[i], strlen(argv[i]), 0) < 0) {
			fprintf(stderr,
				"%s: bad path element '%s': not valid colon notation (see doc/cli.md)\n",
				x->cli->progname, argv[i]);
			return EXIT_USAGE;
		}
	}
	return 0;
}

static void put_path(struct dkv_buf *req, const struct dkv_buf *path)
{
	dkv_mp_cstr(req, "path");
	dkv_path_encode(req, path->data, path->len);
}

static void put_bool(struct dkv_buf *req, const char *key, bool v)
{
	dkv_mp_cstr(req, key);
	dkv_mp_bool(req, v);
}

static void put_int(struct dkv_buf *req, const char *key, int64_t v)
{
	dkv_mp_cstr(req, key);
	dkv_mp_int(req, v);
}

static int parse_int(const char *s, long *v)
{
	char *end;
	errno = 0;
	*v = strtol(s, &end, 10);
	return (errno || end == s || *end) ? -EINVAL : 0;
}

/* Print the msgpack item mp[0..len) as one YAML document. */
static int print_yaml(struct ctx *x, const uint8_t *mp, size_t len)
{
	struct dkv_buf out = {0};
	int r = dkv_yaml_emit(&out, mp, len);
	if (r == 0)
		fwrite(out.data, 1, out.len, stdout);
	else
		fprintf(stderr, "%s: cannot show the server's answer as YAML\n", x->cli->progname);
	dkv_buf_release(&out);
	return r < 0 ? 1 : 0;
}

/* Keys of a reply that describe the transport, not the data. */
static bool is_transport_key(const struct dkv_mp_item *k)
{
	return dkv_mp_streq(k, "seq") || dkv_mp_streq(k, "wseq") || dkv_mp_streq(k, "depth") ||
	       dkv_mp_streq(k, "path");
}

/* Append to out the pairs of the map m[0..n) whose key passes keep();
 * returns how many. */
static uint32_t copy_pairs(struct dkv_buf *out, const uint8_t *m, size_t n,
			   bool (*keep)(const struct dkv_mp_item *k))
{
	struct dkv_mp_reader r;
	struct dkv_mp_item it;
	uint32_t count = 0;
	dkv_mp_reader_init(&r, m, n);
	if (dkv_mp_read(&r, &it) < 0 || it.type != DKV_MP_MAP)
		return 0;
	for (uint32_t i = 0; i < it.v.n; i++) {
		const uint8_t *start = r.p;
		struct dkv_mp_reader kr = r;
		struct dkv_mp_item k;
		if (dkv_mp_read(&kr, &k) < 0 || dkv_mp_skip(&r) < 0 || dkv_mp_skip(&r) < 0)
			break;
		if (keep(&k)) {
			dkv_buf_append(out, start, (size_t)(r.p - start));
			count++;
		}
	}
	return count;
}

static bool keep_not_seq(const struct dkv_mp_item *k)
{
	return !dkv_mp_streq(k, "seq");
}

static bool keep_data(const struct dkv_mp_item *k)
{
	return !is_transport_key(k);
}

static bool keep_value(const struct dkv_mp_item *k)
{
	return dkv_mp_streq(k, "value");
}

/* Print a reply map without its seq. */
static int print_reply(struct ctx *x, const uint8_t *m, size_t n)
{
	struct dkv_buf body = {0}, doc = {0};
	uint32_t cnt = copy_pairs(&body, m, n, keep_not_seq);
	dkv_mp_map(&doc, cnt);
	dkv_buf_append(&doc, body.data, body.len);
	int rc = print_yaml(x, doc.data, doc.len);
	dkv_buf_release(&body);
	dkv_buf_release(&doc);
	return rc;
}

/* ---- rebuilding full paths from depth-compressed replies ---- */

/* Replies of get_tree, watch and delete_tree carry only the part of their
 * path that differs from the previous reply's: keep the first `depth`
 * elements of the previous (relative) path and append `path`. */
struct longener {
	struct dkv_buf enc; /* the current path relative to the request's */
	size_t *offs;       /* offs[i]: where element i starts in enc */
	uint32_t n, cap;
	uint32_t kept;      /* elements kept from the previous path */
};

static void longener_release(struct longener *l)
{
	dkv_buf_release(&l->enc);
	free(l->offs);
}

/* 0, or -ENOENT when the reply has no path (state messages). */
static int longener_apply(struct longener *l, const uint8_t *m, size_t n)
{
	const uint8_t *p;
	size_t plen;
	int64_t depth = 0;
	if (dkv_client_field(m, n, "path", &p, &plen) < 0)
		return -ENOENT;
	if (dkv_client_field_int(m, n, "depth", &depth) < 0 || depth < 0)
		depth = 0;
	if ((uint64_t)depth > l->n)
		depth = l->n; /* only a broken server says this; keep what we have */
	l->n = (uint32_t)depth;
	l->kept = l->n;
	l->enc.len = l->n ? l->offs[l->n] : 0;

	struct dkv_path tail;
	struct dkv_mp_reader r;
	dkv_path_init(&tail);
	dkv_mp_reader_init(&r, p, plen);
	int rc = dkv_path_decode(&tail, &r);
	if (rc == 0) {
		struct dkv_path_iter it;
		const uint8_t *e;
		size_t elen;
		dkv_path_iter_init(&it, tail.enc.data, tail.enc.len);
		while (dkv_path_iter_next(&it, &e, &elen)) {
			if (l->n + 2 > l->cap) {
				l->cap = l->cap ? 2 * l->cap : 16;
				l->offs = dkv_xrealloc(l->offs, l->cap * sizeof(*l->offs));
			}
			l->offs[l->n] = l->enc.len;
			dkv_buf_append(&l->enc, e, elen);
			l->n++;
		}
	}
	if (l->cap == 0) {
		l->cap = 16;
		l->offs = dkv_xrealloc(l->offs, l->cap * sizeof(*l->offs));
	}
	l->offs[l->n] = l->enc.len; /* so that offs[depth] is the cut point */
	dkv_path_release(&tail);
	return rc;
}

/* A YAML document for one entry: {path: <full path>, value: ...}, with
 * -m also the chain and tock. */
static int print_entry(struct ctx *x, const struct dkv_buf *prefix, const struct longener *l,
		       const uint8_t *m, size_t n, bool meta)
{
	struct dkv_buf full = {0}, body = {0}, doc = {0};
	dkv_buf_append(&full, prefix->data, prefix->len);
	dkv_buf_append(&full, l->enc.data, l->enc.len);
	uint32_t cnt = copy_pairs(&body, m, n, meta ? keep_data : keep_value);
	dkv_mp_map(&doc, cnt + 1);
	dkv_mp_cstr(&doc, "path");
	dkv_path_encode(&doc, full.data, full.len);
	dkv_buf_append(&doc, body.data, body.len);
	fputs("---\n", stdout);
	int rc = print_yaml(x, doc.data, doc.len);
	dkv_buf_release(&full);
	dkv_buf_release(&body);
	dkv_buf_release(&doc);
	return rc;
}

/* ---- the nested mapping of "get -r -d KEY" ---- */

struct tnode {
	uint8_t *key; /* the element's encoding */
	size_t klen;
	uint8_t *val; /* NULL: no value */
	size_t vlen;
	struct tnode **kids;
	size_t nkids, cap;
};

static void tnode_free(struct tnode *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nkids; i++)
		tnode_free(t->kids[i]);
	free(t->kids);
	free(t->key);
	free(t->val);
	free(t);
}

/* The child with this key.  Replies come in depth-first order, so a key
 * seen before under this parent can only be its most recent child. */
static struct tnode *tnode_child(struct tnode *t, const uint8_t *key, size_t klen)
{
	if (t->nkids) {
		struct tnode *last = t->kids[t->nkids - 1];
		if (last->klen == klen && !memcmp(last->key, key, klen))
			return last;
	}
	struct tnode *c = dkv_xcalloc(1, sizeof(*c));
	c->key = dkv_xmalloc(klen ? klen : 1);
	memcpy(c->key, key, klen);
	c->klen = klen;
	if (t->nkids == t->cap) {
		t->cap = t->cap ? 2 * t->cap : 4;
		t->kids = dkv_xrealloc(t->kids, t->cap * sizeof(*t->kids));
	}
	t->kids[t->nkids++] = c;
	return c;
}

/* NEEDSWORK: a child whose name is the value key itself (a string "_"
 * under -d _) collides with the value in the output mapping; and a tree
 * nested deeper than DKV_MP_MAX_DEPTH cannot be shown this way. */
static void tnode_encode(struct dkv_buf *out, const struct tnode *t, const char *vkey)
{
	dkv_mp_map(out, (uint32_t)(t->nkids + (t->val ? 1 : 0)));
	if (t->val) {
		dkv_mp_cstr(out, vkey);
		dkv_buf_append(out, t->val, t->vlen);
	}
	for (size_t i = 0; i < t->nkids; i++) {
		dkv_buf_append(out, t->kids[i]->key, t->kids[i]->klen);
		tnode_encode(out, t->kids[i], vkey);
	}
}

/* ---- data get ---- */

struct get_opts {
	const char *action; /* get_tree or get_tree_internal */
	const char *as_dict;
	bool meta, empty;
	long mindepth, maxdepth; /* -1: not given */
};

struct tree_state {
	struct ctx *x;
	const struct get_opts *o;
	const struct dkv_buf *prefix;
	struct longener l;
	struct tnode *root;
	struct tnode **stack; /* stack[i]: node of the path's first i elements */
	size_t stack_cap;
};

static int tree_cb(void *arg, const uint8_t *m, size_t n)
{
	struct tree_state *s = arg;
	if (longener_apply(&s->l, m, n) < 0)
		return 0;
	if (!s->o->as_dict)
		return print_entry(s->x, s->prefix, &s->l, m, n, s->o->meta) ? -EIO : 0;

	if (s->stack_cap < (size_t)s->l.n + 1) {
		s->stack_cap = (size_t)s->l.n + 16;
		s->stack = dkv_xrealloc(s->stack, s->stack_cap * sizeof(*s->stack));
	}
	s->stack[0] = s->root;
	for (uint32_t i = s->l.kept; i < s->l.n; i++) {
		size_t off = s->l.offs[i], end = s->l.offs[i + 1];
		s->stack[i + 1] = tnode_child(s->stack[i], s->l.enc.data + off, end - off);
	}
	struct tnode *t = s->stack[s->l.n];
	const uint8_t *v;
	size_t vlen;
	struct dkv_buf val = {0};
	if (s->o->meta) {
		uint32_t cnt = copy_pairs(&val, m, n, keep_data);
		struct dkv_buf hdr = {0};
		dkv_mp_map(&hdr, cnt);
		dkv_buf_append(&hdr, val.data, val.len);
		dkv_buf_release(&val);
		val = hdr;
	} else if (dkv_client_field(m, n, "value", &v, &vlen) == 0) {
		dkv_buf_append(&val, v, vlen);
	} else if (s->o->empty) {
		dkv_mp_nil(&val);
	} else {
		return 0;
	}
	free(t->val);
	t->val = dkv_buf_detach(&val, &t->vlen);
	return 0;
}

static int get_recursive(struct ctx *x, const struct get_opts *o, const struct dkv_buf *path)
{
	struct dkv_buf req = {0};
	uint32_t nf = 2;
	dkv_mp_cstr(&req, "action");
	dkv_mp_cstr(&req, o->action);
	put_path(&req, path);
	if (o->meta) {
		put_int(&req, "nchain", 3);
		nf++;
	}
	if (o->empty) {
		put_bool(&req, "empty", true);
		nf++;
	}
	if (o->mindepth >= 0) {
		put_int(&req, "min_depth", o->mindepth);
		nf++;
	}
	if (o->maxdepth >= 0) {
		put_int(&req, "max_depth", o->maxdepth);
		nf++;
	}

	struct tree_state s = {.x = x, .o = o, .prefix = path};
	if (o->as_dict)
		s.root = dkv_xcalloc(1, sizeof(*s.root));
	int rc = 0;
	int r = dkv_client_stream(x->conn, req.data, req.len, nf, tree_cb, &s);
	rc = request_status(x, r);
	if (!rc && o->as_dict) {
		struct dkv_buf out = {0};
		tnode_encode(&out, s.root, o->as_dict);
		rc = print_yaml(x, out.data, out.len);
		dkv_buf_release(&out);
	}
	tnode_free(s.root);
	free(s.stack);
	longener_release(&s.l);
	dkv_buf_release(&req);
	return rc;
}

static int get_single(struct ctx *x, bool meta, const struct dkv_buf *path)
{
	struct dkv_buf req = {0}, rep = {0};
	uint32_t nf = 2;
	dkv_mp_cstr(&req, "action");
	dkv_mp_cstr(&req, "get_value");
	put_path(&req, path);
	if (meta) {
		put_int(&req, "nchain", 3);
		nf++;
	}
	int rc = 0;
	int r = dkv_client_call(x->conn, req.data, req.len, nf, &rep);
	if (r < 0) {
		rc = request_failed(x, r);
	} else if (meta) {
		rc = print_reply(x, rep.data, rep.len);
	} else {
		const uint8_t *v;
		size_t vlen;
		if (dkv_client_field(rep.data, rep.len, "value", &v, &vlen) == 0)
			rc = print_yaml(x, v, vlen);
		else if (x->cli->verbose > 0)
			fprintf(stderr, "%s: no value\n", x->cli->progname);
	}
	dkv_buf_release(&req);
	dkv_buf_release(&rep);
	return rc;
}

static const char get_usage[] =
	"data get [-r] [-d KEY] [-m] [-e] [--mindepth N] [--maxdepth N] [PATH...]";

static int cmd_get(struct ctx *x, int argc, char **argv)
{
	static const struct option lo[] = {
		{"recursive", no_argument, NULL, 'r'},
		{"as-dict", required_argument, NULL, 'd'},
		{"meta", no_argument, NULL, 'm'},
		{"empty", no_argument, NULL, 'e'},
		{"mindepth", required_argument, NULL, 'N'},
		{"maxdepth", required_argument, NULL, 'M'},
		{"help", no_argument, NULL, 'H'},
		{NULL, 0, NULL, 0},
	};
	struct get_opts o = {.action = "get_tree", .mindepth = -1, .maxdepth = -1};
	bool recursive = false;
	int ch;
	dkv_cli_getopt_reset();
	while ((ch = getopt_long(argc, argv, "+rd:me", lo, NULL)) != -1) {
		switch (ch) {
		case 'r':
			recursive = true;
			break;
		case 'd':
			o.as_dict = optarg;
			recursive = true;
			break;
		case 'm':
			o.meta = true;
			break;
		case 'e':
			o.empty = true;
			break;
		case 'N':
		case 'M':
			if (parse_int(optarg, ch == 'N' ? &o.mindepth : &o.maxdepth) < 0)
				return usage_error(x, get_usage, "not a number: '%s'", optarg);
			recursive = true;
			break;
		case 'H':
			return help(x, get_usage,
				    "Print the value at PATH as YAML (nothing if there is none).\n\n"
				    "  -r, --recursive   the whole subtree, one YAML document per entry\n"
				    "  -d, --as-dict KEY the subtree as one nested mapping, values under KEY\n"
				    "  -m, --meta        include the chain and tock\n"
				    "  -e, --empty       with -r: include entries without a value\n"
				    "      --mindepth N  with -r: skip entries less than N levels down\n"
				    "      --maxdepth N  with -r: skip entries more than N levels down\n");
		default:
			return usage_error(x, get_usage, NULL, NULL);
		}
	}
	struct dkv_buf path = {0};
	int rc = parse_path(x, argc - optind, argv + optind, &path);
	if (rc == 0)
		rc = ctx_connect(x);
	if (rc == 0)
		rc = recursive ? get_recursive(x, &o, &path) : get_single(x, o.meta, &path);
	dkv_buf_release(&path);
	return rc;
}

/* ---- data set ---- */

static const char set_usage[] = "data set -v VALUE [-e] [-n | -l NODE TICK] [-m] PATH...";

static int cmd_set(struct ctx *x, int argc, char **argv)
{
	static const struct option lo[] = {
		{"value", required_argument, NULL, 'v'},
		{"eval", no_argument, NULL, 'e'},
		{"new", no_argument, NULL, 'n'},
		{"last", required_argument, NULL, 'l'},
		{"meta", no_argument, NULL, 'm'},
		{"help", no_argument, NULL, 'H'},
		{NULL, 0, NULL, 0},
	};
	const char *value = NULL, *last_node = NULL;
	long last_tick = 0;
	bool eval = false, is_new = false, meta = false;
	int ch;
	dkv_cli_getopt_reset();
	while ((ch = getopt_long(argc, argv, "+v:enl:m", lo, NULL)) != -1) {
		switch (ch) {
		case 'v':
			value = optarg;
			break;
		case 'e':
			eval = true;
			break;
		case 'n':
			is_new = true;
			break;
		case 'l':
			/* --last takes two words: NODE is optarg, TICK the next one. */
			last_node = optarg;
			if (optind >= argc)
				return usage_error(x, set_usage, "%s", "--last needs NODE and TICK");
			if (parse_int(argv[optind], &last_tick) < 0 || last_tick < 0)
				return usage_error(x, set_usage, "bad tick '%s'", argv[optind]);
			optind++;
			break;
		case 'm':
			meta = true;
			break;
		case 'H':
			return help(x, set_usage,
				    "Store VALUE at PATH.\n\n"
				    "  -v, --value VALUE    the value (a string unless -e is given)\n"
				    "  -e, --eval           VALUE is a Python literal: 12, True, None,\n"
				    "                       b'bytes', [1, 2], {'a': 1}, ...\n"
				    "  -n, --new            fail if the entry has a value already\n"
				    "  -l, --last NODE TICK fail unless NODE/TICK made the last change\n"
				    "  -m, --meta           print the new chain and tock\n");
		default:
			return usage_error(x, set_usage, NULL, NULL);
		}
	}
	if (!value)
		return usage_error(x, set_usage, "%s", "missing -v VALUE");
	if (is_new && last_node)
		return usage_error(x, set_usage, "%s", "--new and --last exclude each other");

	struct dkv_buf path = {0}, req = {0}, rep = {0};
	uint32_t nf = 3;
	int rc = parse_path(x, argc - optind, argv + optind, &path);
	if (rc)
		goto out;
	dkv_mp_cstr(&req, "action");
	dkv_mp_cstr(&req, "set_value");
	put_path(&req, &path);
	dkv_mp_cstr(&req, "value");
	if (eval) {
		char err[512];
		if (dkv_py_literal_eval(&req, value, err, sizeof(err)) < 0) {
			fprintf(stderr, "%s: cannot evaluate '%s': %s\n", x->cli->progname, value, err);
			rc = EXIT_USAGE;
			goto out;
		}
	} else {
		dkv_mp_cstr(&req, value);
	}
	if (is_new) {
		dkv_mp_cstr(&req, "chain");
		dkv_mp_nil(&req);
		nf++;
	} else if (last_node) {
		dkv_mp_cstr(&req, "chain");
		dkv_mp_map(&req, 2);
		dkv_mp_cstr(&req, "node");
		dkv_mp_cstr(&req, last_node);
		dkv_mp_cstr(&req, "tick");
		dkv_mp_int(&req, last_tick);
		nf++;
	}
	if (meta) {
		put_int(&req, "nchain", 3);
		nf++;
	}
	rc = ctx_connect(x);
	if (rc)
		goto out;
	int r = dkv_client_call(x->conn, req.data, req.len, nf, &rep);
	if (r < 0)
		rc = request_failed(x, r);
	else if (meta)
		rc = print_reply(x, rep.data, rep.len);
out:
	dkv_buf_release(&path);
	dkv_buf_release(&req);
	dkv_buf_release(&rep);
	if (eval)
		dkv_py_shutdown();
	return rc;
}

/* ---- data delete ---- */

struct print_state {
	struct ctx *x;
	const struct dkv_buf *prefix;
	struct longener l;
	bool meta;
};

static int delete_tree_cb(void *arg, const uint8_t *m, size_t n)
{
	struct print_state *s = arg;
	if (!s->meta)
		return 0;
	if (longener_apply(&s->l, m, n) < 0)
		return print_reply(s->x, m, n) ? -EIO : 0;
	return print_entry(s->x, s->prefix, &s->l, m, n, true) ? -EIO : 0;
}

static const char delete_usage[] = "data delete [-r] [-m] PATH...";

static int cmd_delete(struct ctx *x, int argc, char **argv)
{
	static const struct option lo[] = {
		{"recursive", no_argument, NULL, 'r'},
		{"meta", no_argument, NULL, 'm'},
		{"help", no_argument, NULL, 'H'},
		{NULL, 0, NULL, 0},
	};
	bool recursive = false, meta = false;
	int ch;
	dkv_cli_getopt_reset();
	while ((ch = getopt_long(argc, argv, "+rm", lo, NULL)) != -1) {
		switch (ch) {
		case 'r':
			recursive = true;
			break;
		case 'm':
			meta = true;
			break;
		case 'H':
			return help(x, delete_usage,
				    "Delete the value at PATH; its children stay.\n\n"
				    "  -r, --recursive  delete the values of the whole subtree\n"
				    "  -m, --meta       print the chain of each deletion\n");
		default:
			return usage_error(x, delete_usage, NULL, NULL);
		}
	}
	struct dkv_buf path = {0}, req = {0}, rep = {0};
	uint32_t nf = 2;
	int rc = parse_path(x, argc - optind, argv + optind, &path);
	if (rc)
		goto out;
	dkv_mp_cstr(&req, "action");
	dkv_mp_cstr(&req, recursive ? "delete_tree" : "delete_value");
	put_path(&req, &path);
	if (meta) {
		put_int(&req, "nchain", 3);
		nf++;
	}
	rc = ctx_connect(x);
	if (rc)
		goto out;
	int r;
	if (recursive) {
		struct print_state s = {.x = x, .prefix = &path, .meta = meta};
		r = dkv_client_stream(x->conn, req.data, req.len, nf, delete_tree_cb, &s);
		longener_release(&s.l);
	} else {
		r = dkv_client_call(x->conn, req.data, req.len, nf, &rep);
		if (r == 0 && meta)
			rc = print_reply(x, rep.data, rep.len);
	}
	if (r < 0)
		rc = request_status(x, r);
out:
	dkv_buf_release(&path);
	dkv_buf_release(&req);
	dkv_buf_release(&rep);
	return rc;
}

/* Commands whose only option is --help.  Returns -1 to go on, else the
 * exit status. */
static int help_only(struct ctx *x, int argc, char **argv, const char *usage, const char *text)
{
	static const struct option lo[] = {
		{"help", no_argument, NULL, 'H'},
		{NULL, 0, NULL, 0},
	};
	int ch;
	dkv_cli_getopt_reset();
	while ((ch = getopt_long(argc, argv, "+", lo, NULL)) != -1) {
		if (ch == 'H')
			return help(x, usage, text);
		return usage_error(x, usage, NULL, NULL);
	}
	return -1;
}

/* ---- data list ---- */

static const char list_usage[] = "data list [PATH...]";

static int cmd_list(struct ctx *x, int argc, char **argv)
{
	int hrc = help_only(x, argc, argv, list_usage,
			    "Print the names of PATH's children, one per line, in colon notation.\n");
	if (hrc >= 0)
		return hrc;
	struct dkv_buf path = {0}, req = {0}, rep = {0}, out = {0};
	int rc = parse_path(x, argc - optind, argv + optind, &path);
	if (rc)
		goto out;
	dkv_mp_cstr(&req, "action");
	dkv_mp_cstr(&req, "enum");
	put_path(&req, &path);
	put_bool(&req, "empty", true);
	rc = ctx_connect(x);
	if (rc)
		goto out;
	int r = dkv_client_call(x->conn, req.data, req.len, 3, &rep);
	if (r < 0) {
		rc = request_failed(x, r);
		goto out;
	}
	const uint8_t *res;
	size_t reslen;
	struct dkv_mp_reader rd;
	struct dkv_mp_item it;
	if (dkv_client_field(rep.data, rep.len, "result", &res, &reslen) < 0)
		goto out; /* nothing there */
	dkv_mp_reader_init(&rd, res, reslen);
	if (dkv_mp_read(&rd, &it) < 0 || it.type != DKV_MP_ARRAY) {
		fprintf(stderr, "%s: the server's answer has no list of names\n", x->cli->progname);
		rc = 1;
		goto out;
	}
	for (uint32_t i = 0; i < it.v.n; i++) {
		const uint8_t *e = rd.p;
		if (dkv_mp_skip(&rd) < 0 || dkv_pathtext_format(&out, e, (size_t)(rd.p - e), 0) < 0) {
			fprintf(stderr, "%s: the server sent a bad name\n", x->cli->progname);
			rc = 1;
			break;
		}
		dkv_buf_putc(&out, '\n');
	}
	fwrite(out.data, 1, out.len, stdout);
out:
	dkv_buf_release(&path);
	dkv_buf_release(&req);
	dkv_buf_release(&rep);
	dkv_buf_release(&out);
	return rc;
}

/* ---- data monitor ---- */

static int monitor_cb(void *arg, const uint8_t *m, size_t n)
{
	struct print_state *s = arg;
	if (longener_apply(&s->l, m, n) < 0) {
		if (s->x->cli->verbose > 0)
			fprintf(stderr, "# up to date\n");
		return 0;
	}
	int rc = print_entry(s->x, s->prefix, &s->l, m, n, s->meta);
	fflush(stdout);
	return rc ? -EIO : 0;
}

static const char monitor_usage[] = "data monitor [-f] [-m] [PATH...]";

static int cmd_monitor(struct ctx *x, int argc, char **argv)
{
	static const struct option lo[] = {
		{"fetch", no_argument, NULL, 'f'},
		{"meta", no_argument, NULL, 'm'},
		{"help", no_argument, NULL, 'H'},
		{NULL, 0, NULL, 0},
	};
	bool fetch = false, meta = false;
	int ch;
	dkv_cli_getopt_reset();
	while ((ch = getopt_long(argc, argv, "+fm", lo, NULL)) != -1) {
		switch (ch) {
		case 'f':
			fetch = true;
			break;
		case 'm':
			meta = true;
			break;
		case 'H':
			return help(x, monitor_usage,
				    "Print each change below PATH as a YAML document, until interrupted.\n\n"
				    "  -f, --fetch  first print the current entries\n"
				    "  -m, --meta   include the chain and tock\n");
		default:
			return usage_error(x, monitor_usage, NULL, NULL);
		}
	}
	struct dkv_buf path = {0}, req = {0};
	uint32_t nf = 3;
	int rc = parse_path(x, argc - optind, argv + optind, &path);
	if (rc)
		goto out;
	dkv_mp_cstr(&req, "action");
	dkv_mp_cstr(&req, "watch");
	put_path(&req, &path);
	put_bool(&req, "fetch", fetch);
	if (meta) {
		put_int(&req, "nchain", 3);
		nf++;
	}
	rc = ctx_connect(x);
	if (rc)
		goto out;
	struct print_state s = {.x = x, .prefix = &path, .meta = meta};
	int r = dkv_client_stream(x->conn, req.data, req.len, nf, monitor_cb, &s);
	longener_release(&s.l);
	if (r < 0)
		rc = request_status(x, r);
out:
	dkv_buf_release(&path);
	dkv_buf_release(&req);
	return rc;
}

/* ---- internal ---- */

static const char dump_usage[] = "internal dump [PATH...]";

static int cmd_dump(struct ctx *x, int argc, char **argv)
{
	int hrc = help_only(x, argc, argv, dump_usage,
			    "Print the internal tree below PATH as one nested mapping\n"
				    "(like \"data get -rd_\"), values under the key \"_\".\n");
	if (hrc >= 0)
		return hrc;
	struct get_opts o = {
		.action = "get_tree_internal", .as_dict = "_", .mindepth = -1, .maxdepth = -1};
	struct dkv_buf path = {0};
	int rc = parse_path(x, argc - optind, argv + optind, &path);
	if (rc == 0)
		rc = ctx_connect(x);
	if (rc == 0)
		rc = get_recursive(x, &o, &path);
	dkv_buf_release(&path);
	return rc;
}

static const char state_usage[] =
	"internal state [--nodes] [--known] [--current] [--missing] [--remote-missing] [--deleted]\n"
	"       [--log] [--cluster]";

static int cmd_state(struct ctx *x, int argc, char **argv)
{
	static const char *const flags[] = {"nodes",	      "known",	 "current", "missing",
					    "remote_missing", "deleted", "log",	  "cluster"};
	enum { NFLAGS = sizeof(flags) / sizeof(flags[0]) };
	static const struct option lo[] = {
		{"nodes", no_argument, NULL, 0},
		{"known", no_argument, NULL, 1},
		{"current", no_argument, NULL, 2},
		{"missing", no_argument, NULL, 3},
		{"remote-missing", no_argument, NULL, 4},
		{"deleted", no_argument, NULL, 5},
		{"log", no_argument, NULL, 6},
		{"cluster", no_argument, NULL, 7},
		{"help", no_argument, NULL, 'H'},
		{NULL, 0, NULL, 0},
	};
	bool want[NFLAGS] = {false};
	bool any = false;
	int ch;
	dkv_cli_getopt_reset();
	while ((ch = getopt_long(argc, argv, "+", lo, NULL)) != -1) {
		if (ch >= 0 && ch < NFLAGS) {
			want[ch] = any = true;
			continue;
		}
		if (ch == 'H')
			return help(x, state_usage,
				    "Print the server's replication state as YAML (every part when\n"
				    "no option is given).  --log: the change log's health (path,\n"
				    "sync mode, state, records, bytes, syncs, errors, last_error).\n"
				    "--cluster: the network (root, ready, the Serf agent, each peer's\n"
				    "address, link state and errors, conflicts, missing ticks).\n");
		return usage_error(x, state_usage, NULL, NULL);
	}
	if (optind < argc)
		return usage_error(x, state_usage, "unexpected argument '%s'", argv[optind]);
	struct dkv_buf req = {0}, rep = {0};
	dkv_mp_cstr(&req, "action");
	dkv_mp_cstr(&req, "get_state");
	for (int i = 0; i < NFLAGS; i++)
		put_bool(&req, flags[i], want[i] || !any);
	int rc = ctx_connect(x);
	if (rc == 0) {
		int r = dkv_client_call(x->conn, req.data, req.len, 1 + NFLAGS, &rep);
		rc = r < 0 ? request_failed(x, r) : print_reply(x, rep.data, rep.len);
	}
	dkv_buf_release(&req);
	dkv_buf_release(&rep);
	return rc;
}

/* ---- log ---- */

/* Send a log request and report: nothing on success, the server's
 * message on failure. */
static int log_request(struct ctx *x, const struct dkv_buf *req, uint32_t nfields)
{
	struct dkv_buf rep = {0};
	int rc = ctx_connect(x);
	if (rc == 0) {
		int r = dkv_client_call(x->conn, req->data, req->len, nfields, &rep);
		rc = r < 0 ? request_failed(x, r) : 0;
	}
	dkv_buf_release(&rep);
	return rc;
}

static const char dest_usage[] = "log dest [-i] [--sync always|batch|none] FILE";

static int cmd_log_dest(struct ctx *x, int argc, char **argv)
{
	static const struct option lo[] = {
		{"incremental", no_argument, NULL, 'i'},
		{"sync", required_argument, NULL, 's'},
		{"help", no_argument, NULL, 'H'},
		{NULL, 0, NULL, 0},
	};
	bool incremental = false;
	const char *sync = NULL;
	int ch;
	dkv_cli_getopt_reset();
	while ((ch = getopt_long(argc, argv, "+is:", lo, NULL)) != -1) {
		switch (ch) {
		case 'i':
			incremental = true;
			break;
		case 's':
			if (strcmp(optarg, "always") && strcmp(optarg, "batch") && strcmp(optarg, "none"))
				return usage_error(x, dest_usage, "bad --sync '%s'", optarg);
			sync = optarg;
			break;
		case 'H':
			return help(x, dest_usage,
				    "Make the server log every change to FILE (a path on the server's\n"
				    "machine, relative to its working directory), first writing the\n"
				    "complete current state unless -i (incremental) is given.  A log\n"
				    "that was open is closed once FILE holds everything.  --sync:\n"
				    "always (each change is on disk before its reply), batch (fsync\n"
				    "every server.log.interval, the default) or none.\n");
		default:
			return usage_error(x, dest_usage, NULL, NULL);
		}
	}
	if (optind != argc - 1)
		return usage_error(x, dest_usage, "exactly one FILE is needed%s", "");
	struct dkv_buf req = {0};
	dkv_mp_cstr(&req, "action");
	dkv_mp_cstr(&req, "log");
	dkv_mp_cstr(&req, "path");
	dkv_mp_cstr(&req, argv[optind]);
	put_bool(&req, "fetch", !incremental);
	if (sync) {
		dkv_mp_cstr(&req, "sync");
		dkv_mp_cstr(&req, sync);
	}
	int rc = log_request(x, &req, sync ? 4 : 3);
	dkv_buf_release(&req);
	return rc;
}

static const char save_usage[] = "log save [-f] FILE";

static int cmd_log_save(struct ctx *x, int argc, char **argv)
{
	static const struct option lo[] = {
		{"full", no_argument, NULL, 'f'},
		{"help", no_argument, NULL, 'H'},
		{NULL, 0, NULL, 0},
	};
	bool full = false;
	int ch;
	dkv_cli_getopt_reset();
	while ((ch = getopt_long(argc, argv, "+f", lo, NULL)) != -1) {
		if (ch == 'f') {
			full = true;
			continue;
		}
		if (ch == 'H')
			return help(x, save_usage,
				    "Make the server write its current state to FILE (on the server's\n"
				    "machine) as a one-shot dump: written to a temporary file, synced,\n"
				    "then renamed into place.  -f: include the internal data.\n");
		return usage_error(x, save_usage, NULL, NULL);
	}
	if (optind != argc - 1)
		return usage_error(x, save_usage, "exactly one FILE is needed%s", "");
	struct dkv_buf req = {0};
	dkv_mp_cstr(&req, "action");
	dkv_mp_cstr(&req, "save");
	dkv_mp_cstr(&req, "path");
	dkv_mp_cstr(&req, argv[optind]);
	put_bool(&req, "full", full);
	int rc = log_request(x, &req, 3);
	dkv_buf_release(&req);
	return rc;
}

static const char stop_usage[] = "log stop";

static int cmd_log_stop(struct ctx *x, int argc, char **argv)
{
	int hrc = help_only(x, argc, argv, stop_usage,
			    "Make the server flush and close its change log.\n");
	if (hrc >= 0)
		return hrc;
	if (optind != argc)
		return usage_error(x, stop_usage, "unexpected argument '%s'", argv[optind]);
	struct dkv_buf req = {0};
	dkv_mp_cstr(&req, "action");
	dkv_mp_cstr(&req, "log");
	int rc = log_request(x, &req, 1);
	dkv_buf_release(&req);
	return rc;
}

/* ---- dispatch ---- */

struct command {
	const char *group, *name;
	int (*run)(struct ctx *x, int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
	{"data", "get", cmd_get, "print a value or a subtree"},
	{"data", "set", cmd_set, "store a value"},
	{"data", "delete", cmd_delete, "delete a value or a subtree"},
	{"data", "list", cmd_list, "list the children of an entry"},
	{"data", "monitor", cmd_monitor, "print changes as they happen"},
	{"internal", "dump", cmd_dump, "print the internal tree"},
	{"internal", "state", cmd_state, "print the replication state"},
	{"log", "dest", cmd_log_dest, "log every change to a file"},
	{"log", "save", cmd_log_save, "write the current state to a file"},
	{"log", "stop", cmd_log_stop, "stop logging changes"},
};

static void group_usage(struct ctx *x, FILE *f, const char *group)
{
	fprintf(f, "usage: %s %s COMMAND [OPTIONS] [PATH...]\n\nCommands:\n", x->cmdname, group);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(commands[i].group, group))
			fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\nPATH is one word per path element in colon notation (doc/cli.md).\n");
}

static int run_group(struct ctx *x, int argc, char **argv)
{
	const char *group = argv[0];
	if (argc < 2) {
		group_usage(x, stderr, group);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		group_usage(x, stdout, group);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(commands[i].group, group) || strcmp(commands[i].name, argv[1]))
			continue;
		/* getopt names argv[0] in its complaints: make it the whole command. */
		static char name[128];
		snprintf(name, sizeof(name), "%s %s %s", x->cmdname, group, argv[1]);
		argv[1] = name;
		return commands[i].run(x, argc - 1, argv + 1);
	}
	fprintf(stderr, "%s: unknown command '%s %s'\n", x->cli->progname, group, argv[1]);
	group_usage(x, stderr, group);
	return EXIT_USAGE;
}

static void client_usage(struct ctx *x, FILE *f)
{
	fprintf(f,
		"usage: %s [-h HOST] [-p PORT] [-a AUTH] COMMAND ...\n"
		"\n"
		"  -h, --host HOST  the server (default: connect.host, localhost)\n"
		"  -p, --port PORT  its port (default: connect.port, 27586)\n"
		"  -a, --auth AUTH  log in (not supported yet)\n"
		"      --help       show this help\n"
		"\n"
		"Commands:\n"
		"  data      read and change the stored data\n"
		"  internal  look at the server's internal data and state\n"
		"  log       save the server's state and log its changes to files\n",
		x->cmdname);
}

int dkv_cli_client(struct dkv_cli *cli, int argc, char **argv)
{
	static const struct option lo[] = {
		{"host", required_argument, NULL, 'h'},
		{"port", required_argument, NULL, 'p'},
		{"auth", required_argument, NULL, 'a'},
		{"help", no_argument, NULL, 'H'},
		{NULL, 0, NULL, 0},
	};
	struct ctx x = {
		.cli = cli,
		.cmdname = strcmp(cli->progname, "dkv") ? "distkv client" : "dkv",
		.host = dkv_config_str(cli->cfg, "connect.host", "localhost"),
	};
	int64_t port = dkv_config_int(cli->cfg, "connect.port", DKV_CLIENT_DEFAULT_PORT);
	const char *auth = NULL;
	int ch;
	argv[0] = (char *)x.cmdname; /* for getopt's messages */
	dkv_cli_getopt_reset();
	while ((ch = getopt_long(argc, argv, "+h:p:a:", lo, NULL)) != -1) {
		long v;
		switch (ch) {
		case 'h':
			x.host = optarg;
			break;
		case 'p':
			if (parse_int(optarg, &v) < 0 || v < 1 || v > 65535) {
				fprintf(stderr, "%s: bad port '%s'\n", cli->progname, optarg);
				return EXIT_USAGE;
			}
			port = v;
			break;
		case 'a':
			auth = optarg;
			break;
		case 'H':
			client_usage(&x, stdout);
			return 0;
		default:
			client_usage(&x, stderr);
			return EXIT_USAGE;
		}
	}
	if (port < 1 || port > 65535) {
		fprintf(stderr, "%s: bad connect.port %lld\n", cli->progname, (long long)port);
		return EXIT_USAGE;
	}
	x.port = (unsigned)port;
	if (optind >= argc) {
		client_usage(&x, stderr);
		return EXIT_USAGE;
	}
	if (auth) {
		/* NEEDSWORK: auth methods (root, _test, password) come with the auth issue. */
		fprintf(stderr, "%s: auth is not supported yet\n", cli->progname);
		return 1;
	}
	argc -= optind;
	argv += optind;
	int rc;
	if (!strcmp(argv[0], "data") || !strcmp(argv[0], "internal") || !strcmp(argv[0], "log")) {
		rc = run_group(&x, argc, argv);
	} else {
		fprintf(stderr, "%s: unknown command '%s'\n", cli->progname, argv[0]);
		client_usage(&x, stderr);
		rc = EXIT_USAGE;
	}
	dkv_client_free(x.conn);
	return rc;
}
