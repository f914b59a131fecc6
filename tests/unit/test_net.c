/* test_net.c - the request decoder (decode.c) and the action table
 * (proto.c): what every request meets before its handler runs. */
#include "net.h"
#include "test.h"

#include <errno.h>
#include <msgpack.h>

/* Pack a request map from alternating key, value-writer pairs. */
struct field {
	const char *key;
	void (*put)(msgpack_packer *pk, const void *arg);
	const void *arg;
};

static void put_uint(msgpack_packer *pk, const void *arg)
{
	msgpack_pack_uint64(pk, *(const uint64_t *)arg);
}

static void put_int(msgpack_packer *pk, const void *arg)
{
	msgpack_pack_int64(pk, *(const int64_t *)arg);
}

static void put_str(msgpack_packer *pk, const void *arg)
{
	const char *s = arg;
	msgpack_pack_str(pk, strlen(s));
	msgpack_pack_str_body(pk, s, strlen(s));
}

static void put_true(msgpack_packer *pk, const void *arg)
{
	msgpack_pack_true(pk);
}

static void put_nil(msgpack_packer *pk, const void *arg)
{
	msgpack_pack_nil(pk);
}

/* the path ["a", 1] as an array */
static void put_path(msgpack_packer *pk, const void *arg)
{
	msgpack_pack_array(pk, 2);
	msgpack_pack_str(pk, 1);
	msgpack_pack_str_body(pk, "a", 1);
	msgpack_pack_int(pk, 1);
}

static void pack(msgpack_sbuffer *sb, const struct field *f, unsigned n)
{
	msgpack_packer pk;
	msgpack_sbuffer_init(sb);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, n);
	for (unsigned i = 0; i < n; i++) {
		put_str(&pk, f[i].key);
		f[i].put(&pk, f[i].arg);
	}
}

TEST(decode_fields)
{
	uint64_t seq = 7;
	int64_t neg = -3;
	struct field f[] = {
		{"seq", put_uint, &seq}, {"action", put_str, "get_value"}, {"path", put_path, NULL},
		{"nchain", put_true, NULL}, {"max_depth", put_int, &neg}, {"x", put_nil, NULL},
	};
	msgpack_sbuffer sb;
	pack(&sb, f, 6);
	struct dkv_msg m;
	char err[128];
	REQUIRE(dkv__msg_decode(&m, (const uint8_t *)sb.data, sb.size, err, sizeof err) == 0);
	CHECK(m.has_seq && m.seq == 7);
	CHECK_EQ_INT(m.n, 6);
	CHECK(dkv__msg_get(&m, "action") != NULL);
	CHECK(dkv__msg_get(&m, "nope") == NULL);

	struct dkv_req q = {.m = &m};
	int64_t v;
	bool b;
	CHECK_EQ_INT(dkv__req_int(&q, "nchain", 0, &v), 0); /* a bool counts as 0/1 */
	CHECK_EQ_INT(v, 1);
	CHECK_EQ_INT(dkv__req_int(&q, "max_depth", 0, &v), 0);
	CHECK_EQ_INT(v, -3);
	CHECK_EQ_INT(dkv__req_int(&q, "missing", 42, &v), 0);
	CHECK_EQ_INT(v, 42);
	CHECK_EQ_INT(dkv__req_int(&q, "x", 5, &v), 0); /* nil: the default */
	CHECK_EQ_INT(v, 5);
	CHECK_EQ_INT(dkv__req_bool(&q, "nchain", &b), 0);
	CHECK(b);
	CHECK_EQ_INT(dkv__req_int(&q, "action", 0, &v), -EINVAL);
	CHECK(strstr(q.err, "'action' must be an integer") != NULL);
	struct dkv_path p;
	dkv_path_init(&p);
	CHECK_EQ_INT(dkv__req_path(&q, &p), 0);
	CHECK_EQ_INT(p.n, 2);
	dkv_path_release(&p);
	msgpack_sbuffer_destroy(&sb);
}

TEST(decode_refuses)
{
	struct dkv_msg m;
	char err[128];
	uint8_t not_map[] = {0x91, 0x01};
	CHECK_EQ_INT(dkv__msg_decode(&m, not_map, sizeof not_map, err, sizeof err), -EINVAL);
	CHECK(strstr(err, "must be a map") != NULL);
	uint8_t int_key[] = {0x81, 0x01, 0x02};
	CHECK_EQ_INT(dkv__msg_decode(&m, int_key, sizeof int_key, err, sizeof err), -EINVAL);
	CHECK(strstr(err, "keys must be strings") != NULL);
	uint8_t torn[] = {0x82, 0xa1, 'a', 0x01, 0xa1};
	CHECK_EQ_INT(dkv__msg_decode(&m, torn, sizeof torn, err, sizeof err), -EINVAL);
	/* more fields than a request may have */
	struct dkv_buf big = {0};
	dkv_mp_map(&big, DKV_MSG_MAX_FIELDS + 1);
	for (int i = 0; i <= DKV_MSG_MAX_FIELDS; i++) {
		char k[8];
		snprintf(k, sizeof k, "k%d", i);
		dkv_mp_cstr(&big, k);
		dkv_mp_uint(&big, 1);
	}
	CHECK_EQ_INT(dkv__msg_decode(&m, big.data, big.len, err, sizeof err), -EINVAL);
	dkv_buf_release(&big);
	/* a negative seq is no seq */
	uint8_t negseq[] = {0x81, 0xa3, 's', 'e', 'q', 0xff};
	REQUIRE(dkv__msg_decode(&m, negseq, sizeof negseq, err, sizeof err) == 0);
	CHECK(!m.has_seq);
	/* a path that is not a path; a missing path */
	struct field f[] = {{"path", put_str, "a"}};
	msgpack_sbuffer sb;
	pack(&sb, f, 1);
	REQUIRE(dkv__msg_decode(&m, (const uint8_t *)sb.data, sb.size, err, sizeof err) == 0);
	struct dkv_req q = {.m = &m};
	struct dkv_path p;
	dkv_path_init(&p);
	CHECK_EQ_INT(dkv__req_path(&q, &p), -EINVAL);
	CHECK(strstr(q.err, "'path'") != NULL);
	msgpack_sbuffer_destroy(&sb);
	uint8_t empty[] = {0x80};
	REQUIRE(dkv__msg_decode(&m, empty, sizeof empty, err, sizeof err) == 0);
	q.err[0] = 0;
	CHECK_EQ_INT(dkv__req_path(&q, &p), -EINVAL);
	dkv_path_release(&p);
}

static const struct dkv__action *act(const char *name)
{
	return dkv__proto_action((const uint8_t *)name, strlen(name));
}

TEST(action_table)
{
	static const char *const all[] = {
		"get_value", "set_value", "delete_value", "get_tree", "enum", "enumerate",
		"watch", "stop", "get_state", "get_tock", "test_acl", "get_internal",
		"set_internal", "delete_internal", "enum_internal", "get_tree_internal",
		"delete_tree", "log", "save", "msg_send", "msg_monitor", "repl"};
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
		const struct dkv__action *a = act(all[i]);
		CHECK(a != NULL && a->fn != NULL && !strcmp(a->name, all[i]));
	}
	CHECK(act("get_valu") == NULL);
	CHECK(act("get_value_") == NULL);
	CHECK(act("") == NULL);
	/* what answers before the node is in sync: replication, and what
	 * describes the node; data waits */
	CHECK(act("repl")->unready && act("get_state")->unready && act("get_tock")->unready);
	CHECK(act("stop")->unready && act("msg_send")->unready);
	CHECK(!act("get_value")->unready && !act("set_value")->unready);
	CHECK(!act("watch")->unready && !act("log")->unready);
	/* modes */
	CHECK(act("get_value")->mode == DKV_ACL_READ);
	CHECK(act("set_value")->mode == DKV_ACL_WRITE);
	CHECK(act("delete_value")->mode == DKV_ACL_DELETE);
	CHECK(act("set_internal")->mode & DKV_ACL_INTERNAL);
	CHECK(act("enum")->fn == act("enumerate")->fn);
}

TESTS(decode_fields, decode_refuses, action_table)
