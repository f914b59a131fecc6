/*
 * test.h - a tiny TAP-producing unit test harness.
 *
 * A test file defines functions with TEST(name) and lists them once at the
 * bottom with TESTS(name, name, ...).  Each test prints one TAP line; the
 * program exits 1 when any check failed.  CHECK() records a failure and
 * goes on; REQUIRE() ends the current test.
 */
#ifndef DKV_TEST_H
#define DKV_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_failed_ = 0;

/* A hook of LeakSanitizer's that a test program may define (test_py.c). */
const char *__lsan_default_suppressions(void);

#define TEST(name) static void test_##name(void)

/* TEARDOWN(name) { ... }: runs once after every test, whatever they did
 * (removing temporary files).  Not a test: a failed CHECK in it makes the
 * program exit 1 with a comment line, without a TAP line of its own. */
static void (*test_teardown_)(void) __attribute__((unused));
#define TEARDOWN(name)                                                               \
	static void name(void);                                                      \
	__attribute__((constructor)) static void name##_register_(void)              \
	{                                                                            \
		test_teardown_ = name;                                               \
	}                                                                            \
	static void name(void)

#define CHECK(cond)                                                                  \
	do {                                                                         \
		if (!(cond)) {                                                       \
			printf("#   %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			test_failed_ = 1;                                            \
		}                                                                    \
	} while (0)

#define REQUIRE(cond)                                                                \
	do {                                                                         \
		if (!(cond)) {                                                       \
			printf("#   %s:%d: required: %s\n", __FILE__, __LINE__, #cond);  \
			test_failed_ = 1;                                            \
			return;                                                      \
		}                                                                    \
	} while (0)

#define CHECK_EQ_INT(a, b)                                                           \
	do {                                                                         \
		long long a_ = (long long)(a), b_ = (long long)(b);                  \
		if (a_ != b_) {                                                      \
			printf("#   %s:%d: %s == %lld, expected %lld\n", __FILE__,      \
			       __LINE__, #a, a_, b_);                                \
			test_failed_ = 1;                                            \
		}                                                                    \
	} while (0)

#define CHECK_EQ_STR(a, b)                                                           \
	do {                                                                         \
		const char *a_ = (a), *b_ = (b);                                     \
		if (!a_ || !b_ || strcmp(a_, b_)) {                                  \
			printf("#   %s:%d: %s == \"%s\", expected \"%s\"\n", __FILE__,  \
			       __LINE__, #a, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); \
			test_failed_ = 1;                                            \
		}                                                                    \
	} while (0)

struct test_case_ {
	const char *name;
	void (*fn)(void);
};

#define TEST_ENTRY_(name) {#name, test_##name},
#define TEST_MAP1_(m, x) m(x)
#define TEST_MAP_(m, ...) TEST_FOREACH_(m, __VA_ARGS__)

/* TESTS(a, b, c): up to 32 names. */
#define TEST_E_(x) TEST_ENTRY_(x)
#define TEST_FE_1(x) TEST_E_(x)
#define TEST_FE_2(x, ...) TEST_E_(x) TEST_FE_1(__VA_ARGS__)
#define TEST_FE_3(x, ...) TEST_E_(x) TEST_FE_2(__VA_ARGS__)
#define TEST_FE_4(x, ...) TEST_E_(x) TEST_FE_3(__VA_ARGS__)
#define TEST_FE_5(x, ...) TEST_E_(x) TEST_FE_4(__VA_ARGS__)
#define TEST_FE_6(x, ...) TEST_E_(x) TEST_FE_5(__VA_ARGS__)
#define TEST_FE_7(x, ...) TEST_E_(x) TEST_FE_6(__VA_ARGS__)
#define TEST_FE_8(x, ...) TEST_E_(x) TEST_FE_7(__VA_ARGS__)
#define TEST_FE_9(x, ...) TEST_E_(x) TEST_FE_8(__VA_ARGS__)
#define TEST_FE_10(x, ...) TEST_E_(x) TEST_FE_9(__VA_ARGS__)
#define TEST_FE_11(x, ...) TEST_E_(x) TEST_FE_10(__VA_ARGS__)
#define TEST_FE_12(x, ...) TEST_E_(x) TEST_FE_11(__VA_ARGS__)
#define TEST_FE_13(x, ...) TEST_E_(x) TEST_FE_12(__VA_ARGS__)
#define TEST_FE_14(x, ...) TEST_E_(x) TEST_FE_13(__VA_ARGS__)
#define TEST_FE_15(x, ...) TEST_E_(x) TEST_FE_14(__VA_ARGS__)
#define TEST_FE_16(x, ...) TEST_E_(x) TEST_FE_15(__VA_ARGS__)
#define TEST_FE_17(x, ...) TEST_E_(x) TEST_FE_16(__VA_ARGS__)
#define TEST_FE_18(x, ...) TEST_E_(x) TEST_FE_17(__VA_ARGS__)
#define TEST_FE_19(x, ...) TEST_E_(x) TEST_FE_18(__VA_ARGS__)
#define TEST_FE_20(x, ...) TEST_E_(x) TEST_FE_19(__VA_ARGS__)
#define TEST_FE_21(x, ...) TEST_E_(x) TEST_FE_20(__VA_ARGS__)
#define TEST_FE_22(x, ...) TEST_E_(x) TEST_FE_21(__VA_ARGS__)
#define TEST_FE_23(x, ...) TEST_E_(x) TEST_FE_22(__VA_ARGS__)
#define TEST_FE_24(x, ...) TEST_E_(x) TEST_FE_23(__VA_ARGS__)
#define TEST_FE_25(x, ...) TEST_E_(x) TEST_FE_24(__VA_ARGS__)
#define TEST_FE_26(x, ...) TEST_E_(x) TEST_FE_25(__VA_ARGS__)
#define TEST_FE_27(x, ...) TEST_E_(x) TEST_FE_26(__VA_ARGS__)
#define TEST_FE_28(x, ...) TEST_E_(x) TEST_FE_27(__VA_ARGS__)
#define TEST_FE_29(x, ...) TEST_E_(x) TEST_FE_28(__VA_ARGS__)
#define TEST_FE_30(x, ...) TEST_E_(x) TEST_FE_29(__VA_ARGS__)
#define TEST_FE_31(x, ...) TEST_E_(x) TEST_FE_30(__VA_ARGS__)
#define TEST_FE_32(x, ...) TEST_E_(x) TEST_FE_31(__VA_ARGS__)
#define TEST_NARG_(...) TEST_NARG2_(__VA_ARGS__, 32, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, \
				    20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, \
				    4, 3, 2, 1, 0)
#define TEST_NARG2_(_1, _2, _3, _4, _5, _6, _7, _8, _9, _10, _11, _12, _13, _14, _15, _16, \
		    _17, _18, _19, _20, _21, _22, _23, _24, _25, _26, _27, _28, _29, _30, _31, \
		    _32, N, ...)                                                             \
	N
#define TEST_CAT_(a, b) TEST_CAT2_(a, b)
#define TEST_CAT2_(a, b) a##b

#define TESTS(...)                                                                   \
	static const struct test_case_ test_cases_[] = {                             \
		TEST_CAT_(TEST_FE_, TEST_NARG_(__VA_ARGS__))(__VA_ARGS__)};          \
	int main(void)                                                               \
	{                                                                            \
		size_t n = sizeof test_cases_ / sizeof test_cases_[0];               \
		int any = 0;                                                         \
		setvbuf(stdout, NULL, _IONBF, 0);                                    \
		printf("1..%zu\n", n);                                               \
		for (size_t i = 0; i < n; i++) {                                     \
			test_failed_ = 0;                                            \
			test_cases_[i].fn();                                         \
			printf("%sok %zu - %s\n", test_failed_ ? "not " : "", i + 1,  \
			       test_cases_[i].name);                                 \
			any |= test_failed_;                                         \
		}                                                                    \
		if (test_teardown_) {                                                \
			test_failed_ = 0;                                            \
			test_teardown_();                                            \
			if (test_failed_)                                            \
				printf("# teardown failed\n");                      \
			any |= test_failed_;                                         \
		}                                                                    \
		return any;                                                          \
	}

#endif
