/*
 * type.c - the type commands: set, get, list, delete, match and
 * list-matches.
 *
 * A type is the internal entry (type, ELEMS...) holding {code, schema,
 * good, bad}; a match is (match, PATTERN...) holding {type: [ELEMS...]}
 * (engine/types.h has the rules).  The commands write and read those
 * entries with the *_internal actions; the server checks what is
 * written (a type's examples, a match's type, a type still in use), so
 * its refusals are printed as its other errors are ("ServerError: ...").
 * Types and matches are few, so listing reads the whole subtree.
 */
#include "client_int.h"

#include "distkv.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- words ---- */

/* The internal path (top, words...); 0 or EXIT_USAGE after a message. */
static int internal_path(struct dkv__cli_ctx *x, const char *top, int argc, char **argv,
			 struct dkv_buf *path)
{
	dkv_mp_cstr(path, top);
	return dkv__cli_parse_path(x, argc, argv, path);
}

/* "int percent": element encodings as the command line writes them. */
static char *path_words(const uint8_t *enc, size_t len)
{
	struct dkv_path_iter it;
	struct dkv_buf b = {0};
	const uint8_t *el;
	size_t elen;
	dkv_path_iter_init(&it, enc, len);
	while (dkv_path_iter_next(&it, &el, &elen)) {
		if (b.len)
			dkv_buf_putc(&b, ' ');
		dkv_pathtext_format(&b, el, elen, 0);
	}
	if (!b.len)
		dkv_buf_putc(&b, ':');
	return dkv_buf_cstr(&b);
}

static bool blank(const struct dkv_buf *b)
{
	for (size_t i = 0; i < b->len; i++)
		if (!strchr(" \t\r\n", b->data[i]))
			return false;
	return true;
}

static int set_value(struct dkv__cli_ctx *x, const struct dkv_buf *path, const struct dkv_buf *val)
{
	struct dkv__cli_req q;
	dkv__cli_req_init(&q, "set_internal");
	dkv__cli_req_path(&q, path);
	dkv_buf_append(dkv__cli_req_key(&q, "value"), val->data, val->len);
	int rc = dkv__cli_call(x, &q, NULL);
	dkv__cli_req_release(&q);
	return rc;
}

/* ---- walking a subtree ---- */

/* The entries with a value at or below an internal path: for each, its
 * path relative to (top) and its value. */
typedef void (*walk_fn)(void *arg, const uint8_t *rel, size_t rlen, const uint8_t *v,
			size_t vlen);

struct walk {
	const struct dkv_buf *base; /* the path walked, below (top) */
	struct dkv_client_path rel;
	walk_fn fn;
	void *arg;
};

static int walk_cb(void *arg, const uint8_t *m, size_t len)
{
	struct walk *w = arg;
	const uint8_t *v;
	size_t vlen;
	if (dkv_client_path_update(&w->rel, m, len) < 0 ||
	    dkv_client_field(m, len, "value", &v, &vlen) < 0)
		return 0;
	struct dkv_buf full = {0};
	dkv_buf_append(&full, w->base->data, w->base->len);
	dkv_buf_append(&full, w->rel.enc.data, w->rel.enc.len);
	w->fn(w->arg, full.data, full.len, v, vlen);
	dkv_buf_release(&full);
	return 0;
}

/* Walk (top, words...): nothing when there is no such entry (the server
 * refuses get_tree of what never existed, so ask first).  0 or 1. */
static int walk(struct dkv__cli_ctx *x, const char *top, int argc, char **argv, walk_fn fn,
		void *arg)
{
	struct dkv_buf path = {0}, base = {0}, val = {0};
	struct dkv__cli_req q;
	struct walk w = {.base = &base, .fn = fn, .arg = arg};
	bool kids;
	int rc = internal_path(x, top, argc, argv, &path);
	if (rc)
		goto out;
	dkv__cli_parse_path(x, argc, argv, &base);
	if ((rc = dkv__cli_get(x, "get_internal", &path, &val, NULL)) ||
	    (rc = dkv__cli_has_children(x, "enum_internal", &path, &kids)) || (!kids && !val.len))
		goto out;
	dkv__cli_req_init(&q, "get_tree_internal");
	dkv__cli_req_path(&q, &path);
	rc = dkv__cli_stream(x, &q, walk_cb, &w);
	dkv__cli_req_release(&q);
out:
	dkv_client_path_release(&w.rel);
	dkv_buf_release(&path);
	dkv_buf_release(&base);
	dkv_buf_release(&val);
	return rc;
}

/* ---- type set ---- */

struct examples {
	struct dkv_buf items; /* the examples' encodings, back to back */
	uint32_t n;
};

static int opt_example(const struct dkv__cli_optarg *a)
{
	struct examples *e = a->data;
	char err[512];
	if (dkv_py_literal_eval(&e->items, a->arg, err, sizeof err) < 0) {
		fprintf(stderr, "%s: cannot evaluate '%s': %s\n", a->x->cli->progname, a->arg, err);
		return EXIT_USAGE;
	}
	e->n++;
	return 0;
}

/* The script: -s FILE, else standard input (asked for on a terminal
 * unless a schema is given).  An empty script is none. */
static int read_script(struct dkv__cli_ctx *x, const char *file, bool schema, struct dkv_buf *out)
{
	if (file)
		return dkv__cli_read_file(x, file, out);
	if (isatty(STDIN_FILENO)) {
		if (schema)
			return 0;
		fprintf(stderr, "Enter the Python script to check 'value'.\n");
	}
	return dkv__cli_read_all(x, stdin, "the script from standard input", out);
}

static int cmd_set(struct dkv__cli_ctx *x, int argc, char **argv)
{
	struct examples good = {0}, bad = {0};
	const char *script = NULL, *schema = NULL;
	bool yaml = false;
	const struct dkv__cli_opt opts[] = {
		{.name = "good", .letter = 'g', .arg = "VALUE", .fn = opt_example, .data = &good,
		 .help = "a value the type accepts (a Python literal);\nat least one"},
		{.name = "bad", .letter = 'b', .arg = "VALUE", .fn = opt_example, .data = &bad,
		 .help = "a value the type refuses; at least one"},
		{.name = "script", .letter = 's', .arg = "FILE", .str = &script,
		 .help = "the checking script (default: standard input)"},
		{.name = "schema", .letter = 'S', .arg = "FILE", .str = &schema,
		 .help = "a JSON schema the values must follow"},
		{.name = "yaml", .letter = 'y', .flag = &yaml, .help = "the schema is YAML, not JSON"},
		{NULL},
	};
	struct dkv_buf path = {0}, code = {0}, sch = {0}, text = {0}, rec = {0};
	int rc = dkv__cli_options(x, opts, argc, argv);
	if (rc >= 0)
		goto out;
	rc = 0;
	if (optind >= argc)
		rc = dkv__cli_usage_error(x, "%s", "missing the TYPE");
	else if (!good.n || !bad.n)
		rc = dkv__cli_usage_error(x, "%s", "a type needs -g GOOD and -b BAD examples");
	else if (yaml && !schema)
		rc = dkv__cli_usage_error(x, "%s", "-y goes with -S SCHEMA");
	if (rc || (rc = internal_path(x, "type", argc - optind, argv + optind, &path)))
		goto out;
	if (schema) {
		char err[256];
		/* JSON is YAML 1.2: one parser reads both */
		if ((rc = dkv__cli_read_file(x, schema, &text)))
			goto out;
		if (dkv_yaml_parse(&sch, text.len ? (const char *)text.data : "", text.len, err,
				   sizeof err) < 0) {
			fprintf(stderr, "%s: %s: %s\n", x->cli->progname, schema, err);
			rc = 1;
			goto out;
		}
	}
	if ((rc = read_script(x, script, schema != NULL, &code)))
		goto out;
	if (blank(&code) && !schema) {
		rc = dkv__cli_usage_error(x, "%s", "a type needs a script or a schema");
		goto out;
	}
	dkv_mp_map(&rec, 2 + !blank(&code) + (schema != NULL));
	if (!blank(&code)) {
		dkv_mp_cstr(&rec, "code");
		dkv_mp_str(&rec, code.data, code.len);
	}
	if (schema) {
		dkv_mp_cstr(&rec, "schema");
		dkv_buf_append(&rec, sch.data, sch.len);
	}
	dkv_mp_cstr(&rec, "good");
	dkv_mp_array(&rec, good.n);
	dkv_buf_append(&rec, good.items.data, good.items.len);
	dkv_mp_cstr(&rec, "bad");
	dkv_mp_array(&rec, bad.n);
	dkv_buf_append(&rec, bad.items.data, bad.items.len);
	rc = set_value(x, &path, &rec);
out:
	dkv_buf_release(&good.items);
	dkv_buf_release(&bad.items);
	dkv_buf_release(&path);
	dkv_buf_release(&code);
	dkv_buf_release(&sch);
	dkv_buf_release(&text);
	dkv_buf_release(&rec);
	return rc;
}

static const struct dkv__cli_cmd set_cmd = {
	.name = "set", .run = cmd_set, .summary = "define a type",
	.usage = "type set -g GOOD... -b BAD... [-s FILE] [-S SCHEMA [-y]] TYPE...",
	.about = "Define the type TYPE... (\"int percent\" is a subtype of \"int\"): a Python\n"
		 "script that sees 'value' and raises to refuse it, read from standard\n"
		 "input unless -s names a file, and/or a JSON schema.  The server keeps\n"
		 "it only if every good example passes this type and its supertypes,\n"
		 "and every bad one fails.\n",
	.help_col = 22,
};

/* ---- type get ---- */

static bool keep_not_code(const struct dkv_mp_item *k)
{
	return !dkv_mp_streq(k, "code");
}

/* The string field key of the map m, or NULL. */
static bool str_field(const uint8_t *m, size_t n, const char *key, const uint8_t **p,
		      uint32_t *len)
{
	const uint8_t *v;
	size_t vlen;
	struct dkv_mp_reader r;
	struct dkv_mp_item it;
	if (dkv_client_field(m, n, key, &v, &vlen) < 0)
		return false;
	dkv_mp_reader_init(&r, v, vlen);
	if (dkv_mp_read(&r, &it) < 0 || it.type != DKV_MP_STR)
		return false;
	*p = it.v.s.p;
	*len = it.v.s.len;
	return true;
}

static int cmd_get(struct dkv__cli_ctx *x, int argc, char **argv)
{
	const char *script = NULL;
	const struct dkv__cli_opt opts[] = {
		{.name = "script", .letter = 's', .arg = "FILE", .str = &script,
		 .help = "write the script to FILE, not in the record"},
		{NULL},
	};
	int rc = dkv__cli_options(x, opts, argc, argv);
	if (rc >= 0)
		return rc;
	if (optind >= argc)
		return dkv__cli_usage_error(x, "%s", "missing the TYPE");
	struct dkv_buf path = {0}, val = {0}, doc = {0};
	rc = internal_path(x, "type", argc - optind, argv + optind, &path);
	if (rc == 0)
		rc = dkv__cli_get(x, "get_internal", &path, &val, NULL);
	if (rc)
		goto out;
	if (!val.len) {
		char *w = path_words(path.data + 5, path.len - 5);
		fprintf(stderr, "%s: no type %s\n", x->cli->progname, w);
		free(w);
		rc = 1;
		goto out;
	}
	const uint8_t *code;
	uint32_t clen;
	if (script && str_field(val.data, val.len, "code", &code, &clen)) {
		FILE *f = fopen(script, "w");
		if (!f || fwrite(code, 1, clen, f) != clen || fclose(f)) {
			fprintf(stderr, "%s: %s: %s\n", x->cli->progname, script, strerror(errno));
			rc = 1;
			goto out;
		}
		struct dkv_buf body = {0};
		uint32_t cnt = dkv__cli_copy_pairs(&body, val.data, val.len, keep_not_code);
		dkv_mp_map(&doc, cnt);
		dkv_buf_append(&doc, body.data, body.len);
		dkv_buf_release(&body);
		rc = dkv__cli_print_yaml(x, doc.data, doc.len);
	} else {
		rc = dkv__cli_print_yaml(x, val.data, val.len);
	}
out:
	dkv_buf_release(&path);
	dkv_buf_release(&val);
	dkv_buf_release(&doc);
	return rc;
}

static const struct dkv__cli_cmd get_cmd = {
	.name = "get", .run = cmd_get, .summary = "print a type",
	.usage = "type get [-s FILE] TYPE...",
	.about = "Print the record of type TYPE... as YAML: code, schema, good and bad.\n",
	.help_col = 20,
};

/* ---- type list ---- */

static void print_type(void *arg, const uint8_t *rel, size_t rlen, const uint8_t *v,
		       size_t vlen)
{
	(void)arg, (void)v, (void)vlen;
	char *w = path_words(rel, rlen);
	printf("%s\n", w);
	free(w);
}

static int cmd_list(struct dkv__cli_ctx *x, int argc, char **argv)
{
	const struct dkv__cli_opt opts[] = {{NULL}};
	int rc = dkv__cli_options(x, opts, argc, argv);
	if (rc >= 0)
		return rc;
	return walk(x, "type", argc - optind, argv + optind, print_type, NULL);
}

static const struct dkv__cli_cmd list_cmd = {
	.name = "list", .run = cmd_list, .summary = "list the types",
	.usage = "type list [TYPE...]",
	.about = "Print the types (at or below TYPE...), one per line.\n",
};

/* ---- type delete ---- */

static int cmd_delete(struct dkv__cli_ctx *x, int argc, char **argv)
{
	const struct dkv__cli_opt opts[] = {{NULL}};
	int rc = dkv__cli_options(x, opts, argc, argv);
	if (rc >= 0)
		return rc;
	if (optind >= argc)
		return dkv__cli_usage_error(x, "%s", "missing the TYPE");
	struct dkv_buf path = {0};
	bool changed = false;
	rc = internal_path(x, "type", argc - optind, argv + optind, &path);
	if (rc == 0)
		rc = dkv__cli_delete(x, "delete_internal", &path, &changed);
	if (rc == 0 && !changed) {
		char *w = path_words(path.data + 5, path.len - 5);
		fprintf(stderr, "%s: no type %s\n", x->cli->progname, w);
		free(w);
		rc = 1;
	}
	dkv_buf_release(&path);
	return rc;
}

static const struct dkv__cli_cmd delete_cmd = {
	.name = "delete", .run = cmd_delete, .summary = "delete a type",
	.usage = "type delete TYPE...",
	.about = "Delete the type TYPE...; the server refuses while a match uses it\n"
		 "or it has subtypes.\n",
};

/* ---- type match ---- */

static int opt_elem(const struct dkv__cli_optarg *a)
{
	struct examples *t = a->data;
	if (dkv_pathtext_parse(&t->items, a->arg, strlen(a->arg), 0) < 0) {
		fprintf(stderr, "%s: bad type element '%s': not valid colon notation\n",
			a->x->cli->progname, a->arg);
		return EXIT_USAGE;
	}
	t->n++;
	return 0;
}

static int cmd_match(struct dkv__cli_ctx *x, int argc, char **argv)
{
	struct examples type = {0};
	bool del = false;
	const struct dkv__cli_opt opts[] = {
		{.name = "type", .letter = 't', .arg = "ELEM", .fn = opt_elem, .data = &type,
		 .help = "an element of the type's path; again for\nthe next (-t int -t percent)"},
		{.name = "delete", .letter = 'd', .flag = &del, .help = "delete the match"},
		{NULL},
	};
	struct dkv_buf path = {0}, val = {0};
	int rc = dkv__cli_options(x, opts, argc, argv);
	if (rc >= 0)
		goto out;
	rc = 0;
	if (optind >= argc)
		rc = dkv__cli_usage_error(x, "%s", "missing the PATH");
	else if (del && type.n)
		rc = dkv__cli_usage_error(x, "%s", "-d and -t do not go together");
	if (rc || (rc = internal_path(x, "match", argc - optind, argv + optind, &path)))
		goto out;
	if (type.n) {
		dkv_mp_map(&val, 1);
		dkv_mp_cstr(&val, "type");
		dkv_mp_array(&val, type.n);
		dkv_buf_append(&val, type.items.data, type.items.len);
		rc = set_value(x, &path, &val);
	} else if (del) {
		bool changed;
		rc = dkv__cli_delete(x, "delete_internal", &path, &changed);
		if (rc == 0 && !changed) {
			fprintf(stderr, "%s: no match there\n", x->cli->progname);
			rc = 1;
		}
	} else if ((rc = dkv__cli_get(x, "get_internal", &path, &val, NULL)) == 0) {
		struct dkv_path tp;
		struct dkv_mp_reader r;
		const uint8_t *v;
		size_t vlen;
		dkv_path_init(&tp);
		if (!val.len) {
			fprintf(stderr, "%s: no match there\n", x->cli->progname);
			rc = 1;
		} else if (dkv_client_field(val.data, val.len, "type", &v, &vlen) == 0 &&
			   (dkv_mp_reader_init(&r, v, vlen), dkv_path_decode(&tp, &r) == 0)) {
			char *w = path_words(tp.enc.data, tp.enc.len);
			printf("%s\n", w);
			free(w);
		} else {
			rc = dkv__cli_print_yaml(x, val.data, val.len);
		}
		dkv_path_release(&tp);
	}
out:
	dkv_buf_release(&type.items);
	dkv_buf_release(&path);
	dkv_buf_release(&val);
	return rc;
}

static const struct dkv__cli_cmd match_cmd = {
	.name = "match", .run = cmd_match, .summary = "bind a type to paths",
	.usage = "type match [-t ELEM... | -d] PATH...",
	.about = "With -t, check every value written at PATH (\"+\" matches one element,\n"
		 "\"#\" one or more; the most specific match wins) against the type\n"
		 "whose path the -t options give.  With -d, delete the match; with\n"
		 "neither, print its type.  Existing values are not checked.\n",
	.help_col = 20,
};

/* ---- type list-matches ---- */

static void print_match(void *arg, const uint8_t *rel, size_t rlen, const uint8_t *v,
			size_t vlen)
{
	struct dkv_path tp;
	struct dkv_mp_reader r;
	const uint8_t *t;
	size_t tlen;
	(void)arg;
	char *w = path_words(rel, rlen), *tw = NULL;
	dkv_path_init(&tp);
	if (dkv_client_field(v, vlen, "type", &t, &tlen) == 0) {
		dkv_mp_reader_init(&r, t, tlen);
		if (dkv_path_decode(&tp, &r) == 0)
			tw = path_words(tp.enc.data, tp.enc.len);
	}
	printf("%s: %s\n", w, tw ? tw : "?");
	free(w);
	free(tw);
	dkv_path_release(&tp);
}

static int cmd_list_matches(struct dkv__cli_ctx *x, int argc, char **argv)
{
	const struct dkv__cli_opt opts[] = {{NULL}};
	int rc = dkv__cli_options(x, opts, argc, argv);
	if (rc >= 0)
		return rc;
	return walk(x, "match", argc - optind, argv + optind, print_match, NULL);
}

static const struct dkv__cli_cmd list_matches_cmd = {
	.name = "list-matches", .run = cmd_list_matches, .summary = "list the matches",
	.usage = "type list-matches [PATH...]",
	.about = "Print the matches (at or below PATH...), one per line: the pattern,\n"
		 "a colon, the type.\n",
};

const struct dkv__cli_cmd *const dkv__cli_type_cmds[] = {
	&set_cmd, &get_cmd, &list_cmd, &delete_cmd, &match_cmd, &list_matches_cmd, NULL,
};
