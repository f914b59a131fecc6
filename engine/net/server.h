/*
 * server.h - the client-protocol server: DistKV's msgpack protocol over
 * TCP on a libuv loop.  Every request becomes an engine call; the server
 * itself keeps no data beyond connections and their streams.
 */
#ifndef DKV_SERVER_H
#define DKV_SERVER_H

#include "engine.h"

#include <uv.h>

struct dkv_logger;

struct dkv_server_opts {
	const char *host;      /* server.bind_default.host */
	int port;              /* server.bind_default.port; 0 picks a free port */
	size_t max_msg_size;   /* largest request accepted, bytes */
	size_t max_out_buffer; /* unsent reply bytes per connection before it is throttled */
	unsigned qlen;         /* server.buffer: the largest stream window offered */
	size_t max_watch_queue; /* events held for a watcher that does not ack */
	const char *version;   /* sent in the greeting; NULL: our own */
	struct dkv_logger *logger; /* change logs (log.h); NULL: `log` and `save` refused */
	bool unready;          /* start not in sync: data requests wait (dkv_server_set_ready) */
};

struct dkv_server;

/* Create the server and start listening.  On error nothing is left open
 * and *out is NULL; the message in err names host and port. */
int dkv_server_new(struct dkv_server **out, uv_loop_t *loop, struct dkv_engine *e,
		   const struct dkv_server_opts *opts, char *err, size_t errlen);
/* The port actually bound (useful with port 0). */
int dkv_server_port(const struct dkv_server *s);
size_t dkv_server_conn_count(const struct dkv_server *s);
/* Whether data requests are answered.  A node that must first download
 * the state from its peers starts unready: its clients' data requests
 * wait (their connections stop reading) until it is set ready. */
void dkv_server_set_ready(struct dkv_server *s, bool ready);
bool dkv_server_ready(const struct dkv_server *s);
/* The cluster this server belongs to (cluster.h), for `get_state`,
 * `repl` and messages; NULL: standalone. */
struct dkv_cluster;
void dkv_server_set_cluster(struct dkv_server *s, struct dkv_cluster *cl);
/*
 * A fence: something replies wait for besides the change log.  The mounted
 * tree is one: a reply is written only after the kernel's caches of the
 * mount are rid of what the changes made before it made stale, so that
 * the next read through the mount shows them (fs/notify.c).  need() is the
 * number a reply produced now must wait for (0: nothing), passed(n)
 * whether that point is reached; both run on the loop.  The fence's owner
 * calls dkv_server_fence_moved() on the loop whenever passed() may have
 * become true for more numbers.
 */
struct dkv_fence {
	uint64_t (*need)(void *arg);
	bool (*passed)(void *arg, uint64_t n);
	void *arg;
};
/* Set the fence (NULL: none; held replies then go). */
void dkv_server_set_fence(struct dkv_server *s, const struct dkv_fence *f);
/* On the loop: the fence moved; write the output it held back.  (A void
 * pointer, so that it can be a callback.) */
void dkv_server_fence_moved(void *server);
/* Close the listener and every connection; cb (may be NULL) runs when
 * all handles are closed and the server is freed.  s NULL: cb runs at
 * once (so a cleanup tail needs no test). */
void dkv_server_close(struct dkv_server *s, void (*cb)(void *arg), void *arg);

#endif
