/*
 * conn.c - one client connection: bytes in, requests out to proto.c,
 * replies back, streams paced by the client's acks.
 *
 * Requests are msgpack maps back to back with no framing, so the reader
 * finds message boundaries by skipping one item at a time.  Replies
 * produced while a batch of requests is handled are written with one
 * uv_write.  A client that does not read is throttled: past
 * max_out_buffer bytes of unsent replies we stop reading its requests, and
 * its streams stop producing, so memory per connection stays bounded.
 *
 * With a change log, output is held back until the log has every change
 * made before the output was produced (written to the file; in `always`
 * mode also on disk): a reply never reports (or shows) a change that a
 * crash could still lose.  Each reply raises the connection's hold to the
 * log's newest record; flush writes nothing while the log is behind that,
 * and the log's notify (dkv__server_log_durable) writes the held output
 * once the log has taken it.  All connections' changes of one loop
 * iteration share one write (and in `always` mode one fsync).
 * The server's fence (the mounted tree's cache invalidation, server.h)
 * holds output the same way, with a number of its own.
 * NEEDSWORK: the whole output buffer waits for its newest reply's record;
 * keeping marks in out would let older replies go one fsync earlier.
 */
#include "net.h"
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned next_conn_id;

#define PER_ROUND_OUTPUT (4u << 20) /* reply bytes one connection may produce per round */

/* ---- replies ---- */

void dkv__reply_begin(struct dkv_reply *r, struct dkv_conn *c)
{
	struct dkv_logger *lg = c->srv->opts.logger;
	if (lg) {
		uint64_t need = dkv_logger_need(lg);
		if (need > c->hold)
			c->hold = need;
	}
	if (c->srv->fence.need) {
		uint64_t need = c->srv->fence.need(c->srv->fence.arg);
		if (need > c->hold_fence)
			c->hold_fence = need;
	}
	r->b = &c->out;
	r->head = c->out.len;
	r->n = 0;
	dkv_buf_putc(r->b, (char)0x80); /* fixmap; count patched at the end */
}

void dkv__reply_key(struct dkv_reply *r, const char *key)
{
	r->n++;
	dkv_mp_cstr(r->b, key);
}

void dkv__reply_end(struct dkv_reply *r)
{
	/* our replies never have more than 15 fields, so fixmap fits */
	r->b->data[r->head] = (uint8_t)(0x80 | r->n);
}

void dkv__reply_seq(struct dkv_reply *r, const struct dkv_msg *m)
{
	dkv__reply_key(r, "seq");
	dkv_mp_uint(r->b, m->seq);
}

void dkv__reply_tock(struct dkv_reply *r, struct dkv_engine *e, uint64_t tock)
{
	dkv__reply_key(r, "tock");
	dkv_mp_uint(r->b, tock ? tock : dkv_engine_next_tock(e));
}

/* A reply with just a result. */
void dkv__reply_result_bool(struct dkv_req *q, bool v)
{
	struct dkv_reply r;
	dkv__reply_begin(&r, q->c);
	dkv__reply_key(&r, "result");
	dkv_mp_bool(r.b, v);
	dkv__reply_seq(&r, q->m);
	dkv__reply_tock(&r, q->e, 0);
	dkv__reply_end(&r);
}

static void reply_error_v(struct dkv_conn *c, const struct dkv_msg *m, const char *etype,
			  const char *fmt, va_list ap)
{
	char msg[512];
	struct dkv_reply r;

	vsnprintf(msg, sizeof msg, fmt, ap);
	dkv__reply_begin(&r, c);
	dkv__reply_key(&r, "error");
	dkv_mp_cstr(r.b, msg);
	if (etype) {
		dkv__reply_key(&r, "etype");
		dkv_mp_cstr(r.b, etype);
	}
	if (m && m->has_seq) {
		dkv__reply_key(&r, "seq");
		dkv_mp_uint(r.b, m->seq);
	}
	dkv__reply_key(&r, "tock");
	dkv_mp_uint(r.b, dkv_engine_next_tock(c->srv->engine));
	dkv__reply_end(&r);
}

void dkv__reply_error(struct dkv_conn *c, const struct dkv_msg *m, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	reply_error_v(c, m, NULL, fmt, ap);
	va_end(ap);
}

void dkv__reply_error_etype(struct dkv_conn *c, const struct dkv_msg *m, const char *etype,
			    const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	reply_error_v(c, m, etype, fmt, ap);
	va_end(ap);
}

size_t dkv__conn_backlog(const struct dkv_conn *c)
{
	return c->out.len + c->inflight.len;
}

bool dkv__conn_has_room(const struct dkv_conn *c)
{
	return !c->closing && dkv__conn_backlog(c) < c->srv->opts.max_out_buffer / 2;
}

/* ---- streams ---- */

struct dkv_stream *dkv__stream_new(struct dkv_conn *c, uint64_t seq,
				   const struct dkv_stream_ops *ops, void *state)
{
	struct dkv_stream *st = dkv_xcalloc(1, sizeof *st);
	st->conn = c;
	st->seq = seq;
	st->ops = ops;
	st->state = state;
	st->next = c->streams;
	c->streams = st;
	return st;
}

struct dkv_stream *dkv__stream_find(struct dkv_conn *c, uint64_t seq)
{
	for (struct dkv_stream *st = c->streams; st; st = st->next)
		if (st->seq == seq && !st->ended)
			return st;
	return NULL;
}

bool dkv__stream_can_send(const struct dkv_stream *st)
{
	if (!dkv__conn_has_room(st->conn))
		return false;
	unsigned q = st->conn->qlen;
	return !q || st->wseq + 1 - st->acked < q;
}

void dkv__stream_msg_begin(struct dkv_stream *st, struct dkv_reply *r)
{
	dkv__reply_begin(r, st->conn);
	dkv__reply_key(r, "seq");
	dkv_mp_uint(r->b, st->seq);
	if (st->conn->qlen) {
		dkv__reply_key(r, "wseq");
		dkv_mp_uint(r->b, ++st->wseq);
	}
}

void dkv__stream_state(struct dkv_stream *st, const char *state)
{
	struct dkv_reply r;
	dkv__stream_msg_begin(st, &r);
	dkv__reply_key(&r, "state");
	dkv_mp_cstr(r.b, state);
	dkv__reply_key(&r, "tock");
	dkv_mp_uint(r.b, dkv_engine_next_tock(st->conn->srv->engine));
	dkv__reply_end(&r);
}

static void stream_free(struct dkv_stream *st)
{
	struct dkv_stream **pp = &st->conn->streams;
	while (*pp && *pp != st)
		pp = &(*pp)->next;
	if (*pp)
		*pp = st->next;
	if (st->ops->release)
		st->ops->release(st);
	free(st);
}

void dkv__stream_cancel(struct dkv_stream *st)
{
	st->ended = true;
	stream_free(st);
}

void dkv__stream_end(struct dkv_stream *st)
{
	dkv__stream_state(st, "end");
	dkv__stream_cancel(st);
}

void dkv__stream_answer(struct dkv_stream *st, const char *error)
{
	struct dkv_conn *c = st->conn;
	struct dkv_reply r;
	dkv__reply_begin(&r, c);
	if (error) {
		dkv__reply_key(&r, "error");
		dkv_mp_cstr(r.b, error);
	} else {
		dkv__reply_key(&r, "result");
		dkv_mp_bool(r.b, true);
	}
	dkv__reply_key(&r, "seq");
	dkv_mp_uint(r.b, st->seq);
	dkv__reply_key(&r, "tock");
	dkv_mp_uint(r.b, dkv_engine_next_tock(c->srv->engine));
	dkv__reply_end(&r);
	dkv__stream_cancel(st);
	dkv__conn_flush(c);
}

void dkv__stream_pump(struct dkv_stream *st)
{
	struct dkv_conn *c = st->conn;
	if (st->ended)
		return;
	if (st->ops->pump(st))
		dkv__stream_end(st); /* frees st */
	dkv__conn_flush(c);
}

static void pump_all(struct dkv_conn *c)
{
	struct dkv_stream *st = c->streams, *n;
	for (; st && dkv__conn_has_room(c); st = n) {
		n = st->next;
		if (dkv__stream_can_send(st) && st->ops->pump(st))
			dkv__stream_end(st);
	}
}

/* ---- writing ---- */

static void on_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf);
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf);
static void process_input(struct dkv_conn *c);

static void update_reading(struct dkv_conn *c)
{
	/* requests not yet handled are bounded too: a message may take up to
	 * max_msg_size, and more than that waits in the client's socket */
	bool want = !c->closing && !c->close_after_write && !c->parked &&
		    dkv__conn_backlog(c) < c->srv->opts.max_out_buffer &&
		    c->in.len <= c->srv->opts.max_msg_size;
	if (want && !c->reading) {
		if (!uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read))
			c->reading = true;
	} else if (!want && c->reading) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->reading = false;
	}
}

static void on_write(uv_write_t *req, int status)
{
	struct dkv_conn *c = req->data;
	c->writing = false;
	c->inflight.len = 0;
	if (status < 0 || c->closing) {
		dkv__conn_close(c);
		return;
	}
	/* room again: let streams continue, then maybe read more requests */
	pump_all(c);
	dkv__conn_flush(c);
	if (!c->closing && c->in.len && !c->close_after_write)
		process_input(c);
	update_reading(c);
}

void dkv__conn_flush(struct dkv_conn *c)
{
	if (c->writing || c->closing)
		return;
	if (c->out.len && dkv__conn_must_hold(c)) {
		if (!c->held) {
			c->held = true;
			c->srv->nheld++;
		}
		return;
	}
	if (!c->out.len) {
		if (c->close_after_write)
			dkv__conn_close(c);
		return;
	}
	/* The common case, replies to requests on a connection that is being
	 * read: hand them to the socket at once.  A queued uv_write would cost a
	 * callback and, with libuv 1.44, an epoll_ctl per batch.  (Where streams
	 * or throttling wait for the write's completion, on_write must run; and
	 * a big backlog goes to uv_write whole rather than being moved down
	 * after every partial write.) */
	if (c->reading && !c->streams && c->out.len <= 65536) {
		uv_buf_t tb = uv_buf_init((char *)c->out.data, (unsigned)c->out.len);
		int n = uv_try_write((uv_stream_t *)&c->tcp, &tb, 1);
		if (n == (int)c->out.len) {
			c->out.len = 0;
			if (c->close_after_write)
				dkv__conn_close(c);
			return;
		}
		if (n > 0)
			dkv_buf_consume(&c->out, (size_t)n);
		else if (n != UV_EAGAIN) {
			dkv__conn_close(c);
			return;
		}
	}
	/* swap buffers: out becomes inflight, the old inflight is reused */
	struct dkv_buf t = c->inflight;
	c->inflight = c->out;
	c->out = t;
	c->out.len = 0;
	uv_buf_t b = uv_buf_init((char *)c->inflight.data, (unsigned)c->inflight.len);
	c->wreq.data = c;
	int rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write);
	if (rc) {
		dkv__conn_close(c);
		return;
	}
	c->writing = true;
}

/* ---- reading ---- */

/* Handle a protocol failure that leaves the byte stream unusable: tell the
 * client why, then close once the reply is out. */
static void fatal(struct dkv_conn *c, const char *why)
{
	dkv__reply_error(c, NULL, "%s", why);
	c->close_after_write = true;
	c->in.len = 0;
	update_reading(c);
	dkv__conn_flush(c);
}

static void handle_control(struct dkv_conn *c, const struct dkv_msg *m, const char *state,
			   size_t slen)
{
	struct dkv_stream *st = dkv__stream_find(c, m->seq);
	if (!st)
		return; /* an ack for a finished stream is normal */
	if (slen == 3 && !memcmp(state, "ack", 3)) {
		const struct dkv_field *a = dkv__msg_get(m, "ack");
		struct dkv_mp_reader r;
		struct dkv_mp_item it;
		if (!a)
			return;
		dkv_mp_reader_init(&r, a->val, a->vallen);
		if (dkv_mp_read(&r, &it) || it.type != DKV_MP_UINT)
			return;
		if (it.v.u > st->acked)
			st->acked = it.v.u < st->wseq ? it.v.u : st->wseq;
		dkv__stream_pump(st);
	} else if (slen == 3 && !memcmp(state, "end", 3)) {
		dkv__stream_cancel(st);
	}
}

/* Handle one message; false when it must wait until the node is in sync
 * (the connection is parked: see dkv_server_set_ready). */
static bool handle_message(struct dkv_conn *c, const uint8_t *p, size_t len)
{
	struct dkv_msg m;
	char err[256];

	if (dkv__msg_decode(&m, p, len, err, sizeof err)) {
		dkv__reply_error(c, NULL, "%s", err);
		return true;
	}
	const struct dkv_field *sf = dkv__msg_get(&m, "seq");
	if (!m.has_seq) {
		dkv__reply_error(c, &m, sf ? "seq must be a non-negative integer"
					   : "a request needs a seq");
		return true;
	}
	if (dkv__msg_check_text(&m, p, len, err, sizeof err)) {
		dkv__reply_error(c, &m, "%s", err);
		return true;
	}
	const struct dkv_field *st = dkv__msg_get(&m, "state");
	const struct dkv_field *act = dkv__msg_get(&m, "action");
	if (st && !act) {
		struct dkv_mp_reader r;
		struct dkv_mp_item it;
		dkv_mp_reader_init(&r, st->val, st->vallen);
		if (!dkv_mp_read(&r, &it) && it.type == DKV_MP_STR)
			handle_control(c, &m, (const char *)it.v.s.p, it.v.s.len);
		return true;
	}
	if (m.seq == 0 && !act) { /* the client's hello: its window */
		const struct dkv_field *q = dkv__msg_get(&m, "qlen");
		struct dkv_mp_reader r;
		struct dkv_mp_item it;
		if (q) {
			dkv_mp_reader_init(&r, q->val, q->vallen);
			if (!dkv_mp_read(&r, &it) && it.type == DKV_MP_UINT)
				c->qlen = it.v.u < c->srv->opts.qlen ? (unsigned)it.v.u
								    : c->srv->opts.qlen;
		}
		return true;
	}
	if (!dkv__proto_dispatch(c, &m)) {
		c->parked = true;
		return false;
	}
	return true;
}

static void process_input(struct dkv_conn *c)
{
	struct dkv_mp_reader r;
	size_t done = 0;
	size_t max = c->srv->opts.max_msg_size;

	size_t backlog0 = dkv__conn_backlog(c);
	dkv_mp_reader_init(&r, c->in.data, c->in.len);
	while (!c->closing && !c->close_after_write && dkv_mp_left(&r)) {
		/* a client that does not read its replies gets no more service */
		if (dkv__conn_backlog(c) >= c->srv->opts.max_out_buffer)
			break;
		/* nor may one with a deep pipeline keep the loop from the others:
		 * past this much output in one round, the rest waits until the
		 * write completes (on_write comes back here) */
		if (dkv__conn_backlog(c) - backlog0 >= PER_ROUND_OUTPUT && c->out.len > 65536)
			break;
		const uint8_t *start = r.p;
		int rc = dkv_mp_skip(&r);
		if (rc == -EAGAIN) {
			if (dkv_mp_left(&r) > max) {
				char why[96];
				snprintf(why, sizeof why, "message too large (limit %zu bytes)", max);
				fatal(c, why);
				return;
			}
			break;
		}
		if (rc == -E2BIG) {
			fatal(c, "message nested too deeply");
			return;
		}
		if (rc) {
			fatal(c, "malformed msgpack");
			return;
		}
		size_t len = (size_t)(r.p - start);
		if (len > max) {
			struct dkv_msg m;
			char err[128];
			bool ok = !dkv__msg_decode(&m, start, len, err, sizeof err);
			dkv__reply_error(c, ok ? &m : NULL, "message too large (limit %zu bytes)", max);
		} else if (!handle_message(c, start, len)) {
			update_reading(c);
			break;
		}
		done = (size_t)(r.p - c->in.data);
	}
	if (!c->closing)
		dkv_buf_consume(&c->in, done);
	dkv__conn_flush(c);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct dkv_conn *c = h->data;
	dkv_buf_reserve(&c->in, 65536);
	*buf = uv_buf_init((char *)c->in.data + c->in.len, (unsigned)(c->in.cap - c->in.len - 1));
}

static void on_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf)
{
	struct dkv_conn *c = h->data;
	if (nread < 0) {
		dkv__conn_close(c);
		return;
	}
	c->in.len += (size_t)nread;
	process_input(c);
	update_reading(c);
}

static void conn_closed(uv_handle_t *h)
{
	struct dkv_conn *c = h->data;
	struct dkv_server *s = c->srv;
	dkv_buf_release(&c->in);
	dkv_buf_release(&c->out);
	dkv_buf_release(&c->inflight);
	free(c);
	s->nhandles--;
	dkv__server_maybe_done(s);
}

bool dkv__conn_must_hold(const struct dkv_conn *c)
{
	const struct dkv_server *s = c->srv;
	if (c->hold && s->opts.logger && !dkv_logger_is_durable(s->opts.logger, c->hold))
		return true;
	return c->hold_fence && s->fence.need && !s->fence.passed(s->fence.arg, c->hold_fence);
}


void dkv__conn_close(struct dkv_conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	if (c->held) {
		c->held = false;
		c->srv->nheld--;
	}
	while (c->streams)
		dkv__stream_cancel(c->streams);
	dkv__auth_conn_gone(c);
	struct dkv_server *s = c->srv;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->nconns--;
	uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

void dkv__conn_accept(struct dkv_server *s)
{
	struct dkv_conn *c = dkv_xcalloc(1, sizeof *c);
	c->srv = s;
	c->id = ++next_conn_id;
	uv_tcp_init(s->loop, &c->tcp);
	c->tcp.data = c;
	s->nhandles++;
	if (uv_accept((uv_stream_t *)&s->listener, (uv_stream_t *)&c->tcp)) {
		c->closing = true;
		uv_close((uv_handle_t *)&c->tcp, conn_closed);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->nconns++;
	dkv__proto_greeting(c);
	dkv__conn_flush(c);
	update_reading(c);
}

void dkv__conn_unpark(struct dkv_conn *c)
{
	if (!c->parked)
		return;
	c->parked = false;
	process_input(c);
	update_reading(c);
}
