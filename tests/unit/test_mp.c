/* test_mp.c - the msgpack writer and reader, checked against msgpack-c. */
#include "mp.h"
#include "test.h"

#include <errno.h>
#include <math.h>
#include <msgpack.h>

/* msgpack-c must read what we write, as the same value */
static bool msgpackc_reads(const struct dkv_buf *b, msgpack_object_type type)
{
	msgpack_unpacked u;
	size_t off = 0;
	msgpack_unpacked_init(&u);
	int rc = msgpack_unpack_next(&u, (const char *)b->data, b->len, &off);
	bool ok = rc == MSGPACK_UNPACK_SUCCESS && off == b->len && u.data.type == type;
	msgpack_unpacked_destroy(&u);
	return ok;
}

TEST(ints_roundtrip)
{
	static const int64_t vals[] = {0, 1, 127, 128, 255, 256, 65535, 65536, 4294967295LL,
				       4294967296LL, INT64_MAX, -1, -32, -33, -128, -129,
				       -32768, -32769, INT32_MIN, (int64_t)INT32_MIN - 1, INT64_MIN};
	for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
		struct dkv_buf b = {0};
		struct dkv_mp_reader r;
		struct dkv_mp_item it;
		dkv_mp_int(&b, vals[i]);
		CHECK(msgpackc_reads(&b, vals[i] < 0 ? MSGPACK_OBJECT_NEGATIVE_INTEGER
						     : MSGPACK_OBJECT_POSITIVE_INTEGER));
		dkv_mp_reader_init(&r, b.data, b.len);
		REQUIRE(dkv_mp_read(&r, &it) == 0);
		if (vals[i] < 0)
			CHECK(it.type == DKV_MP_INT && it.v.i == vals[i]);
		else
			CHECK(it.type == DKV_MP_UINT && it.v.u == (uint64_t)vals[i]);
		CHECK_EQ_INT(dkv_mp_left(&r), 0);
		dkv_buf_release(&b);
	}
}

TEST(minimal_sizes)
{
	struct dkv_buf b = {0};
	dkv_mp_uint(&b, 5);
	CHECK_EQ_INT(b.len, 1);
	b.len = 0;
	dkv_mp_uint(&b, 200);
	CHECK_EQ_INT(b.len, 2);
	b.len = 0;
	dkv_mp_str(&b, "abc", 3);
	CHECK_EQ_INT(b.len, 4);
	b.len = 0;
	dkv_mp_map(&b, 3);
	CHECK_EQ_INT(b.data[0], 0x83);
	dkv_buf_release(&b);
}

TEST(strings_bins_ext)
{
	struct dkv_buf b = {0};
	char big[70000];
	memset(big, 'x', sizeof big);
	size_t lens[] = {0, 31, 32, 255, 256, 65535, 65536};
	for (size_t i = 0; i < 7; i++) {
		struct dkv_mp_reader r;
		struct dkv_mp_item it;
		b.len = 0;
		dkv_mp_str(&b, big, lens[i]);
		CHECK(msgpackc_reads(&b, MSGPACK_OBJECT_STR));
		dkv_mp_reader_init(&r, b.data, b.len);
		REQUIRE(!dkv_mp_read(&r, &it));
		CHECK(it.type == DKV_MP_STR && it.v.s.len == lens[i]);
		b.len = 0;
		dkv_mp_bin(&b, big, lens[i]);
		CHECK(msgpackc_reads(&b, MSGPACK_OBJECT_BIN));
		b.len = 0;
		dkv_mp_ext(&b, 3, big, lens[i]);
		CHECK(msgpackc_reads(&b, MSGPACK_OBJECT_EXT));
		dkv_mp_reader_init(&r, b.data, b.len);
		REQUIRE(!dkv_mp_read(&r, &it));
		CHECK(it.type == DKV_MP_EXT && it.v.ext.type == 3 && it.v.ext.len == lens[i]);
	}
	dkv_buf_release(&b);
}

TEST(truncation_is_eagain)
{
	struct dkv_buf b = {0};
	dkv_mp_map(&b, 2);
	dkv_mp_cstr(&b, "a");
	dkv_mp_double(&b, 1.5);
	dkv_mp_cstr(&b, "b");
	dkv_mp_str(&b, "hello world", 11);
	for (size_t cut = 0; cut < b.len; cut++) {
		struct dkv_mp_reader r;
		dkv_mp_reader_init(&r, b.data, cut);
		CHECK_EQ_INT(dkv_mp_skip(&r), -EAGAIN);
		CHECK(r.p == b.data); /* unchanged */
	}
	struct dkv_mp_reader r;
	dkv_mp_reader_init(&r, b.data, b.len);
	CHECK_EQ_INT(dkv_mp_skip(&r), 0);
	CHECK_EQ_INT(dkv_mp_left(&r), 0);
	dkv_buf_release(&b);
}

TEST(bad_and_deep)
{
	uint8_t bad[] = {0xc1};
	struct dkv_mp_reader r;
	dkv_mp_reader_init(&r, bad, 1);
	CHECK_EQ_INT(dkv_mp_skip(&r), -EBADMSG);

	struct dkv_buf b = {0};
	for (int i = 0; i < 200; i++)
		dkv_mp_array(&b, 1);
	dkv_mp_nil(&b);
	dkv_mp_reader_init(&r, b.data, b.len);
	CHECK_EQ_INT(dkv_mp_skip(&r), -E2BIG);
	struct dkv_buf out = {0};
	dkv_mp_reader_init(&r, b.data, b.len);
	CHECK_EQ_INT(dkv_mp_canon(&out, &r), -E2BIG);
	CHECK_EQ_INT(out.len, 0);
	/* a huge claimed array count with no data is incomplete, not a crash */
	uint8_t huge[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
	dkv_mp_reader_init(&r, huge, sizeof huge);
	CHECK_EQ_INT(dkv_mp_skip(&r), -EAGAIN);
	dkv_buf_release(&b);
	dkv_buf_release(&out);
}

TEST(canon_normalises)
{
	/* uint32 5, float32 1.5, bigint ext with leading zeros */
	uint8_t in[] = {0x93, 0xce, 0, 0, 0, 5, 0xca, 0x3f, 0xc0, 0, 0,
			0xc7, 10, 2, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0};
	struct dkv_buf out = {0};
	struct dkv_mp_reader r;
	dkv_mp_reader_init(&r, in, sizeof in);
	REQUIRE(dkv_mp_canon(&out, &r) == 0);
	uint8_t want[] = {0x93, 5, 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0, 0xcd, 1, 0};
	CHECK_EQ_INT(out.len, sizeof want);
	CHECK(out.len == sizeof want && !memcmp(out.data, want, sizeof want));
	dkv_buf_release(&out);
}

TEST(find_bad_utf8)
{
	struct dkv_buf b = {0};
	size_t at = 99, bad = 99;

	/* {"a": [1, "ok", b"\xff"], "k\xc3\xa9": ext 3 "\xff"}: bytes and ext payloads are not text */
	dkv_mp_map(&b, 2);
	dkv_mp_cstr(&b, "a");
	dkv_mp_array(&b, 3);
	dkv_mp_uint(&b, 1);
	dkv_mp_cstr(&b, "ok");
	dkv_mp_bin(&b, "\xff", 1);
	dkv_mp_cstr(&b, "k\xc3\xa9");
	dkv_mp_ext(&b, 3, "\xa1\xff", 2);
	CHECK(!dkv_mp_find_bad_utf8(b.data, b.len, &at, &bad));
	CHECK(!dkv_mp_find_bad_utf8(NULL, 0, &at, &bad));

	/* a bad string nested in a list, as a value */
	size_t mark = b.len;
	dkv_mp_array(&b, 2);
	dkv_mp_cstr(&b, "fine");
	dkv_mp_str(&b, "ab\xc3(", 4);
	CHECK(dkv_mp_find_bad_utf8(b.data, b.len, &at, &bad));
	CHECK_EQ_INT(at, b.len - 4);
	CHECK_EQ_INT(bad, 2);

	/* as a map key, in a str 8 */
	b.len = mark;
	char key[40];
	memset(key, 'k', sizeof key);
	key[33] = (char)0xed; /* a surrogate's lead, cut short */
	dkv_mp_map(&b, 1);
	dkv_mp_str(&b, key, sizeof key);
	dkv_mp_nil(&b);
	CHECK(dkv_mp_find_bad_utf8(b.data, b.len, &at, &bad));
	CHECK_EQ_INT(at, mark + 1 + 2);
	CHECK_EQ_INT(bad, 33);
	dkv_buf_release(&b);
}

TEST(buf_helpers)
{
	struct dkv_buf b = {0};
	dkv_buf_printf(&b, "%d-%s", 42, "x");
	CHECK_EQ_STR(dkv_buf_cstr(&b), "42-x");
	dkv_buf_consume(&b, 3);
	CHECK_EQ_STR(dkv_buf_cstr(&b), "x");
	dkv_buf_release(&b);
	dkv_buf_release(&b); /* twice is fine */
}

TESTS(ints_roundtrip, minimal_sizes, strings_bins_ext, truncation_is_eagain, bad_and_deep,
      canon_normalises, find_bad_utf8, buf_helpers)
