/*
 * dkv-bench.c - a load generator for the distkv client protocol.
 *
 * One thread, one libuv loop, many connections, each keeping a fixed
 * number of requests in flight (the pipeline depth), like redis-benchmark.
 * The workload is small set_value / get_value requests on 3-element paths
 * ("bench", "k<i/1000>", "<i%1000>"), so the figures measure the protocol
 * and the tree, not the network or big values.
 *
 * The client must cost the server as little CPU as possible, since on a
 * small machine both share the cores: requests are encoded straight into
 * one write buffer per connection and sent with one write per batch of
 * replies, and latencies go into a fixed-size log-linear histogram instead
 * of a growing array.
 *
 * A request's latency runs from the moment its batch was written to the
 * moment the read that carried its reply returned, matched by seq.
 */
#include "distkv.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

/* ---- latency histogram ---- */

/*
 * Log-linear buckets in the style of HdrHistogram: values below 2^SUB_BITS
 * ns are exact, larger ones keep SUB_BITS significant bits, so a bucket is
 * at most 1/128 (0.8%) of its values wide.  4,608 buckets (36 KiB) cover
 * everything up to 2^42 ns (73 minutes); longer waits land in the last.
 */
#define SUB_BITS 8
#define SUB_COUNT (1u << SUB_BITS)
#define HALF_COUNT (SUB_COUNT / 2)
#define MAX_SHIFT 34
#define NBUCKETS (SUB_COUNT + MAX_SHIFT * HALF_COUNT)

struct hist {
	uint64_t count[NBUCKETS];
	uint64_t n;
	uint64_t min, max; /* ns */
	double sum;        /* ns */
};

static unsigned hist_index(uint64_t v)
{
	if (v < SUB_COUNT)
		return (unsigned)v;
	unsigned msb = 63u - (unsigned)__builtin_clzll(v);
	unsigned shift = msb - (SUB_BITS - 1);
	if (shift > MAX_SHIFT)
		return NBUCKETS - 1;
	return SUB_COUNT + (shift - 1) * HALF_COUNT + (unsigned)((v >> shift) - HALF_COUNT);
}

/* The largest value that falls into bucket i. */
static uint64_t hist_upper(unsigned i)
{
	if (i < SUB_COUNT)
		return i;
	unsigned shift = (i - SUB_COUNT) / HALF_COUNT + 1;
	uint64_t top = (i - SUB_COUNT) % HALF_COUNT + HALF_COUNT;
	return ((top + 1) << shift) - 1;
}

static void hist_add(struct hist *h, uint64_t v)
{
	h->count[hist_index(v)]++;
	if (!h->n || v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
	h->n++;
	h->sum += (double)v;
}

/* The value at or below which a fraction q of the samples lie, ns. */
static uint64_t hist_quantile(const struct hist *h, double q)
{
	if (!h->n)
		return 0;
	uint64_t want = (uint64_t)(q * (double)h->n + 0.999999);
	uint64_t seen = 0;
	if (want < 1)
		want = 1;
	for (unsigned i = 0; i < NBUCKETS; i++) {
		seen += h->count[i];
		if (seen >= want) {
			uint64_t u = hist_upper(i);
			return u < h->max ? u : h->max;
		}
	}
	return h->max;
}

/* ---- the benchmark ---- */

enum test { T_SET, T_GET, T_MIX };

struct opts {
	const char *host;
	int port;
	unsigned conns;
	unsigned pipeline;
	uint64_t requests;
	enum test test;
	double set_ratio;
	size_t value_size;
	uint64_t keyspace;
	bool prefill;
	int rss_pid; /* 0: none */
	bool quiet;
	const char *auth; /* log in like this first ("_test name=joe"); NULL: no login */
};

enum phase { PH_CONNECT, PH_PREFILL, PH_RUN, PH_DONE };

struct slot {
	uint64_t seq; /* 0: free */
	uint64_t sent; /* uv_hrtime() of the write */
};

struct bench;

struct bconn {
	uv_tcp_t tcp;
	uv_connect_t creq;
	struct bench *b;
	struct dkv_buf in;   /* received, not yet parsed */
	struct dkv_buf out;  /* requests encoded, not yet written */
	struct slot *slots;  /* opts.pipeline of them */
	unsigned inflight;
	uint64_t next_seq;
	uint64_t rng;        /* xorshift64 state */
	bool ready;          /* greeting received, hello sent (and logged in) */
	bool greeted;        /* greeting received */
};

#define AUTH_SEQ (1ull << 40) /* the login request's seq, beyond any request's */

struct bench {
	struct opts o;
	uv_loop_t *loop;
	struct bconn *c;
	unsigned nready;
	unsigned nclosed;
	enum phase phase;
	uint64_t issued;   /* requests sent in this phase */
	uint64_t done;     /* replies received in this phase */
	uint64_t total;    /* requests in this phase */
	uint64_t errors;   /* error replies in the timed phase */
	uint64_t prefill_errors;
	uint64_t t_start, t_end; /* ns, timed phase */
	long rss_before, rss_after; /* KiB; -1: unknown */
	struct hist hist;
	uint8_t *value;    /* the msgpack string every set stores */
	size_t value_len;
	bool failed;
};

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static size_t put_dec(char *p, uint64_t v)
{
	char t[24];
	size_t n = 0;
	do {
		t[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		p[i] = t[n - 1 - i];
	return n;
}

/* Append the path ("bench", "k<i/1000>", "<i%1000>") as ext type 3. */
static void put_key(struct dkv_buf *b, uint64_t i)
{
	uint8_t payload[64];
	char num[24];
	size_t n = 0, len;

	payload[n++] = 0xa5;
	memcpy(payload + n, "bench", 5);
	n += 5;
	num[0] = 'k';
	len = 1 + put_dec(num + 1, i / 1000);
	payload[n++] = (uint8_t)(0xa0 | len);
	memcpy(payload + n, num, len);
	n += len;
	len = put_dec(num, i % 1000);
	payload[n++] = (uint8_t)(0xa0 | len);
	memcpy(payload + n, num, len);
	n += len;
	dkv_mp_ext(b, DKV_EXT_PATH, payload, n);
}

static long read_rss_kib(int pid)
{
	char path[64], line[256];
	long kib = -1;
	snprintf(path, sizeof path, "/proc/%d/status", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (!strncmp(line, "VmRSS:", 6)) {
			kib = strtol(line + 6, NULL, 10);
			break;
		}
	fclose(f);
	return kib;
}

static void start_phase(struct bench *b, enum phase ph);

static void fail(struct bench *b, const char *what, int err)
{
	if (!b->failed)
		fprintf(stderr, "dkv-bench: %s: %s\n", what, err ? uv_strerror(err) : "failed");
	b->failed = true;
	uv_stop(b->loop);
}

/* ---- writing ---- */

struct wreq {
	uv_write_t req;
	uint8_t *data;
};

static void on_write(uv_write_t *req, int status)
{
	struct wreq *w = (struct wreq *)req;
	struct bconn *c = req->data;
	free(w->data);
	free(w);
	if (status < 0)
		fail(c->b, "write", status);
}

/* Hand everything in c->out to the kernel: directly when the socket takes
 * it (the usual case), otherwise through a queued uv_write. */
static void flush(struct bconn *c)
{
	if (!c->out.len)
		return;
	uv_buf_t ub = uv_buf_init((char *)c->out.data, (unsigned)c->out.len);
	int n = uv_try_write((uv_stream_t *)&c->tcp, &ub, 1);
	if (n == (int)c->out.len) {
		c->out.len = 0;
		return;
	}
	if (n < 0 && n != UV_EAGAIN) {
		fail(c->b, "write", n);
		return;
	}
	if (n > 0)
		dkv_buf_consume(&c->out, (size_t)n);
	struct wreq *w = dkv_xmalloc(sizeof *w);
	size_t len;
	w->data = dkv_buf_detach(&c->out, &len);
	w->req.data = c;
	ub = uv_buf_init((char *)w->data, (unsigned)len);
	int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &ub, 1, on_write);
	if (rc) {
		free(w->data);
		free(w);
		fail(c->b, "write", rc);
	}
}

static void encode_request(struct bench *b, struct bconn *c, uint64_t seq)
{
	bool set;
	uint64_t key;

	if (b->phase == PH_PREFILL) {
		set = true;
		key = b->issued;
	} else {
		uint64_t r = xorshift(&c->rng);
		key = (r >> 11) % b->o.keyspace;
		switch (b->o.test) {
		case T_SET:
			set = true;
			break;
		case T_GET:
			set = false;
			break;
		default:
			set = (double)(xorshift(&c->rng) >> 11) / 9007199254740992.0 < b->o.set_ratio;
			break;
		}
	}
	struct dkv_buf *o = &c->out;
	dkv_mp_map(o, set ? 5 : 3);
	dkv_mp_str(o, "seq", 3);
	dkv_mp_uint(o, seq);
	dkv_mp_str(o, "action", 6);
	if (set)
		dkv_mp_str(o, "set_value", 9);
	else
		dkv_mp_str(o, "get_value", 9);
	dkv_mp_str(o, "path", 4);
	put_key(o, key);
	if (set) {
		dkv_mp_str(o, "value", 5);
		dkv_buf_append(o, b->value, b->value_len);
		dkv_mp_str(o, "nchain", 6);
		dkv_mp_uint(o, 0);
	}
}

/* Top the connection's pipeline up to its depth. */
static void fill(struct bconn *c)
{
	struct bench *b = c->b;
	unsigned depth = b->o.pipeline;
	uint64_t now = 0;

	if (!c->ready || (b->phase != PH_PREFILL && b->phase != PH_RUN))
		return;
	for (unsigned i = 0; i < depth && c->inflight < depth && b->issued < b->total; i++) {
		struct slot *s = &c->slots[i];
		if (s->seq)
			continue;
		if (!now)
			now = uv_hrtime();
		s->seq = ++c->next_seq;
		s->sent = now;
		encode_request(b, c, s->seq);
		b->issued++;
		c->inflight++;
	}
	flush(c);
}

/* ---- reading ---- */

static void got_reply(struct bconn *c, uint64_t seq, bool error, uint64_t now)
{
	struct bench *b = c->b;
	for (unsigned i = 0; i < b->o.pipeline; i++) {
		struct slot *s = &c->slots[i];
		if (s->seq != seq)
			continue;
		s->seq = 0;
		c->inflight--;
		b->done++;
		if (b->phase == PH_RUN) {
			hist_add(&b->hist, now - s->sent);
			if (error)
				b->errors++;
		} else if (error) {
			b->prefill_errors++;
		}
		return;
	}
	fprintf(stderr, "dkv-bench: reply for unknown seq %" PRIu64 "\n", seq);
	b->errors++;
}

static void send_hello(struct bconn *c)
{
	dkv_mp_map(&c->out, 2);
	dkv_mp_str(&c->out, "seq", 3);
	dkv_mp_uint(&c->out, 0);
	dkv_mp_str(&c->out, "qlen", 4);
	dkv_mp_uint(&c->out, 10);
	flush(c);
}

/* Send the login request; a password is sealed to pubkey, which
 * auth_key must have fetched first (pubkey NULL: ask for it). */
static void send_login(struct bconn *c, const uint8_t *pubkey)
{
	struct dkv_auth_spec sp;
	char err[200];
	if (dkv_auth_spec_parse(&sp, c->b->o.auth, err, sizeof err)) {
		fail(c->b, err, 0);
		return;
	}
	if (sp.method == DKV_AUTH_PASSWORD && !pubkey) {
		dkv_mp_map(&c->out, 2);
		dkv_mp_str(&c->out, "action", 6);
		dkv_mp_str(&c->out, "auth_key", 8);
		dkv_mp_str(&c->out, "seq", 3);
		dkv_mp_uint(&c->out, AUTH_SEQ - 1);
		dkv_auth_spec_release(&sp);
		flush(c);
		return;
	}
	struct dkv_buf f = {0};
	uint32_t n = dkv_auth_login_fields(&sp, pubkey, &f);
	dkv_mp_map(&c->out, n + 2);
	dkv_buf_append(&c->out, f.data, f.len);
	dkv_mp_str(&c->out, "action", 6);
	dkv_mp_str(&c->out, "auth", 4);
	dkv_mp_str(&c->out, "seq", 3);
	dkv_mp_uint(&c->out, AUTH_SEQ);
	dkv_buf_release(&f);
	dkv_auth_spec_release(&sp);
	flush(c);
}

/* One complete reply: find its seq and whether it is an error. */
static void handle_reply(struct bconn *c, const uint8_t *p, size_t len, uint64_t now)
{
	struct dkv_mp_reader r;
	struct dkv_mp_item it, k;
	bool has_seq = false, error = false, end = false;
	const uint8_t *pubkey = NULL;
	uint64_t seq = 0;
	static bool told;

	dkv_mp_reader_init(&r, p, len);
	if (dkv_mp_read(&r, &it) || it.type != DKV_MP_MAP) {
		c->b->errors++;
		return;
	}
	for (uint32_t i = 0; i < it.v.n; i++) {
		if (dkv_mp_read(&r, &k))
			break;
		if (k.type == DKV_MP_STR && dkv_mp_streq(&k, "seq")) {
			struct dkv_mp_item v;
			if (!dkv_mp_read(&r, &v) && v.type == DKV_MP_UINT) {
				has_seq = true;
				seq = v.v.u;
			}
			continue;
		}
		if (k.type == DKV_MP_STR && dkv_mp_streq(&k, "pubkey")) {
			struct dkv_mp_reader vr = r;
			struct dkv_mp_item v;
			if (!dkv_mp_read(&vr, &v) && v.type == DKV_MP_BIN &&
			    v.v.s.len == DKV_AUTH_KEYBYTES)
				pubkey = v.v.s.p;
		}
		if (k.type == DKV_MP_STR && dkv_mp_streq(&k, "state")) {
			struct dkv_mp_reader vr = r;
			struct dkv_mp_item v;
			end = !dkv_mp_read(&vr, &v) && dkv_mp_streq(&v, "end");
		}
		if (k.type == DKV_MP_STR && dkv_mp_streq(&k, "error")) {
			struct dkv_mp_reader vr = r;
			struct dkv_mp_item v;
			error = true;
			if (!told && !dkv_mp_read(&vr, &v) && v.type == DKV_MP_STR) {
				fprintf(stderr, "dkv-bench: server error: %.*s\n", (int)v.v.s.len,
					(const char *)v.v.s.p);
				told = true;
			}
		}
		if (dkv_mp_skip(&r))
			break;
	}
	if (!c->ready) {
		if (!c->greeted && (!has_seq || seq != 0)) {
			fail(c->b, "no greeting from the server", 0);
			return;
		}
		if (!c->greeted) {
			c->greeted = true;
			send_hello(c);
			if (c->b->o.auth) {
				send_login(c, NULL);
				return;
			}
		} else if (seq == AUTH_SEQ - 1 && pubkey) {
			send_login(c, pubkey);
			return;
		} else if (seq != AUTH_SEQ && !error) {
			return; /* the login stream's start */
		} else if (error) {
			fail(c->b, "the login was refused", 0);
			return;
		} else if (!end) {
			return;
		}
		c->ready = true;
		if (++c->b->nready == c->b->o.conns)
			start_phase(c->b, c->b->o.prefill ? PH_PREFILL : PH_RUN);
		return;
	}
	if (!has_seq) {
		c->b->errors++;
		return;
	}
	got_reply(c, seq, error, now);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct bconn *c = h->data;
	dkv_buf_reserve(&c->in, 65536);
	*buf = uv_buf_init((char *)c->in.data + c->in.len, (unsigned)(c->in.cap - c->in.len - 1));
}

static void on_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf)
{
	struct bconn *c = h->data;
	struct bench *b = c->b;

	if (nread < 0) {
		if (b->phase != PH_DONE)
			fail(b, "connection closed by the server", nread == UV_EOF ? 0 : (int)nread);
		return;
	}
	uint64_t now = uv_hrtime();
	c->in.len += (size_t)nread;

	struct dkv_mp_reader r;
	dkv_mp_reader_init(&r, c->in.data, c->in.len);
	for (;;) {
		const uint8_t *start = r.p;
		int rc = dkv_mp_skip(&r);
		if (rc == -EAGAIN)
			break;
		if (rc) {
			fail(b, "malformed reply from the server", 0);
			return;
		}
		handle_reply(c, start, (size_t)(r.p - start), now);
	}
	dkv_buf_consume(&c->in, (size_t)(r.p - c->in.data));
	if (b->phase == PH_DONE || b->failed)
		return;
	if (b->done == b->total && b->nready == b->o.conns) {
		start_phase(b, b->phase == PH_PREFILL ? PH_RUN : PH_DONE);
		return;
	}
	fill(c);
}

static void on_connect(uv_connect_t *req, int status)
{
	struct bconn *c = req->data;
	if (status < 0) {
		fail(c->b, "connect", status);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void on_closed(uv_handle_t *h)
{
	struct bconn *c = h->data;
	c->b->nclosed++;
}

static void start_phase(struct bench *b, enum phase ph)
{
	if (ph == PH_RUN && b->phase == PH_PREFILL) {
		if (b->o.rss_pid)
			b->rss_after = read_rss_kib(b->o.rss_pid);
		if (b->prefill_errors)
			fprintf(stderr, "dkv-bench: %" PRIu64 " errors during prefill\n",
				b->prefill_errors);
	}
	if (ph == PH_PREFILL && b->o.rss_pid)
		b->rss_before = read_rss_kib(b->o.rss_pid);
	if (ph == PH_RUN && !b->o.requests)
		ph = PH_DONE;
	b->phase = ph;
	b->issued = b->done = 0;
	if (ph == PH_DONE) {
		b->t_end = uv_hrtime();
		for (unsigned i = 0; i < b->o.conns; i++)
			uv_close((uv_handle_t *)&b->c[i].tcp, on_closed);
		return;
	}
	b->total = ph == PH_PREFILL ? b->o.keyspace : b->o.requests;
	if (ph == PH_RUN)
		b->t_start = uv_hrtime();
	for (unsigned i = 0; i < b->o.conns; i++)
		fill(&b->c[i]);
}

/* ---- output ---- */

static const char *test_name(enum test t)
{
	return t == T_SET ? "set" : t == T_GET ? "get" : "mix";
}

static void report(struct bench *b)
{
	double secs = (double)(b->t_end - b->t_start) / 1e9;
	double ops = secs > 0 ? (double)b->hist.n / secs : 0;
	double p50 = (double)hist_quantile(&b->hist, 0.50) / 1e3;
	double p99 = (double)hist_quantile(&b->hist, 0.99) / 1e3;
	double p999 = (double)hist_quantile(&b->hist, 0.999) / 1e3;
	double mean = b->hist.n ? b->hist.sum / (double)b->hist.n / 1e3 : 0;
	double per_entry = -1;

	if (b->rss_before >= 0 && b->rss_after >= 0 && b->o.keyspace)
		per_entry = (double)(b->rss_after - b->rss_before) * 1024.0 / (double)b->o.keyspace;

	if (b->o.quiet) {
		if (b->o.requests)
			printf("bench,%s,%u,%u,%" PRIu64 ",%.3f,%.0f,%.1f,%.1f,%.1f,%" PRIu64 "\n",
			       test_name(b->o.test), b->o.conns, b->o.pipeline, b->hist.n, secs, ops,
			       p50, p99, p999, b->errors);
		if (b->o.rss_pid)
			printf("rss,%ld,%ld,%" PRIu64 ",%.1f\n", b->rss_before, b->rss_after,
			       b->o.keyspace, per_entry);
		return;
	}
	printf("test %s, %u connections, pipeline %u, %zu-byte values, %" PRIu64 " keys%s\n",
	       test_name(b->o.test), b->o.conns, b->o.pipeline, b->o.value_size, b->o.keyspace,
	       b->o.prefill ? " (prefilled)" : "");
	if (b->o.requests) {
		printf("  requests  %" PRIu64 "\n", b->hist.n);
		printf("  seconds   %.3f\n", secs);
		printf("  ops/s     %.0f\n", ops);
		printf("  latency   p50 %.1f us, p99 %.1f us, p99.9 %.1f us (min %.1f, mean %.1f, max %.1f)\n",
		       p50, p99, p999, (double)b->hist.min / 1e3, mean, (double)b->hist.max / 1e3);
		printf("  errors    %" PRIu64 "\n", b->errors);
	}
	if (b->o.rss_pid) {
		printf("  server RSS  %ld KiB before prefill, %ld KiB after\n", b->rss_before,
		       b->rss_after);
		if (per_entry >= 0)
			printf("  RSS per entry  %.1f bytes (%" PRIu64 " entries)\n", per_entry,
			       b->o.keyspace);
	}
}

static void usage(FILE *f)
{
	fputs("usage: dkv-bench [options]\n"
	      "\n"
	      "Load a distkv server with set_value / get_value requests and report\n"
	      "throughput and latency percentiles.\n"
	      "\n"
	      "  -h HOST          server host (default 127.0.0.1)\n"
	      "  -p PORT          server port (default 27586)\n"
	      "  -c N             connections (default 50)\n"
	      "  -P N             requests in flight per connection (default 1)\n"
	      "  -n N             requests to time (default 200000)\n"
	      "  -t set|get|mix   request kind (default set)\n"
	      "  --set-ratio F    share of sets in the mix test (default 0.1)\n"
	      "  -d N             value size in bytes (default 8)\n"
	      "  -k N             keyspace: keys are (\"bench\", \"k<i/1000>\", \"<i%1000>\"),\n"
	      "                   chosen uniformly at random (default 100000)\n"
	      "  --prefill        set every key once before the timed run (not timed)\n"
	      "  --rss-pid PID    report that process's RSS before and after the prefill,\n"
	      "                   and the difference per key\n"
	      "  --sequential     one connection, one request in flight (-c 1 -P 1)\n"
	      "  --auth SPEC      log in first: \"_test name=joe\", \"password name=joe password=pw\"\n"
	      "  -q               one CSV line per figure:\n"
	      "                   bench,test,conns,pipeline,requests,seconds,ops_per_s,\n"
	      "                     p50_us,p99_us,p999_us,errors\n"
	      "                   rss,before_kib,after_kib,entries,bytes_per_entry\n"
	      "  --help           show this help\n",
	      f);
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-')
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_args(struct opts *o, int argc, char **argv)
{
	enum { O_SET_RATIO = 256, O_PREFILL, O_RSS_PID, O_SEQUENTIAL, O_HELP, O_AUTH };
	static const struct option lopts[] = {
		{"set-ratio", required_argument, NULL, O_SET_RATIO},
		{"prefill", no_argument, NULL, O_PREFILL},
		{"rss-pid", required_argument, NULL, O_RSS_PID},
		{"sequential", no_argument, NULL, O_SEQUENTIAL},
		{"auth", required_argument, NULL, O_AUTH},
		{"help", no_argument, NULL, O_HELP},
		{NULL, 0, NULL, 0},
	};
	bool sequential = false;
	uint64_t v;
	int ch;

	while ((ch = getopt_long(argc, argv, "h:p:c:P:n:t:d:k:q", lopts, NULL)) != -1) {
		switch (ch) {
		case 'h':
			o->host = optarg;
			break;
		case 'p':
			if (parse_u64(optarg, &v) || !v || v > 65535)
				goto bad;
			o->port = (int)v;
			break;
		case 'c':
			if (parse_u64(optarg, &v) || !v || v > 10000)
				goto bad;
			o->conns = (unsigned)v;
			break;
		case 'P':
			if (parse_u64(optarg, &v) || !v || v > 4096)
				goto bad;
			o->pipeline = (unsigned)v;
			break;
		case 'n':
			if (parse_u64(optarg, &v))
				goto bad;
			o->requests = v;
			break;
		case 't':
			if (!strcmp(optarg, "set"))
				o->test = T_SET;
			else if (!strcmp(optarg, "get"))
				o->test = T_GET;
			else if (!strcmp(optarg, "mix"))
				o->test = T_MIX;
			else
				goto bad;
			break;
		case 'd':
			if (parse_u64(optarg, &v) || v > (1u << 24))
				goto bad;
			o->value_size = (size_t)v;
			break;
		case 'k':
			/* "k<i/1000>" must stay a fixstr (< 32 bytes) */
			if (parse_u64(optarg, &v) || !v || v > 1000000000000000000ull)
				goto bad;
			o->keyspace = v;
			break;
		case 'q':
			o->quiet = true;
			break;
		case O_AUTH:
			o->auth = optarg;
			break;
		case O_SET_RATIO: {
			char *end;
			o->set_ratio = strtod(optarg, &end);
			if (*end || end == optarg || o->set_ratio < 0 || o->set_ratio > 1)
				goto bad;
			break;
		}
		case O_PREFILL:
			o->prefill = true;
			break;
		case O_RSS_PID:
			if (parse_u64(optarg, &v) || !v || v > 0x7fffffff)
				goto bad;
			o->rss_pid = (int)v;
			break;
		case O_SEQUENTIAL:
			sequential = true;
			break;
		case O_HELP:
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "dkv-bench: unexpected argument '%s'\n", argv[optind]);
		return -EINVAL;
	}
	if (sequential)
		o->conns = o->pipeline = 1;
	if (o->rss_pid && !o->prefill) {
		fprintf(stderr, "dkv-bench: --rss-pid needs --prefill\n");
		return -EINVAL;
	}
	return 0;
bad:
	fprintf(stderr, "dkv-bench: bad value for -%c: '%s'\n", ch < 256 ? ch : '-', optarg);
	return -EINVAL;
}

int main(int argc, char **argv)
{
	struct bench *b = dkv_xcalloc(1, sizeof *b);
	struct opts *o = &b->o;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
	char port[16];
	int rc;

	*o = (struct opts){
		.host = "127.0.0.1",
		.port = 27586,
		.conns = 50,
		.pipeline = 1,
		.requests = 200000,
		.test = T_SET,
		.set_ratio = 0.1,
		.value_size = 8,
		.keyspace = 100000,
	};
	if (parse_args(o, argc, argv))
		return 2;
	b->rss_before = b->rss_after = -1;

	struct dkv_buf v = {0};
	char *payload = dkv_xmalloc(o->value_size + 1);
	memset(payload, 'x', o->value_size);
	dkv_mp_str(&v, payload, o->value_size);
	free(payload);
	b->value = dkv_buf_detach(&v, &b->value_len);

	snprintf(port, sizeof port, "%d", o->port);
	if ((rc = getaddrinfo(o->host, port, &hints, &ai))) {
		fprintf(stderr, "dkv-bench: %s: %s\n", o->host, gai_strerror(rc));
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	b->loop = uv_default_loop();
	b->c = dkv_xcalloc(o->conns, sizeof *b->c);
	for (unsigned i = 0; i < o->conns; i++) {
		struct bconn *c = &b->c[i];
		c->b = b;
		c->slots = dkv_xcalloc(o->pipeline, sizeof *c->slots);
		c->rng = 0x9e3779b97f4a7c15ull * (i + 1);
		uv_tcp_init(b->loop, &c->tcp);
		c->tcp.data = c;
		c->creq.data = c;
		if ((rc = uv_tcp_connect(&c->creq, &c->tcp, ai->ai_addr, on_connect))) {
			fail(b, "connect", rc);
			break;
		}
	}
	freeaddrinfo(ai);

	uv_run(b->loop, UV_RUN_DEFAULT);
	if (b->failed) {
		/* connections may still be open: the process ends anyway */
		return 1;
	}
	uv_run(b->loop, UV_RUN_DEFAULT); /* let the close callbacks run */
	report(b);
	for (unsigned i = 0; i < o->conns; i++) {
		dkv_buf_release(&b->c[i].in);
		dkv_buf_release(&b->c[i].out);
		free(b->c[i].slots);
	}
	uv_loop_close(b->loop);
	free(b->c);
	free(b->value);
	free(b);
	return 0;
}
