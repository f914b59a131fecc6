/*
 * cluster_int.h - what the files of the cluster share, and nothing else:
 * the cluster object, the peer table, and the dkv__ functions they call
 * across.  Included only by cluster.c (life cycle, readiness, `internal
 * state`), peer.c (the data links), membership.c (Serf) and ticker.c (the
 * periodic timer); the rest of engine/net/ sees cluster.h.  Everything
 * here runs on the server's loop thread.
 */
#ifndef DKV_CLUSTER_INT_H
#define DKV_CLUSTER_INT_H

#include "cluster.h"
#include "progress.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define ANNOUNCE_BURST 2.0     /* Serf announcements: token bucket */
#define ANNOUNCE_RATE 1.0      /* per second */

/* PS_LOGIN: greeted, logging in as the peer's greeting asks (connect.auth) */
enum peer_state { PS_IDLE, PS_CONNECTING, PS_LOGIN, PS_SYNCING, PS_LIVE, PS_DOWN };

struct link;

struct report {
	uint64_t tick;   /* highest tick the peer knows of a node */
	uint64_t prefix; /* every tick up to this one it has seen */
};

struct peer {
	struct peer *next;
	struct dkv_cluster *cl;
	char *name;
	char *addr;           /* "host:port" from its tag */
	char *member;         /* the Serf member carrying the tag */
	char status[12];      /* the member's status: alive, failed, left, ... */
	bool tagged;          /* the tag is there now */
	bool present;         /* its member was in Serf's list and was not reaped
				 since (an agent restart forgets nobody) */
	bool initial;         /* one of the peers we waited for at the start */
	bool initial_failed;
	bool initial_synced;  /* its first download completed before we were ready */
	enum peer_state state;
	struct link *link;
	uv_timer_t retry;
	unsigned backoff_ms;
	uint64_t seq;         /* last request seq used on the link */
	uint64_t live_seq;
	uint64_t repair_seq;  /* 0: no repair running */
	bool synced;          /* the live stream's first part is complete */
	bool refused_logged;
	bool login_blocked;   /* a link failed at the login since the last one
			       * that got through: the peer is there but will
			       * not talk to us, which is no reason to serve
			       * alone (dkv__link_drop; peer.c's on_retry) */
	struct report *rep;   /* by our node idx */
	uint32_t nrep;
	uint64_t records, msgs;
	char last_error[160];
};

struct nodegap;

struct dkv_cluster {
	struct dkv_progress download; /* the state download at the start */
	uv_loop_t *loop;
	struct dkv_engine *e;
	struct dkv_server *srv;
	char *root;
	char *tag_key;        /* "dkv:ROOT:NODE" */
	char *tag_prefix;     /* "dkv:ROOT:" */
	char *tick_event;     /* "ROOT.tick" */
	char *advertise;
	char *serf_where;     /* host:port, for messages */
	char **join;
	size_t njoin;
	struct dkv_auth_spec *auth; /* connect.auth, to log in to peers; NULL: none */
	int verbose;
	unsigned tombstone_ms;
	uint64_t forget_ms;   /* server.tombstone.forget (ticker.c) */
	bool unheard_said;    /* ticker.c said why it keeps the tombstones */
	void (*on_ready)(void *);
	void *on_ready_arg;

	struct serf_client *serf;
	bool serf_ok;
	bool serf_ever;
	bool joined;          /* the --join request was answered */
	bool members_known;   /* a member list came after the join */
	bool decided;         /* dkv__cluster_start_decision chose whom to wait for */
	bool wait_all;        /* ready only when every peer waited for has answered
			       * (a node without state of its own; cluster.c) */
	char serf_state[160];
	char **agents;        /* gossip addresses of agents seen, to rejoin */
	size_t nagents;

	struct peer *peers;   /* the peer table (peer.c) */
	bool ready;
	uint64_t started_ms;
	uv_timer_t timer;     /* ticker.c's rounds */
	uv_timer_t serf_wait; /* membership.c: serve alone when no agent answers */
	uint64_t last_purge_ms; /* ticker.c: when tombstones were last checked */
	double tokens;        /* ticker.c's announcement bucket */
	uint64_t tokens_ms;
	uint64_t announced;
	struct nodegap *gaps; /* ticker.c's, one per node, by index */
	uint32_t ngaps;
	uint64_t conflicts;   /* counted by peer.c as records are applied */
	uint64_t conflicts_logged_ms;
	uint64_t conflicts_unlogged;
	uint64_t purged;      /* tombstones dropped (ticker.c) */

	bool closing;
	unsigned nhandles;
	bool serf_closed;
	uv_timer_t close_guard;
	void (*close_cb)(void *);
	void *close_arg;
};

struct serf_record;
struct serf_stream;

/* ---- messages, readiness at the start (cluster.c) ---- */

/* A line on stderr, "distkv: ..."; nothing when verbose < 0. */
void dkv__cluster_say(struct dkv_cluster *cl, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* The loop's time, ms. */
uint64_t dkv__cluster_now_ms(struct dkv_cluster *cl);
/* The node is in sync (why says how, for the log): answer clients.  Once;
 * not while closing. */
void dkv__cluster_set_ready(struct dkv_cluster *cl, const char *why);
/* A peer we waited for at the start failed or completed its download:
 * serve once none is left to wait for (or, for a node with state of its
 * own, once one download completed). */
void dkv__cluster_check_initial(struct dkv_cluster *cl);
/* The member list is known: decide whom to wait for. */
void dkv__cluster_start_decision(struct dkv_cluster *cl);

/* ---- the peer table and the links (peer.c) ---- */

/* The peer called name, or NULL. */
struct peer *dkv__peer_find(struct dkv_cluster *cl, const char *name, size_t len);
/* The peer called name, added (without a link) if it is new. */
struct peer *dkv__peer_get(struct dkv_cluster *cl, const char *name, size_t len);
/* What p reported of the node with index idx; zeros until it does. */
struct report *dkv__peer_report(struct peer *p, uint32_t idx);
/* Whether p has its tag and Serf says its agent is alive. */
bool dkv__peer_alive(const struct peer *p);
/* Open a link to p unless it has one, has no address, or we are closing. */
void dkv__peer_connect(struct peer *p);
/* Drop the link (if any) and say why (NULL: nothing to say); retry
 * later unless the cluster is closing. */
void dkv__link_drop(struct peer *p, const char *why);
/* Ask for what we lack: live (then the peer's changes go on), or once.
 * Returns the request's seq. */
uint64_t dkv__peer_send_repl(struct peer *p, bool live);

/* ---- Serf: members, tags, events (membership.c) ---- */

/* The Serf client's callbacks (serf.h): the connection to the agent, the
 * event stream, and the timer that stops waiting for an agent. */
void dkv__cluster_on_serf_state(struct serf_client *c, int status, const char *msg, void *arg);
void dkv__cluster_on_serf_event(struct serf_client *c, struct serf_stream *s, int status,
				const struct serf_record *rec, void *arg);
void dkv__cluster_on_serf_wait(uv_timer_t *h);

/* ---- the timer: announcements, gaps, tombstones (ticker.c) ---- */

/* Every TIMER_MS (cluster.c starts it). */
void dkv__cluster_on_timer(uv_timer_t *h);
/* The end of the gap-free run of n's ticks that this node has seen. */
uint64_t dkv__seen_prefix(const struct dkv_node *n);
/* A node of the data that is no peer of this run, while it may still come
 * back (tombstones wait for it); NULL when there is none. */
const struct dkv_node *dkv__cluster_unheard(struct dkv_cluster *cl, uint64_t now);

#endif /* DKV_CLUSTER_INT_H */
