/*
 * types.c - type checks (the records and rules are in types.h): the
 * engine's checker for data writes, and the validation of type and match
 * records.
 *
 * Workload: writes are many, types and matches few (tens) and rarely
 * changed, and most paths are covered by no match.  So the checker keeps
 * a compiled copy of both subtrees -- the types with their code compiled
 * once, the matches as a pattern tree (pattern.h) -- and compiles it
 * anew only when the engine's types generation moves.  A write to a data path costs one
 * atomic load while there are no matches, and a walk of the match tree
 * (no allocation, no Python) when the path is not covered; only a
 * covered path calls Python.
 *
 * All of it runs on the loop thread, as checkers do.
 */
#include "types.h"

#include "errlog.h"
#include "pathtext.h"
#include "pattern.h"
#include "py.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t NIL_ELEM[] = {0xc0};
static const uint8_t TYPE_ELEM[] = {0xa4, 't', 'y', 'p', 'e'};
static const uint8_t MATCH_ELEM[] = {0xa5, 'm', 'a', 't', 'c', 'h'};

#define REPR_MAX 80 /* characters of an example in a message */

/* ---- text for messages ---- */

/* "int percent": path elements as the command line writes them. */
static char *words(const uint8_t *path, size_t len)
{
	struct dkv_path_iter it;
	struct dkv_buf b = {0};
	const uint8_t *el;
	size_t elen;
	dkv_path_iter_init(&it, path, len);
	while (dkv_path_iter_next(&it, &el, &elen)) {
		if (b.len)
			dkv_buf_putc(&b, ' ');
		dkv_pathtext_format(&b, el, elen, 0);
	}
	if (!b.len)
		dkv_buf_putc(&b, ':');
	return dkv_buf_cstr(&b);
}

static void repr_str(struct dkv_buf *b, const uint8_t *p, uint32_t len, bool bytes)
{
	char q = memchr(p, '\'', len) && !memchr(p, '"', len) ? '"' : '\'';
	if (bytes)
		dkv_buf_putc(b, 'b');
	dkv_buf_putc(b, q);
	for (uint32_t i = 0; i < len; i++) {
		uint8_t c = p[i];
		if (c == '\\' || c == (uint8_t)q)
			dkv_buf_printf(b, "\\%c", c);
		else if (c == '\n')
			dkv_buf_puts(b, "\\n");
		else if (c == '\t')
			dkv_buf_puts(b, "\\t");
		else if (c == '\r')
			dkv_buf_puts(b, "\\r");
		else if (c < 0x20 || c == 0x7f || (bytes && c >= 0x80))
			dkv_buf_printf(b, "\\x%02x", c);
		else
			dkv_buf_putc(b, (char)c);
	}
	dkv_buf_putc(b, q);
}

/* The shortest text that reads back as f, as Python's repr() writes it. */
static void repr_float(struct dkv_buf *b, double f)
{
	char s[40];
	if (isnan(f)) {
		dkv_buf_puts(b, "nan");
		return;
	}
	if (isinf(f)) {
		dkv_buf_puts(b, f < 0 ? "-inf" : "inf");
		return;
	}
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(s, sizeof s, "%.*g", prec, f);
		if (strtod(s, NULL) == f)
			break;
	}
	dkv_buf_puts(b, s);
	if (!strpbrk(s, ".e"))
		dkv_buf_puts(b, ".0");
}

/* One msgpack item at r as Python's repr() would write the value. */
static int repr_item(struct dkv_buf *b, struct dkv_mp_reader *r, unsigned depth)
{
	struct dkv_mp_item it;
	int rc;
	if (depth > DKV_MP_MAX_DEPTH)
		return -E2BIG;
	if ((rc = dkv_mp_read(r, &it)))
		return rc;
	switch (it.type) {
	case DKV_MP_NIL:
		dkv_buf_puts(b, "None");
		break;
	case DKV_MP_BOOL:
		dkv_buf_puts(b, it.v.b ? "True" : "False");
		break;
	case DKV_MP_UINT:
		dkv_buf_printf(b, "%llu", (unsigned long long)it.v.u);
		break;
	case DKV_MP_INT:
		dkv_buf_printf(b, "%lld", (long long)it.v.i);
		break;
	case DKV_MP_FLOAT:
		repr_float(b, it.v.f);
		break;
	case DKV_MP_STR:
	case DKV_MP_BIN:
		repr_str(b, it.v.s.p, it.v.s.len, it.type == DKV_MP_BIN);
		break;
	case DKV_MP_ARRAY:
	case DKV_MP_MAP:
		dkv_buf_putc(b, it.type == DKV_MP_ARRAY ? '[' : '{');
		for (uint32_t i = 0; i < it.v.n; i++) {
			if (i)
				dkv_buf_puts(b, ", ");
			if ((rc = repr_item(b, r, depth + 1)))
				return rc;
			if (it.type == DKV_MP_MAP) {
				dkv_buf_puts(b, ": ");
				if ((rc = repr_item(b, r, depth + 1)))
					return rc;
			}
		}
		dkv_buf_putc(b, it.type == DKV_MP_ARRAY ? ']' : '}');
		break;
	case DKV_MP_EXT:
		dkv_buf_printf(b, "<ext %d>", it.v.ext.type);
		break;
	}
	return 0;
}

/* An example's repr, cut to REPR_MAX characters. */
static char *repr(const uint8_t *mp, size_t len)
{
	struct dkv_buf b = {0};
	struct dkv_mp_reader r;
	dkv_mp_reader_init(&r, mp, len);
	if (repr_item(&b, &r, 0) < 0) {
		b.len = 0;
		dkv_buf_puts(&b, "<undecodable>");
	}
	if (b.len > REPR_MAX) {
		b.len = REPR_MAX - 3;
		dkv_buf_puts(&b, "...");
	}
	return dkv_buf_cstr(&b);
}

static int refuse(char *why, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int refuse(char *why, size_t n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, n, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* ---- records ---- */

/* The fields of a type record; each points into the record's bytes. */
struct rec {
	const uint8_t *code; /* the source text (a string's payload); NULL: none */
	uint32_t codelen;
	const uint8_t *schema; /* msgpack of the schema; NULL: none */
	size_t schemalen;
	const uint8_t *good, *bad; /* the examples' items, back to back */
	size_t goodlen, badlen;
	uint32_t ngood, nbad;
};

/* An array of examples at r: its items' bytes and count. */
static int rec_examples(struct dkv_mp_reader *r, const uint8_t **p, size_t *len, uint32_t *n)
{
	struct dkv_mp_item it;
	if (dkv_mp_read(r, &it) || it.type != DKV_MP_ARRAY)
		return -EINVAL;
	*p = r->p;
	*n = it.v.n;
	for (uint32_t i = 0; i < it.v.n; i++)
		if (dkv_mp_skip(r))
			return -EINVAL;
	*len = (size_t)(r->p - *p);
	return 0;
}

static int rec_decode(const uint8_t *mp, size_t len, struct rec *rec, char *why, size_t n)
{
	struct dkv_mp_reader r;
	struct dkv_mp_item it, k;
	memset(rec, 0, sizeof *rec);
	dkv_mp_reader_init(&r, mp, len);
	if (dkv_mp_read(&r, &it) || it.type != DKV_MP_MAP)
		return refuse(why, n, "a type record is a map {code, schema, good, bad}");
	for (uint32_t i = 0; i < it.v.n; i++) {
		if (dkv_mp_read(&r, &k))
			return refuse(why, n, "a type record is a map {code, schema, good, bad}");
		const uint8_t *at = r.p;
		struct dkv_mp_item v;
		bool str = k.type == DKV_MP_STR;
		if (str && dkv_mp_streq(&k, "code")) {
			if (dkv_mp_read(&r, &v) || (v.type != DKV_MP_STR && v.type != DKV_MP_NIL))
				return refuse(why, n, "a type's code is a string");
			rec->code = v.type == DKV_MP_STR ? v.v.s.p : NULL;
			rec->codelen = v.type == DKV_MP_STR ? v.v.s.len : 0;
			continue;
		}
		if (str && dkv_mp_streq(&k, "good")) {
			if (rec_examples(&r, &rec->good, &rec->goodlen, &rec->ngood))
				return refuse(why, n, "a type's good examples are a list");
			continue;
		}
		if (str && dkv_mp_streq(&k, "bad")) {
			if (rec_examples(&r, &rec->bad, &rec->badlen, &rec->nbad))
				return refuse(why, n, "a type's bad examples are a list");
			continue;
		}
		if (dkv_mp_skip(&r))
			return refuse(why, n, "a type record is a map {code, schema, good, bad}");
		if (str && dkv_mp_streq(&k, "schema") && !(r.p - at == 1 && *at == 0xc0)) {
			rec->schema = at;
			rec->schemalen = (size_t)(r.p - at);
		}
	}
	return 0;
}

/* The type path of a match record {type: [ELEMS...]} (an ext-3 path is
 * taken too), appended to out as element encodings. */
static int match_decode(const uint8_t *mp, size_t len, struct dkv_buf *out)
{
	struct dkv_mp_reader r;
	struct dkv_mp_item it, k, v;
	dkv_mp_reader_init(&r, mp, len);
	if (dkv_mp_read(&r, &it) || it.type != DKV_MP_MAP)
		return -EINVAL;
	for (uint32_t i = 0; i < it.v.n; i++) {
		if (dkv_mp_read(&r, &k))
			return -EINVAL;
		if (k.type != DKV_MP_STR || !dkv_mp_streq(&k, "type")) {
			if (dkv_mp_skip(&r))
				return -EINVAL;
			continue;
		}
		struct dkv_mp_reader at = r;
		struct dkv_path p;
		dkv_path_init(&p);
		int rc = dkv_path_decode(&p, &at);
		if (rc == 0 && dkv_mp_read(&r, &v) == 0 && v.type == DKV_MP_STR)
			rc = -EINVAL; /* a string is not a path here: "int percent" is ambiguous */
		if (rc == 0 && p.n == 0)
			rc = -EINVAL;
		if (rc == 0)
			dkv_buf_append(out, p.enc.data, p.enc.len);
		dkv_path_release(&p);
		return rc;
	}
	return -EINVAL;
}

/* ---- compiled types ---- */

/* One entry below (None, "type"), compiled. */
struct ctype {
	uint8_t *name;
	uint32_t namelen;
	uint32_t nkids;
	struct ctype *kids;
	bool has;                 /* the entry holds a record */
	struct dkv_py_proc *proc; /* its code; NULL: none */
	uint8_t *schema;          /* its schema (msgpack); NULL: none */
	size_t schemalen;
	char *label;              /* "int percent" */
	char *broken;             /* why the record cannot be used; NULL: it can */
};

static void ctype_compile(struct ctype *t, const struct dkv_entry *x)
{
	static const char *const params[] = {"value"};
	struct rec rec;
	char err[256];
	int rc = rec_decode(dkv_value_data(x->value), x->value->len, &rec, err, sizeof err);
	if (rc == 0 && rec.code)
		rc = dkv_py_proc_new(&t->proc, (const char *)rec.code, rec.codelen, params, 1, false,
				     err, sizeof err);
	if (rc) {
		struct dkv_buf b = {0};
		dkv_buf_printf(&b, "type %s cannot be used: %s", t->label, err);
		t->broken = dkv_buf_cstr(&b);
		return;
	}
	if (rec.schema) {
		t->schema = dkv_xmalloc(rec.schemalen);
		memcpy(t->schema, rec.schema, rec.schemalen);
		t->schemalen = rec.schemalen;
	}
}

static void ctype_build(struct ctype *t, const struct dkv_entry *x, struct dkv_path *p)
{
	t->has = dkv_entry_has_value(x);
	if (t->has) {
		t->label = words(p->enc.data, p->enc.len);
		ctype_compile(t, x);
	}
	for (const struct dkv_entry *k = x->kids; k; k = k->next)
		t->nkids++;
	t->kids = t->nkids ? dkv_xcalloc(t->nkids, sizeof *t->kids) : NULL;
	uint32_t i = 0;
	for (const struct dkv_entry *k = x->kids; k; k = k->next, i++) {
		struct ctype *c = &t->kids[i];
		c->name = dkv_xmalloc(k->namelen);
		memcpy(c->name, k->name, k->namelen);
		c->namelen = k->namelen;
		size_t at = p->enc.len;
		dkv_buf_append(&p->enc, k->name, k->namelen);
		ctype_build(c, k, p);
		p->enc.len = at;
	}
}

static void ctype_release(struct ctype *t)
{
	for (uint32_t i = 0; i < t->nkids; i++)
		ctype_release(&t->kids[i]);
	free(t->kids);
	free(t->name);
	dkv_py_proc_free(t->proc);
	free(t->schema);
	free(t->label);
	free(t->broken);
	memset(t, 0, sizeof *t);
}

/* Whether t or an entry below it holds a record; *sub its label. */
static bool ctype_any_below(const struct ctype *t, const char **sub)
{
	for (uint32_t i = 0; i < t->nkids; i++) {
		if (t->kids[i].has) {
			*sub = t->kids[i].label;
			return true;
		}
		if (ctype_any_below(&t->kids[i], sub))
			return true;
	}
	return false;
}

static const struct ctype *ctype_child(const struct ctype *t, const uint8_t *el, size_t len)
{
	for (uint32_t i = 0; i < t->nkids; i++)
		if (t->kids[i].namelen == len && !memcmp(t->kids[i].name, el, len))
			return &t->kids[i];
	return NULL;
}

/* The chain of the type path (element encodings): the records of its
 * prefixes, top first, in out (malloc'd), and how many.  *full: the
 * path's own record is the last one. */
static unsigned ctype_chain(const struct ctype *root, const uint8_t *path, size_t len,
			    const struct ctype ***out, bool *full)
{
	struct dkv_path_iter it;
	const uint8_t *el;
	size_t elen;
	unsigned n = 0, cap = 0;
	const struct ctype *t = root;
	*out = NULL;
	*full = false;
	dkv_path_iter_init(&it, path, len);
	while (t && dkv_path_iter_next(&it, &el, &elen)) {
		t = ctype_child(t, el, elen);
		*full = t && t->has;
		if (!*full)
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 4;
			*out = dkv_xrealloc(*out, cap * sizeof **out);
		}
		(*out)[n++] = t;
	}
	*full = *full && t;
	return n;
}

/* ---- compiled matches ---- */

/* The payload of a match record in the compiled pattern tree. */
struct cmatch {
	uint8_t *pat;                /* the pattern's element encodings */
	size_t patlen;
	char *label;                 /* the pattern: "stats # quota" */
	uint8_t *type;               /* the type path's element encodings */
	size_t typelen;
	char *tlabel;                /* "int percent" */
	const struct ctype **chain;  /* the type's chain, top first */
	unsigned nchain;
	bool missing;                /* the type has no record (or the match none) */
};

static void *cmatch_make(void *ctx, const struct dkv_entry *x, const struct dkv_path *p)
{
	const struct ctype *types = ctx;
	struct cmatch *m = dkv_xcalloc(1, sizeof *m);
	struct dkv_buf tp = {0};
	m->label = words(p->enc.data, p->enc.len);
	m->pat = dkv_xmalloc(p->enc.len + 1);
	if (p->enc.len)
		memcpy(m->pat, p->enc.data, p->enc.len);
	m->patlen = p->enc.len;
	if (match_decode(dkv_value_data(x->value), x->value->len, &tp) == 0) {
		bool full;
		m->tlabel = words(tp.data, tp.len);
		m->nchain = ctype_chain(types, tp.data, tp.len, &m->chain, &full);
		m->missing = !full;
		m->type = dkv_buf_detach(&tp, &m->typelen);
	} else {
		m->tlabel = dkv_xstrdup("(not a type path)");
		m->missing = true;
	}
	dkv_buf_release(&tp);
	return m;
}

static void cmatch_drop(void *data)
{
	struct cmatch *m = data;
	free(m->pat);
	free(m->label);
	free(m->type);
	free(m->tlabel);
	free(m->chain);
	free(m);
}

struct type_ref {
	const uint8_t *tp;
	size_t len;
};

static void *uses_type(void *ctx, void *data)
{
	const struct type_ref *r = ctx;
	struct cmatch *m = data;
	return m->type && m->typelen == r->len && !memcmp(m->type, r->tp, r->len) ? m : NULL;
}

/* A match that uses the type path tp[0..len), or NULL. */
static const struct cmatch *cmatch_user(const struct dkv_pnode *root, const uint8_t *tp,
					size_t len)
{
	struct type_ref r = {tp, len};
	return dkv_pattern_each(root, uses_type, &r);
}

/* ---- the checker ---- */

struct dkv_types {
	struct dkv_engine *e;
	uint64_t gen;          /* the engine's types generation compiled */
	bool built;
	struct ctype types;    /* (None, "type") */
	struct dkv_pnode matches; /* (None, "match"): struct cmatch payloads */
	struct dkv_buf out;    /* what a check's code returned (ignored) */
};

static struct dkv_entry *meta_child(struct dkv_engine *e, const uint8_t *el, size_t len)
{
	struct dkv_entry *m = dkv_entry_child(e, dkv_engine_root(e), NIL_ELEM, 1);
	return m ? dkv_entry_child(e, m, el, len) : NULL;
}

/* Compile the records anew if they changed since. */
static void refresh(struct dkv_types *t)
{
	uint64_t gen = dkv_engine_types_gen(t->e);
	if (t->built && t->gen == gen)
		return;
	ctype_release(&t->types);
	dkv_pattern_release(&t->matches, cmatch_drop);
	struct dkv_path p;
	struct dkv_entry *x;
	dkv_path_init(&p);
	if ((x = meta_child(t->e, TYPE_ELEM, sizeof TYPE_ELEM)))
		ctype_build(&t->types, x, &p);
	t->types.has = false; /* the root is no type */
	dkv_path_release(&p);
	if ((x = meta_child(t->e, MATCH_ELEM, sizeof MATCH_ELEM)))
		dkv_pattern_build(&t->matches, x, cmatch_make, &t->types);
	t->gen = gen;
	t->built = true;
}

/* One type's own checks of the value v: its schema, then its code.  0,
 * or why it failed: -EINVAL (the value is refused), -ENOEXEC (the type
 * cannot be used), -ETIMEDOUT, -EBUSY, -ERANGE (the script misbehaved:
 * py.h); the reason is in why either way. */
static int check_one(struct dkv_types *t, const struct ctype *ty, const uint8_t *v, size_t len,
		     char *why, size_t n)
{
	int rc;
	if (ty->broken) {
		refuse(why, n, "%s", ty->broken);
		return -ENOEXEC;
	}
	if (ty->schema && (rc = dkv_py_schema_check(ty->schema, ty->schemalen, v, len, why, n)))
		return rc;
	if (ty->proc) {
		struct dkv_py_arg arg = {v, len};
		t->out.len = 0;
		if ((rc = dkv_py_proc_call(ty->proc, &arg, 1, &t->out, why, n)))
			return rc;
	}
	return 0;
}

/* The checks of a chain of types, top first; *bad (may be NULL) gets
 * the one that failed. */
static int check_chain_at(struct dkv_types *t, const struct ctype *const *chain, unsigned nchain,
			  const uint8_t *v, size_t len, char *why, size_t n,
			  const struct ctype **bad)
{
	int rc;
	for (unsigned i = 0; i < nchain; i++) {
		if ((rc = check_one(t, chain[i], v, len, why, n))) {
			if (bad)
				*bad = chain[i];
			return rc;
		}
	}
	return 0;
}

static int check_chain(struct dkv_types *t, const struct ctype *const *chain, unsigned nchain,
		       const uint8_t *v, size_t len, char *why, size_t n)
{
	return check_chain_at(t, chain, nchain, v, len, why, n, NULL);
}

#define ERR_VALUE_MAX 1024 /* a refused value bigger than this is not kept in the error log */

/* A write at c's path failed its type: an occurrence for the error log
 * (errlog.h).  A refusal by the type's code or schema is a warning (the
 * type did its job, but somebody writes what it refuses); a type that
 * cannot run is an error. */
static void note_failure(struct dkv_types *t, const struct dkv_change *c, const struct cmatch *m,
			 const struct ctype *bad, int rc, const char *why)
{
	struct dkv_errlog *el = dkv_engine_errlog(t->e);
	if (!el)
		return;
	struct dkv_buf data = {0};
	bool with_value = c->value_len <= ERR_VALUE_MAX;
	dkv_mp_map(&data, 2 + with_value);
	dkv_mp_cstr(&data, "type");
	dkv_mp_cstr(&data, bad ? bad->label : m->tlabel);
	dkv_mp_cstr(&data, "match");
	dkv_mp_cstr(&data, m->label);
	if (with_value) {
		dkv_mp_cstr(&data, "value");
		dkv_buf_append(&data, c->value, c->value_len);
	}
	struct dkv_errlog_occ o = {
		.sys = DKV_ERRSYS_TYPE,
		.path = c->path,
		.plen = c->path_len,
		.severity = rc == -EINVAL ? DKV_SEV_WARNING : DKV_SEV_ERROR,
		.message = why,
		.data = data.data,
		.dlen = data.len,
	};
	dkv_errlog_note(el, &o);
	dkv_buf_release(&data);
}

static int check_data(struct dkv_types *t, const struct dkv_change *c, char *why, size_t n)
{
	refresh(t);
	if (!t->matches.nkids && !t->matches.data)
		return 0;
	const struct cmatch *m = dkv_pattern_match(&t->matches, c->path, c->path_len);
	if (!m)
		return 0;
	const struct ctype *bad = NULL;
	int rc;
	if (m->missing) {
		refuse(why, n, "type %s of match %s does not exist", m->tlabel, m->label);
		rc = -ENOENT;
	} else {
		rc = check_chain_at(t, m->chain, m->nchain, c->value, c->value_len, why, n, &bad);
	}
	if (!rc) {
		dkv_errlog_fixed(dkv_engine_errlog(t->e), DKV_ERRSYS_TYPE, c->path, c->path_len);
		return 0;
	}
	note_failure(t, c, m, bad, rc, why);
	return -EINVAL;
}

/* ---- subtypes of a changed type ---- */

/* The chain of a subtype below a changed type, built along the walk:
 * the supertypes' records, the new record, then the records between. */
struct sub_walk {
	struct dkv_types *t;
	const struct ctype **chain;
	unsigned n, cap;
	const char *label; /* the changed type's */
	char *why;
	size_t whylen;
};

/* The subtype's (at ct, record x) examples still do what they say. */
static int recheck_one(struct sub_walk *w, const struct ctype *ct, const struct dkv_entry *x)
{
	struct rec rec;
	char err[256];
	char *ex = NULL;
	int rc = 0;
	if (rec_decode(dkv_value_data(x->value), x->value->len, &rec, err, sizeof err))
		return 0; /* already unusable; its checks say so */
	struct dkv_mp_reader r;
	dkv_mp_reader_init(&r, rec.good, rec.goodlen);
	for (uint32_t i = 0; i < rec.ngood && !rc; i++) {
		const uint8_t *at = r.p;
		dkv_mp_skip(&r);
		size_t len = (size_t)(r.p - at);
		if (check_chain(w->t, w->chain, w->n, at, len, err, sizeof err)) {
			ex = repr(at, len);
			rc = refuse(w->why, w->whylen, "type %s: good example %s of subtype %s fails: %s",
				    w->label, ex, ct->label, err);
		}
	}
	dkv_mp_reader_init(&r, rec.bad, rec.badlen);
	for (uint32_t i = 0; i < rec.nbad && !rc; i++) {
		const uint8_t *at = r.p;
		dkv_mp_skip(&r);
		size_t len = (size_t)(r.p - at);
		if (!check_chain(w->t, w->chain, w->n, at, len, err, sizeof err)) {
			ex = repr(at, len);
			rc = refuse(w->why, w->whylen, "type %s: bad example %s of subtype %s passes",
				    w->label, ex, ct->label);
		}
	}
	free(ex);
	return rc;
}

static int recheck_below(struct sub_walk *w, const struct ctype *ct, const struct dkv_entry *x)
{
	int rc = 0;
	for (const struct dkv_entry *k = x->kids; k && !rc; k = k->next) {
		const struct ctype *c = ctype_child(ct, k->name, k->namelen);
		if (!c)
			continue;
		if (c->has) {
			if (w->n == w->cap) {
				w->cap = w->cap ? 2 * w->cap : 8;
				w->chain = dkv_xrealloc(w->chain, w->cap * sizeof *w->chain);
			}
			w->chain[w->n++] = c;
			rc = recheck_one(w, c, k);
		}
		if (!rc)
			rc = recheck_below(w, c, k);
		if (c->has)
			w->n--;
	}
	return rc;
}

/* Every stored subtype of the type at tp still passes its good examples
 * and refuses its bad ones with self, the new record, in its chain. */
static int recheck_subtypes(struct dkv_types *t, const uint8_t *tp, size_t tplen,
			    const struct ctype *const *chain, unsigned nchain,
			    const struct ctype *self, const char *label, char *why, size_t n)
{
	struct dkv_entry *x = meta_child(t->e, TYPE_ELEM, sizeof TYPE_ELEM);
	const struct ctype *ct = &t->types;
	struct dkv_path_iter it;
	const uint8_t *el;
	size_t elen;
	x = x ? dkv_entry_lookup(t->e, x, tp, tplen, false) : NULL;
	dkv_path_iter_init(&it, tp, tplen);
	while (ct && dkv_path_iter_next(&it, &el, &elen))
		ct = ctype_child(ct, el, elen);
	if (!x || !ct || !x->kids)
		return 0;
	struct sub_walk w = {.t = t, .label = label, .why = why, .whylen = n};
	w.cap = nchain + 8;
	w.chain = dkv_xmalloc(w.cap * sizeof *w.chain);
	for (unsigned i = 0; i < nchain; i++)
		w.chain[w.n++] = chain[i];
	w.chain[w.n++] = self;
	int rc = recheck_below(&w, ct, x);
	free(w.chain);
	return rc;
}

/* A new type record at tp (the type path): compiles, and its examples
 * do what they say, with the supertypes' checks before its own. */
static int check_type_record(struct dkv_types *t, const uint8_t *tp, size_t tplen,
			     const uint8_t *v, size_t vlen, char *why, size_t n)
{
	static const char *const params[] = {"value"};
	struct rec rec;
	struct ctype self = {0};
	const struct ctype **chain = NULL;
	char err[256];
	char *label = words(tp, tplen), *ex = NULL;
	int rc;

	if ((rc = rec_decode(v, vlen, &rec, why, n)))
		goto out;
	/* the supertypes: every prefix but the path itself */
	struct dkv_path_iter it;
	const uint8_t *el;
	size_t elen, plen = 0;
	dkv_path_iter_init(&it, tp, tplen);
	while (dkv_path_iter_next(&it, &el, &elen))
		plen = (size_t)(el - tp);
	bool full = true;
	unsigned nchain = plen ? ctype_chain(&t->types, tp, plen, &chain, &full) : 0;
	if (!full) {
		char *sup = words(tp, plen);
		rc = refuse(why, n, "type %s: its supertype %s does not exist", label, sup);
		free(sup);
		goto out;
	}
	if (rec.code && (rc = dkv_py_proc_new(&self.proc, (const char *)rec.code, rec.codelen,
					      params, 1, false, err, sizeof err))) {
		rc = refuse(why, n, "%s", err);
		goto out;
	}
	self.schema = (uint8_t *)rec.schema;
	self.schemalen = rec.schemalen;
	if ((rec.code || rec.schema) && (!rec.ngood || !rec.nbad)) {
		rc = refuse(why, n, "type %s needs good and bad examples", label);
		goto out;
	}
	struct dkv_mp_reader r;
	dkv_mp_reader_init(&r, rec.good, rec.goodlen);
	for (uint32_t i = 0; i < rec.ngood; i++) {
		const uint8_t *at = r.p;
		dkv_mp_skip(&r);
		size_t len = (size_t)(r.p - at);
		if (check_chain(t, chain, nchain, at, len, err, sizeof err) ||
		    check_one(t, &self, at, len, err, sizeof err)) {
			ex = repr(at, len);
			rc = refuse(why, n, "good example %s fails: %s", ex, err);
			goto out;
		}
	}
	dkv_mp_reader_init(&r, rec.bad, rec.badlen);
	for (uint32_t i = 0; i < rec.nbad; i++) {
		const uint8_t *at = r.p;
		dkv_mp_skip(&r);
		size_t len = (size_t)(r.p - at);
		if (!check_chain(t, chain, nchain, at, len, err, sizeof err) &&
		    !check_one(t, &self, at, len, err, sizeof err)) {
			ex = repr(at, len);
			rc = refuse(why, n, "bad example %s passes", ex);
			goto out;
		}
	}
	self.label = label;
	rc = recheck_subtypes(t, tp, tplen, chain, nchain, &self, label, why, n);
	self.label = NULL;
out:
	dkv_py_proc_free(self.proc);
	free(chain);
	free(label);
	free(ex);
	return rc;
}

/* A type may go when no match uses it and it has no subtypes. */
static int check_type_delete(struct dkv_types *t, const uint8_t *tp, size_t tplen, char *why,
			     size_t n)
{
	const struct cmatch *u = cmatch_user(&t->matches, tp, tplen);
	const struct ctype *ty = &t->types;
	const char *sub = NULL;
	struct dkv_path_iter it;
	const uint8_t *el;
	size_t elen;
	if (u) {
		char *label = words(tp, tplen);
		int rc = refuse(why, n, "type %s is used by match %s", label, u->label);
		free(label);
		return rc;
	}
	dkv_path_iter_init(&it, tp, tplen);
	while (ty && dkv_path_iter_next(&it, &el, &elen))
		ty = ctype_child(ty, el, elen);
	if (ty && ty->has && ctype_any_below(ty, &sub))
		return refuse(why, n, "type %s is the supertype of %s", ty->label, sub);
	return 0;
}

static int check_match_record(struct dkv_types *t, const uint8_t *v, size_t vlen, char *why,
			      size_t n)
{
	struct dkv_buf tp = {0};
	int rc = match_decode(v, vlen, &tp);
	if (rc) {
		rc = refuse(why, n, "a match record is {type: [ELEMS...]}, a non-empty list");
	} else {
		const struct ctype **chain = NULL;
		bool full;
		ctype_chain(&t->types, tp.data, tp.len, &chain, &full);
		free(chain);
		if (!full) {
			char *label = words(tp.data, tp.len);
			rc = refuse(why, n, "type %s does not exist", label);
			free(label);
		}
	}
	dkv_buf_release(&tp);
	return rc;
}

/* Whether path starts with the element el; *rest is what follows. */
static bool below(const uint8_t *path, size_t len, const uint8_t *el, size_t elen,
		  size_t *rest)
{
	if (len < elen || memcmp(path, el, elen))
		return false;
	*rest = elen;
	return true;
}

static int checker(void *ctx, struct dkv_engine *e, const struct dkv_change *c, char *why,
		   size_t n)
{
	struct dkv_types *t = ctx;
	size_t at;
	(void)e;
	if (!c->internal)
		return c->value ? check_data(t, c, why, n) : 0;
	if (below(c->path, c->path_len, TYPE_ELEM, sizeof TYPE_ELEM, &at)) {
		refresh(t);
		if (at == c->path_len)
			return c->value ? refuse(why, n, "the type root holds no record") : 0;
		if (!c->value)
			return check_type_delete(t, c->path + at, c->path_len - at, why, n);
		return check_type_record(t, c->path + at, c->path_len - at, c->value,
					 c->value_len, why, n);
	}
	if (below(c->path, c->path_len, MATCH_ELEM, sizeof MATCH_ELEM, &at)) {
		if (!c->value)
			return 0;
		refresh(t);
		if (at == c->path_len)
			return refuse(why, n, "the match root holds no record");
		return check_match_record(t, c->value, c->value_len, why, n);
	}
	return 0;
}

struct dkv_types *dkv_types_attach(struct dkv_engine *e)
{
	struct dkv_types *t = dkv_xcalloc(1, sizeof *t);
	t->e = e;
	dkv_engine_add_checker(e, checker, t);
	return t;
}

void dkv_types_free(struct dkv_types *t)
{
	if (!t)
		return;
	ctype_release(&t->types);
	dkv_pattern_release(&t->matches, cmatch_drop);
	dkv_buf_release(&t->out);
	free(t);
}

int dkv_types_match(struct dkv_types *t, const uint8_t *path, size_t len,
		    struct dkv_buf *pattern, struct dkv_buf *type)
{
	refresh(t);
	const struct cmatch *m = dkv_pattern_match(&t->matches, path, len);
	if (!m)
		return -ENOENT;
	dkv_buf_append(pattern, m->pat, m->patlen);
	if (m->type)
		dkv_buf_append(type, m->type, m->typelen);
	return 0;
}
