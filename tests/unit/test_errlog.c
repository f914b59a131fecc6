/* test_errlog.c - the server's error log on a real loop: the first
 * occurrence written at the next turn, repeats counted and written once
 * per interval, fixes resolving and new occurrences reopening, records
 * of other nodes found and updated instead of duplicated (the earlier of
 * two), the log's own paths ignored, the limits on new and pending
 * errors, and what close still writes. */
#include "errlog.h"
#include "test.h"

#include <errno.h>

#define INTERVAL 200

struct fix {
	uv_loop_t loop;
	struct dkv_engine *e;
	struct dkv_errlog *el;
	struct dkv_watch w;  /* counts the changes below (.distkv, error) */
	unsigned changes;
};

static void count_cb(struct dkv_watch *w, const struct dkv_event *ev)
{
	struct fix *f = (struct fix *)((char *)w - offsetof(struct fix, w));
	(void)ev;
	f->changes++;
}

static void errpath(struct dkv_path *p)
{
	dkv_path_init(p);
	dkv_path_push_str(p, ".distkv");
	dkv_path_push_str(p, "error");
}

static void setup(struct fix *f, const struct dkv_errlog_opts *o)
{
	memset(f, 0, sizeof *f);
	uv_loop_init(&f->loop);
	f->e = dkv_engine_new(&(struct dkv_engine_opts){.node = "node-a"});
	struct dkv_errlog_opts d = {.interval_ms = INTERVAL};
	f->el = dkv_errlog_new(&f->loop, f->e, o ? o : &d);
	struct dkv_path p;
	errpath(&p);
	f->w.cb = count_cb;
	dkv_watch_start(f->e, &f->w, NULL, p.enc.data, p.enc.len);
	dkv_path_release(&p);
}

static void teardown(struct fix *f)
{
	dkv_watch_stop(f->e, &f->w, NULL);
	dkv_errlog_close(f->el);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	CHECK_EQ_INT(uv_loop_close(&f->loop), 0);
	dkv_errlog_free(f->el);
	dkv_engine_free(f->e);
}

static void stop_cb(uv_timer_t *t)
{
	uv_stop(t->loop);
}

/* Run the loop for ms. */
static void run_for(struct fix *f, unsigned ms)
{
	uv_timer_t t;
	uv_timer_init(&f->loop, &t);
	uv_timer_start(&t, stop_cb, ms, 0);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(&f->loop, UV_RUN_NOWAIT);
}

static void data_path(struct dkv_buf *out, const char *a, const char *b)
{
	struct dkv_path p;
	dkv_path_init(&p);
	dkv_path_push_str(&p, a);
	if (b)
		dkv_path_push_str(&p, b);
	dkv_buf_append(out, p.enc.data, p.enc.len);
	dkv_path_release(&p);
}

static void note(struct fix *f, enum dkv_errsys sys, const char *a, const char *b,
		 const char *msg)
{
	struct dkv_buf p = {0};
	data_path(&p, a, b);
	struct dkv_errlog_occ o = {.sys = sys, .path = p.data, .plen = p.len,
				   .severity = DKV_SEV_ERROR, .message = msg};
	dkv_errlog_note(f->el, &o);
	dkv_buf_release(&p);
}

static void fixed(struct fix *f, enum dkv_errsys sys, const char *a, const char *b)
{
	struct dkv_buf p = {0};
	data_path(&p, a, b);
	dkv_errlog_fixed(f->el, sys, p.data, p.len);
	dkv_buf_release(&p);
}

/* The records below (.distkv, error, node): how many, and the first. */
static unsigned records(struct fix *f, const char *node, struct dkv_entry **first)
{
	struct dkv_path p;
	errpath(&p);
	dkv_path_push_str(&p, node);
	struct dkv_entry *n = dkv_entry_lookup(f->e, NULL, p.enc.data, p.enc.len, false);
	dkv_path_release(&p);
	unsigned c = 0;
	if (first)
		*first = NULL;
	for (struct dkv_entry *r = n ? n->kids : NULL; r; r = r->next) {
		if (!dkv_entry_has_value(r))
			continue;
		if (!c++ && first)
			*first = r;
	}
	return c;
}

/* The item under key in the entry's map (its head in *it): false when
 * there is none. */
static bool field(const struct dkv_entry *ent, const char *key, struct dkv_mp_item *it)
{
	struct dkv_mp_reader r;
	struct dkv_mp_item m, k;
	if (!ent || !dkv_entry_has_value(ent))
		return false;
	dkv_mp_reader_init(&r, dkv_value_data(ent->value), ent->value->len);
	if (dkv_mp_read(&r, &m) || m.type != DKV_MP_MAP)
		return false;
	for (uint32_t i = 0; i < m.v.n; i++) {
		if (dkv_mp_read(&r, &k))
			return false;
		if (dkv_mp_streq(&k, key))
			return dkv_mp_read(&r, it) == 0;
		if (dkv_mp_skip(&r))
			return false;
	}
	return false;
}

static long long count_of(const struct dkv_entry *ent)
{
	struct dkv_mp_item it;
	return field(ent, "count", &it) && it.type == DKV_MP_UINT ? (long long)it.v.u : -1;
}

/* resolved: 1 when a tock or true, 0 when false, -1 when odd. */
static int resolved_of(const struct dkv_entry *ent)
{
	struct dkv_mp_item it;
	if (!field(ent, "resolved", &it))
		return -1;
	if (it.type == DKV_MP_BOOL)
		return it.v.b;
	return it.type == DKV_MP_UINT && it.v.u > 0 ? 1 : -1;
}

static bool str_is(const struct dkv_entry *ent, const char *key, const char *want)
{
	struct dkv_mp_item it;
	return field(ent, key, &it) && it.type == DKV_MP_STR && dkv_mp_streq(&it, want);
}

static struct dkv_entry *detail(struct fix *f, struct dkv_entry *rec, const char *node)
{
	struct dkv_path p;
	dkv_path_init(&p);
	dkv_path_push_str(&p, node);
	struct dkv_entry *d = dkv_entry_lookup(f->e, rec, p.enc.data, p.enc.len, false);
	dkv_path_release(&p);
	return d;
}

TEST(first_then_repeats)
{
	struct fix f;
	setup(&f, NULL);
	struct dkv_entry *rec;
	note(&f, DKV_ERRSYS_TYPE, "stats", "a", "ValueError('x')");
	CHECK_EQ_INT(records(&f, "node-a", NULL), 0); /* nothing at once */
	run_for(&f, 20);
	REQUIRE(records(&f, "node-a", &rec) == 1);
	CHECK_EQ_INT(count_of(rec), 1);
	CHECK_EQ_INT(resolved_of(rec), 0);
	CHECK(str_is(rec, "subsystem", "type"));
	struct dkv_entry *d = detail(&f, rec, "node-a");
	CHECK(str_is(d, "message", "ValueError('x')"));
	unsigned before = f.changes;

	for (int i = 0; i < 1000; i++)
		note(&f, DKV_ERRSYS_TYPE, "stats", "a", "ValueError('y')");
	run_for(&f, 20); /* within the interval: counted, not written */
	CHECK_EQ_INT(count_of(rec), 1);
	CHECK_EQ_INT(f.changes, before);
	run_for(&f, INTERVAL + 100);
	CHECK_EQ_INT(count_of(rec), 1001);
	CHECK_EQ_INT(f.changes, before + 2); /* the record and the detail, once */
	CHECK(str_is(detail(&f, rec, "node-a"), "message", "ValueError('y')"));
	CHECK_EQ_INT(records(&f, "node-a", NULL), 1);
	teardown(&f);
}

TEST(fixed_resolves_and_reopens)
{
	struct fix f;
	setup(&f, NULL);
	struct dkv_entry *rec;
	fixed(&f, DKV_ERRSYS_TYPE, "stats", "a"); /* nothing open: nothing */
	run_for(&f, 20);
	CHECK_EQ_INT(records(&f, "node-a", NULL), 0);
	CHECK_EQ_INT(f.changes, 0);

	note(&f, DKV_ERRSYS_CODEC, "stats", "a", "boom");
	run_for(&f, 20);
	REQUIRE(records(&f, "node-a", &rec) == 1);
	fixed(&f, DKV_ERRSYS_TYPE, "stats", "a"); /* another subsystem */
	fixed(&f, DKV_ERRSYS_CODEC, "stats", "b"); /* another path */
	run_for(&f, INTERVAL + 100);
	CHECK_EQ_INT(resolved_of(rec), 0);
	fixed(&f, DKV_ERRSYS_CODEC, "stats", "a");
	run_for(&f, INTERVAL + 100);
	CHECK_EQ_INT(resolved_of(rec), 1);
	CHECK_EQ_INT(count_of(rec), 1);
	unsigned before = f.changes;
	for (int i = 0; i < 100; i++)
		fixed(&f, DKV_ERRSYS_CODEC, "stats", "a"); /* resolved: costs nothing */
	run_for(&f, INTERVAL + 100);
	CHECK_EQ_INT(f.changes, before);

	note(&f, DKV_ERRSYS_CODEC, "stats", "a", "boom again");
	run_for(&f, INTERVAL + 100);
	CHECK_EQ_INT(resolved_of(rec), 0);
	CHECK_EQ_INT(count_of(rec), 2);
	CHECK_EQ_INT(records(&f, "node-a", NULL), 1);
	/* a failure and a fix within one interval: counted, then resolved */
	note(&f, DKV_ERRSYS_CODEC, "stats", "a", "boom 3");
	fixed(&f, DKV_ERRSYS_CODEC, "stats", "a");
	run_for(&f, INTERVAL + 100);
	CHECK_EQ_INT(count_of(rec), 3);
	CHECK_EQ_INT(resolved_of(rec), 1);
	teardown(&f);
}

/* A record at (.distkv, error, node, tock) with the given first_seen. */
static void put_record(struct fix *f, const char *node, uint64_t tock, double first,
		       const char *a, const char *b)
{
	struct dkv_path p;
	struct dkv_buf v = {0}, dp = {0}, tk = {0};
	struct dkv_result res;
	errpath(&p);
	dkv_path_push_str(&p, node);
	dkv_mp_uint(&tk, tock);
	dkv_path_push_canon(&p, tk.data, tk.len);
	data_path(&dp, a, b);
	dkv_mp_map(&v, 5);
	dkv_mp_cstr(&v, "path");
	dkv_path_encode(&v, dp.data, dp.len);
	dkv_mp_cstr(&v, "subsystem");
	dkv_mp_cstr(&v, "type");
	dkv_mp_cstr(&v, "count");
	dkv_mp_uint(&v, 7);
	dkv_mp_cstr(&v, "first_seen");
	dkv_mp_double(&v, first);
	dkv_mp_cstr(&v, "resolved");
	dkv_mp_uint(&v, 3);
	struct dkv_change c = {.path = p.enc.data, .path_len = p.enc.len, .value = v.data,
			       .value_len = v.len, .src = DKV_SRC_LOCAL};
	CHECK_EQ_INT(dkv_engine_apply(f->e, &c, &res), 0);
	dkv_result_release(f->e, &res);
	dkv_path_release(&p);
	dkv_buf_release(&v);
	dkv_buf_release(&dp);
	dkv_buf_release(&tk);
}

TEST(other_nodes_records_are_updated)
{
	struct fix f;
	setup(&f, NULL);
	struct dkv_entry *late, *early;
	put_record(&f, "node-c", 9, 2000.0, "x", NULL);
	put_record(&f, "node-b", 5, 1000.0, "x", NULL); /* seen first: the one */
	REQUIRE(records(&f, "node-c", &late) == 1 && records(&f, "node-b", &early) == 1);
	note(&f, DKV_ERRSYS_TYPE, "x", NULL, "again");
	run_for(&f, 20);
	CHECK_EQ_INT(records(&f, "node-a", NULL), 0); /* no record of our own */
	CHECK_EQ_INT(count_of(early), 8);
	CHECK_EQ_INT(resolved_of(early), 0); /* reopened */
	CHECK_EQ_INT(count_of(late), 7);
	CHECK(str_is(detail(&f, early, "node-a"), "message", "again"));
	struct dkv_errlog_stats st;
	dkv_errlog_stats(f.el, &st);
	CHECK_EQ_INT(st.records, 2);
	CHECK_EQ_INT(st.open, 1);
	teardown(&f);
}

TEST(records_made_before_are_indexed)
{
	struct fix f;
	memset(&f, 0, sizeof f);
	uv_loop_init(&f.loop);
	f.e = dkv_engine_new(&(struct dkv_engine_opts){.node = "node-a"});
	put_record(&f, "node-b", 5, 1000.0, "x", NULL); /* loaded before the log starts */
	f.el = dkv_errlog_new(&f.loop, f.e, &(struct dkv_errlog_opts){.interval_ms = INTERVAL});
	struct dkv_path p;
	errpath(&p);
	f.w.cb = count_cb;
	dkv_watch_start(f.e, &f.w, NULL, p.enc.data, p.enc.len);
	dkv_path_release(&p);
	struct dkv_entry *rec;
	REQUIRE(records(&f, "node-b", &rec) == 1);
	note(&f, DKV_ERRSYS_TYPE, "x", NULL, "again");
	run_for(&f, 20);
	CHECK_EQ_INT(count_of(rec), 8);
	CHECK_EQ_INT(records(&f, "node-a", NULL), 0);
	teardown(&f);
}

TEST(own_paths_and_odd_records_are_ignored)
{
	struct fix f;
	setup(&f, NULL);
	note(&f, DKV_ERRSYS_TYPE, ".distkv", "error", "a type on the error log");
	run_for(&f, 20);
	CHECK_EQ_INT(f.changes, 0);
	/* records that are none: not indexed, nothing breaks */
	struct dkv_path p;
	struct dkv_buf v = {0};
	struct dkv_result res;
	errpath(&p);
	dkv_path_push_str(&p, "node-z");
	dkv_path_push_str(&p, "junk");
	dkv_mp_cstr(&v, "not a map");
	struct dkv_change c = {.path = p.enc.data, .path_len = p.enc.len, .value = v.data,
			       .value_len = v.len, .src = DKV_SRC_LOCAL};
	CHECK_EQ_INT(dkv_engine_apply(f.e, &c, &res), 0);
	dkv_result_release(f.e, &res);
	c.value = NULL; /* and its deletion */
	CHECK_EQ_INT(dkv_engine_apply(f.e, &c, &res), 0);
	dkv_result_release(f.e, &res);
	dkv_path_release(&p);
	dkv_buf_release(&v);
	struct dkv_errlog_stats st;
	dkv_errlog_stats(f.el, &st);
	CHECK_EQ_INT(st.records, 0);
	/* a record deleted: forgotten, a new occurrence makes a new one */
	note(&f, DKV_ERRSYS_LOG, "node-a", NULL, "cannot write");
	run_for(&f, 20);
	struct dkv_entry *rec;
	REQUIRE(records(&f, "node-a", &rec) == 1);
	p = (struct dkv_path){0};
	dkv_path_init(&p);
	dkv_entry_path(rec, NULL, &p);
	struct dkv_change del = {.path = p.enc.data, .path_len = p.enc.len, .src = DKV_SRC_LOCAL};
	CHECK_EQ_INT(dkv_engine_apply(f.e, &del, &res), 0);
	dkv_result_release(f.e, &res);
	dkv_path_release(&p);
	dkv_errlog_stats(f.el, &st);
	CHECK_EQ_INT(st.records, 0);
	note(&f, DKV_ERRSYS_LOG, "node-a", NULL, "cannot write");
	run_for(&f, 20);
	CHECK_EQ_INT(records(&f, "node-a", NULL), 1); /* the new one (the old one is a tombstone) */
	teardown(&f);
}

TEST(limits)
{
	struct fix f;
	setup(&f, &(struct dkv_errlog_opts){.interval_ms = INTERVAL, .max_new = 2,
					    .max_pending = 4});
	const char *names[] = {"a", "b", "c", "d", "e", "f"};
	for (int i = 0; i < 6; i++)
		note(&f, DKV_ERRSYS_TYPE, "p", names[i], "x");
	struct dkv_errlog_stats st;
	dkv_errlog_stats(f.el, &st);
	CHECK_EQ_INT(st.pending, 4);
	CHECK_EQ_INT(st.dropped, 2);
	run_for(&f, 20);
	CHECK_EQ_INT(records(&f, "node-a", NULL), 2); /* two new ones per interval */
	run_for(&f, INTERVAL + 100);
	CHECK_EQ_INT(records(&f, "node-a", NULL), 4);
	dkv_errlog_stats(f.el, &st);
	CHECK_EQ_INT(st.pending, 0);
	CHECK_EQ_INT(st.open, 4);
	teardown(&f);
}

TEST(close_writes_what_waits)
{
	struct fix f;
	setup(&f, NULL);
	note(&f, DKV_ERRSYS_PEER, "node-a", "node-b", "login refused");
	dkv_errlog_close(f.el); /* before the loop ran */
	note(&f, DKV_ERRSYS_PEER, "node-a", "node-c", "too late");
	fixed(&f, DKV_ERRSYS_PEER, "node-a", "node-b");
	struct dkv_entry *rec;
	REQUIRE(records(&f, "node-a", &rec) == 1);
	CHECK(str_is(rec, "subsystem", "peer"));
	CHECK_EQ_INT(resolved_of(rec), 0);
	teardown(&f);
}

TESTS(first_then_repeats, fixed_resolves_and_reopens, other_nodes_records_are_updated,
      records_made_before_are_indexed, own_paths_and_odd_records_are_ignored, limits,
      close_writes_what_waits)
