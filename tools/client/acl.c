/*
 * acl.c - the acl commands: set, get, list, dump, delete and test.
 *
 * An ACL named NAME is the internal subtree (acl, NAME); each entry's
 * value is a string of mode letters ("arwcdxen", engine/acl.h) for the
 * data path that the entry's own path below (acl, NAME) names, "+" and
 * "#" being wildcards.  The commands read and write that subtree with
 * the *_internal actions, and ask the server's matcher with test_acl.
 * ACLs are small (tens of entries), so listing or deleting a whole ACL
 * reads all of it.
 *
 * A command names the ACL first and may give its options before or
 * after the name: "acl set writeonly -a xc wom #" (as the tutorial
 * writes it) and "acl set -a xc writeonly wom #" are the same.
 */
#include "client_int.h"

#include "distkv.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MODE_LETTERS "arwcdxen"

/* ---- words ---- */

/* Options, NAME, more options.  -1 with *name and *first (the index in
 * argv of the first word after them), else the exit status. */
static int name_and_options(struct dkv__cli_ctx *x, const struct dkv__cli_opt *opts, int argc,
			    char **argv, const char **name, int *first)
{
	int rc = dkv__cli_options(x, opts, argc, argv);
	if (rc >= 0)
		return rc;
	if (optind >= argc)
		return dkv__cli_usage_error(x, "%s", "missing the ACL's NAME");
	int k = optind;
	*name = argv[k];
	argv[k] = argv[0]; /* the command's name for getopt, before the rest */
	rc = dkv__cli_options(x, opts, argc - k, argv + k);
	if (rc >= 0)
		return rc;
	*first = k + optind;
	return -1;
}

/* The internal path (acl, NAME, words...); 0 or EXIT_USAGE after a
 * message.  name NULL: (acl). */
static int acl_path(struct dkv__cli_ctx *x, const char *name, int argc, char **argv,
		    struct dkv_buf *path)
{
	dkv_mp_cstr(path, "acl");
	if (!name)
		return 0;
	dkv_mp_cstr(path, name);
	return dkv__cli_parse_path(x, argc, argv, path);
}

/* Mode letters: 0, or EXIT_USAGE after a message naming the unknown
 * ones. */
static int check_letters(struct dkv__cli_ctx *x, const char *s)
{
	unsigned modes;
	if (dkv_acl_parse(s, strlen(s), &modes) == 0)
		return 0;
	char bad[64];
	size_t n = 0;
	for (const char *p = s; *p && n + 1 < sizeof(bad); p++)
		if (dkv_acl_parse(p, 1, &modes) < 0 && !memchr(bad, *p, n))
			bad[n++] = *p;
	bad[n] = 0;
	fprintf(stderr, "%s: unknown mode letters '%s' (known: " MODE_LETTERS ")\n",
		x->cli->progname, bad);
	return dkv__cli_usage_error(x, NULL, NULL);
}

/* ---- walking an ACL ---- */

/* Every entry with a value below an internal path, as full paths (each
 * one element encodings back to back). */
struct walk {
	const struct dkv_buf *prefix;
	struct dkv_client_path rel;
	struct dkv_buf *paths;
	size_t n, cap;
};

static int walk_cb(void *arg, const uint8_t *m, size_t len)
{
	struct walk *w = arg;
	if (dkv_client_path_update(&w->rel, m, len) < 0)
		return 0;
	if (w->n == w->cap) {
		w->cap = w->cap ? 2 * w->cap : 16;
		w->paths = dkv_xrealloc(w->paths, w->cap * sizeof(*w->paths));
	}
	struct dkv_buf *p = &w->paths[w->n++];
	*p = (struct dkv_buf){0};
	dkv_buf_append(p, w->prefix->data, w->prefix->len);
	dkv_buf_append(p, w->rel.enc.data, w->rel.enc.len);
	return 0;
}

static void walk_release(struct walk *w)
{
	for (size_t i = 0; i < w->n; i++)
		dkv_buf_release(&w->paths[i]);
	free(w->paths);
	dkv_client_path_release(&w->rel);
}

/* Fill w with the entries below path; 0, or 1 after a message. */
static int walk_tree(struct dkv__cli_ctx *x, const struct dkv_buf *path, struct walk *w)
{
	struct dkv__cli_req q;
	*w = (struct walk){.prefix = path};
	dkv__cli_req_init(&q, "get_tree_internal");
	dkv__cli_req_path(&q, path);
	int rc = dkv__cli_stream(x, &q, walk_cb, w);
	dkv__cli_req_release(&q);
	return rc;
}

/* The children of (acl), as enum_internal sends them (result: [names]),
 * in *rep: get_tree_internal fails on a subtree that never existed,
 * enum_internal does not.  0 or 1 after a message. */
static int acl_names(struct dkv__cli_ctx *x, struct dkv_buf *rep)
{
	struct dkv__cli_req q;
	struct dkv_buf path = {0};
	acl_path(x, NULL, 0, NULL, &path);
	dkv__cli_req_init(&q, "enum_internal");
	dkv__cli_req_path(&q, &path);
	dkv__cli_req_bool(&q, "empty", true);
	int rc = dkv__cli_call(x, &q, rep);
	dkv__cli_req_release(&q);
	dkv_buf_release(&path);
	return rc;
}

/* Whether the enum reply rep names name (NULL: any child at all). */
static bool names_have(const struct dkv_buf *rep, const char *name)
{
	const uint8_t *res;
	size_t reslen;
	struct dkv_mp_reader r;
	struct dkv_mp_item it, e;
	if (dkv_client_field(rep->data, rep->len, "result", &res, &reslen) < 0)
		return false;
	dkv_mp_reader_init(&r, res, reslen);
	if (dkv_mp_read(&r, &it) < 0 || it.type != DKV_MP_ARRAY)
		return false;
	if (!name)
		return it.v.n > 0;
	for (uint32_t i = 0; i < it.v.n; i++) {
		struct dkv_mp_reader er = r;
		if (dkv_mp_read(&er, &e) < 0 || dkv_mp_skip(&r) < 0)
			break;
		if (e.type == DKV_MP_STR && dkv_mp_streq(&e, name))
			return true;
	}
	return false;
}

/* Whether (acl) has a child named name (NULL: any).  0 or 1. */
static int acl_named(struct dkv__cli_ctx *x, const char *name, bool *yes)
{
	struct dkv_buf rep = {0};
	int rc = acl_names(x, &rep);
	*yes = rc == 0 && names_have(&rep, name);
	dkv_buf_release(&rep);
	return rc;
}

/* The entries of ACL NAME below path (the entries that have a value;
 * none when there is no such ACL): 0, or 1 after a message. */
static int walk_acl(struct dkv__cli_ctx *x, const char *name, const struct dkv_buf *path,
		    struct walk *w)
{
	bool named;
	*w = (struct walk){.prefix = path};
	int rc = acl_named(x, name, &named);
	if (rc == 0 && named)
		rc = walk_tree(x, path, w);
	return rc;
}

/* Whether the ACL NAME has an entry (a value below (acl, NAME)): 0, or
 * 1 after a message ("no ACL named ..." when it has none). */
static int acl_exists(struct dkv__cli_ctx *x, const char *name)
{
	struct dkv_buf path = {0};
	struct walk w;
	acl_path(x, name, 0, NULL, &path);
	int rc = walk_acl(x, name, &path, &w);
	if (rc == 0 && w.n == 0) {
		fprintf(stderr, "%s: no ACL named '%s'\n", x->cli->progname, name);
		rc = 1;
	}
	walk_release(&w);
	dkv_buf_release(&path);
	return rc;
}

/* ---- reading an entry ---- */

/* The entry at path: *modes (malloc'd; NULL when it has no value) and
 * its chain in *chain (raw msgpack; empty when none).  0 or 1. */
static int read_entry(struct dkv__cli_ctx *x, const struct dkv_buf *path, char **modes,
		      struct dkv_buf *chain)
{
	struct dkv_buf val = {0};
	*modes = NULL;
	int rc = dkv__cli_get(x, "get_internal", path, &val, chain);
	if (rc == 0 && val.len) {
		struct dkv_mp_reader r;
		struct dkv_mp_item it;
		dkv_mp_reader_init(&r, val.data, val.len);
		if (dkv_mp_read(&r, &it) == 0 && it.type == DKV_MP_STR) {
			*modes = dkv_xstrndup((const char *)it.v.s.p, it.v.s.len);
		} else {
			fprintf(stderr, "%s: warning: the entry holds no mode letters; taken as none\n",
				x->cli->progname);
			*modes = dkv_xstrdup("");
		}
	}
	dkv_buf_release(&val);
	return rc;
}

/* ---- acl set ---- */

/* The new modes from the old ones (NULL: no entry) and -a's argument:
 * "LETTERS" replaces, "+LETTERS" adds, "-LETTERS" removes.  Each letter
 * once, in the order first given, so that what is stored reads as
 * typed. */
static char *new_modes(const char *old, char op, const char *letters)
{
	struct dkv_buf in = {0}, out = {0};
	if (op != '=' && old)
		dkv_buf_puts(&in, old);
	if (op != '-')
		dkv_buf_puts(&in, letters);
	for (size_t i = 0; i < in.len; i++) {
		char c = (char)in.data[i];
		if (op == '-' && strchr(letters, c))
			continue;
		if (!out.len || !memchr(out.data, c, out.len))
			dkv_buf_putc(&out, c);
	}
	dkv_buf_release(&in);
	return dkv_buf_cstr(&out);
}

static int cmd_set(struct dkv__cli_ctx *x, int argc, char **argv)
{
	const char *arg = NULL, *name = NULL;
	int first = 0;
	const struct dkv__cli_opt opts[] = {
		{.name = "acl", .letter = 'a', .arg = "MODES", .str = &arg,
		 .help = "the entry's mode letters (" MODE_LETTERS ");\n"
			 "+MODES adds, -MODES removes, '-' alone deletes"},
		{NULL},
	};
	int rc = name_and_options(x, opts, argc, argv, &name, &first);
	if (rc >= 0)
		return rc;
	if (!arg)
		return dkv__cli_usage_error(x, "%s", "missing -a MODES");
	char op = (*arg == '+' || *arg == '-') ? *arg : '=';
	const char *letters = op == '=' ? arg : arg + 1;
	if (op == '+' && !*letters)
		return dkv__cli_usage_error(x, "%s", "-a +: no mode letters to add");
	if ((rc = check_letters(x, letters)))
		return rc;

	struct dkv_buf path = {0}, chain = {0};
	char *old = NULL, *now = NULL, *where = dkv__cli_words_text(argc - first, argv + first, "(root)");
	struct dkv__cli_req q = {0};
	rc = acl_path(x, name, argc - first, argv + first, &path);
	if (rc == 0)
		rc = read_entry(x, &path, &old, &chain);
	if (rc)
		goto out;
	if (op == '-' && !*letters) {
		if (!old) {
			fprintf(stderr, "%s: ACL %s has no entry at %s\n", x->cli->progname, name,
				where);
			rc = 1;
			goto out;
		}
		dkv__cli_req_init(&q, "delete_internal");
	} else {
		now = new_modes(old, op, letters);
		dkv__cli_req_init(&q, "set_internal");
		dkv__cli_req_str(&q, "value", now);
	}
	dkv__cli_req_path(&q, &path);
	struct dkv_buf *b = dkv__cli_req_key(&q, "chain"); /* nobody changed it in between */
	if (old && chain.len)
		dkv_buf_append(b, chain.data, chain.len);
	else
		dkv_mp_nil(b);
	rc = dkv__cli_call(x, &q, NULL);
	if (rc == 0 && x->cli->verbose > 0)
		fprintf(stderr, "%s: ACL %s at %s: '%s' -> %s%s%s\n", x->cli->progname, name, where,
			old ? old : "", now ? "'" : "", now ? now : "(none)", now ? "'" : "");
out:
	dkv__cli_req_release(&q);
	dkv_buf_release(&path);
	dkv_buf_release(&chain);
	free(old);
	free(now);
	free(where);
	return rc;
}

static const struct dkv__cli_cmd set_cmd = {
	.name = "set", .run = cmd_set, .summary = "set the modes of an ACL entry",
	.usage = "acl set NAME -a [+|-]MODES [PATH...]",
	.about = "Set the modes of the entry of ACL NAME for PATH (\"+\" matches one\n"
		 "element, \"#\" one or more).  Mode letters: a acl, r read, w write,\n"
		 "c create, d delete, x access below, e enumerate, n new nodes below.\n",
	.help_col = 20,
};

/* ---- acl get ---- */

static int cmd_get(struct dkv__cli_ctx *x, int argc, char **argv)
{
	const struct dkv__cli_opt opts[] = {{NULL}};
	const char *name = NULL;
	int first = 0;
	int rc = name_and_options(x, opts, argc, argv, &name, &first);
	if (rc >= 0)
		return rc;
	struct dkv_buf path = {0};
	char *modes = NULL;
	rc = acl_path(x, name, argc - first, argv + first, &path);
	if (rc == 0)
		rc = read_entry(x, &path, &modes, NULL);
	if (rc == 0 && modes)
		printf("%s\n", modes);
	else if (rc == 0 && (rc = acl_exists(x, name)) == 0 && x->cli->verbose > 0)
		fprintf(stderr, "%s: no entry\n", x->cli->progname);
	free(modes);
	dkv_buf_release(&path);
	return rc;
}

static const struct dkv__cli_cmd get_cmd = {
	.name = "get", .run = cmd_get, .summary = "print the modes of an ACL entry",
	.usage = "acl get NAME [PATH...]",
	.about = "Print the mode letters of ACL NAME's entry for PATH (nothing when\n"
		 "there is none).  This reads one entry; \"acl test\" asks the matcher.\n",
};

/* ---- acl list ---- */

struct list_state {
	struct dkv__cli_ctx *x;
	struct dkv_client_path rel;
	struct dkv_buf last; /* the last name printed (its encoding) */
	bool any;
};

static int list_cb(void *arg, const uint8_t *m, size_t len)
{
	struct list_state *s = arg;
	if (dkv_client_path_update(&s->rel, m, len) < 0 || s->rel.n == 0)
		return 0;
	const uint8_t *e = s->rel.enc.data;
	size_t elen = s->rel.offs[1];
	if (s->any && s->last.len == elen && !memcmp(s->last.data, e, elen))
		return 0;
	struct dkv_buf out = {0};
	int rc = dkv_pathtext_format(&out, e, elen, 0);
	if (rc == 0) {
		dkv_buf_putc(&out, '\n');
		fwrite(out.data, 1, out.len, stdout);
	}
	dkv_buf_release(&out);
	s->last.len = 0;
	dkv_buf_append(&s->last, e, elen);
	s->any = true;
	return 0;
}

static int cmd_list(struct dkv__cli_ctx *x, int argc, char **argv)
{
	const struct dkv__cli_opt opts[] = {{NULL}};
	int rc = dkv__cli_options(x, opts, argc, argv);
	if (rc >= 0)
		return rc;
	if (optind < argc)
		return dkv__cli_usage_error(x, "unexpected argument '%s'", argv[optind]);
	struct dkv__cli_req q;
	struct dkv_buf path = {0};
	struct list_state s = {.x = x};
	bool any;
	if ((rc = acl_named(x, NULL, &any)) || !any)
		return rc;
	acl_path(x, NULL, 0, NULL, &path);
	dkv__cli_req_init(&q, "get_tree_internal");
	dkv__cli_req_path(&q, &path);
	rc = dkv__cli_stream(x, &q, list_cb, &s);
	dkv__cli_req_release(&q);
	dkv_buf_release(&path);
	dkv_buf_release(&s.last);
	dkv_client_path_release(&s.rel);
	return rc;
}

static const struct dkv__cli_cmd list_cmd = {
	.name = "list", .run = cmd_list, .summary = "list the ACLs",
	.usage = "acl list",
	.about = "Print the names of the ACLs that have entries, one per line.\n",
};

/* ---- acl dump ---- */

static int cmd_dump(struct dkv__cli_ctx *x, int argc, char **argv)
{
	const struct dkv__cli_opt opts[] = {{NULL}};
	const char *name = NULL;
	int first = 0;
	int rc = name_and_options(x, opts, argc, argv, &name, &first);
	if (rc >= 0)
		return rc;
	struct dkv__cli_get_opts o = {
		.action = "get_tree_internal", .as_dict = "_", .mindepth = -1, .maxdepth = -1};
	struct dkv_buf path = {0};
	rc = acl_path(x, name, argc - first, argv + first, &path);
	if (rc == 0)
		rc = acl_exists(x, name);
	if (rc == 0)
		rc = dkv__cli_get_tree(x, &o, &path);
	dkv_buf_release(&path);
	return rc;
}

static const struct dkv__cli_cmd dump_cmd = {
	.name = "dump", .run = cmd_dump, .summary = "print an ACL",
	.usage = "acl dump NAME [PATH...]",
	.about = "Print ACL NAME (below PATH) as one nested mapping, modes under \"_\"\n"
		 "(like \"data get -rd_\").\n",
};

/* ---- acl delete ---- */

static int cmd_delete(struct dkv__cli_ctx *x, int argc, char **argv)
{
	const struct dkv__cli_opt opts[] = {{NULL}};
	const char *name = NULL;
	int first = 0;
	int rc = name_and_options(x, opts, argc, argv, &name, &first);
	if (rc >= 0)
		return rc;
	struct dkv_buf path = {0};
	struct walk w = {0};
	bool changed = false;
	rc = acl_path(x, name, argc - first, argv + first, &path);
	if (rc)
		goto out;
	if (first < argc) {
		rc = dkv__cli_delete(x, "delete_internal", &path, &changed);
		if (rc == 0 && !changed) {
			char *where = dkv__cli_words_text(argc - first, argv + first, "(root)");
			fprintf(stderr, "%s: ACL %s has no entry at %s\n", x->cli->progname, name,
				where);
			free(where);
			rc = 1;
		}
		goto out;
	}
	/* No internal delete_tree: delete the entries one by one. */
	rc = walk_acl(x, name, &path, &w);
	for (size_t i = 0; rc == 0 && i < w.n; i++)
		rc = dkv__cli_delete(x, "delete_internal", &w.paths[i], &changed);
	if (rc == 0 && w.n == 0) {
		fprintf(stderr, "%s: no ACL named '%s'\n", x->cli->progname, name);
		rc = 1;
	}
out:
	walk_release(&w);
	dkv_buf_release(&path);
	return rc;
}

static const struct dkv__cli_cmd delete_cmd = {
	.name = "delete", .run = cmd_delete, .summary = "delete an ACL entry or a whole ACL",
	.usage = "acl delete NAME [PATH...]",
	.about = "Delete ACL NAME's entry for PATH; without PATH, every entry of the ACL.\n",
};

/* ---- acl test ---- */

static int cmd_test(struct dkv__cli_ctx *x, int argc, char **argv)
{
	const char *mode = NULL, *acl = NULL;
	const struct dkv__cli_opt opts[] = {
		{.name = "mode", .letter = 'a', .arg = "MODE", .str = &mode,
		 .help = "the mode letter to test; without it, print\n"
			 "the matching entry's modes"},
		{.name = "acl", .letter = 'N', .arg = "NAME", .str = &acl,
		 .help = "test ACL NAME instead of the session's"},
		{NULL},
	};
	int rc = dkv__cli_options(x, opts, argc, argv);
	if (rc >= 0)
		return rc;
	if (mode && strlen(mode) != 1)
		return dkv__cli_usage_error(x, "-a wants one mode letter, not '%s'", mode);
	if (mode && (rc = check_letters(x, mode)))
		return rc;
	struct dkv__cli_req q;
	struct dkv_buf path = {0}, rep = {0};
	dkv__cli_req_init(&q, "test_acl");
	rc = dkv__cli_parse_path(x, argc - optind, argv + optind, &path);
	if (rc)
		goto out;
	dkv__cli_req_path(&q, &path);
	if (mode)
		dkv__cli_req_str(&q, "mode", mode);
	if (acl)
		dkv__cli_req_str(&q, "acl", acl);
	rc = dkv__cli_call(x, &q, &rep);
	if (rc)
		goto out;
	const uint8_t *v;
	size_t vlen;
	struct dkv_mp_reader r;
	struct dkv_mp_item it = {.type = DKV_MP_NIL};
	if (dkv_client_field(rep.data, rep.len, "access", &v, &vlen) == 0) {
		dkv_mp_reader_init(&r, v, vlen);
		if (dkv_mp_read(&r, &it) < 0)
			it.type = DKV_MP_NIL;
	}
	if (it.type == DKV_MP_BOOL)
		printf("%s\n", it.v.b ? "+" : "-");
	else if (it.type == DKV_MP_STR)
		printf("%.*s\n", (int)it.v.s.len, (const char *)it.v.s.p);
	else
		printf("-\n");
out:
	dkv__cli_req_release(&q);
	dkv_buf_release(&path);
	dkv_buf_release(&rep);
	return rc;
}

static const struct dkv__cli_cmd test_cmd = {
	.name = "test", .run = cmd_test, .summary = "ask what an ACL allows at a path",
	.usage = "acl test [-a MODE] [-N NAME] [PATH...]",
	.about = "Ask the server's matcher about the data path PATH: with -a, print\n"
		 "+ when the session's ACL (or NAME's) allows MODE there, else -;\n"
		 "without it, the matching entry's modes, or - when none matches.\n",
	.help_col = 20,
};

const struct dkv__cli_cmd *const dkv__cli_acl_cmds[] = {
	&set_cmd, &get_cmd, &list_cmd, &dump_cmd, &delete_cmd, &test_cmd, NULL,
};
