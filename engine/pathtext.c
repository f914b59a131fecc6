/*
 * pathtext.c - the colon notation for path elements, and whole paths in it.
 *
 * Turns one canonical element encoding into one word of text and back;
 * also a whole path into its dotted form, which YAML's !P tag uses.
 * The words are typed by people on a command line and shown as directory
 * names in the mount, so the common case (a short UTF-8 string) stays
 * plain and everything else is spelled with a leading ':'.  The one hard
 * rule is the round trip: parse(format(e)) yields exactly e, for every
 * element, in both modes.  The second: format() writes one line, since
 * `dkv data list` prints one name per line and `ls` shows these names.
 *
 * Texts are short (file names are at most 255 bytes), so the code favours
 * simple passes over the text over cleverness.  Decimal conversion of big
 * integers is quadratic; it is capped so that hostile input stays cheap.
 *
 * Floats go through snprintf/strtod, which assume LC_NUMERIC is "C": no
 * program of ours calls setlocale() for numbers.
 */
#include "pathtext.h"
#include "path.h"
#include "text.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Internal flag: formatting an item of a tuple, where ',', '(' and ')'
 * would confuse the split. */
#define PT_ITEM 0x100u

/* Magnitudes up to this many bytes are written in decimal; larger ones in
 * hex, which converts in linear time.  64 bytes is about 154 digits. */
#define BIG_DEC_MAX_BYTES 64
/* Longest decimal literal parse() converts (about 1700 bytes). */
#define BIG_DEC_MAX_DIGITS 4096

/* ---- helpers ---- */

static bool has_any(const uint8_t *s, size_t n, const char *set)
{
	for (size_t i = 0; i < n; i++)
		if (memchr(set, s[i], strlen(set) + 1)) /* the set's NUL counts */
			return true;
	return false;
}

/* Whether UTF-8 text s[0..n) holds a character that must not appear in a
 * printed name: the control characters (U+0000-U+001F, U+007F-U+009F) and
 * the line and paragraph separators U+2028 and U+2029.  Names are printed
 * one per line and pasted back as shell words; each of these would split
 * a line for some reader (Python's splitlines() splits at \x1c-\x1e, \x85,
 * U+2028 and U+2029 too), drive the terminal, or hide in a word. */
static bool has_control(const uint8_t *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] < 0x20 || s[i] == 0x7f)
			return true;
		if (s[i] == 0xc2 && i + 1 < n && s[i + 1] >= 0x80 && s[i + 1] < 0xa0)
			return true;
		if (s[i] == 0xe2 && i + 2 < n && s[i + 1] == 0x80 &&
		    (s[i + 2] == 0xa8 || s[i + 2] == 0xa9))
			return true;
	}
	return false;
}

/* ---- format ---- */

static void format_str(struct dkv_buf *out, const uint8_t *s, size_t n, unsigned flags)
{
	/* Characters that force the hex form besides the controls. */
	const char *hexset = (flags & PT_ITEM) ? (flags & DKV_PT_FS ? "/,()" : ",()")
					       : (flags & DKV_PT_FS ? "/" : "");

	if (!n) {
		dkv_buf_puts(out, ":e");
	} else if (has_control(s, n) || has_any(s, n, hexset) || !dkv__utf8_valid(s, n)) {
		dkv_buf_puts(out, ":u");
		dkv__hex_encode(out, s, n);
	} else if (s[0] == ':') {
		dkv_buf_putc(out, ':');
		dkv_buf_append(out, s, n);
	} else if ((flags & DKV_PT_FS) && (s[0] == '.' || (n == 1 && s[0] == '_'))) {
		dkv_buf_puts(out, ":=");
		dkv_buf_append(out, s, n);
	} else {
		dkv_buf_append(out, s, n);
	}
}

static void format_bin(struct dkv_buf *out, const uint8_t *s, size_t n, unsigned flags)
{
	bool printable = true;
	for (size_t i = 0; i < n && printable; i++)
		printable = s[i] >= 0x20 && s[i] < 0x7f;
	if (printable && (flags & DKV_PT_FS) && memchr(s, '/', n))
		printable = false;
	if (printable && (flags & PT_ITEM) && has_any(s, n, ",()"))
		printable = false;
	dkv_buf_puts(out, printable ? ":v" : ":y");
	if (printable)
		dkv_buf_append(out, s, n);
	else
		dkv__hex_encode(out, s, n);
}

/* A big-endian magnitude of any length, in decimal when it is short. */
static void format_big(struct dkv_buf *out, const uint8_t *be, size_t n)
{
	while (n && !*be)
		be++, n--;
	if (n > BIG_DEC_MAX_BYTES) {
		dkv_buf_puts(out, ":0x");
		dkv__hex_encode(out, be, n);
		return;
	}
	dkv_buf_putc(out, ':');
	dkv__bigint_to_dec(out, be, n);
}

static void format_float(struct dkv_buf *out, double v)
{
	char s[40];

	if (isnan(v)) {
		/* NEEDSWORK: a NaN's payload bits are lost; only the sign is kept. */
		dkv_buf_puts(out, signbit(v) ? ":-nan" : ":nan");
		return;
	}
	if (isinf(v)) {
		dkv_buf_puts(out, v < 0 ? ":-inf" : ":inf");
		return;
	}
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(s, sizeof s, "%.*g", prec, v);
		if (strtod(s, NULL) == v)
			break;
	}
	dkv_buf_putc(out, ':');
	dkv_buf_puts(out, s);
	if (!strpbrk(s, ".e"))
		dkv_buf_puts(out, ".0"); /* else it would read back as an integer */
}

static int format_item(struct dkv_buf *out, struct dkv_mp_reader *r, unsigned flags, int depth)
{
	struct dkv_mp_item it;
	int rc = dkv_mp_read(r, &it);
	if (rc)
		return -EINVAL;

	switch (it.type) {
	case DKV_MP_NIL:
		dkv_buf_puts(out, ":n");
		return 0;
	case DKV_MP_BOOL:
		dkv_buf_puts(out, it.v.b ? ":t" : ":f");
		return 0;
	case DKV_MP_UINT:
		dkv_buf_printf(out, ":%llu", (unsigned long long)it.v.u);
		return 0;
	case DKV_MP_INT:
		dkv_buf_printf(out, ":%lld", (long long)it.v.i);
		return 0;
	case DKV_MP_FLOAT:
		format_float(out, it.v.f);
		return 0;
	case DKV_MP_STR:
		format_str(out, it.v.s.p, it.v.s.len, flags);
		return 0;
	case DKV_MP_BIN:
		format_bin(out, it.v.s.p, it.v.s.len, flags);
		return 0;
	case DKV_MP_EXT:
		if (it.v.ext.type != DKV_EXT_BIGINT)
			return -EINVAL;
		format_big(out, it.v.ext.p, it.v.ext.len);
		return 0;
	case DKV_MP_ARRAY:
		if (depth >= DKV_MP_MAX_DEPTH)
			return -EINVAL;
		dkv_buf_puts(out, ":(");
		for (uint32_t i = 0; i < it.v.n; i++) {
			if (i)
				dkv_buf_putc(out, ',');
			rc = format_item(out, r, flags | PT_ITEM, depth + 1);
			if (rc)
				return rc;
		}
		dkv_buf_puts(out, it.v.n == 1 ? ",)" : ")");
		return 0;
	case DKV_MP_MAP:
		return -EINVAL;
	}
	return -EINVAL;
}

int dkv_pathtext_format(struct dkv_buf *out, const uint8_t *elem, size_t len, unsigned flags)
{
	struct dkv_mp_reader r;
	size_t mark = out->len;
	int rc;

	dkv_mp_reader_init(&r, elem, len);
	rc = format_item(out, &r, flags & DKV_PT_FS, 0);
	if (!rc && dkv_mp_left(&r))
		rc = -EINVAL; /* more than one element */
	if (rc)
		out->len = mark;
	return rc;
}

/* ---- parse ---- */

static bool digit_in_base(int c, unsigned base)
{
	int v = dkv__hexval(c);
	return v >= 0 && (unsigned)v < base;
}

/* Parse an integer literal: [+-] then decimal digits, or 0x / 0o / 0b and
 * digits of that base.  1 if s is not an integer literal at all (it may be
 * a float), 0 when one was appended, -EINVAL when it is out of range. */
static int parse_int(struct dkv_buf *out, const char *s, size_t n)
{
	bool neg = false;
	unsigned base = 10;
	struct dkv_buf num = {0};
	int rc;

	if (n && (s[0] == '+' || s[0] == '-'))
		neg = s[0] == '-', s++, n--;
	if (n > 2 && s[0] == '0') {
		switch (s[1]) {
		case 'x': case 'X': base = 16; break;
		case 'o': case 'O': base = 8; break;
		case 'b': case 'B': base = 2; break;
		}
		if (base != 10)
			s += 2, n -= 2;
	}
	if (!n)
		return 1;
	for (size_t i = 0; i < n; i++)
		if (!digit_in_base((unsigned char)s[i], base))
			return 1;
	/* Only decimal converts in quadratic time, but the limit has always
	 * applied to octal and binary as well; hex is linear and unlimited. */
	if (base != 16 && n > BIG_DEC_MAX_DIGITS)
		return -EINVAL;
	rc = dkv__bigint_from_digits(&num, s, n, base);
	if (!rc)
		rc = dkv__bigint_put_int(out, neg, num.data, num.len) ? -EINVAL : 0;
	dkv_buf_release(&num);
	return rc;
}

static bool word_is(const char *s, size_t n, const char *w)
{
	size_t wl = strlen(w);
	if (n != wl)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (c != w[i])
			return false;
	}
	return true;
}

/* What Python's float() accepts for decimals (but no underscores), plus
 * inf, infinity and nan in any case. */
static bool float_syntax(const char *s, size_t n)
{
	size_t i = 0, mant = 0, exp = 0;

	if (n && (s[0] == '+' || s[0] == '-'))
		s++, n--;
	if (word_is(s, n, "inf") || word_is(s, n, "infinity") || word_is(s, n, "nan"))
		return true;
	while (i < n && s[i] >= '0' && s[i] <= '9')
		i++, mant++;
	if (i < n && s[i] == '.')
		for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++)
			mant++;
	if (!mant)
		return false;
	if (i == n)
		return true;
	if (s[i] != 'e' && s[i] != 'E')
		return false;
	i++;
	if (i < n && (s[i] == '+' || s[i] == '-'))
		i++;
	for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
		exp++;
	return exp && i == n;
}

static int parse_float(struct dkv_buf *out, const char *s, size_t n)
{
	char *buf;

	if (!float_syntax(s, n))
		return -EINVAL;
	buf = dkv_xstrndup(s, n);
	dkv_mp_double(out, strtod(buf, NULL));
	free(buf);
	return 0;
}

static int parse_text(struct dkv_buf *out, const char *s, size_t n, unsigned flags, int depth);

/* The inside of ":( ... )": items split at commas outside parentheses. */
static int parse_tuple(struct dkv_buf *out, const char *s, size_t n, unsigned flags, int depth)
{
	struct dkv_buf items = {0};
	uint32_t count = 0;
	size_t start = 0;
	int level = 0, rc = 0;

	if (depth >= DKV_MP_MAX_DEPTH)
		return -EINVAL;
	for (size_t i = 0; i <= n && !rc; i++) {
		if (i < n && s[i] == '(') {
			level++;
		} else if (i < n && s[i] == ')') {
			if (--level < 0)
				rc = -EINVAL;
		} else if (i == n || (s[i] == ',' && !level)) {
			/* A single trailing comma ends a non-empty tuple. */
			bool trailing = i == n && start == n && count > 0 && s[n - 1] == ',';
			if (i == n && level)
				rc = -EINVAL;
			else if (n == 0 || trailing)
				;
			else if (i == start)
				rc = -EINVAL;
			else if ((rc = parse_text(&items, s + start, i - start, flags, depth + 1)) == 0)
				count++;
			start = i + 1;
		}
	}
	if (!rc) {
		dkv_mp_array(out, count);
		dkv_buf_append(out, items.data, items.len);
	}
	dkv_buf_release(&items);
	return rc;
}

/* Everything after the leading ':'. */
static int parse_colon(struct dkv_buf *out, const char *s, size_t n, unsigned flags, int depth)
{
	struct dkv_buf tmp = {0};
	int rc;

	if (!n)
		return -EINVAL;
	if (n == 1) {
		switch (s[0]) {
		case 'e': dkv_mp_str(out, "", 0); return 0;
		case 't': dkv_mp_bool(out, true); return 0;
		case 'f': dkv_mp_bool(out, false); return 0;
		case 'n': dkv_mp_nil(out); return 0;
		}
	}
	switch (s[0]) {
	case ':':
		dkv_mp_str(out, s, n); /* keeps the second colon */
		return 0;
	case '=':
		dkv_mp_str(out, s + 1, n - 1);
		return 0;
	case 'v':
		/* The empty byte string is canonically the empty string. */
		if (n == 1)
			dkv_mp_str(out, "", 0);
		else
			dkv_mp_bin(out, s + 1, n - 1);
		return 0;
	case 'u':
	case 'y':
		rc = dkv__hex_decode(&tmp, s + 1, n - 1);
		if (!rc && s[0] == 'u')
			dkv_mp_str(out, tmp.data, tmp.len);
		else if (!rc && tmp.len)
			dkv_mp_bin(out, tmp.data, tmp.len);
		else if (!rc)
			dkv_mp_str(out, "", 0);
		dkv_buf_release(&tmp);
		return rc;
	case '(':
		if (s[n - 1] != ')')
			return -EINVAL;
		return parse_tuple(out, s + 1, n - 2, flags, depth);
	}
	rc = parse_int(out, s, n);
	if (rc <= 0)
		return rc;
	return parse_float(out, s, n);
}

static int parse_text(struct dkv_buf *out, const char *s, size_t n, unsigned flags, int depth)
{
	if (!n)
		return -EINVAL;
	if (s[0] == ':')
		return parse_colon(out, s + 1, n - 1, flags, depth);
	/* Strings go out as msgpack str, which peers decode as UTF-8; invalid
	 * bytes can still be named with the :u form. */
	if (!dkv__utf8_valid((const uint8_t *)s, n))
		return -EINVAL;
	dkv_mp_str(out, s, n);
	return 0;
}

int dkv_pathtext_parse(struct dkv_buf *out, const char *text, size_t len, unsigned flags)
{
	size_t mark = out->len;
	int rc;

	if ((flags & DKV_PT_FS) && len && (memchr(text, '/', len) || memchr(text, 0, len)))
		return -EINVAL;
	rc = parse_text(out, text, len, flags & DKV_PT_FS, 0);
	if (rc)
		out->len = mark;
	return rc;
}

/* ---- whole paths ---- */

/* Reading left to right, ":." and "::" are the only escapes and a bare
 * '.' separates elements, so the split is unambiguous; a ':' that is not
 * followed by ':' or '.' stands for itself, so that ":5" stays ":5". */
static void path_escape(struct dkv_buf *out, const uint8_t *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '.')
			dkv_buf_puts(out, ":.");
		else if (s[i] == ':' && (i + 1 == n || s[i + 1] == ':' || s[i + 1] == '.'))
			dkv_buf_puts(out, "::");
		else
			dkv_buf_putc(out, s[i]);
	}
}

static bool is_escape(const char *s, size_t i, size_t n)
{
	return s[i] == ':' && i + 1 < n && (s[i + 1] == ':' || s[i + 1] == '.');
}

int dkv_pathtext_format_path(struct dkv_buf *out, const uint8_t *elems, size_t len)
{
	struct dkv_mp_reader r;
	struct dkv_buf el = {0};
	size_t mark = out->len;
	int rc = 0;

	if (!len) {
		dkv_buf_putc(out, ':');
		return 0;
	}
	dkv_mp_reader_init(&r, elems, len);
	while (dkv_mp_left(&r)) {
		const uint8_t *start = r.p;
		if (dkv_mp_skip(&r)) {
			rc = -EINVAL;
			break;
		}
		el.len = 0;
		rc = dkv_pathtext_format(&el, start, (size_t)(r.p - start), 0);
		if (rc)
			break;
		if (start != elems)
			dkv_buf_putc(out, '.');
		path_escape(out, el.data, el.len);
	}
	if (rc)
		out->len = mark;
	dkv_buf_release(&el);
	return rc;
}

/* Undo path_escape for one element and parse it. */
static int parse_path_elem(struct dkv_buf *out, const char *s, size_t n)
{
	struct dkv_buf t = {0};
	int rc;

	for (size_t i = 0; i < n; i++) {
		if (is_escape(s, i, n))
			i++;
		dkv_buf_putc(&t, s[i]);
	}
	rc = dkv_pathtext_parse(out, (const char *)t.data, t.len, 0);
	dkv_buf_release(&t);
	return rc;
}

int dkv_pathtext_parse_path(struct dkv_buf *out, const char *text, size_t len, const char **bad,
			    size_t *badlen)
{
	size_t mark = out->len, start = 0, nel = 0;
	int rc = 0;

	if (len == 1 && text[0] == ':')
		return 0;
	for (size_t i = 0; i <= len && !rc; i++) {
		if (i < len && is_escape(text, i, len)) {
			i++;
			continue;
		}
		if (i < len && text[i] != '.')
			continue;
		if (++nel > DKV_PATH_MAX_ELEMS) {
			rc = -E2BIG;
		} else if (parse_path_elem(out, text + start, i - start)) {
			rc = -EINVAL;
			if (bad)
				*bad = text + start, *badlen = i - start;
		}
		start = i + 1;
	}
	if (rc)
		out->len = mark;
	return rc;
}
