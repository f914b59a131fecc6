"""Stored code (issue 13, "Code storage"): `distkv client code ...` and
`code module ...` against real servers.

The server compiles every procedure and module before it stores it
(engine/code.c) and refuses what does not compile, with the line and
Python's message; nothing runs the code.  Covered here: the tutorial's
code sections (storing only: the runners are a later issue) run line by
line in bash; syntax errors with their line numbers; async procedures;
vars; what `set` keeps; modules; get, list and delete; records written
with the protocol that are not records; a user bound to an ACL; the
mount's .code and .module (reading, writing, a bad write); persistence
(restart from the change log) and replication to a second node.

    DKV_BUILD=$PWD/build /usr/bin/python3 -m pytest -q tests/system/test_code.py
"""

import errno
import os
import signal
import subprocess

import pytest

import cluster_util
from conftest import BUILD_DIR
from dkvproto import Path
from test_fs import MISSING, errno_of, read, write_raw
from test_fs import mount_factory  # noqa: F401  (a fixture)

TOOLS = str(BUILD_DIR / "tools")

ANSWER = 'print("Forty-Two!")\nreturn 42\n'
ANSWER_YAML = ('code: |\n  print("Forty-Two!")\n  return 42\n'
               'is_async: null\nvars: []\n')


@pytest.fixture
def srv(server_factory):
    return server_factory(init=None)


@pytest.fixture
def cli(srv):
    """cli(*args, input="") -> CompletedProcess of `distkv client ARGS`
    (not checked).  Standard input is a pipe (empty unless given)."""

    def _cli(*args, input=""):
        return srv.dkv(*args, check=False, input=input)

    return _cli


def ok(res, stdout=None):
    assert res.returncode == 0, (res.args, res.stdout, res.stderr)
    if stdout is not None:
        assert res.stdout == stdout, (res.args, res.stdout)
    return res


def fails(res, status, *words):
    assert res.returncode == status, (res.args, res.returncode, res.stdout, res.stderr)
    for w in words:
        assert w in res.stderr, (res.args, res.stderr)
    return res


def lists(v):
    """v with the tuples dkvproto makes of arrays as lists."""
    if isinstance(v, (list, tuple)):
        return [lists(x) for x in v]
    if isinstance(v, dict):
        return {k: lists(x) for k, x in v.items()}
    return v


def internal(srv, *path):
    """The internal record at path (MISSING when there is none), arrays
    as lists."""
    p = srv.connect()
    try:
        r = p.request("get_internal", path=Path(*path))
    finally:
        p.close()
    assert "error" not in r, r
    return lists(r["value"]) if "value" in r else MISSING


def set_internal(srv, path, value):
    p = srv.connect()
    try:
        return p.request("set_internal", path=Path(*path), value=value)
    finally:
        p.close()


# ---- usage, no server needed ----


def test_help(cli):
    res = ok(cli("code", "--help"))
    for cmd in ("set", "get", "list", "delete", "module"):
        assert "  %s " % cmd in res.stdout, res.stdout
    res = ok(cli("code", "module", "--help"))
    for cmd in ("set", "get", "list", "delete"):
        assert "  %s " % cmd in res.stdout, res.stdout
    res = ok(cli("code", "set", "--help"))
    for opt in ("-a, --async", "-t, --thread", "-v, --var VAR", "-i, --info INFO",
                "-s, --script FILE"):
        assert opt in res.stdout, res.stdout
    fails(cli("code", "set"), 2, "missing PATH")
    fails(cli("code", "get"), 2, "missing PATH")
    fails(cli("code", "delete"), 2, "missing PATH")
    fails(cli("code", "set", "-a", "-t", "x"), 2, "exclude each other")
    fails(cli("code", "frob"), 2, "unknown command 'code frob'")


# ---- the tutorial ----


def tutorial(srv, steps):
    """Run each (line, stdin, status, stdout, stderr) in its own bash, with
    `dkv` pointing at srv; stdout/stderr None: not checked."""
    env = dict(os.environ, PATH=TOOLS + os.pathsep + os.environ.get("PATH", ""))
    prelude = 'dkv() { command dkv -C connect.port=%d "$@"; }' % srv.port
    for line, status, out, err in steps:
        res = subprocess.run(["bash", "-c", prelude + "\n" + line], capture_output=True,
                             text=True, env=env, timeout=60, stdin=subprocess.DEVNULL)
        assert res.returncode == status, (line, res.returncode, res.stdout, res.stderr)
        if out is not None:
            assert res.stdout == out, (line, res.stdout)
        if err is not None:
            assert res.stderr == err, (line, res.stderr)


def test_tutorial_code(srv):
    """"Code execution": the two `code set` lines as written (with their
    here-documents), then what was stored."""
    tutorial(srv, [
        ('dkv code set the answer <<END\nprint("Forty-Two!")\nreturn 42\nEND', 0, "", ""),
        ('dkv code set the error <<END\nraise RuntimeError("Owch")\nEND', 0, "", ""),
        ("dkv code get the answer", 0, ANSWER_YAML, ""),
        ("dkv code list", 0, "the answer :: <2 lines>\nthe error :: <1 line>\n", ""),
    ])
    assert internal(srv, "code", "the", "answer") == {
        "code": ANSWER, "is_async": None, "vars": []}
    assert internal(srv, "code", "the", "error")["code"] == 'raise RuntimeError("Owch")\n'


def test_prompt_on_a_terminal(srv):
    """On a terminal `code set` says what it wants and reads to end of file
    (Ctrl-D); `code module set` the same."""
    import pty
    for args, prompt, path in ((("code", "set", "tty"), "Enter the Python script.\n",
                                ("code", "tty")),
                               (("code", "module", "set", "tty"), "Enter the Python module.\n",
                                ("module", "tty"))):
        leader, follower = pty.openpty()
        try:
            proc = subprocess.Popen(srv.client_argv(*args), stdin=follower,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            os.close(follower)
            follower = -1
            os.write(leader, b"x = 1\n")
            os.write(leader, b"y = 2\n\x04")   # Ctrl-D at the start of a line: EOF
            out, err = proc.communicate(timeout=30)
        finally:
            os.close(leader)
            if follower >= 0:
                os.close(follower)
        assert proc.returncode == 0, (out, err)
        assert err.decode() == prompt, err
        assert internal(srv, *path)["code"] == "x = 1\ny = 2\n"


# ---- compiling ----


@pytest.mark.parametrize("script,line,words", [
    ("x = 1\nreturn x +\n", 2, "invalid syntax"),
    ("return (\n", 1, "was never closed"),
    ("a = 1\nb = 2\n  c = 3\n", 3, "unexpected indent"),
    ("if True:\nreturn 1\n", 2, "expected an indented block"),
    ("x = 1\nawait x\n", 2, "'await' outside async function"),
    ("from os import *\n", 1, "import * only allowed at module level"),
])
def test_syntax_errors(cli, srv, script, line, words):
    """A script that does not compile is refused with its line and Python's
    message, exit status 1; nothing is stored, and a stored procedure
    stays as it was."""
    res = fails(cli("code", "set", "bad", input=script), 1, "ServerError: ",
                "line %d: " % line, words)
    assert res.stderr.startswith("ServerError: ") and "Error: line" in res.stderr, res.stderr
    assert internal(srv, "code", "bad") is MISSING
    ok(cli("code", "set", "good", input="return 1\n"))
    fails(cli("code", "set", "good", input=script), 1, "line %d: " % line)
    assert internal(srv, "code", "good")["code"] == "return 1\n"


def test_async_thread_and_vars(cli, srv):
    # await only compiles in an async procedure
    fails(cli("code", "set", "wait", input="await sleep(1)\n"), 1, "outside async function")
    ok(cli("code", "set", "-a", "wait", input="await sleep(1)\nreturn 1\n"))
    assert internal(srv, "code", "wait")["is_async"] is True
    ok(cli("code", "set", "--async", "gen", input="async for x in y:\n    pass\n"))
    ok(cli("code", "set", "-t", "slow", input="return 2\n"))
    assert internal(srv, "code", "slow")["is_async"] is False
    # vars are the parameters, in the order given, each once
    ok(cli("code", "set", "-v", "x", "-v", "y", "-v", "x", "-i", "adds", "add",
           input="return x + y\n"))
    rec = internal(srv, "code", "add")
    assert rec["vars"] == ["x", "y"] and rec["info"] == "adds", rec
    # a parameter that is no name, or a keyword: refused by the server
    fails(cli("code", "set", "-v", "x)", "p", input="return 1\n"), 1,
          "ServerError: TypeError: 'x)' in 'vars' is not a name")
    fails(cli("code", "set", "-v", "class", "p", input="return 1\n"), 1,
          "ServerError: SyntaxError")
    fails(cli("code", "set", "-v", "a", "-v", "b", "p", input="def f(:\n"), 1, "line 1:")
    assert internal(srv, "code", "p") is MISSING
    # a name used twice in the script's parameters is Python's error
    r = set_internal(srv, ("code", "dup"), {"code": "return 1", "vars": ["a", "a"]})
    assert "SyntaxError" in r.get("error", ""), r


def test_set_keeps_what_is_not_given(cli, srv, tmp_path):
    script = tmp_path / "s.py"
    script.write_text("return v * 2\n")
    ok(cli("code", "set", "-a", "-v", "v", "-i", "doubles", "-s", str(script), "dbl"))
    # the runners' own keys stay too
    rec = internal(srv, "code", "dbl")
    rec["default"] = {"v": 21}
    assert "error" not in set_internal(srv, ("code", "dbl"), rec)
    # empty standard input: the script stays; only the info changes
    ok(cli("code", "set", "-i", "twice", "dbl"))
    assert internal(srv, "code", "dbl") == {
        "code": "return v * 2\n", "is_async": True, "vars": ["v"], "info": "twice",
        "default": {"v": 21}}
    # a new script keeps is_async and vars; -t changes is_async
    ok(cli("code", "set", "-t", "dbl", input="return v + v\n"))
    rec = internal(srv, "code", "dbl")
    assert rec["code"] == "return v + v\n" and rec["is_async"] is False, rec
    assert rec["vars"] == ["v"] and rec["info"] == "twice", rec
    # no script at all for a new procedure
    fails(cli("code", "set", "new"), 1, "no script")
    fails(cli("code", "set", "-s", str(tmp_path / "nosuch"), "new"), 1, "No such file")
    assert internal(srv, "code", "new") is MISSING


def test_get_list_delete(cli, srv, tmp_path):
    ok(cli("code", "set", "the", "answer", input=ANSWER))
    ok(cli("code", "set", "-i", "one more", "the", "other", input="return 1"))
    ok(cli("code", "set", "top", input="pass\n"))
    ok(cli("code", "get", "the", "answer"), ANSWER_YAML)
    out = tmp_path / "out.py"
    ok(cli("code", "get", "-s", str(out), "the", "answer"), "is_async: null\nvars: []\n")
    assert out.read_text() == ANSWER
    fails(cli("code", "get", "the"), 1, "no code at the")
    fails(cli("code", "get", "nothing", "here"), 1, "no code at nothing here")
    ok(cli("code", "list"),
       "the answer :: <2 lines>\nthe other :: one more\ntop :: <1 line>\n")
    ok(cli("code", "list", "the"), "the answer :: <2 lines>\nthe other :: one more\n")
    ok(cli("code", "list", "top"), "top :: <1 line>\n")
    ok(cli("code", "list", "nothing"), "")
    ok(cli("code", "delete", "the", "answer"), "")
    fails(cli("code", "delete", "the", "answer"), 1, "no code at the answer")
    ok(cli("code", "list"), "the other :: one more\ntop :: <1 line>\n")
    # path elements in colon notation: an integer element
    ok(cli("code", "set", "n", ":5", input="return 5\n"))
    ok(cli("code", "list", "n"), "n :5 :: <1 line>\n")
    assert internal(srv, "code", "n", 5)["code"] == "return 5\n"


def test_list_without_any_code(cli):
    ok(cli("code", "list"), "")
    ok(cli("code", "module", "list"), "")


def test_modules(cli, srv, tmp_path):
    src = "from os import *\nANSWER = 42\n\ndef answer():\n    return ANSWER\n"
    ok(cli("code", "module", "set", "my", "mod", input=src))
    assert internal(srv, "module", "my", "mod") == {"code": src}
    ok(cli("code", "module", "get", "my", "mod"),
       "code: |\n  from os import *\n  ANSWER = 42\n\n  def answer():\n"
       "      return ANSWER\n")
    out = tmp_path / "m.py"
    ok(cli("code", "module", "get", "-s", str(out), "my", "mod"), "{}\n")
    assert out.read_text() == src
    # compiled as a module: no return at its top level
    fails(cli("code", "module", "set", "bad", input="x = 1\nreturn x\n"), 1,
          "ServerError: SyntaxError: line 2: 'return' outside function")
    fails(cli("code", "module", "set", "bad", input="def f(:\n    pass\n"), 1, "line 1:")
    assert internal(srv, "module", "bad") is MISSING
    f = tmp_path / "other.py"
    f.write_text("X = 1\n")
    ok(cli("code", "module", "set", "-s", str(f), "other"))
    ok(cli("code", "module", "list"), "my mod :: <5 lines>\nother :: <1 line>\n")
    ok(cli("code", "module", "delete", "other"))
    fails(cli("code", "module", "delete", "other"), 1, "no module at other")
    fails(cli("code", "module", "get", "other"), 1, "no module at other")
    # modules and procedures are apart
    fails(cli("code", "get", "my", "mod"), 1, "no code at my mod")


def test_records_from_the_protocol(srv):
    """set_internal of something that is not a record is refused with the
    reason; deleting passes; other internal data and ordinary data named
    "code" are not checked."""
    for path, value, words in [
        (("code", "x"), "return 1", "TypeError: a procedure is a map"),
        (("code", "x"), {"vars": []}, "a procedure needs its script in 'code'"),
        (("code", "x"), {"code": 42}, "'code' must be a string"),
        (("code", "x"), {"code": "pass", "is_async": "yes"}, "'is_async' must be"),
        (("code", "x"), {"code": "pass", "vars": "a"}, "'vars' must be a list"),
        (("code", "x"), {"code": "pass", "vars": [1]}, "'vars' must be a list"),
        (("code", "x"), {"code": "pass", "vars": ["v%d" % i for i in range(65)]},
         "more than 64"),
        (("code", "x"), {"code": "pass", "info": 5}, "'info' must be a string"),
        (("code", "x"), {"code": "#" * (32 << 10) + "\n"}, "longer than 32768 bytes"),
        (("module", "x"), {"code": "#" * (32 << 10) + "\n"}, "longer than 32768 bytes"),
        (("code",), {"code": "return ("}, "SyntaxError"),
        (("module", "x"), "X = 1", "TypeError: a module is a map"),
        (("module", "x"), {"code": "a\0b"}, "null bytes"),
    ]:
        r = set_internal(srv, path, value)
        assert words in r.get("error", ""), (path, value, r)
        assert internal(srv, *path) is MISSING
    ok_rec = {"code": "pass", "is_async": None, "vars": ["v%d" % i for i in range(64)],
              "info": None, "requires": ["x"]}
    assert "error" not in set_internal(srv, ("code", "x"), ok_rec)
    assert internal(srv, "code", "x") == ok_rec
    p = srv.connect()
    try:
        r = p.request("delete_internal", path=Path("code", "x"))
        assert "error" not in r and r.get("changed") is True, r
        # other internal data, and ordinary data at ("code", ...)
        for action, path in (("set_internal", ("codes", "x")), ("set_value", ("code", "x"))):
            r = p.request(action, path=Path(*path), value="return (")
            assert "error" not in r, (action, r)
    finally:
        p.close()


def test_bound_user_cannot_define_code(cli, srv):
    """Code is internal data: a user bound to an ACL may not store it (the
    ACL's refusal); a user without one may."""
    for args in (("auth", "-m", "_test", "user", "add", "name=joe"),
                 ("auth", "-m", "_test", "user", "add", "name=root"),
                 ("auth", "-m", "_test", "init")):
        ok(cli(*args))
    root = ("-a", "_test name=root")
    joe = ("-a", "_test name=joe")
    ok(cli(*root, "acl", "set", "anything", "-a", "rwcdxen", "#"))
    ok(cli(*root, "auth", "user", "modify", "--aux", "acl=anything", "name=joe"))
    fails(cli(*joe, "code", "set", "the", "answer", input=ANSWER), 1,
          "does not allow access to internal data")
    fails(cli(*joe, "code", "module", "set", "m", input="X = 1\n"), 1,
          "does not allow access to internal data")
    fails(cli(*root, "code", "get", "the", "answer"), 1, "no code at the answer")
    fails(cli(*root, "code", "module", "get", "m"), 1, "no module at m")
    ok(cli(*root, "code", "set", "the", "answer", input=ANSWER))
    fails(cli(*joe, "code", "get", "the", "answer"), 1, "does not allow access to internal data")
    ok(cli(*root, "code", "get", "the", "answer"), ANSWER_YAML)


# ---- the mount ----


def test_mount_code(mount_factory):
    """`cat .code/the/answer/_` shows the record; a record written there is
    checked like any other: a syntax error is EINVAL, the old record stays,
    the reason is in the daemon's log; a good one is stored."""
    m = mount_factory(init=None)
    ok(m.server.dkv("code", "set", "the", "answer", input=ANSWER))
    assert read(m.path(".code", "the", "answer", "_")) == ANSWER_YAML
    assert sorted(os.listdir(m.path(".code"))) == ["the"]
    bad = 'code: |\n  x = 1\n  return x +\nis_async: null\nvars: []\n'
    e = errno_of(write_raw, m.path(".code", "the", "answer", "_"), bad)
    assert e == errno.EINVAL, e
    assert read(m.path(".code", "the", "answer", "_")) == ANSWER_YAML
    assert internal(m.server, "code", "the", "answer")["code"] == ANSWER
    assert "SyntaxError: line 2: invalid syntax" in m.server.log(), m.server.log_tail(20)
    # not a record at all
    e = errno_of(write_raw, m.path(".code", "the", "answer", "_"), "just text\n")
    assert e == errno.EINVAL, e
    # a new procedure written through the mount
    os.makedirs(m.path(".code", "via", "fs"))
    write_raw(m.path(".code", "via", "fs", "_"),
              "code: |\n  return a\nis_async: true\nvars: [a]\n")
    assert internal(m.server, "code", "via", "fs") == {
        "code": "return a\n", "is_async": True, "vars": ["a"]}
    ok(m.server.dkv("code", "list"), "the answer :: <2 lines>\nvia fs :: <1 line>\n")
    # modules
    os.makedirs(m.path(".module", "m"))
    write_raw(m.path(".module", "m", "_"), "code: |\n  X = 1\n")
    assert internal(m.server, "module", "m") == {"code": "X = 1\n"}
    e = errno_of(write_raw, m.path(".module", "m", "_"), "code: |\n  return 1\n")
    assert e == errno.EINVAL, e
    assert read(m.path(".module", "m", "_")) == "code: |\n  X = 1\n"
    # removing the _ deletes the record
    os.unlink(m.path(".code", "via", "fs", "_"))
    assert internal(m.server, "code", "via", "fs") is MISSING


# ---- persistence and replication ----


def test_persistence(server_factory, tmp_path):
    """Code and modules written to the change log are back after a restart
    that loads it."""
    log = tmp_path / "code.log"
    one = server_factory(init=None)
    one.dkv("log", "dest", str(log))
    one.dkv("code", "set", "-a", "-v", "x", "-i", "kept", "the", "answer", input=ANSWER)
    one.dkv("code", "module", "set", "m", input="X = 1\n")
    one.dkv("code", "set", "gone", input="return 0\n")
    one.dkv("code", "delete", "gone")
    assert one.stop() in (0, -signal.SIGTERM)
    two = server_factory(node="node-a", init=None, server_args=("-l", str(log)))
    assert internal(two, "code", "the", "answer") == {
        "code": ANSWER, "is_async": True, "vars": ["x"], "info": "kept"}
    assert internal(two, "module", "m") == {"code": "X = 1\n"}
    assert internal(two, "code", "gone") is MISSING
    ok(two.dkv("code", "list", check=False), "the answer :: kept\n")


def test_replication(cluster_factory):
    """A procedure stored at one node is at the other; a change and a
    deletion follow it there; a bad one stored at the second node is
    refused there and reaches nobody."""
    c = cluster_factory(2)
    one, two = c.servers
    one.dkv("code", "set", "-i", "shared", "the", "answer", input=ANSWER)
    cluster_util.wait_for(lambda: internal(two, "code", "the", "answer") is not MISSING,
                          15, "the procedure to reach node two")
    assert internal(two, "code", "the", "answer")["info"] == "shared"
    ok(two.dkv("code", "get", "the", "answer", check=False),
       ANSWER_YAML + "info: shared\n")
    fails(two.dkv("code", "set", "the", "answer", input="return (\n", check=False), 1,
          "SyntaxError")
    two.dkv("code", "set", "the", "answer", input="return 43\n")
    cluster_util.wait_for(
        lambda: internal(one, "code", "the", "answer")["code"] == "return 43\n",
        15, "the change to reach node one")
    one.dkv("code", "delete", "the", "answer")
    cluster_util.wait_for(lambda: internal(two, "code", "the", "answer") is MISSING,
                          15, "the deletion to reach node two")
