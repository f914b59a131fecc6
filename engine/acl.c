/*
 * acl.c - matching paths against ACLs (the rules are in acl.h), and the
 * session rule that checks a bound user's requests.
 *
 * The matcher keeps the set of ACL entries the path so far can be at:
 * each step follows the exact name, "+" and "#" from every candidate,
 * and a "#" stays a candidate for the following steps.  The order of
 * the set is the order of specificity, so an entry's match is the first
 * candidate that has a value.  It reads the live tree (on the loop, or
 * under the read lock), so nothing is cached and nothing goes stale.
 */
#include "acl.h"

#include "pathtext.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t NIL_ELEM[] = {0xc0};
static const uint8_t ACL_ELEM[] = {0xa3, 'a', 'c', 'l'};
static const uint8_t PLUS_ELEM[] = {0xa1, '+'};
static const uint8_t HASH_ELEM[] = {0xa1, '#'};

static const char LETTERS[] = "arwcdxen";
static const unsigned BITS[] = {DKV_ACL_ACL,	DKV_ACL_READ,	DKV_ACL_WRITE, DKV_ACL_CREATE,
				DKV_ACL_DELETE, DKV_ACL_ACCESS, DKV_ACL_ENUM,  DKV_ACL_NEW};

int dkv_acl_parse(const char *s, size_t len, unsigned *modes)
{
	*modes = 0;
	for (size_t i = 0; i < len; i++) {
		const char *l = s[i] ? strchr(LETTERS, s[i]) : NULL;
		if (!l)
			return -EINVAL;
		*modes |= BITS[l - LETTERS];
	}
	return 0;
}

void dkv_acl_letters(unsigned modes, char *out)
{
	size_t n = 0;
	for (size_t i = 0; i < sizeof BITS / sizeof BITS[0]; i++)
		if (modes & BITS[i])
			out[n++] = LETTERS[i];
	out[n] = 0;
}

/* The modes an ACL entry's value names; letters we do not know count
 * for nothing. */
static unsigned entry_modes(const struct dkv_entry *ent)
{
	struct dkv_mp_reader r;
	struct dkv_mp_item it;
	unsigned modes = 0;
	dkv_mp_reader_init(&r, dkv_value_data(ent->value), ent->value->len);
	if (dkv_mp_read(&r, &it) || it.type != DKV_MP_STR)
		return 0;
	for (uint32_t i = 0; i < it.v.s.len; i++) {
		const char *l = it.v.s.p[i] ? strchr(LETTERS, it.v.s.p[i]) : NULL;
		if (l)
			modes |= BITS[l - LETTERS];
	}
	return modes;
}

/* The entry's value as it was stored ("xc"), printable characters only,
 * for messages. */
static void stored_letters(const struct dkv_entry *ent, char *out, size_t cap)
{
	struct dkv_mp_reader r;
	struct dkv_mp_item it;
	size_t n = 0;
	dkv_mp_reader_init(&r, dkv_value_data(ent->value), ent->value->len);
	if (!dkv_mp_read(&r, &it) && it.type == DKV_MP_STR)
		for (uint32_t i = 0; i < it.v.s.len && n + 1 < cap; i++)
			if (it.v.s.p[i] >= 0x20 && it.v.s.p[i] < 0x7f)
				out[n++] = (char)it.v.s.p[i];
	out[n] = 0;
}

/* The root of the ACL named name, or NULL. */
static struct dkv_entry *acl_root(struct dkv_engine *e, const char *name)
{
	struct dkv_entry *m = dkv_entry_child(e, dkv_engine_root(e), NIL_ELEM, 1);
	m = m ? dkv_entry_child(e, m, ACL_ELEM, sizeof ACL_ELEM) : NULL;
	if (!m)
		return NULL;
	struct dkv_buf el = {0};
	dkv_mp_cstr(&el, name);
	m = dkv_entry_child(e, m, el.data, el.len);
	dkv_buf_release(&el);
	return m;
}

/* ---- the candidate set ---- */

#define CAND_MAX 256 /* bound on the set (a pathological ACL of many '#') */

struct cand {
	struct dkv_entry *ent;
	bool keep; /* a '#': stays for the next steps */
};

struct cands {
	struct cand *v;
	unsigned n;
	struct cand local[16];
	unsigned cap;
};

static void cands_init(struct cands *c)
{
	c->v = c->local;
	c->n = 0;
	c->cap = 16;
}

static void cands_release(struct cands *c)
{
	if (c->v != c->local)
		free(c->v);
}

static void cands_push(struct cands *c, struct dkv_entry *ent, bool keep)
{
	if (c->n == c->cap) {
		if (c->cap >= CAND_MAX)
			return;
		struct cand *v = malloc(sizeof *v * c->cap * 2);
		if (!v)
			return;
		memcpy(v, c->v, sizeof *v * c->n);
		if (c->v != c->local)
			free(c->v);
		c->v = v;
		c->cap *= 2;
	}
	c->v[c->n++] = (struct cand){ent, keep};
}

/* The most specific candidate with a value. */
static struct dkv_entry *cands_best(const struct cands *c)
{
	for (unsigned i = 0; i < c->n; i++)
		if (dkv_entry_has_value(c->v[i].ent))
			return c->v[i].ent;
	return NULL;
}

/* Follow one path element: cur becomes the candidates for it. */
static void cands_step(struct dkv_engine *e, struct cands *cur, struct cands *tmp,
		       const uint8_t *el, size_t len)
{
	bool nil = len == 1 && el[0] == 0xc0;
	tmp->n = 0;
	for (unsigned i = 0; i < cur->n; i++) {
		struct dkv_entry *n = cur->v[i].ent, *k;
		if ((k = dkv_entry_child(e, n, el, len)))
			cands_push(tmp, k, false);
		if (nil)
			continue;
		if ((k = dkv_entry_child(e, n, PLUS_ELEM, sizeof PLUS_ELEM)))
			cands_push(tmp, k, false);
		if ((k = dkv_entry_child(e, n, HASH_ELEM, sizeof HASH_ELEM)))
			cands_push(tmp, k, true);
		if (cur->v[i].keep)
			cands_push(tmp, n, true);
	}
	struct cands t = *cur;
	*cur = *tmp;
	*tmp = t;
	/* the local arrays moved with the structs: point back at them */
	if (cur->v == tmp->local)
		cur->v = cur->local;
	if (tmp->v == cur->local)
		tmp->v = tmp->local;
}

/* ---- matching ---- */

struct walk {
	struct dkv_entry *match;   /* the path's own match */
	bool dead;                 /* no ACL entry can match the path or below it */
	struct dkv_entry *blocker; /* an ancestor's match that lacks need */
	unsigned need;             /* DKV_ACL_ACCESS or DKV_ACL_NEW */
};

/* Walk path through the ACL at root.  creating: the change makes the
 * inner entries that do not exist yet (n is needed where they go). */
static void walk(struct dkv_engine *e, struct dkv_entry *root, const uint8_t *path, size_t len,
		 bool creating, struct walk *w)
{
	struct cands cur, tmp;
	struct dkv_path_iter it;
	const uint8_t *el, *next;
	size_t elen, nlen;
	struct dkv_entry *data = dkv_engine_root(e);

	memset(w, 0, sizeof *w);
	cands_init(&cur);
	cands_init(&tmp);
	cands_push(&cur, root, false);
	dkv_path_iter_init(&it, path, len);
	bool more = dkv_path_iter_next(&it, &el, &elen);
	while (more) {
		more = dkv_path_iter_next(&it, &next, &nlen);
		struct dkv_entry *m = cands_best(&cur);
		data = data ? dkv_entry_child(e, data, el, elen) : NULL;
		if (m && !w->blocker) {
			unsigned have = entry_modes(m);
			if (!(have & DKV_ACL_ACCESS))
				w->blocker = m, w->need = DKV_ACL_ACCESS;
			else if (creating && more && !data && !(have & DKV_ACL_NEW))
				w->blocker = m, w->need = DKV_ACL_NEW;
		}
		cands_step(e, &cur, &tmp, el, elen);
		el = next;
		elen = nlen;
	}
	w->match = cands_best(&cur);
	w->dead = cur.n == 0;
	cands_release(&cur);
	cands_release(&tmp);
}

int dkv_acl_match(struct dkv_engine *e, const char *name, const uint8_t *path, size_t len,
		  struct dkv_acl_match *m)
{
	struct dkv_entry *root = acl_root(e, name);
	struct walk w;
	memset(m, 0, sizeof *m);
	if (!root)
		return -ENOENT;
	walk(e, root, path, len, false, &w);
	m->entry = w.match;
	m->modes = w.match ? entry_modes(w.match) : 0;
	m->reachable = !w.blocker;
	return 0;
}

/* ---- the session rule ---- */

struct acl_rule {
	struct dkv_engine *e;
	char name[];
};

/* "wom #": the path's elements as the command line writes them. */
static void describe(struct dkv_buf *out, const uint8_t *path, size_t len)
{
	struct dkv_path_iter it;
	const uint8_t *el;
	size_t elen;
	bool first = true;
	dkv_path_iter_init(&it, path, len);
	while (dkv_path_iter_next(&it, &el, &elen)) {
		if (!first)
			dkv_buf_append(out, " ", 1);
		dkv_pathtext_format(out, el, elen, 0);
		first = false;
	}
	if (first)
		dkv_buf_append(out, ":", 1);
}

static char mode_letter(unsigned mode)
{
	for (size_t i = 0; i < sizeof BITS / sizeof BITS[0]; i++)
		if (mode & BITS[i])
			return LETTERS[i];
	return '?';
}

/* s->why = "ACL NAME (ENTRY: MODES) does not allow L". */
static int refuse(struct dkv_session *s, const struct acl_rule *rule, struct dkv_entry *match,
		  const uint8_t *path, size_t len, unsigned mode)
{
	struct dkv_buf b = {0};
	if (match) {
		struct dkv_path p;
		char letters[24];
		dkv_path_init(&p);
		dkv_entry_path(match, acl_root(rule->e, rule->name), &p);
		describe(&b, p.enc.data, p.enc.len);
		dkv_path_release(&p);
		stored_letters(match, letters, sizeof letters);
		snprintf(s->why, sizeof s->why, "ACL %s (%.*s: %s) does not allow %c", rule->name,
			 (int)(b.len > 120 ? 120 : b.len), (const char *)b.data, letters,
			 mode_letter(mode));
	} else {
		describe(&b, path, len);
		snprintf(s->why, sizeof s->why, "ACL %s (no entry matches %.*s) does not allow %c",
			 rule->name, (int)(b.len > 120 ? 120 : b.len), (const char *)b.data,
			 mode_letter(mode));
	}
	dkv_buf_release(&b);
	return -EACCES;
}

static int rule_check(struct dkv_session *s, const uint8_t *path, size_t len, bool internal,
		      unsigned mode)
{
	const struct acl_rule *rule = s->rule;
	if (internal || (mode & DKV_ACL_INTERNAL)) {
		snprintf(s->why, sizeof s->why, "ACL %s does not allow access to internal data",
			 rule->name);
		return -EACCES;
	}
	struct dkv_entry *root = acl_root(rule->e, rule->name);
	if (!root)
		return refuse(s, rule, NULL, path, len, mode ? mode : DKV_ACL_ACCESS);
	struct walk w;
	walk(rule->e, root, path, len, (mode & DKV_ACL_CREATE) != 0, &w);
	if (w.blocker)
		return refuse(s, rule, w.blocker, path, len, w.need);
	if (!mode)
		return 0;
	unsigned have = w.match ? entry_modes(w.match) : 0;
	if ((have & mode) != mode)
		return refuse(s, rule, w.match, path, len, mode & ~have);
	return 0;
}

void dkv_acl_bind(struct dkv_session *s, struct dkv_engine *e, const char *name)
{
	free(s->rule);
	s->rule = NULL;
	s->check = NULL;
	if (!name || !strcmp(name, "*"))
		return;
	size_t n = strlen(name);
	struct acl_rule *r = malloc(sizeof *r + n + 1);
	if (!r)
		abort();
	r->e = e;
	memcpy(r->name, name, n + 1);
	s->rule = r;
	s->check = rule_check;
}

unsigned dkv_session_modes(struct dkv_session *s, const uint8_t *path, size_t len,
			   bool internal)
{
	const unsigned all = DKV_ACL_ACL | DKV_ACL_READ | DKV_ACL_WRITE | DKV_ACL_CREATE |
			     DKV_ACL_DELETE | DKV_ACL_ACCESS | DKV_ACL_ENUM | DKV_ACL_NEW;
	if (!s || !s->check)
		return all | DKV_ACL_INTERNAL;
	if (s->check != rule_check)
		return s->check(s, path, len, internal, all) ? 0 : all;
	if (internal)
		return 0;
	const struct acl_rule *rule = s->rule;
	struct dkv_entry *root = acl_root(rule->e, rule->name);
	struct walk w;
	if (!root)
		return DKV_ACL_UNMATCHED;
	walk(rule->e, root, path, len, false, &w);
	if (w.blocker || w.dead)
		return 0;
	return w.match ? entry_modes(w.match) : DKV_ACL_UNMATCHED;
}
