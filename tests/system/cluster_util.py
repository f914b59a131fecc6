"""Helpers for the cluster tests (tests/system/test_cluster.py) and the
cluster benchmark (tools/bench-cluster.py): Serf agents, groups of distkv
servers that replicate, network namespaces for partitions, and ways to
compare what nodes hold.

Nothing here starts anything by itself; the fixtures in conftest.py
(`serf_factory`, `cluster_factory`, `netlab`) do, and they stop everything
at teardown.

    SerfAgent      one `serf agent` process (see its doc)
    Cluster        n distkv servers, each with its own agent (made by the
                   cluster_factory fixture); restart/stop/wait helpers
    NetLab         network namespaces joined by a bridge, for partitions
    cluster_state(server)        the `cluster` map of get_state (or None)
    dump(server)                 {path: (value, chain)} of the data tree
    dump_internal(server)        the same for the internal (None-rooted) tree
    wait_for(fn, timeout, what)  poll until fn() returns a true value
    wait_value(server, path, value, chain=...)
    wait_converged(servers)      identical dumps, ticks and nothing missing

Requests to a server that is still syncing are not answered until it is
in sync; every call here uses a timeout and a fresh connection when it
polls, so a request that waits does not confuse the next poll.
"""

import os
import pathlib
import random
import shutil
import signal
import socket
import subprocess
import time

from dkvproto import ConnectionClosed, Path, PathLongener, diff

SERF = shutil.which("serf") or "/usr/bin/serf"
IP = shutil.which("ip") or "/usr/sbin/ip"
NAMES = ["one", "two", "three", "four", "five", "six", "seven", "eight"]
POLL = 0.1


# --------------------------------------------------------------------------
# ports and processes

# Ports are drawn at random below the kernel's ephemeral range, so that no
# outgoing connection (a server dialling its peers, a client) can take one
# between our check and the daemon's bind, and never twice in one test run:
# a port handed out once is not handed out again while this process lives.
_PORT_LO, _PORT_HI = 20000, 32000
_handed_out = {27586}      # the default client port, which test_cli wants free


def _take_port(host, udp_too):
    for _ in range(1000):
        port = random.randint(_PORT_LO, _PORT_HI)
        if port in _handed_out:
            continue
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                t.bind((host, port))
                if udp_too:
                    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                        u.bind((host, port))
        except OSError:
            continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free port in %d-%d" % (_PORT_LO, _PORT_HI))


def free_port(host="127.0.0.1"):
    """A TCP port free on host, not handed out before in this run."""
    return _take_port(host, False)


def free_port_tcp_udp(host="127.0.0.1"):
    """A port free for both TCP and UDP on host (Serf's gossip uses both)."""
    return _take_port(host, True)


def port_accepts(host, port, timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pid_alive(pid):
    """True if pid names a live (not zombie) process."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def proc_comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return None


def proc_cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def descendants(pid):
    """pids of every live descendant of pid (from /proc, at this moment)."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
        except OSError:
            continue
        rest = stat[stat.rindex(")") + 2:].split()
        children.setdefault(int(rest[1]), []).append(int(d))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def serf_descendants(pid):
    """pids of `serf` processes below pid."""
    return [p for p in descendants(pid) if proc_comm(p) == "serf" and pid_alive(p)]


def wait_for(fn, timeout=15.0, what="condition", interval=POLL):
    """Call fn() until it returns something true; return that.  On timeout
    raise AssertionError naming *what* and fn's last result (or the last
    exception it raised)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            r = fn()
            if r:
                return r
            last = r
        except (OSError, TimeoutError, ConnectionClosed, AssertionError, KeyError) as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %gs waiting for %s; last: %r"
                                 % (timeout, what, last))
        time.sleep(interval)


# --------------------------------------------------------------------------
# Serf agents

class SerfAgent:
    """One `serf agent` process.

    Command line::

        [prefix...] serf agent -node NAME -bind BIND_HOST:BIND_PORT
                    -rpc-addr RPC_LISTEN:RPC_PORT -profile PROFILE -log-level warn

    Arguments (keyword, all optional but workdir and name):
        bind_host / bind_port      gossip address (default 127.0.0.1, free port)
        rpc_listen / rpc_port      RPC listener (default 127.0.0.1, free port)
        rpc_host                   where *we* reach the RPC port (default
                                   rpc_listen, or 127.0.0.1 for 0.0.0.0)
        profile                    lan (default), local, wan
        prefix                     argv prefix, e.g. ["ip", "netns", "exec", NS]

    Attributes: name, gossip (the "host:port" others join), rpc_addr
    ("host:port" for `serf ... -rpc-addr`), rpc_port, pid, logfile.
    Methods: start(), alive(), join(other_or_addr), members(), kill(sig),
    restart(), stop() (idempotent; used at teardown).

    `join` remembers the agents joined (both ways), and restart() joins a
    restarted agent to every one of them that is still alive: a fresh agent
    knows nobody, and its peers only retry failed members every 30 s.
    """

    def __init__(self, workdir, name, *, bind_host="127.0.0.1", bind_port=None,
                 rpc_listen="127.0.0.1", rpc_port=None, rpc_host=None, profile="lan",
                 prefix=(), start_timeout=10.0, stop_timeout=5.0):
        self.workdir = pathlib.Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.bind_host = bind_host
        self.bind_port = bind_port or free_port_tcp_udp(
            bind_host if bind_host != "0.0.0.0" else "127.0.0.1")
        self.rpc_listen = rpc_listen
        self.rpc_port = rpc_port or free_port_tcp_udp()
        self.rpc_host = rpc_host or (rpc_listen if rpc_listen != "0.0.0.0" else "127.0.0.1")
        self.profile = profile
        self.prefix = list(prefix)
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.logfile = self.workdir / ("serf-%s.log" % name)
        self.proc = None
        self.peers = []       # agents joined, either way
        self.old_pids = []    # of earlier incarnations (teardown checks them)

    @property
    def gossip(self):
        return "%s:%d" % (self.bind_host, self.bind_port)

    @property
    def rpc_addr(self):
        return "%s:%d" % (self.rpc_host, self.rpc_port)

    @property
    def argv(self):
        return self.prefix + [SERF, "agent", "-node", self.name, "-bind", self.gossip,
                              "-rpc-addr", "%s:%d" % (self.rpc_listen, self.rpc_port),
                              "-profile", self.profile, "-log-level", "warn"]

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self):
        if not os.path.exists(SERF):
            import pytest
            pytest.skip("no serf binary (%s)" % SERF)
        with open(self.logfile, "ab") as log:
            log.write(("# %s\n" % " ".join(self.argv)).encode())
            log.flush()
            self.proc = subprocess.Popen(self.argv, cwd=self.workdir, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("serf agent %s exited with %s at start\n%s"
                                     % (self.name, self.proc.returncode, self.log_tail()))
            if port_accepts(self.rpc_host, self.rpc_port, 0.2):
                return self
            time.sleep(0.05)
        self.kill()
        raise AssertionError("serf agent %s: RPC port %s not accepting within %gs\n%s"
                             % (self.name, self.rpc_addr, self.start_timeout, self.log_tail()))

    def serf_cmd(self, *args, check=True, timeout=15):
        argv = [SERF, args[0], "-rpc-addr=%s" % self.rpc_addr, *args[1:]]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError("%s failed (%d): %s%s" % (" ".join(argv), r.returncode,
                                                          r.stdout, r.stderr))
        return r

    def join(self, other):
        """Join another agent (a SerfAgent or a gossip "host:port")."""
        addr = other.gossip if isinstance(other, SerfAgent) else str(other)
        self.serf_cmd("join", addr)
        if isinstance(other, SerfAgent):
            if other not in self.peers:
                self.peers.append(other)
            if self not in other.peers:
                other.peers.append(self)

    def members(self):
        """{name: status} as this agent sees them."""
        r = self.serf_cmd("members", check=False)
        out = {}
        for line in r.stdout.splitlines():
            f = line.split()
            if len(f) >= 3:
                out[f[0]] = f[2]
        return out

    def kill(self, sig=signal.SIGKILL):
        """Send sig and wait for the process to end (SIGKILL after
        stop_timeout)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def restart(self, sig=signal.SIGKILL, pause=0.0, rejoin=True):
        """Kill (sig) and start again on the same ports; rejoin live peers."""
        if self.proc is not None:
            self.old_pids.append(self.proc.pid)
        self.kill(sig)
        if pause:
            time.sleep(pause)
        deadline = time.monotonic() + 10
        while True:      # the gossip port may linger for a moment
            try:
                self.start()
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        if rejoin:
            for p in self.peers:
                if p.alive():
                    self.join(p)
        return self

    def stop(self):
        """Teardown: SIGTERM (then SIGKILL).  Returns problems (a list)."""
        problems = []
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for p in self.old_pids + ([self.proc.pid] if self.proc else []):
            if pid_alive(p) and proc_comm(p) == "serf":
                problems.append("serf agent %s: pid %d still running after stop" % (self.name, p))
        return problems

    def log(self):
        try:
            return self.logfile.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines=60):
        t = self.log().splitlines()[-lines:]
        return "---- %s ----\n%s\n---- end ----" % (self.logfile, "\n".join(t))

    def describe(self):
        state = ("not started" if self.proc is None else
                 "running, pid %d" % self.proc.pid if self.proc.poll() is None else
                 "exited with %s" % self.proc.returncode)
        return "serf agent %s (gossip %s, rpc %s): %s\n%s" % (
            self.name, self.gossip, self.rpc_addr, state, self.log_tail())


# --------------------------------------------------------------------------
# talking to servers

def connect(server, timeout=5.0, **kw):
    return server.connect(timeout=timeout, **kw)


def request(server, action, timeout=5.0, **fields):
    """One request on a fresh connection; the reply."""
    with connect(server, timeout) as p:
        return p.request(action, **fields)


def get_state(server, timeout=5.0, **flags):
    return request(server, "get_state", timeout, **flags)


def cluster_state(server, timeout=3.0):
    """The `cluster` map of get_state(cluster=True), or None if absent."""
    r = get_state(server, timeout, cluster=True)
    return r.get("cluster")


def is_ready(server, peers=(), timeout=3.0):
    """True if server's cluster state says ready and every name in peers
    is `live`."""
    if not server.alive():
        raise AssertionError("server %s is not running" % server.node)
    try:
        c = cluster_state(server, timeout)
    except (OSError, TimeoutError, ConnectionClosed):
        return False
    if not isinstance(c, dict) or c.get("ready") is not True:
        return False
    ps = c.get("peers") or {}
    return all(isinstance(ps.get(n), dict) and ps[n].get("state") == "live" for n in peers)


def _tree(server, action, path=(), timeout=10.0):
    out = {}
    with connect(server, timeout) as p:
        longer = PathLongener()
        for m in p.stream(action, path=Path(*path), nchain=5):
            if m.get("error"):
                raise AssertionError("%s on %s: %s" % (action, server.node, m["error"]))
            if "path" not in m:
                continue
            full = longer(m)
            if "value" in m:
                out[tuple(path) + tuple(full)] = (m["value"], m.get("chain"))
    return out


def dump(server, path=(), timeout=10.0):
    """{full path: (value, chain)} for every entry with a value in the data
    tree below path (get_tree, nchain 5)."""
    return _tree(server, "get_tree", path, timeout)


def dump_internal(server, timeout=10.0):
    """The same for the internal tree (get_tree_internal)."""
    return _tree(server, "get_tree_internal", (), timeout)


def dump_diff(a, b, na="A", nb="B", limit=8):
    """None if the dumps are strictly equal, else a short description."""
    out = []
    for k in a:
        if k not in b:
            out.append("%r: only on %s (%r)" % (k, na, a[k]))
    for k in b:
        if k not in a:
            out.append("%r: only on %s (%r)" % (k, nb, b[k]))
    for k in a:
        if k in b:
            d = diff(a[k], b[k], "%r" % (k,))
            if d:
                out.append("%s: %s=%r %s=%r" % (d, na, a[k], nb, b[k]))
    if not out:
        return None
    more = len(out) - limit
    return "; ".join(out[:limit]) + (" (and %d more)" % more if more > 0 else "")


def ticks_state(server, timeout=5.0):
    """(nodes, missing) from get_state."""
    r = get_state(server, timeout, nodes=True, missing=True)
    return r.get("nodes") or {}, r.get("missing") or {}


def wait_value(server, path, value=None, *, chain=None, absent=False, timeout=15.0):
    """Poll get_value on server until the entry holds value (and, if chain
    is given, that chain, compared to the depth given), or has no value
    when absent=True.  Returns the last reply."""
    nchain = 0
    c = chain
    while isinstance(c, dict):
        nchain += 1
        c = c.get("prev")

    def check():
        r = request(server, "get_value", 3.0, path=Path(*path), nchain=max(nchain, 1))
        if "error" in r:
            raise AssertionError("get_value on %s: %s" % (server.node, r["error"]))
        if absent:
            return r if "value" not in r else False
        if "value" not in r or diff(r["value"], value) is not None:
            return False
        if chain is not None and diff(trim_chain(r.get("chain"), nchain), chain) is not None:
            return False
        return r
    return wait_for(check, timeout, "%s on %s to be %s" % (
        path, server.node, "deleted" if absent else "%r (chain %r)" % (value, chain)))


def trim_chain(chain, depth):
    if not isinstance(chain, dict) or depth <= 0:
        return None
    c = dict(chain)
    c["prev"] = trim_chain(chain.get("prev"), depth - 1)
    return c


def chain_ticks(chain):
    """[(node, tick), ...] of a chain, newest first."""
    out = []
    while isinstance(chain, dict):
        out.append((chain.get("node"), chain.get("tick")))
        chain = chain.get("prev")
    return out


def converged(servers, internal=True, ticks=True):
    """None if every server holds the same data (values and chains; also
    the internal tree and, with ticks, the same node ticks with nothing
    missing), else a description of the first difference."""
    first = servers[0]
    d0 = dump(first)
    i0 = dump_internal(first) if internal else None
    t0 = ticks_state(first) if ticks else None
    if ticks and t0[1]:
        return "%s misses ticks: %r" % (first.node, t0[1])
    for s in servers[1:]:
        d = dump_diff(d0, dump(s), first.node, s.node)
        if d:
            return "data: " + d
        if internal:
            d = dump_diff(i0, dump_internal(s), first.node, s.node)
            if d:
                return "internal: " + d
        if ticks:
            nodes, missing = ticks_state(s)
            if missing:
                return "%s misses ticks: %r" % (s.node, missing)
            if diff(nodes, t0[0]) is not None:
                return "ticks differ: %s %r, %s %r" % (first.node, t0[0], s.node, nodes)
    return None


def wait_converged(servers, timeout=20.0, internal=True, ticks=True):
    """Poll until converged(servers) is None; AssertionError with the last
    difference otherwise."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = converged(servers, internal, ticks)
            if last is None:
                return
        except (OSError, TimeoutError, ConnectionClosed) as exc:
            last = "error: %r" % (exc,)
        if time.monotonic() >= deadline:
            raise AssertionError("nodes %s did not converge within %gs: %s"
                                 % ([s.node for s in servers], timeout, last))
        time.sleep(0.2)


# --------------------------------------------------------------------------
# clusters

class Cluster:
    """n servers, each pointing at its own Serf agent (made by the
    cluster_factory fixture).  Attributes: agents, servers (lists, index i
    is node NAMES[i]), root (the server.root of this test), names.

    Methods:
        server(name_or_index), agent(name_or_index)
        wait_ready(servers=None, timeout)   ready + every other running peer live
        stop(i, sig)                        stop a server on purpose
        start(i, init=None, server_args=(), config=None)   (re)start node i on
                                            the same port, agent and settings
        restart(i, ...)                     stop (SIGTERM) + start
    """

    def __init__(self, make_server, agents, root, config, server_kw, names):
        self._make = make_server
        self.agents = agents
        self.root = root
        self.config = config            # per node: the -C settings
        self.server_kw = server_kw      # per node: extra Server() arguments
        self.names = names
        self.servers = [None] * len(names)

    def _index(self, x):
        if isinstance(x, int):
            return x
        return self.names.index(x if isinstance(x, str) else x.node)

    def server(self, x):
        return self.servers[self._index(x)]

    def agent(self, x):
        return self.agents[self._index(x)]

    def start(self, i, init=None, server_args=(), config=None, wait=False, **kw):
        i = self._index(i)
        cfg = dict(self.config[i])
        cfg.update(config or {})
        old = self.servers[i]
        skw = dict(self.server_kw[i])
        skw.update(kw)
        if old is not None:
            skw.setdefault("port", old.port)
        s = self._make(node=self.names[i], init=init, config=cfg,
                       server_args=list(server_args), **skw)
        self.servers[i] = s
        if wait:
            self.wait_ready([s])
        return s

    def stop(self, i, sig=signal.SIGTERM):
        """Stop server i with sig; after SIGTERM it must exit cleanly
        (status 0, or killed by the SIGTERM itself)."""
        s = self.servers[self._index(i)]
        rc = s.stop(sig)
        if sig == signal.SIGTERM and rc not in (0, -signal.SIGTERM):
            raise AssertionError("server %s exited with %s after SIGTERM\n%s"
                                 % (s.node, rc, s.log_tail(30)))
        return rc

    def restart(self, i, sig=signal.SIGTERM, **kw):
        self.stop(i, sig)
        return self.start(i, **kw)

    def running(self):
        return [s for s in self.servers if s is not None and s.alive()]

    def wait_ready(self, servers=None, timeout=30.0):
        """Every server in servers (default: all running) says ready and
        sees every other running server of the cluster live."""
        servers = servers or self.running()
        names = [s.node for s in self.running()]
        for s in servers:
            wait_for(lambda: is_ready(s, [n for n in names if n != s.node]), timeout,
                     "node %s to be ready with peers %s live"
                     % (s.node, [n for n in names if n != s.node]))


class Loopback:
    """Placement of cluster nodes on 127.0.0.1 (the default)."""

    def agent_kw(self, i, name):
        return {}

    def server_kw(self, i, name, agent):
        return {}, {"server.serf.host": agent.rpc_host, "server.serf.port": agent.rpc_port}


# --------------------------------------------------------------------------
# network namespaces, for partitions

def netns_usable():
    """None if `ip netns` and veth/bridge links work here, else why not."""
    if os.geteuid() != 0:
        return "needs root for network namespaces"
    if not os.path.exists(IP):
        return "no `ip` command (iproute2)"
    name = "dkvprobe%d" % os.getpid()
    try:
        r = subprocess.run([IP, "netns", "add", name], capture_output=True, text=True)
        if r.returncode:
            return "`ip netns add` failed: %s" % r.stderr.strip()
        r = subprocess.run([IP, "link", "add", "dkvp%da" % (os.getpid() % 10000), "type", "veth",
                            "peer", "name", "dkvp%db" % (os.getpid() % 10000)],
                           capture_output=True, text=True)
        if r.returncode:
            return "cannot make veth pairs: %s" % r.stderr.strip()
        subprocess.run([IP, "link", "del", "dkvp%da" % (os.getpid() % 10000)], capture_output=True)
        r = subprocess.run([IP, "link", "add", "dkvq%d" % (os.getpid() % 10000), "type", "bridge"],
                           capture_output=True, text=True)
        if r.returncode:
            return "cannot make bridges: %s" % r.stderr.strip()
        subprocess.run([IP, "link", "del", "dkvq%d" % (os.getpid() % 10000)], capture_output=True)
    finally:
        subprocess.run([IP, "netns", "del", name], capture_output=True)
    return None


class NetLab:
    """n network namespaces, each with two links:

    * a "cluster" veth into a bridge in the root namespace, address
      10.B.C.(i+1)/24: the only way nodes reach each other (the root
      namespace does not forward between bridge and management links);
    * a "management" veth straight to the root namespace, 10.B.(C+1+i).2
      (root side .1): the test's way in, untouched by partitions.

    partition(i) takes node i's bridge port down: node i can reach no other
    node and no other node can reach it, while the test still reaches
    every node.  heal(i) brings it back.  close() deletes everything.
    """

    def __init__(self, n):
        self.n = n
        self.tag = "%04x" % random.randrange(0x10000)
        self.b = random.randrange(100, 250)
        self.c = random.randrange(0, 200) & ~15
        self.bridge = "dkb" + self.tag
        self.ns = ["dkv%s%d" % (self.tag, i) for i in range(n)]
        self.made_links = []
        self.made_ns = []
        self.made_bridge = False

    def _ip(self, *args, ns=None):
        argv = [IP] + (["netns", "exec", ns, IP] if ns else []) + list(args)
        r = subprocess.run(argv, capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError("%s: %s" % (" ".join(argv), r.stderr.strip()))
        return r.stdout

    def cluster_ip(self, i):
        return "10.%d.%d.%d" % (self.b, self.c, i + 1)

    def mgmt_ip(self, i):
        return "10.%d.%d.2" % (self.b, self.c + 1 + i)

    def prefix(self, i):
        return [IP, "netns", "exec", self.ns[i]]

    def setup(self):
        self._ip("link", "add", self.bridge, "type", "bridge")
        self.made_bridge = True
        self._ip("addr", "add", "10.%d.%d.254/24" % (self.b, self.c), "dev", self.bridge)
        self._ip("link", "set", self.bridge, "up")
        for i, ns in enumerate(self.ns):
            self._ip("netns", "add", ns)
            self.made_ns.append(ns)
            self._ip("link", "set", "lo", "up", ns=ns)
            # cluster link: c<tag><i> (root side, in the bridge) <-> e<tag><i>
            root_c, ns_c = "c%s%d" % (self.tag, i), "e%s%d" % (self.tag, i)
            self._ip("link", "add", root_c, "type", "veth", "peer", "name", ns_c)
            self.made_links.append(root_c)
            self._ip("link", "set", ns_c, "netns", ns)
            self._ip("link", "set", root_c, "master", self.bridge)
            self._ip("link", "set", root_c, "up")
            self._ip("addr", "add", self.cluster_ip(i) + "/24", "dev", ns_c, ns=ns)
            self._ip("link", "set", ns_c, "up", ns=ns)
            # management link: m<tag><i> (root) <-> n<tag><i>
            root_m, ns_m = "m%s%d" % (self.tag, i), "n%s%d" % (self.tag, i)
            self._ip("link", "add", root_m, "type", "veth", "peer", "name", ns_m)
            self.made_links.append(root_m)
            self._ip("link", "set", ns_m, "netns", ns)
            self._ip("addr", "add", "10.%d.%d.1/24" % (self.b, self.c + 1 + i), "dev", root_m)
            self._ip("link", "set", root_m, "up")
            self._ip("addr", "add", self.mgmt_ip(i) + "/24", "dev", ns_m, ns=ns)
            self._ip("link", "set", ns_m, "up", ns=ns)
        return self

    def partition(self, i):
        self._ip("link", "set", "c%s%d" % (self.tag, i), "down")

    def heal(self, i):
        self._ip("link", "set", "c%s%d" % (self.tag, i), "up")

    def cut(self, i, j):
        """Nodes i and j can no longer reach each other (each drops what it
        would send to the other); both still reach everyone else."""
        self._ip("route", "add", "unreachable", self.cluster_ip(j) + "/32", ns=self.ns[i])
        self._ip("route", "add", "unreachable", self.cluster_ip(i) + "/32", ns=self.ns[j])

    def uncut(self, i, j):
        self._ip("route", "del", "unreachable", self.cluster_ip(j) + "/32", ns=self.ns[i])
        self._ip("route", "del", "unreachable", self.cluster_ip(i) + "/32", ns=self.ns[j])

    def close(self):
        for ns in self.made_ns:
            subprocess.run([IP, "netns", "del", ns], capture_output=True)
        for link in self.made_links:
            subprocess.run([IP, "link", "del", link], capture_output=True)
        if self.made_bridge:
            subprocess.run([IP, "link", "del", self.bridge], capture_output=True)
        self.made_ns, self.made_links, self.made_bridge = [], [], False

    # placement of cluster nodes (see Cluster / cluster_factory)

    GOSSIP_PORT = 7946
    RPC_PORT = 7373
    CLIENT_PORT = 27586

    def agent_kw(self, i, name):
        return dict(prefix=self.prefix(i), bind_host=self.cluster_ip(i),
                    bind_port=self.GOSSIP_PORT, rpc_listen="0.0.0.0", rpc_port=self.RPC_PORT,
                    rpc_host=self.mgmt_ip(i))

    def server_kw(self, i, name, agent):
        from conftest import Server

        prefix = self.prefix(i)

        class NetnsServer(Server):
            @property
            def argv(self):
                return prefix + super().argv

        kw = dict(server_class=NetnsServer, host=self.mgmt_ip(i), port=self.CLIENT_PORT)
        cfg = {"server.bind_default.host": "0.0.0.0",
               "server.advertise": "%s:%d" % (self.cluster_ip(i), self.CLIENT_PORT),
               "server.serf.host": "127.0.0.1", "server.serf.port": self.RPC_PORT}
        return kw, cfg
