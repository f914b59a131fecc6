/*
 * errlog.c - the server's writer of error records, and the index of the
 * records in the tree (errlog.h; the format is in doc/errors.md).
 *
 * Workload: nothing fails almost always, so the success side
 * (dkv_errlog_fixed, called after every type check and conversion that
 * ran a script) is one atomic load while no error of its subsystem is
 * open.  When something fails it may fail on every request, from the
 * loop and the mount's threads at once: a note is a hash probe under a
 * mutex, and the tree sees at most one write per error per interval.
 * Records number in the hundreds; the index holds all of them, the
 * pending table only errors not yet written.
 *
 * Two tables share the mutex:
 *   - the index (struct erec): every record in (".distkv", "error"),
 *     by (subsystem, path) and by entry, kept by a watch.  Only the loop
 *     changes it; other threads read it under the mutex.
 *   - the pending table (struct pend): occurrences and fixes not yet
 *     written, by (subsystem, path).  Any thread adds; the loop takes.
 * The loop never holds the mutex around dkv_engine_apply: the watch
 * takes it while the change fans out.  Duplicates found by the watch are
 * merged a little later, by a timer (see "merging duplicates").
 */
#include "errlog.h"
#include "hashtab.h"
#include "internal.h"
#include "report.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const sys_names[DKV_ERRSYS__COUNT] = {"type", "codec", "log", "peer"};

/* (".distkv", "error") */
static const uint8_t ERR_ROOT[] = {0xa7, '.', 'd', 'i', 's', 't', 'k', 'v',
				   0xa5, 'e', 'r', 'r', 'o', 'r'};

#define REPORT_EVERY_MS 10000 /* our own trouble goes to stderr at most this often */
#define TOCK_TRIES 16         /* a new record's number is taken: try the next */

const char *dkv_errsys_name(enum dkv_errsys sys)
{
	return (unsigned)sys < DKV_ERRSYS__COUNT ? sys_names[sys] : "?";
}

/* A record in the tree, as the index knows it. */
struct erec {
	struct erec *knext;     /* chain by (subsystem, path) */
	struct erec *enext;     /* chain by entry */
	struct dkv_entry *ent;  /* (".distkv", "error", NODE, TOCK): pinned */
	char *subsys;
	uint8_t *path;          /* element encodings */
	size_t plen;
	size_t khash;
	int sys;                /* enum dkv_errsys, or -1: a subsystem not ours */
	bool resolved;
	double first_seen;      /* unix time; 0 when the record has none */
	uint64_t written_ms;    /* loop time this node last wrote it; 0: never */
};

/* What is to be written for one (subsystem, path). */
struct pend {
	struct pend *hnext;
	int sys;
	uint8_t *path;
	size_t plen;
	size_t khash;
	uint64_t count;      /* occurrences not yet written */
	double first, last;  /* unix times of the first and last of them */
	int severity;        /* the most severe of them */
	char *message, *comment;
	uint8_t *data;       /* msgpack or NULL */
	size_t dlen;
	bool fixed;          /* after them, the thing worked: resolve */
};

struct dkv_errlog {
	uv_loop_t *loop;
	struct dkv_engine *e;
	struct dkv_errlog_opts o;
	struct dkv_entry *root;   /* (".distkv", "error"), watched */
	struct dkv_watch watch;
	uv_async_t async;         /* a new error: write it at the next turn */
	uv_timer_t timer;         /* repeats: write them when the interval is over */
	uv_timer_t merge_timer;   /* duplicates (or strayed details) to merge */
	bool closed;              /* loop thread */

	pthread_mutex_t mu;
	/* the index: written by the loop under mu */
	struct erec **bykey, **byent;
	size_t kmask, emask, nrecs;
	size_t nopen;             /* unresolved records */
	/* unresolved records and pending errors of each of our subsystems:
	 * what dkv_errlog_fixed looks at before it takes the mutex */
	atomic_size_t open[DKV_ERRSYS__COUNT];
	/* the pending table, under mu */
	struct pend **pends;
	size_t pmask, npend;
	bool closing;             /* under mu: notes are dropped */
	uint64_t dropped;         /* under mu */

	/* the loop's own */
	uint64_t window_ms;       /* start of the current interval of new records */
	unsigned window_new;      /* new records made in it */
	uint64_t last_tock;       /* the number of the last record made */
	uint64_t written;         /* records and details written */
	uint64_t reported_ms;     /* last message on stderr */
	uint64_t dropped_told;
	unsigned failures;        /* writes that failed since the last message */
	struct dkv_path scratch;
};

static double unix_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static size_t key_hash(const char *subsys, const uint8_t *path, size_t plen)
{
	uint64_t h = 1469598103934665603ull;
	for (const char *s = subsys; *s; s++) {
		h ^= (uint8_t)*s;
		h *= 1099511628211ull;
	}
	h ^= 0xff; /* no string byte: subsystem and path cannot run into each other */
	h *= 1099511628211ull;
	for (size_t i = 0; i < plen; i++) {
		h ^= path[i];
		h *= 1099511628211ull;
	}
	return (size_t)(h ^ (h >> 32));
}

static size_t ptr_hash(const void *p)
{
	uint64_t x = (uint64_t)(uintptr_t)p >> 4;
	x *= 0x9e3779b97f4a7c15ull;
	return (size_t)(x >> 29);
}

static size_t erec_khash(const void *n)
{
	return ((const struct erec *)n)->khash;
}

static size_t erec_ehash(const void *n)
{
	return ptr_hash(((const struct erec *)n)->ent);
}

static size_t pend_hash(const void *n)
{
	return ((const struct pend *)n)->khash;
}

/* Whether a[0..alen) and b[0..blen) are the same bytes (either may be
 * NULL when empty: the root's path). */
static bool same_bytes(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	return alen == blen && (!alen || !memcmp(a, b, alen));
}

static bool is_below_errors(const uint8_t *path, size_t plen)
{
	return plen >= sizeof ERR_ROOT && !memcmp(path, ERR_ROOT, sizeof ERR_ROOT);
}

/* ---- the index ---- */

/* Which record of those sharing a key is the one: the first seen, then
 * the lower node, then the lower number -- the same answer on every
 * node, whatever arrived first (the original keeps the earlier one). */
static bool erec_before(const struct erec *a, const struct erec *b)
{
	if (a->first_seen != b->first_seen)
		return a->first_seen < b->first_seen;
	const struct dkv_entry *an = a->ent->parent, *bn = b->ent->parent;
	int c = memcmp(an->name, bn->name, an->namelen < bn->namelen ? an->namelen : bn->namelen);
	if (c || an->namelen != bn->namelen)
		return c ? c < 0 : an->namelen < bn->namelen;
	c = memcmp(a->ent->name, b->ent->name,
		   a->ent->namelen < b->ent->namelen ? a->ent->namelen : b->ent->namelen);
	return c ? c < 0 : a->ent->namelen < b->ent->namelen;
}

/* The record of (subsys, path); NULL: none.  Under mu, or on the loop. */
static struct erec *index_find(struct dkv_errlog *el, const char *subsys, const uint8_t *path,
			       size_t plen, size_t h)
{
	struct erec *best = NULL;
	for (struct erec *r = el->bykey[h & el->kmask]; r; r = r->knext)
		if (r->khash == h && same_bytes(r->path, r->plen, path, plen) &&
		    !strcmp(r->subsys, subsys) && (!best || erec_before(r, best)))
			best = r;
	return best;
}

static struct erec **byent_slot(struct dkv_errlog *el, const struct dkv_entry *ent)
{
	struct erec **pp = &el->byent[ptr_hash(ent) & el->emask];
	while (*pp && (*pp)->ent != ent)
		pp = &(*pp)->enext;
	return pp;
}

static void count_open(struct dkv_errlog *el, const struct erec *r, int delta)
{
	if (r->resolved)
		return;
	el->nopen += (size_t)delta;
	if (r->sys >= 0)
		atomic_fetch_add(&el->open[r->sys], (size_t)delta);
}

/* Take r out of the by-key chains (not by entry).  Under mu. */
static void unlink_key(struct dkv_errlog *el, struct erec *r)
{
	struct erec **pp = &el->bykey[r->khash & el->kmask];
	while (*pp != r)
		pp = &(*pp)->knext;
	*pp = r->knext;
	count_open(el, r, -1);
	free(r->subsys);
	free(r->path);
	r->subsys = NULL;
	r->path = NULL;
}

/* What a record says, as far as the index cares. */
struct recinfo {
	const uint8_t *subsys;
	uint32_t slen;
	struct dkv_path path;
	bool has_path;
	bool resolved;
	double first_seen;
};

/* 0 when mp is a record with a subsystem and a path; -EINVAL else.
 * ri->path must be released either way. */
static int rec_parse(const uint8_t *mp, size_t len, struct recinfo *ri)
{
	struct dkv_mp_reader r;
	struct dkv_mp_item it, k;
	memset(ri, 0, sizeof *ri);
	dkv_path_init(&ri->path);
	dkv_mp_reader_init(&r, mp, len);
	if (dkv_mp_read(&r, &it) || it.type != DKV_MP_MAP)
		return -EINVAL;
	for (uint32_t i = 0; i < it.v.n; i++) {
		if (dkv_mp_read(&r, &k))
			return -EINVAL;
		if (k.type != DKV_MP_STR) {
			if (dkv_mp_skip(&r))
				return -EINVAL;
			continue;
		}
		if (dkv_mp_streq(&k, "path")) {
			if (ri->has_path || dkv_path_decode(&ri->path, &r))
				return -EINVAL;
			ri->has_path = true;
			continue;
		}
		struct dkv_mp_reader vr = r;
		struct dkv_mp_item v;
		if (dkv_mp_read(&vr, &v) || dkv_mp_skip(&r))
			return -EINVAL;
		if (dkv_mp_streq(&k, "subsystem") && v.type == DKV_MP_STR) {
			ri->subsys = v.v.s.p;
			ri->slen = v.v.s.len;
		} else if (dkv_mp_streq(&k, "resolved")) {
			ri->resolved = dkv_mp_truthy(&v);
		} else if (dkv_mp_streq(&k, "first_seen")) {
			if (v.type == DKV_MP_FLOAT)
				ri->first_seen = v.v.f;
			else if (v.type == DKV_MP_UINT)
				ri->first_seen = (double)v.v.u;
		}
	}
	return ri->subsys && ri->has_path ? 0 : -EINVAL;
}

static int sys_of(const char *name)
{
	for (int i = 0; i < DKV_ERRSYS__COUNT; i++)
		if (!strcmp(sys_names[i], name))
			return i;
	return -1;
}

/* The record entry ent changed (or is new to us): index it as it is now.
 * On the loop. */
static void index_update(struct dkv_errlog *el, struct dkv_entry *ent)
{
	struct recinfo ri = {0};
	bool ok = dkv_entry_has_value(ent) &&
		  !rec_parse(dkv_value_data(ent->value), ent->value->len, &ri);
	bool unpin = false;
	pthread_mutex_lock(&el->mu);
	struct erec **slot = byent_slot(el, ent);
	struct erec *r = *slot;
	if (r)
		unlink_key(el, r);
	if (!ok) {
		if (r) {
			*slot = r->enext;
			el->nrecs--;
			free(r);
			unpin = true;
		}
	} else {
		if (!r) {
			if (el->nrecs >= el->emask) {
				dkv_hashtab_grow(&el->byent, &el->emask, offsetof(struct erec, enext),
						 erec_ehash);
				dkv_hashtab_grow(&el->bykey, &el->kmask, offsetof(struct erec, knext),
						 erec_khash);
			}
			r = dkv_xcalloc(1, sizeof *r);
			r->ent = ent;
			dkv_entry_pin(ent);
			struct erec **eslot = &el->byent[ptr_hash(ent) & el->emask];
			r->enext = *eslot;
			*eslot = r;
			el->nrecs++;
		}
		r->subsys = dkv_xstrndup((const char *)ri.subsys, ri.slen);
		r->plen = ri.path.enc.len;
		r->path = dkv_xmalloc(r->plen ? r->plen : 1);
		if (r->plen)
			memcpy(r->path, ri.path.enc.data, r->plen);
		r->khash = key_hash(r->subsys, r->path, r->plen);
		r->sys = sys_of(r->subsys);
		r->resolved = ri.resolved;
		r->first_seen = ri.first_seen;
		struct erec **kslot = &el->bykey[r->khash & el->kmask];
		r->knext = *kslot;
		*kslot = r;
		count_open(el, r, +1);
	}
	pthread_mutex_unlock(&el->mu);
	dkv_path_release(&ri.path);
	if (unpin)
		dkv_entry_unpin(el->e, ent);
}

/* Whether ent is a record: (".distkv", "error", NODE, TOCK). */
static bool is_record(const struct dkv_errlog *el, const struct dkv_entry *ent)
{
	return ent->parent && ent->parent->parent == el->root;
}

static void merge_soon(struct dkv_errlog *el);

/* Whether the key of the record at ent has another record.  On the loop. */
static bool has_duplicate(struct dkv_errlog *el, const struct dkv_entry *ent)
{
	bool dup = false;
	pthread_mutex_lock(&el->mu);
	const struct erec *r = *byent_slot(el, ent);
	for (const struct erec *o = r ? el->bykey[r->khash & el->kmask] : NULL; o && !dup;
	     o = o->knext)
		dup = o != r && o->khash == r->khash && same_bytes(o->path, o->plen, r->path, r->plen) &&
		      !strcmp(o->subsys, r->subsys);
	pthread_mutex_unlock(&el->mu);
	return dup;
}

static void on_watch(struct dkv_watch *w, const struct dkv_event *ev)
{
	struct dkv_errlog *el = (struct dkv_errlog *)((char *)w - offsetof(struct dkv_errlog, watch));
	struct dkv_entry *ent = ev->entry;
	if (is_record(el, ent)) {
		index_update(el, ent);
		if (dkv_entry_has_value(ent) && has_duplicate(el, ent))
			merge_soon(el);
	} else if (ent->parent && is_record(el, ent->parent) && dkv_entry_has_value(ent) &&
		   !dkv_entry_has_value(ent->parent)) {
		merge_soon(el); /* details of a record merged away: they move too */
	}
}

/* ---- noting (any thread) ---- */

static struct pend **pend_slot(struct dkv_errlog *el, int sys, const uint8_t *path, size_t plen,
			       size_t h)
{
	struct pend **pp = &el->pends[h & el->pmask];
	while (*pp && !((*pp)->khash == h && (*pp)->sys == sys &&
			same_bytes((*pp)->path, (*pp)->plen, path, plen)))
		pp = &(*pp)->hnext;
	return pp;
}

/* The pending entry of (sys, path), made if needed; NULL when too many
 * wait (the occurrence is dropped).  *made: it is new.  Under mu. */
static struct pend *pend_get(struct dkv_errlog *el, int sys, const uint8_t *path, size_t plen,
			     bool *made)
{
	size_t h = key_hash(sys_names[sys], path, plen);
	struct pend **pp = pend_slot(el, sys, path, plen, h);
	*made = false;
	if (*pp)
		return *pp;
	if (el->npend >= el->o.max_pending) {
		el->dropped++;
		return NULL;
	}
	if (el->npend >= el->pmask) {
		dkv_hashtab_grow(&el->pends, &el->pmask, offsetof(struct pend, hnext), pend_hash);
		pp = pend_slot(el, sys, path, plen, h);
	}
	struct pend *p = dkv_xcalloc(1, sizeof *p);
	p->sys = sys;
	p->plen = plen;
	p->path = dkv_xmalloc(plen ? plen : 1);
	if (plen)
		memcpy(p->path, path, plen);
	p->khash = h;
	p->severity = DKV_SEV_TRACE;
	*pp = p;
	el->npend++;
	atomic_fetch_add(&el->open[sys], 1);
	*made = true;
	return p;
}

static void pend_free(struct pend *p)
{
	if (!p)
		return;
	free(p->path);
	free(p->message);
	free(p->comment);
	free(p->data);
	free(p);
}

static void set_text(char **dst, const char *s)
{
	free(*dst);
	*dst = s ? dkv_xstrdup(s) : NULL;
}

void dkv_errlog_note(struct dkv_errlog *el, const struct dkv_errlog_occ *o)
{
	bool made;
	if (!el || (unsigned)o->sys >= DKV_ERRSYS__COUNT || is_below_errors(o->path, o->plen))
		return;
	double now = unix_now();
	pthread_mutex_lock(&el->mu);
	struct pend *p = el->closing ? NULL : pend_get(el, o->sys, o->path, o->plen, &made);
	if (p) {
		if (!p->count)
			p->first = now;
		p->count++;
		p->last = now;
		if ((int)o->severity < p->severity)
			p->severity = o->severity;
		p->fixed = false;
		set_text(&p->message, o->message);
		set_text(&p->comment, o->comment);
		free(p->data);
		p->data = NULL;
		p->dlen = 0;
		if (o->data && o->dlen) {
			p->data = dkv_xmalloc(o->dlen);
			memcpy(p->data, o->data, o->dlen);
			p->dlen = o->dlen;
		}
	}
	pthread_mutex_unlock(&el->mu);
	if (p && made)
		uv_async_send(&el->async);
}

void dkv_errlog_fixed(struct dkv_errlog *el, enum dkv_errsys sys, const uint8_t *path,
		      size_t plen)
{
	bool made = false, wake = false;
	if (!el || (unsigned)sys >= DKV_ERRSYS__COUNT || !atomic_load(&el->open[sys]))
		return;
	const char *name = sys_names[sys];
	size_t h = key_hash(name, path, plen);
	pthread_mutex_lock(&el->mu);
	struct pend *p = *pend_slot(el, (int)sys, path, plen, h);
	if (p) {
		wake = !p->fixed;
		p->fixed = true;
	} else if (!el->closing) {
		struct erec *r = index_find(el, name, path, plen, h);
		if (r && !r->resolved && (p = pend_get(el, (int)sys, path, plen, &made))) {
			p->fixed = true;
			wake = made;
		}
	}
	pthread_mutex_unlock(&el->mu);
	if (wake)
		uv_async_send(&el->async);
}

/* ---- writing (the loop) ---- */

static void trouble(struct dkv_errlog *el, const char *what, const uint8_t *path, size_t plen,
		    int rc, const char *why)
{
	uint64_t now = uv_now(el->loop);
	el->failures++;
	if (el->reported_ms && now - el->reported_ms < REPORT_EVERY_MS)
		return;
	struct dkv_buf d = {0};
	dkv_path_describe(&d, path, plen);
	dkv_report(DKV_REPORT_ERROR, "error log: cannot %s %s: %s%s%s (%u failures)", what,
		   dkv_buf_cstr(&d), dkv_strerror(rc), *why ? ": " : "", why, el->failures);
	dkv_buf_release(&d);
	el->reported_ms = now;
	el->failures = 0;
}

static int put(struct dkv_errlog *el, const uint8_t *path, size_t plen, const struct dkv_buf *v,
	       bool new_only, const char *what)
{
	struct dkv_change c = {
		.path = path,
		.path_len = plen,
		.value = v->data,
		.value_len = v->len,
		.pre = new_only ? DKV_PRE_NEW : DKV_PRE_NONE,
		.src = DKV_SRC_LOCAL,
	};
	struct dkv_result res;
	int rc = dkv_engine_apply(el->e, &c, &res);
	if (rc && !(new_only && rc == -EEXIST))
		trouble(el, what, path, plen, rc, res.why);
	if (!rc)
		el->written++;
	dkv_result_release(el->e, &res);
	return rc;
}

/* An integer field of a map; dflt when it has none. */
static int64_t map_int(const uint8_t *mp, size_t len, const char *key, int64_t dflt)
{
	struct dkv_mp_reader r;
	struct dkv_mp_item it, k, v;
	dkv_mp_reader_init(&r, mp, len);
	if (dkv_mp_read(&r, &it) || it.type != DKV_MP_MAP)
		return dflt;
	for (uint32_t i = 0; i < it.v.n; i++) {
		if (dkv_mp_read(&r, &k))
			return dflt;
		struct dkv_mp_reader vr = r;
		if (dkv_mp_read(&vr, &v) || dkv_mp_skip(&r))
			return dflt;
		if (dkv_mp_streq(&k, key)) {
			if (v.type == DKV_MP_UINT && v.v.u <= INT64_MAX)
				return (int64_t)v.v.u;
			if (v.type == DKV_MP_INT)
				return v.v.i;
			return dflt;
		}
	}
	return dflt;
}

static void put_str(struct dkv_buf *b, const char *k, const char *v)
{
	dkv_mp_cstr(b, k);
	dkv_mp_cstr(b, v);
}

static void put_double(struct dkv_buf *b, const char *k, double v)
{
	dkv_mp_cstr(b, k);
	dkv_mp_double(b, v);
}

static void put_int(struct dkv_buf *b, const char *k, int64_t v)
{
	dkv_mp_cstr(b, k);
	dkv_mp_int(b, v);
}

/* The path of ent from the root, into el->scratch. */
static const struct dkv_path *path_of(struct dkv_errlog *el, const struct dkv_entry *ent)
{
	el->scratch.enc.len = 0;
	el->scratch.n = 0;
	dkv_entry_path(ent, NULL, &el->scratch);
	return &el->scratch;
}

/* Make a new record for p; its entry, or NULL. */
static struct dkv_entry *record_new(struct dkv_errlog *el, const struct pend *p)
{
	struct dkv_buf v = {0};
	struct dkv_path rp;
	struct dkv_entry *ent = NULL;
	dkv_mp_map(&v, 8);
	dkv_mp_cstr(&v, "path");
	dkv_path_encode(&v, p->path, p->plen);
	put_str(&v, "subsystem", sys_names[p->sys]);
	put_int(&v, "severity", p->severity);
	dkv_mp_cstr(&v, "resolved");
	dkv_mp_bool(&v, false);
	put_int(&v, "count", (int64_t)p->count);
	put_double(&v, "first_seen", p->first);
	put_double(&v, "last_seen", p->last);
	put_double(&v, "created", p->first);

	dkv_path_init(&rp);
	uint64_t t = dkv_engine_tock(el->e) + 1;
	if (t <= el->last_tock)
		t = el->last_tock + 1;
	for (int i = 0; i < TOCK_TRIES; i++, t++) {
		rp.enc.len = 0;
		rp.n = 0;
		dkv_path_push_canon(&rp, ERR_ROOT, sizeof ERR_ROOT);
		rp.n = 2;
		dkv_path_push_str(&rp, dkv_engine_self(el->e)->name);
		struct dkv_buf tk = {0};
		dkv_mp_uint(&tk, t);
		dkv_path_push_canon(&rp, tk.data, tk.len);
		dkv_buf_release(&tk);
		int rc = put(el, rp.enc.data, rp.enc.len, &v, true, "make a record at");
		if (rc == -EEXIST)
			continue;
		if (!rc) {
			el->last_tock = t;
			ent = dkv_entry_lookup(el->e, NULL, rp.enc.data, rp.enc.len, false);
		}
		break;
	}
	dkv_path_release(&rp);
	dkv_buf_release(&v);
	return ent;
}

/* Add p's occurrences to the record at ent (reopening it). */
static void record_update(struct dkv_errlog *el, struct dkv_entry *ent, const struct pend *p)
{
	static const char *const skip[] = {"count", "last_seen", "resolved", "severity"};
	const uint8_t *old = dkv_value_data(ent->value);
	size_t olen = ent->value->len;
	struct dkv_buf body = {0}, v = {0};
	int n = dkv_mp_copy_pairs(&body, old, olen, skip, 4);
	if (n < 0)
		n = 0;
	int64_t sev = map_int(old, olen, "severity", DKV_SEV_TRACE);
	int64_t count = map_int(old, olen, "count", 0);
	dkv_mp_map(&v, (uint32_t)n + 4);
	dkv_buf_append(&v, body.data, body.len);
	put_int(&v, "severity", p->severity < sev ? p->severity : sev);
	dkv_mp_cstr(&v, "resolved");
	dkv_mp_bool(&v, false);
	put_int(&v, "count", (count > 0 ? count : 0) + (int64_t)p->count);
	put_double(&v, "last_seen", p->last);
	const struct dkv_path *rp = path_of(el, ent);
	put(el, rp->enc.data, rp->enc.len, &v, false, "update the record");
	dkv_buf_release(&body);
	dkv_buf_release(&v);
}

/* This node's detail record below the record at ent. */
static void detail_put(struct dkv_errlog *el, struct dkv_entry *ent, const struct pend *p)
{
	struct dkv_buf v = {0};
	uint32_t n = 3 + (p->comment != NULL) + (p->data != NULL);
	dkv_mp_map(&v, n);
	put_double(&v, "seen", p->last);
	put_int(&v, "tock", (int64_t)dkv_engine_tock(el->e));
	put_str(&v, "message", p->message ? p->message : "");
	if (p->comment)
		put_str(&v, "comment", p->comment);
	if (p->data) {
		dkv_mp_cstr(&v, "data");
		dkv_buf_append(&v, p->data, p->dlen);
	}
	path_of(el, ent);
	dkv_path_push_str(&el->scratch, dkv_engine_self(el->e)->name);
	put(el, el->scratch.enc.data, el->scratch.enc.len, &v, false, "write the details at");
	dkv_buf_release(&v);
}

static void record_resolve(struct dkv_errlog *el, struct dkv_entry *ent)
{
	static const char *const skip[] = {"resolved"};
	struct dkv_buf body = {0}, v = {0};
	int n = dkv_mp_copy_pairs(&body, dkv_value_data(ent->value), ent->value->len, skip, 1);
	if (n >= 0) {
		dkv_mp_map(&v, (uint32_t)n + 1);
		dkv_buf_append(&v, body.data, body.len);
		put_int(&v, "resolved", (int64_t)dkv_engine_tock(el->e));
		const struct dkv_path *rp = path_of(el, ent);
		put(el, rp->enc.data, rp->enc.len, &v, false, "resolve the record");
	}
	dkv_buf_release(&body);
	dkv_buf_release(&v);
}

static void mark_written(struct dkv_errlog *el, struct dkv_entry *ent, uint64_t now)
{
	pthread_mutex_lock(&el->mu);
	struct erec *r = *byent_slot(el, ent);
	if (r)
		r->written_ms = now ? now : 1;
	pthread_mutex_unlock(&el->mu);
}

/* Write p: its occurrences, then its fix.  On the loop, mu not held. */
static void write_pend(struct dkv_errlog *el, const struct pend *p, uint64_t now)
{
	const char *name = sys_names[p->sys];
	struct erec *r = index_find(el, name, p->path, p->plen, p->khash);
	struct dkv_entry *ent = r ? r->ent : NULL;
	bool resolved = r && r->resolved;
	if (p->count) {
		if (ent) {
			record_update(el, ent, p);
		} else {
			ent = record_new(el, p);
			el->window_new++;
		}
		if (ent) {
			dkv_entry_pin(ent);
			detail_put(el, ent, p);
			mark_written(el, ent, now);
			resolved = false;
		}
	} else if (ent) {
		dkv_entry_pin(ent);
	}
	if (ent && p->fixed && !resolved && dkv_entry_has_value(ent)) {
		record_resolve(el, ent);
		mark_written(el, ent, now);
	}
	if (ent)
		dkv_entry_unpin(el->e, ent);
}

static void on_timer(uv_timer_t *h);

/* Write what is due (all: everything), and set the timer for the rest. */
static void flush(struct dkv_errlog *el, bool all)
{
	uint64_t now = uv_now(el->loop);
	struct pend **take = NULL;
	size_t ntake = 0, cap = 0;
	if (now - el->window_ms >= el->o.interval_ms) {
		el->window_ms = now;
		el->window_new = 0;
	}
	pthread_mutex_lock(&el->mu);
	unsigned budget = el->o.max_new > el->window_new ? el->o.max_new - el->window_new : 0;
	for (size_t b = 0; b <= el->pmask && el->npend; b++) {
		for (struct pend **pp = &el->pends[b]; *pp;) {
			struct pend *p = *pp;
			/* an existing record: not written in the last interval; a new
			 * one: within the interval's budget */
			struct erec *r = index_find(el, sys_names[p->sys], p->path, p->plen, p->khash);
			bool ok = all || (r ? !r->written_ms || now - r->written_ms >= el->o.interval_ms
					    : !p->count || budget);
			if (!ok) {
				pp = &p->hnext;
				continue;
			}
			if (!r && p->count && budget)
				budget--;
			*pp = p->hnext;
			el->npend--;
			atomic_fetch_sub(&el->open[p->sys], 1);
			if (ntake == cap) {
				cap = cap ? 2 * cap : 16;
				take = dkv_xrealloc(take, cap * sizeof *take);
			}
			take[ntake++] = p;
		}
	}
	bool more = el->npend > 0;
	uint64_t dropped = el->dropped;
	pthread_mutex_unlock(&el->mu);

	for (size_t i = 0; i < ntake; i++) {
		write_pend(el, take[i], now);
		pend_free(take[i]);
	}
	free(take);
	if (dropped != el->dropped_told &&
	    (!el->reported_ms || now - el->reported_ms >= REPORT_EVERY_MS)) {
		dkv_report(DKV_REPORT_ERROR,
			   "error log: %llu occurrences dropped: more than %u errors waited to be written",
			   (unsigned long long)(dropped - el->dropped_told), el->o.max_pending);
		el->dropped_told = dropped;
		el->reported_ms = now;
	}
	if (more && !el->closed && !uv_is_active((uv_handle_t *)&el->timer)) {
		/* a quarter interval: an error is written within 1.25 of them */
		uint64_t t = el->o.interval_ms / 4;
		uv_timer_start(&el->timer, on_timer, t > 10 ? t : 10, 0);
	}
}

static void on_timer(uv_timer_t *h)
{
	flush(h->data, false);
}

static void on_async(uv_async_t *h)
{
	flush(h->data, false);
}

/* ---- merging duplicates ----
 *
 * Two nodes that meet a new error at once each make a record before
 * either has seen the other's.  Every node that sees such a pair merges
 * the younger record into the one that counts (erec_before): the counts
 * add up, first_seen is the earlier, last_seen the later, the severity
 * the more severe, and the error is open if either was; the younger's
 * (NODE, TOCK) goes into the keeper's `merged` list; each of its details
 * is copied unless the keeper has a newer one from the same node; then
 * the younger record and its details are deleted.  Two nodes doing this
 * at once write the same keeper, and a node that sees a keeper whose
 * `merged` already names the younger one only moves the details and
 * deletes: nothing is counted twice.  Details that arrive for a record
 * merged away (a runner that had not seen the merge) follow the record
 * that names it in `merged`.  It runs a little after the duplicate shows
 * (half an interval), so that the younger's details are there to move.
 */

static void on_merge_timer(uv_timer_t *h);

static void merge_soon(struct dkv_errlog *el)
{
	if (el->closed || uv_is_active((uv_handle_t *)&el->merge_timer))
		return;
	uint64_t t = el->o.interval_ms / 2;
	uv_timer_start(&el->merge_timer, on_merge_timer, t > 50 ? t : 50, 0);
}

/* The item of map mp at key (its encoding in *p, *plen); false: none. */
static bool map_get(const uint8_t *mp, size_t len, const char *key, struct dkv_mp_item *it,
		    const uint8_t **p, size_t *plen)
{
	struct dkv_mp_reader r;
	struct dkv_mp_item m, k;
	dkv_mp_reader_init(&r, mp, len);
	if (dkv_mp_read(&r, &m) || m.type != DKV_MP_MAP)
		return false;
	for (uint32_t i = 0; i < m.v.n; i++) {
		if (dkv_mp_read(&r, &k))
			return false;
		const uint8_t *start = r.p;
		struct dkv_mp_reader vr = r;
		if (dkv_mp_read(&vr, it) || dkv_mp_skip(&r))
			return false;
		if (k.type == DKV_MP_STR && dkv_mp_streq(&k, key)) {
			if (p) {
				*p = start;
				*plen = (size_t)(r.p - start);
			}
			return true;
		}
	}
	return false;
}

static double map_time(const uint8_t *mp, size_t len, const char *key)
{
	struct dkv_mp_item it;
	if (!map_get(mp, len, key, &it, NULL, NULL))
		return 0;
	return it.type == DKV_MP_FLOAT ? it.v.f : it.type == DKV_MP_UINT ? (double)it.v.u : 0;
}

static bool map_open(const uint8_t *mp, size_t len)
{
	struct dkv_mp_item it;
	return !map_get(mp, len, "resolved", &it, NULL, NULL) || !dkv_mp_truthy(&it);
}

/* The items of the keeper's `merged` list into items (n of them);
 * whether id (an array of NODE and TOCK) is among them. */
static bool merged_list(const uint8_t *mp, size_t len, const struct dkv_buf *id,
			struct dkv_buf *items, uint32_t *n)
{
	struct dkv_mp_item it;
	const uint8_t *p;
	size_t plen;
	bool found = false;
	*n = 0;
	if (!map_get(mp, len, "merged", &it, &p, &plen) || it.type != DKV_MP_ARRAY)
		return false;
	struct dkv_mp_reader r;
	dkv_mp_reader_init(&r, p, plen);
	dkv_mp_read(&r, &it);
	for (uint32_t i = 0; i < it.v.n; i++) {
		const uint8_t *start = r.p;
		if (dkv_mp_skip(&r))
			break;
		size_t l = (size_t)(r.p - start);
		found |= l == id->len && !memcmp(start, id->data, l);
		dkv_buf_append(items, start, l);
		(*n)++;
	}
	return found;
}

static int drop(struct dkv_errlog *el, const struct dkv_entry *ent)
{
	const struct dkv_path *p = path_of(el, ent);
	struct dkv_change c = {.path = p->enc.data, .path_len = p->enc.len, .src = DKV_SRC_LOCAL};
	struct dkv_result res;
	int rc = dkv_engine_apply(el->e, &c, &res);
	if (rc)
		trouble(el, "delete the merged", p->enc.data, p->enc.len, rc, res.why);
	dkv_result_release(el->e, &res);
	return rc;
}

/* Move the details below from to keep (where keep has no newer one of
 * that node), deleting them at from. */
static void move_details(struct dkv_errlog *el, struct dkv_entry *from, struct dkv_entry *keep)
{
	for (struct dkv_entry *d = from->kids, *nx; d; d = nx) {
		dkv_entry_pin(d);
		if (dkv_entry_has_value(d)) {
			struct dkv_entry *kd = keep ? dkv_entry_child(el->e, keep, d->name, d->namelen) : NULL;
			const uint8_t *dv = dkv_value_data(d->value);
			if (keep && (!kd || !dkv_entry_has_value(kd) ||
				     map_time(dkv_value_data(kd->value), kd->value->len, "seen") <
					     map_time(dv, d->value->len, "seen"))) {
				struct dkv_buf v = {0};
				dkv_buf_append(&v, dv, d->value->len);
				path_of(el, keep);
				dkv_path_push_canon(&el->scratch, d->name, d->namelen);
				put(el, el->scratch.enc.data, el->scratch.enc.len, &v, false,
				    "move the details to");
				dkv_buf_release(&v);
			}
			drop(el, d);
		}
		nx = d->next;
		dkv_entry_unpin(el->e, d);
	}
}

/* Merge the record at dup into the one at keep (see above). */
static void merge_pair(struct dkv_errlog *el, struct dkv_entry *keep, struct dkv_entry *dup)
{
	if (!dkv_entry_has_value(keep) || !dkv_entry_has_value(dup))
		return;
	const uint8_t *k = dkv_value_data(keep->value), *y = dkv_value_data(dup->value);
	size_t klen = keep->value->len, ylen = dup->value->len;
	struct dkv_buf id = {0}, items = {0}, body = {0}, v = {0};
	uint32_t nitems;
	dkv_mp_array(&id, 2);
	dkv_buf_append(&id, dup->parent->name, dup->parent->namelen);
	dkv_buf_append(&id, dup->name, dup->namelen);
	if (!merged_list(k, klen, &id, &items, &nitems)) {
		static const char *const skip[] = {"count", "first_seen", "last_seen", "severity",
						   "resolved", "merged"};
		int n = dkv_mp_copy_pairs(&body, k, klen, skip, 6);
		if (n < 0)
			goto out;
		int64_t kc = map_int(k, klen, "count", 0), yc = map_int(y, ylen, "count", 0);
		int64_t ks = map_int(k, klen, "severity", DKV_SEV_TRACE);
		int64_t ys = map_int(y, ylen, "severity", DKV_SEV_TRACE);
		double kf = map_time(k, klen, "first_seen"), yf = map_time(y, ylen, "first_seen");
		double kl = map_time(k, klen, "last_seen"), yl = map_time(y, ylen, "last_seen");
		bool open = map_open(k, klen) || map_open(y, ylen);
		dkv_mp_map(&v, (uint32_t)n + 6);
		dkv_buf_append(&v, body.data, body.len);
		put_int(&v, "count", (kc > 0 ? kc : 0) + (yc > 0 ? yc : 0));
		put_double(&v, "first_seen", yf && yf < kf ? yf : kf);
		put_double(&v, "last_seen", yl > kl ? yl : kl);
		put_int(&v, "severity", ys < ks ? ys : ks);
		dkv_mp_cstr(&v, "resolved");
		if (open) {
			dkv_mp_bool(&v, false);
		} else {
			struct dkv_mp_item it;
			const uint8_t *p;
			size_t plen;
			map_get(k, klen, "resolved", &it, &p, &plen);
			dkv_buf_append(&v, p, plen);
		}
		dkv_mp_cstr(&v, "merged");
		dkv_mp_array(&v, nitems + 1);
		dkv_buf_append(&v, items.data, items.len);
		dkv_buf_append(&v, id.data, id.len);
		const struct dkv_path *kp = path_of(el, keep);
		if (put(el, kp->enc.data, kp->enc.len, &v, false, "merge a duplicate into"))
			goto out;
	}
	move_details(el, dup, keep);
	drop(el, dup);
out:
	dkv_buf_release(&id);
	dkv_buf_release(&items);
	dkv_buf_release(&body);
	dkv_buf_release(&v);
}

/* The record whose `merged` names the record entry gone (NULL: none). */
static struct dkv_entry *merged_into(struct dkv_errlog *el, const struct dkv_entry *gone)
{
	struct dkv_buf id = {0}, items = {0};
	struct dkv_entry *found = NULL;
	uint32_t n;
	dkv_mp_array(&id, 2);
	dkv_buf_append(&id, gone->parent->name, gone->parent->namelen);
	dkv_buf_append(&id, gone->name, gone->namelen);
	pthread_mutex_lock(&el->mu);
	for (size_t b = 0; b <= el->emask && !found; b++)
		for (struct erec *r = el->byent[b]; r && !found; r = r->enext) {
			items.len = 0;
			if (dkv_entry_has_value(r->ent) &&
			    merged_list(dkv_value_data(r->ent->value), r->ent->value->len, &id, &items, &n))
				found = r->ent;
		}
	if (found)
		dkv_entry_pin(found);
	pthread_mutex_unlock(&el->mu);
	dkv_buf_release(&id);
	dkv_buf_release(&items);
	return found;
}

static void on_merge_timer(uv_timer_t *h)
{
	struct dkv_errlog *el = h->data;
	struct dkv_entry **pairs = NULL;
	size_t n = 0, cap = 0;
	/* the pairs, pinned, while the index stays put */
	pthread_mutex_lock(&el->mu);
	for (size_t b = 0; b <= el->emask; b++)
		for (struct erec *r = el->byent[b]; r; r = r->enext) {
			struct erec *best = index_find(el, r->subsys, r->path, r->plen, r->khash);
			if (!best || best == r)
				continue;
			if (n + 2 > cap) {
				cap = cap ? 2 * cap : 16;
				pairs = dkv_xrealloc(pairs, cap * sizeof *pairs);
			}
			dkv_entry_pin(best->ent);
			dkv_entry_pin(r->ent);
			pairs[n++] = best->ent;
			pairs[n++] = r->ent;
		}
	pthread_mutex_unlock(&el->mu);
	for (size_t i = 0; i < n; i += 2) {
		merge_pair(el, pairs[i], pairs[i + 1]);
		dkv_entry_unpin(el->e, pairs[i]);
		dkv_entry_unpin(el->e, pairs[i + 1]);
	}
	free(pairs);
	/* details left below records merged away */
	for (struct dkv_entry *nd = el->root->kids; nd; nd = nd->next)
		for (struct dkv_entry *r = nd->kids, *nx; r; r = nx) {
			bool stray = false;
			for (struct dkv_entry *d = r->kids; d && !stray && !dkv_entry_has_value(r);
			     d = d->next)
				stray = dkv_entry_has_value(d);
			dkv_entry_pin(r);
			struct dkv_entry *keep = stray ? merged_into(el, r) : NULL;
			if (keep) {
				move_details(el, r, keep);
				dkv_entry_unpin(el->e, keep);
			}
			nx = r->next;
			dkv_entry_unpin(el->e, r);
		}
}

/* ---- life cycle ---- */

struct dkv_errlog *dkv_engine_errlog(struct dkv_engine *e)
{
	return atomic_load_explicit(&e->errlog, memory_order_acquire);
}

struct dkv_errlog *dkv_errlog_new(uv_loop_t *loop, struct dkv_engine *e,
				  const struct dkv_errlog_opts *o)
{
	struct dkv_errlog *el = dkv_xcalloc(1, sizeof *el);
	el->loop = loop;
	el->e = e;
	if (o)
		el->o = *o;
	if (!el->o.interval_ms)
		el->o.interval_ms = 1000;
	if (!el->o.max_new)
		el->o.max_new = 100;
	if (!el->o.max_pending)
		el->o.max_pending = 10000;
	pthread_mutex_init(&el->mu, NULL);
	el->kmask = el->emask = el->pmask = 63;
	el->bykey = dkv_xcalloc(el->kmask + 1, sizeof *el->bykey);
	el->byent = dkv_xcalloc(el->emask + 1, sizeof *el->byent);
	el->pends = dkv_xcalloc(el->pmask + 1, sizeof *el->pends);
	dkv_path_init(&el->scratch);
	uv_async_init(loop, &el->async, on_async);
	uv_timer_init(loop, &el->timer);
	uv_timer_init(loop, &el->merge_timer);
	el->async.data = el->timer.data = el->merge_timer.data = el;
	el->window_ms = uv_now(loop);

	el->watch.cb = on_watch;
	dkv_watch_start(e, &el->watch, NULL, ERR_ROOT, sizeof ERR_ROOT);
	el->root = el->watch.entry;
	for (struct dkv_entry *n = el->root->kids; n; n = n->next)
		for (struct dkv_entry *r = n->kids; r; r = r->next)
			index_update(el, r);
	merge_soon(el); /* duplicates the node was given while it was down */
	atomic_store_explicit(&e->errlog, el, memory_order_release);
	return el;
}

void dkv_errlog_close(struct dkv_errlog *el)
{
	if (!el || el->closed)
		return;
	flush(el, true);
	pthread_mutex_lock(&el->mu);
	el->closing = true;
	pthread_mutex_unlock(&el->mu);
	el->closed = true;
	dkv_watch_stop(el->e, &el->watch, NULL);
	/* the index lets go of its entries; the tables stay for late notes */
	pthread_mutex_lock(&el->mu);
	for (size_t b = 0; b <= el->emask; b++) {
		for (struct erec *r = el->byent[b], *n; r; r = n) {
			n = r->enext;
			unlink_key(el, r);
			dkv_entry_unpin(el->e, r->ent);
			free(r);
		}
		el->byent[b] = NULL;
	}
	el->nrecs = 0;
	pthread_mutex_unlock(&el->mu);
	uv_close((uv_handle_t *)&el->async, NULL);
	uv_close((uv_handle_t *)&el->timer, NULL);
	uv_close((uv_handle_t *)&el->merge_timer, NULL);
}

void dkv_errlog_free(struct dkv_errlog *el)
{
	if (!el)
		return;
	atomic_store(&el->e->errlog, NULL);
	for (size_t b = 0; b <= el->pmask; b++)
		for (struct pend *p = el->pends[b], *n; p; p = n) {
			n = p->hnext;
			pend_free(p);
		}
	free(el->pends);
	free(el->bykey);
	free(el->byent);
	dkv_path_release(&el->scratch);
	pthread_mutex_destroy(&el->mu);
	free(el);
}

void dkv_errlog_stats(struct dkv_errlog *el, struct dkv_errlog_stats *st)
{
	memset(st, 0, sizeof *st);
	if (!el)
		return;
	pthread_mutex_lock(&el->mu);
	st->records = el->nrecs;
	st->open = el->nopen;
	st->pending = el->npend;
	st->dropped = el->dropped;
	pthread_mutex_unlock(&el->mu);
	st->written = el->written;
}
