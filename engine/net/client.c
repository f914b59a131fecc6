/*
 * client.c - the blocking DistKV protocol client (see client.h).
 *
 * Written for the command line: a process opens one connection, sends a
 * handful of requests one after the other and exits, or follows a single
 * watch stream for a long time.  So there is no event loop: plain
 * blocking sockets, poll() only where a deadline applies.
 *
 * Received bytes collect in one buffer; dkv_mp_skip() finds where each
 * message ends, so a message may arrive in any number of pieces.
 */
#include "client.h"

#include "auth.h"
#include "path.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* A reply bigger than this is taken as a broken stream rather than data:
 * it would not fit the server's own limits either. */
#define MAX_MSG (256u << 20)

/* What we tell the server our receive queue holds when it does not say. */
#define DEFAULT_QLEN 10

struct dkv_client {
	int fd;
	uint64_t seq;         /* last sequence number used */
	uint32_t qlen;        /* the server's flow-control window, in messages */
	int timeout_ms;       /* per reply; -1: forever */
	struct dkv_buf rbuf;  /* received, not yet consumed */
	size_t used;          /* bytes at the front of rbuf already handed out */
	struct dkv_buf greet; /* the greeting map */
	struct dkv_buf req;   /* scratch for outgoing requests */
	char err[512];
};

static void set_err(struct dkv_client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_err(struct dkv_client *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds left until deadline for poll(); -1 when there is none. */
static int left_ms(int64_t deadline)
{
	if (deadline < 0)
		return -1;
	int64_t d = deadline - now_ms();
	if (d < 0)
		return 0;
	return d > 1000000000 ? 1000000000 : (int)d;
}

static int wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd pfd = {.fd = fd, .events = events};
	for (;;) {
		int r = poll(&pfd, 1, left_ms(deadline));
		if (r > 0)
			return 0;
		if (r == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

/* ---- connecting ---- */

static int connect_one(const struct addrinfo *ai, int64_t deadline, int *fdp)
{
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
	if (fd < 0)
		return -errno;
	int fl = fcntl(fd, F_GETFL);
	int r = 0;
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
		r = -errno;
		goto out;
	}
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		if (errno != EINPROGRESS) {
			r = -errno;
			goto out;
		}
		r = wait_fd(fd, POLLOUT, deadline);
		if (r < 0)
			goto out;
		int soerr = 0;
		socklen_t sl = sizeof(soerr);
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0) {
			r = -errno;
			goto out;
		}
		if (soerr) {
			r = -soerr;
			goto out;
		}
	}
	/* Back to blocking: later waits use poll() only when a timeout is set. */
	if (fcntl(fd, F_SETFL, fl) < 0) {
		r = -errno;
		goto out;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	*fdp = fd;
	return 0;
out:
	close(fd);
	return r;
}

static int open_socket(struct dkv_client *c, const char *host, unsigned port, int64_t deadline)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	struct addrinfo *res = NULL;
	char sport[16];
	snprintf(sport, sizeof(sport), "%u", port);
	/* NEEDSWORK: name lookup is not bounded by the timeout. */
	int g = getaddrinfo(host, sport, &hints, &res);
	if (g != 0) {
		set_err(c, "cannot connect to %s:%u: %s", host, port, gai_strerror(g));
		return -EHOSTUNREACH;
	}
	int r = -EHOSTUNREACH;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		r = connect_one(ai, deadline, &c->fd);
		if (r == 0 || r == -ETIMEDOUT)
			break;
	}
	freeaddrinfo(res);
	if (r < 0)
		set_err(c, "cannot connect to %s:%u: %s", host, port, strerror(-r));
	return r;
}

/* ---- reading and writing messages ---- */

static int send_all(struct dkv_client *c, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			set_err(c, "cannot send to server: %s", strerror(e));
			return -e;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Hand out the next complete message from the receive buffer, reading
 * more as needed.  The bytes stay valid until the next call. */
static int read_msg(struct dkv_client *c, int64_t deadline, const uint8_t **msg, size_t *len)
{
	dkv_buf_consume(&c->rbuf, c->used);
	c->used = 0;
	for (;;) {
		struct dkv_mp_reader r;
		dkv_mp_reader_init(&r, c->rbuf.data, c->rbuf.len);
		int e = dkv_mp_skip(&r);
		if (e == 0) {
			*msg = c->rbuf.data;
			*len = (size_t)(r.p - c->rbuf.data);
			c->used = *len;
			return 0;
		}
		if (e != -EAGAIN) {
			set_err(c, "bad message from server: %s", strerror(-e));
			return -EPROTO;
		}
		if (c->rbuf.len > MAX_MSG) {
			set_err(c, "message from server too large");
			return -EMSGSIZE;
		}
		if (deadline >= 0) {
			e = wait_fd(c->fd, POLLIN, deadline);
			if (e < 0) {
				set_err(c, "no answer from server: %s", strerror(-e));
				return e;
			}
		}
		dkv_buf_reserve(&c->rbuf, 65536);
		ssize_t n = recv(c->fd, c->rbuf.data + c->rbuf.len, c->rbuf.cap - c->rbuf.len, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			e = errno;
			set_err(c, "cannot read from server: %s", strerror(e));
			return -e;
		}
		if (n == 0) {
			set_err(c, "connection closed by server");
			return -ECONNRESET;
		}
		c->rbuf.len += (size_t)n;
	}
}

static int64_t reply_deadline(const struct dkv_client *c)
{
	return c->timeout_ms < 0 ? -1 : now_ms() + c->timeout_ms;
}

/* ---- map access ---- */

int dkv_client_field(const uint8_t *map, size_t len, const char *key, const uint8_t **val,
		     size_t *vlen)
{
	struct dkv_mp_reader r;
	struct dkv_mp_item it;
	dkv_mp_reader_init(&r, map, len);
	if (dkv_mp_read(&r, &it) < 0 || it.type != DKV_MP_MAP)
		return -EBADMSG;
	for (uint32_t i = 0; i < it.v.n; i++) {
		struct dkv_mp_item k;
		const uint8_t *kp = r.p;
		if (dkv_mp_read(&r, &k) < 0)
			return -EBADMSG;
		bool match = k.type == DKV_MP_STR && dkv_mp_streq(&k, key);
		if (k.type == DKV_MP_ARRAY || k.type == DKV_MP_MAP) {
			r.p = kp;
			if (dkv_mp_skip(&r) < 0)
				return -EBADMSG;
		}
		const uint8_t *start = r.p;
		if (dkv_mp_skip(&r) < 0)
			return -EBADMSG;
		if (match) {
			*val = start;
			*vlen = (size_t)(r.p - start);
			return 0;
		}
	}
	return -ENOENT;
}

int dkv_client_field_int(const uint8_t *map, size_t len, const char *key, int64_t *v)
{
	const uint8_t *p;
	size_t n;
	int r = dkv_client_field(map, len, key, &p, &n);
	if (r < 0)
		return r;
	struct dkv_mp_reader rd;
	struct dkv_mp_item it;
	dkv_mp_reader_init(&rd, p, n);
	if (dkv_mp_read(&rd, &it) < 0)
		return -EBADMSG;
	if (it.type == DKV_MP_UINT && it.v.u <= INT64_MAX)
		*v = (int64_t)it.v.u;
	else if (it.type == DKV_MP_INT)
		*v = it.v.i;
	else
		return -EINVAL;
	return 0;
}

/* True when the map's "state" field is the string s. */
static bool state_is(const uint8_t *map, size_t len, const char *s)
{
	const uint8_t *p;
	size_t n;
	struct dkv_mp_reader r;
	struct dkv_mp_item it;
	if (dkv_client_field(map, len, "state", &p, &n) < 0)
		return false;
	dkv_mp_reader_init(&r, p, n);
	return dkv_mp_read(&r, &it) == 0 && it.type == DKV_MP_STR && dkv_mp_streq(&it, s);
}

static bool has_field(const uint8_t *map, size_t len, const char *key)
{
	const uint8_t *p;
	size_t n;
	return dkv_client_field(map, len, key, &p, &n) == 0;
}

/* The string field key of map as a C string in buf (cut to fit);
 * false when it is absent or not a string. */
static bool field_text(const uint8_t *map, size_t len, const char *key, char *buf, size_t cap)
{
	const uint8_t *p;
	size_t n;
	struct dkv_mp_reader r;
	struct dkv_mp_item it;
	if (dkv_client_field(map, len, key, &p, &n) < 0)
		return false;
	dkv_mp_reader_init(&r, p, n);
	if (dkv_mp_read(&r, &it) < 0 || it.type != DKV_MP_STR)
		return false;
	snprintf(buf, cap, "%.*s", (int)(it.v.s.len < cap ? it.v.s.len : cap - 1),
		 (const char *)it.v.s.p);
	return true;
}

/* An etype worth showing: a plain identifier, as exception class names are. */
static bool etype_ok(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!(*s == '_' || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9')))
			return false;
	return true;
}

/* Record a reply's "error" field as the error message, prefixed with its
 * "etype" when the server names one (ClientAuthRequiredError), else with
 * ServerError as the original's client does. */
static int remote_error(struct dkv_client *c, const uint8_t *map, size_t len)
{
	char msg[400], etype[64];
	if (!field_text(map, len, "etype", etype, sizeof etype) || !etype_ok(etype))
		snprintf(etype, sizeof etype, "ServerError");
	if (field_text(map, len, "error", msg, sizeof msg))
		set_err(c, "%s: %s", etype, msg);
	else
		/* NEEDSWORK: show non-string errors (the original sends only strings). */
		set_err(c, "%s: (error of a non-string type)", etype);
	return -EREMOTEIO;
}

/* ---- full paths from depth-compressed replies ---- */

void dkv_client_path_init(struct dkv_client_path *p)
{
	memset(p, 0, sizeof(*p));
}

void dkv_client_path_release(struct dkv_client_path *p)
{
	dkv_buf_release(&p->enc);
	free(p->offs);
	dkv_client_path_init(p);
}

/* Room for offs[0..need). */
static void path_reserve(struct dkv_client_path *p, uint32_t need)
{
	if (need <= p->cap)
		return;
	while (p->cap < need)
		p->cap = p->cap ? 2 * p->cap : 16;
	p->offs = dkv_xrealloc(p->offs, p->cap * sizeof(*p->offs));
}

int dkv_client_path_update(struct dkv_client_path *p, const uint8_t *map, size_t len)
{
	const uint8_t *tp;
	size_t tlen;
	int64_t depth;
	if (dkv_client_field(map, len, "path", &tp, &tlen) < 0)
		return -ENOENT;
	if (dkv_client_field_int(map, len, "depth", &depth) < 0 || depth < 0)
		depth = 0;
	if ((uint64_t)depth > p->n)
		depth = p->n; /* only a broken server says this; keep what we have */
	p->n = (uint32_t)depth;
	p->kept = p->n;
	p->enc.len = p->n ? p->offs[p->n] : 0;

	struct dkv_path tail;
	struct dkv_mp_reader r;
	dkv_path_init(&tail);
	dkv_mp_reader_init(&r, tp, tlen);
	int rc = dkv_path_decode(&tail, &r);
	path_reserve(p, p->n + tail.n + 1);
	if (rc == 0) {
		struct dkv_path_iter it;
		const uint8_t *e;
		size_t elen;
		dkv_path_iter_init(&it, tail.enc.data, tail.enc.len);
		while (dkv_path_iter_next(&it, &e, &elen)) {
			p->offs[p->n++] = p->enc.len;
			dkv_buf_append(&p->enc, e, elen);
		}
	}
	p->offs[p->n] = p->enc.len;
	dkv_path_release(&tail);
	return rc;
}

/* ---- connection lifecycle ---- */

static int greet(struct dkv_client *c, int64_t deadline)
{
	const uint8_t *m;
	size_t n;
	int64_t v;
	int r = read_msg(c, deadline, &m, &n);
	if (r < 0)
		return r;
	if (dkv_client_field_int(m, n, "seq", &v) < 0 || v != 0) {
		if (has_field(m, n, "error"))
			return remote_error(c, m, n);
		set_err(c, "the server's greeting is not a DistKV greeting");
		return -EPROTO;
	}
	dkv_buf_append(&c->greet, m, n);
	if (dkv_client_field_int(m, n, "qlen", &v) == 0 && v > 0 && v <= 1000000)
		c->qlen = (uint32_t)v;

	struct dkv_buf *b = &c->req;
	b->len = 0;
	dkv_mp_map(b, 2);
	dkv_mp_cstr(b, "seq");
	dkv_mp_uint(b, 0);
	dkv_mp_cstr(b, "qlen");
	dkv_mp_uint(b, c->qlen);
	return send_all(c, b->data, b->len);
}

int dkv_client_connect(struct dkv_client **out, const char *host, unsigned port, double timeout_s,
		       char *err, size_t errlen)
{
	struct dkv_client *c = dkv_xcalloc(1, sizeof(*c));
	c->fd = -1;
	c->qlen = DEFAULT_QLEN;
	c->timeout_ms = -1;
	*out = NULL;
	int64_t deadline = timeout_s > 0 ? now_ms() + (int64_t)(timeout_s * 1000) : -1;

	int r = open_socket(c, host, port, deadline);
	if (r == 0) {
		r = greet(c, deadline);
		if (r < 0) {
			char why[sizeof(c->err)];
			snprintf(why, sizeof(why), "%s", c->err);
			set_err(c, "cannot connect to %s:%u: %s", host, port, why);
		}
	}
	if (r < 0) {
		if (err && errlen)
			snprintf(err, errlen, "%s", c->err);
		dkv_client_free(c);
		return r;
	}
	c->err[0] = '\0';
	*out = c;
	return 0;
}

void dkv_client_free(struct dkv_client *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	dkv_buf_release(&c->rbuf);
	dkv_buf_release(&c->greet);
	dkv_buf_release(&c->req);
	free(c);
}

const char *dkv_client_errmsg(const struct dkv_client *c)
{
	return c ? c->err : "";
}

void dkv_client_greeting(const struct dkv_client *c, const uint8_t **map, size_t *len)
{
	*map = c->greet.data;
	*len = c->greet.len;
}

void dkv_client_set_timeout(struct dkv_client *c, double timeout_s)
{
	c->timeout_ms = timeout_s > 0 ? (int)(timeout_s * 1000) : -1;
}

/* ---- requests ---- */

/* seq goes first, except where a request must match the original's bytes
 * (the login: seq last, as its client packs every request but the first). */
static int send_request_at(struct dkv_client *c, const uint8_t *fields, size_t len,
			   uint32_t nfields, bool seq_last)
{
	struct dkv_buf *b = &c->req;
	c->err[0] = '\0';
	b->len = 0;
	dkv_mp_map(b, nfields + 1);
	if (seq_last)
		dkv_buf_append(b, fields, len);
	dkv_mp_cstr(b, "seq");
	dkv_mp_uint(b, ++c->seq);
	if (!seq_last)
		dkv_buf_append(b, fields, len);
	return send_all(c, b->data, b->len);
}

static int send_request(struct dkv_client *c, const uint8_t *fields, size_t len, uint32_t nfields)
{
	return send_request_at(c, fields, len, nfields, false);
}

/* Read until a reply for the current request arrives.  Replies to earlier
 * requests are dropped.  An error without seq is the server's answer to a
 * request it could not even dispatch; it concerns us, as we have only one
 * request outstanding. */
static int next_reply(struct dkv_client *c, const uint8_t **m, size_t *n)
{
	for (;;) {
		int64_t seq;
		int r = read_msg(c, reply_deadline(c), m, n);
		if (r < 0)
			return r;
		r = dkv_client_field_int(*m, *n, "seq", &seq);
		if (r == -ENOENT && has_field(*m, *n, "error"))
			return remote_error(c, *m, *n);
		if (r == 0 && (uint64_t)seq == c->seq)
			return 0;
	}
}

int dkv_client_call(struct dkv_client *c, const uint8_t *fields, size_t len, uint32_t nfields,
		    struct dkv_buf *reply)
{
	const uint8_t *m;
	size_t n;
	int r = send_request(c, fields, len, nfields);
	if (r < 0)
		return r;
	r = next_reply(c, &m, &n);
	if (r < 0)
		return r;
	if (has_field(m, n, "error"))
		return remote_error(c, m, n);
	if (has_field(m, n, "state")) {
		set_err(c, "the server answered with a stream where one reply was expected");
		return -EPROTO;
	}
	reply->len = 0;
	dkv_buf_append(reply, m, n);
	return 0;
}

static int send_ack(struct dkv_client *c, int64_t wseq)
{
	struct dkv_buf *b = &c->req;
	b->len = 0;
	dkv_mp_map(b, 3);
	dkv_mp_cstr(b, "seq");
	dkv_mp_uint(b, c->seq);
	dkv_mp_cstr(b, "state");
	dkv_mp_cstr(b, "ack");
	dkv_mp_cstr(b, "ack");
	dkv_mp_int(b, wseq);
	return send_all(c, b->data, b->len);
}

/* The replies of the request just sent, as dkv_client_stream says. */
static int stream_replies(struct dkv_client *c, dkv_client_cb cb, void *arg)
{
	bool started = false;
	int64_t acked = 0;
	/* The server stops sending when qlen items are unacknowledged; acking
	 * once more than a third of the window is used keeps it busy without
	 * an ack per item (qlen 10: acks at 4, 8, 12, like the original). */
	int64_t step = c->qlen / 3 ? c->qlen / 3 : 1;
	int r;
	for (;;) {
		const uint8_t *m;
		size_t n;
		int64_t wseq;
		r = next_reply(c, &m, &n);
		if (r < 0)
			return r;
		if (has_field(m, n, "error"))
			return remote_error(c, m, n);
		if (state_is(m, n, "start")) {
			started = true;
		} else if (state_is(m, n, "end")) {
			return 0;
		} else {
			r = cb(arg, m, n);
			if (r != 0)
				return r;
			if (!started)
				return 0;
		}
		if (dkv_client_field_int(m, n, "wseq", &wseq) == 0 && wseq - acked > step) {
			acked = wseq;
			r = send_ack(c, wseq);
			if (r < 0)
				return r;
		}
	}
}

int dkv_client_stream(struct dkv_client *c, const uint8_t *fields, size_t len, uint32_t nfields,
		      dkv_client_cb cb, void *arg)
{
	int r = send_request(c, fields, len, nfields);
	return r < 0 ? r : stream_replies(c, cb, arg);
}

/* ---- logging in ---- */

/* A list starting with nil (or empty) or the method's name (client.h). */
int dkv_client_auth_wanted(struct dkv_client *c, char *buf, size_t cap)
{
	const uint8_t *p;
	size_t n;
	struct dkv_mp_reader r;
	struct dkv_mp_item it;
	buf[0] = '\0';
	if (dkv_client_field(c->greet.data, c->greet.len, "auth", &p, &n) < 0)
		return 0;
	dkv_mp_reader_init(&r, p, n);
	if (dkv_mp_read(&r, &it) < 0 || it.type != DKV_MP_ARRAY)
		goto bad;
	if (it.v.n == 0)
		return 0;
	if (dkv_mp_read(&r, &it) < 0)
		goto bad;
	if (it.type == DKV_MP_NIL)
		return 0;
	if (it.type != DKV_MP_STR || it.v.s.len == 0 || it.v.s.len >= cap)
		goto bad;
	memcpy(buf, it.v.s.p, it.v.s.len);
	buf[it.v.s.len] = '\0';
	return 1;
bad:
	set_err(c, "the server's greeting has a malformed auth field");
	return -EPROTO;
}

static int ignore_item(void *arg, const uint8_t *map, size_t len)
{
	(void)arg;
	(void)map;
	(void)len;
	return 0;
}

/* auth_key: the connection's public key, for sealing the password. */
static int ask_key(struct dkv_client *c, uint8_t key[DKV_AUTH_KEYBYTES])
{
	struct dkv_buf q = {0}, reply = {0};
	const uint8_t *p;
	size_t n;
	struct dkv_mp_reader r;
	struct dkv_mp_item it;
	dkv_mp_cstr(&q, "action");
	dkv_mp_cstr(&q, "auth_key");
	int rc = dkv_client_call(c, q.data, q.len, 1, &reply);
	if (rc == 0) {
		rc = -EPROTO;
		if (dkv_client_field(reply.data, reply.len, "pubkey", &p, &n) == 0) {
			dkv_mp_reader_init(&r, p, n);
			if (dkv_mp_read(&r, &it) == 0 && it.type == DKV_MP_BIN &&
			    it.v.s.len == DKV_AUTH_KEYBYTES) {
				memcpy(key, it.v.s.p, DKV_AUTH_KEYBYTES);
				rc = 0;
			}
		}
		if (rc)
			set_err(c, "the server's auth_key answer has no 32-byte pubkey");
	}
	dkv_buf_release(&q);
	dkv_buf_release(&reply);
	return rc;
}

int dkv_client_login(struct dkv_client *c, const struct dkv_auth_spec *sp)
{
	char want[64];
	uint8_t key[DKV_AUTH_KEYBYTES];
	int rc = dkv_client_auth_wanted(c, want, sizeof want);
	if (rc <= 0)
		return rc;
	if (!sp || sp->method == DKV_AUTH_ROOT || sp->method == DKV_AUTH_NONE) {
		set_err(c, "ClientAuthRequiredError: You need to log in using: %s", want);
		return -EACCES;
	}
	const char *have = dkv_auth_method_name(sp->method);
	if (strcmp(have, want)) {
		set_err(c, "ClientAuthMethodError: You cannot use '%s' auth; the server wants %s",
			have, want);
		return -EACCES;
	}
	if (sp->method == DKV_AUTH_PASSWORD) {
		if (!sp->password) {
			set_err(c, "auth: the password method needs password= or password?=PROMPT");
			return -EINVAL;
		}
		rc = ask_key(c, key);
		if (rc < 0)
			return rc;
	}
	/* typ chroot ident data, then action and seq: the original's order */
	struct dkv_buf q = {0};
	uint32_t n = dkv_auth_login_fields(sp, sp->method == DKV_AUTH_PASSWORD ? key : NULL, &q);
	dkv_mp_cstr(&q, "action");
	dkv_mp_cstr(&q, "auth");
	rc = send_request_at(c, q.data, q.len, n + 1, true);
	dkv_buf_release(&q);
	return rc < 0 ? rc : stream_replies(c, ignore_item, NULL);
}
