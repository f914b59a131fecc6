/*
 * code.c - stored code: the checker that keeps the records below
 * (None, "code") and (None, "module") compilable (code.h says what they
 * hold).
 *
 * Code is stored rarely and run elsewhere (by the runners), so checking a
 * record compiles it and throws the result away: nothing is cached, and
 * a change anywhere else costs the checker one test of c->internal, or a
 * comparison of the first path element for the other internal records.
 * Compiling runs on the loop and cannot be interrupted, so the text is
 * bounded (DKV_CODE_MAX_TEXT) instead.
 *
 * A procedure is compiled by py.h's procedures, as the runners will
 * compile it.  py.h has no call for a module, and a module is not a
 * procedure body ("from x import *" is valid only in a module, "return"
 * only in a function), so a module's text is handed to Python's own
 * compile() by a small fixed procedure of ours: that procedure runs, the
 * module does not.
 */
#include "code.h"

#include "py.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- paths ---- */

static bool first_elem_is(const uint8_t *path, size_t len, const char *name)
{
	size_t n = strlen(name); /* short: a fixstr, one head byte */
	return len >= n + 1 && path[0] == (uint8_t)(0xa0 | n) && !memcmp(path + 1, name, n);
}

enum dkv_code_kind dkv_code_kind_of(const uint8_t *path, size_t len)
{
	if (first_elem_is(path, len, DKV_CODE_ELEM))
		return DKV_CODE_PROC;
	if (first_elem_is(path, len, DKV_MODULE_ELEM))
		return DKV_CODE_MODULE;
	return DKV_CODE_NONE;
}

/* ---- reading a record ---- */

struct record {
	const uint8_t *code; /* the "code" item (msgpack), NULL: absent */
	size_t code_len;
	const char *src;     /* its text, src_len bytes (no NUL) */
	size_t src_len;
	int is_async;        /* 1 true, 0 false, -1 null or absent */
	char *vars[DKV_CODE_MAX_VARS]; /* NUL-terminated copies */
	unsigned nvars;
};

static void record_release(struct record *r)
{
	for (unsigned i = 0; i < r->nvars; i++)
		free(r->vars[i]);
	r->nvars = 0;
}

/* A parameter's name must be one word of Python: the compiler judges it
 * (keywords, letters), but nothing that is not part of a name may get
 * into the text the procedure's header is made of. */
static bool name_chars(const uint8_t *p, size_t n)
{
	if (!n || (p[0] >= '0' && p[0] <= '9'))
		return false;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i];
		if (!(c >= 0x80 || c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9')))
			return false;
	}
	return true;
}

static int bad(char *why, size_t whylen, const char *fmt, const char *arg)
{
	char text[160];
	snprintf(text, sizeof text, fmt, arg);
	snprintf(why, whylen, "TypeError: %s", text);
	return -EINVAL;
}

static int read_vars(struct record *rec, struct dkv_mp_reader *r, const struct dkv_mp_item *it,
		     char *why, size_t whylen)
{
	struct dkv_mp_item e;
	if (it->type == DKV_MP_NIL)
		return 0;
	if (it->type != DKV_MP_ARRAY)
		return bad(why, whylen, "%s", "'vars' must be a list of names");
	if (it->v.n > DKV_CODE_MAX_VARS)
		return bad(why, whylen, "%s", "more than 64 'vars'");
	for (uint32_t i = 0; i < it->v.n; i++) {
		if (dkv_mp_read(r, &e) < 0 || e.type != DKV_MP_STR)
			return bad(why, whylen, "%s", "'vars' must be a list of names");
		if (!name_chars(e.v.s.p, e.v.s.len)) {
			char *name = dkv_xstrndup((const char *)e.v.s.p, e.v.s.len);
			int rc = bad(why, whylen, "'%s' in 'vars' is not a name", name);
			free(name);
			return rc;
		}
		rec->vars[rec->nvars++] = dkv_xstrndup((const char *)e.v.s.p, e.v.s.len);
	}
	return 0;
}

/* One pair of the record's map, the reader at its value. */
static int read_field(struct record *rec, enum dkv_code_kind kind, const struct dkv_mp_item *key,
		      struct dkv_mp_reader *r, char *why, size_t whylen)
{
	struct dkv_mp_reader vr = *r;
	struct dkv_mp_item it;
	if (dkv_mp_read(&vr, &it) < 0)
		return bad(why, whylen, "%s", "not msgpack");
	if (dkv_mp_streq(key, "code")) {
		if (it.type != DKV_MP_STR)
			return bad(why, whylen, "%s", "'code' must be a string");
		if (it.v.s.len > DKV_CODE_MAX_TEXT) {
			snprintf(why, whylen, "ValueError: the script is longer than %u bytes",
				 DKV_CODE_MAX_TEXT);
			return -EINVAL;
		}
		rec->code = r->p;
		rec->code_len = (size_t)(vr.p - r->p);
		rec->src = (const char *)it.v.s.p;
		rec->src_len = it.v.s.len;
	} else if (kind == DKV_CODE_PROC && dkv_mp_streq(key, "is_async")) {
		if (it.type != DKV_MP_BOOL && it.type != DKV_MP_NIL)
			return bad(why, whylen, "%s", "'is_async' must be true, false or null");
		rec->is_async = it.type == DKV_MP_NIL ? -1 : it.v.b;
	} else if (kind == DKV_CODE_PROC && dkv_mp_streq(key, "vars")) {
		record_release(rec); /* a repeated key: the last one counts */
		int rc = read_vars(rec, &vr, &it, why, whylen);
		if (rc)
			return rc;
	} else if (kind == DKV_CODE_PROC && dkv_mp_streq(key, "info")) {
		if (it.type != DKV_MP_STR && it.type != DKV_MP_NIL)
			return bad(why, whylen, "%s", "'info' must be a string");
	}
	return dkv_mp_skip(r) < 0 ? bad(why, whylen, "%s", "not msgpack") : 0;
}

static int read_record(struct record *rec, enum dkv_code_kind kind, const uint8_t *value,
		       size_t len, char *why, size_t whylen)
{
	struct dkv_mp_reader r;
	struct dkv_mp_item it, key;
	const char *what = kind == DKV_CODE_PROC ? "a procedure" : "a module";
	*rec = (struct record){.is_async = -1};
	dkv_mp_reader_init(&r, value, len);
	if (dkv_mp_read(&r, &it) < 0 || it.type != DKV_MP_MAP)
		return bad(why, whylen, "%s is a map with its script in 'code'", what);
	for (uint32_t i = 0; i < it.v.n; i++) {
		struct dkv_mp_reader kr = r;
		if (dkv_mp_read(&kr, &key) < 0 || dkv_mp_skip(&r) < 0)
			return bad(why, whylen, "%s", "not msgpack");
		if (key.type != DKV_MP_STR) {
			if (dkv_mp_skip(&r) < 0)
				return bad(why, whylen, "%s", "not msgpack");
			continue;
		}
		int rc = read_field(rec, kind, &key, &r, why, whylen);
		if (rc)
			return rc;
	}
	if (!rec->code)
		return bad(why, whylen, "%s needs its script in 'code'", what);
	return 0;
}

/* ---- compiling ---- */

static int check_proc(const struct record *rec, char *why, size_t whylen)
{
	struct dkv_py_proc *p = NULL;
	int rc = dkv_py_proc_new(&p, rec->src, rec->src_len, (const char *const *)rec->vars,
				 rec->nvars, rec->is_async == 1, why, whylen);
	dkv_py_proc_free(p);
	return rc ? -EINVAL : 0;
}

/* Compiles the module text src; returns None, or the reason it does not
 * compile in the words dkv_py_proc_new uses for a procedure. */
static const char module_checker[] =
	"try:\n"
	"    compile(src, '<module>', 'exec', dont_inherit=True)\n"
	"except SyntaxError as exc:\n"
	"    return '%s: line %s: %s' % (type(exc).__name__, exc.lineno, exc.msg)\n"
	"except ValueError as exc:\n"
	"    return '%s: %s' % (type(exc).__name__, exc)\n";

static int check_module(const struct record *rec, char *why, size_t whylen)
{
	static const char *const params[] = {"src"};
	struct dkv_py_proc *p = NULL;
	struct dkv_buf out = {0};
	struct dkv_py_arg arg = {.mp = rec->code, .len = rec->code_len};
	int rc = dkv_py_proc_new(&p, module_checker, sizeof module_checker - 1, params, 1, false,
				 why, whylen);
	if (rc == 0)
		rc = dkv_py_proc_call(p, &arg, 1, &out, why, whylen);
	if (rc == 0) {
		struct dkv_mp_reader r;
		struct dkv_mp_item it;
		dkv_mp_reader_init(&r, out.data, out.len);
		if (dkv_mp_read(&r, &it) == 0 && it.type == DKV_MP_STR) {
			snprintf(why, whylen, "%.*s", (int)it.v.s.len, (const char *)it.v.s.p);
			rc = -EINVAL;
		}
	}
	dkv_buf_release(&out);
	dkv_py_proc_free(p);
	return rc ? -EINVAL : 0;
}

int dkv_code_check_record(enum dkv_code_kind kind, const uint8_t *value, size_t len, char *why,
			  size_t whylen)
{
	struct record rec;
	if (kind == DKV_CODE_NONE)
		return 0;
	int rc = read_record(&rec, kind, value, len, why, whylen);
	if (rc == 0)
		rc = kind == DKV_CODE_PROC ? check_proc(&rec, why, whylen)
					   : check_module(&rec, why, whylen);
	record_release(&rec);
	return rc;
}

/* ---- the checker ---- */

static int check_change(void *ctx, struct dkv_engine *e, const struct dkv_change *c, char *why,
			size_t whylen)
{
	(void)ctx;
	(void)e;
	if (!c->internal || !c->value)
		return 0;
	return dkv_code_check_record(dkv_code_kind_of(c->path, c->path_len), c->value,
				     c->value_len, why, whylen);
}

void dkv_code_add_checker(struct dkv_engine *e)
{
	dkv_engine_add_checker(e, check_change, NULL);
}
