/*
 * act_watch.c - watch (with its optional fetch of the current state) and
 * stop, which ends any running stream.
 */
#include "net.h"

#include "acl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct watchstate {
	struct dkv_watch w;     /* first: the callback finds us from it */
	struct dkv_stream *st;
	struct dkv__walker walk;     /* the fetch phase */
	bool fetching;
	struct qev *qhead, **qtail;
	size_t qlen;            /* events queued */
	size_t qbytes;          /* value bytes those events hold */
	bool overflow;
};

struct qev {
	struct qev *next;
	struct dkv_value *value; /* the entry's new state (len 0: deleted) */
	uint64_t tock;
	struct dkv__pstack path; /* relative to the watched entry */
	struct dkv_path tmp; /* scratch while queueing */
};

static void qev_free(struct qev *ev)
{
	dkv_value_unref(ev->value);
	dkv__pstack_release(&ev->path);
	free(ev);
}

/* A bound session sees a change only where it may read (asked now, so
 * that a changed ACL counts for the next event). */
static bool may_read(struct dkv__walker *w, struct dkv_entry *ent)
{
	struct dkv_path p;
	dkv_path_init(&p);
	dkv_entry_path(ent, NULL, &p);
	unsigned modes = dkv_session_modes(w->sess, p.enc.data, p.enc.len, false);
	dkv_path_release(&p);
	return (modes & DKV_ACL_READ) != 0;
}

static void watch_cb(struct dkv_watch *wt, const struct dkv_event *ev)
{
	struct watchstate *ws = (struct watchstate *)wt;
	struct dkv__walker *w = &ws->walk;
	const struct dkv_server_opts *o = &ws->st->conn->srv->opts;
	if (ws->overflow)
		return;
	if (w->skip_meta && ev->internal)
		return;
	/* the depth below the watched entry decides whether it is reported */
	int64_t depth = 0;
	for (struct dkv_entry *x = ev->entry; x && x != wt->entry; x = x->parent)
		depth++;
	if (depth < w->min_depth || (w->max_depth >= 0 && depth > w->max_depth))
		return;
	if (w->sess && !may_read(w, ev->entry))
		return;
	/* a watcher that does not keep up must not hold unbounded memory:
	 * queued events pin their values */
	size_t vlen = ev->value ? ev->value->len : 0;
	if (ws->qlen >= o->max_watch_queue || ws->qbytes + vlen > o->max_out_buffer / 2) {
		ws->overflow = true; /* reported by the pump, then the watch ends */
		dkv__stream_pump(ws->st);
		return;
	}
	struct qev *q = dkv_xcalloc(1, sizeof *q);
	if (!dkv_entry_path(ev->entry, wt->entry, &q->tmp)) {
		free(q);
		return;
	}
	struct dkv_path_iter it;
	const uint8_t *el;
	size_t l;
	dkv_path_iter_init(&it, q->tmp.enc.data, q->tmp.enc.len);
	while (dkv_path_iter_next(&it, &el, &l))
		dkv__pstack_push(&q->path, el, l);
	dkv_path_release(&q->tmp);
	q->value = dkv_value_ref(ev->value);
	q->tock = ev->tock;
	*ws->qtail = q;
	ws->qtail = &q->next;
	ws->qlen++;
	ws->qbytes += vlen;
	dkv__stream_pump(ws->st);
}

static bool watch_pump(struct dkv_stream *st)
{
	struct watchstate *ws = st->state;
	if (ws->fetching) {
		if (!dkv__walker_pump(st, &ws->walk))
			return false;
		if (ws->walk.failed)
			return true; /* a codec failed: the error ended it */
		ws->fetching = false;
		if (!dkv__stream_can_send(st))
			return false;
		dkv__stream_state(st, "uptodate");
	}
	if (ws->overflow) {
		struct dkv_reply r;
		dkv__stream_msg_begin(st, &r);
		dkv__reply_key(&r, "error");
		dkv_mp_cstr(r.b, "watch stopped: the client did not keep up with the changes");
		dkv__reply_key(&r, "tock");
		dkv_mp_uint(r.b, dkv_engine_next_tock(st->conn->srv->engine));
		dkv__reply_end(&r);
		return true;
	}
	while (ws->qhead && dkv__stream_can_send(st)) {
		struct qev *q = ws->qhead;
		ws->qhead = q->next;
		if (!ws->qhead)
			ws->qtail = &ws->qhead;
		ws->qlen--;
		ws->qbytes -= q->value ? q->value->len : 0;
		bool sent = dkv__walker_send(st, &ws->walk, &q->path, q->value, q->tock);
		qev_free(q);
		if (!sent)
			return true; /* a codec failed: the error ended the watch */
	}
	return false; /* a watch runs until stopped */
}

static void watch_freed(struct dkv_watch *w)
{
	free(w); /* the watch is the first member of struct watchstate */
}

static void watch_release(struct dkv_stream *st)
{
	struct watchstate *ws = st->state;
	struct dkv_engine *e = st->conn->srv->engine;
	while (ws->qhead) {
		struct qev *q = ws->qhead;
		ws->qhead = q->next;
		qev_free(q);
	}
	dkv__walker_release(e, &ws->walk);
	ws->st = NULL;
	/* a fan-out may be walking the engine's watch list right now */
	dkv_watch_stop(e, &ws->w, watch_freed);
}

static const struct dkv_stream_ops watch_ops = {watch_pump, watch_release};

int dkv__act_watch(struct dkv_req *q)
{
	struct dkv_path p;
	bool fetch;
	int rc;

	dkv_path_init(&p);
	if ((rc = dkv__req_path(q, &p)) || (rc = dkv__req_bool(q, "fetch", &fetch)))
		goto out;
	if (p.enc.len && p.enc.data[0] == 0xc0) {
		snprintf(q->err, sizeof q->err, "the None subtree is internal");
		rc = -EINVAL;
		goto out;
	}
	struct watchstate *ws = dkv_xcalloc(1, sizeof *ws);
	ws->qtail = &ws->qhead;
	ws->w.cb = watch_cb;
	dkv_watch_start(q->e, &ws->w, NULL, p.enc.data, p.enc.len);
	if ((rc = dkv__walker_init(q, &ws->walk, ws->w.entry))) {
		dkv_watch_stop(q->e, &ws->w, watch_freed);
		goto out;
	}
	ws->fetching = fetch;
	ws->walk.done = !fetch;
	ws->st = dkv__stream_new(q->c, q->m->seq, &watch_ops, ws);
	dkv__stream_state(ws->st, "start");
	dkv__stream_pump(ws->st);
out:
	dkv_path_release(&p);
	return rc;
}

int dkv__act_stop(struct dkv_req *q)
{
	int64_t task;
	int rc = dkv__req_int(q, "task", -1, &task);
	if (rc)
		return rc;
	struct dkv_stream *st = task >= 0 ? dkv__stream_find(q->c, (uint64_t)task) : NULL;
	if (st)
		dkv__stream_cancel(st);
	dkv__reply_result_bool(q, st != NULL);
	return 0;
}
