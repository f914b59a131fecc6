/*
 * text.h - the small codecs our text notations share: UTF-8 checking,
 * hex, base64, big integers as digits and floats as the shortest decimal.
 *
 * Internal to the engine: the users are yaml.c (YAML text), json.c (JSON
 * text) and pathtext.c (the colon notation).  Every function appends to a struct dkv_buf and
 * none allocates anything the caller must free besides that buffer.
 */
#ifndef DKV_TEXT_H
#define DKV_TEXT_H

#include "mp.h"

/* ---- UTF-8 ---- */

/* Length (1 to 4) of the valid UTF-8 sequence at p[0..n), n > 0, or 0 when
 * there is none there.  Strict: no overlong forms, no surrogates
 * (U+D800-U+DFFF), nothing above U+10FFFF, no sequence cut short by n. */
size_t dkv__utf8_len(const uint8_t *p, size_t n);

/* Length of the longest prefix of p[0..n) that is valid UTF-8 in the
 * sense of dkv__utf8_len: n when all of it is, else the offset of the
 * first byte that starts no valid sequence. */
size_t dkv__utf8_prefix(const uint8_t *p, size_t n);

/* Whether p[0..n) is all valid UTF-8 in the sense of dkv__utf8_len. */
bool dkv__utf8_valid(const uint8_t *p, size_t n);

/* Append p[0..n) to out with each byte that does not belong to a valid
 * sequence replaced by U+FFFD. */
void dkv__utf8_sanitize(struct dkv_buf *out, const uint8_t *p, size_t n);

/* ---- hex ---- */

/* The value of the hex digit c (either case), or -1. */
int dkv__hexval(int c);

/* Append two lowercase hex digits for each byte of p[0..n). */
void dkv__hex_encode(struct dkv_buf *out, const uint8_t *p, size_t n);

/* Append the bytes that the hex text s[0..n) spells, two digits a byte
 * with nothing between them.  -EINVAL on an odd length or a character
 * that is not a hex digit; out is unchanged then. */
int dkv__hex_decode(struct dkv_buf *out, const char *s, size_t n);

/* ---- base64 (RFC 4648, the standard alphabet) ---- */

/* Append p[0..n) in base64, in lines of 76 characters that each end in
 * '\n' (as Python's base64.encodebytes() writes it).  Nothing for n == 0. */
void dkv__base64_encode(struct dkv_buf *out, const uint8_t *p, size_t n);

/* Decode base64 strictly and append the bytes: blanks and line breaks
 * (' ', '\t', '\r', '\n') anywhere are ignored; the remaining length must
 * be a multiple of 4; '=' may only pad the last group, at most twice; the
 * bits that padding leaves over must be zero.  So every byte string has
 * exactly one spelling.  -EINVAL with *why set to a short reason (a
 * static string) on any breach; out is unchanged then. */
int dkv__base64_decode(struct dkv_buf *out, const char *s, size_t n, const char **why);

/* ---- big integers: unsigned magnitudes as big-endian bytes ---- */

/* Append the decimal digits of the magnitude be[0..n) ("0" when it is
 * zero or n == 0).  Quadratic in n: callers bound n. */
void dkv__bigint_to_dec(struct dkv_buf *out, const uint8_t *be, size_t n);

/* Append the big-endian magnitude spelled by the digits s[0..n) in base
 * 2, 8, 10 or 16 (no sign, no prefix; hex digits in either case).  The
 * result may start with zero bytes.  -EINVAL when n == 0, the base is
 * another one, or a character is not a digit of the base; out is
 * unchanged then.  Base 10 is quadratic in n, so callers bound n; the
 * other bases are linear. */
int dkv__bigint_from_digits(struct dkv_buf *out, const char *s, size_t n, unsigned base);

/* Append the msgpack encoding of the integer with sign neg and magnitude
 * be[0..n) (leading zero bytes allowed; -0 is 0): the smallest int or uint
 * form, or an ext-2 big integer from 2^64 up.  -ERANGE when it is below
 * -2^63, which msgpack cannot hold; out is unchanged then. */
int dkv__bigint_put_int(struct dkv_buf *out, bool neg, const uint8_t *be, size_t n);

/* ---- floats ---- */

/* The shortest decimal that reads back as the finite v (as Python's repr()
 * picks it): positional for exponents -4..15, else d.ddde+XX.  Always with
 * a '.' and, in the exponent form, a signed exponent ("1.0", "1.0e+16",
 * "2.5e-07"): YAML 1.1 readers such as PyYAML take "1e+16" for a string,
 * and without the '.' an integral float would read back as an integer.
 * out needs room for 32 bytes.  Assumes LC_NUMERIC is "C". */
void dkv__double_repr(char *out, size_t size, double v);

#endif
