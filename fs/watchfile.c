/*
 * watchfile.c - ".watch": a file whose reads block and yield one YAML
 * document per change below its directory, like `dkv data monitor`.
 *
 * Each open file is an engine watcher on the loop thread that appends
 * documents to a buffer; reads on FUSE threads take them out.  A reader
 * that falls more than MAX_PENDING bytes behind loses the oldest news
 * and is told so in the stream.  poll() and O_NONBLOCK work.
 */
#include "fs_int.h"
#include "distkv.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_PENDING (4u << 20)

struct wstream {
	struct dkv_watch w; /* first: the engine's callback finds us from it */
	struct dkvfs *fs;
	struct dkv_session *sess; /* the reader's: news it may not read is left out */
	struct wstream *next; /* fs->streams, under mu */
	struct dkv_buf buf;   /* documents not yet read; under mu */
	uint64_t dropped;     /* documents lost to a slow reader; under mu */
	bool closed;          /* unmounting: reads see EOF */
	struct fuse_pollhandle *ph; /* under mu */
	pthread_cond_t cond;
};

/* The engine callback, on the loop thread. */
static void on_event(struct dkv_watch *w, const struct dkv_event *ev)
{
	struct wstream *ws = (struct wstream *)w;
	struct dkvfs *fs = ws->fs;
	struct dkv_buf doc = {0}, p = {0}, enc = {0};
	struct dkv_path rel;

	/* like a protocol watch: only what the reader may read (acl.h) */
	if (ws->sess->check && !(dkvfs__modes(fs, ws->sess, ev->entry) & DKV_ACL_READ))
		return;
	dkv_path_init(&rel);
	if (!dkv_entry_path(ev->entry, w->entry, &rel)) {
		dkv_path_release(&rel);
		return;
	}
	dkv_buf_puts(&doc, "---\npath: ");
	dkv_path_encode(&enc, rel.enc.data, rel.enc.len);
	dkv_yaml_emit(&p, enc.data, enc.len);
	dkv_buf_append(&doc, p.data, p.len);
	if (ev->value && ev->value->len) {
		dkv_buf_puts(&doc, "value:");
		p.len = 0;
		dkv_yaml_emit_indented(&p, dkv_value_data(ev->value), ev->value->len, 2);
		/* scalars stay on the key's line; collections go below it */
		const struct dkv_value *v = ev->value;
		uint8_t t = dkv_value_data(v)[0];
		bool coll = (t >= 0x80 && t <= 0x9f) || t == 0xdc || t == 0xdd || t == 0xde ||
			    t == 0xdf;
		if (coll && !(p.len >= 4 && (!memcmp(p.data + 2, "[]", 2) || !memcmp(p.data + 2, "{}", 2)))) {
			dkv_buf_putc(&doc, '\n');
			dkv_buf_append(&doc, p.data, p.len);
		} else {
			size_t skip = 0;
			while (skip < p.len && p.data[skip] == ' ')
				skip++;
			dkv_buf_putc(&doc, ' ');
			dkv_buf_append(&doc, p.data + skip, p.len - skip);
		}
	} else {
		dkv_buf_puts(&doc, "deleted: true\n");
	}
	if (ev->value && ev->value->nchain) {
		/* a node may be called "yes" or "12:30": quoted as YAML needs */
		enc.len = p.len = 0;
		dkv_mp_cstr(&enc, ev->value->chain[0].node->name);
		dkv_yaml_emit(&p, enc.data, enc.len);
		dkv_buf_puts(&doc, "node: ");
		dkv_buf_append(&doc, p.data, p.len);
		dkv_buf_printf(&doc, "tick: %llu\n", (unsigned long long)ev->value->chain[0].tick);
	}
	dkv_buf_printf(&doc, "tock: %llu\n", (unsigned long long)ev->tock);

	pthread_mutex_lock(&fs->mu);
	if (ws->buf.len + doc.len > MAX_PENDING) {
		ws->dropped++;
	} else {
		if (ws->dropped) {
			dkv_buf_printf(&ws->buf, "---\nlost: %llu\n", (unsigned long long)ws->dropped);
			ws->dropped = 0;
		}
		dkv_buf_append(&ws->buf, doc.data, doc.len);
	}
	pthread_cond_broadcast(&ws->cond);
	if (ws->ph) {
		dkvfs__queue_poll(fs, ws->ph);
		ws->ph = NULL;
	}
	pthread_mutex_unlock(&fs->mu);
	dkv_buf_release(&doc);
	dkv_buf_release(&p);
	dkv_buf_release(&enc);
	dkv_path_release(&rel);
}

static int job_start(struct dkvfs *fs, struct fsjob *j)
{
	struct wstream *ws = j->ptr;
	ws->w.cb = on_event;
	dkv_watch_start(fs->e, &ws->w, j->ent, NULL, 0);
	return 0;
}

static void stream_freed(struct dkv_watch *w)
{
	struct wstream *ws = (struct wstream *)w;
	dkv_buf_release(&ws->buf);
	pthread_cond_destroy(&ws->cond);
	free(ws);
}

static int job_stop(struct dkvfs *fs, struct fsjob *j)
{
	struct wstream *ws = j->ptr;
	dkv_watch_stop(fs->e, &ws->w, stream_freed);
	return 0;
}

void dkvfs__watch_open(struct dkvfs *fs, fuse_req_t req, struct dkv_session *s,
		       struct dkv_entry *ent, struct fuse_file_info *fi)
{
	struct wstream *ws = dkv_xcalloc(1, sizeof *ws);
	ws->fs = fs;
	ws->sess = s;
	pthread_cond_init(&ws->cond, NULL);
	struct fsjob j = {.run = job_start, .ent = ent, .ptr = ws};
	dkvfs__submit(fs, &j);
	pthread_mutex_lock(&fs->mu);
	ws->next = fs->streams;
	fs->streams = ws;
	pthread_mutex_unlock(&fs->mu);
	fi->fh = (uint64_t)(uintptr_t)ws;
	fi->direct_io = 1;   /* a stream: no size, no cache */
	fi->nonseekable = 1;
	fuse_reply_open(req, fi);
}

void dkvfs__watch_read(struct dkvfs *fs, fuse_req_t req, uint64_t fh, size_t size,
		       struct fuse_file_info *fi)
{
	struct wstream *ws = (struct wstream *)(uintptr_t)fh;
	pthread_mutex_lock(&fs->mu);
	while (!ws->buf.len && !ws->closed) {
		if (fi->flags & O_NONBLOCK) {
			pthread_mutex_unlock(&fs->mu);
			fuse_reply_err(req, EAGAIN);
			return;
		}
		if (fuse_req_interrupted(req)) {
			pthread_mutex_unlock(&fs->mu);
			fuse_reply_err(req, EINTR);
			return;
		}
		/* wake now and then to notice an interrupt (Ctrl-C on cat) */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 100000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&ws->cond, &fs->mu, &ts);
	}
	size_t n = ws->buf.len < size ? ws->buf.len : size;
	fuse_reply_buf(req, (const char *)ws->buf.data, n);
	dkv_buf_consume(&ws->buf, n);
	pthread_mutex_unlock(&fs->mu);
}

void dkvfs__watch_poll(struct dkvfs *fs, fuse_req_t req, uint64_t fh, struct fuse_pollhandle *ph)
{
	struct wstream *ws = (struct wstream *)(uintptr_t)fh;
	pthread_mutex_lock(&fs->mu);
	unsigned ev = ws->buf.len || ws->closed ? POLLIN : 0;
	if (ph) {
		if (ws->ph)
			fuse_pollhandle_destroy(ws->ph);
		ws->ph = NULL;
		if (ev)
			fuse_pollhandle_destroy(ph);
		else
			ws->ph = ph;
	}
	pthread_mutex_unlock(&fs->mu);
	fuse_reply_poll(req, ev);
}

void dkvfs__watch_release(struct dkvfs *fs, fuse_req_t req, uint64_t fh)
{
	struct wstream *ws = (struct wstream *)(uintptr_t)fh;
	pthread_mutex_lock(&fs->mu);
	struct wstream **pp = &fs->streams;
	while (*pp && *pp != ws)
		pp = &(*pp)->next;
	if (*pp)
		*pp = ws->next;
	if (ws->ph) {
		fuse_pollhandle_destroy(ws->ph);
		ws->ph = NULL;
	}
	pthread_mutex_unlock(&fs->mu);
	struct fsjob j = {.run = job_stop, .ptr = ws};
	dkvfs__submit(fs, &j);
	fuse_reply_err(req, 0);
}

void dkvfs__watch_close_all(struct dkvfs *fs)
{
	pthread_mutex_lock(&fs->mu);
	for (struct wstream *ws = fs->streams; ws; ws = ws->next) {
		ws->closed = true;
		pthread_cond_broadcast(&ws->cond);
	}
	pthread_mutex_unlock(&fs->mu);
}

void dkvfs__watch_drop_all(struct dkvfs *fs)
{
	struct wstream *ws = fs->streams, *next;
	fs->streams = NULL;
	for (; ws; ws = next) {
		next = ws->next;
		if (ws->ph)
			fuse_pollhandle_destroy(ws->ph);
		dkv_watch_stop(fs->e, &ws->w, stream_freed);
	}
}
