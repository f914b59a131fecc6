/*
 * node.c - values, nodes and chains.
 *
 * A cluster has few nodes (tens), so nodes are a plain array searched by
 * name; entries refer to them by pointer.  Chains are short (at most
 * server.change.length links, default 5) and immutable once attached to
 * an entry: a change builds a new one.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

struct dkv_value *dkv_value_new(const uint8_t *mp, size_t len)
{
	struct dkv_value *v = dkv_xmalloc(sizeof *v + len);
	atomic_init(&v->refs, 1);
	v->len = (uint32_t)len;
	memcpy(v->data, mp, len);
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

bool dkv_value_equal(const struct dkv_value *a, const struct dkv_value *b)
{
	if (a == b)
		return true;
	if (!a || !b)
		return false;
	return a->len == b->len && !memcmp(a->data, b->data, a->len);
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

struct dkv_chain *dkv__chain_new(uint32_t n)
{
	struct dkv_chain *c = dkv_xmalloc(sizeof *c + n * sizeof c->l[0]);
	c->n = n;
	return c;
}

struct dkv_chain *dkv_chain_dup(const struct dkv_chain *c)
{
	if (!c)
		return NULL;
	struct dkv_chain *d = dkv__chain_new(c->n);
	memcpy(d->l, c->l, c->n * sizeof c->l[0]);
	return d;
}

struct dkv_chain *dkv__chain_extend(const struct dkv_chain *old, struct dkv_node *node,
				    uint64_t tick, unsigned max)
{
	uint32_t n = 1;
	struct dkv_chain *c = dkv__chain_new(old ? (old->n + 1 < max ? old->n + 1 : max) : 1);
	c->l[0].node = node;
	c->l[0].tick = tick;
	for (uint32_t i = 0; old && i < old->n && n < c->n; i++) {
		if (old->l[i].node != node)
			c->l[n++] = old->l[i];
	}
	c->n = n;
	return c;
}

static void encode_from(const struct dkv_chain *c, uint32_t i, int depth, struct dkv_buf *out)
{
	if (!c || i >= c->n || depth == 0) {
		dkv_mp_nil(out);
		return;
	}
	dkv_mp_map(out, 3);
	dkv_mp_cstr(out, "node");
	dkv_mp_cstr(out, c->l[i].node->name);
	dkv_mp_cstr(out, "tick");
	dkv_mp_uint(out, c->l[i].tick);
	dkv_mp_cstr(out, "prev");
	encode_from(c, i + 1, depth - 1, out);
}

void dkv_chain_encode(const struct dkv_chain *c, int depth, struct dkv_buf *out)
{
	encode_from(c, 0, depth, out);
}

void dkv_chain_describe(const struct dkv_chain *c, struct dkv_buf *out)
{
	if (!c || !c->n) {
		dkv_buf_puts(out, "(none)");
		return;
	}
	for (uint32_t i = 0; i < c->n; i++)
		dkv_buf_printf(out, "%s%s@%llu", i ? "," : "", c->l[i].node->name,
			       (unsigned long long)c->l[i].tick);
}
