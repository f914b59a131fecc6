/*
 * logload.c - loading state files and change logs into an engine.
 *
 * Workload: a server start reading one dump plus some incremental logs,
 * up to millions of records, often from a pipe (`-l <(cat a b c)`).  So
 * the reader streams through a window that holds only the record being
 * parsed, never seeks, and applies each record as soon as it is read.
 *
 * Damage.  A crash leaves at most one torn record at the end of a log;
 * `cat` of several logs can put that torn record right before the next
 * file's header.  Every record but the header ends in a CRC, so a torn
 * record that swallowed bytes of its successor is detected.  When a
 * record is bad the reader looks for the next place where a header or a
 * record with a good CRC starts (resync).  If the bad bytes are a prefix
 * of a msgpack item and what follows is a header or the end, it was a
 * torn record: a warning.  Anything else is garbage: an error naming the
 * file and the offset, unless the caller asked to skip damage.  An empty
 * stream has no header, so it is damage too, but the harmless kind a
 * crash leaves: a warning.
 */
#include "log.h"
#include "report.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define READ_CHUNK (256u * 1024)
/* Ticks and tocks above this are refused: counting on from them must
 * not overflow. */
#define COUNTER_MAX (UINT64_C(1) << 62)
#define NODE_NAME_MAX 1024

/* ---- CRC-32 ---- */

static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
		crc_table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

uint32_t dkv__log_crc32(uint32_t crc, const uint8_t *p, size_t n)
{
	pthread_once(&crc_once, crc_init);
	crc = ~crc;
	/* slicing by 8: records are short, but a dump has millions of them */
	while (n >= 8) {
		uint32_t a = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
				    (uint32_t)p[3] << 24);
		crc = crc_table[7][a & 0xff] ^ crc_table[6][(a >> 8) & 0xff] ^
		      crc_table[5][(a >> 16) & 0xff] ^ crc_table[4][a >> 24] ^
		      crc_table[3][p[4]] ^ crc_table[2][p[5]] ^ crc_table[1][p[6]] ^
		      crc_table[0][p[7]];
		p += 8;
		n -= 8;
	}
	while (n--)
		crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

/* ---- the reader's window ---- */

struct rd {
	struct dkv_engine *e;
	const char *name;
	const struct dkv_log_load_opts *o;
	struct dkv_log_stats *st;
	char *err;
	size_t errlen;
	int fd;               /* -1: reading memory */
	struct dkv_buf buf;   /* fd: the window's storage */
	const uint8_t *data;  /* the window: stream bytes [base, base + len) */
	size_t len;
	uint64_t base;
	bool eof;             /* no more bytes after the window */
	bool have_header;
	/* scratch, reused for every record */
	struct dkv_path path;
	struct dkv_buf val;
	struct dkv_chain_link links[DKV_CHAIN_MAX];
};

static const uint8_t *at(const struct rd *r, uint64_t off)
{
	return r->data + (off - r->base);
}

static uint64_t end_of(const struct rd *r)
{
	return r->base + r->len;
}

/* Read more, keeping the bytes from keep on. */
static int fill(struct rd *r, uint64_t keep)
{
	if (r->eof)
		return 0;
	size_t drop = (size_t)(keep - r->base);
	dkv_buf_consume(&r->buf, drop);
	r->base += drop;
	dkv_buf_reserve(&r->buf, READ_CHUNK);
	for (;;) {
		ssize_t n = read(r->fd, r->buf.data + r->buf.len, r->buf.cap - r->buf.len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int rc = -errno;
			snprintf(r->err, r->errlen, "%s: read error at byte %llu: %s", r->name,
				 (unsigned long long)end_of(r), strerror(errno));
			return rc;
		}
		if (n == 0)
			r->eof = true;
		r->buf.len += (size_t)n;
		break;
	}
	r->data = r->buf.data;
	r->len = r->buf.len;
	if (r->st)
		r->st->bytes = end_of(r);
	if (r->st && r->o && r->o->progress)
		r->o->progress(r->o->arg, r->st);
	return 0;
}

/* The length of the complete msgpack item at off: 0 and *n, -EAGAIN
 * (incomplete at the end of the stream) or -EBADMSG / -E2BIG. */
static int item_at(struct rd *r, uint64_t off, uint64_t keep, size_t *n)
{
	for (;;) {
		struct dkv_mp_reader mr;
		dkv_mp_reader_init(&mr, at(r, off), (size_t)(end_of(r) - off));
		int rc = dkv_mp_skip(&mr);
		if (rc == -EAGAIN && !r->eof) {
			if ((rc = fill(r, keep)))
				return rc == -EAGAIN ? -EIO : rc;
			continue;
		}
		if (!rc)
			*n = (size_t)(mr.p - at(r, off));
		return rc;
	}
}

static void warn(struct rd *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(struct rd *r, const char *fmt, ...)
{
	char msg[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (r->st)
		r->st->warnings++;
	if (r->o && r->o->warn)
		r->o->warn(r->o->arg, msg);
	else
		dkv_report(DKV_REPORT_WARNING, "%s", msg);
}

/* ---- records ---- */

/* Whether p[0..n) is a header; *version gets its format version. */
static bool parse_header(const uint8_t *p, size_t n, uint64_t *version)
{
	struct dkv_mp_reader mr;
	struct dkv_mp_item it, k, v;
	bool found = false;
	dkv_mp_reader_init(&mr, p, n);
	if (dkv_mp_read(&mr, &it) || it.type != DKV_MP_MAP || !it.v.n)
		return false;
	for (uint32_t i = 0; i < it.v.n; i++) {
		if (dkv_mp_read(&mr, &k) || k.type != DKV_MP_STR)
			return false;
		if (dkv_mp_streq(&k, "distkv-log")) {
			if (i || dkv_mp_read(&mr, &v) || v.type != DKV_MP_UINT || !v.v.u)
				return false;
			*version = v.v.u;
			found = true;
		} else if (dkv_mp_skip(&mr)) {
			return false;
		}
	}
	return found;
}

/* Whether the record p[0..n) (an array) ends in the right CRC; *body
 * gets a reader over its items after the array head, without the CRC. */
static bool crc_ok(const uint8_t *p, size_t n, struct dkv_mp_reader *body, uint32_t *nitems)
{
	struct dkv_mp_reader mr;
	struct dkv_mp_item it, c;
	dkv_mp_reader_init(&mr, p, n);
	if (dkv_mp_read(&mr, &it) || it.type != DKV_MP_ARRAY || it.v.n < 2)
		return false;
	struct dkv_mp_reader b = mr;
	for (uint32_t i = 0; i + 1 < it.v.n; i++)
		if (dkv_mp_skip(&mr))
			return false;
	const uint8_t *crc_at = mr.p;
	if (dkv_mp_read(&mr, &c) || c.type != DKV_MP_UINT || c.v.u > UINT32_MAX)
		return false;
	if (dkv__log_crc32(0, p, (size_t)(crc_at - p)) != (uint32_t)c.v.u)
		return false;
	b.end = crc_at;
	*body = b;
	*nitems = it.v.n - 1;
	return true;
}

static int read_uint(struct dkv_mp_reader *mr, uint64_t max, uint64_t *out)
{
	struct dkv_mp_item it;
	if (dkv_mp_read(mr, &it) || it.type != DKV_MP_UINT || it.v.u > max)
		return -EINVAL;
	*out = it.v.u;
	return 0;
}

static int read_name(struct dkv_mp_reader *mr, const char **name, size_t *len)
{
	struct dkv_mp_item it;
	if (dkv_mp_read(mr, &it) || it.type != DKV_MP_STR || !it.v.s.len ||
	    it.v.s.len > NODE_NAME_MAX || memchr(it.v.s.p, 0, it.v.s.len))
		return -EINVAL;
	*name = (const char *)it.v.s.p;
	*len = it.v.s.len;
	return 0;
}

static int read_chain(struct rd *r, struct dkv_mp_reader *mr, uint32_t *nchain)
{
	struct dkv_mp_item it, pair;
	if (dkv_mp_read(mr, &it) || it.type != DKV_MP_ARRAY || !it.v.n || it.v.n > DKV_CHAIN_MAX)
		return -EINVAL;
	for (uint32_t i = 0; i < it.v.n; i++) {
		const char *name;
		size_t len;
		uint64_t tick;
		if (dkv_mp_read(mr, &pair) || pair.type != DKV_MP_ARRAY || pair.v.n != 2 ||
		    read_name(mr, &name, &len) || read_uint(mr, COUNTER_MAX, &tick) || !tick)
			return -EINVAL;
		struct dkv_node *n = dkv_engine_node(r->e, name, len);
		for (uint32_t j = 0; j < i; j++)
			if (r->links[j].node == n)
				return -EINVAL; /* a node appears at most once */
		r->links[i].node = n;
		r->links[i].tick = tick;
	}
	*nchain = it.v.n;
	return 0;
}

/* Every tick in a chain happened: the node counts on above it, and a
 * later get_state knows it even if this change lost to a newer one. */
static void note_ticks(struct rd *r, uint32_t nchain, bool deleted)
{
	for (uint32_t i = 0; i < nchain; i++) {
		struct dkv_node *n = r->links[i].node;
		uint64_t t = r->links[i].tick;
		if (t > n->tick)
			n->tick = t;
		dkv_rangeset_add(&n->seen, t, t + 1);
	}
	if (deleted)
		dkv_rangeset_add(&r->links[0].node->deleted, r->links[0].tick, r->links[0].tick + 1);
}

static int apply_change(struct rd *r, struct dkv_mp_reader *mr, bool del, const char **why)
{
	uint64_t tock;
	uint32_t nchain;

	if (dkv_path_decode(&r->path, mr)) {
		*why = "bad path";
		return -EBADMSG;
	}
	if (read_uint(mr, COUNTER_MAX, &tock) || read_chain(r, mr, &nchain)) {
		*why = "bad tock or chain";
		return -EBADMSG;
	}
	r->val.len = 0;
	if (!del && dkv_mp_canon(&r->val, mr)) {
		*why = "bad value";
		return -EBADMSG;
	}
	if (dkv_mp_left(mr)) {
		*why = "extra data in a record";
		return -EBADMSG;
	}
	/* internal data is logged with its full path, None first */
	bool internal = r->path.n && r->path.enc.data[0] == 0xc0;
	struct dkv_change ch = {
		.path = r->path.enc.len ? r->path.enc.data + internal : (const uint8_t *)"",
		.path_len = r->path.enc.len - internal,
		.internal = internal,
		.value = del ? NULL : r->val.data,
		.value_len = r->val.len,
		.src = r->o && r->o->remote ? DKV_SRC_REMOTE : DKV_SRC_REPLAY,
		.chain = r->links,
		.nchain = nchain,
		.tock = tock,
	};
	struct dkv_result res;
	int rc = dkv_engine_apply(r->e, &ch, &res);
	if (!rc && r->st && res.changed)
		r->st->applied++;
	if (!rc && r->st && res.conflict)
		r->st->conflicts++;
	dkv_result_release(r->e, &res);
	if (rc) {
		*why = rc == -EFBIG ? "value too large" : "path not allowed";
		return -EBADMSG;
	}
	note_ticks(r, nchain, del);
	dkv_engine_see_tock(r->e, tock);
	return 0;
}

static int apply_state(struct rd *r, struct dkv_mp_reader *mr, const char **why)
{
	struct dkv_mp_item it, a;
	uint64_t tock;
	*why = "bad node state";
	if (read_uint(mr, COUNTER_MAX, &tock) || dkv_mp_read(mr, &it) || it.type != DKV_MP_MAP)
		return -EBADMSG;
	for (uint32_t i = 0; i < it.v.n; i++) {
		const char *name;
		size_t len;
		uint64_t tick;
		if (read_name(mr, &name, &len) || dkv_mp_read(mr, &a) || a.type != DKV_MP_ARRAY ||
		    a.v.n != 3 || read_uint(mr, COUNTER_MAX, &tick))
			return -EBADMSG;
		struct dkv_node *n = dkv_engine_node(r->e, name, len);
		if (tick > n->tick)
			n->tick = tick;
		if (dkv_rangeset_decode(&n->seen, mr) || dkv_rangeset_decode(&n->deleted, mr))
			return -EBADMSG;
	}
	if (dkv_mp_left(mr))
		return -EBADMSG;
	/* a range past the node's tick counts as seen: count on above it */
	for (uint32_t i = 0; i < dkv_engine_node_count(r->e); i++) {
		struct dkv_node *n = dkv_engine_node_at(r->e, i);
		if (n->seen.n && n->seen.r[n->seen.n - 1].hi - 1 > n->tick)
			n->tick = n->seen.r[n->seen.n - 1].hi - 1;
		if (n->tick > COUNTER_MAX)
			n->tick = COUNTER_MAX; /* a huge range: refuse to overflow */
	}
	dkv_engine_see_tock(r->e, tock);
	return 0;
}

/* Apply the complete item p[0..n) at off.  -EBADMSG with *why set, or
 * -EPROTO (a newer format: err set). */
static int record(struct rd *r, const uint8_t *p, size_t n, uint64_t off, const char **why)
{
	struct dkv_mp_reader body;
	uint32_t nitems;
	uint64_t type, version;

	if (p[0] >= 0x80 && p[0] <= 0x8f) {
		if (!parse_header(p, n, &version)) {
			*why = "a map that is not a distkv log header";
			return -EBADMSG;
		}
		if (version > DKV_LOG_FORMAT) {
			snprintf(r->err, r->errlen,
				 "%s: byte %llu: written in log format %llu; this distkv reads "
				 "formats up to %d",
				 r->name, (unsigned long long)off, (unsigned long long)version,
				 DKV_LOG_FORMAT);
			return -EPROTO;
		}
		r->have_header = true;
		return 0;
	}
	if (!r->have_header && !(r->o && r->o->remote)) {
		*why = "not a distkv log (it does not start with a log header)";
		return -EBADMSG;
	}
	if (!crc_ok(p, n, &body, &nitems)) {
		*why = "damaged record (bad structure or checksum)";
		return -EBADMSG;
	}
	if (read_uint(&body, UINT32_MAX, &type)) {
		*why = "bad record type";
		return -EBADMSG;
	}
	if (r->st && !(++r->st->records & 4095) && r->o && r->o->progress)
		r->o->progress(r->o->arg, r->st);
	if (type == DKV__LOG_REC_ENTRY && nitems == 5)
		return apply_change(r, &body, false, why);
	if (type == DKV__LOG_REC_DELETE && nitems == 4)
		return apply_change(r, &body, true, why);
	if (type == DKV__LOG_REC_STATE && nitems == 3)
		return apply_state(r, &body, why);
	*why = "unknown record type";
	return -EBADMSG;
}

/* Whether a header or a record with a good checksum starts at off. */
static int good_start(struct rd *r, uint64_t off, uint64_t keep, bool *ok, bool *is_header)
{
	uint8_t b = *at(r, off);
	bool hdr = b >= 0x81 && b <= 0x8f;
	size_t n;
	struct dkv_mp_reader body;
	uint32_t nitems;
	uint64_t version;

	*ok = false;
	if (!hdr && !(b >= 0x93 && b <= 0x9f))
		return 0;
	int rc = item_at(r, off, keep, &n);
	if (rc == -EAGAIN || rc == -EBADMSG || rc == -E2BIG)
		return 0;
	if (rc)
		return rc;
	*is_header = hdr;
	*ok = hdr ? parse_header(at(r, off), n, &version) : crc_ok(at(r, off), n, &body, &nitems);
	return 0;
}

/* The next place after bad where a header or a good record starts, or
 * the end of the stream.  NEEDSWORK: every candidate byte is parsed as an
 * item, so a long stretch of garbage full of array heads costs time
 * quadratic in its length (damage is rare, and bounded by the file). */
static int resync(struct rd *r, uint64_t bad, uint64_t *next, bool *is_header)
{
	for (uint64_t q = bad + 1;; q++) {
		int rc;
		bool ok;
		if (q == end_of(r)) {
			if (r->eof) {
				*next = q;
				*is_header = false;
				return 0;
			}
			if ((rc = fill(r, bad)))
				return rc;
			q--;
			continue;
		}
		if ((rc = good_start(r, q, bad, &ok, is_header)))
			return rc;
		if (ok) {
			*next = q;
			return 0;
		}
	}
}

/* Whether stream bytes [a, b) are the beginning of a msgpack item that
 * does not end before b: what a torn write leaves. */
static bool torn(const struct rd *r, uint64_t a, uint64_t b)
{
	struct dkv_mp_reader mr;
	dkv_mp_reader_init(&mr, at(r, a), (size_t)(b - a));
	return dkv_mp_skip(&mr) == -EAGAIN;
}

static int load(struct rd *r)
{
	uint64_t pos = 0;
	int rc = 0;

	for (;;) {
		const char *why = NULL;
		size_t n;
		if (pos == end_of(r)) {
			if (r->eof)
				break;
			if ((rc = fill(r, pos)))
				break;
			continue;
		}
		rc = item_at(r, pos, pos, &n);
		if (rc == -EBADMSG || rc == -E2BIG) {
			why = rc == -E2BIG ? "nested too deeply" : "not msgpack";
		} else if (rc == -EAGAIN) {
			why = "incomplete";
		} else if (rc) {
			break;
		} else {
			rc = record(r, at(r, pos), n, pos, &why);
			if (!rc) {
				pos += n;
				continue;
			}
			if (rc != -EBADMSG)
				break;
		}

		uint64_t next;
		bool hdr;
		if ((rc = resync(r, pos, &next, &hdr)))
			break;
		bool remote = r->o && r->o->remote; /* a message, not a file: no torn tails */
		if (!remote && next == end_of(r) && torn(r, pos, next)) {
			warn(r, "%s: truncated record at byte %llu (%llu bytes at the end ignored)",
			     r->name, (unsigned long long)pos, (unsigned long long)(next - pos));
			pos = next;
			continue;
		}
		if (!remote && hdr && torn(r, pos, next)) {
			warn(r, "%s: truncated record at byte %llu (%llu bytes before the next log "
				"header ignored)",
			     r->name, (unsigned long long)pos, (unsigned long long)(next - pos));
			pos = next;
			continue;
		}
		if (!remote && r->o && r->o->skip_damaged) {
			warn(r, "%s: bytes %llu to %llu skipped: %s", r->name,
			     (unsigned long long)pos, (unsigned long long)next, why);
			pos = next;
			continue;
		}
		snprintf(r->err, r->errlen, "%s: byte %llu: %s%s", r->name, (unsigned long long)pos,
			 why, remote ? "" : " (use --skip-damaged to load the rest anyway)");
		rc = -EBADMSG;
		break;
	}
	/* A file must start with a header, but an empty one is what a crash
	 * right after creating a log leaves: say so rather than "0 records",
	 * and load the other files.  A replication message needs no header. */
	if (!rc && end_of(r) == 0 && !(r->o && r->o->remote))
		warn(r, "%s: empty (0 bytes): no log header, nothing loaded", r->name);
	if (r->st)
		r->st->bytes = end_of(r);
	return rc;
}

static int run(struct rd *r)
{
	dkv_path_init(&r->path);
	if (r->errlen)
		r->err[0] = 0;
	int rc = load(r);
	dkv_path_release(&r->path);
	dkv_buf_release(&r->val);
	dkv_buf_release(&r->buf);
	return rc;
}

int dkv_log_load_fd(struct dkv_engine *e, int fd, const char *name,
		    const struct dkv_log_load_opts *o, struct dkv_log_stats *st, char *err,
		    size_t errlen)
{
	struct rd r = {.e = e, .name = name, .o = o, .st = st, .err = err, .errlen = errlen,
		       .fd = fd};
	return run(&r);
}

int dkv_log_load_mem(struct dkv_engine *e, const uint8_t *p, size_t len, const char *name,
		     const struct dkv_log_load_opts *o, struct dkv_log_stats *st, char *err,
		     size_t errlen)
{
	struct rd r = {.e = e, .name = name, .o = o, .st = st, .err = err, .errlen = errlen,
		       .fd = -1, .data = p ? p : (const uint8_t *)"", .len = len, .eof = true};
	return run(&r);
}

int dkv_log_load_file(struct dkv_engine *e, const char *path, const struct dkv_log_load_opts *o,
		      struct dkv_log_stats *st, char *err, size_t errlen)
{
	bool std = !strcmp(path, "-");
	int fd = std ? 0 : open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int rc = -errno;
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return rc;
	}
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	int rc = dkv_log_load_fd(e, fd, std ? "(standard input)" : path, o, st, err, errlen);
	if (!std)
		close(fd);
	return rc;
}
