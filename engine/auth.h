/*
 * auth.h - users and how they log in.
 *
 * The records live in the internal (None) subtree, as DistKV keeps them:
 *
 *   (None, "auth")                       {current: METHOD}  (no current: no login)
 *   (None, "auth", METHOD, "user", NAME)  {_aux: {...} | nil, password: HASH}
 *
 * Methods: "root" (nobody logs in; choosing it turns logins off), "_test"
 * (a name is enough; for experiments) and "password" (libsodium
 * crypto_pwhash_str, argon2id).  A user's `_aux` may name an ACL
 * (`acl: NAME`), which binds the sessions that log in as that user
 * (acl.h), and a converter (`codec: NAME`, codec.h).  Passwords travel sealed (crypto_box_seal) to a key the
 * server makes per connection; doc/protocol.md has the exchange.
 */
#ifndef DKV_AUTH_H
#define DKV_AUTH_H

#include "engine.h"

#include <uv.h>

enum dkv_auth_method {
	DKV_AUTH_NONE = -1, /* no login required */
	DKV_AUTH_ROOT = 0,
	DKV_AUTH_TEST,
	DKV_AUTH_PASSWORD,
	DKV_AUTH_NMETHODS,
};

/* A method's name to its number; DKV_AUTH_NONE when unknown. */
int dkv_auth_method_parse(const uint8_t *name, size_t len);
const char *dkv_auth_method_name(int method);

/* The method logins must use now (DKV_AUTH_NONE: none).  Cached; the
 * engine notices changes to (None, "auth"). */
int dkv_auth_current(struct dkv_engine *e);
/* The user's record (None, "auth", METHOD, "user", NAME) if it has a
 * value, else NULL.  On the loop or under the read lock. */
struct dkv_entry *dkv_auth_user_entry(struct dkv_engine *e, int method, const char *user,
				      size_t len);
/* Whether the user's record exists under method. */
bool dkv_auth_user_exists(struct dkv_engine *e, int method, const char *user, size_t len);

/* Make s the session of user (whose record under method must exist):
 * sets s->user and binds the ACL and the converter its aux names.  -ENOENT: no such user.
 * No secret is checked: the caller has (or trusts the user). */
int dkv_auth_bind_user(struct dkv_engine *e, struct dkv_session *s, int method,
		       const char *user, size_t len);
/* Forget s's user and rule (before reuse or free). */
void dkv_session_release(struct dkv_session *s);

/* ---- password hashing, off the loop ---- */

/* One thread that hashes and verifies passwords, so that a login never
 * stalls the loop nor queues behind the log's fsyncs on libuv's pool. */
struct dkv_hasher;
struct dkv_hasher *dkv_hasher_new(uv_loop_t *loop);
/* Stop the thread; pending jobs are called back with -ECANCELED. */
void dkv_hasher_free(struct dkv_hasher *h); /* accepts NULL */

/* A job's outcome, on the loop: rc 0 and (hashing) the hash, a
 * NUL-terminated string valid for the call; or rc < 0. */
typedef void (*dkv_hash_done)(void *arg, int rc, const char *hash);
struct dkv_hash_job;

/* Hash pw (crypto_pwhash_str).  pw is copied, and wiped after use. */
struct dkv_hash_job *dkv_hasher_hash(struct dkv_hasher *h, const uint8_t *pw, size_t len,
				     dkv_hash_done done, void *arg);
/* Verify pw against hash (NULL: an unknown user; a dummy hash is
 * checked, so that the answer takes as long): rc 0 on a match, else
 * -EACCES. */
struct dkv_hash_job *dkv_hasher_verify(struct dkv_hasher *h, const char *hash,
				       const uint8_t *pw, size_t len, dkv_hash_done done,
				       void *arg);
/* The job's caller is going away: done is not called (the job is freed
 * when the thread is through with it).  On the loop. */
void dkv_hash_job_detach(struct dkv_hash_job *j);

/* ---- the client side: "METHOD key=value ..." ---- */

/* A login as the command line and connect.auth give it:
 * "_test name=joe", "password name=joe password=secret" or
 * "password name=joe password?=Prompt" (ask for it; the caller does). */
struct dkv_auth_spec {
	int method;     /* DKV_AUTH_* */
	char *name;     /* name=; NULL: not given */
	char *password; /* password=; NULL: not given */
	char *prompt;   /* password?=PROMPT; NULL: not given */
};

/* 0, or -EINVAL with the reason in err (unknown method or key, a word
 * without "=", a method that needs a name). */
int dkv_auth_spec_parse(struct dkv_auth_spec *sp, const char *text, char *err, size_t errlen);
/* Free sp's strings, wiping the password. */
void dkv_auth_spec_release(struct dkv_auth_spec *sp);

#define DKV_AUTH_KEYBYTES 32 /* an auth_key public key */
/* Seal pw to the server's connection key: crypto_box_seal, appended to
 * out (crypto_box_SEALBYTES + len bytes).  -EINVAL when sodium cannot
 * start. */
int dkv_auth_seal(const uint8_t *pubkey, const char *pw, size_t len, struct dkv_buf *out);
/* Append the login request's fields but action and seq (typ, chroot,
 * ident, data) as msgpack key/value pairs to out; returns how many.
 * pubkey: the connection's auth_key (only the password method uses it). */
uint32_t dkv_auth_login_fields(const struct dkv_auth_spec *sp, const uint8_t *pubkey,
			       struct dkv_buf *out);

#endif
