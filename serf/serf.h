/*
 * serf.h - a client for the RPC protocol of HashiCorp's Serf agent, on
 * libuv.
 *
 * A serf_client keeps one TCP connection to one local `serf agent`
 * (its -rpc-addr, default 127.0.0.1:7373): handshake, optional auth, then
 * requests and subscriptions.  It knows nothing of what the events mean.
 *
 * The contract, which every function below keeps:
 *
 *  - Everything runs on the client's loop thread; nothing here is
 *    thread-safe.
 *  - Functions return 0 or a negative errno.  When a function that takes a
 *    callback returns an error, the callback is never called.
 *  - Otherwise the callback of a plain request is called exactly once.  A
 *    stream or query callback is called once per record and then exactly
 *    once more with its final status (see serf_stream, serf_query).  A
 *    callback is never called from inside the function that registered it.
 *  - Statuses a callback may see:
 *      0             success
 *      -EREMOTEIO    the agent answered with an error; its text is passed
 *                    as agent_err (NULL otherwise)
 *      -ECONNRESET   the connection to the agent was lost before the
 *                    answer came; the agent may or may not have acted
 *      -ECANCELED    the client was closed first
 *      -EPROTO       the agent's answer did not make sense
 *  - Records, members, strings and payloads handed to a callback are
 *    borrowed: valid only until the callback returns.  Copy what you keep.
 *  - Callbacks may call any function here, including serf_client_close.
 *
 * Connection and reconnection.  serf_client_new returns at once and
 * connects in the background; when the agent goes away (killed, restarted,
 * never started) the client tries again after a pause that starts at
 * retry_min_ms and doubles up to retry_max_ms, for as long as the client
 * lives.  on_state reports each change: status 0 once the client is ready
 * (connected, handshake and auth done), a negative errno when a ready
 * connection is lost or an attempt fails (-ECONNREFUSED, -ETIMEDOUT,
 * -ECONNRESET, -EACCES for a refused auth key, -EPROTO for a refused
 * handshake).  Repeated failures with the same status are reported once.
 *
 * Requests need a ready connection: before on_state reported 0, and after
 * it reported a failure, they return -ENOTCONN (nothing is queued, so
 * nothing stale is sent minutes later).  Requests in flight when the
 * connection drops complete with -ECONNRESET; running queries end with
 * -ECONNRESET.  Streams are different: a stream belongs to the client, not
 * to one connection.  It may be opened at any time, and after every
 * (re)connection the client subscribes it again before it reports
 * on_state(0), so the stream's callback sees SERF_RECORD_STARTED again.
 * Events that happened while the client was not subscribed are lost: treat
 * STARTED after the first as "you may have missed something".
 *
 * Facts about the agent that matter to callers (see doc/serf.md):
 * `event` always succeeds at once, even when the event will never be
 * delivered; the agent drops stream records when the client reads too
 * slowly (512 queued); an invalid regular expression in members_filtered
 * makes the agent drop the connection (-ECONNRESET, then a reconnect).
 */
#ifndef SERF_H
#define SERF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct serf_client;
struct serf_stream;

/* ---- data handed to callbacks (all borrowed) ---- */

struct serf_tag {
	const char *key;
	const char *value;
};

struct serf_member {
	const char *name;
	const char *status;   /* "alive", "leaving", "left", "failed", "none" */
	int family;           /* AF_INET, AF_INET6, or 0 when no address came */
	uint8_t addr[16];     /* 4 or 16 bytes, network order; IPv4-mapped IPv6
				 addresses are given as AF_INET */
	char addr_text[46];   /* the address as text, "" when none */
	uint16_t port;        /* the agent's gossip port (its -bind) */
	const struct serf_tag *tags;
	size_t ntags;
	uint8_t protocol_min, protocol_max, protocol_cur; /* gossip protocol */
	uint8_t delegate_min, delegate_max, delegate_cur; /* serf's own layer */
};

/* The value of tag key of m, or NULL when m has no such tag. */
const char *serf_member_tag(const struct serf_member *m, const char *key);

enum serf_record_type {
	SERF_RECORD_STARTED, /* the agent confirmed the subscription; comes
				again after every reconnection */
	SERF_RECORD_USER,    /* a user event: name, payload, ltime, coalesce */
	SERF_RECORD_MEMBER,  /* member-join/-leave/-failed/-update/-reap: members */
	SERF_RECORD_QUERY,   /* a query to answer with serf_respond(id):
				name, payload, ltime, id */
	SERF_RECORD_OTHER,   /* an event type this library does not know */
};

struct serf_record {
	enum serf_record_type type;
	const char *event;      /* the agent's name for it: "user",
				   "member-join", "query", ...; "" for STARTED */
	uint64_t ltime;         /* Lamport time (USER, QUERY); not unique
				   across senders */
	const char *name;       /* USER, QUERY; "" otherwise */
	const uint8_t *payload; /* USER, QUERY; may be NULL when len is 0 */
	size_t payload_len;
	bool coalesce;          /* USER */
	uint64_t id;            /* QUERY: for serf_respond; valid only until the
				   query's timeout, and only on the connection
				   it came over */
	const struct serf_member *members; /* MEMBER */
	size_t nmembers;
};

enum serf_query_reply_type {
	SERF_QUERY_ACK,      /* from received the query (request_ack only) */
	SERF_QUERY_RESPONSE, /* from answered: payload */
	SERF_QUERY_DONE,     /* the query's time is up; the last call */
};

struct serf_query_reply {
	enum serf_query_reply_type type;
	const char *from;       /* node name; "" for DONE */
	const uint8_t *payload; /* RESPONSE; may be NULL when len is 0 */
	size_t payload_len;
};

struct serf_stat {
	const char *group; /* "agent", "runtime", "serf", "tags", ... */
	const char *key;
	const char *value;
};

/* ---- callbacks ---- */

/* Plain requests (event, tags, leave, force_leave, respond). */
typedef void (*serf_status_cb)(struct serf_client *c, int status, const char *agent_err,
			       void *arg);
/* members, members_filtered: on success m[0..n) is the member list. */
typedef void (*serf_members_cb)(struct serf_client *c, int status, const char *agent_err,
				const struct serf_member *m, size_t n, void *arg);
/* join: num is how many of the addresses the agent joined (also when it
 * reports an error for the others). */
typedef void (*serf_join_cb)(struct serf_client *c, int status, const char *agent_err, int num,
			     void *arg);
/* stats: on success st[0..n), in the agent's order. */
typedef void (*serf_stats_cb)(struct serf_client *c, int status, const char *agent_err,
			      const struct serf_stat *st, size_t n, void *arg);
/* A stream: status 0 with rec != NULL for each record; then exactly once
 * with rec == NULL: status 0 after serf_stream_stop, -EREMOTEIO when the
 * agent refused the subscription (a bad filter), -ECANCELED when the client
 * was closed, -ENOMEM when it could not be subscribed again after a
 * reconnection.  After that last call the handle is gone. */
typedef void (*serf_stream_cb)(struct serf_client *c, struct serf_stream *s, int status,
			       const struct serf_record *rec, void *arg);
/* A query: status 0 with r->type ACK or RESPONSE for each reply, then
 * exactly once either status 0 with r->type DONE, or a negative status with
 * r == NULL (-EREMOTEIO: the agent refused; -ECONNRESET; -ECANCELED). */
typedef void (*serf_query_cb)(struct serf_client *c, int status, const char *agent_err,
			      const struct serf_query_reply *r, void *arg);
/* Connection state changes; msg is one line for a human (borrowed). */
typedef void (*serf_state_cb)(struct serf_client *c, int status, const char *msg, void *arg);
typedef void (*serf_close_cb)(struct serf_client *c, void *arg);

/* ---- the client ---- */

struct serf_client_opts {
	unsigned retry_min_ms;       /* first pause before reconnecting; 0: 100 */
	unsigned retry_max_ms;       /* longest pause; 0: 2000 */
	unsigned connect_timeout_ms; /* name lookup + connect + handshake +
					auth, per attempt; 0: 5000 */
	serf_state_cb on_state;      /* may be NULL */
	void *arg;                   /* passed to on_state and the close cb */
};

/*
 * Start a client for the agent at host:port (a numeric address or a name;
 * for a name the first IPv4 address is tried, else the first address).
 * auth_key: the agent's -rpc-auth key, or NULL.  opts may be NULL.  The
 * client copies what it keeps of all arguments.  On success *out is the
 * client, which is connecting; release it with serf_client_close.
 * Errors: -EINVAL (port out of range, NULL host), -ENOMEM, and whatever
 * libuv reports when it cannot make a timer.
 */
int serf_client_new(struct serf_client **out, uv_loop_t *loop, const char *host, unsigned port,
		    const char *auth_key, const struct serf_client_opts *opts);

/*
 * Close the client: the connection is closed, reconnecting stops, and
 * every outstanding callback (requests, queries, streams) is called with
 * -ECANCELED (a stream that was already stopped gets its 0).  Then cb (may
 * be NULL) is called with opts->arg, and the client's memory is freed right
 * after cb returns.  All of this happens later, from the loop, never
 * inside serf_client_close.  Between the call and cb, requests return
 * -ESHUTDOWN.  Accepts NULL (does nothing); closing twice is an error the
 * second call ignores.
 */
void serf_client_close(struct serf_client *c, serf_close_cb cb);

/* Whether the client is ready to take requests (on_state last said 0). */
bool serf_client_ready(const struct serf_client *c);

/* How many requests wait for their answer (streams and queries not
 * counted).  The agent never pushes back, so a caller that may produce
 * faster than the agent answers should bound this itself. */
size_t serf_client_pending(const struct serf_client *c);

/* The last connection problem as one line, "" when there was none. */
const char *serf_client_errmsg(const struct serf_client *c);

/*
 * Requests.  All return 0 (the callback will be called once), or:
 *   -ENOTCONN   not ready (see above)
 *   -ESHUTDOWN  serf_client_close was called
 *   -EINVAL     a bad argument (NULL where a value is needed)
 *   -ENOMEM
 * A NULL callback is allowed where the type is serf_status_cb.
 */

/* Broadcast a user event.  The agent refuses (-EREMOTEIO) when name +
 * payload exceed its user_event_size_limit (512 bytes by default). */
int serf_event(struct serf_client *c, const char *name, const void *payload, size_t len,
	       bool coalesce, serf_status_cb cb, void *arg);

/* All members the agent knows, including failed and left ones. */
int serf_members(struct serf_client *c, serf_members_cb cb, void *arg);

/* Members whose tags, status and name match: each value is a Go regular
 * expression anchored at both ends; tags/status/name may be NULL/0 for "any".
 * Beware: an invalid expression makes the agent drop the connection. */
int serf_members_filtered(struct serf_client *c, const struct serf_tag *tags, size_t ntags,
			  const char *status, const char *name, serf_members_cb cb, void *arg);

/* Set tags (set[0..nset)) and delete tags (del[0..ndel)) of the agent. */
int serf_tags(struct serf_client *c, const struct serf_tag *set, size_t nset,
	      const char *const *del, size_t ndel, serf_status_cb cb, void *arg);

/* Join the cluster of the agents at addrs ("host:port" of their -bind);
 * replay: also deliver user events from before the join. */
int serf_join(struct serf_client *c, const char *const *addrs, size_t n, bool replay,
	      serf_join_cb cb, void *arg);

/* Leave the cluster gracefully; the agent then shuts down, so the client
 * loses its connection and keeps trying to reconnect until it is closed. */
int serf_leave(struct serf_client *c, serf_status_cb cb, void *arg);

/* Remove a failed node from the cluster. */
int serf_force_leave(struct serf_client *c, const char *node, serf_status_cb cb, void *arg);

/* Answer a query that arrived as a SERF_RECORD_QUERY record.  -ESTALE when
 * the query came over an earlier connection (the agent could not match
 * it); -EREMOTEIO "No pending queries matching ID" after its timeout. */
int serf_respond(struct serf_client *c, uint64_t id, const void *payload, size_t len,
		 serf_status_cb cb, void *arg);

/* The agent's debugging figures. */
int serf_stats(struct serf_client *c, serf_stats_cb cb, void *arg);

struct serf_query_opts {
	const char *const *filter_nodes; /* only these nodes answer */
	size_t nfilter_nodes;
	const struct serf_tag *filter_tags; /* tag -> Go regexp */
	size_t nfilter_tags;
	bool request_ack;    /* ask for SERF_QUERY_ACK replies */
	uint8_t relay_factor; /* responses relayed through this many other
				 nodes as well; 0: none */
	unsigned timeout_ms; /* 0: the agent's default, which grows with the
				cluster (a few seconds on a small one) */
};

/* Ask the cluster a question: cb gets the replies, then DONE at the
 * timeout.  opts may be NULL. */
int serf_query(struct serf_client *c, const char *name, const void *payload, size_t len,
	       const struct serf_query_opts *opts, serf_query_cb cb, void *arg);

/*
 * Subscribe to the events that match filter, the agent's event handler
 * syntax: "*", "user", "user:NAME", "member-join", "member-leave",
 * "member-failed", "member-update", "member-reap", "query",
 * "query:NAME", comma-separated.  Works whether or not the client is ready:
 * the subscription is sent now or on the next connection, and again after
 * every reconnection.  *out (may be NULL) receives the handle, valid until
 * the stream's last callback.  Errors: -ESHUTDOWN, -EINVAL, -ENOMEM.
 */
int serf_stream(struct serf_client *c, const char *filter, serf_stream_cb cb, void *arg,
		struct serf_stream **out);

/* Stop a stream: no records are delivered after this returns; the last
 * callback (status 0, rec NULL) follows from the loop.  -EALREADY when the
 * stream is already stopping. */
int serf_stream_stop(struct serf_stream *s);

#endif
