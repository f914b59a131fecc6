/*
 * log.c - writing state files and change logs (the format: doc/formats.md).
 *
 * Workload: a steady stream of small changes (tens of bytes each), up to
 * a few hundred thousand per second, against a disk whose fsync takes
 * hundreds of microseconds to milliseconds.  So the hook only encodes a
 * record into a buffer on the loop, and the replies to the changes are
 * held back (net/conn.c and fs/jobs.c ask dkv_logger_is_durable) until the log
 * has taken them:
 *  - `always`: a libuv worker writes whole buffers and runs fsync; while
 *    it runs, new records collect for the next write.  That is group
 *    commit: one fsync covers every change made while the previous fsync
 *    ran.
 *  - `batch` and `none`: after each loop iteration (on_check) the loop
 *    itself writes that iteration's records with one write(2), before the
 *    held replies go.  A write to the page cache does not wait for the
 *    disk, and once the kernel has the records a crash of this process
 *    cannot lose them; only a crash of the machine can.  `batch` then has
 *    a worker fsync the file every interval; `none` never does.  A pipe
 *    or a device could block the loop, so for those a worker writes too.
 *
 * A log's life: OPENING (the worker opens the file and writes the header
 * and the state), OPEN (records flow), CLOSING (the last write, fsync and
 * close), then freed.  A write error ends a log at once: the file is cut
 * back to its last complete record, the error is kept for `internal
 * state`, and the server goes on without that log.
 */
#include "log.h"
#include "errlog.h"
#include "report.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* A save writes its dump in slices of this many bytes and reports its
 * progress (to a requester that wants it) this often. */
#define SAVE_SLICE (1u << 20)
#define SAVE_PROGRESS_MS 250

/* ---- the format ---- */

void dkv_log_encode_header(struct dkv_buf *out, const char *node, enum dkv_log_kind kind)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	/* the first key is the signature the reader looks for */
	dkv_mp_map(out, 4);
	dkv_mp_cstr(out, "distkv-log");
	dkv_mp_uint(out, DKV_LOG_FORMAT);
	dkv_mp_cstr(out, "node");
	dkv_mp_cstr(out, node);
	dkv_mp_cstr(out, "created");
	dkv_mp_double(out, (double)ts.tv_sec + ts.tv_nsec / 1e9);
	dkv_mp_cstr(out, "kind");
	dkv_mp_cstr(out, kind == DKV_LOG_KIND_DUMP ? "dump" : "log");
}

/* Close a record: its last item is the CRC-32 of everything before it. */
static void end_record(struct dkv_buf *out, size_t start)
{
	uint32_t crc = dkv__log_crc32(0, out->data + start, out->len - start);
	dkv_mp_uint(out, crc);
}

static void encode_change(struct dkv_buf *out, const struct dkv_path *path,
			  const struct dkv_value *v, uint64_t tock)
{
	size_t start = out->len;
	bool del = !v->len;
	dkv_mp_array(out, del ? 5 : 6);
	dkv_mp_uint(out, del ? DKV__LOG_REC_DELETE : DKV__LOG_REC_ENTRY);
	dkv_path_encode(out, path->enc.data, path->enc.len);
	dkv_mp_uint(out, tock);
	dkv_mp_array(out, v->nchain);
	for (uint32_t i = 0; i < v->nchain; i++) {
		dkv_mp_array(out, 2);
		dkv_mp_cstr(out, v->chain[i].node->name);
		dkv_mp_uint(out, v->chain[i].tick);
	}
	if (!del)
		dkv_buf_append(out, dkv_value_data(v), v->len);
	end_record(out, start);
}

void dkv_log_encode_entry(struct dkv_buf *out, const struct dkv_entry *ent, struct dkv_path *tmp)
{
	if (!ent->value || !ent->value->nchain)
		return;
	tmp->enc.len = 0;
	tmp->n = 0;
	dkv_entry_path(ent, NULL, tmp);
	encode_change(out, tmp, ent->value, ent->tock);
}

void dkv_log_encode_state(struct dkv_buf *out, struct dkv_engine *e)
{
	size_t start = out->len;
	uint32_t nn = dkv_engine_node_count(e);
	dkv_mp_array(out, 4);
	dkv_mp_uint(out, DKV__LOG_REC_STATE);
	dkv_mp_uint(out, dkv_engine_tock(e));
	dkv_mp_map(out, nn);
	for (uint32_t i = 0; i < nn; i++) {
		struct dkv_node *n = dkv_engine_node_at(e, i);
		dkv_mp_cstr(out, n->name);
		dkv_mp_array(out, 3);
		dkv_mp_uint(out, n->tick);
		dkv_rangeset_encode(&n->seen, out);
		dkv_rangeset_encode(&n->deleted, out);
	}
	end_record(out, start);
}

/* A save's progress counts entries by these marks: the offset in the dump
 * after every MARK_EVERY-th entry or deletion record (8 bytes per 1024
 * records, so a dump of 10 million entries keeps 80 KB of them). */
#define MARK_EVERY 1024

/* The dump; marks (NULL: none wanted) gets a uint64_t offset after every
 * MARK_EVERY-th record.  Returns the number of entry and deletion records. */
static uint64_t encode_dump(struct dkv_buf *out, struct dkv_engine *e, bool full,
			    struct dkv_buf *marks)
{
	struct dkv_path tmp;
	struct dkv_entry *root = dkv_engine_root(e);
	uint64_t n = 0;

	dkv_path_init(&tmp);
	dkv_log_encode_state(out, e);
	struct dkv_entry *x = root;
	while (x) {
		if (!full && x->parent == root && x->namelen == 1 && x->name[0] == 0xc0) {
			x = dkv_entry_walk_next(x, root, false);
			continue;
		}
		size_t before = out->len;
		dkv_log_encode_entry(out, x, &tmp);
		if (out->len != before && !(++n % MARK_EVERY) && marks) {
			uint64_t off = out->len;
			dkv_buf_append(marks, &off, sizeof off);
		}
		x = dkv_entry_walk_next(x, root, true);
	}
	dkv_path_release(&tmp);
	return n;
}

void dkv_log_encode_dump(struct dkv_buf *out, struct dkv_engine *e, bool full)
{
	encode_dump(out, e, full, NULL);
}

int dkv_log_sync_parse(const char *s, size_t len, enum dkv_log_sync *out)
{
	static const char *const names[] = {"none", "batch", "always"};
	for (int i = 0; i < 3; i++) {
		if (strlen(names[i]) == len && !memcmp(names[i], s, len)) {
			*out = (enum dkv_log_sync)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *dkv_log_sync_name(enum dkv_log_sync s)
{
	return s == DKV_LOG_SYNC_ALWAYS ? "always" : s == DKV_LOG_SYNC_BATCH ? "batch" : "none";
}

/* ---- one log file ---- */

enum log_state { LOG_OPENING, LOG_OPEN, LOG_CLOSING };

struct logfile {
	struct dkv_logger *lg;
	struct logfile *next;      /* in lg->logs */
	char *path;
	enum dkv_log_sync sync;
	enum log_state state;
	struct dkv_buf pending;    /* records for the next write; owned by the loop */
	uint64_t pending_seq;      /* number of the last record in pending (or written) */
	uint64_t attach_seq;       /* records up to this one are not in this log's care */
	uint64_t last_seq;         /* CLOSING: the last record it must hold; else UINT64_MAX */
	/* records up to this one are safe from a crash of this process: in
	 * the kernel's hands (batch, none) or on disk (always) */
	uint64_t safe_seq;
	bool loop_writes;          /* batch or none to a regular file: the loop writes (on_check) */
	bool unsynced;             /* batch: written since the last fsync */
	int loop_err;              /* a loop write failed while the worker was busy */
	const char *loop_what;
	uint64_t records;          /* records appended */
	uint64_t bytes;            /* bytes written to the file */
	uint64_t syncs;            /* fsyncs done */
	dkv_logger_cb cb;          /* the caller waiting for the open or the close */
	void *cb_arg;

	/* the write in progress; the worker owns these while busy */
	bool busy;
	uv_work_t work;
	struct dkv_buf inflight;
	uint64_t inflight_seq;
	bool job_open, job_sync, job_close;
	int fd;                    /* -1 when not open; opened and closed by the worker */
	bool job_is_reg;           /* the open found a regular file */
	/* file size after the last complete write: the worker's while it
	 * writes, the loop's while the loop writes (never both) */
	off_t good_size;
	int job_err;               /* negative errno */
	const char *job_what;      /* "open", "write", "sync" */

	bool complete;             /* began with the whole state (not -i) */
	/* each node's gap-free run of seen ticks (by node index) when the
	 * last write was handed over: what the file holds once it is safe */
	uint64_t *snap;
	uint32_t nsnap;
};

struct save {
	struct dkv_logger *lg;
	struct save *next; /* in lg->saves */
	char *path;
	struct dkv_buf data;
	uv_work_t work;
	int err;
	const char *what;
	dkv_logger_cb cb;
	dkv_logger_progress_cb progress; /* NULL: not wanted */
	void *cb_arg;
	/* progress, by the loop: the dump's entry and deletion records, the
	 * offsets after every MARK_EVERY-th (uint64_t), the marks passed */
	uint64_t entries;
	struct dkv_buf marks;
	size_t marks_passed;
	_Atomic uint64_t written; /* bytes in the file so far: the worker's */
};

struct dkv_logger {
	uv_loop_t *loop;
	struct dkv_engine *e;
	struct dkv_logger_opts opts;
	struct logfile *logs;   /* every log not yet freed */
	struct logfile *cur;    /* the log changes go to; NULL: none */
	struct logfile *next;   /* opening, to replace cur */
	struct save *saves;     /* one-shot dumps in progress */
	uint64_t seq;           /* records appended so far */
	struct dkv_buf rec;     /* scratch: the record being appended */
	struct dkv_path tmp;    /* scratch: its path */
	uv_check_t check;       /* after each loop iteration: write (and in always mode fsync) */
	uv_timer_t timer;       /* batch: the periodic fsync */
	bool timer_on;
	uv_timer_t save_timer;  /* saves' progress reports, while one wants them */
	bool save_timer_on;
	unsigned handles;       /* handles not yet closed */
	/* health, for `internal state` */
	unsigned errors;
	char last_error[300];
	char *failed_path;      /* the log that failed last, while no other runs */
	/* What the current log holds of each node's ticks: the gap-free run
	 * of seen ticks (by node index) at its last safe write.  behind: a
	 * log failed and no complete log has replaced it, so reports to the
	 * peers must not go past held (dkv_logger_reportable). */
	uint64_t *held;
	uint32_t nheld;
	bool behind;
	struct {
		void (*cb)(void *arg);
		void *arg;
	} notify[4]; /* the protocol server, the filesystem */
	bool closing;
	void (*close_cb)(void *arg);
	void *close_arg;
};

static void job_work(uv_work_t *w);
static void job_done(uv_work_t *w, int status);
static void maybe_finish_close(struct dkv_logger *lg);
static void on_check(uv_check_t *h);
static void on_timer(uv_timer_t *h);

static void say(struct dkv_logger *lg, const char *msg)
{
	if (lg->opts.verbose >= 0)
		dkv_report(DKV_REPORT_ERROR, "%s", msg);
}

static void notify(struct dkv_logger *lg)
{
	for (unsigned i = 0; i < 4; i++)
		if (lg->notify[i].cb)
			lg->notify[i].cb(lg->notify[i].arg);
}

static struct logfile *log_new(struct dkv_logger *lg, const char *path, enum dkv_log_sync sync)
{
	struct logfile *l = dkv_xcalloc(1, sizeof *l);
	l->lg = lg;
	l->path = dkv_xstrdup(path);
	l->sync = sync;
	l->state = LOG_OPENING;
	l->fd = -1;
	l->last_seq = UINT64_MAX;
	l->attach_seq = lg->seq;
	l->pending_seq = lg->seq;
	l->safe_seq = lg->seq;
	l->next = lg->logs;
	lg->logs = l;
	return l;
}

static void log_free(struct logfile *l)
{
	struct dkv_logger *lg = l->lg;
	struct logfile **pp = &lg->logs;
	while (*pp != l)
		pp = &(*pp)->next;
	*pp = l->next;
	if (lg->cur == l)
		lg->cur = NULL;
	if (lg->next == l)
		lg->next = NULL;
	if (l->fd >= 0)
		close(l->fd);
	dkv_buf_release(&l->pending);
	dkv_buf_release(&l->inflight);
	free(l->snap);
	free(l->path);
	free(l);
	/* a log that held replies no longer does */
	notify(lg);
	maybe_finish_close(lg);
}

/* Note each node's seen prefix as l's next write will hold it: every
 * change applied so far has its record in that write or an earlier one. */
static void snapshot(struct logfile *l)
{
	struct dkv_engine *e = l->lg->e;
	uint32_t n = dkv_engine_node_count(e);
	if (n > l->nsnap)
		l->snap = dkv_xrealloc(l->snap, n * sizeof *l->snap);
	l->nsnap = n;
	for (uint32_t i = 0; i < n; i++)
		l->snap[i] = dkv_rangeset_prefix(&dkv_engine_node_at(e, i)->seen);
}

/* l's last write is safe: if l is the current log, that is what it holds. */
static void held_update(struct logfile *l)
{
	struct dkv_logger *lg = l->lg;
	if (lg->cur != l || !l->nsnap)
		return;
	if (l->nsnap > lg->nheld)
		lg->held = dkv_xrealloc(lg->held, l->nsnap * sizeof *lg->held);
	memcpy(lg->held, l->snap, l->nsnap * sizeof *lg->held);
	lg->nheld = l->nsnap;
}

/* Hand pending to the worker. */
static void start_job(struct logfile *l, bool sync, bool close_after)
{
	struct dkv_buf t = l->inflight;
	l->inflight = l->pending;
	l->pending = t;
	l->pending.len = 0;
	l->inflight_seq = l->pending_seq;
	if (l->inflight.len)
		snapshot(l);
	l->job_open = l->fd < 0 && !close_after;
	l->job_sync = sync;
	l->job_close = close_after;
	l->job_err = 0;
	l->job_what = NULL;
	l->work.data = l;
	l->busy = true;
	if (sync)
		l->unsynced = false;
	else if (l->inflight.len)
		l->unsynced = true;
	/* uv_queue_work fails only for a NULL work_cb */
	uv_queue_work(l->lg->loop, &l->work, job_work, job_done);
}

static int fsync_dir_of(const char *path)
{
	char *d = dkv_xstrdup(path);
	char *slash = strrchr(d, '/');
	int rc = 0;
	if (!slash)
		strcpy(d, ".");
	else if (slash == d)
		d[1] = 0;
	else
		*slash = 0;
	int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd))
		rc = -errno;
	if (fd >= 0)
		close(fd);
	free(d);
	return rc;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t k = write(fd, p, n);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (k == 0)
			return -EIO;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* Cut off a partial record, so that later loads see a clean end. */
static void cut_back(int fd, off_t good_size)
{
	if (ftruncate(fd, good_size))
		(void)0; /* a pipe or a full disk: the loader treats it as truncated */
}

static void log_failed(struct logfile *l);
static void log_health(struct dkv_logger *lg, bool ok);

/* On a worker thread: touches only the job's fields. */
static void job_work(uv_work_t *w)
{
	struct logfile *l = w->data;
	int rc;

	/* on failure the loop closes fd (log_free), which it may be using */
	if (l->job_open) {
		struct stat st;
		l->fd = open(l->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (l->fd < 0) {
			l->job_err = -errno;
			l->job_what = "open";
			return;
		}
		if (fstat(l->fd, &st)) {
			l->job_err = -errno;
			l->job_what = "open";
			return;
		}
		if (!S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode) && !S_ISCHR(st.st_mode)) {
			l->job_err = -EINVAL;
			l->job_what = "open";
			return;
		}
		l->good_size = st.st_size;
		l->job_is_reg = S_ISREG(st.st_mode);
		/* the file's name must survive a crash as well as its data */
		if (S_ISREG(st.st_mode) && (rc = fsync_dir_of(l->path))) {
			l->job_err = rc;
			l->job_what = "sync the directory of";
			return;
		}
	}
	if (l->inflight.len) {
		if ((rc = write_all(l->fd, l->inflight.data, l->inflight.len))) {
			l->job_err = rc;
			l->job_what = "write";
			cut_back(l->fd, l->good_size);
			return;
		}
		l->good_size += (off_t)l->inflight.len;
	}
	if (l->job_sync && fdatasync(l->fd) && errno != EINVAL && errno != EROFS) {
		l->job_err = -errno;
		l->job_what = "sync";
		return;
	}
	if (l->job_close) {
		close(l->fd);
		l->fd = -1;
	}
}

/* On the loop: hand a batch or none log's pending records to the kernel.
 * A failure ends the log: at once (then l is freed and this returns
 * -ECANCELED), or when the worker's fsync is done. */
static int loop_write(struct logfile *l)
{
	if (!l->pending.len || l->loop_err)
		return 0;
	snapshot(l);
	int rc = write_all(l->fd, l->pending.data, l->pending.len);
	if (rc) {
		cut_back(l->fd, l->good_size);
		l->loop_err = rc;
		l->loop_what = "write";
		if (l->busy)
			return 0;
		log_failed(l);
		return -ECANCELED;
	}
	l->good_size += (off_t)l->pending.len;
	l->bytes += l->pending.len;
	l->pending.len = 0;
	l->safe_seq = l->pending_seq;
	l->unsynced = true;
	held_update(l);
	return 0;
}

/* NEEDSWORK: a log that fails (a full disk) stops and the server goes on,
 * so changes made after it are acknowledged without a log.  Refusing them
 * before they are applied needs log space reserved ahead (fallocate) and
 * a check in the engine.  Until a complete log replaces it, the node's
 * reports to its peers stop at what the failed log holds (lg->behind):
 * restarted from that log, it still finds every deletion its peers may
 * have dropped the tombstone of (doc/reliability.md). */
static void log_failed(struct logfile *l)
{
	struct dkv_logger *lg = l->lg;
	if (!l->job_err) {
		l->job_err = l->loop_err;
		l->job_what = l->loop_what;
	}
	snprintf(lg->last_error, sizeof lg->last_error, "cannot %s log %s: %s", l->job_what,
		 l->path, strerror(-l->job_err));
	lg->errors++;
	say(lg, lg->last_error);
	if (l->state == LOG_OPENING) {
		if (l->cb)
			l->cb(l->cb_arg, l->job_err, lg->last_error);
	} else {
		say(lg, "logging stopped; the server goes on without a log "
			"(start a new one with `distkv client log dest FILE`)");
		log_health(lg, false);
		if (lg->cur == l)
			lg->behind = true;
		free(lg->failed_path);
		lg->failed_path = dkv_xstrdup(l->path);
		if (l->cb) /* a stop was waiting */
			l->cb(l->cb_arg, l->job_err, lg->last_error);
	}
	l->cb = NULL;
	log_free(l);
}

static void begin_close(struct logfile *l, dkv_logger_cb cb, void *arg);

/* The error log's view (errlog.h): a running log that fails is an error
 * of subsystem "log" at (NODE,), which a new log that runs resolves.  A
 * log that cannot be opened is not: its requester is told. */
static void log_health(struct dkv_logger *lg, bool ok)
{
	struct dkv_errlog *el = dkv_engine_errlog(lg->e);
	if (!el)
		return;
	struct dkv_path p;
	dkv_path_init(&p);
	dkv_path_push_str(&p, dkv_engine_self(lg->e)->name);
	if (ok) {
		dkv_errlog_fixed(el, DKV_ERRSYS_LOG, p.enc.data, p.enc.len);
	} else {
		struct dkv_errlog_occ o = {
			.sys = DKV_ERRSYS_LOG,
			.path = p.enc.data,
			.plen = p.enc.len,
			.severity = DKV_SEV_ERROR,
			.message = lg->last_error,
			.comment = "logging stopped; the server goes on without a log",
		};
		dkv_errlog_note(el, &o);
	}
	dkv_path_release(&p);
}

/* The new log holds the state: it replaces the old one, which closes. */
static void switch_done(struct logfile *l)
{
	struct dkv_logger *lg = l->lg;
	struct logfile *old = lg->cur;
	lg->cur = l;
	lg->next = NULL;
	free(lg->failed_path);
	lg->failed_path = NULL;
	log_health(lg, true);
	if (l->complete)
		lg->behind = false;
	if (old)
		begin_close(old, NULL, NULL);
	if (l->cb) {
		char msg[300];
		snprintf(msg, sizeof msg, "logging to %s", l->path);
		l->cb(l->cb_arg, 0, msg);
		l->cb = NULL;
	}
	if (l->sync == DKV_LOG_SYNC_BATCH && !lg->timer_on) {
		uint64_t iv = lg->opts.interval_ms ? lg->opts.interval_ms : 100;
		uv_timer_start(&lg->timer, on_timer, iv, iv);
		lg->timer_on = true;
	}
}

static void closed(struct logfile *l)
{
	if (l->cb) {
		char msg[300];
		snprintf(msg, sizeof msg, "log %s closed", l->path);
		l->cb(l->cb_arg, 0, msg);
		l->cb = NULL;
	}
	log_free(l);
}

static void job_done(uv_work_t *w, int status)
{
	struct logfile *l = w->data;
	size_t n = l->inflight.len;
	l->busy = false;
	l->inflight.len = 0;
	if (l->job_err || l->loop_err) {
		log_failed(l);
		return;
	}
	l->bytes += n;
	l->syncs += l->job_sync;
	if (l->inflight_seq > l->safe_seq) /* the loop may have written more meanwhile */
		l->safe_seq = l->inflight_seq;
	if (l->job_close) {
		closed(l);
		return;
	}
	if (l->state == LOG_OPENING) {
		if (l->lg->next != l) { /* closed while it was opening */
			l->state = LOG_CLOSING;
			start_job(l, l->sync != DKV_LOG_SYNC_NONE, true);
			return;
		}
		l->state = LOG_OPEN;
		l->loop_writes = l->job_is_reg && l->sync != DKV_LOG_SYNC_ALWAYS;
		/* what came while it opened goes in before its opener hears */
		if (l->loop_writes && loop_write(l))
			return; /* it ended the log */
		switch_done(l);
	} else if (l->state == LOG_CLOSING) {
		start_job(l, l->sync != DKV_LOG_SYNC_NONE, true);
		return;
	}
	if (n)
		held_update(l);
	/* the changes made during that job share the next one */
	if (l->pending.len && !l->loop_writes)
		start_job(l, l->sync == DKV_LOG_SYNC_ALWAYS, false);
	notify(l->lg);
}

/* Stop taking records, then write what is left, fsync and close. */
static void begin_close(struct logfile *l, dkv_logger_cb cb, void *arg)
{
	struct dkv_logger *lg = l->lg;
	if (lg->cur == l)
		lg->cur = NULL;
	if (lg->next == l)
		lg->next = NULL;
	l->cb = cb;
	l->cb_arg = arg;
	l->last_seq = l->pending_seq;
	if (l->state == LOG_OPENING) {
		/* job_done continues once the open is through */
		return;
	}
	l->state = LOG_CLOSING;
	if (!l->busy) {
		if (l->fd < 0)
			closed(l);
		else
			start_job(l, l->sync != DKV_LOG_SYNC_NONE, true);
	}
}

/* ---- the hook and the triggers ---- */

/* Replies wait for the log in every mode, so a disk that cannot keep up
 * slows the clients down instead of letting pending grow. */
static void append(struct logfile *l, const struct dkv_buf *rec, uint64_t seq)
{
	dkv_buf_append(&l->pending, rec->data, rec->len);
	l->pending_seq = seq;
	l->records++;
	/* opening: job_done takes over; a worker's job: it starts the next */
	if (l->state != LOG_OPEN || (l->busy && !l->loop_writes))
		return;
	if (!uv_is_active((uv_handle_t *)&l->lg->check))
		uv_check_start(&l->lg->check, on_check);
}

static void on_change(void *ctx, const struct dkv_event *ev)
{
	struct dkv_logger *lg = ctx;
	if (!lg->cur && !lg->next)
		return;
	lg->rec.len = 0;
	lg->tmp.enc.len = 0;
	lg->tmp.n = 0;
	dkv_entry_path(ev->entry, NULL, &lg->tmp);
	encode_change(&lg->rec, &lg->tmp, ev->value, ev->tock);
	lg->seq++;
	if (lg->cur)
		append(lg->cur, &lg->rec, lg->seq);
	if (lg->next)
		append(lg->next, &lg->rec, lg->seq);
}

/* After a loop iteration's requests are handled, before their held
 * replies go: one write (and in always mode one fsync) for all the
 * changes they made. */
static void on_check(uv_check_t *h)
{
	struct dkv_logger *lg = h->data;
	bool wrote = false;
	uv_check_stop(h);
	for (struct logfile *l = lg->logs, *n; l; l = n) {
		n = l->next; /* a failed write frees l */
		if (l->state != LOG_OPEN || !l->pending.len)
			continue;
		if (l->loop_writes) {
			(void)loop_write(l);
			wrote = true;
		} else if (!l->busy) {
			start_job(l, l->sync == DKV_LOG_SYNC_ALWAYS, false);
		}
	}
	if (wrote)
		notify(lg);
}

static void on_timer(uv_timer_t *h)
{
	struct dkv_logger *lg = h->data;
	bool any = false;
	for (struct logfile *l = lg->logs, *n; l; l = n) {
		n = l->next; /* a failed write frees l */
		if (l->state != LOG_OPEN || l->sync != DKV_LOG_SYNC_BATCH)
			continue;
		any = true;
		if (l->busy || (!l->unsynced && !l->pending.len))
			continue;
		if (l->loop_writes && loop_write(l))
			continue;
		start_job(l, true, false);
	}
	if (!any) {
		uv_timer_stop(h);
		lg->timer_on = false;
	}
}

/* ---- the logger ---- */

struct dkv_logger *dkv_logger_new(uv_loop_t *loop, struct dkv_engine *e,
				  const struct dkv_logger_opts *o)
{
	struct dkv_logger *lg = dkv_xcalloc(1, sizeof *lg);
	lg->loop = loop;
	lg->e = e;
	if (o)
		lg->opts = *o;
	dkv_path_init(&lg->tmp);
	uv_check_init(loop, &lg->check);
	uv_timer_init(loop, &lg->timer);
	uv_timer_init(loop, &lg->save_timer);
	lg->check.data = lg->timer.data = lg->save_timer.data = lg;
	lg->handles = 3;
	dkv_engine_add_hook(e, on_change, lg);
	return lg;
}

enum dkv_log_sync dkv_logger_default_sync(const struct dkv_logger *lg)
{
	return lg->opts.sync;
}

int dkv_logger_start(struct dkv_logger *lg, const char *path, enum dkv_log_sync sync,
		     bool incremental, dkv_logger_cb cb, void *arg)
{
	if (lg->closing)
		return -ESHUTDOWN;
	if (lg->next)
		return -EBUSY;
	struct logfile *l = log_new(lg, path, sync);
	l->cb = cb;
	l->cb_arg = arg;
	l->complete = !incremental;
	dkv_log_encode_header(&l->pending, dkv_engine_self(lg->e)->name,
			      incremental ? DKV_LOG_KIND_LOG : DKV_LOG_KIND_DUMP);
	if (incremental)
		dkv_log_encode_state(&l->pending, lg->e); /* ticks, so a load never reuses one */
	else
		dkv_log_encode_dump(&l->pending, lg->e, true);
	lg->next = l;
	start_job(l, sync != DKV_LOG_SYNC_NONE, false);
	return 0;
}

int dkv_logger_stop(struct dkv_logger *lg, dkv_logger_cb cb, void *arg)
{
	if (lg->closing)
		return -ESHUTDOWN;
	if (lg->next)
		return -EBUSY;
	free(lg->failed_path);
	lg->failed_path = NULL;
	lg->behind = false; /* no log: a restart is from nothing, or by choice */
	if (!lg->cur)
		return -EALREADY;
	begin_close(lg->cur, cb, arg);
	return 0;
}

/* ---- one-shot dumps ---- */

static void save_work(uv_work_t *w)
{
	struct save *s = w->data;
	size_t n = strlen(s->path);
	char *tmp = dkv_xmalloc(n + 16);
	int fd, rc;

	memcpy(tmp, s->path, n);
	memcpy(tmp + n, ".tmp-XXXXXX", 12);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		s->err = -errno;
		s->what = "create a temporary file for";
		free(tmp);
		return;
	}
	/* in slices, so that the loop can tell how far it got */
	rc = 0;
	for (size_t off = 0, k; !rc && off < s->data.len; off += k) {
		k = s->data.len - off < SAVE_SLICE ? s->data.len - off : SAVE_SLICE;
		if (!(rc = write_all(fd, s->data.data + off, k)))
			atomic_store_explicit(&s->written, off + k, memory_order_relaxed);
	}
	if (rc) {
		s->err = rc;
		s->what = "write";
	} else if (fdatasync(fd)) {
		s->err = -errno;
		s->what = "sync";
	} else if (fchmod(fd, 0644)) { /* mkostemp made it private */
		s->err = -errno;
		s->what = "write";
	}
	if (close(fd) && !s->err) {
		s->err = -errno;
		s->what = "write";
	}
	if (!s->err && rename(tmp, s->path)) {
		s->err = -errno;
		s->what = "rename the temporary file to";
	}
	if (s->err)
		unlink(tmp);
	else if ((rc = fsync_dir_of(s->path))) {
		s->err = rc;
		s->what = "sync the directory of";
	}
	free(tmp);
}

/* Tell a save's requester how far the file got. */
static void save_report(struct save *s, bool all)
{
	uint64_t written = atomic_load_explicit(&s->written, memory_order_relaxed);
	const uint64_t *marks = (const uint64_t *)s->marks.data;
	size_t nmarks = s->marks.len / sizeof *marks;
	while (s->marks_passed < nmarks && marks[s->marks_passed] <= written)
		s->marks_passed++;
	if (s->progress && s->cb)
		s->progress(s->cb_arg, all ? s->entries : s->marks_passed * MARK_EVERY,
			    all ? s->data.len : written);
}

static void on_save_timer(uv_timer_t *h)
{
	struct dkv_logger *lg = h->data;
	bool any = false;
	for (struct save *s = lg->saves; s; s = s->next) {
		if (s->progress && s->cb) {
			any = true;
			save_report(s, false);
		}
	}
	if (!any) {
		uv_timer_stop(h);
		lg->save_timer_on = false;
	}
}

static void save_done(uv_work_t *w, int status)
{
	struct save *s = w->data;
	struct dkv_logger *lg = s->lg;
	char msg[300];
	struct save **pp = &lg->saves;
	while (*pp != s)
		pp = &(*pp)->next;
	*pp = s->next;
	if (!s->err)
		save_report(s, true);
	if (s->err) {
		snprintf(msg, sizeof msg, "cannot %s %s: %s", s->what, s->path, strerror(-s->err));
		snprintf(lg->last_error, sizeof lg->last_error, "%s", msg);
		lg->errors++;
		say(lg, msg);
	} else {
		snprintf(msg, sizeof msg, "saved to %s", s->path);
	}
	if (s->cb)
		s->cb(s->cb_arg, s->err, msg);
	dkv_buf_release(&s->data);
	dkv_buf_release(&s->marks);
	free(s->path);
	free(s);
	maybe_finish_close(lg);
}

int dkv_logger_save(struct dkv_logger *lg, const char *path, bool full, dkv_logger_cb cb,
		    dkv_logger_progress_cb progress, void *arg)
{
	if (lg->closing)
		return -ESHUTDOWN;
	struct save *s = dkv_xcalloc(1, sizeof *s);
	s->lg = lg;
	s->path = dkv_xstrdup(path);
	s->cb = cb;
	s->progress = progress;
	s->cb_arg = arg;
	atomic_init(&s->written, 0);
	/* NEEDSWORK: the dump is built in memory in one go on the loop (about
	 * 40 bytes per entry, some 100 ms per million entries); a huge tree
	 * would want it written in slices.  Progress covers the writing. */
	dkv_log_encode_header(&s->data, dkv_engine_self(lg->e)->name, DKV_LOG_KIND_DUMP);
	s->entries = encode_dump(&s->data, lg->e, full, progress ? &s->marks : NULL);
	s->work.data = s;
	s->next = lg->saves;
	lg->saves = s;
	uv_queue_work(lg->loop, &s->work, save_work, save_done);
	if (progress && !lg->save_timer_on) {
		uv_update_time(lg->loop); /* the first report a quarter second after the dump is made */
		uv_timer_start(&lg->save_timer, on_save_timer, SAVE_PROGRESS_MS, SAVE_PROGRESS_MS);
		lg->save_timer_on = true;
	}
	return 0;
}

void dkv_logger_forget(struct dkv_logger *lg, void *arg)
{
	for (struct logfile *l = lg->logs; l; l = l->next)
		if (l->cb_arg == arg)
			l->cb = NULL;
	for (struct save *s = lg->saves; s; s = s->next)
		if (s->cb_arg == arg)
			s->cb = NULL, s->progress = NULL;
}

/* ---- health and durability ---- */

void dkv_logger_encode_info(const struct dkv_logger *lg, struct dkv_buf *out)
{
	const struct logfile *l = lg->cur ? lg->cur : lg->next;
	dkv_mp_map(out, 8);
	dkv_mp_cstr(out, "path");
	if (l)
		dkv_mp_cstr(out, l->path);
	else if (lg->failed_path)
		dkv_mp_cstr(out, lg->failed_path);
	else
		dkv_mp_nil(out);
	dkv_mp_cstr(out, "sync");
	if (l)
		dkv_mp_cstr(out, dkv_log_sync_name(l->sync));
	else
		dkv_mp_nil(out);
	dkv_mp_cstr(out, "state");
	dkv_mp_cstr(out, !l ? (lg->failed_path ? "failed" : "off")
			    : l->state == LOG_OPENING ? "opening" : "ok");
	dkv_mp_cstr(out, "records");
	dkv_mp_uint(out, l ? l->records : 0);
	dkv_mp_cstr(out, "bytes");
	dkv_mp_uint(out, l ? l->bytes : 0);
	dkv_mp_cstr(out, "syncs");
	dkv_mp_uint(out, l ? l->syncs : 0);
	dkv_mp_cstr(out, "errors");
	dkv_mp_uint(out, lg->errors);
	dkv_mp_cstr(out, "last_error");
	if (lg->errors)
		dkv_mp_cstr(out, lg->last_error);
	else
		dkv_mp_nil(out);
}

uint64_t dkv_logger_need(const struct dkv_logger *lg)
{
	for (const struct logfile *l = lg->logs; l; l = l->next)
		if (l->safe_seq < lg->seq)
			return lg->seq;
	return 0;
}

uint64_t dkv_logger_reportable(const struct dkv_logger *lg, uint32_t node_idx,
			       uint64_t seen_prefix)
{
	if (!lg || !lg->behind)
		return seen_prefix;
	uint64_t held = node_idx < lg->nheld ? lg->held[node_idx] : 0;
	return held < seen_prefix ? held : seen_prefix;
}

bool dkv_logger_is_durable(const struct dkv_logger *lg, uint64_t seq)
{
	for (const struct logfile *l = lg->logs; l; l = l->next)
		if (seq > l->attach_seq && seq <= l->last_seq && l->safe_seq < seq)
			return false;
	return true;
}

void dkv_logger_add_notify(struct dkv_logger *lg, void (*cb)(void *arg), void *arg)
{
	for (unsigned i = 0; i < 4; i++) {
		if (!lg->notify[i].cb) {
			lg->notify[i].cb = cb;
			lg->notify[i].arg = arg;
			return;
		}
	}
	abort(); /* more listeners than parts of a server: a bug */
}

void dkv_logger_remove_notify(struct dkv_logger *lg, void (*cb)(void *arg), void *arg)
{
	for (unsigned i = 0; i < 4; i++)
		if (lg->notify[i].cb == cb && lg->notify[i].arg == arg)
			lg->notify[i].cb = NULL;
}

/* ---- closing ---- */

static void handle_closed(uv_handle_t *h)
{
	struct dkv_logger *lg = h->data;
	lg->handles--;
	maybe_finish_close(lg);
}

static void maybe_finish_close(struct dkv_logger *lg)
{
	if (!lg->closing || lg->logs || lg->saves)
		return;
	if (lg->handles == 3 && !uv_is_closing((uv_handle_t *)&lg->check)) {
		uv_close((uv_handle_t *)&lg->check, handle_closed);
		uv_close((uv_handle_t *)&lg->timer, handle_closed);
		uv_close((uv_handle_t *)&lg->save_timer, handle_closed);
		return;
	}
	if (lg->handles)
		return;
	void (*cb)(void *) = lg->close_cb;
	void *arg = lg->close_arg;
	dkv_buf_release(&lg->rec);
	dkv_path_release(&lg->tmp);
	free(lg->failed_path);
	free(lg->held);
	free(lg);
	if (cb)
		cb(arg);
}

void dkv_logger_close(struct dkv_logger *lg, void (*cb)(void *arg), void *arg)
{
	if (!lg) {
		if (cb)
			cb(arg);
		return;
	}
	lg->closing = true;
	lg->close_cb = cb;
	lg->close_arg = arg;
	memset(lg->notify, 0, sizeof lg->notify);
	dkv_engine_remove_hook(lg->e, on_change, lg);
	for (struct save *s = lg->saves; s; s = s->next)
		s->cb = NULL, s->progress = NULL;
	struct logfile *l = lg->logs, *n;
	for (; l; l = n) {
		n = l->next; /* begin_close may free l */
		l->cb = NULL;
		if (l->state != LOG_CLOSING)
			begin_close(l, NULL, NULL);
	}
	maybe_finish_close(lg);
}
