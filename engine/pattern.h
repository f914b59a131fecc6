/*
 * pattern.h - path patterns, compiled: the one matcher behind ACLs,
 * type matches and converters.
 *
 * A pattern is a path whose elements may be "+" (any one element) or
 * "#" (any number of elements, none included).  A set of patterns is
 * kept in the tree as entries under one root (an ACL, (None, "match"),
 * a converter); dkv_pattern_build copies such a subtree into a compiled
 * tree with a payload on each node where a pattern ends.
 *
 * Matching keeps the set of nodes the path so far can be at: each step
 * follows the exact name, "+" and "#" from every candidate, and a "#"
 * stays a candidate for the following steps.  The set is kept in order
 * of specificity (an exact name before "+" before "#", earlier elements
 * deciding first), so a path's match is the first candidate with a
 * payload.  Nil elements (the internal subtree) match only themselves.
 * The set is bounded (DKV_PATTERN_CANDS_MAX): a pathological set of
 * many "#" may lose its least specific candidates on a long path.
 */
#ifndef DKV_PATTERN_H
#define DKV_PATTERN_H

#include "path.h"
#include "engine.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dkv_pnode {
	uint8_t *name; /* the element's encoding (the root has none) */
	uint32_t namelen;
	uint32_t nkids;
	struct dkv_pnode *kids;
	const struct dkv_pnode *plus, *hash; /* the children "+" and "#" */
	void *data; /* the payload; NULL: no pattern ends here */
};

/* Makes the payload of the entry x (whose path below the root is p), or
 * NULL when x ends no pattern (it has no value, or one not understood). */
typedef void *dkv_pattern_make_fn(void *ctx, const struct dkv_entry *x,
				  const struct dkv_path *p);
typedef void dkv_pattern_drop_fn(void *data);

/* Compile the subtree at x into root (zeroed by the caller).  Reads the
 * tree: on the loop, or under the read lock. */
void dkv_pattern_build(struct dkv_pnode *root, const struct dkv_entry *x,
		       dkv_pattern_make_fn *make, void *ctx);
void dkv_pattern_release(struct dkv_pnode *root, dkv_pattern_drop_fn *drop);

/* The most specific payload for path, or NULL. */
void *dkv_pattern_match(const struct dkv_pnode *root, const uint8_t *path, size_t len);

/* Calls fn on every payload, depth first, until fn returns non-NULL;
 * returns that. */
void *dkv_pattern_each(const struct dkv_pnode *root, void *(*fn)(void *ctx, void *data),
		       void *ctx);

/* ---- stepwise matching, for a walk that looks at each ancestor ---- */

#define DKV_PATTERN_CANDS_MAX 256

struct dkv_pcand {
	const struct dkv_pnode *n;
	bool keep; /* a "#": stays for the next steps */
};

struct dkv_pcands {
	struct dkv_pcand *v;
	unsigned n, cap;
	struct dkv_pcand local[16];
};

void dkv_pcands_init(struct dkv_pcands *c, const struct dkv_pnode *root);
void dkv_pcands_release(struct dkv_pcands *c);
/* Follow one element: the candidates of from become those of to. */
void dkv_pcands_step(const struct dkv_pcands *from, struct dkv_pcands *to, const uint8_t *el,
		     size_t len);
/* The payload of the most specific candidate that has one, or NULL. */
void *dkv_pcands_best(const struct dkv_pcands *c);

#endif
