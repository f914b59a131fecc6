"""The command line client against a real single-node server.

Starts `distkv server -i Testing node-a` once for the module and runs
`distkv client ...` (and `dkv`, and the tutorial's `dkd` shell function)
against it.  The tutorial's commands carry no port, so they need the
server on the default port 27586; when that port is taken, those tests
are skipped and the rest use the server on a free port.

DKV_BUILD names the meson build directory (default: ../../build).
"""

import os
import select
import socket
import subprocess
import time

import pytest

import dkvyaml
from conftest import BUILD_DIR, DISTKV, DKV, REPO, Server, free_port

TOOLS = str(BUILD_DIR / "tools")
DEFAULT_PORT = 27586


def port_is_free(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    for family, addr in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        try:
            with socket.socket(family) as s:
                if s.connect_ex((addr, port)) == 0:
                    return False
        except OSError:
            pass
    return True


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for the module, on the default port when it is free (the
    tutorial's commands name no port).  Stopped and checked (clean exit,
    no sanitizer report) at the end, like conftest's servers."""
    port = DEFAULT_PORT if port_is_free(DEFAULT_PORT) else None
    srv = Server(tmp_path_factory.mktemp("server"), port=port).start()
    yield srv
    problems = srv.finish()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def run(args, input=None, check=True, prog=DISTKV, timeout=30):
    res = subprocess.run(
        [prog] + list(args), input=input, capture_output=True, text=True, timeout=timeout
    )
    if check and res.returncode != 0:
        raise AssertionError(f"{args}: exit {res.returncode}\n{res.stdout}\n{res.stderr}")
    return res


@pytest.fixture
def cli(server):
    """cli('data', 'get', ...) runs `distkv client -p PORT data get ...`."""

    def _cli(*args, input=None, check=True):
        return run(["client", "-p", str(server.port)] + list(args), input=input, check=check)

    return _cli


def bash(script):
    env = dict(os.environ, PATH=TOOLS + os.pathsep + os.environ.get("PATH", ""))
    return subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, env=env, timeout=60
    )


def docs(text):
    return dkvyaml.load_all(text)


# ---- the tutorial, verbatim ----

TUTORIAL_TREE = """\
two:
  three:
    _: 123
    four:
      _: 1234
      five:
        _: Duh
"""


def test_tutorial_data_commands(server):
    if server.port != DEFAULT_PORT:
        pytest.skip(f"port {DEFAULT_PORT} is in use; the tutorial needs the default port")
    res = bash(
        'dkd() { distkv client data "$@"; }\n'
        "dkd set -ev 123 one two three\n"
        "dkd set -ev 1234 one two three four\n"
        "dkd set -v Duh one two three four five\n"
        "dkd get one two three\n"
        "dkd get one two three four five\n"
        "dkd get -rd_ one\n"
    )
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    assert res.stdout == "123\nDuh\n" + TUTORIAL_TREE


def test_tutorial_root_value(server):
    if server.port != DEFAULT_PORT:
        pytest.skip(f"port {DEFAULT_PORT} is in use; the tutorial needs the default port")
    res = bash("distkv client data get")
    assert (res.returncode, res.stdout, res.stderr) == (0, "Testing\n", "")


# ---- basics ----


def test_root_value(cli):
    assert cli("data", "get").stdout == "Testing\n"


def test_dkv_is_distkv_client(server):
    res = run(["-p", str(server.port), "data", "get"], prog=DKV)
    assert res.stdout == "Testing\n"
    res = run(["-C", f"connect.port={server.port}", "data", "get"], prog=DKV)
    assert res.stdout == "Testing\n"


def test_connect_port_from_config(server, tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"connect:\n  port: {server.port}\n")
    assert run(["-c", str(cfg), "client", "data", "get"]).stdout == "Testing\n"
    assert run(["-C", f"connect.port={server.port}", "client", "data", "get"]).stdout == "Testing\n"


def test_default_config_files(server, tmp_path):
    """Without -c: /etc/distkv/distkv.cfg, then $XDG_CONFIG_HOME/distkv.cfg
    (default ~/.config/distkv.cfg); -c replaces both."""
    home = tmp_path / "home"
    (home / ".config").mkdir(parents=True)
    (home / ".config" / "distkv.cfg").write_text(f"connect:\n  port: {server.port}\n")
    env = dict(os.environ, HOME=str(home))
    env.pop("XDG_CONFIG_HOME", None)

    def go(*args, prog=DISTKV, **kw):
        return subprocess.run([prog, *args], capture_output=True, text=True, timeout=30,
                              env=dict(env, **kw))

    assert go("client", "data", "get").stdout == "Testing\n"
    assert go("data", "get", prog=DKV).stdout == "Testing\n"
    # XDG_CONFIG_HOME moves it
    xdg = tmp_path / "xdg"
    xdg.mkdir()
    (xdg / "distkv.cfg").write_text("connect:\n  port: 1\n")
    r = go("client", "data", "get", XDG_CONFIG_HOME=str(xdg))
    assert r.returncode == 1 and ":1" in r.stderr, r.stderr
    # -c FILE is the only file read: the port is the default again; -C wins over any
    own = tmp_path / "own.cfg"
    own.write_text("connect:\n  host: 127.0.0.1\n")
    if port_is_free(DEFAULT_PORT):
        r = go("-c", str(own), "client", "data", "get")
        assert r.returncode == 1 and ":%d" % DEFAULT_PORT in r.stderr, r.stderr
    assert go("-C", f"connect.port={server.port}", "client", "data", "get",
              XDG_CONFIG_HOME=str(xdg)).stdout == "Testing\n"
    # a broken file is an error, as with -c
    (home / ".config" / "distkv.cfg").write_text("connect: [\n")
    r = go("client", "data", "get")
    assert r.returncode == 2 and "distkv.cfg" in r.stderr, r.stderr
    # the Python API reads the same files
    (home / ".config" / "distkv.cfg").write_text(f"connect:\n  port: {server.port}\n")
    code = ("import anyio\nfrom distkv.client import open_client\n"
            "async def main():\n    async with open_client() as c:\n"
            "        print((await c.get()).value)\nanyio.run(main)\n")
    r = subprocess.run(["/usr/bin/python3", "-c", code], capture_output=True, text=True,
                       timeout=30, env=dict(env, PYTHONPATH=str(REPO / "python")))
    assert r.stdout == "Testing\n", r.stderr


def test_version():
    assert run(["--version"]).stdout.startswith("distkv ")
    assert run(["--version"], prog=DKV).stdout == run(["--version"]).stdout


def test_string_and_eval(cli):
    cli("data", "set", "-v", "123", "t1", "s")
    cli("data", "set", "-ev", "123", "t1", "i")
    assert cli("data", "get", "t1", "s").stdout == "'123'\n"
    assert cli("data", "get", "t1", "i").stdout == "123\n"


def test_eval_containers(cli):
    cli("data", "set", "-ev", "[1, 'two', None, True]", "t2", "list")
    cli("data", "set", "-ev", "{'a': 1, 'b': [1, 2]}", "t2", "dict")
    cli("data", "set", "-ev", "b'\\x00\\x01bin'", "t2", "bytes")
    cli("data", "set", "-ev", "(1, 2.5)", "t2", "tuple")
    assert dkvyaml.load(cli("data", "get", "t2", "list").stdout) == [1, "two", None, True]
    assert dkvyaml.load(cli("data", "get", "t2", "dict").stdout) == {"a": 1, "b": [1, 2]}
    assert dkvyaml.load(cli("data", "get", "t2", "bytes").stdout) == b"\x00\x01bin"
    assert dkvyaml.load(cli("data", "get", "t2", "tuple").stdout) == [1, 2.5]


def test_eval_error(cli):
    res = cli("data", "set", "-ev", "[1,", "t2", "bad", check=False)
    assert res.returncode == 2
    assert "cannot evaluate" in res.stderr


def test_missing_value_prints_nothing(cli):
    res = cli("data", "get", "no", "such", "entry")
    assert (res.stdout, res.returncode) == ("", 0)


def test_colon_notation(cli):
    cli("data", "set", "-ev", "5", "t3", ":123", ":t")
    cli("data", "set", "-v", "x", "t3", ":e", ":=:t")
    assert cli("data", "get", "t3", ":123", ":t").stdout == "5\n"
    assert cli("data", "get", "t3", ":e", ":=:t").stdout == "x\n"
    assert cli("data", "list", "t3", ":123").stdout == ":t\n"
    names = cli("data", "list", "t3").stdout.splitlines()
    assert sorted(names) == sorted([":123", ":e"])


def test_bad_path_element(cli):
    res = cli("data", "get", ":zz", check=False)
    assert res.returncode == 2
    assert "bad path element ':zz'" in res.stderr
    assert res.stdout == ""


def test_meta(cli, server):
    res = cli("data", "set", "-m", "-v", "hello", "t4", "a")
    set_reply = dkvyaml.load(res.stdout)
    assert set_reply["chain"]["node"] == server.node
    got = dkvyaml.load(cli("data", "get", "-m", "t4", "a").stdout)
    assert got["value"] == "hello"
    assert got["chain"]["node"] == server.node
    assert got["chain"]["tick"] == set_reply["chain"]["tick"]
    assert isinstance(got["tock"], int)
    assert "seq" not in got


def test_new_and_last(cli):
    cli("data", "set", "-n", "-v", "first", "t5", "a")
    res = cli("data", "set", "-n", "-v", "second", "t5", "a", check=False)
    assert res.returncode == 1
    assert res.stderr.startswith("ServerError: ")
    assert len(res.stderr.splitlines()) == 1

    got = dkvyaml.load(cli("data", "get", "-m", "t5", "a").stdout)
    node, tick = got["chain"]["node"], got["chain"]["tick"]
    cli("data", "set", "-l", node, str(tick), "-v", "third", "t5", "a")
    res = cli("data", "set", "--last", node, str(tick), "-v", "fourth", "t5", "a", check=False)
    assert res.returncode == 1
    assert res.stderr.startswith("ServerError: ")
    assert cli("data", "get", "t5", "a").stdout == "third\n"


def test_delete(cli):
    cli("data", "set", "-v", "a", "t6", "x")
    cli("data", "set", "-v", "b", "t6", "x", "y")
    cli("data", "delete", "t6", "x")
    assert cli("data", "get", "t6", "x").stdout == ""
    assert cli("data", "get", "t6", "x", "y").stdout == "b\n"
    cli("data", "set", "-v", "c", "t6", "z")
    cli("data", "delete", "-r", "t6")
    assert cli("data", "get", "-rd_", "t6").stdout == "{}\n"


def test_delete_recursive_meta(cli):
    """`data delete -r -m` prints one document per deleted entry (its full
    path and the chain of the deletion), as `get -r -m` does; without -m
    nothing is printed."""
    cli("data", "set", "-ev", "1", "t6m", "a")
    cli("data", "set", "-ev", "2", "t6m", "a", "b")
    cli("data", "set", "-ev", "3", "t6m", "c", "d")
    cli("data", "set", "-ev", "4", "t6m", "c", "e")
    got = docs(cli("data", "delete", "-r", "-m", "t6m").stdout)
    assert [d["path"][1] for d in got] == ["t6m.a", "t6m.a.b", "t6m.c.d", "t6m.c.e"], got
    assert all("value" not in d and d["chain"]["tick"] > 0 and d["tock"] > 0 for d in got), got
    assert cli("data", "get", "-rd_", "t6m").stdout == "{}\n"
    cli("data", "set", "-ev", "5", "t6n", "a")
    assert cli("data", "delete", "-r", "t6n").stdout == ""
    assert cli("data", "get", "t6n", "a").stdout == ""


def test_get_recursive_documents(cli):
    cli("data", "set", "-ev", "1", "t7", "a")
    cli("data", "set", "-ev", "2", "t7", "a", "b")
    cli("data", "set", "-ev", "3", "t7", "c")
    got = docs(cli("data", "get", "-r", "t7").stdout)
    assert [d["value"] for d in got] == [1, 2, 3]
    assert all(set(d) == {"path", "value"} for d in got)


def test_get_nested_depths(cli):
    # the shape of the wire transcript's get_tree example: depth
    # compression must be undone correctly across branches
    for path, value in [
        (["x"], "1"),
        (["x", "y"], "2"),
        (["x", "y", "z"], "3"),
        (["x", "w"], "4"),
        (["types", ":1", ":t", ":vab", ":2.5"], "5"),
        (["v"], "6"),
    ]:
        cli("data", "set", "-ev", value, "t8", *path)
    tree = dkvyaml.load(cli("data", "get", "-rd_", "t8").stdout)
    assert tree == {
        "x": {"_": 1, "y": {"_": 2, "z": {"_": 3}}, "w": {"_": 4}},
        "types": {1: {True: {b"ab": {2.5: {"_": 5}}}}},
        "v": {"_": 6},
    }
    tree = dkvyaml.load(cli("data", "get", "-rd_", "--maxdepth", "1", "t8").stdout)
    assert tree == {"x": {"_": 1}, "v": {"_": 6}}


def test_big_subtree_flow_control(cli):
    for i in range(60):
        cli("data", "set", "-ev", str(i), "t9", f":{i}")
    got = docs(cli("data", "get", "-r", "t9").stdout)
    assert sorted(d["value"] for d in got) == list(range(60))


def test_list(cli):
    cli("data", "set", "-v", "1", "t10", "b")
    cli("data", "set", "-v", "1", "t10", "a", "deep")
    assert sorted(cli("data", "list", "t10").stdout.splitlines()) == ["a", "b"]


def test_list_names_with_control_characters(cli):
    """A name holding a newline (or another control character) is listed
    as one :u word, which names the entry again (doc/cli.md)."""
    names = ["two\nlines", "cr\r", "tab\there", "esc\x1b[0m", "del\x7f", "nel\x85", "ls\u2028"]
    for i, name in enumerate(names):
        cli("data", "set", "-v", f"v{i}", "t12", name)
    cli("data", "set", "-v", "plain", "t12", "plain name")
    out = cli("data", "list", "t12").stdout
    # one line per child, whoever splits the lines
    assert out.endswith("\n")
    lines = out[:-1].split("\n")
    assert len(lines) == len(names) + 1, out
    assert out.splitlines() == lines
    assert "plain name" in lines
    assert ":u74776f0a6c696e6573" in lines
    for line in lines:
        assert line.isprintable(), line
    # each line used as a path word gets the value back
    got = {cli("data", "get", "t12", line).stdout for line in lines}
    assert got == {f"v{i}\n" for i in range(len(names))} | {"plain\n"}
    # the raw name still works as a path word too
    assert cli("data", "get", "t12", "two\nlines").stdout == "v0\n"


def test_monitor(cli, server):
    cli("data", "set", "-ev", "1", "t11", "a")
    proc = subprocess.Popen(
        [DISTKV, "client", "-p", str(server.port), "data", "monitor", "-f", "t11"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    buf = b""

    def next_doc():
        # Each document starts with '---' and is flushed whole; the values
        # here are scalars, so a 'value:' line completes a document.
        nonlocal buf
        deadline = time.monotonic() + 10
        while b"\nvalue:" not in buf:
            left = deadline - time.monotonic()
            assert left > 0, f"no document from monitor; got {buf!r}"
            ready, _, _ = select.select([proc.stdout], [], [], left)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 4096)
                assert chunk, f"monitor ended early; got {buf!r}"
                buf += chunk
        end = buf.index(b"\n", buf.index(b"\nvalue:") + 1) + 1
        text, buf = buf[:end], buf[end:]
        return docs(text.decode())[-1]

    try:
        first = next_doc()
        assert first == {"path": ("P", first["path"][1]), "value": 1}
        cli("data", "set", "-ev", "2", "t11", "a", "b")
        second = next_doc()
        assert second["value"] == 2
        assert second["path"][0] == "P"
        cli("data", "delete", "t11", "a")
        cli("data", "set", "-ev", "3", "t11", "c")
        third = next_doc()
        assert third["value"] == 3
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_internal_state(cli, server):
    st = dkvyaml.load(cli("internal", "state").stdout)
    assert st["node"] == server.node
    assert "nodes" in st and "known" in st
    st = dkvyaml.load(cli("internal", "state", "--nodes").stdout)
    assert "nodes" in st and "deleted" not in st


def test_internal_dump(cli):
    res = cli("internal", "dump")
    assert res.returncode == 0
    dkvyaml.load(res.stdout)


def test_config_binary_must_be_base64(server, tmp_path):
    """Tagged YAML reaches the command line through -C and -c (data set
    takes text or a Python literal): a !!binary that is not valid base64
    is a usage error naming the problem; folded base64 is fine."""
    port = ["client", "-p", str(server.port), "data", "get"]
    for bad, why in [("zz", "the length is not a multiple of 4"), ("z===", "too much '=' padding"),
                     ("====", "too much '=' padding"), ("aGVs=bG8", "'=' before the end"),
                     ("a$==", "a character outside the base64 alphabet"), ("zz==", "the last character has bits set beyond the data")]:
        res = run(["-C", f"test.blob=!!binary {bad}"] + port, check=False)
        assert res.returncode == 2, (bad, res)
        assert res.stdout == ""
        assert "!!binary: not valid base64: " + why in res.stderr, (bad, res.stderr)
        assert len(res.stderr.splitlines()) == 1, res.stderr
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("test:\n  blob: !!binary zz\n")
    res = run(["-c", str(cfg)] + port, check=False)
    assert res.returncode == 2
    assert f"{cfg}:2:9: !!binary: not valid base64" in res.stderr, res.stderr
    # valid base64, folded over lines as YAML emitters write it
    cfg = tmp_path / "good.yaml"
    cfg.write_text("test:\n  blob: !!binary |\n    aGVs\n    bG8=\n")
    assert run(["-c", str(cfg)] + port).stdout == "Testing\n"
    assert run(["-C", "test.blob=!!binary aGVs bG8="] + port).stdout == "Testing\n"


# ---- errors and help ----


def test_unreachable_server():
    port = free_port()
    res = run(["client", "-p", str(port), "data", "get"], check=False)
    assert res.returncode == 1
    assert res.stdout == ""
    assert len(res.stderr.splitlines()) == 1
    assert f"localhost:{port}" in res.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["client", "--help"],
        ["client", "data", "--help"],
        ["client", "internal", "--help"],
        ["client", "data", "get", "--help"],
        ["client", "data", "set", "--help"],
        ["client", "data", "delete", "--help"],
        ["client", "data", "list", "--help"],
        ["client", "data", "monitor", "--help"],
        ["client", "internal", "dump", "--help"],
        ["client", "internal", "state", "--help"],
    ],
)
def test_help(args):
    if not os.access(DISTKV, os.X_OK):
        pytest.skip("not built")
    res = run(args)
    assert res.returncode == 0
    assert "usage:" in res.stdout
    assert res.stderr == ""


@pytest.mark.parametrize(
    "args",
    [
        ["--nope"],
        ["nope"],
        ["client", "nope"],
        ["client", "data", "nope"],
        ["client", "data", "get", "--nope"],
        ["client", "data", "set", "one"],
    ],
)
def test_usage_errors(args):
    if not os.access(DISTKV, os.X_OK):
        pytest.skip("not built")
    res = run(args, check=False)
    assert res.returncode == 2
    assert res.stdout == ""
    assert res.stderr


def test_man_pages():
    """The man pages are built, and name every option and configuration
    key that the programs' own --help texts name."""
    man = BUILD_DIR / "doc" / "man"
    pages = {p: (man / p).read_text() for p in ("distkv.1", "dkv.1", "distkv.cfg.5")}
    for text in pages.values():
        assert text.startswith(".\\\" Generated by scdoc") and ".TH " in text
    plain = {p: t.replace("\\-", "-").replace("\\&", "").replace("\\fB", "").replace("\\fR", "") for p, t in pages.items()}
    import re
    helps = run(["--help"]).stdout + run(["server", "--help"]).stdout
    for opt in sorted(set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", helps))):
        assert opt in plain["distkv.1"], "distkv(1) does not name " + opt
    server_help = run(["server", "--help"]).stdout
    keys = set(re.findall(r"\b((?:server|connect)\.[a-z_.]+[a-z_])", server_help))
    for key in sorted(keys):
        assert key in plain["distkv.cfg.5"], "distkv.cfg(5) does not name " + key
    for opt in ("--host", "--port", "--auth"):
        assert opt in plain["dkv.1"], "dkv(1) does not name " + opt
    groups = run(["client", "--help"]).stdout.split("Commands:")[1]
    for group in re.findall(r"^  ([a-z]+) ", groups, re.M):
        assert "\n%s\n" % group in plain["distkv.1"] or "\n%s\t" % group in plain["distkv.1"] \
            or re.search(r"\n%s\s" % group, plain["distkv.1"]), "distkv(1) does not name " + group
