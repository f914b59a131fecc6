/*
 * path.h - paths: sequences of elements, kept as their encodings.
 *
 * A path's bytes are its elements' canonical msgpack encodings back to
 * back, which is exactly the payload of msgpack ext type 3 on the wire.
 * Two elements are equal exactly when their canonical encodings are.
 *
 * Canonical element encoding: smallest integer forms, integers >= 2^64 as
 * ext type 2 with a minimal big-endian magnitude, floats as float64, the
 * empty byte string as the empty string, tuples as arrays of canonical
 * elements.  Maps and other ext types are not path elements.
 */
#ifndef DKV_PATH_H
#define DKV_PATH_H

#include "mp.h"

/* Maximum number of elements in a path (protects recursion and memory). */
#define DKV_PATH_MAX_ELEMS 4096

struct dkv_path {
	struct dkv_buf enc; /* canonical encodings, back to back */
	uint32_t n;         /* number of elements */
};

void dkv_path_init(struct dkv_path *p);
void dkv_path_release(struct dkv_path *p);
void dkv_path_copy(struct dkv_path *dst, const struct dkv_path *src);
/* Append one element given as any msgpack encoding; it is canonicalised.
 * -EINVAL if it is not a valid element, -E2BIG past DKV_PATH_MAX_ELEMS. */
int dkv_path_push_raw(struct dkv_path *p, const uint8_t *elem, size_t len);
/* Append a canonical element (no checks). */
void dkv_path_push_canon(struct dkv_path *p, const uint8_t *elem, size_t len);
void dkv_path_push_str(struct dkv_path *p, const char *s);
/* Remove the last element. */
void dkv_path_pop(struct dkv_path *p);

/* Decode a path from a msgpack item: ext type 3 or an array of elements.
 * The reader is advanced past the item.  -EINVAL for anything else. */
int dkv_path_decode(struct dkv_path *p, struct dkv_mp_reader *r);
/* Encode as ext type 3. */
void dkv_path_encode(struct dkv_buf *out, const uint8_t *enc, size_t len);
/* Encode elements as a msgpack array (the form used in get_tree replies). */
int dkv_path_encode_array(struct dkv_buf *out, const uint8_t *enc, size_t len, uint32_t n);

/* Canonicalise the element at r, appending it to out.  Errors: -EAGAIN
 * (truncated), -EINVAL (not an element), -E2BIG (too deep). */
int dkv_path_elem_canon(struct dkv_buf *out, struct dkv_mp_reader *r);

/* Iterate elements: set elem and len to the next element; false at the end. */
struct dkv_path_iter {
	struct dkv_mp_reader r;
};
void dkv_path_iter_init(struct dkv_path_iter *it, const uint8_t *enc, size_t len);
bool dkv_path_iter_next(struct dkv_path_iter *it, const uint8_t **elem, size_t *len);

/* Human-readable dotted form for messages ("proto.x", ":" for the root). */
void dkv_path_describe(struct dkv_buf *out, const uint8_t *enc, size_t len);

#endif
