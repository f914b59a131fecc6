"""Replication between distkv servers through Serf: real `serf agent`
processes, real servers, loopback (and network namespaces for the
partition).

    DKV_BUILD=$PWD/build /usr/bin/python3 -m pytest -q tests/system/test_cluster.py

Every test starts its own agents and servers (fixtures `serf_factory`,
`cluster_factory`, `server_factory`, `netlab` in conftest.py; helpers in
cluster_util.py), uses a server.root of its own, waits by polling with
deadlines, and stops everything at teardown.  A test marked "slow" in its
doc takes more than about 20 s.

What is covered:
* the tutorial's "Start the server" with two and three nodes, including
  `killall distkv` and a restart without -i;
* a value of every kind written on one node is on every node, with the
  same chain; deletes too; watches (protocol and `data monitor`) on one
  node see changes made on another;
* kill -9 of a node while another writes: it restarts empty and ends
  identical (values, chains, ticks, nothing missing), and its new ticks
  are above its old ones;
* restart from a node's own log, with and without live peers;
* a Serf agent restarted under a running server;
* the same keys written concurrently on two nodes: all nodes agree;
* a delete while a node is down stays a delete when it returns with its
  old log;
* a real partition (network namespaces, a bridge) and its healing;
* msg_send / msg_monitor; two networks (server.root) on the same agents;
* the server's own Serf agent (server.serf.spawn): started, joined with
  --join, and gone when the server is.
"""

import os
import re
import select
import signal
import subprocess
import threading
import time

import pytest
import dkvyaml

from cluster_util import (NAMES, chain_ticks, cluster_state, connect, dump,
                          free_port_tcp_udp, is_ready, pid_alive, port_accepts, proc_comm,
                          request, serf_descendants, ticks_state, wait_converged,
                          wait_for, wait_value)
from dkvproto import Path, diff

# Values of every kind the protocol carries.
VALUES = [
    (("kinds", "int"), 42),
    (("kinds", "neg"), -(2 ** 40)),
    (("kinds", "big"), 2 ** 70),
    (("kinds", "float"), 1.5),
    (("kinds", "str"), "h\u00e9llo w\u00f6rld"),
    (("kinds", "bytes"), b"\x00\xffbin\x80"),
    (("kinds", "none"), None),
    (("kinds", "true"), True),
    (("kinds", "list"), [1, "two", b"3", [4.0, None, False]]),
    (("kinds", "map"), {"a": {"b": {"c": [1, 2, {"d": b"\x01\x02"}]}}, "e": True, 7: "int key",
                        "empty": {}}),
    (("kinds", 5, b"raw", True, (1, "t"), None), "an odd path"),
]


def peer_states(server):
    c = cluster_state(server) or {}
    return {n: (p or {}).get("state") for n, p in (c.get("peers") or {}).items()}


def set_ok(server_or_proto, path, value, nchain=3):
    """set_value; assert it worked; return the reply (with chain)."""
    if hasattr(server_or_proto, "request"):
        r = server_or_proto.request("set_value", path=Path(*path), value=value, nchain=nchain)
    else:
        r = request(server_or_proto, "set_value", 10.0, path=Path(*path), value=value,
                    nchain=nchain)
    assert "error" not in r, r
    return r


def delete_ok(server, path, nchain=3):
    r = request(server, "delete_value", 10.0, path=Path(*path), nchain=nchain)
    assert "error" not in r, r
    return r


def max_tick_of(server, node):
    nodes, _ = ticks_state(server)
    return nodes.get(node, 0)


class Writer(threading.Thread):
    """Writes to one server as fast as it answers until stopped: sets on
    prefix/k<i % keys> with a value naming the round, and every 7th round
    a delete.  Counts rounds; any error reply is kept in .errors."""

    def __init__(self, server, prefix, keys=50, tag=None):
        super().__init__(daemon=True)
        self.server, self.prefix, self.keys = server, prefix, keys
        self.tag = tag or server.node
        self.count = 0
        self.errors = []
        self.halt = threading.Event()

    def run(self):
        try:
            with connect(self.server, 10.0) as p:
                i = 0
                while not self.halt.is_set():
                    path = Path(*self.prefix, "k%d" % (i % self.keys))
                    if i % 7 == 6:
                        r = p.request("delete_value", path=path, nchain=0)
                    else:
                        r = p.request("set_value", path=path, nchain=0,
                                      value={"by": self.tag, "i": i, "pad": b"x" * (i % 13)})
                    if "error" in r:
                        self.errors.append(r)
                    i += 1
                    self.count = i
        except Exception as exc:  # reported by stop()
            self.errors.append(exc)

    def stop(self):
        self.halt.set()
        self.join(15)
        assert not self.is_alive(), "writer on %s hangs" % self.server.node
        return self.count


# --------------------------------------------------------------------------
# the tutorial


def cluster_cfg(agent, root):
    return {"server.cluster": True, "server.serf.spawn": False,
            "server.serf.host": "127.0.0.1", "server.serf.port": agent.rpc_port,
            "server.root": root}


@pytest.mark.parametrize("n", [2, 3])
def test_tutorial_start_the_server(n, serf_factory, server_factory):
    """The tutorial's "Start the server", one "host" per node: each has its
    Serf agent (joined to the first), the servers are started as

        one $ distkv server -i Testing one
        two $ distkv server two
        two $ distkv client data get        ->  Testing
        one $ killall distkv
        one $ distkv server one
        one $ distkv client data get        ->  Testing

    The second server's `data get` is not retried: a node that is still
    syncing holds data requests until it is in sync."""
    names = NAMES[:n]
    root = "tutorial-%d-%d" % (os.getpid(), n)
    agents = [serf_factory(name) for name in names]
    for a in agents[1:]:
        a.join(agents[0])
    one = server_factory(node="one", init="Testing", config=cluster_cfg(agents[0], root))
    assert one.dkv("data", "get").stdout == "Testing\n"
    others = [server_factory(node=name, init=None, config=cluster_cfg(a, root))
              for name, a in zip(names[1:], agents[1:])]
    for s in others:
        r = s.dkv("data", "get", timeout=30)
        assert r.stdout == "Testing\n", (s.node, r.stdout, r.stderr)
    # one's changes so far (tick 1 is the root value) and one more
    set_ok(one, ("tut", "before"), "x")
    for s in others:
        wait_value(s, ("tut", "before"), "x")
    old_tick = max_tick_of(others[0], "one")
    assert old_tick >= 2

    # one $ killall distkv   (SIGTERM)
    assert one.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
    # one $ distkv server one
    one = server_factory(node="one", init=None, port=one.port, config=cluster_cfg(agents[0], root))
    r = one.dkv("data", "get", timeout=30)
    assert r.stdout == "Testing\n", (r.stdout, r.stderr)
    r = one.dkv("data", "get", "tut", "before")
    assert r.stdout == "x\n"
    # The restarted node must not reuse its old ticks.
    r = set_ok(one, ("tut", "after"), "z")
    assert r["chain"]["node"] == "one" and r["chain"]["tick"] > old_tick, (r, old_tick)
    for s in others:
        wait_value(s, ("tut", "after"), "z", chain=r["chain"])
        assert s.dkv("data", "get", "tut", "after").stdout == "z\n"


# --------------------------------------------------------------------------
# replication of values, deletes, watches


def test_write_read_delete_everywhere(cluster_factory):
    """Values of every kind set on one are on two and three with the same
    chain; a change on three reaches one; an overwrite on two of one's
    value gets a chain naming both; deletes on one reach everybody."""
    c = cluster_factory(3)
    a, b, cc = c.servers
    chains = {}
    for path, value in VALUES:
        chains[path] = set_ok(a, path, value)["chain"]
        assert chains[path]["node"] == "one"
    for s in (b, cc):
        for path, value in VALUES:
            wait_value(s, path, value, chain=chains[path])

    r = set_ok(cc, ("kinds", "from-three"), {"x": [b"y"]})
    for s in (a, b):
        wait_value(s, ("kinds", "from-three"), {"x": [b"y"]}, chain=r["chain"])

    r = set_ok(b, ("kinds", "int"), 43)
    ticks = chain_ticks(r["chain"])
    assert ticks[0][0] == "two" and ("one", chains[("kinds", "int")]["tick"]) in ticks, ticks
    for s in (a, cc):
        wait_value(s, ("kinds", "int"), 43, chain=r["chain"])

    for path, _ in VALUES[:4]:
        delete_ok(a, path)
    for s in (b, cc):
        for path, _ in VALUES[:4]:
            wait_value(s, path, absent=True)
    wait_converged(c.servers)
    # what is left is what we expect, on every node
    want = {p: v for p, v in VALUES[4:]}
    want[("kinds", "from-three")] = {"x": [b"y"]}
    got = {p: v for p, (v, _) in dump(cc, ("kinds",)).items()}
    assert diff(got, want) is None, diff(got, want)


def test_watch_on_one_node_sees_changes_on_another(cluster_factory):
    """A protocol watch and a `data monitor` on two see one's set and
    delete, with one's chain."""
    c = cluster_factory(2)
    a, b = c.servers
    p = connect(b, 10.0)
    mon = MonitorReader(b.client_argv("data", "monitor", "-m", "watched"))
    try:
        w = p.start("watch", path=Path("watched"), nchain=2)
        first = p.next(w, timeout=10)
        assert first.get("state") == "start", first
        # the monitor is subscribed once it shows a change made on two itself
        for k in range(1, 100):
            set_ok(b, ("watched", "probe"), k)
            if mon.wait(lambda d: d.get("value") == k, 1.0):
                break
        else:
            raise AssertionError("the monitor never showed two's own change: %r" % mon.text())
        value = {"v": [1, "two"], "w": None}
        r = set_ok(a, ("watched", "x", "y"), value)
        m = next_with(p, w, lambda m: "value" in m and diff(m["value"], value) is None)
        assert m["chain"]["node"] == "one" and m["chain"]["tick"] == r["chain"]["tick"], m
        d = mon.wait(lambda d: diff(d.get("value"), value) is None, 15.0)
        assert d, "the monitor on two did not show one's change: %r" % mon.text()
        assert d["path"] == ("P", "watched.x.y"), d
        assert d["chain"]["node"] == "one" and d["chain"]["tick"] == r["chain"]["tick"], d

        delete_ok(a, ("watched", "x", "y"))
        m = next_with(p, w, lambda m: "path" in m and "value" not in m)
        d = mon.wait(lambda d: "value" not in d and d.get("path") == ("P", "watched.x.y"), 15.0)
        assert d, "the monitor on two did not show one's delete: %r" % mon.text()
    finally:
        mon.close()
        p.close()


class MonitorReader:
    """A `distkv client data monitor` process and the YAML documents it
    prints (each starts with `---`).  A document counts once the next one
    has begun, or when nothing more arrived for 0.3 s."""

    def __init__(self, argv):
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.buf = b""
        self.used = 0       # documents already handed out

    def text(self):
        return self.buf.decode(errors="replace")[-2000:]

    def _docs(self, quiet):
        parts = re.split(r"^---[ \t]*$", self.buf.decode(errors="replace"), flags=re.M)
        if not quiet:
            parts = parts[:-1]      # may be incomplete
        return [dkvyaml.load(x) for x in parts if x.strip()]

    def wait(self, pred, timeout):
        """The first new document satisfying pred, or None at timeout."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.proc.stdout], [], [], max(0, min(left, 0.3)))
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    raise AssertionError("monitor ended: %r\nstderr: %s" % (
                        self.text(), self.proc.stderr.read().decode(errors="replace")))
                self.buf += chunk
            docs = self._docs(quiet=not ready)
            for d in docs[self.used:]:
                self.used += 1
                if isinstance(d, dict) and pred(d):
                    return d
            if left <= 0:
                return None

    def close(self):
        self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()


def next_with(p, seq, pred, timeout=15.0):
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("no matching message on stream %d; log %r" % (seq, p.log[-10:]))
        m = p.next(seq, timeout=left)
        assert "error" not in m, m
        if pred(m):
            return m


# --------------------------------------------------------------------------
# crashes and restarts


def test_kill9_during_writes_then_resync(cluster_factory):
    """kill -9 of two while one writes (sets and deletes) as fast as it
    can; two comes back without -l while the writes go on, and ends
    identical to one and three: values, chains, node ticks, nothing
    missing.  Its next change has a tick above its old ones."""
    c = cluster_factory(3)
    a, b, cc = c.servers
    r = set_ok(b, ("kw", "by-two"), 1)
    old_b_tick = r["chain"]["tick"]
    wait_value(a, ("kw", "by-two"), 1, chain=r["chain"])

    w = Writer(a, ("kw",))
    w.start()
    try:
        wait_for(lambda: w.count >= 300 or w.errors, 15, "300 writes on one")
        c.stop("two", signal.SIGKILL)
        n = w.count
        wait_for(lambda: w.count >= n + 300 or w.errors, 15, "300 more writes on one")
        c.start("two")                  # no -i, no -l
        c.wait_ready([c.server("two")])
        n = w.count
        wait_for(lambda: w.count >= n + 300 or w.errors, 15, "writes on one after the restart")
    finally:
        total = w.stop()
    assert not w.errors, w.errors[:3]
    b = c.server("two")
    wait_converged([a, b, cc], timeout=30)
    assert len(dump(a, ("kw",))) >= 10

    r = set_ok(b, ("kw", "two-again"), 2)
    assert r["chain"]["node"] == "two" and r["chain"]["tick"] > old_b_tick, (r, old_b_tick)
    for s in (a, cc):
        wait_value(s, ("kw", "two-again"), 2, chain=r["chain"])
    assert total > 900


def test_restart_from_own_log(cluster_factory, tmp_path):
    """two logs (--save) and is stopped; one changes things meanwhile
    (new key, overwrite, delete); two restarts with -l: it has everything
    and nothing deleted comes back.  Then both stop; two starts alone from
    its log (no live peer: it serves at once), one starts empty without
    -i and gets everything from two, and one's next tick is a new one."""
    log1, log2, log3 = (tmp_path / n for n in ("two-1.log", "two-2.log", "two-3.log"))
    c = cluster_factory(2, server_args=[[], ["--save", str(log1)]])
    a, b = c.servers
    for i in range(20):
        set_ok(a, ("rl", "k%d" % i), {"i": i})
    set_ok(a, ("rl", "doomed"), "x")
    set_ok(b, ("rl", "from-two"), b"\x02")
    wait_converged([a, b])

    c.stop("two")
    set_ok(a, ("rl", "new"), [1, 2])
    set_ok(a, ("rl", "k3"), "changed")
    delete_ok(a, ("rl", "doomed"))
    b = c.start("two", server_args=["-l", str(log1), "--save", str(log2)])
    c.wait_ready()
    wait_value(b, ("rl", "new"), [1, 2])
    wait_value(b, ("rl", "k3"), "changed")
    wait_value(b, ("rl", "doomed"), absent=True)
    wait_converged([a, b])
    before = dump(a)
    a_tick = max_tick_of(a, "one")

    c.stop("one")
    c.stop("two")
    b = c.start("two", server_args=["-l", str(log2), "--save", str(log3)])
    wait_for(lambda: is_ready(b), 20, "two, alone, to be ready")
    got = dump(b)
    assert diff(got, before) is None, diff(got, before)
    a = c.start("one")                  # no -i, no -l
    c.wait_ready()
    assert a.dkv("data", "get", timeout=30).stdout == "Testing\n"
    wait_converged([a, b])
    assert diff(dump(a), before) is None
    r = set_ok(a, ("rl", "after"), 1)
    assert r["chain"]["tick"] > a_tick, (r, a_tick)
    wait_value(b, ("rl", "after"), 1, chain=r["chain"])


def test_serf_agent_restart_under_running_server(cluster_factory):
    """two's Serf agent is killed (-9) and restarted on the same ports
    (knowing nobody: the server has it join the agents it knew, see
    doc/cluster.md): the server reconnects, and changes on both sides
    (also those made while the agent was gone) replicate.  Then one's
    agent is restarted gracefully (SIGTERM) and joined by the test."""
    c = cluster_factory(2)
    a, b = c.servers
    set_ok(a, ("sa", "before"), 1)
    wait_value(b, ("sa", "before"), 1)

    c.agent("two").kill(signal.SIGKILL)
    r_gone = set_ok(a, ("sa", "while-gone"), 2)
    c.agent("two").restart(rejoin=False)
    wait_for(lambda: c.agent("two").members().get("one") == "alive", 20,
             "two's new agent to see one's (the server makes it join)")
    c.wait_ready(timeout=30)
    st = cluster_state(b)
    assert isinstance(st.get("serf"), str) and st["serf"], st

    wait_value(b, ("sa", "while-gone"), 2, chain=r_gone["chain"], timeout=30)
    r = set_ok(a, ("sa", "after-a"), 3)
    wait_value(b, ("sa", "after-a"), 3, chain=r["chain"])
    r = set_ok(b, ("sa", "after-b"), 4)
    wait_value(a, ("sa", "after-b"), 4, chain=r["chain"])
    # and the other agent, gracefully this time
    c.agent("one").restart(sig=signal.SIGTERM, rejoin=True)
    c.wait_ready(timeout=30)
    r = set_ok(b, ("sa", "after-one"), 5)
    wait_value(a, ("sa", "after-one"), 5, chain=r["chain"])
    wait_converged([a, b])


def test_concurrent_writes_to_the_same_keys(cluster_factory):
    """one and two both write 200 values to each of the same 10 keys, at
    full speed and at the same time; three watches.  All three nodes end
    with the same values and chains, and each key holds a value one of
    the writers wrote."""
    c = cluster_factory(3)
    a, b, cc = c.servers
    start = threading.Barrier(2)
    errors = []

    def writer(server):
        try:
            with connect(server, 20.0) as p:
                start.wait(10)
                for i in range(2000):
                    r = p.request("set_value", path=Path("cc", "k%d" % (i % 10)),
                                  value=[server.node, i], nchain=0)
                    if "error" in r:
                        errors.append(r)
        except Exception as exc:
            errors.append(exc)

    ts = [threading.Thread(target=writer, args=(s,), daemon=True) for s in (a, b)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
        assert not t.is_alive(), "a writer hangs"
    assert not errors, errors[:3]
    wait_converged([a, b, cc], timeout=30)
    final = dump(a, ("cc",))
    assert len(final) == 10, final
    for path, (value, chain) in final.items():
        node, i = value
        assert node in ("one", "two") and 1990 <= i < 2000 and i % 10 == int(path[-1][1:]), \
            (path, value)
        assert chain["node"] in ("one", "two"), chain
    conflicts = (cluster_state(cc) or {}).get("conflicts")
    assert isinstance(conflicts, int) and conflicts >= 0, conflicts


def test_delete_while_node_down_stays_deleted(cluster_factory, tmp_path):
    """three (which logs with --save) is stopped; one deletes a value three
    still has in its log; three restarts from that log: the value stays
    deleted on three, and does not come back on one or two."""
    log1, log2 = tmp_path / "three-1.log", tmp_path / "three-2.log"
    c = cluster_factory(3, server_args=[[], [], ["--save", str(log1)]])
    a, b, cc = c.servers
    set_ok(a, ("dd", "gone"), "old value")
    set_ok(a, ("dd", "kept"), "kept value")
    wait_converged([a, b, cc])

    c.stop("three")
    delete_ok(a, ("dd", "gone"))
    set_ok(b, ("dd", "new"), 1)
    cc = c.start("three", server_args=["-l", str(log1), "--save", str(log2)])
    c.wait_ready()
    for s in (a, b, cc):
        wait_value(s, ("dd", "gone"), absent=True)
    wait_value(cc, ("dd", "new"), 1)
    wait_converged([a, b, cc])
    # and it stays so (no late resurrection from three's log)
    end = time.monotonic() + 2
    while time.monotonic() < end:
        for s in (a, b, cc):
            r = request(s, "get_value", 5.0, path=Path("dd", "gone"))
            assert "value" not in r, (s.node, r)
        time.sleep(0.2)
    assert request(cc, "get_value", 5.0, path=Path("dd", "kept")).get("value") == "kept value"


def test_empty_node_waits_for_failed_peers(cluster_factory):
    """Found by tools/soak (issue 16).  three is restarted without any
    state (no -l, no -i) while its agent believes one and two failed (their
    agents are down; their servers run on).  It must not serve alone: its
    ticks would start again at 1, and the peers, which saw three's old
    changes under those ticks, would ignore the new ones (acknowledged
    writes lost for good).  It waits until a peer is back, downloads, and
    counts on above its old ticks."""
    c = cluster_factory(3)
    a, b, cc = c.servers
    old = [set_ok(cc, ("ew", i), i)["chain"]["tick"] for i in range(5)]
    wait_converged([a, b, cc])
    c.stop("three", signal.SIGKILL)
    c.agent("one").kill()
    c.agent("two").kill()
    wait_for(lambda: all(c.agent("three").members().get(n) == "failed" for n in ("one", "two")),
             30, "three's agent to see one and two failed")
    cc = c.start("three")
    time.sleep(2)
    st = cluster_state(cc)
    assert st["ready"] is False, "three serves alone, with no state: %r" % st
    assert "waits for one of the 2 it knows" in cc.log(), cc.log_tail(10)
    c.agent("one").restart(rejoin=True)
    c.agent("two").restart(rejoin=True)
    c.wait_ready(timeout=60)
    r = set_ok(cc, ("ew", "after"), 1)
    assert r["chain"]["tick"] > max(old), (r, old)
    wait_value(a, ("ew", "after"), 1, chain=r["chain"])
    wait_converged([a, b, cc], timeout=30)


def test_empty_node_waits_for_every_peer_it_downloads_from(cluster_factory):
    """Found by tools/soak's 30-minute run (issue 16).  A node restarted
    without state learns the ticks it used before only from its peers.  In
    the soak, one was wiped right after changes that had reached three but
    not two; it was ready as soon as two's download was done, used those
    ticks again, and the peers, which had seen them, ignored its new
    changes (one acknowledged write lost, two old values left on three).
    Now such a node waits until every peer it downloads from has answered:
    here three is stopped while one restarts, so one waits for it."""
    c = cluster_factory(3)
    a, b, cc = c.servers
    old = [set_ok(a, ("ea", i), i)["chain"]["tick"] for i in range(5)]
    wait_converged([a, b, cc])
    c.stop("one", signal.SIGKILL)
    cc.proc.send_signal(signal.SIGSTOP)
    try:
        a = c.start("one")
        wait_for(lambda: "downloading the state from 2 peer(s)" in a.log(), 15,
                 "one to start downloading")
        wait_for(lambda: peer_states(a).get("two") == "live", 15, "two's download")
        time.sleep(1)
        st = cluster_state(a)
        assert st["ready"] is False, "one serves before three answered: %r" % st
        assert "(all of them: this node holds no state of its own)" in a.log(), a.log_tail(10)
    finally:
        cc.proc.send_signal(signal.SIGCONT)
    c.wait_ready(timeout=30)
    assert "in sync: state downloaded from 2 peers" in a.log(), a.log_tail(10)
    r = set_ok(a, ("ea", "after"), 1)
    assert r["chain"]["tick"] > max(old), (r, old)
    for s in (b, cc):
        wait_value(s, ("ea", "after"), 1, chain=r["chain"])
    wait_converged([a, b, cc], timeout=30)


def test_restarted_agent_forgets_nobody_for_tombstones(cluster_factory, tmp_path):
    """Found by tools/soak (issue 16).  three is down (server and agent)
    when one deletes a key.  one's Serf agent is then restarted while no
    other agent answers (two's is down too; two's server runs on): the new
    agent knows nobody, so three is missing from its member list.  one must
    still keep the tombstone (three never saw the deletion; before the fix
    one dropped it), and when three comes back from its log the key stays
    deleted everywhere."""
    log1, log2 = tmp_path / "three-1.log", tmp_path / "three-2.log"
    c = cluster_factory(3, config={"server.tombstone.interval": 1},
                        server_args=[[], [], ["--save", str(log1)]])
    a, b, cc = c.servers
    set_ok(a, ("ra", "gone"), "old value")
    wait_converged([a, b, cc])
    c.stop("three", signal.SIGKILL)
    c.agent("three").kill()
    delete_ok(a, ("ra", "gone"))
    c.agent("two").kill()
    c.agent("one").restart(rejoin=True)     # nobody to join
    assert list(c.agent("one").members()) == ["one"]
    wait_for(lambda: str(cluster_state(a)["serf"]).startswith("connected"), 15,
             "one to be connected to its new agent")
    time.sleep(3)                           # three tombstone checks
    assert cluster_state(a)["tombstones"] >= 1, "one dropped the tombstone"
    c.agent("two").restart(rejoin=True)
    c.agent("three").restart(rejoin=True)
    cc = c.start("three", server_args=["-l", str(log1), "--save", str(log2)])
    c.wait_ready()
    for s in (a, b, cc):
        wait_value(s, ("ra", "gone"), absent=True)
    wait_converged([a, b, cc])


def test_restarted_server_keeps_tombstones_for_a_node_nobody_lists(cluster_factory, tmp_path):
    """Found by tools/soak's 30-minute run (issue 16).  three (which wrote
    data of its own) is down, server and agent, when one deletes a key.
    Then the agents of one and two are restarted: they know each other,
    nobody knows three.  Then the servers of one and two restart from their
    logs: each sees the other as its only peer, and both saw the deletion.
    Before the fix both dropped the tombstone although three never saw the
    deletion, and three, back with the old value, could hand it to a
    newcomer.  Now three, known from the data, keeps every tombstone until
    it is back in a member list; then the key stays deleted and the
    tombstone goes."""
    logs = [tmp_path / ("%s-%d.log" % (n, k)) for n in NAMES[:3] for k in (1, 2)]
    c = cluster_factory(3, config={"server.tombstone.interval": 1},
                        server_args=[["--save", str(logs[0])], ["--save", str(logs[2])],
                                     ["--save", str(logs[4])]])
    a, b, cc = c.servers
    set_ok(a, ("rs", "gone"), "old value")
    set_ok(cc, ("rs", "three's"), "a value of three")
    wait_converged([a, b, cc])
    c.stop("three", signal.SIGKILL)
    c.agent("three").kill()
    delete_ok(a, ("rs", "gone"))
    wait_value(b, ("rs", "gone"), absent=True)
    c.agent("two").kill()
    c.agent("one").restart(rejoin=False)
    c.agent("two").restart(rejoin=True)          # joins one; nobody lists three
    wait_for(lambda: sorted(c.agent("one").members()) == ["one", "two"], 15,
             "the agents of one and two to list each other only")
    c.stop("one", signal.SIGKILL)
    c.stop("two", signal.SIGKILL)
    a = c.start("one", server_args=["-l", str(logs[0]), "--save", str(logs[1])])
    b = c.start("two", server_args=["-l", str(logs[2]), "--save", str(logs[3])])
    c.wait_ready([a, b])
    time.sleep(3)                               # three tombstone checks
    for s in (a, b):
        st = cluster_state(s)
        assert st["tombstones"] >= 1, "%s dropped the tombstone: %s" % (s.node, st)
        assert st["tombstones_wait_for"] == "three", st
    assert "keeping every tombstone: node three" in a.log(), a.log()[-2000:]
    c.agent("three").restart(rejoin=True)
    cc = c.start("three", server_args=["-l", str(logs[4]), "--save", str(logs[5])])
    c.wait_ready()
    for s in (a, b, cc):
        wait_value(s, ("rs", "gone"), absent=True)
    wait_converged([a, b, cc])
    wait_for(lambda: all(cluster_state(s)["tombstones"] == 0 for s in (a, b, cc)), 20,
             "the tombstone to go once three is back")
    assert all(cluster_state(s)["tombstones_wait_for"] is None for s in (a, b, cc))


def test_restart_from_a_failed_log_keeps_deletions(cluster_factory, tmp_path):
    """Found by tools/soak (issue 16).  three logs in `always` mode to a
    tmpfs that fills up: its log fails and it goes on serving.  one deletes
    a key.  three applied the deletion but its log lacks it, so three must
    not report it as seen: one and two keep the tombstone (before the fix
    they dropped it, and three, killed and restarted from its failed log,
    brought the value back for good).  Restarted from that log, three gets
    the deletion; with a complete log again it reports everything and the
    tombstone goes."""
    d = tmp_path / "disk"
    d.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(d)],
                      capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs")
    try:
        log, log2 = d / "three.log", tmp_path / "three-2.log"
        c = cluster_factory(3, config={"server.tombstone.interval": 1},
                            server_args=[[], [], ["--save", str(log), "--sync", "always"]])
        a, b, cc = c.servers
        set_ok(a, ("fl", "gone"), "old value")
        wait_converged([a, b, cc])
        with open(d / "filler", "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError:
                pass
        for i in range(64):             # past the slack of the log's last page
            set_ok(a, ("fl", "fill", i), "x" * 1000)
            if request(cc, "get_state", 5.0, log=True)["log"]["state"] == "failed":
                break
        assert request(cc, "get_state", 5.0, log=True)["log"]["state"] == "failed"
        delete_ok(a, ("fl", "gone"))
        wait_value(cc, ("fl", "gone"), absent=True)
        time.sleep(3)                   # three tombstone checks
        for s in (a, b):
            assert cluster_state(s)["tombstones"] >= 1, "%s dropped the tombstone" % s.node

        c.stop("three", signal.SIGKILL)
        (d / "filler").unlink()
        cc = c.start("three", server_args=["-l", str(log), "--save", str(log2)])
        c.wait_ready()
        for s in (a, b, cc):
            wait_value(s, ("fl", "gone"), absent=True)
        wait_converged([a, b, cc])
        wait_for(lambda: all(cluster_state(s)["tombstones"] == 0 for s in (a, b, cc)), 20,
                 "the tombstone to go once three logs completely again")
        for s in (a, b, cc):
            r = request(s, "get_value", 5.0, path=Path("fl", "gone"))
            assert "value" not in r, "deleted entry back on %s: %r" % (s.node, r)
    finally:
        subprocess.run(["umount", "-l", str(d)], capture_output=True)


def test_tombstones_dropped_only_when_every_node_has_seen_them(cluster_factory):
    """A deletion's tombstone goes on every node once all three have seen
    it; while a node is down, a newer tombstone stays (on the others) until
    it is back and has caught up."""
    c = cluster_factory(3, config={"server.tombstone.interval": 0.3})
    a, b, cc = c.servers

    def dropped(s):
        return (cluster_state(s) or {}).get("tombstones_dropped", 0)

    set_ok(a, ("tomb", "x"), 1)
    set_ok(a, ("tomb", "y"), 2)
    wait_converged([a, b, cc])
    delete_ok(a, ("tomb", "x"))
    assert wait_for(lambda: all(dropped(s) >= 1 for s in (a, b, cc)), 15), \
        [dropped(s) for s in (a, b, cc)]

    c.stop("three")
    base = [dropped(a), dropped(b)]
    delete_ok(a, ("tomb", "y"))
    wait_value(b, ("tomb", "y"), absent=True)
    time.sleep(2)  # several purge rounds: three has not seen the deletion
    assert [dropped(a), dropped(b)] == base
    assert cluster_state(a)["tombstones"] == 1, cluster_state(a)

    cc = c.start("three")
    c.wait_ready()
    wait_value(cc, ("tomb", "y"), absent=True)
    assert wait_for(lambda: dropped(a) > base[0] and dropped(b) > base[1], 15), \
        [dropped(a), dropped(b)]
    assert wait_for(lambda: all(cluster_state(s)["tombstones"] == 0 for s in (a, b, cc)), 15), \
        [cluster_state(s)["tombstones"] for s in (a, b, cc)]
    wait_converged([a, b, cc])


# --------------------------------------------------------------------------
# partition


def test_partition_and_heal(netlab, cluster_factory):
    """Slow (about 30 s).  Three nodes in network namespaces joined by a
    bridge; the test reaches each over a separate management link.  three's
    bridge port goes down: a real partition (nothing passes either way).
    Both sides notice (peers not live); each side changes things, also the
    same key; one's change reaches two but not three.  The port comes back
    up, three's agent joins again (Serf itself retries failed members only
    every 30 s), and all three nodes end identical."""
    lab = netlab(3)
    c = cluster_factory(3, placement=lab)
    a, b, cc = c.servers
    set_ok(a, ("part", "before"), 1)
    set_ok(a, ("part", "doomed"), 1)
    wait_converged([a, b, cc])

    lab.partition(2)
    wait_for(lambda: peer_states(a).get("three") in ("down", "connecting")
             and peer_states(b).get("three") in ("down", "connecting")
             and peer_states(cc).get("one") in ("down", "connecting")
             and peer_states(cc).get("two") in ("down", "connecting"),
             30, "both sides of the partition to see the other side not live")

    r_a = set_ok(a, ("part", "a"), "from one")
    set_ok(a, ("part", "both"), "one's")
    r_c = set_ok(cc, ("part", "c"), "from three")
    set_ok(cc, ("part", "both"), "three's")
    delete_ok(cc, ("part", "doomed"))
    wait_value(b, ("part", "a"), "from one", chain=r_a["chain"])
    for _ in range(10):          # the partition is real: three hears nothing
        assert "value" not in request(cc, "get_value", 5.0, path=Path("part", "a"))
        time.sleep(0.1)
    assert "value" not in request(a, "get_value", 5.0, path=Path("part", "c"))

    lab.heal(2)

    def rejoin():  # the neighbour entries may still say "failed" for a moment
        try:
            c.agent("three").join(c.agent("one"))
            return True
        except AssertionError:
            return False
    wait_for(rejoin, 20, "three's agent to join one's again after the heal")
    c.wait_ready(timeout=30)
    wait_converged([a, b, cc], timeout=30)
    for s in (a, b, cc):
        wait_value(s, ("part", "a"), "from one", chain=r_a["chain"])
        wait_value(s, ("part", "c"), "from three", chain=r_c["chain"])
        wait_value(s, ("part", "doomed"), absent=True)
    both = request(a, "get_value", 5.0, path=Path("part", "both"))
    assert both.get("value") in ("one's", "three's"), both


def test_gap_repaired_through_a_third_node(netlab, cluster_factory):
    """two and three cannot reach each other (routes cut both ways), while
    both reach one.  three's changes come to two only through one: two
    learns three's ticks from one's reports, finds them missing, and fetches
    them from one within seconds; two's changes reach three the same way."""
    lab = netlab(3)
    c = cluster_factory(3, placement=lab)
    a, b, cc = c.servers
    set_ok(a, ("gap", "start"), 1)
    wait_converged([a, b, cc])

    lab.cut(1, 2)
    wait_for(lambda: peer_states(b).get("three") != "live"
             and peer_states(cc).get("two") != "live",
             30, "two and three to lose their link")
    r_c = set_ok(cc, ("gap", "from three"), "via one")
    r_b = set_ok(b, ("gap", "from two"), "via one too")
    wait_value(a, ("gap", "from three"), "via one", chain=r_c["chain"])
    t0 = time.monotonic()
    wait_value(b, ("gap", "from three"), "via one", chain=r_c["chain"], timeout=15)
    wait_value(cc, ("gap", "from two"), "via one too", chain=r_b["chain"], timeout=15)
    took = time.monotonic() - t0
    assert peer_states(b).get("three") != "live", "the cut did not hold"
    assert took < 10, took
    assert "missing" in b.log() and "asking one" in b.log(), b.log()[-2000:]

    lab.uncut(1, 2)
    c.wait_ready(timeout=30)
    wait_converged([a, b, cc], timeout=30)


# --------------------------------------------------------------------------
# bad input between servers


def test_bad_repl_requests_get_errors(cluster_factory):
    """repl from a client that is no proper peer: a clear error each, and
    the node serves on with its data intact."""
    c = cluster_factory(1)
    a = c.servers[0]
    set_ok(a, ("bad", "keep"), "safe")
    cases = [
        (dict(root=c.root), "node"),
        (dict(node=a.node, root=c.root), "itself"),
        (dict(node="intruder", root="another-net"), "network"),
        (dict(node="intruder", root=c.root, have="not a map"), "have"),
        (dict(node="intruder", root=c.root, have={"x": "not ranges"}), "have"),
        (dict(node=7, root=c.root), "node"),
    ]
    for fields, word in cases:
        r = request(a, "repl", 5.0, **fields)
        assert "error" in r and word in r["error"], (fields, r)
    wait_value(a, ("bad", "keep"), "safe")


def fake_peer(script):
    """A TCP server that plays a peer: for each connection, send the byte
    strings in script (a list, or a callable returning one), then keep the
    connection open until the test ends.  Returns (port, stop)."""
    import socket as so
    lsock = so.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)
    lsock.settimeout(0.2)
    conns, halt = [], threading.Event()

    def run():
        while not halt.is_set():
            try:
                s, _ = lsock.accept()
            except OSError:
                continue
            conns.append(s)
            for chunk in (script() if callable(script) else script):
                try:
                    s.sendall(chunk)
                except OSError:
                    break

    t = threading.Thread(target=run, daemon=True)
    t.start()

    def stop():
        halt.set()
        t.join(5)
        for s in conns:
            s.close()
        lsock.close()

    return lsock.getsockname()[1], conns, stop


@pytest.mark.parametrize("kind", ["garbage", "bad-records", "wrong-name"])
def test_a_bad_peer_is_dropped_and_nothing_is_lost(cluster_factory, kind):
    """A "peer" announced through Serf (a tag on the node's own agent) that
    sends garbage, records that do not parse, or the greeting of another
    node: the link is dropped with a message naming it, the node keeps its
    data and keeps serving, and it tries again later."""
    import msgpack
    c = cluster_factory(1)
    a = c.servers[0]
    set_ok(a, ("bad", "keep"), "safe")
    hello = msgpack.packb({"seq": 0, "node": "fake", "version": [0, 57, 4], "tick": 0,
                           "tock": 1, "qlen": 10})
    script = {
        "garbage": [b"\xc1\xc1\xc1 not msgpack at all"],
        "bad-records": [hello, msgpack.packb({"seq": 1, "r": b"\x96\x01\xc7garbage"})],
        "wrong-name": [msgpack.packb({"seq": 0, "node": "someone-else", "tick": 0})],
    }[kind]
    port, conns, stop = fake_peer(script)
    try:
        c.agent("one").serf_cmd("tags", "-set", "dkv:%s:fake=127.0.0.1:%d" % (c.root, port))
        want = {"garbage": "malformed msgpack", "bad-records": "link to fake",
                "wrong-name": "someone-else"}[kind]
        wait_for(lambda: want in a.log() and len(conns) >= 2, 20,
                 "the bad peer to be dropped and tried again")
        st = cluster_state(a)
        assert st["peers"]["fake"]["state"] != "live", st
        assert st["peers"]["fake"]["error"], st
        wait_value(a, ("bad", "keep"), "safe")
        set_ok(a, ("bad", "after"), 1)
        a.check_alive()
    finally:
        c.agent("one").serf_cmd("tags", "-delete", "dkv:%s:fake" % c.root, check=False)
        stop()


def test_stopped_while_still_downloading(serf_factory, server_factory, tmp_path):
    """A node whose only peer greets and then never sends the state stays
    out of sync: data requests wait, get_state answers, the mount is not
    made; SIGTERM then stops it cleanly and mounts nothing."""
    import msgpack
    agent = serf_factory("two")
    root = "stuck-%d" % os.getpid()
    hello = msgpack.packb({"seq": 0, "node": "fake", "tick": 0, "tock": 1})
    port, conns, stop = fake_peer([hello])
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    try:
        agent.serf_cmd("tags", "-set", "dkv:%s:fake=127.0.0.1:%d" % (root, port))
        two = server_factory(node="two", init=None, config=cluster_cfg(agent, root),
                             server_args=("--mount", str(mnt)))
        wait_for(lambda: conns, 10, "the node to connect to its only peer")
        st = cluster_state(two)
        assert st["ready"] is False and st["peers"]["fake"]["state"] == "syncing", st
        with connect(two) as p:
            p.send({"seq": 5, "action": "get_value", "path": Path("x")})
            with pytest.raises(TimeoutError):
                p.next(5, timeout=1.0)  # waits: not answered while out of sync
        assert not os.path.ismount(mnt)
        assert two.stop() == 0, two.log_tail()
        assert not os.path.ismount(mnt)
    finally:
        stop()


# --------------------------------------------------------------------------
# messages and networks


def monitor_messages(p, seq, pred, timeout):
    """Messages of a msg_monitor stream until one satisfies pred (returned
    last) or timeout (then the list ends without a match)."""
    out = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return out
        try:
            m = p.next(seq, timeout=left)
        except TimeoutError:
            return out
        assert "error" not in m, m
        out.append(m)
        if pred(m):
            return out


def test_msg_send_reaches_msg_monitor_on_another_node(cluster_factory):
    """msg_send on one with topic a.b arrives at two's msg_monitor for a.b
    with its data; a message for a.c does not."""
    c = cluster_factory(2)
    a, b = c.servers
    pb = connect(b, 10.0)
    pa = connect(a, 10.0)
    try:
        mon = pb.start("msg_monitor", topic=["a", "b"])
        got = []
        deadline = time.monotonic() + 20
        k = 0
        while True:             # Serf may drop a message: resend until one arrives
            assert time.monotonic() < deadline, "no message arrived: %r" % got
            k += 1
            r = pa.request("msg_send", topic=["a", "c"], data="not for a.b")
            assert "error" not in r, r
            r = pa.request("msg_send", topic=["a", "b"], data={"n": k, "b": b"\x01"})
            assert "error" not in r, r
            got += monitor_messages(pb, mon, lambda m: "data" in m, 2.0)
            if any("data" in m for m in got):
                break
        for m in got:
            if "data" in m:
                assert tuple(m["topic"]) == ("a", "b"), m
                assert diff(m["data"], {"n": m["data"]["n"], "b": b"\x01"}) is None, m
        # a few more, to see that nothing for a.c comes late
        got += monitor_messages(pb, mon, lambda m: False, 1.5)
        assert all(tuple(m["topic"]) == ("a", "b") for m in got if "topic" in m), got
    finally:
        pa.close()
        pb.close()


def test_msg_send_errors(cluster_factory):
    """msg_send answers once the agent took the message; a message the
    agent refuses (larger than its event size limit) or a bad topic gets an
    error, and the node goes on serving."""
    c = cluster_factory(1)
    a = c.servers[0]
    r = request(a, "msg_send", 10.0, topic=["ok", "small"], data={"x": 1})
    assert r.get("result") is True, r
    r = request(a, "msg_send", 10.0, topic=["too", "big"], data="x" * 4000)
    assert "error" in r and "did not take" in r["error"], r
    for bad in ([], [1, 2], None):
        r = request(a, "msg_send", 10.0, topic=bad, data=1)
        assert "error" in r and "topic" in r["error"], (bad, r)
    set_ok(a, ("msg", "after"), 1)


def test_two_networks_share_agents(serf_factory, server_factory):
    """Two networks (server.root) on the same two Serf agents: each node
    sees only the peers of its own network, data and messages do not
    cross, and both replicate."""
    agents = [serf_factory("agent-a"), serf_factory("agent-b")]
    agents[1].join(agents[0])
    r1 = "net-a-%d" % os.getpid()
    r2 = "net-b-%d" % os.getpid()
    one = server_factory(node="one", init="Net1", config=cluster_cfg(agents[0], r1))
    x1 = server_factory(node="x1", init="Net2", config=cluster_cfg(agents[0], r2))
    two = server_factory(node="two", init=None, config=cluster_cfg(agents[1], r1))
    x2 = server_factory(node="x2", init=None, config=cluster_cfg(agents[1], r2))
    for s, peer in ((one, "two"), (two, "one"), (x1, "x2"), (x2, "x1")):
        wait_for(lambda: is_ready(s, [peer]), 30, "%s ready with %s live" % (s.node, peer))
    assert two.dkv("data", "get", timeout=30).stdout == "Net1\n"
    assert x2.dkv("data", "get", timeout=30).stdout == "Net2\n"
    for s, own in ((one, {"two"}), (two, {"one"}), (x1, {"x2"}), (x2, {"x1"})):
        peers = set((cluster_state(s) or {}).get("peers") or {}) - {s.node}
        assert peers == own, (s.node, peers)
        assert cluster_state(s).get("root") == (r1 if s in (one, two) else r2)

    # A topic whose first element starts with ":" is below server.root
    # (doc/cluster.md, as in DistKV); other topics are global on purpose.
    px2 = connect(x2, 10.0)
    try:
        mon = px2.start("msg_monitor", topic=[":iso"])
        set_ok(one, ("iso", "k"), "net1 only")
        wait_value(two, ("iso", "k"), "net1 only")
        r = request(one, "msg_send", 5.0, topic=[":iso"], data="net1 msg")
        assert "error" not in r, r
        r = set_ok(x1, ("iso", "k2"), "net2 only")
        wait_value(x2, ("iso", "k2"), "net2 only", chain=r["chain"])
        for s in (x1, x2):
            assert "value" not in request(s, "get_value", 5.0, path=Path("iso", "k"))
        for s in (one, two):
            assert "value" not in request(s, "get_value", 5.0, path=Path("iso", "k2"))
        got = monitor_messages(px2, mon, lambda m: "data" in m, 2.0)
        assert not [m for m in got if "data" in m], got
        # while the same topic in x2's own network does arrive
        deadline = time.monotonic() + 20
        while not [m for m in got if "data" in m]:
            assert time.monotonic() < deadline, "x1's message never reached x2: %r" % got
            r = request(x1, "msg_send", 5.0, topic=[":iso"], data="net2 msg")
            assert "error" not in r, r
            got += monitor_messages(px2, mon, lambda m: "data" in m, 2.0)
        got += monitor_messages(px2, mon, lambda m: False, 1.0)
        assert {m["data"] for m in got if "data" in m} == {"net2 msg"}, got
    finally:
        px2.close()


# --------------------------------------------------------------------------
# the server's own agent (server.serf.spawn)


def spawn_cfg(root, rpc, gossip):
    return {"server.cluster": True, "server.serf.spawn": True,
            "server.serf.host": "127.0.0.1", "server.serf.port": rpc,
            "server.serf.bind": "127.0.0.1:%d" % gossip, "server.root": root}


def _reap(pids):
    """Kill whatever of these serf agents is left (a failed test)."""
    for p in pids:
        if pid_alive(p) and proc_comm(p) == "serf":
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass


def test_embedded_agent_started_joined_and_stopped(server_factory):
    """A server with server.serf.spawn and no agent at its RPC port starts
    one (named like the node); a second server with its own ports and
    --join to the first's gossip address joins, syncs and replicates.
    When the servers stop (SIGTERM), their agents are gone."""
    root = "spawn-%d" % os.getpid()
    rpc1, g1, rpc2, g2 = (free_port_tcp_udp() for _ in range(4))
    assert not port_accepts("127.0.0.1", rpc1)
    pids = []
    try:
        x = server_factory(node="one", init="Testing", config=spawn_cfg(root, rpc1, g1))
        px = wait_for(lambda: serf_descendants(x.pid), 15, "one's serf agent")
        pids += px
        wait_for(lambda: port_accepts("127.0.0.1", rpc1), 15, "one's agent RPC port")
        wait_for(lambda: is_ready(x), 20, "one ready")
        y = server_factory(node="two", init=None, config=spawn_cfg(root, rpc2, g2),
                           server_args=["--join", "127.0.0.1:%d" % g1])
        py = wait_for(lambda: serf_descendants(y.pid), 15, "two's serf agent")
        pids += py
        assert not set(px) & set(py)
        wait_for(lambda: is_ready(y, ["one"]) and is_ready(x, ["two"]), 30,
                 "one and two ready, each seeing the other live")
        assert y.dkv("data", "get", timeout=30).stdout == "Testing\n"
        members = subprocess.run(["serf", "members", "-rpc-addr=127.0.0.1:%d" % rpc1],
                                 capture_output=True, text=True, timeout=10).stdout
        names = {line.split()[0]: line.split()[2] for line in members.splitlines() if line.strip()}
        assert names.get("one") == "alive" and names.get("two") == "alive", members
        r = set_ok(y, ("emb", "from-two"), b"\x01")
        wait_value(x, ("emb", "from-two"), b"\x01", chain=r["chain"])
        r = set_ok(x, ("emb", "from-one"), {"a": 1})
        wait_value(y, ("emb", "from-one"), {"a": 1}, chain=r["chain"])

        assert y.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
        wait_for(lambda: not any(pid_alive(p) for p in py), 10, "two's agent to be gone")
        assert x.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
        wait_for(lambda: not any(pid_alive(p) for p in px), 10, "one's agent to be gone")
    finally:
        _reap(pids)


def test_embedded_agent_restarted_when_it_dies(server_factory):
    """A server's own agent killed with -9 under it: the server notices,
    starts another (same name and ports), which joins the agents it knew;
    the two nodes see each other live again and replicate both ways."""
    root = "respawn-%d" % os.getpid()
    rpc1, g1, rpc2, g2 = (free_port_tcp_udp() for _ in range(4))
    pids = []
    try:
        x = server_factory(node="one", init="Testing", config=spawn_cfg(root, rpc1, g1))
        pids += wait_for(lambda: serf_descendants(x.pid), 15, "one's serf agent")
        wait_for(lambda: is_ready(x), 20, "one ready")
        y = server_factory(node="two", init=None, config=spawn_cfg(root, rpc2, g2),
                           server_args=["--join", "127.0.0.1:%d" % g1])
        py = wait_for(lambda: serf_descendants(y.pid), 15, "two's serf agent")
        pids += py
        wait_for(lambda: is_ready(y, ["one"]) and is_ready(x, ["two"]), 30,
                 "one and two ready, each seeing the other live")
        os.kill(py[0], signal.SIGKILL)
        py2 = wait_for(lambda: [p for p in serf_descendants(y.pid) if p not in py], 15,
                       "a new agent under two")
        pids += py2
        wait_for(lambda: "starting another" in y.log(), 5, "two saying so in its log")
        wait_for(lambda: str(cluster_state(y)["serf"]).startswith("connected"), 15,
                 "two connected to its new agent")
        members = lambda: subprocess.run(  # noqa: E731
            ["serf", "members", "-rpc-addr=127.0.0.1:%d" % rpc2],
            capture_output=True, text=True, timeout=10).stdout
        wait_for(lambda: "one " in members() and " alive" in members(), 30,
                 "the new agent to have joined one's")
        wait_for(lambda: is_ready(y, ["one"]) and is_ready(x, ["two"]), 60,
                 "one and two seeing each other live again")
        r = set_ok(x, ("respawn", "from-one"), 1)
        wait_value(y, ("respawn", "from-one"), 1, chain=r["chain"])
        r = set_ok(y, ("respawn", "from-two"), 2)
        wait_value(x, ("respawn", "from-two"), 2, chain=r["chain"])
        assert y.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
        wait_for(lambda: not any(pid_alive(p) for p in py2), 10, "two's new agent to be gone")
        assert x.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
    finally:
        _reap(pids)


def test_embedded_agent_dies_with_a_killed_server(server_factory):
    """kill -9 of a server that started its own agent: the agent goes too
    (no orphaned agent holding the ports), and a restarted server starts
    a fresh one."""
    root = "spawn9-%d" % os.getpid()
    rpc1, g1 = free_port_tcp_udp(), free_port_tcp_udp()
    pids = []
    try:
        x = server_factory(node="one", init="Testing", config=spawn_cfg(root, rpc1, g1))
        px = wait_for(lambda: serf_descendants(x.pid), 15, "one's serf agent")
        pids += px
        wait_for(lambda: is_ready(x), 20, "one ready")
        x.stop(signal.SIGKILL)
        wait_for(lambda: not any(pid_alive(p) for p in px), 10,
                 "the agent of a server killed with -9 to be gone")
        x = server_factory(node="one", init="Testing", port=x.port,
                           config=spawn_cfg(root, rpc1, g1))
        px2 = wait_for(lambda: serf_descendants(x.pid), 15, "the restarted server's agent")
        pids += px2
        wait_for(lambda: is_ready(x), 20, "one ready again")
        x.stop(signal.SIGTERM)
        wait_for(lambda: not any(pid_alive(p) for p in px2), 10, "the agent to be gone")
    finally:
        _reap(pids)
