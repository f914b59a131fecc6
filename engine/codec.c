/*
 * codec.c - codecs and converters (the records are in codec.h): the
 * checker that validates them when a client stores one, and the
 * compiled converter a session reads and writes through.
 *
 * Converters change rarely and are used on every request of their users,
 * so the sessions bound to one share a compiled copy: the patterns as a
 * pattern tree (pattern.h), each codec's scripts compiled once.  It is
 * compiled again when the engine's converter generation moves (every
 * change below (None, "conv") or (None, "codec") moves it).  A path that
 * no pattern can match costs a few memcmp and no Python at all.
 */
#include "codec.h"

#include "errlog.h"
#include "pathtext.h"
#include "pattern.h"
#include "py.h"
#include "text.h"

#include <pthread.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t NIL_ELEM[] = {0xc0};
static const uint8_t CODEC_ELEM[] = {0xa5, 'c', 'o', 'd', 'e', 'c'};
static const uint8_t CONV_ELEM[] = {0xa4, 'c', 'o', 'n', 'v'};

static const char *const PARAMS[] = {"value"};

/* ---- values as Python shows them ---- */

static void repr_str(struct dkv_buf *out, const uint8_t *p, size_t n, bool bytes)
{
	char q = '\'';
	if (memchr(p, '\'', n) && !memchr(p, '"', n))
		q = '"';
	if (bytes)
		dkv_buf_putc(out, 'b');
	dkv_buf_putc(out, q);
	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i];
		if (c == (uint8_t)q || c == '\\') {
			dkv_buf_putc(out, '\\');
			dkv_buf_putc(out, (char)c);
		} else if (c == '\n') {
			dkv_buf_puts(out, "\\n");
		} else if (c == '\r') {
			dkv_buf_puts(out, "\\r");
		} else if (c == '\t') {
			dkv_buf_puts(out, "\\t");
		} else if (c < 0x20 || c == 0x7f || (bytes && c >= 0x80)) {
			dkv_buf_printf(out, "\\x%02x", c);
		} else {
			dkv_buf_putc(out, (char)c);
		}
	}
	dkv_buf_putc(out, q);
}

/* The shortest text that reads back as v, as Python's float repr. */
static void repr_float(struct dkv_buf *out, double v)
{
	char s[64];
	if (isnan(v)) {
		dkv_buf_puts(out, "nan");
		return;
	}
	if (isinf(v)) {
		dkv_buf_puts(out, v < 0 ? "-inf" : "inf");
		return;
	}
	int prec = 1;
	for (; prec < 17; prec++) {
		snprintf(s, sizeof s, "%.*e", prec - 1, v);
		if (strtod(s, NULL) == v)
			break;
	}
	snprintf(s, sizeof s, "%.*e", prec - 1, v);
	int exp = atoi(strchr(s, 'e') + 1);
	if (exp >= -4 && exp < 16) /* where Python's repr switches to 1e+16 and 1e-05 */
		snprintf(s, sizeof s, "%.*f", prec - 1 - exp > 0 ? prec - 1 - exp : 0, v);
	dkv_buf_puts(out, s);
	if (!strpbrk(s, ".e"))
		dkv_buf_puts(out, ".0");
}

static int repr_item(struct dkv_buf *out, struct dkv_mp_reader *r, int depth, size_t max)
{
	struct dkv_mp_item it;
	if (dkv_mp_read(r, &it) || depth > DKV_MP_MAX_DEPTH)
		return -EINVAL;
	if (out->len > max) {
		dkv_buf_puts(out, "...");
		*r = (struct dkv_mp_reader){r->end, r->end};
		return 0;
	}
	switch (it.type) {
	case DKV_MP_NIL:
		dkv_buf_puts(out, "None");
		break;
	case DKV_MP_BOOL:
		dkv_buf_puts(out, it.v.b ? "True" : "False");
		break;
	case DKV_MP_UINT:
		dkv_buf_printf(out, "%llu", (unsigned long long)it.v.u);
		break;
	case DKV_MP_INT:
		dkv_buf_printf(out, "%lld", (long long)it.v.i);
		break;
	case DKV_MP_FLOAT:
		repr_float(out, it.v.f);
		break;
	case DKV_MP_STR:
	case DKV_MP_BIN:
		repr_str(out, it.v.s.p, it.v.s.len, it.type == DKV_MP_BIN);
		break;
	case DKV_MP_ARRAY:
	case DKV_MP_MAP:
		dkv_buf_putc(out, it.type == DKV_MP_ARRAY ? '[' : '{');
		for (uint32_t i = 0; i < it.v.n; i++) {
			if (i)
				dkv_buf_puts(out, ", ");
			if (repr_item(out, r, depth + 1, max))
				return -EINVAL;
			if (it.type == DKV_MP_MAP) {
				dkv_buf_puts(out, ": ");
				if (repr_item(out, r, depth + 1, max))
					return -EINVAL;
			}
		}
		dkv_buf_putc(out, it.type == DKV_MP_ARRAY ? ']' : '}');
		break;
	case DKV_MP_EXT:
		if (it.v.ext.type == DKV_EXT_BIGINT)
			dkv__bigint_to_dec(out, it.v.ext.p, it.v.ext.len);
		else if (it.v.ext.type == DKV_EXT_PATH)
			dkv_pathtext_format_path(out, it.v.ext.p, it.v.ext.len);
		else
			dkv_buf_printf(out, "ExtType(%d, ...)", it.v.ext.type);
		break;
	}
	return 0;
}

void dkv_codec_repr(struct dkv_buf *out, const uint8_t *mp, size_t len, size_t max)
{
	struct dkv_mp_reader r;
	size_t mark = out->len;
	dkv_mp_reader_init(&r, mp, len);
	if (repr_item(out, &r, 0, mark + max)) {
		out->len = mark;
		dkv_buf_puts(out, "(not msgpack)");
	}
}

/* ---- equality as Python sees it ---- */

static bool is_number(const struct dkv_mp_item *it)
{
	return it->type == DKV_MP_UINT || it->type == DKV_MP_INT || it->type == DKV_MP_FLOAT ||
	       it->type == DKV_MP_BOOL;
}

static bool numbers_equal(const struct dkv_mp_item *a, const struct dkv_mp_item *b)
{
	struct dkv_mp_item x = *a, y = *b;
	if (x.type == DKV_MP_BOOL)
		x.type = DKV_MP_UINT, x.v.u = a->v.b;
	if (y.type == DKV_MP_BOOL)
		y.type = DKV_MP_UINT, y.v.u = b->v.b;
	if (x.type == DKV_MP_FLOAT || y.type == DKV_MP_FLOAT) {
		double dx = x.type == DKV_MP_FLOAT ? x.v.f
			    : x.type == DKV_MP_UINT ? (double)x.v.u : (double)x.v.i;
		double dy = y.type == DKV_MP_FLOAT ? y.v.f
			    : y.type == DKV_MP_UINT ? (double)y.v.u : (double)y.v.i;
		return dx == dy;
	}
	if (x.type != y.type)
		return false; /* a negative int is never a uint */
	return x.type == DKV_MP_UINT ? x.v.u == y.v.u : x.v.i == y.v.i;
}

/* Whether the items at a and b are equal; both readers move past their
 * item either way (unless it is broken: then false). */
static bool eq_item(struct dkv_mp_reader *a, struct dkv_mp_reader *b, int depth)
{
	struct dkv_mp_reader a0 = *a, b0 = *b;
	struct dkv_mp_item x, y;
	bool same;
	if (depth > DKV_MP_MAX_DEPTH || dkv_mp_read(a, &x) || dkv_mp_read(b, &y))
		return false;
	if (is_number(&x) && is_number(&y))
		return numbers_equal(&x, &y);
	if (x.type != y.type)
		goto differ;
	switch (x.type) {
	case DKV_MP_NIL:
		return true;
	case DKV_MP_STR:
	case DKV_MP_BIN:
		return x.v.s.len == y.v.s.len && !memcmp(x.v.s.p, y.v.s.p, x.v.s.len);
	case DKV_MP_EXT:
		return x.v.ext.type == y.v.ext.type && x.v.ext.len == y.v.ext.len &&
		       !memcmp(x.v.ext.p, y.v.ext.p, x.v.ext.len);
	case DKV_MP_ARRAY:
		if (x.v.n != y.v.n)
			goto differ;
		same = true;
		for (uint32_t i = 0; i < x.v.n; i++)
			same = eq_item(a, b, depth + 1) && same;
		return same;
	case DKV_MP_MAP: {
		if (x.v.n != y.v.n)
			goto differ;
		struct dkv_mp_reader bstart = *b;
		same = true;
		for (uint32_t i = 0; i < x.v.n && same; i++) {
			struct dkv_mp_reader key = *a, bk = bstart;
			bool found = false;
			if (dkv_mp_skip(a))
				return false;
			for (uint32_t j = 0; j < y.v.n && !found; j++) {
				struct dkv_mp_reader k1 = key, val = bk;
				if (eq_item(&k1, &val, depth + 1)) {
					struct dkv_mp_reader av = *a;
					found = eq_item(&av, &val, depth + 1);
				}
				if (dkv_mp_skip(&bk) || dkv_mp_skip(&bk))
					return false;
			}
			if (dkv_mp_skip(a))
				return false;
			same = found;
		}
		*a = a0;
		*b = b0;
		if (dkv_mp_skip(a) || dkv_mp_skip(b))
			return false;
		return same;
	}
	default:
		return false;
	}
differ:
	*a = a0;
	*b = b0;
	dkv_mp_skip(a);
	dkv_mp_skip(b);
	return false;
}

bool dkv_codec_values_equal(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	struct dkv_mp_reader ra, rb;
	dkv_mp_reader_init(&ra, a, alen);
	dkv_mp_reader_init(&rb, b, blen);
	return eq_item(&ra, &rb, 0);
}

/* ---- records ---- */

/* Find key in the map at r: the reader is left at its value.  false when
 * absent or not a map. */
static bool map_find(struct dkv_mp_reader *r, const char *key)
{
	struct dkv_mp_item it;
	if (dkv_mp_read(r, &it) || it.type != DKV_MP_MAP)
		return false;
	for (uint32_t i = 0, n = it.v.n; i < n; i++) {
		if (dkv_mp_read(r, &it))
			return false;
		if (it.type == DKV_MP_STR && dkv_mp_streq(&it, key))
			return true;
		if (dkv_mp_skip(r))
			return false;
	}
	return false;
}

/* A codec record's parts, pointing into its value. */
struct codec_rec {
	struct dkv_mp_item enc, dec; /* DKV_MP_STR, or DKV_MP_NIL: passes values unchanged */
	struct dkv_mp_reader in, out; /* at the sample arrays; empty when absent */
};

static int parse_script(const uint8_t *mp, size_t len, const char *key, struct dkv_mp_item *it,
			char *why, size_t whylen)
{
	struct dkv_mp_reader r;
	dkv_mp_reader_init(&r, mp, len);
	it->type = DKV_MP_NIL;
	if (map_find(&r, key) && (dkv_mp_read(&r, it) ||
				  (it->type != DKV_MP_STR && it->type != DKV_MP_NIL))) {
		snprintf(why, whylen, "a codec's %s is the text of a script", key);
		return -EINVAL;
	}
	return 0;
}

static int parse_samples(const uint8_t *mp, size_t len, const char *key,
			 struct dkv_mp_reader *out, char *why, size_t whylen)
{
	struct dkv_mp_reader r, s;
	struct dkv_mp_item it;
	dkv_mp_reader_init(&r, mp, len);
	dkv_mp_reader_init(out, mp + len, 0);
	if (!map_find(&r, key))
		return 0;
	s = r;
	if (dkv_mp_read(&s, &it) || (it.type != DKV_MP_ARRAY && it.type != DKV_MP_NIL))
		goto bad;
	for (uint32_t i = 0; it.type == DKV_MP_ARRAY && i < it.v.n; i++) {
		struct dkv_mp_item pair;
		if (dkv_mp_read(&s, &pair) || pair.type != DKV_MP_ARRAY || pair.v.n != 2 ||
		    dkv_mp_skip(&s) || dkv_mp_skip(&s))
			goto bad;
	}
	*out = r;
	return 0;
bad:
	snprintf(why, whylen, "a codec's %s is a list of [IN, OUT] pairs", key);
	return -EINVAL;
}

static int parse_codec(const uint8_t *mp, size_t len, struct codec_rec *rec, char *why,
		       size_t whylen)
{
	struct dkv_mp_reader r;
	struct dkv_mp_item it;
	dkv_mp_reader_init(&r, mp, len);
	if (dkv_mp_read(&r, &it) || it.type != DKV_MP_MAP) {
		snprintf(why, whylen, "a codec is a map {encode, decode, in, out}");
		return -EINVAL;
	}
	int rc;
	if ((rc = parse_script(mp, len, "encode", &rec->enc, why, whylen)) ||
	    (rc = parse_script(mp, len, "decode", &rec->dec, why, whylen)) ||
	    (rc = parse_samples(mp, len, "in", &rec->in, why, whylen)) ||
	    (rc = parse_samples(mp, len, "out", &rec->out, why, whylen)))
		return rc;
	return 0;
}

/* Compile a script (NULL when it is nil). */
static int compile(const struct dkv_mp_item *src, const char *what, struct dkv_py_proc **out,
		   char *why, size_t whylen)
{
	char err[200];
	*out = NULL;
	if (src->type != DKV_MP_STR)
		return 0;
	int rc = dkv_py_proc_new(out, (const char *)src->v.s.p, src->v.s.len, PARAMS, 1, false,
				 err, sizeof err);
	if (rc)
		snprintf(why, whylen, "%s script: %s", what, err);
	return rc;
}

/* Run every sample [IN, OUT] at r through p; the first that does not
 * give its OUT refuses. */
static int run_samples(struct dkv_py_proc *p, struct dkv_mp_reader r, const char *what,
		       char *why, size_t whylen)
{
	struct dkv_mp_item it;
	struct dkv_buf res = {0}, msg = {0};
	int rc = 0;
	if (dkv_mp_left(&r) == 0 || dkv_mp_read(&r, &it) || it.type != DKV_MP_ARRAY ||
	    it.v.n == 0) {
		snprintf(why, whylen, "a codec with a %s script needs %s samples (%s)", what, what,
			 what[0] == 'd' ? "in" : "out");
		return -EINVAL;
	}
	for (uint32_t i = 0; i < it.v.n && !rc; i++) {
		struct dkv_mp_item pair;
		char err[200];
		dkv_mp_read(&r, &pair);
		const uint8_t *in = r.p;
		dkv_mp_skip(&r);
		size_t inlen = (size_t)(r.p - in);
		const uint8_t *want = r.p;
		dkv_mp_skip(&r);
		size_t wantlen = (size_t)(r.p - want);
		struct dkv_py_arg a = {in, inlen};
		res.len = msg.len = 0;
		rc = dkv_py_proc_call(p, &a, 1, &res, err, sizeof err);
		dkv_buf_printf(&msg, "%s sample ", what);
		dkv_codec_repr(&msg, in, inlen, 60);
		if (rc) {
			snprintf(why, whylen, "%s raises %s", dkv_buf_cstr(&msg), err);
		} else if (!dkv_codec_values_equal(res.data, res.len, want, wantlen)) {
			dkv_buf_puts(&msg, " gives ");
			dkv_codec_repr(&msg, res.data, res.len, 60);
			dkv_buf_puts(&msg, ", not ");
			dkv_codec_repr(&msg, want, wantlen, 60);
			snprintf(why, whylen, "%s", dkv_buf_cstr(&msg));
			rc = -EINVAL;
		}
	}
	dkv_buf_release(&res);
	dkv_buf_release(&msg);
	return rc ? -EINVAL : 0;
}

static int check_codec(const uint8_t *mp, size_t len, char *why, size_t whylen)
{
	struct codec_rec rec;
	struct dkv_py_proc *enc = NULL, *dec = NULL;
	int rc = parse_codec(mp, len, &rec, why, whylen);
	if (rc)
		return rc;
	if ((rc = compile(&rec.enc, "encode", &enc, why, whylen)) ||
	    (rc = compile(&rec.dec, "decode", &dec, why, whylen)))
		goto out;
	if (dec && (rc = run_samples(dec, rec.in, "decode", why, whylen)))
		goto out;
	if (enc && (rc = run_samples(enc, rec.out, "encode", why, whylen)))
		goto out;
out:
	dkv_py_proc_free(enc);
	dkv_py_proc_free(dec);
	return rc ? -EINVAL : 0;
}

/* The entry (None, "codec"), or NULL; reads only. */
static struct dkv_entry *codec_root(struct dkv_engine *e)
{
	struct dkv_entry *m = dkv_entry_child(e, dkv_engine_root(e), NIL_ELEM, 1);
	return m ? dkv_entry_child(e, m, CODEC_ELEM, sizeof CODEC_ELEM) : NULL;
}

/* The codec path a converter entry's value names: 0 with p, or -EINVAL. */
static int conv_codec_path(const uint8_t *mp, size_t len, struct dkv_path *p)
{
	struct dkv_mp_reader r;
	dkv_mp_reader_init(&r, mp, len);
	if (!map_find(&r, "codec") || dkv_path_decode(p, &r) || !p->n)
		return -EINVAL;
	return 0;
}

/* "floatstr" or "a b": a path as the command line writes it. */
static void words(struct dkv_buf *out, const uint8_t *path, size_t len)
{
	struct dkv_path_iter it;
	const uint8_t *el;
	size_t elen;
	bool first = true;
	dkv_path_iter_init(&it, path, len);
	while (dkv_path_iter_next(&it, &el, &elen)) {
		if (!first)
			dkv_buf_putc(out, ' ');
		dkv_pathtext_format(out, el, elen, 0);
		first = false;
	}
}

static int check_conv(struct dkv_engine *e, const uint8_t *mp, size_t len, char *why,
		      size_t whylen)
{
	struct dkv_path p;
	int rc = 0;
	dkv_path_init(&p);
	if (conv_codec_path(mp, len, &p)) {
		snprintf(why, whylen, "a converter entry is a map {codec: [NAME...]}");
		rc = -EINVAL;
		goto out;
	}
	struct dkv_entry *root = codec_root(e);
	struct dkv_entry *c = root ? dkv_entry_lookup(e, root, p.enc.data, p.enc.len, false) : NULL;
	if (!c || !dkv_entry_has_value(c)) {
		struct dkv_buf w = {0};
		words(&w, p.enc.data, p.enc.len);
		snprintf(why, whylen, "no codec named '%s'", dkv_buf_cstr(&w));
		dkv_buf_release(&w);
		rc = -EINVAL;
	}
out:
	dkv_path_release(&p);
	return rc;
}

/* A converter entry at or below x (its path so far in at) whose codec is
 * the path want: 0, or 1 with the converter's name and pattern in at. */
static int conv_user(const struct dkv_entry *x, struct dkv_buf *at, const uint8_t *want,
		     size_t wantlen)
{
	if (dkv_entry_has_value(x)) {
		struct dkv_path p;
		dkv_path_init(&p);
		bool same = !conv_codec_path(dkv_value_data(x->value), x->value->len, &p) &&
			    p.enc.len == wantlen && !memcmp(p.enc.data, want, wantlen);
		dkv_path_release(&p);
		if (same)
			return 1;
	}
	for (const struct dkv_entry *k = x->kids; k; k = k->next) {
		size_t len = at->len;
		dkv_buf_append(at, k->name, k->namelen);
		if (conv_user(k, at, want, wantlen))
			return 1;
		at->len = len;
	}
	return 0;
}

/* A codec may go when no converter entry names it. */
static int check_codec_delete(struct dkv_engine *e, const uint8_t *cp, size_t cplen,
			      char *why, size_t whylen)
{
	struct dkv_entry *m = dkv_entry_child(e, dkv_engine_root(e), NIL_ELEM, 1);
	m = m ? dkv_entry_child(e, m, CONV_ELEM, sizeof CONV_ELEM) : NULL;
	struct dkv_buf at = {0};
	int rc = 0;
	if (m && conv_user(m, &at, cp, cplen)) {
		struct dkv_buf w = {0}, u = {0};
		struct dkv_path_iter it;
		const uint8_t *el;
		size_t elen;
		words(&w, cp, cplen);
		dkv_path_iter_init(&it, at.data, at.len);
		dkv_path_iter_next(&it, &el, &elen); /* the converter's name */
		dkv_pathtext_format(&u, el, elen, 0);
		dkv_buf_puts(&u, " at ");
		words(&u, el + elen, at.len - (size_t)(el + elen - at.data));
		snprintf(why, whylen, "codec %s is used by converter %s", dkv_buf_cstr(&w),
			 dkv_buf_cstr(&u));
		dkv_buf_release(&w);
		dkv_buf_release(&u);
		rc = -EINVAL;
	}
	dkv_buf_release(&at);
	return rc;
}

int dkv_codec_check(void *ctx, struct dkv_engine *e, const struct dkv_change *c, char *why,
		    size_t whylen)
{
	struct dkv_path_iter it;
	const uint8_t *el;
	size_t elen;
	(void)ctx;
	if (!c->internal)
		return 0;
	dkv_path_iter_init(&it, c->path, c->path_len);
	if (!dkv_path_iter_next(&it, &el, &elen))
		return 0;
	bool codec = elen == sizeof CODEC_ELEM && !memcmp(el, CODEC_ELEM, elen);
	bool conv = elen == sizeof CONV_ELEM && !memcmp(el, CONV_ELEM, elen);
	if (!codec && !conv)
		return 0;
	if (!c->value)
		return codec && c->path_len > elen ? check_codec_delete(e, c->path + elen,
									  c->path_len - elen, why,
									  whylen)
						   : 0;
	unsigned n = 1;
	while (dkv_path_iter_next(&it, &el, &elen))
		n++;
	if (codec && n < 2) {
		snprintf(why, whylen, "(codec) holds no value: a codec needs a name");
		return -EINVAL;
	}
	if (conv && n < 3) {
		snprintf(why, whylen, "a converter's entries are (conv, NAME, PATH...), with a path");
		return -EINVAL;
	}
	return codec ? check_codec(c->value, c->value_len, why, whylen)
		     : check_conv(e, c->value, c->value_len, why, whylen);
}

/* ---- compiled converters ---- */

struct ccodec {
	uint8_t *path; /* below (None, "codec") */
	size_t plen;
	struct dkv_py_proc *enc, *dec; /* NULL: the value passes unchanged */
	char *err;                     /* not usable: why (then enc and dec are NULL) */
};

/* A converter as the tree held it at generation gen: its patterns with
 * a struct ccodec payload each.  Immutable and refcounted: a FUSE thread
 * may still use the old one while the loop compiles the new. */
struct cconv {
	atomic_uint refs;
	uint64_t gen;
	struct dkv_pnode root;
	bool exists;
	struct dkv_engine *e; /* while compiling */
	struct ccodec **codecs;
	unsigned ncodecs;
	char name[];
};

/* The codec at path, compiled once per converter. */
static struct ccodec *codec_get(struct cconv *cc, const struct dkv_path *p)
{
	struct dkv_engine *e = cc->e;
	for (unsigned i = 0; i < cc->ncodecs; i++)
		if (cc->codecs[i]->plen == p->enc.len &&
		    !memcmp(cc->codecs[i]->path, p->enc.data, p->enc.len))
			return cc->codecs[i];
	cc->codecs = dkv_xrealloc(cc->codecs, (cc->ncodecs + 1) * sizeof *cc->codecs);
	struct ccodec *k = dkv_xcalloc(1, sizeof *k);
	cc->codecs[cc->ncodecs++] = k;
	k->path = dkv_xmalloc(p->enc.len);
	memcpy(k->path, p->enc.data, p->enc.len);
	k->plen = p->enc.len;

	char why[256];
	struct dkv_buf w = {0};
	struct codec_rec rec;
	struct dkv_entry *root = codec_root(e);
	struct dkv_entry *x = root ? dkv_entry_lookup(e, root, p->enc.data, p->enc.len, false) : NULL;
	words(&w, p->enc.data, p->enc.len);
	if (!x || !dkv_entry_has_value(x)) {
		snprintf(why, sizeof why, "converter %s: no codec named '%s'", cc->name,
			 dkv_buf_cstr(&w));
		k->err = dkv_xstrdup(why);
	} else if (parse_codec(dkv_value_data(x->value), x->value->len, &rec, why, sizeof why) ||
		   compile(&rec.enc, "encode", &k->enc, why, sizeof why) ||
		   compile(&rec.dec, "decode", &k->dec, why, sizeof why)) {
		/* stored through this node's checker, so only an older node's records get here */
		dkv_py_proc_free(k->enc);
		dkv_py_proc_free(k->dec);
		k->enc = k->dec = NULL;
		struct dkv_buf m = {0};
		dkv_buf_printf(&m, "codec %s: %s", dkv_buf_cstr(&w), why);
		k->err = dkv_xstrdup(dkv_buf_cstr(&m));
		dkv_buf_release(&m);
	}
	dkv_buf_release(&w);
	return k;
}

/* A pattern's payload: its codec (shared; freed with the converter). */
static void *cpat_make(void *ctx, const struct dkv_entry *x, const struct dkv_path *pat)
{
	struct cconv *cc = ctx;
	struct ccodec *k = NULL;
	struct dkv_path p;
	(void)pat;
	dkv_path_init(&p);
	if (!conv_codec_path(dkv_value_data(x->value), x->value->len, &p))
		k = codec_get(cc, &p);
	dkv_path_release(&p);
	return k;
}

static struct cconv *cconv_new(struct dkv_engine *e, const char *name, uint64_t gen)
{
	size_t nlen = strlen(name);
	struct cconv *cc = dkv_xcalloc(1, sizeof *cc + nlen + 1);
	atomic_init(&cc->refs, 1);
	cc->gen = gen;
	memcpy(cc->name, name, nlen + 1);
	struct dkv_entry *m = dkv_entry_child(e, dkv_engine_root(e), NIL_ELEM, 1);
	m = m ? dkv_entry_child(e, m, CONV_ELEM, sizeof CONV_ELEM) : NULL;
	if (m) {
		struct dkv_buf el = {0};
		dkv_mp_cstr(&el, name);
		m = dkv_entry_child(e, m, el.data, el.len);
		dkv_buf_release(&el);
	}
	if (m) {
		cc->exists = true;
		cc->e = e;
		dkv_pattern_build(&cc->root, m, cpat_make, cc);
		cc->e = NULL;
	}
	return cc;
}

static void cconv_unref(struct cconv *cc)
{
	if (!cc || atomic_fetch_sub(&cc->refs, 1) != 1)
		return;
	dkv_pattern_release(&cc->root, NULL);
	for (unsigned i = 0; i < cc->ncodecs; i++) {
		struct ccodec *k = cc->codecs[i];
		dkv_py_proc_free(k->enc);
		dkv_py_proc_free(k->dec);
		free(k->err);
		free(k->path);
		free(k);
	}
	free(cc->codecs);
	free(cc);
}

/* ---- a session's converter ----
 *
 * Every session bound to the same converter of the same engine shares
 * one struct dkv_conv, so that a converter is compiled once per change,
 * not once per connection.  The list of them is short (one per converter
 * in use) and touched only when a session binds or unbinds.
 */

struct dkv_conv {
	struct dkv_engine *e;
	pthread_mutex_t lock; /* sessions on several threads share it */
	struct cconv *cc;     /* compiled at cc->gen; NULL: not yet */
	unsigned users;       /* sessions bound to it (under convs_lock) */
	struct dkv_conv *next;
	char name[];
};

static pthread_mutex_t convs_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dkv_conv *convs;

/* The converter as compiled for the engine's current generation; the
 * caller unrefs it. */
static struct cconv *conv_current(struct dkv_conv *cv)
{
	pthread_mutex_lock(&cv->lock);
	uint64_t gen = dkv_engine_conv_gen(cv->e);
	if (!cv->cc || cv->cc->gen != gen) {
		cconv_unref(cv->cc);
		cv->cc = cconv_new(cv->e, cv->name, gen);
	}
	struct cconv *cc = cv->cc;
	atomic_fetch_add(&cc->refs, 1);
	pthread_mutex_unlock(&cv->lock);
	return cc;
}

/* A conversion at path failed: an occurrence for the error log
 * (errlog.h), with what it needs to be found again: the converter, the
 * codec and the direction.  Any thread. */
static void note_failure(const struct dkv_conv *cv, const struct ccodec *k, bool encode,
			 const uint8_t *path, size_t plen, const char *why)
{
	struct dkv_errlog *el = dkv_engine_errlog(cv->e);
	if (!el)
		return;
	struct dkv_buf data = {0};
	dkv_mp_map(&data, 3);
	dkv_mp_cstr(&data, "converter");
	dkv_mp_cstr(&data, cv->name);
	dkv_mp_cstr(&data, "codec");
	dkv_path_encode(&data, k->path, k->plen);
	dkv_mp_cstr(&data, "op");
	dkv_mp_cstr(&data, encode ? "encode" : "decode");
	struct dkv_errlog_occ o = {
		.sys = DKV_ERRSYS_CODEC,
		.path = path,
		.plen = plen,
		.severity = DKV_SEV_ERROR,
		.message = why,
		.data = data.data,
		.dlen = data.len,
	};
	dkv_errlog_note(el, &o);
	dkv_buf_release(&data);
}

int dkv__conv_run(struct dkv_conv *cv, bool encode, const uint8_t *path, size_t plen,
		  const uint8_t **mp, size_t *len, struct dkv_buf *scratch, char *why,
		  size_t whylen)
{
	struct cconv *cc = conv_current(cv);
	const struct ccodec *k = cc->exists ? dkv_pattern_match(&cc->root, path, plen) : NULL;
	int rc = 0;
	if (k) {
		struct dkv_py_proc *p = encode ? k->enc : k->dec;
		if (k->err) {
			snprintf(why, whylen, "%s", k->err);
			rc = -ENOENT;
		} else if (p) {
			struct dkv_py_arg a = {*mp, *len};
			scratch->len = 0;
			rc = dkv_py_proc_call(p, &a, 1, scratch, why, whylen);
			if (!rc) {
				*mp = scratch->data;
				*len = scratch->len;
				dkv_errlog_fixed(dkv_engine_errlog(cv->e), DKV_ERRSYS_CODEC, path, plen);
			}
		}
		if (rc)
			note_failure(cv, k, encode, path, plen, why);
	}
	cconv_unref(cc);
	return rc;
}

static void conv_drop(struct dkv_conv *cv)
{
	pthread_mutex_lock(&convs_lock);
	bool last = --cv->users == 0;
	if (last)
		for (struct dkv_conv **p = &convs; *p; p = &(*p)->next)
			if (*p == cv) {
				*p = cv->next;
				break;
			}
	pthread_mutex_unlock(&convs_lock);
	if (last) {
		cconv_unref(cv->cc);
		pthread_mutex_destroy(&cv->lock);
		free(cv);
	}
}

void dkv_conv_bind(struct dkv_session *s, struct dkv_engine *e, const char *name)
{
	struct dkv_conv *old = s->conv, *cv;
	s->conv = NULL;
	if (old)
		conv_drop(old);
	if (!name)
		return;
	pthread_mutex_lock(&convs_lock);
	for (cv = convs; cv; cv = cv->next)
		if (cv->e == e && !strcmp(cv->name, name))
			break;
	if (!cv) {
		size_t n = strlen(name);
		cv = dkv_xcalloc(1, sizeof *cv + n + 1);
		cv->e = e;
		pthread_mutex_init(&cv->lock, NULL);
		memcpy(cv->name, name, n + 1);
		cv->next = convs;
		convs = cv;
	}
	cv->users++;
	pthread_mutex_unlock(&convs_lock);
	s->conv = cv;
}
