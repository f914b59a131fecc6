/*
 * cluster.h - a node's place in a distkv network: Serf for who is alive
 * and where, direct TCP links to every peer for the data.
 *
 * The design (doc/cluster.md):
 *  - Every server publishes its client address in a Serf tag of its
 *    agent, "dkv:ROOT:NODE" = "host:port".  The member list and member
 *    events give the peers of the same network (same ROOT).
 *  - Each node connects to every live peer's client port and sends the
 *    `repl` request: "here is every tick I have seen; send me what I
 *    lack, then every change you make".  The peer answers with records in
 *    the change-log format (doc/formats.md), then its node state, then
 *    its local changes as they happen, and every half second the highest
 *    tick it knows of each node.
 *  - Records are applied through dkv_engine_apply (DKV_SRC_REMOTE) by the
 *    chain rules, so arrival order and duplicates do not matter.
 *  - Gaps (ticks of a node that others report and we lack) are fetched
 *    with a one-shot `repl` from a peer after a grace period.  Serf user
 *    events carry only small tick announcements, rate-limited.
 *  - Tombstones are dropped once every known node has seen them.
 *  - A peer whose greeting asks for a login gets one before `repl`, with
 *    o->auth (connect.auth); a link that cannot log in keeps retrying,
 *    and does not count as "no peer reachable" at the start.
 *
 * Everything here runs on the server's loop thread.
 */
#ifndef DKV_CLUSTER_H
#define DKV_CLUSTER_H

#include "engine.h"
#include "server.h"

#include <uv.h>

struct dkv_cluster;
struct dkv_auth_spec;
struct serf_client;

struct dkv_cluster_opts {
	const char *root;       /* server.root: the network's name */
	const char *serf_host;  /* the local agent's RPC address */
	unsigned serf_port;
	const char *serf_auth;  /* its RPC auth key, or NULL */
	const char *advertise;  /* "host:port" where peers reach our client port */
	const char *const *join; /* gossip addresses to join once subscribed */
	const struct dkv_auth_spec *auth; /* how to log in to peers that ask for it
					   * (connect.auth; no prompt); NULL: none */
	size_t njoin;
	bool ready_now;         /* serve at once (-i): no need to wait for peers */
	unsigned serf_wait_ms;  /* serve alone when no agent answered by then; 0: 5000 */
	unsigned tombstone_ms;  /* how often tombstones are checked; 0: 10000 */
	unsigned forget_s;      /* a node of the data that no agent lists counts as
				 * gone this long after the start; 0: 86400 */
	int verbose;            /* < 0: no messages on stderr */
	void (*on_ready)(void *arg); /* called once when the node gets in sync */
	void *arg;
};

/* Start: connect to the agent, publish our tag, find the peers, sync.
 * The server srv is set unready until the first sync completes unless
 * o->ready_now (or no peer is alive).  Strings are copied. */
int dkv_cluster_new(struct dkv_cluster **out, uv_loop_t *loop, struct dkv_engine *e,
		    struct dkv_server *srv, const struct dkv_cluster_opts *o, char *err,
		    size_t errlen);
/* Withdraw our tag, close links and the agent connection; cb (may be
 * NULL) runs when everything is closed and cl is freed.  cl NULL: cb runs
 * at once. */
void dkv_cluster_close(struct dkv_cluster *cl, void (*cb)(void *arg), void *arg);

const char *dkv_cluster_root(const struct dkv_cluster *cl);
/* The agent connection, for user messages (msg_send, msg_monitor);
 * NULL when not connected. */
struct serf_client *dkv_cluster_serf(struct dkv_cluster *cl);
/* The state for `get_state`: a msgpack map {root, ready, serf, peers,
 * conflicts, ...}. */
void dkv_cluster_encode_info(struct dkv_cluster *cl, struct dkv_buf *out);
/* For `get_state`'s remote_missing: node -> the ticks some peer may
 * still lack (past the end of its gap-free run, as it last reported). */
void dkv_cluster_encode_remote_missing(struct dkv_cluster *cl, struct dkv_buf *out);

#endif
