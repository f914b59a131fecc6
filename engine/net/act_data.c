/*
 * act_data.c - the actions on one entry: get_value, set_value,
 * delete_value, enum, and their *_internal twins for the None subtree.
 */
#include "net.h"

#include "acl.h"
#include "codec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int do_get_value(struct dkv_req *q, bool internal)
{
	struct dkv_path p;
	struct dkv_buf enc = {0};
	int64_t nchain;
	int rc;

	dkv_path_init(&p);
	struct dkv_entry *ent;
	if ((rc = dkv__req_path(q, &p)) || (rc = dkv__req_int(q, "nchain", 0, &nchain)) ||
	    (rc = dkv__req_lookup(q, &p, internal, &ent)))
		goto out;
	bool has = ent && dkv_entry_has_value(ent);
	const uint8_t *v = has ? dkv_value_data(ent->value) : NULL;
	size_t vlen = has ? ent->value->len : 0;
	if (has && !internal &&
	    (rc = dkv_session_encode(q->sess, p.enc.data, p.enc.len, &v, &vlen, &enc, q->err,
				     sizeof q->err)))
		goto out;
	struct dkv_reply r;
	dkv__reply_begin(&r, q->c);
	if (has) {
		dkv__reply_key(&r, "value");
		dkv_buf_append(r.b, v, vlen);
	}
	if (nchain) {
		dkv__reply_key(&r, "chain");
		if (has)
			dkv_chain_encode(ent->value->chain, ent->value->nchain, (int)nchain, r.b);
		else
			dkv_mp_nil(r.b);
	}
	dkv__reply_tock(&r, q->e, has ? ent->tock : 0);
	dkv__reply_seq(&r, q->m);
	dkv__reply_end(&r);
out:
	dkv_buf_release(&enc);
	dkv_path_release(&p);
	return rc;
}

int dkv__act_get_value(struct dkv_req *q)
{
	return do_get_value(q, false);
}

int dkv__act_get_internal(struct dkv_req *q)
{
	return do_get_value(q, true);
}

/* Parse the 'chain' precondition: nil = must be new; a map = its newest link. */
int dkv__req_precond(struct dkv_req *q, struct dkv_change *ch)
{
	const struct dkv_field *f = dkv__msg_get(q->m, "chain");
	struct dkv_mp_reader r;
	struct dkv_mp_item it, k, v;
	if (!f)
		return 0;
	dkv_mp_reader_init(&r, f->val, f->vallen);
	if (dkv_mp_read(&r, &it))
		return dkv__req_bad_field(q, "chain", "a chain or None");
	if (it.type == DKV_MP_NIL) {
		ch->pre = DKV_PRE_NEW;
		return 0;
	}
	if (it.type != DKV_MP_MAP)
		return dkv__req_bad_field(q, "chain", "a chain or None");
	bool have_node = false, have_tick = false;
	for (uint32_t i = 0; i < it.v.n; i++) {
		if (dkv_mp_read(&r, &k))
			return dkv__req_bad_field(q, "chain", "a chain or None");
		if (dkv_mp_streq(&k, "node") || dkv_mp_streq(&k, "tick")) {
			if (dkv_mp_read(&r, &v))
				return dkv__req_bad_field(q, "chain", "a chain or None");
			if (dkv_mp_streq(&k, "node") && v.type == DKV_MP_STR) {
				ch->pre_node = (const char *)v.v.s.p;
				ch->pre_node_len = v.v.s.len;
				have_node = true;
			} else if (dkv_mp_streq(&k, "tick") && v.type == DKV_MP_UINT) {
				ch->pre_tick = v.v.u;
				have_tick = true;
			}
		} else if (dkv_mp_skip(&r)) {
			return dkv__req_bad_field(q, "chain", "a chain or None");
		}
	}
	if (!have_node || !have_tick)
		return dkv__req_bad_field(q, "chain", "a map with 'node' (a string) and 'tick' (an integer)");
	ch->pre = DKV_PRE_CHAIN;
	return 0;
}

static int do_set(struct dkv_req *q, bool internal, bool is_delete)
{
	struct dkv_path p;
	struct dkv_buf val = {0}, prev = {0}, conv = {0}, convprev = {0};
	struct dkv_change ch = {0};
	struct dkv_result res = {0};
	int64_t nchain;
	bool idem;
	int rc;

	dkv_path_init(&p);
	if ((rc = dkv__req_path(q, &p)) || (rc = dkv__req_int(q, "nchain", 1, &nchain)) ||
	    (rc = dkv__req_bool(q, "idem", &idem)) || (rc = dkv__req_precond(q, &ch)))
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
			rc = dkv__req_bad_field(q, "value", "a msgpack value nested at most 64 deep");
			goto out;
		}
	}
	if (!internal && p.enc.len && p.enc.data[0] == 0xc0) {
		snprintf(q->err, sizeof q->err, "the None subtree is internal: use set_internal");
		rc = -EINVAL;
		goto out;
	}
	/* the session's converter: what it sends is decoded before anything */
	ch.value = is_delete ? NULL : val.data;
	ch.value_len = val.len;
	if (!is_delete && !internal &&
	    (rc = dkv_session_decode(q->sess, p.enc.data, p.enc.len, &ch.value, &ch.value_len,
				     &conv, q->err, sizeof q->err)))
		goto out;
	const struct dkv_field *pf = dkv__msg_get(q->m, "prev");
	if (pf) { /* value precondition; one that is no value matches nothing */
		struct dkv_mp_reader r;
		dkv_mp_reader_init(&r, pf->val, pf->vallen);
		if (dkv_mp_canon(&prev, &r)) {
			rc = DKV_E_PREV;
			goto refused;
		}
		ch.prev = prev.data ? prev.data : (const uint8_t *)"";
		ch.prev_len = prev.len;
		if (!internal &&
		    (rc = dkv_session_decode(q->sess, p.enc.data, p.enc.len, &ch.prev, &ch.prev_len,
					     &convprev, q->err, sizeof q->err)))
			goto out;
	}

	ch.path = p.enc.data;
	ch.path_len = p.enc.len;
	ch.internal = internal;
	ch.idem = idem;
	ch.src = DKV_SRC_LOCAL;
	ch.sess = q->sess;
	rc = dkv_engine_apply(q->e, &ch, &res);
refused:
	if (rc) {
		char ps[200];
		struct dkv_buf cd = {0};
		dkv__describe_path(&p, ps, sizeof ps);
		if (rc == DKV_E_PREV) {
			snprintf(q->err, sizeof q->err, "Data is not the expected previous value at %s", ps);
		} else if (rc == -EEXIST) {
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
		} else if (rc == -EACCES) {
			snprintf(q->err, sizeof q->err, "%s", q->sess->why);
		} else if (res.why[0]) {
			snprintf(q->err, sizeof q->err, "%s", res.why);
		} else {
			snprintf(q->err, sizeof q->err, "cannot change %s: %s", ps, dkv_strerror(rc));
		}
		dkv_buf_release(&cd);
		goto out;
	}
	if (res.idem) { /* the value was there: DistKV answers with the entry's state */
		struct dkv_entry *ent = res.entry;
		struct dkv_reply r;
		dkv__reply_begin(&r, q->c);
		dkv__reply_key(&r, "changed");
		dkv_mp_bool(r.b, false);
		if (nchain) {
			dkv__reply_key(&r, "chain");
			dkv_chain_encode(ent->value->chain, ent->value->nchain, (int)nchain, r.b);
		}
		dkv__reply_tock(&r, q->e, ent->tock);
		dkv__reply_seq(&r, q->m);
		dkv__reply_end(&r);
		goto out;
	}
	struct dkv_reply r;
	dkv__reply_begin(&r, q->c);
	dkv__reply_key(&r, "changed");
	dkv_mp_bool(r.b, res.changed);
	if (res.prev && res.prev->len && ch.pre == DKV_PRE_NONE && !pf) {
		/* the old value as the session reads it; left out if its codec fails */
		const uint8_t *pv = dkv_value_data(res.prev);
		size_t pvlen = res.prev->len;
		char why[sizeof q->err];
		if (internal || !dkv_session_encode(q->sess, p.enc.data, p.enc.len, &pv, &pvlen,
						    &convprev, why, sizeof why)) {
			dkv__reply_key(&r, "prev");
			dkv_buf_append(r.b, pv, pvlen);
		}
	}
	if (nchain) {
		dkv__reply_key(&r, "chain");
		if (res.entry && res.changed)
			dkv_chain_encode(res.entry->value->chain, res.entry->value->nchain,
					 (int)nchain, r.b);
		else
			dkv_mp_nil(r.b);
	}
	dkv__reply_tock(&r, q->e, res.entry && res.changed ? res.entry->tock : 0);
	dkv__reply_seq(&r, q->m);
	dkv__reply_end(&r);
out:
	dkv_result_release(q->e, &res);
	dkv_buf_release(&conv);
	dkv_buf_release(&convprev);
	dkv_buf_release(&prev);
	dkv_buf_release(&val);
	dkv_path_release(&p);
	return rc;
}

int dkv__act_set_value(struct dkv_req *q)
{
	return do_set(q, false, false);
}

int dkv__act_delete_value(struct dkv_req *q)
{
	return do_set(q, false, true);
}

int dkv__act_set_internal(struct dkv_req *q)
{
	return do_set(q, true, false);
}

int dkv__act_delete_internal(struct dkv_req *q)
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

/* What a bound session may do at the child k of the entry at p (every
 * mode without a rule). */
static unsigned child_modes(struct dkv_req *q, struct dkv_path *p, const struct dkv_entry *k)
{
	if (!q->sess->check)
		return ~0u;
	size_t len = p->enc.len;
	dkv_buf_append(&p->enc, k->name, k->namelen);
	unsigned modes = dkv_session_modes(q->sess, p->enc.data, p->enc.len, false);
	p->enc.len = len;
	return modes;
}

/* The value of the child k of the entry at p, as the session reads it
 * (None when its codec fails: a listing is not the place to fail). */
static void append_child_value(struct dkv_req *q, struct dkv_path *p, const struct dkv_entry *k,
			       bool internal, struct dkv_buf *out)
{
	const uint8_t *v = dkv_value_data(k->value);
	size_t vlen = k->value->len;
	struct dkv_buf enc = {0};
	char why[sizeof q->err];
	int rc = 0;
	if (!internal && q->sess->conv) {
		size_t len = p->enc.len;
		dkv_buf_append(&p->enc, k->name, k->namelen);
		rc = dkv_session_encode(q->sess, p->enc.data, p->enc.len, &v, &vlen, &enc, why,
					sizeof why);
		p->enc.len = len;
	}
	if (rc)
		dkv_mp_nil(out);
	else
		dkv_buf_append(out, v, vlen);
	dkv_buf_release(&enc);
}

static int do_enum(struct dkv_req *q, bool internal)
{
	struct dkv_path p;
	bool empty, with_data;
	int rc;

	dkv_path_init(&p);
	struct dkv_entry *ent;
	if ((rc = dkv__req_path(q, &p)) || (rc = dkv__req_bool(q, "empty", &empty)) ||
	    (rc = dkv__req_bool(q, "with_data", &with_data)) ||
	    (rc = dkv__req_lookup(q, &p, internal, &ent)))
		goto out;
	struct dkv_entry *root = dkv_engine_root(q->e);
	uint32_t n = 0;
	for (struct dkv_entry *k = ent ? ent->kids : NULL; k; k = k->next)
		if (enum_shows(k, empty) && !(ent == root && k->name[0] == 0xc0) &&
		    child_modes(q, &p, k))
			n++;
	struct dkv_reply r;
	dkv__reply_begin(&r, q->c);
	dkv__reply_key(&r, "result");
	if (with_data)
		dkv_mp_map(r.b, n);
	else
		dkv_mp_array(r.b, n);
	for (struct dkv_entry *k = ent ? ent->kids : NULL; k; k = k->next) {
		unsigned modes;
		if (!enum_shows(k, empty) || (ent == root && k->name[0] == 0xc0) ||
		    !(modes = child_modes(q, &p, k)))
			continue;
		dkv_buf_append(r.b, k->name, k->namelen);
		if (with_data) {
			if (dkv_entry_has_value(k) && (modes & DKV_ACL_READ))
				append_child_value(q, &p, k, internal, r.b);
			else
				dkv_mp_nil(r.b);
		}
	}
	dkv__reply_seq(&r, q->m);
	dkv__reply_tock(&r, q->e, 0);
	dkv__reply_end(&r);
out:
	dkv_path_release(&p);
	return rc;
}

int dkv__act_enum(struct dkv_req *q)
{
	return do_enum(q, false);
}

int dkv__act_enum_internal(struct dkv_req *q)
{
	return do_enum(q, true);
}
