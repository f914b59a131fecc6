/*
 * client.c - a connection to one Serf agent's RPC port that keeps itself
 * alive: connect, handshake, auth, reconnect with backoff, and the
 * dispatch of the agent's messages to requests and streams.
 *
 * The workload: one client per process talking to the agent on the same
 * host; a handful of requests per second, a stream that may deliver a few
 * hundred records per second, and an agent that may be restarted under
 * us at any time.  So the connection is disposable (struct conn, one per
 * attempt) while requests, streams and the client outlive it.
 *
 * Requests are encoded into c->out and written from the idle callback, so
 * everything asked for in one loop iteration goes out in one write and a
 * failing write never calls back into the function that queued it.  The
 * agent answers in the order it reads requests, with stream records
 * interleaved, so the oldest request is usually at the head of c->reqs.
 *
 * NEEDSWORK: requests have no timeout.  An agent that hangs (SIGSTOP, a
 * deadlock) with its socket open holds every request until the kernel's
 * keepalive (30 s idle) or the agent's death breaks the connection.
 * NEEDSWORK: c->out is not bounded; callers bound their own rate (see
 * serf_client_pending).
 */
#include "internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define READ_CHUNK (64 * 1024)

struct conn {
	uv_tcp_t tcp;
	uv_connect_t creq;
	uv_write_t wreq;
	struct serf_client *c;
	struct serf__reader *rd;
	struct serf__buf inflight; /* bytes handed to uv_write */
	bool writing;              /* wreq is in use */
	bool closed;               /* uv_close was called; freed in its callback */
	uint32_t gen;              /* which connection of the client this is */
	/* Whose body the next non-header message is: a request, a stream or
	 * query (by seq), or nobody (records of a stopped stream). */
	enum { BODY_NONE, BODY_REQ, BODY_STREAM } body;
	uint64_t body_seq;
};

struct serf_client {
	uv_loop_t *loop;
	char *host;
	unsigned port;
	char *auth_key;           /* NULL: no auth */
	struct serf_client_opts opts;

	uv_timer_t timer;         /* the pause before an attempt, or its deadline */
	uv_idle_t idle;           /* writes c->out and runs deferred work */
	uv_getaddrinfo_t gai;
	bool resolving;           /* gai is in use */
	uint32_t attempt;         /* counts attempts, to ignore late lookups */
	uint32_t gai_attempt;     /* the attempt gai belongs to */
	struct conn *conn;        /* the current connection, NULL between attempts */
	bool ready;               /* handshake and auth done on conn */
	unsigned backoff_ms;      /* the next pause */
	int reported;             /* the last status given to on_state; 1: none */

	bool closing;
	bool finished;
	serf_close_cb close_cb;
	unsigned handles;         /* handles whose close callback is outstanding */

	uint64_t seq;             /* the last sequence number used */
	uint32_t gen;             /* the last connection generation used */
	struct serf__buf out;     /* encoded requests not written yet */
	size_t out_mark;          /* where the request being encoded starts */
	struct serf__reqs reqs;   /* waiting for an answer, oldest first */
	size_t npending;          /* user requests in reqs */
	struct serf__streams streams;
	char errmsg[256];
};

static void on_retry(uv_timer_t *t);
static void lost(struct serf_client *c, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* libuv reports errno values as they are, except these. */
static int to_errno(int uv)
{
	if (uv == UV_EOF)
		return -ECONNRESET;
	if (uv <= UV_EAI_ADDRFAMILY && uv >= UV_EAI_PROTOCOL)
		return -EHOSTUNREACH; /* name lookup failed */
	return uv;
}

static void report_state(struct serf_client *c, int status)
{
	if (c->closing || status == c->reported)
		return;
	c->reported = status;
	if (c->opts.on_state)
		c->opts.on_state(c, status, c->errmsg, c->opts.arg);
}

static void maybe_finish(struct serf_client *c);

static void on_handle_closed(uv_handle_t *h)
{
	struct serf_client *c = h->data;
	c->handles--;
	maybe_finish(c);
}

/* ---- connections ---- */

static void on_conn_closed(uv_handle_t *h)
{
	struct conn *conn = h->data;
	struct serf_client *c = conn->c;

	serf__reader_free(conn->rd);
	serf__buf_release(&conn->inflight);
	free(conn);
	c->handles--;
	maybe_finish(c);
}

static void conn_close(struct conn *conn)
{
	if (conn->closed)
		return;
	conn->closed = true;
	uv_close((uv_handle_t *)&conn->tcp, on_conn_closed);
}

/* Complete a request that is no longer in c->reqs. */
static void complete(struct serf_client *c, struct serf__req *r, int status, const char *err,
		     const struct serf__msg *body);

static bool is_user_req(const struct serf__req *r)
{
	return r->kind != SERF__REQ_HANDSHAKE && r->kind != SERF__REQ_AUTH &&
	       r->kind != SERF__REQ_STOP;
}

static void unlink_req(struct serf_client *c, struct serf__req *r)
{
	serf__reqs_remove(&c->reqs, r);
	if (is_user_req(r))
		c->npending--;
}

static void fail_reqs(struct serf_client *c, int status)
{
	struct serf__reqs l = c->reqs;
	c->reqs.head = c->reqs.tail = NULL;
	c->npending = 0;
	while (l.head) {
		struct serf__req *r = l.head;
		serf__reqs_remove(&l, r);
		complete(c, r, status, NULL, NULL);
	}
}

/*
 * The connection (or the attempt to make one) failed: drop it, fail what
 * waits for it, plan the next attempt and tell the user.
 */
static void lost(struct serf_client *c, int status, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(c->errmsg, sizeof(c->errmsg), "serf agent at %s:%u: ", c->host, c->port);
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof(c->errmsg))
		vsnprintf(c->errmsg + n, sizeof(c->errmsg) - (size_t)n, fmt, ap);
	va_end(ap);

	if (c->conn)
		conn_close(c->conn);
	c->conn = NULL;
	c->ready = false;
	c->out.len = c->out_mark = 0;
	c->out.failed = false;
	if (!c->closing) {
		uv_timer_start(&c->timer, on_retry, c->backoff_ms, 0);
		c->backoff_ms *= 2;
		if (c->backoff_ms > c->opts.retry_max_ms)
			c->backoff_ms = c->opts.retry_max_ms;
	}
	fail_reqs(c, -ECONNRESET);
	serf__streams_disconnected(c, -ECONNRESET);
	report_state(c, status);
}

static void flush(struct serf_client *c);

static void on_write(uv_write_t *w, int status)
{
	struct conn *conn = w->data;
	struct serf_client *c = conn->c;

	conn->writing = false;
	conn->inflight.len = 0;
	if (conn->closed)
		return;
	if (status < 0) {
		lost(c, to_errno(status), "write: %s", uv_strerror(status));
		return;
	}
	flush(c);
}

static void flush(struct serf_client *c)
{
	struct conn *conn = c->conn;
	if (!conn || conn->closed || conn->writing || !c->out.len)
		return;

	/* hand the bytes over by swapping buffers, keeping both allocations */
	struct serf__buf t = conn->inflight;
	conn->inflight = c->out;
	c->out = t;
	c->out.len = c->out_mark = 0;

	uv_buf_t b = uv_buf_init(conn->inflight.data, (unsigned)conn->inflight.len);
	conn->wreq.data = conn;
	int r = uv_write(&conn->wreq, (uv_stream_t *)&conn->tcp, &b, 1, on_write);
	if (r < 0) {
		lost(c, to_errno(r), "write: %s", uv_strerror(r));
		return;
	}
	conn->writing = true;
}

static void on_idle(uv_idle_t *h)
{
	struct serf_client *c = h->data;

	uv_idle_stop(h);
	flush(c);
	serf__stream_run_deferred(c);
}

void serf__client_defer(struct serf_client *c)
{
	if (!c->closing)
		uv_idle_start(&c->idle, on_idle);
}

/* ---- the handshake ---- */

static int send_handshake(struct serf_client *c)
{
	struct serf__req *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->kind = SERF__REQ_HANDSHAKE;
	r->seq = serf__client_seq(c);
	serf__enc_header(&c->out, "handshake", r->seq);
	serf__enc_map(&c->out, 1);
	serf__enc_str(&c->out, "Version");
	serf__enc_int(&c->out, 1);
	return serf__client_send(c, r);
}

static int send_auth(struct serf_client *c)
{
	struct serf__req *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->kind = SERF__REQ_AUTH;
	r->seq = serf__client_seq(c);
	serf__enc_header(&c->out, "auth", r->seq);
	serf__enc_map(&c->out, 1);
	serf__enc_str(&c->out, "AuthKey");
	serf__enc_str(&c->out, c->auth_key);
	return serf__client_send(c, r);
}

static void became_ready(struct serf_client *c)
{
	uv_timer_stop(&c->timer);
	c->ready = true;
	c->backoff_ms = c->opts.retry_min_ms;
	snprintf(c->errmsg, sizeof(c->errmsg), "serf agent at %s:%u: connected", c->host,
		 c->port);
	serf__streams_subscribe(c);
	report_state(c, 0);
	if (c->ready)
		c->errmsg[0] = 0;
}

static void on_handshake(struct serf_client *c, int status, const char *err)
{
	int r;
	if (status == -ECONNRESET || status == -ECANCELED)
		return; /* lost() or close already handles the connection */
	if (status) {
		lost(c, -EPROTO, "handshake refused: %s", err ? err : "?");
		return;
	}
	if (!c->auth_key) {
		became_ready(c);
		return;
	}
	r = send_auth(c);
	if (r)
		lost(c, r, "auth: %s", uv_strerror(r));
}

static void on_auth(struct serf_client *c, int status, const char *err)
{
	if (status == -ECONNRESET || status == -ECANCELED)
		return;
	if (status) {
		lost(c, -EACCES, "auth key refused: %s", err ? err : "?");
		return;
	}
	became_ready(c);
}

/* ---- reading ---- */

static struct serf__req *find_req(struct serf_client *c, uint64_t seq)
{
	for (struct serf__req *r = c->reqs.head; r; r = r->next)
		if (r->seq == seq)
			return r;
	return NULL;
}

static void complete(struct serf_client *c, struct serf__req *r, int status, const char *err,
		     const struct serf__msg *body)
{
	const struct serf_member *m = NULL;
	const struct serf_stat *st = NULL;
	size_t n = 0;
	int num = 0;

	if (status == -EREMOTEIO && !err)
		err = r->agent_err ? r->agent_err : "";
	if (status != -EREMOTEIO)
		err = NULL;

	switch (r->kind) {
	case SERF__REQ_HANDSHAKE:
		on_handshake(c, status, err);
		break;
	case SERF__REQ_AUTH:
		on_auth(c, status, err);
		break;
	case SERF__REQ_STOP:
		break;
	case SERF__REQ_STATUS:
		if (r->cb.status)
			r->cb.status(c, status, err, r->arg);
		break;
	case SERF__REQ_MEMBERS:
		if (!status && body) {
			status = serf__decode_members(body, &m, &n);
			if (status)
				m = NULL, n = 0;
		}
		r->cb.members(c, status, err, m, n, r->arg);
		break;
	case SERF__REQ_JOIN:
		if ((!status || status == -EREMOTEIO) && body) {
			int d = serf__decode_join(body, &num);
			if (d && !status)
				status = d;
		}
		r->cb.join(c, status, err, num, r->arg);
		break;
	case SERF__REQ_STATS:
		if (!status && body) {
			status = serf__decode_stats(body, &st, &n);
			if (status)
				st = NULL, n = 0;
		}
		r->cb.stats(c, status, err, st, n, r->arg);
		break;
	}
	free(r->agent_err);
	free(r);
}

static bool has_body(enum serf__req_kind k)
{
	return k == SERF__REQ_MEMBERS || k == SERF__REQ_JOIN || k == SERF__REQ_STATS;
}

/*
 * Whether the agent sends the body of this request also with an error.
 * It does for join (Num: how many it joined anyway), but the errors of its
 * dispatcher ("Authentication required", ...) come without any body, and
 * an unexpected body is harmless (nobody owns it, so it is skipped) while
 * a missing one would hold the request until the next message.
 */
static bool body_despite_error(enum serf__req_kind k, const char *err)
{
	static const char *const header_only[] = {
		"Authentication required",
		"Handshake required",
		"Unsupported command",
	};
	if (k != SERF__REQ_JOIN)
		return false;
	for (size_t i = 0; i < sizeof(header_only) / sizeof(header_only[0]); i++)
		if (!strcmp(err, header_only[i]))
			return false;
	return true;
}

static void on_header(struct serf_client *c, struct conn *conn, const struct serf__msg *m)
{
	struct serf__req *r = find_req(c, m->seq);
	int status = m->error[0] ? -EREMOTEIO : 0;
	bool want_body;

	if (r && has_body(r->kind) && (!status || body_despite_error(r->kind, m->error))) {
		r->got_header = true;
		if (status && !(r->agent_err = strdup(m->error))) {
			unlink_req(c, r);
			complete(c, r, -ENOMEM, NULL, NULL);
			return;
		}
		conn->body = BODY_REQ;
		conn->body_seq = m->seq;
		return;
	}
	if (r) {
		unlink_req(c, r);
		complete(c, r, status, m->error, NULL);
		return;
	}
	if (serf__stream_header(c, m->seq, m->error, &want_body)) {
		if (want_body) {
			conn->body = BODY_STREAM;
			conn->body_seq = m->seq;
		}
		return;
	}
	/* an answer nobody waits for: a record of a stream we stopped */
}

/* The header before this one promised a body that never came. */
static void body_missing(struct serf_client *c, struct conn *conn)
{
	if (conn->body == BODY_REQ) {
		struct serf__req *r = find_req(c, conn->body_seq);
		if (r) {
			unlink_req(c, r);
			complete(c, r, r->agent_err ? -EREMOTEIO : -EPROTO, NULL, NULL);
		}
	}
	conn->body = BODY_NONE;
}

static int on_body(struct serf_client *c, struct conn *conn, const struct serf__msg *m)
{
	int owner = conn->body;
	uint64_t seq = conn->body_seq;

	conn->body = BODY_NONE;
	if (owner == BODY_STREAM)
		return serf__stream_body(c, seq, m);
	if (owner == BODY_REQ) {
		struct serf__req *r = find_req(c, seq);
		if (r) {
			unlink_req(c, r);
			complete(c, r, r->agent_err ? -EREMOTEIO : 0, NULL, m);
		}
	}
	return 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct conn *conn = h->data;
	char *p;
	size_t len;

	(void)suggested;
	if (serf__reader_space(conn->rd, READ_CHUNK, &p, &len)) {
		*buf = uv_buf_init(NULL, 0);
		return;
	}
	*buf = uv_buf_init(p, len > UINT32_MAX ? UINT32_MAX : (unsigned)len);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *conn = s->data;
	struct serf_client *c = conn->c;
	struct serf__msg m;
	int r;

	(void)buf;
	if (conn->closed)
		return;
	if (nread < 0) {
		if (nread == UV_ENOBUFS)
			lost(c, -ENOMEM, "out of memory");
		else if (nread == UV_EOF)
			lost(c, -ECONNRESET, "connection closed by the agent");
		else
			lost(c, to_errno((int)nread), "read: %s", uv_strerror((int)nread));
		return;
	}
	serf__reader_fill(conn->rd, (size_t)nread);
	/* A callback may close the client or lose the connection: stop then. */
	while (!conn->closed && (r = serf__reader_next(conn->rd, &m)) != 0) {
		if (r < 0) {
			lost(c, r, "%s", r == -ENOMEM ? "out of memory" : "garbage from the agent");
			return;
		}
		if (m.is_header) {
			if (conn->body != BODY_NONE)
				body_missing(c, conn);
			if (!conn->closed)
				on_header(c, conn, &m);
		} else if ((r = on_body(c, conn, &m)) != 0 && !conn->closed) {
			lost(c, r, "malformed record from the agent");
			return;
		}
	}
}

static void on_connected(uv_connect_t *req, int status)
{
	struct conn *conn = req->data;
	struct serf_client *c = conn->c;
	int r;

	if (conn->closed)
		return;
	if (status < 0) {
		lost(c, to_errno(status), "connect: %s", uv_strerror(status));
		return;
	}
	r = uv_read_start((uv_stream_t *)&conn->tcp, on_alloc, on_read);
	if (!r)
		r = send_handshake(c);
	if (r)
		lost(c, to_errno(r), "%s", uv_strerror(r));
}

static void connect_to(struct serf_client *c, const struct sockaddr *sa)
{
	struct conn *conn = calloc(1, sizeof(*conn));
	int r;

	if (!conn) {
		lost(c, -ENOMEM, "out of memory");
		return;
	}
	conn->c = c;
	r = serf__reader_new(&conn->rd);
	if (!r)
		r = uv_tcp_init(c->loop, &conn->tcp);
	if (r) {
		serf__reader_free(conn->rd);
		free(conn);
		lost(c, r, "%s", uv_strerror(r));
		return;
	}
	c->handles++;
	conn->tcp.data = conn;
	conn->creq.data = conn;
	conn->gen = ++c->gen;
	c->conn = conn;
	uv_tcp_nodelay(&conn->tcp, 1);
	uv_tcp_keepalive(&conn->tcp, 1, 30);
	r = uv_tcp_connect(&conn->creq, &conn->tcp, sa, on_connected);
	if (r)
		lost(c, to_errno(r), "connect: %s", uv_strerror(r));
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct serf_client *c = req->data;
	const struct addrinfo *pick = NULL;

	c->resolving = false;
	if (c->closing || c->gai_attempt != c->attempt) {
		uv_freeaddrinfo(res);
		maybe_finish(c);
		return;
	}
	if (status < 0) {
		lost(c, to_errno(status), "cannot look up %s: %s", c->host, uv_strerror(status));
		return;
	}
	for (const struct addrinfo *a = res; a && !pick; a = a->ai_next)
		if (a->ai_family == AF_INET)
			pick = a;
	if (!pick)
		pick = res;
	if (pick)
		connect_to(c, pick->ai_addr);
	else
		lost(c, -EHOSTUNREACH, "no address for %s", c->host);
	uv_freeaddrinfo(res);
}

static void on_deadline(uv_timer_t *t)
{
	struct serf_client *c = t->data;
	if (c->resolving)
		uv_cancel((uv_req_t *)&c->gai);
	lost(c, -ETIMEDOUT, "no answer within %u ms", c->opts.connect_timeout_ms);
}

static void start_attempt(struct serf_client *c)
{
	struct sockaddr_storage ss;
	char port[16];
	int r;

	c->attempt++;
	if (c->resolving) {
		/* the last lookup still hangs; count it as this attempt's failure */
		lost(c, -ETIMEDOUT, "cannot look up %s: no answer", c->host);
		return;
	}
	uv_timer_start(&c->timer, on_deadline, c->opts.connect_timeout_ms, 0);
	if (!uv_ip4_addr(c->host, (int)c->port, (struct sockaddr_in *)&ss) ||
	    !uv_ip6_addr(c->host, (int)c->port, (struct sockaddr_in6 *)&ss)) {
		connect_to(c, (struct sockaddr *)&ss);
		return;
	}
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	snprintf(port, sizeof(port), "%u", c->port);
	c->gai.data = c;
	r = uv_getaddrinfo(c->loop, &c->gai, on_resolved, c->host, port, &hints);
	if (r) {
		lost(c, to_errno(r), "cannot look up %s: %s", c->host, uv_strerror(r));
		return;
	}
	c->resolving = true;
	c->gai_attempt = c->attempt;
}

static void on_retry(uv_timer_t *t)
{
	start_attempt(t->data);
}

/* ---- what request.c and stream.c use ---- */

int serf__client_check(const struct serf_client *c)
{
	if (!c)
		return -EINVAL;
	if (c->closing)
		return -ESHUTDOWN;
	if (!c->ready)
		return -ENOTCONN;
	return 0;
}

uint64_t serf__client_seq(struct serf_client *c)
{
	return ++c->seq;
}

struct serf__buf *serf__client_out(struct serf_client *c)
{
	return &c->out;
}

void serf__client_unsend(struct serf_client *c)
{
	c->out.len = c->out_mark;
	c->out.failed = false;
}

int serf__client_send(struct serf_client *c, struct serf__req *req)
{
	if (c->out.failed || !c->conn) {
		int r = c->out.failed ? -ENOMEM : -ENOTCONN;
		serf__client_unsend(c);
		free(req);
		return r;
	}
	c->out_mark = c->out.len;
	if (req) {
		serf__reqs_push(&c->reqs, req);
		if (is_user_req(req))
			c->npending++;
	}
	serf__client_defer(c);
	return 0;
}

uint32_t serf__client_gen(const struct serf_client *c)
{
	return c->conn ? c->conn->gen : 0;
}

struct serf__streams *serf__client_streams(struct serf_client *c)
{
	return &c->streams;
}

/* ---- the client ---- */

static void free_on_close(uv_handle_t *h)
{
	free(h->data);
}

int serf_client_new(struct serf_client **out, uv_loop_t *loop, const char *host, unsigned port,
		    const char *auth_key, const struct serf_client_opts *opts)
{
	struct serf_client *c = NULL;
	int r = -ENOMEM;

	*out = NULL;
	if (!loop || !host || !*host || !port || port > 65535)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		goto fail;
	c->loop = loop;
	c->port = port;
	c->reported = 1;
	if (opts)
		c->opts = *opts;
	if (!c->opts.retry_min_ms)
		c->opts.retry_min_ms = 100;
	if (!c->opts.retry_max_ms)
		c->opts.retry_max_ms = 2000;
	if (c->opts.retry_max_ms < c->opts.retry_min_ms)
		c->opts.retry_max_ms = c->opts.retry_min_ms;
	if (!c->opts.connect_timeout_ms)
		c->opts.connect_timeout_ms = 5000;
	c->backoff_ms = c->opts.retry_min_ms;
	c->host = strdup(host);
	if (!c->host)
		goto fail;
	if (auth_key && !(c->auth_key = strdup(auth_key)))
		goto fail;
	r = uv_idle_init(loop, &c->idle);
	if (r)
		goto fail;
	c->idle.data = c;
	r = uv_timer_init(loop, &c->timer);
	if (r) {
		/* the idle handle exists and must be closed before c is freed */
		free(c->host);
		free(c->auth_key);
		uv_close((uv_handle_t *)&c->idle, free_on_close);
		return r;
	}
	c->timer.data = c;
	c->gai.data = c;
	c->handles = 2;
	/* the first attempt runs from the loop, so that on_state is never
	 * called from inside serf_client_new */
	uv_timer_start(&c->timer, on_retry, 0, 0);
	*out = c;
	return 0;
fail:
	if (c) {
		free(c->host);
		free(c->auth_key);
		free(c);
	}
	return r;
}

static void maybe_finish(struct serf_client *c)
{
	if (!c->closing || c->finished || c->handles || c->resolving)
		return;
	c->finished = true;
	fail_reqs(c, -ECANCELED);
	serf__streams_cancel(c);
	if (c->close_cb)
		c->close_cb(c, c->opts.arg);
	serf__buf_release(&c->out);
	free(c->host);
	free(c->auth_key);
	free(c);
}

void serf_client_close(struct serf_client *c, serf_close_cb cb)
{
	if (!c || c->closing)
		return;
	c->closing = true;
	c->ready = false;
	c->close_cb = cb;
	uv_close((uv_handle_t *)&c->timer, on_handle_closed);
	uv_close((uv_handle_t *)&c->idle, on_handle_closed);
	if (c->conn)
		conn_close(c->conn);
	c->conn = NULL;
	if (c->resolving)
		uv_cancel((uv_req_t *)&c->gai);
}

bool serf_client_ready(const struct serf_client *c)
{
	return c && c->ready;
}

size_t serf_client_pending(const struct serf_client *c)
{
	return c ? c->npending : 0;
}

const char *serf_client_errmsg(const struct serf_client *c)
{
	return c ? c->errmsg : "";
}
