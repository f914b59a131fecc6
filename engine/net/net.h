/*
 * net.h - what the files of engine/net/ share, and nothing else: the
 * server and its connections, requests, replies and streams, the action
 * handlers.  Every internal (dkv__) function of engine/net/ is declared
 * here, once, except those only the cluster's files call (cluster_int.h).
 * Public calls are in server.h, cluster.h and client.h.
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
/* A client's request may hold no string that is not UTF-8 (doc/protocol.md,
 * "Text is UTF-8"): -EINVAL with a reason in err naming the field when a
 * key or value holds one.  p[0..len) is the message m was decoded from.  The path is left out: its elements are named
 * exactly in every text form (the colon notation's :u), so entries that
 * came with such a name from an old log or a peer can still be read and
 * deleted. */
int dkv__msg_check_text(const struct dkv_msg *m, const uint8_t *p, size_t len, char *err,
			size_t errlen);

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
	struct dkv_hasher *hasher; /* password hashing (act_auth.c); NULL until first used */
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
	struct dkv_session sess;    /* who is asking */
	struct dkv__authwait *authwaits; /* requests waiting for the hashing thread */
	bool has_key;               /* auth_pk/auth_sk made (auth_key) */
	uint8_t auth_pk[32], auth_sk[32]; /* the connection's key for sealed passwords */
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
/* The same with the field etype: the error's class for the client
 * ("ClientAuthRequiredError"). */
void dkv__reply_error_etype(struct dkv_conn *c, const struct dkv_msg *m, const char *etype,
			    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
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

/* ---- requests (decode.c) ---- */

/* One request being handled: what a handler gets. */
struct dkv_req {
	struct dkv_conn *c;
	const struct dkv_msg *m;
	struct dkv_engine *e;
	struct dkv_session *sess; /* the connection's */
	unsigned mode;            /* DKV_ACL_* its action needs (the table's) */
	char err[512];            /* the reply's error, set by whatever failed */
};

/* Field getters: 0, or -EINVAL with the reason in q->err.  A missing
 * field gives the default. */
int dkv__req_bad_field(struct dkv_req *q, const char *key, const char *want);
/* An integer (or a bool, which old clients send for nchain). */
int dkv__req_int(struct dkv_req *q, const char *key, int64_t dflt, int64_t *out);
int dkv__req_bool(struct dkv_req *q, const char *key, bool *out);
/* The field "chain" as a precondition (ch->pre, pre_node, pre_tick;
 * pre_node points into the request). */
int dkv__req_precond(struct dkv_req *q, struct dkv_change *ch);
/* The request's path.  Every action that takes a path needs one (empty
 * for the root), so a client that forgot it cannot touch the root. */
int dkv__req_path(struct dkv_req *q, struct dkv_path *p);
/* p for a message, shortened when long. */
void dkv__describe_path(const struct dkv_path *p, char *buf, size_t len);
/* The entry at p (internal: below None) if the session may use it with
 * q->mode: 0 with *out (NULL when there is none), or an error with the
 * reason in q->err. */
int dkv__req_lookup(struct dkv_req *q, const struct dkv_path *p, bool internal,
		    struct dkv_entry **out);

/* Reply fields every action sends. */
void dkv__reply_seq(struct dkv_reply *r, const struct dkv_msg *m);
/* tock 0: the engine's next tock. */
void dkv__reply_tock(struct dkv_reply *r, struct dkv_engine *e, uint64_t tock);
/* A reply with just {result: v}. */
void dkv__reply_result_bool(struct dkv_req *q, bool v);

/* ---- the action table (proto.c) ---- */

/*
 * One row per action: its handler, the access mode the session needs on
 * the request's path (the handler passes it to the engine, which checks:
 * dkv_session_check), and whether it runs before the node is in sync with
 * its peers (replication itself, and what only describes the node; the
 * others wait: dkv_server_set_ready).  New action families add rows and
 * an act_*.c file of their own.
 */
struct dkv__action {
	const char *name;
	int (*fn)(struct dkv_req *q);
	unsigned mode; /* DKV_ACL_* */
	bool unready;  /* answered before the node is in sync */
	bool nologin;  /* answered before the connection has logged in */
};

/* The table's row for an action name, or NULL. */
const struct dkv__action *dkv__proto_action(const uint8_t *name, size_t len);
/* Handle one decoded request (not hello/ack).  false: it must wait until
 * the node is in sync (nothing was done). */
bool dkv__proto_dispatch(struct dkv_conn *c, const struct dkv_msg *m);
/* The greeting sent when a client connects. */
void dkv__proto_greeting(struct dkv_conn *c);

/* The handlers, by family.  Each returns 0 once it has replied (or
 * started a stream), or an error with the reason in q->err (empty: the
 * error's own message), which the dispatcher sends. */
int dkv__act_get_value(struct dkv_req *q);      /* act_data.c */
int dkv__act_get_internal(struct dkv_req *q);
int dkv__act_set_value(struct dkv_req *q);
int dkv__act_delete_value(struct dkv_req *q);
int dkv__act_set_internal(struct dkv_req *q);
int dkv__act_delete_internal(struct dkv_req *q);
int dkv__act_enum(struct dkv_req *q);
int dkv__act_enum_internal(struct dkv_req *q);
int dkv__act_get_tree(struct dkv_req *q);       /* act_tree.c */
int dkv__act_get_tree_internal(struct dkv_req *q);
int dkv__act_delete_tree(struct dkv_req *q);
int dkv__act_watch(struct dkv_req *q);          /* act_watch.c */
int dkv__act_stop(struct dkv_req *q);
int dkv__act_log(struct dkv_req *q);            /* act_log.c */
int dkv__act_save(struct dkv_req *q);
int dkv__act_get_state(struct dkv_req *q);      /* act_state.c */
int dkv__act_get_tock(struct dkv_req *q);
int dkv__act_auth(struct dkv_req *q);           /* act_auth.c */
int dkv__act_auth_key(struct dkv_req *q);
int dkv__act_auth_info(struct dkv_req *q);
int dkv__act_auth_list(struct dkv_req *q);
int dkv__act_auth_get(struct dkv_req *q);
int dkv__act_auth_set(struct dkv_req *q);
int dkv__act_set_auth_typ(struct dkv_req *q);
int dkv__act_test_acl(struct dkv_req *q);
/* The connection closes: forget its waiting logins, its key and its user. */
void dkv__auth_conn_gone(struct dkv_conn *c);
int dkv__act_repl(struct dkv_req *q);           /* repl.c */
int dkv__act_msg_send(struct dkv_req *q);
int dkv__act_msg_monitor(struct dkv_req *q);

/* The server closes: stop replication streams' timers and hook. */
void dkv__repl_close(struct dkv_server *s);

/* ---- walking a subtree for a stream (walker.c) ---- */

/* A path kept as elements with their offsets, for cheap push/pop. */
struct dkv__pstack {
	struct dkv_buf enc;
	size_t *off; /* start of each element in enc */
	uint32_t n, cap;
};

void dkv__pstack_push(struct dkv__pstack *s, const uint8_t *e, size_t len);
void dkv__pstack_pop(struct dkv__pstack *s);
size_t dkv__pstack_elen(const struct dkv__pstack *s, uint32_t i);
void dkv__pstack_set(struct dkv__pstack *dst, const struct dkv__pstack *src);
void dkv__pstack_release(struct dkv__pstack *s);

struct dkv__walker {
	struct dkv_entry *top;   /* pinned */
	struct dkv_entry *cur;   /* pinned; NULL before the first step */
	struct dkv__pstack path; /* cur's path relative to top */
	struct dkv__pstack last; /* the last path sent, for depth compression */
	int64_t nchain, min_depth, max_depth;
	bool empty;
	bool skip_meta;          /* top is the root: hide the None subtree */
	bool done;
	bool prune;              /* the next step does not go below cur */
	struct dkv_session *sess; /* bound by a rule: filter by it; else NULL */
	struct dkv_session *conv; /* has a converter: encode values by it; else NULL */
	bool failed;             /* a codec failed: the error ended the stream */
	struct dkv_buf abs;      /* scratch: top's path from the root, then cur's */
	size_t abs_top;          /* bytes of top's own path in abs */
};

/* Whether w's session may see entry cur's value (and, through w->prune,
 * what is below it).  Only for walkers with a session. */
bool dkv__walker_allows(struct dkv__walker *w);

/* Set w up at top from the request's nchain, min_depth, max_depth and
 * empty fields; pins top. */
int dkv__walker_init(struct dkv_req *q, struct dkv__walker *w, struct dkv_entry *top);
/* Advance to the next entry (parents first), keeping path and pins
 * right; NULL at the end. */
struct dkv_entry *dkv__walker_step(struct dkv_engine *e, struct dkv__walker *w);
/* Send entries while the window allows; true when the walk is complete
 * (or failed: w->failed). */
bool dkv__walker_pump(struct dkv_stream *st, struct dkv__walker *w);
/* Send the entry at path (relative to w's top) with its value as w's
 * session reads it (its converter, codec.h).  false when the codec
 * failed: the error that ends the stream is sent instead, and w->failed
 * and w->done are set. */
bool dkv__walker_send(struct dkv_stream *st, struct dkv__walker *w,
		      const struct dkv__pstack *path, const struct dkv_value *value, uint64_t tock);
void dkv__walker_release(struct dkv_engine *e, struct dkv__walker *w);
/* Send one entry at path (relative), compressing the path against the
 * last one sent. */
void dkv__send_entry(struct dkv_stream *st, struct dkv__pstack *last,
		     const struct dkv__pstack *path, const struct dkv_value *value, uint64_t tock,
		     int64_t nchain);

#endif /* DKV_NET_H */
