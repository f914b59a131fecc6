/*
 * config.c - configuration values by dotted key: defaults, file, overrides.
 *
 * A few dozen keys, set at startup and looked up now and then, so a flat
 * array searched linearly is all it takes.  Values are kept as msgpack
 * encodings; a string value also as a NUL-terminated copy, so that
 * dkv_config_str() can hand out a C string.
 */
#include "config.h"
#include "yamltext.h"

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

/* Set PREFIX.KEY for every pair of the map at r, recursing into non-empty
 * maps; anything else, lists and empty maps included, becomes the value
 * of its key.  `where` names the source for messages.  The input comes
 * from dkv_yaml_parse(), so it is valid and not nested too deeply. */
static int flatten(struct dkv_config *c, struct dkv_buf *prefix, struct dkv_mp_reader *r,
		   const char *where, char *err, size_t errlen)
{
	struct dkv_mp_item it, k, v;
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
		if (k.type == DKV_MP_STR && !memchr(k.v.s.p, 0, k.v.s.len)) {
			dkv_buf_append(prefix, k.v.s.p, k.v.s.len);
		} else if (k.type == DKV_MP_UINT) {
			dkv_buf_printf(prefix, "%llu", (unsigned long long)k.v.u);
		} else if (k.type == DKV_MP_INT) {
			dkv_buf_printf(prefix, "%lld", (long long)k.v.i);
		} else {
			prefix->len = plen;
			return fail(err, errlen, "%s: a key in '%s' is not a string", where,
				    plen ? dkv_buf_cstr(prefix) : "(top level)");
		}

		const uint8_t *start = r->p;
		struct dkv_mp_reader peek = *r;
		if (dkv_mp_read(&peek, &v))
			return fail(err, errlen, "%s: bad value", where);
		if (v.type == DKV_MP_MAP && v.v.n) {
			rc = flatten(c, prefix, r, where, err, errlen);
		} else {
			if (dkv_mp_skip(r))
				return fail(err, errlen, "%s: bad value", where);
			dkv_config_set_raw(c, dkv_buf_cstr(prefix), start, (size_t)(r->p - start));
		}
	}
	prefix->len = plen;
	return rc;
}

/* "line 3, column 5: reason" from dkv_yaml_parse() becomes "FILE:3:5: reason". */
static void yaml_error(char *err, size_t errlen, const char *where, const char *msg)
{
	unsigned line, col;
	int off = 0;

	if (sscanf(msg, "line %u, column %u: %n", &line, &col, &off) == 2 && off > 0)
		fail(err, errlen, "%s:%u:%u: %s", where, line, col, msg + off);
	else
		fail(err, errlen, "%s: %s", where, msg);
}

int dkv_config_load_file(struct dkv_config *c, const char *path, char *err, size_t errlen)
{
	struct dkv_buf text = {0}, mp = {0}, prefix = {0};
	struct dkv_mp_reader r;
	struct dkv_mp_item it;
	char msg[256];
	FILE *f = fopen(path, "r");
	int rc = 0;

	if (!f) {
		rc = -errno;
		fail(err, errlen, "%s: %s", path, strerror(-rc));
		return rc;
	}
	for (;;) {
		dkv_buf_reserve(&text, 4096);
		size_t n = fread(text.data + text.len, 1, text.cap - text.len, f);
		text.len += n;
		if (n)
			continue;
		if (ferror(f)) {
			rc = -(errno ? errno : EIO);
			fail(err, errlen, "%s: %s", path, strerror(-rc));
		}
		break;
	}
	fclose(f);
	if (rc)
		goto out;

	rc = dkv_yaml_parse(&mp, (const char *)text.data, text.len, msg, sizeof msg);
	if (rc) {
		yaml_error(err, errlen, path, msg);
		goto out;
	}
	dkv_mp_reader_init(&r, mp.data, mp.len);
	if (dkv_mp_read(&r, &it))
		rc = fail(err, errlen, "%s: bad value", path);
	else if (it.type == DKV_MP_NIL)
		rc = 0; /* an empty file */
	else if (it.type != DKV_MP_MAP)
		rc = fail(err, errlen, "%s: the top level is not a mapping", path);
	else {
		dkv_mp_reader_init(&r, mp.data, mp.len);
		rc = flatten(c, &prefix, &r, path, err, errlen);
	}
out:
	dkv_buf_release(&text);
	dkv_buf_release(&mp);
	dkv_buf_release(&prefix);
	return rc;
}

/* "key=" sets the empty string: a YAML document that is empty would be
 * null, but someone who typed "-C name=" most likely means "no text";
 * "key=null" or "key=~" gives null. */
int dkv_config_set(struct dkv_config *c, const char *assignment, char *err, size_t errlen)
{
	const char *eq = strchr(assignment, '=');
	struct dkv_buf mp = {0}, key = {0};
	struct dkv_mp_reader r;
	struct dkv_mp_item it;
	char msg[256];
	int rc = 0;

	if (!eq)
		return fail(err, errlen, "'%s': expected key=value", assignment);
	if (eq == assignment)
		return fail(err, errlen, "'%s': the key is empty", assignment);
	dkv_buf_append(&key, assignment, (size_t)(eq - assignment));
	if (!eq[1]) {
		dkv_mp_str(&mp, "", 0);
	} else {
		rc = dkv_yaml_parse(&mp, eq + 1, strlen(eq + 1), msg, sizeof msg);
		if (rc) {
			fail(err, errlen, "'%s': %s", assignment, msg);
			goto out;
		}
	}
	dkv_mp_reader_init(&r, mp.data, mp.len);
	if (!dkv_mp_read(&r, &it) && it.type == DKV_MP_MAP && it.v.n) {
		/* "-C server={port: 5}" means server.port */
		dkv_mp_reader_init(&r, mp.data, mp.len);
		rc = flatten(c, &key, &r, assignment, err, errlen);
	} else {
		dkv_config_set_raw(c, dkv_buf_cstr(&key), mp.data, mp.len);
	}
out:
	dkv_buf_release(&mp);
	dkv_buf_release(&key);
	return rc;
}

bool dkv_config_get(const struct dkv_config *c, const char *key, const uint8_t **mp, size_t *len)
{
	const struct entry *e = find(c, key);

	if (!e)
		return false;
	*mp = e->mp;
	*len = e->len;
	return true;
}

bool dkv_config_at(const struct dkv_config *c, size_t i, const char **key, const uint8_t **mp,
		   size_t *len)
{
	if (i >= c->n)
		return false;
	*key = c->v[i].key;
	*mp = c->v[i].mp;
	*len = c->v[i].len;
	return true;
}

static bool get_item(const struct dkv_config *c, const char *key, struct dkv_mp_item *it)
{
	const struct entry *e = find(c, key);
	struct dkv_mp_reader r;

	if (!e)
		return false;
	dkv_mp_reader_init(&r, e->mp, e->len);
	return dkv_mp_read(&r, it) == 0;
}

const char *dkv_config_str(const struct dkv_config *c, const char *key, const char *dflt)
{
	const struct entry *e = find(c, key);

	return e && e->str ? e->str : dflt;
}

/* Integers, and floats with an integral value ("timeout: 5.0"). */
int64_t dkv_config_int(const struct dkv_config *c, const char *key, int64_t dflt)
{
	struct dkv_mp_item it;

	if (!get_item(c, key, &it))
		return dflt;
	switch (it.type) {
	case DKV_MP_UINT:
		return it.v.u <= INT64_MAX ? (int64_t)it.v.u : dflt;
	case DKV_MP_INT:
		return it.v.i;
	case DKV_MP_FLOAT:
		/* -2^63 is exact as a double, 2^63 is the first value out of range */
		if (it.v.f == trunc(it.v.f) && it.v.f >= -9223372036854775808.0 &&
		    it.v.f < 9223372036854775808.0)
			return (int64_t)it.v.f;
		return dflt;
	default:
		return dflt;
	}
}

/* Floats, and integers as floats ("timeout: 5"). */
double dkv_config_float(const struct dkv_config *c, const char *key, double dflt)
{
	struct dkv_mp_item it;

	if (!get_item(c, key, &it))
		return dflt;
	switch (it.type) {
	case DKV_MP_FLOAT:
		return it.v.f;
	case DKV_MP_UINT:
		return (double)it.v.u;
	case DKV_MP_INT:
		return (double)it.v.i;
	default:
		return dflt;
	}
}

/* Booleans only: "yes" and 1 are not booleans in YAML 1.2 either. */
bool dkv_config_bool(const struct dkv_config *c, const char *key, bool dflt)
{
	struct dkv_mp_item it;

	if (!get_item(c, key, &it) || it.type != DKV_MP_BOOL)
		return dflt;
	return it.v.b;
}
