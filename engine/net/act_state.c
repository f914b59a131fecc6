/*
 * act_state.c - the actions that describe the node: get_state, get_tock,
 *
 */
#include "cluster.h"
#include "log.h"
#include "net.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int dkv__act_get_tock(struct dkv_req *q)
{
	struct dkv_reply r;
	dkv__reply_begin(&r, q->c);
	dkv__reply_tock(&r, q->e, 0);
	dkv__reply_seq(&r, q->m);
	dkv__reply_end(&r);
	return 0;
}

/* Collect the ticks that entries' chains currently hold, per node. */
static void collect_current(struct dkv_engine *e, struct dkv_rangeset *cur)
{
	struct dkv_entry *top = dkv_engine_root(e);
	for (struct dkv_entry *x = top; x; x = dkv_entry_walk_next(x, top, true)) {
		const struct dkv_value *v = x->value;
		for (uint32_t i = 0; v && i < v->nchain; i++)
			dkv_rangeset_add(&cur[v->chain[i].node->idx], v->chain[i].tick,
					 v->chain[i].tick + 1);
	}
}

int dkv__act_get_state(struct dkv_req *q)
{
	bool nodes, known, current, missing, rmissing, deleted, log, cluster;
	int rc;
	if ((rc = dkv__req_bool(q, "nodes", &nodes)) || (rc = dkv__req_bool(q, "known", &known)) ||
	    (rc = dkv__req_bool(q, "current", &current)) || (rc = dkv__req_bool(q, "missing", &missing)) ||
	    (rc = dkv__req_bool(q, "remote_missing", &rmissing)) || (rc = dkv__req_bool(q, "deleted", &deleted)) ||
	    (rc = dkv__req_bool(q, "log", &log)) || (rc = dkv__req_bool(q, "cluster", &cluster)))
		return rc;

	uint32_t nn = dkv_engine_node_count(q->e);
	struct dkv_rangeset *cur = NULL;
	if (known || current) {
		cur = dkv_xcalloc(nn, sizeof *cur);
		collect_current(q->e, cur);
	}
	struct dkv_reply r;
	dkv__reply_begin(&r, q->c);
	dkv__reply_key(&r, "node");
	dkv_mp_cstr(r.b, dkv_engine_self(q->e)->name);
	if (nodes) {
		dkv__reply_key(&r, "nodes");
		dkv_mp_map(r.b, nn);
		for (uint32_t i = 0; i < nn; i++) {
			struct dkv_node *n = dkv_engine_node_at(q->e, i);
			dkv_mp_cstr(r.b, n->name);
			dkv_mp_uint(r.b, n->tick);
		}
	}
	if (known) { /* ticks seen whose change has been superseded */
		dkv__reply_key(&r, "known");
		dkv_mp_map(r.b, nn);
		for (uint32_t i = 0; i < nn; i++) {
			struct dkv_node *n = dkv_engine_node_at(q->e, i);
			struct dkv_rangeset k;
			dkv_rangeset_init(&k);
			for (uint32_t j = 0; j < n->seen.n; j++)
				dkv_rangeset_add(&k, n->seen.r[j].lo, n->seen.r[j].hi);
			for (uint32_t j = 0; j < cur[i].n; j++)
				dkv_rangeset_remove(&k, cur[i].r[j].lo, cur[i].r[j].hi);
			for (uint32_t j = 0; j < n->deleted.n; j++)
				dkv_rangeset_remove(&k, n->deleted.r[j].lo, n->deleted.r[j].hi);
			dkv_mp_cstr(r.b, n->name);
			dkv_rangeset_encode(&k, r.b);
			dkv_rangeset_release(&k);
		}
	}
	if (current) {
		dkv__reply_key(&r, "current");
		dkv_mp_map(r.b, nn);
		for (uint32_t i = 0; i < nn; i++) {
			dkv_mp_cstr(r.b, dkv_engine_node_at(q->e, i)->name);
			dkv_rangeset_encode(&cur[i], r.b);
		}
	}
	if (missing) { /* gaps below each node's highest tick */
		uint32_t nm = 0;
		struct dkv_rangeset *ms = dkv_xcalloc(nn ? nn : 1, sizeof *ms);
		for (uint32_t i = 0; i < nn; i++) {
			struct dkv_node *n = dkv_engine_node_at(q->e, i);
			dkv_rangeset_missing(&n->seen, 1, n->tick + 1, &ms[i]);
			nm += ms[i].n > 0;
		}
		dkv__reply_key(&r, "missing");
		dkv_mp_map(r.b, nm);
		for (uint32_t i = 0; i < nn; i++) {
			if (ms[i].n) {
				dkv_mp_cstr(r.b, dkv_engine_node_at(q->e, i)->name);
				dkv_rangeset_encode(&ms[i], r.b);
			}
			dkv_rangeset_release(&ms[i]);
		}
		free(ms);
	}
	if (rmissing) { /* what peers reported they may lack */
		dkv__reply_key(&r, "remote_missing");
		if (q->c->srv->cluster)
			dkv_cluster_encode_remote_missing(q->c->srv->cluster, r.b);
		else
			dkv_mp_map(r.b, 0);
	}
	if (deleted) {
		uint32_t nd = 0;
		for (uint32_t i = 0; i < nn; i++)
			nd += dkv_engine_node_at(q->e, i)->deleted.n > 0;
		dkv__reply_key(&r, "deleted");
		dkv_mp_map(r.b, nd);
		for (uint32_t i = 0; i < nn; i++) {
			struct dkv_node *n = dkv_engine_node_at(q->e, i);
			if (!n->deleted.n)
				continue;
			dkv_mp_cstr(r.b, n->name);
			dkv_rangeset_encode(&n->deleted, r.b);
		}
	}
	if (log) { /* OUR EXTENSION: the change log's health */
		dkv__reply_key(&r, "log");
		if (q->c->srv->opts.logger)
			dkv_logger_encode_info(q->c->srv->opts.logger, r.b);
		else
			dkv_mp_nil(r.b);
	}
	if (cluster) { /* OUR EXTENSION: peers, links, sync */
		dkv__reply_key(&r, "cluster");
		if (q->c->srv->cluster)
			dkv_cluster_encode_info(q->c->srv->cluster, r.b);
		else
			dkv_mp_nil(r.b);
	}
	dkv__reply_tock(&r, q->e, 0);
	dkv__reply_seq(&r, q->m);
	dkv__reply_end(&r);
	if (cur) {
		for (uint32_t i = 0; i < nn; i++)
			dkv_rangeset_release(&cur[i]);
		free(cur);
	}
	return 0;
}
