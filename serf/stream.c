/*
 * stream.c - subscriptions: event streams and outgoing queries.
 *
 * Both are one request whose first answer (a bare header) confirms it and
 * whose later answers are header + record, all with the request's seq.
 * A stream belongs to the client and is subscribed again, with a new seq,
 * on every connection; a query belongs to one connection and ends with it.
 * A client has a few streams and a few queries at a time, so they live in
 * one list that is searched linearly.
 *
 * User callbacks may stop streams, open new ones or close the client, so
 * no loop here keeps a pointer into the list across a callback: each
 * round takes the first matching entry off the list, then calls back.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static struct serf_stream *find(struct serf_client *c, uint64_t seq)
{
	if (!seq)
		return NULL;
	for (struct serf_stream *s = serf__client_streams(c)->head; s; s = s->next)
		if (s->seq == seq)
			return s;
	return NULL;
}

/* Take s off the list and give it its last call. */
static void finish(struct serf_client *c, struct serf_stream *s, int status, const char *err,
		   const struct serf_query_reply *done)
{
	serf__streams_remove(serf__client_streams(c), s);
	if (s->is_query)
		s->qcb(c, status, status == -EREMOTEIO ? err : NULL, done, s->arg);
	else
		s->cb(c, s, status, NULL, s->arg);
	free(s->filter);
	free(s);
}

static int subscribe(struct serf_client *c, struct serf_stream *s)
{
	struct serf__buf *b = serf__client_out(c);
	uint64_t seq = serf__client_seq(c);

	serf__enc_header(b, "stream", seq);
	serf__enc_map(b, 1);
	serf__enc_str(b, "Type");
	serf__enc_str(b, s->filter);
	int r = serf__client_send(c, NULL);
	if (r)
		return r;
	s->seq = seq;
	s->acked = false;
	return 0;
}

int serf_stream(struct serf_client *c, const char *filter, serf_stream_cb cb, void *arg,
		struct serf_stream **out)
{
	int r = serf__client_check(c);
	if (r == -ENOTCONN)
		r = 0;
	if (r)
		return r;
	if (!filter || !cb)
		return -EINVAL;
	struct serf_stream *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->filter = strdup(filter);
	if (!s->filter) {
		free(s);
		return -ENOMEM;
	}
	s->c = c;
	s->cb = cb;
	s->arg = arg;
	if (serf_client_ready(c) && (r = subscribe(c, s)) != 0) {
		free(s->filter);
		free(s);
		return r;
	}
	serf__streams_push(serf__client_streams(c), s);
	if (out)
		*out = s;
	return 0;
}

int serf_stream_stop(struct serf_stream *s)
{
	struct serf_client *c;

	if (!s)
		return -EINVAL;
	if (s->stopping)
		return -EALREADY;
	c = s->c;
	s->stopping = true;
	if (s->seq && serf_client_ready(c)) {
		/* The agent keeps sending what it already queued for the
		 * stream; those records find no stream and are skipped. */
		struct serf__req *r = calloc(1, sizeof(*r));
		if (r) {
			struct serf__buf *b = serf__client_out(c);
			r->kind = SERF__REQ_STOP;
			r->seq = serf__client_seq(c);
			serf__enc_header(b, "stop", r->seq);
			serf__enc_map(b, 1);
			serf__enc_str(b, "Stop");
			serf__enc_uint(b, s->seq);
			serf__client_send(c, r);
		}
		/* NEEDSWORK: without memory for the stop request the agent keeps
		 * streaming to this connection; the records are skipped. */
	}
	s->seq = 0;
	serf__client_defer(c);
	return 0;
}

int serf_query(struct serf_client *c, const char *name, const void *payload, size_t len,
	       const struct serf_query_opts *opts, serf_query_cb cb, void *arg)
{
	static const struct serf_query_opts none;
	int r = serf__client_check(c);
	if (r)
		return r;
	if (!opts)
		opts = &none;
	if (!name || !cb || (len && !payload) ||
	    (opts->nfilter_nodes && !opts->filter_nodes) ||
	    (opts->nfilter_tags && !opts->filter_tags))
		return -EINVAL;
	for (size_t i = 0; i < opts->nfilter_nodes; i++)
		if (!opts->filter_nodes[i])
			return -EINVAL;
	for (size_t i = 0; i < opts->nfilter_tags; i++)
		if (!opts->filter_tags[i].key || !opts->filter_tags[i].value)
			return -EINVAL;

	struct serf_stream *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->c = c;
	s->is_query = true;
	s->qcb = cb;
	s->arg = arg;
	s->seq = serf__client_seq(c);

	struct serf__buf *b = serf__client_out(c);
	size_t n = 3 + (opts->nfilter_nodes > 0) + (opts->nfilter_tags > 0) +
		   (opts->relay_factor > 0) + (opts->timeout_ms > 0);
	serf__enc_header(b, "query", s->seq);
	serf__enc_map(b, n);
	if (opts->nfilter_nodes) {
		serf__enc_str(b, "FilterNodes");
		serf__enc_strs(b, opts->filter_nodes, opts->nfilter_nodes);
	}
	if (opts->nfilter_tags) {
		serf__enc_str(b, "FilterTags");
		serf__enc_tags(b, opts->filter_tags, opts->nfilter_tags);
	}
	serf__enc_str(b, "RequestAck");
	serf__enc_bool(b, opts->request_ack);
	if (opts->relay_factor) {
		serf__enc_str(b, "RelayFactor");
		serf__enc_uint(b, opts->relay_factor);
	}
	if (opts->timeout_ms) {
		serf__enc_str(b, "Timeout"); /* a Go time.Duration: nanoseconds */
		serf__enc_int(b, (int64_t)opts->timeout_ms * 1000000);
	}
	serf__enc_str(b, "Name");
	serf__enc_str(b, name);
	serf__enc_str(b, "Payload");
	serf__enc_bin(b, payload, len);
	r = serf__client_send(c, NULL);
	if (r) {
		free(s);
		return r;
	}
	serf__streams_push(serf__client_streams(c), s);
	return 0;
}

/* ---- what client.c calls ---- */

void serf__streams_subscribe(struct serf_client *c)
{
	for (struct serf_stream *s = serf__client_streams(c)->head; s; s = s->next) {
		if (s->is_query || s->stopping || s->seq)
			continue;
		if (subscribe(c, s)) {
			/* out of memory: end the stream rather than leave it
			 * silently deaf */
			s->stopping = true;
			s->final_status = -ENOMEM;
			serf__client_defer(c);
		}
	}
}

int serf__stream_header(struct serf_client *c, uint64_t seq, const char *error, bool *want_body)
{
	struct serf_stream *s = find(c, seq);

	*want_body = false;
	if (!s)
		return 0;
	if (s->acked) {
		*want_body = true;
		return 1;
	}
	s->acked = true;
	if (*error) {
		s->seq = 0;
		finish(c, s, -EREMOTEIO, error, NULL);
		return 1;
	}
	if (!s->is_query) {
		struct serf_record rec = {.type = SERF_RECORD_STARTED, .event = "", .name = ""};
		s->cb(c, s, 0, &rec, s->arg);
	}
	return 1;
}

int serf__stream_body(struct serf_client *c, uint64_t seq, const struct serf__msg *m)
{
	struct serf_stream *s = find(c, seq);
	int r;

	if (!s)
		return 0;
	if (s->is_query) {
		struct serf_query_reply q;
		r = serf__decode_query_reply(m, &q);
		if (r)
			return r;
		if (q.type == SERF_QUERY_DONE)
			finish(c, s, 0, NULL, &q);
		else if (*q.from)
			s->qcb(c, 0, NULL, &q, s->arg);
		/* else: the agent's bug, not a node's answer.  When a query's
		 * time is up, Serf closes its ack and response channels while
		 * the agent's streaming loop, which does not check for closed
		 * channels, may still be waiting for its own timer: until that
		 * fires it reads the closed channels over and over and sends an
		 * ack or response "from" the empty name for each (seen as six
		 * acks instead of one, under ASan).  No node has an empty name. */
		return 0;
	}

	struct serf_record rec;
	uint64_t id;
	r = serf__decode_record(m, &rec, &id);
	if (r)
		return r;
	if (rec.type == SERF_RECORD_QUERY)
		rec.id = ((uint64_t)(serf__client_gen(c) & SERF__GEN_MASK) << SERF__ID_BITS) |
			 (id & SERF__ID_MASK);
	s->cb(c, s, 0, &rec, s->arg);
	return 0;
}

void serf__streams_disconnected(struct serf_client *c, int status)
{
	struct serf__streams *l = serf__client_streams(c);
	struct serf_stream *s;

	for (s = l->head; s; s = s->next) {
		s->seq = 0;
		s->acked = false;
	}
	for (;;) {
		for (s = l->head; s && !s->is_query; s = s->next)
			;
		if (!s)
			break;
		finish(c, s, status, NULL, NULL);
	}
}

void serf__streams_cancel(struct serf_client *c)
{
	struct serf__streams *l = serf__client_streams(c);
	while (l->head) {
		struct serf_stream *s = l->head;
		finish(c, s, s->stopping ? s->final_status : -ECANCELED, NULL, NULL);
	}
}

void serf__stream_run_deferred(struct serf_client *c)
{
	struct serf__streams *l = serf__client_streams(c);
	for (;;) {
		struct serf_stream *s;
		for (s = l->head; s && !s->stopping; s = s->next)
			;
		if (!s)
			break;
		finish(c, s, s->final_status, NULL, NULL);
	}
}
