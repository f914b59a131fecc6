/*
 * pattern.c - the compiled pattern tree and its matcher (pattern.h).
 */
#include "pattern.h"

#include "mp.h"

#include <stdlib.h>
#include <string.h>

static const uint8_t PLUS_ELEM[] = {0xa1, '+'};
static const uint8_t HASH_ELEM[] = {0xa1, '#'};

static void build(struct dkv_pnode *n, const struct dkv_entry *x, struct dkv_path *p,
		  dkv_pattern_make_fn *make, void *ctx)
{
	n->data = dkv_entry_has_value(x) ? make(ctx, x, p) : NULL;
	for (const struct dkv_entry *k = x->kids; k; k = k->next)
		n->nkids++;
	n->kids = n->nkids ? dkv_xcalloc(n->nkids, sizeof *n->kids) : NULL;
	uint32_t i = 0;
	for (const struct dkv_entry *k = x->kids; k; k = k->next, i++) {
		struct dkv_pnode *c = &n->kids[i];
		c->name = dkv_xmalloc(k->namelen);
		memcpy(c->name, k->name, k->namelen);
		c->namelen = k->namelen;
		if (k->namelen == sizeof PLUS_ELEM && !memcmp(k->name, PLUS_ELEM, sizeof PLUS_ELEM))
			n->plus = c;
		if (k->namelen == sizeof HASH_ELEM && !memcmp(k->name, HASH_ELEM, sizeof HASH_ELEM))
			n->hash = c;
		size_t at = p->enc.len;
		dkv_buf_append(&p->enc, k->name, k->namelen);
		build(c, k, p, make, ctx);
		p->enc.len = at;
	}
}

void dkv_pattern_build(struct dkv_pnode *root, const struct dkv_entry *x,
		       dkv_pattern_make_fn *make, void *ctx)
{
	struct dkv_path p;
	dkv_path_init(&p);
	build(root, x, &p, make, ctx);
	dkv_path_release(&p);
}

void dkv_pattern_release(struct dkv_pnode *n, dkv_pattern_drop_fn *drop)
{
	for (uint32_t i = 0; i < n->nkids; i++) {
		dkv_pattern_release(&n->kids[i], drop);
		free(n->kids[i].name);
	}
	free(n->kids);
	if (n->data && drop)
		drop(n->data);
	n->kids = NULL;
	n->nkids = 0;
	n->plus = n->hash = NULL;
	n->data = NULL;
}

void *dkv_pattern_each(const struct dkv_pnode *n, void *(*fn)(void *ctx, void *data),
		       void *ctx)
{
	void *r = n->data ? fn(ctx, n->data) : NULL;
	for (uint32_t i = 0; !r && i < n->nkids; i++)
		r = dkv_pattern_each(&n->kids[i], fn, ctx);
	return r;
}

static const struct dkv_pnode *child(const struct dkv_pnode *n, const uint8_t *el, size_t len)
{
	for (uint32_t i = 0; i < n->nkids; i++)
		if (n->kids[i].namelen == len && !memcmp(n->kids[i].name, el, len))
			return &n->kids[i];
	return NULL;
}

/* ---- the candidate set ---- */

void dkv_pcands_init(struct dkv_pcands *c, const struct dkv_pnode *root)
{
	c->v = c->local;
	c->n = 0;
	c->cap = sizeof c->local / sizeof c->local[0];
	if (root)
		c->v[c->n++] = (struct dkv_pcand){root, false};
}

void dkv_pcands_release(struct dkv_pcands *c)
{
	if (c->v != c->local)
		free(c->v);
}

static void push(struct dkv_pcands *c, const struct dkv_pnode *n, bool keep)
{
	if (c->n == c->cap) {
		if (c->cap >= DKV_PATTERN_CANDS_MAX)
			return;
		struct dkv_pcand *v = dkv_xmalloc(sizeof *v * c->cap * 2);
		memcpy(v, c->v, sizeof *v * c->n);
		if (c->v != c->local)
			free(c->v);
		c->v = v;
		c->cap *= 2;
	}
	c->v[c->n++] = (struct dkv_pcand){n, keep};
}

void dkv_pcands_step(const struct dkv_pcands *from, struct dkv_pcands *to, const uint8_t *el,
		     size_t len)
{
	bool nil = len == 1 && el[0] == 0xc0;
	to->n = 0;
	for (unsigned i = 0; i < from->n; i++) {
		const struct dkv_pnode *n = from->v[i].n, *k;
		if ((k = child(n, el, len)))
			push(to, k, false);
		if (nil)
			continue;
		if (n->plus)
			push(to, n->plus, false);
		if (n->hash)
			push(to, n->hash, true);
		if (from->v[i].keep)
			push(to, n, true);
	}
}

void *dkv_pcands_best(const struct dkv_pcands *c)
{
	for (unsigned i = 0; i < c->n; i++)
		if (c->v[i].n->data)
			return c->v[i].n->data;
	return NULL;
}

void *dkv_pattern_match(const struct dkv_pnode *root, const uint8_t *path, size_t len)
{
	struct dkv_pcands a, b, *cur = &a, *next = &b;
	struct dkv_path_iter it;
	const uint8_t *el;
	size_t elen;
	dkv_pcands_init(&a, root);
	dkv_pcands_init(&b, NULL);
	dkv_path_iter_init(&it, path, len);
	while (cur->n && dkv_path_iter_next(&it, &el, &elen)) {
		dkv_pcands_step(cur, next, el, elen);
		struct dkv_pcands *t = cur;
		cur = next;
		next = t;
	}
	void *best = dkv_pcands_best(cur);
	dkv_pcands_release(&a);
	dkv_pcands_release(&b);
	return best;
}
