/*
 * bench-tombstones.c - what the cluster's periodic tombstone check costs
 * the loop: a walk of the whole tree (how it was done up to 2026-11-30)
 * against the engine's list of tombstones (how it is done now).
 *
 * usage: build/tools/bench-tombstones [ENTRIES_K [TOMBSTONES]]
 *        (default 1000 thousand entries, 100 tombstones)
 */
#include "distkv.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static bool never(void *arg, const struct dkv_entry *ent)
{
	(void)arg;
	(void)ent;
	return false;
}

static void change(struct dkv_engine *e, long i, long j, bool del)
{
	struct dkv_path p;
	struct dkv_buf v = {0};
	char a[32], b[32];
	snprintf(a, sizeof a, "k%ld", i);
	snprintf(b, sizeof b, "%ld", j);
	dkv_path_init(&p);
	dkv_path_push_str(&p, a);
	dkv_path_push_str(&p, b);
	dkv_mp_int(&v, j);
	struct dkv_change c = {.path = p.enc.data, .path_len = p.enc.len,
			       .value = del ? NULL : v.data, .value_len = v.len,
			       .src = DKV_SRC_LOCAL};
	struct dkv_result r;
	if (dkv_engine_apply(e, &c, &r))
		abort();
	dkv_result_release(e, &r);
	dkv_path_release(&p);
	dkv_buf_release(&v);
}

int main(int argc, char **argv)
{
	long k = argc > 1 ? atol(argv[1]) : 1000, t = argc > 2 ? atol(argv[2]) : 100;
	struct dkv_engine_opts o = {.node = "bench", .chain_length = 5};
	struct dkv_engine *e = dkv_engine_new(&o);
	for (long i = 0; i < k; i++)
		for (long j = 0; j < 1000; j++)
			change(e, i, j, false);
	for (long j = 0; j < t; j++)
		change(e, j % k, j / k, true);
	struct dkv_entry *root = dkv_engine_root(e);
	for (int round = 0; round < 3; round++) {
		double t0 = now_ms();
		size_t n = 0, tombs = 0;
		for (struct dkv_entry *x = root; x; x = dkv_entry_walk_next(x, root, true)) {
			n++;
			tombs += dkv_entry_is_tombstone(x);
		}
		double t1 = now_ms();
		dkv_engine_purge(e, never, NULL);
		double t2 = now_ms();
		printf("%zu entries, %zu tombstones: tree walk %.2f ms, tombstone list %.4f ms\n",
		       n, tombs, t1 - t0, t2 - t1);
	}
	dkv_engine_free(e);
	return 0;
}
