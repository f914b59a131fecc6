"""The error log (issue 15, "Errors"): records the server makes itself
(a type or codec script failing at run time, a change log that cannot be
written, a peer refusing our login), records written the way a runner
writes them (doc/errors.md, by hand through the protocol), and
`dkv error list/get/resolve/delete` reading them as the tutorial shows:
`list -d_ [PATH]`, `-a` details, `-n NODE`, `-s SUBSYS`, `-r`.  Broken
records are skipped with a note, never a crash.  The mount shows the
records in `.errors` and the jobs with their state in `.run`.

    DKV_BUILD=$PWD/build /usr/bin/python3 -m pytest -q tests/system/test_errors.py
"""

import errno
import os
import subprocess
import time

import pytest

import dkvyaml
from cluster_util import wait_for
from dkvproto import Path
from test_auth_login import add_user, auth_on, greeting_auth, lconnect
from test_codec import DECODE, ENCODE, tutorial_setup
from test_fs import errno_of, read
from test_fs import mount_factory  # noqa: F401  (a fixture)
from test_fs_acl import mount_acl, state  # noqa: F401  (fixtures)

INT = 'if int(value) != value: raise ValueError("not an integer")\n'
FAST = {"server.errors.interval": 0.2}


def ok(res, stdout=None):
    assert res.returncode == 0, (res.args, res.returncode, res.stdout, res.stderr)
    if stdout is not None:
        assert res.stdout == stdout, (res.args, res.stdout)
    return res


def listed(server, *args, auth=()):
    """`error list ARGS` as a list of records (one document each)."""
    r = ok(server.dkv(*auth, "error", "list", *args, check=False))
    return [d for d in dkvyaml.load_all(r.stdout) if d is not None]


def as_dict(server, *args, auth=()):
    r = ok(server.dkv(*auth, "error", "list", "-d_", *args, check=False))
    return dkvyaml.load(r.stdout) or {}


def int_type(server):
    ok(server.dkv("type", "set", "-g", "0", "-g", "2", "-b", "1.5", "int", input=INT,
                  check=False))
    ok(server.dkv("type", "match", "-t", "int", "stats", "#", check=False))


def refused(server, *args):
    r = server.dkv("data", "set", *args, check=False)
    assert r.returncode == 1, r
    return r.stderr


def syspath(rec):
    """The (NODE, TOCK) words of a listed record's syspath (!P NODE.:TOCK)."""
    tag, text = rec["syspath"]
    assert tag == "P", rec
    node, tock = text.split(".")
    return node, tock.lstrip(":")


# ---- records the server makes ----


def test_type_failure_recorded_listed_resolved(server_factory):
    s = server_factory(config=FAST)
    int_type(s)
    assert refused(s, "-v", "123", "stats", "a") == "ServerError: ValueError('not an integer')\n"
    recs = wait_for(lambda: listed(s), 10, "the type error in the log")
    assert len(recs) == 1, recs
    r = recs[0]
    assert r["subsystem"] == "type" and r["path"] == ("P", "stats.a"), r
    assert r["count"] == 1 and r["resolved"] is False and r["severity"] == 2, r
    assert r["first_seen"] == r["created"] and "_first_seen" in r, r
    assert "nodes" not in r, r
    node, tock = syspath(r)
    assert node == "node-a"

    # the same error again: counted in the same record, not a new one
    for v in ("1.5", "2.5", "3.5"):
        refused(s, "-ev", v, "stats", "a")
    wait_for(lambda: listed(s)[0]["count"] == 4, 10, "count 4")
    assert len(listed(s)) == 1

    # details: -a (no traceback), -n NODE, get (everything)
    r = listed(s, "-a")[0]
    d = r["nodes"]["node-a"]
    assert d["message"] == "ValueError('not an integer')", d
    assert d["data"] == {"type": "int", "match": "stats #", "value": 3.5}, d
    assert "_seen" in d and isinstance(d["tock"], int)
    assert listed(s, "-n", "node-a")[0]["nodes"].keys() == {"node-a"}
    assert listed(s, "-n", "node-b") == []
    got = dkvyaml.load(ok(s.dkv("error", "get", node, tock, check=False)).stdout)
    assert got["count"] == 4 and got["nodes"]["node-a"]["tock"] == d["tock"]
    assert dkvyaml.load(ok(s.dkv("error", "get", "-s", "type", "stats", "a",
                                 check=False)).stdout) == got

    # -d_: by subsystem and path; PATH filters and is left off
    assert as_dict(s)["type"]["stats"]["a"]["_"]["count"] == 4
    assert as_dict(s, "stats")["type"]["a"]["_"]["syspath"] == ("P", "node-a.:" + tock)
    assert "path" not in as_dict(s)["type"]["stats"]["a"]["_"]
    assert as_dict(s, "other") == {}
    assert as_dict(s, "-s", "type") == {"stats": {"a": {"_": as_dict(s)["type"]["stats"]["a"]["_"]}}}
    assert as_dict(s, "-s", "run") == {}

    # a value that passes resolves it; list shows it only with -r
    ok(s.dkv("data", "set", "-ev", "7", "stats", "a", check=False))
    wait_for(lambda: listed(s) == [], 10, "the error resolved")
    r = listed(s, "-r")[0]
    assert isinstance(r["resolved"], int) and r["resolved"] > int(tock), r
    assert r["count"] == 4
    # and a new failure opens it again, in the same record
    refused(s, "-v", "x", "stats", "a")
    r = wait_for(lambda: listed(s), 10, "the error open again")[0]
    assert r["count"] == 5 and r["resolved"] is False and syspath(r) == (node, tock)
    s.check_alive()


def test_a_failing_script_under_load_does_not_flood_the_log(server_factory):
    """500 refused writes as fast as one connection sends them: one
    record, and a handful of writes of it (one per interval)."""
    s = server_factory(config={"server.errors.interval": 0.5})
    int_type(s)
    with s.connect() as p:
        seq = p.start("watch", path=Path(".distkv", "error"), fetch=False)
        n = 500
        t0 = time.monotonic()
        for i in range(n):
            p.send({"seq": 1000 + i, "action": "set_value", "path": Path("stats", "x"),
                    "value": i + 0.5})
        for i in range(n):
            assert "error" in p.recv_for(1000 + i, 10)
        took = time.monotonic() - t0
        changes = []
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                m = p.next(seq, timeout=0.3)
            except TimeoutError:
                continue
            if "path" in m:
                changes.append(m)
    r = listed(s)[0]
    assert r["count"] == n, r
    # the record and its detail, at first and then at most once per 0.5 s
    writes = len(changes)
    assert writes <= 2 * (took / 0.5 + 3), (writes, took)
    print("%d refused writes in %.2f s: %d writes to the error log" % (n, took, writes))


@pytest.fixture
def codec_cli(server_factory, tmp_path):
    srv = server_factory(init=None, config=FAST)
    (tmp_path / "enc.py").write_text(ENCODE)
    (tmp_path / "dec.py").write_text(DECODE)

    def _cli(*args, input=None):
        return srv.dkv(*args, check=False, input=input, cwd=tmp_path)

    _cli.server = srv
    return _cli


def test_codec_failure(codec_cli):
    """The tutorial's converter: joe writes what float() cannot take."""
    cli, s = codec_cli, codec_cli.server
    tutorial_setup(cli)
    root = ("-a", "_test name=root")
    r = cli("-a", "_test name=joe", "data", "set", "-v", "abc", "monitor", "a", "value")
    assert r.returncode == 1 and "could not convert string to float" in r.stderr, r
    recs = wait_for(lambda: listed(s, "-a", auth=root), 10, "the codec error")
    r = recs[0]
    assert r["subsystem"] == "codec" and r["path"] == ("P", "monitor.a.value"), r
    assert r["severity"] == 1
    d = r["nodes"]["node-a"]
    assert "could not convert string to float" in d["message"], d
    assert d["data"] == {"converter": "floatval", "codec": ("P", "floatstr"), "op": "decode"}, d
    # it converts there again: resolved
    ok(cli("-a", "_test name=joe", "data", "set", "-v", "2.5", "monitor", "a", "value"))
    wait_for(lambda: listed(s, auth=root) == [], 10, "the codec error resolved")
    assert listed(s, "-r", "-s", "codec", auth=root)[0]["count"] == 1


def test_log_that_cannot_be_written(server_factory, tmp_path):
    """A change log on a full file system stops; the error log says so,
    and a new log resolves it."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs")
    small = tmp_path / "small"
    small.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)],
                       capture_output=True, text=True)
    if r.returncode:
        pytest.skip("cannot mount a tmpfs: %s" % r.stderr.strip())
    try:
        s = server_factory(config=FAST)
        ok(s.dkv("log", "dest", str(small / "log"), check=False))
        ok(s.dkv("data", "set", "-v", "x" * 100000, "big", check=False))
        recs = wait_for(lambda: listed(s, "-a", "-s", "log"), 10, "the log's error")
        r = recs[0]
        assert r["path"] == ("P", "node-a") and r["severity"] == 1, r
        d = r["nodes"]["node-a"]
        assert d["message"].startswith("cannot write log %s" % (small / "log")), d
        assert "No space left" in d["message"], d
        assert "logging stopped" in d["comment"], d
        ok(s.dkv("log", "dest", str(tmp_path / "log2"), check=False))
        wait_for(lambda: listed(s, "-s", "log") == [], 10, "the log's error resolved")
        # the second log holds the record and its resolution
        assert b"cannot write log" in (tmp_path / "log2").read_bytes()
        s.stop()
    finally:
        subprocess.run(["umount", "-l", str(small)], capture_output=True)


def test_peer_refusing_the_login(cluster_factory):
    """Node two restarted with a user node one does not know: its login
    is refused (an error of subsystem peer at (two, one)); once the user
    exists, two gets in, the error is resolved, and both nodes see it."""
    c = cluster_factory(2, config={"connect.auth": "_test name=joe",
                                   "server.errors.interval": 0.2})
    one, two = c.servers
    auth_on(one)
    wait_for(lambda: greeting_auth(two) == ("_test",), 15, "the auth records on two")
    c.stop(1)
    two = c.start(1, config={"connect.auth": "_test name=nobody"})
    wait_for(lambda: "login refused" in two.log(), 20, "two refused")
    with lconnect(one, "root") as p:
        add_user(p, "nobody")
    joe = ("-a", "_test name=joe")

    def resolved_on(s):
        recs = listed(s, "-r", "-a", "-s", "peer", auth=joe)
        return recs if recs and recs[0]["path"] == ("P", "two.one") else None

    for s in (two, one):
        r = wait_for(lambda: resolved_on(s), 30, "the peer error resolved on %s" % s.node)[0]
        assert r["count"] >= 1 and syspath(r)[0] == "two", r
        assert r["nodes"]["two"]["message"].startswith("login refused"), r
    assert listed(one, "-s", "peer", auth=joe) == []


# ---- records written as a runner writes them ----


def runner_error(p, node, path, message, trace, t, subsystem="run"):
    """An error record and its detail, by hand, as doc/errors.md says a
    runner writes them: the server's tock names the record."""
    tock = p.request("get_tock")["tock"]
    rec = {"path": Path(*path), "subsystem": subsystem, "severity": 0, "resolved": False,
           "count": 1, "first_seen": t, "last_seen": t, "created": t}
    assert "error" not in p.set((".distkv", "error", node, tock), rec, chain=None)
    det = {"seen": t, "tock": tock, "message": message, "comment": "RuntimeError('Owch')",
           "trace": trace, "data": {"code": ["the", "error"]}}
    assert "error" not in p.set((".distkv", "error", node, tock, node), det)
    return tock


TRACE = ('Traceback (most recent call last):\n  File "<the error>", line 1, in <module>\n'
         'RuntimeError: Owch\n')


def test_records_written_like_a_runner(server):
    s = server
    t = time.time()
    with s.connect() as p:
        tock = runner_error(p, "node-a", (".distkv", "run", "any", "what", "me", "worry"),
                            "RuntimeError: Owch", TRACE, t)
        runner_error(p, "node-b", (".distkv", "run", "at", "node-b", "other"),
                     "KeyError: x", TRACE, t + 1)
        # node-b saw the first one too
        assert "error" not in p.set((".distkv", "error", "node-a", tock, "node-b"),
                                    {"seen": t + 2, "tock": tock + 5, "message": "again"})

    # the tutorial: `dkv error list -d_` and the same below .distkv run any
    d = as_dict(s)
    rec = d["run"][".distkv"]["run"]["any"]["what"]["me"]["worry"]["_"]
    assert rec["count"] == 1 and rec["syspath"] == ("P", "node-a.:%d" % tock), rec
    assert "_first_seen" in rec and "path" not in rec and "nodes" not in rec
    assert as_dict(s, ".distkv", "run", "any") == {"run": {"what": {"me": {"worry": {"_": rec}}}}}
    assert set(as_dict(s, ".distkv", "run")["run"]) == {"any", "at"}
    # -a: every node's details, without the traceback; -n: one node's,
    # and only the errors it saw
    r = as_dict(s, "-a", ".distkv", "run", "any")["run"]["what"]["me"]["worry"]["_"]
    assert set(r["nodes"]) == {"node-a", "node-b"}
    assert r["nodes"]["node-a"]["message"] == "RuntimeError: Owch"
    assert "trace" not in r["nodes"]["node-a"]
    by_b = as_dict(s, "-n", "node-b")["run"][".distkv"]["run"]
    assert set(by_b) == {"any", "at"}
    assert set(by_b["any"]["what"]["me"]["worry"]["_"]["nodes"]) == {"node-b"}
    by_a = as_dict(s, "-n", "node-a")["run"][".distkv"]["run"]
    assert set(by_a) == {"any"}
    # get: everything, the traceback too
    g = dkvyaml.load(ok(s.dkv("error", "get", "node-a", str(tock), check=False)).stdout)
    assert g["nodes"]["node-a"]["trace"] == TRACE
    assert g["nodes"]["node-a"]["data"] == {"code": ["the", "error"]}
    assert g["path"] == ("P", ":.distkv.run.any.what.me.worry")  # !P: a leading dot escaped

    # resolve by subsystem and path; twice is "Already resolved."
    ok(s.dkv("error", "resolve", "-s", "run", ".distkv", "run", "any", "what", "me", "worry",
             check=False), "")
    r = s.dkv("error", "resolve", "node-a", str(tock), check=False)
    assert r.returncode == 0 and r.stderr == "Already resolved.\n", r
    assert set(as_dict(s)["run"][".distkv"]["run"]) == {"at"}
    res = as_dict(s, "-r")["run"][".distkv"]["run"]["any"]["what"]["me"]["worry"]["_"]
    assert isinstance(res["resolved"], int) and res["resolved"] >= tock, res
    assert res["count"] == 1

    # delete: the record and its details; -r: every resolved one
    ok(s.dkv("error", "delete", "-r", check=False), "")
    with s.connect() as p:
        assert "value" not in p.get((".distkv", "error", "node-a", tock))
        assert "value" not in p.get((".distkv", "error", "node-a", tock, "node-b"))
    assert as_dict(s, "-r") == {}
    (b,) = listed(s)
    ok(s.dkv("error", "delete", *syspath(b), check=False), "")
    assert listed(s) == []


def test_naming_errors_that_are_not_there(server):
    s = server
    for args, msg in [
        (("get", "node-a", "5"), ": no error record at node-a 5\n"),
        (("resolve", "node-a", ":5"), ": no error record at node-a :5\n"),
        (("delete", "-s", "run", "a", "b"), ": no error of run at a b\n"),
    ]:
        r = s.dkv("error", *args, check=False)
        assert r.returncode == 1 and r.stderr.endswith(msg), (args, r)
    for args in [("get",), ("get", "node-a"), ("get", "a", "b", "c"), ("list", "-x"),
                 ("get", "node-a", ":zz")]:
        r = s.dkv("error", *args, check=False)
        assert r.returncode == 2, (args, r)
        assert "usage:" in r.stderr or "bad path element ':zz'" in r.stderr, (args, r)
    for cmd in ("list", "get", "resolve", "delete"):   # --help never talks to the server
        r = ok(s.dkv("-p", "1", "error", cmd, "--help", check=False))
        assert r.stdout.startswith("usage: distkv client error " + cmd) and r.stderr == "", r
    assert ok(s.dkv("error", "list", check=False)).stdout == ""
    assert ok(s.dkv("error", "list", "-d_", check=False)).stdout == "{}\n"


def test_broken_records_are_skipped_with_a_note(server_factory):
    s = server_factory(config=FAST)
    t = time.time()
    with s.connect() as p:
        good = runner_error(p, "node-a", ("job",), "RuntimeError: Owch", TRACE, t)
        for where, value in [
            (("node-x", 1), "not a map"),
            (("node-x", 2), {"subsystem": "run"}),                       # no path
            (("node-x", 3), {"path": Path("a"), "subsystem": 5}),        # odd subsystem
            (("node-x", 4), {"path": {"not": "a path"}, "subsystem": "run"}),
            (("node-x", 5, "node-x"), {"message": "details without a record"}),
            (("node-x",), "a value on the node's level"),
        ]:
            assert "error" not in p.set((".distkv", "error") + where, value)
    r = ok(s.dkv("error", "list", "-a", check=False))
    docs = [d for d in dkvyaml.load_all(r.stdout) if d]
    assert [d["path"] for d in docs] == [("P", "job")], docs
    notes = r.stderr.splitlines()
    assert len(notes) == 5 and all("not an error record" in n and "skipped" in n
                                   for n in notes), notes
    assert "node-x :1: not an error record (not a map)" in r.stderr
    assert "node-x :2: not an error record (no path)" in r.stderr
    assert "node-x :4: not an error record (its path is not a path)" in r.stderr
    assert "node-x :5: not an error record (details without a record)" in r.stderr
    # get shows a broken one as it is
    r = s.dkv("error", "get", "node-x", "1", check=False)
    assert r.returncode == 0 and r.stdout == "not a map\n" and "not an error record" in r.stderr
    # the server's own log goes on beside them
    int_type(s)
    refused(s, "-v", "x", "stats", "a")
    wait_for(lambda: len(listed(s)) == 2, 10, "the server's record beside the broken ones")
    ok(s.dkv("error", "delete", "node-a", str(good), check=False))
    s.check_alive()


def test_replicated_one_record_per_error(cluster_factory):
    """The same type error on two nodes: one record (the first node's),
    with both nodes' details; both nodes list it."""
    c = cluster_factory(2, config={"server.errors.interval": 0.2})
    one, two = c.servers
    int_type(one)
    wait_for(lambda: "int" in two.dkv("type", "list").stdout, 15, "the type on two")
    refused(one, "-v", "a", "stats", "x")
    wait_for(lambda: listed(two), 15, "one's record on two")
    refused(two, "-v", "b", "stats", "x")
    r = wait_for(lambda: [x for x in listed(one, "-a") if x["count"] == 2], 15,
                 "two's occurrence in one's record")[0]
    assert set(r["nodes"]) == {"one", "two"} and syspath(r)[0] == "one", r
    assert len(listed(two)) == 1


def test_duplicates_merge_into_one(cluster_factory):
    """Two nodes record the same new error at the same moment (two
    runners; then a type script failing on both at once): the servers
    merge the younger record into the one that counts -- counts added,
    first/last seen, both nodes' details -- and delete it, on both nodes
    alike and without counting anything twice."""
    c = cluster_factory(2, config={"server.errors.interval": 0.2})
    one, two = c.servers
    t = time.time()
    with one.connect() as p1, two.connect() as p2:
        ta = runner_error(p1, "one", ("job", "x"), "RuntimeError: Owch", TRACE, t)
        tb = runner_error(p2, "two", ("job", "x"), "RuntimeError: Ouch", TRACE, t + 0.5)

    def merged(s):
        recs = listed(s, "-a") + listed(s, "-a", "-r")
        return recs if len(recs) == 1 and set(recs[0].get("nodes", {})) == {"one", "two"} else None

    for s in (one, two):
        r = wait_for(lambda: merged(s), 15, "one record on %s" % s.node)[0]
        assert syspath(r) == ("one", str(ta)) and r["count"] == 2, r
        assert r["first_seen"] == t and r["last_seen"] == t + 0.5, r
        assert r["nodes"]["two"]["message"] == "RuntimeError: Ouch", r
    time.sleep(0.6)   # both nodes merged: still counted once
    for s in (one, two):
        with s.connect() as p:
            rec = p.get((".distkv", "error", "one", ta))["value"]
            assert rec["count"] == 2 and [list(x) for x in rec["merged"]] == [["two", tb]], rec
            assert "value" not in p.get((".distkv", "error", "two", tb))
            assert "value" not in p.get((".distkv", "error", "two", tb, "two"))
    # details a runner writes late to the record merged away follow it
    with two.connect() as p:
        assert "error" not in p.set((".distkv", "error", "two", tb, "two"),
                                    {"seen": t + 9, "tock": tb, "message": "late"})
    wait_for(lambda: listed(one, "-a")[0]["nodes"]["two"]["message"] == "late", 10,
             "the late detail moved")
    with one.connect() as p:
        wait_for(lambda: "value" not in p.get((".distkv", "error", "two", tb, "two")), 10,
                 "the late detail deleted")

    # a type script failing on both nodes at once
    int_type(one)
    wait_for(lambda: "int" in two.dkv("type", "list").stdout, 15, "the type on two")
    procs = [subprocess.Popen(s.client_argv("data", "set", "-v", "x", "stats", "y"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for s in (one, two)]
    assert [pr.wait(30) for pr in procs] == [1, 1]   # both refused

    def one_type_record(s):
        recs = listed(s, "-s", "type")
        return len(recs) == 1 and recs[0]["count"] == 2 and len(recs[0].get("merged", [])) <= 1
    for s in (one, two):
        wait_for(lambda: one_type_record(s), 15, "one type record on %s" % s.node)


# ---- the mount ----


def view_files(root):
    """Every file below .errors, as relative paths (what ls -R shows)."""
    out = []
    for d, dirs, files in os.walk(root):
        out += [os.path.relpath(os.path.join(d, f), root) for f in files]
    return sorted(out)


def write_text(path, text, flags=os.O_WRONLY | os.O_TRUNC):
    """open/write/close; the errno of the first call that failed (0: none)."""
    try:
        fd = os.open(path, flags)
    except OSError as e:
        return e.errno
    try:
        os.write(fd, text.encode())
    except OSError as e:
        os.close(fd)
        return e.errno
    try:
        os.close(fd)
    except OSError as e:
        return e.errno
    return 0


def test_mount_errors_and_run(mount_factory):
    m = mount_factory(config=FAST)
    s, mnt = m.server, m.mnt
    int_type(s)
    refused(s, "-v", "123", "stats", "a")
    rec = wait_for(lambda: listed(s), 10, "the type error")[0]
    node, tock = syspath(rec)
    # .errors: by the error's path; the _ is a map by subsystem
    v = os.path.join(mnt, ".errors", "stats", "a", "_")
    wait_for(lambda: os.path.exists(v), 5, "the error in the mount")
    shown = dkvyaml.load(read(v))
    assert set(shown) == {"type"}, shown
    t = shown["type"]
    assert t["count"] == 1 and t["resolved"] is False and t["severity"] == 2, t
    assert t["syspath"] == ("P", "%s.:%s" % (node, tock)) and "path" not in t, t
    assert t["nodes"][node]["message"] == "ValueError('not an integer')", t
    # the records themselves are where the data tree has them
    raw = os.path.join(mnt, ".distkv", "error", node, ":" + tock, "_")
    assert dkvyaml.load(read(raw))["subsystem"] == "type"
    # resolving through the mount: the record with resolved set
    assert write_text(v, "resolved: true\n") == 0
    assert listed(s) == []
    assert dkvyaml.load(read(v))["type"]["resolved"] > 0

    # .run: the jobs as stored, and each job's state record as .state
    ok(s.dkv("data", "set", "-ev", "{'code': ['the', 'answer'], 't': 0}",
             ".distkv", "run", "any", "a", "question", check=False))
    job = os.path.join(mnt, ".run", "any", "a", "question")
    assert dkvyaml.load(read(os.path.join(job, "_"))) == {"code": ["the", "answer"], "t": 0}
    assert errno_of(lambda: read(os.path.join(job, ".state"))) == errno.ENOENT
    ok(s.dkv("data", "set", "-ev", "{'node': 'node-a', 'result': 42}",
             ".distkv", "state", "any", "a", "question", check=False))
    wait_for(lambda: os.path.exists(os.path.join(job, ".state")), 5, "the state")
    assert dkvyaml.load(read(os.path.join(job, ".state"))) == {"node": "node-a", "result": 42}
    assert os.stat(os.path.join(job, ".state")).st_mode & 0o777 == 0o444
    assert ".state" not in os.listdir(job)
    ok(s.dkv("data", "set", "-ev", "{'node': 'node-a', 'result': 43}",
             ".distkv", "state", "any", "a", "question", check=False))
    assert dkvyaml.load(read(os.path.join(job, ".state")))["result"] == 43  # never cached
    assert errno_of(lambda: open(os.path.join(job, ".state"), "w")) == errno.EACCES
    assert errno_of(lambda: os.unlink(os.path.join(job, ".state"))) == errno.ENOENT
    # no .state on .run itself, nor outside it
    assert errno_of(lambda: os.stat(os.path.join(mnt, ".run", ".state"))) == errno.ENOENT
    assert errno_of(lambda: os.stat(os.path.join(mnt, "stats", "a", ".state"))) == errno.ENOENT
    ok(s.dkv("data", "delete", ".distkv", "state", "any", "a", "question", check=False))
    wait_for(lambda: not os.path.exists(os.path.join(job, ".state")), 5, "the state gone")


def test_mount_errors_by_path(mount_factory):
    """.errors shows the errors by path (issue 15): ls -R lists the paths
    `error list -d_` shows below its subsystems, each _ a map by subsystem
    (record fields, syspath, every node's details with the traceback);
    the root path's errors are .errors/_.  Writing resolved: true/false
    (alone, or in a subsystem's part, as cat shows it) resolves and
    reopens; rm -r deletes; everything else is refused with a clear errno
    and changes nothing."""
    m = mount_factory()
    s, mnt = m.server, m.mnt
    ev = os.path.join(mnt, ".errors")
    t = time.time()
    job = (".distkv", "run", "any", "what", "me", "worry")
    with s.connect() as p:
        runner_error(p, "node-a", job, "RuntimeError: Owch", TRACE, t)
        runner_error(p, "node-a", ("stats", "a"), "bad", TRACE, t, subsystem="type")
        runner_error(p, "node-b", ("stats", "a"), "worse", TRACE, t + 1, subsystem="codec")
        runner_error(p, "node-a", (), "the root", TRACE, t, subsystem="peer")
        runner_error(p, "node-a", ("stats", "a", "deeper"), "below", TRACE, t)
    files = view_files(ev)
    assert files == [":=.distkv/run/any/what/me/worry/_", "_", "stats/a/_",
                     "stats/a/deeper/_"], files   # names as in the data tree
    # the same paths as `error list -d_`, below its subsystems
    d = as_dict(s)
    assert set(d) == {"run", "type", "codec", "peer"}
    assert "_" in d["run"][".distkv"]["run"]["any"]["what"]["me"]["worry"]
    assert sorted(os.listdir(os.path.join(ev, "stats"))) == ["a"]
    assert sorted(os.listdir(os.path.join(ev, "stats", "a"))) == ["_", "deeper"]
    # one path, two subsystems: a map by subsystem
    sa = dkvyaml.load(read(os.path.join(ev, "stats", "a", "_")))
    assert set(sa) == {"codec", "type"}, sa
    assert sa["codec"]["nodes"]["node-b"]["message"] == "worse"
    assert sa["type"]["nodes"]["node-a"]["trace"] == TRACE
    assert sa["type"]["count"] == 1 and sa["type"]["first_seen"] == t
    w = dkvyaml.load(read(os.path.join(ev, ":=.distkv", "run", "any", "what", "me", "worry", "_")))
    assert w["run"]["nodes"]["node-a"]["data"] == {"code": ["the", "error"]}
    assert set(dkvyaml.load(read(os.path.join(ev, "_")))) == {"peer"}
    st = os.stat(os.path.join(ev, "stats", "a", "_"))
    assert st.st_size == len(read(os.path.join(ev, "stats", "a", "_")).encode())

    # bad writes: a clear errno, and nothing changes
    def everything():
        return as_dict(s), as_dict(s, "-r")   # open ones, resolved ones
    before = everything()
    sa_p = os.path.join(ev, "stats", "a", "_")
    for text in ("resolved: [1\n", "- a list\n", "resolved: maybe\n", "nosuch: {resolved: true}\n",
                 "type: 5\n", "type: {count: 7}\n", "12\n"):
        assert write_text(sa_p, text) == errno.EINVAL, text
    assert everything() == before
    assert errno_of(lambda: os.mkdir(os.path.join(ev, "new"))) == errno.EPERM
    assert errno_of(lambda: os.mkdir(os.path.join(ev, "stats", "new"))) == errno.EPERM
    assert write_text(os.path.join(ev, "stats", "other"), "x", os.O_WRONLY | os.O_CREAT) == errno.EPERM
    assert errno_of(lambda: os.truncate(sa_p, 0)) == errno.EPERM
    assert errno_of(lambda: os.rmdir(os.path.join(ev, "stats"))) == errno.ENOTEMPTY
    assert errno_of(lambda: os.rename(os.path.join(ev, "stats"), os.path.join(ev, "x"))) == errno.EXDEV
    assert errno_of(lambda: os.unlink(os.path.join(ev, "stats", "nothing"))) == errno.ENOENT
    assert everything() == before
    assert view_files(ev) == files

    # resolve one subsystem (as cat shows it, edited), then every one here
    text = read(sa_p)
    i = text.index("type:")
    assert write_text(sa_p, text[:i] + text[i:].replace("resolved: false", "resolved: true", 1)) == 0
    assert set(as_dict(s)) == {"run", "codec", "peer"}
    assert isinstance(dkvyaml.load(read(sa_p))["type"]["resolved"], int)
    assert dkvyaml.load(read(sa_p))["codec"]["resolved"] is False
    assert write_text(sa_p, "resolved: true\n") == 0
    assert set(as_dict(s)) == {"run", "peer"}
    assert write_text(sa_p, "codec: {resolved: false}\n") == 0   # reopened
    assert set(as_dict(s)) == {"run", "peer", "codec"}
    assert view_files(ev) == files   # resolved errors stay, as in list -r

    # rm -r: the errors at and below that path, records and details
    subprocess.run(["rm", "-r", os.path.join(ev, "stats")], check=True)
    assert set(as_dict(s)) == {"run", "peer"} and as_dict(s, "-r") == {}
    assert view_files(ev) == [":=.distkv/run/any/what/me/worry/_", "_"]
    with s.connect() as p:
        assert not [k for k in p.stream("get_tree", path=Path(".distkv", "error"))
                    if "path" in k and "stats" in str(k.get("value"))]
    os.unlink(os.path.join(ev, "_"))
    assert set(as_dict(s)) == {"run"}
    assert not os.path.exists(os.path.join(ev, "_"))
    s.check_alive()


def test_mount_errors_inotify(mount_factory):
    """Errors appearing, changing and going reach `inotifywait -r` on
    .errors like other entries, every new level of a path; one made
    through the mount is seen once."""
    from test_fs import Inotify
    m = mount_factory(config=FAST)
    s, mnt = m.server, m.mnt
    ev = os.path.join(mnt, ".errors")
    os.listdir(ev)
    ino = Inotify(ev).settle()
    try:
        n0 = len(ino.snapshot())
        with s.connect() as p:
            tock = runner_error(p, "node-a", ("x", "y"), "RuntimeError: Owch", TRACE, time.time())
        ia, _ = ino.wait("x", "CREATE", n0)
        iy, _ = ino.wait("x/y", "CREATE", n0)
        iv, _ = ino.wait("x/y/_", "CREATE", n0)
        assert ia < iy < iv, ino.dump(n0)
        # a second occurrence (the detail changes): MODIFY
        n0 = len(ino.snapshot())
        with s.connect() as p:
            assert "error" not in p.set((".distkv", "error", "node-a", tock, "node-b"),
                                        {"seen": time.time(), "tock": tock, "message": "again"})
        ino.wait("x/y/_", "MODIFY", n0)
        # resolved by the protocol: MODIFY; deleted: DELETE _ and the dirs
        n0 = len(ino.snapshot())
        ok(s.dkv("error", "resolve", "node-a", str(tock), check=False))
        ino.wait("x/y/_", "MODIFY", n0)
        n0 = len(ino.snapshot())
        ok(s.dkv("error", "delete", "node-a", str(tock), check=False))
        i_del, _ = ino.wait("x/y/_", "DELETE", n0)
        i_y, _ = ino.wait("x/y", "DELETE", n0)
        i_x, _ = ino.wait("x", "DELETE", n0)
        assert i_del < i_y < i_x, ino.dump(n0)
        assert not os.path.exists(os.path.join(ev, "x"))
        # made through the mount: the writer's own events, once
        with s.connect() as p:
            runner_error(p, "node-a", ("z",), "RuntimeError: Owch", TRACE, time.time())
        # the record and its detail are repeated: CREATE (open, write,
        # close), then MODIFY (the same without O_CREAT), in either order
        # of the two; then nothing more comes
        i, _ = ino.wait("z/_", "CREATE")
        i, _ = ino.wait("z/_", "CLOSE_WRITE", i + 1)
        ino.wait("z/_", "CLOSE_WRITE", i + 1)
        time.sleep(0.2)
        n0 = len(ino.snapshot())
        assert write_text(os.path.join(ev, "z", "_"), "resolved: true\n") == 0
        time.sleep(0.3)
        mods = [e for _, r, e in ino.snapshot()[n0:] if r == "z/_" and "CLOSE_WRITE" in e]
        assert len(mods) == 1, ino.dump(n0)
    finally:
        ino.stop()


def test_mount_errors_hidden_by_acl(mount_acl):
    """A mount bound to joe (server.mount.user) shows in .errors only the
    errors whose records joe's ACL lets it read: here those node-a made."""
    m = mount_acl({"server.mount.user": "joe"})
    m.set_internal(("acl", "writeonly", ".distkv", "error", "node-a", "#"), "rxe")
    t = time.time()
    with m.server.connect() as p:
        runner_error(p, "node-a", ("ro", "b"), "RuntimeError: Owch", TRACE, t)
        runner_error(p, "node-b", ("ro", "b"), "KeyError: x", TRACE, t, subsystem="type")
        runner_error(p, "node-b", ("secret", "c"), "KeyError: y", TRACE, t)
    ev = os.path.join(m.mnt, ".errors")
    assert view_files(ev) == ["ro/b/_"]
    assert set(dkvyaml.load(read(os.path.join(ev, "ro", "b", "_")))) == {"run"}
    assert errno_of(lambda: os.stat(os.path.join(ev, "secret"))) == errno.ENOENT
    # what joe cannot see, joe cannot resolve or delete either
    assert write_text(os.path.join(ev, "ro", "b", "_"), "type: {resolved: true}\n") == errno.EINVAL
    # and what it may read but not delete stays (EACCES)
    assert errno_of(lambda: os.unlink(os.path.join(ev, "ro", "b", "_"))) == errno.EACCES
    assert view_files(ev) == ["ro/b/_"]
    m.set_internal(("acl", "writeonly", ".distkv", "error", "node-a", "#"), "rwxed")
    assert write_text(os.path.join(ev, "ro", "b", "_"), "resolved: true\n") == 0
    assert set(as_dict(m.server, "-s", "run")) == {"secret"}   # node-b's, unseen
    os.unlink(os.path.join(ev, "ro", "b", "_"))
    assert view_files(ev) == []
    left = listed(m.server) + listed(m.server, "-r")
    assert sorted(syspath(r)[0] for r in left) == ["node-b", "node-b"], left
