/* test_tree.c - entries: creation, lookup, order, pruning, pins. */
#include "engine.h"
#include "test.h"

static void path_of(struct dkv_path *p, const char *a, const char *b)
{
	dkv_path_init(p);
	if (a)
		dkv_path_push_str(p, a);
	if (b)
		dkv_path_push_str(p, b);
}

TEST(create_and_lookup)
{
	struct dkv_engine *e = dkv_engine_new(&(struct dkv_engine_opts){.node = "n"});
	struct dkv_path p;
	path_of(&p, "a", "b");
	CHECK(!dkv_entry_lookup(e, NULL, p.enc.data, p.enc.len, false));
	struct dkv_entry *x = dkv_entry_lookup(e, NULL, p.enc.data, p.enc.len, true);
	REQUIRE(x);
	CHECK(dkv_entry_lookup(e, NULL, p.enc.data, p.enc.len, false) == x);
	CHECK_EQ_INT(dkv_entry_depth(x), 2);
	struct dkv_path back;
	dkv_path_init(&back);
	CHECK(dkv_entry_path(x, NULL, &back));
	CHECK(back.enc.len == p.enc.len && !memcmp(back.enc.data, p.enc.data, p.enc.len));
	dkv_path_release(&back);
	dkv_path_release(&p);
	dkv_engine_free(e);
}

TEST(insertion_order_and_growth)
{
	struct dkv_engine *e = dkv_engine_new(&(struct dkv_engine_opts){.node = "n"});
	char name[16];
	for (int i = 0; i < 5000; i++) {
		struct dkv_path p;
		snprintf(name, sizeof name, "k%d", 4999 - i);
		path_of(&p, "top", name);
		dkv_entry_lookup(e, NULL, p.enc.data, p.enc.len, true);
		dkv_path_release(&p);
	}
	struct dkv_path t;
	path_of(&t, "top", NULL);
	struct dkv_entry *top = dkv_entry_lookup(e, NULL, t.enc.data, t.enc.len, false);
	REQUIRE(top);
	int i = 0;
	bool ordered = true;
	for (struct dkv_entry *k = top->kids; k; k = k->next, i++) {
		snprintf(name, sizeof name, "k%d", 4999 - i);
		ordered &= k->namelen == strlen(name) + 1 && !memcmp(k->name + 1, name, strlen(name));
		ordered &= k->seq == (uint32_t)i + 1;
	}
	CHECK(ordered);
	CHECK_EQ_INT(i, 5000);
	CHECK_EQ_INT(dkv_engine_entry_count(e), 5001);
	dkv_path_release(&t);
	dkv_engine_free(e);
}

TEST(walk_order)
{
	struct dkv_engine *e = dkv_engine_new(&(struct dkv_engine_opts){.node = "n"});
	const char *paths[][2] = {{"a", "x"}, {"b", NULL}, {"a", "y"}};
	for (int i = 0; i < 3; i++) {
		struct dkv_path p;
		path_of(&p, paths[i][0], paths[i][1]);
		dkv_entry_lookup(e, NULL, p.enc.data, p.enc.len, true);
		dkv_path_release(&p);
	}
	/* root, a, a.x, a.y, b */
	struct dkv_entry *root = dkv_engine_root(e);
	const char *want = "axyb";
	int n = 0;
	for (struct dkv_entry *x = dkv_entry_walk_next(root, root, true); x;
	     x = dkv_entry_walk_next(x, root, true), n++)
		CHECK(n < 4 && x->name[1] == (uint8_t)want[n]);
	CHECK_EQ_INT(n, 4);
	dkv_engine_free(e);
}

TESTS(create_and_lookup, insertion_order_and_growth, walk_order)
