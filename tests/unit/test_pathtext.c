/*
 * test_pathtext.c - the colon notation: expected texts, round trips for
 * every element type, file-name safety, refused input, and whole paths in
 * their dotted form.
 */
#include "test.h"

#include "mp.h"
#include "path.h"
#include "pathtext.h"

#include <errno.h>
#include <math.h>

static struct dkv_buf enc_;  /* the element under test */
static struct dkv_buf text_; /* what fmt() returned last */

static const char *fmt(unsigned flags)
{
	text_.len = 0;
	if (dkv_pathtext_format(&text_, enc_.data, enc_.len, flags))
		return "(error)";
	return dkv_buf_cstr(&text_);
}

/* Format enc_ in both modes, check the texts and that each parses back to
 * exactly enc_ in both modes (FS texts never hold '/'). */
static int round_trip(const char *want_cli, const char *want_fs)
{
	int ok = 1;
	for (unsigned flags = 0; flags <= DKV_PT_FS; flags++) {
		struct dkv_buf text = {0}, back = {0};
		const char *want = flags ? want_fs : want_cli;
		if (dkv_pathtext_format(&text, enc_.data, enc_.len, flags)) {
			printf("#   format failed (flags %u)\n", flags);
			ok = 0;
			continue;
		}
		if (want && (text.len != strlen(want) || memcmp(text.data, want, text.len))) {
			printf("#   flags %u: got \"%.*s\", want \"%s\"\n", flags, (int)text.len,
			       (char *)text.data, want);
			ok = 0;
		}
		for (unsigned pf = 0; pf <= DKV_PT_FS; pf++) {
			if (pf && !flags)
				continue; /* CLI text may hold '/' */
			back.len = 0;
			int rc = dkv_pathtext_parse(&back, (char *)text.data, text.len, pf);
			if (rc || back.len != enc_.len || memcmp(back.data, enc_.data, enc_.len)) {
				printf("#   \"%.*s\" (flags %u) does not parse back (rc %d)\n",
				       (int)text.len, (char *)text.data, pf, rc);
				ok = 0;
			}
		}
		dkv_buf_release(&text);
		dkv_buf_release(&back);
	}
	return ok;
}

/* Parse text, compare with enc_. */
static int parses_to(const char *text, unsigned flags)
{
	struct dkv_buf out = {0};
	int rc = dkv_pathtext_parse(&out, text, strlen(text), flags);
	int ok = !rc && out.len == enc_.len && !memcmp(out.data, enc_.data, out.len);
	if (!ok)
		printf("#   \"%s\" parsed wrong (rc %d)\n", text, rc);
	dkv_buf_release(&out);
	return ok;
}

static void start(void)
{
	enc_.len = 0;
}

TEST(strings)
{
	start(), dkv_mp_cstr(&enc_, "one");
	CHECK(round_trip("one", "one"));
	start(), dkv_mp_cstr(&enc_, "");
	CHECK(round_trip(":e", ":e"));
	start(), dkv_mp_cstr(&enc_, ":x");
	CHECK(round_trip("::x", "::x"));
	start(), dkv_mp_cstr(&enc_, ":");
	CHECK(round_trip("::", "::"));
	start(), dkv_mp_cstr(&enc_, "a/b");
	CHECK(round_trip("a/b", ":u612f62"));
	start(), dkv_mp_str(&enc_, "a\0b", 3);
	CHECK(round_trip(":u610062", ":u610062"));
	start(), dkv_mp_cstr(&enc_, "two\nlines");
	CHECK(round_trip(":u74776f0a6c696e6573", ":u74776f0a6c696e6573"));
	start(), dkv_mp_cstr(&enc_, "gr\xc3\xbc\xc3\x9f" "e \xe2\x82\xac");
	CHECK(round_trip("gr\xc3\xbc\xc3\x9f" "e \xe2\x82\xac", "gr\xc3\xbc\xc3\x9f" "e \xe2\x82\xac"));
	start(), dkv_mp_cstr(&enc_, "bad\xff");
	CHECK(round_trip(":u626164ff", ":u626164ff"));
	start(), dkv_mp_cstr(&enc_, ".hidden");
	CHECK(round_trip(".hidden", ":=.hidden"));
	start(), dkv_mp_cstr(&enc_, "_");
	CHECK(round_trip("_", ":=_"));
	start(), dkv_mp_cstr(&enc_, ".meta");
	CHECK(round_trip(".meta", ":=.meta"));
	start(), dkv_mp_cstr(&enc_, "..");
	CHECK(round_trip("..", ":=.."));
	start(), dkv_mp_cstr(&enc_, "__");
	CHECK(round_trip("__", "__"));
	start(), dkv_mp_cstr(&enc_, "123");
	CHECK(round_trip("123", "123"));
	start(), dkv_mp_cstr(&enc_, "a,b(c)");
	CHECK(round_trip("a,b(c)", "a,b(c)"));

	/* other spellings of strings */
	start(), dkv_mp_cstr(&enc_, "_");
	CHECK(parses_to("_", 0));
	CHECK(parses_to(":=_", DKV_PT_FS));
	CHECK(parses_to(":u5f", 0));
	CHECK(parses_to(":u5F", 0));
	start(), dkv_mp_cstr(&enc_, "");
	CHECK(parses_to(":=", 0));
	CHECK(parses_to(":u", 0));
	start(), dkv_mp_cstr(&enc_, ":t");
	CHECK(parses_to(":=:t", 0));
}

/* No formatted text holds a byte below 0x20 or 0x7f. */
static int one_line(const char *t, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)t[i] < 0x20 || t[i] == 0x7f) {
			printf("#   control byte %02x in \"%.*s\"\n", (unsigned char)t[i], (int)n, t);
			return 0;
		}
	}
	return 1;
}

/* Control characters are written :uHEX (the form for NUL and invalid
 * UTF-8 before them), so `dkv data list` prints one name per line. */
TEST(control_characters)
{
	start(), dkv_mp_cstr(&enc_, "a\nb");
	CHECK(round_trip(":u610a62", ":u610a62"));
	start(), dkv_mp_cstr(&enc_, "\n");
	CHECK(round_trip(":u0a", ":u0a"));
	start(), dkv_mp_cstr(&enc_, "cr\r");
	CHECK(round_trip(":u63720d", ":u63720d"));
	start(), dkv_mp_cstr(&enc_, "tab\there");
	CHECK(round_trip(":u7461620968657265", ":u7461620968657265"));
	start(), dkv_mp_cstr(&enc_, "del\x7f");
	CHECK(round_trip(":u64656c7f", ":u64656c7f"));
	start(), dkv_mp_cstr(&enc_, "\x1b[31mred");
	CHECK(round_trip(":u1b5b33316d726564", ":u1b5b33316d726564"));
	/* a control character makes the :: and := forms give way to :u */
	start(), dkv_mp_cstr(&enc_, ":x\n");
	CHECK(round_trip(":u3a780a", ":u3a780a"));
	start(), dkv_mp_cstr(&enc_, ".h\n");
	CHECK(round_trip(":u2e680a", ":u2e680a"));
	/* C1 controls (U+0085 NEL, U+009B CSI) and U+2028, U+2029, which
	 * some readers take for line ends */
	start(), dkv_mp_cstr(&enc_, "a\xc2\x85");
	CHECK(round_trip(":u61c285", ":u61c285"));
	start(), dkv_mp_cstr(&enc_, "\xc2\x9b");
	CHECK(round_trip(":uc29b", ":uc29b"));
	start(), dkv_mp_cstr(&enc_, "a\xe2\x80\xa8" "b");
	CHECK(round_trip(":u61e280a862", ":u61e280a862"));
	start(), dkv_mp_cstr(&enc_, "\xe2\x80\xa9");
	CHECK(round_trip(":ue280a9", ":ue280a9"));
	/* their printable neighbours stay plain: U+00A0, U+00E9, U+2027 */
	start(), dkv_mp_cstr(&enc_, "\xc2\xa0\xc3\xa9\xe2\x80\xa7");
	CHECK(round_trip("\xc2\xa0\xc3\xa9\xe2\x80\xa7", "\xc2\xa0\xc3\xa9\xe2\x80\xa7"));
	/* inside a tuple */
	start(), dkv_mp_array(&enc_, 2), dkv_mp_cstr(&enc_, "x\ny"), dkv_mp_uint(&enc_, 1);
	CHECK(round_trip(":(:u780a79,:1)", ":(:u780a79,:1)"));
	/* byte strings already used :y for them */
	start(), dkv_mp_bin(&enc_, "a\nb", 3);
	CHECK(round_trip(":y610a62", ":y610a62"));
	start(), dkv_mp_bin(&enc_, "\x7f", 1);
	CHECK(round_trip(":y7f", ":y7f"));

	/* every ASCII character in the middle of a string: plain exactly when
	 * printable (and, in a file name, not '/') */
	for (int c = 1; c < 0x80; c++) {
		char s[4] = {'a', (char)c, 'b', 0};
		start(), dkv_mp_str(&enc_, s, 3);
		int printable = c >= 0x20 && c < 0x7f;
		char hex[16];
		snprintf(hex, sizeof hex, ":u61%02x62", c);
		const char *cli = printable ? s : hex;
		const char *fs = printable && c != '/' ? s : hex;
		if (!round_trip(cli, fs)) {
			printf("#   character %02x\n", c);
			CHECK(0);
		}
	}

	/* what people type still works: the characters as they are */
	start(), dkv_mp_cstr(&enc_, "a\nb");
	CHECK(parses_to("a\nb", 0));
	CHECK(parses_to("a\nb", DKV_PT_FS));
	CHECK(parses_to(":=a\nb", 0));
	CHECK(parses_to(":u610A62", 0));
}

TEST(scalars)
{
	start(), dkv_mp_bool(&enc_, true);
	CHECK(round_trip(":t", ":t"));
	start(), dkv_mp_bool(&enc_, false);
	CHECK(round_trip(":f", ":f"));
	start(), dkv_mp_nil(&enc_);
	CHECK(round_trip(":n", ":n"));
}

TEST(integers)
{
	start(), dkv_mp_uint(&enc_, 0);
	CHECK(round_trip(":0", ":0"));
	start(), dkv_mp_uint(&enc_, 123);
	CHECK(round_trip(":123", ":123"));
	CHECK(parses_to(":0x7b", 0));
	CHECK(parses_to(":0X7B", 0));
	CHECK(parses_to(":0o173", 0));
	CHECK(parses_to(":0b1111011", 0));
	CHECK(parses_to(":+123", 0));
	CHECK(parses_to(":00123", 0));
	start(), dkv_mp_int(&enc_, -5);
	CHECK(round_trip(":-5", ":-5"));
	CHECK(parses_to(":-0x5", 0));
	start(), dkv_mp_uint(&enc_, 0);
	CHECK(parses_to(":-0", 0));
	start(), dkv_mp_uint(&enc_, UINT64_MAX);
	CHECK(round_trip(":18446744073709551615", NULL));
	start(), dkv_mp_int(&enc_, INT64_MIN);
	CHECK(round_trip(":-9223372036854775808", NULL));
	start(), dkv_mp_uint(&enc_, 65536);
	CHECK(round_trip(":65536", NULL));
	start(), dkv_mp_int(&enc_, -129);
	CHECK(round_trip(":-129", NULL));
}

TEST(big_integers)
{
	static const uint8_t two70[] = {0x40, 0, 0, 0, 0, 0, 0, 0, 0};
	static const uint8_t two64[] = {1, 0, 0, 0, 0, 0, 0, 0, 0};
	uint8_t huge[100];

	start(), dkv_mp_bigint(&enc_, two70, sizeof two70);
	CHECK_EQ_INT(enc_.data[0], 0xc7); /* really an ext */
	CHECK(round_trip(":1180591620717411303424", ":1180591620717411303424"));
	CHECK(parses_to(":0x400000000000000000", 0));
	start(), dkv_mp_bigint(&enc_, two64, sizeof two64);
	CHECK(round_trip(":18446744073709551616", NULL));

	/* 2^64 written with leading zero bytes is the same element */
	static const uint8_t padded[] = {0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0};
	struct dkv_buf e = {0};
	dkv_mp_ext(&e, DKV_EXT_BIGINT, padded, sizeof padded);
	CHECK_EQ_STR(fmt(0), ":18446744073709551616");
	enc_.len = 0;
	dkv_buf_append(&enc_, e.data, e.len);
	CHECK_EQ_STR(fmt(0), ":18446744073709551616");
	dkv_buf_release(&e);

	/* magnitudes beyond the decimal limit come out in hex */
	for (size_t i = 0; i < sizeof huge; i++)
		huge[i] = (uint8_t)(i * 7 + 1);
	start(), dkv_mp_bigint(&enc_, huge, sizeof huge);
	CHECK(round_trip(NULL, NULL));
	CHECK(!strncmp(fmt(0), ":0x01080f", 9));
	/* a 60-byte one still in decimal */
	start(), dkv_mp_bigint(&enc_, huge, 60);
	CHECK(round_trip(NULL, NULL));
	CHECK(fmt(0)[1] >= '1' && fmt(0)[1] <= '9');
	CHECK(strchr(fmt(0), 'x') == NULL);
}

TEST(floats)
{
	static const double vals[] = {1.5, 0.1, -2.25, 1e100, 5e-324, 1.7976931348623157e308,
				      123456789.0, 1.0 / 3.0, 1e16, 2.0, -0.0, 0.0};
	for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
		start(), dkv_mp_double(&enc_, vals[i]);
		CHECK(round_trip(NULL, NULL));
	}
	start(), dkv_mp_double(&enc_, 1.5);
	CHECK(round_trip(":1.5", ":1.5"));
	CHECK(parses_to(":15e-1", 0));
	CHECK(parses_to(":1.50", 0));
	start(), dkv_mp_double(&enc_, 2.0);
	CHECK(round_trip(":2.0", ":2.0"));
	CHECK(parses_to(":2.", 0));
	CHECK(parses_to(":2e0", 0));
	start(), dkv_mp_double(&enc_, 0.1);
	CHECK(round_trip(":0.1", NULL));
	CHECK(parses_to(":.1", 0));
	start(), dkv_mp_double(&enc_, 1e16);
	CHECK(round_trip(":1e+16", NULL));
	start(), dkv_mp_double(&enc_, -0.0);
	CHECK(round_trip(":-0.0", NULL));
	start(), dkv_mp_double(&enc_, INFINITY);
	CHECK(round_trip(":inf", ":inf"));
	CHECK(parses_to(":Infinity", 0));
	start(), dkv_mp_double(&enc_, -INFINITY);
	CHECK(round_trip(":-inf", ":-inf"));
	start(), dkv_mp_double(&enc_, NAN);
	CHECK(round_trip(":nan", ":nan"));
}

TEST(bytes)
{
	start(), dkv_mp_bin(&enc_, "abc", 3);
	CHECK(round_trip(":vabc", ":vabc"));
	start(), dkv_mp_bin(&enc_, "a/b", 3);
	CHECK(round_trip(":va/b", ":y612f62"));
	start(), dkv_mp_bin(&enc_, "\x00\xff\n", 3);
	CHECK(round_trip(":y00ff0a", ":y00ff0a"));
	start(), dkv_mp_bin(&enc_, ":x", 2);
	CHECK(round_trip(":v:x", ":v:x"));
	CHECK(parses_to(":y3a78", 0));
	/* the empty byte string is canonically the empty string */
	start(), dkv_mp_str(&enc_, "", 0);
	CHECK(parses_to(":v", 0));
	CHECK(parses_to(":y", 0));
}

TEST(tuples)
{
	start(), dkv_mp_array(&enc_, 0);
	CHECK(round_trip(":()", ":()"));
	start(), dkv_mp_array(&enc_, 1), dkv_mp_cstr(&enc_, "a");
	CHECK(round_trip(":(a,)", ":(a,)"));
	start(), dkv_mp_array(&enc_, 2), dkv_mp_cstr(&enc_, "a"), dkv_mp_uint(&enc_, 1);
	CHECK(round_trip(":(a,:1)", ":(a,:1)"));
	CHECK(parses_to(":(a,:1,)", 0));

	/* nested, with every awkward item */
	start();
	dkv_mp_array(&enc_, 9);
	dkv_mp_cstr(&enc_, "x,y");
	dkv_mp_array(&enc_, 2);
	dkv_mp_uint(&enc_, 2);
	dkv_mp_array(&enc_, 0);
	dkv_mp_bin(&enc_, "(b)", 3);
	dkv_mp_cstr(&enc_, "");
	dkv_mp_nil(&enc_);
	dkv_mp_double(&enc_, -1.5);
	dkv_mp_cstr(&enc_, "/");
	dkv_mp_cstr(&enc_, ".d");
	dkv_mp_bigint(&enc_, (const uint8_t *)"\x01\0\0\0\0\0\0\0\0", 9);
	CHECK(round_trip(":(:u782c79,:(:2,:()),:y286229,:e,:n,:-1.5,/,.d,:18446744073709551616)",
			 ":(:u782c79,:(:2,:()),:y286229,:e,:n,:-1.5,:u2f,:=.d,:18446744073709551616)"));

	/* one-item tuple holding a one-item tuple */
	start(), dkv_mp_array(&enc_, 1), dkv_mp_array(&enc_, 1), dkv_mp_bool(&enc_, true);
	CHECK(round_trip(":(:(:t,),)", NULL));

	/* as deep as elements may go */
	start();
	for (int i = 0; i < DKV_MP_MAX_DEPTH; i++)
		dkv_mp_array(&enc_, 1);
	dkv_mp_uint(&enc_, 7);
	CHECK(round_trip(NULL, NULL));
	/* one deeper is refused both ways */
	struct dkv_buf deep = {0}, text = {0};
	dkv_mp_array(&deep, 1);
	dkv_buf_append(&deep, enc_.data, enc_.len);
	CHECK_EQ_INT(dkv_pathtext_format(&text, deep.data, deep.len, 0), -EINVAL);
	CHECK_EQ_INT(text.len, 0);
	dkv_buf_puts(&text, ":(");
	dkv_buf_append(&text, fmt(0), strlen(fmt(0)));
	dkv_buf_puts(&text, ",)");
	deep.len = 0;
	CHECK_EQ_INT(dkv_pathtext_parse(&deep, (char *)text.data, text.len, 0), -EINVAL);
	dkv_buf_release(&deep);
	dkv_buf_release(&text);
}

/* Pseudo-random elements: every FS text is a safe file name, and every
 * text parses back. */
static uint32_t rng_state = 12345;

static uint32_t rnd(uint32_t n)
{
	rng_state = rng_state * 1103515245u + 12345u;
	return (rng_state >> 8) % n;
}

static void random_elem(struct dkv_buf *b, int depth)
{
	static const char pool[] = "a:._/,()\0\xff\xc3\xa9 =\n\t\x7f\xc2\x85";
	uint8_t s[8];
	size_t n = rnd(6);
	switch (rnd(depth < 3 ? 8 : 7)) {
	case 0:
	case 1:
		for (size_t i = 0; i < n; i++)
			s[i] = (uint8_t)pool[rnd(sizeof pool - 1)];
		dkv_mp_str(b, s, n);
		break;
	case 2:
		for (size_t i = 0; i < n; i++)
			s[i] = (uint8_t)pool[rnd(sizeof pool - 1)];
		if (n)
			dkv_mp_bin(b, s, n);
		else
			dkv_mp_str(b, "", 0);
		break;
	case 3:
		dkv_mp_int(b, (int64_t)rnd(1000) - 500);
		break;
	case 4:
		dkv_mp_double(b, ((double)rnd(100000) - 50000) / (1 + rnd(1000)));
		break;
	case 5:
		dkv_mp_bool(b, rnd(2));
		break;
	case 6:
		dkv_mp_nil(b);
		break;
	case 7:
		dkv_mp_array(b, (uint32_t)n);
		for (size_t i = 0; i < n; i++)
			random_elem(b, depth + 1);
		break;
	}
}

TEST(fs_safety)
{
	int bad = 0;
	for (int i = 0; i < 3000; i++) {
		start();
		random_elem(&enc_, 0);
		if (!round_trip(NULL, NULL))
			bad++;
		const char *t = fmt(0);
		if (!one_line(t, strlen(t)))
			bad++;
		t = fmt(DKV_PT_FS);
		size_t n = strlen(t);
		if (!one_line(t, n))
			bad++;
		struct dkv_buf raw = {0};
		dkv_pathtext_format(&raw, enc_.data, enc_.len, DKV_PT_FS);
		if (raw.len != n || !n || strchr(t, '/') || t[0] == '.' || !strcmp(t, "_") ||
		    !strcmp(t, ".meta")) {
			printf("#   unsafe file name \"%s\"\n", t);
			bad++;
		}
		dkv_buf_release(&raw);
	}
	CHECK_EQ_INT(bad, 0);
}

static int refused(const char *text, unsigned flags)
{
	struct dkv_buf out = {0};
	dkv_buf_puts(&out, "keep");
	int rc = dkv_pathtext_parse(&out, text, strlen(text), flags);
	int ok = rc == -EINVAL && out.len == 4 && !memcmp(out.data, "keep", 4);
	if (!ok)
		printf("#   \"%s\" (flags %u) not refused cleanly (rc %d)\n", text, flags, rc);
	dkv_buf_release(&out);
	return ok;
}

TEST(invalid)
{
	static const char *bad[] = {
		"", ":", ":zzz", ":(1,", ":(", ":)", ":yXY", ":y1", ":u4", ":12abc", ":1.2.3",
		":e5", ":ee", ":tt", ":nn", ":-", ":+", ":0x", ":0xg", ":0b2", ":0o8", ":1e",
		":1e+", ":.", ":(,)", ":(a,,b)", ":(,a)", ":(a,,)", ":(a))", ":((a)", ":(a),(b)",
		":(:zz,)", ":-9223372036854775809", ":-18446744073709551616", "\xff",
		":(\xff,)", ":0x1.5", ":1_000", ": 1",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		CHECK(refused(bad[i], 0));
		CHECK(refused(bad[i], DKV_PT_FS));
	}
	/* file names hold no '/' whatever the form */
	CHECK(refused("a/b", DKV_PT_FS));
	CHECK(refused(":=a/b", DKV_PT_FS));
	CHECK(refused(":va/b", DKV_PT_FS));

	/* a hostile decimal is refused instead of converted slowly */
	struct dkv_buf t = {0}, out = {0};
	dkv_buf_putc(&t, ':');
	for (int i = 0; i < 100000; i++)
		dkv_buf_putc(&t, '9');
	CHECK_EQ_INT(dkv_pathtext_parse(&out, (char *)t.data, t.len, 0), -EINVAL);
	/* a long hex literal is fine */
	t.len = 0;
	dkv_buf_puts(&t, ":0x");
	for (int i = 0; i < 100000; i++)
		dkv_buf_putc(&t, 'f');
	CHECK_EQ_INT(dkv_pathtext_parse(&out, (char *)t.data, t.len, 0), 0);
	dkv_buf_release(&t);
	dkv_buf_release(&out);

	/* format refuses what is not one element */
	struct dkv_buf e = {0}, o = {0};
	dkv_mp_map(&e, 0);
	CHECK_EQ_INT(dkv_pathtext_format(&o, e.data, e.len, 0), -EINVAL);
	e.len = 0;
	dkv_mp_ext(&e, 5, "x", 1);
	CHECK_EQ_INT(dkv_pathtext_format(&o, e.data, e.len, 0), -EINVAL);
	e.len = 0;
	dkv_mp_uint(&e, 1), dkv_mp_uint(&e, 2);
	CHECK_EQ_INT(dkv_pathtext_format(&o, e.data, e.len, 0), -EINVAL);
	e.len = 0;
	dkv_mp_array(&e, 2), dkv_mp_uint(&e, 1);
	CHECK_EQ_INT(dkv_pathtext_format(&o, e.data, e.len, 0), -EINVAL);
	CHECK_EQ_INT(dkv_pathtext_format(&o, e.data, 0, 0), -EINVAL);
	CHECK_EQ_INT(o.len, 0);
	dkv_buf_release(&e);
	dkv_buf_release(&o);
}

/* Whole paths: the dotted form of YAML's !P tag. */
static int path_text_is(const uint8_t *elems, size_t len, const char *want)
{
	struct dkv_buf text = {0}, back = {0};
	int ok = 1;

	if (dkv_pathtext_format_path(&text, elems, len)) {
		printf("#   format_path failed\n");
		ok = 0;
	} else if (want && (text.len != strlen(want) || memcmp(text.data, want, text.len))) {
		printf("#   got \"%.*s\", want \"%s\"\n", (int)text.len, (char *)text.data, want);
		ok = 0;
	} else if (dkv_pathtext_parse_path(&back, (char *)text.data, text.len, NULL, NULL) ||
		   back.len != len || (len && memcmp(back.data, elems, len))) {
		printf("#   \"%.*s\" does not parse back\n", (int)text.len, (char *)text.data);
		ok = 0;
	}
	dkv_buf_release(&text);
	dkv_buf_release(&back);
	return ok;
}

/* text must be refused with rc, naming the element bad_elem (for -EINVAL),
 * and leave the output as it was. */
static int path_refused(const char *text, size_t len, int want_rc, const char *bad_elem)
{
	struct dkv_buf out = {0};
	const char *bad = NULL;
	size_t badlen = 0;
	int ok;

	dkv_buf_puts(&out, "keep");
	int rc = dkv_pathtext_parse_path(&out, text, len, &bad, &badlen);
	ok = rc == want_rc && out.len == 4 && !memcmp(out.data, "keep", 4);
	if (ok && bad_elem)
		ok = bad && badlen == strlen(bad_elem) && !memcmp(bad, bad_elem, badlen);
	if (!ok)
		printf("#   \"%.*s\" not refused as expected (rc %d)\n", (int)(len > 40 ? 40 : len),
		       text, rc);
	dkv_buf_release(&out);
	return ok;
}

TEST(whole_paths)
{
	struct dkv_buf p = {0};

	CHECK(path_text_is(NULL, 0, ":"));
	dkv_mp_cstr(&p, "a"), dkv_mp_cstr(&p, "b"), dkv_mp_int(&p, 5);
	CHECK(path_text_is(p.data, p.len, "a.b.:5"));

	/* dots and colons inside elements */
	static const char *tricky[][2] = {
		{"a.b", "a:.b"}, {"a:", "a::"}, {":x", ":::x"}, {"::", "::::::"}, {"x:.y", "x:::.y"},
		{".", ":."}, {":.:", ":::::.::"}, {"", ":e"}, {"a b", "a b"}, {":", "::::"},
	};
	for (size_t i = 0; i < sizeof tricky / sizeof tricky[0]; i++) {
		p.len = 0;
		dkv_mp_cstr(&p, tricky[i][0]);
		CHECK(path_text_is(p.data, p.len, tricky[i][1]));
		dkv_mp_cstr(&p, "z");
		struct dkv_buf want = {0};
		dkv_buf_printf(&want, "%s.z", tricky[i][1]);
		CHECK(path_text_is(p.data, p.len, dkv_buf_cstr(&want)));
		dkv_buf_release(&want);
	}
	for (int i = 0; i < 2000; i++) {
		p.len = 0;
		for (uint32_t k = rnd(5); k > 0; k--)
			random_elem(&p, 0);
		CHECK(path_text_is(p.data, p.len, NULL));
	}

	CHECK(path_refused("", 0, -EINVAL, ""));
	CHECK(path_refused("a..b", 4, -EINVAL, ""));
	CHECK(path_refused(".a", 2, -EINVAL, ""));
	CHECK(path_refused("a.", 2, -EINVAL, ""));
	CHECK(path_refused("a.:zz.b", 7, -EINVAL, ":zz"));
	CHECK(path_refused("::", 2, -EINVAL, "::"));
	CHECK(path_refused("a.\xff", 3, -EINVAL, "\xff"));

	/* DKV_PATH_MAX_ELEMS elements, and one more */
	struct dkv_buf t = {0}, out = {0};
	for (int i = 0; i < DKV_PATH_MAX_ELEMS; i++)
		dkv_buf_puts(&t, i ? ".a" : "a");
	CHECK_EQ_INT(dkv_pathtext_parse_path(&out, (char *)t.data, t.len, NULL, NULL), 0);
	CHECK_EQ_INT(out.len, 2 * DKV_PATH_MAX_ELEMS);
	dkv_buf_puts(&t, ".a");
	CHECK(path_refused((char *)t.data, t.len, -E2BIG, NULL));
	dkv_buf_release(&t);
	dkv_buf_release(&out);

	/* format refuses what is not a sequence of elements */
	struct dkv_buf o = {0};
	dkv_buf_puts(&o, "keep");
	p.len = 0;
	dkv_mp_cstr(&p, "a"), dkv_mp_map(&p, 0);
	CHECK_EQ_INT(dkv_pathtext_format_path(&o, p.data, p.len), -EINVAL);
	p.len = 0;
	dkv_mp_cstr(&p, "a"), dkv_mp_array(&p, 2), dkv_mp_uint(&p, 1);
	CHECK_EQ_INT(dkv_pathtext_format_path(&o, p.data, p.len), -EINVAL);
	CHECK_EQ_INT(o.len, 4);
	dkv_buf_release(&o);
	dkv_buf_release(&p);
}

TEARDOWN(release_buffers)
{
	dkv_buf_release(&enc_);
	dkv_buf_release(&text_);
}

TESTS(strings, control_characters, scalars, integers, big_integers, floats, bytes, tuples, fs_safety, invalid, whole_paths)
