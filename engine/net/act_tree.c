/*
 * act_tree.c - the actions on a subtree: get_tree (and get_tree_internal)
 * and delete_tree.
 */
#include "net.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool tree_pump(struct dkv_stream *st)
{
	return dkv__walker_pump(st, st->state);
}

static void tree_release(struct dkv_stream *st)
{
	struct dkv__walker *w = st->state;
	dkv__walker_release(st->conn->srv->engine, w);
	free(w);
}

static const struct dkv_stream_ops tree_ops = {tree_pump, tree_release};

/* delete_tree: the values of a subtree go, each as a change of its own.
 * With nchain the answer is a stream with one record per deleted entry
 * (path relative to the request's, depth-compressed, chain, tock), as
 * DistKV sends it; without, {changed: count}. */
struct delrec {
	struct dkv_entry *ent;   /* pinned until deleted */
	struct dkv__pstack path;
	struct dkv_value *value; /* the tombstone */
	uint64_t tock;
};

struct delstate {
	struct delrec *recs;
	size_t n, next;
	struct dkv__pstack last;
	int64_t nchain;
};

static bool del_pump(struct dkv_stream *st)
{
	struct delstate *d = st->state;
	while (d->next < d->n && dkv__stream_can_send(st)) {
		struct delrec *r = &d->recs[d->next++];
		if (r->value) /* NULL: nothing was deleted there after all */
			dkv__send_entry(st, &d->last, &r->path, r->value, r->tock, d->nchain);
	}
	return d->next == d->n;
}

static void del_free(struct delstate *d)
{
	for (size_t i = 0; i < d->n; i++) {
		dkv__pstack_release(&d->recs[i].path);
		dkv_value_unref(d->recs[i].value);
	}
	free(d->recs);
	dkv__pstack_release(&d->last);
	free(d);
}

static void del_release(struct dkv_stream *st)
{
	del_free(st->state);
}

static const struct dkv_stream_ops del_ops = {del_pump, del_release};

int dkv__act_delete_tree(struct dkv_req *q)
{
	struct dkv_path p, sub;
	int64_t nchain;
	int rc;
	uint64_t count = 0;

	dkv_path_init(&p);
	dkv_path_init(&sub);
	if ((rc = dkv__req_path(q, &p)) || (rc = dkv__req_int(q, "nchain", 0, &nchain)))
		goto out;
	if (!p.n) {
		snprintf(q->err, sizeof q->err, "You can't delete the root node");
		rc = -EINVAL;
		goto out;
	}
	struct dkv_entry *top;
	if ((rc = dkv__req_lookup(q, &p, false, &top)))
		goto out;
	struct delstate *d = dkv_xcalloc(1, sizeof *d);
	d->nchain = nchain;
	if (top) {
		/* collect first: deleting while walking would move the walk's ground */
		struct dkv__walker w = {.top = top, .max_depth = -1};
		size_t cap = 0;
		dkv_entry_pin(top);
		for (struct dkv_entry *x; (x = dkv__walker_step(q->e, &w));) {
			if (!dkv_entry_has_value(x))
				continue;
			if (d->n == cap) {
				cap = cap ? 2 * cap : 64;
				d->recs = dkv_xrealloc(d->recs, cap * sizeof *d->recs);
			}
			struct delrec *r = &d->recs[d->n++];
			memset(r, 0, sizeof *r);
			dkv_entry_pin(x);
			r->ent = x;
			if (nchain)
				dkv__pstack_set(&r->path, &w.path);
		}
		dkv__walker_release(q->e, &w);
		for (size_t i = 0; i < d->n; i++) {
			struct delrec *r = &d->recs[i];
			struct dkv_change ch = {0};
			struct dkv_result res;
			sub.enc.len = 0;
			sub.n = 0;
			dkv_entry_path(r->ent, NULL, &sub);
			ch.path = sub.enc.data;
			ch.path_len = sub.enc.len;
			ch.src = DKV_SRC_LOCAL;
			ch.sess = q->sess;
			bool changed = !dkv_engine_apply(q->e, &ch, &res) && res.changed;
			count += changed;
			if (changed && nchain) {
				r->value = dkv_value_ref(r->ent->value);
				r->tock = r->ent->tock;
			}
			dkv_result_release(q->e, &res);
			dkv_entry_unpin(q->e, r->ent);
			r->ent = NULL;
		}
	}
	if (nchain) {
		struct dkv_stream *st = dkv__stream_new(q->c, q->m->seq, &del_ops, d);
		dkv__stream_state(st, "start");
		dkv__stream_pump(st);
		goto out;
	}
	del_free(d);
	struct dkv_reply r;
	dkv__reply_begin(&r, q->c);
	dkv__reply_key(&r, "changed");
	dkv_mp_uint(r.b, count);
	dkv__reply_seq(&r, q->m);
	dkv__reply_tock(&r, q->e, 0);
	dkv__reply_end(&r);
out:
	dkv_path_release(&sub);
	dkv_path_release(&p);
	return rc;
}

static int do_get_tree(struct dkv_req *q, bool internal)
{
	struct dkv_path p;
	int rc;

	dkv_path_init(&p);
	struct dkv_entry *top;
	if ((rc = dkv__req_path(q, &p)) || (rc = dkv__req_lookup(q, &p, internal, &top)))
		goto out;
	if (!top && internal && !p.n)
		top = dkv_engine_meta(q->e);
	struct dkv__walker *w = dkv_xcalloc(1, sizeof *w);
	if (top && (rc = dkv__walker_init(q, w, top))) {
		free(w);
		goto out;
	}
	struct dkv_stream *st = dkv__stream_new(q->c, q->m->seq, &tree_ops, w);
	dkv__stream_state(st, "start");
	if (!top) {
		char ps[200];
		struct dkv_reply r;
		dkv__describe_path(&p, ps, sizeof ps);
		dkv__stream_msg_begin(st, &r);
		dkv__reply_key(&r, "error");
		char msg[260];
		snprintf(msg, sizeof msg, "KeyError: %s", ps);
		dkv_mp_cstr(r.b, msg);
		dkv__reply_key(&r, "tock");
		dkv_mp_uint(r.b, dkv_engine_next_tock(q->e));
		dkv__reply_end(&r);
		w->done = true;
	}
	dkv__stream_pump(st);
out:
	dkv_path_release(&p);
	return rc;
}

int dkv__act_get_tree(struct dkv_req *q)
{
	return do_get_tree(q, false);
}

int dkv__act_get_tree_internal(struct dkv_req *q)
{
	return do_get_tree(q, true);
}
