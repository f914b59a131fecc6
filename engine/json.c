/*
 * json.c - msgpack values as one line of JSON (the mapping is in
 * jsontext.h and doc/formats.md).
 *
 * Written for `-o json` on the CLI: one document per value or per entry
 * of a stream, read by jq or a JSON library, never by us.  A dump of a
 * large subtree goes through here once per entry, so the writer works in
 * one pass straight from the msgpack bytes, without an object tree.
 */
#include "jsontext.h"

#include "path.h"
#include "pathtext.h"
#include "text.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* Integers of more bytes than this are written as hex strings: decimal
 * conversion is quadratic, and Python refuses more than 4300 digits. */
#define MAX_DEC_BYTES 1024

static void put_escaped(struct dkv_buf *out, const uint8_t *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t from = 0;

	dkv_buf_putc(out, '"');
	for (size_t i = 0; i < n; i++) {
		uint8_t c = s[i];
		const char *esc = NULL;
		char u[7];

		if (c == '"')
			esc = "\\\"";
		else if (c == '\\')
			esc = "\\\\";
		else if (c == '\n')
			esc = "\\n";
		else if (c == '\t')
			esc = "\\t";
		else if (c == '\r')
			esc = "\\r";
		else if (c < 0x20 || c == 0x7f) {
			snprintf(u, sizeof u, "\\u00%c%c", hex[c >> 4], hex[c & 15]);
			esc = u;
		} else if (c == 0xe2 && i + 2 < n && s[i + 1] == 0x80 &&
			   (s[i + 2] == 0xa8 || s[i + 2] == 0xa9)) {
			/* U+2028, U+2029: valid JSON, but they end lines in JavaScript */
			esc = s[i + 2] == 0xa8 ? "\\u2028" : "\\u2029";
			dkv_buf_append(out, s + from, i - from);
			dkv_buf_puts(out, esc);
			i += 2;
			from = i + 1;
			continue;
		}
		if (!esc)
			continue;
		dkv_buf_append(out, s + from, i - from);
		dkv_buf_puts(out, esc);
		from = i + 1;
	}
	dkv_buf_append(out, s + from, n - from);
	dkv_buf_putc(out, '"');
}

void dkv_json_string(struct dkv_buf *out, const uint8_t *s, size_t n)
{
	struct dkv_buf clean = {0};

	if (!dkv__utf8_valid(s, n)) {
		dkv__utf8_sanitize(&clean, s, n);
		s = clean.data;
		n = clean.len;
	}
	put_escaped(out, s ? s : (const uint8_t *)"", n);
	dkv_buf_release(&clean);
}

/* {"MARK": ...: the caller writes the value and the closing brace. */
static void open_marker(struct dkv_buf *out, const char *mark)
{
	dkv_buf_printf(out, "{\"%s\":", mark);
}

static void put_base64(struct dkv_buf *out, const uint8_t *p, size_t n)
{
	struct dkv_buf t = {0};

	dkv__base64_encode(&t, p, n);
	/* one string: drop the line breaks of the 76-column lines */
	size_t o = 0;
	for (size_t i = 0; i < t.len; i++)
		if (t.data[i] != '\n')
			t.data[o++] = t.data[i];
	dkv_buf_putc(out, '"');
	dkv_buf_append(out, t.data, o);
	dkv_buf_putc(out, '"');
	dkv_buf_release(&t);
}

static void put_bigint(struct dkv_buf *out, const uint8_t *p, size_t n)
{
	if (n <= MAX_DEC_BYTES) {
		dkv__bigint_to_dec(out, p, n);
		return;
	}
	struct dkv_buf hex = {0};
	size_t skip = 0;

	dkv__hex_encode(&hex, p, n);
	while (skip + 1 < hex.len && hex.data[skip] == '0')
		skip++;
	open_marker(out, ":int");
	dkv_buf_puts(out, "\"0x");
	dkv_buf_append(out, hex.data + skip, hex.len - skip);
	dkv_buf_puts(out, "\"}");
	dkv_buf_release(&hex);
}

static void put_double(struct dkv_buf *out, double v)
{
	char num[40];

	if (isnan(v) || isinf(v)) {
		open_marker(out, ":float");
		dkv_buf_puts(out, isnan(v) ? "\"nan\"}" : v > 0 ? "\"inf\"}" : "\"-inf\"}");
		return;
	}
	dkv__double_repr(num, sizeof num, v);
	dkv_buf_puts(out, num);
}

static int put_node(struct dkv_buf *out, struct dkv_mp_reader *r);

/* The elements of a path, as a JSON array. */
static int put_path(struct dkv_buf *out, const uint8_t *p, size_t n)
{
	struct dkv_mp_reader r;
	int rc = 0;

	dkv_mp_reader_init(&r, p, n);
	dkv_buf_putc(out, '[');
	for (bool first = true; !rc && dkv_mp_left(&r); first = false) {
		if (!first)
			dkv_buf_putc(out, ',');
		rc = put_node(out, &r);
	}
	dkv_buf_putc(out, ']');
	return rc;
}

/* Is p[0..n) a sequence of path elements? */
static bool is_path(const uint8_t *p, size_t n)
{
	struct dkv_buf scratch = {0};
	struct dkv_mp_reader r;
	bool ok = true;

	dkv_mp_reader_init(&r, p, n);
	while (ok && dkv_mp_left(&r)) {
		scratch.len = 0;
		ok = dkv_path_elem_canon(&scratch, &r) == 0;
	}
	dkv_buf_release(&scratch);
	return ok;
}

static void put_raw_ext(struct dkv_buf *out, int8_t type, const uint8_t *p, size_t n)
{
	open_marker(out, ":ext");
	dkv_buf_printf(out, "[%d,", type);
	put_base64(out, p, n);
	dkv_buf_puts(out, "]}");
}

static int put_ext(struct dkv_buf *out, const struct dkv_mp_item *it)
{
	const uint8_t *p = it->v.ext.p;
	size_t n = it->v.ext.len;
	int rc = 0;

	switch (it->v.ext.type) {
	case DKV_EXT_BIGINT:
		put_bigint(out, p, n);
		return 0;
	case DKV_EXT_PATH:
		if (!is_path(p, n)) { /* not a path after all: shown as it is */
			put_raw_ext(out, it->v.ext.type, p, n);
			return 0;
		}
		open_marker(out, ":path");
		rc = put_path(out, p, n);
		break;
	case DKV_EXT_PROXY:
		if (!dkv__utf8_valid(p, n)) { /* a name that is no text: as it is */
			put_raw_ext(out, it->v.ext.type, p, n);
			return 0;
		}
		open_marker(out, ":proxy");
		dkv_json_string(out, p, n);
		break;
	default:
		put_raw_ext(out, it->v.ext.type, p, n);
		return 0;
	}
	dkv_buf_putc(out, '}');
	return rc;
}

/* A map key: see jsontext.h. */
static int put_key(struct dkv_buf *out, struct dkv_mp_reader *r)
{
	const uint8_t *start = r->p;
	struct dkv_mp_reader kr = *r;
	struct dkv_mp_item k;
	struct dkv_buf t = {0};
	int rc;

	if (dkv_mp_read(&kr, &k))
		return -EBADMSG;
	if (k.type == DKV_MP_STR && (!k.v.s.len || k.v.s.p[0] != ':') &&
	    dkv__utf8_valid(k.v.s.p, k.v.s.len)) {
		*r = kr;
		put_escaped(out, k.v.s.p ? k.v.s.p : (const uint8_t *)"", k.v.s.len);
		return 0;
	}
	if (dkv_mp_skip(r))
		return -EBADMSG;
	rc = dkv_pathtext_format(&t, start, (size_t)(r->p - start), 0);
	if (rc) {
		struct dkv_mp_reader again;
		dkv_mp_reader_init(&again, start, (size_t)(r->p - start));
		t.len = 0;
		dkv_buf_putc(&t, ':');
		rc = put_node(&t, &again);
	}
	if (!rc)
		put_escaped(out, t.data, t.len);
	dkv_buf_release(&t);
	return rc;
}

/* Write the (already validated) item at r. */
static int put_node(struct dkv_buf *out, struct dkv_mp_reader *r)
{
	struct dkv_mp_item it;
	int rc = 0;

	if (dkv_mp_read(r, &it))
		return -EBADMSG;
	switch (it.type) {
	case DKV_MP_NIL:
		dkv_buf_puts(out, "null");
		return 0;
	case DKV_MP_BOOL:
		dkv_buf_puts(out, it.v.b ? "true" : "false");
		return 0;
	case DKV_MP_UINT:
		dkv_buf_printf(out, "%" PRIu64, it.v.u);
		return 0;
	case DKV_MP_INT:
		dkv_buf_printf(out, "%" PRId64, it.v.i);
		return 0;
	case DKV_MP_FLOAT:
		put_double(out, it.v.f);
		return 0;
	case DKV_MP_STR:
		if (!dkv__utf8_valid(it.v.s.p, it.v.s.len)) { /* as YAML's !nonutf8 */
			open_marker(out, ":nonutf8");
			dkv_buf_putc(out, '"');
			dkv__hex_encode(out, it.v.s.p, it.v.s.len);
			dkv_buf_puts(out, "\"}");
			return 0;
		}
		dkv_json_string(out, it.v.s.p, it.v.s.len);
		return 0;
	case DKV_MP_BIN:
		open_marker(out, ":binary");
		put_base64(out, it.v.s.p, it.v.s.len);
		dkv_buf_putc(out, '}');
		return 0;
	case DKV_MP_EXT:
		return put_ext(out, &it);
	case DKV_MP_ARRAY:
		dkv_buf_putc(out, '[');
		for (uint32_t i = 0; !rc && i < it.v.n; i++) {
			if (i)
				dkv_buf_putc(out, ',');
			rc = put_node(out, r);
		}
		dkv_buf_putc(out, ']');
		return rc;
	case DKV_MP_MAP:
		dkv_buf_putc(out, '{');
		for (uint32_t i = 0; !rc && i < it.v.n; i++) {
			if (i)
				dkv_buf_putc(out, ',');
			rc = put_key(out, r);
			dkv_buf_putc(out, ':');
			if (!rc)
				rc = put_node(out, r);
		}
		dkv_buf_putc(out, '}');
		return rc;
	}
	return -EBADMSG;
}

int dkv_json_emit(struct dkv_buf *out, const uint8_t *mp, size_t len)
{
	struct dkv_mp_reader r;
	size_t old = out->len;
	int rc;

	dkv_mp_reader_init(&r, mp, len);
	if (dkv_mp_skip(&r) || dkv_mp_left(&r))
		return -EBADMSG;
	dkv_mp_reader_init(&r, mp, len);
	rc = put_node(out, &r);
	if (rc)
		out->len = old;
	return rc;
}
