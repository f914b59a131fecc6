/*
 * request.c - the agent's one-answer commands: event, members,
 * members-filtered, tags, join, leave, force-leave, respond, stats.
 *
 * Each builds its request into the client's output buffer and registers a
 * serf__req for the answer; client.c matches the answer by seq and calls
 * back.  Field names are the agent's (Go struct fields, case matters).
 *
 * NEEDSWORK: not implemented: monitor (log streaming), install-key,
 * use-key, remove-key, list-keys, get-coordinate, force-leave's Prune.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static struct serf__req *req_new(struct serf_client *c, enum serf__req_kind kind, void *arg)
{
	struct serf__req *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->kind = kind;
	r->arg = arg;
	r->seq = serf__client_seq(c);
	return r;
}

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

int serf_event(struct serf_client *c, const char *name, const void *payload, size_t len,
	       bool coalesce, serf_status_cb cb, void *arg)
{
	int r = serf__client_check(c);
	if (r)
		return r;
	if (!name || (len && !payload))
		return -EINVAL;
	struct serf__req *q = req_new(c, SERF__REQ_STATUS, arg);
	if (!q)
		return -ENOMEM;
	q->cb.status = cb;
	struct serf__buf *b = serf__client_out(c);
	serf__enc_header(b, "event", q->seq);
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
	int r = serf__client_check(c);
	if (r)
		return r;
	if (!cb)
		return -EINVAL;
	struct serf__req *q = req_new(c, SERF__REQ_MEMBERS, arg);
	if (!q)
		return -ENOMEM;
	q->cb.members = cb;
	serf__enc_header(serf__client_out(c), "members", q->seq);
	return serf__client_send(c, q);
}

int serf_members_filtered(struct serf_client *c, const struct serf_tag *tags, size_t ntags,
			  const char *status, const char *name, serf_members_cb cb, void *arg)
{
	int r = serf__client_check(c);
	if (r)
		return r;
	if (!cb || !tags_ok(tags, ntags))
		return -EINVAL;
	struct serf__req *q = req_new(c, SERF__REQ_MEMBERS, arg);
	if (!q)
		return -ENOMEM;
	q->cb.members = cb;
	struct serf__buf *b = serf__client_out(c);
	serf__enc_header(b, "members-filtered", q->seq);
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
	int r = serf__client_check(c);
	if (r)
		return r;
	if (!tags_ok(set, nset) || !strs_ok(del, ndel))
		return -EINVAL;
	struct serf__req *q = req_new(c, SERF__REQ_STATUS, arg);
	if (!q)
		return -ENOMEM;
	q->cb.status = cb;
	struct serf__buf *b = serf__client_out(c);
	serf__enc_header(b, "tags", q->seq);
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
	int r = serf__client_check(c);
	if (r)
		return r;
	if (!cb || !n || !strs_ok(addrs, n))
		return -EINVAL;
	struct serf__req *q = req_new(c, SERF__REQ_JOIN, arg);
	if (!q)
		return -ENOMEM;
	q->cb.join = cb;
	struct serf__buf *b = serf__client_out(c);
	serf__enc_header(b, "join", q->seq);
	serf__enc_map(b, 2);
	serf__enc_str(b, "Existing");
	serf__enc_strs(b, addrs, n);
	serf__enc_str(b, "Replay");
	serf__enc_bool(b, replay);
	return serf__client_send(c, q);
}

int serf_leave(struct serf_client *c, serf_status_cb cb, void *arg)
{
	int r = serf__client_check(c);
	if (r)
		return r;
	struct serf__req *q = req_new(c, SERF__REQ_STATUS, arg);
	if (!q)
		return -ENOMEM;
	q->cb.status = cb;
	serf__enc_header(serf__client_out(c), "leave", q->seq);
	return serf__client_send(c, q);
}

int serf_force_leave(struct serf_client *c, const char *node, serf_status_cb cb, void *arg)
{
	int r = serf__client_check(c);
	if (r)
		return r;
	if (!node)
		return -EINVAL;
	struct serf__req *q = req_new(c, SERF__REQ_STATUS, arg);
	if (!q)
		return -ENOMEM;
	q->cb.status = cb;
	struct serf__buf *b = serf__client_out(c);
	serf__enc_header(b, "force-leave", q->seq);
	serf__enc_map(b, 1);
	serf__enc_str(b, "Node");
	serf__enc_str(b, node);
	return serf__client_send(c, q);
}

int serf_respond(struct serf_client *c, uint64_t id, const void *payload, size_t len,
		 serf_status_cb cb, void *arg)
{
	int r = serf__client_check(c);
	if (r)
		return r;
	if (len && !payload)
		return -EINVAL;
	if ((id >> SERF__ID_BITS) != (serf__client_gen(c) & SERF__GEN_MASK))
		return -ESTALE;
	struct serf__req *q = req_new(c, SERF__REQ_STATUS, arg);
	if (!q)
		return -ENOMEM;
	q->cb.status = cb;
	struct serf__buf *b = serf__client_out(c);
	serf__enc_header(b, "respond", q->seq);
	serf__enc_map(b, 2);
	serf__enc_str(b, "ID");
	serf__enc_uint(b, id & SERF__ID_MASK);
	serf__enc_str(b, "Payload");
	serf__enc_bin(b, payload, len);
	return serf__client_send(c, q);
}

int serf_stats(struct serf_client *c, serf_stats_cb cb, void *arg)
{
	int r = serf__client_check(c);
	if (r)
		return r;
	if (!cb)
		return -EINVAL;
	struct serf__req *q = req_new(c, SERF__REQ_STATS, arg);
	if (!q)
		return -ENOMEM;
	q->cb.stats = cb;
	serf__enc_header(serf__client_out(c), "stats", q->seq);
	return serf__client_send(c, q);
}

const char *serf_member_tag(const struct serf_member *m, const char *key)
{
	for (size_t i = 0; m && key && i < m->ntags; i++)
		if (!strcmp(m->tags[i].key, key))
			return m->tags[i].value;
	return NULL;
}
