/*
 * errlog.h - the error log: what went wrong, kept in the tree for every
 * node and client to see (doc/errors.md has the record format).
 *
 * An error record lives at (".distkv", "error", NODE, TOCK): NODE is the
 * node that first recorded it, TOCK a number unique for that node.  It
 * says which thing failed (path, subsystem), how badly (severity), how
 * often (count, first_seen, last_seen) and whether it is fixed
 * (resolved).  (path, subsystem) is unique: a new occurrence updates the
 * record instead of making another.  Below it, each node that saw the
 * error keeps one detail record, (..., TOCK, DNODE): its latest
 * occurrence's message.  Runners write records from Python; this module
 * is the server's own writer, for the failures it notices itself:
 *
 *   subsystem  path                 when                       resolved when
 *   type       the data path        a type's check fails       a value there passes
 *   codec      the data path        a codec's script fails     it converts there again
 *   log        (NODE,)              a running change log fails a new log is running
 *   peer       (NODE, PEER)         PEER refuses our login     a login there succeeds
 *
 * Noting is cheap, thread-safe, and never writes at once: occurrences
 * are collected, and the loop writes them through dkv_engine_apply (so
 * they are logged, replicated and mounted like any change).  The first
 * occurrence of an error is written at the next turn of the loop;
 * repeats are counted and written at most once per interval, so a script
 * that fails on every request costs one write per interval, not one per
 * request.  At most max_new new records are made per interval and at
 * most max_pending errors wait; beyond that occurrences are dropped (and
 * the node says so on standard error).
 *
 * The errlog keeps an index of every record in the tree (whoever wrote
 * it), kept current by a watch: the record an occurrence updates, and
 * the open ones a success resolves.  Two records of one (path,
 * subsystem) -- two nodes that met a new error at once -- are merged
 * into the one that counts, by every node alike (doc/errors.md,
 * "Duplicates merge").  dkv_errlog_fixed where no error of
 * the subsystem is open costs one atomic load: nothing on the hot path
 * while nothing fails.
 */
#ifndef DKV_ERRLOG_H
#define DKV_ERRLOG_H

#include "engine.h"

#include <uv.h>

/* The original's levels; a record keeps the most severe (lowest) it saw. */
enum dkv_severity {
	DKV_SEV_FATAL,
	DKV_SEV_ERROR,
	DKV_SEV_WARNING,
	DKV_SEV_INFO,
	DKV_SEV_NOTE,
	DKV_SEV_DEBUG,
	DKV_SEV_TRACE,
};

/* The subsystems the server records errors of. */
enum dkv_errsys {
	DKV_ERRSYS_TYPE,  /* "type" */
	DKV_ERRSYS_CODEC, /* "codec" */
	DKV_ERRSYS_LOG,   /* "log" */
	DKV_ERRSYS_PEER,  /* "peer" */
	DKV_ERRSYS__COUNT
};

/* "type", "codec", ... */
const char *dkv_errsys_name(enum dkv_errsys sys);

struct dkv_errlog_opts {
	unsigned interval_ms; /* repeats of one error are written at most this often (1000) */
	unsigned max_new;     /* new records per interval, at most (100) */
	unsigned max_pending; /* errors waiting to be written, at most (10000) */
};

/* One occurrence. */
struct dkv_errlog_occ {
	enum dkv_errsys sys;
	const uint8_t *path; /* the element encodings of what failed */
	size_t plen;
	enum dkv_severity severity;
	const char *message; /* short text: "ValueError('not a percentage')" */
	const char *comment; /* more, or NULL */
	const uint8_t *data; /* msgpack: whatever helps to reproduce it; NULL: none */
	size_t dlen;
};

struct dkv_errlog;

/* The error log of engine e on loop (e's own from now on: see
 * dkv_engine_errlog).  It indexes the records e holds now and watches
 * for more, so make it after loading state files.  NULL o: defaults.
 * On the loop thread. */
struct dkv_errlog *dkv_errlog_new(uv_loop_t *loop, struct dkv_engine *e,
				  const struct dkv_errlog_opts *o);
/* Write what is pending, stop watching, close the handles (the loop
 * can end then).  Notes made afterwards are dropped.  On the loop
 * thread; el NULL: nothing. */
void dkv_errlog_close(struct dkv_errlog *el);
/* Free a closed errlog after the loop ended and every other thread
 * that may note (the mount's) is gone, before the engine is freed.
 * Accepts NULL. */
void dkv_errlog_free(struct dkv_errlog *el);

/* The errlog of e; NULL: none (a tool, a unit test).  Any thread. */
struct dkv_errlog *dkv_engine_errlog(struct dkv_engine *e);

/* An occurrence of an error (el NULL: nothing).  Paths below (".distkv",
 * "error") are ignored: the log's own records are not errors of their
 * own.  Any thread. */
void dkv_errlog_note(struct dkv_errlog *el, const struct dkv_errlog_occ *o);
/* What failed at (sys, path) works now: resolve its open record, if
 * there is one.  el NULL: nothing.  Any thread. */
void dkv_errlog_fixed(struct dkv_errlog *el, enum dkv_errsys sys, const uint8_t *path,
		      size_t plen);

/* For `internal state` and tests: records indexed, open ones among them,
 * errors waiting to be written, occurrences dropped. */
struct dkv_errlog_stats {
	size_t records, open, pending;
	uint64_t dropped, written;
};
void dkv_errlog_stats(struct dkv_errlog *el, struct dkv_errlog_stats *st);

#endif
