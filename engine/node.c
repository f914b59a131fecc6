/*
 * node.c - values, nodes and chains.
 *
 * A cluster has few nodes (tens), so nodes are a plain array searched by
 * name; entries refer to them by pointer.  Chains are short (at most
 * server.change.length links, default 5) and immutable once attached to
 * an entry's state: a change builds a new state.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

struct dkv_value *dkv_value_new(const uint8_t *mp, size_t len, const struct dkv_chain_link *l,
				uint32_t nchain)
{
	struct dkv_value *v = dkv_xmalloc(sizeof *v + nchain * sizeof *l + len);
	atomic_init(&v->refs, 1);
	v->len = (uint32_t)len;
	v->nchain = nchain;
	if (nchain)
		memcpy(v->chain, l, nchain * sizeof *l);
	if (len)
		memcpy((uint8_t *)dkv_value_data(v), mp, len);
	return v;
}

struct dkv_value *dkv_value_ref(struct dkv_value *v)
{
	if (v)
		atomic_fetch_add_explicit(&v->refs, 1, memory_order_relaxed);
	return v;
}

void dkv_value_unref(struct dkv_value *v)
{
	if (v && atomic_fetch_sub_explicit(&v->refs, 1, memory_order_acq_rel) == 1)
		free(v);
}

bool dkv_value_same_data(const struct dkv_value *a, const struct dkv_value *b)
{
	size_t la = a ? a->len : 0, lb = b ? b->len : 0;
	if (la != lb)
		return false;
	return !la || !memcmp(dkv_value_data(a), dkv_value_data(b), la);
}

struct dkv_node *dkv_engine_find_node(struct dkv_engine *e, const char *name, size_t len)
{
	for (uint32_t i = 0; i < e->nnodes; i++) {
		struct dkv_node *n = e->nodes[i];
		if (strlen(n->name) == len && !memcmp(n->name, name, len))
			return n;
	}
	return NULL;
}

struct dkv_node *dkv_engine_node(struct dkv_engine *e, const char *name, size_t len)
{
	struct dkv_node *n = dkv_engine_find_node(e, name, len);
	if (n)
		return n;
	if (e->nnodes == e->nodes_cap) {
		e->nodes_cap = e->nodes_cap ? 2 * e->nodes_cap : 8;
		e->nodes = dkv_xrealloc(e->nodes, e->nodes_cap * sizeof *e->nodes);
	}
	n = dkv_xcalloc(1, sizeof *n);
	n->name = dkv_xstrndup(name, len);
	n->idx = e->nnodes;
	dkv_rangeset_init(&n->seen);
	dkv_rangeset_init(&n->deleted);
	e->nodes[e->nnodes++] = n;
	return n;
}

uint32_t dkv_engine_node_count(struct dkv_engine *e)
{
	return e->nnodes;
}

struct dkv_node *dkv_engine_node_at(struct dkv_engine *e, uint32_t idx)
{
	return idx < e->nnodes ? e->nodes[idx] : NULL;
}

void dkv__nodes_release(struct dkv_engine *e)
{
	for (uint32_t i = 0; i < e->nnodes; i++) {
		dkv_rangeset_release(&e->nodes[i]->seen);
		dkv_rangeset_release(&e->nodes[i]->deleted);
		free(e->nodes[i]->name);
		free(e->nodes[i]);
	}
	free(e->nodes);
	e->nodes = NULL;
	e->nnodes = e->nodes_cap = 0;
}

uint32_t dkv__chain_extend(const struct dkv_value *old, struct dkv_node *node, uint64_t tick,
			   unsigned max, struct dkv_chain_link *out)
{
	uint32_t n = 1;
	out[0].node = node;
	out[0].tick = tick;
	for (uint32_t i = 0; old && i < old->nchain && n < max; i++)
		if (old->chain[i].node != node)
			out[n++] = old->chain[i];
	return n;
}

static void encode_from(const struct dkv_chain_link *l, uint32_t n, int depth,
			struct dkv_buf *out)
{
	if (!n || depth == 0) {
		dkv_mp_nil(out);
		return;
	}
	dkv_mp_map(out, 3);
	dkv_mp_cstr(out, "node");
	dkv_mp_cstr(out, l->node->name);
	dkv_mp_cstr(out, "tick");
	dkv_mp_uint(out, l->tick);
	dkv_mp_cstr(out, "prev");
	encode_from(l + 1, n - 1, depth - 1, out);
}

void dkv_chain_encode(const struct dkv_chain_link *l, uint32_t n, int depth, struct dkv_buf *out)
{
	encode_from(l, n, depth, out);
}

void dkv_chain_describe(const struct dkv_chain_link *l, uint32_t n, struct dkv_buf *out)
{
	if (!n) {
		dkv_buf_puts(out, "(none)");
		return;
	}
	for (uint32_t i = 0; i < n; i++)
		dkv_buf_printf(out, "%s%s@%llu", i ? "," : "", l[i].node->name,
			       (unsigned long long)l[i].tick);
}
