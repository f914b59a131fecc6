/*
 * test_code.c - stored code: which internal paths hold records, what a
 * record must look like, and the engine's checker (local changes only).
 */
#include "test.h"

#include "code.h"
#include "mp.h"
#include "path.h"
#include "py.h"

#include <errno.h>
#include <string.h>

/* CPython keeps some allocations past Py_FinalizeEx() (see test_py.c). */
const char *__lsan_default_suppressions(void)
{
	return "leak:libpython3\n";
}

static char why[256];

static void path_of(struct dkv_path *p, const char *a, const char *b)
{
	dkv_path_init(p);
	if (a)
		dkv_path_push_str(p, a);
	if (b)
		dkv_path_push_str(p, b);
}

static enum dkv_code_kind kind(const char *a, const char *b)
{
	struct dkv_path p;
	path_of(&p, a, b);
	enum dkv_code_kind k = dkv_code_kind_of(p.enc.data, p.enc.len);
	dkv_path_release(&p);
	return k;
}

/* {code: src} plus, when given, is_async (0/1; -1: null) and vars
 * (a comma-free list of names, space-separated; NULL: absent). */
static void record(struct dkv_buf *b, const char *src, int async_, const char *vars)
{
	b->len = 0;
	dkv_mp_map(b, 1 + (async_ != -2) + (vars != NULL));
	dkv_mp_cstr(b, "code");
	dkv_mp_cstr(b, src);
	if (async_ != -2) {
		dkv_mp_cstr(b, "is_async");
		if (async_ < 0)
			dkv_mp_nil(b);
		else
			dkv_mp_bool(b, async_);
	}
	if (vars) {
		unsigned n = 0;
		for (const char *p = vars; *p; p++)
			n += *p != ' ' && (p == vars || p[-1] == ' ');
		dkv_mp_cstr(b, "vars");
		dkv_mp_array(b, n);
		for (const char *p = vars; *p;) {
			size_t l = strcspn(p, " ");
			if (l)
				dkv_mp_str(b, p, l);
			p += l;
			p += *p == ' ';
		}
	}
}

static int check(enum dkv_code_kind k, const struct dkv_buf *b)
{
	why[0] = 0;
	return dkv_code_check_record(k, b->data, b->len, why, sizeof why);
}

TEST(kinds)
{
	CHECK_EQ_INT(kind("code", NULL), DKV_CODE_PROC);
	CHECK_EQ_INT(kind("code", "x"), DKV_CODE_PROC);
	CHECK_EQ_INT(kind("module", "x"), DKV_CODE_MODULE);
	CHECK_EQ_INT(kind("codes", "x"), DKV_CODE_NONE);
	CHECK_EQ_INT(kind("cod", NULL), DKV_CODE_NONE);
	CHECK_EQ_INT(kind("acl", "code"), DKV_CODE_NONE);
	CHECK_EQ_INT(kind(NULL, NULL), DKV_CODE_NONE);
	CHECK_EQ_INT(dkv_code_kind_of((const uint8_t *)"\xa4" "cod", 4), DKV_CODE_NONE);
}

TEST(procedures)
{
	struct dkv_buf b = {0};
	record(&b, "print('Forty-Two!')\nreturn 42\n", -2, NULL);
	CHECK_EQ_INT(check(DKV_CODE_PROC, &b), 0);
	record(&b, "x = 1\nreturn x +\n", -1, "");
	CHECK_EQ_INT(check(DKV_CODE_PROC, &b), -EINVAL);
	CHECK_EQ_STR(why, "SyntaxError: line 2: invalid syntax");
	record(&b, "return await x", 0, "x");
	CHECK_EQ_INT(check(DKV_CODE_PROC, &b), -EINVAL);
	CHECK(strstr(why, "line 1") && strstr(why, "outside async function"));
	record(&b, "return await x", 1, "x");
	CHECK_EQ_INT(check(DKV_CODE_PROC, &b), 0);
	record(&b, "return a + b", -1, "a b");
	CHECK_EQ_INT(check(DKV_CODE_PROC, &b), 0);
	record(&b, "return a + b", -1, "a");
	CHECK_EQ_INT(check(DKV_CODE_PROC, &b), 0); /* b is a global: compiles */
	record(&b, "return 1", -1, "a a");
	CHECK_EQ_INT(check(DKV_CODE_PROC, &b), -EINVAL);
	CHECK(!strncmp(why, "SyntaxError: ", 13));
	record(&b, "return 1", -1, "lambda");
	CHECK_EQ_INT(check(DKV_CODE_PROC, &b), -EINVAL);
	record(&b, "return 1", -1, "a):\n  pass\ndef f(");
	CHECK_EQ_INT(check(DKV_CODE_PROC, &b), -EINVAL);
	CHECK(!strncmp(why, "TypeError: 'a):", 15));
	record(&b, "return 1", -1, "9a");
	CHECK_EQ_INT(check(DKV_CODE_PROC, &b), -EINVAL);
	CHECK(strstr(why, "is not a name") != NULL);
	record(&b, "return 1", -1, "caf\xc3\xa9"); /* a name Python takes */
	CHECK_EQ_INT(check(DKV_CODE_PROC, &b), 0);
	/* a module is not a procedure body, nor the reverse */
	record(&b, "from os import *", -2, NULL);
	CHECK_EQ_INT(check(DKV_CODE_PROC, &b), -EINVAL);
	CHECK_EQ_INT(check(DKV_CODE_MODULE, &b), 0);
	/* NONE: anything */
	b.len = 0;
	dkv_mp_cstr(&b, "return (");
	CHECK_EQ_INT(check(DKV_CODE_NONE, &b), 0);
	dkv_buf_release(&b);
}

TEST(vars_limit)
{
	struct dkv_buf b = {0}, names = {0};
	for (int i = 0; i < DKV_CODE_MAX_VARS; i++)
		dkv_buf_printf(&names, "v%d ", i);
	char *n64 = dkv_buf_cstr(&names);
	record(&b, "return v63", -1, n64);
	CHECK_EQ_INT(check(DKV_CODE_PROC, &b), 0);
	dkv_buf_printf(&names, "extra");
	record(&b, "return 1", -1, n64 = dkv_buf_cstr(&names));
	CHECK_EQ_INT(check(DKV_CODE_PROC, &b), -EINVAL);
	CHECK_EQ_STR(why, "TypeError: more than 64 'vars'");
	dkv_buf_release(&names);
	dkv_buf_release(&b);
}

TEST(not_records)
{
	struct dkv_buf b = {0};
	dkv_mp_cstr(&b, "return 1");
	CHECK_EQ_INT(check(DKV_CODE_PROC, &b), -EINVAL);
	CHECK_EQ_STR(why, "TypeError: a procedure is a map with its script in 'code'");
	CHECK_EQ_INT(check(DKV_CODE_MODULE, &b), -EINVAL);
	CHECK_EQ_STR(why, "TypeError: a module is a map with its script in 'code'");

	b.len = 0;
	dkv_mp_map(&b, 1);
	dkv_mp_cstr(&b, "info");
	dkv_mp_cstr(&b, "no code");
	CHECK_EQ_INT(check(DKV_CODE_PROC, &b), -EINVAL);
	CHECK_EQ_STR(why, "TypeError: a procedure needs its script in 'code'");

	b.len = 0;
	dkv_mp_map(&b, 2);
	dkv_mp_cstr(&b, "code");
	dkv_mp_cstr(&b, "pass");
	dkv_mp_cstr(&b, "is_async");
	dkv_mp_int(&b, 1);
	CHECK_EQ_INT(check(DKV_CODE_PROC, &b), -EINVAL);
	CHECK_EQ_STR(why, "TypeError: 'is_async' must be true, false or null");
	/* a module has no is_async: the key is kept, not judged */
	CHECK_EQ_INT(check(DKV_CODE_MODULE, &b), 0);

	/* keys that are not strings, and unknown keys, are kept */
	b.len = 0;
	dkv_mp_map(&b, 3);
	dkv_mp_int(&b, 5);
	dkv_mp_array(&b, 2), dkv_mp_nil(&b), dkv_mp_nil(&b);
	dkv_mp_cstr(&b, "requires");
	dkv_mp_array(&b, 0);
	dkv_mp_cstr(&b, "code");
	dkv_mp_cstr(&b, "pass");
	CHECK_EQ_INT(check(DKV_CODE_PROC, &b), 0);

	/* truncated msgpack */
	b.len -= 2;
	CHECK_EQ_INT(check(DKV_CODE_PROC, &b), -EINVAL);

	/* the longest text, and one byte more */
	struct dkv_buf big = {0};
	for (unsigned i = 0; i < DKV_CODE_MAX_TEXT / 8; i++)
		dkv_buf_puts(&big, "x = 1 #\n");
	dkv_buf_putc(&big, 0);
	b.len = 0;
	dkv_mp_map(&b, 1);
	dkv_mp_cstr(&b, "code");
	dkv_mp_str(&b, big.data, big.len - 1);
	CHECK_EQ_INT(check(DKV_CODE_PROC, &b), 0);
	CHECK_EQ_INT(check(DKV_CODE_MODULE, &b), 0);
	b.len = 0;
	dkv_mp_map(&b, 1);
	dkv_mp_cstr(&b, "code");
	dkv_mp_str(&b, big.data, big.len); /* the NUL is a byte too */
	CHECK_EQ_INT(check(DKV_CODE_PROC, &b), -EINVAL);
	CHECK_EQ_STR(why, "ValueError: the script is longer than 32768 bytes");
	dkv_buf_release(&big);

	/* NUL in a module's text */
	b.len = 0;
	dkv_mp_map(&b, 1);
	dkv_mp_cstr(&b, "code");
	dkv_mp_str(&b, "a\0b", 3);
	CHECK_EQ_INT(check(DKV_CODE_MODULE, &b), -EINVAL);
	CHECK(strstr(why, "null bytes") != NULL);
	dkv_buf_release(&b);
}

TEST(modules)
{
	struct dkv_buf b = {0};
	record(&b, "X = 1\n\ndef f():\n    return X\n", -2, NULL);
	CHECK_EQ_INT(check(DKV_CODE_MODULE, &b), 0);
	record(&b, "", -2, NULL); /* an empty module is a module */
	CHECK_EQ_INT(check(DKV_CODE_MODULE, &b), 0);
	record(&b, "X = 1\nreturn X\n", -2, NULL);
	CHECK_EQ_INT(check(DKV_CODE_MODULE, &b), -EINVAL);
	CHECK_EQ_STR(why, "SyntaxError: line 2: 'return' outside function");
	record(&b, "def f():\npass\n", -2, NULL);
	CHECK_EQ_INT(check(DKV_CODE_MODULE, &b), -EINVAL);
	CHECK(!strncmp(why, "IndentationError: line 2: ", 26));
	/* a small buffer is filled and ended */
	char small[8];
	CHECK_EQ_INT(dkv_code_check_record(DKV_CODE_MODULE, b.data, b.len, small, sizeof small),
		     -EINVAL);
	CHECK_EQ_STR(small, "Indenta");
	dkv_buf_release(&b);
}

/* A change of (a, b) below None (internal) or not. */
static int apply(struct dkv_engine *e, bool internal, const char *a, const char *b,
		 const struct dkv_buf *v, enum dkv_source src, struct dkv_result *res)
{
	struct dkv_path p;
	struct dkv_chain_link link = {.node = dkv_engine_node(e, "node-b", 6), .tick = 7};
	path_of(&p, a, b);
	struct dkv_change c = {.path = p.enc.data, .path_len = p.enc.len, .internal = internal,
			       .value = v ? v->data : NULL, .value_len = v ? v->len : 0,
			       .src = src};
	if (src != DKV_SRC_LOCAL) {
		c.chain = &link;
		c.nchain = 1;
		c.tock = 5;
	}
	int rc = dkv_engine_apply(e, &c, res);
	dkv_path_release(&p);
	return rc;
}

TEST(checker)
{
	struct dkv_engine *e = dkv_engine_new(&(struct dkv_engine_opts){.node = "node-a",
									 .chain_length = 3});
	struct dkv_result r;
	struct dkv_buf good = {0}, bad = {0};
	dkv_code_add_checker(e);
	record(&good, "return 42", -1, "");
	record(&bad, "return (", -1, "");

	CHECK_EQ_INT(apply(e, true, "code", "x", &good, DKV_SRC_LOCAL, &r), 0);
	dkv_result_release(e, &r);
	CHECK_EQ_INT(apply(e, true, "code", "x", &bad, DKV_SRC_LOCAL, &r), -EINVAL);
	CHECK(!strncmp(r.why, "SyntaxError: line 1: ", 21));
	dkv_result_release(e, &r);
	/* the old record stays */
	struct dkv_path p;
	struct dkv_entry *ent = NULL;
	path_of(&p, "code", "x");
	REQUIRE(dkv_engine_find(e, NULL, p.enc.data, p.enc.len, true, 0, &ent) == 0 && ent);
	CHECK(ent->value && ent->value->len == good.len &&
	      !memcmp(dkv_value_data(ent->value), good.data, good.len));
	dkv_path_release(&p);
	/* a refused new record leaves nothing behind */
	CHECK_EQ_INT(apply(e, true, "module", "m", &bad, DKV_SRC_LOCAL, &r), -EINVAL);
	dkv_result_release(e, &r);
	CHECK_EQ_INT(apply(e, true, "code", "new", &bad, DKV_SRC_LOCAL, &r), -EINVAL);
	dkv_result_release(e, &r);
	path_of(&p, "code", "new");
	CHECK(dkv_engine_find(e, NULL, p.enc.data, p.enc.len, true, 0, &ent) == 0 && !ent);
	dkv_path_release(&p);
	/* deleting, other internal data, ordinary data: not checked */
	CHECK_EQ_INT(apply(e, true, "code", "x", NULL, DKV_SRC_LOCAL, &r), 0);
	dkv_result_release(e, &r);
	CHECK_EQ_INT(apply(e, true, "type", "x", &bad, DKV_SRC_LOCAL, &r), 0);
	dkv_result_release(e, &r);
	CHECK_EQ_INT(apply(e, false, "code", "x", &bad, DKV_SRC_LOCAL, &r), 0);
	dkv_result_release(e, &r);
	/* a change from another node or a log was checked where it was made */
	CHECK_EQ_INT(apply(e, true, "code", "y", &bad, DKV_SRC_REMOTE, &r), 0);
	CHECK(r.changed);
	dkv_result_release(e, &r);
	CHECK_EQ_INT(apply(e, true, "code", "z", &bad, DKV_SRC_REPLAY, &r), 0);
	dkv_result_release(e, &r);

	dkv_buf_release(&good);
	dkv_buf_release(&bad);
	dkv_engine_free(e);
	dkv_py_shutdown();
}

TESTS(kinds, procedures, vars_limit, not_records, modules, checker)
