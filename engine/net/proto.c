/*
 * proto.c - the client protocol's actions, as one table: a request's
 * action names its row, the row its handler (in act_*.c or repl.c) and
 * the access it needs.  Field names, defaults and reply shapes follow
 * DistKV 0.57.4 (see doc/protocol.md).
 */
#include "net.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DKV_VERSION_MAJOR 0
#define DKV_VERSION_MINOR 57
#define DKV_VERSION_PATCH 4

/* ---- the action table ---- */

static const struct dkv__action actions[] = {
	{"get_value", dkv__act_get_value, DKV_ACL_READ, false},
	{"set_value", dkv__act_set_value, DKV_ACL_WRITE, false},
	{"delete_value", dkv__act_delete_value, DKV_ACL_DELETE, false},
	{"get_tree", dkv__act_get_tree, DKV_ACL_READ | DKV_ACL_ENUM, false},
	{"enum", dkv__act_enum, DKV_ACL_ENUM, false},
	{"enumerate", dkv__act_enum, DKV_ACL_ENUM, false},
	{"watch", dkv__act_watch, DKV_ACL_READ | DKV_ACL_ENUM, false},
	{"stop", dkv__act_stop, 0, true},
	{"get_state", dkv__act_get_state, 0, true},
	{"get_tock", dkv__act_get_tock, 0, true},
	{"test_acl", dkv__act_test_acl, 0, false},
	{"get_internal", dkv__act_get_internal, DKV_ACL_INTERNAL | DKV_ACL_READ, false},
	{"set_internal", dkv__act_set_internal, DKV_ACL_INTERNAL | DKV_ACL_WRITE, false},
	{"delete_internal", dkv__act_delete_internal, DKV_ACL_INTERNAL | DKV_ACL_DELETE, false},
	{"enum_internal", dkv__act_enum_internal, DKV_ACL_INTERNAL | DKV_ACL_ENUM, false},
	{"get_tree_internal", dkv__act_get_tree_internal,
	 DKV_ACL_INTERNAL | DKV_ACL_READ | DKV_ACL_ENUM, false},
	{"delete_tree", dkv__act_delete_tree, DKV_ACL_DELETE, false},
	{"log", dkv__act_log, DKV_ACL_INTERNAL, false},
	{"save", dkv__act_save, DKV_ACL_INTERNAL, false},
	{"msg_send", dkv__act_msg_send, 0, true},
	{"msg_monitor", dkv__act_msg_monitor, 0, true},
	{"repl", dkv__act_repl, DKV_ACL_INTERNAL, true},
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
