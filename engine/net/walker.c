/*
 * walker.c - walking a subtree for a stream (get_tree, watch's fetch,
 * delete_tree) and sending its entries with DistKV's depth-compressed
 * paths.  The walker pins its current entry, so a walk paused for the
 * client's acks survives changes to the tree.
 */
#include "net.h"

#include "acl.h"
#include "codec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void dkv__pstack_push(struct dkv__pstack *s, const uint8_t *e, size_t len)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 16;
		s->off = dkv_xrealloc(s->off, s->cap * sizeof *s->off);
	}
	s->off[s->n++] = s->enc.len;
	dkv_buf_append(&s->enc, e, len);
}

void dkv__pstack_pop(struct dkv__pstack *s)
{
	s->enc.len = s->off[--s->n];
}

size_t dkv__pstack_elen(const struct dkv__pstack *s, uint32_t i)
{
	return (i + 1 < s->n ? s->off[i + 1] : s->enc.len) - s->off[i];
}

void dkv__pstack_set(struct dkv__pstack *dst, const struct dkv__pstack *src)
{
	dst->enc.len = 0;
	dst->n = 0;
	for (uint32_t i = 0; i < src->n; i++)
		dkv__pstack_push(dst, src->enc.data + src->off[i], dkv__pstack_elen(src, i));
}

void dkv__pstack_release(struct dkv__pstack *s)
{
	dkv_buf_release(&s->enc);
	free(s->off);
	s->off = NULL;
	s->n = s->cap = 0;
}

/* Send one entry at path (relative), compressing the path against the
 * last one sent. */
void dkv__send_entry(struct dkv_stream *st, struct dkv__pstack *last, const struct dkv__pstack *path,
		       const struct dkv_value *value, uint64_t tock, int64_t nchain)
{
	struct dkv_reply r;
	uint32_t common = 0;
	while (common < path->n && common < last->n &&
	       dkv__pstack_elen(path, common) == dkv__pstack_elen(last, common) &&
	       !memcmp(path->enc.data + path->off[common], last->enc.data + last->off[common],
		       dkv__pstack_elen(path, common)))
		common++;
	dkv__stream_msg_begin(st, &r);
	if (value && value->len) {
		dkv__reply_key(&r, "value");
		dkv_buf_append(r.b, dkv_value_data(value), value->len);
	}
	if (nchain) {
		dkv__reply_key(&r, "chain");
		if (value)
			dkv_chain_encode(value->chain, value->nchain, (int)nchain, r.b);
		else
			dkv_mp_nil(r.b);
	}
	dkv__reply_key(&r, "tock");
	dkv_mp_uint(r.b, tock);
	dkv__reply_key(&r, "path");
	size_t from = common < path->n ? path->off[common] : path->enc.len;
	dkv_mp_array(r.b, path->n - common);
	if (path->enc.len > from)
		dkv_buf_append(r.b, path->enc.data + from, path->enc.len - from);
	dkv__reply_key(&r, "depth");
	dkv_mp_uint(r.b, common);
	dkv__reply_end(&r);
	dkv__pstack_set(last, path);
}

/* Advance the walker to its next entry, keeping path and pins right. */
struct dkv_entry *dkv__walker_step(struct dkv_engine *e, struct dkv__walker *w)
{
	struct dkv_entry *x = w->cur, *n;
	if (!x) {
		n = w->top;
	} else {
		bool descend = !w->prune && (w->max_depth < 0 || (int64_t)w->path.n < w->max_depth);
		w->prune = false;
		n = NULL;
		if (descend && x->kids) {
			n = x->kids;
			if (x == w->top && w->skip_meta && n->name[0] == 0xc0)
				n = n->next;
			if (n)
				dkv__pstack_push(&w->path, n->name, n->namelen);
		}
		while (!n && x != w->top) {
			dkv__pstack_pop(&w->path);
			if (x->next) {
				n = x->next;
				if (x->parent == w->top && w->skip_meta && n->name[0] == 0xc0)
					n = n->next;
				if (n) {
					dkv__pstack_push(&w->path, n->name, n->namelen);
					break;
				}
			}
			x = x->parent;
		}
	}
	if (n)
		dkv_entry_pin(n);
	if (w->cur)
		dkv_entry_unpin(e, w->cur);
	w->cur = n;
	return n;
}

/* Send entries while the window allows; true when the walk is complete. */
bool dkv__walker_pump(struct dkv_stream *st, struct dkv__walker *w)
{
	struct dkv_engine *e = st->conn->srv->engine;
	while (!w->done && dkv__stream_can_send(st)) {
		struct dkv_entry *x = dkv__walker_step(e, w);
		if (!x) {
			w->done = true;
			break;
		}
		if ((int64_t)w->path.n < w->min_depth)
			continue;
		if (w->sess && !dkv__walker_allows(w))
			continue;
		if (!dkv_entry_has_value(x) && !w->empty)
			continue;
		dkv__walker_send(st, w, &w->path, x->value, x->tock);
	}
	return w->done;
}

bool dkv__walker_send(struct dkv_stream *st, struct dkv__walker *w,
		      const struct dkv__pstack *path, const struct dkv_value *value, uint64_t tock)
{
	if (!w->conv || !value || !value->len) {
		dkv__send_entry(st, &w->last, path, value, tock, w->nchain);
		return true;
	}
	const uint8_t *v = dkv_value_data(value);
	size_t vlen = value->len;
	struct dkv_buf enc = {0};
	char why[300];
	w->abs.len = w->abs_top;
	dkv_buf_append(&w->abs, path->enc.data, path->enc.len);
	int rc = dkv_session_encode(w->conv, w->abs.data, w->abs.len, &v, &vlen, &enc, why,
				    sizeof why);
	if (rc) {
		struct dkv_reply r;
		dkv__stream_msg_begin(st, &r);
		dkv__reply_key(&r, "error");
		dkv_mp_cstr(r.b, why);
		dkv__reply_key(&r, "tock");
		dkv_mp_uint(r.b, dkv_engine_next_tock(st->conn->srv->engine));
		dkv__reply_end(&r);
		w->failed = w->done = true;
	} else if (enc.len) {
		struct dkv_value *nv = dkv_value_new(v, vlen, value->chain, value->nchain);
		dkv__send_entry(st, &w->last, path, nv, tock, w->nchain);
		dkv_value_unref(nv);
	} else {
		dkv__send_entry(st, &w->last, path, value, tock, w->nchain);
	}
	dkv_buf_release(&enc);
	return rc == 0;
}

void dkv__walker_release(struct dkv_engine *e, struct dkv__walker *w)
{
	if (w->cur)
		dkv_entry_unpin(e, w->cur);
	if (w->top)
		dkv_entry_unpin(e, w->top);
	w->cur = w->top = NULL;
	dkv__pstack_release(&w->path);
	dkv__pstack_release(&w->last);
	dkv_buf_release(&w->abs);
}

bool dkv__walker_allows(struct dkv__walker *w)
{
	w->abs.len = w->abs_top;
	dkv_buf_append(&w->abs, w->path.enc.data, w->path.enc.len);
	unsigned modes = dkv_session_modes(w->sess, w->abs.data, w->abs.len, false);
	if (!dkv_acl_may_descend(modes))
		w->prune = true;
	return (modes & DKV_ACL_READ) != 0;
}

int dkv__walker_init(struct dkv_req *q, struct dkv__walker *w, struct dkv_entry *top)
{
	int rc;
	memset(w, 0, sizeof *w);
	if ((rc = dkv__req_int(q, "nchain", 0, &w->nchain)) ||
	    (rc = dkv__req_int(q, "min_depth", 0, &w->min_depth)) ||
	    (rc = dkv__req_int(q, "max_depth", -1, &w->max_depth)) ||
	    (rc = dkv__req_bool(q, "empty", &w->empty)))
		return rc;
	w->top = top;
	w->skip_meta = top == dkv_engine_root(q->e);
	dkv_entry_pin(top);
	/* a bound session: filter as we go; one with a converter: encode
	 * the data's values (not the internal ones) */
	if (q->sess && (q->sess->check || q->sess->conv)) {
		struct dkv_path p;
		dkv_path_init(&p);
		dkv_entry_path(top, NULL, &p);
		if (q->sess->check)
			w->sess = q->sess;
		if (q->sess->conv && !(p.enc.len && p.enc.data[0] == 0xc0))
			w->conv = q->sess;
		dkv_buf_append(&w->abs, p.enc.data, p.enc.len);
		w->abs_top = w->abs.len;
		dkv_path_release(&p);
	}
	return 0;
}
