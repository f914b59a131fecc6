/*
 * test_config.c - configuration: defaults, YAML files, key=value overrides
 * and the typed lookups.
 */
#include "test.h"

#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <unistd.h>

static char tmpdir[64];

/* Write text to a file in a fresh temporary directory; returns its path. */
static const char *write_file(const char *name, const char *text)
{
	static char path[128];
	FILE *f;

	if (!tmpdir[0]) {
		snprintf(tmpdir, sizeof tmpdir, "/tmp/dkv-test-config-XXXXXX");
		if (!mkdtemp(tmpdir))
			return NULL;
	}
	snprintf(path, sizeof path, "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	if (!f)
		return NULL;
	fputs(text, f);
	fclose(f);
	return path;
}

static bool value_is(const struct dkv_config *c, const char *key, const struct dkv_buf *want)
{
	const uint8_t *mp;
	size_t len;

	return dkv_config_get(c, key, &mp, &len) && len == want->len &&
	       !memcmp(mp, want->data, len);
}

TEST(defaults)
{
	struct dkv_config *c = dkv_config_new();
	struct dkv_buf nil = {0};
	const uint8_t *mp;
	size_t len;

	REQUIRE(c);
	CHECK_EQ_STR(dkv_config_str(c, "connect.host", NULL), "localhost");
	CHECK_EQ_INT(dkv_config_int(c, "connect.port", 0), 27586);
	CHECK_EQ_INT(dkv_config_int(c, "connect.init_timeout", 0), 5);
	CHECK_EQ_STR(dkv_config_str(c, "server.bind_default.host", NULL), "localhost");
	CHECK_EQ_INT(dkv_config_int(c, "server.bind_default.port", 0), 27586);
	CHECK_EQ_STR(dkv_config_str(c, "server.serf.host", NULL), "localhost");
	CHECK_EQ_INT(dkv_config_int(c, "server.serf.port", 0), 7373);
	CHECK_EQ_STR(dkv_config_str(c, "server.root", NULL), ":distkv");
	CHECK_EQ_INT(dkv_config_int(c, "server.change.length", 0), 5);
	CHECK_EQ_INT(dkv_config_int(c, "server.buffer", 0), 10);
	CHECK_EQ_INT(dkv_config_int(c, "server.max_msg_size", 0), 16777216);
	CHECK_EQ_INT(dkv_config_int(c, "server.max_out_buffer", 0), 67108864);
	dkv_mp_nil(&nil);
	CHECK(value_is(c, "connect.auth", &nil));
	CHECK(value_is(c, "server.mount", &nil));
	/* null is not a string: the default applies */
	CHECK_EQ_STR(dkv_config_str(c, "connect.auth", "none"), "none");
	CHECK(!dkv_config_get(c, "connect", &mp, &len));
	CHECK(!dkv_config_get(c, "nope", &mp, &len));
	CHECK_EQ_INT(dkv_config_int(c, "nope", -7), -7);
	dkv_config_free(c);
	dkv_config_free(NULL);
	dkv_buf_release(&nil);
}

TEST(set_overrides)
{
	struct dkv_config *c = dkv_config_new();
	struct dkv_buf w = {0};
	char err[200] = "";

	CHECK_EQ_INT(dkv_config_set(c, "connect.port=5000", err, sizeof err), 0);
	CHECK_EQ_INT(dkv_config_int(c, "connect.port", 0), 5000);
	CHECK_EQ_INT(dkv_config_set(c, "connect.host=example.org", err, sizeof err), 0);
	CHECK_EQ_STR(dkv_config_str(c, "connect.host", NULL), "example.org");
	/* a string survives being replaced */
	const char *old = dkv_config_str(c, "connect.host", NULL);
	CHECK_EQ_INT(dkv_config_set(c, "connect.host=other", err, sizeof err), 0);
	CHECK_EQ_STR(old, "example.org");
	CHECK_EQ_STR(dkv_config_str(c, "connect.host", NULL), "other");

	CHECK_EQ_INT(dkv_config_set(c, "server.root=:x.y", err, sizeof err), 0);
	CHECK_EQ_STR(dkv_config_str(c, "server.root", NULL), ":x.y");
	CHECK_EQ_INT(dkv_config_set(c, "a.b='5'", err, sizeof err), 0);
	CHECK_EQ_STR(dkv_config_str(c, "a.b", NULL), "5");
	CHECK_EQ_INT(dkv_config_int(c, "a.b", -1), -1);
	CHECK_EQ_INT(dkv_config_set(c, "a.b=x=y", err, sizeof err), 0);
	CHECK_EQ_STR(dkv_config_str(c, "a.b", NULL), "x=y");
	/* the empty value is the empty string, null must be spelled out */
	CHECK_EQ_INT(dkv_config_set(c, "a.e=", err, sizeof err), 0);
	CHECK_EQ_STR(dkv_config_str(c, "a.e", NULL), "");
	CHECK_EQ_INT(dkv_config_set(c, "a.n=null", err, sizeof err), 0);
	dkv_mp_nil(&w);
	CHECK(value_is(c, "a.n", &w));
	/* lists stay values */
	CHECK_EQ_INT(dkv_config_set(c, "a.l=[1, two]", err, sizeof err), 0);
	w.len = 0;
	dkv_mp_array(&w, 2);
	dkv_mp_int(&w, 1);
	dkv_mp_cstr(&w, "two");
	CHECK(value_is(c, "a.l", &w));
	/* maps are flattened */
	CHECK_EQ_INT(dkv_config_set(c, "server={serf: {port: 1}, buffer: 3}", err, sizeof err), 0);
	CHECK_EQ_INT(dkv_config_int(c, "server.serf.port", 0), 1);
	CHECK_EQ_INT(dkv_config_int(c, "server.buffer", 0), 3);
	CHECK_EQ_STR(dkv_config_str(c, "server.serf.host", NULL), "localhost");
	/* YAML 1.2: "yes" is a string */
	CHECK_EQ_INT(dkv_config_set(c, "x.flag=yes", err, sizeof err), 0);
	CHECK_EQ_INT(dkv_config_bool(c, "x.flag", false), false);
	CHECK_EQ_INT(dkv_config_set(c, "x.flag=true", err, sizeof err), 0);
	CHECK_EQ_INT(dkv_config_bool(c, "x.flag", false), true);

	CHECK_EQ_INT(dkv_config_set(c, "novalue", err, sizeof err), -EINVAL);
	CHECK(strstr(err, "expected key=value") != NULL);
	CHECK_EQ_INT(dkv_config_set(c, "=5", err, sizeof err), -EINVAL);
	CHECK(strstr(err, "the key is empty") != NULL);
	CHECK_EQ_INT(dkv_config_set(c, "a.b=[1", err, sizeof err), -EINVAL);
	CHECK(strstr(err, "'a.b=[1': line 1, column 3:") != NULL);
	CHECK_EQ_STR(dkv_config_str(c, "a.b", NULL), "x=y");
	CHECK_EQ_INT(dkv_config_set(c, "a={[1]: 2}", NULL, 0), -EINVAL);
	dkv_config_free(c);
	dkv_buf_release(&w);
}

TEST(load_file)
{
	struct dkv_config *c = dkv_config_new();
	struct dkv_buf w = {0};
	char err[300] = "";
	const char *path = write_file("a.yaml", "# distkv\n"
						"connect:\n"
						"  host: db.example\n"
						"  port: 1234\n"
						"  auth: password name=joe\n"
						"server:\n"
						"  serf: {port: 7000}\n"
						"  extra: [a, b]\n"
						"  empty: {}\n"
						"  1: one\n"
						"top: 2.5\n");
	REQUIRE(path);
	CHECK_EQ_INT(dkv_config_load_file(c, path, err, sizeof err), 0);
	CHECK_EQ_STR(err, "");
	CHECK_EQ_STR(dkv_config_str(c, "connect.host", NULL), "db.example");
	CHECK_EQ_INT(dkv_config_int(c, "connect.port", 0), 1234);
	CHECK_EQ_STR(dkv_config_str(c, "connect.auth", NULL), "password name=joe");
	CHECK_EQ_INT(dkv_config_int(c, "server.serf.port", 0), 7000);
	CHECK_EQ_STR(dkv_config_str(c, "server.serf.host", NULL), "localhost");
	CHECK_EQ_STR(dkv_config_str(c, "server.1", NULL), "one");
	CHECK_EQ_INT(dkv_config_float(c, "top", 0) == 2.5, 1);
	dkv_mp_array(&w, 2);
	dkv_mp_cstr(&w, "a");
	dkv_mp_cstr(&w, "b");
	CHECK(value_is(c, "server.extra", &w));
	w.len = 0;
	dkv_mp_map(&w, 0);
	CHECK(value_is(c, "server.empty", &w));

	/* later settings win */
	CHECK_EQ_INT(dkv_config_set(c, "connect.port=99", err, sizeof err), 0);
	CHECK_EQ_INT(dkv_config_int(c, "connect.port", 0), 99);

	/* empty files and comment-only files change nothing */
	path = write_file("empty.yaml", "");
	CHECK_EQ_INT(dkv_config_load_file(c, path, err, sizeof err), 0);
	path = write_file("comment.yaml", "# nothing here\n");
	CHECK_EQ_INT(dkv_config_load_file(c, path, err, sizeof err), 0);
	CHECK_EQ_INT(dkv_config_int(c, "connect.port", 0), 99);
	dkv_config_free(c);
	dkv_buf_release(&w);
}

TEST(load_file_errors)
{
	struct dkv_config *c = dkv_config_new();
	char err[300] = "", want[300];
	const char *path;

	CHECK_EQ_INT(dkv_config_load_file(c, "/nonexistent/dkv.yaml", err, sizeof err), -ENOENT);
	CHECK_EQ_STR(err, "/nonexistent/dkv.yaml: No such file or directory");

	path = write_file("bad.yaml", "connect:\n  port: 1\n  host: a: b\n");
	CHECK_EQ_INT(dkv_config_load_file(c, path, err, sizeof err), -EINVAL);
	snprintf(want, sizeof want, "%s:3:10: mapping values are not allowed in this context", path);
	CHECK_EQ_STR(err, want);
	CHECK_EQ_INT(dkv_config_int(c, "connect.port", 0), 27586);

	path = write_file("list.yaml", "- a\n- b\n");
	CHECK_EQ_INT(dkv_config_load_file(c, path, err, sizeof err), -EINVAL);
	snprintf(want, sizeof want, "%s: the top level is not a mapping", path);
	CHECK_EQ_STR(err, want);

	path = write_file("scalar.yaml", "5\n");
	CHECK_EQ_INT(dkv_config_load_file(c, path, err, sizeof err), -EINVAL);

	path = write_file("key.yaml", "a:\n  [1]: 2\n");
	CHECK_EQ_INT(dkv_config_load_file(c, path, err, sizeof err), -EINVAL);
	CHECK(strstr(err, "a key in 'a' is not a string") != NULL);

	path = write_file("dup.yaml", "a: 1\na: 2\n");
	CHECK_EQ_INT(dkv_config_load_file(c, path, NULL, 0), -EINVAL);

	CHECK_EQ_INT(dkv_config_load_file(c, tmpdir, err, sizeof err) < 0, 1);
	dkv_config_free(c);
}

TEST(typed_lookups)
{
	struct dkv_config *c = dkv_config_new();
	char err[200];

	static const char *sets[] = {
		"i.pos=42",     "i.neg=-42",         "i.big=18446744073709551615",
		"i.f=5.0",      "i.fh=5.5",          "i.fbig=1e300",
		"i.min=-9223372036854775808",        "i.fmin=-9223372036854775808.0",
		"i.fmax=9223372036854775808.0",      "i.str=hello", "i.bool=false",
		"i.inf=.inf",   "i.nan=.nan",        "i.bytes=!bin abc",
	};
	for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
		CHECK_EQ_INT(dkv_config_set(c, sets[i], err, sizeof err), 0);

	CHECK_EQ_INT(dkv_config_int(c, "i.pos", 0), 42);
	CHECK_EQ_INT(dkv_config_int(c, "i.neg", 0), -42);
	CHECK_EQ_INT(dkv_config_int(c, "i.big", -1), -1);
	CHECK_EQ_INT(dkv_config_int(c, "i.f", 0), 5);
	CHECK_EQ_INT(dkv_config_int(c, "i.fh", -1), -1);
	CHECK_EQ_INT(dkv_config_int(c, "i.fbig", -1), -1);
	CHECK(dkv_config_int(c, "i.min", 0) == INT64_MIN);
	CHECK(dkv_config_int(c, "i.fmin", 0) == INT64_MIN);
	CHECK_EQ_INT(dkv_config_int(c, "i.fmax", -1), -1);
	CHECK_EQ_INT(dkv_config_int(c, "i.str", -1), -1);
	CHECK_EQ_INT(dkv_config_int(c, "i.bool", -1), -1);
	CHECK_EQ_INT(dkv_config_int(c, "i.inf", -1), -1);
	CHECK_EQ_INT(dkv_config_int(c, "i.nan", -1), -1);

	CHECK(dkv_config_float(c, "i.fh", 0) == 5.5);
	CHECK(dkv_config_float(c, "i.pos", 0) == 42.0);
	CHECK(dkv_config_float(c, "i.neg", 0) == -42.0);
	CHECK(isinf(dkv_config_float(c, "i.inf", 0)));
	CHECK(dkv_config_float(c, "i.str", 1.25) == 1.25);

	CHECK_EQ_INT(dkv_config_bool(c, "i.bool", true), false);
	CHECK_EQ_INT(dkv_config_bool(c, "i.pos", true), true);
	CHECK_EQ_INT(dkv_config_bool(c, "nope", false), false);

	CHECK_EQ_STR(dkv_config_str(c, "i.str", NULL), "hello");
	CHECK(dkv_config_str(c, "i.pos", NULL) == NULL);
	CHECK(dkv_config_str(c, "i.bytes", NULL) == NULL);

	/* raw values */
	struct dkv_buf w = {0};
	dkv_mp_str(&w, "a\0b", 3);
	dkv_config_set_raw(c, "raw", w.data, w.len);
	CHECK(value_is(c, "raw", &w));
	CHECK_EQ_STR(dkv_config_str(c, "raw", NULL), "a");
	dkv_buf_release(&w);
	dkv_config_free(c);
}

TEARDOWN(remove_files)
{
	/* remove what write_file() made */
	static const char *names[] = {"a.yaml",    "empty.yaml", "comment.yaml", "bad.yaml",
				      "list.yaml", "scalar.yaml", "key.yaml",    "dup.yaml"};
	char path[160];

	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", tmpdir, names[i]);
		unlink(path);
	}
	CHECK_EQ_INT(rmdir(tmpdir), 0);
}

TESTS(defaults, set_overrides, load_file, load_file_errors, typed_lookups)
