/* test_client.c - the client library's pure parts: full paths from the
 * depth-compressed replies of streams (dkv_client_path). */
#include "client.h"
#include "test.h"

#include <errno.h>

/* A reply {depth: d, path: [elements...]} with string elements; d < 0
 * leaves depth out, els NULL leaves path out. */
static void reply(struct dkv_buf *b, int d, const char *const *els, unsigned n)
{
	b->len = 0;
	dkv_mp_map(b, (d >= 0) + (els != NULL));
	if (d >= 0) {
		dkv_mp_cstr(b, "depth");
		dkv_mp_uint(b, (uint64_t)d);
	}
	if (els) {
		dkv_mp_cstr(b, "path");
		dkv_mp_array(b, n);
		for (unsigned i = 0; i < n; i++)
			dkv_mp_cstr(b, els[i]);
	}
}

/* Whether p holds exactly the string elements want[0..n). */
static bool holds(const struct dkv_client_path *p, const char *const *want, unsigned n)
{
	struct dkv_buf w = {0};
	for (unsigned i = 0; i < n; i++)
		dkv_mp_cstr(&w, want[i]);
	bool ok = p->n == n && p->enc.len == w.len && !memcmp(p->enc.data, w.data, w.len);
	dkv_buf_release(&w);
	return ok;
}

TEST(depth_compression)
{
	struct dkv_client_path p;
	struct dkv_buf b = {0};
	dkv_client_path_init(&p);
	reply(&b, 0, (const char *[]){"a", "b"}, 2);
	REQUIRE(dkv_client_path_update(&p, b.data, b.len) == 0);
	CHECK(holds(&p, (const char *[]){"a", "b"}, 2));
	CHECK_EQ_INT(p.kept, 0);
	reply(&b, 2, (const char *[]){"c"}, 1);
	REQUIRE(dkv_client_path_update(&p, b.data, b.len) == 0);
	CHECK(holds(&p, (const char *[]){"a", "b", "c"}, 3));
	CHECK_EQ_INT(p.kept, 2);
	reply(&b, 1, (const char *[]){"d"}, 1);
	REQUIRE(dkv_client_path_update(&p, b.data, b.len) == 0);
	CHECK(holds(&p, (const char *[]){"a", "d"}, 2));
	/* no depth: a whole path */
	reply(&b, -1, (const char *[]){"x"}, 1);
	REQUIRE(dkv_client_path_update(&p, b.data, b.len) == 0);
	CHECK(holds(&p, (const char *[]){"x"}, 1));
	/* a depth beyond the path before: all of it */
	reply(&b, 9, (const char *[]){"y"}, 1);
	REQUIRE(dkv_client_path_update(&p, b.data, b.len) == 0);
	CHECK(holds(&p, (const char *[]){"x", "y"}, 2));
	/* the root itself: depth 0, no elements */
	reply(&b, 0, (const char *[]){NULL}, 0);
	REQUIRE(dkv_client_path_update(&p, b.data, b.len) == 0);
	CHECK_EQ_INT(p.n, 0);
	/* a state message has no path: unchanged */
	reply(&b, 0, (const char *[]){"q"}, 1);
	REQUIRE(dkv_client_path_update(&p, b.data, b.len) == 0);
	reply(&b, -1, NULL, 0);
	CHECK_EQ_INT(dkv_client_path_update(&p, b.data, b.len), -ENOENT);
	CHECK(holds(&p, (const char *[]){"q"}, 1));
	/* a path that is not a path */
	b.len = 0;
	dkv_mp_map(&b, 1);
	dkv_mp_cstr(&b, "path");
	dkv_mp_uint(&b, 5);
	CHECK(dkv_client_path_update(&p, b.data, b.len) < 0);
	dkv_client_path_release(&p);
	CHECK_EQ_INT(p.n, 0);
	dkv_buf_release(&b);
}

TESTS(depth_compression)
