/*
 * act_auth.c - logging in and managing users: auth, auth_key, auth_info,
 * auth_list, auth_get, auth_set, set_auth_typ (doc/protocol.md, "Logging
 * in, users and ACLs").  Records and methods are engine/auth.c's; this
 * file speaks the protocol and keeps the requests that wait for the
 * hashing thread.
 */
#include "net.h"

#include "acl.h"
#include "auth.h"
#include "report.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOGIN_FAILED "Login failed: unknown user or wrong password"
#define IDENT_MAX 64     /* bytes of a user name */
#define PASSWORD_MAX 1024 /* bytes of a password */

/* A request waiting for the hashing thread. */
struct dkv__authwait {
	struct dkv__authwait *next; /* in conn->authwaits */
	struct dkv_conn *c;
	struct dkv_hash_job *job;
	uint64_t seq;
	bool set;       /* auth_set (else auth) */
	int method;
	char ident[IDENT_MAX + 1];
	/* auth_set only */
	struct dkv_buf aux; /* the record's new _aux (msgpack); empty: keep */
	enum dkv_precond pre;
	char pre_node[256];
	uint64_t pre_tick;
	int64_t nchain;
};

static struct dkv_hasher *hasher(struct dkv_server *s)
{
	if (!s->hasher)
		s->hasher = dkv_hasher_new(s->loop);
	return s->hasher;
}

static void wait_free(struct dkv__authwait *w)
{
	struct dkv__authwait **pp = &w->c->authwaits;
	while (*pp != w)
		pp = &(*pp)->next;
	*pp = w->next;
	dkv_buf_release(&w->aux);
	free(w);
}

void dkv__auth_conn_gone(struct dkv_conn *c)
{
	while (c->authwaits) {
		dkv_hash_job_detach(c->authwaits->job);
		wait_free(c->authwaits);
	}
	sodium_memzero(c->auth_sk, sizeof c->auth_sk);
	dkv_session_release(&c->sess);
}

/* ---- fields ---- */

static int req_str(struct dkv_req *q, const char *key, bool need, const uint8_t **p, size_t *len)
{
	const struct dkv_field *f = dkv__msg_get(q->m, key);
	struct dkv_mp_reader r;
	struct dkv_mp_item it;
	*p = NULL;
	*len = 0;
	if (!f)
		return need ? dkv__req_bad_field(q, key, "a string") : 0;
	dkv_mp_reader_init(&r, f->val, f->vallen);
	if (dkv_mp_read(&r, &it) || it.type != DKV_MP_STR)
		return dkv__req_bad_field(q, key, "a string");
	*p = it.v.s.p;
	*len = it.v.s.len;
	return 0;
}

static int req_method(struct dkv_req *q, int *method)
{
	const uint8_t *p;
	size_t len;
	int rc = req_str(q, "typ", true, &p, &len);
	if (rc)
		return rc;
	*method = dkv_auth_method_parse(p, len);
	if (*method == DKV_AUTH_NONE) {
		snprintf(q->err, sizeof q->err,
			 "unknown auth method '%.*s' (known: root, _test, password)",
			 (int)(len > 64 ? 64 : len), (const char *)p);
		return -EINVAL;
	}
	return 0;
}

/* A user name: 1 to IDENT_MAX bytes of letters, digits and "_.-@",
 * starting with a letter, digit or "_". */
static int req_ident(struct dkv_req *q, char *out)
{
	const uint8_t *p;
	size_t len;
	int rc = req_str(q, "ident", true, &p, &len);
	if (rc)
		return rc;
	bool ok = len > 0 && len <= IDENT_MAX && p[0] != '.' && p[0] != '-' && p[0] != '@';
	for (size_t i = 0; ok && i < len; i++)
		ok = (p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z') ||
		     (p[i] >= '0' && p[i] <= '9') || strchr("_.-@", p[i]);
	if (!ok)
		return dkv__req_bad_field(q, "ident",
					  "a user name: 1 to 64 letters, digits or _.-@");
	memcpy(out, p, len);
	out[len] = 0;
	return 0;
}

/* "kind" must be "user" (the only kind there is). */
static int req_kind(struct dkv_req *q)
{
	const uint8_t *p;
	size_t len;
	int rc = req_str(q, "kind", false, &p, &len);
	if (rc)
		return rc;
	if (p && !(len == 4 && !memcmp(p, "user", 4)))
		return dkv__req_bad_field(q, "kind", "\"user\"");
	return 0;
}

/* data.password, opened with the connection's key, into pw (wiped by
 * the caller).  0 with *len 0 when there is none. */
static int req_password(struct dkv_req *q, uint8_t *pw, size_t *len)
{
	const struct dkv_field *f = dkv__msg_get(q->m, "data");
	struct dkv_mp_reader r;
	struct dkv_mp_item it, k, v;
	*len = 0;
	if (!f)
		return 0;
	dkv_mp_reader_init(&r, f->val, f->vallen);
	if (dkv_mp_read(&r, &it) || (it.type != DKV_MP_MAP && it.type != DKV_MP_NIL))
		return dkv__req_bad_field(q, "data", "a map");
	for (uint32_t i = 0; it.type == DKV_MP_MAP && i < it.v.n; i++) {
		if (dkv_mp_read(&r, &k))
			return dkv__req_bad_field(q, "data", "a map");
		if (!dkv_mp_streq(&k, "password")) {
			if (dkv_mp_skip(&r))
				return dkv__req_bad_field(q, "data", "a map");
			continue;
		}
		if (dkv_mp_read(&r, &v) || v.type != DKV_MP_BIN ||
		    v.v.s.len <= crypto_box_SEALBYTES ||
		    v.v.s.len > crypto_box_SEALBYTES + PASSWORD_MAX)
			return dkv__req_bad_field(q, "data.password",
						  "a password sealed to the connection's auth_key");
		if (!q->c->has_key) {
			snprintf(q->err, sizeof q->err,
				 "ask for the connection's key (auth_key) before sending a password");
			return -EINVAL;
		}
		if (crypto_box_seal_open(pw, v.v.s.p, v.v.s.len, q->c->auth_pk, q->c->auth_sk)) {
			snprintf(q->err, sizeof q->err,
				 "data.password is not sealed to this connection's auth_key");
			return -EINVAL;
		}
		*len = v.v.s.len - crypto_box_SEALBYTES;
	}
	return 0;
}

/* ---- replies ---- */

/* The stream a successful login answers with: start, end. */
static void login_ok(struct dkv_conn *c, uint64_t seq)
{
	static const struct dkv_stream_ops ops = {NULL, NULL};
	struct dkv_stream *st = dkv__stream_new(c, seq, &ops, NULL);
	dkv__stream_state(st, "start");
	dkv__stream_end(st);
	dkv__conn_flush(c);
}

static void reply_error_seq(struct dkv_conn *c, uint64_t seq, const char *msg)
{
	struct dkv_msg m = {.has_seq = true, .seq = seq};
	dkv__reply_error(c, &m, "%s", msg);
	dkv__conn_flush(c);
}

/* The record's field key (raw msgpack bytes), or NULL. */
static const uint8_t *record_field(const struct dkv_entry *ent, const char *key, size_t *len)
{
	struct dkv_mp_reader r;
	struct dkv_mp_item it, k;
	if (!ent || !dkv_entry_has_value(ent))
		return NULL;
	dkv_mp_reader_init(&r, dkv_value_data(ent->value), ent->value->len);
	if (dkv_mp_read(&r, &it) || it.type != DKV_MP_MAP)
		return NULL;
	for (uint32_t i = 0; i < it.v.n; i++) {
		if (dkv_mp_read(&r, &k))
			return NULL;
		const uint8_t *at = r.p;
		if (dkv_mp_skip(&r))
			return NULL;
		if (dkv_mp_streq(&k, key)) {
			*len = (size_t)(r.p - at);
			return at;
		}
	}
	return NULL;
}

/* The stored hash of a password user, NUL-terminated, or "". */
static void record_hash(const struct dkv_entry *ent, char *out, size_t cap)
{
	size_t len;
	const uint8_t *f = record_field(ent, "password", &len);
	struct dkv_mp_reader r;
	struct dkv_mp_item it;
	out[0] = 0;
	if (!f)
		return;
	dkv_mp_reader_init(&r, f, len);
	if (dkv_mp_read(&r, &it) || (it.type != DKV_MP_BIN && it.type != DKV_MP_STR) ||
	    it.v.s.len >= cap)
		return;
	memcpy(out, it.v.s.p, it.v.s.len);
	out[it.v.s.len] = 0;
}

/* ---- auth ---- */

static void login_checked(void *arg, int rc, const char *unused)
{
	struct dkv__authwait *w = arg;
	struct dkv_conn *c = w->c;
	(void)unused;
	if (!rc)
		rc = dkv_auth_bind_user(c->srv->engine, &c->sess, w->method, w->ident,
					strlen(w->ident));
	if (rc) {
		dkv_report(DKV_REPORT_INFO, "connection %u: login as '%s' (%s) refused", c->id, w->ident,
			   dkv_auth_method_name(w->method));
		reply_error_seq(c, w->seq, LOGIN_FAILED);
	} else {
		login_ok(c, w->seq);
	}
	wait_free(w);
}

int dkv__act_auth(struct dkv_req *q)
{
	struct dkv_conn *c = q->c;
	int method, rc;
	char ident[IDENT_MAX + 1];
	uint8_t pw[PASSWORD_MAX];
	size_t pwlen = 0;

	if ((rc = req_method(q, &method)))
		return rc;
	const struct dkv_field *cr = dkv__msg_get(q->m, "chroot");
	if (cr && !(cr->vallen == 1 && (cr->val[0] == 0x90 || cr->val[0] == 0xc0))) {
		snprintf(q->err, sizeof q->err, "chroot is not supported: it must be empty");
		return -EINVAL;
	}
	int current = dkv_auth_current(q->e);
	if (current != DKV_AUTH_NONE && method != current) {
		snprintf(q->err, sizeof q->err, "Wrong auth method %s: this server uses %s",
			 dkv_auth_method_name(method), dkv_auth_method_name(current));
		return -EACCES;
	}
	if (c->authwaits) {
		snprintf(q->err, sizeof q->err, "a login is already running on this connection");
		return -EBUSY;
	}
	if (method == DKV_AUTH_ROOT) { /* nobody to check: no login is needed */
		login_ok(c, q->m->seq);
		return 0;
	}
	if ((rc = req_ident(q, ident)))
		return rc;
	if (method == DKV_AUTH_TEST) {
		if (dkv_auth_bind_user(q->e, &c->sess, method, ident, strlen(ident))) {
			dkv_report(DKV_REPORT_INFO, "connection %u: login as '%s' (_test) refused", c->id,
				   ident);
			snprintf(q->err, sizeof q->err, LOGIN_FAILED);
			return -EACCES;
		}
		login_ok(c, q->m->seq);
		return 0;
	}
	if ((rc = req_password(q, pw, &pwlen)))
		return rc;
	if (!pwlen) {
		snprintf(q->err, sizeof q->err, "the password method needs data.password");
		return -EINVAL;
	}
	char hash[crypto_pwhash_STRBYTES];
	record_hash(dkv_auth_user_entry(q->e, method, ident, strlen(ident)), hash, sizeof hash);
	struct dkv__authwait *w = dkv_xcalloc(1, sizeof *w);
	w->c = c;
	w->seq = q->m->seq;
	w->method = method;
	memcpy(w->ident, ident, sizeof ident);
	w->next = c->authwaits;
	c->authwaits = w;
	w->job = dkv_hasher_verify(hasher(c->srv), hash[0] ? hash : NULL, pw, pwlen,
				   login_checked, w);
	sodium_memzero(pw, sizeof pw);
	sodium_memzero(hash, sizeof hash);
	return 0;
}

int dkv__act_auth_key(struct dkv_req *q)
{
	struct dkv_conn *c = q->c;
	if (!c->has_key) {
		if (sodium_init() < 0) {
			snprintf(q->err, sizeof q->err, "libsodium cannot start");
			return -EIO;
		}
		crypto_box_keypair(c->auth_pk, c->auth_sk);
		c->has_key = true;
	}
	struct dkv_reply r;
	dkv__reply_begin(&r, c);
	dkv__reply_key(&r, "pubkey");
	dkv_mp_bin(r.b, c->auth_pk, sizeof c->auth_pk);
	dkv__reply_seq(&r, q->m);
	dkv__reply_tock(&r, q->e, 0);
	dkv__reply_end(&r);
	return 0;
}

/* ---- reading users ---- */

int dkv__act_auth_info(struct dkv_req *q)
{
	static const uint8_t auth_elem[] = {0xa4, 'a', 'u', 't', 'h'};
	struct dkv_entry *ent = dkv_entry_lookup(q->e, dkv_engine_meta(q->e), auth_elem,
						 sizeof auth_elem, false);
	struct dkv_reply r;
	dkv__reply_begin(&r, q->c);
	if (ent && dkv_entry_has_value(ent)) {
		dkv__reply_key(&r, "value");
		dkv_buf_append(r.b, dkv_value_data(ent->value), ent->value->len);
	}
	dkv__reply_seq(&r, q->m);
	dkv__reply_tock(&r, q->e, ent ? ent->tock : 0);
	dkv__reply_end(&r);
	return 0;
}

/* The users' parent entry (None, "auth", METHOD, "user"), or NULL. */
static struct dkv_entry *users_of(struct dkv_engine *e, int method)
{
	struct dkv_path p;
	dkv_path_init(&p);
	dkv_path_push_str(&p, "auth");
	dkv_path_push_str(&p, dkv_auth_method_name(method));
	dkv_path_push_str(&p, "user");
	struct dkv_entry *ent =
		dkv_entry_lookup(e, dkv_engine_meta(e), p.enc.data, p.enc.len, false);
	dkv_path_release(&p);
	return ent;
}

/* One user's public record: typ, kind, ident, aux, chain (never the
 * hash). */
static void user_fields(struct dkv_reply *r, int method, const struct dkv_entry *ent,
			int64_t nchain)
{
	size_t len;
	const uint8_t *aux = record_field(ent, "_aux", &len);
	dkv__reply_key(r, "typ");
	dkv_mp_cstr(r->b, dkv_auth_method_name(method));
	dkv__reply_key(r, "kind");
	dkv_mp_cstr(r->b, "user");
	dkv__reply_key(r, "ident");
	dkv_buf_append(r->b, ent->name, ent->namelen);
	dkv__reply_key(r, "aux");
	if (aux)
		dkv_buf_append(r->b, aux, len);
	else
		dkv_mp_nil(r->b);
	if (nchain) {
		dkv__reply_key(r, "chain");
		dkv_chain_encode(ent->value->chain, ent->value->nchain, (int)nchain, r->b);
	}
}

int dkv__act_auth_get(struct dkv_req *q)
{
	int method, rc;
	int64_t nchain;
	char ident[IDENT_MAX + 1];
	if ((rc = req_method(q, &method)) || (rc = req_kind(q)) || (rc = req_ident(q, ident)) ||
	    (rc = dkv__req_int(q, "nchain", 0, &nchain)))
		return rc;
	struct dkv_entry *ent = dkv_auth_user_entry(q->e, method, ident, strlen(ident));
	if (!ent) {
		snprintf(q->err, sizeof q->err, "no user '%s' for the %s method", ident,
			 dkv_auth_method_name(method));
		return -ENOENT;
	}
	struct dkv_reply r;
	dkv__reply_begin(&r, q->c);
	user_fields(&r, method, ent, nchain);
	dkv__reply_seq(&r, q->m);
	dkv__reply_tock(&r, q->e, ent->tock);
	dkv__reply_end(&r);
	return 0;
}

/* auth_list's stream: the users below one entry, in order. */
struct userlist {
	struct dkv_entry *parent; /* pinned */
	struct dkv_entry *next;   /* pinned; NULL: done */
	int method;
	int64_t nchain;
};

static struct dkv_entry *next_user(struct dkv_engine *e, struct dkv_entry *x)
{
	while (x && !dkv_entry_has_value(x))
		x = x->next;
	(void)e;
	return x;
}

static bool userlist_pump(struct dkv_stream *st)
{
	struct userlist *u = st->state;
	struct dkv_engine *e = st->conn->srv->engine;
	while (u->next && dkv__stream_can_send(st)) {
		struct dkv_entry *x = u->next;
		struct dkv_reply r;
		dkv__stream_msg_begin(st, &r);
		user_fields(&r, u->method, x, u->nchain);
		dkv__reply_key(&r, "tock");
		dkv_mp_uint(r.b, x->tock);
		dkv__reply_end(&r);
		u->next = next_user(e, x->next);
		if (u->next)
			dkv_entry_pin(u->next);
		dkv_entry_unpin(e, x);
	}
	return !u->next;
}

static void userlist_release(struct dkv_stream *st)
{
	struct userlist *u = st->state;
	struct dkv_engine *e = st->conn->srv->engine;
	if (u->next)
		dkv_entry_unpin(e, u->next);
	if (u->parent)
		dkv_entry_unpin(e, u->parent);
	free(u);
}

int dkv__act_auth_list(struct dkv_req *q)
{
	static const struct dkv_stream_ops ops = {userlist_pump, userlist_release};
	int method, rc;
	int64_t nchain;
	if (dkv__msg_get(q->m, "ident"))
		return dkv__act_auth_get(q);
	if ((rc = req_method(q, &method)) || (rc = req_kind(q)) ||
	    (rc = dkv__req_int(q, "nchain", 0, &nchain)))
		return rc;
	struct userlist *u = dkv_xcalloc(1, sizeof *u);
	u->method = method;
	u->nchain = nchain;
	u->parent = users_of(q->e, method);
	if (u->parent) {
		dkv_entry_pin(u->parent);
		u->next = next_user(q->e, u->parent->kids);
		if (u->next)
			dkv_entry_pin(u->next);
	}
	struct dkv_stream *st = dkv__stream_new(q->c, q->m->seq, &ops, u);
	dkv__stream_state(st, "start");
	dkv__stream_pump(st);
	return 0;
}

/* ---- changing users and the method ---- */

/* Store the record {_aux, password} of w's user; hash: NULL to keep the
 * stored one (or none, for _test). */
static int store_user(struct dkv__authwait *w, const char *hash, char *err, size_t errlen)
{
	struct dkv_conn *c = w->c;
	struct dkv_engine *e = c->srv->engine;
	struct dkv_entry *old = dkv_auth_user_entry(e, w->method, w->ident, strlen(w->ident));
	char oldhash[crypto_pwhash_STRBYTES];
	struct dkv_buf val = {0};
	struct dkv_path p;
	size_t alen = 0;
	const uint8_t *aux = w->aux.len ? w->aux.data : record_field(old, "_aux", &alen);
	if (w->aux.len)
		alen = w->aux.len;
	record_hash(old, oldhash, sizeof oldhash);
	if (!hash && oldhash[0])
		hash = oldhash;
	if (w->method == DKV_AUTH_PASSWORD && !hash) {
		snprintf(err, errlen, "a password user needs a password (data.password)");
		return -EINVAL;
	}
	dkv_mp_map(&val, hash && w->method == DKV_AUTH_PASSWORD ? 2 : 1);
	dkv_mp_cstr(&val, "_aux");
	if (aux)
		dkv_buf_append(&val, aux, alen);
	else
		dkv_mp_nil(&val);
	if (hash && w->method == DKV_AUTH_PASSWORD) {
		dkv_mp_cstr(&val, "password");
		dkv_mp_bin(&val, hash, strlen(hash));
	}
	sodium_memzero(oldhash, sizeof oldhash);

	dkv_path_init(&p);
	dkv_path_push_str(&p, "auth");
	dkv_path_push_str(&p, dkv_auth_method_name(w->method));
	dkv_path_push_str(&p, "user");
	dkv_path_push_str(&p, w->ident);
	struct dkv_change ch = {.path = p.enc.data, .path_len = p.enc.len, .internal = true,
				.value = val.data, .value_len = val.len, .pre = w->pre,
				.pre_node = w->pre_node, .pre_node_len = strlen(w->pre_node),
				.pre_tick = w->pre_tick, .src = DKV_SRC_LOCAL, .sess = &c->sess};
	struct dkv_result res;
	int rc = dkv_engine_apply(e, &ch, &res);
	if (rc == -EACCES)
		snprintf(err, errlen, "%s", c->sess.why);
	else if (rc == -EEXIST)
		snprintf(err, errlen, "user '%s' exists already", w->ident);
	else if (rc == -ENOENT)
		snprintf(err, errlen, "user '%s' does not exist", w->ident);
	else if (rc == -ESTALE)
		snprintf(err, errlen, "user '%s' was changed meanwhile", w->ident);
	else if (rc)
		snprintf(err, errlen, "cannot store user '%s': %s", w->ident, dkv_strerror(rc));
	if (!rc) {
		struct dkv_reply r;
		struct dkv_msg m = {.has_seq = true, .seq = w->seq};
		dkv__reply_begin(&r, c);
		dkv__reply_key(&r, "changed");
		dkv_mp_bool(r.b, res.changed);
		if (w->nchain) {
			dkv__reply_key(&r, "chain");
			dkv_chain_encode(res.entry->value->chain, res.entry->value->nchain,
					 (int)w->nchain, r.b);
		}
		dkv__reply_tock(&r, e, res.entry->tock);
		dkv__reply_seq(&r, &m);
		dkv__reply_end(&r);
		dkv__conn_flush(c);
	}
	dkv_result_release(e, &res);
	sodium_memzero(val.data, val.len);
	dkv_buf_release(&val);
	dkv_path_release(&p);
	return rc;
}

static void user_hashed(void *arg, int rc, const char *hash)
{
	struct dkv__authwait *w = arg;
	char err[300];
	if (rc)
		reply_error_seq(w->c, w->seq, "cannot hash the password");
	else if (store_user(w, hash, err, sizeof err))
		reply_error_seq(w->c, w->seq, err);
	wait_free(w);
}

int dkv__act_auth_set(struct dkv_req *q)
{
	struct dkv_conn *c = q->c;
	int method, rc;
	struct dkv_change pre = {0};
	uint8_t pw[PASSWORD_MAX];
	size_t pwlen = 0;
	struct dkv__authwait *w = dkv_xcalloc(1, sizeof *w);
	w->c = c;
	w->seq = q->m->seq;
	if ((rc = req_method(q, &method)) || (rc = req_kind(q)) || (rc = req_ident(q, w->ident)) ||
	    (rc = dkv__req_int(q, "nchain", 1, &w->nchain)) ||
	    (rc = dkv__req_precond(q, &pre)) || (rc = req_password(q, pw, &pwlen)))
		goto fail;
	w->method = method;
	if (method == DKV_AUTH_ROOT) {
		snprintf(q->err, sizeof q->err, "the root method has no users");
		rc = -EINVAL;
		goto fail;
	}
	if (pwlen && method != DKV_AUTH_PASSWORD) {
		snprintf(q->err, sizeof q->err, "the %s method takes no password",
			 dkv_auth_method_name(method));
		rc = -EINVAL;
		goto fail;
	}
	const struct dkv_field *af = dkv__msg_get(q->m, "aux");
	if (af) {
		struct dkv_mp_reader r;
		struct dkv_mp_item it;
		dkv_mp_reader_init(&r, af->val, af->vallen);
		if (dkv_mp_read(&r, &it) || (it.type != DKV_MP_MAP && it.type != DKV_MP_NIL)) {
			rc = dkv__req_bad_field(q, "aux", "a map");
			goto fail;
		}
		dkv_mp_reader_init(&r, af->val, af->vallen);
		if (dkv_mp_canon(&w->aux, &r)) {
			rc = dkv__req_bad_field(q, "aux", "a map");
			goto fail;
		}
	}
	w->pre = pre.pre;
	w->pre_tick = pre.pre_tick;
	if (pre.pre_node_len >= sizeof w->pre_node) {
		rc = dkv__req_bad_field(q, "chain", "a chain");
		goto fail;
	}
	memcpy(w->pre_node, pre.pre_node ? pre.pre_node : "", pre.pre_node_len);
	w->next = c->authwaits;
	c->authwaits = w;
	if (pwlen) {
		w->job = dkv_hasher_hash(hasher(c->srv), pw, pwlen, user_hashed, w);
		sodium_memzero(pw, sizeof pw);
		return 0;
	}
	char err[300];
	if ((rc = store_user(w, NULL, err, sizeof err)))
		snprintf(q->err, sizeof q->err, "%s", err);
	wait_free(w);
	return rc;
fail:
	sodium_memzero(pw, sizeof pw);
	dkv_buf_release(&w->aux);
	free(w);
	return rc;
}

int dkv__act_set_auth_typ(struct dkv_req *q)
{
	static const uint8_t auth_elem[] = {0xa4, 'a', 'u', 't', 'h'};
	const struct dkv_field *f = dkv__msg_get(q->m, "typ");
	int method = DKV_AUTH_ROOT, rc;
	if (f && !(f->vallen == 1 && f->val[0] == 0xc0) && (rc = req_method(q, &method)))
		return rc;
	if (method != DKV_AUTH_ROOT) {
		struct dkv_entry *users = users_of(q->e, method);
		if (!users || !next_user(q->e, users->kids)) {
			snprintf(q->err, sizeof q->err,
				 "the %s method has no users yet: add one first "
				 "(auth -m %s user add ...)",
				 dkv_auth_method_name(method), dkv_auth_method_name(method));
			return -EINVAL;
		}
	}
	struct dkv_buf val = {0};
	dkv_mp_map(&val, method == DKV_AUTH_ROOT ? 0 : 1);
	if (method != DKV_AUTH_ROOT) {
		dkv_mp_cstr(&val, "current");
		dkv_mp_cstr(&val, dkv_auth_method_name(method));
	}
	struct dkv_change ch = {.path = auth_elem, .path_len = sizeof auth_elem,
				.internal = true, .value = val.data, .value_len = val.len,
				.src = DKV_SRC_LOCAL, .sess = q->sess};
	struct dkv_result res;
	rc = dkv_engine_apply(q->e, &ch, &res);
	dkv_buf_release(&val);
	if (rc) {
		snprintf(q->err, sizeof q->err, "%s",
			 rc == -EACCES ? q->sess->why : dkv_strerror(rc));
		dkv_result_release(q->e, &res);
		return rc;
	}
	dkv_report(DKV_REPORT_INFO, "connection %u: logins now use %s", q->c->id,
		   method == DKV_AUTH_ROOT ? "no method (auth is off)"
					   : dkv_auth_method_name(method));
	struct dkv_reply r;
	dkv__reply_begin(&r, q->c);
	dkv__reply_key(&r, "changed");
	dkv_mp_bool(r.b, res.changed);
	dkv__reply_seq(&r, q->m);
	dkv__reply_tock(&r, q->e, res.entry->tock);
	dkv__reply_end(&r);
	dkv_result_release(q->e, &res);
	return 0;
}

/* ---- test_acl ---- */

int dkv__act_test_acl(struct dkv_req *q)
{
	struct dkv_path p;
	const uint8_t *mp, *ap;
	size_t mlen, alen;
	unsigned mode = 0;
	int rc;
	dkv_path_init(&p);
	if ((rc = dkv__req_path(q, &p)) || (rc = req_str(q, "mode", false, &mp, &mlen)) ||
	    (rc = req_str(q, "acl", false, &ap, &alen)))
		goto out;
	if (mp && (mlen != 1 || dkv_acl_parse((const char *)mp, 1, &mode))) {
		rc = dkv__req_bad_field(q, "mode", "one of the letters arwcdxen");
		goto out;
	}
	unsigned have;
	struct dkv_session tmp = {0};
	if (ap) { /* another ACL: a bound session needs a at the path */
		if ((rc = dkv_session_check(q->sess, p.enc.data, p.enc.len, false, DKV_ACL_ACL))) {
			snprintf(q->err, sizeof q->err, "%s", q->sess->why);
			goto out;
		}
		char *name = strndup((const char *)ap, alen);
		if (!name)
			abort();
		dkv_acl_bind(&tmp, q->e, name);
		free(name);
		have = dkv_session_modes(&tmp, p.enc.data, p.enc.len, false);
		dkv_session_release(&tmp);
	} else {
		have = dkv_session_modes(q->sess, p.enc.data, p.enc.len, false);
	}
	struct dkv_reply r;
	dkv__reply_begin(&r, q->c);
	dkv__reply_key(&r, "access");
	if (mode) {
		dkv_mp_bool(r.b, (have & mode) != 0);
	} else if (!q->sess->check && !ap) {
		dkv_mp_bool(r.b, true); /* no rule: everything, as the original answers */
	} else if (have & DKV_ACL_UNMATCHED || !(have & ~DKV_ACL_UNMATCHED)) {
		dkv_mp_bool(r.b, false);
	} else {
		char letters[10];
		dkv_acl_letters(have, letters);
		dkv_mp_cstr(r.b, letters);
	}
	dkv__reply_seq(&r, q->m);
	dkv__reply_tock(&r, q->e, 0);
	dkv__reply_end(&r);
out:
	dkv_path_release(&p);
	return rc;
}
