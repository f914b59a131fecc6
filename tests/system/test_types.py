"""System tests for types and matches (issue 13, "Types").

The tutorial's "Complex data should be clean" section as written, through
the command-line client; then the records the server refuses (examples
that do not do what they say, missing supertypes, types still in use),
wildcards, scripts that raise and that loop, writes through the mount,
replication to another node, and a restart from the change log.

Run with Debian's interpreter:

    DKV_BUILD=$PWD/build /usr/bin/python3 -m pytest -q tests/system/test_types.py
"""

import errno
import os
import time

import pytest

from cluster_util import wait_value
from test_fs import mount_factory  # noqa: F401 (a fixture)

pytestmark_fs = pytest.mark.skipif(not os.path.exists("/dev/fuse") or os.geteuid() != 0,
                                   reason="needs /dev/fuse and root")

INT = 'if int(value) != value: raise ValueError("not an integer")\n'
PERCENT = 'if not (0 <= value <= 100): raise ValueError("not a percentage")\n'


def fails(server, *args, **kw):
    """Run the client, which must fail with exit status 1; its stderr."""
    r = server.dkv(*args, check=False, **kw)
    assert r.returncode == 1, (args, r.returncode, r.stdout, r.stderr)
    return r.stderr


def tutorial_types(s):
    s.dkv("type", "set", "-g", "0", "-g", "-2", "-g", "123", "-b", "1.2", "-b", '"Hello"',
          "int", input=INT)
    s.dkv("type", "set", "-g", "0", "-g", "99", "-g", "100", "-b", "-1", "-b", "101",
          "int", "percent", input=PERCENT)
    s.dkv("type", "match", "-t", "int", "-t", "percent", "stats", "#", "quota")


def test_tutorial(server):
    tutorial_types(server)
    assert fails(server, "data", "set", "-v", "123", "stats", "foo", "bar", "quota") == \
        "ServerError: ValueError('not an integer')\n"
    assert fails(server, "data", "set", "-ev", "123", "stats", "foo", "bar", "quota") == \
        "ServerError: ValueError('not a percentage')\n"
    server.dkv("data", "set", "-ev", "12", "stats", "foo", "bar", "quota")
    assert server.dkv("data", "get", "stats", "foo", "bar", "quota").stdout == "12\n"
    # what the other commands show
    assert server.dkv("type", "list").stdout == "int\nint percent\n"
    assert server.dkv("type", "list", "int", "percent").stdout == "int percent\n"
    assert server.dkv("type", "list-matches").stdout == "stats # quota: int percent\n"
    assert server.dkv("type", "match", "stats", "#", "quota").stdout == "int percent\n"
    got = server.dkv("type", "get", "int", "percent").stdout
    assert got == ("code: |\n  " + PERCENT + "good:\n- 0\n- 99\n- 100\nbad:\n- -1\n- 101\n"), got


def test_get_script_to_file(server, tmp_path):
    tutorial_types(server)
    f = tmp_path / "script.py"
    got = server.dkv("type", "get", "-s", f, "int").stdout
    assert f.read_text() == INT
    assert "code" not in got and "good:" in got
    # and back from the file
    server.dkv("type", "set", "-g", "1", "-b", "1.5", "-s", f, "int2", stdin=open(os.devnull))
    assert server.dkv("type", "get", "int2").stdout.startswith("code: |\n  if int(value)")


def test_examples_are_checked(server):
    server.dkv("type", "set", "-g", "0", "-g", "-2", "-b", "1.2", "int", input=INT)
    err = fails(server, "type", "set", "-g", "0", "-g", "101", "-b", "-1", "int", "pct",
                input=PERCENT)
    assert err == "ServerError: good example 101 fails: ValueError('not a percentage')\n"
    err = fails(server, "type", "set", "-g", "0", "-b", "-1", "-b", "5", "int", "pct",
                input=PERCENT)
    assert err == "ServerError: bad example 5 passes\n"
    # a good example the supertype refuses
    err = fails(server, "type", "set", "-g", "0", "-g", "50.5", "-b", "-1", "int", "pct",
                input=PERCENT)
    assert err == "ServerError: good example 50.5 fails: ValueError('not an integer')\n"
    # a bad example that only the supertype refuses is fine
    server.dkv("type", "set", "-g", "0", "-b", "-1", "-b", "5.5", "int", "pct", input=PERCENT)
    # nothing was stored by the refused ones; the last one is there
    assert server.dkv("type", "list").stdout == "int\nint pct\n"


def test_changed_supertype_rechecks_subtypes(server):
    tutorial_types(server)
    # an int that refuses what int percent's good examples need
    err = fails(server, "type", "set", "-g", "1", "-b", "1.5", "-b", "99", "int",
                input=INT + "if value > 50: raise ValueError('too big')\n")
    assert err == ("ServerError: type int: good example 99 of subtype int percent fails: "
                   "ValueError('too big')\n"), err
    # an int that takes what only it refused of a subtype's bad examples
    server.dkv("type", "set", "-g", "0", "-b", "-1", "-b", "5.5", "int", "pct", input=PERCENT)
    err = fails(server, "type", "set", "-g", "1", "-g", "1.5", "-b", '"x"', "int",
                input="if not isinstance(value, (int, float)): raise ValueError('nan')\n")
    assert err == "ServerError: type int: bad example 5.5 of subtype int pct passes\n", err
    # nothing changed
    assert server.dkv("type", "get", "-s", "/dev/null", "int").stdout == \
        "good:\n- 0\n- -2\n- 123\nbad:\n- 1.2\n- Hello\n"
    # a change the subtype's examples allow is taken
    server.dkv("type", "set", "-g", "0", "-g", "7", "-b", "1.2", "int",
               input=INT + "if value > 1000: raise ValueError('too big')\n")


def test_bad_records(server):
    err = fails(server, "type", "set", "-g", "0", "-b", "1", "no", "such", input="pass\n")
    assert err == "ServerError: type no such: its supertype no does not exist\n"
    err = fails(server, "type", "set", "-g", "0", "-b", "1", "syn",
                input="x = 1\nif value ==\n")
    assert "SyntaxError" in err and "line 2" in err, err
    err = fails(server, "type", "match", "-t", "nope", "a", "b")
    assert err == "ServerError: type nope does not exist\n"
    # usage errors never reach the server
    r = server.dkv("type", "set", "-g", "0", "x", input="pass\n", check=False)
    assert r.returncode == 2 and "-b BAD" in r.stderr
    r = server.dkv("type", "set", "-g", "0", "-b", "1", "x", input="", check=False)
    assert r.returncode == 2 and "script or a schema" in r.stderr
    assert server.dkv("type", "list").stdout == ""


def test_delete(server):
    tutorial_types(server)
    err = fails(server, "type", "delete", "int", "percent")
    assert err == "ServerError: type int percent is used by match stats # quota\n"
    err = fails(server, "type", "delete", "int")
    assert err == "ServerError: type int is the supertype of int percent\n"
    server.dkv("type", "match", "-d", "stats", "#", "quota")
    assert server.dkv("type", "list-matches").stdout == ""
    server.dkv("data", "set", "-v", "anything", "stats", "foo", "quota")
    server.dkv("type", "delete", "int", "percent")
    server.dkv("type", "delete", "int")
    assert "no type int" in fails(server, "type", "delete", "int")
    assert server.dkv("type", "list").stdout == ""


def test_wildcards(server):
    for i in range(1, 4):
        server.dkv("type", "set", "-g", str(i), "-b", "0", "t%d" % i,
                   input='if value != %d: raise ValueError("want %d")\n' % (i, i))
    server.dkv("type", "match", "-t", "t1", "a", "#")
    server.dkv("type", "match", "-t", "t2", "a", "+", "c")
    server.dkv("type", "match", "-t", "t3", "a", "b", "c")
    for path, want in [(("a", "x"), 1), (("a", "x", "y", "c"), 1), (("a", "x", "c"), 2),
                       (("a", "b", "c"), 3)]:
        err = fails(server, "data", "set", "-ev", "99", *path)
        assert err == "ServerError: ValueError('want %d')\n" % want, (path, err)
        server.dkv("data", "set", "-ev", str(want), *path)
    server.dkv("data", "set", "-ev", "99", "a")        # '#' is one or more
    server.dkv("data", "set", "-ev", "99", "b", "x")   # no match
    assert server.dkv("type", "list-matches", "a", "+").stdout == "a + c: t2\n"


def test_raising_and_looping_scripts(server):
    server.dkv("type", "set", "-g", "1", "-b", "2", "odd",
               input="if value == 2: raise KeyError('two')\n"
                     "if value == 3: raise RuntimeError('Owch')\n"
                     "if value == 4:\n    while True: pass\n")
    server.dkv("type", "match", "-t", "odd", "x")
    assert fails(server, "data", "set", "-ev", "3", "x") == "ServerError: RuntimeError('Owch')\n"
    t0 = time.monotonic()
    err = fails(server, "data", "set", "-ev", "4", "x")
    assert "TimeoutError" in err, err
    assert time.monotonic() - t0 < 5
    server.check_alive("after a looping script")
    server.dkv("data", "set", "-ev", "1", "x")
    # a type whose script loops on its examples is refused
    err = fails(server, "type", "set", "-g", "1", "-b", "2", "loop", input="while True: pass\n")
    assert "good example 1 fails: TimeoutError" in err, err
    assert server.dkv("data", "get", "x").stdout == "1\n"


def test_python_timeout_is_configurable(server_factory):
    """server.python.timeout sets the limit each call of a script gets."""
    server = server_factory(config={"server.python.timeout": 0.25})
    server.dkv("type", "set", "-g", "1", "-b", "2", "slow",
               input="if value == 2: raise ValueError('two')\n"
                     "if value == 4:\n    while True: pass\n")
    server.dkv("type", "match", "-t", "slow", "x")
    err = fails(server, "data", "set", "-ev", "4", "x")
    assert err == "ServerError: TimeoutError('stored code took longer than 0.25 s')\n", err


def test_script_in_c_code_does_not_hold_up_the_server(server_factory):
    """C code holding the GIL (sum over a big range) is not interrupted,
    but the write that ran it fails at the limit, other checked writes
    fail at once while it runs, and everything else goes on."""
    server = server_factory(config={"server.python.timeout": 0.2})
    server.dkv("type", "set", "-g", "1", "-b", "2", "heavy",
               input="if value == 2: raise ValueError('two')\n"
                     "if value == 4: sum(range(3 * 10**8))\n")
    server.dkv("type", "match", "-t", "heavy", "x")
    t0 = time.monotonic()
    err = fails(server, "data", "set", "-ev", "4", "x")
    took = time.monotonic() - t0
    assert err == "ServerError: TimeoutError('stored code took longer than 0.2 s')\n", err
    # meanwhile: an unchecked write and a read work, a checked one fails at once
    server.dkv("data", "set", "-v", "free", "y")
    assert server.dkv("data", "get", "y").stdout == "free\n"
    err = fails(server, "data", "set", "-ev", "1", "x")
    assert "Python is busy: a stored script overran its time limit" in err, err
    assert took < 2.5, took  # the client's own start-up included
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        r = server.dkv("data", "set", "-ev", "1", "x", check=False)
        if r.returncode == 0:
            break
        assert "Python is busy" in r.stderr, r.stderr
        time.sleep(0.1)
    assert server.dkv("data", "get", "x").stdout == "1\n"
    server.check_alive("after a script in C code")


@pytestmark_fs
def test_mount(mount_factory):
    m = mount_factory()
    s = m.server
    tutorial_types(s)
    s.dkv("data", "set", "-ev", "12", "stats", "a", "quota")
    f = os.path.join(m.mnt, "stats", "a", "quota", "_")
    with open(f) as fh:
        assert fh.read() == "12\n"
    for text in ("150\n", "hello\n"):
        with pytest.raises(OSError) as e:
            with open(f, "w") as fh:
                fh.write(text)
        assert e.value.errno == errno.EINVAL
    assert s.dkv("data", "get", "stats", "a", "quota").stdout == "12\n"
    log = s.log()
    assert "ValueError('not a percentage')" in log and "ValueError(\"invalid literal" in log, \
        s.log_tail()
    with open(f, "w") as fh:
        fh.write("50\n")
    assert s.dkv("data", "get", "stats", "a", "quota").stdout == "50\n"
    # a type record written through the mount is checked as the CLI's is
    d = os.path.join(m.mnt, ".type", "int", "pct")
    os.mkdir(d)
    with pytest.raises(OSError) as e:
        with open(os.path.join(d, "_"), "w") as fh:
            fh.write("code: |\n  %sgood: [0, 101]\nbad: [-1]\n" % PERCENT)
    assert e.value.errno == errno.EINVAL
    assert "good example 101 fails: ValueError('not a percentage')" in s.log(), s.log_tail()
    with open(os.path.join(d, "_"), "w") as fh:
        fh.write("code: |\n  %sgood: [0, 100]\nbad: [-1]\n" % PERCENT)
    assert s.dkv("type", "list", "int").stdout == "int\nint percent\nint pct\n"


def test_replicated(cluster_factory):
    c = cluster_factory(2)
    one, two = c.servers
    tutorial_types(one)
    deadline = time.monotonic() + 15
    while two.dkv("type", "list-matches").stdout != "stats # quota: int percent\n":
        assert time.monotonic() < deadline, "the match did not reach two"
        time.sleep(0.1)
    assert fails(two, "data", "set", "-ev", "123", "stats", "a", "quota") == \
        "ServerError: ValueError('not a percentage')\n"
    two.dkv("data", "set", "-ev", "12", "stats", "a", "quota")
    wait_value(one, ("stats", "a", "quota"), 12)


def test_restart_from_log(server_factory, tmp_path):
    log = tmp_path / "changes.log"
    s = server_factory(node="node-a", server_args=["--save", str(log)])
    tutorial_types(s)
    s.stop()
    s2 = server_factory(node="node-a", init=None, server_args=["-l", str(log)])
    assert fails(s2, "data", "set", "-ev", "123", "stats", "a", "quota") == \
        "ServerError: ValueError('not a percentage')\n"
    s2.dkv("data", "set", "-ev", "1", "stats", "a", "quota")
    assert s2.dkv("type", "list-matches").stdout == "stats # quota: int percent\n"


def test_schema(server, tmp_path):
    """A JSON schema instead of a script, and a YAML one besides a script."""
    f = tmp_path / "schema.json"
    f.write_text('{"type": "object", "required": ["name"]}')
    server.dkv("type", "set", "-g", "{'name': 1}", "-b", "{}", "-b", "3", "-S", f, "obj",
               stdin=open(os.devnull))
    err = fails(server, "type", "set", "-g", "{}", "-b", "3", "-S", f, "obj2",
                stdin=open(os.devnull))
    assert err.startswith("ServerError: good example {} fails: "), err
    y = tmp_path / "schema.yaml"
    y.write_text("type: object\nproperties:\n  name: {type: string}\n")
    server.dkv("type", "set", "-g", "{'name': 'x'}", "-b", "{'name': 1}", "-b", "{}",
               "-S", y, "-y", "obj", "named", input="if 'name' not in value: raise KeyError('name')\n")
    server.dkv("type", "match", "-t", "obj", "-t", "named", "people", "+")
    assert "ServerError" in fails(server, "data", "set", "-ev", "{'name': 2}", "people", "a")
    assert "ServerError" in fails(server, "data", "set", "-ev", "[1]", "people", "a")
    server.dkv("data", "set", "-ev", "{'name': 'joe'}", "people", "a")
    got = server.dkv("type", "get", "obj", "named").stdout
    assert "schema:" in got and "code:" in got, got
