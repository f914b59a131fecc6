/*
 * fuzz_request.c - libFuzzer target for the request path: the msgpack
 * reader, the request decoder and every protocol action.
 *
 * An input is a byte stream as a client would send it: msgpack items back
 * to back.  Each complete item goes through the same steps as in conn.c
 * (decode, hello / control / dispatch) on a connection whose socket is
 * never touched: conn->writing is set, so dkv__conn_flush() leaves the
 * replies in conn->out.  Each input gets a fresh engine, so a crash
 * reproduces from its input file alone.
 *
 * Two differential checks run on every item: msgpack-c (the reference
 * decoder) must accept whatever dkv_mp_skip() accepts, with the same
 * length, and dkv_mp_canon() must be idempotent.  A disagreement aborts.
 */
#include "fuzz.h"
#include "net.h"

#include <errno.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* msgpack-c refuses containers nested deeper than this (its
 * MSGPACK_EMBED_STACK_SIZE, in a header msgpack.h does not include) */
#define MSGPACK_C_MAX_DEPTH 32

static struct dkv_server srv;
static struct dkv_conn conn;
static msgpack_unpacked ref;
static struct dkv_buf canon1, canon2;

static void setup(void)
{
	srv.opts = (struct dkv_server_opts){
		.host = "fuzz",
		.max_msg_size = 1 << 20,
		.max_out_buffer = 1 << 24,
		.qlen = 10,
		.max_watch_queue = 1000,
	};
	srv.ready = true; /* in sync: data requests run (else they are parked, unanswered) */
	conn.srv = &srv;
	conn.writing = true; /* never start a uv_write: the tcp handle is not open */
	msgpack_unpacked_init(&ref);
}

/* How deeply the item's containers nest, counting empty ones, as
 * msgpack-c counts against MSGPACK_C_MAX_DEPTH. */
static unsigned item_depth(const uint8_t *p, size_t len)
{
	struct dkv_mp_reader r;
	struct dkv_mp_item it;
	uint64_t left[DKV_MP_MAX_DEPTH + 2];
	unsigned top = 0, max = 0;

	dkv_mp_reader_init(&r, p, len);
	left[0] = 1;
	for (;;) {
		while (top > 0 && !left[top])
			top--;
		if (!top && !left[0])
			break;
		if (dkv_mp_read(&r, &it))
			break;
		left[top]--;
		if (it.type != DKV_MP_ARRAY && it.type != DKV_MP_MAP)
			continue;
		if (top + 1 > max)
			max = top + 1;
		uint64_t n = it.type == DKV_MP_MAP ? 2 * (uint64_t)it.v.n : it.v.n;
		if (n && top + 1 < sizeof left / sizeof left[0])
			left[++top] = n;
	}
	return max;
}

static void check_against_msgpack_c(const uint8_t *p, size_t len)
{
	size_t off = 0;
	int rc = msgpack_unpack_next(&ref, (const char *)p, len, &off);
	if (rc == MSGPACK_UNPACK_NOMEM_ERROR && item_depth(p, len) > MSGPACK_C_MAX_DEPTH)
		return;
	if ((rc != MSGPACK_UNPACK_SUCCESS && rc != MSGPACK_UNPACK_EXTRA_BYTES) || off != len) {
		fprintf(stderr, "fuzz: dkv_mp_skip accepted %zu bytes, msgpack-c says %d after %zu\n",
			len, rc, off);
		abort();
	}
}

static void check_canon(const uint8_t *p, size_t len)
{
	struct dkv_mp_reader r;

	canon1.len = canon2.len = 0;
	dkv_mp_reader_init(&r, p, len);
	if (dkv_mp_canon(&canon1, &r))
		return; /* e.g. a malformed big integer: refused, which is fine */
	if (dkv_mp_left(&r)) {
		fprintf(stderr, "fuzz: dkv_mp_canon left %zu of %zu bytes\n", dkv_mp_left(&r), len);
		abort();
	}
	dkv_mp_reader_init(&r, canon1.data, canon1.len);
	if (dkv_mp_canon(&canon2, &r) || dkv_mp_left(&r) || canon1.len != canon2.len ||
	    memcmp(canon1.data, canon2.data, canon1.len)) {
		fprintf(stderr, "fuzz: dkv_mp_canon is not idempotent\n");
		abort();
	}
}

/* What conn.c does with the client's hello and with stream acks.
 * NEEDSWORK: conn.c keeps these static; if it exported its message
 * handler, this copy would go. */
static bool handle_hello_or_control(const struct dkv_msg *m)
{
	const struct dkv_field *st = dkv__msg_get(m, "state");
	const struct dkv_field *act = dkv__msg_get(m, "action");
	struct dkv_mp_reader r;
	struct dkv_mp_item it;

	if (st && !act) {
		dkv_mp_reader_init(&r, st->val, st->vallen);
		if (dkv_mp_read(&r, &it) || it.type != DKV_MP_STR)
			return true;
		struct dkv_stream *s = dkv__stream_find(&conn, m->seq);
		if (!s)
			return true;
		if (dkv_mp_streq(&it, "ack")) {
			const struct dkv_field *a = dkv__msg_get(m, "ack");
			if (!a)
				return true;
			dkv_mp_reader_init(&r, a->val, a->vallen);
			if (dkv_mp_read(&r, &it) || it.type != DKV_MP_UINT)
				return true;
			if (it.v.u > s->acked)
				s->acked = it.v.u < s->wseq ? it.v.u : s->wseq;
			dkv__stream_pump(s);
		} else if (dkv_mp_streq(&it, "end")) {
			dkv__stream_cancel(s);
		}
		return true;
	}
	if (m->seq == 0 && !act) {
		const struct dkv_field *q = dkv__msg_get(m, "qlen");
		if (q) {
			dkv_mp_reader_init(&r, q->val, q->vallen);
			if (!dkv_mp_read(&r, &it) && it.type == DKV_MP_UINT)
				conn.qlen = it.v.u < srv.opts.qlen ? (unsigned)it.v.u : srv.opts.qlen;
		}
		return true;
	}
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	struct dkv_engine_opts eo = {.node = "fuzz", .chain_length = 5};
	struct dkv_mp_reader r;
	struct dkv_msg m;
	char err[256];

	if (!ready) {
		setup();
		ready = true;
	}
	srv.engine = dkv_engine_new(&eo);
	conn.qlen = 0;

	dkv_mp_reader_init(&r, data, size);
	while (dkv_mp_left(&r)) {
		const uint8_t *start = r.p;
		if (dkv_mp_skip(&r))
			break;
		size_t len = (size_t)(r.p - start);
		check_against_msgpack_c(start, len);
		check_canon(start, len);
		if (dkv__msg_decode(&m, start, len, err, sizeof err) || !m.has_seq ||
		    dkv__msg_check_text(&m, start, len, err, sizeof err))
			continue;
		if (!handle_hello_or_control(&m))
			dkv__proto_dispatch(&conn, &m);
	}

	while (conn.streams)
		dkv__stream_cancel(conn.streams);
	dkv__auth_conn_gone(&conn); /* a login binds the session to this engine */
	if (getenv("FUZZ_REQUEST_REPLIES")) { /* what a seed gets: the replies, for a look */
		FILE *f = fopen(getenv("FUZZ_REQUEST_REPLIES"), "wb");
		if (f) {
			fwrite(conn.out.data, 1, conn.out.len, f);
			fclose(f);
		}
	}
	conn.out.len = 0;
	conn.close_after_write = false;
	dkv_engine_free(srv.engine);
	srv.engine = NULL;
	return 0;
}
