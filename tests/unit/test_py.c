/*
 * test_py.c - the embedded interpreter: ast.literal_eval (each Python
 * type's msgpack form, big integers, the error texts), stored procedures
 * (compiling, calling with every type, errors, the time limit, the
 * recursion and memory bounds, calls from several threads), JSON schema
 * checks, and the cost of one call.
 */
#include "test.h"

#include "mp.h"
#include "py.h"

#include <errno.h>
#include <pthread.h>
#include <time.h>

static char err_[256];

/* The time limit of the tests that are not about it: generous, so that a
 * loaded machine (sanitizers, other jobs) does not make them time out. */
#define LIMIT 10.0

/* CPython keeps some allocations past Py_FinalizeEx() by design; tell
 * LeakSanitizer (when built with it) to ignore leaks allocated inside
 * libpython only, so leaks of our own still fail the test.  The same rule
 * is in tests/lsan.supp for other programs that embed Python. */
const char *__lsan_default_suppressions(void)
{
	return "leak:libpython3\n";
}

/* Evaluate src; 1 when it succeeds and gives exactly the bytes want[0..n). */
static int gives(const char *src, const struct dkv_buf *want)
{
	struct dkv_buf out = {0};
	int rc = dkv_py_literal_eval(&out, src, err_, sizeof err_);
	int ok = !rc && out.len == want->len && !memcmp(out.data, want->data, out.len);
	if (!ok) {
		printf("#   %s: rc %d err \"%s\", got", src, rc, err_);
		for (size_t i = 0; i < out.len; i++)
			printf(" %02x", out.data[i]);
		printf("\n");
	}
	dkv_buf_release(&out);
	return ok;
}

/* Evaluate src expecting failure; out must be left as it was. */
static int fails(const char *src)
{
	struct dkv_buf out = {0};
	dkv_buf_puts(&out, "keep");
	int rc = dkv_py_literal_eval(&out, src, err_, sizeof err_);
	int ok = rc == -EINVAL && out.len == 4 && !memcmp(out.data, "keep", 4);
	if (!ok)
		printf("#   %s: rc %d, out.len %zu\n", src, rc, out.len);
	dkv_buf_release(&out);
	return ok;
}

TEST(scalars)
{
	struct dkv_buf w = {0};

	dkv_mp_uint(&w, 123);
	CHECK(gives("123", &w));
	CHECK(gives("  123", &w)); /* literal_eval strips leading blanks */
	w.len = 0, dkv_mp_int(&w, -5);
	CHECK(gives("-5", &w));
	w.len = 0, dkv_mp_int(&w, INT64_MIN);
	CHECK(gives("-9223372036854775808", &w));
	w.len = 0, dkv_mp_uint(&w, UINT64_MAX);
	CHECK(gives("18446744073709551615", &w));
	w.len = 0, dkv_mp_double(&w, 1.5);
	CHECK(gives("1.5", &w));
	w.len = 0, dkv_mp_cstr(&w, "str");
	CHECK(gives("'str'", &w));
	w.len = 0, dkv_mp_cstr(&w, "gr\xc3\xbc\xc3\x9f" "e");
	CHECK(gives("'gr\\xfc\\xdfe'", &w));
	w.len = 0, dkv_mp_bin(&w, "bytes", 5);
	CHECK(gives("b'bytes'", &w));
	w.len = 0, dkv_mp_bin(&w, "", 0);
	CHECK(gives("b''", &w));
	w.len = 0, dkv_mp_bool(&w, true);
	CHECK(gives("True", &w));
	w.len = 0, dkv_mp_bool(&w, false);
	CHECK(gives("False", &w));
	w.len = 0, dkv_mp_nil(&w);
	CHECK(gives("None", &w));
	dkv_buf_release(&w);
}

TEST(big_integers)
{
	static const uint8_t two70[] = {0x40, 0, 0, 0, 0, 0, 0, 0, 0};
	struct dkv_buf w = {0};

	dkv_mp_bigint(&w, two70, sizeof two70);
	CHECK_EQ_INT(w.data[0], 0xc7);
	CHECK_EQ_INT(w.data[2], DKV_EXT_BIGINT);
	CHECK(gives("1180591620717411303424", &w));
	CHECK(gives("0x400000000000000000", &w));

	CHECK(fails("-9223372036854775809"));
	CHECK(!strncmp(err_, "integer too small", 17));
	dkv_buf_release(&w);
}

TEST(containers)
{
	struct dkv_buf w = {0};

	dkv_mp_array(&w, 2);
	dkv_mp_uint(&w, 1);
	dkv_mp_array(&w, 2);
	dkv_mp_uint(&w, 2);
	dkv_mp_uint(&w, 3);
	CHECK(gives("[1,(2,3)]", &w));
	CHECK(gives("(1,[2,3])", &w));

	w.len = 0;
	dkv_mp_map(&w, 1);
	dkv_mp_cstr(&w, "a");
	dkv_mp_uint(&w, 1);
	CHECK(gives("{'a':1}", &w));

	w.len = 0;
	dkv_mp_map(&w, 2);
	dkv_mp_array(&w, 2);
	dkv_mp_uint(&w, 1);
	dkv_mp_nil(&w);
	dkv_mp_map(&w, 0);
	dkv_mp_bin(&w, "k", 1);
	dkv_mp_array(&w, 0);
	CHECK(gives("{(1, None): {}, b'k': []}", &w));

	/* DKV_MP_MAX_DEPTH nested lists are fine, one more is not */
	char src[2 * DKV_MP_MAX_DEPTH + 8], *p = src;
	w.len = 0;
	for (int i = 0; i < DKV_MP_MAX_DEPTH; i++)
		*p++ = '[', dkv_mp_array(&w, 1);
	*p++ = '1';
	dkv_mp_uint(&w, 1);
	for (int i = 0; i < DKV_MP_MAX_DEPTH; i++)
		*p++ = ']';
	*p = 0;
	CHECK(gives(src, &w));
	memmove(src + 1, src, strlen(src) + 1);
	src[0] = '(';
	strcat(src, ",)");
	CHECK(fails(src));
	CHECK(strstr(err_, "nested") != NULL);
	dkv_buf_release(&w);
}

TEST(errors)
{
	CHECK(fails("1 +"));
	CHECK(!strncmp(err_, "SyntaxError: ", 13));
	CHECK(strstr(err_, "line 1") != NULL);

	CHECK(fails("{1, 2}"));
	CHECK(strstr(err_, "set") != NULL);
	CHECK(fails("frozenset()"));
	CHECK(!strncmp(err_, "ValueError: malformed node or string", 36));
	CHECK(fails("1j"));
	CHECK(strstr(err_, "complex") != NULL);
	CHECK(fails("..."));
	CHECK(strstr(err_, "ellipsis") != NULL);
	CHECK(fails("foo"));
	CHECK(!strncmp(err_, "ValueError: malformed node or string", 36));
	CHECK(fails("__import__('os').system('true')"));
	CHECK(!strncmp(err_, "ValueError: ", 12));
	CHECK(fails("'\xff'")); /* the source is not UTF-8 */
	CHECK(!strncmp(err_, "UnicodeDecodeError: ", 20));
	CHECK(fails("'\\ud800'")); /* a lone surrogate has no UTF-8 form */
	CHECK(!strncmp(err_, "UnicodeEncodeError: ", 20));

	/* a small error buffer is filled and terminated */
	char small[8];
	struct dkv_buf out = {0};
	CHECK_EQ_INT(dkv_py_literal_eval(&out, "1 +", small, sizeof small), -EINVAL);
	CHECK_EQ_STR(small, "SyntaxE");
	dkv_buf_release(&out);
}

TEST(shutdown)
{
	struct dkv_buf w = {0};
	dkv_py_shutdown();
	dkv_py_shutdown(); /* twice is harmless */
	dkv_mp_uint(&w, 7);
	CHECK(gives("7", &w)); /* starts again on use */
	dkv_py_shutdown();
	dkv_buf_release(&w);
}

/* ---- stored procedures ---- */

static const char *const value_[] = {"value"};

/* Compile src with the one parameter "value"; NULL (and a note) if not. */
static struct dkv_py_proc *proc(const char *src)
{
	struct dkv_py_proc *p = NULL;
	int rc = dkv_py_proc_new(&p, src, strlen(src), value_, 1, false, err_, sizeof err_);
	if (rc)
		printf("#   compiling \"%s\": %d %s\n", src, rc, err_);
	return p;
}

/* Call p with the literal arg (Python syntax); the result into out. */
static int call_lit(struct dkv_py_proc *p, const char *arg, struct dkv_buf *out)
{
	struct dkv_buf a = {0};
	int rc = dkv_py_literal_eval(&a, arg, err_, sizeof err_);
	if (!rc) {
		struct dkv_py_arg one = {a.data, a.len};
		rc = dkv_py_proc_call(p, &one, 1, out, err_, sizeof err_);
	}
	dkv_buf_release(&a);
	return rc;
}

/* Whether p(arg) returns the same as evaluating the literal want. */
static int returns(struct dkv_py_proc *p, const char *arg, const char *want)
{
	struct dkv_buf out = {0}, w = {0};
	int rc = call_lit(p, arg, &out);
	int ok = !rc && !dkv_py_literal_eval(&w, want, err_, sizeof err_) && out.len == w.len &&
		 !memcmp(out.data, w.data, w.len);
	if (!ok)
		printf("#   (%s) -> %s: rc %d err \"%s\"\n", arg, want, rc, err_);
	dkv_buf_release(&out);
	dkv_buf_release(&w);
	return ok;
}

/* Run src with value=None; its rc, with the message in err_. */
static int run(const char *src)
{
	struct dkv_py_proc *p = proc(src);
	struct dkv_buf out = {0};
	if (!p)
		return 1;
	int rc = call_lit(p, "None", &out);
	dkv_py_proc_free(p);
	dkv_buf_release(&out);
	return rc;
}

static double now_(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

TEST(proc_compile)
{
	struct dkv_py_proc *p = NULL;
	dkv_py_set_timeout(LIMIT); /* from here on (the time limit tests set their own) */
	const char *src = "x = 1\nif x\n    return 2\n";

	CHECK_EQ_INT(dkv_py_proc_new(&p, src, strlen(src), value_, 1, false, err_, sizeof err_),
		     -EINVAL);
	CHECK(p == NULL);
	CHECK(!strncmp(err_, "SyntaxError: line 2: ", 21));

	/* the length counts, not a NUL; an empty body is a valid one */
	CHECK_EQ_INT(dkv_py_proc_new(&p, "return 1; garbage(", 8, value_, 1, false, err_, sizeof err_), 0);
	dkv_py_proc_free(p);
	CHECK_EQ_INT(dkv_py_proc_new(&p, "", 0, value_, 1, false, err_, sizeof err_), 0);
	dkv_py_proc_free(p);

	/* a multi-line string keeps its text: the body is not re-indented */
	p = proc("return '''a\nb'''");
	REQUIRE(p);
	CHECK(returns(p, "None", "'a\\nb'"));
	dkv_py_proc_free(p);

	/* a body with its own functions, and no parameters */
	src = "def sq(x):\n    return x * x\nreturn sq(7)\n";
	CHECK_EQ_INT(dkv_py_proc_new(&p, src, strlen(src), NULL, 0, false, err_, sizeof err_), 0);
	struct dkv_buf out = {0};
	CHECK_EQ_INT(dkv_py_proc_call(p, NULL, 0, &out, err_, sizeof err_), 0);
	CHECK(out.len == 1 && out.data[0] == 49);
	dkv_py_proc_free(p);
	dkv_buf_release(&out);

	/* await only in an async body; async bodies compile */
	CHECK_EQ_INT(dkv_py_proc_new(&p, "await x", 7, NULL, 0, false, err_, sizeof err_), -EINVAL);
	CHECK(!strncmp(err_, "SyntaxError: line 1: ", 21));
	CHECK_EQ_INT(dkv_py_proc_new(&p, "await x", 7, NULL, 0, true, err_, sizeof err_), 0);
	CHECK_EQ_INT(dkv_py_proc_call(p, NULL, 0, &out, err_, sizeof err_), -EINVAL);
	dkv_py_proc_free(p);

	/* parameter names are checked */
	const char *const bad[] = {"a b"}, *const twice[] = {"a", "a"}, *const kw[] = {"if"};
	CHECK_EQ_INT(dkv_py_proc_new(&p, "pass", 4, bad, 1, false, err_, sizeof err_), -EINVAL);
	CHECK(!strncmp(err_, "SyntaxError: invalid parameter name", 35));
	CHECK_EQ_INT(dkv_py_proc_new(&p, "pass", 4, kw, 1, false, err_, sizeof err_), -EINVAL);
	CHECK_EQ_INT(dkv_py_proc_new(&p, "pass", 4, twice, 2, false, err_, sizeof err_), -EINVAL);
	CHECK(strstr(err_, "duplicate argument") != NULL);

	/* not UTF-8 */
	CHECK_EQ_INT(dkv_py_proc_new(&p, "'\xff'", 3, value_, 1, false, err_, sizeof err_), -EINVAL);
	CHECK(!strncmp(err_, "UnicodeDecodeError: ", 20));
}

TEST(proc_results)
{
	static const char *const cases[][2] = {
		{"return None", "None"},
		{"pass", "None"},
		{"return True", "True"},
		{"return False", "False"},
		{"return 42", "42"},
		{"return -2**63", "-9223372036854775808"},
		{"return 2**64 - 1", "18446744073709551615"},
		{"return 2**70", "1180591620717411303424"},
		{"return 1.5", "1.5"},
		{"return 'gr\\xfc\\xdfe'", "'gr\\xfc\\xdfe'"},
		{"return b'\\x00b'", "b'\\x00b'"},
		{"return bytearray(b'ab')", "b'ab'"},
		{"return [1, (2, 3), []]", "[1, [2, 3], []]"},
		{"return {'a': {1: None}, (1, 2): b''}", "{'a': {1: None}, (1, 2): b''}"},
		{"class S(str): pass\nreturn S('sub')", "'sub'"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct dkv_py_proc *p = proc(cases[i][0]);
		CHECK(p && returns(p, "None", cases[i][1]));
		dkv_py_proc_free(p);
	}

	/* what has no msgpack form, or too much of it */
	CHECK_EQ_INT(run("return {1, 2}"), -ERANGE);
	CHECK_EQ_STR(err_, "TypeError: cannot store a value of type 'set'");
	CHECK_EQ_INT(run("return -2**64"), -ERANGE);
	CHECK_EQ_INT(run("return '\\ud800'"), -ERANGE);
	CHECK(!strncmp(err_, "UnicodeEncodeError: ", 20));
	CHECK_EQ_INT(run("a = []\na.append(a)\nreturn a"), -ERANGE);
	CHECK(strstr(err_, "nested") != NULL);
	CHECK_EQ_INT(run("a = 'x' * 2**20\nreturn [a] * 100"), -ERANGE);
	CHECK_EQ_STR(err_, "result too large");
	CHECK_EQ_INT(run("return 'x' * 2**20"), 0);
}

TEST(proc_args)
{
	struct dkv_py_proc *p = proc("return value");
	REQUIRE(p);
	static const char *const same[] = {
		"None", "True", "0", "-1", "-9223372036854775808", "18446744073709551615",
		"1267650600228229401496703205376", "0.25", "'text'", "'gr\\xfc\\xdfe'", "b'\\xff\\x00'", "[]", "[1, [2, []]]",
		"{}", "{'a': 1, 2: [None]}",
	};
	for (size_t i = 0; i < sizeof same / sizeof same[0]; i++)
		CHECK(returns(p, same[i], same[i]));
	dkv_py_proc_free(p);

	/* what Python sees: arrays are lists, and tuples where a key must be hashable */
	p = proc("return type(value).__name__");
	REQUIRE(p);
	CHECK(returns(p, "[1]", "'list'"));
	CHECK(returns(p, "{}", "'dict'"));
	CHECK(returns(p, "b''", "'bytes'"));
	CHECK(returns(p, "1180591620717411303424", "'int'"));
	dkv_py_proc_free(p);
	p = proc("return [type(k).__name__ for k in value]");
	REQUIRE(p);
	CHECK(returns(p, "{(1, (2,)): 0}", "['tuple']"));
	dkv_py_proc_free(p);

	/* a path (ext 3) is a tuple of its elements; big ints (ext 2) are ints */
	struct dkv_buf a = {0}, inner = {0}, out = {0};
	dkv_mp_cstr(&inner, "a");
	dkv_mp_uint(&inner, 7);
	dkv_mp_ext(&a, DKV_EXT_PATH, inner.data, inner.len);
	p = proc("return (type(value).__name__, value)");
	REQUIRE(p);
	struct dkv_py_arg arg = {a.data, a.len};
	CHECK_EQ_INT(dkv_py_proc_call(p, &arg, 1, &out, err_, sizeof err_), 0);
	struct dkv_buf w = {0};
	dkv_py_literal_eval(&w, "('tuple', ['a', 7])", err_, sizeof err_);
	CHECK(out.len == w.len && !memcmp(out.data, w.data, w.len));

	/* a map key that cannot be hashed, an unknown ext type, bad msgpack */
	out.len = a.len = 0;
	dkv_mp_map(&a, 1);
	dkv_mp_map(&a, 0);
	dkv_mp_nil(&a);
	arg = (struct dkv_py_arg){a.data, a.len};
	CHECK_EQ_INT(dkv_py_proc_call(p, &arg, 1, &out, err_, sizeof err_), -EINVAL);
	CHECK(!strncmp(err_, "TypeError: ", 11));
	a.len = 0;
	dkv_mp_ext(&a, 9, "x", 1);
	arg = (struct dkv_py_arg){a.data, a.len};
	CHECK_EQ_INT(dkv_py_proc_call(p, &arg, 1, &out, err_, sizeof err_), -EINVAL);
	CHECK(strstr(err_, "ext type 9") != NULL);
	static const uint8_t truncated[] = {0xdd, 0xff, 0xff, 0xff, 0xff, 0x01};
	arg = (struct dkv_py_arg){truncated, sizeof truncated};
	CHECK_EQ_INT(dkv_py_proc_call(p, &arg, 1, &out, err_, sizeof err_), -EINVAL);
	CHECK_EQ_STR(err_, "truncated msgpack value");
	a.len = 0;
	for (int i = 0; i <= DKV_MP_MAX_DEPTH; i++)
		dkv_mp_array(&a, 1);
	dkv_mp_nil(&a);
	arg = (struct dkv_py_arg){a.data, a.len};
	CHECK_EQ_INT(dkv_py_proc_call(p, &arg, 1, &out, err_, sizeof err_), -EINVAL);
	CHECK(strstr(err_, "nested") != NULL);
	CHECK_EQ_INT(out.len, 0);
	dkv_py_proc_free(p);
	dkv_buf_release(&a);
	dkv_buf_release(&inner);
	dkv_buf_release(&out);
	dkv_buf_release(&w);

	/* several parameters, in order */
	const char *const names[] = {"a", "b", "c"};
	const char *src = "return [a, b, c]";
	struct dkv_buf x = {0}, y = {0}, z = {0};
	dkv_mp_uint(&x, 1);
	dkv_mp_cstr(&y, "two");
	dkv_mp_nil(&z);
	struct dkv_py_arg three[] = {{x.data, x.len}, {y.data, y.len}, {z.data, z.len}};
	REQUIRE(!dkv_py_proc_new(&p, src, strlen(src), names, 3, false, err_, sizeof err_));
	CHECK_EQ_INT(dkv_py_proc_call(p, three, 3, &out, err_, sizeof err_), 0);
	w.len = 0;
	dkv_py_literal_eval(&w, "[1, 'two', None]", err_, sizeof err_);
	CHECK(out.len == w.len && !memcmp(out.data, w.data, w.len));
	CHECK_EQ_INT(dkv_py_proc_call(p, three, 2, &out, err_, sizeof err_), -EINVAL);
	dkv_py_proc_free(p);
	dkv_buf_release(&x);
	dkv_buf_release(&y);
	dkv_buf_release(&z);
	dkv_buf_release(&out);
	dkv_buf_release(&w);
}

TEST(proc_raise)
{
	struct dkv_py_proc *p = proc("if not (0 <= value <= 100): raise ValueError('not a percentage')");
	struct dkv_buf out = {0};
	REQUIRE(p);
	CHECK(returns(p, "12", "None"));
	dkv_buf_puts(&out, "keep");
	CHECK_EQ_INT(call_lit(p, "123", &out), -EINVAL);
	CHECK_EQ_STR(err_, "ValueError('not a percentage')");
	CHECK_EQ_INT(out.len, 4);
	CHECK_EQ_INT(call_lit(p, "'123'", &out), -EINVAL);
	CHECK_EQ_STR(err_, "TypeError(\"'<=' not supported between instances of 'int' and 'str'\")");
	dkv_py_proc_free(p);

	CHECK_EQ_INT(run("raise RuntimeError"), -EINVAL);
	CHECK_EQ_STR(err_, "RuntimeError()");
	CHECK_EQ_INT(run("return undefined_name"), -EINVAL);
	CHECK_EQ_STR(err_, "NameError(\"name 'undefined_name' is not defined\")");
	/* a script's own __repr__ that fails: the type's name */
	CHECK_EQ_INT(run("class E(Exception):\n    def __repr__(self): raise KeyError\nraise E()"),
		     -EINVAL);
	CHECK_EQ_STR(err_, "E()");
	/* SystemExit and KeyboardInterrupt are errors of the call too */
	CHECK_EQ_INT(run("import sys\nsys.exit(3)"), -EINVAL);
	CHECK_EQ_STR(err_, "SystemExit(3)");
	CHECK_EQ_INT(run("raise KeyboardInterrupt"), -EINVAL);
	dkv_buf_release(&out);
}

TEST(proc_misuse)
{
	struct dkv_py_proc *p = proc("return 1");
	struct dkv_buf out = {0};
	REQUIRE(p);
	CHECK_EQ_INT(dkv_py_proc_call(p, NULL, 0, &out, err_, sizeof err_), -EINVAL);
	CHECK(strstr(err_, "takes 1 arguments, not 0") != NULL);
	dkv_py_proc_free(p);
	dkv_py_proc_free(NULL);
	dkv_buf_release(&out);
}

TEST(time_limit_loop)
{
	dkv_py_set_timeout(0.2);
	double t0 = now_();
	CHECK_EQ_INT(run("while True: pass"), -ETIMEDOUT);
	double took = now_() - t0;
	CHECK_EQ_STR(err_, "TimeoutError('stored code took longer than 0.2 s')");
	CHECK(took >= 0.2 && took < 1.0);
	printf("#   the loop ended after %.3f s\n", took);
	CHECK_EQ_INT(run("return 1"), 0); /* the next call works */
	CHECK_EQ_INT(run("x = 0\nfor i in range(1000): x += i\nreturn x"), 0);

	/* no limit: a long call is not cut off */
	dkv_py_set_timeout(0);
	CHECK_EQ_INT(run("import time\nt = time.monotonic()\nwhile time.monotonic() < t + 0.3: pass"), 0);
	dkv_py_set_timeout(LIMIT);
}

TEST(time_limit_sleep)
{
	dkv_py_set_timeout(0.2);
	double t0 = now_();
	CHECK_EQ_INT(run("import time\ntime.sleep(10)"), -ETIMEDOUT);
	double took = now_() - t0;
	CHECK(took >= 0.2 && took < 1.0);
	printf("#   the sleep ended after %.3f s\n", took);
	CHECK_EQ_STR(err_, "TimeoutError('stored code took longer than 0.2 s')");
	/* a short sleep is a sleep, and from time import sleep gets ours */
	CHECK_EQ_INT(run("from time import sleep\nsleep(0.01)\nreturn 1"), 0);
	CHECK_EQ_INT(run("import time\ntime.sleep(-1)"), -EINVAL);
	CHECK(!strncmp(err_, "ValueError(", 11));
	dkv_py_set_timeout(LIMIT);
}

TEST(time_limit_caught)
{
	dkv_py_set_timeout(0.2);
	/* caught once: the watchdog raises again */
	CHECK_EQ_INT(run("try:\n    while True: pass\nexcept Exception:\n    pass\nwhile True: pass"),
		     -ETIMEDOUT);
	/* caught and returned: a timeout all the same */
	CHECK_EQ_INT(run("try:\n    while True: pass\nexcept TimeoutError:\n    return 5"), -ETIMEDOUT);
	/* nothing is left pending for the next calls */
	struct dkv_py_proc *p = proc("x = 0\nfor i in range(100): x += i\nreturn x");
	REQUIRE(p);
	for (int i = 0; i < 20; i++)
		CHECK(returns(p, "None", "4950"));
	dkv_py_proc_free(p);
	dkv_py_set_timeout(LIMIT);
}

/* Calls until the Python thread is done with an abandoned call; the
 * last result. */
static int when_free(void)
{
	static const char src[] = "return 1";
	int rc = -EBUSY;
	for (int i = 0; i < 2400 && rc == -EBUSY; i++) { /* a minute */
		struct dkv_py_proc *p;
		rc = dkv_py_proc_new(&p, src, sizeof src - 1, NULL, 0, false, err_, sizeof err_);
		if (rc == -EBUSY)
			nanosleep(&(struct timespec){0, 25000000}, NULL);
		dkv_py_proc_free(rc ? NULL : p);
	}
	return rc ? rc : run(src);
}

TEST(time_limit_stuck)
{
	dkv_py_set_timeout(0.2);
	/* a blocking call in C (1.5 s, whatever the machine's speed): the
	 * caller stops waiting at the limit and the grace, the thread
	 * finishes the call */
	double t0 = now_();
	CHECK_EQ_INT(run("import select\nselect.select([], [], [], 1.5)"), -ETIMEDOUT);
	double took = now_() - t0;
	printf("#   the caller of the blocking call went on after %.3f s\n", took);
	CHECK(took >= 0.2 && took < 0.8);
	CHECK_EQ_STR(err_, "TimeoutError('stored code took longer than 0.2 s')");
	/* meanwhile calls fail at once, and say why */
	struct dkv_py_proc *p;
	t0 = now_();
	CHECK_EQ_INT(dkv_py_proc_new(&p, "return 1", 8, NULL, 0, false, err_, sizeof err_), -EBUSY);
	CHECK(now_() - t0 < 0.1);
	CHECK(strstr(err_, "Python is busy: a stored script overran") != NULL);
	CHECK_EQ_INT(when_free(), 0);

	/* C code that holds the GIL (how long depends on the machine: at
	 * least past the limit, a timeout either way) */
	CHECK_EQ_INT(run("return sum(range(10**8))"), -ETIMEDOUT);
	CHECK_EQ_INT(when_free(), 0);

	/* a script that keeps catching the TimeoutError, for 1.5 s */
	t0 = now_();
	CHECK_EQ_INT(run("import time\nt = time.monotonic()\nwhile time.monotonic() < t + 1.5:\n"
			 "    try:\n        while True: pass\n    except TimeoutError:\n        pass"),
		     -ETIMEDOUT);
	CHECK(now_() - t0 < 0.8);
	CHECK_EQ_INT(when_free(), 0);
	dkv_py_set_timeout(LIMIT);
}

TEST(recursion)
{
	CHECK_EQ_INT(run("def f(): f()\nf()"), -EINVAL);
	CHECK(!strncmp(err_, "RecursionError('maximum recursion depth exceeded", 48));
	/* recursion in C, through repr of a deep list */
	CHECK_EQ_INT(run("a = []\nfor i in range(100000): a = [a]\nreturn repr(a)"), -EINVAL);
	CHECK(!strncmp(err_, "RecursionError(", 15));
	/* the same structure as a result: too deep for msgpack */
	CHECK_EQ_INT(run("a = []\nfor i in range(100000): a = [a]\nreturn a"), -ERANGE);
	/* moderate recursion is fine */
	CHECK_EQ_INT(run("def f(n): return n and f(n - 1)\nreturn f(100)"), 0);
	CHECK_EQ_INT(run("return 1"), 0);
}

TEST(memory)
{
	/* filling 256 MiB takes seconds where page faults are slow (VMs,
	 * ASan, a loaded machine), and the time limit must not come first */
	dkv_py_set_timeout(120);
	CHECK_EQ_INT(run("return len('x' * 10**10)"), -EINVAL);
	CHECK_EQ_STR(err_, "MemoryError()");
	CHECK_EQ_INT(run("return len([0] * 10**9)"), -EINVAL);
	CHECK_EQ_STR(err_, "MemoryError()");
	CHECK_EQ_INT(run("return len(bytearray(300 << 20))"), -EINVAL);
	/* small objects (pymalloc's, at most 512 bytes): their arenas count;
	 * the list itself would take 8 MB */
	CHECK_EQ_INT(run("return len([bytes(400) for i in range(10**6)])"), -EINVAL);
	CHECK_EQ_STR(err_, "MemoryError()");
	/* within the budget, and what a call frees counts for it */
	CHECK_EQ_INT(run("for i in range(3):\n    b = bytearray(100 << 20)\n    del b\nreturn 1"), 0);
	CHECK_EQ_INT(run("return 1"), 0);
	dkv_py_set_timeout(LIMIT);
}

/* ---- several threads ---- */

struct worker {
	struct dkv_py_proc *p;
	int base, failures;
	char err[256];
};

static void *work(void *arg)
{
	struct worker *w = arg;
	struct dkv_buf a = {0}, out = {0};
	for (int i = 0; i < 2000; i++) {
		a.len = out.len = 0;
		dkv_mp_int(&a, w->base + i);
		struct dkv_py_arg one = {a.data, a.len};
		struct dkv_mp_reader r;
		struct dkv_mp_item it;
		int rc = dkv_py_proc_call(w->p, &one, 1, &out, w->err, sizeof w->err);
		dkv_mp_reader_init(&r, out.data, out.len);
		if (rc || dkv_mp_read(&r, &it) || it.type != DKV_MP_UINT ||
		    it.v.u != (uint64_t)(w->base + i) * 2)
			w->failures++;
	}
	dkv_buf_release(&a);
	dkv_buf_release(&out);
	return NULL;
}

static void *loop_once(void *arg)
{
	int *rc = arg;
	struct dkv_py_proc *p = NULL;
	char err[256];
	struct dkv_buf out = {0};
	*rc = dkv_py_proc_new(&p, "while True: pass", 16, NULL, 0, false, err, sizeof err);
	if (!*rc)
		*rc = dkv_py_proc_call(p, NULL, 0, &out, err, sizeof err);
	dkv_py_proc_free(p);
	dkv_buf_release(&out);
	return NULL;
}

TEST(threads)
{
	struct dkv_py_proc *p = proc("return value * 2");
	struct worker w[3] = {{p, 0, 0, ""}, {p, 100000, 0, ""}, {p, 200000, 0, ""}};
	pthread_t t[3], looper;
	int loop_rc = 0;
	REQUIRE(p);

	/* one thread loops into its time limit while three others call */
	dkv_py_set_timeout(0.3);
	REQUIRE(!pthread_create(&looper, NULL, loop_once, &loop_rc));
	for (int i = 0; i < 3; i++)
		REQUIRE(!pthread_create(&t[i], NULL, work, &w[i]));
	work(&(struct worker){p, 300000, 0, ""}); /* and the main thread */
	for (int i = 0; i < 3; i++) {
		pthread_join(t[i], NULL);
		CHECK_EQ_INT(w[i].failures, 0);
		if (w[i].failures)
			printf("#   %s\n", w[i].err);
	}
	pthread_join(looper, NULL);
	CHECK_EQ_INT(loop_rc, -ETIMEDOUT);
	dkv_py_set_timeout(LIMIT);

	/* threads that come and go (FUSE's workers do): each leaves its
	 * Python state behind at its end, which deletes it */
	for (int round = 0; round < 20; round++) {
		struct worker one = {p, round, 0, ""};
		pthread_t t1;
		REQUIRE(!pthread_create(&t1, NULL, work, &one));
		pthread_join(t1, NULL);
		CHECK_EQ_INT(one.failures, 0);
	}
	dkv_py_proc_free(p);
}

/* ---- JSON schema ---- */

static int schema_check(const char *schema, const char *value)
{
	struct dkv_buf s = {0}, v = {0};
	int rc = dkv_py_literal_eval(&s, schema, err_, sizeof err_);
	if (!rc)
		rc = dkv_py_literal_eval(&v, value, err_, sizeof err_);
	if (!rc)
		rc = dkv_py_schema_check(s.data, s.len, v.data, v.len, err_, sizeof err_);
	dkv_buf_release(&s);
	dkv_buf_release(&v);
	return rc;
}

TEST(schema)
{
	const char *pct = "{'type': 'integer', 'minimum': 0, 'maximum': 100}";
	CHECK_EQ_INT(schema_check(pct, "12"), 0);
	CHECK_EQ_INT(schema_check(pct, "0"), 0);
	CHECK_EQ_INT(schema_check(pct, "101"), -EINVAL);
	CHECK_EQ_STR(err_, "ValidationError('101 is greater than the maximum of 100')");
	CHECK_EQ_INT(schema_check(pct, "'12'"), -EINVAL);
	CHECK_EQ_STR(err_, "ValidationError(\"'12' is not of type 'integer'\")");

	const char *obj = "{'type': 'object', 'properties': {'a': {'type': 'array', "
			  "'items': {'type': 'string'}}}, 'required': ['a']}";
	CHECK_EQ_INT(schema_check(obj, "{'a': ['x', 'y']}"), 0);
	CHECK_EQ_INT(schema_check(obj, "{'a': ['x', 2]}"), -EINVAL);
	CHECK(strstr(err_, "is not of type 'string'") != NULL);
	CHECK_EQ_INT(schema_check(obj, "{}"), -EINVAL);
	CHECK(strstr(err_, "'a' is a required property") != NULL);

	/* a schema that is not one */
	CHECK_EQ_INT(schema_check("{'type': 5}", "1"), -EINVAL);
	CHECK(!strncmp(err_, "SchemaError(", 12));
	/* a deeply nested value against a recursive schema */
	char deep[2 * DKV_MP_MAX_DEPTH + 4], *q = deep;
	for (int i = 0; i < DKV_MP_MAX_DEPTH - 1; i++)
		*q++ = '[';
	for (int i = 0; i < DKV_MP_MAX_DEPTH - 1; i++)
		*q++ = ']';
	*q = 0;
	CHECK_EQ_INT(schema_check("{'type': 'array', 'items': {'$ref': '#'}}", deep), 0);
	if (err_[0])
		printf("#   %s\n", err_);
}

TEST(proc_after_shutdown)
{
	struct dkv_py_proc *p = proc("return 1");
	struct dkv_buf out = {0};
	REQUIRE(p);
	dkv_py_shutdown();
	CHECK_EQ_INT(dkv_py_proc_call(p, NULL, 0, &out, err_, sizeof err_), -EINVAL);
	dkv_py_proc_free(p); /* belonged to the old interpreter: only freed */
	CHECK_EQ_INT(run("return 1"), 0); /* starts again */
	dkv_buf_release(&out);
}

/* The cost of one call of a one-line check with an int: a type check per
 * write needs well under 20 us for 50,000 checked sets/s. */
static void *bench(void *arg)
{
	const char *who = arg;
	struct dkv_py_proc *p = proc("if not (0 <= value <= 100): raise ValueError()");
	struct dkv_buf a = {0}, out = {0};
	int n = 200000, failed = 0;
	if (!p)
		return "cannot compile";
	dkv_mp_uint(&a, 42);
	struct dkv_py_arg one = {a.data, a.len};
	double t0 = now_();
	for (int i = 0; i < n; i++) {
		out.len = 0;
		failed |= dkv_py_proc_call(p, &one, 1, &out, err_, sizeof err_);
	}
	double took = now_() - t0;
	printf("#   %s: %d calls in %.3f s: %.0f calls/s, %.2f us a call\n", who, n, took,
	       n / took, took / n * 1e6);
	dkv_py_proc_free(p);
	dkv_buf_release(&a);
	dkv_buf_release(&out);
	return failed ? "a call failed" : NULL;
}

TEST(bench_call)
{
	pthread_t t;
	void *failed = NULL;

	/* the thread that started Python, and one that has no Python state */
	CHECK(bench("the starting thread") == NULL);
	REQUIRE(!pthread_create(&t, NULL, bench, "another thread"));
	pthread_join(t, &failed);
	CHECK(failed == NULL);
	dkv_py_shutdown();
}

TESTS(scalars, big_integers, containers, errors, shutdown, proc_compile, proc_results,
      proc_args, proc_raise, proc_misuse, time_limit_loop, time_limit_sleep, time_limit_caught,
      time_limit_stuck,
      recursion, memory, threads, schema, proc_after_shutdown, bench_call)
