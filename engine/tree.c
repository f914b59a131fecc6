/*
 * tree.c - entries: lookup, creation, pruning, walking.
 *
 * Workload: lookups are far more common than inserts, trees are wide
 * (many children per entry) and shallow.  All entries live in one open
 * hash table keyed by (parent pointer, element encoding), so an entry
 * needs no per-entry child table; children are also linked in insertion
 * order, which keeps walks and readdir offsets stable under change.
 */
#include "internal.h"
#include "hashtab.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* FNV-1a over the parent pointer and the name. */
uint32_t dkv__hash_elem(const struct dkv_entry *parent, const uint8_t *name, size_t len)
{
	uint64_t h = 1469598103934665603ull;
	uintptr_t pp = (uintptr_t)parent;
	for (unsigned i = 0; i < sizeof pp; i++) {
		h ^= (uint8_t)(pp >> (8 * i));
		h *= 1099511628211ull;
	}
	for (size_t i = 0; i < len; i++) {
		h ^= name[i];
		h *= 1099511628211ull;
	}
	return (uint32_t)(h ^ (h >> 32));
}

static size_t entry_hash(const void *node)
{
	const struct dkv_entry *x = node;
	return dkv__hash_elem(x->parent, x->name, x->namelen);
}

static void table_remove(struct dkv_engine *e, struct dkv_entry *ent)
{
	size_t b = dkv__hash_elem(ent->parent, ent->name, ent->namelen) & e->table_mask;
	struct dkv_entry **pp = &e->table[b];
	for (; *pp; pp = &(*pp)->hnext) {
		if (*pp == ent) {
			*pp = ent->hnext;
			e->nentries--;
			return;
		}
	}
}

void dkv__tree_init(struct dkv_engine *e)
{
	e->table_mask = 1023;
	e->table = dkv_xcalloc(e->table_mask + 1, sizeof *e->table);
	e->root = dkv_xcalloc(1, sizeof *e->root);
	atomic_init(&e->root->pins, 1); /* the root is never freed */
}

static void free_subtree(struct dkv_entry *ent)
{
	struct dkv_entry *k = ent->kids;
	while (k) {
		struct dkv_entry *n = k->next;
		free_subtree(k);
		k = n;
	}
	dkv_value_unref(ent->value);
	free(ent);
}

void dkv__tree_release(struct dkv_engine *e)
{
	if (e->root)
		free_subtree(e->root);
	free(e->table);
	e->root = NULL;
	e->table = NULL;
}

struct dkv_entry *dkv_entry_child(struct dkv_engine *e, struct dkv_entry *parent,
				  const uint8_t *elem, size_t len)
{
	uint32_t h = dkv__hash_elem(parent, elem, len);
	for (struct dkv_entry *x = e->table[h & e->table_mask]; x; x = x->hnext) {
		if (x->parent == parent && x->namelen == len &&
		    !memcmp(x->name, elem, len))
			return x;
	}
	return NULL;
}

struct dkv_entry *dkv__entry_new(struct dkv_engine *e, struct dkv_entry *parent,
				 const uint8_t *name, size_t len)
{
	struct dkv_entry *ent = dkv_xcalloc(1, sizeof *ent + len);
	pthread_rwlock_wrlock(&e->lock);
	ent->parent = parent;
	ent->namelen = (uint16_t)len;
	memcpy(ent->name, name, len);
	ent->tock = e->tock;
	/* readdir offsets: increasing along the sibling list */
	ent->seq = parent->kids ? parent->kids->prev->seq + 1 : 1;

	/* append to the sibling list: kids->prev is the last child */
	if (!parent->kids) {
		parent->kids = ent;
		ent->prev = ent;
	} else {
		struct dkv_entry *last = parent->kids->prev;
		last->next = ent;
		ent->prev = last;
		parent->kids->prev = ent;
	}

	if (e->nentries >= 2 * (e->table_mask + 1)) /* load factor 2: short chains, 8 B/entry */
		dkv_hashtab_grow(&e->table, &e->table_mask, offsetof(struct dkv_entry, hnext),
				 entry_hash);
	size_t b = dkv__hash_elem(parent, name, len) & e->table_mask;
	ent->hnext = e->table[b];
	e->table[b] = ent;
	e->nentries++;
	pthread_rwlock_unlock(&e->lock);
	return ent;
}

struct dkv_entry *dkv_entry_lookup(struct dkv_engine *e, struct dkv_entry *base,
				   const uint8_t *path, size_t len, bool create)
{
	struct dkv_entry *ent = base ? base : e->root;
	struct dkv_path_iter it;
	const uint8_t *el;
	size_t l;

	dkv_path_iter_init(&it, path, len);
	while (dkv_path_iter_next(&it, &el, &l)) {
		struct dkv_entry *k = dkv_entry_child(e, ent, el, l);
		if (!k) {
			if (!create)
				return NULL;
			if (l > UINT16_MAX)
				return NULL;
			k = dkv__entry_new(e, ent, el, l);
		}
		ent = k;
	}
	return ent;
}

static void unlink_from_parent(struct dkv_entry *ent)
{
	struct dkv_entry *p = ent->parent;
	if (p->kids == ent) {
		p->kids = ent->next;
		if (p->kids)
			p->kids->prev = ent->prev;
	} else {
		ent->prev->next = ent->next;
		if (ent->next)
			ent->next->prev = ent->prev;
		else
			p->kids->prev = ent->prev;
	}
}

static bool removable(const struct dkv_entry *ent)
{
	return ent->parent && !ent->value && !ent->kids && !atomic_load(&ent->pins) &&
	       !(ent->flags & (DKV_ENTRY_WATCHED | DKV_ENTRY_KEEP | DKV_ENTRY_TOMB));
}

void dkv__entry_maybe_free(struct dkv_engine *e, struct dkv_entry *ent)
{
	if (!ent || !removable(ent))
		return;
	/* readers pin under the read lock, so decide again under the write lock */
	pthread_rwlock_wrlock(&e->lock);
	while (ent && removable(ent)) {
		struct dkv_entry *p = ent->parent;
		table_remove(e, ent);
		unlink_from_parent(ent);
		free(ent);
		ent = p;
	}
	pthread_rwlock_unlock(&e->lock);
}

bool dkv_entry_path(const struct dkv_entry *ent, const struct dkv_entry *base,
		    struct dkv_path *out)
{
	const struct dkv_entry *stack[64];
	const struct dkv_entry **st = stack;
	size_t n = 0, cap = 64;
	const struct dkv_entry *x;
	bool ok = false;

	for (x = ent; x && x != base && x->parent; x = x->parent) {
		if (n == cap) {
			const struct dkv_entry **ns = dkv_xmalloc(2 * cap * sizeof *ns);
			memcpy(ns, st, n * sizeof *ns);
			if (st != stack)
				free(st);
			st = ns;
			cap *= 2;
		}
		st[n++] = x;
	}
	if (x == base || (!base && !x->parent)) {
		while (n)
			dkv_path_push_canon(out, st[n - 1]->name, st[n - 1]->namelen), n--;
		ok = true;
	}
	if (st != stack)
		free(st);
	return ok;
}

unsigned dkv_entry_depth(const struct dkv_entry *ent)
{
	unsigned d = 0;
	for (; ent->parent; ent = ent->parent)
		d++;
	return d;
}

void dkv_entry_pin(struct dkv_entry *ent)
{
	atomic_fetch_add_explicit(&ent->pins, 1, memory_order_relaxed);
}

void dkv_entry_unpin(struct dkv_engine *e, struct dkv_entry *ent)
{
	if (atomic_fetch_sub_explicit(&ent->pins, 1, memory_order_acq_rel) == 1)
		dkv__entry_maybe_free(e, ent);
}

bool dkv_entry_visible(const struct dkv_entry *ent)
{
	if (dkv_entry_has_value(ent) || (ent->flags & DKV_ENTRY_KEEP))
		return true;
	for (const struct dkv_entry *k = ent->kids; k; k = k->next)
		if (dkv_entry_visible(k))
			return true;
	return false;
}

int dkv_engine_mkdir(struct dkv_engine *e, struct dkv_entry *base, const uint8_t *path,
		     size_t len, struct dkv_entry **out)
{
	struct dkv_entry *ent = dkv_entry_lookup(e, base, path, len, true);
	if (!ent)
		return -EINVAL;
	if (out)
		*out = ent;
	if (dkv_entry_visible(ent))
		return -EEXIST;
	dkv_engine_set_keep(e, ent, true);
	return 0;
}

void dkv_engine_set_keep(struct dkv_engine *e, struct dkv_entry *ent, bool keep)
{
	pthread_rwlock_wrlock(&e->lock);
	if (keep)
		ent->flags |= DKV_ENTRY_KEEP;
	else
		ent->flags &= (uint8_t)~DKV_ENTRY_KEEP;
	pthread_rwlock_unlock(&e->lock);
	if (!keep)
		dkv__entry_maybe_free(e, ent);
}

int dkv_engine_rmdir(struct dkv_engine *e, struct dkv_entry *ent)
{
	if (!dkv_entry_visible(ent))
		return 0; /* its last value went (rm _ or elsewhere): already gone from view */
	if (dkv_entry_has_value(ent))
		return -ENOTEMPTY;
	for (const struct dkv_entry *k = ent->kids; k; k = k->next)
		if (dkv_entry_visible(k))
			return -ENOTEMPTY;
	dkv_engine_set_keep(e, ent, false);
	return 0;
}

struct dkv_entry *dkv_entry_walk_next(struct dkv_entry *ent, struct dkv_entry *top,
				      bool descend)
{
	if (descend && ent->kids)
		return ent->kids;
	while (ent != top) {
		if (ent->next)
			return ent->next;
		ent = ent->parent;
	}
	return NULL;
}

size_t dkv_engine_entry_count(struct dkv_engine *e)
{
	return e->nentries;
}
