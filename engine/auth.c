/*
 * auth.c - the server side of users: the current method, user records,
 * binding a session to a user, and the thread that hashes passwords.
 *
 * Records are read from the live tree each time (two or three hash
 * lookups), so nothing here caches state that a change could make stale.
 */
#include "acl.h"
#include "auth.h"
#include "codec.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t NIL_ELEM[] = {0xc0};
static const uint8_t AUTH_ELEM[] = {0xa4, 'a', 'u', 't', 'h'};
static const uint8_t USER_ELEM[] = {0xa4, 'u', 's', 'e', 'r'};

/* The entry (None, "auth"), or NULL. */
static struct dkv_entry *auth_root(struct dkv_engine *e)
{
	struct dkv_entry *m = dkv_entry_child(e, dkv_engine_root(e), NIL_ELEM, 1);
	return m ? dkv_entry_child(e, m, AUTH_ELEM, sizeof AUTH_ELEM) : NULL;
}

/* Find key in the map item at r (positioned at the map): the reader is
 * left at its value.  false when absent or not a map. */
static bool map_find(struct dkv_mp_reader *r, const char *key)
{
	struct dkv_mp_item it;
	size_t klen = strlen(key);
	if (dkv_mp_read(r, &it) || it.type != DKV_MP_MAP)
		return false;
	for (uint32_t i = 0, n = it.v.n; i < n; i++) {
		if (dkv_mp_read(r, &it))
			return false;
		if (it.type == DKV_MP_STR && it.v.s.len == klen && !memcmp(it.v.s.p, key, klen))
			return true;
		if (dkv_mp_skip(r))
			return false;
	}
	return false;
}

/* The string at key in the entry's map value: 0 with p/len, or -ENOENT. */
static int value_str(const struct dkv_entry *ent, const char *key, const char *key2,
		     const uint8_t **p, size_t *len)
{
	struct dkv_mp_reader r;
	struct dkv_mp_item it;
	if (!ent || !dkv_entry_has_value(ent))
		return -ENOENT;
	dkv_mp_reader_init(&r, dkv_value_data(ent->value), ent->value->len);
	if (!map_find(&r, key) || (key2 && !map_find(&r, key2)))
		return -ENOENT;
	if (dkv_mp_read(&r, &it) || it.type != DKV_MP_STR)
		return -ENOENT;
	*p = it.v.s.p;
	*len = it.v.s.len;
	return 0;
}

int dkv_auth_current(struct dkv_engine *e)
{
	const uint8_t *p;
	size_t len;
	if (value_str(auth_root(e), "current", NULL, &p, &len))
		return DKV_AUTH_NONE;
	int m = dkv_auth_method_parse(p, len);
	return m == DKV_AUTH_ROOT ? DKV_AUTH_NONE : m;
}

struct dkv_entry *dkv_auth_user_entry(struct dkv_engine *e, int method, const char *user,
				       size_t len)
{
	struct dkv_entry *a = auth_root(e);
	struct dkv_buf el = {0};
	if (!a)
		return NULL;
	dkv_mp_cstr(&el, dkv_auth_method_name(method));
	a = dkv_entry_child(e, a, el.data, el.len);
	a = a ? dkv_entry_child(e, a, USER_ELEM, sizeof USER_ELEM) : NULL;
	el.len = 0;
	dkv_mp_str(&el, user, len);
	a = a ? dkv_entry_child(e, a, el.data, el.len) : NULL;
	dkv_buf_release(&el);
	return a && dkv_entry_has_value(a) ? a : NULL;
}

bool dkv_auth_user_exists(struct dkv_engine *e, int method, const char *user, size_t len)
{
	return dkv_auth_user_entry(e, method, user, len) != NULL;
}

int dkv_auth_bind_user(struct dkv_engine *e, struct dkv_session *s, int method,
		       const char *user, size_t len)
{
	struct dkv_entry *ent = dkv_auth_user_entry(e, method, user, len);
	const uint8_t *aux;
	size_t aux_len;
	if (!ent)
		return -ENOENT;
	dkv_session_release(s);
	s->user = strndup(user, len);
	if (!s->user)
		abort();
	if (!value_str(ent, "_aux", "acl", &aux, &aux_len)) {
		char *name = strndup((const char *)aux, aux_len);
		if (!name)
			abort();
		dkv_acl_bind(s, e, name);
		free(name);
	}
	if (!value_str(ent, "_aux", "codec", &aux, &aux_len)) {
		char *name = strndup((const char *)aux, aux_len);
		if (!name)
			abort();
		dkv_conv_bind(s, e, name);
		free(name);
	}
	return 0;
}

void dkv_session_release(struct dkv_session *s)
{
	free((char *)s->user);
	s->user = NULL;
	dkv_acl_bind(s, NULL, NULL);
	dkv_conv_bind(s, NULL, NULL);
}

/* ---- the hashing thread ---- */

struct dkv_hash_job {
	struct dkv_hash_job *next;
	bool verify;
	int rc;
	dkv_hash_done done; /* NULL: detached */
	void *arg;
	char hash[crypto_pwhash_STRBYTES];
	size_t pwlen;
	uint8_t pw[];
};

struct dkv_hasher {
	uv_async_t async;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct dkv_hash_job *todo, **todo_tail; /* for the thread */
	struct dkv_hash_job *done, **done_tail; /* for the loop */
	bool stop;
	char dummy[crypto_pwhash_STRBYTES]; /* the thread's: for unknown users */
};

static void run_job(struct dkv_hasher *h, struct dkv_hash_job *j)
{
	if (!j->verify) {
		j->rc = crypto_pwhash_str(j->hash, (const char *)j->pw, j->pwlen,
					  crypto_pwhash_OPSLIMIT_INTERACTIVE,
					  crypto_pwhash_MEMLIMIT_INTERACTIVE)
				? -ENOMEM
				: 0;
	} else {
		bool unknown = !j->hash[0];
		if (unknown && !h->dummy[0]) {
			uint8_t junk[16];
			randombytes_buf(junk, sizeof junk);
			if (crypto_pwhash_str(h->dummy, (const char *)junk, sizeof junk,
					      crypto_pwhash_OPSLIMIT_INTERACTIVE,
					      crypto_pwhash_MEMLIMIT_INTERACTIVE))
				h->dummy[0] = 0;
		}
		const char *hash = unknown ? h->dummy : j->hash;
		int ok = hash[0] ? crypto_pwhash_str_verify(hash, (const char *)j->pw, j->pwlen)
				 : -1;
		j->rc = ok == 0 && !unknown ? 0 : -EACCES;
	}
	sodium_memzero(j->pw, j->pwlen);
}

static void *hasher_main(void *arg)
{
	struct dkv_hasher *h = arg;
	pthread_mutex_lock(&h->lock);
	for (;;) {
		while (!h->todo && !h->stop)
			pthread_cond_wait(&h->cond, &h->lock);
		if (!h->todo)
			break;
		struct dkv_hash_job *j = h->todo;
		h->todo = j->next;
		if (!h->todo)
			h->todo_tail = &h->todo;
		if (h->stop) {
			j->rc = -ECANCELED;
		} else {
			pthread_mutex_unlock(&h->lock);
			run_job(h, j);
			pthread_mutex_lock(&h->lock);
		}
		j->next = NULL;
		*h->done_tail = j;
		h->done_tail = &j->next;
		uv_async_send(&h->async);
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

static void on_done(uv_async_t *a)
{
	struct dkv_hasher *h = a->data;
	pthread_mutex_lock(&h->lock);
	struct dkv_hash_job *j = h->done;
	h->done = NULL;
	h->done_tail = &h->done;
	pthread_mutex_unlock(&h->lock);
	while (j) {
		struct dkv_hash_job *next = j->next;
		if (j->done)
			j->done(j->arg, j->rc, j->verify ? NULL : j->hash);
		sodium_memzero(j->hash, sizeof j->hash);
		free(j);
		j = next;
	}
}

struct dkv_hasher *dkv_hasher_new(uv_loop_t *loop)
{
	struct dkv_hasher *h = calloc(1, sizeof *h);
	if (!h || sodium_init() < 0)
		abort();
	h->todo_tail = &h->todo;
	h->done_tail = &h->done;
	pthread_mutex_init(&h->lock, NULL);
	pthread_cond_init(&h->cond, NULL);
	uv_async_init(loop, &h->async, on_done);
	h->async.data = h;
	if (pthread_create(&h->thread, NULL, hasher_main, h))
		abort();
	return h;
}

static void hasher_closed(uv_handle_t *hd)
{
	free(hd->data);
}

void dkv_hasher_free(struct dkv_hasher *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&h->lock);
	h->stop = true;
	pthread_cond_signal(&h->cond);
	pthread_mutex_unlock(&h->lock);
	pthread_join(h->thread, NULL);
	on_done(&h->async); /* the cancelled and finished jobs get their answer */
	pthread_mutex_destroy(&h->lock);
	pthread_cond_destroy(&h->cond);
	uv_close((uv_handle_t *)&h->async, hasher_closed);
}

static struct dkv_hash_job *submit(struct dkv_hasher *h, bool verify, const char *hash,
				   const uint8_t *pw, size_t len, dkv_hash_done done, void *arg)
{
	struct dkv_hash_job *j = calloc(1, sizeof *j + len + 1);
	if (!j)
		abort();
	j->verify = verify;
	j->done = done;
	j->arg = arg;
	j->pwlen = len;
	memcpy(j->pw, pw, len);
	if (hash)
		snprintf(j->hash, sizeof j->hash, "%s", hash);
	pthread_mutex_lock(&h->lock);
	*h->todo_tail = j;
	h->todo_tail = &j->next;
	pthread_cond_signal(&h->cond);
	pthread_mutex_unlock(&h->lock);
	return j;
}

struct dkv_hash_job *dkv_hasher_hash(struct dkv_hasher *h, const uint8_t *pw, size_t len,
				     dkv_hash_done done, void *arg)
{
	return submit(h, false, NULL, pw, len, done, arg);
}

struct dkv_hash_job *dkv_hasher_verify(struct dkv_hasher *h, const char *hash,
				       const uint8_t *pw, size_t len, dkv_hash_done done,
				       void *arg)
{
	return submit(h, true, hash ? hash : "", pw, len, done, arg);
}

void dkv_hash_job_detach(struct dkv_hash_job *j)
{
	j->done = NULL;
}
