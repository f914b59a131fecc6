/*
 * repl.c - the serving side of replication, and user messages.
 *
 * `repl` (our own action; doc/cluster.md):
 *     {action: "repl", seq, node: NAME, root: ROOT, have: {node: ranges},
 *      live: bool}
 * The stream's messages:
 *     {seq, r: <bin>}      change-log records (doc/formats.md), back to back
 *     {seq, done: <bin>}   the node-state record taken when the request
 *                          came: every tick this node had seen then is now
 *                          reflected at the requester
 *     {seq, ticks: {node: [tick, prefix]}}   (live) every half second: the
 *                          highest tick known of each node, and the end of
 *                          its gap-free prefix
 *     {seq, error: TEXT}   the stream broke (the requester fell too far
 *                          behind); it ends
 * First comes every entry whose chain holds a tick the requester has not
 * seen, then `done`; a live stream then goes on with this node's own
 * changes (only those: every node streams its own changes to every peer).
 *
 * Workload: a burst of local changes at 100k/s, each encoded once and
 * copied to each peer's pending buffer, sent once per loop round as one
 * message.  A peer that reads too slowly is cut off once it lags by
 * REPL_MAX_PENDING bytes; it reconnects and gets what it lacks from the
 * dump, which is bounded by the tree, not by the change rate.
 */
#include "cluster.h"
#include "net.h"
#include "log.h"
#include "serf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REPL_CHUNK (256u * 1024)          /* dump bytes per message */
#define REPL_VISIT 20000u                 /* entries a dump looks at per round */
#define REPL_MAX_PENDING (64u << 20)      /* live bytes a peer may lag behind */
#define REPL_REPORT_MS 500

struct dkv__repl {
	struct dkv__repl *next; /* srv->repls */
	struct dkv_stream *st;
	struct dkv_rangeset *have; /* by node idx */
	uint32_t nhave;
	struct dkv_entry *pos;     /* next entry to look at, pinned; NULL: dump done */
	bool dumping;
	bool live;
	bool overflow;
	bool report_due;
	unsigned round;            /* the last flush_all pass that pumped it */
	struct dkv_buf state;      /* node-state record from the start */
	struct dkv_buf pending;    /* live records not yet sent */
	struct dkv_path tmp;
};

struct dkv__repl_srv {
	struct dkv_server *srv;
	uv_check_t check;
	uv_timer_t timer;
	struct dkv_buf scratch;
	struct dkv_path tmp;
	bool hooked;
	unsigned nclosed; /* handles closed so far (of 2) */
	unsigned round;   /* flush_all passes, to visit each stream once */
};

static void repl_handle_closed(uv_handle_t *h)
{
	struct dkv__repl_srv *rs = h->data;
	struct dkv_server *s = rs->srv;
	if (++rs->nclosed == 2) {
		dkv_buf_release(&rs->scratch);
		dkv_path_release(&rs->tmp);
		free(rs);
	}
	s->nhandles--;
	dkv__server_maybe_done(s);
}

/* ---- the live feed ---- */

static void on_check(uv_check_t *h);

static void on_change(void *ctx, const struct dkv_event *ev)
{
	struct dkv__repl_srv *rs = ctx;
	struct dkv_server *s = rs->srv;
	if (ev->src != DKV_SRC_LOCAL || !s->repls)
		return;
	rs->scratch.len = 0;
	dkv_log_encode_entry(&rs->scratch, ev->entry, &rs->tmp);
	bool any = false;
	for (struct dkv__repl *rp = s->repls; rp; rp = rp->next) {
		if (!rp->live || rp->overflow)
			continue;
		if (rp->pending.len + rs->scratch.len > REPL_MAX_PENDING) {
			rp->overflow = true;
			dkv_buf_release(&rp->pending);
		} else {
			dkv_buf_append(&rp->pending, rs->scratch.data, rs->scratch.len);
		}
		any = true;
	}
	if (any)
		uv_check_start(&rs->check, on_check);
}

/* Pump every stream that has something to say.  A pump may close its
 * connection and so free other streams of the list too: start again from
 * the head after each one, skipping those already pumped this round. */
static void flush_all(struct dkv__repl_srv *rs, bool reports)
{
	struct dkv_server *s = rs->srv;
	unsigned round = ++rs->round;
	struct dkv__repl *rp = s->repls;
	while (rp) {
		if (rp->round == round) {
			rp = rp->next;
			continue;
		}
		rp->round = round;
		if (reports && rp->live)
			rp->report_due = true;
		if (rp->pending.len || rp->overflow || rp->report_due) {
			dkv__stream_pump(rp->st); /* may free rp and others */
			rp = s->repls;
			continue;
		}
		rp = rp->next;
	}
}

static void on_check(uv_check_t *h)
{
	struct dkv__repl_srv *rs = h->data;
	uv_check_stop(h);
	flush_all(rs, false);
}

static void on_timer(uv_timer_t *h)
{
	struct dkv__repl_srv *rs = h->data;
	flush_all(rs, true);
}

static struct dkv__repl_srv *repl_srv(struct dkv_server *s)
{
	if (s->repl)
		return s->repl;
	struct dkv__repl_srv *rs = dkv_xcalloc(1, sizeof *rs);
	rs->srv = s;
	dkv_path_init(&rs->tmp);
	uv_check_init(s->loop, &rs->check);
	uv_timer_init(s->loop, &rs->timer);
	rs->check.data = rs->timer.data = rs;
	s->nhandles += 2;
	uv_timer_start(&rs->timer, on_timer, REPL_REPORT_MS, REPL_REPORT_MS);
	uv_unref((uv_handle_t *)&rs->timer);
	dkv_engine_add_hook(s->engine, on_change, rs);
	rs->hooked = true;
	s->repl = rs;
	return rs;
}

void dkv__repl_close(struct dkv_server *s)
{
	struct dkv__repl_srv *rs = s->repl;
	if (!rs)
		return;
	s->repl = NULL;
	if (rs->hooked)
		dkv_engine_remove_hook(s->engine, on_change, rs);
	uv_close((uv_handle_t *)&rs->check, repl_handle_closed);
	uv_close((uv_handle_t *)&rs->timer, repl_handle_closed);
}

/* ---- one stream ---- */

static bool lacks(const struct dkv__repl *rp, const struct dkv_entry *x)
{
	const struct dkv_value *v = x->value;
	if (!v)
		return false;
	for (uint32_t i = 0; i < v->nchain; i++) {
		uint32_t idx = v->chain[i].node->idx;
		if (idx >= rp->nhave || !dkv_rangeset_contains(&rp->have[idx], v->chain[i].tick))
			return true;
	}
	return false;
}

static void send_bin(struct dkv_stream *st, const char *key, const uint8_t *p, size_t len)
{
	struct dkv_reply r;
	dkv__stream_msg_begin(st, &r);
	dkv__reply_key(&r, key);
	dkv_mp_bin(r.b, p, len);
	dkv__reply_end(&r);
}

/* Look at the next stretch of the tree; send what the peer lacks.
 * NEEDSWORK: a repair (a one-shot repl) also walks the whole tree; an
 * index by (node, tick) would send a small gap without the walk. */
static void dump_step(struct dkv__repl *rp)
{
	struct dkv_server *s = rp->st->conn->srv;
	struct dkv_engine *e = s->engine;
	struct dkv_entry *root = dkv_engine_root(e);
	struct dkv_buf chunk = {0};
	struct dkv_entry *x = rp->pos;
	unsigned visited = 0;

	while (x && chunk.len < REPL_CHUNK && visited < REPL_VISIT) {
		if (lacks(rp, x))
			dkv_log_encode_entry(&chunk, x, &rp->tmp);
		x = dkv_entry_walk_next(x, root, true);
		visited++;
	}
	if (x)
		dkv_entry_pin(x);
	dkv_entry_unpin(e, rp->pos);
	rp->pos = x;
	if (chunk.len)
		send_bin(rp->st, "r", chunk.data, chunk.len);
	dkv_buf_release(&chunk);
	if (!x) {
		send_bin(rp->st, "done", rp->state.data, rp->state.len);
		dkv_buf_release(&rp->state);
		rp->dumping = false;
		rp->report_due = rp->live;
	}
}

static void send_report(struct dkv__repl *rp)
{
	struct dkv_engine *e = rp->st->conn->srv->engine;
	struct dkv_logger *lg = rp->st->conn->srv->opts.logger;
	struct dkv_reply r;
	uint32_t nn = dkv_engine_node_count(e);
	dkv__stream_msg_begin(rp->st, &r);
	dkv__reply_key(&r, "ticks");
	dkv_mp_map(r.b, nn);
	for (uint32_t i = 0; i < nn; i++) {
		struct dkv_node *n = dkv_engine_node_at(e, i);
		dkv_mp_cstr(r.b, n->name);
		dkv_mp_array(r.b, 2);
		dkv_mp_uint(r.b, n->tick);
		dkv_mp_uint(r.b, dkv_logger_reportable(lg, i, dkv_rangeset_prefix(&n->seen)));
	}
	dkv__reply_key(&r, "tock");
	dkv_mp_uint(r.b, dkv_engine_tock(e));
	dkv__reply_end(&r);
	rp->report_due = false;
}

static bool repl_pump(struct dkv_stream *st)
{
	struct dkv__repl *rp = st->state;
	while (dkv__stream_can_send(st)) {
		if (rp->dumping) {
			dump_step(rp);
			continue;
		}
		if (rp->overflow) {
			struct dkv_reply r;
			dkv__stream_msg_begin(st, &r);
			dkv__reply_key(&r, "error");
			dkv_mp_cstr(r.b, "replication stream overflow: the peer fell too far behind");
			dkv__reply_end(&r);
			return true;
		}
		if (rp->pending.len) {
			send_bin(st, "r", rp->pending.data, rp->pending.len);
			if (rp->pending.cap > 4 * REPL_CHUNK)
				dkv_buf_release(&rp->pending);
			rp->pending.len = 0;
			continue;
		}
		if (rp->report_due) {
			send_report(rp);
			continue;
		}
		return !rp->live;
	}
	return false;
}

static void repl_release(struct dkv_stream *st)
{
	struct dkv__repl *rp = st->state;
	struct dkv_server *s = st->conn->srv;
	struct dkv__repl **pp = &s->repls;
	while (*pp && *pp != rp)
		pp = &(*pp)->next;
	if (*pp)
		*pp = rp->next;
	if (rp->pos)
		dkv_entry_unpin(s->engine, rp->pos);
	for (uint32_t i = 0; i < rp->nhave; i++)
		dkv_rangeset_release(&rp->have[i]);
	free(rp->have);
	dkv_buf_release(&rp->state);
	dkv_buf_release(&rp->pending);
	dkv_path_release(&rp->tmp);
	free(rp);
}

static const struct dkv_stream_ops repl_ops = {repl_pump, repl_release};

static int field_str(const struct dkv_msg *m, const char *key, const uint8_t **p, size_t *len)
{
	const struct dkv_field *f = dkv__msg_get(m, key);
	struct dkv_mp_reader r;
	struct dkv_mp_item it;
	if (!f)
		return -ENOENT;
	dkv_mp_reader_init(&r, f->val, f->vallen);
	if (dkv_mp_read(&r, &it) || it.type != DKV_MP_STR)
		return -EINVAL;
	*p = it.v.s.p;
	*len = it.v.s.len;
	return 0;
}

static int decode_have(struct dkv__repl *rp, struct dkv_engine *e, const struct dkv_field *f)
{
	struct dkv_mp_reader r;
	struct dkv_mp_item it, k;
	dkv_mp_reader_init(&r, f->val, f->vallen);
	if (dkv_mp_read(&r, &it) || it.type != DKV_MP_MAP)
		return -EINVAL;
	for (uint32_t i = 0; i < it.v.n; i++) {
		if (dkv_mp_read(&r, &k) || k.type != DKV_MP_STR || !k.v.s.len || k.v.s.len > 1024 ||
		    memchr(k.v.s.p, 0, k.v.s.len))
			return -EINVAL;
		struct dkv_node *n = dkv_engine_node(e, (const char *)k.v.s.p, k.v.s.len);
		if (n->idx >= rp->nhave) {
			uint32_t nn = dkv_engine_node_count(e);
			rp->have = dkv_xrealloc(rp->have, nn * sizeof *rp->have);
			for (uint32_t j = rp->nhave; j < nn; j++)
				dkv_rangeset_init(&rp->have[j]);
			rp->nhave = nn;
		}
		if (dkv_rangeset_decode(&rp->have[n->idx], &r))
			return -EINVAL;
	}
	return 0;
}

int dkv__act_repl(struct dkv_req *q)
{
	struct dkv_conn *c = q->c;
	const struct dkv_msg *m = q->m;
	char *err = q->err;
	size_t errlen = sizeof q->err;
	struct dkv_server *s = c->srv;
	struct dkv_engine *e = s->engine;
	const uint8_t *node, *root;
	size_t nodelen, rootlen;

	if (!s->ready) {
		/* what we have may be far from complete: the asker had better
		 * wait for a peer that is in sync (two nodes starting together
		 * each give up on the other and serve what they have) */
		snprintf(err, errlen, "repl: not in sync yet");
		return -EAGAIN;
	}
	if (field_str(m, "node", &node, &nodelen) || !nodelen) {
		snprintf(err, errlen, "repl: field 'node' must be a node name");
		return -EINVAL;
	}
	const char *self = dkv_engine_self(e)->name;
	if (strlen(self) == nodelen && !memcmp(self, node, nodelen)) {
		snprintf(err, errlen, "repl: node '%s' is this node itself: two nodes share a name",
			 self);
		return -EINVAL;
	}
	if (s->cluster && !field_str(m, "root", &root, &rootlen)) {
		const char *mine = dkv_cluster_root(s->cluster);
		if (strlen(mine) != rootlen || memcmp(mine, root, rootlen)) {
			snprintf(err, errlen, "repl: this node belongs to the network '%s', not '%.*s'",
				 mine, (int)(rootlen > 200 ? 200 : rootlen), (const char *)root);
			return -EINVAL;
		}
	}
	struct dkv__repl *rp = dkv_xcalloc(1, sizeof *rp);
	dkv_path_init(&rp->tmp);
	const struct dkv_field *hf = dkv__msg_get(m, "have");
	if (hf && decode_have(rp, e, hf)) {
		for (uint32_t i = 0; i < rp->nhave; i++)
			dkv_rangeset_release(&rp->have[i]);
		free(rp->have);
		dkv_path_release(&rp->tmp);
		free(rp);
		snprintf(err, errlen, "repl: field 'have' must map node names to tick ranges");
		return -EINVAL;
	}
	const struct dkv_field *lf = dkv__msg_get(m, "live");
	if (lf && lf->vallen == 1 && lf->val[0] == 0xc3)
		rp->live = true;
	struct dkv__repl_srv *rs = repl_srv(s);
	(void)rs;
	dkv_log_encode_state(&rp->state, e);
	rp->pos = dkv_engine_root(e);
	dkv_entry_pin(rp->pos);
	rp->dumping = true;
	rp->st = dkv__stream_new(c, m->seq, &repl_ops, rp);
	rp->next = s->repls;
	s->repls = rp;
	dkv__stream_pump(rp->st);
	return 0;
}

/* ---- user messages through Serf ---- */

/* The Serf event name for a topic: its elements joined by dots; a
 * first element starting with ':' is put below the network's root. */
static int topic_name(struct dkv_server *s, const struct dkv_msg *m, struct dkv_buf *name,
		      char *err, size_t errlen)
{
	const struct dkv_field *f = dkv__msg_get(m, "topic");
	struct dkv_mp_reader r;
	struct dkv_mp_item it, el;
	if (!f) {
		snprintf(err, errlen, "field 'topic' is required");
		return -EINVAL;
	}
	dkv_mp_reader_init(&r, f->val, f->vallen);
	if (dkv_mp_read(&r, &it))
		goto bad;
	uint32_t n = 1;
	if (it.type == DKV_MP_ARRAY) {
		n = it.v.n;
		if (!n)
			goto bad;
		if (dkv_mp_read(&r, &el))
			goto bad;
	} else {
		el = it;
	}
	for (uint32_t i = 0; i < n; i++) {
		if (i && dkv_mp_read(&r, &el))
			goto bad;
		if (el.type != DKV_MP_STR || !el.v.s.len || memchr(el.v.s.p, 0, el.v.s.len))
			goto bad;
		if (i)
			dkv_buf_putc(name, '.');
		else if (el.v.s.p[0] == ':' && s->cluster)
			dkv_buf_printf(name, "%s.", dkv_cluster_root(s->cluster));
		dkv_buf_append(name, el.v.s.p, el.v.s.len);
	}
	if (name->len > 256) {
		snprintf(err, errlen, "topic too long");
		return -EINVAL;
	}
	dkv_buf_putc(name, 0);
	return 0;
bad:
	snprintf(err, errlen, "field 'topic' must be a non-empty string or list of strings");
	return -EINVAL;
}

static struct serf_client *need_serf(struct dkv_server *s, char *err, size_t errlen)
{
	struct serf_client *sc = s->cluster ? dkv_cluster_serf(s->cluster) : NULL;
	if (!sc)
		snprintf(err, errlen, s->cluster ? "not connected to the Serf agent"
						 : "this node runs without a cluster (server.cluster is false)");
	return sc;
}

/* A msg_send waiting for the agent's answer: a stream without output
 * (so that it goes with its connection) and the Serf callback's context;
 * whichever of the two ends last frees it. */
struct msgsend {
	struct dkv_stream *st; /* NULL once the client's stream is gone */
	bool agent_done;
};

static bool send_pump(struct dkv_stream *st)
{
	(void)st;
	return false;
}

static void send_release(struct dkv_stream *st)
{
	struct msgsend *ms = st->state;
	ms->st = NULL;
	if (ms->agent_done)
		free(ms);
}

static const struct dkv_stream_ops send_ops = {send_pump, send_release};

static void sent(struct serf_client *sc, int status, const char *agent_err, void *arg)
{
	struct msgsend *ms = arg;
	(void)sc;
	ms->agent_done = true;
	struct dkv_stream *st = ms->st;
	if (!st) {
		free(ms);
		return;
	}
	char text[300];
	if (status)
		snprintf(text, sizeof text, "the Serf agent did not take the message: %s",
			 agent_err ? agent_err : strerror(-status));
	dkv__stream_answer(st, status ? text : NULL); /* frees ms through send_release */
}

int dkv__act_msg_send(struct dkv_req *q)
{
	struct dkv_conn *c = q->c;
	const struct dkv_msg *m = q->m;
	char *err = q->err;
	size_t errlen = sizeof q->err;
	struct dkv_buf name = {0};
	struct serf_client *sc = need_serf(c->srv, err, errlen);
	int rc;
	if (!sc)
		return -ENOTCONN;
	if ((rc = topic_name(c->srv, m, &name, err, errlen))) {
		dkv_buf_release(&name);
		return rc;
	}
	const struct dkv_field *raw = dkv__msg_get(m, "raw");
	const struct dkv_field *data = dkv__msg_get(m, "data");
	const uint8_t *p = NULL;
	size_t len = 0;
	if (raw) {
		struct dkv_mp_reader r;
		struct dkv_mp_item it;
		dkv_mp_reader_init(&r, raw->val, raw->vallen);
		if (dkv_mp_read(&r, &it) || (it.type != DKV_MP_BIN && it.type != DKV_MP_STR)) {
			dkv_buf_release(&name);
			snprintf(err, errlen, "field 'raw' must be bytes");
			return -EINVAL;
		}
		p = it.v.s.p;
		len = it.v.s.len;
	} else if (data) {
		p = data->val;
		len = data->vallen;
	} else {
		p = (const uint8_t *)"\xc0";
		len = 1;
	}
	struct msgsend *ms = dkv_xcalloc(1, sizeof *ms);
	rc = serf_event(sc, (const char *)name.data, p, len, false, sent, ms);
	dkv_buf_release(&name);
	if (rc) {
		free(ms);
		snprintf(err, errlen, "cannot send the message: %s", strerror(-rc));
		return rc;
	}
	ms->st = dkv__stream_new(c, m->seq, &send_ops, ms);
	return 0;
}

/* A monitor: a Serf stream for one event name feeding a client stream. */
struct msgmon {
	struct dkv_stream *st;     /* NULL once the client stream is gone */
	struct serf_stream *ss;    /* NULL once the Serf stream is gone */
	struct dkv_buf topic;      /* the name, NUL-terminated */
	bool raw;
	struct dkv_buf queue;      /* messages waiting for the window */
	size_t nqueued;
};

static void mon_send(struct msgmon *mm, const uint8_t *p, size_t len)
{
	struct dkv_reply r;
	dkv__stream_msg_begin(mm->st, &r);
	dkv__reply_key(&r, "topic");
	const char *t = (const char *)mm->topic.data;
	uint32_t n = 1;
	for (const char *x = t; *x; x++)
		n += *x == '.';
	dkv_mp_array(r.b, n);
	for (const char *x = t;;) {
		const char *d = strchr(x, '.');
		size_t l = d ? (size_t)(d - x) : strlen(x);
		dkv_mp_str(r.b, x, l);
		if (!d)
			break;
		x = d + 1;
	}
	struct dkv_mp_reader mr;
	dkv_mp_reader_init(&mr, p, len);
	bool one_item = len && !dkv_mp_skip(&mr) && !dkv_mp_left(&mr);
	if (mm->raw || !one_item) {
		dkv__reply_key(&r, "raw");
		dkv_mp_bin(r.b, p, len);
	} else {
		dkv__reply_key(&r, "data");
		dkv_buf_append(r.b, p, len);
	}
	dkv__reply_end(&r);
}

static void mon_event(struct serf_client *sc, struct serf_stream *s, int status,
		      const struct serf_record *rec, void *arg)
{
	struct msgmon *mm = arg;
	(void)sc;
	if (!rec) {
		mm->ss = NULL;
		if (!mm->st) {
			dkv_buf_release(&mm->topic);
			dkv_buf_release(&mm->queue);
			free(mm);
		} else {
			dkv__stream_pump(mm->st);
		}
		return;
	}
	(void)s;
	(void)status;
	if (rec->type != SERF_RECORD_USER || !mm->st)
		return;
	if (mm->nqueued >= 10000)
		return; /* a monitor that does not read loses messages, like Serf */
	/* queue as [len32][bytes]; the pump sends them */
	uint32_t l = (uint32_t)rec->payload_len;
	dkv_buf_append(&mm->queue, &l, sizeof l);
	dkv_buf_append(&mm->queue, rec->payload, rec->payload_len);
	mm->nqueued++;
	dkv__stream_pump(mm->st);
}

static bool mon_pump(struct dkv_stream *st)
{
	struct msgmon *mm = st->state;
	size_t off = 0;
	while (off < mm->queue.len && dkv__stream_can_send(st)) {
		uint32_t l;
		memcpy(&l, mm->queue.data + off, sizeof l);
		mon_send(mm, mm->queue.data + off + sizeof l, l);
		off += sizeof l + l;
		mm->nqueued--;
	}
	dkv_buf_consume(&mm->queue, off);
	return mm->ss == NULL && !mm->queue.len;
}

static void mon_release(struct dkv_stream *st)
{
	struct msgmon *mm = st->state;
	mm->st = NULL;
	if (mm->ss) {
		serf_stream_stop(mm->ss); /* mon_event frees mm */
		return;
	}
	dkv_buf_release(&mm->topic);
	dkv_buf_release(&mm->queue);
	free(mm);
}

static const struct dkv_stream_ops mon_ops = {mon_pump, mon_release};

int dkv__act_msg_monitor(struct dkv_req *q)
{
	struct dkv_conn *c = q->c;
	const struct dkv_msg *m = q->m;
	char *err = q->err;
	size_t errlen = sizeof q->err;
	struct serf_client *sc = need_serf(c->srv, err, errlen);
	if (!sc)
		return -ENOTCONN;
	struct msgmon *mm = dkv_xcalloc(1, sizeof *mm);
	int rc = topic_name(c->srv, m, &mm->topic, err, errlen);
	if (rc) {
		dkv_buf_release(&mm->topic);
		free(mm);
		return rc;
	}
	const struct dkv_field *raw = dkv__msg_get(m, "raw");
	mm->raw = raw && raw->vallen == 1 && raw->val[0] == 0xc3;
	struct dkv_buf filter = {0};
	dkv_buf_printf(&filter, "user:%s", (const char *)mm->topic.data);
	dkv_buf_putc(&filter, 0);
	rc = serf_stream(sc, (const char *)filter.data, mon_event, mm, &mm->ss);
	dkv_buf_release(&filter);
	if (rc) {
		dkv_buf_release(&mm->topic);
		free(mm);
		snprintf(err, errlen, "cannot monitor: %s", strerror(-rc));
		return rc;
	}
	mm->st = dkv__stream_new(c, m->seq, &mon_ops, mm);
	dkv__stream_state(mm->st, "start");
	dkv__conn_flush(c);
	return 0;
}
