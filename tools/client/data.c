/*
 * data.c - the data commands: get, set, delete, list and monitor.
 *
 * Subtrees (get -r, delete -r, monitor) come as streams of replies whose
 * paths are depth-compressed (struct dkv_client_path rebuilds them); each
 * entry is printed as it arrives, except that "get -d KEY" first collects
 * the subtree into one nested mapping.  Output is YAML, or JSON with -o
 * json (dkv__cli_print).
 */
#include "client_int.h"
#include "progress.h"

#include "distkv.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Keys of a reply that describe the transport, not the data. */
static bool is_transport_key(const struct dkv_mp_item *k)
{
	return dkv_mp_streq(k, "seq") || dkv_mp_streq(k, "wseq") || dkv_mp_streq(k, "depth") ||
	       dkv_mp_streq(k, "path");
}

static bool keep_data(const struct dkv_mp_item *k)
{
	return !is_transport_key(k);
}

static bool keep_value(const struct dkv_mp_item *k)
{
	return dkv_mp_streq(k, "value");
}

static uint32_t count_elems(const struct dkv_buf *path)
{
	struct dkv_path_iter it;
	const uint8_t *e;
	size_t len;
	uint32_t n = 0;
	dkv_path_iter_init(&it, path->data, path->len);
	while (dkv_path_iter_next(&it, &e, &len))
		n++;
	return n;
}

/* A document for one entry: {path: <full path>, value: ...}, with -m
 * also the chain and tock.  YAML documents start with "---"; in JSON
 * lines the path is a plain array of its elements (jq: .path[0]). */
static int print_entry(struct dkv__cli_ctx *x, const struct dkv_buf *prefix,
		       const struct dkv_client_path *rel, const uint8_t *m, size_t n, bool meta)
{
	struct dkv_buf full = {0}, body = {0}, doc = {0};
	dkv_buf_append(&full, prefix->data, prefix->len);
	dkv_buf_append(&full, rel->enc.data, rel->enc.len);
	uint32_t cnt = dkv__cli_copy_pairs(&body, m, n, meta ? keep_data : keep_value);
	dkv_mp_map(&doc, cnt + 1);
	dkv_mp_cstr(&doc, "path");
	if (x->json)
		dkv_path_encode_array(&doc, full.data, full.len, count_elems(&full));
	else
		dkv_path_encode(&doc, full.data, full.len);
	dkv_buf_append(&doc, body.data, body.len);
	if (!x->json)
		fputs("---\n", stdout);
	int rc = dkv__cli_print(x, doc.data, doc.len);
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

struct tree_state {
	struct dkv__cli_ctx *x;
	const struct dkv__cli_get_opts *o;
	const struct dkv_buf *prefix;
	struct dkv_client_path rel; /* the reply's path, relative to prefix */
	struct tnode *root;
	struct tnode **stack; /* stack[i]: node of the path's first i elements */
	size_t stack_cap;
	struct dkv_progress prog;
};

static int tree_cb(void *arg, const uint8_t *m, size_t n)
{
	struct tree_state *s = arg;
	dkv_progress_add(&s->prog, 1, n);
	if (dkv_client_path_update(&s->rel, m, n) < 0)
		return 0;
	if (!s->o->as_dict)
		return print_entry(s->x, s->prefix, &s->rel, m, n, s->o->meta) ? -EIO : 0;

	if (s->stack_cap < (size_t)s->rel.n + 1) {
		s->stack_cap = (size_t)s->rel.n + 16;
		s->stack = dkv_xrealloc(s->stack, s->stack_cap * sizeof(*s->stack));
	}
	s->stack[0] = s->root;
	for (uint32_t i = s->rel.kept; i < s->rel.n; i++) {
		size_t off = s->rel.offs[i], end = s->rel.offs[i + 1];
		s->stack[i + 1] = tnode_child(s->stack[i], s->rel.enc.data + off, end - off);
	}
	struct tnode *t = s->stack[s->rel.n];
	const uint8_t *v;
	size_t vlen;
	struct dkv_buf val = {0};
	if (s->o->meta) {
		uint32_t cnt = dkv__cli_copy_pairs(&val, m, n, keep_data);
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

int dkv__cli_get_tree(struct dkv__cli_ctx *x, const struct dkv__cli_get_opts *o,
		      const struct dkv_buf *path)
{
	struct dkv__cli_req q;
	dkv__cli_req_init(&q, o->action);
	dkv__cli_req_path(&q, path);
	if (o->meta)
		dkv__cli_req_int(&q, "nchain", 3);
	if (o->empty)
		dkv__cli_req_bool(&q, "empty", true);
	if (o->mindepth >= 0)
		dkv__cli_req_int(&q, "min_depth", o->mindepth);
	if (o->maxdepth >= 0)
		dkv__cli_req_int(&q, "max_depth", o->maxdepth);

	struct tree_state s = {.x = x, .o = o, .prefix = path};
	if (o->as_dict)
		s.root = dkv_xcalloc(1, sizeof(*s.root));
	/* progress on a terminal, unless the entries themselves go there */
	dkv_progress_start(&s.prog, "reading", "entries");
	if (isatty(STDOUT_FILENO) && !getenv("DKV_PROGRESS"))
		s.prog.on = false;
	int rc = dkv__cli_stream(x, &q, tree_cb, &s);
	dkv_progress_end(&s.prog);
	if (!rc && o->as_dict) {
		struct dkv_buf out = {0};
		tnode_encode(&out, s.root, o->as_dict);
		rc = dkv__cli_print(x, out.data, out.len);
		dkv_buf_release(&out);
	}
	tnode_free(s.root);
	free(s.stack);
	dkv_client_path_release(&s.rel);
	dkv__cli_req_release(&q);
	return rc;
}

static int get_single(struct dkv__cli_ctx *x, bool meta, const struct dkv_buf *path)
{
	struct dkv__cli_req q;
	struct dkv_buf rep = {0};
	dkv__cli_req_init(&q, "get_value");
	dkv__cli_req_path(&q, path);
	if (meta)
		dkv__cli_req_int(&q, "nchain", 3);
	int rc = dkv__cli_call(x, &q, &rep);
	if (rc == 0 && meta) {
		rc = dkv__cli_print_reply(x, rep.data, rep.len);
	} else if (rc == 0) {
		const uint8_t *v;
		size_t vlen;
		if (dkv_client_field(rep.data, rep.len, "value", &v, &vlen) == 0)
			rc = dkv__cli_print(x, v, vlen);
		else if (x->cli->verbose > 0)
			fprintf(stderr, "%s: no value\n", x->cli->progname);
	}
	dkv__cli_req_release(&q);
	dkv_buf_release(&rep);
	return rc;
}

static int cmd_get(struct dkv__cli_ctx *x, int argc, char **argv)
{
	struct dkv__cli_get_opts o = {.action = "get_tree", .mindepth = -1, .maxdepth = -1};
	bool recursive = false;
	const struct dkv__cli_opt opts[] = {
		{.name = "recursive", .letter = 'r', .flag = &recursive,
		 .help = "the whole subtree, one document per entry"},
		{.name = "as-dict", .letter = 'd', .arg = "KEY", .str = &o.as_dict, .flag = &recursive,
		 .help = "the subtree as one nested mapping, values under KEY"},
		{.name = "meta", .letter = 'm', .flag = &o.meta, .help = "include the chain and tock"},
		{.name = "empty", .letter = 'e', .flag = &o.empty,
		 .help = "with -r: include entries without a value"},
		{.name = "mindepth", .arg = "N", .num = &o.mindepth, .flag = &recursive,
		 .help = "with -r: skip entries less than N levels down"},
		{.name = "maxdepth", .arg = "N", .num = &o.maxdepth, .flag = &recursive,
		 .help = "with -r: skip entries more than N levels down"},
		DKV__CLI_OUTPUT_OPTS(x),
		{NULL},
	};
	int rc = dkv__cli_options(x, opts, argc, argv);
	if (rc >= 0)
		return rc;
	struct dkv_buf path = {0};
	rc = dkv__cli_parse_path(x, argc - optind, argv + optind, &path);
	if (rc == 0)
		rc = recursive ? dkv__cli_get_tree(x, &o, &path) : get_single(x, o.meta, &path);
	dkv_buf_release(&path);
	return rc;
}

static const struct dkv__cli_cmd get_cmd = {
	.name = "get", .run = cmd_get, .summary = "print a value or a subtree",
	.usage = "data get [-r] [-d KEY] [-m] [-e] [--mindepth N] [--maxdepth N] [-o FMT] [PATH...]",
	.about = "Print the value at PATH as YAML or JSON (nothing if there is none).\n"
		 "With -r, one document per entry (JSON: one line per entry).\n",
	.help_col = 20,
};

/* ---- data set ---- */

struct set_opts {
	const char *value;
	const char *last_node; /* with last_tick: -l NODE TICK */
	long last_tick;
	bool eval, is_new, meta;
};

/* --last takes two words: NODE is its argument, TICK the next word. */
static int opt_last(const struct dkv__cli_optarg *a)
{
	struct set_opts *o = a->data;
	o->last_node = a->arg;
	if (optind >= a->argc)
		return dkv__cli_usage_error(a->x, "%s", "--last needs NODE and TICK");
	if (dkv__cli_parse_int(a->argv[optind], &o->last_tick) < 0 || o->last_tick < 0)
		return dkv__cli_usage_error(a->x, "bad tick '%s'", a->argv[optind]);
	optind++;
	return 0;
}

/* The request's value and chain fields; 0 or EXIT_USAGE. */
static int set_fields(struct dkv__cli_ctx *x, const struct set_opts *o, struct dkv__cli_req *q)
{
	struct dkv_buf *b = dkv__cli_req_key(q, "value");
	if (!o->eval) {
		dkv_mp_cstr(b, o->value);
	} else {
		char err[512];
		if (dkv_py_literal_eval(b, o->value, err, sizeof(err)) < 0) {
			fprintf(stderr, "%s: cannot evaluate '%s': %s\n", x->cli->progname, o->value,
				err);
			return EXIT_USAGE;
		}
	}
	if (o->is_new) {
		dkv_mp_nil(dkv__cli_req_key(q, "chain"));
	} else if (o->last_node) {
		b = dkv__cli_req_key(q, "chain");
		dkv_mp_map(b, 2);
		dkv_mp_cstr(b, "node");
		dkv_mp_cstr(b, o->last_node);
		dkv_mp_cstr(b, "tick");
		dkv_mp_int(b, o->last_tick);
	}
	return 0;
}

static int cmd_set(struct dkv__cli_ctx *x, int argc, char **argv)
{
	struct set_opts o = {0};
	const struct dkv__cli_opt opts[] = {
		{.name = "value", .letter = 'v', .arg = "VALUE", .str = &o.value,
		 .help = "the value (a string unless -e is given)"},
		{.name = "eval", .letter = 'e', .flag = &o.eval,
		 .help = "VALUE is a Python literal: 12, True, None,\n"
			 "b'bytes', [1, 2], {'a': 1}, ..."},
		{.name = "new", .letter = 'n', .flag = &o.is_new,
		 .help = "fail if the entry has a value already"},
		{.name = "last", .letter = 'l', .arg = "NODE TICK", .fn = opt_last, .data = &o,
		 .help = "fail unless NODE/TICK made the last change"},
		{.name = "meta", .letter = 'm', .flag = &o.meta, .help = "print the new chain and tock"},
		{NULL},
	};
	int rc = dkv__cli_options(x, opts, argc, argv);
	if (rc >= 0)
		return rc;
	if (!o.value)
		return dkv__cli_usage_error(x, "%s", "missing -v VALUE");
	if (o.is_new && o.last_node)
		return dkv__cli_usage_error(x, "%s", "--new and --last exclude each other");

	struct dkv__cli_req q;
	struct dkv_buf path = {0}, rep = {0};
	dkv__cli_req_init(&q, "set_value");
	rc = dkv__cli_parse_path(x, argc - optind, argv + optind, &path);
	if (rc == 0) {
		dkv__cli_req_path(&q, &path);
		rc = set_fields(x, &o, &q);
	}
	if (rc == 0 && o.meta)
		dkv__cli_req_int(&q, "nchain", 3);
	if (rc == 0)
		rc = dkv__cli_call(x, &q, &rep);
	if (rc == 0 && o.meta)
		rc = dkv__cli_print_reply(x, rep.data, rep.len);
	dkv__cli_req_release(&q);
	dkv_buf_release(&path);
	dkv_buf_release(&rep);
	if (o.eval)
		dkv_py_shutdown();
	return rc;
}

static const struct dkv__cli_cmd set_cmd = {
	.name = "set", .run = cmd_set, .summary = "store a value",
	.usage = "data set -v VALUE [-e] [-n | -l NODE TICK] [-m] PATH...",
	.about = "Store VALUE at PATH.\n", .help_col = 23,
};

/* ---- data delete ---- */

struct print_state {
	struct dkv__cli_ctx *x;
	const struct dkv_buf *prefix;
	struct dkv_client_path rel; /* the reply's path, relative to prefix */
	bool meta;
};

static int delete_tree_cb(void *arg, const uint8_t *m, size_t n)
{
	struct print_state *s = arg;
	if (!s->meta)
		return 0;
	if (dkv_client_path_update(&s->rel, m, n) < 0)
		return dkv__cli_print_reply(s->x, m, n) ? -EIO : 0;
	return print_entry(s->x, s->prefix, &s->rel, m, n, true) ? -EIO : 0;
}

static int cmd_delete(struct dkv__cli_ctx *x, int argc, char **argv)
{
	bool recursive = false, meta = false;
	const struct dkv__cli_opt opts[] = {
		{.name = "recursive", .letter = 'r', .flag = &recursive,
		 .help = "delete the values of the whole subtree"},
		{.name = "meta", .letter = 'm', .flag = &meta, .help = "print the chain of each deletion"},
		{NULL},
	};
	int rc = dkv__cli_options(x, opts, argc, argv);
	if (rc >= 0)
		return rc;
	struct dkv__cli_req q;
	struct dkv_buf path = {0}, rep = {0};
	struct print_state s = {.x = x, .prefix = &path, .meta = meta};
	dkv__cli_req_init(&q, recursive ? "delete_tree" : "delete_value");
	rc = dkv__cli_parse_path(x, argc - optind, argv + optind, &path);
	if (rc)
		goto out;
	dkv__cli_req_path(&q, &path);
	if (meta)
		dkv__cli_req_int(&q, "nchain", 3);
	if (recursive) {
		rc = dkv__cli_stream(x, &q, delete_tree_cb, &s);
	} else {
		rc = dkv__cli_call(x, &q, &rep);
		if (rc == 0 && meta)
			rc = dkv__cli_print_reply(x, rep.data, rep.len);
	}
out:
	dkv_client_path_release(&s.rel);
	dkv__cli_req_release(&q);
	dkv_buf_release(&path);
	dkv_buf_release(&rep);
	return rc;
}

static const struct dkv__cli_cmd delete_cmd = {
	.name = "delete", .run = cmd_delete, .summary = "delete a value or a subtree",
	.usage = "data delete [-r] [-m] PATH...",
	.about = "Delete the value at PATH; its children stay.\n", .help_col = 19,
};

/* ---- data list ---- */

/* The names in an enum reply, one per line in colon notation; the exit status. */
static int print_names(struct dkv__cli_ctx *x, const uint8_t *m, size_t n)
{
	const uint8_t *res;
	size_t reslen;
	struct dkv_mp_reader rd;
	struct dkv_mp_item it;
	struct dkv_buf out = {0};
	int rc = 0;
	if (dkv_client_field(m, n, "result", &res, &reslen) < 0)
		return 0; /* nothing there */
	dkv_mp_reader_init(&rd, res, reslen);
	if (dkv_mp_read(&rd, &it) < 0 || it.type != DKV_MP_ARRAY) {
		fprintf(stderr, "%s: the server's answer has no list of names\n", x->cli->progname);
		return 1;
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
	if (out.len) /* an empty list leaves out.data NULL, which fwrite must not get */
		fwrite(out.data, 1, out.len, stdout);
	dkv_buf_release(&out);
	return rc;
}

static int cmd_list(struct dkv__cli_ctx *x, int argc, char **argv)
{
	const struct dkv__cli_opt opts[] = {{NULL}};
	int rc = dkv__cli_options(x, opts, argc, argv);
	if (rc >= 0)
		return rc;
	struct dkv__cli_req q;
	struct dkv_buf path = {0}, rep = {0};
	dkv__cli_req_init(&q, "enum");
	rc = dkv__cli_parse_path(x, argc - optind, argv + optind, &path);
	if (rc == 0) {
		dkv__cli_req_path(&q, &path);
		dkv__cli_req_bool(&q, "empty", true);
		rc = dkv__cli_call(x, &q, &rep);
	}
	if (rc == 0)
		rc = print_names(x, rep.data, rep.len);
	dkv__cli_req_release(&q);
	dkv_buf_release(&path);
	dkv_buf_release(&rep);
	return rc;
}

static const struct dkv__cli_cmd list_cmd = {
	.name = "list", .run = cmd_list, .summary = "list the children of an entry",
	.usage = "data list [PATH...]",
	.about = "Print the names of PATH's children, one per line, in colon notation.\n",
};

/* ---- data monitor ---- */

static int monitor_cb(void *arg, const uint8_t *m, size_t n)
{
	struct print_state *s = arg;
	if (dkv_client_path_update(&s->rel, m, n) < 0) {
		if (s->x->cli->verbose > 0)
			fprintf(stderr, "# up to date\n");
		return 0;
	}
	int rc = print_entry(s->x, s->prefix, &s->rel, m, n, s->meta);
	fflush(stdout);
	return rc ? -EIO : 0;
}

static int cmd_monitor(struct dkv__cli_ctx *x, int argc, char **argv)
{
	bool fetch = false, meta = false;
	const struct dkv__cli_opt opts[] = {
		{.name = "fetch", .letter = 'f', .flag = &fetch,
		 .help = "first print the current entries"},
		{.name = "meta", .letter = 'm', .flag = &meta, .help = "include the chain and tock"},
		DKV__CLI_OUTPUT_OPTS(x),
		{NULL},
	};
	int rc = dkv__cli_options(x, opts, argc, argv);
	if (rc >= 0)
		return rc;
	struct dkv__cli_req q;
	struct dkv_buf path = {0};
	struct print_state s = {.x = x, .prefix = &path, .meta = meta};
	dkv__cli_req_init(&q, "watch");
	rc = dkv__cli_parse_path(x, argc - optind, argv + optind, &path);
	if (rc == 0) {
		dkv__cli_req_path(&q, &path);
		dkv__cli_req_bool(&q, "fetch", fetch);
		if (meta)
			dkv__cli_req_int(&q, "nchain", 3);
		rc = dkv__cli_stream(x, &q, monitor_cb, &s);
	}
	dkv_client_path_release(&s.rel);
	dkv__cli_req_release(&q);
	dkv_buf_release(&path);
	return rc;
}

static const struct dkv__cli_cmd monitor_cmd = {
	.name = "monitor", .run = cmd_monitor, .summary = "print changes as they happen",
	.usage = "data monitor [-f] [-m] [-o FMT] [PATH...]",
	.about = "Print each change below PATH as a YAML document (JSON: one line),\n"
		 "until interrupted.\n",
	.help_col = 20,
};

const struct dkv__cli_cmd *const dkv__cli_data_cmds[] = {
	&get_cmd, &set_cmd, &delete_cmd, &list_cmd, &monitor_cmd, NULL,
};
