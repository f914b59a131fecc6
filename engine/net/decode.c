/*
 * decode.c - requests: finding a message's fields, and reading the
 * fields the actions share (integers, flags, the path) with one error
 * dialect.  Client connections and cluster links both decode with it.
 */
#include "net.h"
#include "text.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* ---- requests ---- */

int dkv__msg_decode(struct dkv_msg *m, const uint8_t *p, size_t len, char *err, size_t errlen)
{
	struct dkv_mp_reader r;
	struct dkv_mp_item it, k;

	m->n = 0;
	m->has_seq = false;
	m->seq = 0;
	dkv_mp_reader_init(&r, p, len);
	if (dkv_mp_read(&r, &it) || it.type != DKV_MP_MAP) {
		snprintf(err, errlen, "a request must be a map");
		return -EINVAL;
	}
	if (it.v.n > DKV_MSG_MAX_FIELDS) {
		snprintf(err, errlen, "a request has at most %d fields", DKV_MSG_MAX_FIELDS);
		return -EINVAL;
	}
	for (uint32_t i = 0; i < it.v.n; i++) {
		if (dkv_mp_read(&r, &k) || (k.type != DKV_MP_STR && k.type != DKV_MP_BIN)) {
			snprintf(err, errlen, "request keys must be strings");
			return -EINVAL;
		}
		const uint8_t *v = r.p;
		if (dkv_mp_skip(&r)) {
			snprintf(err, errlen, "malformed request");
			return -EINVAL;
		}
		struct dkv_field *f = &m->f[m->n++];
		f->key = k.v.s.p;
		f->keylen = k.v.s.len;
		f->val = v;
		f->vallen = (uint32_t)(r.p - v);
	}
	const struct dkv_field *s = dkv__msg_get(m, "seq");
	if (s) {
		struct dkv_mp_reader sr;
		dkv_mp_reader_init(&sr, s->val, s->vallen);
		if (!dkv_mp_read(&sr, &it) && it.type == DKV_MP_UINT) {
			m->has_seq = true;
			m->seq = it.v.u;
		}
	}
	return 0;
}

const struct dkv_field *dkv__msg_get(const struct dkv_msg *m, const char *key)
{
	size_t kl = strlen(key);
	for (unsigned i = 0; i < m->n; i++)
		if (m->f[i].keylen == kl && !memcmp(m->f[i].key, key, kl))
			return &m->f[i];
	return NULL;
}

/* The field whose key or value holds the byte at q. */
static const struct dkv_field *field_at(const struct dkv_msg *m, const uint8_t *q, bool *in_key)
{
	for (unsigned i = 0; i < m->n; i++) {
		const struct dkv_field *f = &m->f[i];
		*in_key = q >= f->key && q < f->key + f->keylen;
		if (*in_key || (q >= f->val && q < f->val + f->vallen))
			return f;
	}
	return NULL;
}

int dkv__msg_check_text(const struct dkv_msg *m, const uint8_t *p, size_t len, char *err,
			size_t errlen)
{
	size_t from = 0, at, bad;
	/* one pass over the whole message: the fields follow the map's head */
	while (dkv_mp_find_bad_utf8(p + from, len - from, &at, &bad)) {
		const uint8_t *s = p + from + at;
		bool in_key;
		const struct dkv_field *f = field_at(m, s, &in_key);
		if (!f)
			return 0; /* not reached: the message is the map of m's fields */
		if (in_key) {
			snprintf(err, errlen, "a field name is not valid UTF-8 (byte 0x%02x at offset %zu)",
				 s[bad], bad);
			return -EINVAL;
		}
		if (f->keylen == 4 && !memcmp(f->key, "path", 4)) {
			from = (size_t)(f->val + f->vallen - p); /* an array of elements: any str */
			continue;
		}
		snprintf(err, errlen,
			 "field '%.*s' holds a string that is not valid UTF-8 (byte 0x%02x at offset "
			 "%zu of the string): text must be UTF-8; send bytes as msgpack bin",
			 (int)(f->keylen > 40 ? 40 : f->keylen), (const char *)f->key, s[bad], bad);
		return -EINVAL;
	}
	return 0;
}

/* ---- fields ---- */

int dkv__req_bad_field(struct dkv_req *q, const char *key, const char *want)
{
	snprintf(q->err, sizeof q->err, "field '%s' must be %s", key, want);
	return -EINVAL;
}

/* An integer (or a bool, which old clients send for nchain). */
int dkv__req_int(struct dkv_req *q, const char *key, int64_t dflt, int64_t *out)
{
	const struct dkv_field *f = dkv__msg_get(q->m, key);
	struct dkv_mp_reader r;
	struct dkv_mp_item it;
	*out = dflt;
	if (!f)
		return 0;
	dkv_mp_reader_init(&r, f->val, f->vallen);
	if (dkv_mp_read(&r, &it))
		return dkv__req_bad_field(q, key, "an integer");
	switch (it.type) {
	case DKV_MP_NIL:
		return 0;
	case DKV_MP_BOOL:
		*out = it.v.b;
		return 0;
	case DKV_MP_UINT:
		*out = it.v.u > INT64_MAX ? INT64_MAX : (int64_t)it.v.u;
		return 0;
	case DKV_MP_INT:
		*out = it.v.i;
		return 0;
	default:
		return dkv__req_bad_field(q, key, "an integer");
	}
}

int dkv__req_bool(struct dkv_req *q, const char *key, bool *out)
{
	int64_t v;
	int rc = dkv__req_int(q, key, 0, &v);
	*out = v != 0;
	return rc;
}

/* The request's path.  Every action that takes a path needs one (an
 * empty one for the root), so that a client that forgot the field cannot
 * read or overwrite the root by accident. */
int dkv__req_path(struct dkv_req *q, struct dkv_path *p)
{
	const struct dkv_field *f = dkv__msg_get(q->m, "path");
	struct dkv_mp_reader r;
	if (!f || (f->vallen == 1 && f->val[0] == 0xc0))
		return dkv__req_bad_field(q, "path", "given: a path (ext type 3 or an array; empty for the root)");
	dkv_mp_reader_init(&r, f->val, f->vallen);
	int rc = dkv_path_decode(p, &r);
	if (rc == -E2BIG) {
		snprintf(q->err, sizeof q->err, "path too long (limit %d elements)",
			 DKV_PATH_MAX_ELEMS);
		return rc;
	}
	if (rc)
		return dkv__req_bad_field(q, "path", "a path (ext type 3 or an array of elements)");
	return 0;
}

void dkv__describe_path(const struct dkv_path *p, char *buf, size_t len)
{
	struct dkv_buf b = {0};
	dkv_path_describe(&b, p->enc.data, p->enc.len);
	snprintf(buf, len, "%s", b.len > 200 ? "(a long path)" : dkv_buf_cstr(&b));
	dkv_buf_release(&b);
}

int dkv__req_lookup(struct dkv_req *q, const struct dkv_path *p, bool internal,
		    struct dkv_entry **out)
{
	int rc = dkv_engine_find(q->e, q->sess, p->enc.data, p->enc.len, internal, q->mode, out);
	if (rc == DKV_E_INTERNAL)
		return 0; /* None is reachable only through *_internal: nothing there */
	if (rc == -EACCES)
		snprintf(q->err, sizeof q->err, "%s", q->sess->why);
	return rc;
}
