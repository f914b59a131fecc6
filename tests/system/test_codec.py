"""Codecs and converters (issue 13, "Codecs"): the tutorial's "Data
mangling" section through the command line, the server's checks of
codec and converter records, and a user that reads and writes through a
converter -- over the protocol (values, trees, enum, watches, with a
second user at the same time), and through the mount (server.mount.user).

The tutorial types the scripts after a prompt; tests have no terminal,
so they give them with -e and -d.

Run with Debian's interpreter:

    DKV_BUILD=$PWD/build /usr/bin/python3 -m pytest -q tests/system/test_codec.py
"""

import errno
import os
import shutil
import subprocess
import tempfile

import pytest

import dkvyaml
from conftest import Server
from dkvproto import Path

ENCODE = "return str(value)\n"
DECODE = "return float(value)\n"


def ok(reply):
    assert "error" not in reply, reply
    return reply


def done(res, stdout=None):
    assert res.returncode == 0, (res.args, res.stdout, res.stderr)
    if stdout is not None:
        assert res.stdout == stdout, (res.args, res.stdout)
    return res


def fails(res, status, *words):
    assert res.returncode == status, (res.args, res.returncode, res.stdout, res.stderr)
    for w in words:
        assert w in res.stderr, (res.args, res.stderr)
    return res


def login(p, ident):
    """Log in with the _test method; asserts success."""
    seq = p.start("auth", typ="_test", chroot=[], ident=ident, data={})
    m = p.next(seq)
    assert "error" not in m, m
    assert m.get("state") == "start", m
    assert p.next(seq).get("state") == "end"


def stream(p, action, **kw):
    """The messages of a stream between start and end; an error message
    is returned as the last one."""
    seq = p.start(action, **kw)
    out = []
    while True:
        m = p.next(seq)
        if m.get("state") == "start":
            continue
        if m.get("state") == "end" or "error" in m:
            if "error" in m:
                out.append(m)
            return out
        out.append(m)


@pytest.fixture
def srv(server_factory):
    return server_factory(init=None)


@pytest.fixture
def cli(srv, tmp_path):
    """cli(*args) -> CompletedProcess (not checked); files enc.py and
    dec.py hold the tutorial's scripts."""
    (tmp_path / "enc.py").write_text(ENCODE)
    (tmp_path / "dec.py").write_text(DECODE)

    def _cli(*args, input=None):
        return srv.dkv(*args, check=False, input=input, cwd=tmp_path)

    return _cli


def tutorial_setup(cli):
    """The tutorial's codec and converter, users joe (through floatval)
    and root, _test logins on."""
    done(cli("codec", "set", "-i", '"12.5"', "12.5", "-o", "13.25", '"13.25"',
             "-e", "enc.py", "-d", "dec.py", "floatstr"), "")
    done(cli("codec", "convert", "-c", "floatstr", "floatval", "monitor", "#", "value"), "")
    done(cli("auth", "-m", "_test", "user", "add", "name=joe"))
    done(cli("auth", "-m", "_test", "user", "add", "name=root"))
    done(cli("auth", "-m", "_test", "init"))
    done(cli("-a", "_test name=root", "auth", "user", "modify", "--aux", "codec=floatval",
             "name=joe"))


def as_joe(cli, *args):
    return cli("-a", "_test name=joe", *args)


def as_root(cli, *args):
    return cli("-a", "_test name=root", *args)


# ---- the tutorial ----


def test_tutorial(cli):
    tutorial_setup(cli)
    done(as_joe(cli, "data", "set", "-v", "99.5", "monitor", "a", "b", "c", "value"), "")
    done(as_joe(cli, "data", "set", "-v", "12.3", "monitor", "a", "b", "c", "thing"), "")
    joe = dkvyaml.load(done(as_joe(cli, "data", "get", "-rd_", "monitor")).stdout)
    assert joe == {"a": {"b": {"c": {"value": {"_": "99.5"}, "thing": {"_": "12.3"}}}}}
    # stored: the decoded float where the converter matches, the string elsewhere
    root = dkvyaml.load(done(as_root(cli, "data", "get", "-rd_", "monitor")).stdout)
    assert root == {"a": {"b": {"c": {"value": {"_": 99.5}, "thing": {"_": "12.3"}}}}}
    assert isinstance(root["a"]["b"]["c"]["value"]["_"], float)
    # what root writes, joe reads as a string
    done(as_root(cli, "data", "set", "-ev", "7.25", "monitor", "x", "value"))
    done(as_joe(cli, "data", "get", "monitor", "x", "value"), "'7.25'\n")
    done(as_root(cli, "data", "get", "monitor", "x", "value"), "7.25\n")


def test_codec_commands(cli, tmp_path):
    done(cli("codec", "list"), "")
    done(cli("codec", "set", "-i", '"12.5"', "12.5", "-o", "13.25", '"13.25"',
             "-e", "enc.py", "-d", "dec.py", "floatstr"), "")
    (tmp_path / "benc.py").write_text("return 'ON' if value else 'OFF'\n")
    (tmp_path / "bdec.py").write_text("return value.lower() in ('on', 'true', '1')\n")
    # one script may come from standard input
    done(cli("codec", "set", "-i", "'ON'", "True", "-i", "'off'", "False",
             "-o", "True", "'ON'", "-o", "0", "'OFF'", "-e", "benc.py", "-d", "-",
             "home", "switch", input=(tmp_path / "bdec.py").read_text()), "")
    assert sorted(done(cli("codec", "list")).stdout.splitlines()) == ["floatstr", "home switch"]
    rec = dkvyaml.load(done(cli("codec", "get", "floatstr")).stdout)
    assert rec == {"encode": ENCODE, "decode": DECODE, "in": [["12.5", 12.5]],
                   "out": [[13.25, "13.25"]]}
    rest = dkvyaml.load(done(cli("codec", "get", "-e", "e.out", "-d", "d.out",
                                 "floatstr")).stdout)
    assert rest == {"in": [["12.5", 12.5]], "out": [[13.25, "13.25"]]}
    assert (tmp_path / "e.out").read_text() == ENCODE
    assert (tmp_path / "d.out").read_text() == DECODE
    done(cli("codec", "convert", "-c", "floatstr", "floatval", "monitor", "#", "value"), "")
    done(cli("codec", "convert", "-c", "home", "-c", "switch", "floatval", "lamp", "+"), "")
    done(cli("codec", "convert", "floatval"),
         "monitor # value : floatstr\nlamp + : home switch\n")
    # a codec in use stays
    fails(cli("codec", "delete", "home", "switch"), 1,
          "ServerError: codec home switch is used by converter floatval at lamp +")
    assert "home switch" in done(cli("codec", "list")).stdout
    done(cli("codec", "convert", "-d", "floatval", "lamp", "+"), "")
    done(cli("codec", "convert", "floatval"), "monitor # value : floatstr\n")
    fails(cli("codec", "convert", "-d", "floatval", "lamp", "+"), 1, "no binding at 'lamp +'")
    fails(cli("codec", "convert", "nosuch"), 1, "no converter named 'nosuch'")
    done(cli("codec", "delete", "home", "switch"), "")
    fails(cli("codec", "delete", "home", "switch"), 1, "no codec at 'home switch'")
    fails(cli("codec", "get", "home", "switch"), 1, "no codec named 'home switch'")
    done(cli("codec", "list"), "floatstr\n")


def test_usage_errors(cli):
    # no terminal: both scripts cannot come from standard input
    fails(cli("codec", "set", "-i", "1", "1", "-o", "1", "1", "x"), 2,
          "standard input is not a terminal: give the scripts with -e FILE and -d FILE")
    fails(cli("codec", "set", "-i", "1", "1", "-e", "enc.py", "-d", "dec.py", "x"), 2,
          "missing encoding samples (-o IN OUT)")
    fails(cli("codec", "set", "-o", "1", "1", "-e", "enc.py", "-d", "dec.py", "x"), 2,
          "missing decoding samples (-i IN OUT)")
    fails(cli("codec", "set", "-i", "1", "-e", "enc.py", "-d", "dec.py", "x"), 2)
    fails(cli("codec", "set", "-i", "1", "1", "-o", "1", "1", "-e", "enc.py", "-d", "dec.py"),
          2, "missing the codec's NAME")
    fails(cli("codec", "set", "-i", "(", "1", "-o", "1", "1", "-e", "enc.py", "-d", "dec.py",
              "x"), 2, "sample '('")
    fails(cli("codec", "convert", "-c", "x", "conv"), 2, "missing the PATH to bind")
    fails(cli("codec", "convert", "-c", "x", "-d", "conv", "a"), 2, "not both")
    done(cli("codec", "list"), "")


# ---- the server's checks ----


def test_bad_codecs_are_refused(cli, tmp_path):
    def codec_set(*args):
        return cli("codec", "set", *args, "-e", "enc.py", "-d", "dec.py", "c")

    fails(codec_set("-i", '"12.5"', "13", "-o", "13.25", '"13.25"'), 1,
          "ServerError: decode sample '12.5' gives 12.5, not 13\n")
    fails(codec_set("-i", '"12.5"', "12.5", "-o", "13.25", '"13.2"'), 1,
          "ServerError: encode sample 13.25 gives '13.25', not '13.2'\n")
    fails(codec_set("-i", '"x"', "1.0", "-o", "13.25", '"13.25"'), 1,
          "ServerError: decode sample 'x' raises ValueError(\"could not convert string to float: 'x'\")")
    # Python's equality: 12 == 12.0
    done(codec_set("-i", '"12"', "12", "-o", "2", '"2"'), "")
    (tmp_path / "bad.py").write_text("return (\n")
    fails(cli("codec", "set", "-i", "1", "1", "-o", "1", "1", "-e", "bad.py", "-d", "dec.py",
              "d"), 1, "ServerError: encode script: SyntaxError")
    fails(cli("codec", "get", "d"), 1, "no codec named 'd'")
    fails(cli("codec", "convert", "-c", "nosuch", "conv", "a"), 1,
          "ServerError: no codec named 'nosuch'")
    done(cli("codec", "list"), "c\n")


def test_bad_records_over_the_protocol(srv):
    p = srv.connect()
    r = p.request("set_internal", path=Path("codec"), value={"encode": "return value"})
    assert "needs a name" in r["error"]
    r = p.request("set_internal", path=Path("codec", "x"), value="return value")
    assert "a codec is a map" in r["error"]
    r = p.request("set_internal", path=Path("codec", "x"),
                  value={"encode": "return value", "decode": None, "out": []})
    assert "needs encode samples (out)" in r["error"]
    r = p.request("set_internal", path=Path("codec", "x"),
                  value={"encode": "return value", "out": [[1]]})
    assert "[IN, OUT] pairs" in r["error"]
    ok(p.request("set_internal", path=Path("codec", "x"),
                 value={"encode": "return value", "out": [[1, 1]]}))
    r = p.request("set_internal", path=Path("conv", "c"), value={"codec": ["x"]})
    assert "with a path" in r["error"]
    r = p.request("set_internal", path=Path("conv", "c", "a"), value={"codec": "x"})
    assert "{codec: [NAME...]}" in r["error"]
    ok(p.request("set_internal", path=Path("conv", "c", "a"), value={"codec": ["x"]}))
    assert "value" not in p.request("get_internal", path=Path("codec"))
    p.close()


# ---- a user through a converter, over the protocol ----


@pytest.fixture
def two(srv, cli):
    """(joe, root): connections logged in as joe (through floatval) and
    root, after the tutorial's setup."""
    tutorial_setup(cli)
    joe, root = srv.connect(), srv.connect()
    login(joe, "joe")
    login(root, "root")
    yield joe, root
    joe.close()
    root.close()


def test_two_users_at_once(two):
    joe, root = two
    for i in range(20):
        v = i + 0.5
        if i % 2:
            ok(joe.set(("monitor", "n", "value"), str(v)))
        else:
            ok(root.set(("monitor", "n", "value"), v))
        assert joe.get(("monitor", "n", "value"))["value"] == str(v)
        assert root.get(("monitor", "n", "value"))["value"] == v
    # not matched: both see the value as stored
    ok(joe.set(("monitor", "n", "other"), "1.5"))
    assert root.get(("monitor", "n", "other"))["value"] == "1.5"
    # set_value's prev comes back encoded
    r = ok(joe.set(("monitor", "n", "value"), "3.5"))
    assert r["prev"] == "19.5"
    # trees and enum
    tree = stream(joe, "get_tree", path=Path("monitor"))
    assert {tuple(m["path"][-1:]): m["value"] for m in tree} == {
        ("value",): "3.5", ("other",): "1.5"}
    tree = stream(root, "get_tree", path=Path("monitor"))
    assert sorted((m["value"] for m in tree), key=repr) == ["1.5", 3.5]
    r = ok(joe.request("enum", path=Path("monitor", "n"), with_data=True))
    assert r["result"] == {"value": "3.5", "other": "1.5"}


def test_codec_error_stores_nothing(two, srv):
    joe, root = two
    ok(root.set(("monitor", "a", "value"), 1.5))
    r = joe.set(("monitor", "a", "value"), "abc")
    assert r["error"] == "ValueError(\"could not convert string to float: 'abc'\")", r
    assert root.get(("monitor", "a", "value"))["value"] == 1.5
    r = joe.set(("monitor", "new", "value"), "abc")
    assert "ValueError" in r["error"]
    assert "value" not in root.get(("monitor", "new", "value"))
    assert "new" not in ok(root.request("enum", path=Path("monitor")))["result"]
    # the command line says the same
    res = srv.dkv("-a", "_test name=joe", "data", "set", "-v", "abc", "monitor", "a", "value",
                  check=False)
    assert res.returncode == 1
    assert "ServerError: ValueError(\"could not convert string to float: 'abc'\")" in res.stderr


def test_encoder_error(two):
    joe, root = two
    ok(root.request("set_internal", path=Path("codec", "picky"), value={
        "encode": "if value < 0: raise ValueError('negative')\nreturn str(value)",
        "decode": "return float(value)", "in": [["1", 1.0]], "out": [[1, "1"]]}))
    ok(root.request("set_internal", path=Path("conv", "floatval", "picky", "+"),
                    value={"codec": ["picky"]}))
    ok(root.set(("picky", "a"), 2))
    ok(root.set(("picky", "b"), -2))
    assert joe.get(("picky", "a"))["value"] == "2"
    assert joe.get(("picky", "b"))["error"] == "ValueError('negative')"
    tree = stream(joe, "get_tree", path=Path("picky"))
    assert tree[-1]["error"] == "ValueError('negative')", tree
    # a codec in use cannot go (a converter that names a missing codec,
    # which only concurrent changes on two nodes can make, is in the unit tests)
    assert root.request("delete_internal", path=Path("codec", "picky"))["error"] == \
        "codec picky is used by converter floatval at picky +"
    assert joe.get(("picky", "a"))["value"] == "2"
    # unbound: as stored again, and then the codec can go
    ok(root.request("delete_internal", path=Path("conv", "floatval", "picky", "+")))
    assert joe.get(("picky", "a"))["value"] == 2
    ok(root.request("delete_internal", path=Path("codec", "picky")))


def test_watch_encodes(two):
    joe, root = two
    ok(root.set(("monitor", "w", "value"), 1.25))
    seq = joe.start("watch", path=Path("monitor"), fetch=True)
    assert joe.next(seq).get("state") == "start"
    m = joe.next(seq)
    assert m["value"] == "1.25" and tuple(m["path"]) == ("w", "value"), m
    assert joe.next(seq).get("state") == "uptodate"
    ok(root.set(("monitor", "w", "value"), 2.75))
    m = joe.next(seq)
    assert m["value"] == "2.75", m
    ok(root.set(("monitor", "w", "thing"), 2.75))
    m = joe.next(seq)
    assert m["value"] == 2.75, m
    ok(joe.set(("monitor", "w", "value"), "8.5"))
    m = joe.next(seq)
    assert m["value"] == "8.5", m
    assert root.get(("monitor", "w", "value"))["value"] == 8.5
    ok(joe.request("stop", task=seq))


def test_aux_counts_from_the_next_login(two, srv, cli):
    joe, root = two
    ok(root.set(("monitor", "z", "value"), 4.5))
    done(as_root(cli, "auth", "user", "modify", "--aux", "codec=", "name=joe"))
    assert joe.get(("monitor", "z", "value"))["value"] == "4.5"   # this session: still
    p = srv.connect()
    login(p, "joe")
    assert p.get(("monitor", "z", "value"))["value"] == 4.5
    p.close()


# ---- the mount ----


@pytest.fixture
def mounted(server_factory, tmp_path):
    """A server with the tutorial's codec and converter and users, saved
    and loaded by a second server mounted as joe (server.mount.user)."""
    if not os.path.exists("/dev/fuse") or os.geteuid() != 0:
        pytest.skip("needs /dev/fuse and root")
    state = tmp_path / "state.dkv"
    s = Server(tmp_path / "w", init=None, server_args=("--save", str(state))).start()
    try:
        p = s.connect()
        ok(p.request("set_internal", path=Path("codec", "floatstr"), value={
            "encode": ENCODE, "decode": DECODE, "in": [["12.5", 12.5]],
            "out": [[13.25, "13.25"]]}))
        ok(p.request("set_internal", path=Path("conv", "floatval", "monitor", "#", "value"),
                     value={"codec": ["floatstr"]}))
        ok(p.request("set_internal", path=Path("auth", "_test", "user", "joe"),
                     value={"_aux": {"codec": "floatval"}}))
        ok(p.set(("monitor", "a", "value"), 99.5))
        ok(p.set(("monitor", "a", "thing"), 12.5))
        p.close()
    finally:
        assert s.stop() == 0
    mnt = tempfile.mkdtemp(prefix="dkv-codec-")
    srv = server_factory(init=None, config={"server.mount.user": "joe"},
                         server_args=("-l", str(state), "--mount", mnt))
    from test_fs import is_mounted, stop_server, wait_mounted

    class M:
        server = srv
    M.mnt = mnt
    wait_mounted(srv, mnt)
    yield srv, mnt
    rc = stop_server(M) if srv.alive() else 0
    left = is_mounted(mnt)
    if left:
        subprocess.run(["umount", "-l", mnt], capture_output=True)
    shutil.rmtree(mnt, ignore_errors=True)
    assert rc == 0 and not left


def test_mount_reads_and_writes_encoded(mounted):
    srv, mnt = mounted
    p = srv.connect()

    def read(*names):
        with open(os.path.join(mnt, *names, "_")) as f:
            return f.read()

    def write(text, *names):
        fd = os.open(os.path.join(mnt, *names, "_"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)

    assert read("monitor", "a", "value") == "'99.5'\n"
    assert read("monitor", "a", "thing") == "12.5\n"
    write("'42.25'\n", "monitor", "a", "value")
    assert p.get(("monitor", "a", "value"))["value"] == 42.25
    assert read("monitor", "a", "value") == "'42.25'\n"
    # a value the codec refuses: not stored, the writer hears of it
    try:
        write("abc\n", "monitor", "a", "value")
        err = 0
    except OSError as e:
        err = e.errno
    assert err == errno.EINVAL
    assert p.get(("monitor", "a", "value"))["value"] == 42.25
    assert "could not convert string to float" in srv.log()
    p.close()
