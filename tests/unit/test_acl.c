/* test_acl.c - the ACL matcher (every mode, both wildcards, specificity,
 * traversal), the session rule and its messages, users and methods, and
 * the hashing thread. */
#include "acl.h"
#include "auth.h"
#include "test.h"

#include <errno.h>
#include <uv.h>

static struct dkv_engine *mk(void)
{
	return dkv_engine_new(&(struct dkv_engine_opts){.node = "node-a", .chain_length = 3});
}

/* Words to a path: "a b c" (elements are strings; "~" is None). */
static void words(struct dkv_path *p, const char *s)
{
	char buf[200];
	snprintf(buf, sizeof buf, "%s", s);
	dkv_path_init(p);
	for (char *w = strtok(buf, " "); w; w = strtok(NULL, " ")) {
		if (!strcmp(w, "~")) {
			static const uint8_t nil = 0xc0;
			dkv_path_push_canon(p, &nil, 1);
		} else {
			dkv_path_push_str(p, w);
		}
	}
}

/* Set the internal entry at path (words below None) to a string, or
 * delete it (v NULL). */
static void iset(struct dkv_engine *e, const char *path, const char *v)
{
	struct dkv_path p;
	struct dkv_buf val = {0};
	struct dkv_result res;
	words(&p, path);
	if (v)
		dkv_mp_cstr(&val, v);
	struct dkv_change c = {.path = p.enc.data, .path_len = p.enc.len, .internal = true,
			       .value = v ? val.data : NULL, .value_len = val.len,
			       .src = DKV_SRC_LOCAL};
	CHECK(dkv_engine_apply(e, &c, &res) == 0);
	dkv_result_release(e, &res);
	dkv_path_release(&p);
	dkv_buf_release(&val);
}

/* A data change at path as s: 0 or the engine's error. */
static int dset(struct dkv_engine *e, struct dkv_session *s, const char *path, bool del)
{
	struct dkv_path p;
	struct dkv_buf val = {0};
	struct dkv_result res;
	words(&p, path);
	dkv_mp_int(&val, 1);
	struct dkv_change c = {.path = p.enc.data, .path_len = p.enc.len,
			       .value = del ? NULL : val.data, .value_len = val.len,
			       .src = DKV_SRC_LOCAL, .sess = s};
	int rc = dkv_engine_apply(e, &c, &res);
	dkv_result_release(e, &res);
	dkv_path_release(&p);
	dkv_buf_release(&val);
	return rc;
}

static unsigned modes_at(struct dkv_session *s, const char *path)
{
	struct dkv_path p;
	words(&p, path);
	unsigned m = dkv_session_modes(s, p.enc.data, p.enc.len, false);
	dkv_path_release(&p);
	return m;
}

static int check_at(struct dkv_session *s, const char *path, unsigned mode)
{
	struct dkv_path p;
	words(&p, path);
	int rc = dkv_session_check(s, p.enc.data, p.enc.len, false, mode);
	dkv_path_release(&p);
	return rc;
}

TEST(letters)
{
	unsigned m;
	CHECK(dkv_acl_parse("arwcdxen", 8, &m) == 0);
	CHECK_EQ_INT(m, DKV_ACL_ACL | DKV_ACL_READ | DKV_ACL_WRITE | DKV_ACL_CREATE |
				DKV_ACL_DELETE | DKV_ACL_ACCESS | DKV_ACL_ENUM | DKV_ACL_NEW);
	CHECK(dkv_acl_parse("xq", 2, &m) == -EINVAL);
	CHECK(dkv_acl_parse("W", 1, &m) == -EINVAL); /* derived, never stored */
	char out[10];
	dkv_acl_letters(DKV_ACL_CREATE | DKV_ACL_ACCESS, out);
	CHECK(!strcmp(out, "cx"));
	dkv_acl_letters(0, out);
	CHECK(!strcmp(out, ""));
}

/* Each letter gives its own mode and no other. */
TEST(every_mode)
{
	struct dkv_engine *e = mk();
	struct dkv_session s = {0};
	static const char letters[] = "arwcdxen";
	dkv_acl_bind(&s, e, "t");
	for (int i = 0; letters[i]; i++) {
		char v[2] = {letters[i], 0};
		unsigned want;
		iset(e, "acl t k", v);
		dkv_acl_parse(v, 1, &want);
		CHECK_EQ_INT(modes_at(&s, "k"), want);
		CHECK(check_at(&s, "k", want) == 0);
		unsigned other = (DKV_ACL_READ | DKV_ACL_DELETE) & ~want;
		CHECK(check_at(&s, "k", other) == -EACCES);
	}
	dkv_session_release(&s);
	dkv_engine_free(e);
}

/* exact beats "+" beats "#"; "#" needs at least one level; an earlier
 * level decides before a later one. */
TEST(wildcards_and_specificity)
{
	struct dkv_engine *e = mk();
	struct dkv_session s = {0};
	dkv_acl_bind(&s, e, "t");
	iset(e, "acl t a #", "rx");
	iset(e, "acl t a +", "wx");
	iset(e, "acl t a b", "d");
	iset(e, "acl t + c", "e");
	CHECK_EQ_INT(modes_at(&s, "a b"), DKV_ACL_DELETE);      /* exact */
	CHECK_EQ_INT(modes_at(&s, "a z"), DKV_ACL_WRITE | DKV_ACL_ACCESS); /* + */
	CHECK_EQ_INT(modes_at(&s, "a z y"), DKV_ACL_READ | DKV_ACL_ACCESS); /* # for two levels */
	CHECK_EQ_INT(modes_at(&s, "a z y x w"), DKV_ACL_READ | DKV_ACL_ACCESS); /* and more */
	CHECK_EQ_INT(modes_at(&s, "a"), DKV_ACL_UNMATCHED);     /* # is not zero levels */
	CHECK_EQ_INT(modes_at(&s, "q c"), DKV_ACL_ENUM);        /* + at the first level */
	/* "a c": a/+ (w) is found through the exact "a" before +/c (e) */
	CHECK_EQ_INT(modes_at(&s, "a c"), DKV_ACL_WRITE | DKV_ACL_ACCESS);
	CHECK_EQ_INT(modes_at(&s, "zz"), DKV_ACL_UNMATCHED);    /* +/c may match below */
	CHECK_EQ_INT(modes_at(&s, "zz y"), 0);                  /* nothing can, here */
	/* an entry without a value is no match: the next candidate wins */
	iset(e, "acl t a + deeper", "x");
	CHECK_EQ_INT(modes_at(&s, "a z"), DKV_ACL_WRITE | DKV_ACL_ACCESS);
	/* "+" without x blocks the way to what "#" would allow below it */
	iset(e, "acl t a +", "w");
	CHECK_EQ_INT(modes_at(&s, "a z y"), 0);
	iset(e, "acl t a +", "wx");
	/* deleting an entry counts at once */
	iset(e, "acl t a +", NULL);
	CHECK_EQ_INT(modes_at(&s, "a z"), DKV_ACL_READ | DKV_ACL_ACCESS); /* now # */
	dkv_session_release(&s);
	dkv_engine_free(e);
}

/* No match, no access; an ancestor with a match must allow x, and n
 * where a new inner entry is made below it; ancestors without a match
 * impose nothing. */
TEST(traversal)
{
	struct dkv_engine *e = mk();
	struct dkv_session s = {0};
	dkv_acl_bind(&s, e, "t");
	iset(e, "acl t one", "rxc");
	iset(e, "acl t one two", "rc");
	iset(e, "acl t one two #", "rwc");
	CHECK(dset(e, &s, "one", false) == 0);
	CHECK(dset(e, &s, "one two", false) == 0);
	CHECK(dset(e, &s, "one two", false) == -EACCES); /* has a value: w */
	CHECK(strstr(s.why, "does not allow w"));
	/* through "two" (rc: no x) */
	CHECK(dset(e, &s, "one two three", false) == -EACCES);
	CHECK(!strcmp(s.why, "ACL t (one two: rc) does not allow x"));
	iset(e, "acl t one two", "rcx");
	CHECK(dset(e, &s, "one two three", false) == 0);
	/* a new inner entry below "one two" needs n there */
	CHECK(dset(e, &s, "one two new deep", false) == -EACCES);
	CHECK(!strcmp(s.why, "ACL t (one two: rcx) does not allow n"));
	iset(e, "acl t one two", "rcxn");
	/* and x at "one two new", which "one two #" (rwc) withholds */
	CHECK(dset(e, &s, "one two new deep", false) == -EACCES);
	CHECK(!strcmp(s.why, "ACL t (one two #: rwc) does not allow x"));
	iset(e, "acl t one two #", "rwcx");
	CHECK(dset(e, &s, "one two new deep", false) == 0);
	/* nothing matches elsewhere */
	CHECK(dset(e, &s, "other", false) == -EACCES);
	CHECK(!strcmp(s.why, "ACL t (no entry matches other) does not allow c"));
	/* deleting needs d */
	CHECK(dset(e, &s, "one", true) == -EACCES);
	iset(e, "acl t one", "rxcd");
	CHECK(dset(e, &s, "one", true) == 0);
	/* unreachable: no mode at all */
	iset(e, "acl t one", "r");
	CHECK_EQ_INT(modes_at(&s, "one two"), 0);
	CHECK(!dkv_acl_may_descend(modes_at(&s, "one")));
	dkv_session_release(&s);
	dkv_engine_free(e);
}

/* The tutorial's write-only store. */
TEST(tutorial_writeonly)
{
	struct dkv_engine *e = mk();
	struct dkv_session s = {0};
	dkv_acl_bind(&s, e, "writeonly");
	iset(e, "acl writeonly wom #", "xc");
	CHECK(dset(e, &s, "wom foo bar", false) == 0);
	CHECK(dset(e, &s, "wom foo bar", false) == -EACCES);
	CHECK(!strcmp(s.why, "ACL writeonly (wom #: xc) does not allow w"));
	CHECK(check_at(&s, "wom foo bar", DKV_ACL_READ) == -EACCES);
	CHECK(!strcmp(s.why, "ACL writeonly (wom #: xc) does not allow r"));
	dkv_session_release(&s);
	dkv_engine_free(e);
}

/* A bound session never reaches internal data, and None matches no
 * wildcard; a missing ACL allows nothing; "*" and no binding allow all. */
TEST(internal_and_missing)
{
	struct dkv_engine *e = mk();
	struct dkv_session s = {0};
	iset(e, "acl t #", "rwcdxena");
	dkv_acl_bind(&s, e, "t");
	struct dkv_path p;
	words(&p, "acl");
	CHECK(dkv_session_check(&s, p.enc.data, p.enc.len, true, DKV_ACL_READ) == -EACCES);
	CHECK(!strcmp(s.why, "ACL t does not allow access to internal data"));
	dkv_path_release(&p);
	CHECK_EQ_INT(modes_at(&s, "~ acl"), 0); /* None matches no wildcard */
	CHECK(check_at(&s, "anything here", DKV_ACL_READ) == 0);
	dkv_acl_bind(&s, e, "missing");
	CHECK(check_at(&s, "anything", DKV_ACL_READ) == -EACCES);
	dkv_acl_bind(&s, e, "*");
	CHECK(!s.check);
	CHECK(check_at(&s, "anything", DKV_ACL_READ) == 0);
	dkv_session_release(&s);
	struct dkv_acl_match m;
	words(&p, "x y");
	CHECK(dkv_acl_match(e, "t", p.enc.data, p.enc.len, &m) == 0);
	CHECK(m.matched && m.reachable);
	CHECK(dkv_acl_match(e, "nope", p.enc.data, p.enc.len, &m) == -ENOENT);
	dkv_path_release(&p);
	dkv_engine_free(e);
}

/* Set (None auth METHOD user NAME) to {_aux: {acl: ACL}} (ACL NULL:
 * _aux nil). */
static void mkuser(struct dkv_engine *e, const char *method, const char *name, const char *acl)
{
	char path[100];
	struct dkv_path p;
	struct dkv_buf val = {0};
	struct dkv_result res;
	snprintf(path, sizeof path, "auth %s user %s", method, name);
	words(&p, path);
	dkv_mp_map(&val, 1);
	dkv_mp_cstr(&val, "_aux");
	if (acl) {
		dkv_mp_map(&val, 1);
		dkv_mp_cstr(&val, "acl");
		dkv_mp_cstr(&val, acl);
	} else {
		dkv_mp_nil(&val);
	}
	struct dkv_change c = {.path = p.enc.data, .path_len = p.enc.len, .internal = true,
			       .value = val.data, .value_len = val.len, .src = DKV_SRC_LOCAL};
	CHECK(dkv_engine_apply(e, &c, &res) == 0);
	dkv_result_release(e, &res);
	dkv_path_release(&p);
	dkv_buf_release(&val);
}

TEST(users_and_methods)
{
	struct dkv_engine *e = mk();
	struct dkv_session s = {0};
	CHECK_EQ_INT(dkv_auth_current(e), DKV_AUTH_NONE);
	CHECK_EQ_INT(dkv_auth_method_parse((const uint8_t *)"password", 8), DKV_AUTH_PASSWORD);
	CHECK_EQ_INT(dkv_auth_method_parse((const uint8_t *)"pass", 4), DKV_AUTH_NONE);
	mkuser(e, "_test", "joe", "wo");
	mkuser(e, "_test", "root", NULL);
	CHECK(dkv_auth_user_exists(e, DKV_AUTH_TEST, "joe", 3));
	CHECK(!dkv_auth_user_exists(e, DKV_AUTH_PASSWORD, "joe", 3));
	CHECK(dkv_auth_bind_user(e, &s, DKV_AUTH_TEST, "nobody", 6) == -ENOENT);
	CHECK(dkv_auth_bind_user(e, &s, DKV_AUTH_TEST, "joe", 3) == 0);
	CHECK(s.user && !strcmp(s.user, "joe") && s.check);
	CHECK(check_at(&s, "x", DKV_ACL_READ) == -EACCES); /* ACL wo has no entries */
	CHECK(dkv_auth_bind_user(e, &s, DKV_AUTH_TEST, "root", 4) == 0);
	CHECK(!s.check);
	/* the current method: {current: _test}; root means none */
	struct dkv_path p;
	struct dkv_buf val = {0};
	struct dkv_result res;
	words(&p, "auth");
	dkv_mp_map(&val, 1);
	dkv_mp_cstr(&val, "current");
	dkv_mp_cstr(&val, "_test");
	struct dkv_change c = {.path = p.enc.data, .path_len = p.enc.len, .internal = true,
			       .value = val.data, .value_len = val.len, .src = DKV_SRC_LOCAL};
	CHECK(dkv_engine_apply(e, &c, &res) == 0);
	dkv_result_release(e, &res);
	CHECK_EQ_INT(dkv_auth_current(e), DKV_AUTH_TEST);
	val.len = 0;
	dkv_mp_map(&val, 1);
	dkv_mp_cstr(&val, "current");
	dkv_mp_cstr(&val, "root");
	c.value = val.data;
	c.value_len = val.len;
	CHECK(dkv_engine_apply(e, &c, &res) == 0);
	dkv_result_release(e, &res);
	CHECK_EQ_INT(dkv_auth_current(e), DKV_AUTH_NONE);
	dkv_path_release(&p);
	dkv_buf_release(&val);
	dkv_session_release(&s);
	dkv_engine_free(e);
}

TEST(spec_parse)
{
	struct dkv_auth_spec sp;
	char err[200];
	CHECK(dkv_auth_spec_parse(&sp, "_test name=joe", err, sizeof err) == 0);
	CHECK(sp.method == DKV_AUTH_TEST && !strcmp(sp.name, "joe"));
	dkv_auth_spec_release(&sp);
	CHECK(dkv_auth_spec_parse(&sp, "password name=joe password?=Code", err, sizeof err) == 0);
	CHECK(sp.prompt && !strcmp(sp.prompt, "Code") && !sp.password);
	dkv_auth_spec_release(&sp);
	CHECK(dkv_auth_spec_parse(&sp, "password name=joe password=a=b", err, sizeof err) == 0);
	CHECK(!strcmp(sp.password, "a=b"));
	dkv_auth_spec_release(&sp);
	CHECK(dkv_auth_spec_parse(&sp, "kerberos name=joe", err, sizeof err) == -EINVAL);
	CHECK(strstr(err, "unknown method 'kerberos'"));
	CHECK(dkv_auth_spec_parse(&sp, "_test", err, sizeof err) == -EINVAL);
	CHECK(strstr(err, "needs name="));
	CHECK(dkv_auth_spec_parse(&sp, "_test name=joe password=x", err, sizeof err) == -EINVAL);
	CHECK(dkv_auth_spec_parse(&sp, "_test joe", err, sizeof err) == -EINVAL);
	CHECK(dkv_auth_spec_parse(&sp, "root", err, sizeof err) == 0);
	dkv_auth_spec_release(&sp);
}

struct hashres {
	int rc;
	char hash[200];
	int calls;
};

static void got(void *arg, int rc, const char *hash)
{
	struct hashres *r = arg;
	r->rc = rc;
	r->calls++;
	snprintf(r->hash, sizeof r->hash, "%s", hash ? hash : "");
}

/* Hash, then verify right, wrong and unknown; a detached job is never
 * called back. */
TEST(hasher)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct dkv_hasher *h = dkv_hasher_new(&loop);
	struct hashres a = {0}, b = {0}, c = {0}, d = {0}, x = {0};
	dkv_hasher_hash(h, (const uint8_t *)"s3cret", 6, got, &a);
	while (!a.calls)
		uv_run(&loop, UV_RUN_ONCE);
	CHECK_EQ_INT(a.rc, 0);
	CHECK(!strncmp(a.hash, "$argon2id$", 10));
	CHECK(!strstr(a.hash, "s3cret"));
	dkv_hasher_verify(h, a.hash, (const uint8_t *)"s3cret", 6, got, &b);
	dkv_hasher_verify(h, a.hash, (const uint8_t *)"wrong", 5, got, &c);
	dkv_hasher_verify(h, NULL, (const uint8_t *)"s3cret", 6, got, &d);
	struct dkv_hash_job *j = dkv_hasher_verify(h, a.hash, (const uint8_t *)"s3cret", 6, got, &x);
	dkv_hash_job_detach(j);
	while (!d.calls)
		uv_run(&loop, UV_RUN_ONCE);
	CHECK_EQ_INT(b.rc, 0);
	CHECK_EQ_INT(c.rc, -EACCES);
	CHECK_EQ_INT(d.rc, -EACCES);
	dkv_hasher_free(h);
	uv_run(&loop, UV_RUN_DEFAULT);
	CHECK_EQ_INT(x.calls, 0);
	CHECK(uv_loop_close(&loop) == 0);
}

TESTS(letters, every_mode, wildcards_and_specificity, traversal, tutorial_writeonly,
      internal_and_missing, users_and_methods, spec_parse, hasher)
