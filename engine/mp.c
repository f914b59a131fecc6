/*
 * mp.c - byte buffers and the msgpack writer/reader.
 *
 * Hot path: every request and reply passes through here several times, so
 * the writer appends directly into the buffer and the reader never copies
 * or allocates.  Most items are small (a few bytes), so the common cases
 * come first.
 */
#include "mp.h"
#include "text.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(void)
{
	fputs("distkv: out of memory\n", stderr);
	abort();
}

void *dkv_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom();
	return p;
}

void *dkv_xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		oom();
	return p;
}

void *dkv_xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p)
		oom();
	return p;
}

char *dkv_xstrdup(const char *s)
{
	return dkv_xstrndup(s, strlen(s));
}

char *dkv_xstrndup(const char *s, size_t n)
{
	char *p = dkv_xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = 0;
	return p;
}

void dkv_buf_init(struct dkv_buf *b)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void dkv_buf_release(struct dkv_buf *b)
{
	free(b->data);
	dkv_buf_init(b);
}

void dkv_buf_reserve(struct dkv_buf *b, size_t extra)
{
	size_t need = b->len + extra + 1; /* room for dkv_buf_cstr's NUL */
	if (need <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap *= 2;
	b->data = dkv_xrealloc(b->data, cap);
	b->cap = cap;
}

void dkv_buf_append(struct dkv_buf *b, const void *p, size_t n)
{
	if (!n)
		return;
	dkv_buf_reserve(b, n);
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

void dkv_buf_putc(struct dkv_buf *b, char c)
{
	dkv_buf_reserve(b, 1);
	b->data[b->len++] = (uint8_t)c;
}

void dkv_buf_puts(struct dkv_buf *b, const char *s)
{
	dkv_buf_append(b, s, strlen(s));
}

void dkv_buf_printf(struct dkv_buf *b, const char *fmt, ...)
{
	va_list ap;
	char probe[1];
	va_start(ap, fmt);
	int n = vsnprintf(probe, sizeof probe, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	dkv_buf_reserve(b, (size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void dkv_buf_consume(struct dkv_buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
}

char *dkv_buf_cstr(struct dkv_buf *b)
{
	dkv_buf_reserve(b, 1);
	b->data[b->len] = 0;
	return (char *)b->data;
}

uint8_t *dkv_buf_detach(struct dkv_buf *b, size_t *len)
{
	uint8_t *p = b->data;
	if (len)
		*len = b->len;
	dkv_buf_init(b);
	return p;
}

/* ---- writer ---- */

static inline uint8_t *room(struct dkv_buf *b, size_t n)
{
	dkv_buf_reserve(b, n);
	uint8_t *p = b->data + b->len;
	b->len += n;
	return p;
}

static inline void be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline void be64(uint8_t *p, uint64_t v)
{
	be32(p, (uint32_t)(v >> 32));
	be32(p + 4, (uint32_t)v);
}

void dkv_mp_nil(struct dkv_buf *b)
{
	*room(b, 1) = 0xc0;
}

void dkv_mp_bool(struct dkv_buf *b, bool v)
{
	*room(b, 1) = v ? 0xc3 : 0xc2;
}

void dkv_mp_uint(struct dkv_buf *b, uint64_t v)
{
	uint8_t *p;
	if (v < 0x80) {
		*room(b, 1) = (uint8_t)v;
	} else if (v <= 0xff) {
		p = room(b, 2);
		p[0] = 0xcc;
		p[1] = (uint8_t)v;
	} else if (v <= 0xffff) {
		p = room(b, 3);
		p[0] = 0xcd;
		be16(p + 1, (uint16_t)v);
	} else if (v <= 0xffffffffu) {
		p = room(b, 5);
		p[0] = 0xce;
		be32(p + 1, (uint32_t)v);
	} else {
		p = room(b, 9);
		p[0] = 0xcf;
		be64(p + 1, v);
	}
}

void dkv_mp_int(struct dkv_buf *b, int64_t v)
{
	uint8_t *p;
	if (v >= 0) {
		dkv_mp_uint(b, (uint64_t)v);
	} else if (v >= -32) {
		*room(b, 1) = (uint8_t)(int8_t)v;
	} else if (v >= INT8_MIN) {
		p = room(b, 2);
		p[0] = 0xd0;
		p[1] = (uint8_t)(int8_t)v;
	} else if (v >= INT16_MIN) {
		p = room(b, 3);
		p[0] = 0xd1;
		be16(p + 1, (uint16_t)(int16_t)v);
	} else if (v >= INT32_MIN) {
		p = room(b, 5);
		p[0] = 0xd2;
		be32(p + 1, (uint32_t)(int32_t)v);
	} else {
		p = room(b, 9);
		p[0] = 0xd3;
		be64(p + 1, (uint64_t)v);
	}
}

void dkv_mp_double(struct dkv_buf *b, double v)
{
	uint64_t u;
	memcpy(&u, &v, sizeof u);
	uint8_t *p = room(b, 9);
	p[0] = 0xcb;
	be64(p + 1, u);
}

static void head(struct dkv_buf *b, size_t len, uint8_t fix, uint8_t fixmax,
		 uint8_t c8, uint8_t c16, uint8_t c32)
{
	uint8_t *p;
	if (fix && len <= fixmax) {
		*room(b, 1) = (uint8_t)(fix | len);
	} else if (c8 && len <= 0xff) {
		p = room(b, 2);
		p[0] = c8;
		p[1] = (uint8_t)len;
	} else if (len <= 0xffff) {
		p = room(b, 3);
		p[0] = c16;
		be16(p + 1, (uint16_t)len);
	} else {
		p = room(b, 5);
		p[0] = c32;
		be32(p + 1, (uint32_t)len);
	}
}

void dkv_mp_str(struct dkv_buf *b, const void *p, size_t len)
{
	head(b, len, 0xa0, 31, 0xd9, 0xda, 0xdb);
	dkv_buf_append(b, p, len);
}

void dkv_mp_cstr(struct dkv_buf *b, const char *s)
{
	dkv_mp_str(b, s, strlen(s));
}

void dkv_mp_bin(struct dkv_buf *b, const void *p, size_t len)
{
	head(b, len, 0, 0, 0xc4, 0xc5, 0xc6);
	dkv_buf_append(b, p, len);
}

void dkv_mp_array(struct dkv_buf *b, uint32_t n)
{
	head(b, n, 0x90, 15, 0, 0xdc, 0xdd);
}

void dkv_mp_map(struct dkv_buf *b, uint32_t n)
{
	head(b, n, 0x80, 15, 0, 0xde, 0xdf);
}

void dkv_mp_ext(struct dkv_buf *b, int8_t type, const void *p, size_t len)
{
	uint8_t *q;
	switch (len) {
	case 1:
		*room(b, 1) = 0xd4;
		break;
	case 2:
		*room(b, 1) = 0xd5;
		break;
	case 4:
		*room(b, 1) = 0xd6;
		break;
	case 8:
		*room(b, 1) = 0xd7;
		break;
	case 16:
		*room(b, 1) = 0xd8;
		break;
	default:
		if (len <= 0xff) {
			q = room(b, 2);
			q[0] = 0xc7;
			q[1] = (uint8_t)len;
		} else if (len <= 0xffff) {
			q = room(b, 3);
			q[0] = 0xc8;
			be16(q + 1, (uint16_t)len);
		} else {
			q = room(b, 5);
			q[0] = 0xc9;
			be32(q + 1, (uint32_t)len);
		}
	}
	*room(b, 1) = (uint8_t)type;
	dkv_buf_append(b, p, len);
}

void dkv_mp_bigint(struct dkv_buf *b, const uint8_t *be, size_t len)
{
	while (len && !*be) {
		be++;
		len--;
	}
	if (len <= 8) {
		uint64_t v = 0;
		for (size_t i = 0; i < len; i++)
			v = v << 8 | be[i];
		dkv_mp_uint(b, v);
		return;
	}
	dkv_mp_ext(b, DKV_EXT_BIGINT, be, len);
}

/* ---- reader ---- */

static inline uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t rd64(const uint8_t *p)
{
	return (uint64_t)rd32(p) << 32 | rd32(p + 4);
}

void dkv_mp_reader_init(struct dkv_mp_reader *r, const void *p, size_t len)
{
	r->p = p;
	r->end = len ? r->p + len : r->p; /* NULL + 0 is undefined */
}

/* Size of the fixed part following the type byte, for the 0xc0..0xdf range:
 * the number of bytes that hold a scalar or a length. */
int dkv_mp_read(struct dkv_mp_reader *r, struct dkv_mp_item *it)
{
	const uint8_t *p = r->p;
	size_t left = (size_t)(r->end - p);
	uint32_t len;
	size_t hdr;

	if (!left)
		return -EAGAIN;
	uint8_t c = *p;
	it->f32 = false;
	if (c <= 0x7f) {
		it->type = DKV_MP_UINT;
		it->v.u = c;
		r->p = p + 1;
		return 0;
	}
	if (c >= 0xe0) {
		it->type = DKV_MP_INT;
		it->v.i = (int8_t)c;
		r->p = p + 1;
		return 0;
	}
	if (c <= 0x8f || (c >= 0x90 && c <= 0x9f)) {
		it->type = c <= 0x8f ? DKV_MP_MAP : DKV_MP_ARRAY;
		it->v.n = c & 0x0f;
		r->p = p + 1;
		return 0;
	}
	if (c <= 0xbf) { /* fixstr */
		len = c & 0x1f;
		if (left < 1 + (size_t)len)
			return -EAGAIN;
		it->type = DKV_MP_STR;
		it->v.s.p = p + 1;
		it->v.s.len = len;
		r->p = p + 1 + len;
		return 0;
	}

	switch (c) {
	case 0xc0:
		it->type = DKV_MP_NIL;
		r->p = p + 1;
		return 0;
	case 0xc2:
	case 0xc3:
		it->type = DKV_MP_BOOL;
		it->v.b = c == 0xc3;
		r->p = p + 1;
		return 0;
	case 0xc1:
		return -EBADMSG;
	case 0xc4:
	case 0xc5:
	case 0xc6:
	case 0xd9:
	case 0xda:
	case 0xdb: {
		unsigned w = (c == 0xc4 || c == 0xd9) ? 1 : (c == 0xc5 || c == 0xda) ? 2 : 4;
		if (left < 1 + w)
			return -EAGAIN;
		len = w == 1 ? p[1] : w == 2 ? rd16(p + 1) : rd32(p + 1);
		hdr = 1 + w;
		if (left - hdr < len)
			return -EAGAIN;
		it->type = c >= 0xd9 ? DKV_MP_STR : DKV_MP_BIN;
		it->v.s.p = p + hdr;
		it->v.s.len = len;
		r->p = p + hdr + len;
		return 0;
	}
	case 0xc7:
	case 0xc8:
	case 0xc9: {
		unsigned w = c == 0xc7 ? 1 : c == 0xc8 ? 2 : 4;
		if (left < 2 + w)
			return -EAGAIN;
		len = w == 1 ? p[1] : w == 2 ? rd16(p + 1) : rd32(p + 1);
		hdr = 2 + w;
		if (left - hdr < len)
			return -EAGAIN;
		it->type = DKV_MP_EXT;
		it->v.ext.type = (int8_t)p[1 + w];
		it->v.ext.p = p + hdr;
		it->v.ext.len = len;
		r->p = p + hdr + len;
		return 0;
	}
	case 0xd4:
	case 0xd5:
	case 0xd6:
	case 0xd7:
	case 0xd8:
		len = 1u << (c - 0xd4);
		if (left < 2 + (size_t)len)
			return -EAGAIN;
		it->type = DKV_MP_EXT;
		it->v.ext.type = (int8_t)p[1];
		it->v.ext.p = p + 2;
		it->v.ext.len = len;
		r->p = p + 2 + len;
		return 0;
	case 0xca:
	case 0xcb: {
		size_t w = c == 0xca ? 4 : 8;
		if (left < 1 + w)
			return -EAGAIN;
		it->type = DKV_MP_FLOAT;
		if (w == 4) {
			uint32_t u = rd32(p + 1);
			float f;
			memcpy(&f, &u, sizeof f);
			it->v.f = f;
			it->f32 = true;
		} else {
			uint64_t u = rd64(p + 1);
			memcpy(&it->v.f, &u, sizeof it->v.f);
		}
		r->p = p + 1 + w;
		return 0;
	}
	case 0xcc:
	case 0xcd:
	case 0xce:
	case 0xcf: {
		size_t w = (size_t)1 << (c - 0xcc);
		if (left < 1 + w)
			return -EAGAIN;
		it->type = DKV_MP_UINT;
		it->v.u = w == 1 ? p[1] : w == 2 ? rd16(p + 1) : w == 4 ? rd32(p + 1) : rd64(p + 1);
		r->p = p + 1 + w;
		return 0;
	}
	case 0xd0:
	case 0xd1:
	case 0xd2:
	case 0xd3: {
		size_t w = (size_t)1 << (c - 0xd0);
		if (left < 1 + w)
			return -EAGAIN;
		int64_t v = w == 1 ? (int8_t)p[1]
			  : w == 2 ? (int16_t)rd16(p + 1)
			  : w == 4 ? (int32_t)rd32(p + 1)
				   : (int64_t)rd64(p + 1);
		if (v >= 0) {
			it->type = DKV_MP_UINT;
			it->v.u = (uint64_t)v;
		} else {
			it->type = DKV_MP_INT;
			it->v.i = v;
		}
		r->p = p + 1 + w;
		return 0;
	}
	case 0xdc:
	case 0xdd:
	case 0xde:
	case 0xdf: {
		size_t w = (c == 0xdc || c == 0xde) ? 2 : 4;
		if (left < 1 + w)
			return -EAGAIN;
		it->type = c <= 0xdd ? DKV_MP_ARRAY : DKV_MP_MAP;
		it->v.n = w == 2 ? rd16(p + 1) : rd32(p + 1);
		r->p = p + 1 + w;
		return 0;
	}
	}
	return -EBADMSG; /* not reached: every byte value is handled above */
}

/*
 * Skipping is iterative: a counter of items still owed replaces recursion,
 * so a hostile input cannot exhaust the stack.  Depth is still bounded so
 * that the recursive consumers (canon, YAML) are safe after a skip.
 */
int dkv_mp_skip(struct dkv_mp_reader *r)
{
	struct dkv_mp_reader s = *r;
	uint64_t owed[DKV_MP_MAX_DEPTH + 1];
	int depth = 0;
	owed[0] = 1;
	while (depth >= 0) {
		if (!owed[depth]) {
			depth--;
			continue;
		}
		owed[depth]--;
		struct dkv_mp_item it;
		int rc = dkv_mp_read(&s, &it);
		if (rc)
			return rc;
		if (it.type == DKV_MP_ARRAY || it.type == DKV_MP_MAP) {
			uint64_t n = it.type == DKV_MP_MAP ? 2 * (uint64_t)it.v.n : it.v.n;
			if (!n)
				continue;
			/* every item takes at least one byte: fail early on absurd counts */
			if (n > dkv_mp_left(&s))
				return -EAGAIN;
			if (depth == DKV_MP_MAX_DEPTH)
				return -E2BIG;
			owed[++depth] = n;
		}
	}
	r->p = s.p;
	return 0;
}

static int canon1(struct dkv_buf *out, struct dkv_mp_reader *r, int depth)
{
	struct dkv_mp_item it;
	int rc = dkv_mp_read(r, &it);
	if (rc)
		return rc;
	switch (it.type) {
	case DKV_MP_NIL:
		dkv_mp_nil(out);
		break;
	case DKV_MP_BOOL:
		dkv_mp_bool(out, it.v.b);
		break;
	case DKV_MP_UINT:
		dkv_mp_uint(out, it.v.u);
		break;
	case DKV_MP_INT:
		dkv_mp_int(out, it.v.i);
		break;
	case DKV_MP_FLOAT:
		dkv_mp_double(out, it.v.f);
		break;
	case DKV_MP_STR:
		dkv_mp_str(out, it.v.s.p, it.v.s.len);
		break;
	case DKV_MP_BIN:
		dkv_mp_bin(out, it.v.s.p, it.v.s.len);
		break;
	case DKV_MP_EXT:
		if (it.v.ext.type == DKV_EXT_BIGINT)
			dkv_mp_bigint(out, it.v.ext.p, it.v.ext.len);
		else
			dkv_mp_ext(out, it.v.ext.type, it.v.ext.p, it.v.ext.len);
		break;
	case DKV_MP_ARRAY:
	case DKV_MP_MAP: {
		uint64_t n = it.type == DKV_MP_MAP ? 2 * (uint64_t)it.v.n : it.v.n;
		if (depth >= DKV_MP_MAX_DEPTH)
			return -E2BIG;
		if (n > dkv_mp_left(r))
			return -EAGAIN;
		if (it.type == DKV_MP_MAP)
			dkv_mp_map(out, it.v.n);
		else
			dkv_mp_array(out, it.v.n);
		for (uint64_t i = 0; i < n; i++) {
			rc = canon1(out, r, depth + 1);
			if (rc)
				return rc;
		}
		break;
	}
	}
	return 0;
}

int dkv_mp_canon(struct dkv_buf *out, struct dkv_mp_reader *r)
{
	struct dkv_mp_reader s = *r;
	size_t mark = out->len;
	int rc = canon1(out, &s, 0);
	if (rc) {
		out->len = mark;
		return rc;
	}
	r->p = s.p;
	return 0;
}

/* Whether the string s[0..len), len <= 16, is all ASCII: two loads that
 * may overlap, since most strings of a request are short ASCII words. */
static bool short_ascii(const uint8_t *s, size_t len)
{
	uint64_t a, b;
	uint32_t x, y;
	uint8_t any = 0;
	if (len >= 8) {
		memcpy(&a, s, 8);
		memcpy(&b, s + len - 8, 8);
		return !((a | b) & 0x8080808080808080u);
	}
	if (len >= 4) {
		memcpy(&x, s, 4);
		memcpy(&y, s + len - 4, 4);
		return !((x | y) & 0x80808080u);
	}
	for (size_t i = 0; i < len; i++)
		any |= s[i];
	return !(any & 0x80);
}

bool dkv_mp_find_bad_utf8(const uint8_t *p, size_t n, size_t *at, size_t *bad)
{
	struct dkv_mp_reader r;
	struct dkv_mp_item it;
	const uint8_t *s;
	size_t len;
	dkv_mp_reader_init(&r, p, n);
	/* well-formed: the items follow each other, containers are only heads */
	while (dkv_mp_left(&r)) {
		uint8_t c = *r.p;
		/* the common small items without the general reader: a request's
		 * fields are mostly short strings and small integers */
		if ((c & 0xe0) == 0xa0) {
			s = r.p + 1;
			len = c & 0x1f;
			r.p = s + len;
		} else if (c <= 0x9f || c >= 0xe0 || (c >= 0xc0 && c <= 0xc3)) {
			r.p++; /* fixint, nil, bool, the head of a fixmap or fixarray */
			continue;
		} else if (c >= 0xcc && c <= 0xd3) {
			r.p += 1 + (1u << (c & 3)); /* uint8..64, int8..64: a seq */
			continue;
		} else if (c >= 0xd4 && c <= 0xd8) {
			r.p += 2 + (1u << (c - 0xd4)); /* fixext: a short path */
			continue;
		} else if (c == 0xc7) {
			r.p += 3 + (size_t)r.p[1]; /* ext 8: a path */
			continue;
		} else if (dkv_mp_read(&r, &it)) {
			return false;
		} else if (it.type == DKV_MP_STR) {
			s = it.v.s.p;
			len = it.v.s.len;
		} else {
			continue;
		}
		if (len <= 16 && short_ascii(s, len))
			continue;
		size_t ok = dkv__utf8_prefix(s, len);
		if (ok < len) {
			*at = (size_t)(s - p);
			*bad = ok;
			return true;
		}
	}
	return false;
}

bool dkv_mp_streq(const struct dkv_mp_item *it, const char *s)
{
	if (it->type != DKV_MP_STR && it->type != DKV_MP_BIN)
		return false;
	size_t n = strlen(s);
	return it->v.s.len == n && !memcmp(it->v.s.p, s, n);
}

int dkv_mp_copy_pairs(struct dkv_buf *out, const uint8_t *mp, size_t len,
		      const char *const *skip, unsigned nskip)
{
	struct dkv_mp_reader r;
	struct dkv_mp_item it, k;
	int n = 0;
	dkv_mp_reader_init(&r, mp, len);
	if (dkv_mp_read(&r, &it) || it.type != DKV_MP_MAP)
		return -1;
	for (uint32_t i = 0; i < it.v.n; i++) {
		const uint8_t *start = r.p;
		struct dkv_mp_reader kr = r;
		if (dkv_mp_read(&kr, &k) || dkv_mp_skip(&r) || dkv_mp_skip(&r))
			return -1;
		bool drop = false;
		for (unsigned j = 0; j < nskip && !drop; j++)
			drop = dkv_mp_streq(&k, skip[j]);
		if (!drop) {
			dkv_buf_append(out, start, (size_t)(r.p - start));
			n++;
		}
	}
	return n;
}

bool dkv_mp_truthy(const struct dkv_mp_item *it)
{
	switch (it->type) {
	case DKV_MP_NIL:
		return false;
	case DKV_MP_BOOL:
		return it->v.b;
	case DKV_MP_UINT:
		return it->v.u != 0;
	case DKV_MP_FLOAT:
		return it->v.f != 0;
	case DKV_MP_STR:
	case DKV_MP_BIN:
		return it->v.s.len != 0;
	case DKV_MP_ARRAY:
	case DKV_MP_MAP:
		return it->v.n != 0;
	default:
		return true;
	}
}
