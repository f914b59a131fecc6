/*
 * client.h - a small blocking client for the DistKV client protocol.
 *
 * Meant for command-line tools and tests: one TCP connection, plain POSIX
 * sockets, one request outstanding at a time.  Requests are msgpack maps;
 * the caller writes the request's key/value pairs (without "seq") with the
 * dkv_mp writer and the library adds the map header and the sequence
 * number.  Replies are handed over as the raw bytes of one msgpack map.
 *
 * Every function returns 0 or a negative errno.  After a failure,
 * dkv_client_errmsg() holds one line for a human:
 *
 *   cannot connect to localhost:27586: Connection refused
 *   ServerError: Entry already exists at one.two      (-EREMOTEIO)
 *   connection closed by server                         (-ECONNRESET)
 *
 * A connection that failed with anything but -EREMOTEIO should be freed;
 * after -EREMOTEIO it stays usable (replies still in flight for the failed
 * request are skipped when they arrive).
 */
#ifndef DKV_CLIENT_H
#define DKV_CLIENT_H

#include "mp.h"

#include <stdint.h>

#define DKV_CLIENT_DEFAULT_PORT 27586

struct dkv_client;
struct dkv_auth_spec;

/* Open a connection and complete the greeting: read the server's map with
 * seq 0 and answer with our queue length.  timeout_s (> 0) bounds name
 * lookup, connect and greeting together.  On success *out is the new
 * client; on failure *out is NULL and, when err is not NULL, err holds
 * the reason, naming host and port. */
int dkv_client_connect(struct dkv_client **out, const char *host, unsigned port, double timeout_s,
		       char *err, size_t errlen);

/* Log in as the greeting asks, right after connecting (auth.h has the
 * spec, doc/protocol.md the exchange).  When the greeting has no `auth`,
 * or its first item is nil, no login is needed: 0 at once, whatever sp
 * says, and nothing is sent.  Otherwise sp (NULL: none given) must name
 * the method the server wants:
 *
 *   -EACCES     no login given (sp NULL or method root): errmsg is
 *               "ClientAuthRequiredError: You need to log in using: M";
 *               or another method than M: "ClientAuthMethodError: You
 *               cannot use 'X' auth; the server wants M"
 *   -EINVAL     a password spec without its password (a prompt must be
 *               answered by the caller first, into sp->password)
 *   -EREMOTEIO  the server refused the login (its words in errmsg)
 *   -EPROTO     the greeting's auth, or auth_key's answer, is malformed
 *
 * or a connection error.  `_test` is one request, `auth`; `password`
 * first asks `auth_key` and seals the password to that key, so it never
 * crosses the wire in clear.  After -EACCES and -EINVAL nothing was sent
 * and the connection may be used (the server will refuse it). */
int dkv_client_login(struct dkv_client *c, const struct dkv_auth_spec *sp);
/* The method the greeting asks logins to use, into buf: 1; 0 when no
 * login is needed; -EPROTO when the greeting's auth is malformed. */
int dkv_client_auth_wanted(struct dkv_client *c, char *buf, size_t cap);

/* Close the connection and free everything; accepts NULL. */
void dkv_client_free(struct dkv_client *c);

/* The last error as one line (empty when there was none). */
const char *dkv_client_errmsg(const struct dkv_client *c);

/* The server's greeting map (version, node, tick, tock, qlen, maybe auth). */
void dkv_client_greeting(const struct dkv_client *c, const uint8_t **map, size_t *len);

/* Bound the wait for each reply of later requests; 0 (the default) waits
 * forever.  Streams use it per item, not for the whole stream. */
void dkv_client_set_timeout(struct dkv_client *c, double timeout_s);

/* Send one request and wait for its single reply, which replaces the
 * contents of *reply (all fields, including seq).  fields[0..len) holds
 * nfields key/value pairs.  -EREMOTEIO when the reply carries "error";
 * -EPROTO when the server answers with a stream. */
int dkv_client_call(struct dkv_client *c, const uint8_t *fields, size_t len, uint32_t nfields,
		    struct dkv_buf *reply);

/* Called for each reply of a stream: map[0..len) is valid only during the
 * call.  Return 0 to go on; anything else ends the stream early and is
 * returned by dkv_client_stream(). */
typedef int (*dkv_client_cb)(void *arg, const uint8_t *map, size_t len);

/* Send one request whose answer may be a stream: "state: start", items,
 * "state: end".  Every item and every other state message ("uptodate")
 * goes to cb; start and end do not.  If the server answers with a single
 * reply instead, that reply goes to cb and the call returns.  Items are
 * acknowledged as the server's flow control expects.  Returns 0 after the
 * end of the stream, the callback's non-zero result, -EREMOTEIO when a
 * reply carries "error" (no further callbacks), or a connection error.
 * When this function returns an error, the callback is not called again
 * for this request. */
int dkv_client_stream(struct dkv_client *c, const uint8_t *fields, size_t len, uint32_t nfields,
		      dkv_client_cb cb, void *arg);

/* ---- full paths from a stream's replies ----
 *
 * The replies of get_tree, watch and delete_tree carry their paths
 * depth-compressed: "depth" says how many elements of the previous
 * reply's path come first (none when it is missing), and "path" holds the
 * elements that follow.  Paths are relative to the request's path.  Feed
 * every reply of one stream, in order, to dkv_client_path_update; after
 * each, the struct holds that reply's path:
 *
 *   depth 0, path [a, b]  ->  a b
 *   depth 2, path [c]     ->  a b c
 *   depth 1, path [d]     ->  a d
 */
struct dkv_client_path {
	struct dkv_buf enc; /* the elements' encodings back to back */
	size_t *offs;       /* offs[i]: where element i starts in enc; offs[n] == enc.len
			       (NULL before the first update) */
	uint32_t n;         /* elements in enc */
	uint32_t kept;      /* of these, how many the last update kept from the path
			       before (the first ones); the others are new */
	uint32_t cap;       /* room in offs */
};

/* An all-zero struct is initialised as well. */
void dkv_client_path_init(struct dkv_client_path *p);
/* Free what p holds; p is empty again. */
void dkv_client_path_release(struct dkv_client_path *p);
/* Take the path of the reply map[0..len).  0 on success; -ENOENT when the
 * reply has no "path" (state messages such as "uptodate"), p unchanged;
 * -EINVAL or -E2BIG when "path" is not a path: p then holds the elements
 * kept from the path before.  A "depth" greater than the path before is
 * taken as all of it. */
int dkv_client_path_update(struct dkv_client_path *p, const uint8_t *map, size_t len);

/* Find key in the msgpack map at map[0..len): *val and *vlen get the raw
 * encoding of its value.  -ENOENT if absent, -EBADMSG if map is not a
 * well-formed map. */
int dkv_client_field(const uint8_t *map, size_t len, const char *key, const uint8_t **val,
		     size_t *vlen);
/* The same for an integer field; -EINVAL if it is not an integer. */
int dkv_client_field_int(const uint8_t *map, size_t len, const char *key, int64_t *v);

#endif
