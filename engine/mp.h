/*
 * mp.h - growable byte buffers and the msgpack codec every module uses.
 *
 * Values travel through distkv as their msgpack encoding: they are read
 * from the wire, stored, logged and sent again without being decoded into
 * an object model.  The writer appends canonical encodings (smallest
 * integer and length forms, floats as float64) to a struct dkv_buf; the
 * reader is a zero-copy pull parser over a byte range.
 *
 * Memory: buffers grow with dkv_xrealloc(), which aborts when memory runs
 * out.  A server that cannot allocate a few bytes cannot answer anyone
 * correctly, so no caller has to handle allocation failure.
 */
#ifndef DKV_MP_H
#define DKV_MP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

void *dkv_xmalloc(size_t n);
void *dkv_xcalloc(size_t n, size_t size);
void *dkv_xrealloc(void *p, size_t n);
char *dkv_xstrdup(const char *s);
char *dkv_xstrndup(const char *s, size_t n);

/* A growable byte buffer.  All-zero is a valid empty buffer. */
struct dkv_buf {
	uint8_t *data;
	size_t len; /* bytes in use */
	size_t cap; /* bytes allocated */
};

void dkv_buf_init(struct dkv_buf *b);
void dkv_buf_release(struct dkv_buf *b); /* frees data; b is empty again */
void dkv_buf_reserve(struct dkv_buf *b, size_t extra);
void dkv_buf_append(struct dkv_buf *b, const void *p, size_t n);
void dkv_buf_putc(struct dkv_buf *b, char c);
void dkv_buf_puts(struct dkv_buf *b, const char *s);
void dkv_buf_printf(struct dkv_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Drop the first n bytes. */
void dkv_buf_consume(struct dkv_buf *b, size_t n);
/* Make data NUL-terminated (the NUL is not counted in len); returns data. */
char *dkv_buf_cstr(struct dkv_buf *b);
/* Hand the storage to the caller; b is empty afterwards. */
uint8_t *dkv_buf_detach(struct dkv_buf *b, size_t *len);

/* ---- writer: append one msgpack item ---- */

void dkv_mp_nil(struct dkv_buf *b);
void dkv_mp_bool(struct dkv_buf *b, bool v);
void dkv_mp_uint(struct dkv_buf *b, uint64_t v);
void dkv_mp_int(struct dkv_buf *b, int64_t v); /* uses the uint forms for v >= 0 */
void dkv_mp_double(struct dkv_buf *b, double v);
void dkv_mp_str(struct dkv_buf *b, const void *p, size_t len);
void dkv_mp_cstr(struct dkv_buf *b, const char *s);
void dkv_mp_bin(struct dkv_buf *b, const void *p, size_t len);
void dkv_mp_array(struct dkv_buf *b, uint32_t n); /* n items follow */
void dkv_mp_map(struct dkv_buf *b, uint32_t n);   /* n key/value pairs follow */
void dkv_mp_ext(struct dkv_buf *b, int8_t type, const void *p, size_t len);
/* A big unsigned integer: msgpack ext type 2, big-endian magnitude of
 * minimal length.  Values below 2^64 are written as ordinary integers. */
void dkv_mp_bigint(struct dkv_buf *b, const uint8_t *be, size_t len);

/* Extension types used by DistKV. */
#define DKV_EXT_BIGINT 2 /* unsigned integer >= 2^64, big-endian bytes */
#define DKV_EXT_PATH 3   /* a path: its elements' encodings back to back */
#define DKV_EXT_PROXY 4  /* a named proxy object: UTF-8 name */

/* ---- reader ---- */

enum dkv_mp_type {
	DKV_MP_NIL,
	DKV_MP_BOOL,
	DKV_MP_UINT,  /* v.u */
	DKV_MP_INT,   /* v.i, always negative */
	DKV_MP_FLOAT, /* v.f; float32 is widened */
	DKV_MP_STR,   /* v.s */
	DKV_MP_BIN,   /* v.s */
	DKV_MP_ARRAY, /* v.n items follow */
	DKV_MP_MAP,   /* v.n pairs follow */
	DKV_MP_EXT,   /* v.ext */
};

struct dkv_mp_item {
	enum dkv_mp_type type;
	bool f32; /* DKV_MP_FLOAT only: was encoded as float32 */
	union {
		bool b;
		uint64_t u;
		int64_t i;
		double f;
		struct {
			const uint8_t *p;
			uint32_t len;
		} s;
		uint32_t n;
		struct {
			const uint8_t *p;
			uint32_t len;
			int8_t type;
		} ext;
	} v;
};

struct dkv_mp_reader {
	const uint8_t *p;   /* next byte to read */
	const uint8_t *end; /* one past the last byte */
};

/* Maximum nesting of arrays and maps accepted by dkv_mp_skip(). */
#define DKV_MP_MAX_DEPTH 64

void dkv_mp_reader_init(struct dkv_mp_reader *r, const void *p, size_t len);
/* Read the head of one item (for arrays and maps only the count).
 * 0: ok; -EAGAIN: the input ends inside the item (reader unchanged);
 * -EBADMSG: the reserved byte 0xc1. */
int dkv_mp_read(struct dkv_mp_reader *r, struct dkv_mp_item *it);
/* Skip one complete item with everything nested in it.
 * 0, -EAGAIN (reader unchanged), -EBADMSG, or -E2BIG when nested deeper
 * than DKV_MP_MAX_DEPTH. */
int dkv_mp_skip(struct dkv_mp_reader *r);
/* Bytes left. */
static inline size_t dkv_mp_left(const struct dkv_mp_reader *r)
{
	return (size_t)(r->end - r->p);
}

/* Append the canonical encoding of the complete item at r to out:
 * smallest integer/length forms, float32 widened to float64, big integers
 * below 2^64 as integers.  Same errors as dkv_mp_skip(); on error out is
 * restored to its previous length. */
int dkv_mp_canon(struct dkv_buf *out, struct dkv_mp_reader *r);

/* Look for a str item that is not valid UTF-8 (strict: no overlong
 * forms, no surrogates, nothing above U+10FFFF) among the items of
 * p[0..n), which must be well-formed (as dkv_mp_skip found them): map
 * keys and items at any depth count, the payloads of ext items do not.
 * false when there is none; else true, with *at the offset in p of the
 * first such string's payload and *bad the offset of its first bad byte
 * within that payload.  Linear in n; ASCII goes eight bytes at a time. */
bool dkv_mp_find_bad_utf8(const uint8_t *p, size_t n, size_t *at, size_t *bad);

/* Compare an item's string or binary payload with a C string. */
bool dkv_mp_streq(const struct dkv_mp_item *it, const char *s);
/* Append the pairs of the map mp[0..len) whose keys are none of the
 * nskip strings in skip; returns how many, or -1 when mp is no map. */
int dkv_mp_copy_pairs(struct dkv_buf *out, const uint8_t *mp, size_t len,
		      const char *const *skip, unsigned nskip);
/* Python's truth of a scalar item (nil, false, 0, empty: false); a
 * container by its count. */
bool dkv_mp_truthy(const struct dkv_mp_item *it);

#endif
