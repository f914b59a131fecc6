"""The client side of logging in: the command line's -a / connect.auth,
the `_test` login byte for byte against the original's capture
(../shared/spec/reference-client-capture.txt, the second part), password
logins (never in clear on the wire), and servers logging in to their
peers (connect.auth on `distkv server`).

    DKV_BUILD=$PWD/build /usr/bin/python3 -m pytest -q tests/system/test_auth_login.py

Users and the method are set up with raw protocol requests (auth_set,
set_auth_typ), so that these tests do not depend on the `auth` command
group.  Passwords are sealed for auth_set with libsodium through ctypes
(crypto_box_seal), as doc/protocol.md says.  A small recording TCP proxy
between the command line and the server shows what the client sends.
"""

import ctypes
import ctypes.util
import socket
import subprocess
import threading
import time

import pytest

from cluster_util import wait_for
from conftest import DISTKV
from dkvproto import ConnectionClosed, Path, Proto, decode_all, encode

# The capture's connection 2: what the original client sends to log in.
CAPTURE_HELLO = {"seq": 0, "qlen": 10}
CAPTURE_LOGIN = {"typ": "_test", "chroot": (), "ident": "joe", "data": {}, "action": "auth",
                 "seq": 1}
PASSWORD = "Corr3ct-h0rse-battery"


# --------------------------------------------------------------------------
# helpers

_sodium = None


def seal(pubkey, text):
    """crypto_box_seal(text, pubkey) through ctypes."""
    global _sodium
    if _sodium is None:
        name = ctypes.util.find_library("sodium") or "libsodium.so.23"
        try:
            _sodium = ctypes.CDLL(name)
        except OSError:
            pytest.skip("no libsodium for ctypes here")
        assert _sodium.sodium_init() >= 0
    msg = text.encode()
    out = ctypes.create_string_buffer(48 + len(msg))
    assert _sodium.crypto_box_seal(out, msg, ctypes.c_ulonglong(len(msg)), bytes(pubkey)) == 0
    return out.raw


def login(p, name="joe", typ="_test", password=None):
    """Log in on the Proto p; returns the auth request's replies."""
    data = {}
    if password is not None:
        key = p.request("auth_key")
        assert isinstance(key.get("pubkey"), bytes) and len(key["pubkey"]) == 32, key
        data = {"password": seal(key["pubkey"], password)}
    return p.stream("auth", typ=typ, chroot=(), ident=name, data=data)


def lconnect(server, name="joe", typ="_test", password=None, timeout=5.0):
    """A Proto to server, logged in when its greeting asks for it."""
    p = server.connect(timeout=timeout)
    auth = p.greeting.get("auth")
    if auth and auth[0] is not None:
        r = login(p, name, typ, password)
        assert r and "error" not in r[-1], r
    return p


def lrequest(server, action, **fields):
    with lconnect(server) as p:
        return p.request(action, **fields)


def add_user(p, name, typ="_test", password=None):
    data = {}
    if password is not None:
        key = p.request("auth_key")
        data = {"password": seal(key["pubkey"], password)}
    r = p.request("auth_set", typ=typ, kind="user", ident=name, data=data)
    assert "error" not in r, r


def auth_on(server, typ="_test", users=("joe", "root"), password=None):
    """Make users under typ and choose typ, as `auth -m TYP user add` and
    `auth -m TYP init` would."""
    with server.connect() as p:
        for u in users:
            add_user(p, u, typ, password)
        r = p.request("set_auth_typ", typ=typ)
        assert "error" not in r, r
        assert p.request("get_tock").get("tock"), "connection still usable"


def dkv(server, *args, global_args=(), **kw):
    """`distkv [global_args] -C connect.host -C connect.port client ARGS`."""
    argv = [str(DISTKV), *global_args, "-C", "connect.host=%s" % server.host,
            "-C", "connect.port=%d" % server.port, "client", *map(str, args)]
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 30)
    return subprocess.run(argv, **kw)


class Recorder:
    """A TCP proxy to (host, port) on a free local port, recording what
    every connection's client sent (.sent: one bytes per connection, in
    the order they were accepted).  stop() closes everything."""

    def __init__(self, host, port):
        self.target = (host, port)
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(8)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.sent = []
        self.socks = []
        self.halt = threading.Event()
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _pump(self, src, dst, idx):
        while True:
            try:
                b = src.recv(65536)
            except OSError:
                b = b""
            if not b:
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                return
            if idx is not None:
                self.sent[idx] += b
            try:
                dst.sendall(b)
            except OSError:
                return

    def _accept(self):
        while not self.halt.is_set():
            try:
                c, _ = self.lsock.accept()
            except OSError:
                continue
            s = socket.create_connection(self.target)
            self.socks += [c, s]
            self.sent.append(b"")
            idx = len(self.sent) - 1
            for args in ((c, s, idx), (s, c, None)):
                t = threading.Thread(target=self._pump, args=args, daemon=True)
                t.start()
                self.threads.append(t)

    def stop(self):
        self.halt.set()
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass
        for t in self.threads:
            t.join(5)
        self.lsock.close()


@pytest.fixture
def recorder():
    made = []

    def make(server):
        r = Recorder(server.host, server.port)
        made.append(r)
        return r

    yield make
    for r in made:
        r.stop()


def via(rec, server, *args, **kw):
    """The command line through the recording proxy rec."""
    argv = [str(DISTKV), "-C", "connect.host=127.0.0.1", "-C", "connect.port=%d" % rec.port,
            "client", *map(str, args)]
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    return subprocess.run(argv, timeout=30, **kw)


# --------------------------------------------------------------------------
# the capture, byte for byte

def test_capture_login_replayed_byte_for_byte(server):
    """Connection 2 of the capture: the original's exact request bytes log
    in to our server, answered by start (wseq 1) and end (wseq 2) with
    tocks; afterwards the connection may read."""
    auth_on(server)
    with server.connect() as p:
        assert p.greeting.get("auth") == ("_test",), p.greeting
        p.send_raw(encode(CAPTURE_LOGIN))
        start = p.recv()
        end = p.recv()
        assert set(start) == {"state", "seq", "wseq", "tock"}, start
        assert (start["state"], start["seq"], start["wseq"]) == ("start", 1, 1), start
        assert set(end) == {"state", "seq", "wseq", "tock"}, end
        assert (end["state"], end["seq"], end["wseq"]) == ("end", 1, 2), end
        assert isinstance(start["tock"], int) and end["tock"] >= start["tock"]
        r = p.request("get_value", path=Path())
        assert r.get("value") == "Testing", r


def test_our_client_sends_the_captures_bytes(server, recorder):
    """`distkv client -a "_test name=joe" data get` sends the hello and the
    login exactly as the original did (connection 2's first two C>S
    messages), then its request."""
    auth_on(server)
    rec = recorder(server)
    r = via(rec, server, "-a", "_test name=joe", "data", "get")
    assert r.returncode == 0 and r.stdout == "Testing\n", r
    wait_for(lambda: len(rec.sent) == 1 and len(decode_all(rec.sent[0])) >= 3, 5,
             "the client's messages")
    want = encode(CAPTURE_HELLO) + encode(CAPTURE_LOGIN)
    assert rec.sent[0][:len(want)] == want, (rec.sent[0][:len(want)], want)
    msgs = decode_all(rec.sent[0])
    assert msgs[2].get("action") == "get_value" and msgs[2].get("seq") == 2, msgs


def test_without_login_client_fails_like_the_original(server):
    """Connection 1 of the capture: no -a while _test is chosen."""
    r = dkv(server, "data", "get")
    assert r.returncode == 0 and r.stdout == "Testing\n", r  # no login needed yet
    auth_on(server)
    r = dkv(server, "data", "get")
    assert r.returncode == 1, r
    assert r.stderr == "ClientAuthRequiredError: You need to log in using: _test\n", r
    assert r.stdout == ""


@pytest.mark.parametrize("req", [
    {"action": "get_value", "path": Path()},
    {"action": "set_value", "path": Path("x"), "value": 1},
    {"action": "get_tree", "path": Path()},
    {"action": "watch", "path": Path()},
    {"action": "get_state"},
    {"action": "get_internal", "path": Path("auth")},
    {"action": "repl", "node": "x", "root": "r", "live": False, "have": {}},
])
def test_raw_requests_without_login_get_an_error(server, req):
    auth_on(server)
    with server.connect() as p:
        p.send(dict(req, seq=7))
        m = p.recv()
        assert m.get("seq") == 7, m
        assert m.get("etype") == "ClientAuthRequiredError", m
        assert m.get("error") == "You need to log in using: _test", m
    # and nothing was changed by the set
    with lconnect(server) as p:
        assert "value" not in p.request("get_value", path=Path("x"))


# --------------------------------------------------------------------------
# the command line

def test_a_and_connect_auth_and_config_file(server, tmp_path):
    auth_on(server)
    r = dkv(server, "-a", "_test name=joe", "data", "set", "-v", "v1", "k")
    assert r.returncode == 0, r
    r = dkv(server, "--auth", "_test name=root", "data", "get", "k")
    assert (r.returncode, r.stdout) == (0, "v1\n"), r
    r = dkv(server, "data", "get", "k", global_args=["-C", "connect.auth=_test name=joe"])
    assert (r.returncode, r.stdout) == (0, "v1\n"), r
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("connect:\n  auth: \"_test name=joe\"\n")
    r = dkv(server, "data", "get", "k", global_args=["-c", str(cfg)])
    assert (r.returncode, r.stdout) == (0, "v1\n"), r
    # -a wins over connect.auth
    r = dkv(server, "-a", "_test name=nobody", "data", "get", "k",
            global_args=["-C", "connect.auth=_test name=joe"])
    assert r.returncode == 1, r
    assert r.stderr == "ServerError: Login failed: unknown user or wrong password\n", r
    r = dkv(server, "-a", "_test name=joe", "data", "get", "k",
            global_args=["-C", "connect.auth=_test name=nobody"])
    assert (r.returncode, r.stdout) == (0, "v1\n"), r


def test_bad_specs_and_wrong_method(server):
    r = dkv(server, "-a", "kerberos name=joe", "data", "get")
    assert r.returncode == 2 and "unknown method 'kerberos'" in r.stderr, r
    r = dkv(server, "-a", "_test", "data", "get")
    assert r.returncode == 2 and "needs name=USER" in r.stderr, r
    r = dkv(server, "data", "get", global_args=["-C", "connect.auth=_test colour=red"])
    assert r.returncode == 2 and "connect.auth" in r.stderr and "'colour'" in r.stderr, r
    r = dkv(server, "data", "get", global_args=["-C", "connect.auth=5"])
    assert r.returncode == 2 and "connect.auth must be a string" in r.stderr, r
    # a login given where none is needed is not used
    r = dkv(server, "-a", "_test name=nobody", "data", "get")
    assert (r.returncode, r.stdout) == (0, "Testing\n"), r
    auth_on(server)
    r = dkv(server, "-a", "password name=joe password=x", "data", "get")
    assert r.returncode == 1, r
    assert r.stderr == ("ClientAuthMethodError: You cannot use 'password' auth; "
                        "the server wants _test\n"), r
    r = dkv(server, "-a", "root", "data", "get")
    assert r.returncode == 1, r
    assert r.stderr == "ClientAuthRequiredError: You need to log in using: _test\n", r


def test_password_logins(server, recorder):
    """Right and wrong passwords, an unknown user (the same error), a
    prompt answered on stdin; the password never crosses the wire in
    clear, and no prompt is shown when no password login is needed."""
    r = dkv(server, "-a", "password name=joe password?=Code", "data", "get", input="")
    assert (r.returncode, r.stdout) == (0, "Testing\n"), r  # not asked: not needed
    auth_on(server, "password", users=("joe",), password=PASSWORD)
    rec = recorder(server)
    r = via(rec, server, "-a", "password name=joe password=%s" % PASSWORD, "data", "get")
    assert (r.returncode, r.stdout, r.stderr) == (0, "Testing\n", ""), r
    wrong = via(rec, server, "-a", "password name=joe password=%sX" % PASSWORD, "data", "get")
    unknown = via(rec, server, "-a", "password name=bob password=%s" % PASSWORD, "data", "get")
    for x in (wrong, unknown):
        assert x.returncode == 1, x
        assert x.stderr == "ServerError: Login failed: unknown user or wrong password\n", x
    r = via(rec, server, "-a", "password name=joe password?=Code", "data", "get",
            input=PASSWORD + "\n")
    assert (r.returncode, r.stdout) == (0, "Testing\n"), r
    r = via(rec, server, "-a", "password name=joe password?=Code", "data", "get",
            input="nope\n")
    assert r.returncode == 1 and "Login failed" in r.stderr, r
    r = dkv(server, "data", "get")
    assert r.stderr == "ClientAuthRequiredError: You need to log in using: password\n", r
    r = dkv(server, "-a", "password name=joe", "data", "get")
    assert r.returncode == 1 and "needs password= or password?=PROMPT" in r.stderr, r
    wait_for(lambda: len(rec.sent) == 5 and all(len(decode_all(s)) >= 3 for s in rec.sent[:4]),
             5, "every connection's login")
    for sent in rec.sent:
        assert PASSWORD.encode() not in sent, sent
        assert b"Corr3ct" not in sent
    # each login: hello, auth_key, auth with a 48 + len byte box
    msgs = decode_all(rec.sent[0])
    assert msgs[1] == {"seq": 1, "action": "auth_key"}, msgs
    assert msgs[2]["action"] == "auth" and msgs[2]["typ"] == "password", msgs
    assert msgs[2]["ident"] == "joe" and msgs[2]["chroot"] == ()
    assert len(msgs[2]["data"]["password"]) == 48 + len(PASSWORD)


# --------------------------------------------------------------------------
# servers logging in to their peers

def cstate(server):
    """get_state's cluster map, logged in when the server wants it."""
    with lconnect(server) as p:
        return p.request("get_state", cluster=True).get("cluster")


def peer_info(server, peer):
    return ((cstate(server) or {}).get("peers") or {}).get(peer) or {}


def ready_with(server, peers):
    c = cstate(server) or {}
    return c.get("ready") is True and all(
        ((c.get("peers") or {}).get(n) or {}).get("state") == "live" for n in peers)


def set_logged_in(server, path, value):
    with lconnect(server) as p:
        r = p.request("set_value", path=Path(*path), value=value)
        assert "error" not in r, r


def get_logged_in(server, path):
    with lconnect(server) as p:
        return p.request("get_value", path=Path(*path)).get("value")


AUTH = "_test name=joe"


def own_log(server):
    """The server's log without the lines the test harness wrote (its argv)."""
    return "\n".join(l for l in server.log().splitlines() if not l.startswith("# "))


def greeting_auth(server):
    with server.connect() as p:
        return p.greeting.get("auth")


def test_peers_log_in_with_connect_auth(cluster_factory, server_factory):
    """Two nodes with connect.auth and _test on: the data still flows, and
    a restarted node downloads through a login.  A third node without
    connect.auth says why in its log and in get_state, stays not ready,
    keeps trying, and gets in once logins are turned off."""
    c = cluster_factory(2, config={"connect.auth": AUTH})
    one, two = c.servers
    auth_on(one)
    wait_for(lambda: greeting_auth(two) == ("_test",), 15,
             "the auth records on two")
    set_logged_in(one, ("a", "b"), "from one")
    wait_for(lambda: get_logged_in(two, ("a", "b")) == "from one", 15, "the change on two")

    # two restarted (empty, no log) must log in to download the state
    c.stop(1)
    set_logged_in(one, ("a", "c"), "while two was down")
    two = c.start(1)
    wait_for(lambda: ready_with(two, ["one"]), 20, "two in sync again")
    assert get_logged_in(two, ("a", "c")) == "while two was down"
    set_logged_in(two, ("a", "d"), "from two")
    wait_for(lambda: get_logged_in(one, ("a", "d")) == "from two", 15, "the change on one")
    wait_for(lambda: ready_with(one, ["two"]), 20, "one's link to two live")

    # three, without connect.auth
    cfg = dict(c.config[0])
    cfg.pop("connect.auth")
    agent = c.agents[0]
    cfg["server.serf.port"] = c.agents[1].rpc_port  # two's agent: one per node is not needed
    three = server_factory(node="three", init=None, config=cfg)
    wait_for(lambda: "wants a login (_test); set connect.auth" in three.log(), 20,
             "three's complaint in its log")
    info = wait_for(lambda: peer_info(three, "one").get("error"), 10, "three's peer error")
    assert "wants a login (_test); set connect.auth" in info, info
    st = cstate(three)
    assert st["ready"] is False, st
    assert st["peers"]["one"]["state"] != "live" and not st["peers"]["one"]["synced"], st
    assert "in sync" not in three.log(), three.log()
    # not ready: data requests wait
    with three.connect(timeout=5) as p:
        p.send({"seq": 3, "action": "get_value", "path": Path("a", "b")})
        with pytest.raises((TimeoutError, socket.timeout)):
            p.recv_for(3, timeout=1.5)
    # it keeps trying: once logins are off it gets in by itself
    with lconnect(one) as p:
        assert "error" not in p.request("set_auth_typ", typ=None)
    wait_for(lambda: ready_with(three, ["one", "two"]), 30, "three in sync after auth off")
    with three.connect() as p:
        assert p.request("get_value", path=Path("a", "d")).get("value") == "from two"
    assert agent.alive()


def test_peer_login_refused_and_password(cluster_factory, server_factory):
    """Peers logging in with a password; a node with a wrong one is
    refused (its log and get_state say so) and stays not ready."""
    c = cluster_factory(2, config={"connect.auth": "password name=joe password=%s" % PASSWORD})
    one, two = c.servers
    auth_on(one, "password", users=("joe",), password=PASSWORD)
    wait_for(lambda: greeting_auth(two) == ("password",), 15,
             "the auth records on two")
    c.stop(1)
    two = c.start(1)
    pw = lambda s, **kw: lconnect(s, typ="password", password=PASSWORD, **kw)  # noqa: E731

    def two_ready():
        with pw(two) as p:
            st = p.request("get_state", cluster=True)["cluster"]
        return st["ready"] and st["peers"]["one"]["state"] == "live"
    wait_for(two_ready, 20, "two in sync through a password login")
    for s in (one, two):   # what the server wrote (the test's "# argv" line aside)
        assert PASSWORD not in own_log(s)

    cfg = dict(c.config[0])
    cfg["connect.auth"] = "password name=joe password=Bad-Pa55word"
    cfg["server.serf.port"] = c.agents[1].rpc_port
    three = server_factory(node="three", init=None, config=cfg)
    wait_for(lambda: "login refused: Login failed" in three.log(), 20, "three refused")
    err = wait_for(lambda: peer_info(three, "one").get("error"), 10, "three's error for one")
    assert "login refused: Login failed" in err, err
    st = cstate(three)
    assert st["ready"] is False, st
    assert "Bad-Pa55word" not in own_log(three)


def test_server_refuses_a_prompt_in_connect_auth(server_factory, tmp_path):
    from conftest import Server
    s = Server(tmp_path / "p", config={"server.cluster": True,
                                       "connect.auth": "password name=joe password?=Code"})
    r = subprocess.run(s.argv, cwd=s.workdir, capture_output=True, text=True, timeout=20,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 2, r
    assert "a server cannot ask for a password" in r.stderr, r
    s2 = Server(tmp_path / "q", config={"server.cluster": True, "connect.auth": "nonsense"})
    r = subprocess.run(s2.argv, cwd=s2.workdir, capture_output=True, text=True, timeout=20,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 2 and "unknown method 'nonsense'" in r.stderr, r
