"""Shared fixtures for every system test (tests/system/).

Run with Debian's interpreter (it has msgpack, yaml, pytest):

    /usr/bin/python3 -m pytest -q tests/system
    DKV_BUILD=build-asan DKV_ASAN=1 /usr/bin/python3 -m pytest -q tests/system

Environment:
    DKV_BUILD   meson build directory holding tools/distkv and tools/dkv
                (default: <repo>/build).  Missing binaries skip the tests.
    DKV_ASAN    set to 1 for sanitizer builds: a server that exits non-zero
                after SIGTERM then fails the test (sanitizer reports in a
                server log fail the test in any build).

What is here:

    DISTKV, DKV, BUILD_DIR, REPO   paths (pathlib.Path)
    free_port()                    a free TCP port on 127.0.0.1
    Server                         one `distkv server` process (see its doc)
    fixtures:
      server_factory   make(**kw) -> started Server; all are stopped and
                       checked (still alive? clean exit? sanitizer output?)
                       at teardown.  kw as for Server(), minus workdir.
      server           server_factory() with the defaults: node "node-a",
                       `-i Testing`, a fresh port and temp dir.
      proto            a dkvproto.Proto connected to `server` (greeting read,
                       hello {'seq': 0, 'qlen': 10} sent).
      serf_factory     make(name, **kw) -> started cluster_util.SerfAgent;
                       all are stopped at teardown (and must be gone).
      cluster_factory  make(n, **kw) -> cluster_util.Cluster: n Serf agents
                       joined together and n replicating servers "one",
                       "two", ... (the first with -i Testing), all ready.
      netlab           make(n) -> cluster_util.NetLab: network namespaces
                       for partitions (skips where they cannot be made).

Servers are standalone (`-C server.cluster=false`) unless a test's config
sets `server.cluster`.

When a test fails, the logs of the servers (and Serf agents) it used are
attached to the report ("server node-a log" sections).
"""

import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from dkvproto import Proto, wait_port  # noqa: E402

REPO = HERE.parent.parent
BUILD_DIR = pathlib.Path(os.environ.get("DKV_BUILD") or (REPO / "build")).resolve()
DISTKV = BUILD_DIR / "tools" / "distkv"
DKV = BUILD_DIR / "tools" / "dkv"
ASAN = os.environ.get("DKV_ASAN", "") not in ("", "0")

SANITIZER_RE = re.compile(
    r"ERROR: (AddressSanitizer|LeakSanitizer|ThreadSanitizer|MemorySanitizer)"
    r"|runtime error: |SUMMARY: UndefinedBehaviorSanitizer")

_live_servers = []   # started and not yet finished (for failure reports)


def free_port():
    """A TCP port free on 127.0.0.1, not handed out before in this run."""
    import cluster_util
    return cluster_util.free_port()


def _cfg_text(v):
    if v is True:
        return "true"
    if v is False:
        return "false"
    if v is None:
        return "null"
    return str(v)


class Server:
    """One `distkv server` process on 127.0.0.1, in its own directory.

    Command line::

        distkv [global_args] -C server.bind_default.port=PORT
               -C server.bind_default.host=127.0.0.1 [-C server.cluster=false]
               [-C key=value ...] server [server_args] [-i INIT] NODE

    `server.cluster=false` (a standalone node: no Serf, no peers) is added
    unless config sets `server.cluster` itself.

    Arguments (all keyword):
        workdir      directory for the process (cwd) and its log (server.log)
        node         node name (default "node-a")
        init         value for `-i` (default "Testing"; None: no -i)
        port         TCP port (default: a free one)
        config       dict of extra `-C key=value` settings
        global_args  extra arguments before `server`
        server_args  extra arguments after `server`
        env          extra environment variables
        start_timeout / stop_timeout   seconds (10 / 5)

    Attributes: host, port, node, workdir, logfile, proc, pid, argv.
    Methods: start(), alive(), connect(**kw) -> Proto, rss_kb(), log(),
    describe(), check_alive(), stop() -> exit code, finish() -> problems,
    client_argv(*args), dkv(*args, **run_kw) -> CompletedProcess.
    """

    def __init__(self, workdir, *, node="node-a", init="Testing", port=None,
                 host="127.0.0.1", config=None, global_args=(), server_args=(),
                 env=None, start_timeout=10.0, stop_timeout=5.0):
        self.workdir = pathlib.Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.node = node
        self.init = init
        self.host = host
        self.port = port or free_port()
        self.config = dict(config or {})
        self.global_args = list(global_args)
        self.server_args = list(server_args)
        self.env = dict(env or {})
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.logfile = self.workdir / "server.log"
        self.proc = None
        self.stopped_rc = None   # set once we stopped it on purpose
        self.finished = False

    # -- lifecycle

    @property
    def argv(self):
        a = [str(DISTKV), *self.global_args,
             "-C", "server.bind_default.port=%d" % self.port,
             "-C", "server.bind_default.host=%s" % self.host]
        if "server.cluster" not in self.config:
            a += ["-C", "server.cluster=false"]    # standalone unless asked
        for k, v in self.config.items():
            a += ["-C", "%s=%s" % (k, _cfg_text(v))]
        a += ["server", *self.server_args]
        if self.init is not None:
            a += ["-i", str(self.init)]
        a.append(self.node)
        return a

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def start(self):
        if not DISTKV.exists():
            pytest.skip("no server binary at %s (set DKV_BUILD)" % DISTKV)
        env = dict(os.environ)
        env.update(self.env)
        with open(self.logfile, "ab") as log:
            log.write(("# %s\n" % " ".join(self.argv)).encode())
            log.flush()
            self.proc = subprocess.Popen(self.argv, cwd=self.workdir, env=env,
                                         stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT)
        _live_servers.append(self)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._forget()
                pytest.fail("server %s exited with %s before accepting connections\n%s"
                            % (self.node, self.proc.returncode, self.log_tail()))
            if wait_port(self.host, self.port, 0.2):
                return self
        self.proc.kill()
        self.proc.wait()
        self._forget()
        pytest.fail("server %s did not accept connections on port %d within %gs\n%s"
                    % (self.node, self.port, self.start_timeout, self.log_tail()))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self, what=""):
        """Assert the server process is still running."""
        if not self.alive():
            raise AssertionError("server %s died%s: exit code %s\n%s"
                                 % (self.node, (" " + what) if what else "",
                                    self.proc.returncode if self.proc else None,
                                    self.log_tail()))

    def stop(self, sig=signal.SIGTERM):
        """Stop the server on purpose (SIGTERM, then SIGKILL after
        stop_timeout).  Returns the exit code (negative: killed by signal);
        the teardown then won't complain that it is gone."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.stopped_rc = "killed"
                return self.proc.returncode
        self.stopped_rc = self.proc.returncode
        return self.proc.returncode

    def finish(self):
        """Teardown: stop the server and return a list of problems
        (crashed during the test, hung at SIGTERM, unclean exit, sanitizer
        reports).  Idempotent."""
        if self.finished or self.proc is None:
            return []
        self.finished = True
        problems = []
        if self.stopped_rc is None and self.proc.poll() is not None:
            problems.append("server %s crashed during the test: exit code %s"
                            % (self.node, self.proc.returncode))
        elif self.stopped_rc is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                problems.append("server %s did not exit within %gs of SIGTERM"
                                % (self.node, self.stop_timeout))
            else:
                rc = self.proc.returncode
                if ASAN and rc not in (0, -signal.SIGTERM):
                    problems.append("server %s exited with %s after SIGTERM (sanitizer build)"
                                    % (self.node, rc))
        elif self.stopped_rc == "killed":
            problems.append("server %s did not exit within %gs of SIGTERM"
                            % (self.node, self.stop_timeout))
        text = self.log()
        if SANITIZER_RE.search(text):
            problems.append("sanitizer report in the log of server %s" % self.node)
        self._forget()
        if problems:
            problems.append(self.log_tail(400))
        return problems

    def _forget(self):
        if self in _live_servers:
            _live_servers.remove(self)

    # -- inspection

    def log(self):
        try:
            return self.logfile.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines=200):
        t = self.log().splitlines()
        cut = len(t) > lines
        t = t[-lines:]
        return "---- %s (%s%d lines) ----\n%s\n---- end of log ----" % (
            self.logfile, "last " if cut else "", len(t), "\n".join(t))

    def describe(self):
        if self.proc is None:
            state = "not started"
        elif self.proc.poll() is None:
            state = "running, pid %d" % self.proc.pid
        else:
            state = "exited with %s" % self.proc.returncode
        return "server %s on %s:%d: %s\n%s" % (self.node, self.host, self.port, state,
                                              self.log_tail())

    def rss_kb(self):
        """Resident set size of the server process in KiB (VmRSS)."""
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS for pid %d" % self.proc.pid)

    # -- clients

    def connect(self, **kw):
        """A dkvproto.Proto connected to this server (kw: see Proto)."""
        return Proto(self.host, self.port, **kw)

    def client_argv(self, *args):
        """argv for `distkv -C connect.host=.. -C connect.port=.. client ARGS`."""
        return [str(DISTKV), "-C", "connect.host=%s" % self.host,
                "-C", "connect.port=%d" % self.port, "client", *map(str, args)]

    def dkv(self, *args, check=True, timeout=30, **kw):
        """Run the command-line client against this server; returns the
        CompletedProcess (text mode, stdout/stderr captured)."""
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        r = subprocess.run(self.client_argv(*args), timeout=timeout, **kw)
        if check and r.returncode != 0:
            raise AssertionError("client %r failed (%d):\n%s\n%s"
                                 % (args, r.returncode, r.stdout, r.stderr))
        return r


@pytest.fixture
def server_factory(tmp_path, request):
    """make(**kw) -> a started Server in tmp_path/<node>[-n]; kw as for
    Server (node, init, port, config, global_args, server_args, env, ...),
    plus server_class (a Server subclass to use instead).
    Every server is stopped at teardown; a server that crashed during the
    test, hung at SIGTERM or left a sanitizer report fails the test."""
    servers = []
    request.node._dkv_servers = servers

    def make(**kw):
        cls = kw.pop("server_class", Server)
        node = kw.get("node", "node-a")
        name = node if not any(s.node == node for s in servers) else "%s-%d" % (node, len(servers))
        s = cls(tmp_path / name, **kw)
        servers.append(s)
        return s.start()

    yield make
    problems = []
    for s in servers:
        problems += s.finish()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def server(server_factory):
    """A fresh server: node "node-a", `-i Testing`, its own port and dir."""
    return server_factory()


@pytest.fixture
def proto(server):
    """A Proto connected to `server` (greeting read, hello sent)."""
    p = server.connect()
    yield p
    p.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    seen = []
    for s in list(getattr(item, "_dkv_servers", [])) + list(_live_servers):
        if s not in seen:
            seen.append(s)
            rep.sections.append(("server %s (port %d)" % (s.node, s.port), s.describe()))
    for a in getattr(item, "_dkv_agents", []):
        rep.sections.append(("serf agent %s" % a.name, a.describe()))


# --------------------------------------------------------------------------
# clusters: Serf agents and replicating servers (see cluster_util.py)

import itertools  # noqa: E402

import cluster_util  # noqa: E402

_root_counter = itertools.count(1)


@pytest.fixture
def serf_factory(tmp_path, request):
    """make(name, **kw) -> a started cluster_util.SerfAgent in
    tmp_path/serf-<name>; kw as for SerfAgent (bind_host, bind_port,
    rpc_listen, rpc_port, rpc_host, profile, prefix).  Every agent is
    stopped at teardown; one that cannot be stopped fails the test."""
    agents = []
    request.node._dkv_agents = agents

    def make(name, **kw):
        a = cluster_util.SerfAgent(tmp_path / ("serf-%s" % name), name, **kw)
        agents.append(a)
        return a.start()

    yield make
    problems = []
    for a in agents:
        problems += a.stop()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def netlab(request):
    """make(n) -> a cluster_util.NetLab with n namespaces, set up; all are
    deleted at teardown.  Skips the test where network namespaces, veth
    pairs or bridges cannot be made (not root, no iproute2, no kernel
    support)."""
    labs = []
    why = cluster_util.netns_usable()

    def make(n):
        if why:
            pytest.skip("no real partition possible here: " + why)
        lab = cluster_util.NetLab(n)
        labs.append(lab)
        try:
            return lab.setup()
        except RuntimeError as exc:
            pytest.skip("no real partition possible here: %s" % exc)

    yield make
    for lab in labs:
        lab.close()


@pytest.fixture
def cluster_factory(serf_factory, server_factory, request):
    """make(n, **kw) -> a cluster_util.Cluster of n nodes, all ready.

    Starts n Serf agents (named like the nodes), joins each to the first,
    then starts the servers "one", "two", ... in order, each pointing at
    its own agent with server.cluster=true, server.serf.spawn=false and a
    server.root unique to this test; the first with `-i Testing`, the
    others without -i.  Waits until every server says `ready: true` and
    sees every other one `live`.

    kw:
        config       extra -C settings for every server (dict)
        node_config  list of per-node dicts of extra settings
        server_args  list of per-node lists of extra `server` arguments
        init         -i value of the first node (default "Testing")
        root         server.root (default: unique per test)
        placement    cluster_util.Loopback() (default) or a NetLab
        profile      Serf profile (default lan)
        ready_timeout  seconds to wait for readiness (default 30)
    Agents and servers are stopped at teardown (servers first).
    """
    def make(n, *, config=None, node_config=None, server_args=None, init="Testing",
             root=None, placement=None, profile="lan", ready_timeout=30.0):
        placement = placement or cluster_util.Loopback()
        names = cluster_util.NAMES[:n]
        root = root or "dkvtest-%d-%d" % (os.getpid(), next(_root_counter))
        agents = [serf_factory(name, profile=profile, **placement.agent_kw(i, name))
                  for i, name in enumerate(names)]
        for a in agents[1:]:
            a.join(agents[0])
        cfgs, skws = [], []
        for i, name in enumerate(names):
            skw, pcfg = placement.server_kw(i, name, agents[i])
            cfg = {"server.cluster": True, "server.serf.spawn": False, "server.root": root}
            cfg.update(pcfg)
            cfg.update(config or {})
            if node_config:
                cfg.update(node_config[i] or {})
            cfgs.append(cfg)
            skws.append(skw)
        c = cluster_util.Cluster(server_factory, agents, root, cfgs, skws, names)
        for i in range(n):
            c.start(i, init=init if i == 0 else None,
                    server_args=(server_args[i] if server_args else ()))
            c.wait_ready([c.servers[i]], ready_timeout)
        c.wait_ready(timeout=ready_timeout)
        return c

    return make
