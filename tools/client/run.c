/*
 * run.c - the run commands: jobs that start stored code (set, get, list,
 * state, delete, info, monitor) and the runner itself (all).
 *
 * "run [-n NODE|-n -] COMMAND": without -n the commands act on the jobs
 * any one node may run, with -n NODE on NODE's own jobs, with "-n -" on
 * the jobs every node runs.  Jobs, their states and the groups' leases
 * are plain data entries (doc/runners.md):
 *
 *   (".distkv", "run",    "any" | "at", NODE | "all", PATH...)   jobs
 *   (".distkv", "state",  "any" | "at", NODE | "all", N, PATH...) states
 *   (".distkv", "runner", "any" | "at", NODE | "all", N)          leases
 *
 * (N: each node's own state and lease for the all-nodes jobs.)  "set"
 * reads the job and writes it back with the chain it read, so what the
 * command line does not change stays and a change made in between is
 * refused instead of lost.  "all" runs python/distkv/runner.py in an
 * interpreter of this process (engine/py/main.c) until it is stopped.
 */
#include "client_int.h"

#include "distkv.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- the group ---- */

enum kind { ANY, AT, ALL };

/* The group "run -n" chose: the prefixes of its jobs, states, leases. */
struct group {
	enum kind kind;
	const char *node;     /* AT: the node */
	struct dkv_buf run;   /* .distkv run GROUP... */
	struct dkv_buf state; /* .distkv state GROUP... (ALL: without N) */
	struct dkv_buf lease; /* .distkv runner GROUP... (ALL: without N) */
};

static void prefix(struct dkv_buf *b, const char *what, const struct group *g)
{
	dkv_mp_cstr(b, ".distkv");
	dkv_mp_cstr(b, what);
	dkv_mp_cstr(b, g->kind == ANY ? "any" : g->kind == AT ? "at" : "all");
	if (g->kind == AT)
		dkv_mp_cstr(b, g->node);
}

static void group_init(struct dkv__cli_ctx *x, struct group *g)
{
	*g = (struct group){0};
	if (!x->node)
		g->kind = ANY;
	else if (!strcmp(x->node, "-"))
		g->kind = ALL;
	else
		g->kind = AT, g->node = x->node;
	prefix(&g->run, "run", g);
	prefix(&g->state, "state", g);
	prefix(&g->lease, "runner", g);
}

static void group_release(struct group *g)
{
	dkv_buf_release(&g->run);
	dkv_buf_release(&g->state);
	dkv_buf_release(&g->lease);
}

/* The job's path, prefix + words; 0 or EXIT_USAGE after a message.  An
 * empty PATH would name the whole group: refused when need is set. */
static int job_path(struct dkv__cli_ctx *x, const struct dkv_buf *pre, int argc, char **argv,
		    bool need, struct dkv_buf *out)
{
	if (need && argc < 1)
		return dkv__cli_usage_error(x, "%s", "missing PATH");
	dkv_buf_append(out, pre->data, pre->len);
	return dkv__cli_parse_path(x, argc, argv, out);
}

static int no_job(struct dkv__cli_ctx *x, int argc, char **argv)
{
	char *where = dkv__cli_words_text(argc, argv, "");
	fprintf(stderr, "%s: no job at %s\n", x->cli->progname, where);
	free(where);
	return 1;
}

/* ---- maps ---- */

static bool key_in(const struct dkv_mp_item *k, const char *const *keys, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (dkv_mp_streq(k, keys[i]))
			return true;
	return false;
}

/* Append the pairs of the map m[0..n) whose key is not one of keys[0..nk)
 * and return how many.  Not a map: none. */
static uint32_t copy_except(struct dkv_buf *out, const uint8_t *m, size_t n,
			    const char *const *keys, unsigned nk)
{
	struct dkv_mp_reader r;
	struct dkv_mp_item it, k;
	uint32_t count = 0;
	if (!m || !n)
		return 0;
	dkv_mp_reader_init(&r, m, n);
	if (dkv_mp_read(&r, &it) < 0 || it.type != DKV_MP_MAP)
		return 0;
	for (uint32_t i = 0; i < it.v.n; i++) {
		const uint8_t *start = r.p;
		struct dkv_mp_reader kr = r;
		if (dkv_mp_read(&kr, &k) < 0 || dkv_mp_skip(&r) < 0 || dkv_mp_skip(&r) < 0)
			break;
		if (k.type == DKV_MP_STR && key_in(&k, keys, nk))
			continue;
		dkv_buf_append(out, start, (size_t)(r.p - start));
		count++;
	}
	return count;
}

static int field(const struct dkv_buf *m, const char *key, const uint8_t **v, size_t *vlen)
{
	return m->len ? dkv_client_field(m->data, m->len, key, v, vlen) : -ENOENT;
}

/* The item under key as a number (ints and floats); false when absent
 * or something else. */
static bool field_num(const struct dkv_buf *m, const char *key, double *out)
{
	const uint8_t *v;
	size_t vlen;
	struct dkv_mp_reader r;
	struct dkv_mp_item it;
	if (field(m, key, &v, &vlen) < 0)
		return false;
	dkv_mp_reader_init(&r, v, vlen);
	if (dkv_mp_read(&r, &it) < 0)
		return false;
	switch (it.type) {
	case DKV_MP_UINT:
		*out = (double)it.v.u;
		return true;
	case DKV_MP_INT:
		*out = (double)it.v.i;
		return true;
	case DKV_MP_FLOAT:
		*out = it.v.f;
		return true;
	default:
		return false;
	}
}

/* The item under key as a string: *s (not terminated) and its length. */
static bool field_str(const struct dkv_buf *m, const char *key, const char **s, size_t *len)
{
	const uint8_t *v;
	size_t vlen;
	struct dkv_mp_reader r;
	struct dkv_mp_item it;
	if (field(m, key, &v, &vlen) < 0)
		return false;
	dkv_mp_reader_init(&r, v, vlen);
	if (dkv_mp_read(&r, &it) < 0 || it.type != DKV_MP_STR)
		return false;
	*s = (const char *)it.v.s.p;
	*len = it.v.s.len;
	return true;
}

/* ---- requests ---- */

/* The names below path (enum, entries without a value too), as element
 * encodings: each a struct dkv_buf in *names (the caller releases them
 * and frees the array).  0 or 1. */
static int list_names(struct dkv__cli_ctx *x, const struct dkv_buf *path, struct dkv_buf **names,
		      size_t *n)
{
	struct dkv__cli_req q;
	struct dkv_buf rep = {0};
	const uint8_t *v;
	size_t vlen;
	struct dkv_mp_reader r;
	struct dkv_mp_item it;
	*names = NULL;
	*n = 0;
	dkv__cli_req_init(&q, "enum");
	dkv__cli_req_path(&q, path);
	dkv__cli_req_bool(&q, "empty", true);
	int rc = dkv__cli_call(x, &q, &rep);
	if (rc == 0 && dkv_client_field(rep.data, rep.len, "result", &v, &vlen) == 0) {
		dkv_mp_reader_init(&r, v, vlen);
		if (dkv_mp_read(&r, &it) == 0 && it.type == DKV_MP_ARRAY) {
			*names = dkv_xcalloc(it.v.n ? it.v.n : 1, sizeof **names);
			for (uint32_t i = 0; i < it.v.n; i++) {
				struct dkv_buf e = {0};
				if (dkv_path_elem_canon(&e, &r) < 0) {
					dkv_buf_release(&e);
					break;
				}
				(*names)[(*n)++] = e;
			}
		}
	}
	dkv__cli_req_release(&q);
	dkv_buf_release(&rep);
	return rc;
}

static void free_names(struct dkv_buf *names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dkv_buf_release(&names[i]);
	free(names);
}

/* The state of the job rel (the words' elements) as one msgpack item
 * into out: the state record (nil when there is none), or for the
 * all-nodes group a map of node to state (only nodes that have one).
 * just: one key of each state (the result) instead of the whole.  0 or
 * 1; *found: there was a state. */
static int job_state(struct dkv__cli_ctx *x, const struct group *g, const struct dkv_buf *rel,
		     const char *just, struct dkv_buf *out, bool *found)
{
	struct dkv_buf path = {0}, value = {0};
	const uint8_t *v;
	size_t vlen;
	int rc = 0;
	*found = false;
	if (g->kind != ALL) {
		dkv_buf_append(&path, g->state.data, g->state.len);
		dkv_buf_append(&path, rel->data, rel->len);
		rc = dkv__cli_get(x, "get_value", &path, &value, NULL);
		if (rc == 0 && value.len) {
			*found = true;
			if (!just)
				dkv_buf_append(out, value.data, value.len);
			else if (field(&value, just, &v, &vlen) == 0)
				dkv_buf_append(out, v, vlen);
			else
				dkv_mp_nil(out);
		} else if (rc == 0) {
			dkv_mp_nil(out);
		}
		dkv_buf_release(&path);
		dkv_buf_release(&value);
		return rc;
	}
	struct dkv_buf *nodes = NULL, body = {0};
	size_t nn = 0;
	uint32_t count = 0;
	rc = list_names(x, &g->state, &nodes, &nn);
	for (size_t i = 0; rc == 0 && i < nn; i++) {
		path.len = value.len = 0;
		dkv_buf_append(&path, g->state.data, g->state.len);
		dkv_buf_append(&path, nodes[i].data, nodes[i].len);
		dkv_buf_append(&path, rel->data, rel->len);
		rc = dkv__cli_get(x, "get_value", &path, &value, NULL);
		if (rc || !value.len)
			continue;
		dkv_buf_append(&body, nodes[i].data, nodes[i].len);
		if (!just)
			dkv_buf_append(&body, value.data, value.len);
		else if (field(&value, just, &v, &vlen) == 0)
			dkv_buf_append(&body, v, vlen);
		else
			dkv_mp_nil(&body);
		count++;
	}
	if (rc == 0) {
		*found = count > 0;
		dkv_mp_map(out, count);
		dkv_buf_append(out, body.data, body.len);
	}
	free_names(nodes, nn);
	dkv_buf_release(&body);
	dkv_buf_release(&path);
	dkv_buf_release(&value);
	return rc;
}

/* ---- words: times and numbers ---- */

/* A number of seconds (or a factor): finite, >= 0.  -EINVAL otherwise. */
static int parse_num(const char *s, double *v)
{
	char *end;
	errno = 0;
	*v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(*v) || *v < 0)
		return -EINVAL;
	return 0;
}

/* Times at or above this are absolute (2001-09-09), below it seconds
 * from now. */
#define ABSOLUTE_TIME 1e9

/* -t TIME: "-" (not at all: *none), seconds from now ("0": now), a unix
 * time, "HH:MM[:SS]" (the next such local time) or "YYYY-MM-DD
 * HH:MM[:SS]" (also with a T), local time.  -EINVAL otherwise. */
static int parse_time(const char *s, double now, double *out, bool *none)
{
	double v;
	*none = false;
	if (!strcmp(s, "-")) {
		*none = true;
		return 0;
	}
	if (!parse_num(s, &v)) {
		*out = v >= ABSOLUTE_TIME ? v : now + v;
		return 0;
	}
	static const char *const full[] = {"%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S",
					   "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M"};
	static const char *const clock[] = {"%H:%M:%S", "%H:%M"};
	struct tm tm;
	const char *end;
	for (size_t i = 0; i < sizeof full / sizeof full[0]; i++) {
		memset(&tm, 0, sizeof tm);
		end = strptime(s, full[i], &tm);
		if (end && !*end) {
			tm.tm_isdst = -1;
			time_t t = mktime(&tm);
			if (t == (time_t)-1)
				return -EINVAL;
			*out = (double)t;
			return 0;
		}
	}
	for (size_t i = 0; i < sizeof clock / sizeof clock[0]; i++) {
		struct tm want = {0};
		end = strptime(s, clock[i], &want);
		if (!end || *end)
			continue;
		time_t t0 = (time_t)now;
		localtime_r(&t0, &tm);
		tm.tm_hour = want.tm_hour;
		tm.tm_min = want.tm_min;
		tm.tm_sec = want.tm_sec;
		tm.tm_isdst = -1;
		time_t t = mktime(&tm);
		if (t == (time_t)-1)
			return -EINVAL;
		if ((double)t < now) { /* passed today: tomorrow */
			tm.tm_mday++;
			tm.tm_isdst = -1;
			t = mktime(&tm);
		}
		*out = (double)t;
		return 0;
	}
	return -EINVAL;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- run set ---- */

#define MAX_VARS 64

struct var {
	const char *name;
	struct dkv_buf value; /* msgpack; empty: delete the variable */
};

struct set_args {
	const char *code, *time, *info;
	const char *repeat, *delay, *backoff, *ok, *timeout;
	struct var vars[MAX_VARS];
	unsigned nvars;
};

static struct var *new_var(struct set_args *s, const struct dkv__cli_optarg *a)
{
	if (s->nvars == MAX_VARS) {
		dkv__cli_usage_error(a->x, "%s", "too many -v/-e (at most 64)");
		return NULL;
	}
	if (optind >= a->argc) {
		dkv__cli_usage_error(a->x, "%s", "-v and -e take two words: NAME VALUE");
		return NULL;
	}
	if (!*a->arg) {
		dkv__cli_usage_error(a->x, "%s", "an empty variable name");
		return NULL;
	}
	/* a later -v for the same name wins */
	for (unsigned i = 0; i < s->nvars; i++)
		if (!strcmp(s->vars[i].name, a->arg)) {
			dkv_buf_release(&s->vars[i].value);
			return &s->vars[i];
		}
	struct var *v = &s->vars[s->nvars++];
	v->name = a->arg;
	return v;
}

/* -v NAME VALUE: a string. */
static int opt_var(const struct dkv__cli_optarg *a)
{
	struct var *v = new_var(a->data, a);
	if (!v)
		return EXIT_USAGE;
	dkv_mp_cstr(&v->value, a->argv[optind++]);
	return 0;
}

/* -e NAME EXPR: a Python literal; "-" deletes NAME. */
static int opt_eval(const struct dkv__cli_optarg *a)
{
	struct var *v = new_var(a->data, a);
	char err[300];
	if (!v)
		return EXIT_USAGE;
	const char *expr = a->argv[optind++];
	if (!strcmp(expr, "-"))
		return 0;
	if (dkv_py_literal_eval(&v->value, expr, err, sizeof err) < 0) {
		fprintf(stderr, "%s: -e %s: cannot evaluate '%s': %s\n", a->x->cli->progname,
			v->name, expr, err);
		return EXIT_USAGE;
	}
	return 0;
}

static void release_vars(struct set_args *s)
{
	for (unsigned i = 0; i < s->nvars; i++)
		dkv_buf_release(&s->vars[i].value);
}

/* The job's new data map: old's variables with the command line's
 * changes. */
static void new_data(struct dkv_buf *out, const struct set_args *s, const struct dkv_buf *old)
{
	const char *names[MAX_VARS];
	struct dkv_buf body = {0};
	const uint8_t *v = NULL;
	size_t vlen = 0;
	for (unsigned i = 0; i < s->nvars; i++)
		names[i] = s->vars[i].name;
	if (field(old, "data", &v, &vlen) < 0)
		v = NULL, vlen = 0;
	uint32_t n = copy_except(&body, v, vlen, names, s->nvars);
	for (unsigned i = 0; i < s->nvars; i++) {
		if (!s->vars[i].value.len)
			continue;
		dkv_mp_cstr(&body, names[i]);
		dkv_buf_append(&body, s->vars[i].value.data, s->vars[i].value.len);
		n++;
	}
	dkv_mp_map(out, n);
	dkv_buf_append(out, body.data, body.len);
	dkv_buf_release(&body);
}

/* One number option: "key: value" into body (counted in *n); 0 or
 * EXIT_USAGE. */
static int put_num(struct dkv__cli_ctx *x, struct dkv_buf *body, uint32_t *n, const char *key,
		   const char *opt, const char *text, double min)
{
	double v;
	if (!text)
		return 0;
	if (parse_num(text, &v) < 0 || v < min) {
		char what[64];
		snprintf(what, sizeof what, "%s needs a number of at least %g, not '%%s'", opt, min);
		return dkv__cli_usage_error(x, what, text);
	}
	dkv_mp_cstr(body, key);
	if (v == floor(v) && v < 1e15)
		dkv_mp_int(body, (int64_t)v);
	else
		dkv_mp_double(body, v);
	(*n)++;
	return 0;
}

/* The new job record: old's pairs with what the command line gives in
 * place of theirs; 0 or EXIT_USAGE. */
static int new_job(struct dkv__cli_ctx *x, struct dkv_buf *out, const struct set_args *s,
		   const struct dkv_buf *code, const struct dkv_buf *old)
{
	static const char *const keys[] = {"code", "target", "repeat", "delay", "backoff",
					   "ok_after", "timeout", "info", "data"};
	const char *given[sizeof keys / sizeof keys[0]];
	unsigned ng = 0;
	bool set[] = {s->code, s->time, s->repeat, s->delay, s->backoff, s->ok, s->timeout,
		      s->info, s->nvars > 0};
	for (unsigned i = 0; i < sizeof keys / sizeof keys[0]; i++)
		if (set[i])
			given[ng++] = keys[i];
	struct dkv_buf body = {0};
	uint32_t n = copy_except(&body, old->data, old->len, given, ng);
	int rc = 0;
	if (s->code) {
		dkv_mp_cstr(&body, "code");
		uint32_t ne = 0;
		struct dkv_path_iter it;
		const uint8_t *e;
		size_t elen;
		dkv_path_iter_init(&it, code->data, code->len);
		while (dkv_path_iter_next(&it, &e, &elen))
			ne++;
		dkv_mp_array(&body, ne);
		dkv_buf_append(&body, code->data, code->len);
		n++;
	}
	if (s->time) {
		double t;
		bool none;
		if (parse_time(s->time, now_s(), &t, &none) < 0) {
			rc = dkv__cli_usage_error(x, "bad time '%s' (seconds from now, a unix "
						     "time, HH:MM[:SS], YYYY-MM-DD HH:MM[:SS] or -)",
						  s->time);
			goto out;
		}
		dkv_mp_cstr(&body, "target");
		if (none)
			dkv_mp_nil(&body);
		else
			dkv_mp_double(&body, t);
		n++;
	}
	if ((rc = put_num(x, &body, &n, "repeat", "--repeat", s->repeat, 0)) ||
	    (rc = put_num(x, &body, &n, "delay", "--delay", s->delay, 0)) ||
	    (rc = put_num(x, &body, &n, "backoff", "--backoff", s->backoff, 1)) ||
	    (rc = put_num(x, &body, &n, "ok_after", "--ok", s->ok, 0)) ||
	    (rc = put_num(x, &body, &n, "timeout", "--timeout", s->timeout, 0)))
		goto out;
	if (s->info) {
		dkv_mp_cstr(&body, "info");
		dkv_mp_cstr(&body, s->info);
		n++;
	}
	if (s->nvars) {
		dkv_mp_cstr(&body, "data");
		new_data(&body, s, old);
		n++;
	}
	dkv_mp_map(out, n);
	dkv_buf_append(out, body.data, body.len);
out:
	dkv_buf_release(&body);
	return rc;
}

/* -c CODE: one word holding the path's elements separated by spaces
 * ("the answer"), as the original takes it; each in colon notation. */
static int parse_code(struct dkv__cli_ctx *x, const char *text, struct dkv_buf *out)
{
	char *copy = dkv_xstrdup(text), *save = NULL;
	int rc = 0, n = 0;
	for (char *w = strtok_r(copy, " \t", &save); w && !rc; w = strtok_r(NULL, " \t", &save)) {
		rc = dkv__cli_parse_path(x, 1, &w, out);
		n++;
	}
	free(copy);
	if (!rc && !n)
		rc = dkv__cli_usage_error(x, "%s", "-c needs the path of the code");
	return rc;
}

static int cmd_set(struct dkv__cli_ctx *x, int argc, char **argv)
{
	struct set_args s = {0};
	const struct dkv__cli_opt opts[] = {
		{.name = "code", .letter = 'c', .arg = "CODE", .str = &s.code,
		 .help = "the procedure to run (\"the answer\": its path;\nneeded for a new job)"},
		{.name = "time", .letter = 't', .arg = "TIME", .str = &s.time,
		 .help = "when to start it: seconds from now (0: now),\na unix time, HH:MM[:SS], "
			 "YYYY-MM-DD HH:MM[:SS];\n-: not at all"},
		{.name = "repeat", .letter = 'r', .arg = "S", .str = &s.repeat,
		 .help = "start it again S seconds after a run ended"},
		{.name = "delay", .letter = 'd', .arg = "S", .str = &s.delay,
		 .help = "after a failure, retry after S seconds\n(times the backoff; default 100)"},
		{.name = "backoff", .letter = 'b', .arg = "F", .str = &s.backoff,
		 .help = "multiply the delay by F per failure in a row\n(default 1.1)"},
		{.name = "ok", .letter = 'k', .arg = "S", .str = &s.ok,
		 .help = "a run that lasted S seconds counts as working"},
		{.name = "timeout", .letter = 'T', .arg = "S", .str = &s.timeout,
		 .help = "stop a run after S seconds (an error; 0: never)"},
		{.name = "info", .letter = 'i', .arg = "INFO", .str = &s.info,
		 .help = "a line about the job, for listings"},
		{.name = "var", .letter = 'v', .arg = "NAME VALUE", .fn = opt_var, .data = &s,
		 .help = "a variable of the code: a string"},
		{.name = "eval", .letter = 'e', .arg = "NAME EXPR", .fn = opt_eval, .data = &s,
		 .help = "a variable: a Python literal (-: delete it)"},
		{NULL},
	};
	int rc = dkv__cli_options(x, opts, argc, argv);
	struct group g;
	struct dkv_buf path = {0}, code = {0}, old = {0}, chain = {0}, value = {0}, rec = {0};
	group_init(x, &g);
	if (rc >= 0)
		goto out;
	rc = job_path(x, &g.run, argc - optind, argv + optind, true, &path);
	if (!rc && s.code)
		rc = parse_code(x, s.code, &code);
	if (!rc)
		rc = dkv__cli_get(x, "get_value", &path, &old, &chain);
	if (!rc && !old.len && !s.code) {
		fprintf(stderr, "%s: a new job needs -c CODE\n", x->cli->progname);
		rc = EXIT_USAGE;
	}
	if (!rc && s.code) {
		/* a job without its code would only fail: say so now */
		struct dkv_buf cpath = {0};
		dkv_mp_cstr(&cpath, DKV_CODE_ELEM);
		dkv_buf_append(&cpath, code.data, code.len);
		rc = dkv__cli_get(x, "get_internal", &cpath, &rec, NULL);
		dkv_buf_release(&cpath);
		if (!rc && !rec.len) {
			fprintf(stderr, "%s: no code at %s (store it with \"code set\" first)\n",
				x->cli->progname, s.code);
			rc = 1;
		}
	}
	if (!rc)
		rc = new_job(x, &value, &s, &code, &old);
	if (!rc) {
		struct dkv__cli_req q;
		dkv__cli_req_init(&q, "set_value");
		dkv__cli_req_path(&q, &path);
		dkv_buf_append(dkv__cli_req_key(&q, "value"), value.data, value.len);
		struct dkv_buf *b = dkv__cli_req_key(&q, "chain");
		if (chain.len)
			dkv_buf_append(b, chain.data, chain.len);
		else
			dkv_mp_nil(b);
		rc = dkv__cli_call(x, &q, NULL);
		dkv__cli_req_release(&q);
	}
out:
	release_vars(&s);
	group_release(&g);
	dkv_buf_release(&path);
	dkv_buf_release(&code);
	dkv_buf_release(&old);
	dkv_buf_release(&chain);
	dkv_buf_release(&value);
	dkv_buf_release(&rec);
	return rc;
}

static const struct dkv__cli_cmd set_cmd = {
	.name = "set", .run = cmd_set, .summary = "add or change a job",
	.usage = "run [-n NODE|-n -] set [-c CODE] [-t TIME|-] [OPTIONS] PATH...",
	.about = "Add the job PATH, or change it: what is not given stays as stored.\n"
		 "A runner (\"run all\") starts the code CODE at TIME, and again as\n"
		 "--repeat and --delay say (doc/runners.md).\n",
	.help_col = 24,
};

/* ---- run get, state ---- */

static int cmd_get(struct dkv__cli_ctx *x, int argc, char **argv)
{
	bool with_state = false;
	const struct dkv__cli_opt opts[] = {
		{.name = "state", .letter = 's', .flag = &with_state, .help = "add the job's state"},
		{NULL},
	};
	int rc = dkv__cli_options(x, opts, argc, argv);
	struct group g;
	struct dkv_buf path = {0}, rel = {0}, value = {0}, state = {0}, doc = {0};
	group_init(x, &g);
	if (rc >= 0)
		goto out;
	rc = job_path(x, &g.run, argc - optind, argv + optind, true, &path);
	if (!rc)
		rc = dkv__cli_parse_path(x, argc - optind, argv + optind, &rel);
	if (!rc)
		rc = dkv__cli_get(x, "get_value", &path, &value, NULL);
	if (!rc && !value.len)
		rc = no_job(x, argc - optind, argv + optind);
	if (rc)
		goto out;
	if (with_state) {
		static const char *const key[] = {"state"};
		bool found;
		struct dkv_buf body = {0};
		rc = job_state(x, &g, &rel, NULL, &state, &found);
		uint32_t n = copy_except(&body, value.data, value.len, key, 1);
		dkv_mp_map(&doc, n + 1);
		dkv_buf_append(&doc, body.data, body.len);
		dkv_mp_cstr(&doc, "state");
		dkv_buf_append(&doc, state.data, state.len);
		dkv_buf_release(&body);
		if (!rc)
			rc = dkv__cli_print_yaml(x, doc.data, doc.len);
	} else {
		rc = dkv__cli_print_yaml(x, value.data, value.len);
	}
out:
	group_release(&g);
	dkv_buf_release(&path);
	dkv_buf_release(&rel);
	dkv_buf_release(&value);
	dkv_buf_release(&state);
	dkv_buf_release(&doc);
	return rc;
}

static int cmd_state(struct dkv__cli_ctx *x, int argc, char **argv)
{
	bool result = false;
	const struct dkv__cli_opt opts[] = {
		{.name = "result", .letter = 'r', .flag = &result,
		 .help = "only the result of the last run"},
		{NULL},
	};
	int rc = dkv__cli_options(x, opts, argc, argv);
	struct group g;
	struct dkv_buf rel = {0}, state = {0};
	bool found = false;
	group_init(x, &g);
	if (rc >= 0)
		goto out;
	if (argc - optind < 1) {
		rc = dkv__cli_usage_error(x, "%s", "missing PATH");
		goto out;
	}
	rc = dkv__cli_parse_path(x, argc - optind, argv + optind, &rel);
	if (!rc)
		rc = job_state(x, &g, &rel, result ? "result" : NULL, &state, &found);
	if (!rc && !found) {
		char *where = dkv__cli_words_text(argc - optind, argv + optind, "");
		fprintf(stderr, "%s: no state at %s (the job has not run yet)\n",
			x->cli->progname, where);
		free(where);
		rc = 1;
	}
	if (!rc)
		rc = dkv__cli_print_yaml(x, state.data, state.len);
out:
	group_release(&g);
	dkv_buf_release(&rel);
	dkv_buf_release(&state);
	return rc;
}

static const struct dkv__cli_cmd get_cmd = {
	.name = "get", .run = cmd_get, .summary = "print a job",
	.usage = "run [-n NODE|-n -] get [-s] PATH...",
	.about = "Print the job PATH as YAML; with -s its state too (for the all-nodes\n"
		 "group: a state per node).\n",
	.help_col = 20,
};

static const struct dkv__cli_cmd state_cmd = {
	.name = "state", .run = cmd_state, .summary = "print a job's state",
	.usage = "run [-n NODE|-n -] state [-r] PATH...",
	.about = "Print the state of the job PATH as YAML (started, stopped, node,\n"
		 "result, backoff, next, ...; doc/runners.md); with -r only the result.\n"
		 "Fails when the job has not run yet.  For the all-nodes group: a\n"
		 "mapping of node to state.\n",
	.help_col = 20,
};

/* ---- run list ---- */

struct entry {
	struct dkv_buf rel;   /* below the group's prefix */
	struct dkv_buf value;
};

struct collect {
	const struct dkv_buf *start; /* PATH's elements */
	struct dkv_client_path rel;
	struct entry *e;
	size_t n, cap;
};

static int collect_cb(void *arg, const uint8_t *m, size_t len)
{
	struct collect *c = arg;
	const uint8_t *v;
	size_t vlen;
	if (dkv_client_path_update(&c->rel, m, len) < 0 ||
	    dkv_client_field(m, len, "value", &v, &vlen) < 0)
		return 0;
	if (c->n == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 16;
		c->e = dkv_xrealloc(c->e, c->cap * sizeof *c->e);
	}
	struct entry *e = &c->e[c->n++];
	*e = (struct entry){0};
	dkv_buf_append(&e->rel, c->start->data, c->start->len);
	dkv_buf_append(&e->rel, c->rel.enc.data, c->rel.enc.len);
	dkv_buf_append(&e->value, v, vlen);
	return 0;
}

static void format_time(struct dkv_buf *out, double t)
{
	char text[64];
	time_t s = (time_t)t;
	struct tm tm;
	localtime_r(&s, &tm);
	strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &tm);
	dkv_buf_puts(out, text);
}

/* A state in a few words: running, next start, error, done. */
static void state_summary(struct dkv_buf *out, const struct dkv_buf *st)
{
	const char *s;
	size_t len;
	double t;
	if (!st->len || st->data[0] == 0xc0) {
		dkv_buf_puts(out, "never run");
		return;
	}
	if (field_str(st, "node", &s, &len)) {
		dkv_buf_printf(out, "running on %.*s", (int)len, s);
		if (field_num(st, "started", &t)) {
			dkv_buf_puts(out, " since ");
			format_time(out, t);
		}
		return;
	}
	bool err = field_str(st, "error", &s, &len);
	if (err)
		dkv_buf_printf(out, "failed: %.*s; ", (int)len, s);
	if (field_num(st, "next", &t)) {
		dkv_buf_puts(out, "next ");
		format_time(out, t);
		if (field_str(st, "reason", &s, &len))
			dkv_buf_printf(out, " (%.*s)", (int)len, s);
	} else {
		dkv_buf_puts(out, err ? "not again" : "done");
	}
}

static void print_path(struct dkv_buf *out, const struct dkv_buf *rel)
{
	struct dkv_path_iter it;
	const uint8_t *e;
	size_t elen;
	dkv_path_iter_init(&it, rel->data, rel->len);
	for (bool first = true; dkv_path_iter_next(&it, &e, &elen); first = false) {
		if (!first)
			dkv_buf_putc(out, ' ');
		dkv_pathtext_format(out, e, elen, 0);
	}
}

/* "PATH :: CODE[ :: INFO][ :: STATE]" */
static int list_line(struct dkv__cli_ctx *x, const struct group *g, const struct entry *e,
		     bool with_state)
{
	struct dkv_buf out = {0}, st = {0};
	const uint8_t *v;
	size_t vlen;
	const char *s;
	size_t len;
	int rc = 0;
	print_path(&out, &e->rel);
	dkv_buf_puts(&out, " :: ");
	if (field(&e->value, "code", &v, &vlen) == 0) {
		struct dkv_mp_reader r;
		struct dkv_mp_item it;
		dkv_mp_reader_init(&r, v, vlen);
		if (dkv_mp_read(&r, &it) == 0 && it.type == DKV_MP_ARRAY) {
			struct dkv_buf code = {0};
			for (uint32_t i = 0; i < it.v.n; i++)
				if (dkv_path_elem_canon(&code, &r) < 0)
					break;
			print_path(&out, &code);
			dkv_buf_release(&code);
		} else {
			dkv_buf_puts(&out, "<no code>");
		}
	} else {
		dkv_buf_puts(&out, "<no code>");
	}
	if (field_str(&e->value, "info", &s, &len))
		dkv_buf_printf(&out, " :: %.*s", (int)len, s);
	if (with_state) {
		bool found;
		rc = job_state(x, g, &e->rel, NULL, &st, &found);
		dkv_buf_puts(&out, " :: ");
		if (rc == 0 && g->kind == ALL) {
			/* node: summary; ... */
			struct dkv_mp_reader r;
			struct dkv_mp_item it;
			dkv_mp_reader_init(&r, st.data, st.len);
			if (dkv_mp_read(&r, &it) == 0 && it.type == DKV_MP_MAP && it.v.n) {
				for (uint32_t i = 0; i < it.v.n; i++) {
					const uint8_t *k = r.p;
					if (dkv_mp_skip(&r) < 0)
						break;
					const uint8_t *sv = r.p;
					if (dkv_mp_skip(&r) < 0)
						break;
					struct dkv_buf one = {0};
					dkv_buf_append(&one, sv, (size_t)(r.p - sv));
					if (i)
						dkv_buf_puts(&out, "; ");
					dkv_pathtext_format(&out, k, (size_t)(sv - k), 0);
					dkv_buf_puts(&out, ": ");
					state_summary(&out, &one);
					dkv_buf_release(&one);
				}
			} else {
				dkv_buf_puts(&out, "never run");
			}
		} else if (rc == 0) {
			state_summary(&out, &st);
		}
	}
	dkv_buf_putc(&out, '\n');
	if (rc == 0)
		fwrite(out.data, 1, out.len, stdout);
	dkv_buf_release(&out);
	dkv_buf_release(&st);
	return rc;
}

static int cmd_list(struct dkv__cli_ctx *x, int argc, char **argv)
{
	bool with_state = false;
	const struct dkv__cli_opt opts[] = {
		{.name = "state", .letter = 's', .flag = &with_state,
		 .help = "add each job's state in a few words"},
		{NULL},
	};
	int rc = dkv__cli_options(x, opts, argc, argv);
	struct group g;
	struct dkv_buf path = {0}, start = {0}, value = {0};
	struct collect c = {.start = &start};
	group_init(x, &g);
	if (rc >= 0)
		goto out;
	rc = job_path(x, &g.run, argc - optind, argv + optind, false, &path);
	if (!rc)
		rc = dkv__cli_parse_path(x, argc - optind, argv + optind, &start);
	if (!rc) {
		struct dkv__cli_req q;
		dkv__cli_req_init(&q, "get_tree");
		dkv__cli_req_path(&q, &path);
		rc = dkv__cli_stream(x, &q, collect_cb, &c);
		dkv__cli_req_release(&q);
	}
	for (size_t i = 0; !rc && i < c.n; i++)
		rc = list_line(x, &g, &c.e[i], with_state);
out:
	for (size_t i = 0; i < c.n; i++) {
		dkv_buf_release(&c.e[i].rel);
		dkv_buf_release(&c.e[i].value);
	}
	free(c.e);
	dkv_client_path_release(&c.rel);
	group_release(&g);
	dkv_buf_release(&path);
	dkv_buf_release(&start);
	dkv_buf_release(&value);
	return rc;
}

static const struct dkv__cli_cmd list_cmd = {
	.name = "list", .run = cmd_list, .summary = "list the jobs",
	.usage = "run [-n NODE|-n -] list [-s] [PATH...]",
	.about = "Print \"PATH :: CODE[ :: INFO]\" for each job at or below PATH; with -s\n"
		 "also its state: \"running on NODE since ...\", \"next ... (repeat)\",\n"
		 "\"failed: ...\", \"done\" or \"never run\".\n",
	.help_col = 20,
};

/* ---- run delete ---- */

static int cmd_delete(struct dkv__cli_ctx *x, int argc, char **argv)
{
	const struct dkv__cli_opt opts[] = {{NULL}};
	int rc = dkv__cli_options(x, opts, argc, argv);
	struct group g;
	struct dkv_buf path = {0}, rel = {0}, spath = {0};
	struct dkv_buf *nodes = NULL;
	size_t nn = 0;
	bool gone;
	group_init(x, &g);
	if (rc >= 0)
		goto out;
	rc = job_path(x, &g.run, argc - optind, argv + optind, true, &path);
	if (!rc)
		rc = dkv__cli_parse_path(x, argc - optind, argv + optind, &rel);
	if (!rc)
		rc = dkv__cli_delete(x, "delete_value", &path, &gone);
	if (!rc && !gone) {
		rc = no_job(x, argc - optind, argv + optind);
		goto out;
	}
	/* the state goes too (a runner running the job stops it, and
	 * deletes the state again if it wrote one meanwhile) */
	if (!rc && g.kind != ALL) {
		dkv_buf_append(&spath, g.state.data, g.state.len);
		dkv_buf_append(&spath, rel.data, rel.len);
		rc = dkv__cli_delete(x, "delete_value", &spath, &gone);
	} else if (!rc) {
		rc = list_names(x, &g.state, &nodes, &nn);
		for (size_t i = 0; !rc && i < nn; i++) {
			spath.len = 0;
			dkv_buf_append(&spath, g.state.data, g.state.len);
			dkv_buf_append(&spath, nodes[i].data, nodes[i].len);
			dkv_buf_append(&spath, rel.data, rel.len);
			rc = dkv__cli_delete(x, "delete_value", &spath, &gone);
		}
	}
out:
	free_names(nodes, nn);
	group_release(&g);
	dkv_buf_release(&path);
	dkv_buf_release(&rel);
	dkv_buf_release(&spath);
	return rc;
}

static const struct dkv__cli_cmd delete_cmd = {
	.name = "delete", .run = cmd_delete, .summary = "delete a job",
	.usage = "run [-n NODE|-n -] delete PATH...",
	.about = "Delete the job PATH and its state.  A runner running it stops it.\n",
};

/* ---- run info ---- */

static int count_cb(void *arg, const uint8_t *m, size_t len)
{
	const uint8_t *v;
	size_t vlen;
	if (dkv_client_field(m, len, "value", &v, &vlen) == 0)
		(*(uint64_t *)arg)++;
	return 0;
}

static int cmd_info(struct dkv__cli_ctx *x, int argc, char **argv)
{
	const struct dkv__cli_opt opts[] = {{NULL}};
	int rc = dkv__cli_options(x, opts, argc, argv);
	struct group g;
	struct dkv_buf doc = {0}, lease = {0}, path = {0};
	struct dkv_buf *nodes = NULL;
	size_t nn = 0;
	uint64_t jobs = 0;
	group_init(x, &g);
	if (rc >= 0)
		goto out;
	if (argc > optind) {
		rc = dkv__cli_usage_error(x, "unexpected argument '%s'", argv[optind]);
		goto out;
	}
	struct dkv__cli_req q;
	dkv__cli_req_init(&q, "get_tree");
	dkv__cli_req_path(&q, &g.run);
	rc = dkv__cli_stream(x, &q, count_cb, &jobs);
	dkv__cli_req_release(&q);
	if (rc)
		goto out;
	dkv_mp_map(&doc, 3);
	dkv_mp_cstr(&doc, "group");
	if (g.kind == AT) {
		dkv_mp_array(&doc, 2);
		dkv_mp_cstr(&doc, "at");
		dkv_mp_cstr(&doc, g.node);
	} else {
		dkv_mp_cstr(&doc, g.kind == ANY ? "any" : "all");
	}
	dkv_mp_cstr(&doc, "jobs");
	dkv_mp_uint(&doc, jobs);
	if (g.kind != ALL) {
		dkv_mp_cstr(&doc, "leader");
		rc = dkv__cli_get(x, "get_value", &g.lease, &lease, NULL);
		if (lease.len)
			dkv_buf_append(&doc, lease.data, lease.len);
		else
			dkv_mp_nil(&doc);
	} else {
		/* each node's runners elect their own leader */
		struct dkv_buf body = {0};
		uint32_t count = 0;
		dkv_mp_cstr(&doc, "leaders");
		rc = list_names(x, &g.lease, &nodes, &nn);
		for (size_t i = 0; !rc && i < nn; i++) {
			path.len = lease.len = 0;
			dkv_buf_append(&path, g.lease.data, g.lease.len);
			dkv_buf_append(&path, nodes[i].data, nodes[i].len);
			rc = dkv__cli_get(x, "get_value", &path, &lease, NULL);
			if (rc || !lease.len)
				continue;
			dkv_buf_append(&body, nodes[i].data, nodes[i].len);
			dkv_buf_append(&body, lease.data, lease.len);
			count++;
		}
		dkv_mp_map(&doc, count);
		dkv_buf_append(&doc, body.data, body.len);
		dkv_buf_release(&body);
	}
	if (!rc)
		rc = dkv__cli_print_yaml(x, doc.data, doc.len);
out:
	free_names(nodes, nn);
	group_release(&g);
	dkv_buf_release(&doc);
	dkv_buf_release(&lease);
	dkv_buf_release(&path);
	return rc;
}

static const struct dkv__cli_cmd info_cmd = {
	.name = "info", .run = cmd_info, .summary = "the group's jobs and leader",
	.usage = "run [-n NODE|-n -] info",
	.about = "Print how many jobs the group has and which runner leads it (starts\n"
		 "its jobs): its lease record, null when no runner ever ran; \"runner:\n"
		 "null\" when the last one stopped.  For the all-nodes group: a leader\n"
		 "per node.\n",
};

/* ---- run monitor ---- */

struct monitor {
	struct dkv__cli_ctx *x;
	struct dkv_client_path rel;
};

static int monitor_cb(void *arg, const uint8_t *m, size_t n)
{
	struct monitor *s = arg;
	const uint8_t *v;
	size_t vlen;
	if (dkv_client_path_update(&s->rel, m, n) < 0)
		return 0;
	struct dkv_buf doc = {0};
	bool has = dkv_client_field(m, n, "value", &v, &vlen) == 0;
	dkv_mp_map(&doc, 2);
	dkv_mp_cstr(&doc, "path");
	dkv_path_encode(&doc, s->rel.enc.data, s->rel.enc.len);
	dkv_mp_cstr(&doc, "state");
	if (has)
		dkv_buf_append(&doc, v, vlen);
	else
		dkv_mp_nil(&doc);
	fputs("---\n", stdout);
	int rc = dkv__cli_print_yaml(s->x, doc.data, doc.len);
	fflush(stdout);
	dkv_buf_release(&doc);
	return rc ? -EIO : 0;
}

static int cmd_monitor(struct dkv__cli_ctx *x, int argc, char **argv)
{
	bool fetch = false;
	const struct dkv__cli_opt opts[] = {
		{.name = "fetch", .letter = 'f', .flag = &fetch,
		 .help = "first print the current states"},
		{NULL},
	};
	int rc = dkv__cli_options(x, opts, argc, argv);
	struct group g;
	struct dkv_buf path = {0};
	struct monitor s = {.x = x};
	group_init(x, &g);
	if (rc >= 0)
		goto out;
	rc = job_path(x, &g.state, argc - optind, argv + optind, false, &path);
	if (!rc) {
		struct dkv__cli_req q;
		dkv__cli_req_init(&q, "watch");
		dkv__cli_req_path(&q, &path);
		if (fetch)
			dkv__cli_req_bool(&q, "fetch", true);
		rc = dkv__cli_stream(x, &q, monitor_cb, &s);
		dkv__cli_req_release(&q);
	}
out:
	dkv_client_path_release(&s.rel);
	group_release(&g);
	dkv_buf_release(&path);
	return rc;
}

static const struct dkv__cli_cmd monitor_cmd = {
	.name = "monitor", .run = cmd_monitor, .summary = "print changes of the jobs' states",
	.usage = "run [-n NODE|-n -] monitor [-f] [PATH...]",
	.about = "Print a YAML document {path, state} for every change of a state at\n"
		 "or below PATH (relative to the group; for the all-nodes group the\n"
		 "node comes first), until interrupted.  A deleted state is null.\n",
	.help_col = 20,
};

/* ---- run all: the runner ---- */

/* Where python/distkv is: the source tree's python/ for a program run
 * from its build tree, else where meson installed the package. */
static const char *python_dir(void)
{
#if defined(DKV_SOURCE_PYTHON) && defined(DKV_BUILD_ROOT)
	static char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	size_t blen = strlen(DKV_BUILD_ROOT);
	if (n > 0) {
		exe[n] = '\0';
		if (!strncmp(exe, DKV_BUILD_ROOT, blen) && exe[blen] == '/')
			return DKV_SOURCE_PYTHON;
	}
#endif
#ifdef DKV_INSTALL_PYTHON
	return DKV_INSTALL_PYTHON;
#else
	return NULL;
#endif
}

/* runner.KEY settings (every one, as they are: the runner checks them). */
static void runner_settings(const struct dkv_config *cfg, struct dkv_buf *out)
{
	static const char pre[] = "runner.";
	struct dkv_buf body = {0};
	const char *key;
	const uint8_t *mp;
	size_t len;
	uint32_t n = 0;
	for (size_t i = 0; dkv_config_at(cfg, i, &key, &mp, &len); i++) {
		if (strncmp(key, pre, sizeof pre - 1) || strchr(key + sizeof pre - 1, '.'))
			continue;
		dkv_mp_cstr(&body, key + sizeof pre - 1);
		dkv_buf_append(&body, mp, len);
		n++;
	}
	dkv_mp_map(out, n);
	dkv_buf_append(out, body.data, body.len);
	dkv_buf_release(&body);
}

static int cmd_all(struct dkv__cli_ctx *x, int argc, char **argv)
{
	bool every = false;
	const struct dkv__cli_opt opts[] = {
		{.name = "every", .letter = 'E', .flag = &every,
		 .help = "run every group this node has: any, this node's\n"
			 "own (\"at\") and the all-nodes jobs (what\n"
			 "server.runner starts)"},
		{NULL},
	};
	int rc = dkv__cli_options(x, opts, argc, argv);
	if (rc >= 0)
		return rc;
	if (argc > optind)
		return dkv__cli_usage_error(x, "unexpected argument '%s'", argv[optind]);
	if (every && x->node)
		return dkv__cli_usage_error(x, "%s", "--every and -n exclude each other");

	struct dkv_buf cfg = {0};
	dkv_mp_map(&cfg, 4);
	dkv_mp_cstr(&cfg, "connect");
	dkv_mp_map(&cfg, 3);
	dkv_mp_cstr(&cfg, "host");
	dkv_mp_cstr(&cfg, x->host);
	dkv_mp_cstr(&cfg, "port");
	dkv_mp_uint(&cfg, x->port);
	dkv_mp_cstr(&cfg, "auth");
	if (x->auth_text)
		dkv_mp_cstr(&cfg, x->auth_text);
	else
		dkv_mp_nil(&cfg);
	dkv_mp_cstr(&cfg, "runner");
	runner_settings(x->cli->cfg, &cfg);
	dkv_mp_cstr(&cfg, "groups");
	if (every) {
		dkv_mp_array(&cfg, 3);
		dkv_mp_array(&cfg, 1);
		dkv_mp_cstr(&cfg, "any");
		dkv_mp_array(&cfg, 1);
		dkv_mp_cstr(&cfg, "at"); /* the node the runner connects to */
		dkv_mp_array(&cfg, 1);
		dkv_mp_cstr(&cfg, "all");
	} else {
		dkv_mp_array(&cfg, 1);
		dkv_mp_array(&cfg, x->node && strcmp(x->node, "-") ? 2 : 1);
		dkv_mp_cstr(&cfg, !x->node ? "any" : strcmp(x->node, "-") ? "at" : "all");
		if (x->node && strcmp(x->node, "-"))
			dkv_mp_cstr(&cfg, x->node);
	}
	dkv_mp_cstr(&cfg, "verbose");
	dkv_mp_int(&cfg, x->cli->verbose);

	const char *dir = python_dir();
	char err[400];
	fflush(stdout);
	rc = dkv_py_main(&dir, dir ? 1 : 0, "distkv.runner", "main", cfg.data, cfg.len, err,
			 sizeof err);
	if (rc < 0) {
		fprintf(stderr, "%s: %s\n", x->cli->progname, err);
		rc = 1;
	}
	dkv_buf_release(&cfg);
	return rc;
}

static const struct dkv__cli_cmd all_cmd = {
	.name = "all", .run = cmd_all, .summary = "be a runner: start the group's jobs when due",
	.usage = "run [-n NODE|-n -] all [--every]",
	.about = "Run as a runner of the group until SIGINT or SIGTERM: start its jobs\n"
		 "when they are due, record their states and errors.  Runners of one\n"
		 "group agree through a lease which one starts the jobs\n"
		 "(doc/runners.md); settings: runner.lease, runner.settle.  print() in\n"
		 "a job goes to standard output.\n",
	.help_col = 20,
};

/* ---- the group ---- */

static void run_usage(struct dkv__cli_ctx *x, const struct dkv__cli_opt *opts, FILE *f)
{
	dkv__cli_group_usage(x, f, x->group);
	fputc('\n', f);
	dkv__cli_print_opts(f, opts, 24);
}

int dkv__cli_run_run(struct dkv__cli_ctx *x, const struct dkv__cli_group *g, int argc,
		     char **argv)
{
	static struct dkv__cli_cmd self = {.name = "run", .print_usage = run_usage};
	const struct dkv__cli_opt opts[] = {
		{.name = "node", .letter = 'n', .arg = "NODE", .str = &x->node,
		 .help = "NODE's own jobs; -: the jobs every node\nruns (default: any one node)"},
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
	if (x->node && !*x->node)
		return dkv__cli_usage_error(x, "%s", "-n needs a node name (or -)");
	return dkv__cli_run_group(x, g, argc - optind + 1, argv + optind - 1);
}

const struct dkv__cli_cmd *const dkv__cli_run_cmds[] = {
	&set_cmd, &get_cmd, &list_cmd, &state_cmd, &delete_cmd, &info_cmd, &monitor_cmd,
	&all_cmd, NULL,
};
