/* test_authspec.c - the client side of a login (engine/authspec.c): the
 * "METHOD key=value ..." text of -a and connect.auth, and the fields of
 * the auth request it becomes, byte for byte where the original's client
 * fixes them (the _test login of spec/reference-client-capture.txt). */
#include "auth.h"
#include "test.h"

#include <errno.h>
#include <sodium.h>

static int parse(struct dkv_auth_spec *sp, const char *text, char *err, size_t len)
{
	err[0] = 0;
	return dkv_auth_spec_parse(sp, text, err, len);
}

TEST(good_specs)
{
	struct dkv_auth_spec sp;
	char err[200];
	REQUIRE(parse(&sp, "_test name=joe", err, sizeof err) == 0);
	CHECK_EQ_INT(sp.method, DKV_AUTH_TEST);
	CHECK_EQ_STR(sp.name, "joe");
	CHECK(!sp.password && !sp.prompt);
	dkv_auth_spec_release(&sp);

	REQUIRE(parse(&sp, "  password \tname=joe   password=se=cret ", err, sizeof err) == 0);
	CHECK_EQ_INT(sp.method, DKV_AUTH_PASSWORD);
	CHECK_EQ_STR(sp.name, "joe");
	CHECK_EQ_STR(sp.password, "se=cret"); /* the first "=" splits */
	CHECK(!sp.prompt);
	dkv_auth_spec_release(&sp);
	CHECK(!sp.name && !sp.password);
	CHECK_EQ_INT(sp.method, DKV_AUTH_NONE);

	REQUIRE(parse(&sp, "password name=joe password?=Code", err, sizeof err) == 0);
	CHECK_EQ_STR(sp.prompt, "Code");
	CHECK(!sp.password);
	dkv_auth_spec_release(&sp);

	/* root needs no name */
	REQUIRE(parse(&sp, "root", err, sizeof err) == 0);
	CHECK_EQ_INT(sp.method, DKV_AUTH_ROOT);
	dkv_auth_spec_release(&sp);

	/* a later word wins */
	REQUIRE(parse(&sp, "_test name=a name=b", err, sizeof err) == 0);
	CHECK_EQ_STR(sp.name, "b");
	dkv_auth_spec_release(&sp);
}

TEST(bad_specs)
{
	struct dkv_auth_spec sp;
	char err[200];
	CHECK_EQ_INT(parse(&sp, "kerberos name=joe", err, sizeof err), -EINVAL);
	CHECK(strstr(err, "unknown method 'kerberos'"));
	CHECK_EQ_INT(sp.method, DKV_AUTH_NONE);
	CHECK_EQ_INT(parse(&sp, "", err, sizeof err), -EINVAL);
	CHECK(strstr(err, "unknown method"));

	CHECK_EQ_INT(parse(&sp, "_test name=joe colour=red", err, sizeof err), -EINVAL);
	CHECK(strstr(err, "'colour'"));
	CHECK(!sp.name); /* released on failure */
	/* a password for a method that takes none */
	CHECK_EQ_INT(parse(&sp, "_test name=joe password=x", err, sizeof err), -EINVAL);
	CHECK(strstr(err, "'password'"));
	CHECK_EQ_INT(parse(&sp, "_test name?=joe", err, sizeof err), -EINVAL);

	CHECK_EQ_INT(parse(&sp, "_test", err, sizeof err), -EINVAL);
	CHECK(strstr(err, "needs name=USER"));
	CHECK_EQ_INT(parse(&sp, "password password=x", err, sizeof err), -EINVAL);
	CHECK(strstr(err, "needs name=USER"));

	CHECK_EQ_INT(parse(&sp, "_test joe", err, sizeof err), -EINVAL);
	CHECK(strstr(err, "not key=value"));
	CHECK_EQ_INT(parse(&sp, "_test =joe", err, sizeof err), -EINVAL);
}

/* The _test request as the original packs it (capture, connection 2),
 * without its last two fields, action and seq, which the sender adds. */
TEST(test_fields_match_the_capture)
{
	static const uint8_t want[] = {
		0xa3, 't', 'y', 'p', 0xa5, '_', 't', 'e', 's', 't',
		0xa6, 'c', 'h', 'r', 'o', 'o', 't', 0x90,
		0xa5, 'i', 'd', 'e', 'n', 't', 0xa3, 'j', 'o', 'e',
		0xa4, 'd', 'a', 't', 'a', 0x80,
	};
	struct dkv_auth_spec sp;
	struct dkv_buf b = {0};
	char err[200];
	REQUIRE(parse(&sp, "_test name=joe", err, sizeof err) == 0);
	CHECK_EQ_INT(dkv_auth_login_fields(&sp, NULL, &b), 4);
	CHECK_EQ_INT(b.len, sizeof want);
	CHECK(b.len == sizeof want && !memcmp(b.data, want, sizeof want));
	dkv_buf_release(&b);
	dkv_auth_spec_release(&sp);
}

/* data: {password: BOX}, where BOX opens with the key pair to the
 * password and does not hold it in clear. */
TEST(password_is_sealed)
{
	uint8_t pk[crypto_box_PUBLICKEYBYTES], sk[crypto_box_SECRETKEYBYTES];
	struct dkv_auth_spec sp;
	struct dkv_buf b = {0};
	char err[200];
	REQUIRE(sodium_init() >= 0);
	REQUIRE(crypto_box_keypair(pk, sk) == 0);
	REQUIRE(parse(&sp, "password name=joe password=hunter2hunter2", err, sizeof err) == 0);
	CHECK_EQ_INT(dkv_auth_login_fields(&sp, pk, &b), 4);
	CHECK(!memmem(b.data, b.len, "hunter2", 7));

	struct dkv_mp_reader r;
	struct dkv_mp_item it;
	const uint8_t *box = NULL;
	size_t boxlen = 0;
	dkv_mp_reader_init(&r, b.data, b.len);
	for (int i = 0; i < 4; i++) {
		REQUIRE(dkv_mp_read(&r, &it) == 0 && it.type == DKV_MP_STR);
		if (!dkv_mp_streq(&it, "data")) {
			REQUIRE(dkv_mp_skip(&r) == 0);
			continue;
		}
		REQUIRE(dkv_mp_read(&r, &it) == 0 && it.type == DKV_MP_MAP && it.v.n == 1);
		REQUIRE(dkv_mp_read(&r, &it) == 0 && dkv_mp_streq(&it, "password"));
		REQUIRE(dkv_mp_read(&r, &it) == 0 && it.type == DKV_MP_BIN);
		box = it.v.s.p;
		boxlen = it.v.s.len;
	}
	REQUIRE(box && boxlen == crypto_box_SEALBYTES + 14);
	uint8_t clear[14];
	CHECK(crypto_box_seal_open(clear, box, boxlen, pk, sk) == 0);
	CHECK(!memcmp(clear, "hunter2hunter2", 14));
	dkv_buf_release(&b);
	dkv_auth_spec_release(&sp);
}

TESTS(good_specs, bad_specs, test_fields_match_the_capture, password_is_sealed)
