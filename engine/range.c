/*
 * range.c - tick range sets.
 *
 * Workload: appends just past the last range dominate (a node counting
 * its own changes, a peer's changes arriving in order); holes are rare
 * and short-lived.  So the set is a sorted array, searched from the end.
 */
#include "range.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void dkv_rangeset_init(struct dkv_rangeset *s)
{
	s->r = NULL;
	s->n = 0;
	s->cap = 0;
}

void dkv_rangeset_release(struct dkv_rangeset *s)
{
	free(s->r);
	dkv_rangeset_init(s);
}

static void insert_at(struct dkv_rangeset *s, uint32_t i, uint64_t lo, uint64_t hi)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 2;
		s->r = dkv_xrealloc(s->r, s->cap * sizeof *s->r);
	}
	memmove(s->r + i + 1, s->r + i, (s->n - i) * sizeof *s->r);
	s->r[i].lo = lo;
	s->r[i].hi = hi;
	s->n++;
}

static void delete_at(struct dkv_rangeset *s, uint32_t i, uint32_t count)
{
	memmove(s->r + i, s->r + i + count, (s->n - i - count) * sizeof *s->r);
	s->n -= count;
}

/* Index of the first range whose hi >= lo (the first that may touch lo). */
static uint32_t first_touching(const struct dkv_rangeset *s, uint64_t lo)
{
	uint32_t a = 0, b = s->n;
	if (s->n && s->r[s->n - 1].hi < lo)
		return s->n;
	while (a < b) {
		uint32_t m = a + (b - a) / 2;
		if (s->r[m].hi < lo)
			a = m + 1;
		else
			b = m;
	}
	return a;
}

void dkv_rangeset_add(struct dkv_rangeset *s, uint64_t lo, uint64_t hi)
{
	if (lo >= hi)
		return;
	uint32_t i = first_touching(s, lo);
	if (i == s->n || s->r[i].lo > hi) {
		insert_at(s, i, lo, hi);
		return;
	}
	/* merge [lo,hi) into r[i] and every following range it reaches */
	if (lo < s->r[i].lo)
		s->r[i].lo = lo;
	uint32_t j = i;
	while (j + 1 < s->n && s->r[j + 1].lo <= hi)
		j++;
	if (s->r[j].hi > hi)
		hi = s->r[j].hi;
	if (hi > s->r[i].hi)
		s->r[i].hi = hi;
	delete_at(s, i + 1, j - i);
}

void dkv_rangeset_remove(struct dkv_rangeset *s, uint64_t lo, uint64_t hi)
{
	if (lo >= hi)
		return;
	uint32_t i = first_touching(s, lo + 1);
	while (i < s->n && s->r[i].lo < hi) {
		struct dkv_range *r = &s->r[i];
		if (r->lo < lo && r->hi > hi) { /* split */
			uint64_t old_hi = r->hi;
			r->hi = lo;
			insert_at(s, i + 1, hi, old_hi);
			return;
		}
		if (r->lo < lo) {
			r->hi = lo;
			i++;
		} else if (r->hi > hi) {
			r->lo = hi;
			return;
		} else {
			delete_at(s, i, 1);
		}
	}
}

bool dkv_rangeset_contains(const struct dkv_rangeset *s, uint64_t tick)
{
	uint32_t i = first_touching(s, tick + 1);
	return i < s->n && s->r[i].lo <= tick && tick < s->r[i].hi;
}

uint64_t dkv_rangeset_count(const struct dkv_rangeset *s)
{
	uint64_t c = 0;
	for (uint32_t i = 0; i < s->n; i++)
		c += s->r[i].hi - s->r[i].lo;
	return c;
}

uint64_t dkv_rangeset_prefix(const struct dkv_rangeset *s)
{
	return s->n && s->r[0].lo <= 1 ? s->r[0].hi - 1 : 0;
}

void dkv_rangeset_missing(const struct dkv_rangeset *s, uint64_t lo, uint64_t hi,
			  struct dkv_rangeset *out)
{
	uint64_t at = lo;
	for (uint32_t i = first_touching(s, lo + 1); i < s->n && at < hi; i++) {
		if (s->r[i].lo > at)
			dkv_rangeset_add(out, at, s->r[i].lo < hi ? s->r[i].lo : hi);
		if (s->r[i].hi > at)
			at = s->r[i].hi;
	}
	if (at < hi)
		dkv_rangeset_add(out, at, hi);
}

void dkv_rangeset_encode(const struct dkv_rangeset *s, struct dkv_buf *out)
{
	dkv_mp_array(out, s->n);
	for (uint32_t i = 0; i < s->n; i++) {
		if (s->r[i].hi == s->r[i].lo + 1) {
			dkv_mp_uint(out, s->r[i].lo);
		} else {
			dkv_mp_array(out, 2);
			dkv_mp_uint(out, s->r[i].lo);
			dkv_mp_uint(out, s->r[i].hi);
		}
	}
}

int dkv_rangeset_decode(struct dkv_rangeset *s, struct dkv_mp_reader *r)
{
	struct dkv_mp_item it, a, b;
	if (dkv_mp_read(r, &it) || it.type != DKV_MP_ARRAY)
		return -EINVAL;
	for (uint32_t i = 0; i < it.v.n; i++) {
		if (dkv_mp_read(r, &a))
			return -EINVAL;
		if (a.type == DKV_MP_UINT) {
			if (a.v.u == UINT64_MAX)
				return -EINVAL;
			dkv_rangeset_add(s, a.v.u, a.v.u + 1);
			continue;
		}
		if (a.type != DKV_MP_ARRAY || a.v.n != 2 || dkv_mp_read(r, &a) ||
		    a.type != DKV_MP_UINT || dkv_mp_read(r, &b) || b.type != DKV_MP_UINT)
			return -EINVAL;
		dkv_rangeset_add(s, a.v.u, b.v.u);
	}
	return 0;
}
