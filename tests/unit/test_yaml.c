/*
 * test_yaml.c - YAML emitting and parsing: exact texts for the common
 * cases, the core schema's corner cases, errors, and the round trip
 * parse(emit(v)) == v over hand-picked and pseudo-random values.
 */
#include "test.h"

#include "path.h"
#include "yamltext.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>

/* ---- helpers ---- */

static char emitted[1 << 16];

/* Emit the value in b; the text (NUL-terminated) goes to `emitted`. */
static int emit(const struct dkv_buf *b, unsigned indent)
{
	struct dkv_buf out = {0};
	int rc = dkv_yaml_emit_indented(&out, b->data, b->len, indent);
	size_t n = out.len < sizeof emitted - 1 ? out.len : sizeof emitted - 1;
	memcpy(emitted, out.data ? (char *)out.data : "", n);
	emitted[n] = 0;
	dkv_buf_release(&out);
	return rc;
}

static void hexdump(const char *what, const uint8_t *p, size_t n)
{
	printf("#   %s:", what);
	for (size_t i = 0; i < n && i < 64; i++)
		printf(" %02x", p[i]);
	printf("%s\n", n > 64 ? " ..." : "");
}

/* Does text parse to exactly the encoding in want? */
static bool parses_to(const char *text, const struct dkv_buf *want)
{
	struct dkv_buf got = {0};
	char err[200] = "";
	int rc = dkv_yaml_parse(&got, text, strlen(text), err, sizeof err);
	bool ok = rc == 0 && got.len == want->len && !memcmp(got.data, want->data, got.len);
	if (!ok) {
		printf("#   parsing \"%s\": rc %d %s\n", text, rc, err);
		hexdump("got ", got.data, got.len);
		hexdump("want", want->data, want->len);
	}
	dkv_buf_release(&got);
	return ok;
}

/* Does text fail to parse with a message containing msg? */
static bool parse_fails(const char *text, const char *msg)
{
	struct dkv_buf got = {0};
	char err[200] = "";
	int rc;

	dkv_buf_puts(&got, "keep");
	rc = dkv_yaml_parse(&got, text, strlen(text), err, sizeof err);
	bool ok = rc == -EINVAL && got.len == 4 && strstr(err, msg);
	if (!ok)
		printf("#   parsing \"%s\": rc %d, err \"%s\", expected \"%s\"\n", text, rc, err, msg);
	dkv_buf_release(&got);
	return ok;
}

/* parse(emit(v)) == v; prints the text when not. */
static bool round_trips(const struct dkv_buf *v)
{
	struct dkv_buf text = {0}, back = {0};
	char err[200] = "";
	int rc = dkv_yaml_emit(&text, v->data, v->len);
	bool ok = rc == 0;

	if (ok) {
		rc = dkv_yaml_parse(&back, (const char *)text.data, text.len, err, sizeof err);
		ok = rc == 0 && back.len == v->len && !memcmp(back.data, v->data, v->len);
		ok = ok && text.len && text.data[text.len - 1] == '\n' &&
		     (text.len == 1 || text.data[text.len - 2] != '\n');
	}
	if (!ok) {
		printf("#   round trip failed: rc %d %s\n", rc, err);
		printf("#   text: [%.*s]\n", (int)text.len, text.data ? (char *)text.data : "");
		hexdump("value", v->data, v->len);
		hexdump("back ", back.data, back.len);
	}
	dkv_buf_release(&text);
	dkv_buf_release(&back);
	return ok;
}

/* A value made of one string. */
static void str_val(struct dkv_buf *b, const char *s)
{
	b->len = 0;
	dkv_mp_cstr(b, s);
}

/* ---- emitting ---- */

TEST(emit_scalars)
{
	struct dkv_buf b = {0};

	dkv_mp_nil(&b);
	CHECK_EQ_INT(emit(&b, 0), 0);
	CHECK_EQ_STR(emitted, "null\n");
	b.len = 0;
	dkv_mp_bool(&b, true);
	emit(&b, 0);
	CHECK_EQ_STR(emitted, "true\n");
	b.len = 0;
	dkv_mp_bool(&b, false);
	emit(&b, 0);
	CHECK_EQ_STR(emitted, "false\n");
	b.len = 0;
	dkv_mp_int(&b, 123);
	emit(&b, 0);
	CHECK_EQ_STR(emitted, "123\n");
	b.len = 0;
	dkv_mp_int(&b, INT64_MIN);
	emit(&b, 0);
	CHECK_EQ_STR(emitted, "-9223372036854775808\n");
	b.len = 0;
	dkv_mp_uint(&b, UINT64_MAX);
	emit(&b, 0);
	CHECK_EQ_STR(emitted, "18446744073709551615\n");

	static const struct {
		double v;
		const char *text;
	} floats[] = {
		{1.5, "1.5\n"},       {1e100, "1.0e+100\n"},
		{100.0, "100.0\n"},   {0.1, "0.1\n"},
		{-2.5e-7, "-2.5e-07\n"}, {1e16, "1.0e+16\n"},
		{1.25e16, "1.25e+16\n"}, {5e-324, "5.0e-324\n"},
		{1.7976931348623157e308, "1.7976931348623157e+308\n"},
		{123456789012345.6, "123456789012345.6\n"},
		{1e15, "1000000000000000.0\n"}, {0.0001, "0.0001\n"},
		{1.0 / 3, "0.3333333333333333\n"}, {-0.0, "-0.0\n"},
		{INFINITY, ".inf\n"}, {-INFINITY, "-.inf\n"},
		{NAN, ".nan\n"},
	};
	for (size_t i = 0; i < sizeof floats / sizeof floats[0]; i++) {
		b.len = 0;
		dkv_mp_double(&b, floats[i].v);
		emit(&b, 0);
		CHECK_EQ_STR(emitted, floats[i].text);
	}

	static const struct {
		const char *s, *text;
	} strs[] = {
		{"Duh", "Duh\n"},
		/* YAML 1.1 (PyYAML): booleans, nulls, numbers, dates, merge, value */
		{"ON", "'ON'\n"},
		{"On", "'On'\n"},
		{"oFF", "'oFF'\n"},
		{"yes", "'yes'\n"},
		{"No", "'No'\n"},
		{"y", "'y'\n"},
		{"N", "'N'\n"},
		{"0b101", "'0b101'\n"},
		{"1_000", "'1_000'\n"},
		{"0X1F", "'0X1F'\n"},
		{"-0x1f", "'-0x1f'\n"},
		{"017", "'017'\n"},
		{"08", "'08'\n"},
		{"12:30", "'12:30'\n"},
		{"190:20:30.15", "'190:20:30.15'\n"},
		{"1.", "'1.'\n"},
		{"1.2.3", "'1.2.3'\n"},
		{".", "'.'\n"},
		{"-.", "'-.'\n"},
		{"1,000", "'1,000'\n"},
		{"1e", "1e\n"},
		{"1E+3", "'1E+3'\n"},
		{"+.5", "'+.5'\n"},
		{"-.NaN", "'-.NaN'\n"},
		{".Inf", "'.Inf'\n"},
		{"2001-12-14", "'2001-12-14'\n"},
		{"2001-12-14t21:59:43.10-05:00", "'2001-12-14t21:59:43.10-05:00'\n"},
		{"2001-1-1", "'2001-1-1'\n"},
		{"=", "'='\n"},
		{"<<", "'<<'\n"},
		{":sym", "':sym'\n"},
		/* near misses stay plain */
		{"nan", "nan\n"},
		{"inf", "inf\n"},
		{"yess", "yess\n"},
		{"2nd", "2nd\n"},
		{"0xg", "0xg\n"},
		{"e5", "e5\n"},
		{"201-12-14", "201-12-14\n"},
		{"a=b", "a=b\n"},
		{"a:b", "a:b\n"},
		/* YAML 1.2 core */
		{"123", "'123'\n"},
		{"-5", "'-5'\n"},
		{"0x1f", "'0x1f'\n"},
		{"0o17", "'0o17'\n"},
		{"1.5", "'1.5'\n"},
		{"1e3", "'1e3'\n"},
		{".inf", "'.inf'\n"},
		{".NaN", "'.NaN'\n"},
		{"true", "'true'\n"},
		{"False", "'False'\n"},
		{"null", "'null'\n"},
		{"NULL", "'NULL'\n"},
		{"~", "'~'\n"},
		{"", "''\n"},
		{"a: b", "'a: b'\n"},
		{"#x", "'#x'\n"},
		{"- x", "'- x'\n"},
		{" x", "' x'\n"},
		{"x ", "'x '\n"},
		{"it's", "it's\n"},
		{"\xc3\xa4\xe2\x82\xac", "\xc3\xa4\xe2\x82\xac\n"},
		{"a\nb", "|-\n  a\n  b\n"},
		{"a\nb\n", "|\n  a\n  b\n"},
		{"a\n\n", "\"a\\n\\n\"\n"},
		{"tab\there", "\"tab\\there\"\n"},
	};
	for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
		str_val(&b, strs[i].s);
		CHECK_EQ_INT(emit(&b, 0), 0);
		CHECK_EQ_STR(emitted, strs[i].text);
	}
	dkv_buf_release(&b);
}

TEST(emit_containers)
{
	struct dkv_buf b = {0};

	dkv_mp_map(&b, 3);
	dkv_mp_cstr(&b, "a");
	dkv_mp_array(&b, 3);
	dkv_mp_int(&b, 1);
	dkv_mp_cstr(&b, "two");
	dkv_mp_map(&b, 1);
	dkv_mp_cstr(&b, "b");
	dkv_mp_nil(&b);
	dkv_mp_cstr(&b, "c");
	dkv_mp_map(&b, 0);
	dkv_mp_int(&b, 5);
	dkv_mp_array(&b, 0);
	CHECK_EQ_INT(emit(&b, 0), 0);
	CHECK_EQ_STR(emitted, "a:\n- 1\n- two\n- b: null\nc: {}\n5: []\n");
	CHECK_EQ_INT(emit(&b, 4), 0);
	CHECK_EQ_STR(emitted, "    a:\n    - 1\n    - two\n    - b: null\n    c: {}\n    5: []\n");

	b.len = 0;
	dkv_mp_map(&b, 0);
	emit(&b, 0);
	CHECK_EQ_STR(emitted, "{}\n");
	b.len = 0;
	dkv_mp_array(&b, 0);
	emit(&b, 2);
	CHECK_EQ_STR(emitted, "  []\n");

	b.len = 0;
	dkv_mp_array(&b, 2);
	dkv_mp_array(&b, 2);
	dkv_mp_int(&b, 1);
	dkv_mp_int(&b, 2);
	dkv_mp_cstr(&b, "x\ny");
	emit(&b, 0);
	CHECK_EQ_STR(emitted, "- - 1\n  - 2\n- |-\n  x\n  y\n");
	/* keys are quoted like values */
	b.len = 0;
	dkv_mp_map(&b, 3);
	dkv_mp_cstr(&b, "ON");
	dkv_mp_cstr(&b, "yes");
	dkv_mp_cstr(&b, "12:30");
	dkv_mp_bin(&b, "k", 1);
	dkv_mp_bin(&b, "k", 1);
	dkv_mp_double(&b, 1e20);
	emit(&b, 0);
	CHECK_EQ_STR(emitted, "'ON': 'yes'\n'12:30': !!binary aw==\n!!binary aw==: 1.0e+20\n");
	CHECK(round_trips(&b));
	/* empty lines of a block scalar get no trailing blanks */
	b.len = 0;
	dkv_mp_cstr(&b, "x\n\ny");
	emit(&b, 2);
	CHECK_EQ_STR(emitted, "  |-\n    x\n\n    y\n");
	dkv_buf_release(&b);
}

TEST(emit_bytes)
{
	struct dkv_buf b = {0};
	uint8_t all[256];

	dkv_mp_bin(&b, "abc", 3);
	emit(&b, 0);
	CHECK_EQ_STR(emitted, "!!binary YWJj\n");
	b.len = 0;
	dkv_mp_bin(&b, "123", 3);
	emit(&b, 0);
	CHECK_EQ_STR(emitted, "!!binary MTIz\n");
	b.len = 0;
	dkv_mp_bin(&b, "\xff\x00\x10", 3);
	emit(&b, 0);
	CHECK_EQ_STR(emitted, "!!binary /wAQ\n");
	b.len = 0;
	dkv_mp_bin(&b, "", 0);
	emit(&b, 0);
	CHECK_EQ_STR(emitted, "!!binary ''\n");
	CHECK(round_trips(&b));
	for (int i = 0; i < 256; i++)
		all[i] = (uint8_t)i;
	/* 57 bytes fill one line of 76 */
	b.len = 0;
	dkv_mp_bin(&b, all, 57);
	emit(&b, 0);
	CHECK(!strncmp(emitted, "!!binary AAECAwQF", 17));
	CHECK_EQ_INT(strlen(emitted), 9 + 76 + 1);
	CHECK(round_trips(&b));
	b.len = 0;
	dkv_mp_bin(&b, all, 58);
	emit(&b, 0);
	CHECK(!strncmp(emitted, "!!binary |\n  AAECAwQF", 21));
	CHECK(strstr(emitted, "\n  OQ==\n") != NULL);
	CHECK(round_trips(&b));
	b.len = 0;
	dkv_mp_bin(&b, all, 256);
	emit(&b, 0);
	CHECK(strstr(emitted, "\n  5OXm5+jp6uvs7e7v8PHy8/T19vf4+fr7/P3+/w==\n") != NULL);
	CHECK(round_trips(&b));
	dkv_buf_release(&b);
}

TEST(emit_ext)
{
	struct dkv_buf b = {0};
	static const uint8_t two64[] = {1, 0, 0, 0, 0, 0, 0, 0, 0};
	static const uint8_t small[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 42};

	dkv_mp_bigint(&b, two64, sizeof two64);
	emit(&b, 0);
	CHECK_EQ_STR(emitted, "18446744073709551616\n");
	/* a non-minimal big integer still shows its value */
	b.len = 0;
	dkv_mp_ext(&b, DKV_EXT_BIGINT, small, sizeof small);
	emit(&b, 0);
	CHECK_EQ_STR(emitted, "42\n");

	b.len = 0;
	dkv_mp_ext(&b, DKV_EXT_PROXY, "ctx", 3);
	emit(&b, 0);
	CHECK_EQ_STR(emitted, "!R ctx\n");
	CHECK(round_trips(&b));
	b.len = 0;
	dkv_mp_ext(&b, DKV_EXT_PROXY, "", 0);
	CHECK(round_trips(&b));

	b.len = 0;
	dkv_mp_ext(&b, 7, "\x01\xab", 2);
	emit(&b, 0);
	CHECK_EQ_STR(emitted, "!ext 7:01ab\n");
	CHECK(round_trips(&b));
	b.len = 0;
	dkv_mp_ext(&b, -3, "", 0);
	emit(&b, 0);
	CHECK_EQ_STR(emitted, "!ext '-3:'\n");
	CHECK(round_trips(&b));
	dkv_buf_release(&b);
}

TEST(emit_path)
{
	struct dkv_path p;
	struct dkv_buf b = {0}, e = {0};

	dkv_path_init(&p);
	dkv_path_encode(&b, p.enc.data, p.enc.len);
	emit(&b, 0);
	CHECK_EQ_STR(emitted, "!P ':'\n");
	CHECK(round_trips(&b));

	dkv_path_push_str(&p, "a");
	dkv_path_push_str(&p, "b");
	dkv_mp_int(&e, 5);
	CHECK_EQ_INT(dkv_path_push_raw(&p, e.data, e.len), 0);
	b.len = 0;
	dkv_path_encode(&b, p.enc.data, p.enc.len);
	emit(&b, 0);
	CHECK_EQ_STR(emitted, "!P a.b.:5\n");
	CHECK(round_trips(&b));

	/* dots and colons inside elements */
	static const char *tricky[] = {"a.b", "a:", ":x", "::", "x:.y", ".", ":.:", "", "a b"};
	for (size_t i = 0; i < sizeof tricky / sizeof tricky[0]; i++) {
		dkv_path_push_str(&p, tricky[i]);
		b.len = 0;
		dkv_path_encode(&b, p.enc.data, p.enc.len);
		CHECK(round_trips(&b));
	}
	dkv_path_release(&p);
	dkv_path_init(&p);
	dkv_path_push_str(&p, "a.b");
	b.len = 0;
	dkv_path_encode(&b, p.enc.data, p.enc.len);
	emit(&b, 0);
	CHECK_EQ_STR(emitted, "!P a:.b\n");

	/* a path value inside a map */
	e.len = 0;
	dkv_mp_map(&e, 1);
	dkv_mp_cstr(&e, "p");
	dkv_buf_append(&e, b.data, b.len);
	emit(&e, 0);
	CHECK_EQ_STR(emitted, "p: !P a:.b\n");

	/* an ext 3 that is not a path is shown raw */
	b.len = 0;
	dkv_mp_ext(&b, DKV_EXT_PATH, "\x81\x01\x02", 3);
	emit(&b, 0);
	CHECK_EQ_STR(emitted, "!ext 3:810102\n");
	dkv_path_release(&p);
	dkv_buf_release(&b);
	dkv_buf_release(&e);
}

TEST(emit_invalid)
{
	struct dkv_buf out = {0};

	dkv_buf_puts(&out, "x");
	CHECK_EQ_INT(dkv_yaml_emit(&out, (const uint8_t *)"", 0), -EBADMSG);
	CHECK_EQ_INT(dkv_yaml_emit(&out, (const uint8_t *)"\xc1", 1), -EBADMSG);
	CHECK_EQ_INT(dkv_yaml_emit(&out, (const uint8_t *)"\x92\x01", 2), -EBADMSG);
	CHECK_EQ_INT(dkv_yaml_emit(&out, (const uint8_t *)"\x01\x02", 2), -EBADMSG);
	CHECK_EQ_INT(out.len, 1);

	/* too deep */
	struct dkv_buf b = {0};
	for (int i = 0; i < DKV_MP_MAX_DEPTH + 1; i++)
		dkv_mp_array(&b, 1);
	dkv_mp_nil(&b);
	CHECK_EQ_INT(dkv_yaml_emit(&out, b.data, b.len), -EBADMSG);
	CHECK_EQ_INT(out.len, 1);
	b.len = 0;
	for (int i = 0; i < DKV_MP_MAX_DEPTH; i++)
		dkv_mp_array(&b, 1);
	dkv_mp_nil(&b);
	CHECK(round_trips(&b));

	/* not UTF-8: its bytes under !nonutf8, which reads back as the same
	 * string, also as a key and in a list; a proxy's name as raw ext */
	b.len = 0;
	dkv_mp_str(&b, "a\xff", 2);
	CHECK_EQ_INT(emit(&b, 0), 0);
	CHECK_EQ_STR(emitted, "!nonutf8 61ff\n");
	CHECK(round_trips(&b));
	b.len = 0;
	dkv_mp_map(&b, 1);
	dkv_mp_str(&b, "\xc0\x80", 2);
	dkv_mp_array(&b, 2);
	dkv_mp_str(&b, "\xed\xa0\x80", 3);
	dkv_mp_cstr(&b, "ok");
	CHECK_EQ_INT(emit(&b, 0), 0);
	CHECK_EQ_STR(emitted, "!nonutf8 c080:\n- !nonutf8 eda080\n- ok\n");
	CHECK(round_trips(&b));
	b.len = 0;
	dkv_mp_ext(&b, DKV_EXT_PROXY, "n\xff", 2);
	CHECK_EQ_INT(emit(&b, 0), 0);
	CHECK_EQ_STR(emitted, "!ext 4:6eff\n");
	CHECK(round_trips(&b));
	dkv_buf_release(&b);
	dkv_buf_release(&out);
}

/* ---- parsing ---- */

TEST(parse_core_schema)
{
	struct dkv_buf w = {0};

#define EXPECT(text, build)                                                                  \
	do {                                                                                 \
		w.len = 0;                                                                   \
		build;                                                                       \
		CHECK(parses_to(text, &w));                                                  \
	} while (0)

	EXPECT("", dkv_mp_nil(&w));
	EXPECT("# just a comment\n", dkv_mp_nil(&w));
	EXPECT("---\n", dkv_mp_nil(&w));
	EXPECT("~", dkv_mp_nil(&w));
	EXPECT("null", dkv_mp_nil(&w));
	EXPECT("Null", dkv_mp_nil(&w));
	EXPECT("NULL", dkv_mp_nil(&w));
	EXPECT("nULL", dkv_mp_cstr(&w, "nULL"));
	EXPECT("true", dkv_mp_bool(&w, true));
	EXPECT("True", dkv_mp_bool(&w, true));
	EXPECT("TRUE", dkv_mp_bool(&w, true));
	EXPECT("false\n", dkv_mp_bool(&w, false));
	EXPECT("FALSE", dkv_mp_bool(&w, false));
	EXPECT("tRUE", dkv_mp_cstr(&w, "tRUE"));
	/* YAML 1.1 spellings are plain strings in 1.2 */
	EXPECT("ON", dkv_mp_cstr(&w, "ON"));
	EXPECT("off", dkv_mp_cstr(&w, "off"));
	EXPECT("yes", dkv_mp_cstr(&w, "yes"));
	EXPECT("no", dkv_mp_cstr(&w, "no"));
	EXPECT("y", dkv_mp_cstr(&w, "y"));
	EXPECT("n", dkv_mp_cstr(&w, "n"));
	EXPECT("0b101", dkv_mp_cstr(&w, "0b101"));
	EXPECT("1_000", dkv_mp_cstr(&w, "1_000"));
	EXPECT("0X1F", dkv_mp_cstr(&w, "0X1F"));
	EXPECT("-0x1f", dkv_mp_cstr(&w, "-0x1f"));
	EXPECT("12:30", dkv_mp_cstr(&w, "12:30"));
	EXPECT("0o", dkv_mp_cstr(&w, "0o"));
	EXPECT("1e", dkv_mp_cstr(&w, "1e"));
	EXPECT(".", dkv_mp_cstr(&w, "."));
	EXPECT("inf", dkv_mp_cstr(&w, "inf"));
	EXPECT("nan", dkv_mp_cstr(&w, "nan"));
	EXPECT("-.nan", dkv_mp_cstr(&w, "-.nan"));
	/* integers */
	EXPECT("0", dkv_mp_int(&w, 0));
	EXPECT("-0", dkv_mp_int(&w, 0));
	EXPECT("+17", dkv_mp_int(&w, 17));
	EXPECT("007", dkv_mp_int(&w, 7));
	EXPECT("-128", dkv_mp_int(&w, -128));
	EXPECT("0o17", dkv_mp_int(&w, 15));
	EXPECT("0x1f", dkv_mp_int(&w, 31));
	EXPECT("0xFFFFFFFFFFFFFFFF", dkv_mp_uint(&w, UINT64_MAX));
	EXPECT("18446744073709551615", dkv_mp_uint(&w, UINT64_MAX));
	EXPECT("-9223372036854775808", dkv_mp_int(&w, INT64_MIN));
	EXPECT("9223372036854775808", dkv_mp_uint(&w, (uint64_t)INT64_MAX + 1));
	EXPECT("18446744073709551616", dkv_mp_bigint(&w, (const uint8_t *)"\1\0\0\0\0\0\0\0\0", 9));
	EXPECT("0x10000000000000000", dkv_mp_bigint(&w, (const uint8_t *)"\1\0\0\0\0\0\0\0\0", 9));
	EXPECT("0o2000000000000000000000", dkv_mp_bigint(&w, (const uint8_t *)"\1\0\0\0\0\0\0\0\0", 9));
	EXPECT("000000000000000000000000000000000001", dkv_mp_int(&w, 1));
	/* floats */
	EXPECT("1.5", dkv_mp_double(&w, 1.5));
	EXPECT("-1.5e3", dkv_mp_double(&w, -1500));
	EXPECT("1e3", dkv_mp_double(&w, 1000));
	EXPECT("1.", dkv_mp_double(&w, 1));
	EXPECT(".5", dkv_mp_double(&w, 0.5));
	EXPECT("+.5E-1", dkv_mp_double(&w, 0.05));
	EXPECT(".inf", dkv_mp_double(&w, INFINITY));
	EXPECT("-.Inf", dkv_mp_double(&w, -INFINITY));
	EXPECT("+.INF", dkv_mp_double(&w, INFINITY));
	EXPECT(".NaN", dkv_mp_double(&w, NAN));
	/* quoted scalars and block scalars are strings */
	EXPECT("'123'", dkv_mp_cstr(&w, "123"));
	EXPECT("\"true\"", dkv_mp_cstr(&w, "true"));
	EXPECT("''", dkv_mp_cstr(&w, ""));
	EXPECT("|\n  5\n", dkv_mp_cstr(&w, "5\n"));
	EXPECT(">-\n  a\n  b\n", dkv_mp_cstr(&w, "a b"));
	EXPECT("\"a\\tb\\u00e4\\0\"", dkv_mp_str(&w, "a\tb\xc3\xa4\0", 6));
	/* collections */
	EXPECT("[1, a, {b: c}]", {
		dkv_mp_array(&w, 3);
		dkv_mp_int(&w, 1);
		dkv_mp_cstr(&w, "a");
		dkv_mp_map(&w, 1);
		dkv_mp_cstr(&w, "b");
		dkv_mp_cstr(&w, "c");
	});
	EXPECT("a:\n  b: 1\n  c:\n  - x\n  -\n", {
		dkv_mp_map(&w, 1);
		dkv_mp_cstr(&w, "a");
		dkv_mp_map(&w, 2);
		dkv_mp_cstr(&w, "b");
		dkv_mp_int(&w, 1);
		dkv_mp_cstr(&w, "c");
		dkv_mp_array(&w, 2);
		dkv_mp_cstr(&w, "x");
		dkv_mp_nil(&w);
	});
	EXPECT("1: one\nnull: none\n? [1, 2]\n: pair\n", {
		dkv_mp_map(&w, 3);
		dkv_mp_int(&w, 1);
		dkv_mp_cstr(&w, "one");
		dkv_mp_nil(&w);
		dkv_mp_cstr(&w, "none");
		dkv_mp_array(&w, 2);
		dkv_mp_int(&w, 1);
		dkv_mp_int(&w, 2);
		dkv_mp_cstr(&w, "pair");
	});
	/* 16 and 65536 items need the longer headers */
	{
		struct dkv_buf t = {0};
		dkv_buf_putc(&t, '[');
		for (int i = 0; i < 70000; i++)
			dkv_buf_puts(&t, i ? ",1" : "1");
		dkv_buf_puts(&t, "]");
		w.len = 0;
		dkv_mp_array(&w, 70000);
		for (int i = 0; i < 70000; i++)
			dkv_mp_int(&w, 1);
		CHECK(parses_to(dkv_buf_cstr(&t), &w));
		dkv_buf_release(&t);
	}
	dkv_buf_release(&w);
}

TEST(parse_tags)
{
	struct dkv_buf w = {0};

	EXPECT("!!str 123", dkv_mp_cstr(&w, "123"));
	EXPECT("!!str", dkv_mp_cstr(&w, ""));
	EXPECT("! 123", dkv_mp_cstr(&w, "123"));
	EXPECT("!<tag:yaml.org,2002:str> true", dkv_mp_cstr(&w, "true"));
	EXPECT("!!int '12'", dkv_mp_int(&w, 12));
	EXPECT("!!int 0x10", dkv_mp_int(&w, 16));
	EXPECT("!!float 5", dkv_mp_double(&w, 5));
	EXPECT("!!float '2.5'", dkv_mp_double(&w, 2.5));
	EXPECT("!!bool \"true\"", dkv_mp_bool(&w, true));
	EXPECT("!!null ''", dkv_mp_nil(&w));
	EXPECT("!bin abc", dkv_mp_bin(&w, "abc", 3));
	EXPECT("!bin ''", dkv_mp_bin(&w, "", 0));
	EXPECT("!bin", dkv_mp_bin(&w, "", 0));
	EXPECT("!bin 123", dkv_mp_bin(&w, "123", 3));
	EXPECT("!hex aa:BB:01", dkv_mp_bin(&w, "\xaa\xbb\x01", 3));
	EXPECT("!hex aabb01", dkv_mp_bin(&w, "\xaa\xbb\x01", 3));
	EXPECT("!hex aa bb", dkv_mp_bin(&w, "\xaa\xbb", 2));
	EXPECT("!hex ''", dkv_mp_bin(&w, "", 0));
	EXPECT("!nonutf8 61FF", dkv_mp_str(&w, "a\xff", 2));
	EXPECT("!nonutf8 6162", dkv_mp_cstr(&w, "ab")); /* another spelling of a string */
	EXPECT("!!binary aGVsbG8=", dkv_mp_bin(&w, "hello", 5));
	EXPECT("!!binary |\n  aGVs\n  bG8h\n", dkv_mp_bin(&w, "hell\x6f!", 6));
	EXPECT("!R ctx", dkv_mp_ext(&w, DKV_EXT_PROXY, "ctx", 3));
	EXPECT("!ext 9:0102", dkv_mp_ext(&w, 9, "\1\2", 2));
	EXPECT("!ext 2:010000000000000000", dkv_mp_bigint(&w, (const uint8_t *)"\1\0\0\0\0\0\0\0\0", 9));
	EXPECT("!ext 2:05", dkv_mp_int(&w, 5));
	EXPECT("!!seq [1]", {
		dkv_mp_array(&w, 1);
		dkv_mp_int(&w, 1);
	});
	EXPECT("!!map {}", dkv_mp_map(&w, 0));
	/* paths */
	EXPECT("!P ':'", dkv_path_encode(&w, NULL, 0));
	EXPECT("!P a", dkv_path_encode(&w, (const uint8_t *)"\xa1" "a", 2));
	EXPECT("!P a.b.:5", dkv_path_encode(&w, (const uint8_t *)"\xa1" "a\xa1" "b\x05", 5));
	EXPECT("!P a:.b", dkv_path_encode(&w, (const uint8_t *)"\xa3" "a.b", 4));
	EXPECT("!P 'a b.c'", dkv_path_encode(&w, (const uint8_t *)"\xa3" "a b\xa1" "c", 6));

	CHECK(parse_fails("!!int 1.5", "line 1, column 1: '1.5' is not a valid !!int"));
	CHECK(parse_fails("!!int abc", "is not a valid !!int"));
	CHECK(parse_fails("!!float abc", "is not a valid !!float"));
	CHECK(parse_fails("!!float 0x10", "is not a valid !!float"));
	CHECK(parse_fails("!!bool yes", "is not a valid !!bool"));
	CHECK(parse_fails("!!null 0", "is not a valid !!null"));
	CHECK(parse_fails("x: !bin \"\\u00e4\"", "line 1, column 4: !bin: text is not ASCII"));
	CHECK(parse_fails("!hex abc", "!hex: not a hex byte string"));
	CHECK(parse_fails("!hex zz", "!hex: not a hex byte string"));
	CHECK(parse_fails("!ext 5", "!ext: expected TYPE:HEX"));
	CHECK(parse_fails("!nonutf8 6", "!nonutf8: expected hex digits, two a byte"));
	CHECK(parse_fails("!nonutf8 61:ff", "!nonutf8: expected hex digits, two a byte"));
	CHECK(parse_fails("!ext 500:00", "!ext: expected TYPE:HEX"));
	CHECK(parse_fails("!ext 5:0", "!ext: expected TYPE:HEX"));
	CHECK(parse_fails("!P a..b", "!P: bad path element"));
	CHECK(parse_fails("!P .a", "!P: bad path element"));
	CHECK(parse_fails("!P ''", "!P: bad path element"));
	CHECK(parse_fails("!foo bar", "line 1, column 1: unknown tag !foo"));
	CHECK(parse_fails("!!set {a}", "unknown tag tag:yaml.org,2002:set"));
	CHECK(parse_fails("- !!map [1]", "line 1, column 3: unknown tag tag:yaml.org,2002:map"));
	dkv_buf_release(&w);
}

/* !!binary is strict RFC 4648 base64 (YAML's binary type): blanks and
 * line breaks are ignored, everything else must be exact, so each byte
 * string has one spelling and typos are refused, as libsodium and Rust's
 * base64 crate do (Python's decodebytes, which the original uses, also
 * refuses bad lengths and padding). */
TEST(parse_base64)
{
	struct dkv_buf w = {0};
	uint8_t all[256];

	/* valid: each length of the last group, and empty */
	EXPECT("!!binary aGVsbG8=", dkv_mp_bin(&w, "hello", 5));
	EXPECT("!!binary aGVsbA==", dkv_mp_bin(&w, "hell", 4));
	EXPECT("!!binary aGVs", dkv_mp_bin(&w, "hel", 3));
	EXPECT("!!binary zw==", dkv_mp_bin(&w, "\xcf", 1));
	EXPECT("!!binary +/+/", dkv_mp_bin(&w, "\xfb\xff\xbf", 3));
	EXPECT("!!binary ''", dkv_mp_bin(&w, "", 0));
	/* folded as emitters write it: line breaks, indentation, blanks
	 * anywhere, also inside the padding */
	EXPECT("!!binary |\n  aGVs\n  bG8h\n", dkv_mp_bin(&w, "hello!", 6));
	EXPECT("!!binary >\n  aGVs\n  bG8=\n", dkv_mp_bin(&w, "hello", 5));
	EXPECT("!!binary \"aG Vs\\tbG\\r\\n8 = \"", dkv_mp_bin(&w, "hello", 5));
	EXPECT("!!binary aGVs\n  bG8=", dkv_mp_bin(&w, "hello", 5)); /* a plain multi-line scalar */
	EXPECT("v: !!binary aQ= =", {
		dkv_mp_map(&w, 1);
		dkv_mp_cstr(&w, "v");
		dkv_mp_bin(&w, "i", 1);
	});
	/* what our emitter writes for long values (76 columns) reads back */
	for (int i = 0; i < 256; i++)
		all[i] = (uint8_t)i;
	for (size_t n = 33; n <= 256; n += 37) {
		w.len = 0;
		dkv_mp_bin(&w, all, n);
		CHECK(round_trips(&w));
	}

	/* the length (without blanks) is not a multiple of 4 */
	CHECK(parse_fails("!!binary zz", "!!binary: not valid base64: the length is not a multiple of 4"));
	CHECK(parse_fails("!!binary a", "the length is not a multiple of 4"));
	CHECK(parse_fails("!!binary aGVsbG8", "the length is not a multiple of 4"));
	CHECK(parse_fails("!!binary aGVsbA=", "the length is not a multiple of 4"));
	CHECK(parse_fails("!!binary aGVsbG8==", "the length is not a multiple of 4"));
	CHECK(parse_fails("!!binary =", "the length is not a multiple of 4"));
	CHECK(parse_fails("!!binary aGVs\n  b", "the length is not a multiple of 4"));
	/* too much padding */
	CHECK(parse_fails("!!binary z===", "!!binary: not valid base64: too much '=' padding"));
	CHECK(parse_fails("!!binary ====", "too much '=' padding"));
	CHECK(parse_fails("!!binary aGVs====", "too much '=' padding"));
	/* padding in the middle: two padded groups back to back, too */
	CHECK(parse_fails("!!binary aGVs=bG8", "!!binary: not valid base64: '=' before the end"));
	CHECK(parse_fails("!!binary aQ==aQ==", "'=' before the end"));
	CHECK(parse_fails("!!binary =aGVs", "'=' before the end"));
	/* characters outside the alphabet (URL-safe base64 is another alphabet) */
	CHECK(parse_fails("!!binary a$==", "!!binary: not valid base64: a character outside the base64 alphabet"));
	CHECK(parse_fails("!!binary aGV-", "a character outside the base64 alphabet"));
	CHECK(parse_fails("!!binary aGV_", "a character outside the base64 alphabet"));
	CHECK(parse_fails("!!binary \"aGVs\\0\"", "a character outside the base64 alphabet"));
	CHECK(parse_fails("!!binary \"aGVs\\x0b\"", "a character outside the base64 alphabet"));
	CHECK(parse_fails("!!binary \"aGVs\\u00e4\"", "a character outside the base64 alphabet"));
	/* non-zero bits after the last byte: "zz==" would be 0xcf too */
	CHECK(parse_fails("!!binary zz==", "!!binary: not valid base64: the last character has bits set beyond the data"));
	CHECK(parse_fails("!!binary aGVsbG9=", "bits set beyond the data"));
	CHECK(parse_fails("!!binary aGVsbB==", "bits set beyond the data"));
	/* the error names where the scalar is */
	CHECK(parse_fails("a: 1\nb: !!binary zz\n", "line 2, column 4: !!binary: not valid base64"));
	dkv_buf_release(&w);
}

TEST(parse_ints_range)
{
	struct dkv_buf w = {0}, t = {0};

	CHECK(parse_fails("-9223372036854775809", "integer out of range"));
	CHECK(parse_fails("a: [1, -99999999999999999999999]", "line 1, column 8: integer out of range"));
	/* a 2^200 round trips through decimal */
	uint8_t be[26] = {1};
	dkv_mp_bigint(&w, be, sizeof be);
	CHECK(round_trips(&w));
	/* Python's limit on decimal digits */
	for (int i = 0; i < 4300; i++)
		dkv_buf_putc(&t, '9');
	CHECK_EQ_INT(dkv_yaml_parse(&w, (char *)t.data, t.len, NULL, 0), 0);
	dkv_buf_putc(&t, '9');
	CHECK(parse_fails(dkv_buf_cstr(&t), "integer has more than 4300 digits"));
	/* hex has no such limit; huge ext-2 values are written in hex */
	static uint8_t huge[5000];
	huge[0] = 0x80;
	huge[4999] = 1;
	w.len = 0;
	dkv_mp_bigint(&w, huge, sizeof huge);
	CHECK_EQ_INT(emit(&w, 0), 0);
	CHECK(!strncmp(emitted, "0x8000", 6));
	CHECK(round_trips(&w));
	dkv_buf_release(&w);
	dkv_buf_release(&t);
}

TEST(parse_errors)
{
	CHECK(parse_fails("a: b: c", "line 1, column 5: mapping values are not allowed in this context"));
	CHECK(parse_fails("a: 1\n b: 2", "line 2, column 3: mapping values are not allowed"));
	CHECK(parse_fails("a: [1\n", "line 2, column 1: did not find expected ',' or ']'"));
	CHECK(parse_fails("[1, 2", "line 1, column 6: did not find expected ',' or ']' (while parsing a flow sequence at line 1, column 1)"));
	CHECK(parse_fails("a: 'x", "found unexpected end of stream"));
	CHECK(parse_fails("a:\n- 1\nb", "line 3, column 2: could not find expected ':' (while scanning a simple key at line 3, column 1)"));
	CHECK(parse_fails("\t- x", "line 1, column 1:"));
	CHECK(parse_fails("a\xff", "line 1, column 2: invalid leading UTF-8 octet"));
	CHECK(parse_fails("a: 1\nb: \x01", "line 2, column 4: control characters are not allowed"));
	CHECK(parse_fails("a: 1\n---\nb: 2\n", "line 2, column 1: expected a single document"));
	CHECK(parse_fails("a: 1\na: 2\n", "line 2, column 1: duplicate key"));
	CHECK(parse_fails("{1: a, 0x1: b}", "line 1, column 8: duplicate key"));
	CHECK(parse_fails("? [1, 2]\n: x\n? [1, 2]\n: y\n", "line 3, column 3: duplicate key"));

	/* no message buffer is fine */
	struct dkv_buf out = {0};
	CHECK_EQ_INT(dkv_yaml_parse(&out, "[", 1, NULL, 0), -EINVAL);
	char tiny[8];
	CHECK_EQ_INT(dkv_yaml_parse(&out, "[", 1, tiny, sizeof tiny), -EINVAL);
	CHECK_EQ_INT(strlen(tiny), 7);
	CHECK_EQ_INT(out.len, 0);
	dkv_buf_release(&out);
}

TEST(parse_depth)
{
	struct dkv_buf t = {0}, w = {0};

	for (int i = 0; i < DKV_MP_MAX_DEPTH; i++)
		dkv_buf_putc(&t, '[');
	for (int i = 0; i < DKV_MP_MAX_DEPTH; i++)
		dkv_buf_putc(&t, ']');
	for (int i = 0; i < DKV_MP_MAX_DEPTH - 1; i++)
		dkv_mp_array(&w, 1);
	dkv_mp_array(&w, 0);
	CHECK(parses_to(dkv_buf_cstr(&t), &w));
	t.len = 0;
	for (int i = 0; i < 10000; i++)
		dkv_buf_putc(&t, '[');
	CHECK(parse_fails(dkv_buf_cstr(&t), "nested too deeply"));
	dkv_buf_release(&t);
	dkv_buf_release(&w);
}

TEST(parse_aliases)
{
	struct dkv_buf w = {0};

	EXPECT("a: &x [1, 2]\nb: *x\n", {
		dkv_mp_map(&w, 2);
		dkv_mp_cstr(&w, "a");
		dkv_mp_array(&w, 2);
		dkv_mp_int(&w, 1);
		dkv_mp_int(&w, 2);
		dkv_mp_cstr(&w, "b");
		dkv_mp_array(&w, 2);
		dkv_mp_int(&w, 1);
		dkv_mp_int(&w, 2);
	});
	EXPECT("- &s hello\n- *s\n- &s bye\n- *s\n", {
		dkv_mp_array(&w, 4);
		dkv_mp_cstr(&w, "hello");
		dkv_mp_cstr(&w, "hello");
		dkv_mp_cstr(&w, "bye");
		dkv_mp_cstr(&w, "bye");
	});
	CHECK(parse_fails("a: *nope", "line 1, column 4: unknown anchor 'nope'"));
	/* a node cannot contain itself */
	CHECK(parse_fails("&a [*a]", "unknown anchor 'a'"));
	/* billion laughs */
	CHECK(parse_fails("a: &a [x,x,x,x,x,x,x,x,x,x]\n"
			  "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
			  "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
			  "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
			  "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
			  "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
			  "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]\n",
			  "aliases expand to too much data"));
	dkv_buf_release(&w);
}

TEST(parse_stream)
{
	struct dkv_buf out = {0}, w = {0};
	size_t n = 99;
	char err[200];
	const char *text = "a: 1\n---\n- x\n--- 5\n...\n---\n";

	CHECK_EQ_INT(dkv_yaml_parse_stream(&out, text, strlen(text), &n, err, sizeof err), 0);
	CHECK_EQ_INT(n, 4);
	dkv_mp_map(&w, 1);
	dkv_mp_cstr(&w, "a");
	dkv_mp_int(&w, 1);
	dkv_mp_array(&w, 1);
	dkv_mp_cstr(&w, "x");
	dkv_mp_int(&w, 5);
	dkv_mp_nil(&w);
	CHECK(out.len == w.len && !memcmp(out.data, w.data, w.len));

	out.len = 0;
	CHECK_EQ_INT(dkv_yaml_parse_stream(&out, "", 0, &n, err, sizeof err), 0);
	CHECK_EQ_INT(n, 0);
	CHECK_EQ_INT(out.len, 0);

	/* anchors are per document */
	text = "&a 1\n--- *a\n";
	CHECK_EQ_INT(dkv_yaml_parse_stream(&out, text, strlen(text), &n, err, sizeof err), -EINVAL);
	CHECK(strstr(err, "line 2, column 5: unknown anchor 'a'") != NULL);
	CHECK_EQ_INT(out.len, 0);
	dkv_buf_release(&out);
	dkv_buf_release(&w);
}

/* ---- round trips ---- */

TEST(round_trip_strings)
{
	static const char *strs[] = {
		"", " ", "  ", "a", "123", "-123", "+1", "0x1F", "0o7", "1.5", "1e5", ".5", "1.",
		".inf", "-.inf", ".nan", "~", "null", "Null", "true", "FALSE", "ON", "yes",
		"-", "--", "---", "...", "- a", "-a", "?", "? a", ":", ": a", "a:", "a:b", "a: b",
		"a #b", "#", "&a", "*a", "!a", "|", ">", "%x", "@x", "`x", "'", "\"", "''", "\\",
		"[", "]", "{", "}", ",", "a,b", "[a]", "{a: b}", "x\n", "\n", "\n\n", "a\n\nb",
		" lead\nx", "trail \nx", "x\n ", "a\tb", "\t", "\r", "a\r\nb", "\x01\x7f",
		"\xc3\xa4\xc3\xb6\xc3\xbc", "\xe2\x82\xac 5", "\xf0\x9f\x98\x80", "\xc2\x85",
		"a\xc2\x85" "b", "\xe2\x80\xa8", "x\xe2\x80\xa9y", "\xef\xbb\xbf" "bom",
		"\xc2\xa0", "a\xc2\xa0", "=", "<<", "!!str", "0", "00", "-0", "0.0",
		"1_000", "0b1", "12:30:00", "2001-12-14", "Yes", "No", "On", "Off",
		"very long line very long line very long line very long line very long line "
		"very long line very long line very long line very long line very long line",
	};
	struct dkv_buf b = {0};

	for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
		str_val(&b, strs[i]);
		CHECK(round_trips(&b));
		/* as a map key, as a map value and in a sequence */
		b.len = 0;
		dkv_mp_map(&b, 2);
		dkv_mp_cstr(&b, strs[i]);
		dkv_mp_cstr(&b, strs[i]);
		dkv_mp_cstr(&b, "k");
		dkv_mp_array(&b, 2);
		dkv_mp_cstr(&b, strs[i]);
		dkv_mp_bin(&b, strs[i], strlen(strs[i]));
		CHECK(round_trips(&b));
	}
	/* NUL inside a string */
	b.len = 0;
	dkv_mp_str(&b, "a\0b", 3);
	CHECK(round_trips(&b));
	dkv_buf_release(&b);
}

/* xorshift64: reproducible pseudo-random values */
static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static unsigned rndn(unsigned n)
{
	return (unsigned)(rnd() % n);
}

static void rnd_text(struct dkv_buf *t)
{
	static const char *pieces[] = {
		"a", "b", "Z", " ", "  ", ":", ": ", "#", " #", "-", "- ", "?", "\n", "\n\n", "'",
		"\"", "\\", "\t", "0", "1", "9", ".", "e", "x", "o", "+", "true", "null", "~",
		"!", "&", "*", "|", ">", "%", "@", "`", ",", "[", "]", "{", "}", "\r", "\x01",
		"\x7f", "\xc3\xa4", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xc2\x85", "\xe2\x80\xa8",
		"\xef\xbb\xbf", "\xc2\xa0", ".inf", "0x", "0o", "=", "\x1b",
	};
	unsigned n = rndn(6);
	for (unsigned i = 0; i < n; i++)
		dkv_buf_puts(t, pieces[rndn(sizeof pieces / sizeof pieces[0])]);
}

static void rnd_elem(struct dkv_buf *b);

static void rnd_scalar(struct dkv_buf *b)
{
	struct dkv_buf t = {0};
	uint8_t raw[100];
	double d;
	uint64_t u;

	switch (rndn(10)) {
	case 0:
		dkv_mp_nil(b);
		break;
	case 1:
		dkv_mp_bool(b, rndn(2));
		break;
	case 2:
		dkv_mp_uint(b, rnd() >> rndn(64));
		break;
	case 3:
		dkv_mp_int(b, -(int64_t)(rnd() >> (1 + rndn(63))) - 1);
		break;
	case 4:
		do {
			u = rnd();
			memcpy(&d, &u, sizeof d);
		} while (isnan(d));
		if (rndn(2))
			d = (double)(int)rndn(1000) / 8;
		dkv_mp_double(b, d);
		break;
	case 5:
	case 6:
		rnd_text(&t);
		dkv_mp_str(b, t.data, t.len);
		break;
	case 7: {
		size_t n = rndn(3) ? rndn(8) : rndn(100); /* 58 and more: a block */
		for (size_t i = 0; i < n; i++)
			raw[i] = (uint8_t)(rndn(3) ? 0x20 + rndn(95) : rnd());
		dkv_mp_bin(b, raw, n);
		break;
	}
	case 8: {
		size_t n = 1 + rndn(30);
		for (size_t i = 0; i < n; i++)
			raw[i] = (uint8_t)rnd();
		dkv_mp_bigint(b, raw, n);
		break;
	}
	case 9: {
		struct dkv_path p;
		unsigned n = rndn(4);
		dkv_path_init(&p);
		for (unsigned i = 0; i < n; i++) {
			t.len = 0;
			rnd_elem(&t);
			dkv_path_push_raw(&p, t.data, t.len);
		}
		dkv_path_encode(b, p.enc.data, p.enc.len);
		dkv_path_release(&p);
		break;
	}
	}
	dkv_buf_release(&t);
}

/* A path element: any scalar but a path. */
static void rnd_elem(struct dkv_buf *b)
{
	size_t at = b->len;
	do {
		b->len = at;
		rnd_scalar(b);
	} while (b->data[at] == 0xc7 || (b->data[at] >= 0xd4 && b->data[at] <= 0xd8 &&
					 b->data[at + 1] == DKV_EXT_PATH));
}

static void rnd_value(struct dkv_buf *b, int depth)
{
	unsigned kind = depth > 4 ? 0 : rndn(4);

	if (kind < 2) {
		rnd_scalar(b);
	} else if (kind == 2) {
		unsigned n = rndn(5);
		dkv_mp_array(b, n);
		for (unsigned i = 0; i < n; i++)
			rnd_value(b, depth + 1);
	} else {
		/* distinct keys, as YAML requires */
		struct dkv_buf keys = {0}, items = {0};
		size_t offs[6] = {0};
		unsigned n = rndn(6), got = 0;
		for (unsigned i = 0; i < n; i++) {
			size_t at = keys.len;
			bool dup = false;
			if (rndn(4))
				rnd_scalar(&keys);
			else
				rnd_value(&keys, depth + 1);
			for (unsigned j = 0; j < got && !dup; j++) {
				size_t end = j + 1 < got ? offs[j + 1] : at;
				dup = end - offs[j] == keys.len - at &&
				      !memcmp(keys.data + offs[j], keys.data + at, keys.len - at);
			}
			if (dup) {
				keys.len = at;
				continue;
			}
			offs[got++] = at;
			dkv_buf_append(&items, keys.data + at, keys.len - at);
			rnd_value(&items, depth + 1);
		}
		dkv_mp_map(b, got);
		dkv_buf_append(b, items.data, items.len);
		dkv_buf_release(&keys);
		dkv_buf_release(&items);
	}
}

TEST(round_trip_random)
{
	struct dkv_buf b = {0};
	int bad = 0;

	for (int i = 0; i < 3000 && bad < 5; i++) {
		b.len = 0;
		rnd_value(&b, 0);
		if (!round_trips(&b))
			bad++;
	}
	CHECK_EQ_INT(bad, 0);
	dkv_buf_release(&b);
}

TEST(round_trip_indented)
{
	struct dkv_buf b = {0}, text = {0}, back = {0};
	char err[200];

	/* indented output nests under a key, and stands alone too */
	for (int i = 0; i < 600; i++) {
		bool nested = i % 2;
		b.len = text.len = back.len = 0;
		if (nested) {
			dkv_mp_map(&b, 1);
			dkv_mp_cstr(&b, "key");
			dkv_buf_puts(&text, "key:\n");
		}
		rnd_value(&b, 0);
		CHECK_EQ_INT(dkv_yaml_emit_indented(&text, b.data + 5 * nested, b.len - 5 * nested,
						    nested ? 2 : 3), 0);
		int rc = dkv_yaml_parse(&back, (char *)text.data, text.len, err, sizeof err);
		if (rc || back.len != b.len || memcmp(back.data, b.data, b.len)) {
			printf("#   indented: [%.*s] %s\n", (int)text.len, (char *)text.data,
			       rc ? err : "");
			CHECK(0);
			break;
		}
	}
	dkv_buf_release(&b);
	dkv_buf_release(&text);
	dkv_buf_release(&back);
}

TESTS(emit_scalars, emit_containers, emit_bytes, emit_ext, emit_path, emit_invalid,
      parse_core_schema, parse_tags, parse_base64, parse_ints_range, parse_errors, parse_depth, parse_aliases,
      parse_stream, round_trip_strings, round_trip_random, round_trip_indented)
