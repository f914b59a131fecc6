/*
 * test_codec.c - codec.c without running Python: values compared as
 * Python compares them, repr() texts, the checker's refusals of
 * malformed records, and which converter pattern a path matches (told by
 * the error of a converter whose codecs do not exist).
 */
#include "test.h"

#include "codec.h"
#include "engine.h"
#include "mp.h"
#include "path.h"
#include "pathtext.h"

#include <errno.h>
#include <string.h>

const char *__lsan_default_suppressions(void)
{
	return "leak:libpython3\n";
}

/* A path from words in colon notation, NULL-terminated. */
static void words(struct dkv_buf *p, const char *const *w)
{
	p->len = 0;
	for (; *w; w++)
		dkv_pathtext_parse(p, *w, strlen(*w), 0);
}

static int set(struct dkv_engine *e, bool internal, const char *const *w, const struct dkv_buf *v,
	       char *why)
{
	struct dkv_buf p = {0};
	struct dkv_result res;
	words(&p, w);
	struct dkv_change c = {.path = p.data, .path_len = p.len, .internal = internal,
			       .value = v->data, .value_len = v->len, .src = DKV_SRC_LOCAL};
	int rc = dkv_engine_apply(e, &c, &res);
	if (why)
		strcpy(why, res.why);
	dkv_result_release(e, &res);
	dkv_buf_release(&p);
	return rc;
}

TEST(equality)
{
	struct dkv_buf a = {0}, b = {0};
	dkv_mp_uint(&a, 12);
	dkv_mp_double(&b, 12.0);
	CHECK(dkv_codec_values_equal(a.data, a.len, b.data, b.len));
	a.len = b.len = 0;
	dkv_mp_bool(&a, true);
	dkv_mp_uint(&b, 1);
	CHECK(dkv_codec_values_equal(a.data, a.len, b.data, b.len));
	a.len = b.len = 0;
	dkv_mp_cstr(&a, "12");
	dkv_mp_uint(&b, 12);
	CHECK(!dkv_codec_values_equal(a.data, a.len, b.data, b.len));
	a.len = b.len = 0; /* maps in any order, nested */
	dkv_mp_map(&a, 2);
	dkv_mp_cstr(&a, "x"), dkv_mp_array(&a, 2), dkv_mp_uint(&a, 1), dkv_mp_nil(&a);
	dkv_mp_cstr(&a, "y"), dkv_mp_int(&a, -3);
	dkv_mp_map(&b, 2);
	dkv_mp_cstr(&b, "y"), dkv_mp_double(&b, -3.0);
	dkv_mp_cstr(&b, "x"), dkv_mp_array(&b, 2), dkv_mp_double(&b, 1.0), dkv_mp_nil(&b);
	CHECK(dkv_codec_values_equal(a.data, a.len, b.data, b.len));
	b.len = 0;
	dkv_mp_map(&b, 2);
	dkv_mp_cstr(&b, "y"), dkv_mp_int(&b, -3);
	dkv_mp_cstr(&b, "x"), dkv_mp_array(&b, 2), dkv_mp_uint(&b, 1), dkv_mp_uint(&b, 0);
	CHECK(!dkv_codec_values_equal(a.data, a.len, b.data, b.len));
	a.len = b.len = 0;
	dkv_mp_cstr(&a, "x");
	dkv_mp_bin(&b, "x", 1);
	CHECK(!dkv_codec_values_equal(a.data, a.len, b.data, b.len));
	dkv_buf_release(&a);
	dkv_buf_release(&b);
}

static void repr_is(const struct dkv_buf *v, const char *want)
{
	struct dkv_buf out = {0};
	dkv_codec_repr(&out, v->data, v->len, 200);
	CHECK_EQ_STR(dkv_buf_cstr(&out), want);
	dkv_buf_release(&out);
}

TEST(repr)
{
	struct dkv_buf v = {0};
	dkv_mp_double(&v, 12.5);
	repr_is(&v, "12.5");
	v.len = 0, dkv_mp_double(&v, 13.0);
	repr_is(&v, "13.0");
	v.len = 0, dkv_mp_double(&v, 0.1);
	repr_is(&v, "0.1");
	v.len = 0, dkv_mp_double(&v, 1e16);
	repr_is(&v, "1e+16");
	v.len = 0, dkv_mp_double(&v, 1e-05);
	repr_is(&v, "1e-05");
	v.len = 0, dkv_mp_double(&v, 123456.75);
	repr_is(&v, "123456.75");
	v.len = 0, dkv_mp_cstr(&v, "it's");
	repr_is(&v, "\"it's\"");
	v.len = 0, dkv_mp_cstr(&v, "a\nb'\"");
	repr_is(&v, "'a\\nb\\'\"'");
	v.len = 0, dkv_mp_bin(&v, "\x01z", 2);
	repr_is(&v, "b'\\x01z'");
	v.len = 0;
	dkv_mp_map(&v, 1), dkv_mp_cstr(&v, "k");
	dkv_mp_array(&v, 3), dkv_mp_nil(&v), dkv_mp_bool(&v, false), dkv_mp_int(&v, -4);
	repr_is(&v, "{'k': [None, False, -4]}");
	dkv_buf_release(&v);
}

TEST(checker)
{
	struct dkv_engine_opts o = {.node = "n"};
	struct dkv_engine *e = dkv_engine_new(&o);
	char why[256];
	struct dkv_buf v = {0};
	dkv_engine_add_checker(e, dkv_codec_check, NULL);
	dkv_mp_cstr(&v, "return value");
	CHECK_EQ_INT(set(e, true, (const char *[]){"codec", "x", NULL}, &v, why), -EINVAL);
	CHECK(strstr(why, "a codec is a map") != NULL);
	v.len = 0, dkv_mp_map(&v, 1), dkv_mp_cstr(&v, "encode"), dkv_mp_uint(&v, 3);
	CHECK_EQ_INT(set(e, true, (const char *[]){"codec", "x", NULL}, &v, why), -EINVAL);
	CHECK(strstr(why, "the text of a script") != NULL);
	v.len = 0, dkv_mp_map(&v, 1), dkv_mp_cstr(&v, "in"), dkv_mp_array(&v, 1),
		dkv_mp_array(&v, 1), dkv_mp_nil(&v);
	CHECK_EQ_INT(set(e, true, (const char *[]){"codec", "x", NULL}, &v, why), -EINVAL);
	CHECK(strstr(why, "[IN, OUT] pairs") != NULL);
	CHECK_EQ_INT(set(e, true, (const char *[]){"codec", NULL}, &v, why), -EINVAL);
	CHECK(strstr(why, "needs a name") != NULL);
	/* a codec without scripts needs no samples: stored */
	v.len = 0, dkv_mp_map(&v, 0);
	CHECK_EQ_INT(set(e, true, (const char *[]){"codec", "x", NULL}, &v, why), 0);
	/* converters */
	v.len = 0, dkv_mp_map(&v, 1), dkv_mp_cstr(&v, "codec"), dkv_mp_array(&v, 1),
		dkv_mp_cstr(&v, "y");
	CHECK_EQ_INT(set(e, true, (const char *[]){"conv", "c", "a", NULL}, &v, why), -EINVAL);
	CHECK_EQ_STR(why, "no codec named 'y'");
	CHECK_EQ_INT(set(e, true, (const char *[]){"conv", "c", NULL}, &v, why), -EINVAL);
	CHECK(strstr(why, "with a path") != NULL);
	v.len = 0, dkv_mp_map(&v, 1), dkv_mp_cstr(&v, "codec"), dkv_mp_array(&v, 1),
		dkv_mp_cstr(&v, "x");
	CHECK_EQ_INT(set(e, true, (const char *[]){"conv", "c", "a", NULL}, &v, why), 0);
	/* data and other internal areas pass */
	CHECK_EQ_INT(set(e, false, (const char *[]){"codec", NULL}, &v, why), 0);
	CHECK_EQ_INT(set(e, true, (const char *[]){"acl", "conv", NULL}, &v, why), 0);
	dkv_buf_release(&v);
	dkv_engine_free(e);
}

/* Run path's words through s's converter as a decode: the error text
 * (which names the matched pattern's missing codec), or "" when nothing
 * matched. */
static const char *matched(struct dkv_session *s, const char *const *w)
{
	static char why[256];
	struct dkv_buf p = {0}, scratch = {0}, val = {0};
	words(&p, w);
	dkv_mp_uint(&val, 1);
	const uint8_t *mp = val.data;
	size_t len = val.len;
	why[0] = 0;
	int rc = dkv_session_decode(s, p.data, p.len, &mp, &len, &scratch, why, sizeof why);
	if (rc == 0)
		CHECK(mp == val.data && len == val.len && !scratch.len);
	dkv_buf_release(&p);
	dkv_buf_release(&scratch);
	dkv_buf_release(&val);
	return why;
}

static void bind(struct dkv_engine *e, const char *const *w, const char *codec)
{
	struct dkv_buf v = {0};
	dkv_mp_map(&v, 1), dkv_mp_cstr(&v, "codec"), dkv_mp_array(&v, 1), dkv_mp_cstr(&v, codec);
	CHECK_EQ_INT(set(e, true, w, &v, NULL), 0);
	dkv_buf_release(&v);
}

TEST(patterns)
{
	struct dkv_engine_opts o = {.node = "n"};
	struct dkv_engine *e = dkv_engine_new(&o); /* no checker: codecs may be missing */
	struct dkv_session s = {0};
	CHECK_EQ_STR(matched(&s, (const char *[]){"a", "b", NULL}), ""); /* no converter */
	dkv_conv_bind(&s, e, "t");
	CHECK_EQ_STR(matched(&s, (const char *[]){"a", "b", NULL}), ""); /* no such converter */
	bind(e, (const char *[]){"conv", "t", "a", "#", NULL}, "hash");
	bind(e, (const char *[]){"conv", "t", "a", "+", NULL}, "plus");
	bind(e, (const char *[]){"conv", "t", "a", "b", NULL}, "exact");
	bind(e, (const char *[]){"conv", "t", "x", "+", "z", NULL}, "xz");
	CHECK_EQ_STR(matched(&s, (const char *[]){"a", "b", NULL}), "converter t: no codec named 'exact'");
	CHECK_EQ_STR(matched(&s, (const char *[]){"a", "c", NULL}), "converter t: no codec named 'plus'");
	CHECK_EQ_STR(matched(&s, (const char *[]){"a", "b", "c", NULL}), "converter t: no codec named 'hash'");
	CHECK_EQ_STR(matched(&s, (const char *[]){"x", "y", "z", NULL}), "converter t: no codec named 'xz'");
	CHECK_EQ_STR(matched(&s, (const char *[]){"x", "y", NULL}), "");
	CHECK_EQ_STR(matched(&s, (const char *[]){"a", NULL}), "");
	CHECK_EQ_STR(matched(&s, (const char *[]){"q", "b", NULL}), "");
	/* a codec without scripts appears: the generation moves, values pass */
	struct dkv_buf v = {0};
	dkv_mp_map(&v, 0);
	CHECK_EQ_INT(set(e, true, (const char *[]){"codec", "exact", NULL}, &v, NULL), 0);
	CHECK_EQ_STR(matched(&s, (const char *[]){"a", "b", NULL}), "");
	CHECK_EQ_STR(matched(&s, (const char *[]){"a", "c", NULL}), "converter t: no codec named 'plus'");
	dkv_buf_release(&v);
	dkv_conv_bind(&s, NULL, NULL);
	CHECK(s.conv == NULL);
	dkv_engine_free(e);
}

TESTS(equality, repr, checker, patterns)
