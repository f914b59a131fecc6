/*
 * test_json.c - the JSON writer: exact texts for every kind of value, the
 * markers for what JSON lacks, map keys, and malformed input.
 */
#include "test.h"

#include "jsontext.h"
#include "path.h"
#include "pathtext.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>

static char out[1 << 16];

/* The JSON of the value in b, NUL-terminated in `out`. */
static int json(const struct dkv_buf *b)
{
	struct dkv_buf t = {0};
	int rc = dkv_json_emit(&t, b->data, b->len);
	size_t n = t.len < sizeof out - 1 ? t.len : sizeof out - 1;
	memcpy(out, t.data ? (char *)t.data : "", n);
	out[n] = 0;
	dkv_buf_release(&t);
	return rc;
}

#define EXPECT(want, build)                                                                  \
	do {                                                                                 \
		b.len = 0;                                                                   \
		build;                                                                       \
		CHECK_EQ_INT(json(&b), 0);                                                   \
		CHECK_EQ_STR(out, want);                                                     \
	} while (0)

TEST(scalars)
{
	struct dkv_buf b = {0};

	EXPECT("null", dkv_mp_nil(&b));
	EXPECT("true", dkv_mp_bool(&b, true));
	EXPECT("false", dkv_mp_bool(&b, false));
	EXPECT("0", dkv_mp_int(&b, 0));
	EXPECT("-9223372036854775808", dkv_mp_int(&b, INT64_MIN));
	EXPECT("18446744073709551615", dkv_mp_uint(&b, UINT64_MAX));
	EXPECT("18446744073709551616", dkv_mp_bigint(&b, (const uint8_t *)"\1\0\0\0\0\0\0\0\0", 9));
	EXPECT("1.5", dkv_mp_double(&b, 1.5));
	EXPECT("2.0", dkv_mp_double(&b, 2));
	EXPECT("-0.0", dkv_mp_double(&b, -0.0));
	EXPECT("1.0e+16", dkv_mp_double(&b, 1e16));
	EXPECT("2.5e-07", dkv_mp_double(&b, 2.5e-7));
	EXPECT("{\":float\":\"nan\"}", dkv_mp_double(&b, NAN));
	EXPECT("{\":float\":\"inf\"}", dkv_mp_double(&b, INFINITY));
	EXPECT("{\":float\":\"-inf\"}", dkv_mp_double(&b, -INFINITY));
	EXPECT("\"Duh\"", dkv_mp_cstr(&b, "Duh"));
	EXPECT("\"ON\"", dkv_mp_cstr(&b, "ON"));
	EXPECT("\"\"", dkv_mp_cstr(&b, ""));
	EXPECT("\"q\\\" b\\\\ n\\n t\\t r\\r \\u0001 \\u001f \\u007f\"",
	       dkv_mp_cstr(&b, "q\" b\\ n\n t\t r\r \x01 \x1f \x7f"));
	EXPECT("\"a\\u0000b\"", dkv_mp_str(&b, "a\0b", 3));
	EXPECT("\"\xc3\xa4 \xe2\x82\xac \xf0\x9f\x98\x80\"", dkv_mp_cstr(&b, "\xc3\xa4 \xe2\x82\xac \xf0\x9f\x98\x80"));
	EXPECT("\"x\\u2028y\\u2029\"", dkv_mp_cstr(&b, "x\xe2\x80\xa8y\xe2\x80\xa9"));
	/* not UTF-8: the bytes in hex under a marker, as YAML's !nonutf8 */
	EXPECT("{\":nonutf8\":\"61ff\"}", dkv_mp_str(&b, "a\xff", 2));
	EXPECT("{\":ext\":[4,\"bv8=\"]}", dkv_mp_ext(&b, DKV_EXT_PROXY, "n\xff", 2));
	dkv_buf_release(&b);
}

TEST(markers)
{
	struct dkv_buf b = {0};
	static uint8_t all[256], huge[1025];

	for (int i = 0; i < 256; i++)
		all[i] = (uint8_t)i;
	EXPECT("{\":binary\":\"YWJj\"}", dkv_mp_bin(&b, "abc", 3));
	EXPECT("{\":binary\":\"\"}", dkv_mp_bin(&b, "", 0));
	/* long ones on one line, without the 76-column breaks */
	b.len = 0;
	dkv_mp_bin(&b, all, 256);
	CHECK_EQ_INT(json(&b), 0);
	CHECK(!strchr(out, '\n'));
	CHECK_EQ_INT(strlen(out), 14 + 344);
	CHECK(strstr(out, "/P3+/w==\"}") != NULL);

	EXPECT("{\":proxy\":\"ctx\"}", dkv_mp_ext(&b, DKV_EXT_PROXY, "ctx", 3));
	EXPECT("{\":ext\":[7,\"Aas=\"]}", dkv_mp_ext(&b, 7, "\x01\xab", 2));
	EXPECT("{\":ext\":[-3,\"\"]}", dkv_mp_ext(&b, -3, "", 0));
	/* an ext 3 that is not a path */
	EXPECT("{\":ext\":[3,\"gQEC\"]}", dkv_mp_ext(&b, DKV_EXT_PATH, "\x81\x01\x02", 3));
	EXPECT("{\":path\":[]}", dkv_path_encode(&b, NULL, 0));
	EXPECT("{\":path\":[\"a\",5,null,[1,\"x\"],{\":binary\":\"AA==\"}]}",
	       dkv_path_encode(&b, (const uint8_t *)"\xa1" "a\x05\xc0\x92\x01\xa1x\xc4\x01\x00", 11));

	/* integers: decimal up to 1024 bytes, then hex */
	huge[0] = 1;
	b.len = 0;
	dkv_mp_bigint(&b, huge, sizeof huge);
	CHECK_EQ_INT(json(&b), 0);
	CHECK(!strncmp(out, "{\":int\":\"0x1000000", 17));
	CHECK_EQ_INT(strlen(out), 9 + 2 + 2049 + 2);
	huge[1] = 0xff;
	b.len = 0;
	dkv_mp_bigint(&b, huge + 1, 1024);
	CHECK_EQ_INT(json(&b), 0);
	CHECK(out[0] >= '1' && out[0] <= '9' && strlen(out) > 2400);
	dkv_buf_release(&b);
}

/* None of the marker keys is the colon notation of anything, so they
 * never clash with a key that is not a string. */
TEST(markers_are_not_keys)
{
	static const char *marks[] = {":binary", ":float", ":int", ":path", ":proxy", ":ext"};
	struct dkv_buf t = {0};

	for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++)
		CHECK_EQ_INT(dkv_pathtext_parse(&t, marks[i], strlen(marks[i]), 0), -EINVAL);
	dkv_buf_release(&t);
}

TEST(containers_and_keys)
{
	struct dkv_buf b = {0};

	EXPECT("[]", dkv_mp_array(&b, 0));
	EXPECT("{}", dkv_mp_map(&b, 0));
	EXPECT("[1,[\"a\",{}],null]", {
		dkv_mp_array(&b, 3);
		dkv_mp_int(&b, 1);
		dkv_mp_array(&b, 2);
		dkv_mp_cstr(&b, "a");
		dkv_mp_map(&b, 0);
		dkv_mp_nil(&b);
	});
	EXPECT("{\"a\":1,\"\":2,\"x:y\":3,\"::x\":4,\":5\":5,\":t\":6,\":n\":7,\":1.5\":8,"
	       "\":vab\":9,\":y00ff\":10,\":(:1,a)\":11,\":u61ff\":12,\"tab\\there\":13}",
	       {
		       dkv_mp_map(&b, 13);
		       dkv_mp_cstr(&b, "a");
		       dkv_mp_int(&b, 1);
		       dkv_mp_cstr(&b, "");
		       dkv_mp_int(&b, 2);
		       dkv_mp_cstr(&b, "x:y");
		       dkv_mp_int(&b, 3);
		       dkv_mp_cstr(&b, ":x");
		       dkv_mp_int(&b, 4);
		       dkv_mp_int(&b, 5);
		       dkv_mp_int(&b, 5);
		       dkv_mp_bool(&b, true);
		       dkv_mp_int(&b, 6);
		       dkv_mp_nil(&b);
		       dkv_mp_int(&b, 7);
		       dkv_mp_double(&b, 1.5);
		       dkv_mp_int(&b, 8);
		       dkv_mp_bin(&b, "ab", 2);
		       dkv_mp_int(&b, 9);
		       dkv_mp_bin(&b, "\x00\xff", 2);
		       dkv_mp_int(&b, 10);
		       dkv_mp_array(&b, 2);
		       dkv_mp_int(&b, 1);
		       dkv_mp_cstr(&b, "a");
		       dkv_mp_int(&b, 11);
		       dkv_mp_str(&b, "a\xff", 2);
		       dkv_mp_int(&b, 12);
		       dkv_mp_cstr(&b, "tab\there");
		       dkv_mp_int(&b, 13);
	       });
	/* keys without a colon notation: ':' and their JSON */
	EXPECT("{\":{\\\"k\\\":[1]}\":1,\":{\\\":ext\\\":[9,\\\"\\\"]}\":2}", {
		dkv_mp_map(&b, 2);
		dkv_mp_map(&b, 1);
		dkv_mp_cstr(&b, "k");
		dkv_mp_array(&b, 1);
		dkv_mp_int(&b, 1);
		dkv_mp_int(&b, 1);
		dkv_mp_ext(&b, 9, "", 0);
		dkv_mp_int(&b, 2);
	});
	dkv_buf_release(&b);
}

TEST(invalid)
{
	struct dkv_buf t = {0}, b = {0};

	dkv_buf_puts(&t, "x");
	CHECK_EQ_INT(dkv_json_emit(&t, (const uint8_t *)"", 0), -EBADMSG);
	CHECK_EQ_INT(dkv_json_emit(&t, (const uint8_t *)"\xc1", 1), -EBADMSG);
	CHECK_EQ_INT(dkv_json_emit(&t, (const uint8_t *)"\x92\x01", 2), -EBADMSG);
	CHECK_EQ_INT(dkv_json_emit(&t, (const uint8_t *)"\x01\x02", 2), -EBADMSG);
	for (int i = 0; i < DKV_MP_MAX_DEPTH + 1; i++)
		dkv_mp_array(&b, 1);
	dkv_mp_nil(&b);
	CHECK_EQ_INT(dkv_json_emit(&t, b.data, b.len), -EBADMSG);
	CHECK_EQ_INT(t.len, 1);
	/* a path whose payload is cut short is shown raw */
	b.len = 0;
	dkv_mp_ext(&b, DKV_EXT_PATH, "\x92\x01", 2);
	CHECK_EQ_INT(json(&b), 0);
	CHECK_EQ_STR(out, "{\":ext\":[3,\"kgE=\"]}");
	dkv_buf_release(&t);
	dkv_buf_release(&b);
}

TESTS(scalars, markers, markers_are_not_keys, containers_and_keys, invalid)
