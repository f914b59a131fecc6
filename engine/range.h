/*
 * range.h - sets of ticks as sorted, disjoint half-open ranges.
 *
 * A node's ticks arrive mostly in order, so a set is nearly always one
 * range or a few; additions at the end are O(1).
 */
#ifndef DKV_RANGE_H
#define DKV_RANGE_H

#include "mp.h"

struct dkv_range {
	uint64_t lo; /* first tick in the range */
	uint64_t hi; /* one past the last tick */
};

struct dkv_rangeset {
	struct dkv_range *r; /* sorted by lo, disjoint, never adjacent */
	uint32_t n;          /* ranges in use */
	uint32_t cap;        /* ranges allocated */
};

void dkv_rangeset_init(struct dkv_rangeset *s);
void dkv_rangeset_release(struct dkv_rangeset *s);
void dkv_rangeset_add(struct dkv_rangeset *s, uint64_t lo, uint64_t hi); /* [lo, hi) */
void dkv_rangeset_remove(struct dkv_rangeset *s, uint64_t lo, uint64_t hi);
bool dkv_rangeset_contains(const struct dkv_rangeset *s, uint64_t tick);
uint64_t dkv_rangeset_count(const struct dkv_rangeset *s);
/* The last tick of the gap-free run starting at 1 (0 when 1 is missing). */
uint64_t dkv_rangeset_prefix(const struct dkv_rangeset *s);
/* The ticks in [lo, hi) not in s, appended to out (which must be distinct). */
void dkv_rangeset_missing(const struct dkv_rangeset *s, uint64_t lo, uint64_t hi,
			  struct dkv_rangeset *out);
/* The wire form: an array whose items are a tick (range of one) or a
 * two-item array [lo, hi). */
void dkv_rangeset_encode(const struct dkv_rangeset *s, struct dkv_buf *out);
/* Parse the wire form and add it to s.  -EINVAL on anything malformed. */
int dkv_rangeset_decode(struct dkv_rangeset *s, struct dkv_mp_reader *r);

#endif
