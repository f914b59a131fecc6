/*
 * text.c - UTF-8, hex, base64 and big-integer digits for our notations.
 *
 * YAML text (yaml.c), JSON text (json.c) and the colon notation
 * (pathtext.c) check UTF-8, spell bytes in hex or base64 and convert
 * integers of any size to and from digits; this is the one copy of each.  The texts are small (CLI words,
 * file names, YAML scalars), so plain loops win over tables and tricks.
 * The one cost that hostile input could blow up, decimal conversion of a
 * huge integer (quadratic), is bounded by the callers: each knows what
 * its text may hold and what error to give.
 */
#include "text.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- UTF-8 ---- */

/* libyaml's reader refuses overlong forms, surrogates and code points
 * above U+10FFFF, and the peers' msgpack decoders refuse them as strings;
 * what passes here is what both accept. */
size_t dkv__utf8_len(const uint8_t *p, size_t n)
{
	uint32_t c;
	size_t w;

	if (p[0] < 0x80)
		return 1;
	if ((p[0] & 0xe0) == 0xc0)
		w = 2, c = p[0] & 0x1f;
	else if ((p[0] & 0xf0) == 0xe0)
		w = 3, c = p[0] & 0x0f;
	else if ((p[0] & 0xf8) == 0xf0)
		w = 4, c = p[0] & 0x07;
	else
		return 0;
	if (w > n)
		return 0;
	for (size_t i = 1; i < w; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (p[i] & 0x3f);
	}
	if ((w == 2 && c < 0x80) || (w == 3 && c < 0x800) || (w == 4 && c < 0x10000) ||
	    (c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff)
		return 0;
	return w;
}

/* Every request's strings pass here (dkv_mp_find_bad_utf8), mostly
 * ASCII: runs of four words, then words, then single bytes of ASCII are
 * taken without a call. */
size_t dkv__utf8_prefix(const uint8_t *p, size_t n)
{
	size_t i = 0, w;
	while (i < n) {
		uint64_t word, w2, w3, w4;
		while (n - i >= 32) { /* long text: 32 bytes a round */
			memcpy(&word, p + i, 8);
			memcpy(&w2, p + i + 8, 8);
			memcpy(&w3, p + i + 16, 8);
			memcpy(&w4, p + i + 24, 8);
			if ((word | w2 | w3 | w4) & 0x8080808080808080u)
				break;
			i += 32;
		}
		if (i == n)
			break; /* the blocks took it all */
		if (n - i >= 8) {
			memcpy(&word, p + i, 8);
			if (!(word & 0x8080808080808080u)) {
				i += 8;
				continue;
			}
		}
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		if (!(w = dkv__utf8_len(p + i, n - i)))
			return i;
		i += w;
	}
	return n;
}

bool dkv__utf8_valid(const uint8_t *p, size_t n)
{
	return dkv__utf8_prefix(p, n) == n;
}

void dkv__utf8_sanitize(struct dkv_buf *out, const uint8_t *p, size_t n)
{
	for (size_t i = 0, w; i < n; i += w) {
		w = dkv__utf8_len(p + i, n - i);
		if (w) {
			dkv_buf_append(out, p + i, w);
		} else {
			dkv_buf_append(out, "\xef\xbf\xbd", 3);
			w = 1;
		}
	}
}

/* ---- hex ---- */

int dkv__hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

void dkv__hex_encode(struct dkv_buf *out, const uint8_t *p, size_t n)
{
	static const char digits[] = "0123456789abcdef";

	dkv_buf_reserve(out, 2 * n);
	for (size_t i = 0; i < n; i++) {
		out->data[out->len++] = (uint8_t)digits[p[i] >> 4];
		out->data[out->len++] = (uint8_t)digits[p[i] & 15];
	}
}

int dkv__hex_decode(struct dkv_buf *out, const char *s, size_t n)
{
	size_t mark = out->len;

	if (n % 2)
		return -EINVAL;
	dkv_buf_reserve(out, n / 2);
	for (size_t i = 0; i < n; i += 2) {
		int hi = dkv__hexval((unsigned char)s[i]), lo = dkv__hexval((unsigned char)s[i + 1]);
		if (hi < 0 || lo < 0) {
			out->len = mark;
			return -EINVAL;
		}
		out->data[out->len++] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

/* ---- base64 ---- */

static const char b64chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* 76-character lines because the original DistKV writes base64 with
 * Python's base64.encodebytes(), and people compare the two outputs. */
void dkv__base64_encode(struct dkv_buf *out, const uint8_t *p, size_t n)
{
	size_t col = 0;

	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		dkv_buf_putc(out, b64chars[v >> 18 & 63]);
		dkv_buf_putc(out, b64chars[v >> 12 & 63]);
		dkv_buf_putc(out, i + 1 < n ? b64chars[v >> 6 & 63] : '=');
		dkv_buf_putc(out, i + 2 < n ? b64chars[v & 63] : '=');
		col += 4;
		if (col == 76 || i + 3 >= n) {
			dkv_buf_putc(out, '\n');
			col = 0;
		}
	}
}

static int b64val(char c)
{
	const char *q = c ? strchr(b64chars, c) : NULL;
	return q ? (int)(q - b64chars) : -1;
}

/* Strict, as YAML's !!binary type defines base64: blanks and breaks are
 * skipped because emitters fold long values; everything else is held to
 * one spelling, so that a typo such as "zz" is refused instead of being
 * read as some byte. */
static int base64_decode(struct dkv_buf *out, const char *s, size_t n, const char **why)
{
	uint32_t acc = 0;
	size_t ndata = 0, npad = 0;

	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		int v;
		if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
			continue;
		if (c == '=') {
			npad++;
			continue;
		}
		v = b64val(c);
		if (v < 0) {
			*why = "a character outside the base64 alphabet";
			return -EINVAL;
		}
		if (npad) {
			*why = "'=' before the end";
			return -EINVAL;
		}
		acc = acc << 6 | (uint32_t)v;
		if (++ndata % 4 == 0) {
			dkv_buf_putc(out, (char)(acc >> 16));
			dkv_buf_putc(out, (char)(acc >> 8));
			dkv_buf_putc(out, (char)acc);
			acc = 0;
		}
	}
	/* With the length a multiple of 4 and at most two '=', the padding
	 * fits the last group: 2 data characters and "==", or 3 and "=". */
	if ((ndata + npad) % 4) {
		*why = "the length is not a multiple of 4 (missing or extra '=')";
		return -EINVAL;
	}
	if (npad > 2) {
		*why = "too much '=' padding";
		return -EINVAL;
	}
	if ((ndata % 4 == 2 && (acc & 0xf)) || (ndata % 4 == 3 && (acc & 0x3))) {
		*why = "the last character has bits set beyond the data";
		return -EINVAL;
	}
	if (ndata % 4 == 2)
		dkv_buf_putc(out, (char)(acc >> 4));
	if (ndata % 4 == 3) {
		dkv_buf_putc(out, (char)(acc >> 10));
		dkv_buf_putc(out, (char)(acc >> 2));
	}
	return 0;
}

int dkv__base64_decode(struct dkv_buf *out, const char *s, size_t n, const char **why)
{
	size_t mark = out->len;
	int rc = base64_decode(out, s, n, why);

	if (rc)
		out->len = mark;
	return rc;
}

/* ---- big integers ---- */

/* Division by 10^9 on 32-bit limbs: nine digits per pass over the number,
 * so the 1 KiB magnitudes that YAML writes in decimal stay quick. */
void dkv__bigint_to_dec(struct dkv_buf *out, const uint8_t *be, size_t n)
{
	size_t nl = (n + 3) / 4, top = 0;
	uint32_t *limb = dkv_xcalloc(nl ? nl : 1, sizeof *limb); /* most significant first */
	struct dkv_buf rev = {0};

	for (size_t i = 0; i < n; i++) {
		size_t bit = (n - 1 - i) * 8;
		limb[nl - 1 - bit / 32] |= (uint32_t)be[i] << (bit % 32);
	}
	for (;;) {
		uint64_t rem = 0;
		while (top < nl && !limb[top])
			top++;
		if (top == nl)
			break;
		for (size_t i = top; i < nl; i++) {
			uint64_t cur = rem << 32 | limb[i];
			limb[i] = (uint32_t)(cur / 1000000000u);
			rem = cur % 1000000000u;
		}
		/* nine digits of the remainder, least significant first */
		for (int d = 0; d < 9; d++, rem /= 10)
			dkv_buf_putc(&rev, (char)('0' + rem % 10));
	}
	while (rev.len > 1 && rev.data[rev.len - 1] == '0')
		rev.len--;
	if (!rev.len)
		dkv_buf_putc(&rev, '0');
	for (size_t i = rev.len; i > 0; i--)
		dkv_buf_putc(out, (char)rev.data[i - 1]);
	dkv_buf_release(&rev);
	free(limb);
}

/* Decimal: multiply-and-add on little-endian bytes. */
static void dec_to_bigint(struct dkv_buf *out, const char *s, size_t n)
{
	uint8_t *le = dkv_xcalloc(n / 2 + 2, 1);
	size_t used = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned carry = (unsigned)(s[i] - '0');
		for (size_t j = 0; j < used; j++) {
			carry += le[j] * 10u;
			le[j] = (uint8_t)carry;
			carry >>= 8;
		}
		if (carry)
			le[used++] = (uint8_t)carry;
	}
	for (size_t j = used; j > 0; j--)
		dkv_buf_putc(out, (char)le[j - 1]);
	free(le);
}

/* Powers of two: pack the digits' bits from the least significant up. */
static void pow2_to_bigint(struct dkv_buf *out, const char *s, size_t n, unsigned bits)
{
	unsigned have = 0;
	uint32_t acc = 0;
	struct dkv_buf le = {0};

	for (size_t i = n; i > 0; i--) {
		acc |= (uint32_t)dkv__hexval((unsigned char)s[i - 1]) << have;
		have += bits;
		if (have >= 8) {
			dkv_buf_putc(&le, (char)acc);
			acc >>= 8;
			have -= 8;
		}
	}
	if (have)
		dkv_buf_putc(&le, (char)acc);
	for (size_t j = le.len; j > 0; j--)
		dkv_buf_putc(out, (char)le.data[j - 1]);
	dkv_buf_release(&le);
}

int dkv__bigint_from_digits(struct dkv_buf *out, const char *s, size_t n, unsigned base)
{
	if (!n || (base != 2 && base != 8 && base != 10 && base != 16))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		int v = dkv__hexval((unsigned char)s[i]);
		if (v < 0 || (unsigned)v >= base)
			return -EINVAL;
	}
	if (base == 10)
		dec_to_bigint(out, s, n);
	else
		pow2_to_bigint(out, s, n, base == 16 ? 4 : base == 8 ? 3 : 1);
	return 0;
}

int dkv__bigint_put_int(struct dkv_buf *out, bool neg, const uint8_t *be, size_t n)
{
	uint64_t mag = 0;

	while (n && !*be)
		be++, n--;
	if (!neg || !n) {
		dkv_mp_bigint(out, be, n);
		return 0;
	}
	if (n > 8)
		return -ERANGE;
	for (size_t i = 0; i < n; i++)
		mag = mag << 8 | be[i];
	if (mag > (uint64_t)INT64_MAX + 1)
		return -ERANGE;
	/* -2^63 has no positive twin in int64_t */
	dkv_mp_int(out, mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag);
	return 0;
}

/* ---- floats ---- */

void dkv__double_repr(char *out, size_t size, double v)
{
	char tmp[40], digits[20], buf[48];
	int prec, exp, nd = 0;
	const char *p;
	size_t o = 0;

	for (prec = 1; prec < 17; prec++) {
		snprintf(tmp, sizeof tmp, "%.*e", prec - 1, v);
		if (strtod(tmp, NULL) == v)
			break;
	}
	snprintf(tmp, sizeof tmp, "%.*e", prec - 1, v);
	p = tmp;
	if (*p == '-')
		buf[o++] = *p++;
	for (; *p != 'e'; p++)
		if (*p >= '0' && *p <= '9')
			digits[nd++] = *p;
	exp = atoi(p + 1);
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	if (exp < -4 || exp >= 16) {
		buf[o++] = digits[0];
		buf[o++] = '.';
		for (int i = 1; i < nd; i++)
			buf[o++] = digits[i];
		if (nd == 1)
			buf[o++] = '0';
		snprintf(buf + o, sizeof buf - o, "e%c%02d", exp < 0 ? '-' : '+', abs(exp));
	} else if (exp < 0) {
		buf[o++] = '0';
		buf[o++] = '.';
		for (int i = -1; i > exp; i--)
			buf[o++] = '0';
		for (int i = 0; i < nd; i++)
			buf[o++] = digits[i];
		buf[o] = 0;
	} else {
		for (int i = 0; i <= exp; i++)
			buf[o++] = i < nd ? digits[i] : '0';
		buf[o++] = '.';
		for (int i = exp + 1; i < nd; i++)
			buf[o++] = digits[i];
		if (nd <= exp + 1)
			buf[o++] = '0';
		buf[o] = 0;
	}
	snprintf(out, size, "%s", buf);
}
