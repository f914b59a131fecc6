/*
 * proto.c - the client protocol's actions: decode a request's fields,
 * call the engine, encode the reply.  Field names, defaults and reply
 * shapes follow DistKV 0.57.4 (see doc/protocol.md).
 *
 * Multi-reply actions (get_tree, watch) are streams: a resumable walk
 * over the tree that holds a pin on its current entry, so it survives
 * changes made while it waits for the client's acks.
 */
#include "cluster.h"
#include "net.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DKV_VERSION_MAJOR 0
#define DKV_VERSION_MINOR 57
#define DKV_VERSION_PATCH 4

/* ---- field access ---- */

struct req {
	struct dkv_conn *c;
	const struct dkv_msg *m;
	struct dkv_engine *e;
	char err[512]; /* set by a failing field getter */
};

static int bad_field(struct req *q, const char *key, const char *want)
{
	snprintf(q->err, sizeof q->err, "field '%s' must be %s", key, want);
	return -EINVAL;
}

/* An integer (or a bool, which old clients send for nchain). */
static int get_int(struct req *q, const char *key, int64_t dflt, int64_t *out)
{
	const struct dkv_field *f = dkv__msg_get(q->m, key);
	struct dkv_mp_reader r;
	struct dkv_mp_item it;
	*out = dflt;
	if (!f)
		return 0;
	dkv_mp_reader_init(&r, f->val, f->vallen);
	if (dkv_mp_read(&r, &it))
		return bad_field(q, key, "an integer");
	switch (it.type) {
	case DKV_MP_NIL:
		return 0;
	case DKV_MP_BOOL:
		*out = it.v.b;
		return 0;
	case DKV_MP_UINT:
		*out = it.v.u > INT64_MAX ? INT64_MAX : (int64_t)it.v.u;
		return 0;
	case DKV_MP_INT:
		*out = it.v.i;
		return 0;
	default:
		return bad_field(q, key, "an integer");
	}
}

static int get_bool(struct req *q, const char *key, bool *out)
{
	int64_t v;
	int rc = get_int(q, key, 0, &v);
	*out = v != 0;
	return rc;
}

/* The request's path.  Every action that takes a path needs one (an
 * empty one for the root), so that a client that forgot the field cannot
 * read or overwrite the root by accident. */
static int get_path(struct req *q, struct dkv_path *p)
{
	const struct dkv_field *f = dkv__msg_get(q->m, "path");
	struct dkv_mp_reader r;
	if (!f || (f->vallen == 1 && f->val[0] == 0xc0))
		return bad_field(q, "path", "given: a path (ext type 3 or an array; empty for the root)");
	dkv_mp_reader_init(&r, f->val, f->vallen);
	int rc = dkv_path_decode(p, &r);
	if (rc == -E2BIG) {
		snprintf(q->err, sizeof q->err, "path too long (limit %d elements)",
			 DKV_PATH_MAX_ELEMS);
		return rc;
	}
	if (rc)
		return bad_field(q, "path", "a path (ext type 3 or an array of elements)");
	return 0;
}

static void describe_path(const struct dkv_path *p, char *buf, size_t len)
{
	struct dkv_buf b = {0};
	dkv_path_describe(&b, p->enc.data, p->enc.len);
	snprintf(buf, len, "%s", b.len > 200 ? "(a long path)" : dkv_buf_cstr(&b));
	dkv_buf_release(&b);
}

/* ---- reply helpers ---- */

static void reply_seq(struct dkv_reply *r, const struct dkv_msg *m)
{
	dkv__reply_key(r, "seq");
	dkv_mp_uint(r->b, m->seq);
}

static void reply_tock(struct dkv_reply *r, struct dkv_engine *e, uint64_t tock)
{
	dkv__reply_key(r, "tock");
	dkv_mp_uint(r->b, tock ? tock : dkv_engine_next_tock(e));
}

/* A reply with just a result. */
static void reply_result_bool(struct req *q, bool v)
{
	struct dkv_reply r;
	dkv__reply_begin(&r, q->c);
	dkv__reply_key(&r, "result");
	dkv_mp_bool(r.b, v);
	reply_seq(&r, q->m);
	reply_tock(&r, q->e, 0);
	dkv__reply_end(&r);
}

/* ---- access: the session (allow-all until auth arrives) ---- */

enum { ACL_READ = 1, ACL_WRITE = 2, ACL_ENUM = 4, ACL_DELETE = 8, ACL_INTERNAL = 16 };

static int session_check(struct req *q, unsigned need)
{
	/* NEEDSWORK: users and ACLs arrive with the auth issue; until then
	 * every connection may do everything. */
	(void)q;
	(void)need;
	return 0;
}

/* ---- single-reply actions ---- */

static struct dkv_entry *lookup(struct req *q, const struct dkv_path *p, bool internal)
{
	struct dkv_entry *base = NULL;
	if (internal)
		base = dkv_engine_meta(q->e);
	else if (p->enc.len && p->enc.data[0] == 0xc0)
		return NULL; /* None is reachable only through *_internal */
	return dkv_entry_lookup(q->e, base, p->enc.data, p->enc.len, false);
}

static int do_get_value(struct req *q, bool internal)
{
	struct dkv_path p;
	int64_t nchain;
	int rc;

	dkv_path_init(&p);
	if ((rc = get_path(q, &p)) || (rc = get_int(q, "nchain", 0, &nchain)))
		goto out;
	struct dkv_entry *ent = lookup(q, &p, internal);
	struct dkv_reply r;
	dkv__reply_begin(&r, q->c);
	bool has = ent && dkv_entry_has_value(ent);
	if (has) {
		dkv__reply_key(&r, "value");
		dkv_buf_append(r.b, dkv_value_data(ent->value), ent->value->len);
	}
	if (nchain) {
		dkv__reply_key(&r, "chain");
		if (has)
			dkv_chain_encode(ent->value->chain, ent->value->nchain, (int)nchain, r.b);
		else
			dkv_mp_nil(r.b);
	}
	reply_tock(&r, q->e, has ? ent->tock : 0);
	reply_seq(&r, q->m);
	dkv__reply_end(&r);
out:
	dkv_path_release(&p);
	return rc;
}

static int act_get_value(struct req *q)
{
	return do_get_value(q, false);
}

static int act_get_internal(struct req *q)
{
	return do_get_value(q, true);
}

/* Parse the 'chain' precondition: nil = must be new; a map = its newest link. */
static int get_precond(struct req *q, struct dkv_change *ch)
{
	const struct dkv_field *f = dkv__msg_get(q->m, "chain");
	struct dkv_mp_reader r;
	struct dkv_mp_item it, k, v;
	if (!f)
		return 0;
	dkv_mp_reader_init(&r, f->val, f->vallen);
	if (dkv_mp_read(&r, &it))
		return bad_field(q, "chain", "a chain or None");
	if (it.type == DKV_MP_NIL) {
		ch->pre = DKV_PRE_NEW;
		return 0;
	}
	if (it.type != DKV_MP_MAP)
		return bad_field(q, "chain", "a chain or None");
	bool have_node = false, have_tick = false;
	for (uint32_t i = 0; i < it.v.n; i++) {
		if (dkv_mp_read(&r, &k))
			return bad_field(q, "chain", "a chain or None");
		if (dkv_mp_streq(&k, "node") || dkv_mp_streq(&k, "tick")) {
			if (dkv_mp_read(&r, &v))
				return bad_field(q, "chain", "a chain or None");
			if (dkv_mp_streq(&k, "node") && v.type == DKV_MP_STR) {
				ch->pre_node = (const char *)v.v.s.p;
				ch->pre_node_len = v.v.s.len;
				have_node = true;
			} else if (dkv_mp_streq(&k, "tick") && v.type == DKV_MP_UINT) {
				ch->pre_tick = v.v.u;
				have_tick = true;
			}
		} else if (dkv_mp_skip(&r)) {
			return bad_field(q, "chain", "a chain or None");
		}
	}
	if (!have_node || !have_tick)
		return bad_field(q, "chain", "a map with 'node' (a string) and 'tick' (an integer)");
	ch->pre = DKV_PRE_CHAIN;
	return 0;
}

static int do_set(struct req *q, bool internal, bool is_delete)
{
	struct dkv_path p;
	struct dkv_buf val = {0};
	struct dkv_change ch = {0};
	struct dkv_result res = {0};
	int64_t nchain;
	bool idem;
	int rc;

	dkv_path_init(&p);
	if ((rc = get_path(q, &p)) || (rc = get_int(q, "nchain", 1, &nchain)) ||
	    (rc = get_bool(q, "idem", &idem)) || (rc = get_precond(q, &ch)))
		goto out;
	const struct dkv_field *vf = dkv__msg_get(q->m, "value");
	if (is_delete && vf) {
		snprintf(q->err, sizeof q->err, "A deleted entry can't have a value");
		rc = -EINVAL;
		goto out;
	}
	if (!is_delete) {
		struct dkv_mp_reader r;
		if (!vf) {
			snprintf(q->err, sizeof q->err,
				 "Call 'delete_value' if you want to clear the value");
			rc = -EINVAL;
			goto out;
		}
		dkv_mp_reader_init(&r, vf->val, vf->vallen);
		if (dkv_mp_canon(&val, &r)) {
			rc = bad_field(q, "value", "a msgpack value nested at most 64 deep");
			goto out;
		}
	}
	if (!internal && p.enc.len && p.enc.data[0] == 0xc0) {
		snprintf(q->err, sizeof q->err, "the None subtree is internal: use set_internal");
		rc = -EINVAL;
		goto out;
	}

	struct dkv_entry *ent = lookup(q, &p, internal);
	const struct dkv_field *pf = dkv__msg_get(q->m, "prev");
	if (pf) { /* value precondition */
		struct dkv_buf want = {0};
		struct dkv_mp_reader r;
		dkv_mp_reader_init(&r, pf->val, pf->vallen);
		bool same = !dkv_mp_canon(&want, &r) && ent && dkv_entry_has_value(ent) &&
			    ent->value->len == want.len &&
			    !memcmp(dkv_value_data(ent->value), want.data, want.len);
		dkv_buf_release(&want);
		if (!same) {
			char ps[200];
			describe_path(&p, ps, sizeof ps);
			snprintf(q->err, sizeof q->err, "Data is not the expected previous value at %s", ps);
			rc = -ESTALE;
			goto out;
		}
	}
	if (idem && ent && dkv_entry_has_value(ent) && !is_delete && ent->value->len == val.len &&
	    !memcmp(dkv_value_data(ent->value), val.data, val.len)) {
		struct dkv_reply r;
		dkv__reply_begin(&r, q->c);
		dkv__reply_key(&r, "changed");
		dkv_mp_bool(r.b, false);
		if (nchain) {
			dkv__reply_key(&r, "chain");
			dkv_chain_encode(ent->value->chain, ent->value->nchain, (int)nchain, r.b);
		}
		reply_tock(&r, q->e, ent->tock);
		reply_seq(&r, q->m);
		dkv__reply_end(&r);
		goto out;
	}

	ch.path = p.enc.data;
	ch.path_len = p.enc.len;
	ch.internal = internal;
	ch.value = is_delete ? NULL : val.data;
	ch.value_len = val.len;
	ch.src = DKV_SRC_LOCAL;
	rc = dkv_engine_apply(q->e, &ch, &res);
	if (rc) {
		char ps[200];
		struct dkv_buf cd = {0};
		describe_path(&p, ps, sizeof ps);
		if (rc == -EEXIST) {
			snprintf(q->err, sizeof q->err, "Entry already exists at %s", ps);
		} else if (rc == -ENOENT) {
			snprintf(q->err, sizeof q->err, "Entry is new at %s", ps);
		} else if (rc == -ESTALE) {
			if (res.entry && res.entry->value)
				dkv_chain_describe(res.entry->value->chain, res.entry->value->nchain, &cd);
			else
				dkv_chain_describe(NULL, 0, &cd);
			snprintf(q->err, sizeof q->err, "Chain is %s not %.*s@%llu for %s",
				 dkv_buf_cstr(&cd), (int)ch.pre_node_len, ch.pre_node,
				 (unsigned long long)ch.pre_tick, ps);
		} else {
			snprintf(q->err, sizeof q->err, "cannot change %s: %s", ps, strerror(-rc));
		}
		dkv_buf_release(&cd);
		goto out;
	}
	struct dkv_reply r;
	dkv__reply_begin(&r, q->c);
	dkv__reply_key(&r, "changed");
	dkv_mp_bool(r.b, res.changed);
	if (res.prev && res.prev->len && ch.pre == DKV_PRE_NONE && !pf) {
		dkv__reply_key(&r, "prev");
		dkv_buf_append(r.b, dkv_value_data(res.prev), res.prev->len);
	}
	if (nchain) {
		dkv__reply_key(&r, "chain");
		if (res.entry && res.changed)
			dkv_chain_encode(res.entry->value->chain, res.entry->value->nchain,
					 (int)nchain, r.b);
		else
			dkv_mp_nil(r.b);
	}
	reply_tock(&r, q->e, res.entry && res.changed ? res.entry->tock : 0);
	reply_seq(&r, q->m);
	dkv__reply_end(&r);
out:
	dkv_result_release(q->e, &res);
	dkv_buf_release(&val);
	dkv_path_release(&p);
	return rc;
}

static int act_set_value(struct req *q)
{
	return do_set(q, false, false);
}

static int act_delete_value(struct req *q)
{
	return do_set(q, false, true);
}

static int act_set_internal(struct req *q)
{
	return do_set(q, true, false);
}

static int act_delete_internal(struct req *q)
{
	return do_set(q, true, true);
}

/* Whether enum lists a child.  empty adds the entries without a value,
 * but not one that exists only because something holds it (the kernel's
 * lookup of a directory just removed by rmdir, until it forgets it). */
static bool enum_shows(const struct dkv_entry *k, bool empty)
{
	if (dkv_entry_has_value(k))
		return true;
	return empty && (k->value || k->kids || (k->flags & (DKV_ENTRY_KEEP | DKV_ENTRY_WATCHED)));
}

static int do_enum(struct req *q, bool internal)
{
	struct dkv_path p;
	bool empty, with_data;
	int rc;

	dkv_path_init(&p);
	if ((rc = get_path(q, &p)) || (rc = get_bool(q, "empty", &empty)) ||
	    (rc = get_bool(q, "with_data", &with_data)))
		goto out;
	struct dkv_entry *ent = lookup(q, &p, internal);
	struct dkv_entry *root = dkv_engine_root(q->e);
	uint32_t n = 0;
	for (struct dkv_entry *k = ent ? ent->kids : NULL; k; k = k->next)
		if (enum_shows(k, empty) && !(ent == root && k->name[0] == 0xc0))
			n++;
	struct dkv_reply r;
	dkv__reply_begin(&r, q->c);
	dkv__reply_key(&r, "result");
	if (with_data)
		dkv_mp_map(r.b, n);
	else
		dkv_mp_array(r.b, n);
	for (struct dkv_entry *k = ent ? ent->kids : NULL; k; k = k->next) {
		if (!enum_shows(k, empty) || (ent == root && k->name[0] == 0xc0))
			continue;
		dkv_buf_append(r.b, k->name, k->namelen);
		if (with_data) {
			if (dkv_entry_has_value(k))
				dkv_buf_append(r.b, dkv_value_data(k->value), k->value->len);
			else
				dkv_mp_nil(r.b);
		}
	}
	reply_seq(&r, q->m);
	reply_tock(&r, q->e, 0);
	dkv__reply_end(&r);
out:
	dkv_path_release(&p);
	return rc;
}

static int act_enum(struct req *q)
{
	return do_enum(q, false);
}

static int act_enum_internal(struct req *q)
{
	return do_enum(q, true);
}

static int act_get_tock(struct req *q)
{
	struct dkv_reply r;
	dkv__reply_begin(&r, q->c);
	reply_tock(&r, q->e, 0);
	reply_seq(&r, q->m);
	dkv__reply_end(&r);
	return 0;
}

static int act_test_acl(struct req *q)
{
	struct dkv_path p;
	dkv_path_init(&p);
	int rc = get_path(q, &p);
	dkv_path_release(&p);
	if (rc)
		return rc;
	struct dkv_reply r;
	dkv__reply_begin(&r, q->c);
	dkv__reply_key(&r, "access");
	dkv_mp_bool(r.b, true); /* NEEDSWORK: ACLs arrive with the auth issue */
	reply_seq(&r, q->m);
	reply_tock(&r, q->e, 0);
	dkv__reply_end(&r);
	return 0;
}

/* Collect the ticks that entries' chains currently hold, per node. */
static void collect_current(struct dkv_engine *e, struct dkv_rangeset *cur)
{
	struct dkv_entry *top = dkv_engine_root(e);
	for (struct dkv_entry *x = top; x; x = dkv_entry_walk_next(x, top, true)) {
		const struct dkv_value *v = x->value;
		for (uint32_t i = 0; v && i < v->nchain; i++)
			dkv_rangeset_add(&cur[v->chain[i].node->idx], v->chain[i].tick,
					 v->chain[i].tick + 1);
	}
}

static int act_get_state(struct req *q)
{
	bool nodes, known, current, missing, rmissing, deleted, log, cluster;
	int rc;
	if ((rc = get_bool(q, "nodes", &nodes)) || (rc = get_bool(q, "known", &known)) ||
	    (rc = get_bool(q, "current", &current)) || (rc = get_bool(q, "missing", &missing)) ||
	    (rc = get_bool(q, "remote_missing", &rmissing)) || (rc = get_bool(q, "deleted", &deleted)) ||
	    (rc = get_bool(q, "log", &log)) || (rc = get_bool(q, "cluster", &cluster)))
		return rc;

	uint32_t nn = dkv_engine_node_count(q->e);
	struct dkv_rangeset *cur = NULL;
	if (known || current) {
		cur = dkv_xcalloc(nn, sizeof *cur);
		collect_current(q->e, cur);
	}
	struct dkv_reply r;
	dkv__reply_begin(&r, q->c);
	dkv__reply_key(&r, "node");
	dkv_mp_cstr(r.b, dkv_engine_self(q->e)->name);
	if (nodes) {
		dkv__reply_key(&r, "nodes");
		dkv_mp_map(r.b, nn);
		for (uint32_t i = 0; i < nn; i++) {
			struct dkv_node *n = dkv_engine_node_at(q->e, i);
			dkv_mp_cstr(r.b, n->name);
			dkv_mp_uint(r.b, n->tick);
		}
	}
	if (known) { /* ticks seen whose change has been superseded */
		dkv__reply_key(&r, "known");
		dkv_mp_map(r.b, nn);
		for (uint32_t i = 0; i < nn; i++) {
			struct dkv_node *n = dkv_engine_node_at(q->e, i);
			struct dkv_rangeset k;
			dkv_rangeset_init(&k);
			for (uint32_t j = 0; j < n->seen.n; j++)
				dkv_rangeset_add(&k, n->seen.r[j].lo, n->seen.r[j].hi);
			for (uint32_t j = 0; j < cur[i].n; j++)
				dkv_rangeset_remove(&k, cur[i].r[j].lo, cur[i].r[j].hi);
			for (uint32_t j = 0; j < n->deleted.n; j++)
				dkv_rangeset_remove(&k, n->deleted.r[j].lo, n->deleted.r[j].hi);
			dkv_mp_cstr(r.b, n->name);
			dkv_rangeset_encode(&k, r.b);
			dkv_rangeset_release(&k);
		}
	}
	if (current) {
		dkv__reply_key(&r, "current");
		dkv_mp_map(r.b, nn);
		for (uint32_t i = 0; i < nn; i++) {
			dkv_mp_cstr(r.b, dkv_engine_node_at(q->e, i)->name);
			dkv_rangeset_encode(&cur[i], r.b);
		}
	}
	if (missing) { /* gaps below each node's highest tick */
		uint32_t nm = 0;
		struct dkv_rangeset *ms = dkv_xcalloc(nn ? nn : 1, sizeof *ms);
		for (uint32_t i = 0; i < nn; i++) {
			struct dkv_node *n = dkv_engine_node_at(q->e, i);
			dkv_rangeset_missing(&n->seen, 1, n->tick + 1, &ms[i]);
			nm += ms[i].n > 0;
		}
		dkv__reply_key(&r, "missing");
		dkv_mp_map(r.b, nm);
		for (uint32_t i = 0; i < nn; i++) {
			if (ms[i].n) {
				dkv_mp_cstr(r.b, dkv_engine_node_at(q->e, i)->name);
				dkv_rangeset_encode(&ms[i], r.b);
			}
			dkv_rangeset_release(&ms[i]);
		}
		free(ms);
	}
	if (rmissing) { /* what peers reported they may lack */
		dkv__reply_key(&r, "remote_missing");
		if (q->c->srv->cluster)
			dkv_cluster_encode_remote_missing(q->c->srv->cluster, r.b);
		else
			dkv_mp_map(r.b, 0);
	}
	if (deleted) {
		uint32_t nd = 0;
		for (uint32_t i = 0; i < nn; i++)
			nd += dkv_engine_node_at(q->e, i)->deleted.n > 0;
		dkv__reply_key(&r, "deleted");
		dkv_mp_map(r.b, nd);
		for (uint32_t i = 0; i < nn; i++) {
			struct dkv_node *n = dkv_engine_node_at(q->e, i);
			if (!n->deleted.n)
				continue;
			dkv_mp_cstr(r.b, n->name);
			dkv_rangeset_encode(&n->deleted, r.b);
		}
	}
	if (log) { /* OUR EXTENSION: the change log's health */
		dkv__reply_key(&r, "log");
		if (q->c->srv->opts.logger)
			dkv_logger_encode_info(q->c->srv->opts.logger, r.b);
		else
			dkv_mp_nil(r.b);
	}
	if (cluster) { /* OUR EXTENSION: peers, links, sync */
		dkv__reply_key(&r, "cluster");
		if (q->c->srv->cluster)
			dkv_cluster_encode_info(q->c->srv->cluster, r.b);
		else
			dkv_mp_nil(r.b);
	}
	reply_tock(&r, q->e, 0);
	reply_seq(&r, q->m);
	dkv__reply_end(&r);
	if (cur) {
		for (uint32_t i = 0; i < nn; i++)
			dkv_rangeset_release(&cur[i]);
		free(cur);
	}
	return 0;
}

/* ---- log and save ---- */

/* `log` and `save` answer once the file is on disk.  Until then the
 * request is a stream without output, so that it goes away with its
 * connection: the logger is told to forget the callback. */

static bool logop_pump(struct dkv_stream *st)
{
	return false;
}

static void logop_release(struct dkv_stream *st)
{
	dkv_logger_forget(st->conn->srv->opts.logger, st);
}

static const struct dkv_stream_ops logop_ops = {logop_pump, logop_release};

static void logop_done(void *arg, int status, const char *msg)
{
	dkv__stream_answer(arg, status ? msg : NULL);
}

/* The "path" field: a file name, or NULL when absent or None. */
static int get_file(struct req *q, char *buf, size_t len, bool *given)
{
	const struct dkv_field *f = dkv__msg_get(q->m, "path");
	struct dkv_mp_reader r;
	struct dkv_mp_item it;
	*given = false;
	if (!f)
		return 0;
	dkv_mp_reader_init(&r, f->val, f->vallen);
	if (dkv_mp_read(&r, &it))
		return bad_field(q, "path", "a file name");
	if (it.type == DKV_MP_NIL)
		return 0;
	if ((it.type != DKV_MP_STR && it.type != DKV_MP_BIN) || !it.v.s.len ||
	    it.v.s.len >= len || memchr(it.v.s.p, 0, it.v.s.len))
		return bad_field(q, "path", "a file name");
	memcpy(buf, it.v.s.p, it.v.s.len);
	buf[it.v.s.len] = 0;
	*given = true;
	return 0;
}

/* what: "log to FILE", "stop the log", ... */
static void logop_error(struct req *q, const char *what, int rc)
{
	snprintf(q->err, sizeof q->err, "cannot %s: %s", what,
		 rc == -EBUSY	     ? "a log switch is still in progress"
		 : rc == -ESHUTDOWN ? "the server is shutting down"
				    : strerror(-rc));
}

static int act_log(struct req *q)
{
	struct dkv_logger *lg = q->c->srv->opts.logger;
	char file[4096];
	bool given, fetch;
	int rc;

	if ((rc = get_file(q, file, sizeof file, &given)) || (rc = get_bool(q, "fetch", &fetch)))
		return rc;
	if (!lg) {
		snprintf(q->err, sizeof q->err, "this server keeps no logs");
		return -ENOSYS;
	}
	enum dkv_log_sync sync = dkv_logger_default_sync(lg);
	const struct dkv_field *sf = dkv__msg_get(q->m, "sync");
	if (sf) { /* OUR EXTENSION: the durability mode */
		struct dkv_mp_reader r;
		struct dkv_mp_item it;
		dkv_mp_reader_init(&r, sf->val, sf->vallen);
		if (dkv_mp_read(&r, &it) ||
		    (it.type != DKV_MP_NIL &&
		     (it.type != DKV_MP_STR ||
		      dkv_log_sync_parse((const char *)it.v.s.p, it.v.s.len, &sync))))
			return bad_field(q, "sync", "'always', 'batch' or 'none'");
	}
	struct dkv_stream *st = dkv__stream_new(q->c, q->m->seq, &logop_ops, NULL);
	if (given)
		rc = dkv_logger_start(lg, file, sync, !fetch, logop_done, st);
	else
		rc = dkv_logger_stop(lg, logop_done, st);
	if (rc == -EALREADY) { /* no log to stop */
		logop_done(st, 0, NULL);
		return 0;
	}
	if (rc) {
		char what[240] = "stop the log";
		if (given)
			snprintf(what, sizeof what, "log to %.200s", file);
		dkv__stream_cancel(st);
		logop_error(q, what, rc);
	}
	return rc;
}

static int act_save(struct req *q)
{
	struct dkv_logger *lg = q->c->srv->opts.logger;
	char file[4096];
	bool given, full;
	int rc;

	if ((rc = get_file(q, file, sizeof file, &given)) || (rc = get_bool(q, "full", &full)))
		return rc;
	if (!given)
		return bad_field(q, "path", "a file name");
	if (!lg) {
		snprintf(q->err, sizeof q->err, "this server keeps no logs");
		return -ENOSYS;
	}
	struct dkv_stream *st = dkv__stream_new(q->c, q->m->seq, &logop_ops, NULL);
	rc = dkv_logger_save(lg, file, full, logop_done, st);
	if (rc) {
		char what[240];
		snprintf(what, sizeof what, "save to %.200s", file);
		dkv__stream_cancel(st);
		logop_error(q, what, rc);
	}
	return rc;
}

/* ---- streams: get_tree and watch ---- */

/* A path kept as elements with their offsets, for cheap push/pop. */
struct pstack {
	struct dkv_buf enc;
	size_t *off; /* start of each element in enc */
	uint32_t n, cap;
};

static void pstack_push(struct pstack *s, const uint8_t *e, size_t len)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 16;
		s->off = dkv_xrealloc(s->off, s->cap * sizeof *s->off);
	}
	s->off[s->n++] = s->enc.len;
	dkv_buf_append(&s->enc, e, len);
}

static void pstack_pop(struct pstack *s)
{
	s->enc.len = s->off[--s->n];
}

static size_t pstack_elen(const struct pstack *s, uint32_t i)
{
	return (i + 1 < s->n ? s->off[i + 1] : s->enc.len) - s->off[i];
}

static void pstack_set(struct pstack *dst, const struct pstack *src)
{
	dst->enc.len = 0;
	dst->n = 0;
	for (uint32_t i = 0; i < src->n; i++)
		pstack_push(dst, src->enc.data + src->off[i], pstack_elen(src, i));
}

static void pstack_release(struct pstack *s)
{
	dkv_buf_release(&s->enc);
	free(s->off);
	s->off = NULL;
	s->n = s->cap = 0;
}

struct walker {
	struct dkv_entry *top; /* pinned */
	struct dkv_entry *cur; /* pinned; NULL before the first step */
	struct pstack path;    /* cur's path relative to top */
	struct pstack last;    /* the last path sent, for depth compression */
	int64_t nchain, min_depth, max_depth;
	bool empty;
	bool skip_meta; /* top is the root: hide the None subtree */
	bool done;
};

struct watchstate {
	struct dkv_watch w;     /* first: the callback finds us from it */
	struct dkv_stream *st;
	struct walker walk;     /* the fetch phase */
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
	struct pstack path; /* relative to the watched entry */
	struct dkv_path tmp; /* scratch while queueing */
};

/* Send one entry at path (relative), compressing the path against the
 * last one sent. */
static void send_entry(struct dkv_stream *st, struct pstack *last, const struct pstack *path,
		       const struct dkv_value *value, uint64_t tock, int64_t nchain)
{
	struct dkv_reply r;
	uint32_t common = 0;
	while (common < path->n && common < last->n &&
	       pstack_elen(path, common) == pstack_elen(last, common) &&
	       !memcmp(path->enc.data + path->off[common], last->enc.data + last->off[common],
		       pstack_elen(path, common)))
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
	pstack_set(last, path);
}

/* Advance the walker to its next entry, keeping path and pins right. */
static struct dkv_entry *walker_step(struct dkv_engine *e, struct walker *w)
{
	struct dkv_entry *x = w->cur, *n;
	if (!x) {
		n = w->top;
	} else {
		bool descend = w->max_depth < 0 || (int64_t)w->path.n < w->max_depth;
		n = NULL;
		if (descend && x->kids) {
			n = x->kids;
			if (x == w->top && w->skip_meta && n->name[0] == 0xc0)
				n = n->next;
			if (n)
				pstack_push(&w->path, n->name, n->namelen);
		}
		while (!n && x != w->top) {
			pstack_pop(&w->path);
			if (x->next) {
				n = x->next;
				if (x->parent == w->top && w->skip_meta && n->name[0] == 0xc0)
					n = n->next;
				if (n) {
					pstack_push(&w->path, n->name, n->namelen);
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
static bool walker_pump(struct dkv_stream *st, struct walker *w)
{
	struct dkv_engine *e = st->conn->srv->engine;
	while (!w->done && dkv__stream_can_send(st)) {
		struct dkv_entry *x = walker_step(e, w);
		if (!x) {
			w->done = true;
			break;
		}
		if ((int64_t)w->path.n < w->min_depth)
			continue;
		if (!dkv_entry_has_value(x) && !w->empty)
			continue;
		send_entry(st, &w->last, &w->path, x->value, x->tock, w->nchain);
	}
	return w->done;
}

static void walker_release(struct dkv_engine *e, struct walker *w)
{
	if (w->cur)
		dkv_entry_unpin(e, w->cur);
	if (w->top)
		dkv_entry_unpin(e, w->top);
	w->cur = w->top = NULL;
	pstack_release(&w->path);
	pstack_release(&w->last);
}

static int walker_init(struct req *q, struct walker *w, struct dkv_entry *top)
{
	int rc;
	memset(w, 0, sizeof *w);
	if ((rc = get_int(q, "nchain", 0, &w->nchain)) ||
	    (rc = get_int(q, "min_depth", 0, &w->min_depth)) ||
	    (rc = get_int(q, "max_depth", -1, &w->max_depth)) ||
	    (rc = get_bool(q, "empty", &w->empty)))
		return rc;
	w->top = top;
	w->skip_meta = top == dkv_engine_root(q->e);
	dkv_entry_pin(top);
	return 0;
}

static bool tree_pump(struct dkv_stream *st)
{
	return walker_pump(st, st->state);
}

static void tree_release(struct dkv_stream *st)
{
	struct walker *w = st->state;
	walker_release(st->conn->srv->engine, w);
	free(w);
}

static const struct dkv_stream_ops tree_ops = {tree_pump, tree_release};

/* delete_tree: the values of a subtree go, each as a change of its own.
 * With nchain the answer is a stream with one record per deleted entry
 * (path relative to the request's, depth-compressed, chain, tock), as
 * DistKV sends it; without, {changed: count}. */
struct delrec {
	struct dkv_entry *ent;   /* pinned until deleted */
	struct pstack path;
	struct dkv_value *value; /* the tombstone */
	uint64_t tock;
};

struct delstate {
	struct delrec *recs;
	size_t n, next;
	struct pstack last;
	int64_t nchain;
};

static bool del_pump(struct dkv_stream *st)
{
	struct delstate *d = st->state;
	while (d->next < d->n && dkv__stream_can_send(st)) {
		struct delrec *r = &d->recs[d->next++];
		if (r->value) /* NULL: nothing was deleted there after all */
			send_entry(st, &d->last, &r->path, r->value, r->tock, d->nchain);
	}
	return d->next == d->n;
}

static void del_free(struct delstate *d)
{
	for (size_t i = 0; i < d->n; i++) {
		pstack_release(&d->recs[i].path);
		dkv_value_unref(d->recs[i].value);
	}
	free(d->recs);
	pstack_release(&d->last);
	free(d);
}

static void del_release(struct dkv_stream *st)
{
	del_free(st->state);
}

static const struct dkv_stream_ops del_ops = {del_pump, del_release};

static int act_delete_tree(struct req *q)
{
	struct dkv_path p, sub;
	int64_t nchain;
	int rc;
	uint64_t count = 0;

	dkv_path_init(&p);
	dkv_path_init(&sub);
	if ((rc = get_path(q, &p)) || (rc = get_int(q, "nchain", 0, &nchain)))
		goto out;
	if (!p.n) {
		snprintf(q->err, sizeof q->err, "You can't delete the root node");
		rc = -EINVAL;
		goto out;
	}
	struct delstate *d = dkv_xcalloc(1, sizeof *d);
	d->nchain = nchain;
	struct dkv_entry *top = lookup(q, &p, false);
	if (top) {
		/* collect first: deleting while walking would move the walk's ground */
		struct walker w = {.top = top, .max_depth = -1};
		size_t cap = 0;
		dkv_entry_pin(top);
		for (struct dkv_entry *x; (x = walker_step(q->e, &w));) {
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
				pstack_set(&r->path, &w.path);
		}
		walker_release(q->e, &w);
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
	reply_seq(&r, q->m);
	reply_tock(&r, q->e, 0);
	dkv__reply_end(&r);
out:
	dkv_path_release(&sub);
	dkv_path_release(&p);
	return rc;
}

static int do_get_tree(struct req *q, bool internal)
{
	struct dkv_path p;
	int rc;

	dkv_path_init(&p);
	if ((rc = get_path(q, &p)))
		goto out;
	struct dkv_entry *top = lookup(q, &p, internal);
	if (!top && internal && !p.n)
		top = dkv_engine_meta(q->e);
	struct walker *w = dkv_xcalloc(1, sizeof *w);
	if (top && (rc = walker_init(q, w, top))) {
		free(w);
		goto out;
	}
	struct dkv_stream *st = dkv__stream_new(q->c, q->m->seq, &tree_ops, w);
	dkv__stream_state(st, "start");
	if (!top) {
		char ps[200];
		struct dkv_reply r;
		describe_path(&p, ps, sizeof ps);
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

static int act_get_tree(struct req *q)
{
	return do_get_tree(q, false);
}

static int act_get_tree_internal(struct req *q)
{
	return do_get_tree(q, true);
}

static void qev_free(struct qev *ev)
{
	dkv_value_unref(ev->value);
	pstack_release(&ev->path);
	free(ev);
}

static void watch_cb(struct dkv_watch *wt, const struct dkv_event *ev)
{
	struct watchstate *ws = (struct watchstate *)wt;
	struct walker *w = &ws->walk;
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
		pstack_push(&q->path, el, l);
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
		if (!walker_pump(st, &ws->walk))
			return false;
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
		send_entry(st, &ws->walk.last, &q->path, q->value, q->tock,
			   ws->walk.nchain);
		qev_free(q);
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
	walker_release(e, &ws->walk);
	ws->st = NULL;
	/* a fan-out may be walking the engine's watch list right now */
	dkv_watch_stop(e, &ws->w, watch_freed);
}

static const struct dkv_stream_ops watch_ops = {watch_pump, watch_release};

static int act_watch(struct req *q)
{
	struct dkv_path p;
	bool fetch;
	int rc;

	dkv_path_init(&p);
	if ((rc = get_path(q, &p)) || (rc = get_bool(q, "fetch", &fetch)))
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
	if ((rc = walker_init(q, &ws->walk, ws->w.entry))) {
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

static int act_stop(struct req *q)
{
	int64_t task;
	int rc = get_int(q, "task", -1, &task);
	if (rc)
		return rc;
	struct dkv_stream *st = task >= 0 ? dkv__stream_find(q->c, (uint64_t)task) : NULL;
	if (st)
		dkv__stream_cancel(st);
	reply_result_bool(q, st != NULL);
	return 0;
}

/* ---- the cluster (repl.c) ---- */

static int act_repl(struct req *q)
{
	return dkv__act_repl(q->c, q->m, q->err, sizeof q->err);
}

static int act_msg_send(struct req *q)
{
	return dkv__act_msg_send(q->c, q->m, q->err, sizeof q->err);
}

static int act_msg_monitor(struct req *q)
{
	return dkv__act_msg_monitor(q->c, q->m, q->err, sizeof q->err);
}

/* ---- dispatch ---- */

struct action {
	const char *name;
	int (*fn)(struct req *q);
	unsigned acl; /* ACL_* the session must allow */
};

static const struct action actions[] = {
	{"get_value", act_get_value, ACL_READ},
	{"set_value", act_set_value, ACL_WRITE},
	{"delete_value", act_delete_value, ACL_DELETE},
	{"get_tree", act_get_tree, ACL_READ | ACL_ENUM},
	{"enum", act_enum, ACL_ENUM},
	{"enumerate", act_enum, ACL_ENUM},
	{"watch", act_watch, ACL_READ | ACL_ENUM},
	{"stop", act_stop, 0},
	{"get_state", act_get_state, 0},
	{"get_tock", act_get_tock, 0},
	{"test_acl", act_test_acl, 0},
	{"get_internal", act_get_internal, ACL_INTERNAL},
	{"set_internal", act_set_internal, ACL_INTERNAL},
	{"delete_internal", act_delete_internal, ACL_INTERNAL},
	{"enum_internal", act_enum_internal, ACL_INTERNAL},
	{"get_tree_internal", act_get_tree_internal, ACL_INTERNAL},
	{"delete_tree", act_delete_tree, ACL_DELETE},
	{"log", act_log, ACL_INTERNAL},
	{"save", act_save, ACL_INTERNAL},
	{"msg_send", act_msg_send, 0},
	{"msg_monitor", act_msg_monitor, 0},
	{"repl", act_repl, ACL_INTERNAL},
};

void dkv__proto_dispatch(struct dkv_conn *c, const struct dkv_msg *m)
{
	struct req q = {.c = c, .m = m, .e = c->srv->engine};
	const struct dkv_field *af = dkv__msg_get(m, "action");
	struct dkv_mp_reader r;
	struct dkv_mp_item it;

	if (!af) {
		dkv__reply_error(c, m, "a request needs an action");
		return;
	}
	dkv_mp_reader_init(&r, af->val, af->vallen);
	if (dkv_mp_read(&r, &it) || it.type != DKV_MP_STR) {
		dkv__reply_error(c, m, "field 'action' must be a string");
		return;
	}
	if (dkv__stream_find(c, m->seq)) {
		dkv__reply_error(c, m, "seq %llu is still in use by a running request",
				 (unsigned long long)m->seq);
		return;
	}
	for (size_t i = 0; i < sizeof actions / sizeof actions[0]; i++) {
		const struct action *a = &actions[i];
		if (strlen(a->name) != it.v.s.len || memcmp(a->name, it.v.s.p, it.v.s.len))
			continue;
		int rc = session_check(&q, a->acl);
		if (!rc)
			rc = a->fn(&q);
		if (rc)
			dkv__reply_error(c, m, "%s", q.err[0] ? q.err : strerror(-rc));
		return;
	}
	dkv__reply_error(c, m, "unknown action '%.*s'", (int)(it.v.s.len > 64 ? 64 : it.v.s.len),
			 (const char *)it.v.s.p);
}

void dkv__proto_greeting(struct dkv_conn *c)
{
	struct dkv_engine *e = c->srv->engine;
	struct dkv_reply r;
	dkv__reply_begin(&r, c);
	dkv__reply_key(&r, "seq");
	dkv_mp_uint(r.b, 0);
	dkv__reply_key(&r, "version");
	dkv_mp_array(r.b, 3);
	dkv_mp_uint(r.b, DKV_VERSION_MAJOR);
	dkv_mp_uint(r.b, DKV_VERSION_MINOR);
	dkv_mp_uint(r.b, DKV_VERSION_PATCH);
	dkv__reply_key(&r, "node");
	dkv_mp_cstr(r.b, dkv_engine_self(e)->name);
	dkv__reply_key(&r, "tick");
	dkv_mp_uint(r.b, dkv_engine_self(e)->tick);
	dkv__reply_key(&r, "tock");
	dkv_mp_uint(r.b, dkv_engine_next_tock(e));
	dkv__reply_key(&r, "qlen");
	dkv_mp_uint(r.b, c->srv->opts.qlen);
	dkv__reply_end(&r);
}
