/*
 * acl.h - access control lists: what a user bound by an ACL may do.
 *
 * An ACL named NAME is the internal subtree (None, "acl", NAME): each
 * entry's value is a string of mode letters (a r w c d x e n, see
 * DKV_ACL_* in engine.h) for the data path its own path names, where the
 * element "+" stands for any one element and "#" for one or more.  The
 * matcher walks that subtree along the asked path; it reads the live
 * tree, so a change to an ACL counts from the next check on.  The rules
 * (doc/acl.md has them with examples):
 *
 *  - An entry's match is the most specific ACL entry that has a value:
 *    at each level an exact name beats "+", which beats "#", and an
 *    earlier level decides before a later one.  The None element matches
 *    no wildcard, and a bound session never reaches internal data.
 *  - The asked mode must be in the entry's match; no match, no access.
 *  - On the way down, each ancestor that has a match must allow x, and
 *    n where an inner entry that does not exist yet will be made below
 *    it.  Ancestors without a match impose nothing.
 *  - Listings (trees, watches, the mount's directories) show a value only
 *    where r is allowed, and go below an entry whose match lacks e or x
 *    not at all.
 */
#ifndef DKV_ACL_H
#define DKV_ACL_H

#include "engine.h"

/* Mode letters to DKV_ACL_* bits: 0, or -EINVAL for a letter that is not
 * one of "arwcdxen". */
int dkv_acl_parse(const char *s, size_t len, unsigned *modes);
/* The letters of modes, in "arwcdxen" order (out: at least 9 bytes). */
void dkv_acl_letters(unsigned modes, char *out);

/* The ACL entry matching one path. */
struct dkv_acl_match {
	bool matched;            /* an ACL entry matches */
	unsigned modes;          /* its modes (0 when none matches) */
	bool reachable;          /* every ancestor with a match allows x */
};

/* Match path (a data path, never internal) against the ACL named name.
 * -ENOENT when there is no such ACL (nothing matches then). */
int dkv_acl_match(struct dkv_engine *e, const char *name, const uint8_t *path, size_t len,
		  struct dkv_acl_match *m);

/* Bind s to the ACL named name from now on: every check of s follows it.
 * name NULL or "*": no rule (everything allowed).  Replaces an earlier
 * binding; dkv_session_release frees it. */
void dkv_acl_bind(struct dkv_session *s, struct dkv_engine *e, const char *name);

/* Extra bit of dkv_session_modes: no ACL entry matches the path. */
#define DKV_ACL_UNMATCHED (1u << 9)

/* What s may do at path: DKV_ACL_* bits (every bit when s has no rule);
 * 0 when an ancestor's match withholds x, or when no ACL entry can match
 * the path or anything below it.  DKV_ACL_UNMATCHED when no entry
 * matches but one below may (then no mode bit is set).  Listings use it: a value is
 * shown with DKV_ACL_READ, children are listed unless the result has
 * neither DKV_ACL_UNMATCHED nor both DKV_ACL_ENUM and DKV_ACL_ACCESS. */
unsigned dkv_session_modes(struct dkv_session *s, const uint8_t *path, size_t len,
			   bool internal);
/* Whether a listing goes below an entry with these modes. */
static inline bool dkv_acl_may_descend(unsigned modes)
{
	return (modes & DKV_ACL_UNMATCHED) ||
	       (modes & (DKV_ACL_ENUM | DKV_ACL_ACCESS)) == (DKV_ACL_ENUM | DKV_ACL_ACCESS);
}

#endif
