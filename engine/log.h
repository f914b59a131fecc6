/*
 * log.h - persistence: state files, change logs and loading them.
 *
 * One file format serves both (doc/formats.md): a msgpack stream of a
 * header and records.  A dump is a header, the node state and every
 * entry; a change log is the same followed by one record per change, or
 * (incremental) only the header and the changes.  Because records merge
 * by the chain rules, files can be loaded in any order, twice, or
 * concatenated (`cat a b c`), and the result is the same.
 *
 * The writer ("the logger") belongs to the server's event loop.  It is an
 * engine hook, so it sees every change whatever its source.  Records are
 * buffered on the loop; in every mode, replies are held back until the
 * changes they may reflect are safe from a crash of this process (see
 * dkv_logger_need): `batch` and `none` write each loop iteration's
 * records with one write(2) on the loop, `always` has a libuv worker
 * write and fsync them -- one fsync then covers every change made while
 * the previous one ran (group commit).  `batch` fsyncs on a worker every
 * interval.  The loop never waits for the disk.
 *
 * Errors are negative errnos.  Every asynchronous call takes a callback;
 * when the call returns an error, the callback is never called.
 */
#ifndef DKV_LOG_H
#define DKV_LOG_H

#include "engine.h"

#include <uv.h>

#define DKV_LOG_FORMAT 1 /* the format version this code writes and the newest it reads */

/* ---- loading ---- */

struct dkv_log_stats;

struct dkv_log_load_opts {
	bool skip_damaged; /* skip garbage (with a warning) instead of failing */
	/* records from another node (replication): applied as DKV_SRC_REMOTE,
	 * and no header is needed before them */
	bool remote;
	/* called for each warning (one line, no newline); NULL: stderr */
	void (*warn)(void *arg, const char *msg);
	/* called after each chunk read from a file and every 4096 records,
	 * with the totals so far (bytes: the bytes read) */
	void (*progress)(void *arg, const struct dkv_log_stats *st);
	void *arg;
};

struct dkv_log_stats {
	uint64_t records; /* records read (headers not counted) */
	uint64_t applied; /* records that changed the tree */
	uint64_t conflicts; /* records made concurrently with our state (resolved) */
	uint64_t bytes;   /* bytes read */
	unsigned warnings;
};

/* Load one stream into e: read fd to its end, never seeking, applying
 * each record through dkv_engine_apply (DKV_SRC_REPLAY).  name is used in
 * messages.  A truncated last record is a warning, and so is an empty
 * stream (not remote: nothing loaded, no header).  Errors: -EBADMSG
 * (damaged input; err names the file and the byte offset), -EPROTO (a
 * newer format), or a read error.  The engine may hold part of the
 * stream after an error: a caller that must not serve half-loaded data
 * throws the engine away.  st may be NULL. */
int dkv_log_load_fd(struct dkv_engine *e, int fd, const char *name,
		    const struct dkv_log_load_opts *o, struct dkv_log_stats *st, char *err,
		    size_t errlen);
/* The same for a file by name ("-": standard input). */
int dkv_log_load_file(struct dkv_engine *e, const char *path, const struct dkv_log_load_opts *o,
		      struct dkv_log_stats *st, char *err, size_t errlen);
/* The same for bytes in memory (tests, the fuzzer). */
int dkv_log_load_mem(struct dkv_engine *e, const uint8_t *p, size_t len, const char *name,
		     const struct dkv_log_load_opts *o, struct dkv_log_stats *st, char *err,
		     size_t errlen);

/* ---- encoding (shared by the writer, tests and tools) ---- */

enum dkv_log_kind { DKV_LOG_KIND_DUMP, DKV_LOG_KIND_LOG };

/* Append a header record. */
void dkv_log_encode_header(struct dkv_buf *out, const char *node, enum dkv_log_kind kind);
/* Append the node-state record: the tock and every node's tick and ranges. */
void dkv_log_encode_state(struct dkv_buf *out, struct dkv_engine *e);
/* Append one entry's current state (an entry or a tombstone record);
 * nothing when the entry was never changed. */
void dkv_log_encode_entry(struct dkv_buf *out, const struct dkv_entry *ent, struct dkv_path *tmp);
/* Append the whole state: node state, then every entry (full: with the
 * internal subtree below None).  Runs on the loop; it does not yield. */
void dkv_log_encode_dump(struct dkv_buf *out, struct dkv_engine *e, bool full);

/* ---- writing ---- */

enum dkv_log_sync {
	DKV_LOG_SYNC_NONE,   /* write, never fsync (the kernel decides) */
	DKV_LOG_SYNC_BATCH,  /* fsync at most every interval */
	DKV_LOG_SYNC_ALWAYS, /* a change is on disk before its reply is sent */
};

/* "always", "batch", "none"; -EINVAL otherwise. */
int dkv_log_sync_parse(const char *s, size_t len, enum dkv_log_sync *out);
const char *dkv_log_sync_name(enum dkv_log_sync s);

struct dkv_logger;

struct dkv_logger_opts {
	enum dkv_log_sync sync; /* the mode of a `log dest` that names none */
	unsigned interval_ms; /* batch: the longest a written change waits for fsync; default 100 */
	int verbose;          /* < 0: no messages on stderr */
};

/* A logger for engine e on loop: it keeps at most one log open (two
 * while switching) and registers its engine hook at once. */
struct dkv_logger *dkv_logger_new(uv_loop_t *loop, struct dkv_engine *e,
				  const struct dkv_logger_opts *o);
/* The mode a log gets when its caller names none. */
enum dkv_log_sync dkv_logger_default_sync(const struct dkv_logger *lg);

/* Completion of an asynchronous logger call: status 0 or a negative
 * errno, msg a sentence for the user (names the file). */
typedef void (*dkv_logger_cb)(void *arg, int status, const char *msg);

/* Start logging to path (opened for appending, created if missing).
 * Unless incremental, the file first gets the complete current state.
 * cb runs when the new file holds everything up to now and is on disk;
 * only then is the previous log flushed and closed, so no change is ever
 * missing from both.  On failure the previous log goes on.
 * -EBUSY: another switch is running; -ESHUTDOWN: the logger is closing. */
int dkv_logger_start(struct dkv_logger *lg, const char *path, enum dkv_log_sync sync,
		     bool incremental, dkv_logger_cb cb, void *arg);
/* Flush and close the current log; cb runs when it is closed.
 * -EALREADY: no log is open; -EBUSY: a switch is running. */
int dkv_logger_stop(struct dkv_logger *lg, dkv_logger_cb cb, void *arg);
/* How far a save got: entries (entry and deletion records) and bytes of
 * the dump in the file so far. */
typedef void (*dkv_logger_progress_cb)(void *arg, uint64_t entries, uint64_t bytes);
/* A one-shot dump to path, written to a temporary file in the same
 * directory, synced, then renamed into place.  progress (NULL: none) runs
 * on the loop every quarter second while the file is written and once
 * with the whole dump's figures when all of it is written, before cb
 * (not when the save fails). */
int dkv_logger_save(struct dkv_logger *lg, const char *path, bool full, dkv_logger_cb cb,
		    dkv_logger_progress_cb progress, void *arg);
/* Forget cb for every pending call that was given arg (its requester
 * went away); the operations themselves go on. */
void dkv_logger_forget(struct dkv_logger *lg, void *arg);

/* The log's health for `internal state`: a map {path, sync, state,
 * records, bytes, syncs, errors, last_error}. */
void dkv_logger_encode_info(const struct dkv_logger *lg, struct dkv_buf *out);

/*
 * Holding replies (group commit).  Every record gets the next sequence
 * number.  need() is the number a reply produced now must wait for: the
 * last record appended when some log does not hold it safely yet, else 0.
 * is_durable(n) says whether every log has record n safe from a crash of
 * this process -- written to the file (batch, none) or on disk (always)
 * -- or has failed: a broken log promises nothing, and the held replies go.
 * Listeners added with add_notify run on the loop whenever is_durable may
 * have become true for more numbers (at most 4: the protocol server holds
 * its replies, the filesystem its writers' close()).
 */
uint64_t dkv_logger_need(const struct dkv_logger *lg);
/*
 * What a node may tell its peers it has seen of the node with index
 * node_idx, whose gap-free run of seen ticks ends at seen_prefix.  The
 * peers drop a tombstone once every node reported the deletion as seen
 * (doc/cluster.md), so a report must never run ahead of what a restart
 * from the node's log would know.  Normally that holds by itself (reports
 * are replies, held like any other) and this returns seen_prefix.  After
 * the current log failed, and until a complete log (not -i) replaces it or
 * logging is stopped, it returns at most what the failed log held at its
 * last safe write.  lg NULL: seen_prefix.
 */
uint64_t dkv_logger_reportable(const struct dkv_logger *lg, uint32_t node_idx,
			       uint64_t seen_prefix);
bool dkv_logger_is_durable(const struct dkv_logger *lg, uint64_t seq);
void dkv_logger_add_notify(struct dkv_logger *lg, void (*cb)(void *arg), void *arg);
void dkv_logger_remove_notify(struct dkv_logger *lg, void (*cb)(void *arg), void *arg);

/* Flush and close every log (SIGTERM), detach from the engine and free
 * the logger once all of its work and handles are done; cb (may be
 * NULL) runs then.  Pending calls get no callback.  lg NULL: cb runs at
 * once. */
void dkv_logger_close(struct dkv_logger *lg, void (*cb)(void *arg), void *arg);

/* ---- internal: shared by log.c and logload.c ---- */

enum {
	DKV__LOG_REC_ENTRY = 1,  /* [1, path, tock, chain, value, crc] */
	DKV__LOG_REC_DELETE = 2, /* [2, path, tock, chain, crc] */
	DKV__LOG_REC_STATE = 3,  /* [3, tock, {node: [tick, seen, deleted]}, crc] */
};

/* CRC-32 (IEEE 802.3, as zlib's crc32), continued from crc. */
uint32_t dkv__log_crc32(uint32_t crc, const uint8_t *p, size_t n);

#endif
