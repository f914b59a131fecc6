/*
 * client.c - "distkv client": the client's own options, the table of
 * command groups, and the helpers every command shares: paths from
 * words, requests (written with their field count, sent over a
 * connection opened on first use, failures reported), YAML or JSON
 * output.
 *
 * Each command parses its options, turns the remaining words into a path
 * (one word per element, colon notation), sends one request over a
 * blocking connection and prints the answer as YAML.  Output formats are
 * described in doc/cli.md; the commands live in one file per group.
 *
 * Exit status: 0 success, 1 failure (server error, unreachable server,
 * a login that is needed and missing or refused), 2 bad usage.  The
 * connection is opened, and the login made, when the first request goes
 * out, after the command line has been checked, so "--help" and usage
 * errors never need a server.
 */
#include "client_int.h"

#include "distkv.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- words ---- */

int dkv__cli_parse_int(const char *s, long *v)
{
	char *end;
	errno = 0;
	*v = strtol(s, &end, 10);
	return (errno || end == s || *end) ? -EINVAL : 0;
}

int dkv__cli_parse_path(struct dkv__cli_ctx *x, int argc, char **argv, struct dkv_buf *enc)
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

char *dkv__cli_words_text(int argc, char **argv, const char *empty)
{
	struct dkv_buf b = {0};
	for (int i = 0; i < argc; i++) {
		if (i)
			dkv_buf_putc(&b, ' ');
		dkv_buf_puts(&b, argv[i]);
	}
	if (!argc)
		dkv_buf_puts(&b, empty);
	return dkv_buf_cstr(&b);
}

int dkv__cli_read_all(struct dkv__cli_ctx *x, FILE *f, const char *what, struct dkv_buf *out)
{
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		dkv_buf_append(out, chunk, n);
	if (ferror(f)) {
		fprintf(stderr, "%s: cannot read %s\n", x->cli->progname, what);
		return 1;
	}
	return 0;
}

int dkv__cli_read_file(struct dkv__cli_ctx *x, const char *name, struct dkv_buf *out)
{
	if (!strcmp(name, "-"))
		return dkv__cli_read_all(x, stdin, "standard input", out);
	FILE *f = fopen(name, "r");
	if (!f) {
		fprintf(stderr, "%s: %s: %s\n", x->cli->progname, name, strerror(errno));
		return 1;
	}
	int rc = dkv__cli_read_all(x, f, name, out);
	fclose(f);
	return rc;
}

/* ---- requests ---- */

/* A spec's password?=PROMPT is asked for only when the server wants a
 * password login: a server without logins never makes anyone type. */
static int ask_password(struct dkv__cli_ctx *x)
{
	struct dkv_auth_spec *sp = x->auth;
	char want[64];
	if (!sp || sp->method != DKV_AUTH_PASSWORD || sp->password || !sp->prompt)
		return 0;
	if (dkv_client_auth_wanted(x->conn, want, sizeof want) <= 0 || strcmp(want, "password"))
		return 0;
	return dkv__cli_ask_secret(x, sp->prompt, &sp->password);
}

static int connect_server(struct dkv__cli_ctx *x)
{
	char err[600];
	double timeout = dkv_config_float(x->cli->cfg, "connect.init_timeout", 5);
	if (dkv_client_connect(&x->conn, x->host, x->port, timeout, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s: %s\n", x->cli->progname, err);
		return 1;
	}
	if (ask_password(x))
		return 1;
	int r = dkv_client_login(x->conn, x->auth);
	if (r == -EINVAL) {
		fprintf(stderr, "%s: %s\n", x->cli->progname, dkv_client_errmsg(x->conn));
		return 1;
	}
	if (r == -EACCES || r == -EREMOTEIO) {
		/* the original's words, as it prints its ClientAuth*Error */
		fprintf(stderr, "%s\n", dkv_client_errmsg(x->conn));
		return 1;
	}
	if (r < 0) {
		fprintf(stderr, "%s: %s:%u: login: %s\n", x->cli->progname, x->host, x->port,
			dkv_client_errmsg(x->conn));
		return 1;
	}
	return 0;
}

/* Report a failed request: the server's own words, or what went wrong
 * with the connection.  Returns 1. */
static int request_failed(struct dkv__cli_ctx *x, int r)
{
	if (r == -EREMOTEIO)
		fprintf(stderr, "%s\n", dkv_client_errmsg(x->conn));
	else
		fprintf(stderr, "%s: %s:%u: %s\n", x->cli->progname, x->host, x->port,
			dkv_client_errmsg(x->conn));
	return 1;
}

void dkv__cli_req_init(struct dkv__cli_req *q, const char *action)
{
	q->fields = (struct dkv_buf){0};
	q->n = 0;
	dkv__cli_req_str(q, "action", action);
}

void dkv__cli_req_release(struct dkv__cli_req *q)
{
	dkv_buf_release(&q->fields);
}

struct dkv_buf *dkv__cli_req_key(struct dkv__cli_req *q, const char *key)
{
	dkv_mp_cstr(&q->fields, key);
	q->n++;
	return &q->fields;
}

void dkv__cli_req_str(struct dkv__cli_req *q, const char *key, const char *v)
{
	dkv_mp_cstr(dkv__cli_req_key(q, key), v);
}

void dkv__cli_req_bool(struct dkv__cli_req *q, const char *key, bool v)
{
	dkv_mp_bool(dkv__cli_req_key(q, key), v);
}

void dkv__cli_req_int(struct dkv__cli_req *q, const char *key, int64_t v)
{
	dkv_mp_int(dkv__cli_req_key(q, key), v);
}

void dkv__cli_req_path(struct dkv__cli_req *q, const struct dkv_buf *path)
{
	dkv_path_encode(dkv__cli_req_key(q, "path"), path->data, path->len);
}

int dkv__cli_call(struct dkv__cli_ctx *x, const struct dkv__cli_req *q, struct dkv_buf *reply)
{
	struct dkv_buf unused = {0};
	int rc = x->conn ? 0 : connect_server(x);
	if (rc == 0) {
		int r = dkv_client_call(x->conn, q->fields.data, q->fields.len, q->n,
					reply ? reply : &unused);
		rc = r < 0 ? request_failed(x, r) : 0;
	}
	dkv_buf_release(&unused);
	return rc;
}

int dkv__cli_stream(struct dkv__cli_ctx *x, const struct dkv__cli_req *q, dkv_client_cb cb,
		    void *arg)
{
	int rc = x->conn ? 0 : connect_server(x);
	if (rc)
		return rc;
	int r = dkv_client_stream(x->conn, q->fields.data, q->fields.len, q->n, cb, arg);
	if (r >= 0)
		return 0;
	return r == -EIO ? 1 : request_failed(x, r);
}

int dkv__cli_get(struct dkv__cli_ctx *x, const char *action, const struct dkv_buf *path,
		 struct dkv_buf *value, struct dkv_buf *chain)
{
	struct dkv__cli_req q;
	struct dkv_buf rep = {0};
	const uint8_t *v;
	size_t vlen;
	dkv__cli_req_init(&q, action);
	dkv__cli_req_path(&q, path);
	if (chain)
		dkv__cli_req_int(&q, "nchain", 1);
	int rc = dkv__cli_call(x, &q, &rep);
	if (rc == 0 && dkv_client_field(rep.data, rep.len, "value", &v, &vlen) == 0) {
		dkv_buf_append(value, v, vlen);
		if (chain && dkv_client_field(rep.data, rep.len, "chain", &v, &vlen) == 0)
			dkv_buf_append(chain, v, vlen);
	}
	dkv__cli_req_release(&q);
	dkv_buf_release(&rep);
	return rc;
}

int dkv__cli_delete(struct dkv__cli_ctx *x, const char *action, const struct dkv_buf *path,
		    bool *changed)
{
	struct dkv__cli_req q;
	struct dkv_buf rep = {0};
	const uint8_t *v;
	size_t vlen;
	dkv__cli_req_init(&q, action);
	dkv__cli_req_path(&q, path);
	int rc = dkv__cli_call(x, &q, &rep);
	*changed = rc == 0 && !(dkv_client_field(rep.data, rep.len, "changed", &v, &vlen) == 0 &&
				vlen == 1 && v[0] == 0xc2 /* false */);
	dkv__cli_req_release(&q);
	dkv_buf_release(&rep);
	return rc;
}

int dkv__cli_has_children(struct dkv__cli_ctx *x, const char *action, const struct dkv_buf *path,
			  bool *yes)
{
	struct dkv__cli_req q;
	struct dkv_buf rep = {0};
	const uint8_t *v;
	size_t vlen;
	struct dkv_mp_reader r;
	struct dkv_mp_item it;
	dkv__cli_req_init(&q, action);
	dkv__cli_req_path(&q, path);
	dkv__cli_req_bool(&q, "empty", true);
	int rc = dkv__cli_call(x, &q, &rep);
	*yes = false;
	if (rc == 0 && dkv_client_field(rep.data, rep.len, "result", &v, &vlen) == 0) {
		dkv_mp_reader_init(&r, v, vlen);
		*yes = dkv_mp_read(&r, &it) == 0 && it.type == DKV_MP_ARRAY && it.v.n > 0;
	}
	dkv__cli_req_release(&q);
	dkv_buf_release(&rep);
	return rc;
}

/* ---- output ---- */

int dkv__cli_opt_output(const struct dkv__cli_optarg *a)
{
	struct dkv__cli_ctx *x = a->data;
	if (!strcmp(a->arg, "yaml") || !strcmp(a->arg, "json")) {
		x->json = !strcmp(a->arg, "json");
		return 0;
	}
	return dkv__cli_usage_error(a->x, "unknown output format '%s' (yaml or json)", a->arg);
}

static int print_as(struct dkv__cli_ctx *x, const uint8_t *mp, size_t len, bool json)
{
	struct dkv_buf out = {0};
	int r = json ? dkv_json_emit(&out, mp, len) : dkv_yaml_emit(&out, mp, len);
	if (r == 0) {
		if (json)
			dkv_buf_putc(&out, '\n');
		fwrite(out.data, 1, out.len, stdout);
	} else {
		fprintf(stderr, "%s: cannot show the server's answer as %s\n", x->cli->progname,
			json ? "JSON" : "YAML");
	}
	dkv_buf_release(&out);
	return r < 0 ? 1 : 0;
}

int dkv__cli_print_yaml(struct dkv__cli_ctx *x, const uint8_t *mp, size_t len)
{
	return print_as(x, mp, len, false);
}

int dkv__cli_print(struct dkv__cli_ctx *x, const uint8_t *mp, size_t len)
{
	return print_as(x, mp, len, x->json);
}

uint32_t dkv__cli_copy_pairs(struct dkv_buf *out, const uint8_t *m, size_t n,
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

int dkv__cli_print_reply(struct dkv__cli_ctx *x, const uint8_t *m, size_t n)
{
	struct dkv_buf body = {0}, doc = {0};
	uint32_t cnt = dkv__cli_copy_pairs(&body, m, n, keep_not_seq);
	dkv_mp_map(&doc, cnt);
	dkv_buf_append(&doc, body.data, body.len);
	int rc = dkv__cli_print(x, doc.data, doc.len);
	dkv_buf_release(&body);
	dkv_buf_release(&doc);
	return rc;
}

/* ---- dispatch ---- */

/* A new group is one file exporting its table, and one row here. */
static const struct dkv__cli_group groups[] = {
	{.name = "data", .cmds = dkv__cli_data_cmds, .summary = "read and change the stored data"},
	{.name = "internal", .cmds = dkv__cli_internal_cmds,
	 .summary = "look at the server's internal data and state"},
	{.name = "log", .cmds = dkv__cli_log_cmds,
	 .summary = "save the server's state and log its changes to files"},
	{.name = "auth", .cmds = dkv__cli_auth_cmds, .summary = "manage login methods and users",
	 .run = dkv__cli_auth_run, .usage = "auth [-m METHOD] COMMAND [OPTIONS] [ARGS...]",
	 .footer = "\nMETHOD: root, _test or password; default: the server's current one.\n"},
	{.name = "acl", .cmds = dkv__cli_acl_cmds, .summary = "manage access control lists"},
	{.name = "codec", .cmds = dkv__cli_codec_cmds, .summary = "manage codecs and converters",
	 .usage = "codec COMMAND [OPTIONS] [ARGS...]",
	 .footer = "\nNAME and PATH are one word per element in colon notation (doc/cli.md).\n"},
	{.name = "type", .cmds = dkv__cli_type_cmds, .summary = "manage types and matches",
	 .usage = "type COMMAND [OPTIONS] [ARGS...]",
	 .footer = "\nTYPE and PATH: one word per element, in colon notation.\n"},
	{.name = "code", .cmds = dkv__cli_code_cmds, .summary = "store Python procedures and modules"},
	{.name = "error", .cmds = dkv__cli_error_cmds, .summary = "list, resolve and delete error records",
	 .usage = "error COMMAND [OPTIONS] [ARGS...]",
	 .footer = "\nPATH and NODE: one word per element, in colon notation; TOCK: a number.\n"},
	{.name = "run", .cmds = dkv__cli_run_cmds, .summary = "run stored code: jobs and runners",
	 .run = dkv__cli_run_run, .usage = "run [-n NODE|-n -] COMMAND [OPTIONS] [PATH...]",
	 .footer = "\nWithout -n: jobs any one node runs; -n NODE: NODE's own jobs; -n -: jobs\n"
		   "every node runs.  PATH: one word per element in colon notation.\n"},
};

void dkv__cli_group_usage(struct dkv__cli_ctx *x, FILE *f, const struct dkv__cli_group *g)
{
	if (g->usage)
		fprintf(f, "usage: %s %s\n\nCommands:\n", x->cmdname, g->usage);
	else
		fprintf(f, "usage: %s %s COMMAND [OPTIONS] [PATH...]\n\nCommands:\n", x->cmdname,
			g->name);
	for (const struct dkv__cli_cmd *const *c = g->cmds; *c; c++)
		fprintf(f, "  %-8s %s\n", (*c)->name, (*c)->summary);
	if (g->footer)
		fputs(g->footer, f);
	else
		fprintf(f, "\nPATH is one word per path element in colon notation (doc/cli.md).\n");
}

int dkv__cli_run_group(struct dkv__cli_ctx *x, const struct dkv__cli_group *g, int argc,
		       char **argv)
{
	if (argc < 2) {
		dkv__cli_group_usage(x, stderr, g);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		dkv__cli_group_usage(x, stdout, g);
		return 0;
	}
	for (const struct dkv__cli_cmd *const *c = g->cmds; *c; c++) {
		if (strcmp((*c)->name, argv[1]))
			continue;
		/* getopt names argv[0] in its complaints: make it the whole command. */
		static char name[128];
		snprintf(name, sizeof(name), "%s %s %s", x->cmdname, g->name, argv[1]);
		argv[1] = name;
		x->cmd = *c;
		x->group = g;
		return (*c)->run(x, argc - 1, argv + 1);
	}
	fprintf(stderr, "%s: unknown command '%s %s'\n", x->cli->progname, g->name, argv[1]);
	dkv__cli_group_usage(x, stderr, g);
	return EXIT_USAGE;
}

static const struct dkv__cli_group *find_group(const char *name)
{
	for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++)
		if (!strcmp(groups[i].name, name))
			return &groups[i];
	return NULL;
}

/* ---- the client's own options ---- */

static void client_usage(struct dkv__cli_ctx *x, const struct dkv__cli_opt *opts, FILE *f)
{
	enum { COL = 19 };
	fprintf(f, "usage: %s [-h HOST] [-p PORT] [-a AUTH] COMMAND ...\n\n", x->cmdname);
	dkv__cli_print_opts(f, opts, COL);
	fprintf(f, "%-*s%s\n", COL, "      --help", "show this help");
	fprintf(f, "\nCommands:\n");
	for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++)
		fprintf(f, "  %-8s  %s\n", groups[i].name, groups[i].summary);
}

/* Not a command of a group: its help is the client's usage. */
static const struct dkv__cli_cmd client_cmd = {.print_usage = client_usage};

static int opt_port(const struct dkv__cli_optarg *a)
{
	long v;
	if (dkv__cli_parse_int(a->arg, &v) < 0 || v < 1 || v > 65535) {
		fprintf(stderr, "%s: bad port '%s'\n", a->x->cli->progname, a->arg);
		return EXIT_USAGE;
	}
	*(int64_t *)a->data = v;
	return 0;
}

/* The login to make: -a's text, else connect.auth's.  Sets x->auth to
 * *sp when there is one; 0, or EXIT_USAGE after a message. */
static int parse_auth(struct dkv__cli_ctx *x, const char *text, struct dkv_auth_spec *sp)
{
	const char *what = "-a";
	char err[300];
	const uint8_t *mp;
	size_t len;
	if (!text && dkv_config_get(x->cli->cfg, "connect.auth", &mp, &len) && *mp != 0xc0) {
		what = "connect.auth";
		text = dkv_config_str(x->cli->cfg, "connect.auth", NULL);
		if (!text) {
			fprintf(stderr, "%s: connect.auth must be a string such as "
				"\"password name=USER password?=Password\"\n", x->cli->progname);
			return EXIT_USAGE;
		}
	}
	if (!text)
		return 0;
	if (dkv_auth_spec_parse(sp, text, err, sizeof err) < 0) {
		fprintf(stderr, "%s: %s: %s\n", x->cli->progname, what, err);
		return EXIT_USAGE;
	}
	x->auth = sp;
	x->auth_text = text;
	return 0;
}

int dkv_cli_client(struct dkv_cli *cli, int argc, char **argv)
{
	struct dkv__cli_ctx x = {
		.cli = cli,
		.cmdname = strcmp(cli->progname, "dkv") ? "distkv client" : "dkv",
		.cmd = &client_cmd,
		.host = dkv_config_str(cli->cfg, "connect.host", "localhost"),
	};
	int64_t port = dkv_config_int(cli->cfg, "connect.port", DKV_CLIENT_DEFAULT_PORT);
	const char *auth = NULL;
	const struct dkv__cli_opt opts[] = {
		{.name = "host", .letter = 'h', .arg = "HOST", .str = &x.host,
		 .help = "the server (default: connect.host, localhost)"},
		{.name = "port", .letter = 'p', .arg = "PORT", .fn = opt_port, .data = &port,
		 .help = "its port (default: connect.port, 27586)"},
		{.name = "auth", .letter = 'a', .arg = "AUTH", .str = &auth,
		 .help = "log in: \"METHOD name=USER ...\" (default: connect.auth)"},
		{NULL},
	};
	argv[0] = (char *)x.cmdname; /* for getopt's messages */
	int rc = dkv__cli_options(&x, opts, argc, argv);
	if (rc >= 0)
		return rc;
	if (port < 1 || port > 65535) {
		fprintf(stderr, "%s: bad connect.port %lld\n", cli->progname, (long long)port);
		return EXIT_USAGE;
	}
	x.port = (unsigned)port;
	if (optind >= argc) {
		client_usage(&x, opts, stderr);
		return EXIT_USAGE;
	}
	struct dkv_auth_spec spec;
	rc = parse_auth(&x, auth, &spec);
	if (rc)
		return rc;
	argc -= optind;
	argv += optind;
	const struct dkv__cli_group *g = find_group(argv[0]);
	if (g) {
		rc = g->run ? g->run(&x, g, argc, argv) : dkv__cli_run_group(&x, g, argc, argv);
	} else {
		fprintf(stderr, "%s: unknown command '%s'\n", cli->progname, argv[0]);
		client_usage(&x, opts, stderr);
		rc = EXIT_USAGE;
	}
	dkv_client_free(x.conn);
	if (x.auth)
		dkv_auth_spec_release(x.auth);
	return rc;
}
