/*
 * cluster_int.h - what the files of the cluster share, and nothing else:
 * the cluster object and the peer table.  Included only by cluster.c,
 * peer.c, membership.c and ticker.c; the rest of engine/net/ sees
 * cluster.h.  Everything here runs on the server's loop thread.
 */
#ifndef DKV_CLUSTER_INT_H
#define DKV_CLUSTER_INT_H

#include "cluster.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define ANNOUNCE_BURST 2.0     /* Serf announcements: token bucket */
#define ANNOUNCE_RATE 1.0      /* per second */

enum peer_state { PS_IDLE, PS_CONNECTING, PS_SYNCING, PS_LIVE, PS_DOWN };

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
	bool present;         /* its member is in Serf's list (not reaped) */
	bool initial;         /* one of the peers we waited for at the start */
	bool initial_failed;
	enum peer_state state;
	struct link *link;
	uv_timer_t retry;
	unsigned backoff_ms;
	uint64_t seq;         /* last request seq used on the link */
	uint64_t live_seq;
	uint64_t repair_seq;  /* 0: no repair running */
	bool synced;          /* the live stream's first part is complete */
	bool refused_logged;
	struct report *rep;   /* by our node idx */
	uint32_t nrep;
	uint64_t records, msgs;
	char last_error[160];
};

struct nodegap;

struct dkv_cluster {
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
	int verbose;
	unsigned tombstone_ms;
	void (*on_ready)(void *);
	void *on_ready_arg;

	struct serf_client *serf;
	bool serf_ok;
	bool serf_ever;
	bool joined;          /* the --join request was answered */
	bool members_known;   /* a member list came after the join */
	bool decided;         /* start_decision chose whom to wait for */
	char serf_state[160];
	char **agents;        /* gossip addresses of agents seen, to rejoin */
	size_t nagents;

	struct peer *peers;
	bool ready;
	uint64_t started_ms;
	uv_timer_t timer;
	uv_timer_t serf_wait;
	uint64_t last_purge_ms;
	double tokens;
	uint64_t tokens_ms;
	uint64_t announced;
	struct nodegap *gaps;
	uint32_t ngaps;
	uint64_t conflicts;
	uint64_t conflicts_logged_ms;
	uint64_t conflicts_unlogged;
	uint64_t purged;

	bool closing;
	unsigned nhandles;
	bool serf_closed;
	uv_timer_t close_guard;
	void (*close_cb)(void *);
	void *close_arg;
};

#endif /* DKV_CLUSTER_INT_H */
