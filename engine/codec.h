/*
 * codec.h - codecs and converters: values a user reads and writes in a
 * form of its own (doc/codecs.md).
 *
 * The records live in the internal (None) subtree, as DistKV keeps them:
 *
 *   (None, "codec", ELEMS...)        {encode: SRC, decode: SRC,
 *                                     in: [[IN, OUT]...], out: [[IN, OUT]...]}
 *   (None, "conv", NAME, PATTERN...) {codec: [ELEMS...]}
 *
 * encode and decode are procedure bodies (py.h) with the parameter
 * `value`; the samples say decode(IN) == OUT (in) and encode(IN) == OUT
 * (out).  A converter NAME binds codecs to data paths: PATTERN's "+"
 * stands for any one element and "#" for one or more, and the most
 * specific pattern wins, as in ACLs (acl.h).  A user whose aux has
 * `codec: NAME` reads and writes through converter NAME: what it sends
 * to a matching path is decoded before it is checked and stored, what
 * it reads there (values, trees, watches, the mount) is encoded.
 */
#ifndef DKV_CODEC_H
#define DKV_CODEC_H

#include "engine.h"

/*
 * The checker of codec and converter records (dkv_engine_add_checker
 * with ctx NULL): a codec's scripts must compile and every sample must
 * give its OUT; a converter's value must name an existing codec; the
 * roots (None, "codec"), (None, "conv") and (None, "conv", NAME) hold no
 * value.  -EINVAL with the reason in why otherwise.  Deletions pass.
 */
int dkv_codec_check(void *ctx, struct dkv_engine *e, const struct dkv_change *c, char *why,
		    size_t whylen);

/* Bind s to the converter named name from now on (name NULL: none).
 * Replaces an earlier binding.  The converter is compiled when first
 * used and again whenever dkv_engine_conv_gen moves: that reads the tree
 * (on the loop thread, or under the read lock). */
void dkv_conv_bind(struct dkv_session *s, struct dkv_engine *e, const char *name);

/*
 * Run a value of s through its converter at the data path path (never
 * internal): decode what s sends, encode what s reads.  When s has no
 * converter or no pattern matches, returns 0 and leaves *mp, *len and
 * scratch alone: a session without a converter costs one NULL test.
 * When the value is converted, *mp and *len point to the result in
 * scratch (its contents are replaced; the caller releases it).  -EINVAL when the script raised,
 * -ETIMEDOUT when it ran too long, -ERANGE when its result cannot be
 * stored, -ENOENT when the converter names a codec that does not exist
 * (any more), each with the reason for the client in why
 * ("ValueError('could not convert string to float: 'x'')").  Any thread
 * that may read the tree (see dkv_conv_bind); the mount's threads share
 * its session.
 */
int dkv__conv_run(struct dkv_conv *cv, bool encode, const uint8_t *path, size_t plen,
		  const uint8_t **mp, size_t *len, struct dkv_buf *scratch, char *why,
		  size_t whylen);

static inline int dkv_session_decode(const struct dkv_session *s, const uint8_t *path,
				     size_t plen, const uint8_t **mp, size_t *len,
				     struct dkv_buf *scratch, char *why, size_t whylen)
{
	if (!s || !s->conv)
		return 0;
	return dkv__conv_run(s->conv, false, path, plen, mp, len, scratch, why, whylen);
}

static inline int dkv_session_encode(const struct dkv_session *s, const uint8_t *path,
				     size_t plen, const uint8_t **mp, size_t *len,
				     struct dkv_buf *scratch, char *why, size_t whylen)
{
	if (!s || !s->conv)
		return 0;
	return dkv__conv_run(s->conv, true, path, plen, mp, len, scratch, why, whylen);
}

/* Whether two msgpack values are equal as Python sees them (12 == 12.0,
 * True == 1, maps in any order): how samples are compared. */
bool dkv_codec_values_equal(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen);

/* Append a value the way Python's repr() writes it ('12.5', [1, 'a'],
 * {'x': None}), at most about max bytes (then "..."), for messages. */
void dkv_codec_repr(struct dkv_buf *out, const uint8_t *mp, size_t len, size_t max);

#endif
