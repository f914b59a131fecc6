/*
 * codec.c - msgpack for the Serf RPC protocol: requests out, messages in.
 *
 * The only file of serf/ that includes <msgpack.h>.  Requests are small
 * and written with msgpack-c's packer into a serf__buf.  Incoming bytes go
 * to a msgpack_unpacker, which hands out one message at a time; decoded
 * structs and NUL-terminated copies of strings are allocated from that
 * message's zone, so they are freed together when the next message is
 * read and nothing is allocated per field with malloc.
 *
 * The agent writes strings as msgpack str and byte slices as bin, but
 * older agents (and Go's codec with RawToString) may use raw/str for
 * either, so every string or bytes field accepts both.
 */
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* ---- buffers ---- */

void serf__buf_release(struct serf__buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
	b->failed = false;
}

int serf__buf_append(struct serf__buf *b, const void *p, size_t n)
{
	if (b->failed)
		return -ENOMEM;
	if (!n)
		return 0;
	if (n > b->cap - b->len) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap - b->len < n) {
			if (cap > SIZE_MAX / 2)
				goto fail;
			cap *= 2;
		}
		char *d = realloc(b->data, cap);
		if (!d)
			goto fail;
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
fail:
	b->failed = true;
	return -ENOMEM;
}

/* ---- writing ---- */

static int buf_write(void *data, const char *p, size_t n)
{
	return serf__buf_append(data, p, n) ? -1 : 0;
}

static void packer(msgpack_packer *pk, struct serf__buf *b)
{
	msgpack_packer_init(pk, b, buf_write);
}

void serf__enc_str(struct serf__buf *b, const char *s)
{
	msgpack_packer pk;
	size_t n = s ? strlen(s) : 0;
	packer(&pk, b);
	msgpack_pack_str(&pk, n);
	msgpack_pack_str_body(&pk, s, n);
}

void serf__enc_bin(struct serf__buf *b, const void *p, size_t n)
{
	msgpack_packer pk;
	packer(&pk, b);
	msgpack_pack_bin(&pk, n);
	msgpack_pack_bin_body(&pk, p, n);
}

void serf__enc_map(struct serf__buf *b, size_t n)
{
	msgpack_packer pk;
	packer(&pk, b);
	msgpack_pack_map(&pk, n);
}

void serf__enc_array(struct serf__buf *b, size_t n)
{
	msgpack_packer pk;
	packer(&pk, b);
	msgpack_pack_array(&pk, n);
}

void serf__enc_uint(struct serf__buf *b, uint64_t v)
{
	msgpack_packer pk;
	packer(&pk, b);
	msgpack_pack_uint64(&pk, v);
}

void serf__enc_int(struct serf__buf *b, int64_t v)
{
	msgpack_packer pk;
	packer(&pk, b);
	msgpack_pack_int64(&pk, v);
}

void serf__enc_bool(struct serf__buf *b, bool v)
{
	msgpack_packer pk;
	packer(&pk, b);
	if (v)
		msgpack_pack_true(&pk);
	else
		msgpack_pack_false(&pk);
}

void serf__enc_header(struct serf__buf *b, const char *command, uint64_t seq)
{
	serf__enc_map(b, 2);
	serf__enc_str(b, "Command");
	serf__enc_str(b, command);
	serf__enc_str(b, "Seq");
	serf__enc_uint(b, seq);
}

void serf__enc_tags(struct serf__buf *b, const struct serf_tag *tags, size_t n)
{
	serf__enc_map(b, n);
	for (size_t i = 0; i < n; i++) {
		serf__enc_str(b, tags[i].key);
		serf__enc_str(b, tags[i].value);
	}
}

void serf__enc_strs(struct serf__buf *b, const char *const *strs, size_t n)
{
	serf__enc_array(b, n);
	for (size_t i = 0; i < n; i++)
		serf__enc_str(b, strs[i]);
}

/* ---- reading ---- */

struct serf__reader {
	msgpack_unpacker u;
	msgpack_unpacked res; /* the current message and its zone */
};

int serf__reader_new(struct serf__reader **out)
{
	struct serf__reader *r = calloc(1, sizeof(*r));
	*out = NULL;
	if (!r)
		return -ENOMEM;
	if (!msgpack_unpacker_init(&r->u, 64 * 1024)) {
		free(r);
		return -ENOMEM;
	}
	msgpack_unpacked_init(&r->res);
	*out = r;
	return 0;
}

void serf__reader_free(struct serf__reader *r)
{
	if (!r)
		return;
	msgpack_unpacked_destroy(&r->res);
	msgpack_unpacker_destroy(&r->u);
	free(r);
}

int serf__reader_space(struct serf__reader *r, size_t want, char **p, size_t *len)
{
	if (!msgpack_unpacker_reserve_buffer(&r->u, want))
		return -ENOMEM;
	*p = msgpack_unpacker_buffer(&r->u);
	*len = msgpack_unpacker_buffer_capacity(&r->u);
	return 0;
}

void serf__reader_fill(struct serf__reader *r, size_t n)
{
	msgpack_unpacker_buffer_consumed(&r->u, n);
}

static bool key_is(const msgpack_object *k, const char *key)
{
	size_t n = strlen(key);
	if (k->type == MSGPACK_OBJECT_STR)
		return k->via.str.size == n && !memcmp(k->via.str.ptr, key, n);
	if (k->type == MSGPACK_OBJECT_BIN)
		return k->via.bin.size == n && !memcmp(k->via.bin.ptr, key, n);
	return false;
}

static const msgpack_object *map_get(const msgpack_object *map, const char *key)
{
	if (map->type != MSGPACK_OBJECT_MAP)
		return NULL;
	for (uint32_t i = 0; i < map->via.map.size; i++)
		if (key_is(&map->via.map.ptr[i].key, key))
			return &map->via.map.ptr[i].val;
	return NULL;
}

/* str, bin or nil as pointer + length; false for anything else. */
static bool bytes_of(const msgpack_object *o, const char **p, size_t *n)
{
	switch (o->type) {
	case MSGPACK_OBJECT_STR:
		*p = o->via.str.ptr;
		*n = o->via.str.size;
		return true;
	case MSGPACK_OBJECT_BIN:
		*p = o->via.bin.ptr;
		*n = o->via.bin.size;
		return true;
	case MSGPACK_OBJECT_NIL:
		*p = NULL;
		*n = 0;
		return true;
	default:
		return false;
	}
}

/* A NUL-terminated copy in the zone; a missing field is "".  NULL when the
 * field has another type or memory ran out. */
static const char *zstr(msgpack_zone *z, const msgpack_object *o)
{
	const char *p;
	size_t n;
	if (!o)
		return "";
	if (!bytes_of(o, &p, &n))
		return NULL;
	char *s = msgpack_zone_malloc(z, n + 1);
	if (!s)
		return NULL;
	if (n)
		memcpy(s, p, n);
	s[n] = 0;
	return s;
}

static bool get_uint(const msgpack_object *map, const char *key, uint64_t max, uint64_t *v)
{
	const msgpack_object *o = map_get(map, key);
	*v = 0;
	if (!o)
		return true;
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > max)
		return false;
	*v = o->via.u64;
	return true;
}

static bool get_u8(const msgpack_object *map, const char *key, uint8_t *v)
{
	uint64_t x;
	bool ok = get_uint(map, key, UINT8_MAX, &x);
	*v = (uint8_t)x;
	return ok;
}

static bool get_payload(const msgpack_object *map, const char *key, const uint8_t **p, size_t *n)
{
	const msgpack_object *o = map_get(map, key);
	const char *s = NULL;
	*p = NULL;
	*n = 0;
	if (!o)
		return true;
	if (!bytes_of(o, &s, n))
		return false;
	*p = (const uint8_t *)s;
	return true;
}

int serf__reader_next(struct serf__reader *r, struct serf__msg *m)
{
	int ret = msgpack_unpacker_next(&r->u, &r->res);
	switch (ret) {
	case MSGPACK_UNPACK_SUCCESS:
		break;
	case MSGPACK_UNPACK_CONTINUE:
		if (msgpack_unpacker_message_size(&r->u) > SERF__MAX_MSG)
			return -EPROTO;
		return 0;
	case MSGPACK_UNPACK_NOMEM_ERROR:
		return -ENOMEM;
	default:
		return -EPROTO;
	}

	const msgpack_object *o = &r->res.data;
	memset(m, 0, sizeof(*m));
	m->obj = o;
	m->zone = r->res.zone;
	if (o->type != MSGPACK_OBJECT_MAP)
		return -EPROTO; /* every message of the protocol is a map */
	const msgpack_object *seq = map_get(o, "Seq");
	const msgpack_object *err = map_get(o, "Error");
	if (o->via.map.size != 2 || !seq || !err)
		return 1; /* a body */
	if (seq->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return -EPROTO;
	m->is_header = true;
	m->seq = seq->via.u64;
	m->error = zstr(r->res.zone, err);
	if (!m->error)
		return -EPROTO;
	return 1;
}

/* ---- bodies ---- */

static int decode_member(msgpack_zone *z, const msgpack_object *o, struct serf_member *m)
{
	uint64_t port;
	const char *addr;
	size_t alen;

	memset(m, 0, sizeof(*m));
	if (o->type != MSGPACK_OBJECT_MAP)
		return -EPROTO;
	m->name = zstr(z, map_get(o, "Name"));
	m->status = zstr(z, map_get(o, "Status"));
	if (!m->name || !m->status)
		return -EPROTO;

	const msgpack_object *a = map_get(o, "Addr");
	if (a && !bytes_of(a, &addr, &alen))
		return -EPROTO;
	static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	if (a && alen == 16 && !memcmp(addr, v4mapped, 12)) {
		addr += 12;
		alen = 4;
	}
	if (a && alen == 4) {
		m->family = AF_INET;
		memcpy(m->addr, addr, 4);
	} else if (a && alen == 16) {
		m->family = AF_INET6;
		memcpy(m->addr, addr, 16);
	}
	if (m->family && !inet_ntop(m->family, m->addr, m->addr_text, sizeof(m->addr_text)))
		m->addr_text[0] = 0;

	if (!get_uint(o, "Port", UINT16_MAX, &port))
		return -EPROTO;
	m->port = (uint16_t)port;
	if (!get_u8(o, "ProtocolMin", &m->protocol_min) ||
	    !get_u8(o, "ProtocolMax", &m->protocol_max) ||
	    !get_u8(o, "ProtocolCur", &m->protocol_cur) ||
	    !get_u8(o, "DelegateMin", &m->delegate_min) ||
	    !get_u8(o, "DelegateMax", &m->delegate_max) ||
	    !get_u8(o, "DelegateCur", &m->delegate_cur))
		return -EPROTO;

	const msgpack_object *t = map_get(o, "Tags");
	if (!t || t->type == MSGPACK_OBJECT_NIL)
		return 0;
	if (t->type != MSGPACK_OBJECT_MAP)
		return -EPROTO;
	if (!t->via.map.size)
		return 0;
	struct serf_tag *tags = msgpack_zone_malloc(z, t->via.map.size * sizeof(*tags));
	if (!tags)
		return -ENOMEM;
	for (uint32_t i = 0; i < t->via.map.size; i++) {
		tags[i].key = zstr(z, &t->via.map.ptr[i].key);
		tags[i].value = zstr(z, &t->via.map.ptr[i].val);
		if (!tags[i].key || !tags[i].value)
			return -EPROTO;
	}
	m->tags = tags;
	m->ntags = t->via.map.size;
	return 0;
}

static int decode_member_list(msgpack_zone *z, const msgpack_object *list,
			      const struct serf_member **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (!list || list->type == MSGPACK_OBJECT_NIL)
		return 0;
	if (list->type != MSGPACK_OBJECT_ARRAY)
		return -EPROTO;
	if (!list->via.array.size)
		return 0;
	struct serf_member *m = msgpack_zone_malloc(z, list->via.array.size * sizeof(*m));
	if (!m)
		return -ENOMEM;
	for (uint32_t i = 0; i < list->via.array.size; i++) {
		int r = decode_member(z, &list->via.array.ptr[i], &m[i]);
		if (r)
			return r;
	}
	*out = m;
	*n = list->via.array.size;
	return 0;
}

static msgpack_zone *zone_of(const struct serf__msg *m)
{
	return m->zone;
}

int serf__decode_members(const struct serf__msg *m, const struct serf_member **out, size_t *n)
{
	return decode_member_list(zone_of(m), map_get(m->obj, "Members"), out, n);
}

int serf__decode_join(const struct serf__msg *m, int *num)
{
	const msgpack_object *o = map_get(m->obj, "Num");
	*num = 0;
	if (!o)
		return 0;
	if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT32_MAX)
		*num = (int)o->via.u64;
	else if (o->type != MSGPACK_OBJECT_NEGATIVE_INTEGER)
		return -EPROTO;
	return 0;
}

/* Stats values are strings, but be lenient with numbers and booleans. */
static const char *stat_value(msgpack_zone *z, const msgpack_object *o)
{
	char tmp[32];
	switch (o->type) {
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		snprintf(tmp, sizeof(tmp), "%" PRIu64, o->via.u64);
		break;
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		snprintf(tmp, sizeof(tmp), "%" PRId64, o->via.i64);
		break;
	case MSGPACK_OBJECT_BOOLEAN:
		snprintf(tmp, sizeof(tmp), "%s", o->via.boolean ? "true" : "false");
		break;
	default:
		return zstr(z, o);
	}
	char *s = msgpack_zone_malloc(z, strlen(tmp) + 1);
	if (s)
		strcpy(s, tmp);
	return s;
}

int serf__decode_stats(const struct serf__msg *m, const struct serf_stat **out, size_t *n)
{
	msgpack_zone *z = zone_of(m);
	const msgpack_object *o = m->obj;
	size_t total = 0, k = 0;

	*out = NULL;
	*n = 0;
	for (uint32_t i = 0; i < o->via.map.size; i++) {
		const msgpack_object *g = &o->via.map.ptr[i].val;
		if (g->type == MSGPACK_OBJECT_MAP)
			total += g->via.map.size;
	}
	if (!total)
		return 0;
	struct serf_stat *st = msgpack_zone_malloc(z, total * sizeof(*st));
	if (!st)
		return -ENOMEM;
	for (uint32_t i = 0; i < o->via.map.size; i++) {
		const msgpack_object *g = &o->via.map.ptr[i].val;
		if (g->type != MSGPACK_OBJECT_MAP)
			continue;
		const char *group = zstr(z, &o->via.map.ptr[i].key);
		if (!group)
			return -EPROTO;
		for (uint32_t j = 0; j < g->via.map.size; j++) {
			st[k].group = group;
			st[k].key = zstr(z, &g->via.map.ptr[j].key);
			st[k].value = stat_value(z, &g->via.map.ptr[j].val);
			if (!st[k].key || !st[k].value)
				return -EPROTO;
			k++;
		}
	}
	*out = st;
	*n = k;
	return 0;
}

int serf__decode_record(const struct serf__msg *m, struct serf_record *rec, uint64_t *agent_id)
{
	msgpack_zone *z = zone_of(m);
	const msgpack_object *o = m->obj;
	memset(rec, 0, sizeof(*rec));
	*agent_id = 0;
	rec->event = zstr(z, map_get(o, "Event"));
	rec->name = zstr(z, map_get(o, "Name"));
	if (!rec->event || !rec->name)
		return -EPROTO;
	if (!strcmp(rec->event, "user"))
		rec->type = SERF_RECORD_USER;
	else if (!strcmp(rec->event, "query"))
		rec->type = SERF_RECORD_QUERY;
	else if (!strncmp(rec->event, "member-", 7))
		rec->type = SERF_RECORD_MEMBER;
	else
		rec->type = SERF_RECORD_OTHER;

	if (!get_uint(o, "LTime", UINT64_MAX, &rec->ltime) ||
	    !get_uint(o, "ID", UINT64_MAX, agent_id) ||
	    !get_payload(o, "Payload", &rec->payload, &rec->payload_len))
		return -EPROTO;
	const msgpack_object *c = map_get(o, "Coalesce");
	if (c && c->type == MSGPACK_OBJECT_BOOLEAN)
		rec->coalesce = c->via.boolean;
	if (rec->type == SERF_RECORD_MEMBER)
		return decode_member_list(z, map_get(o, "Members"), &rec->members, &rec->nmembers);
	return 0;
}

int serf__decode_query_reply(const struct serf__msg *m, struct serf_query_reply *r)
{
	msgpack_zone *z = zone_of(m);
	const char *type = zstr(z, map_get(m->obj, "Type"));

	memset(r, 0, sizeof(*r));
	r->from = zstr(z, map_get(m->obj, "From"));
	if (!type || !r->from)
		return -EPROTO;
	if (!strcmp(type, "ack"))
		r->type = SERF_QUERY_ACK;
	else if (!strcmp(type, "response"))
		r->type = SERF_QUERY_RESPONSE;
	else if (!strcmp(type, "done"))
		r->type = SERF_QUERY_DONE;
	else
		return -EPROTO;
	if (!get_payload(m->obj, "Payload", &r->payload, &r->payload_len))
		return -EPROTO;
	return 0;
}
