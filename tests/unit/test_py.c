/*
 * test_py.c - ast.literal_eval through the embedded interpreter: each
 * Python type's msgpack form, big integers, and the error texts.
 */
#include "test.h"

#include "mp.h"
#include "py.h"

#include <errno.h>

static char err_[256];

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

TESTS(scalars, big_integers, containers, errors, shutdown)
