/*
 * act_log.c - log and save: change logs and state files (log.h).
 */
#include "log.h"
#include "net.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* `log` and `save` answer once the file is on disk.  Until then the
 * request is a stream without output, so that it goes away with its
 * connection: the logger is told to forget the callback. */

static bool logop_pump(struct dkv_stream *st)
{
	return false;
}

static void logop_release(struct dkv_stream *st)
{
	dkv_logger_forget(st->conn->srv->opts.logger, st);
}

static const struct dkv_stream_ops logop_ops = {logop_pump, logop_release};

static void logop_done(void *arg, int status, const char *msg)
{
	dkv__stream_answer(arg, status ? msg : NULL);
}

/* `save` with progress (OUR EXTENSION: the field "progress" true; the
 * original's clients send no such field and get their one reply):
 * {state: start}, then {entries, bytes} of the file written so far, a few
 * a second and once more with the whole dump's figures, then {state: end}
 * (or the error reply).  A report that the client's window or the
 * connection's backlog has no room for is left out: the next one says
 * more. */
static void save_progress(void *arg, uint64_t entries, uint64_t bytes)
{
	struct dkv_stream *st = arg;
	struct dkv_reply r;
	if (!dkv__stream_can_send(st))
		return;
	dkv__stream_msg_begin(st, &r);
	dkv__reply_key(&r, "entries");
	dkv_mp_uint(r.b, entries);
	dkv__reply_key(&r, "bytes");
	dkv_mp_uint(r.b, bytes);
	dkv__reply_end(&r);
	dkv__conn_flush(st->conn);
}

static void save_done_streamed(void *arg, int status, const char *msg)
{
	struct dkv_stream *st = arg;
	struct dkv_conn *c = st->conn;
	if (status) {
		dkv__stream_answer(st, msg);
		return;
	}
	dkv__stream_end(st);
	dkv__conn_flush(c);
}

/* The "path" field: a file name, or NULL when absent or None. */
static int get_file(struct dkv_req *q, char *buf, size_t len, bool *given)
{
	const struct dkv_field *f = dkv__msg_get(q->m, "path");
	struct dkv_mp_reader r;
	struct dkv_mp_item it;
	*given = false;
	if (!f)
		return 0;
	dkv_mp_reader_init(&r, f->val, f->vallen);
	if (dkv_mp_read(&r, &it))
		return dkv__req_bad_field(q, "path", "a file name");
	if (it.type == DKV_MP_NIL)
		return 0;
	if ((it.type != DKV_MP_STR && it.type != DKV_MP_BIN) || !it.v.s.len ||
	    it.v.s.len >= len || memchr(it.v.s.p, 0, it.v.s.len))
		return dkv__req_bad_field(q, "path", "a file name");
	memcpy(buf, it.v.s.p, it.v.s.len);
	buf[it.v.s.len] = 0;
	*given = true;
	return 0;
}

/* what: "log to FILE", "stop the log", ... */
static void logop_error(struct dkv_req *q, const char *what, int rc)
{
	snprintf(q->err, sizeof q->err, "cannot %s: %s", what,
		 rc == -EBUSY	     ? "a log switch is still in progress"
		 : rc == -ESHUTDOWN ? "the server is shutting down"
				    : strerror(-rc));
}

int dkv__act_log(struct dkv_req *q)
{
	struct dkv_logger *lg = q->c->srv->opts.logger;
	char file[4096];
	bool given, fetch;
	int rc;

	if ((rc = get_file(q, file, sizeof file, &given)) || (rc = dkv__req_bool(q, "fetch", &fetch)))
		return rc;
	if (!lg) {
		snprintf(q->err, sizeof q->err, "this server keeps no logs");
		return -ENOSYS;
	}
	enum dkv_log_sync sync = dkv_logger_default_sync(lg);
	const struct dkv_field *sf = dkv__msg_get(q->m, "sync");
	if (sf) { /* OUR EXTENSION: the durability mode */
		struct dkv_mp_reader r;
		struct dkv_mp_item it;
		dkv_mp_reader_init(&r, sf->val, sf->vallen);
		if (dkv_mp_read(&r, &it) ||
		    (it.type != DKV_MP_NIL &&
		     (it.type != DKV_MP_STR ||
		      dkv_log_sync_parse((const char *)it.v.s.p, it.v.s.len, &sync))))
			return dkv__req_bad_field(q, "sync", "'always', 'batch' or 'none'");
	}
	struct dkv_stream *st = dkv__stream_new(q->c, q->m->seq, &logop_ops, NULL);
	if (given)
		rc = dkv_logger_start(lg, file, sync, !fetch, logop_done, st);
	else
		rc = dkv_logger_stop(lg, logop_done, st);
	if (rc == -EALREADY) { /* no log to stop */
		logop_done(st, 0, NULL);
		return 0;
	}
	if (rc) {
		char what[240] = "stop the log";
		if (given)
			snprintf(what, sizeof what, "log to %.200s", file);
		dkv__stream_cancel(st);
		logop_error(q, what, rc);
	}
	return rc;
}

int dkv__act_save(struct dkv_req *q)
{
	struct dkv_logger *lg = q->c->srv->opts.logger;
	char file[4096];
	bool given, full, progress;
	int rc;

	if ((rc = get_file(q, file, sizeof file, &given)) || (rc = dkv__req_bool(q, "full", &full)) ||
	    (rc = dkv__req_bool(q, "progress", &progress)))
		return rc;
	if (!given)
		return dkv__req_bad_field(q, "path", "a file name");
	if (!lg) {
		snprintf(q->err, sizeof q->err, "this server keeps no logs");
		return -ENOSYS;
	}
	struct dkv_stream *st = dkv__stream_new(q->c, q->m->seq, &logop_ops, NULL);
	if (progress)
		rc = dkv_logger_save(lg, file, full, save_done_streamed, save_progress, st);
	else
		rc = dkv_logger_save(lg, file, full, logop_done, NULL, st);
	if (!rc && progress)
		dkv__stream_state(st, "start");
	if (rc) {
		char what[240];
		snprintf(what, sizeof what, "save to %.200s", file);
		dkv__stream_cancel(st);
		logop_error(q, what, rc);
	}
	return rc;
}
