/*
 * code.c - the code commands: set, get, list, delete, and the "code
 * module" group with the same four.
 *
 * A procedure is the internal entry (code, PATH...), a module the entry
 * (module, PATH...); engine/code.h says what their records hold.  The
 * server compiles a record before it stores it and refuses one that does
 * not compile (with the line and Python's message), so these commands
 * only read and write records with the *_internal actions.  "set" reads
 * the record first and writes it back with the chain it read: what the
 * command line does not change (the info, the vars, keys of the runners)
 * stays, and a change made in between is refused instead of lost.
 */
#include "client_int.h"

#include "distkv.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* What a command works on: procedures or modules. */
struct kind {
	const char *elem;   /* the first element below None */
	const char *noun;   /* for messages: "no code at ..." */
	const char *prompt; /* asking for the text on a terminal */
};

static const struct kind procs = {DKV_CODE_ELEM, "code", "Enter the Python script."};
static const struct kind modules = {DKV_MODULE_ELEM, "module", "Enter the Python module."};

/* ---- words ---- */

/* The internal path (elem, words...); 0 or EXIT_USAGE after a message.
 * An empty PATH would name the whole store: refused. */
static int record_path(struct dkv__cli_ctx *x, const struct kind *k, int argc, char **argv,
		       bool need, struct dkv_buf *path)
{
	if (need && argc < 1)
		return dkv__cli_usage_error(x, "%s", "missing PATH");
	dkv_mp_cstr(path, k->elem);
	return dkv__cli_parse_path(x, argc, argv, path);
}

static int no_record(struct dkv__cli_ctx *x, const struct kind *k, int argc, char **argv)
{
	char *where = dkv__cli_words_text(argc, argv, "");
	fprintf(stderr, "%s: no %s at %s\n", x->cli->progname, k->noun, where);
	free(where);
	return 1;
}

/* ---- files ---- */

/* Up to end of file.  A short count from fread means end of file (or an
 * error): asking again would read a terminal past its Ctrl-D. */
static void read_all(FILE *f, struct dkv_buf *out)
{
	char chunk[4096];
	size_t n;
	do {
		n = fread(chunk, 1, sizeof chunk, f);
		dkv_buf_append(out, chunk, n);
	} while (n == sizeof chunk);
}

/* The text of a script: FILE, else standard input ("PROMPT" first on a
 * terminal, then everything up to end of file).  0, or 1 after a
 * message. */
static int read_script(struct dkv__cli_ctx *x, const struct kind *k, const char *file,
		       struct dkv_buf *out)
{
	if (!file) {
		if (isatty(STDIN_FILENO))
			fprintf(stderr, "%s\n", k->prompt);
		read_all(stdin, out);
		if (ferror(stdin)) {
			fprintf(stderr, "%s: cannot read standard input\n", x->cli->progname);
			return 1;
		}
		return 0;
	}
	FILE *f = fopen(file, "r");
	if (!f) {
		fprintf(stderr, "%s: %s: %s\n", x->cli->progname, file, strerror(errno));
		return 1;
	}
	read_all(f, out);
	int rc = ferror(f) ? 1 : 0;
	if (rc)
		fprintf(stderr, "%s: %s: cannot read\n", x->cli->progname, file);
	fclose(f);
	return rc;
}

static bool blank(const struct dkv_buf *b)
{
	for (size_t i = 0; i < b->len; i++)
		if (!strchr(" \t\r\n\f\v", b->data[i]))
			return false;
	return true;
}

/* ---- records ---- */

static bool key_in(const struct dkv_mp_item *k, const char *const *keys)
{
	for (; *keys; keys++)
		if (dkv_mp_streq(k, *keys))
			return true;
	return false;
}

/* Append the pairs of the map m[0..n) whose key is not one of keys
 * (NULL-terminated); returns how many.  Not a map: none. */
static uint32_t copy_other_pairs(struct dkv_buf *out, const uint8_t *m, size_t n,
				 const char *const *keys)
{
	struct dkv_mp_reader r;
	struct dkv_mp_item it, k;
	uint32_t count = 0;
	dkv_mp_reader_init(&r, m, n);
	if (dkv_mp_read(&r, &it) < 0 || it.type != DKV_MP_MAP)
		return 0;
	for (uint32_t i = 0; i < it.v.n; i++) {
		const uint8_t *start = r.p;
		struct dkv_mp_reader kr = r;
		if (dkv_mp_read(&kr, &k) < 0 || dkv_mp_skip(&r) < 0 || dkv_mp_skip(&r) < 0)
			break;
		if (k.type == DKV_MP_STR && key_in(&k, keys))
			continue;
		dkv_buf_append(out, start, (size_t)(r.p - start));
		count++;
	}
	return count;
}

/* The item under key in the map m[0..n): 0 with its encoding, or
 * -ENOENT. */
static int map_field(const uint8_t *m, size_t n, const char *key, const uint8_t **v, size_t *vlen)
{
	return m && n ? dkv_client_field(m, n, key, v, vlen) : -ENOENT;
}

/* The string under key in the map m[0..n), or false. */
static bool map_str(const uint8_t *m, size_t n, const char *key, struct dkv_mp_item *s)
{
	const uint8_t *v;
	size_t vlen;
	struct dkv_mp_reader r;
	if (map_field(m, n, key, &v, &vlen) < 0)
		return false;
	dkv_mp_reader_init(&r, v, vlen);
	return dkv_mp_read(&r, s) == 0 && s->type == DKV_MP_STR;
}

/* Store value at path, on the condition that the entry still has the
 * chain read before (none: that it still has no value).  0 or 1. */
static int write_record(struct dkv__cli_ctx *x, const struct dkv_buf *path,
			const struct dkv_buf *value, const struct dkv_buf *chain)
{
	struct dkv__cli_req q;
	dkv__cli_req_init(&q, "set_internal");
	dkv__cli_req_path(&q, path);
	dkv_buf_append(dkv__cli_req_key(&q, "value"), value->data, value->len);
	struct dkv_buf *b = dkv__cli_req_key(&q, "chain");
	if (chain->len)
		dkv_buf_append(b, chain->data, chain->len);
	else
		dkv_mp_nil(b);
	int rc = dkv__cli_call(x, &q, NULL);
	dkv__cli_req_release(&q);
	return rc;
}

/* ---- code set ---- */

struct set_args {
	bool async_, thread;
	const char *info, *script;
	const char *vars[DKV_CODE_MAX_VARS];
	unsigned nvars;
};

static int opt_var(const struct dkv__cli_optarg *a)
{
	struct set_args *s = a->data;
	if (s->nvars == DKV_CODE_MAX_VARS)
		return dkv__cli_usage_error(a->x, "%s", "too many -v VAR (at most 64)");
	for (unsigned i = 0; i < s->nvars; i++)
		if (!strcmp(s->vars[i], a->arg))
			return 0;
	s->vars[s->nvars++] = a->arg;
	return 0;
}

/* The new record: old's pairs, with what the command line gives in place
 * of theirs.  script empty: keep old's code. */
static void new_proc(struct dkv_buf *out, const struct set_args *s, const struct dkv_buf *script,
		     const struct dkv_buf *old)
{
	static const char *const keys[] = {"code", "is_async", "vars", "info", NULL};
	struct dkv_buf body = {0};
	const uint8_t *v;
	size_t vlen;
	uint32_t n = copy_other_pairs(&body, old->data, old->len, keys);

	dkv_mp_cstr(&body, "code");
	if (script->len)
		dkv_mp_str(&body, script->data, script->len);
	else if (map_field(old->data, old->len, "code", &v, &vlen) == 0)
		dkv_buf_append(&body, v, vlen);
	dkv_mp_cstr(&body, "is_async");
	if (s->async_ || s->thread)
		dkv_mp_bool(&body, s->async_);
	else if (map_field(old->data, old->len, "is_async", &v, &vlen) == 0)
		dkv_buf_append(&body, v, vlen);
	else
		dkv_mp_nil(&body);
	dkv_mp_cstr(&body, "vars");
	if (s->nvars) {
		dkv_mp_array(&body, s->nvars);
		for (unsigned i = 0; i < s->nvars; i++)
			dkv_mp_cstr(&body, s->vars[i]);
	} else if (map_field(old->data, old->len, "vars", &v, &vlen) == 0) {
		dkv_buf_append(&body, v, vlen);
	} else {
		dkv_mp_array(&body, 0);
	}
	n += 3;
	if (s->info || map_field(old->data, old->len, "info", &v, &vlen) == 0) {
		dkv_mp_cstr(&body, "info");
		if (s->info)
			dkv_mp_cstr(&body, s->info);
		else
			dkv_buf_append(&body, v, vlen);
		n++;
	}
	dkv_mp_map(out, n);
	dkv_buf_append(out, body.data, body.len);
	dkv_buf_release(&body);
}

static int cmd_set(struct dkv__cli_ctx *x, int argc, char **argv)
{
	struct set_args s = {0};
	const struct dkv__cli_opt opts[] = {
		{.name = "async", .letter = 'a', .flag = &s.async_, .help = "an async procedure"},
		{.name = "thread", .letter = 't', .flag = &s.thread,
		 .help = "a plain procedure to run in a worker thread"},
		{.name = "var", .letter = 'v', .arg = "VAR", .fn = opt_var, .data = &s,
		 .help = "a parameter of the procedure (repeat for more;\n"
			 "replaces the stored list)"},
		{.name = "info", .letter = 'i', .arg = "INFO", .str = &s.info,
		 .help = "a line about the code, for listings"},
		{.name = "script", .letter = 's', .arg = "FILE", .str = &s.script,
		 .help = "read the script from FILE, not standard input"},
		{NULL},
	};
	int rc = dkv__cli_options(x, opts, argc, argv);
	if (rc >= 0)
		return rc;
	if (s.async_ && s.thread)
		return dkv__cli_usage_error(x, "%s", "-a and -t exclude each other");
	struct dkv_buf path = {0}, script = {0}, old = {0}, chain = {0}, value = {0};
	rc = record_path(x, &procs, argc - optind, argv + optind, true, &path);
	if (rc == 0)
		rc = read_script(x, &procs, s.script, &script);
	if (rc == 0 && blank(&script))
		script.len = 0;
	if (rc == 0)
		rc = dkv__cli_get(x, "get_internal", &path, &old, &chain);
	const uint8_t *v;
	size_t vlen;
	if (rc == 0 && !script.len && map_field(old.data, old.len, "code", &v, &vlen) < 0) {
		fprintf(stderr, "%s: no script (give it on standard input or with -s FILE)\n",
			x->cli->progname);
		rc = 1;
	}
	if (rc == 0) {
		new_proc(&value, &s, &script, &old);
		rc = write_record(x, &path, &value, &chain);
	}
	dkv_buf_release(&path);
	dkv_buf_release(&script);
	dkv_buf_release(&old);
	dkv_buf_release(&chain);
	dkv_buf_release(&value);
	return rc;
}

static const struct dkv__cli_cmd set_cmd = {
	.name = "set", .run = cmd_set, .summary = "store a procedure",
	.usage = "code set [-a|-t] [-v VAR]... [-i INFO] [-s FILE] PATH...",
	.about = "Store the script on standard input (or in FILE) as the procedure at\n"
		 "PATH.  The server compiles it as the body of a function whose\n"
		 "parameters are the VARs (so \"return 42\" is valid) and refuses it\n"
		 "when it does not compile; nothing runs it here.  What is not given\n"
		 "stays as stored: an empty standard input keeps the script.\n",
	.help_col = 20,
};

/* ---- get, list and delete, for either kind ---- */

static int get_record(struct dkv__cli_ctx *x, const struct kind *k, int argc, char **argv)
{
	const char *file = NULL;
	const struct dkv__cli_opt opts[] = {
		{.name = "script", .letter = 's', .arg = "FILE", .str = &file,
		 .help = "write the script to FILE and leave it out"},
		{NULL},
	};
	int rc = dkv__cli_options(x, opts, argc, argv);
	if (rc >= 0)
		return rc;
	static const char *const code_key[] = {"code", NULL};
	struct dkv_buf path = {0}, value = {0}, shown = {0}, rest = {0};
	struct dkv_mp_item code;
	rc = record_path(x, k, argc - optind, argv + optind, true, &path);
	if (rc == 0)
		rc = dkv__cli_get(x, "get_internal", &path, &value, NULL);
	if (rc == 0 && !value.len)
		rc = no_record(x, k, argc - optind, argv + optind);
	if (rc)
		goto out;
	if (file && map_str(value.data, value.len, "code", &code)) {
		FILE *f = fopen(file, "w");
		if (!f || fwrite(code.v.s.p, 1, code.v.s.len, f) != code.v.s.len) {
			fprintf(stderr, "%s: %s: %s\n", x->cli->progname, file, strerror(errno));
			rc = 1;
		}
		if (f && fclose(f) && !rc) {
			fprintf(stderr, "%s: %s: %s\n", x->cli->progname, file, strerror(errno));
			rc = 1;
		}
		if (rc)
			goto out;
		uint32_t n = copy_other_pairs(&rest, value.data, value.len, code_key);
		dkv_mp_map(&shown, n);
		dkv_buf_append(&shown, rest.data, rest.len);
	} else {
		dkv_buf_append(&shown, value.data, value.len);
	}
	rc = dkv__cli_print_yaml(x, shown.data, shown.len);
out:
	dkv_buf_release(&path);
	dkv_buf_release(&value);
	dkv_buf_release(&shown);
	dkv_buf_release(&rest);
	return rc;
}

struct list_state {
	struct dkv__cli_ctx *x;
	const struct dkv_buf *prefix; /* PATH's elements, below elem */
	struct dkv_client_path rel;
};

/* "PATH :: INFO" for one record; INFO is its info, or how long it is. */
static void print_line(const struct dkv_buf *prefix, const uint8_t *rel, size_t rlen,
		       const uint8_t *value, size_t vlen)
{
	struct dkv_buf full = {0}, out = {0};
	struct dkv_path_iter it;
	const uint8_t *e;
	size_t elen;
	struct dkv_mp_item s;
	dkv_buf_append(&full, prefix->data, prefix->len);
	dkv_buf_append(&full, rel, rlen);
	dkv_path_iter_init(&it, full.data, full.len);
	for (bool first = true; dkv_path_iter_next(&it, &e, &elen); first = false) {
		if (!first)
			dkv_buf_putc(&out, ' ');
		dkv_pathtext_format(&out, e, elen, 0);
	}
	dkv_buf_puts(&out, " :: ");
	if (map_str(value, vlen, "info", &s)) {
		dkv_buf_append(&out, s.v.s.p, s.v.s.len);
	} else if (map_str(value, vlen, "code", &s)) {
		size_t lines = 0;
		for (uint32_t i = 0; i < s.v.s.len; i++)
			lines += s.v.s.p[i] == '\n';
		if (s.v.s.len && s.v.s.p[s.v.s.len - 1] != '\n')
			lines++;
		dkv_buf_printf(&out, "<%zu line%s>", lines, lines == 1 ? "" : "s");
	} else {
		dkv_buf_puts(&out, "<not a record>");
	}
	dkv_buf_putc(&out, '\n');
	fwrite(out.data, 1, out.len, stdout);
	dkv_buf_release(&full);
	dkv_buf_release(&out);
}

static int list_cb(void *arg, const uint8_t *m, size_t len)
{
	struct list_state *s = arg;
	const uint8_t *v;
	size_t vlen;
	if (dkv_client_path_update(&s->rel, m, len) < 0 ||
	    dkv_client_field(m, len, "value", &v, &vlen) < 0)
		return 0;
	print_line(s->prefix, s->rel.enc.data, s->rel.enc.len, v, vlen);
	return 0;
}

static int list_records(struct dkv__cli_ctx *x, const struct kind *k, int argc, char **argv)
{
	const struct dkv__cli_opt opts[] = {{NULL}};
	int rc = dkv__cli_options(x, opts, argc, argv);
	if (rc >= 0)
		return rc;
	struct dkv_buf path = {0}, prefix = {0}, value = {0};
	struct list_state s = {.x = x, .prefix = &prefix};
	bool deeper;
	rc = record_path(x, k, argc - optind, argv + optind, false, &path);
	if (rc == 0)
		rc = dkv__cli_parse_path(x, argc - optind, argv + optind, &prefix);
	if (rc == 0)
		rc = dkv__cli_has_children(x, "enum_internal", &path, &deeper);
	if (rc == 0 && deeper) {
		struct dkv__cli_req q;
		dkv__cli_req_init(&q, "get_tree_internal");
		dkv__cli_req_path(&q, &path);
		rc = dkv__cli_stream(x, &q, list_cb, &s);
		dkv__cli_req_release(&q);
	} else if (rc == 0) {
		rc = dkv__cli_get(x, "get_internal", &path, &value, NULL);
		if (rc == 0 && value.len)
			print_line(&prefix, NULL, 0, value.data, value.len);
	}
	dkv_client_path_release(&s.rel);
	dkv_buf_release(&path);
	dkv_buf_release(&prefix);
	dkv_buf_release(&value);
	return rc;
}

static int delete_record(struct dkv__cli_ctx *x, const struct kind *k, int argc, char **argv)
{
	const struct dkv__cli_opt opts[] = {{NULL}};
	int rc = dkv__cli_options(x, opts, argc, argv);
	if (rc >= 0)
		return rc;
	struct dkv_buf path = {0};
	bool changed;
	rc = record_path(x, k, argc - optind, argv + optind, true, &path);
	if (rc == 0)
		rc = dkv__cli_delete(x, "delete_internal", &path, &changed);
	if (rc == 0 && !changed)
		rc = no_record(x, k, argc - optind, argv + optind);
	dkv_buf_release(&path);
	return rc;
}

static int cmd_get(struct dkv__cli_ctx *x, int argc, char **argv)
{
	return get_record(x, &procs, argc, argv);
}

static int cmd_list(struct dkv__cli_ctx *x, int argc, char **argv)
{
	return list_records(x, &procs, argc, argv);
}

static int cmd_delete(struct dkv__cli_ctx *x, int argc, char **argv)
{
	return delete_record(x, &procs, argc, argv);
}

static const struct dkv__cli_cmd get_cmd = {
	.name = "get", .run = cmd_get, .summary = "print a procedure",
	.usage = "code get [-s FILE] PATH...",
	.about = "Print the procedure at PATH as YAML, its script included (with -s,\n"
		 "the script goes to FILE instead).\n",
	.help_col = 20,
};

static const struct dkv__cli_cmd list_cmd = {
	.name = "list", .run = cmd_list, .summary = "list the procedures",
	.usage = "code list [PATH...]",
	.about = "Print \"PATH :: INFO\" for each procedure at or below PATH (INFO: its\n"
		 "info, or its length in lines).\n",
};

static const struct dkv__cli_cmd delete_cmd = {
	.name = "delete", .run = cmd_delete, .summary = "delete a procedure",
	.usage = "code delete PATH...",
	.about = "Delete the procedure at PATH.\n",
};

/* ---- code module ---- */

static int cmd_module_set(struct dkv__cli_ctx *x, int argc, char **argv)
{
	const char *file = NULL;
	const struct dkv__cli_opt opts[] = {
		{.name = "script", .letter = 's', .arg = "FILE", .str = &file,
		 .help = "read the module from FILE, not standard input"},
		{NULL},
	};
	int rc = dkv__cli_options(x, opts, argc, argv);
	if (rc >= 0)
		return rc;
	static const char *const code_key[] = {"code", NULL};
	struct dkv_buf path = {0}, text = {0}, old = {0}, chain = {0}, body = {0}, value = {0};
	rc = record_path(x, &modules, argc - optind, argv + optind, true, &path);
	if (rc == 0)
		rc = read_script(x, &modules, file, &text);
	if (rc == 0)
		rc = dkv__cli_get(x, "get_internal", &path, &old, &chain);
	if (rc == 0) {
		uint32_t n = copy_other_pairs(&body, old.data, old.len, code_key);
		dkv_mp_map(&value, n + 1);
		dkv_buf_append(&value, body.data, body.len);
		dkv_mp_cstr(&value, "code");
		dkv_mp_str(&value, text.data, text.len);
		rc = write_record(x, &path, &value, &chain);
	}
	dkv_buf_release(&path);
	dkv_buf_release(&text);
	dkv_buf_release(&old);
	dkv_buf_release(&chain);
	dkv_buf_release(&body);
	dkv_buf_release(&value);
	return rc;
}

static int cmd_module_get(struct dkv__cli_ctx *x, int argc, char **argv)
{
	return get_record(x, &modules, argc, argv);
}

static int cmd_module_list(struct dkv__cli_ctx *x, int argc, char **argv)
{
	return list_records(x, &modules, argc, argv);
}

static int cmd_module_delete(struct dkv__cli_ctx *x, int argc, char **argv)
{
	return delete_record(x, &modules, argc, argv);
}

static const struct dkv__cli_cmd module_set_cmd = {
	.name = "set", .run = cmd_module_set, .summary = "store a module",
	.usage = "code module set [-s FILE] NAME...",
	.about = "Store the text on standard input (or in FILE) as the module NAME.\n"
		 "The server compiles it as a module and refuses it when it does not\n"
		 "compile; nothing runs it here.\n",
	.help_col = 20,
};

static const struct dkv__cli_cmd module_get_cmd = {
	.name = "get", .run = cmd_module_get, .summary = "print a module",
	.usage = "code module get [-s FILE] NAME...",
	.about = "Print the module NAME as YAML (with -s, its text goes to FILE instead).\n",
	.help_col = 20,
};

static const struct dkv__cli_cmd module_list_cmd = {
	.name = "list", .run = cmd_module_list, .summary = "list the modules",
	.usage = "code module list [NAME...]",
	.about = "Print \"NAME :: <N lines>\" for each module at or below NAME.\n",
};

static const struct dkv__cli_cmd module_delete_cmd = {
	.name = "delete", .run = cmd_module_delete, .summary = "delete a module",
	.usage = "code module delete NAME...",
	.about = "Delete the module NAME.\n",
};

static const struct dkv__cli_cmd *const module_cmds[] = {
	&module_set_cmd, &module_get_cmd, &module_list_cmd, &module_delete_cmd, NULL,
};

static const struct dkv__cli_group module_group = {
	.name = "code module", .cmds = module_cmds, .summary = "manage stored Python modules",
	.usage = "code module COMMAND [OPTIONS] NAME...",
	.footer = "\nNAME is one word per path element in colon notation (doc/cli.md).\n",
};

static int cmd_module(struct dkv__cli_ctx *x, int argc, char **argv)
{
	return dkv__cli_run_group(x, &module_group, argc, argv);
}

static const struct dkv__cli_cmd module_cmd = {
	.name = "module", .run = cmd_module, .summary = "manage modules (set, get, list, delete)",
	.usage = "code module COMMAND ...",
};

const struct dkv__cli_cmd *const dkv__cli_code_cmds[] = {
	&set_cmd, &get_cmd, &list_cmd, &delete_cmd, &module_cmd, NULL,
};
