/*
 * bench_serf.c - what two real Serf agents carry, measured through the
 * serf/ library: RPC round trips to the local agent, user events at a
 * steady rate (latency, loss, reordering from agent A to a stream on
 * agent B), and a burst sent as fast as the RPC takes it.
 *
 *   bench_serf [-p lan|local] [-r RATE] [-t SECONDS] [-n BURST] [-s BYTES]
 *
 * Defaults: profile lan (what distkv runs), 20 events/s for 5 s, a burst
 * of 2000, 100-byte payloads.  Prints figures; exits 0 unless something
 * could not be measured at all.
 */
#include "agents.h"
#include "serf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uv_loop_t loop_;
static uv_loop_t *loop = &loop_;
static uv_timer_t tick;

static void on_tick(uv_timer_t *t)
{
	(void)t;
}

#define RUN_UNTIL(cond, ms)                                                          \
	do {                                                                         \
		double end_ = now_s() + (ms) / 1000.0;                               \
		while (!(cond) && now_s() < end_)                                    \
			uv_run(loop, UV_RUN_ONCE);                                   \
	} while (0)

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* p-th percentile of v[0..n) (sorts v); 0 when empty. */
static double pct(double *v, size_t n, double p)
{
	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

/* ---- clients ---- */

static int states[2] = {1, 1};

static void on_state(struct serf_client *c, int status, const char *msg, void *arg)
{
	(void)c;
	*(int *)arg = status;
	if (status)
		printf("# %s\n", msg);
}

static int nclosed;

static void on_closed(struct serf_client *c, void *arg)
{
	(void)c, (void)arg;
	nclosed++;
}

/* ---- round trips ---- */

struct rtt {
	struct serf_client *c;
	int n, done;
	double t0;
	double *lat;
};

static void rtt_next(struct rtt *r);

static void rtt_members(struct serf_client *c, int status, const char *err,
			const struct serf_member *m, size_t n, void *arg)
{
	struct rtt *r = arg;
	(void)c, (void)err, (void)m, (void)n;
	if (status) {
		r->done = r->n;
		return;
	}
	r->lat[r->done++] = (now_s() - r->t0) * 1e6;
	rtt_next(r);
}

static void rtt_next(struct rtt *r)
{
	if (r->done >= r->n)
		return;
	r->t0 = now_s();
	if (serf_members(r->c, rtt_members, r))
		r->done = r->n;
}

/* ---- events ---- */

struct hdr {
	uint32_t seq;
	double sent; /* now_s() at the sender */
};

struct recv {
	size_t n;         /* events sent under this name */
	uint8_t *seen;    /* [n] */
	size_t got, dup, reordered;
	uint32_t last;
	double *lat;      /* [n] ms */
	size_t nlat;
	double last_arrival;
};

struct bench {
	struct recv pace, burst, burst_local;
	int started[2];
	size_t acked, nacked_err;
};

static void count(struct recv *r, const struct serf_record *rec)
{
	struct hdr h;
	if (rec->payload_len < sizeof(h))
		return;
	memcpy(&h, rec->payload, sizeof(h));
	if (h.seq >= r->n)
		return;
	r->last_arrival = now_s();
	if (r->seen[h.seq]) {
		r->dup++;
		return;
	}
	r->seen[h.seq] = 1;
	if (r->got && h.seq < r->last)
		r->reordered++;
	r->last = h.seq;
	r->got++;
	r->lat[r->nlat++] = (now_s() - h.sent) * 1e3;
}

static void on_record_b(struct serf_client *c, struct serf_stream *s, int status,
			const struct serf_record *rec, void *arg)
{
	struct bench *b = arg;
	(void)c, (void)s, (void)status;
	if (!rec)
		return;
	if (rec->type == SERF_RECORD_STARTED)
		b->started[1]++;
	else if (!strcmp(rec->name, "pace"))
		count(&b->pace, rec);
	else if (!strcmp(rec->name, "burst"))
		count(&b->burst, rec);
}

static void on_record_a(struct serf_client *c, struct serf_stream *s, int status,
			const struct serf_record *rec, void *arg)
{
	struct bench *b = arg;
	(void)c, (void)s, (void)status;
	if (!rec)
		return;
	if (rec->type == SERF_RECORD_STARTED)
		b->started[0]++;
	else if (!strcmp(rec->name, "burst"))
		count(&b->burst_local, rec);
}

static void on_acked(struct serf_client *c, int status, const char *err, void *arg)
{
	struct bench *b = arg;
	(void)c;
	b->acked++;
	if (status && !b->nacked_err++)
		printf("# event refused: %s\n", err ? err : strerror(-status));
}

static int recv_init(struct recv *r, size_t n)
{
	memset(r, 0, sizeof(*r));
	r->n = n;
	r->seen = calloc(n ? n : 1, 1);
	r->lat = calloc(n ? n : 1, sizeof(double));
	return r->seen && r->lat ? 0 : -ENOMEM;
}

static void recv_release(struct recv *r)
{
	free(r->seen);
	free(r->lat);
}

static int send_one(struct serf_client *c, struct bench *b, const char *name, uint32_t seq,
		    size_t size)
{
	uint8_t buf[1400];
	struct hdr h = {seq, now_s()};
	if (size < sizeof(h))
		size = sizeof(h);
	if (size > sizeof(buf))
		size = sizeof(buf);
	memset(buf, 'x', size);
	memcpy(buf, &h, sizeof(h));
	return serf_event(c, name, buf, size, false, on_acked, b);
}

static void report(const char *what, struct recv *r, double span)
{
	double p50 = pct(r->lat, r->nlat, 50), p99 = pct(r->lat, r->nlat, 99);
	double max = pct(r->lat, r->nlat, 100);
	printf("%-22s %6zu/%-6zu delivered (%5.1f%%), %zu reordered, %zu duplicates; "
	       "latency p50 %.0f ms, p99 %.0f ms, max %.0f ms; last %.1f s after the first send\n",
	       what, r->got, r->n, r->n ? 100.0 * (double)r->got / (double)r->n : 0.0,
	       r->reordered, r->dup, p50, p99, max, span);
}

/* Wait until no event arrived for quiet_ms (or until max_ms). */
static void wait_quiet(struct recv *r, int quiet_ms, int max_ms)
{
	double end = now_s() + max_ms / 1000.0;
	double start = now_s();
	while (now_s() < end) {
		double last = r->last_arrival > start ? r->last_arrival : start;
		if (r->got == r->n || now_s() - last > quiet_ms / 1000.0)
			break;
		uv_run(loop, UV_RUN_ONCE);
	}
}

static int join_result = 1;

static void on_joined(struct serf_client *c, int status, const char *err, int num, void *arg)
{
	(void)c, (void)arg, (void)num;
	join_result = status;
	if (status)
		printf("# join: %s\n", err ? err : strerror(-status));
}

static size_t nalive = 0;
static bool members_done;

static void on_members(struct serf_client *c, int status, const char *err,
		       const struct serf_member *m, size_t n, void *arg)
{
	(void)c, (void)err, (void)arg;
	nalive = 0;
	for (size_t i = 0; !status && i < n; i++)
		nalive += !strcmp(m[i].status, "alive");
	members_done = true;
}

/* Until c sees n members alive (at most 10 s). */
static bool wait_alive(struct serf_client *c, size_t n)
{
	for (double end = now_s() + 10; now_s() < end;) {
		members_done = false;
		if (serf_members(c, on_members, NULL))
			return false;
		RUN_UNTIL(members_done, 3000);
		if (nalive >= n)
			return true;
		RUN_UNTIL(false, 100);
	}
	return false;
}

static void measure_rtt(struct serf_client *c)
{
	struct rtt r = {.c = c, .n = 1000};
	r.lat = calloc((size_t)r.n, sizeof(double));
	if (!r.lat)
		return;
	double t0 = now_s();
	rtt_next(&r);
	RUN_UNTIL(r.done >= r.n, 20000);
	double el = now_s() - t0;
	printf("members round trip     %d sequential: p50 %.0f us, p99 %.0f us (%.0f/s)\n", r.done,
	       pct(r.lat, (size_t)r.done, 50), pct(r.lat, (size_t)r.done, 99), r.done / el);
	free(r.lat);
}

static void measure_pace(struct serf_client *ca, struct bench *b, double rate, size_t size)
{
	double t0 = now_s();
	size_t sent = 0;
	while (sent < b->pace.n) {
		while (sent < b->pace.n && now_s() >= t0 + (double)sent / rate)
			if (send_one(ca, b, "pace", (uint32_t)sent++, size))
				break;
		uv_run(loop, UV_RUN_ONCE);
	}
	wait_quiet(&b->pace, 3000, 60000);
	char what[64];
	snprintf(what, sizeof(what), "paced %.0f/s, A -> B", rate);
	report(what, &b->pace, b->pace.last_arrival - t0);
}

static void measure_burst(struct serf_client *ca, struct bench *b, size_t size)
{
	size_t acked0 = b->acked;
	double t0 = now_s();
	for (size_t i = 0; i < b->burst.n; i++)
		if (send_one(ca, b, "burst", (uint32_t)i, size))
			break;
	RUN_UNTIL(b->acked - acked0 >= b->burst.n, 60000);
	double el = now_s() - t0;
	printf("burst of %zu: the agent accepted all in %.0f ms (%.0f events/s through RPC)\n",
	       b->burst.n, el * 1e3, (double)(b->acked - acked0) / el);
	wait_quiet(&b->burst, 5000, 120000);
	report("burst, A -> B", &b->burst, b->burst.last_arrival - t0);
	wait_quiet(&b->burst_local, 1000, 10000);
	report("burst, A -> A's stream", &b->burst_local, b->burst_local.last_arrival - t0);
}

int main(int argc, char **argv)
{
	const char *profile = "lan";
	double rate = 20, secs = 5;
	size_t burst = 2000, size = 100;
	int opt, ret = 1;
	struct agent A = {.name = "bench-a"}, B = {.name = "bench-b"};
	struct serf_client *ca = NULL, *cb = NULL;
	struct bench b;

	setvbuf(stdout, NULL, _IOLBF, 0);
	memset(&b, 0, sizeof(b));
	while ((opt = getopt(argc, argv, "p:r:t:n:s:")) != -1) {
		switch (opt) {
		case 'p': profile = optarg; break;
		case 'r': rate = atof(optarg); break;
		case 't': secs = atof(optarg); break;
		case 'n': burst = (size_t)atol(optarg); break;
		case 's': size = (size_t)atol(optarg); break;
		default:
			fprintf(stderr, "usage: %s [-p lan|local] [-r RATE] [-t SECONDS] "
					"[-n BURST] [-s BYTES]\n", argv[0]);
			return 2;
		}
	}
	if (rate <= 0 || secs <= 0) {
		fprintf(stderr, "rate and seconds must be positive\n");
		return 2;
	}
	if (!agents_available()) {
		printf("no serf binary on PATH; nothing measured\n");
		return 77;
	}
	A.profile = B.profile = profile;
	if (!agents_begin() || !agent_start(&A) || !agent_start(&B)) {
		printf("cannot start serf agents\n");
		agents_end(true);
		return 1;
	}
	printf("serf: 2 agents on loopback, profile %s, payload %zu bytes, names 4-5 bytes\n",
	       profile, size);

	uv_loop_init(loop);
	uv_timer_init(loop, &tick);
	uv_timer_start(&tick, on_tick, 2, 2);
	struct serf_client_opts oa = {.on_state = on_state, .arg = &states[0]};
	struct serf_client_opts ob = {.on_state = on_state, .arg = &states[1]};
	if (serf_client_new(&ca, loop, "127.0.0.1", (unsigned)A.rpc_port, NULL, &oa) ||
	    serf_client_new(&cb, loop, "127.0.0.1", (unsigned)B.rpc_port, NULL, &ob))
		goto out;
	RUN_UNTIL(states[0] == 0 && states[1] == 0, 5000);
	if (states[0] || states[1])
		goto out;

	if (recv_init(&b.pace, (size_t)(rate * secs)) || recv_init(&b.burst, burst) ||
	    recv_init(&b.burst_local, burst))
		goto out;
	serf_stream(cb, "user:pace,user:burst", on_record_b, &b, NULL);
	serf_stream(ca, "user:burst", on_record_a, &b, NULL);
	const char *addr[] = {B.bind_addr};
	if (serf_join(ca, addr, 1, false, on_joined, NULL))
		goto out;
	RUN_UNTIL(join_result != 1 && b.started[0] && b.started[1], 5000);
	if (join_result || !wait_alive(cb, 2)) {
		printf("the agents did not form a cluster\n");
		goto out;
	}

	measure_rtt(ca);
	measure_pace(ca, &b, rate, size);
	measure_burst(ca, &b, size);
	ret = 0;
out:
	serf_client_close(ca, on_closed);
	serf_client_close(cb, on_closed);
	RUN_UNTIL(nclosed == (ca != NULL) + (cb != NULL), 3000);
	uv_close((uv_handle_t *)&tick, NULL);
	uv_run(loop, UV_RUN_DEFAULT);
	uv_loop_close(loop);
	recv_release(&b.pace);
	recv_release(&b.burst);
	recv_release(&b.burst_local);
	agents_end(ret != 0);
	return ret;
}
