/*
 * fuzz_repl.c - libFuzzer target for the receiving side of replication:
 * what a peer sends on a `repl` stream (doc/cluster.md) applied to a node
 * that already holds data.
 *
 * An input is the byte stream after the greeting: msgpack maps back to
 * back, as engine/net/peer.c reads them.  Each is decoded like a message
 * on a link (dkv__msg_decode); the binary payload of `r` and `done` is
 * applied as peer.c applies it (dkv_log_load_mem with .remote: change-log
 * records through dkv_engine_apply, DKV_SRC_REMOTE, the chain rules).
 * `ticks` and the rest are decoded only (peer.c's note_ticks is static).
 * A payload that fails ends the "link", as peer.c drops it.
 *
 * The node starts with a small history of its own (node-a: values, an
 * overwrite, a tombstone, internal data), so records made on top of it,
 * concurrently with it, and older than it all occur.  Two invariants
 * abort on violation, besides the sanitizers:
 *   - replaying the whole stream a second time changes nothing (doc/
 *     cluster.md: "duplicates, reordering and replays are harmless");
 *   - the resulting state dumps and loads back cleanly to the same state.
 */
#include "fuzz.h"
#include "log.h"
#include "net.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void quiet(void *arg, const char *msg)
{
}

static void put(struct dkv_engine *e, bool internal, const char *a, const char *b, int64_t v,
		bool del)
{
	struct dkv_path p;
	struct dkv_buf val = {0};
	struct dkv_result res;

	dkv_path_init(&p);
	if (a)
		dkv_path_push_str(&p, a);
	if (b)
		dkv_path_push_str(&p, b);
	dkv_mp_int(&val, v);
	struct dkv_change c = {.path = p.enc.data, .path_len = p.enc.len, .internal = internal,
			       .value = del ? NULL : val.data, .value_len = val.len,
			       .src = DKV_SRC_LOCAL};
	if (dkv_engine_apply(e, &c, &res) == 0)
		dkv_result_release(e, &res);
	dkv_path_release(&p);
	dkv_buf_release(&val);
}

/* node-a's own history: ticks 1..6 */
static struct dkv_engine *base(void)
{
	struct dkv_engine *e =
		dkv_engine_new(&(struct dkv_engine_opts){.node = "node-a", .chain_length = 5});
	put(e, false, NULL, NULL, 42, false);
	put(e, false, "a", "b", 1, false);
	put(e, false, "a", "c", 2, false);
	put(e, false, "a", "b", 3, false);
	put(e, false, "a", "c", 0, true);
	put(e, true, "acl", "x", 5, false);
	return e;
}

static bool field_is(const struct dkv_field *f, const char *key)
{
	return f->keylen == strlen(key) && !memcmp(f->key, key, f->keylen);
}

/* Apply the stream to e, as peer.c's handle_peer_msg would. */
static void feed(struct dkv_engine *e, const uint8_t *data, size_t size)
{
	struct dkv_log_load_opts lo = {.remote = true, .warn = quiet};
	struct dkv_mp_reader r, fr;
	struct dkv_mp_item it;
	struct dkv_msg m;
	char err[300];

	dkv_mp_reader_init(&r, data, size);
	while (dkv_mp_left(&r)) {
		const uint8_t *start = r.p;
		if (dkv_mp_skip(&r))
			return;
		if (dkv__msg_decode(&m, start, (size_t)(r.p - start), err, sizeof err) ||
		    !m.has_seq)
			return; /* peer.c drops the link */
		for (unsigned i = 0; i < m.n; i++) {
			const struct dkv_field *f = &m.f[i];
			if (!field_is(f, "r") && !field_is(f, "done"))
				continue;
			dkv_mp_reader_init(&fr, f->val, f->vallen);
			if (dkv_mp_read(&fr, &it) || it.type != DKV_MP_BIN)
				continue;
			if (dkv_log_load_mem(e, it.v.s.p, it.v.s.len, "peer", &lo, NULL, err,
					     sizeof err))
				return;
		}
	}
}

static void dump(struct dkv_engine *e, struct dkv_buf *out)
{
	dkv_log_encode_header(out, "node-a", DKV_LOG_KIND_DUMP);
	dkv_log_encode_dump(out, e, true);
}

/* d1 and d2 equal but for the headers' time stamps */
static bool same_dump(const struct dkv_buf *d1, const struct dkv_buf *d2)
{
	struct dkv_mp_reader r1, r2;
	dkv_mp_reader_init(&r1, d1->data, d1->len);
	dkv_mp_reader_init(&r2, d2->data, d2->len);
	return !dkv_mp_skip(&r1) && !dkv_mp_skip(&r2) && dkv_mp_left(&r1) == dkv_mp_left(&r2) &&
	       !memcmp(r1.p, r2.p, dkv_mp_left(&r1));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dkv_log_load_opts strict = {.warn = quiet};
	struct dkv_buf d1 = {0}, d2 = {0}, d3 = {0};
	char err[600];

	struct dkv_engine *once = base();
	feed(once, data, size);
	dump(once, &d1);

	struct dkv_engine *twice = base();
	feed(twice, data, size);
	feed(twice, data, size);
	dump(twice, &d2);
	if (!same_dump(&d1, &d2)) {
		fprintf(stderr, "fuzz_repl: replaying the stream changed the state\n");
		abort();
	}

	struct dkv_engine *again =
		dkv_engine_new(&(struct dkv_engine_opts){.node = "node-a", .chain_length = 5});
	if (dkv_log_load_mem(again, d1.data, d1.len, "dump", &strict, NULL, err, sizeof err)) {
		fprintf(stderr, "fuzz_repl: the state's dump does not load: %s\n", err);
		abort();
	}
	dump(again, &d3);
	if (!same_dump(&d1, &d3)) {
		fprintf(stderr, "fuzz_repl: the state's dump loads to another state\n");
		abort();
	}
	dkv_buf_release(&d1);
	dkv_buf_release(&d2);
	dkv_buf_release(&d3);
	dkv_engine_free(once);
	dkv_engine_free(twice);
	dkv_engine_free(again);
	return 0;
}
