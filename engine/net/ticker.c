/*
 * ticker.c - what the cluster does every TIMER_MS (cluster.c starts the
 * timer): announce our newest tick through Serf, fetch ticks that stay
 * missing from a peer, and now and then drop the tombstones every known
 * node has seen.
 *
 * Workload: a round looks at each node (tens of them) and, once every
 * server.tombstone.interval, at each tombstone (the engine keeps a list
 * of them), never at the whole tree.  Serf never pushes back, so the
 * announcements are limited here: a token bucket, and only when our tick
 * moved.
 */
#include "cluster_int.h"
#include "log.h"
#include "net.h"
#include "serf.h"

#include <string.h>

#define GAP_GRACE_MS 1000      /* a gap may be changes still on their way */
#define REPAIR_BACKOFF_MAX_MS 30000

struct nodegap {
	uint64_t since;       /* ms when the gap was first seen; 0: none */
	uint64_t next_try;
	unsigned backoff_ms;
};

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
	dkv_mp_uint(&b, dkv_logger_reportable(cl->srv ? cl->srv->opts.logger : NULL, self->idx,
					       dkv__seen_prefix(self)));
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

/* A node of the engine's table that is no peer of this run, or NULL.
 * The table holds every node named in the data, in the log's node records
 * or in an announcement: every node this network has had.  A server that
 * restarted while such a node was cut off (and its agent, restarted too,
 * lists it no more) cannot know what that node has seen, so it must keep
 * every tombstone: the node may come back with the old values and hand
 * them to a newcomer (found by tools/soak, doc/reliability.md).  A node
 * that left for good is reaped by Serf within its reconnect timeout, so
 * one that no agent has listed for server.tombstone.forget since this
 * server started is taken as gone. */
const struct dkv_node *dkv__cluster_unheard(struct dkv_cluster *cl, uint64_t now)
{
	if (now - cl->started_ms >= cl->forget_ms)
		return NULL;
	const struct dkv_node *self = dkv_engine_self(cl->e);
	uint32_t nn = dkv_engine_node_count(cl->e);
	for (uint32_t i = 0; i < nn; i++) {
		const struct dkv_node *n = dkv_engine_node_at(cl->e, i);
		if (n != self && !dkv__peer_find(cl, n->name, strlen(n->name)))
			return n;
	}
	return NULL;
}

/* Drop tombstones every known node has seen (the engine keeps a list of
 * them: this costs a look at each tombstone, not a walk of the tree). */
static void purge_tombstones(struct dkv_cluster *cl, uint64_t now)
{
	const struct dkv_node *n = dkv__cluster_unheard(cl, now);
	if (n) {
		if (!cl->unheard_said && dkv_engine_tombstone_count(cl->e)) {
			cl->unheard_said = true;
			dkv__cluster_say(cl, "keeping every tombstone: node %s is in the data but "
					     "not in the network's member list (it may come back "
					     "without the deletions)", n->name);
		}
		return;
	}
	cl->unheard_said = false;
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
		purge_tombstones(cl, now);
	}
}
