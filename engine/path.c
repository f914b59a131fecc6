/*
 * path.c - paths as concatenated canonical element encodings.
 *
 * Paths are short (a handful of elements, mostly short strings); the
 * common case of a canonical string element is checked and copied without
 * re-encoding.
 */
#include "path.h"
#include "pathtext.h"

#include <errno.h>
#include <string.h>

void dkv_path_init(struct dkv_path *p)
{
	dkv_buf_init(&p->enc);
	p->n = 0;
}

void dkv_path_release(struct dkv_path *p)
{
	dkv_buf_release(&p->enc);
	p->n = 0;
}

void dkv_path_copy(struct dkv_path *dst, const struct dkv_path *src)
{
	dst->enc.len = 0;
	dkv_buf_append(&dst->enc, src->enc.data, src->enc.len);
	dst->n = src->n;
}

static int elem_canon(struct dkv_buf *out, struct dkv_mp_reader *r, int depth)
{
	struct dkv_mp_item it;
	int rc = dkv_mp_read(r, &it);
	if (rc)
		return rc;
	switch (it.type) {
	case DKV_MP_NIL:
		dkv_mp_nil(out);
		return 0;
	case DKV_MP_BOOL:
		dkv_mp_bool(out, it.v.b);
		return 0;
	case DKV_MP_UINT:
		dkv_mp_uint(out, it.v.u);
		return 0;
	case DKV_MP_INT:
		dkv_mp_int(out, it.v.i);
		return 0;
	case DKV_MP_FLOAT:
		dkv_mp_double(out, it.v.f);
		return 0;
	case DKV_MP_STR:
		dkv_mp_str(out, it.v.s.p, it.v.s.len);
		return 0;
	case DKV_MP_BIN:
		if (it.v.s.len)
			dkv_mp_bin(out, it.v.s.p, it.v.s.len);
		else
			dkv_mp_str(out, "", 0);
		return 0;
	case DKV_MP_EXT:
		if (it.v.ext.type != DKV_EXT_BIGINT)
			return -EINVAL;
		dkv_mp_bigint(out, it.v.ext.p, it.v.ext.len);
		return 0;
	case DKV_MP_ARRAY:
		if (depth >= DKV_MP_MAX_DEPTH)
			return -E2BIG;
		if (it.v.n > dkv_mp_left(r))
			return -EAGAIN;
		dkv_mp_array(out, it.v.n);
		for (uint32_t i = 0; i < it.v.n; i++) {
			rc = elem_canon(out, r, depth + 1);
			if (rc)
				return rc;
		}
		return 0;
	case DKV_MP_MAP:
		return -EINVAL;
	}
	return -EINVAL;
}

int dkv_path_elem_canon(struct dkv_buf *out, struct dkv_mp_reader *r)
{
	struct dkv_mp_reader s = *r;
	size_t mark = out->len;
	int rc = elem_canon(out, &s, 0);
	if (rc) {
		out->len = mark;
		return rc;
	}
	r->p = s.p;
	return 0;
}

int dkv_path_push_raw(struct dkv_path *p, const uint8_t *elem, size_t len)
{
	struct dkv_mp_reader r;
	if (p->n >= DKV_PATH_MAX_ELEMS)
		return -E2BIG;
	dkv_mp_reader_init(&r, elem, len);
	int rc = dkv_path_elem_canon(&p->enc, &r);
	if (rc)
		return rc == -E2BIG ? rc : -EINVAL;
	if (dkv_mp_left(&r)) {
		/* trailing garbage: undo */
		struct dkv_path_iter it;
		const uint8_t *e = NULL;
		size_t l = 0;
		dkv_path_iter_init(&it, p->enc.data, p->enc.len);
		for (uint32_t i = 0; i <= p->n; i++)
			dkv_path_iter_next(&it, &e, &l);
		p->enc.len = (size_t)(e - p->enc.data);
		return -EINVAL;
	}
	p->n++;
	return 0;
}

void dkv_path_push_canon(struct dkv_path *p, const uint8_t *elem, size_t len)
{
	dkv_buf_append(&p->enc, elem, len);
	p->n++;
}

void dkv_path_push_str(struct dkv_path *p, const char *s)
{
	dkv_mp_cstr(&p->enc, s);
	p->n++;
}

void dkv_path_pop(struct dkv_path *p)
{
	struct dkv_path_iter it;
	const uint8_t *e = NULL;
	size_t l = 0;
	if (!p->n)
		return;
	dkv_path_iter_init(&it, p->enc.data, p->enc.len);
	for (uint32_t i = 0; i < p->n; i++)
		dkv_path_iter_next(&it, &e, &l);
	p->enc.len = (size_t)(e - p->enc.data);
	p->n--;
}

static int decode_elems(struct dkv_path *p, struct dkv_mp_reader *r, uint64_t n)
{
	for (uint64_t i = 0; n == UINT64_MAX ? dkv_mp_left(r) > 0 : i < n; i++) {
		if (p->n >= DKV_PATH_MAX_ELEMS)
			return -E2BIG;
		int rc = dkv_path_elem_canon(&p->enc, r);
		if (rc)
			return rc == -E2BIG ? rc : -EINVAL;
		p->n++;
	}
	return 0;
}

int dkv_path_decode(struct dkv_path *p, struct dkv_mp_reader *r)
{
	struct dkv_mp_reader s = *r;
	struct dkv_mp_item it;
	int rc;

	p->enc.len = 0;
	p->n = 0;
	if (dkv_mp_read(&s, &it))
		return -EINVAL;
	if (it.type == DKV_MP_EXT && it.v.ext.type == DKV_EXT_PATH) {
		struct dkv_mp_reader pr;
		dkv_mp_reader_init(&pr, it.v.ext.p, it.v.ext.len);
		rc = decode_elems(p, &pr, UINT64_MAX);
	} else if (it.type == DKV_MP_ARRAY) {
		rc = decode_elems(p, &s, it.v.n);
	} else if (it.type == DKV_MP_NIL) {
		rc = 0; /* some clients send None for the root */
	} else {
		rc = -EINVAL;
	}
	if (rc) {
		p->enc.len = 0;
		p->n = 0;
		return rc;
	}
	r->p = s.p;
	return 0;
}

void dkv_path_encode(struct dkv_buf *out, const uint8_t *enc, size_t len)
{
	dkv_mp_ext(out, DKV_EXT_PATH, enc, len);
}

int dkv_path_encode_array(struct dkv_buf *out, const uint8_t *enc, size_t len, uint32_t n)
{
	dkv_mp_array(out, n);
	dkv_buf_append(out, enc, len);
	return 0;
}

void dkv_path_iter_init(struct dkv_path_iter *it, const uint8_t *enc, size_t len)
{
	dkv_mp_reader_init(&it->r, enc, len);
}

bool dkv_path_iter_next(struct dkv_path_iter *it, const uint8_t **elem, size_t *len)
{
	const uint8_t *start = it->r.p;
	if (!dkv_mp_left(&it->r) || dkv_mp_skip(&it->r))
		return false;
	*elem = start;
	*len = (size_t)(it->r.p - start);
	return true;
}

void dkv_path_describe(struct dkv_buf *out, const uint8_t *enc, size_t len)
{
	struct dkv_path_iter it;
	const uint8_t *e;
	size_t l;
	bool first = true;

	dkv_path_iter_init(&it, enc, len);
	while (dkv_path_iter_next(&it, &e, &l)) {
		if (!first)
			dkv_buf_putc(out, '.');
		first = false;
		if (dkv_pathtext_format(out, e, l, 0))
			dkv_buf_puts(out, "?");
	}
	if (first)
		dkv_buf_putc(out, ':');
}
