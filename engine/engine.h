/*
 * engine.h - the core of a distkv node: the tree, the nodes and their
 * ticks, chains, tock, and the one call through which every change goes.
 *
 * Ownership: an engine is owned by one thread (the server's event loop).
 * Every function here must be called from that thread unless it says
 * otherwise.  Readers on other threads (the FUSE layer) take the tree's
 * read lock (dkv_engine_rdlock); dkv_engine_apply takes the write lock
 * itself around the modification, but not around the fan-out.
 *
 * Start reading at struct dkv_entry and dkv_engine_apply().
 */
#ifndef DKV_ENGINE_H
#define DKV_ENGINE_H

#include "errors.h"
#include "mp.h"
#include "path.h"
#include "range.h"

#include <stdatomic.h>

/* ---- nodes, chains and values ---- */

struct dkv_node {
	char *name;
	uint32_t idx;               /* position in the engine's node table */
	uint64_t tick;              /* highest tick seen from this node */
	struct dkv_rangeset seen;   /* every tick of this node we know of */
	struct dkv_rangeset deleted; /* ticks whose change was a deletion */
};

/* A chain: who changed an entry, newest first, each node at most once. */
struct dkv_chain_link {
	struct dkv_node *node;
	uint64_t tick;
};

#define DKV_CHAIN_MAX 63 /* hard upper bound for server.change.length */

/* The wire form: {node: NAME, tick: N, prev: {...} | nil}, nested at most
 * depth links deep (depth < 0: all).  No links is written as nil. */
void dkv_chain_encode(const struct dkv_chain_link *l, uint32_t n, int depth, struct dkv_buf *out);
/* Human-readable form for error messages: "node-a@4,node-b@2". */
void dkv_chain_describe(const struct dkv_chain_link *l, uint32_t n, struct dkv_buf *out);

/*
 * What one change left behind: the entry's chain and its value, or no
 * value after a deletion (a tombstone, which keeps the chain so that the
 * deletion wins over older changes).  Immutable and refcounted: replies,
 * watch queues, the log and the filesystem hold references, and nothing
 * is copied.  One allocation: header, links, then the msgpack bytes.
 */
struct dkv_value {
	atomic_uint refs;
	uint32_t len : 26;   /* bytes of msgpack data (< 64 MiB); 0: deleted */
	uint32_t nchain : 6; /* links in chain[] (< DKV_CHAIN_MAX) */
	struct dkv_chain_link chain[]; /* newest first; the data follows */
};

#define DKV_VALUE_MAX ((1u << 26) - 1) /* largest value, bytes */

/* A new value (len 0 / mp NULL: a deletion) with the given chain;
 * len <= DKV_VALUE_MAX, nchain <= DKV_CHAIN_MAX. */
struct dkv_value *dkv_value_new(const uint8_t *mp, size_t len, const struct dkv_chain_link *l,
				uint32_t nchain);
struct dkv_value *dkv_value_ref(struct dkv_value *v);   /* accepts NULL */
void dkv_value_unref(struct dkv_value *v);              /* accepts NULL */
static inline const uint8_t *dkv_value_data(const struct dkv_value *v)
{
	return (const uint8_t *)(v->chain + v->nchain);
}
/* Whether both hold the same data (or both none). */
bool dkv_value_same_data(const struct dkv_value *a, const struct dkv_value *b);

/* ---- the tree ---- */

enum {
	DKV_ENTRY_WATCHED = 2, /* has watchers in the engine's watch list */
	DKV_ENTRY_KEEP = 4,    /* made by mkdir: stays while empty (local only) */
	DKV_ENTRY_TOMB = 8,    /* in the engine's list of tombstones (kept till purged) */
};

struct dkv_entry {
	struct dkv_entry *parent;      /* NULL for the root */
	struct dkv_entry *kids;        /* first child; kids->prev is the last */
	struct dkv_entry *next, *prev; /* siblings in insertion order (prev is circular) */
	struct dkv_entry *hnext;       /* hash chain of the engine's entry table */
	struct dkv_value *value;       /* the last change; NULL: never changed */
	uint64_t tock;                 /* tock of the last change (or creation) */
	int64_t mtime_ns;              /* wall-clock time of the last change */
	uint32_t seq;                  /* insertion number among siblings (last one's + 1) */
	atomic_uint pins;              /* holders that keep it from being freed */
	uint16_t namelen;              /* bytes of name */
	uint8_t flags;                 /* DKV_ENTRY_*; changed under the write lock */
	uint8_t name[];                /* the element's canonical encoding */
};

struct dkv_engine;

struct dkv_engine_opts {
	const char *node;      /* this node's name */
	unsigned chain_length; /* server.change.length; default 5 */
};

struct dkv_engine *dkv_engine_new(const struct dkv_engine_opts *opts);
void dkv_engine_free(struct dkv_engine *e); /* accepts NULL */

struct dkv_node *dkv_engine_self(struct dkv_engine *e);
struct dkv_entry *dkv_engine_root(struct dkv_engine *e);
/* The entry holding internal data: the root's child named None. */
struct dkv_entry *dkv_engine_meta(struct dkv_engine *e);

/* The Lamport clock.  _tock() reads it; _next_tock() advances and returns
 * it; _see_tock() merges a tock seen in a message. */
uint64_t dkv_engine_tock(struct dkv_engine *e);
uint64_t dkv_engine_next_tock(struct dkv_engine *e);
void dkv_engine_see_tock(struct dkv_engine *e, uint64_t tock);

/* Nodes, by name (created on first use) and by table index. */
struct dkv_node *dkv_engine_node(struct dkv_engine *e, const char *name, size_t len);
struct dkv_node *dkv_engine_find_node(struct dkv_engine *e, const char *name, size_t len);
uint32_t dkv_engine_node_count(struct dkv_engine *e);
struct dkv_node *dkv_engine_node_at(struct dkv_engine *e, uint32_t idx);

/* Look up path below base (base NULL: the root).  Returns NULL when any
 * element is missing.  create: make missing entries as inner nodes. */
struct dkv_entry *dkv_entry_lookup(struct dkv_engine *e, struct dkv_entry *base,
				   const uint8_t *path, size_t len, bool create);
/* One step down: the child named by one canonical element. */
struct dkv_entry *dkv_entry_child(struct dkv_engine *e, struct dkv_entry *parent,
				  const uint8_t *elem, size_t len);
/* Append the path from base (exclusive) down to ent to out.enc; false if
 * ent is not below base.  base NULL: the root. */
bool dkv_entry_path(const struct dkv_entry *ent, const struct dkv_entry *base,
		    struct dkv_path *out);
unsigned dkv_entry_depth(const struct dkv_entry *ent);
/* Keep ent (and so its ancestors) from being freed; unpin may free it.
 * Pinning is thread-safe (readers pin under the read lock); unpinning
 * belongs to the loop thread. */
void dkv_entry_pin(struct dkv_entry *ent);
void dkv_entry_unpin(struct dkv_engine *e, struct dkv_entry *ent);
static inline bool dkv_entry_has_value(const struct dkv_entry *ent)
{
	return ent->value && ent->value->len;
}
static inline bool dkv_entry_is_tombstone(const struct dkv_entry *ent)
{
	return ent->value && !ent->value->len;
}
/* The next entry after ent in a depth-first walk of the subtree at top,
 * parents before children, children in insertion order; NULL at the end. */
struct dkv_entry *dkv_entry_walk_next(struct dkv_entry *ent, struct dkv_entry *top,
				      bool descend);

size_t dkv_engine_entry_count(struct dkv_engine *e);

/* Whether the filesystem shows the entry as a directory: it has a value,
 * was made by mkdir, or has such a descendant.  Call under the read lock
 * (or on the loop thread). */
bool dkv_entry_visible(const struct dkv_entry *ent);

/* mkdir: make the entry at path (below base) and keep it while empty.
 * -EEXIST when it is already visible. */
int dkv_engine_mkdir(struct dkv_engine *e, struct dkv_entry *base, const uint8_t *path,
		     size_t len, struct dkv_entry **out);
/* Set or clear the keep flag (what mkdir sets) of an existing entry;
 * clearing may free it. */
void dkv_engine_set_keep(struct dkv_engine *e, struct dkv_entry *ent, bool keep);
/* rmdir: forget the mkdir; -ENOTEMPTY when it has a value or visible
 * children.  An entry that is no longer visible is fine (0). */
int dkv_engine_rmdir(struct dkv_engine *e, struct dkv_entry *ent);

/* ---- sessions: who asks ---- */

/* Access modes, as DistKV's ACLs name them, one bit each. */
enum {
	DKV_ACL_ACL = 1 << 0,      /* a: read and change ACLs */
	DKV_ACL_READ = 1 << 1,     /* r: read the value */
	DKV_ACL_WRITE = 1 << 2,    /* w: change an existing value; in a table: W, which the
				    * engine turns into w or c (below) */
	DKV_ACL_CREATE = 1 << 3,   /* c: set a value where there is none */
	DKV_ACL_DELETE = 1 << 4,   /* d: delete the value */
	DKV_ACL_ACCESS = 1 << 5,   /* x: reach the entries below */
	DKV_ACL_ENUM = 1 << 6,     /* e: list the children */
	DKV_ACL_NEW = 1 << 7,      /* n: make new entries below */
	DKV_ACL_INTERNAL = 1 << 8, /* ours: the None subtree and node-wide actions */
};

/*
 * A session: who is asking, and the rule that decides what they may do.
 * The protocol server keeps one per connection, the mount one of its
 * own.  Local changes and reads carry one; remote and replayed changes
 * carry none (their own node checked them).  Without a rule everything
 * is allowed, and nothing is looked up for it: a node without auth pays
 * nothing per request.
 */
struct dkv_session {
	const char *user; /* NULL: nobody logged in */
	/* the rule (the user's ACL; NULL: allow all): 0, or -EACCES with
	 * the reason in s->why */
	int (*check)(struct dkv_session *s, const uint8_t *path, size_t len, bool internal,
		     unsigned mode);
	void *rule;       /* the rule's own data */
	char why[200];    /* the last refusal */
	/* the user's converter (aux codec=NAME, codec.h): values it sends
	 * are decoded, values it reads encoded; NULL: as stored */
	struct dkv_conv *conv;
};

/* Whether s may use mode (DKV_ACL_*) at path (internal: below None).
 * s NULL or without a rule: 0.  Else the rule's answer. */
int dkv_session_check(struct dkv_session *s, const uint8_t *path, size_t len, bool internal,
		      unsigned mode);

/* The entry at path (internal: below None), if s may use it with mode:
 * 0 with *out (NULL when there is no such entry; nothing is created),
 * -EACCES (s->why says why), or DKV_E_INTERNAL (a path through None
 * without internal). */
int dkv_engine_find(struct dkv_engine *e, struct dkv_session *s, const uint8_t *path,
		    size_t len, bool internal, unsigned mode, struct dkv_entry **out);

/* ---- changes ---- */

enum dkv_source {
	DKV_SRC_LOCAL,  /* a client of this node: new tick, chain extended */
	DKV_SRC_REMOTE, /* from another node: chain and tock as given */
	DKV_SRC_REPLAY, /* from a log file: like remote */
};

enum dkv_precond {
	DKV_PRE_NONE,  /* no condition */
	DKV_PRE_NEW,   /* the entry must have no value (chain: None) */
	DKV_PRE_CHAIN, /* the entry's newest change must be pre_node@pre_tick */
};

struct dkv_change {
	const uint8_t *path; /* canonical path encoding */
	size_t path_len;
	bool internal;       /* path is below the None root */
	const uint8_t *value; /* msgpack value, NULL to delete */
	size_t value_len;
	enum dkv_precond pre;
	const char *pre_node; /* DKV_PRE_CHAIN */
	size_t pre_node_len;
	uint64_t pre_tick;
	const uint8_t *prev;  /* local: the value the entry must hold (msgpack); NULL: any */
	size_t prev_len;
	bool idem;            /* local: setting the value it already has changes nothing */
	enum dkv_source src;
	struct dkv_session *sess; /* local: who asks (NULL: the node itself, unchecked) */
	const struct dkv_chain_link *chain; /* remote/replay: the entry's new chain */
	uint32_t nchain;
	uint64_t tock;                 /* remote/replay: the change's tock */
};

struct dkv_result {
	bool changed;             /* the value differs from before */
	struct dkv_value *prev;   /* the old state (a reference; NULL if none) */
	struct dkv_entry *entry;  /* the entry, pinned: unpin when done; NULL on error */
	bool conflict;            /* remote: made concurrently with our state (resolved) */
	bool idem;                /* idem: the entry held that value already (unchanged) */
	char why[256];            /* a checker's refusal (dkv_engine_add_checker); "" */
};

/* Apply one change; every mutation of the tree goes through here.
 * A local change is first checked against its session (before anything
 * is created, so a refused change leaves nothing behind): -EACCES, with
 * the reason in c->sess->why.  Then 0 on success, or errors with
 * res->entry still set (pinned) so the caller can describe the conflict:
 * -EEXIST (DKV_PRE_NEW but a value exists), -ENOENT (DKV_PRE_CHAIN but
 * there is no value), -ESTALE (the chain does not match), DKV_E_PREV
 * (c->prev is not the value).  Without res->entry: DKV_E_INTERNAL (a
 * change to a path through the None root without c->internal), -EFBIG
 * (a value larger than DKV_VALUE_MAX), -EINVAL (an element too long).
 * A remote/replayed change that is older than the entry's state is not an
 * error: it returns 0 with changed false. */
int dkv_engine_apply(struct dkv_engine *e, const struct dkv_change *c, struct dkv_result *res);
void dkv_result_release(struct dkv_engine *e, struct dkv_result *res);
/* Forget the tombstones whose deletion is known everywhere: ripe(arg,
 * ent) decides (the cluster).  Not a change: no fan-out, not logged; an
 * entry may go with its tombstone.  The engine keeps a list of its
 * tombstones, so this costs a look at each of them, not a walk of the
 * tree.  Returns how many were dropped.  On the loop thread. */
size_t dkv_engine_purge(struct dkv_engine *e,
			bool (*ripe)(void *arg, const struct dkv_entry *ent), void *arg);
/* Tombstones the engine holds (and has not yet purged). */
size_t dkv_engine_tombstone_count(const struct dkv_engine *e);

/* ---- fan-out ---- */

struct dkv_event {
	struct dkv_entry *entry;      /* the changed entry, pinned for the call */
	struct dkv_value *value;      /* the new state: chain, data (len 0: deleted) */
	struct dkv_value *prev;       /* the old state, NULL if none */
	uint64_t tock;
	enum dkv_source src;
	bool internal;
	unsigned created; /* entries this change created (the last elements of its path) */
	const struct dkv_session *sess; /* local: who made it (NULL: the node itself) */
};

/* A watcher sees every change at or below its entry. */
struct dkv_watch {
	struct dkv_entry *entry; /* set by dkv_watch_start; pinned while active */
	void (*cb)(struct dkv_watch *w, const struct dkv_event *ev);
	struct dkv_watch *next;  /* owned by the engine */
	void (*freed)(struct dkv_watch *w); /* set by dkv_watch_stop */
};

/* Start watching the entry at path (created as an inner node if needed).
 * base NULL: the root. */
void dkv_watch_start(struct dkv_engine *e, struct dkv_watch *w, struct dkv_entry *base,
		     const uint8_t *path, size_t len);
/* Stop: cb is not called afterwards.  The engine may still hold w (a
 * fan-out in progress walks the list), so w's memory belongs to the
 * engine until it calls freed(w) -- at once, or when the fan-out ends.
 * freed may be NULL when w outlives the engine's use anyway. */
void dkv_watch_stop(struct dkv_engine *e, struct dkv_watch *w, void (*freed)(struct dkv_watch *w));

/* Hooks see every change after the watchers, in the order they were
 * added: the change log, the filesystem, replication. */
typedef void (*dkv_hook_fn)(void *ctx, const struct dkv_event *ev);
void dkv_engine_add_hook(struct dkv_engine *e, dkv_hook_fn fn, void *ctx);
void dkv_engine_remove_hook(struct dkv_engine *e, dkv_hook_fn fn, void *ctx);

/* A number that changes whenever anything below (None, "acl") changes
 * (after the change is in the tree): what caches a compiled ACL checks.
 * Any thread. */
uint64_t dkv_engine_acl_gen(struct dkv_engine *e);
/* The same for (None, "conv") and (None, "codec"): what a session's
 * compiled converter (codec.h) checks.  Any thread. */
uint64_t dkv_engine_conv_gen(struct dkv_engine *e);
/* The same for (None, "type") and (None, "match"): what the compiled
 * types (types.h) check.  Any thread. */
uint64_t dkv_engine_types_gen(struct dkv_engine *e);

/*
 * Checkers see every local change after the session's access check and
 * before anything is applied or created: types, and the validation of
 * internal records (codecs, code).  0 lets the change through; an error
 * (-EINVAL for a refused value) refuses it, with the reason for the
 * client in why ("ValueError('not a percentage')"), which
 * dkv_engine_apply leaves in res->why.  Remote and replayed changes are
 * not checked: the node that made them did.  On the loop thread.
 */
typedef int (*dkv_check_fn)(void *ctx, struct dkv_engine *e, const struct dkv_change *c,
			    char *why, size_t whylen);
void dkv_engine_add_checker(struct dkv_engine *e, dkv_check_fn fn, void *ctx);

/* The tree's lock, for readers on other threads. */
void dkv_engine_rdlock(struct dkv_engine *e);
void dkv_engine_unlock(struct dkv_engine *e);

#endif
