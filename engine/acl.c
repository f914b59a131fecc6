/*
 * acl.c - matching paths against ACLs (the rules are in acl.h), and the
 * session rule that checks a bound user's requests.
 *
 * Matching is pattern.h's: the most specific entry with a value wins.
 * It walks a compiled copy of the ACL that a session's rule keeps until
 * the engine's ACL generation moves (every change below (None, "acl")
 * moves it), so a change counts at the next check and a check costs a
 * few memcmp per path element.  Compiling reads the tree: on the loop,
 * or under the read lock.
 */
#include "acl.h"

#include "pathtext.h"
#include "pattern.h"

#include <pthread.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t NIL_ELEM[] = {0xc0};
static const uint8_t ACL_ELEM[] = {0xa3, 'a', 'c', 'l'};

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

/* "wom #": path elements as the command line writes them. */
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

/* ---- compiled ACLs ---- */

/*
 * A copy of one ACL's subtree made for matching (pattern.h), with an
 * entry's modes parsed and its label for messages made once.  Immutable
 * and refcounted; a session's rule keeps the one of the engine's current
 * ACL generation and compiles anew when it moves.
 */
struct centry {
	unsigned modes;
	char *label;       /* "wom #" */
	char letters[24];  /* the value as stored, printable part */
};

struct cacl {
	atomic_uint refs;
	uint64_t gen;
	bool exists;
	struct dkv_pnode root;
};

static void *centry_make(void *ctx, const struct dkv_entry *x, const struct dkv_path *p)
{
	(void)ctx;
	struct centry *c = dkv_xcalloc(1, sizeof *c);
	struct dkv_buf b = {0};
	c->modes = entry_modes(x);
	stored_letters(x, c->letters, sizeof c->letters);
	describe(&b, p->enc.data, p->enc.len);
	c->label = strndup(b.len ? (const char *)b.data : "", b.len);
	dkv_buf_release(&b);
	return c;
}

static void centry_drop(void *data)
{
	struct centry *c = data;
	free(c->label);
	free(c);
}

/* Compile the ACL named name as the tree holds it now. */
static struct cacl *cacl_new(struct dkv_engine *e, const char *name, uint64_t gen)
{
	struct cacl *c = dkv_xcalloc(1, sizeof *c);
	atomic_init(&c->refs, 1);
	c->gen = gen;
	struct dkv_entry *root = acl_root(e, name);
	if (root) {
		c->exists = true;
		dkv_pattern_build(&c->root, root, centry_make, NULL);
	}
	return c;
}

static void cacl_unref(struct cacl *c)
{
	if (c && atomic_fetch_sub(&c->refs, 1) == 1) {
		dkv_pattern_release(&c->root, centry_drop);
		free(c);
	}
}

/* ---- matching ---- */

struct walk {
	const struct centry *match;   /* the path's own match */
	bool dead;                    /* no ACL entry can match the path or below it */
	const struct centry *blocker; /* an ancestor's match that lacks need */
	unsigned need;                /* DKV_ACL_ACCESS or DKV_ACL_NEW */
};

/* Walk path through the compiled ACL.  creating (with e): the change
 * makes the inner entries that do not exist yet, so n is needed above
 * them. */
static void walk(const struct cacl *acl, struct dkv_engine *e, const uint8_t *path,
		 size_t len, bool creating, struct walk *w)
{
	struct dkv_pcands a, b, *cur = &a, *next = &b;
	struct dkv_path_iter it;
	const uint8_t *el, *nel;
	size_t elen, nlen;
	struct dkv_entry *data = creating ? dkv_engine_root(e) : NULL;

	memset(w, 0, sizeof *w);
	dkv_pcands_init(&a, acl->exists ? &acl->root : NULL);
	dkv_pcands_init(&b, NULL);
	dkv_path_iter_init(&it, path, len);
	bool more = dkv_path_iter_next(&it, &el, &elen);
	while (more && cur->n) {
		more = dkv_path_iter_next(&it, &nel, &nlen);
		const struct centry *m = dkv_pcands_best(cur);
		data = data ? dkv_entry_child(e, data, el, elen) : NULL;
		if (m && !w->blocker) {
			if (!(m->modes & DKV_ACL_ACCESS))
				w->blocker = m, w->need = DKV_ACL_ACCESS;
			else if (creating && more && !data && !(m->modes & DKV_ACL_NEW))
				w->blocker = m, w->need = DKV_ACL_NEW;
		}
		dkv_pcands_step(cur, next, el, elen);
		struct dkv_pcands *t = cur;
		cur = next;
		next = t;
		el = nel;
		elen = nlen;
	}
	w->dead = cur->n == 0;
	w->match = w->dead ? NULL : dkv_pcands_best(cur);
	dkv_pcands_release(&a);
	dkv_pcands_release(&b);
}

int dkv_acl_match(struct dkv_engine *e, const char *name, const uint8_t *path, size_t len,
		  struct dkv_acl_match *m)
{
	struct cacl *acl = cacl_new(e, name, 0);
	struct walk w;
	memset(m, 0, sizeof *m);
	if (!acl->exists) {
		cacl_unref(acl);
		return -ENOENT;
	}
	walk(acl, e, path, len, false, &w);
	m->matched = w.match != NULL;
	m->modes = w.match ? w.match->modes : 0;
	m->reachable = !w.blocker;
	cacl_unref(acl);
	return 0;
}

/* ---- the session rule ---- */

struct acl_rule {
	struct dkv_engine *e;
	pthread_mutex_t lock; /* the mount's threads share one session */
	struct cacl *acl;     /* compiled at acl->gen */
	char name[];
};

/* The rule's ACL as compiled for the engine's current generation; the
 * caller unrefs it. */
static struct cacl *rule_acl(struct acl_rule *r)
{
	pthread_mutex_lock(&r->lock);
	uint64_t gen = dkv_engine_acl_gen(r->e);
	if (!r->acl || r->acl->gen != gen) {
		cacl_unref(r->acl);
		r->acl = cacl_new(r->e, r->name, gen);
	}
	struct cacl *c = r->acl;
	atomic_fetch_add(&c->refs, 1);
	pthread_mutex_unlock(&r->lock);
	return c;
}

static char mode_letter(unsigned mode)
{
	for (size_t i = 0; i < sizeof BITS / sizeof BITS[0]; i++)
		if (mode & BITS[i])
			return LETTERS[i];
	return '?';
}

/* s->why = "ACL NAME (ENTRY: MODES) does not allow L". */
static int refuse(struct dkv_session *s, const struct acl_rule *rule, const struct centry *match,
		  const uint8_t *path, size_t len, unsigned mode)
{
	if (match) {
		snprintf(s->why, sizeof s->why, "ACL %s (%.120s: %s) does not allow %c", rule->name,
			 match->label[0] ? match->label : ":", match->letters, mode_letter(mode));
	} else {
		struct dkv_buf b = {0};
		describe(&b, path, len);
		snprintf(s->why, sizeof s->why, "ACL %s (no entry matches %.*s) does not allow %c",
			 rule->name, (int)(b.len > 120 ? 120 : b.len), (const char *)b.data,
			 mode_letter(mode));
		dkv_buf_release(&b);
	}
	return -EACCES;
}

static int rule_check(struct dkv_session *s, const uint8_t *path, size_t len, bool internal,
		      unsigned mode)
{
	struct acl_rule *rule = s->rule;
	if (internal || (mode & DKV_ACL_INTERNAL)) {
		snprintf(s->why, sizeof s->why, "ACL %s does not allow access to internal data",
			 rule->name);
		return -EACCES;
	}
	struct cacl *acl = rule_acl(rule);
	struct walk w;
	int rc = 0;
	walk(acl, rule->e, path, len, (mode & DKV_ACL_CREATE) != 0, &w);
	if (w.blocker)
		rc = refuse(s, rule, w.blocker, path, len, w.need);
	else if (mode && (!w.match || (w.match->modes & mode) != mode))
		rc = refuse(s, rule, w.match, path, len, w.match ? mode & ~w.match->modes : mode);
	cacl_unref(acl);
	return rc;
}

static void rule_free(struct acl_rule *r)
{
	if (!r)
		return;
	cacl_unref(r->acl);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

void dkv_acl_bind(struct dkv_session *s, struct dkv_engine *e, const char *name)
{
	if (s->check == rule_check)
		rule_free(s->rule);
	s->rule = NULL;
	s->check = NULL;
	if (!name || !strcmp(name, "*"))
		return;
	size_t n = strlen(name);
	struct acl_rule *r = dkv_xcalloc(1, sizeof *r + n + 1);
	r->e = e;
	pthread_mutex_init(&r->lock, NULL);
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
	struct acl_rule *rule = s->rule;
	struct cacl *acl = rule_acl(rule);
	struct walk w;
	walk(acl, rule->e, path, len, false, &w);
	cacl_unref(acl);
	if (w.blocker || w.dead)
		return 0;
	return w.match ? w.match->modes : DKV_ACL_UNMATCHED;
}
