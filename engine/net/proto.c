/*
 * proto.c - the client protocol's actions, as one table: a request's
 * action names its row, the row its handler (in act_*.c or repl.c) and
 * the access it needs.  Field names, defaults and reply shapes follow
 * DistKV 0.57.4 (see doc/protocol.md).
 */
#include "net.h"

#include "auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DKV_VERSION_MAJOR 0
#define DKV_VERSION_MINOR 57
#define DKV_VERSION_PATCH 4

/* ---- the action table ---- */

/* name, handler, mode, unready, nologin.  DKV_ACL_INTERNAL: refused to a
 * session bound by an ACL, whatever the path. */
static const struct dkv__action actions[] = {
	{"get_value", dkv__act_get_value, DKV_ACL_READ, false, false},
	{"set_value", dkv__act_set_value, DKV_ACL_WRITE, false, false},
	{"delete_value", dkv__act_delete_value, DKV_ACL_DELETE, false, false},
	/* trees and watches need the path reachable; entries the session
	 * may not read are left out as they go */
	{"get_tree", dkv__act_get_tree, 0, false, false},
	{"enum", dkv__act_enum, DKV_ACL_ENUM, false, false},
	{"enumerate", dkv__act_enum, DKV_ACL_ENUM, false, false},
	{"watch", dkv__act_watch, 0, false, false},
	{"stop", dkv__act_stop, 0, true, true},
	{"get_state", dkv__act_get_state, DKV_ACL_INTERNAL, true, false},
	{"get_tock", dkv__act_get_tock, 0, true, true},
	{"test_acl", dkv__act_test_acl, 0, false, false},
	{"get_internal", dkv__act_get_internal, DKV_ACL_INTERNAL | DKV_ACL_READ, false, false},
	{"set_internal", dkv__act_set_internal, DKV_ACL_INTERNAL | DKV_ACL_WRITE, false, false},
	{"delete_internal", dkv__act_delete_internal, DKV_ACL_INTERNAL | DKV_ACL_DELETE, false,
	 false},
	{"enum_internal", dkv__act_enum_internal, DKV_ACL_INTERNAL | DKV_ACL_ENUM, false, false},
	{"get_tree_internal", dkv__act_get_tree_internal,
	 DKV_ACL_INTERNAL | DKV_ACL_READ | DKV_ACL_ENUM, false, false},
	{"delete_tree", dkv__act_delete_tree, 0, false, false},
	{"log", dkv__act_log, DKV_ACL_INTERNAL, false, false},
	{"save", dkv__act_save, DKV_ACL_INTERNAL, false, false},
	{"msg_send", dkv__act_msg_send, DKV_ACL_INTERNAL, true, false},
	{"msg_monitor", dkv__act_msg_monitor, DKV_ACL_INTERNAL, true, false},
	{"repl", dkv__act_repl, DKV_ACL_INTERNAL, true, false},
	{"auth", dkv__act_auth, 0, true, true},
	{"auth_key", dkv__act_auth_key, 0, true, true},
	{"auth_info", dkv__act_auth_info, DKV_ACL_INTERNAL, false, false},
	{"auth_list", dkv__act_auth_list, DKV_ACL_INTERNAL, false, false},
	{"auth_get", dkv__act_auth_get, DKV_ACL_INTERNAL, false, false},
	{"auth_set", dkv__act_auth_set, DKV_ACL_INTERNAL | DKV_ACL_WRITE, false, false},
	{"set_auth_typ", dkv__act_set_auth_typ, DKV_ACL_INTERNAL | DKV_ACL_WRITE, false, false},
};

const struct dkv__action *dkv__proto_action(const uint8_t *name, size_t len)
{
	for (size_t i = 0; i < sizeof actions / sizeof actions[0]; i++)
		if (strlen(actions[i].name) == len && !memcmp(actions[i].name, name, len))
			return &actions[i];
	return NULL;
}

bool dkv__proto_dispatch(struct dkv_conn *c, const struct dkv_msg *m)
{
	const struct dkv_field *af = dkv__msg_get(m, "action");
	struct dkv_mp_reader r;
	struct dkv_mp_item it;

	if (!af) {
		dkv__reply_error(c, m, "a request needs an action");
		return true;
	}
	dkv_mp_reader_init(&r, af->val, af->vallen);
	if (dkv_mp_read(&r, &it) || it.type != DKV_MP_STR) {
		dkv__reply_error(c, m, "field 'action' must be a string");
		return true;
	}
	const struct dkv__action *a = dkv__proto_action(it.v.s.p, it.v.s.len);
	if (!a) {
		dkv__reply_error(c, m, "unknown action '%.*s'",
				 (int)(it.v.s.len > 64 ? 64 : it.v.s.len), (const char *)it.v.s.p);
		return true;
	}
	if (!a->nologin && !c->sess.user) {
		int current = dkv_auth_current(c->srv->engine);
		if (current != DKV_AUTH_NONE) {
			dkv__reply_error_etype(c, m, "ClientAuthRequiredError",
					       "You need to log in using: %s",
					       dkv_auth_method_name(current));
			return true;
		}
	}
	if ((a->mode & DKV_ACL_INTERNAL) && c->sess.check &&
	    dkv_session_check(&c->sess, NULL, 0, true, a->mode)) {
		dkv__reply_error(c, m, "%s", c->sess.why);
		return true;
	}
	if (!c->srv->ready && !a->unready)
		return false;
	if (dkv__stream_find(c, m->seq)) {
		dkv__reply_error(c, m, "seq %llu is still in use by a running request",
				 (unsigned long long)m->seq);
		return true;
	}
	struct dkv_req q = {.c = c, .m = m, .e = c->srv->engine, .sess = &c->sess,
			    .mode = a->mode};
	int rc = a->fn(&q);
	if (rc)
		dkv__reply_error(c, m, "%s", q.err[0] ? q.err : dkv_strerror(rc));
	return true;
}

/* The greeting's "auth", once (None, "auth") exists: the method logins
 * must use (nil: none) and then the other configured ones. */
static void greeting_auth(struct dkv_reply *r, struct dkv_engine *e)
{
	static const uint8_t nil_elem[] = {0xc0}, auth_elem[] = {0xa4, 'a', 'u', 't', 'h'};
	struct dkv_entry *a = dkv_entry_child(e, dkv_engine_root(e), nil_elem, 1);
	a = a ? dkv_entry_child(e, a, auth_elem, sizeof auth_elem) : NULL;
	if (!a)
		return;
	int current = dkv_auth_current(e);
	const char *cur = current == DKV_AUTH_NONE ? NULL : dkv_auth_method_name(current);
	uint32_t n = 1;
	for (struct dkv_entry *k = a->kids; k; k = k->next)
		n += !(cur && k->namelen == strlen(cur) + 1 && !memcmp(k->name + 1, cur, k->namelen - 1));
	dkv__reply_key(r, "auth");
	dkv_mp_array(r->b, n);
	if (cur)
		dkv_mp_cstr(r->b, cur);
	else
		dkv_mp_nil(r->b);
	for (struct dkv_entry *k = a->kids; k; k = k->next)
		if (!(cur && k->namelen == strlen(cur) + 1 && !memcmp(k->name + 1, cur, k->namelen - 1)))
			dkv_buf_append(r->b, k->name, k->namelen);
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
	greeting_auth(&r, e);
	dkv__reply_end(&r);
}
