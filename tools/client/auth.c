/*
 * auth.c - the auth commands: which login method the server uses (list,
 * init) and the users of a method (user add, list, get, modify, delete).
 *
 * "auth" takes an option of its own before the command, -m METHOD; the
 * user commands are a group of their own below it ("auth -m password
 * user add name=joe password?=Code").  Users travel as doc/protocol.md's
 * auth_* actions: a password is sealed to the connection's auth_key and
 * never sent in clear, and the server never sends a hash back, so
 * nothing printed here can hold one.  These are admin commands: a few
 * requests each, so every one simply waits for its answer.
 */
#include "client_int.h"

#include "distkv.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define METHOD_NAMES "root, _test, password"

/* ---- reading replies ---- */

/* The string field key of the map m[0..n): malloc'd, or NULL when it is
 * absent or not a string. */
static char *field_str(const uint8_t *m, size_t n, const char *key)
{
	const uint8_t *v;
	size_t vlen;
	struct dkv_mp_reader r;
	struct dkv_mp_item it;
	if (dkv_client_field(m, n, key, &v, &vlen) < 0)
		return NULL;
	dkv_mp_reader_init(&r, v, vlen);
	if (dkv_mp_read(&r, &it) < 0 || (it.type != DKV_MP_STR && it.type != DKV_MP_BIN))
		return NULL;
	return dkv_xstrndup((const char *)it.v.s.p, it.v.s.len);
}

/* The method logins must use now (auth_info): 0 with *cur malloc'd, or
 * NULL when none is chosen; 1 after a message. */
static int current_method(struct dkv__cli_ctx *x, char **cur)
{
	struct dkv__cli_req q;
	struct dkv_buf rep = {0};
	const uint8_t *v;
	size_t vlen;
	*cur = NULL;
	dkv__cli_req_init(&q, "auth_info");
	int rc = dkv__cli_call(x, &q, &rep);
	if (rc == 0 && dkv_client_field(rep.data, rep.len, "value", &v, &vlen) == 0)
		*cur = field_str(v, vlen, "current");
	if (*cur && !strcmp(*cur, "root")) {
		free(*cur);
		*cur = NULL;
	}
	dkv__cli_req_release(&q);
	dkv_buf_release(&rep);
	return rc;
}

/* The internal path (auth [, METHOD, user [, NAME]]). */
static void auth_path(struct dkv_buf *p, const char *method, const char *name)
{
	dkv_mp_cstr(p, "auth");
	if (method) {
		dkv_mp_cstr(p, method);
		dkv_mp_cstr(p, "user");
	}
	if (name)
		dkv_mp_cstr(p, name);
}

/* The methods that have records (enum_internal of (auth)): their names
 * as an enum reply holds them, in *rep; 0 or 1 after a message. */
static int configured_methods(struct dkv__cli_ctx *x, struct dkv_buf *rep)
{
	struct dkv__cli_req q;
	struct dkv_buf path = {0};
	auth_path(&path, NULL, NULL);
	dkv__cli_req_init(&q, "enum_internal");
	dkv__cli_req_path(&q, &path);
	dkv__cli_req_bool(&q, "empty", true);
	int rc = dkv__cli_call(x, &q, rep);
	dkv__cli_req_release(&q);
	dkv_buf_release(&path);
	return rc;
}

/* Call fn for each string in the enum reply's result; stops at the first
 * non-zero return and returns it. */
static int each_name(const struct dkv_buf *rep, int (*fn)(void *arg, const char *s, size_t len),
		     void *arg)
{
	const uint8_t *res;
	size_t reslen;
	struct dkv_mp_reader r;
	struct dkv_mp_item it, e;
	if (dkv_client_field(rep->data, rep->len, "result", &res, &reslen) < 0)
		return 0;
	dkv_mp_reader_init(&r, res, reslen);
	if (dkv_mp_read(&r, &it) < 0 || it.type != DKV_MP_ARRAY)
		return 0;
	for (uint32_t i = 0; i < it.v.n; i++) {
		struct dkv_mp_reader er = r;
		if (dkv_mp_read(&er, &e) < 0 || dkv_mp_skip(&r) < 0)
			break;
		if (e.type != DKV_MP_STR)
			continue; /* not a method's name */
		int rc = fn(arg, (const char *)e.v.s.p, e.v.s.len);
		if (rc)
			return rc;
	}
	return 0;
}

/* ---- the method ---- */

static int check_method(struct dkv__cli_ctx *x, const char *m)
{
	if (dkv_auth_method_parse((const uint8_t *)m, strlen(m)) == DKV_AUTH_NONE) {
		fprintf(stderr, "%s: unknown auth method '%s' (known: " METHOD_NAMES ")\n",
			x->cli->progname, m);
		return EXIT_USAGE;
	}
	return 0;
}

struct only_one {
	char *name; /* the first method seen */
	int count;
};

static int count_method(void *arg, const char *s, size_t len)
{
	struct only_one *o = arg;
	if (len == 4 && !memcmp(s, "root", 4))
		return 0;
	if (!o->count++)
		o->name = dkv_xstrndup(s, len);
	return 0;
}

/* The method a command acts on: -m, else the server's current one, else
 * the only one that has records.  0 with *out malloc'd, else the exit
 * status after a message. */
static int resolve_method(struct dkv__cli_ctx *x, char **out)
{
	*out = NULL;
	if (x->method) {
		int rc = check_method(x, x->method);
		if (rc == 0)
			*out = dkv_xstrdup(x->method);
		return rc;
	}
	int rc = current_method(x, out);
	if (rc || *out)
		return rc;
	struct dkv_buf rep = {0};
	struct only_one o = {0};
	rc = configured_methods(x, &rep);
	if (rc == 0)
		each_name(&rep, count_method, &o);
	dkv_buf_release(&rep);
	if (rc)
		return rc;
	if (o.count == 1) {
		*out = o.name;
		return 0;
	}
	free(o.name);
	return dkv__cli_usage_error(x, "%s", "say which method with -m");
}

/* ---- auth list ---- */

static int print_method(void *arg, const char *s, size_t len)
{
	(void)arg;
	printf("%.*s\n", (int)len, s);
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
	struct dkv_buf rep = {0};
	rc = configured_methods(x, &rep);
	if (rc == 0)
		each_name(&rep, print_method, NULL);
	dkv_buf_release(&rep);
	return rc;
}

static const struct dkv__cli_cmd list_cmd = {
	.name = "list", .run = cmd_list, .summary = "list the methods that have users",
	.usage = "auth list",
	.about = "Print the login methods the server has records for, one per line.\n",
};

/* ---- auth init ---- */

static int cmd_init(struct dkv__cli_ctx *x, int argc, char **argv)
{
	bool sw = false;
	const struct dkv__cli_opt opts[] = {
		{.name = "switch", .letter = 's', .flag = &sw,
		 .help = "switch even when another method is in use"},
		{NULL},
	};
	int rc = dkv__cli_options(x, opts, argc, argv);
	if (rc >= 0)
		return rc;
	if (optind < argc)
		return dkv__cli_usage_error(x, "unexpected argument '%s'", argv[optind]);
	char *method = NULL, *cur = NULL;
	rc = resolve_method(x, &method);
	if (rc == 0)
		rc = current_method(x, &cur);
	if (rc)
		goto out;
	bool off = !strcmp(method, "root");
	if (cur && strcmp(cur, method) && !sw) {
		fprintf(stderr, "%s: authorization is already set up (%s); use -s to switch\n",
			x->cli->progname, cur);
		rc = 1;
		goto out;
	}
	struct dkv__cli_req q;
	dkv__cli_req_init(&q, "set_auth_typ");
	dkv__cli_req_str(&q, "typ", method);
	rc = dkv__cli_call(x, &q, NULL);
	dkv__cli_req_release(&q);
	if (rc == 0 && sw && x->cli->verbose >= 0) {
		if (off)
			printf("Authorization turned off.\n");
		else
			printf("Authorization switched to %s\n", method);
	}
out:
	free(method);
	free(cur);
	return rc;
}

static const struct dkv__cli_cmd init_cmd = {
	.name = "init", .run = cmd_init, .summary = "choose the method logins must use",
	.usage = "auth [-m METHOD] init [-s]",
	.about = "Make METHOD the method every client must log in with (root:\n"
		 "nobody logs in).  Refused when another method is in use, unless\n"
		 "-s is given; then it says what it did.\n",
	.help_col = 18,
};

/* ---- the user commands: words and --aux ---- */

struct aux_opts {
	char **kv; /* "key=value" as given */
	size_t n;
};

static int opt_aux(const struct dkv__cli_optarg *a)
{
	struct aux_opts *o = a->data;
	const char *eq = strchr(a->arg, '=');
	if (!eq || eq == a->arg)
		return dkv__cli_usage_error(a->x, "--aux wants KEY=VALUE, not '%s'", a->arg);
	o->kv = dkv_xrealloc(o->kv, (o->n + 1) * sizeof(*o->kv));
	o->kv[o->n++] = (char *)a->arg;
	return 0;
}

/* Whether --aux sets or removes key. */
static bool aux_given(const struct aux_opts *o, const uint8_t *key, size_t len)
{
	for (size_t i = 0; i < o->n; i++) {
		size_t kl = (size_t)(strchr(o->kv[i], '=') - o->kv[i]);
		if (kl == len && !memcmp(o->kv[i], key, len))
			return true;
	}
	return false;
}

/* The aux map to send: old's pairs (raw msgpack map or NULL) that --aux
 * does not name, then --aux's pairs with a value; a later --aux of the
 * same key wins. */
static void aux_merge(struct dkv_buf *out, const uint8_t *old, size_t oldlen,
		      const struct aux_opts *o)
{
	struct dkv_buf pairs = {0};
	uint32_t n = 0;
	struct dkv_mp_reader r;
	struct dkv_mp_item it, k;
	if (old) {
		dkv_mp_reader_init(&r, old, oldlen);
		if (dkv_mp_read(&r, &it) == 0 && it.type == DKV_MP_MAP) {
			for (uint32_t i = 0; i < it.v.n; i++) {
				const uint8_t *start = r.p;
				struct dkv_mp_reader kr = r;
				if (dkv_mp_read(&kr, &k) < 0 || dkv_mp_skip(&r) < 0 ||
				    dkv_mp_skip(&r) < 0)
					break;
				if (k.type == DKV_MP_STR && aux_given(o, k.v.s.p, k.v.s.len))
					continue;
				dkv_buf_append(&pairs, start, (size_t)(r.p - start));
				n++;
			}
		}
	}
	for (size_t i = 0; i < o->n; i++) {
		const char *eq = strchr(o->kv[i], '=');
		bool later = false;
		for (size_t j = i + 1; j < o->n; j++)
			later = later || (strchr(o->kv[j], '=') - o->kv[j] == eq - o->kv[i] &&
					  !memcmp(o->kv[j], o->kv[i], (size_t)(eq - o->kv[i])));
		if (later || !eq[1])
			continue;
		dkv_mp_str(&pairs, o->kv[i], (size_t)(eq - o->kv[i]));
		dkv_mp_cstr(&pairs, eq + 1);
		n++;
	}
	dkv_mp_map(out, n);
	dkv_buf_append(out, pairs.data, pairs.len);
	dkv_buf_release(&pairs);
}

/* name=, password= and password?= from the command's words. */
struct user_words {
	const char *name;
	const char *password;
	const char *prompt;
};

static int parse_words(struct dkv__cli_ctx *x, int argc, char **argv, struct user_words *w)
{
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (!strncmp(a, "name=", 5) && a[5])
			w->name = a + 5;
		else if (!strncmp(a, "password=", 9))
			w->password = a + 9;
		else if (!strncmp(a, "password?=", 10) && a[10])
			w->prompt = a + 10;
		else
			return dkv__cli_usage_error(
				x, "'%s': want name=USER, password=PW or password?=PROMPT", a);
	}
	if (!w->name)
		return dkv__cli_usage_error(x, "%s", "missing name=USER");
	if (w->password && w->prompt)
		return dkv__cli_usage_error(x, "%s", "password= and password?= exclude each other");
	return 0;
}

/* The password, asked for when the words say so: 0 with *pw (malloc'd,
 * or NULL when none is given), else 1 after a message. */
static int get_password(struct dkv__cli_ctx *x, const struct user_words *w, char **pw)
{
	*pw = NULL;
	if (w->prompt)
		return dkv__cli_ask_secret(x, w->prompt, pw);
	if (w->password)
		*pw = dkv_xstrdup(w->password);
	return 0;
}

static void wipe_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

/* Add data: {password: SEALED} to q, sealed to this connection's
 * auth_key.  0, or 1 after a message. */
static int add_sealed(struct dkv__cli_ctx *x, struct dkv__cli_req *q, const char *pw)
{
	struct dkv__cli_req kq;
	struct dkv_buf rep = {0}, sealed = {0};
	const uint8_t *v;
	size_t vlen;
	struct dkv_mp_reader r;
	struct dkv_mp_item it;
	dkv__cli_req_init(&kq, "auth_key");
	int rc = dkv__cli_call(x, &kq, &rep);
	if (rc)
		goto out;
	rc = 1;
	if (dkv_client_field(rep.data, rep.len, "pubkey", &v, &vlen) < 0)
		goto bad;
	dkv_mp_reader_init(&r, v, vlen);
	if (dkv_mp_read(&r, &it) < 0 || it.type != DKV_MP_BIN || it.v.s.len != DKV_AUTH_KEYBYTES)
		goto bad;
	if (dkv_auth_seal(it.v.s.p, pw, strlen(pw), &sealed) < 0) {
		fprintf(stderr, "%s: cannot seal the password (libsodium)\n", x->cli->progname);
		goto out;
	}
	struct dkv_buf *b = dkv__cli_req_key(q, "data");
	dkv_mp_map(b, 1);
	dkv_mp_cstr(b, "password");
	dkv_mp_bin(b, sealed.data, sealed.len);
	rc = 0;
	goto out;
bad:
	fprintf(stderr, "%s: the server sent no usable auth_key\n", x->cli->progname);
out:
	dkv__cli_req_release(&kq);
	dkv_buf_release(&rep);
	dkv_buf_release(&sealed);
	return rc;
}

/* ---- auth user add / modify ---- */

static const struct dkv__cli_opt *user_opts(struct aux_opts *aux, struct dkv__cli_opt *o)
{
	o[0] = (struct dkv__cli_opt){.name = "aux", .arg = "KEY=VALUE", .fn = opt_aux, .data = aux,
				     .help = "set the user's aux KEY (KEY=: remove it);\n"
					     "may be repeated (acl=NAME binds an ACL)"};
	o[1] = (struct dkv__cli_opt){NULL};
	return o;
}

/* add (modify false) or modify a user; the exit status. */
static int add_or_modify(struct dkv__cli_ctx *x, int argc, char **argv, bool modify)
{
	struct aux_opts aux = {0};
	struct dkv__cli_opt table[2];
	struct user_words w = {0};
	struct dkv__cli_req q = {0}, gq = {0};
	struct dkv_buf rep = {0}, grep = {0};
	char *method = NULL, *pw = NULL;
	const uint8_t *old_aux = NULL, *chain = NULL;
	size_t old_len = 0, chain_len = 0;
	int rc = dkv__cli_options(x, user_opts(&aux, table), argc, argv);
	if (rc >= 0)
		goto out;
	rc = parse_words(x, argc - optind, argv + optind, &w);
	if (rc == 0)
		rc = resolve_method(x, &method);
	if (rc == 0 && !modify && !strcmp(method, "password") && !w.password && !w.prompt)
		rc = dkv__cli_usage_error(x, "%s", "a password user needs password= or password?=");
	if (rc == 0)
		rc = get_password(x, &w, &pw);
	if (rc)
		goto out;
	if (modify) {
		dkv__cli_req_init(&gq, "auth_get");
		dkv__cli_req_str(&gq, "typ", method);
		dkv__cli_req_str(&gq, "kind", "user");
		dkv__cli_req_str(&gq, "ident", w.name);
		dkv__cli_req_int(&gq, "nchain", 1);
		rc = dkv__cli_call(x, &gq, &grep);
		if (rc)
			goto out;
		dkv_client_field(grep.data, grep.len, "aux", &old_aux, &old_len);
		dkv_client_field(grep.data, grep.len, "chain", &chain, &chain_len);
	}
	dkv__cli_req_init(&q, "auth_set");
	dkv__cli_req_str(&q, "typ", method);
	dkv__cli_req_str(&q, "kind", "user");
	dkv__cli_req_str(&q, "ident", w.name);
	if (pw && (rc = add_sealed(x, &q, pw)))
		goto out;
	if (aux.n || modify)
		aux_merge(dkv__cli_req_key(&q, "aux"), old_aux, old_len, &aux);
	struct dkv_buf *b = dkv__cli_req_key(&q, "chain");
	if (chain)
		dkv_buf_append(b, chain, chain_len);
	else
		dkv_mp_nil(b); /* a new user: there must be none yet */
	rc = dkv__cli_call(x, &q, &rep);
out:
	free(aux.kv);
	free(method);
	wipe_free(pw);
	dkv__cli_req_release(&q);
	dkv__cli_req_release(&gq);
	dkv_buf_release(&rep);
	dkv_buf_release(&grep);
	return rc;
}

static int cmd_add(struct dkv__cli_ctx *x, int argc, char **argv)
{
	return add_or_modify(x, argc, argv, false);
}

static int cmd_modify(struct dkv__cli_ctx *x, int argc, char **argv)
{
	return add_or_modify(x, argc, argv, true);
}

static const struct dkv__cli_cmd add_cmd = {
	.name = "add", .run = cmd_add, .summary = "add a user",
	.usage = "auth [-m METHOD] user add [--aux KEY=VALUE]... name=USER\n"
		 "       [password=PW | password?=PROMPT]",
	.about = "Add USER to METHOD's users.  password?=PROMPT asks for the password\n"
		 "(without echo; one line of standard input when that is not a\n"
		 "terminal).  The password is sealed to the connection's key and\n"
		 "hashed by the server; it is never sent or stored in clear.\n",
	.help_col = 24,
};

static const struct dkv__cli_cmd modify_cmd = {
	.name = "modify", .run = cmd_modify, .summary = "change a user's aux data or password",
	.usage = "auth [-m METHOD] user modify [--aux KEY=VALUE]... name=USER\n"
		 "       [password=PW | password?=PROMPT]",
	.about = "Change USER: set or remove aux keys (the others are kept), and\n"
		 "the password when one is given.  Refused when someone else changed\n"
		 "the user in between.\n",
	.help_col = 24,
};

/* ---- auth user list / get ---- */

static bool keep_record(const struct dkv_mp_item *k)
{
	return dkv_mp_streq(k, "typ") || dkv_mp_streq(k, "ident") || dkv_mp_streq(k, "aux");
}

static bool keep_user(const struct dkv_mp_item *k)
{
	return dkv_mp_streq(k, "ident") || dkv_mp_streq(k, "aux");
}

/* The fields keep() lets through of the record m[0..n), as YAML: never
 * anything but names and aux data. */
static int print_record(struct dkv__cli_ctx *x, const uint8_t *m, size_t n,
			bool (*keep)(const struct dkv_mp_item *k))
{
	struct dkv_buf body = {0}, doc = {0};
	uint32_t cnt = dkv__cli_copy_pairs(&body, m, n, keep);
	dkv_mp_map(&doc, cnt);
	dkv_buf_append(&doc, body.data, body.len);
	int rc = dkv__cli_print_yaml(x, doc.data, doc.len);
	dkv_buf_release(&body);
	dkv_buf_release(&doc);
	return rc;
}

struct list_state {
	struct dkv__cli_ctx *x;
	bool verbose;
};

static int list_cb(void *arg, const uint8_t *m, size_t n)
{
	struct list_state *s = arg;
	if (s->verbose) {
		fputs("---\n", stdout);
		return print_record(s->x, m, n, keep_record) ? -EIO : 0;
	}
	char *name = field_str(m, n, "ident");
	if (name)
		printf("%s\n", name);
	free(name);
	return 0;
}

static int cmd_user_list(struct dkv__cli_ctx *x, int argc, char **argv)
{
	struct list_state s = {.x = x};
	const struct dkv__cli_opt opts[] = {
		{.name = "verbose", .letter = 'v', .flag = &s.verbose,
		 .help = "one YAML document per user (typ, ident, aux)"},
		{NULL},
	};
	int rc = dkv__cli_options(x, opts, argc, argv);
	if (rc >= 0)
		return rc;
	if (optind < argc)
		return dkv__cli_usage_error(x, "unexpected argument '%s'", argv[optind]);
	char *method = NULL;
	rc = resolve_method(x, &method);
	if (rc == 0) {
		struct dkv__cli_req q;
		dkv__cli_req_init(&q, "auth_list");
		dkv__cli_req_str(&q, "typ", method);
		dkv__cli_req_str(&q, "kind", "user");
		dkv__cli_req_int(&q, "nchain", 0);
		rc = dkv__cli_stream(x, &q, list_cb, &s);
		dkv__cli_req_release(&q);
	}
	free(method);
	return rc;
}

static const struct dkv__cli_cmd user_list_cmd = {
	.name = "list", .run = cmd_user_list, .summary = "list the users",
	.usage = "auth [-m METHOD] user list [-v]",
	.about = "Print the names of METHOD's users, one per line.\n", .help_col = 17,
};

/* The one word USER of user get / delete; 0 or EXIT_USAGE. */
static int one_name(struct dkv__cli_ctx *x, int argc, char **argv, const char **name)
{
	if (optind >= argc)
		return dkv__cli_usage_error(x, "%s", "missing USER");
	if (optind + 1 < argc)
		return dkv__cli_usage_error(x, "unexpected argument '%s'", argv[optind + 1]);
	*name = argv[optind];
	return 0;
}

static int cmd_user_get(struct dkv__cli_ctx *x, int argc, char **argv)
{
	const struct dkv__cli_opt opts[] = {{NULL}};
	const char *name = NULL;
	char *method = NULL;
	int rc = dkv__cli_options(x, opts, argc, argv);
	if (rc >= 0)
		return rc;
	rc = one_name(x, argc, argv, &name);
	if (rc == 0)
		rc = resolve_method(x, &method);
	if (rc == 0) {
		struct dkv__cli_req q;
		struct dkv_buf rep = {0};
		dkv__cli_req_init(&q, "auth_get");
		dkv__cli_req_str(&q, "typ", method);
		dkv__cli_req_str(&q, "kind", "user");
		dkv__cli_req_str(&q, "ident", name);
		rc = dkv__cli_call(x, &q, &rep);
		if (rc == 0)
			rc = print_record(x, rep.data, rep.len, keep_user);
		dkv__cli_req_release(&q);
		dkv_buf_release(&rep);
	}
	free(method);
	return rc;
}

static const struct dkv__cli_cmd user_get_cmd = {
	.name = "get", .run = cmd_user_get, .summary = "print a user's name and aux data",
	.usage = "auth [-m METHOD] user get USER",
	.about = "Print USER's record as YAML: ident and aux (never a password or hash).\n",
};

static int cmd_user_delete(struct dkv__cli_ctx *x, int argc, char **argv)
{
	const struct dkv__cli_opt opts[] = {{NULL}};
	const char *name = NULL;
	char *method = NULL;
	int rc = dkv__cli_options(x, opts, argc, argv);
	if (rc >= 0)
		return rc;
	rc = one_name(x, argc, argv, &name);
	if (rc == 0)
		rc = resolve_method(x, &method);
	if (rc == 0) {
		struct dkv_buf path = {0};
		bool changed;
		auth_path(&path, method, name);
		rc = dkv__cli_delete(x, "delete_internal", &path, &changed);
		if (rc == 0 && !changed) {
			fprintf(stderr, "%s: no user '%s' (method %s)\n", x->cli->progname, name,
				method);
			rc = 1;
		}
		dkv_buf_release(&path);
	}
	free(method);
	return rc;
}

static const struct dkv__cli_cmd user_delete_cmd = {
	.name = "delete", .run = cmd_user_delete, .summary = "delete a user",
	.usage = "auth [-m METHOD] user delete USER",
	.about = "Delete USER's record.\n",
};

/* ---- the user group ---- */

static const struct dkv__cli_cmd *const user_cmds[] = {
	&add_cmd, &user_list_cmd, &user_get_cmd, &modify_cmd, &user_delete_cmd, NULL,
};

static const struct dkv__cli_group user_group = {
	.name = "auth user", .cmds = user_cmds, .summary = "manage the users of a method",
	.usage = "auth [-m METHOD] user COMMAND [OPTIONS] [ARGS...]",
	.footer = "",
};

static int cmd_user(struct dkv__cli_ctx *x, int argc, char **argv)
{
	return dkv__cli_run_group(x, &user_group, argc, argv);
}

static const struct dkv__cli_cmd user_cmd = {
	.name = "user", .run = cmd_user, .summary = "manage the users of a method (add, list,"
						    " get, modify, delete)",
	.usage = "auth [-m METHOD] user COMMAND ...",
};

const struct dkv__cli_cmd *const dkv__cli_auth_cmds[] = {&list_cmd, &init_cmd, &user_cmd, NULL};

/* ---- the group's own option ---- */

static void auth_usage(struct dkv__cli_ctx *x, const struct dkv__cli_opt *opts, FILE *f)
{
	dkv__cli_group_usage(x, f, x->group);
	fputc('\n', f);
	dkv__cli_print_opts(f, opts, 24);
}

int dkv__cli_auth_run(struct dkv__cli_ctx *x, const struct dkv__cli_group *g, int argc,
		      char **argv)
{
	static struct dkv__cli_cmd self = {.name = "auth", .print_usage = auth_usage};
	const struct dkv__cli_opt opts[] = {
		{.name = "method", .letter = 'm', .arg = "METHOD", .str = &x->method,
		 .help = "the method to act on: " METHOD_NAMES},
		{NULL},
	};
	static char name[64];
	snprintf(name, sizeof(name), "%s %s", x->cmdname, g->name);
	argv[0] = name; /* for getopt's messages */
	self.usage = g->usage;
	x->cmd = &self;
	x->group = g;
	int rc = dkv__cli_options(x, opts, argc, argv);
	if (rc >= 0)
		return rc;
	if (x->method && (rc = check_method(x, x->method)))
		return rc;
	/* argv[optind - 1] stands for the group's name from here on. */
	return dkv__cli_run_group(x, g, argc - optind + 1, argv + optind - 1);
}
