/*
 * internal.h - what the files of serf/ share and nobody else sees.
 *
 * codec.c is the only file that includes <msgpack.h>: it writes requests
 * into a serf__buf and splits the agent's byte stream into messages, which
 * it decodes into the public structs of serf.h.  client.c owns the
 * connection and the dispatch, request.c the plain requests, stream.c the
 * streams and queries.
 */
#ifndef SERF_INTERNAL_H
#define SERF_INTERNAL_H

#include "serf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- a growable byte buffer ---- */

struct serf__buf {
	char *data;
	size_t len;
	size_t cap;
	bool failed; /* an append ran out of memory; contents are incomplete */
};

void serf__buf_release(struct serf__buf *b);
int serf__buf_append(struct serf__buf *b, const void *p, size_t n);

/* ---- writing requests (codec.c) ---- */

/* Each appends msgpack to b; an error sticks in b->failed. */
/* The request header {Command, Seq}. */
void serf__enc_header(struct serf__buf *b, const char *command, uint64_t seq);
void serf__enc_map(struct serf__buf *b, size_t n);
void serf__enc_array(struct serf__buf *b, size_t n);
void serf__enc_str(struct serf__buf *b, const char *s);
void serf__enc_bin(struct serf__buf *b, const void *p, size_t n);
void serf__enc_uint(struct serf__buf *b, uint64_t v);
void serf__enc_int(struct serf__buf *b, int64_t v);
void serf__enc_bool(struct serf__buf *b, bool v);
/* {key: value, ...} from tags[0..n) */
void serf__enc_tags(struct serf__buf *b, const struct serf_tag *tags, size_t n);
/* [s, ...] from strs[0..n) */
void serf__enc_strs(struct serf__buf *b, const char *const *strs, size_t n);

/* ---- reading the agent's messages (codec.c) ---- */

/* The agent's messages are msgpack maps back to back.  A response header
 * is a map of exactly Seq and Error; anything else is the body that goes
 * with the header before it.  No body has both keys, so the stream can be
 * split without knowing which requests have a body. */
struct serf__msg {
	bool is_header;
	uint64_t seq;      /* header */
	const char *error; /* header: the agent's error text, "" for none */
	const void *obj;   /* body: the msgpack object, for serf__decode_* */
	void *zone;        /* where decoded data is allocated */
};

struct serf__reader;

/* The largest message we accept, bytes: far more than any member list. */
#define SERF__MAX_MSG (64u << 20)

int serf__reader_new(struct serf__reader **out);
void serf__reader_free(struct serf__reader *r); /* accepts NULL */
/* Where the next bytes from the socket go. */
int serf__reader_space(struct serf__reader *r, size_t want, char **p, size_t *len);
void serf__reader_fill(struct serf__reader *r, size_t n);
/* The next complete message: 1 with *m set, 0 when more bytes are needed,
 * -EPROTO (garbage, or a message over SERF__MAX_MSG), -ENOMEM.  *m and
 * everything decoded from it stay valid until the next call. */
int serf__reader_next(struct serf__reader *r, struct serf__msg *m);

/* Decode a body into the public structs; memory comes from the message
 * and lives as long as it.  -EPROTO when the shape is wrong. */
int serf__decode_members(const struct serf__msg *m, const struct serf_member **out, size_t *n);
int serf__decode_join(const struct serf__msg *m, int *num);
int serf__decode_stats(const struct serf__msg *m, const struct serf_stat **out, size_t *n);
/* A stream record; *agent_id is the query ID the agent assigned. */
int serf__decode_record(const struct serf__msg *m, struct serf_record *rec, uint64_t *agent_id);
int serf__decode_query_reply(const struct serf__msg *m, struct serf_query_reply *r);

/* ---- the client, as request.c and stream.c see it (client.c) ---- */

enum serf__req_kind {
	SERF__REQ_HANDSHAKE,
	SERF__REQ_AUTH,
	SERF__REQ_STATUS,  /* answer: header only */
	SERF__REQ_MEMBERS, /* answer: header + {Members} */
	SERF__REQ_JOIN,    /* answer: header + {Num} */
	SERF__REQ_STATS,   /* answer: header + map of maps */
	SERF__REQ_STOP,    /* internal stop of a stream; no callback */
};

struct serf__req {
	struct serf__req *next, *prev;
	uint64_t seq;
	enum serf__req_kind kind;
	bool got_header;  /* the header came; waiting for the body */
	char *agent_err;  /* the header's error text, when got_header */
	union {
		serf_status_cb status;
		serf_members_cb members;
		serf_join_cb join;
		serf_stats_cb stats;
	} cb;
	void *arg;
};

/* A stream or an outgoing query: subscribed by one request, then answered
 * with records tagged with that request's seq. */
struct serf_stream {
	struct serf_stream *next, *prev;
	struct serf_client *c;
	bool is_query;
	bool acked;     /* the agent confirmed the current subscription */
	bool stopping;  /* serf_stream_stop was called, or the stream failed */
	int final_status; /* for the last call when stopping: 0 or -ENOMEM */
	uint64_t seq;   /* of the current subscription; 0: none */
	char *filter;   /* stream */
	serf_stream_cb cb;
	serf_query_cb qcb;
	void *arg;
};

struct serf__reqs {
	struct serf__req *head, *tail;
};

struct serf__streams {
	struct serf_stream *head, *tail;
};

/* Preconditions shared by every request: 0, -ESHUTDOWN or -ENOTCONN. */
int serf__client_check(const struct serf_client *c);
/* A fresh sequence number. */
uint64_t serf__client_seq(struct serf_client *c);
/* The buffer to encode the next request into. */
struct serf__buf *serf__client_out(struct serf_client *c);
/* Send what was encoded into serf__client_out since the last send.  When
 * req is not NULL it is registered to receive the answer; it must be
 * malloc'ed and belongs to the client from here on, also on failure. */
int serf__client_send(struct serf_client *c, struct serf__req *req);
/* Drop what was encoded since the last send (after an encoding error). */
void serf__client_unsend(struct serf_client *c);
/* The generation of the current connection, for query IDs. */
uint32_t serf__client_gen(const struct serf_client *c);
/* The client's streams and queries. */
struct serf__streams *serf__client_streams(struct serf_client *c);
/* Ask the loop to call serf__stream_run_deferred soon. */
void serf__client_defer(struct serf_client *c);

/* ---- streams and queries (stream.c) ---- */

/* Subscribe every stream that is not subscribed (after a connection). */
void serf__streams_subscribe(struct serf_client *c);
/* A header with this seq arrived: returns 1 when it belongs to a stream
 * or query (and *want_body says whether a record body follows), 0 when it
 * does not. */
int serf__stream_header(struct serf_client *c, uint64_t seq, const char *error, bool *want_body);
/* The record body for the stream or query with this seq; -EPROTO when it
 * cannot be decoded (the connection is then dropped). */
int serf__stream_body(struct serf_client *c, uint64_t seq, const struct serf__msg *m);
/* The connection is gone: queries end with status, streams wait for the
 * next connection. */
void serf__streams_disconnected(struct serf_client *c, int status);
/* The client is closing: every stream and query gets its last call. */
void serf__streams_cancel(struct serf_client *c);
/* Give stopped streams their last call. */
void serf__stream_run_deferred(struct serf_client *c);

/* Query IDs handed to the user: connection generation (24 bits) and the
 * agent's ID (40 bits), so an answer cannot reach a later connection's
 * query with the same agent ID. */
#define SERF__ID_BITS 40
#define SERF__ID_MASK ((UINT64_C(1) << SERF__ID_BITS) - 1)
#define SERF__GEN_MASK 0xffffffu

/* ---- intrusive lists ---- */

static inline void serf__reqs_push(struct serf__reqs *l, struct serf__req *e)
{
	e->next = NULL;
	e->prev = l->tail;
	if (l->tail)
		l->tail->next = e;
	else
		l->head = e;
	l->tail = e;
}

static inline void serf__reqs_remove(struct serf__reqs *l, struct serf__req *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		l->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		l->tail = e->prev;
	e->next = e->prev = NULL;
}

static inline void serf__streams_push(struct serf__streams *l, struct serf_stream *e)
{
	e->next = NULL;
	e->prev = l->tail;
	if (l->tail)
		l->tail->next = e;
	else
		l->head = e;
	l->tail = e;
}

static inline void serf__streams_remove(struct serf__streams *l, struct serf_stream *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		l->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		l->tail = e->prev;
	e->next = e->prev = NULL;
}

#endif
