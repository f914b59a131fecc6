/* test_engine.c - changes: ticks, chains, preconditions, tombstones,
 * pruning, watchers and hooks. */
#include "engine.h"
#include "test.h"

#include <errno.h>

static struct dkv_engine *mk(void)
{
	return dkv_engine_new(&(struct dkv_engine_opts){.node = "node-a", .chain_length = 3});
}

/* A local change at a (or a b) as session s (NULL: the node itself). */
static int change(struct dkv_engine *e, struct dkv_session *s, const char *a, const char *b,
		  int64_t v, bool del, enum dkv_precond pre, uint64_t pre_tick,
		  struct dkv_result *res)
{
	struct dkv_path p;
	struct dkv_buf val = {0};
	dkv_path_init(&p);
	dkv_path_push_str(&p, a);
	if (b)
		dkv_path_push_str(&p, b);
	dkv_mp_int(&val, v);
	struct dkv_change c = {.path = p.enc.data, .path_len = p.enc.len,
			       .value = del ? NULL : val.data, .value_len = val.len,
			       .pre = pre, .pre_node = "node-a", .pre_node_len = 6,
			       .pre_tick = pre_tick, .src = DKV_SRC_LOCAL, .sess = s};
	int rc = dkv_engine_apply(e, &c, res);
	dkv_path_release(&p);
	dkv_buf_release(&val);
	return rc;
}

static int set(struct dkv_engine *e, const char *a, const char *b, int64_t v, bool del,
	       enum dkv_precond pre, uint64_t pre_tick, struct dkv_result *res)
{
	return change(e, NULL, a, b, v, del, pre, pre_tick, res);
}

TEST(ticks_and_chains)
{
	struct dkv_engine *e = mk();
	struct dkv_result r;
	REQUIRE(set(e, "a", NULL, 1, false, DKV_PRE_NONE, 0, &r) == 0);
	CHECK(r.changed);
	CHECK(!r.prev);
	CHECK_EQ_INT(r.entry->value->nchain, 1);
	CHECK_EQ_INT(r.entry->value->chain[0].tick, 1);
	uint64_t tock1 = r.entry->tock;
	dkv_result_release(e, &r);
	REQUIRE(set(e, "a", NULL, 2, false, DKV_PRE_NONE, 0, &r) == 0);
	CHECK(r.prev && dkv_value_data(r.prev)[0] == 1);
	CHECK_EQ_INT(r.entry->value->nchain, 1); /* one node appears once */
	CHECK_EQ_INT(r.entry->value->chain[0].tick, 2);
	CHECK(r.entry->tock > tock1);
	dkv_result_release(e, &r);
	/* same value again: not changed, but still a change event */
	REQUIRE(set(e, "a", NULL, 2, false, DKV_PRE_NONE, 0, &r) == 0);
	CHECK(!r.changed);
	dkv_result_release(e, &r);
	CHECK_EQ_INT(dkv_engine_self(e)->tick, 3);
	dkv_engine_free(e);
}

TEST(preconditions)
{
	struct dkv_engine *e = mk();
	struct dkv_result r;
	CHECK_EQ_INT(set(e, "a", NULL, 1, false, DKV_PRE_CHAIN, 1, &r), -ENOENT);
	dkv_result_release(e, &r);
	CHECK_EQ_INT(set(e, "a", NULL, 1, false, DKV_PRE_NEW, 0, &r), 0);
	dkv_result_release(e, &r);
	CHECK_EQ_INT(set(e, "a", NULL, 1, false, DKV_PRE_NEW, 0, &r), -EEXIST);
	CHECK(r.entry != NULL);
	dkv_result_release(e, &r);
	CHECK_EQ_INT(set(e, "a", NULL, 2, false, DKV_PRE_CHAIN, 1, &r), 0);
	dkv_result_release(e, &r);
	CHECK_EQ_INT(set(e, "a", NULL, 3, false, DKV_PRE_CHAIN, 1, &r), -ESTALE);
	dkv_result_release(e, &r);
	CHECK_EQ_INT(dkv_engine_self(e)->tick, 2); /* refused changes take no tick */
	dkv_engine_free(e);
}

TEST(tombstones_and_pruning)
{
	struct dkv_engine *e = mk();
	struct dkv_result r;
	set(e, "a", "b", 1, false, DKV_PRE_NONE, 0, &r);
	dkv_result_release(e, &r);
	CHECK_EQ_INT(dkv_engine_entry_count(e), 2);
	REQUIRE(set(e, "a", "b", 0, true, DKV_PRE_NONE, 0, &r) == 0);
	CHECK(r.changed);
	CHECK(dkv_entry_is_tombstone(r.entry));
	CHECK(r.entry->value->nchain == 1 && r.entry->value->chain[0].tick == 2);
	dkv_result_release(e, &r);
	CHECK_EQ_INT(dkv_engine_entry_count(e), 2); /* the tombstone stays */
	CHECK(dkv_rangeset_contains(&dkv_engine_self(e)->deleted, 2));
	/* deleting nothing changes nothing and takes no tick */
	REQUIRE(set(e, "zz", NULL, 0, true, DKV_PRE_NONE, 0, &r) == 0);
	CHECK(!r.changed);
	dkv_result_release(e, &r);
	CHECK_EQ_INT(dkv_engine_entry_count(e), 2);
	CHECK_EQ_INT(dkv_engine_self(e)->tick, 2);
	/* a failed precondition on a new path leaves no empty entry behind */
	set(e, "q", "r", 1, false, DKV_PRE_CHAIN, 9, &r);
	dkv_result_release(e, &r);
	CHECK_EQ_INT(dkv_engine_entry_count(e), 2);
	dkv_engine_free(e);
}

static int watch_hits;
static int hook_hits;
static int last_order;
static int hook_after_watch;

static void on_watch(struct dkv_watch *w, const struct dkv_event *ev)
{
	(void)w;
	watch_hits++;
	last_order = 1;
	(void)ev;
}

static void on_hook(void *ctx, const struct dkv_event *ev)
{
	(void)ev;
	hook_hits++;
	hook_after_watch += last_order == 1; /* watchers come first */
	last_order = 0;
	(void)ctx;
}

TEST(watchers_and_hooks)
{
	struct dkv_engine *e = mk();
	struct dkv_result r;
	struct dkv_watch w = {.cb = on_watch};
	struct dkv_path p;
	dkv_path_init(&p);
	dkv_path_push_str(&p, "a");
	dkv_watch_start(e, &w, NULL, p.enc.data, p.enc.len);
	dkv_engine_add_hook(e, on_hook, NULL);
	set(e, "a", "b", 1, false, DKV_PRE_NONE, 0, &r);
	dkv_result_release(e, &r);
	set(e, "other", NULL, 1, false, DKV_PRE_NONE, 0, &r); /* not below a */
	dkv_result_release(e, &r);
	CHECK_EQ_INT(watch_hits, 1);
	CHECK_EQ_INT(hook_hits, 2);
	CHECK_EQ_INT(hook_after_watch, 1);
	dkv_watch_stop(e, &w, NULL);
	set(e, "a", "b", 2, false, DKV_PRE_NONE, 0, &r);
	dkv_result_release(e, &r);
	CHECK_EQ_INT(watch_hits, 1);
	dkv_path_release(&p);
	dkv_engine_free(e);
}

TEST(internal_is_separate)
{
	struct dkv_engine *e = mk();
	struct dkv_result r;
	uint8_t nilpath[] = {0xc0, 0xa1, 'x'};
	struct dkv_change c = {.path = nilpath, .path_len = 3, .value = (const uint8_t *)"\x01",
			       .value_len = 1, .src = DKV_SRC_LOCAL};
	CHECK_EQ_INT(dkv_engine_apply(e, &c, &r), DKV_E_INTERNAL);
	dkv_result_release(e, &r);
	c.internal = true;
	c.path = nilpath + 1;
	c.path_len = 2;
	CHECK_EQ_INT(dkv_engine_apply(e, &c, &r), 0);
	dkv_result_release(e, &r);
	struct dkv_entry *m = dkv_engine_meta(e);
	CHECK(dkv_entry_lookup(e, m, nilpath + 1, 2, false) != NULL);
	CHECK(dkv_entry_lookup(e, NULL, nilpath + 1, 2, false) == NULL);
	dkv_engine_free(e);
}

TEST(remote_changes)
{
	struct dkv_engine *e = mk();
	struct dkv_result r;
	struct dkv_node *b = dkv_engine_node(e, "node-b", 6);
	struct dkv_chain_link ch[1] = {{b, 7}};
	uint8_t path[] = {0xa1, 'k'};
	struct dkv_change c = {.path = path, .path_len = 2, .value = (const uint8_t *)"\x05",
			       .value_len = 1, .src = DKV_SRC_REMOTE, .chain = ch, .nchain = 1, .tock = 100};
	CHECK_EQ_INT(dkv_engine_apply(e, &c, &r), 0);
	CHECK(r.changed);
	CHECK_EQ_INT(r.entry->tock, 100);
	dkv_result_release(e, &r);
	CHECK_EQ_INT(b->tick, 7);
	CHECK(dkv_engine_tock(e) >= 100);
	CHECK_EQ_INT(dkv_engine_self(e)->tick, 0); /* no tick of ours used */
	/* the same change again is old news */
	c.value = (const uint8_t *)"\x06";
	CHECK_EQ_INT(dkv_engine_apply(e, &c, &r), 0);
	CHECK(!r.changed);
	dkv_result_release(e, &r);
	dkv_engine_free(e);
}

/* Two concurrent changes of one entry, applied in either order, leave
 * the same winner on both sides, and each side counts a conflict. */
TEST(conflicts_resolve_the_same_everywhere)
{
	uint8_t path[] = {0xa1, 'k'};
	for (int order = 0; order < 2; order++) {
		struct dkv_engine *e = mk();
		struct dkv_node *x = dkv_engine_node(e, "node-x", 6);
		struct dkv_node *y = dkv_engine_node(e, "node-y", 6);
		struct dkv_chain_link cx[1] = {{x, 3}}, cy[1] = {{y, 9}};
		/* equal tocks: the higher node name wins (node-y) */
		struct dkv_change a = {.path = path, .path_len = 2, .value = (const uint8_t *)"\x01",
				       .value_len = 1, .src = DKV_SRC_REMOTE, .chain = cx, .nchain = 1,
				       .tock = 50};
		struct dkv_change b = a;
		b.value = (const uint8_t *)"\x02";
		b.chain = cy;
		struct dkv_result r;
		unsigned conflicts = 0;
		CHECK_EQ_INT(dkv_engine_apply(e, order ? &b : &a, &r), 0);
		conflicts += r.conflict;
		dkv_result_release(e, &r);
		CHECK_EQ_INT(dkv_engine_apply(e, order ? &a : &b, &r), 0);
		conflicts += r.conflict;
		CHECK_EQ_INT(conflicts, 1);
		CHECK_EQ_INT(dkv_value_data(r.entry->value)[0], 2);
		CHECK(r.entry->value->chain[0].node == y);
		dkv_result_release(e, &r);
		/* a later tock beats the name */
		struct dkv_chain_link cx2[1] = {{x, 4}};
		a.chain = cx2;
		a.tock = 51;
		CHECK_EQ_INT(dkv_engine_apply(e, &a, &r), 0);
		CHECK(r.conflict);
		CHECK_EQ_INT(dkv_value_data(r.entry->value)[0], 1);
		dkv_result_release(e, &r);
		dkv_engine_free(e);
	}
}

static bool ripe_all(void *arg, const struct dkv_entry *ent)
{
	(void)ent;
	++*(int *)arg;
	return true;
}

static bool ripe_none(void *arg, const struct dkv_entry *ent)
{
	(void)ent;
	++*(int *)arg;
	return false;
}

/* Tombstones are listed as they are made and purged from the list (not by
 * a walk of the tree); the entry goes with its tombstone unless pinned; an
 * entry that got a value again is not purged; the deletion's tick stays
 * seen. */
TEST(purge_tombstones)
{
	struct dkv_engine *e = mk();
	struct dkv_result r;
	int asked = 0;
	REQUIRE(set(e, "p", "q", 1, false, DKV_PRE_NONE, 0, &r) == 0);
	dkv_result_release(e, &r);
	REQUIRE(set(e, "p", "s", 1, false, DKV_PRE_NONE, 0, &r) == 0);
	dkv_result_release(e, &r);
	CHECK_EQ_INT(dkv_engine_purge(e, ripe_all, &asked), 0); /* values, not tombstones */
	CHECK_EQ_INT(asked, 0);
	REQUIRE(set(e, "p", "q", 0, true, DKV_PRE_NONE, 0, &r) == 0);
	dkv_result_release(e, &r);
	REQUIRE(set(e, "p", "s", 0, true, DKV_PRE_NONE, 0, &r) == 0);
	dkv_result_release(e, &r);
	CHECK_EQ_INT(dkv_engine_tombstone_count(e), 2);
	/* deleted twice: listed once */
	REQUIRE(set(e, "p", "s", 0, true, DKV_PRE_NONE, 0, &r) == 0);
	dkv_result_release(e, &r);
	CHECK_EQ_INT(dkv_engine_purge(e, ripe_none, &asked), 0);
	CHECK_EQ_INT(asked, 2);
	/* s gets a value again: no longer a tombstone */
	REQUIRE(set(e, "p", "s", 7, false, DKV_PRE_NONE, 0, &r) == 0);
	dkv_result_release(e, &r);
	CHECK_EQ_INT(dkv_engine_tombstone_count(e), 1);
	size_t before = dkv_engine_entry_count(e);
	asked = 0;
	CHECK_EQ_INT(dkv_engine_purge(e, ripe_all, &asked), 1);
	CHECK_EQ_INT(asked, 1); /* s is not asked about */
	CHECK_EQ_INT(dkv_engine_entry_count(e), before - 1); /* q; p stays for s */
	CHECK(!dkv_entry_lookup(e, NULL, (const uint8_t *)"\xa1p\xa1q", 4, false));
	CHECK_EQ_INT(dkv_engine_tombstone_count(e), 0);
	/* s deleted again is listed again; with p empty, both go */
	REQUIRE(set(e, "p", "s", 0, true, DKV_PRE_NONE, 0, &r) == 0);
	dkv_result_release(e, &r);
	CHECK_EQ_INT(dkv_engine_tombstone_count(e), 1);
	before = dkv_engine_entry_count(e);
	struct dkv_entry *s = dkv_entry_lookup(e, NULL, (const uint8_t *)"\xa1p\xa1s", 4, false);
	REQUIRE(s);
	dkv_entry_pin(s);
	CHECK_EQ_INT(dkv_engine_purge(e, ripe_all, &asked), 1);
	CHECK_EQ_INT(dkv_engine_entry_count(e), before); /* pinned: stays, without a value */
	CHECK(!s->value);
	dkv_entry_unpin(e, s);
	CHECK_EQ_INT(dkv_engine_entry_count(e), before - 2); /* s and its empty parent */
	CHECK(!dkv_entry_lookup(e, NULL, (const uint8_t *)"\xa1p", 2, false));
	/* the ticks of the deletions stay seen */
	CHECK(dkv_rangeset_contains(&dkv_engine_self(e)->seen, 3));
	dkv_engine_free(e);
}

/* Found by tools/soak (issue 16): a peer's dump, encoded before a
 * deletion reached that peer, arrived after the deletion's tombstone was
 * purged here.  The value it carried had been seen and superseded: it must
 * not come back. */
TEST(seen_change_not_resurrected)
{
	struct dkv_engine *e = mk();
	struct dkv_result r;
	struct dkv_node *b = dkv_engine_node(e, "node-b", 6);
	struct dkv_chain_link set[1] = {{b, 5}}, del[1] = {{b, 9}};
	uint8_t path[] = {0xa1, 'k'};
	struct dkv_change c = {.path = path, .path_len = 2, .value = (const uint8_t *)"\x05",
			       .value_len = 1, .src = DKV_SRC_REMOTE, .chain = set, .nchain = 1,
			       .tock = 10};
	struct dkv_change d = {.path = path, .path_len = 2, .src = DKV_SRC_REMOTE, .chain = del,
			       .nchain = 1, .tock = 20};
	int asked = 0;
	REQUIRE(dkv_engine_apply(e, &c, &r) == 0);
	dkv_result_release(e, &r);
	REQUIRE(dkv_engine_apply(e, &d, &r) == 0);
	dkv_result_release(e, &r);
	CHECK_EQ_INT(dkv_engine_purge(e, ripe_all, &asked), 1);
	REQUIRE(dkv_engine_apply(e, &c, &r) == 0); /* the late copy */
	CHECK(!r.changed);
	dkv_result_release(e, &r);
	struct dkv_entry *k = dkv_entry_lookup(e, NULL, path, 2, false);
	CHECK(!k || !dkv_entry_has_value(k));
	/* a change not seen yet still goes in */
	struct dkv_chain_link later[1] = {{b, 12}};
	c.chain = later;
	c.tock = 30;
	REQUIRE(dkv_engine_apply(e, &c, &r) == 0);
	CHECK(r.changed);
	dkv_result_release(e, &r);
	dkv_engine_free(e);
}

/* A rule for the session tests: refuses every mode in deny, anywhere,
 * and counts the questions. */
struct rule {
	unsigned deny;
	unsigned asked;
	unsigned last_mode;
};

static int deny_rule(struct dkv_session *s, const uint8_t *path, size_t len, bool internal,
		     unsigned mode)
{
	struct rule *r = s->rule;
	r->asked++;
	r->last_mode = mode;
	if (mode & r->deny) {
		snprintf(s->why, sizeof s->why, "mode %#x refused", mode);
		return -EACCES;
	}
	return 0;
}

static int set_as(struct dkv_engine *e, struct dkv_session *s, const char *a, const char *b,
		  int64_t v, bool del, struct dkv_result *res)
{
	return change(e, s, a, b, v, del, DKV_PRE_NONE, 0, res);
}

/* The session's rule is asked inside the engine, with the mode the change
 * needs (c, w, d), before anything is created: a refused change leaves
 * nothing behind.  Remote changes are not asked about. */
TEST(session_checks_local_changes)
{
	struct dkv_engine *e = mk();
	struct rule rl = {.deny = DKV_ACL_CREATE};
	struct dkv_session s = {.user = "joe", .check = deny_rule, .rule = &rl};
	struct dkv_result r;
	size_t before = dkv_engine_entry_count(e);
	CHECK_EQ_INT(set_as(e, &s, "new", "deep", 1, false, &r), -EACCES);
	CHECK(r.entry == NULL);
	dkv_result_release(e, &r);
	CHECK_EQ_INT(rl.last_mode, DKV_ACL_CREATE);
	CHECK(strstr(s.why, "refused") != NULL);
	CHECK_EQ_INT(dkv_engine_entry_count(e), before); /* no inner entry left */
	CHECK_EQ_INT(dkv_engine_self(e)->tick, 0);
	/* the node itself (no session) may; then joe may write (w) but not create */
	REQUIRE(set_as(e, NULL, "new", "deep", 1, false, &r) == 0);
	dkv_result_release(e, &r);
	rl.asked = 0;
	REQUIRE(set_as(e, &s, "new", "deep", 2, false, &r) == 0);
	dkv_result_release(e, &r);
	CHECK_EQ_INT(rl.asked, 1);
	CHECK_EQ_INT(rl.last_mode, DKV_ACL_WRITE);
	rl.deny = DKV_ACL_DELETE;
	CHECK_EQ_INT(set_as(e, &s, "new", "deep", 0, true, &r), -EACCES);
	dkv_result_release(e, &r);
	CHECK_EQ_INT(rl.last_mode, DKV_ACL_DELETE);
	/* a session without a rule is not asked anything */
	struct dkv_session open = {.user = "root"};
	REQUIRE(set_as(e, &open, "new", "deep", 0, true, &r) == 0);
	CHECK(r.changed);
	dkv_result_release(e, &r);
	/* reads: dkv_engine_find asks with the caller's mode */
	struct dkv_entry *ent;
	uint8_t path[] = {0xa3, 'n', 'e', 'w'};
	rl.deny = DKV_ACL_READ;
	CHECK_EQ_INT(dkv_engine_find(e, &s, path, sizeof path, false, DKV_ACL_READ, &ent),
		     -EACCES);
	CHECK(ent == NULL);
	CHECK_EQ_INT(dkv_engine_find(e, &s, path, sizeof path, false, DKV_ACL_ENUM, &ent), 0);
	CHECK(ent != NULL);
	uint8_t none[] = {0xc0};
	CHECK_EQ_INT(dkv_engine_find(e, NULL, none, 1, false, DKV_ACL_READ, &ent),
		     DKV_E_INTERNAL);
	dkv_engine_free(e);
}

/* prev (the value must be this) and idem (the same value changes
 * nothing), checked in the engine in DistKV's order: prev, idem, chain. */
TEST(prev_and_idem)
{
	struct dkv_engine *e = mk();
	struct dkv_result r;
	uint8_t path[] = {0xa1, 'k'};
	uint8_t one = 0x01, two = 0x02;
	struct dkv_change c = {.path = path, .path_len = 2, .value = &one, .value_len = 1,
			       .src = DKV_SRC_LOCAL, .prev = &two, .prev_len = 1};
	CHECK_EQ_INT(dkv_engine_apply(e, &c, &r), DKV_E_PREV); /* nothing there */
	dkv_result_release(e, &r);
	c.prev = NULL;
	REQUIRE(dkv_engine_apply(e, &c, &r) == 0);
	dkv_result_release(e, &r);
	uint64_t tick = dkv_engine_self(e)->tick;
	c.idem = true;
	REQUIRE(dkv_engine_apply(e, &c, &r) == 0);
	CHECK(r.idem && !r.changed);
	CHECK(r.entry && r.entry->value->chain[0].tick == tick);
	dkv_result_release(e, &r);
	CHECK_EQ_INT(dkv_engine_self(e)->tick, tick); /* no tick used */
	/* idem wins over a stale chain, as in DistKV */
	c.pre = DKV_PRE_CHAIN;
	c.pre_node = "node-a";
	c.pre_node_len = 6;
	c.pre_tick = 999;
	REQUIRE(dkv_engine_apply(e, &c, &r) == 0);
	CHECK(r.idem);
	dkv_result_release(e, &r);
	c.value = &two;
	CHECK_EQ_INT(dkv_engine_apply(e, &c, &r), -ESTALE);
	dkv_result_release(e, &r);
	/* prev: the value must match; then the change goes through */
	c.pre = DKV_PRE_NONE;
	c.prev = &two;
	CHECK_EQ_INT(dkv_engine_apply(e, &c, &r), DKV_E_PREV);
	dkv_result_release(e, &r);
	c.prev = &one;
	REQUIRE(dkv_engine_apply(e, &c, &r) == 0);
	CHECK(r.changed && !r.idem);
	dkv_result_release(e, &r);
	/* a delete with prev of what is not there */
	uint8_t gone[] = {0xa1, 'z'};
	struct dkv_change d = {.path = gone, .path_len = 2, .src = DKV_SRC_LOCAL, .prev = &one,
			       .prev_len = 1};
	CHECK_EQ_INT(dkv_engine_apply(e, &d, &r), DKV_E_PREV);
	dkv_result_release(e, &r);
	dkv_engine_free(e);
}

TEST(error_table)
{
	CHECK(strstr(dkv_strerror(DKV_E_PREV), "previous value") != NULL);
	CHECK(!strcmp(dkv_error_name(DKV_E_PREV), "DKV_E_PREV"));
	CHECK_EQ_INT(dkv_errno(DKV_E_PREV), ESTALE);
	CHECK_EQ_INT(dkv_errno(DKV_E_INTERNAL), EINVAL);
	CHECK_EQ_INT(dkv_errno(-ENOENT), ENOENT);
	CHECK(dkv_error_name(-ENOENT) == NULL);
	CHECK(!strcmp(dkv_strerror(-ENOENT), strerror(ENOENT)));
	CHECK_EQ_INT(dkv_errno(-(DKV_E_BASE + 999)), EIO); /* not a code */
	CHECK_EQ_INT(dkv_errno(DKV_E_BASE), EIO);          /* positive: a bug */
}

TESTS(ticks_and_chains, preconditions, tombstones_and_pruning, watchers_and_hooks,
      seen_change_not_resurrected,
      internal_is_separate, remote_changes, conflicts_resolve_the_same_everywhere,
      purge_tombstones, session_checks_local_changes, prev_and_idem, error_table)
