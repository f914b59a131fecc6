"""The server's side of auth and ACLs, over the raw protocol: who may do
what, what trees and watches leave out, bad auth requests, a login flood,
and that no clear password is ever stored or logged.

The password is sealed with libsodium through ctypes (Debian has no
python3 binding installed by default; the library is there)."""

import ctypes
import ctypes.util
import threading
import time

import pytest

from dkvproto import Path

_sodium = ctypes.CDLL(ctypes.util.find_library("sodium") or "libsodium.so.23")
assert _sodium.sodium_init() >= 0
SEALBYTES = 48


def seal(pubkey, password):
    pw = password.encode()
    out = ctypes.create_string_buffer(len(pw) + SEALBYTES)
    assert _sodium.crypto_box_seal(out, pw, ctypes.c_ulonglong(len(pw)), pubkey) == 0
    return out.raw


def ok(reply):
    assert "error" not in reply, reply
    return reply


def stream_all(p, action, **kw):
    """A stream's messages between start and end (errors raise)."""
    seq = p.start(action, **kw)
    out = []
    while True:
        m = p.next(seq)
        assert "error" not in m, m
        if m.get("state") == "start":
            continue
        if m.get("state") == "end":
            return out
        out.append(m)


def login(p, typ, ident, password=None):
    """Log in; return the error text or None."""
    data = {}
    if password is not None:
        key = ok(p.request("auth_key"))["pubkey"]
        data = {"password": seal(key, password)}
    seq = p.start("auth", typ=typ, chroot=[], ident=ident, data=data)
    m = p.next(seq, timeout=30)
    if "error" in m:
        return m["error"]
    assert m.get("state") == "start", m
    assert p.next(seq).get("state") == "end"
    return None


def add_user(p, typ, ident, password=None, acl=None):
    data = {}
    if password is not None:
        key = ok(p.request("auth_key"))["pubkey"]
        data = {"password": seal(key, password)}
    kw = {"aux": {"acl": acl}} if acl else {}
    return ok(p.request("auth_set", _timeout=30, typ=typ, ident=ident, data=data, **kw))


def setup_test_auth(p, acl_entries=(), joe_acl="writeonly"):
    """_test users joe (bound by joe_acl) and root; the ACL's entries;
    then _test is the method."""
    add_user(p, "_test", "joe", acl=joe_acl)
    add_user(p, "_test", "root")
    for path, modes in acl_entries:
        ok(p.request("set_internal", path=Path("acl", joe_acl, *path), value=modes))
    ok(p.request("set_auth_typ", typ="_test"))


def test_greeting_lists_methods_and_refuses_the_unlogged(server):
    p0 = server.connect()
    assert "auth" not in p0.greeting
    setup_test_auth(p0)
    p = server.connect()
    assert list(p.greeting["auth"]) == ["_test"]
    r = p.request("get_value", path=Path("x"))
    assert r["error"] == "You need to log in using: _test"
    assert r["etype"] == "ClientAuthRequiredError"
    # what a client needs before logging in is answered
    assert "tock" in ok(p.request("get_tock"))
    assert len(ok(p.request("auth_key"))["pubkey"]) == 32
    # even the connection that turned auth on must log in now
    assert p0.request("get_value", path=Path("x"))["etype"] == "ClientAuthRequiredError"
    assert login(p, "_test", "root") is None
    assert ok(p.request("get_value", path=Path()))["value"] == "Testing"
    # turning it off again: nil current, greeting says so
    ok(p.request("set_auth_typ", typ=None))
    p2 = server.connect()
    assert p2.greeting["auth"][0] is None and "_test" in p2.greeting["auth"]
    ok(p2.request("get_value", path=Path("x")))


def test_wrong_method_unknown_user_and_logins(server):
    p = server.connect()
    setup_test_auth(p)
    q = server.connect()
    assert "Wrong auth method password" in login(q, "password", "joe", "pw")
    assert login(q, "_test", "nobody") == "Login failed: unknown user or wrong password"
    assert login(q, "_test", "joe") is None


def test_password_login_is_sealed_hashed_and_never_clear(server, tmp_path):
    secret = "correct horse battery staple"
    p = server.connect()
    add_user(p, "password", "joe", password=secret)
    add_user(p, "password", "ann", password="other secret")
    ok(p.request("set_auth_typ", typ="password"))
    q = server.connect()
    assert list(q.greeting["auth"]) == ["password"]
    assert login(q, "password", "joe", "wrong") == "Login failed: unknown user or wrong password"
    assert login(q, "password", "nobody", secret) == "Login failed: unknown user or wrong password"
    assert login(q, "password", "joe", secret) is None
    # the stored record holds an argon2id hash, never the password
    rec = ok(q.request("get_internal", path=Path("auth", "password", "user", "joe")))["value"]
    assert rec["password"].startswith(b"$argon2id$")
    assert secret.encode() not in rec["password"]
    # auth_get/auth_list show no hash
    g = ok(q.request("auth_get", typ="password", ident="joe"))
    assert g["ident"] == "joe" and "password" not in g and g["aux"] is None
    names = [m["ident"] for m in stream_all(q, "auth_list", typ="password")]
    assert names == ["joe", "ann"]
    # a password sealed to another connection's key is refused
    r = server.connect()
    key = ok(q.request("auth_key"))["pubkey"]
    ok(r.request("auth_key"))
    seq = r.start("auth", typ="password", chroot=[], ident="joe",
                  data={"password": seal(key, secret)})
    assert "not sealed to this connection" in r.next(seq)["error"]
    # a password without auth_key first
    s = server.connect()
    seq = s.start("auth", typ="password", chroot=[], ident="joe",
                  data={"password": seal(key, secret)})
    assert "auth_key" in s.next(seq)["error"]
    # changing the password: the old one stops working
    add_user(q, "password", "joe", password="new one")
    t = server.connect()
    assert login(t, "password", "joe", secret) is not None
    assert login(t, "password", "joe", "new one") is None
    # nothing on disk or in the log holds a clear password
    state = tmp_path / "dump.state"
    ok(q.request("save", path=str(state), full=True))
    data = state.read_bytes()
    assert b"$argon2id$" in data
    for pw in (secret, "other secret", "new one", "wrong"):
        assert pw.encode() not in data
        assert pw not in server.log()


def p0_set(server, path, value):
    """set_internal as root on a new connection."""
    p = server.connect()
    assert login(p, "_test", "root") is None
    return p.request("set_internal", path=Path(*path), value=value)


def test_bound_user_follows_the_acl(server):
    p = server.connect()
    setup_test_auth(p, [(("wom", "#"), "xc"), (("pub", "#"), "rxe"), (("pub",), "rxe")])
    j = server.connect()
    assert login(j, "_test", "joe") is None
    ok(j.request("set_value", path=Path("wom", "foo", "bar"), value=42))
    r = j.request("set_value", path=Path("wom", "foo", "bar"), value=43)
    assert r["error"] == "ACL writeonly (wom #: xc) does not allow w"
    r = j.request("get_value", path=Path("wom", "foo", "bar"))
    assert r["error"] == "ACL writeonly (wom #: xc) does not allow r"
    r = j.request("set_value", path=Path("elsewhere"), value=1)
    assert r["error"] == "ACL writeonly (no entry matches elsewhere) does not allow c"
    r = j.request("delete_value", path=Path("wom", "foo", "bar"))
    assert r["error"] == "ACL writeonly (wom #: xc) does not allow d"
    # internal data and node-wide actions: never
    for action, kw in [("get_internal", {"path": Path("acl")}),
                       ("set_internal", {"path": Path("acl", "writeonly", "x"), "value": "rwx"}),
                       ("auth_list", {"typ": "_test"}),
                       ("set_auth_typ", {"typ": None}),
                       ("get_state", {}),
                       ("msg_send", {"topic": "t", "data": 1})]:
        r = j.request(action, **kw)
        assert r["error"] == "ACL writeonly does not allow access to internal data", (action, r)
    # test_acl answers for the session
    assert ok(j.request("test_acl", path=Path("wom", "a")))["access"] == "cx"
    assert ok(j.request("test_acl", path=Path("wom", "a"), mode="w"))["access"] is False
    assert ok(j.request("test_acl", path=Path("nowhere")))["access"] is False
    # testing another ACL needs a at the path
    r = j.request("test_acl", path=Path("wom", "a"), acl="writeonly")
    assert r["error"] == "ACL writeonly (wom #: xc) does not allow a"
    ok(p0_set(server, ("acl", "writeonly", "wom", "#"), "xca"))
    assert ok(j.request("test_acl", path=Path("wom", "a"), acl="writeonly"))["access"] == "acx"
    # root is unrestricted, and may test another ACL
    assert login(p, "_test", "root") is None
    assert ok(p.request("test_acl", path=Path("wom", "a")))["access"] is True
    assert ok(p.request("test_acl", path=Path("pub", "x"), acl="writeonly"))["access"] == "rxe"
    # an ACL change counts at once, on the open connection
    ok(p.request("set_internal", path=Path("acl", "writeonly", "wom", "#"), value="xcwr"))
    ok(j.request("set_value", path=Path("wom", "foo", "bar"), value=44))
    assert ok(j.request("get_value", path=Path("wom", "foo", "bar")))["value"] == 44


def test_trees_and_enum_leave_out_what_may_not_be_read(server):
    p = server.connect()
    for path, v in [(("pub", "a"), 1), (("pub", "b", "c"), 2), (("secret", "x"), 3),
                    (("mixed", "open"), 4), (("mixed", "shut"), 5)]:
        ok(p.request("set_value", path=Path(*path), value=v))
    setup_test_auth(p, [((), "ex"), (("pub",), "rxe"), (("pub", "#"), "rxe"),
                        (("mixed",), "xe"), (("mixed", "open"), "r")], joe_acl="ro")
    j = server.connect()
    assert login(j, "_test", "joe") is None
    assert sorted(m["value"] for m in stream_all(j, "get_tree", path=Path("pub"))) == [1, 2]
    rows = stream_all(j, "get_tree", path=Path())
    values = sorted(m["value"] for m in rows if "value" in m)
    assert values == [1, 2, 4]      # secret and mixed/shut are left out
    names = ok(j.request("enum", path=Path(), empty=True))["result"]
    assert "secret" not in names and "pub" in names and "mixed" in names
    assert sorted(ok(j.request("enum", path=Path("mixed")))["result"]) == ["open"]
    r = j.request("enum", path=Path("secret"))
    assert "does not allow" in r["error"]
    # delete_tree deletes only what may be deleted (nothing here)
    assert ok(j.request("delete_tree", path=Path("pub")))["changed"] == 0


def test_watch_skips_unreadable_and_follows_acl_changes(server):
    p = server.connect()
    setup_test_auth(p, [((), "ex"), (("pub",), "rxe"), (("pub", "#"), "rxe"),
                        (("hid",), "xe"), (("hid", "#"), "xe")], joe_acl="ro")
    assert login(p, "_test", "root") is None
    ok(p.request("set_value", path=Path("pub", "old"), value=0))
    ok(p.request("set_value", path=Path("hid", "old"), value=0))
    j = server.connect()
    assert login(j, "_test", "joe") is None
    seq = j.start("watch", path=Path(), fetch=True)
    seen = []
    while True:
        m = j.next(seq)
        if m.get("state") == "uptodate":
            break
        if "value" in m:
            seen.append(m["value"])
    assert seen == [0]                      # only pub/old
    ok(p.request("set_value", path=Path("hid", "x"), value=1))
    ok(p.request("set_value", path=Path("pub", "x"), value=2))
    m = j.next(seq)
    assert m["value"] == 2, m               # hid/x was skipped
    # allow reading hid: the next change there comes through
    ok(p.request("set_internal", path=Path("acl", "ro", "hid", "#"), value="rxe"))
    ok(p.request("set_value", path=Path("hid", "y"), value=3))
    assert j.next(seq)["value"] == 3
    # and take it away again
    ok(p.request("set_internal", path=Path("acl", "ro", "hid", "#"), value="xe"))
    ok(p.request("set_value", path=Path("hid", "z"), value=4))
    ok(p.request("set_value", path=Path("pub", "z"), value=5))
    assert j.next(seq)["value"] == 5


@pytest.mark.parametrize("req,err", [
    ({"typ": "kerberos", "ident": "joe"}, "unknown auth method 'kerberos'"),
    ({"typ": 5, "ident": "joe"}, "typ"),
    ({"typ": "_test", "ident": "x" * 10000}, "a user name"),
    ({"typ": "_test", "ident": "../etc"}, "a user name"),
    ({"typ": "_test", "ident": ""}, "a user name"),
    ({"typ": "_test", "ident": 17}, "ident"),
    ({"typ": "_test", "ident": "joe", "chroot": ["a"]}, "chroot"),
    ({"typ": "password", "ident": "joe", "data": {"password": "clear"}}, "sealed"),
    ({"typ": "password", "ident": "joe", "data": {"password": b"x" * 100000}}, "sealed"),
    ({"typ": "password", "ident": "joe", "data": []}, "data"),
    ({"typ": "password", "ident": "joe"}, "needs data.password"),
])
def test_bad_auth_requests_get_clear_errors(server, req, err):
    p = server.connect()
    if req["typ"] != "password":
        setup_test_auth(p)
    else:
        add_user(p, "password", "joe", password="pw")
        ok(p.request("set_auth_typ", typ="password"))
    q = server.connect()
    ok(q.request("auth_key"))
    seq = q.start("auth", **req)
    m = q.next(seq)
    assert err in m["error"], m
    # the connection and the server go on
    assert login(q, "_test" if req["typ"] != "password" else "password", "joe",
                 None if req["typ"] != "password" else "pw") is None
    assert "tock" in ok(q.request("get_tock"))


@pytest.mark.parametrize("req,err", [
    ({"action": "set_auth_typ", "typ": "password"}, "has no users yet"),
    ({"action": "set_auth_typ", "typ": "nonsense"}, "unknown auth method"),
    ({"action": "auth_set", "typ": "root", "ident": "x"}, "root method has no users"),
    ({"action": "auth_set", "typ": "_test", "ident": "x", "aux": 5}, "aux"),
    ({"action": "auth_set", "typ": "_test", "ident": "x", "kind": "group"}, "kind"),
    ({"action": "auth_set", "typ": "password", "ident": "x"}, "needs a password"),
    ({"action": "auth_get", "typ": "_test", "ident": "ghost"}, "no user 'ghost'"),
    ({"action": "test_acl", "path": Path("a"), "mode": "q"}, "mode"),
])
def test_bad_user_management_requests(server, req, err):
    p = server.connect()
    action = req.pop("action")
    r = p.request(action, **req)
    assert err in r["error"], r
    assert "tock" in ok(p.request("get_tock"))


def test_login_flood_does_not_stall_others(server):
    """50 password logins at once: the hashing runs on its own thread, so
    another client's sets go on while they are verified."""
    p = server.connect()
    add_user(p, "password", "joe", password="pw")
    add_user(p, "password", "root", password="rootpw")
    ok(p.request("set_auth_typ", typ="password"))
    writer = server.connect()
    assert login(writer, "password", "root", "rootpw") is None
    conns = [server.connect() for _ in range(50)]
    keys = [ok(c.request("auth_key"))["pubkey"] for c in conns]
    seqs = [c.start("auth", typ="password", chroot=[], ident="joe",
                    data={"password": seal(k, "pw" if i % 5 else "bad")})
            for i, (c, k) in enumerate(zip(conns, keys))]
    # sets while the logins are being verified
    t0 = time.monotonic()
    done_sets = 0
    lat = []
    while done_sets < 200:
        s = time.monotonic()
        ok(writer.request("set_value", path=Path("flood", done_sets), value=done_sets))
        lat.append(time.monotonic() - s)
        done_sets += 1
    sets_time = time.monotonic() - t0
    results = []
    for c, seq in zip(conns, seqs):
        m = c.next(seq, timeout=60)
        results.append("error" not in m)
    flood_time = time.monotonic() - t0
    assert results.count(True) == 40 and results.count(False) == 10
    # the 200 sets were done well before the last login was answered
    assert sets_time < flood_time / 2, (sets_time, flood_time)
