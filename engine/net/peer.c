/*
 * peer.c - the peer table and the data links: one TCP connection to each
 * live peer's client port asking `repl`, reading the answers, applying
 * the records, and retrying with backoff when a link breaks.  The
 * serving side of a link is repl.c; the design is in doc/cluster.md.
 *
 * The peer table holds every node of our network that Serf ever showed
 * us (by its tag), alive or not: tombstones wait for all of them.  Each
 * peer has at most one link: a TCP connection to its client port that
 * carries one live `repl` stream (its changes, its tick reports) and now
 * and then a one-shot `repl` to repair a gap.
 *
 * When the peer's greeting asks for a login (its `auth` field), the link
 * logs in first with connect.auth (cl->auth), as the command line does:
 * `auth` for _test, `auth_key` and then `auth` with the sealed password
 * for password.  A greeting without `auth` costs nothing: `repl` goes out
 * at once, as before logins existed.  A link that cannot log in says why
 * (once, until it gets through), shows it in `internal state`, and keeps
 * retrying; at the start it does not let the node serve alone, since the
 * peer is there and has data we have not seen.
 *
 * Workload: tens of peers (the table is a list, searched by name).  A
 * catch-up brings a peer's whole tree over one link; after it, each
 * peer's changes arrive as one message per round of its loop, however
 * fast it makes them, and are applied as soon as a message is complete.
 */
#include "cluster_int.h"
#include "auth.h"
#include "errlog.h"
#include "net.h"
#include "log.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RETRY_MIN_MS 200
#define RETRY_MAX_MS 5000
#define MAX_PEER_MSG (256u << 20)
#define LINK_USER_TIMEOUT_MS 15000

struct link {
	uv_tcp_t tcp;
	uv_connect_t creq;
	struct peer *p;       /* NULL once dropped (closing) */
	struct dkv_buf in;
	bool greeted;
	uint64_t key_seq;     /* the auth_key request being answered; 0: none */
	uint64_t auth_seq;    /* the auth request being answered; 0: none */
};

/* ---- the peer table ---- */

struct peer *dkv__peer_find(struct dkv_cluster *cl, const char *name, size_t len)
{
	for (struct peer *p = cl->peers; p; p = p->next)
		if (strlen(p->name) == len && !memcmp(p->name, name, len))
			return p;
	return NULL;
}

struct peer *dkv__peer_get(struct dkv_cluster *cl, const char *name, size_t len)
{
	struct peer *p = dkv__peer_find(cl, name, len);
	if (p)
		return p;
	p = dkv_xcalloc(1, sizeof *p);
	p->cl = cl;
	p->name = dkv_xstrndup(name, len);
	snprintf(p->status, sizeof p->status, "none");
	uv_timer_init(cl->loop, &p->retry);
	p->retry.data = p;
	cl->nhandles++;
	p->next = cl->peers;
	cl->peers = p;
	return p;
}

struct report *dkv__peer_report(struct peer *p, uint32_t idx)
{
	if (idx >= p->nrep) {
		uint32_t n = idx + 8;
		p->rep = dkv_xrealloc(p->rep, n * sizeof *p->rep);
		memset(p->rep + p->nrep, 0, (n - p->nrep) * sizeof *p->rep);
		p->nrep = n;
	}
	return &p->rep[idx];
}

bool dkv__peer_alive(const struct peer *p)
{
	return p->tagged && !strcmp(p->status, "alive");
}

/* ---- links ---- */

struct wreq {
	uv_write_t req;
	uv_buf_t buf;
	uint8_t data[];
};

static void link_closed(uv_handle_t *h)
{
	struct link *l = h->data;
	dkv_buf_release(&l->in);
	free(l);
}

static void on_written(uv_write_t *req, int status)
{
	(void)status; /* a failed write shows as a failed read too */
	free(req);
}

static void link_send(struct link *l, struct dkv_buf *b)
{
	struct wreq *w = dkv_xmalloc(sizeof *w + b->len);
	memcpy(w->data, b->data, b->len);
	w->buf = uv_buf_init((char *)w->data, (unsigned)b->len);
	if (uv_write(&w->req, (uv_stream_t *)&l->tcp, &w->buf, 1, on_written))
		free(w);
}

static void schedule_retry(struct peer *p);

void dkv__link_drop(struct peer *p, const char *why)
{
	struct dkv_cluster *cl = p->cl;
	struct link *l = p->link;
	if (l) {
		p->link = NULL;
		l->p = NULL;
		uv_close((uv_handle_t *)&l->tcp, link_closed);
	}
	bool was_up = p->state == PS_LIVE || p->state == PS_SYNCING;
	p->state = PS_DOWN;
	p->synced = false;
	p->repair_seq = 0;
	if (why) {
		snprintf(p->last_error, sizeof p->last_error, "%s", why);
		if (was_up || !p->refused_logged)
			dkv__cluster_say(cl, "link to %s (%s): %s", p->name,
					 p->addr ? p->addr : "?", why);
		p->refused_logged = true;
	}
	if (!cl->ready && p->initial && !p->initial_failed && !p->login_blocked) {
		p->initial_failed = true;
		dkv__cluster_check_initial(cl);
	}
	if (!cl->closing)
		schedule_retry(p);
}

static void encode_have(struct dkv_engine *e, struct dkv_buf *b)
{
	uint32_t nn = dkv_engine_node_count(e);
	dkv_mp_map(b, nn);
	for (uint32_t i = 0; i < nn; i++) {
		struct dkv_node *n = dkv_engine_node_at(e, i);
		dkv_mp_cstr(b, n->name);
		dkv_rangeset_encode(&n->seen, b);
	}
}

uint64_t dkv__peer_send_repl(struct peer *p, bool live)
{
	struct dkv_cluster *cl = p->cl;
	struct dkv_buf b = {0};
	uint64_t seq = ++p->seq;
	dkv_mp_map(&b, 6);
	dkv_mp_cstr(&b, "seq");
	dkv_mp_uint(&b, seq);
	dkv_mp_cstr(&b, "action");
	dkv_mp_cstr(&b, "repl");
	dkv_mp_cstr(&b, "node");
	dkv_mp_cstr(&b, dkv_engine_self(cl->e)->name);
	dkv_mp_cstr(&b, "root");
	dkv_mp_cstr(&b, cl->root);
	dkv_mp_cstr(&b, "live");
	dkv_mp_bool(&b, live);
	dkv_mp_cstr(&b, "have");
	encode_have(cl->e, &b);
	link_send(p->link, &b);
	dkv_buf_release(&b);
	return seq;
}

static void apply_warn(void *arg, const char *msg)
{
	struct peer *p = arg;
	dkv__cluster_say(p->cl, "from %s: %s", p->name, msg);
}

/* Apply records from p; false when they were bad (the link is dropped). */
static bool apply_records(struct peer *p, const uint8_t *data, size_t len)
{
	struct dkv_cluster *cl = p->cl;
	struct dkv_log_load_opts lo = {.remote = true, .warn = apply_warn, .arg = p};
	struct dkv_log_stats st = {0};
	char err[300];
	int rc = dkv_log_load_mem(cl->e, data, len, p->name, &lo, &st, err, sizeof err);
	p->records += st.records;
	if (!cl->ready)
		dkv_progress_add(&cl->download, st.records, len);
	if (st.conflicts) {
		cl->conflicts += st.conflicts;
		cl->conflicts_unlogged += st.conflicts;
		uint64_t now = dkv__cluster_now_ms(cl);
		if (now - cl->conflicts_logged_ms >= 1000) {
			dkv__cluster_say(cl, "%llu concurrent change(s) resolved by the conflict "
					 "rule (latest from %s; %llu in all)",
					 (unsigned long long)cl->conflicts_unlogged, p->name,
					 (unsigned long long)cl->conflicts);
			cl->conflicts_unlogged = 0;
			cl->conflicts_logged_ms = now;
		}
	}
	if (rc) {
		dkv__link_drop(p, err);
		return false;
	}
	return true;
}

static void note_ticks(struct peer *p, const struct dkv_field *f)
{
	struct dkv_cluster *cl = p->cl;
	struct dkv_mp_reader r;
	struct dkv_mp_item it, k, a, t, pf;
	dkv_mp_reader_init(&r, f->val, f->vallen);
	if (dkv_mp_read(&r, &it) || it.type != DKV_MP_MAP)
		return;
	for (uint32_t i = 0; i < it.v.n; i++) {
		if (dkv_mp_read(&r, &k) || k.type != DKV_MP_STR || !k.v.s.len || k.v.s.len > 1024 ||
		    dkv_mp_read(&r, &a) || a.type != DKV_MP_ARRAY || a.v.n != 2 ||
		    dkv_mp_read(&r, &t) || t.type != DKV_MP_UINT || dkv_mp_read(&r, &pf) ||
		    pf.type != DKV_MP_UINT || t.v.u > (UINT64_C(1) << 62))
			return;
		struct dkv_node *n = dkv_engine_node(cl->e, (const char *)k.v.s.p, k.v.s.len);
		if (t.v.u > n->tick)
			n->tick = t.v.u; /* we lack something: the gap check fetches it */
		struct report *rep = dkv__peer_report(p, n->idx);
		rep->tick = t.v.u;
		rep->prefix = pf.v.u;
	}
}

static bool field_is(const struct dkv_field *f, const char *key)
{
	return f->keylen == strlen(key) && !memcmp(f->key, key, f->keylen);
}

static bool field_bin(const struct dkv_field *f, const uint8_t **p, size_t *len)
{
	struct dkv_mp_reader r;
	struct dkv_mp_item it;
	dkv_mp_reader_init(&r, f->val, f->vallen);
	if (dkv_mp_read(&r, &it) || it.type != DKV_MP_BIN)
		return false;
	*p = it.v.s.p;
	*len = it.v.s.len;
	return true;
}

static bool field_str(const struct dkv_field *f, char *buf, size_t len)
{
	struct dkv_mp_reader r;
	struct dkv_mp_item it;
	dkv_mp_reader_init(&r, f->val, f->vallen);
	if (dkv_mp_read(&r, &it) || it.type != DKV_MP_STR)
		return false;
	snprintf(buf, len, "%.*s", (int)(it.v.s.len > 400 ? 400 : it.v.s.len),
		 (const char *)it.v.s.p);
	return true;
}

/* ---- logging in to the peer ---- */

/* The error log's view (errlog.h): a peer that will not let us in is an
 * error of subsystem "peer" at (NODE, PEER); getting through resolves it.
 * why NULL: we got through. */
static void login_health(struct peer *p, const char *why)
{
	struct dkv_engine *e = p->cl->e;
	struct dkv_errlog *el = dkv_engine_errlog(e);
	if (!el)
		return;
	struct dkv_path path;
	dkv_path_init(&path);
	dkv_path_push_str(&path, dkv_engine_self(e)->name);
	dkv_path_push_str(&path, p->name);
	if (!why) {
		dkv_errlog_fixed(el, DKV_ERRSYS_PEER, path.enc.data, path.enc.len);
	} else {
		struct dkv_errlog_occ o = {
			.sys = DKV_ERRSYS_PEER,
			.path = path.enc.data,
			.plen = path.enc.len,
			.severity = DKV_SEV_ERROR,
			.message = why,
		};
		dkv_errlog_note(el, &o);
	}
	dkv_path_release(&path);
}

/* The link cannot log in: say so (dkv__link_drop; once per reason, even
 * when the link failed otherwise before), and keep the node from taking
 * this for an unreachable peer. */
static void login_failed(struct peer *p, const char *why)
{
	if (strcmp(p->last_error, why))
		p->refused_logged = false;
	p->login_blocked = true;
	login_health(p, why);
	dkv__link_drop(p, why);
}

/* The method the greeting's auth field asks for, into buf: 1; 0 when no
 * login is needed (no field, an empty list or nil first); -1 malformed. */
static int greeting_wants(const struct dkv_msg *m, char *buf, size_t cap)
{
	const struct dkv_field *f = dkv__msg_get(m, "auth");
	struct dkv_mp_reader r;
	struct dkv_mp_item it;
	if (!f)
		return 0;
	dkv_mp_reader_init(&r, f->val, f->vallen);
	if (dkv_mp_read(&r, &it) || it.type != DKV_MP_ARRAY)
		return -1;
	if (it.v.n == 0)
		return 0;
	if (dkv_mp_read(&r, &it))
		return -1;
	if (it.type == DKV_MP_NIL)
		return 0;
	if (it.type != DKV_MP_STR || !it.v.s.len || it.v.s.len >= cap)
		return -1;
	memcpy(buf, it.v.s.p, it.v.s.len);
	buf[it.v.s.len] = 0;
	return 1;
}

/* The auth request (the fields as the command line sends them); pubkey
 * is the peer's auth_key for a password login, else NULL. */
static void send_login(struct peer *p, const uint8_t *pubkey)
{
	struct link *l = p->link;
	struct dkv_buf b = {0};
	dkv_mp_map(&b, 6);
	dkv_auth_login_fields(p->cl->auth, pubkey, &b);
	dkv_mp_cstr(&b, "action");
	dkv_mp_cstr(&b, "auth");
	dkv_mp_cstr(&b, "seq");
	l->auth_seq = ++p->seq;
	dkv_mp_uint(&b, l->auth_seq);
	link_send(l, &b);
	dkv_buf_release(&b);
}

static void start_repl(struct peer *p)
{
	login_health(p, NULL);
	p->login_blocked = false;
	p->state = PS_SYNCING;
	p->live_seq = dkv__peer_send_repl(p, true);
}

/* Greeted: log in if the peer asks for it, else ask for `repl` at once.
 * False when the link was dropped. */
static bool begin_session(struct peer *p, const struct dkv_msg *m)
{
	const struct dkv_auth_spec *sp = p->cl->auth;
	char want[64], why[160];
	int rc = greeting_wants(m, want, sizeof want);
	if (rc == 0) {
		start_repl(p);
		return true;
	}
	if (rc < 0) {
		dkv__link_drop(p, "the peer's greeting has a malformed auth field");
		return false;
	}
	if (!sp || sp->method == DKV_AUTH_ROOT) {
		snprintf(why, sizeof why, "the peer wants a login (%s); set connect.auth", want);
		login_failed(p, why);
		return false;
	}
	if (strcmp(want, dkv_auth_method_name(sp->method))) {
		snprintf(why, sizeof why, "the peer wants a %s login; connect.auth has %s", want,
			 dkv_auth_method_name(sp->method));
		login_failed(p, why);
		return false;
	}
	p->state = PS_LOGIN;
	if (sp->method != DKV_AUTH_PASSWORD) {
		send_login(p, NULL);
		return true;
	}
	struct dkv_buf b = {0};
	struct link *l = p->link;
	l->key_seq = ++p->seq;
	dkv_mp_map(&b, 2);
	dkv_mp_cstr(&b, "seq");
	dkv_mp_uint(&b, l->key_seq);
	dkv_mp_cstr(&b, "action");
	dkv_mp_cstr(&b, "auth_key");
	link_send(l, &b);
	dkv_buf_release(&b);
	return true;
}

/* A reply to auth_key or auth; false when the link was dropped. */
static bool login_reply(struct peer *p, const struct dkv_msg *m)
{
	struct link *l = p->link;
	const struct dkv_field *f = dkv__msg_get(m, "error");
	const uint8_t *key;
	size_t klen;
	char text[420], why[160];
	if (f) {
		if (!field_str(f, text, sizeof text))
			snprintf(text, sizeof text, "an error");
		snprintf(why, sizeof why, "login refused: %.120s", text);
		login_failed(p, why);
		return false;
	}
	if (m->seq == l->key_seq) {
		f = dkv__msg_get(m, "pubkey");
		if (!f || !field_bin(f, &key, &klen) || klen != DKV_AUTH_KEYBYTES) {
			dkv__link_drop(p, "the peer's auth_key answer has no 32-byte pubkey");
			return false;
		}
		l->key_seq = 0;
		send_login(p, key);
		return true;
	}
	f = dkv__msg_get(m, "state");
	if (f && field_str(f, text, sizeof text) && !strcmp(text, "start"))
		return true;
	/* the stream's end, or a single reply without an error: logged in */
	l->auth_seq = 0;
	start_repl(p);
	return true;
}

/* One message from the peer; false when the link was dropped. */
static bool handle_peer_msg(struct peer *p, const uint8_t *data, size_t len)
{
	struct dkv_cluster *cl = p->cl;
	struct link *l = p->link;
	struct dkv_msg m;
	char err[160], text[420];

	if (dkv__msg_decode(&m, data, len, err, sizeof err) || !m.has_seq) {
		dkv__link_drop(p, "the peer sent a malformed message");
		return false;
	}
	if (!l->greeted) {
		const struct dkv_field *nf = dkv__msg_get(&m, "node");
		if (m.seq != 0 || !nf || !field_str(nf, text, sizeof text)) {
			dkv__link_drop(p, "no distkv greeting");
			return false;
		}
		if (strcmp(text, p->name)) {
			snprintf(err, sizeof err, "the server there is node '%.60s', not '%.60s'", text,
				 p->name);
			dkv__link_drop(p, err);
			return false;
		}
		l->greeted = true;
		return begin_session(p, &m);
	}
	if (p->state == PS_LOGIN) {
		if ((l->key_seq && m.seq == l->key_seq) || (l->auth_seq && m.seq == l->auth_seq))
			return login_reply(p, &m);
		return true;
	}
	bool live = m.seq == p->live_seq;
	bool repair = p->repair_seq && m.seq == p->repair_seq;
	if (!live && !repair)
		return true; /* an answer to something we gave up on */
	for (unsigned i = 0; i < m.n; i++) {
		const struct dkv_field *f = &m.f[i];
		const uint8_t *bin;
		size_t blen;
		if (field_is(f, "r") && field_bin(f, &bin, &blen)) {
			p->msgs++;
			if (!apply_records(p, bin, blen))
				return false;
		} else if (field_is(f, "done") && field_bin(f, &bin, &blen)) {
			if (!apply_records(p, bin, blen))
				return false;
			if (repair) {
				p->repair_seq = 0;
			} else {
				p->synced = true;
				p->state = PS_LIVE;
				p->backoff_ms = 0;
				p->refused_logged = false;
				p->last_error[0] = 0;
				dkv_progress_end(&cl->download); /* a clean line for the message */
				dkv__cluster_say(cl, "link to %s (%s) is live", p->name, p->addr);
				if (!cl->ready) {
					/* one that came up after the start counts too */
					p->initial = p->initial_synced = true;
					dkv__cluster_check_initial(cl);
				}
			}
		} else if (field_is(f, "ticks")) {
			note_ticks(p, f);
		} else if (field_is(f, "error")) {
			if (!field_str(f, text, sizeof text))
				snprintf(text, sizeof text, "an error");
			snprintf(err, sizeof err, "the peer refused: %.120s", text);
			dkv__link_drop(p, err);
			return false;
		} else if (field_is(f, "state") && field_str(f, text, sizeof text) &&
			   !strcmp(text, "end")) {
			if (repair) {
				p->repair_seq = 0;
			} else {
				dkv__link_drop(p, "the peer ended the stream");
				return false;
			}
		}
	}
	return true;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct link *l = h->data;
	(void)hint;
	dkv_buf_reserve(&l->in, 256 * 1024);
	*buf = uv_buf_init((char *)l->in.data + l->in.len, (unsigned)(l->in.cap - l->in.len));
}

static void on_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf)
{
	struct link *l = h->data;
	struct peer *p = l->p;
	(void)buf;
	if (!p || nread == 0)
		return;
	if (nread < 0) {
		char why[120];
		snprintf(why, sizeof why, "connection lost (%s)",
			 nread == UV_EOF ? "closed by the peer" : uv_strerror((int)nread));
		dkv__link_drop(p, why);
		return;
	}
	l->in.len += (size_t)nread;
	struct dkv_mp_reader r;
	size_t done = 0;
	dkv_mp_reader_init(&r, l->in.data, l->in.len);
	while (dkv_mp_left(&r)) {
		const uint8_t *start = r.p;
		int rc = dkv_mp_skip(&r);
		if (rc == -EAGAIN) {
			if (dkv_mp_left(&r) > MAX_PEER_MSG) {
				dkv__link_drop(p, "the peer sent a message that is too large");
				return;
			}
			break;
		}
		if (rc) {
			dkv__link_drop(p, "the peer sent malformed msgpack");
			return;
		}
		if (!handle_peer_msg(p, start, (size_t)(r.p - start)))
			return; /* dropped: l is closing, its buffer unused */
		done = (size_t)(r.p - l->in.data);
	}
	dkv_buf_consume(&l->in, done);
}

static void on_connect(uv_connect_t *req, int status)
{
	struct link *l = req->data;
	struct peer *p = l->p;
	if (!p)
		return;
	if (status < 0) {
		char why[120];
		snprintf(why, sizeof why, "cannot connect: %s", uv_strerror(status));
		dkv__link_drop(p, why);
		return;
	}
	uv_tcp_nodelay(&l->tcp, 1);
	uv_tcp_keepalive(&l->tcp, 1, 5);
	/* unacknowledged data for this long means the peer is gone */
	uv_os_fd_t fd;
	unsigned tmo = LINK_USER_TIMEOUT_MS;
	if (!uv_fileno((uv_handle_t *)&l->tcp, &fd))
		setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &tmo, sizeof tmo);
	uv_read_start((uv_stream_t *)&l->tcp, on_alloc, on_read);
}

static int resolve(const char *addr, struct sockaddr_storage *ss)
{
	const char *colon = strrchr(addr, ':');
	if (!colon || colon == addr)
		return -EINVAL;
	char host[256];
	size_t hl = (size_t)(colon - addr);
	if (hl >= sizeof host)
		return -EINVAL;
	memcpy(host, addr, hl);
	host[hl] = 0;
	if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
		memmove(host, host + 1, hl - 2);
		host[hl - 2] = 0;
	}
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
	if (getaddrinfo(host, colon + 1, &hints, &ai) || !ai)
		return -EHOSTUNREACH;
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	freeaddrinfo(ai);
	return 0;
}

void dkv__peer_connect(struct peer *p)
{
	struct dkv_cluster *cl = p->cl;
	struct sockaddr_storage ss;
	if (p->link || !p->addr || cl->closing)
		return;
	uv_timer_stop(&p->retry);
	if (resolve(p->addr, &ss)) {
		dkv__link_drop(p, "cannot resolve its address");
		return;
	}
	struct link *l = dkv_xcalloc(1, sizeof *l);
	l->p = p;
	uv_tcp_init(cl->loop, &l->tcp);
	l->tcp.data = l;
	l->creq.data = l;
	p->link = l;
	p->state = PS_CONNECTING;
	p->seq = 0;
	p->live_seq = 0;
	p->repair_seq = 0;
	int rc = uv_tcp_connect(&l->creq, &l->tcp, (struct sockaddr *)&ss, on_connect);
	if (rc) {
		char why[120];
		snprintf(why, sizeof why, "cannot connect: %s", uv_strerror(rc));
		dkv__link_drop(p, why);
	}
}

static void on_retry(uv_timer_t *h)
{
	struct peer *p = h->data;
	struct dkv_cluster *cl = p->cl;
	if (dkv__peer_alive(p)) {
		if (!p->link)
			dkv__peer_connect(p);
	} else if (p->login_blocked && !cl->ready && p->initial && !p->initial_failed) {
		/* it refused us, and now it is gone too: unreachable after all */
		p->initial_failed = true;
		dkv__cluster_check_initial(cl);
	}
}

static void schedule_retry(struct peer *p)
{
	p->backoff_ms = p->backoff_ms ? p->backoff_ms * 2 : RETRY_MIN_MS;
	if (p->backoff_ms > RETRY_MAX_MS)
		p->backoff_ms = RETRY_MAX_MS;
	uv_timer_start(&p->retry, on_retry, p->backoff_ms, 0);
}
