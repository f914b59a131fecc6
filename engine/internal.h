/*
 * internal.h - what engine.c, tree.c and node.c share, and nothing else.
 */
#ifndef DKV_INTERNAL_H
#define DKV_INTERNAL_H

#include "engine.h"

#include <pthread.h>

struct dkv_errlog;

struct dkv_hook {
	dkv_hook_fn fn;
	void *ctx;
};

struct dkv_checker {
	dkv_check_fn fn;
	void *ctx;
};

struct dkv_engine {
	/* the tree; owned by the loop, guarded by lock against FUSE readers */
	struct dkv_entry *root;
	struct dkv_entry **table; /* open hash of all entries by (parent, name) */
	size_t table_mask;        /* buckets - 1 (a power of two minus one) */
	size_t nentries;          /* entries in the table */
	pthread_rwlock_t lock;

	/* nodes */
	struct dkv_node **nodes; /* by idx */
	uint32_t nnodes;
	uint32_t nodes_cap;
	struct dkv_node *self;

	uint64_t tock;
	unsigned chain_length;

	/* watchers, in start order; stopped ones are unlinked when no
	 * fan-out is running */
	struct dkv_watch *watches;
	unsigned fanout_depth; /* nested fan-outs running */
	bool watch_dead;       /* a watch was stopped during a fan-out */
	struct dkv_hook *hooks;
	uint32_t nhooks;
	struct dkv_checker *checkers;
	uint32_t ncheckers;

	/* entries that became tombstones (DKV_ENTRY_TOMB), for purging; some
	 * may hold a value again since (dropped at the next purge) */
	struct dkv_entry **tombs;
	size_t ntombs, tombs_cap;

	/* the error log (errlog.h), NULL: none; read by any thread */
	_Atomic(struct dkv_errlog *) errlog;

	atomic_uint_fast64_t acl_gen; /* bumped by every change below (None, "acl") */
	atomic_uint_fast64_t conv_gen; /* ... below (None, "conv") and (None, "codec") */
	atomic_uint_fast64_t types_gen; /* bumped by every change below (None, "type")
					 * and (None, "match") */
};

uint32_t dkv__hash_elem(const struct dkv_entry *parent, const uint8_t *name, size_t len);
struct dkv_entry *dkv__entry_new(struct dkv_engine *e, struct dkv_entry *parent,
				 const uint8_t *name, size_t len);
/* Free ent and prune empty ancestors, if nothing keeps them. */
void dkv__entry_maybe_free(struct dkv_engine *e, struct dkv_entry *ent);
void dkv__tree_init(struct dkv_engine *e);
void dkv__tree_release(struct dkv_engine *e);

/* The chain after node@tick changed an entry whose last state was old:
 * node@tick first, the older links without node, at most max in all.
 * Writes into out (room for max links); returns the number of links. */
uint32_t dkv__chain_extend(const struct dkv_value *old, struct dkv_node *node, uint64_t tick,
			   unsigned max, struct dkv_chain_link *out);
void dkv__nodes_release(struct dkv_engine *e);

#endif
