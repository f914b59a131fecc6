/*
 * yaml.c - msgpack values as YAML text and back.
 *
 * libyaml does the syntax (its emitter and its event parser); this file
 * decides what a scalar means.  Reading is YAML 1.2 core schema.  Writing
 * is for every reader: a string is quoted when our reader, a YAML 1.1
 * reader (PyYAML) or another common one would take it for anything but
 * that string (plain_is_string), numbers are spelled so that both
 * families read the same number, and bytes use the standard !!binary.
 * The text is for people (CLI output, config files, `_` files), so the
 * values are small and clarity wins over speed.
 *
 * Tags beyond the core schema:
 *   !!binary        bytes in base64 (strict RFC 4648; blanks and line breaks
 *                   ignored); the only form written for bytes
 *   !bin text       bytes given as ASCII text (read only)
 *   !hex aa:bb      bytes in hex, ':' and blanks between bytes optional (read only)
 *   !P a.b.:5       a path (ext type 3) as pathtext.h writes whole paths; ":" is the root
 *   !R name         a proxy object (ext type 4)
 *   !ext 5:aabb     any other ext type: type number, ':', payload in hex
 *                   (also a proxy whose name is not UTF-8)
 *   !nonutf8 61ff   a msgpack string that is not UTF-8: its bytes in hex
 * Readers that do not know the last four stop with an error (PyYAML's
 * safe_load: "could not determine a constructor"); none reads them as
 * something else.
 */
#include "yamltext.h"

#include <yaml.h>
#include "path.h"
#include "pathtext.h"
#include "text.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TAG_CORE "tag:yaml.org,2002:"
#define TAG_STR TAG_CORE "str"
#define TAG_INT TAG_CORE "int"
#define TAG_FLOAT TAG_CORE "float"
#define TAG_BOOL TAG_CORE "bool"
#define TAG_NULL TAG_CORE "null"
#define TAG_BINARY TAG_CORE "binary"
#define TAG_SEQ TAG_CORE "seq"
#define TAG_MAP TAG_CORE "map"

/* Python refuses to convert integers of more decimal digits than this
 * (CVE-2020-10735), and for the same reason so do we: the conversion is
 * quadratic.  Hex and octal are converted in linear time. */
#define MAX_DEC_DIGITS 4300
/* Bigger ext-2 integers are written in hex, which reads back in linear time. */
#define MAX_DEC_BYTES 1024

/* ---- the core schema resolver ---- */

enum kind { K_STR, K_NULL, K_BOOL, K_INT, K_FLOAT };

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_word(const char *s, size_t n, const char *w)
{
	return strlen(w) == n && !memcmp(s, w, n);
}

static bool all_of(const char *s, size_t n, bool (*pred)(char))
{
	if (!n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!pred(s[i]))
			return false;
	return true;
}

static bool is_octdigit(char c)
{
	return c >= '0' && c <= '7';
}

static bool is_hexdigit(char c)
{
	return dkv__hexval((unsigned char)c) >= 0;
}

/* [-+]?[0-9]+ | 0o[0-7]+ | 0x[0-9a-fA-F]+ */
static bool is_int(const char *s, size_t n)
{
	if (n > 2 && s[0] == '0' && s[1] == 'o')
		return all_of(s + 2, n - 2, is_octdigit);
	if (n > 2 && s[0] == '0' && s[1] == 'x')
		return all_of(s + 2, n - 2, is_hexdigit);
	if (n && (s[0] == '-' || s[0] == '+'))
		s++, n--;
	return all_of(s, n, is_digit);
}

static bool is_inf(const char *s, size_t n)
{
	if (n && (s[0] == '-' || s[0] == '+'))
		s++, n--;
	return is_word(s, n, ".inf") || is_word(s, n, ".Inf") || is_word(s, n, ".INF");
}

static bool is_nan(const char *s, size_t n)
{
	return is_word(s, n, ".nan") || is_word(s, n, ".NaN") || is_word(s, n, ".NAN");
}

/* [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
 * plus the infinities and NaN. */
static bool is_float(const char *s, size_t n)
{
	size_t i = 0, d = 0;

	if (is_inf(s, n) || is_nan(s, n))
		return true;
	if (i < n && (s[i] == '-' || s[i] == '+'))
		i++;
	while (i < n && is_digit(s[i]))
		i++, d++;
	if (i < n && s[i] == '.') {
		i++;
		while (i < n && is_digit(s[i]))
			i++, d++;
	}
	if (!d)
		return false;
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		size_t e = 0;
		i++;
		if (i < n && (s[i] == '-' || s[i] == '+'))
			i++;
		while (i < n && is_digit(s[i]))
			i++, e++;
		if (!e)
			return false;
	}
	return i == n;
}

/* What an untagged plain scalar means. */
static enum kind resolve(const char *s, size_t n)
{
	if (!n || is_word(s, n, "~") || is_word(s, n, "null") || is_word(s, n, "Null") ||
	    is_word(s, n, "NULL"))
		return K_NULL;
	if (is_word(s, n, "true") || is_word(s, n, "True") || is_word(s, n, "TRUE") ||
	    is_word(s, n, "false") || is_word(s, n, "False") || is_word(s, n, "FALSE"))
		return K_BOOL;
	if (is_int(s, n))
		return K_INT;
	if (is_float(s, n))
		return K_FLOAT;
	return K_STR;
}

/* ---- what other readers make of a plain scalar ---- */

/*
 * Our reader is YAML 1.2 core, but our text is read as well by YAML 1.1
 * readers (PyYAML and the tools built on libyaml, Ruby's Psych, Go's
 * yaml.v2) and by 1.2 readers with extras of their own (yaml.v3,
 * js-yaml).  A string is written plain only when none of them would take
 * it for something else.  The tests below are a superset of their
 * resolvers, deliberately simple: they quote a few strings that need no
 * quotes ("1.2.3", "192.168.0.1", "2024-01-01 lunch"), never too few.
 */

static bool is_word_nocase(const char *s, size_t n, const char *w)
{
	return strlen(w) == n && !strncasecmp(s, w, n);
}

/* Booleans and nulls of YAML 1.1 (y, n, yes, no, on, off in any case:
 * the spec lists three spellings of each, readers differ on the rest),
 * and the 1.1 types "merge" (<<) and "value" (=), which PyYAML refuses
 * to load at all. */
static bool is_special_word(const char *s, size_t n)
{
	static const char *const words[] = {"y", "n", "yes", "no", "on", "off", "true",
					    "false", "null", "~", "=", "<<"};
	for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
		if (is_word_nocase(s, n, words[i]))
			return true;
	return false;
}

static bool all_in(const char *s, size_t n, const char *set)
{
	if (!n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!s[i] || !strchr(set, s[i]))
			return false;
	return true;
}

/* Digits with 1.1's '_' and Psych's ',' between them, sexagesimal ':'
 * parts (12:30), a fraction with any further dots (1.1's float pattern
 * allows "1.2.3"), an exponent with or without sign. */
static bool is_decimal_like(const char *s, size_t n)
{
	size_t i = 0, e;

	while (i < n && (is_digit(s[i]) || s[i] == '_' || s[i] == ',' || s[i] == ':'))
		i++;
	if (i < n && s[i] == '.')
		while (++i < n && (is_digit(s[i]) || s[i] == '_' || s[i] == ',' || s[i] == '.'))
			;
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		if (++i < n && (s[i] == '-' || s[i] == '+'))
			i++;
		for (e = i; i < n && (is_digit(s[i]) || s[i] == '_'); i++)
			;
		if (i == e)
			return false;
	}
	return i == n;
}

/* Integers and floats in any reader's syntax: a sign, then 0x/0o/0b
 * (either case, with '_' or ','), digits as above, or .5, ., .inf, .nan
 * in any case. */
static bool is_number_like(const char *s, size_t n)
{
	if (n && (s[0] == '-' || s[0] == '+'))
		s++, n--;
	if (!n)
		return false;
	if (s[0] == '.') /* the 1.1 spec's float pattern even takes "." */
		return is_word_nocase(s, n, ".inf") || is_word_nocase(s, n, ".nan") ||
		       all_in(s, n, "0123456789._") ||
		       (n > 1 && is_digit(s[1]) && is_decimal_like(s, n));
	if (!is_digit(s[0]))
		return false;
	if (n > 1 && s[0] == '0') {
		switch (s[1]) {
		case 'x':
		case 'X':
			return all_in(s + 2, n - 2, "0123456789abcdefABCDEF_,");
		case 'o':
		case 'O':
			return all_in(s + 2, n - 2, "01234567_,");
		case 'b':
		case 'B':
			return all_in(s + 2, n - 2, "01_,");
		}
	}
	return is_decimal_like(s, n);
}

/* 1.1 timestamps, and Psych's with a leading '-': YYYY-M... */
static bool is_date_like(const char *s, size_t n)
{
	if (n && s[0] == '-')
		s++, n--;
	return n >= 6 && all_of(s, 4, is_digit) && s[4] == '-' && is_digit(s[5]);
}

/* Does the plain scalar s read back as the string s in every reader we
 * know?  A leading ':' makes a symbol in Psych. */
static bool plain_is_string(const char *s, size_t n)
{
	return resolve(s, n) == K_STR && !is_special_word(s, n) && !is_number_like(s, n) &&
	       !is_date_like(s, n) && !(n && s[0] == ':');
}

/* ---- errors ---- */

struct errbuf {
	char *msg;
	size_t len;
};

__attribute__((format(printf, 3, 4))) static int fail(struct errbuf *e, yaml_mark_t m,
						       const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!e->msg || !e->len)
		return -EINVAL;
	n = snprintf(e->msg, e->len, "line %zu, column %zu: ", m.line + 1, m.column + 1);
	if (n >= 0 && (size_t)n < e->len) {
		va_start(ap, fmt);
		vsnprintf(e->msg + n, e->len - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* ---- emitting ---- */

static int write_cb(void *data, unsigned char *p, size_t n)
{
	dkv_buf_append(data, p, n);
	return 1;
}

static int emit_event(yaml_emitter_t *e, yaml_event_t *ev, int ok)
{
	if (!ok || !yaml_emitter_emit(e, ev))
		return -EBADMSG;
	return 0;
}

static int emit_scalar(yaml_emitter_t *e, const char *tag, const void *text, size_t len,
		       bool plain_implicit, yaml_scalar_style_t style)
{
	yaml_event_t ev;
	int ok;

	if (len > INT_MAX)
		return -EBADMSG;
	if (!text)
		text = ""; /* an empty dkv_buf has no data; libyaml insists on some */
	ok = yaml_scalar_event_initialize(&ev, NULL, (yaml_char_t *)tag, (yaml_char_t *)text,
					  (int)len, plain_implicit, tag == NULL, style);
	return emit_event(e, &ev, ok);
}

/* A scalar that resolves by itself: null, bools, numbers. */
static int emit_plain(yaml_emitter_t *e, const char *text)
{
	return emit_scalar(e, NULL, text, strlen(text), true, YAML_PLAIN_SCALAR_STYLE);
}

/*
 * Multi-line text reads best as a literal block.  Not when
 *  - it ends in empty lines: the document would end in them too;
 *  - it starts with a blank or a break: libyaml then writes an explicit
 *    indentation indicator, which dkv_yaml_emit_indented() would break;
 *  - it holds a break other than '\n' (CR, NEL, LS, PS): libyaml writes
 *    those raw, and they would end lines that our indenter does not see.
 * Double quotes escape all of these.
 */
static yaml_scalar_style_t text_style(const uint8_t *p, size_t n)
{
	bool nl = false;

	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\r' || (p[i] == 0xc2 && i + 1 < n && p[i + 1] == 0x85) ||
		    (p[i] == 0xe2 && i + 2 < n && p[i + 1] == 0x80 &&
		     (p[i + 2] == 0xa8 || p[i + 2] == 0xa9)))
			return YAML_DOUBLE_QUOTED_SCALAR_STYLE;
		if (p[i] == '\n')
			nl = true;
	}
	if (!nl)
		return YAML_ANY_SCALAR_STYLE;
	if (p[0] == ' ' || p[0] == '\n' || (p[n - 1] == '\n' && n > 1 && p[n - 2] == '\n'))
		return YAML_DOUBLE_QUOTED_SCALAR_STYLE;
	return YAML_LITERAL_SCALAR_STYLE;
}

/* A msgpack string that is not UTF-8 cannot be YAML text: it is written
 * as !nonutf8 with its bytes in hex, which our reader turns back into the
 * same string and other readers refuse (clients cannot store one: see
 * dkv__msg_check_text; old logs and peers may still bring one). */
static int emit_str(yaml_emitter_t *e, const uint8_t *p, size_t n)
{
	struct dkv_buf hex = {0};
	int rc;

	if (dkv__utf8_valid(p, n))
		return emit_scalar(e, NULL, p, n, plain_is_string((const char *)p, n),
				   text_style(p, n));
	dkv__hex_encode(&hex, p, n);
	rc = emit_scalar(e, "!nonutf8", hex.data, hex.len, false, YAML_ANY_SCALAR_STYLE);
	dkv_buf_release(&hex);
	return rc;
}

/* YAML's standard tag, which every reader knows, as the original wrote
 * bytes: one plain line when the base64 fits in 76 columns (57 bytes),
 * else a literal block of 76-column lines. */
#define B64_LINE_BYTES 57

static int emit_bytes(yaml_emitter_t *e, const uint8_t *p, size_t n)
{
	struct dkv_buf t = {0};
	bool block = n > B64_LINE_BYTES;
	int rc;

	dkv__base64_encode(&t, p, n);
	if (!block && t.len)
		t.len--; /* the one line's '\n' */
	rc = emit_scalar(e, TAG_BINARY, t.data, t.len, false,
			 block	  ? YAML_LITERAL_SCALAR_STYLE
			 : t.len ? YAML_ANY_SCALAR_STYLE
				 : YAML_SINGLE_QUOTED_SCALAR_STYLE); /* "!!binary ''" */
	dkv_buf_release(&t);
	return rc;
}

static int emit_bigint(yaml_emitter_t *e, const uint8_t *p, size_t n)
{
	struct dkv_buf t = {0};
	int rc;

	if (n <= MAX_DEC_BYTES) {
		dkv__bigint_to_dec(&t, p, n);
	} else {
		while (n > 1 && !*p)
			p++, n--;
		dkv_buf_puts(&t, "0x");
		dkv__hex_encode(&t, p, n);
	}
	rc = emit_scalar(e, NULL, t.data, t.len, true, YAML_PLAIN_SCALAR_STYLE);
	dkv_buf_release(&t);
	return rc;
}

static int emit_ext_raw(yaml_emitter_t *e, int8_t type, const uint8_t *p, size_t n)
{
	struct dkv_buf t = {0};
	int rc;

	dkv_buf_printf(&t, "%d:", type);
	dkv__hex_encode(&t, p, n);
	rc = emit_scalar(e, "!ext", t.data, t.len, false, YAML_ANY_SCALAR_STYLE);
	dkv_buf_release(&t);
	return rc;
}

static int emit_ext(yaml_emitter_t *e, const struct dkv_mp_item *it)
{
	const uint8_t *p = it->v.ext.p;
	size_t n = it->v.ext.len;
	struct dkv_buf t = {0};
	int rc;

	switch (it->v.ext.type) {
	case DKV_EXT_BIGINT:
		return emit_bigint(e, p, n);
	case DKV_EXT_PATH:
		if (dkv_pathtext_format_path(&t, p, n)) {
			rc = emit_ext_raw(e, it->v.ext.type, p, n);
			break;
		}
		rc = emit_scalar(e, "!P", t.data, t.len, false, YAML_ANY_SCALAR_STYLE);
		break;
	case DKV_EXT_PROXY:
		if (!dkv__utf8_valid(p, n)) /* a name that is no text: as it is */
			return emit_ext_raw(e, it->v.ext.type, p, n);
		rc = emit_scalar(e, "!R", p, n, false, YAML_ANY_SCALAR_STYLE);
		break;
	default:
		return emit_ext_raw(e, it->v.ext.type, p, n);
	}
	dkv_buf_release(&t);
	return rc;
}

/* Emit the (already validated) item at r. */
static int emit_node(yaml_emitter_t *e, struct dkv_mp_reader *r)
{
	struct dkv_mp_item it;
	yaml_event_t ev;
	char num[48];
	int rc;

	if (dkv_mp_read(r, &it))
		return -EBADMSG;
	switch (it.type) {
	case DKV_MP_NIL:
		return emit_plain(e, "null");
	case DKV_MP_BOOL:
		return emit_plain(e, it.v.b ? "true" : "false");
	case DKV_MP_UINT:
		snprintf(num, sizeof num, "%" PRIu64, it.v.u);
		return emit_plain(e, num);
	case DKV_MP_INT:
		snprintf(num, sizeof num, "%" PRId64, it.v.i);
		return emit_plain(e, num);
	case DKV_MP_FLOAT:
		if (isnan(it.v.f))
			return emit_plain(e, ".nan");
		if (isinf(it.v.f))
			return emit_plain(e, it.v.f > 0 ? ".inf" : "-.inf");
		dkv__double_repr(num, sizeof num, it.v.f);
		return emit_plain(e, num);
	case DKV_MP_STR:
		return emit_str(e, it.v.s.p, it.v.s.len);
	case DKV_MP_BIN:
		return emit_bytes(e, it.v.s.p, it.v.s.len);
	case DKV_MP_EXT:
		return emit_ext(e, &it);
	case DKV_MP_ARRAY:
		rc = emit_event(e, &ev,
				yaml_sequence_start_event_initialize(
					&ev, NULL, NULL, 1,
					it.v.n ? YAML_BLOCK_SEQUENCE_STYLE : YAML_FLOW_SEQUENCE_STYLE));
		for (uint32_t i = 0; !rc && i < it.v.n; i++)
			rc = emit_node(e, r);
		return rc ? rc : emit_event(e, &ev, yaml_sequence_end_event_initialize(&ev));
	case DKV_MP_MAP:
		rc = emit_event(e, &ev,
				yaml_mapping_start_event_initialize(
					&ev, NULL, NULL, 1,
					it.v.n ? YAML_BLOCK_MAPPING_STYLE : YAML_FLOW_MAPPING_STYLE));
		for (uint64_t i = 0; !rc && i < 2 * (uint64_t)it.v.n; i++)
			rc = emit_node(e, r);
		return rc ? rc : emit_event(e, &ev, yaml_mapping_end_event_initialize(&ev));
	}
	return -EBADMSG;
}

/* Emit one document into out (which is empty). */
static int emit_doc(struct dkv_buf *out, const uint8_t *mp, size_t len)
{
	struct dkv_mp_reader r;
	yaml_emitter_t e;
	yaml_event_t ev;
	int rc;

	dkv_mp_reader_init(&r, mp, len);
	if (dkv_mp_skip(&r) || dkv_mp_left(&r))
		return -EBADMSG;
	dkv_mp_reader_init(&r, mp, len);

	if (!yaml_emitter_initialize(&e))
		return -EBADMSG;
	yaml_emitter_set_output(&e, write_cb, out);
	yaml_emitter_set_unicode(&e, 1);
	yaml_emitter_set_indent(&e, 2);
	yaml_emitter_set_width(&e, -1); /* never fold long lines */
	yaml_emitter_set_break(&e, YAML_LN_BREAK);

	rc = emit_event(&e, &ev, yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING));
	if (!rc)
		rc = emit_event(&e, &ev,
				yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1));
	if (!rc)
		rc = emit_node(&e, &r);
	if (!rc)
		rc = emit_event(&e, &ev, yaml_document_end_event_initialize(&ev, 1));
	if (!rc)
		rc = emit_event(&e, &ev, yaml_stream_end_event_initialize(&ev));
	if (!rc && !yaml_emitter_flush(&e))
		rc = -EBADMSG;
	yaml_emitter_delete(&e);
	if (rc)
		return rc;

	/* Depending on its version, libyaml ends some documents with "..."
	 * (after a plain root scalar or a "|+" block) or starts a root block
	 * scalar with "--- "; one document on its own needs neither. */
	if (out->len >= 4 && !memcmp(out->data + out->len - 4, "...\n", 4) &&
	    (out->len == 4 || out->data[out->len - 5] == '\n'))
		out->len -= 4;
	if (out->len >= 4 && !memcmp(out->data, "--- ", 4))
		dkv_buf_consume(out, 4);
	if (!out->len || out->data[out->len - 1] != '\n')
		dkv_buf_putc(out, '\n');
	return 0;
}

int dkv_yaml_emit(struct dkv_buf *out, const uint8_t *mp, size_t len)
{
	return dkv_yaml_emit_indented(out, mp, len, 0);
}

/* Empty lines get no indentation: trailing blanks help nobody, and a
 * YAML reader treats an empty line inside a block scalar the same way. */
int dkv_yaml_emit_indented(struct dkv_buf *out, const uint8_t *mp, size_t len, unsigned indent)
{
	struct dkv_buf doc = {0};
	int rc = emit_doc(&doc, mp, len);

	if (!rc) {
		size_t i = 0;
		while (i < doc.len) {
			const uint8_t *nl = memchr(doc.data + i, '\n', doc.len - i);
			size_t end = nl ? (size_t)(nl - doc.data) + 1 : doc.len;
			if (doc.data[i] != '\n')
				for (unsigned k = 0; k < indent; k++)
					dkv_buf_putc(out, ' ');
			dkv_buf_append(out, doc.data + i, end - i);
			i = end;
		}
	}
	dkv_buf_release(&doc);
	return rc;
}

/* ---- parsing ---- */

struct anchor {
	char *name;
	uint8_t *mp; /* the anchored node's encoding */
	size_t len;
};

struct parser {
	yaml_parser_t p;
	struct dkv_buf *out;
	struct errbuf err;
	const char *text; /* the input, for error positions */
	size_t len;
	struct anchor *anchors;
	size_t nanchors;
	size_t alias_budget; /* bytes that aliases may still add: stops "billion laughs" */
};

/* libyaml ends a stream that lacks a final newline by moving to the start
 * of a line after it; "line 2, column 1" for an error in the one-line
 * value "[1" would puzzle anyone, so point just past the last character. */
static yaml_mark_t clamp_mark(const struct parser *ps, yaml_mark_t m)
{
	if (!ps->len || m.index < ps->len || ps->text[ps->len - 1] == '\n')
		return m;
	m = (yaml_mark_t){0};
	for (size_t i = 0; i < ps->len; i++) {
		if (ps->text[i] == '\n')
			m.line++, m.column = 0;
		else if (((uint8_t)ps->text[i] & 0xc0) != 0x80)
			m.column++;
	}
	return m;
}

static int parser_fail(struct parser *ps)
{
	yaml_parser_t *p = &ps->p;
	yaml_mark_t m = clamp_mark(ps, p->problem_mark), cm = clamp_mark(ps, p->context_mark);

	switch (p->error) {
	case YAML_MEMORY_ERROR:
		return fail(&ps->err, m, "out of memory");
	case YAML_READER_ERROR:
		/* the reader knows the byte offset only */
		m = (yaml_mark_t){0};
		for (size_t i = 0; i < p->problem_offset; i++) {
			if (ps->text[i] == '\n')
				m.line++, m.column = 0;
			else if (((uint8_t)ps->text[i] & 0xc0) != 0x80)
				m.column++;
		}
		return fail(&ps->err, m, "%s", p->problem ? p->problem : "invalid input");
	default:
		if (p->context)
			return fail(&ps->err, m, "%s (%s at line %zu, column %zu)",
				    p->problem ? p->problem : "syntax error", p->context,
				    cm.line + 1, cm.column + 1);
		return fail(&ps->err, m, "%s", p->problem ? p->problem : "syntax error");
	}
}

static int next_event(struct parser *ps, yaml_event_t *ev)
{
	if (!yaml_parser_parse(&ps->p, ev))
		return parser_fail(ps);
	return 0;
}

/* Insert the msgpack header hdr[0..n) at offset at of the output. */
static void insert_at(struct dkv_buf *b, size_t at, const uint8_t *hdr, size_t n)
{
	dkv_buf_reserve(b, n);
	memmove(b->data + at + n, b->data + at, b->len - at);
	memcpy(b->data + at, hdr, n);
	b->len += n;
}

static int parse_int(struct parser *ps, const yaml_event_t *ev, const char *s, size_t n)
{
	struct dkv_buf be = {0};
	bool neg = false;
	unsigned base = 10;
	int rc;

	if (n > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o')) {
		base = s[1] == 'x' ? 16 : 8;
		s += 2, n -= 2;
	} else if (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-';
		s++, n--;
	}
	if (base == 10 && n > MAX_DEC_DIGITS)
		return fail(&ps->err, ev->start_mark, "integer has more than %d digits",
			    MAX_DEC_DIGITS);
	rc = dkv__bigint_from_digits(&be, s, n, base);
	if (!rc)
		rc = dkv__bigint_put_int(ps->out, neg, be.data, be.len);
	dkv_buf_release(&be);
	if (rc == -ERANGE)
		return fail(&ps->err, ev->start_mark, "integer out of range (less than -2**63)");
	if (rc) /* resolve() let through something that is not an integer */
		return fail(&ps->err, ev->start_mark, "'%.*s' is not an integer",
			    (int)(n > 40 ? 40 : n), s);
	return 0;
}

static void parse_float(struct parser *ps, const char *s, size_t n)
{
	char *t;

	if (is_nan(s, n)) {
		dkv_mp_double(ps->out, NAN);
	} else if (is_inf(s, n)) {
		dkv_mp_double(ps->out, s[0] == '-' ? -INFINITY : INFINITY);
	} else {
		/* NEEDSWORK: strtod follows LC_NUMERIC; our programs stay in the C locale. */
		t = dkv_xstrndup(s, n);
		dkv_mp_double(ps->out, strtod(t, NULL));
		free(t);
	}
}

/* A scalar with its kind already known to match. */
static int put_kind(struct parser *ps, const yaml_event_t *ev, enum kind k, const char *s,
		    size_t n)
{
	switch (k) {
	case K_NULL:
		dkv_mp_nil(ps->out);
		return 0;
	case K_BOOL:
		dkv_mp_bool(ps->out, s[0] == 't' || s[0] == 'T');
		return 0;
	case K_INT:
		return parse_int(ps, ev, s, n);
	case K_FLOAT:
		parse_float(ps, s, n);
		return 0;
	case K_STR:
		break;
	}
	dkv_mp_str(ps->out, s, n);
	return 0;
}

static int parse_hex_bytes(struct parser *ps, const yaml_event_t *ev, const char *s, size_t n)
{
	struct dkv_buf b = {0};

	for (size_t i = 0; i < n;) {
		if (s[i] == ':' || s[i] == ' ' || s[i] == '\n' || s[i] == '\t') {
			i++;
			continue;
		}
		if (i + 1 >= n || dkv__hex_decode(&b, s + i, 2)) {
			dkv_buf_release(&b);
			return fail(&ps->err, ev->start_mark, "!hex: not a hex byte string");
		}
		i += 2;
	}
	dkv_mp_bin(ps->out, b.data, b.len);
	dkv_buf_release(&b);
	return 0;
}

static int parse_path(struct parser *ps, const yaml_event_t *ev, const char *s, size_t n)
{
	struct dkv_buf enc = {0};
	const char *bad = NULL;
	size_t badlen = 0;
	int rc = dkv_pathtext_parse_path(&enc, s, n, &bad, &badlen);

	if (rc == -E2BIG)
		rc = fail(&ps->err, ev->start_mark, "!P: path has too many elements");
	else if (rc)
		rc = fail(&ps->err, ev->start_mark, "!P: bad path element '%.*s'", (int)badlen, bad);
	else
		dkv_path_encode(ps->out, enc.data, enc.len);
	dkv_buf_release(&enc);
	return rc;
}

static int parse_ext(struct parser *ps, const yaml_event_t *ev, const char *s, size_t n)
{
	struct dkv_buf b = {0};
	char *end;
	char *t = dkv_xstrndup(s, n);
	long type = strtol(t, &end, 10);
	int rc = 0;

	if (end == t || *end != ':' || type < -128 || type > 127 || strlen(t) != n ||
	    dkv__hex_decode(&b, end + 1, strlen(end + 1)))
		rc = fail(&ps->err, ev->start_mark, "!ext: expected TYPE:HEX");
	if (!rc) {
		if (type == DKV_EXT_BIGINT)
			dkv_mp_bigint(ps->out, b.data, b.len);
		else
			dkv_mp_ext(ps->out, (int8_t)type, b.data, b.len);
	}
	dkv_buf_release(&b);
	free(t);
	return rc;
}

/* "!nonutf8 61ff62": a msgpack string of any bytes, in hex (two digits a
 * byte, nothing between them), as emit_str writes one. */
static int parse_nonutf8(struct parser *ps, const yaml_event_t *ev, const char *s, size_t n)
{
	struct dkv_buf b = {0};
	int rc = dkv__hex_decode(&b, s, n);

	if (rc)
		rc = fail(&ps->err, ev->start_mark, "!nonutf8: expected hex digits, two a byte");
	else
		dkv_mp_str(ps->out, b.data, b.len);
	dkv_buf_release(&b);
	return rc;
}

static int parse_scalar(struct parser *ps, const yaml_event_t *ev)
{
	const char *tag = (const char *)ev->data.scalar.tag;
	const char *s = (const char *)ev->data.scalar.value;
	size_t n = ev->data.scalar.length;
	enum kind k;

	if (!tag) {
		if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
			k = K_STR;
		else
			k = resolve(s, n);
		return put_kind(ps, ev, k, s, n);
	}
	if (!strcmp(tag, "!") || !strcmp(tag, TAG_STR))
		return put_kind(ps, ev, K_STR, s, n);
	if (!strcmp(tag, TAG_NULL) || !strcmp(tag, TAG_BOOL) || !strcmp(tag, TAG_INT) ||
	    !strcmp(tag, TAG_FLOAT)) {
		const char *want = tag + strlen(TAG_CORE);
		k = resolve(s, n);
		if (k == K_INT && !strcmp(want, "float") && !(n > 1 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o')))
			k = K_FLOAT; /* "!!float 5" */
		if (!((k == K_NULL && !strcmp(want, "null")) || (k == K_BOOL && !strcmp(want, "bool")) ||
		      (k == K_INT && !strcmp(want, "int")) || (k == K_FLOAT && !strcmp(want, "float"))))
			return fail(&ps->err, ev->start_mark, "'%.*s' is not a valid !!%s",
				    (int)(n > 40 ? 40 : n), s, want);
		return put_kind(ps, ev, k, s, n);
	}
	if (!strcmp(tag, "!bin")) {
		for (size_t i = 0; i < n; i++)
			if ((uint8_t)s[i] >= 0x80)
				return fail(&ps->err, ev->start_mark, "!bin: text is not ASCII");
		dkv_mp_bin(ps->out, s, n);
		return 0;
	}
	if (!strcmp(tag, "!hex"))
		return parse_hex_bytes(ps, ev, s, n);
	if (!strcmp(tag, TAG_BINARY)) {
		struct dkv_buf b = {0};
		const char *why = NULL;
		int rc = dkv__base64_decode(&b, s, n, &why);
		if (rc)
			rc = fail(&ps->err, ev->start_mark, "!!binary: not valid base64: %s", why);
		else
			dkv_mp_bin(ps->out, b.data, b.len);
		dkv_buf_release(&b);
		return rc;
	}
	if (!strcmp(tag, "!P"))
		return parse_path(ps, ev, s, n);
	if (!strcmp(tag, "!R")) {
		dkv_mp_ext(ps->out, DKV_EXT_PROXY, s, n);
		return 0;
	}
	if (!strcmp(tag, "!ext"))
		return parse_ext(ps, ev, s, n);
	if (!strcmp(tag, "!nonutf8"))
		return parse_nonutf8(ps, ev, s, n);
	return fail(&ps->err, ev->start_mark, "unknown tag %s", tag);
}

static void remember_anchor(struct parser *ps, const yaml_char_t *name, size_t from)
{
	struct anchor *a = NULL;

	for (size_t i = 0; i < ps->nanchors; i++)
		if (!strcmp(ps->anchors[i].name, (const char *)name))
			a = &ps->anchors[i];
	if (!a) {
		ps->anchors = dkv_xrealloc(ps->anchors, (ps->nanchors + 1) * sizeof *ps->anchors);
		a = &ps->anchors[ps->nanchors++];
		a->name = dkv_xstrdup((const char *)name);
	} else {
		free(a->mp);
	}
	a->len = ps->out->len - from;
	a->mp = dkv_xmalloc(a->len ? a->len : 1);
	memcpy(a->mp, ps->out->data + from, a->len);
}

static int parse_alias(struct parser *ps, const yaml_event_t *ev)
{
	const char *name = (const char *)ev->data.alias.anchor;

	for (size_t i = ps->nanchors; i > 0; i--) {
		struct anchor *a = &ps->anchors[i - 1];
		if (strcmp(a->name, name))
			continue;
		if (a->len > ps->alias_budget)
			return fail(&ps->err, ev->start_mark, "aliases expand to too much data");
		ps->alias_budget -= a->len;
		dkv_buf_append(ps->out, a->mp, a->len);
		return 0;
	}
	return fail(&ps->err, ev->start_mark, "unknown anchor '%s'", name);
}

struct key_ref {
	size_t off, len; /* the key's encoding within the output */
	yaml_mark_t mark;
	const uint8_t *base;
};

static int key_cmp(const void *a, const void *b)
{
	const struct key_ref *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->base + x->off, y->base + y->off, n);
	if (c)
		return c;
	return x->len < y->len ? -1 : x->len > y->len;
}

/* YAML forbids duplicate keys and a msgpack map with two equal keys would
 * mean different things to different readers. */
static int check_dup_keys(struct parser *ps, struct key_ref *keys, size_t n)
{
	if (n < 2)
		return 0;
	for (size_t i = 0; i < n; i++)
		keys[i].base = ps->out->data;
	qsort(keys, n, sizeof *keys, key_cmp);
	for (size_t i = 1; i < n; i++) {
		if (key_cmp(&keys[i - 1], &keys[i]))
			continue;
		yaml_mark_t m = keys[i].mark;
		if (keys[i - 1].mark.index > m.index)
			m = keys[i - 1].mark;
		return fail(&ps->err, m, "duplicate key");
	}
	return 0;
}

static int parse_node(struct parser *ps, const yaml_event_t *ev, int depth);

/* The items of a sequence or mapping, up to its end event. */
static int parse_collection(struct parser *ps, const yaml_event_t *start, int depth)
{
	bool map = start->type == YAML_MAPPING_START_EVENT;
	const char *tag = (const char *)(map ? start->data.mapping_start.tag
					     : start->data.sequence_start.tag);
	size_t from = ps->out->len, count = 0;
	struct key_ref *keys = NULL;
	struct dkv_buf hdr = {0};
	yaml_event_t ev;
	int rc = 0;

	if (depth >= DKV_MP_MAX_DEPTH)
		return fail(&ps->err, start->start_mark, "nested too deeply (more than %d levels)",
			    DKV_MP_MAX_DEPTH);
	if (tag && strcmp(tag, "!") && strcmp(tag, map ? TAG_MAP : TAG_SEQ))
		return fail(&ps->err, start->start_mark, "unknown tag %s", tag);
	for (;;) {
		size_t at = ps->out->len;
		rc = next_event(ps, &ev);
		if (rc)
			break;
		if (ev.type == YAML_SEQUENCE_END_EVENT || ev.type == YAML_MAPPING_END_EVENT) {
			yaml_event_delete(&ev);
			break;
		}
		rc = parse_node(ps, &ev, depth + 1);
		if (!rc && map && count % 2 == 0) {
			keys = dkv_xrealloc(keys, (count / 2 + 1) * sizeof *keys);
			keys[count / 2] = (struct key_ref){at, ps->out->len - at, ev.start_mark, NULL};
		}
		yaml_event_delete(&ev);
		if (rc)
			break;
		count++;
	}
	if (!rc && count > UINT32_MAX)
		rc = fail(&ps->err, start->start_mark, "too many items");
	if (!rc && map)
		rc = check_dup_keys(ps, keys, count / 2);
	if (!rc) {
		if (map)
			dkv_mp_map(&hdr, (uint32_t)(count / 2));
		else
			dkv_mp_array(&hdr, (uint32_t)count);
		insert_at(ps->out, from, hdr.data, hdr.len);
	}
	dkv_buf_release(&hdr);
	free(keys);
	return rc;
}

/* Append the value of the node that starts with ev. */
static int parse_node(struct parser *ps, const yaml_event_t *ev, int depth)
{
	size_t from = ps->out->len;
	const yaml_char_t *anchor = NULL;
	int rc;

	switch (ev->type) {
	case YAML_ALIAS_EVENT:
		return parse_alias(ps, ev);
	case YAML_SCALAR_EVENT:
		anchor = ev->data.scalar.anchor;
		rc = parse_scalar(ps, ev);
		break;
	case YAML_SEQUENCE_START_EVENT:
		anchor = ev->data.sequence_start.anchor;
		rc = parse_collection(ps, ev, depth);
		break;
	case YAML_MAPPING_START_EVENT:
		anchor = ev->data.mapping_start.anchor;
		rc = parse_collection(ps, ev, depth);
		break;
	default:
		return fail(&ps->err, ev->start_mark, "unexpected YAML event");
	}
	if (!rc && anchor)
		remember_anchor(ps, anchor, from);
	return rc;
}

/* One document: from the event after DOCUMENT-START up to DOCUMENT-END. */
static int parse_document(struct parser *ps)
{
	yaml_event_t ev;
	int rc = next_event(ps, &ev);

	if (rc)
		return rc;
	rc = parse_node(ps, &ev, 0);
	yaml_event_delete(&ev);
	if (rc)
		return rc;
	rc = next_event(ps, &ev);
	if (rc)
		return rc;
	if (ev.type != YAML_DOCUMENT_END_EVENT)
		rc = fail(&ps->err, ev.start_mark, "expected the end of the document");
	yaml_event_delete(&ev);
	return rc;
}

static int parse_docs(struct dkv_buf *out, const char *text, size_t len, size_t *ndocs,
		      bool single, char *err, size_t errlen)
{
	struct parser ps = {.out = out, .err = {err, errlen}, .text = text, .len = len};
	size_t old = out->len, n = 0;
	yaml_event_t ev;
	int rc = 0;

	if (err && errlen)
		err[0] = 0;
	ps.alias_budget = len < (1u << 20) / 16 ? 1u << 20 : 16 * len;
	if (!yaml_parser_initialize(&ps.p))
		return fail(&ps.err, (yaml_mark_t){0}, "out of memory");
	yaml_parser_set_input_string(&ps.p, (const unsigned char *)(text ? text : ""), len);
	for (;;) {
		rc = next_event(&ps, &ev);
		if (rc)
			break;
		yaml_event_type_t t = ev.type;
		yaml_mark_t m = ev.start_mark;
		yaml_event_delete(&ev);
		if (t == YAML_STREAM_END_EVENT)
			break;
		if (t != YAML_DOCUMENT_START_EVENT)
			continue; /* STREAM-START */
		if (single && n) {
			rc = fail(&ps.err, m, "expected a single document, found another one");
			break;
		}
		/* aliases do not reach across documents */
		for (size_t i = 0; i < ps.nanchors; i++) {
			free(ps.anchors[i].name);
			free(ps.anchors[i].mp);
		}
		ps.nanchors = 0;
		rc = parse_document(&ps);
		if (rc)
			break;
		n++;
	}
	if (!rc && single && !n)
		dkv_mp_nil(out);
	for (size_t i = 0; i < ps.nanchors; i++) {
		free(ps.anchors[i].name);
		free(ps.anchors[i].mp);
	}
	free(ps.anchors);
	yaml_parser_delete(&ps.p);
	if (rc) {
		out->len = old;
		return rc;
	}
	*ndocs = n;
	return 0;
}

int dkv_yaml_parse(struct dkv_buf *out, const char *text, size_t len, char *err, size_t errlen)
{
	size_t n;
	return parse_docs(out, text, len, &n, true, err, errlen);
}

int dkv_yaml_parse_stream(struct dkv_buf *out, const char *text, size_t len, size_t *ndocs,
			  char *err, size_t errlen)
{
	return parse_docs(out, text, len, ndocs, false, err, errlen);
}
