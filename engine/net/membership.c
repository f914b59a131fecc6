/*
 * membership.c - who is in the network and where, through Serf: the
 * member list and member events (a peer for each tag "dkv:ROOT:NODE"),
 * our own tag, the --join and the rejoin after the agent restarted, the
 * tick announcements on the event stream, the connection to the agent,
 * and serving alone when no agent answers.
 *
 * Workload: Serf events are rare (a join, a failure, a tag change, at
 * most one tick announcement per node and second) and a network has tens
 * of nodes, so each event is simply matched against the whole peer table.
 */
#include "cluster_int.h"
#include "serf.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	/* A peer whose member is gone from the list lost its tag too.  It
	 * stays present, though: an agent that restarted, or that cannot
	 * reach a member across a partition, lists it no more, yet that node
	 * may still come back without a deletion it never saw.  Only Serf
	 * forgetting it (member-reap) lets its tombstones go (ticker.c). */
	for (struct peer *p = cl->peers; p; p = p->next) {
		bool found = false;
		for (size_t i = 0; i < n && !found; i++)
			found = p->member && !strcmp(p->member, m[i].name);
		if (!found)
			p->tagged = false;
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
			for (size_t i = 0; i < rec->nmembers; i++)
				for (struct peer *p = cl->peers; p; p = p->next)
					if (p->member && !strcmp(p->member, rec->members[i].name))
						p->present = false;
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
