/*
 * engine.c - the engine object and the one path every change takes.
 *
 * dkv_engine_apply() checks the precondition, stamps the change (tick,
 * chain, tock) unless it comes stamped from elsewhere, installs it under
 * the write lock, and fans it out: watchers first, then hooks (log,
 * filesystem, replication) in the order they were added.
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const uint8_t nil_elem[1] = {0xc0};

struct dkv_engine *dkv_engine_new(const struct dkv_engine_opts *opts)
{
	struct dkv_engine *e = dkv_xcalloc(1, sizeof *e);
	/* readers (FUSE threads) come in floods during ls -R or find: let the
	 * loop's short writes go first, or changes could wait indefinitely */
	pthread_rwlockattr_t la;
	pthread_rwlockattr_init(&la);
	pthread_rwlockattr_setkind_np(&la, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&e->lock, &la);
	pthread_rwlockattr_destroy(&la);
	dkv__tree_init(e);
	e->chain_length = opts->chain_length ? opts->chain_length : 5;
	if (e->chain_length > DKV_CHAIN_MAX)
		e->chain_length = DKV_CHAIN_MAX;
	e->self = dkv_engine_node(e, opts->node, strlen(opts->node));
	return e;
}

void dkv_engine_free(struct dkv_engine *e)
{
	if (!e)
		return;
	dkv__tree_release(e);
	dkv__nodes_release(e);
	free(e->hooks);
	free(e->checkers);
	free(e->tombs);
	pthread_rwlock_destroy(&e->lock);
	free(e);
}

struct dkv_node *dkv_engine_self(struct dkv_engine *e)
{
	return e->self;
}

struct dkv_entry *dkv_engine_root(struct dkv_engine *e)
{
	return e->root;
}

struct dkv_entry *dkv_engine_meta(struct dkv_engine *e)
{
	struct dkv_entry *m = dkv_entry_child(e, e->root, nil_elem, 1);
	if (!m) {
		m = dkv__entry_new(e, e->root, nil_elem, 1);
		atomic_store(&m->pins, 1); /* always there once asked for */
	}
	return m;
}

uint64_t dkv_engine_tock(struct dkv_engine *e)
{
	return e->tock;
}

uint64_t dkv_engine_next_tock(struct dkv_engine *e)
{
	return ++e->tock;
}

void dkv_engine_see_tock(struct dkv_engine *e, uint64_t tock)
{
	if (tock > e->tock)
		e->tock = tock;
}

void dkv_engine_rdlock(struct dkv_engine *e)
{
	pthread_rwlock_rdlock(&e->lock);
}

void dkv_engine_unlock(struct dkv_engine *e)
{
	pthread_rwlock_unlock(&e->lock);
}

/* ---- watchers and hooks ---- */

void dkv_watch_start(struct dkv_engine *e, struct dkv_watch *w, struct dkv_entry *base,
		     const uint8_t *path, size_t len)
{
	w->entry = dkv_entry_lookup(e, base, path, len, true);
	dkv_entry_pin(w->entry);
	pthread_rwlock_wrlock(&e->lock);
	w->entry->flags |= DKV_ENTRY_WATCHED;
	pthread_rwlock_unlock(&e->lock);
	w->next = NULL;
	struct dkv_watch **pp = &e->watches;
	while (*pp)
		pp = &(*pp)->next;
	*pp = w;
}

static bool still_watched(struct dkv_engine *e, const struct dkv_entry *ent)
{
	for (struct dkv_watch *w = e->watches; w; w = w->next)
		if (w->cb && w->entry == ent)
			return true;
	return false;
}

static void sweep_watches(struct dkv_engine *e)
{
	struct dkv_watch **pp = &e->watches;
	while (*pp) {
		struct dkv_watch *w = *pp;
		if (w->cb) {
			pp = &w->next;
			continue;
		}
		*pp = w->next;
		struct dkv_entry *ent = w->entry;
		w->entry = NULL;
		if (!still_watched(e, ent)) {
			pthread_rwlock_wrlock(&e->lock);
			ent->flags &= (uint8_t)~DKV_ENTRY_WATCHED;
			pthread_rwlock_unlock(&e->lock);
		}
		dkv_entry_unpin(e, ent);
		if (w->freed)
			w->freed(w);
	}
	e->watch_dead = false;
}

void dkv_watch_stop(struct dkv_engine *e, struct dkv_watch *w, void (*freed)(struct dkv_watch *w))
{
	if (!w->entry || !w->cb) {
		if (freed)
			freed(w);
		return;
	}
	w->cb = NULL;
	w->freed = freed;
	if (e->fanout_depth)
		e->watch_dead = true;
	else
		sweep_watches(e);
}

void dkv_engine_add_hook(struct dkv_engine *e, dkv_hook_fn fn, void *ctx)
{
	e->hooks = dkv_xrealloc(e->hooks, (e->nhooks + 1) * sizeof *e->hooks);
	e->hooks[e->nhooks].fn = fn;
	e->hooks[e->nhooks].ctx = ctx;
	e->nhooks++;
}

void dkv_engine_add_checker(struct dkv_engine *e, dkv_check_fn fn, void *ctx)
{
	e->checkers = dkv_xrealloc(e->checkers, (e->ncheckers + 1) * sizeof *e->checkers);
	e->checkers[e->ncheckers].fn = fn;
	e->checkers[e->ncheckers].ctx = ctx;
	e->ncheckers++;
}

void dkv_engine_remove_hook(struct dkv_engine *e, dkv_hook_fn fn, void *ctx)
{
	for (uint32_t i = 0; i < e->nhooks; i++) {
		if (e->hooks[i].fn == fn && e->hooks[i].ctx == ctx) {
			memmove(e->hooks + i, e->hooks + i + 1, (e->nhooks - i - 1) * sizeof *e->hooks);
			e->nhooks--;
			return;
		}
	}
}

static void fan_out(struct dkv_engine *e, const struct dkv_event *ev)
{
	e->fanout_depth++;
	if (e->watches) {
		/* the watched ancestors, so each watch is matched once */
		const struct dkv_entry *anc[32];
		unsigned na = 0;
		bool overflow = false;
		for (const struct dkv_entry *x = ev->entry; x; x = x->parent) {
			if (!(x->flags & DKV_ENTRY_WATCHED))
				continue;
			if (na == 32) {
				overflow = true;
				break;
			}
			anc[na++] = x;
		}
		for (struct dkv_watch *w = e->watches; na && w; w = w->next) {
			if (!w->cb)
				continue;
			bool hit = false;
			for (unsigned i = 0; i < na && !hit; i++)
				hit = anc[i] == w->entry;
			if (!hit && overflow) {
				for (const struct dkv_entry *x = ev->entry; x && !hit; x = x->parent)
					hit = x == w->entry;
			}
			if (hit)
				w->cb(w, ev);
		}
	}
	for (uint32_t i = 0; i < e->nhooks; i++)
		e->hooks[i].fn(e->hooks[i].ctx, ev);
	if (--e->fanout_depth == 0 && e->watch_dead)
		sweep_watches(e);
}

/* ---- changes ---- */

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int check_precond(const struct dkv_change *c, const struct dkv_entry *ent)
{
	switch (c->pre) {
	case DKV_PRE_NONE:
		return 0;
	case DKV_PRE_NEW:
		return ent && dkv_entry_has_value(ent) ? -EEXIST : 0;
	case DKV_PRE_CHAIN: {
		if (!ent || !dkv_entry_has_value(ent))
			return -ENOENT;
		const struct dkv_chain_link *l = ent->value->chain;
		if (!ent->value->nchain || l->tick != c->pre_tick ||
		    strlen(l->node->name) != c->pre_node_len ||
		    memcmp(l->node->name, c->pre_node, c->pre_node_len))
			return -ESTALE;
		return 0;
	}
	}
	return 0;
}

/* Whether the incoming chain is already reflected in the entry: the
 * entry knows a change of the same node at least as new. */
/* Whether a change stamped (chain, tock) from elsewhere should replace the
 * entry's current state.  Chains tell history: if the entry already knows
 * the incoming change (its chain holds the same node at that tick or
 * later), the change is old.  If the incoming chain holds the entry's
 * newest change, it was made on top of it and wins.  Otherwise the two
 * were made concurrently: the higher tock wins, then the higher node name,
 * then the higher tick -- the same answer on every node, whatever the
 * order of arrival (see doc/protocol.md, "Conflicts"). */
static bool remote_wins(const struct dkv_entry *ent, const struct dkv_chain_link *in,
			uint32_t nin, uint64_t tock, bool *conflict)
{
	const struct dkv_value *v = ent->value;
	*conflict = false;
	if (!v || !v->nchain)
		return true;
	for (uint32_t i = 0; i < v->nchain; i++)
		if (v->chain[i].node == in->node && v->chain[i].tick >= in->tick)
			return false;
	const struct dkv_chain_link *head = &v->chain[0];
	for (uint32_t i = 0; i < nin; i++)
		if (in[i].node == head->node && in[i].tick >= head->tick)
			return true;
	*conflict = true;
	if (tock != ent->tock)
		return tock > ent->tock;
	int c = strcmp(in->node->name, head->node->name);
	if (c)
		return c > 0;
	return in->tick > head->tick;
}

int dkv_session_check(struct dkv_session *s, const uint8_t *path, size_t len, bool internal,
		      unsigned mode)
{
	if (!s || !s->check)
		return 0;
	return s->check(s, path, len, internal, mode);
}

int dkv_engine_find(struct dkv_engine *e, struct dkv_session *s, const uint8_t *path,
		    size_t len, bool internal, unsigned mode, struct dkv_entry **out)
{
	struct dkv_entry *base = e->root;
	int rc;
	*out = NULL;
	if (internal)
		base = dkv_engine_meta(e);
	else if (len && path[0] == 0xc0)
		return DKV_E_INTERNAL;
	if ((rc = dkv_session_check(s, path, len, internal, mode)))
		return rc;
	*out = dkv_entry_lookup(e, base, path, len, false);
	return 0;
}

/* A local change's access: delete (d), or W -- write (w) where a value
 * is, create (c) where none is.  Looked up without creating anything. */
static int check_access(struct dkv_engine *e, const struct dkv_change *c,
			struct dkv_entry *base)
{
	unsigned mode = DKV_ACL_DELETE;
	if (c->value) {
		struct dkv_entry *old = dkv_entry_lookup(e, base, c->path, c->path_len, false);
		mode = old && dkv_entry_has_value(old) ? DKV_ACL_WRITE : DKV_ACL_CREATE;
	}
	return dkv_session_check(c->sess, c->path, c->path_len, c->internal, mode);
}

static bool holds(const struct dkv_entry *ent, const uint8_t *v, size_t len)
{
	return ent && dkv_entry_has_value(ent) && ent->value->len == len &&
	       !memcmp(dkv_value_data(ent->value), v, len);
}

/* Whether the change's path starts with the element elem[0..len). */
static bool first_elem_is(const struct dkv_change *c, const uint8_t *elem, size_t len)
{
	return c->path_len >= len && !memcmp(c->path, elem, len);
}

static int apply(struct dkv_engine *e, const struct dkv_change *c, struct dkv_result *res);

int dkv_engine_apply(struct dkv_engine *e, const struct dkv_change *c, struct dkv_result *res)
{
	static const uint8_t acl_elem[] = {0xa3, 'a', 'c', 'l'};
	static const uint8_t conv_elem[] = {0xa4, 'c', 'o', 'n', 'v'};
	static const uint8_t codec_elem[] = {0xa5, 'c', 'o', 'd', 'e', 'c'};
	static const uint8_t type_elem[] = {0xa4, 't', 'y', 'p', 'e'};
	static const uint8_t match_elem[] = {0xa5, 'm', 'a', 't', 'c', 'h'};
	int rc = apply(e, c, res);
	/* after the change is in the tree: a reader that compiled an ACL, a
	 * converter or the types saw it, or is told by the new generation to
	 * compile again */
	if (!c->internal)
		return rc;
	if (first_elem_is(c, acl_elem, sizeof acl_elem))
		atomic_fetch_add(&e->acl_gen, 1);
	if (first_elem_is(c, conv_elem, sizeof conv_elem) ||
	    first_elem_is(c, codec_elem, sizeof codec_elem))
		atomic_fetch_add(&e->conv_gen, 1);
	if (first_elem_is(c, type_elem, sizeof type_elem) ||
	    first_elem_is(c, match_elem, sizeof match_elem))
		atomic_fetch_add(&e->types_gen, 1);
	return rc;
}

uint64_t dkv_engine_acl_gen(struct dkv_engine *e)
{
	return atomic_load(&e->acl_gen);
}

uint64_t dkv_engine_conv_gen(struct dkv_engine *e)
{
	return atomic_load(&e->conv_gen);
}

uint64_t dkv_engine_types_gen(struct dkv_engine *e)
{
	return atomic_load(&e->types_gen);
}

static int apply(struct dkv_engine *e, const struct dkv_change *c, struct dkv_result *res)
{
	struct dkv_entry *base = e->root;
	struct dkv_entry *ent;
	struct dkv_chain_link links[DKV_CHAIN_MAX];
	const struct dkv_chain_link *chain = links;
	uint32_t nchain;
	uint64_t tock;
	int rc;

	memset(res, 0, sizeof *res);
	if (c->value && c->value_len > DKV_VALUE_MAX)
		return -EFBIG;
	if (c->internal) {
		base = dkv_engine_meta(e);
	} else if (c->path_len && c->path[0] == 0xc0) {
		return DKV_E_INTERNAL;
	}
	if (c->src == DKV_SRC_LOCAL && c->sess && c->sess->check &&
	    (rc = check_access(e, c, base)))
		return rc;
	for (uint32_t i = 0; c->src == DKV_SRC_LOCAL && i < e->ncheckers; i++)
		if ((rc = e->checkers[i].fn(e->checkers[i].ctx, e, c, res->why, sizeof res->why)))
			return rc;

	size_t before = e->nentries;
	/* a deletion from elsewhere leaves a tombstone even where we had nothing */
	bool create = c->value != NULL || c->src != DKV_SRC_LOCAL;
	ent = dkv_entry_lookup(e, base, c->path, c->path_len, create);
	unsigned created = (unsigned)(e->nentries - before);
	if (!ent) {
		if (create)
			return -EINVAL; /* an element too long to be a name */
		if (c->src == DKV_SRC_LOCAL && c->prev)
			return DKV_E_PREV;
		return check_precond(c, NULL); /* deleting what does not exist changes nothing */
	}
	dkv_entry_pin(ent);
	res->entry = ent;

	if (c->src == DKV_SRC_LOCAL) {
		/* in DistKV's order: the value, idem, then the chain */
		if (c->prev && !holds(ent, c->prev, c->prev_len))
			return DKV_E_PREV;
		if (c->idem && c->value && holds(ent, c->value, c->value_len)) {
			res->idem = true;
			return 0;
		}
		rc = check_precond(c, ent);
		if (rc)
			return rc;
		if (!c->value && !dkv_entry_has_value(ent))
			return 0; /* nothing to delete */
		uint64_t tick = ++e->self->tick;
		nchain = dkv__chain_extend(ent->value, e->self, tick, e->chain_length, links);
		tock = dkv_engine_next_tock(e);
	} else {
		if (!c->chain || !c->nchain)
			return -EINVAL;
		/* A change we have seen but do not hold was superseded here, by a
		 * deletion whose tombstone may be gone by now: a late copy (a
		 * peer's dump encoded before that deletion reached it) must not
		 * bring it back.  Replayed files are exempt: a dump's node-state
		 * record marks its entries' ticks seen before it lists them. */
		if (c->src == DKV_SRC_REMOTE && !(ent->value && ent->value->nchain) &&
		    dkv_rangeset_contains(&c->chain->node->seen, c->chain->tick))
			return 0;
		bool conflict;
		if (!remote_wins(ent, c->chain, c->nchain, c->tock, &conflict)) {
			res->conflict = conflict;
			return 0;
		}
		res->conflict = conflict;
		chain = c->chain;
		nchain = c->nchain < e->chain_length ? c->nchain : e->chain_length;
		dkv_engine_see_tock(e, c->tock);
		tock = c->tock;
		if (chain->tick > chain->node->tick)
			chain->node->tick = chain->tick;
	}

	struct dkv_value *nv = dkv_value_new(c->value, c->value ? c->value_len : 0, chain, nchain);
	res->changed = !dkv_value_same_data(ent->value, nv);
	res->prev = ent->value; /* the entry's reference moves to the result */

	bool tomb = !c->value && !(ent->flags & DKV_ENTRY_TOMB);
	pthread_rwlock_wrlock(&e->lock);
	ent->value = nv;
	ent->tock = tock;
	ent->mtime_ns = now_ns();
	if (tomb)
		ent->flags |= DKV_ENTRY_TOMB;
	pthread_rwlock_unlock(&e->lock);
	if (tomb) {
		if (e->ntombs == e->tombs_cap) {
			e->tombs_cap = e->tombs_cap ? 2 * e->tombs_cap : 64;
			e->tombs = dkv_xrealloc(e->tombs, e->tombs_cap * sizeof *e->tombs);
		}
		e->tombs[e->ntombs++] = ent;
	}

	struct dkv_node *who = chain->node;
	dkv_rangeset_add(&who->seen, chain->tick, chain->tick + 1);
	if (!c->value)
		dkv_rangeset_add(&who->deleted, chain->tick, chain->tick + 1);

	struct dkv_event ev = {
		.entry = ent,
		.value = nv,
		.prev = res->prev,
		.tock = tock,
		.src = c->src,
		.internal = c->internal,
		.created = created,
		.sess = c->src == DKV_SRC_LOCAL ? c->sess : NULL,
	};
	fan_out(e, &ev);
	return 0;
}

size_t dkv_engine_purge(struct dkv_engine *e,
			bool (*ripe)(void *arg, const struct dkv_entry *ent), void *arg)
{
	size_t dropped = 0, kept = 0;
	for (size_t i = 0; i < e->ntombs; i++) {
		struct dkv_entry *ent = e->tombs[i];
		bool tomb = dkv_entry_is_tombstone(ent);
		if (tomb && !ripe(arg, ent)) {
			e->tombs[kept++] = ent;
			continue;
		}
		struct dkv_value *v = NULL;
		pthread_rwlock_wrlock(&e->lock);
		ent->flags &= (uint8_t)~DKV_ENTRY_TOMB;
		if (tomb) {
			v = ent->value;
			ent->value = NULL;
		}
		pthread_rwlock_unlock(&e->lock);
		dkv_value_unref(v);
		dropped += tomb;
		dkv__entry_maybe_free(e, ent);
	}
	e->ntombs = kept;
	if (e->tombs_cap > 64 && kept < e->tombs_cap / 4) {
		e->tombs_cap /= 2;
		e->tombs = dkv_xrealloc(e->tombs, e->tombs_cap * sizeof *e->tombs);
	}
	return dropped;
}

size_t dkv_engine_tombstone_count(const struct dkv_engine *e)
{
	size_t n = 0;
	for (size_t i = 0; i < e->ntombs; i++)
		n += dkv_entry_is_tombstone(e->tombs[i]);
	return n;
}

void dkv_result_release(struct dkv_engine *e, struct dkv_result *res)
{
	dkv_value_unref(res->prev);
	res->prev = NULL;
	if (res->entry)
		dkv_entry_unpin(e, res->entry);
	res->entry = NULL;
}
