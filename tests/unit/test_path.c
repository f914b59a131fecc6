/* test_path.c - path decoding, canonical elements, iteration. */
#include "path.h"
#include "test.h"

#include <errno.h>

TEST(ext_and_array_forms_agree)
{
	struct dkv_buf a = {0}, x = {0}, elems = {0};
	struct dkv_path p1, p2;
	struct dkv_mp_reader r;
	dkv_path_init(&p1);
	dkv_path_init(&p2);
	dkv_mp_cstr(&elems, "proto");
	dkv_mp_uint(&elems, 1);
	dkv_mp_bool(&elems, true);
	dkv_mp_ext(&x, 3, elems.data, elems.len);
	dkv_mp_array(&a, 3);
	dkv_mp_cstr(&a, "proto");
	/* non-canonical uint16 1 must normalise */
	dkv_buf_append(&a, "\xcd\x00\x01", 3);
	dkv_mp_bool(&a, true);
	dkv_mp_reader_init(&r, x.data, x.len);
	REQUIRE(dkv_path_decode(&p1, &r) == 0);
	dkv_mp_reader_init(&r, a.data, a.len);
	REQUIRE(dkv_path_decode(&p2, &r) == 0);
	CHECK_EQ_INT(p1.n, 3);
	CHECK_EQ_INT(p2.n, 3);
	CHECK(p1.enc.len == p2.enc.len && !memcmp(p1.enc.data, p2.enc.data, p1.enc.len));
	dkv_path_pop(&p1);
	CHECK_EQ_INT(p1.n, 2);
	CHECK_EQ_INT(p1.enc.len, 7);
	dkv_path_release(&p1);
	dkv_path_release(&p2);
	dkv_buf_release(&a);
	dkv_buf_release(&x);
	dkv_buf_release(&elems);
}

TEST(empty_bytes_is_empty_string)
{
	struct dkv_path p;
	dkv_path_init(&p);
	CHECK_EQ_INT(dkv_path_push_raw(&p, (const uint8_t *)"\xc4\x00", 2), 0);
	CHECK(p.enc.len == 1 && p.enc.data[0] == 0xa0);
	dkv_path_release(&p);
}

TEST(rejects_maps_and_garbage)
{
	struct dkv_path p;
	struct dkv_mp_reader r;
	dkv_path_init(&p);
	CHECK_EQ_INT(dkv_path_push_raw(&p, (const uint8_t *)"\x80", 1), -EINVAL);
	CHECK_EQ_INT(dkv_path_push_raw(&p, (const uint8_t *)"\xc1", 1), -EINVAL);
	CHECK_EQ_INT(p.n, 0);
	uint8_t s[] = {0xa3, 'a', 'b', 'c'};
	dkv_mp_reader_init(&r, s, sizeof s);
	CHECK_EQ_INT(dkv_path_decode(&p, &r), -EINVAL); /* a string is not a path */
	dkv_path_release(&p);
}

TEST(too_long)
{
	struct dkv_buf a = {0};
	struct dkv_path p;
	struct dkv_mp_reader r;
	dkv_path_init(&p);
	dkv_mp_array(&a, DKV_PATH_MAX_ELEMS + 1);
	for (int i = 0; i <= DKV_PATH_MAX_ELEMS; i++)
		dkv_mp_uint(&a, 1);
	dkv_mp_reader_init(&r, a.data, a.len);
	CHECK_EQ_INT(dkv_path_decode(&p, &r), -E2BIG);
	CHECK_EQ_INT(p.n, 0);
	dkv_path_release(&p);
	dkv_buf_release(&a);
}

TEST(iterate)
{
	struct dkv_path p;
	struct dkv_path_iter it;
	const uint8_t *e;
	size_t l;
	int n = 0;
	dkv_path_init(&p);
	dkv_path_push_str(&p, "a");
	dkv_path_push_str(&p, "bc");
	dkv_path_iter_init(&it, p.enc.data, p.enc.len);
	while (dkv_path_iter_next(&it, &e, &l))
		n++;
	CHECK_EQ_INT(n, 2);
	dkv_path_release(&p);
}

TESTS(ext_and_array_forms_agree, empty_bytes_is_empty_string, rejects_maps_and_garbage, too_long,
      iterate)
