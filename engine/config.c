/*
 * config.c - configuration values by dotted key: defaults, file, overrides.
 *
 * A few dozen keys, set at startup and looked up now and then, so a flat
 * array searched linearly is all it takes.  Values are kept as msgpack
 * encodings; a string value also as a NUL-terminated copy, so that
 * dkv_config_str() can hand out a C string.
 */
#include "config.h"
#include "yaml.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct entry {
	char *key;   /* dotted name */
	uint8_t *mp; /* the value's msgpack encoding */
	size_t len;
	char *str; /* NUL-terminated copy when the value is a string, else NULL */
};

struct dkv_config {
	struct entry *v; /* current settings, unique keys */
	size_t n;
	/* Replaced settings.  dkv_config_str() promises that its result lives
	 * as long as the configuration, so old strings stay until the end. */
	struct entry *old;
	size_t nold;
};

/* The original's defaults (distkv/default.py) for the keys we use. */
static const struct {
	const char *key;
	enum { D_STR, D_INT, D_NIL } type;
	const char *s;
	int64_t i;
} defaults[] = {
	{"connect.host", D_STR, "localhost", 0},
	{"connect.port", D_INT, NULL, 27586},
	{"connect.init_timeout", D_INT, NULL, 5},
	{"connect.auth", D_NIL, NULL, 0},
	{"server.bind_default.host", D_STR, "localhost", 0},
	{"server.bind_default.port", D_INT, NULL, 27586},
	{"server.serf.host", D_STR, "localhost", 0},
	{"server.serf.port", D_INT, NULL, 7373},
	{"server.root", D_STR, ":distkv", 0},
	{"server.change.length", D_INT, NULL, 5},
	{"server.buffer", D_INT, NULL, 10},              /* per-stream ack window, messages */
	{"server.max_msg_size", D_INT, NULL, 16777216},  /* largest request, bytes */
	{"server.max_out_buffer", D_INT, NULL, 67108864}, /* unsent replies per connection
							     before we stop reading it, bytes */
	{"server.mount", D_NIL, NULL, 0},
};

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt,
						       ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static void entry_release(struct entry *e)
{
	free(e->key);
	free(e->mp);
	free(e->str);
}

static struct entry *find(const struct dkv_config *c, const char *key)
{
	for (size_t i = 0; i < c->n; i++)
		if (!strcmp(c->v[i].key, key))
			return &c->v[i];
	return NULL;
}

void dkv_config_set_raw(struct dkv_config *c, const char *key, const uint8_t *mp, size_t len)
{
	struct entry *e = find(c, key);
	struct dkv_mp_reader r;
	struct dkv_mp_item it;

	if (e) {
		c->old = dkv_xrealloc(c->old, (c->nold + 1) * sizeof *c->old);
		c->old[c->nold++] = *e;
	} else {
		c->v = dkv_xrealloc(c->v, (c->n + 1) * sizeof *c->v);
		e = &c->v[c->n++];
	}
	e->key = dkv_xstrdup(key);
	e->mp = dkv_xmalloc(len ? len : 1);
	memcpy(e->mp, mp, len);
	e->len = len;
	e->str = NULL;
	dkv_mp_reader_init(&r, mp, len);
	if (!dkv_mp_read(&r, &it) && it.type == DKV_MP_STR)
		e->str = dkv_xstrndup((const char *)it.v.s.p, it.v.s.len);
}

struct dkv_config *dkv_config_new(void)
{
	struct dkv_config *c = dkv_xcalloc(1, sizeof *c);
	struct dkv_buf b = {0};

	for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++) {
		b.len = 0;
		switch (defaults[i].type) {
		case D_STR:
			dkv_mp_cstr(&b, defaults[i].s);
			break;
		case D_INT:
			dkv_mp_int(&b, defaults[i].i);
			break;
		case D_NIL:
			dkv_mp_nil(&b);
			break;
		}
		dkv_config_set_raw(c, defaults[i].key, b.data, b.len);
	}
	dkv_buf_release(&b);
	return c;
}

void dkv_config_free(struct dkv_config *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++)
		entry_release(&c->v[i]);
	for (size_t i = 0; i < c->nold; i++)
		entry_release(&c->old[i]);
	free(c->v);
	free(c->old);
	free(c);
}

/* Set prefix.KEY for every pair of the map at r, recursing into non-empty
 * maps; anything else, lists included, is stored as the key's value.
 * `where` names the source for messages. */
static int flatten(struct dkv_config *c, struct dkv_buf *prefix, struct dkv_mp_reader *r,
		   const char *where, char *err, size_t errlen)
{
	struct dkv_mp_item it, k;
	size_t plen = prefix->len;
	int rc = 0;

	if (dkv_mp_read(r, &it) || it.type != DKV_MP_MAP)
		return fail(err, errlen, "%s: not a mapping", where);
	for (uint32_t i = 0; i < it.v.n && !rc; i++) {
		prefix->len = plen;
		if (plen)
			dkv_buf_putc(prefix, '.');
		if (dkv_mp_read(r, &k))
			return fail(err, errlen, "%s: bad value", where);
		if (k.type == DKV_MP_STR) {
			dkv_buf_append(prefix, k.v.s.p, k.v.s.len);
		} else if (k.type == DKV_MP_UINT) {
			dkv_buf_printf(prefix, "%llu", (unsigned long long)k.v.u);
		} else if (k.type == DKV_MP_INT) {
			dkv_buf_printf(prefix, "%lld", (long long)k.v.i);
		} else {
			prefix->len = plen;
			return fail(err, errlen, "%s: a key below '%s' is not a string", where,
				    dkv_buf_cstr(prefix));
		}
		if (memchr(prefix->data, 0, prefix->len))
			return fail(err, errlen, "%s: a key contains a NUL byte", where);

		struct dkv_mp_reader v = *r;
		struct dkv_mp_item vi;
		if (dkv_mp_read(&v, &vi) || dkv_mp_skip(r))
			return fail(err, errlen, "%s: bad value", where);
		if (vi.type == DKV_MP_MAP && vi.v.n) {
			struct dkv_mp_reader sub = {v.p - (r->p - v.p) + (r->p - v.p), r->p};
			/* re-read from the start of the map */
			dkv_mp_reader_init(&sub, r->p - (size_t)(r->p - v.p) - 0, 0);
			(void)sub;
			rc = -1; /* replaced below */
		}
		rc = 0;
	}
	prefix->len = plen;
	return rc;
}
