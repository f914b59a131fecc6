/* test_types.c - the type checker: the tutorial's types, example
 * validation both ways, subtype chains, match wildcards and specificity,
 * records that are refused, deletions, remote changes, recompiling. */
#include "py.h"
#include "test.h"
#include "types.h"

#include <errno.h>

/* The interpreter lives until the process ends (see test_py.c). */
const char *__lsan_default_suppressions(void)
{
	return "leak:libpython3\n";
}

static struct dkv_engine *mk(struct dkv_types **t)
{
	struct dkv_engine *e =
		dkv_engine_new(&(struct dkv_engine_opts){.node = "node-a", .chain_length = 3});
	*t = dkv_types_attach(e);
	return e;
}

static void done(struct dkv_engine *e, struct dkv_types *t)
{
	dkv_engine_free(e);
	dkv_types_free(t);
}

/* Words to a path: "a b c", each a string. */
static void words(struct dkv_path *p, const char *s)
{
	char buf[200];
	snprintf(buf, sizeof buf, "%s", s);
	dkv_path_init(p);
	for (char *w = strtok(buf, " "); w; w = strtok(NULL, " "))
		dkv_path_push_str(p, w);
}

static char why[256];

/* Apply a change at path (internal: below None) of the Python literal v
 * (NULL: a deletion) from src: 0 or the engine's error, the reason in
 * why. */
static int put(struct dkv_engine *e, bool internal, const char *path, const char *v,
	       enum dkv_source src)
{
	struct dkv_path p;
	struct dkv_buf val = {0};
	struct dkv_result res;
	char err[200];
	struct dkv_chain_link link = {dkv_engine_node(e, "node-b", 6), 1};
	static uint64_t tick;
	words(&p, path);
	if (v && dkv_py_literal_eval(&val, v, err, sizeof err)) {
		printf("# cannot evaluate %s: %s\n", v, err);
		return -1;
	}
	link.tick = ++tick;
	struct dkv_change c = {.path = p.enc.data, .path_len = p.enc.len, .internal = internal,
			       .value = v ? val.data : NULL, .value_len = val.len, .src = src,
			       .chain = src == DKV_SRC_LOCAL ? NULL : &link,
			       .nchain = src == DKV_SRC_LOCAL ? 0 : 1,
			       .tock = dkv_engine_tock(e) + 1};
	int rc = dkv_engine_apply(e, &c, &res);
	snprintf(why, sizeof why, "%s", res.why);
	dkv_result_release(e, &res);
	dkv_path_release(&p);
	dkv_buf_release(&val);
	return rc;
}

static int iset(struct dkv_engine *e, const char *path, const char *v)
{
	return put(e, true, path, v, DKV_SRC_LOCAL);
}

static int dset(struct dkv_engine *e, const char *path, const char *v)
{
	return put(e, false, path, v, DKV_SRC_LOCAL);
}

#define INT_TYPE                                                                     \
	"{'code': 'if int(value) != value: raise ValueError(\"not an integer\")',"   \
	" 'good': [0, -2, 123], 'bad': [1.2, 'Hello']}"
#define PERCENT_TYPE                                                                 \
	"{'code': 'if not (0 <= value <= 100): raise ValueError(\"not a percentage\")'," \
	" 'good': [0, 99, 100], 'bad': [-1, 101]}"

static void tutorial_types(struct dkv_engine *e)
{
	CHECK_EQ_INT(iset(e, "type int", INT_TYPE), 0);
	CHECK_EQ_INT(iset(e, "type int percent", PERCENT_TYPE), 0);
	CHECK_EQ_INT(iset(e, "match stats # quota", "{'type': ['int', 'percent']}"), 0);
}

TEST(tutorial)
{
	struct dkv_types *t;
	struct dkv_engine *e = mk(&t);
	tutorial_types(e);
	CHECK_EQ_INT(dset(e, "stats foo bar quota", "'123'"), -EINVAL);
	CHECK_EQ_STR(why, "ValueError('not an integer')");
	CHECK_EQ_INT(dset(e, "stats foo bar quota", "123"), -EINVAL);
	CHECK_EQ_STR(why, "ValueError('not a percentage')");
	CHECK_EQ_INT(dset(e, "stats foo bar quota", "12"), 0);
	CHECK_EQ_STR(why, "");
	/* the refused writes left nothing behind */
	CHECK_EQ_INT(dset(e, "stats foo quota", "'x'"), -EINVAL);
	struct dkv_path p;
	words(&p, "stats foo quota");
	struct dkv_entry *ent = dkv_entry_lookup(e, NULL, p.enc.data, p.enc.len, false);
	CHECK(!ent || !dkv_entry_has_value(ent));
	dkv_path_release(&p);
	/* not covered: anything goes; deletions are not checked */
	CHECK_EQ_INT(dset(e, "stats quota", "'x'"), 0);
	CHECK_EQ_INT(dset(e, "stats foo bar quota", NULL), 0);
	done(e, t);
}

TEST(examples)
{
	struct dkv_types *t;
	struct dkv_engine *e = mk(&t);
	CHECK_EQ_INT(iset(e, "type int", INT_TYPE), 0);
	/* a good example that fails its own code, or the supertype's */
	CHECK_EQ_INT(iset(e, "type int pct",
			  "{'code': 'if not (0 <= value <= 100): raise ValueError(\"not a percentage\")',"
			  " 'good': [0, 101], 'bad': [-1]}"),
		     -EINVAL);
	CHECK_EQ_STR(why, "good example 101 fails: ValueError('not a percentage')");
	CHECK_EQ_INT(iset(e, "type int pct",
			  "{'code': 'pass', 'good': [0, 'x'], 'bad': [1.5]}"),
		     -EINVAL);
	CHECK_EQ_STR(why, "good example 'x' fails: ValueError(\"invalid literal for int() "
			  "with base 10: 'x'\")");
	/* a bad example that passes: "5" passes both */
	CHECK_EQ_INT(iset(e, "type int pct",
			  "{'code': 'if not (0 <= value <= 100): raise ValueError(\"no\")',"
			  " 'good': [0], 'bad': [-1, 5]}"),
		     -EINVAL);
	CHECK_EQ_STR(why, "bad example 5 passes");
	/* a bad example may fail the supertype only */
	CHECK_EQ_INT(iset(e, "type int pct",
			  "{'code': 'if not (0 <= value <= 100): raise ValueError(\"no\")',"
			  " 'good': [0], 'bad': [-1, 5.5]}"),
		     0);
	/* examples are needed, of both kinds */
	CHECK_EQ_INT(iset(e, "type two", "{'code': 'pass', 'good': [1], 'bad': []}"), -EINVAL);
	CHECK_EQ_STR(why, "type two needs good and bad examples");
	CHECK_EQ_INT(iset(e, "type two", "{'code': 'pass', 'bad': [1]}"), -EINVAL);
	/* not a record */
	CHECK_EQ_INT(iset(e, "type two", "[1, 2]"), -EINVAL);
	CHECK_EQ_INT(iset(e, "type two", "{'code': 5, 'good': [1], 'bad': [2]}"), -EINVAL);
	CHECK_EQ_INT(iset(e, "type", "{'code': 'pass', 'good': [1], 'bad': [2]}"), -EINVAL);
	CHECK_EQ_STR(why, "the type root holds no record");
	/* code that does not compile */
	CHECK_EQ_INT(iset(e, "type two", "{'code': 'if value ==', 'good': [1], 'bad': [2]}"),
		     -EINVAL);
	CHECK(strstr(why, "SyntaxError") != NULL);
	/* a subtype needs its supertype */
	CHECK_EQ_INT(iset(e, "type foo bar", "{'code': 'pass', 'good': [1], 'bad': [2]}"),
		     -EINVAL);
	CHECK_EQ_STR(why, "type foo bar: its supertype foo does not exist");
	/* the failed sets stored nothing */
	CHECK_EQ_INT(iset(e, "match x", "{'type': ['two']}"), -EINVAL);
	CHECK_EQ_STR(why, "type two does not exist");
	done(e, t);
}

TEST(chains)
{
	struct dkv_types *t;
	struct dkv_engine *e = mk(&t);
	tutorial_types(e);
	/* bad examples may fail any level */
	CHECK_EQ_INT(iset(e, "type int percent even",
			  "{'code': 'if value % 2: raise ValueError(\"odd\")',"
			  " 'good': [0, 50], 'bad': [3, 102, 'x']}"),
		     0);
	CHECK_EQ_INT(iset(e, "match even #", "{'type': ['int', 'percent', 'even']}"), 0);
	CHECK_EQ_INT(dset(e, "even a", "4"), 0);
	CHECK_EQ_INT(dset(e, "even a", "3"), -EINVAL);
	CHECK_EQ_STR(why, "ValueError('odd')");
	CHECK_EQ_INT(dset(e, "even a", "102"), -EINVAL);
	CHECK_EQ_STR(why, "ValueError('not a percentage')");
	/* the top of the chain runs first */
	CHECK_EQ_INT(dset(e, "even a", "-2"), -EINVAL);
	CHECK_EQ_STR(why, "ValueError('not a percentage')");
	CHECK_EQ_INT(dset(e, "even a", "2.5"), -EINVAL);
	CHECK_EQ_STR(why, "ValueError('not an integer')");
	done(e, t);
}

TEST(wildcards)
{
	struct dkv_types *t;
	struct dkv_engine *e = mk(&t);
	const char *names[] = {"t1", "t2", "t3", "t4", "t5"};
	for (int i = 0; i < 5; i++) {
		char path[20], rec[200];
		snprintf(path, sizeof path, "type %s", names[i]);
		snprintf(rec, sizeof rec,
			 "{'code': 'if value != %d: raise ValueError(\"want %d\")', 'good': [%d], 'bad': [-1]}",
			 i + 1, i + 1, i + 1);
		CHECK_EQ_INT(iset(e, path, rec), 0);
	}
	CHECK_EQ_INT(iset(e, "match a #", "{'type': ['t1']}"), 0);
	CHECK_EQ_INT(iset(e, "match a + c", "{'type': ['t2']}"), 0);
	CHECK_EQ_INT(iset(e, "match a b c", "{'type': ['t3']}"), 0);
	CHECK_EQ_INT(iset(e, "match a # d", "{'type': ['t4']}"), 0);
	CHECK_EQ_INT(iset(e, "match + b", "{'type': ['t5']}"), 0);
	struct {
		const char *path;
		int want; /* the one value accepted; 0: no match */
	} cases[] = {
		{"a", 0},          /* '#' is one or more */
		{"a x", 1},        {"a x y z", 1}, {"a x c", 2},     {"a b c", 3},
		{"a b d", 4},      /* a # d before a #: the longer pattern is more specific */
		{"a x y d", 4},    {"a b", 1},     /* a # before + b: the first element decides */
		{"z b", 5},        {"z c", 0},     {"z b c", 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char v[8];
		snprintf(v, sizeof v, "%d", cases[i].want);
		if (cases[i].want) {
			CHECK_EQ_INT(dset(e, cases[i].path, v), 0);
			CHECK_EQ_INT(dset(e, cases[i].path, "99"), -EINVAL);
		} else {
			CHECK_EQ_INT(dset(e, cases[i].path, "99"), 0);
		}
		struct dkv_path p;
		struct dkv_buf pat = {0}, ty = {0};
		words(&p, cases[i].path);
		int rc = dkv_types_match(t, p.enc.data, p.enc.len, &pat, &ty);
		CHECK_EQ_INT(rc, cases[i].want ? 0 : -ENOENT);
		if (rc == 0) {
			struct dkv_path want;
			words(&want, names[cases[i].want - 1]);
			CHECK(ty.len == want.enc.len && !memcmp(ty.data, want.enc.data, ty.len));
			dkv_path_release(&want);
		}
		if (test_failed_)
			printf("# case %s\n", cases[i].path);
		dkv_path_release(&p);
		dkv_buf_release(&pat);
		dkv_buf_release(&ty);
	}
	/* deleting a match uncovers the path; the change counts at once */
	CHECK_EQ_INT(iset(e, "match a b c", NULL), 0);
	CHECK_EQ_INT(dset(e, "a b c", "2"), 0);
	done(e, t);
}

TEST(deletions)
{
	struct dkv_types *t;
	struct dkv_engine *e = mk(&t);
	tutorial_types(e);
	CHECK_EQ_INT(iset(e, "type int percent", NULL), -EINVAL);
	CHECK_EQ_STR(why, "type int percent is used by match stats # quota");
	CHECK_EQ_INT(iset(e, "type int", NULL), -EINVAL);
	CHECK_EQ_STR(why, "type int is the supertype of int percent");
	CHECK_EQ_INT(iset(e, "match stats # quota", NULL), 0);
	CHECK_EQ_INT(dset(e, "stats a quota", "'x'"), 0);
	CHECK_EQ_INT(iset(e, "type int percent", NULL), 0);
	CHECK_EQ_INT(iset(e, "type int", NULL), 0);
	done(e, t);
}

TEST(remote_not_checked)
{
	struct dkv_types *t;
	struct dkv_engine *e = mk(&t);
	tutorial_types(e);
	CHECK_EQ_INT(put(e, false, "stats a quota", "'x'", DKV_SRC_REMOTE), 0);
	CHECK_EQ_INT(put(e, false, "stats b quota", "'x'", DKV_SRC_REPLAY), 0);
	/* a type and match that came from elsewhere are enforced here */
	CHECK_EQ_INT(put(e, true, "type str",
			 "{'code': 'if not isinstance(value, str): raise TypeError(\"str\")',"
			 " 'good': ['a'], 'bad': [1]}",
			 DKV_SRC_REMOTE),
		     0);
	CHECK_EQ_INT(put(e, true, "match s +", "{'type': ['str']}", DKV_SRC_REMOTE), 0);
	CHECK_EQ_INT(dset(e, "s a", "1"), -EINVAL);
	CHECK_EQ_STR(why, "TypeError('str')");
	CHECK_EQ_INT(dset(e, "s a", "'1'"), 0);
	done(e, t);
}

TEST(recompile)
{
	struct dkv_types *t;
	struct dkv_engine *e = mk(&t);
	tutorial_types(e);
	CHECK_EQ_INT(dset(e, "stats x quota", "100"), 0);
	CHECK_EQ_INT(iset(e, "type int percent",
			  "{'code': 'if not (0 <= value <= 10): raise ValueError(\"not small\")',"
			  " 'good': [0, 10], 'bad': [11]}"),
		     0);
	CHECK_EQ_INT(dset(e, "stats x quota", "100"), -EINVAL);
	CHECK_EQ_STR(why, "ValueError('not small')");
	/* a match moved to another type */
	CHECK_EQ_INT(iset(e, "match stats # quota", "{'type': ['int']}"), 0);
	CHECK_EQ_INT(dset(e, "stats x quota", "100"), 0);
	CHECK_EQ_INT(dset(e, "stats x quota", "1.5"), -EINVAL);
	done(e, t);
}

TEST(no_matches)
{
	struct dkv_types *t;
	struct dkv_engine *e = mk(&t);
	/* types without matches, and none at all: everything goes */
	CHECK_EQ_INT(dset(e, "a b", "1"), 0);
	CHECK_EQ_INT(iset(e, "type int", INT_TYPE), 0);
	CHECK_EQ_INT(dset(e, "a b", "'x'"), 0);
	CHECK_EQ_INT(iset(e, "match", "{'type': ['int']}"), -EINVAL);
	CHECK_EQ_INT(iset(e, "match a", "{'type': []}"), -EINVAL);
	CHECK_EQ_INT(iset(e, "match a", "{'type': 'int'}"), -EINVAL);
	done(e, t);
}

TESTS(tutorial, examples, chains, wildcards, deletions, remote_not_checked, recompile,
      no_matches)
