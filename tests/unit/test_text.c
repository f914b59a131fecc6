/*
 * test_text.c - the shared text codecs: UTF-8 edge cases, hex, base64
 * round trips and every refusal of the strict decoder, big integers at
 * the int64 and uint64 borders.
 */
#include "test.h"

#include "mp.h"
#include "text.h"

#include <errno.h>

/* Whether b holds exactly the n bytes of want. */
static int buf_is(const struct dkv_buf *b, const void *want, size_t n)
{
	return b->len == n && (!n || !memcmp(b->data, want, n));
}

#define BUF_IS(b, lit) buf_is((b), (lit), sizeof(lit) - 1)

/* Fill p[0..n) with xorshift32 bytes from the state *x. */
static void fill_random(uint8_t *p, size_t n, uint32_t *x)
{
	for (size_t i = 0; i < n; i++) {
		*x ^= *x << 13, *x ^= *x >> 17, *x ^= *x << 5;
		p[i] = (uint8_t)*x;
	}
}

/* ---- UTF-8 ---- */

struct utf8_case {
	const char *s;
	size_t n;   /* bytes given to dkv__utf8_len */
	size_t len; /* what it must return */
};

#define U(lit, len) {lit, sizeof(lit) - 1, len}

TEST(utf8_len)
{
	static const struct utf8_case cases[] = {
		/* ASCII, NUL and DEL included */
		U("a", 1), {"\0", 1, 1}, U("\x7f", 1),
		/* the first and last code point of each length */
		U("\xc2\x80", 2), U("\xdf\xbf", 2), U("\xe0\xa0\x80", 3), U("\xef\xbf\xbf", 3),
		U("\xf0\x90\x80\x80", 4), U("\xf4\x8f\xbf\xbf", 4),
		/* around the surrogates */
		U("\xed\x9f\xbf", 3), U("\xee\x80\x80", 3),
		/* only the first sequence counts */
		U("\xc3\xa9x", 2), U("\xe2\x82\xac\xff", 3),
		/* overlong forms */
		U("\xc0\x80", 0), U("\xc0\xaf", 0), U("\xc1\xbf", 0), U("\xe0\x80\x80", 0),
		U("\xe0\x80\xaf", 0), U("\xe0\x9f\xbf", 0), U("\xf0\x80\x80\x80", 0),
		U("\xf0\x80\x80\xaf", 0), U("\xf0\x8f\xbf\xbf", 0),
		/* UTF-16 surrogates, alone or as a pair */
		U("\xed\xa0\x80", 0), U("\xed\xad\xbf", 0), U("\xed\xb0\x80", 0), U("\xed\xbf\xbf", 0),
		U("\xed\xa0\xbd\xed\xb8\x80", 0),
		/* above U+10FFFF */
		U("\xf4\x90\x80\x80", 0), U("\xf5\x80\x80\x80", 0), U("\xf7\xbf\xbf\xbf", 0),
		/* no such lead byte: continuations, 5- and 6-byte forms, 0xfe, 0xff */
		U("\x80", 0), U("\xbf", 0), U("\xf8\x88\x80\x80\x80", 0),
		U("\xfc\x84\x80\x80\x80\x80", 0), U("\xfe", 0), U("\xff", 0),
		/* a continuation byte missing in the middle */
		U("\xc3\x28", 0), U("\xe2\x28\xa1", 0), U("\xe2\x82\x28", 0), U("\xf0\x28\x8c\xbc", 0),
		U("\xf0\x90\x28\xbc", 0), U("\xf0\x90\x8c\x28", 0),
		/* truncated: the buffer ends inside the sequence */
		U("\xc3", 0), U("\xe2\x82", 0), U("\xe2", 0), U("\xf0\x9f\x98", 0), U("\xf0\x9f", 0),
		U("\xf0", 0),
		/* n cuts the sequence short even though more bytes follow */
		{"\xc3\xa9", 1, 0}, {"\xe2\x82\xac", 2, 0}, {"\xf0\x9f\x98\x80", 3, 0},
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct utf8_case *c = &cases[i];
		size_t got = dkv__utf8_len((const uint8_t *)c->s, c->n);
		if (got != c->len) {
			printf("#   case %zu: dkv__utf8_len == %zu, expected %zu\n", i, got, c->len);
			test_failed_ = 1;
		}
	}
}

TEST(utf8_valid)
{
#define VALID(lit) dkv__utf8_valid((const uint8_t *)(lit), sizeof(lit) - 1)
	CHECK(dkv__utf8_valid(NULL, 0));
	CHECK(VALID("plain ASCII\n\t"));
	CHECK(VALID("\0embedded NUL"));
	CHECK(VALID("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf"));
	CHECK(!VALID("ok then \xc3"));          /* truncated at the end */
	CHECK(!VALID("\xc3\xa9\xc3"));
	CHECK(!VALID("x\xc0\x80y"));           /* overlong NUL */
	CHECK(!VALID("x\xed\xa0\x80y"));       /* surrogate */
	CHECK(!VALID("x\xf4\x90\x80\x80y"));   /* U+110000 */
	CHECK(!VALID("x\x80y"));               /* stray continuation */
	CHECK(!VALID("\xe2\x82\xac\xe2\x82")); /* the second one cut short */
#undef VALID
}

TEST(utf8_prefix)
{
#define PREFIX(lit) dkv__utf8_prefix((const uint8_t *)(lit), sizeof(lit) - 1)
	CHECK_EQ_INT(dkv__utf8_prefix(NULL, 0), 0);
	CHECK_EQ_INT(PREFIX("short"), 5);
	CHECK_EQ_INT(PREFIX("sixteen bytes ok"), 16); /* whole words of ASCII */
	CHECK_EQ_INT(PREFIX("\xff"), 0);
	CHECK_EQ_INT(PREFIX("a\xff"), 1);
	CHECK_EQ_INT(PREFIX("eight by\xff"), 8);     /* right after a word */
	CHECK_EQ_INT(PREFIX("seven b\xffnd more"), 7); /* inside a word */
	CHECK_EQ_INT(PREFIX("caf\xc3\xa9 and then some ASCII \xc3"), 26); /* cut short */
	CHECK_EQ_INT(PREFIX("\xe2\x82\xac\xe2\x82\xac twelve......\xed\xa0\x80"), 19);
	/* every position of a bad byte in a long ASCII text is found */
	char t[40];
	for (size_t i = 0; i < sizeof t; i++) {
		memset(t, 'a', sizeof t);
		t[i] = (char)0x80;
		CHECK_EQ_INT(dkv__utf8_prefix((const uint8_t *)t, sizeof t), i);
	}
	/* ASCII of a multiple of 32 bytes in a buffer of exactly that size:
	 * nothing is read past its end (CI's ASan pass found a 3 MiB value
	 * read one byte too far) */
	for (size_t n = 32; n <= 96; n += 32) {
		uint8_t *h = malloc(n);
		memset(h, 'a', n);
		CHECK_EQ_INT(dkv__utf8_prefix(h, n), n);
		CHECK(dkv__utf8_valid(h, n));
		free(h);
	}
#undef PREFIX
}

TEST(utf8_sanitize)
{
	struct dkv_buf b = {0};

#define SAN(lit) (b.len = 0, dkv__utf8_sanitize(&b, (const uint8_t *)(lit), sizeof(lit) - 1))
	SAN("caf\xc3\xa9");
	CHECK(BUF_IS(&b, "caf\xc3\xa9"));
	SAN("a\xff" "b");
	CHECK(BUF_IS(&b, "a\xef\xbf\xbd" "b"));
	/* every byte of a bad sequence is replaced on its own */
	SAN("\xe2\x82");
	CHECK(BUF_IS(&b, "\xef\xbf\xbd\xef\xbf\xbd"));
	SAN("\xed\xa0\x80!");
	CHECK(BUF_IS(&b, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd!"));
	SAN("\xc0\x80");
	CHECK(BUF_IS(&b, "\xef\xbf\xbd\xef\xbf\xbd"));
	/* a valid sequence right after a bad lead byte survives */
	SAN("\xe2\xc3\xa9");
	CHECK(BUF_IS(&b, "\xef\xbf\xbd\xc3\xa9"));
	SAN("");
	CHECK_EQ_INT(b.len, 0);
	/* it appends */
	dkv_buf_puts(&b, "x");
	dkv__utf8_sanitize(&b, (const uint8_t *)"\xff", 1);
	CHECK(BUF_IS(&b, "x\xef\xbf\xbd"));
	/* what comes out is always valid */
	for (int i = 0; i < 256; i++) {
		uint8_t in[3] = {(uint8_t)i, (uint8_t)(i * 7), (uint8_t)(0x80 | i)};
		b.len = 0;
		dkv__utf8_sanitize(&b, in, 3);
		CHECK(dkv__utf8_valid(b.data, b.len));
	}
#undef SAN
	dkv_buf_release(&b);
}

/* ---- hex ---- */

TEST(hex)
{
	struct dkv_buf b = {0};
	static const char digits[] = "0123456789abcdef";

	for (int c = -1; c < 256; c++) {
		int want = -1;
		if (c >= '0' && c <= '9')
			want = c - '0';
		else if (c >= 'a' && c <= 'f')
			want = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			want = c - 'A' + 10;
		CHECK_EQ_INT(dkv__hexval(c), want);
	}

	dkv__hex_encode(&b, (const uint8_t *)"\x00\x01\x7f\x80\xab\xff", 6);
	CHECK(BUF_IS(&b, "00017f80abff"));
	dkv__hex_encode(&b, NULL, 0);
	CHECK_EQ_INT(b.len, 12);

	/* every byte value, both ways */
	for (int i = 0; i < 256; i++) {
		uint8_t byte = (uint8_t)i;
		char text[2] = {digits[i >> 4], digits[i & 15]};
		b.len = 0;
		dkv__hex_encode(&b, &byte, 1);
		CHECK(buf_is(&b, text, 2));
		b.len = 0;
		CHECK_EQ_INT(dkv__hex_decode(&b, text, 2), 0);
		CHECK(buf_is(&b, &byte, 1));
	}

	b.len = 0;
	CHECK_EQ_INT(dkv__hex_decode(&b, "00fFAa10", 8), 0);
	CHECK(BUF_IS(&b, "\x00\xff\xaa\x10"));
	b.len = 0;
	CHECK_EQ_INT(dkv__hex_decode(&b, "", 0), 0);
	CHECK_EQ_INT(b.len, 0);

	/* refusals leave the buffer as it was */
	static const char *bad[] = {"0", "abc", "0g", "g0", " 0", "0 ", "00:11", "0x", "\xc3\xa9"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		b.len = 0;
		dkv_buf_puts(&b, "keep");
		CHECK_EQ_INT(dkv__hex_decode(&b, bad[i], strlen(bad[i])), -EINVAL);
		CHECK(BUF_IS(&b, "keep"));
	}
	b.len = 0;
	dkv_buf_puts(&b, "keep");
	CHECK_EQ_INT(dkv__hex_decode(&b, "00\0" "0", 4), -EINVAL); /* NUL is no digit */
	CHECK(BUF_IS(&b, "keep"));
	dkv_buf_release(&b);
}

/* ---- base64 ---- */

/* Decode text and compare with want[0..n). */
static int decodes_to(const char *text, size_t tn, const void *want, size_t n)
{
	struct dkv_buf b = {0};
	const char *why = NULL;
	int rc = dkv__base64_decode(&b, text, tn, &why);
	int ok = !rc && buf_is(&b, want, n);

	if (!ok)
		printf("#   \"%.*s\" decodes wrong (rc %d: %s)\n", (int)tn, text, rc,
		       why ? why : "-");
	dkv_buf_release(&b);
	return ok;
}

/* text must be refused for the reason starting with reason, leaving the
 * buffer unchanged. */
static int b64_refused(const char *text, size_t tn, const char *reason)
{
	struct dkv_buf b = {0};
	const char *why = NULL;
	int rc, ok;

	dkv_buf_puts(&b, "keep");
	rc = dkv__base64_decode(&b, text, tn, &why);
	ok = rc == -EINVAL && BUF_IS(&b, "keep") && why && !strncmp(why, reason, strlen(reason));
	if (!ok)
		printf("#   \"%.*s\": rc %d, why \"%s\", expected \"%s\"\n", (int)tn, text, rc,
		       why ? why : "(null)", reason);
	dkv_buf_release(&b);
	return ok;
}

#define DECODES(text, want) decodes_to((text), strlen(text), (want), sizeof(want) - 1)
#define B64_REFUSED(text, reason) b64_refused((text), sizeof(text) - 1, (reason))

static const char *const OUTSIDE = "a character outside the base64 alphabet";
static const char *const EARLY_PAD = "'=' before the end";
static const char *const LENGTH = "the length is not a multiple of 4";
static const char *const TOO_MUCH_PAD = "too much '=' padding";
static const char *const EXTRA_BITS = "the last character has bits set beyond the data";

TEST(base64_encode)
{
	struct dkv_buf b = {0};
	/* RFC 4648, section 10 */
	static const char *vec[][2] = {
		{"", ""},          {"f", "Zg==\n"},     {"fo", "Zm8=\n"},         {"foo", "Zm9v\n"},
		{"foob", "Zm9vYg==\n"}, {"fooba", "Zm9vYmE=\n"}, {"foobar", "Zm9vYmFy\n"},
	};

	for (size_t i = 0; i < sizeof vec / sizeof vec[0]; i++) {
		b.len = 0;
		dkv__base64_encode(&b, (const uint8_t *)vec[i][0], strlen(vec[i][0]));
		CHECK_EQ_STR(dkv_buf_cstr(&b), vec[i][1]);
	}
	b.len = 0;
	dkv__base64_encode(&b, (const uint8_t *)"\xfb\xff\xbf", 3);
	CHECK_EQ_STR(dkv_buf_cstr(&b), "+/+/\n");

	/* 57 bytes fill one line of 76 characters; one more starts a second */
	uint8_t raw[58] = {0};
	b.len = 0;
	dkv__base64_encode(&b, raw, 57);
	CHECK_EQ_INT(b.len, 77);
	CHECK(b.data[76] == '\n');
	b.len = 0;
	dkv__base64_encode(&b, raw, 58);
	CHECK_EQ_INT(b.len, 77 + 5);
	CHECK(!memcmp(b.data + 76, "\nAA==\n", 6));
	dkv_buf_release(&b);
}

TEST(base64_round_trips)
{
	struct dkv_buf enc = {0}, dec = {0};
	uint8_t raw[300];
	uint32_t x = 2463534242u;
	int bad = 0;

	for (size_t n = 0; n <= sizeof raw; n++) {
		fill_random(raw, n, &x);
		enc.len = dec.len = 0;
		dkv__base64_encode(&enc, raw, n);
		/* full lines of 76, a shorter last one, each ending in '\n' */
		for (size_t at = 0; at < enc.len;) {
			const uint8_t *nl = memchr(enc.data + at, '\n', enc.len - at);
			size_t line = nl ? (size_t)(nl - enc.data) - at : enc.len - at;
			if (!nl || line == 0 || line > 76 || line % 4 ||
			    (line < 76 && at + line + 1 != enc.len))
				bad++;
			at += line + 1;
		}
		const char *why = NULL;
		if (dkv__base64_decode(&dec, (const char *)enc.data, enc.len, &why) ||
		    !buf_is(&dec, raw, n))
			bad++;
		/* the same text without line breaks decodes the same way */
		struct dkv_buf flat = {0};
		for (size_t i = 0; i < enc.len; i++)
			if (enc.data[i] != '\n')
				dkv_buf_putc(&flat, (char)enc.data[i]);
		dec.len = 0;
		if (dkv__base64_decode(&dec, (const char *)flat.data, flat.len, &why) ||
		    !buf_is(&dec, raw, n))
			bad++;
		dkv_buf_release(&flat);
	}
	CHECK_EQ_INT(bad, 0);
	dkv_buf_release(&enc);
	dkv_buf_release(&dec);
}

TEST(base64_decode)
{
	CHECK(DECODES("", ""));
	CHECK(DECODES("Zg==", "f"));
	CHECK(DECODES("Zm8=", "fo"));
	CHECK(DECODES("Zm9vYmFy", "foobar"));
	CHECK(DECODES("+/+/", "\xfb\xff\xbf"));
	/* blanks and line breaks anywhere, the padding included */
	CHECK(DECODES(" Zm9v\r\n\tYmE =\n", "fooba"));
	CHECK(DECODES("Z g = =", "f"));
	CHECK(DECODES("\n\n", ""));
	/* it appends */
	struct dkv_buf b = {0};
	const char *why = NULL;
	dkv_buf_puts(&b, "x");
	CHECK_EQ_INT(dkv__base64_decode(&b, "Zg==", 4, &why), 0);
	CHECK(BUF_IS(&b, "xf"));
	dkv_buf_release(&b);
}

TEST(base64_refusals)
{
	/* outside the alphabet: other alphabets, controls, NUL, non-ASCII */
	CHECK(B64_REFUSED("Zm9v!", OUTSIDE));
	CHECK(B64_REFUSED("Zm9-", OUTSIDE)); /* base64url */
	CHECK(B64_REFUSED("Zm9_", OUTSIDE));
	CHECK(B64_REFUSED("Zm9v\v", OUTSIDE)); /* vertical tab is no blank here */
	CHECK(B64_REFUSED("Zm\0" "9v", OUTSIDE));
	CHECK(B64_REFUSED("Zm9v\xc3\xa9", OUTSIDE));
	CHECK(B64_REFUSED("Zm.v", OUTSIDE));
	/* '=' followed by data */
	CHECK(B64_REFUSED("Zg==Zg==", EARLY_PAD));
	CHECK(B64_REFUSED("Z=g=", EARLY_PAD));
	CHECK(B64_REFUSED("=Zm9", EARLY_PAD));
	CHECK(B64_REFUSED("Zm9=v", EARLY_PAD));
	/* the length without blanks is not a multiple of 4 */
	CHECK(B64_REFUSED("Z", LENGTH));
	CHECK(B64_REFUSED("Zg", LENGTH));
	CHECK(B64_REFUSED("Zg=", LENGTH));
	CHECK(B64_REFUSED("Zm9vY", LENGTH));
	CHECK(B64_REFUSED("Zm9=\n=", LENGTH));
	CHECK(B64_REFUSED("Zg===", LENGTH));
	CHECK(B64_REFUSED("=", LENGTH));
	CHECK(B64_REFUSED("zz", LENGTH));
	/* more than two '=' */
	CHECK(B64_REFUSED("Z===", TOO_MUCH_PAD));
	CHECK(B64_REFUSED("====", TOO_MUCH_PAD));
	CHECK(B64_REFUSED("Zm9v====", TOO_MUCH_PAD));
	/* padding bits that are not zero: one spelling per byte string */
	CHECK(B64_REFUSED("Zh==", EXTRA_BITS));
	CHECK(B64_REFUSED("Z/==", EXTRA_BITS));
	CHECK(B64_REFUSED("Zm9=", EXTRA_BITS));
	CHECK(B64_REFUSED("Zm/=", EXTRA_BITS));
	/* the first breach in reading order decides the reason */
	CHECK(B64_REFUSED("Zg=!", OUTSIDE));
	CHECK(B64_REFUSED("Z=!", OUTSIDE));
	CHECK(B64_REFUSED("Zh=", LENGTH));
}

/* ---- big integers ---- */

static int dec_is(const void *be, size_t n, const char *want)
{
	struct dkv_buf b = {0};
	int ok;

	dkv__bigint_to_dec(&b, be, n);
	ok = b.len == strlen(want) && !memcmp(b.data, want, b.len);
	if (!ok)
		printf("#   got %.*s, expected %s\n", (int)b.len, (char *)b.data, want);
	dkv_buf_release(&b);
	return ok;
}

#define DEC_IS(lit, want) dec_is((lit), sizeof(lit) - 1, (want))

TEST(bigint_to_dec)
{
	CHECK(dec_is(NULL, 0, "0"));
	CHECK(DEC_IS("\0", "0"));
	CHECK(DEC_IS("\0\0\0\0\0\0\0\0\0\0", "0"));
	CHECK(DEC_IS("\x01", "1"));
	CHECK(DEC_IS("\0\0\x01", "1"));
	/* the borders of the 10^9 chunks */
	CHECK(DEC_IS("\x3b\x9a\xc9\xff", "999999999"));
	CHECK(DEC_IS("\x3b\x9a\xca\x00", "1000000000"));
	CHECK(DEC_IS("\x3b\x9a\xca\x01", "1000000001"));
	CHECK(DEC_IS("\x0d\xe0\xb6\xb3\xa7\x64\x00\x00", "1000000000000000000"));
	/* int64 and uint64 */
	CHECK(DEC_IS("\x7f\xff\xff\xff\xff\xff\xff\xff", "9223372036854775807"));
	CHECK(DEC_IS("\x80\x00\x00\x00\x00\x00\x00\x00", "9223372036854775808"));
	CHECK(DEC_IS("\xff\xff\xff\xff\xff\xff\xff\xff", "18446744073709551615"));
	CHECK(DEC_IS("\x01\x00\x00\x00\x00\x00\x00\x00\x00", "18446744073709551616"));
	CHECK(DEC_IS("\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
		     "340282366920938463463374607431768211456"));
}

/* Parse digits in base and compare the magnitude, leading zeros aside. */
static int digits_are(const char *s, unsigned base, const void *want, size_t n)
{
	struct dkv_buf b = {0};
	int rc = dkv__bigint_from_digits(&b, s, strlen(s), base);
	size_t skip = 0;
	int ok;

	while (skip < b.len && !b.data[skip])
		skip++;
	ok = !rc && b.len - skip == n && (!n || !memcmp(b.data + skip, want, n));
	if (!ok)
		printf("#   \"%s\" in base %u: rc %d, %zu bytes\n", s, base, rc, b.len - skip);
	dkv_buf_release(&b);
	return ok;
}

#define DIGITS_ARE(s, base, lit) digits_are((s), (base), (lit), sizeof(lit) - 1)

static const char U64_MAX[] = "\xff\xff\xff\xff\xff\xff\xff\xff";
static const char TWO64[] = "\x01\x00\x00\x00\x00\x00\x00\x00\x00";
static const char TWO63[] = "\x80\x00\x00\x00\x00\x00\x00\x00";

TEST(bigint_from_digits)
{
	CHECK(DIGITS_ARE("0", 10, ""));
	CHECK(DIGITS_ARE("000", 10, ""));
	CHECK(DIGITS_ARE("0", 16, ""));
	CHECK(DIGITS_ARE("255", 10, "\xff"));
	CHECK(DIGITS_ARE("256", 10, "\x01\x00"));
	CHECK(DIGITS_ARE("fff", 16, "\x0f\xff"));
	CHECK(DIGITS_ARE("FfF", 16, "\x0f\xff"));
	CHECK(DIGITS_ARE("777", 8, "\x01\xff"));
	CHECK(DIGITS_ARE("101", 2, "\x05"));
	/* 2^63, 2^64 - 1 and 2^64 in every base */
	CHECK(DIGITS_ARE("9223372036854775808", 10, TWO63));
	CHECK(DIGITS_ARE("8000000000000000", 16, TWO63));
	CHECK(DIGITS_ARE("1000000000000000000000", 8, TWO63));
	CHECK(DIGITS_ARE("18446744073709551615", 10, U64_MAX));
	CHECK(DIGITS_ARE("ffffffffffffffff", 16, U64_MAX));
	CHECK(DIGITS_ARE("1777777777777777777777", 8, U64_MAX));
	CHECK(DIGITS_ARE("1111111111111111111111111111111111111111111111111111111111111111", 2,
			 U64_MAX));
	CHECK(DIGITS_ARE("18446744073709551616", 10, TWO64));
	CHECK(DIGITS_ARE("10000000000000000", 16, TWO64));
	CHECK(DIGITS_ARE("2000000000000000000000", 8, TWO64));
	CHECK(DIGITS_ARE("10000000000000000000000000000000000000000000000000000000000000000", 2,
			 TWO64));
	CHECK(DIGITS_ARE("00000018446744073709551616", 10, TWO64));

	/* refusals leave the buffer as it was */
	static const struct {
		const char *s;
		unsigned base;
	} bad[] = {
		{"", 10}, {"", 16}, {"12a", 10}, {"-1", 10}, {"+1", 10}, {" 1", 10}, {"1 ", 10},
		{"8", 8}, {"2", 2}, {"g", 16}, {"0x1", 16}, {"12", 7}, {"12", 0}, {"12", 36},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct dkv_buf b = {0};
		dkv_buf_puts(&b, "keep");
		CHECK_EQ_INT(dkv__bigint_from_digits(&b, bad[i].s, strlen(bad[i].s), bad[i].base),
			     -EINVAL);
		CHECK(BUF_IS(&b, "keep"));
		dkv_buf_release(&b);
	}
}

TEST(bigint_round_trips)
{
	struct dkv_buf dec = {0}, back = {0};
	uint8_t mag[200];
	uint32_t x = 88675123u;
	int bad = 0;

	for (size_t n = 1; n <= sizeof mag; n++) {
		fill_random(mag, n, &x);
		mag[0] |= 1; /* no leading zero, so the bytes must come back as they are */
		dec.len = back.len = 0;
		dkv__bigint_to_dec(&dec, mag, n);
		if (dkv__bigint_from_digits(&back, (char *)dec.data, dec.len, 10))
			bad++;
		size_t skip = 0;
		while (skip < back.len && !back.data[skip])
			skip++;
		if (back.len - skip != n || memcmp(back.data + skip, mag, n))
			bad++;
		/* and through hex */
		dec.len = back.len = 0;
		dkv__hex_encode(&dec, mag, n);
		if (dkv__bigint_from_digits(&back, (char *)dec.data, dec.len, 16) ||
		    !buf_is(&back, mag, n))
			bad++;
	}
	CHECK_EQ_INT(bad, 0);
	dkv_buf_release(&dec);
	dkv_buf_release(&back);
}

/* put_int(neg, mag) must append exactly what want holds. */
static int put_int_is(bool neg, const void *mag, size_t n, const struct dkv_buf *want)
{
	struct dkv_buf got = {0};
	int ok;

	ok = dkv__bigint_put_int(&got, neg, mag, n) == 0 && got.len == want->len &&
	     !memcmp(got.data, want->data, got.len);
	if (!ok)
		printf("#   %s%zu-byte magnitude encoded wrong\n", neg ? "negative " : "", n);
	dkv_buf_release(&got);
	return ok;
}

TEST(bigint_put_int)
{
	static const char I64_MAX[] = "\x7f\xff\xff\xff\xff\xff\xff\xff";
	struct dkv_buf w = {0};
#define WANT(write) (w.len = 0, (write), &w)

	CHECK(put_int_is(false, NULL, 0, WANT(dkv_mp_uint(&w, 0))));
	CHECK(put_int_is(true, NULL, 0, WANT(dkv_mp_uint(&w, 0)))); /* -0 */
	CHECK(put_int_is(true, "\0\0", 2, WANT(dkv_mp_uint(&w, 0))));
	CHECK(put_int_is(false, "\x01", 1, WANT(dkv_mp_uint(&w, 1))));
	CHECK(put_int_is(true, "\x01", 1, WANT(dkv_mp_int(&w, -1))));
	/* the int64 border */
	CHECK(put_int_is(false, I64_MAX, 8, WANT(dkv_mp_int(&w, INT64_MAX))));
	CHECK(put_int_is(true, I64_MAX, 8, WANT(dkv_mp_int(&w, -INT64_MAX))));
	CHECK(put_int_is(false, TWO63, 8, WANT(dkv_mp_uint(&w, (uint64_t)INT64_MAX + 1))));
	CHECK(put_int_is(true, TWO63, 8, WANT(dkv_mp_int(&w, INT64_MIN))));
	CHECK(put_int_is(true, "\0\0\x80\0\0\0\0\0\0\0", 10, WANT(dkv_mp_int(&w, INT64_MIN))));
	/* the uint64 border: 2^64 becomes an ext-2 big integer */
	CHECK(put_int_is(false, U64_MAX, 8, WANT(dkv_mp_uint(&w, UINT64_MAX))));
	CHECK(put_int_is(false, "\0" "\xff\xff\xff\xff\xff\xff\xff\xff", 9,
			 WANT(dkv_mp_uint(&w, UINT64_MAX))));
	CHECK(put_int_is(false, TWO64, 9, WANT(dkv_mp_ext(&w, DKV_EXT_BIGINT, TWO64, 9))));
#undef WANT
	dkv_buf_release(&w);

	/* below -2^63 is out of range, and nothing is appended */
	static const struct {
		const char *mag;
		size_t n;
	} low[] = {
		{"\x80\0\0\0\0\0\0\x01", 8}, {U64_MAX, 8}, {TWO64, 9}, {"\x01\0\0\0\0\0\0\0\0\0", 10},
	};
	for (size_t i = 0; i < sizeof low / sizeof low[0]; i++) {
		struct dkv_buf b = {0};
		dkv_buf_puts(&b, "keep");
		CHECK_EQ_INT(dkv__bigint_put_int(&b, true, (const uint8_t *)low[i].mag, low[i].n),
			     -ERANGE);
		CHECK(BUF_IS(&b, "keep"));
		dkv_buf_release(&b);
	}
}

TESTS(utf8_len, utf8_valid, utf8_prefix, utf8_sanitize, hex, base64_encode, base64_round_trips, base64_decode,
      base64_refusals, bigint_to_dec, bigint_from_digits, bigint_round_trips, bigint_put_int)
