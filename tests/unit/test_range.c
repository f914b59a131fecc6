/* test_range.c - tick range sets. */
#include "range.h"
#include "test.h"

static void check_ranges(const struct dkv_rangeset *s, const uint64_t *want, uint32_t n)
{
	CHECK_EQ_INT(s->n, n);
	for (uint32_t i = 0; i < n && i < s->n; i++) {
		CHECK_EQ_INT(s->r[i].lo, want[2 * i]);
		CHECK_EQ_INT(s->r[i].hi, want[2 * i + 1]);
	}
}

TEST(add_merges)
{
	struct dkv_rangeset s;
	dkv_rangeset_init(&s);
	for (uint64_t t = 1; t <= 10; t++)
		dkv_rangeset_add(&s, t, t + 1);
	check_ranges(&s, (uint64_t[]){1, 11}, 1);
	dkv_rangeset_add(&s, 20, 25);
	dkv_rangeset_add(&s, 15, 16);
	check_ranges(&s, (uint64_t[]){1, 11, 15, 16, 20, 25}, 3);
	dkv_rangeset_add(&s, 11, 20); /* bridges all */
	check_ranges(&s, (uint64_t[]){1, 25}, 1);
	CHECK(dkv_rangeset_contains(&s, 1));
	CHECK(dkv_rangeset_contains(&s, 24));
	CHECK(!dkv_rangeset_contains(&s, 25));
	CHECK(!dkv_rangeset_contains(&s, 0));
	CHECK_EQ_INT(dkv_rangeset_count(&s), 24);
	dkv_rangeset_release(&s);
}

TEST(remove_splits)
{
	struct dkv_rangeset s;
	dkv_rangeset_init(&s);
	dkv_rangeset_add(&s, 1, 100);
	dkv_rangeset_remove(&s, 10, 20);
	check_ranges(&s, (uint64_t[]){1, 10, 20, 100}, 2);
	dkv_rangeset_remove(&s, 5, 30);
	check_ranges(&s, (uint64_t[]){1, 5, 30, 100}, 2);
	dkv_rangeset_remove(&s, 0, 1000);
	CHECK_EQ_INT(s.n, 0);
	dkv_rangeset_release(&s);
}

TEST(missing)
{
	struct dkv_rangeset s, m;
	dkv_rangeset_init(&s);
	dkv_rangeset_init(&m);
	dkv_rangeset_add(&s, 2, 4);
	dkv_rangeset_add(&s, 5, 6);
	dkv_rangeset_missing(&s, 1, 8, &m);
	check_ranges(&m, (uint64_t[]){1, 2, 4, 5, 6, 8}, 3);
	dkv_rangeset_release(&s);
	dkv_rangeset_release(&m);
}

TEST(wire_form)
{
	struct dkv_rangeset s, t;
	struct dkv_buf b = {0};
	struct dkv_mp_reader r;
	dkv_rangeset_init(&s);
	dkv_rangeset_init(&t);
	dkv_rangeset_add(&s, 2, 4);
	dkv_rangeset_add(&s, 5, 6);
	dkv_rangeset_encode(&s, &b);
	/* [[2,4],5] */
	uint8_t want[] = {0x92, 0x92, 2, 4, 5};
	CHECK(b.len == sizeof want && !memcmp(b.data, want, sizeof want));
	dkv_mp_reader_init(&r, b.data, b.len);
	CHECK_EQ_INT(dkv_rangeset_decode(&t, &r), 0);
	check_ranges(&t, (uint64_t[]){2, 4, 5, 6}, 2);
	uint8_t bad[] = {0x91, 0xa1, 'x'};
	dkv_mp_reader_init(&r, bad, sizeof bad);
	CHECK(dkv_rangeset_decode(&t, &r) < 0);
	dkv_rangeset_release(&s);
	dkv_rangeset_release(&t);
	dkv_buf_release(&b);
}

TEST(prefix)
{
	struct dkv_rangeset s;
	dkv_rangeset_init(&s);
	CHECK_EQ_INT(dkv_rangeset_prefix(&s), 0);
	dkv_rangeset_add(&s, 2, 5);
	CHECK_EQ_INT(dkv_rangeset_prefix(&s), 0); /* tick 1 missing */
	dkv_rangeset_add(&s, 1, 2);
	CHECK_EQ_INT(dkv_rangeset_prefix(&s), 4);
	dkv_rangeset_add(&s, 7, 9);
	CHECK_EQ_INT(dkv_rangeset_prefix(&s), 4); /* the gap at 5..6 ends it */
	dkv_rangeset_release(&s);
}

TESTS(add_merges, remove_splits, missing, wire_form, prefix)
