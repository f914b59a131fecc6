/*
 * request.c - the agent's one-answer commands: event, members,
 * members-filtered, tags, join, leave, force-leave, respond, stats.
 *
 * Each starts the same way (req_begin: the client's state, the arguments,
 * a serf__req under a fresh seq, the header), encodes its body into the
 * client's output buffer and registers the serf__req for the answer;
 * client.c matches the answer by seq and calls back.  Field names are the
 * agent's (Go struct fields, case matters).
 *
 * NEEDSWORK: not implemented: monitor (log streaming), install-key,
 * use-key, remove-key, list-keys, get-coordinate, force-leave's Prune.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static bool strs_ok(const char *const *s, size_t n)
{
	if (n && !s)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!s[i])
			return false;
	return true;
}

static bool tags_ok(const struct serf_tag *t, size_t n)
{
	if (n && !t)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!t[i].key || !t[i].value)
			return false;
	return true;
}

/* 0 when a request may be encoded: the client is ready
 * (serf__client_check: -EINVAL for NULL, -ESHUTDOWN, -ENOTCONN) and then
 * the arguments are valid (-EINVAL). */
static int req_check(const struct serf_client *c, bool args_ok)
{
	int r = serf__client_check(c);
	if (r)
		return r;
	return args_ok ? 0 : -EINVAL;
}

/* What every request does first: req_check, then a serf__req of this
 * kind under a fresh seq, with the header for command encoded into the
 * client's output.  The caller sets the callback, encodes the body and
 * hands *out to serf__client_send, which owns it from then on.  On error
 * nothing was encoded or registered, so the callback is never called. */
static int req_begin(struct serf_client *c, bool args_ok, enum serf__req_kind kind,
		     const char *command, void *arg, struct serf__req **out)
{
	int r = req_check(c, args_ok);
	if (r)
		return r;
	struct serf__req *q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->kind = kind;
	q->arg = arg;
	q->seq = serf__client_seq(c);
	serf__enc_header(serf__client_out(c), command, q->seq);
	*out = q;
	return 0;
}

int serf_event(struct serf_client *c, const char *name, const void *payload, size_t len,
	       bool coalesce, serf_status_cb cb, void *arg)
{
	struct serf__req *q;
	int r = req_begin(c, name && (!len || payload), SERF__REQ_STATUS, "event", arg, &q);
	if (r)
		return r;
	q->cb.status = cb;
	struct serf__buf *b = serf__client_out(c);
	serf__enc_map(b, 3);
	serf__enc_str(b, "Name");
	serf__enc_str(b, name);
	serf__enc_str(b, "Payload");
	serf__enc_bin(b, payload, len);
	serf__enc_str(b, "Coalesce");
	serf__enc_bool(b, coalesce);
	return serf__client_send(c, q);
}

int serf_members(struct serf_client *c, serf_members_cb cb, void *arg)
{
	struct serf__req *q;
	int r = req_begin(c, cb != NULL, SERF__REQ_MEMBERS, "members", arg, &q);
	if (r)
		return r;
	q->cb.members = cb;
	return serf__client_send(c, q);
}

int serf_members_filtered(struct serf_client *c, const struct serf_tag *tags, size_t ntags,
			  const char *status, const char *name, serf_members_cb cb, void *arg)
{
	struct serf__req *q;
	int r = req_begin(c, cb && tags_ok(tags, ntags), SERF__REQ_MEMBERS, "members-filtered",
			  arg, &q);
	if (r)
		return r;
	q->cb.members = cb;
	struct serf__buf *b = serf__client_out(c);
	serf__enc_map(b, 3);
	serf__enc_str(b, "Tags");
	serf__enc_tags(b, tags, ntags);
	serf__enc_str(b, "Status");
	serf__enc_str(b, status ? status : "");
	serf__enc_str(b, "Name");
	serf__enc_str(b, name ? name : "");
	return serf__client_send(c, q);
}

int serf_tags(struct serf_client *c, const struct serf_tag *set, size_t nset,
	      const char *const *del, size_t ndel, serf_status_cb cb, void *arg)
{
	struct serf__req *q;
	int r = req_begin(c, tags_ok(set, nset) && strs_ok(del, ndel), SERF__REQ_STATUS, "tags",
			  arg, &q);
	if (r)
		return r;
	q->cb.status = cb;
	struct serf__buf *b = serf__client_out(c);
	serf__enc_map(b, 2);
	serf__enc_str(b, "Tags");
	serf__enc_tags(b, set, nset);
	serf__enc_str(b, "DeleteTags");
	serf__enc_strs(b, del, ndel);
	return serf__client_send(c, q);
}

int serf_join(struct serf_client *c, const char *const *addrs, size_t n, bool replay,
	      serf_join_cb cb, void *arg)
{
	struct serf__req *q;
	int r = req_begin(c, cb && n && strs_ok(addrs, n), SERF__REQ_JOIN, "join", arg, &q);
	if (r)
		return r;
	q->cb.join = cb;
	struct serf__buf *b = serf__client_out(c);
	serf__enc_map(b, 2);
	serf__enc_str(b, "Existing");
	serf__enc_strs(b, addrs, n);
	serf__enc_str(b, "Replay");
	serf__enc_bool(b, replay);
	return serf__client_send(c, q);
}

int serf_leave(struct serf_client *c, serf_status_cb cb, void *arg)
{
	struct serf__req *q;
	int r = req_begin(c, true, SERF__REQ_STATUS, "leave", arg, &q);
	if (r)
		return r;
	q->cb.status = cb;
	return serf__client_send(c, q);
}

int serf_force_leave(struct serf_client *c, const char *node, serf_status_cb cb, void *arg)
{
	struct serf__req *q;
	int r = req_begin(c, node != NULL, SERF__REQ_STATUS, "force-leave", arg, &q);
	if (r)
		return r;
	q->cb.status = cb;
	struct serf__buf *b = serf__client_out(c);
	serf__enc_map(b, 1);
	serf__enc_str(b, "Node");
	serf__enc_str(b, node);
	return serf__client_send(c, q);
}

int serf_respond(struct serf_client *c, uint64_t id, const void *payload, size_t len,
		 serf_status_cb cb, void *arg)
{
	/* The ID must name a query of the current connection, which can be
	 * asked only of a ready client; then the request starts as usual. */
	int r = req_check(c, !len || payload);
	if (r)
		return r;
	if ((id >> SERF__ID_BITS) != (serf__client_gen(c) & SERF__GEN_MASK))
		return -ESTALE;
	struct serf__req *q;
	r = req_begin(c, true, SERF__REQ_STATUS, "respond", arg, &q);
	if (r)
		return r;
	q->cb.status = cb;
	struct serf__buf *b = serf__client_out(c);
	serf__enc_map(b, 2);
	serf__enc_str(b, "ID");
	serf__enc_uint(b, id & SERF__ID_MASK);
	serf__enc_str(b, "Payload");
	serf__enc_bin(b, payload, len);
	return serf__client_send(c, q);
}

int serf_stats(struct serf_client *c, serf_stats_cb cb, void *arg)
{
	struct serf__req *q;
	int r = req_begin(c, cb != NULL, SERF__REQ_STATS, "stats", arg, &q);
	if (r)
		return r;
	q->cb.stats = cb;
	return serf__client_send(c, q);
}

const char *serf_member_tag(const struct serf_member *m, const char *key)
{
	for (size_t i = 0; m && key && i < m->ntags; i++)
		if (!strcmp(m->tags[i].key, key))
			return m->tags[i].value;
	return NULL;
}
