#!/usr/bin/python3
"""make_corpus.py - write the seed corpus for fuzz_request into corpus/.

Each file is a byte stream as a client sends it: the hello {seq: 0, qlen}
and then requests, msgpack maps back to back.  The seeds cover every action
of the reference transcript (doc/protocol.md, spec/reference-wire-
transcript.txt) plus the bad input the server must survive: truncated
messages, wrong field types, deep nesting, huge declared lengths,
non-canonical encodings.

Run with Debian's python3 (it needs python3-msgpack):
    /usr/bin/python3 tests/fuzz/make_corpus.py
"""
import os

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus")


def pack(obj):
    return msgpack.packb(obj, use_bin_type=True)


def P(*elems):
    """A DistKV path: msgpack ext type 3 holding the elements back to back."""
    return msgpack.ExtType(3, b"".join(pack(e) for e in elems))


def bigint(n):
    """An integer >= 2**64: ext type 2, big-endian magnitude."""
    return msgpack.ExtType(2, n.to_bytes((n.bit_length() + 7) // 8, "big"))


HELLO = {"seq": 0, "qlen": 10}


def stream(*msgs):
    return b"".join(m if isinstance(m, bytes) else pack(m) for m in msgs)


def req(seq, action, **kw):
    d = {"seq": seq, "action": action}
    d.update(kw)
    return d


def ack(seq, n):
    return {"seq": seq, "state": "ack", "ack": n}


def nested(depth, leaf=1):
    v = leaf
    for _ in range(depth):
        v = [v]
    return v


seeds = {}

seeds["get_value"] = stream(
    HELLO,
    req(1, "get_value", path=P("proto", "x")),
    req(2, "get_value", path=P()),
)

seeds["set_get_nchain"] = stream(
    HELLO,
    req(3, "set_value", path=P("proto", "x"), value=123),
    req(4, "set_value", path=P("proto", "x"), value="hello"),
    req(5, "get_value", path=P("proto", "x"), nchain=1),
    req(6, "get_value", path=P("proto", "x"), nchain=2),
)

chain3 = {"node": "fuzz", "tick": 2, "prev": None}
seeds["set_chain"] = stream(
    HELLO,
    req(3, "set_value", path=P("proto", "x"), value=123),
    req(4, "set_value", path=P("proto", "x"), value="hello"),
    req(7, "set_value", path=P("proto", "x"), value={"a": 1, "b": [1, 2]}, chain=chain3, nchain=1),
    req(8, "set_value", path=P("proto", "x"), value=999, chain=chain3),
    req(9, "set_value", path=P("proto", "x"), value=999, chain=None),
    req(10, "set_value", path=P("proto", "new"), value=1, chain=None, nchain=1),
)

seeds["types"] = stream(
    HELLO,
    req(11, "set_value", path=P("proto", "types", 1, True, b"\x00b", 2.5),
        value=[None, True, 1.5, b"\x01\x02", bigint(1180591620717411303424), -3, "ü"]),
    req(12, "get_value", path=P("proto", "types", 1, True, b"\x00b", 2.5)),
    req(13, "get_value", path=["proto", "types", 1, True, b"\x00b", 2.5]),
)

tree = [
    req(3, "set_value", path=P("proto", "x"), value={"a": 1}),
    req(14, "set_value", path=P("proto", "x", "y"), value=1),
    req(15, "set_value", path=P("proto", "x", "y", "z"), value=2),
    req(16, "set_value", path=P("proto", "x", "w"), value=3),
    req(17, "set_value", path=P("proto", "new"), value=1),
]

seeds["delete"] = stream(
    HELLO, *tree,
    req(18, "delete_value", path=P("proto", "new")),
    req(19, "delete_value", path=P("proto", "nonexistent")),
    req(20, "get_value", path=P("proto", "new"), nchain=3),
)

seeds["get_tree"] = stream(
    HELLO, *tree,
    req(19, "get_tree", path=P("proto")),
    ack(19, 4),
    req(20, "get_tree", path=P("proto"), nchain=2, max_depth=1),
    req(21, "get_tree", path=P("proto"), empty=True, min_depth=2),
    ack(21, 4), ack(21, 8),
    req(22, "get_tree", path=P("nope")),
)

seeds["get_tree_many"] = stream(
    HELLO,
    *[req(32 + i, "set_value", path=P("many", i), value=i) for i in range(25)],
    req(57, "get_tree", path=P("many")),
    *[ack(57, n) for n in (4, 8, 12, 16, 20, 24)],
    {"seq": 57, "state": "end"},
)

seeds["enum_state"] = stream(
    HELLO, *tree,
    req(23, "enum", path=P("proto")),
    req(24, "get_state", nodes=True, known=True, current=True, missing=True,
        remote_missing=True, deleted=True),
    req(25, "get_state"),
    req(26, "enumerate", path=P("proto"), empty=True),
)

seeds["internal"] = stream(
    HELLO,
    req(26, "get_internal", path=P("actor", "del"), nchain=1),
    req(27, "enum_internal", path=P(), empty=True),
    req(28, "get_tock"),
    req(29, "test_acl", path=P("proto", "x"), mode="r"),
    req(30, "set_internal", path=P("type", "int"), value={"good": [1], "bad": ["x"]}),
    req(31, "get_tree_internal", path=P()),
    req(32, "delete_internal", path=P("type", "int")),
)

seeds["watch"] = stream(
    HELLO, *tree,
    req(30, "watch", path=P("proto", "x"), fetch=True, nchain=1),
    req(40, "set_value", path=P("proto", "x", "y"), value=42),
    req(41, "set_value", path=P("proto", "x", "new", "deep"), value="d"),
    req(42, "delete_value", path=P("proto", "x", "w")),
    ack(30, 5),
    req(31, "stop", task=30),
    req(32, "stop", task=99),
)

seeds["delete_tree"] = stream(
    HELLO, *tree,
    req(50, "delete_tree", path=P("proto", "x")),
    req(51, "get_tree", path=P("proto"), nchain=1),
)

seeds["not_yet"] = stream(
    HELLO,
    req(60, "log", path="/tmp/x"),
    req(61, "save", path="/tmp/y"),
    req(62, "msg_send", topic=P("a"), data=1),
    req(63, "msg_monitor", topic=P("a")),
)

seeds["unknown_action"] = stream(HELLO, req(58, "no_such_action", path=P("proto")),
                                 req(59, "get_tock"))

# ---- bad input ----

whole = stream(HELLO, req(3, "set_value", path=P("proto", "x"), value="hello" * 10))
seeds["truncated"] = whole[: len(whole) - 7]
seeds["truncated_header"] = stream(HELLO) + b"\x85\xa3seq\x01\xa6action\xa9get_v"

seeds["wrong_types"] = stream(
    HELLO,
    {"seq": "one", "action": "get_value", "path": P("x")},
    {"seq": -1, "action": "get_value", "path": P("x")},
    {"seq": 2, "action": 7, "path": P("x")},
    {"seq": 3, "action": "get_value", "path": 12},
    {"seq": 4, "action": "get_value", "path": P("x"), "nchain": "two"},
    {"seq": 5, "action": "set_value", "path": P("x")},
    {"seq": 6, "action": "set_value", "path": P("x"), "value": 1, "chain": "bad"},
    {"seq": 7, "action": "set_value", "path": P("x"), "value": 1,
     "chain": {"node": 5, "tick": "x"}},
    {"seq": 8, "action": "get_tree", "path": P("x"), "max_depth": -1, "min_depth": True},
    {"seq": 9, "action": "stop", "task": "x"},
    {"seq": 10},
    {"action": "get_tock"},
    [1, 2, 3],
    {1: 2, "seq": 11},
    {"seq": 12, "state": "ack", "ack": "x"},
    {"seq": 13, "state": 5},
)

seeds["too_many_fields"] = stream(HELLO, dict({"seq": 1, "action": "get_tock"},
                                              **{"f%d" % i: i for i in range(40)}))

seeds["deep_value"] = stream(
    HELLO,
    req(1, "set_value", path=P("deep"), value=nested(30)),
    req(2, "set_value", path=P("deeper"), value=nested(40)),
    req(3, "get_value", path=P("deeper")),
    req(4, "get_tree", path=P()),
)
# beyond DKV_MP_MAX_DEPTH (64): the reader refuses it; built by hand
# because python-msgpack refuses to pack that deep with default limits
seeds["too_deep"] = stream(HELLO) + b"\x84\xa3seq\x01\xa6action\xa9set_value\xa4path" + \
    pack(P("x")) + b"\xa5value" + b"\x91" * 70 + b"\x01"
seeds["deep_path"] = stream(
    HELLO,
    req(1, "set_value", path=P("a", nested(20, "b"), ("t", 1)), value=1),
    req(2, "set_value", path=P(*(["e"] * 200)), value=1),
    req(3, "get_tree", path=P("a")),
)

# declared lengths far beyond the data
seeds["huge_lengths"] = stream(HELLO) + b"".join([
    b"\x81\xa3seq\xdb\xff\xff\xff\xff",                 # str32 of 4 GiB
])
seeds["huge_array"] = stream(HELLO) + b"\x83\xa3seq\x01\xa6action\xa9get_value\xa4path\xdd\xff\xff\xff\xff\x01"
seeds["huge_map"] = stream(HELLO) + b"\xdf\xff\xff\xff\xff\xa3seq\x01"
seeds["huge_ext"] = stream(HELLO) + b"\x83\xa3seq\x01\xa6action\xa9get_value\xa4path\xc9\xff\xff\xff\xf0\x03"
seeds["reserved_byte"] = stream(HELLO, req(1, "get_tock")) + b"\xc1" + stream(req(2, "get_tock"))

# non-canonical encodings the server must normalise
seeds["non_canonical"] = stream(HELLO) + b"".join([
    # seq as uint64, path elements as uint8 / str8, value as float32
    b"\x84\xa3seq\xcf\x00\x00\x00\x00\x00\x00\x00\x01\xa6action\xa9set_value"
    b"\xa4path\xc7\x08\x03\xd9\x01a\xcc\x01\xcd\x00\x02\xa5value\xca\x3f\xc0\x00\x00",
    pack(req(2, "get_value", path=P("a", 1, 2), nchain=True)),
    # a big integer below 2**64 inside ext 2, with leading zero bytes
    pack(req(3, "set_value", path=P("b"), value=msgpack.ExtType(2, b"\x00\x00\x01"))),
    pack(req(4, "set_value", path=P("c"), value=msgpack.ExtType(4, b"proxy"))),
    pack(req(5, "set_value", path=msgpack.ExtType(3, b"\xc1"), value=1)),
    pack(req(6, "set_value", path=msgpack.ExtType(3, b"\xa5ab"), value=1)),
    pack(req(7, "set_value", path=P(P("nested")), value=1)),
    pack(req(8, "set_value", path=P(float("nan"), -0.0), value=1)),
])

seeds["bin_keys"] = stream(HELLO) + b"\x83\xc4\x03seq\x01\xc4\x06action\xc4\x08get_tock\xc4\x01x\xc0"

# Strings that are not UTF-8 (doc/protocol.md, "Text is UTF-8"): refused
# in values, keys and any field but the path, which may hold them.
BAD = b"\xa3a\xffb"
LONG = b"\xd9\x28" + b"x" * 39 + b"\xff"
seeds["not_utf8"] = stream(HELLO) + b"".join([
    b"\x84\xa3seq\x01\xa6action\xa9set_value\xa4path" + pack(P("u")) + b"\xa5value" + BAD,
    b"\x84\xa3seq\x02\xa6action\xa9set_value\xa4path" + pack(P("u")) + b"\xa5value" +
    b"\x81" + BAD + b"\x92\x01" + LONG,
    b"\x83\xa3seq\x03\xa6action\xa9get_value\xa4path\x92\xa1u" + BAD,
    b"\x84\xa3seq\x04\xa6action\xa9set_value\xa4path\x92\xa1u" + BAD + b"\xa5value\x01",
    b"\x83\xa3seq\x05\xa6action\xa9get_value" + BAD + b"\x01",
    b"\x84\xa3seq\x06\xa6action\xa9set_value\xa4path" + pack(P("u")) + b"\xa5value" +
    b"\xa4\xed\xa0\x80x",
])

# Logins, users and ACLs (doc/protocol.md, "Logging in, users and ACLs").
# A password can only be sealed to the key of a live connection, so the
# password seeds carry boxes that do not open: refused before any hashing.
ACL = {"": "r", "a": {"#": "rwcd"}}
seeds["auth_test"] = stream(
    HELLO,
    req(1, "auth_set", typ="_test", kind="user", ident="joe", aux={"acl": "ro"}),
    req(2, "set_internal", path=P("acl", "ro"), value=ACL),
    req(3, "set_auth_typ", typ="_test"),
    req(6, "auth", typ="_test", ident="joe", data={}, chroot=[]),
    req(7, "set_value", path=P("a", "b"), value=1),
    req(8, "set_value", path=P("x"), value=1),  # the ACL refuses
    req(9, "test_acl", path=P("a", "b"), mode="w"),
    req(10, "test_acl", path=P("x"), acl="ro"),
    req(11, "auth_info"),
    req(12, "auth_list", typ="_test", kind="user"),
    ack(12, 2),
    req(13, "auth_get", typ="_test", kind="user", ident="joe", nchain=2),
    req(14, "get_tree_internal", path=P()),
    req(15, "set_auth_typ", typ=None),
)
seeds["auth_test_refused"] = stream(
    HELLO,
    req(1, "auth_set", typ="_test", kind="user", ident="joe"),
    req(2, "set_auth_typ", typ="_test"),
    req(3, "get_tock"),                        # refused: not logged in
    req(4, "auth", typ="_test", ident="nobody", data={}, chroot=[]),
    req(5, "get_value", path=P("a")),
)
seeds["auth_password"] = stream(
    HELLO,
    req(1, "auth_key"),
    req(2, "auth_set", typ="password", kind="user", ident="ann",
        data={"password": b"\x01" * 60}),
    req(3, "auth_set", typ="password", kind="user", ident="ann"),
    req(4, "set_auth_typ", typ="password"),
    req(5, "auth", typ="password", ident="ann", data={"password": b"\x02" * 80}, chroot=[]),
    req(6, "auth", typ="password", ident="ann", data={"password": b"short"}, chroot=[]),
    req(7, "auth", typ="password", ident="ann", data={}, chroot=["x"]),
    req(8, "auth_key"),
)
seeds["auth_wrong_types"] = stream(
    HELLO,
    req(1, "auth", typ=5, ident=["joe"], data=None, chroot="x"),
    req(2, "auth_set", typ="_test", kind="group", ident="", aux=[1]),
    req(3, "auth_set", typ="_test", kind="user", ident="j" * 3000),
    req(4, "auth_set", typ="_test", kind="user", ident="k", chain={"node": 1, "tick": "x"}),
    req(5, "set_auth_typ", typ="no-such-method"),
    req(6, "auth_get", typ="_test", kind="user"),
    req(7, "auth_list", typ=None, kind=None, ident=7),
    req(8, "test_acl", path=P("a"), mode="wr", acl=5),
)

os.makedirs(OUT, exist_ok=True)
for name in os.listdir(OUT):
    os.unlink(os.path.join(OUT, name))
for name, data in sorted(seeds.items()):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
print("%d seeds in %s" % (len(seeds), os.path.relpath(OUT)))
