/*
 * types.h - type checks: what the records below (None, "type") and
 * (None, "match") say about the values clients may store.
 *
 * A type at (None, "type", ELEMS...) holds {code: SRC, schema: {...},
 * good: [...], bad: [...]}: a Python body that sees "value" and raises
 * to refuse it, and/or a JSON schema, and examples.  (type, int,
 * percent) is a subtype of (type, int): a value of it passes int's
 * checks first.  A match at (None, "match", PATTERN...) holds {type:
 * [ELEMS...]}; "+" in PATTERN stands for one element, "#" for one or
 * more, and the most specific match of a path wins, as with ACLs.
 *
 * dkv_types_attach makes the engine's checker (engine.h,
 * dkv_engine_add_checker), which sees every local change:
 *   - a set of a data path that a match covers runs the type's chain,
 *     top first; the first refusal refuses the write, the reason being
 *     repr() of the exception ("ValueError('not a percentage')");
 *   - a set of a type record compiles its code and checks its examples:
 *     every good one passes this type and its supertypes, every bad one
 *     fails one of them; a subtype needs its supertype's record;
 *   - a set of a match needs its type to exist;
 *   - a type that a match uses, or that has subtypes, is not deleted.
 * Deletions of data are not checked; remote and replayed changes are
 * not checked at all (engine.h).  Refusals are -EINVAL with the reason.
 */
#ifndef DKV_TYPES_H
#define DKV_TYPES_H

#include "engine.h"

struct dkv_types;

/* Make the type checker of e and add it to e's checkers.  It keeps a
 * compiled copy of the records, made again when
 * dkv_engine_types_gen(e) moves.  Free it after the engine. */
struct dkv_types *dkv_types_attach(struct dkv_engine *e);
void dkv_types_free(struct dkv_types *t); /* accepts NULL */

/* The match of the data path path[0..len), as the checker finds it:
 * 0 with the pattern's elements (appended to pattern) and the type's
 * (appended to type), or -ENOENT when no match covers the path. */
int dkv_types_match(struct dkv_types *t, const uint8_t *path, size_t len,
		    struct dkv_buf *pattern, struct dkv_buf *type);

#endif
