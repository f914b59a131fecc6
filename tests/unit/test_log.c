/* test_log.c - state files and change logs: the format round trip, damaged
 * input (truncation at every offset, garbage, empty files), merging by
 * the chain rules (twice, in any order, another node's file), ticks after
 * a load, and the writer on a real loop (switching, always, errors). */
#include "log.h"
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static struct dkv_engine *mk(const char *node)
{
	return dkv_engine_new(&(struct dkv_engine_opts){.node = node, .chain_length = 5});
}

static void put(struct dkv_engine *e, bool internal, const char *a, const char *b, int64_t v,
		bool del)
{
	struct dkv_path p;
	struct dkv_buf val = {0};
	struct dkv_result res;
	dkv_path_init(&p);
	if (a)
		dkv_path_push_str(&p, a);
	if (b)
		dkv_path_push_str(&p, b);
	dkv_mp_int(&val, v);
	struct dkv_change c = {.path = p.enc.data, .path_len = p.enc.len, .internal = internal,
			       .value = del ? NULL : val.data, .value_len = val.len,
			       .src = DKV_SRC_LOCAL};
	int rc = dkv_engine_apply(e, &c, &res);
	CHECK_EQ_INT(rc, 0);
	dkv_result_release(e, &res);
	dkv_path_release(&p);
	dkv_buf_release(&val);
}

/* A small history: values, an overwrite, a deletion, internal data. */
static void history(struct dkv_engine *e)
{
	put(e, false, NULL, NULL, 42, false); /* the root */
	put(e, false, "a", "b", 1, false);
	put(e, false, "a", "c", 2, false);
	put(e, false, "a", "b", 3, false);
	put(e, false, "d", NULL, 4, false);
	put(e, false, "d", NULL, 0, true);
	put(e, true, "acl", "x", 5, false);
}

static void entry_record(struct dkv_buf *out, struct dkv_engine *e, const char *key)
{
	struct dkv_path tmp;
	dkv_path_init(&tmp);
	struct dkv_entry *x = dkv_entry_lookup(e, NULL, (const uint8_t *)key, strlen(key), false);
	REQUIRE(x != NULL);
	dkv_log_encode_entry(out, x, &tmp);
	dkv_path_release(&tmp);
}

static void dump(struct dkv_engine *e, struct dkv_buf *out)
{
	dkv_log_encode_header(out, dkv_engine_self(e)->name, DKV_LOG_KIND_DUMP);
	dkv_log_encode_dump(out, e, true);
}

/* Whether b holds every entry state of a (value, chain, tock) and no more. */
static bool same_tree(struct dkv_engine *a, struct dkv_engine *b)
{
	size_t na = 0, nb = 0;
	struct dkv_path p;
	bool ok = true;
	dkv_path_init(&p);
	for (struct dkv_entry *x = dkv_engine_root(a); x && ok;
	     x = dkv_entry_walk_next(x, dkv_engine_root(a), true)) {
		if (!x->value)
			continue;
		na++;
		p.enc.len = 0;
		p.n = 0;
		dkv_entry_path(x, NULL, &p);
		struct dkv_entry *y = dkv_entry_lookup(b, NULL, p.enc.data, p.enc.len, false);
		if (!y || !y->value || !dkv_value_same_data(x->value, y->value) ||
		    x->value->nchain != y->value->nchain || x->tock != y->tock) {
			ok = false;
			break;
		}
		for (uint32_t i = 0; i < x->value->nchain; i++)
			if (strcmp(x->value->chain[i].node->name, y->value->chain[i].node->name) ||
			    x->value->chain[i].tick != y->value->chain[i].tick)
				ok = false;
	}
	for (struct dkv_entry *y = dkv_engine_root(b); y;
	     y = dkv_entry_walk_next(y, dkv_engine_root(b), true))
		nb += y->value != NULL;
	dkv_path_release(&p);
	if (ok && na != nb)
		printf("#   %zu entries vs %zu\n", na, nb);
	return ok && na == nb;
}

static unsigned nwarn;
static char lastwarn[600];

static void count_warn(void *arg, const char *msg)
{
	nwarn++;
	snprintf(lastwarn, sizeof lastwarn, "%s", msg);
}

static const struct dkv_log_load_opts quiet = {.warn = count_warn};
static const struct dkv_log_load_opts skipping = {.warn = count_warn, .skip_damaged = true};

static int load(struct dkv_engine *e, const struct dkv_buf *b, const struct dkv_log_load_opts *o,
		char *err)
{
	return dkv_log_load_mem(e, b->data, b->len, "mem", o, NULL, err, 600);
}

TEST(round_trip)
{
	struct dkv_engine *a = mk("node-a"), *b = mk("node-a");
	struct dkv_buf d = {0};
	char err[600];
	struct dkv_log_stats st = {0};
	history(a);
	dump(a, &d);
	REQUIRE(dkv_log_load_mem(b, d.data, d.len, "mem", &quiet, &st, err, sizeof err) == 0);
	CHECK(same_tree(a, b));
	CHECK_EQ_INT(st.records, 6); /* state, root, a.b, a.c, d (a tombstone), acl.x */
	CHECK_EQ_INT(st.bytes, d.len);
	CHECK_EQ_INT(dkv_engine_self(b)->tick, dkv_engine_self(a)->tick);
	CHECK(dkv_engine_tock(b) >= dkv_engine_tock(a));
	CHECK(dkv_rangeset_contains(&dkv_engine_self(b)->deleted, 6));
	/* internal data came back below None */
	struct dkv_path p;
	dkv_path_init(&p);
	dkv_path_push_str(&p, "acl");
	dkv_path_push_str(&p, "x");
	struct dkv_entry *x = dkv_entry_lookup(b, dkv_engine_meta(b), p.enc.data, p.enc.len, false);
	CHECK(x && dkv_entry_has_value(x));
	dkv_path_release(&p);
	dkv_buf_release(&d);
	dkv_engine_free(a);
	dkv_engine_free(b);
}

TEST(truncated_at_every_offset)
{
	struct dkv_engine *a = mk("node-a");
	struct dkv_buf d = {0};
	char err[600];
	history(a);
	dump(a, &d);
	size_t whole = d.len;
	put(a, false, "last", NULL, 12345678, false);
	entry_record(&d, a, "\xa4last");
	struct dkv_engine *ref = mk("node-a");
	struct dkv_buf prefix = {.data = d.data, .len = whole};
	REQUIRE(load(ref, &prefix, &quiet, err) == 0);
	for (size_t cut = whole; cut < d.len; cut++) {
		struct dkv_engine *b = mk("node-a");
		struct dkv_buf part = {.data = d.data, .len = cut};
		nwarn = 0;
		int rc = load(b, &part, &quiet, err);
		CHECK_EQ_INT(rc, 0);
		CHECK_EQ_INT(nwarn, cut > whole);
		if (cut > whole) {
			char want[64];
			snprintf(want, sizeof want, "truncated record at byte %zu", whole);
			CHECK(strstr(lastwarn, want) != NULL);
		}
		CHECK(same_tree(ref, b));
		dkv_engine_free(b);
	}
	/* the whole thing loads the last record too */
	struct dkv_engine *b = mk("node-a");
	CHECK_EQ_INT(load(b, &d, &quiet, err), 0);
	CHECK(same_tree(a, b));
	dkv_engine_free(b);
	dkv_engine_free(ref);
	dkv_engine_free(a);
	dkv_buf_release(&d);
}

/* cat of a crashed log (torn last record) and the next one */
TEST(torn_record_before_next_file)
{
	struct dkv_engine *a = mk("node-a"), *a2 = mk("node-a");
	struct dkv_buf d = {0}, d2 = {0}, cat = {0};
	char err[600];
	history(a);
	dump(a, &d);
	put(a2, false, "other", NULL, 7, false);
	put(a2, false, "more", NULL, 8, false);
	dump(a2, &d2);
	for (size_t cut = 1; cut < 12; cut++) {
		cat.len = 0;
		dkv_buf_append(&cat, d.data, d.len - cut);
		dkv_buf_append(&cat, d2.data, d2.len);
		struct dkv_engine *b = mk("node-a");
		nwarn = 0;
		int rc = load(b, &cat, &quiet, err);
		CHECK_EQ_INT(rc, 0);
		CHECK_EQ_INT(nwarn, 1);
		CHECK(strstr(lastwarn, "before the next log header") != NULL);
		CHECK(dkv_entry_lookup(b, NULL, (const uint8_t *)"\xa5other", 6, false) != NULL);
		CHECK(dkv_entry_lookup(b, NULL, (const uint8_t *)"\xa4more", 5, false) != NULL);
		dkv_engine_free(b);
	}
	dkv_buf_release(&d);
	dkv_buf_release(&d2);
	dkv_buf_release(&cat);
	dkv_engine_free(a);
	dkv_engine_free(a2);
}

TEST(garbage_in_the_middle)
{
	struct dkv_engine *a = mk("node-a");
	struct dkv_buf d = {0}, bad = {0};
	char err[600];
	history(a);
	dump(a, &d);
	put(a, false, "late", NULL, 99, false);
	size_t mid = d.len;
	entry_record(&d, a, "\xa4late");
	static const uint8_t junk[][6] = {
		{0xc1, 0xc1, 0xc1, 0xc1, 0xc1, 0xc1}, /* not msgpack */
		{0x01, 0x02, 0x03, 0x04, 0x05, 0x06}, /* msgpack, not records */
		{0x96, 0x01, 0xc4, 0x01, 0x00, 0x00}, /* record-like, no CRC */
	};
	for (size_t j = 0; j < sizeof junk / sizeof junk[0]; j++) {
		bad.len = 0;
		dkv_buf_append(&bad, d.data, mid);
		dkv_buf_append(&bad, junk[j], sizeof junk[j]);
		dkv_buf_append(&bad, d.data + mid, d.len - mid);
		struct dkv_engine *b = mk("node-a");
		int rc = load(b, &bad, &quiet, err);
		CHECK_EQ_INT(rc, -EBADMSG);
		char want[64];
		snprintf(want, sizeof want, "mem: byte %zu:", mid);
		CHECK(strstr(err, want) != NULL);
		dkv_engine_free(b);
		/* skipping the damage loads the record behind it */
		b = mk("node-a");
		nwarn = 0;
		rc = load(b, &bad, &skipping, err);
		CHECK_EQ_INT(rc, 0);
		CHECK_EQ_INT(nwarn, 1);
		CHECK(same_tree(a, b));
		dkv_engine_free(b);
	}
	/* a flipped bit inside a record: the checksum catches it */
	bad.len = 0;
	dkv_buf_append(&bad, d.data, d.len);
	bad.data[mid + 10] ^= 0x01;
	struct dkv_engine *b = mk("node-a");
	CHECK_EQ_INT(load(b, &bad, &quiet, err), -EBADMSG);
	dkv_engine_free(b);
	/* not a log at all */
	struct dkv_buf text = {.data = (uint8_t *)"hello world\n", .len = 12};
	b = mk("node-a");
	CHECK_EQ_INT(load(b, &text, &quiet, err), -EBADMSG);
	CHECK(strstr(err, "byte 0: not a distkv log") != NULL);
	dkv_engine_free(b);
	dkv_buf_release(&d);
	dkv_buf_release(&bad);
	dkv_engine_free(a);
}

TEST(empty_and_newer_format)
{
	struct dkv_engine *b = mk("node-a");
	struct dkv_buf empty = {0}, newer = {0};
	char err[600];
	/* an empty file (a crash right after creating a log) loads, with a
	 * warning naming it */
	nwarn = 0;
	lastwarn[0] = 0;
	struct dkv_log_stats st = {0};
	CHECK_EQ_INT(dkv_log_load_mem(b, NULL, 0, "mem", &quiet, &st, err, sizeof err), 0);
	CHECK_EQ_INT(nwarn, 1);
	CHECK_EQ_INT(st.warnings, 1);
	CHECK_EQ_INT(st.records, 0);
	CHECK_EQ_STR(lastwarn, "mem: empty (0 bytes): no log header, nothing loaded");
	CHECK_EQ_INT(dkv_engine_entry_count(b) <= 2, 1);
	nwarn = 0;
	CHECK_EQ_INT(load(b, &empty, &skipping, err), 0);
	CHECK_EQ_INT(nwarn, 1);
	/* the same through a real file: the message names its path */
	char dir[] = "/tmp/dkv-test-log-XXXXXX", path[128];
	REQUIRE(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/empty.log", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	REQUIRE(fd >= 0);
	close(fd);
	nwarn = 0;
	lastwarn[0] = 0;
	CHECK_EQ_INT(dkv_log_load_file(b, path, &quiet, NULL, err, sizeof err), 0);
	CHECK_EQ_INT(nwarn, 1);
	CHECK(!strncmp(lastwarn, path, strlen(path)) && strstr(lastwarn, ": empty") != NULL);
	unlink(path);
	rmdir(dir);
	/* an empty replication message is no file: no warning */
	struct dkv_log_load_opts remote = {.warn = count_warn, .remote = true};
	nwarn = 0;
	CHECK_EQ_INT(dkv_log_load_mem(b, NULL, 0, "peer", &remote, NULL, err, sizeof err), 0);
	CHECK_EQ_INT(nwarn, 0);
	/* a header alone is a good (empty) log: no warning */
	struct dkv_buf hdr = {0};
	dkv_log_encode_header(&hdr, "node-a", DKV_LOG_KIND_LOG);
	nwarn = 0;
	CHECK_EQ_INT(load(b, &hdr, &quiet, err), 0);
	CHECK_EQ_INT(nwarn, 0);
	dkv_buf_release(&hdr);
	dkv_mp_map(&newer, 1);
	dkv_mp_cstr(&newer, "distkv-log");
	dkv_mp_uint(&newer, DKV_LOG_FORMAT + 1);
	CHECK_EQ_INT(load(b, &newer, &skipping, err), -EPROTO);
	CHECK(strstr(err, "format 2") != NULL);
	dkv_buf_release(&newer);
	dkv_engine_free(b);
}

TEST(another_node_and_ticks)
{
	struct dkv_engine *a = mk("node-a"), *b = mk("node-b");
	struct dkv_buf d = {0};
	char err[600];
	history(a);
	dump(a, &d);
	REQUIRE(load(b, &d, &quiet, err) == 0);
	CHECK(same_tree(a, b));
	CHECK_EQ_INT(dkv_engine_self(b)->tick, 0);
	struct dkv_node *na = dkv_engine_find_node(b, "node-a", 6);
	REQUIRE(na != NULL);
	CHECK_EQ_INT(na->tick, dkv_engine_self(a)->tick);
	/* a change on top of node-a's chains the two */
	put(b, false, "a", "b", 77, false);
	struct dkv_entry *x = dkv_entry_lookup(b, NULL, (const uint8_t *)"\xa1" "a\xa1" "b", 4, false);
	REQUIRE(x && x->value->nchain == 2);
	CHECK_EQ_STR(x->value->chain[0].node->name, "node-b");
	CHECK_EQ_INT(x->value->chain[0].tick, 1);
	CHECK_EQ_STR(x->value->chain[1].node->name, "node-a");
	/* node-a restarting from the file counts on above its own ticks */
	struct dkv_engine *a2 = mk("node-a");
	REQUIRE(load(a2, &d, &quiet, err) == 0);
	uint64_t t = dkv_engine_self(a2)->tick;
	CHECK_EQ_INT(t, dkv_engine_self(a)->tick);
	put(a2, false, "new", NULL, 1, false);
	CHECK_EQ_INT(dkv_engine_self(a2)->tick, t + 1);
	dkv_buf_release(&d);
	dkv_engine_free(a);
	dkv_engine_free(a2);
	dkv_engine_free(b);
}

TEST(twice_and_any_order)
{
	struct dkv_engine *a = mk("node-a");
	struct dkv_buf old = {0}, inc = {0};
	char err[600];
	struct dkv_path tmp;
	dkv_path_init(&tmp);
	history(a);
	dump(a, &old);
	/* an incremental log of later changes, as the writer makes them */
	dkv_log_encode_header(&inc, "node-a", DKV_LOG_KIND_LOG);
	dkv_log_encode_state(&inc, a);
	static const char *const keys[] = {"\xa1" "a\xa1" "b", "\xa1" "a\xa1" "c", "\xa1" "d", "\xa1" "e"};
	put(a, false, "a", "b", 10, false);
	put(a, false, "a", "c", 0, true);
	put(a, false, "d", NULL, 11, false);
	put(a, false, "e", NULL, 12, false);
	put(a, false, "a", "b", 13, false);
	for (size_t i = 0; i < 4; i++)
		dkv_log_encode_entry(&inc, dkv_entry_lookup(a, NULL, (const uint8_t *)keys[i],
							    strlen(keys[i]), false), &tmp);
	struct dkv_engine *b1 = mk("node-a"), *b2 = mk("node-a");
	REQUIRE(load(b1, &old, &quiet, err) == 0);
	REQUIRE(load(b1, &inc, &quiet, err) == 0);
	REQUIRE(load(b2, &inc, &quiet, err) == 0);
	REQUIRE(load(b2, &old, &quiet, err) == 0);
	CHECK(same_tree(a, b1));
	CHECK(same_tree(a, b2));
	/* twice changes nothing */
	struct dkv_log_stats st = {0};
	REQUIRE(dkv_log_load_mem(b1, old.data, old.len, "again", &quiet, &st, err, sizeof err) == 0);
	REQUIRE(dkv_log_load_mem(b1, inc.data, inc.len, "again", &quiet, &st, err, sizeof err) == 0);
	CHECK_EQ_INT(st.applied, 0);
	CHECK(same_tree(a, b1));
	CHECK_EQ_INT(dkv_engine_self(b1)->tick, dkv_engine_self(a)->tick);
	dkv_path_release(&tmp);
	dkv_buf_release(&old);
	dkv_buf_release(&inc);
	dkv_engine_free(a);
	dkv_engine_free(b1);
	dkv_engine_free(b2);
}

/* ---- the writer, on a real loop ---- */

struct done {
	int calls;
	int status;
	char msg[300];
};

static void on_done(void *arg, int status, const char *msg)
{
	struct done *d = arg;
	d->calls++;
	d->status = status;
	snprintf(d->msg, sizeof d->msg, "%s", msg ? msg : "");
}

static void run_until(uv_loop_t *loop, const struct done *d)
{
	for (int i = 0; i < 10000 && !d->calls; i++)
		uv_run(loop, UV_RUN_ONCE);
}

static void closed_cb(void *arg)
{
	*(bool *)arg = true;
}

static int slurp(const char *path, struct dkv_buf *out)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -errno;
	for (;;) {
		dkv_buf_reserve(out, 65536);
		ssize_t n = read(fd, out->data + out->len, out->cap - out->len);
		if (n <= 0)
			break;
		out->len += (size_t)n;
	}
	close(fd);
	return 0;
}

struct saved {
	unsigned calls;
	uint64_t entries, bytes;
};

/* A save's two callbacks share one arg: on_done fills the struct done it
 * starts with, on_save_progress the struct saved. */
struct save_watch {
	struct done d;
	struct saved p;
};

static void on_save_progress(void *arg, uint64_t entries, uint64_t bytes)
{
	struct save_watch *w = arg;
	w->p.calls++;
	w->p.entries = entries;
	w->p.bytes = bytes;
}

static unsigned notified;
static void on_notify(void *arg)
{
	notified++;
}

TEST(writer_switch_always_and_errors)
{
	char dir[] = "/tmp/dkv-test-log-XXXXXX";
	REQUIRE(mkdtemp(dir));
	char f1[128], f2[128], f3[128];
	snprintf(f1, sizeof f1, "%s/one", dir);
	snprintf(f2, sizeof f2, "%s/two", dir);
	snprintf(f3, sizeof f3, "%s/saved", dir);
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct dkv_engine *a = mk("node-a");
	struct dkv_logger *lg = dkv_logger_new(&loop, a, &(struct dkv_logger_opts){
		.sync = DKV_LOG_SYNC_BATCH, .interval_ms = 10, .verbose = -1});
	dkv_logger_add_notify(lg, on_notify, NULL);
	history(a);
	struct done d = {0};
	REQUIRE(dkv_logger_start(lg, f1, DKV_LOG_SYNC_BATCH, false, on_done, &d) == 0);
	CHECK_EQ_INT(dkv_logger_start(lg, f2, DKV_LOG_SYNC_BATCH, false, on_done, &d), -EBUSY);
	run_until(&loop, &d);
	CHECK_EQ_INT(d.status, 0);
	put(a, false, "x", NULL, 1, false);
	/* switch to an always log: the old one gets its last change, the new one
	 * has the state, and a reply for a new change waits for its fsync */
	d = (struct done){0};
	REQUIRE(dkv_logger_start(lg, f2, DKV_LOG_SYNC_ALWAYS, true, on_done, &d) == 0);
	put(a, false, "y", NULL, 2, false); /* while switching: goes to both */
	run_until(&loop, &d);
	CHECK_EQ_INT(d.status, 0);
	put(a, false, "z", NULL, 3, false);
	uint64_t need = dkv_logger_need(lg);
	CHECK(need > 0);
	CHECK(!dkv_logger_is_durable(lg, need));
	notified = 0;
	for (int i = 0; i < 1000 && !dkv_logger_is_durable(lg, need); i++)
		uv_run(&loop, UV_RUN_ONCE);
	CHECK(dkv_logger_is_durable(lg, need));
	CHECK(notified > 0);
	/* a save, and errors that leave the logger working */
	put(a, false, "w", NULL, 4, false);
	struct save_watch sw = {0};
	REQUIRE(dkv_logger_save(lg, f3, true, on_done, on_save_progress, &sw) == 0);
	run_until(&loop, &sw.d);
	CHECK_EQ_INT(sw.d.status, 0);
	CHECK(sw.p.calls >= 1); /* at least the last one, with the whole dump */
	struct dkv_buf dump = {0};
	dkv_log_encode_dump(&dump, a, true);
	CHECK(sw.p.entries > 0 && sw.p.bytes > dump.len); /* the header too */
	dkv_buf_release(&dump);
	uint64_t saved_bytes = sw.p.bytes;
	sw = (struct save_watch){0};
	REQUIRE(dkv_logger_save(lg, "/nonexistent-dir/x", true, on_done, on_save_progress, &sw) ==
		0);
	run_until(&loop, &sw.d);
	CHECK_EQ_INT(sw.d.status, -ENOENT);
	CHECK(strstr(sw.d.msg, "/nonexistent-dir/x") != NULL);
	CHECK_EQ_INT(sw.p.calls, 0); /* nothing written: no progress */
	d = (struct done){0};
	REQUIRE(dkv_logger_start(lg, "/nonexistent-dir/x", DKV_LOG_SYNC_BATCH, false, on_done,
				 &d) == 0);
	run_until(&loop, &d);
	CHECK_EQ_INT(d.status, -ENOENT);
	/* a full disk fails the new log; the old one goes on */
	d = (struct done){0};
	REQUIRE(dkv_logger_start(lg, "/dev/full", DKV_LOG_SYNC_ALWAYS, false, on_done, &d) == 0);
	run_until(&loop, &d);
	CHECK_EQ_INT(d.status, -ENOSPC);
	struct dkv_buf info = {0};
	dkv_logger_encode_info(lg, &info);
	CHECK(info.len > 0);
	dkv_buf_release(&info);
	bool closed = false;
	dkv_logger_close(lg, closed_cb, &closed);
	uv_run(&loop, UV_RUN_DEFAULT);
	CHECK(closed);
	CHECK_EQ_INT(uv_loop_close(&loop), 0);

	/* dump + incremental log in either order == the engine */
	struct dkv_buf b1 = {0}, b2 = {0}, b3 = {0};
	char err[600];
	REQUIRE(slurp(f1, &b1) == 0 && slurp(f2, &b2) == 0 && slurp(f3, &b3) == 0);
	CHECK_EQ_INT(b3.len, saved_bytes);
	struct dkv_engine *x = mk("node-a"), *y = mk("node-a"), *z = mk("node-a");
	CHECK_EQ_INT(load(x, &b1, &quiet, err), 0);
	CHECK_EQ_INT(load(x, &b2, &quiet, err), 0);
	CHECK_EQ_INT(load(y, &b2, &quiet, err), 0);
	CHECK_EQ_INT(load(y, &b1, &quiet, err), 0);
	CHECK_EQ_INT(load(z, &b3, &quiet, err), 0);
	CHECK(same_tree(a, x));
	CHECK(same_tree(a, y));
	CHECK(same_tree(a, z));
	dkv_engine_free(x);
	dkv_engine_free(y);
	dkv_engine_free(z);
	dkv_buf_release(&b1);
	dkv_buf_release(&b2);
	dkv_buf_release(&b3);
	unlink(f1);
	unlink(f2);
	unlink(f3);
	rmdir(dir);
	dkv_engine_free(a);
}

/* batch and none: a change's record reaches the kernel before its reply
 * may go, in the same loop iteration, without waiting for an fsync (the
 * interval here is a minute).  A FIFO is written by a worker instead. */
static void write_before_reply(enum dkv_log_sync mode, bool fifo)
{
	char dir[] = "/tmp/dkv-test-log-XXXXXX";
	REQUIRE(mkdtemp(dir));
	char f[128];
	snprintf(f, sizeof f, "%s/log", dir);
	int rfd = -1;
	if (fifo) {
		REQUIRE(mkfifo(f, 0600) == 0);
		rfd = open(f, O_RDONLY | O_NONBLOCK); /* so the writer's open does not block */
		REQUIRE(rfd >= 0);
	}
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct dkv_engine *a = mk("node-a");
	struct dkv_logger *lg = dkv_logger_new(&loop, a, &(struct dkv_logger_opts){
		.sync = mode, .interval_ms = 60000, .verbose = -1});
	struct done d = {0};
	REQUIRE(dkv_logger_start(lg, f, mode, true, on_done, &d) == 0);
	run_until(&loop, &d);
	CHECK_EQ_INT(d.status, 0);
	struct stat st0, st1;
	REQUIRE(stat(f, &st0) == 0);
	put(a, false, "x", NULL, 1, false);
	uint64_t need = dkv_logger_need(lg);
	CHECK(need > 0);
	CHECK(!dkv_logger_is_durable(lg, need));
	if (!fifo) {
		/* one loop iteration: the check phase writes the record */
		uv_run(&loop, UV_RUN_NOWAIT);
		CHECK(dkv_logger_is_durable(lg, need));
		REQUIRE(stat(f, &st1) == 0);
		CHECK(st1.st_size > st0.st_size);
	} else {
		for (int i = 0; i < 1000 && !dkv_logger_is_durable(lg, need); i++)
			uv_run(&loop, UV_RUN_ONCE);
		CHECK(dkv_logger_is_durable(lg, need));
		char buf[4096];
		CHECK(read(rfd, buf, sizeof buf) > 0);
	}
	CHECK_EQ_INT((int)dkv_logger_need(lg), 0);
	bool closed = false;
	dkv_logger_close(lg, closed_cb, &closed);
	uv_run(&loop, UV_RUN_DEFAULT);
	CHECK(closed);
	CHECK_EQ_INT(uv_loop_close(&loop), 0);
	if (rfd >= 0)
		close(rfd);
	unlink(f);
	rmdir(dir);
	dkv_engine_free(a);
}

TEST(batch_writes_before_reply)
{
	write_before_reply(DKV_LOG_SYNC_BATCH, false);
}

TEST(none_writes_before_reply)
{
	write_before_reply(DKV_LOG_SYNC_NONE, false);
}

TEST(fifo_writes_before_reply)
{
	write_before_reply(DKV_LOG_SYNC_BATCH, true);
}

/* Replication: records without a header, applied as remote changes;
 * then the node state merges the sender's seen ticks. */
TEST(remote_records)
{
	struct dkv_engine *a = mk("node-a"), *b = mk("node-b");
	struct dkv_buf recs = {0}, state = {0};
	struct dkv_path tmp;
	char err[600];
	dkv_path_init(&tmp);
	history(a);
	dkv_log_encode_state(&state, a);
	struct dkv_entry *root = dkv_engine_root(a);
	for (struct dkv_entry *x = root; x; x = dkv_entry_walk_next(x, root, true))
		dkv_log_encode_entry(&recs, x, &tmp);
	struct dkv_log_load_opts remote = {.warn = count_warn, .remote = true};
	struct dkv_log_stats st = {0};
	/* without .remote a headerless stream is refused */
	CHECK(dkv_log_load_mem(b, recs.data, recs.len, "peer", &quiet, NULL, err, sizeof err) ==
	      -EBADMSG);
	REQUIRE(dkv_log_load_mem(b, recs.data, recs.len, "peer", &remote, &st, err, sizeof err) ==
		0);
	REQUIRE(dkv_log_load_mem(b, state.data, state.len, "peer", &remote, &st, err,
				 sizeof err) == 0);
	CHECK(same_tree(a, b));
	CHECK_EQ_INT(st.conflicts, 0);
	struct dkv_node *na = dkv_engine_find_node(b, "node-a", 6);
	REQUIRE(na != NULL);
	CHECK_EQ_INT(dkv_rangeset_count(&na->seen), dkv_engine_self(a)->tick);
	/* the same records again change nothing */
	struct dkv_log_stats st2 = {0};
	REQUIRE(dkv_log_load_mem(b, recs.data, recs.len, "peer", &remote, &st2, err,
				 sizeof err) == 0);
	CHECK_EQ_INT(st2.applied, 0);
	dkv_path_release(&tmp);
	dkv_buf_release(&recs);
	dkv_buf_release(&state);
	dkv_engine_free(a);
	dkv_engine_free(b);
}

TESTS(round_trip, truncated_at_every_offset, torn_record_before_next_file, garbage_in_the_middle,
      empty_and_newer_format, another_node_and_ticks, twice_and_any_order,
      writer_switch_always_and_errors, batch_writes_before_reply, none_writes_before_reply,
      fifo_writes_before_reply, remote_records)
