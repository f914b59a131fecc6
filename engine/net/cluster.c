/*
 * cluster.c - the cluster's life cycle: starting (the Serf client, the
 * timers, whether to wait for peers), readiness at the start, what
 * `internal state` shows of the cluster, and closing, which frees
 * everything once the last handle and the Serf client are closed.
 *
 * The design is in cluster.h and doc/cluster.md.  The other parts, which
 * share cluster_int.h: peer.c (the peer table and the data links),
 * membership.c (Serf), ticker.c (announcements, gap repair, tombstone
 * expiry).  The serving side of a link is repl.c.
 *
 * Workload: one cluster per server, made at the start and closed at the
 * end; `internal state` is asked for by people and tests, not in a loop.
 */
#include "cluster_int.h"
#include "auth.h"
#include "report.h"
#include "serf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TIMER_MS 250           /* gap checks, announcements */

/* by enum peer_state (cluster_int.h) */
static const char *const state_names[] = {"idle", "connecting", "login", "syncing", "live",
					  "down"};

void dkv__cluster_say(struct dkv_cluster *cl, const char *fmt, ...)
{
	if (cl->verbose < 0)
		return;
	char msg[900];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	dkv_report(DKV_REPORT_INFO, "%s", msg);
}

uint64_t dkv__cluster_now_ms(struct dkv_cluster *cl)
{
	return uv_now(cl->loop);
}

void dkv__cluster_set_ready(struct dkv_cluster *cl, const char *why)
{
	if (cl->ready || cl->closing)
		return; /* closing: links dropped now say nothing about sync */
	cl->ready = true;
	dkv_progress_end(&cl->download);
	uv_timer_stop(&cl->serf_wait);
	dkv__cluster_say(cl, "in sync: %s (%.1f s after start); answering clients", why,
			 (dkv__cluster_now_ms(cl) - cl->started_ms) / 1000.0);
	dkv_server_set_ready(cl->srv, true);
	if (cl->on_ready)
		cl->on_ready(cl->on_ready_arg);
}

/* ---- readiness at the start ---- */

void dkv__cluster_check_initial(struct dkv_cluster *cl)
{
	if (cl->ready)
		return;
	const struct peer *got = NULL;
	unsigned pending = 0, ngot = 0;
	for (struct peer *p = cl->peers; p; p = p->next) {
		if (!p->initial)
			continue;
		if (p->initial_synced) {
			got = got ? got : p;
			ngot++;
		} else if (!p->initial_failed) {
			pending++;
		}
	}
	if (pending && (!got || cl->wait_all))
		return;
	if (!got) {
		dkv__cluster_set_ready(cl, "no live peer could be reached; serving the local state");
		return;
	}
	char why[160];
	if (ngot > 1)
		snprintf(why, sizeof why, "state downloaded from %u peers", ngot);
	else
		snprintf(why, sizeof why, "state downloaded from %.60s", got->name);
	dkv__cluster_set_ready(cl, why);
}

void dkv__cluster_start_decision(struct dkv_cluster *cl)
{
	if (cl->ready || cl->decided)
		return;
	cl->decided = true;
	unsigned n = 0;
	for (struct peer *p = cl->peers; p; p = p->next) {
		if (!dkv__peer_alive(p))
			continue;
		p->initial = true;
		n++;
	}
	if (!n) {
		/* A node that holds nothing of its own (no -l, no -i) cannot know
		 * the ticks it used before: serving now, it would use them again,
		 * and peers that saw the old changes take the new ones for those
		 * and drop them.  While Serf knows other nodes of this network
		 * (failed for now, or only thought so: a healed partition is
		 * noticed within 30 s), wait for one to come back. */
		unsigned known = 0;
		for (struct peer *p = cl->peers; p; p = p->next)
			known += p->present;
		if (known && !dkv_engine_self(cl->e)->tick) {
			dkv__cluster_say(cl, "no other node of this network is alive; this node "
					 "holds no state of its own, so it waits for one of the "
					 "%u it knows to come back (or start it with -i to begin "
					 "a new network)", known);
			return;
		}
		dkv__cluster_set_ready(cl, "no other node of this network is alive");
		return;
	}
	/* A node without state of its own learns the ticks it used before
	 * only from the peers: one that has not answered yet may hold its
	 * newest changes (made just before this node lost its state), and
	 * serving before it does would use those ticks again (found by
	 * tools/soak: a wiped node ready after one of two downloads). */
	cl->wait_all = !dkv_engine_self(cl->e)->tick;
	dkv__cluster_say(cl, "downloading the state from %u peer(s) before answering clients%s", n,
			 cl->wait_all && n > 1 ? " (all of them: this node holds no state of its own)"
					       : "");
	dkv_progress_start(&cl->download, "downloading the state", "records");
}

/* ---- life ---- */

static struct dkv_auth_spec *spec_dup(const struct dkv_auth_spec *sp)
{
	if (!sp)
		return NULL;
	struct dkv_auth_spec *d = dkv_xcalloc(1, sizeof *d);
	d->method = sp->method;
	d->name = sp->name ? dkv_xstrdup(sp->name) : NULL;
	d->password = sp->password ? dkv_xstrdup(sp->password) : NULL;
	d->prompt = sp->prompt ? dkv_xstrdup(sp->prompt) : NULL;
	return d;
}

int dkv_cluster_new(struct dkv_cluster **out, uv_loop_t *loop, struct dkv_engine *e,
		    struct dkv_server *srv, const struct dkv_cluster_opts *o, char *err,
		    size_t errlen)
{
	struct dkv_cluster *cl = dkv_xcalloc(1, sizeof *cl);
	struct dkv_buf b = {0};
	const char *self = dkv_engine_self(e)->name;

	*out = NULL;
	if (!o->root || !*o->root || strlen(o->root) > 200) {
		snprintf(err, errlen, "server.root must be a name of 1 to 200 bytes");
		free(cl);
		return -EINVAL;
	}
	cl->loop = loop;
	cl->e = e;
	cl->srv = srv;
	cl->verbose = o->verbose;
	cl->on_ready = o->on_ready;
	cl->on_ready_arg = o->arg;
	cl->root = dkv_xstrdup(o->root);
	dkv_buf_printf(&b, "dkv:%s:", o->root);
	cl->tag_prefix = dkv_buf_cstr(&b);
	b = (struct dkv_buf){0};
	dkv_buf_printf(&b, "dkv:%s:%s", o->root, self);
	cl->tag_key = dkv_buf_cstr(&b);
	b = (struct dkv_buf){0};
	dkv_buf_printf(&b, "%s.tick", o->root);
	cl->tick_event = dkv_buf_cstr(&b);
	b = (struct dkv_buf){0};
	dkv_buf_printf(&b, "%s:%u", o->serf_host, o->serf_port);
	cl->serf_where = dkv_buf_cstr(&b);
	cl->advertise = dkv_xstrdup(o->advertise);
	cl->njoin = o->njoin;
	cl->join = dkv_xcalloc(o->njoin + 1, sizeof *cl->join);
	for (size_t i = 0; i < o->njoin; i++)
		cl->join[i] = dkv_xstrdup(o->join[i]);
	cl->tombstone_ms = o->tombstone_ms ? o->tombstone_ms : 10000;
	cl->forget_ms = (uint64_t)(o->forget_s ? o->forget_s : 86400) * 1000;
	cl->auth = spec_dup(o->auth);
	snprintf(cl->serf_state, sizeof cl->serf_state, "connecting to %s", cl->serf_where);
	cl->started_ms = uv_now(loop);
	cl->tokens = ANNOUNCE_BURST;
	cl->tokens_ms = cl->started_ms;
	cl->ready = o->ready_now;
	dkv_server_set_ready(srv, cl->ready);
	dkv_server_set_cluster(srv, cl);

	uv_timer_init(loop, &cl->timer);
	uv_timer_init(loop, &cl->serf_wait);
	uv_timer_init(loop, &cl->close_guard);
	cl->timer.data = cl->serf_wait.data = cl->close_guard.data = cl;
	cl->nhandles += 3;
	uv_timer_start(&cl->timer, dkv__cluster_on_timer, TIMER_MS, TIMER_MS);
	if (!cl->ready)
		uv_timer_start(&cl->serf_wait, dkv__cluster_on_serf_wait,
			       o->serf_wait_ms ? o->serf_wait_ms : 5000, 0);

	struct serf_client_opts so = {.on_state = dkv__cluster_on_serf_state, .arg = cl,
				      .retry_max_ms = 2000};
	int rc = serf_client_new(&cl->serf, loop, o->serf_host, o->serf_port, o->serf_auth, &so);
	if (!rc)
		rc = serf_stream(cl->serf,
				 "user,member-join,member-leave,member-failed,member-update,member-reap",
				 dkv__cluster_on_serf_event, cl, NULL);
	if (rc) {
		snprintf(err, errlen, "cannot start the Serf client for %s: %s", cl->serf_where,
			 strerror(-rc));
		dkv_server_set_ready(srv, true);
		dkv_cluster_close(cl, NULL, NULL); /* frees cl from the loop */
		return rc;
	}
	*out = cl;
	return 0;
}

const char *dkv_cluster_root(const struct dkv_cluster *cl)
{
	return cl->root;
}

struct serf_client *dkv_cluster_serf(struct dkv_cluster *cl)
{
	return cl->serf && cl->serf_ok ? cl->serf : NULL;
}

void dkv_cluster_encode_info(struct dkv_cluster *cl, struct dkv_buf *out)
{
	unsigned np = 0;
	for (struct peer *p = cl->peers; p; p = p->next)
		np++;
	dkv_mp_map(out, 10); /* root ready serf advertise peers conflicts tombstones_dropped
			      * tombstones tombstones_wait_for missing */
	dkv_mp_cstr(out, "root");
	dkv_mp_cstr(out, cl->root);
	dkv_mp_cstr(out, "ready");
	dkv_mp_bool(out, cl->ready);
	dkv_mp_cstr(out, "serf");
	dkv_mp_cstr(out, cl->serf_state);
	dkv_mp_cstr(out, "advertise");
	dkv_mp_cstr(out, cl->advertise);
	dkv_mp_cstr(out, "peers");
	dkv_mp_map(out, np);
	for (struct peer *p = cl->peers; p; p = p->next) {
		dkv_mp_cstr(out, p->name);
		dkv_mp_map(out, 8);
		dkv_mp_cstr(out, "ticks"); /* what it reported: node -> highest tick known */
		uint32_t nt = 0;
		for (uint32_t i = 0; i < p->nrep; i++)
			nt += p->rep[i].tick != 0;
		dkv_mp_map(out, nt);
		for (uint32_t i = 0; i < p->nrep; i++) {
			if (!p->rep[i].tick)
				continue;
			dkv_mp_cstr(out, dkv_engine_node_at(cl->e, i)->name);
			dkv_mp_uint(out, p->rep[i].tick);
		}
		dkv_mp_cstr(out, "addr");
		if (p->addr)
			dkv_mp_cstr(out, p->addr);
		else
			dkv_mp_nil(out);
		dkv_mp_cstr(out, "state");
		dkv_mp_cstr(out, state_names[p->state]);
		dkv_mp_cstr(out, "serf");
		dkv_mp_cstr(out, p->tagged ? p->status : "gone");
		dkv_mp_cstr(out, "synced");
		dkv_mp_bool(out, p->synced);
		dkv_mp_cstr(out, "records");
		dkv_mp_uint(out, p->records);
		dkv_mp_cstr(out, "repairing");
		dkv_mp_bool(out, p->repair_seq != 0);
		dkv_mp_cstr(out, "error");
		if (p->last_error[0])
			dkv_mp_cstr(out, p->last_error);
		else
			dkv_mp_nil(out);
	}
	dkv_mp_cstr(out, "conflicts");
	dkv_mp_uint(out, cl->conflicts);
	dkv_mp_cstr(out, "tombstones_dropped");
	dkv_mp_uint(out, cl->purged);
	dkv_mp_cstr(out, "tombstones");
	dkv_mp_uint(out, dkv_engine_tombstone_count(cl->e));
	dkv_mp_cstr(out, "tombstones_wait_for");
	const struct dkv_node *unheard = dkv__cluster_unheard(cl, dkv__cluster_now_ms(cl));
	if (unheard)
		dkv_mp_cstr(out, unheard->name);
	else
		dkv_mp_nil(out);
	dkv_mp_cstr(out, "missing");
	uint32_t nn = dkv_engine_node_count(cl->e), nm = 0;
	for (uint32_t i = 0; i < nn; i++) {
		struct dkv_node *n = dkv_engine_node_at(cl->e, i);
		nm += n->tick && dkv__seen_prefix(n) < n->tick;
	}
	dkv_mp_map(out, nm);
	for (uint32_t i = 0; i < nn; i++) {
		struct dkv_node *n = dkv_engine_node_at(cl->e, i);
		if (!n->tick || dkv__seen_prefix(n) >= n->tick)
			continue;
		struct dkv_rangeset ms;
		dkv_rangeset_init(&ms);
		dkv_rangeset_missing(&n->seen, 1, n->tick + 1, &ms);
		dkv_mp_cstr(out, n->name);
		dkv_rangeset_encode(&ms, out);
		dkv_rangeset_release(&ms);
	}
}

void dkv_cluster_encode_remote_missing(struct dkv_cluster *cl, struct dkv_buf *out)
{
	uint32_t nn = dkv_engine_node_count(cl->e), nm = 0;
	struct dkv_rangeset *ms = dkv_xcalloc(nn ? nn : 1, sizeof *ms);
	for (struct peer *p = cl->peers; p; p = p->next) {
		if (!p->present)
			continue;
		for (uint32_t i = 0; i < nn && i < p->nrep; i++) {
			struct dkv_node *n = dkv_engine_node_at(cl->e, i);
			if (p->rep[i].tick && p->rep[i].prefix < n->tick)
				dkv_rangeset_add(&ms[i], p->rep[i].prefix + 1, n->tick + 1);
		}
	}
	for (uint32_t i = 0; i < nn; i++)
		nm += ms[i].n > 0;
	dkv_mp_map(out, nm);
	for (uint32_t i = 0; i < nn; i++) {
		if (ms[i].n) {
			dkv_mp_cstr(out, dkv_engine_node_at(cl->e, i)->name);
			dkv_rangeset_encode(&ms[i], out);
		}
		dkv_rangeset_release(&ms[i]);
	}
	free(ms);
}

/* ---- closing ---- */

static void maybe_freed(struct dkv_cluster *cl)
{
	if (cl->nhandles || !cl->serf_closed)
		return;
	for (struct peer *p = cl->peers, *n; p; p = n) {
		n = p->next;
		free(p->name);
		free(p->addr);
		free(p->member);
		free(p->rep);
		free(p);
	}
	for (size_t i = 0; i < cl->njoin; i++)
		free(cl->join[i]);
	free(cl->join);
	if (cl->auth) {
		dkv_auth_spec_release(cl->auth);
		free(cl->auth);
	}
	for (size_t i = 0; i < cl->nagents; i++)
		free(cl->agents[i]);
	free(cl->agents);
	free(cl->gaps);
	free(cl->root);
	free(cl->tag_key);
	free(cl->tag_prefix);
	free(cl->tick_event);
	free(cl->serf_where);
	free(cl->advertise);
	void (*cb)(void *) = cl->close_cb;
	void *arg = cl->close_arg;
	free(cl);
	if (cb)
		cb(arg);
}

static void handle_closed(uv_handle_t *h)
{
	struct dkv_cluster *cl = h->data;
	cl->nhandles--;
	maybe_freed(cl);
}

static void retry_closed(uv_handle_t *h)
{
	struct peer *p = h->data;
	struct dkv_cluster *cl = p->cl;
	cl->nhandles--;
	maybe_freed(cl);
}

static void serf_closed(struct serf_client *c, void *arg)
{
	struct dkv_cluster *cl = arg;
	(void)c;
	cl->serf_closed = true;
	if (!uv_is_closing((uv_handle_t *)&cl->close_guard))
		uv_close((uv_handle_t *)&cl->close_guard, handle_closed);
	maybe_freed(cl);
}

static void close_serf(struct dkv_cluster *cl)
{
	struct serf_client *c = cl->serf;
	if (!c)
		return;
	cl->serf = NULL;
	serf_client_close(c, serf_closed);
}

static void untagged(struct serf_client *c, int status, const char *agent_err, void *arg)
{
	(void)c;
	(void)status;
	(void)agent_err;
	close_serf(arg);
}

static void on_close_guard(uv_timer_t *h)
{
	close_serf(h->data);
}

void dkv_cluster_close(struct dkv_cluster *cl, void (*cb)(void *arg), void *arg)
{
	if (!cl) {
		if (cb)
			cb(arg);
		return;
	}
	cl->closing = true;
	cl->close_cb = cb;
	cl->close_arg = arg;
	dkv_server_set_cluster(cl->srv, NULL);
	for (struct peer *p = cl->peers; p; p = p->next) {
		if (p->link)
			dkv__link_drop(p, NULL);
		uv_close((uv_handle_t *)&p->retry, retry_closed);
	}
	uv_close((uv_handle_t *)&cl->timer, handle_closed);
	uv_close((uv_handle_t *)&cl->serf_wait, handle_closed);
	/* withdraw our tag so that peers stop trying at once; the agent gets
	 * a second to answer */
	const char *del = cl->tag_key;
	if (cl->serf && cl->serf_ok && !serf_tags(cl->serf, NULL, 0, &del, 1, untagged, cl)) {
		uv_timer_start(&cl->close_guard, on_close_guard, 1000, 0);
		return;
	}
	if (cl->serf) {
		close_serf(cl);
	} else {
		cl->serf_closed = true;
		uv_close((uv_handle_t *)&cl->close_guard, handle_closed);
	}
}
