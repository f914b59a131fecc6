/*
 * cluster.c - membership through Serf, data links to every peer, gap
 * repair, tombstone expiry.  The design is in cluster.h and
 * doc/cluster.md; the serving side of a link is repl.c.
 *
 * The peer table holds every node of our network that Serf ever showed
 * us (by its tag), alive or not: tombstones wait for all of them.  Each
 * peer has at most one link: a TCP connection to its client port that
 * carries one live `repl` stream (its changes, its tick reports) and now
 * and then a one-shot `repl` to repair a gap.
 */
#include "cluster_int.h"
#include "net.h"
#include "log.h"
#include "serf.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TIMER_MS 250           /* gap checks, announcements */
#define GAP_GRACE_MS 1000      /* a gap may be changes still on their way */
#define REPAIR_BACKOFF_MAX_MS 30000
#define RETRY_MIN_MS 200
#define RETRY_MAX_MS 5000
#define MAX_PEER_MSG (256u << 20)
#define LINK_USER_TIMEOUT_MS 15000

/* by enum peer_state (cluster_int.h) */
static const char *const state_names[] = {"idle", "connecting", "syncing", "live", "down"};

struct link {
	uv_tcp_t tcp;
	uv_connect_t creq;
	struct peer *p;       /* NULL once dropped (closing) */
	struct dkv_buf in;
	bool greeted;
};

struct nodegap {
	uint64_t since;       /* ms when the gap was first seen; 0: none */
	uint64_t next_try;
	unsigned backoff_ms;
};

void dkv__cluster_say(struct dkv_cluster *cl, const char *fmt, ...)
{
	if (cl->verbose < 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	fputs("distkv: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

uint64_t dkv__cluster_now_ms(struct dkv_cluster *cl)
{
	return uv_now(cl->loop);
}

void dkv__cluster_set_ready(struct dkv_cluster *cl, const char *why)
{
	if (cl->ready || cl->closing)
		return; /* closing: links dropped now say nothing about sync */
	cl->ready = true;
	uv_timer_stop(&cl->serf_wait);
	dkv__cluster_say(cl, "in sync: %s (%.1f s after start); answering clients", why,
			 (dkv__cluster_now_ms(cl) - cl->started_ms) / 1000.0);
	dkv_server_set_ready(cl->srv, true);
	if (cl->on_ready)
		cl->on_ready(cl->on_ready_arg);
}

/* ---- the peer table ---- */

static void retry_closed(uv_handle_t *h);

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
	if (!cl->ready && p->initial && !p->initial_failed) {
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
		p->state = PS_SYNCING;
		p->live_seq = dkv__peer_send_repl(p, true);
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
				dkv__cluster_say(cl, "link to %s (%s) is live", p->name, p->addr);
				if (!cl->ready) {
					snprintf(text, sizeof text, "state downloaded from %s", p->name);
					dkv__cluster_set_ready(cl, text);
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
	if (dkv__peer_alive(p) && !p->link)
		dkv__peer_connect(p);
}

static void schedule_retry(struct peer *p)
{
	p->backoff_ms = p->backoff_ms ? p->backoff_ms * 2 : RETRY_MIN_MS;
	if (p->backoff_ms > RETRY_MAX_MS)
		p->backoff_ms = RETRY_MAX_MS;
	uv_timer_start(&p->retry, on_retry, p->backoff_ms, 0);
}

/* ---- readiness at the start ---- */

void dkv__cluster_check_initial(struct dkv_cluster *cl)
{
	if (cl->ready)
		return;
	for (struct peer *p = cl->peers; p; p = p->next)
		if (p->initial && !p->initial_failed)
			return;
	dkv__cluster_set_ready(cl, "no live peer could be reached; serving the local state");
}

void dkv__cluster_start_decision(struct dkv_cluster *cl)
{
	if (cl->ready || cl->decided)
		return;
	cl->decided = true;
	unsigned n = 0;
	for (struct peer *p = cl->peers; p; p = p->next) {
		if (!dkv__peer_alive(p))
			continue;
		p->initial = true;
		n++;
	}
	if (!n) {
		dkv__cluster_set_ready(cl, "no other node of this network is alive");
		return;
	}
	dkv__cluster_say(cl, "downloading the state from %u peer(s) before answering clients", n);
}

/* ---- Serf ---- */

static void remember_agent(struct dkv_cluster *cl, const struct serf_member *m)
{
	char a[80];
	if (!m->addr_text[0])
		return;
	snprintf(a, sizeof a, m->family == AF_INET6 ? "[%s]:%u" : "%s:%u", m->addr_text, m->port);
	for (size_t i = 0; i < cl->nagents; i++)
		if (!strcmp(cl->agents[i], a))
			return;
	if (cl->nagents >= 64)
		return;
	cl->agents = dkv_xrealloc(cl->agents, (cl->nagents + 1) * sizeof *cl->agents);
	cl->agents[cl->nagents++] = dkv_xstrdup(a);
}

/* The address peers reach p at: the tag, with a wildcard host replaced
 * by the member's address. */
static char *peer_addr(const char *tag, const struct serf_member *m)
{
	const char *colon = strrchr(tag, ':');
	struct dkv_buf b = {0};
	if (colon && m->addr_text[0] &&
	    (colon == tag || !strncmp(tag, "0.0.0.0:", 8) || !strncmp(tag, "[::]:", 5) ||
	     !strncmp(tag, ":::", 3))) {
		dkv_buf_printf(&b, m->family == AF_INET6 ? "[%s]%s" : "%s%s", m->addr_text, colon);
	} else {
		dkv_buf_puts(&b, tag);
	}
	return dkv_buf_cstr(&b);
}

static void update_member(struct dkv_cluster *cl, const struct serf_member *m)
{
	size_t plen = strlen(cl->tag_prefix);
	const char *self = dkv_engine_self(cl->e)->name;
	if (strcmp(m->status, "alive") == 0)
		remember_agent(cl, m);
	/* tags this member no longer has: those servers stopped */
	for (struct peer *p = cl->peers; p; p = p->next) {
		if (!p->member || strcmp(p->member, m->name))
			continue;
		bool still = false;
		for (size_t i = 0; i < m->ntags && !still; i++)
			still = !strncmp(m->tags[i].key, cl->tag_prefix, plen) &&
				!strcmp(m->tags[i].key + plen, p->name);
		if (!still)
			p->tagged = false;
	}
	for (size_t i = 0; i < m->ntags; i++) {
		const struct serf_tag *t = &m->tags[i];
		if (strncmp(t->key, cl->tag_prefix, plen) || !t->key[plen] || !t->value[0])
			continue;
		const char *node = t->key + plen;
		if (!strcmp(node, self))
			continue;
		struct peer *p = dkv__peer_get(cl, node, strlen(node));
		char *addr = peer_addr(t->value, m);
		if (!p->addr || strcmp(p->addr, addr)) {
			free(p->addr);
			p->addr = addr;
			if (p->link)
				dkv__link_drop(p, "its address changed");
		} else {
			free(addr);
		}
		free(p->member);
		p->member = dkv_xstrdup(m->name);
		p->present = true;
		snprintf(p->status, sizeof p->status, "%s", m->status);
		p->tagged = true;
		if (dkv__peer_alive(p) && !p->link) {
			p->backoff_ms = 0;
			dkv__peer_connect(p);
		} else if (!dkv__peer_alive(p) && p->link) {
			/* a link across a partition can look open for minutes */
			char why[64];
			snprintf(why, sizeof why, "Serf reports its agent %s", m->status);
			dkv__link_drop(p, why);
		}
	}
}

static void rejoin_if_alone(struct dkv_cluster *cl, const struct serf_member *m, size_t n);

static void on_members(struct serf_client *c, int status, const char *agent_err,
		       const struct serf_member *m, size_t n, void *arg)
{
	struct dkv_cluster *cl = arg;
	(void)c;
	(void)agent_err;
	if (status || cl->closing)
		return;
	for (struct peer *p = cl->peers; p; p = p->next)
		snprintf(p->status, sizeof p->status, "none");
	/* a peer whose member is gone from the list lost its tag too */
	for (struct peer *p = cl->peers; p; p = p->next) {
		bool found = false;
		for (size_t i = 0; i < n && !found; i++)
			found = p->member && !strcmp(p->member, m[i].name);
		if (!found)
			p->tagged = false;
		p->present = found;
	}
	for (size_t i = 0; i < n; i++)
		update_member(cl, &m[i]);
	rejoin_if_alone(cl, m, n);
	if (!cl->njoin || cl->joined) {
		cl->members_known = true;
		dkv__cluster_start_decision(cl);
	}
}

static void refresh_members(struct dkv_cluster *cl)
{
	if (cl->serf && serf_client_ready(cl->serf))
		serf_members(cl->serf, on_members, cl);
}

static void on_join(struct serf_client *c, int status, const char *agent_err, int num, void *arg)
{
	struct dkv_cluster *cl = arg;
	(void)c;
	if (cl->closing)
		return;
	if (status)
		dkv__cluster_say(cl, "Serf join: %s", agent_err ? agent_err : strerror(-status));
	else
		dkv__cluster_say(cl, "Serf agent joined %d of %zu address(es)", num, cl->njoin);
	cl->joined = true;
	refresh_members(cl);
}

static void on_rejoin(struct serf_client *c, int status, const char *agent_err, int num,
		      void *arg)
{
	struct dkv_cluster *cl = arg;
	(void)c;
	(void)agent_err;
	if (!cl->closing && !status && num > 0) {
		dkv__cluster_say(cl, "Serf agent rejoined %d known agent(s)", num);
		refresh_members(cl);
	}
}

/* An agent that restarted knows nobody: point it at the agents it knew. */
static void rejoin_if_alone(struct dkv_cluster *cl, const struct serf_member *m, size_t n)
{
	size_t alive = 0;
	for (size_t i = 0; i < n; i++)
		alive += !strcmp(m[i].status, "alive");
	if (alive > 1 || cl->nagents < 2)
		return;
	serf_join(cl->serf, (const char *const *)cl->agents, cl->nagents, false, on_rejoin, cl);
}

static void set_tags(struct dkv_cluster *cl)
{
	struct serf_tag t = {cl->tag_key, cl->advertise};
	serf_tags(cl->serf, &t, 1, NULL, 0, NULL, NULL);
}

static void on_tick_event(struct dkv_cluster *cl, const uint8_t *p, size_t len)
{
	struct dkv_mp_reader r;
	struct dkv_mp_item a, name, tick, prefix;
	dkv_mp_reader_init(&r, p, len);
	if (dkv_mp_read(&r, &a) || a.type != DKV_MP_ARRAY || a.v.n < 3 ||
	    dkv_mp_read(&r, &name) || name.type != DKV_MP_STR || !name.v.s.len ||
	    name.v.s.len > 1024 || dkv_mp_read(&r, &tick) || tick.type != DKV_MP_UINT ||
	    dkv_mp_read(&r, &prefix) || prefix.type != DKV_MP_UINT || tick.v.u > (UINT64_C(1) << 62))
		return; /* not ours to understand */
	struct dkv_node *n = dkv_engine_node(cl->e, (const char *)name.v.s.p, name.v.s.len);
	if (tick.v.u > n->tick)
		n->tick = tick.v.u;
	struct peer *pe = dkv__peer_find(cl, (const char *)name.v.s.p, name.v.s.len);
	if (pe) {
		struct report *rep = dkv__peer_report(pe, n->idx);
		if (tick.v.u > rep->tick)
			rep->tick = tick.v.u;
		if (prefix.v.u > rep->prefix)
			rep->prefix = prefix.v.u;
	}
}

void dkv__cluster_on_serf_event(struct serf_client *c, struct serf_stream *s, int status,
				const struct serf_record *rec, void *arg)
{
	struct dkv_cluster *cl = arg;
	(void)s;
	(void)status;
	if (!rec) {
		return; /* the stream ended: the client is closing */
	}
	if (cl->closing)
		return;
	switch (rec->type) {
	case SERF_RECORD_STARTED:
		if (cl->njoin && !cl->joined) {
			if (serf_join(c, (const char *const *)cl->join, cl->njoin, false, on_join, cl))
				cl->joined = true;
		}
		refresh_members(cl);
		break;
	case SERF_RECORD_MEMBER:
		if (!strcmp(rec->event, "member-reap")) {
			refresh_members(cl);
			break;
		}
		for (size_t i = 0; i < rec->nmembers; i++)
			update_member(cl, &rec->members[i]);
		break;
	case SERF_RECORD_USER:
		if (!strcmp(rec->name, cl->tick_event))
			on_tick_event(cl, rec->payload, rec->payload_len);
		break;
	default:
		break;
	}
}

/* When our private agent exits, cmd_server starts another.  NEEDSWORK:
 * when an agent we did not start goes away for good, none is started in
 * its place; the client keeps reconnecting. */
void dkv__cluster_on_serf_state(struct serf_client *c, int status, const char *msg, void *arg)
{
	struct dkv_cluster *cl = arg;
	(void)c;
	if (cl->closing)
		return;
	if (!status) {
		cl->serf_ok = true;
		cl->serf_ever = true;
		snprintf(cl->serf_state, sizeof cl->serf_state, "connected to %s", cl->serf_where);
		dkv__cluster_say(cl, "Serf agent at %s: connected", cl->serf_where);
		set_tags(cl);
		return;
	}
	bool was = cl->serf_ok;
	cl->serf_ok = false;
	snprintf(cl->serf_state, sizeof cl->serf_state, "%s", msg);
	if (was || !cl->serf_ever)
		dkv__cluster_say(cl, "Serf agent at %s: %s", cl->serf_where, msg);
}

void dkv__cluster_on_serf_wait(uv_timer_t *h)
{
	struct dkv_cluster *cl = h->data;
	if (cl->ready || cl->members_known)
		return;
	char why[300];
	snprintf(why, sizeof why, "no Serf agent answered at %s; serving alone until one does",
		 cl->serf_where);
	dkv__cluster_set_ready(cl, why);
}

/* ---- the timer: gaps, announcements, tombstones ---- */

uint64_t dkv__seen_prefix(const struct dkv_node *n)
{
	return dkv_rangeset_prefix(&n->seen);
}

static void announce(struct dkv_cluster *cl)
{
	uint64_t now = dkv__cluster_now_ms(cl);
	cl->tokens += (now - cl->tokens_ms) / 1000.0 * ANNOUNCE_RATE;
	if (cl->tokens > ANNOUNCE_BURST)
		cl->tokens = ANNOUNCE_BURST;
	cl->tokens_ms = now;
	struct dkv_node *self = dkv_engine_self(cl->e);
	if (!cl->serf_ok || self->tick == cl->announced || cl->tokens < 1)
		return;
	struct dkv_buf b = {0};
	dkv_mp_array(&b, 3);
	dkv_mp_cstr(&b, self->name);
	dkv_mp_uint(&b, self->tick);
	dkv_mp_uint(&b, dkv__seen_prefix(self));
	if (!serf_event(cl->serf, cl->tick_event, b.data, b.len, false, NULL, NULL)) {
		cl->tokens -= 1;
		cl->announced = self->tick;
	}
	dkv_buf_release(&b);
}

static struct peer *repair_source(struct dkv_cluster *cl, struct dkv_node *n)
{
	struct peer *best = NULL;
	for (struct peer *p = cl->peers; p; p = p->next) {
		if (p->state != PS_LIVE || p->repair_seq)
			continue;
		if (!best)
			best = p;
		if (n->idx < p->nrep && p->rep[n->idx].tick >= n->tick)
			return p;
		if (!strcmp(p->name, n->name))
			return p;
	}
	return best;
}

static void check_gaps(struct dkv_cluster *cl)
{
	uint32_t nn = dkv_engine_node_count(cl->e);
	uint64_t now = dkv__cluster_now_ms(cl);
	if (nn > cl->ngaps) {
		cl->gaps = dkv_xrealloc(cl->gaps, nn * sizeof *cl->gaps);
		memset(cl->gaps + cl->ngaps, 0, (nn - cl->ngaps) * sizeof *cl->gaps);
		cl->ngaps = nn;
	}
	for (uint32_t i = 0; i < nn; i++) {
		struct dkv_node *n = dkv_engine_node_at(cl->e, i);
		struct nodegap *g = &cl->gaps[i];
		if (!n->tick || dkv__seen_prefix(n) >= n->tick) {
			g->since = 0;
			g->backoff_ms = 0;
			g->next_try = 0;
			continue;
		}
		if (!g->since) {
			g->since = now;
			continue;
		}
		if (now - g->since < GAP_GRACE_MS || now < g->next_try)
			continue;
		struct peer *p = repair_source(cl, n);
		if (!p)
			continue;
		g->backoff_ms = g->backoff_ms ? g->backoff_ms * 2 : 1000;
		if (g->backoff_ms > REPAIR_BACKOFF_MAX_MS)
			g->backoff_ms = REPAIR_BACKOFF_MAX_MS;
		g->next_try = now + g->backoff_ms;
		struct dkv_rangeset ms;
		dkv_rangeset_init(&ms);
		dkv_rangeset_missing(&n->seen, 1, n->tick + 1, &ms);
		dkv__cluster_say(cl, "missing %llu change(s) of %s (ticks %llu to %llu): asking %s",
				 (unsigned long long)dkv_rangeset_count(&ms), n->name,
				 (unsigned long long)(ms.n ? ms.r[0].lo : 0),
				 (unsigned long long)(ms.n ? ms.r[ms.n - 1].hi - 1 : 0), p->name);
		dkv_rangeset_release(&ms);
		p->repair_seq = dkv__peer_send_repl(p, false);
	}
}

/* Whether every known node has seen the deletion that made ent a
 * tombstone: its tick is within the gap-free run of ticks that each
 * present peer (and this node) reported of the deleting node. */
static bool tombstone_ripe(void *arg, const struct dkv_entry *ent)
{
	struct dkv_cluster *cl = arg;
	if (!ent->value->nchain)
		return false;
	const struct dkv_chain_link *l = &ent->value->chain[0];
	bool everywhere = dkv__seen_prefix(l->node) >= l->tick;
	for (struct peer *p = cl->peers; p && everywhere; p = p->next)
		everywhere = !p->present ||
			     (l->node->idx < p->nrep && p->rep[l->node->idx].prefix >= l->tick);
	return everywhere;
}

/* Drop tombstones every known node has seen (the engine keeps a list of
 * them: this costs a look at each tombstone, not a walk of the tree). */
static void purge_tombstones(struct dkv_cluster *cl)
{
	cl->purged += dkv_engine_purge(cl->e, tombstone_ripe, cl);
}

void dkv__cluster_on_timer(uv_timer_t *h)
{
	struct dkv_cluster *cl = h->data;
	if (cl->closing)
		return;
	announce(cl);
	check_gaps(cl);
	uint64_t now = dkv__cluster_now_ms(cl);
	if (cl->ready && cl->peers && now - cl->last_purge_ms >= cl->tombstone_ms) {
		cl->last_purge_ms = now;
		purge_tombstones(cl);
	}
}

/* ---- life ---- */

int dkv_cluster_new(struct dkv_cluster **out, uv_loop_t *loop, struct dkv_engine *e,
		    struct dkv_server *srv, const struct dkv_cluster_opts *o, char *err,
		    size_t errlen)
{
	struct dkv_cluster *cl = dkv_xcalloc(1, sizeof *cl);
	struct dkv_buf b = {0};
	const char *self = dkv_engine_self(e)->name;

	*out = NULL;
	if (!o->root || !*o->root || strlen(o->root) > 200) {
		snprintf(err, errlen, "server.root must be a name of 1 to 200 bytes");
		free(cl);
		return -EINVAL;
	}
	cl->loop = loop;
	cl->e = e;
	cl->srv = srv;
	cl->verbose = o->verbose;
	cl->on_ready = o->on_ready;
	cl->on_ready_arg = o->arg;
	cl->root = dkv_xstrdup(o->root);
	dkv_buf_printf(&b, "dkv:%s:", o->root);
	cl->tag_prefix = dkv_buf_cstr(&b);
	b = (struct dkv_buf){0};
	dkv_buf_printf(&b, "dkv:%s:%s", o->root, self);
	cl->tag_key = dkv_buf_cstr(&b);
	b = (struct dkv_buf){0};
	dkv_buf_printf(&b, "%s.tick", o->root);
	cl->tick_event = dkv_buf_cstr(&b);
	b = (struct dkv_buf){0};
	dkv_buf_printf(&b, "%s:%u", o->serf_host, o->serf_port);
	cl->serf_where = dkv_buf_cstr(&b);
	cl->advertise = dkv_xstrdup(o->advertise);
	cl->njoin = o->njoin;
	cl->join = dkv_xcalloc(o->njoin + 1, sizeof *cl->join);
	for (size_t i = 0; i < o->njoin; i++)
		cl->join[i] = dkv_xstrdup(o->join[i]);
	cl->tombstone_ms = o->tombstone_ms ? o->tombstone_ms : 10000;
	snprintf(cl->serf_state, sizeof cl->serf_state, "connecting to %s", cl->serf_where);
	cl->started_ms = uv_now(loop);
	cl->tokens = ANNOUNCE_BURST;
	cl->tokens_ms = cl->started_ms;
	cl->ready = o->ready_now;
	dkv_server_set_ready(srv, cl->ready);
	dkv_server_set_cluster(srv, cl);

	uv_timer_init(loop, &cl->timer);
	uv_timer_init(loop, &cl->serf_wait);
	uv_timer_init(loop, &cl->close_guard);
	cl->timer.data = cl->serf_wait.data = cl->close_guard.data = cl;
	cl->nhandles += 3;
	uv_timer_start(&cl->timer, dkv__cluster_on_timer, TIMER_MS, TIMER_MS);
	if (!cl->ready)
		uv_timer_start(&cl->serf_wait, dkv__cluster_on_serf_wait,
			       o->serf_wait_ms ? o->serf_wait_ms : 5000, 0);

	struct serf_client_opts so = {.on_state = dkv__cluster_on_serf_state, .arg = cl,
				      .retry_max_ms = 2000};
	int rc = serf_client_new(&cl->serf, loop, o->serf_host, o->serf_port, o->serf_auth, &so);
	if (!rc)
		rc = serf_stream(cl->serf,
				 "user,member-join,member-leave,member-failed,member-update,member-reap",
				 dkv__cluster_on_serf_event, cl, NULL);
	if (rc) {
		snprintf(err, errlen, "cannot start the Serf client for %s: %s", cl->serf_where,
			 strerror(-rc));
		dkv_server_set_ready(srv, true);
		dkv_cluster_close(cl, NULL, NULL); /* frees cl from the loop */
		return rc;
	}
	*out = cl;
	return 0;
}

const char *dkv_cluster_root(const struct dkv_cluster *cl)
{
	return cl->root;
}

struct serf_client *dkv_cluster_serf(struct dkv_cluster *cl)
{
	return cl->serf && cl->serf_ok ? cl->serf : NULL;
}

void dkv_cluster_encode_info(struct dkv_cluster *cl, struct dkv_buf *out)
{
	unsigned np = 0;
	for (struct peer *p = cl->peers; p; p = p->next)
		np++;
	dkv_mp_map(out, 9); /* root ready serf advertise peers conflicts tombstones_dropped
			     * tombstones missing */
	dkv_mp_cstr(out, "root");
	dkv_mp_cstr(out, cl->root);
	dkv_mp_cstr(out, "ready");
	dkv_mp_bool(out, cl->ready);
	dkv_mp_cstr(out, "serf");
	dkv_mp_cstr(out, cl->serf_state);
	dkv_mp_cstr(out, "advertise");
	dkv_mp_cstr(out, cl->advertise);
	dkv_mp_cstr(out, "peers");
	dkv_mp_map(out, np);
	for (struct peer *p = cl->peers; p; p = p->next) {
		dkv_mp_cstr(out, p->name);
		dkv_mp_map(out, 8);
		dkv_mp_cstr(out, "ticks"); /* what it reported: node -> highest tick known */
		uint32_t nt = 0;
		for (uint32_t i = 0; i < p->nrep; i++)
			nt += p->rep[i].tick != 0;
		dkv_mp_map(out, nt);
		for (uint32_t i = 0; i < p->nrep; i++) {
			if (!p->rep[i].tick)
				continue;
			dkv_mp_cstr(out, dkv_engine_node_at(cl->e, i)->name);
			dkv_mp_uint(out, p->rep[i].tick);
		}
		dkv_mp_cstr(out, "addr");
		if (p->addr)
			dkv_mp_cstr(out, p->addr);
		else
			dkv_mp_nil(out);
		dkv_mp_cstr(out, "state");
		dkv_mp_cstr(out, state_names[p->state]);
		dkv_mp_cstr(out, "serf");
		dkv_mp_cstr(out, p->tagged ? p->status : "gone");
		dkv_mp_cstr(out, "synced");
		dkv_mp_bool(out, p->synced);
		dkv_mp_cstr(out, "records");
		dkv_mp_uint(out, p->records);
		dkv_mp_cstr(out, "repairing");
		dkv_mp_bool(out, p->repair_seq != 0);
		dkv_mp_cstr(out, "error");
		if (p->last_error[0])
			dkv_mp_cstr(out, p->last_error);
		else
			dkv_mp_nil(out);
	}
	dkv_mp_cstr(out, "conflicts");
	dkv_mp_uint(out, cl->conflicts);
	dkv_mp_cstr(out, "tombstones_dropped");
	dkv_mp_uint(out, cl->purged);
	dkv_mp_cstr(out, "tombstones");
	dkv_mp_uint(out, dkv_engine_tombstone_count(cl->e));
	dkv_mp_cstr(out, "missing");
	uint32_t nn = dkv_engine_node_count(cl->e), nm = 0;
	for (uint32_t i = 0; i < nn; i++) {
		struct dkv_node *n = dkv_engine_node_at(cl->e, i);
		nm += n->tick && dkv__seen_prefix(n) < n->tick;
	}
	dkv_mp_map(out, nm);
	for (uint32_t i = 0; i < nn; i++) {
		struct dkv_node *n = dkv_engine_node_at(cl->e, i);
		if (!n->tick || dkv__seen_prefix(n) >= n->tick)
			continue;
		struct dkv_rangeset ms;
		dkv_rangeset_init(&ms);
		dkv_rangeset_missing(&n->seen, 1, n->tick + 1, &ms);
		dkv_mp_cstr(out, n->name);
		dkv_rangeset_encode(&ms, out);
		dkv_rangeset_release(&ms);
	}
}

void dkv_cluster_encode_remote_missing(struct dkv_cluster *cl, struct dkv_buf *out)
{
	uint32_t nn = dkv_engine_node_count(cl->e), nm = 0;
	struct dkv_rangeset *ms = dkv_xcalloc(nn ? nn : 1, sizeof *ms);
	for (struct peer *p = cl->peers; p; p = p->next) {
		if (!p->present)
			continue;
		for (uint32_t i = 0; i < nn && i < p->nrep; i++) {
			struct dkv_node *n = dkv_engine_node_at(cl->e, i);
			if (p->rep[i].tick && p->rep[i].prefix < n->tick)
				dkv_rangeset_add(&ms[i], p->rep[i].prefix + 1, n->tick + 1);
		}
	}
	for (uint32_t i = 0; i < nn; i++)
		nm += ms[i].n > 0;
	dkv_mp_map(out, nm);
	for (uint32_t i = 0; i < nn; i++) {
		if (ms[i].n) {
			dkv_mp_cstr(out, dkv_engine_node_at(cl->e, i)->name);
			dkv_rangeset_encode(&ms[i], out);
		}
		dkv_rangeset_release(&ms[i]);
	}
	free(ms);
}

/* ---- closing ---- */

static void maybe_freed(struct dkv_cluster *cl)
{
	if (cl->nhandles || !cl->serf_closed)
		return;
	for (struct peer *p = cl->peers, *n; p; p = n) {
		n = p->next;
		free(p->name);
		free(p->addr);
		free(p->member);
		free(p->rep);
		free(p);
	}
	for (size_t i = 0; i < cl->njoin; i++)
		free(cl->join[i]);
	free(cl->join);
	for (size_t i = 0; i < cl->nagents; i++)
		free(cl->agents[i]);
	free(cl->agents);
	free(cl->gaps);
	free(cl->root);
	free(cl->tag_key);
	free(cl->tag_prefix);
	free(cl->tick_event);
	free(cl->serf_where);
	free(cl->advertise);
	void (*cb)(void *) = cl->close_cb;
	void *arg = cl->close_arg;
	free(cl);
	if (cb)
		cb(arg);
}

static void handle_closed(uv_handle_t *h)
{
	struct dkv_cluster *cl = h->data;
	cl->nhandles--;
	maybe_freed(cl);
}

static void retry_closed(uv_handle_t *h)
{
	struct peer *p = h->data;
	struct dkv_cluster *cl = p->cl;
	cl->nhandles--;
	maybe_freed(cl);
}

static void serf_closed(struct serf_client *c, void *arg)
{
	struct dkv_cluster *cl = arg;
	(void)c;
	cl->serf_closed = true;
	if (!uv_is_closing((uv_handle_t *)&cl->close_guard))
		uv_close((uv_handle_t *)&cl->close_guard, handle_closed);
	maybe_freed(cl);
}

static void close_serf(struct dkv_cluster *cl)
{
	struct serf_client *c = cl->serf;
	if (!c)
		return;
	cl->serf = NULL;
	serf_client_close(c, serf_closed);
}

static void untagged(struct serf_client *c, int status, const char *agent_err, void *arg)
{
	(void)c;
	(void)status;
	(void)agent_err;
	close_serf(arg);
}

static void on_close_guard(uv_timer_t *h)
{
	close_serf(h->data);
}

void dkv_cluster_close(struct dkv_cluster *cl, void (*cb)(void *arg), void *arg)
{
	cl->closing = true;
	cl->close_cb = cb;
	cl->close_arg = arg;
	dkv_server_set_cluster(cl->srv, NULL);
	for (struct peer *p = cl->peers; p; p = p->next) {
		if (p->link)
			dkv__link_drop(p, NULL);
		uv_close((uv_handle_t *)&p->retry, retry_closed);
	}
	uv_close((uv_handle_t *)&cl->timer, handle_closed);
	uv_close((uv_handle_t *)&cl->serf_wait, handle_closed);
	/* withdraw our tag so that peers stop trying at once; the agent gets
	 * a second to answer */
	const char *del = cl->tag_key;
	if (cl->serf && cl->serf_ok && !serf_tags(cl->serf, NULL, 0, &del, 1, untagged, cl)) {
		uv_timer_start(&cl->close_guard, on_close_guard, 1000, 0);
		return;
	}
	if (cl->serf) {
		close_serf(cl);
	} else {
		cl->serf_closed = true;
		uv_close((uv_handle_t *)&cl->close_guard, handle_closed);
	}
}
