/*
 * net.h - what the files of engine/net/ share, and nothing else: the
 * server and its connections, requests, replies and streams, the action
 * handlers.  Every internal (dkv__) function of engine/net/ is declared
 * here, once.  Public calls are in server.h, cluster.h and client.h.
 */
#ifndef DKV_NET_H
#define DKV_NET_H

#include "server.h"

#define DKV_MSG_MAX_FIELDS 32

/* A decoded request: its fields, borrowed from the receive buffer. */
struct dkv_field {
	const uint8_t *key;
	uint32_t keylen;
	const uint8_t *val; /* the value's msgpack bytes */
	uint32_t vallen;
};

struct dkv_msg {
	struct dkv_field f[DKV_MSG_MAX_FIELDS];
	unsigned n;
	bool has_seq;
	uint64_t seq;
};

/* Decode one request map.  -EINVAL with a reason in err when it is not a
 * map with string keys, or has more than DKV_MSG_MAX_FIELDS fields. */
int dkv__msg_decode(struct dkv_msg *m, const uint8_t *p, size_t len, char *err, size_t errlen);
/* The field's value, or NULL. */
const struct dkv_field *dkv__msg_get(const struct dkv_msg *m, const char *key);

struct dkv_conn;
struct dkv_stream;

/* What a stream does when its window opens: produce messages until it is
 * done (return true) or must wait (false). */
struct dkv_stream_ops {
	bool (*pump)(struct dkv_stream *st);
	void (*release)(struct dkv_stream *st); /* free kind-specific state */
};

struct dkv_stream {
	struct dkv_conn *conn;
	struct dkv_stream *next;  /* in conn->streams */
	const struct dkv_stream_ops *ops;
	uint64_t seq;             /* the request's seq */
	uint64_t wseq;            /* last wseq sent */
	uint64_t acked;           /* highest wseq the client acked */
	bool ended;               /* "end" sent; to be freed */
	void *state;              /* the kind's own data */
};

struct dkv_server {
	uv_tcp_t listener;
	uv_loop_t *loop;
	struct dkv_engine *engine;
	struct dkv_server_opts opts;
	struct dkv_conn *conns; /* all open connections */
	size_t nconns;          /* connections in conns */
	size_t nhandles;        /* connection handles not yet closed */
	size_t nheld;           /* connections whose output waits for the log or the fence */
	struct dkv_fence fence; /* need == NULL: none (server.h) */
	bool closing;
	bool ready;             /* in sync with the cluster: data requests run */
	struct dkv_cluster *cluster; /* NULL: a standalone node */
	struct dkv__repl *repls; /* replication streams (repl.c) */
	struct dkv__repl_srv *repl; /* repl.c's shared state; NULL until first used */
	void (*close_cb)(void *arg);
	void *close_arg;
	int port;
};

struct dkv_conn {
	uv_tcp_t tcp;
	struct dkv_server *srv;
	struct dkv_conn *next, *prev;
	struct dkv_buf in;          /* received, not yet processed */
	struct dkv_buf out;         /* replies not yet handed to the kernel */
	struct dkv_buf inflight;    /* bytes of the write in progress */
	uv_write_t wreq;
	bool writing;               /* wreq is in use */
	bool reading;               /* uv_read_start is active */
	bool closing;
	bool close_after_write;     /* protocol error: flush, then close */
	bool held;                  /* out waits for the log or the fence (in srv->nheld) */
	bool parked;                /* a request waits until the node is in sync */
	uint64_t hold;              /* out may be written once the log has this record on disk */
	uint64_t hold_fence;        /* ... and the server's fence has passed this number */
	unsigned qlen;              /* stream window agreed with the client; 0: none */
	struct dkv_stream *streams; /* multi-reply requests still running */
	unsigned id;                /* for log messages */
	/* the session: who is asking (auth arrives with the auth issue) */
	const char *user;           /* NULL: anonymous, allow-all */
};

/* ---- replies ---- */

/* Start a reply map; fields are appended with dkv_mp_* (key, then value)
 * and counted with dkv__reply_field(); dkv__reply_end patches the count. */
struct dkv_reply {
	struct dkv_buf *b;
	size_t head;  /* offset of the map header */
	unsigned n;   /* fields so far */
};

void dkv__reply_begin(struct dkv_reply *r, struct dkv_conn *c);
void dkv__reply_key(struct dkv_reply *r, const char *key); /* counts one field */
void dkv__reply_end(struct dkv_reply *r);
/* Queue an error reply {error, seq (if any), tock}. */
void dkv__reply_error(struct dkv_conn *c, const struct dkv_msg *m, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Make sure queued output gets written (once the log allows: see log.h,
 * "Holding replies"). */
void dkv__conn_flush(struct dkv_conn *c);
/* The log made more records durable: write the output it held back. */
void dkv__server_log_durable(void *arg);
/* A connection or the listener is gone: free the server once all are. */
void dkv__server_maybe_done(struct dkv_server *s);

/* ---- connections (conn.c) ---- */

/* Accept a connection from s's listener and greet it. */
void dkv__conn_accept(struct dkv_server *s);
/* Close c; it is freed when its handle is closed. */
void dkv__conn_close(struct dkv_conn *c);
/* The node is in sync: run c's requests that waited for it. */
void dkv__conn_unpark(struct dkv_conn *c);
/* Whether c's output must wait for the log or the fence. */
bool dkv__conn_must_hold(const struct dkv_conn *c);
/* Output queued but not yet written, bytes. */
size_t dkv__conn_backlog(const struct dkv_conn *c);
/* Whether the connection can take more stream output now. */
bool dkv__conn_has_room(const struct dkv_conn *c);

/* ---- streams ---- */

struct dkv_stream *dkv__stream_new(struct dkv_conn *c, uint64_t seq,
				   const struct dkv_stream_ops *ops, void *state);
/* Whether the window allows one more message. */
bool dkv__stream_can_send(const struct dkv_stream *st);
/* Begin a stream message (adds seq and wseq, counted). */
void dkv__stream_msg_begin(struct dkv_stream *st, struct dkv_reply *r);
/* Send {state: s} as a stream message. */
void dkv__stream_state(struct dkv_stream *st, const char *state);
/* Send "end" and retire the stream. */
void dkv__stream_end(struct dkv_stream *st);
/* Answer the request of a stream that only waited for an outcome: one
 * reply {error: error} or {result: true}, with seq and tock; then retire
 * the stream.  error NULL: success. */
void dkv__stream_answer(struct dkv_stream *st, const char *error);
/* Retire without sending anything more. */
void dkv__stream_cancel(struct dkv_stream *st);
/* Run the stream's pump if it has room; retire it when done. */
void dkv__stream_pump(struct dkv_stream *st);
struct dkv_stream *dkv__stream_find(struct dkv_conn *c, uint64_t seq);

/* ---- the actions (proto.c) ---- */

/* Handle one decoded request (not hello/ack). */
void dkv__proto_dispatch(struct dkv_conn *c, const struct dkv_msg *m);
/* The greeting sent when a client connects. */
void dkv__proto_greeting(struct dkv_conn *c);

/* ---- the cluster's actions (repl.c) ---- */

/* Each returns 0, or a negative errno with a sentence in err. */
int dkv__act_repl(struct dkv_conn *c, const struct dkv_msg *m, char *err, size_t errlen);
int dkv__act_msg_send(struct dkv_conn *c, const struct dkv_msg *m, char *err, size_t errlen);
int dkv__act_msg_monitor(struct dkv_conn *c, const struct dkv_msg *m, char *err, size_t errlen);
/* The server closes: stop replication streams' timers and hook. */
void dkv__repl_close(struct dkv_server *s);

#endif /* DKV_NET_H */
