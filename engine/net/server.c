/*
 * server.c - the listening socket and the server's lifetime.
 */
#include "net.h"

#include "auth.h"
#include "log.h"
#include "report.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void on_connection(uv_stream_t *listener, int status)
{
	struct dkv_server *s = listener->data;
	if (status < 0) {
		dkv_report(DKV_REPORT_ERROR, "accept failed: %s", uv_strerror(status));
		return;
	}
	dkv__conn_accept(s);
}

int dkv_server_new(struct dkv_server **out, uv_loop_t *loop, struct dkv_engine *e,
		   const struct dkv_server_opts *opts, char *err, size_t errlen)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE};
	struct addrinfo *ai = NULL;
	char portstr[16];
	int rc;

	*out = NULL;
	snprintf(portstr, sizeof portstr, "%d", opts->port);
	rc = getaddrinfo(opts->host, portstr, &hints, &ai);
	if (rc) {
		snprintf(err, errlen, "cannot resolve %s:%d: %s", opts->host, opts->port,
			 gai_strerror(rc));
		return -EADDRNOTAVAIL;
	}

	struct dkv_server *s = dkv_xcalloc(1, sizeof *s);
	s->loop = loop;
	s->engine = e;
	s->opts = *opts;
	s->ready = !opts->unready;
	uv_tcp_init(loop, &s->listener);
	s->listener.data = s;
	rc = uv_tcp_bind(&s->listener, ai->ai_addr, 0);
	if (!rc)
		rc = uv_listen((uv_stream_t *)&s->listener, 511, on_connection);
	freeaddrinfo(ai);
	if (rc) {
		snprintf(err, errlen, "cannot listen on %s:%d: %s", opts->host, opts->port,
			 uv_strerror(rc));
		/* the handle is closed by the caller's loop run; s is freed there */
		uv_close((uv_handle_t *)&s->listener, (uv_close_cb)free);
		return rc;
	}
	struct sockaddr_storage ss;
	int sl = sizeof ss;
	s->port = opts->port;
	if (!uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &sl)) {
		if (ss.ss_family == AF_INET)
			s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		else if (ss.ss_family == AF_INET6)
			s->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	if (opts->logger)
		dkv_logger_add_notify(opts->logger, dkv__server_log_durable, s);
	*out = s;
	return 0;
}

int dkv_server_port(const struct dkv_server *s)
{
	return s->port;
}

size_t dkv_server_conn_count(const struct dkv_server *s)
{
	return s->nconns;
}

void dkv_server_set_cluster(struct dkv_server *s, struct dkv_cluster *cl)
{
	s->cluster = cl;
}

void dkv__server_maybe_done(struct dkv_server *s)
{
	if (!s->closing || s->nhandles || s->listener.data)
		return;
	void (*cb)(void *) = s->close_cb;
	void *arg = s->close_arg;
	free(s);
	if (cb)
		cb(arg);
}

static void listener_closed(uv_handle_t *h)
{
	struct dkv_server *s = h->data;
	h->data = NULL;
	dkv__server_maybe_done(s);
}

void dkv_server_close(struct dkv_server *s, void (*cb)(void *arg), void *arg)
{
	if (!s) {
		if (cb)
			cb(arg);
		return;
	}
	s->closing = true;
	if (s->opts.logger)
		dkv_logger_remove_notify(s->opts.logger, dkv__server_log_durable, s);
	s->close_cb = cb;
	s->close_arg = arg;
	s->cluster = NULL;
	dkv__repl_close(s);
	uv_close((uv_handle_t *)&s->listener, listener_closed);
	for (struct dkv_conn *c = s->conns, *n; c; c = n) {
		n = c->next;
		dkv__conn_close(c);
	}
	dkv_hasher_free(s->hasher); /* after the connections let go of their jobs */
	s->hasher = NULL;
}

void dkv_server_set_ready(struct dkv_server *s, bool ready)
{
	s->ready = ready;
	if (!ready)
		return;
	for (struct dkv_conn *c = s->conns, *n; c; c = n) {
		n = c->next; /* unparking may close c */
		dkv__conn_unpark(c);
	}
}

bool dkv_server_ready(const struct dkv_server *s)
{
	return s->ready;
}

void dkv__server_log_durable(void *arg)
{
	struct dkv_server *s = arg;
	if (!s->nheld)
		return;
	for (struct dkv_conn *c = s->conns, *n; c && s->nheld; c = n) {
		n = c->next; /* flush may close c */
		if (!c->held || dkv__conn_must_hold(c))
			continue;
		c->held = false;
		s->nheld--;
		dkv__conn_flush(c);
	}
}

void dkv_server_set_fence(struct dkv_server *s, const struct dkv_fence *f)
{
	if (f) {
		s->fence = *f;
		return;
	}
	memset(&s->fence, 0, sizeof s->fence);
	for (struct dkv_conn *c = s->conns; c; c = c->next)
		c->hold_fence = 0;
	dkv__server_log_durable(s);
}

void dkv_server_fence_moved(void *server)
{
	dkv__server_log_durable(server);
}
